//! What `elector force-standby` does (systemd's `ExecStopPost=`, `elector supervise` when its
//! child died, the watcher of a bare run when its elector died): command the node standby at
//! once (with key custody, withdraw the operator's key too), confirm it by a read, then end
//! the term a crashed elector left in etcd (rule `end_dead_term`, `--state-dir`), holding the
//! state's lock so that a live elector's term is never ended; run the fence if standby is not
//! confirmed in time.
//!
//! It lives in the library, behind the node's [`HttpGet`] and etcd's [`Connect`] seams, so that
//! the simulation runs the very code the binary runs as its modeled `ExecStopPost=`.

use crate::etcd::Connect;
use crate::etcd::Election;
use crate::fence::Fence;
use crate::node::{HttpGet, NodeClient};
use crate::state::{LockError, StateFile};
use elector_core::NodeKeys;
use std::time::Duration;
use tokio::time::{Instant, timeout};

/// `elector force-standby` re-sends `activate=false` this often while reads still say active
/// (a node finishing its round, or one that restarted active meanwhile).
pub const FORCE_STANDBY_RESEND: Duration = Duration::from_secs(1);

/// Longest `force-standby` spends ending a dead term in etcd.
pub const DEAD_TERM_BOUND: Duration = Duration::from_secs(3);

/// Where the term a crashed elector left in etcd is remembered, and how to reach etcd to end
/// it.
pub struct DeadTermEnding<E: Connect> {
    /// `--state-dir`'s term file for this key and value.
    pub state: StateFile,
    /// The election key (`--key`) and our value (`--value`).
    pub key: String,
    pub value: String,
    /// How to get an etcd client.
    pub etcd: E,
    /// The bound on each etcd call.
    pub request_timeout: Duration,
}

/// Everything `elector force-standby` needs.
pub struct ForceStandby<T: HttpGet, E: Connect> {
    /// The node's admin endpoint (`/ha`, and `/producer-keys` with key custody).
    pub node: NodeClient<T>,
    /// Key custody: the node was given the custody files ([`NodeClient::with_custody`]); the
    /// operator's key is withdrawn, and a read of `/producer-keys` listing only the
    /// placeholder proves standby as a read of `/ha` does.
    pub key_custody: bool,
    /// The admin endpoint's base URL, as the messages name it.
    pub admin: String,
    /// Give up confirming standby after this long (`--timeout`).
    pub timeout: Duration,
    /// Reads repeat this often while the node still reads active.
    pub confirm_poll_interval: Duration,
    /// Run when standby is not confirmed within `timeout`.
    pub fence: Fence,
    /// `None` without a state directory: any term left in etcd ends with its lease.
    pub dead_term: Option<DeadTermEnding<E>>,
}

impl<T: HttpGet, E: Connect> ForceStandby<T, E> {
    /// Commands the node standby at once, confirms it by a read, then ends the dead term; the
    /// fence runs if standby is not confirmed within `timeout`. Returns what it did, one line
    /// each, or why standby was not confirmed, with the fence's outcome.
    pub async fn run(&self) -> Result<Vec<String>, String> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let mut commanded_at: Option<Instant> = None;
        let mut last_problem = String::from("no answer yet");
        // Key custody: the operator's key withdrawn, the placeholder alone listed in the answer.
        let mut withdrawn = false;
        loop {
            let now = Instant::now();
            let resend = commanded_at.is_none_or(|at| now >= at + FORCE_STANDBY_RESEND);
            if resend {
                match self.node.set_mode(false).await {
                    Ok(()) => commanded_at = Some(Instant::now()),
                    Err(e) => last_problem = format!("activate=false failed: {e}"),
                }
            }
            if self.key_custody && !withdrawn {
                // The withdrawal, then a read that confirms it.
                let confirmed = match self.node.withdraw_key().await {
                    Ok(NodeKeys::Placeholder) => self.node.read_keys().await,
                    answer => answer,
                };
                match confirmed {
                    Ok(NodeKeys::Placeholder) => withdrawn = true,
                    Ok(NodeKeys::Operator) => {
                        last_problem = "the node still lists the operator's key".into()
                    }
                    Err(e) => last_problem = format!("withdrawing the operator's key failed: {e}"),
                }
            }
            let mut read = false;
            if commanded_at.is_some() {
                match self.node.read_mode().await {
                    Ok(false) => read = true,
                    Ok(true) => last_problem = "the node still reads active".into(),
                    Err(e) => last_problem = format!("reading the mode failed: {e}"),
                }
            }
            if read || withdrawn {
                let how = match (read, withdrawn) {
                    (true, true) => "confirmed standby, the operator's key withdrawn",
                    (true, false) => "confirmed standby",
                    _ => "holds no operator key any more (it may still read active)",
                };
                let confirmed = format!(
                    "node {} {how} after {:.2}s",
                    self.admin,
                    started.elapsed().as_secs_f64()
                );
                return Ok(vec![
                    confirmed,
                    self.end_dead_term_after_crash(read, withdrawn).await,
                ]);
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            tokio::time::sleep(self.confirm_poll_interval.min(deadline - now)).await;
        }
        let reason = format!(
            "node {} not confirmed standby within {} ({last_problem})",
            self.admin,
            humantime::format_duration(self.timeout)
        );
        if matches!(self.fence, Fence::None) {
            return Err(format!("{reason}; no --fence-cmd configured"));
        }
        // Loud on failure: the node may still be active, and the operator reads this line first.
        let outcome = match self.fence.run(reason.clone()).await {
            Ok(done) => done,
            Err(failed) => format!("FENCE FAILED: {failed}"),
        };
        Err(format!("{reason}; {outcome}"))
    }

    /// After a crash, with the node confirmed standby by a read (or its operator's key
    /// confirmed withdrawn): ends the term the crashed elector left in etcd, if `--state-dir`
    /// remembers it as ours (rule `end_dead_term` of the core), so that the next leader need
    /// not wait for its lease to expire. Only with the state's lock: a live elector holding it
    /// owns that term, and nothing in etcd is touched. Bounded; says what it did. Any failure
    /// only means the next leader waits for the lease to expire and the activation delay.
    async fn end_dead_term_after_crash(&self, read: bool, withdrawn: bool) -> String {
        let Some(ending) = &self.dead_term else {
            return "no --state-dir: any term left in etcd ends with its lease".into();
        };
        let state = &ending.state;
        let value = &ending.value;
        // Held until this function returns.
        let _lock = match state.lock("force-standby") {
            Ok((lock, _)) => lock,
            Err(LockError::Held { owner, .. }) => {
                return format!(
                    "the state is held by a live process ({owner}): its term is its own, \
                     nothing ended in etcd"
                );
            }
            Err(LockError::Unusable(why)) => return format!("{why}: not ending any term"),
        };
        let term = match state.load() {
            Ok(Some(term)) => term,
            Ok(None) => return "no term remembered: nothing to end".into(),
            Err(e) => return format!("{e}: not ending any term"),
        };
        let work = async {
            let client = ending.etcd.connect().await?;
            let election = Election::new(
                client,
                ending.key.clone(),
                value.clone(),
                ending.request_timeout,
            );
            let observation = election.observe_once().await.map_err(|e| e.to_string())?;
            let Some(record) =
                elector_core::end_dead_term(&term, value, &observation, read, withdrawn)
            else {
                let _ = state.store(None);
                return Ok(format!(
                    "the remembered term (lease {:x}) is gone already",
                    term.id.lease
                ));
            };
            let with_record = record.is_some();
            election
                .resign(term.id.lease, Some(term.id), record, None)
                .await
                .map_err(|e| e.to_string())?;
            let _ = state.store(None);
            Ok::<_, String>(format!(
                "ended the crashed elector's term (lease {:x}){}",
                term.id.lease,
                if with_record {
                    " with a handover record: the next leader activates once this node's last \
                     slot is past"
                } else {
                    " without a record: the next leader waits its activation delay"
                }
            ))
        };
        match timeout(DEAD_TERM_BOUND, work).await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => format!("could not end the crashed elector's term: {e}"),
            Err(_) => format!(
                "could not end the crashed elector's term within {}",
                humantime::format_duration(DEAD_TERM_BOUND)
            ),
        }
    }
}

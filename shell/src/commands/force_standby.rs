//! `elector force-standby`: commands the node standby and confirms it by a read, for
//! systemd's `ExecStopPost=`; runs the fence if standby is not confirmed in time.

use super::{connect, fail};
use elector::cli::ForceStandbyArgs;
use elector::etcd::Election;
use elector::node::{NodeClient, ReqwestTransport};
use elector::state::{StateFile, state_dir};
use std::time::Duration;
use tokio::time::{Instant, timeout};

/// `elector force-standby` re-sends `activate=false` this often while reads still say active
/// (a node finishing its round, or one that restarted active meanwhile).
const FORCE_STANDBY_RESEND: Duration = Duration::from_secs(1);

/// Runs `elector force-standby`; returns the exit code.
pub async fn force_standby(args: ForceStandbyArgs) -> u8 {
    match command_standby(&args).await {
        Ok(lines) => {
            for line in lines {
                elector::outln!("elector force-standby: {line}");
            }
            0
        }
        Err(line) => fail(&format!("force-standby: {line}")),
    }
}

/// What `elector force-standby` does, also run in-process by `elector supervise`: commands
/// the node standby at once, confirms it by a read, then ends the dead term (`--state-dir`);
/// the fence runs if standby is not confirmed within `--timeout`. Returns what it did, one line
/// each, or why standby was not confirmed, with the fence's outcome.
pub(crate) async fn command_standby(args: &ForceStandbyArgs) -> Result<Vec<String>, String> {
    let transport = ReqwestTransport::new()?;
    // Only the admin endpoint is used.
    let node = NodeClient::new(
        transport,
        &args.node.iotex_admin,
        &args.node.iotex_admin,
        args.node_timeout.node_timeout,
    );
    let started = Instant::now();
    let deadline = started + args.timeout;
    let mut commanded_at: Option<Instant> = None;
    let mut last_problem = String::from("no answer yet");
    loop {
        let now = Instant::now();
        let resend = commanded_at.is_none_or(|at| now >= at + FORCE_STANDBY_RESEND);
        if resend {
            match node.set_mode(false).await {
                Ok(()) => commanded_at = Some(Instant::now()),
                Err(e) => last_problem = format!("activate=false failed: {e}"),
            }
        }
        if commanded_at.is_some() {
            match node.read_mode().await {
                Ok(false) => {
                    let confirmed = format!(
                        "node {} confirmed standby after {:.2}s",
                        args.node.iotex_admin,
                        started.elapsed().as_secs_f64()
                    );
                    return Ok(vec![confirmed, end_dead_term_after_crash(args).await]);
                }
                Ok(true) => last_problem = "the node still reads active".into(),
                Err(e) => last_problem = format!("reading the mode failed: {e}"),
            }
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        tokio::time::sleep(args.confirm_poll.confirm_poll_interval.min(deadline - now)).await;
    }
    let reason = format!(
        "node {} not confirmed standby within {} ({last_problem})",
        args.node.iotex_admin,
        humantime::format_duration(args.timeout)
    );
    if args.fence.fence_cmd.is_none() {
        return Err(format!("{reason}; no --fence-cmd configured"));
    }
    let fence = args.fence.fence();
    // Loud on failure: the node may still be active, and the operator reads this line first.
    let outcome = match fence.run(reason.clone()).await {
        Ok(done) => done,
        Err(failed) => format!("FENCE FAILED: {failed}"),
    };
    Err(format!("{reason}; {outcome}"))
}

/// After a crash, with the node confirmed standby by a read: ends the term the crashed elector
/// left in etcd, if `--state-dir` remembers it as ours (rule `end_dead_term` of the core), so
/// that the next leader need not wait for its lease to expire. Bounded; says what it did. Any
/// failure only means the next leader waits as before.
async fn end_dead_term_after_crash(args: &ForceStandbyArgs) -> String {
    let Some(dir) = state_dir(args.state_dir.as_deref()) else {
        return "no --state-dir: any term left in etcd ends with its lease".into();
    };
    let value = args.value();
    let state = StateFile::new(&dir, args.etcd.key(), &value);
    let term = match state.load() {
        Ok(Some(term)) => term,
        Ok(None) => return "no term remembered: nothing to end".into(),
        Err(e) => return format!("{e}: not ending any term"),
    };
    let work = async {
        let connection = connect(&args.etcd).await?;
        let election = Election::new(
            connection.client.clone(),
            args.etcd.key().to_string(),
            value.clone(),
            connection.request_timeout,
        );
        let observation = election.observe_once().await.map_err(|e| e.to_string())?;
        let Some(record) = elector_core::end_dead_term(&term, &value, &observation, true) else {
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
                " with a handover record: the next leader activates at once"
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

/// Longest `force-standby` spends ending a dead term in etcd.
const DEAD_TERM_BOUND: Duration = Duration::from_secs(3);

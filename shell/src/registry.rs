//! The member registry: each elector keeps one record about itself in etcd, at
//! `<key>.elector/members/<value>`, so that `elector status` can show the whole replica set,
//! including the replicas that do not campaign (unready, excluded, stuck) and the electors that
//! are gone. The record is JSON ([`MemberRecord`]).
//!
//! **A mirror, never an input.** The record is written from the elector's observable state
//! (the [`Telemetry`] snapshot the driver takes after every step of the core) by a task of its
//! own, over an etcd connection of its own: no election read ever includes it (the observer
//! even skips the re-read a record's write would cause), so it cannot influence the election or
//! the node, and a slow or failing registry write cannot delay a keep-alive or a node command.
//! Every write is bounded by the etcd request timeout; failures are logged, throttled, and
//! retried with backoff. No rule about roles or time is here: only when to copy the state out,
//! which is a throttle like the log throttle's. The simulation runs the driver without it
//! (`commands/run.rs` starts it beside the driver), so it adds nothing to what a seed replays.
//!
//! **When it is written** ([`WriteSchedule`]): at once when the role, the node's mode, the
//! readiness or the stuck reason changes, and every `--registry-refresh` (default 30 s)
//! otherwise, so that a record whose `written_at` is older than twice that says its elector is
//! silent. The snapshot is looked at once per [`MIN_WRITE_GAP`] (1 s), and never more than one
//! write happens per gap: a flapping node cannot flood etcd. A clean shutdown writes the final
//! state once (role `stopped`), waiting at most [`FINAL_WRITE_BOUND`] after the node was proven
//! standby.
//!
//! **Its lease: a separate one, not the campaign lease.** The elector drops its campaign lease
//! whenever it stops campaigning (unready, excluded, after a handover) and grants a new one to
//! campaign again; a record on it would vanish exactly when an operator needs to see why the
//! replica is not campaigning. So the registry grants its own lease of
//! [`RECORD_LEASE_REFRESHES`] refresh intervals (5 minutes by default), kept alive with one
//! keep-alive per refresh. While the elector lives its record stays; once it is gone (kill -9,
//! host down) the record stops being rewritten, `elector status` flags it `ELECTOR-SILENT`
//! after twice the refresh interval, and it expires with its lease minutes later: a record
//! whose lease is gone means the elector is gone (or was cut off from etcd that long).
//!
//! **etcd load per elector** (messages etcd receives): steady state, one Put and one
//! keep-alive per refresh: 4 per minute at the default 30 s (0.07/s, against the election's
//! 2/s). Under a flapping node, at most one Put per second (60 per minute) plus the 2
//! keep-alives, whatever the flapping rate. Other electors are not woken by record writes (the
//! observer filters them), so the load does not grow with the square of the replica count.
//! Measured by `make bench`'s footprint phase (gRPC messages etcd received, by method): one
//! idle two-replica cluster over 60 s went from 2.00 to 2.07 messages per second per elector,
//! `Put` 0.03/s (the refresh) and `LeaseKeepAlive` 1.00 to 1.04/s.

use crate::cli::{TimingValue, flag_of_field, timing_values};
use crate::etcd::Connect;
use crate::etcd::{Election, EtcdError};
use crate::logging::Every;
use crate::telemetry::{Snapshot, Telemetry};
use elector_core::{LeaseId, Timing};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{info, warn};

/// The default `--registry-refresh`: how often an unchanged record is written again.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(30);

/// How often the snapshot is looked at, and the least time between two writes: the flood
/// bound under a flapping node.
pub const MIN_WRITE_GAP: Duration = Duration::from_secs(1);

/// A record not written for this many refresh intervals belongs to a silent elector
/// (`ELECTOR-SILENT` in `elector status`): one missed refresh is tolerated.
pub const SILENT_AFTER_REFRESHES: u32 = 2;

/// The registry lease's TTL, in refresh intervals: well beyond [`SILENT_AFTER_REFRESHES`], so
/// that a dead elector stays visible as `ELECTOR-SILENT` for minutes (5 by default) before its
/// record expires, instead of vanishing from `elector status` with its candidate key.
pub const RECORD_LEASE_REFRESHES: u32 = 10;

/// First delay before retrying a failed write; it doubles up to the refresh interval.
const RETRY_FIRST: Duration = Duration::from_secs(1);

/// The longest the elector's exit waits for the registry's final write (role `stopped`):
/// the node is already proven standby then, and this is all the write may add to the
/// shutdown bound that `elector check` states.
pub const FINAL_WRITE_BOUND: Duration = Duration::from_millis(500);

/// A failing registry is logged once, then at most this often while it keeps failing.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// The record as stored at `<key>.elector/members/<value>`. Its JSON is the documented
/// schema (docs/operations.md, "The registry's keys"): fields may be added, never renamed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The replica's `--value`.
    pub value: String,
    /// The elector's role (`standby`, `candidate`, `leader`, `active`, ...).
    pub role: String,
    /// Why it has that role, in words.
    pub role_reason: String,
    /// The node's mode at the last read: `active`, `standby` or `unknown`.
    pub node_mode: String,
    /// When that read answered (wall clock, RFC 3339); null before the first.
    #[serde(default)]
    pub node_mode_read_at: Option<String>,
    /// `ready`, `unready` or `unknown`.
    pub readiness: String,
    /// Why the elector cannot reach a safe or useful state by itself; null when it can.
    #[serde(default)]
    pub stuck: Option<String>,
    /// The elector's version.
    pub version: String,
    /// The host the elector runs on.
    pub host: String,
    /// Its `/status` URL, or null with `--status-addr off`.
    #[serde(default)]
    pub status_url: Option<String>,
    /// The last role change since the elector started.
    #[serde(default)]
    pub last_transition: Option<TransitionRecord>,
    /// The registry lease this record is attached to (lowercase hex).
    pub lease: String,
    /// The campaign lease, while the elector campaigns (lowercase hex).
    #[serde(default)]
    pub candidate_lease: Option<String>,
    /// How often the record is written when nothing changes, in seconds.
    pub refresh_seconds: u64,
    /// When this record was written (wall clock, RFC 3339).
    pub written_at: String,
    /// An operator excluded this replica (`elector exclude`), as its elector last read.
    #[serde(default)]
    pub excluded: bool,
    /// The last failed call to the node's admin endpoint, unless one succeeded since: while
    /// set, `node_mode` is the last mode read, not the node's mode now.
    #[serde(default)]
    pub node_error: Option<String>,
    /// The elector's timing, which every replica must share (null: an older elector).
    #[serde(default)]
    pub timing: Option<TimingRecord>,
    /// A fingerprint of the node's `network.masterKey` (`--node-config`), never the key: two
    /// replicas with one p2p identity show the same (null without `--node-config`).
    #[serde(default)]
    pub node_key_fingerprint: Option<String>,
    /// The last role changes, oldest first (at most [`crate::telemetry::RECENT_TRANSITIONS`]):
    /// what `elector history` reads back from etcd's revisions of the record.
    #[serde(default)]
    pub recent_transitions: Vec<TransitionRecord>,
}

/// The timing an elector runs, as its record publishes it for `elector status`, `elector
/// check` and the other electors to compare: every replica must run the same.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimingRecord {
    /// `--profile` (flags may override it: the values say what runs).
    pub profile: String,
    /// Every value of the timing by the core's field name: durations in milliseconds
    /// (`lease_ttl_ms`), `max_clock_drift` as a ratio, `unready_threshold` as a count.
    pub values: BTreeMap<String, serde_json::Value>,
}

impl TimingRecord {
    pub fn new(profile: &str, timing: &Timing) -> Self {
        let values = timing_values(timing)
            .into_iter()
            .map(|(field, value)| match value {
                TimingValue::Duration(d) => (
                    format!("{field}_ms"),
                    serde_json::Value::from(d.as_millis() as u64),
                ),
                TimingValue::Ratio(r) => (field.to_owned(), serde_json::Value::from(r)),
                TimingValue::Count(n) => (field.to_owned(), serde_json::Value::from(n)),
            })
            .collect();
        TimingRecord {
            profile: profile.to_owned(),
            values,
        }
    }

    /// The timing back, or `None` if a value is missing or unreadable (another release).
    pub fn timing(&self) -> Option<Timing> {
        let ms = |field: &str| {
            self.values
                .get(&format!("{field}_ms"))
                .and_then(serde_json::Value::as_u64)
                .map(Duration::from_millis)
        };
        Some(Timing {
            lease_ttl: ms("lease_ttl")?,
            keepalive_interval: ms("keepalive_interval")?,
            etcd_request_timeout: ms("etcd_request_timeout")?,
            drain_bound: ms("drain_bound")?,
            max_clock_drift: self.values.get("max_clock_drift")?.as_f64()?,
            safety_margin: ms("safety_margin")?,
            node_timeout: ms("node_timeout")?,
            node_check_interval: ms("node_check_interval")?,
            confirm_poll_interval: ms("confirm_poll_interval")?,
            probe_interval: ms("probe_interval")?,
            unready_threshold: u32::try_from(self.values.get("unready_threshold")?.as_u64()?)
                .ok()?,
            restart_bound: ms("restart_bound")?,
            activation_delay: ms("activation_delay")?,
            handover_timeout: ms("handover_timeout")?,
            node_lost_after: ms("node_lost_after")?,
            block_interval: ms("block_interval")?,
            tolerated_overtime: ms("tolerated_overtime")?,
            unmatched_event_interval: ms("unmatched_event_interval")?,
            max_clock_offset: ms("max_clock_offset")?,
        })
    }

    /// Whether a replica running this timing may take over safely from one that runs
    /// `predecessor`: its activation delay covers what the predecessor's node may still sign
    /// after its elector died or was cut off (rules `activation_delay_covers_*`, computed with
    /// the predecessor's timing). `Some(needed)` when it does not.
    pub fn too_short_after(&self, predecessor: &TimingRecord) -> Option<Duration> {
        let ours = self.timing()?;
        let theirs = predecessor.timing()?;
        let mut needed = theirs.clone();
        // The predecessor's bounds, our clock drift and our slot clearance.
        needed.max_clock_drift = ours.max_clock_drift.max(theirs.max_clock_drift);
        let needed = needed.minimum_activation_delay();
        (ours.activation_delay < needed).then_some(needed)
    }

    /// Where this timing and `other` differ, by flag: `(flag, ours, theirs)`, values as an
    /// operator writes them (`10s`). A value only one side has (another release) counts.
    pub fn differences(&self, other: &TimingRecord) -> Vec<(String, String, String)> {
        let keys: std::collections::BTreeSet<&String> =
            self.values.keys().chain(other.values.keys()).collect();
        let mut differences = Vec::new();
        for key in keys {
            let (ours, theirs) = (self.values.get(key), other.values.get(key));
            if ours == theirs {
                continue;
            }
            let field = key.strip_suffix("_ms").unwrap_or(key);
            let flag = flag_of_field(field).map_or_else(|| field.to_owned(), str::to_owned);
            let show = |value: Option<&serde_json::Value>| match value {
                None => "unset".to_owned(),
                Some(v) if key.ends_with("_ms") => v.as_u64().map_or_else(
                    || v.to_string(),
                    |ms| humantime::format_duration(Duration::from_millis(ms)).to_string(),
                ),
                Some(v) => v.to_string(),
            };
            differences.push((flag, show(ours), show(theirs)));
        }
        differences
    }
}

/// A role change, as the record tells it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransitionRecord {
    pub from: String,
    pub to: String,
    /// Wall clock, RFC 3339.
    pub at: String,
    pub why: String,
}

/// What a record says about its elector besides the snapshot: fixed for the process.
#[derive(Clone, Debug)]
pub struct RecordContext {
    pub host: String,
    pub status_url: Option<String>,
    pub refresh: Duration,
    pub timing: TimingRecord,
    pub node_key_fingerprint: Option<String>,
}

/// The `/status` URL another host can use for a status server bound to `addr`: an unspecified
/// address (0.0.0.0, ::) is replaced by the host name.
pub fn status_url(addr: SocketAddr, host: &str) -> String {
    if addr.ip().is_unspecified() {
        format!("http://{host}:{}/status", addr.port())
    } else {
        format!("http://{addr}/status")
    }
}

/// A wall-clock time as RFC 3339 (seconds, UTC).
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// What makes a record worth writing at once when it changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watched {
    role: &'static str,
    node_mode: Option<&'static str>,
    node_unreadable: bool,
    readiness: &'static str,
    stuck: Option<String>,
    excluded: bool,
}

impl Watched {
    pub fn of(snapshot: &Snapshot) -> Self {
        Watched {
            role: snapshot.role,
            node_mode: snapshot.node_mode,
            node_unreadable: snapshot.node_error.is_some(),
            readiness: snapshot.readiness,
            stuck: snapshot.stuck.clone(),
            excluded: snapshot.excluded,
        }
    }
}

impl MemberRecord {
    /// The record for `snapshot`, written at `now` on `lease`; the node's mode was read
    /// `node_mode_age` ago.
    pub fn new(
        snapshot: &Snapshot,
        context: &RecordContext,
        lease: LeaseId,
        node_mode_age: Option<Duration>,
        now: SystemTime,
    ) -> Self {
        let transition = |t: &crate::telemetry::Transition| TransitionRecord {
            from: t.from.to_owned(),
            to: t.to.to_owned(),
            at: rfc3339(UNIX_EPOCH + Duration::from_millis(t.at_unix_ms)),
            why: t.reason.clone(),
        };
        MemberRecord {
            value: snapshot.value.clone(),
            role: snapshot.role.to_owned(),
            role_reason: snapshot.role_reason.clone(),
            node_mode: snapshot.node_mode.unwrap_or("unknown").to_owned(),
            node_mode_read_at: node_mode_age
                .and_then(|age| now.checked_sub(age))
                .map(rfc3339),
            readiness: snapshot.readiness.to_owned(),
            stuck: snapshot.stuck.clone(),
            version: snapshot.version.to_owned(),
            host: context.host.clone(),
            status_url: context.status_url.clone(),
            last_transition: snapshot.last_transition.as_ref().map(transition),
            lease: format!("{lease:x}"),
            candidate_lease: snapshot.lease_id.clone(),
            refresh_seconds: context.refresh.as_secs().max(1),
            written_at: rfc3339(now),
            excluded: snapshot.excluded,
            node_error: snapshot.node_error.clone(),
            timing: Some(context.timing.clone()),
            node_key_fingerprint: context.node_key_fingerprint.clone(),
            recent_transitions: snapshot.recent_transitions.iter().map(transition).collect(),
        }
    }
}

/// When the record is written: on a change of what [`Watched`] holds, every `refresh`
/// otherwise, never twice within [`MIN_WRITE_GAP`], and after a failure not before its retry
/// time (backoff from [`RETRY_FIRST`] doubling up to `refresh`).
#[derive(Debug)]
pub struct WriteSchedule {
    refresh: Duration,
    last_write: Option<(Instant, Watched)>,
    retry: Option<(Instant, Duration)>,
}

impl WriteSchedule {
    pub fn new(refresh: Duration) -> Self {
        WriteSchedule {
            refresh: refresh.max(MIN_WRITE_GAP),
            last_write: None,
            retry: None,
        }
    }

    /// Whether a write of a record showing `watched` is due at `now`.
    pub fn due(&self, now: Instant, watched: &Watched) -> bool {
        if let Some((at, _)) = self.retry {
            return now >= at;
        }
        match &self.last_write {
            None => true,
            Some((at, last)) => {
                now >= *at + MIN_WRITE_GAP && (last != watched || now >= *at + self.refresh)
            }
        }
    }

    /// A write of `watched` at `now` succeeded.
    pub fn written(&mut self, now: Instant, watched: Watched) {
        self.last_write = Some((now, watched));
        self.retry = None;
    }

    /// A write at `now` failed: retry after a backoff.
    pub fn failed(&mut self, now: Instant) {
        let delay = match self.retry {
            None => RETRY_FIRST,
            Some((_, last)) => (last * 2).min(self.refresh),
        };
        self.retry = Some((now + delay, delay));
    }

    /// Whether the last write attempt failed.
    pub fn failing(&self) -> bool {
        self.retry.is_some()
    }
}

/// The running registry writer; [`RegistryHandle::finish`] writes the final state.
pub struct RegistryHandle {
    stop: watch::Sender<Option<Ending>>,
    task: JoinHandle<()>,
    request_timeout: Duration,
}

impl RegistryHandle {
    /// Asks the writer for one last write of the current state (one Put, and only if it is
    /// connected and holds its lease) and waits for it, at most [`FINAL_WRITE_BOUND`] or the
    /// request timeout, whichever is shorter; gives up after that.
    pub async fn finish(self) {
        self.end(Ending::FinalWrite).await;
    }

    /// Takes the record away (revokes its lease, which deletes it), for an elector that must
    /// leave no trace: one refused for a `--key` nested in another election. Bounded as
    /// [`RegistryHandle::finish`].
    pub async fn withdraw(self) {
        self.end(Ending::Withdraw).await;
    }

    async fn end(self, ending: Ending) {
        let _ = self.stop.send(Some(ending));
        let bound = FINAL_WRITE_BOUND.min(self.request_timeout);
        if tokio::time::timeout(bound, self.task).await.is_err() {
            warn!(
                "the registry's final write did not finish in time; the record expires by itself"
            );
        }
    }
}

/// How the writer ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// One last record of the final state.
    FinalWrite,
    /// No record at all.
    Withdraw,
}

/// Starts the registry writer for the elector at `key` with identity `value`, over its own
/// etcd client from `etcd`, copying `status` into its record.
pub fn spawn<E: Connect>(
    etcd: E,
    key: String,
    value: String,
    request_timeout: Duration,
    telemetry: Arc<Telemetry>,
    context: RecordContext,
) -> RegistryHandle {
    let (stop, stop_rx) = watch::channel(None);
    let writer = Writer {
        key,
        value,
        request_timeout,
        telemetry,
        context,
        election: None,
        lease: None,
        last_keep_alive: None,
        failure_log: Every::new(FAILURE_LOG_EVERY),
        last_peer_read: None,
        timing_said: Vec::new(),
    };
    let task = tokio::spawn(writer.run(etcd, stop_rx));
    RegistryHandle {
        stop,
        task,
        request_timeout,
    }
}

struct Writer {
    key: String,
    value: String,
    request_timeout: Duration,
    telemetry: Arc<Telemetry>,
    context: RecordContext,
    election: Option<Election>,
    lease: Option<LeaseId>,
    last_keep_alive: Option<Instant>,
    failure_log: Every,
    /// When the other replicas' records were last read (their timings compared with ours).
    last_peer_read: Option<Instant>,
    /// The timing differences last logged, to log a change once.
    timing_said: Vec<String>,
}

impl Writer {
    async fn run<E: Connect>(mut self, etcd: E, mut stop: watch::Receiver<Option<Ending>>) {
        let mut schedule = WriteSchedule::new(self.context.refresh);
        let mut tick = tokio::time::interval(MIN_WRITE_GAP);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let ending = tokio::select! {
                biased;
                changed = stop.changed() => match changed {
                    Ok(()) => *stop.borrow(),
                    // The handle is gone without saying how: as at a normal exit.
                    Err(_) => Some(Ending::FinalWrite),
                },
                _ = tick.tick() => None,
            };
            match ending {
                Some(Ending::FinalWrite) => return self.final_write().await,
                Some(Ending::Withdraw) => return self.withdraw().await,
                None => {}
            }
            let Some(snapshot) = self.telemetry.snapshot() else {
                continue;
            };
            let watched = Watched::of(&snapshot);
            let now = Instant::now();
            if !schedule.due(now, &watched) {
                continue;
            }
            let outcome = match self.connected(&etcd).await {
                Ok(election) => self.write(&election, &snapshot).await,
                Err(reason) => Err(reason),
            };
            match outcome {
                Ok(()) => {
                    if schedule.failing() {
                        info!(key = %self.key, "registry record written again");
                    }
                    schedule.written(now, watched);
                    if self
                        .last_peer_read
                        .is_none_or(|at| now + MIN_WRITE_GAP >= at + self.context.refresh)
                    {
                        self.last_peer_read = Some(now);
                        self.compare_timings().await;
                    }
                }
                Err(reason) => {
                    schedule.failed(now);
                    self.log_failure(now, &reason);
                }
            }
        }
    }

    /// The last record, as the elector exits: one Put on the lease it holds, nothing if it has
    /// no connection or no lease (no connect, no grant at exit).
    async fn final_write(&self) {
        let (Some(election), Some(lease), Some(snapshot)) =
            (&self.election, self.lease, self.telemetry.snapshot())
        else {
            return;
        };
        let record = MemberRecord::new(
            &snapshot,
            &self.context,
            lease,
            self.telemetry.metrics.node_mode_age(),
            SystemTime::now(),
        );
        if let Ok(json) = serde_json::to_string(&record) {
            let _ = election.put_member(json, lease).await;
        }
    }

    /// Revokes the record's lease, which deletes the record; nothing without a lease.
    async fn withdraw(&self) {
        if let (Some(election), Some(lease)) = (&self.election, self.lease) {
            let _ = election.revoke(lease).await;
        }
    }

    /// The registry's own election handle, connecting once (bounded) if need be.
    async fn connected<E: Connect>(&mut self, etcd: &E) -> Result<Election, String> {
        if let Some(election) = &self.election {
            return Ok(election.clone());
        }
        let client = tokio::time::timeout(self.request_timeout, etcd.connect())
            .await
            .map_err(|_| "connecting to etcd timed out".to_owned())??;
        let election = Election::new(
            client,
            self.key.clone(),
            self.value.clone(),
            self.request_timeout,
        );
        self.election = Some(election.clone());
        Ok(election)
    }

    /// Keeps the registry lease alive (granting one if there is none or it expired), then
    /// writes the record.
    async fn write(&mut self, election: &Election, snapshot: &Snapshot) -> Result<(), String> {
        let ttl = self.context.refresh * RECORD_LEASE_REFRESHES;
        let now = Instant::now();
        let mut lease = self.lease;
        if let Some(id) = lease {
            // Every refresh: the writes come on the schedule's one-second ticks, a little
            // earlier than a refresh after the last renewal's own clock reading.
            let keep_alive_due = self
                .last_keep_alive
                .is_none_or(|at| now + MIN_WRITE_GAP >= at + self.context.refresh);
            if keep_alive_due {
                // A stream of its own per renewal, closed after it (see
                // `Election::renew_once`: a kept stream got the connection closed by etcd).
                match election.renew_once(id).await {
                    Ok(false) => lease = None,
                    Ok(true) => self.last_keep_alive = Some(now),
                    Err(error) => return Err(error.to_string()),
                }
            }
        }
        let lease = match lease {
            Some(id) => id,
            None => {
                let (id, _) = election.grant(ttl).await.map_err(|e| e.to_string())?;
                self.last_keep_alive = Some(now);
                id
            }
        };
        self.lease = Some(lease);
        let record = MemberRecord::new(
            snapshot,
            &self.context,
            lease,
            self.telemetry.metrics.node_mode_age(),
            SystemTime::now(),
        );
        let json = serde_json::to_string(&record).map_err(|e| e.to_string())?;
        match election.put_member(json, lease).await {
            Ok(()) => Ok(()),
            Err(error) => {
                if lease_gone(&error) {
                    self.lease = None;
                }
                Err(error.to_string())
            }
        }
    }

    /// Reads the other replicas' records (one range read, once per refresh) and compares
    /// their timing with ours: `elector_timing_mismatch` counts those that differ, and a
    /// change of the differences is logged once (a warning while any differ).
    async fn compare_timings(&mut self) {
        let Some(election) = self.election.clone() else {
            return;
        };
        let Ok(entries) = election.list_members().await else {
            // Best effort, like the writes: the next refresh reads again.
            return;
        };
        let ours = &self.context.timing;
        let mut differing = Vec::new();
        for entry in entries {
            let Ok(record) = serde_json::from_slice::<MemberRecord>(&entry.value) else {
                continue;
            };
            let Some(theirs) = record.timing.as_ref() else {
                continue;
            };
            if record.value == self.value {
                continue;
            }
            let differences = ours.differences(theirs);
            if !differences.is_empty() {
                let listed: Vec<String> = differences
                    .iter()
                    .map(|(flag, ours, theirs)| format!("{flag} {theirs} (ours {ours})"))
                    .collect();
                differing.push(format!("{}: {}", record.value, listed.join(", ")));
            }
        }
        self.telemetry
            .metrics
            .set_timing_mismatch(differing.len() as u64);
        if differing == self.timing_said {
            return;
        }
        if differing.is_empty() {
            info!("every registered replica runs this elector's timing again");
        } else {
            warn!(
                differing = %differing.join("; "),
                "registered replicas run another timing than this elector: every replica of \
                 an election must run the same timing flags (the activation delay of one \
                 covers the others' leases); `elector status` names them"
            );
        }
        self.timing_said = differing;
    }

    fn log_failure(&mut self, now: Instant, reason: &str) {
        if self.failure_log.due(now).is_some() {
            warn!(
                key = %self.key,
                %reason,
                "cannot write the registry record (status only; the election is unaffected); \
                 retrying"
            );
        }
    }
}

/// Whether a failed Put says its lease no longer exists: a new one is granted next time.
fn lease_gone(error: &EtcdError) -> bool {
    error.to_string().contains("lease not found")
}

#[cfg(test)]
mod tests;

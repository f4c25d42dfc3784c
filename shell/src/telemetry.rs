//! What an operator can see of this process: `/status` (JSON), `/metrics` (Prometheus text) and
//! `/healthz`, served by the status server on `--status-addr`. The driver updates a snapshot
//! after every step of the core; the server only reads it. (`elector status`, the replica set's
//! view from etcd, is `commands::status`.)
//!
//! In files: this one holds the latest [`Snapshot`] and the [`Metrics`] ([`Telemetry`]);
//! [`metrics`] the counters, gauges and histograms the driver and the etcd adapter record;
//! [`exposition`] the Prometheus text (encoded by the `prometheus` crate); [`server`] the status
//! server.

mod exposition;
mod metrics;
mod server;

pub use metrics::{CallHealth, DEFAULT_ETCD_SILENCE_BOUND, LATENCY_BUCKETS, Metrics, NodeCallKind};
pub use server::{bind, serve};

use elector_core::{Elector, Instant, Readiness, Role};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The driver loop runs at least this often, even with nothing to do, so that its age tells a
/// live loop from a stalled one soon: the watchdog pings (systemd, `elector supervise`, the
/// watcher) stop when it exceeds the binary's loop stall bound.
pub const LOOP_HEARTBEAT: Duration = Duration::from_millis(200);

/// `/healthz` fails when the driver loop has not run for this long. The core wakes at least
/// once a second, so this only trips when the loop is stuck.
pub const STALL_AFTER: Duration = Duration::from_secs(5);

/// One candidate, as shown in `/status`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CandidateView {
    pub value: String,
    pub lease: String,
    pub create_revision: i64,
}

/// This replica's exclusion (`elector exclude`), as shown in `/status`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ExclusionView {
    /// `user@host` of whoever excluded it.
    pub by: String,
    /// Since when: the RFC 3339 wall-clock time `elector exclude` stored.
    pub since: String,
    /// Why, as the operator said; may be empty.
    pub reason: String,
}

/// The last role change.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Transition {
    pub from: &'static str,
    pub to: &'static str,
    pub reason: String,
    pub at_unix_ms: u64,
}

/// How many role changes `/status` and the registry record keep (`recent_transitions`):
/// enough for one handover's changes on each side, so that `elector history` misses none of
/// them between two record writes.
pub const RECENT_TRANSITIONS: usize = 8;

/// The body of `GET /status`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Snapshot {
    /// The elector's version (`elector --version`).
    pub version: &'static str,
    pub role: &'static str,
    pub role_reason: String,
    pub key: String,
    pub value: String,
    /// Value of the leading candidate, if any (ours or another replica's).
    pub leader: Option<String>,
    /// Our candidate key, when we are a candidate.
    pub candidate_key: Option<String>,
    pub lease_id: Option<String>,
    /// Time left until our lease deadline, on our clock.
    pub lease_deadline_in_ms: Option<u64>,
    pub step_down_deadline_in_ms: Option<u64>,
    /// The last mode read from the node: `active`, `standby` or null.
    pub node_mode: Option<&'static str>,
    /// How long ago that read answered, in milliseconds; null before the first.
    pub node_mode_read_ms_ago: Option<u64>,
    pub node_standby_confirmed: bool,
    /// Standby confirmed by a read, or the fence reported success: the lead may be given away.
    pub node_proven_standby: bool,
    pub node_active_commanded: bool,
    /// Why the leader counts its node as lost (not shown active for `--node-lost-after`).
    pub node_lost: Option<String>,
    /// Why this replica cannot reach a safe or useful state by itself; null when it can.
    pub stuck: Option<String>,
    /// SIGTERM was received; the elector exits once the node is proven standby.
    pub shutting_down: bool,
    /// An operator excluded this replica (`elector exclude`): it does not campaign.
    pub excluded: bool,
    /// Who excluded it, since when and why; null when not excluded.
    pub exclusion: Option<ExclusionView>,
    pub readiness: &'static str,
    /// The etcd revision of the last read of the election; null before the first.
    pub election_revision: Option<i64>,
    pub candidates: Vec<CandidateView>,
    /// An etcd call succeeded recently (see [`DEFAULT_ETCD_SILENCE_BOUND`]).
    pub etcd_connected: bool,
    /// The last failed etcd call, unless one succeeded since.
    pub etcd_error: Option<String>,
    /// The last failed call to the node's admin endpoint, unless one succeeded since.
    pub node_error: Option<String>,
    /// The last failed readiness probe, unless one succeeded since.
    pub readiness_error: Option<String>,
    pub last_transition: Option<Transition>,
    /// The last [`RECENT_TRANSITIONS`] role changes, oldest first.
    pub recent_transitions: Vec<Transition>,
}

/// Shared between the driver (writer) and the status server (reader).
pub struct Telemetry {
    pub metrics: Arc<Metrics>,
    key: String,
    value: String,
    inner: Mutex<Inner>,
}

struct Inner {
    snapshot: Option<Snapshot>,
    last_role: Option<Role>,
    last_transition: Option<Transition>,
    recent_transitions: std::collections::VecDeque<Transition>,
    last_loop: tokio::time::Instant,
}
impl Telemetry {
    pub fn new(key: &str, value: &str) -> Arc<Self> {
        Arc::new(Telemetry {
            metrics: Arc::new(Metrics::default()),
            key: key.to_string(),
            value: value.to_string(),
            inner: Mutex::new(Inner {
                snapshot: None,
                last_role: None,
                last_transition: None,
                recent_transitions: std::collections::VecDeque::new(),
                last_loop: tokio::time::Instant::now(),
            }),
        })
    }

    /// Takes a new snapshot of the core; called by the driver after every step.
    pub fn update(&self, core: &Elector, now: Instant) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.last_loop = tokio::time::Instant::now();
        let role = core.role();
        if inner.last_role.is_some_and(|r| r != role) {
            let transition = Transition {
                from: inner.last_role.map(Role::as_str).unwrap_or("none"),
                to: role.as_str(),
                reason: core.role_reason().to_string(),
                at_unix_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
            };
            if inner.recent_transitions.len() == RECENT_TRANSITIONS {
                inner.recent_transitions.pop_front();
            }
            inner.recent_transitions.push_back(transition.clone());
            inner.last_transition = Some(transition);
        }
        inner.last_role = Some(role);
        let left =
            |at: Option<Instant>| at.map(|at| at.saturating_duration_since(now).as_millis() as u64);
        let candidates = core
            .observation()
            .map(|o| {
                o.candidates
                    .iter()
                    .map(|c| CandidateView {
                        value: c.value.clone(),
                        lease: format!("{:x}", c.id.lease),
                        create_revision: c.id.create_revision,
                    })
                    .collect()
            })
            .unwrap_or_default();
        inner.snapshot = Some(Snapshot {
            version: crate::VERSION,
            role: role.as_str(),
            role_reason: core.role_reason().to_string(),
            key: self.key.clone(),
            value: self.value.clone(),
            leader: core.leader_value().map(str::to_string),
            candidate_key: core
                .candidate()
                .map(|c| format!("{}/{:x}", self.key, c.lease)),
            lease_id: core.lease().map(|l| format!("{l:x}")),
            lease_deadline_in_ms: left(core.lease_deadline()),
            step_down_deadline_in_ms: left(core.step_down_deadline()),
            node_mode: core
                .node_last_read()
                .map(|a| if a { "active" } else { "standby" }),
            node_mode_read_ms_ago: None,
            node_standby_confirmed: core.node_standby_confirmed(),
            node_proven_standby: core.node_proven_standby(),
            node_lost: core.node_lost().map(str::to_string),
            stuck: core.stuck().map(str::to_string),
            shutting_down: core.shutting_down(),
            excluded: core.exclusion().is_some(),
            exclusion: core.exclusion().map(|e| ExclusionView {
                by: e.by.clone(),
                since: e.at.clone(),
                reason: e.reason.clone(),
            }),
            node_active_commanded: core.node_active_commanded(),
            readiness: match core.readiness() {
                Readiness::Unknown => "unknown",
                Readiness::Ready => "ready",
                Readiness::Unready => "unready",
            },
            election_revision: core.observation().map(|o| o.revision),
            candidates,
            etcd_connected: self.metrics.etcd_connected(),
            etcd_error: self.metrics.etcd.error(),
            node_error: self.metrics.node.error(),
            readiness_error: self.metrics.probe.error(),
            last_transition: inner.last_transition.clone(),
            recent_transitions: inner.recent_transitions.iter().cloned().collect(),
        });
    }

    /// The latest snapshot (None before the driver's first step), with etcd's connection
    /// judged now: the driver publishes only when it steps, and with etcd silent it may not
    /// step for a while, so a published `etcd_connected` would say what `/metrics` no longer
    /// says.
    pub fn snapshot(&self) -> Option<Snapshot> {
        let mut snapshot = self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .snapshot
            .clone()?;
        snapshot.etcd_connected = self.metrics.etcd_connected();
        snapshot.etcd_error = self.metrics.etcd.error();
        // Judged now too: the age of the last read, not of the last step.
        snapshot.node_mode_read_ms_ago = self
            .metrics
            .node_mode_age()
            .map(|age| age.as_millis() as u64);
        Some(snapshot)
    }

    /// True when the driver loop ran within [`STALL_AFTER`].
    pub fn healthy(&self) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.last_loop.elapsed() < STALL_AFTER
    }

    /// How long ago the driver loop last ran: the systemd watchdog pings only while it is short.
    pub fn loop_age(&self) -> Duration {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.last_loop.elapsed()
    }
}

#[cfg(test)]
mod tests;

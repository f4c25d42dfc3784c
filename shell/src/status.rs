//! What an operator can see: `/status` (JSON), `/metrics` (Prometheus text) and `/healthz`.
//! The driver updates a snapshot after every step of the core; the server only reads it.

use elector_core::{Elector, Instant, Readiness, Role};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tracing::warn;

/// `/healthz` fails when the driver loop has not run for this long. The core wakes at least
/// once a second, so this only trips when the loop is stuck.
pub const STALL_AFTER: Duration = Duration::from_secs(5);

const ROLES: [Role; 8] = [
    Role::Starting,
    Role::Standby,
    Role::Candidate,
    Role::Leader,
    Role::Active,
    Role::SteppingDown,
    Role::Resigning,
    Role::Stopped,
];

/// How long after the last successful etcd call `elector_etcd_connected` (and `/status`'s
/// `etcd_connected`) still say 1, unless set with [`Metrics::set_etcd_silence_bound`]
/// ([`etcd_silence_bound`] of the default 1 s request timeout): every elector makes at least
/// one etcd call per [`crate::etcd::OBSERVE_RECHECK_PERIOD`] (the election re-read), each
/// bounded by the request timeout, so a longer silence means etcd does not answer.
pub const DEFAULT_ETCD_SILENCE_BOUND: Duration = Duration::from_secs(4);

/// The silence bound for a request timeout: one election re-read period plus two request
/// timeouts (the re-read, and a keep-alive or watch call in flight when etcd went away).
pub fn etcd_silence_bound(etcd_request_timeout: Duration) -> Duration {
    crate::etcd::OBSERVE_RECHECK_PERIOD + 2 * etcd_request_timeout
}

/// Upper bounds of the latency histograms, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A Prometheus histogram over [`LATENCY_BUCKETS`].
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last one is above every bound.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        let index = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(value.as_micros() as u64, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// `_bucket`, `_sum` and `_count` samples, with `labels` added to each.
    fn render(&self, out: &mut String, name: &str, labels: &[(&str, &str)]) {
        let mut cumulative = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = LATENCY_BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            sample(out, &format!("{name}_bucket"), &with_le, cumulative as f64);
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        sample(out, &format!("{name}_sum"), labels, sum);
        // The +Inf bucket, so that a scrape never sees the two disagree.
        sample(out, &format!("{name}_count"), labels, cumulative as f64);
    }
}

/// What is known of the calls to one peer (etcd, the node's admin endpoint, its probe):
/// when one last succeeded, and the last failure since. Recorded by the driver and the etcd
/// adapter as calls end; read by `/status`, `/metrics` and systemd's `STATUS=`.
#[derive(Default)]
pub struct CallHealth {
    inner: Mutex<HealthInner>,
}

#[derive(Default)]
struct HealthInner {
    last_ok: Option<tokio::time::Instant>,
    error: Option<String>,
}

impl CallHealth {
    pub fn succeeded(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.last_ok = Some(tokio::time::Instant::now());
        inner.error = None;
    }
    pub fn failed(&self, reason: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.error = Some(reason.to_string());
    }
    /// Time since the last success; `None` before the first.
    pub fn since_success(&self) -> Option<Duration> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.last_ok.map(|at| at.elapsed())
    }
    /// The last failure, unless a call succeeded after it.
    pub fn error(&self) -> Option<String> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.error.clone()
    }
}

/// The node calls timed in `elector_node_call_latency_seconds{call}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeCallKind {
    Activate,
    Deactivate,
    ReadMode,
    Readiness,
}

impl NodeCallKind {
    const ALL: [NodeCallKind; 4] = [
        NodeCallKind::Activate,
        NodeCallKind::Deactivate,
        NodeCallKind::ReadMode,
        NodeCallKind::Readiness,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            NodeCallKind::Activate => "activate",
            NodeCallKind::Deactivate => "deactivate",
            NodeCallKind::ReadMode => "read_mode",
            NodeCallKind::Readiness => "readiness",
        }
    }
}

/// Counters, gauges and histograms, updated from any task.
pub struct Metrics {
    transitions: AtomicU64,
    keepalive_latency: Histogram,
    keepalive_last_micros: AtomicU64,
    keepalive_failures: AtomicU64,
    node_latency: [Histogram; 4],
    node_failures: AtomicU64,
    fences: AtomicU64,
    fence_successes: AtomicU64,
    fence_failures: AtomicU64,
    standby_unexpected: AtomicU64,
    /// Every etcd call of the election (keep-alives, reads, writes, the connection check).
    pub etcd: Arc<CallHealth>,
    /// The node's admin endpoint (`/ha`).
    pub node: CallHealth,
    /// The node's readiness probe.
    pub probe: CallHealth,
    etcd_silence_bound_micros: AtomicU64,
    /// 0 unknown, 1 standby, 2 active.
    node_mode: AtomicU64,
    node_mode_read_at: Mutex<Option<tokio::time::Instant>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            transitions: AtomicU64::new(0),
            keepalive_latency: Histogram::default(),
            keepalive_last_micros: AtomicU64::new(0),
            keepalive_failures: AtomicU64::new(0),
            node_latency: std::array::from_fn(|_| Histogram::default()),
            node_failures: AtomicU64::new(0),
            fences: AtomicU64::new(0),
            fence_successes: AtomicU64::new(0),
            fence_failures: AtomicU64::new(0),
            standby_unexpected: AtomicU64::new(0),
            etcd: Arc::default(),
            node: CallHealth::default(),
            probe: CallHealth::default(),
            etcd_silence_bound_micros: AtomicU64::new(DEFAULT_ETCD_SILENCE_BOUND.as_micros() as u64),
            node_mode: AtomicU64::new(0),
            node_mode_read_at: Mutex::new(None),
        }
    }
}

impl Metrics {
    pub fn count_transition(&self) {
        self.transitions.fetch_add(1, Ordering::Relaxed);
    }
    pub fn observe_keepalive(&self, latency: Duration) {
        self.keepalive_latency.observe(latency);
        self.keepalive_last_micros
            .store(latency.as_micros() as u64, Ordering::Relaxed);
    }
    pub fn count_keepalive_failure(&self) {
        self.keepalive_failures.fetch_add(1, Ordering::Relaxed);
    }
    /// A node call ended (answered or not) after `latency`.
    pub fn observe_node_call(&self, kind: NodeCallKind, latency: Duration) {
        let index = NodeCallKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_default();
        self.node_latency[index].observe(latency);
    }
    pub fn count_node_failure(&self) {
        self.node_failures.fetch_add(1, Ordering::Relaxed);
    }
    pub fn count_fence(&self) {
        self.fences.fetch_add(1, Ordering::Relaxed);
    }
    pub fn count_fence_outcome(&self, success: bool) {
        match success {
            true => self.fence_successes.fetch_add(1, Ordering::Relaxed),
            false => self.fence_failures.fetch_add(1, Ordering::Relaxed),
        };
    }
    pub fn count_standby_unexpected(&self) {
        self.standby_unexpected.fetch_add(1, Ordering::Relaxed);
    }
    /// How long etcd may stay silent before it counts as not connected (see
    /// [`DEFAULT_ETCD_SILENCE_BOUND`]).
    pub fn set_etcd_silence_bound(&self, bound: Duration) {
        self.etcd_silence_bound_micros
            .store(bound.as_micros() as u64, Ordering::Relaxed);
    }
    /// Whether an etcd call succeeded within the silence bound.
    pub fn etcd_connected(&self) -> bool {
        let bound = Duration::from_micros(self.etcd_silence_bound_micros.load(Ordering::Relaxed));
        self.etcd.since_success().is_some_and(|age| age <= bound)
    }
    /// A read of the node's mode answered.
    pub fn set_node_mode(&self, active: bool) {
        self.node_mode
            .store(if active { 2 } else { 1 }, Ordering::Relaxed);
        *self
            .node_mode_read_at
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(tokio::time::Instant::now());
    }
    /// Time since the last answered read of the node's mode.
    pub fn node_mode_age(&self) -> Option<Duration> {
        self.node_mode_read_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|at| at.elapsed())
    }
    pub fn transitions(&self) -> u64 {
        self.transitions.load(Ordering::Relaxed)
    }
    pub fn fences(&self) -> u64 {
        self.fences.load(Ordering::Relaxed)
    }
}

/// One candidate, as shown in `/status`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CandidateView {
    pub value: String,
    pub lease: String,
    pub create_revision: i64,
}

/// The last role change.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Transition {
    pub from: &'static str,
    pub to: &'static str,
    pub reason: String,
    pub at_unix_ms: u64,
}

/// The body of `GET /status`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Snapshot {
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
}

/// Shared between the driver (writer) and the status server (reader).
pub struct Status {
    pub metrics: Arc<Metrics>,
    key: String,
    value: String,
    inner: Mutex<Inner>,
}

struct Inner {
    snapshot: Option<Snapshot>,
    last_role: Option<Role>,
    last_transition: Option<Transition>,
    last_loop: tokio::time::Instant,
}

impl Status {
    pub fn new(key: &str, value: &str) -> Arc<Self> {
        Arc::new(Status {
            metrics: Arc::new(Metrics::default()),
            key: key.to_string(),
            value: value.to_string(),
            inner: Mutex::new(Inner {
                snapshot: None,
                last_role: None,
                last_transition: None,
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
            inner.last_transition = Some(Transition {
                from: inner.last_role.map(Role::as_str).unwrap_or("none"),
                to: role.as_str(),
                reason: core.role_reason().to_string(),
                at_unix_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
            });
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
            node_standby_confirmed: core.node_standby_confirmed(),
            node_proven_standby: core.node_proven_standby(),
            node_lost: core.node_lost().map(str::to_string),
            stuck: core.stuck().map(str::to_string),
            shutting_down: core.shutting_down(),
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
        });
    }

    /// The latest snapshot (None before the driver's first step).
    pub fn snapshot(&self) -> Option<Snapshot> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .snapshot
            .clone()
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

    /// Prometheus text exposition (format 0.0.4).
    pub fn render_metrics(&self) -> String {
        let m = &self.metrics;
        let snapshot = self.snapshot();
        let role = snapshot.as_ref().map(|s| s.role);
        let mut out = String::new();
        let o = &mut out;
        family(
            o,
            "elector_info",
            "gauge",
            "Always 1: this elector's key, value and version.",
        );
        sample(
            o,
            "elector_info",
            &[
                ("key", &self.key),
                ("value", &self.value),
                ("version", env!("CARGO_PKG_VERSION")),
            ],
            1.0,
        );
        family(
            o,
            "elector_role",
            "gauge",
            "Current role of this elector (1 for the current role).",
        );
        for r in ROLES {
            let on = f64::from(u8::from(role == Some(r.as_str())));
            sample(o, "elector_role", &[("role", r.as_str())], on);
        }
        let counter = |o: &mut String, name: &str, help: &str, value: u64| {
            family(o, name, "counter", help);
            sample(o, name, &[], value as f64);
        };
        let gauge = |o: &mut String, name: &str, help: &str, value: f64| {
            family(o, name, "gauge", help);
            sample(o, name, &[], value);
        };
        counter(
            o,
            "elector_role_transitions_total",
            "Role changes since start.",
            m.transitions(),
        );
        family(
            o,
            "elector_keepalive_latency_seconds",
            "histogram",
            "Round trip of acknowledged keep-alives.",
        );
        m.keepalive_latency
            .render(o, "elector_keepalive_latency_seconds", &[]);
        gauge(
            o,
            "elector_keepalive_last_latency_seconds",
            "Round trip of the last acknowledged keep-alive.",
            m.keepalive_last_micros.load(Ordering::Relaxed) as f64 / 1e6,
        );
        counter(
            o,
            "elector_keepalive_failures_total",
            "Keep-alives that failed or timed out.",
            m.keepalive_failures.load(Ordering::Relaxed),
        );
        family(
            o,
            "elector_node_call_latency_seconds",
            "histogram",
            "Duration of calls to the node (failed and timed-out ones included), by call.",
        );
        for (kind, histogram) in NodeCallKind::ALL.iter().zip(&m.node_latency) {
            histogram.render(
                o,
                "elector_node_call_latency_seconds",
                &[("call", kind.as_str())],
            );
        }
        counter(
            o,
            "elector_node_call_failures_total",
            "Node admin calls that failed, timed out or got an unexpected answer.",
            m.node_failures.load(Ordering::Relaxed),
        );
        counter(
            o,
            "elector_fence_actions_total",
            "Fence actions started.",
            m.fences(),
        );
        family(
            o,
            "elector_fence_results_total",
            "counter",
            "Fence actions finished, by result.",
        );
        for (result, count) in [
            ("success", &m.fence_successes),
            ("failure", &m.fence_failures),
        ] {
            let count = count.load(Ordering::Relaxed) as f64;
            sample(
                o,
                "elector_fence_results_total",
                &[("result", result)],
                count,
            );
        }
        counter(
            o,
            "elector_node_standby_unexpected_total",
            "Reads of standby from the leader's node after it was commanded active.",
            m.standby_unexpected.load(Ordering::Relaxed),
        );
        let flag = |on: bool| f64::from(u8::from(on));
        gauge(
            o,
            "elector_stuck",
            "1 while this replica cannot reach a safe or useful state by itself (see /status).",
            flag(snapshot.as_ref().is_some_and(|s| s.stuck.is_some())),
        );
        gauge(
            o,
            "elector_node_lost",
            "1 while this leader's node has not read active for --node-lost-after.",
            flag(snapshot.as_ref().is_some_and(|s| s.node_lost.is_some())),
        );
        gauge(
            o,
            "elector_etcd_connected",
            "1 while an etcd call succeeded within the last few seconds (see docs/operations.md).",
            flag(m.etcd_connected()),
        );
        if let Some(age) = m.etcd.since_success() {
            gauge(
                o,
                "elector_etcd_last_success_age_seconds",
                "Time since an etcd call last succeeded.",
                age.as_secs_f64(),
            );
        }
        if let Some(snapshot) = snapshot.as_ref().filter(|s| s.election_revision.is_some()) {
            gauge(
                o,
                "elector_candidates",
                "Candidates in the election at the last read (ours, other replicas, Go electors).",
                snapshot.candidates.len() as f64,
            );
        }
        gauge(
            o,
            "elector_node_ready",
            "1 while the node's readiness probe passes, 0 otherwise (also before the first probe).",
            flag(snapshot.as_ref().is_some_and(|s| s.readiness == "ready")),
        );
        let mode = match m.node_mode.load(Ordering::Relaxed) {
            2 => 1.0,
            1 => 0.0,
            _ => -1.0,
        };
        gauge(
            o,
            "elector_node_active",
            "Last mode read from the node: 1 active, 0 standby, -1 unknown.",
            mode,
        );
        if let Some(age) = m.node_mode_age() {
            gauge(
                o,
                "elector_node_mode_age_seconds",
                "Time since the node's mode was last read (elector_node_active's age).",
                age.as_secs_f64(),
            );
        }
        if let Some(ms) = snapshot.as_ref().and_then(|s| s.lease_deadline_in_ms) {
            gauge(
                o,
                "elector_lease_remaining_seconds",
                "Time left until the lease deadline.",
                ms as f64 / 1e3,
            );
        }
        process_metrics(o);
        out
    }
}

/// `# HELP` and `# TYPE` of a metric family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One sample line, labels escaped.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, text)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let text = text
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = write!(out, "{label}=\"{text}\"");
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", number(value));
}

/// A sample value as Prometheus writes it.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        value.to_string()
    }
}

/// The clock tick of `/proc/self/stat`'s CPU times: `USER_HZ`, 100 on every Linux ABI (the
/// Prometheus Go client's procfs assumes the same).
const USER_HZ: f64 = 100.0;

/// The standard `process_*` metrics, from `/proc/self` (omitted where it cannot be read).
fn process_metrics(out: &mut String) {
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    // Fields after the command name, which is in parentheses and may hold anything.
    let fields: Vec<&str> = stat
        .as_deref()
        .and_then(|s| s.rsplit_once(')'))
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    if let (Some(user), Some(system)) = (field(14), field(15)) {
        family(
            out,
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
        );
        sample(
            out,
            "process_cpu_seconds_total",
            &[],
            (user + system) / USER_HZ,
        );
    }
    let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|t| t.trim().parse::<f64>().ok())
    });
    if let (Some(start), Some(boot)) = (field(22), boot_time) {
        family(
            out,
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
        );
        sample(
            out,
            "process_start_time_seconds",
            &[],
            boot + start / USER_HZ,
        );
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kilobytes = |key: &str| {
        status.lines().find_map(|l| {
            l.strip_prefix(key).and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
        })
    };
    if let Some(rss) = kilobytes("VmRSS:") {
        family(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size, in bytes.",
        );
        sample(out, "process_resident_memory_bytes", &[], rss * 1024.0);
    }
    if let Some(size) = kilobytes("VmSize:") {
        family(
            out,
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size, in bytes.",
        );
        sample(out, "process_virtual_memory_bytes", &[], size * 1024.0);
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        family(out, "process_open_fds", "gauge", "Open file descriptors.");
        sample(out, "process_open_fds", &[], entries.count() as f64);
    }
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|soft| soft.parse::<f64>().ok())
        });
    if let Some(max) = max_fds {
        family(
            out,
            "process_max_fds",
            "gauge",
            "Limit of open file descriptors.",
        );
        sample(out, "process_max_fds", &[], max);
    }
}

/// Serves `/status`, `/metrics` and `/healthz` on `addr` until the task is dropped.
pub async fn serve(listener: TcpListener, status: Arc<Status>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                warn!("status server: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let status = status.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let status = status.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(route(
                            &status,
                            request.method(),
                            request.uri().path(),
                        ))
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Binds the status server's address, with a clear error.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on --status-addr {addr}: {e}"))
}

/// Answers one request. Only `GET` and `HEAD` (hyper leaves the body out) are served; other
/// methods get 405 with `Allow: GET, HEAD`: nothing here changes anything.
fn route(status: &Status, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let reply = |code: StatusCode, kind: &str, body: String| {
        Response::builder()
            .status(code)
            .header("content-type", kind)
            .body(Full::new(Bytes::from(body)))
            .expect("static response parts are valid")
    };
    if method != Method::GET && method != Method::HEAD {
        let mut response = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            format!("{method} is not allowed: the status server only serves GET and HEAD\n"),
        );
        response.headers_mut().insert(
            "allow",
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return response;
    }
    match path {
        "/status" => match status.snapshot() {
            Some(s) => reply(
                StatusCode::OK,
                "application/json",
                serde_json::to_string_pretty(&s).unwrap_or_default() + "\n",
            ),
            None => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "starting\n".into(),
            ),
        },
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            status.render_metrics(),
        ),
        "/healthz" => {
            if status.healthy() {
                reply(StatusCode::OK, "text/plain", "ok\n".into())
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "driver loop stalled\n".into(),
                )
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /status, /metrics or /healthz\n".into(),
        ),
    }
}

/// Labels of a sample: name and value, in order.
pub type Labels = Vec<(String, String)>;

/// One sample of the text exposition: name, labels, value.
pub type Sample = (String, Labels, f64);

/// Reads a Prometheus text exposition strictly: every line is a `# HELP`, a `# TYPE` or a
/// sample (`name{label="value",...} number`) of a family whose `# TYPE` came first, declared
/// once. For tests (here and against a running elector), and for tools.
pub fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let bad = |why: &str| format!("line {}: {why}: {line:?}", number + 1);
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("HELP"), Some(name), _) if valid_name(name) => {}
                (Some("TYPE"), Some(name), Some(kind)) if valid_name(name) => {
                    if !matches!(
                        kind,
                        "counter" | "gauge" | "histogram" | "summary" | "untyped"
                    ) {
                        return Err(bad("unknown type"));
                    }
                    if types.insert(name.to_string(), kind.to_string()).is_some() {
                        return Err(bad("family declared twice"));
                    }
                }
                (Some("HELP" | "TYPE"), _, _) => return Err(bad("malformed HELP or TYPE")),
                _ => {}
            }
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(at) => line.split_at(at),
            None => return Err(bad("no value")),
        };
        if !valid_name(name) {
            return Err(bad("bad metric name"));
        }
        let (labels, rest) = match rest.strip_prefix('{') {
            Some(inner) => parse_labels(inner).map_err(|why| bad(&why))?,
            None => (Vec::new(), rest),
        };
        let mut fields = rest.trim_start_matches(' ').split(' ');
        let value = match fields.next() {
            Some("+Inf") => f64::INFINITY,
            Some("-Inf") => f64::NEG_INFINITY,
            Some(v) => v.parse::<f64>().map_err(|_| bad("bad value"))?,
            None => return Err(bad("no value")),
        };
        if let Some(stamp) = fields.next()
            && stamp.parse::<i64>().is_err()
        {
            return Err(bad("bad timestamp"));
        }
        if fields.next().is_some() {
            return Err(bad("trailing text"));
        }
        let family = types.get(name).map(|_| name).or_else(|| {
            ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
                name.strip_suffix(suffix).filter(|base| {
                    types
                        .get(*base)
                        .is_some_and(|k| k == "histogram" || k == "summary")
                })
            })
        });
        if family.is_none() {
            return Err(bad("sample without a # TYPE before it"));
        }
        samples.push((name.to_string(), labels, value));
    }
    Ok(samples)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Labels after `{`, up to and including `}`; returns them and the rest of the line.
fn parse_labels(mut text: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        if let Some(rest) = text.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let (name, rest) = text.split_once("=\"").ok_or("bad label")?;
        if !valid_name(name) || name.contains(':') {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    _ => return Err("bad escape in a label value".into()),
                },
                Some((at, '"')) => break at,
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        labels.push((name.to_string(), value));
        text = &rest[end + 1..];
        text = text.strip_prefix(',').unwrap_or(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elector_core::{Settings, Timing};

    fn status() -> Arc<Status> {
        let status = Status::new("/iotex-server", "replica \"a\"\n");
        let core = Elector::new(
            Settings::new("replica-a".to_string(), Timing::default()),
            Instant::ZERO,
        )
        .expect("default timing");
        status.update(&core, Instant::ZERO);
        status
    }

    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| *v)
    }

    #[test]
    fn the_exposition_parses_and_keeps_every_name() {
        let status = status();
        let m = &status.metrics;
        m.observe_keepalive(Duration::from_millis(3));
        m.observe_keepalive(Duration::from_millis(40));
        m.observe_keepalive(Duration::from_secs(9));
        m.observe_node_call(NodeCallKind::ReadMode, Duration::from_millis(2));
        m.set_node_mode(false);
        let text = status.render_metrics();
        let samples = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        for name in [
            "elector_role",
            "elector_role_transitions_total",
            "elector_keepalive_latency_seconds_sum",
            "elector_keepalive_latency_seconds_count",
            "elector_keepalive_latency_seconds_bucket",
            "elector_keepalive_last_latency_seconds",
            "elector_keepalive_failures_total",
            "elector_node_call_failures_total",
            "elector_node_call_latency_seconds_bucket",
            "elector_fence_actions_total",
            "elector_fence_results_total",
            "elector_node_standby_unexpected_total",
            "elector_stuck",
            "elector_node_lost",
            "elector_etcd_connected",
            "elector_node_active",
            "elector_node_ready",
            "elector_node_mode_age_seconds",
            "elector_info",
        ] {
            assert!(
                samples.iter().any(|(n, _, _)| n == name),
                "{name} missing:\n{text}"
            );
        }
        // Labels are escaped, and read back as they were.
        assert_eq!(
            value(&samples, "elector_info", &[("value", "replica \"a\"\n")]),
            Some(1.0)
        );
        assert_eq!(
            value(&samples, "elector_role", &[("role", "starting")]),
            Some(1.0)
        );
        // A cumulative histogram whose +Inf bucket is the count.
        let bucket = |le: &str| {
            value(
                &samples,
                "elector_keepalive_latency_seconds_bucket",
                &[("le", le)],
            )
        };
        assert_eq!(bucket("0.001"), Some(0.0));
        assert_eq!(bucket("0.005"), Some(1.0));
        assert_eq!(bucket("0.05"), Some(2.0));
        assert_eq!(bucket("5"), Some(2.0));
        assert_eq!(bucket("+Inf"), Some(3.0));
        assert_eq!(
            value(&samples, "elector_keepalive_latency_seconds_count", &[]),
            Some(3.0)
        );
        let sum = value(&samples, "elector_keepalive_latency_seconds_sum", &[]).unwrap_or(0.0);
        assert!((sum - 9.043).abs() < 1e-9, "{sum}");
        assert_eq!(
            value(
                &samples,
                "elector_node_call_latency_seconds_count",
                &[("call", "read_mode")]
            ),
            Some(1.0)
        );
        assert_eq!(value(&samples, "elector_node_active", &[]), Some(0.0));
        assert_eq!(value(&samples, "elector_node_ready", &[]), Some(0.0));
        assert_eq!(value(&samples, "elector_etcd_connected", &[]), Some(0.0));
        // No election read yet: no candidate count rather than a made-up 0.
        assert_eq!(value(&samples, "elector_candidates", &[]), None);
        #[cfg(target_os = "linux")]
        for name in [
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            let v = value(&samples, name, &[]).unwrap_or_else(|| panic!("{name} missing"));
            assert!(v >= 0.0, "{name} {v}");
        }
    }

    #[test]
    fn the_reader_refuses_what_prometheus_would() {
        for text in [
            "elector_x 1\n",
            "# TYPE elector_x gauge\nelector_x one\n",
            "# TYPE elector_x gauge\nelector_x{a=\"b} 1\n",
            "# TYPE elector_x gauge\n# TYPE elector_x gauge\n",
            "# TYPE elector_x gauge\nelector-x 1\n",
            "# TYPE elector_x gauge\nelector_x 1 2 3\n",
        ] {
            assert!(parse_exposition(text).is_err(), "{text:?} accepted");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn etcd_connected_follows_recent_successes() {
        let metrics = Metrics::default();
        metrics.set_etcd_silence_bound(Duration::from_secs(4));
        assert!(!metrics.etcd_connected(), "nothing succeeded yet");
        metrics.etcd.succeeded();
        assert!(metrics.etcd_connected());
        metrics
            .etcd
            .failed("etcd keep-alive of lease 1a timed out after 1s");
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(metrics.etcd_connected(), "within the bound");
        assert!(
            metrics
                .etcd
                .error()
                .is_some_and(|e| e.contains("timed out"))
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            !metrics.etcd_connected(),
            "silent for longer than the bound"
        );
        metrics.etcd.succeeded();
        assert!(metrics.etcd_connected());
        assert_eq!(metrics.etcd.error(), None);
    }

    #[test]
    fn only_get_and_head_are_served() {
        let status = status();
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let response = route(&status, &method, "/metrics");
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method}"
            );
            assert_eq!(
                response.headers().get("allow").map(|v| v.as_bytes()),
                Some(&b"GET, HEAD"[..])
            );
        }
        for method in [Method::GET, Method::HEAD] {
            assert_eq!(route(&status, &method, "/metrics").status(), StatusCode::OK);
            assert_eq!(route(&status, &method, "/status").status(), StatusCode::OK);
        }
        assert_eq!(
            route(&status, &Method::GET, "/nowhere").status(),
            StatusCode::NOT_FOUND
        );
    }
}

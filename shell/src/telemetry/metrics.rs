//! The counters, gauges and histograms of `/metrics`, and what is known of the health of each
//! peer (etcd, the node, its probe), updated from any task without a lock on the hot path.

use prometheus::{Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts};
use prometheus::{Registry, core::Collector};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long after the last successful etcd call `elector_etcd_connected` (and `/status`'s
/// `etcd_connected`) still say 1, unless set with [`Metrics::set_etcd_silence_bound`]: the
/// etcd adapter's `etcd::silence_bound` of the default 1 s request timeout (its test checks
/// that they agree). Passed in, not imported, so that metrics depend on nothing above them.
pub const DEFAULT_ETCD_SILENCE_BOUND: Duration = Duration::from_secs(4);

/// Upper bounds of the latency histograms, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

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
    /// Key custody's `/producer-keys` calls.
    InstallKey,
    WithdrawKey,
    ReadKeys,
}

impl NodeCallKind {
    const ALL: [NodeCallKind; 7] = [
        NodeCallKind::Activate,
        NodeCallKind::Deactivate,
        NodeCallKind::ReadMode,
        NodeCallKind::Readiness,
        NodeCallKind::InstallKey,
        NodeCallKind::WithdrawKey,
        NodeCallKind::ReadKeys,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            NodeCallKind::Activate => "activate",
            NodeCallKind::Deactivate => "deactivate",
            NodeCallKind::ReadMode => "read_mode",
            NodeCallKind::Readiness => "readiness",
            NodeCallKind::InstallKey => "install_key",
            NodeCallKind::WithdrawKey => "withdraw_key",
            NodeCallKind::ReadKeys => "read_keys",
        }
    }
}

/// Counters, gauges and histograms, updated from any task. The ones that count events live in
/// [`Metrics::registry`]; what is read off the snapshot is added at each scrape
/// (`exposition.rs`).
pub struct Metrics {
    /// The counters and histograms below and the standard `process_*` metrics.
    pub(super) registry: Registry,
    transitions: IntCounter,
    keepalive_latency: Histogram,
    keepalive_last: Gauge,
    keepalive_failures: IntCounter,
    node_latency: HistogramVec,
    node_failures: IntCounter,
    fences: IntCounter,
    fence_results: IntCounterVec,
    standby_unexpected: IntCounter,
    /// Every etcd call of the election (keep-alives, reads, writes, the connection check).
    pub etcd: Arc<CallHealth>,
    /// The node's admin endpoint (`/ha`).
    pub node: CallHealth,
    /// The node's readiness probe.
    pub probe: CallHealth,
    pub(super) etcd_silence_bound_micros: AtomicU64,
    /// 0 unknown, 1 standby, 2 active.
    pub(super) node_mode: AtomicU64,
    /// Key custody: what `/producer-keys` last listed: 0 unknown, 1 the placeholder, 2 the
    /// operator's key.
    pub(super) node_keys: AtomicU64,
    pub(super) node_mode_read_at: Mutex<Option<tokio::time::Instant>>,
    /// Registered replicas whose published timing differs from ours, at the registry's last
    /// read of the records; `u64::MAX` before the first read.
    pub(super) timing_mismatch: AtomicU64,
}

/// Registers `metric` in `registry` and hands it back. Names and help texts are constants of
/// this file, checked by the tests: a registration cannot fail at run time.
fn registered<M: Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique and valid");
    metric
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    registered(registry, IntCounter::new(name, help).expect("a valid name"))
}

fn latency(name: &str, help: &str) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec())
}

impl Default for Metrics {
    fn default() -> Self {
        let r = Registry::new();
        let node_latency = registered(
            &r,
            HistogramVec::new(
                latency(
                    "elector_node_call_latency_seconds",
                    "Duration of calls to the node (failed and timed-out ones included), by call.",
                ),
                &["call"],
            )
            .expect("a valid name"),
        );
        let fence_results = registered(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "elector_fence_results_total",
                    "Fence actions finished, by result.",
                ),
                &["result"],
            )
            .expect("a valid name"),
        );
        // Every call and result from the start, at 0, so that rates never begin with a gap.
        for kind in NodeCallKind::ALL {
            node_latency.with_label_values(&[kind.as_str()]);
        }
        for result in ["success", "failure"] {
            fence_results.with_label_values(&[result]);
        }
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("process_* names are unique");
        Metrics {
            transitions: counter(
                &r,
                "elector_role_transitions_total",
                "Role changes since start.",
            ),
            keepalive_latency: registered(
                &r,
                Histogram::with_opts(latency(
                    "elector_keepalive_latency_seconds",
                    "Round trip of acknowledged keep-alives.",
                ))
                .expect("a valid name"),
            ),
            keepalive_last: registered(
                &r,
                Gauge::new(
                    "elector_keepalive_last_latency_seconds",
                    "Round trip of the last acknowledged keep-alive.",
                )
                .expect("a valid name"),
            ),
            keepalive_failures: counter(
                &r,
                "elector_keepalive_failures_total",
                "Keep-alives that failed or timed out.",
            ),
            node_latency,
            node_failures: counter(
                &r,
                "elector_node_call_failures_total",
                "Node admin calls that failed, timed out or got an unexpected answer.",
            ),
            fences: counter(&r, "elector_fence_actions_total", "Fence actions started."),
            fence_results,
            standby_unexpected: counter(
                &r,
                "elector_node_standby_unexpected_total",
                "Reads of standby from the leader's node after it was commanded active.",
            ),
            registry: r,
            etcd: Arc::default(),
            node: CallHealth::default(),
            probe: CallHealth::default(),
            etcd_silence_bound_micros: AtomicU64::new(DEFAULT_ETCD_SILENCE_BOUND.as_micros() as u64),
            node_mode: AtomicU64::new(0),
            node_keys: AtomicU64::new(0),
            node_mode_read_at: Mutex::new(None),
            timing_mismatch: AtomicU64::new(u64::MAX),
        }
    }
}

impl Metrics {
    /// The registry read the other replicas' records: `count` publish a timing other than
    /// ours.
    pub fn set_timing_mismatch(&self, count: u64) {
        self.timing_mismatch.store(count, Ordering::Relaxed);
    }

    /// Registered replicas whose timing differs from ours; `None` before the first read.
    pub fn timing_mismatch(&self) -> Option<u64> {
        match self.timing_mismatch.load(Ordering::Relaxed) {
            u64::MAX => None,
            count => Some(count),
        }
    }

    pub fn count_transition(&self) {
        self.transitions.inc();
    }
    pub fn observe_keepalive(&self, latency: Duration) {
        self.keepalive_latency.observe(latency.as_secs_f64());
        self.keepalive_last.set(latency.as_secs_f64());
    }
    pub fn count_keepalive_failure(&self) {
        self.keepalive_failures.inc();
    }
    /// A node call ended (answered or not) after `latency`.
    pub fn observe_node_call(&self, kind: NodeCallKind, latency: Duration) {
        self.node_latency
            .with_label_values(&[kind.as_str()])
            .observe(latency.as_secs_f64());
    }
    pub fn count_node_failure(&self) {
        self.node_failures.inc();
    }
    pub fn count_fence(&self) {
        self.fences.inc();
    }
    pub fn count_fence_outcome(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.fence_results.with_label_values(&[result]).inc();
    }
    pub fn count_standby_unexpected(&self) {
        self.standby_unexpected.inc();
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
    /// Key custody: what the node listed last.
    pub fn set_node_keys(&self, keys: elector_core::NodeKeys) {
        let value = match keys {
            elector_core::NodeKeys::Placeholder => 1,
            elector_core::NodeKeys::Operator => 2,
        };
        self.node_keys.store(value, Ordering::Relaxed);
    }
    /// Time since the last answered read of the node's mode.
    pub fn node_mode_age(&self) -> Option<Duration> {
        self.node_mode_read_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|at| at.elapsed())
    }
    pub fn transitions(&self) -> u64 {
        self.transitions.get()
    }
    pub fn fences(&self) -> u64 {
        self.fences.get()
    }
}

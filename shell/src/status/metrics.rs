//! The counters, gauges and histograms of `/metrics`, and what is known of the health of each
//! peer (etcd, the node, its probe), updated from any task without a lock on the hot path.

use super::exposition::sample;
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
    pub(super) fn render(&self, out: &mut String, name: &str, labels: &[(&str, &str)]) {
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
    /// Key custody's `/producer-keys` calls.
    InstallKey,
    WithdrawKey,
    ReadKeys,
}

impl NodeCallKind {
    pub(super) const ALL: [NodeCallKind; 7] = [
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

/// Counters, gauges and histograms, updated from any task.
pub struct Metrics {
    pub(super) transitions: AtomicU64,
    pub(super) keepalive_latency: Histogram,
    pub(super) keepalive_last_micros: AtomicU64,
    pub(super) keepalive_failures: AtomicU64,
    pub(super) node_latency: [Histogram; 7],
    pub(super) node_failures: AtomicU64,
    pub(super) fences: AtomicU64,
    pub(super) fence_successes: AtomicU64,
    pub(super) fence_failures: AtomicU64,
    pub(super) standby_unexpected: AtomicU64,
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
        self.transitions.load(Ordering::Relaxed)
    }
    pub fn fences(&self) -> u64 {
        self.fences.load(Ordering::Relaxed)
    }
}

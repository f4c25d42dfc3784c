//! The Prometheus text exposition (format 0.0.4) of `/metrics`: the counters and histograms
//! [`Metrics`](super::Metrics) keeps, the standard `process_*` metrics, and gauges read off the
//! snapshot at each scrape. Encoded by the `prometheus` crate; the tests read it back with
//! `elector_model::exposition`, a strict reader that the product does not carry.

use super::Telemetry;
use elector_core::Role;
use prometheus::{Encoder, Gauge, GaugeVec, Opts, Registry, TextEncoder};
use std::sync::atomic::Ordering;

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

/// The gauges of one scrape, read off the snapshot: a gauge that is unknown is left out
/// rather than written as a made-up 0.
#[derive(Default)]
struct Scrape(Registry);

impl Scrape {
    fn gauge(&self, name: &str, help: &str, value: f64) {
        let gauge = Gauge::new(name, help).expect("a valid name");
        gauge.set(value);
        self.0.register(Box::new(gauge)).expect("a unique name");
    }

    /// One gauge family with a sample per `(label values, value)`.
    fn labelled<'a>(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        samples: impl IntoIterator<Item = (Vec<&'a str>, f64)>,
    ) {
        let family = GaugeVec::new(Opts::new(name, help), labels).expect("a valid name");
        for (values, value) in samples {
            family.with_label_values(&values).set(value);
        }
        self.0.register(Box::new(family)).expect("a unique name");
    }
}

fn flag(on: bool) -> f64 {
    f64::from(u8::from(on))
}

impl Telemetry {
    /// Prometheus text exposition (format 0.0.4).
    pub fn render_metrics(&self) -> String {
        let m = &self.metrics;
        let snapshot = self.snapshot();
        let role = snapshot.as_ref().map(|s| s.role);
        let scrape = Scrape::default();
        let version = env!("CARGO_PKG_VERSION");
        scrape.labelled(
            "elector_info",
            "Always 1: this elector's key, value and version.",
            &["key", "value", "version"],
            [(vec![self.key.as_str(), &self.value, version], 1.0)],
        );
        scrape.labelled(
            "elector_role",
            "Current role of this elector (1 for the current role).",
            &["role"],
            ROLES.map(|r| (vec![r.as_str()], flag(role == Some(r.as_str())))),
        );
        scrape.gauge(
            "elector_stuck",
            "1 while this replica cannot reach a safe or useful state by itself (see /status).",
            flag(snapshot.as_ref().is_some_and(|s| s.stuck.is_some())),
        );
        let exclusion = snapshot.as_ref().and_then(|s| s.exclusion.as_ref());
        scrape.gauge(
            "elector_excluded",
            "1 while an operator excludes this replica (elector exclude): it does not campaign.",
            flag(exclusion.is_some()),
        );
        // An exclusion whose time cannot be read (written by hand) still counts above.
        if let Some(since) = exclusion.and_then(|e| humantime::parse_rfc3339_weak(&e.since).ok())
            && let Ok(since) = since.duration_since(std::time::UNIX_EPOCH)
        {
            scrape.gauge(
                "elector_excluded_since_timestamp_seconds",
                "When this replica was excluded, in Unix seconds (as elector exclude stored it).",
                since.as_secs_f64(),
            );
        }
        scrape.gauge(
            "elector_node_lost",
            "1 while this leader's node has not read active for --node-lost-after.",
            flag(snapshot.as_ref().is_some_and(|s| s.node_lost.is_some())),
        );
        scrape.gauge(
            "elector_etcd_connected",
            "1 while an etcd call succeeded within the last few seconds (see docs/operations.md).",
            flag(m.etcd_connected()),
        );
        if let Some(age) = m.etcd.since_success() {
            scrape.gauge(
                "elector_etcd_last_success_age_seconds",
                "Time since an etcd call last succeeded.",
                age.as_secs_f64(),
            );
        }
        if let Some(count) = m.timing_mismatch() {
            scrape.gauge(
                "elector_timing_mismatch",
                "Registered replicas whose published timing differs from this elector's (every \
                 replica must run the same timing flags; elector status names the flags).",
                count as f64,
            );
        }
        if let Some(snapshot) = snapshot.as_ref().filter(|s| s.election_revision.is_some()) {
            scrape.gauge(
                "elector_candidates",
                "Candidates in the election at the last read (ours, other replicas, Go electors).",
                snapshot.candidates.len() as f64,
            );
        }
        scrape.gauge(
            "elector_node_ready",
            "1 while the node's readiness probe passes, 0 otherwise (also before the first probe).",
            flag(snapshot.as_ref().is_some_and(|s| s.readiness == "ready")),
        );
        let mode = match m.node_mode.load(Ordering::Relaxed) {
            2 => 1.0,
            1 => 0.0,
            _ => -1.0,
        };
        scrape.gauge(
            "elector_node_active",
            "Last mode read from the node: 1 active, 0 standby, -1 unknown.",
            mode,
        );
        if let Some(keys) = match m.node_keys.load(Ordering::Relaxed) {
            2 => Some(1.0),
            1 => Some(0.0),
            _ => None,
        } {
            scrape.gauge(
                "elector_node_operator_key",
                "Key custody: 1 while the node last listed the operator's key, 0 only its \
                 placeholder.",
                keys,
            );
        }
        if let Some(age) = m.node_mode_age() {
            scrape.gauge(
                "elector_node_mode_age_seconds",
                "Time since the node's mode was last read (elector_node_active's age).",
                age.as_secs_f64(),
            );
        }
        if let Some(ms) = snapshot.as_ref().and_then(|s| s.lease_deadline_in_ms) {
            scrape.gauge(
                "elector_lease_remaining_seconds",
                "Time left until the lease deadline.",
                ms as f64 / 1e3,
            );
        }
        let mut families = m.registry.gather();
        families.extend(scrape.0.gather());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = Vec::new();
        // Writing to memory fails only on a family without samples, which gather() drops.
        let _ = TextEncoder::new().encode(&families, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

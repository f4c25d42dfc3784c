//! The Prometheus text exposition (format 0.0.4): `/metrics` as written from the snapshot and
//! the metrics, with the standard `process_*` metrics. The tests read it back with
//! `elector_model::exposition`, a strict reader that the product does not carry.

use super::{NodeCallKind, Status};
use elector_core::Role;
use std::fmt::Write as _;
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

impl Status {
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
        let exclusion = snapshot.as_ref().and_then(|s| s.exclusion.as_ref());
        gauge(
            o,
            "elector_excluded",
            "1 while an operator excludes this replica (elector exclude): it does not campaign.",
            flag(exclusion.is_some()),
        );
        // An exclusion whose time cannot be read (written by hand) still counts above.
        if let Some(since) = exclusion.and_then(|e| humantime::parse_rfc3339_weak(&e.since).ok())
            && let Ok(since) = since.duration_since(std::time::UNIX_EPOCH)
        {
            gauge(
                o,
                "elector_excluded_since_timestamp_seconds",
                "When this replica was excluded, in Unix seconds (as elector exclude stored it).",
                since.as_secs_f64(),
            );
        }
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
        if let Some(count) = m.timing_mismatch() {
            gauge(
                o,
                "elector_timing_mismatch",
                "Registered replicas whose published timing differs from this elector's (every \
                 replica must run the same timing flags; elector status names the flags).",
                count as f64,
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
        if let Some(keys) = match m.node_keys.load(Ordering::Relaxed) {
            2 => Some(1.0),
            1 => Some(0.0),
            _ => None,
        } {
            gauge(
                o,
                "elector_node_operator_key",
                "Key custody: 1 while the node last listed the operator's key, 0 only its \
                 placeholder.",
                keys,
            );
        }
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
pub(super) fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
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

//! The Prometheus text exposition (format 0.0.4): `/metrics` as written from the snapshot and
//! the metrics, with the standard `process_*` metrics; and a strict reader of that format, for
//! tests (here and against a running elector) and tools.

use super::{NodeCallKind, Status};
use elector_core::Role;
use std::collections::HashMap;
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

/// Labels of a sample: name and value, in order.
pub type Labels = Vec<(String, String)>;

/// One sample of the text exposition: name, labels, value.
pub type Sample = (String, Labels, f64);

/// The value of the first sample named `name` that carries every label in `labels` (and
/// perhaps more), as read by [`parse_exposition`].
pub fn sample_value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
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

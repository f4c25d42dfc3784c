//! Failure logging without floods. What fails is a dependency (etcd, the node's admin
//! endpoint, its readiness probe), not a call: during an etcd outage the keep-alives, the
//! reads, the grants and the candidate creations all fail, each with reasons that change
//! (timed out, connection refused, ...). So a dependency that keeps failing is logged once,
//! then at most once per [`LOG_REPEAT_EVERY`] whatever the call and the reason, each line
//! saying how many failures it left out; and once, at info level, when it answers again. The
//! core still sees every failure.

use crate::logging::Every;
use elector_core::Input;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{info, warn};

/// A dependency that keeps failing is logged at most this often (docs/operations.md,
/// "Observe").
pub(crate) const LOG_REPEAT_EVERY: Duration = Duration::from_secs(10);

/// What a failing call depends on: its failures are one failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Dependency {
    Etcd,
    NodeAdmin,
    NodeReadiness,
}

impl Dependency {
    fn recovered(self) -> &'static str {
        match self {
            Dependency::Etcd => "etcd answers again",
            Dependency::NodeAdmin => "the node's admin endpoint answers again",
            Dependency::NodeReadiness => "the node's readiness probe passes again",
        }
    }
}

/// One dependency's failures since its last line.
#[derive(Debug)]
struct Failing {
    every: Every,
    /// Failures left out since the last line, by kind.
    left_out: BTreeMap<&'static str, u32>,
    /// A warning was written since it last answered: its recovery is worth a line.
    warned: bool,
}

impl Default for Failing {
    fn default() -> Self {
        Failing {
            every: Every::new(LOG_REPEAT_EVERY),
            left_out: BTreeMap::new(),
            warned: false,
        }
    }
}

/// The throttle of the driver's failure lines.
#[derive(Default)]
pub(crate) struct LogThrottle {
    failing: BTreeMap<Dependency, Failing>,
}

impl LogThrottle {
    /// Logs `input`, seen at `now`, if it is a failure and its dependency's line is due, or if
    /// it shows a dependency whose failure was logged answering again.
    pub(crate) fn input(&mut self, input: &Input, now: Instant) {
        if let Some(dependency) = answered(input) {
            self.answered(dependency);
            return;
        }
        let Some((dependency, kind, reason)) = failure(input) else {
            return;
        };
        let failing = self.failing.entry(dependency).or_default();
        if failing.every.due(now).is_none() {
            *failing.left_out.entry(kind).or_default() += 1;
            return;
        }
        failing.warned = true;
        let left_out = std::mem::take(&mut failing.left_out);
        // `kind` is for collectors; the human line says it in the message.
        warn!(kind, %reason, "{kind} failed{}", left_out_note(&left_out));
    }

    fn answered(&mut self, dependency: Dependency) {
        let Some(failing) = self.failing.get_mut(&dependency) else {
            return;
        };
        if std::mem::take(&mut failing.warned) {
            let left_out = std::mem::take(&mut failing.left_out);
            info!("{}{}", dependency.recovered(), left_out_note(&left_out));
        }
    }
}

/// ` (12 more failures since the last line: etcd keep-alive 7, etcd watch 5)`, or nothing.
fn left_out_note(left_out: &BTreeMap<&'static str, u32>) -> String {
    let total: u32 = left_out.values().sum();
    if total == 0 {
        return String::new();
    }
    let kinds: Vec<String> = left_out
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    format!(
        " ({total} more failure{} since the last line: {})",
        if total == 1 { "" } else { "s" },
        kinds.join(", ")
    )
}

/// The dependency a failure belongs to, its kind and its reason.
fn failure(input: &Input) -> Option<(Dependency, &'static str, &str)> {
    let (dependency, kind, reason) = match input {
        Input::LeaseGrantFailed { reason } => (Dependency::Etcd, "etcd lease grant", reason),
        Input::KeepAliveFailed { reason, .. } => (Dependency::Etcd, "etcd keep-alive", reason),
        Input::CandidateCreateFailed { reason, .. } => {
            (Dependency::Etcd, "etcd candidate key", reason)
        }
        Input::ObserveFailed { reason } => (Dependency::Etcd, "etcd watch", reason),
        Input::ResignFailed { reason, .. } => (Dependency::Etcd, "etcd resign", reason),
        Input::NodeCallFailed { reason, .. } => (Dependency::NodeAdmin, "node admin call", reason),
        Input::Probed {
            ready: false,
            detail,
        } => (Dependency::NodeReadiness, "node readiness", detail),
        _ => return None,
    };
    Some((dependency, kind, reason.as_str()))
}

/// The dependency an input shows answering.
fn answered(input: &Input) -> Option<Dependency> {
    match input {
        Input::LeaseGranted { .. }
        | Input::KeepAliveAcked { .. }
        | Input::CandidateCreated { .. }
        | Input::Observed(_)
        | Input::Resigned { .. } => Some(Dependency::Etcd),
        Input::NodeCallDone { .. } => Some(Dependency::NodeAdmin),
        Input::Probed { ready: true, .. } => Some(Dependency::NodeReadiness),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::subscriber;
    use crate::logging::tests::Buffer;
    use elector_core::{NodeCall, Observation};
    use tracing_subscriber::EnvFilter;

    /// The lines `feed` makes the throttle write, in the human format.
    fn lines(feed: impl FnOnce(&mut LogThrottle)) -> Vec<String> {
        let buffer = Buffer::default();
        let subscriber = subscriber(
            crate::cli::LogFormat::Human,
            EnvFilter::new("info"),
            false,
            None,
            buffer.clone(),
        );
        tracing::subscriber::with_default(subscriber, || feed(&mut LogThrottle::default()));
        buffer.text().lines().map(str::to_owned).collect()
    }

    fn etcd_failure(i: u32) -> Input {
        match i % 4 {
            0 => Input::KeepAliveFailed {
                lease: 1,
                reason: format!("timed out after 1s (try {i})"),
            },
            1 => Input::ObserveFailed {
                reason: "Unavailable: connection refused".into(),
            },
            2 => Input::LeaseGrantFailed {
                reason: "timed out".into(),
            },
            _ => Input::CandidateCreateFailed {
                lease: 1,
                reason: "no leader".into(),
            },
        }
    }

    /// A 24 s etcd outage, as in issue 23: every etcd call failing four times a second with
    /// changing reasons. Three warnings (at 0, 10 and 20 s), then one line when etcd answers.
    #[test]
    fn an_etcd_outage_is_one_warning_per_ten_seconds_whatever_fails() {
        let t0 = Instant::now();
        let written = lines(|throttle| {
            for i in 0..96u32 {
                throttle.input(&etcd_failure(i), t0 + Duration::from_millis(250) * i);
            }
            throttle.input(
                &Input::Observed(Observation {
                    revision: 1,
                    candidates: vec![],
                    handover_record: None,
                    handover_request: None,
                    excluded: None,
                }),
                t0 + Duration::from_secs(24),
            );
        });
        let warnings: Vec<&String> = written.iter().filter(|l| l.contains(" WARN ")).collect();
        assert_eq!(warnings.len(), 3, "{written:#?}");
        assert!(
            warnings[0].contains("etcd keep-alive failed: timed out after 1s (try 0)"),
            "{written:#?}"
        );
        assert!(
            warnings[1].contains("(39 more failures since the last line: etcd candidate key 10"),
            "{written:#?}"
        );
        assert_eq!(written.len(), 4, "{written:#?}");
        assert!(
            written[3].contains("INFO etcd answers again (15 more failures"),
            "{written:#?}"
        );
    }

    /// Each dependency is throttled on its own: a failing node does not hide a failing etcd.
    /// A recovery is said only after a warning, so a dependency that fails and answers in
    /// turn writes at most two lines per ten seconds.
    #[test]
    fn dependencies_are_throttled_apart_and_recoveries_said_once() {
        let t0 = Instant::now();
        let node_failed = Input::NodeCallFailed {
            id: 1,
            call: NodeCall::ReadMode,
            reason: "connection refused".into(),
        };
        let node_done = Input::NodeCallDone {
            id: 2,
            call: NodeCall::ReadMode,
            active: Some(false),
            keys: None,
        };
        let written = lines(|throttle| {
            for i in 0..20u32 {
                let at = t0 + Duration::from_millis(400) * i;
                throttle.input(&node_failed, at);
                throttle.input(&node_done, at + Duration::from_millis(100));
                throttle.input(&etcd_failure(i), at);
            }
        });
        let node_warnings = written
            .iter()
            .filter(|l| l.contains("WARN node admin call failed"))
            .count();
        let etcd_warnings = written.iter().filter(|l| l.contains("WARN etcd")).count();
        let recoveries = written
            .iter()
            .filter(|l| l.contains("admin endpoint answers again"))
            .count();
        assert_eq!((node_warnings, etcd_warnings), (1, 1), "{written:#?}");
        assert_eq!(recoveries, 1, "{written:#?}");
        let ready = lines(|throttle| {
            throttle.input(
                &Input::Probed {
                    ready: false,
                    detail: "HTTP 503".into(),
                },
                t0,
            );
            throttle.input(
                &Input::Probed {
                    ready: true,
                    detail: String::new(),
                },
                t0 + Duration::from_secs(1),
            );
        });
        assert!(
            ready[0].contains("WARN node readiness failed: HTTP 503"),
            "{ready:#?}"
        );
        assert!(
            ready[1].contains("readiness probe passes again"),
            "{ready:#?}"
        );
    }

    #[test]
    fn every_lets_one_line_through_per_period_and_counts_the_rest() {
        let t0 = Instant::now();
        let mut every = Every::new(LOG_REPEAT_EVERY);
        assert_eq!(every.due(t0), Some(0));
        assert_eq!(every.due(t0 + Duration::from_secs(3)), None);
        assert_eq!(every.due(t0 + Duration::from_secs(9)), None);
        assert_eq!(every.due(t0 + LOG_REPEAT_EVERY), Some(2));
        assert_eq!(every.due(t0 + LOG_REPEAT_EVERY * 3), Some(0));
    }
}

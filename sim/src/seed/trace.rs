//! The run's timeline: faults, every log line of the electors at INFO and above (role changes
//! with their reasons, fences, handovers, failures), node commands and node mode changes, each
//! stamped with turmoil's global simulated time.
//!
//! The electors' log lines come from the shell's own `tracing` calls. [`TraceSubscriber`]
//! attributes each to the host that emitted it through the span turmoil enters around every
//! host's share of a step, so tasks the driver spawns are attributed too.

use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// One line of the timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Simulated time since the start of the run.
    pub at: Duration,
    /// Order of recording, to keep entries of one instant in the order they happened.
    pub seq: u64,
    /// `sim`, `etcd`, `elector-2`, `node-0`, ...
    pub who: String,
    pub what: String,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>10.3}s  {:<10}  {}",
            self.at.as_secs_f64(),
            self.who,
            self.what
        )
    }
}

/// Collects the timeline. Clones share it.
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Arc<Mutex<Vec<Entry>>>,
}

impl Recorder {
    pub fn record(&self, at: Duration, who: impl Into<String>, what: impl Into<String>) {
        let mut entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let seq = entries.len() as u64;
        entries.push(Entry {
            at,
            seq,
            who: who.into(),
            what: what.into(),
        });
    }

    /// Every entry, by time (entries of the same instant in recording order).
    pub fn entries(&self) -> Vec<Entry> {
        let mut entries = self
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        entries.sort_by_key(|e| (e.at, e.seq));
        entries
    }
}

/// Simulated time now: inside a host, the host's own progress through the current step.
pub fn sim_now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

thread_local! {
    /// The span id (index into the subscriber's host names + 1) of the host being stepped.
    static CURRENT_HOST: Cell<u64> = const { Cell::new(0) };
}

/// Records the electors' log lines into a [`Recorder`]. Install it for the run's thread only
/// (`tracing::dispatcher::with_default`).
pub struct TraceSubscriber {
    recorder: Recorder,
    hosts: Mutex<Vec<String>>,
}

impl TraceSubscriber {
    pub fn new(recorder: Recorder) -> Self {
        TraceSubscriber {
            recorder,
            hosts: Mutex::new(Vec::new()),
        }
    }

    fn is_host_span(metadata: &Metadata<'_>) -> bool {
        metadata.name() == "node" && metadata.target() == "turmoil::sim"
    }
}

/// Extracts the `name` field of turmoil's host span.
struct HostName(Option<String>);

impl Visit for HostName {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "name" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "name" {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_owned());
        }
    }
}

/// Formats an event as the elector's human log does: its message, `: reason` if it has one,
/// then its other fields as `key=value`, without those the message says already (`role`,
/// `from`, `to`, `kind`).
#[derive(Default)]
struct Line {
    message: String,
    reason: Option<String>,
    fields: String,
}

/// Fields a message says already (see `elector::logging::RESTATED`).
const RESTATED: [&str; 4] = ["role", "from", "to", "kind"];

impl Line {
    fn text(&self) -> String {
        match &self.reason {
            Some(reason) => format!("{}: {reason}{}", self.message, self.fields),
            None => format!("{}{}", self.message, self.fields),
        }
    }
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "reason" => self.reason = Some(value.to_owned()),
            name if RESTATED.contains(&name) => {}
            name => {
                let _ = write!(self.fields, " {name}={value}");
            }
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            "reason" => self.reason = Some(format!("{value:?}")),
            name if RESTATED.contains(&name) => {}
            name => {
                let _ = write!(self.fields, " {name}={value:?}");
            }
        }
    }
}

impl Subscriber for TraceSubscriber {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        if metadata.is_span() {
            return Self::is_host_span(metadata);
        }
        metadata.target().starts_with("elector::") && *metadata.level() <= Level::INFO
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::INFO)
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut name = HostName(None);
        span.record(&mut name);
        let name = name.0.unwrap_or_else(|| "?".to_owned());
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        let index = match hosts.iter().position(|h| *h == name) {
            Some(index) => index,
            None => {
                hosts.push(name);
                hosts.len() - 1
            }
        };
        Id::from_u64(index as u64 + 1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = Line::default();
        event.record(&mut line);
        let host = CURRENT_HOST.with(Cell::get);
        let who = if host == 0 {
            "?".to_owned()
        } else {
            self.hosts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(host as usize - 1)
                .cloned()
                .unwrap_or_else(|| "?".to_owned())
        };
        // Failure warnings get a prefix (a trace hides them unless asked); role changes, which
        // the driver logs at WARN when stepping down, never do.
        let level = match *event.metadata().level() {
            _ if line.message.starts_with("role ") => "",
            Level::ERROR => "ERROR ",
            Level::WARN => "warn: ",
            _ => "",
        };
        self.recorder
            .record(sim_now(), who, format!("{level}{}", line.text()));
    }

    fn enter(&self, span: &Id) {
        CURRENT_HOST.with(|c| c.set(span.into_u64()));
    }

    fn exit(&self, _span: &Id) {
        CURRENT_HOST.with(|c| c.set(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_out_by_time_then_recording_order() {
        let r = Recorder::default();
        r.record(Duration::from_millis(5), "b", "second");
        r.record(Duration::from_millis(1), "a", "first");
        r.record(Duration::from_millis(5), "c", "third");
        let whats: Vec<String> = r.entries().into_iter().map(|e| e.what).collect();
        assert_eq!(whats, ["first", "second", "third"]);
    }

    #[test]
    fn subscriber_records_elector_lines_with_their_fields() {
        let recorder = Recorder::default();
        let dispatch = tracing::Dispatch::new(TraceSubscriber::new(recorder.clone()));
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!(target: "elector::driver", role = "b", from = "a", reason = "r", "role a -> b");
            tracing::warn!(target: "elector::etcd", lease = "1f", reason = %"gone", "lease lost");
            tracing::warn!(target: "elector::driver", role = "stepping-down", from = "active", reason = %"late", "role active -> stepping-down");
            tracing::warn!(target: "elector::driver", kind = "etcd watch", reason = %"x", "etcd watch failed");
            tracing::debug!(target: "elector::driver", "not recorded");
            tracing::info!(target: "other", "not recorded either");
        });
        let lines: Vec<String> = recorder.entries().into_iter().map(|e| e.what).collect();
        assert_eq!(
            lines,
            [
                "role a -> b: r",
                "warn: lease lost: gone lease=1f",
                "role active -> stepping-down: late",
                "warn: etcd watch failed: x"
            ]
        );
    }
}

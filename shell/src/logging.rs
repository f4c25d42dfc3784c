//! The log, on stderr, for people (`--log-format human`) and for collectors (`json`).
//!
//! - Colour only when stderr is a terminal and `NO_COLOR` is unset or empty
//!   (<https://no-color.org>): journald, files and `docker logs` get plain text.
//! - Timestamps are wall-clock UTC (RFC 3339), in both formats.
//! - `json` is one flat object per line: `timestamp`, `level`, `message`, `target` and every
//!   field (`role`, `reason`, `kind`, ...) at the top level, as Loki and Elastic index them.
//! - `human` says a `reason` once, after the message (`role candidate -> leader: our key is
//!   first`); the fields named in [`RESTATED`] only restate the message for collectors and are
//!   left out; other fields follow as `name=value`.
//! - A closed or broken stderr (EPIPE: the reading end of a pipe went away) loses log lines,
//!   never the process: write errors are swallowed, and tracing's own error report (which
//!   panics when stderr is broken) is off. [`outln!`](crate::outln) and
//!   [`errln!`](crate::errln) are `println!`/`eprintln!` that never panic either.

use crate::cli::LogFormat;
use std::fmt;
use std::io::{self, IsTerminal, Write};
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::{FormatFields, Writer};

/// Fields the message of their event already says (`role` and `from` in `role candidate ->
/// leader`, `kind` in `etcd keep-alive failed`): kept in JSON, left out of human lines.
pub const RESTATED: [&str; 3] = ["role", "from", "kind"];

/// Sets the process's log subscriber: `format`, level from `ELECTOR_LOG` (else `default`).
pub fn init(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_env("ELECTOR_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = use_colour(
        io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let _ = tracing::subscriber::set_global_default(subscriber(format, filter, ansi, QuietStderr));
}

/// Whether to colour: only on a terminal, and only if `NO_COLOR` is unset or empty.
pub fn use_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The subscriber of [`init`], writing to `writer` (a buffer, in tests).
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    ansi: bool,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .log_internal_errors(false);
    match format {
        LogFormat::Human => Box::new(builder.with_target(false).fmt_fields(HumanFields).finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .finish(),
        ),
    }
}

/// Stderr that never fails: a line that cannot be written is dropped.
#[derive(Clone, Copy, Debug, Default)]
pub struct QuietStderr;

impl Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().write_all(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for QuietStderr {
    type Writer = QuietStderr;
    fn make_writer(&'a self) -> Self::Writer {
        QuietStderr
    }
}

/// `println!` that never panics: when stdout is closed (`elector status | head -1`) the text
/// is lost, nothing else.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` that never panics (see [`outln!`](crate::outln)).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` that never panics (see [`outln!`](crate::outln)).
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// The fields of a human line: `message: reason name=value ...`.
struct HumanFields;

#[derive(Default)]
struct Collected {
    message: String,
    reason: Option<String>,
    rest: Vec<(&'static str, String)>,
}

impl Visit for Collected {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "reason" => self.reason = Some(value.to_string()),
            _ => self.record_debug(field, &value),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            // `format_args!` and `%value` print as themselves under `{:?}`.
            "message" => self.message = format!("{value:?}"),
            "reason" => self.reason = Some(format!("{value:?}")),
            name if RESTATED.contains(&name) || name.starts_with("log.") => {}
            name => self.rest.push((name, format!("{value:?}"))),
        }
    }
}

impl<'writer> FormatFields<'writer> for HumanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut collected = Collected::default();
        fields.record(&mut collected);
        let mut separator = "";
        if !collected.message.is_empty() {
            write!(writer, "{}", collected.message)?;
            separator = " ";
        }
        if let Some(reason) = &collected.reason {
            match collected.message.is_empty() {
                true => write!(writer, "reason: {reason}")?,
                false => write!(writer, ": {reason}")?,
            }
            separator = " ";
        }
        for (name, value) in &collected.rest {
            write!(writer, "{separator}{name}={value}")?;
            separator = " ";
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing::{info, warn};

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    fn logged(format: LogFormat, ansi: bool, emit: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let subscriber = subscriber(format, EnvFilter::new("info"), ansi, buffer.clone());
        tracing::subscriber::with_default(subscriber, emit);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    fn role_change() {
        let reason = "our key is first; the previous leader handed over cleanly";
        info!(role = "leader", from = "candidate", reason = %reason, "role candidate -> leader");
        warn!(kind = "etcd keep-alive", reason = %"timed out", lease = "1a", "etcd keep-alive failed");
    }

    #[test]
    fn json_lines_are_flat() {
        let text = logged(LogFormat::Json, false, role_change);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let first = &lines[0];
        assert_eq!(first["message"], "role candidate -> leader");
        assert_eq!(first["role"], "leader");
        assert_eq!(first["from"], "candidate");
        assert_eq!(
            first["reason"],
            "our key is first; the previous leader handed over cleanly"
        );
        assert_eq!(first["level"], "INFO");
        assert!(
            first.get("fields").is_none() && first.get("span").is_none(),
            "{first}"
        );
        // Wall-clock time, RFC 3339 UTC.
        let stamp = first["timestamp"].as_str().unwrap_or_default();
        assert!(stamp.starts_with("20") && stamp.ends_with('Z'), "{stamp}");
        assert_eq!(lines[1]["kind"], "etcd keep-alive");
        assert_eq!(lines[1]["lease"], "1a");
    }

    #[test]
    fn human_lines_say_the_reason_once_and_have_no_colour() {
        let text = logged(LogFormat::Human, false, role_change);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].ends_with(
                "INFO role candidate -> leader: our key is first; the previous leader handed \
                 over cleanly"
            ),
            "{text}"
        );
        assert_eq!(lines[0].matches("our key is first").count(), 1, "{text}");
        assert!(
            lines[1].ends_with("WARN etcd keep-alive failed: timed out lease=\"1a\""),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'), "ANSI escapes: {text:?}");
        let stamp = lines[0].split(' ').next().unwrap_or_default();
        assert!(stamp.starts_with("20") && stamp.ends_with('Z'), "{stamp}");
        // On a terminal the level is coloured.
        assert!(logged(LogFormat::Human, true, role_change).contains('\u{1b}'));
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
    }
}

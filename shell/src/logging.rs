//! The log, on stderr, for people (`--log-format human`) and for collectors (`json`).
//!
//! - Colour only when stderr is a terminal and `NO_COLOR` is unset or empty
//!   (<https://no-color.org>): journald, files and `docker logs` get plain text.
//! - Timestamps are wall-clock UTC (RFC 3339), in both formats.
//! - `json` is one flat object per line: `timestamp`, `level`, `message`, every field
//!   (`role`, `reason`, `kind`, ...) at the top level, as Loki and Elastic index them, the
//!   replica's `value` on every line (so that lines from several replicas in one collector
//!   tell their source apart), and `target`. A bad flag's one-line error follows the format
//!   asked for too ([`fatal`]).
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
use std::time::{Duration, SystemTime};
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// At most one line per period: whether a line is due now, and how many were left out before
/// it. The one throttle of repeated warnings: the driver's failures, the notify socket's, the
/// registry's. (The foreign-key report in `etcd::layout` also logs on every change, so it
/// keeps its own.)
#[derive(Debug)]
pub struct Every {
    period: Duration,
    last: Option<tokio::time::Instant>,
    left_out: u32,
}

impl Every {
    /// A throttle that lets one line through per `period`.
    pub const fn new(period: Duration) -> Self {
        Every {
            period,
            last: None,
            left_out: 0,
        }
    }

    /// `Some(left out since the last line)` if a line is due at `now` (it is then counted as
    /// written), `None` if this one is to be left out.
    pub fn due(&mut self, now: tokio::time::Instant) -> Option<u32> {
        if self.last.is_some_and(|at| now < at + self.period) {
            self.left_out += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.left_out))
    }
}

/// Fields the message of their event already says (`role` and `from` in `role candidate ->
/// leader`, `kind` in `etcd keep-alive failed`): kept in JSON, left out of human lines.
pub const RESTATED: [&str; 3] = ["role", "from", "kind"];

/// Sets the process's log subscriber: `format`, level from `ELECTOR_LOG` (else `default`);
/// in JSON, `value` (the replica's `--value`) on every line.
pub fn init(format: LogFormat, default: &str, value: Option<&str>) {
    let filter = EnvFilter::try_from_env("ELECTOR_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = use_colour(
        io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let _ = tracing::subscriber::set_global_default(subscriber(
        format,
        filter,
        ansi,
        value,
        QuietStderr,
    ));
}

/// The one line of a fatal error (a bad flag, an unsafe timing: exit code 2) on stderr, in
/// the format the command line asked for: `elector: <line>`, or with `--log-format json` one
/// object like every log line (`level` `ERROR`, `message` the line, `exit_code`).
pub fn fatal(format: LogFormat, line: &str, exit_code: u8) {
    crate::errln!("{}", fatal_line(format, line, exit_code, SystemTime::now()));
}

/// The text of [`fatal`], at `now`.
pub fn fatal_line(format: LogFormat, line: &str, exit_code: u8, now: SystemTime) -> String {
    match format {
        LogFormat::Human => format!("elector: {line}"),
        LogFormat::Json => {
            let mut object = JsonLine::new(now, "ERROR");
            object.field("message", &serde_json::Value::from(line));
            object.field("exit_code", &serde_json::Value::from(exit_code));
            object.field("target", &serde_json::Value::from("elector"));
            object.finish()
        }
    }
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
    value: Option<&str>,
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
                .event_format(FlatJson {
                    value: value.map(str::to_owned),
                })
                .finish(),
        ),
    }
}

/// One JSON object written field by field, in the order given (`timestamp` and `level`
/// first, as collectors show them); values escaped by serde_json.
struct JsonLine {
    text: String,
    names: Vec<String>,
}

impl JsonLine {
    fn new(now: SystemTime, level: &str) -> Self {
        let mut line = JsonLine {
            text: String::from("{"),
            names: Vec::new(),
        };
        let stamp = humantime::format_rfc3339_micros(now).to_string();
        line.field("timestamp", &serde_json::Value::from(stamp));
        line.field("level", &serde_json::Value::from(level));
        line
    }

    /// Adds `name` unless it is there already (the first one stays).
    fn field(&mut self, name: &str, value: &serde_json::Value) {
        if self.names.iter().any(|n| n == name) {
            return;
        }
        if self.names.is_empty() {
            self.text.push('"');
        } else {
            self.text.push_str(",\"");
        }
        // A field name is an identifier; escaped all the same.
        let quoted = serde_json::Value::from(name).to_string();
        self.text.push_str(&quoted[1..]);
        self.text.push(':');
        self.text.push_str(&value.to_string());
        self.names.push(name.to_owned());
    }

    fn finish(mut self) -> String {
        self.text.push('}');
        self.text
    }
}

/// `--log-format json`: one flat object per line. tracing-subscriber's own JSON puts span
/// fields in a nested object; this writes every event field at the top level, then the
/// replica's `value` (unless the event has its own), then `target`.
struct FlatJson {
    value: Option<String>,
}

/// An event's fields as JSON values, in the order they were recorded.
#[derive(Default)]
struct JsonFields(Vec<(&'static str, serde_json::Value)>);

impl Visit for JsonFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name(), value.into()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.push((field.name(), value.into()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.push((field.name(), value.into()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.push((field.name(), value.into()));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.push((field.name(), value.into()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` and `format_args!` print as themselves under `{:?}`.
        self.0.push((field.name(), format!("{value:?}").into()));
    }
}

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut line = JsonLine::new(SystemTime::now(), metadata.level().as_str());
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        // The message first, as tracing-subscriber's JSON has it.
        if let Some((_, message)) = fields.0.iter().find(|(name, _)| *name == "message") {
            line.field("message", message);
        }
        for (name, value) in &fields.0 {
            if !name.starts_with("log.") {
                line.field(name, value);
            }
        }
        if let Some(value) = &self.value {
            line.field("value", &serde_json::Value::from(value.as_str()));
        }
        line.field("target", &serde_json::Value::from(metadata.target()));
        writeln!(writer, "{}", line.finish())
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
pub(crate) mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing::{info, warn};

    /// A writer into a shared buffer: what a test's subscriber wrote (the throttle's tests use
    /// it too).
    #[derive(Clone, Default)]
    pub(crate) struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Buffer {
        /// Everything written so far.
        pub(crate) fn text(&self) -> String {
            let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner());
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(buf);
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
        let subscriber = subscriber(
            format,
            EnvFilter::new("info"),
            ansi,
            Some("replica-a"),
            buffer.clone(),
        );
        tracing::subscriber::with_default(subscriber, emit);
        buffer.text()
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
        // The replica's value on every line, and the target last.
        for line in &lines {
            assert_eq!(line["value"], "replica-a", "{line}");
            assert!(line["target"].as_str().is_some(), "{line}");
        }
        assert!(
            text.lines().all(|l| l.starts_with("{\"timestamp\":")),
            "{text}"
        );
    }

    #[test]
    fn an_event_with_its_own_value_and_typed_fields() {
        let text = logged(LogFormat::Json, false, || {
            warn!(
                value = "twin",
                lease = "7",
                count = 3u64,
                ok = true,
                "twin {}",
                "found"
            );
        });
        let line: serde_json::Value = serde_json::from_str(text.trim()).expect("JSON");
        assert_eq!(line["message"], "twin found");
        assert_eq!(line["value"], "twin");
        assert_eq!(line["count"], 3);
        assert_eq!(line["ok"], true);
        assert_eq!(text.matches("\"value\"").count(), 1, "{text}");
    }

    #[test]
    fn a_fatal_line_follows_the_format() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(
            fatal_line(LogFormat::Human, "--ttl: bad", 2, at),
            "elector: --ttl: bad"
        );
        let json = fatal_line(LogFormat::Json, "--ttl: \"x\" is bad", 2, at);
        let line: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["message"], "--ttl: \"x\" is bad");
        assert_eq!(line["exit_code"], 2);
        assert_eq!(line["timestamp"], "2023-11-14T22:13:20.000000Z");
        assert!(json.starts_with("{\"timestamp\":"), "{json}");
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

//! Command line. Accepts the Go elector's flags as they were (`-etcd=URL -iotexAdmin=URL
//! -iotexProbe=URL -key=K -value=V`) and conventional ones (`--etcd URL ...`); every flag can
//! also come from an `ELECTOR_*` environment variable. Errors are one line, exit code 2.

use clap::{Args, Parser, ValueEnum};
use elector_core::Timing;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The Go elector's single-dash flags and what they mean here.
const GO_FLAGS: [(&str, &str); 5] = [
    ("-etcd", "--etcd"),
    ("-iotexAdmin", "--iotex-admin"),
    ("-iotexProbe", "--iotex-probe"),
    ("-key", "--key"),
    ("-value", "--value"),
];

#[derive(Parser, Debug)]
#[command(
    name = "elector",
    version,
    about = "Keeps exactly one IoTeX delegate replica active, using etcd leader election.",
    long_about = "Keeps exactly one IoTeX delegate replica active, using etcd leader election.\n\n\
        Run one elector beside each replica (same host or network namespace: the node's admin \
        port listens on 127.0.0.1). The elector forces its node to standby, campaigns in etcd \
        and activates the node only while it leads, stepping down before its lease can expire. \
        Drop-in for the Go elector: -etcd=, -iotexAdmin=, -iotexProbe=, -key=, -value= work.",
    after_help = "Safety rules and the timing inequalities: docs/safety.md. Operations: README.md."
)]
pub struct Cli {
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// etcd endpoints, comma separated (Go flag: -etcd)
    #[arg(
        long,
        env = "ELECTOR_ETCD",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    pub etcd: Vec<String>,

    /// The node's admin endpoint, serving /ha (Go flag: -iotexAdmin)
    #[arg(
        long,
        env = "ELECTOR_IOTEX_ADMIN",
        default_value = "http://127.0.0.1:9009"
    )]
    pub iotex_admin: String,

    /// The node's probe endpoint, serving /readiness (Go flag: -iotexProbe)
    #[arg(
        long,
        env = "ELECTOR_IOTEX_PROBE",
        default_value = "http://127.0.0.1:8080"
    )]
    pub iotex_probe: String,

    /// Election key; candidates are <key>/<lease id> (Go flag: -key)
    #[arg(long, env = "ELECTOR_KEY", default_value = "/iotex-server")]
    pub key: String,

    /// This replica's identity in the election [default: the host name] (Go flag: -value)
    #[arg(long, env = "ELECTOR_VALUE")]
    pub value: Option<String>,

    /// CA certificate for etcd over TLS
    #[arg(long, env = "ELECTOR_ETCD_CA", help_heading = "etcd security")]
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate for etcd over TLS
    #[arg(
        long,
        env = "ELECTOR_ETCD_CERT",
        requires = "etcd_key",
        help_heading = "etcd security"
    )]
    pub etcd_cert: Option<PathBuf>,
    /// Client private key for etcd over TLS
    #[arg(
        long,
        env = "ELECTOR_ETCD_KEY",
        requires = "etcd_cert",
        help_heading = "etcd security"
    )]
    pub etcd_key: Option<PathBuf>,
    /// etcd user name
    #[arg(long, env = "ELECTOR_ETCD_USER", help_heading = "etcd security")]
    pub etcd_user: Option<String>,
    /// File holding the etcd password (or set ELECTOR_ETCD_PASSWORD); never logged
    #[arg(
        long,
        env = "ELECTOR_ETCD_PASSWORD_FILE",
        help_heading = "etcd security"
    )]
    pub etcd_password_file: Option<PathBuf>,

    /// Lease TTL requested from etcd; failover after a crash takes about this plus the activation delay
    #[arg(long, env = "ELECTOR_TTL", value_parser = duration, default_value = "10s", help_heading = "Timing")]
    pub ttl: Duration,
    /// Keep-alive period
    #[arg(long, env = "ELECTOR_KEEPALIVE_INTERVAL", value_parser = duration, default_value = "1s", help_heading = "Timing")]
    pub keepalive_interval: Duration,
    /// Longest wait for one etcd request
    #[arg(long, env = "ELECTOR_ETCD_TIMEOUT", value_parser = duration, default_value = "1s", help_heading = "Timing")]
    pub etcd_timeout: Duration,
    /// Longest time the node keeps reporting active after activate=false (its round)
    #[arg(long, env = "ELECTOR_DRAIN_BOUND", value_parser = duration, default_value = "5s", help_heading = "Timing")]
    pub drain_bound: Duration,
    /// Largest clock rate difference between this host and etcd (0.01 = 1%)
    #[arg(
        long,
        env = "ELECTOR_MAX_CLOCK_DRIFT",
        default_value_t = 0.01,
        help_heading = "Timing"
    )]
    pub max_clock_drift: f64,
    /// Slack for commanding and confirming standby before the lease may expire
    #[arg(long, env = "ELECTOR_SAFETY_MARGIN", value_parser = duration, default_value = "1500ms", help_heading = "Timing")]
    pub safety_margin: Duration,
    /// Longest wait for one call to the node
    #[arg(long, env = "ELECTOR_NODE_TIMEOUT", value_parser = duration, default_value = "300ms", help_heading = "Timing")]
    pub node_timeout: Duration,
    /// How often the node's mode is read to reconcile it
    #[arg(long, env = "ELECTOR_NODE_CHECK_INTERVAL", value_parser = duration, default_value = "1s", help_heading = "Timing")]
    pub node_check_interval: Duration,
    /// How often the mode is re-read while standby is unconfirmed
    #[arg(long, env = "ELECTOR_CONFIRM_POLL_INTERVAL", value_parser = duration, default_value = "200ms", help_heading = "Timing")]
    pub confirm_poll_interval: Duration,
    /// How often readiness is probed
    #[arg(long, env = "ELECTOR_PROBE_INTERVAL", value_parser = duration, default_value = "1s", help_heading = "Timing")]
    pub probe_interval: Duration,
    /// Failed probes in a row after which the node counts as unready
    #[arg(
        long,
        env = "ELECTOR_UNREADY_THRESHOLD",
        default_value_t = 3,
        help_heading = "Timing"
    )]
    pub unready_threshold: u32,
    /// Assumed bound for a dead elector's node to be forced standby (systemd ExecStopPost, restart)
    #[arg(long, env = "ELECTOR_RESTART_BOUND", value_parser = duration, default_value = "3s", help_heading = "Timing")]
    pub restart_bound: Duration,
    /// Wait of a new leader that cannot know its predecessor is standby [default: the smallest safe value]
    #[arg(long, env = "ELECTOR_ACTIVATION_DELAY", value_parser = duration, help_heading = "Timing")]
    pub activation_delay: Option<Duration>,
    /// How long a leader waits for a named handover target to be next in line
    #[arg(long, env = "ELECTOR_HANDOVER_TIMEOUT", value_parser = duration, default_value = "30s", help_heading = "Timing")]
    pub handover_timeout: Duration,

    /// Command run (sh -c) when standby cannot be confirmed by the lease deadline, e.g. stopping the node's service
    #[arg(long, env = "ELECTOR_FENCE_CMD", help_heading = "Operations")]
    pub fence_cmd: Option<String>,
    /// The fence command is killed after this long
    #[arg(long, env = "ELECTOR_FENCE_TIMEOUT", value_parser = duration, default_value = "10s", help_heading = "Operations")]
    pub fence_timeout: Duration,
    /// Address of the /status, /metrics and /healthz server, or "off"
    #[arg(long, env = "ELECTOR_STATUS_ADDR", default_value = "127.0.0.1:9901", value_parser = status_addr, help_heading = "Operations")]
    pub status_addr: StatusAddr,
    /// Log format
    #[arg(
        long,
        env = "ELECTOR_LOG_FORMAT",
        value_enum,
        default_value = "human",
        help_heading = "Operations"
    )]
    pub log_format: LogFormat,
}

/// `--status-addr`: an address, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusAddr {
    Off,
    At(SocketAddr),
}

fn status_addr(s: &str) -> Result<StatusAddr, String> {
    if s == "off" {
        return Ok(StatusAddr::Off);
    }
    s.parse()
        .map(StatusAddr::At)
        .map_err(|_| format!("{s:?} is not an address like 127.0.0.1:9901, nor \"off\""))
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 500ms or 10s ({e})"))
}

impl RunArgs {
    /// The timing configuration, validated against docs/safety.md.
    pub fn timing(&self) -> Result<Timing, String> {
        let mut timing = Timing {
            lease_ttl: self.ttl,
            keepalive_interval: self.keepalive_interval,
            etcd_request_timeout: self.etcd_timeout,
            drain_bound: self.drain_bound,
            max_clock_drift: self.max_clock_drift,
            safety_margin: self.safety_margin,
            node_timeout: self.node_timeout,
            node_check_interval: self.node_check_interval,
            confirm_poll_interval: self.confirm_poll_interval,
            probe_interval: self.probe_interval,
            unready_threshold: self.unready_threshold,
            restart_bound: self.restart_bound,
            activation_delay: Duration::ZERO,
            handover_timeout: self.handover_timeout,
        };
        timing.activation_delay = self
            .activation_delay
            .unwrap_or_else(|| timing.minimum_activation_delay());
        timing.validate().map_err(|e| e.to_string())?;
        Ok(timing)
    }

    /// Our value: `--value`, else the host name.
    pub fn value(&self) -> String {
        self.value.clone().unwrap_or_else(host_name)
    }

    /// Checks what clap cannot: URLs and the key.
    pub fn check(&self) -> Result<(), String> {
        for endpoint in &self.etcd {
            if endpoint.trim().is_empty() {
                return Err("--etcd: empty endpoint in the list".into());
            }
        }
        for (flag, url) in [
            ("--iotex-admin", &self.iotex_admin),
            ("--iotex-probe", &self.iotex_probe),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("{flag}: {url:?} is not an http:// URL"));
            }
        }
        if self.key.is_empty() || self.key.ends_with('/') {
            return Err(format!(
                "--key: {:?} must be non-empty and not end with '/'",
                self.key
            ));
        }
        if self.value().is_empty() {
            return Err("--value: must not be empty".into());
        }
        if !self.fence_timeout.is_zero() {
            Ok(())
        } else {
            Err("--fence-timeout: must be greater than 0".into())
        }
    }

    /// The etcd password from ELECTOR_ETCD_PASSWORD or --etcd-password-file.
    pub fn etcd_password(&self) -> Result<Option<String>, String> {
        if let Some(path) = &self.etcd_password_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--etcd-password-file {}: {e}", path.display()))?;
            return Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()));
        }
        Ok(std::env::var("ELECTOR_ETCD_PASSWORD").ok())
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "default".to_string())
}

/// Rewrites the Go elector's single-dash flags (`-etcd=URL`, `-iotexAdmin URL`, ...) into
/// their conventional spelling, leaving everything else as it is.
pub fn translate_go_flags<I: IntoIterator<Item = String>>(args: I) -> Vec<String> {
    args.into_iter()
        .map(|arg| {
            for (go, ours) in GO_FLAGS {
                if arg == go {
                    return ours.to_string();
                }
                if let Some(rest) = arg.strip_prefix(go).and_then(|r| r.strip_prefix('=')) {
                    return format!("{ours}={rest}");
                }
            }
            arg
        })
        .collect()
}

/// The outcome of parsing: run, or print something and exit.
pub enum Parsed {
    Run(Box<Cli>),
    /// `--help` or `--version`: print to stdout, exit 0.
    Info(String),
    /// A bad flag: one line for stderr, exit 2.
    Error(String),
}

/// Parses the command line (with Go flags translated) and checks it.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Parsed {
    match Cli::try_parse_from(translate_go_flags(args)) {
        Ok(cli) => match cli.run.check().and_then(|()| cli.run.timing().map(|_| ())) {
            Ok(()) => Parsed::Run(Box::new(cli)),
            Err(line) => Parsed::Error(line),
        },
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            Parsed::Info(e.to_string())
        }
        Err(e) => Parsed::Error(one_line(&e)),
    }
}

/// clap's error, as one line: its message without the usage block and tips.
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let message: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.trim_start().starts_with("tip:"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let line = message.join(" ");
    let line = line.trim_start_matches("error: ");
    if line.is_empty() {
        "bad arguments (see --help)".to_string()
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        std::iter::once("elector".to_string())
            .chain(line.split_whitespace().map(str::to_string))
            .collect()
    }

    fn run(line: &str) -> RunArgs {
        match parse(args(line)) {
            Parsed::Run(cli) => cli.run,
            Parsed::Info(_) => panic!("info for {line}"),
            Parsed::Error(e) => panic!("error for {line}: {e}"),
        }
    }

    fn error(line: &str) -> String {
        match parse(args(line)) {
            Parsed::Error(e) => e,
            _ => panic!("{line} should fail"),
        }
    }

    #[test]
    fn go_flags_work() {
        let a = run(
            "-etcd=http://10.0.0.1:2379 -iotexAdmin=http://127.0.0.1:9019 -iotexProbe http://127.0.0.1:8089 -key=/k -value=a",
        );
        assert_eq!(a.etcd, vec!["http://10.0.0.1:2379"]);
        assert_eq!(a.iotex_admin, "http://127.0.0.1:9019");
        assert_eq!(a.iotex_probe, "http://127.0.0.1:8089");
        assert_eq!(a.key, "/k");
        assert_eq!(a.value(), "a");
    }

    #[test]
    fn conventional_flags_and_lists() {
        let a = run(
            "--etcd http://a:2379,http://b:2379 --ttl 3s --keepalive-interval 300ms --etcd-timeout 300ms --drain-bound 700ms --safety-margin 500ms --node-timeout 150ms --confirm-poll-interval 100ms --restart-bound 2s",
        );
        assert_eq!(a.etcd.len(), 2);
        let t = a.timing().unwrap();
        assert_eq!(t.lease_ttl, Duration::from_secs(3));
        assert_eq!(t.activation_delay, t.minimum_activation_delay());
    }

    #[test]
    fn defaults_match_the_go_elector() {
        let a = run("");
        assert_eq!(a.etcd, vec!["http://127.0.0.1:2379"]);
        assert_eq!(a.iotex_admin, "http://127.0.0.1:9009");
        assert_eq!(a.iotex_probe, "http://127.0.0.1:8080");
        assert_eq!(a.key, "/iotex-server");
        assert!(!a.value().is_empty());
        assert_eq!(a.timing().unwrap(), Timing::default());
    }

    #[test]
    fn bad_input_is_one_line() {
        for (line, needle) in [
            ("--ttl ten", "not a duration"),
            ("--bogus", "--bogus"),
            ("--iotex-admin 127.0.0.1:9009", "not an http:// URL"),
            ("--ttl 9s", "renewal_window"),
            (
                "--safety-margin 100ms",
                "margin_covers_standby_confirmation",
            ),
            (
                "--activation-delay 1s",
                "activation_delay_covers_dead_leader",
            ),
            ("--status-addr nowhere", "not an address"),
            ("--key /a/", "must be non-empty"),
            ("--etcd-cert /tmp/c", "--etcd-key"),
        ] {
            let e = error(line);
            assert!(e.contains(needle), "{line}: {e}");
            assert!(!e.contains('\n'), "{line}: multi-line error {e:?}");
        }
    }

    #[test]
    fn translation_leaves_other_flags_alone() {
        let out = translate_go_flags(args("-etcd=x -keyX=1 --key y -value"));
        assert_eq!(
            out,
            vec!["elector", "--etcd=x", "-keyX=1", "--key", "y", "--value"]
        );
    }
}

//! Command line. Accepts the Go elector's flags as they were written in the wild and
//! conventional ones: Go's flag package takes `-flag=v`, `--flag=v`, `-flag v` and `--flag v`
//! alike, so every long flag here works with one or two dashes, `iotexAdmin` and
//! `iotexProbe` are aliases of `--iotex-admin` and `--iotex-probe`, and a leading `elector`
//! argument (the Go image's `command: [elector, -etcd=...]`) is skipped. Every flag can also
//! come from an `ELECTOR_*` environment variable. Errors are one line, exit code 2.
//!
//! Every URL is parsed with a real URL parser at start-up ([`etcd_endpoint`], [`node_url`]):
//! an etcd endpoint without a scheme (`127.0.0.1:2379`, as Go's clientv3 takes it) means
//! `http://`; a missing host or port, an unknown scheme, or a path where none belongs is a
//! one-line error naming the flag, not a retry loop.
//!
//! Without a subcommand the elector runs. The operator commands `check`, `status`, `handover`
//! and `force-standby` take their flags after the subcommand name (`elector status --etcd
//! URL`), with the same names and environment variables as the running elector, so one
//! environment file serves all.

use crate::etcd::EtcdOptions;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use elector_core::Timing;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The Go elector's camel-case flags and their names here. Its other flags (`etcd`, `key`,
/// `value`) are spelled the same.
const GO_ALIASES: [(&str, &str); 2] =
    [("iotexAdmin", "iotex-admin"), ("iotexProbe", "iotex-probe")];

/// Above this lease TTL the elector warns: a crash failover takes about the TTL.
pub const TTL_WARN_ABOVE: Duration = Duration::from_secs(60);

/// `elector --version`: the package version, and a loud mark on a build with the tests'
/// planted bugs compiled in (`elector_core::PLANTED_BUGS_COMPILED`), which must never run in
/// production; `make` refuses to install such a binary.
pub const VERSION: &str = if elector_core::PLANTED_BUGS_COMPILED {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (TEST BUILD: planted bugs compiled in; never run it in production)"
    )
} else {
    env!("CARGO_PKG_VERSION")
};

#[derive(Parser, Debug)]
#[command(
    name = "elector",
    version = VERSION,
    about = "Keeps exactly one IoTeX delegate replica active, using etcd leader election.",
    long_about = "Keeps exactly one IoTeX delegate replica active, using etcd leader election.\n\n\
        Run one elector beside each replica (same host or network namespace: the node's admin \
        port listens on 127.0.0.1). The elector forces its node to standby, campaigns in etcd \
        and activates the node only while it leads, stepping down before its lease can expire. \
        Drop-in for the Go elector: -etcd=, -iotexAdmin=, -iotexProbe=, -key=, -value= work, \
        with one or two dashes, and every flag below also takes one dash (-ttl=3s). An etcd \
        endpoint without a scheme (127.0.0.1:2379) means http://.\n\n\
        Operator commands (flags after the command name; `elector <command> --help`): \
        `elector check` validates the flags, prints the derived timings and reads etcd and \
        the node without changing anything, `elector status` shows the election, `elector handover [--to VALUE]` moves leadership \
        cleanly, `elector force-standby` commands the node standby (systemd ExecStopPost=).",
    after_help = "Safety rules and the timing inequalities: docs/safety.md. \
        Operations: docs/operations.md.",
    args_conflicts_with_subcommands = true,
    subcommand_help_heading = "Operator commands",
    subcommand_value_name = "COMMAND"
)]
pub struct Cli {
    /// An operator command; without one, the elector runs.
    #[command(subcommand)]
    pub command: Option<Operation>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// The operator commands.
#[derive(Subcommand, Debug, Clone)]
pub enum Operation {
    /// Check the flags and what they reach, changing nothing: timings, etcd, the node
    #[command(
        long_about = "Takes the running elector's flags (and ELECTOR_* variables), checks them \
            as the elector would at start-up, and prints the timings derived from them: lease \
            TTL, step-down lead, activation delay, node-lost bound, fence retry interval, the \
            shutdown bound (the longest a SIGTERM takes; systemd's TimeoutStopSec= must be \
            above it) and the expected failover after a crash and after a clean handover.\n\n\
            Then connects to etcd with the given TLS and auth and reads the election \
            (candidates in order with their leases, the leader, a pending handover request, \
            the last handover record), and reads the node's mode (GET /ha) and its readiness \
            probe. It says what it found, one line per check (ok, warn, FAIL).\n\n\
            Read-only: it never writes to etcd and never sends activate=true or \
            activate=false to the node. Every call is bounded; it ends within seconds even \
            when nothing answers.",
        after_help = "Exit codes: 0 every check passed (warnings allowed), 1 a check failed \
            (etcd unreachable, refused or failing; the node's /ha not answering or garbled; the \
            probe not answering; the node active while this replica does not lead; another \
            candidate using this replica's --value), 2 bad flags or unsafe timing."
    )]
    Check(Box<CheckArgs>),
    /// Show the election: candidates in order, leases, TTL left, who leads
    #[command(
        long_about = "Shows the election at --key as etcd holds it: every candidate in election \
            order (the first leads) with its value, lease id and the lease's TTL left, any \
            pending handover request and the last handover record. Two candidates with one \
            value (two replicas configured with the same identity) are flagged with a warning.\n\n\
            Reads etcd only; works beside running electors, Go electors and etcdctl candidates.",
        after_help = "Exit codes: 0 shown (also with warnings), 1 etcd unreachable or failed, \
            2 bad flags."
    )]
    Status(StatusArgs),
    /// Ask the leader to hand over cleanly, and wait until it did
    #[command(
        long_about = "Asks the current leader to hand over: it commands its node standby, waits \
            until a read confirms standby, then in one etcd transaction writes a handover record \
            and deletes its key, so the next leader activates its node at once, without the \
            activation delay and without overlap. With --to, candidates ahead of the named one \
            step aside first. Candidates are only replicas whose node is ready (an unready \
            replica withdraws), so a candidate in line is a ready standby.\n\n\
            Refuses at once when no other candidate exists or the named one is not a \
            candidate. Succeeds when etcd shows the old leader's key gone, a handover record \
            naming it, and the new leader first (the named one, if any). Otherwise fails with \
            the reason after --timeout and withdraws the request. A Go elector or etcdctl \
            leader ignores handover requests.",
        after_help = "Exit codes: 0 handed over (or the named replica leads already), 1 refused, \
            failed or timed out (the request is withdrawn), 2 bad flags."
    )]
    Handover(HandoverArgs),
    /// Command the node standby and confirm it by a read (for systemd ExecStopPost=)
    #[command(
        long_about = "Sends /ha?activate=false to the node at once, then reads /ha until it \
            says {\"active\":false}, re-sending the command on failures, all within --timeout. \
            Meant for systemd's ExecStopPost=, so that the node is standby whenever the elector \
            exits, for whatever reason (crash, kill -9, watchdog). If standby is not confirmed \
            in time and --fence-cmd is set, the fence command runs.\n\n\
            Not a way to move leadership: a running leader's elector activates its node again at \
            its next check. Use `elector handover` for that.",
        after_help = "Exit codes: 0 standby confirmed, 1 not confirmed in time (fence run if \
            configured), 2 bad flags."
    )]
    ForceStandby(ForceStandbyArgs),
    /// Run the elector as a child; on its death or stall command the node standby, restart it
    #[command(long_about = SUPERVISE_ABOUT, after_help = SUPERVISE_EXIT_CODES)]
    Supervise(Box<SuperviseArgs>),
}

/// `elector supervise --help`: what the supervisor is for and what it does on each event.
const SUPERVISE_ABOUT: &str = "A small parent process for containers and hosts without \
    systemd: runs the elector (this binary, with the arguments after --, and the same ELECTOR_* \
    variables) as its child and takes the part of systemd's unit (Restart=, WatchdogSec=, \
    ExecStopPost=elector force-standby).\n\n\
    When the child exits for any reason other than a stop asked for here (a crash, kill -9, the \
    OOM killer), the node is commanded standby at once, exactly as `elector force-standby` does \
    with the child's --iotex-admin, --node-timeout, --fence-cmd, --value, --state-dir and etcd \
    flags, and the child is restarted after a pause that doubles from 0.5 s to 30 s and starts \
    over after a run of a minute. The child pings a watchdog (the systemd notify protocol: \
    NOTIFY_SOCKET and WATCHDOG_USEC are set for it); a child that misses its pings for \
    --watchdog is killed (SIGKILL) and handled as dead. Death is seen at once, so the node is \
    commanded standby within --node-timeout of it; a hang within 1.25 s (loop stall) + \
    --watchdog + 0.1 s + --node-timeout. The child checks that sum against --restart-bound at start-up, \
    as under systemd.\n\n\
    SIGTERM and SIGINT are passed on to the child, which hands over cleanly; the supervisor \
    waits 10 s for it, longer while the child asks for more time (EXTEND_TIMEOUT_USEC), and \
    exits with the child's status. A child that exits 2 (bad flags or configuration) is not \
    restarted: the supervisor exits 2. An operator command after -- (status, handover, ...) \
    runs unsupervised.\n\n\
    Under systemd, run the elector directly with deploy/systemd/elector.service instead: the \
    supervisor does not relay its child's notifications to systemd (it replaces NOTIFY_SOCKET \
    and WATCHDOG_USEC with its own).";

/// `elector supervise --help`: what its exit status means.
const SUPERVISE_EXIT_CODES: &str = "Exit codes: 0 the child handed over cleanly after SIGTERM or \
    SIGINT, 1 the child was stopped but its node had to be forced standby (the node's state is \
    in the log), 2 bad flags of the supervisor or the child; otherwise the child's own status.";

/// How the operator commands reach etcd: the running elector's flags and variables.
#[derive(Args, Debug, Clone)]
pub struct EtcdArgs {
    /// etcd endpoints, comma separated; host:port means http://host:port (Go flag: -etcd)
    #[arg(
        long,
        env = "ELECTOR_ETCD",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    pub etcd: Vec<String>,
    /// Election key; candidates are <key>/<lease id> (Go flag: -key)
    #[arg(long, env = "ELECTOR_KEY", default_value = "/iotex-server")]
    pub key: String,
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
    /// Longest wait for one etcd request
    #[arg(long, env = "ELECTOR_ETCD_TIMEOUT", value_parser = duration, default_value = "1s")]
    pub etcd_timeout: Duration,
}

/// Shortest connect bound of the operator commands: they may run far from etcd.
const OPERATOR_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

impl EtcdArgs {
    /// Checks what clap cannot; normalizes the endpoints.
    pub fn check(&mut self) -> Result<(), String> {
        check_endpoints(&mut self.etcd)?;
        check_key(&self.key)?;
        if self.etcd_timeout.is_zero() {
            return Err("--etcd-timeout: must be greater than 0".into());
        }
        Ok(())
    }

    /// The connection options (reads the password).
    pub fn options(&self) -> Result<EtcdOptions, String> {
        Ok(EtcdOptions {
            endpoints: self.etcd.clone(),
            ca: self.etcd_ca.clone(),
            cert: self.etcd_cert.clone(),
            key: self.etcd_key.clone(),
            user: self.etcd_user.clone(),
            password: read_password(self.etcd_password_file.as_deref())?,
            connect_timeout: self.etcd_timeout.max(OPERATOR_CONNECT_TIMEOUT),
            request_timeout: self.etcd_timeout,
        })
    }
}

/// `elector check`: exactly the running elector's flags.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    #[command(flatten)]
    pub run: RunArgs,
}

/// `elector status`.
#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// Print JSON (one object) instead of a table
    #[arg(long)]
    pub json: bool,
}

/// `elector handover`.
#[derive(Args, Debug, Clone)]
pub struct HandoverArgs {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// The replica (its --value) that should lead next [default: the next in line]
    #[arg(long, value_name = "VALUE")]
    pub to: Option<String>,
    /// Give up (and withdraw the request) after this long
    #[arg(long, value_parser = duration, default_value = "60s")]
    pub timeout: Duration,
}

/// `elector force-standby`.
#[derive(Args, Debug, Clone)]
pub struct ForceStandbyArgs {
    /// The node's admin base URL; the elector appends /ha (Go flag: -iotexAdmin)
    #[arg(
        long,
        env = "ELECTOR_IOTEX_ADMIN",
        default_value = "http://127.0.0.1:9009"
    )]
    pub iotex_admin: String,
    /// Longest wait for one call to the node
    #[arg(long, env = "ELECTOR_NODE_TIMEOUT", value_parser = duration, default_value = "300ms")]
    pub node_timeout: Duration,
    /// Pause between two reads (and between retries after a failed call)
    #[arg(long, env = "ELECTOR_CONFIRM_POLL_INTERVAL", value_parser = duration, default_value = "200ms")]
    pub confirm_poll_interval: Duration,
    /// Give up confirming standby after this long: at least the node's drain time
    #[arg(long, env = "ELECTOR_FORCE_STANDBY_TIMEOUT", value_parser = duration, default_value = "10s")]
    pub timeout: Duration,
    /// Command run (sh -c) when standby is not confirmed in time, e.g. stopping the node's service
    #[arg(long, env = "ELECTOR_FENCE_CMD")]
    pub fence_cmd: Option<String>,
    /// The fence command is killed after this long
    #[arg(long, env = "ELECTOR_FENCE_TIMEOUT", value_parser = duration, default_value = "10s")]
    pub fence_timeout: Duration,
    /// This replica's identity in the election [default: the host name]
    #[arg(long, env = "ELECTOR_VALUE")]
    pub value: Option<String>,
    /// The elector's --state-dir: with standby confirmed, the term the crashed elector left there is ended at once [default: $STATE_DIRECTORY]
    #[arg(long, env = "ELECTOR_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

/// `elector supervise`: its own flags, then the elector's after `--`.
#[derive(Args, Debug, Clone)]
pub struct SuperviseArgs {
    /// Kill the elector when it sends no watchdog ping for this long [default: the longest that fits --restart-bound, at most 1s]
    #[arg(long, env = "ELECTOR_SUPERVISE_WATCHDOG", value_parser = duration)]
    pub watchdog: Option<Duration>,
    /// After the elector died, give up confirming standby after this long (then --fence-cmd runs)
    #[arg(long, env = "ELECTOR_FORCE_STANDBY_TIMEOUT", value_parser = duration, default_value = "10s")]
    pub standby_timeout: Duration,
    /// The elector's flags, as `elector` takes them (ELECTOR_* variables work too)
    #[arg(last = true, value_name = "ELECTOR FLAGS")]
    pub elector: Vec<String>,
}

impl ForceStandbyArgs {
    /// Our value: `--value`, else the host name (as the run command).
    pub fn value(&self) -> String {
        self.value.clone().unwrap_or_else(host_name)
    }
}

impl Operation {
    /// Checks what clap cannot; normalizes the etcd endpoints.
    pub fn check(&mut self) -> Result<(), String> {
        match self {
            Operation::Check(args) => {
                args.run.check()?;
                args.run.timing().map(|_| ())
            }
            Operation::Status(args) => args.etcd.check(),
            Operation::Handover(args) => {
                args.etcd.check()?;
                if args.to.as_deref().is_some_and(str::is_empty) {
                    return Err("--to: must not be empty".into());
                }
                if args.timeout.is_zero() {
                    return Err("--timeout: must be greater than 0".into());
                }
                Ok(())
            }
            Operation::ForceStandby(args) => {
                node_url("--iotex-admin", &args.iotex_admin, "/ha")?;
                args.etcd.check()?;
                for (flag, value) in [
                    ("--node-timeout", args.node_timeout),
                    ("--confirm-poll-interval", args.confirm_poll_interval),
                    ("--timeout", args.timeout),
                    ("--fence-timeout", args.fence_timeout),
                ] {
                    if value.is_zero() {
                        return Err(format!("{flag}: must be greater than 0"));
                    }
                }
                Ok(())
            }
            Operation::Supervise(args) => {
                if args.standby_timeout.is_zero() {
                    return Err("--standby-timeout: must be greater than 0".into());
                }
                if args.watchdog.is_some_and(|w| w.is_zero()) {
                    return Err("--watchdog: must be greater than 0".into());
                }
                Ok(())
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// etcd endpoints, comma separated; host:port means http://host:port (Go flag: -etcd)
    #[arg(
        long,
        env = "ELECTOR_ETCD",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    pub etcd: Vec<String>,

    /// The node's admin base URL; the elector appends /ha (Go flag: -iotexAdmin)
    #[arg(
        long,
        env = "ELECTOR_IOTEX_ADMIN",
        default_value = "http://127.0.0.1:9009"
    )]
    pub iotex_admin: String,

    /// The node's probe base URL; the elector appends /readiness (Go flag: -iotexProbe)
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
    /// Directory where the elector keeps its current term, so that after a crash its restart ends that term early [default: $STATE_DIRECTORY, set by systemd's StateDirectory=]
    #[arg(long, env = "ELECTOR_STATE_DIR", help_heading = "Operations")]
    pub state_dir: Option<std::path::PathBuf>,
    /// A leader whose node has not read active for this long gives way to another candidate (after proving the node standby)
    #[arg(long, env = "ELECTOR_NODE_LOST_AFTER", value_parser = duration, default_value = "10s", help_heading = "Timing")]
    pub node_lost_after: Duration,

    /// Command run (sh -c) when standby cannot be confirmed by the lease deadline, e.g. stopping the node's service
    #[arg(long, env = "ELECTOR_FENCE_CMD", help_heading = "Operations")]
    pub fence_cmd: Option<String>,
    /// The fence command is killed after this long
    #[arg(long, env = "ELECTOR_FENCE_TIMEOUT", value_parser = duration, default_value = "10s", help_heading = "Operations")]
    pub fence_timeout: Duration,
    /// Address of the /status, /metrics and /healthz server, or "off"
    #[arg(long, env = "ELECTOR_STATUS_ADDR", default_value = "127.0.0.1:9901", value_parser = status_addr, help_heading = "Operations")]
    pub status_addr: StatusAddr,
    /// Log format on stderr: human (colour only on a terminal without NO_COLOR) or json (one flat object per line: role, reason, ... at the top level)
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
            node_lost_after: self.node_lost_after,
        };
        timing.activation_delay = self
            .activation_delay
            .unwrap_or_else(|| timing.minimum_activation_delay());
        timing.validate().map_err(|e| e.to_string())?;
        Ok(timing)
    }

    /// What is allowed but probably not meant; logged as warnings at start-up and printed by
    /// `elector check`.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.ttl > TTL_WARN_ABOVE {
            warnings.push(format!(
                "--ttl {} is above {}: after a crash, failover takes about the TTL plus the \
                 activation delay; a TTL of 10s (the default) or 3s (the fast profile) is usual",
                humantime::format_duration(self.ttl),
                humantime::format_duration(TTL_WARN_ABOVE)
            ));
        }
        warnings
    }

    /// Our value: `--value`, else the host name.
    pub fn value(&self) -> String {
        self.value.clone().unwrap_or_else(host_name)
    }

    /// Checks what clap cannot: URLs and the key; normalizes the etcd endpoints.
    pub fn check(&mut self) -> Result<(), String> {
        check_endpoints(&mut self.etcd)?;
        node_url("--iotex-admin", &self.iotex_admin, "/ha")?;
        node_url("--iotex-probe", &self.iotex_probe, "/readiness")?;
        check_key(&self.key)?;
        if self.value().is_empty() {
            return Err("--value: must not be empty".into());
        }
        if !self.fence_timeout.is_zero() {
            Ok(())
        } else {
            Err("--fence-timeout: must be greater than 0".into())
        }
    }

    /// The connection flags alone, as the operator commands take them.
    pub fn etcd_args(&self) -> EtcdArgs {
        EtcdArgs {
            etcd: self.etcd.clone(),
            key: self.key.clone(),
            etcd_ca: self.etcd_ca.clone(),
            etcd_cert: self.etcd_cert.clone(),
            etcd_key: self.etcd_key.clone(),
            etcd_user: self.etcd_user.clone(),
            etcd_password_file: self.etcd_password_file.clone(),
            etcd_timeout: self.etcd_timeout,
        }
    }

    /// The etcd password from ELECTOR_ETCD_PASSWORD or --etcd-password-file.
    pub fn etcd_password(&self) -> Result<Option<String>, String> {
        read_password(self.etcd_password_file.as_deref())
    }
}

/// The etcd password from `--etcd-password-file`, else `ELECTOR_ETCD_PASSWORD`.
fn read_password(file: Option<&std::path::Path>) -> Result<Option<String>, String> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--etcd-password-file {}: {e}", path.display()))?;
        return Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()));
    }
    Ok(std::env::var("ELECTOR_ETCD_PASSWORD").ok())
}

/// Checks and normalizes every `--etcd` endpoint in place (see [`etcd_endpoint`]), and that
/// they all use one scheme.
fn check_endpoints(endpoints: &mut [String]) -> Result<(), String> {
    for endpoint in endpoints.iter_mut() {
        *endpoint = etcd_endpoint(endpoint)?;
    }
    let https = endpoints
        .iter()
        .filter(|e| e.starts_with("https://"))
        .count();
    if https != 0 && https != endpoints.len() {
        return Err(format!(
            "--etcd: {} mixes http:// and https:// endpoints; use one scheme",
            endpoints.join(",")
        ));
    }
    Ok(())
}

/// One etcd endpoint, parsed with a URL parser and normalized to `scheme://host:port`.
///
/// Without `://` it is taken as `host:port` over plain HTTP, as Go's clientv3 takes it. Only
/// `http` and `https` are spoken; the host and the port must be given; a path, query,
/// fragment or credentials are refused (etcd's gRPC ignores paths, and a password belongs in
/// `ELECTOR_ETCD_PASSWORD` or `--etcd-password-file`, not in a URL that gets logged).
pub fn etcd_endpoint(raw: &str) -> Result<String, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Err("--etcd: empty endpoint in the list".into());
    }
    let full = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    let bad = |why: &str| format!("--etcd: {raw:?} {why}");
    let url = url::Url::parse(&full).map_err(|e| bad(&format!("is not a valid URL ({e})")))?;
    match url.scheme() {
        "http" | "https" => {}
        "unix" | "unixs" => {
            return Err(bad(
                "is a Unix socket, which is not supported; use http://host:port",
            ));
        }
        other => {
            return Err(bad(&format!(
                "has the unknown scheme {other:?}; use http:// or https://"
            )));
        }
    }
    let host = match url.host_str() {
        Some(host) if !host.is_empty() => host,
        _ => return Err(bad("has no host; write it like http://127.0.0.1:2379")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "holds credentials; use --etcd-user with ELECTOR_ETCD_PASSWORD or \
             --etcd-password-file",
        ));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(bad(&format!(
            "has a path or query; an etcd endpoint is only scheme://host:port, like {}://{host}:2379",
            url.scheme()
        )));
    }
    // The parser forgets a port equal to the scheme's default: look at what was written.
    let authority = full
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""))
        .unwrap_or("");
    let explicit_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    let port = match (url.port_or_known_default(), explicit_port) {
        (Some(port), true) => port,
        _ => {
            return Err(bad(&format!(
                "has no port; etcd clients usually use 2379: {}://{host}:2379",
                url.scheme()
            )));
        }
    };
    Ok(format!("{}://{host}:{port}", url.scheme()))
}

/// A node URL (`--iotex-admin`, `--iotex-probe`): an `http://` or `https://` base URL with a
/// host, to which the elector appends `endpoint` (`/ha`, `/readiness`). A path prefix is
/// allowed (a proxy); the endpoint itself, a query or a fragment are refused.
pub fn node_url(flag: &str, raw: &str, endpoint: &str) -> Result<String, String> {
    let text = raw.trim();
    let bad = |why: String| format!("{flag}: {raw:?} {why}");
    if !text.contains("://") {
        return Err(bad(format!(
            "is not an http:// URL; write http://{}",
            text.trim_start_matches('/')
        )));
    }
    let url = url::Url::parse(text).map_err(|e| bad(format!("is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "has the unknown scheme {:?}; use http://",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad(
            "has no host; write it like http://127.0.0.1:9009".into()
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(format!(
            "has a query or fragment; give the base URL, the elector appends {endpoint}"
        )));
    }
    // `/readiness` and `/health` are one handler on the node's probe port.
    let endpoints: &[&str] = match endpoint {
        "/readiness" => &["/readiness", "/health"],
        other => &[other],
    };
    let path = url.path().trim_end_matches('/');
    if let Some(found) = endpoints.iter().find(|e| path.ends_with(**e)) {
        let base = text.trim_end_matches('/');
        return Err(bad(format!(
            "ends with {found}; give the base URL, the elector appends {endpoint}: {}",
            &base[..base.len() - found.len()]
        )));
    }
    Ok(text.to_string())
}

fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.ends_with('/') {
        return Err(format!(
            "--key: {key:?} must be non-empty and not end with '/'"
        ));
    }
    Ok(())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "default".to_string())
}

/// The long flags of a command: name, and whether it takes a value.
fn long_flags(command: &clap::Command) -> HashMap<String, bool> {
    command
        .get_arguments()
        .filter_map(|arg| {
            let takes_value = arg.get_action().takes_values();
            arg.get_long().map(|long| (long.to_string(), takes_value))
        })
        .chain([("help".to_string(), false), ("version".to_string(), false)])
        .collect()
}

/// The conventional name of a flag written as `name` (without dashes), if it is one.
fn flag_name<'a>(name: &'a str, flags: &HashMap<String, bool>) -> Option<(&'a str, bool)> {
    let name = GO_ALIASES
        .iter()
        .find(|(go, _)| *go == name)
        .map_or(name, |(_, ours)| ours);
    flags.get(name).map(|takes_value| (name, *takes_value))
}

/// Rewrites the command line into what clap parses: drops a leading `elector` argument,
/// turns `-flag`, `-flag=v`, `--iotexAdmin=v` and the like into `--flag`/`--flag=v`, and
/// leaves values and everything else as they are. A bare `iotexProbe=URL` (the Go README's
/// typo, which the Go elector silently took for the end of its flags) is refused with the fix.
pub fn normalize_args<I: IntoIterator<Item = String>>(args: I) -> Result<Vec<String>, String> {
    let mut args = args.into_iter();
    let mut out: Vec<String> = args.next().into_iter().collect();
    let mut rest: Vec<String> = args.collect();
    // `command: [elector, -etcd=...]` in front of an image whose entry point is the elector.
    if rest.first().is_some_and(|a| {
        std::path::Path::new(a)
            .file_name()
            .is_some_and(|n| n == "elector")
    }) {
        rest.remove(0);
    }
    let root = Cli::command();
    let root_flags = long_flags(&root);
    let mut flags = root_flags.clone();
    let mut in_subcommand = false;
    let mut value_next = false;
    let mut terminated = false;
    for arg in rest {
        if terminated || value_next {
            value_next = false;
            out.push(arg);
            continue;
        }
        if arg == "--" {
            terminated = true;
            out.push(arg);
            continue;
        }
        let dashed = arg.strip_prefix("--").or_else(|| {
            arg.strip_prefix('-')
                .filter(|body| body.chars().count() > 1)
        });
        if let Some(body) = dashed {
            let (name, value) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (body, None),
            };
            match flag_name(name, &flags) {
                Some((long, takes_value)) => {
                    value_next = takes_value && value.is_none();
                    out.push(match value {
                        Some(value) => format!("--{long}={value}"),
                        None => format!("--{long}"),
                    });
                }
                None => out.push(arg),
            }
            continue;
        }
        if !in_subcommand && let Some(sub) = root.find_subcommand(&arg) {
            in_subcommand = true;
            flags = long_flags(sub);
            out.push(arg);
            continue;
        }
        if let Some((name, value)) = arg.split_once('=')
            && let Some((long, _)) =
                flag_name(name, &flags).or_else(|| flag_name(name, &root_flags))
        {
            return Err(format!(
                "{arg:?} is not a flag (no leading dash): write -{name}={value} or --{long}={value}. \
                 The Go elector's README has this typo, and the Go elector silently ignored it \
                 and every flag after it: check that -key and -value say what your Go \
                 electors really used"
            ));
        }
        out.push(arg);
    }
    Ok(out)
}

/// The outcome of parsing: run, or print something and exit.
pub enum Parsed {
    Run(Box<Cli>),
    /// `--help` or `--version`: print to stdout, exit 0.
    Info(String),
    /// A bad flag: one line for stderr, exit 2.
    Error(String),
}

/// Parses the command line (Go spellings normalized, see [`normalize_args`]) and checks it;
/// etcd endpoints come out normalized (`scheme://host:port`).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Parsed {
    let args = match normalize_args(args) {
        Ok(args) => args,
        Err(line) => return Parsed::Error(line),
    };
    match Cli::try_parse_from(args) {
        Ok(mut cli) => {
            let checked = match &mut cli.command {
                // The running elector's flags (and variables) do not concern an operator
                // command: only its own are checked.
                Some(operation) => operation.check(),
                None => cli.run.check().and_then(|()| cli.run.timing().map(|_| ())),
            };
            match checked {
                Ok(()) => Parsed::Run(Box::new(cli)),
                Err(line) => Parsed::Error(line),
            }
        }
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
            ("--iotex-admin 127.0.0.1:9009", "is not an http:// URL"),
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

    fn operation(line: &str) -> Operation {
        match parse(args(line)) {
            Parsed::Run(cli) => cli
                .command
                .unwrap_or_else(|| panic!("no command in {line}")),
            Parsed::Info(_) => panic!("info for {line}"),
            Parsed::Error(e) => panic!("error for {line}: {e}"),
        }
    }

    #[test]
    fn bare_flags_still_run_the_elector() {
        match parse(args("--value a --ttl 10s")) {
            Parsed::Run(cli) => assert!(cli.command.is_none()),
            _ => panic!("bare flags must run the elector"),
        }
    }

    #[test]
    fn operator_commands_take_the_connection_flags() {
        match operation("status --json -etcd=http://10.0.0.1:2379 -key=/k") {
            Operation::Status(a) => {
                assert!(a.json);
                assert_eq!(a.etcd.etcd, vec!["http://10.0.0.1:2379"]);
                assert_eq!(a.etcd.key, "/k");
            }
            other => panic!("{other:?}"),
        }
        match operation("handover --to b --timeout 5s --etcd http://a:1,http://b:2") {
            Operation::Handover(a) => {
                assert_eq!(a.to.as_deref(), Some("b"));
                assert_eq!(a.timeout, Duration::from_secs(5));
                assert_eq!(a.etcd.etcd.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        match operation("handover") {
            Operation::Handover(a) => {
                assert_eq!(a.to, None);
                assert_eq!(a.timeout, Duration::from_secs(60));
            }
            other => panic!("{other:?}"),
        }
        match operation("force-standby -iotexAdmin=http://127.0.0.1:9019") {
            Operation::ForceStandby(a) => {
                assert_eq!(a.iotex_admin, "http://127.0.0.1:9019");
                assert_eq!(a.node_timeout, Duration::from_millis(300));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn operator_command_errors_are_one_line() {
        for (line, needle) in [
            ("status --bogus", "--bogus"),
            ("status --key /a/", "must be non-empty"),
            ("handover --to", "--to"),
            ("handover --timeout 0s", "greater than 0"),
            (
                "force-standby --iotex-admin 127.0.0.1:9009",
                "not an http:// URL",
            ),
            ("--etcd http://x:1 status", "status"),
            ("frobnicate", "frobnicate"),
        ] {
            let e = error(line);
            assert!(e.contains(needle), "{line}: {e}");
            assert!(!e.contains('\n'), "{line}: multi-line error {e:?}");
        }
    }

    #[test]
    fn every_operator_command_has_help() {
        for command in ["check", "status", "handover", "force-standby", "supervise"] {
            match parse(args(&format!("{command} --help"))) {
                Parsed::Info(text) => {
                    assert!(text.contains("Exit codes"), "{command}: {text}")
                }
                _ => panic!("{command} --help"),
            }
        }
        match parse(args("--help")) {
            Parsed::Info(text) => {
                for command in ["check", "status", "handover", "force-standby", "--ttl"] {
                    assert!(text.contains(command), "--help lacks {command}: {text}");
                }
            }
            _ => panic!("--help"),
        }
    }

    #[test]
    fn normalization_leaves_values_and_unknown_flags_alone() {
        let out = normalize_args(args("-etcd=x -keyX=1 --key -value -value")).unwrap();
        assert_eq!(
            out,
            vec![
                "elector", "--etcd=x", "-keyX=1", "--key", "-value", "--value"
            ]
        );
        let out = normalize_args(args("-h -V -- -key")).unwrap();
        assert_eq!(out, vec!["elector", "-h", "-V", "--", "-key"]);
    }

    #[test]
    fn every_go_spelling_works() {
        for line in [
            "-iotexAdmin=http://127.0.0.1:9019 -iotexProbe=http://127.0.0.1:8089",
            "--iotexAdmin=http://127.0.0.1:9019 --iotexProbe=http://127.0.0.1:8089",
            "-iotexAdmin http://127.0.0.1:9019 --iotexProbe http://127.0.0.1:8089",
            "--iotex-admin http://127.0.0.1:9019 -iotex-probe=http://127.0.0.1:8089",
            "elector -iotexAdmin=http://127.0.0.1:9019 -iotexProbe=http://127.0.0.1:8089",
            "/usr/local/bin/elector --iotexAdmin=http://127.0.0.1:9019 -iotexProbe=http://127.0.0.1:8089",
        ] {
            let a = run(line);
            assert_eq!(a.iotex_admin, "http://127.0.0.1:9019", "{line}");
            assert_eq!(a.iotex_probe, "http://127.0.0.1:8089", "{line}");
        }
        // Every long flag takes one dash, as Go's flag package allows.
        let a = run("-ttl=12s -keepalive-interval 500ms -value=b");
        assert_eq!(a.ttl, Duration::from_secs(12));
        assert_eq!(a.keepalive_interval, Duration::from_millis(500));
        assert_eq!(a.value(), "b");
        // A leading `elector` before an operator command, too.
        assert!(matches!(
            operation("elector status -etcd=127.0.0.1:2379"),
            Operation::Status(_)
        ));
    }

    #[test]
    fn etcd_endpoints_without_a_scheme_mean_http() {
        let a = run("-etcd=127.0.0.1:2379");
        assert_eq!(a.etcd, vec!["http://127.0.0.1:2379"]);
        let a = run("--etcd etcd-0.etcd:2379,etcd-1.etcd:2379,[::1]:2379");
        assert_eq!(
            a.etcd,
            vec![
                "http://etcd-0.etcd:2379",
                "http://etcd-1.etcd:2379",
                "http://[::1]:2379"
            ]
        );
        let a = run("--etcd https://10.0.0.1:2379/ --etcd-ca /ca.pem");
        assert_eq!(a.etcd, vec!["https://10.0.0.1:2379"]);
        match operation("status --etcd localhost:2379") {
            Operation::Status(s) => assert_eq!(s.etcd.etcd, vec!["http://localhost:2379"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_urls_name_the_flag() {
        for (line, needle) in [
            ("--etcd http://", "--etcd: \"http://\" is not a valid URL"),
            ("--etcd http://:2379", "--etcd: \"http://:2379\""),
            ("--etcd ftp://a:2379", "unknown scheme \"ftp\""),
            ("--etcd unix:///run/etcd.sock", "Unix socket"),
            ("--etcd http://a:2379/v3", "has a path"),
            ("--etcd http://a:2379?x=1", "has a path"),
            ("--etcd http://etcd", "has no port"),
            ("--etcd 10.0.0.1", "has no port"),
            ("--etcd http://u:p@a:2379", "credentials"),
            (
                "--etcd http://a:1,https://b:2",
                "mixes http:// and https://",
            ),
            ("--etcd=", "empty endpoint"),
            (
                "--iotex-admin http://",
                "--iotex-admin: \"http://\" is not a valid URL",
            ),
            (
                "--iotex-admin 127.0.0.1:9009",
                "write http://127.0.0.1:9009",
            ),
            ("--iotex-admin ftp://a:1", "unknown scheme"),
            (
                "--iotex-admin http://127.0.0.1:9009/ha",
                "the elector appends /ha",
            ),
            ("--iotex-admin http://127.0.0.1:9009/?x", "query"),
            (
                "--iotex-probe http://127.0.0.1:8080/readiness",
                "appends /readiness: http://127.0.0.1:8080",
            ),
            (
                "--iotex-probe http://127.0.0.1:8080/health/",
                "ends with /health",
            ),
            ("force-standby --iotex-admin http://", "--iotex-admin"),
            ("handover --etcd http://a", "has no port"),
        ] {
            let e = error(line);
            assert!(e.contains(needle), "{line}: {e}");
            assert!(!e.contains('\n'), "{line}: multi-line error {e:?}");
        }
        // A path prefix before the endpoint is fine (a proxy).
        let a = run("--iotex-admin http://127.0.0.1:9009/node-a/");
        assert_eq!(a.iotex_admin, "http://127.0.0.1:9009/node-a/");
    }

    #[test]
    fn the_readme_typo_is_refused_with_the_fix() {
        for line in [
            "-etcd=http://a:2379 -iotexAdmin=http://b:9009 iotexProbe=http://c:8080 -key=/k -value=v",
            "status iotexProbe=http://c:8080",
            "key=/k",
        ] {
            let e = error(line);
            assert!(e.contains("is not a flag (no leading dash)"), "{line}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let e = error("-etcd=http://a:2379 iotexProbe=http://c:8080 -key=/k");
        assert!(
            e.contains("write -iotexProbe=http://c:8080 or --iotex-probe=http://c:8080"),
            "{e}"
        );
        assert!(e.contains("-key and -value"), "{e}");
        // Anything else that is not a flag is clap's to refuse.
        assert!(error("stray").contains("stray"));
    }

    #[test]
    fn check_takes_the_running_elector_flags() {
        match operation(
            "check -etcd=127.0.0.1:2379 --iotexAdmin=http://127.0.0.1:9019 --ttl 3s \
             --keepalive-interval 300ms --etcd-timeout 300ms --drain-bound 700ms \
             --safety-margin 500ms --node-timeout 150ms --confirm-poll-interval 100ms \
             --restart-bound 2s --node-lost-after 5s --status-addr off --log-format json",
        ) {
            Operation::Check(a) => {
                assert_eq!(a.run.etcd, vec!["http://127.0.0.1:2379"]);
                assert_eq!(a.run.iotex_admin, "http://127.0.0.1:9019");
                assert_eq!(a.run.timing().unwrap(), Timing::fast_profile());
                assert_eq!(a.run.etcd_args().etcd, a.run.etcd);
            }
            other => panic!("{other:?}"),
        }
        // The elector's start-up checks apply.
        assert!(error("check --ttl 9s").contains("renewal_window"));
        assert!(error("check --iotex-probe http://").contains("--iotex-probe"));
    }

    #[test]
    fn a_long_ttl_is_allowed_with_a_warning() {
        let a = run("--ttl 1h");
        assert!(a.timing().is_ok());
        let warnings = a.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("--ttl 1h is above 1m"), "{warnings:?}");
        assert!(run("--ttl 60s").warnings().is_empty());
    }
}

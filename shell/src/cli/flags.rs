//! The flags of every command. A flag that several commands take is declared once, in a small
//! group flattened (`#[command(flatten)]`) where each command lists it, so its name, variable,
//! default and help cannot drift apart between commands. The groups are small because each
//! command's `--help` lists its flags in its own order: a group is a run of flags that every
//! command using it lists together.
//!
//! Every flag of every command once, with its variable, default and help; the logic that
//! reads them is in `cli.rs`.

use super::urls::{check_endpoints, check_key, node_url};
use crate::custody::KeyCustody;
use crate::etcd::EtcdOptions;
use clap::{Args, ValueEnum};
use elector_core::Timing;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The least `--registry-refresh`: `registry::MIN_WRITE_GAP`, the registry's flood bound (a
/// number, not an import, so that the flags depend on nothing they configure; a test keeps
/// them equal).
pub(crate) const REGISTRY_REFRESH_MIN: Duration = Duration::from_secs(1);

/// Above this lease TTL the elector warns: a crash failover takes about the TTL.
pub const TTL_WARN_ABOVE: Duration = Duration::from_secs(60);

/// Shortest connect bound of the operator commands: they may run far from etcd.
const OPERATOR_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

// ----- etcd ------------------------------------------------------------------------------

/// `--etcd`: where etcd is.
#[derive(Args, Debug, Clone)]
pub struct EtcdEndpoints {
    /// etcd endpoints, comma separated; host:port means http://host:port (Go flag: -etcd)
    #[arg(
        long,
        env = "ELECTOR_ETCD",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    pub etcd: Vec<String>,
}

/// `--key`: the election.
#[derive(Args, Debug, Clone)]
pub struct ElectionKey {
    /// Election key; candidates are <key>/<lease id> (Go flag: -key)
    #[arg(long, env = "ELECTOR_KEY", default_value = "/iotex-server")]
    pub key: String,
}

/// How to authenticate to etcd: TLS files and user.
#[derive(Args, Debug, Clone)]
pub struct EtcdSecurity {
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
}

/// `--etcd-timeout`: the bound of one etcd request.
#[derive(Args, Debug, Clone)]
pub struct EtcdTimeout {
    /// Longest wait for one etcd request (and for an HTTP/2 ping's answer)
    #[arg(long, env = "ELECTOR_ETCD_TIMEOUT", value_parser = duration, default_value = "1s")]
    pub etcd_timeout: Duration,
}

/// How the operator commands reach etcd: the running elector's flags and variables.
#[derive(Args, Debug, Clone)]
pub struct EtcdArgs {
    #[command(flatten)]
    pub endpoints: EtcdEndpoints,
    #[command(flatten)]
    pub election: ElectionKey,
    #[command(flatten)]
    pub security: EtcdSecurity,
    #[command(flatten)]
    pub timeout: EtcdTimeout,
}

impl EtcdArgs {
    /// The etcd endpoints (`--etcd`).
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints.etcd
    }

    /// The election key (`--key`).
    pub fn key(&self) -> &str {
        &self.election.key
    }

    /// Checks what clap cannot; normalizes the endpoints.
    pub fn validate(&mut self) -> Result<(), String> {
        check_endpoints(&mut self.endpoints.etcd)?;
        check_key(&self.election.key)?;
        if self.timeout.etcd_timeout.is_zero() {
            return Err("--etcd-timeout: must be greater than 0".into());
        }
        Ok(())
    }

    /// The connection options of an operator command (reads the password).
    pub fn options(&self) -> Result<EtcdOptions, String> {
        let timeout = self.timeout.etcd_timeout;
        self.security.options(
            &self.endpoints.etcd,
            timeout.max(OPERATOR_CONNECT_TIMEOUT),
            timeout,
        )
    }
}

impl EtcdSecurity {
    /// The connection options for `endpoints` with these credentials (reads the password).
    pub fn options(
        &self,
        endpoints: &[String],
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<EtcdOptions, String> {
        Ok(EtcdOptions {
            endpoints: endpoints.to_vec(),
            ca: self.etcd_ca.clone(),
            cert: self.etcd_cert.clone(),
            key: self.etcd_key.clone(),
            user: self.etcd_user.clone(),
            password: read_password(self.etcd_password_file.as_deref())?,
            connect_timeout,
            request_timeout,
            ping: crate::etcd::pings_for(&Timing::default()),
        })
    }
}

/// The etcd password from `--etcd-password-file`, else `ELECTOR_ETCD_PASSWORD`.
fn read_password(file: Option<&Path>) -> Result<Option<String>, String> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--etcd-password-file {}: {e}", path.display()))?;
        return Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()));
    }
    Ok(std::env::var("ELECTOR_ETCD_PASSWORD").ok())
}

// ----- the node and the fence ------------------------------------------------------------

/// `--iotex-admin`: the node's admin endpoint.
#[derive(Args, Debug, Clone)]
pub struct NodeAdmin {
    /// The node's admin base URL; the elector appends /ha (Go flag: -iotexAdmin)
    #[arg(
        long,
        env = "ELECTOR_IOTEX_ADMIN",
        default_value = "http://127.0.0.1:9009"
    )]
    pub iotex_admin: String,
}

/// `--node-timeout`: the bound of one node call.
#[derive(Args, Debug, Clone)]
pub struct NodeTimeout {
    /// Longest wait for one call to the node
    #[arg(long, env = "ELECTOR_NODE_TIMEOUT", value_parser = duration, default_value = "300ms")]
    pub node_timeout: Duration,
}

/// The chain's slot, as the node's consensus uses it: the defaults are mainnet's since the
/// Wake upgrade. The elector derives its waits from them (docs/safety.md, "Slots").
#[derive(Args, Debug, Clone)]
pub struct ChainSlot {
    /// The chain's block interval: one slot (iotex-core's blockInterval; 5s before the Wake upgrade). The node holds activate=false until the slot in progress starts
    #[arg(long, env = "ELECTOR_BLOCK_INTERVAL", value_parser = duration, default_value = "2500ms", help_heading = "Chain")]
    pub block_interval: Duration,
}

/// Key custody: the node runs with a placeholder key, and the elector installs the operator's
/// key only while its replica leads (docs/operations.md, "Key custody").
#[derive(Args, Debug, Clone, Default)]
pub struct KeyCustodyArgs {
    /// The operator's producer private key (64 hex digits, mode 600): installed into the node only while this replica may have it active, withdrawn whenever it demotes. Needs iotex-core v2.5.0 or later, --placeholder-key-file and --admin-token-file
    #[arg(long, env = "ELECTOR_PRODUCER_KEY_FILE", help_heading = "Key custody")]
    pub producer_key_file: Option<PathBuf>,
    /// This replica's placeholder private key (64 hex digits, mode 600): its node's configured producerPrivKey, no delegate's key; put back whenever the operator's key is withdrawn
    #[arg(
        long,
        env = "ELECTOR_PLACEHOLDER_KEY_FILE",
        help_heading = "Key custody"
    )]
    pub placeholder_key_file: Option<PathBuf>,
    /// The node's admin token, its IOTEX_ADMIN_TOKEN (mode 600), sent as Authorization: Bearer to /producer-keys
    #[arg(long, env = "ELECTOR_ADMIN_TOKEN_FILE", help_heading = "Key custody")]
    pub admin_token_file: Option<PathBuf>,
}

impl KeyCustodyArgs {
    /// The keys and token of the three flags, or none without them; all three or none.
    pub fn load(&self) -> Result<Option<KeyCustody>, String> {
        match (
            &self.producer_key_file,
            &self.placeholder_key_file,
            &self.admin_token_file,
        ) {
            (None, None, None) => Ok(None),
            (Some(key), Some(placeholder), Some(token)) => {
                KeyCustody::load(key, placeholder, token).map(Some)
            }
            _ => Err(
                "key custody needs all three of --producer-key-file, --placeholder-key-file \
                 and --admin-token-file"
                    .into(),
            ),
        }
    }
}

/// `--confirm-poll-interval`: how often standby is re-read until it is confirmed.
#[derive(Args, Debug, Clone)]
pub struct ConfirmPoll {
    /// How often the mode is re-read while standby is unconfirmed
    #[arg(long, env = "ELECTOR_CONFIRM_POLL_INTERVAL", value_parser = duration, default_value = "200ms")]
    pub confirm_poll_interval: Duration,
}

/// The fence: what runs when standby cannot be confirmed in time.
#[derive(Args, Debug, Clone)]
pub struct FenceArgs {
    /// Command run (sh -c) when standby cannot be confirmed by the lease deadline, e.g. stopping the node's service
    #[arg(long, env = "ELECTOR_FENCE_CMD")]
    pub fence_cmd: Option<String>,
    /// The fence command is killed after this long
    #[arg(long, env = "ELECTOR_FENCE_TIMEOUT", value_parser = duration, default_value = "10s")]
    pub fence_timeout: Duration,
}

impl FenceArgs {
    /// The fence these flags describe.
    pub fn fence(&self) -> crate::fence::Fence {
        crate::fence::Fence::from_flags(self.fence_cmd.as_deref(), self.fence_timeout)
    }

    /// Checks what clap cannot.
    fn validate(&self) -> Result<(), String> {
        positive("--fence-timeout", self.fence_timeout)
    }
}

// ----- the commands ----------------------------------------------------------------------

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
    /// Show the set again every INTERVAL until Ctrl-C (or --watch-for); with --json one object per line
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "2s", value_parser = duration)]
    pub watch: Option<Duration>,
    /// With --watch: stop after this long
    #[arg(long, value_parser = duration, default_value = "1h")]
    pub watch_for: Duration,
    /// Read etcd only: do not ask each elector's /status (the URL in its record) to cross-check its record
    #[arg(long)]
    pub no_live: bool,
}

impl StatusArgs {
    /// Checks what clap cannot; normalizes the etcd endpoints.
    pub fn validate(&mut self) -> Result<(), String> {
        self.etcd.validate()?;
        if let Some(interval) = self.watch {
            positive("--watch", interval)?;
        }
        positive("--watch-for", self.watch_for)
    }
}

/// `elector history`.
#[derive(Args, Debug, Clone)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// Print JSON (one object) instead of a table
    #[arg(long)]
    pub json: bool,
    /// Show at most this many of the newest events
    #[arg(long, default_value_t = 200)]
    pub limit: usize,
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
    /// Hand over even when the successor has no elector registry record (a Go elector or an etcdctl candidate), or the registry cannot be read
    #[arg(long)]
    pub force: bool,
}

impl HandoverArgs {
    /// Checks what clap cannot; normalizes the etcd endpoints.
    pub fn validate(&mut self) -> Result<(), String> {
        self.etcd.validate()?;
        if self.to.as_deref().is_some_and(str::is_empty) {
            return Err("--to: must not be empty".into());
        }
        positive("--timeout", self.timeout)
    }
}

/// `elector exclude`.
#[derive(Args, Debug, Clone)]
pub struct ExcludeArgs {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// The replica to take out of the election: its elector's --value
    #[arg(value_name = "VALUE")]
    pub value: String,
    /// Why, stored with the exclusion and shown in the replica's /status
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub reason: String,
    /// Stop waiting for the replica to leave the election after this long (the exclusion stays)
    #[arg(long, value_parser = duration, default_value = "60s")]
    pub timeout: Duration,
    /// Return once the exclusion is stored, without waiting for the replica to leave
    #[arg(long)]
    pub no_wait: bool,
    /// Store the exclusion even when no replica has VALUE (no registry record, no candidate key), or the registry cannot be read
    #[arg(long)]
    pub force: bool,
}

impl ExcludeArgs {
    /// Checks what clap cannot; normalizes the etcd endpoints.
    pub fn validate(&mut self) -> Result<(), String> {
        self.etcd.validate()?;
        replica_value(&self.value)?;
        if self.reason.chars().any(char::is_control) {
            return Err("--reason: must be one line without control characters".into());
        }
        positive("--timeout", self.timeout)
    }
}

/// `elector include`.
#[derive(Args, Debug, Clone)]
pub struct IncludeArgs {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// The replica to let campaign again: its elector's --value
    #[arg(value_name = "VALUE")]
    pub value: String,
}

impl IncludeArgs {
    /// Checks what clap cannot; normalizes the etcd endpoints.
    pub fn validate(&mut self) -> Result<(), String> {
        self.etcd.validate()?;
        replica_value(&self.value)
    }
}

/// A replica's value as an operator command names it: it becomes part of an etcd key, so it
/// must be what an elector's --value can be and one printable line.
fn replica_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("VALUE: must not be empty (it is the replica's --value)".into());
    }
    if value.chars().any(char::is_control) {
        return Err(format!(
            "VALUE {value:?}: must not contain control characters (it is the replica's --value)"
        ));
    }
    Ok(())
}

/// `elector force-standby`. Its shared flags say what they mean for this command.
#[derive(Args, Debug, Clone)]
#[command(
    mut_arg("confirm_poll_interval", |arg| arg.help(
        "Pause between two reads (and between retries after a failed call)"
    )),
    mut_arg("fence_cmd", |arg| arg.help(
        "Command run (sh -c) when standby is not confirmed in time, e.g. stopping the node's service"
    ))
)]
pub struct ForceStandbyArgs {
    #[command(flatten)]
    pub node: NodeAdmin,
    #[command(flatten)]
    pub custody: KeyCustodyArgs,
    #[command(flatten)]
    pub node_timeout: NodeTimeout,
    #[command(flatten)]
    pub chain: ChainSlot,
    #[command(flatten)]
    pub confirm_poll: ConfirmPoll,
    /// The elector's --profile: the defaults of --node-timeout, --block-interval and --confirm-poll-interval
    #[arg(long, env = "ELECTOR_PROFILE", value_enum, default_value = "default")]
    pub profile: Profile,
    /// Give up confirming standby after this long: at least the node's drain time
    #[arg(long, env = "ELECTOR_FORCE_STANDBY_TIMEOUT", value_parser = duration, default_value = "10s")]
    pub timeout: Duration,
    #[command(flatten)]
    pub fence: FenceArgs,
    /// This replica's identity in the election [default: the host name]
    #[arg(long, env = "ELECTOR_VALUE")]
    pub value: Option<String>,
    /// The elector's --state-dir: with standby confirmed, the term the crashed elector left there is ended at once [default: $STATE_DIRECTORY]
    #[arg(long, env = "ELECTOR_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

impl ForceStandbyArgs {
    /// Takes the timing flags not given (`explicit`: the clap ids given) from `--profile`.
    pub fn apply_profile(&mut self, explicit: &BTreeSet<String>) {
        let profile = self.profile.timing();
        if !explicit.contains("node_timeout") {
            self.node_timeout.node_timeout = profile.node_timeout;
        }
        if !explicit.contains("block_interval") {
            self.chain.block_interval = profile.block_interval;
        }
        if !explicit.contains("confirm_poll_interval") {
            self.confirm_poll.confirm_poll_interval = profile.confirm_poll_interval;
        }
    }

    /// Our value: `--value`, else the host name (as the run command).
    pub fn value(&self) -> String {
        self.value.clone().unwrap_or_else(host_name)
    }

    /// Checks what clap cannot; normalizes the etcd endpoints.
    pub fn validate(&mut self) -> Result<(), String> {
        node_url("--iotex-admin", &self.node.iotex_admin, "/ha")?;
        self.etcd.validate()?;
        positive("--node-timeout", self.node_timeout.node_timeout)?;
        positive("--block-interval", self.chain.block_interval)?;
        positive(
            "--confirm-poll-interval",
            self.confirm_poll.confirm_poll_interval,
        )?;
        positive("--timeout", self.timeout)?;
        self.custody.load()?;
        self.fence.validate()
    }
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// `--profile`: a named timing, the defaults of every timing flag not given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// The defaults: a 10 s lease.
    #[default]
    Default,
    /// The fast profile of docs/safety.md: a 7 s lease, 300 ms etcd timings, for an etcd
    /// that answers within 300 ms.
    Fast,
}

impl Profile {
    /// The profile's timing, every derived value included.
    pub fn timing(self) -> Timing {
        match self {
            Profile::Default => Timing::default(),
            Profile::Fast => Timing::fast_profile(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Fast => "fast",
        }
    }
}

/// `--profile`'s help: what the fast profile sets (a test keeps it equal to
/// `Timing::fast_profile()`).
pub const PROFILE_HELP: &str = "Timing profile: the default of every timing flag not given \
    (a flag or ELECTOR_* variable wins over it). default: a 10s lease. fast: --ttl 7s \
    --keepalive-interval 300ms --etcd-timeout 300ms --safety-margin 600ms --node-timeout 150ms \
    --confirm-poll-interval 100ms --restart-bound 2s --node-lost-after 5s, for an etcd that \
    answers within 300ms (failover after a crash in about 18s instead of 24s). Give every \
    replica the same";

/// The running elector's flags (no subcommand; also `elector check`).
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub endpoints: EtcdEndpoints,

    #[command(flatten)]
    pub node: NodeAdmin,

    /// The node's probe base URL; the elector appends /readiness (Go flag: -iotexProbe)
    #[arg(
        long,
        env = "ELECTOR_IOTEX_PROBE",
        default_value = "http://127.0.0.1:8080"
    )]
    pub iotex_probe: String,

    #[command(flatten)]
    pub election: ElectionKey,

    /// This replica's identity in the election [default: the host name] (Go flag: -value)
    #[arg(long, env = "ELECTOR_VALUE")]
    pub value: Option<String>,

    #[command(flatten)]
    pub security: EtcdSecurity,

    #[arg(long, env = "ELECTOR_PROFILE", value_enum, default_value = "default", help = PROFILE_HELP, help_heading = "Timing")]
    pub profile: Profile,

    /// Lease TTL requested from etcd; failover after a crash takes about this plus the activation delay
    #[arg(long, env = "ELECTOR_TTL", value_parser = duration, default_value = "10s", help_heading = "Timing")]
    pub ttl: Duration,
    /// Keep-alive period; also the HTTP/2 ping interval of a silent etcd connection
    #[arg(long, env = "ELECTOR_KEEPALIVE_INTERVAL", value_parser = duration, default_value = "1s", help_heading = "Timing")]
    pub keepalive_interval: Duration,
    // From here on, a flattened flag without a heading of its own is listed under "Timing"
    // (every later flag here names its heading).
    #[command(flatten, next_help_heading = "Timing")]
    pub etcd_timeout: EtcdTimeout,
    /// Longest time after activate=false reaches the node until it made its last signature and reads standby [default: 2 x --block-interval + --unmatched-event-interval, 5.1s]
    #[arg(long, env = "ELECTOR_DRAIN_BOUND", value_parser = duration, help_heading = "Timing")]
    pub drain_bound: Option<Duration>,
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
    #[command(flatten)]
    pub node_timeout: NodeTimeout,
    /// How often the node's mode is read to reconcile it
    #[arg(long, env = "ELECTOR_NODE_CHECK_INTERVAL", value_parser = duration, default_value = "1s", help_heading = "Timing")]
    pub node_check_interval: Duration,
    #[command(flatten)]
    pub confirm_poll: ConfirmPoll,
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
    /// Wait of a new leader that cannot know its predecessor is standby (a dead leader's, or one cut off when etcd ended its lease early) [default: the smallest safe value]
    #[arg(long, env = "ELECTOR_ACTIVATION_DELAY", value_parser = duration, help_heading = "Timing")]
    pub activation_delay: Option<Duration>,
    /// How long a leader waits for a named handover target to be next in line
    #[arg(long, env = "ELECTOR_HANDOVER_TIMEOUT", value_parser = duration, default_value = "30s", help_heading = "Timing")]
    pub handover_timeout: Duration,
    /// Directory where the elector keeps (and locks) its current term, so that after a crash its restart or force-standby ends that term early [default: $STATE_DIRECTORY (systemd's StateDirectory=), else /var/lib/elector for root, else $XDG_STATE_HOME/elector or ~/.local/state/elector]
    #[arg(long, env = "ELECTOR_STATE_DIR", help_heading = "Operations")]
    pub state_dir: Option<PathBuf>,
    /// Do not start the watcher process that commands the node standby when this elector dies or hangs; only for setups where something else does (the watcher is off anyway under systemd, `elector supervise`, and as a container's PID 1)
    #[arg(long, env = "ELECTOR_NO_WATCHER", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new(), help_heading = "Operations")]
    pub no_watcher: bool,
    /// A leader whose node has not read active for this long gives way to another candidate (after proving the node standby)
    #[arg(long, env = "ELECTOR_NODE_LOST_AFTER", value_parser = duration, default_value = "10s", help_heading = "Timing")]
    pub node_lost_after: Duration,

    #[command(flatten)]
    pub chain: ChainSlot,
    #[command(flatten)]
    pub custody: KeyCustodyArgs,
    /// How far into a slot a node that prepares still signs for it (iotex-core's toleratedOvertime)
    #[arg(long, env = "ELECTOR_TOLERATED_OVERTIME", value_parser = duration, default_value = "2s", help_heading = "Chain")]
    pub tolerated_overtime: Duration,
    /// How often the node retries a consensus event that matches nothing (iotex-core's unmatchedEventInterval)
    #[arg(long, env = "ELECTOR_UNMATCHED_EVENT_INTERVAL", value_parser = duration, default_value = "100ms", help_heading = "Chain")]
    pub unmatched_event_interval: Duration,
    /// Largest difference between two replicas' wall clocks, by which their nodes place slots (NTP)
    #[arg(long, env = "ELECTOR_MAX_CLOCK_OFFSET", value_parser = duration, default_value = "100ms", help_heading = "Chain")]
    pub max_clock_offset: Duration,

    // Listed under "Operations" (the later flags name their headings).
    #[command(flatten, next_help_heading = "Operations")]
    pub fence: FenceArgs,
    /// The node's config.yaml, read at start: what does not fit the HA setup (system.active, the admin port, with key custody the placeholder producer key) is logged, and a fingerprint of its network.masterKey (never the key) is published so that replicas sharing a p2p identity are flagged; `elector check` judges it in full
    #[arg(long, env = "ELECTOR_NODE_CONFIG", help_heading = "Operations")]
    pub node_config: Option<PathBuf>,
    /// Address of the /status, /metrics and /healthz server, or "off"
    #[arg(long, env = "ELECTOR_STATUS_ADDR", default_value = "127.0.0.1:9901", value_parser = status_addr, help_heading = "Operations")]
    pub status_addr: StatusAddr,
    /// How often this elector rewrites its registry record (<key>.elector/members/<value>, read by `elector status`) when nothing changed; a record older than twice this is flagged ELECTOR-SILENT, and it expires after ten times this
    // The default is `registry::DEFAULT_REFRESH` (clap wants text; a test keeps them equal).
    #[arg(long, env = "ELECTOR_REGISTRY_REFRESH", value_parser = duration, default_value = "30s", help_heading = "Operations")]
    pub registry_refresh: Duration,
    /// Log format on stderr: human (colour only on a terminal without NO_COLOR) or json (one flat object per line: role, reason, ... at the top level)
    #[arg(
        long,
        env = "ELECTOR_LOG_FORMAT",
        value_enum,
        default_value = "human",
        help_heading = "Operations"
    )]
    pub log_format: LogFormat,

    /// The timing flags given on the command line or as `ELECTOR_*` variables (by clap id,
    /// `ttl`, `node_timeout`, ...): the others take `--profile`'s values. Filled by
    /// [`crate::cli::parse`].
    #[arg(skip)]
    pub explicit: BTreeSet<String>,
}

/// The timing flags a profile sets, by clap id (the field's name), with their flag: every
/// timing flag but the two derived ones (`--drain-bound`, `--activation-delay`).
pub const PROFILE_FLAGS: [(&str, &str); 17] = [
    ("ttl", "--ttl"),
    ("keepalive_interval", "--keepalive-interval"),
    ("etcd_timeout", "--etcd-timeout"),
    ("max_clock_drift", "--max-clock-drift"),
    ("safety_margin", "--safety-margin"),
    ("node_timeout", "--node-timeout"),
    ("node_check_interval", "--node-check-interval"),
    ("confirm_poll_interval", "--confirm-poll-interval"),
    ("probe_interval", "--probe-interval"),
    ("unready_threshold", "--unready-threshold"),
    ("restart_bound", "--restart-bound"),
    ("handover_timeout", "--handover-timeout"),
    ("node_lost_after", "--node-lost-after"),
    ("block_interval", "--block-interval"),
    ("tolerated_overtime", "--tolerated-overtime"),
    ("unmatched_event_interval", "--unmatched-event-interval"),
    ("max_clock_offset", "--max-clock-offset"),
];

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

/// A duration flag that must not be zero.
fn positive(flag: &str, value: Duration) -> Result<(), String> {
    if value.is_zero() {
        return Err(format!("{flag}: must be greater than 0"));
    }
    Ok(())
}

impl RunArgs {
    /// Takes the timing flags not given (`explicit` holds the clap ids of those given) from
    /// `--profile`, and remembers which were given.
    pub fn apply_profile(&mut self, explicit: BTreeSet<String>) {
        let profile = self.profile.timing();
        let default = |id: &str| !explicit.contains(id);
        if default("ttl") {
            self.ttl = profile.lease_ttl;
        }
        if default("keepalive_interval") {
            self.keepalive_interval = profile.keepalive_interval;
        }
        if default("etcd_timeout") {
            self.etcd_timeout.etcd_timeout = profile.etcd_request_timeout;
        }
        if default("max_clock_drift") {
            self.max_clock_drift = profile.max_clock_drift;
        }
        if default("safety_margin") {
            self.safety_margin = profile.safety_margin;
        }
        if default("node_timeout") {
            self.node_timeout.node_timeout = profile.node_timeout;
        }
        if default("node_check_interval") {
            self.node_check_interval = profile.node_check_interval;
        }
        if default("confirm_poll_interval") {
            self.confirm_poll.confirm_poll_interval = profile.confirm_poll_interval;
        }
        if default("probe_interval") {
            self.probe_interval = profile.probe_interval;
        }
        if default("unready_threshold") {
            self.unready_threshold = profile.unready_threshold;
        }
        if default("restart_bound") {
            self.restart_bound = profile.restart_bound;
        }
        if default("handover_timeout") {
            self.handover_timeout = profile.handover_timeout;
        }
        if default("node_lost_after") {
            self.node_lost_after = profile.node_lost_after;
        }
        if default("block_interval") {
            self.chain.block_interval = profile.block_interval;
        }
        if default("tolerated_overtime") {
            self.tolerated_overtime = profile.tolerated_overtime;
        }
        if default("unmatched_event_interval") {
            self.unmatched_event_interval = profile.unmatched_event_interval;
        }
        if default("max_clock_offset") {
            self.max_clock_offset = profile.max_clock_offset;
        }
        self.explicit = explicit;
    }

    /// The timing flags given that override a value of `--profile fast` (for a warning: a
    /// replica meant to run the profile does not quite).
    pub fn profile_overrides(&self) -> Vec<&'static str> {
        if self.profile == Profile::Default {
            return Vec::new();
        }
        let Ok(ours) = self.timing() else {
            return Vec::new();
        };
        let profile = self.profile.timing();
        crate::cli::timing_values(&ours)
            .into_iter()
            .zip(crate::cli::timing_values(&profile))
            .filter(|((_, a), (_, b))| a != b)
            .filter_map(|((name, _), _)| crate::cli::flag_of_field(name))
            .filter(|flag| {
                PROFILE_FLAGS
                    .iter()
                    .any(|(id, f)| f == flag && self.explicit.contains(*id))
                    || (*flag == "--drain-bound" && self.drain_bound.is_some())
                    || (*flag == "--activation-delay" && self.activation_delay.is_some())
            })
            .collect()
    }

    /// The timing before the derived values: every flag as given or defaulted, the drain
    /// bound and the activation delay zero.
    pub fn base_timing(&self) -> Timing {
        Timing {
            lease_ttl: self.ttl,
            keepalive_interval: self.keepalive_interval,
            etcd_request_timeout: self.etcd_timeout.etcd_timeout,
            drain_bound: Duration::ZERO,
            max_clock_drift: self.max_clock_drift,
            safety_margin: self.safety_margin,
            node_timeout: self.node_timeout.node_timeout,
            node_check_interval: self.node_check_interval,
            confirm_poll_interval: self.confirm_poll.confirm_poll_interval,
            probe_interval: self.probe_interval,
            unready_threshold: self.unready_threshold,
            restart_bound: self.restart_bound,
            activation_delay: Duration::ZERO,
            handover_timeout: self.handover_timeout,
            node_lost_after: self.node_lost_after,
            block_interval: self.chain.block_interval,
            tolerated_overtime: self.tolerated_overtime,
            unmatched_event_interval: self.unmatched_event_interval,
            max_clock_offset: self.max_clock_offset,
        }
    }

    /// The timing configuration, validated against docs/safety.md. An error names the
    /// inequality, the flags in it with their values, and a value of one flag that works
    /// ([`crate::cli::explain_timing`]).
    pub fn timing(&self) -> Result<Timing, String> {
        let timing = derive_timing(self.base_timing(), self.drain_bound, self.activation_delay);
        match timing.validate() {
            Ok(()) => Ok(timing),
            Err(error) => Err(crate::cli::explain_timing(&error, self)),
        }
    }

    /// What is allowed but probably not meant; logged as warnings at start-up and printed by
    /// `elector check`.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let overrides = self.profile_overrides();
        if !overrides.is_empty() {
            warnings.push(format!(
                "--profile {} is overridden by {} (given as flags or ELECTOR_* variables): this \
                 replica does not run the profile as it is; every replica of the election must \
                 run the same timing (elector status flags TIMING-MISMATCH)",
                self.profile.as_str(),
                overrides.join(", ")
            ));
        }
        if self.ttl > TTL_WARN_ABOVE {
            warnings.push(format!(
                "--ttl {} is above {}: after a crash, failover takes about the TTL plus the \
                 activation delay, which grows with the TTL (about twice the TTL in all); a TTL \
                 of 10s (the default) or 7s (--profile fast) is usual",
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

    /// The etcd endpoints (`--etcd`).
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints.etcd
    }

    /// The election key (`--key`).
    pub fn key(&self) -> &str {
        &self.election.key
    }

    /// Checks what clap cannot: URLs and the key; normalizes the etcd endpoints. The first
    /// problem found (see [`RunArgs::problems`] for all of them).
    pub fn validate(&mut self) -> Result<(), String> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// Every problem of the flags, each one line naming its flag: URLs, the key, the value,
    /// the registry refresh, the key custody files, the fence, and the timing. Normalizes the
    /// etcd endpoints.
    pub fn problems(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut note = |checked: Result<(), String>| {
            if let Err(problem) = checked {
                problems.push(problem);
            }
        };
        note(check_endpoints(&mut self.endpoints.etcd));
        note(node_url("--iotex-admin", &self.node.iotex_admin, "/ha").map(drop));
        note(node_url("--iotex-probe", &self.iotex_probe, "/readiness").map(drop));
        note(check_key(&self.election.key));
        if self.value().is_empty() {
            note(Err("--value: must not be empty".into()));
        }
        if self.registry_refresh < REGISTRY_REFRESH_MIN {
            note(Err(format!(
                "--registry-refresh: must be at least {} (the registry writes at most once a second)",
                humantime::format_duration(REGISTRY_REFRESH_MIN)
            )));
        }
        note(self.custody.load().map(drop));
        note(self.fence.validate());
        if let Some(path) = &self.node_config {
            note(crate::node_config::NodeConfig::read(path).map(drop));
        }
        note(self.timing().map(drop));
        problems
    }

    /// What the node's configuration must agree with, from these flags.
    pub fn node_config_expectations<'a>(
        &'a self,
        custody: Option<&'a crate::custody::KeyCustody>,
        others: Option<&'a [(String, String)]>,
    ) -> crate::node_config::Expected<'a> {
        let port = |url: &str| {
            url::Url::parse(url)
                .ok()
                .and_then(|u| u.port_or_known_default())
        };
        crate::node_config::Expected {
            admin_port: port(&self.node.iotex_admin),
            probe_port: port(&self.iotex_probe),
            custody,
            others,
            election_key: self.key(),
        }
    }

    /// The connection flags alone, as the operator commands take them.
    pub fn etcd_args(&self) -> EtcdArgs {
        EtcdArgs {
            endpoints: self.endpoints.clone(),
            election: self.election.clone(),
            security: self.security.clone(),
            timeout: self.etcd_timeout.clone(),
        }
    }

    /// The running elector's etcd connection options (reads the password): every connect
    /// and request bounded by `--etcd-timeout`.
    pub fn etcd_options(&self) -> Result<EtcdOptions, String> {
        let timeout = self.etcd_timeout.etcd_timeout;
        self.security
            .options(&self.endpoints.etcd, timeout, timeout)
    }
}

/// `base` with its derived values: the drain bound (`--drain-bound`, else the consensus tail)
/// and the activation delay (`--activation-delay`, else the smallest safe one).
pub fn derive_timing(
    mut base: Timing,
    drain_bound: Option<Duration>,
    activation_delay: Option<Duration>,
) -> Timing {
    base.drain_bound = drain_bound.unwrap_or_else(|| base.consensus_tail());
    base.activation_delay = activation_delay.unwrap_or_else(|| base.minimum_activation_delay());
    base
}

/// This host's name: the default `--value`, and the host in the registry record.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "default".to_string())
}

/// The hidden `elector watch`: the watcher process a bare-run elector starts beside itself
/// (`watcher` in the binary). Not for operators: the elector passes these.
#[derive(Args, Debug, Clone)]
pub struct WatchArgs {
    /// The elector process to watch (the parent): killed if its pings stop
    #[arg(long)]
    pub elector_pid: u32,
    /// Kill the elector when it sends no ping for this long
    #[arg(long, value_parser = duration)]
    pub watchdog: Duration,
    /// The elector's flags, as `elector` took them (ELECTOR_* variables are inherited)
    #[arg(last = true, value_name = "ELECTOR FLAGS")]
    pub elector: Vec<String>,
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

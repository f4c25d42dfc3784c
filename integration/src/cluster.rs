//! The functional tests' front on the [`ReplicaSet`]: one real etcd ([`EtcdProcess`]), `n`
//! in-process stand-in nodes ([`StandIn`]) and `n` `elector` processes, one beside each node,
//! all on free loopback ports. The replica set does the work and returns errors; the cluster
//! panics with them (and a description of every node and elector), as a test wants.
//!
//! The electors run the binary of this workspace ([`elector_binary`]: run `cargo build -p
//! elector` first; `ELECTOR_BIN` names another) with the functional tests' timing profile
//! ([`PROFILE`], flags generated from its core `Timing`), JSON logs written to files in a
//! temporary directory, and a status server each on a free port (the elector logs the
//! configured address, not the bound one, so port 0 would leave the port unknown). Everything
//! is killed when the [`Cluster`] is dropped, whether the test passed or panicked; after a
//! panic the directory is kept and the tail of every elector's log is printed (set
//! `CLUSTER_KEEP_LOGS=1` to keep the logs of passing tests too).
//!
//! The safety monitor ([`Cluster::assert_never_two_active`], the replica set's
//! [`monitor`](crate::replica_set::monitor)) judges first what the property is about: the
//! stand-ins' signatures (they share the wall clock and so one chain), failing if two replicas
//! ever signed the same height and round; then, second, it puts the mode histories of all
//! stand-ins on one time line and fails if two nodes were ever active at the same instant (a
//! round still in progress counts as active), with the check the simulation and the demo use
//! too. Activations a test makes on purpose behind the electors' backs
//! ([`Cluster::activate_behind_the_back`]) are excused, with what their nodes signed then.
//!
//! Blocking etcd operations run under `block_in_place`: use a multi-threaded runtime
//! (`#[tokio::test(flavor = "multi_thread")]`).

use crate::etcd_process::EtcdProcess;
use crate::host::elector_binary;
use crate::replica_set::monitor::describe_histories;
use crate::replica_set::{FlagStyle, Host, ReplicaSet};
use crate::standin::{StandIn, StandInOptions};
use crate::timing_profile::TimingProfile;
use elector_core::Timing;
use elector_model::history::{DoubleSign, Overlap};
use elector_model::node::Signature;
use std::fmt::Write as _;
use std::process::ExitStatus;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The election key every elector of a cluster uses.
pub const KEY: &str = "/iotex-server";

/// The timing of every elector of a cluster (its block interval is the stand-ins').
pub const PROFILE: TimingProfile = TimingProfile::Functional;

/// The lease TTL of [`PROFILE`].
pub fn ttl() -> Duration {
    PROFILE.timing().lease_ttl
}

/// The stand-ins' block interval, the one [`PROFILE`] assumes: a slot.
pub fn block_interval() -> Duration {
    PROFILE.timing().block_interval
}

/// Bound for anything the cluster must reach by itself (an election, a failover, a restart
/// of etcd): several times what it takes on an idle machine, for a loaded 2-core CI runner.
pub const SETTLE: Duration = Duration::from_secs(30);

/// How long an elector may take to serve its status after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How often [`Cluster::wait_until`] re-checks its condition.
const POLL: Duration = Duration::from_millis(50);
/// Set this environment variable to keep the electors' logs of passing tests too.
pub const KEEP_LOGS_VAR: &str = "CLUSTER_KEEP_LOGS";

/// How the cluster starts.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Number of replicas: stand-in nodes, each with an elector.
    pub nodes: usize,
    /// How every stand-in starts: by default standby, ready, [`block_interval`]`()`, our
    /// delegate proposing every slot.
    pub standin: StandInOptions,
    /// Whether etcd serves when the electors start. If not, etcd is started once to reserve
    /// its ports and stopped again; [`Cluster::start_etcd`] brings it up on the same ports.
    pub etcd_running: bool,
    /// Replicas whose elector is started with the Go elector's flags (`-etcd=URL
    /// -iotexAdmin=URL -iotexProbe=URL -key=K -value=V`) instead of `--etcd URL ...`.
    pub go_flags: Vec<usize>,
    /// Give every elector `--fence-cmd` appending `$ELECTOR_FENCE_REASON` to a file; read it
    /// with [`Cluster::fence_log`].
    pub fence_marker: bool,
    /// A fence command for every elector, with `{admin}` replaced by its node's admin address
    /// (`127.0.0.1:port`), e.g. one that kills the stand-in through `/control/kill`. With
    /// `fence_marker` too, the marker is written first and this command's exit status is the
    /// fence's.
    pub fence_cmd: Option<String>,
    /// The timing of every elector, given as flags generated from it.
    pub timing: Timing,
    /// More arguments for every elector, after the others.
    pub extra_args: Vec<String>,
    /// The `--etcd` endpoints of every elector, when not empty (a multi-member cluster
    /// started by the test); otherwise the cluster's own single etcd.
    pub etcd_endpoints: Vec<String>,
    /// Electors run bare, as an operator starts them by hand: with their watcher (otherwise
    /// `--no-watcher`: they stand for supervised electors).
    pub bare: bool,
    /// Electors use the elector's default state directory (no `--state-dir`, no
    /// `ELECTOR_STATE_DIR`); otherwise each start gets a fresh private one.
    pub default_state_dir: bool,
}

impl Default for ClusterOptions {
    /// Three replicas, standby and ready nodes, etcd running, conventional flags, no fence,
    /// [`PROFILE`]'s timing.
    fn default() -> Self {
        ClusterOptions {
            nodes: 3,
            standin: StandInOptions {
                block_interval: block_interval(),
                ..StandInOptions::default()
            },
            etcd_running: true,
            go_flags: Vec::new(),
            fence_marker: false,
            fence_cmd: None,
            timing: PROFILE.timing(),
            extra_args: Vec::new(),
            etcd_endpoints: Vec::new(),
            bare: false,
            default_state_dir: false,
        }
    }
}

/// etcd, the stand-in nodes and their electors. See the module documentation.
pub struct Cluster {
    // Dropped in declaration order: the electors (with the set) before etcd and the directory.
    set: ReplicaSet,
    etcd: EtcdProcess,
    dir: Option<TempDir>,
}

impl Cluster {
    /// Starts etcd, three stand-ins and their electors with the default options.
    pub async fn start() -> Cluster {
        Cluster::start_with(ClusterOptions::default()).await
    }

    /// Starts etcd, the stand-ins and the electors, and waits until every elector serves its
    /// status; not for an election.
    pub async fn start_with(options: ClusterOptions) -> Cluster {
        let elector = elector_binary().expect("the elector binary");
        let origin = Instant::now();
        let mut etcd = tokio::task::block_in_place(EtcdProcess::start_new)
            .expect("starting etcd (is `etcd` on PATH?)");
        if !options.etcd_running {
            tokio::task::block_in_place(|| etcd.stop()).expect("stopping etcd");
        }
        let dir = tempfile::Builder::new()
            .prefix("elector-cluster-")
            .tempdir()
            .expect("creating the cluster's temporary directory");
        let host = Host {
            origin,
            etcd: match options.etcd_endpoints.as_slice() {
                [] => etcd.endpoint(),
                endpoints => endpoints.join(","),
            },
            elector,
            logs: dir.path().to_owned(),
        };
        let mut set = ReplicaSet::new(host, KEY.to_owned(), PROFILE, FlagStyle::Conventional);
        set.set_timing(options.timing.clone());
        set.set_node_options(options.standin.clone());
        set.set_watcher(options.bare);
        set.set_default_state_dir(options.default_state_dir);
        let marker = options.fence_marker.then(|| {
            let log = dir.path().join("fence-{value}.log");
            format!("echo \"$ELECTOR_FENCE_REASON\" >> '{}'", log.display())
        });
        let fence = match (marker, options.fence_cmd.clone()) {
            (Some(marker), Some(command)) => Some(format!("{marker}; {command}")),
            (marker, command) => marker.or(command),
        };
        if let Some(fence) = fence {
            set.set_fence_cmd(fence);
        }
        let mut extra = vec!["--log-format".to_owned(), "json".to_owned()];
        extra.extend(options.extra_args.iter().cloned());
        set.set_extra_args(extra);
        for i in 0..options.nodes {
            set.add_replica(format!("node-{i}"), true)
                .await
                .expect("starting a stand-in node");
            if options.go_flags.contains(&i) {
                set.set_flag_style(i, FlagStyle::Go);
            }
        }
        let mut cluster = Cluster {
            set,
            etcd,
            dir: Some(dir),
        };
        for i in 0..options.nodes {
            cluster.start_elector(i).await;
        }
        cluster
    }

    /// Number of replicas.
    pub fn len(&self) -> usize {
        self.set.replicas().len()
    }

    /// Whether the cluster has no replicas.
    pub fn is_empty(&self) -> bool {
        self.set.replicas().is_empty()
    }

    /// The etcd of the cluster (for `etcdctl`).
    pub fn etcd(&self) -> &EtcdProcess {
        &self.etcd
    }

    /// Stops etcd (SIGTERM, waits for the exit).
    pub fn stop_etcd(&mut self) {
        tokio::task::block_in_place(|| self.etcd.stop()).expect("stopping etcd");
    }

    /// Starts etcd again on the same ports and data, and waits until it serves.
    pub fn start_etcd(&mut self) {
        tokio::task::block_in_place(|| self.etcd.start()).expect("starting etcd again");
    }

    /// Replica `i`'s stand-in node.
    pub fn node(&self, i: usize) -> &StandIn {
        must(self.set.node(i))
    }

    /// Replica `i`'s value in the election (`node-<i>`).
    pub fn value(&self, i: usize) -> &str {
        self.set.replica(i).value()
    }

    /// The replica whose value is `value`.
    pub fn index_of(&self, value: &str) -> Option<usize> {
        self.set.replicas().iter().position(|r| r.value() == value)
    }

    /// Replica `i`'s elector arguments with one flag's value replaced (`--flag=value`, as
    /// the fixture writes its flags; `--flag value` too), e.g. a `--restart-bound` long
    /// enough for a watchdog. Panics if the fixture does not set the flag.
    pub fn elector_args_with(&self, i: usize, flag: &str, value: &str) -> Vec<String> {
        let mut args = self.elector_args(i);
        let prefix = format!("{flag}=");
        if let Some(at) = args.iter().position(|a| a.starts_with(&prefix)) {
            args[at] = format!("{flag}={value}");
        } else if let Some(at) = args.iter().position(|a| a == flag) {
            args[at + 1] = value.to_owned();
        } else {
            panic!("the fixture does not set {flag}: {args:?}");
        }
        args
    }

    /// The arguments replica `i`'s elector is started with.
    pub fn elector_args(&self, i: usize) -> Vec<String> {
        must(self.set.elector_args(i))
    }

    /// Starts replica `i`'s elector (again) and waits until its status server answers. Its
    /// output is appended to its log. If the status port was taken meanwhile by another
    /// process, starts it again on another port.
    pub async fn start_elector(&mut self, i: usize) {
        assert!(!self.elector_running(i), "elector {i} is still running");
        must(self.set.start_elector_serving(i, START_TIMEOUT).await);
    }

    /// Whether replica `i`'s elector process is running (not exited, not killed).
    pub fn elector_running(&self, i: usize) -> bool {
        self.set.replica(i).elector_running()
    }

    /// The exit status of replica `i`'s last elector process, once it ended.
    pub fn elector_exit(&self, i: usize) -> Option<ExitStatus> {
        self.set.replica(i).elector_exit()
    }

    /// Kills replica `i`'s elector with SIGKILL, like a crash or the OOM killer, and reaps it.
    /// Nothing demotes its node: see [`Cluster::supervisor_forces_standby`].
    pub fn kill_elector(&mut self, i: usize) {
        must(self.set.kill_elector(i));
    }

    /// What systemd's `ExecStopPost=` does after the elector died: `/ha?activate=false` on its
    /// node. Returns whether the node answered 200.
    pub async fn supervisor_forces_standby(&self, i: usize) -> bool {
        self.set.force_standby(i).await.is_ok()
    }

    /// The process id of replica `i`'s elector (the process the operator started), while it
    /// runs.
    pub fn elector_pid(&self, i: usize) -> Option<u32> {
        self.set.replica(i).elector_pid()
    }

    /// Sends `sig` to replica `i`'s elector (SIGSTOP for a hang, SIGKILL without reaping).
    pub fn signal_elector(&self, i: usize, sig: libc::c_int) {
        must(self.set.signal_elector(i, sig));
    }

    /// Sends SIGTERM to replica `i`'s elector: the graceful path.
    pub fn sigterm(&self, i: usize) {
        self.signal_elector(i, libc::SIGTERM);
    }

    /// Waits, bounded, for replica `i`'s elector to exit and returns its exit status.
    pub async fn wait_exit(&self, i: usize, bound: Duration) -> ExitStatus {
        match self.set.wait_elector_exit(i, bound).await {
            Some(exit) => exit,
            None => panic!(
                "elector {i} did not exit within {bound:?}\n{}",
                self.describe().await
            ),
        }
    }

    /// `GET /status` of replica `i`'s elector, or `None` while it does not answer with JSON.
    pub async fn status(&self, i: usize) -> Option<serde_json::Value> {
        self.set.status(i).await.ok()
    }

    /// The `role` of replica `i`'s `/status`, or `None` while it does not answer.
    pub async fn role(&self, i: usize) -> Option<String> {
        self.set.role(i).await.ok()
    }

    /// `GET <path>` on replica `i`'s status server: `/status`, `/metrics`, `/healthz`.
    pub async fn status_server_get(&self, i: usize, path: &str) -> Option<(u16, String)> {
        self.set.status_get(i, path).await.ok()
    }

    /// The value of an unlabelled Prometheus sample of replica `i`'s `/metrics`.
    pub async fn metric(&self, i: usize, name: &str) -> Option<f64> {
        self.set.metric(i, name).await.ok()
    }

    /// Replicas whose node is active now (a round still in progress counts).
    pub fn active_nodes(&self) -> Vec<usize> {
        self.set.active()
    }

    /// Polls `condition` every 50 ms until it holds; panics after `bound` with `what` and a
    /// description of the cluster. Only for waits inherent to the scenario, never as a timing
    /// assertion.
    pub async fn wait_until(
        &self,
        what: &str,
        bound: Duration,
        mut condition: impl AsyncFnMut() -> bool,
    ) {
        let deadline = Instant::now() + bound;
        loop {
            if condition().await {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {bound:?} waiting for {what}\n{}",
                    self.describe().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until exactly one node is active and its elector reports the role `active`;
    /// returns that replica.
    pub async fn wait_for_single_leader(&self, bound: Duration) -> usize {
        self.wait_for_leader(None, bound).await
    }

    /// Like [`Cluster::wait_for_single_leader`], for a leader other than `old`.
    pub async fn wait_for_new_leader(&self, old: usize, bound: Duration) -> usize {
        self.wait_for_leader(Some(old), bound).await
    }

    async fn wait_for_leader(&self, except: Option<usize>, bound: Duration) -> usize {
        match self.set.wait_leader(except, bound).await {
            Ok(leader) => leader,
            Err(e) => panic!("{e:#}\n{}", self.describe().await),
        }
    }

    /// Time since the cluster started, on the time line of [`Cluster::last_deactivation`].
    pub fn elapsed(&self) -> Duration {
        self.set.elapsed()
    }

    /// `/ha?activate=true` on replica `i`'s node, as a misbehaving operator or a second process
    /// would do. The monitor excuses the activation.
    pub async fn activate_behind_the_back(&self, i: usize) {
        must(self.set.activate_behind_the_back(i).await);
    }

    /// When (since the cluster started) replica `i`'s node last became inactive, if it was
    /// ever active and is not now.
    pub fn last_deactivation(&self, i: usize) -> Option<Duration> {
        let history = self.set.replica_history(i);
        match history.last() {
            Some(&(at, false)) if history.len() > 1 => Some(at),
            _ => None,
        }
    }

    /// When (since the cluster started) replica `i`'s node last changed to `active`.
    pub fn last_change(&self, i: usize, active: bool) -> Option<Duration> {
        self.set.last_change(i, active)
    }

    /// Every activation of every node so far: `(replica, time since the cluster started)`,
    /// in no particular order. A node that started active is listed at its start.
    pub fn activations(&self) -> Vec<(usize, Duration)> {
        (0..self.len())
            .flat_map(|i| {
                self.set
                    .replica_history(i)
                    .into_iter()
                    .filter(|&(_, active)| active)
                    .map(move |(at, _)| (i, at))
            })
            .collect()
    }

    /// Every replica's signatures (index: replica), those of excused activations left out.
    pub fn signatures(&self) -> Vec<Vec<Signature>> {
        self.set.signatures()
    }

    /// Every height and round two replicas signed so far, excused activations left out.
    /// [`Cluster::assert_never_two_active`] fails unless this is empty.
    pub fn double_signs(&self) -> Vec<DoubleSign> {
        self.set.double_signs()
    }

    /// Every span so far during which two or more nodes were effectively active (times since
    /// the cluster started), excused activations left out. [`Cluster::assert_never_two_active`]
    /// fails unless this is empty.
    pub fn dual_active(&self) -> Vec<Overlap> {
        self.set.dual_active()
    }

    /// The property alone: panics if two replicas signed the same height and round.
    pub fn assert_no_double_sign(&self) {
        must(self.set.check_no_double_sign());
    }

    /// The safety monitor: panics, first, if two replicas signed the same height and round
    /// (the property); second, if two nodes were active at one instant at any time since the
    /// cluster started. A clean handover leaves a gap of at least the predecessor's last slot.
    pub fn assert_never_two_active(&self) {
        must(self.set.check_safety());
    }

    /// Replica `i`'s elector log (JSON lines, every run appended).
    pub fn log(&self, i: usize) -> String {
        self.set.replica(i).log()
    }

    /// The parsed JSON lines of replica `i`'s log whose text ([`log_text`]) contains `needle`.
    pub fn log_messages(&self, i: usize, needle: &str) -> Vec<serde_json::Value> {
        self.log(i)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|line| log_text(line).contains(needle))
            .collect()
    }

    /// Panics if any elector's output shows a panic (a panicking task does not end the
    /// process, so a running elector proves nothing by itself).
    pub fn assert_no_panics(&self) {
        for i in 0..self.len() {
            let log = self.log(i);
            let panics: Vec<&str> = log.lines().filter(|l| l.contains("panicked")).collect();
            assert!(panics.is_empty(), "elector {i} panicked: {panics:#?}");
        }
    }

    /// What replica `i`'s `--fence-cmd` wrote: one line per fence action (empty if none ran).
    pub fn fence_log(&self, i: usize) -> String {
        let Some(dir) = &self.dir else {
            return String::new();
        };
        let path = dir.path().join(format!("fence-{}.log", self.value(i)));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Every node's state and every elector's `/status` role, for failure messages.
    pub async fn describe(&self) -> String {
        let mut text = format!("cluster at {:?}:\n", self.elapsed());
        for i in 0..self.len() {
            let state = self.node(i).state();
            let status = self.status(i).await;
            let field = |name: &str| {
                status
                    .as_ref()
                    .map(|s| s[name].to_string())
                    .unwrap_or_else(|| "-".into())
            };
            let _ = writeln!(
                text,
                "  {i} ({}): node active={} ready={} fault={} refuse_activation={} alive={}; \
                 elector {}, role={} reason={} leader={} stuck={}",
                self.value(i),
                state.active,
                state.ready,
                state.fault.as_str(),
                state.refuse_activation,
                state.alive,
                match self.elector_exit(i) {
                    Some(exit) => exit.to_string(),
                    None if self.elector_running(i) => "running".to_owned(),
                    None => "not started".to_owned(),
                },
                field("role"),
                field("role_reason"),
                field("leader"),
                field("stuck"),
            );
        }
        let histories = self.set.judged_histories();
        text + &describe_histories(&histories, self.elapsed(), &self.set.values())
    }
}

impl Drop for Cluster {
    /// Keeps the logs of a failed test (the replica set prints their tails), or of every test
    /// with [`KEEP_LOGS_VAR`].
    fn drop(&mut self) {
        let keep = std::thread::panicking() || std::env::var_os(KEEP_LOGS_VAR).is_some();
        if keep && let Some(dir) = self.dir.take() {
            eprintln!("elector logs kept in {}", dir.keep().display());
        }
    }
}

/// The value, or the test's failure: a panic with the error and its causes.
fn must<T>(result: anyhow::Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("{e:#}"))
}

/// A JSON log line as a person reads it: its `message`, then `: reason` if it has one (the
/// elector's JSON lines are flat: `message`, `reason`, `role`, ... at the top level).
pub fn log_text(line: &serde_json::Value) -> String {
    let message = line["message"].as_str().unwrap_or_default();
    match line["reason"].as_str() {
        Some(reason) => format!("{message}: {reason}"),
        None => message.to_owned(),
    }
}

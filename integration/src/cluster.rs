//! A whole deployment on one machine, for functional tests of the real `elector` binary: one
//! real etcd ([`EtcdProcess`]), `n` in-process stand-in nodes ([`StandIn`]) and `n` `elector`
//! processes, one beside each node, all on free loopback ports.
//!
//! The electors run the binary of this workspace ([`elector_binary`]: run `cargo build -p
//! elector` first; `ELECTOR_BIN` names another) with the functional tests' timing profile
//! ([`PROFILE`], flags generated from its core `Timing`), JSON logs written to files in a temporary directory, and
//! a status server each on a free port (the elector logs the configured address, not the
//! bound one, so port 0 would leave the port unknown). Everything is
//! killed when the [`Cluster`] is dropped, whether the test passed or panicked; after a panic
//! the directory is kept and the tail of every elector's log is printed (set
//! `CLUSTER_KEEP_LOGS=1` to keep the logs of passing tests too).
//!
//! The dual-active monitor ([`Cluster::assert_never_two_active`]) puts the mode histories of
//! all stand-ins on one time line and fails if two nodes were ever effectively active at the
//! same instant (the deactivation tail counts as active), with the check the simulation and
//! the demo use too (`elector_model::history::dual_active`). Activations a test makes on purpose behind the
//! electors' backs ([`Cluster::activate_behind_the_back`]) are excused.
//!
//! Blocking etcd operations run under `block_in_place`: use a multi-threaded runtime
//! (`#[tokio::test(flavor = "multi_thread")]`).

use crate::etcd_process::EtcdProcess;
use crate::host::{elector_binary, elector_command, free_port, http_get};
use crate::standin::{StandIn, StandInOptions};
use crate::timing_profile::{TimingProfile, timing_flags};
use elector_core::Timing;
use elector_model::history::{History, Overlap, dual_active};
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;
use tempfile::TempDir;
use tokio::time::Instant;

/// The election key every elector of a cluster uses.
pub const KEY: &str = "/iotex-server";

/// The timing of every elector of a cluster and the consensus round of its stand-ins.
pub const PROFILE: TimingProfile = TimingProfile::Functional;

/// The lease TTL of [`PROFILE`].
pub fn ttl() -> Duration {
    PROFILE.timing().lease_ttl
}

/// The stand-ins' consensus round of [`PROFILE`]: a deactivated node reads active for up to
/// this long, within the profile's drain bound.
pub fn round() -> Duration {
    PROFILE.round()
}

/// Bound for anything the cluster must reach by itself (an election, a failover, a restart
/// of etcd): several times what it takes on an idle machine, for a loaded 2-core CI runner.
pub const SETTLE: Duration = Duration::from_secs(30);

/// How long an elector may take to serve its status after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts at starting an elector whose status port another process took meanwhile.
const STATUS_PORT_ATTEMPTS: usize = 3;
/// How often [`Cluster::wait_until`] re-checks its condition.
const POLL: Duration = Duration::from_millis(50);
/// Set this environment variable to keep the electors' logs of passing tests too.
pub const KEEP_LOGS_VAR: &str = "CLUSTER_KEEP_LOGS";
/// Lines of each elector's log printed when a test fails.
const LOG_TAIL_LINES: usize = 40;

/// How the cluster starts.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Number of replicas: stand-in nodes, each with an elector.
    pub nodes: usize,
    /// How every stand-in starts. Its `round` is [`round`]`()` unless changed.
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
    /// The timing of every elector, given as flags generated from it ([`timing_flags`]).
    pub timing: Timing,
    /// More arguments for every elector, after the others.
    pub extra_args: Vec<String>,
    /// The `--etcd` endpoints of every elector, when not empty (a multi-member cluster
    /// started by the test); otherwise the cluster's own single etcd.
    pub etcd_endpoints: Vec<String>,
}

impl Default for ClusterOptions {
    /// Three replicas, standby and ready nodes, etcd running, conventional flags, no fence,
    /// [`PROFILE`]'s timing.
    fn default() -> Self {
        ClusterOptions {
            nodes: 3,
            standin: StandInOptions {
                start_active: false,
                round: round(),
                ready: true,
            },
            etcd_running: true,
            go_flags: Vec::new(),
            fence_marker: false,
            fence_cmd: None,
            timing: PROFILE.timing(),
            extra_args: Vec::new(),
            etcd_endpoints: Vec::new(),
        }
    }
}

/// One replica: a stand-in node and the elector beside it.
struct Member {
    value: String,
    node: StandIn,
    /// The stand-in's epoch on this process's clock: its history times are relative to it.
    epoch: Instant,
    status_addr: SocketAddr,
    log: PathBuf,
    fence_log: PathBuf,
    elector: Mutex<ElectorProcess>,
}

/// The elector process of a replica, if one was started.
#[derive(Default)]
struct ElectorProcess {
    /// The running process, until it is reaped.
    child: Option<Child>,
    /// Exit status of the last process, once reaped.
    exit: Option<ExitStatus>,
}

impl ElectorProcess {
    /// Whether the process runs; reaps it if it exited.
    fn running(&mut self) -> bool {
        let Some(child) = self.child.as_mut() else {
            return false;
        };
        match child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                self.exit = Some(status);
                self.child = None;
                false
            }
            Err(e) => panic!("waiting for an elector process: {e}"),
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            self.exit = child.wait().ok();
        }
    }
}

/// An activation made on purpose behind the electors' backs: the monitor excuses the active
/// interval of `node` that began between `from` and `to`.
struct Injected {
    node: usize,
    from: Instant,
    to: Instant,
}

/// etcd, the stand-in nodes and their electors. See the module documentation.
pub struct Cluster {
    // Dropped in declaration order: electors (in `Drop`) before etcd and the directory.
    members: Vec<Member>,
    etcd: EtcdProcess,
    binary: PathBuf,
    options: ClusterOptions,
    dir: Option<TempDir>,
    started: Instant,
    injected: Mutex<Vec<Injected>>,
}

impl Cluster {
    /// Starts etcd, three stand-ins and their electors with the default options.
    pub async fn start() -> Cluster {
        Cluster::start_with(ClusterOptions::default()).await
    }

    /// Starts etcd, the stand-ins and the electors, and waits until every elector serves its
    /// status; not for an election.
    pub async fn start_with(options: ClusterOptions) -> Cluster {
        let binary = elector_binary().expect("the elector binary");
        let started = Instant::now();
        let mut etcd = tokio::task::block_in_place(EtcdProcess::start_new)
            .expect("starting etcd (is `etcd` on PATH?)");
        if !options.etcd_running {
            tokio::task::block_in_place(|| etcd.stop()).expect("stopping etcd");
        }
        let dir = tempfile::Builder::new()
            .prefix("elector-cluster-")
            .tempdir()
            .expect("creating the cluster's temporary directory");
        let mut members = Vec::with_capacity(options.nodes);
        for i in 0..options.nodes {
            let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
            let node = StandIn::start(local, local, options.standin.clone())
                .await
                .expect("starting a stand-in node");
            let epoch = epoch_of(&node);
            members.push(Member {
                value: format!("node-{i}"),
                node,
                epoch,
                status_addr: SocketAddr::from((
                    Ipv4Addr::LOCALHOST,
                    free_port().expect("a free port"),
                )),
                log: dir.path().join(format!("elector-{i}.log")),
                fence_log: dir.path().join(format!("fence-{i}.log")),
                elector: Mutex::default(),
            });
        }
        let mut cluster = Cluster {
            members,
            etcd,
            binary,
            options,
            dir: Some(dir),
            started,
            injected: Mutex::new(Vec::new()),
        };
        for i in 0..cluster.members.len() {
            cluster.start_elector(i).await;
        }
        cluster
    }

    /// Number of replicas.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the cluster has no replicas.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
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
        &self.members[i].node
    }

    /// Replica `i`'s value in the election (`node-<i>`).
    pub fn value(&self, i: usize) -> &str {
        &self.members[i].value
    }

    /// The replica whose value is `value`.
    pub fn index_of(&self, value: &str) -> Option<usize> {
        self.members.iter().position(|m| m.value == value)
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
        let member = &self.members[i];
        let etcd = match self.options.etcd_endpoints.as_slice() {
            [] => self.etcd.endpoint(),
            endpoints => endpoints.join(","),
        };
        let admin = format!("http://{}", member.node.admin_addr());
        let probe = format!("http://{}", member.node.probe_addr());
        let mut args: Vec<String> = if self.options.go_flags.contains(&i) {
            vec![
                format!("-etcd={etcd}"),
                format!("-iotexAdmin={admin}"),
                format!("-iotexProbe={probe}"),
                format!("-key={KEY}"),
                format!("-value={}", member.value),
            ]
        } else {
            [
                "--etcd",
                &etcd,
                "--iotex-admin",
                &admin,
                "--iotex-probe",
                &probe,
                "--key",
                KEY,
                "--value",
                &member.value,
            ]
            .map(str::to_owned)
            .to_vec()
        };
        args.extend(timing_flags(&self.options.timing));
        args.extend([
            "--status-addr".to_owned(),
            member.status_addr.to_string(),
            "--log-format".to_owned(),
            "json".to_owned(),
        ]);
        let marker = self.options.fence_marker.then(|| {
            format!(
                "echo \"$ELECTOR_FENCE_REASON\" >> '{}'",
                member.fence_log.display()
            )
        });
        let command = self
            .options
            .fence_cmd
            .as_ref()
            .map(|template| template.replace("{admin}", &member.node.admin_addr().to_string()));
        let fence = match (marker, command) {
            (Some(marker), Some(command)) => Some(format!("{marker}; {command}")),
            (marker, command) => marker.or(command),
        };
        if let Some(fence) = fence {
            args.push("--fence-cmd".to_owned());
            args.push(fence);
        }
        args.extend(self.options.extra_args.iter().cloned());
        args
    }

    /// Starts replica `i`'s elector (again) and waits until its status server answers. Its
    /// output is appended to its log. If the status port was taken meanwhile by another
    /// process, starts it again on another port.
    pub async fn start_elector(&mut self, i: usize) {
        assert!(!self.elector_running(i), "elector {i} is still running");
        for _attempt in 0..STATUS_PORT_ATTEMPTS {
            self.spawn_elector(i);
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if self.status_server_get(i, "/healthz").await.is_some() {
                    return;
                }
                if !self.elector_running(i) {
                    break;
                }
                if Instant::now() > deadline {
                    panic!(
                        "elector {i} serves no status within {START_TIMEOUT:?}\n{}",
                        self.log(i)
                    );
                }
                tokio::time::sleep(POLL).await;
            }
            let log = self.log(i);
            let taken = log
                .lines()
                .last()
                .is_some_and(|line| line.contains("cannot listen on --status-addr"));
            assert!(taken, "elector {i} exited at start:\n{log}");
            self.members[i].status_addr =
                SocketAddr::from((Ipv4Addr::LOCALHOST, free_port().expect("a free port")));
        }
        panic!("elector {i} found no free status port in {STATUS_PORT_ATTEMPTS} attempts");
    }

    fn spawn_elector(&mut self, i: usize) {
        let args = self.elector_args(i);
        let member = &mut self.members[i];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log)
            .expect("opening an elector log");
        let child = elector_command(&self.binary)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("duplicating a log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.binary.display()));
        *member.elector.get_mut().unwrap_or_else(|p| p.into_inner()) = ElectorProcess {
            child: Some(child),
            exit: None,
        };
    }

    fn process(&self, i: usize) -> std::sync::MutexGuard<'_, ElectorProcess> {
        self.members[i]
            .elector
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Whether replica `i`'s elector process is running (not exited, not killed).
    pub fn elector_running(&self, i: usize) -> bool {
        self.process(i).running()
    }

    /// The exit status of replica `i`'s last elector process, once it ended.
    pub fn elector_exit(&self, i: usize) -> Option<ExitStatus> {
        let mut process = self.process(i);
        if process.running() {
            None
        } else {
            process.exit
        }
    }

    /// Kills replica `i`'s elector with SIGKILL, like a crash or the OOM killer, and reaps it.
    /// Nothing demotes its node: see [`Cluster::supervisor_forces_standby`].
    pub fn kill_elector(&mut self, i: usize) {
        let mut process = self.process(i);
        assert!(process.running(), "elector {i} is not running");
        process.kill();
    }

    /// What systemd's `ExecStopPost=` does after the elector died: `/ha?activate=false` on its
    /// node. Returns whether the node answered 200.
    pub async fn supervisor_forces_standby(&self, i: usize) -> bool {
        let admin = self.members[i].node.admin_addr();
        matches!(http_get(admin, "/ha?activate=false").await, Ok((200, _)))
    }

    /// Sends SIGTERM to replica `i`'s elector: the graceful path.
    pub fn sigterm(&self, i: usize) {
        let mut process = self.process(i);
        assert!(process.running(), "elector {i} is not running");
        let child = process.child.as_ref().expect("a running elector");
        let pid = libc::pid_t::try_from(child.id()).expect("pid in range");
        // SAFETY: kill(2) with integer arguments; the child is not reaped yet (we hold its
        // `Child` under the lock and reap only through it), so the pid names our own process.
        let result = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(result, 0, "sending SIGTERM to elector {i}");
    }

    /// Waits, bounded, for replica `i`'s elector to exit and returns its exit status.
    pub async fn wait_exit(&self, i: usize, bound: Duration) -> ExitStatus {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(exit) = self.elector_exit(i) {
                return exit;
            }
            if Instant::now() > deadline {
                panic!(
                    "elector {i} did not exit within {bound:?}\n{}",
                    self.describe().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `GET /status` of replica `i`'s elector, or `None` while it does not answer with JSON.
    pub async fn status(&self, i: usize) -> Option<serde_json::Value> {
        match http_get(self.members[i].status_addr, "/status").await {
            Ok((200, body)) => serde_json::from_str(&body).ok(),
            _ => None,
        }
    }

    /// The `role` of replica `i`'s `/status`, or `None` while it does not answer.
    pub async fn role(&self, i: usize) -> Option<String> {
        let status = self.status(i).await?;
        status["role"].as_str().map(str::to_owned)
    }

    /// `GET <path>` on replica `i`'s status server: `/status`, `/metrics`, `/healthz`.
    pub async fn status_server_get(&self, i: usize, path: &str) -> Option<(u16, String)> {
        http_get(self.members[i].status_addr, path).await.ok()
    }

    /// The value of an unlabelled Prometheus sample of replica `i`'s `/metrics`.
    pub async fn metric(&self, i: usize, name: &str) -> Option<f64> {
        let (status, body) = self.status_server_get(i, "/metrics").await?;
        if status != 200 {
            return None;
        }
        body.lines()
            .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .find_map(|value| value.trim().parse().ok())
    }

    /// Replicas whose node is effectively active now (a deactivation tail counts).
    pub fn active_nodes(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| self.members[i].node.state().active)
            .collect()
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
        self.single_leader_where("exactly one active node, led by its elector", bound, |_| {
            true
        })
        .await
    }

    /// Like [`Cluster::wait_for_single_leader`], for a leader other than `old`.
    pub async fn wait_for_new_leader(&self, old: usize, bound: Duration) -> usize {
        let what = format!("exactly one active node, led by its elector, not {old}");
        self.single_leader_where(&what, bound, |i| i != old).await
    }

    async fn single_leader_where(
        &self,
        what: &str,
        bound: Duration,
        wanted: impl Fn(usize) -> bool,
    ) -> usize {
        let mut leader = None;
        self.wait_until(what, bound, async || {
            leader = None;
            let active = self.active_nodes();
            if let [only] = active[..]
                && wanted(only)
                && self.role(only).await.as_deref() == Some("active")
            {
                leader = Some(only);
            }
            leader.is_some()
        })
        .await;
        leader.expect("set when the wait ended")
    }

    /// `/ha?activate=true` on replica `i`'s node, as a misbehaving operator or a second process
    /// would do. The monitor excuses the activation.
    pub async fn activate_behind_the_back(&self, i: usize) {
        let from = Instant::now();
        let answer = http_get(self.members[i].node.admin_addr(), "/ha?activate=true").await;
        let to = Instant::now();
        assert!(
            matches!(answer, Ok((200, _))),
            "activating node {i}: {answer:?}"
        );
        self.injected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Injected { node: i, from, to });
    }

    /// When (since the cluster started) replica `i`'s node last became inactive, if it was
    /// ever active and is not now.
    pub fn last_deactivation(&self, i: usize) -> Option<Duration> {
        let member = &self.members[i];
        let state = member.node.state();
        match state.history.last() {
            Some(&(at, false)) if state.history.len() > 1 => {
                Some((member.epoch + at).saturating_duration_since(self.started))
            }
            _ => None,
        }
    }

    /// Every activation of every node so far: `(replica, time since the cluster started)`,
    /// in no particular order. A node that started active is listed at its start.
    pub fn activations(&self) -> Vec<(usize, Duration)> {
        let mut out = Vec::new();
        for (i, member) in self.members.iter().enumerate() {
            for &(at, active) in &member.node.state().history {
                if active {
                    out.push((
                        i,
                        (member.epoch + at).saturating_duration_since(self.started),
                    ));
                }
            }
        }
        out
    }

    /// Time since the cluster started, on the time line of [`Cluster::last_deactivation`].
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Replica `i`'s elector log (JSON lines, every run appended).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.members[i].log).unwrap_or_default()
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
        for i in 0..self.members.len() {
            let log = self.log(i);
            let panics: Vec<&str> = log.lines().filter(|l| l.contains("panicked")).collect();
            assert!(panics.is_empty(), "elector {i} panicked: {panics:#?}");
        }
    }

    /// What replica `i`'s `--fence-cmd` wrote: one line per fence action (empty if none ran).
    pub fn fence_log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.members[i].fence_log).unwrap_or_default()
    }

    /// Every node's mode history on the cluster's time line (time since the cluster started),
    /// without the activations excused by [`Cluster::activate_behind_the_back`], and the time
    /// they run up to.
    fn histories(&self) -> (Vec<History>, Duration) {
        let injected = self.injected.lock().unwrap_or_else(|p| p.into_inner());
        let mut histories = Vec::with_capacity(self.members.len());
        for (i, member) in self.members.iter().enumerate() {
            let shift = member.epoch.saturating_duration_since(self.started);
            let excused = |at: Duration| {
                let at = member.epoch + at;
                injected
                    .iter()
                    .any(|inj| inj.node == i && inj.from <= at && at <= inj.to)
            };
            let mut history = History::new();
            let mut skipping = false;
            for &(at, active) in &member.node.state().history {
                if active && excused(at) {
                    // Leave out the excused activation and the deactivation that ends it.
                    skipping = true;
                } else if skipping && !active {
                    skipping = false;
                } else if !skipping {
                    history.push((shift + at, active));
                }
            }
            histories.push(history);
        }
        (histories, self.elapsed())
    }

    /// Every span so far during which two or more nodes were effectively active (times since
    /// the cluster started), excused activations left out. [`Cluster::assert_never_two_active`]
    /// fails unless this is empty.
    pub fn dual_active(&self) -> Vec<Overlap> {
        let (histories, end) = self.histories();
        dual_active(&histories, end)
    }

    /// The dual-active monitor: panics if two nodes were effectively active at one instant at
    /// any time since the cluster started, with the simulation's safety check
    /// ([`elector_model::history::dual_active`]).
    ///
    /// The stand-ins' histories are put on one time line through their epochs, which are known
    /// to a few microseconds; a clean handover leaves a gap of several network round trips
    /// (standby confirmed, etcd transaction, watch, activation), milliseconds at least.
    pub fn assert_never_two_active(&self) {
        let (histories, end) = self.histories();
        let found = dual_active(&histories, end);
        let mut text = String::new();
        for overlap in &found {
            let _ = writeln!(
                text,
                "nodes {} and {} both active from {:?} until {:?}",
                overlap.nodes.0, overlap.nodes.1, overlap.from, overlap.until,
            );
        }
        assert!(
            found.is_empty(),
            "TWO NODES ACTIVE AT ONCE:\n{text}{}",
            describe_histories(&histories, end)
        );
    }

    /// Every node's state and every elector's `/status` role, for failure messages.
    pub async fn describe(&self) -> String {
        let mut text = format!("cluster at {:?}:\n", self.elapsed());
        for (i, member) in self.members.iter().enumerate() {
            let state = member.node.state();
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
                member.value,
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
        let (histories, end) = self.histories();
        text + &describe_histories(&histories, end)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            member
                .elector
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .kill();
        }
        if std::env::var_os(KEEP_LOGS_VAR).is_some()
            && !std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("elector logs kept in {}", dir.keep().display());
        }
        if std::thread::panicking() {
            let mut text = String::new();
            for (i, member) in self.members.iter().enumerate() {
                let log = std::fs::read_to_string(&member.log).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let _ = writeln!(
                    text,
                    "--- elector {i} ({}) log {}, last {LOG_TAIL_LINES} lines ---\n{}",
                    member.value,
                    member.log.display(),
                    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
                );
            }
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                let _ = writeln!(text, "elector logs kept in {}", kept.display());
            }
            eprintln!("{text}");
        }
    }
}

/// Each node's mode changes, for failure messages.
fn describe_histories(histories: &[History], end: Duration) -> String {
    let mut text = format!("mode histories (since the cluster started; now {end:?}):\n");
    for (i, history) in histories.iter().enumerate() {
        let changes: Vec<String> = history
            .iter()
            .map(|&(at, active)| format!("{at:?} {}", if active { "active" } else { "standby" }))
            .collect();
        let _ = writeln!(text, "  node {i}: {}", changes.join(", "));
    }
    text
}

/// The stand-in's epoch on our clock: its state's `now` was taken between our two clock
/// reads, so the midpoint is off by at most half their distance (microseconds).
fn epoch_of(node: &StandIn) -> Instant {
    let before = Instant::now();
    let now = node.state().now;
    let after = Instant::now();
    before + (after - before) / 2 - now
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

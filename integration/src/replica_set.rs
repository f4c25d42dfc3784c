//! The one replica set of host processes, for the functional tests ([`crate::cluster`]), the
//! demo and the benchmark: on one election key, each replica a stand-in node (in this process)
//! and a candidate beside it, an `elector` process or the Go election's `etcdctl elect`
//! ([`GoCandidate`]), all on one clock. Every operation returns a `Result`; the tests' front,
//! [`crate::cluster::Cluster`], turns errors into panics with a description of the set.
//!
//! Electors are started with the flags [`ReplicaSet::elector_args`] writes: the etcd
//! endpoints, node URLs, key and value in the [`FlagStyle`] of the replica, the timing as flags
//! generated from its core `Timing` ([`timing_flags`]), a status server on a free loopback port
//! (or `off`), `--state-dir` and `--fence-cmd` when set, then any extra arguments. Each
//! replica's elector output (stdout and stderr, every start appended) goes to one log file
//! named after the key and the value.
//!
//! A crashed host's node is replaced by a new one (a new *life*); every life's mode history
//! and signatures stay, so that the safety monitor ([`monitor`]: [`ReplicaSet::check_safety`])
//! judges the whole run with the simulation's check of the property (no height and round
//! signed by two replicas), then with its dual-active check. The stand-ins run on the wall
//! clock and share one chain (see [`crate::standin`]), so their signatures are comparable as
//! they are. Every process is killed when its replica set is dropped, on success, error or
//! panic; after a panic, the tail of every elector's log is printed.

pub mod monitor;
mod replica;

use monitor::Excused;
pub use replica::Replica;
use replica::{Candidate, NodeLife};

use crate::etcd_process::EtcdProcess;
use crate::go_election::GoCandidate;
use crate::host::{Guarded, elector_command, free_port, http_get, http_get_ok};
use crate::standin::{ClockAnchor, StandIn, StandInOptions};
use crate::timing_profile::{TimingProfile, timing_flags};
use anyhow::{Context, Result, bail};
use elector_core::Timing;
use elector_model::exposition::{parse_exposition, sample_value};
use elector_model::history::{History, dual_active};
use elector_model::node::Signature;
use std::fs::OpenOptions;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Poll period of the waits: short, for the measured times to be accurate.
const POLL: Duration = Duration::from_millis(10);
/// Attempts at starting an elector whose status port another process took meanwhile.
const STATUS_PORT_ATTEMPTS: usize = 3;
/// Lines of an elector's log quoted in an error, or printed after a panic.
const LOG_TAIL_LINES: usize = 40;

/// What every replica set of a run shares: the clock's origin, the etcd endpoints, the
/// elector binary and the directory for the electors' logs.
#[derive(Clone, Debug)]
pub struct Host {
    pub origin: Instant,
    /// Comma-separated etcd endpoints given to every elector.
    pub etcd: String,
    pub elector: PathBuf,
    pub logs: PathBuf,
}

impl Host {
    /// `at` on the run's clock.
    pub fn on_clock(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.origin)
    }
}

/// How an elector is told its etcd, node, key and value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagStyle {
    /// `--etcd URL --iotex-admin URL ...`.
    Conventional,
    /// The Go elector's `-etcd=URL -iotexAdmin=URL ...`, which the elector still accepts.
    Go,
}

/// Replicas on one election key. See the module documentation.
pub struct ReplicaSet {
    host: Host,
    key: String,
    timing: Timing,
    /// How nodes started from now on start (block interval, start mode, readiness, keys).
    node_options: StandInOptions,
    /// The flag style of replicas added from now on.
    flags: FlagStyle,
    replicas: Vec<Replica>,
    /// When set, every elector gets `--state-dir <state_root>/<value>`: what a restarted
    /// elector or `force-standby` needs to end a crashed process's term (rule `end_dead_term`).
    state_root: Option<PathBuf>,
    /// When set, every elector's `--fence-cmd`, with `{admin}` replaced by its node's admin
    /// address (`127.0.0.1:port`) and `{value}` by its value.
    fence_cmd: Option<String>,
    /// More arguments for every elector, after the others.
    extra_args: Vec<String>,
    /// Electors keep their bare-run watcher (no `--no-watcher`): they stand for electors an
    /// operator started by hand, not under systemd or `elector supervise`.
    watcher: bool,
    /// Electors get no state directory from the fixture (no `--state-dir`, no
    /// `ELECTOR_STATE_DIR`): they use the elector's default one.
    default_state_dir: bool,
    /// Activations made on purpose, which the monitor excuses.
    excused: Mutex<Vec<Excused>>,
}

impl ReplicaSet {
    /// No replicas yet; electors will run `profile`'s timing, told the rest in `flags` style;
    /// nodes start standby and ready, on the block interval the profile's timing assumes,
    /// our delegate proposing every slot.
    pub fn new(host: Host, key: String, profile: TimingProfile, flags: FlagStyle) -> Self {
        let timing = profile.timing();
        ReplicaSet {
            host,
            key,
            node_options: StandInOptions {
                block_interval: timing.block_interval,
                ..StandInOptions::default()
            },
            timing,
            flags,
            replicas: Vec::new(),
            state_root: None,
            fence_cmd: None,
            extra_args: Vec::new(),
            watcher: false,
            default_state_dir: false,
            excused: Mutex::new(Vec::new()),
        }
    }

    /// Electors started from now on keep their bare-run watcher (`true`), as when an operator
    /// starts `elector` by hand; by default they run with `--no-watcher`.
    pub fn set_watcher(&mut self, watcher: bool) {
        self.watcher = watcher;
    }

    /// Electors started from now on use the elector's default state directory (`true`): no
    /// `--state-dir` flag and no `ELECTOR_STATE_DIR`.
    pub fn set_default_state_dir(&mut self, default: bool) {
        self.default_state_dir = default;
    }

    /// Electors started from now on are given these etcd endpoints (comma separated), e.g.
    /// every member of a cluster, instead of the host's.
    pub fn set_etcd_endpoints(&mut self, endpoints: String) {
        self.host.etcd = endpoints;
    }

    /// Electors started from now on keep their state in `<root>/<value>` (`--state-dir`).
    pub fn set_state_root(&mut self, root: PathBuf) {
        self.state_root = Some(root);
    }

    /// Electors started from now on run `timing` (as flags) instead of the profile's.
    pub fn set_timing(&mut self, timing: Timing) {
        self.timing = timing;
    }

    /// Electors started from now on get this `--fence-cmd` (see the field's placeholders).
    pub fn set_fence_cmd(&mut self, template: String) {
        self.fence_cmd = Some(template);
    }

    /// Electors started from now on get these arguments after the others.
    pub fn set_extra_args(&mut self, args: Vec<String>) {
        self.extra_args = args;
    }

    /// Replica `i`'s elector is told its etcd, node, key and value in `style` from its next
    /// start on.
    pub fn set_flag_style(&mut self, i: usize, style: FlagStyle) {
        self.replicas[i].flags = style;
    }

    /// Replica `i`'s elector is given these etcd endpoints (comma separated) from its next
    /// start on, instead of the host's.
    pub fn set_replica_etcd(&mut self, i: usize, endpoints: String) {
        self.replicas[i].etcd = Some(endpoints);
    }

    /// Replica `i`'s `--state-dir`, created if missing; `None` without a state root.
    pub fn state_dir(&self, i: usize) -> Result<Option<PathBuf>> {
        let Some(root) = &self.state_root else {
            return Ok(None);
        };
        let dir = root.join(&self.replicas[i].value);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Some(dir))
    }

    /// Nodes started from now on have this block interval (the electors' timing must assume
    /// the same one for their guarantee to hold).
    pub fn set_block_interval(&mut self, block_interval: Duration) {
        self.node_options.block_interval = block_interval;
    }

    /// Nodes started from now on start so.
    pub fn set_node_options(&mut self, options: StandInOptions) {
        self.node_options = options;
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Time on the run's clock.
    pub fn elapsed(&self) -> Duration {
        self.host.origin.elapsed()
    }

    /// The election key.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn replica(&self, i: usize) -> &Replica {
        &self.replicas[i]
    }

    pub fn replicas(&self) -> &[Replica] {
        &self.replicas
    }

    /// Replica `i`'s current node; an error if its host crashed.
    pub fn node(&self, i: usize) -> Result<&StandIn> {
        let replica = &self.replicas[i];
        replica
            .node()
            .with_context(|| format!("replica {} has no node", replica.value))
    }

    /// Adds a replica with a fresh node (and no candidate yet), its elector with a status
    /// server on a free port if `status`; returns its index.
    pub async fn add_replica(&mut self, value: String, status: bool) -> Result<usize> {
        let status_port = if status { Some(free_port()?) } else { None };
        let log = self.host.logs.join(format!(
            "{}-{value}.log",
            self.key.trim_start_matches('/').replace('/', "_"),
        ));
        self.replicas.push(Replica {
            value,
            lives: Vec::new(),
            candidate: Candidate::None,
            flags: self.flags,
            etcd: None,
            status_port,
            log,
        });
        let i = self.replicas.len() - 1;
        self.start_node(i).await?;
        Ok(i)
    }

    /// Starts a new life of replica `i`'s node.
    pub async fn start_node(&mut self, i: usize) -> Result<()> {
        let any: SocketAddr = (Ipv4Addr::LOCALHOST, 0).into();
        let standin = StandIn::start(any, any, self.node_options.clone())
            .await
            .context("starting a stand-in node")?;
        self.replicas[i].lives.push(NodeLife {
            standin: Some(standin),
            anchor: ClockAnchor::now(),
            history: None,
            signatures: None,
        });
        Ok(())
    }

    /// The arguments replica `i`'s elector is started with, beside its current node.
    pub fn elector_args(&self, i: usize) -> Result<Vec<String>> {
        let replica = &self.replicas[i];
        let node = self.node(i)?;
        let etcd = replica
            .etcd
            .clone()
            .unwrap_or_else(|| self.host.etcd.clone());
        let admin = format!("http://{}", node.admin_addr());
        let probe = format!("http://{}", node.probe_addr());
        let mut args = match replica.flags {
            FlagStyle::Conventional => vec![
                "--etcd".to_owned(),
                etcd,
                "--iotex-admin".to_owned(),
                admin,
                "--iotex-probe".to_owned(),
                probe,
                "--key".to_owned(),
                self.key.clone(),
                "--value".to_owned(),
                replica.value.clone(),
            ],
            FlagStyle::Go => vec![
                format!("-etcd={etcd}"),
                format!("-iotexAdmin={admin}"),
                format!("-iotexProbe={probe}"),
                format!("-key={}", self.key),
                format!("-value={}", replica.value),
            ],
        };
        args.extend(timing_flags(&self.timing));
        args.push("--status-addr".to_owned());
        args.push(match replica.status_addr() {
            Some(addr) => addr.to_string(),
            None => "off".to_owned(),
        });
        // Without a state root, a fresh directory for each start: a restarted elector then
        // finds nothing of its previous process (the slow path after a crash), and electors
        // of tests running side by side never share the default directory's locks.
        // (A test that passes its own `--state-dir` in the extra arguments keeps it.)
        if !self.default_state_dir && !self.extra_args.iter().any(|a| a == "--state-dir") {
            let dir = match self.state_dir(i)? {
                Some(dir) => dir,
                None => crate::host::private_state_dir(),
            };
            args.push("--state-dir".to_owned());
            args.push(dir.display().to_string());
        }
        if let Some(template) = &self.fence_cmd {
            args.push("--fence-cmd".to_owned());
            args.push(
                template
                    .replace("{admin}", &node.admin_addr().to_string())
                    .replace("{value}", &replica.value),
            );
        }
        // These electors stand for ones that systemd or `elector supervise` runs: a kill is a
        // crash of the whole supervised host unless a test runs ExecStopPost's command itself.
        // The bare-run watcher has tests of its own (bare_run.rs), which keep it.
        if !self.watcher {
            args.push("--no-watcher".to_owned());
        }
        args.extend(self.extra_args.iter().cloned());
        Ok(args)
    }

    /// Starts an elector beside replica `i`'s current node, with [`ReplicaSet::elector_args`];
    /// its output is appended to the replica's log. Fails if one runs already.
    pub fn start_elector(&mut self, i: usize) -> Result<()> {
        let args = self.elector_args(i)?;
        self.spawn_elector(i, &args, &[])
    }

    /// Starts replica `i`'s elector with `args` (e.g. [`ReplicaSet::elector_args`] and more)
    /// and these environment variables (the elector's own `ELECTOR_*` variables of this
    /// process are never passed on: [`elector_command`]); its output is appended to the
    /// replica's log. Fails if one runs already.
    pub fn spawn_elector(&mut self, i: usize, args: &[String], env: &[(&str, &str)]) -> Result<()> {
        let replica = &mut self.replicas[i];
        if replica.elector_running() {
            bail!("the elector of {} is still running", replica.value);
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&replica.log)
            .with_context(|| format!("opening {}", replica.log.display()))?;
        let mut command = elector_command(&self.host.elector);
        if self.default_state_dir {
            command.env_remove("ELECTOR_STATE_DIR");
        }
        let child = command
            .args(args)
            .envs(env.iter().copied())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("duplicating a log handle")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.host.elector.display()))?;
        replica.candidate = Candidate::Elector(Guarded::new(child));
        Ok(())
    }

    /// Starts replica `i`'s elector and waits until its status server answers `/healthz`. If
    /// another process took the status port meanwhile, starts it again on another port.
    pub async fn start_elector_serving(&mut self, i: usize, within: Duration) -> Result<()> {
        for _attempt in 0..STATUS_PORT_ATTEMPTS {
            let addr = self.status_addr(i)?;
            self.start_elector(i)?;
            let deadline = Instant::now() + within;
            let replica = &self.replicas[i];
            loop {
                if http_get(addr, "/healthz").await.is_ok() {
                    return Ok(());
                }
                if !replica.elector_running() {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "the elector of {} serves no status within {within:?}; its log:\n{}",
                        replica.value,
                        replica.log_tail(LOG_TAIL_LINES)
                    );
                }
                tokio::time::sleep(POLL).await;
            }
            let log = replica.log();
            let taken = log
                .lines()
                .last()
                .is_some_and(|line| line.contains("cannot listen on --status-addr"));
            if !taken {
                bail!(
                    "the elector of {} exited at start; its log:\n{}",
                    replica.value,
                    replica.log_tail(LOG_TAIL_LINES)
                );
            }
            self.replicas[i].status_port = Some(free_port()?);
        }
        bail!(
            "the elector of {} found no free status port in {STATUS_PORT_ATTEMPTS} attempts",
            self.replicas[i].value
        )
    }

    /// The Go election: `etcdctl elect <key> <value>` against `etcd` and a wrapper that
    /// activates the node once etcdctl says it leads.
    pub fn start_go_candidate(&mut self, i: usize, etcd: &EtcdProcess) -> Result<()> {
        let admin = self.node(i)?.admin_addr();
        let replica = &mut self.replicas[i];
        let etcdctl = etcd.spawn_etcdctl(&["elect", &self.key, &replica.value])?;
        replica.candidate = Candidate::Go(GoCandidate::start(etcdctl, admin));
        Ok(())
    }

    /// Sends `sig` to replica `i`'s elector.
    pub fn signal_elector(&self, i: usize, sig: libc::c_int) -> Result<()> {
        let replica = &self.replicas[i];
        match replica.elector() {
            Some(guard) => guard
                .signal(sig)
                .with_context(|| format!("signalling the elector of {}", replica.value)),
            None => bail!("replica {} has no elector", replica.value),
        }
    }

    /// Waits, bounded, for replica `i`'s elector to exit; `None` if it did not (or there is
    /// none).
    pub async fn wait_elector_exit(&self, i: usize, within: Duration) -> Option<ExitStatus> {
        self.replicas[i].elector()?.wait_exit(within).await
    }

    /// A crashed host: kill -9 of the candidate process, and the node stops. Returns the
    /// instant of the kill.
    pub async fn crash(&mut self, i: usize) -> Result<Instant> {
        let replica = &mut self.replicas[i];
        let killed_at = match std::mem::replace(&mut replica.candidate, Candidate::None) {
            Candidate::Elector(guard) if guard.is_running() => guard.kill9(),
            Candidate::Go(go) => go.kill9().await?,
            _ => bail!("replica {} has no candidate to kill", replica.value),
        };
        let life = replica.lives.last_mut().context("no node")?;
        if let Some(node) = life.standin.take() {
            node.kill();
            life.history = Some(node.state().history);
            life.signatures = Some(node.signatures());
            node.shutdown().await;
        }
        Ok(killed_at)
    }

    /// A crashed elector on a live host: kill -9 of replica `i`'s elector only (reaped, its
    /// exit status kept); its node lives on (active, if it was). Returns the instant of the
    /// kill.
    pub fn kill_elector(&mut self, i: usize) -> Result<Instant> {
        let replica = &self.replicas[i];
        match replica.elector() {
            Some(guard) if guard.is_running() => Ok(guard.kill9()),
            _ => bail!("replica {} has no running elector to kill", replica.value),
        }
    }

    /// The replicas whose node is active now.
    pub fn active(&self) -> Vec<usize> {
        (0..self.replicas.len())
            .filter(|&i| self.replicas[i].is_active())
            .collect()
    }

    /// Waits until exactly one node, not `except`, is active; returns it and when it became
    /// active (from its history).
    pub async fn wait_active(
        &self,
        except: Option<usize>,
        within: Duration,
    ) -> Result<(usize, Instant)> {
        let active = async || Ok(self.active());
        let one = wait_sole_active(except, within, POLL, active, async |_| true)
            .await
            .context(self.key.clone())?;
        let life = self.replicas[one].lives.last().context("no node")?;
        let became = life
            .history()
            .iter()
            .rev()
            .find(|(_, active)| *active)
            .map(|(at, _)| life.instant_of(*at))
            .unwrap_or_else(Instant::now);
        Ok((one, became))
    }

    /// Waits until exactly one node, not `except`, is active and its elector's `/status` says
    /// `role` `active`; returns that replica.
    pub async fn wait_leader(&self, except: Option<usize>, within: Duration) -> Result<usize> {
        let active = async || Ok(self.active());
        let led = async |i| self.role(i).await.is_ok_and(|role| role == "active");
        wait_sole_active(except, within, POLL, active, led)
            .await
            .with_context(|| format!("{}: no active node led by its elector", self.key))
    }

    /// When replica `i`'s node (any life) last changed to `active`, on the run's clock.
    pub fn last_change(&self, i: usize, active: bool) -> Option<Duration> {
        monitor::last_change(&self.replica_history(i), active)
    }

    /// When replica `i`'s current node last went from active to inactive, at or after `since`.
    pub fn went_standby(&self, i: usize, since: Instant) -> Option<Instant> {
        let life = self.replicas[i].lives.last()?;
        life.history()
            .iter()
            .filter(|(_, active)| !active)
            .map(|(at, _)| life.instant_of(*at))
            .rfind(|at| *at >= since)
    }

    /// Replica `i`'s node lives' histories on the run's clock, merged into one (a crashed
    /// life ends inactive before the next one starts).
    pub fn replica_history(&self, i: usize) -> History {
        self.replicas[i]
            .lives
            .iter()
            .flat_map(|life| life.history_on(&self.host))
            .collect()
    }

    /// Every node life's history on the run's clock, up to now, none left out (see
    /// [`ReplicaSet::judged_histories`]).
    pub fn histories(&self) -> Vec<History> {
        self.replicas
            .iter()
            .flat_map(|r| r.lives.iter())
            .map(|life| life.history_on(&self.host))
            .collect()
    }

    /// Everything replica `i`'s node lives signed so far, on the model's clock.
    pub fn replica_signatures(&self, i: usize) -> Vec<Signature> {
        self.replicas[i]
            .lives
            .iter()
            .flat_map(NodeLife::signatures)
            .collect()
    }

    /// Total time two nodes of this set were active at once over the whole run so far, and
    /// the number of node histories checked.
    pub fn overlap(&self) -> (Duration, usize) {
        let histories = self.histories();
        let overlaps = dual_active(&histories, self.elapsed());
        let total = overlaps.iter().map(|o| o.until - o.from).sum();
        (total, histories.len())
    }

    /// What a supervisor does when an elector dies (systemd `ExecStopPost=`, see
    /// docs/safety.md's `restart_bound`): `/ha?activate=false` on replica `i`'s node.
    pub async fn force_standby(&self, i: usize) -> Result<()> {
        http_get_ok(self.node(i)?.admin_addr(), "/ha?activate=false").await?;
        Ok(())
    }

    /// The address of replica `i`'s elector's status server; an error if it has none.
    fn status_addr(&self, i: usize) -> Result<SocketAddr> {
        let replica = &self.replicas[i];
        replica
            .status_addr()
            .with_context(|| format!("the elector of {} has no status server", replica.value))
    }

    /// `GET <path>` on replica `i`'s status server: `/status`, `/metrics`, `/healthz`.
    pub async fn status_get(&self, i: usize, path: &str) -> Result<(u16, String)> {
        http_get(self.status_addr(i)?, path).await
    }

    /// Replica `i`'s `/status`.
    pub async fn status(&self, i: usize) -> Result<serde_json::Value> {
        let body = http_get_ok(self.status_addr(i)?, "/status").await?;
        serde_json::from_str(&body).context("/status is no JSON")
    }

    /// The `role` of replica `i`'s `/status`.
    pub async fn role(&self, i: usize) -> Result<String> {
        let status = self.status(i).await?;
        status["role"]
            .as_str()
            .map(str::to_owned)
            .context("/status has no role")
    }

    /// The value of an unlabelled Prometheus sample of replica `i`'s `/metrics`.
    pub async fn metric(&self, i: usize, name: &str) -> Result<f64> {
        let body = http_get_ok(self.status_addr(i)?, "/metrics").await?;
        let samples = parse_exposition(&body).map_err(|e| anyhow::anyhow!("/metrics: {e}"))?;
        sample_value(&samples, name, &[]).with_context(|| format!("/metrics has no sample {name}"))
    }

    /// The last `lines` lines of every elector's log, each headed by its value and file.
    pub fn log_tails(&self, lines: usize) -> String {
        self.replicas
            .iter()
            .map(|r| {
                let (value, path) = (&r.value, r.log.display());
                format!(
                    "--- elector {value} ({path}), last {lines} lines ---\n{}\n",
                    r.log_tail(lines)
                )
            })
            .collect()
    }

    /// Stops everything: candidates first (kill -9: nothing to measure any more), then nodes.
    pub async fn shutdown(mut self) {
        for replica in &mut self.replicas {
            replica.candidate = Candidate::None;
        }
        for replica in &mut self.replicas {
            for life in &mut replica.lives {
                if let Some(node) = life.standin.take() {
                    node.shutdown().await;
                }
            }
        }
    }
}

impl Drop for ReplicaSet {
    /// After a panic, the tail of every elector's log: what a failing test's reader needs
    /// first. The processes end with the fields.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails(LOG_TAIL_LINES));
        }
    }
}

/// Polls `active` (the replicas active now) every `period` until it is exactly one, not
/// `except`, and `confirmed` holds for it; returns that replica.
pub async fn wait_sole_active(
    except: Option<usize>,
    within: Duration,
    period: Duration,
    active: impl AsyncFn() -> Result<Vec<usize>>,
    confirmed: impl AsyncFn(usize) -> bool,
) -> Result<usize> {
    let deadline = Instant::now() + within;
    loop {
        let active = active().await?;
        if let [one] = active[..]
            && Some(one) != except
            && confirmed(one).await
        {
            return Ok(one);
        }
        if Instant::now() > deadline {
            bail!(
                "no single active node other than {except:?} within {within:?} (active: {active:?})"
            );
        }
        tokio::time::sleep(period).await;
    }
}

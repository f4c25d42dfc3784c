//! Replicas for the Docker tests: an elector beside a stand-in node, recording the node's
//! mode history, and the one check every case makes with it, never two active
//! ([`elector_model::history::dual_active`], the simulation's checker).
//!
//! - [`HostReplicas`]: electors as processes on the host (the binary cargo built, see
//!   [`elector_binary`]) beside in-process stand-in nodes; they reach etcd through the ports
//!   the etcd containers publish on the host's loopback.
//! - [`ContainerReplicas`]: each replica is a stand-in container and an elector container that
//!   shares its network namespace (`network_mode: container:<stand-in>`, as the elector shares
//!   the node's in production), on the etcd cluster's network; a replica can be cut off that
//!   network for real. Histories come from the stand-ins' logs, timed by the engine.
//! - [`ProfileBounds`]: the default timing and docs/safety.md's fast profile, with the bounds the
//!   tests wait for, computed by the elector's own timing code.
//! - [`ElectionWatch`]: a watch on the candidate keys from the host, recording when each
//!   key appears and disappears (a lease expiry shows as its key's deletion).

use super::{DockerNetwork, labels, log_tail, logs_with_times, unique_name};
use crate::host::{elector_binary, elector_command, http_get_ok};
use crate::standin::{StandIn, StandInOptions};
use crate::timing_profile::TimingProfile;
use anyhow::{Context, Result, anyhow, bail, ensure};
use elector_model::history::{History, dual_active};
use futures_util::future::try_join_all;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tempfile::TempDir;
use testcontainers::bollard::Docker;
use testcontainers::core::WaitFor;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// Names of the replicas, in order.
pub const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];
/// The line a stand-in node prints once it serves.
const STAND_IN_READY: &str = "stand-in-node: admin http://";
/// The line an elector prints when it starts.
const ELECTOR_STARTING: &str = "elector starting";
/// Slack added to every computed bound, for scheduling on two busy cores.
const SLACK: Duration = Duration::from_secs(5);
/// The elector re-reads the election at least this often, whatever its watch says
/// (`elector::etcd::OBSERVE_RECHECK_PERIOD`).
const RECHECK: Duration = elector::etcd::OBSERVE_RECHECK_PERIOD;
/// etcd revokes expired leases in a sweep every 500 ms.
const SWEEP: Duration = Duration::from_millis(500);

/// A timing profile as the container tests run it: the elector's flags, and the bounds the
/// tests derive from its numbers (one name per meaning: [`TimingProfile`] is the profile).
#[derive(Clone, Debug)]
pub struct ProfileBounds {
    pub name: &'static str,
    pub args: Vec<String>,
    pub timing: elector_core::Timing,
    /// The stand-in nodes' consensus round: within the drain bound.
    pub round: Duration,
}

impl ProfileBounds {
    /// `profile` with the tests' name for it.
    fn of(name: &'static str, profile: TimingProfile) -> ProfileBounds {
        ProfileBounds {
            name,
            args: profile.flags(),
            timing: profile.timing(),
            round: profile.round(),
        }
    }

    /// The defaults (10 s lease, 8.1 s activation delay), nodes with 2 s rounds.
    pub fn default_timing() -> ProfileBounds {
        ProfileBounds::of("default", TimingProfile::Default)
    }

    /// docs/safety.md's profile for nodes that drain within 700 ms (3 s lease), nodes with
    /// 500 ms rounds.
    pub fn fast() -> ProfileBounds {
        ProfileBounds::of("fast", TimingProfile::Fast)
    }

    pub fn ttl(&self) -> Duration {
        self.timing.lease_ttl
    }

    /// Bound on the first activation after the electors start: a lease, a key, the
    /// activation delay (no handover record yet), plus slack.
    pub fn first_activation_bound(&self) -> Duration {
        self.timing.activation_delay + RECHECK + SLACK
    }

    /// Bound on a takeover after the leader stopped renewing: its lease runs out (TTL plus
    /// etcd's sweep), the next candidate sees it (watch, or the periodic re-read at worst) and
    /// waits the activation delay, plus slack.
    pub fn takeover_bound(&self) -> Duration {
        self.timing.lease_ttl + SWEEP + RECHECK + self.timing.activation_delay + SLACK
    }

    /// The latest lease deadline an elector can hold when its renewals stop reaching etcd at
    /// `cut`: its last acknowledged keep-alive was sent no later than `cut`, and its deadline
    /// is that send time plus TTL × (1 − drift) (docs/safety.md, `lease_deadline`). Its node
    /// must be standby by then; etcd cannot expire the lease before it.
    pub fn lease_deadline_after_cut(&self, cut: Duration) -> Duration {
        cut + self
            .timing
            .lease_ttl
            .mul_f64(1.0 - self.timing.max_clock_drift)
    }

    /// The earliest moment etcd may expire such a lease, if keep-alives went out every
    /// interval and were each answered within the request timeout: the last one it served
    /// was sent at most one keep-alive round before `cut`. For reports; the elector only
    /// promises [`Self::lease_deadline_after_cut`].
    pub fn earliest_expiry_after_cut(&self, cut: Duration) -> Duration {
        (cut + self.timing.lease_ttl)
            .saturating_sub(self.timing.keepalive_interval + self.timing.etcd_request_timeout)
    }
}

/// An elector process on the host, killed when dropped. Its stderr goes to a log file.
pub struct HostElector {
    child: Child,
    log: PathBuf,
}

impl HostElector {
    pub fn spawn(binary: &Path, args: &[String], env: &[(&str, &str)], log: &Path) -> Result<Self> {
        let file = std::fs::File::create(log)
            .with_context(|| format!("creating the elector log {}", log.display()))?;
        let mut command = elector_command(binary);
        command
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(HostElector {
            child,
            log: log.to_owned(),
        })
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, and reaped: a crashed elector.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (bounded) for the exit.
    pub async fn terminate(&mut self, within: Duration) -> Result<ExitStatus> {
        let pid = libc::pid_t::try_from(self.child.id()).context("pid out of range")?;
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            ensure!(
                Instant::now() < deadline,
                "the elector did not exit within {within:?} of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for HostElector {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One replica on the host: a stand-in node and the elector beside it.
struct HostReplica {
    name: &'static str,
    node: StandIn,
    started: tokio::time::Instant,
    elector: Option<HostElector>,
}

/// Replicas on the host, all on one clock ([`HostReplicas::now`]). Electors are killed when
/// this drops; if the test is failing, their log tails are printed.
pub struct HostReplicas {
    origin: tokio::time::Instant,
    replicas: Vec<HostReplica>,
    logs: TempDir,
    binary: PathBuf,
    key: String,
    profile: ProfileBounds,
}

impl HostReplicas {
    /// Starts one stand-in node per entry of `endpoints` (standby, ready), then an elector
    /// beside each, given that entry's etcd endpoints, `key`, the profile's flags and `extra`
    /// flags (`extra[i]` for replica `i`; missing entries mean none). `env[i]` likewise.
    pub async fn start(
        key: &str,
        profile: &ProfileBounds,
        endpoints: &[Vec<String>],
        extra: &[Vec<String>],
        env: &[Vec<(&str, &str)>],
    ) -> Result<HostReplicas> {
        ensure!(endpoints.len() <= NAMES.len(), "too many replicas");
        let binary = elector_binary()?;
        eprintln!("electors: {}", binary.display());
        let logs = tempfile::Builder::new()
            .prefix("elector-docker-logs-")
            .tempdir()?;
        let origin = tokio::time::Instant::now();
        let mut replicas = Vec::new();
        for name in NAMES.iter().take(endpoints.len()) {
            let started = tokio::time::Instant::now();
            let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
            let node = StandIn::start(
                any,
                any,
                StandInOptions {
                    start_active: false,
                    round: profile.round,
                    ready: true,
                },
            )
            .await
            .context("starting a stand-in node")?;
            replicas.push(HostReplica {
                name,
                node,
                started,
                elector: None,
            });
        }
        let mut set = HostReplicas {
            origin,
            replicas,
            logs,
            binary,
            key: key.to_owned(),
            profile: profile.clone(),
        };
        for (i, endpoints) in endpoints.iter().enumerate() {
            let extra = extra.get(i).cloned().unwrap_or_default();
            let env = env.get(i).cloned().unwrap_or_default();
            set.start_elector(i, endpoints, &extra, &env)?;
        }
        Ok(set)
    }

    /// (Re)starts replica `i`'s elector.
    pub fn start_elector(
        &mut self,
        i: usize,
        endpoints: &[String],
        extra: &[String],
        env: &[(&str, &str)],
    ) -> Result<()> {
        let replica = &self.replicas[i];
        let mut args = vec![
            format!("--etcd={}", endpoints.join(",")),
            format!("--iotex-admin=http://{}", replica.node.admin_addr()),
            format!("--iotex-probe=http://{}", replica.node.probe_addr()),
            format!("--key={}", self.key),
            format!("--value={}", replica.name),
            "--status-addr=off".to_owned(),
        ];
        args.extend(self.profile.args.iter().cloned());
        args.extend(extra.iter().cloned());
        let log = self
            .logs
            .path()
            .join(format!("elector-{}.log", replica.name));
        let elector = HostElector::spawn(&self.binary, &args, env, &log)?;
        self.replicas[i].elector = Some(elector);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.replicas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }

    /// Replica `i`'s value in the election.
    pub fn value(&self, i: usize) -> &'static str {
        self.replicas[i].name
    }

    /// Time on the replicas' common clock.
    pub fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Converts an instant to the common clock.
    pub fn at(&self, instant: Instant) -> Duration {
        let now = Instant::now();
        let since = now.saturating_duration_since(instant);
        self.now().saturating_sub(since)
    }

    /// The replicas whose nodes report active now.
    pub fn active(&self) -> Vec<usize> {
        (0..self.replicas.len())
            .filter(|&i| self.replicas[i].node.state().active)
            .collect()
    }

    /// Waits until exactly one node, other than `except`, is active; returns it.
    pub async fn wait_single_active(
        &self,
        except: Option<usize>,
        within: Duration,
    ) -> Result<usize> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let active = self.active();
            if let [one] = active[..]
                && Some(one) != except
            {
                return Ok(one);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "no single active node (other than {except:?}) within {within:?}; active: \
                     {active:?}\n{}",
                    self.log_tails(15)
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Checks for `period` that `leader` alone is active, without a gap; fails at once
    /// otherwise.
    pub async fn assert_sole_active_for(&self, leader: usize, period: Duration) -> Result<()> {
        let until = tokio::time::Instant::now() + period;
        while tokio::time::Instant::now() < until {
            let active = self.active();
            ensure!(
                active == [leader],
                "expected {} alone active, found {active:?} at {:.2}s\n{}",
                self.value(leader),
                self.now().as_secs_f64(),
                self.log_tails(15)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Checks for `period` that no node is active.
    pub async fn assert_none_active_for(&self, period: Duration) -> Result<()> {
        let until = tokio::time::Instant::now() + period;
        while tokio::time::Instant::now() < until {
            let active = self.active();
            ensure!(
                active.is_empty(),
                "expected no active node, found {active:?}\n{}",
                self.log_tails(15)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Every node's mode history on the common clock, up to now.
    pub fn histories(&self) -> Vec<History> {
        self.replicas
            .iter()
            .map(|replica| {
                let offset = replica.started.saturating_duration_since(self.origin);
                replica
                    .node
                    .state()
                    .history
                    .into_iter()
                    .map(|(at, active)| (at + offset, active))
                    .collect()
            })
            .collect()
    }

    /// When node `i` last changed to `active`.
    pub fn last_change(&self, i: usize, active: bool) -> Option<Duration> {
        self.histories()[i]
            .iter()
            .rev()
            .find(|(_, mode)| *mode == active)
            .map(|(at, _)| *at)
    }

    /// The never-two-active check over every history so far.
    pub fn check_never_two_active(&self) -> Result<()> {
        let names: Vec<&str> = self.replicas.iter().map(|r| r.name).collect();
        check_never_two_active(&self.histories(), self.now(), &names)
    }

    /// Kills replica `i`'s elector with SIGKILL.
    pub fn kill_elector(&mut self, i: usize) {
        if let Some(mut elector) = self.replicas[i].elector.take() {
            elector.kill();
            // Keep its log readable: the process is gone, the file stays.
            self.replicas[i].elector = Some(elector);
        }
    }

    /// What a supervisor does when an elector dies (systemd `ExecStopPost=`, see
    /// docs/safety.md's `restart_bound`): commands the node standby through its admin port.
    pub async fn force_standby(&self, i: usize) -> Result<()> {
        http_get_ok(self.replicas[i].node.admin_addr(), "/ha?activate=false").await?;
        Ok(())
    }

    /// Replica `i`'s elector, for signals and its log.
    pub fn elector(&mut self, i: usize) -> Option<&mut HostElector> {
        self.replicas[i].elector.as_mut()
    }

    /// Replica `i`'s elector log.
    pub fn elector_log(&self, i: usize) -> String {
        self.replicas[i]
            .elector
            .as_ref()
            .map(HostElector::log)
            .unwrap_or_default()
    }

    /// The last `lines` lines of every elector's log.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut text = String::new();
        for (i, replica) in self.replicas.iter().enumerate() {
            let log = self.elector_log(i);
            let all: Vec<&str> = log.lines().collect();
            text.push_str(&format!(
                "--- elector {} ---\n{}\n",
                replica.name,
                all[all.len().saturating_sub(lines)..].join("\n")
            ));
        }
        text
    }
}

impl Drop for HostReplicas {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails(40));
        }
    }
}

/// Fails unless no two of `histories` overlap in activity before `end`; names the nodes.
pub fn check_never_two_active(histories: &[History], end: Duration, names: &[&str]) -> Result<()> {
    let overlaps = dual_active(histories, end);
    if let Some(first) = overlaps.first() {
        bail!(
            "TWO ACTIVE: {} and {} from {:.3}s to {:.3}s ({} overlap(s)); histories: {histories:?}",
            names.get(first.nodes.0).unwrap_or(&"?"),
            names.get(first.nodes.1).unwrap_or(&"?"),
            first.from.as_secs_f64(),
            first.until.as_secs_f64(),
            overlaps.len()
        );
    }
    Ok(())
}

/// One replica in containers: a stand-in node container on the etcd network and an elector
/// container in its network namespace.
struct ContainerReplica {
    name: &'static str,
    // Drop order: the elector before the container whose namespace it uses.
    elector: ContainerAsync<GenericImage>,
    node: ContainerAsync<GenericImage>,
}

/// Replicas in containers; their histories come from the stand-ins' logs.
pub struct ContainerReplicas {
    docker: Docker,
    origin: Instant,
    origin_wall: SystemTime,
    replicas: Vec<ContainerReplica>,
}

impl ContainerReplicas {
    /// Starts `count` replicas on `network`, electors given `endpoints` (as reached from the
    /// network), `key` and the profile's flags.
    pub async fn start(
        docker: &Docker,
        network: &DockerNetwork,
        endpoints: &[String],
        key: &str,
        profile: &ProfileBounds,
        count: usize,
    ) -> Result<ContainerReplicas> {
        ensure!(count <= NAMES.len(), "too many replicas");
        let stand_in = super::stand_in_image();
        let elector = super::elector_image();
        let origin = Instant::now();
        let origin_wall = SystemTime::now();
        let round = humantime::format_duration(profile.round).to_string();
        let nodes = try_join_all(NAMES.iter().take(count).map(|name| {
            GenericImage::new(stand_in.name.clone(), stand_in.tag.clone())
                .with_wait_for(WaitFor::message_on_stderr(STAND_IN_READY))
                .with_container_name(unique_name(&format!("node-{name}")))
                .with_network(network.name())
                .with_labels(labels())
                .with_startup_timeout(Duration::from_secs(30))
                .with_cmd(["--round", round.as_str()])
                .start()
        }))
        .await
        .context("starting the stand-in node containers")?;
        let mut args: Vec<String> = vec![
            format!("--etcd={}", endpoints.join(",")),
            format!("--key={key}"),
            "--status-addr=off".to_owned(),
        ];
        args.extend(profile.args.iter().cloned());
        let electors = try_join_all(NAMES.iter().take(count).zip(&nodes).map(|(name, node)| {
            let mut args = args.clone();
            args.push(format!("--value={name}"));
            GenericImage::new(elector.name.clone(), elector.tag.clone())
                .with_wait_for(WaitFor::message_on_stderr(ELECTOR_STARTING))
                .with_container_name(unique_name(&format!("elector-{name}")))
                // The node's network namespace. Set on the host config rather than with
                // `with_network`, which would look for (and try to create) a network of
                // that name; no port may be published in this mode.
                .with_host_config_modifier({
                    let mode = format!("container:{}", node.id());
                    move |config| {
                        config.network_mode = Some(mode.clone());
                        config.publish_all_ports = Some(false);
                        config.port_bindings = None;
                    }
                })
                .with_env_var("NO_COLOR", "1")
                .with_labels(labels())
                .with_startup_timeout(Duration::from_secs(30))
                .with_cmd(args)
                .start()
        }))
        .await
        .context("starting the elector containers")?;
        let replicas = NAMES
            .iter()
            .zip(nodes.into_iter().zip(electors))
            .map(|(name, (node, elector))| ContainerReplica {
                name,
                elector,
                node,
            })
            .collect();
        Ok(ContainerReplicas {
            docker: docker.clone(),
            origin,
            origin_wall,
            replicas,
        })
    }

    pub fn len(&self) -> usize {
        self.replicas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }

    pub fn value(&self, i: usize) -> &'static str {
        self.replicas[i].name
    }

    /// The stand-in container of replica `i`: it owns the replica's network namespace.
    pub fn node_id(&self, i: usize) -> &str {
        self.replicas[i].node.id()
    }

    /// Time on the replicas' common clock.
    pub fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Converts an instant to the common clock.
    pub fn at(&self, instant: Instant) -> Duration {
        instant.saturating_duration_since(self.origin)
    }

    /// Every node's mode history on the common clock, from the stand-ins' logs.
    pub async fn histories(&self) -> Result<Vec<History>> {
        let mut histories = Vec::new();
        for replica in &self.replicas {
            let lines = logs_with_times(&self.docker, replica.node.id()).await?;
            let history = stand_in_history(&lines, self.origin_wall)
                .with_context(|| format!("the history of node {}", replica.name))?;
            histories.push(history);
        }
        Ok(histories)
    }

    /// The replicas whose nodes are active according to their logs so far.
    pub async fn active(&self) -> Result<Vec<usize>> {
        Ok(self
            .histories()
            .await?
            .iter()
            .enumerate()
            .filter(|(_, history)| history.last().is_some_and(|&(_, active)| active))
            .map(|(i, _)| i)
            .collect())
    }

    /// Waits until exactly one node, other than `except`, is active; returns it.
    pub async fn wait_single_active(
        &self,
        except: Option<usize>,
        within: Duration,
    ) -> Result<usize> {
        let deadline = Instant::now() + within;
        loop {
            let active = self.active().await?;
            if let [one] = active[..]
                && Some(one) != except
            {
                return Ok(one);
            }
            if Instant::now() > deadline {
                bail!(
                    "no single active node (other than {except:?}) within {within:?}; active: \
                     {active:?}\n{}",
                    self.log_tails(15).await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// When node `i` last changed to `active`, on the common clock.
    pub async fn last_change(&self, i: usize, active: bool) -> Result<Option<Duration>> {
        Ok(self.histories().await?[i]
            .iter()
            .rev()
            .find(|(_, mode)| *mode == active)
            .map(|(at, _)| *at))
    }

    /// The never-two-active check over every history so far.
    pub async fn check_never_two_active(&self) -> Result<()> {
        let names: Vec<&str> = self.replicas.iter().map(|r| r.name).collect();
        check_never_two_active(&self.histories().await?, self.now(), &names)
    }

    /// The last `lines` lines of every elector's log.
    pub async fn log_tails(&self, lines: usize) -> String {
        let mut text = String::new();
        for replica in &self.replicas {
            text.push_str(&format!(
                "--- elector {} ---\n{}\n",
                replica.name,
                log_tail(&self.docker, replica.elector.id(), lines).await
            ));
        }
        text
    }

    /// Replica `i`'s elector log.
    pub async fn elector_log(&self, i: usize) -> String {
        log_tail(&self.docker, self.replicas[i].elector.id(), usize::MAX).await
    }
}

/// A stand-in node's mode history from its log (the `stand-in-node` binary's lines:
/// `... started standby ...`, then `<seconds>s mode active|standby` per change), on a clock
/// starting at `origin`. The node's own times are used, anchored at the engine's time of its
/// start line.
pub fn stand_in_history(lines: &[super::LogLine], origin: SystemTime) -> Result<History> {
    let start = lines
        .iter()
        .find(|line| line.text.contains(STAND_IN_READY))
        .ok_or_else(|| anyhow!("no start line in the stand-in's log"))?;
    let epoch = start.at.duration_since(origin).unwrap_or(Duration::ZERO);
    let mut history = vec![(epoch, start.text.contains("started active"))];
    for line in lines {
        let Some(rest) = line.text.strip_prefix("stand-in-node: ") else {
            continue;
        };
        if rest.contains("mode changes not logged") {
            bail!("the stand-in's log is incomplete: {rest}");
        }
        let Some((seconds, mode)) = rest.split_once("s mode ") else {
            continue;
        };
        let seconds: f64 = seconds
            .parse()
            .with_context(|| format!("bad time in {:?}", line.text))?;
        let active = match mode.trim() {
            "active" => true,
            "standby" => false,
            other => bail!("bad mode {other:?} in {:?}", line.text),
        };
        history.push((epoch + Duration::from_secs_f64(seconds), active));
    }
    Ok(history)
}

/// What [`ElectionWatch`] saw happen to a candidate key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEvent {
    pub at: Instant,
    pub key: String,
    /// The value written; `None` for a deletion.
    pub value: Option<String>,
}

/// A watch on `<key>/` from the host, recording every candidate key's creation and deletion
/// with the time the event arrived. Stops when dropped.
pub struct ElectionWatch {
    events: Arc<Mutex<Vec<KeyEvent>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ElectionWatch {
    /// Watches through `endpoint` (plain `http://`).
    pub async fn start(endpoint: &str, key: &str) -> Result<ElectionWatch> {
        let prefix = format!("{key}/");
        let mut client = tokio::time::timeout(
            Duration::from_secs(5),
            etcd_client::Client::connect([endpoint], None),
        )
        .await
        .map_err(|_| anyhow!("connecting to {endpoint} timed out"))??;
        let mut stream = tokio::time::timeout(
            Duration::from_secs(5),
            client.watch(
                prefix.as_str(),
                Some(etcd_client::WatchOptions::new().with_prefix()),
            ),
        )
        .await
        .map_err(|_| anyhow!("starting a watch on {endpoint} timed out"))??;
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let task = tokio::spawn(async move {
            while let Ok(Some(response)) = stream.message().await {
                let at = Instant::now();
                for event in response.events() {
                    let Some(kv) = event.kv() else { continue };
                    let value = match event.event_type() {
                        etcd_client::EventType::Put => {
                            Some(String::from_utf8_lossy(kv.value()).into_owned())
                        }
                        etcd_client::EventType::Delete => None,
                    };
                    sink.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(KeyEvent {
                            at,
                            key: String::from_utf8_lossy(kv.key()).into_owned(),
                            value,
                        });
                }
            }
        });
        Ok(ElectionWatch { events, task })
    }

    /// Everything seen so far.
    pub fn events(&self) -> Vec<KeyEvent> {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The latest key created with `value`.
    pub fn key_of(&self, value: &str) -> Option<String> {
        self.events()
            .into_iter()
            .rev()
            .find(|event| event.value.as_deref() == Some(value))
            .map(|event| event.key)
    }

    /// When `key` was deleted (its lease expired or was revoked), if it was.
    pub fn deleted_at(&self, key: &str) -> Option<Instant> {
        self.events()
            .into_iter()
            .find(|event| event.key == key && event.value.is_none())
            .map(|event| event.at)
    }

    /// Waits (bounded) until `key` is deleted; returns when.
    pub async fn wait_deleted(&self, key: &str, within: Duration) -> Result<Instant> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(at) = self.deleted_at(key) {
                return Ok(at);
            }
            ensure!(
                Instant::now() < deadline,
                "{key} was not deleted within {within:?}; events: {:?}",
                self.events()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ElectionWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers::LogLine;

    #[test]
    fn profiles_match_docs_safety() {
        let fast = ProfileBounds::fast();
        assert_eq!(fast.ttl(), Duration::from_secs(3));
        assert_eq!(fast.timing.activation_delay, Duration::from_millis(2800));
        let default = ProfileBounds::default_timing();
        assert_eq!(default.ttl(), Duration::from_secs(10));
        assert_eq!(default.timing.activation_delay, Duration::from_millis(8100));
        assert_eq!(
            fast.earliest_expiry_after_cut(Duration::from_secs(10)),
            Duration::from_millis(12_400)
        );
        assert_eq!(
            fast.lease_deadline_after_cut(Duration::from_secs(10)),
            Duration::from_millis(12_970)
        );
    }

    #[test]
    fn stand_in_logs_give_histories() {
        let origin = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let line = |ms: u64, text: &str| LogLine {
            at: origin + Duration::from_millis(ms),
            text: text.to_owned(),
        };
        let lines = [
            line(
                250,
                "stand-in-node: admin http://127.0.0.1:9009 probe http://127.0.0.1:8080 \
                 started standby, ready, round 500ms",
            ),
            line(3300, "stand-in-node: 3.010s mode active"),
            line(9000, "something else"),
            line(9800, "stand-in-node: 9.500s mode standby"),
        ];
        assert_eq!(
            stand_in_history(&lines, origin).unwrap(),
            vec![
                (Duration::from_millis(250), false),
                (Duration::from_millis(3260), true),
                (Duration::from_millis(9750), false),
            ]
        );
        let lossy = [
            lines[0].clone(),
            line(
                1000,
                "stand-in-node: 2 mode changes not logged (log too slow)",
            ),
        ];
        assert!(stand_in_history(&lossy, origin).is_err());
        assert!(stand_in_history(&lines[1..], origin).is_err());
    }
}

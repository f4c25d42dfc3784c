//! Replicas for the Docker tests: an elector beside a stand-in node, recording the node's
//! signatures and mode history, and the checks every case makes with them, the replica set's
//! [`monitor`](crate::replica_set::monitor): first no height and round signed by two replicas,
//! then never two active, with the simulation's checkers.
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

mod election_watch;
mod profile_bounds;

pub use election_watch::{ElectionWatch, KeyEvent};
pub use profile_bounds::ProfileBounds;

use super::{DockerNetwork, labels, log_tail, logs_with_times, unique_name};
use crate::host::elector_binary;
use crate::replica_set::monitor::{check_never_two_active, check_no_double_sign, last_change};
use crate::replica_set::{FlagStyle, Host, ReplicaSet, wait_sole_active};
use crate::timing_profile::timing_flags;
use anyhow::{Context, Result, anyhow, bail, ensure};
use elector_model::history::History;
use elector_model::node::{SignKind, Signature};
use futures_util::future::try_join_all;
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
/// How often the waits read the stand-ins' logs.
const LOG_POLL: Duration = Duration::from_millis(100);

/// Replicas on the host for the Docker tests: the [`ReplicaSet`] (electors as host processes
/// beside in-process stand-ins, one clock), each elector given its own etcd endpoints, extra
/// flags and environment, no status server, text logs. Electors are killed when this drops;
/// after a panic, their log tails are printed.
pub struct HostReplicas {
    // Dropped in declaration order: the electors (with the set) before their log directory.
    set: ReplicaSet,
    _logs: TempDir,
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
        let elector = elector_binary()?;
        eprintln!("electors: {}", elector.display());
        let logs = tempfile::Builder::new()
            .prefix("elector-docker-logs-")
            .tempdir()?;
        let host = Host {
            origin: Instant::now(),
            etcd: String::new(),
            elector,
            logs: logs.path().to_owned(),
        };
        let mut set = ReplicaSet::new(
            host,
            key.to_owned(),
            profile.profile,
            FlagStyle::Conventional,
        );
        set.set_timing(profile.timing.clone());
        set.set_block_interval(profile.timing.block_interval);
        for name in NAMES.iter().take(endpoints.len()) {
            set.add_replica((*name).to_owned(), false).await?;
        }
        let mut replicas = HostReplicas { set, _logs: logs };
        for (i, endpoints) in endpoints.iter().enumerate() {
            let extra = extra.get(i).cloned().unwrap_or_default();
            let env = env.get(i).cloned().unwrap_or_default();
            replicas.start_elector(i, endpoints, &extra, &env)?;
        }
        Ok(replicas)
    }

    /// (Re)starts replica `i`'s elector with these etcd endpoints, extra flags and
    /// environment.
    pub fn start_elector(
        &mut self,
        i: usize,
        endpoints: &[String],
        extra: &[String],
        env: &[(&str, &str)],
    ) -> Result<()> {
        self.set.set_replica_etcd(i, endpoints.join(","));
        let mut args = self.set.elector_args(i)?;
        args.extend(extra.iter().cloned());
        self.set.spawn_elector(i, &args, env)
    }

    pub fn len(&self) -> usize {
        self.set.replicas().len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.replicas().is_empty()
    }

    /// Replica `i`'s value in the election.
    pub fn value(&self, i: usize) -> &'static str {
        NAMES[i]
    }

    /// Time on the replicas' common clock.
    pub fn now(&self) -> Duration {
        self.set.elapsed()
    }

    /// Converts an instant to the common clock.
    pub fn at(&self, instant: Instant) -> Duration {
        self.set.host().on_clock(instant)
    }

    /// The replicas whose nodes report active now.
    pub fn active(&self) -> Vec<usize> {
        self.set.active()
    }

    /// Waits until exactly one node, other than `except`, is active; returns it.
    pub async fn wait_single_active(
        &self,
        except: Option<usize>,
        within: Duration,
    ) -> Result<usize> {
        let (one, _) = (self.set.wait_active(except, within).await)
            .map_err(|e| anyhow!("{e:#}\n{}", self.log_tails(15)))?;
        Ok(one)
    }

    /// Checks for `period` that `leader` alone is active, without a gap; fails at once
    /// otherwise.
    pub async fn assert_sole_active_for(&self, leader: usize, period: Duration) -> Result<()> {
        self.assert_active_for(&[leader], period).await
    }

    /// Checks for `period` that no node is active.
    pub async fn assert_none_active_for(&self, period: Duration) -> Result<()> {
        self.assert_active_for(&[], period).await
    }

    /// Checks for `period`, every 10 ms, that exactly `expected` are active.
    async fn assert_active_for(&self, expected: &[usize], period: Duration) -> Result<()> {
        let until = Instant::now() + period;
        while Instant::now() < until {
            let active = self.active();
            ensure!(
                active == expected,
                "expected {expected:?} active, found {active:?} at {:.2}s\n{}",
                self.now().as_secs_f64(),
                self.log_tails(15)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Every replica's mode history on the common clock, up to now.
    pub fn histories(&self) -> Vec<History> {
        self.set.judged_histories()
    }

    /// When node `i` last changed to `active`.
    pub fn last_change(&self, i: usize, active: bool) -> Option<Duration> {
        self.set.last_change(i, active)
    }

    /// The safety checks over the whole run so far: first no height and round signed by two
    /// replicas, then never two active.
    pub fn check_never_two_active(&self) -> Result<()> {
        self.set.check_safety()
    }

    /// Kills replica `i`'s elector with SIGKILL (its log stays readable).
    pub fn kill_elector(&mut self, i: usize) -> Result<()> {
        self.set.kill_elector(i).map(drop)
    }

    /// What a supervisor does when an elector dies: commands the node standby through its
    /// admin port ([`ReplicaSet::force_standby`]).
    pub async fn force_standby(&self, i: usize) -> Result<()> {
        self.set.force_standby(i).await
    }

    /// Replica `i`'s elector log.
    pub fn elector_log(&self, i: usize) -> String {
        self.set.replica(i).log()
    }

    /// The last `lines` lines of every elector's log.
    pub fn log_tails(&self, lines: usize) -> String {
        self.set.log_tails(lines)
    }
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
        let block_interval = humantime::format_duration(profile.timing.block_interval).to_string();
        let nodes = try_join_all(NAMES.iter().take(count).map(|name| {
            GenericImage::new(stand_in.name.clone(), stand_in.tag.clone())
                .with_wait_for(WaitFor::message_on_stderr(STAND_IN_READY))
                .with_container_name(unique_name(&format!("node-{name}")))
                .with_network(network.name())
                .with_labels(labels())
                .with_startup_timeout(Duration::from_secs(30))
                .with_cmd(["--block-interval", block_interval.as_str()])
                .start()
        }))
        .await
        .context("starting the stand-in node containers")?;
        let mut args: Vec<String> = vec![
            format!("--etcd={}", endpoints.join(",")),
            format!("--key={key}"),
            "--status-addr=off".to_owned(),
        ];
        args.extend(timing_flags(&profile.timing));
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

    /// `read` of every stand-in's log so far (index: replica); `what` it reads, for errors.
    async fn read_node_logs<T>(
        &self,
        what: &str,
        read: impl Fn(&[super::LogLine]) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut all = Vec::new();
        for replica in &self.replicas {
            let lines = logs_with_times(&self.docker, replica.node.id()).await?;
            all.push(read(&lines).with_context(|| format!("the {what} of node {}", replica.name))?);
        }
        Ok(all)
    }

    /// Every node's mode history on the common clock, from the stand-ins' logs.
    pub async fn histories(&self) -> Result<Vec<History>> {
        let read = |lines: &[super::LogLine]| stand_in_history(lines, self.origin_wall);
        self.read_node_logs("history", read).await
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
        let active_now = async || self.active().await;
        match wait_sole_active(except, within, LOG_POLL, active_now, async |_| true).await {
            Ok(one) => Ok(one),
            Err(e) => bail!("{e:#}\n{}", self.log_tails(15).await),
        }
    }

    /// When node `i` last changed to `active`, on the common clock.
    pub async fn last_change(&self, i: usize, active: bool) -> Result<Option<Duration>> {
        Ok(last_change(&self.histories().await?[i], active))
    }

    /// Every node's signatures, from the stand-ins' logs (index: replica).
    pub async fn signatures(&self) -> Result<Vec<Vec<Signature>>> {
        self.read_node_logs("signatures", stand_in_signatures).await
    }

    /// The safety checks over the whole run so far: first no height and round signed by two
    /// replicas (from the stand-ins' logs), then never two active.
    pub async fn check_never_two_active(&self) -> Result<()> {
        let names: Vec<&str> = self.replicas.iter().map(|r| r.name).collect();
        let (histories, end) = (self.histories().await?, self.now());
        check_no_double_sign(&self.signatures().await?, &histories, end, &names)?;
        check_never_two_active(&histories, end, &names)
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
/// `... started standby ...`, then `<seconds since the UNIX epoch>s mode active|standby` per
/// change), on a clock starting at `origin`. The start is the engine's time of the start line;
/// the changes carry the node's own times (the wall clock, shared with the host).
pub fn stand_in_history(lines: &[super::LogLine], origin: SystemTime) -> Result<History> {
    let start = lines
        .iter()
        .find(|line| line.text.contains(STAND_IN_READY))
        .ok_or_else(|| anyhow!("no start line in the stand-in's log"))?;
    let epoch = start.at.duration_since(origin).unwrap_or(Duration::ZERO);
    let origin = origin
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
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
        let at = Duration::from_secs_f64(seconds).saturating_sub(origin);
        history.push((at, active));
    }
    Ok(history)
}

/// A stand-in node's signatures from its log (`<seconds>s signed height H round R <kind>`),
/// on the model's clock (since the UNIX epoch).
pub fn stand_in_signatures(lines: &[super::LogLine]) -> Result<Vec<Signature>> {
    let mut signatures = Vec::new();
    for line in lines {
        let Some(rest) = line.text.strip_prefix("stand-in-node: ") else {
            continue;
        };
        let Some((seconds, signed)) = rest.split_once("s signed ") else {
            continue;
        };
        let bad = || anyhow!("bad signature line {:?}", line.text);
        let words: Vec<&str> = signed.split_whitespace().collect();
        let ["height", height, "round", round, kind] = words[..] else {
            return Err(bad());
        };
        let kind = [
            SignKind::Proposal,
            SignKind::ProposalEndorsement,
            SignKind::LockEndorsement,
            SignKind::CommitEndorsement,
        ]
        .into_iter()
        .find(|k| k.as_str() == kind)
        .ok_or_else(bad)?;
        let at = Duration::from_secs_f64(seconds.parse().map_err(|_| bad())?);
        signatures.push(Signature {
            at,
            height: height.parse().map_err(|_| bad())?,
            round: round.parse().map_err(|_| bad())?,
            slot: Duration::ZERO,
            kind,
            // The operator's: a stand-in signs with no other key.
            key: "operator".to_owned(),
        });
    }
    Ok(signatures)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers::LogLine;

    #[test]
    fn profiles_match_docs_safety() {
        let fast = ProfileBounds::fast();
        assert_eq!(fast.ttl(), Duration::from_secs(7));
        assert_eq!(fast.timing.activation_delay, Duration::from_millis(10_600));
        let default = ProfileBounds::default_timing();
        assert_eq!(default.ttl(), Duration::from_secs(10));
        assert_eq!(
            default.timing.activation_delay,
            Duration::from_millis(13_700)
        );
        // The sentence of docs/safety.md that states both delays.
        let safety = include_str!("../../../docs/safety.md").replace('\n', " ");
        assert!(
            safety.contains("13.7 s with the defaults, 10.6 s with the fast profile"),
            "docs/safety.md states other activation delays"
        );
        // 10 s + 7 s − (300 ms keep-alive + 300 ms etcd timeout); 10 s + 7 s × (1 − 0.01).
        assert_eq!(
            fast.earliest_expiry_after_cut(Duration::from_secs(10)),
            Duration::from_millis(16_400)
        );
        assert_eq!(
            fast.lease_deadline_after_cut(Duration::from_secs(10)),
            Duration::from_millis(16_930)
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
                 started standby, ready, block interval 2s 500ms",
            ),
            line(3300, "stand-in-node: 1003.010s mode active"),
            line(9000, "something else"),
            line(
                9100,
                "stand-in-node: 1009.050s signed height 7 round 0 proposal",
            ),
            line(9800, "stand-in-node: 1009.500s mode standby"),
        ];
        assert_eq!(
            stand_in_history(&lines, origin).unwrap(),
            vec![
                (Duration::from_millis(250), false),
                (Duration::from_millis(3010), true),
                (Duration::from_millis(9500), false),
            ]
        );
        let signatures = stand_in_signatures(&lines).unwrap();
        assert_eq!(signatures.len(), 1);
        assert_eq!(
            (
                signatures[0].height,
                signatures[0].round,
                signatures[0].kind
            ),
            (7, 0, SignKind::Proposal)
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

//! Replica sets of host processes for the demo and the benchmark: on one election key, each
//! replica a stand-in node (in this process) and a candidate beside it, an `elector` process
//! or the Go election's `etcdctl elect` ([`GoCandidate`]), all on one clock.
//!
//! A crashed host's node is replaced by a new one (a new *life*); every life's mode history
//! stays, so that [`ReplicaSet::overlap`] checks the whole run with the simulation's
//! dual-active check. Every process is killed when its replica set is dropped, on success,
//! error or panic.

use crate::etcd_process::EtcdProcess;
use crate::go_election::GoCandidate;
use crate::host::{elector_command, free_port};
use crate::standin::{StandIn, StandInOptions};
use crate::timing_profile::TimingProfile;
use anyhow::{Context, Result, bail};
use elector_model::history::{History, dual_active};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Poll period of the waits: short, for the measured times to be accurate.
const POLL: Duration = Duration::from_millis(10);

/// What every replica set of a run shares: the clock's origin, etcd, the elector binary and
/// the directory for the electors' logs.
#[derive(Clone, Copy)]
pub struct Host<'a> {
    pub origin: Instant,
    pub etcd: &'a EtcdProcess,
    pub elector: &'a Path,
    pub logs: &'a Path,
}

impl Host<'_> {
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

/// A child process, killed (SIGKILL) and reaped when dropped.
pub struct Guarded {
    child: Child,
}

impl Guarded {
    pub fn new(child: Child) -> Guarded {
        Guarded { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: libc::c_int) -> Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).context("pid out of range")?;
        // SAFETY: kill(2) reads two integers; `pid` is our child, not reaped yet (the `Child`
        // still holds it), so it cannot name another process.
        if unsafe { libc::kill(pid, sig) } != 0 {
            return Err(std::io::Error::last_os_error()).context("kill(2)");
        }
        Ok(())
    }

    /// kill -9 and reap; returns the instant just before the signal was sent.
    pub fn kill9(&mut self) -> Instant {
        let at = Instant::now();
        let _ = self.child.kill();
        let _ = self.child.wait();
        at
    }

    /// Waits (bounded, without blocking the runtime) for the exit.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One life of a stand-in node; a crashed host's node is replaced by a new one.
struct NodeLife {
    standin: Option<StandIn>,
    /// When it started, on the run's clock (just before `StandIn::start`).
    started: Instant,
    /// Its history once stopped (a stopped node is inactive).
    history: Option<History>,
}

impl NodeLife {
    /// Its history so far, on its own clock.
    fn history(&self) -> History {
        match (&self.history, &self.standin) {
            (Some(h), _) => h.clone(),
            (None, Some(n)) => n.state().history,
            (None, None) => Vec::new(),
        }
    }
}

/// How a replica takes part in the election.
enum Candidate {
    None,
    Elector(Guarded),
    Go(GoCandidate),
}

/// A stand-in node (its lives) and its candidate.
pub struct Replica {
    value: String,
    lives: Vec<NodeLife>,
    candidate: Candidate,
    status_port: Option<u16>,
    /// Elector processes started for this replica.
    starts: usize,
}

impl Replica {
    /// Its value in the election.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Its current node, unless it crashed.
    pub fn node(&self) -> Option<&StandIn> {
        self.lives.last().and_then(|l| l.standin.as_ref())
    }

    pub fn is_active(&self) -> bool {
        self.node().is_some_and(|n| n.state().active)
    }

    /// The process id of its elector, if one runs.
    pub fn elector_pid(&self) -> Option<u32> {
        match &self.candidate {
            Candidate::Elector(g) => Some(g.pid()),
            _ => None,
        }
    }

    /// The loopback port of its elector's status server, if it has one.
    pub fn status_port(&self) -> Option<u16> {
        self.status_port
    }
}

/// Replicas on one election key. See the module documentation.
pub struct ReplicaSet<'a> {
    host: Host<'a>,
    key: String,
    profile: TimingProfile,
    /// The stand-ins' consensus round: the profile's unless changed.
    round: Duration,
    flags: FlagStyle,
    replicas: Vec<Replica>,
    /// When set, every elector gets `--state-dir <state_root>/<value>`: what a restarted
    /// elector or `force-standby` needs to end a crashed process's term (rule `end_dead_term`).
    state_root: Option<PathBuf>,
    /// When set, the electors' `--etcd` (comma-separated endpoints) instead of the host's etcd.
    etcd_endpoints: Option<String>,
}

impl<'a> ReplicaSet<'a> {
    /// No replicas yet; electors will run `profile`'s timing, told the rest in `flags` style.
    pub fn new(host: Host<'a>, key: String, profile: TimingProfile, flags: FlagStyle) -> Self {
        ReplicaSet {
            host,
            key,
            profile,
            round: profile.round(),
            flags,
            replicas: Vec::new(),
            state_root: None,
            etcd_endpoints: None,
        }
    }

    /// Electors started from now on are given these etcd endpoints (comma separated), e.g.
    /// every member of a cluster, instead of the host's one etcd.
    pub fn set_etcd_endpoints(&mut self, endpoints: String) {
        self.etcd_endpoints = Some(endpoints);
    }

    /// Electors started from now on keep their state in `<root>/<value>` (`--state-dir`).
    pub fn set_state_root(&mut self, root: PathBuf) {
        self.state_root = Some(root);
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

    /// Nodes started from now on have consensus rounds of `round` (it must stay within the
    /// profile's drain bound for the elector's guarantee to hold).
    pub fn set_round(&mut self, round: Duration) {
        self.round = round;
    }

    pub fn host(&self) -> Host<'a> {
        self.host
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

    /// Adds a replica with a fresh standby, ready node (and no candidate yet), its elector
    /// with a status server on a free port if `status`; returns its index.
    pub async fn add_replica(&mut self, value: String, status: bool) -> Result<usize> {
        let status_port = if status { Some(free_port()?) } else { None };
        self.replicas.push(Replica {
            value,
            lives: Vec::new(),
            candidate: Candidate::None,
            status_port,
            starts: 0,
        });
        let i = self.replicas.len() - 1;
        self.start_node(i).await?;
        Ok(i)
    }

    /// Starts a new life of replica `i`'s node: standby, ready.
    pub async fn start_node(&mut self, i: usize) -> Result<()> {
        let options = StandInOptions {
            start_active: false,
            round: self.round,
            ready: true,
        };
        let any: SocketAddr = (Ipv4Addr::LOCALHOST, 0).into();
        let started = Instant::now();
        let standin = StandIn::start(any, any, options)
            .await
            .context("starting a stand-in node")?;
        self.replicas[i].lives.push(NodeLife {
            standin: Some(standin),
            started,
            history: None,
        });
        Ok(())
    }

    /// The arguments of replica `i`'s elector beside its current node.
    fn elector_args(&self, i: usize) -> Result<Vec<String>> {
        let replica = &self.replicas[i];
        let node = replica.node().context("the replica has no node")?;
        let etcd = self
            .etcd_endpoints
            .clone()
            .unwrap_or_else(|| self.host.etcd.endpoint());
        let admin = format!("http://{}", node.admin_addr());
        let probe = format!("http://{}", node.probe_addr());
        let mut args = match self.flags {
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
        args.push("--status-addr".to_owned());
        args.push(match replica.status_port {
            Some(port) => format!("127.0.0.1:{port}"),
            None => "off".to_owned(),
        });
        if let Some(dir) = self.state_dir(i)? {
            args.push("--state-dir".to_owned());
            args.push(dir.display().to_string());
        }
        args.extend(self.profile.flags());
        Ok(args)
    }

    /// Starts an elector beside replica `i`'s current node; its stderr goes to a log file
    /// named after the key, the value and the start.
    pub fn start_elector(&mut self, i: usize) -> Result<()> {
        let args = self.elector_args(i)?;
        let replica = &mut self.replicas[i];
        replica.starts += 1;
        let log_name = format!(
            "{}-{}-{}.log",
            self.key.trim_start_matches('/').replace('/', "_"),
            replica.value,
            replica.starts
        );
        let log = std::fs::File::create(self.host.logs.join(log_name)).context("creating a log")?;
        let child = elector_command(self.host.elector)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.host.elector.display()))?;
        replica.candidate = Candidate::Elector(Guarded::new(child));
        Ok(())
    }

    /// The Go election: `etcdctl elect <key> <value>` and a wrapper that activates the node
    /// once etcdctl says it leads.
    pub fn start_go_candidate(&mut self, i: usize) -> Result<()> {
        let replica = &mut self.replicas[i];
        let admin = replica
            .node()
            .context("the replica has no node")?
            .admin_addr();
        let etcdctl = self
            .host
            .etcd
            .spawn_etcdctl(&["elect", &self.key, &replica.value])?;
        replica.candidate = Candidate::Go(GoCandidate::start(etcdctl, admin));
        Ok(())
    }

    /// Sends `sig` to replica `i`'s elector.
    pub fn signal_elector(&self, i: usize, sig: libc::c_int) -> Result<()> {
        match &self.replicas[i].candidate {
            Candidate::Elector(guard) => guard.signal(sig),
            _ => bail!("replica {} has no elector", self.replicas[i].value),
        }
    }

    /// Waits, bounded, for replica `i`'s elector to exit; `None` if it did not (or there is
    /// none).
    pub async fn wait_elector_exit(&mut self, i: usize, within: Duration) -> Option<ExitStatus> {
        match &mut self.replicas[i].candidate {
            Candidate::Elector(guard) => guard.wait_exit(within).await,
            _ => None,
        }
    }

    /// A crashed host: kill -9 of the candidate process, and the node stops. Returns the
    /// instant of the kill.
    pub async fn crash(&mut self, i: usize) -> Result<Instant> {
        let replica = &mut self.replicas[i];
        let killed_at = match std::mem::replace(&mut replica.candidate, Candidate::None) {
            Candidate::Elector(mut guard) => guard.kill9(),
            Candidate::Go(go) => go.kill9().await?,
            Candidate::None => bail!("replica {} has no candidate to kill", replica.value),
        };
        let life = replica.lives.last_mut().context("no node")?;
        if let Some(node) = life.standin.take() {
            let state = node.state();
            let mut history = state.history;
            history.push((state.now, false));
            life.history = Some(history);
            node.shutdown().await;
        }
        Ok(killed_at)
    }

    /// A crashed elector on a live host: kill -9 of replica `i`'s elector only; its node
    /// lives on (active, if it was). Returns the instant of the kill.
    pub fn kill_elector(&mut self, i: usize) -> Result<Instant> {
        let replica = &mut self.replicas[i];
        match std::mem::replace(&mut replica.candidate, Candidate::None) {
            Candidate::Elector(mut guard) => Ok(guard.kill9()),
            _ => bail!("replica {} has no elector to kill", replica.value),
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
        let deadline = Instant::now() + within;
        loop {
            if let [one] = self.active()[..]
                && Some(one) != except
            {
                let life = self.replicas[one].lives.last().context("no node")?;
                let node = life.standin.as_ref().context("no node")?;
                let became = node
                    .state()
                    .history
                    .iter()
                    .rev()
                    .find(|(_, active)| *active)
                    .map(|(at, _)| life.started + *at)
                    .unwrap_or_else(Instant::now);
                return Ok((one, became));
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: no single active node within {within:?} (active: {:?})",
                    self.key,
                    self.active()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// When replica `i`'s current node last went from active to inactive, at or after `since`.
    pub fn went_standby(&self, i: usize, since: Instant) -> Option<Instant> {
        let life = self.replicas[i].lives.last()?;
        life.history()
            .iter()
            .filter(|(_, active)| !active)
            .map(|(at, _)| life.started + *at)
            .rfind(|at| *at >= since)
    }

    /// Every node life's history on the run's clock, up to now.
    pub fn histories(&self) -> Vec<History> {
        self.replicas
            .iter()
            .flat_map(|r| r.lives.iter())
            .map(|life| {
                let offset = self.host.on_clock(life.started);
                life.history()
                    .into_iter()
                    .map(|(t, a)| (t + offset, a))
                    .collect()
            })
            .collect()
    }

    /// Total time two nodes of this set were active at once over the whole run so far, and
    /// the number of node histories checked.
    pub fn overlap(&self) -> (Duration, usize) {
        let end = self.host.on_clock(Instant::now());
        let histories = self.histories();
        let overlaps = dual_active(&histories, end);
        let total = overlaps.iter().map(|o| o.until - o.from).sum();
        (total, histories.len())
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

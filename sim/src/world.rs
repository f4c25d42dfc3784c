//! The world of one run, and the faults it applies: the turmoil hosts, the fault schedule
//! applied between steps at its times, the supervisor (systemd) model, and the samples the
//! judgement needs.
//!
//! Hosts: `etcd` serves the [`EtcdModel`]; each replica `i` has `elector-i` (an
//! `ElectorHost`: the shell's real `Driver` with the real core, the real `Election` over
//! etcd-client and the real `NodeClient`), and `node-i`, serving the node model's `/ha` and
//! `/readiness`. The simulation is driven with `Sim::step`.
//!
//! Every fault kind's start (`World::begin`) and heal (`World::end`) side by side with the
//! supervisor actions they schedule, so that what a fault does and how it is undone read
//! together.
//!
//! Beside it: the model etcd ([`etcd_model`]), the simulated elector host ([`host`]) and the
//! connections over turmoil's network ([`transport`]).

pub mod etcd_model;
pub mod host;
pub mod transport;

use crate::checker::verdict::{Broken, BrokenKind, StatusSample, Victim};
use crate::seed::schedule::{
    Direction, FaultKind, LeaderFailure, PersistentKind, Scenario, Target, secs,
};
use crate::seed::trace::Recorder;
use crate::world::etcd_model::EtcdModel;
use crate::world::host::{
    ADMIN_TOKEN, ElectorHost, ElectorSlot, FenceCall, HostMode, KEY, lock, operator_key,
    placeholder_key,
};
use crate::world::transport::{ETCD_PORT, NodeCell, serve_node};
use elector::driver::Control;
use elector_core::LeaseId;
use elector_model::node::{AdminFault, NodeConfig};
use etcd_client::proto::{PbDeleteRequest, PbPutRequest};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

/// Latency between an elector and its node: the same host in production.
const NODE_LINK_LATENCY: Duration = Duration::from_millis(1);

#[derive(Copy, Clone, Debug)]
enum Host {
    Etcd,
    Elector(usize),
}

/// Something the world loop does at a given time.
#[derive(Clone, Debug)]
enum Action {
    /// The fault with this index starts.
    Begin(usize),
    /// The fault with this index heals.
    End(usize),
    /// systemd's `ExecStopPost`: `elector force-standby` on the elector's host.
    Supervisor { elector: usize },
    /// `restart_bound` after an elector died: its node must not be commanded active now.
    CheckRestartBound { elector: usize, died: Duration },
    /// systemd restarts the elector.
    Restart { elector: usize },
    /// A node process comes back.
    NodeStart { node: usize, active: bool },
    /// A node is (first, or again) ready.
    NodeReady { node: usize },
    /// The persistent fault begins.
    Persistent,
    /// The persistent fault's SIGTERM: the elector is stopped for good, never killed.
    PersistentSigterm { elector: usize },
    /// The leader cut off by an early revocation crashes or hangs.
    LeaderFails {
        leader: usize,
        failure: LeaderFailure,
    },
}

pub(crate) struct World<'a> {
    sim: turmoil::Sim<'a>,
    scenario: &'a Scenario,
    recorder: Recorder,
    pub(crate) nodes: Vec<Arc<NodeCell>>,
    slots: Vec<Arc<ElectorSlot>>,
    running: Vec<bool>,
    /// A SIGTERM was sent and the exit is expected.
    stopping: Vec<bool>,
    queue: BTreeMap<(Duration, u64), Action>,
    seq: u64,
    /// The current maximum latency of each elector's link to etcd.
    etcd_link_max: Vec<Duration>,
    broken: Vec<Broken>,
    fences: Arc<Mutex<Vec<FenceCall>>>,
    /// The model etcd, read by the world to tell whose lease expired when.
    etcd: EtcdModel,
    /// Electors stopped for good by the persistent fault's SIGTERM: never restarted.
    retired: Vec<bool>,
    /// The replica the persistent fault hit, once it began.
    victim: Option<Victim>,
    samples: Samples,
    next_sample: Duration,
    early_revocation: EarlyRevocation,
    /// Each elector's `ExecStopPost=`.
    stop_post: Vec<StopPost>,
    /// The electors' `--state-dir`s, one directory each, removed with the world.
    _state_dirs: tempfile::TempDir,
}

/// Where an elector's `ExecStopPost=` stands. systemd restarts the elector only once it has
/// finished.
#[derive(Clone, Copy, Debug, Default)]
struct StopPost {
    /// Scheduled or running.
    due: bool,
    /// A restart came while it was due: it follows its end.
    restart_waits: bool,
}

/// Where the early-revocation fault (`FaultKind::EarlyRevocation`) stands.
#[derive(Clone, Debug, Default, PartialEq)]
enum EarlyRevocation {
    #[default]
    Idle,
    /// Waiting for etcd to renew `leader`'s lease, whose expiry was `expiry` when the fault
    /// began: the revocation then comes as early after an acknowledged keep-alive as it can.
    Armed {
        leader: usize,
        lease: LeaseId,
        expiry: tokio::time::Instant,
        then: Option<LeaderFailure>,
    },
    /// etcd renewed it; the revocation comes at `fire_at`, once the answer reached the leader
    /// (the link's current maximum latency and two steps later): its last acknowledged
    /// keep-alive is then as close before the revocation as it gets, the worst case.
    Renewed {
        leader: usize,
        fire_at: Duration,
        then: Option<LeaderFailure>,
    },
    /// Every lease revoked; `leader` cut off from etcd until the fault heals. `failed`: its
    /// elector crashed or hung meanwhile (it restarts when the fault heals).
    Cut { leader: usize, failed: bool },
}

/// How often the world samples etcd's candidates and expired leases, and the status of the
/// persistent fault's elector.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// What the world sampled during the run.
#[derive(Clone, Debug, Default)]
pub(crate) struct Samples {
    /// Which replica a lease's candidate key belonged to.
    pub(crate) lease_owner: BTreeMap<i64, usize>,
    /// How many expired leases etcd had listed at the last sample.
    pub(crate) expired_seen: usize,
    /// `(replica, when)` for every candidate lease that etcd's sweep expired (not revoked by
    /// its elector), stamped at the sample that saw it.
    pub(crate) expirations: Vec<(usize, Duration)>,
    /// `(leader, when)` for every early revocation (`FaultKind::EarlyRevocation`): the leader
    /// cut off from etcd as etcd revoked every lease.
    pub(crate) early_revocations: Vec<(usize, Duration)>,
    pub(crate) victim_status: Vec<StatusSample>,
}

/// What the world loop hands back.
pub(crate) struct RunResult {
    pub(crate) simulated: Duration,
    pub(crate) error: Option<String>,
    pub(crate) broken: Vec<Broken>,
    pub(crate) fences: Vec<FenceCall>,
    pub(crate) victim: Option<Victim>,
    pub(crate) samples: Samples,
}

fn elector_host(i: usize) -> String {
    format!("elector-{i}")
}

fn targets(target: Target, replicas: usize) -> Vec<usize> {
    match target {
        Target::One(i) => vec![i],
        Target::All => (0..replicas).collect(),
    }
}

impl<'a> World<'a> {
    pub(crate) fn new(scenario: &'a Scenario, recorder: Recorder) -> Self {
        let timing = &scenario.profile.timing();
        let sim = turmoil::Builder::new()
            .rng_seed(scenario.seed)
            .epoch(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .tick_duration(scenario.tick)
            .simulation_duration(scenario.duration + Duration::from_secs(3600))
            .min_message_latency(scenario.latency_min)
            .max_message_latency(scenario.latency_max)
            // turmoil panics when a host's socket buffer overflows (64 segments by default);
            // a real kernel applies back-pressure instead. Five electors' messages held for a
            // few seconds and then delivered at once overflowed etcd's.
            .tcp_capacity(4096)
            .build();
        sim.set_message_latency_curve(scenario.latency_curve);
        let mut world = World {
            sim,
            scenario,
            recorder: recorder.clone(),
            nodes: Vec::new(),
            slots: Vec::new(),
            running: vec![true; scenario.replicas()],
            stopping: vec![false; scenario.replicas()],
            queue: BTreeMap::new(),
            seq: 0,
            etcd_link_max: vec![scenario.latency_max; scenario.replicas()],
            broken: Vec::new(),
            fences: Arc::new(Mutex::new(Vec::new())),
            etcd: EtcdModel::new(scenario.seed),
            retired: vec![false; scenario.replicas()],
            victim: None,
            samples: Samples::default(),
            next_sample: Duration::ZERO,
            early_revocation: EarlyRevocation::Idle,
            stop_post: vec![StopPost::default(); scenario.replicas()],
            _state_dirs: tempfile::Builder::new()
                .prefix("elector-sim-state-")
                .tempdir()
                .unwrap_or_else(|e| panic!("no temporary directory for --state-dir: {e}")),
        };

        let model = world.etcd.clone();
        world.sim.host("etcd", move || {
            let model = model.clone();
            async move {
                let listener = turmoil::net::TcpListener::bind(("0.0.0.0", ETCD_PORT)).await?;
                model.serve_turmoil(listener).await?;
                Ok(())
            }
        });
        // One chain for every node: the same slots, heights and rounds everywhere.
        let chain = scenario.chain.chain();
        for (i, setup) in scenario.nodes.iter().enumerate() {
            // Configured standby (`system.active: false`), holding the operator key (with key
            // custody its placeholder, and serving `/producer-keys`), not ready until its
            // first sync ends.
            let mut config = NodeConfig::standby(chain.clone(), operator_key().address());
            if scenario.custody {
                config.keys = vec![placeholder_key(i).address().to_owned()];
            }
            config.sync_lag = setup.sync_lag;
            config.ready = false;
            let cell = NodeCell::new(format!("node-{i}"), config, recorder.clone());
            if scenario.custody {
                cell.set_admin_token(ADMIN_TOKEN);
            }
            let served = cell.clone();
            world
                .sim
                .host(format!("node-{i}"), move || serve_node(served.clone()));
            world.nodes.push(cell);
        }
        for (i, setup) in scenario.electors.iter().enumerate() {
            let slot = Arc::new(ElectorSlot::default());
            let state_dir = world._state_dirs.path().join(elector_host(i));
            if let Err(e) = std::fs::create_dir(&state_dir) {
                panic!("cannot create {}: {e}", state_dir.display());
            }
            let host = Arc::new(ElectorHost {
                index: i,
                value: format!("replica-{i}"),
                rate: setup.rate,
                start_delay: setup.start_delay,
                timing: timing.clone(),
                mutation: scenario.mutation.to_core(),
                custody: scenario.custody,
                slot: slot.clone(),
                node: world.nodes[i].clone(),
                fence: scenario.fence.clone(),
                fences: world.fences.clone(),
                recorder: recorder.clone(),
                state_dir,
            });
            world.sim.host(elector_host(i), move || {
                let host = host.clone();
                async move {
                    host.run().await;
                    Ok(())
                }
            });
            world.slots.push(slot);
            // The node is on the elector's host in production: a fast, quiet link.
            world
                .sim
                .set_link_latency(elector_host(i), format!("node-{i}"), NODE_LINK_LATENCY);
        }

        for (node, setup) in scenario.nodes.iter().enumerate() {
            world.schedule(setup.ready_at, Action::NodeReady { node });
        }
        for (index, fault) in scenario.faults.iter().enumerate() {
            world.schedule(fault.at, Action::Begin(index));
            world.schedule(fault.heal, Action::End(index));
        }
        if let Some(p) = &scenario.persistent {
            world.schedule(p.at, Action::Persistent);
        }
        world
    }

    fn schedule(&mut self, at: Duration, action: Action) {
        self.seq += 1;
        self.queue.insert((at, self.seq), action);
    }

    fn note(&self, at: Duration, who: impl Into<String>, what: impl Into<String>) {
        self.recorder.record(at, who, what);
    }

    pub(crate) fn run(mut self) -> RunResult {
        let end = self.scenario.duration;
        let mut error = None;
        loop {
            let now = self.sim.elapsed();
            while let Some(entry) = self.queue.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let action = entry.remove();
                self.apply(now, action);
            }
            if now >= self.next_sample {
                self.next_sample = now + SAMPLE_EVERY;
                self.sample(now);
            }
            self.revoke_early_once_renewed(now);
            if now >= end {
                break;
            }
            match self.sim.step() {
                Ok(_) => {}
                Err(e) => {
                    error = Some(format!("at {}: {e}", secs(self.sim.elapsed())));
                    break;
                }
            }
            self.poll_exits();
        }
        let fences = lock(&self.fences).clone();
        RunResult {
            simulated: self.sim.elapsed(),
            error,
            broken: self.broken,
            fences,
            victim: self.victim,
            samples: self.samples,
        }
    }

    /// Notes whose candidate key each lease carries, which leases etcd's sweep expired, and
    /// how the persistent fault's elector reports itself.
    fn sample(&mut self, now: Duration) {
        let prefix = format!("{KEY}/");
        for c in self.etcd.candidates(prefix.as_bytes()) {
            if let Some(replica) = c
                .value
                .strip_prefix("replica-")
                .and_then(|i| i.parse::<usize>().ok())
            {
                self.samples.lease_owner.insert(c.id.lease, replica);
            }
        }
        let seen = self.samples.expired_seen;
        let expired: Vec<i64> = self.etcd.read(|s| s.expired_leases()[seen..].to_vec());
        self.samples.expired_seen += expired.len();
        for lease in expired {
            if let Some(&replica) = self.samples.lease_owner.get(&lease) {
                self.samples.expirations.push((replica, now));
            }
        }
        if let Some(victim) = &self.victim {
            let i = victim.node;
            let snapshot = lock(&self.slots[i].telemetry)
                .as_ref()
                .and_then(|status| status.snapshot());
            let running = self.running[i];
            let value = format!("replica-{i}");
            let (leading, stuck) = match snapshot.filter(|_| running) {
                Some(s) => (
                    s.leader.as_deref() == Some(value.as_str()),
                    s.stuck.is_some(),
                ),
                None => (false, false),
            };
            self.samples.victim_status.push(StatusSample {
                at: now,
                running,
                leading,
                stuck,
            });
        }
    }

    /// The persistent fault begins: it hits the node commanded active (its elector leads),
    /// else the drawn one.
    fn begin_persistent(&mut self, now: Duration) {
        let Some(p) = &self.scenario.persistent else {
            return;
        };
        let active = (0..self.nodes.len()).find(|&i| {
            let node = &self.nodes[i];
            !node.is_down() && node.read(|m| m.is_commanded_active())
        });
        let node = active.unwrap_or(p.fallback);
        // Its elector leads only if it runs (a crashed one's node stays active until
        // `ExecStopPost`).
        self.victim = Some(Victim {
            node,
            hit_leader: active.is_some() && self.running[node],
        });
        let name = format!("node-{node}");
        self.note(
            now,
            "fault",
            format!(
                "persistent: {} hits {name}{}",
                p.kind.name(),
                if active.is_some() {
                    " (the active node)"
                } else {
                    " (no node was active)"
                }
            ),
        );
        match p.kind.clone() {
            PersistentKind::NodeDeath => {
                self.nodes[node].kill_for_good(now);
                self.note(now, name, "process died for good");
            }
            PersistentKind::AdminBroken {
                fault,
                sigterm_after,
            } => {
                self.nodes[node].set_persistent_admin_fault(now, fault);
                self.note(now, name, format!("/ha {} for good", fault.as_str()));
                if let Some(after) = sigterm_after {
                    self.schedule(now + after, Action::PersistentSigterm { elector: node });
                }
            }
            PersistentKind::ActivationRefused { down, sync } => {
                self.nodes[node].set_refuse_activation(now, true);
                self.nodes[node].kill(now);
                self.note(now, name, "process died; it will refuse activation");
                self.schedule(
                    now + down,
                    Action::NodeStart {
                        node,
                        active: false,
                    },
                );
                self.schedule(now + down + sync, Action::NodeReady { node });
            }
        }
    }

    /// Notices electors that exited by themselves (SIGTERM handled, or a fatal error).
    fn poll_exits(&mut self) {
        for i in 0..self.slots.len() {
            let Some(code) = lock(&self.slots[i].exited).take() else {
                continue;
            };
            let now = self.sim.elapsed();
            self.running[i] = false;
            if std::mem::take(&mut self.stopping[i]) {
                self.note(now, elector_host(i), format!("exited with code {code}"));
            } else {
                // Nothing but SIGTERM makes it exit: systemd restarts it (`Restart=always`).
                self.note(
                    now,
                    elector_host(i),
                    format!("exited unexpectedly with code {code}; systemd restarts it in 1s"),
                );
                self.schedule(now + Duration::from_secs(1), Action::Restart { elector: i });
            }
            self.schedule_stop_post(now + Duration::from_millis(20), i);
        }
        for i in 0..self.slots.len() {
            let Some(outcome) = lock(&self.slots[i].stop_post_done).take() else {
                continue;
            };
            let now = self.sim.elapsed();
            let what = match outcome {
                Ok(lines) => format!("ExecStopPost done: {}", lines.join("; ")),
                Err(line) => format!("ExecStopPost FAILED: {line}"),
            };
            self.note(now, elector_host(i), what);
            *lock(&self.slots[i].mode) = HostMode::Elector;
            let stop_post = std::mem::take(&mut self.stop_post[i]);
            if stop_post.restart_waits {
                self.restart(now, i);
            }
        }
    }

    /// systemd runs `ExecStopPost=` at `at` (the elector exited or died; it is restarted only
    /// once that finished).
    fn schedule_stop_post(&mut self, at: Duration, elector: usize) {
        self.stop_post[elector].due = true;
        self.schedule(at, Action::Supervisor { elector });
    }

    /// `ExecStopPost=` starts: the host's software becomes `elector force-standby`.
    fn start_stop_post(&mut self, now: Duration, elector: usize) {
        if self.running[elector] {
            // Cannot happen: a restart waits for the `ExecStopPost=` due.
            self.note(
                now,
                elector_host(elector),
                "ExecStopPost skipped: the elector runs",
            );
            self.stop_post[elector] = StopPost::default();
            return;
        }
        *lock(&self.slots[elector].mode) = HostMode::StopPost;
        self.quietly(Host::Elector(elector), |sim| {
            sim.bounce(elector_host(elector))
        });
        self.note(
            now,
            elector_host(elector),
            "systemd ExecStopPost: elector force-standby",
        );
    }

    fn apply(&mut self, now: Duration, action: Action) {
        match action {
            Action::Begin(index) => self.begin(now, index),
            Action::End(index) => self.end(now, index),
            Action::Supervisor { elector } => {
                self.start_stop_post(now, elector);
            }
            Action::CheckRestartBound { elector, died } => {
                if !self.nodes[elector].commanded_standby_or_down() {
                    let detail = format!(
                        "elector-{elector} died at {}; node-{elector} still commanded active {} later",
                        secs(died),
                        secs(now.saturating_sub(died))
                    );
                    self.note(now, "sim", format!("assumption broken: {detail}"));
                    self.broken.push(Broken {
                        kind: BrokenKind::RestartBeyondBound,
                        detail,
                        replica: elector,
                        from: died,
                    });
                }
            }
            Action::Restart { elector } => self.restart(now, elector),
            Action::NodeStart { node, active } => {
                let started = self.nodes[node].start(now, active);
                self.note(
                    now,
                    format!("node-{node}"),
                    match (started, active) {
                        (false, _) => "stays dead (persistent fault)",
                        (true, true) => "process started ACTIVE (misconfigured system.active)",
                        (true, false) => "process started standby",
                    },
                );
            }
            Action::NodeReady { node } => {
                if !self.nodes[node].is_dead_for_good() {
                    self.nodes[node].set_ready(now, true);
                    self.note(now, format!("node-{node}"), "ready");
                }
            }
            Action::Persistent => self.begin_persistent(now),
            Action::LeaderFails { leader, failure } => {
                let cut = matches!(
                    self.early_revocation,
                    EarlyRevocation::Cut { leader: l, .. } if l == leader
                );
                if !cut {
                    self.note(
                        now,
                        elector_host(leader),
                        "the cut healed already: nothing fails",
                    );
                } else if !self.running[leader] {
                    self.note(now, elector_host(leader), "already down: nothing to fail");
                } else {
                    self.note(
                        now,
                        elector_host(leader),
                        if failure.hang {
                            "hangs (cut off, before its step-down deadline); its watchdog kills it"
                        } else {
                            "crashes (cut off, before its step-down deadline)"
                        },
                    );
                    self.crash_elector(now, leader, Some(failure.supervisor));
                    if let EarlyRevocation::Cut { failed, .. } = &mut self.early_revocation {
                        *failed = true;
                    }
                }
            }
            Action::PersistentSigterm { elector } => {
                let sent = self.running[elector]
                    && lock(&self.slots[elector].control)
                        .as_ref()
                        .is_some_and(|c| c.send(Control::Shutdown).is_ok());
                if sent {
                    self.stopping[elector] = true;
                    self.retired[elector] = true;
                }
                self.note(
                    now,
                    "fault",
                    if sent {
                        format!("persistent: SIGTERM to elector-{elector} (never killed)")
                    } else {
                        format!("persistent: SIGTERM to elector-{elector} not sent: it is down")
                    },
                );
            }
        }
    }

    /// Crashes or bounces a host with zero latency on its links, then restores them. Dropping
    /// a runtime drops its tasks in an order that depends on tokio's process-wide task ids, and
    /// each dropped connection sends a FIN or RST for which turmoil draws a latency from the
    /// world's random numbers: with a fixed latency the values drawn no longer depend on that
    /// order, so the run stays the same whatever ran before it in the process.
    fn quietly(&mut self, host: Host, f: impl FnOnce(&mut turmoil::Sim<'a>)) {
        let electors: Vec<usize> = match host {
            Host::Etcd => (0..self.scenario.replicas()).collect(),
            Host::Elector(i) => vec![i],
        };
        for &i in &electors {
            self.sim
                .set_link_latency(elector_host(i), "etcd", Duration::ZERO);
            if let Host::Elector(i) = host {
                self.sim
                    .set_link_latency(elector_host(i), format!("node-{i}"), Duration::ZERO);
            }
        }
        f(&mut self.sim);
        for &i in &electors {
            self.sim
                .set_link_max_message_latency(elector_host(i), "etcd", self.etcd_link_max[i]);
            if let Host::Elector(i) = host {
                self.sim
                    .set_link_latency(elector_host(i), format!("node-{i}"), NODE_LINK_LATENCY);
            }
        }
    }

    /// The elector dies at `now` (kill -9; a hang, as far as anything outside it can tell, once
    /// its watchdog killed it): its software stops, its connections close, what it sent its
    /// node still lands. systemd runs `ExecStopPost=` `supervisor` later (never, if `None`);
    /// `restart_bound` after the death its node must have been commanded standby.
    fn crash_elector(&mut self, now: Duration, elector: usize, supervisor: Option<Duration>) {
        if !self.running[elector] {
            return;
        }
        self.quietly(Host::Elector(elector), |sim| {
            sim.crash(elector_host(elector))
        });
        self.running[elector] = false;
        self.stopping[elector] = false;
        lock(&self.slots[elector].exited).take();
        if let Some(delay) = supervisor {
            self.schedule_stop_post(now + delay, elector);
        }
        let bound = self.scenario.profile.timing().restart_bound;
        self.schedule(
            now + bound,
            Action::CheckRestartBound { elector, died: now },
        );
    }

    fn restart(&mut self, now: Duration, elector: usize) {
        if self.running[elector] || self.retired[elector] {
            return;
        }
        if self.stop_post[elector].due {
            if !self.stop_post[elector].restart_waits {
                self.stop_post[elector].restart_waits = true;
                self.note(
                    now,
                    elector_host(elector),
                    "restart waits for ExecStopPost to finish",
                );
            }
            return;
        }
        // A host whose software exited still holds its tasks; the bounce drops them.
        self.quietly(Host::Elector(elector), |sim| {
            sim.bounce(elector_host(elector))
        });
        self.running[elector] = true;
        self.note(now, elector_host(elector), "restarted by systemd");
    }

    fn begin(&mut self, now: Duration, index: usize) {
        let scenario = self.scenario;
        let fault = &scenario.faults[index];
        let replicas = self.scenario.replicas();
        self.note(
            now,
            "fault",
            format!("{} (until {})", fault.kind, secs(fault.heal)),
        );
        match fault.kind.clone() {
            FaultKind::Partition { target, direction } => {
                for i in targets(target, replicas) {
                    let e = elector_host(i);
                    match direction {
                        Direction::Both => self.sim.partition(e, "etcd"),
                        Direction::ToEtcd => self.sim.partition_oneway(e, "etcd"),
                        Direction::FromEtcd => self.sim.partition_oneway("etcd", e),
                    }
                }
            }
            FaultKind::Hold { target } => {
                for i in targets(target, replicas) {
                    self.sim.hold(elector_host(i), "etcd");
                }
            }
            FaultKind::Latency { target, max } => {
                for i in targets(target, replicas) {
                    self.etcd_link_max[i] = max;
                    self.sim
                        .set_link_max_message_latency(elector_host(i), "etcd", max);
                }
            }
            FaultKind::EtcdCrash => self.quietly(Host::Etcd, |sim| sim.crash("etcd")),
            FaultKind::ElectorCrash {
                elector,
                supervisor,
            } => self.crash_elector(now, elector, supervisor),
            FaultKind::ElectorShutdown { elector } => {
                // An elector stopped for good by the persistent fault is left alone.
                let sent = !self.retired[elector]
                    && lock(&self.slots[elector].control)
                        .as_ref()
                        .is_some_and(|c| c.send(Control::Shutdown).is_ok());
                if self.running[elector] && sent {
                    self.stopping[elector] = true;
                }
            }
            FaultKind::HandoverRequest { elector, to } => {
                if self.running[elector] {
                    let to = to.map(|j| format!("replica-{j}"));
                    if let Some(control) = lock(&self.slots[elector].control).as_ref() {
                        let _ = control.send(Control::Handover { to });
                    }
                }
            }
            FaultKind::Exclusion { replica } => self.exclusion(replica, true),
            FaultKind::EarlyRevocation { leader_fails } => {
                self.arm_early_revocation(now, leader_fails)
            }
            FaultKind::NodeRestart { node, .. } if self.nodes[node].is_dead_for_good() => {
                self.note(now, format!("node-{node}"), "already dead for good");
            }
            FaultKind::NodeRestart {
                node,
                down,
                active_start,
            } => {
                self.nodes[node].kill(now);
                self.note(now, format!("node-{node}"), "process died");
                self.schedule(
                    now + down,
                    Action::NodeStart {
                        node,
                        active: active_start,
                    },
                );
                if active_start {
                    self.broken.push(Broken {
                        kind: BrokenKind::MisconfiguredActiveStart,
                        detail: format!("node-{node} restarts active at {}", secs(now + down)),
                        replica: node,
                        from: now + down,
                    });
                }
            }
            FaultKind::Unready { node } => self.nodes[node].set_ready(now, false),
            FaultKind::Admin { node, fault } => self.nodes[node].set_admin_fault(now, fault),
            FaultKind::SyncLag { node, lag } => self.nodes[node].set_sync_lag(now, lag),
            FaultKind::HandActivation { node } => {
                if self.scenario.custody
                    && self.nodes[node].read(|m| m.holds_configured_operator_key())
                {
                    self.broken.push(Broken {
                        kind: BrokenKind::HandActivatedWithOperatorKey,
                        detail: format!(
                            "node-{node}, started with the operator's key in its config, activated \
                             by hand at {}",
                            secs(now)
                        ),
                        replica: node,
                        from: now,
                    });
                }
                self.nodes[node].activate_by_hand(now);
            }
            FaultKind::BootsWithOperatorKey { node, .. } if self.nodes[node].is_dead_for_good() => {
                self.note(now, format!("node-{node}"), "already dead for good");
            }
            FaultKind::BootsWithOperatorKey { node, down } => {
                self.nodes[node].configure_keys(vec![operator_key().address().to_owned()]);
                self.nodes[node].kill(now);
                self.note(now, format!("node-{node}"), "process died");
                self.schedule(
                    now + down,
                    Action::NodeStart {
                        node,
                        active: false,
                    },
                );
            }
            FaultKind::KeysLate { node, delay } => self.nodes[node].set_keys_delay(delay),
        }
    }

    /// `FaultKind::EarlyRevocation` begins: the replica whose key is first now is the one to
    /// catch right after a renewal.
    fn arm_early_revocation(&mut self, now: Duration, then: Option<LeaderFailure>) {
        let prefix = format!("{KEY}/");
        let first = self.etcd.candidates(prefix.as_bytes()).into_iter().next();
        let leader = first.as_ref().and_then(|c| {
            let replica = c.value.strip_prefix("replica-")?.parse::<usize>().ok()?;
            let expiry = self.etcd.read(|s| s.lease_expiry(c.id.lease))?;
            Some((replica, c.id.lease, expiry))
        });
        match leader {
            Some((leader, lease, expiry)) => {
                self.early_revocation = EarlyRevocation::Armed {
                    leader,
                    lease,
                    expiry,
                    then,
                }
            }
            None => self.note(now, "etcd", "nobody leads: no lease to revoke early"),
        }
    }

    /// Called on every step; does nothing unless the early revocation is armed. Fires it once
    /// etcd renewed the leader's lease and the answer arrived: the leader is cut off and every lease revoked, keys deleted as etcd's
    /// `LeaseRevoke` does. Each revoked candidate lease counts as ended by etcd (not given
    /// away by its elector) for the judge.
    fn revoke_early_once_renewed(&mut self, now: Duration) {
        match self.early_revocation.clone() {
            EarlyRevocation::Armed {
                leader,
                lease,
                expiry,
                then,
            } => match self.etcd.read(|s| s.lease_expiry(lease)) {
                None => {
                    self.note(
                        now,
                        "etcd",
                        "the leader's lease went first: nothing revoked early",
                    );
                    self.early_revocation = EarlyRevocation::Idle;
                }
                Some(current) if current > expiry => {
                    let fire_at = now + self.etcd_link_max[leader] + self.scenario.tick * 2;
                    self.early_revocation = EarlyRevocation::Renewed {
                        leader,
                        fire_at,
                        then,
                    };
                }
                Some(_) => {}
            },
            EarlyRevocation::Renewed {
                leader,
                fire_at,
                then,
            } if now >= fire_at => {
                self.sim.partition(elector_host(leader), "etcd");
                let revoked: Vec<LeaseId> = self.etcd.write(|store| {
                    let ids: Vec<LeaseId> = store.leases().iter().map(|l| l.id).collect();
                    ids.into_iter()
                        .filter(|&id| store.lease_revoke(id).is_ok())
                        .collect()
                });
                for id in &revoked {
                    if let Some(&owner) = self.samples.lease_owner.get(id) {
                        self.samples.expirations.push((owner, now));
                    }
                }
                self.note(
                    now,
                    "etcd",
                    format!(
                        "revoked every lease ({}) just after renewing replica-{leader}'s; \
                         elector-{leader} cut off",
                        revoked.len()
                    ),
                );
                self.samples.early_revocations.push((leader, now));
                self.early_revocation = EarlyRevocation::Cut {
                    leader,
                    failed: false,
                };
                if let Some(failure) = then {
                    self.schedule(now + failure.after, Action::LeaderFails { leader, failure });
                }
            }
            _ => {}
        }
    }

    /// `elector exclude replica-N` (`excluded`) or `elector include replica-N`: the key the
    /// real command writes, written straight into etcd's store (watchers are woken as by a
    /// client's write).
    fn exclusion(&self, replica: usize, excluded: bool) {
        let key = format!("{KEY}.elector/excluded/replica-{replica}").into_bytes();
        let result = self.etcd.write(|store| {
            if excluded {
                let value =
                    br#"{"by":"sim@operator","at":"2026-01-01T00:00:00Z","reason":"maintenance"}"#;
                store
                    .put(&PbPutRequest {
                        key,
                        value: value.to_vec(),
                        ..PbPutRequest::default()
                    })
                    .map(|_| ())
            } else {
                store
                    .delete_range(&PbDeleteRequest {
                        key,
                        ..PbDeleteRequest::default()
                    })
                    .map(|_| ())
            }
        });
        if let Err(error) = result {
            panic!("the etcd model refused an exclusion write: {error:?}");
        }
    }

    fn end(&mut self, now: Duration, index: usize) {
        let scenario = self.scenario;
        let fault = &scenario.faults[index];
        let replicas = scenario.replicas();
        let recorder = self.recorder.clone();
        let say = |what: &str| {
            let what = if what.is_empty() {
                format!("healed: {}", fault.kind)
            } else {
                format!("healed: {} {what}", fault.kind)
            };
            recorder.record(now, "fault", what);
        };
        match fault.kind.clone() {
            FaultKind::Partition { target, direction } => {
                say("");
                for i in targets(target, replicas) {
                    let e = elector_host(i);
                    match direction {
                        Direction::Both => self.sim.repair(e, "etcd"),
                        Direction::ToEtcd => self.sim.repair_oneway(e, "etcd"),
                        Direction::FromEtcd => self.sim.repair_oneway("etcd", e),
                    }
                }
            }
            FaultKind::Hold { target } => {
                say("(held messages delivered)");
                for i in targets(target, replicas) {
                    self.sim.release(elector_host(i), "etcd");
                }
            }
            FaultKind::Latency { target, .. } => {
                say("");
                for i in targets(target, replicas) {
                    self.etcd_link_max[i] = self.scenario.latency_max;
                    self.sim.set_link_max_message_latency(
                        elector_host(i),
                        "etcd",
                        self.scenario.latency_max,
                    );
                }
            }
            FaultKind::EtcdCrash => {
                say("(restarted)");
                self.quietly(Host::Etcd, |sim| sim.bounce("etcd"));
            }
            FaultKind::ElectorCrash { elector, .. } => {
                say("");
                self.restart(now, elector);
            }
            FaultKind::ElectorShutdown { elector } => {
                say("");
                if self.running[elector] && !self.retired[elector] {
                    // Still running after the grace period: systemd kills it (a bug, which the
                    // trace shows), then restarts it.
                    self.note(
                        now,
                        elector_host(elector),
                        "did not exit after SIGTERM within the shutdown grace: killed",
                    );
                    self.crash_elector(now, elector, Some(Duration::from_millis(20)));
                }
                self.restart(now, elector);
            }
            FaultKind::HandoverRequest { .. } => {}
            FaultKind::Exclusion { replica } => self.exclusion(replica, false),
            FaultKind::EarlyRevocation { .. } => {
                if let EarlyRevocation::Cut { leader, failed } = self.early_revocation {
                    say(&format!("(elector-{leader} reconnected)"));
                    self.sim.repair(elector_host(leader), "etcd");
                    if failed {
                        // Its elector failed meanwhile: it restarts now (once its ExecStopPost
                        // ended).
                        self.restart(now, leader);
                    }
                } else {
                    say("(nothing was revoked)");
                }
                self.early_revocation = EarlyRevocation::Idle;
            }
            FaultKind::NodeRestart { node, .. } => {
                say("(ready)");
                self.nodes[node].set_ready(now, true);
            }
            FaultKind::Unready { node } => {
                say("");
                self.nodes[node].set_ready(now, true);
            }
            FaultKind::Admin { node, .. } => {
                say("");
                self.nodes[node].set_admin_fault(now, AdminFault::None);
            }
            FaultKind::SyncLag { node, .. } => {
                say("");
                let lag = self.scenario.nodes[node].sync_lag;
                self.nodes[node].set_sync_lag(now, lag);
            }
            FaultKind::HandActivation { .. } => {}
            FaultKind::BootsWithOperatorKey { node, .. } => {
                say("(ready; config fixed)");
                self.nodes[node].configure_keys(vec![placeholder_key(node).address().to_owned()]);
                self.nodes[node].set_ready(now, true);
            }
            FaultKind::KeysLate { node, .. } => {
                say("");
                self.nodes[node].set_keys_delay(Duration::ZERO);
            }
        }
    }
}

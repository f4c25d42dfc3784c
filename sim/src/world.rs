//! One run: the turmoil world, the fault schedule applied to it step by step, the supervisor
//! model, and the verdict.
//!
//! Hosts: `etcd` serves the [`EtcdModel`]; each replica `i` has `elector-i`, running the
//! shell's real [`Driver`] (real core, real `Election` over etcd-client, real `NodeClient`),
//! and `node-i`, serving the node model's `/ha` and `/readiness`. The simulation is driven
//! with `Sim::step`; faults are applied between steps at their scheduled times.

use crate::check::{Overlap, Settled, activations, leadership_changes, overlaps, settled};
use crate::etcd_model::EtcdModel;
use crate::node_model::{AdminFault, Transition};
use crate::schedule::{Direction, FaultKind, Scenario, Target, secs};
use crate::trace::{Entry, Recorder, TraceSubscriber, sim_now};
use crate::transport::{
    ADMIN_PORT, ETCD_PORT, NodeCell, PROBE_PORT, SimConnect, TurmoilHttp, serve_node,
};
use elector::clock::{Clock, TokioClock};
use elector::driver::{Control, Driver, Fence, FenceFuture};
use elector::node::NodeClient;
use elector::status::Status;
use elector_core::{Elector, Settings, Timing};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};
use tokio::sync::mpsc;

/// The election key, as in production.
pub const KEY: &str = "/iotex-server";

/// Latency between an elector and its node: the same host in production.
const NODE_LINK_LATENCY: Duration = Duration::from_millis(1);

#[derive(Copy, Clone, Debug)]
enum Host {
    Etcd,
    Elector(usize),
}

/// A documented assumption the run broke, on purpose.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BrokenKind {
    /// An elector's clock drifted beyond `max_clock_drift`.
    DriftBeyondBound,
    /// A dead elector's node was still commanded active `restart_bound` after the death.
    RestartBeyondBound,
    /// A node (re)started active (`system.active: true`).
    MisconfiguredActiveStart,
    /// A fence was needed and none was configured.
    NoFence,
}

impl BrokenKind {
    pub fn name(self) -> &'static str {
        match self {
            BrokenKind::DriftBeyondBound => "drift beyond bound",
            BrokenKind::RestartBeyondBound => "restart beyond bound",
            BrokenKind::MisconfiguredActiveStart => "misconfigured active start",
            BrokenKind::NoFence => "no fence",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    pub kind: BrokenKind,
    pub detail: String,
}

/// What became of a run.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every property held and every assumption was kept.
    Pass,
    /// The schedule broke a documented assumption: reported apart, never a pass.
    AssumptionBroken,
    /// A property failed under the documented assumptions.
    Violation,
    /// The simulation itself failed (a host errored, a task panicked).
    Error,
}

/// Everything a run produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub scenario: Scenario,
    /// Simulated time reached.
    pub simulated: Duration,
    pub error: Option<String>,
    pub broken: Vec<Broken>,
    /// Safety: spans with two or more nodes active.
    pub overlaps: Vec<Overlap>,
    /// Liveness: the run ends with exactly one node active, alone since then.
    pub settled: Option<Settled>,
    /// How many times a node became active.
    pub activations: usize,
    /// Stability: how many times leadership changed hands (the first activation included).
    pub leadership_changes: usize,
    /// How many faults the schedule applied.
    pub faults: usize,
    /// How many times an elector ran its fence.
    pub fences: usize,
    /// Fence discipline: fences run although the node's admin endpoint had no fault and the
    /// node no restart in the lease TTL before, as `(elector, when)`. With a healthy node,
    /// standby is confirmed before the lease deadline (the `margin_covers_standby_confirmation`
    /// inequality), so such a fence is a timing bug even when nothing overlapped.
    pub unexplained_fences: Vec<(usize, Duration)>,
    pub histories: Vec<Vec<Transition>>,
    pub trace: Vec<Entry>,
}

impl Outcome {
    pub fn safety_ok(&self) -> bool {
        self.overlaps.is_empty()
    }

    pub fn liveness_ok(&self) -> bool {
        self.settled
            .as_ref()
            .is_some_and(|s| s.since <= self.scenario.liveness_deadline)
    }

    pub fn stability_ok(&self) -> bool {
        self.leadership_changes <= self.faults + 1
    }

    pub fn fence_discipline_ok(&self) -> bool {
        self.unexplained_fences.is_empty()
    }

    pub fn verdict(&self) -> Verdict {
        if self.error.is_some() {
            Verdict::Error
        } else if !self.broken.is_empty() {
            Verdict::AssumptionBroken
        } else if !self.safety_ok()
            || !self.liveness_ok()
            || !self.stability_ok()
            || !self.fence_discipline_ok()
        {
            Verdict::Violation
        } else {
            Verdict::Pass
        }
    }

    /// How long after the last heal exactly one node was active for good (zero if it already
    /// was), when it was.
    pub fn recovery(&self) -> Option<Duration> {
        self.settled
            .as_ref()
            .map(|s| s.since.saturating_sub(self.scenario.last_heal))
    }

    /// One line per problem found.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(error) = &self.error {
            problems.push(format!("simulation error: {error}"));
        }
        for o in &self.overlaps {
            problems.push(format!(
                "SAFETY: node-{} and node-{} active at once from {} to {} ({})",
                o.nodes.0,
                o.nodes.1,
                secs(o.from),
                secs(o.until),
                secs(o.until.saturating_sub(o.from))
            ));
        }
        if !self.liveness_ok() {
            problems.push(match &self.settled {
                Some(s) => format!(
                    "LIVENESS: node-{} active alone only from {}, after the deadline {} (last heal {})",
                    s.node,
                    secs(s.since),
                    secs(self.scenario.liveness_deadline),
                    secs(self.scenario.last_heal)
                ),
                None => format!(
                    "LIVENESS: the run ends without exactly one active node (deadline {}, last heal {})",
                    secs(self.scenario.liveness_deadline),
                    secs(self.scenario.last_heal)
                ),
            });
        }
        for &(elector, at) in &self.unexplained_fences {
            problems.push(format!(
                "FENCE: elector-{elector} fenced its node at {} although the node was healthy (standby not confirmed before the lease deadline)",
                secs(at)
            ));
        }
        if !self.stability_ok() {
            problems.push(format!(
                "STABILITY: leadership changed hands {} times for {} faults (at most {} allowed)",
                self.leadership_changes,
                self.faults,
                self.faults + 1
            ));
        }
        problems
    }
}

/// What the electors' hosts share with the world loop.
#[derive(Default)]
struct ElectorSlot {
    control: Mutex<Option<mpsc::UnboundedSender<Control>>>,
    exited: Mutex<Option<i32>>,
    boots: AtomicU32,
}

/// One fence call.
#[derive(Clone, Debug)]
struct FenceCall {
    elector: usize,
    at: Duration,
    reason: String,
}

/// Everything one elector host needs to (re)start.
struct ElectorHost {
    index: usize,
    value: String,
    rate: f64,
    start_delay: Duration,
    timing: Timing,
    mutation: elector_core::Mutation,
    slot: Arc<ElectorSlot>,
    node: Arc<NodeCell>,
    fence_configured: bool,
    fence_delay: Duration,
    fences: Arc<Mutex<Vec<FenceCall>>>,
    recorder: Recorder,
}

impl ElectorHost {
    fn name(&self) -> String {
        format!("elector-{}", self.index)
    }

    async fn run(self: Arc<Self>) {
        if self.slot.boots.fetch_add(1, Ordering::SeqCst) == 0 && !self.start_delay.is_zero() {
            tokio::time::sleep(self.start_delay).await;
        }
        let clock = TokioClock::with_rate(self.rate);
        let mut settings = Settings::new(self.value.clone(), self.timing.clone());
        settings.mutation = self.mutation;
        let core = match Elector::new(settings, clock.now()) {
            Ok(core) => core,
            Err(error) => {
                self.recorder
                    .record(sim_now(), self.name(), format!("refused to start: {error}"));
                *lock(&self.slot.exited) = Some(2);
                return;
            }
        };
        self.recorder
            .record(sim_now(), self.name(), "process started");
        let node = NodeClient::new(
            TurmoilHttp,
            &format!("http://node-{}:{ADMIN_PORT}", self.index),
            &format!("http://node-{}:{PROBE_PORT}", self.index),
            self.timing.node_timeout,
        );
        let (control, control_rx) = mpsc::unbounded_channel();
        *lock(&self.slot.control) = Some(control);
        let driver = Driver {
            core,
            clock,
            node,
            etcd: SimConnect {
                uri: format!("http://etcd:{ETCD_PORT}"),
                request_timeout: self.timing.etcd_request_timeout,
            },
            key: KEY.to_owned(),
            value: self.value.clone(),
            etcd_request_timeout: self.timing.etcd_request_timeout,
            fence: self.fence(),
            status: Status::new(KEY, &self.value),
            state: None,
        };
        let code = driver.run(control_rx).await;
        *lock(&self.slot.exited) = Some(code);
    }

    /// The modeled `--fence-cmd`: after its delay it stops the node's signing at once. Without
    /// a configured fence it fails, as the real driver's `Fence::None` does.
    fn fence(self: &Arc<Self>) -> Fence {
        let host = self.clone();
        Fence::Custom(Arc::new(move |reason: String| -> FenceFuture {
            let host = host.clone();
            Box::pin(async move {
                let at = sim_now();
                lock(&host.fences).push(FenceCall {
                    elector: host.index,
                    at,
                    reason: reason.clone(),
                });
                if !host.fence_configured {
                    host.recorder.record(
                        at,
                        host.name(),
                        format!("fence needed but no --fence-cmd configured: {reason}"),
                    );
                    return Err("no --fence-cmd configured".to_owned());
                }
                tokio::time::sleep(host.fence_delay).await;
                let now = sim_now();
                host.node.fence(now);
                host.recorder.record(
                    now,
                    host.name(),
                    format!("fence: {} forced standby ({reason})", host.node.name()),
                );
                Ok(format!("{} forced standby", host.node.name()))
            })
        }))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Something the world loop does at a given time.
#[derive(Clone, Debug)]
enum Action {
    /// The fault with this index starts.
    Begin(usize),
    /// The fault with this index heals.
    End(usize),
    /// systemd's `ExecStopPost`: command the node standby.
    Supervisor { elector: usize },
    /// `restart_bound` after an elector died: its node must not be commanded active now.
    CheckRestartBound { elector: usize, died: Duration },
    /// systemd restarts the elector.
    Restart { elector: usize },
    /// A node process comes back.
    NodeStart { node: usize, active: bool },
    /// A node is first ready.
    NodeReady { node: usize },
}

struct World<'a> {
    sim: turmoil::Sim<'a>,
    scenario: &'a Scenario,
    recorder: Recorder,
    nodes: Vec<Arc<NodeCell>>,
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
    fn new(scenario: &'a Scenario, recorder: Recorder) -> Self {
        let timing = &scenario.profile.timing;
        let sim = turmoil::Builder::new()
            .rng_seed(scenario.seed)
            .epoch(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .tick_duration(scenario.tick)
            .simulation_duration(scenario.duration + Duration::from_secs(3600))
            .min_message_latency(scenario.latency_min)
            .max_message_latency(scenario.latency_max)
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
        };

        let model = EtcdModel::new(scenario.seed);
        world.sim.host("etcd", move || {
            let model = model.clone();
            async move {
                let listener = turmoil::net::TcpListener::bind(("0.0.0.0", ETCD_PORT)).await?;
                model.serve_turmoil(listener).await?;
                Ok(())
            }
        });
        for i in 0..scenario.replicas() {
            // The node drains within `drain_bound`: its rounds are that long.
            let cell = NodeCell::new(format!("node-{i}"), timing.drain_bound, recorder.clone());
            let served = cell.clone();
            world
                .sim
                .host(format!("node-{i}"), move || serve_node(served.clone()));
            world.nodes.push(cell);
        }
        for (i, setup) in scenario.electors.iter().enumerate() {
            let slot = Arc::new(ElectorSlot::default());
            let host = Arc::new(ElectorHost {
                index: i,
                value: format!("replica-{i}"),
                rate: setup.rate,
                start_delay: setup.start_delay,
                timing: timing.clone(),
                mutation: scenario.mutation.to_core(),
                slot: slot.clone(),
                node: world.nodes[i].clone(),
                fence_configured: scenario.fence.configured,
                fence_delay: scenario.fence.delay,
                fences: world.fences.clone(),
                recorder: recorder.clone(),
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
        world
    }

    fn schedule(&mut self, at: Duration, action: Action) {
        self.seq += 1;
        self.queue.insert((at, self.seq), action);
    }

    fn note(&self, at: Duration, who: impl Into<String>, what: impl Into<String>) {
        self.recorder.record(at, who, what);
    }

    fn run(mut self) -> (Duration, Option<String>, Vec<Broken>, Vec<FenceCall>) {
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
        (self.sim.elapsed(), error, self.broken, fences)
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
            self.schedule(
                now + Duration::from_millis(20),
                Action::Supervisor { elector: i },
            );
        }
    }

    fn apply(&mut self, now: Duration, action: Action) {
        match action {
            Action::Begin(index) => self.begin(now, index),
            Action::End(index) => self.end(now, index),
            Action::Supervisor { elector } => {
                let ok = self.nodes[elector].supervisor_standby(now);
                self.note(
                    now,
                    format!("node-{elector}"),
                    if ok {
                        "<- activate=false from systemd ExecStopPost".to_owned()
                    } else {
                        "<- activate=false from systemd ExecStopPost: failed (admin fault)"
                            .to_owned()
                    },
                );
            }
            Action::CheckRestartBound { elector, died } => {
                let node = &self.nodes[elector];
                if !node.is_down() && node.read(|m| m.is_commanded_active()) {
                    let detail = format!(
                        "elector-{elector} died at {}; node-{elector} still commanded active {} later",
                        secs(died),
                        secs(now.saturating_sub(died))
                    );
                    self.note(now, "sim", format!("assumption broken: {detail}"));
                    self.broken.push(Broken {
                        kind: BrokenKind::RestartBeyondBound,
                        detail,
                    });
                }
            }
            Action::Restart { elector } => self.restart(now, elector),
            Action::NodeStart { node, active } => {
                self.nodes[node].start(now, active);
                self.note(
                    now,
                    format!("node-{node}"),
                    if active {
                        "process started ACTIVE (misconfigured system.active)"
                    } else {
                        "process started standby"
                    },
                );
            }
            Action::NodeReady { node } => {
                self.nodes[node].set_ready(true);
                self.note(now, format!("node-{node}"), "ready");
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

    fn restart(&mut self, now: Duration, elector: usize) {
        if self.running[elector] {
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
            } => {
                if self.running[elector] {
                    self.quietly(Host::Elector(elector), |sim| {
                        sim.crash(elector_host(elector))
                    });
                    self.running[elector] = false;
                    self.stopping[elector] = false;
                    lock(&self.slots[elector].exited).take();
                    if let Some(delay) = supervisor {
                        self.schedule(now + delay, Action::Supervisor { elector });
                    }
                    let bound = self.scenario.profile.timing.restart_bound;
                    self.schedule(
                        now + bound,
                        Action::CheckRestartBound { elector, died: now },
                    );
                }
            }
            FaultKind::ElectorShutdown { elector } => {
                let sent = lock(&self.slots[elector].control)
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
                    });
                }
            }
            FaultKind::Unready { node } => self.nodes[node].set_ready(false),
            FaultKind::Admin { node, fault } => self.nodes[node].set_admin_fault(fault),
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
                if self.running[elector] {
                    // Still running after the grace period: systemd kills it (a bug, which the
                    // trace shows), then restarts it.
                    self.note(
                        now,
                        elector_host(elector),
                        "did not exit after SIGTERM within the shutdown grace: killed",
                    );
                    self.quietly(Host::Elector(elector), |sim| {
                        sim.crash(elector_host(elector))
                    });
                    self.running[elector] = false;
                    self.stopping[elector] = false;
                    lock(&self.slots[elector].exited).take();
                    let bound = self.scenario.profile.timing.restart_bound;
                    self.schedule(
                        now + Duration::from_millis(20),
                        Action::Supervisor { elector },
                    );
                    self.schedule(
                        now + bound,
                        Action::CheckRestartBound { elector, died: now },
                    );
                }
                self.restart(now, elector);
            }
            FaultKind::HandoverRequest { .. } => {}
            FaultKind::NodeRestart { node, .. } => {
                say("(ready)");
                self.nodes[node].set_ready(true);
            }
            FaultKind::Unready { node } => {
                say("");
                self.nodes[node].set_ready(true);
            }
            FaultKind::Admin { node, .. } => {
                say("");
                self.nodes[node].set_admin_fault(AdminFault::None);
            }
        }
    }
}

thread_local! {
    static PANICS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts panics per thread (tokio swallows panics of spawned tasks; a run must not).
fn install_panic_counter() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            previous(info);
        }));
    });
}

/// Whether the node of the fencing elector had an admin fault or a restart in the lease TTL
/// before the fence: then standby could not be confirmed, and the fence is what it is for.
fn fence_explained(scenario: &Scenario, call: &FenceCall) -> bool {
    let from = call.at.saturating_sub(scenario.profile.timing.lease_ttl);
    scenario.faults.iter().any(|f| {
        let node = match f.kind {
            FaultKind::Admin { node, .. } | FaultKind::NodeRestart { node, .. } => node,
            _ => return false,
        };
        node == call.elector && f.at <= call.at && f.heal >= from
    })
}

/// Runs one scenario and judges it.
pub fn simulate(scenario: &Scenario) -> Outcome {
    install_panic_counter();
    let recorder = Recorder::default();
    let dispatch = tracing::Dispatch::new(TraceSubscriber::new(recorder.clone()));
    let panics_before = PANICS.with(|p| p.get());
    let world_recorder = recorder.clone();
    let (simulated, mut error, mut broken, fences, histories) =
        tracing::dispatcher::with_default(&dispatch, || {
            let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let world = World::new(scenario, world_recorder);
                let nodes = world.nodes.clone();
                let (simulated, error, broken, fences) = world.run();
                let histories: Vec<Vec<Transition>> =
                    nodes.iter().map(|n| n.history(simulated)).collect();
                (simulated, error, broken, fences, histories)
            }));
            match run {
                Ok(result) => result,
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_else(|| "panic".to_owned());
                    (
                        Duration::ZERO,
                        Some(format!("panicked: {message}")),
                        Vec::new(),
                        Vec::new(),
                        vec![vec![(Duration::ZERO, false)]; scenario.replicas()],
                    )
                }
            }
        });
    let panics = PANICS.with(|p| p.get()) - panics_before;
    if panics > 0 && error.is_none() {
        error = Some(format!("{panics} task(s) panicked"));
    }

    for i in scenario.drift_beyond_bound() {
        broken.push(Broken {
            kind: BrokenKind::DriftBeyondBound,
            detail: format!(
                "elector-{i} clock rate {:.4} (bound ±{})",
                scenario.electors[i].rate, scenario.profile.timing.max_clock_drift
            ),
        });
    }
    if !scenario.fence.configured {
        for call in &fences {
            broken.push(Broken {
                kind: BrokenKind::NoFence,
                detail: format!(
                    "elector-{} needed a fence at {}: {}",
                    call.elector,
                    secs(call.at),
                    call.reason
                ),
            });
        }
    }
    broken.sort_by(|a, b| (a.kind, &a.detail).cmp(&(b.kind, &b.detail)));
    let unexplained_fences = fences
        .iter()
        .filter(|call| !fence_explained(scenario, call))
        .map(|call| (call.elector, call.at))
        .collect();

    let mut trace = recorder.entries();
    for (node, history) in histories.iter().enumerate() {
        for &(at, active) in history.iter().skip(1) {
            trace.push(Entry {
                at,
                seq: u64::MAX,
                who: format!("node-{node}"),
                what: format!("mode {}", if active { "ACTIVE" } else { "standby" }),
            });
        }
    }
    trace.sort_by_key(|e| (e.at, e.seq));

    Outcome {
        scenario: scenario.clone(),
        simulated,
        error,
        broken,
        overlaps: overlaps(&histories, simulated),
        settled: settled(&histories),
        activations: activations(&histories).len(),
        leadership_changes: leadership_changes(&histories),
        faults: scenario.faults.len(),
        fences: fences.len(),
        unexplained_fences,
        histories,
        trace,
    }
}

impl Outcome {
    /// The run for people: setup, schedule, timeline and verdict. `warnings` adds the
    /// electors' failure warnings (throttled by the driver) to the timeline.
    pub fn render(&self, warnings: bool) -> String {
        use std::fmt::Write as _;
        let s = &self.scenario;
        let t = &s.profile.timing;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "seed {}: {} profile (ttl {}, activation delay {}, drain bound {}, restart bound {}), {} replicas, tick {}ms, etcd link latency <= {}ms (curve {}), mutation {}",
            s.seed,
            s.profile.name,
            secs(t.lease_ttl),
            secs(t.activation_delay),
            secs(t.drain_bound),
            secs(t.restart_bound),
            s.replicas(),
            s.tick.as_millis(),
            s.latency_max.as_millis(),
            s.latency_curve,
            s.mutation.name()
        );
        for (i, e) in s.electors.iter().enumerate() {
            let _ = writeln!(
                out,
                "  elector-{i}: clock rate {:.4}, starts at {}; node-{i} ready at {}",
                e.rate,
                secs(e.start_delay),
                secs(s.nodes[i].ready_at)
            );
        }
        let _ = writeln!(
            out,
            "  fence: {}",
            if s.fence.configured {
                format!("configured, takes {}", secs(s.fence.delay))
            } else {
                "NOT configured".to_owned()
            }
        );
        let _ = writeln!(out, "schedule ({} faults):", s.faults.len());
        for f in &s.faults {
            let _ = writeln!(out, "  {} .. {}  {}", secs(f.at), secs(f.heal), f.kind);
        }
        let _ = writeln!(
            out,
            "  last heal {}, liveness deadline {}, end {}",
            secs(s.last_heal),
            secs(s.liveness_deadline),
            secs(s.duration)
        );
        let _ = writeln!(out, "timeline:");
        for entry in &self.trace {
            if !warnings && entry.what.starts_with("warn: ") {
                continue;
            }
            let _ = writeln!(out, "{entry}");
        }
        let _ = writeln!(out, "verdict: {:?}", self.verdict());
        for b in &self.broken {
            let _ = writeln!(out, "  assumption broken ({}): {}", b.kind.name(), b.detail);
        }
        for p in self.problems() {
            let _ = writeln!(out, "  {p}");
        }
        let _ = writeln!(
            out,
            "  safety: {}; liveness: {}; stability: {} leadership changes ({} activations) for {} faults; {} fences ({} with a healthy node)",
            if self.safety_ok() {
                "never two active nodes"
            } else {
                "VIOLATED"
            },
            match (&self.settled, self.liveness_ok()) {
                (Some(st), true) => format!(
                    "node-{} active alone from {} ({} after the last heal)",
                    st.node,
                    secs(st.since),
                    secs(st.since.saturating_sub(s.last_heal))
                ),
                _ => "VIOLATED".to_owned(),
            },
            self.leadership_changes,
            self.activations,
            self.faults,
            self.fences,
            self.unexplained_fences.len()
        );
        out
    }
}

//! One run: the turmoil world, the fault schedule applied to it step by step, the supervisor
//! model, and the verdict.
//!
//! Hosts: `etcd` serves the [`EtcdModel`]; each replica `i` has `elector-i`, running the
//! shell's real [`Driver`] (real core, real `Election` over etcd-client, real `NodeClient`),
//! and `node-i`, serving the node model's `/ha` and `/readiness`. The simulation is driven
//! with `Sim::step`; faults are applied between steps at their scheduled times.

use crate::check::{Overlap, Settled, activations, leadership_changes, overlaps, settled};
use crate::etcd_model::{ELECTION_TIMEOUT, EtcdModel, SWEEP_INTERVAL};
use crate::node_model::{AdminFault, Transition};
use crate::schedule::{
    Direction, FENCE_TIMEOUT, FaultKind, FenceOutcome, FenceSetup, PersistentKind, Scenario,
    Target, secs,
};
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
    /// An elector cut off from etcd lost its lease while its node could not be demoted, and the
    /// fence (absent, failing, timing out or late) did not stop the node before a successor
    /// could activate.
    UnstoppedAtLeaseExpiry,
}

impl BrokenKind {
    pub fn name(self) -> &'static str {
        match self {
            BrokenKind::DriftBeyondBound => "drift beyond bound",
            BrokenKind::RestartBeyondBound => "restart beyond bound",
            BrokenKind::MisconfiguredActiveStart => "misconfigured active start",
            BrokenKind::UnstoppedAtLeaseExpiry => "fence did not stop node at lease expiry",
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
    /// The check during the persistent fault, if the run had one.
    pub persistent: Option<PersistentReport>,
    /// The persistent fault's replica could not give the lead away, and led and reported
    /// itself stuck from the liveness deadline to the end: liveness is then not expected.
    pub stuck_to_the_end: bool,
    /// A sample after the liveness deadline at which that replica led, unable to give the lead
    /// away, without reporting itself stuck.
    pub unreported_stuck: Option<Duration>,
    /// How many `STUCK:` lines the electors logged.
    pub stuck_reports: usize,
    pub histories: Vec<Vec<Transition>>,
    pub trace: Vec<Entry>,
}

impl Outcome {
    pub fn safety_ok(&self) -> bool {
        self.overlaps.is_empty()
    }

    /// Exactly one node active, alone, from the deadline to the end; or, when the persistent
    /// fault's replica cannot give the lead away, that replica leading and reporting itself
    /// stuck over the same span.
    pub fn liveness_ok(&self) -> bool {
        self.stuck_to_the_end
            || self
                .settled
                .as_ref()
                .is_some_and(|s| s.since <= self.scenario.liveness_deadline)
    }

    /// The persistent fault's check held, and a replica unable to give the lead away said so.
    pub fn persistent_ok(&self) -> bool {
        self.persistent.as_ref().is_none_or(|p| p.problem.is_none())
            && self.unreported_stuck.is_none()
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
            || !self.persistent_ok()
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
        if let Some(problem) = self.persistent.as_ref().and_then(|p| p.problem.clone()) {
            problems.push(problem);
        }
        if let Some(at) = self.unreported_stuck {
            problems.push(format!(
                "STUCK: at {} the persistent fault's elector led, unable to prove its node standby (fence {}), without reporting itself stuck",
                secs(at),
                self.scenario.fence.outcome.name()
            ));
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
    /// The running process's `/status` (what an operator or a monitor sees).
    status: Mutex<Option<Arc<Status>>>,
}

/// One fence call.
#[derive(Clone, Debug)]
struct FenceCall {
    elector: usize,
    at: Duration,
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
    fence: FenceSetup,
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
                ping: elector::etcd::pings_for(&self.timing),
            },
            key: KEY.to_owned(),
            value: self.value.clone(),
            etcd_request_timeout: self.timing.etcd_request_timeout,
            fence: self.fence(),
            status: Status::new(KEY, &self.value),
            state: None,
        };
        *lock(&self.slot.status) = Some(driver.status.clone());
        let code = driver.run(control_rx).await;
        *lock(&self.slot.exited) = Some(code);
    }

    /// The modeled `--fence-cmd`, as the scenario draws it ([`FenceOutcome`]). A run that
    /// reports success has stopped the node's signing before it reports; a run that fails or
    /// times out leaves the node as it is. Without a configured fence every run fails at once,
    /// as the real driver's `Fence::None` does.
    fn fence(self: &Arc<Self>) -> Fence {
        let host = self.clone();
        Fence::Custom(Arc::new(move |reason: String| -> FenceFuture {
            let host = host.clone();
            Box::pin(async move {
                let at = sim_now();
                lock(&host.fences).push(FenceCall {
                    elector: host.index,
                    at,
                });
                let node = host.node.name().to_owned();
                let outcome = host.fence.outcome;
                if outcome == FenceOutcome::Absent {
                    host.recorder.record(
                        at,
                        host.name(),
                        format!("fence needed but no --fence-cmd configured: {reason}"),
                    );
                    return Err("no --fence-cmd configured".to_owned());
                }
                tokio::time::sleep(host.fence.delay).await;
                let now = sim_now();
                if outcome.can_succeed() {
                    host.node.fence(now);
                    host.recorder.record(
                        now,
                        host.name(),
                        format!("fence: {node} stopped, success reported ({reason})"),
                    );
                    Ok(format!("{node} forced standby"))
                } else {
                    let what = match outcome {
                        FenceOutcome::TimesOut => format!(
                            "did not finish within {}s and was killed",
                            FENCE_TIMEOUT.as_secs()
                        ),
                        _ => "exited with status 1".to_owned(),
                    };
                    host.recorder.record(
                        now,
                        host.name(),
                        format!("fence FAILED: {what}, {node} untouched ({reason})"),
                    );
                    Err(format!("fence command {what}"))
                }
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
    /// A node is (first, or again) ready.
    NodeReady { node: usize },
    /// The persistent fault begins.
    Persistent,
    /// The persistent fault's SIGTERM: the elector is stopped for good, never killed.
    PersistentSigterm { elector: usize },
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
    /// The model etcd, read by the world to tell whose lease expired when.
    etcd: EtcdModel,
    /// Electors stopped for good by the persistent fault's SIGTERM: never restarted.
    retired: Vec<bool>,
    /// The replica the persistent fault hit, once it began.
    victim: Option<Victim>,
    samples: Samples,
    next_sample: Duration,
}

/// How often the world samples etcd's candidates and expired leases, and the status of the
/// persistent fault's elector.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// The replica a persistent fault hit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Victim {
    pub node: usize,
    /// Its node was commanded active when the fault began and its elector ran: it led.
    pub hit_leader: bool,
}

/// One sample of the persistent fault's elector, as its `/status` showed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusSample {
    pub at: Duration,
    pub running: bool,
    /// It saw itself leading (its key first).
    pub leading: bool,
    /// `/status`'s `stuck` was set.
    pub stuck: bool,
}

/// What the world sampled during the run.
#[derive(Clone, Debug, Default)]
struct Samples {
    /// Which replica a lease's candidate key belonged to.
    lease_owner: BTreeMap<i64, usize>,
    /// How many expired leases etcd had listed at the last sample.
    expired_seen: usize,
    /// `(replica, when)` for every candidate lease that etcd's sweep expired (not revoked by
    /// its elector), stamped at the sample that saw it.
    expirations: Vec<(usize, Duration)>,
    victim_status: Vec<StatusSample>,
}

/// What the world loop hands back.
struct RunResult {
    simulated: Duration,
    error: Option<String>,
    broken: Vec<Broken>,
    fences: Vec<FenceCall>,
    victim: Option<Victim>,
    samples: Samples,
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
            etcd: EtcdModel::new(scenario.seed),
            retired: vec![false; scenario.replicas()],
            victim: None,
            samples: Samples::default(),
            next_sample: Duration::ZERO,
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
                fence: scenario.fence.clone(),
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

    fn run(mut self) -> RunResult {
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
            let snapshot = lock(&self.slots[i].status)
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
                self.nodes[node].set_persistent_admin_fault(fault);
                self.note(now, name, format!("/ha {} for good", fault.as_str()));
                if let Some(after) = sigterm_after {
                    self.schedule(now + after, Action::PersistentSigterm { elector: node });
                }
            }
            PersistentKind::ActivationRefused { down, sync } => {
                self.nodes[node].set_refuse_activation(true);
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
                    self.nodes[node].set_ready(true);
                    self.note(now, format!("node-{node}"), "ready");
                }
            }
            Action::Persistent => self.begin_persistent(now),
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

    fn restart(&mut self, now: Duration, elector: usize) {
        if self.running[elector] || self.retired[elector] {
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
                if self.running[elector] && !self.retired[elector] {
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

/// Whether `node`'s admin endpoint failed (an admin fault, a restart, the persistent fault) at
/// some time in `[from, to]`: then standby could not be confirmed by a read.
fn node_troubled(
    scenario: &Scenario,
    victim: Option<&Victim>,
    node: usize,
    from: Duration,
    to: Duration,
) -> bool {
    let transient = scenario.faults.iter().any(|f| {
        let hit = match f.kind {
            FaultKind::Admin { node, .. } | FaultKind::NodeRestart { node, .. } => node,
            _ => return false,
        };
        hit == node && f.at <= to && f.heal >= from
    });
    let persistent = scenario
        .persistent
        .as_ref()
        .zip(victim)
        .is_some_and(|(p, v)| v.node == node && p.at <= to);
    transient || persistent
}

/// Whether the node of the fencing elector had an admin fault or a restart in the lease TTL
/// before the fence: then standby could not be confirmed, and the fence is what it is for.
fn fence_explained(scenario: &Scenario, victim: Option<&Victim>, call: &FenceCall) -> bool {
    let from = call.at.saturating_sub(scenario.profile.timing.lease_ttl);
    node_troubled(scenario, victim, call.elector, from, call.at)
}

/// Whether `elector` may have been cut off from etcd in `[from, to]`: a partition, hold or
/// latency rise on its link, etcd down, or the elector itself down. Only then may its lease
/// run out while it lives and holds it.
fn cut_off(scenario: &Scenario, elector: usize, from: Duration, to: Duration) -> bool {
    let on = |target: Target| match target {
        Target::All => true,
        Target::One(i) => i == elector,
    };
    scenario.faults.iter().any(|f| {
        let hit = match f.kind {
            FaultKind::Partition { target, .. }
            | FaultKind::Hold { target }
            | FaultKind::Latency { target, .. } => on(target),
            FaultKind::EtcdCrash => true,
            FaultKind::ElectorCrash { elector: e, .. }
            | FaultKind::ElectorShutdown { elector: e } => e == elector,
            _ => false,
        };
        hit && f.at <= to && f.heal >= from
    })
}

/// Whether `history` is active at every instant of `[from, to]`.
fn active_throughout(history: &[Transition], from: Duration, to: Duration) -> bool {
    let at_from = history
        .iter()
        .take_while(|(at, _)| *at <= from)
        .last()
        .is_some_and(|(_, active)| *active);
    at_from
        && !history
            .iter()
            .any(|&(at, active)| at > from && at <= to && !active)
}

/// The documented assumption about the fence when the lease runs out: an elector cut off from
/// etcd whose node cannot be demoted (its admin endpoint fails) cannot keep its lease, so the
/// fence must stop the node before a successor may activate (`restart_bound + drain_bound`
/// after the expiry, which the activation delay covers). A run in which a node was still
/// active that long after its elector's lease expired, with its admin endpoint failing, its
/// elector cut off, and a fence that does not stop a node within `restart_bound` (absent,
/// failing, timing out or late), broke it. A lease given away (deleted or revoked by its
/// elector) never counts: the core must not do that before the node is proven standby.
fn unstopped_at_expiry(
    scenario: &Scenario,
    victim: Option<&Victim>,
    histories: &[Vec<Transition>],
    expirations: &[(usize, Duration)],
    end: Duration,
) -> Vec<Broken> {
    let t = &scenario.profile.timing;
    if scenario.fence.stops_node_within(t.restart_bound) {
        return Vec::new();
    }
    let mut broken = Vec::new();
    // The lease was last renewed at most its TTL (plus etcd's restart grace and one sweep)
    // before it expired; a partition that healed before that may still have left the
    // elector's connection silently dead for up to the reconnect span.
    let renewed_within = t.lease_ttl + ELECTION_TIMEOUT + SWEEP_INTERVAL;
    let cut_off_within = renewed_within + crate::check::reconnect_span(t);
    for &(replica, expired) in expirations {
        let covered = expired + t.restart_bound + t.drain_bound;
        if covered < end
            && active_throughout(&histories[replica], expired, covered)
            && node_troubled(
                scenario,
                victim,
                replica,
                expired.saturating_sub(renewed_within),
                expired,
            )
            && cut_off(
                scenario,
                replica,
                expired.saturating_sub(cut_off_within),
                expired,
            )
        {
            broken.push(Broken {
                kind: BrokenKind::UnstoppedAtLeaseExpiry,
                detail: format!(
                    "elector-{replica}'s lease expired at {} while it was cut off from etcd and node-{replica}'s admin endpoint failed; the fence ({}) had not stopped the node {} later",
                    secs(expired),
                    scenario.fence.outcome.name(),
                    secs(t.restart_bound + t.drain_bound)
                ),
            });
        }
    }
    broken
}

/// Runs one scenario and judges it.
pub fn simulate(scenario: &Scenario) -> Outcome {
    install_panic_counter();
    let recorder = Recorder::default();
    let dispatch = tracing::Dispatch::new(TraceSubscriber::new(recorder.clone()));
    let panics_before = PANICS.with(|p| p.get());
    let world_recorder = recorder.clone();
    let (run, histories) = tracing::dispatcher::with_default(&dispatch, || {
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let world = World::new(scenario, world_recorder);
            let nodes = world.nodes.clone();
            let run = world.run();
            let histories: Vec<Vec<Transition>> =
                nodes.iter().map(|n| n.history(run.simulated)).collect();
            (run, histories)
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
                    RunResult {
                        simulated: Duration::ZERO,
                        error: Some(format!("panicked: {message}")),
                        broken: Vec::new(),
                        fences: Vec::new(),
                        victim: None,
                        samples: Samples::default(),
                    },
                    vec![vec![(Duration::ZERO, false)]; scenario.replicas()],
                )
            }
        }
    });
    let RunResult {
        simulated,
        mut error,
        mut broken,
        fences,
        victim,
        samples,
    } = run;
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
    broken.extend(unstopped_at_expiry(
        scenario,
        victim.as_ref(),
        &histories,
        &samples.expirations,
        simulated,
    ));
    broken.sort_by(|a, b| (a.kind, &a.detail).cmp(&(b.kind, &b.detail)));
    let unexplained_fences = fences
        .iter()
        .filter(|call| !fence_explained(scenario, victim.as_ref(), call))
        .map(|call| (call.elector, call.at))
        .collect();

    let mut trace = recorder.entries();
    let stuck_reports = trace.iter().filter(|e| e.what.contains("STUCK: ")).count();
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
    let persistent = victim
        .as_ref()
        .and_then(|v| judge_persistent(scenario, v, &histories, &samples, simulated));
    let end_of_run = judge_stuck_at_end(scenario, &samples, simulated);

    Outcome {
        scenario: scenario.clone(),
        simulated,
        error,
        broken,
        overlaps: overlaps(&histories, simulated),
        settled: settled(&histories),
        activations: activations(&histories).len(),
        leadership_changes: leadership_changes(&histories),
        faults: scenario.faults.len() + usize::from(scenario.persistent.is_some()),
        fences: fences.len(),
        unexplained_fences,
        persistent,
        stuck_to_the_end: end_of_run.stuck_throughout,
        unreported_stuck: end_of_run.unreported,
        stuck_reports,
        histories,
        trace,
    }
}

/// Whether the persistent fault's replica cannot give the lead away: its node cannot be read
/// (dead, or `/ha` broken) and the fence cannot succeed.
fn victim_cannot_give_way(scenario: &Scenario) -> bool {
    scenario
        .persistent
        .as_ref()
        .is_some_and(|p| p.kind.needs_fence() && !scenario.fence.outcome.can_succeed())
}

/// The persistent fault's elector over `[from, ..)`: whether it led and reported itself stuck
/// at every sample, and the first sample at which it led without reporting stuck.
struct StuckAtEnd {
    stuck_throughout: bool,
    unreported: Option<Duration>,
}

fn judge_stuck_at_end(scenario: &Scenario, samples: &Samples, end: Duration) -> StuckAtEnd {
    let from = scenario.liveness_deadline;
    let tail: Vec<&StatusSample> = samples
        .victim_status
        .iter()
        .filter(|s| s.at >= from && s.at < end)
        .collect();
    if !victim_cannot_give_way(scenario) {
        return StuckAtEnd {
            stuck_throughout: false,
            unreported: None,
        };
    }
    StuckAtEnd {
        stuck_throughout: !tail.is_empty()
            && tail.iter().all(|s| s.running && s.leading && s.stuck),
        unreported: tail
            .iter()
            .find(|s| s.running && s.leading && !s.stuck)
            .map(|s| s.at),
    }
}

/// The check during the persistent fault, over the window from
/// `max(fault start, last transient heal before it + liveness bound) + persistent bound` to
/// the next transient fault's start (or the end): when the fault hit the leader's replica,
/// either another node is active at every instant of the window (the replica could prove its
/// node standby: by a read, or by a fence that succeeds), or the replica keeps leading and
/// reports itself stuck at every sample of it (it could not).
fn judge_persistent(
    scenario: &Scenario,
    victim: &Victim,
    histories: &[Vec<Transition>],
    samples: &Samples,
    end: Duration,
) -> Option<PersistentReport> {
    let p = scenario.persistent.as_ref()?;
    let t = &scenario.profile.timing;
    let first_up = scenario
        .nodes
        .iter()
        .map(|n| n.ready_at)
        .chain(scenario.electors.iter().map(|e| e.start_delay));
    let heal_before = scenario
        .faults
        .iter()
        .filter(|f| f.at <= p.at)
        .map(|f| f.heal)
        .chain(first_up)
        .max()
        .unwrap_or_default();
    let settled_from = heal_before + crate::check::liveness_bound(t);
    let from = settled_from.max(p.at) + crate::check::persistent_fault_bound(t);
    let until = scenario
        .faults
        .iter()
        .filter(|f| f.at > p.at)
        .map(|f| f.at)
        .min()
        .unwrap_or(end)
        .min(end);
    let window = (from < until).then_some((from, until));
    let expectation = match window {
        None => Expectation::Unchecked,
        Some(_) if !victim.hit_leader => Expectation::Unchecked,
        Some(_) if victim_cannot_give_way(scenario) => Expectation::Stuck,
        Some(_) => Expectation::Active,
    };
    let others: Vec<usize> = (0..histories.len()).filter(|&n| n != victim.node).collect();
    let mut report = PersistentReport {
        victim: victim.clone(),
        expectation,
        window,
        settled_at_start: settled_from <= p.at,
        recovery: None,
        stuck_checked: 0,
        problem: None,
    };
    let v = victim.node;
    match (expectation, window) {
        (Expectation::Active, Some((from, until))) => {
            report.recovery = crate::check::active_since(histories, &others, from)
                .map(|s| s.saturating_sub(p.at));
            if let Some(gap) = crate::check::first_gap(histories, &others, from, until) {
                report.problem = Some(format!(
                    "PERSISTENT: no node other than node-{v} active at {} ({} after the {} fault on node-{v} began at {}; bound {} from {})",
                    secs(gap),
                    secs(gap.saturating_sub(p.at)),
                    p.kind.name(),
                    secs(p.at),
                    secs(crate::check::persistent_fault_bound(t)),
                    secs(settled_from.max(p.at))
                ));
            }
        }
        (Expectation::Stuck, Some((from, until))) => {
            for s in samples
                .victim_status
                .iter()
                .filter(|s| s.at >= from && s.at < until)
            {
                let leads = s.running && s.leading;
                report.stuck_checked += usize::from(leads);
                let other_active = || {
                    crate::check::first_gap(
                        histories,
                        &others,
                        s.at,
                        s.at + Duration::from_nanos(1),
                    )
                    .is_none()
                };
                let what = if leads && !s.stuck {
                    "leads without reporting itself stuck"
                } else if !leads && !other_active() {
                    "does not lead, and no other node is active"
                } else {
                    continue;
                };
                report.problem = Some(format!(
                    "STUCK: at {} elector-{v} {what}, its node unable to be proven standby (the {} fault began at {}, fence {})",
                    secs(s.at),
                    p.kind.name(),
                    secs(p.at),
                    scenario.fence.outcome.name()
                ));
                break;
            }
        }
        _ => {}
    }
    Some(report)
}

/// What the persistent fault's replica must do in the checked window.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Expectation {
    /// Another node is active at every instant.
    Active,
    /// The replica cannot give the lead away: at every sample at which it leads it reports
    /// itself stuck, and whenever it does not lead another node is active.
    Stuck,
    /// Nothing is checked: the fault hit a replica that did not lead, or transient faults
    /// left no window.
    Unchecked,
}

/// The persistent fault's check.
#[derive(Clone, Debug)]
pub struct PersistentReport {
    pub victim: Victim,
    pub expectation: Expectation,
    /// The checked window `[from, until)`.
    pub window: Option<(Duration, Duration)>,
    /// No transient fault healed within the liveness bound before the fault: the recovery is
    /// comparable with [`crate::check::persistent_fault_bound`].
    pub settled_at_start: bool,
    /// With [`Expectation::Active`]: from the fault's start to the start of the stretch in
    /// which another node was active through the window.
    pub recovery: Option<Duration>,
    /// With [`Expectation::Stuck`]: the samples at which the replica led, its stuck report
    /// checked.
    pub stuck_checked: usize,
    pub problem: Option<String>,
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
            match s.fence.outcome {
                FenceOutcome::Absent => "NOT configured (every run fails at once)".to_owned(),
                outcome => format!("{} after {}", outcome.name(), secs(s.fence.delay)),
            }
        );
        let _ = writeln!(
            out,
            "schedule ({} faults{}):",
            s.faults.len(),
            if s.persistent.is_some() {
                " and a persistent one"
            } else {
                ""
            }
        );
        for f in &s.faults {
            let _ = writeln!(out, "  {} .. {}  {}", secs(f.at), secs(f.heal), f.kind);
        }
        if let Some(p) = &s.persistent {
            let _ = writeln!(out, "  {} .. end     {p}", secs(p.at));
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
        if let Some(p) = &self.persistent {
            let _ = writeln!(
                out,
                "  persistent fault on node-{} ({}): {}",
                p.victim.node,
                if p.victim.hit_leader {
                    "the leader's"
                } else {
                    "not the leader's"
                },
                match (p.expectation, p.window, &p.problem) {
                    (Expectation::Unchecked, _, _) | (_, None, _) => "not checked".to_owned(),
                    (_, _, Some(_)) => "VIOLATED".to_owned(),
                    (Expectation::Active, Some((from, until)), None) => format!(
                        "another node active from {} after the fault{} through {}..{}",
                        p.recovery.map(secs).unwrap_or_default(),
                        if p.settled_at_start {
                            ""
                        } else {
                            " (not settled before it)"
                        },
                        secs(from),
                        secs(until)
                    ),
                    (Expectation::Stuck, Some((from, until)), None) => format!(
                        "unable to give the lead away; through {}..{} its elector reported itself stuck at the {} samples it led, another node active otherwise",
                        secs(from),
                        secs(until),
                        p.stuck_checked
                    ),
                }
            );
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
                _ if self.stuck_to_the_end => {
                    "not expected (the persistent fault's elector reported itself stuck)".to_owned()
                }
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

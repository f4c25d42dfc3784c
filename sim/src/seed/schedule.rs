//! What one run does, drawn from its seed: the timing profile, the replicas, their clock
//! rates, the network, and the fault schedule.
//!
//! Everything here is decided before the run starts, so a seed names the run completely and a
//! schedule can be printed before the timeline it produced.
//!
//! One file on purpose: a seed's meaning is the order of its draws, so every draw is here, in
//! the order it is made (profile, replicas, clocks, network, faults, fence outcomes), with the
//! types it draws; spread over files, a new draw could silently reorder the others.

use crate::seed::rng::Rng;
use elector_core::{Mutation, Timing};
use elector_model::node::AdminFault;
use elector_model::timing_profile::TimingProfile;
use std::fmt;
use std::time::Duration;

/// Which profile runs use.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ProfileChoice {
    Standard,
    Fast,
    QuickRestart,
    /// [`TimingProfile::LongLease`]: only when asked for.
    LongLease,
    /// Drawn from the seed: a third quick-restart, the rest half default, half fast.
    Mixed,
}

impl ProfileChoice {
    /// The one profile every run uses, or `None` for `Mixed` (drawn per seed).
    pub fn fixed(self) -> Option<TimingProfile> {
        match self {
            ProfileChoice::Standard => Some(TimingProfile::Default),
            ProfileChoice::Fast => Some(TimingProfile::Fast),
            ProfileChoice::QuickRestart => Some(TimingProfile::QuickRestart),
            ProfileChoice::LongLease => Some(TimingProfile::LongLease),
            ProfileChoice::Mixed => None,
        }
    }

    /// As `--profile` spells it: the profile's name, or `mixed`.
    pub fn name(self) -> &'static str {
        self.fixed().map_or("mixed", TimingProfile::name)
    }

    pub fn parse(name: &str) -> Option<Self> {
        [
            ProfileChoice::Standard,
            ProfileChoice::Fast,
            ProfileChoice::QuickRestart,
            ProfileChoice::LongLease,
            ProfileChoice::Mixed,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }
}

/// Which planted bug of the core to switch on (none in normal runs).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum MutationChoice {
    #[default]
    None,
    NoSafetyMargin,
    ResignBeforeStandbyConfirmed,
    ResignWhenFenceStarts,
    ExclusionSkipsProof,
    ShortActivationDelay,
    HandoverSkipsSlotWait,
    ResignBeforeKeyWithdrawalConfirmed,
    InstallKeyBeforeGate,
}

impl MutationChoice {
    /// Every choice, in the order `--help` lists them.
    pub const ALL: [MutationChoice; 9] = [
        MutationChoice::None,
        MutationChoice::NoSafetyMargin,
        MutationChoice::ResignBeforeStandbyConfirmed,
        MutationChoice::ResignWhenFenceStarts,
        MutationChoice::ExclusionSkipsProof,
        MutationChoice::ShortActivationDelay,
        MutationChoice::HandoverSkipsSlotWait,
        MutationChoice::ResignBeforeKeyWithdrawalConfirmed,
        MutationChoice::InstallKeyBeforeGate,
    ];

    pub fn to_core(self) -> Mutation {
        Mutation {
            no_safety_margin: self == MutationChoice::NoSafetyMargin,
            resign_before_standby_confirmed: self == MutationChoice::ResignBeforeStandbyConfirmed,
            resign_when_fence_starts: self == MutationChoice::ResignWhenFenceStarts,
            exclusion_skips_proof: self == MutationChoice::ExclusionSkipsProof,
            activation_delay_ignores_early_revocation: self == MutationChoice::ShortActivationDelay,
            handover_skips_slot_wait: self == MutationChoice::HandoverSkipsSlotWait,
            fence_success_survives_active_read: false,
            resign_before_key_withdrawal_confirmed: self
                == MutationChoice::ResignBeforeKeyWithdrawalConfirmed,
            install_key_before_gate: self == MutationChoice::InstallKeyBeforeGate,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MutationChoice::None => "none",
            MutationChoice::NoSafetyMargin => "no-safety-margin",
            MutationChoice::ResignBeforeStandbyConfirmed => "resign-before-standby-confirmed",
            MutationChoice::ResignWhenFenceStarts => "resign-when-fence-starts",
            MutationChoice::ExclusionSkipsProof => "exclusion-skips-proof",
            MutationChoice::ShortActivationDelay => "short-activation-delay",
            MutationChoice::HandoverSkipsSlotWait => "handover-skips-slot-wait",
            MutationChoice::ResignBeforeKeyWithdrawalConfirmed => {
                "resign-before-key-withdrawal-confirmed"
            }
            MutationChoice::InstallKeyBeforeGate => "install-key-before-gate",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// What the caller fixes; the seed draws the rest.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub profile: ProfileChoice,
    /// Number of replicas; drawn from 2..=5 when not set.
    pub replicas: Option<usize>,
    pub mutation: MutationChoice,
    /// Key custody on every replica (`Some(true)`), on none, or drawn per seed (`None`).
    pub custody: Option<bool>,
    /// Also draw faults that break a documented assumption (drift or restart beyond the bound,
    /// a misconfigured active start) or may break one (a fence that is absent, fails, times
    /// out or is late: it breaks one only if a node it had to stop outlived its elector's
    /// lease). Such runs are reported apart.
    pub break_assumptions: bool,
    /// turmoil's step: how far every host's clock moves per step. Network messages are
    /// delivered at step boundaries, so it is also the granularity of network latency.
    pub tick: Duration,
    /// No run is shorter than this.
    pub min_duration: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            profile: ProfileChoice::Mixed,
            replicas: None,
            mutation: MutationChoice::None,
            custody: None,
            break_assumptions: true,
            tick: Duration::from_millis(5),
            min_duration: Duration::from_secs(120),
        }
    }
}

/// Electors on one side of a link fault.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Target {
    One(usize),
    /// Every elector: etcd is cut off from all of them.
    All,
}

/// Which way a partition drops messages.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Direction {
    Both,
    /// Elector to etcd dropped: requests are lost, answers would get through.
    ToEtcd,
    /// etcd to elector dropped: requests arrive and take effect, answers are lost.
    FromEtcd,
}

/// One fault, from `at` until it heals at `heal`.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub at: Duration,
    pub heal: Duration,
    pub kind: FaultKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FaultKind {
    /// Messages between electors and etcd are dropped (TCP segments vanish silently).
    Partition {
        target: Target,
        direction: Direction,
    },
    /// Messages between electors and etcd are held, then delivered at once (a delay spike).
    Hold { target: Target },
    /// The elector-etcd link's latency rises up to `max`.
    Latency { target: Target, max: Duration },
    /// The etcd process is killed; it restarts at `heal` over the same data.
    EtcdCrash,
    /// The elector process is killed; systemd's `ExecStopPost` commands the node standby
    /// `supervisor` after the crash (never, if `None`); the elector restarts at `heal`.
    ElectorCrash {
        elector: usize,
        supervisor: Option<Duration>,
    },
    /// SIGTERM: the elector hands over and exits; systemd restarts it at `heal`.
    ElectorShutdown { elector: usize },
    /// `elector handover` on this replica, naming a successor or not.
    HandoverRequest { elector: usize, to: Option<usize> },
    /// `elector exclude replica-N` (rule `excluded_replica`): its exclusion key is written to
    /// etcd, and deleted at `heal` (`elector include`).
    Exclusion { replica: usize },
    /// The node process dies (standby at once, endpoints gone), comes back after `down` in
    /// standby (or active if `active_start`: `system.active` left at its default), and is
    /// ready again at `heal`.
    NodeRestart {
        node: usize,
        down: Duration,
        active_start: bool,
    },
    /// The node's readiness probe fails until `heal`.
    Unready { node: usize },
    /// The node's admin endpoint answers 500, garbage, or hangs until `heal`.
    Admin { node: usize, fault: AdminFault },
    /// The node gets the network's blocks `lag` late (seconds behind the others, still under
    /// the 10 s after which iotex-core reports itself unready) until `heal`: its consensus
    /// computes its height and round from an older block.
    SyncLag { node: usize, lag: Duration },
    /// etcd ends leases before their TTL: right after it renews the leader's lease (the
    /// replica whose key is first when the fault begins), it revokes every lease, and the
    /// leader's elector is cut off from etcd (both ways) until `heal`, so it cannot hear of it.
    /// etcd before 3.4.31 and 3.5.13 revokes every lease when a stalled raft leader resumes
    /// (etcd issue #15247); an operator can revoke a lease by hand. Rule
    /// `activation_delay_covers_early_revocation` must keep the leader's node and its
    /// successor's apart, also when the cut-off leader's elector then dies or hangs before
    /// its step-down deadline (`leader_fails`): its node is then commanded standby by its
    /// supervisor, within `restart_bound`. The elector restarts at `heal`.
    EarlyRevocation { leader_fails: Option<LeaderFailure> },
    /// Key custody only: someone on the host activates this node by hand (`curl
    /// .../ha?activate=true`). Its node holds the placeholder unless this replica leads: it
    /// must sign nothing as the delegate, and its elector commands it back (by `heal`).
    HandActivation { node: usize },
    /// Key custody only: the node's process dies and comes back after `down`, standby, with
    /// the operator's key in its configuration by mistake; the configuration is fixed at
    /// `heal` (a later restart holds the placeholder). Its elector must withdraw the key
    /// unless it leads.
    BootsWithOperatorKey { node: usize, down: Duration },
    /// Key custody only: every `PUT /producer-keys` waits `delay` before its handler runs (a
    /// starved process) until `heal`: the elector's call times out and the replacement still
    /// lands afterwards.
    KeysLate { node: usize, delay: Duration },
}

/// The cut-off leader's elector failing after etcd revoked its lease early.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaderFailure {
    pub hang: bool,
    /// How long after the revocation: before the leader's step-down deadline.
    pub after: Duration,
    /// When systemd's `ExecStopPost=` starts, after the elector died (a crash: at once; a hang:
    /// once the watchdog killed it), within `restart_bound`.
    pub supervisor: Duration,
}

impl FaultKind {
    /// A short name for summaries.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Partition {
                direction: Direction::Both,
                ..
            } => "partition",
            FaultKind::Partition { .. } => "partition-oneway",
            FaultKind::Hold { .. } => "hold",
            FaultKind::Latency { .. } => "latency",
            FaultKind::EtcdCrash => "etcd-crash",
            FaultKind::ElectorCrash { .. } => "elector-crash",
            FaultKind::ElectorShutdown { .. } => "elector-sigterm",
            FaultKind::HandoverRequest { .. } => "handover-request",
            FaultKind::Exclusion { .. } => "exclusion",
            FaultKind::NodeRestart { .. } => "node-restart",
            FaultKind::Unready { .. } => "unready",
            FaultKind::Admin { .. } => "admin-fault",
            FaultKind::SyncLag { .. } => "sync-lag",
            FaultKind::EarlyRevocation { leader_fails: None } => "early-revocation",
            FaultKind::EarlyRevocation {
                leader_fails: Some(LeaderFailure { hang: false, .. }),
            } => "early-revocation+crash",
            FaultKind::EarlyRevocation { .. } => "early-revocation+hang",
            FaultKind::HandActivation { .. } => "hand-activation",
            FaultKind::BootsWithOperatorKey { .. } => "boots-with-operator-key",
            FaultKind::KeysLate { .. } => "keys-late",
        }
    }
}

fn target_name(target: Target) -> String {
    match target {
        Target::One(i) => format!("elector-{i}"),
        Target::All => "every elector".into(),
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::Partition { target, direction } => {
                let t = target_name(*target);
                match direction {
                    Direction::Both => write!(f, "partition {t} <-> etcd"),
                    Direction::ToEtcd => write!(f, "partition {t} -> etcd (one way)"),
                    Direction::FromEtcd => write!(f, "partition etcd -> {t} (one way)"),
                }
            }
            FaultKind::Hold { target } => write!(f, "hold {} <-> etcd", target_name(*target)),
            FaultKind::Latency { target, max } => write!(
                f,
                "latency {} <-> etcd up to {}ms",
                target_name(*target),
                max.as_millis()
            ),
            FaultKind::EtcdCrash => write!(f, "etcd crash"),
            FaultKind::ElectorCrash {
                elector,
                supervisor,
            } => match supervisor {
                Some(d) => write!(
                    f,
                    "elector-{elector} crash (ExecStopPost standby after {})",
                    secs(*d)
                ),
                None => write!(f, "elector-{elector} crash (no ExecStopPost)"),
            },
            FaultKind::ElectorShutdown { elector } => write!(f, "elector-{elector} SIGTERM"),
            FaultKind::HandoverRequest { elector, to } => match to {
                Some(to) => write!(f, "handover request at elector-{elector} to replica-{to}"),
                None => write!(f, "handover request at elector-{elector}"),
            },
            FaultKind::Exclusion { replica } => write!(f, "exclusion of replica-{replica}"),
            FaultKind::NodeRestart {
                node,
                down,
                active_start,
            } => write!(
                f,
                "node-{node} restart (down {}, starts {})",
                secs(*down),
                if *active_start {
                    "ACTIVE: misconfigured"
                } else {
                    "standby"
                }
            ),
            FaultKind::Unready { node } => write!(f, "node-{node} unready"),
            FaultKind::Admin { node, fault } => {
                write!(f, "node-{node} admin fault {}", fault.as_str())
            }
            FaultKind::SyncLag { node, lag } => {
                write!(f, "node-{node} gets blocks {} late", secs(*lag))
            }
            FaultKind::EarlyRevocation { leader_fails } => {
                write!(
                    f,
                    "etcd revokes every lease right after renewing the leader's, the leader cut off"
                )?;
                if let Some(failure) = leader_fails {
                    write!(
                        f,
                        "; its elector {} {} later, ExecStopPost {} after that",
                        if failure.hang { "hangs" } else { "crashes" },
                        secs(failure.after),
                        secs(failure.supervisor)
                    )?;
                }
                Ok(())
            }
            FaultKind::HandActivation { node } => {
                write!(f, "node-{node} activated by hand (curl /ha?activate=true)")
            }
            FaultKind::BootsWithOperatorKey { node, down } => write!(
                f,
                "node-{node} process dies, back after {} standby with the operator's key in its \
                 config",
                secs(*down)
            ),
            FaultKind::KeysLate { node, delay } => {
                write!(
                    f,
                    "node-{node} runs every PUT /producer-keys {} late",
                    secs(*delay)
                )
            }
        }
    }
}

/// One elector's setup.
#[derive(Clone, Debug, PartialEq)]
pub struct ElectorSetup {
    /// Its clock's rate against true (and etcd's) time.
    pub rate: f64,
    /// When it first starts.
    pub start_delay: Duration,
}

/// One node's setup.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSetup {
    /// When it is first ready (synced): `/readiness` says so from the next block on.
    pub ready_at: Duration,
    /// How long after the network commits a block the node has it (p2p sync).
    pub sync_lag: Duration,
}

/// The chain every node follows: mainnet's consensus timing since the Wake upgrade (2.5 s
/// slots), genesis at the start of the run, the network committing a block every slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSetup {
    /// Proposers in the rotation: 1 makes our delegate the proposer of every slot (the worst
    /// case, in most runs); 24 is mainnet.
    pub delegates: u64,
}

impl ChainSetup {
    /// The chain the nodes of a run share.
    pub fn chain(&self) -> elector_model::chain::Chain {
        elector_model::chain::Chain::new(
            elector_model::chain::ConsensusTiming::wake(),
            Duration::ZERO,
            self.delegates,
        )
    }
}

/// The shell's default `--fence-timeout`: a fence command still running after this long is
/// killed and counts as failed. A fence that succeeds late does so within it.
pub const FENCE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the operator's fence does, the same on every run in a scenario. Only a run that
/// reports success has stopped the node's signing, and it has done so before it reports: the
/// documented meaning of the fence's success, which the simulation never breaks.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FenceOutcome {
    /// No `--fence-cmd`: every run fails at once.
    Absent,
    /// The command exits non-zero after the drawn delay; the node is untouched.
    Fails,
    /// The command runs until [`FENCE_TIMEOUT`] kills it: failed; the node is untouched.
    TimesOut,
    /// The command stops the node after the drawn delay (1 s up to the timeout), then reports
    /// success.
    SucceedsLate,
    /// The command stops the node after the drawn delay (at most 300 ms), then reports success.
    Succeeds,
}

impl FenceOutcome {
    pub fn name(self) -> &'static str {
        match self {
            FenceOutcome::Absent => "absent",
            FenceOutcome::Fails => "fails",
            FenceOutcome::TimesOut => "times out",
            FenceOutcome::SucceedsLate => "succeeds late",
            FenceOutcome::Succeeds => "succeeds",
        }
    }

    /// Whether a run can report success (and so stop the node).
    pub fn can_succeed(self) -> bool {
        matches!(self, FenceOutcome::SucceedsLate | FenceOutcome::Succeeds)
    }
}

/// The operator's fence.
#[derive(Clone, Debug, PartialEq)]
pub struct FenceSetup {
    pub outcome: FenceOutcome,
    /// How long a run takes before it stops the node (success) or exits non-zero (failure);
    /// [`FENCE_TIMEOUT`] when it times out, zero when absent.
    pub delay: Duration,
}

impl FenceSetup {
    /// Whether a run stops the node within `bound` of its start.
    pub fn stops_node_within(&self, bound: Duration) -> bool {
        self.outcome.can_succeed() && self.delay <= bound
    }
}

/// A node fault that lasts to the end of the run (within the documented assumptions).
#[derive(Clone, Debug, PartialEq)]
pub struct PersistentFault {
    pub at: Duration,
    /// The node hit when no node is commanded active at `at`; otherwise the active one is (the
    /// leader's node, where the fault matters).
    pub fallback: usize,
    pub kind: PersistentKind,
    /// No transient fault starts after `at`, so that the fault's own recovery is checked to the
    /// end of the run; otherwise transient faults go on around it.
    pub quiet_after: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum PersistentKind {
    /// The node process dies and stays down: its admin endpoint refuses, it signs nothing.
    NodeDeath,
    /// `/ha` answers 500, garbage or hangs from now on, while consensus runs: the node keeps
    /// signing in the mode it is in. With `sigterm_after`, the replica's elector gets SIGTERM
    /// that long after, and is left to it (never killed: it may keep the lease for good).
    AdminBroken {
        fault: AdminFault,
        sigterm_after: Option<Duration>,
    },
    /// The node restarts (down for `down`, ready `sync` later) and from then on answers
    /// `activate=true` with 500 without effect, while reads and `activate=false` work.
    ActivationRefused { down: Duration, sync: Duration },
}

impl PersistentKind {
    pub fn name(&self) -> &'static str {
        match self {
            PersistentKind::NodeDeath => "node-death",
            PersistentKind::AdminBroken {
                sigterm_after: None,
                ..
            } => "admin-broken",
            PersistentKind::AdminBroken { .. } => "admin-broken+sigterm",
            PersistentKind::ActivationRefused { .. } => "activation-refused",
        }
    }

    /// Whether the replica's node can no longer be proven standby by a read, so that giving
    /// the lead away takes a fence that succeeds.
    pub fn needs_fence(&self) -> bool {
        !matches!(self, PersistentKind::ActivationRefused { .. })
    }
}

impl fmt::Display for PersistentFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = format!("the active node (else node-{})", self.fallback);
        match &self.kind {
            PersistentKind::NodeDeath => write!(f, "{who} dies for good"),
            PersistentKind::AdminBroken {
                fault,
                sigterm_after,
            } => {
                write!(f, "{who}: /ha {} for good", fault.as_str())?;
                if let Some(after) = sigterm_after {
                    write!(f, ", SIGTERM to its elector {} later", secs(*after))?;
                }
                Ok(())
            }
            PersistentKind::ActivationRefused { down, sync } => write!(
                f,
                "{who} restarts (down {}, ready {} later) and refuses activation for good",
                secs(*down),
                secs(*sync)
            ),
        }?;
        if self.quiet_after {
            write!(f, " (no transient fault after it)")?;
        }
        Ok(())
    }
}

/// One run, completely.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub seed: u64,
    pub profile: TimingProfile,
    pub mutation: MutationChoice,
    pub tick: Duration,
    /// Latency of the elector-etcd links: `min..=max` (turmoil draws from an exponential
    /// curve). Elector-node links (same host in production) take 1 ms.
    pub latency_min: Duration,
    pub latency_max: Duration,
    /// The lambda of turmoil's exponential latency curve (smaller: a heavier tail).
    pub latency_curve: f64,
    pub electors: Vec<ElectorSetup>,
    /// Key custody on every replica (`--producer-key-file`, `--placeholder-key-file`,
    /// `--admin-token-file`): the nodes start with their placeholder and serve
    /// `/producer-keys`; the custody faults are drawn only then.
    pub custody: bool,
    pub chain: ChainSetup,
    pub nodes: Vec<NodeSetup>,
    pub fence: FenceSetup,
    /// Transient faults: each heals.
    pub faults: Vec<Fault>,
    /// A node fault that lasts to the end, if any.
    pub persistent: Option<PersistentFault>,
    /// When the last transient fault has healed (and every node was first ready).
    pub last_heal: Duration,
    /// When exactly one node must be active and stay so (or, when the persistent fault's
    /// replica cannot give the lead away, that replica must report itself stuck): see
    /// [`crate::checker::check::liveness_deadline`].
    pub liveness_deadline: Duration,
    /// End of the run.
    pub duration: Duration,
}

/// Shared resources: two faults on the same one never overlap (turmoil cannot combine a
/// hold with a one-way partition on a link, and two readiness faults would fight).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Resource {
    Link(usize),
    Etcd,
    Elector(usize),
    NodeReady(usize),
    NodeAdmin(usize),
}

/// How long the world is given, after the last heal, to show that it stays settled.
pub const SETTLE_WINDOW: Duration = Duration::from_secs(20);

impl Scenario {
    /// Draws the run for `seed`.
    pub fn generate(seed: u64, options: &Options) -> Scenario {
        let mut root = Rng::new(seed);
        let mut setup = root.fork(1);
        let mut faults_rng = root.fork(2);

        // The quick-restart profile came later: drawn from a stream of its own, so that the
        // other seeds stay what they were.
        let quick_restart = root.fork(6).chance(1.0 / 3.0);
        let profile = match options.profile.fixed() {
            Some(profile) => profile,
            None if quick_restart => TimingProfile::QuickRestart,
            None if setup.chance(0.5) => TimingProfile::Default,
            None => TimingProfile::Fast,
        };
        let timing = profile.timing();
        let replicas = options
            .replicas
            .unwrap_or_else(|| setup.range(2, 5) as usize);
        let rho = timing.max_clock_drift;
        let mut electors: Vec<ElectorSetup> = (0..replicas)
            .map(|_| {
                let rate = match setup.weighted(&[1, 1, 2, 1]) {
                    0 => 1.0 - rho,
                    1 => 1.0 + rho,
                    2 => 1.0 + rho * setup.float(-1.0, 1.0),
                    _ => 1.0,
                };
                ElectorSetup {
                    rate,
                    start_delay: setup.millis(Duration::ZERO, Duration::from_secs(2)),
                }
            })
            .collect();
        if options.break_assumptions && setup.chance(0.04) {
            let victim = setup.range(0, replicas as u64 - 1) as usize;
            let excess = rho * setup.float(2.0, 5.0);
            electors[victim].rate = if setup.chance(0.5) {
                1.0 - excess
            } else {
                1.0 + excess
            };
        }
        let ready_at: Vec<Duration> = (0..replicas)
            .map(|_| setup.millis(Duration::ZERO, Duration::from_secs(3)))
            .collect();
        // The fence outcomes and later additions draw from streams of their own, so that a
        // seed's transient schedule does not shift when a new kind of draw is added.
        let configured = !(options.break_assumptions && setup.chance(0.1));
        let quick = setup.millis(Duration::ZERO, Duration::from_millis(300));
        let latency_max = Duration::from_millis(*setup.pick(&[2, 10, 25, 50]));
        let latency_curve = *setup.pick(&[2.0, 5.0, 10.0]);
        let mut extra = root.fork(3);
        let fence = draw_fence(&mut extra, configured, quick, options);

        let mut faults = draw_faults(&mut faults_rng, &timing, replicas, options);
        // From its own stream too, so that the other faults of old seeds stay what they were.
        if let Some(exclusion) = draw_exclusion(&mut root.fork(4), &timing, replicas) {
            faults.push(exclusion);
            faults.sort_by_key(|f| (f.at, f.heal));
        }
        if let Some(revocation) = draw_early_revocation(&mut root.fork(5), &timing) {
            faults.push(revocation);
            faults.sort_by_key(|f| (f.at, f.heal));
        }
        // The chain and the nodes' sync came with the node model: their own stream too.
        let mut chain_rng = root.fork(7);
        let chain = ChainSetup {
            delegates: if chain_rng.chance(MAINNET_ROTATION_CHANCE) {
                24
            } else {
                1
            },
        };
        let nodes: Vec<NodeSetup> = ready_at
            .into_iter()
            .map(|ready_at| NodeSetup {
                ready_at,
                sync_lag: chain_rng.millis(Duration::from_millis(50), Duration::from_millis(300)),
            })
            .collect();
        if let Some(lag) = draw_sync_lag(&mut chain_rng, &timing, replicas) {
            faults.push(lag);
            faults.sort_by_key(|f| (f.at, f.heal));
        }
        // Key custody came later still: its own stream.
        let mut custody_rng = root.fork(8);
        let drawn = custody_rng.chance(CUSTODY_CHANCE);
        let custody = options.custody.unwrap_or(drawn);
        if custody {
            let drawn = draw_custody_faults(&mut custody_rng, &timing, replicas);
            let kept: Vec<Fault> = drawn
                .iter()
                .filter(|f| {
                    options.break_assumptions || !hand_activation_of_a_misconfigured_node(f, &drawn)
                })
                .cloned()
                .collect();
            faults.extend(kept);
            faults.sort_by_key(|f| (f.at, f.heal));
        }
        let persistent = extra
            .chance(PERSISTENT_CHANCE)
            .then(|| draw_persistent(&mut extra, &timing, replicas));
        if let Some(p) = persistent.as_ref().filter(|p| p.quiet_after) {
            faults.retain(|f| f.at <= p.at);
        }

        let first_ready = nodes.iter().map(|n| n.ready_at).max().unwrap_or_default();
        let first_start = electors
            .iter()
            .map(|e| e.start_delay)
            .max()
            .unwrap_or_default();
        let last_heal = faults
            .iter()
            .map(|f| f.heal)
            .chain([first_ready, first_start])
            .max()
            .unwrap_or_default();
        let liveness_deadline = crate::checker::check::liveness_deadline(
            &timing,
            last_heal,
            persistent.as_ref().map(|p| p.at),
        );
        let duration = options
            .min_duration
            .max(liveness_deadline + SETTLE_WINDOW)
            .max(Duration::from_secs(1));
        Scenario {
            seed,
            profile,
            mutation: options.mutation,
            tick: options.tick,
            latency_min: Duration::ZERO,
            latency_max,
            latency_curve,
            electors,
            custody,
            chain,
            nodes,
            fence,
            faults,
            persistent,
            last_heal,
            liveness_deadline,
            duration,
        }
    }

    pub fn replicas(&self) -> usize {
        self.electors.len()
    }

    /// Whether an elector's clock drifts more than the configured bound allows.
    pub fn drift_beyond_bound(&self) -> Vec<usize> {
        let rho = self.profile.timing().max_clock_drift;
        self.electors
            .iter()
            .enumerate()
            .filter(|(_, e)| (e.rate - 1.0).abs() > rho + 1e-12)
            .map(|(i, _)| i)
            .collect()
    }
}

/// How often a scenario has a persistent node fault.
pub const PERSISTENT_CHANCE: f64 = 0.3;

/// The fence's behaviour. Without breaking assumptions it always succeeds at once: a fence
/// that fails, times out or is late can leave a node signing when its elector's lease runs
/// out (cut off from etcd with a broken admin endpoint), which the run then reports as an
/// assumption broken.
fn draw_fence(rng: &mut Rng, configured: bool, quick: Duration, options: &Options) -> FenceSetup {
    let ms = Duration::from_millis;
    let outcome = if !configured {
        FenceOutcome::Absent
    } else if !options.break_assumptions {
        FenceOutcome::Succeeds
    } else {
        match rng.weighted(&[60, 14, 13, 13]) {
            0 => FenceOutcome::Succeeds,
            1 => FenceOutcome::SucceedsLate,
            2 => FenceOutcome::Fails,
            _ => FenceOutcome::TimesOut,
        }
    };
    let delay = match outcome {
        FenceOutcome::Absent => Duration::ZERO,
        FenceOutcome::Fails | FenceOutcome::Succeeds => quick,
        FenceOutcome::TimesOut => FENCE_TIMEOUT,
        FenceOutcome::SucceedsLate => rng.millis(ms(1000), FENCE_TIMEOUT - ms(100)),
    };
    FenceSetup { outcome, delay }
}

fn draw_persistent(rng: &mut Rng, timing: &Timing, replicas: usize) -> PersistentFault {
    let ms = Duration::from_millis;
    let at = rng.millis(ms(5000), ms(60_000));
    let fallback = rng.range(0, replicas as u64 - 1) as usize;
    let kind = match rng.weighted(&[3, 4, 3, 3]) {
        0 => PersistentKind::NodeDeath,
        1 | 2 => {
            let fault = *rng.pick(&[
                AdminFault::Status500,
                AdminFault::GarbageBody,
                AdminFault::Hang,
            ]);
            // SIGTERM before, around or after the node counts as lost.
            let sigterm_after = (rng.weighted(&[4, 3]) == 1)
                .then(|| rng.millis(Duration::ZERO, timing.node_lost_after + timing.lease_ttl));
            PersistentKind::AdminBroken {
                fault,
                sigterm_after,
            }
        }
        _ => PersistentKind::ActivationRefused {
            down: rng.millis(Duration::ZERO, ms(3000)),
            sync: rng.millis(Duration::ZERO, ms(3000)),
        },
    };
    PersistentFault {
        at,
        fallback,
        kind,
        quiet_after: rng.chance(0.5),
    }
}

fn draw_faults(rng: &mut Rng, timing: &Timing, replicas: usize, options: &Options) -> Vec<Fault> {
    let count = rng.weighted(&[1, 2, 3, 4, 4, 3, 2, 1, 1]);
    let ttl = timing.lease_ttl;
    let window_start = Duration::from_secs(2);
    let window_end = Duration::from_secs(70);
    let mut busy: Vec<(Resource, Duration, Duration)> = Vec::new();
    let mut faults = Vec::new();
    for _ in 0..count {
        // A few attempts to find a slot that does not collide; else the fault is dropped.
        for _attempt in 0..8 {
            let at = rng.millis(window_start, window_end);
            let (kind, length, resources) = draw_fault(rng, timing, ttl, replicas, options);
            let heal = at + length;
            let free = resources.iter().all(|r| {
                busy.iter()
                    .filter(|(b, _, _)| b == r)
                    .all(|&(_, from, to)| heal + Duration::from_millis(50) < from || to < at)
            });
            if free {
                busy.extend(resources.iter().map(|&r| (r, at, heal)));
                faults.push(Fault { at, heal, kind });
                break;
            }
        }
    }
    faults.sort_by_key(|f| (f.at, f.heal));
    faults
}

/// The share of runs with key custody on.
pub const CUSTODY_CHANCE: f64 = 0.5;

/// Key custody's faults: none to three of them, anywhere in the faults' window, overlapping
/// anything (they are faults of the node and its host, which no other fault rules out).
fn draw_custody_faults(rng: &mut Rng, timing: &Timing, replicas: usize) -> Vec<Fault> {
    let ms = Duration::from_millis;
    let count = rng.weighted(&[1, 2, 2, 1]);
    (0..count)
        .map(|_| {
            let at = rng.millis(ms(2_000), ms(70_000));
            let node = rng.range(0, replicas as u64 - 1) as usize;
            let (kind, length) = match rng.weighted(&[2, 1, 1]) {
                // Until its elector has surely read and corrected it.
                0 => (FaultKind::HandActivation { node }, timing.lease_ttl),
                1 => {
                    let down = rng.millis(Duration::ZERO, ms(3_000));
                    (
                        FaultKind::BootsWithOperatorKey { node, down },
                        down + rng.millis(ms(500), ms(5_000)),
                    )
                }
                _ => {
                    let delay = rng.millis(ms(500), ms(8_000));
                    (
                        FaultKind::KeysLate { node, delay },
                        rng.millis(ms(1_000), timing.lease_ttl * 2),
                    )
                }
            };
            Fault {
                at,
                heal: at + length,
                kind,
            }
        })
        .collect()
}

/// Whether `fault` activates by hand a node that some drawn fault restarts with the operator's
/// key in its configuration: a broken assumption of key custody (the standby's configuration
/// holds its placeholder), drawn only when assumptions may be broken.
fn hand_activation_of_a_misconfigured_node(fault: &Fault, faults: &[Fault]) -> bool {
    let FaultKind::HandActivation { node } = fault.kind else {
        return false;
    };
    faults
        .iter()
        .any(|f| matches!(f.kind, FaultKind::BootsWithOperatorKey { node: n, .. } if n == node))
}

/// The share of runs in which an operator excludes one replica for a while.
pub const EXCLUSION_CHANCE: f64 = 0.35;

/// An operator's `elector exclude` of one replica, lifted by `elector include` after up to
/// three lease TTLs, in the same window as the other faults. It may overlap any of them: an
/// exclusion is etcd data, and the rule must hold whatever else goes wrong.
fn draw_exclusion(rng: &mut Rng, timing: &Timing, replicas: usize) -> Option<Fault> {
    if !rng.chance(EXCLUSION_CHANCE) {
        return None;
    }
    let replica = rng.range(0, replicas as u64 - 1) as usize;
    let at = rng.millis(Duration::from_secs(2), Duration::from_secs(70));
    let length = rng.millis(Duration::from_secs(1), timing.lease_ttl * 3);
    Some(Fault {
        at,
        heal: at + length,
        kind: FaultKind::Exclusion { replica },
    })
}

/// The share of runs in which etcd revokes every lease early once.
pub const EARLY_REVOCATION_CHANCE: f64 = 0.25;

/// etcd revoking every lease early (`FaultKind::EarlyRevocation`), in the same window as the
/// other faults, with the leader cut off for one to three lease TTLs: past its lease deadline,
/// so that its own deadlines, not the deletion, demote it. It may overlap any other fault. In
/// half of these runs the cut-off leader's elector then crashes or hangs before its step-down
/// deadline, in the last fifth of the time left before it in half of those (the latest its
/// node can be commanded standby, the worst case for the successor's activation delay).
fn draw_early_revocation(rng: &mut Rng, timing: &Timing) -> Option<Fault> {
    if !rng.chance(EARLY_REVOCATION_CHANCE) {
        return None;
    }
    let at = rng.millis(Duration::from_secs(2), Duration::from_secs(70));
    let length = rng.millis(timing.lease_ttl, timing.lease_ttl * 3);
    let leader_fails = rng.chance(LEADER_FAILS_CHANCE).then(|| {
        // The step-down deadline comes `TTL x (1 - rho) - step_down_lead` after the last
        // acknowledged keep-alive on the leader's clock, which may run fast: at least that
        // divided by (1 + rho) in real time after the revocation, which follows the ack.
        let rho = timing.max_clock_drift;
        let window = timing
            .drift_scaled(timing.lease_ttl)
            .saturating_sub(timing.step_down_lead())
            .div_f64(1.0 + rho);
        let before_deadline = window.saturating_sub(Duration::from_millis(50));
        let after = if rng.chance(0.5) {
            rng.millis(before_deadline * 4 / 5, before_deadline)
        } else {
            rng.millis(Duration::ZERO, before_deadline)
        };
        let hang = rng.chance(0.5);
        let bound = timing
            .restart_bound
            .saturating_sub(Duration::from_millis(20));
        // A crash is seen at once; a hang once the watchdog killed it, late in the bound.
        let supervisor = if hang {
            rng.millis(bound * 3 / 5, bound)
        } else {
            rng.millis(Duration::from_millis(20), bound)
        };
        LeaderFailure {
            hang,
            after,
            supervisor,
        }
    });
    Some(Fault {
        at,
        heal: at + length,
        kind: FaultKind::EarlyRevocation { leader_fails },
    })
}

/// The share of early revocations after which the cut-off leader's elector crashes or hangs.
pub const LEADER_FAILS_CHANCE: f64 = 0.5;

/// The share of runs whose chain has mainnet's 24 proposers (our delegate proposes one slot in
/// 24); the others have our delegate propose every slot, the worst case.
pub const MAINNET_ROTATION_CHANCE: f64 = 0.2;

/// The share of runs in which one node lags seconds behind the network for a while.
pub const SYNC_LAG_CHANCE: f64 = 0.25;

/// One node getting its blocks 1 to 6 s late (`FaultKind::SyncLag`) for a short, medium or
/// long span, in the same window as the other faults. It may overlap any other fault: a
/// lagging replica is where a double sign would hide.
fn draw_sync_lag(rng: &mut Rng, timing: &Timing, replicas: usize) -> Option<Fault> {
    if !rng.chance(SYNC_LAG_CHANCE) {
        return None;
    }
    let node = rng.range(0, replicas as u64 - 1) as usize;
    let lag = rng.millis(Duration::from_secs(1), Duration::from_secs(6));
    let at = rng.millis(Duration::from_secs(2), Duration::from_secs(70));
    let length = draw_span(rng, timing.lease_ttl);
    Some(Fault {
        at,
        heal: at + length,
        kind: FaultKind::SyncLag { node, lag },
    })
}

/// Short, medium or long, against the lease TTL.
fn draw_span(rng: &mut Rng, ttl: Duration) -> Duration {
    let ms = Duration::from_millis;
    match rng.weighted(&[4, 4, 2]) {
        0 => rng.millis(ms(100), ttl / 2),
        1 => rng.millis(ttl / 2, ttl * 3 / 2),
        _ => rng.millis(ttl * 3 / 2, ttl * 3),
    }
}

fn draw_fault(
    rng: &mut Rng,
    timing: &Timing,
    ttl: Duration,
    replicas: usize,
    options: &Options,
) -> (FaultKind, Duration, Vec<Resource>) {
    let ms = Duration::from_millis;
    let one = |rng: &mut Rng| rng.range(0, replicas as u64 - 1) as usize;
    let links = |target: Target| match target {
        Target::One(i) => vec![Resource::Link(i)],
        Target::All => (0..replicas).map(Resource::Link).collect(),
    };
    let target = |rng: &mut Rng| {
        if rng.chance(0.2) {
            Target::All
        } else {
            Target::One(rng.range(0, replicas as u64 - 1) as usize)
        }
    };
    let weights = [10, 8, 6, 5, 6, 10, 5, 5, 6, 8, 8];
    match rng.weighted(&weights) {
        0 | 1 => {
            let direction = if rng.chance(0.5) {
                Direction::Both
            } else if rng.chance(0.5) {
                Direction::ToEtcd
            } else {
                Direction::FromEtcd
            };
            let target = target(rng);
            (
                FaultKind::Partition { target, direction },
                draw_span(rng, ttl),
                links(target),
            )
        }
        2 => {
            let target = target(rng);
            (
                FaultKind::Hold { target },
                rng.millis(ms(100), ttl),
                links(target),
            )
        }
        3 => {
            let target = target(rng);
            let rt = timing.etcd_request_timeout;
            let max = rng.millis(rt / 2, rt * 5 / 2);
            (
                FaultKind::Latency { target, max },
                draw_span(rng, ttl),
                links(target),
            )
        }
        4 => (
            FaultKind::EtcdCrash,
            rng.millis(ms(200), ttl * 5 / 2),
            vec![Resource::Etcd],
        ),
        5 => {
            let elector = one(rng);
            let bound = timing.restart_bound;
            let beyond = options.break_assumptions && rng.chance(0.25);
            // systemd restarts the elector only after `ExecStopPost` finished.
            let (supervisor, restart): (Option<Duration>, Duration) = if beyond {
                let supervisor = if rng.chance(0.4) {
                    None
                } else {
                    Some(rng.millis(bound + ms(100), bound + ttl))
                };
                (supervisor, rng.millis(bound + ms(100), bound + ttl * 2))
            } else {
                (
                    Some(rng.millis(ms(20), bound.saturating_sub(ms(20)))),
                    rng.millis(ms(200), ttl * 5 / 2),
                )
            };
            let restart = restart.max(supervisor.unwrap_or_default() + ms(50));
            (
                FaultKind::ElectorCrash {
                    elector,
                    supervisor,
                },
                restart,
                vec![Resource::Elector(elector)],
            )
        }
        6 => {
            let elector = one(rng);
            let restart = timing.shutdown_grace() + rng.millis(ms(200), ttl);
            (
                FaultKind::ElectorShutdown { elector },
                restart,
                vec![Resource::Elector(elector)],
            )
        }
        7 => {
            let elector = one(rng);
            let to = if rng.chance(0.5) {
                Some(one(rng))
            } else {
                None
            };
            (
                FaultKind::HandoverRequest { elector, to },
                Duration::ZERO,
                vec![Resource::Elector(elector)],
            )
        }
        8 => {
            let node = one(rng);
            let down = rng.millis(Duration::ZERO, ms(3000));
            let sync = rng.millis(Duration::ZERO, ms(5000));
            let active_start = options.break_assumptions && rng.chance(0.15);
            (
                FaultKind::NodeRestart {
                    node,
                    down,
                    active_start,
                },
                down + sync,
                vec![Resource::NodeReady(node), Resource::NodeAdmin(node)],
            )
        }
        9 => {
            let node = one(rng);
            (
                FaultKind::Unready { node },
                rng.millis(ms(300), ttl * 2),
                vec![Resource::NodeReady(node)],
            )
        }
        _ => {
            let node = one(rng);
            let fault = *rng.pick(&[
                AdminFault::Status500,
                AdminFault::GarbageBody,
                AdminFault::Hang,
            ]);
            (
                FaultKind::Admin { node, fault },
                rng.millis(ms(100), ttl * 3 / 2),
                vec![Resource::NodeAdmin(node)],
            )
        }
    }
}

/// Seconds with millisecond precision, for humans.
pub fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_scenario() {
        let options = Options::default();
        for seed in 0..50 {
            assert_eq!(
                Scenario::generate(seed, &options),
                Scenario::generate(seed, &options)
            );
        }
        assert_ne!(
            Scenario::generate(1, &options).faults,
            Scenario::generate(2, &options).faults
        );
    }

    #[test]
    fn faults_on_one_resource_never_overlap_and_runs_outlast_the_liveness_deadline() {
        let options = Options::default();
        for seed in 0..500 {
            let s = Scenario::generate(seed, &options);
            assert!((2..=5).contains(&s.replicas()));
            assert!(s.duration >= options.min_duration);
            assert!(s.duration >= s.liveness_deadline + SETTLE_WINDOW);
            for f in &s.faults {
                assert!(f.heal >= f.at, "{f:?}");
                assert!(f.heal <= s.last_heal);
                if let FaultKind::ElectorCrash {
                    supervisor: Some(d),
                    ..
                } = f.kind
                {
                    assert!(f.at + d < f.heal, "restart before ExecStopPost: {f:?}");
                }
            }
            s.profile.timing().validate().expect("profiles are valid");
        }
    }

    #[test]
    fn without_breaking_assumptions_nothing_is_drawn_beyond_a_bound() {
        let options = Options {
            break_assumptions: false,
            ..Options::default()
        };
        for seed in 0..500 {
            let s = Scenario::generate(seed, &options);
            assert!(s.drift_beyond_bound().is_empty());
            assert_eq!(s.fence.outcome, FenceOutcome::Succeeds);
            for f in &s.faults {
                match f.kind {
                    FaultKind::NodeRestart { active_start, .. } => assert!(!active_start),
                    FaultKind::ElectorCrash { supervisor, .. } => {
                        let d = supervisor.expect("within bound: ExecStopPost runs");
                        assert!(d < s.profile.timing().restart_bound);
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn fences_and_persistent_faults_are_drawn_in_every_kind() {
        let options = Options::default();
        let mut outcomes = std::collections::BTreeSet::new();
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..500 {
            let s = Scenario::generate(seed, &options);
            outcomes.insert(s.fence.outcome.name());
            if s.fence.outcome == FenceOutcome::SucceedsLate {
                assert!(s.fence.delay >= Duration::from_secs(1) && s.fence.delay < FENCE_TIMEOUT);
            }
            if let Some(p) = &s.persistent {
                kinds.insert(p.kind.name());
                assert!(p.fallback < s.replicas());
                assert!(
                    s.liveness_deadline
                        >= p.at
                            + crate::checker::check::persistent_fault_bound(&s.profile.timing())
                );
                if p.quiet_after {
                    assert!(s.faults.iter().all(|f| f.at <= p.at), "{s:?}");
                }
            }
        }
        assert_eq!(outcomes.len(), 5, "{outcomes:?}");
        assert_eq!(kinds.len(), 4, "{kinds:?}");
    }

    #[test]
    fn mutation_names_round_trip() {
        for m in [
            MutationChoice::None,
            MutationChoice::NoSafetyMargin,
            MutationChoice::ResignBeforeStandbyConfirmed,
            MutationChoice::ResignWhenFenceStarts,
        ] {
            assert_eq!(MutationChoice::parse(m.name()), Some(m));
        }
        assert!(
            MutationChoice::ResignBeforeStandbyConfirmed
                .to_core()
                .resign_before_standby_confirmed
        );
    }
}

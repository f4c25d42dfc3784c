//! What a run produced and what became of it: the [`Outcome`] and its [`Verdict`], the
//! assumptions a run broke ([`Broken`]), and the persistent fault's check
//! ([`PersistentReport`]). The judging itself is in [`crate::checker::check`] (from the histories) and
//! [`crate::checker::judge`] (from the schedule and the world's samples); the text for people in
//! [`crate::seed::render`].

use crate::checker::check::Settled;
use crate::seed::schedule::{Scenario, secs};
use crate::seed::trace::Entry;
use elector_model::history::{DoubleSign, Overlap};
use elector_model::node::{Signature, Transition};
use std::time::Duration;

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
    /// etcd revoked the leader's lease early while the leader was cut off, and the leader had
    /// to fence its node (its admin endpoint failed): the fence runs at the lease deadline,
    /// which the activation delay does not cover (docs/safety.md, "etcd ends A's lease early").
    FencedAfterEarlyRevocation,
    /// Key custody: a node whose configuration held the operator's key (a standby is
    /// configured with its placeholder) was activated by hand: it signs from its own
    /// configuration, before or without its elector (docs/safety.md, key custody's
    /// assumptions).
    HandActivatedWithOperatorKey,
}

impl BrokenKind {
    pub fn name(self) -> &'static str {
        match self {
            BrokenKind::DriftBeyondBound => "drift beyond bound",
            BrokenKind::RestartBeyondBound => "restart beyond bound",
            BrokenKind::MisconfiguredActiveStart => "misconfigured active start",
            BrokenKind::UnstoppedAtLeaseExpiry => "fence did not stop node at lease expiry",
            BrokenKind::FencedAfterEarlyRevocation => "fenced after an early revocation",
            BrokenKind::HandActivatedWithOperatorKey => {
                "activated by hand with the operator key in its config"
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    pub kind: BrokenKind,
    pub detail: String,
    /// The replica whose assumption broke (its elector's clock, its supervisor, its node's
    /// configuration, its lease and fence).
    pub replica: usize,
    /// From when: what its replica's node signed before cannot be blamed on it.
    pub from: Duration,
}

impl Broken {
    /// Whether this broken assumption explains a safety failure of `replicas` (two nodes
    /// signing one height and round, or active at once) whose later part came at `at`: one of
    /// them is its replica, and it broke by then. Anything else in the run is judged as if
    /// every assumption had held.
    pub fn explains(&self, replicas: (usize, usize), at: Duration) -> bool {
        (self.replica == replicas.0 || self.replica == replicas.1) && self.from <= at
    }
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
    /// The property: every `(height, round)` two replicas signed with the operator key.
    pub double_signs: Vec<DoubleSign>,
    /// Its proxy: spans with two or more nodes active.
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
    /// Everything each node signed, across its process's restarts.
    pub signatures: Vec<Vec<Signature>>,
    /// The longest a node went on signing after `activate=false` reached it.
    pub longest_drain: Option<Drain>,
    pub trace: Vec<Entry>,
}

/// How many double signs a run's problems list one by one.
const SHOWN_DOUBLE_SIGNS: usize = 5;

/// When the later of a double sign's two signatures went out.
pub fn double_sign_time(d: &DoubleSign) -> Duration {
    d.first.1.max(d.second.1)
}

impl Outcome {
    /// No height and round signed by two replicas, and never two nodes active at once.
    pub fn safety_ok(&self) -> bool {
        self.double_signs.is_empty() && self.overlaps.is_empty()
    }

    /// Whether a broken assumption of the run explains this failure of `replicas` at `at`.
    fn explained(&self, replicas: (usize, usize), at: Duration) -> bool {
        self.broken.iter().any(|b| b.explains(replicas, at))
    }

    /// The double signs no broken assumption explains: violations, whatever else the run broke.
    pub fn unexplained_double_signs(&self) -> Vec<&DoubleSign> {
        self.double_signs
            .iter()
            .filter(|d| !self.explained(d.nodes, double_sign_time(d)))
            .collect()
    }

    /// The overlaps no broken assumption explains.
    pub fn unexplained_overlaps(&self) -> Vec<&Overlap> {
        self.overlaps
            .iter()
            .filter(|o| !self.explained(o.nodes, o.until))
            .collect()
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
        } else if !self.unexplained_double_signs().is_empty()
            || !self.unexplained_overlaps().is_empty()
        {
            Verdict::Violation
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
        for d in self.double_signs.iter().take(SHOWN_DOUBLE_SIGNS) {
            let explained = if self.explained(d.nodes, double_sign_time(d)) {
                " (explained by a broken assumption)"
            } else {
                ""
            };
            problems.push(format!(
                "DOUBLE SIGN: height {} round {} signed by node-{} ({} at {}) and node-{} ({} at {}){explained}",
                d.height,
                d.round,
                d.nodes.0,
                d.first.0.as_str(),
                secs(d.first.1),
                d.nodes.1,
                d.second.0.as_str(),
                secs(d.second.1),
            ));
        }
        if self.double_signs.len() > SHOWN_DOUBLE_SIGNS {
            let unexplained = self.unexplained_double_signs().len();
            problems.push(format!(
                "DOUBLE SIGN: {} more (heights up to {}), {unexplained} in all unexplained",
                self.double_signs.len() - SHOWN_DOUBLE_SIGNS,
                self.double_signs
                    .iter()
                    .map(|d| d.height)
                    .max()
                    .unwrap_or_default(),
            ));
        }
        for o in &self.overlaps {
            let explained = if self.explained(o.nodes, o.until) {
                " (explained by a broken assumption)"
            } else {
                ""
            };
            problems.push(format!(
                "SAFETY: node-{} and node-{} active at once from {} to {} ({}){explained}",
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

/// How long a node went on signing after `activate=false` reached it (while it was commanded
/// active): from the command's arrival at `at` to its last signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drain {
    pub node: usize,
    pub at: Duration,
    pub length: Duration,
}

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
    /// comparable with [`crate::checker::check::persistent_fault_bound`].
    pub settled_at_start: bool,
    /// With [`Expectation::Active`]: from the fault's start to the start of the stretch in
    /// which another node was active through the window.
    pub recovery: Option<Duration>,
    /// With [`Expectation::Stuck`]: the samples at which the replica led, its stuck report
    /// checked.
    pub stuck_checked: usize,
    pub problem: Option<String>,
}

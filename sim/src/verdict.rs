//! What a run produced and what became of it: the [`Outcome`] and its [`Verdict`], the
//! assumptions a run broke ([`Broken`]), and the persistent fault's check
//! ([`PersistentReport`]). The judging itself is in [`crate::check`] (from the histories) and
//! [`crate::judge`] (from the schedule and the world's samples); the text for people in
//! [`crate::render`].

use crate::check::Settled;
use crate::schedule::{Scenario, secs};
use crate::trace::Entry;
use elector_model::history::Overlap;
use elector_model::node::Transition;
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
}

impl BrokenKind {
    pub fn name(self) -> &'static str {
        match self {
            BrokenKind::DriftBeyondBound => "drift beyond bound",
            BrokenKind::RestartBeyondBound => "restart beyond bound",
            BrokenKind::MisconfiguredActiveStart => "misconfigured active start",
            BrokenKind::UnstoppedAtLeaseExpiry => "fence did not stop node at lease expiry",
            BrokenKind::FencedAfterEarlyRevocation => "fenced after an early revocation",
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

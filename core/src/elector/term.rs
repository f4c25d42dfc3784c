//! Our leadership term: how it begins (rule `activation_gate`) and when a leader gives way
//! because its node cannot serve (rules `unready_leader`, `give_way_when_node_lost`).

use super::Elector;
use super::Readiness;
use super::handover::Handover;
use super::lease::Candidacy;
use crate::Instant;
use crate::config::Timing;
use crate::protocol::{CandidateId, Event, Observation};
use std::time::Duration;

/// Our current leadership term: our key is first in the latest observation.
#[derive(Clone, Debug)]
pub(super) struct Term {
    pub(super) id: CandidateId,
    /// Activation is allowed from here on (rule `activation_gate`).
    pub(super) activation_not_before: Instant,
    /// Once passed, every earlier leader's node is known to be standby, so our own clean
    /// resignation may tell the next leader to skip the delay.
    pub(super) gate_passed: bool,
    /// Why we lead and how the gate was set, for the activation's log line.
    pub(super) reason: String,
    /// An `activate=true` call failed or timed out in this term. It may still land later (the
    /// node's server can finish the handler after we gave up), so this term never writes a
    /// handover record (rule `handover_record`).
    pub(super) activation_failed: bool,
    /// The last time the node was shown active by a read, or when this term first commanded
    /// it active (rule `give_way_when_node_lost`). `None` until the first activation.
    pub(super) active_evidence_at: Option<Instant>,
    /// The node was found lost in this term (reported once).
    pub(super) node_lost: Option<String>,
    /// The node read standby although commanded active, and has not read active since
    /// (reported once per such episode).
    pub(super) standby_unexpected: bool,
    /// Re-activating after such a read waits until then, and waits twice as long each time
    /// it happens again without the node ever reading active in between (from
    /// `node_check_interval` up to `node_lost_after`): a node that refuses activation is not
    /// asked every few hundred milliseconds, and the role does not flap.
    pub(super) reactivate_not_before: Instant,
    pub(super) reactivate_backoff: Duration,
}

impl Term {
    /// Its part of the next timeout: the activation gate, the end of a re-activation backoff,
    /// and the instant the node counts as lost (rule `give_way_when_node_lost`).
    pub(super) fn wake_times(&self, timing: &Timing, at: &mut Vec<Instant>) {
        if !self.gate_passed {
            at.push(self.activation_not_before);
        }
        if self.standby_unexpected {
            at.push(self.reactivate_not_before);
        }
        if let Some(evidence) = self.active_evidence_at
            && self.node_lost.is_none()
        {
            at.push(evidence + timing.node_lost_after);
        }
    }
}

impl Elector {
    /// A view of the election read from etcd: etcd answers, and the view is judged.
    pub(super) fn on_observed_from_etcd(&mut self, observation: Observation) {
        self.etcd_answered();
        self.on_observed(observation);
    }

    pub(super) fn on_observed(&mut self, observation: Observation) {
        self.report_exclusion(&observation);
        if let Candidacy::Created(ours) = self.candidacy {
            let present = observation.candidates.iter().any(|c| c.id == ours);
            if !present && observation.revision >= ours.create_revision {
                self.view = Some(observation);
                if self.leaving.resigning.is_some() {
                    // Our own resignation deleted it; its answer finishes the job.
                    self.candidacy = Candidacy::None;
                    self.term = None;
                } else {
                    self.lose_lease("our candidate key was deleted");
                }
                return;
            }
        }
        let ours = self.candidate();
        let first = observation.candidates.first().map(|c| c.id);
        match (first, ours) {
            (Some(first), Some(ours)) if first == ours => {
                if self.term.as_ref().map(|t| t.id) != Some(ours) {
                    self.begin_term(ours, &observation);
                }
            }
            (first, ours) => {
                self.term = None;
                // Remember the leader only when it is the one candidate ahead of
                // our key. With more ahead (or our key absent, when others may still be created
                // ahead of it) another may lead and crash between it and us, unseen if the
                // watch skips changes; a record naming the leader seen earlier then proves
                // nothing about the term that ended just before ours.
                let our_position =
                    ours.and_then(|o| observation.candidates.iter().position(|c| c.id == o));
                self.previous_leader = first.filter(|_| our_position == Some(1));
            }
        }
        self.handover_request(&observation);
        self.view = Some(observation);
    }

    /// Our key came first: a new term, its activation gate set by rule `activation_gate`.
    pub(super) fn begin_term(&mut self, id: CandidateId, observation: &Observation) {
        let (delay, clean) = self.activation_gate(observation);
        let reason = if clean {
            format!(
                "our key is first; the previous leader handed over cleanly: activating once its \
                 last slot is past ({:.1}s)",
                delay.as_secs_f64()
            )
        } else {
            format!(
                "our key is first; activation delay {:.1}s (previous leader not known standby)",
                delay.as_secs_f64()
            )
        };
        self.why = reason.clone();
        self.term = Some(Term {
            id,
            activation_not_before: self.now + delay,
            gate_passed: false,
            reason,
            activation_failed: false,
            active_evidence_at: None,
            node_lost: None,
            standby_unexpected: false,
            reactivate_not_before: self.now,
            reactivate_backoff: self.timing().node_check_interval,
        });
    }

    /// Rule `activation_gate`: how long a new leader waits before activating, and whether its
    /// predecessor handed over cleanly. It waits `activation_delay`, long enough for a dead or
    /// hung previous leader's node to be forced standby and drain (`restart_bound +
    /// drain_bound`, then the slot's tolerated overtime, with drift), and for a previous leader
    /// cut off from etcd when etcd ended its lease early to reach its own step-down deadline
    /// and drain (`activation_delay_covers_early_revocation`). When the observation that made
    /// it leader carries a handover record naming the leader it saw before, that leader
    /// confirmed its node standby by a read and had itself passed the gate, so no earlier node
    /// can still be active: it waits only for that leader's last slot (rule
    /// `wait_out_last_slot`).
    fn activation_gate(&self, observation: &Observation) -> (Duration, bool) {
        let clean = match (&observation.handover_record, self.previous_leader) {
            (Some(record), Some(previous)) if record.from == previous => Some(record),
            _ => None,
        };
        if let Some(record) = clean {
            return (self.wait_out_last_slot(record.key_withdrawn), true);
        }
        #[cfg(any(test, feature = "mutation"))]
        if self
            .settings
            .mutation
            .activation_delay_ignores_early_revocation
        {
            return (self.timing().dead_leader_activation_delay(), false);
        }
        (self.timing().activation_delay, false)
    }

    /// Rule `wait_out_last_slot`: a successor after a clean handover activates only once the
    /// last slot its predecessor's node may still sign for is more than the tolerated
    /// overtime in the past ([`Timing::handover_delay`]). iotex-core signs a slot's proposal
    /// before it checks whether it is active, broadcasts it after `activate=false` was
    /// accepted, and a node that prepares within the tolerated overtime of a slot's start signs
    /// that slot's height and round: without the wait, a clean handover signs one twice. When
    /// the record says the predecessor's key was withdrawn (key custody), its node signed
    /// nothing after the withdrawal, and the wait is the slot clearance alone
    /// ([`Timing::handover_delay_after_withdrawal`]).
    pub(super) fn wait_out_last_slot(&self, key_withdrawn: bool) -> Duration {
        #[cfg(any(test, feature = "mutation"))]
        if self.settings.mutation.handover_skips_slot_wait {
            return Duration::ZERO;
        }
        if key_withdrawn {
            // Key custody: the node signed nothing after the withdrawal's answer, which came
            // before the record; its last slot started by then.
            return self.timing().handover_delay_after_withdrawal();
        }
        self.timing().handover_delay()
    }

    /// Rule `activation_gate`, passed: from here on every earlier leader's node is standby.
    pub(super) fn pass_activation_gate(&mut self) {
        let now = self.now;
        if let Some(term) = self.term.as_mut()
            && !term.gate_passed
            && now >= term.activation_not_before
        {
            term.gate_passed = true;
        }
    }

    /// Rule `unready_leader`: a leader whose node stays unready hands over, so a ready standby
    /// takes over without waiting for the lease to expire; unless nobody else is a candidate,
    /// as stepping down would gain nothing.
    pub(super) fn unready_leader(&mut self) {
        if self.probe.readiness != Readiness::Unready
            || self.term.is_none()
            || self.leaving.handover.is_some()
        {
            return;
        }
        if self.view.as_ref().is_some_and(|v| v.candidates.len() > 1) {
            self.why = "handing over: node unready".into();
            self.leaving.handover = Some(Handover {
                to: None,
                reason: "node unready".into(),
                started: self.now,
                committed: true,
            });
        }
    }

    /// Rule `give_way_when_node_lost`: a leader whose node has not been shown active by a read
    /// for `node_lost_after` (since its first `activate=true` of the term, or since the last
    /// read that said active) gives way, so that a healthy replica signs instead: the node
    /// died, its admin endpoint broke, or it refuses to activate. It hands over like an unready
    /// leader, and so gives the lead away only once the node is proven standby (rule
    /// `lead_may_be_given_away`); with nobody to hand over to it keeps trying and is reported
    /// stuck (rule `report_stuck`).
    pub(super) fn give_way_when_node_lost(&mut self) {
        let lost_after = self.timing().node_lost_after;
        let now = self.now;
        let Some(term) = self.term.as_mut() else {
            return;
        };
        let Some(evidence) = term.active_evidence_at else {
            return;
        };
        if now < evidence + lost_after {
            return;
        }
        if term.node_lost.is_none() {
            let why = match (&self.node.last_failure, self.node.last_read) {
                (Some(failure), _) => failure.clone(),
                (None, Some(false)) => "it reads standby after activate=true".into(),
                (None, _) => "no read said active".into(),
            };
            let reason = format!(
                "node not shown active for {:.1}s: {why}",
                now.saturating_duration_since(evidence).as_secs_f64()
            );
            term.node_lost = Some(reason.clone());
            self.emit_event(Event::NodeLost { reason });
        }
        if self
            .leaving
            .handover
            .as_ref()
            .is_some_and(|handover| !handover.committed)
        {
            // A handover still waiting for its successor to be next in line (an operator's
            // named target, for up to `handover_timeout`) must not hold up a leader whose node
            // is lost: any candidate may sign now, and with none the leader must report itself
            // stuck, which a pending handover would hide.
            self.leaving.handover = None;
        }
        if self.leaving.handover.is_some() || self.leaving.shutdown_deadline.is_some() {
            return;
        }
        if self.view.as_ref().is_some_and(|v| v.candidates.len() > 1) {
            let reason = self.node_lost().unwrap_or_default().to_string();
            self.why = format!("handing over: node lost ({reason})");
            self.leaving.handover = Some(Handover {
                to: None,
                reason: format!("node lost ({reason})"),
                started: now,
                committed: true,
            });
        }
    }
}

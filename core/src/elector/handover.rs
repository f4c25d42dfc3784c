//! Leaving the election: an operator's handover (rule `handover_request`), the record that
//! lets the successor skip its delay (rule `handover_record`), the unready candidate's
//! withdrawal (rule `withdraw_when_unready`), the resignation itself, and the exit on SIGTERM
//! (rule `shutdown`).

use super::Elector;
use super::Readiness;
use super::lease::Lease;
use crate::Instant;
use crate::config::Timing;
use crate::protocol::{CandidateId, Command, Event, HandoverRecord, LeaseId, Observation};

/// A handover under way: we lead and want the next candidate (or a named one) to.
#[derive(Clone, Debug)]
pub(super) struct Handover {
    pub(super) to: Option<String>,
    pub(super) reason: String,
    pub(super) started: Instant,
    /// The successor is in place and we are demoting.
    pub(super) committed: bool,
}

/// Our resignation: key deletion (with the record and the request's deletion) and lease
/// revocation, retried until etcd answers.
#[derive(Clone, Debug)]
pub(super) struct Resigning {
    pub(super) lease: LeaseId,
    pub(super) candidate: Option<CandidateId>,
    pub(super) record: Option<HandoverRecord>,
    pub(super) clear_request: Option<i64>,
    pub(super) in_flight: bool,
    pub(super) retry_at: Instant,
    /// After resigning, campaign again (handover, stepping aside) rather than wait.
    pub(super) done: bool,
}

/// Everything about leaving the election: a handover, a resignation, a shutdown.
#[derive(Clone, Debug, Default)]
pub(super) struct Leaving {
    pub(super) handover: Option<Handover>,
    /// The mod revision of the last operator's handover request acted on.
    pub(super) handled_request: Option<i64>,
    pub(super) resigning: Option<Resigning>,
    /// SIGTERM: the end of the shutdown grace (rule `shutdown`).
    pub(super) shutdown_deadline: Option<Instant>,
}

impl Leaving {
    /// Its part of the next timeout: a resignation's retry, the end of the shutdown grace, and
    /// the end of the wait for a successor.
    pub(super) fn wake_times(&self, timing: &Timing, at: &mut Vec<Instant>) {
        if let Some(r) = &self.resigning
            && !r.in_flight
        {
            at.push(r.retry_at);
        }
        if let Some(deadline) = self.shutdown_deadline {
            at.push(deadline);
        }
        if let Some(h) = &self.handover {
            at.push(h.started + timing.handover_timeout);
        }
    }
}

impl Elector {
    /// Rule `handover_request`: an operator asked for a handover. The leader hands over once
    /// its successor is next in line; a candidate ahead of a named target steps aside (it
    /// resigns and campaigns again, behind the target).
    pub(super) fn handover_request(&mut self, observation: &Observation) {
        let Some(request) = observation.handover_request.clone() else {
            return;
        };
        if self.leaving.handled_request == Some(request.revision) {
            return;
        }
        let Some(ours) = self.candidate() else {
            return;
        };
        let position = |id: CandidateId| observation.candidates.iter().position(|c| c.id == id);
        let our_position = position(ours);
        if our_position == Some(0) {
            self.leaving.handled_request = Some(request.revision);
            if request.to.as_deref() != Some(self.settings.value.as_str()) {
                self.request_handover(request.to, "operator request".into());
            }
            return;
        }
        let Some(target) = request.to.as_deref() else {
            return;
        };
        if target == self.settings.value {
            return;
        }
        let target_position = observation
            .candidates
            .iter()
            .position(|c| c.value == target);
        if let (Some(ours), Some(theirs)) = (our_position, target_position)
            && ours < theirs
            && self.leaving.resigning.is_none()
            && self.start_resign(None)
        {
            self.leaving.handled_request = Some(request.revision);
            self.why = format!("stepping aside for handover to {target}");
        }
    }

    /// Starts a handover while we lead (not one to ourselves, not a second one).
    pub(super) fn request_handover(&mut self, to: Option<String>, reason: String) {
        let to_us = to.as_deref() == Some(self.settings.value.as_str());
        if self.term.is_none() || self.leaving.handover.is_some() || to_us {
            return;
        }
        self.leaving.handover = Some(Handover {
            to,
            reason,
            started: self.now,
            committed: false,
        });
    }

    /// A handover waits for its successor to be next in line (up to `handover_timeout`),
    /// then resigns once rule `lead_may_be_given_away` allows.
    pub(super) fn advance_handover(&mut self) {
        let Some(handover) = self.leaving.handover.as_mut() else {
            return;
        };
        if self.term.is_none() && self.leaving.resigning.is_none() && !handover.committed {
            self.leaving.handover = None;
            return;
        }
        if !handover.committed {
            let next = self.view.as_ref().and_then(|v| v.candidates.get(1));
            let successor_ready = match (&handover.to, next) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(to), Some(next)) => &next.value == to,
            };
            if successor_ready {
                handover.committed = true;
                self.why = format!("handing over: {}", handover.reason);
            } else if self.now >= handover.started + self.settings.timing.handover_timeout {
                self.why = format!(
                    "handover ({}) abandoned: no successor{} in line",
                    handover.reason,
                    handover
                        .to
                        .as_ref()
                        .map(|t| format!(" {t}"))
                        .unwrap_or_default()
                );
                self.leaving.handover = None;
                return;
            }
        }
        let committed = handover.committed;
        // Rule `lead_may_be_given_away` decides when; `handover_record` whether the successor
        // may skip its activation delay.
        if committed && self.leaving.resigning.is_none() {
            let record = self.handover_record();
            self.start_resign(record);
        }
    }

    /// Rule `handover_record`: written only when our node is confirmed standby *by a read* (a
    /// fence's success says the node is stopped, not when it stopped), we passed the
    /// activation gate (so no earlier leader's node can be active either), and no
    /// `activate=true` of this term failed or timed out (it could still land after the read).
    pub(super) fn handover_record(&self) -> Option<HandoverRecord> {
        let term = self.term.as_ref()?;
        let withdrawn = self.key_withdrawal_confirmed();
        let confirmed = self.standby_confirmed_by_read() || withdrawn;
        (term.gate_passed && confirmed && !term.activation_failed).then(|| HandoverRecord {
            from: term.id,
            value: self.settings.value.clone(),
            key_withdrawn: withdrawn,
        })
    }

    /// Rule `excluded_replica`: an operator excluded this replica (`elector exclude`, Patroni's
    /// `nofailover`). It does not campaign (rule `campaign_allowed`); a replica that does not
    /// lead withdraws its lease and key; a leader hands over cleanly at once, whether or not
    /// a successor is in line (excluding the only replica leaves nobody leading: the operator
    /// asked for it). Both go through rule `lead_may_be_given_away`: the key is deleted only
    /// with the node proven standby, and a leader whose node cannot be proven standby keeps
    /// the lead and is reported stuck, exactly like any handover that cannot complete.
    pub(super) fn excluded_replica(&mut self) {
        if !self.excluded() || self.leaving.shutdown_deadline.is_some() {
            return;
        }
        if self.term.is_some() {
            match self.leaving.handover.as_mut() {
                Some(handover) if handover.committed => {}
                Some(handover) => {
                    handover.committed = true;
                    handover.reason = format!("replica excluded; was: {}", handover.reason);
                    self.why = format!("handing over: {}", handover.reason);
                }
                None => {
                    self.why = "handing over: replica excluded".into();
                    self.leaving.handover = Some(Handover {
                        to: None,
                        reason: "replica excluded".into(),
                        started: self.now,
                        committed: true,
                    });
                }
            }
            return;
        }
        if self.leaving.resigning.is_none() && self.lease().is_some() && self.start_resign(None) {
            self.why = "withdrawing: replica excluded".into();
        }
    }

    /// Tells the operator, once per change, that a read found this replica excluded or
    /// included again (rule `excluded_replica`), before the read replaces the last one.
    pub(super) fn report_exclusion(&mut self, observation: &Observation) {
        let before = self.view.as_ref().and_then(|v| v.excluded.as_ref());
        match (before, &observation.excluded) {
            (None, Some(exclusion)) => {
                self.why = format!("replica excluded by {}", exclusion.by);
                let exclusion = exclusion.clone();
                self.emit_event(Event::Excluded { exclusion });
            }
            (Some(_), None) => {
                self.why = "replica included again: campaigning".into();
                self.emit_event(Event::Included);
            }
            _ => {}
        }
    }

    /// The latest read of the election says an operator excluded this replica.
    pub(super) fn excluded(&self) -> bool {
        self.view.as_ref().is_some_and(|v| v.excluded.is_some())
    }

    /// Rule `withdraw_when_unready`: a candidate that is not leading and whose node is unready
    /// withdraws, so it cannot become leader with a node that cannot serve.
    pub(super) fn withdraw_when_unready(&mut self) {
        if self.leaving.resigning.is_none()
            && self.term.is_none()
            && self.probe.readiness == Readiness::Unready
            && self.candidate().is_some()
            && self.start_resign(None)
        {
            self.why = "withdrawing: node unready".into();
        }
    }

    /// The resignation: a shutdown starts one (with a record if rule `handover_record`
    /// allows), and every attempt is sent only with the node proven standby.
    pub(super) fn drive_resign(&mut self) {
        if self.leaving.resigning.is_none()
            && self.leaving.shutdown_deadline.is_some()
            && let Lease::Held { .. } = self.lease.status
        {
            let record = self.handover_record();
            self.start_resign(record);
        }
        let now = self.now;
        // Every attempt needs the proof, not only the first: a retry after a failure may come
        // after the node was found active again (it restarted active).
        let proven = self.lead_may_be_given_away();
        if let Some(r) = self.leaving.resigning.as_mut()
            && !r.in_flight
            && now >= r.retry_at
            && proven
        {
            r.in_flight = true;
            let command = Command::Resign {
                lease: r.lease,
                candidate: r.candidate,
                record: r.record.clone(),
                clear_request: r.clear_request,
            };
            self.emit(command);
        }
    }

    /// Starts leaving the election, if rule `lead_may_be_given_away` allows it; says whether
    /// it did. A leader's resignation also deletes the pending handover request (guarded by
    /// its revision), whether or not it writes a record: it has been acted on.
    pub(super) fn start_resign(&mut self, record: Option<HandoverRecord>) -> bool {
        let Lease::Held { id, .. } = self.lease.status else {
            return false;
        };
        if !self.lead_may_be_given_away() {
            return false;
        }
        let clear_request = match (&self.term, &self.view) {
            (Some(_), Some(view)) => view.handover_request.as_ref().map(|r| r.revision),
            _ => None,
        };
        self.leaving.resigning = Some(Resigning {
            lease: id,
            candidate: self.candidate(),
            record,
            clear_request,
            in_flight: false,
            retry_at: self.now,
            done: false,
        });
        true
    }

    /// etcd confirmed our resignation: the lease and the term are gone.
    pub(super) fn on_resigned(&mut self, lease: LeaseId) {
        let Some(resigning) = self.leaving.resigning.as_mut().filter(|r| r.lease == lease) else {
            return;
        };
        resigning.done = true;
        resigning.in_flight = false;
        if self.lease() == Some(lease) {
            self.drop_lease();
        }
        self.leaving.handover = None;
        self.leaving.resigning = None;
        self.lease.status = Lease::None { retry_at: self.now };
        if self.memory.remembered.is_some_and(|r| r.id.lease == lease) {
            self.memory.remembered = None;
            self.emit(Command::RememberTerm { term: None });
        }
    }

    /// etcd did not confirm our resignation: try again soon (a quarter of a keep-alive
    /// interval), well within the lease.
    pub(super) fn on_resign_failed(&mut self, lease: LeaseId, reason: String) {
        let retry_at = self.now + self.timing().keepalive_interval / 4;
        if let Some(r) = self.leaving.resigning.as_mut().filter(|r| r.lease == lease) {
            r.in_flight = false;
            r.retry_at = retry_at;
            self.why = format!("etcd: resign failed: {reason}");
        }
    }

    /// The process was asked to stop (a signal): rule `shutdown` takes it from here, within the
    /// shutdown grace.
    pub(super) fn on_shutdown_requested(&mut self) {
        if self.leaving.shutdown_deadline.is_none() {
            self.leaving.shutdown_deadline = Some(self.now + self.timing().shutdown_grace());
            self.why = "shutdown requested".into();
        }
    }

    /// Rule `shutdown`: exit once the node is proven standby and we left the election, or, with
    /// the node proven standby, when the shutdown grace ran out and no resignation is in flight
    /// (etcd unreachable: the lease then expires by itself, which is safe); exit 0 when a read confirmed standby, 1 when
    /// only the fence's success did. While we hold a lease and the node is not proven standby,
    /// we never exit: the lease stays alive, standby is commanded again and again, the fence
    /// runs from the end of the grace and is repeated while it fails (rule `fence`), and rule
    /// `report_stuck` says so. Holding no lease there is nothing to give away: once the grace
    /// ran out and the fence had its say, we exit 1 (and `force-standby` fences again).
    pub(super) fn shutdown(&mut self) {
        let Some(deadline) = self.leaving.shutdown_deadline else {
            return;
        };
        let proven = self.lead_may_be_given_away();
        // A term of ours still to be ended in etcd (it lapsed in an outage) keeps us, with the
        // node proven standby, until the grace runs out: ending it spares the successor the
        // lease's expiry. Without the proof it cannot be ended anyway.
        let holds_lease = !matches!(self.lease.status, Lease::None { .. })
            || self.leaving.resigning.is_some()
            || (proven && self.memory.dead.is_some());
        let out_of_time = self.now >= deadline;
        if out_of_time && !proven && !self.fencing.fired {
            self.fencing.deadline = Some(self.now);
            self.fence();
        }
        // Out of time with the node proven standby, a resignation still in flight is given
        // its answer (at most one etcd request timeout): the successor is spared the expiry.
        let resign_in_flight = self.leaving.resigning.as_ref().is_some_and(|r| r.in_flight)
            || self.memory.dead.as_ref().is_some_and(|d| d.in_flight);
        let exit = if proven && (!holds_lease || (out_of_time && !resign_in_flight)) {
            Some(
                if self.node.standby_confirmed || self.key_withdrawal_confirmed() {
                    (0, "shut down with the node confirmed standby".to_string())
                } else {
                    (
                        1,
                        format!(
                            "shut down after the fence reported success ({}); standby was not \
                         confirmed by a read",
                            self.fencing.detail
                        ),
                    )
                },
            )
        } else if !proven && !holds_lease && out_of_time && self.fencing.failures > 0 {
            Some((
                1,
                format!(
                    "shut down holding no lease with the node NOT proven standby: the fence \
                     failed ({})",
                    self.fencing.detail
                ),
            ))
        } else {
            None
        };
        if let Some((code, why)) = exit {
            self.stopped = true;
            self.why = why;
            self.emit(Command::Exit { code });
        }
    }
}

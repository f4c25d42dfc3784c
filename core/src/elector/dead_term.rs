//! A term of ours that lives on in etcd without a process keeping it (rule `end_dead_term`):
//! the one a crashed previous process left, or our own whose lease we gave up while etcd was
//! unreachable; what to remember of our own term across a crash, and ending such a term early.

use super::Elector;
use super::lease::Candidacy;
use crate::Instant;
use crate::protocol::{
    CandidateId, Command, Event, HandoverRecord, LeaseId, Observation, RememberedTerm,
};

/// Rule `end_dead_term`: the dead term of a crashed previous process of this elector, or our
/// own lapsed one.
#[derive(Clone, Debug)]
pub(super) struct DeadTerm {
    pub(super) term: RememberedTerm,
    /// The ending in flight writes a handover record.
    pub(super) record: bool,
    pub(super) in_flight: bool,
    pub(super) retry_at: Instant,
}

/// Rule `end_dead_term`, the decision alone (also used by `elector force-standby`): the term
/// `previous`, which this replica's previous process remembered as its own, may be ended early
/// (key deleted, lease revoked) once this replica's node is confirmed standby *by a read*, or,
/// with key custody, the operator's key is confirmed withdrawn from it, if
/// the latest observation still shows that very key (lease and create revision) with our
/// value. The handover record, which lets the next leader skip its activation delay, is
/// written only if that term may claim a clean end: it passed its activation gate (so every
/// earlier leader's node is standby), none of its `activate=true` calls failed (none can land
/// late), and it leads (a record names the leader the successor saw). Never on a value alone:
/// two electors started with one `--value` must not end each other's terms, and the lease id
/// in `--state-dir` is what proves the term was ours.
pub fn end_dead_term(
    previous: &RememberedTerm,
    value: &str,
    observation: &Observation,
    standby_confirmed_by_read: bool,
    key_withdrawal_confirmed: bool,
) -> Option<Option<HandoverRecord>> {
    if !standby_confirmed_by_read && !key_withdrawal_confirmed {
        return None;
    }
    let position = observation
        .candidates
        .iter()
        .position(|c| c.id == previous.id && c.value == value)?;
    let record = (previous.record_allowed && position == 0).then(|| HandoverRecord {
        from: previous.id,
        value: value.to_string(),
        key_withdrawn: key_withdrawal_confirmed,
    });
    Some(record)
}

/// What this elector remembers across a crash of its process (rule `end_dead_term`).
#[derive(Clone, Debug)]
pub(super) struct TermMemory {
    /// A term of ours no process keeps alive (left by a crashed previous process, or lapsed in
    /// this one), until it is ended or gone.
    pub(super) dead: Option<DeadTerm>,
    /// What we last asked the shell to keep in `--state-dir`.
    pub(super) remembered: Option<RememberedTerm>,
}

impl TermMemory {
    pub(super) fn new(previous: Option<RememberedTerm>, now: Instant) -> Self {
        TermMemory {
            dead: previous.map(|term| DeadTerm {
                term,
                record: false,
                in_flight: false,
                retry_at: now,
            }),
            remembered: previous,
        }
    }

    /// Its part of the next timeout: the retry of a failed ending.
    pub(super) fn wake_times(&self, at: &mut Vec<Instant>) {
        if let Some(dead) = &self.dead
            && !dead.in_flight
        {
            at.push(dead.retry_at);
        }
    }
}

impl Elector {
    /// An etcd answer about the dead term's lease, not our current one.
    pub(super) fn is_dead_term(&self, lease: LeaseId) -> bool {
        self.memory
            .dead
            .as_ref()
            .is_some_and(|d| d.in_flight && d.term.id.lease == lease)
    }

    /// etcd did not end the dead term: try again a keep-alive interval later.
    pub(super) fn on_dead_term_resign_failed(&mut self) {
        let retry_at = self.now + self.timing().keepalive_interval;
        if let Some(dead) = self.memory.dead.as_mut() {
            dead.in_flight = false;
            dead.retry_at = retry_at;
        }
    }

    /// The dead term is ended: forget it, here and in `--state-dir`.
    pub(super) fn on_dead_term_ended(&mut self) {
        let Some(dead) = self.memory.dead.take() else {
            return;
        };
        self.emit_event(Event::DeadTermEnded {
            id: dead.term.id,
            record: dead.record,
        });
        if self.memory.remembered == Some(dead.term) {
            self.memory.remembered = None;
            self.emit(Command::RememberTerm { term: None });
        }
    }

    /// Rule `end_dead_term`, for a term of this process: we gave up our lease at its deadline,
    /// or etcd said it is gone, while our key may still stand in etcd (an outage: etcd keeps
    /// a lease it could not expire, and resets it on restart). An interrupted resignation would
    /// otherwise be lost with the lease, and the next leader would wait for the key to expire
    /// and then its activation delay. The term is ended like a crashed process's: once the
    /// node is confirmed standby by a read and etcd answers, that exact key is deleted (guarded
    /// by its create revision) and the lease revoked, with a handover record if the term may
    /// claim a clean end.
    pub(super) fn adopt_lapsed_term(&mut self, id: CandidateId) {
        if self.memory.dead.is_some() {
            return;
        }
        let record_allowed = self
            .term
            .as_ref()
            .is_some_and(|t| t.id == id && t.gate_passed && !t.activation_failed);
        self.memory.dead = Some(DeadTerm {
            term: RememberedTerm { id, record_allowed },
            record: false,
            in_flight: false,
            retry_at: self.now,
        });
    }

    /// Rule `end_dead_term`, applied: a term of ours that no process keeps (a restarted
    /// elector's previous one, or our own lapsed one) is ended as soon as the node is
    /// confirmed standby by a read, instead of letting the next leader wait for the lease to
    /// expire and then its activation delay. Once the key is gone (ended, expired, or never
    /// there) nothing is left to do.
    pub(super) fn end_dead_term_in_etcd(&mut self) {
        let Some(dead) = &self.memory.dead else {
            return;
        };
        let Some(view) = &self.view else {
            return;
        };
        if dead.in_flight || self.now < dead.retry_at {
            return;
        }
        if !view.candidates.iter().any(|c| c.id == dead.term.id) {
            // Expired or deleted already; our own new candidacy is never taken for it.
            self.memory.dead = None;
            return;
        }
        let read = self.standby_confirmed_by_read();
        let withdrawn = self.key_withdrawal_confirmed();
        let Some(record) = end_dead_term(&dead.term, &self.settings.value, view, read, withdrawn)
        else {
            return;
        };
        let id = dead.term.id;
        if let Some(dead) = self.memory.dead.as_mut() {
            dead.in_flight = true;
            dead.record = record.is_some();
        }
        self.emit(Command::Resign {
            lease: id.lease,
            candidate: Some(id),
            record,
            clear_request: None,
        });
    }

    /// Rule `end_dead_term`, its memory: tells the shell what to keep in `--state-dir` whenever
    /// our candidacy or what its end may claim changes. It never claims more than is true: a
    /// record is allowed only from the passing of the activation gate on, and not after a
    /// failed `activate=true`.
    pub(super) fn remember_term(&mut self) {
        let Candidacy::Created(id) = self.candidacy else {
            return;
        };
        let record_allowed = self
            .term
            .as_ref()
            .is_some_and(|t| t.id == id && t.gate_passed && !t.activation_failed);
        let term = Some(RememberedTerm { id, record_allowed });
        if self.memory.remembered != term {
            self.memory.remembered = term;
            self.emit(Command::RememberTerm { term });
        }
    }
}

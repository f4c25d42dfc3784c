//! The term a crashed previous process of this elector left in etcd (rule `end_dead_term`):
//! what to remember of our own term across a crash, and ending the dead one early.

use super::Elector;
use super::lease::Candidacy;
use crate::Instant;
use crate::protocol::{Command, Event, HandoverRecord, LeaseId, Observation, RememberedTerm};

/// Rule `end_dead_term`: the dead term of a crashed previous process of this elector.
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
/// (key deleted, lease revoked) once this replica's node is confirmed standby *by a read*, if
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
) -> Option<Option<HandoverRecord>> {
    if !standby_confirmed_by_read {
        return None;
    }
    let position = observation
        .candidates
        .iter()
        .position(|c| c.id == previous.id && c.value == value)?;
    let record = (previous.record_allowed && position == 0).then(|| HandoverRecord {
        from: previous.id,
        value: value.to_string(),
    });
    Some(record)
}

/// What this elector remembers across a crash of its process (rule `end_dead_term`).
#[derive(Clone, Debug)]
pub(super) struct TermMemory {
    /// A term of ours left by a crashed previous process, until it is ended or gone.
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

    /// Rule `end_dead_term`, applied: a restarted elector whose previous process died leading
    /// (or as a candidate) ends that term as soon as its node is confirmed standby by a read,
    /// instead of letting the next leader wait for the lease to expire and then its activation
    /// delay. Once the key is gone (ended, expired, or never there) nothing is left to do.
    pub(super) fn end_dead_term_on_start(&mut self) {
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
        let confirmed = self.standby_confirmed_by_read();
        let Some(record) = end_dead_term(&dead.term, &self.settings.value, view, confirmed) else {
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

//! The lease, its keep-alives and our candidate key: rules `lease_deadline`,
//! `step_down_deadline` and `campaign_allowed`, and what losing the lease lets go of.

use super::{Elector, Readiness};
use crate::Instant;
use crate::config::Timing;
use crate::protocol::{CandidateId, Command, Event, LeaseId};
use std::time::Duration;

/// First wait before retrying etcd after a failure; doubles up to
/// [`Timing::etcd_retry_max`].
pub(super) const ETCD_RETRY_MIN: Duration = Duration::from_millis(200);

/// Where our lease stands.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Lease {
    None {
        retry_at: Instant,
    },
    Granting,
    /// `deadline` is rule `lease_deadline`.
    Held {
        id: LeaseId,
        deadline: Instant,
    },
}

/// Where our candidate key stands.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Candidacy {
    None,
    Creating,
    Created(CandidateId),
}

/// The lease and its keep-alives.
#[derive(Clone, Debug)]
pub(super) struct LeaseState {
    pub(super) status: Lease,
    /// The wait before the next etcd retry after a failure.
    pub(super) backoff: Duration,
    pub(super) keepalive_in_flight: bool,
    pub(super) next_keepalive_at: Instant,
}

impl LeaseState {
    pub(super) fn new(now: Instant) -> Self {
        LeaseState {
            status: Lease::None { retry_at: now },
            backoff: ETCD_RETRY_MIN,
            keepalive_in_flight: false,
            next_keepalive_at: now,
        }
    }

    /// Its part of the next timeout: the lease and step-down deadlines, the last instants an
    /// activation or a node call still fits before the step-down deadline, the next keep-alive
    /// and the next grant.
    pub(super) fn wake_times(
        &self,
        step_down: Option<Instant>,
        timing: &Timing,
        at: &mut Vec<Instant>,
    ) {
        match self.status {
            Lease::Held { deadline, .. } => {
                at.push(deadline);
                if let Some(sd) = step_down {
                    at.push(sd);
                    at.push(sd - timing.activation_room());
                    at.push(sd - timing.node_timeout);
                }
                if !self.keepalive_in_flight {
                    at.push(self.next_keepalive_at);
                }
            }
            Lease::None { retry_at } => at.push(retry_at),
            Lease::Granting => {}
        }
    }
}

impl Elector {
    /// Rule `lease_deadline`: the send time of the last acknowledged keep-alive (or of the
    /// grant) plus the granted TTL scaled down by the clock drift bound. Never the receive
    /// time: the request may have been served long before its answer arrived, and etcd's lease
    /// was reset when it was served.
    pub fn lease_deadline(&self) -> Option<Instant> {
        match self.lease.status {
            Lease::Held { deadline, .. } => Some(deadline),
            _ => None,
        }
    }

    /// Rule `step_down_deadline`: by this instant the node must be commanded standby, so that
    /// it has drained (`drain_bound`) and been confirmed (`safety_margin`) before the lease can
    /// expire and another replica can win.
    pub fn step_down_deadline(&self) -> Option<Instant> {
        let lead = self.step_down_lead();
        self.lease_deadline().map(|deadline| deadline - lead)
    }

    /// How long before the lease deadline the node is commanded standby (a planted bug may
    /// shorten it).
    pub(super) fn step_down_lead(&self) -> Duration {
        #[cfg(any(test, feature = "mutation"))]
        if self.settings.mutation.no_safety_margin {
            return self.timing().drain_bound;
        }
        self.timing().step_down_lead()
    }

    pub(super) fn on_lease_granted(&mut self, lease: LeaseId, ttl: Duration, sent_at: Instant) {
        if self.lease.status != Lease::Granting {
            // A grant we no longer want (we shut down or gave up): let it go. No key is
            // attached to it, so revoking it gives nothing away.
            self.emit(Command::Resign {
                lease,
                candidate: None,
                record: None,
                clear_request: None,
            });
            return;
        }
        self.lease.backoff = ETCD_RETRY_MIN;
        self.lease.status = Lease::Held {
            id: lease,
            deadline: sent_at + self.timing().drift_scaled(ttl),
        };
        self.lease.next_keepalive_at = sent_at + self.timing().keepalive_interval;
        self.lease.keepalive_in_flight = false;
        self.candidacy = Candidacy::None;
    }

    pub(super) fn on_lease_grant_failed(&mut self, reason: String) {
        if self.lease.status == Lease::Granting {
            self.why = format!("etcd: lease grant failed: {reason}");
            self.lease.status = Lease::None {
                retry_at: self.etcd_retry_at(),
            };
        }
    }

    pub(super) fn on_keepalive_failed(&mut self, lease: LeaseId) {
        if self.lease() == Some(lease) {
            self.lease.keepalive_in_flight = false;
            self.lease.next_keepalive_at = self.now + self.timing().keepalive_retry_interval();
        }
    }

    pub(super) fn on_candidate_created(&mut self, lease: LeaseId, create_revision: i64) {
        if self.lease() == Some(lease) && self.candidacy == Candidacy::Creating {
            self.lease.backoff = ETCD_RETRY_MIN;
            self.candidacy = Candidacy::Created(CandidateId {
                lease,
                create_revision,
            });
            self.why = format!("candidate key created at revision {create_revision}");
            // The watch may report our new key before the create call returns; read the latest
            // view again now that we know the key is ours, or we would wait for the next change
            // of the election to lead.
            if let Some(view) = self.view.clone() {
                self.on_observed(view);
            }
        }
    }

    pub(super) fn on_candidate_create_failed(&mut self, lease: LeaseId, reason: String) {
        if self.lease() == Some(lease) && self.candidacy == Candidacy::Creating {
            self.why = format!("etcd: creating candidate key failed: {reason}");
            self.candidacy = Candidacy::None;
            self.lease.next_keepalive_at = self.lease.next_keepalive_at.min(self.now);
            if let Lease::Held { .. } = self.lease.status {
                // Try again after a pause; a lost lease is noticed by its keep-alive.
                self.resign_abandoned_lease_if_stale();
            }
        }
    }

    pub(super) fn on_keepalive_acked(&mut self, lease: LeaseId, sent_at: Instant, ttl: Duration) {
        let Lease::Held { id, deadline } = self.lease.status else {
            return;
        };
        if id != lease {
            return;
        }
        self.lease.keepalive_in_flight = false;
        if ttl.is_zero() {
            self.lose_lease("etcd says the lease no longer exists");
            return;
        }
        let renewed = sent_at + self.timing().drift_scaled(ttl);
        self.lease.status = Lease::Held {
            id,
            deadline: deadline.max(renewed),
        };
        self.lease.next_keepalive_at = (sent_at + self.timing().keepalive_interval).max(self.now);
    }

    /// Rule `lease_deadline`, enforced: past the deadline the lease is gone as far as we may
    /// assume, whatever etcd says later.
    pub(super) fn enforce_lease_deadline(&mut self) {
        if let Lease::Held { deadline, .. } = self.lease.status
            && self.now >= deadline
        {
            self.lose_lease("lease deadline passed without a keep-alive ack");
        }
    }

    /// Rule `campaign_allowed`: campaign (grant a lease, create the candidate key) only with
    /// the node confirmed standby by a read (and, with key custody, the operator's key
    /// confirmed withdrawn from it) and ready, no shutdown or resignation under way,
    /// the election read at least once, and this replica not excluded (rule
    /// `excluded_replica`): a replica whose node may be active or cannot serve must not
    /// become leader, and one an operator took out of rotation must not either, not even
    /// before its first read told it so.
    pub(super) fn campaign_allowed(&self) -> bool {
        self.view.is_some()
            && !self.excluded()
            && self.leaving.shutdown_deadline.is_none()
            && self.leaving.resigning.is_none()
            && self.node.standby_confirmed
            && (!self.custody.enabled || self.custody.withdrawn_confirmed)
            && self.probe.readiness == Readiness::Ready
    }

    /// Rule `campaign_allowed`, applied: the lease first, then the candidate key.
    pub(super) fn drive_campaign(&mut self) {
        let may_campaign = self.campaign_allowed();
        if may_campaign && !self.started {
            self.started = true;
            self.why = "node confirmed standby and ready: campaigning".into();
        }
        match self.lease.status {
            Lease::None { retry_at } if may_campaign && self.now >= retry_at => {
                self.lease.status = Lease::Granting;
                self.emit(Command::GrantLease {
                    ttl: self.timing().lease_ttl,
                });
            }
            // The grant may come back after the node turned unready or was found
            // active; the candidate key needs the same conditions as the grant.
            Lease::Held { id, .. } if may_campaign && self.candidacy == Candidacy::None => {
                self.candidacy = Candidacy::Creating;
                self.emit(Command::CreateCandidate { lease: id });
            }
            _ => {}
        }
    }

    pub(super) fn drive_keepalive(&mut self) {
        if let Lease::Held { id, .. } = self.lease.status
            && !self.lease.keepalive_in_flight
            && self.now >= self.lease.next_keepalive_at
        {
            self.lease.keepalive_in_flight = true;
            self.emit(Command::KeepAlive { lease: id });
        }
    }

    /// The lease is gone (expired by our clock, deleted, or unknown to etcd): forget it and
    /// everything attached, and let it go at etcd in case it still exists.
    pub(super) fn lose_lease(&mut self, reason: &str) {
        if let Lease::Held { id, .. } = self.lease.status {
            self.emit_event(Event::LeaseLost {
                lease: id,
                reason: reason.into(),
            });
            // Our key may outlive the lease in etcd (an outage): rule `end_dead_term` ends it,
            // with a record if the term may claim one, once a read confirms standby and etcd
            // answers. A fence's success proves standby too, not when: then only the lease is
            // revoked, at once (revoking a lease etcd may still hold ends our term early).
            if let Some(candidate) = self.candidate() {
                self.adopt_lapsed_term(candidate);
            }
            if !self.standby_confirmed_by_read() {
                self.revoke_if_proven_standby(id);
            }
        }
        self.why = reason.into();
        self.drop_lease();
        self.lease.status = Lease::None { retry_at: self.now };
    }

    /// Revokes a lease we are letting go of, which may still carry our key, only with the node
    /// proven standby (rule `lead_may_be_given_away`); otherwise it expires by itself.
    pub(super) fn revoke_if_proven_standby(&mut self, lease: LeaseId) {
        if self.lead_may_be_given_away() {
            self.emit(Command::Resign {
                lease,
                candidate: None,
                record: None,
                clear_request: None,
            });
        }
    }

    pub(super) fn drop_lease(&mut self) {
        self.candidacy = Candidacy::None;
        self.term = None;
        self.lease.keepalive_in_flight = false;
        if self.leaving.resigning.as_ref().is_some_and(|r| !r.done)
            && self.leaving.shutdown_deadline.is_none()
        {
            // Nothing left to resign: the lease is gone already.
            self.leaving.resigning = None;
            self.leaving.handover = None;
        }
        if self.leaving.shutdown_deadline.is_some() {
            self.leaving.resigning = None;
        }
    }

    pub(super) fn resign_abandoned_lease_if_stale(&mut self) {
        self.lease.status = match self.lease.status {
            Lease::Held { id, .. } => {
                // The failed create may have landed: the lease may carry our key.
                self.revoke_if_proven_standby(id);
                Lease::None {
                    retry_at: self.etcd_retry_at(),
                }
            }
            ref other => other.clone(),
        };
    }

    pub(super) fn etcd_retry_at(&mut self) -> Instant {
        let at = self.now + self.lease.backoff;
        self.lease.backoff = (self.lease.backoff * 2).min(self.timing().etcd_retry_max());
        at
    }

    /// etcd answered a call (a read, a keep-alive): it is reachable again, so the backoff
    /// starts over and a pending grant is retried within the first backoff, instead of after
    /// a pause grown while etcd was away.
    pub(super) fn etcd_answered(&mut self) {
        self.lease.backoff = ETCD_RETRY_MIN;
        if let Lease::None { retry_at } = &mut self.lease.status {
            *retry_at = (*retry_at).min(self.now + ETCD_RETRY_MIN);
        }
    }
}

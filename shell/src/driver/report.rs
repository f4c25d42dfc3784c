//! What the driver says about the core: one log line (and metric) per event the core reports,
//! and a warning when another candidate shares this replica's identity. Only words and
//! counters: nothing about roles is decided here.

use crate::telemetry::Metrics;
use elector_core::{Candidate, CandidateId, Elector, Event, Instant, LeaseId, Role};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tracing::{error, info, warn};

/// Logs what the core reports: one line per role change, with the reason.
pub(crate) fn report(event: &Event, metrics: &Metrics) {
    match event {
        Event::RoleChanged { from, to, reason } => {
            metrics.count_transition();
            // `role` and `from` are for collectors; the human line says them in the message.
            let (from, role) = (from.as_str(), to.as_str());
            match to {
                Role::SteppingDown => warn!(role, from, %reason, "role {from} -> {role}"),
                _ => info!(role, from, %reason, "role {from} -> {role}"),
            }
        }
        Event::StandbyConfirmed => info!("node confirmed standby"),
        Event::Fenced { reason } => error!(%reason, "FENCING"),
        Event::NodeActiveUnexpectedly => {
            warn!("node reports active although this replica does not lead: commanding standby")
        }
        Event::OperatorKeyUnexpected => warn!(
            "node lists the operator's key although this replica may not have it active \
             (it booted with it, or something installed it): withdrawing it"
        ),
        Event::OperatorKeyMissing => warn!(
            "the leader's node no longer lists the operator's key (it restarted with its \
             placeholder): installing it again"
        ),
        Event::NodeStandbyUnexpectedly => {
            metrics.count_standby_unexpected();
            warn!(
                "node reads standby although this leader commanded it active (demoted by \
                 someone else, restarted, or refusing activation): activating again only after \
                 a fresh successful readiness probe"
            )
        }
        Event::FenceFinished {
            success: true,
            detail,
        } => {
            metrics.count_fence_outcome(true);
            warn!(reason = %detail, "fence succeeded (the node counts as standby)")
        }
        Event::FenceFinished {
            success: false,
            detail,
        } => {
            metrics.count_fence_outcome(false);
            error!(
                reason = %detail,
                "FENCE FAILED (the node may still be active; it will be retried)"
            )
        }
        Event::NodeLost { reason } => {
            warn!(
                %reason,
                "node lost (giving way to another candidate if there is one)"
            )
        }
        Event::Stuck { reason } => {
            error!(%reason, "STUCK")
        }
        Event::Unstuck => info!("no longer stuck"),
        Event::Excluded { exclusion } => warn!(
            by = %exclusion.by,
            since = %exclusion.at,
            reason = %exclusion.reason,
            "EXCLUDED by an operator: not campaigning; handing over first if leading \
             (`elector include` ends it)"
        ),
        Event::Included => info!("included again by an operator: campaigning"),
        Event::DeadTermEnded { id, record } => info!(
            lease = format!("{:x}", id.lease),
            record,
            "ended a term of ours that no process keeps (a crashed process's, or one an etcd \
             outage interrupted; node proven standby){}",
            if *record {
                ": the next leader activates once its last slot is past"
            } else {
                ""
            }
        ),
        Event::LeaseLost { lease, reason } => {
            warn!(lease = format!("{lease:x}"), %reason, "lease lost")
        }
    }
}

/// Warns when another live candidate uses our `--value` (two replicas configured with one
/// identity: handover targets and logs become ambiguous), once per such candidate, from the
/// time we campaign. Only a warning: nothing about roles is decided here.
///
/// Never about a key of our own: every candidate this process held is remembered, and an
/// unknown key with our value is warned about only once it outlived [`TWIN_GRACE_TTLS`]
/// lease TTLs since we first saw it. The key of a previous process of this elector (a crash,
/// a restart by the supervisor), or one whose lease we gave up during an etcd outage (etcd
/// renews every lease when it comes back), is no longer kept alive and is gone by then; a
/// twin's is kept alive and stays.
pub(crate) struct IdentityCheck {
    value: String,
    ours: HashSet<LeaseId>,
    first_seen: HashMap<LeaseId, Instant>,
    warned: HashSet<LeaseId>,
}

/// How many lease TTLs a candidate with our value, not ours, must stay before it counts as a
/// twin: one TTL for a dead key to expire after its last renewal (or after etcd renewed it on
/// its return), one for etcd's expiry sweep and our reads.
pub(crate) const TWIN_GRACE_TTLS: u32 = 2;

impl IdentityCheck {
    pub(crate) fn new(value: String) -> Self {
        IdentityCheck {
            value,
            ours: HashSet::new(),
            first_seen: HashMap::new(),
            warned: HashSet::new(),
        }
    }

    pub(crate) fn check(&mut self, core: &Elector, now: Instant) {
        let grace = core.timing().lease_ttl * TWIN_GRACE_TTLS;
        let ours = core.candidate();
        if let Some(view) = core.observation() {
            for twin in self.twins(ours, &view.candidates, now, grace) {
                warn!(
                    value = %self.value,
                    lease = format!("{twin:x}"),
                    "another live candidate already uses this replica's --value: two replicas \
                     share one identity, so handover targets and logs are ambiguous; give each \
                     replica its own --value"
                );
            }
        }
    }

    /// The leases to warn about now: candidates with our value that are not ours, seen for
    /// `grace` at least and not warned about yet. `ours` is our candidate now, if any.
    fn twins(
        &mut self,
        ours: Option<CandidateId>,
        candidates: &[Candidate],
        now: Instant,
        grace: Duration,
    ) -> Vec<LeaseId> {
        if let Some(ours) = ours {
            self.ours.insert(ours.lease);
        }
        let others: Vec<LeaseId> = candidates
            .iter()
            .filter(|c| c.value == self.value && !self.ours.contains(&c.id.lease))
            .map(|c| c.id.lease)
            .collect();
        // Forget keys that went: a key that comes back is a new one.
        self.first_seen.retain(|lease, _| others.contains(lease));
        // Only while we campaign: a replica out of the election is nobody's twin.
        if ours.is_none() {
            return Vec::new();
        }
        let mut due = Vec::new();
        for lease in others {
            let since = *self.first_seen.entry(lease).or_insert(now);
            if now.saturating_duration_since(since) >= grace && self.warned.insert(lease) {
                due.push(lease);
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(lease: LeaseId, value: &str) -> Candidate {
        Candidate {
            id: CandidateId {
                lease,
                create_revision: lease,
            },
            value: value.to_owned(),
        }
    }

    fn id(lease: LeaseId) -> Option<CandidateId> {
        Some(CandidateId {
            lease,
            create_revision: lease,
        })
    }

    const GRACE: Duration = Duration::from_secs(20);

    /// Our own previous key (a restart within the lease TTL, or a lease given up during an
    /// etcd outage) is never warned about: it goes within the grace.
    #[test]
    fn our_own_previous_keys_are_no_twins() {
        let t0 = Instant::ZERO;
        let mut check = IdentityCheck::new("a".into());
        // A previous process's key (lease 1) stands before ours (lease 2) for 9 s, then expires.
        let both = [candidate(1, "a"), candidate(2, "a"), candidate(3, "b")];
        for s in 0..10 {
            let at = t0 + Duration::from_secs(s);
            assert!(check.twins(id(2), &both, at, GRACE).is_empty());
        }
        let alone = [candidate(2, "a"), candidate(3, "b")];
        assert!(check.twins(id(2), &alone, t0 + GRACE * 2, GRACE).is_empty());
        // In this process we gave up lease 2 (an outage) and campaign with lease 4: lease 2
        // comes back with etcd and stays a while, and it is ours.
        let lapsed = [candidate(2, "a"), candidate(4, "a")];
        for s in 0..60 {
            let at = t0 + GRACE * 2 + Duration::from_secs(s);
            assert!(check.twins(id(4), &lapsed, at, GRACE).is_empty());
        }
    }

    /// A twin, kept alive by another replica, is warned about once, after the grace.
    #[test]
    fn a_twin_is_warned_about_once_after_the_grace() {
        let t0 = Instant::ZERO;
        let mut check = IdentityCheck::new("a".into());
        let with_twin = [candidate(1, "a"), candidate(7, "a")];
        assert!(check.twins(id(1), &with_twin, t0, GRACE).is_empty());
        assert!(
            check
                .twins(
                    id(1),
                    &with_twin,
                    t0 + GRACE - Duration::from_millis(1),
                    GRACE
                )
                .is_empty()
        );
        assert_eq!(check.twins(id(1), &with_twin, t0 + GRACE, GRACE), [7]);
        assert!(
            check
                .twins(id(1), &with_twin, t0 + GRACE * 5, GRACE)
                .is_empty()
        );
        // Not while we do not campaign, and the wait starts over for a key that came back.
        let mut check = IdentityCheck::new("a".into());
        assert!(check.twins(None, &with_twin, t0, GRACE).is_empty());
        assert!(check.twins(None, &with_twin, t0 + GRACE, GRACE).is_empty());
        let twin_only = [candidate(7, "a")];
        assert!(check.twins(id(1), &[], t0 + GRACE * 2, GRACE).is_empty());
        assert!(
            check
                .twins(id(1), &twin_only, t0 + GRACE * 3, GRACE)
                .is_empty()
        );
        assert_eq!(check.twins(id(1), &twin_only, t0 + GRACE * 4, GRACE), [7]);
    }
}

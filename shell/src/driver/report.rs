//! What the driver says about the core: one log line (and metric) per event the core reports,
//! and a warning when another candidate shares this replica's identity. Only words and
//! counters: nothing about roles is decided here.

use crate::status::Metrics;
use elector_core::{Elector, Event, LeaseId, Role};
use std::collections::HashSet;
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
            "ended the term our crashed process left behind (node confirmed standby){}",
            if *record {
                ": the next leader activates at once"
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
pub(crate) struct IdentityCheck {
    value: String,
    warned: HashSet<LeaseId>,
}

impl IdentityCheck {
    pub(crate) fn new(value: String) -> Self {
        IdentityCheck {
            value,
            warned: HashSet::new(),
        }
    }

    pub(crate) fn check(&mut self, core: &Elector) {
        let (Some(ours), Some(view)) = (core.candidate(), core.observation()) else {
            return;
        };
        for other in &view.candidates {
            if other.value == self.value && other.id != ours && self.warned.insert(other.id.lease) {
                warn!(
                    value = %self.value,
                    lease = format!("{:x}", other.id.lease),
                    "another live candidate already uses this replica's --value: two replicas \
                     share one identity, so handover targets and logs are ambiguous; give each \
                     replica its own --value (if this replica restarted within the lease TTL, it \
                     may be its own previous key, which expires by itself)"
                );
            }
        }
    }
}

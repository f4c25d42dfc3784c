//! The fence and the proof of standby (rules `fence`, `lead_may_be_given_away`), and saying
//! so when neither a safe nor a useful state can be reached (rule `report_stuck`).

use super::Elector;
use super::lease::Lease;
use crate::Instant;
use crate::protocol::{CallId, Command, Event};
use std::time::Duration;

/// While stuck (rule `report_stuck`), [`Event::Stuck`] is repeated this often, so that the
/// error is in every few seconds of the log, not only once at its start.
pub const STUCK_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// One fencing episode: from a demotion (or a node found active unexpectedly) until the node
/// is confirmed standby or activated again.
#[derive(Clone, Debug, Default)]
pub(super) struct Fence {
    /// Standby must be confirmed by then, or the fence command runs.
    pub(super) deadline: Option<Instant>,
    /// The fence command was started in this episode.
    pub(super) fired: bool,
    /// Its last run finished.
    pub(super) done: bool,
    /// Its last run reported success: the node can no longer sign (proof of standby).
    pub(super) succeeded: bool,
    /// Reads with a call id from here on were sent after the fence reported success.
    pub(super) proof_from_call: CallId,
    /// A failed run is repeated at this instant while standby is still not proven.
    pub(super) retry_at: Option<Instant>,
    /// The id of the last run started; answers for other runs are ignored.
    pub(super) run: u64,
    /// Runs that failed in this episode.
    pub(super) failures: u32,
    /// What the last run said.
    pub(super) detail: String,
    /// Runs started over the elector's life, never reset: a late answer is never taken for a
    /// later run's.
    pub(super) runs: u64,
}

impl Fence {
    /// The episode is over: the node was confirmed standby, or is rightly activated again.
    pub(super) fn end_episode(&mut self) {
        *self = Fence {
            runs: self.runs,
            ..Fence::default()
        };
    }

    /// Its part of the next timeout: the fence deadline until the fence runs, and the retry
    /// of a failed run.
    pub(super) fn wake_times(&self, at: &mut Vec<Instant>) {
        if let Some(deadline) = self.deadline
            && !self.fired
        {
            at.push(deadline);
        }
        if let Some(retry) = self.retry_at {
            at.push(retry);
        }
    }
}

/// Rule `report_stuck`: what keeps this replica from a safe or useful state on its own.
#[derive(Clone, Debug)]
pub(super) struct Stuck {
    pub(super) reason: String,
    pub(super) next_report_at: Instant,
}

impl Elector {
    /// Rule `fence`, its answer: only a run that reported success proves standby. A failed run
    /// is repeated every `fence_retry_interval` while the node is not proven standby.
    pub(super) fn on_fence_done(&mut self, run: u64, success: bool, detail: String) {
        if run != self.fencing.run || !self.fencing.fired || self.fencing.done {
            return;
        }
        self.fencing.done = true;
        self.fencing.succeeded = success;
        self.fencing.detail = detail.clone();
        if success {
            // Reads sent from now on see the fenced node; earlier ones may not.
            self.fencing.proof_from_call = self.node.next_id;
            self.fencing.retry_at = None;
        } else {
            self.fencing.failures += 1;
            self.fencing.retry_at = Some(self.now + self.timing().fence_retry_interval());
        }
        self.emit_event(Event::FenceFinished { success, detail });
    }

    /// Rule `fence`: if standby is not confirmed by the fence deadline (the lease deadline
    /// after a step-down), run the operator's fence command and say so loudly. A run that
    /// fails (or times out) proves nothing: it is repeated every `fence_retry_interval` for as
    /// long as the node is not proven standby.
    pub(super) fn fence(&mut self) {
        if self.node.standby_confirmed {
            self.fencing.deadline = None;
            return;
        }
        if self.fencing.succeeded {
            return;
        }
        let due = match self.fencing.deadline {
            Some(deadline) if !self.fencing.fired => self.now >= deadline,
            _ => {
                self.fencing.fired
                    && self.fencing.done
                    && self.fencing.retry_at.is_some_and(|at| self.now >= at)
            }
        };
        if !due {
            return;
        }
        self.fencing.runs += 1;
        self.fencing.run = self.fencing.runs;
        // Keep trying to demote too: `activate=false` is sent again with every run, for a node
        // whose admin endpoint acknowledged it but did not obey, or has recovered since.
        self.node.standby_acked = false;
        self.fencing.fired = true;
        self.fencing.done = false;
        self.fencing.retry_at = None;
        // A read older than our last `activate=true` says nothing about the node now.
        let last_read = match self.node.last_read {
            _ if self.node.last_read_id <= self.node.last_activate
                && self.node.last_activate > 0 =>
            {
                "none since activate=true"
            }
            Some(true) => "active",
            Some(false) => "standby",
            None => "none",
        };
        let reason = match (self.fencing.failures, &self.node.last_failure) {
            (0, _) => format!("node standby not confirmed in time (last read: {last_read})"),
            (n, failure) => format!(
                "node still not proven standby after {n} failed fence run(s) (last read: \
                 {last_read}{})",
                failure
                    .as_ref()
                    .map(|f| format!("; {f}"))
                    .unwrap_or_default()
            ),
        };
        self.emit(Command::Fence {
            run: self.fencing.run,
            reason: reason.clone(),
        });
        self.emit_event(Event::Fenced { reason });
    }

    /// A read made after our last `activate=true` said `active:false` (or, under a planted
    /// bug, standby was merely commanded). Part of rule `lead_may_be_given_away`.
    pub(super) fn standby_confirmed_by_read(&self) -> bool {
        #[cfg(any(test, feature = "mutation"))]
        if self.settings.mutation.resign_before_standby_confirmed {
            return !self.node.active_commanded && self.node.in_flight.is_none();
        }
        #[cfg(any(test, feature = "mutation"))]
        if self.settings.mutation.exclusion_skips_proof && self.excluded() {
            return !self.node.active_commanded;
        }
        // With key custody, a key installed is withdrawn (at least asked to be) before the
        // mode counts: the lead is given away after the withdrawal, never before.
        self.node.standby_confirmed && !self.custody.installed
    }

    /// Rule `lead_may_be_given_away`: our key may be deleted, our lease revoked and a handover
    /// record written only while the node is *proven* standby: a read made after our last
    /// `activate=true` said `active:false`, or the fence reported success since, or (key
    /// custody) an answer after our last installation listed only the placeholder key.
    /// Starting a fence proves nothing, and neither does a timeout, nor a withdrawal merely
    /// sent: until there is proof, we keep the lease alive so that no other node activates
    /// while ours may still sign.
    pub(super) fn lead_may_be_given_away(&self) -> bool {
        #[cfg(any(test, feature = "mutation"))]
        if self.settings.mutation.resign_when_fence_starts && self.fencing.fired {
            return true;
        }
        self.standby_confirmed_by_read()
            || self.fencing.succeeded
            || self.key_withdrawal_confirmed()
    }

    /// Rule `report_stuck`: a replica that cannot reach a safe or useful state by itself says
    /// so at once and every [`STUCK_REPORT_INTERVAL`] while it lasts, for logs, `/status`, a
    /// metric and systemd's `STATUS=`: its node may be active and the fence failed (it then
    /// keeps any lease it holds, so that no other node activates), or it leads with a lost
    /// node and nobody to hand over to.
    pub(super) fn report_stuck(&mut self) {
        let reason = self.stuck_reason();
        let now = self.now;
        match (reason, self.stuck.as_mut()) {
            (None, None) => {}
            (None, Some(_)) => {
                self.stuck = None;
                self.emit_event(Event::Unstuck);
            }
            (Some(reason), Some(stuck)) if now < stuck.next_report_at => {
                // Not due: keep the newest wording for `/status`, say it at the next report.
                stuck.reason = reason;
            }
            (Some(reason), _) => {
                self.stuck = Some(Stuck {
                    reason: reason.clone(),
                    next_report_at: now + STUCK_REPORT_INTERVAL,
                });
                self.emit_event(Event::Stuck { reason });
            }
        }
    }

    /// Rule `report_stuck`, the condition: why this replica is stuck, if it is.
    pub(super) fn stuck_reason(&self) -> Option<String> {
        if !self.lead_may_be_given_away() && self.fencing.failures > 0 {
            let holds_lease = !matches!(self.lease.status, Lease::None { .. });
            let fence = &self.fencing.detail;
            return Some(if holds_lease {
                format!(
                    "node cannot be proven standby and the fence failed ({fence}); keeping the \
                     lead so that no other node activates. Stop the node (or repair its admin \
                     endpoint) and this replica gives way; configure --fence-cmd to do it \
                     automatically"
                )
            } else {
                format!(
                    "node may be active while this replica does not lead, and the fence failed \
                     ({fence}): stop the node by hand"
                )
            });
        }
        if let Some(lost) = self.node_lost()
            && self.leaving.handover.is_none()
            && self.leaving.shutdown_deadline.is_none()
        {
            return Some(format!(
                "leading, but {lost}; no other candidate to hand over to: nobody signs"
            ));
        }
        None
    }
}

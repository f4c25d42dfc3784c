//! The node: its admin calls, one at a time (rules `reconcile_node`, `node_active_allowed`,
//! `quiet_window`), and its readiness probes (rule `readiness_from_probes`).

use super::{Elector, Readiness};
use crate::Instant;
use crate::protocol::{CallId, Command, Event, NodeCall, NodeKeys};
use std::time::Duration;

/// What we know about the node, from the calls made and their answers.
#[derive(Clone, Debug)]
pub(super) struct Node {
    pub(super) next_id: CallId,
    pub(super) in_flight: Option<(CallId, NodeCall)>,
    /// `activate=true` was sent and no `activate=false` since: the node may be active.
    pub(super) active_commanded: bool,
    /// `activate=false` was acknowledged and no `activate=true` sent since.
    pub(super) standby_acked: bool,
    /// When the last `activate=false` was acknowledged.
    pub(super) standby_acked_at: Instant,
    /// A read made after our last `activate=true` said `{"active":false}`.
    pub(super) standby_confirmed: bool,
    /// We demoted an active node and have not confirmed it standby yet.
    pub(super) draining: bool,
    /// Id of the last `activate=true` call; reads older than it prove nothing.
    pub(super) last_activate: CallId,
    pub(super) last_read: Option<bool>,
    /// Id of the call that made `last_read`.
    pub(super) last_read_id: CallId,
    /// Why the last node call failed, for the reports of rules `fence` and
    /// `give_way_when_node_lost`.
    pub(super) last_failure: Option<String>,
    /// The leader's node read standby although commanded active: it may be activated again
    /// only after a readiness probe sent after this instant succeeded.
    pub(super) fresh_probe_after: Option<Instant>,
    pub(super) next_read_at: Instant,
    pub(super) retry_at: Instant,
}

impl Node {
    pub(super) fn new(now: Instant) -> Self {
        Node {
            next_id: 1,
            in_flight: None,
            active_commanded: false,
            standby_acked: false,
            standby_acked_at: now,
            standby_confirmed: false,
            draining: false,
            last_activate: 0,
            last_read: None,
            last_read_id: 0,
            last_failure: None,
            fresh_probe_after: None,
            next_read_at: now,
            retry_at: now,
        }
    }

    /// Its part of the next timeout: the next read and the next retry, once no call is in
    /// flight (an answer wakes us otherwise).
    pub(super) fn wake_times(&self, at: &mut Vec<Instant>) {
        if self.in_flight.is_none() {
            at.push(self.next_read_at);
            at.push(self.retry_at);
        }
    }
}

/// Readiness as the probes tell it (rule `readiness_from_probes`).
#[derive(Clone, Debug)]
pub(super) struct Probe {
    pub(super) readiness: Readiness,
    /// Failed probes in a row.
    pub(super) failures: u32,
    pub(super) in_flight: bool,
    pub(super) next_at: Instant,
    /// When the last probe was sent (a node that read standby unexpectedly needs a probe sent
    /// after that read).
    pub(super) sent_at: Instant,
}

impl Probe {
    pub(super) fn new(now: Instant) -> Self {
        Probe {
            readiness: Readiness::Unknown,
            failures: 0,
            in_flight: false,
            next_at: now,
            sent_at: now,
        }
    }

    /// Its part of the next timeout: the next probe, once none is in flight.
    pub(super) fn wake_times(&self, at: &mut Vec<Instant>) {
        if !self.in_flight {
            at.push(self.next_at);
        }
    }
}

impl Elector {
    /// A node call answered; a mode read goes to rule `reconcile_node`, a key call to rule
    /// `reconcile_keys`.
    pub(super) fn on_node_call_done(
        &mut self,
        id: CallId,
        call: NodeCall,
        active: Option<bool>,
        keys: Option<NodeKeys>,
    ) {
        if self.node.in_flight.map(|(i, _)| i) != Some(id) {
            return;
        }
        self.node.in_flight = None;
        match call {
            NodeCall::SetActive => {}
            NodeCall::SetStandby => {
                self.node.standby_acked = !self.node.active_commanded;
                self.node.standby_acked_at = self.now;
            }
            NodeCall::ReadMode => match active {
                Some(active) => self.reconcile_node(id, active),
                None => self.on_node_call_failed(id, call, "no mode in the answer".into()),
            },
            NodeCall::InstallKey | NodeCall::WithdrawKey | NodeCall::ReadKeys => {
                self.on_keys_answered(id, call, keys)
            }
        }
    }

    /// Rule `reconcile_node`: a read is the only proof of the node's mode. `false` from a read
    /// made after our last activation confirms standby. `true` while we do not want the node
    /// active commands standby again at once; `false` while we lead means the node restarted
    /// and may be activated again.
    pub(super) fn reconcile_node(&mut self, id: CallId, active: bool) {
        self.node.last_read = Some(active);
        self.node.last_read_id = id;
        if active {
            let was_confirmed = self.node.standby_confirmed;
            self.node.standby_confirmed = false;
            if self.node.active_commanded && id > self.node.last_activate {
                // Evidence for rule `give_way_when_node_lost`: the node signs for us.
                let check = self.settings.timing.node_check_interval;
                if let Some(term) = self.term.as_mut() {
                    term.active_evidence_at = Some(self.now);
                    term.node_lost = None;
                    term.standby_unexpected = false;
                    term.reactivate_backoff = check;
                }
            }
            #[cfg(any(test, feature = "mutation"))]
            let fence_kept = self.settings.mutation.fence_success_survives_active_read;
            #[cfg(not(any(test, feature = "mutation")))]
            let fence_kept = false;
            if self.fencing.succeeded && id >= self.fencing.proof_from_call && !fence_kept {
                // A read sent after the fence reported success says active: the fence did not
                // stop the node (or it restarted active). Its success proves nothing any more.
                self.fencing.succeeded = false;
                self.fencing.fired = false;
                self.fencing.deadline = Some(self.now + self.timing().step_down_lead());
            }
            // A resignation retried after a failure must not carry a record made
            // while standby was confirmed once the node is found active again (it restarted
            // active): the record tells the next leader to skip its activation delay.
            if let Some(r) = self.leaving.resigning.as_mut() {
                r.record = None;
            }
            if !self.node.active_commanded {
                // A node that acknowledged `activate=false` but still reads active is finishing
                // its round; keep reading it every `confirm_poll_interval` (the pace
                // `margin_covers_standby_confirmation` assumes). Re-sending the command on every
                // such read would loop SetStandby/ReadMode as fast as the node answers.
                // A node that was confirmed standby and reads active again restarted active:
                // command it standby again at once.
                // Rule `reconcile_node`, again: a node still active a drain bound and a safety
                // margin after it acknowledged `activate=false` (when a node within its bounds
                // is confirmed standby, by `margin_covers_standby_confirmation`) did not take
                // the command: an admin endpoint that answered 200 without acting on it.
                // Command it again rather than wait for the next fence run.
                let drained_by = self.node.standby_acked_at
                    + self
                        .timing()
                        .drain_bound
                        .mul_f64(1.0 + self.timing().max_clock_drift)
                    + self.timing().safety_margin;
                if was_confirmed || (self.node.standby_acked && self.now >= drained_by) {
                    self.node.standby_acked = false;
                }
                // Reported once per episode: the fence deadline marks it as known.
                if !self.node.draining && self.fencing.deadline.is_none() {
                    self.emit_event(Event::NodeActiveUnexpectedly);
                    self.fencing.deadline = Some(self.now + self.timing().step_down_lead());
                }
            }
        } else if id > self.node.last_activate {
            let was_commanded_active = self.node.active_commanded;
            self.node.active_commanded = false;
            let lost_after = self.settings.timing.node_lost_after;
            if was_commanded_active && let Some(term) = self.term.as_mut() {
                // Someone else demoted our node, it restarted, or it refuses `activate=true`.
                // Said loudly and counted (once per episode); activated again only once a
                // readiness probe sent from now on succeeds, and after a backoff (rule
                // `node_active_allowed`). Meanwhile it is commanded standby like any node that
                // may not be active.
                self.node.fresh_probe_after = Some(self.now);
                term.reactivate_not_before = self.now + term.reactivate_backoff;
                term.reactivate_backoff = (term.reactivate_backoff * 2).min(lost_after);
                if !term.standby_unexpected {
                    term.standby_unexpected = true;
                    self.emit_event(Event::NodeStandbyUnexpectedly);
                }
            }
            if !self.node.standby_confirmed {
                self.node.standby_confirmed = true;
                self.node.draining = false;
                self.fencing.end_episode();
                self.emit_event(Event::StandbyConfirmed);
            }
        }
    }

    /// A node call failed or timed out: it proves nothing, and is retried after a pause.
    pub(super) fn on_node_call_failed(&mut self, id: CallId, call: NodeCall, reason: String) {
        if self.node.in_flight.map(|(i, _)| i) == Some(id) {
            self.node.in_flight = None;
        }
        if call == NodeCall::SetStandby {
            self.node.standby_acked = false;
        }
        if call == NodeCall::WithdrawKey {
            self.custody.withdraw_acked = false;
            self.custody.retry_at = self.now + self.timing().confirm_poll_interval;
        }
        if matches!(call, NodeCall::SetActive | NodeCall::InstallKey)
            && let Some(term) = self.term.as_mut()
        {
            // It may still land later: no handover record in this term (rule
            // `handover_record`).
            term.activation_failed = true;
        }
        let call_name = match call {
            NodeCall::SetActive => "activate=true",
            NodeCall::SetStandby => "activate=false",
            NodeCall::ReadMode => "read of /ha",
            NodeCall::InstallKey => "installing the operator key",
            NodeCall::WithdrawKey => "withdrawing the operator key",
            NodeCall::ReadKeys => "read of /producer-keys",
        };
        self.node.last_failure = Some(format!("{call_name} failed: {reason}"));
        // Whatever failed, try again after a short pause, not in a tight loop.
        let pause = self.timing().confirm_poll_interval;
        self.node.retry_at = self.now + pause;
        self.node.next_read_at = self.node.next_read_at.max(self.now + pause);
    }

    /// Rule `readiness_from_probes`: ready after one good probe; unready after
    /// `unready_threshold` failed probes in a row, so that one slow answer does not move
    /// leadership.
    pub(super) fn readiness_from_probes(&mut self, ready: bool, _detail: String) {
        self.probe.in_flight = false;
        if ready {
            self.probe.failures = 0;
            self.probe.readiness = Readiness::Ready;
            if self
                .node
                .fresh_probe_after
                .is_some_and(|after| self.probe.sent_at >= after)
            {
                self.node.fresh_probe_after = None;
            }
        } else {
            self.probe.failures = self.probe.failures.saturating_add(1);
            if self.probe.failures >= self.timing().unready_threshold {
                self.probe.readiness = Readiness::Unready;
            }
        }
    }

    /// Rule `node_active_allowed`: the node may be active only while we lead (our key first,
    /// lease held, before the step-down deadline), with no shutdown or handover under way. To
    /// *become* active it must also be ready, past the activation gate, and have at least one
    /// keep-alive round of room before the step-down deadline.
    pub(super) fn node_active_allowed(&self) -> bool {
        self.node_active_allowed_past(true, true)
    }

    /// Key custody: whether the operator's key may be in the node now. Rule
    /// `install_key_last`: a key installed may stay while the node may stay active; one not
    /// (yet) installed goes in only when the node may *become* active, with every condition of
    /// rule `node_active_allowed` (under the planted bug `install_key_before_gate`, already
    /// before the activation gate).
    pub(super) fn key_installation_allowed(&self) -> bool {
        #[cfg(any(test, feature = "mutation"))]
        if self.settings.mutation.install_key_before_gate && self.custody.enabled {
            // Installed before the gate, and kept there until the gate opens.
            return self.node_active_allowed() || self.node_may_become_active(false);
        }
        if !self.custody.enabled || self.custody.install_acked {
            return self.node_active_allowed();
        }
        self.node_may_become_active(true)
    }

    /// Rule `node_active_allowed`, for a node not commanded active yet: with or without its
    /// activation gate.
    fn node_may_become_active(&self, gate: bool) -> bool {
        self.node_active_allowed_past(gate, false)
    }

    /// Rule `node_active_allowed`, with or without its activation gate; `keep` lets a node
    /// commanded active stay so without the conditions of becoming active.
    fn node_active_allowed_past(&self, gate: bool, keep: bool) -> bool {
        if self.leaving.shutdown_deadline.is_some()
            || self.leaving.handover.as_ref().is_some_and(|h| h.committed)
            || self.leaving.resigning.is_some()
        {
            return false;
        }
        let (Some(term), Some(step_down)) = (&self.term, self.step_down_deadline()) else {
            return false;
        };
        if self.candidate() != Some(term.id) || self.now >= step_down {
            return false;
        }
        if self.node.active_commanded && keep {
            return true;
        }
        // `Ready` tolerates up to `unready_threshold - 1` failed probes so that
        // one slow answer does not move leadership; *becoming* active also needs the latest
        // probe to have succeeded.
        // A node that read standby while we led is activated again only after a probe sent
        // since then succeeded: it may have restarted and not be ready yet.
        self.probe.readiness == Readiness::Ready
            && self.probe.failures == 0
            && self.node.fresh_probe_after.is_none()
            && self.now >= term.reactivate_not_before
            && (term.gate_passed || !gate)
            && self.now + self.timing().activation_room() <= step_down
    }

    /// Rules `step_down_deadline` and `reconcile_node`, as node calls. One call at a time:
    /// answers then come back in order, and a read always sees the effect of earlier commands.
    pub(super) fn drive_node(&mut self) {
        let allowed = self.node_active_allowed();
        let key_allowed = self.key_installation_allowed();
        let may_sign = self.node.active_commanded || self.custody.installed;
        if !key_allowed && may_sign && !self.node.draining {
            // Demotion: from here the node must be confirmed standby by the fence deadline.
            self.node.draining = true;
            self.why = self.demotion_reason();
            let by_lease = self.lease_deadline();
            // A node call in flight delays `activate=false` by up to node_timeout
            // (one call at a time); the margin covers the command, the drain and the confirming
            // reads from when the command is sent. (At the step-down deadline no call is in
            // flight, and the lease deadline caps this anyway.)
            let wait = match self.node.in_flight {
                Some(_) => self.timing().node_timeout,
                None => Duration::ZERO,
            };
            let by_drain = self.now + wait + self.timing().step_down_lead();
            self.fencing.deadline = Some(by_lease.map_or(by_drain, |l| l.min(by_drain)));
            self.fencing.fired = false;
        }
        if self.node.in_flight.is_some() {
            return;
        }
        let now = self.now;
        if allowed && key_allowed {
            if self.install_key_last() {
                return;
            }
            if !self.node.active_commanded {
                self.node.active_commanded = true;
                self.node.standby_acked = false;
                self.node.standby_confirmed = false;
                // Activating again (a late ack renewed the lease after a step-down
                // whose standby was not confirmed yet) ends that demotion: its fence deadline no
                // longer applies, or the fence would run against a rightly active node. A later
                // demotion sets a new one.
                self.node.draining = false;
                self.fencing.end_episode();
                self.why = match &self.term {
                    Some(term) => format!("activating, node ready: {}", term.reason),
                    None => "activating: leader, node ready".into(),
                };
                if let Some(term) = self.term.as_mut()
                    && term.active_evidence_at.is_none()
                {
                    // Rule `give_way_when_node_lost` counts from the term's first activation.
                    term.active_evidence_at = Some(now);
                }
                let id = self.node_call(NodeCall::SetActive);
                self.node.last_activate = id;
                self.node.next_read_at = now + self.timing().confirm_poll_interval;
            } else if now >= self.node.next_read_at && !self.quiet_window() {
                self.node.next_read_at = now + self.timing().node_check_interval;
                self.node_call(NodeCall::ReadMode);
            } else if self.keys_read_due() && !self.quiet_window() {
                self.read_keys();
            }
            return;
        }
        if key_allowed {
            // Only under the planted bug `install_key_before_gate`: the key goes in before the
            // node may be activated.
            self.install_key_last();
            return;
        }
        if self.node.active_commanded || (!self.node.standby_acked && now >= self.node.retry_at) {
            self.node.active_commanded = false;
            // Standby is confirmed by a read made after the standby command. A read that found
            // the node standby just before this command (it restarted) no longer counts:
            // otherwise a shutdown could resign with a record and exit 0 while its own
            // `activate=false` is still in flight.
            self.node.standby_confirmed = false;
            self.node.next_read_at = now;
            self.node_call(NodeCall::SetStandby);
            return;
        }
        if self.withdraw_key_when_demoting() {
            return;
        }
        // An answered withdrawal is confirmed first: it proves standby even where `/ha` does
        // not answer.
        if self.custody.withdraw_acked && !self.custody.withdrawn_confirmed {
            self.read_keys();
            return;
        }
        if self.node.standby_acked && now >= self.node.next_read_at {
            let interval = if self.node.standby_confirmed {
                self.timing().node_check_interval
            } else {
                self.timing().confirm_poll_interval
            };
            self.node.next_read_at = now + interval;
            self.node_call(NodeCall::ReadMode);
            return;
        }
        if self.keys_read_due() {
            self.read_keys();
        }
    }

    /// Rule `quiet_window`: a leader starts no node call that could still be running at its
    /// step-down deadline (calls run one at a time, each bounded by `node_timeout`), so the
    /// standby command is sent on time. Also true without a lease: there is no deadline to
    /// meet, but no leadership to keep the node active for either.
    pub(super) fn quiet_window(&self) -> bool {
        let now = self.now;
        self.step_down_deadline()
            .is_none_or(|sd| now + self.timing().node_timeout >= sd)
    }

    /// Why the node is being demoted, for the role change's log line.
    pub(super) fn demotion_reason(&self) -> String {
        if self.leaving.shutdown_deadline.is_some() {
            return "demoting: shutdown requested".into();
        }
        if let Some(h) = &self.leaving.handover {
            return format!("demoting: handover ({})", h.reason);
        }
        match (self.lease_deadline(), self.step_down_deadline()) {
            (None, _) => "demoting: lease lost".into(),
            (_, Some(sd)) if self.now >= sd => {
                "demoting: step-down deadline reached without a keep-alive ack".into()
            }
            _ if self.term.is_none() => "demoting: our key is no longer first".into(),
            _ => "demoting: leadership not valid".into(),
        }
    }

    /// Sends one node call; answers for other ids are ignored.
    pub(super) fn node_call(&mut self, call: NodeCall) -> CallId {
        let id = self.node.next_id;
        self.node.next_id += 1;
        self.node.in_flight = Some((id, call));
        self.emit(Command::Node { id, call });
        id
    }

    /// Rule `readiness_from_probes`, its probes: one every `probe_interval`, one at a time.
    pub(super) fn drive_probe(&mut self) {
        if !self.probe.in_flight && self.now >= self.probe.next_at {
            self.probe.in_flight = true;
            self.probe.sent_at = self.now;
            self.probe.next_at = self.now + self.timing().probe_interval;
            self.emit(Command::ProbeReadiness);
        }
    }
}

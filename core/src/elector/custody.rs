//! Key custody (optional: the driver holds the operator's key and the node runs with a
//! placeholder): the node holds the operator's key only while this replica may have it
//! active, so that a standby cannot sign as the delegate whatever its mode (rules
//! `install_key_last`, `withdraw_key_when_demoting`, `reconcile_keys`). iotex-core (v2.5.0 and later)
//! replaces its producer keys through `/producer-keys` under the lock that signing takes.

use super::Elector;
use crate::Instant;
use crate::protocol::{CallId, Event, NodeCall, NodeKeys};

/// What we know about the keys the node holds.
#[derive(Clone, Debug)]
pub(super) struct Custody {
    /// Key custody is on (the driver can install and withdraw the operator's key).
    pub(super) enabled: bool,
    /// `InstallKey` was sent and no `WithdrawKey` since: the node may hold the operator's key.
    pub(super) installed: bool,
    /// The last `InstallKey` was answered, listing the operator's key.
    pub(super) install_acked: bool,
    /// `WithdrawKey` was answered, listing only the placeholder, and no `InstallKey` sent since.
    pub(super) withdraw_acked: bool,
    /// A `ReadKeys` sent after our last `InstallKey` listed only the placeholder: proof that the
    /// node signs nothing as the delegate (rule `lead_may_be_given_away`).
    pub(super) withdrawn_confirmed: bool,
    /// Id of the last `InstallKey`: answers to older calls prove nothing about the key now.
    pub(super) last_install: CallId,
    /// When `/producer-keys` is read next (every `node_check_interval`, on a schedule of its own
    /// so that the reads of `/ha` keep theirs).
    pub(super) next_read_at: Instant,
    /// A failed withdrawal is sent again from here on.
    pub(super) retry_at: Instant,
}

impl Custody {
    pub(super) fn new(enabled: bool, now: Instant) -> Self {
        Custody {
            enabled,
            installed: false,
            install_acked: false,
            withdraw_acked: false,
            withdrawn_confirmed: false,
            last_install: 0,
            next_read_at: now,
            retry_at: now,
        }
    }
}

impl Custody {
    /// Its part of the next timeout: the next read of `/producer-keys`, the next withdrawal.
    pub(super) fn wake_times(&self, at: &mut Vec<Instant>) {
        if self.enabled {
            at.push(self.next_read_at);
            at.push(self.retry_at);
        }
    }
}

impl Elector {
    /// Rule `reconcile_keys`, its reads: `/producer-keys` is due on its own schedule.
    pub(super) fn keys_read_due(&self) -> bool {
        self.custody.enabled && self.now >= self.custody.next_read_at
    }

    /// Reads `/producer-keys`; the next regular read is a check interval later.
    pub(super) fn read_keys(&mut self) {
        self.custody.next_read_at = self.now + self.timing().node_check_interval;
        self.node_call(NodeCall::ReadKeys);
    }

    /// Rule `install_key_last`: the operator's key goes into the node only once this replica
    /// may have its node active (rule `node_active_allowed`: leading, past the activation
    /// gate, ready, with room before the step-down deadline), and before `activate=true`: until
    /// then a node activated by anyone, or one that booted active, signs nothing as the
    /// delegate. Returns whether the installation still has to be done (or answered) first.
    pub(super) fn install_key_last(&mut self) -> bool {
        if !self.custody.enabled || self.custody.install_acked {
            return false;
        }
        if self.now >= self.node.retry_at || !self.custody.installed {
            self.custody.installed = true;
            self.custody.withdraw_acked = false;
            self.custody.withdrawn_confirmed = false;
            // The installation is the first step of an activation: a fence that succeeded
            // before it proves nothing once the key may be in the node (an installation that
            // timed out can still land, in a node that boots active), exactly as an
            // `activate=true` ends the fence's episode.
            self.node.draining = false;
            self.fencing.end_episode();
            if let Some(term) = self.term.as_mut()
                && term.active_evidence_at.is_none()
                && term.gate_passed
            {
                // Rule `give_way_when_node_lost` counts from the term's first attempt to
                // make the node sign: a key that cannot be installed is a lost node. (Only the
                // planted bug `install_key_before_gate` installs before the gate.)
                term.active_evidence_at = Some(self.now);
            }
            let id = self.node_call(NodeCall::InstallKey);
            self.custody.last_install = id;
        }
        true
    }

    /// Rule `withdraw_key_when_demoting`: whenever the node must not be active (a demotion, a
    /// node found active while we do not lead, the start), the operator's key is withdrawn
    /// (the placeholder put in its place) right after `activate=false` was answered: once it
    /// is, the node signs nothing as the delegate, whatever its mode. After, not before: the
    /// standby command is sent at the step-down deadline whatever `/producer-keys` does, so
    /// every timing inequality holds as without custody. A withdrawal that fails is retried
    /// after a pause while the reads go on. Returns whether a withdrawal was sent.
    pub(super) fn withdraw_key_when_demoting(&mut self) -> bool {
        if !self.custody.enabled {
            return false;
        }
        let due = self.custody.installed
            || (!self.custody.withdraw_acked && self.now >= self.custody.retry_at);
        if !due {
            return false;
        }
        self.custody.installed = false;
        self.custody.install_acked = false;
        self.custody.withdrawn_confirmed = false;
        self.node_call(NodeCall::WithdrawKey);
        true
    }

    /// The answer to a key call: what the node lists now.
    pub(super) fn on_keys_answered(&mut self, id: CallId, call: NodeCall, keys: Option<NodeKeys>) {
        match (call, keys) {
            (NodeCall::InstallKey, Some(NodeKeys::Operator)) => {
                if id == self.custody.last_install && self.custody.installed {
                    self.custody.install_acked = true;
                }
            }
            // Answered: the proof comes from the read that follows (rule `reconcile_keys`).
            (NodeCall::WithdrawKey, Some(NodeKeys::Placeholder)) => {
                if !self.custody.installed {
                    self.custody.withdraw_acked = true;
                }
            }
            (NodeCall::ReadKeys, Some(keys)) => self.reconcile_keys(id, keys),
            (call, keys) => {
                let reason = format!("unexpected answer {keys:?}");
                self.on_node_call_failed(id, call, reason);
            }
        }
    }

    /// Rule `reconcile_keys`: what the node lists is the only proof of what it can sign. Only
    /// the placeholder, in an answer to a call made after our last installation: the node
    /// signs nothing as the delegate (a proof of standby, rule `lead_may_be_given_away`); for a
    /// leader that had it installed, the node lost it (it restarted with its placeholder) and
    /// gets it again. The operator's key while we do not want it there: withdrawn again at once.
    pub(super) fn reconcile_keys(&mut self, id: CallId, keys: NodeKeys) {
        match keys {
            NodeKeys::Placeholder => {
                if id <= self.custody.last_install && self.custody.last_install > 0 {
                    return;
                }
                if self.custody.installed {
                    self.custody.installed = false;
                    self.custody.install_acked = false;
                    self.emit_event(Event::OperatorKeyMissing);
                }
                self.custody.withdrawn_confirmed = true;
            }
            NodeKeys::Operator => {
                self.custody.withdrawn_confirmed = false;
                if !self.custody.installed {
                    self.custody.withdraw_acked = false;
                    self.custody.retry_at = self.now;
                    self.emit_event(Event::OperatorKeyUnexpected);
                }
            }
        }
    }

    /// Key custody: the withdrawal of the operator's key was confirmed since our last
    /// installation. Part of rule `lead_may_be_given_away`.
    pub(super) fn key_withdrawal_confirmed(&self) -> bool {
        #[cfg(any(test, feature = "mutation"))]
        if self
            .settings
            .mutation
            .resign_before_key_withdrawal_confirmed
        {
            return self.custody.enabled && !self.custody.installed;
        }
        self.custody.enabled && self.custody.withdrawn_confirmed
    }
}

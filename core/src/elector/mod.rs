//! The decision machine. Every rule about roles and time lives in this module tree, each in one
//! method of [`Elector`] named for the rule it decides (the crate docs list them). The driver
//! hands in inputs with the time and executes what [`Elector::poll_output`] returns.
//!
//! [`Elector`]'s state is grouped by concern, one file each; a sub-state holds its data and
//! computes its own part of the next timeout, and the rules that read or change it live
//! beside it as methods of [`Elector`]:
//! - `lease`: the lease, its keep-alives and our candidate key (rules `lease_deadline`,
//!   `step_down_deadline`, `campaign_allowed`);
//! - `term`: our leadership term (rules `activation_gate`, `wait_out_last_slot`,
//!   `unready_leader`, `give_way_when_node_lost`);
//! - `node`: node calls and readiness probes (rules `reconcile_node`, `node_active_allowed`,
//!   `quiet_window`, `readiness_from_probes`);
//! - `custody`: the operator's key in the node, with key custody (rules `install_key_last`,
//!   `withdraw_key_first`, `reconcile_keys`);
//! - `fence`: the fence and the proof of standby (rules `fence`, `lead_may_be_given_away`,
//!   `report_stuck`);
//! - `handover`: leaving the election (rules `handover_request`, `handover_record`,
//!   `withdraw_when_unready`, `excluded_replica`, `shutdown`);
//! - `dead_term`: the term a crashed previous process left behind (rule `end_dead_term`).
//!
//! An input changes only its own sub-state (`handle_input` dispatches to an `on_*` method in
//! that sub-state's file); the rules then run in one fixed order in `step`.

mod custody;
mod dead_term;
mod fence;
mod handover;
mod lease;
mod node;
mod term;

pub use dead_term::end_dead_term;
pub use fence::STUCK_REPORT_INTERVAL;

use crate::Instant;
use crate::config::{Timing, TimingError};
use crate::protocol::{
    CandidateId, Command, Event, Exclusion, Input, LeaseId, Observation, Output, RememberedTerm,
    Role,
};
use custody::Custody;
use dead_term::TermMemory;
use fence::{Fence, Stuck};
use handover::Leaving;
use lease::{Candidacy, Lease, LeaseState};
use node::{Node, Probe};
use std::collections::VecDeque;
use std::time::Duration;
use term::Term;

/// With nothing else to do, wake up at least this often (keeps `/healthz` fresh).
const IDLE_WAKEUP: Duration = Duration::from_secs(1);

/// Who we are and how we time things.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Our identity in the election (`--value`), matched against handover targets.
    pub value: String,
    /// The timings, already validated or validated by [`Elector::new`].
    pub timing: Timing,
    /// Our own candidacy, as the previous process of this elector left it in `--state-dir`
    /// (rule `end_dead_term`); `None` on a first start or without a state directory.
    pub previous_term: Option<RememberedTerm>,
    /// Key custody: the driver can install the operator's key into the node and withdraw it
    /// (`--producer-key-file`; rules `install_key_last`, `withdraw_key_first`,
    /// `reconcile_keys`).
    pub key_custody: bool,
    /// Deliberate bugs, to prove that the tests and the simulation can catch them.
    #[cfg(any(test, feature = "mutation"))]
    pub mutation: Mutation,
}

impl Settings {
    /// Settings for replica `value`, with no remembered term and no planted bug.
    pub fn new(value: impl Into<String>, timing: Timing) -> Self {
        Settings {
            value: value.into(),
            timing,
            previous_term: None,
            key_custody: false,
            #[cfg(any(test, feature = "mutation"))]
            mutation: Mutation::default(),
        }
    }
}

/// Planted bugs, compiled only for tests (`feature = "mutation"`), never in the product. Each
/// switch breaks one rule on purpose; the tests that must find it prove the checks can fail.
#[cfg(any(test, feature = "mutation"))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mutation {
    /// Breaks rule `step_down_deadline`: step down at the lease deadline minus the drain bound,
    /// without the safety margin, so standby is not confirmed before the lease may expire.
    /// Found by the core's property P1 (`property_check_catches_a_missing_safety_margin`) and
    /// by the simulation's fence discipline (`the_search_finds_the_planted_no_safety_margin_bug`:
    /// fences against healthy nodes).
    pub no_safety_margin: bool,
    /// Breaks rule `lead_may_be_given_away`: resign (with a handover record) as soon as standby
    /// is commanded, without a read confirming it. Found by the core's properties P5 or P7
    /// (`property_check_catches_resigning_before_standby_is_confirmed`) and by the simulation
    /// (`the_search_finds_the_planted_resign_before_confirmed_bug`: two active nodes).
    pub resign_before_standby_confirmed: bool,
    /// Breaks rule `lead_may_be_given_away`: count a fence as proof of standby as soon as it
    /// starts, whatever its outcome. Found by the core's property P7
    /// (`property_check_catches_resigning_when_the_fence_starts`) and by the simulation
    /// (`the_search_finds_the_planted_resign_when_fence_starts_bug`: two active nodes).
    pub resign_when_fence_starts: bool,
    /// Breaks rule `excluded_replica`: an excluded replica counts its node as confirmed
    /// standby as soon as standby is commanded, so it resigns with a handover record without
    /// a read. Found by the core's properties P5 or P7
    /// (`property_check_catches_an_exclusion_that_skips_the_proof`) and by the simulation
    /// (`the_search_finds_the_planted_exclusion_skips_proof_bug`: two active nodes).
    pub exclusion_skips_proof: bool,
    /// Breaks rule `activation_gate` (inequality `activation_delay_covers_early_revocation`):
    /// wait only what a dead previous leader needs, `(restart_bound + drain_bound) x (1 +
    /// drift)`. A previous leader that was cut off from etcd
    /// when etcd revoked its lease early is still active then. Found by the simulation's
    /// early-revocation fault (`the_search_finds_the_planted_short_activation_delay_bug`: two
    /// active nodes).
    pub activation_delay_ignores_early_revocation: bool,
    /// Breaks rule `wait_out_last_slot`: a successor after a clean handover activates at once.
    /// The predecessor's node broadcasts the proposal it signed
    /// before its deactivation was accepted, and the successor's node, preparing within the
    /// tolerated overtime of that slot, signs the same height and round. Found by the core's
    /// property P0 (`property_check_catches_a_handover_that_skips_the_slot_wait`) and by the
    /// simulation's signature check.
    pub handover_skips_slot_wait: bool,
    /// Breaks rule `reconcile_node`'s part of `lead_may_be_given_away`: a fence's success
    /// keeps proving standby after a read sent later said the node is active (the fence did
    /// not stop it, or it restarted active). Found by the core's property P7
    /// (`property_check_catches_a_fence_success_that_outlives_an_active_read`).
    pub fence_success_survives_active_read: bool,
    /// Breaks rule `lead_may_be_given_away` under key custody: the withdrawal counts as proof
    /// as soon as it is sent, not once the node listed only the placeholder. Found by the
    /// simulation's signature check when a withdrawal fails
    /// (`the_search_finds_the_planted_resign_before_key_withdrawal_confirmed_bug`).
    pub resign_before_key_withdrawal_confirmed: bool,
    /// Breaks rule `install_key_last`: the operator's key goes in as soon as we lead, before
    /// the activation gate. A node activated by hand or booted active then signs the
    /// predecessor's slot. Found by the simulation's signature check
    /// (`the_simulation_catches_the_planted_install_key_before_gate_bug`: a standby activated
    /// by hand while its replica takes over).
    pub install_key_before_gate: bool,
}

/// Readiness as the probes tell it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// No probe answered yet.
    Unknown,
    /// The last probe succeeded, or fewer than `unready_threshold` failed since.
    Ready,
    /// `unready_threshold` probes in a row failed.
    Unready,
}

/// The elector's decision machine. See the crate docs for the rules.
pub struct Elector {
    settings: Settings,
    now: Instant,
    out: VecDeque<Output>,
    role: Role,
    /// Why the role last changed (or is about to), for the role change's log line.
    why: String,
    observing: bool,
    /// Set once the node was first confirmed standby and ready (rule `campaign_allowed`).
    started: bool,
    /// The process may exit: nothing more is decided.
    stopped: bool,
    lease: LeaseState,
    candidacy: Candidacy,
    view: Option<Observation>,
    term: Option<Term>,
    /// The leader in the last observation where it was not us: the term a handover record
    /// must name for us to skip the activation delay.
    previous_leader: Option<CandidateId>,
    leaving: Leaving,
    node: Node,
    probe: Probe,
    fencing: Fence,
    stuck: Option<Stuck>,
    memory: TermMemory,
    custody: Custody,
}

impl Elector {
    /// A new elector at time `now`. Refuses an unsafe timing configuration.
    pub fn new(settings: Settings, now: Instant) -> Result<Self, TimingError> {
        settings.timing.validate()?;
        let memory = TermMemory::new(settings.previous_term, now);
        let custody = Custody::new(settings.key_custody, now);
        Ok(Elector {
            settings,
            now,
            out: VecDeque::new(),
            role: Role::Starting,
            why: "elector started".into(),
            observing: false,
            started: false,
            stopped: false,
            lease: LeaseState::new(now),
            candidacy: Candidacy::None,
            view: None,
            term: None,
            previous_leader: None,
            leaving: Leaving::default(),
            node: Node::new(now),
            probe: Probe::new(now),
            fencing: Fence::default(),
            stuck: None,
            memory,
            custody,
        })
    }

    /// The timing this elector runs on (the shell sizes its etcd connection and retries
    /// from it).
    pub fn timing(&self) -> &Timing {
        &self.settings.timing
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Why the role last changed.
    pub fn role_reason(&self) -> &str {
        &self.why
    }

    /// The node's readiness as the probes tell it (rule `readiness_from_probes`).
    pub fn readiness(&self) -> Readiness {
        self.probe.readiness
    }

    /// The lease we hold, if any.
    pub fn lease(&self) -> Option<LeaseId> {
        match self.lease.status {
            Lease::Held { id, .. } => Some(id),
            _ => None,
        }
    }

    /// Our candidate key, once created.
    pub fn candidate(&self) -> Option<CandidateId> {
        match self.candidacy {
            Candidacy::Created(id) => Some(id),
            _ => None,
        }
    }

    /// The latest read of the election.
    pub fn observation(&self) -> Option<&Observation> {
        self.view.as_ref()
    }

    /// The value of the candidate that leads, if any.
    pub fn leader_value(&self) -> Option<&str> {
        self.view
            .as_ref()
            .and_then(|v| v.candidates.first())
            .map(|c| c.value.as_str())
    }

    /// `activate=true` was sent and no `activate=false` since: the node may be active.
    pub fn node_active_commanded(&self) -> bool {
        self.node.active_commanded
    }

    /// A read made after our last `activate=true` said standby.
    pub fn node_standby_confirmed(&self) -> bool {
        self.node.standby_confirmed
    }

    /// The last mode read from the node.
    pub fn node_last_read(&self) -> Option<bool> {
        self.node.last_read
    }

    /// Why this replica is stuck (rule `report_stuck`), if it is: for `/status`, metrics and
    /// systemd's `STATUS=`.
    pub fn stuck(&self) -> Option<&str> {
        self.stuck.as_ref().map(|s| s.reason.as_str())
    }

    /// The node is proven standby (rule `lead_may_be_given_away`).
    pub fn node_proven_standby(&self) -> bool {
        self.lead_may_be_given_away()
    }

    /// A shutdown was requested and the elector has not exited yet (rule `shutdown`).
    pub fn shutting_down(&self) -> bool {
        self.leaving.shutdown_deadline.is_some() && !self.stopped
    }

    /// The operator's exclusion of this replica, as last read (rule `excluded_replica`).
    pub fn exclusion(&self) -> Option<&Exclusion> {
        self.view.as_ref().and_then(|v| v.excluded.as_ref())
    }

    /// Why the leader's node counts as lost in this term (rule `give_way_when_node_lost`).
    pub fn node_lost(&self) -> Option<&str> {
        self.term.as_ref().and_then(|t| t.node_lost.as_deref())
    }

    /// Feeds one input, handled at `now`. `now` earlier than a previous input's is taken as the
    /// previous one: time never runs backwards inside the core. This only dispatches: each
    /// input's effect is an `on_*` method in its sub-state's file, and [`Elector::step`] then
    /// applies every rule.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        self.now = self.now.max(now);
        if self.stopped {
            return;
        }
        match input {
            Input::Timeout => {}
            Input::LeaseGranted {
                lease,
                ttl,
                sent_at,
            } => self.on_lease_granted(lease, ttl, sent_at),
            Input::LeaseGrantFailed { reason } => self.on_lease_grant_failed(reason),
            Input::KeepAliveAcked {
                lease,
                sent_at,
                ttl,
            } => self.on_keepalive_acked(lease, sent_at, ttl),
            Input::KeepAliveFailed { lease, .. } => self.on_keepalive_failed(lease),
            Input::CandidateCreated {
                lease,
                create_revision,
            } => self.on_candidate_created(lease, create_revision),
            Input::CandidateCreateFailed { lease, reason } => {
                self.on_candidate_create_failed(lease, reason)
            }
            Input::Observed(observation) => self.on_observed_from_etcd(observation),
            Input::ObserveFailed { .. } => {}
            Input::NodeCallDone {
                id,
                call,
                active,
                keys,
            } => self.on_node_call_done(id, call, active, keys),
            Input::NodeCallFailed { id, call, reason } => {
                self.on_node_call_failed(id, call, reason)
            }
            Input::Probed { ready, detail } => self.readiness_from_probes(ready, detail),
            Input::Resigned { lease } if self.is_dead_term(lease) => self.on_dead_term_ended(),
            Input::ResignFailed { lease, .. } if self.is_dead_term(lease) => {
                self.on_dead_term_resign_failed()
            }
            Input::Resigned { lease } => self.on_resigned(lease),
            Input::ResignFailed { lease, reason } => self.on_resign_failed(lease, reason),
            Input::FenceDone {
                run,
                success,
                detail,
            } => self.on_fence_done(run, success, detail),
            Input::ShutdownRequested => self.on_shutdown_requested(),
            Input::HandoverRequested { to } => self.request_handover(to, "local request".into()),
        }
        self.step();
    }

    /// The next thing to do, or [`Output::Timeout`] when there is nothing until then.
    pub fn poll_output(&mut self) -> Output {
        if let Some(output) = self.out.pop_front() {
            return output;
        }
        Output::Timeout(self.next_timeout())
    }

    /// Applies every rule after each input, in an order where each sees what the earlier ones
    /// decided: lease and term first, then the node and the fence, then leaving or
    /// campaigning, then what to report.
    fn step(&mut self) {
        if !self.observing {
            self.observing = true;
            self.emit(Command::Observe);
        }
        self.enforce_lease_deadline();
        self.end_dead_term_in_etcd();
        self.pass_activation_gate();
        self.unready_leader();
        self.give_way_when_node_lost();
        self.excluded_replica();
        self.advance_handover();
        self.drive_node();
        self.fence();
        self.drive_probe();
        self.withdraw_when_unready();
        self.drive_resign();
        self.drive_campaign();
        self.drive_keepalive();
        self.shutdown();
        self.report_stuck();
        self.remember_term();
        self.update_role();
    }

    /// An excluded replica whose node is confirmed standby has started as far as it may: it
    /// waits as a standby, not as a starting replica.
    fn waits_excluded(&self) -> bool {
        self.excluded() && self.node.standby_confirmed
    }

    /// The role shown to operators, derived from the sub-states; a change is an event.
    fn update_role(&mut self) {
        let role = if self.stopped {
            Role::Stopped
        } else if self.node.draining && !self.lead_may_be_given_away() {
            Role::SteppingDown
        } else if self.node.active_commanded {
            Role::Active
        } else if self.leaving.resigning.is_some() || self.leaving.shutdown_deadline.is_some() {
            Role::Resigning
        } else if self.term.is_some() && self.lease().is_some() {
            Role::Leader
        } else if self.candidate().is_some() {
            Role::Candidate
        } else if !self.started && !self.waits_excluded() {
            Role::Starting
        } else {
            Role::Standby
        };
        if role != self.role {
            let from = self.role;
            self.role = role;
            self.emit_event(Event::RoleChanged {
                from,
                to: role,
                reason: self.why.clone(),
            });
        }
    }

    fn emit(&mut self, command: Command) {
        self.out.push_back(Output::Command(command));
    }

    fn emit_event(&mut self, event: Event) {
        self.out.push_back(Output::Event(event));
    }

    /// The earliest instant a rule may decide something: each sub-state names its own.
    fn next_timeout(&self) -> Instant {
        let now = self.now;
        if self.stopped {
            return now + Duration::from_secs(3600);
        }
        if !self.observing {
            // Nothing was decided yet: the first step is due now.
            return now;
        }
        let timing = self.timing();
        let mut at: Vec<Instant> = vec![now + IDLE_WAKEUP];
        self.lease
            .wake_times(self.step_down_deadline(), timing, &mut at);
        if let Some(term) = &self.term {
            term.wake_times(timing, &mut at);
        }
        self.node.wake_times(&mut at);
        self.probe.wake_times(&mut at);
        self.fencing.wake_times(&mut at);
        if let Some(stuck) = &self.stuck {
            at.push(stuck.next_report_at);
        }
        self.leaving.wake_times(timing, &mut at);
        self.memory.wake_times(&mut at);
        if self.node.in_flight.is_none() {
            self.custody.wake_times(&mut at);
        }
        at.into_iter()
            .filter(|t| *t > now)
            .min()
            .unwrap_or(now + IDLE_WAKEUP)
    }
}

//! The decision machine. Every rule about roles and time lives in this file, each in one
//! function named for what it decides. The driver hands in inputs with the time and executes
//! what [`Elector::poll_output`] returns.

use crate::Instant;
use crate::config::{Timing, TimingError};
use crate::io::*;
use std::collections::VecDeque;
use std::time::Duration;

/// First wait before retrying etcd after a failure; doubles up to [`ETCD_RETRY_MAX`].
const ETCD_RETRY_MIN: Duration = Duration::from_millis(200);
const ETCD_RETRY_MAX: Duration = Duration::from_secs(5);
/// With nothing else to do, wake up at least this often (keeps `/healthz` fresh).
const IDLE_WAKEUP: Duration = Duration::from_secs(1);
/// While stuck (rule `report_stuck`), [`Event::Stuck`] is repeated this often, so that the
/// error is in every few seconds of the log, not only once at its start.
pub const STUCK_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Who we are and how we time things.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Our identity in the election (`--value`), matched against handover targets.
    pub value: String,
    pub timing: Timing,
    /// Our own candidacy, as the previous process of this elector left it in `--state-dir`
    /// (rule `end_dead_term`); `None` on a first start or without a state directory.
    pub previous_term: Option<RememberedTerm>,
    /// Deliberate bugs, to prove that the tests and the simulation can catch them.
    #[cfg(any(test, feature = "mutation"))]
    pub mutation: Mutation,
}

impl Settings {
    pub fn new(value: impl Into<String>, timing: Timing) -> Self {
        Settings {
            value: value.into(),
            timing,
            previous_term: None,
            #[cfg(any(test, feature = "mutation"))]
            mutation: Mutation::default(),
        }
    }
}

/// Planted bugs, compiled only for tests (`feature = "mutation"`), never in the product.
#[cfg(any(test, feature = "mutation"))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mutation {
    /// Step down at the lease deadline minus the drain bound only: no safety margin.
    pub no_safety_margin: bool,
    /// Resign (with a handover record) as soon as standby is commanded, without confirming it.
    pub resign_before_standby_confirmed: bool,
    /// Count a fence as proof of standby as soon as it starts, whatever its outcome.
    pub resign_when_fence_starts: bool,
}

/// Readiness as the probes tell it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Unknown,
    Ready,
    /// `unready_threshold` probes in a row failed.
    Unready,
}

#[derive(Clone, Debug, PartialEq)]
enum Lease {
    None { retry_at: Instant },
    Granting,
    Held { id: LeaseId, deadline: Instant },
}

#[derive(Clone, Debug, PartialEq)]
enum Candidacy {
    None,
    Creating,
    Created(CandidateId),
}

/// Our current leadership term: our key is first in the latest observation.
#[derive(Clone, Debug)]
struct Term {
    id: CandidateId,
    /// Activation is allowed from here on (rule: `activation_gate`).
    activation_not_before: Instant,
    /// Once passed, every earlier leader's node is known to be standby, so our own clean
    /// resignation may tell the next leader to skip the delay.
    gate_passed: bool,
    /// Why we lead and how the gate was set, for the activation's log line.
    reason: String,
    /// An `activate=true` call failed or timed out in this term. It may still land later (the
    /// node's server can finish the handler after we gave up), so this term never writes a
    /// handover record (rule `handover_record`).
    activation_failed: bool,
    /// The last time the node was shown active by a read, or when this term first commanded
    /// it active (rule `give_way_when_node_lost`). `None` until the first activation.
    active_evidence_at: Option<Instant>,
    /// The node was found lost in this term (reported once).
    node_lost: Option<String>,
    /// The node read standby although commanded active, and has not read active since
    /// (reported once per such episode).
    standby_unexpected: bool,
    /// Re-activating after such a read waits until then, and waits twice as long each time
    /// it happens again without the node ever reading active in between (from
    /// `node_check_interval` up to `node_lost_after`): a node that refuses activation is not
    /// asked every few hundred milliseconds, and the role does not flap.
    reactivate_not_before: Instant,
    reactivate_backoff: Duration,
}

#[derive(Clone, Debug)]
struct Handover {
    to: Option<String>,
    reason: String,
    started: Instant,
    /// The successor is in place and we are demoting.
    committed: bool,
}

#[derive(Clone, Debug)]
struct Resigning {
    lease: LeaseId,
    candidate: Option<CandidateId>,
    record: Option<HandoverRecord>,
    clear_request: Option<i64>,
    in_flight: bool,
    retry_at: Instant,
    /// After resigning, campaign again (handover, stepping aside) rather than wait.
    done: bool,
}

/// What we know about the node, from the calls made and their answers.
#[derive(Clone, Debug)]
struct Node {
    next_id: CallId,
    in_flight: Option<(CallId, NodeCall)>,
    /// `activate=true` was sent and no `activate=false` since: the node may be active.
    active_commanded: bool,
    /// `activate=false` was acknowledged and no `activate=true` sent since.
    standby_acked: bool,
    /// When the last `activate=false` was acknowledged.
    standby_acked_at: Instant,
    /// A read made after our last `activate=true` said `{"active":false}`.
    standby_confirmed: bool,
    /// We demoted an active node and have not confirmed it standby yet.
    draining: bool,
    /// Id of the last `activate=true` call; reads older than it prove nothing.
    last_activate: CallId,
    last_read: Option<bool>,
    /// Id of the call that made `last_read`.
    last_read_id: CallId,
    /// Why the last node call failed, for the reports of rules `fence` and
    /// `give_way_when_node_lost`.
    last_failure: Option<String>,
    /// The leader's node read standby although commanded active: it may be activated again
    /// only after a readiness probe sent after this instant succeeded.
    fresh_probe_after: Option<Instant>,
    next_read_at: Instant,
    retry_at: Instant,
}

#[derive(Clone, Debug, Default)]
struct Fence {
    /// Standby must be confirmed by then, or the fence command runs.
    deadline: Option<Instant>,
    /// The fence command was started in this episode.
    fired: bool,
    /// Its last run finished.
    done: bool,
    /// Its last run reported success: the node can no longer sign (proof of standby).
    succeeded: bool,
    /// Reads with a call id from here on were sent after the fence reported success.
    proof_from_call: CallId,
    /// A failed run is repeated at this instant while standby is still not proven.
    retry_at: Option<Instant>,
    /// The id of the last run started; answers for other runs are ignored.
    run: u64,
    /// Runs that failed in this episode.
    failures: u32,
    /// What the last run said.
    detail: String,
}

/// Rule `end_dead_term`: the dead term of a crashed previous process of this elector.
#[derive(Clone, Debug)]
struct DeadTerm {
    term: RememberedTerm,
    /// The ending in flight writes a handover record.
    record: bool,
    in_flight: bool,
    retry_at: Instant,
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

/// Rule `report_stuck`: what keeps this replica from a safe or useful state on its own.
#[derive(Clone, Debug)]
struct Stuck {
    reason: String,
    next_report_at: Instant,
}

/// The elector's decision machine. See the crate docs for the rules.
pub struct Elector {
    settings: Settings,
    now: Instant,
    out: VecDeque<Output>,
    role: Role,
    why: String,
    observing: bool,
    /// Set once the node was first confirmed standby and ready (rule `campaign_allowed`).
    started: bool,
    shutdown_deadline: Option<Instant>,
    stopped: bool,
    lease: Lease,
    etcd_backoff: Duration,
    keepalive_in_flight: bool,
    next_keepalive_at: Instant,
    candidacy: Candidacy,
    view: Option<Observation>,
    term: Option<Term>,
    /// The leader in the last observation where it was not us: the term a handover record
    /// must name for us to skip the activation delay.
    previous_leader: Option<CandidateId>,
    handover: Option<Handover>,
    handled_request: Option<i64>,
    resigning: Option<Resigning>,
    node: Node,
    readiness: Readiness,
    probe_failures: u32,
    probe_in_flight: bool,
    next_probe_at: Instant,
    /// When the last readiness probe was sent (rule `give_way_when_node_lost`'s fresh probe).
    probe_sent_at: Instant,
    fence: Fence,
    /// Ids of fence runs, so that a late answer is never taken for a later run's.
    fence_runs: u64,
    stuck: Option<Stuck>,
    /// A term of ours left by a crashed previous process (rule `end_dead_term`).
    dead_term: Option<DeadTerm>,
    /// What we last asked the shell to remember (rule `end_dead_term`).
    remembered: Option<RememberedTerm>,
}

impl Elector {
    /// A new elector at time `now`. Refuses an unsafe timing configuration.
    pub fn new(settings: Settings, now: Instant) -> Result<Self, TimingError> {
        settings.timing.validate()?;
        let settings_previous = settings.previous_term;
        Ok(Elector {
            settings,
            now,
            out: VecDeque::new(),
            role: Role::Starting,
            why: "elector started".into(),
            observing: false,
            started: false,
            shutdown_deadline: None,
            stopped: false,
            lease: Lease::None { retry_at: now },
            etcd_backoff: ETCD_RETRY_MIN,
            keepalive_in_flight: false,
            next_keepalive_at: now,
            candidacy: Candidacy::None,
            view: None,
            term: None,
            previous_leader: None,
            handover: None,
            handled_request: None,
            resigning: None,
            node: Node {
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
            },
            readiness: Readiness::Unknown,
            probe_failures: 0,
            probe_in_flight: false,
            next_probe_at: now,
            probe_sent_at: now,
            fence: Fence::default(),
            fence_runs: 0,
            stuck: None,
            dead_term: settings_previous.map(|term| DeadTerm {
                term,
                record: false,
                in_flight: false,
                retry_at: now,
            }),
            remembered: settings_previous,
        })
    }

    fn timing(&self) -> &Timing {
        &self.settings.timing
    }

    // ----- public view, for `/status` and tests -----------------------------------------

    pub fn role(&self) -> Role {
        self.role
    }
    /// Why the role last changed.
    pub fn role_reason(&self) -> &str {
        &self.why
    }
    pub fn readiness(&self) -> Readiness {
        self.readiness
    }
    pub fn lease(&self) -> Option<LeaseId> {
        match self.lease {
            Lease::Held { id, .. } => Some(id),
            _ => None,
        }
    }
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
    pub fn node_active_commanded(&self) -> bool {
        self.node.active_commanded
    }
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
        self.shutdown_deadline.is_some() && !self.stopped
    }
    /// Why the leader's node counts as lost in this term (rule `give_way_when_node_lost`).
    pub fn node_lost(&self) -> Option<&str> {
        self.term.as_ref().and_then(|t| t.node_lost.as_deref())
    }

    /// Rule `lease_deadline`: the send time of the last acknowledged keep-alive (or of the
    /// grant) plus the granted TTL scaled down by the clock drift bound. Never the receive
    /// time: the request may have been served long before its answer arrived, and etcd's lease
    /// was reset when it was served.
    pub fn lease_deadline(&self) -> Option<Instant> {
        match self.lease {
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

    fn step_down_lead(&self) -> Duration {
        #[cfg(any(test, feature = "mutation"))]
        if self.settings.mutation.no_safety_margin {
            return self.timing().drain_bound;
        }
        self.timing().step_down_lead()
    }

    // ----- sans-IO interface ------------------------------------------------------------

    /// Feeds one input, handled at `now`. `now` earlier than a previous input's is taken as the
    /// previous one: time never runs backwards inside the core.
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
            Input::LeaseGrantFailed { reason } => {
                if self.lease == Lease::Granting {
                    self.why = format!("etcd: lease grant failed: {reason}");
                    self.lease = Lease::None {
                        retry_at: self.etcd_retry_at(),
                    };
                }
            }
            Input::KeepAliveAcked {
                lease,
                sent_at,
                ttl,
            } => self.on_keepalive_acked(lease, sent_at, ttl),
            Input::KeepAliveFailed { lease, .. } => {
                if self.lease() == Some(lease) {
                    self.keepalive_in_flight = false;
                    // Retry soon: every missed round brings the step-down deadline closer.
                    self.next_keepalive_at = self.now + self.timing().keepalive_interval / 4;
                }
            }
            Input::CandidateCreated {
                lease,
                create_revision,
            } => {
                if self.lease() == Some(lease) && self.candidacy == Candidacy::Creating {
                    self.etcd_backoff = ETCD_RETRY_MIN;
                    self.candidacy = Candidacy::Created(CandidateId {
                        lease,
                        create_revision,
                    });
                    self.why = format!("candidate key created at revision {create_revision}");
                    // Fix (tests): the watch may report our new key before the create call
                    // returns; read the latest view again now that we know the key is ours,
                    // or we would wait for the next change of the election to lead.
                    if let Some(view) = self.view.clone() {
                        self.on_observed(view);
                    }
                }
            }
            Input::CandidateCreateFailed { lease, reason } => {
                if self.lease() == Some(lease) && self.candidacy == Candidacy::Creating {
                    self.why = format!("etcd: creating candidate key failed: {reason}");
                    self.candidacy = Candidacy::None;
                    self.next_keepalive_at = self.next_keepalive_at.min(self.now);
                    if let Lease::Held { .. } = self.lease {
                        // Try again after a pause; a lost lease is noticed by its keep-alive.
                        self.resign_abandoned_lease_if_stale();
                    }
                }
            }
            Input::Observed(observation) => self.on_observed(observation),
            Input::ObserveFailed { .. } => {}
            Input::NodeCallDone { id, call, active } => self.on_node_call_done(id, call, active),
            Input::NodeCallFailed { id, call, reason } => {
                self.on_node_call_failed(id, call, reason)
            }
            Input::Probed { ready, detail } => self.on_probed(ready, detail),
            Input::Resigned { lease } if self.is_dead_term(lease) => self.on_dead_term_ended(),
            Input::ResignFailed { lease, .. } if self.is_dead_term(lease) => {
                let retry_at = self.now + self.timing().keepalive_interval;
                if let Some(dead) = self.dead_term.as_mut() {
                    dead.in_flight = false;
                    dead.retry_at = retry_at;
                }
            }
            Input::Resigned { lease } => self.on_resigned(lease),
            Input::ResignFailed { lease, reason } => {
                let retry_at = self.now + self.timing().keepalive_interval / 4;
                if let Some(r) = self.resigning.as_mut().filter(|r| r.lease == lease) {
                    r.in_flight = false;
                    r.retry_at = retry_at;
                    self.why = format!("etcd: resign failed: {reason}");
                }
            }
            Input::FenceDone {
                run,
                success,
                detail,
            } => self.on_fence_done(run, success, detail),
            Input::ShutdownRequested => {
                if self.shutdown_deadline.is_none() {
                    self.shutdown_deadline = Some(self.now + self.timing().shutdown_grace());
                    self.why = "shutdown requested".into();
                }
            }
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

    // ----- input handlers ---------------------------------------------------------------

    fn on_lease_granted(&mut self, lease: LeaseId, ttl: Duration, sent_at: Instant) {
        if self.lease != Lease::Granting {
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
        self.etcd_backoff = ETCD_RETRY_MIN;
        self.lease = Lease::Held {
            id: lease,
            deadline: sent_at + self.timing().drift_scaled(ttl),
        };
        self.next_keepalive_at = sent_at + self.timing().keepalive_interval;
        self.keepalive_in_flight = false;
        self.candidacy = Candidacy::None;
    }

    fn on_keepalive_acked(&mut self, lease: LeaseId, sent_at: Instant, ttl: Duration) {
        let Lease::Held { id, deadline } = self.lease else {
            return;
        };
        if id != lease {
            return;
        }
        self.keepalive_in_flight = false;
        if ttl.is_zero() {
            self.lose_lease("etcd says the lease no longer exists");
            return;
        }
        let renewed = sent_at + self.timing().drift_scaled(ttl);
        self.lease = Lease::Held {
            id,
            deadline: deadline.max(renewed),
        };
        self.next_keepalive_at = (sent_at + self.timing().keepalive_interval).max(self.now);
    }

    fn on_observed(&mut self, observation: Observation) {
        if let Candidacy::Created(ours) = self.candidacy {
            let present = observation.candidates.iter().any(|c| c.id == ours);
            if !present && observation.revision >= ours.create_revision {
                self.view = Some(observation);
                if self.resigning.is_some() {
                    // Our own resignation deleted it; its answer finishes the job.
                    self.candidacy = Candidacy::None;
                    self.term = None;
                } else {
                    self.lose_lease("our candidate key was deleted");
                }
                return;
            }
        }
        let ours = self.candidate();
        let first = observation.candidates.first().map(|c| c.id);
        match (first, ours) {
            (Some(first), Some(ours)) if first == ours => {
                if self.term.as_ref().map(|t| t.id) != Some(ours) {
                    self.begin_term(ours, &observation);
                }
            }
            (first, ours) => {
                self.term = None;
                // Fix (tests): remember the leader only when it is the one candidate ahead of
                // our key. With more ahead (or our key absent, when others may still be created
                // ahead of it) another may lead and crash between it and us, unseen if the
                // watch skips changes; a record naming the leader seen earlier then proves
                // nothing about the term that ended just before ours.
                let our_position =
                    ours.and_then(|o| observation.candidates.iter().position(|c| c.id == o));
                self.previous_leader = first.filter(|_| our_position == Some(1));
            }
        }
        self.consider_handover_request(&observation);
        self.view = Some(observation);
    }

    /// Rule `activation_gate`: a new leader waits `activation_delay` before activating, long
    /// enough for a dead or hung previous leader's node to be forced standby and drain
    /// (`restart_bound + drain_bound`, with drift). It skips the wait only when the previous
    /// leader's term ended with a handover record: that leader confirmed its node standby, and
    /// had itself passed the gate, so no earlier node can still be active.
    fn begin_term(&mut self, id: CandidateId, observation: &Observation) {
        let clean = matches!(
            (&observation.handover_record, self.previous_leader),
            (Some(record), Some(previous)) if record.from == previous
        );
        let delay = if clean {
            Duration::ZERO
        } else {
            self.timing().activation_delay
        };
        let reason = if clean {
            "our key is first; the previous leader handed over cleanly: activating at once".into()
        } else {
            format!(
                "our key is first; activation delay {:.1}s (previous leader not known standby)",
                delay.as_secs_f64()
            )
        };
        self.why = reason.clone();
        self.term = Some(Term {
            id,
            activation_not_before: self.now + delay,
            gate_passed: false,
            reason,
            activation_failed: false,
            active_evidence_at: None,
            node_lost: None,
            standby_unexpected: false,
            reactivate_not_before: self.now,
            reactivate_backoff: self.timing().node_check_interval,
        });
    }

    /// Rule `handover_request`: an operator asked for a handover. The leader hands over once
    /// its successor is next in line; a candidate ahead of a named target steps aside (it
    /// resigns and campaigns again, behind the target).
    fn consider_handover_request(&mut self, observation: &Observation) {
        let Some(request) = observation.handover_request.clone() else {
            return;
        };
        if self.handled_request == Some(request.revision) {
            return;
        }
        let Some(ours) = self.candidate() else {
            return;
        };
        let position = |id: CandidateId| observation.candidates.iter().position(|c| c.id == id);
        let our_position = position(ours);
        if our_position == Some(0) {
            self.handled_request = Some(request.revision);
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
            && self.resigning.is_none()
            && self.start_resign(None)
        {
            self.handled_request = Some(request.revision);
            self.why = format!("stepping aside for handover to {target}");
        }
    }

    fn request_handover(&mut self, to: Option<String>, reason: String) {
        let to_us = to.as_deref() == Some(self.settings.value.as_str());
        if self.term.is_none() || self.handover.is_some() || to_us {
            return;
        }
        self.handover = Some(Handover {
            to,
            reason,
            started: self.now,
            committed: false,
        });
    }

    fn on_node_call_done(&mut self, id: CallId, call: NodeCall, active: Option<bool>) {
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
                Some(active) => self.on_mode_read(id, active),
                None => self.on_node_call_failed(id, call, "no mode in the answer".into()),
            },
        }
    }

    /// Rule `reconcile_node`: a read is the only proof of the node's mode. `false` from a read
    /// made after our last activation confirms standby. `true` while we do not want the node
    /// active commands standby again at once; `false` while we lead means the node restarted
    /// and may be activated again.
    fn on_mode_read(&mut self, id: CallId, active: bool) {
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
            if self.fence.succeeded && id >= self.fence.proof_from_call {
                // A read sent after the fence reported success says active: the fence did not
                // stop the node (or it restarted active). Its success proves nothing any more.
                self.fence.succeeded = false;
                self.fence.fired = false;
                self.fence.deadline = Some(self.now + self.timing().step_down_lead());
            }
            // Fix (tests): a resignation retried after a failure must not carry a record made
            // while standby was confirmed once the node is found active again (it restarted
            // active): the record tells the next leader to skip its activation delay.
            if let Some(r) = self.resigning.as_mut() {
                r.record = None;
            }
            if !self.node.active_commanded {
                // Fix (tests): a node that acknowledged `activate=false` but still reads active
                // is finishing its round; keep reading it every `confirm_poll_interval` (the
                // pace `margin_covers_standby_confirmation` assumes). Re-sending the command on
                // every such read made SetStandby/ReadMode loop as fast as the node answers.
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
                if !self.node.draining && self.fence.deadline.is_none() {
                    self.emit_event(Event::NodeActiveUnexpectedly);
                    self.fence.deadline = Some(self.now + self.timing().step_down_lead());
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
                self.fence = Fence::default();
                self.emit_event(Event::StandbyConfirmed);
            }
        }
    }

    fn on_node_call_failed(&mut self, id: CallId, call: NodeCall, reason: String) {
        if self.node.in_flight.map(|(i, _)| i) == Some(id) {
            self.node.in_flight = None;
        }
        if call == NodeCall::SetStandby {
            self.node.standby_acked = false;
        }
        if call == NodeCall::SetActive
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
        };
        self.node.last_failure = Some(format!("{call_name} failed: {reason}"));
        // Whatever failed, try again after a short pause, not in a tight loop.
        let pause = self.timing().confirm_poll_interval;
        self.node.retry_at = self.now + pause;
        self.node.next_read_at = self.node.next_read_at.max(self.now + pause);
    }

    /// Rule `readiness`: ready after one good probe; unready after `unready_threshold` failed
    /// probes in a row, so that one slow answer does not move leadership.
    fn on_probed(&mut self, ready: bool, _detail: String) {
        self.probe_in_flight = false;
        if ready {
            self.probe_failures = 0;
            self.readiness = Readiness::Ready;
            if self
                .node
                .fresh_probe_after
                .is_some_and(|after| self.probe_sent_at >= after)
            {
                self.node.fresh_probe_after = None;
            }
        } else {
            self.probe_failures = self.probe_failures.saturating_add(1);
            if self.probe_failures >= self.timing().unready_threshold {
                self.readiness = Readiness::Unready;
            }
        }
    }

    /// Rule `fence`, its answer: only a run that reported success proves standby. A failed run
    /// is repeated every `fence_retry_interval` while the node is not proven standby.
    fn on_fence_done(&mut self, run: u64, success: bool, detail: String) {
        if run != self.fence.run || !self.fence.fired || self.fence.done {
            return;
        }
        self.fence.done = true;
        self.fence.succeeded = success;
        self.fence.detail = detail.clone();
        if success {
            // Reads sent from now on see the fenced node; earlier ones may not.
            self.fence.proof_from_call = self.node.next_id;
            self.fence.retry_at = None;
        } else {
            self.fence.failures += 1;
            self.fence.retry_at = Some(self.now + self.timing().fence_retry_interval());
        }
        self.emit_event(Event::FenceFinished { success, detail });
    }

    fn is_dead_term(&self, lease: LeaseId) -> bool {
        self.dead_term
            .as_ref()
            .is_some_and(|d| d.in_flight && d.term.id.lease == lease)
    }

    fn on_dead_term_ended(&mut self) {
        let Some(dead) = self.dead_term.take() else {
            return;
        };
        self.emit_event(Event::DeadTermEnded {
            id: dead.term.id,
            record: dead.record,
        });
        if self.remembered == Some(dead.term) {
            self.remembered = None;
            self.emit(Command::RememberTerm { term: None });
        }
    }

    fn on_resigned(&mut self, lease: LeaseId) {
        let Some(resigning) = self.resigning.as_mut().filter(|r| r.lease == lease) else {
            return;
        };
        resigning.done = true;
        resigning.in_flight = false;
        if self.lease() == Some(lease) {
            self.drop_lease();
        }
        self.handover = None;
        self.resigning = None;
        self.lease = Lease::None { retry_at: self.now };
        if self.remembered.is_some_and(|r| r.id.lease == lease) {
            self.remembered = None;
            self.emit(Command::RememberTerm { term: None });
        }
    }

    // ----- the rules, applied after every input -----------------------------------------

    fn step(&mut self) {
        if !self.observing {
            self.observing = true;
            self.emit(Command::Observe);
        }
        self.enforce_lease_deadline();
        self.end_dead_term_on_start();
        self.pass_activation_gate();
        self.decide_unready_leader();
        self.give_way_when_node_lost();
        self.advance_handover();
        self.drive_node();
        self.drive_fence();
        self.drive_probe();
        self.drive_resign();
        self.drive_campaign();
        self.drive_keepalive();
        self.finish_shutdown();
        self.report_stuck();
        self.remember_term();
        self.update_role();
    }

    /// Rule `end_dead_term`, applied: a restarted elector whose previous process died leading
    /// (or as a candidate) ends that term as soon as its node is confirmed standby by a read,
    /// instead of letting the next leader wait for the lease to expire and then its activation
    /// delay. Once the key is gone (ended, expired, or never there) nothing is left to do.
    fn end_dead_term_on_start(&mut self) {
        let Some(dead) = &self.dead_term else {
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
            self.dead_term = None;
            return;
        }
        let confirmed = self.standby_confirmed_by_read();
        let Some(record) = end_dead_term(&dead.term, &self.settings.value, view, confirmed) else {
            return;
        };
        let id = dead.term.id;
        if let Some(dead) = self.dead_term.as_mut() {
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
    fn remember_term(&mut self) {
        let Candidacy::Created(id) = self.candidacy else {
            return;
        };
        let record_allowed = self
            .term
            .as_ref()
            .is_some_and(|t| t.id == id && t.gate_passed && !t.activation_failed);
        let term = Some(RememberedTerm { id, record_allowed });
        if self.remembered != term {
            self.remembered = term;
            self.emit(Command::RememberTerm { term });
        }
    }

    /// Rule `lease_deadline`, enforced: past the deadline the lease is gone as far as we may
    /// assume, whatever etcd says later.
    fn enforce_lease_deadline(&mut self) {
        if let Lease::Held { deadline, .. } = self.lease
            && self.now >= deadline
        {
            self.lose_lease("lease deadline passed without a keep-alive ack");
        }
    }

    fn pass_activation_gate(&mut self) {
        let now = self.now;
        if let Some(term) = self.term.as_mut()
            && !term.gate_passed
            && now >= term.activation_not_before
        {
            term.gate_passed = true;
        }
    }

    /// Rule `unready_leader`: a leader whose node stays unready hands over, so a ready standby
    /// takes over without waiting for the lease to expire; unless nobody else is a candidate,
    /// as stepping down would gain nothing.
    fn decide_unready_leader(&mut self) {
        if self.readiness != Readiness::Unready || self.term.is_none() || self.handover.is_some() {
            return;
        }
        if self.view.as_ref().is_some_and(|v| v.candidates.len() > 1) {
            self.why = "handing over: node unready".into();
            self.handover = Some(Handover {
                to: None,
                reason: "node unready".into(),
                started: self.now,
                committed: true,
            });
        }
    }

    /// Rule `give_way_when_node_lost`: a leader whose node has not been shown active by a read
    /// for `node_lost_after` (since its first `activate=true` of the term, or since the last
    /// read that said active) gives way, so that a healthy replica signs instead: the node
    /// died, its admin endpoint broke, or it refuses to activate. It hands over like an unready
    /// leader, and so gives the lead away only once the node is proven standby (rule
    /// `lead_may_be_given_away`); with nobody to hand over to it keeps trying and is reported
    /// stuck (rule `report_stuck`).
    fn give_way_when_node_lost(&mut self) {
        let lost_after = self.timing().node_lost_after;
        let now = self.now;
        let Some(term) = self.term.as_mut() else {
            return;
        };
        let Some(evidence) = term.active_evidence_at else {
            return;
        };
        if now < evidence + lost_after {
            return;
        }
        if term.node_lost.is_none() {
            let why = match (&self.node.last_failure, self.node.last_read) {
                (Some(failure), _) => failure.clone(),
                (None, Some(false)) => "it reads standby after activate=true".into(),
                (None, _) => "no read said active".into(),
            };
            let reason = format!(
                "node not shown active for {:.1}s: {why}",
                now.saturating_duration_since(evidence).as_secs_f64()
            );
            term.node_lost = Some(reason.clone());
            self.emit_event(Event::NodeLost { reason });
        }
        if self.handover.is_some() || self.shutdown_deadline.is_some() {
            return;
        }
        if self.view.as_ref().is_some_and(|v| v.candidates.len() > 1) {
            let reason = self.node_lost().unwrap_or_default().to_string();
            self.why = format!("handing over: node lost ({reason})");
            self.handover = Some(Handover {
                to: None,
                reason: format!("node lost ({reason})"),
                started: now,
                committed: true,
            });
        }
    }

    fn advance_handover(&mut self) {
        let Some(handover) = self.handover.as_mut() else {
            return;
        };
        if self.term.is_none() && self.resigning.is_none() && !handover.committed {
            self.handover = None;
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
                self.handover = None;
                return;
            }
        }
        let committed = handover.committed;
        // Rule `lead_may_be_given_away` decides when; `handover_record` whether the successor
        // may skip its activation delay.
        if committed && self.resigning.is_none() {
            let record = self.clean_handover_record();
            self.start_resign(record);
        }
    }

    /// A read made after our last `activate=true` said `active:false` (or, under a planted
    /// bug, standby was merely commanded).
    fn standby_confirmed_by_read(&self) -> bool {
        #[cfg(any(test, feature = "mutation"))]
        if self.settings.mutation.resign_before_standby_confirmed {
            return !self.node.active_commanded && self.node.in_flight.is_none();
        }
        self.node.standby_confirmed
    }

    /// Rule `lead_may_be_given_away`: our key may be deleted, our lease revoked and a handover
    /// record written only while the node is *proven* standby: a read made after our last
    /// `activate=true` said `active:false`, or the fence reported success since. Starting a
    /// fence proves nothing, and neither does a timeout: until there is proof, we keep the
    /// lease alive so that no other node activates while ours may still sign.
    fn lead_may_be_given_away(&self) -> bool {
        #[cfg(any(test, feature = "mutation"))]
        if self.settings.mutation.resign_when_fence_starts && self.fence.fired {
            return true;
        }
        self.standby_confirmed_by_read() || self.fence.succeeded
    }

    /// Rule `handover_record`: written only when our node is confirmed standby *by a read* (a
    /// fence's success says the node is stopped, not when it stopped), we passed the
    /// activation gate (so no earlier leader's node can be active either), and no
    /// `activate=true` of this term failed or timed out (it could still land after the read).
    fn clean_handover_record(&self) -> Option<HandoverRecord> {
        let term = self.term.as_ref()?;
        let confirmed = self.standby_confirmed_by_read();
        (term.gate_passed && confirmed && !term.activation_failed).then(|| HandoverRecord {
            from: term.id,
            value: self.settings.value.clone(),
        })
    }

    /// Rule `node_active_allowed`: the node may be active only while we lead (our key first,
    /// lease held, before the step-down deadline), with no shutdown or handover under way. To
    /// *become* active it must also be ready, past the activation gate, and have at least one
    /// keep-alive round of room before the step-down deadline.
    fn node_active_allowed(&self) -> bool {
        if self.shutdown_deadline.is_some()
            || self.handover.as_ref().is_some_and(|h| h.committed)
            || self.resigning.is_some()
        {
            return false;
        }
        let (Some(term), Some(step_down)) = (&self.term, self.step_down_deadline()) else {
            return false;
        };
        if self.candidate() != Some(term.id) || self.now >= step_down {
            return false;
        }
        if self.node.active_commanded {
            return true;
        }
        // Fix (tests): `Ready` tolerates up to `unready_threshold - 1` failed probes so that
        // one slow answer does not move leadership; *becoming* active also needs the latest
        // probe to have succeeded.
        // A node that read standby while we led is activated again only after a probe sent
        // since then succeeded: it may have restarted and not be ready yet.
        self.readiness == Readiness::Ready
            && self.probe_failures == 0
            && self.node.fresh_probe_after.is_none()
            && self.now >= term.reactivate_not_before
            && term.gate_passed
            && self.now + self.timing().activation_room() <= step_down
    }

    /// Rules `step_down_deadline` and `reconcile_node`, as node calls. One call at a time:
    /// answers then come back in order, and a read always sees the effect of earlier commands.
    fn drive_node(&mut self) {
        let allowed = self.node_active_allowed();
        if !allowed && self.node.active_commanded && !self.node.draining {
            // Demotion: from here the node must be confirmed standby by the fence deadline.
            self.node.draining = true;
            self.why = self.demotion_reason();
            let by_lease = self.lease_deadline();
            // Fix (tests): a node call in flight delays `activate=false` by up to node_timeout
            // (one call at a time); the margin covers the command, the drain and the confirming
            // reads from when the command is sent. (At the step-down deadline no call is in
            // flight, and the lease deadline caps this anyway.)
            let wait = match self.node.in_flight {
                Some(_) => self.timing().node_timeout,
                None => Duration::ZERO,
            };
            let by_drain = self.now + wait + self.timing().step_down_lead();
            self.fence.deadline = Some(by_lease.map_or(by_drain, |l| l.min(by_drain)));
            self.fence.fired = false;
        }
        if self.node.in_flight.is_some() {
            return;
        }
        let now = self.now;
        if allowed {
            if !self.node.active_commanded {
                self.node.active_commanded = true;
                self.node.standby_acked = false;
                self.node.standby_confirmed = false;
                // Fix (tests): activating again (a late ack renewed the lease after a step-down
                // whose standby was not confirmed yet) ends that demotion: its fence deadline no
                // longer applies, or the fence would run against a rightly active node. A later
                // demotion sets a new one.
                self.node.draining = false;
                self.fence = Fence::default();
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
            } else if now >= self.node.next_read_at
                && self
                    .step_down_deadline()
                    .is_some_and(|sd| now + self.timing().node_timeout < sd)
            {
                // Quiet window: no read may still be in flight at the step-down deadline.
                self.node.next_read_at = now + self.timing().node_check_interval;
                self.node_call(NodeCall::ReadMode);
            }
            return;
        }
        if !self.node.standby_acked || self.node.active_commanded {
            if now >= self.node.retry_at || self.node.active_commanded {
                self.node.active_commanded = false;
                // Fix (tests): standby is confirmed by a read made after the standby command.
                // A read that found the node standby just before this command (it restarted)
                // no longer counts: without this, a shutdown resigned with a record and exited
                // 0 while its own `activate=false` was still in flight.
                self.node.standby_confirmed = false;
                self.node.next_read_at = now;
                self.node_call(NodeCall::SetStandby);
            }
        } else if now >= self.node.next_read_at {
            let interval = if self.node.standby_confirmed {
                self.timing().node_check_interval
            } else {
                self.timing().confirm_poll_interval
            };
            self.node.next_read_at = now + interval;
            self.node_call(NodeCall::ReadMode);
        }
    }

    fn demotion_reason(&self) -> String {
        if self.shutdown_deadline.is_some() {
            return "demoting: shutdown requested".into();
        }
        if let Some(h) = &self.handover {
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

    fn node_call(&mut self, call: NodeCall) -> CallId {
        let id = self.node.next_id;
        self.node.next_id += 1;
        self.node.in_flight = Some((id, call));
        self.emit(Command::Node { id, call });
        id
    }

    /// Rule `fence`: if standby is not confirmed by the fence deadline (the lease deadline
    /// after a step-down), run the operator's fence command and say so loudly. A run that
    /// fails (or times out) proves nothing: it is repeated every `fence_retry_interval` for as
    /// long as the node is not proven standby.
    fn drive_fence(&mut self) {
        if self.node.standby_confirmed {
            self.fence.deadline = None;
            return;
        }
        if self.fence.succeeded {
            return;
        }
        let due = match self.fence.deadline {
            Some(deadline) if !self.fence.fired => self.now >= deadline,
            _ => {
                self.fence.fired
                    && self.fence.done
                    && self.fence.retry_at.is_some_and(|at| self.now >= at)
            }
        };
        if !due {
            return;
        }
        self.fence_runs += 1;
        self.fence.run = self.fence_runs;
        // Keep trying to demote too: `activate=false` is sent again with every run, for a node
        // whose admin endpoint acknowledged it but did not obey, or has recovered since.
        self.node.standby_acked = false;
        self.fence.fired = true;
        self.fence.done = false;
        self.fence.retry_at = None;
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
        let reason = match (self.fence.failures, &self.node.last_failure) {
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
            run: self.fence.run,
            reason: reason.clone(),
        });
        self.emit_event(Event::Fenced { reason });
    }

    fn drive_probe(&mut self) {
        if !self.probe_in_flight && self.now >= self.next_probe_at {
            self.probe_in_flight = true;
            self.probe_sent_at = self.now;
            self.next_probe_at = self.now + self.timing().probe_interval;
            self.emit(Command::ProbeReadiness);
        }
    }

    /// Rule `withdraw_when_unready`: a candidate that is not leading and whose node is unready
    /// withdraws, so it cannot become leader with a node that cannot serve.
    fn drive_resign(&mut self) {
        if self.resigning.is_none()
            && self.term.is_none()
            && self.readiness == Readiness::Unready
            && self.candidate().is_some()
            && self.start_resign(None)
        {
            self.why = "withdrawing: node unready".into();
        }
        if self.resigning.is_none()
            && self.shutdown_deadline.is_some()
            && let Lease::Held { .. } = self.lease
        {
            let record = self.clean_handover_record();
            self.start_resign(record);
        }
        let now = self.now;
        // Every attempt needs the proof, not only the first: a retry after a failure may come
        // after the node was found active again (it restarted active).
        let proven = self.lead_may_be_given_away();
        if let Some(r) = self.resigning.as_mut()
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
    fn start_resign(&mut self, record: Option<HandoverRecord>) -> bool {
        let Lease::Held { id, .. } = self.lease else {
            return false;
        };
        if !self.lead_may_be_given_away() {
            return false;
        }
        let clear_request = match (&self.term, &self.view) {
            (Some(_), Some(view)) => view.handover_request.as_ref().map(|r| r.revision),
            _ => None,
        };
        self.resigning = Some(Resigning {
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

    /// Rule `campaign_allowed`: campaign only with the node confirmed standby and ready, and no
    /// shutdown or resignation under way.
    fn drive_campaign(&mut self) {
        let may_campaign = self.shutdown_deadline.is_none()
            && self.resigning.is_none()
            && self.node.standby_confirmed
            && self.readiness == Readiness::Ready;
        if may_campaign && !self.started {
            self.started = true;
            self.why = "node confirmed standby and ready: campaigning".into();
        }
        match self.lease {
            Lease::None { retry_at } if may_campaign && self.now >= retry_at => {
                self.lease = Lease::Granting;
                self.emit(Command::GrantLease {
                    ttl: self.timing().lease_ttl,
                });
            }
            // Fix (tests): the grant may come back after the node turned unready or was found
            // active; the candidate key needs the same conditions as the grant.
            Lease::Held { id, .. } if may_campaign && self.candidacy == Candidacy::None => {
                self.candidacy = Candidacy::Creating;
                self.emit(Command::CreateCandidate { lease: id });
            }
            _ => {}
        }
    }

    fn drive_keepalive(&mut self) {
        if let Lease::Held { id, .. } = self.lease
            && !self.keepalive_in_flight
            && self.now >= self.next_keepalive_at
        {
            self.keepalive_in_flight = true;
            self.emit(Command::KeepAlive { lease: id });
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
    fn finish_shutdown(&mut self) {
        let Some(deadline) = self.shutdown_deadline else {
            return;
        };
        let proven = self.lead_may_be_given_away();
        let holds_lease = !matches!(self.lease, Lease::None { .. }) || self.resigning.is_some();
        let out_of_time = self.now >= deadline;
        if out_of_time && !proven && !self.fence.fired {
            self.fence.deadline = Some(self.now);
            self.drive_fence();
        }
        // Out of time with the node proven standby, a resignation still in flight is given
        // its answer (at most one etcd request timeout): the successor is spared the expiry.
        let resign_in_flight = self.resigning.as_ref().is_some_and(|r| r.in_flight);
        let exit = if proven && (!holds_lease || (out_of_time && !resign_in_flight)) {
            Some(if self.node.standby_confirmed {
                (0, "shut down with the node confirmed standby".to_string())
            } else {
                (
                    1,
                    format!(
                        "shut down after the fence reported success ({}); standby was not \
                         confirmed by a read",
                        self.fence.detail
                    ),
                )
            })
        } else if !proven && !holds_lease && out_of_time && self.fence.failures > 0 {
            Some((
                1,
                format!(
                    "shut down holding no lease with the node NOT proven standby: the fence \
                     failed ({})",
                    self.fence.detail
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

    /// Rule `report_stuck`: a replica that cannot reach a safe or useful state by itself says
    /// so at once and every [`STUCK_REPORT_INTERVAL`] while it lasts, for logs, `/status`, a
    /// metric and systemd's `STATUS=`: its node may be active and the fence failed (it then
    /// keeps any lease it holds, so that no other node activates), or it leads with a lost
    /// node and nobody to hand over to.
    fn report_stuck(&mut self) {
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

    fn stuck_reason(&self) -> Option<String> {
        if !self.lead_may_be_given_away() && self.fence.failures > 0 {
            let holds_lease = !matches!(self.lease, Lease::None { .. });
            let fence = &self.fence.detail;
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
            && self.handover.is_none()
            && self.shutdown_deadline.is_none()
        {
            return Some(format!(
                "leading, but {lost}; no other candidate to hand over to: nobody signs"
            ));
        }
        None
    }

    fn update_role(&mut self) {
        let role = if self.stopped {
            Role::Stopped
        } else if self.node.draining && !self.lead_may_be_given_away() {
            Role::SteppingDown
        } else if self.node.active_commanded {
            Role::Active
        } else if self.resigning.is_some() || self.shutdown_deadline.is_some() {
            Role::Resigning
        } else if self.term.is_some() && self.lease().is_some() {
            Role::Leader
        } else if self.candidate().is_some() {
            Role::Candidate
        } else if !self.started {
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

    // ----- helpers ----------------------------------------------------------------------

    /// The lease is gone (expired by our clock, deleted, or unknown to etcd): forget it and
    /// everything attached, and let it go at etcd in case it still exists.
    fn lose_lease(&mut self, reason: &str) {
        if let Lease::Held { id, .. } = self.lease {
            self.emit_event(Event::LeaseLost {
                lease: id,
                reason: reason.into(),
            });
            // Revoking a lease etcd may still hold would end our term early.
            self.revoke_if_proven_standby(id);
        }
        self.why = reason.into();
        self.drop_lease();
        self.lease = Lease::None { retry_at: self.now };
    }

    /// Revokes a lease we are letting go of, which may still carry our key, only with the node
    /// proven standby (rule `lead_may_be_given_away`); otherwise it expires by itself.
    fn revoke_if_proven_standby(&mut self, lease: LeaseId) {
        if self.lead_may_be_given_away() {
            self.emit(Command::Resign {
                lease,
                candidate: None,
                record: None,
                clear_request: None,
            });
        }
    }

    fn drop_lease(&mut self) {
        self.candidacy = Candidacy::None;
        self.term = None;
        self.keepalive_in_flight = false;
        if self.resigning.as_ref().is_some_and(|r| !r.done) && self.shutdown_deadline.is_none() {
            // Nothing left to resign: the lease is gone already.
            self.resigning = None;
            self.handover = None;
        }
        if self.shutdown_deadline.is_some() {
            self.resigning = None;
        }
    }

    fn resign_abandoned_lease_if_stale(&mut self) {
        self.lease = match self.lease {
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

    fn etcd_retry_at(&mut self) -> Instant {
        let at = self.now + self.etcd_backoff;
        self.etcd_backoff = (self.etcd_backoff * 2).min(ETCD_RETRY_MAX);
        at
    }

    fn emit(&mut self, command: Command) {
        self.out.push_back(Output::Command(command));
    }

    fn emit_event(&mut self, event: Event) {
        self.out.push_back(Output::Event(event));
    }

    fn next_timeout(&self) -> Instant {
        let now = self.now;
        if self.stopped {
            return now + Duration::from_secs(3600);
        }
        if !self.observing {
            // Nothing was decided yet: the first step is due now.
            return now;
        }
        let mut timers: Vec<Instant> = vec![now + IDLE_WAKEUP];
        if let Lease::Held { deadline, .. } = self.lease {
            timers.push(deadline);
            if let Some(sd) = self.step_down_deadline() {
                timers.push(sd);
                // The last instant an activation or read still fits before the deadline.
                timers.push(sd - self.timing().activation_room());
                timers.push(sd - self.timing().node_timeout);
            }
            if !self.keepalive_in_flight {
                timers.push(self.next_keepalive_at);
            }
        }
        if let Lease::None { retry_at } = self.lease {
            timers.push(retry_at);
        }
        if let Some(term) = &self.term
            && !term.gate_passed
        {
            timers.push(term.activation_not_before);
        }
        if self.node.in_flight.is_none() {
            timers.push(self.node.next_read_at);
            timers.push(self.node.retry_at);
        }
        if !self.probe_in_flight {
            timers.push(self.next_probe_at);
        }
        if let Some(deadline) = self.fence.deadline
            && !self.fence.fired
        {
            timers.push(deadline);
        }
        if let Some(at) = self.fence.retry_at {
            timers.push(at);
        }
        if let Some(stuck) = &self.stuck {
            timers.push(stuck.next_report_at);
        }
        if let Some(term) = &self.term
            && term.standby_unexpected
        {
            timers.push(term.reactivate_not_before);
        }
        if let Some(term) = &self.term
            && let Some(evidence) = term.active_evidence_at
            && term.node_lost.is_none()
        {
            timers.push(evidence + self.timing().node_lost_after);
        }
        if let Some(r) = &self.resigning
            && !r.in_flight
        {
            timers.push(r.retry_at);
        }
        if let Some(dead) = &self.dead_term
            && !dead.in_flight
        {
            timers.push(dead.retry_at);
        }
        if let Some(deadline) = self.shutdown_deadline {
            timers.push(deadline);
        }
        if let Some(h) = &self.handover {
            timers.push(h.started + self.timing().handover_timeout);
        }
        timers
            .into_iter()
            .filter(|t| *t > now)
            .min()
            .unwrap_or(now + IDLE_WAKEUP)
    }
}

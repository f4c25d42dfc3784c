//! The core's protocol with its driver: the [`Input`]s it is fed, the [`Output`]s it returns
//! (a [`Command`] to execute, an [`Event`] to report, or a timeout), and the election data they
//! carry. Plain data: no behaviour lives here.

use crate::Instant;
use std::time::Duration;

/// An etcd lease id.
pub type LeaseId = i64;

/// One campaign of one elector, as etcd knows it: the candidate key's lease and create revision.
/// The pair is unique for the life of an etcd cluster, so it also names a leadership term.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct CandidateId {
    pub lease: LeaseId,
    pub create_revision: i64,
}

/// A candidate key under the election prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub id: CandidateId,
    /// The value stored in the key: the replica's identity (`--value`).
    pub value: String,
}

/// Written by a leader, atomically with the deletion of its key, after its node was confirmed
/// standby. The next leader may then skip the activation delay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandoverRecord {
    /// The leadership term that ended cleanly.
    pub from: CandidateId,
    /// Its value, for people reading etcd.
    pub value: String,
}

/// What an elector remembers of its own candidacy across a crash of its process (the shell
/// keeps it in a file in `--state-dir`), so that a restarted elector can end its dead term
/// early (rule `end_dead_term`). It never claims more than was true: `record_allowed` is set
/// only once the term passed its activation gate, and cleared if one of its `activate=true`
/// calls failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RememberedTerm {
    /// Our candidate key's lease and create revision.
    pub id: CandidateId,
    /// Ending this term may tell the next leader to skip its activation delay.
    pub record_allowed: bool,
}

/// An operator's request (`elector handover`) that the leader hand over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandoverRequest {
    /// The value of the replica that should lead next; `None` means the next in line.
    pub to: Option<String>,
    /// The request's etcd mod revision: tells one request from the next.
    pub revision: i64,
}

/// One consistent read of the election: every candidate in election order (lowest create
/// revision first, so `candidates[0]` leads), and the handover keys.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Observation {
    /// The etcd revision the read was served at.
    pub revision: i64,
    pub candidates: Vec<Candidate>,
    pub handover_record: Option<HandoverRecord>,
    pub handover_request: Option<HandoverRequest>,
}

/// A call to the node's admin endpoint. Calls are executed one at a time, in order.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NodeCall {
    /// `GET /ha?activate=true`
    SetActive,
    /// `GET /ha?activate=false`
    SetStandby,
    /// `GET /ha`, expecting `{"active":bool}`
    ReadMode,
}

/// Tells the results of node calls apart; results come back in the order the calls were made.
pub type CallId = u64;

/// Everything the world tells the core. Each comes with the time it is handled at.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Nothing happened; the time is simply `now` (the timeout the core asked for, or later).
    Timeout,
    /// etcd granted a lease. `sent_at` is when the grant request was sent.
    LeaseGranted {
        lease: LeaseId,
        ttl: Duration,
        sent_at: Instant,
    },
    LeaseGrantFailed {
        reason: String,
    },
    /// A keep-alive was answered. `sent_at` is when that request was *sent*; `ttl` is what etcd
    /// granted (zero: the lease no longer exists).
    KeepAliveAcked {
        lease: LeaseId,
        sent_at: Instant,
        ttl: Duration,
    },
    KeepAliveFailed {
        lease: LeaseId,
        reason: String,
    },
    /// Our candidate key exists, attached to `lease`, with this create revision.
    CandidateCreated {
        lease: LeaseId,
        create_revision: i64,
    },
    CandidateCreateFailed {
        lease: LeaseId,
        reason: String,
    },
    /// A fresh read of the election (after start, and after every change or watch error).
    Observed(Observation),
    /// Reading or watching the election failed; the driver keeps retrying.
    ObserveFailed {
        reason: String,
    },
    /// A node call answered as expected. `active` is the mode read, for `ReadMode`.
    NodeCallDone {
        id: CallId,
        call: NodeCall,
        active: Option<bool>,
    },
    /// A node call timed out, failed, or got an answer it cannot trust.
    NodeCallFailed {
        id: CallId,
        call: NodeCall,
        reason: String,
    },
    /// Readiness probe result; `detail` says why when not ready.
    Probed {
        ready: bool,
        detail: String,
    },
    /// We resigned (handover record written if asked, key deleted, lease revoked).
    Resigned {
        lease: LeaseId,
    },
    ResignFailed {
        lease: LeaseId,
        reason: String,
    },
    /// The fence command finished. `success` must mean its exit status said the node can no
    /// longer sign (docs/safety.md, "the fence"); a fence that failed or timed out proves
    /// nothing.
    FenceDone {
        /// The run this answers ([`Command::Fence`]'s `run`).
        run: u64,
        success: bool,
        detail: String,
    },
    /// SIGTERM or SIGINT: demote, confirm standby, hand over, exit.
    ShutdownRequested,
    /// A local request to hand over leadership, to the named replica or the next in line.
    HandoverRequested {
        to: Option<String>,
    },
}

/// Something for the driver to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Start reading and watching the election; report every change as [`Input::Observed`].
    Observe,
    GrantLease {
        ttl: Duration,
    },
    /// Send one keep-alive and report the time it was sent.
    KeepAlive {
        lease: LeaseId,
    },
    /// Create `<key>/<lease hex>` = value, attached to the lease, if it does not exist.
    CreateCandidate {
        lease: LeaseId,
    },
    /// Leave the election: delete our key (writing `record` in the same transaction, if set)
    /// in one transaction that succeeds only while our key still exists, and delete the
    /// handover request whose mod revision is `clear_request` (guarded by that revision, so a
    /// newer request survives); then revoke the lease. The core emits this only once its node
    /// is proven standby (rule `lead_may_be_given_away`).
    Resign {
        lease: LeaseId,
        candidate: Option<CandidateId>,
        record: Option<HandoverRecord>,
        clear_request: Option<i64>,
    },
    /// Call the node's admin endpoint.
    Node {
        id: CallId,
        call: NodeCall,
    },
    ProbeReadiness,
    /// Run the operator's fence command: standby could not be confirmed in time. Answer with
    /// [`Input::FenceDone`] carrying the same `run`.
    Fence {
        run: u64,
        reason: String,
    },
    /// Keep this in `--state-dir` (replacing what is there; `None`: forget it), so that the
    /// next start of this elector knows its own candidacy (rule `end_dead_term`).
    RememberTerm {
        term: Option<RememberedTerm>,
    },
    /// Stop the process with this exit code.
    Exit {
        code: i32,
    },
}

/// The elector's role, as shown in logs, `/status` and metrics.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Forcing the node to standby and waiting for it to be ready before campaigning.
    Starting,
    /// Not a candidate: the node is unready, etcd is unreachable, or we just handed over.
    Standby,
    /// Our key waits behind another candidate's.
    Candidate,
    /// Our key is first; the node is not (yet) active.
    Leader,
    /// Leader, with the node commanded active.
    Active,
    /// The node was commanded standby and is not confirmed standby yet.
    SteppingDown,
    /// Leaving the election (handover, shutdown, withdrawal) with the node standby.
    Resigning,
    /// Shut down.
    Stopped,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Starting => "starting",
            Role::Standby => "standby",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
            Role::Active => "active",
            Role::SteppingDown => "stepping-down",
            Role::Resigning => "resigning",
            Role::Stopped => "stopped",
        }
    }
}

/// Something worth telling an operator.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    RoleChanged {
        from: Role,
        to: Role,
        reason: String,
    },
    /// The node's standby was confirmed by a read.
    StandbyConfirmed,
    /// The fence command was started: standby could not be confirmed in time.
    Fenced { reason: String },
    /// A node that should be standby reported active.
    NodeActiveUnexpectedly,
    /// The leader's node reads standby although it was commanded active (someone demoted it,
    /// or it restarted): it is activated again only after a fresh successful readiness probe.
    NodeStandbyUnexpectedly,
    /// The fence command finished (rule `fence`).
    FenceFinished { success: bool, detail: String },
    /// The leader's node has not been shown active for `node_lost_after` (rule
    /// `give_way_when_node_lost`).
    NodeLost { reason: String },
    /// This replica cannot reach a safe, useful state on its own (rule `report_stuck`):
    /// repeated every [`crate::STUCK_REPORT_INTERVAL`] while it lasts, for an error-level log.
    Stuck { reason: String },
    /// The stuck condition is over.
    Unstuck,
    /// A term of this replica left behind by a crashed elector was ended early (rule
    /// `end_dead_term`), with or without a handover record.
    DeadTermEnded { id: CandidateId, record: bool },
    /// The lease was lost; no more keep-alives for it.
    LeaseLost { lease: LeaseId, reason: String },
}

/// What [`crate::Elector::poll_output`] returns.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Command(Command),
    Event(Event),
    /// Nothing more now: hand in [`Input::Timeout`] at this instant, or earlier with any input.
    Timeout(Instant),
}

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
    /// The lease the key is attached to.
    pub lease: LeaseId,
    /// The etcd revision that created the key: the lowest leads.
    pub create_revision: i64,
}

/// A candidate key under the election prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Which key, and which campaign.
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
    /// The operator's key was withdrawn from its node (key custody) before the record: that
    /// node signs nothing after, so the successor waits only the slot clearance (rule
    /// `wait_out_last_slot`).
    pub key_withdrawn: bool,
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

/// An operator's exclusion of this replica (`elector exclude`), as stored at
/// `<key>.elector/excluded/<value>`: while it exists the replica does not campaign and, if it
/// leads, hands over (rule `excluded_replica`). Plain text, shown as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exclusion {
    /// Who excluded it (`user@host`).
    pub by: String,
    /// Since when, as the wall-clock RFC 3339 time `elector exclude` stored.
    pub at: String,
    /// Why, in the operator's words (may be empty).
    pub reason: String,
}

/// One consistent read of the election: every candidate in election order (lowest create
/// revision first, so `candidates[0]` leads), the handover keys, and this replica's exclusion.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Observation {
    /// The etcd revision the read was served at.
    pub revision: i64,
    /// Every candidate key, lowest create revision (the leader) first.
    pub candidates: Vec<Candidate>,
    /// `<key>.elector/handover-record`, if present.
    pub handover_record: Option<HandoverRecord>,
    /// `<key>.elector/handover-request`, if present.
    pub handover_request: Option<HandoverRequest>,
    /// `<key>.elector/excluded/<our value>`, if present.
    pub excluded: Option<Exclusion>,
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
    /// `PUT /producer-keys` with the operator's key (key custody, rule `install_key_last`).
    InstallKey,
    /// `PUT /producer-keys` with the placeholder key (key custody, rule `withdraw_key_first`).
    WithdrawKey,
    /// `GET /producer-keys`, expecting the operator's or the placeholder's address (key
    /// custody, rule `reconcile_keys`).
    ReadKeys,
}

/// What `GET /producer-keys` lists, judged by the driver against the operator's and the
/// placeholder's addresses (any other address is an answer it cannot trust: a failure).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NodeKeys {
    /// The operator's key is among them: the node can sign as the delegate.
    Operator,
    /// Only the placeholder: the node cannot sign as the delegate, whatever its mode.
    Placeholder,
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
        /// The new lease.
        lease: LeaseId,
        /// The TTL etcd granted.
        ttl: Duration,
        /// When the grant request was sent, on the driver's clock.
        sent_at: Instant,
    },
    /// The lease grant failed; the core retries after a backoff.
    LeaseGrantFailed {
        /// Why, for logs and `/status`.
        reason: String,
    },
    /// A keep-alive was answered. `sent_at` is when that request was *sent*; `ttl` is what etcd
    /// granted (zero: the lease no longer exists).
    KeepAliveAcked {
        /// The lease kept alive.
        lease: LeaseId,
        /// When the keep-alive was sent, on the driver's clock.
        sent_at: Instant,
        /// The TTL etcd reset the lease to; zero when the lease is gone.
        ttl: Duration,
    },
    /// A keep-alive got no answer in time, or an error.
    KeepAliveFailed {
        /// The lease it was for.
        lease: LeaseId,
        /// Why, for logs.
        reason: String,
    },
    /// Our candidate key exists, attached to `lease`, with this create revision.
    CandidateCreated {
        /// The lease the key is attached to.
        lease: LeaseId,
        /// The revision that created the key.
        create_revision: i64,
    },
    /// Creating the candidate key failed (it may still have landed).
    CandidateCreateFailed {
        /// The lease it was for.
        lease: LeaseId,
        /// Why, for logs.
        reason: String,
    },
    /// A fresh read of the election (after start, and after every change or watch error).
    Observed(Observation),
    /// Reading or watching the election failed; the driver keeps retrying.
    ObserveFailed {
        /// Why, for logs.
        reason: String,
    },
    /// A node call answered as expected. `active` is the mode read, for `ReadMode`; `keys`
    /// what the node lists, for `ReadKeys` (and for `InstallKey`/`WithdrawKey`, whose answer
    /// lists the keys the node holds now).
    NodeCallDone {
        /// The call's id, from [`Command::Node`].
        id: CallId,
        /// Which call it was.
        call: NodeCall,
        /// The mode read (`ReadMode` only): `Some(true)` for `{"active":true}`.
        active: Option<bool>,
        /// The producer keys listed (`ReadKeys`, `InstallKey`, `WithdrawKey`).
        keys: Option<NodeKeys>,
    },
    /// A node call timed out, failed, or got an answer it cannot trust.
    NodeCallFailed {
        /// The call's id, from [`Command::Node`].
        id: CallId,
        /// Which call it was.
        call: NodeCall,
        /// Why, for logs and the reports of rules `fence` and `give_way_when_node_lost`.
        reason: String,
    },
    /// Readiness probe result; `detail` says why when not ready.
    Probed {
        /// The node answered ready.
        ready: bool,
        /// What the probe saw, for logs.
        detail: String,
    },
    /// We resigned (handover record written if asked, key deleted, lease revoked).
    Resigned {
        /// The lease of the resigned key ([`Command::Resign`]'s `lease`).
        lease: LeaseId,
    },
    /// A resignation failed or timed out; the core retries it while it still may.
    ResignFailed {
        /// The lease of the key ([`Command::Resign`]'s `lease`).
        lease: LeaseId,
        /// Why, for logs.
        reason: String,
    },
    /// The fence command finished. `success` must mean its exit status said the node can no
    /// longer sign (docs/safety.md, "the fence"); a fence that failed or timed out proves
    /// nothing.
    FenceDone {
        /// The run this answers ([`Command::Fence`]'s `run`).
        run: u64,
        /// The fence exited 0: the node can no longer sign.
        success: bool,
        /// What the fence said (exit status, output), for logs.
        detail: String,
    },
    /// SIGTERM or SIGINT: demote, confirm standby, hand over, exit.
    ShutdownRequested,
    /// A local request to hand over leadership, to the named replica or the next in line.
    HandoverRequested {
        /// The `--value` of the replica that should lead next; `None`: the next in line.
        to: Option<String>,
    },
}

/// Something for the driver to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Start reading and watching the election; report every change as [`Input::Observed`].
    Observe,
    /// Grant a lease; answer with [`Input::LeaseGranted`] carrying the send time.
    GrantLease {
        /// The TTL to ask for.
        ttl: Duration,
    },
    /// Send one keep-alive and report the time it was sent.
    KeepAlive {
        /// The lease to keep alive.
        lease: LeaseId,
    },
    /// Create `<key>/<lease hex>` = value, attached to the lease, if it does not exist.
    CreateCandidate {
        /// The lease to attach the key to (its hex id names the key).
        lease: LeaseId,
    },
    /// Leave the election: delete our key (writing `record` in the same transaction, if set)
    /// in one transaction that succeeds only while our key still exists, and delete the
    /// handover request whose mod revision is `clear_request` (guarded by that revision, so a
    /// newer request survives); then revoke the lease. The core emits this only once its node
    /// is proven standby (rule `lead_may_be_given_away`).
    Resign {
        /// The lease to revoke.
        lease: LeaseId,
        /// The candidate key to delete, guarded by its create revision; `None`: no key.
        candidate: Option<CandidateId>,
        /// The handover record to write with the deletion (rule `handover_record`).
        record: Option<HandoverRecord>,
        /// The mod revision of the handover request to delete (rule `handover_request`).
        clear_request: Option<i64>,
    },
    /// Call the node's admin endpoint.
    Node {
        /// Answer with this id.
        id: CallId,
        /// The call to make.
        call: NodeCall,
    },
    /// Probe the node's readiness; answer with [`Input::Probed`].
    ProbeReadiness,
    /// Run the operator's fence command: standby could not be confirmed in time. Answer with
    /// [`Input::FenceDone`] carrying the same `run`.
    Fence {
        /// Answer with this run id.
        run: u64,
        /// Why the fence runs, for the error line.
        reason: String,
    },
    /// Keep this in `--state-dir` (replacing what is there; `None`: forget it), so that the
    /// next start of this elector knows its own candidacy (rule `end_dead_term`).
    RememberTerm {
        /// What to keep; `None`: forget it.
        term: Option<RememberedTerm>,
    },
    /// Stop the process with this exit code.
    Exit {
        /// 0 after a read confirmed standby, 1 otherwise (rule `shutdown`).
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
    /// The role's name in logs, `/status` and metric labels.
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
    /// The role changed, and why.
    RoleChanged {
        /// The role before.
        from: Role,
        /// The role now.
        to: Role,
        /// Why it changed.
        reason: String,
    },
    /// The node's standby was confirmed by a read.
    StandbyConfirmed,
    /// The fence command was started: standby could not be confirmed in time.
    Fenced {
        /// Why the fence runs.
        reason: String,
    },
    /// A node that should be standby reported active.
    NodeActiveUnexpectedly,
    /// Key custody: a node that should not hold the operator's key lists it (it booted with it,
    /// or something installed it); it is withdrawn at once (rule `reconcile_keys`).
    OperatorKeyUnexpected,
    /// Key custody: the leader's node no longer lists the operator's key (it restarted with its
    /// placeholder); it is installed again (rule `reconcile_keys`).
    OperatorKeyMissing,
    /// The leader's node reads standby although it was commanded active (someone demoted it,
    /// or it restarted): it is activated again only after a fresh successful readiness probe.
    NodeStandbyUnexpectedly,
    /// The fence command finished (rule `fence`).
    FenceFinished {
        /// The fence exited 0.
        success: bool,
        /// What it said.
        detail: String,
    },
    /// The leader's node has not been shown active for `node_lost_after` (rule
    /// `give_way_when_node_lost`).
    NodeLost {
        /// Since when and why, for the warning.
        reason: String,
    },
    /// This replica cannot reach a safe, useful state on its own (rule `report_stuck`):
    /// repeated every [`crate::STUCK_REPORT_INTERVAL`] while it lasts, for an error-level log.
    Stuck {
        /// What keeps this replica stuck and what an operator can do.
        reason: String,
    },
    /// The stuck condition is over.
    Unstuck,
    /// An operator excluded this replica (rule `excluded_replica`): it stops campaigning and
    /// hands over if it leads.
    Excluded {
        /// The exclusion as read.
        exclusion: Exclusion,
    },
    /// The exclusion was lifted (`elector include`): it campaigns again.
    Included,
    /// A term of this replica left behind by a crashed elector was ended early (rule
    /// `end_dead_term`), with or without a handover record.
    DeadTermEnded {
        /// The ended term's key.
        id: CandidateId,
        /// A handover record was written with its end.
        record: bool,
    },
    /// The lease was lost; no more keep-alives for it.
    LeaseLost {
        /// The lost lease.
        lease: LeaseId,
        /// Why it counts as lost.
        reason: String,
    },
}

/// What [`crate::Elector::poll_output`] returns.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Execute this, and hand its result back as an [`Input`].
    Command(Command),
    /// Report this (log, metrics, `/status`).
    Event(Event),
    /// Nothing more now: hand in [`Input::Timeout`] at this instant, or earlier with any input.
    Timeout(Instant),
}

//! The IoTeX node as the elector meets it, modeled from iotex-core's code: its admin endpoint
//! (`/ha`, `/producer-keys`), its probe server, and the consensus behind them (the FSM, its
//! event queue, `prepare()`, the context's read/write lock), down to every signature it makes.
//! No I/O and no clock: every call takes `now`, on a clock shared with the [`Chain`].
//!
//! What iotex-core does, and this model with it (`consensus/consensusfsm/fsm.go`,
//! `consensus/scheme/rolldpos/rolldpos.go`, `rolldposctx.go`, `pkg/ha/ha.go`):
//! - `/ha?activate=true|false` (lower-cased) calls `Activate`: takes the context's lock for
//!   writing, sets `active`, then `BackToPrepare(0)` queues a prepare event if active. 200, empty.
//!   Any other value does nothing and answers 200. No parameter reads
//!   `{"active": ctx.active || fsm state != prepare}`, taking the context's lock for reading
//!   and then the FSM's lock, which a running event handler holds. The method is not checked.
//! - `prepare()` computes the round, **mints and signs** the proposal if we are its proposer
//!   (no active check), sleeps until the round starts **holding the context's read lock**,
//!   broadcasts the proposal (no active check), and only then checks `active`: standby goes
//!   back to prepare (queuing nothing), active enters the round and arms its timers.
//! - The lock is writer-preferring ([`lock`]): `activate=false` waits for that sleep, reads
//!   wait behind it, and the signed proposal goes out after the deactivation was accepted.
//! - In a round, timers keep firing after a deactivation and their endorsements are signed and
//!   broadcast; messages from other delegates are dropped while standby.
//! - Events that match no transition are retried every `unmatchedEventInterval` until
//!   `unmatchedEventTTL` old; a prepare event queued before a deactivation still runs.
//! - `system.active` defaults to true, and a node that starts active runs its first prepare
//!   `start_delay` after start, whatever its mode by then.
//! - `/producer-keys` (v2.5.0) replaces the keys under the same write lock: once answered,
//!   `Proposal()` and endorsements can no longer use a removed key.
//! - Readiness (`/readiness`, `/health`) is evaluated when a block arrives.
//!
//! Faults a test injects on top: [`AdminFault`] on `/ha`, and a node that refuses activation.

mod fsm;
mod lock;

use crate::chain::{Chain, Round, Tip};
use lock::{Holder, RwLock};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

pub use fsm::FsmState;

/// One HTTP answer: status code and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Reply {
            status,
            body: body.into(),
        }
    }
}

/// A fault injected into the admin endpoint `/ha`. Under any fault a request has **no effect**:
/// the node never got to handle it. Probes and `/producer-keys` are not affected.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum AdminFault {
    /// The node's own behaviour.
    #[default]
    None,
    /// Answer 500 to every request.
    Status500,
    /// Answer 200 with a body that is not the node's JSON (see [`GARBAGE_BODY`]).
    GarbageBody,
    /// Never answer.
    Hang,
}

impl AdminFault {
    /// The name used by the stand-in's control endpoint: `none`, `500`, `garbage`, `hang`.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminFault::None => "none",
            AdminFault::Status500 => "500",
            AdminFault::GarbageBody => "garbage",
            AdminFault::Hang => "hang",
        }
    }

    /// The inverse of [`AdminFault::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "none" => Some(AdminFault::None),
            "500" => Some(AdminFault::Status500),
            "garbage" => Some(AdminFault::GarbageBody),
            "hang" => Some(AdminFault::Hang),
            _ => None,
        }
    }
}

/// The body answered under [`AdminFault::GarbageBody`]. It is not JSON (the object is never
/// closed) yet contains `"active":false`, so a client that looks for substrings instead of
/// parsing would wrongly conclude that the node is standby: the dangerous misreading.
pub const GARBAGE_BODY: &str = "{\"active\":false <html>502 Bad Gateway</html>\n";

/// One change of the reported mode: when, and the mode from then on.
pub type Transition = (Duration, bool);

/// What a signature signs.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SignKind {
    /// A block proposal (`Proposal()`), counted when broadcast.
    Proposal,
    /// A `PROPOSAL` endorsement.
    ProposalEndorsement,
    /// A `LOCK` endorsement.
    LockEndorsement,
    /// A `COMMIT` (pre-commit) endorsement.
    CommitEndorsement,
}

impl SignKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SignKind::Proposal => "proposal",
            SignKind::ProposalEndorsement => "proposal-endorsement",
            SignKind::LockEndorsement => "lock-endorsement",
            SignKind::CommitEndorsement => "commit-endorsement",
        }
    }
}

/// One signed consensus message the node broadcast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// When it went out.
    pub at: Duration,
    pub height: u64,
    pub round: u32,
    /// When the round's slot starts.
    pub slot: Duration,
    pub kind: SignKind,
    /// The address of the key that signed.
    pub key: String,
}

/// How a node starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// The chain the node follows (shared by every replica).
    pub chain: Chain,
    /// `system.active` (iotex-core's default is `true`; an HA replica is configured `false`).
    pub start_active: bool,
    /// The operator key's address: the delegate whose slots and endorsements these are.
    pub operator: String,
    /// The addresses of the producer keys the node starts with (`producerPrivKey`): the
    /// operator's, or a placeholder's under key custody.
    pub keys: Vec<String>,
    /// How long after the network commits a block this node has it (p2p sync).
    pub sync_lag: Duration,
    /// Whether the node is synced: `/readiness` says so from the next block on.
    pub ready: bool,
}

impl NodeConfig {
    /// A replica configured standby, holding the operator key `operator`, synced and ready.
    pub fn standby(chain: Chain, operator: &str) -> Self {
        NodeConfig {
            chain,
            start_active: false,
            operator: operator.to_owned(),
            keys: vec![operator.to_owned()],
            sync_lag: Duration::from_millis(100),
            ready: true,
        }
    }
}

/// A request to the admin endpoint, decoded by the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `/ha` with the first `activate` value (`None`: no parameter, a read).
    Ha { activate: Option<String> },
    /// `GET /producer-keys` (authorized).
    ProducerKeysGet,
    /// `PUT /producer-keys` with these keys' addresses (authorized, decoded).
    ProducerKeysPut { keys: Vec<String> },
}

/// What the node does with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Send this answer.
    Reply(Reply),
    /// Never answer (the [`AdminFault::Hang`] fault); the request had no effect.
    Hang,
    /// The node process died or restarted before answering: the connection closes.
    Dropped,
}

/// Names one request until its answer is taken.
pub type Ticket = u64;

/// A request in progress: what it still has to do.
#[derive(Clone, Debug)]
enum Pending {
    /// `Activate(value)`: waits for the write lock.
    Activate { value: bool },
    /// `BackToPrepare(0)` after `Activate`: waits for the read lock to check `Active()`.
    Requeue,
    /// A read: waits for the read lock (`ctx.Active()`).
    ReadActive,
    /// A read that found `ctx.active` false: waits for the FSM lock (`CurrentState()`).
    ReadState,
    /// `UpdateProducerKeys`: waits for the write lock.
    SetKeys { keys: Vec<String> },
}

/// The node: one process of iotex-core as the elector sees it.
#[derive(Clone, Debug)]
pub struct NodeModel {
    config: NodeConfig,
    /// The latest time the model ran to.
    now: Duration,
    /// The process is down (killed, not restarted): nothing answers.
    down: bool,
    start_active: bool,
    fault: AdminFault,
    /// `activate=true` answers 500 without effect (a test's fault, not iotex-core's).
    refuse_activation: bool,
    /// What the test wants readiness to be; `/readiness` says it from the next block on.
    ready_wanted: bool,
    ready_reported: bool,
    // `rollDPoSCtx`
    active: bool,
    round: Round,
    keys: Vec<String>,
    /// A `PUT /producer-keys` replaced the keys since the process started.
    keys_replaced: bool,
    lock: RwLock,
    /// The latest block this node has: committed by its own consensus or synced.
    tip: Tip,
    // `ConsensusFSM`
    fsm: fsm::Fsm,
    // admin requests
    next_ticket: Ticket,
    pending: BTreeMap<Ticket, Pending>,
    answers: BTreeMap<Ticket, Answer>,
    /// Requests whose client left: their effect still happens, their answer is discarded.
    abandoned: Vec<Ticket>,
    /// Holders whose lock was granted (or whose wait ended): they go on next.
    runnable: VecDeque<Holder>,
    /// The network's happenings have been applied up to here.
    network_done: Duration,
    // what the checks read
    history: Vec<Transition>,
    /// Every change of "active as the delegate": reported active and holding the operator's
    /// key (see [`NodeModel::delegate_history`]).
    delegate_history: Vec<Transition>,
    signatures: Vec<Signature>,
}

impl NodeModel {
    /// A node process started at `now`.
    pub fn new(config: NodeConfig, now: Duration) -> Self {
        let mut node = NodeModel {
            now,
            down: false,
            start_active: config.start_active,
            fault: AdminFault::None,
            refuse_activation: false,
            ready_wanted: config.ready,
            ready_reported: false,
            active: config.start_active,
            round: Round {
                height: 0,
                round: 0,
                start: config.chain.genesis,
            },
            keys: config.keys.clone(),
            keys_replaced: false,
            lock: RwLock::default(),
            tip: config.chain.tip_at(now.saturating_sub(config.sync_lag)),
            fsm: fsm::Fsm::default(),
            next_ticket: 1,
            pending: BTreeMap::new(),
            answers: BTreeMap::new(),
            abandoned: Vec::new(),
            runnable: VecDeque::new(),
            network_done: now,
            history: vec![(now, config.start_active)],
            delegate_history: vec![(
                now,
                config.start_active && config.keys.contains(&config.operator),
            )],
            signatures: Vec::new(),
            config,
        };
        node.boot();
        node
    }

    /// The chain this node follows.
    pub fn chain(&self) -> &Chain {
        &self.config.chain
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    // ---- the admin endpoint --------------------------------------------------------------

    /// Starts handling `request` at `now`. Its answer may be ready at once or later (see
    /// [`NodeModel::take_answer`] and [`NodeModel::next_wake`]).
    pub fn submit(&mut self, now: Duration, request: Request) -> Ticket {
        self.advance(now);
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        if self.down {
            self.answers.insert(ticket, Answer::Dropped);
            return ticket;
        }
        if let Request::ProducerKeysGet | Request::ProducerKeysPut { .. } = request
            && let Some(answer) = self.fault_answer()
        {
            // One admin server: a fault on it hits `/producer-keys` as it hits `/ha`.
            self.answers.insert(ticket, answer);
            return ticket;
        }
        match request {
            Request::Ha { activate } => self.start_ha(ticket, activate),
            Request::ProducerKeysGet => {
                let reply = Reply::new(200, self.keys_json());
                self.answers.insert(ticket, Answer::Reply(reply));
            }
            Request::ProducerKeysPut { keys } => {
                self.pending.insert(ticket, Pending::SetKeys { keys });
                self.runnable.push_back(Holder::Request(ticket));
            }
        }
        self.run_ready();
        ticket
    }

    /// The answer to `ticket`, once there is one (taken: asked again, `None`).
    pub fn take_answer(&mut self, ticket: Ticket) -> Option<Answer> {
        self.answers.remove(&ticket)
    }

    /// The client of `ticket` gave up (it timed out): the request still takes effect, as the
    /// node's HTTP handler runs to its end, but its answer is thrown away.
    pub fn abandon(&mut self, ticket: Ticket) {
        if self.answers.remove(&ticket).is_none() && self.pending.contains_key(&ticket) {
            self.abandoned.push(ticket);
        }
    }

    /// What the admin server answers under the injected fault, before any handler runs.
    fn fault_answer(&self) -> Option<Answer> {
        match self.fault {
            AdminFault::None => None,
            AdminFault::Status500 => {
                Some(Answer::Reply(Reply::new(500, "internal server error\n")))
            }
            AdminFault::GarbageBody => Some(Answer::Reply(Reply::new(200, GARBAGE_BODY))),
            AdminFault::Hang => Some(Answer::Hang),
        }
    }

    fn start_ha(&mut self, ticket: Ticket, activate: Option<String>) {
        if let Some(answer) = self.fault_answer() {
            self.answers.insert(ticket, answer);
            return;
        }
        // Go's `Query().Get` gives "" for a missing parameter, so an empty value is a read.
        let value = activate.unwrap_or_default().to_lowercase();
        let pending = match value.as_str() {
            "" => Pending::ReadActive,
            "true" if self.refuse_activation => {
                let reply = Reply::new(500, "activation refused\n");
                self.answers.insert(ticket, Answer::Reply(reply));
                return;
            }
            "true" => Pending::Activate { value: true },
            "false" => Pending::Activate { value: false },
            // Any other value is ignored without a word, like the node does.
            _ => {
                self.answers
                    .insert(ticket, Answer::Reply(Reply::new(200, "")));
                return;
            }
        };
        self.pending.insert(ticket, pending);
        self.runnable.push_back(Holder::Request(ticket));
    }

    /// Goes on with a request whose lock was granted (or which is starting).
    fn resume_request(&mut self, ticket: Ticket) {
        let Some(pending) = self.pending.get(&ticket).cloned() else {
            return;
        };
        let holder = Holder::Request(ticket);
        match pending {
            Pending::Activate { value } => {
                if !self.granted_write(holder) {
                    return;
                }
                self.active = value;
                self.record_mode();
                self.unlock(holder);
                self.pending.insert(ticket, Pending::Requeue);
                self.runnable.push_back(holder);
            }
            Pending::Requeue => {
                if !self.granted_read(holder) {
                    return;
                }
                // `BackToPrepare(0)`: a prepare event only if active.
                if self.active {
                    self.fsm
                        .produce(fsm::Event::new(fsm::Kind::Prepare, self.round, self.now));
                }
                self.read_unlock(holder);
                self.finish(ticket, Reply::new(200, ""));
            }
            Pending::ReadActive => {
                if !self.granted_read(holder) {
                    return;
                }
                let active = self.active;
                self.read_unlock(holder);
                if active {
                    self.finish(ticket, Reply::new(200, "{\"active\":true}\n"));
                } else {
                    self.pending.insert(ticket, Pending::ReadState);
                    self.fsm.readers.push_back(ticket);
                }
            }
            Pending::ReadState => {
                // Called once no handler holds the FSM's lock.
                let active = self.fsm.state != FsmState::Prepare;
                let body = format!("{{\"active\":{active}}}\n");
                self.finish(ticket, Reply::new(200, body));
            }
            Pending::SetKeys { keys } => {
                if !self.granted_write(holder) {
                    return;
                }
                self.keys = keys;
                self.keys_replaced = true;
                self.record_mode();
                self.unlock(holder);
                let reply = Reply::new(200, self.keys_json());
                self.finish(ticket, reply);
            }
        }
    }

    fn finish(&mut self, ticket: Ticket, reply: Reply) {
        self.pending.remove(&ticket);
        if let Some(i) = self.abandoned.iter().position(|&t| t == ticket) {
            self.abandoned.swap_remove(i);
        } else {
            self.answers.insert(ticket, Answer::Reply(reply));
        }
    }

    fn keys_json(&self) -> String {
        let list: Vec<String> = self.keys.iter().map(|k| format!("\"{k}\"")).collect();
        format!("{{\"operator_addresses\":[{}]}}\n", list.join(","))
    }

    // ---- the lock, for every holder ------------------------------------------------------

    /// Asks for the read lock once per wait: true when held now. A holder that waits is made
    /// runnable again when granted, and then holds it.
    fn granted_read(&mut self, holder: Holder) -> bool {
        if self.holds(holder) {
            return true;
        }
        self.lock.read_lock(holder)
    }

    fn granted_write(&mut self, holder: Holder) -> bool {
        if self.holds(holder) {
            return true;
        }
        self.lock.lock(holder)
    }

    fn holds(&self, holder: Holder) -> bool {
        self.lock.holds(holder)
    }

    fn read_unlock(&mut self, holder: Holder) {
        let granted = self.lock.read_unlock(holder);
        self.runnable.extend(granted);
    }

    fn unlock(&mut self, holder: Holder) {
        let granted = self.lock.unlock(holder);
        self.runnable.extend(granted);
    }

    // ---- time ----------------------------------------------------------------------------

    /// Lets time run to `now`: timers fire, sleeping handlers wake, the network's messages and
    /// blocks arrive, and everything they make runnable runs.
    pub fn advance(&mut self, now: Duration) {
        self.run_ready();
        while let Some(at) = self.next_due().filter(|&at| at <= now) {
            self.now = self.now.max(at);
            if !self.down {
                self.network_until(at);
                self.fsm_due(at);
            }
            self.network_done = self.network_done.max(at);
            self.run_ready();
        }
        self.now = self.now.max(now);
        self.network_done = self.network_done.max(now);
    }

    /// When something happens next by time alone, if anything will.
    pub fn next_wake(&self) -> Option<Duration> {
        self.next_due()
    }

    fn next_due(&self) -> Option<Duration> {
        if self.down {
            return None;
        }
        [self.fsm.next_due(), self.next_network_at()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs everything that can run at `self.now` without time passing.
    fn run_ready(&mut self) {
        loop {
            if let Some(holder) = self.runnable.pop_front() {
                match holder {
                    Holder::Request(ticket) => self.resume_request(ticket),
                    Holder::Fsm => self.resume_handler(),
                    Holder::Delivery(id) => self.resume_delivery(id),
                }
                continue;
            }
            if self.fsm.handler.is_none() {
                // Readers waiting for the FSM's lock get it between two handlers.
                if let Some(ticket) = self.fsm.readers.pop_front() {
                    self.resume_request(ticket);
                    continue;
                }
                if let Some(event) = self.fsm.queue.pop_front() {
                    self.handle_event(event);
                    continue;
                }
            }
            break;
        }
    }

    // ---- the process ---------------------------------------------------------------------

    /// Starts consensus: a node that starts active prepares after `start_delay`.
    fn boot(&mut self) {
        if self.active {
            let event = fsm::Event::new(fsm::Kind::Prepare, self.round, self.now);
            let at = self.now + self.config.chain.timing.start_delay;
            self.fsm.produce_at(at, event);
        }
    }

    /// The process restarts at `now` configured `system.active: start_active`: requests in
    /// flight get no answer, consensus starts over (its blocks are kept), readiness is
    /// reported again from the next block. Faults stay: they belong to the test.
    /// The producer keys come from the configuration again: a key put in at run time is gone.
    pub fn restart(&mut self, now: Duration, start_active: bool) {
        self.advance(now);
        self.drop_process();
        self.down = false;
        self.start_active = start_active;
        self.active = start_active;
        self.keys = self.config.keys.clone();
        self.keys_replaced = false;
        self.record_mode();
        self.boot();
    }

    /// The process dies at `now`: it signs nothing more, nothing answers, not ready.
    pub fn kill(&mut self, now: Duration) {
        self.advance(now);
        self.drop_process();
        self.down = true;
        self.active = false;
        self.record_mode();
    }

    fn drop_process(&mut self) {
        for ticket in std::mem::take(&mut self.pending).into_keys() {
            if !self.abandoned.contains(&ticket) {
                self.answers.insert(ticket, Answer::Dropped);
            }
        }
        self.abandoned.clear();
        self.runnable.clear();
        self.lock = RwLock::default();
        self.fsm = fsm::Fsm::default();
        self.round = Round {
            height: 0,
            round: 0,
            start: self.config.chain.genesis,
        };
        self.ready_reported = false;
    }

    pub fn is_down(&self) -> bool {
        self.down
    }

    /// The mode of the latest (re)start.
    pub fn start_active(&self) -> bool {
        self.start_active
    }

    // ---- probes --------------------------------------------------------------------------

    /// Handles one request to the probe server, by path (without the query).
    pub fn handle_probe(&mut self, now: Duration, path: &str) -> Reply {
        self.advance(now);
        match path {
            "/liveness" => Reply::new(200, "OK"),
            "/readiness" | "/health" if self.ready_reported => Reply::new(200, "OK"),
            "/readiness" | "/health" => Reply::new(503, "FAIL"),
            "/metrics" => Reply::new(200, self.metrics()),
            // Go's `http.NotFound`.
            _ => Reply::new(404, "404 page not found\n"),
        }
    }

    fn metrics(&self) -> String {
        format!(
            "# HELP iotex_consensus_height Consensus height\n\
             # TYPE iotex_consensus_height gauge\n\
             iotex_consensus_height {}\n\
             # HELP iotex_standin_active Whether a read of /ha reports active (1) or not (0).\n\
             # TYPE iotex_standin_active gauge\n\
             iotex_standin_active {}\n\
             # HELP iotex_standin_ready Whether the readiness probe answers OK (1) or not (0).\n\
             # TYPE iotex_standin_ready gauge\n\
             iotex_standin_ready {}\n\
             # HELP iotex_standin_mode_changes_total Changes of the reported mode since start.\n\
             # TYPE iotex_standin_mode_changes_total counter\n\
             iotex_standin_mode_changes_total {}\n\
             # HELP iotex_standin_signatures_total Consensus messages signed and broadcast.\n\
             # TYPE iotex_standin_signatures_total counter\n\
             iotex_standin_signatures_total {}\n",
            self.round.height,
            u8::from(self.reported_mode()),
            u8::from(self.ready_reported),
            self.history.len() - 1,
            self.signatures.len(),
        )
    }

    // ---- test controls -------------------------------------------------------------------

    /// Whether the node is synced: `/readiness` says so from the next block on (iotex-core
    /// evaluates readiness per block).
    pub fn set_ready(&mut self, ready: bool) {
        self.ready_wanted = ready;
    }

    /// What `/readiness` answers now.
    pub fn is_ready(&self) -> bool {
        self.ready_reported
    }

    /// What readiness will be from the next block on.
    pub fn ready_wanted(&self) -> bool {
        self.ready_wanted
    }

    /// Injects a fault into `/ha`, or clears it with [`AdminFault::None`].
    pub fn set_admin_fault(&mut self, fault: AdminFault) {
        self.fault = fault;
    }

    pub fn admin_fault(&self) -> AdminFault {
        self.fault
    }

    /// Makes `activate=true` answer 500 without effect (or work again). Reads and
    /// `activate=false` are not affected; an admin fault takes precedence.
    pub fn set_refuse_activation(&mut self, refuse: bool) {
        self.refuse_activation = refuse;
    }

    pub fn refuses_activation(&self) -> bool {
        self.refuse_activation
    }

    /// How late this node gets the network's blocks from now on.
    pub fn set_sync_lag(&mut self, lag: Duration) {
        self.config.sync_lag = lag;
    }

    // ---- what the checks read ------------------------------------------------------------

    /// `ctx.active`: what `/ha?activate=` last set (or the start mode).
    pub fn is_commanded_active(&self) -> bool {
        self.active
    }

    /// What a read of `/ha` reports once it gets through: active, or inside a round.
    pub fn reported_mode(&self) -> bool {
        self.active || self.fsm.state != FsmState::Prepare
    }

    /// The FSM's state.
    pub fn fsm_state(&self) -> FsmState {
        self.fsm.state
    }

    /// The producer keys' addresses.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// Every change of the reported mode, oldest first, starting with the start mode.
    pub fn mode_history(&self) -> &[Transition] {
        &self.history
    }

    /// Whether the node holds the operator's key from its configuration: it started with it
    /// and no `PUT /producer-keys` replaced its keys since.
    pub fn holds_configured_operator_key(&self) -> bool {
        !self.keys_replaced && self.keys.contains(&self.config.operator)
    }

    /// Every change of "active as the delegate", oldest first: reported active (see
    /// [`NodeModel::mode_history`]) while holding the operator's key. Without key custody the
    /// node always holds it and this is the mode history; with it, a standby activated by hand
    /// while holding only a placeholder is not active as the delegate: it cannot sign.
    pub fn delegate_history(&self) -> &[Transition] {
        &self.delegate_history
    }

    /// The configuration's producer keys change from the next (re)start on: an operator's
    /// edit of the node's config (or a mistake in it, such as the operator's key on a standby
    /// under key custody).
    pub fn configure_keys(&mut self, keys: Vec<String>) {
        self.config.keys = keys;
    }

    /// Every consensus message this node signed and broadcast, oldest first.
    pub fn signatures(&self) -> &[Signature] {
        &self.signatures
    }

    /// The time the model has run to.
    pub fn now(&self) -> Duration {
        self.now
    }

    fn record_mode(&mut self) {
        let mode = self.reported_mode() && !self.down;
        if self.history.last().map(|&(_, m)| m) != Some(mode) {
            self.history.push((self.now, mode));
        }
        let delegate = mode && self.keys.contains(&self.config.operator);
        if self.delegate_history.last().map(|&(_, m)| m) != Some(delegate) {
            self.delegate_history.push((self.now, delegate));
        }
    }

    fn sign(&mut self, round: Round, kind: SignKind) {
        for key in self.signing_keys(&round, kind) {
            let duplicate = self.signatures.iter().rev().take(8).any(|s| {
                s.height == round.height && s.round == round.round && s.kind == kind && s.key == key
            });
            if !duplicate {
                self.signatures.push(Signature {
                    at: self.now,
                    height: round.height,
                    round: round.round,
                    slot: round.start,
                    kind,
                    key,
                });
            }
        }
    }

    /// The keys that sign `kind` in `round`: the proposer's for a proposal, every delegate's
    /// for an endorsement. The operator is the one delegate among our keys; a placeholder key
    /// signs nothing.
    fn signing_keys(&self, round: &Round, kind: SignKind) -> Vec<String> {
        let operator = &self.config.operator;
        let holds_operator = self.keys.iter().any(|k| k == operator);
        let eligible = match kind {
            SignKind::Proposal => self.config.chain.we_propose(round),
            _ => true,
        };
        if holds_operator && eligible {
            vec![operator.clone()]
        } else {
            Vec::new()
        }
    }

    /// `hasDelegate()`: active, and one of our keys is a delegate of the round.
    fn has_delegate(&self) -> bool {
        self.active && self.keys.contains(&self.config.operator)
    }
}

trait MaxByHeight {
    fn max_by_height(self, other: Tip) -> Tip;
}

impl MaxByHeight for Tip {
    fn max_by_height(self, other: Tip) -> Tip {
        if other.height > self.height {
            other
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests;

//! A stand-in for the IoTeX node, served over real TCP: iotex-core's node as
//! [`elector_model::node::NodeModel`] models it (slots on a grid since genesis, `prepare()`
//! signing before it checks `active`, the writer-preferring context lock, `/ha`,
//! `/producer-keys`, the probes), with every signature it makes recorded, and control endpoints
//! that let a test or the demo change readiness, inject faults, restart the "node", kill it
//! and read what it signed.
//!
//! Two listeners, like the node:
//! - **admin** (the node's `system.httpAdminPort`, usually 9009): `/ha`, `/producer-keys`, plus
//!   the control endpoints under `/control/` described in [`CONTROL_ENDPOINTS_HELP`];
//! - **probe** (the node's `system.httpStatsPort`, 8080): `/liveness`, `/readiness`, `/health`,
//!   `/metrics`.
//!
//! Time is the wall clock: the model's time is the time since the UNIX epoch, and the chain's
//! genesis is the epoch itself. So every stand-in on the machine (in this process or another,
//! in a container too) computes the same chain: the same `(height, round)` names the same
//! slot in all of them, and [`elector_model::history::double_signs`] can judge their
//! signatures together. A task advances the model to each of its wake-ups (timers, the end
//! of a `prepare()` sleep, the network's blocks) and whenever a request arrives.
//!
//! The stand-in node's two servers, its fault switches and the glue between the model's
//! tickets and HTTP make one program that the tests, the demo and the container image run.
//! They stay on hyper's connection API rather than a router: a dead node must close a
//! connection without answering, and a killed one must drain its busy connections, which a
//! router's handlers cannot express.

use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use elector::custody::ProducerKey;
use elector_model::chain::{Chain, ConsensusTiming};
use elector_model::node::{
    AdminFault, Answer, NodeConfig, NodeModel, Reply, Request as NodeRequest, Signature, Ticket,
    Transition,
};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::{JoinHandle, JoinSet};

/// The control endpoints, for `--help` and readers. All are on the admin listener, accept
/// `GET` and `POST`, and answer the state JSON of `/control/state` on success (except
/// `/control/signatures`).
pub const CONTROL_ENDPOINTS_HELP: &str = "\
Control endpoints (admin listener; GET or POST; each answers the state JSON on success,
400 on a bad or missing parameter):
  /control/ready?value=true|false
      Whether the node is synced: /readiness and /health say so from the next block on
      (iotex-core evaluates readiness per block).
  /control/fault?admin=none|500|garbage|hang&activate=none|refuse
      Either parameter or both. admin= injects a fault into /ha: 500 answers 500; garbage
      answers 200 with a body that is not JSON but contains \"active\":false; hang never
      answers. Under an admin fault /ha requests have no effect. activate=refuse makes
      /ha?activate=true answer 500 and change nothing, while reads and activate=false work
      (a node that refuses to sign); an admin fault takes precedence. none restores normal
      behaviour. Probes and /producer-keys are never affected.
  /control/restart[?active=true|false]
      Restart the node process configured with system.active=<active> (default: the mode of
      the previous start): requests in flight get no answer, consensus starts over (an
      active node prepares its first round 5 s later), readiness is reported again from the
      next block. The producer keys, readiness wanted and faults are kept.
  /control/kill
      The node process dies: it signs nothing more, turns unready, and both listeners close:
      new connections are refused, open ones are closed, and requests in flight (hung /ha
      requests included) get no answer. This request's answer is the last one. A killed
      stand-in stays dead (the binary keeps running, serving nothing, until SIGTERM).
  /control/state
      {\"active\":bool,\"ready\":bool,\"fault\":\"none|500|garbage|hang\",
       \"activate_fault\":\"none|refuse\",\"alive\":bool,\"start_active\":bool,
       \"now_ms\":int,\"history\":[[ms,bool],...],\"operator\":\"io1...\",
       \"keys\":[\"io1...\",...],\"signatures\":int}
      active is what a read of /ha would say once it gets through; history lists every
      change of it, starting with the start mode; keys are the producer keys' addresses;
      signatures counts what the node signed. Times are ms since the UNIX epoch: every
      stand-in on the machine shares that clock and the chain's slots.
  /control/signatures
      [{\"height\":int,\"round\":int,\"kind\":\"proposal|proposal-endorsement|
        lock-endorsement|commit-endorsement\",\"time_ms\":int,\"slot_ms\":int,
        \"key\":\"io1...\"},...]
      Every consensus message the node signed and broadcast, oldest first, across restarts:
      two stand-ins that signed the same height and round with the operator's key
      double-signed.";

/// A fixed private key standing for the operator's key in tests and the demo (never a real
/// key): its address is [`StandInOptions::default`]'s operator.
pub const TEST_OPERATOR_KEY: &str =
    "1111111111111111111111111111111111111111111111111111111111111111";

/// A fixed private key standing for a replica's placeholder key (key custody).
pub const TEST_PLACEHOLDER_KEY: &str =
    "2222222222222222222222222222222222222222222222222222222222222222";

/// The address of a private key (64 hex digits), with the product's own derivation.
pub fn address_of(private_key: &str) -> Result<String, String> {
    ProducerKey::parse(private_key).map(|key| key.address().to_owned())
}

fn test_address(private_key: &str) -> String {
    address_of(private_key).expect("a valid built-in test key")
}

/// The address of [`TEST_OPERATOR_KEY`].
pub fn test_operator() -> String {
    test_address(TEST_OPERATOR_KEY)
}

/// The address of [`TEST_PLACEHOLDER_KEY`].
pub fn test_placeholder() -> String {
    test_address(TEST_PLACEHOLDER_KEY)
}

/// Largest `/producer-keys` body the node takes (iotex-core refuses bodies over 1 MiB).
const MAX_BODY: usize = 1 << 20;

/// How the stand-in node starts.
#[derive(Clone, Debug)]
pub struct StandInOptions {
    /// The start mode (`system.active`). iotex-core defaults to active; an HA replica is
    /// configured standby, which the tests and the demo do (and [`StandInOptions::default`]).
    pub start_active: bool,
    /// The chain's block interval: 2.5 s (the Wake upgrade's, [`ConsensusTiming::wake`]) or
    /// 5 s (before it, [`ConsensusTiming::dardanelles`]); any other value scales Wake's phases.
    pub block_interval: Duration,
    /// Proposers in the rotation: 1 makes our delegate the proposer of every slot (the worst
    /// case, the tests' default); 24 is mainnet.
    pub delegates: u64,
    /// Whether the node is synced: readiness says so from the first block on.
    pub ready: bool,
    /// The operator key's address: the delegate whose slots and endorsements these are.
    pub operator: String,
    /// The producer keys' addresses the node starts with: the operator's, or a placeholder's
    /// under key custody.
    pub keys: Vec<String>,
    /// The node's `IOTEX_ADMIN_TOKEN`: `/producer-keys` needs it. `None`: the node has no
    /// `/producer-keys` (404, like an iotex-core older than v2.5.0).
    pub admin_token: Option<String>,
}

impl Default for StandInOptions {
    /// Standby, ready, 2.5 s slots, our delegate proposing every slot, the test operator's
    /// key, no `/producer-keys`.
    fn default() -> Self {
        let operator = test_operator();
        StandInOptions {
            start_active: false,
            block_interval: ConsensusTiming::wake().block_interval,
            delegates: 1,
            ready: true,
            keys: vec![operator.clone()],
            operator,
            admin_token: None,
        }
    }
}

impl StandInOptions {
    /// The consensus timing of [`StandInOptions::block_interval`].
    pub fn timing(&self) -> ConsensusTiming {
        let wake = ConsensusTiming::wake();
        let dardanelles = ConsensusTiming::dardanelles();
        if self.block_interval == wake.block_interval {
            wake
        } else if self.block_interval == dardanelles.block_interval {
            dardanelles
        } else {
            wake.scaled_to(self.block_interval)
        }
    }

    /// The chain every stand-in with these options computes: genesis at the UNIX epoch.
    pub fn chain(&self) -> Chain {
        Chain::new(self.timing(), Duration::ZERO, self.delegates)
    }
}

/// The model's clock: the time since the UNIX epoch.
pub fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// A snapshot of the stand-in node, as `/control/state` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StandInState {
    /// What a read of `/ha` would say once it gets through (ignoring faults).
    pub active: bool,
    /// What `/readiness` answers.
    pub ready: bool,
    pub fault: AdminFault,
    /// `/ha?activate=true` is refused (`/control/fault?activate=refuse`).
    pub refuse_activation: bool,
    /// Not killed (`/control/kill`).
    pub alive: bool,
    /// The mode of the latest (re)start.
    pub start_active: bool,
    /// The model's time (since the UNIX epoch).
    pub now: Duration,
    /// Every change of `active` up to `now`, starting with the start mode.
    pub history: Vec<Transition>,
    /// The operator key's address.
    pub operator: String,
    /// The producer keys' addresses.
    pub keys: Vec<String>,
    /// How many consensus messages the node signed.
    pub signatures: usize,
}

impl StandInState {
    /// The JSON of `/control/state`; times in whole milliseconds since the UNIX epoch.
    pub fn to_json(&self) -> serde_json::Value {
        let history: Vec<serde_json::Value> = self
            .history
            .iter()
            .map(|&(at, active)| serde_json::json!([millis(at), active]))
            .collect();
        serde_json::json!({
            "active": self.active,
            "ready": self.ready,
            "fault": self.fault.as_str(),
            "activate_fault": if self.refuse_activation { "refuse" } else { "none" },
            "alive": self.alive,
            "start_active": self.start_active,
            "now_ms": millis(self.now),
            "history": history,
            "operator": self.operator,
            "keys": self.keys,
            "signatures": self.signatures,
        })
    }
}

/// The JSON of `/control/signatures`.
pub fn signatures_json(signatures: &[Signature]) -> serde_json::Value {
    signatures
        .iter()
        .map(|s| {
            serde_json::json!({
                "height": s.height,
                "round": s.round,
                "kind": s.kind.as_str(),
                "time_ms": millis(s.at),
                "slot_ms": millis(s.slot),
                "key": s.key,
            })
        })
        .collect()
}

/// A running stand-in node. Dropping it stops the servers too, without waiting for them.
pub struct StandIn {
    admin_addr: SocketAddr,
    probe_addr: SocketAddr,
    shared: Arc<Shared>,
    /// Never sent on: dropping it is the signal for every task to stop.
    stop: watch::Sender<()>,
    tasks: Vec<JoinHandle<()>>,
}

impl StandIn {
    /// Binds both listeners (port 0 picks a free port) and starts serving.
    pub async fn start(
        admin_addr: SocketAddr,
        probe_addr: SocketAddr,
        options: StandInOptions,
    ) -> io::Result<StandIn> {
        let admin = TcpListener::bind(admin_addr).await?;
        let probe = TcpListener::bind(probe_addr).await?;
        let admin_addr = admin.local_addr()?;
        let probe_addr = probe.local_addr()?;

        let config = NodeConfig {
            chain: options.chain(),
            start_active: options.start_active,
            operator: options.operator.clone(),
            keys: options.keys.clone(),
            sync_lag: Duration::from_millis(100),
            ready: options.ready,
        };
        let now = wall_clock();
        let model = NodeModel::new(config, now);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                model,
                // The start mode is not a change; subscribers hear of changes only.
                published: 1,
                now,
            }),
            changed: Notify::new(),
            clock: Notify::new(),
            killed: watch::channel(false).0,
            transitions: broadcast::channel(1024).0,
            admin_token: options.admin_token.clone(),
        });

        let (stop, stopped) = watch::channel(());
        let tasks = vec![
            tokio::spawn(serve(
                admin,
                Listener::Admin,
                shared.clone(),
                stopped.clone(),
            )),
            tokio::spawn(serve(
                probe,
                Listener::Probe,
                shared.clone(),
                stopped.clone(),
            )),
            tokio::spawn(run_clock(shared.clone(), stopped)),
        ];
        Ok(StandIn {
            admin_addr,
            probe_addr,
            shared,
            stop,
            tasks,
        })
    }

    /// The bound admin address (`/ha`, `/producer-keys` and `/control/...`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The bound probe address (`/liveness`, `/readiness`, `/health`, `/metrics`).
    pub fn probe_addr(&self) -> SocketAddr {
        self.probe_addr
    }

    /// The current state, like `/control/state`.
    pub fn state(&self) -> StandInState {
        self.shared.state()
    }

    /// Everything the node signed and broadcast so far, oldest first, across restarts.
    pub fn signatures(&self) -> Vec<Signature> {
        self.shared.update(|model, _| model.signatures().to_vec())
    }

    /// Like `/control/ready?value=`.
    pub fn set_ready(&self, ready: bool) {
        self.shared.update(|model, _| model.set_ready(ready));
    }

    /// Like `/control/fault?admin=`.
    pub fn set_admin_fault(&self, fault: AdminFault) {
        self.shared.update(|model, _| model.set_admin_fault(fault));
    }

    /// Like `/control/restart?active=`.
    pub fn restart(&self, start_active: bool) {
        self.shared
            .update(|model, now| model.restart(now, start_active));
    }

    /// Like `/control/fault?activate=refuse` (`true`) or `activate=none` (`false`).
    pub fn set_refuse_activation(&self, refuse: bool) {
        self.shared
            .update(|model, _| model.set_refuse_activation(refuse));
    }

    /// Like `/control/kill`: the node process dies, for good.
    pub fn kill(&self) {
        self.shared.kill();
    }

    /// Every change of the reported mode from now on, as `(model time, active)`, in order.
    pub fn subscribe(&self) -> broadcast::Receiver<Transition> {
        self.shared.transitions.subscribe()
    }

    /// Stops serving: closes the listeners and every open connection (requests hung by
    /// [`AdminFault::Hang`] included), and waits for that to finish.
    pub async fn shutdown(self) {
        let StandIn { stop, tasks, .. } = self;
        drop(stop);
        for task in tasks {
            // A task can only fail by panicking; that panic belongs to whoever caused it.
            if let Err(error) = task.await
                && error.is_panic()
            {
                std::panic::resume_unwind(error.into_panic());
            }
        }
    }
}

/// A pair of readings of this process's monotonic clock and the model's clock, taken
/// together: what puts model times on an [`Instant`] time line and back.
#[derive(Copy, Clone, Debug)]
pub struct ClockAnchor {
    pub instant: Instant,
    pub model: Duration,
}

impl ClockAnchor {
    /// Both clocks now.
    pub fn now() -> Self {
        let before = Instant::now();
        let model = wall_clock();
        let after = Instant::now();
        ClockAnchor {
            instant: before + (after - before) / 2,
            model,
        }
    }

    /// The instant of model time `at`.
    pub fn instant_of(&self, at: Duration) -> Instant {
        if at >= self.model {
            self.instant + (at - self.model)
        } else {
            self.instant
                .checked_sub(self.model - at)
                .unwrap_or(self.instant)
        }
    }

    /// The model time of `instant`.
    pub fn model_of(&self, instant: Instant) -> Duration {
        if instant >= self.instant {
            self.model + (instant - self.instant)
        } else {
            self.model.saturating_sub(self.instant - instant)
        }
    }
}

/// Which of the node's two servers a listener plays.
#[derive(Copy, Clone, Debug)]
enum Listener {
    Admin,
    Probe,
}

/// What the servers, the clock task and the handle share.
struct Shared {
    state: Mutex<State>,
    /// Notified (all waiters) after every change: requests look for their answers.
    changed: Notify,
    /// Notified (one permit) after every change: the clock task recomputes its wake-up.
    clock: Notify,
    transitions: broadcast::Sender<Transition>,
    /// `true` once the node was killed: the listeners close and no request is answered.
    killed: watch::Sender<bool>,
    /// `IOTEX_ADMIN_TOKEN`; `None`: no `/producer-keys`.
    admin_token: Option<String>,
}

struct State {
    model: NodeModel,
    /// How many entries of the model's mode history went out on `transitions`.
    published: usize,
    /// The latest time given to the model: it never goes back, even if the wall clock does.
    now: Duration,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The model stays consistent even if a holder panicked: its methods do not unwind
        // midway through a change.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs the model to now, then `change` on it, publishes any mode change and wakes the
    /// waiters and the clock task. The time is read under the lock, so the model sees it
    /// increase.
    fn update<R>(&self, change: impl FnOnce(&mut NodeModel, Duration) -> R) -> R {
        let result = {
            let mut state = self.lock();
            let now = wall_clock().max(state.now);
            state.now = now;
            state.model.advance(now);
            let result = change(&mut state.model, now);
            let published = state.published;
            let history = state.model.mode_history();
            for &transition in history.get(published..).unwrap_or_default() {
                // No subscriber is fine.
                let _ = self.transitions.send(transition);
            }
            state.published = history.len();
            result
        };
        self.changed.notify_waiters();
        self.clock.notify_one();
        result
    }

    /// The node process dies: it signs nothing more, unready, and nothing answers any more.
    fn kill(&self) {
        self.update(|model, now| model.kill(now));
        self.killed.send_replace(true);
    }

    fn is_killed(&self) -> bool {
        *self.killed.borrow()
    }

    /// Resolves once the node is killed.
    async fn until_killed(&self) {
        let mut killed = self.killed.subscribe();
        // The sender lives as long as `self`.
        let _ = killed.wait_for(|&killed| killed).await;
    }

    fn state(&self) -> StandInState {
        let alive = !self.is_killed();
        self.update(|model, now| StandInState {
            active: model.reported_mode() && !model.is_down(),
            ready: model.is_ready(),
            fault: model.admin_fault(),
            refuse_activation: model.refuses_activation(),
            alive,
            start_active: model.start_active(),
            now,
            history: model.mode_history().to_vec(),
            operator: model.config().operator.clone(),
            keys: model.keys().to_vec(),
            signatures: model.signatures().len(),
        })
    }

    /// Hands `request` to the node and waits for its answer. If the caller stops waiting
    /// (the client went away and hyper dropped the request), the ticket is abandoned: the
    /// request still takes effect, as Go's handler runs to its end.
    async fn ask(&self, request: NodeRequest) -> Answer {
        let ticket = self.update(|model, now| model.submit(now, request));
        let mut guard = Abandon {
            shared: self,
            ticket: Some(ticket),
        };
        loop {
            let mut notified = pin!(self.changed.notified());
            notified.as_mut().enable();
            if let Some(answer) = self.lock().model.take_answer(ticket) {
                guard.ticket = None;
                return answer;
            }
            notified.await;
        }
    }
}

/// Abandons a request whose client went away before its answer.
struct Abandon<'a> {
    shared: &'a Shared,
    ticket: Option<Ticket>,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.shared.lock().model.abandon(ticket);
        }
    }
}

/// The node's clock: advances the model to each of its wake-ups (timers, the end of a
/// `prepare()` sleep, the network's messages and blocks) as they come, so that signatures,
/// readiness and held requests happen on time, not only at the next request.
async fn run_clock(shared: Arc<Shared>, mut stopped: watch::Receiver<()>) {
    loop {
        let wake = shared.lock().model.next_wake();
        // Never a wake-up in the past (a model that asked for one would spin); an idle model
        // still looks again now and then.
        let sleep = match wake {
            Some(at) => at
                .saturating_sub(wall_clock())
                .max(Duration::from_millis(1)),
            None => Duration::from_secs(1),
        };
        tokio::select! {
            _ = stopped.changed() => return,
            () = shared.clock.notified() => {}
            () = tokio::time::sleep(sleep) => shared.update(|_, _| ()),
        }
    }
}

/// Accepts connections until stopped or killed, then drops every connection still open. A
/// killed node closes its listener at once (new connections are refused) and lets its open
/// connections close themselves (see [`serve_connection`]), so that the answer to
/// `/control/kill` still goes out.
async fn serve(
    listener: TcpListener,
    kind: Listener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    let mut killed = false;
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            () = shared.until_killed() => {
                killed = true;
                break;
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, kind, shared.clone()));
                }
                // Out of file descriptors and the like: wait rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    if killed {
        drop(listener);
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }
    // Aborts the connection tasks: a hung `/ha` request would never finish by itself.
    connections.shutdown().await;
}

/// What a dead node answers: nothing. The error makes hyper close the connection.
#[derive(Debug)]
struct Dead;

impl std::fmt::Display for Dead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the node was killed or restarted")
    }
}

impl std::error::Error for Dead {}

async fn serve_connection(stream: TcpStream, kind: Listener, shared: Arc<Shared>) {
    let service = {
        let shared = shared.clone();
        service_fn(move |request| {
            let shared = shared.clone();
            async move { route(&shared, kind, request).await }
        })
    };
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    // A failed connection (client reset, malformed request) concerns only that client.
    tokio::select! {
        _ = connection.as_mut() => return,
        () = shared.until_killed() => {}
    }
    // Killed: an idle connection closes now, a busy one once its answer is out (the answer
    // to `/control/kill`; any other request of a dead node gets none, see `route`).
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

async fn route(
    shared: &Shared,
    kind: Listener,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dead> {
    if shared.is_killed() {
        return Err(Dead);
    }
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let query = query.as_deref();
    Ok(match kind {
        Listener::Probe => {
            let reply = shared.update(|model, now| model.handle_probe(now, &path));
            let content_type = if path == "/metrics" {
                "text/plain; version=0.0.4; charset=utf-8"
            } else {
                TEXT
            };
            respond(reply, content_type)
        }
        Listener::Admin if path == "/ha" => {
            // The node checks neither the method nor anything but `activate`.
            let activate = query_value(query, "activate");
            let answer = shared.ask(NodeRequest::Ha { activate }).await;
            return answer_to_response(shared, answer, TEXT).await;
        }
        Listener::Admin if path == "/producer-keys" => {
            return producer_keys(shared, request).await;
        }
        Listener::Admin => match path.strip_prefix("/control/") {
            Some(endpoint) => control(shared, request.method(), endpoint, query),
            None => not_found(),
        },
    })
}

/// What the model's answer becomes on the wire.
async fn answer_to_response(
    shared: &Shared,
    answer: Answer,
    content_type: &str,
) -> Result<Response<Full<Bytes>>, Dead> {
    match answer {
        Answer::Reply(reply) => Ok(respond(reply, content_type)),
        // Never answer; the connection is dropped when the client gives up, the node is
        // killed or the stand-in shuts down.
        Answer::Hang => {
            shared.until_killed().await;
            Err(Dead)
        }
        // The process died or restarted before answering: the connection closes.
        Answer::Dropped => Err(Dead),
    }
}

/// `/producer-keys` (iotex-core v2.5.0): `GET` lists the keys' addresses, `PUT
/// {"private_keys":[hex...]}` replaces them, `PATCH {"add_keys":[hex...],
/// "remove_addresses":[...]}` edits them (never to none). The admin token is required; without
/// one configured the node has no such endpoint.
async fn producer_keys(
    shared: &Shared,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dead> {
    let Some(token) = &shared.admin_token else {
        return Ok(not_found());
    };
    if !authorized(request.headers(), token) {
        return Ok(text(401, "unauthorized: admin token required\n"));
    }
    let method = request.method().clone();
    if method != Method::GET && method != Method::PUT && method != Method::PATCH {
        return Ok(text(405, "method not allowed\n"));
    }
    let node_request = if method == Method::GET {
        NodeRequest::ProducerKeysGet
    } else {
        let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return Ok(text(413, "request body too large\n")),
        };
        let keys = if method == Method::PUT {
            replaced_keys(&body)
        } else {
            let current = shared.lock().model.keys().to_vec();
            edited_keys(&body, current)
        };
        match keys {
            Ok(keys) => NodeRequest::ProducerKeysPut { keys },
            Err(message) => return Ok(text(400, &format!("{message}\n"))),
        }
    };
    let answer = shared.ask(node_request).await;
    answer_to_response(shared, answer, "application/json").await
}

/// `Authorization: Bearer <token>` or `X-Admin-Token: <token>`.
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|v| v.trim() == token);
    let header = headers
        .get("x-admin-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == token);
    bearer || header
}

/// The addresses of the keys of a `PUT` body, with the product's own derivation.
fn replaced_keys(body: &[u8]) -> Result<Vec<String>, String> {
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let keys = addresses(&json["private_keys"])?;
    if keys.is_empty() {
        return Err("private_keys is empty".into());
    }
    Ok(keys)
}

/// The keys after a `PATCH` body's edits of `current`.
fn edited_keys(body: &[u8], mut current: Vec<String>) -> Result<Vec<String>, String> {
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let added = match &json["add_keys"] {
        serde_json::Value::Null => Vec::new(),
        list => addresses(list)?,
    };
    let removed: Vec<&str> = match &json["remove_addresses"] {
        serde_json::Value::Null => Vec::new(),
        serde_json::Value::Array(list) => list.iter().filter_map(|v| v.as_str()).collect(),
        _ => return Err("remove_addresses must be a list".into()),
    };
    current.retain(|k| !removed.contains(&k.as_str()));
    for key in added {
        if !current.contains(&key) {
            current.push(key);
        }
    }
    if current.is_empty() {
        return Err("the edit would leave no producer key".into());
    }
    Ok(current)
}

fn addresses(list: &serde_json::Value) -> Result<Vec<String>, String> {
    let Some(list) = list.as_array() else {
        return Err("expected a list of private keys".into());
    };
    list.iter()
        .map(|key| {
            let key = key.as_str().ok_or("a private key must be a string")?;
            address_of(key)
        })
        .collect()
}

/// The control endpoints; see [`CONTROL_ENDPOINTS_HELP`].
fn control(
    shared: &Shared,
    method: &Method,
    endpoint: &str,
    query: Option<&str>,
) -> Response<Full<Bytes>> {
    if !matches!(
        endpoint,
        "ready" | "fault" | "restart" | "kill" | "state" | "signatures"
    ) {
        return not_found();
    }
    if method != Method::GET && method != Method::POST {
        return text(405, "use GET or POST\n");
    }
    let bad_request = |message: &str| text(400, &format!("{message}\n"));
    match endpoint {
        "ready" => match query_value(query, "value").as_deref().and_then(parse_bool) {
            Some(ready) => shared.update(|model, _| model.set_ready(ready)),
            None => return bad_request("expected value=true or value=false"),
        },
        "fault" => {
            let admin = query_value(query, "admin");
            let activate = query_value(query, "activate");
            let fault = admin.as_deref().map(AdminFault::parse);
            let refuse = activate.as_deref().map(|value| match value {
                "none" => Some(false),
                "refuse" => Some(true),
                _ => None,
            });
            if matches!(fault, Some(None))
                || matches!(refuse, Some(None))
                || (admin, activate) == (None, None)
            {
                return bad_request(
                    "expected admin=none|500|garbage|hang and/or activate=none|refuse",
                );
            }
            if let Some(Some(fault)) = fault {
                shared.update(|model, _| model.set_admin_fault(fault));
            }
            if let Some(Some(refuse)) = refuse {
                shared.update(|model, _| model.set_refuse_activation(refuse));
            }
        }
        "restart" => {
            let start_active = match query_value(query, "active") {
                None => None,
                Some(value) => match parse_bool(&value) {
                    Some(active) => Some(active),
                    None => return bad_request("expected active=true, active=false or nothing"),
                },
            };
            shared.update(|model, now| {
                let start_active = start_active.unwrap_or(model.start_active());
                model.restart(now, start_active);
            });
        }
        "kill" => shared.kill(),
        "signatures" => {
            let signatures = shared.update(|model, _| model.signatures().to_vec());
            let body = signatures_json(&signatures).to_string() + "\n";
            return respond(Reply::new(200, body), "application/json");
        }
        _ => {} // state
    }
    let body = shared.state().to_json().to_string() + "\n";
    respond(Reply::new(200, body), "application/json")
}

const TEXT: &str = "text/plain; charset=utf-8";

fn respond(reply: Reply, content_type: &str) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

fn text(status: u16, body: &str) -> Response<Full<Bytes>> {
    respond(Reply::new(status, body), TEXT)
}

fn not_found() -> Response<Full<Bytes>> {
    // What Go's `http.NotFound` answers.
    text(404, "404 page not found\n")
}

fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The first value of `key` in a query string, decoded the way Go's `url.ParseQuery` and
/// `Values.Get` do it, because that is what the node sees: pairs split on `&`; a pair holding
/// a `;` or a bad `%` escape is skipped; `+` is a space; a key without `=` has an empty value.
fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    query?
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.contains(';'))
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((unescape(k)?, unescape(v)?))
        })
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// Go's `url.QueryUnescape`: `%XX` escapes and `+` for space; `None` on a bad escape.
/// Hand-written because the crates (`form_urlencoded`) keep a bad escape as text, where Go
/// drops the pair, and the stand-in must answer as the node does.
fn unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                decoded.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                decoded.push(b' ');
                i += 1;
            }
            byte => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&decoded).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_found_and_decoded_like_go() {
        let get = |query: &str| query_value(Some(query), "activate");
        assert_eq!(get("activate=true"), Some("true".into()));
        assert_eq!(get("x=1&activate=TRUE"), Some("TRUE".into()));
        assert_eq!(get("activate=%74rue"), Some("true".into()));
        assert_eq!(get("activate=a+b%20c"), Some("a b c".into()));
        // The first value wins.
        assert_eq!(get("activate=false&activate=true"), Some("false".into()));
        // Present but empty: the node treats it as a read.
        assert_eq!(get("activate"), Some(String::new()));
        assert_eq!(get("activate="), Some(String::new()));
        // Skipped pairs: the next valid one counts, or none.
        assert_eq!(get("activate=tr%ZZ"), None);
        assert_eq!(get("activate=%7"), None);
        assert_eq!(get("activate=true;x=1"), None);
        assert_eq!(get("activate=%zz&activate=true"), Some("true".into()));
        // Keys are case-sensitive and decoded too.
        assert_eq!(get("Activate=true"), None);
        assert_eq!(get("activat%65=true"), Some("true".into()));
        assert_eq!(query_value(None, "activate"), None);
    }

    #[test]
    fn state_json_has_the_documented_shape() {
        let state = StandInState {
            active: true,
            ready: false,
            fault: AdminFault::Hang,
            refuse_activation: true,
            alive: false,
            start_active: false,
            now: Duration::from_millis(2_500),
            history: vec![
                (Duration::ZERO, false),
                (Duration::from_micros(1_200_900), true),
            ],
            operator: "io1op".into(),
            keys: vec!["io1op".into()],
            signatures: 3,
        };
        assert_eq!(
            state.to_json(),
            serde_json::json!({
                "active": true,
                "ready": false,
                "fault": "hang",
                "activate_fault": "refuse",
                "alive": false,
                "start_active": false,
                "now_ms": 2500,
                "history": [[0, false], [1200, true]],
                "operator": "io1op",
                "keys": ["io1op"],
                "signatures": 3,
            })
        );
    }

    #[test]
    fn keys_are_derived_and_edited() {
        let operator = test_operator();
        let placeholder = test_placeholder();
        assert!(operator.starts_with("io1") && operator != placeholder);
        let put = format!("{{\"private_keys\":[\"{TEST_PLACEHOLDER_KEY}\"]}}");
        assert_eq!(replaced_keys(put.as_bytes()), Ok(vec![placeholder.clone()]));
        assert!(replaced_keys(b"{\"private_keys\":[]}").is_err());
        assert!(replaced_keys(b"{\"private_keys\":[\"12\"]}").is_err());
        let patch = format!(
            "{{\"add_keys\":[\"{TEST_OPERATOR_KEY}\"],\"remove_addresses\":[\"{placeholder}\"]}}"
        );
        assert_eq!(
            edited_keys(patch.as_bytes(), vec![placeholder.clone()]),
            Ok(vec![operator])
        );
        let remove_all = format!("{{\"remove_addresses\":[\"{placeholder}\"]}}");
        assert!(edited_keys(remove_all.as_bytes(), vec![placeholder]).is_err());
    }
}

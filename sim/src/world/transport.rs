//! The shell's seams, implemented over turmoil: the etcd connection ([`SimConnect`]), the node
//! client's HTTP GET ([`TurmoilHttp`]), and the node's admin and probe servers ([`NodeCell`],
//! [`serve_node`]).

use crate::seed::trace::{Recorder, sim_now};
use elector::etcd::Connect;
use elector::node::{HttpAnswer, HttpGet, HttpMethod, HttpRequest};
use elector_model::node::{
    AdminFault, Answer, NodeConfig, NodeModel, Reply, Request as ModelRequest, Signature, Ticket,
    Transition,
};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;

/// Port of the node's admin endpoint (`/ha`).
pub const ADMIN_PORT: u16 = 9009;
/// Port of the node's probe endpoint (`/readiness`).
pub const PROBE_PORT: u16 = 8080;
/// Port etcd serves on.
pub const ETCD_PORT: u16 = 2379;

/// Connects the driver to the model etcd over turmoil, configured like production's
/// `elector::etcd::connect`: connect timeout = the request timeout, HTTP/2 pings while a
/// stream is open with the same interval and timeout (`elector::etcd::pings_for` of the
/// replica's timing). The pings are hyper's own, over turmoil's TCP: a connection that a
/// partition silently broke is noticed by them as in production. The channel is lazy and
/// reconnects by itself after the connection fails.
#[derive(Clone, Debug)]
pub struct SimConnect {
    /// `http://etcd:2379`
    pub uri: String,
    pub request_timeout: Duration,
    /// HTTP/2 ping interval and timeout.
    pub ping: (Duration, Duration),
}

impl Connect for SimConnect {
    async fn connect(&self) -> Result<etcd_client::Client, String> {
        let endpoint = tonic::transport::Endpoint::from_shared(self.uri.clone())
            .map_err(|e| format!("bad etcd uri {}: {e}", self.uri))?
            .connect_timeout(self.request_timeout)
            .http2_keep_alive_interval(self.ping.0)
            .keep_alive_timeout(self.ping.1)
            .keep_alive_while_idle(false);
        let channel = crate::world::etcd_model::turmoil_channel(&endpoint);
        etcd_client::Client::from_channel(etcd_client::Channel::Tonic(channel), None)
            .await
            .map_err(|e| format!("etcd client: {e}"))
    }
}

/// One HTTP/1.1 request per connection over turmoil's TCP, bounded by the timeout as a whole
/// (connect, request, answer). A call that times out is dropped with its connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct TurmoilHttp;

impl HttpGet for TurmoilHttp {
    async fn get(&self, url: &str, timeout: Duration) -> Result<HttpAnswer, String> {
        bounded(timeout, request_once(HttpMethod::Get, url, None, None)).await
    }

    async fn send(&self, request: HttpRequest, timeout: Duration) -> Result<HttpAnswer, String> {
        let call = request_once(
            request.method,
            &request.url,
            Some(&request.bearer),
            request.json.as_deref(),
        );
        bounded(timeout, call).await
    }
}

async fn bounded(
    timeout: Duration,
    call: impl Future<Output = Result<HttpAnswer, String>>,
) -> Result<HttpAnswer, String> {
    match tokio::time::timeout(timeout, call).await {
        Ok(answer) => answer,
        Err(_) => Err(format!("no answer within {}ms", timeout.as_millis())),
    }
}

async fn request_once(
    method: HttpMethod,
    url: &str,
    bearer: Option<&str>,
    json: Option<&str>,
) -> Result<HttpAnswer, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad url {url}: {e}"))?;
    let authority = uri
        .authority()
        .ok_or_else(|| format!("no host:port in {url}"))?
        .to_string();
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let stream = turmoil::net::TcpStream::connect(authority.as_str())
        .await
        .map_err(|e| format!("connect to {authority}: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| format!("http handshake with {authority}: {e}"))?;
    let mut request = Request::builder()
        .method(method.as_str())
        .uri(path)
        .header(hyper::header::HOST, authority.as_str());
    if let Some(token) = bearer {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if json.is_some() {
        request = request.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let body = Full::new(Bytes::from(json.unwrap_or_default().to_owned()));
    let request = request
        .body(body)
        .map_err(|e| format!("request {url}: {e}"))?;
    let method = method.as_str();
    let exchange = async move {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{method} {url}: body: {e}"))?
            .to_bytes();
        // Dropping the sender here lets the connection finish.
        drop(sender);
        Ok(HttpAnswer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    let (answer, _closed) = tokio::join!(exchange, connection);
    answer
}

/// A node: one iotex-core process as the elector meets it ([`NodeModel`], from iotex-core's
/// consensus code), served over turmoil by [`serve_node`]. Shared by its host's servers and
/// clock, the fence, the supervisor model and the checker. The model is pure and synchronous;
/// this cell runs it on the simulation's clock: every change wakes the cell's waiters, the
/// node host's clock task advances the model to each of its wake-ups, and a
/// request waits for its answer across them.
pub struct NodeCell {
    name: String,
    state: Mutex<NodeState>,
    /// Notified after every change of the model: the clock task recomputes its next wake-up,
    /// requests look for their answers, hung requests for the end of the hang.
    changed: Notify,
    recorder: Recorder,
}

struct NodeState {
    model: NodeModel,
    /// A persistent fault killed the process for good: restarts and readiness are ignored.
    dead_for_good: bool,
    /// The admin fault that outlives transient ones (a persistent fault): clearing a transient
    /// fault brings it back.
    base_fault: AdminFault,
    /// What reached the node and sets its commanded mode, in order: `activate=true|false`
    /// handed to the model without a fault (it lands, even if its client gives up), and the
    /// process's (re)starts with their configured mode. `(when, active)`.
    commands: Vec<(Duration, bool)>,
    /// `IOTEX_ADMIN_TOKEN`: set, the node serves `/producer-keys` (iotex-core v2.5.0 with key
    /// custody); unset, it answers 404 there like an older node.
    admin_token: Option<String>,
    /// A `PUT /producer-keys` is held this long before its handler runs (a starved process):
    /// the elector's call may time out and the replacement still lands afterwards.
    keys_delay: Duration,
}

impl NodeCell {
    /// A node process started at time 0 with `config` (configured standby, not ready yet).
    pub fn new(name: String, config: NodeConfig, recorder: Recorder) -> Arc<Self> {
        let start_active = config.start_active;
        Arc::new(NodeCell {
            name,
            state: Mutex::new(NodeState {
                model: NodeModel::new(config, Duration::ZERO),
                dead_for_good: false,
                base_fault: AdminFault::None,
                commands: vec![(Duration::ZERO, start_active)],
                admin_token: None,
                keys_delay: Duration::ZERO,
            }),
            changed: Notify::new(),
            recorder,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the model at `now` (run to `now` first) and wakes whoever waits on it.
    fn change<R>(&self, now: Duration, f: impl FnOnce(&mut NodeState) -> R) -> R {
        let mut state = self.lock();
        state.model.advance(now);
        let result = f(&mut state);
        drop(state);
        self.changed.notify_waiters();
        result
    }

    /// Runs the model to `now`.
    pub fn advance(&self, now: Duration) {
        self.change(now, |_| ());
    }

    /// Reads the model.
    pub fn read<R>(&self, f: impl FnOnce(&NodeModel) -> R) -> R {
        f(&self.lock().model)
    }

    pub fn is_down(&self) -> bool {
        self.lock().model.is_down()
    }

    /// Readiness from the next block on (iotex-core evaluates it per block); a node dead for
    /// good stays unready.
    pub fn set_ready(&self, now: Duration, ready: bool) {
        self.change(now, |state| {
            let ready = ready && !state.dead_for_good;
            state.model.set_ready(ready);
        });
    }

    /// A transient admin fault, or [`AdminFault::None`] to clear it: then the persistent fault,
    /// if any, is back.
    pub fn set_admin_fault(&self, now: Duration, fault: AdminFault) {
        self.change(now, |state| {
            let fault = match fault {
                AdminFault::None => state.base_fault,
                fault => fault,
            };
            state.model.set_admin_fault(fault);
        });
    }

    /// A persistent admin fault: from now to the end of the run (transient faults on top of it
    /// come and go).
    pub fn set_persistent_admin_fault(&self, now: Duration, fault: AdminFault) {
        self.lock().base_fault = fault;
        self.set_admin_fault(now, fault);
    }

    /// The node serves `/producer-keys` behind this token (key custody).
    pub fn set_admin_token(&self, token: &str) {
        self.lock().admin_token = Some(token.to_owned());
    }

    /// From now on every `PUT /producer-keys` is held `delay` before it runs.
    pub fn set_keys_delay(&self, delay: Duration) {
        self.lock().keys_delay = delay;
    }

    /// The configuration's producer keys from the next (re)start on (see the node model).
    pub fn configure_keys(&self, keys: Vec<String>) {
        self.lock().model.configure_keys(keys);
    }

    /// Someone on the host runs `curl .../ha?activate=true` against this node: the elector
    /// did not send it. Returns at once; the node carries it out as any other request.
    pub fn activate_by_hand(&self, now: Duration) {
        let request = ModelRequest::Ha {
            activate: Some("true".to_owned()),
        };
        let ticket = self.submit(now, request);
        self.lock().model.abandon(ticket);
    }

    /// From now on `activate=true` answers 500 without effect (see the node model).
    pub fn set_refuse_activation(&self, now: Duration, refuse: bool) {
        self.change(now, |state| state.model.set_refuse_activation(refuse));
    }

    /// From now on the node gets the network's blocks `lag` after they are committed.
    pub fn set_sync_lag(&self, now: Duration, lag: Duration) {
        self.change(now, |state| state.model.set_sync_lag(lag));
    }

    /// The process dies at `now` and never comes back: restarts and readiness are ignored.
    pub fn kill_for_good(&self, now: Duration) {
        self.lock().dead_for_good = true;
        self.kill(now);
    }

    pub fn is_dead_for_good(&self) -> bool {
        self.lock().dead_for_good
    }

    /// The process dies at `now`: it signs nothing more, requests in flight get no answer,
    /// endpoints are gone; it is unready until told otherwise.
    pub fn kill(&self, now: Duration) {
        self.change(now, |state| {
            state.model.kill(now);
            state.model.set_ready(false);
        });
    }

    /// The process starts at `now` configured `system.active: active`; endpoints are back.
    /// Whether it started (a node dead for good does not).
    pub fn start(&self, now: Duration, active: bool) -> bool {
        self.change(now, |state| {
            if state.dead_for_good {
                return false;
            }
            state.model.restart(now, active);
            state.commands.push((now, active));
            true
        })
    }

    /// The fence, when it succeeds: the operator's command has stopped the node's signing by
    /// the time it reports success: the process restarts in standby (its signatures so far are
    /// kept; readiness is reported again from the next block; admin faults stay). A dead node
    /// stays dead.
    pub fn fence(&self, now: Duration) {
        self.change(now, |state| {
            if !state.model.is_down() {
                state.model.restart(now, false);
                state.commands.push((now, false));
            }
        });
    }

    /// Whether the node's commanded mode was last set to standby (a command that reached it,
    /// or a restart in standby), or it is down: what `restart_bound` asks of the supervisor
    /// after an elector died.
    pub fn commanded_standby_or_down(&self) -> bool {
        let state = self.lock();
        state.model.is_down() || state.commands.last().is_some_and(|&(_, active)| !active)
    }

    /// What set the node's commanded mode, in order: `(when, active)` for every
    /// `activate=true|false` that reached it and every (re)start of its process.
    pub fn commands(&self) -> Vec<(Duration, bool)> {
        self.lock().commands.clone()
    }

    /// Every change of "active as the delegate": the mode a read would report, while the
    /// node holds the operator's key. Without key custody it always does, and this is the
    /// mode's history; with it, a standby activated by hand holds only its placeholder and
    /// cannot sign: the never-two-active check does not count it.
    pub fn history(&self) -> Vec<Transition> {
        self.lock().model.delegate_history().to_vec()
    }

    /// Everything the node signed and broadcast, across its process's restarts.
    pub fn signatures(&self) -> Vec<Signature> {
        self.lock().model.signatures().to_vec()
    }

    /// Hands one admin request to the node at `now`; records commands (not reads) in the
    /// timeline and in [`NodeState::commands`].
    fn submit(&self, now: Duration, request: ModelRequest) -> Ticket {
        let activate = match &request {
            ModelRequest::Ha { activate } => activate.clone().filter(|v| !v.is_empty()),
            ModelRequest::ProducerKeysPut { keys } => {
                let keys = keys.join(",");
                self.recorder.record(
                    now,
                    self.name.clone(),
                    format!("<- PUT /producer-keys [{keys}]"),
                );
                None
            }
            ModelRequest::ProducerKeysGet => None,
        };
        let (ticket, outcome) = self.change(now, |state| {
            let fault = state.model.admin_fault();
            let refused = state.model.refuses_activation();
            let down = state.model.is_down();
            let ticket = state.model.submit(now, request);
            let value = activate.as_deref().map(str::to_lowercase);
            let outcome = match value.as_deref() {
                None => None,
                Some(_) if down => Some("process down: no answer".to_owned()),
                Some(_) if fault != AdminFault::None => {
                    Some(format!("fault {}, no effect", fault.as_str()))
                }
                Some("true") if refused => Some("activation refused, no effect".to_owned()),
                Some(v @ ("true" | "false")) => {
                    state.commands.push((now, v == "true"));
                    Some("taken".to_owned())
                }
                Some(_) => Some("ignored".to_owned()),
            };
            (ticket, outcome)
        });
        if let (Some(value), Some(outcome)) = (activate, outcome) {
            self.recorder.record(
                now,
                self.name.clone(),
                format!("<- activate={value}: {outcome}"),
            );
        }
        ticket
    }

    /// Waits for the answer to `ticket`: the node may hold a request (iotex-core holds
    /// `activate=false` until the slot in progress starts, and reads behind it). If the caller
    /// gives up (its future is dropped), the request is abandoned: it still takes effect.
    async fn answer(&self, ticket: Ticket) -> Answer {
        let mut guard = Abandon {
            cell: self,
            ticket: Some(ticket),
        };
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(answer) = self.lock().model.take_answer(ticket) {
                guard.ticket = None;
                return answer;
            }
            notified.await;
        }
    }

    /// Waits until the admin fault is no longer a hang, or the process died.
    async fn hang(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let state = self.lock();
                if state.model.is_down() || state.model.admin_fault() != AdminFault::Hang {
                    return;
                }
            }
            notified.await;
        }
    }

    /// The node host's clock: advances the model to each of its wake-ups (timers, the end of
    /// a `prepare()` sleep, the network's messages and blocks) on simulated time, and wakes
    /// the requests waiting on it. A change made from elsewhere wakes it to look again.
    async fn run_clock(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = sim_now();
            let wake = self.lock().model.next_wake();
            match wake {
                Some(at) => {
                    // Never a wake-up in the past: a model that asked for one would otherwise
                    // spin within one instant, and turmoil's step with it.
                    let sleep = at.saturating_sub(now).max(Duration::from_millis(1));
                    tokio::select! {
                        biased;
                        () = notified => continue,
                        () = tokio::time::sleep(sleep) => {}
                    }
                }
                None => {
                    notified.await;
                    continue;
                }
            }
            let now = sim_now();
            self.lock().model.advance(now);
            self.changed.notify_waiters();
        }
    }
}

/// Abandons a request whose caller stopped waiting (the elector's HTTP client timed out and
/// dropped the connection): the node still carries it out, as Go's handler runs to its end.
struct Abandon<'a> {
    cell: &'a NodeCell,
    ticket: Option<Ticket>,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.cell.lock().model.abandon(ticket);
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Endpoint {
    Admin,
    Probe,
}

/// The error that makes hyper drop a connection without an answer.
#[derive(Debug)]
struct NoAnswer;

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no answer")
    }
}

impl std::error::Error for NoAnswer {}

/// The node host's software: the admin server on [`ADMIN_PORT`], the probe server on
/// [`PROBE_PORT`], and the model's clock.
pub async fn serve_node(cell: Arc<NodeCell>) -> turmoil::Result {
    let admin = turmoil::net::TcpListener::bind(("0.0.0.0", ADMIN_PORT)).await?;
    let probe = turmoil::net::TcpListener::bind(("0.0.0.0", PROBE_PORT)).await?;
    let clock = cell.clone();
    tokio::spawn(async move { clock.run_clock().await });
    tokio::spawn(accept(cell.clone(), probe, Endpoint::Probe));
    accept(cell, admin, Endpoint::Admin).await;
    Ok(())
}

async fn accept(cell: Arc<NodeCell>, listener: turmoil::net::TcpListener, endpoint: Endpoint) {
    while let Ok((stream, _)) = listener.accept().await {
        if cell.is_down() {
            // A dead process: the connection goes nowhere.
            drop(stream);
            continue;
        }
        let cell = cell.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let cell = cell.clone();
                async move { handle(&cell, endpoint, request).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() =
        hyper::StatusCode::from_u16(reply.status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    response
}

async fn handle(
    cell: &NodeCell,
    endpoint: Endpoint,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, NoAnswer> {
    let now = sim_now();
    let path = request.uri().path().to_owned();
    match endpoint {
        Endpoint::Probe => {
            let mut state = cell.lock();
            if state.model.is_down() {
                return Err(NoAnswer);
            }
            Ok(answer(state.model.handle_probe(now, &path)))
        }
        Endpoint::Admin if path == "/producer-keys" => producer_keys(cell, request).await,
        Endpoint::Admin => {
            if path != "/ha" {
                return Ok(answer(Reply::new(404, "404 page not found\n")));
            }
            let query = request.uri().query().unwrap_or("");
            // Go's `Query().Get("activate")`: the first value, "" when absent.
            let activate = query
                .split('&')
                .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
                .find(|(key, _)| *key == "activate")
                .map(|(_, value)| value.to_owned());
            let ticket = cell.submit(now, ModelRequest::Ha { activate });
            respond(cell, ticket).await
        }
    }
}

/// Waits for the model's answer to `ticket` and sends it (or none).
async fn respond(cell: &NodeCell, ticket: Ticket) -> Result<Response<Full<Bytes>>, NoAnswer> {
    match cell.answer(ticket).await {
        Answer::Reply(reply) => Ok(answer(reply)),
        Answer::Dropped => Err(NoAnswer),
        Answer::Hang => {
            cell.hang().await;
            Err(NoAnswer)
        }
    }
}

/// `/producer-keys` as iotex-core v2.5.0 serves it: the admin token (`Authorization: Bearer`
/// or `X-Admin-Token`) or 401; `GET` lists the operator addresses, `PUT {"private_keys":
/// [hex...]}` replaces the keys (the model takes their addresses, derived as the product
/// derives them); other methods 405. Without a token configured the node has no such
/// endpoint (404), like iotex-core before v2.5.0.
async fn producer_keys(
    cell: &NodeCell,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, NoAnswer> {
    let (token, delay) = {
        let state = cell.lock();
        (state.admin_token.clone(), state.keys_delay)
    };
    let Some(token) = token else {
        return Ok(answer(Reply::new(404, "404 page not found\n")));
    };
    let headers = request.headers();
    let sent = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-admin-token").and_then(|v| v.to_str().ok()));
    if sent != Some(token.as_str()) {
        return Ok(answer(Reply::new(401, "unauthorized\n")));
    }
    let model_request = match *request.method() {
        hyper::Method::GET => ModelRequest::ProducerKeysGet,
        hyper::Method::PUT => {
            let body = request.into_body().collect().await.map_err(|_| NoAnswer)?;
            match addresses_of(&body.to_bytes()) {
                Ok(keys) => ModelRequest::ProducerKeysPut { keys },
                Err(why) => return Ok(answer(Reply::new(400, format!("{why}\n")))),
            }
        }
        _ => return Ok(answer(Reply::new(405, "method not allowed\n"))),
    };
    if matches!(model_request, ModelRequest::ProducerKeysPut { .. }) && !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let ticket = cell.submit(sim_now(), model_request);
    respond(cell, ticket).await
}

/// The addresses of the keys in a `PUT /producer-keys` body.
fn addresses_of(body: &[u8]) -> Result<Vec<String>, String> {
    #[derive(serde::Deserialize)]
    struct Put {
        private_keys: Vec<String>,
    }
    let put: Put = serde_json::from_slice(body).map_err(|e| format!("bad body: {e}"))?;
    if put.private_keys.is_empty() {
        return Err("no key".to_owned());
    }
    put.private_keys
        .iter()
        .map(|hex| elector::custody::ProducerKey::parse(hex).map(|k| k.address().to_owned()))
        .collect()
}

//! The shell's seams, implemented over turmoil: the etcd connection ([`SimConnect`]), the node
//! client's HTTP GET ([`TurmoilHttp`]), and the node's admin and probe servers ([`NodeCell`],
//! [`serve_node`]).

use crate::trace::{Recorder, sim_now};
use elector::driver::Connect;
use elector::node::{HttpAnswer, HttpGet};
use elector_model::node::{AdminFault, HaReply, NodeModel, Reply, Transition};
use http_body_util::{BodyExt, Empty, Full};
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
        let channel = crate::etcd_model::turmoil_channel(&endpoint);
        etcd_client::Client::from_channel(etcd_client::Channel::Tonic(channel), None)
            .await
            .map_err(|e| format!("etcd client: {e}"))
    }
}

/// One HTTP/1.1 GET per connection over turmoil's TCP, bounded by the timeout as a whole
/// (connect, request, answer). A call that times out is dropped with its connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct TurmoilHttp;

impl HttpGet for TurmoilHttp {
    async fn get(&self, url: &str, timeout: Duration) -> Result<HttpAnswer, String> {
        match tokio::time::timeout(timeout, get_once(url)).await {
            Ok(answer) => answer,
            Err(_) => Err(format!("no answer within {}ms", timeout.as_millis())),
        }
    }
}

async fn get_once(url: &str) -> Result<HttpAnswer, String> {
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
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| format!("http handshake with {authority}: {e}"))?;
    let request = Request::get(path)
        .header(hyper::header::HOST, authority.as_str())
        .body(Empty::new())
        .map_err(|e| format!("request {url}: {e}"))?;
    let exchange = async move {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("GET {url}: body: {e}"))?
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

/// A node: its model, whether its process is down, and the means to release hung requests.
/// Shared by its host's servers, the fence, the supervisor model and the checker.
pub struct NodeCell {
    name: String,
    state: Mutex<NodeState>,
    /// Wakes requests hanging under [`AdminFault::Hang`] when the fault changes.
    fault_changed: Notify,
    recorder: Recorder,
}

struct NodeState {
    model: NodeModel,
    down: bool,
    /// A persistent fault killed the process for good: restarts and readiness are ignored.
    dead_for_good: bool,
    /// The admin fault that outlives transient ones (a persistent fault): clearing a transient
    /// fault restores it.
    base_fault: AdminFault,
}

impl NodeCell {
    /// A node configured standby (`system.active: false`), not ready yet, whose consensus
    /// rounds last `round` (so it drains within `round` of `activate=false`).
    pub fn new(name: String, round: Duration, recorder: Recorder) -> Arc<Self> {
        Arc::new(NodeCell {
            name,
            state: Mutex::new(NodeState {
                model: NodeModel::new(false, round),
                down: false,
                dead_for_good: false,
                base_fault: AdminFault::None,
            }),
            fault_changed: Notify::new(),
            recorder,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the model.
    pub fn read<R>(&self, f: impl FnOnce(&NodeModel) -> R) -> R {
        f(&self.lock().model)
    }

    pub fn is_down(&self) -> bool {
        self.lock().down
    }

    /// Readiness; a node dead for good stays unready.
    pub fn set_ready(&self, ready: bool) {
        let mut state = self.lock();
        let ready = ready && !state.dead_for_good;
        state.model.set_ready(ready);
    }

    /// A transient admin fault, or [`AdminFault::None`] to clear it: then the persistent fault,
    /// if any, is back.
    pub fn set_admin_fault(&self, fault: AdminFault) {
        let mut state = self.lock();
        let fault = match fault {
            AdminFault::None => state.base_fault,
            fault => fault,
        };
        state.model.set_admin_fault(fault);
        drop(state);
        self.fault_changed.notify_waiters();
    }

    /// A persistent admin fault: from now to the end of the run (transient faults on top of it
    /// come and go).
    pub fn set_persistent_admin_fault(&self, fault: AdminFault) {
        self.lock().base_fault = fault;
        self.set_admin_fault(fault);
    }

    /// From now on `activate=true` answers 500 without effect (see the node model).
    pub fn set_refuse_activation(&self, refuse: bool) {
        self.lock().model.set_refuse_activation(refuse);
    }

    /// The process dies at `now` and never comes back: restarts and readiness are ignored.
    pub fn kill_for_good(&self, now: Duration) {
        self.lock().dead_for_good = true;
        self.kill(now);
    }

    pub fn is_dead_for_good(&self) -> bool {
        self.lock().dead_for_good
    }

    /// The process dies at `now`: not active from then on, endpoints gone, not ready.
    pub fn kill(&self, now: Duration) {
        let mut state = self.lock();
        state.model.restart(now, false);
        state.model.set_ready(false);
        state.down = true;
        drop(state);
        self.fault_changed.notify_waiters();
    }

    /// The process starts at `now` in `active` mode (`system.active`); endpoints are back.
    /// Whether it started (a node dead for good does not).
    pub fn start(&self, now: Duration, active: bool) -> bool {
        let mut state = self.lock();
        if state.dead_for_good {
            return false;
        }
        state.model.restart(now, active);
        state.down = false;
        true
    }

    /// The fence, when it succeeds: the operator's command has stopped the node's signing by
    /// the time it reports success (it restarted the process in standby, say). Readiness and
    /// admin faults are left as they are; a dead node stays dead.
    pub fn fence(&self, now: Duration) {
        self.lock().model.restart(now, false);
    }

    /// `GET /ha?activate=false` from the supervisor (systemd `ExecStopPost`), bypassing the
    /// network: the supervisor runs on the node's host. Whether it took effect.
    pub fn supervisor_standby(&self, now: Duration) -> bool {
        let mut state = self.lock();
        if state.down {
            // Nothing to demote.
            return true;
        }
        if state.model.admin_fault() != AdminFault::None {
            // The admin endpoint is broken: the command has no effect.
            return false;
        }
        state.model.handle_ha(now, Some("false"));
        true
    }

    /// Every change of the mode a read would report, up to `end`.
    pub fn history(&self, end: Duration) -> Vec<Transition> {
        self.lock().model.mode_history(end)
    }

    /// Handles one admin request at `now`; records commands (not reads) in the timeline.
    fn handle_ha(&self, now: Duration, activate: Option<&str>) -> Option<HaReply> {
        let mut state = self.lock();
        if state.down {
            return None;
        }
        let fault = state.model.admin_fault();
        let refused = state.model.refuses_activation();
        let reply = state.model.handle_ha(now, activate);
        drop(state);
        if let Some(value) = activate.filter(|v| !v.is_empty()) {
            let outcome = match (&reply, fault) {
                (HaReply::Hang, _) => "hangs (no effect)".to_owned(),
                (HaReply::Answer(r), AdminFault::None) if refused && r.status == 500 => {
                    format!("{} (activation refused, no effect)", r.status)
                }
                (HaReply::Answer(r), AdminFault::None) => format!("{}", r.status),
                (HaReply::Answer(r), fault) => {
                    format!("{} (fault {}, no effect)", r.status, fault.as_str())
                }
            };
            self.recorder.record(
                now,
                self.name.clone(),
                format!("<- activate={value}: {outcome}"),
            );
        }
        Some(reply)
    }

    /// Waits until the admin fault is no longer a hang, or the node dies.
    async fn hang(&self) {
        loop {
            let notified = self.fault_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let state = self.lock();
                if state.down || state.model.admin_fault() != AdminFault::Hang {
                    return;
                }
            }
            notified.await;
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

/// The node host's software: the admin server on [`ADMIN_PORT`] and the probe server on
/// [`PROBE_PORT`].
pub async fn serve_node(cell: Arc<NodeCell>) -> turmoil::Result {
    let admin = turmoil::net::TcpListener::bind(("0.0.0.0", ADMIN_PORT)).await?;
    let probe = turmoil::net::TcpListener::bind(("0.0.0.0", PROBE_PORT)).await?;
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
            if cell.is_down() {
                return Err(NoAnswer);
            }
            Ok(answer(cell.read(|m| m.handle_probe(now, &path))))
        }
        Endpoint::Admin => {
            if path != "/ha" {
                return Ok(answer(Reply {
                    status: 404,
                    body: "404 page not found\n".into(),
                }));
            }
            let query = request.uri().query().unwrap_or("");
            // Go's `Query().Get("activate")`: the first value, "" when absent.
            let activate = query
                .split('&')
                .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
                .find(|(key, _)| *key == "activate")
                .map(|(_, value)| value);
            match cell.handle_ha(now, activate) {
                None => Err(NoAnswer),
                Some(HaReply::Answer(reply)) => Ok(answer(reply)),
                Some(HaReply::Hang) => {
                    cell.hang().await;
                    Err(NoAnswer)
                }
            }
        }
    }
}

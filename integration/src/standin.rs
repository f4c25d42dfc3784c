//! A stand-in for the IoTeX node, served over real TCP: the admin endpoint `/ha` and the probe
//! server behave like the node's (see [`elector_model::flag_node`] for the rules), and control
//! endpoints let a test or the demo change readiness, inject faults, restart the "node" and
//! kill it.
//!
//! Two listeners, like the node:
//! - **admin** (the node's `system.httpAdminPort`, usually 9009): `/ha`, plus the control
//!   endpoints under `/control/` described in [`CONTROL_ENDPOINTS_HELP`];
//! - **probe** (the node's `system.httpStatsPort`, 8080): `/liveness`, `/readiness`, `/health`,
//!   `/metrics`.
//!
//! Time is [`tokio::time::Instant`] since [`StandIn::start`]; the model's epoch is that start.
//!
//! Over 600 lines for one job: the stand-in node's two servers, its fault switches and its
//! model of `/ha` (`elector_model::flag_node`) make one program that the tests, the demo and the
//! container image run.

use std::future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use elector_model::flag_node::{AdminFault, HaReply, NodeModel, Reply, Transition};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::CONTENT_TYPE;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// The control endpoints, for `--help` and readers. All are on the admin listener, accept
/// `GET` and `POST`, and answer the state JSON of `/control/state` on success.
pub const CONTROL_ENDPOINTS_HELP: &str = "\
Control endpoints (admin listener; GET or POST; each answers the state JSON on success,
400 on a bad or missing parameter):
  /control/ready?value=true|false
      Make /readiness and /health answer 200 OK (true) or 503 FAIL (false).
  /control/fault?admin=none|500|garbage|hang&activate=none|refuse
      Either parameter or both. admin= injects a fault into /ha: 500 answers 500; garbage
      answers 200 with a body that is not JSON but contains \"active\":false; hang never
      answers. Under an admin fault /ha requests have no effect on the mode. activate=refuse
      makes /ha?activate=true answer 500 and change nothing, while reads and activate=false
      work (a node that refuses to sign); an admin fault takes precedence. none restores
      normal behaviour. Probes are never affected.
  /control/restart[?active=true|false]
      Restart the node process configured with system.active=<active> (default: the mode of
      the previous start): the mode becomes that at once, an unfinished round is dropped.
      Readiness and faults are kept.
  /control/kill
      The node process dies: it stops signing at once (the mode becomes standby, with no
      round tail), turns unready, and both listeners close: new connections are refused, open
      ones are closed, and requests in flight (hung /ha requests included) get no answer.
      This request's answer is the last one. A killed stand-in stays dead (the binary keeps
      running, serving nothing, until SIGTERM).
  /control/state
      {\"active\":bool,\"ready\":bool,\"fault\":\"none|500|garbage|hang\",
       \"activate_fault\":\"none|refuse\",\"alive\":bool,\"start_active\":bool,
       \"now_ms\":int,\"history\":[[ms,bool],...]}
      active is what a read of /ha would say; history lists every change of it, starting
      with the start mode at 0, in ms since the stand-in started.";

/// How the stand-in node starts.
#[derive(Clone, Debug)]
pub struct StandInOptions {
    /// The start mode (`system.active`). The real node defaults to active; an HA replica is
    /// configured standby, which is the default here.
    pub start_active: bool,
    /// Length of a consensus round: after a deactivation, reads say active until the current
    /// round ends. Zero deactivates at once.
    pub round: Duration,
    /// Whether the readiness probe starts `OK`.
    pub ready: bool,
}

impl Default for StandInOptions {
    /// Standby, ready, 5 s rounds (mainnet's block interval).
    fn default() -> Self {
        StandInOptions {
            start_active: false,
            round: Duration::from_secs(5),
            ready: true,
        }
    }
}

/// A snapshot of the stand-in node, as `/control/state` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StandInState {
    /// What a read of `/ha` would say now (ignoring faults).
    pub active: bool,
    pub ready: bool,
    pub fault: AdminFault,
    /// `/ha?activate=true` is refused (`/control/fault?activate=refuse`).
    pub refuse_activation: bool,
    /// Not killed (`/control/kill`).
    pub alive: bool,
    /// The mode of the latest (re)start.
    pub start_active: bool,
    /// Time since the stand-in started.
    pub now: Duration,
    /// Every change of `active` up to `now`, starting with the start mode at zero.
    pub history: Vec<Transition>,
}

impl StandInState {
    /// The JSON of `/control/state`; times in whole milliseconds.
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
        })
    }
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

        let mut model = NodeModel::new(options.start_active, options.round);
        model.set_ready(options.ready);
        let shared = Arc::new(Shared {
            epoch: Instant::now(),
            state: Mutex::new(State {
                model,
                // The start mode is not a change; subscribers hear of changes only.
                published: 1,
                refuse_activation: false,
            }),
            changed: Notify::new(),
            killed: watch::channel(false).0,
            transitions: broadcast::channel(1024).0,
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
            tokio::spawn(end_tails(shared.clone(), stopped)),
        ];
        Ok(StandIn {
            admin_addr,
            probe_addr,
            shared,
            stop,
            tasks,
        })
    }

    /// The bound admin address (`/ha` and `/control/...`).
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
        self.shared.lock().refuse_activation = refuse;
    }

    /// Like `/control/kill`: the node process dies, for good.
    pub fn kill(&self) {
        self.shared.kill();
    }

    /// Every change of the reported mode from now on, as `(time since start, active)`, in
    /// order, including the ends of deactivation tails as they happen.
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

/// Which of the node's two servers a listener plays.
#[derive(Copy, Clone, Debug)]
enum Listener {
    Admin,
    Probe,
}

/// What the servers and the handle share.
struct Shared {
    epoch: Instant,
    state: Mutex<State>,
    /// Wakes [`end_tails`] after any change, so that it sleeps until the right tail end.
    changed: Notify,
    transitions: broadcast::Sender<Transition>,
    /// `true` once the node was killed: the listeners close and no request is answered.
    killed: watch::Sender<bool>,
}

struct State {
    model: NodeModel,
    /// How many entries of the model's mode history went out on `transitions`.
    published: usize,
    /// `/ha?activate=true` answers 500 and has no effect.
    refuse_activation: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The model stays consistent even if a holder panicked: its methods do not unwind
        // midway through a change.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `change` on the model at the current time and publishes any mode change. The
    /// time is read under the lock, so the model sees it increase.
    fn update<R>(&self, change: impl FnOnce(&mut NodeModel, Duration) -> R) -> R {
        let result = {
            let mut state = self.lock();
            let now = self.epoch.elapsed();
            let result = change(&mut state.model, now);
            let history = state.model.mode_history(now);
            for &transition in &history[state.published..] {
                // No subscriber is fine.
                let _ = self.transitions.send(transition);
            }
            state.published = history.len();
            result
        };
        self.changed.notify_one();
        result
    }

    /// The node process dies: standby at once (its consensus stopped; like the simulation's
    /// dying node, recorded as a restart in standby), unready, and nothing answers any more.
    fn kill(&self) {
        self.update(|model, now| {
            model.restart(now, false);
            model.set_ready(false);
        });
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
        let state = self.lock();
        let now = self.epoch.elapsed();
        let model = &state.model;
        StandInState {
            active: model.is_effectively_active(now),
            ready: model.is_ready(),
            fault: model.admin_fault(),
            refuse_activation: state.refuse_activation,
            alive,
            start_active: model.start_active(),
            now,
            history: model.mode_history(now),
        }
    }
}

/// Publishes the end of each deactivation tail when it happens, not only at the next request,
/// so that subscribers (and the binary's log) see it on time.
async fn end_tails(shared: Arc<Shared>, mut stopped: watch::Receiver<()>) {
    loop {
        let tail_end = shared.lock().model.tail_end();
        let wake = async {
            match tail_end {
                Some(end) => tokio::time::sleep_until(shared.epoch + end).await,
                None => future::pending().await,
            }
        };
        tokio::select! {
            _ = stopped.changed() => return,
            () = shared.changed.notified() => {}
            () = wake => shared.update(|model, now| model.advance(now)),
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
        f.write_str("the node was killed")
    }
}

impl std::error::Error for Dead {}

async fn serve_connection(stream: TcpStream, kind: Listener, shared: Arc<Shared>) {
    let service = {
        let shared = shared.clone();
        service_fn(move |request| {
            let shared = shared.clone();
            async move { route(&shared, kind, &request).await }
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
    request: &Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dead> {
    if shared.is_killed() {
        return Err(Dead);
    }
    let path = request.uri().path();
    let query = request.uri().query();
    Ok(match kind {
        Listener::Probe => {
            let reply = shared.update(|model, now| model.handle_probe(now, path));
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
            let refused = {
                let state = shared.lock();
                state.refuse_activation
                    && state.model.admin_fault() == AdminFault::None
                    && activate.as_deref().map(str::to_lowercase).as_deref() == Some("true")
            };
            if refused {
                let reply = Reply {
                    status: 500,
                    body: "activation refused\n".into(),
                };
                return Ok(respond(reply, TEXT));
            }
            match shared.update(|model, now| model.handle_ha(now, activate.as_deref())) {
                HaReply::Answer(reply) => respond(reply, TEXT),
                // Never answer; the connection is dropped when the client gives up, the node
                // is killed or the stand-in shuts down.
                HaReply::Hang => {
                    shared.until_killed().await;
                    return Err(Dead);
                }
            }
        }
        Listener::Admin => match path.strip_prefix("/control/") {
            Some(endpoint) => control(shared, request.method(), endpoint, query),
            None => not_found(),
        },
    })
}

/// The control endpoints; see [`CONTROL_ENDPOINTS_HELP`].
fn control(
    shared: &Shared,
    method: &Method,
    endpoint: &str,
    query: Option<&str>,
) -> Response<Full<Bytes>> {
    if !matches!(endpoint, "ready" | "fault" | "restart" | "kill" | "state") {
        return not_found();
    }
    if method != Method::GET && method != Method::POST {
        return respond(
            Reply {
                status: 405,
                body: "use GET or POST\n".into(),
            },
            TEXT,
        );
    }
    let bad_request = |message: &str| {
        respond(
            Reply {
                status: 400,
                body: format!("{message}\n"),
            },
            TEXT,
        )
    };
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
                shared.lock().refuse_activation = refuse;
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
        _ => {} // state
    }
    let body = shared.state().to_json().to_string() + "\n";
    respond(Reply { status: 200, body }, "application/json")
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

fn not_found() -> Response<Full<Bytes>> {
    // What Go's `http.NotFound` answers.
    respond(
        Reply {
            status: 404,
            body: "404 page not found\n".into(),
        },
        TEXT,
    )
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
            })
        );
    }
}

//! What an operator can see: `/status` (JSON), `/metrics` (Prometheus text) and `/healthz`.
//! The driver updates a snapshot after every step of the core; the server only reads it.

use elector_core::{Elector, Instant, Readiness, Role};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tracing::warn;

/// `/healthz` fails when the driver loop has not run for this long. The core wakes at least
/// once a second, so this only trips when the loop is stuck.
pub const STALL_AFTER: Duration = Duration::from_secs(5);

const ROLES: [Role; 8] = [
    Role::Starting,
    Role::Standby,
    Role::Candidate,
    Role::Leader,
    Role::Active,
    Role::SteppingDown,
    Role::Resigning,
    Role::Stopped,
];

/// Counters and gauges, updated from any task.
#[derive(Default)]
pub struct Metrics {
    transitions: AtomicU64,
    keepalive_count: AtomicU64,
    keepalive_micros_sum: AtomicU64,
    keepalive_last_micros: AtomicU64,
    keepalive_failures: AtomicU64,
    node_failures: AtomicU64,
    fences: AtomicU64,
    fence_successes: AtomicU64,
    fence_failures: AtomicU64,
    standby_unexpected: AtomicU64,
    etcd_connected: AtomicBool,
    /// 0 unknown, 1 standby, 2 active.
    node_mode: AtomicU64,
}

impl Metrics {
    pub fn count_transition(&self) {
        self.transitions.fetch_add(1, Ordering::Relaxed);
    }
    pub fn observe_keepalive(&self, latency: Duration) {
        let micros = latency.as_micros() as u64;
        self.keepalive_count.fetch_add(1, Ordering::Relaxed);
        self.keepalive_micros_sum
            .fetch_add(micros, Ordering::Relaxed);
        self.keepalive_last_micros.store(micros, Ordering::Relaxed);
    }
    pub fn count_keepalive_failure(&self) {
        self.keepalive_failures.fetch_add(1, Ordering::Relaxed);
    }
    pub fn count_node_failure(&self) {
        self.node_failures.fetch_add(1, Ordering::Relaxed);
    }
    pub fn count_fence(&self) {
        self.fences.fetch_add(1, Ordering::Relaxed);
    }
    pub fn count_fence_outcome(&self, success: bool) {
        match success {
            true => self.fence_successes.fetch_add(1, Ordering::Relaxed),
            false => self.fence_failures.fetch_add(1, Ordering::Relaxed),
        };
    }
    pub fn count_standby_unexpected(&self) {
        self.standby_unexpected.fetch_add(1, Ordering::Relaxed);
    }
    pub fn set_etcd_connected(&self, connected: bool) {
        self.etcd_connected.store(connected, Ordering::Relaxed);
    }
    pub fn set_node_mode(&self, active: bool) {
        self.node_mode
            .store(if active { 2 } else { 1 }, Ordering::Relaxed);
    }
    pub fn transitions(&self) -> u64 {
        self.transitions.load(Ordering::Relaxed)
    }
    pub fn fences(&self) -> u64 {
        self.fences.load(Ordering::Relaxed)
    }
}

/// One candidate, as shown in `/status`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CandidateView {
    pub value: String,
    pub lease: String,
    pub create_revision: i64,
}

/// The last role change.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Transition {
    pub from: &'static str,
    pub to: &'static str,
    pub reason: String,
    pub at_unix_ms: u64,
}

/// The body of `GET /status`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Snapshot {
    pub role: &'static str,
    pub role_reason: String,
    pub key: String,
    pub value: String,
    /// Value of the leading candidate, if any (ours or another replica's).
    pub leader: Option<String>,
    /// Our candidate key, when we are a candidate.
    pub candidate_key: Option<String>,
    pub lease_id: Option<String>,
    /// Time left until our lease deadline, on our clock.
    pub lease_deadline_in_ms: Option<u64>,
    pub step_down_deadline_in_ms: Option<u64>,
    /// The last mode read from the node: `active`, `standby` or null.
    pub node_mode: Option<&'static str>,
    pub node_standby_confirmed: bool,
    /// Standby confirmed by a read, or the fence reported success: the lead may be given away.
    pub node_proven_standby: bool,
    pub node_active_commanded: bool,
    /// Why the leader counts its node as lost (not shown active for `--node-lost-after`).
    pub node_lost: Option<String>,
    /// Why this replica cannot reach a safe or useful state by itself; null when it can.
    pub stuck: Option<String>,
    /// SIGTERM was received; the elector exits once the node is proven standby.
    pub shutting_down: bool,
    pub readiness: &'static str,
    pub candidates: Vec<CandidateView>,
    pub etcd_connected: bool,
    pub last_transition: Option<Transition>,
}

/// Shared between the driver (writer) and the status server (reader).
pub struct Status {
    pub metrics: Arc<Metrics>,
    key: String,
    value: String,
    inner: Mutex<Inner>,
}

struct Inner {
    snapshot: Option<Snapshot>,
    last_role: Option<Role>,
    last_transition: Option<Transition>,
    last_loop: tokio::time::Instant,
}

impl Status {
    pub fn new(key: &str, value: &str) -> Arc<Self> {
        Arc::new(Status {
            metrics: Arc::new(Metrics::default()),
            key: key.to_string(),
            value: value.to_string(),
            inner: Mutex::new(Inner {
                snapshot: None,
                last_role: None,
                last_transition: None,
                last_loop: tokio::time::Instant::now(),
            }),
        })
    }

    /// Takes a new snapshot of the core; called by the driver after every step.
    pub fn update(&self, core: &Elector, now: Instant) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.last_loop = tokio::time::Instant::now();
        let role = core.role();
        if inner.last_role.is_some_and(|r| r != role) {
            inner.last_transition = Some(Transition {
                from: inner.last_role.map(Role::as_str).unwrap_or("none"),
                to: role.as_str(),
                reason: core.role_reason().to_string(),
                at_unix_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
            });
        }
        inner.last_role = Some(role);
        let left =
            |at: Option<Instant>| at.map(|at| at.saturating_duration_since(now).as_millis() as u64);
        let candidates = core
            .observation()
            .map(|o| {
                o.candidates
                    .iter()
                    .map(|c| CandidateView {
                        value: c.value.clone(),
                        lease: format!("{:x}", c.id.lease),
                        create_revision: c.id.create_revision,
                    })
                    .collect()
            })
            .unwrap_or_default();
        inner.snapshot = Some(Snapshot {
            role: role.as_str(),
            role_reason: core.role_reason().to_string(),
            key: self.key.clone(),
            value: self.value.clone(),
            leader: core.leader_value().map(str::to_string),
            candidate_key: core
                .candidate()
                .map(|c| format!("{}/{:x}", self.key, c.lease)),
            lease_id: core.lease().map(|l| format!("{l:x}")),
            lease_deadline_in_ms: left(core.lease_deadline()),
            step_down_deadline_in_ms: left(core.step_down_deadline()),
            node_mode: core
                .node_last_read()
                .map(|a| if a { "active" } else { "standby" }),
            node_standby_confirmed: core.node_standby_confirmed(),
            node_proven_standby: core.node_proven_standby(),
            node_lost: core.node_lost().map(str::to_string),
            stuck: core.stuck().map(str::to_string),
            shutting_down: core.shutting_down(),
            node_active_commanded: core.node_active_commanded(),
            readiness: match core.readiness() {
                Readiness::Unknown => "unknown",
                Readiness::Ready => "ready",
                Readiness::Unready => "unready",
            },
            candidates,
            etcd_connected: self.metrics.etcd_connected.load(Ordering::Relaxed),
            last_transition: inner.last_transition.clone(),
        });
    }

    /// The latest snapshot (None before the driver's first step).
    pub fn snapshot(&self) -> Option<Snapshot> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .snapshot
            .clone()
    }

    /// True when the driver loop ran within [`STALL_AFTER`].
    pub fn healthy(&self) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.last_loop.elapsed() < STALL_AFTER
    }

    /// How long ago the driver loop last ran: the systemd watchdog pings only while it is short.
    pub fn loop_age(&self) -> Duration {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.last_loop.elapsed()
    }

    /// Prometheus text exposition.
    pub fn render_metrics(&self) -> String {
        let m = &self.metrics;
        let snapshot = self.snapshot();
        let role = snapshot.as_ref().map(|s| s.role);
        let mut out = String::new();
        out.push_str(
            "# HELP elector_role Current role of this elector (1 for the current role).\n",
        );
        out.push_str("# TYPE elector_role gauge\n");
        for r in ROLES {
            let on = u8::from(role == Some(r.as_str()));
            let _ = writeln!(out, "elector_role{{role=\"{}\"}} {on}", r.as_str());
        }
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        let gauge = |out: &mut String, name: &str, help: &str, value: f64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        counter(
            &mut out,
            "elector_role_transitions_total",
            "Role changes since start.",
            m.transitions(),
        );
        let sum = m.keepalive_micros_sum.load(Ordering::Relaxed) as f64 / 1e6;
        let count = m.keepalive_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP elector_keepalive_latency_seconds Round trip of acknowledged keep-alives.\n\
             # TYPE elector_keepalive_latency_seconds summary\n\
             elector_keepalive_latency_seconds_sum {sum}\n\
             elector_keepalive_latency_seconds_count {count}"
        );
        gauge(
            &mut out,
            "elector_keepalive_last_latency_seconds",
            "Round trip of the last acknowledged keep-alive.",
            m.keepalive_last_micros.load(Ordering::Relaxed) as f64 / 1e6,
        );
        counter(
            &mut out,
            "elector_keepalive_failures_total",
            "Keep-alives that failed or timed out.",
            m.keepalive_failures.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "elector_node_call_failures_total",
            "Node admin calls that failed, timed out or got an unexpected answer.",
            m.node_failures.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "elector_fence_actions_total",
            "Fence actions started.",
            m.fences(),
        );
        let _ = writeln!(
            out,
            "# HELP elector_fence_results_total Fence actions finished, by result.\n\
             # TYPE elector_fence_results_total counter\n\
             elector_fence_results_total{{result=\"success\"}} {}\n\
             elector_fence_results_total{{result=\"failure\"}} {}",
            m.fence_successes.load(Ordering::Relaxed),
            m.fence_failures.load(Ordering::Relaxed)
        );
        counter(
            &mut out,
            "elector_node_standby_unexpected_total",
            "Reads of standby from the leader's node after it was commanded active.",
            m.standby_unexpected.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "elector_stuck",
            "1 while this replica cannot reach a safe or useful state by itself (see /status).",
            f64::from(u8::from(
                snapshot.as_ref().is_some_and(|s| s.stuck.is_some()),
            )),
        );
        gauge(
            &mut out,
            "elector_node_lost",
            "1 while this leader's node has not read active for --node-lost-after.",
            f64::from(u8::from(
                snapshot.as_ref().is_some_and(|s| s.node_lost.is_some()),
            )),
        );
        gauge(
            &mut out,
            "elector_etcd_connected",
            "1 once an etcd client was built.",
            f64::from(u8::from(m.etcd_connected.load(Ordering::Relaxed))),
        );
        let mode = match m.node_mode.load(Ordering::Relaxed) {
            2 => 1.0,
            1 => 0.0,
            _ => -1.0,
        };
        gauge(
            &mut out,
            "elector_node_active",
            "Last mode read from the node: 1 active, 0 standby, -1 unknown.",
            mode,
        );
        if let Some(ms) = snapshot.as_ref().and_then(|s| s.lease_deadline_in_ms) {
            gauge(
                &mut out,
                "elector_lease_remaining_seconds",
                "Time left until the lease deadline.",
                ms as f64 / 1e3,
            );
        }
        out
    }
}

/// Serves `/status`, `/metrics` and `/healthz` on `addr` until the task is dropped.
pub async fn serve(listener: TcpListener, status: Arc<Status>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                warn!("status server: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let status = status.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let status = status.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(route(&status, request.uri().path()))
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Binds the status server's address, with a clear error.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on --status-addr {addr}: {e}"))
}

fn route(status: &Status, path: &str) -> Response<Full<Bytes>> {
    let reply = |code: StatusCode, kind: &str, body: String| {
        Response::builder()
            .status(code)
            .header("content-type", kind)
            .body(Full::new(Bytes::from(body)))
            .expect("static response parts are valid")
    };
    match path {
        "/status" => match status.snapshot() {
            Some(s) => reply(
                StatusCode::OK,
                "application/json",
                serde_json::to_string_pretty(&s).unwrap_or_default() + "\n",
            ),
            None => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "starting\n".into(),
            ),
        },
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            status.render_metrics(),
        ),
        "/healthz" => {
            if status.healthy() {
                reply(StatusCode::OK, "text/plain", "ok\n".into())
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "driver loop stalled\n".into(),
                )
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /status, /metrics or /healthz\n".into(),
        ),
    }
}

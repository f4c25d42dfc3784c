//! The status server: `GET /status` (JSON), `/metrics`, `/healthz`, on `--status-addr`.

use super::Telemetry;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::warn;

/// Serves `/status`, `/metrics` and `/healthz` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, telemetry: Arc<Telemetry>) {
    if let Err(e) = axum::serve(listener, router(telemetry)).await {
        warn!("status server stopped: {e}");
    }
}

/// Binds the status server's address, with a clear error.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on --status-addr {addr}: {e}"))
}

/// The routes. Only `GET` and `HEAD` are served, on every path: nothing here changes anything.
pub(super) fn router(telemetry: Arc<Telemetry>) -> Router {
    Router::new()
        .route("/status", get(status_json))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(|| async { (StatusCode::NOT_FOUND, "try /status, /metrics or /healthz\n") })
        .layer(middleware::from_fn(only_get_and_head))
        .with_state(telemetry)
}

/// Other methods get 405 with `Allow: GET, HEAD`, on known and unknown paths alike.
async fn only_get_and_head(request: Request, next: Next) -> Response {
    let method = request.method();
    if method == Method::GET || method == Method::HEAD {
        return next.run(request).await;
    }
    let why = format!("{method} is not allowed: the status server only serves GET and HEAD\n");
    let allow = [(header::ALLOW, "GET, HEAD")];
    (StatusCode::METHOD_NOT_ALLOWED, allow, why).into_response()
}

async fn status_json(State(telemetry): State<Arc<Telemetry>>) -> Response {
    match telemetry.snapshot() {
        Some(s) => {
            let body = serde_json::to_string_pretty(&s).unwrap_or_default() + "\n";
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response(),
    }
}

async fn metrics(State(telemetry): State<Arc<Telemetry>>) -> Response {
    let kind = [(header::CONTENT_TYPE, "text/plain; version=0.0.4")];
    (kind, telemetry.render_metrics()).into_response()
}

async fn healthz(State(telemetry): State<Arc<Telemetry>>) -> Response {
    match telemetry.healthy() {
        true => (StatusCode::OK, "ok\n"),
        false => (StatusCode::SERVICE_UNAVAILABLE, "driver loop stalled\n"),
    }
    .into_response()
}

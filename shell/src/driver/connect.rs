//! The connect loop: gets the driver its etcd client, retrying with backoff until it has one,
//! and hands the election to the executor. Until then every etcd command fails at once with
//! "not connected", so the core keeps the node standby.

use super::log_throttle::LOG_REPEAT_EVERY;
use crate::etcd::{Connect, Election};
use crate::logging::Every;
use crate::telemetry::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// First backoff between etcd connection attempts: quick at first, then doubling up to the
/// timing's retry cap (`Timing::etcd_retry_max`) against an etcd that stays away.
const CONNECT_RETRY_MIN: Duration = Duration::from_millis(200);

/// Connects to etcd, retrying with backoff and saying why (at most once per
/// [`super::log_throttle::LOG_REPEAT_EVERY`]), until it succeeds; then publishes
/// the election on `out`. Ends when it has connected once (the election's calls reconnect by
/// themselves after that). `timeouts` is the request timeout of every call and the largest
/// pause between retries, of this loop and of the election's observer.
pub(crate) async fn connect_loop<E: Connect>(
    etcd: E,
    key: String,
    value: String,
    timeouts: (Duration, Duration),
    out: watch::Sender<Option<Election>>,
    metrics: Arc<Metrics>,
) {
    let (request_timeout, retry_max) = timeouts;
    let mut backoff = CONNECT_RETRY_MIN;
    let mut log = Every::new(LOG_REPEAT_EVERY);
    loop {
        match etcd.connect().await {
            Ok(client) => {
                info!("connected to etcd");
                metrics.etcd.succeeded();
                let election = Election::new(client, key, value, request_timeout)
                    .with_retry_max(retry_max)
                    .with_health(metrics.etcd.clone());
                let _ = out.send(Some(election));
                return;
            }
            Err(reason) => {
                metrics.etcd.failed(&reason);
                if let Some(left_out) = log.due(tokio::time::Instant::now()) {
                    warn!(
                        retry_in_ms = backoff.as_millis() as u64,
                        reason = %reason,
                        "etcd unreachable, node held in standby{}",
                        match left_out {
                            0 => String::new(),
                            n => format!(" ({n} more failed attempts since the last line)"),
                        }
                    );
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(retry_max);
            }
        }
    }
}

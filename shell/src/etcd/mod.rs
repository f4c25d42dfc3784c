//! The etcd adapter: the election as etcd stores it, and the calls the driver makes on it.
//!
//! The layout is the one of etcd's Go `concurrency.Election`, so `etcdctl elect <key>` and
//! `etcdctl elect -l <key>` (and the original Go elector) take part in, and read, the same
//! election:
//!
//! - a candidate is the key `<key>/<lease id in lowercase hex>`, holding the replica's value and
//!   attached to its lease, so it vanishes when the lease ends;
//! - the leader is the candidate with the lowest create revision.
//!
//! Any other key under `<key>/` is a *foreign key* ([`ForeignKey`]): a key with no lease, one
//! whose name is not its lease in hex, or another election nested under ours
//! (`<key>/sub/<hex>`). It is never a candidate (it could block the election forever); it is
//! logged as an error and kept for [`Election::foreign_keys`]. Conversely, a `--key` nested
//! inside another election's prefix is refused at start ([`check_key_placement`]).
//!
//! The elector adds its own keys beside the election, outside the candidates' prefix so Go and
//! etcdctl never mistake them for candidates:
//!
//! - `<key>.elector/handover-record` (JSON, no lease): written by a leader in the same
//!   transaction that deletes its key, after its node was confirmed standby;
//! - `<key>.elector/handover-request` (JSON): an operator's request that the leader hand over;
//! - `<key>.elector/members/<value>` (JSON, on the registry's own lease): each elector's record
//!   for `elector status` ([`crate::registry`]); never read by the election ([`members`]).
//! - `<key>.elector/excluded/<value>` (JSON, no lease): an operator took that replica out of
//!   the election (`elector exclude`) until `elector include`.
//!
//! Every etcd call is bounded by `request_timeout` with [`tokio::time::timeout`], whatever the
//! transport does: a hung call must never outlive the deadlines the core computes. A call that
//! timed out may still take effect afterwards (a frozen etcd carries out the requests waiting
//! in its socket when it resumes): a timeout means "unknown", never "not done".
//!
//! [`Election::new`] takes an already built [`etcd_client::Client`], so a simulation can build one
//! with `Client::from_channel` over its own network; [`connect`] builds the production one.
//!
//! In files: [`connect`] (endpoints, TLS, auth), [`layout`] (key names, what is a candidate,
//! the stored JSON), [`placement`] (the start-up check that `--key` does not nest inside
//! another election), [`election`] (the calls the core's commands make), [`members`] (the
//! registry's and the exclusions' keys), [`exclusion`] (the operators' exclusions),
//! [`history`] (the election's past, replayed for `elector history`) and [`observer`]
//! (reading and watching the election for the core). This file: the [`Election`] handle, the
//! errors, and the bound every call goes through.

mod connect;
mod election;
mod exclusion;
mod history;
mod layout;
mod members;
mod observer;
mod placement;

pub use connect::{
    Connect, EtcdOptions, check_options, connect, connect_reporting_version, lease_revocation_bug,
    pings_for,
};
pub use exclusion::Excluded;
pub use history::{KeyChange, KeyHistory};
pub use layout::{ExclusionJson, ForeignKey, foreign_reason};
pub use members::{PrefixEntry, is_member_key};
pub use observer::{OBSERVE_RECHECK_PERIOD, silence_bound};
pub use placement::{Placement, check_key_placement, enclosing_keys, find_enclosing_election};

use crate::telemetry::CallHealth;
use election::KeepAliveStream;
use elector_core::Timing;
use etcd_client::Client;
use layout::ForeignReport;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::timeout;

/// Errors of the etcd adapter, worded for the operator reading the log.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// The options cannot work; nothing was sent.
    #[error("invalid etcd options: {0}")]
    InvalidOptions(String),
    /// A TLS file named in the options could not be read.
    #[error("cannot read the etcd {what} file {}: {source}", path.display())]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No endpoint answered while connecting.
    #[error("etcd at {endpoints} unreachable: {reason}")]
    Unreachable { endpoints: String, reason: String },
    /// etcd refused the user name and password.
    #[error("etcd authentication failed for user {user}: {reason}")]
    AuthenticationFailed { user: String, reason: String },
    /// The call got no answer within the request timeout; it may or may not have taken effect.
    #[error("etcd {operation} timed out after {}", humantime::format_duration(*timeout))]
    Timeout {
        operation: String,
        timeout: Duration,
    },
    /// etcd or the transport reported an error.
    #[error("etcd {operation} failed: {reason}")]
    Failed { operation: String, reason: String },
    /// etcd answered something this adapter cannot make sense of.
    #[error("etcd {operation}: unexpected response: {detail}")]
    UnexpectedResponse { operation: String, detail: String },
}

/// What every clone of one [`Election`] shares.
struct Shared {
    client: Client,
    key: String,
    value: String,
    request_timeout: Duration,
    keep_alive: Mutex<Option<KeepAliveStream>>,
    foreign: Mutex<ForeignReport>,
    /// Where the outcome of every bounded call is recorded, if anywhere.
    health: OnceLock<Arc<CallHealth>>,
    /// The observer's largest backoff; [`Election::with_retry_max`].
    retry_max: OnceLock<Duration>,
    /// Woken by every call etcd answered: the observer's backoff starts over then.
    answered: Notify,
}

/// One replica's view of, and part in, the election at `key`. Cheap to clone: clones share
/// the client and the keep-alive stream.
#[derive(Clone)]
pub struct Election {
    shared: Arc<Shared>,
}

impl fmt::Debug for Election {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Election")
            .field("key", &self.shared.key)
            .field("value", &self.shared.value)
            .field("request_timeout", &self.shared.request_timeout)
            .finish_non_exhaustive()
    }
}

impl Election {
    /// The election at `key` for the replica whose identity is `value`, over an already built
    /// client (from [`connect`], or from `Client::from_channel` in a simulation). Every call
    /// is bounded by `request_timeout`.
    pub fn new(client: Client, key: String, value: String, request_timeout: Duration) -> Self {
        Election {
            shared: Arc::new(Shared {
                client,
                key,
                value,
                request_timeout,
                keep_alive: Mutex::new(None),
                foreign: Mutex::new(ForeignReport::default()),
                health: OnceLock::new(),
                retry_max: OnceLock::new(),
                answered: Notify::new(),
            }),
        }
    }

    /// Caps the observer's backoff at `retry_max` (the timing's `etcd_retry_max`; without
    /// this call, the default timing's).
    pub fn with_retry_max(self, retry_max: Duration) -> Self {
        let _ = self.shared.retry_max.set(retry_max);
        self
    }

    /// The observer's largest backoff.
    pub(super) fn retry_max(&self) -> Duration {
        self.shared
            .retry_max
            .get()
            .copied()
            .unwrap_or_else(|| Timing::default().etcd_retry_max())
    }

    /// Records the outcome of every later bounded call (and the re-reads of
    /// [`Election::observe`]) in `health`: what `elector_etcd_connected` is derived from.
    pub fn with_health(self, health: Arc<CallHealth>) -> Self {
        let _ = self.shared.health.set(health);
        self
    }

    /// The election key (`--key`).
    pub fn key(&self) -> &str {
        &self.shared.key
    }

    /// This replica's value (`--value`), stored in its candidate key.
    pub fn value(&self) -> &str {
        &self.shared.value
    }

    /// The bound on every etcd call.
    pub fn request_timeout(&self) -> Duration {
        self.shared.request_timeout
    }

    /// Runs one etcd call bounded by the request timeout.
    pub(super) async fn bounded<T>(
        &self,
        operation: impl FnOnce() -> String,
        call: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, EtcdError> {
        let result = match timeout(self.shared.request_timeout, call).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => Err(EtcdError::Failed {
                operation: operation(),
                reason: describe(&error),
            }),
            Err(_) => Err(EtcdError::Timeout {
                operation: operation(),
                timeout: self.shared.request_timeout,
            }),
        };
        if let Some(health) = self.shared.health.get() {
            match &result {
                Ok(_) => health.succeeded(),
                Err(error) => health.failed(&error.to_string()),
            }
        }
        if result.is_ok() {
            self.shared.answered.notify_waiters();
        }
        result
    }
}

/// An etcd-client error as one line: gRPC code and message, then the chain of causes
/// (`tcp connect error: Connection refused`), without tonic's metadata dump.
pub(super) fn describe(error: &etcd_client::Error) -> String {
    use std::error::Error as _;
    let (mut text, mut cause) = match error {
        etcd_client::Error::GRpcStatus(status) => {
            let text = if status.message().is_empty() {
                format!("{:?}", status.code())
            } else {
                format!("{:?}: {}", status.code(), status.message())
            };
            (text, status.source())
        }
        other => (other.to_string(), other.source()),
    };
    while let Some(inner) = cause {
        let line = inner.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = inner.source();
    }
    text
}

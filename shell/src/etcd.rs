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
//! The elector adds two keys beside the election, outside the candidates' prefix so Go and
//! etcdctl never mistake them for candidates:
//!
//! - `<key>.elector/handover-record` (JSON, no lease): written by a leader in the same
//!   transaction that deletes its key, after its node was confirmed standby;
//! - `<key>.elector/handover-request` (JSON): an operator's request that the leader hand over.
//!
//! Every etcd call is bounded by `request_timeout` with [`tokio::time::timeout`], whatever the
//! transport does: a hung call must never outlive the deadlines the core computes. A call that
//! timed out may still take effect afterwards (a frozen etcd carries out the requests waiting
//! in its socket when it resumes): a timeout means "unknown", never "not done".
//!
//! [`Election::new`] takes an already built [`etcd_client::Client`], so a simulation can build one
//! with `Client::from_channel` over its own network; [`connect`] builds the production one.

use crate::status::CallHealth;
use elector_core::{
    Candidate, CandidateId, HandoverRecord, HandoverRequest, Input, LeaseId, Observation,
};
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, GetResponse, Identity,
    KeyValue, LeaseKeepAliveStream, LeaseKeeper, PutOptions, SortOrder, SortTarget, TlsOptions,
    Txn, TxnOp, TxnOpResponse, TxnResponse, WatchOptions, WatchResponse,
};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, timeout};
use tracing::{debug, error, info, warn};

/// How often [`Election::observe`] re-reads the election and asks the watch for a progress
/// report, whether or not the watch reported anything. A watch on an HTTP/2 connection can
/// stall silently (after a partition, say); this bounds how long a missed change stays hidden.
pub const OBSERVE_RECHECK_PERIOD: Duration = Duration::from_secs(2);

/// A watch that has not answered during this many recheck periods in a row, although it was
/// asked for a progress report at each, is taken for dead and re-established.
const WATCH_SILENT_PERIODS: u32 = 2;

/// First and largest delay between two attempts of [`Election::observe`] after a failure.
const OBSERVE_BACKOFF_FIRST: Duration = Duration::from_millis(200);
const OBSERVE_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A persisting set of foreign keys is logged again this often (a new set at once).
const FOREIGN_LOG_EVERY: Duration = Duration::from_secs(60);
/// At most this many foreign keys are named in one log line.
const FOREIGN_LOG_NAMES: usize = 10;

/// Keys read per page, and pages read at most per enclosing prefix, by [`check_key_placement`].
const PLACEMENT_PAGE: i64 = 256;
const PLACEMENT_PAGES: usize = 16;

/// HTTP/2 ping interval of production connections. Pings notice a dead connection even while
/// every stream on it is quiet. etcd answers pings more frequent than its
/// `--grpc-keepalive-min-time` (5 s by default) with GOAWAY, so stay well above it.
const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(10);

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

/// How to reach etcd in production.
#[derive(Clone)]
pub struct EtcdOptions {
    /// Client URLs, `http://host:port` or `https://host:port`; requests are balanced over them.
    pub endpoints: Vec<String>,
    /// PEM CA certificate that signed the etcd servers' certificates (required for `https://`).
    pub ca: Option<PathBuf>,
    /// PEM client certificate, for etcd's `--client-cert-auth`; goes with `key`.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// etcd user, when etcd has authentication enabled; goes with `password`.
    pub user: Option<String>,
    /// Password of `user`. Never logged: `Debug` redacts it.
    pub password: Option<String>,
    /// Bound on establishing a connection to one endpoint.
    pub connect_timeout: Duration,
    /// Bound on every single etcd call.
    pub request_timeout: Duration,
}

impl EtcdOptions {
    /// Plain-text options for `endpoints` with a 5 s connect and a 2 s request timeout.
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdOptions {
            endpoints,
            ca: None,
            cert: None,
            key: None,
            user: None,
            password: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(2),
        }
    }
}

impl fmt::Debug for EtcdOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdOptions")
            .field("endpoints", &self.endpoints)
            .field("ca", &self.ca)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// Connects to etcd for production: balanced over all endpoints, TLS when the endpoints are
/// `https://`, authenticated when a user is set.
///
/// It then makes one status call, so a wrong endpoint, certificate or password shows at start
/// with a clear message instead of as the first failed campaign. Afterwards the client
/// reconnects by itself; the [`Election`] calls report any later outage.
pub async fn connect(opts: &EtcdOptions) -> Result<Client, EtcdError> {
    let options = connect_options(opts)?;
    let endpoints = opts.endpoints.join(",");
    let unreachable = |reason: String| EtcdError::Unreachable {
        endpoints: endpoints.clone(),
        reason,
    };
    // With a user, `Client::connect` authenticates (one round trip); without, it only builds.
    let connect_bound = opts.connect_timeout + opts.request_timeout;
    let client = match timeout(
        connect_bound,
        Client::connect(&opts.endpoints, Some(options)),
    )
    .await
    {
        Ok(Ok(client)) => client,
        Ok(Err(error)) => return Err(classify_connect_error(opts, &endpoints, &error)),
        Err(_) => {
            return Err(unreachable(format!(
                "no answer within {}",
                humantime::format_duration(connect_bound)
            )));
        }
    };
    // The first call also establishes the connection: it gets the same bound.
    let mut maintenance = client.maintenance_client();
    match timeout(connect_bound, maintenance.status()).await {
        Ok(Ok(status)) => {
            info!(
                endpoints = %endpoints,
                server_version = status.version(),
                "etcd answers"
            );
            Ok(client)
        }
        Ok(Err(error)) => Err(classify_connect_error(opts, &endpoints, &error)),
        Err(_) => Err(unreachable(format!(
            "no answer within {}",
            humantime::format_duration(connect_bound)
        ))),
    }
}

/// Checks the options as [`connect`] will, without sending anything: schemes, TLS files (read),
/// user and password together. For start-up, so that a configuration that cannot work is a
/// one-line error instead of a retry loop.
pub fn check_options(opts: &EtcdOptions) -> Result<(), EtcdError> {
    connect_options(opts).map(|_| ())
}

/// Checks the options and turns them into etcd-client's.
fn connect_options(opts: &EtcdOptions) -> Result<ConnectOptions, EtcdError> {
    let invalid = |message: &str| Err(EtcdError::InvalidOptions(message.to_owned()));
    if opts.endpoints.is_empty() {
        return invalid("no etcd endpoint given");
    }
    if opts.connect_timeout.is_zero() || opts.request_timeout.is_zero() {
        return invalid("the etcd connect and request timeouts must be positive");
    }
    let https = opts
        .endpoints
        .iter()
        .filter(|e| e.starts_with("https://"))
        .count();
    let http = opts
        .endpoints
        .iter()
        .filter(|e| e.starts_with("http://"))
        .count();
    if http + https != opts.endpoints.len() {
        return invalid("every etcd endpoint must start with http:// or https://");
    }
    if http > 0 && https > 0 {
        return invalid("etcd endpoints mix http:// and https://");
    }
    let tls_files = opts.ca.is_some() || opts.cert.is_some() || opts.key.is_some();
    if http > 0 && tls_files {
        return invalid("TLS files are set but the etcd endpoints use http://; use https://");
    }
    if https > 0 && opts.ca.is_none() {
        return invalid("https:// etcd endpoints need the CA certificate that signed them");
    }
    if opts.cert.is_some() != opts.key.is_some() {
        return invalid("the etcd client certificate and its key must be given together");
    }
    if opts.user.is_some() != opts.password.is_some() {
        return invalid("the etcd user and password must be given together");
    }

    let mut options = ConnectOptions::new()
        .with_connect_timeout(opts.connect_timeout)
        .with_keep_alive(HTTP2_PING_INTERVAL, opts.request_timeout)
        // etcd counts pings on a connection without streams as abuse; the elector always has
        // its watch open, which is when pings matter.
        .with_keep_alive_while_idle(false)
        // A member cut off from the etcd leader refuses requests at once ("no leader") and
        // cancels watches, instead of serving a frozen view until our timeouts notice.
        .with_require_leader(true);
    if https > 0 {
        let mut tls = TlsOptions::new();
        if let Some(ca) = &opts.ca {
            tls = tls.ca_certificate(Certificate::from_pem(read_pem("CA certificate", ca)?));
        }
        if let (Some(cert), Some(key)) = (&opts.cert, &opts.key) {
            tls = tls.identity(Identity::from_pem(
                read_pem("client certificate", cert)?,
                read_pem("client key", key)?,
            ));
        }
        options = options.with_tls(tls);
    }
    if let (Some(user), Some(password)) = (&opts.user, &opts.password) {
        // etcd's simple tokens expire after 5 idle minutes by default: refresh them.
        options = options
            .with_user(user.clone(), password.clone())
            .with_auto_token_refresh(true);
    }
    Ok(options)
}

fn read_pem(what: &'static str, path: &Path) -> Result<Vec<u8>, EtcdError> {
    std::fs::read(path).map_err(|source| EtcdError::ReadFile {
        what,
        path: path.to_owned(),
        source,
    })
}

fn classify_connect_error(
    opts: &EtcdOptions,
    endpoints: &str,
    error: &etcd_client::Error,
) -> EtcdError {
    use tonic::Code;
    let reason = describe(error);
    match error {
        etcd_client::Error::InvalidArgs(_)
        | etcd_client::Error::InvalidUri(_)
        | etcd_client::Error::InvalidMetadataValue(_) => EtcdError::InvalidOptions(reason),
        etcd_client::Error::GRpcStatus(status)
            if matches!(
                status.code(),
                Code::InvalidArgument
                    | Code::Unauthenticated
                    | Code::PermissionDenied
                    | Code::FailedPrecondition
            ) =>
        {
            match &opts.user {
                Some(user) => EtcdError::AuthenticationFailed {
                    user: user.clone(),
                    reason,
                },
                None => EtcdError::Failed {
                    operation: "status check".to_owned(),
                    reason,
                },
            }
        }
        _ => EtcdError::Unreachable {
            endpoints: endpoints.to_owned(),
            reason,
        },
    }
}

/// An etcd-client error as one line: gRPC code and message, then the chain of causes
/// (`tcp connect error: Connection refused`), without tonic's metadata dump.
fn describe(error: &etcd_client::Error) -> String {
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

/// The keys of the elections `key` would nest inside: every proper prefix of `key` that ends
/// just before a `/` (`/a/b/c`: `/a` and `/a/b`). The empty prefix is left out: nobody runs an
/// election at the empty key, and its range would span most of the keyspace.
pub fn enclosing_keys(key: &str) -> Vec<&str> {
    key.match_indices('/')
        .map(|(at, _)| &key[..at])
        .filter(|prefix| !prefix.is_empty())
        .collect()
}

/// Looks for an election that `key` nests inside: an enclosing key `P` ([`enclosing_keys`])
/// with a candidate `P/<lease id in hex>` on that lease. Such an election (a Go elector,
/// `etcdctl elect`) would count our candidates `key/<hex>`, which are under `P/`, as its own.
/// Returns `P` and one of its candidates.
///
/// Reads keys only, [`PLACEMENT_PAGE`] at a time and at most [`PLACEMENT_PAGES`] pages per
/// prefix, over `[P/0, P/g)`: the names that start with a lowercase hex digit.
pub async fn find_enclosing_election(
    client: &Client,
    key: &str,
    request_timeout: Duration,
) -> Result<Option<(String, String)>, EtcdError> {
    for election in enclosing_keys(key) {
        let prefix = format!("{election}/");
        let end = format!("{election}/g");
        let mut from = format!("{election}/0").into_bytes();
        for _ in 0..PLACEMENT_PAGES {
            let operation = || format!("read of {prefix}<hex> (is --key {key} nested?)");
            let options = GetOptions::new()
                .with_range(end.clone())
                .with_keys_only()
                .with_limit(PLACEMENT_PAGE);
            let mut kv = client.kv_client();
            let page_from = from.clone();
            let page = match timeout(request_timeout, kv.get(page_from, Some(options))).await {
                Ok(Ok(page)) => page,
                Ok(Err(error)) => {
                    return Err(EtcdError::Failed {
                        operation: operation(),
                        reason: describe(&error),
                    });
                }
                Err(_) => {
                    return Err(EtcdError::Timeout {
                        operation: operation(),
                        timeout: request_timeout,
                    });
                }
            };
            if let Some(found) = page
                .kvs()
                .iter()
                .find(|kv| foreign_reason(&prefix, kv.key(), kv.lease()).is_none())
            {
                let found = String::from_utf8_lossy(found.key()).into_owned();
                return Ok(Some((election.to_owned(), found)));
            }
            match page.kvs().last() {
                Some(last) if page.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
    }
    Ok(None)
}

/// What [`check_key_placement`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// No election encloses the key.
    Clear,
    /// The key nests inside another election; the line says which, for the operator.
    Nested(String),
    /// It could not be checked (etcd unreachable, permission denied); why.
    Unchecked(String),
}

/// Checks at start that `key` does not nest inside another election
/// ([`find_enclosing_election`]), with its own connection: up to `attempts` tries, `pause`
/// apart, while etcd cannot be reached or does not answer. Bounded: at most `attempts` times
/// (connect + request timeouts, plus the reads), plus the pauses. A refusal (authentication,
/// permissions, bad options) is not retried.
pub async fn check_key_placement(
    opts: &EtcdOptions,
    key: &str,
    attempts: u32,
    pause: Duration,
) -> Placement {
    if enclosing_keys(key).is_empty() {
        return Placement::Clear;
    }
    let mut last = String::from("not tried");
    for attempt in 1..=attempts.max(1) {
        if attempt > 1 {
            tokio::time::sleep(pause).await;
        }
        let client = match connect(opts).await {
            Ok(client) => client,
            Err(error @ (EtcdError::Unreachable { .. } | EtcdError::Timeout { .. })) => {
                last = error.to_string();
                continue;
            }
            Err(error) => return Placement::Unchecked(error.to_string()),
        };
        match find_enclosing_election(&client, key, opts.request_timeout).await {
            Ok(None) => return Placement::Clear,
            Ok(Some((election, candidate))) => {
                return Placement::Nested(format!(
                    "--key {key} nests inside the election {election}, whose candidates \
                     {election}/... would count our keys as theirs: choose a key outside it \
                     ({candidate} is one of its candidates)"
                ));
            }
            Err(error @ EtcdError::Timeout { .. }) => last = error.to_string(),
            Err(error @ EtcdError::Failed { .. }) if !is_refusal(&error) => {
                last = error.to_string();
            }
            Err(error) => return Placement::Unchecked(error.to_string()),
        }
    }
    Placement::Unchecked(last)
}

/// Whether etcd refused a call for who we are (no permission, bad token), not for its state.
/// [`describe`] starts a gRPC status with its code's name.
fn is_refusal(error: &EtcdError) -> bool {
    match error {
        EtcdError::Failed { reason, .. } => {
            reason.starts_with("PermissionDenied")
                || reason.starts_with("Unauthenticated")
                || reason.starts_with("InvalidArgument")
        }
        EtcdError::AuthenticationFailed { .. } | EtcdError::InvalidOptions(_) => true,
        _ => false,
    }
}

/// etcd's answer when a lease does not exist (any more): revoke and keep-alive say so.
fn is_lease_not_found(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            status.code() == tonic::Code::NotFound && status.message().contains("lease not found")
        }
        // etcd-client's `keep_alive` turns a first answer with TTL 0 into this error.
        etcd_client::Error::LeaseKeepAliveError(message) => message == "lease not found",
        _ => false,
    }
}

/// The handover record as stored in etcd.
#[derive(Serialize, Deserialize)]
struct HandoverRecordJson {
    from_lease: i64,
    from_create_revision: i64,
    value: String,
}

/// The handover request as stored in etcd. A missing `to` means "the next in line".
#[derive(Serialize, Deserialize)]
struct HandoverRequestJson {
    #[serde(default)]
    to: Option<String>,
}

/// One open keep-alive stream of one lease.
///
/// The stream is reused so a keep-alive costs one round trip. etcd answers the requests of a
/// stream in order, but an answer does not say which request it answers: a call that times out
/// leaves its answer in flight, and the next call would read it and credit it to its own, later
/// send time, overestimating the lease. So a call takes the stream out of the [`Election`] and
/// puts it back only after a clean exchange; a call that fails or is dropped (timeout) drops
/// the stream, and the next call opens a fresh one.
struct KeepAliveStream {
    lease: LeaseId,
    keeper: LeaseKeeper,
    answers: LeaseKeepAliveStream,
}

struct Shared {
    client: Client,
    key: String,
    value: String,
    request_timeout: Duration,
    keep_alive: Mutex<Option<KeepAliveStream>>,
    foreign: Mutex<ForeignReport>,
    /// Where the outcome of every bounded call is recorded, if anywhere.
    health: OnceLock<Arc<CallHealth>>,
}

/// A key under the election prefix `<key>/` that is not a candidate. Candidates are exactly
/// `<key>/<lease id in lowercase hex>` attached to that lease, as Go's `concurrency.Election`
/// and `etcdctl elect` write them; anything else is ignored by the election.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignKey {
    /// The full key (non-UTF-8 bytes replaced).
    pub key: String,
    /// The lease it is attached to; 0 for none.
    pub lease: LeaseId,
    /// Why it is not a candidate.
    pub why: &'static str,
}

impl fmt::Display for ForeignKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.key, self.why)
    }
}

/// Whether the key `key`, attached to `lease`, is a candidate of the election whose candidate
/// prefix is `prefix` (`<key>/`): `None` if it is, else why not.
pub fn foreign_reason(prefix: &str, key: &[u8], lease: LeaseId) -> Option<&'static str> {
    let Some(name) = key.strip_prefix(prefix.as_bytes()) else {
        return Some("outside the election prefix");
    };
    if name.contains(&b'/') {
        return Some("nested below the candidates: another election's key, or written by hand");
    }
    if lease <= 0 {
        return Some("attached to no lease, so it would never go away");
    }
    if name != format!("{lease:x}").as_bytes() {
        return Some("its name is not its lease id in lowercase hex");
    }
    None
}

/// The foreign keys of the last read, and when they were last logged.
#[derive(Default)]
struct ForeignReport {
    keys: Vec<ForeignKey>,
    throttle: ForeignLogThrottle,
}

/// Logs a set of foreign keys at once when it changes, and again every
/// [`FOREIGN_LOG_EVERY`] while it persists.
#[derive(Default)]
struct ForeignLogThrottle {
    last: Option<(tokio::time::Instant, Vec<String>)>,
}

impl ForeignLogThrottle {
    /// Whether `keys`, read at `now`, should be logged; remembers it if so.
    fn due(&mut self, now: tokio::time::Instant, keys: &[ForeignKey]) -> bool {
        let names: Vec<String> = keys.iter().map(|k| k.key.clone()).collect();
        let due = match &self.last {
            None => !names.is_empty(),
            Some((at, last)) => {
                *last != names || (!names.is_empty() && now >= *at + FOREIGN_LOG_EVERY)
            }
        };
        if due {
            self.last = Some((now, names));
        }
        due
    }
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

/// Why one round of [`Election::observe`] ended.
enum ObserveEnd {
    /// The receiver was dropped: stop.
    ReceiverGone,
    /// Reading or watching failed: report, back off, start over.
    Failed(String),
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
            }),
        }
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

    /// The keys under `<key>/` that the last read of the election ignored because they are not
    /// candidates (see [`ForeignKey`]), in create-revision order. Empty before the first read.
    pub fn foreign_keys(&self) -> Vec<ForeignKey> {
        self.shared
            .foreign
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys
            .clone()
    }

    /// The prefix of all candidate keys: `<key>/`.
    pub fn candidate_prefix(&self) -> String {
        format!("{}/", self.shared.key)
    }

    /// The candidate key of `lease`: `<key>/<lease in lowercase hex>`, as Go's
    /// `concurrency.Election` names it (etcd lease ids are positive).
    pub fn candidate_key(&self, lease: LeaseId) -> String {
        format!("{}/{lease:x}", self.shared.key)
    }

    /// Where a leader leaves its handover record: `<key>.elector/handover-record`.
    pub fn handover_record_key(&self) -> String {
        format!("{}.elector/handover-record", self.shared.key)
    }

    /// Where an operator asks for a handover: `<key>.elector/handover-request`.
    pub fn handover_request_key(&self) -> String {
        format!("{}.elector/handover-request", self.shared.key)
    }

    /// Runs one etcd call bounded by the request timeout.
    async fn bounded<T>(
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
        result
    }

    /// Grants a lease of `ttl` (rounded up to whole seconds, as etcd counts). Returns the
    /// lease and the TTL etcd granted, which can be longer (etcd's minimum is about 2 s).
    pub async fn grant(&self, ttl: Duration) -> Result<(LeaseId, Duration), EtcdError> {
        let seconds = i64::try_from(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0))
            .unwrap_or(i64::MAX)
            .max(1);
        let operation = || format!("grant of a {seconds}s lease");
        let mut leases = self.shared.client.lease_client();
        let answer = self
            .bounded(operation, async move { leases.grant(seconds, None).await })
            .await?;
        if !answer.error().is_empty() {
            return Err(EtcdError::Failed {
                operation: operation(),
                reason: answer.error().to_owned(),
            });
        }
        match u64::try_from(answer.ttl()) {
            Ok(granted) if granted > 0 => Ok((answer.id(), Duration::from_secs(granted))),
            _ => Err(EtcdError::UnexpectedResponse {
                operation: operation(),
                detail: format!("granted TTL {}", answer.ttl()),
            }),
        }
    }

    /// Sends one keep-alive for `lease` and returns the TTL etcd granted from then on, or
    /// [`Duration::ZERO`] when the lease no longer exists. The caller takes the time before
    /// calling: that is no later than when the request left.
    ///
    /// The stream is kept open between calls (see [`KeepAliveStream`]). Opening a stream costs
    /// an extra keep-alive, because etcd-client sends one and drops its answer; the TTL
    /// returned is then that of the second, which was sent later still, so still safe.
    pub async fn keep_alive_once(&self, lease: LeaseId) -> Result<Duration, EtcdError> {
        let operation = || format!("keep-alive of lease {lease:x}");
        let reusable = {
            let mut slot = self
                .shared
                .keep_alive
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            slot.take().filter(|stream| stream.lease == lease)
        };
        let exchange = async {
            let mut stream = match reusable {
                Some(stream) => stream,
                None => match self.shared.client.lease_client().keep_alive(lease).await {
                    Ok((keeper, answers)) => KeepAliveStream {
                        lease,
                        keeper,
                        answers,
                    },
                    Err(error) if is_lease_not_found(&error) => return Ok((Duration::ZERO, None)),
                    Err(error) => return Err(error),
                },
            };
            stream.keeper.keep_alive().await?;
            match stream.answers.message().await? {
                Some(answer) if answer.id() != lease => {
                    Err(etcd_client::Error::LeaseKeepAliveError(format!(
                        "answer for lease {:x}",
                        answer.id()
                    )))
                }
                Some(answer) => match u64::try_from(answer.ttl()) {
                    Ok(ttl) if ttl > 0 => Ok((Duration::from_secs(ttl), Some(stream))),
                    _ => Ok((Duration::ZERO, None)),
                },
                None => Err(etcd_client::Error::LeaseKeepAliveError(
                    "etcd closed the keep-alive stream".to_owned(),
                )),
            }
        };
        let (ttl, stream) = self.bounded(operation, exchange).await?;
        if let Some(stream) = stream {
            *self
                .shared
                .keep_alive
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(stream);
        }
        Ok(ttl)
    }

    /// Creates this replica's candidate key for `lease` unless it exists, and returns its
    /// create revision: its place in the line. Like Go's `Campaign`, one transaction: if
    /// `create_revision(key) == 0` put the value attached to the lease, else read the key.
    pub async fn create_candidate(&self, lease: LeaseId) -> Result<i64, EtcdError> {
        let key = self.candidate_key(lease);
        let operation = || format!("creation of candidate {key}");
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                self.shared.value.clone(),
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key.clone(), None)]);
        let mut kv = self.shared.client.kv_client();
        let answer = self
            .bounded(operation, async move { kv.txn(txn).await })
            .await?;
        if answer.succeeded() {
            return header_revision(&answer).ok_or_else(|| EtcdError::UnexpectedResponse {
                operation: operation(),
                detail: "no header".to_owned(),
            });
        }
        let existing = match answer.op_responses().into_iter().next() {
            Some(TxnOpResponse::Get(get)) => get.kvs().first().cloned(),
            _ => None,
        };
        let Some(existing) = existing else {
            return Err(EtcdError::UnexpectedResponse {
                operation: operation(),
                detail: "the key exists but could not be read".to_owned(),
            });
        };
        if existing.lease() != lease {
            // Such a key would not vanish with our lease: never treat it as ours.
            return Err(EtcdError::UnexpectedResponse {
                operation: operation(),
                detail: format!(
                    "the key exists attached to lease {:x}, not to ours",
                    existing.lease()
                ),
            });
        }
        if existing.value() != self.shared.value.as_bytes() {
            warn!(
                key = %key,
                stored = %String::from_utf8_lossy(existing.value()),
                ours = %self.shared.value,
                "our candidate key holds another value"
            );
        }
        Ok(existing.create_revision())
    }

    /// One consistent read of the election: a transaction without compares whose three reads
    /// are served at one revision: the candidates (by create revision, ascending), the
    /// handover record and the handover request. Linearizable (a transaction always is), so
    /// never a stale member's view.
    pub async fn observe_once(&self) -> Result<Observation, EtcdError> {
        let operation = || format!("read of election {}", self.shared.key);
        let txn = Txn::new().and_then([
            TxnOp::get(
                self.candidate_prefix(),
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_sort(SortTarget::Create, SortOrder::Ascend),
                ),
            ),
            TxnOp::get(self.handover_record_key(), None),
            TxnOp::get(self.handover_request_key(), None),
        ]);
        let mut kv = self.shared.client.kv_client();
        let answer = self
            .bounded(operation, async move { kv.txn(txn).await })
            .await?;
        self.parse_observation(&answer)
            .map_err(|detail| EtcdError::UnexpectedResponse {
                operation: operation(),
                detail,
            })
    }

    fn parse_observation(&self, answer: &TxnResponse) -> Result<Observation, String> {
        let revision = header_revision(answer).ok_or("no header")?;
        let responses = answer.op_responses();
        let [
            TxnOpResponse::Get(candidates_read),
            TxnOpResponse::Get(record),
            TxnOpResponse::Get(request),
        ] = responses.as_slice()
        else {
            return Err(format!(
                "expected three range results, got {} results",
                responses.len()
            ));
        };
        let prefix = self.candidate_prefix();
        let mut foreign = Vec::new();
        let mut candidates = Vec::new();
        for kv in candidates_read.kvs() {
            match foreign_reason(&prefix, kv.key(), kv.lease()) {
                None => candidates.push(Candidate {
                    id: CandidateId {
                        lease: kv.lease(),
                        create_revision: kv.create_revision(),
                    },
                    value: String::from_utf8_lossy(kv.value()).into_owned(),
                }),
                Some(why) => foreign.push(ForeignKey {
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    lease: kv.lease(),
                    why,
                }),
            }
        }
        // etcd sorted them already; a stable sort keeps that order and makes the election
        // order independent of whatever serves the read.
        candidates.sort_by_key(|candidate: &Candidate| candidate.id.create_revision);
        self.report_foreign(foreign);
        Ok(Observation {
            revision,
            candidates,
            handover_record: first_kv(record).and_then(|kv| self.parse_record(kv)),
            handover_request: first_kv(request).and_then(|kv| self.parse_request(kv)),
        })
    }

    /// Keeps the foreign keys of the last read and logs them, throttled.
    fn report_foreign(&self, keys: Vec<ForeignKey>) {
        let mut report = self
            .shared
            .foreign
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if report.throttle.due(tokio::time::Instant::now(), &keys) {
            if keys.is_empty() {
                info!(key = %self.shared.key, "no foreign keys under the election prefix any more");
            } else {
                let mut named: Vec<String> = keys
                    .iter()
                    .take(FOREIGN_LOG_NAMES)
                    .map(ToString::to_string)
                    .collect();
                if keys.len() > FOREIGN_LOG_NAMES {
                    named.push(format!("and {} more", keys.len() - FOREIGN_LOG_NAMES));
                }
                error!(
                    key = %self.shared.key,
                    count = keys.len(),
                    foreign = %named.join(", "),
                    "foreign keys under the election prefix {}: ignored, never candidates. \
                     Candidates are {}<lease id in hex> on that lease. Delete them \
                     (etcdctl del KEY) or move the other election out of {}",
                    self.candidate_prefix(),
                    self.candidate_prefix(),
                    self.candidate_prefix(),
                );
            }
        }
        report.keys = keys;
    }

    fn parse_record(&self, kv: &KeyValue) -> Option<HandoverRecord> {
        match serde_json::from_slice::<HandoverRecordJson>(kv.value()) {
            Ok(json) => Some(HandoverRecord {
                from: CandidateId {
                    lease: json.from_lease,
                    create_revision: json.from_create_revision,
                },
                value: json.value,
            }),
            Err(error) => {
                warn!(
                    key = %self.handover_record_key(),
                    %error,
                    "ignoring an unreadable handover record"
                );
                None
            }
        }
    }

    fn parse_request(&self, kv: &KeyValue) -> Option<HandoverRequest> {
        match serde_json::from_slice::<HandoverRequestJson>(kv.value()) {
            Ok(json) => Some(HandoverRequest {
                to: json.to,
                revision: kv.mod_revision(),
            }),
            Err(error) => {
                warn!(
                    key = %self.handover_request_key(),
                    %error,
                    "ignoring an unreadable handover request"
                );
                None
            }
        }
    }

    /// The election as it is now, for operator tools: same as [`Election::observe_once`].
    pub async fn list(&self) -> Result<Observation, EtcdError> {
        self.observe_once().await
    }

    /// Reads the election and reports it to `tx` as [`Input::Observed`], then again after
    /// every change, until `tx`'s receiver is dropped.
    ///
    /// One round: a fresh read, then a watch on everything under `<key>` (the candidates and
    /// the `<key>.elector/` keys; keys of other elections that merely start with `<key>` cost
    /// a needless re-read, nothing more) from the revision after the read, so nothing falls
    /// in between. Every watch event triggers a fresh read, and the read is what is reported,
    /// never the event itself. Every [`OBSERVE_RECHECK_PERIOD`] the election is re-read
    /// anyway (reported only if it changed, revision aside) and the watch is asked for a
    /// progress report; a watch silent for [`WATCH_SILENT_PERIODS`] periods is dead.
    ///
    /// Any error, a compaction, a cancelled or dead watch ends the round: it is reported as
    /// [`Input::ObserveFailed`] and a new round starts after a backoff of 200 ms doubling to
    /// 5 s, reset once a watch is established.
    pub async fn observe(&self, tx: mpsc::Sender<Input>) {
        let mut backoff = OBSERVE_BACKOFF_FIRST;
        loop {
            let reason = match self.observe_round(&tx, &mut backoff).await {
                ObserveEnd::ReceiverGone => return,
                ObserveEnd::Failed(reason) => reason,
            };
            warn!(
                key = %self.shared.key,
                %reason,
                retry_in = ?backoff,
                "observing the election failed"
            );
            if tx.send(Input::ObserveFailed { reason }).await.is_err() {
                return;
            }
            tokio::select! {
                // Fixed order, so that a simulation seed always gives the same run.
                biased;
                () = tx.closed() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(OBSERVE_BACKOFF_MAX);
        }
    }

    async fn observe_round(&self, tx: &mpsc::Sender<Input>, backoff: &mut Duration) -> ObserveEnd {
        let mut last = match self.observe_once().await {
            Ok(observation) => observation,
            Err(error) => return ObserveEnd::Failed(error.to_string()),
        };
        if tx.send(Input::Observed(last.clone())).await.is_err() {
            return ObserveEnd::ReceiverGone;
        }

        let prefix = self.shared.key.clone();
        let operation = || format!("watch of {prefix}");
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(last.revision + 1);
        let mut watches = self.shared.client.watch_client();
        let watch_key = prefix.clone();
        let watch = self
            .bounded(operation, async move {
                watches.watch(watch_key, Some(options)).await
            })
            .await;
        let (mut requests, mut answers) = match watch {
            Ok(stream) => stream.split(),
            Err(error) => return ObserveEnd::Failed(error.to_string()),
        };

        let period = OBSERVE_RECHECK_PERIOD;
        let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        recheck.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut heard_from_watch = false;
        let mut silent_periods = 0;
        loop {
            tokio::select! {
                // Fixed order, so that a simulation seed always gives the same run.
                biased;
                () = tx.closed() => return ObserveEnd::ReceiverGone,
                answer = answers.message() => {
                    heard_from_watch = true;
                    let answer = match answer {
                        Ok(Some(answer)) => answer,
                        Ok(None) => {
                            return ObserveEnd::Failed(format!("etcd ended the {}", operation()));
                        }
                        Err(error) => {
                            let reason = describe(&error);
                            let operation = operation();
                            return ObserveEnd::Failed(format!("etcd {operation} failed: {reason}"));
                        }
                    };
                    if let Some(reason) = watch_ended(&answer) {
                        return ObserveEnd::Failed(format!("etcd {}: {reason}", operation()));
                    }
                    if answer.created() {
                        *backoff = OBSERVE_BACKOFF_FIRST;
                        debug!(key = %prefix, from = last.revision + 1, "watching the election");
                    }
                    if answer.events().is_empty() {
                        continue;
                    }
                    last = match self.observe_once().await {
                        Ok(observation) => observation,
                        Err(error) => return ObserveEnd::Failed(error.to_string()),
                    };
                    if tx.send(Input::Observed(last.clone())).await.is_err() {
                        return ObserveEnd::ReceiverGone;
                    }
                }
                _ = recheck.tick() => {
                    if heard_from_watch {
                        silent_periods = 0;
                    } else {
                        silent_periods += 1;
                        if silent_periods >= WATCH_SILENT_PERIODS {
                            return ObserveEnd::Failed(format!(
                                "etcd {} went silent for {}",
                                operation(),
                                humantime::format_duration(period * silent_periods)
                            ));
                        }
                    }
                    heard_from_watch = false;
                    let asked = timeout(self.shared.request_timeout, requests.request_progress());
                    if !matches!(asked.await, Ok(Ok(()))) {
                        let reason = format!("etcd {}: cannot ask for progress", operation());
                        return ObserveEnd::Failed(reason);
                    }
                    let fresh = match self.observe_once().await {
                        Ok(observation) => observation,
                        Err(error) => return ObserveEnd::Failed(error.to_string()),
                    };
                    if !same_election(&fresh, &last) {
                        // Usually the watch event is merely on its way; report now anyway.
                        debug!(
                            key = %prefix,
                            revision = fresh.revision,
                            "a periodic re-read found a change first"
                        );
                        last = fresh;
                        if tx.send(Input::Observed(last.clone())).await.is_err() {
                            return ObserveEnd::ReceiverGone;
                        }
                    }
                }
            }
        }
    }

    /// Leaves the election.
    ///
    /// With `record` and `candidate`: one transaction that, only while our key still has the
    /// candidate's create revision, writes the handover record (no lease: it must outlive
    /// us), deletes our key and clears any handover request. If our key is gone already the
    /// transaction does nothing, and we go on. Then the lease is revoked (a lease that no
    /// longer exists counts as revoked).
    ///
    /// The transaction and the revocation are each bounded by the request timeout.
    pub async fn resign(
        &self,
        lease: LeaseId,
        candidate: Option<CandidateId>,
        record: Option<HandoverRecord>,
        clear_request: Option<i64>,
    ) -> Result<(), EtcdError> {
        let Some(candidate) = candidate else {
            if record.is_some() {
                warn!(
                    lease = %format!("{lease:x}"),
                    "resigning without a candidate key: no handover record written"
                );
            }
            if let Some(revision) = clear_request {
                self.clear_acted_on_request(revision).await?;
            }
            return self.revoke(lease).await;
        };
        let key = self.candidate_key(lease);
        let with_record = record.is_some();
        let mut ops = Vec::with_capacity(3);
        if let Some(record) = record {
            let json = serde_json::to_string(&HandoverRecordJson {
                from_lease: record.from.lease,
                from_create_revision: record.from.create_revision,
                value: record.value,
            })
            .map_err(|error| EtcdError::Failed {
                operation: format!("handover from candidate {key}"),
                reason: error.to_string(),
            })?;
            ops.push(TxnOp::put(self.handover_record_key(), json, None));
        }
        ops.push(TxnOp::delete(key.clone(), None));
        let ours =
            Compare::create_revision(key.clone(), CompareOp::Equal, candidate.create_revision);
        // The request this resignation acted on goes in the same transaction as our key: a
        // successor must never see us gone and the request still there, or it would act on
        // it again and hand over in turn. Guarded by its revision, so that a newer request
        // survives: if it changed (or is gone), the same deletion is made without it.
        let mut deleted = false;
        if let Some(revision) = clear_request {
            let request = self.handover_request_key();
            let mut with_request = ops.clone();
            with_request.push(TxnOp::delete(request.clone(), None));
            let txn = Txn::new()
                .when([
                    ours.clone(),
                    Compare::mod_revision(request, CompareOp::Equal, revision),
                ])
                .and_then(with_request);
            deleted = self.resign_txn(&key, with_record, txn).await?;
        }
        if !deleted {
            let txn = Txn::new().when([ours]).and_then(ops);
            deleted = self.resign_txn(&key, with_record, txn).await?;
            if !deleted {
                info!(key = %key, "our candidate key was gone already; nothing written");
            }
        }
        self.revoke(lease).await
    }

    /// One attempt at deleting our key (and writing the record): whether it succeeded.
    async fn resign_txn(&self, key: &str, with_record: bool, txn: Txn) -> Result<bool, EtcdError> {
        let operation = || match with_record {
            true => format!("handover from candidate {key}"),
            false => format!("deletion of candidate {key}"),
        };
        let mut kv = self.shared.client.kv_client();
        let answer = self
            .bounded(operation, async move { kv.txn(txn).await })
            .await?;
        if answer.succeeded() {
            match with_record {
                true => info!(key = %key, "handover record written, candidate key deleted"),
                false => info!(key = %key, "candidate key deleted (no handover record)"),
            }
        }
        Ok(answer.succeeded())
    }

    /// Deletes the handover request if it is still the one with this mod revision: a newer
    /// request (another `elector handover`) survives.
    async fn clear_acted_on_request(&self, revision: i64) -> Result<(), EtcdError> {
        let key = self.handover_request_key();
        let operation = || "deletion of the handover request".to_string();
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                revision,
            )])
            .and_then([TxnOp::delete(key, None)]);
        let mut kv = self.shared.client.kv_client();
        let answer = self
            .bounded(operation, async move { kv.txn(txn).await })
            .await?;
        if answer.succeeded() {
            info!(revision, "handover request deleted: it has been acted on");
        }
        Ok(())
    }

    /// Revokes `lease`, deleting every key attached to it. A lease that does not exist counts
    /// as revoked.
    pub async fn revoke(&self, lease: LeaseId) -> Result<(), EtcdError> {
        let mut leases = self.shared.client.lease_client();
        let revoked = timeout(self.shared.request_timeout, async move {
            leases.revoke(lease).await
        })
        .await;
        match revoked {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) if is_lease_not_found(&error) => Ok(()),
            Ok(Err(error)) => Err(EtcdError::Failed {
                operation: format!("revocation of lease {lease:x}"),
                reason: describe(&error),
            }),
            Err(_) => Err(EtcdError::Timeout {
                operation: format!("revocation of lease {lease:x}"),
                timeout: self.shared.request_timeout,
            }),
        }
    }

    /// Asks the leader to hand over to the replica whose value is `to`, or to the next in line.
    /// Returns the request's revision, which tells it from later requests.
    pub async fn request_handover(&self, to: Option<String>) -> Result<i64, EtcdError> {
        let key = self.handover_request_key();
        let operation = || format!("write of handover request {key}");
        let json = serde_json::to_string(&HandoverRequestJson { to }).map_err(|error| {
            EtcdError::Failed {
                operation: operation(),
                reason: error.to_string(),
            }
        })?;
        let mut kv = self.shared.client.kv_client();
        let put_key = key.clone();
        let answer = self
            .bounded(operation, async move { kv.put(put_key, json, None).await })
            .await?;
        answer
            .header()
            .map(|header| header.revision())
            .ok_or_else(|| EtcdError::UnexpectedResponse {
                operation: operation(),
                detail: "no header".to_owned(),
            })
    }

    /// Withdraws any pending handover request.
    pub async fn clear_handover_request(&self) -> Result<(), EtcdError> {
        let key = self.handover_request_key();
        let operation = || format!("deletion of handover request {key}");
        let mut kv = self.shared.client.kv_client();
        let delete_key = key.clone();
        self.bounded(operation, async move { kv.delete(delete_key, None).await })
            .await?;
        Ok(())
    }
}

fn header_revision(answer: &TxnResponse) -> Option<i64> {
    answer.header().map(|header| header.revision())
}

fn first_kv(get: &GetResponse) -> Option<&KeyValue> {
    get.kvs().first()
}

/// Whether a watch answer says the watch is over, and why.
fn watch_ended(answer: &WatchResponse) -> Option<String> {
    if answer.compact_revision() != 0 {
        return Some(format!(
            "history compacted up to revision {}",
            answer.compact_revision()
        ));
    }
    if answer.canceled() {
        let reason = answer.cancel_reason();
        return Some(if reason.is_empty() {
            "cancelled by etcd".to_owned()
        } else {
            format!("cancelled by etcd: {reason}")
        });
    }
    None
}

/// Whether two reads show the same election (candidates, record, request), whatever their
/// revisions: any write anywhere in etcd moves the revision.
fn same_election(a: &Observation, b: &Observation) -> bool {
    a.candidates == b.candidates
        && a.handover_record == b.handover_record
        && a.handover_request == b.handover_request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_password() {
        let mut opts = EtcdOptions::new(vec!["http://127.0.0.1:2379".to_owned()]);
        opts.user = Some("elector".to_owned());
        opts.password = Some("hunter2".to_owned());
        let shown = format!("{opts:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(shown.contains("elector"), "{shown}");
    }

    #[test]
    fn options_are_checked_before_anything_is_sent() {
        let base = EtcdOptions::new(vec!["http://127.0.0.1:2379".to_owned()]);
        assert!(connect_options(&base).is_ok());

        let cases: Vec<(EtcdOptions, &str)> = vec![
            (EtcdOptions::new(vec![]), "no etcd endpoint"),
            (
                EtcdOptions::new(vec!["127.0.0.1:2379".to_owned()]),
                "http:// or https://",
            ),
            (
                EtcdOptions::new(vec![
                    "http://a:2379".to_owned(),
                    "https://b:2379".to_owned(),
                ]),
                "mix",
            ),
            (
                EtcdOptions {
                    ca: Some("/ca.pem".into()),
                    ..base.clone()
                },
                "use http://",
            ),
            (
                EtcdOptions::new(vec!["https://a:2379".to_owned()]),
                "need the CA",
            ),
            (
                EtcdOptions {
                    user: Some("u".to_owned()),
                    ..base.clone()
                },
                "user and password",
            ),
            (
                EtcdOptions {
                    request_timeout: Duration::ZERO,
                    ..base.clone()
                },
                "positive",
            ),
        ];
        for (opts, expected) in cases {
            match connect_options(&opts) {
                Err(EtcdError::InvalidOptions(message)) => {
                    assert!(message.contains(expected), "{message:?} lacks {expected:?}")
                }
                Err(other) => panic!("{opts:?}: unexpected error {other}"),
                Ok(_) => panic!("{opts:?} accepted"),
            }
        }
    }

    #[test]
    fn unreadable_tls_files_are_named() {
        let opts = EtcdOptions {
            ca: Some("/nonexistent/ca.pem".into()),
            ..EtcdOptions::new(vec!["https://127.0.0.1:2379".to_owned()])
        };
        let error = connect_options(&opts).err().map(|e| e.to_string());
        let error = error.unwrap_or_default();
        assert!(
            error.contains("CA certificate file /nonexistent/ca.pem"),
            "{error}"
        );
    }

    #[test]
    fn candidates_are_exactly_the_lease_in_hex_on_that_lease() {
        let prefix = "/iotex-server/";
        let lease: LeaseId = 0x694d_7f1a_0c2b_0e15;
        assert_eq!(
            foreign_reason(prefix, b"/iotex-server/694d7f1a0c2b0e15", lease),
            None
        );
        let cases: Vec<(&[u8], LeaseId, &str)> = vec![
            (b"/iotex-server/694d7f1a0c2b0e15", 0, "no lease"),
            (b"/iotex-server/694d7f1a0c2b0e15", 0x1234, "not its lease"),
            (b"/iotex-server/694D7F1A0C2B0E15", lease, "not its lease"),
            (b"/iotex-server/0694d7f1a0c2b0e15", lease, "not its lease"),
            (b"/iotex-server/leader", lease, "not its lease"),
            (b"/iotex-server/", lease, "not its lease"),
            (b"/iotex-server/\xff", lease, "not its lease"),
            (b"/iotex-server/sub/694d7f1a0c2b0e15", lease, "nested"),
            (b"/iotex-server/694d7f1a0c2b0e15/", lease, "nested"),
            (b"/iotex-server.elector/handover-record", 0, "outside"),
        ];
        for (key, lease, expected) in cases {
            let why = foreign_reason(prefix, key, lease);
            assert!(
                why.is_some_and(|why| why.contains(expected)),
                "{}: {why:?}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn enclosing_keys_are_the_prefixes_before_each_slash() {
        assert_eq!(enclosing_keys("/a/b/c"), ["/a", "/a/b"]);
        assert_eq!(enclosing_keys("/iotex-server"), Vec::<&str>::new());
        assert_eq!(enclosing_keys("iotex"), Vec::<&str>::new());
        assert_eq!(enclosing_keys("a/b"), ["a"]);
        assert_eq!(enclosing_keys("/a//b"), ["/a", "/a/"]);
    }

    #[test]
    fn foreign_keys_are_logged_on_change_and_then_once_a_minute() {
        let key = |name: &str| ForeignKey {
            key: name.to_owned(),
            lease: 0,
            why: "test",
        };
        let mut throttle = ForeignLogThrottle::default();
        let t0 = tokio::time::Instant::now();
        assert!(!throttle.due(t0, &[]), "nothing to say");
        assert!(throttle.due(t0, &[key("/k/x")]));
        assert!(!throttle.due(t0 + Duration::from_secs(2), &[key("/k/x")]));
        assert!(throttle.due(t0 + Duration::from_secs(3), &[key("/k/x"), key("/k/y")]));
        let t1 = t0 + Duration::from_secs(3);
        assert!(!throttle.due(t1 + Duration::from_secs(59), &[key("/k/x"), key("/k/y")]));
        assert!(throttle.due(t1 + FOREIGN_LOG_EVERY, &[key("/k/x"), key("/k/y")]));
        // Gone: said once, then quiet.
        assert!(throttle.due(t1 + FOREIGN_LOG_EVERY, &[]));
        assert!(!throttle.due(t1 + FOREIGN_LOG_EVERY * 3, &[]));
    }

    #[test]
    fn the_wire_formats_are_stable() {
        let record = HandoverRecordJson {
            from_lease: 0x694d_7f1a,
            from_create_revision: 42,
            value: "node-a".to_owned(),
        };
        assert_eq!(
            serde_json::to_string(&record).ok().as_deref(),
            Some(r#"{"from_lease":1766686490,"from_create_revision":42,"value":"node-a"}"#)
        );
        let request: Result<HandoverRequestJson, _> = serde_json::from_str("{}");
        assert!(matches!(request, Ok(HandoverRequestJson { to: None })));
        assert_eq!(
            serde_json::to_string(&HandoverRequestJson {
                to: Some("b".to_owned())
            })
            .ok()
            .as_deref(),
            Some(r#"{"to":"b"}"#)
        );
    }
}

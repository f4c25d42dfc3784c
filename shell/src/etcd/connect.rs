//! Connecting to etcd in production: endpoints, TLS, authentication, and the one status call
//! that makes a wrong endpoint, certificate or password show at start-up.

use super::{EtcdError, describe};
use elector_core::Timing;
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::timeout;

/// The seam through which the driver, the registry and `force-standby` get an etcd
/// client: `etcd::connect` in production, a turmoil channel in
/// the simulation. Called again after a failure, with backoff.
pub trait Connect: Send + Sync + 'static {
    fn connect(&self) -> impl Future<Output = Result<etcd_client::Client, String>> + Send;
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
    /// HTTP/2 ping interval and ping timeout: a connection that has read nothing for the
    /// interval while a stream is open is pinged, and closed when the ping is not answered in
    /// time, so a silently dead member is left for another endpoint
    /// ([`Timing::etcd_ping_interval`], [`Timing::etcd_ping_timeout`]).
    pub ping: (Duration, Duration),
}

impl EtcdOptions {
    /// Plain-text options for `endpoints` with a 5 s connect and a 2 s request timeout, and
    /// the pings of the default timing.
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdOptions {
            ping: pings_for(&Timing::default()),
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

/// The HTTP/2 ping interval and timeout for an elector running on `timing`.
pub fn pings_for(timing: &Timing) -> (Duration, Duration) {
    (timing.etcd_ping_interval(), timing.etcd_ping_timeout())
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
            .field("ping", &self.ping)
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
    connect_reporting_version(opts)
        .await
        .map(|(client, _)| client)
}

/// [`connect`], also returning the version the first member that answered reports.
pub async fn connect_reporting_version(opts: &EtcdOptions) -> Result<(Client, String), EtcdError> {
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
        // Not logged here: the elector opens several connections (the election's, the
        // registry's, the start-up check of --key), and says once that etcd answers.
        Ok(Ok(status)) => Ok((client, status.version().to_owned())),
        Ok(Err(error)) => Err(classify_connect_error(opts, &endpoints, &error)),
        Err(_) => Err(unreachable(format!(
            "no answer within {}",
            humantime::format_duration(connect_bound)
        ))),
    }
}

/// etcd releases before 3.4.31, and 3.5 before 3.5.13, revoke every lease when a raft leader
/// that stalled (frozen, starved of CPU, stuck on a slow disk) resumes before it learns it was
/// replaced (etcd issue #15247): the active replica's live lease goes, and with it its lead.
/// Safe, because the activation delay covers a lease that ends early
/// (`activation_delay_covers_early_revocation` in docs/safety.md), but a needless failover.
/// Returns the warning to give for such a `version` ("3.4.23"), or `None`.
pub fn lease_revocation_bug(version: &str) -> Option<String> {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|part| part.parse::<u32>().ok());
    let (Some(Some(major)), Some(Some(minor)), Some(Some(patch))) =
        (parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let affected = major < 3
        || (major == 3 && (minor < 4 || (minor == 4 && patch < 31) || (minor == 5 && patch < 13)));
    affected.then(|| {
        format!(
            "etcd {version} can revoke every live lease when a stalled raft leader resumes \
             (etcd issue #15247, fixed in 3.4.31 and 3.5.13): the active replica then loses its \
             lead for no reason and another takes over after the activation delay; safe, but a \
             needless failover: upgrade etcd"
        )
    })
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
    if opts.ping.0.is_zero() || opts.ping.1.is_zero() {
        return invalid("the etcd ping interval and timeout must be positive");
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
        .with_keep_alive(opts.ping.0, opts.ping.1)
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
            (
                EtcdOptions {
                    ping: (Duration::ZERO, Duration::from_secs(1)),
                    ..base.clone()
                },
                "ping interval and timeout must be positive",
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
    fn releases_that_revoke_live_leases_are_named() {
        for affected in [
            "3.4.23",
            "3.4.30",
            "3.5.0",
            "3.5.12",
            "3.3.27",
            "3.4.23-debian",
        ] {
            assert!(lease_revocation_bug(affected).is_some(), "{affected}");
        }
        for fixed in ["3.4.31", "3.4.37", "3.5.13", "3.5.21", "3.6.0", "4.0.0"] {
            assert!(lease_revocation_bug(fixed).is_none(), "{fixed}");
        }
        // A version we cannot read is not judged.
        for unknown in ["", "v3", "main"] {
            assert!(lease_revocation_bug(unknown).is_none(), "{unknown}");
        }
    }
}

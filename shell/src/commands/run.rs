//! The elector itself (no subcommand): builds the driver from the flags (etcd, the node, the
//! fence, the status server, systemd, the state file, the registry record) and runs it until
//! it exits.

use crate::commands::watcher::{self, Protection};
use crate::systemd::{self, Notify};
use elector::cli::{RunArgs, StatusAddr, host_name};
use elector::clock::{Clock, TokioClock};
use elector::driver::{Control, Driver};
use elector::etcd::{self, Connect, EtcdOptions};
use elector::node::{NodeClient, NodeTimeouts, ReqwestTransport};
use elector::node_config::{self, NodeConfig};
use elector::registry::{self, RecordContext};
use elector::state::{self, StateFile};
use elector::telemetry::{self, Telemetry};
use elector_core::{Elector, Settings};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

/// Tries, and pause between them, of the start-up check that `--key` does not nest inside
/// another election, while etcd cannot be reached.
const PLACEMENT_ATTEMPTS: u32 = 5;
const PLACEMENT_PAUSE: Duration = Duration::from_secs(2);

/// Production etcd connection: endpoints, TLS and auth from the flags.
struct EtcdConnect {
    options: EtcdOptions,
    /// Set for the driver's connection: its first connection says that etcd answers and which
    /// release it runs, and warns, once, when that release is one that revokes live leases
    /// (`etcd::lease_revocation_bug`). The registry's connection says nothing.
    announce: Option<OnceLock<()>>,
}

impl Connect for EtcdConnect {
    async fn connect(&self) -> Result<etcd_client::Client, String> {
        let (client, version) = etcd::connect_reporting_version(&self.options)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(announced) = &self.announce {
            announced.get_or_init(|| {
                info!(
                    endpoints = %self.options.endpoints.join(","),
                    server_version = %version,
                    "etcd answers"
                );
                if let Some(why) = etcd::lease_revocation_bug(&version) {
                    warn!(server_version = %version, "{why}");
                }
            });
        }
        Ok(client)
    }
}

/// Key custody at start: a node that refuses the admin token or has no `/producer-keys` (an
/// iotex-core before v2.5.0) cannot work with it, whatever happens later: standby is commanded
/// (the node is left as safe as it can be) and the elector exits 2. A node that does not answer
/// yet is left to the driver, which keeps trying.
async fn check_key_endpoint<T: elector::node::HttpGet>(node: &NodeClient<T>) -> Result<(), String> {
    match node.read_keys().await {
        Ok(keys) => {
            info!(node_keys = ?keys, "the node's /producer-keys answers");
            Ok(())
        }
        Err(e) if e.unusable => {
            let demoted = node.set_mode(false).await;
            Err(format!(
                "--producer-key-file: {e} (activate=false {})",
                match demoted {
                    Ok(()) => "sent".to_string(),
                    Err(why) => format!("failed too: {why}"),
                }
            ))
        }
        Err(e) => {
            warn!(reason = %e, "the node's /producer-keys does not answer yet; will retry");
            Ok(())
        }
    }
}

/// `--node-config`: logs what does not fit the HA setup (an error for what `elector check`
/// fails, a warning for the rest; the elector runs all the same: it forces the node standby
/// whatever its configuration says) and returns the fingerprint of the node's p2p identity
/// for the registry record. A file that cannot be read is a configuration error.
fn judge_node_config(
    args: &RunArgs,
    custody: Option<&elector::custody::KeyCustody>,
) -> Result<Option<String>, String> {
    let Some(path) = &args.node_config else {
        return Ok(None);
    };
    let config = NodeConfig::read(path)?;
    for (level, line) in node_config::judge(&config, &args.node_config_expectations(custody, None))
    {
        match level {
            node_config::Level::Ok => {}
            node_config::Level::Warn => warn!(config = %path.display(), "{line}"),
            node_config::Level::Fail => error!(config = %path.display(), "{line}"),
        }
    }
    Ok(config.fingerprint(args.key()))
}

/// Errors returned here are configuration problems: one line, exit code 2.
pub async fn run(args: RunArgs) -> Result<i32, String> {
    let timing = args.timing()?;
    let value = args.value();
    let mut options = args.etcd_options()?;
    // Pings sized from the lease timing: a silently dead member is left before step-down.
    options.ping = etcd::pings_for(&timing);
    etcd::check_options(&options).map_err(|e| format!("--etcd: {e}"))?;
    for warning in args.warnings() {
        warn!("{warning}");
    }
    // What commands the node standby if this process dies or hangs: systemd or `elector
    // supervise` from outside, else a watcher process of our own (started below, once nothing
    // can refuse the start any more).
    let protection = Protection::of(&args);
    // systemd (Type=notify): readiness, status lines, watchdog pings. A watchdog must fit in
    // the restart bound the activation delay of the other replicas relies on.
    let mut notifier: Option<Arc<dyn Notify>> = match systemd::Notifier::from_env()? {
        Some(notifier) => Some(Arc::new(notifier)),
        None => None,
    };
    let mut watchdog = systemd::watchdog_from_env()?;
    if let Some(watchdog) = watchdog {
        systemd::check_restart_bound(watchdog, timing.node_timeout, timing.restart_bound)?;
        if notifier.is_none() {
            warn!("WATCHDOG_USEC is set but NOTIFY_SOCKET is not: no watchdog pings");
        }
    }
    let telemetry = Telemetry::new(args.key(), &value);
    telemetry
        .metrics
        .set_etcd_silence_bound(etcd::silence_bound(timing.etcd_request_timeout));
    if let Some(notifier) = &notifier {
        info!(
            socket = notifier.target(),
            watchdog_ms = watchdog.map(|w| w.as_millis() as u64),
            "systemd notifications on"
        );
        tokio::spawn(systemd::keep_informed(
            notifier.clone(),
            watchdog,
            telemetry.clone(),
        ));
    }
    let mut status_addr = args.status_addr;
    if let StatusAddr::At(addr) = args.status_addr {
        let listener = telemetry::bind(addr).await?;
        // The bound address, so that port 0 tells which port it got.
        let bound = listener
            .local_addr()
            .map_err(|e| format!("--status-addr {addr}: {e}"))?;
        info!(addr = %bound, "status server: /status /metrics /healthz");
        tokio::spawn(telemetry::serve(listener, telemetry.clone()));
        status_addr = StatusAddr::At(bound);
    }
    let transport = ReqwestTransport::new()?;
    let mut node = NodeClient::new(
        transport,
        &args.node.iotex_admin,
        &args.iotex_probe,
        NodeTimeouts::of(&timing),
    );
    let custody = args.custody.load()?;
    let node_key_fingerprint = judge_node_config(&args, custody.as_ref())?;
    let key_custody = custody.is_some();
    if let Some(custody) = custody {
        info!(
            operator = %custody.operator.address(),
            placeholder = %custody.placeholder.address(),
            "key custody: the node holds the operator's key only while this replica may have it \
             active; check these addresses"
        );
        node = node.with_custody(custody);
        check_key_endpoint(&node).await?;
    }
    let fence = args.fence.fence();
    // Held until the process exits: one owner per state.
    let (state, _state_lock) =
        lock_state(state_file(&args, &value), args.state_dir.is_some()).await?;
    let mut settings = Settings::new(value.clone(), timing.clone());
    settings.key_custody = key_custody;
    if let Some(state) = &state {
        match state.load() {
            Ok(previous) => {
                if let Some(term) = &previous {
                    info!(
                        lease = format!("{:x}", term.id.lease),
                        "found the term of a previous process of this elector: it is ended \
                         early once the node is confirmed standby, if it is still there"
                    );
                }
                settings.previous_term = previous;
            }
            Err(e) => warn!("{e}; ignoring it"),
        }
    }
    let clock = TokioClock::new();
    let core = Elector::new(settings, clock.now()).map_err(|e| e.to_string())?;
    info!(
        key = %args.key(),
        value = %value,
        etcd = %args.endpoints().join(","),
        ttl_ms = timing.lease_ttl.as_millis() as u64,
        activation_delay_ms = timing.activation_delay.as_millis() as u64,
        "elector starting: forcing the node to standby before campaigning"
    );
    // The watcher last: an elector refused above must not leave a watcher behind that would
    // then command standby a node another elector runs.
    let watcher = match protection {
        Protection::Watcher => {
            let (link, every) = watcher::start(&args)?;
            info!(
                watcher_pid = link.pid(),
                watchdog_ms = every.as_millis() as u64,
                "watcher process started"
            );
            tokio::spawn(systemd::keep_informed(
                link.clone(),
                Some(every),
                telemetry.clone(),
            ));
            notifier = Some(link.clone());
            watchdog = Some(every);
            Some(link)
        }
        _ => None,
    };
    let (line, deserves_warning) = protection.describe(watchdog);
    if deserves_warning {
        warn!("{line}");
    } else {
        info!("{line}");
    }
    let (control, control_rx) = mpsc::unbounded_channel();
    tokio::spawn(forward_signals(
        control.clone(),
        notifier,
        watchdog,
        telemetry.clone(),
    ));
    // Beside the driver, not before it: a restarted elector must force its node standby at
    // once (the restart bound), whether etcd answers or not.
    let nested = Arc::new(OnceLock::new());
    tokio::spawn(refuse_nested_key(
        options.clone(),
        args.key().to_string(),
        control,
        nested.clone(),
    ));
    // The registry record, for `elector status`: its own task and etcd connection, so it can
    // never delay the driver (see `elector::registry`).
    let host = host_name();
    let registry = registry::spawn(
        EtcdConnect {
            options: options.clone(),
            announce: None,
        },
        args.key().to_string(),
        value.clone(),
        timing.etcd_request_timeout,
        telemetry.clone(),
        RecordContext {
            status_url: match status_addr {
                StatusAddr::At(addr) => Some(registry::status_url(addr, &host)),
                StatusAddr::Off => None,
            },
            host,
            refresh: args.registry_refresh,
            timing: registry::TimingRecord::new(args.profile.as_str(), &timing),
            node_key_fingerprint,
        },
    );
    let driver = Driver {
        core,
        clock,
        node,
        etcd: EtcdConnect {
            options,
            announce: Some(OnceLock::new()),
        },
        key: args.key().to_string(),
        value,
        etcd_request_timeout: timing.etcd_request_timeout,
        fence,
        telemetry,
        state,
    };
    let code = driver.run(control_rx).await;
    // Exit code 0: the node was proven standby; the watcher has nothing left to do.
    if let Some(watcher) = &watcher {
        watcher.finish(code == 0);
    }
    // An elector refused for its key leaves nothing behind in etcd, its record included.
    if nested.get().is_some() {
        registry.withdraw().await;
    } else {
        registry.finish().await;
    }
    match nested.get() {
        // Shut down cleanly: the refusal is the outcome (exit code 2).
        Some(line) if code == 0 => Err(line.clone()),
        // Standby was not confirmed: that exit code (1) matters more.
        Some(line) => {
            eprintln!("elector: {line}");
            Ok(code)
        }
        None => Ok(code),
    }
}

/// Checks that `--key` does not nest inside another election (whose candidates would then
/// count ours as theirs). If it does: remembers the line in `nested` and asks the driver to
/// shut down the graceful way (standby confirmed, key resigned), so the elector exits with
/// code 2 and that line (1 if standby could not be confirmed). If it cannot be checked, says
/// so and lets the elector run.
async fn refuse_nested_key(
    options: EtcdOptions,
    key: String,
    control: mpsc::UnboundedSender<Control>,
    nested: Arc<OnceLock<String>>,
) {
    match etcd::check_key_placement(&options, &key, PLACEMENT_ATTEMPTS, PLACEMENT_PAUSE).await {
        etcd::Placement::Clear => {}
        etcd::Placement::Unchecked(reason) => {
            warn!(
                key = %key,
                %reason,
                "cannot check whether --key nests inside another election; going on"
            );
        }
        etcd::Placement::Nested(line) => {
            error!("{line}; shutting down");
            let _ = nested.set(line);
            let _ = control.send(Control::Shutdown);
        }
    }
}

/// While another process's `elector force-standby` (a watcher's, systemd's ExecStopPost=)
/// holds this value's state, a restarted elector waits this long for it: it ends the dead
/// term, then lets go (its own `--timeout` bounds it, 10 s by default).
const FORCE_STANDBY_LOCK_WAIT: Duration = Duration::from_secs(30);
/// How often the lock is tried again meanwhile.
const LOCK_RETRY: Duration = Duration::from_millis(200);

/// Takes this value's state lock for the life of the process (one owner per state: rule
/// `end_dead_term` must never end a live owner's term). Another elector holding it is a
/// configuration error naming that process; a `force-standby` holding it is waited for. An
/// unusable state directory turns the state off with a warning, or is an error when
/// `--state-dir` named it. Returns the state to use and its lock.
async fn lock_state(
    state: Option<StateFile>,
    named: bool,
) -> Result<(Option<StateFile>, Option<state::StateLock>), String> {
    let Some(state) = state else {
        warn!(
            "no state directory (no --state-dir, no $STATE_DIRECTORY, no home directory): after a \
             crash of this elector its term expires with its lease"
        );
        return Ok((None, None));
    };
    let deadline = tokio::time::Instant::now() + FORCE_STANDBY_LOCK_WAIT;
    let mut waiting = false;
    loop {
        match state.lock("elector") {
            Ok((lock, others)) => {
                info!(lock = %lock.path().display(), "state directory locked for this process");
                if !others.is_empty() {
                    info!(
                        others = %others.join("; "),
                        "other electors keep their state in the same directory (replicas on one \
                         host: each needs its own --value)"
                    );
                }
                return Ok((Some(state), Some(lock)));
            }
            Err(state::LockError::Held { owner, .. })
                if owner.contains("(force-standby") && tokio::time::Instant::now() < deadline =>
            {
                if !waiting {
                    info!(%owner, "waiting for a force-standby of this replica to finish");
                    waiting = true;
                }
                tokio::time::sleep(LOCK_RETRY).await;
            }
            Err(e @ state::LockError::Held { .. }) => return Err(format!("--state-dir: {e}")),
            Err(state::LockError::Unusable(why)) if named => {
                return Err(format!("--state-dir: {why}"));
            }
            Err(state::LockError::Unusable(why)) => {
                warn!(
                    "{why}: running without a state directory (after a crash of this elector, \
                     its term expires with its lease); set --state-dir"
                );
                return Ok((None, None));
            }
        }
    }
}

/// The term file in `--state-dir` (or systemd's `StateDirectory=`), if there is one.
fn state_file(args: &RunArgs, value: &str) -> Option<StateFile> {
    let dir = state::state_dir(args.state_dir.as_deref())?;
    Some(StateFile::new(&dir, args.key(), value).for_node(&args.node.iotex_admin))
}

/// SIGTERM and SIGINT start the graceful path; the core bounds how long it takes.
///
/// The stop notification asks for more time at once while the loop is alive: under systemd
/// the unit's `TimeoutStopSec=` is short (inequality `stop_within_restart_bound`), and the
/// periodic extensions start only once the driver took the request.
async fn forward_signals(
    control: mpsc::UnboundedSender<Control>,
    notifier: Option<Arc<dyn Notify>>,
    watchdog: Option<Duration>,
    telemetry: Arc<Telemetry>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("cannot install signal handlers; SIGTERM will not hand over cleanly");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        if let Some(notifier) = &notifier {
            let mut message = String::from("STOPPING=1\n");
            if systemd::loop_alive(telemetry.loop_age()) {
                let extension = systemd::stop_extension(watchdog);
                message.push_str(&format!("EXTEND_TIMEOUT_USEC={}\n", extension.as_micros()));
            }
            message.push_str("STATUS=shutting down: demoting and handing over");
            let _ = notifier.notify(&message);
        }
        if control.send(Control::Shutdown).is_err() {
            return;
        }
        // A second signal is accepted, but the graceful path is already bounded.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

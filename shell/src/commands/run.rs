//! The elector itself (no subcommand): builds the driver from the flags (etcd, the node, the
//! fence, the status server, systemd, the state file, the registry record) and runs it until
//! it exits.

use crate::systemd;
use elector::cli::{RunArgs, StatusAddr, host_name};
use elector::clock::{Clock, TokioClock};
use elector::driver::{Connect, Control, Driver};
use elector::etcd::{self, EtcdOptions};
use elector::node::{NodeClient, ReqwestTransport};
use elector::registry::{self, RecordContext};
use elector::state::{self, StateFile};
use elector::status::{self, Status};
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
    /// Set for the driver's connection: its first connection warns, once, when the etcd
    /// release is one that revokes live leases (`etcd::lease_revocation_bug`).
    release_warning: Option<OnceLock<()>>,
}

impl Connect for EtcdConnect {
    async fn connect(&self) -> Result<etcd_client::Client, String> {
        let (client, version) = etcd::connect_reporting_version(&self.options)
            .await
            .map_err(|e| e.to_string())?;
        if let (Some(warned), Some(why)) =
            (&self.release_warning, etcd::lease_revocation_bug(&version))
        {
            warned.get_or_init(|| warn!(server_version = %version, "{why}"));
        }
        Ok(client)
    }
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
    // systemd (Type=notify): readiness, status lines, watchdog pings. A watchdog must fit in
    // the restart bound the activation delay of the other replicas relies on.
    let notifier = systemd::Notifier::from_env()?.map(Arc::new);
    let watchdog = systemd::watchdog_from_env()?;
    if let Some(watchdog) = watchdog {
        systemd::check_restart_bound(watchdog, timing.node_timeout, timing.restart_bound)?;
        if notifier.is_none() {
            warn!("WATCHDOG_USEC is set but NOTIFY_SOCKET is not: no watchdog pings");
        }
    }
    let status = Status::new(args.key(), &value);
    status
        .metrics
        .set_etcd_silence_bound(status::etcd_silence_bound(timing.etcd_request_timeout));
    if let Some(notifier) = &notifier {
        info!(
            socket = notifier.target(),
            watchdog_ms = watchdog.map(|w| w.as_millis() as u64),
            "systemd notifications on"
        );
        tokio::spawn(systemd::supervise(
            notifier.clone(),
            watchdog,
            status.clone(),
        ));
    }
    let mut status_addr = args.status_addr;
    if let StatusAddr::At(addr) = args.status_addr {
        let listener = status::bind(addr).await?;
        // The bound address, so that port 0 tells which port it got.
        let bound = listener
            .local_addr()
            .map_err(|e| format!("--status-addr {addr}: {e}"))?;
        info!(addr = %bound, "status server: /status /metrics /healthz");
        tokio::spawn(status::serve(listener, status.clone()));
        status_addr = StatusAddr::At(bound);
    }
    let transport = ReqwestTransport::new()?;
    let node = NodeClient::new(
        transport,
        &args.node.iotex_admin,
        &args.iotex_probe,
        timing.node_timeout,
    );
    let fence = args.fence.fence();
    let state = state_file(&args, &value);
    let mut settings = Settings::new(value.clone(), timing.clone());
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
    let (control, control_rx) = mpsc::unbounded_channel();
    tokio::spawn(forward_signals(control.clone(), notifier));
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
            release_warning: None,
        },
        args.key().to_string(),
        value.clone(),
        timing.etcd_request_timeout,
        status.clone(),
        RecordContext {
            status_url: match status_addr {
                StatusAddr::At(addr) => Some(registry::status_url(addr, &host)),
                StatusAddr::Off => None,
            },
            host,
            refresh: args.registry_refresh,
        },
    );
    let driver = Driver {
        core,
        clock,
        node,
        etcd: EtcdConnect {
            options,
            release_warning: Some(OnceLock::new()),
        },
        key: args.key().to_string(),
        value,
        etcd_request_timeout: timing.etcd_request_timeout,
        fence,
        status,
        state,
    };
    let code = driver.run(control_rx).await;
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

/// The term file in `--state-dir` (or systemd's `StateDirectory=`), if there is one.
fn state_file(args: &RunArgs, value: &str) -> Option<StateFile> {
    let dir = state::state_dir(args.state_dir.as_deref())?;
    Some(StateFile::new(&dir, args.key(), value))
}

/// SIGTERM and SIGINT start the graceful path; the core bounds how long it takes.
async fn forward_signals(
    control: mpsc::UnboundedSender<Control>,
    notifier: Option<Arc<systemd::Notifier>>,
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
            let _ = notifier.notify("STOPPING=1\nSTATUS=shutting down: demoting and handing over");
        }
        if control.send(Control::Shutdown).is_err() {
            return;
        }
        // A second signal is accepted, but the graceful path is already bounded.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

//! `elector`: keeps exactly one IoTeX delegate replica active. See `elector --help`.

use elector::cli::{self, LogFormat, Parsed, RunArgs, StatusAddr};
use elector::clock::{Clock, TokioClock};
use elector::driver::{Connect, Control, Driver, Fence};
use elector::etcd::{self, EtcdOptions};
use elector::node::{NodeClient, ReqwestTransport};
use elector::status::{self, Status};
use elector_core::{Elector, Settings};
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{error, info};

/// Exit code for bad flags, as clap and the Go flag package use.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args()) {
        Parsed::Run(cli) => cli,
        Parsed::Info(text) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Parsed::Error(line) => {
            eprintln!("elector: {line}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_logging(cli.run.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("elector: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.run)) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(line) => {
            eprintln!("elector: {line}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ELECTOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.with_target(false).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Production etcd connection: endpoints, TLS and auth from the flags.
struct EtcdConnect(EtcdOptions);

impl Connect for EtcdConnect {
    async fn connect(&self) -> Result<etcd_client::Client, String> {
        etcd::connect(&self.0).await.map_err(|e| e.to_string())
    }
}

/// Errors returned here are configuration problems: one line, exit code 2.
async fn run(args: RunArgs) -> Result<i32, String> {
    let timing = args.timing()?;
    let value = args.value();
    let options = EtcdOptions {
        endpoints: args.etcd.clone(),
        ca: args.etcd_ca.clone(),
        cert: args.etcd_cert.clone(),
        key: args.etcd_key.clone(),
        user: args.etcd_user.clone(),
        password: args.etcd_password()?,
        connect_timeout: timing.etcd_request_timeout,
        request_timeout: timing.etcd_request_timeout,
    };
    let status = Status::new(&args.key, &value);
    if let StatusAddr::At(addr) = args.status_addr {
        let listener = status::bind(addr).await?;
        info!(%addr, "status server: /status /metrics /healthz");
        tokio::spawn(status::serve(listener, status.clone()));
    }
    let transport = ReqwestTransport::new()?;
    let node = NodeClient::new(
        transport,
        &args.iotex_admin,
        &args.iotex_probe,
        timing.node_timeout,
    );
    let fence = match &args.fence_cmd {
        Some(command) => Fence::Command {
            command: command.clone(),
            timeout: args.fence_timeout,
        },
        None => Fence::None,
    };
    let clock = TokioClock::new();
    let core = Elector::new(Settings::new(value.clone(), timing.clone()), clock.now())
        .map_err(|e| e.to_string())?;
    info!(
        key = %args.key,
        value = %value,
        etcd = %args.etcd.join(","),
        ttl_ms = timing.lease_ttl.as_millis() as u64,
        activation_delay_ms = timing.activation_delay.as_millis() as u64,
        "elector starting: forcing the node to standby before campaigning"
    );
    let (control, control_rx) = mpsc::unbounded_channel();
    tokio::spawn(forward_signals(control));
    let driver = Driver {
        core,
        clock,
        node,
        etcd: EtcdConnect(options),
        key: args.key.clone(),
        value,
        etcd_request_timeout: timing.etcd_request_timeout,
        fence,
        status,
    };
    Ok(driver.run(control_rx).await)
}

/// SIGTERM and SIGINT start the graceful path; the core bounds how long it takes.
async fn forward_signals(control: mpsc::UnboundedSender<Control>) {
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
        if control.send(Control::Shutdown).is_err() {
            return;
        }
        // A second signal is accepted, but the graceful path is already bounded.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

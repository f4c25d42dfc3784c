//! `stand-in-node`: a stand-in for the IoTeX node's admin endpoint and probe server, for the
//! demo and for trying the elector without a real node. See `--help`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use elector_integration::standin::{CONTROL_ENDPOINTS_HELP, StandIn, StandInOptions};
use tokio::sync::broadcast::error::RecvError;

/// A stand-in for an IoTeX node: its admin endpoint /ha and its probe server.
///
/// The admin listener serves /ha like the node: no parameter reads {"active":bool}; ?activate=
/// true or false writes (lower-cased; any other value is ignored with a 200); after a
/// deactivation, reads say active until the consensus round ends. The probe listener serves
/// /liveness, /readiness, /health and /metrics.
///
/// Logs one line to stderr per change of the mode /ha reports. Stops on SIGTERM or SIGINT.
#[derive(Parser, Debug)]
#[command(name = "stand-in-node", version, after_help = CONTROL_ENDPOINTS_HELP)]
struct Args {
    /// Address of the admin server (/ha and /control/...). Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:9009")]
    admin: SocketAddr,
    /// Address of the probe server. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    probe: SocketAddr,
    /// Start active, like a node left at the default `system.active: true`. Without it the
    /// node starts standby, like a configured HA replica.
    #[arg(long)]
    start_active: bool,
    /// Consensus round length: how long reads still say active after a deactivation, at
    /// most. Rounds are aligned to multiples of it since start. 0s deactivates at once.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    round: Duration,
    /// Start unready: /readiness and /health answer 503 until /control/ready?value=true.
    #[arg(long)]
    unready: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let options = StandInOptions {
        start_active: args.start_active,
        round: args.round,
        ready: !args.unready,
    };
    let standin = StandIn::start(args.admin, args.probe, options)
        .await
        .with_context(|| format!("cannot listen on {} and {}", args.admin, args.probe))?;
    let mut changes = standin.subscribe();
    // Tests read the bound addresses from this line; keep `admin http://` and `probe http://`.
    eprintln!(
        "stand-in-node: admin http://{} probe http://{} started {}, {}, round {}",
        standin.admin_addr(),
        standin.probe_addr(),
        mode(args.start_active),
        if args.unready { "unready" } else { "ready" },
        humantime::format_duration(args.round),
    );

    let log_changes = async {
        loop {
            match changes.recv().await {
                Ok((at, active)) => {
                    eprintln!(
                        "stand-in-node: {:.3}s mode {}",
                        at.as_secs_f64(),
                        mode(active)
                    );
                }
                Err(RecvError::Lagged(missed)) => {
                    eprintln!("stand-in-node: {missed} mode changes not logged (log too slow)");
                }
                Err(RecvError::Closed) => return,
            }
        }
    };
    let signal = tokio::select! {
        () = log_changes => "the stand-in stopping",
        signal = shutdown_signal() => signal?,
    };
    standin.shutdown().await;
    eprintln!("stand-in-node: stopped on {signal}");
    Ok(())
}

fn mode(active: bool) -> &'static str {
    if active { "active" } else { "standby" }
}

/// Waits for SIGTERM or SIGINT and names it.
async fn shutdown_signal() -> anyhow::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        tokio::select! {
            _ = terminate.recv() => Ok("SIGTERM"),
            _ = interrupt.recv() => Ok("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("cannot handle Ctrl-C")?;
        Ok("Ctrl-C")
    }
}

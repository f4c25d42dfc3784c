//! `stand-in-node`: a stand-in for the IoTeX node's admin endpoint and probe server, for the
//! demo and for trying the elector without a real node. See `--help`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use elector_integration::standin::{
    CONTROL_ENDPOINTS_HELP, StandIn, StandInOptions, test_operator, test_placeholder,
};
use tokio::sync::broadcast::error::RecvError;

/// A stand-in for an IoTeX node: iotex-core's consensus as elector-model's node models it,
/// behind its admin endpoint (/ha, /producer-keys) and its probe server.
///
/// The admin listener serves /ha like the node: no parameter reads {"active":bool}; ?activate=
/// true or false writes (lower-cased; any other value is ignored with a 200). The node signs on
/// the chain's slot grid (time since the UNIX epoch, so every stand-in on the machine computes
/// the same chain): prepare() mints and signs before it checks active, and activate=false waits
/// for the slot in progress to start. /producer-keys (GET, PUT, PATCH) needs --admin-token. The
/// probe listener serves /liveness, /readiness, /health and /metrics.
///
/// Logs one line to stderr per change of the mode /ha reports (`<seconds since the UNIX epoch>s
/// mode active|standby`) and one per signature (`<seconds>s signed height H round R <kind>`),
/// which the Docker tests read. Stops on SIGTERM or SIGINT.
#[derive(Parser, Debug)]
#[command(name = "stand-in-node", version, after_help = CONTROL_ENDPOINTS_HELP)]
struct Args {
    /// Address of the admin server (/ha, /producer-keys and /control/...). Port 0 picks a
    /// free port.
    #[arg(long, default_value = "127.0.0.1:9009")]
    admin: SocketAddr,
    /// Address of the probe server. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    probe: SocketAddr,
    /// Start active, like a node left at iotex-core's default `system.active: true`. Without
    /// it the node starts standby, like a configured HA replica.
    #[arg(long)]
    start_active: bool,
    /// The chain's block interval: 2.5s (the Wake upgrade's) or 5s (before it).
    #[arg(long, default_value = "2.5s", value_parser = humantime::parse_duration)]
    block_interval: Duration,
    /// Proposers in the rotation: 1 makes our delegate propose every slot (the worst case);
    /// 24 is mainnet.
    #[arg(long, default_value_t = 1)]
    delegates: u64,
    /// The operator key's address (io1...). Default: the address of the built-in test key.
    #[arg(long)]
    operator: Option<String>,
    /// Start with the built-in placeholder key instead of the operator's (key custody).
    #[arg(long)]
    placeholder: bool,
    /// The node's IOTEX_ADMIN_TOKEN: /producer-keys needs it (Authorization: Bearer or
    /// X-Admin-Token). Without one, /producer-keys answers 404 like an iotex-core older than
    /// v2.5.0.
    #[arg(long, env = "IOTEX_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// Start unready: /readiness and /health answer 503 until /control/ready?value=true.
    #[arg(long)]
    unready: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let operator = args.operator.clone().unwrap_or_else(test_operator);
    let keys = if args.placeholder {
        vec![test_placeholder()]
    } else {
        vec![operator.clone()]
    };
    let options = StandInOptions {
        start_active: args.start_active,
        block_interval: args.block_interval,
        delegates: args.delegates,
        ready: !args.unready,
        operator,
        keys,
        admin_token: args.admin_token.clone().filter(|t| !t.is_empty()),
    };
    let standin = StandIn::start(args.admin, args.probe, options)
        .await
        .with_context(|| format!("cannot listen on {} and {}", args.admin, args.probe))?;
    let mut changes = standin.subscribe();
    // Tests read the bound addresses from this line; keep `admin http://` and `probe http://`.
    eprintln!(
        "stand-in-node: admin http://{} probe http://{} started {}, {}, block interval {}, \
         {} delegates, /producer-keys {}",
        standin.admin_addr(),
        standin.probe_addr(),
        mode(args.start_active),
        if args.unready { "unready" } else { "ready" },
        humantime::format_duration(args.block_interval),
        args.delegates,
        if args.admin_token.is_some() {
            "on"
        } else {
            "off"
        },
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
    let log_signatures = async {
        let mut logged = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let signatures = standin.signatures();
            for s in signatures.get(logged..).unwrap_or_default() {
                eprintln!(
                    "stand-in-node: {:.3}s signed height {} round {} {}",
                    s.at.as_secs_f64(),
                    s.height,
                    s.round,
                    s.kind.as_str()
                );
            }
            logged = signatures.len();
        }
    };
    let signal = tokio::select! {
        () = log_changes => "the stand-in stopping",
        () = log_signatures => "the stand-in stopping",
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

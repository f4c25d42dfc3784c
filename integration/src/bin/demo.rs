//! `make demo`: the elector doing its job on this machine, timed.
//!
//! Starts a local etcd (from PATH, loopback, temp dir), three stand-in nodes and three real
//! `elector` processes; kills the active replica's elector and node (a crashed host), shows
//! the takeover, sends SIGTERM to the new leader (a clean handover), and prints a timeline
//! with the measured times and whether two nodes were ever active at once. Everything it
//! started is stopped on the way out, also on failure.

use anyhow::{Context, Result, bail};
use clap::Parser;
use elector_integration::etcd_process::EtcdProcess;
use elector_integration::standin::{StandIn, StandInOptions};
use elector_model::history::{History, dual_active};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Parser)]
#[command(
    about = "Local etcd, three stand-in nodes, three electors: failover and handover, timed."
)]
struct Args {
    /// The elector binary to run
    #[arg(long, default_value = "bin/elector")]
    elector: PathBuf,
    /// Use the fast timing profile (3 s lease) instead of the defaults (10 s lease)
    #[arg(long)]
    fast: bool,
    /// Consensus round of the stand-in nodes: how long a node stays active after activate=false
    /// [default: 2s, or 500ms with --fast; it must stay within the elector's drain bound]
    #[arg(long, value_parser = humantime::parse_duration)]
    round: Option<Duration>,
}

const NAMES: [&str; 3] = ["a", "b", "c"];
const KEY: &str = "/iotex-demo";
/// Bound on every wait for something the elector should do.
const WAIT: Duration = Duration::from_secs(60);

struct Replica {
    name: &'static str,
    node: Option<StandIn>,
    /// The node's history, kept from the moment it was stopped (a stopped node is inactive).
    final_history: Option<History>,
    started: Instant,
    elector: Option<Child>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(child) = self.elector.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Demo {
    origin: Instant,
    replicas: Vec<Replica>,
    lines: Vec<(Duration, String)>,
}

impl Demo {
    fn at(&self) -> Duration {
        self.origin.elapsed()
    }

    fn say(&mut self, text: impl Into<String>) {
        let at = self.at();
        let text = text.into();
        println!("  t={:>6.2}s  {text}", at.as_secs_f64());
        self.lines.push((at, text));
    }

    fn active(&self) -> Vec<usize> {
        (0..self.replicas.len())
            .filter(|&i| {
                self.replicas[i]
                    .node
                    .as_ref()
                    .is_some_and(|n| n.state().active)
            })
            .collect()
    }

    /// Waits until exactly one node other than `except` is active; returns it.
    async fn wait_for_active(&self, except: Option<usize>) -> Result<usize> {
        let deadline = Instant::now() + WAIT;
        loop {
            let active = self.active();
            if let [one] = active[..]
                && Some(one) != except
            {
                return Ok(one);
            }
            if Instant::now() > deadline {
                bail!(
                    "no single active node within {}s (active: {active:?})",
                    WAIT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every node's history on the demo's clock, up to now.
    fn histories(&self) -> Vec<History> {
        self.replicas
            .iter()
            .map(|r| {
                let offset = r.started.saturating_duration_since(self.origin);
                let raw = match (&r.final_history, &r.node) {
                    (Some(h), _) => h.clone(),
                    (None, Some(n)) => n.state().history,
                    (None, None) => Vec::new(),
                };
                raw.into_iter().map(|(t, a)| (t + offset, a)).collect()
            })
            .collect()
    }

    /// When node `i` last became `active` (on the demo's clock).
    fn last_change(&self, i: usize, active: bool) -> Option<Duration> {
        self.histories()[i]
            .iter()
            .rev()
            .find(|(_, a)| *a == active)
            .map(|(t, _)| *t)
    }
}

fn spawn_elector(
    args: &Args,
    etcd: &str,
    node: &StandIn,
    name: &str,
    log: &std::path::Path,
) -> Result<Child> {
    let log = std::fs::File::create(log).context("creating an elector log file")?;
    let mut command = Command::new(&args.elector);
    // The Go elector's flags, to show that they work as they were.
    command
        .arg(format!("-etcd={etcd}"))
        .arg(format!("-iotexAdmin=http://{}", node.admin_addr()))
        .arg(format!("-iotexProbe=http://{}", node.probe_addr()))
        .arg(format!("-key={KEY}"))
        .arg(format!("-value={name}"))
        .arg("--status-addr=off");
    if args.fast {
        command.args(elector_integration::FAST_PROFILE_ARGS);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", args.elector.display()))
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on a child we own; it has not been reaped yet.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

async fn wait_exit(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("demo failed: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<()> {
    let round = args.round.unwrap_or(if args.fast {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(2)
    });
    if !args.elector.exists() {
        bail!(
            "{} not found: run `make build` first",
            args.elector.display()
        );
    }
    let logs = tempfile::Builder::new().prefix("elector-demo-").tempdir()?;
    let etcd = tokio::task::spawn_blocking(EtcdProcess::start_new).await??;
    let endpoint = etcd.endpoint();
    let (ttl, delay) = if args.fast {
        ("3s", "2.8s")
    } else {
        ("10s", "8.1s")
    };
    println!(
        "elector demo: etcd {endpoint} (from PATH), key {KEY}, 3 replicas, lease TTL {ttl}, \
         activation delay {delay}, node round {:.1}s",
        round.as_secs_f64()
    );
    println!("  elector logs: {}", logs.path().display());
    let mut demo = Demo {
        origin: Instant::now(),
        replicas: Vec::new(),
        lines: Vec::new(),
    };
    for name in NAMES {
        let options = StandInOptions {
            start_active: false,
            round,
            ready: true,
        };
        let started = Instant::now();
        let node = StandIn::start("127.0.0.1:0".parse()?, "127.0.0.1:0".parse()?, options).await?;
        let log = logs.path().join(format!("elector-{name}.log"));
        let elector = spawn_elector(&args, &endpoint, &node, name, &log)?;
        demo.replicas.push(Replica {
            name,
            node: Some(node),
            final_history: None,
            started,
            elector: Some(elector),
        });
    }
    demo.say("started 3 stand-in nodes (standby) and 3 electors (Go-style flags)");

    let first = demo.wait_for_active(None).await?;
    let first_name = demo.replicas[first].name;
    demo.say(format!(
        "node {first_name} active: elected on a cold start (waits the activation delay)"
    ));
    // `etcdctl elect -l` keeps listening: it prints the leader's key, then its value.
    let mut listen = etcd.spawn_etcdctl(&["elect", "-l", KEY])?;
    let _key = listen.next_line(Duration::from_secs(10))?;
    let value = listen.next_line(Duration::from_secs(10))?;
    listen.kill();
    demo.say(format!(
        "etcdctl elect -l {KEY} says the leader is: {}",
        value.trim()
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A crashed host: elector and node die together.
    let killed_at = demo.at();
    {
        let replica = &mut demo.replicas[first];
        if let Some(child) = replica.elector.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        replica.elector = None;
        if let Some(node) = replica.node.take() {
            let mut history = node.state().history;
            history.push((node.state().now, false));
            replica.final_history = Some(history);
            node.shutdown().await;
        }
    }
    demo.say(format!(
        "kill -9 elector {first_name} and its node (a crashed host)"
    ));
    let second = demo.wait_for_active(Some(first)).await?;
    let second_name = demo.replicas[second].name;
    let failover = demo.at() - killed_at;
    demo.say(format!(
        "node {second_name} active: failover took {:.2}s (lease TTL + etcd expiry sweep + activation delay)",
        failover.as_secs_f64()
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;

    let term_at = demo.at();
    if let Some(child) = demo.replicas[second].elector.as_ref() {
        signal(child, libc::SIGTERM);
    }
    demo.say(format!("SIGTERM to elector {second_name} (clean handover)"));
    let third = demo.wait_for_active(Some(second)).await?;
    let third_name = demo.replicas[third].name;
    let active_at = demo.last_change(third, true).unwrap_or_else(|| demo.at());
    let standby_at = demo.last_change(second, false).unwrap_or(active_at);
    demo.say(format!(
        "node {third_name} active: {:.2}s after SIGTERM; node {second_name} went standby {:.2}s after SIGTERM (its round), gap with no active node {:.3}s",
        (active_at.saturating_sub(term_at)).as_secs_f64(),
        (standby_at.saturating_sub(term_at)).as_secs_f64(),
        active_at.saturating_sub(standby_at).as_secs_f64()
    ));
    let exit = match demo.replicas[second].elector.as_mut() {
        Some(child) => wait_exit(child, Duration::from_secs(15)).await,
        None => None,
    };
    match exit {
        Some(status) => demo.say(format!("elector {second_name} exited: {status}")),
        None => demo.say(format!("elector {second_name} did not exit within 15s")),
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let end = demo.at();
    let histories = demo.histories();
    let overlaps = dual_active(&histories, end);
    println!();
    println!("summary:");
    println!(
        "  crash failover:   {:.2}s  (the Go elector: ~60s, and it leaves the dead leader's node active)",
        failover.as_secs_f64()
    );
    println!(
        "  clean handover:   gap {:.3}s, overlap 0s",
        active_at.saturating_sub(standby_at).as_secs_f64()
    );
    if overlaps.is_empty() {
        println!(
            "  dual-active:      never (3 node histories checked over {:.1}s)",
            end.as_secs_f64()
        );
    } else {
        for o in &overlaps {
            println!(
                "  DUAL-ACTIVE:      nodes {} and {} from {:.3}s to {:.3}s",
                NAMES[o.nodes.0],
                NAMES[o.nodes.1],
                o.from.as_secs_f64(),
                o.until.as_secs_f64()
            );
        }
        bail!(
            "two nodes were active at once; elector logs are in {}",
            logs.keep().display()
        );
    }
    drop(demo);
    drop(etcd);
    Ok(())
}

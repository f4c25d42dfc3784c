//! `make demo`: the elector doing its job on this machine, timed.
//!
//! Starts a local etcd (from PATH, loopback, temp dir), three stand-in nodes and three real
//! `elector` processes (a [`ReplicaSet`]); kills the active replica's elector and node (a
//! crashed host), shows the takeover, sends SIGTERM to the new leader (a clean handover), and
//! prints a timeline with the measured times, whether two replicas ever signed the same height
//! and round (the property), and whether two nodes were ever active at once.
//! Everything it started is stopped on the way out, also on failure.

use anyhow::{Result, bail};
use clap::Parser;
use elector_integration::etcd_process::EtcdProcess;
use elector_integration::replica_set::{FlagStyle, Host, ReplicaSet};
use elector_integration::standin::StandInOptions;
use elector_integration::timing_profile::TimingProfile;
use elector_model::history::dual_active;
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
    /// Proposers in the stand-in nodes' chain: 1 makes our delegate propose every slot (the
    /// worst case for double signs), 24 is mainnet
    #[arg(long, default_value_t = 1)]
    delegates: u64,
}

const NAMES: [&str; 3] = ["a", "b", "c"];
const KEY: &str = "/iotex-demo";
/// Bound on every wait for something the elector should do.
const WAIT: Duration = Duration::from_secs(60);
/// Bound on the SIGTERM'd elector's exit (its own bound is 8.9 s at the default timing).
const EXIT_WAIT: Duration = Duration::from_secs(15);

/// The timeline: what happened when, on the demo's clock.
struct Timeline {
    origin: Instant,
}

impl Timeline {
    fn at(&self) -> Duration {
        self.origin.elapsed()
    }

    fn say(&self, text: impl AsRef<str>) {
        println!("  t={:>6.2}s  {}", self.at().as_secs_f64(), text.as_ref());
    }
}

/// A duration as the header prints it: `3s`, `2.8s`.
fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}s")
    } else {
        format!("{s:.1}s")
    }
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
    let profile = if args.fast {
        TimingProfile::Fast
    } else {
        TimingProfile::Default
    };
    if !args.elector.exists() {
        bail!(
            "{} not found: run `make build` first",
            args.elector.display()
        );
    }
    let logs = tempfile::Builder::new().prefix("elector-demo-").tempdir()?;
    let etcd = tokio::task::spawn_blocking(EtcdProcess::start_new).await??;
    let timing = profile.timing();
    println!(
        "elector demo: etcd {} (from PATH), key {KEY}, 3 replicas, lease TTL {}, activation \
         delay {}, node slots {} ({} delegate(s))",
        etcd.endpoint(),
        seconds(timing.lease_ttl),
        seconds(timing.activation_delay),
        seconds(timing.block_interval),
        args.delegates,
    );
    println!("  elector logs: {}", logs.path().display());
    let timeline = Timeline {
        origin: Instant::now(),
    };
    let host = Host {
        origin: timeline.origin,
        etcd: etcd.endpoint(),
        elector: args.elector.clone(),
        logs: logs.path().to_owned(),
    };
    // The Go elector's flags, to show that they work as they were.
    let mut set = ReplicaSet::new(host, KEY.to_owned(), profile, FlagStyle::Go);
    set.set_node_options(StandInOptions {
        block_interval: timing.block_interval,
        delegates: args.delegates,
        ..StandInOptions::default()
    });
    let outcome = scenario(&mut set, &etcd, &timeline).await;
    let double_signs = set.double_signs();
    let signatures: usize = set.signatures().iter().map(Vec::len).sum();
    let (overlap_report, end) = (dual_active(&set.histories(), timeline.at()), timeline.at());
    set.shutdown().await;
    let (failover, gap) = outcome?;

    println!();
    println!("summary:");
    println!(
        "  crash failover:   {:.2}s  (the Go elector: ~60s, and it leaves the dead leader's node active)",
        failover.as_secs_f64()
    );
    println!(
        "  clean handover:   gap {:.3}s, overlap 0s",
        gap.as_secs_f64()
    );
    if double_signs.is_empty() {
        println!("  double signs:     none ({signatures} signatures of 3 nodes judged)");
    } else {
        for d in &double_signs {
            println!("  DOUBLE SIGN:      {d}");
        }
        bail!(
            "two replicas signed the same height and round; elector logs are in {}",
            logs.keep().display()
        );
    }
    if overlap_report.is_empty() {
        println!(
            "  dual-active:      never (3 node histories checked over {:.1}s)",
            end.as_secs_f64()
        );
    } else {
        for o in &overlap_report {
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
    Ok(())
}

/// Election, crash failover, clean handover, each on the timeline; the failover time and the
/// handover's gap with no active node. (Each replica has one node life: the set's node
/// histories are in replica order, as the summary's names assume.)
async fn scenario(
    set: &mut ReplicaSet,
    etcd: &EtcdProcess,
    timeline: &Timeline,
) -> Result<(Duration, Duration)> {
    for name in NAMES {
        let i = set.add_replica(name.to_owned(), false).await?;
        set.start_elector(i)?;
    }
    timeline.say("started 3 stand-in nodes (standby) and 3 electors (Go-style flags)");

    let (first, _) = set.wait_active(None, WAIT).await?;
    let first_name = NAMES[first];
    timeline.say(format!(
        "node {first_name} active: elected on a cold start (waits the activation delay)"
    ));
    // `etcdctl elect -l` keeps listening: it prints the leader's key, then its value.
    let mut listen = etcd.spawn_etcdctl(&["elect", "-l", KEY])?;
    let _key = listen.next_line(Duration::from_secs(10))?;
    let value = listen.next_line(Duration::from_secs(10))?;
    listen.kill();
    timeline.say(format!(
        "etcdctl elect -l {KEY} says the leader is: {}",
        value.trim()
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A crashed host: elector and node die together.
    let killed_at = set.crash(first).await?;
    timeline.say(format!(
        "kill -9 elector {first_name} and its node (a crashed host)"
    ));
    let (second, _) = set.wait_active(Some(first), WAIT).await?;
    let second_name = NAMES[second];
    let failover = killed_at.elapsed();
    timeline.say(format!(
        "node {second_name} active: failover took {:.2}s (lease TTL + etcd expiry sweep + activation delay)",
        failover.as_secs_f64()
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;

    let term_at = Instant::now();
    set.signal_elector(second, libc::SIGTERM)?;
    timeline.say(format!("SIGTERM to elector {second_name} (clean handover)"));
    let (third, active_at) = set.wait_active(Some(second), WAIT).await?;
    let third_name = NAMES[third];
    let standby_at = set.went_standby(second, term_at).unwrap_or(active_at);
    let gap = active_at.saturating_duration_since(standby_at);
    timeline.say(format!(
        "node {third_name} active: {:.2}s after SIGTERM; node {second_name} went standby {:.2}s after SIGTERM (the node holds activate=false until its slot in progress ends), gap with no active node {:.3}s",
        active_at.saturating_duration_since(term_at).as_secs_f64(),
        standby_at.saturating_duration_since(term_at).as_secs_f64(),
        gap.as_secs_f64()
    ));
    match set.wait_elector_exit(second, EXIT_WAIT).await {
        Some(status) => timeline.say(format!("elector {second_name} exited: {status}")),
        None => timeline.say(format!(
            "elector {second_name} did not exit within {}s",
            EXIT_WAIT.as_secs()
        )),
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok((failover, gap))
}

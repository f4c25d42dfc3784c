//! `make bench`: failover, handover and footprint of the
//! elector, measured on this machine against a real local etcd and stand-in nodes, side by side
//! with etcd's Go election (`etcdctl elect`, the code the Go elector uses). Writes
//! `docs/benchmarks.md` and the chart `docs/benchmarks.svg`.
//!
//! Phases (each can be chosen with `--phases`):
//! - `idle`: etcd's own CPU with no client, for reference;
//! - `crash-default`, `crash-fast`: kill -9 of the active replica's elector and node (a
//!   crashed host), time until the other node is active, at the default timing and with the
//!   fast (7 s lease) profile. Many two-replica clusters on distinct keys run at once;
//! - `elector-crash-default`, `elector-crash-fast`: kill -9 of the leader's elector alone, its
//!   node and host alive, then either the elector restarted after 1 s or `elector
//!   force-standby` at once, both with `--state-dir` (rule `end_dead_term`): time until the
//!   other node is active, the gap and the overlap;
//! - `baseline`: the same with two `etcdctl elect` candidates, each with a wrapper that
//!   activates its node when etcdctl prints that it leads, and never demotes (the Go elector's
//!   behaviour);
//! - `handover`: SIGTERM to the leader's elector, `elector handover`, and the leader's node
//!   turning unready: the gap with no active node and the overlap (`dual_active`);
//! - `etcd-trouble`: a three-member etcd cluster of its own, three electors given all three
//!   endpoints; each member frozen and killed in turn (demotions and leadership moves), then
//!   the whole cluster frozen for longer and longer (the longest outage ridden through), for
//!   both timing profiles, beside Patroni's documented rule;
//! - `footprint`: RSS and CPU of an idle leader and standby, etcd requests per elector;
//! - `scale`: 100 electors on one etcd: etcd CPU, requests by method and keep-alive latency;
//! - `sim`: the simulation's speed (simulated seconds per wall second), and at the CI seed
//!   set's settings in both builds: release and the tests' (cargo's dev profile);
//! - the criterion results of `cargo bench -p elector-core` are read from `--criterion-dir`.
//!
//! Every child process is killed when its guard is dropped: on success, on error, on panic and
//! on Ctrl-C or SIGTERM (the run is abandoned and the guards dropped).
//!
//! One module per phase; [`cli`] is the command line, [`env`] what every phase shares (the
//! environment, replica sets run at once, the check of the one property), [`proc_stats`] what
//! /proc says, [`etcd`] the shared etcd, [`results`] every outcome as data, and [`report`] (the
//! markdown) and [`chart`] (the SVG) are filled from those results. Every phase runs its
//! replicas as [`elector_integration::replica_set::ReplicaSet`]s. A binary of its own, so that
//! no test binary compiles it.

mod chart;
mod cli;
mod crash;
mod elector_crash;
mod env;
mod etcd;
mod etcd_budget;
mod etcd_trouble;
mod footprint;
mod handover;
mod idle;
mod machine;
mod proc_stats;
mod report;
mod report_recovery;
mod report_slots;
mod results;
mod scale;
mod sim;
mod stats;
mod tally;
mod units;

use clap::Parser;
use cli::Args;

use anyhow::{Context, Result, bail};
use chart::render_svg;
use cli::ALL_PHASES;
use crash::{CrashResult, baseline_phase, crash_phase, failovers};
use elector_crash::elector_crash_phase;
use elector_integration::timing_profile::TimingProfile;
use env::Env;
use etcd::Etcd;
use etcd_trouble::etcd_trouble_phase;
use footprint::footprint_phase;
use handover::{Handover, handover_phase, handover_values};
use idle::idle_phase;
use machine::machine;
use proc_stats::{cpu_time, load_average, machine_ticks, own_cpu, tick_seconds};
use report::render_markdown;
use results::{Results, measured};
use scale::scale_phase;
use sim::{criterion_results, sim_ci_speed, sim_phase};
use stats::summarize;
use std::time::{Instant, SystemTime};
use tally::Tally;

/// Now as the report prints it: `2026-12-07 18:20 UTC`.
fn utc_now() -> String {
    let rfc3339 = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    format!("{} UTC", rfc3339[..16].replace('T', " "))
}

async fn run(args: Args) -> Result<()> {
    if let Some(phases) = &args.phases
        && let Some(unknown) = phases.iter().find(|p| !ALL_PHASES.contains(&p.as_str()))
    {
        bail!(
            "unknown phase {unknown:?}; phases: {}",
            ALL_PHASES.join(", ")
        );
    }
    if let Some(path) = &args.render_from {
        let results = Results::read(path)?;
        write_report(&results, &args)?;
        print_summary(&results);
        return Ok(());
    }
    if !args.elector.exists() {
        bail!(
            "{} not found: run `make build` first",
            args.elector.display()
        );
    }
    let started = Instant::now();
    let (busy0, total0) = machine_ticks();
    let own0 = own_cpu();
    let mut results = Results {
        machine: machine(),
        started_utc: utc_now(),
        load_start: load_average(),
        args: std::env::args().skip(1).collect(),
        settings: args.clone(),
        ..Results::default()
    };
    let m = &results.machine;
    eprintln!(
        "bench: {} cores ({}), {} memory, etcd {}; load average {}",
        m.cores, m.cpu, m.memory, m.etcd, results.load_start
    );
    let logs = tempfile::Builder::new()
        .prefix("elector-bench-")
        .tempdir()?;
    let env = Env {
        origin: Instant::now(),
        etcd: Etcd::start().await?,
        elector: args.elector.clone(),
        logs: logs.path().to_owned(),
    };
    eprintln!(
        "  etcd {} (pid {}); elector logs in {}",
        env.etcd.endpoint(),
        env.etcd.pid,
        logs.path().display()
    );
    let step = |name: &str| eprintln!("  [{:>5.0}s] {name}", started.elapsed().as_secs_f64());

    if args.runs("idle") {
        step("idle: etcd alone");
        results.idle = Some(measured(idle_phase(&env, args.idle_window).await));
    }
    if args.runs("crash-default") {
        step("crash failover, default timing");
        let r = crash_phase(
            &env,
            TimingProfile::Default,
            args.crash_clusters,
            args.crash_rounds,
        )
        .await;
        report_errors("crash-default", &r.errors);
        results.crash_default = Some(r);
    }
    if args.runs("crash-fast") {
        step("crash failover, fast profile");
        let r = crash_phase(
            &env,
            TimingProfile::Fast,
            args.fast_clusters,
            args.fast_rounds,
        )
        .await;
        report_errors("crash-fast", &r.errors);
        results.crash_fast = Some(r);
    }
    for (phase, profile, slot) in [
        (
            "elector-crash-default",
            TimingProfile::Default,
            &mut results.elector_crash_default,
        ),
        (
            "elector-crash-fast",
            TimingProfile::Fast,
            &mut results.elector_crash_fast,
        ),
    ] {
        if args.runs(phase) {
            step(&format!("elector crash on a live host, {phase}"));
            let r = elector_crash_phase(
                &env,
                profile,
                args.elector_crash_clusters,
                args.elector_crash_rounds,
                &logs.path().join("state"),
            )
            .await;
            report_errors(phase, &r.errors);
            *slot = Some(r);
        }
    }
    if args.runs("baseline") {
        step("crash failover, etcdctl elect (Go concurrency.Election)");
        let r = baseline_phase(&env, args.baseline_clusters).await;
        report_errors("baseline", &r.errors);
        results.baseline = Some(r);
    }
    if args.runs("handover") {
        step("clean handover: SIGTERM, elector handover, unready leader");
        let r = handover_phase(&env, args.handover_clusters, args.handover_rounds).await;
        report_errors("handover", &r.errors);
        results.handover = Some(r);
    }
    if args.runs("etcd-trouble") {
        for profile in [TimingProfile::Default, TimingProfile::Fast] {
            step(&format!(
                "etcd trouble: a three-member cluster, {} profile",
                profile.name()
            ));
            let dir = logs.path().join(format!("etcd-trouble-{}", profile.name()));
            let r = etcd_trouble_phase(env.host(), profile, &dir).await;
            if let Some(e) = &r.error {
                eprintln!("  etcd-trouble: {e}");
            }
            results.etcd_trouble.push(r);
        }
    }
    if args.runs("footprint") {
        step("footprint: one idle leader and one standby");
        let r = footprint_phase(&env, args.footprint_window).await;
        if let Err(e) = &r {
            eprintln!("  footprint failed: {e:#}");
        }
        results.footprint = Some(measured(r));
    }
    if args.runs("scale") {
        step("scale: many electors on one etcd");
        let r = scale_phase(&env, args.scale_clusters, args.scale_window).await;
        if let Err(e) = &r {
            eprintln!("  scale failed: {e:#}");
        }
        results.scale = Some(measured(r));
    }
    let etcd_cpu = cpu_time(env.etcd.pid).unwrap_or_default();
    drop(env);
    if args.runs("sim") {
        step("simulation speed");
        let r = sim_phase(&args.sim, args.sim_seeds, &[]).await;
        if let Err(e) = &r {
            eprintln!("  simulation: {e:#}");
        }
        results.sim = Some(measured(r));
        for (sim, slot) in [
            (&args.sim, &mut results.sim_ci_release),
            (&args.sim_test_build, &mut results.sim_ci_test_build),
        ] {
            let r = sim_ci_speed(sim, args.sim_ci_seeds, args.sim_ci_tick_ms).await;
            if let Err(e) = &r {
                eprintln!("  simulation ({}): {e:#}", sim.display());
            }
            *slot = Some(measured(r));
        }
    }
    results.criterion = criterion_results(&args.criterion_dir);

    let (busy1, total1) = machine_ticks();
    let wall = started.elapsed().as_secs_f64();
    results.wall = wall;
    results.load_end = load_average();
    let machine_seconds = tick_seconds(total1 - total0);
    let busy_seconds = tick_seconds(busy1 - busy0);
    let ours = (own_cpu().saturating_sub(own0) + etcd_cpu).as_secs_f64();
    if machine_seconds > 0.0 {
        results.busy_share = busy_seconds / machine_seconds;
        results.others_share = ((busy_seconds - ours) / machine_seconds).max(0.0);
    }
    step("writing the results and the report");
    results.write(&args.results)?;
    write_report(&results, &args)?;
    eprintln!("bench: measured in {wall:.0} s");
    print_summary(&results);
    let failed = [
        &results.crash_default,
        &results.crash_fast,
        &results.baseline,
    ]
    .iter()
    .any(|r| r.as_ref().is_some_and(Tally::failed))
        || results.handover.as_ref().is_some_and(Tally::failed)
        || results
            .etcd_trouble
            .iter()
            .any(|r| r.error.is_some() || !r.check.clean())
        || [&results.elector_crash_default, &results.elector_crash_fast]
            .iter()
            .any(|r| r.as_ref().is_some_and(Tally::failed));
    if failed {
        let kept = logs.keep();
        bail!(
            "some trials failed, overlapped or signed a slot twice; elector logs kept in {}",
            kept.display()
        );
    }
    if args.keep_logs {
        eprintln!("elector logs kept in {}", logs.keep().display());
    }
    Ok(())
}

/// Writes the report and the chart, filled from `results` alone, where `args` says.
fn write_report(results: &Results, args: &Args) -> Result<()> {
    std::fs::write(&args.out, render_markdown(results))
        .with_context(|| format!("writing {}", args.out.display()))?;
    std::fs::write(&args.svg, render_svg(results)?)
        .with_context(|| format!("writing {}", args.svg.display()))?;
    eprintln!(
        "bench: wrote {} and {}",
        args.out.display(),
        args.svg.display()
    );
    Ok(())
}

fn report_errors(phase: &str, errors: &[String]) {
    for e in errors {
        eprintln!("  {phase}: {e}");
    }
}

fn print_summary(r: &Results) {
    let line = |name: &str, c: &Option<CrashResult>| {
        if let Some(s) = c.as_ref().and_then(|c| summarize(&failovers(c))) {
            eprintln!(
                "  {name:<28} n={:<3} median {:>6.2}s  p95 {:>6.2}s  max {:>6.2}s",
                s.n, s.median, s.p95, s.max
            );
        }
    };
    line("crash failover, default", &r.crash_default);
    line("crash failover, fast", &r.crash_fast);
    line("etcdctl elect baseline", &r.baseline);
    if let Some(h) = &r.handover {
        for kind in [Handover::Sigterm, Handover::Command, Handover::Unready] {
            if let Some(s) = summarize(&handover_values(h, kind, |t| t.gap)) {
                eprintln!(
                    "  gap, {:<22} n={:<3} median {:>6.3}s  max {:>6.3}s",
                    format!("{kind:?}"),
                    s.n,
                    s.median,
                    s.max
                );
            }
        }
    }
}

/// Runs the benchmark until it ends or is interrupted: on Ctrl-C or SIGTERM the run is
/// dropped, and every guard kills its process.
pub async fn run_cli(args: Args) -> Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("handling SIGTERM")?;
    tokio::select! {
        outcome = run(args) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        _ = terminate.recv() => Err(anyhow::anyhow!("terminated")),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = run_cli(Args::parse()).await {
        eprintln!("bench failed: {e:#}");
        std::process::exit(1);
    }
}

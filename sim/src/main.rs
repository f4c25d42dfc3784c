//! `elector-sim`: searches many seeds, or replays one with its timeline. See the crate docs.

use clap::Parser;
use elector_sim::checker::verdict::Verdict;
use elector_sim::seed::schedule::{MutationChoice, Options, ProfileChoice};
use elector_sim::seed::search::{replay_command, run_seed, search};
use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "elector-sim",
    about = "Deterministic simulation of the IoTeX elector under faults"
)]
struct Args {
    /// Run this many seeds (from --start), on every core.
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// First seed of the search.
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Replay this one seed instead of searching.
    #[arg(long)]
    seed: Option<u64>,
    /// With --seed: print the schedule and the timeline.
    #[arg(long)]
    trace: bool,
    /// With --trace: also show the electors' failure warnings.
    #[arg(long)]
    verbose: bool,
    /// Timing profile: default (10 s lease), fast (7 s lease), quick-restart (7 s lease, 1 s
    /// restart bound), long-lease (20 s lease; not drawn by mixed) or mixed (drawn per seed:
    /// default, fast or quick-restart).
    #[arg(long, default_value = "mixed")]
    profile: String,
    /// Number of replicas (2 to 5); drawn per seed when not given.
    #[arg(long)]
    replicas: Option<usize>,
    /// A planted bug of the core: none, no-safety-margin, resign-before-standby-confirmed,
    /// resign-when-fence-starts, exclusion-skips-proof, short-activation-delay,
    /// handover-skips-slot-wait, resign-before-key-withdrawal-confirmed,
    /// install-key-before-gate.
    #[arg(long, default_value = "none")]
    mutation: String,
    /// Key custody on every replica (on), on none (off), or drawn per seed (mixed: half).
    #[arg(long, default_value = "mixed")]
    custody: String,
    /// Never break a documented assumption (no drift or restart beyond the bound, no
    /// misconfigured active start, a fence that always succeeds at once).
    #[arg(long)]
    no_break: bool,
    /// turmoil's step in milliseconds: messages between hosts are delivered on these steps
    /// (timers within a host fire on time). 20 runs a search about three times faster than 5.
    #[arg(long, default_value_t = 5)]
    tick_ms: u64,
    /// Shortest run, in simulated seconds.
    #[arg(long, default_value_t = 120)]
    min_duration: u64,
    /// Threads for a search (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Stop the search at the first violation.
    #[arg(long)]
    stop_at_first: bool,
    /// Run every seed twice and report any difference between the two timelines.
    #[arg(long)]
    verify_determinism: bool,
    /// Fail unless at least this percentage of the runs kept every assumption: a guard that
    /// the drawn schedules still leave most runs to the full checks (CI uses 50).
    #[arg(long, value_name = "PERCENT", default_value_t = 0)]
    require_passes: u64,
}

fn options(args: &Args) -> Result<Options, String> {
    let profile = ProfileChoice::parse(&args.profile).ok_or_else(|| {
        format!(
            "unknown profile {:?}: default, fast, quick-restart, long-lease or mixed",
            args.profile
        )
    })?;
    let mutation = MutationChoice::parse(&args.mutation).ok_or_else(|| {
        let names: Vec<&str> = MutationChoice::ALL.iter().map(|m| m.name()).collect();
        format!(
            "unknown mutation {:?}: one of {}",
            args.mutation,
            names.join(", ")
        )
    })?;
    let custody = match args.custody.as_str() {
        "on" => Some(true),
        "off" => Some(false),
        "mixed" => None,
        other => return Err(format!("unknown --custody {other:?}: on, off or mixed")),
    };
    if let Some(r) = args.replicas
        && !(2..=5).contains(&r)
    {
        return Err(format!("--replicas {r}: from 2 to 5"));
    }
    if args.tick_ms == 0 {
        return Err("--tick-ms must be at least 1".into());
    }
    if args.require_passes > 100 {
        return Err(format!(
            "--require-passes {}: a percentage, from 0 to 100",
            args.require_passes
        ));
    }
    Ok(Options {
        profile,
        replicas: args.replicas,
        mutation,
        custody,
        break_assumptions: !args.no_break,
        tick: Duration::from_millis(args.tick_ms),
        min_duration: Duration::from_secs(args.min_duration),
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options = match options(&args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("elector-sim: {message}");
            return ExitCode::from(2);
        }
    };
    if let Some(seed) = args.seed {
        return replay(seed, &options, &args);
    }
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let seeds = args.start..args.start.saturating_add(args.seeds);
    eprintln!(
        "searching seeds {}..{} on {threads} threads (profile {}, tick {} ms, mutation {}, {})",
        seeds.start,
        seeds.end,
        args.profile,
        args.tick_ms,
        options.mutation.name(),
        if options.break_assumptions {
            "assumptions sometimes broken on purpose"
        } else {
            "assumptions always kept"
        }
    );
    let total = args.seeds;
    // A progress line rewritten in place on a terminal; a line every 10 s in a log.
    let terminal = std::io::stderr().is_terminal();
    let every = if terminal {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(10)
    };
    let mut last_print = Instant::now();
    let summary = search(
        &options,
        seeds,
        threads,
        args.verify_determinism,
        |run, so_far| {
            if run.verdict == Verdict::Violation || run.verdict == Verdict::Error {
                if terminal {
                    eprintln!();
                }
                for p in &run.problems {
                    eprintln!("seed {}: {p}", run.seed);
                }
                eprintln!("  replay: {}", replay_command(run.seed, &options));
            }
            if last_print.elapsed() >= every || so_far.runs == total {
                last_print = Instant::now();
                let eta = if so_far.runs > 0 {
                    so_far.wall.as_secs_f64() / so_far.runs as f64 * (total - so_far.runs) as f64
                } else {
                    0.0
                };
                eprint!(
                    "{}{}/{} runs: {} pass, {} assumption broken, {} violations, {} errors; {:.0} sim-s/s; eta {:.0}s   {}",
                    if terminal { "\r" } else { "" },
                    so_far.runs,
                    total,
                    so_far.passes,
                    so_far.broken_runs,
                    so_far.violations.len(),
                    so_far.errors.len(),
                    so_far.speed(),
                    eta,
                    if terminal { "" } else { "\n" }
                );
                let _ = std::io::stderr().flush();
            }
            !(args.stop_at_first && run.verdict == Verdict::Violation)
        },
    );
    if terminal {
        eprintln!();
    }
    print!("{}", summary.report(&options));
    // A search stopped early is judged on the runs it made.
    let too_few_passes = summary.passes * 100 < args.require_passes * summary.runs;
    if too_few_passes {
        eprintln!(
            "elector-sim: only {} of {} runs kept every assumption (--require-passes {})",
            summary.passes, summary.runs, args.require_passes
        );
    }
    if summary.clean() && !too_few_passes {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn replay(seed: u64, options: &Options, args: &Args) -> ExitCode {
    let (outcome, run) = run_seed(seed, options);
    if args.trace {
        print!("{}", outcome.render(args.verbose));
    } else {
        println!("seed {seed}: {:?}", run.verdict);
        for p in &run.problems {
            println!("  {p}");
        }
    }
    println!(
        "simulated {:.0} s in {:.2} s wall ({:.0} simulated s per wall s)",
        run.simulated.as_secs_f64(),
        run.wall.as_secs_f64(),
        run.simulated.as_secs_f64() / run.wall.as_secs_f64().max(1e-9)
    );
    match run.verdict {
        Verdict::Violation | Verdict::Error => {
            println!("replay: {}", replay_command(seed, options));
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}

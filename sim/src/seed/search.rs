//! Many seeds on every core, one simulation per thread at a time, and what they add up to.

use crate::checker::verdict::{BrokenKind, Expectation, Outcome, Verdict};
use crate::seed::render::first_difference;
use crate::seed::run::simulate;
use crate::seed::schedule::{MutationChoice, Options, ProfileChoice, Scenario, secs};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The first ten seeds of a list, comma-separated, with ", ..." when there are more.
fn first_seeds(seeds: &[u64]) -> String {
    let mut list: Vec<String> = seeds.iter().take(10).map(u64::to_string).collect();
    if seeds.len() > 10 {
        list.push("...".into());
    }
    list.join(", ")
}

/// The first twenty failed runs, each problem on its line, then the replay command.
fn write_failures(out: &mut String, runs: &BTreeMap<u64, Vec<String>>, options: &Options) {
    for (seed, problems) in runs.iter().take(20) {
        for p in problems {
            let _ = writeln!(out, "  seed {seed}: {p}");
        }
        let _ = writeln!(out, "    replay: {}", replay_command(*seed, options));
    }
}

/// What the search keeps of one run.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub seed: u64,
    pub profile: &'static str,
    pub replicas: usize,
    pub verdict: Verdict,
    pub problems: Vec<String>,
    pub broken: Vec<BrokenKind>,
    /// Two nodes were active at once (whatever the assumptions).
    pub dual_active: bool,
    /// Two replicas signed one height and round (whatever the assumptions).
    pub double_sign: bool,
    /// ... and no assumption the run broke explains it: a violation.
    pub unexplained_double_sign: bool,
    pub simulated: Duration,
    pub wall: Duration,
    /// From the last heal to one node active for good, when the run got there.
    pub recovery: Option<Duration>,
    pub fences: usize,
    pub unexplained_fences: usize,
    pub fence_outcome: &'static str,
    pub persistent: Option<PersistentSummary>,
    /// `STUCK:` lines the electors logged.
    pub stuck_reports: usize,
    /// The longest a node signed after `activate=false` reached it.
    pub longest_drain: Option<Duration>,
}

/// What the search keeps of a run's persistent fault.
#[derive(Clone, Debug)]
pub struct PersistentSummary {
    pub kind: &'static str,
    pub hit_leader: bool,
    pub expectation: Expectation,
    /// From the fault to another node active for good, when checked and the world was settled
    /// when the fault began.
    pub recovery: Option<Duration>,
    /// The replica's stuck report was checked at some sample.
    pub stuck_checked: bool,
}

impl RunSummary {
    pub fn of(outcome: &Outcome, wall: Duration) -> Self {
        let mut broken: Vec<BrokenKind> = outcome.broken.iter().map(|b| b.kind).collect();
        broken.dedup();
        RunSummary {
            seed: outcome.scenario.seed,
            profile: outcome.scenario.profile.name(),
            replicas: outcome.scenario.replicas(),
            verdict: outcome.verdict(),
            problems: outcome.problems(),
            broken,
            dual_active: !outcome.overlaps.is_empty(),
            double_sign: !outcome.double_signs.is_empty(),
            unexplained_double_sign: !outcome.unexplained_double_signs().is_empty(),
            simulated: outcome.simulated,
            wall,
            recovery: outcome.recovery(),
            fences: outcome.fences,
            unexplained_fences: outcome.unexplained_fences.len(),
            fence_outcome: outcome.scenario.fence.outcome.name(),
            persistent: outcome.persistent.as_ref().map(|p| PersistentSummary {
                kind: outcome
                    .scenario
                    .persistent
                    .as_ref()
                    .map(|f| f.kind.name())
                    .unwrap_or_default(),
                hit_leader: p.victim.hit_leader,
                expectation: p.expectation,
                recovery: p
                    .recovery
                    .filter(|_| p.settled_at_start && p.expectation == Expectation::Active),
                stuck_checked: p.stuck_checked > 0,
            }),
            stuck_reports: outcome.stuck_reports,
            longest_drain: outcome.longest_drain.as_ref().map(|d| d.length),
        }
    }
}

/// Runs under one broken assumption.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BrokenStats {
    pub runs: u64,
    /// Of which had two nodes active at once.
    pub dual_active: Vec<u64>,
    /// Of those, the runs that broke no other assumption.
    pub dual_active_alone: Vec<u64>,
    /// Of which had a height and round signed by two replicas.
    pub double_sign: Vec<u64>,
    /// Of those, the runs that broke no other assumption.
    pub double_sign_alone: Vec<u64>,
}

/// Runs with one kind of persistent fault.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PersistentStats {
    pub runs: u64,
    /// It hit the leader's replica.
    pub hit_leader: u64,
    /// Another node was required active through the checked window.
    pub checked_active: u64,
    /// The replica, unable to give the lead away, was required to report itself stuck while
    /// it led (and did lead at some sample).
    pub checked_stuck: u64,
}

/// The totals of a search.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Persistent faults by kind.
    pub persistent: BTreeMap<&'static str, PersistentStats>,
    /// The slowest recovery from a persistent fault on the leader's replica in a passing run,
    /// by profile: (time from the fault, seed).
    pub slowest_persistent_recovery: BTreeMap<&'static str, (Duration, u64)>,
    /// Runs in which some elector logged `STUCK:`, and the lines in all.
    pub stuck_runs: u64,
    pub stuck_reports: u64,
    /// Runs by fence outcome.
    pub fence_outcomes: BTreeMap<&'static str, u64>,
    pub runs: u64,
    pub passes: u64,
    pub broken_runs: u64,
    pub broken: BTreeMap<BrokenKind, BrokenStats>,
    /// Runs that failed a property under the documented assumptions, by seed.
    pub violations: BTreeMap<u64, Vec<String>>,
    /// Runs in which the simulation itself failed, by seed.
    pub errors: BTreeMap<u64, Vec<String>>,
    /// Seeds with two nodes active at once under the documented assumptions.
    pub dual_active: Vec<u64>,
    /// Seeds with a height and round signed by two replicas, not explained by an assumption
    /// the run broke.
    pub double_signs: Vec<u64>,
    pub simulated: Duration,
    /// Summed over runs (CPU time, near enough).
    pub run_wall: Duration,
    /// Elapsed, for the whole search.
    pub wall: Duration,
    /// The slowest recovery after the last heal in a passing run without a persistent fault,
    /// by profile: (time, seed).
    pub slowest_recovery: BTreeMap<&'static str, (Duration, u64)>,
    pub fences: u64,
    /// Seeds in which a fence ran although the node was healthy (see
    /// `Outcome::unexplained_fences`), whatever the assumptions.
    pub unexplained_fences: Vec<u64>,
    /// The longest a node signed after `activate=false` reached it, in a run that kept every
    /// assumption (a node that restarted active, say, signs on its own): (time, seed).
    pub longest_drain: Option<(Duration, u64)>,
}

impl Summary {
    pub fn add(&mut self, run: &RunSummary) {
        self.runs += 1;
        self.simulated += run.simulated;
        self.run_wall += run.wall;
        self.fences += run.fences as u64;
        if run.unexplained_fences > 0 {
            self.unexplained_fences.push(run.seed);
        }
        if let Some(drain) = run.longest_drain
            && matches!(run.verdict, Verdict::Pass | Verdict::Violation)
            && self
                .longest_drain
                .is_none_or(|(longest, _)| drain > longest)
        {
            self.longest_drain = Some((drain, run.seed));
        }
        *self.fence_outcomes.entry(run.fence_outcome).or_default() += 1;
        if run.stuck_reports > 0 {
            self.stuck_runs += 1;
            self.stuck_reports += run.stuck_reports as u64;
        }
        if let Some(p) = &run.persistent {
            let stats = self.persistent.entry(p.kind).or_default();
            stats.runs += 1;
            stats.hit_leader += u64::from(p.hit_leader);
            stats.checked_active += u64::from(p.expectation == Expectation::Active);
            stats.checked_stuck += u64::from(p.stuck_checked);
            if run.verdict == Verdict::Pass
                && let Some(recovery) = p.recovery
            {
                let slowest = self
                    .slowest_persistent_recovery
                    .entry(run.profile)
                    .or_insert((recovery, run.seed));
                if recovery > slowest.0 {
                    *slowest = (recovery, run.seed);
                }
            }
        }
        match run.verdict {
            Verdict::Pass => self.passes += 1,
            Verdict::AssumptionBroken => {
                self.broken_runs += 1;
                for &kind in &run.broken {
                    let stats = self.broken.entry(kind).or_default();
                    stats.runs += 1;
                    if run.dual_active {
                        stats.dual_active.push(run.seed);
                        if run.broken.len() == 1 {
                            stats.dual_active_alone.push(run.seed);
                        }
                    }
                    if run.double_sign {
                        stats.double_sign.push(run.seed);
                        if run.broken.len() == 1 {
                            stats.double_sign_alone.push(run.seed);
                        }
                    }
                }
            }
            Verdict::Violation => {
                self.violations.insert(run.seed, run.problems.clone());
                if run.dual_active {
                    self.dual_active.push(run.seed);
                }
                if run.unexplained_double_sign {
                    self.double_signs.push(run.seed);
                }
            }
            Verdict::Error => {
                self.errors.insert(run.seed, run.problems.clone());
            }
        }
        // Compared with the liveness bound after the last heal: runs without a persistent
        // fault (those have their own deadline and their own line).
        if run.verdict == Verdict::Pass
            && run.persistent.is_none()
            && let Some(recovery) = run.recovery
        {
            let slowest = self
                .slowest_recovery
                .entry(run.profile)
                .or_insert((recovery, run.seed));
            if recovery > slowest.0 {
                *slowest = (recovery, run.seed);
            }
        }
    }

    /// Simulated seconds per wall second, over the whole search.
    pub fn speed(&self) -> f64 {
        self.simulated.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }

    /// Simulated seconds per second of one core.
    pub fn speed_per_core(&self) -> f64 {
        self.simulated.as_secs_f64() / self.run_wall.as_secs_f64().max(1e-9)
    }

    /// Everything fine under the documented assumptions.
    pub fn clean(&self) -> bool {
        self.violations.is_empty() && self.errors.is_empty()
    }

    /// The summary, for people.
    pub fn report(&self, options: &Options) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "runs:                {}", self.runs);
        let _ = writeln!(out, "passes:              {}", self.passes);
        let _ = writeln!(
            out,
            "assumption broken:   {} (reported apart, not passes)",
            self.broken_runs
        );
        for (kind, stats) in &self.broken {
            let _ = write!(out, "  {:<38} {} runs", kind.name(), stats.runs);
            if stats.double_sign.is_empty() {
                let _ = write!(out, ", none with a double sign");
            } else {
                let _ = write!(
                    out,
                    ", {} with a double sign, {} of them breaking nothing else (seeds {})",
                    stats.double_sign.len(),
                    stats.double_sign_alone.len(),
                    first_seeds(&stats.double_sign),
                );
            }
            if stats.dual_active.is_empty() {
                let _ = writeln!(out, "; none with two active nodes");
            } else {
                let _ = writeln!(
                    out,
                    "; {} with two active nodes, {} of them breaking nothing else (seeds {})",
                    stats.dual_active.len(),
                    stats.dual_active_alone.len(),
                    first_seeds(&stats.dual_active),
                );
            }
        }
        let _ = writeln!(
            out,
            "violations:          {} ({} with a double sign, {} with two active nodes)",
            self.violations.len(),
            self.double_signs.len(),
            self.dual_active.len()
        );
        write_failures(&mut out, &self.violations, options);
        if self.violations.len() > 20 {
            let _ = writeln!(out, "  ... and {} more", self.violations.len() - 20);
        }
        let _ = writeln!(out, "simulation errors:   {}", self.errors.len());
        write_failures(&mut out, &self.errors, options);
        for (profile, (recovery, seed)) in &self.slowest_recovery {
            let bound = crate::checker::check::liveness_bound(&profile_timing(profile));
            let _ = writeln!(
                out,
                "slowest recovery:    {} after the last heal ({profile} profile, seed {seed}; bound {})",
                secs(*recovery),
                secs(bound)
            );
        }
        for (kind, stats) in &self.persistent {
            let _ = writeln!(
                out,
                "persistent {kind:<22} {} runs, {} on the leader's replica: {} checked for another active node, {} for a stuck report",
                stats.runs, stats.hit_leader, stats.checked_active, stats.checked_stuck
            );
        }
        for (profile, (recovery, seed)) in &self.slowest_persistent_recovery {
            let timing = profile_timing(profile);
            let _ = writeln!(
                out,
                "slowest persistent-fault recovery: {} after the fault ({profile} profile, seed {seed}; bound {})",
                secs(*recovery),
                secs(crate::checker::check::persistent_fault_bound(&timing))
            );
        }
        let _ = writeln!(
            out,
            "stuck reports:       {} runs ({} STUCK lines)",
            self.stuck_runs, self.stuck_reports
        );
        let outcomes: Vec<String> = self
            .fence_outcomes
            .iter()
            .map(|(name, runs)| format!("{name} {runs}"))
            .collect();
        let _ = writeln!(out, "fence outcomes:      {}", outcomes.join(", "));
        let _ = writeln!(out, "fences run:          {}", self.fences);
        if let Some((drain, seed)) = self.longest_drain {
            let _ = writeln!(
                out,
                "longest drain:       {} from activate=false reaching a node to its last signature, in a run that kept every assumption (seed {seed}; drain bound {})",
                secs(drain),
                secs(elector_core::Timing::default().drain_bound)
            );
        }
        if !self.unexplained_fences.is_empty() {
            let _ = writeln!(
                out,
                "  with a healthy node (standby not confirmed in time): {} runs (seeds {})",
                self.unexplained_fences.len(),
                first_seeds(&self.unexplained_fences),
            );
        }
        let _ = writeln!(
            out,
            "simulated:           {:.0} s in {:.1} s wall: {:.0} simulated s per wall s ({:.0} per core)",
            self.simulated.as_secs_f64(),
            self.wall.as_secs_f64(),
            self.speed(),
            self.speed_per_core()
        );
        out
    }
}

/// The timing of the profile a summary names.
fn profile_timing(name: &str) -> elector_core::Timing {
    ProfileChoice::parse(name)
        .and_then(ProfileChoice::fixed)
        .unwrap_or(elector_model::timing_profile::TimingProfile::Default)
        .timing()
}

/// The command that replays one seed with a timeline.
pub fn replay_command(seed: u64, options: &Options) -> String {
    let mut cmd = format!("cargo run -p elector-sim --release -- --seed {seed} --trace");
    if options.profile != ProfileChoice::Mixed {
        let _ = write!(cmd, " --profile {}", options.profile.name());
    }
    if let Some(r) = options.replicas {
        let _ = write!(cmd, " --replicas {r}");
    }
    if options.mutation != MutationChoice::None {
        let _ = write!(cmd, " --mutation {}", options.mutation.name());
    }
    if !options.break_assumptions {
        cmd.push_str(" --no-break");
    }
    if options.tick != Options::default().tick {
        let _ = write!(cmd, " --tick-ms {}", options.tick.as_millis());
    }
    if options.min_duration != Options::default().min_duration {
        let _ = write!(cmd, " --min-duration {}", options.min_duration.as_secs());
    }
    cmd
}

/// Runs one seed and summarizes it.
pub fn run_seed(seed: u64, options: &Options) -> (Outcome, RunSummary) {
    let started = Instant::now();
    let outcome = simulate(&Scenario::generate(seed, options));
    let summary = RunSummary::of(&outcome, started.elapsed());
    (outcome, summary)
}

/// Runs one seed twice and compares the two timelines, schedules and verdicts: a difference
/// is a simulation error (the run would not replay).
pub fn run_seed_twice(seed: u64, options: &Options) -> (Outcome, RunSummary) {
    let (first, mut summary) = run_seed(seed, options);
    let (second, _) = run_seed(seed, options);
    if let Some(diff) = first_difference(&first.render(true), &second.render(true)) {
        summary.verdict = Verdict::Error;
        summary.problems.push(format!(
            "NONDETERMINISM: two runs of the seed differ; {diff}"
        ));
    }
    (first, summary)
}

/// Runs `seeds` on `threads` threads. `on_run` sees every run as it finishes (in completion
/// order) with the totals so far; it returns false to stop the search early (runs in
/// progress finish). The returned totals do not depend on the number of threads. With
/// `verify_determinism` every seed runs twice ([`run_seed_twice`]).
pub fn search(
    options: &Options,
    seeds: Range<u64>,
    threads: usize,
    verify_determinism: bool,
    mut on_run: impl FnMut(&RunSummary, &Summary) -> bool,
) -> Summary {
    let started = Instant::now();
    let next = AtomicU64::new(seeds.start);
    let stop = AtomicBool::new(false);
    let mut summary = Summary::default();
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<RunSummary>();
        for _ in 0..threads.max(1) {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        break;
                    }
                    let (_, run) = if verify_determinism {
                        run_seed_twice(seed, options)
                    } else {
                        run_seed(seed, options)
                    };
                    if tx.send(run).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for run in rx {
            summary.add(&run);
            summary.wall = started.elapsed();
            if !on_run(&run, &summary) {
                stop.store(true, Ordering::Relaxed);
            }
        }
    });
    summary.wall = started.elapsed();
    summary.dual_active.sort_unstable();
    summary.double_signs.sort_unstable();
    summary.unexplained_fences.sort_unstable();
    for stats in summary.broken.values_mut() {
        stats.dual_active.sort_unstable();
        stats.dual_active_alone.sort_unstable();
        stats.double_sign.sort_unstable();
        stats.double_sign_alone.sort_unstable();
    }
    summary
}

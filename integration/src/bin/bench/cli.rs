//! The benchmark's command line.

use clap::Parser;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The settings are kept in the results, so that the report written again from them says what
/// the run measured.
#[derive(Parser, Debug, Clone, Serialize, Deserialize)]
#[command(
    about = "Failover, handover and footprint of the elector against a local etcd; \
                   writes docs/benchmarks.json, and docs/benchmarks.md and docs/benchmarks.svg \
                   from it."
)]
pub struct Args {
    /// The elector binary (a release build)
    #[arg(long, default_value = "bin/elector")]
    pub(super) elector: PathBuf,
    /// The simulation binary; its speed is reported if it runs
    #[arg(long, default_value = "target/release/elector-sim")]
    pub(super) sim: PathBuf,
    /// The simulation built like the tests (cargo's dev profile: `cargo build -p elector-sim`);
    /// its speed is reported next to the release build's
    #[arg(long, default_value = "target/debug/elector-sim")]
    pub(super) sim_test_build: PathBuf,
    /// Where `cargo bench -p elector-core` left criterion's results
    #[arg(long, default_value = "target/criterion")]
    pub(super) criterion_dir: PathBuf,
    /// The report to write
    #[arg(long, default_value = "docs/benchmarks.md")]
    pub(super) out: PathBuf,
    /// The chart to write (plain SVG)
    #[arg(long, default_value = "docs/benchmarks.svg")]
    pub(super) svg: PathBuf,
    /// The measured results to write, as JSON: the report and the chart are filled from them
    #[arg(long, default_value = "docs/benchmarks.json")]
    pub(super) results: PathBuf,
    /// Run no phase: write the report and the chart again from the results of an earlier run
    /// (its settings included)
    #[arg(long, value_name = "JSON")]
    pub(super) render_from: Option<PathBuf>,
    /// Phases to run, comma separated: idle, crash-default, crash-fast,
    /// elector-crash-default, elector-crash-fast, baseline, handover, etcd-trouble,
    /// footprint, scale, sim (default: all)
    #[arg(long, value_delimiter = ',')]
    pub(super) phases: Option<Vec<String>>,
    /// Crash failover, default timing: clusters run at once, and trials each
    #[arg(long, default_value_t = 10)]
    pub(super) crash_clusters: usize,
    #[arg(long, default_value_t = 2)]
    pub(super) crash_rounds: usize,
    /// Crash failover, fast profile: clusters run at once, and trials each
    #[arg(long, default_value_t = 10)]
    pub(super) fast_clusters: usize,
    #[arg(long, default_value_t = 2)]
    pub(super) fast_rounds: usize,
    /// Elector crash on a live host (both timing profiles): clusters run at once, and rounds
    /// (one restart and one `force-standby` trial per round)
    #[arg(long, default_value_t = 5)]
    pub(super) elector_crash_clusters: usize,
    #[arg(long, default_value_t = 2)]
    pub(super) elector_crash_rounds: usize,
    /// Baseline (`etcdctl elect` pairs), all at once, one trial each
    #[arg(long, default_value_t = 20)]
    pub(super) baseline_clusters: usize,
    /// Handover: clusters run at once, and rounds (one trial of each kind per round)
    #[arg(long, default_value_t = 5)]
    pub(super) handover_clusters: usize,
    #[arg(long, default_value_t = 2)]
    pub(super) handover_rounds: usize,
    /// Measuring window of the footprint phase (CPU is extrapolated to an hour)
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub(super) footprint_window: Duration,
    /// Scale phase: two-replica clusters on one etcd (100 electors with 50)
    #[arg(long, default_value_t = 50)]
    pub(super) scale_clusters: usize,
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub(super) scale_window: Duration,
    /// etcd alone, before any client, for reference
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub(super) idle_window: Duration,
    /// Seeds of the simulation run
    #[arg(long, default_value_t = 50)]
    pub(super) sim_seeds: u64,
    /// Seeds of each run at the CI seed set's settings, in the release and the test build
    #[arg(long, default_value_t = 10)]
    pub(super) sim_ci_seeds: u64,
    /// The CI seed set's step (the Makefile's SIM_CI_TICK_MS, which `make bench` passes)
    #[arg(long, default_value_t = 10)]
    pub(super) sim_ci_tick_ms: u64,
    /// Keep the electors' logs even when every trial passed (they are kept anyway when one
    /// failed or two nodes were active at once)
    #[arg(long)]
    pub(super) keep_logs: bool,
}

pub(super) const ALL_PHASES: [&str; 11] = [
    "idle",
    "crash-default",
    "crash-fast",
    "elector-crash-default",
    "elector-crash-fast",
    "baseline",
    "handover",
    "etcd-trouble",
    "footprint",
    "scale",
    "sim",
];

/// The defaults, as a command line without flags gives them.
impl Default for Args {
    fn default() -> Self {
        Args::parse_from(["bench"])
    }
}

impl Args {
    pub(super) fn runs(&self, phase: &str) -> bool {
        self.phases
            .as_ref()
            .is_none_or(|p| p.iter().any(|x| x == phase))
    }
}

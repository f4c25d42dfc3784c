//! The `sim` phase (the simulation's speed) and criterion's results of the decision step.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct SimSpeed {
    /// The simulation's own summary line.
    pub(super) line: String,
    pub(super) per_wall_second: f64,
    pub(super) per_core: Option<f64>,
    pub(super) exit: Option<i32>,
    pub(super) wall: f64,
}

/// Bound on one simulation run of the benchmark.
const SIM_BOUND: Duration = Duration::from_secs(300);

/// The simulation's speed at the CI seed set's settings (`make sim-ci`: both timing profiles
/// drawn per seed, `tick_ms` steps), in one build of `elector-sim`.
pub(super) async fn sim_ci_speed(sim: &Path, seeds: u64, tick_ms: u64) -> Result<SimSpeed> {
    let tick = tick_ms.to_string();
    sim_phase(sim, seeds, &["--profile", "mixed", "--tick-ms", &tick]).await
}

/// Runs the simulation binary for `seeds` seeds with `extra` flags and reads its speed line.
pub(super) async fn sim_phase(sim: &Path, seeds: u64, extra: &[&str]) -> Result<SimSpeed> {
    if !sim.exists() {
        bail!("{} does not exist", sim.display());
    }
    let started = Instant::now();
    let command = tokio::process::Command::new(sim)
        .arg("--seeds")
        .arg(seeds.to_string())
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(SIM_BOUND, command)
        .await
        .with_context(|| format!("the simulation did not finish within {SIM_BOUND:?}"))??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    // "simulated: 6000 s in 4.2 s wall: 1428 simulated s per wall s (714 per core)"
    let line = stdout
        .lines()
        .find(|l| l.contains("simulated s per wall s"))
        .with_context(|| {
            format!(
                "no speed line in the simulation's output ({}): {}",
                output.status,
                stdout.lines().last().unwrap_or("")
            )
        })?
        .trim()
        .to_owned();
    let number_before = |marker: &str| -> Option<f64> {
        let head = line.split(marker).next()?;
        head.split_whitespace()
            .last()?
            .trim_start_matches('(')
            .parse()
            .ok()
    };
    Ok(SimSpeed {
        per_wall_second: number_before("simulated s per wall s").context("parsing the speed")?,
        per_core: number_before("per core"),
        line: line.clone(),
        exit: output.status.code(),
        wall: started.elapsed().as_secs_f64(),
    })
}

/// Criterion's median estimates (ns) for the decision-step benchmarks, by name.
pub(super) fn criterion_results(dir: &Path) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir.join("decision")) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path().join("new").join("estimates.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        if let Some(ns) = json["median"]["point_estimate"].as_f64() {
            out.insert(entry.file_name().to_string_lossy().into_owned(), ns);
        }
    }
    out
}

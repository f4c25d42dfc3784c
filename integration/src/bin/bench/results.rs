//! Every phase's outcome as data: written as JSON beside the report (`--results`), and read
//! back by `--render-from` to write the report and the chart again without running a phase.
//! The report and the chart are filled from this and from nothing else.

use crate::cli::Args;
use crate::crash::CrashResult;
use crate::elector_crash::ElectorCrashResult;
use crate::etcd::EtcdWindow;
use crate::etcd_trouble::TroubleResult;
use crate::footprint::Footprint;
use crate::handover::HandoverResult;
use crate::machine::Machine;
use crate::scale::Scale;
use crate::sim::SimSpeed;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A phase that measures one thing, or the reason it could not (the error's whole chain).
pub(super) type Measured<T> = std::result::Result<T, String>;

/// A phase's outcome as the results keep it.
pub(super) fn measured<T>(outcome: Result<T>) -> Measured<T> {
    outcome.map_err(|e| format!("{e:#}"))
}

#[derive(Default, Serialize, Deserialize)]
pub(super) struct Results {
    /// The benchmark's settings for this run (phases, cluster counts, windows, binaries).
    pub(super) settings: Args,
    /// The command line as given.
    pub(super) args: Vec<String>,
    pub(super) machine: Machine,
    pub(super) started_utc: String,
    pub(super) wall: f64,
    pub(super) load_start: String,
    pub(super) load_end: String,
    pub(super) busy_share: f64,
    pub(super) others_share: f64,
    pub(super) idle: Option<Measured<EtcdWindow>>,
    pub(super) crash_default: Option<CrashResult>,
    pub(super) crash_fast: Option<CrashResult>,
    pub(super) elector_crash_default: Option<ElectorCrashResult>,
    pub(super) elector_crash_fast: Option<ElectorCrashResult>,
    pub(super) baseline: Option<CrashResult>,
    pub(super) handover: Option<HandoverResult>,
    /// The etcd-trouble phase, one result per timing profile.
    pub(super) etcd_trouble: Vec<TroubleResult>,
    pub(super) footprint: Option<Measured<Footprint>>,
    pub(super) scale: Option<Measured<Scale>>,
    pub(super) sim: Option<Measured<SimSpeed>>,
    /// The simulation's speed at the CI seed set's settings: the release and the test build.
    pub(super) sim_ci_release: Option<Measured<SimSpeed>>,
    pub(super) sim_ci_test_build: Option<Measured<SimSpeed>>,
    pub(super) criterion: BTreeMap<String, f64>,
}

impl Results {
    pub(super) fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).context("encoding the results")?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
    }

    pub(super) fn read(path: &Path) -> Result<Results> {
        let json =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&json).with_context(|| {
            format!(
                "{}: not the results of this version of the benchmark",
                path.display()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::render_svg;
    use crate::crash::CrashTrial;
    use crate::etcd_trouble::{MemberTrouble, Outage, Trouble};
    use crate::handover::{Handover, HandoverTrial};
    use crate::report::render_markdown;
    use crate::tally::Tally;
    use elector_integration::timing_profile::TimingProfile;
    use std::time::Duration;

    /// A run with trials, an etcd-trouble result, a failed phase and criterion numbers.
    fn a_run() -> Results {
        let crash = Tally {
            trials: vec![
                CrashTrial {
                    failover: 14.2,
                    expiry: Some(10.1),
                },
                CrashTrial {
                    failover: 15.0,
                    expiry: None,
                },
            ],
            clusters: 1,
            rounds: 2,
            wall: Duration::from_secs(40),
            ..Tally::default()
        };
        let handover = Tally {
            trials: vec![HandoverTrial {
                kind: Handover::Command,
                takeover: 3.1,
                gap: 0.04,
                standby: 3.0,
                exit: Some(0),
            }],
            clusters: 1,
            rounds: 1,
            errors: vec!["set 0: no leader within 90 s".to_owned()],
            ..Tally::default()
        };
        Results {
            started_utc: "2026-12-07 20:00 UTC".to_owned(),
            wall: 100.0,
            crash_default: Some(crash),
            handover: Some(handover),
            etcd_trouble: vec![TroubleResult {
                profile: TimingProfile::Fast,
                members: vec![MemberTrouble {
                    member: "member-0".to_owned(),
                    raft_leader: true,
                    trouble: Trouble::Freeze,
                    held: 9.0,
                    demotions: 1,
                    by_etcd: 1,
                    moves: 1,
                }],
                outages: vec![Outage {
                    length: 4.0,
                    demoted: false,
                }],
                check: Default::default(),
                wall: Duration::from_secs(60),
                error: None,
            }],
            idle: Some(Err("etcd /metrics: connection refused".to_owned())),
            criterion: BTreeMap::from([("decision step".to_owned(), 1.5e-6)]),
            ..Results::default()
        }
    }

    #[test]
    fn the_report_written_again_from_the_results_is_the_same() {
        let run = a_run();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        run.write(&path).unwrap();
        let again = Results::read(&path).unwrap();
        assert_eq!(render_markdown(&again), render_markdown(&run));
        assert_eq!(render_svg(&again).unwrap(), render_svg(&run).unwrap());
        assert_eq!(again.etcd_trouble[0].profile, TimingProfile::Fast);
    }

    #[test]
    fn results_of_another_shape_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.json");
        std::fs::write(&path, r#"{"machine": 3}"#).unwrap();
        let error = format!("{:#}", Results::read(&path).err().unwrap());
        assert!(error.contains("old.json"), "{error}");
        assert!(error.contains("not the results"), "{error}");
    }
}

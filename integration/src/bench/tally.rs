//! What the trial phases (crash, baseline, elector crash, handover) share: their replica sets
//! run at once, each adding its trials, and the phase adds up trials, errors and the
//! dual-active check of every set in one [`Tally`].

use super::{Env, SETTLE};
use crate::replica_set::ReplicaSet;
use crate::timing_profile::TimingProfile;
use anyhow::Result;
use std::time::{Duration, Instant};

/// A phase's trials over all its replica sets, and what went wrong in them.
#[derive(Clone, Debug)]
pub(super) struct Tally<T> {
    pub(super) trials: Vec<T>,
    /// Replica sets run at once.
    pub(super) clusters: usize,
    /// Rounds of trials in each set.
    pub(super) rounds: usize,
    /// Total time two nodes of one set were active at once (zero unless something is wrong).
    pub(super) overlap: Duration,
    /// Node histories the dual-active check read.
    pub(super) histories: usize,
    pub(super) wall: Duration,
    /// One line per replica set that failed; its trials before the failure still count.
    pub(super) errors: Vec<String>,
}

impl<T> Default for Tally<T> {
    fn default() -> Self {
        Tally {
            trials: Vec::new(),
            clusters: 0,
            rounds: 0,
            overlap: Duration::ZERO,
            histories: 0,
            wall: Duration::ZERO,
            errors: Vec::new(),
        }
    }
}

impl Env {
    /// Runs `scenario` on `clusters` replica sets at once (set `c` on `/bench/<name>-<c>`),
    /// each adding its trials to the vector it is given, and adds them all up.
    pub(super) async fn tally<T>(
        &self,
        name: &str,
        profile: TimingProfile,
        clusters: usize,
        rounds: usize,
        scenario: impl AsyncFn(&mut ReplicaSet, usize, &mut Vec<T>) -> Result<()>,
    ) -> Tally<T> {
        let started = Instant::now();
        let scenario = &scenario;
        let outcomes = self
            .in_parallel(name, profile, clusters, async |set, c| {
                let mut trials = Vec::new();
                let outcome = scenario(set, c, &mut trials).await;
                (trials, outcome)
            })
            .await;
        let mut tally = Tally {
            clusters,
            rounds,
            wall: started.elapsed(),
            ..Tally::default()
        };
        for ((mut trials, outcome), (overlap, histories)) in outcomes {
            tally.trials.append(&mut trials);
            if let Err(e) = outcome {
                tally.errors.push(format!("{e:#}"));
            }
            tally.overlap += overlap;
            tally.histories += histories;
        }
        tally
    }
}

impl<T> Tally<T> {
    /// Whether a replica set failed or two nodes were ever active at once: the run fails.
    pub(super) fn failed(&self) -> bool {
        !self.errors.is_empty() || !self.overlap.is_zero()
    }

    /// How the phase ran and what the dual-active check found, for the report: "3 clusters at
    /// once, 4 rounds, 120 s wall, dual-active never (12 node histories checked)".
    pub(super) fn summary(&self) -> String {
        let failed = if self.errors.is_empty() {
            String::new()
        } else {
            format!(
                "; **{} cluster(s) failed**: {}",
                self.errors.len(),
                self.errors.join("; ")
            )
        };
        format!(
            "{} clusters at once, {} round(s), {:.0} s wall, dual-active {} ({} node histories \
             checked){failed}",
            self.clusters,
            self.rounds,
            self.wall.as_secs_f64(),
            fmt_overlap(self.overlap),
            self.histories,
        )
    }
}

/// A total dual-active time as the report shows it: `never`, or the time in bold.
pub(super) fn fmt_overlap(overlap: Duration) -> String {
    if overlap.is_zero() {
        "never".to_owned()
    } else {
        format!("**{:.3} s**", overlap.as_secs_f64())
    }
}

/// Two replicas, `a` and `b`, each with an elector (no status server); waits for the first
/// election and returns the leader.
pub(super) async fn elect_one_of_two(set: &mut ReplicaSet) -> Result<usize> {
    for value in ["a", "b"] {
        let i = set.add_replica(value.to_owned(), false).await?;
        set.start_elector(i)?;
    }
    Ok(set.wait_active(None, SETTLE).await?.0)
}

//! What the trial phases (crash, baseline, elector crash, handover) share: their replica sets
//! run at once, each adding its trials, and the phase adds up trials, errors and the
//! dual-active check of every set in one [`Tally`].

use super::env::{Env, SETTLE, SetCheck};
use anyhow::Result;
use elector_integration::replica_set::ReplicaSet;
use elector_integration::timing_profile::TimingProfile;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// A phase's trials over all its replica sets, and what went wrong in them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Tally<T> {
    pub(super) trials: Vec<T>,
    /// Replica sets run at once.
    pub(super) clusters: usize,
    /// Rounds of trials in each set.
    pub(super) rounds: usize,
    /// Slots signed twice and time two nodes were active at once, over all sets (zero unless
    /// something is wrong).
    pub(super) check: SetCheck,
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
            check: SetCheck::default(),
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
        for ((mut trials, outcome), check) in outcomes {
            tally.trials.append(&mut trials);
            if let Err(e) = outcome {
                tally.errors.push(format!("{e:#}"));
            }
            tally.check.add(check);
        }
        tally
    }
}

impl<T> Tally<T> {
    /// Whether a replica set failed, a slot was signed twice or two nodes were ever active at
    /// once: the run fails.
    pub(super) fn failed(&self) -> bool {
        !self.errors.is_empty() || !self.check.clean()
    }

    /// How the phase ran and what the checks found, for the report: "3 clusters at once, 4
    /// rounds, 120 s wall, no slot signed twice (96 signatures), dual-active never (12 node
    /// histories)".
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
            "{} clusters at once, {} round(s), {:.0} s wall, {}{failed}",
            self.clusters,
            self.rounds,
            self.wall.as_secs_f64(),
            self.check.describe(),
        )
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

//! The `handover` phase: SIGTERM to the leader's elector, `elector handover`, and the
//! leader's node turning unready; the gap with no active node and the overlap.

use super::crash::jitter;
use super::env::{Env, SETTLE};
use super::stats::signed_seconds;
use super::tally::{Tally, elect_one_of_two};
use anyhow::{Context, Result, bail};
use elector_integration::replica_set::ReplicaSet;
use elector_integration::timing_profile::TimingProfile;
use serde::{Deserialize, Serialize};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(super) enum Handover {
    Sigterm,
    Command,
    Unready,
}

impl Handover {
    pub(super) fn label(self) -> &'static str {
        match self {
            Handover::Sigterm => "SIGTERM to the leader's elector",
            Handover::Command => "`elector handover`",
            Handover::Unready => "leader's node turns unready",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct HandoverTrial {
    pub(super) kind: Handover,
    /// Trigger -> the new node active.
    pub(super) takeover: f64,
    /// The old node inactive -> the new node active (negative would be an overlap).
    pub(super) gap: f64,
    /// The old node inactive, counted from the trigger (its round, the elector's detection).
    pub(super) standby: f64,
    /// Exit code of the SIGTERM'd elector or of `elector handover`.
    pub(super) exit: Option<i32>,
}

/// The handover phase's trials and what went wrong in its replica sets.
pub(super) type HandoverResult = Tally<HandoverTrial>;

/// Bound on an elector's exit after SIGTERM (the elector's own bound is 8.8 s by default).
const EXIT_BOUND: Duration = Duration::from_secs(20);

pub(super) async fn handover_phase(env: &Env, clusters: usize, rounds: usize) -> HandoverResult {
    env.tally(
        "handover",
        TimingProfile::Default,
        clusters,
        rounds,
        async |set, c, trials| handover_cluster(env, set, c, rounds, trials).await,
    )
    .await
}

async fn handover_cluster(
    env: &Env,
    cluster: &mut ReplicaSet,
    c: usize,
    rounds: usize,
    trials: &mut Vec<HandoverTrial>,
) -> Result<()> {
    let mut leader = elect_one_of_two(cluster).await?;
    for round in 0..rounds {
        for kind in [Handover::Sigterm, Handover::Command, Handover::Unready] {
            env.etcd.wait_candidates(cluster.key(), 2, SETTLE).await?;
            tokio::time::sleep(Duration::from_secs(1) + jitter(c, round)).await;
            let (trigger, mut exit) = match kind {
                Handover::Sigterm => {
                    let at = Instant::now();
                    cluster.signal_elector(leader, libc::SIGTERM)?;
                    (at, None)
                }
                Handover::Command => (Instant::now(), None),
                Handover::Unready => {
                    let at = Instant::now();
                    cluster
                        .replica(leader)
                        .node()
                        .context("no node")?
                        .set_ready(false);
                    (at, None)
                }
            };
            let (next, active_at) = if kind == Handover::Command {
                let command = tokio::process::Command::new(&env.elector)
                    .arg("handover")
                    .arg("--etcd")
                    .arg(env.etcd.endpoint())
                    .arg("--key")
                    .arg(cluster.key())
                    .arg("--timeout")
                    .arg("60s")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true)
                    .output();
                let (waited, output) =
                    tokio::join!(cluster.wait_active(Some(leader), SETTLE), async {
                        tokio::time::timeout(Duration::from_secs(75), command).await
                    });
                let output = output
                    .context("`elector handover` did not finish within 75 s")?
                    .context("running `elector handover`")?;
                exit = output.status.code();
                if !output.status.success() {
                    bail!(
                        "`elector handover` failed ({}): {}",
                        output.status,
                        String::from_utf8_lossy(&output.stderr).trim()
                    );
                }
                waited?
            } else {
                cluster.wait_active(Some(leader), SETTLE).await?
            };
            let standby_at = cluster.went_standby(leader, trigger).unwrap_or(active_at);
            match kind {
                Handover::Sigterm => {
                    let status = cluster
                        .wait_elector_exit(leader, EXIT_BOUND)
                        .await
                        .context("the elector did not exit after SIGTERM")?;
                    exit = status.code();
                    // The operator (systemd) starts it again; it becomes the standby.
                    cluster.start_elector(leader)?;
                }
                Handover::Command => {}
                Handover::Unready => {
                    let node = cluster.replica(leader).node().context("no node")?;
                    node.set_ready(true);
                }
            }
            trials.push(HandoverTrial {
                kind,
                takeover: (active_at - trigger).as_secs_f64(),
                gap: signed_seconds(active_at, standby_at),
                standby: (standby_at.saturating_duration_since(trigger)).as_secs_f64(),
                exit,
            });
            leader = next;
        }
    }
    Ok(())
}

pub(super) fn handover_values(
    h: &HandoverResult,
    kind: Handover,
    f: impl Fn(&HandoverTrial) -> f64,
) -> Vec<f64> {
    h.trials.iter().filter(|t| t.kind == kind).map(f).collect()
}

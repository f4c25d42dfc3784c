//! The `elector-crash-default` and `elector-crash-fast` phases: kill -9 of the leader's
//! elector alone, its node and host alive. Either the elector is started again after
//! [`RESTART_AFTER`] with its `--state-dir` (the restarted elector ends its dead term: rule
//! `end_dead_term`), or it stays dead and `elector force-standby` runs at once with the same
//! `--state-dir` (what systemd's `ExecStopPost=` does). Measured: trigger → the next node
//! active, the gap with no active node, and the overlap from the history checker.

use super::crash::jitter;
use super::env::{Env, SETTLE};
use super::stats::{secs, signed_seconds};
use super::tally::{Tally, elect_one_of_two};
use anyhow::{Context, Result, bail};
use elector_integration::host::elector_command;
use elector_integration::replica_set::ReplicaSet;
use elector_integration::timing_profile::TimingProfile;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// How long the crashed elector stays down before it is started again (a supervisor's
/// restart delay, like systemd's `RestartSec=1`).
pub(super) const RESTART_AFTER: Duration = Duration::from_secs(1);

/// Bound on one `elector force-standby` run: its own `--timeout` (10 s) plus etcd calls.
const FORCE_STANDBY_BOUND: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(super) enum Recovery {
    /// The elector is started again after [`RESTART_AFTER`].
    Restart,
    /// Not restarted; `elector force-standby` runs at once (systemd's `ExecStopPost=`).
    ExecStopPost,
}

impl Recovery {
    /// The report's name for it.
    pub(super) fn label(self) -> String {
        match self {
            Recovery::Restart => format!("restart after {}", secs(RESTART_AFTER)),
            Recovery::ExecStopPost => "`force-standby` at once (ExecStopPost)".to_owned(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct ElectorCrashTrial {
    pub(super) recovery: Recovery,
    /// kill -9 → the next node active.
    pub(super) takeover: f64,
    /// The old node inactive → the next node active (negative would be an overlap).
    pub(super) gap: f64,
    /// kill -9 → the old node inactive (its round included).
    pub(super) standby: f64,
}

/// One profile's elector-crash trials and what went wrong in its replica sets.
pub(super) type ElectorCrashResult = Tally<ElectorCrashTrial>;

impl ElectorCrashResult {
    pub(super) fn values(
        &self,
        recovery: Recovery,
        f: impl Fn(&ElectorCrashTrial) -> f64,
    ) -> Vec<f64> {
        self.trials
            .iter()
            .filter(|t| t.recovery == recovery)
            .map(f)
            .collect()
    }
}

/// `clusters` two-replica clusters at once, each `rounds` times both recoveries, every elector
/// with a `--state-dir` under `state_root`.
pub(super) async fn elector_crash_phase(
    env: &Env,
    profile: TimingProfile,
    clusters: usize,
    rounds: usize,
    state_root: &Path,
) -> ElectorCrashResult {
    let name = match profile {
        TimingProfile::Fast => "elector-crash-fast",
        _ => "elector-crash",
    };
    env.tally(name, profile, clusters, rounds, async |set, c, trials| {
        set.set_state_root(state_root.join(format!("{name}-{c}")));
        elector_crash_cluster(env, set, profile, c, rounds, trials).await
    })
    .await
}

async fn elector_crash_cluster(
    env: &Env,
    cluster: &mut ReplicaSet,
    profile: TimingProfile,
    c: usize,
    rounds: usize,
    trials: &mut Vec<ElectorCrashTrial>,
) -> Result<()> {
    let mut leader = elect_one_of_two(cluster).await?;
    for round in 0..rounds {
        for recovery in [Recovery::Restart, Recovery::ExecStopPost] {
            env.etcd.wait_candidates(cluster.key(), 2, SETTLE).await?;
            tokio::time::sleep(Duration::from_secs(2) + jitter(c, round)).await;
            let killed_at = cluster.kill_elector(leader)?;
            let (next, active_at) = match recovery {
                Recovery::Restart => {
                    tokio::time::sleep(RESTART_AFTER).await;
                    cluster.start_elector(leader)?;
                    cluster.wait_active(Some(leader), SETTLE).await?
                }
                Recovery::ExecStopPost => {
                    let (waited, ran) = tokio::join!(
                        cluster.wait_active(Some(leader), SETTLE),
                        force_standby(env, cluster, profile, leader)
                    );
                    ran?;
                    let waited = waited?;
                    // The supervisor starts the elector again; it becomes the standby.
                    cluster.start_elector(leader)?;
                    waited
                }
            };
            let standby_at = cluster
                .went_standby(leader, killed_at)
                .context("the crashed leader's node never went standby")?;
            trials.push(ElectorCrashTrial {
                recovery,
                takeover: (active_at - killed_at).as_secs_f64(),
                gap: signed_seconds(active_at, standby_at),
                standby: standby_at
                    .saturating_duration_since(killed_at)
                    .as_secs_f64(),
            });
            leader = next;
        }
    }
    Ok(())
}

/// `elector force-standby` for replica `i` with its elector's flags, as `ExecStopPost=` runs
/// it; fails unless it confirmed the node standby and ended the dead term.
async fn force_standby(
    env: &Env,
    cluster: &ReplicaSet,
    profile: TimingProfile,
    i: usize,
) -> Result<()> {
    let replica = cluster.replica(i);
    let node = replica.node().context("the replica has no node")?;
    let state_dir = cluster.state_dir(i)?.context("no --state-dir")?;
    let timing = profile.timing();
    let duration = |d: Duration| humantime::format_duration(d).to_string();
    let command = tokio::process::Command::from(elector_command(&env.elector))
        .arg("force-standby")
        .args(["--iotex-admin", &format!("http://{}", node.admin_addr())])
        .args(["--etcd", &env.etcd.endpoint()])
        .args(["--key", cluster.key()])
        .args(["--value", replica.value()])
        .args(["--state-dir", &state_dir.display().to_string()])
        .args(["--node-timeout", &duration(timing.node_timeout)])
        .args([
            "--confirm-poll-interval",
            &duration(timing.confirm_poll_interval),
        ])
        .args(["--etcd-timeout", &duration(timing.etcd_request_timeout)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(FORCE_STANDBY_BOUND, command)
        .await
        .with_context(|| format!("`elector force-standby` ran over {FORCE_STANDBY_BOUND:?}"))?
        .context("running `elector force-standby`")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!(
            "`elector force-standby` failed ({}): {}",
            output.status,
            text.trim()
        );
    }
    // Its own report of rule `end_dead_term` (shell/src/commands/force_standby.rs).
    if !text.contains("ended the crashed elector's term") {
        bail!(
            "`elector force-standby` did not end the dead term: {}",
            text.trim()
        );
    }
    Ok(())
}

//! Crash failover phases: kill -9 of the active replica's candidate and node (a crashed
//! host), time until the other node is active; our elector (`crash-default`, `crash-fast`)
//! and the Go election (`baseline`), added up the same way ([`Env::tally`]).

use super::env::{Env, SETTLE};
use super::etcd::KeyWatch;
use super::tally::{Tally, elect_one_of_two};
use anyhow::Result;
use elector_integration::replica_set::ReplicaSet;
use elector_integration::timing_profile::TimingProfile;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One crash: kill -> the other node active, in seconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct CrashTrial {
    pub(super) failover: f64,
    /// kill -> the killed candidate's key deleted by etcd (lease expired).
    pub(super) expiry: Option<f64>,
}

/// A crash phase: its trials, and what went wrong in its replica sets.
pub(super) type CrashResult = Tally<CrashTrial>;

/// A deterministic spread of kill instants over a keep-alive period, per cluster and round.
pub(super) fn jitter(cluster: usize, round: usize) -> Duration {
    Duration::from_millis(((cluster * 7 + round * 3) % 10) as u64 * 100)
}

/// Crash failover of our elector: `clusters` two-replica clusters at once, `rounds` kills each;
/// after each, the crashed replica comes back (new node, new elector) as the standby.
pub(super) async fn crash_phase(
    env: &Env,
    profile: TimingProfile,
    clusters: usize,
    rounds: usize,
) -> CrashResult {
    let name = if profile == TimingProfile::Fast {
        "crash-fast"
    } else {
        "crash"
    };
    env.tally(name, profile, clusters, rounds, async |set, c, trials| {
        crash_cluster(env, set, c, rounds, trials).await
    })
    .await
}

async fn crash_cluster(
    env: &Env,
    cluster: &mut ReplicaSet,
    c: usize,
    rounds: usize,
    trials: &mut Vec<CrashTrial>,
) -> Result<()> {
    let watch = KeyWatch::start(&env.etcd, cluster.key()).await?;
    let mut leader = elect_one_of_two(cluster).await?;
    for round in 0..rounds {
        env.etcd.wait_candidates(cluster.key(), 2, SETTLE).await?;
        tokio::time::sleep(Duration::from_secs(2) + jitter(c, round)).await;
        let value = cluster.replica(leader).value().to_owned();
        let killed_at = cluster.crash(leader).await?;
        let (next, active_at) = cluster.wait_active(Some(leader), SETTLE).await?;
        trials.push(CrashTrial {
            failover: (active_at - killed_at).as_secs_f64(),
            expiry: watch
                .deleted(&value, killed_at)
                .map(|at| (at - killed_at).as_secs_f64()),
        });
        // The host comes back: a new node and elector, standby behind the new leader.
        if round + 1 < rounds {
            cluster.start_node(leader).await?;
            cluster.start_elector(leader)?;
        }
        leader = next;
    }
    Ok(())
}

/// Bound on the Go election's failover: its session TTL is 60 s.
const BASELINE_SETTLE: Duration = Duration::from_secs(150);

/// How often etcd's Go client renews a 60 s session's lease (`clientv3`: TTL / 3).
const GO_KEEPALIVE_PERIOD: Duration = Duration::from_secs(20);

/// The Go election: `clusters` pairs of `etcdctl elect` candidates at once, one kill each.
pub(super) async fn baseline_phase(env: &Env, clusters: usize) -> CrashResult {
    env.tally(
        "go",
        TimingProfile::Default,
        clusters,
        1,
        async |set, c, trials| {
            // etcd's Go client renews its session every TTL/3 = 20 s: spread the kills over
            // that period, as ours are spread over our keep-alive period.
            let spread = GO_KEEPALIVE_PERIOD.mul_f64(c as f64 / clusters as f64);
            trials.push(baseline_cluster(env, set, spread).await?);
            Ok(())
        },
    )
    .await
}

async fn baseline_cluster(
    env: &Env,
    cluster: &mut ReplicaSet,
    spread: Duration,
) -> Result<CrashTrial> {
    let watch = KeyWatch::start(&env.etcd, cluster.key()).await?;
    let a = cluster.add_replica("a".into(), false).await?;
    cluster.start_go_candidate(a, &env.etcd.process)?;
    let (leader, _) = cluster.wait_active(None, SETTLE).await?;
    let b = cluster.add_replica("b".into(), false).await?;
    cluster.start_go_candidate(b, &env.etcd.process)?;
    env.etcd.wait_candidates(cluster.key(), 2, SETTLE).await?;
    tokio::time::sleep(Duration::from_secs(2) + spread).await;
    let killed_at = cluster.crash(leader).await?;
    let (_, active_at) = cluster.wait_active(Some(leader), BASELINE_SETTLE).await?;
    Ok(CrashTrial {
        failover: (active_at - killed_at).as_secs_f64(),
        expiry: watch
            .deleted("a", killed_at)
            .map(|at| (at - killed_at).as_secs_f64()),
    })
}

pub(super) fn failovers(c: &CrashResult) -> Vec<f64> {
    c.trials.iter().map(|t| t.failover).collect()
}

pub(super) fn expiries(c: &CrashResult) -> Vec<f64> {
    c.trials.iter().filter_map(|t| t.expiry).collect()
}

pub(super) fn after_expiry(c: &CrashResult) -> Vec<f64> {
    c.trials
        .iter()
        .filter_map(|t| t.expiry.map(|e| t.failover - e))
        .collect()
}

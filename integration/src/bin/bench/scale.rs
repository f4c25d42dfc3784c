//! The `scale` phase: many electors on one etcd; etcd's CPU and the keep-alive latency.

use super::env::{Env, SETTLE, SetCheck};
use super::etcd::{EtcdWindow, etcd_counters};
use super::footprint::keepalive_counters;
use super::proc_stats::{cpu_time, resident_bytes};
use super::stats::summarize;
use anyhow::Result;
use elector_integration::replica_set::{FlagStyle, Replica, ReplicaSet};
use elector_integration::timing_profile::TimingProfile;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Scale {
    pub(super) electors: usize,
    pub(super) clusters: usize,
    pub(super) etcd: EtcdWindow,
    /// Mean keep-alive round trip over the window, all electors together (seconds).
    pub(super) keepalive_mean: f64,
    /// Per-elector means: median and worst.
    pub(super) keepalive_median_of_means: f64,
    pub(super) keepalive_worst_mean: f64,
    pub(super) keepalives_per_s: f64,
    pub(super) electors_cpu_share: f64,
    pub(super) startup: f64,
    pub(super) check: SetCheck,
}

pub(super) async fn scale_phase(env: &Env, clusters: usize, window: Duration) -> Result<Scale> {
    let mut all: Vec<ReplicaSet> = (0..clusters)
        .map(|c| {
            ReplicaSet::new(
                env.host(),
                format!("/bench/scale-{c}"),
                TimingProfile::Default,
                FlagStyle::Conventional,
            )
        })
        .collect();
    let outcome = scale_clusters(env, &mut all, window).await;
    for cluster in all {
        cluster.shutdown().await;
    }
    outcome
}

async fn scale_clusters(env: &Env, all: &mut [ReplicaSet], window: Duration) -> Result<Scale> {
    let started = Instant::now();
    for cluster in all.iter_mut() {
        for value in ["a", "b"] {
            let i = cluster.add_replica(value.to_owned(), true).await?;
            cluster.start_elector(i)?;
            // Spread the start-ups a little, as a fleet would be.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let waits = join_all(all.iter().map(|c| c.wait_active(None, SETTLE))).await;
    for w in waits {
        w?;
    }
    for cluster in all.iter() {
        env.etcd.wait_candidates(cluster.key(), 2, SETTLE).await?;
    }
    let startup = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ports: Vec<u16> = all
        .iter()
        .flat_map(|c| c.replicas().iter().filter_map(Replica::status_port))
        .collect();
    let pids: Vec<u32> = all
        .iter()
        .flat_map(|c| c.replicas().iter().filter_map(Replica::elector_pid))
        .collect();
    let read_all = || async {
        let counters = join_all(ports.iter().map(|p| keepalive_counters(*p))).await;
        counters.into_iter().collect::<Result<Vec<_>>>()
    };
    let cpu_all = || -> Result<Duration> { pids.iter().map(|p| cpu_time(*p)).sum() };
    let before = etcd_counters(&env.etcd).await?;
    let ka_before = read_all().await?;
    let cpu_before = cpu_all()?;
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let after = etcd_counters(&env.etcd).await?;
    let ka_after = read_all().await?;
    let cpu_after = cpu_all()?;
    let seconds = t0.elapsed().as_secs_f64();
    let (mut sum, mut count, mut means) = (0.0, 0.0, Vec::new());
    for (b, a) in ka_before.iter().zip(&ka_after) {
        let (ds, dc) = (a.0 - b.0, a.1 - b.1);
        sum += ds;
        count += dc;
        if dc > 0.0 {
            means.push(ds / dc);
        }
    }
    let mut check = SetCheck::default();
    for set in all.iter() {
        check.add(SetCheck::of(set));
    }
    let means_summary = summarize(&means).unwrap_or_default();
    Ok(Scale {
        electors: ports.len(),
        clusters: all.len(),
        etcd: EtcdWindow::of(&before, &after, resident_bytes(env.etcd.pid)?.0),
        keepalive_mean: if count > 0.0 { sum / count } else { 0.0 },
        keepalive_median_of_means: means_summary.median,
        keepalive_worst_mean: means_summary.max,
        keepalives_per_s: count / seconds,
        electors_cpu_share: cpu_after.saturating_sub(cpu_before).as_secs_f64() / seconds,
        startup,
        check,
    })
}

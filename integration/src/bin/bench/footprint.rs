//! The `footprint` phase: RSS and CPU of an idle leader and standby, etcd requests per
//! elector.

use super::env::{Env, SETTLE};
use super::etcd::{EtcdWindow, etcd_counters, metric_total};
use super::proc_stats::{cpu_time, resident_bytes};
use anyhow::{Context, Result, bail};
use elector_integration::host::http_get;
use elector_integration::replica_set::{FlagStyle, ReplicaSet};
use elector_integration::timing_profile::TimingProfile;
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Footprint {
    pub(super) window: f64,
    pub(super) leader_rss: u64,
    pub(super) standby_rss: u64,
    pub(super) leader_hwm: u64,
    pub(super) standby_hwm: u64,
    /// CPU seconds per hour, extrapolated from the window.
    pub(super) leader_cpu_per_hour: f64,
    pub(super) standby_cpu_per_hour: f64,
    pub(super) etcd: EtcdWindow,
    /// Keep-alives per second of the leader and the standby, from their own counters.
    pub(super) leader_keepalives_per_s: f64,
    pub(super) standby_keepalives_per_s: f64,
    pub(super) binary_size: u64,
}

/// An elector's `elector_keepalive_latency_seconds` sum and count.
pub(super) async fn keepalive_counters(port: u16) -> Result<(f64, f64)> {
    let addr: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
    let (status, body) = http_get(addr, "/metrics").await?;
    if status != 200 {
        bail!("elector /metrics answered {status}");
    }
    Ok((
        metric_total(&body, "elector_keepalive_latency_seconds_sum"),
        metric_total(&body, "elector_keepalive_latency_seconds_count"),
    ))
}

pub(super) async fn footprint_phase(env: &Env, window: Duration) -> Result<Footprint> {
    let mut cluster = ReplicaSet::new(
        env.host(),
        "/bench/footprint".into(),
        TimingProfile::Default,
        FlagStyle::Conventional,
    );
    let outcome = footprint_cluster(env, &mut cluster, window).await;
    cluster.shutdown().await;
    outcome
}

async fn footprint_cluster(
    env: &Env,
    cluster: &mut ReplicaSet,
    window: Duration,
) -> Result<Footprint> {
    for value in ["a", "b"] {
        let i = cluster.add_replica(value.to_owned(), true).await?;
        cluster.start_elector(i)?;
    }
    let (leader, _) = cluster.wait_active(None, SETTLE).await?;
    env.etcd.wait_candidates(cluster.key(), 2, SETTLE).await?;
    let standby = 1 - leader;
    // Let start-up work (connections, first reads) pass.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pid = |i: usize| cluster.replica(i).elector_pid().context("no elector");
    let port = |i: usize| cluster.replica(i).status_port().context("no status port");
    let (leader_pid, standby_pid) = (pid(leader)?, pid(standby)?);
    let before = etcd_counters(&env.etcd).await?;
    let cpu_before = (cpu_time(leader_pid)?, cpu_time(standby_pid)?);
    let ka_before = (
        keepalive_counters(port(leader)?).await?,
        keepalive_counters(port(standby)?).await?,
    );
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let after = etcd_counters(&env.etcd).await?;
    let cpu_after = (cpu_time(leader_pid)?, cpu_time(standby_pid)?);
    let ka_after = (
        keepalive_counters(port(leader)?).await?,
        keepalive_counters(port(standby)?).await?,
    );
    let seconds = t0.elapsed().as_secs_f64();
    if cluster.active() != vec![leader] {
        bail!("the leader changed during the footprint window");
    }
    let per_hour =
        |a: Duration, b: Duration| (b.saturating_sub(a)).as_secs_f64() / seconds * 3600.0;
    let (leader_rss, leader_hwm) = resident_bytes(leader_pid)?;
    let (standby_rss, standby_hwm) = resident_bytes(standby_pid)?;
    Ok(Footprint {
        window: seconds,
        leader_rss,
        standby_rss,
        leader_hwm,
        standby_hwm,
        leader_cpu_per_hour: per_hour(cpu_before.0, cpu_after.0),
        standby_cpu_per_hour: per_hour(cpu_before.1, cpu_after.1),
        etcd: EtcdWindow::of(&before, &after, resident_bytes(env.etcd.pid)?.0),
        leader_keepalives_per_s: (ka_after.0.1 - ka_before.0.1) / seconds,
        standby_keepalives_per_s: (ka_after.1.1 - ka_before.1.1) / seconds,
        binary_size: std::fs::metadata(&env.elector)?.len(),
    })
}

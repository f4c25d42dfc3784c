//! The `idle` phase: etcd's own CPU with no client, for reference.

use super::env::Env;
use super::etcd::{EtcdWindow, etcd_counters};
use super::proc_stats::resident_bytes;
use anyhow::Result;
use std::time::Duration;

pub(super) async fn idle_phase(env: &Env, window: Duration) -> Result<EtcdWindow> {
    let before = etcd_counters(&env.etcd).await?;
    tokio::time::sleep(window).await;
    let after = etcd_counters(&env.etcd).await?;
    Ok(EtcdWindow::of(
        &before,
        &after,
        resident_bytes(env.etcd.pid)?.0,
    ))
}

//! The etcd every phase shares: its process, metrics, candidate keys and a watch recording
//! when etcd expired a lease.

use super::proc_stats::{cpu_time, find_pid};
use anyhow::{Context, Result, bail};
use elector_integration::etcd_process::EtcdProcess;
use elector_integration::host::http_get;
use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Prometheus text: the sum of every sample of `name` per value of `label` (all samples under
/// the key "" when `label` is empty).
pub(super) fn metric_by_label(text: &str, name: &str, label: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once('}') {
                Some((labels, value)) => (labels, value),
                None => continue,
            },
            None if rest.starts_with(' ') => ("", rest),
            None => continue,
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let key = labels
            .split(',')
            .find_map(|kv| kv.strip_prefix(label)?.strip_prefix("=\""))
            .map(|v| v.trim_end_matches('"').to_owned())
            .unwrap_or_default();
        let key = if label.is_empty() { String::new() } else { key };
        *out.entry(key).or_insert(0.0) += value;
    }
    out
}

pub(super) fn metric_total(text: &str, name: &str) -> f64 {
    metric_by_label(text, name, "").values().sum()
}

/// The etcd every phase shares, its process id and a client for the benchmark's own reads.
pub(super) struct Etcd {
    pub(super) process: EtcdProcess,
    pub(super) pid: u32,
    pub(super) client: Client,
    pub(super) metrics_addr: SocketAddr,
}

impl Etcd {
    pub(super) async fn start() -> Result<Etcd> {
        let process = tokio::task::spawn_blocking(EtcdProcess::start_new).await??;
        let data_dir = process
            .log_path()
            .parent()
            .context("etcd's directory")?
            .join("data");
        let pid = find_pid(&data_dir.display().to_string())
            .context("finding etcd's process id in /proc")?;
        let endpoint = process.endpoint();
        let client = Client::connect([endpoint.clone()], None)
            .await
            .context("connecting to etcd")?;
        let metrics_addr: SocketAddr = endpoint
            .trim_start_matches("http://")
            .parse()
            .context("etcd's address")?;
        Ok(Etcd {
            process,
            pid,
            client,
            metrics_addr,
        })
    }

    pub(super) fn endpoint(&self) -> String {
        self.process.endpoint()
    }

    pub(super) async fn metrics(&self) -> Result<String> {
        let (status, body) = http_get(self.metrics_addr, "/metrics").await?;
        if status != 200 {
            bail!("etcd /metrics answered {status}");
        }
        Ok(body)
    }

    /// Candidate keys under `<key>/`.
    pub(super) async fn candidates(&self, key: &str) -> Result<i64> {
        let mut client = self.client.clone();
        let response = client
            .get(
                format!("{key}/"),
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await?;
        Ok(response.count())
    }

    pub(super) async fn wait_candidates(
        &self,
        key: &str,
        count: i64,
        within: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if self.candidates(key).await? == count {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{key}: not {count} candidates within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A snapshot of what etcd served: gRPC messages received and RPCs handled, per method.
#[derive(Clone, Debug, Default)]
pub(super) struct EtcdCounters {
    pub(super) received: BTreeMap<String, f64>,
    pub(super) handled: BTreeMap<String, f64>,
    pub(super) cpu: Duration,
    pub(super) at: Option<Instant>,
}

pub(super) async fn etcd_counters(etcd: &Etcd) -> Result<EtcdCounters> {
    let text = etcd.metrics().await?;
    Ok(EtcdCounters {
        received: metric_by_label(&text, "grpc_server_msg_received_total", "grpc_method"),
        handled: metric_by_label(&text, "grpc_server_handled_total", "grpc_method"),
        cpu: cpu_time(etcd.pid)?,
        at: Some(Instant::now()),
    })
}

/// What etcd did between two snapshots.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct EtcdWindow {
    pub(super) seconds: f64,
    pub(super) cpu_share: f64,
    pub(super) received_per_s: BTreeMap<String, f64>,
    pub(super) handled_per_s: f64,
    pub(super) rss: u64,
}

impl EtcdWindow {
    pub(super) fn of(before: &EtcdCounters, after: &EtcdCounters, rss: u64) -> EtcdWindow {
        let seconds = match (before.at, after.at) {
            (Some(a), Some(b)) => (b - a).as_secs_f64().max(1e-3),
            _ => 1.0,
        };
        let delta = |a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>| {
            b.iter()
                .map(|(k, v)| (k.clone(), (v - a.get(k).copied().unwrap_or(0.0)) / seconds))
                .filter(|(_, v)| *v > 0.0)
                .collect::<BTreeMap<_, _>>()
        };
        EtcdWindow {
            seconds,
            cpu_share: (after.cpu.saturating_sub(before.cpu)).as_secs_f64() / seconds,
            received_per_s: delta(&before.received, &after.received),
            handled_per_s: delta(&before.handled, &after.handled).values().sum(),
            rss,
        }
    }

    /// Messages received per second by method, divided among `electors`: "Method 1.00/s, ...".
    pub(super) fn per_method(&self, electors: usize) -> String {
        self.received_per_s
            .iter()
            .map(|(method, v)| format!("{method} {:.2}/s", v / electors.max(1) as f64))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(super) fn received_total(&self) -> f64 {
        self.received_per_s.values().sum()
    }
}

/// Records the deletions of candidate keys under `<key>/` (with the deleted value), to tell
/// when etcd expired a lease.
pub(super) struct KeyWatch {
    pub(super) deletions: Arc<Mutex<Vec<(Instant, String)>>>,
    pub(super) task: tokio::task::JoinHandle<()>,
}

impl KeyWatch {
    pub(super) async fn start(etcd: &Etcd, key: &str) -> Result<KeyWatch> {
        let mut client = etcd.client.clone();
        let mut stream = client
            .watch(
                format!("{key}/"),
                Some(WatchOptions::new().with_prefix().with_prev_key()),
            )
            .await
            .context("watching the election")?;
        let deletions = Arc::new(Mutex::new(Vec::new()));
        let sink = deletions.clone();
        let task = tokio::spawn(async move {
            while let Ok(Some(response)) = stream.message().await {
                let at = Instant::now();
                for event in response.events() {
                    if event.event_type() == EventType::Delete {
                        let value = event
                            .prev_kv()
                            .and_then(|kv| kv.value_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        sink.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((at, value));
                    }
                }
            }
        });
        Ok(KeyWatch { deletions, task })
    }

    /// When the key holding `value` was deleted after `since`.
    pub(super) fn deleted(&self, value: &str, since: Instant) -> Option<Instant> {
        self.deletions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(at, v)| *at >= since && v == value)
            .map(|(at, _)| *at)
    }
}

impl Drop for KeyWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

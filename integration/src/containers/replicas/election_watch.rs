//! [`ElectionWatch`]: a watch on the candidate keys from the host, recording when each key
//! appears and disappears (a lease expiry shows as its key's deletion).

use anyhow::{Result, anyhow, ensure};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What [`ElectionWatch`] saw happen to a candidate key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEvent {
    pub at: Instant,
    pub key: String,
    /// The value written; `None` for a deletion.
    pub value: Option<String>,
}

/// A watch on `<key>/` from the host, recording every candidate key's creation and deletion
/// with the time the event arrived. Stops when dropped.
pub struct ElectionWatch {
    events: Arc<Mutex<Vec<KeyEvent>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ElectionWatch {
    /// Watches through `endpoint` (plain `http://`).
    pub async fn start(endpoint: &str, key: &str) -> Result<ElectionWatch> {
        let prefix = format!("{key}/");
        let mut client = tokio::time::timeout(
            Duration::from_secs(5),
            etcd_client::Client::connect([endpoint], None),
        )
        .await
        .map_err(|_| anyhow!("connecting to {endpoint} timed out"))??;
        let mut stream = tokio::time::timeout(
            Duration::from_secs(5),
            client.watch(
                prefix.as_str(),
                Some(etcd_client::WatchOptions::new().with_prefix()),
            ),
        )
        .await
        .map_err(|_| anyhow!("starting a watch on {endpoint} timed out"))??;
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let task = tokio::spawn(async move {
            while let Ok(Some(response)) = stream.message().await {
                let at = Instant::now();
                for event in response.events() {
                    let Some(kv) = event.kv() else { continue };
                    let value = match event.event_type() {
                        etcd_client::EventType::Put => {
                            Some(String::from_utf8_lossy(kv.value()).into_owned())
                        }
                        etcd_client::EventType::Delete => None,
                    };
                    sink.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(KeyEvent {
                            at,
                            key: String::from_utf8_lossy(kv.key()).into_owned(),
                            value,
                        });
                }
            }
        });
        Ok(ElectionWatch { events, task })
    }

    /// Everything seen so far.
    pub fn events(&self) -> Vec<KeyEvent> {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The latest key created with `value`.
    pub fn key_of(&self, value: &str) -> Option<String> {
        self.events()
            .into_iter()
            .rev()
            .find(|event| event.value.as_deref() == Some(value))
            .map(|event| event.key)
    }

    /// When `key` was deleted (its lease expired or was revoked), if it was.
    pub fn deleted_at(&self, key: &str) -> Option<Instant> {
        self.events()
            .into_iter()
            .find(|event| event.key == key && event.value.is_none())
            .map(|event| event.at)
    }

    /// Waits (bounded) until `key` is deleted; returns when.
    pub async fn wait_deleted(&self, key: &str, within: Duration) -> Result<Instant> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(at) = self.deleted_at(key) {
                return Ok(at);
            }
            ensure!(
                Instant::now() < deadline,
                "{key} was not deleted within {within:?}; events: {:?}",
                self.events()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ElectionWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

//! The election's past as etcd still holds it, for `elector history`: every change of a key
//! under `<key>` (the candidates, and the `<key>.elector/` keys: registry records, handover
//! records and requests, exclusions) from the oldest revision etcd keeps (its compaction point)
//! to now, replayed with one watch. Reads only; bounded in events and in time.

use super::{Election, EtcdError, describe};
use etcd_client::{EventType, GetOptions, WatchOptions};
use std::time::Duration;
use tokio::time::{Instant, timeout};

/// One change of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyChange {
    pub revision: i64,
    /// The whole key.
    pub key: String,
    /// A put (`true`) or a deletion (an expired lease deletes too).
    pub put: bool,
    /// The value written (a put), or the value before (a deletion, when etcd still had it).
    pub value: Vec<u8>,
    /// The revision that created the key (a put).
    pub create_revision: i64,
    /// The lease the key is attached to (a put; 0 for none).
    pub lease: i64,
}

/// What [`Election::history`] read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyHistory {
    /// The first revision read: 1, or the compaction point when etcd compacted before it.
    pub from_revision: i64,
    /// The revision of the read: nothing after it is included.
    pub to_revision: i64,
    /// etcd compacted the revisions before `from_revision`: what happened then is gone.
    pub compacted: bool,
    /// The changes, oldest first.
    pub changes: Vec<KeyChange>,
    /// The event bound was reached: the newest changes are missing.
    pub truncated: bool,
}

/// How long the watch may stay silent before it is asked again for a progress report (etcd
/// answers one only once it has sent every old event).
const PROGRESS_ASK_EVERY: Duration = Duration::from_millis(250);

impl Election {
    /// Replays every change under the election's key, oldest first, up to the revision of
    /// this read, at most `max_changes` of them and within `bound`.
    pub async fn history(
        &self,
        max_changes: usize,
        bound: Duration,
    ) -> Result<KeyHistory, EtcdError> {
        let deadline = Instant::now() + bound;
        let key = self.shared.key.clone();
        let mut kv = self.shared.client.kv_client();
        let count_key = key.clone();
        let head = self
            .bounded(|| format!("read of the revision of {key}"), async move {
                kv.get(count_key, Some(GetOptions::new().with_count_only()))
                    .await
            })
            .await?;
        let to_revision = head.header().map_or(0, |h| h.revision());
        let mut history = KeyHistory {
            from_revision: 1,
            to_revision,
            compacted: false,
            changes: Vec::new(),
            truncated: false,
        };
        // A compaction found on the way moves the start, once or twice at most.
        for _ in 0..3 {
            match self.replay(&mut history, max_changes, deadline).await? {
                Replay::Done => return Ok(history),
                Replay::Compacted(revision) => {
                    history.from_revision = revision;
                    history.compacted = true;
                    history.changes.clear();
                }
            }
        }
        Err(EtcdError::UnexpectedResponse {
            operation: format!("watch of {key}"),
            detail: "etcd kept compacting while the history was read".to_owned(),
        })
    }

    async fn replay(
        &self,
        history: &mut KeyHistory,
        max_changes: usize,
        deadline: Instant,
    ) -> Result<Replay, EtcdError> {
        let key = self.shared.key.clone();
        let operation = || format!("watch of {} for its history", self.shared.key);
        let failed = |error: etcd_client::Error| EtcdError::Failed {
            operation: operation(),
            reason: describe(&error),
        };
        let timed_out = || EtcdError::Timeout {
            operation: operation(),
            timeout: self.shared.request_timeout,
        };
        if history.to_revision < history.from_revision {
            return Ok(Replay::Done);
        }
        let options = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_start_revision(history.from_revision);
        let mut watches = self.shared.client.watch_client();
        let stream = timeout(
            self.shared.request_timeout,
            watches.watch(key.clone(), Some(options)),
        )
        .await
        .map_err(|_| timed_out())?
        .map_err(failed)?;
        let (mut requests, mut answers) = stream.split();
        let own = |k: &str| {
            k.strip_prefix(&key)
                .is_some_and(|rest| rest.starts_with('/') || rest.starts_with(".elector/"))
        };
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(timed_out());
            }
            let wait = PROGRESS_ASK_EVERY.min(deadline - now);
            let answer = match timeout(wait, answers.message()).await {
                Ok(answer) => answer.map_err(failed)?,
                Err(_) => {
                    // Silent: caught up, or still sending. Ask where it is.
                    requests.request_progress().await.map_err(failed)?;
                    continue;
                }
            };
            let Some(answer) = answer else {
                return Err(EtcdError::UnexpectedResponse {
                    operation: operation(),
                    detail: "etcd closed the watch".to_owned(),
                });
            };
            if answer.compact_revision() > 0 {
                return Ok(Replay::Compacted(answer.compact_revision()));
            }
            if answer.canceled() {
                return Err(EtcdError::UnexpectedResponse {
                    operation: operation(),
                    detail: format!("the watch was cancelled: {}", answer.cancel_reason()),
                });
            }
            for event in answer.events() {
                let Some(kv) = event.kv() else { continue };
                if kv.mod_revision() > history.to_revision {
                    return Ok(Replay::Done);
                }
                let name = String::from_utf8_lossy(kv.key()).into_owned();
                if !own(&name) {
                    continue;
                }
                if history.changes.len() >= max_changes {
                    history.truncated = true;
                    return Ok(Replay::Done);
                }
                let put = event.event_type() == EventType::Put;
                let value = match (put, event.prev_kv()) {
                    (true, _) => kv.value().to_vec(),
                    (false, Some(prev)) => prev.value().to_vec(),
                    (false, None) => Vec::new(),
                };
                history.changes.push(KeyChange {
                    revision: kv.mod_revision(),
                    key: name,
                    put,
                    value,
                    create_revision: kv.create_revision(),
                    lease: kv.lease(),
                });
            }
            let at = answer.header().map_or(0, |h| h.revision());
            let last_event = history.changes.last().map_or(0, |c| c.revision);
            if answer.events().is_empty() && !answer.created() && at >= history.to_revision {
                // A progress report: every change up to the read was sent.
                return Ok(Replay::Done);
            }
            if last_event >= history.to_revision {
                return Ok(Replay::Done);
            }
        }
    }
}

/// How one replay ended.
enum Replay {
    Done,
    /// etcd compacted before the start: start again there.
    Compacted(i64),
}

//! The observer: reads the election and reports it to the core, again after every change,
//! watching etcd and re-reading on a period so that a silently stalled watch cannot hide a
//! change for long.

use super::{Election, describe};
use elector_core::{Input, Observation};
use etcd_client::{WatchOptions, WatchResponse};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, timeout};
use tracing::debug;

/// How often [`Election::observe`] re-reads the election and asks the watch for a progress
/// report, whether or not the watch reported anything. A watch on an HTTP/2 connection can
/// stall silently (after a partition, say); this bounds how long a missed change stays hidden.
pub const OBSERVE_RECHECK_PERIOD: Duration = Duration::from_secs(2);

/// How long etcd may stay silent before the elector reports it unreachable
/// (`elector_etcd_connected`), for a request timeout: every elector makes at least one etcd
/// call per [`OBSERVE_RECHECK_PERIOD`] (the election re-read), each bounded by the request
/// timeout, plus a keep-alive or watch call in flight when etcd went away.
pub fn silence_bound(etcd_request_timeout: Duration) -> Duration {
    OBSERVE_RECHECK_PERIOD + 2 * etcd_request_timeout
}

/// A watch that has not answered during this many recheck periods in a row, although it was
/// asked for a progress report at each, is taken for dead and re-established.
const WATCH_SILENT_PERIODS: u32 = 2;

/// First delay between two attempts of [`Election::observe`] after a failure; it doubles up to
/// the timing's retry cap ([`Election::with_retry_max`]).
const OBSERVE_BACKOFF_FIRST: Duration = Duration::from_millis(200);

/// Why one round of [`Election::observe`] ended.
enum ObserveEnd {
    /// The receiver was dropped: stop.
    ReceiverGone,
    /// Reading or watching failed: report, back off, start over.
    Failed(String),
}

impl Election {
    /// Reads the election and reports it to `tx` as [`Input::Observed`], then again after
    /// every change, until `tx`'s receiver is dropped.
    ///
    /// One round: a fresh read, then a watch on everything under `<key>` (the candidates and
    /// the `<key>.elector/` keys; keys of other elections that merely start with `<key>` cost
    /// a needless re-read, nothing more) from the revision after the read, so nothing falls
    /// in between. Every watch event triggers a fresh read, and the read is what is reported,
    /// never the event itself. Every [`OBSERVE_RECHECK_PERIOD`] the election is re-read
    /// anyway (reported only if it changed, revision aside) and the watch is asked for a
    /// progress report; a watch silent for [`WATCH_SILENT_PERIODS`] periods is dead.
    ///
    /// Any error, a compaction, a cancelled or dead watch ends the round: it is reported as
    /// [`Input::ObserveFailed`] and a new round starts after a backoff of 200 ms doubling to
    /// the retry cap, reset once a watch is established. Any other call etcd answers (a
    /// keep-alive, a grant) cuts the wait short to 200 ms and resets the backoff: etcd is
    /// back, and a new leader must see its own key now, not when a grown backoff ends.
    pub async fn observe(&self, tx: mpsc::Sender<Input>) {
        let mut backoff = OBSERVE_BACKOFF_FIRST;
        loop {
            let reason = match self.observe_round(&tx, &mut backoff).await {
                ObserveEnd::ReceiverGone => return,
                ObserveEnd::Failed(reason) => reason,
            };
            // The driver logs the failure it is sent (throttled with etcd's other failures).
            debug!(
                key = %self.shared.key,
                %reason,
                retry_in = ?backoff,
                "observing the election failed"
            );
            if tx.send(Input::ObserveFailed { reason }).await.is_err() {
                return;
            }
            let answered_meanwhile = tokio::select! {
                // Fixed order, so that a simulation seed always gives the same run.
                biased;
                () = tx.closed() => return,
                () = self.shared.answered.notified() => true,
                () = tokio::time::sleep(backoff) => false,
            };
            if answered_meanwhile {
                // At least the first backoff between two rounds, so the loop stays bounded in
                // rate while other calls succeed and this one keeps failing.
                backoff = OBSERVE_BACKOFF_FIRST;
                tokio::select! {
                    biased;
                    () = tx.closed() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
            } else {
                backoff = (backoff * 2).min(self.retry_max());
            }
        }
    }

    async fn observe_round(&self, tx: &mpsc::Sender<Input>, backoff: &mut Duration) -> ObserveEnd {
        let mut last = match self.observe_once().await {
            Ok(observation) => observation,
            Err(error) => return ObserveEnd::Failed(error.to_string()),
        };
        if tx.send(Input::Observed(last.clone())).await.is_err() {
            return ObserveEnd::ReceiverGone;
        }

        let prefix = self.shared.key.clone();
        let operation = || format!("watch of {prefix}");
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(last.revision + 1);
        let mut watches = self.shared.client.watch_client();
        let watch_key = prefix.clone();
        let watch = self
            .bounded(operation, async move {
                watches.watch(watch_key, Some(options)).await
            })
            .await;
        let (mut requests, mut answers) = match watch {
            Ok(stream) => stream.split(),
            Err(error) => return ObserveEnd::Failed(error.to_string()),
        };

        let period = OBSERVE_RECHECK_PERIOD;
        let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        recheck.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut heard_from_watch = false;
        let mut silent_periods = 0;
        loop {
            tokio::select! {
                // Fixed order, so that a simulation seed always gives the same run.
                biased;
                () = tx.closed() => return ObserveEnd::ReceiverGone,
                answer = answers.message() => {
                    heard_from_watch = true;
                    let answer = match answer {
                        Ok(Some(answer)) => answer,
                        Ok(None) => {
                            return ObserveEnd::Failed(format!("etcd ended the {}", operation()));
                        }
                        Err(error) => {
                            let reason = describe(&error);
                            let operation = operation();
                            return ObserveEnd::Failed(format!("etcd {operation} failed: {reason}"));
                        }
                    };
                    if let Some(reason) = watch_ended(&answer) {
                        return ObserveEnd::Failed(format!("etcd {}: {reason}", operation()));
                    }
                    if answer.created() {
                        *backoff = OBSERVE_BACKOFF_FIRST;
                        debug!(key = %prefix, from = last.revision + 1, "watching the election");
                    }
                    if !changes_election(&self.shared.key, &answer) {
                        continue;
                    }
                    last = match self.observe_once().await {
                        Ok(observation) => observation,
                        Err(error) => return ObserveEnd::Failed(error.to_string()),
                    };
                    if tx.send(Input::Observed(last.clone())).await.is_err() {
                        return ObserveEnd::ReceiverGone;
                    }
                }
                _ = recheck.tick() => {
                    if heard_from_watch {
                        silent_periods = 0;
                    } else {
                        silent_periods += 1;
                        if silent_periods >= WATCH_SILENT_PERIODS {
                            return ObserveEnd::Failed(format!(
                                "etcd {} went silent for {}",
                                operation(),
                                humantime::format_duration(period * silent_periods)
                            ));
                        }
                    }
                    heard_from_watch = false;
                    let asked = timeout(self.shared.request_timeout, requests.request_progress());
                    if !matches!(asked.await, Ok(Ok(()))) {
                        let reason = format!("etcd {}: cannot ask for progress", operation());
                        return ObserveEnd::Failed(reason);
                    }
                    let fresh = match self.observe_once().await {
                        Ok(observation) => observation,
                        Err(error) => return ObserveEnd::Failed(error.to_string()),
                    };
                    if !same_election(&fresh, &last) {
                        // Usually the watch event is merely on its way; report now anyway.
                        debug!(
                            key = %prefix,
                            revision = fresh.revision,
                            "a periodic re-read found a change first"
                        );
                        last = fresh;
                        if tx.send(Input::Observed(last.clone())).await.is_err() {
                            return ObserveEnd::ReceiverGone;
                        }
                    }
                }
            }
        }
    }
}

/// Whether a watch answer says the watch is over, and why.
fn watch_ended(answer: &WatchResponse) -> Option<String> {
    if answer.compact_revision() != 0 {
        return Some(format!(
            "history compacted up to revision {}",
            answer.compact_revision()
        ));
    }
    if answer.canceled() {
        let reason = answer.cancel_reason();
        return Some(if reason.is_empty() {
            "cancelled by etcd".to_owned()
        } else {
            format!("cancelled by etcd: {reason}")
        });
    }
    None
}

/// Whether a watch answer may change the election: any event but the writes of registry
/// records, which every elector refreshes and which never count in the election (so they cost
/// no re-read on every other elector).
fn changes_election(key: &str, answer: &WatchResponse) -> bool {
    answer.events().iter().any(|event| {
        event
            .kv()
            .is_none_or(|kv| !super::is_member_key(key, kv.key()))
    })
}

/// Whether two reads show the same election (candidates, record, request, exclusion), whatever their
/// revisions: any write anywhere in etcd moves the revision.
fn same_election(a: &Observation, b: &Observation) -> bool {
    a.candidates == b.candidates
        && a.handover_record == b.handover_record
        && a.handover_request == b.handover_request
        && a.excluded == b.excluded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_default_silence_bound_is_that_of_the_default_request_timeout() {
        assert_eq!(
            silence_bound(Duration::from_secs(1)),
            crate::telemetry::DEFAULT_ETCD_SILENCE_BOUND
        );
    }
}

//! The watchers of one watch stream, and the responses etcd would send them. Pure: the gRPC
//! stream feeds it requests and change notifications and sends what it queues.
//!
//! Follows etcd v3.4.23 `etcdserver/api/v3rpc/watch.go` (`recvLoop`, `sendLoop`),
//! `mvcc/watcher.go` (`watchStream.Watch`) and `mvcc/watchable_store.go` (`watch`, `notify`,
//! `syncWatchers`).

use std::collections::{BTreeMap, VecDeque};

use etcd_client::proto::{PbEvent, PbWatchResponse};

use super::store::{EVENT_DELETE, EVENT_PUT, KeyRange, Store};

/// `clientv3.InvalidWatchID`: the id of responses that belong to no watcher.
pub const INVALID_WATCH_ID: i64 = -1;
/// `mvcc.watchBatchMaxRevs`: a catch-up response carries events of at most this many revisions.
const WATCH_BATCH_MAX_REVS: usize = 1000;
/// `WatchCreateRequest.FilterType`.
const FILTER_NOPUT: i32 = 0;
const FILTER_NODELETE: i32 = 1;

/// The fields of a `WatchCreateRequest` (etcd-client does not export that type by name).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchCreate {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub start_revision: i64,
    pub filters: Vec<i32>,
    pub prev_kv: bool,
    pub watch_id: i64,
}

#[derive(Clone, Debug)]
struct Watcher {
    range: KeyRange,
    /// The first revision not yet delivered (`watcher.minRev`).
    next_rev: i64,
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
    /// Its start revision was compacted: it was told so and gets nothing more.
    compacted: bool,
}

impl Watcher {
    /// The events of `changes` this watcher wants, after its filters (`watcher.send`).
    fn events<'a>(
        &self,
        store: &Store,
        changes: impl IntoIterator<Item = &'a super::store::Change>,
    ) -> Vec<PbEvent> {
        changes
            .into_iter()
            .filter(|c| self.range.contains(&c.key))
            .map(|c| {
                let mut ev = c.event();
                // `sendLoop`: prev_kv is read at `mod_revision - 1`, never for a create, and not
                // once that revision is compacted.
                let is_create = ev
                    .kv
                    .as_ref()
                    .is_some_and(|kv| kv.create_revision == kv.mod_revision);
                if self.prev_kv && !is_create && c.rev > store.compact_revision() {
                    ev.prev_kv = c.prev.clone();
                }
                ev
            })
            .filter(|ev| {
                !(self.no_put && ev.r#type == EVENT_PUT
                    || self.no_delete && ev.r#type == EVENT_DELETE)
            })
            .collect()
    }
}

/// The watchers of one stream.
#[derive(Debug, Default)]
pub struct WatchSet {
    watchers: BTreeMap<i64, Watcher>,
    /// The next automatic watch id; ids start at 0 on each stream.
    next_id: i64,
}

impl WatchSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// A create request: queues the `created` response, then, for a start revision in the past,
    /// the replay of history up to the current revision (or the compaction notice).
    pub fn create(&mut self, store: &Store, req: WatchCreate, out: &mut VecDeque<PbWatchResponse>) {
        // `recvLoop`: an empty key is "\0", the smallest key.
        let key = if req.key.is_empty() { vec![0] } else { req.key };
        let range = KeyRange::new(&key, &req.range_end);
        let ws_rev = store.revision();
        let start = if req.start_revision == 0 {
            ws_rev + 1
        } else {
            req.start_revision
        };

        let created = |watch_id: i64, cancel_reason: Option<&str>| PbWatchResponse {
            header: Some(store.header_at(ws_rev)),
            watch_id,
            created: true,
            canceled: cancel_reason.is_some(),
            cancel_reason: cancel_reason.unwrap_or_default().to_owned(),
            ..PbWatchResponse::default()
        };

        // `watchStream.Watch`.
        if let KeyRange::Span(k, end) = &range
            && k >= end
        {
            out.push_back(created(
                INVALID_WATCH_ID,
                Some("mvcc: watcher range is empty"),
            ));
            return;
        }
        let id = if req.watch_id == 0 {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id += 1;
            self.next_id - 1
        } else if self.watchers.contains_key(&req.watch_id) {
            out.push_back(created(
                INVALID_WATCH_ID,
                Some("mvcc: duplicate watch ID provided on the WatchStream"),
            ));
            return;
        } else {
            req.watch_id
        };

        let mut watcher = Watcher {
            range,
            next_rev: start,
            no_put: req.filters.contains(&FILTER_NOPUT),
            no_delete: req.filters.contains(&FILTER_NODELETE),
            prev_kv: req.prev_kv,
            compacted: false,
        };
        out.push_back(created(id, None));

        // `watchableStore.watch`: a start revision in the past makes an unsynced watcher, which
        // `syncWatchers` catches up in batches with the header at the current revision.
        if start <= ws_rev {
            if start < store.compact_revision() {
                watcher.compacted = true;
                out.push_back(compacted_response(store, id));
            } else {
                let changes = store.changes(start, ws_rev);
                for batch in changes
                    .chunk_by(|a, b| a.rev == b.rev)
                    .collect::<Vec<_>>()
                    .chunks(WATCH_BATCH_MAX_REVS)
                {
                    let events = watcher.events(store, batch.iter().flat_map(|r| r.iter()));
                    if !events.is_empty() {
                        out.push_back(event_response(store, id, ws_rev, events));
                    }
                }
                watcher.next_rev = ws_rev + 1;
            }
        }
        self.watchers.insert(id, watcher);
    }

    /// A cancel request: answered only if the watcher exists.
    pub fn cancel(&mut self, store: &Store, watch_id: i64, out: &mut VecDeque<PbWatchResponse>) {
        if self.watchers.remove(&watch_id).is_some() {
            out.push_back(PbWatchResponse {
                header: Some(store.header()),
                watch_id,
                canceled: true,
                ..PbWatchResponse::default()
            });
        }
    }

    /// A progress request: one response at the current revision, for no watcher in particular.
    pub fn progress(&self, store: &Store, out: &mut VecDeque<PbWatchResponse>) {
        out.push_back(PbWatchResponse {
            header: Some(store.header()),
            watch_id: INVALID_WATCH_ID,
            ..PbWatchResponse::default()
        });
    }

    /// Delivers every revision committed since the last call: one response per watcher and
    /// revision that has matching events, revision by revision (`watchableStore.notify`).
    pub fn poll(&mut self, store: &Store, out: &mut VecDeque<PbWatchResponse>) {
        let now = store.revision();
        let Some(from) = self
            .watchers
            .values()
            .filter(|w| !w.compacted)
            .map(|w| w.next_rev)
            .min()
        else {
            return;
        };
        if from > now {
            return;
        }
        // A watcher that fell behind a compaction is told so, like an unsynced one in etcd.
        for (&id, w) in &mut self.watchers {
            if !w.compacted && w.next_rev < store.compact_revision() {
                w.compacted = true;
                out.push_back(compacted_response(store, id));
            }
        }
        for revision in store.changes(from, now).chunk_by(|a, b| a.rev == b.rev) {
            let Some(rev) = revision.first().map(|c| c.rev) else {
                continue;
            };
            for (&id, w) in &self.watchers {
                if w.compacted || w.next_rev > rev {
                    continue;
                }
                let events = w.events(store, revision);
                if !events.is_empty() {
                    out.push_back(event_response(store, id, rev, events));
                }
            }
        }
        for w in self.watchers.values_mut() {
            w.next_rev = w.next_rev.max(now + 1);
        }
    }
}

fn event_response(store: &Store, watch_id: i64, rev: i64, events: Vec<PbEvent>) -> PbWatchResponse {
    PbWatchResponse {
        header: Some(store.header_at(rev)),
        watch_id,
        events,
        ..PbWatchResponse::default()
    }
}

/// The notice to a watcher whose next revision was compacted (`watcherGroup.choose`). Its
/// header carries revision 0, as in etcd.
fn compacted_response(store: &Store, watch_id: i64) -> PbWatchResponse {
    PbWatchResponse {
        header: Some(store.header_at(0)),
        watch_id,
        compact_revision: store.compact_revision(),
        canceled: true,
        ..PbWatchResponse::default()
    }
}

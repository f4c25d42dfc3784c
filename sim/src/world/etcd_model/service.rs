//! Thin gRPC services (KV, Lease, Watch) over the shared [`Store`]. Every rule lives in the
//! store; these only lock it, read the clock and stream.
//!
//! Streams are driven by the connection that carries them (no task of their own), so crashing
//! the server drops them all.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use etcd_client::proto::{
    PbCompactionRequest, PbCompactionResponse, PbDeleteRequest, PbDeleteResponse, PbKvService,
    PbLeaseGrantRequest, PbLeaseGrantResponse, PbLeaseKeepAliveRequest, PbLeaseKeepAliveResponse,
    PbLeaseLeasesRequest, PbLeaseLeasesResponse, PbLeaseRevokeRequest, PbLeaseRevokeResponse,
    PbLeaseService, PbLeaseTimeToLiveRequest, PbLeaseTimeToLiveResponse, PbPutRequest,
    PbPutResponse, PbRangeRequest, PbRangeResponse, PbRangeStreamResponse, PbTxnRequest,
    PbTxnResponse, PbWatchRequest, PbWatchRequestUnion, PbWatchResponse, PbWatchService,
};
use futures_util::Stream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tonic::{Request, Response, Status, Streaming};

use super::store::{Renewal, Store};
use super::watch::{WatchCreate, WatchSet};

/// The store and the signal that it changed, shared by the services, the sweep and the checker.
pub(crate) struct Shared {
    store: Mutex<Store>,
    /// Bumped after every write, to wake watch streams and keep-alives waiting for a revocation.
    changed: Arc<Changes>,
    /// How many times a server was started over this store.
    boots: AtomicU32,
}

/// A change counter whose waiters wake in the order they started waiting. (tokio's `watch`
/// channel parks each waiter on one of eight `Notify`s picked at random, so the order in which
/// the watch streams woke after a write, and with it the order of everything they sent, and
/// the network latencies turmoil drew for it, differed between two runs of one seed.)
#[derive(Default)]
pub(crate) struct Changes {
    version: AtomicU64,
    notify: Notify,
}

impl Changes {
    fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    fn bump(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// One waiter's view of [`Changes`], like a `watch::Receiver`.
pub(crate) struct ChangesReceiver {
    changes: Arc<Changes>,
    seen: u64,
}

impl ChangesReceiver {
    /// Marks the current version seen.
    pub fn borrow_and_update(&mut self) {
        self.seen = self.changes.version();
    }

    /// Waits for a version not seen yet, and marks it seen.
    pub async fn changed(&mut self) {
        loop {
            let notified = self.changes.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let version = self.changes.version();
            if version != self.seen {
                self.seen = version;
                return;
            }
            notified.await;
        }
    }
}

impl Shared {
    pub fn new(store: Store) -> Self {
        Shared {
            store: Mutex::new(store),
            changed: Arc::new(Changes::default()),
            boots: AtomicU32::new(0),
        }
    }

    /// The store, for reading. No lock is ever held across an `.await`, so a panic elsewhere is
    /// the only way to poison it; the data is still consistent then (every write completes
    /// under the lock), so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the store and wakes everyone waiting for a change.
    pub fn write<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let result = f(&mut self.lock());
        self.changed.bump();
        result
    }

    pub fn subscribe(&self) -> ChangesReceiver {
        ChangesReceiver {
            seen: self.changed.version(),
            changes: self.changed.clone(),
        }
    }

    /// A server starts over this store: a restart unless it is the first.
    pub fn boot(&self, now: Instant) {
        if self.boots.fetch_add(1, Ordering::SeqCst) > 0 {
            self.write(|s| s.on_restart(now));
        }
    }

    pub fn boots(&self) -> u32 {
        self.boots.load(Ordering::SeqCst)
    }

    /// The lessor's loop: revoke expired leases every [`super::store::SWEEP_INTERVAL`], starting
    /// at once (`lessor.go` `runLoop`).
    pub async fn sweep(self: Arc<Self>) {
        loop {
            let now = Instant::now();
            // Only a sweep that revokes something wakes the streams.
            let due = self.lock().has_expired(now);
            if due {
                self.write(|s| s.expire(now));
            }
            tokio::time::sleep(super::store::SWEEP_INTERVAL).await;
        }
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[derive(Clone)]
pub(crate) struct KvService(pub Arc<Shared>);

#[tonic::async_trait]
impl PbKvService for KvService {
    async fn range(
        &self,
        request: Request<PbRangeRequest>,
    ) -> Result<Response<PbRangeResponse>, Status> {
        let resp = self.0.lock().range(request.get_ref())?;
        Ok(Response::new(resp))
    }

    type RangeStreamStream = BoxStream<PbRangeStreamResponse>;

    /// RangeStream is newer than etcd 3.4, which answers as gRPC does for an unknown method.
    async fn range_stream(
        &self,
        _request: Request<PbRangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        Err(Status::unimplemented(
            "unknown method RangeStream for service etcdserverpb.KV",
        ))
    }

    async fn put(&self, request: Request<PbPutRequest>) -> Result<Response<PbPutResponse>, Status> {
        let resp = self.0.write(|s| s.put(request.get_ref()))?;
        Ok(Response::new(resp))
    }

    async fn delete_range(
        &self,
        request: Request<PbDeleteRequest>,
    ) -> Result<Response<PbDeleteResponse>, Status> {
        let resp = self.0.write(|s| s.delete_range(request.get_ref()))?;
        Ok(Response::new(resp))
    }

    async fn txn(&self, request: Request<PbTxnRequest>) -> Result<Response<PbTxnResponse>, Status> {
        let resp = self.0.write(|s| s.txn(request.get_ref()))?;
        Ok(Response::new(resp))
    }

    async fn compact(
        &self,
        request: Request<PbCompactionRequest>,
    ) -> Result<Response<PbCompactionResponse>, Status> {
        let resp = self.0.write(|s| s.compact(request.get_ref()))?;
        Ok(Response::new(resp))
    }
}

#[derive(Clone)]
pub(crate) struct LeaseService(pub Arc<Shared>);

#[tonic::async_trait]
impl PbLeaseService for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<PbLeaseGrantRequest>,
    ) -> Result<Response<PbLeaseGrantResponse>, Status> {
        let req = request.get_ref();
        let now = Instant::now();
        let resp = self.0.write(|s| s.lease_grant(req.ttl, req.id, now))?;
        Ok(Response::new(resp))
    }

    async fn lease_revoke(
        &self,
        request: Request<PbLeaseRevokeRequest>,
    ) -> Result<Response<PbLeaseRevokeResponse>, Status> {
        let resp = self.0.write(|s| s.lease_revoke(request.get_ref().id))?;
        Ok(Response::new(resp))
    }

    type LeaseKeepAliveStream = BoxStream<PbLeaseKeepAliveResponse>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<PbLeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let session = KeepAliveSession {
            changed: self.0.subscribe(),
            shared: self.0.clone(),
            requests: request.into_inner(),
        };
        Ok(Response::new(Box::pin(futures_util::stream::unfold(
            session,
            KeepAliveSession::next,
        ))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<PbLeaseTimeToLiveRequest>,
    ) -> Result<Response<PbLeaseTimeToLiveResponse>, Status> {
        let req = request.get_ref();
        let resp = self
            .0
            .lock()
            .lease_time_to_live(req.id, req.keys, Instant::now());
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _request: Request<PbLeaseLeasesRequest>,
    ) -> Result<Response<PbLeaseLeasesResponse>, Status> {
        Ok(Response::new(self.0.lock().lease_leases()))
    }
}

/// One `LeaseKeepAlive` stream: requests are answered one at a time, in order
/// (`v3rpc/lease.go` `leaseKeepAlive`).
struct KeepAliveSession {
    shared: Arc<Shared>,
    requests: Streaming<PbLeaseKeepAliveRequest>,
    changed: ChangesReceiver,
}

impl KeepAliveSession {
    async fn next(mut self) -> Option<(Result<PbLeaseKeepAliveResponse, Status>, Self)> {
        // The client closing its side, or going away, ends the stream.
        let req = self.requests.message().await.ok()??;
        // The header is taken before renewing, so its revision is never past the renewal.
        let (header, renewal) = {
            let mut store = self.shared.lock();
            (store.header(), store.lease_renew(req.id, Instant::now()))
        };
        let ttl = match renewal {
            Renewal::Renewed(ttl) => ttl,
            Renewal::NotFound => 0,
            Renewal::Expired => {
                self.revoked(req.id).await?;
                0
            }
        };
        let resp = PbLeaseKeepAliveResponse {
            header: Some(header),
            id: req.id,
            ttl,
        };
        Some((Ok(resp), self))
    }

    /// Waits until the sweep has revoked the lease.
    async fn revoked(&mut self, id: i64) -> Option<()> {
        loop {
            self.changed.borrow_and_update();
            if !self.shared.lock().has_lease(id) {
                return Some(());
            }
            self.changed.changed().await;
        }
    }
}

#[derive(Clone)]
pub(crate) struct WatchService(pub Arc<Shared>);

#[tonic::async_trait]
impl PbWatchService for WatchService {
    type WatchStream = BoxStream<PbWatchResponse>;

    async fn watch(
        &self,
        request: Request<Streaming<PbWatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let session = WatchSession {
            changed: self.0.subscribe(),
            shared: self.0.clone(),
            requests: Some(request.into_inner()),
            watchers: WatchSet::new(),
            out: VecDeque::new(),
        };
        Ok(Response::new(Box::pin(futures_util::stream::unfold(
            session,
            WatchSession::next,
        ))))
    }
}

/// One `Watch` stream and its watchers.
struct WatchSession {
    shared: Arc<Shared>,
    /// `None` once the client closed its side; events keep flowing then, as in etcd.
    requests: Option<Streaming<PbWatchRequest>>,
    changed: ChangesReceiver,
    watchers: WatchSet,
    out: VecDeque<PbWatchResponse>,
}

impl WatchSession {
    async fn next(mut self) -> Option<(Result<PbWatchResponse, Status>, Self)> {
        loop {
            if let Some(resp) = self.out.pop_front() {
                return Some((Ok(resp), self));
            }
            let requests = self.requests.as_mut();
            let request = async move {
                match requests {
                    Some(requests) => requests.message().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // Fixed order, so runs are reproducible.
                biased;
                msg = request => match msg {
                    Ok(Some(req)) => self.handle(req),
                    Ok(None) => self.requests = None,
                    // The client went away.
                    Err(_) => return None,
                },
                () = self.changed.changed() => {
                    let store = self.shared.lock();
                    self.watchers.poll(&store, &mut self.out);
                }
            }
        }
    }

    fn handle(&mut self, req: PbWatchRequest) {
        let store = self.shared.lock();
        match req.request_union {
            Some(PbWatchRequestUnion::CreateRequest(c)) => {
                let create = WatchCreate {
                    key: c.key,
                    range_end: c.range_end,
                    start_revision: c.start_revision,
                    filters: c.filters,
                    prev_kv: c.prev_kv,
                    watch_id: c.watch_id,
                };
                self.watchers.create(&store, create, &mut self.out);
            }
            Some(PbWatchRequestUnion::CancelRequest(c)) => {
                self.watchers.cancel(&store, c.watch_id, &mut self.out)
            }
            Some(PbWatchRequestUnion::ProgressRequest(_)) => {
                self.watchers.progress(&store, &mut self.out)
            }
            None => {}
        }
    }
}

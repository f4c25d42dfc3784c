//! A model etcd server for simulations: one etcd 3.4 member, exact on every field the elector
//! reads, deterministic, and running on the simulated clock.
//!
//! - [`Store`] holds the state and every rule (KV, Txn, revisions, leases, the change log), with
//!   time passed in: unit-testable without gRPC.
//! - [`EtcdModel`] shares one store between gRPC servers (KV, Lease, Watch over tonic) and the
//!   checker. The store outlives a server: crash the server (drop its `serve` future, or crash
//!   the turmoil host) and serve again, and etcd restarts over the same data, with every lease
//!   reset as etcd resets them ([`Store::on_restart`]).
//!
//! Only KV, Lease and Watch are served. etcd-client's `Client::connect` and `from_channel` call
//! nothing at construction unless a user and password are set (then `Auth/Authenticate`), so
//! Auth, Cluster and Maintenance are left out: calls to them fail with `Unimplemented`.
//!
//! Time: the store only ever sees `tokio::time::Instant::now()` of the runtime serving it, which
//! turmoil simulates. Instants of different runtimes are not comparable, and a turmoil host
//! restart makes a new runtime; that is harmless because a restart resets every lease expiry,
//! the only instants kept.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use elector_sim::world::etcd_model::EtcdModel;
//! let model = EtcdModel::new(7);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! tokio::spawn({
//!     let model = model.clone();
//!     async move { model.serve_tcp(listener).await }
//! });
//! // ... connect with `etcd_client::Client::connect`, then inspect:
//! let _ = (model.revision(), model.leases(), model.candidates("/election/"));
//! # Ok(()) }
//! ```

mod net;
mod service;
mod store;
mod watch;

use std::sync::Arc;

use elector_core::Candidate;
use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tonic::service::Routes;

pub use net::{turmoil_channel, turmoil_client, turmoil_connector};
pub use store::{
    CLUSTER_ID, ELECTION_TIMEOUT, EVENT_DELETE, EVENT_PUT, EtcdError, KeyRange, LeaseInfo,
    MAX_LEASE_TTL, MAX_TXN_OPS, MEMBER_ID, MIN_LEASE_TTL, REVOKE_LIMIT, Renewal, SWEEP_INTERVAL,
    Store, prefix_end,
};
pub use watch::{INVALID_WATCH_ID, WatchCreate, WatchSet};

use etcd_client::proto::{PbKvServer, PbLeaseServer, PbWatchServer};
use net::Scope;
use service::{KvService, LeaseService, Shared, WatchService};

/// One etcd member: a store that persists across server restarts, and the means to serve it.
/// Clones share the store.
#[derive(Clone)]
pub struct EtcdModel {
    shared: Arc<Shared>,
}

impl EtcdModel {
    /// An empty etcd (revision 1). The seed fixes the lease ids it hands out.
    pub fn new(seed: u64) -> Self {
        EtcdModel {
            shared: Arc::new(Shared::new(Store::new(seed))),
        }
    }

    /// The current store revision.
    pub fn revision(&self) -> i64 {
        self.shared.lock().revision()
    }

    /// Every lease, by id. Expiries are on the clock of the runtime serving the model.
    pub fn leases(&self) -> Vec<store::LeaseInfo> {
        self.shared.lock().leases()
    }

    /// The election under `prefix`, lowest create revision (the leader) first.
    pub fn candidates(&self, prefix: impl AsRef<[u8]>) -> Vec<Candidate> {
        self.shared.lock().candidates(prefix.as_ref())
    }

    /// Reads the store.
    pub fn read<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&self.shared.lock())
    }

    /// Changes the store directly (say, to compact it or to delete a key behind the electors'
    /// backs) and wakes watchers as a client's write would.
    pub fn write<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        self.shared.write(f)
    }

    /// How many servers were started over this store (restarts = boots - 1).
    pub fn boots(&self) -> u32 {
        self.shared.boots()
    }

    /// The gRPC services (KV, Lease, Watch) over this store, without the lease sweep.
    pub fn routes(&self) -> Routes {
        Routes::new(PbKvServer::new(KvService(self.shared.clone())))
            .add_service(PbLeaseServer::new(LeaseService(self.shared.clone())))
            .add_service(PbWatchServer::new(WatchService(self.shared.clone())))
    }

    /// Runs the etcd server on the connections of `incoming` until it ends or fails: gRPC over
    /// HTTP/2 and the lease sweep. Every call after the first is a restart
    /// ([`Store::on_restart`]). Dropping the future crashes the server: every connection,
    /// stream and the sweep stop with it.
    pub async fn serve<S, IO, E>(&self, incoming: S) -> Result<(), E>
    where
        S: Stream<Item = Result<IO, E>>,
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.shared.boot(Instant::now());
        let scope = Scope::new();
        let _crash_on_drop = scope.guard();
        scope.spawn(self.shared.clone().sweep());
        net::serve_routes(&scope, self.routes(), incoming).await
    }

    /// [`Self::serve`] on a real TCP listener.
    pub async fn serve_tcp(&self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        self.serve(net::tcp_incoming(listener)).await
    }

    /// [`Self::serve`] on a turmoil listener, inside a simulated host.
    pub async fn serve_turmoil(&self, listener: turmoil::net::TcpListener) -> std::io::Result<()> {
        self.serve(net::turmoil_incoming(listener)).await
    }
}

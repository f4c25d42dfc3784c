//! The model etcd on a real loopback listener, driven by the real etcd-client: the gRPC surface
//! the elector uses behaves as etcd 3.4 does. These run on the wall clock, so lease tests take a
//! few seconds; every wait is bounded.

use std::time::Duration;

use elector_sim::world::etcd_model::{EtcdModel, MIN_LEASE_TTL};
use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, PutOptions, SortOrder, SortTarget, Txn,
    TxnOp, WatchOptions, WatchResponse, WatchStream,
};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

/// Generous bound for anything that should be immediate.
const QUICK: Duration = Duration::from_secs(5);

/// A running model server; dropping it crashes the server.
struct Server {
    model: EtcdModel,
    task: JoinHandle<std::io::Result<()>>,
    endpoint: String,
}

impl Server {
    async fn start(model: EtcdModel) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn({
            let model = model.clone();
            async move { model.serve_tcp(listener).await }
        });
        Server {
            model,
            task,
            endpoint,
        }
    }

    async fn client(&self) -> Client {
        timeout(QUICK, Client::connect([self.endpoint.as_str()], None))
            .await
            .expect("connect in time")
            .expect("connect")
    }

    /// Kills the server (every connection with it) and starts it again over the same store.
    async fn restart(mut self) -> Server {
        self.task.abort();
        let _ = (&mut self.task).await;
        Server::start(self.model.clone()).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn next(stream: &mut WatchStream) -> WatchResponse {
    timeout(QUICK, stream.message())
        .await
        .expect("a watch response in time")
        .expect("watch ok")
        .expect("stream open")
}

fn grpc_status(err: etcd_client::Error) -> tonic::Status {
    match err {
        etcd_client::Error::GRpcStatus(status) => status,
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

#[tokio::test]
async fn grant_raises_the_ttl_and_keep_alive_answers_the_granted_ttl() {
    let server = Server::start(EtcdModel::new(1)).await;
    let mut client = server.client().await;

    let granted = client.lease_grant(1, None).await.expect("grant");
    assert_eq!(granted.ttl(), MIN_LEASE_TTL);
    assert_eq!(granted.header().expect("header").revision(), 1);
    let id = granted.id();
    assert_eq!(format!("{id:016x}").len(), 16);

    // `keep_alive` sends a first keep-alive itself and checks its answer.
    let (mut keeper, mut stream) = client.lease_keep_alive(id).await.expect("keep-alive");
    for _ in 0..3 {
        keeper.keep_alive().await.expect("send");
        let resp = timeout(QUICK, stream.message())
            .await
            .expect("in time")
            .expect("ok")
            .expect("open");
        assert_eq!((resp.id(), resp.ttl()), (id, MIN_LEASE_TTL));
    }

    let ttl = client.lease_time_to_live(id, None).await.expect("ttl");
    assert_eq!((ttl.ttl(), ttl.granted_ttl()), (1, MIN_LEASE_TTL));

    // Once the lease is gone a keep-alive answers TTL 0 with the requested id.
    client.lease_revoke(id).await.expect("revoke");
    keeper.keep_alive().await.expect("send");
    let resp = timeout(QUICK, stream.message())
        .await
        .expect("in time")
        .expect("ok")
        .expect("open");
    assert_eq!((resp.id(), resp.ttl()), (id, 0));
    // etcd-client turns that first answer into an error when asked to keep an unknown lease.
    assert!(client.lease_keep_alive(id).await.is_err());
}

#[tokio::test]
async fn an_expired_lease_is_revoked_by_the_sweep_with_delete_events() {
    let server = Server::start(EtcdModel::new(2)).await;
    let mut client = server.client().await;

    let mut watch = client
        .watch("/e/", Some(WatchOptions::new().with_prefix()))
        .await
        .expect("watch");
    assert!(next(&mut watch).await.created());

    let granted_at = Instant::now();
    let lease = client.lease_grant(2, None).await.expect("grant").id();
    let opts = || Some(PutOptions::new().with_lease(lease));
    client.put("/e/a", "a", opts()).await.expect("put"); // rev 2
    client.put("/e/b", "b", opts()).await.expect("put"); // rev 3
    client.put("/other", "o", opts()).await.expect("put"); // rev 4
    for _ in 0..2 {
        let resp = next(&mut watch).await;
        assert_eq!(resp.events()[0].event_type(), EventType::Put);
    }

    let resp = timeout(Duration::from_secs(4), watch.message())
        .await
        .expect("deletes within the TTL and a sweep")
        .expect("ok")
        .expect("open");
    let elapsed = granted_at.elapsed();
    // TTL (2 s) plus at most one 500 ms sweep; the wall clock of a busy machine gets another
    // 500 ms. The simulation test checks the bound exactly.
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(3),
        "revoked after {elapsed:?}: expected TTL (2 s) + at most one 500 ms sweep"
    );
    // One revision deletes every key of the lease; only the watched ones are reported.
    assert_eq!(resp.header().expect("header").revision(), 5);
    let deleted: Vec<(&[u8], i64)> = resp
        .events()
        .iter()
        .map(|e| {
            assert_eq!(e.event_type(), EventType::Delete);
            let kv = e.kv().expect("kv");
            (kv.key(), kv.mod_revision())
        })
        .collect();
    assert_eq!(deleted, [(&b"/e/a"[..], 5), (&b"/e/b"[..], 5)]);

    let gone = client.lease_time_to_live(lease, None).await.expect("ttl");
    assert_eq!(gone.ttl(), -1);
    let left = client.get("/", Some(GetOptions::new().with_prefix())).await;
    assert!(left.expect("get").kvs().is_empty());
    assert!(server.model.leases().is_empty());
}

#[tokio::test]
async fn create_revision_zero_lets_only_the_first_candidate_create_its_key() {
    let server = Server::start(EtcdModel::new(3)).await;
    let mut client = server.client().await;
    let create = |value: &str| {
        Txn::new()
            .when([Compare::create_revision("/e/k", CompareOp::Equal, 0)])
            .and_then([TxnOp::put("/e/k", value, None)])
            .or_else([TxnOp::get("/e/k", None)])
    };
    let first = client.txn(create("one")).await.expect("txn");
    assert!(first.succeeded());
    assert_eq!(first.header().expect("header").revision(), 2);
    let second = client.txn(create("two")).await.expect("txn");
    assert!(!second.succeeded());
    assert_eq!(second.header().expect("header").revision(), 2);

    // create_revision == N guards a delete of that very key.
    let guarded = |rev| {
        Txn::new()
            .when([Compare::create_revision("/e/k", CompareOp::Equal, rev)])
            .and_then([
                TxnOp::delete("/e/k", None),
                TxnOp::put("/e/record", "r", None),
            ])
    };
    assert!(!client.txn(guarded(3)).await.expect("txn").succeeded());
    let done = client.txn(guarded(2)).await.expect("txn");
    assert!(done.succeeded());
    assert_eq!(done.header().expect("header").revision(), 3, "one revision");
}

#[tokio::test]
async fn range_by_prefix_sorted_by_create_revision() {
    let server = Server::start(EtcdModel::new(4)).await;
    let mut client = server.client().await;
    for key in ["/e/c", "/e/a", "/e/b", "/f"] {
        client.put(key, key, None).await.expect("put");
    }
    let get = |order, limit| {
        let mut opts = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Create, order);
        if limit > 0 {
            opts = opts.with_limit(limit);
        }
        Some(opts)
    };
    let keys = |r: &etcd_client::GetResponse| -> Vec<String> {
        r.kvs()
            .iter()
            .map(|kv| kv.key_str().expect("utf8").to_owned())
            .collect()
    };
    let asc = client
        .get("/e/", get(SortOrder::Ascend, 0))
        .await
        .expect("get");
    assert_eq!(keys(&asc), ["/e/c", "/e/a", "/e/b"]);
    assert_eq!((asc.count(), asc.more()), (3, false));
    assert_eq!(asc.header().expect("header").revision(), 5);
    let desc = client
        .get("/e/", get(SortOrder::Descend, 0))
        .await
        .expect("get");
    assert_eq!(keys(&desc), ["/e/b", "/e/a", "/e/c"]);
    let first = client
        .get("/e/", get(SortOrder::Ascend, 1))
        .await
        .expect("get");
    assert_eq!(keys(&first), ["/e/c"]);
    assert_eq!((first.count(), first.more()), (3, true));
    let kv = &first.kvs()[0];
    assert_eq!(
        (kv.create_revision(), kv.mod_revision(), kv.version()),
        (2, 2, 1)
    );

    let candidates = server.model.candidates("/e/");
    let order: Vec<i64> = candidates.iter().map(|c| c.id.create_revision).collect();
    assert_eq!(order, [2, 3, 4]);
    assert_eq!(candidates[0].value, "/e/c");
    assert_eq!(server.model.revision(), 5);
}

#[tokio::test]
async fn revoke_deletes_keys_and_unknown_leases_fail_like_etcd() {
    let server = Server::start(EtcdModel::new(5)).await;
    let mut client = server.client().await;
    let lease = client.lease_grant(10, None).await.expect("grant").id();
    client
        .put("/e/k", "v", Some(PutOptions::new().with_lease(lease)))
        .await
        .expect("put");
    let revoked = client.lease_revoke(lease).await.expect("revoke");
    assert_eq!(revoked.header().expect("header").revision(), 3);
    assert!(
        client
            .get("/e/k", None)
            .await
            .expect("get")
            .kvs()
            .is_empty()
    );

    let status = grpc_status(client.lease_revoke(lease).await.expect_err("unknown"));
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(status.message(), "etcdserver: requested lease not found");

    let status = grpc_status(
        client
            .put("/e/k", "v", Some(PutOptions::new().with_lease(lease)))
            .await
            .expect_err("unknown lease"),
    );
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(status.message(), "etcdserver: requested lease not found");

    let txn = Txn::new()
        .when([Compare::create_revision("/e/k", CompareOp::Equal, 0)])
        .and_then([TxnOp::put(
            "/e/k",
            "v",
            Some(PutOptions::new().with_lease(lease)),
        )]);
    let status = grpc_status(client.txn(txn).await.expect_err("unknown lease"));
    assert_eq!(status.code(), tonic::Code::NotFound);

    let ttl = client.lease_time_to_live(lease, None).await.expect("ttl");
    assert_eq!((ttl.id(), ttl.ttl(), ttl.granted_ttl()), (lease, -1, 0));
    assert_eq!(server.model.revision(), 3, "failed writes write nothing");
}

#[tokio::test]
async fn a_restart_resets_leases_to_their_full_ttl_plus_the_election_timeout() {
    let server = Server::start(EtcdModel::new(6)).await;
    let mut client = server.client().await;
    let lease = client.lease_grant(5, None).await.expect("grant").id();
    client
        .put("/e/k", "v", Some(PutOptions::new().with_lease(lease)))
        .await
        .expect("put");
    let mut watch = client.watch("/e/k", None).await.expect("watch");
    assert!(next(&mut watch).await.created());

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = client.lease_time_to_live(lease, None).await.expect("ttl");
    assert!(before.ttl() <= 3, "{} s left", before.ttl());

    let restarted_at = Instant::now();
    let server = server.restart().await;
    // The old connection died with the server.
    let dead = timeout(QUICK, watch.message()).await.expect("in time");
    assert!(
        !matches!(dead, Ok(Some(_))),
        "no more watch responses: {dead:?}"
    );

    let mut client = server.client().await;
    let after = client.lease_time_to_live(lease, None).await.expect("ttl");
    assert_eq!(server.model.boots(), 2);
    // Expires 5 s + 1 s after the restart, truncated to whole seconds: 5 on a quick machine.
    let lower = 6 - restarted_at.elapsed().as_secs_f64().ceil() as i64;
    assert!(
        (lower..=5).contains(&after.ttl()),
        "{} s left after the restart",
        after.ttl()
    );
    assert_eq!(after.granted_ttl(), 5);
    assert_eq!(after.header().expect("header").raft_term(), 3);
    let kv = client.get("/e/k", None).await.expect("get");
    assert_eq!(kv.kvs()[0].lease(), lease);
    assert_eq!(kv.header().expect("header").revision(), 2, "data survives");
}

#[tokio::test]
async fn a_watch_from_a_past_revision_replays_history_then_follows() {
    let server = Server::start(EtcdModel::new(7)).await;
    let mut client = server.client().await;
    client.put("/e/a", "1", None).await.expect("put"); // 2
    client.put("/e/b", "1", None).await.expect("put"); // 3
    client.delete("/e/a", None).await.expect("delete"); // 4

    let mut watch = client
        .watch(
            "/e/",
            Some(WatchOptions::new().with_prefix().with_start_revision(3)),
        )
        .await
        .expect("watch");
    let created = next(&mut watch).await;
    assert!(created.created());
    assert_eq!(created.header().expect("header").revision(), 4);

    let replay = next(&mut watch).await;
    let events: Vec<(EventType, &[u8], i64)> = replay
        .events()
        .iter()
        .map(|e| {
            let kv = e.kv().expect("kv");
            (e.event_type(), kv.key(), kv.mod_revision())
        })
        .collect();
    assert_eq!(
        events,
        [
            (EventType::Put, &b"/e/b"[..], 3),
            (EventType::Delete, &b"/e/a"[..], 4)
        ]
    );

    client.put("/e/c", "1", None).await.expect("put"); // 5
    let live = next(&mut watch).await;
    assert_eq!(live.header().expect("header").revision(), 5);
    assert_eq!(live.events()[0].kv().expect("kv").key(), b"/e/c");

    watch.cancel(live.watch_id()).await.expect("cancel");
    assert!(next(&mut watch).await.canceled());
}

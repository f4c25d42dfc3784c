//! Unit tests of the store and the watch set: etcd 3.4 behaviour, without gRPC or a clock.
//!
//! Independent unit tests, one per etcd 3.4 behaviour the model claims; they share a few
//! helpers at the top.

use std::collections::VecDeque;
use std::time::Duration;

use etcd_client::proto::{
    PbCompactionRequest, PbCompare, PbCompareTarget, PbDeleteRequest, PbPutRequest, PbRangeRequest,
    PbTargetUnion, PbTxnOpRequest, PbTxnOpResponse, PbTxnRequest, PbTxnRequestOp, PbWatchResponse,
};
use tokio::time::Instant;

use super::*;
use crate::world::etcd_model::watch::{WatchCreate, WatchSet};

fn put_req(key: &str, value: &str, lease: i64) -> PbPutRequest {
    PbPutRequest {
        key: key.into(),
        value: value.into(),
        lease,
        ..PbPutRequest::default()
    }
}

fn put(s: &mut Store, key: &str, value: &str, lease: i64) -> i64 {
    let resp = s.put(&put_req(key, value, lease)).expect("put");
    resp.header.expect("header").revision
}

fn del_req(key: &str, range_end: &[u8]) -> PbDeleteRequest {
    PbDeleteRequest {
        key: key.into(),
        range_end: range_end.to_vec(),
        ..PbDeleteRequest::default()
    }
}

fn prefix_range(prefix: &str) -> PbRangeRequest {
    PbRangeRequest {
        key: prefix.into(),
        range_end: prefix_end(prefix.as_bytes()),
        ..PbRangeRequest::default()
    }
}

/// What `etcdctl get "" --prefix` sends: every key.
fn all_keys() -> PbRangeRequest {
    PbRangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..PbRangeRequest::default()
    }
}

fn keys(kvs: &[PbKeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

fn op(request: PbTxnOpRequest) -> PbTxnRequestOp {
    PbTxnRequestOp {
        request: Some(request),
    }
}

fn create_rev_eq(key: &str, rev: i64) -> PbCompare {
    PbCompare {
        result: 0, // EQUAL
        target: PbCompareTarget::Create as i32,
        key: key.into(),
        target_union: Some(PbTargetUnion::CreateRevision(rev)),
        range_end: Vec::new(),
    }
}

fn grant(s: &mut Store, ttl: i64, now: Instant) -> i64 {
    s.lease_grant(ttl, 0, now).expect("grant").id
}

#[test]
fn revisions_count_write_transactions() {
    let mut s = Store::new(1);
    assert_eq!(s.revision(), 1, "an empty etcd is at revision 1");
    assert_eq!(put(&mut s, "a", "1", 0), 2);
    assert_eq!(put(&mut s, "a", "2", 0), 3);
    let kv = s.get(b"a").expect("a").clone();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));

    let resp = s.delete_range(&del_req("a", b"")).expect("delete");
    assert_eq!((resp.deleted, resp.header.expect("h").revision), (1, 4));
    // Deleting nothing changes nothing, and the header shows the current revision.
    let resp = s.delete_range(&del_req("a", b"")).expect("delete");
    assert_eq!((resp.deleted, resp.header.expect("h").revision), (0, 4));

    // A new generation of the key starts over.
    assert_eq!(put(&mut s, "a", "3", 0), 5);
    let kv = s.get(b"a").expect("a");
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1));
}

#[test]
fn headers_carry_member_and_term() {
    let s = Store::new(1);
    let h = s.header();
    assert_eq!(
        (h.cluster_id, h.member_id, h.revision, h.raft_term),
        (CLUSTER_ID, MEMBER_ID, 1, 2)
    );
}

#[test]
fn a_txn_with_several_writes_is_one_revision() {
    let mut s = Store::new(1);
    put(&mut s, "old", "x", 0);
    let req = PbTxnRequest {
        compare: vec![],
        success: vec![
            op(PbTxnOpRequest::RequestPut(put_req("a", "1", 0))),
            op(PbTxnOpRequest::RequestPut(put_req("b", "2", 0))),
            op(PbTxnOpRequest::RequestDeleteRange(del_req("old", b""))),
            op(PbTxnOpRequest::RequestRange(all_keys())),
        ],
        failure: vec![],
    };
    let resp = s.txn(&req).expect("txn");
    assert!(resp.succeeded);
    assert_eq!(resp.header.expect("h").revision, 3);
    assert_eq!(s.revision(), 3);
    assert_eq!(s.get(b"a").expect("a").create_revision, 3);
    assert_eq!(s.get(b"b").expect("b").create_revision, 3);
    // Inner responses: the write revision, and a read that sees the transaction's own writes.
    let Some(PbTxnOpResponse::ResponsePut(p)) = &resp.responses[0].response else {
        panic!("put response expected")
    };
    assert_eq!(p.header.as_ref().expect("h").revision, 3);
    let Some(PbTxnOpResponse::ResponseRange(r)) = &resp.responses[3].response else {
        panic!("range response expected")
    };
    assert_eq!(keys(&r.kvs), ["a", "b"]);
    assert_eq!(r.header.as_ref().expect("h").revision, 3);

    // A read-only transaction does not move the revision.
    let read_only = PbTxnRequest {
        success: vec![op(PbTxnOpRequest::RequestRange(all_keys()))],
        ..PbTxnRequest::default()
    };
    let resp = s.txn(&read_only).expect("txn");
    assert_eq!(resp.header.expect("h").revision, 3);
}

#[test]
fn create_revision_zero_compare_lets_only_the_first_create_win() {
    let mut s = Store::new(1);
    let create = |value: &str| PbTxnRequest {
        compare: vec![create_rev_eq("/e/k", 0)],
        success: vec![op(PbTxnOpRequest::RequestPut(put_req("/e/k", value, 0)))],
        failure: vec![op(PbTxnOpRequest::RequestRange(PbRangeRequest {
            key: "/e/k".into(),
            ..PbRangeRequest::default()
        }))],
    };
    let first = s.txn(&create("one")).expect("txn");
    assert!(first.succeeded);
    let second = s.txn(&create("two")).expect("txn");
    assert!(!second.succeeded);
    assert_eq!(
        second.header.expect("h").revision,
        2,
        "a failed compare writes nothing"
    );
    let Some(PbTxnOpResponse::ResponseRange(r)) = &second.responses[0].response else {
        panic!("range response expected")
    };
    assert_eq!(r.kvs[0].value, b"one");

    // create_revision == N holds only for that generation of the key.
    let guarded_delete = |rev| PbTxnRequest {
        compare: vec![create_rev_eq("/e/k", rev)],
        success: vec![op(PbTxnOpRequest::RequestDeleteRange(del_req("/e/k", b"")))],
        failure: vec![],
    };
    assert!(!s.txn(&guarded_delete(7)).expect("txn").succeeded);
    assert!(s.txn(&guarded_delete(2)).expect("txn").succeeded);
    assert!(s.get(b"/e/k").is_none());
}

#[test]
fn value_compare_on_a_missing_key_fails_and_other_targets_compare_with_zero() {
    let mut s = Store::new(1);
    let cmp = |target: PbCompareTarget, union: PbTargetUnion, result: i32| PbTxnRequest {
        compare: vec![PbCompare {
            result,
            target: target as i32,
            key: "missing".into(),
            target_union: Some(union),
            range_end: Vec::new(),
        }],
        ..PbTxnRequest::default()
    };
    let ok = |s: &mut Store, r| s.txn(&r).expect("txn").succeeded;
    assert!(!ok(
        &mut s,
        cmp(PbCompareTarget::Value, PbTargetUnion::Value(vec![]), 0)
    ));
    assert!(ok(
        &mut s,
        cmp(PbCompareTarget::Version, PbTargetUnion::Version(0), 0)
    ));
    assert!(ok(
        &mut s,
        cmp(PbCompareTarget::Mod, PbTargetUnion::ModRevision(1), 2) // LESS
    ));
}

#[test]
fn range_prefix_sort_limit_and_count() {
    let mut s = Store::new(1);
    // Created in the order c, a, b: create revisions 2, 3, 4.
    put(&mut s, "/e/c", "", 0);
    put(&mut s, "/e/a", "", 0);
    put(&mut s, "/e/b", "", 0);
    put(&mut s, "/f", "", 0);

    let r = s.range(&prefix_range("/e/")).expect("range");
    assert_eq!(
        keys(&r.kvs),
        ["/e/a", "/e/b", "/e/c"],
        "key order by default"
    );
    assert_eq!(r.count, 3);

    let by_create = |order| PbRangeRequest {
        sort_order: order,
        sort_target: 2, // CREATE
        ..prefix_range("/e/")
    };
    let r = s.range(&by_create(1)).expect("range");
    assert_eq!(keys(&r.kvs), ["/e/c", "/e/a", "/e/b"]);
    let r = s.range(&by_create(2)).expect("range");
    assert_eq!(keys(&r.kvs), ["/e/b", "/e/a", "/e/c"]);
    // A target other than KEY without an order sorts ascending.
    let r = s.range(&by_create(0)).expect("range");
    assert_eq!(keys(&r.kvs), ["/e/c", "/e/a", "/e/b"]);

    let r = s
        .range(&PbRangeRequest {
            limit: 1,
            ..by_create(1)
        })
        .expect("range");
    assert_eq!(
        (keys(&r.kvs), r.more, r.count),
        (vec!["/e/c".into()], true, 3)
    );

    let r = s
        .range(&PbRangeRequest {
            count_only: true,
            ..prefix_range("/e/")
        })
        .expect("range");
    assert_eq!((r.kvs.len(), r.count), (0, 3));

    // "\0" as range end: every key from the key on.
    let r = s
        .range(&PbRangeRequest {
            key: "/e/b".into(),
            range_end: vec![0],
            ..PbRangeRequest::default()
        })
        .expect("range");
    assert_eq!(keys(&r.kvs), ["/e/b", "/e/c", "/f"]);

    // An inverted range is empty, not a panic.
    let r = s
        .range(&PbRangeRequest {
            key: "z".into(),
            range_end: "a".into(),
            ..PbRangeRequest::default()
        })
        .expect("range");
    assert!(r.kvs.is_empty());

    assert_eq!(
        s.range(&PbRangeRequest::default()),
        Err(EtcdError::EmptyKey)
    );
}

#[test]
fn range_at_a_past_revision_and_compaction() {
    let mut s = Store::new(1);
    put(&mut s, "k", "1", 0); // 2
    put(&mut s, "k", "2", 0); // 3
    s.delete_range(&del_req("k", b"")).expect("delete"); // 4
    let at = |s: &Store, revision| {
        s.range(&PbRangeRequest {
            key: "k".into(),
            revision,
            ..PbRangeRequest::default()
        })
    };
    let r = at(&s, 2).expect("range");
    assert_eq!(r.kvs[0].value, b"1");
    assert_eq!(
        r.header.expect("h").revision,
        4,
        "the header shows the current revision"
    );
    assert_eq!(at(&s, 3).expect("range").kvs[0].value, b"2");
    assert!(at(&s, 4).expect("range").kvs.is_empty());
    assert_eq!(at(&s, 5), Err(EtcdError::FutureRev));

    s.compact(&PbCompactionRequest {
        revision: 3,
        physical: false,
    })
    .expect("compact");
    assert_eq!(at(&s, 2), Err(EtcdError::Compacted));
    assert_eq!(at(&s, 3).expect("range").kvs[0].value, b"2");
    assert_eq!(
        s.compact(&PbCompactionRequest {
            revision: 3,
            physical: false
        }),
        Err(EtcdError::Compacted)
    );
}

#[test]
fn txn_validation_matches_etcd() {
    let mut s = Store::new(1);
    let two_puts = PbTxnRequest {
        success: vec![
            op(PbTxnOpRequest::RequestPut(put_req("a", "1", 0))),
            op(PbTxnOpRequest::RequestPut(put_req("a", "2", 0))),
        ],
        ..PbTxnRequest::default()
    };
    assert_eq!(s.txn(&two_puts), Err(EtcdError::DuplicateKey));
    let put_and_delete = PbTxnRequest {
        success: vec![
            op(PbTxnOpRequest::RequestDeleteRange(del_req("a", b"b"))),
            op(PbTxnOpRequest::RequestPut(put_req("a1", "2", 0))),
        ],
        ..PbTxnRequest::default()
    };
    assert_eq!(s.txn(&put_and_delete), Err(EtcdError::DuplicateKey));
    // Different keys are fine: the elector's resign writes a record and deletes its key.
    let resign = PbTxnRequest {
        success: vec![
            op(PbTxnOpRequest::RequestPut(put_req("/e/record", "r", 0))),
            op(PbTxnOpRequest::RequestDeleteRange(del_req("/e/k", b""))),
        ],
        ..PbTxnRequest::default()
    };
    assert!(s.txn(&resign).is_ok());

    let too_many = PbTxnRequest {
        success: (0..129)
            .map(|i| op(PbTxnOpRequest::RequestPut(put_req(&format!("k{i}"), "", 0))))
            .collect(),
        ..PbTxnRequest::default()
    };
    assert_eq!(s.txn(&too_many), Err(EtcdError::TooManyOps));
    let empty_op = PbTxnRequest {
        success: vec![PbTxnRequestOp { request: None }],
        ..PbTxnRequest::default()
    };
    assert_eq!(s.txn(&empty_op), Err(EtcdError::KeyNotFound));
    assert_eq!(s.revision(), 2, "rejected transactions write nothing");
}

#[test]
fn unknown_lease_fails_put_and_the_txn_branch_that_uses_it() {
    let mut s = Store::new(1);
    assert_eq!(s.put(&put_req("k", "v", 42)), Err(EtcdError::LeaseNotFound));
    assert_eq!(EtcdError::LeaseNotFound.code(), tonic::Code::NotFound);
    assert_eq!(
        EtcdError::LeaseNotFound.message(),
        "etcdserver: requested lease not found"
    );
    let txn = |create_rev| PbTxnRequest {
        compare: vec![create_rev_eq("k", create_rev)],
        success: vec![op(PbTxnOpRequest::RequestPut(put_req("k", "v", 42)))],
        failure: vec![],
    };
    assert_eq!(s.txn(&txn(0)), Err(EtcdError::LeaseNotFound));
    // The branch not taken is not checked.
    assert!(!s.txn(&txn(5)).expect("txn").succeeded);
    assert_eq!(s.revision(), 1);
}

#[test]
fn grant_raises_the_ttl_and_picks_etcd_like_ids() {
    let now = Instant::now();
    let mut s = Store::new(7);
    let resp = s.lease_grant(1, 0, now).expect("grant");
    assert_eq!(resp.ttl, MIN_LEASE_TTL);
    assert!(resp.id > 0);
    assert_eq!(
        resp.id as u64 >> 48,
        0x694d,
        "member id bits, as etcd's ids"
    );
    let next = s.lease_grant(10, 0, now).expect("grant");
    assert_eq!(next.ttl, 10);
    assert_ne!(next.id, resp.id);

    // The seed fixes the ids.
    let again = Store::new(7).lease_grant(1, 0, now).expect("grant");
    assert_eq!(again.id, resp.id);
    let other = Store::new(8).lease_grant(1, 0, now).expect("grant");
    assert_ne!(other.id, resp.id);

    assert_eq!(s.lease_grant(5, 99, now).expect("grant").id, 99);
    assert_eq!(s.lease_grant(5, 99, now), Err(EtcdError::LeaseExist));
    assert_eq!(
        s.lease_grant(MAX_LEASE_TTL + 1, 0, now),
        Err(EtcdError::LeaseTtlTooLarge)
    );
    assert_eq!(s.revision(), 1, "grants do not write keys");
}

#[test]
fn revoke_deletes_the_keys_in_one_revision() {
    let now = Instant::now();
    let mut s = Store::new(1);
    let lease = grant(&mut s, 5, now);
    put(&mut s, "/e/b", "", lease);
    put(&mut s, "/e/a", "", lease);
    put(&mut s, "/other", "", 0);
    let resp = s.lease_revoke(lease).expect("revoke");
    assert_eq!(resp.header.expect("h").revision, 5);
    assert!(s.get(b"/e/a").is_none() && s.get(b"/e/b").is_none());
    assert!(s.get(b"/other").is_some());
    let deleted: Vec<_> = s.changes(5, 5).iter().map(|c| c.key.clone()).collect();
    assert_eq!(
        deleted,
        [b"/e/a".to_vec(), b"/e/b".to_vec()],
        "in key order"
    );

    assert_eq!(s.lease_revoke(lease), Err(EtcdError::LeaseNotFound));
    let empty = grant(&mut s, 5, now);
    s.lease_revoke(empty).expect("revoke");
    assert_eq!(
        s.revision(),
        5,
        "revoking a lease without keys writes nothing"
    );
}

#[test]
fn a_key_put_again_without_lease_survives_the_lease() {
    let now = Instant::now();
    let mut s = Store::new(1);
    let lease = grant(&mut s, 5, now);
    put(&mut s, "k", "1", lease);
    put(&mut s, "k", "2", 0);
    s.lease_revoke(lease).expect("revoke");
    assert_eq!(s.get(b"k").expect("k").value, b"2");
}

#[test]
fn keep_alive_renews_until_expiry_and_the_sweep_revokes() {
    let t0 = Instant::now();
    let mut s = Store::new(1);
    let a = grant(&mut s, 2, t0);
    let b = grant(&mut s, 4, t0);
    put(&mut s, "/e/a", "", a);
    put(&mut s, "/e/b", "", b);

    assert_eq!(
        s.lease_renew(a, t0 + Duration::from_secs(1)),
        Renewal::Renewed(2)
    );
    // Renewed at 1 s: expires at 3 s, not 2 s.
    assert!(s.expire(t0 + Duration::from_millis(2500)).is_empty());
    assert_eq!(s.expire(t0 + Duration::from_secs(3)), [a]);
    assert_eq!(
        s.lease_renew(a, t0 + Duration::from_secs(3)),
        Renewal::NotFound
    );
    assert!(s.get(b"/e/a").is_none());
    assert_eq!(s.revision(), 4);

    // Past its expiry but not yet swept: a keep-alive cannot revive it.
    assert_eq!(
        s.lease_renew(b, t0 + Duration::from_secs(4)),
        Renewal::Expired
    );
    assert!(s.has_expired(t0 + Duration::from_secs(4)));
    assert_eq!(s.expire(t0 + Duration::from_secs(4)), [b]);
    assert_eq!(s.revision(), 5, "each expired lease is its own revision");
}

#[test]
fn time_to_live_truncates_and_reports_unknown_leases() {
    let t0 = Instant::now();
    let mut s = Store::new(1);
    let lease = grant(&mut s, 10, t0);
    put(&mut s, "k2", "", lease);
    put(&mut s, "k1", "", lease);
    let r = s.lease_time_to_live(lease, true, t0 + Duration::from_millis(2500));
    assert_eq!((r.ttl, r.granted_ttl), (7, 10));
    assert_eq!(r.keys, [b"k1".to_vec(), b"k2".to_vec()]);
    let r = s.lease_time_to_live(lease, false, t0);
    assert!(r.keys.is_empty());
    let r = s.lease_time_to_live(12345, true, t0);
    assert_eq!((r.id, r.ttl, r.granted_ttl), (12345, -1, 0));
}

#[test]
fn restart_resets_every_lease_to_its_full_ttl_plus_the_election_timeout() {
    let t0 = Instant::now();
    let mut s = Store::new(1);
    let lease = grant(&mut s, 10, t0);
    put(&mut s, "k", "", lease);
    let t1 = t0 + Duration::from_secs(8);
    s.on_restart(t1);
    assert_eq!(s.raft_term(), 3);
    let info = &s.leases()[0];
    assert_eq!(info.expiry, t1 + Duration::from_secs(11));
    assert!(s.expire(t0 + Duration::from_secs(10)).is_empty());
    assert_eq!(s.revision(), 2);
}

// ---- watches -------------------------------------------------------------------------------

fn watch(
    set: &mut WatchSet,
    s: &Store,
    key: &str,
    range_end: &[u8],
    start: i64,
) -> Vec<PbWatchResponse> {
    let mut out = VecDeque::new();
    set.create(
        s,
        WatchCreate {
            key: key.into(),
            range_end: range_end.to_vec(),
            start_revision: start,
            ..WatchCreate::default()
        },
        &mut out,
    );
    out.into()
}

fn poll(set: &mut WatchSet, s: &Store) -> Vec<PbWatchResponse> {
    let mut out = VecDeque::new();
    set.poll(s, &mut out);
    out.into()
}

#[test]
fn watch_delivers_one_response_per_revision_and_delete_events_carry_the_revision() {
    let now = Instant::now();
    let mut s = Store::new(1);
    let mut set = WatchSet::new();
    let created = watch(&mut set, &s, "/e/", &prefix_end(b"/e/"), 0);
    assert_eq!(created.len(), 1);
    assert!(created[0].created && !created[0].canceled);
    assert_eq!(created[0].watch_id, 0);
    assert_eq!(created[0].header.as_ref().expect("h").revision, 1);

    let lease = grant(&mut s, 2, now);
    put(&mut s, "/e/a", "x", lease); // 2
    put(&mut s, "/zzz", "", 0); // 3: not watched
    put(&mut s, "/e/b", "y", lease); // 4
    s.expire(now + Duration::from_secs(2)); // 5

    let out = poll(&mut set, &s);
    let revs: Vec<i64> = out
        .iter()
        .map(|r| r.header.as_ref().expect("h").revision)
        .collect();
    assert_eq!(revs, [2, 4, 5]);
    let deletes = &out[2].events;
    assert_eq!(deletes.len(), 2);
    for ev in deletes {
        assert_eq!(ev.r#type, EVENT_DELETE);
        let kv = ev.kv.as_ref().expect("kv");
        assert_eq!((kv.mod_revision, kv.create_revision, kv.lease), (5, 0, 0));
        assert!(kv.value.is_empty());
    }
    assert!(poll(&mut set, &s).is_empty(), "nothing twice");
}

#[test]
fn watch_from_a_past_revision_replays_in_one_response() {
    let mut s = Store::new(1);
    put(&mut s, "k", "1", 0); // 2
    put(&mut s, "k", "2", 0); // 3
    s.delete_range(&del_req("k", b"")).expect("delete"); // 4
    let mut set = WatchSet::new();
    let out = watch(&mut set, &s, "k", b"", 3);
    assert_eq!(out.len(), 2);
    assert!(out[0].created);
    let replay = &out[1];
    assert_eq!(replay.header.as_ref().expect("h").revision, 4);
    let evs: Vec<(i32, i64)> = replay
        .events
        .iter()
        .map(|e| (e.r#type, e.kv.as_ref().expect("kv").mod_revision))
        .collect();
    assert_eq!(evs, [(EVENT_PUT, 3), (EVENT_DELETE, 4)]);

    put(&mut s, "k", "3", 0); // 5
    let out = poll(&mut set, &s);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].events[0].kv.as_ref().expect("kv").version, 1);
}

#[test]
fn watch_below_the_compaction_is_told_the_compact_revision() {
    let mut s = Store::new(1);
    put(&mut s, "k", "1", 0);
    put(&mut s, "k", "2", 0);
    s.compact(&PbCompactionRequest {
        revision: 3,
        physical: false,
    })
    .expect("compact");
    let mut set = WatchSet::new();
    let out = watch(&mut set, &s, "k", b"", 2);
    assert_eq!(out.len(), 2);
    assert!(out[1].canceled);
    assert_eq!(out[1].compact_revision, 3);
    put(&mut s, "k", "3", 0);
    assert!(poll(&mut set, &s).is_empty());
}

#[test]
fn watch_ids_filters_prev_kv_cancel_and_bad_requests() {
    let mut s = Store::new(1);
    let mut set = WatchSet::new();
    let mut out = VecDeque::new();
    set.create(
        &s,
        WatchCreate {
            key: "k".into(),
            filters: vec![0], // NOPUT
            prev_kv: true,
            ..WatchCreate::default()
        },
        &mut out,
    );
    set.create(
        &s,
        WatchCreate {
            key: "k".into(),
            watch_id: 0,
            ..WatchCreate::default()
        },
        &mut out,
    );
    set.create(
        &s,
        WatchCreate {
            key: "k".into(),
            watch_id: 1,
            ..WatchCreate::default()
        },
        &mut out,
    );
    set.create(
        &s,
        WatchCreate {
            key: "b".into(),
            range_end: "a".into(),
            ..WatchCreate::default()
        },
        &mut out,
    );
    let ids: Vec<(i64, bool)> = out.iter().map(|r| (r.watch_id, r.canceled)).collect();
    assert_eq!(ids, [(0, false), (1, false), (-1, true), (-1, true)]);
    assert_eq!(
        out[2].cancel_reason,
        "mvcc: duplicate watch ID provided on the WatchStream"
    );
    assert_eq!(out[3].cancel_reason, "mvcc: watcher range is empty");

    put(&mut s, "k", "1", 0);
    s.delete_range(&del_req("k", b"")).expect("delete");
    let out = poll(&mut set, &s);
    let seen: Vec<(i64, i32)> = out
        .iter()
        .flat_map(|r| r.events.iter().map(move |e| (r.watch_id, e.r#type)))
        .collect();
    // Watcher 0 filters puts out; revision by revision, watcher by watcher.
    assert_eq!(seen, [(1, EVENT_PUT), (0, EVENT_DELETE), (1, EVENT_DELETE)]);
    let prev = out[1].events[0].prev_kv.as_ref().expect("prev_kv");
    assert_eq!(prev.value, b"1");
    assert!(out[2].events[0].prev_kv.is_none(), "not asked for");

    let mut out = VecDeque::new();
    set.cancel(&s, 1, &mut out);
    set.cancel(&s, 7, &mut out);
    assert_eq!(out.len(), 1, "an unknown watch id gets no answer");
    assert!(out[0].canceled);
}

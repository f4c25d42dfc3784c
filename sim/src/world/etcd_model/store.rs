//! The model etcd's state and every rule that changes it: keys, revisions, leases and the change
//! log that watches replay. No I/O and no clock: the time is passed in.
//!
//! Each rule follows etcd v3.4.23; the Go function it mirrors is named in its doc comment
//! (`apply.go` is `etcdserver/apply.go`, `lessor.go` is `lease/lessor.go`, `kvstore_txn.go` is
//! `mvcc/kvstore_txn.go`, `key.go` is `etcdserver/api/v3rpc/key.go`).
//!
//! One file on purpose: keys, revisions, leases and the change log are one state, and every
//! rule here (a put, a transaction, a lease's expiry) reads and writes all of it in one step, as
//! etcd's apply does; split by concept, one transaction's effects would be spread over files.
//! Its tests are in `store/tests.rs`.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use elector_core::{Candidate, CandidateId, LeaseId};
use etcd_client::proto::{
    PbCompactionRequest, PbCompactionResponse, PbCompare, PbCompareTarget, PbDeleteRequest,
    PbDeleteResponse, PbEvent, PbKeyValue, PbLeaseGrantResponse, PbLeaseLeasesResponse,
    PbLeaseRevokeResponse, PbLeaseStatus, PbLeaseTimeToLiveResponse, PbPutRequest, PbPutResponse,
    PbRangeRequest, PbRangeResponse, PbResponseHeader, PbResponseOp, PbTargetUnion, PbTxnOpRequest,
    PbTxnOpResponse, PbTxnRequest, PbTxnRequestOp, PbTxnResponse,
};
use tokio::time::Instant;

/// etcd's minimum lease TTL with default flags: `ceil(1.5 × election timeout)` =
/// `ceil((3 × 10 ticks / 2) × 100 ms)` = 2 s (`etcdserver/server.go`, `minTTL`; `embed/config.go`:
/// `TickMs: 100`, `ElectionMs: 1000`). A smaller requested TTL is raised to this.
pub const MIN_LEASE_TTL: i64 = 2;
/// `lease.MaxLeaseTTL`: a larger TTL is refused ("too large lease TTL").
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// The election timeout with default flags. On becoming leader (a restart of a single member
/// included) etcd calls `lessor.Promote(electionTimeout)`, which sets every lease to expire after
/// its full TTL *plus* this (`etcdserver/server.go` `applyEntryNormal`, `lessor.go` `refresh`).
pub const ELECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// The lessor's `runLoop` looks for expired leases this often (`lessor.go`).
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(500);
/// At most this many expired leases are revoked per sweep (`leaseRevokeRate / 2`).
pub const REVOKE_LIMIT: usize = 500;
/// `embed.DefaultMaxTxnOps`.
pub const MAX_TXN_OPS: usize = 128;
/// The cluster and member ids of a single-member etcd started with default flags
/// (`--name default`, default peer URL): the real ids, so logs look like etcd's.
pub const CLUSTER_ID: u64 = 0xcdf8_1819_4e3a_8c32;
pub const MEMBER_ID: u64 = 0x8e9e_05c5_2164_694d;
/// A freshly bootstrapped single member elects itself in raft term 2.
const FIRST_RAFT_TERM: u64 = 2;

/// `mvccpb.Event.EventType`.
pub const EVENT_PUT: i32 = 0;
pub const EVENT_DELETE: i32 = 1;

/// An error etcd answers with; [`EtcdError::status`] gives the exact gRPC status
/// (`etcdserver/api/v3rpc/rpctypes/error.go`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EtcdError {
    EmptyKey,
    KeyNotFound,
    ValueProvided,
    LeaseProvided,
    TooManyOps,
    DuplicateKey,
    Compacted,
    FutureRev,
    LeaseNotFound,
    LeaseExist,
    LeaseTtlTooLarge,
}

impl EtcdError {
    pub fn code(self) -> tonic::Code {
        use tonic::Code;
        match self {
            EtcdError::EmptyKey
            | EtcdError::KeyNotFound
            | EtcdError::ValueProvided
            | EtcdError::LeaseProvided
            | EtcdError::TooManyOps
            | EtcdError::DuplicateKey => Code::InvalidArgument,
            EtcdError::Compacted | EtcdError::FutureRev | EtcdError::LeaseTtlTooLarge => {
                Code::OutOfRange
            }
            EtcdError::LeaseNotFound => Code::NotFound,
            EtcdError::LeaseExist => Code::FailedPrecondition,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            EtcdError::EmptyKey => "etcdserver: key is not provided",
            EtcdError::KeyNotFound => "etcdserver: key not found",
            EtcdError::ValueProvided => "etcdserver: value is provided",
            EtcdError::LeaseProvided => "etcdserver: lease is provided",
            EtcdError::TooManyOps => "etcdserver: too many operations in txn request",
            EtcdError::DuplicateKey => "etcdserver: duplicate key given in txn request",
            EtcdError::Compacted => "etcdserver: mvcc: required revision has been compacted",
            EtcdError::FutureRev => "etcdserver: mvcc: required revision is a future revision",
            EtcdError::LeaseNotFound => "etcdserver: requested lease not found",
            EtcdError::LeaseExist => "etcdserver: lease already exists",
            EtcdError::LeaseTtlTooLarge => "etcdserver: too large lease TTL",
        }
    }

    pub fn status(self) -> tonic::Status {
        tonic::Status::new(self.code(), self.message())
    }
}

impl From<EtcdError> for tonic::Status {
    fn from(e: EtcdError) -> Self {
        e.status()
    }
}

impl std::fmt::Display for EtcdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for EtcdError {}

/// The keys a request names, read the way etcd reads `key` and `range_end`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRange {
    /// `range_end` empty: exactly `key`.
    Key(Vec<u8>),
    /// `range_end` is `"\0"`: every key `>= key` (`mkGteRange`).
    From(Vec<u8>),
    /// `[key, end)`; nothing when `key >= end`.
    Span(Vec<u8>, Vec<u8>),
}

impl KeyRange {
    pub fn new(key: &[u8], range_end: &[u8]) -> Self {
        match range_end {
            [] => KeyRange::Key(key.to_vec()),
            [0] => KeyRange::From(key.to_vec()),
            end => KeyRange::Span(key.to_vec(), end.to_vec()),
        }
    }

    /// Every key that starts with `prefix` (clientv3 `WithPrefix`).
    pub fn prefix(prefix: &[u8]) -> Self {
        KeyRange::new(prefix, &prefix_end(prefix))
    }

    pub fn contains(&self, k: &[u8]) -> bool {
        match self {
            KeyRange::Key(key) => k == key.as_slice(),
            KeyRange::From(key) => k >= key.as_slice(),
            KeyRange::Span(key, end) => k >= key.as_slice() && k < end.as_slice(),
        }
    }

    /// The entries of `map` in this range, in key order. Never panics on inverted ranges.
    fn select<'a, V>(&self, map: &'a BTreeMap<Vec<u8>, V>) -> Vec<(&'a Vec<u8>, &'a V)> {
        match self {
            KeyRange::Key(key) => map.get_key_value(key).into_iter().collect(),
            KeyRange::From(key) => map.range(key.clone()..).collect(),
            KeyRange::Span(key, end) if key < end => map.range(key.clone()..end.clone()).collect(),
            KeyRange::Span(..) => Vec::new(),
        }
    }
}

/// clientv3 `GetPrefixRangeEnd`: the first key after every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Empty prefix, or only 0xff bytes: every key.
    vec![0]
}

/// One key written or deleted at `rev`: what watches replay and what historical reads undo.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub rev: i64,
    pub key: Vec<u8>,
    /// The key after the change; `None` when it was deleted.
    pub kv: Option<PbKeyValue>,
    /// The key before the change (at `rev - 1`).
    pub prev: Option<PbKeyValue>,
}

impl Change {
    /// The watch event, as `watchable_store_txn.go` `End` builds it: a delete carries only the
    /// key and the deletion revision as `mod_revision`.
    pub fn event(&self) -> PbEvent {
        match &self.kv {
            Some(kv) => PbEvent {
                r#type: EVENT_PUT,
                kv: Some(kv.clone()),
                prev_kv: None,
            },
            None => PbEvent {
                r#type: EVENT_DELETE,
                kv: Some(PbKeyValue {
                    key: self.key.clone(),
                    mod_revision: self.rev,
                    ..PbKeyValue::default()
                }),
                prev_kv: None,
            },
        }
    }
}

/// A lease as the lessor keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    pub id: LeaseId,
    /// The granted TTL in seconds (after raising it to [`MIN_LEASE_TTL`]).
    pub ttl: i64,
    /// When the sweep will revoke it, on the clock of the runtime serving the model.
    pub expiry: Instant,
    /// The attached keys, sorted.
    pub keys: Vec<Vec<u8>>,
}

#[derive(Clone, Debug)]
struct Lease {
    ttl: i64,
    expiry: Instant,
    keys: BTreeSet<Vec<u8>>,
}

/// What a keep-alive finds (`lessor.go` `Renew`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// Renewed to its full TTL, in seconds.
    Renewed(i64),
    /// No such lease: etcd answers TTL 0.
    NotFound,
    /// Past its expiry but not yet revoked by the sweep: etcd waits for the revocation and then
    /// answers TTL 0; it never revives an expired lease.
    Expired,
}

/// etcd's request id generator (`pkg/idutil`), which also picks lease ids: 16 bits of member id,
/// 40 bits of the start time in ms, 8 bits of counter, so ids look like `694d7f6e8a3b1c05`.
/// The start time comes from the seed instead of the clock.
#[derive(Clone, Debug)]
struct IdGen {
    prefix: u64,
    suffix: u64,
}

impl IdGen {
    fn new(member_id: u64, seed: u64) -> Self {
        // Some millisecond in 2023–2026, fixed by the seed.
        let unix_ms = 1_680_000_000_000 + crate::seed::rng::splitmix64(seed) % 100_000_000_000;
        IdGen {
            prefix: (member_id & 0xffff) << 48,
            suffix: (unix_ms & ((1 << 40) - 1)) << 8,
        }
    }

    fn next(&mut self) -> u64 {
        self.suffix = self.suffix.wrapping_add(1);
        self.prefix | (self.suffix & ((1 << 48) - 1))
    }
}

/// The whole state of the model etcd. It outlives server restarts.
#[derive(Clone, Debug)]
pub struct Store {
    /// The store revision: 1 when empty, +1 per write transaction that changed something.
    rev: i64,
    /// Revisions below this were compacted (0: never).
    compact_rev: i64,
    raft_term: u64,
    kvs: BTreeMap<Vec<u8>, PbKeyValue>,
    /// Every change since the compaction revision, in revision order.
    log: Vec<Change>,
    leases: BTreeMap<LeaseId, Lease>,
    ids: IdGen,
    /// A write transaction made a change that is not committed yet: it will be `rev + 1`.
    dirty: bool,
    /// Every lease the sweep revoked because it expired, in order (not the ones a client
    /// revoked): the simulation tells a lease that ran out from one given away.
    expired: Vec<LeaseId>,
}

impl Store {
    pub fn new(seed: u64) -> Self {
        Store {
            rev: 1,
            compact_rev: 0,
            raft_term: FIRST_RAFT_TERM,
            kvs: BTreeMap::new(),
            log: Vec::new(),
            leases: BTreeMap::new(),
            ids: IdGen::new(MEMBER_ID, seed),
            dirty: false,
            expired: Vec::new(),
        }
    }

    // ---- inspection -------------------------------------------------------------------------

    /// The current store revision.
    pub fn revision(&self) -> i64 {
        self.rev
    }

    pub fn compact_revision(&self) -> i64 {
        self.compact_rev
    }

    pub fn raft_term(&self) -> u64 {
        self.raft_term
    }

    pub fn get(&self, key: &[u8]) -> Option<&PbKeyValue> {
        self.kvs.get(key)
    }

    /// The live keys starting with `prefix`, in key order.
    pub fn kvs_with_prefix(&self, prefix: &[u8]) -> Vec<PbKeyValue> {
        KeyRange::prefix(prefix)
            .select(&self.kvs)
            .into_iter()
            .map(|(_, kv)| kv.clone())
            .collect()
    }

    /// The election under `prefix` as the elector reads it: every key, lowest create revision
    /// first. Values are decoded lossily.
    pub fn candidates(&self, prefix: &[u8]) -> Vec<Candidate> {
        let mut kvs = self.kvs_with_prefix(prefix);
        kvs.sort_by_key(|kv| kv.create_revision);
        kvs.into_iter()
            .map(|kv| Candidate {
                id: CandidateId {
                    lease: kv.lease,
                    create_revision: kv.create_revision,
                },
                value: String::from_utf8_lossy(&kv.value).into_owned(),
            })
            .collect()
    }

    /// When the sweep will revoke lease `id`, if it exists: a keep-alive moves it later.
    pub fn lease_expiry(&self, id: LeaseId) -> Option<Instant> {
        self.leases.get(&id).map(|lease| lease.expiry)
    }

    pub fn has_lease(&self, id: LeaseId) -> bool {
        self.leases.contains_key(&id)
    }

    /// Every lease, by id.
    pub fn leases(&self) -> Vec<LeaseInfo> {
        self.leases
            .iter()
            .map(|(&id, l)| LeaseInfo {
                id,
                ttl: l.ttl,
                expiry: l.expiry,
                keys: l.keys.iter().cloned().collect(),
            })
            .collect()
    }

    /// A response header at the current revision (`v3rpc/header.go` `fill`).
    pub fn header(&self) -> PbResponseHeader {
        self.header_at(self.rev)
    }

    pub fn header_at(&self, revision: i64) -> PbResponseHeader {
        PbResponseHeader {
            cluster_id: CLUSTER_ID,
            member_id: MEMBER_ID,
            revision,
            raft_term: self.raft_term,
        }
    }

    /// What the gRPC layer does to every top-level response header: ids and term, and the
    /// current revision unless the apply step already set one.
    fn fill(&self, header: &mut Option<PbResponseHeader>) {
        let revision = header.as_ref().map_or(0, |h| h.revision);
        let revision = if revision == 0 { self.rev } else { revision };
        *header = Some(self.header_at(revision));
    }

    /// The changes with `from <= rev <= to`, oldest first.
    pub(crate) fn changes(&self, from: i64, to: i64) -> &[Change] {
        let start = self.log.partition_point(|c| c.rev < from);
        let end = self.log.partition_point(|c| c.rev <= to);
        self.log.get(start..end).unwrap_or(&[])
    }

    // ---- KV -------------------------------------------------------------------------------

    /// `Range` (`key.go` `checkRangeRequest`, `apply.go` `Range`).
    pub fn range(&self, req: &PbRangeRequest) -> Result<PbRangeResponse, EtcdError> {
        if req.key.is_empty() {
            return Err(EtcdError::EmptyKey);
        }
        let mut resp = self.range_at_view(req, self.rev)?;
        self.fill(&mut resp.header);
        Ok(resp)
    }

    /// The read of `apply.go` `Range` in a view at `view_rev` (the store revision, or one more
    /// inside a write transaction that already changed something).
    fn range_at_view(
        &self,
        req: &PbRangeRequest,
        view_rev: i64,
    ) -> Result<PbRangeResponse, EtcdError> {
        // `kvstore_txn.go` `rangeKeys`.
        if req.revision > view_rev {
            return Err(EtcdError::FutureRev);
        }
        let rev = if req.revision <= 0 {
            view_rev
        } else {
            req.revision
        };
        if rev < self.compact_rev {
            return Err(EtcdError::Compacted);
        }
        let snapshot = self.snapshot_at(rev, view_rev);
        let selected = KeyRange::new(&req.key, &req.range_end).select(&snapshot);
        let count = selected.len() as i64;
        let mut kvs: Vec<PbKeyValue> = if req.count_only {
            Vec::new()
        } else {
            selected.into_iter().map(|(_, kv)| kv.clone()).collect()
        };

        if req.max_mod_revision != 0 {
            kvs.retain(|kv| kv.mod_revision <= req.max_mod_revision);
        }
        if req.min_mod_revision != 0 {
            kvs.retain(|kv| kv.mod_revision >= req.min_mod_revision);
        }
        if req.max_create_revision != 0 {
            kvs.retain(|kv| kv.create_revision <= req.max_create_revision);
        }
        if req.min_create_revision != 0 {
            kvs.retain(|kv| kv.create_revision >= req.min_create_revision);
        }

        sort_kvs(&mut kvs, req.sort_order, req.sort_target);

        let mut more = false;
        if req.limit > 0 && kvs.len() as i64 > req.limit {
            kvs.truncate(req.limit as usize);
            more = true;
        }
        if req.keys_only {
            for kv in &mut kvs {
                kv.value.clear();
            }
        }
        Ok(PbRangeResponse {
            header: Some(PbResponseHeader {
                revision: view_rev,
                ..PbResponseHeader::default()
            }),
            kvs,
            more,
            count,
        })
    }

    /// The keys as they were at `rev` (`rev <= view_rev`), undoing the logged changes after it.
    fn snapshot_at(&self, rev: i64, view_rev: i64) -> Cow<'_, BTreeMap<Vec<u8>, PbKeyValue>> {
        if rev >= view_rev {
            return Cow::Borrowed(&self.kvs);
        }
        let mut kvs = self.kvs.clone();
        for change in self.log.iter().rev().take_while(|c| c.rev > rev) {
            match &change.prev {
                Some(prev) => kvs.insert(change.key.clone(), prev.clone()),
                None => kvs.remove(&change.key),
            };
        }
        Cow::Owned(kvs)
    }

    /// `Put` (`key.go` `checkPutRequest`, `apply.go` `Put`).
    pub fn put(&mut self, req: &PbPutRequest) -> Result<PbPutResponse, EtcdError> {
        check_put(req)?;
        if req.lease != 0 && !self.leases.contains_key(&req.lease) {
            return Err(EtcdError::LeaseNotFound);
        }
        if (req.ignore_value || req.ignore_lease) && !self.kvs.contains_key(&req.key) {
            return Err(EtcdError::KeyNotFound);
        }
        let mut resp = self.apply_put(req);
        self.commit();
        self.fill(&mut resp.header);
        Ok(resp)
    }

    /// `DeleteRange` (`key.go` `checkDeleteRequest`, `apply.go` `DeleteRange`).
    pub fn delete_range(&mut self, req: &PbDeleteRequest) -> Result<PbDeleteResponse, EtcdError> {
        if req.key.is_empty() {
            return Err(EtcdError::EmptyKey);
        }
        let mut resp = self.apply_delete(req);
        self.commit();
        self.fill(&mut resp.header);
        Ok(resp)
    }

    /// `Txn` (`key.go` `Txn`, `apply.go` `Txn`): compares are all evaluated on the state before
    /// the transaction, then the chosen branch is applied as one revision.
    pub fn txn(&mut self, req: &PbTxnRequest) -> Result<PbTxnResponse, EtcdError> {
        check_txn(req, MAX_TXN_OPS)?;
        check_intervals(&req.success)?;
        check_intervals(&req.failure)?;

        let mut path = Vec::new();
        self.txn_path(req, &mut path);
        // Writes are checked before reads, each over the whole chosen tree (`checkRequests`).
        self.check_ops(req, &path, &mut 0, &|store, op| store.check_put_op(op))?;
        self.check_ops(req, &path, &mut 0, &|store, op| store.check_range_op(op))?;

        let mut resp = self.apply_txn(req, &path, &mut 0);
        self.commit();
        resp.header = Some(PbResponseHeader {
            revision: self.rev,
            ..PbResponseHeader::default()
        });
        self.fill(&mut resp.header);
        Ok(resp)
    }

    /// `Compact`. Drops the change log below `revision`: watches and reads from before it get
    /// "compacted". etcd also compacts key history; reads at `>= revision` are unaffected.
    pub fn compact(
        &mut self,
        req: &PbCompactionRequest,
    ) -> Result<PbCompactionResponse, EtcdError> {
        if req.revision <= self.compact_rev {
            return Err(EtcdError::Compacted);
        }
        if req.revision > self.rev {
            return Err(EtcdError::FutureRev);
        }
        self.compact_rev = req.revision;
        let keep_from = self.log.partition_point(|c| c.rev < req.revision);
        self.log.drain(..keep_from);
        Ok(PbCompactionResponse {
            header: Some(self.header()),
        })
    }

    /// `apply.go` `compareToPath`: the outcome of every compare in the tree, preorder.
    fn txn_path(&self, req: &PbTxnRequest, path: &mut Vec<bool>) {
        let ok = req.compare.iter().all(|c| self.compare(c));
        path.push(ok);
        let ops = if ok { &req.success } else { &req.failure };
        for op in ops {
            if let Some(PbTxnOpRequest::RequestTxn(nested)) = &op.request {
                self.txn_path(nested, path);
            }
        }
    }

    /// `apply.go` `applyCompare`.
    fn compare(&self, c: &PbCompare) -> bool {
        let selected = KeyRange::new(&c.key, &c.range_end).select(&self.kvs);
        if selected.is_empty() {
            // "Always fail if comparing a value on a key/keys that doesn't exist."
            if c.target == PbCompareTarget::Value as i32 {
                return false;
            }
            return compare_kv(c, &PbKeyValue::default());
        }
        selected.into_iter().all(|(_, kv)| compare_kv(c, kv))
    }

    /// `apply.go` `checkRequests`, over the branch each transaction of the tree takes.
    fn check_ops(
        &self,
        req: &PbTxnRequest,
        path: &[bool],
        pos: &mut usize,
        check: &dyn Fn(&Store, &PbTxnOpRequest) -> Result<(), EtcdError>,
    ) -> Result<(), EtcdError> {
        let ok = path.get(*pos).copied().unwrap_or(false);
        *pos += 1;
        for op in if ok { &req.success } else { &req.failure } {
            match &op.request {
                Some(PbTxnOpRequest::RequestTxn(nested)) => {
                    self.check_ops(nested, path, pos, check)?
                }
                Some(op) => check(self, op)?,
                None => {}
            }
        }
        Ok(())
    }

    /// `apply.go` `checkRequestPut`.
    fn check_put_op(&self, op: &PbTxnOpRequest) -> Result<(), EtcdError> {
        let PbTxnOpRequest::RequestPut(put) = op else {
            return Ok(());
        };
        if (put.ignore_value || put.ignore_lease) && !self.kvs.contains_key(&put.key) {
            return Err(EtcdError::KeyNotFound);
        }
        if put.lease != 0 && !self.leases.contains_key(&put.lease) {
            return Err(EtcdError::LeaseNotFound);
        }
        Ok(())
    }

    /// `apply.go` `checkRequestRange`.
    fn check_range_op(&self, op: &PbTxnOpRequest) -> Result<(), EtcdError> {
        let PbTxnOpRequest::RequestRange(range) = op else {
            return Ok(());
        };
        match range.revision {
            0 => Ok(()),
            r if r > self.rev => Err(EtcdError::FutureRev),
            r if r < self.compact_rev => Err(EtcdError::Compacted),
            _ => Ok(()),
        }
    }

    /// `apply.go` `applyTxn`. Nested transactions' headers stay empty, as in etcd.
    fn apply_txn(&mut self, req: &PbTxnRequest, path: &[bool], pos: &mut usize) -> PbTxnResponse {
        let ok = path.get(*pos).copied().unwrap_or(false);
        *pos += 1;
        let ops = if ok { &req.success } else { &req.failure };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match &op.request {
                Some(PbTxnOpRequest::RequestRange(r)) => {
                    let view_rev = self.rev + i64::from(self.dirty);
                    // The checks above rule out every error; an empty answer beats a panic.
                    let resp = self.range_at_view(r, view_rev).unwrap_or_default();
                    Some(PbTxnOpResponse::ResponseRange(resp))
                }
                Some(PbTxnOpRequest::RequestPut(p)) => {
                    Some(PbTxnOpResponse::ResponsePut(self.apply_put(p)))
                }
                Some(PbTxnOpRequest::RequestDeleteRange(d)) => {
                    Some(PbTxnOpResponse::ResponseDeleteRange(self.apply_delete(d)))
                }
                Some(PbTxnOpRequest::RequestTxn(nested)) => Some(PbTxnOpResponse::ResponseTxn(
                    self.apply_txn(nested, path, pos),
                )),
                None => None,
            };
            responses.push(PbResponseOp { response });
        }
        PbTxnResponse {
            header: Some(PbResponseHeader::default()),
            succeeded: ok,
            responses,
        }
    }

    /// `kvstore_txn.go` `put`, inside the current write transaction. The lease, if any, exists
    /// (checked by the caller).
    fn apply_put(&mut self, req: &PbPutRequest) -> PbPutResponse {
        let rev = self.rev + 1;
        let prev = self.kvs.get(&req.key).cloned();
        let value = match (&prev, req.ignore_value) {
            (Some(p), true) => p.value.clone(),
            _ => req.value.clone(),
        };
        let lease = match (&prev, req.ignore_lease) {
            (Some(p), true) => p.lease,
            _ => req.lease,
        };
        let kv = PbKeyValue {
            key: req.key.clone(),
            create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
            mod_revision: rev,
            version: prev.as_ref().map_or(0, |p| p.version) + 1,
            value,
            lease,
        };
        if let Some(old) = prev.as_ref().filter(|p| p.lease != 0) {
            self.detach(old.lease, &req.key);
        }
        if lease != 0
            && let Some(l) = self.leases.get_mut(&lease)
        {
            l.keys.insert(req.key.clone());
        }
        self.kvs.insert(req.key.clone(), kv.clone());
        self.log.push(Change {
            rev,
            key: req.key.clone(),
            kv: Some(kv),
            prev: prev.clone(),
        });
        self.dirty = true;
        PbPutResponse {
            header: Some(PbResponseHeader {
                revision: rev,
                ..PbResponseHeader::default()
            }),
            prev_kv: if req.prev_kv { prev } else { None },
        }
    }

    /// `apply.go` `DeleteRange` with `kvstore_txn.go` `deleteRange`, inside the current write
    /// transaction.
    fn apply_delete(&mut self, req: &PbDeleteRequest) -> PbDeleteResponse {
        let selected: Vec<PbKeyValue> = KeyRange::new(&req.key, &req.range_end)
            .select(&self.kvs)
            .into_iter()
            .map(|(_, kv)| kv.clone())
            .collect();
        for kv in &selected {
            self.delete_key(&kv.key);
        }
        let revision = self.rev + i64::from(self.dirty);
        PbDeleteResponse {
            header: Some(PbResponseHeader {
                revision,
                ..PbResponseHeader::default()
            }),
            deleted: selected.len() as i64,
            prev_kvs: if req.prev_kv { selected } else { Vec::new() },
        }
    }

    /// `kvstore_txn.go` `delete`: tombstone the key and detach it from its lease.
    fn delete_key(&mut self, key: &[u8]) {
        let Some(prev) = self.kvs.remove(key) else {
            return;
        };
        if prev.lease != 0 {
            self.detach(prev.lease, key);
        }
        self.log.push(Change {
            rev: self.rev + 1,
            key: key.to_vec(),
            kv: None,
            prev: Some(prev),
        });
        self.dirty = true;
    }

    fn detach(&mut self, lease: LeaseId, key: &[u8]) {
        if let Some(l) = self.leases.get_mut(&lease) {
            l.keys.remove(key);
        }
    }

    /// `kvstore_txn.go` `End`: the transaction's changes become one new revision.
    fn commit(&mut self) {
        if self.dirty {
            self.rev += 1;
            self.dirty = false;
        }
    }

    // ---- leases -----------------------------------------------------------------------------

    /// `LeaseGrant` (`v3_server.go` `LeaseGrant`, `lessor.go` `Grant`). `id == 0` lets the server
    /// choose. The response carries the TTL actually granted.
    pub fn lease_grant(
        &mut self,
        ttl: i64,
        id: LeaseId,
        now: Instant,
    ) -> Result<PbLeaseGrantResponse, EtcdError> {
        let mut id = id;
        while id == 0 {
            // "only use positive int64 id's"
            id = (self.ids.next() & (i64::MAX as u64)) as i64;
        }
        if ttl > MAX_LEASE_TTL {
            return Err(EtcdError::LeaseTtlTooLarge);
        }
        if self.leases.contains_key(&id) {
            return Err(EtcdError::LeaseExist);
        }
        let ttl = ttl.max(MIN_LEASE_TTL);
        self.leases.insert(
            id,
            Lease {
                ttl,
                expiry: now + secs(ttl),
                keys: BTreeSet::new(),
            },
        );
        Ok(PbLeaseGrantResponse {
            header: Some(self.header()),
            id,
            ttl,
            error: String::new(),
        })
    }

    /// `LeaseRevoke` (`lessor.go` `Revoke`): the attached keys are deleted in key order in one
    /// transaction, so one revision (none if the lease had no keys).
    pub fn lease_revoke(&mut self, id: LeaseId) -> Result<PbLeaseRevokeResponse, EtcdError> {
        let lease = self.leases.remove(&id).ok_or(EtcdError::LeaseNotFound)?;
        for key in &lease.keys {
            self.delete_key(key);
        }
        self.commit();
        Ok(PbLeaseRevokeResponse {
            header: Some(self.header()),
        })
    }

    /// A keep-alive (`lessor.go` `Renew`): resets the expiry to now + TTL.
    pub fn lease_renew(&mut self, id: LeaseId, now: Instant) -> Renewal {
        match self.leases.get_mut(&id) {
            None => Renewal::NotFound,
            Some(l) if l.expiry <= now => Renewal::Expired,
            Some(l) => {
                l.expiry = now + secs(l.ttl);
                Renewal::Renewed(l.ttl)
            }
        }
    }

    /// `LeaseTimeToLive` (`v3_server.go`, `v3rpc/lease.go`): the remaining time truncated to whole
    /// seconds as Go's `int64(d.Seconds())` does; an unknown lease answers TTL -1, not an error.
    pub fn lease_time_to_live(
        &self,
        id: LeaseId,
        keys: bool,
        now: Instant,
    ) -> PbLeaseTimeToLiveResponse {
        match self.leases.get(&id) {
            None => PbLeaseTimeToLiveResponse {
                header: Some(self.header()),
                id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
            Some(l) => {
                let remaining = if l.expiry >= now {
                    l.expiry.duration_since(now).as_secs() as i64
                } else {
                    -(now.duration_since(l.expiry).as_secs() as i64)
                };
                PbLeaseTimeToLiveResponse {
                    header: Some(self.header()),
                    id,
                    ttl: remaining,
                    granted_ttl: l.ttl,
                    keys: if keys {
                        l.keys.iter().cloned().collect()
                    } else {
                        Vec::new()
                    },
                }
            }
        }
    }

    /// `LeaseLeases`, by id (etcd's order is its map's).
    pub fn lease_leases(&self) -> PbLeaseLeasesResponse {
        PbLeaseLeasesResponse {
            header: Some(self.header()),
            leases: self.leases.keys().map(|&id| PbLeaseStatus { id }).collect(),
        }
    }

    /// Whether some lease is past its expiry (the sweep would revoke it).
    pub fn has_expired(&self, now: Instant) -> bool {
        self.leases.values().any(|l| l.expiry <= now)
    }

    /// One sweep of the lessor (`lessor.go` `revokeExpiredLeases`, `server.go`
    /// `revokeExpiredLeases`): every lease whose expiry is not after `now`, earliest first, up to
    /// [`REVOKE_LIMIT`], is revoked, each in its own revision. Returns the revoked ids.
    pub fn expire(&mut self, now: Instant) -> Vec<LeaseId> {
        let mut due: Vec<(Instant, LeaseId)> = self
            .leases
            .iter()
            .filter(|(_, l)| l.expiry <= now)
            .map(|(&id, l)| (l.expiry, id))
            .collect();
        due.sort();
        due.truncate(REVOKE_LIMIT);
        let revoked: Vec<LeaseId> = due
            .into_iter()
            .filter_map(|(_, id)| self.lease_revoke(id).ok().map(|_| id))
            .collect();
        self.expired.extend_from_slice(&revoked);
        revoked
    }

    /// Every lease revoked by the sweep because it expired, oldest first.
    pub fn expired_leases(&self) -> &[LeaseId] {
        &self.expired
    }

    /// The server process restarted (or, in a cluster, leadership moved): a new raft term, and
    /// every lease expires its full TTL plus the election timeout from `now`
    /// (`lessor.go` `Promote(electionTimeout)`; checkpointing is off by default in 3.4).
    /// Keys, revisions and the change log are kept, as etcd keeps them on disk.
    pub fn on_restart(&mut self, now: Instant) {
        self.raft_term += 1;
        for lease in self.leases.values_mut() {
            lease.expiry = now + ELECTION_TIMEOUT + secs(lease.ttl);
        }
    }
}

fn secs(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl).unwrap_or(0))
}

/// `apply.go` `compareKV`. A target union of the wrong kind compares against zero, and an
/// unknown result code is true, as in etcd.
fn compare_kv(c: &PbCompare, kv: &PbKeyValue) -> bool {
    const EQUAL: i32 = 0;
    const GREATER: i32 = 1;
    const LESS: i32 = 2;
    const NOT_EQUAL: i32 = 3;
    let union = c.target_union.as_ref();
    let int = |want: Option<i64>, have: i64| have.cmp(&want.unwrap_or(0));
    let ord = match PbCompareTarget::try_from(c.target) {
        Ok(PbCompareTarget::Value) => {
            let want: &[u8] = match union {
                Some(PbTargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(want)
        }
        Ok(PbCompareTarget::Create) => int(
            match union {
                Some(PbTargetUnion::CreateRevision(r)) => Some(*r),
                _ => None,
            },
            kv.create_revision,
        ),
        Ok(PbCompareTarget::Mod) => int(
            match union {
                Some(PbTargetUnion::ModRevision(r)) => Some(*r),
                _ => None,
            },
            kv.mod_revision,
        ),
        Ok(PbCompareTarget::Version) => int(
            match union {
                Some(PbTargetUnion::Version(v)) => Some(*v),
                _ => None,
            },
            kv.version,
        ),
        Ok(PbCompareTarget::Lease) => int(
            match union {
                Some(PbTargetUnion::Lease(l)) => Some(*l),
                _ => None,
            },
            kv.lease,
        ),
        Err(_) => Ordering::Equal,
    };
    match c.result {
        EQUAL => ord == Ordering::Equal,
        NOT_EQUAL => ord != Ordering::Equal,
        GREATER => ord == Ordering::Greater,
        LESS => ord == Ordering::Less,
        _ => true,
    }
}

/// `apply.go` `Range` sorting. A target other than KEY with no order sorts ascending. Go's sort
/// is not stable, so etcd's order among equal targets is unspecified; here ties keep key order.
fn sort_kvs(kvs: &mut [PbKeyValue], order: i32, target: i32) {
    const NONE: i32 = 0;
    const ASCEND: i32 = 1;
    const DESCEND: i32 = 2;
    const KEY: i32 = 0;
    let order = if target != KEY && order == NONE {
        ASCEND
    } else {
        order
    };
    let cmp: fn(&PbKeyValue, &PbKeyValue) -> Ordering = match target {
        0 => |a, b| a.key.cmp(&b.key),
        1 => |a, b| a.version.cmp(&b.version),
        2 => |a, b| a.create_revision.cmp(&b.create_revision),
        3 => |a, b| a.mod_revision.cmp(&b.mod_revision),
        4 => |a, b| a.value.cmp(&b.value),
        // etcd would dereference a nil sorter here; leave the key order.
        _ => return,
    };
    match order {
        ASCEND => kvs.sort_by(cmp),
        DESCEND => kvs.sort_by(|a, b| cmp(b, a)),
        _ => {}
    }
}

/// `key.go` `checkPutRequest`.
fn check_put(req: &PbPutRequest) -> Result<(), EtcdError> {
    if req.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if req.ignore_value && !req.value.is_empty() {
        return Err(EtcdError::ValueProvided);
    }
    if req.ignore_lease && req.lease != 0 {
        return Err(EtcdError::LeaseProvided);
    }
    Ok(())
}

/// `key.go` `checkTxnRequest` and `checkRequestOp`.
fn check_txn(req: &PbTxnRequest, max_ops: usize) -> Result<(), EtcdError> {
    let opc = req
        .compare
        .len()
        .max(req.success.len())
        .max(req.failure.len());
    if opc > max_ops {
        return Err(EtcdError::TooManyOps);
    }
    if req.compare.iter().any(|c| c.key.is_empty()) {
        return Err(EtcdError::EmptyKey);
    }
    for op in req.success.iter().chain(&req.failure) {
        match &op.request {
            Some(PbTxnOpRequest::RequestRange(r)) if r.key.is_empty() => {
                return Err(EtcdError::EmptyKey);
            }
            Some(PbTxnOpRequest::RequestPut(p)) => check_put(p)?,
            Some(PbTxnOpRequest::RequestDeleteRange(d)) if d.key.is_empty() => {
                return Err(EtcdError::EmptyKey);
            }
            Some(PbTxnOpRequest::RequestTxn(nested)) => check_txn(nested, max_ops - opc)?,
            Some(_) => {}
            None => return Err(EtcdError::KeyNotFound),
        }
    }
    Ok(())
}

/// A deleted interval as `key.go` `checkIntervals` builds it: a point, or `[key, range_end)`
/// taken literally, so a `"\0"` (from-key) range end makes an empty interval there.
struct Interval {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl Interval {
    fn contains(&self, k: &[u8]) -> bool {
        match &self.end {
            None => k == self.start.as_slice(),
            Some(end) => k >= self.start.as_slice() && k < end.as_slice(),
        }
    }
}

/// `key.go` `checkIntervals`: no key may be put twice, or put and deleted, in one branch.
fn check_intervals(
    ops: &[PbTxnRequestOp],
) -> Result<(BTreeSet<Vec<u8>>, Vec<Interval>), EtcdError> {
    let mut dels: Vec<Interval> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(PbTxnOpRequest::RequestDeleteRange(d)) => Some(Interval {
                start: d.key.clone(),
                end: (!d.range_end.is_empty()).then(|| d.range_end.clone()),
            }),
            _ => None,
        })
        .collect();
    let deleted = |dels: &[Interval], k: &[u8]| dels.iter().any(|d| d.contains(k));

    let mut puts = BTreeSet::new();
    for op in ops {
        let Some(PbTxnOpRequest::RequestTxn(nested)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&nested.success)?;
        let (puts_else, dels_else) = check_intervals(&nested.failure)?;
        for k in &puts_then {
            if puts.contains(k) || deleted(&dels, k) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            // Then and else exclude each other: the same key in both is fine.
            if (puts.contains(k) && !puts_then.contains(k)) || deleted(&dels, k) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let Some(PbTxnOpRequest::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(&p.key) || deleted(&dels, &p.key) {
            return Err(EtcdError::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests;

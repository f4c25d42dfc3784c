//! Differential test of the simulation's etcd model (`elector_sim::world::etcd_model`)
//! against a real etcd process (Debian's 3.4.23 on PATH, and 3.5.1 under `make unit-etcd35`, see
//! `etcd_process`): the same scripted sequences
//! run through etcd-client against both, each producing a transcript of every field the
//! elector reads, and the transcripts must be equal. So the simulation's verdicts carry over
//! to real etcd. No Docker needed.
//!
//! The scripts cover what the elector does: lease grant (the minimum TTL raise, a too-large
//! TTL, an existing id), keep-alive TTLs, expiry of a short lease with its delete events on a
//! prefix watch, the campaign transaction (`create_revision == 0`), the resignation
//! transaction (`create_revision == N`, and a stale N), the observation transaction (Range
//! with prefix sorted by create revision, and single keys), Watch delete events (explicit and
//! by revocation), a replay from a past revision, a progress request, revocation, and the
//! errors for unknown leases.
//!
//! Normalized, each for a stated reason (everything else is compared exactly):
//! - revisions are relative to the revision at the start of each script (both stores start
//!   fresh, but the test should not depend on that); 0 stays 0;
//! - lease ids are numbered in order of appearance (`L1`, `L2`, ...), also inside keys that
//!   embed them in hex: etcd derives ids from its member id and the clock, the model from a
//!   seed, and ids are spaced differently;
//! - response headers: only the revision is compared; cluster id, member id and raft term are
//!   not read by the elector;
//! - TimeToLive's remaining TTL is checked to lie in `[granted - 1, granted]` (a query a few
//!   milliseconds after a renewal truncates to either), and its key list is sorted: etcd lists
//!   a lease's keys in Go map order, the model in key order;
//! - the moment a short lease expires is checked to lie within `[TTL, TTL + 1.5 s]` of its
//!   grant, not compared: etcd's lessor sweeps every 500 ms from its own start, the model's
//!   sweep has another phase, so each expires somewhere in `TTL .. TTL + 0.5 s` (plus a raft
//!   round trip for etcd);
//! - watch events are compared as one flat sequence per watch, not by response: a replay from
//!   a past revision reaches etcd's unsynced watcher group, which is caught up by a loop every
//!   100 ms in batches, while the model replays at creation; the live responses are also
//!   compared as (revision, number of events) per response.
//!
//! One test binary per subject on purpose (each file under `tests/` is linked separately, which
//! costs CI minutes on 2 cores): every test here runs one scenario against both the model and a
//! real etcd and compares them, with one comparison harness.

use anyhow::{Context, Result, bail, ensure};
use elector_integration::etcd_process::EtcdProcess;
use elector_sim::world::etcd_model::EtcdModel;
use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, KeyValue, LeaseGrantOptions,
    LeaseTimeToLiveOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
    TxnResponse, WatchOptions, WatchResponse, WatchStream,
};
use std::time::{Duration, Instant};

/// Bound on every single call, so a hung server fails the test instead of hanging it.
const CALL: Duration = Duration::from_secs(5);
/// A lease id neither server hands out (etcd's start with its member id's low 16 bits).
const UNKNOWN_LEASE: i64 = 0x1234;

/// One script's transcript and the normalization state.
struct Transcript {
    lines: Vec<String>,
    base: i64,
    leases: Vec<i64>,
}

impl Transcript {
    fn new(base: i64) -> Self {
        Transcript {
            lines: Vec::new(),
            base,
            leases: Vec::new(),
        }
    }

    fn say(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }

    /// A revision relative to the script's start; 0 (absent) stays 0.
    fn rev(&self, revision: i64) -> String {
        if revision == 0 {
            "0".to_owned()
        } else {
            format!("r{:+}", revision - self.base)
        }
    }

    /// A lease id as `L<n>`, numbered in order of appearance; 0 (no lease) stays 0.
    fn lease(&mut self, id: i64) -> String {
        if id == 0 {
            return "0".to_owned();
        }
        if id == UNKNOWN_LEASE {
            return "UNKNOWN".to_owned();
        }
        let n = match self.leases.iter().position(|&known| known == id) {
            Some(n) => n,
            None => {
                self.leases.push(id);
                self.leases.len() - 1
            }
        };
        format!("L{}", n + 1)
    }

    /// A key with every known lease id in hex replaced by its name.
    fn key(&mut self, key: &[u8]) -> String {
        let mut text = String::from_utf8_lossy(key).into_owned();
        for id in self.leases.clone() {
            let name = self.lease(id);
            text = text.replace(&format!("{id:x}"), &name);
        }
        text
    }

    fn kv(&mut self, kv: &KeyValue) -> String {
        let lease = self.lease(kv.lease());
        format!(
            "{} value={:?} create={} mod={} version={} lease={lease}",
            self.key(kv.key()),
            String::from_utf8_lossy(kv.value()),
            self.rev(kv.create_revision()),
            self.rev(kv.mod_revision()),
            kv.version(),
        )
    }

    fn txn(&mut self, answer: &TxnResponse) -> String {
        let mut parts = vec![
            format!("succeeded={}", answer.succeeded()),
            format!(
                "rev={}",
                self.rev(answer.header().map_or(-1, |h| h.revision()))
            ),
        ];
        for response in answer.op_responses() {
            parts.push(match response {
                TxnOpResponse::Get(get) => {
                    let kvs: Vec<String> = get.kvs().iter().map(|kv| self.kv(kv)).collect();
                    format!(
                        "get(count={} more={} [{}])",
                        get.count(),
                        get.more(),
                        kvs.join("; ")
                    )
                }
                TxnOpResponse::Put(put) => {
                    format!("put(prev={:?})", put.prev_key().map(|kv| self.kv(kv)))
                }
                TxnOpResponse::Delete(delete) => format!("delete(deleted={})", delete.deleted()),
                TxnOpResponse::Txn(_) => "txn(..)".to_owned(),
            });
        }
        parts.join(" ")
    }

    fn events(&mut self, answer: &WatchResponse) -> Vec<String> {
        answer
            .events()
            .iter()
            .map(|event| {
                let kind = match event.event_type() {
                    EventType::Put => "PUT",
                    EventType::Delete => "DELETE",
                };
                let kv = event.kv().map(|kv| self.kv(kv)).unwrap_or_default();
                format!("{kind} {kv}")
            })
            .collect()
    }
}

/// An error as the elector sees it: gRPC code and message (or etcd-client's own error text).
fn error(error: &etcd_client::Error) -> String {
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            format!("error {:?}: {}", status.code(), status.message())
        }
        other => format!("error {other}"),
    }
}

async fn bounded<T>(what: &str, call: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(CALL, call)
        .await
        .with_context(|| format!("{what} took longer than {CALL:?}"))
}

/// The store revision now, read through `client`.
async fn revision(client: &mut Client) -> Result<i64> {
    let answer = bounded("a read", client.get("/", None)).await??;
    answer
        .header()
        .map(|header| header.revision())
        .context("a read without a header")
}

async fn grant(
    client: &mut Client,
    t: &mut Transcript,
    ttl: i64,
    id: Option<i64>,
) -> Result<Option<i64>> {
    let options = id.map(|id| LeaseGrantOptions::new().with_id(id));
    let answer = bounded("a lease grant", client.lease_grant(ttl, options)).await?;
    Ok(match answer {
        Ok(grant) => {
            let name = t.lease(grant.id());
            t.say(format!(
                "grant(ttl={ttl}) -> {name} ttl={} error={:?}",
                grant.ttl(),
                grant.error()
            ));
            Some(grant.id())
        }
        Err(e) => {
            t.say(format!("grant(ttl={ttl}) -> {}", error(&e)));
            None
        }
    })
}

async fn put(client: &mut Client, t: &mut Transcript, key: &str, lease: i64) -> Result<()> {
    let options = (lease != 0).then(|| PutOptions::new().with_lease(lease));
    let answer = bounded("a put", client.put(key, "v", options)).await?;
    let name = t.lease(lease);
    let key = t.key(key.as_bytes());
    let line = match answer {
        Ok(put) => format!(
            "put {key} lease={name} -> rev={}",
            t.rev(put.header().map_or(-1, |h| h.revision()))
        ),
        Err(e) => format!("put {key} lease={name} -> {}", error(&e)),
    };
    t.say(line);
    Ok(())
}

async fn time_to_live(client: &mut Client, t: &mut Transcript, lease: i64) -> Result<()> {
    let answer = bounded(
        "a TimeToLive",
        client.lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new().with_keys())),
    )
    .await?;
    let name = t.lease(lease);
    let line = match answer {
        Ok(ttl) => {
            let mut keys: Vec<String> = ttl.keys().iter().map(|key| t.key(key)).collect();
            // etcd lists a lease's keys in Go map order; the model in key order.
            keys.sort();
            let granted = ttl.granted_ttl();
            let remaining = if granted == 0 {
                format!("ttl={}", ttl.ttl())
            } else {
                // Truncated to whole seconds a few milliseconds after a renewal.
                format!(
                    "ttl_in_[granted-1,granted]={}",
                    (granted - 1..=granted).contains(&ttl.ttl())
                )
            };
            format!(
                "time_to_live({name}) -> id={} granted={granted} {remaining} keys={keys:?}",
                t.lease(ttl.id())
            )
        }
        Err(e) => format!("time_to_live({name}) -> {}", error(&e)),
    };
    t.say(line);
    Ok(())
}

async fn revoke(client: &mut Client, t: &mut Transcript, lease: i64) -> Result<()> {
    let answer = bounded("a revoke", client.lease_revoke(lease)).await?;
    let name = t.lease(lease);
    let line = match answer {
        Ok(revoked) => format!(
            "revoke({name}) -> rev={}",
            t.rev(revoked.header().map_or(-1, |h| h.revision()))
        ),
        Err(e) => format!("revoke({name}) -> {}", error(&e)),
    };
    t.say(line);
    Ok(())
}

async fn txn(client: &mut Client, t: &mut Transcript, what: &str, txn: Txn) -> Result<()> {
    let answer = bounded("a txn", client.txn(txn)).await?;
    let line = match answer {
        Ok(answer) => t.txn(&answer),
        Err(e) => error(&e),
    };
    t.say(format!("{what} -> {line}"));
    Ok(())
}

async fn get(
    client: &mut Client,
    t: &mut Transcript,
    what: &str,
    key: &str,
    options: GetOptions,
) -> Result<()> {
    let answer = bounded("a get", client.get(key, Some(options))).await??;
    let kvs: Vec<String> = answer.kvs().iter().map(|kv| t.kv(kv)).collect();
    let rev = t.rev(answer.header().map_or(-1, |h| h.revision()));
    t.say(format!(
        "{what} -> rev={rev} count={} more={} [{}]",
        answer.count(),
        answer.more(),
        kvs.join("; ")
    ));
    Ok(())
}

/// The next watch response, bounded.
async fn next_response(stream: &mut WatchStream, within: Duration) -> Result<WatchResponse> {
    match tokio::time::timeout(within, stream.message()).await {
        Ok(Ok(Some(answer))) => Ok(answer),
        Ok(Ok(None)) => bail!("the watch ended"),
        Ok(Err(e)) => bail!("the watch failed: {e}"),
        Err(_) => bail!("no watch response within {within:?}"),
    }
}

/// Opens a prefix watch (from `start_revision` if not 0) and records its creation.
async fn open_watch(
    client: &mut Client,
    t: &mut Transcript,
    prefix: &str,
    start_revision: i64,
) -> Result<WatchStream> {
    let mut options = WatchOptions::new().with_prefix();
    if start_revision != 0 {
        options = options.with_start_revision(start_revision);
    }
    let mut stream = bounded("a watch", client.watch(prefix, Some(options))).await??;
    let created = next_response(&mut stream, CALL).await?;
    let rev = t.rev(created.header().map_or(-1, |h| h.revision()));
    let from = t.rev(start_revision);
    t.say(format!(
        "watch({prefix} from {from}) -> created={} canceled={} rev={rev} events={}",
        created.created(),
        created.canceled(),
        created.events().len()
    ));
    let events = t.events(&created);
    for event in events {
        t.say(format!("  {event}"));
    }
    Ok(stream)
}

/// Reads watch responses until `count` events arrived; records each event, and with
/// `per_response` each response's revision and size too.
async fn watch_events(
    stream: &mut WatchStream,
    t: &mut Transcript,
    count: usize,
    per_response: bool,
    within: Duration,
) -> Result<()> {
    let deadline = Instant::now() + within;
    let mut seen = 0;
    while seen < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let answer = next_response(stream, left)
            .await
            .with_context(|| format!("waiting for watch event {} of {count}", seen + 1))?;
        if answer.events().is_empty() {
            continue;
        }
        if per_response {
            let rev = t.rev(answer.header().map_or(-1, |h| h.revision()));
            t.say(format!(
                "  response rev={rev} events={}",
                answer.events().len()
            ));
        }
        let events = t.events(&answer);
        seen += events.len();
        for event in events {
            t.say(format!("  {event}"));
        }
    }
    Ok(())
}

/// Grant (incl. the minimum TTL raise, a too-large TTL, an existing id), keep-alive TTLs,
/// TimeToLive with keys, unknown-lease errors, revoke.
async fn leases(client: &mut Client, prefix: &str) -> Result<Vec<String>> {
    let mut t = Transcript::new(revision(client).await?);
    let short = grant(client, &mut t, 1, None)
        .await?
        .context("no short lease")?;
    let five = grant(client, &mut t, 5, None)
        .await?
        .context("no 5 s lease")?;
    grant(client, &mut t, 9_000_000_001, None).await?;
    grant(client, &mut t, 5, Some(five)).await?;

    for lease in [five, short] {
        let name = t.lease(lease);
        let (mut keeper, mut answers) =
            bounded("a keep-alive", client.lease_keep_alive(lease)).await??;
        for _ in 0..2 {
            bounded("a keep-alive", keeper.keep_alive()).await??;
            let answer = bounded("a keep-alive answer", answers.message())
                .await??
                .context("the keep-alive stream ended")?;
            let id = t.lease(answer.id());
            t.say(format!(
                "keep_alive({name}) -> id={id} ttl={}",
                answer.ttl()
            ));
        }
    }

    put(client, &mut t, &format!("{prefix}/b"), five).await?;
    put(client, &mut t, &format!("{prefix}/a"), five).await?;
    time_to_live(client, &mut t, five).await?;
    time_to_live(client, &mut t, UNKNOWN_LEASE).await?;
    put(client, &mut t, &format!("{prefix}/c"), UNKNOWN_LEASE).await?;
    revoke(client, &mut t, five).await?;
    get(
        client,
        &mut t,
        "get prefix",
        prefix,
        GetOptions::new().with_prefix(),
    )
    .await?;
    revoke(client, &mut t, five).await?;
    revoke(client, &mut t, UNKNOWN_LEASE).await?;
    let reopened = bounded("a keep-alive", client.lease_keep_alive(five)).await?;
    t.say(format!(
        "keep_alive(revoked L2) -> {}",
        match reopened {
            Ok(_) => "opened".to_owned(),
            Err(e) => error(&e),
        }
    ));
    time_to_live(client, &mut t, five).await?;
    revoke(client, &mut t, short).await?;
    Ok(t.lines)
}

/// A 2 s lease with two keys expires: a prefix watch sees both deletions in one revision,
/// within the expiry bound; afterwards the lease is gone for TimeToLive and keep-alive.
async fn expiry(client: &mut Client, prefix: &str) -> Result<Vec<String>> {
    let mut t = Transcript::new(revision(client).await?);
    let mut watch = open_watch(client, &mut t, prefix, 0).await?;
    let sent = Instant::now();
    let lease = grant(client, &mut t, 2, None).await?.context("no lease")?;
    let granted = Instant::now();
    put(client, &mut t, &format!("{prefix}/y"), lease).await?;
    put(client, &mut t, &format!("{prefix}/x"), lease).await?;
    watch_events(&mut watch, &mut t, 2, true, CALL).await?;
    watch_events(&mut watch, &mut t, 2, true, Duration::from_secs(10)).await?;
    let expired = Instant::now();
    // Expiry happens TTL after the grant was served, plus up to one 500 ms sweep period (and,
    // for etcd, a raft round): the two servers' sweeps have different phases.
    let ttl = Duration::from_secs(2);
    let in_bounds = expired >= sent + ttl && expired <= granted + ttl + Duration::from_millis(1500);
    t.say(format!(
        "expired within [TTL, TTL + 1.5 s] of the grant: {in_bounds}"
    ));
    if !in_bounds {
        t.say(format!(
            "  (expired {:.3}s after the grant was sent)",
            (expired - sent).as_secs_f64()
        ));
    }
    time_to_live(client, &mut t, lease).await?;
    let reopened = bounded("a keep-alive", client.lease_keep_alive(lease)).await?;
    t.say(format!(
        "keep_alive(expired L1) -> {}",
        match reopened {
            Ok(_) => "opened".to_owned(),
            Err(e) => error(&e),
        }
    ));
    get(
        client,
        &mut t,
        "get prefix",
        prefix,
        GetOptions::new().with_prefix(),
    )
    .await?;
    Ok(t.lines)
}

/// The elector's transactions: campaign (`create_revision == 0`), the same again, the
/// observation (Range with prefix sorted by create revision, plus two single keys), the
/// resignation (`create_revision == N`) and a stale resignation; Range orders.
async fn transactions(client: &mut Client, prefix: &str) -> Result<Vec<String>> {
    let mut t = Transcript::new(revision(client).await?);
    let lease = grant(client, &mut t, 10, None).await?.context("no lease")?;
    let ours = format!("{prefix}/{lease:x}");
    let record_key = format!("{prefix}.elector/handover-record");
    let request_key = format!("{prefix}.elector/handover-request");
    let campaign = || {
        Txn::new()
            .when([Compare::create_revision(ours.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                ours.clone(),
                "replica-a",
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(ours.clone(), None)])
    };
    txn(client, &mut t, "campaign", campaign()).await?;
    txn(client, &mut t, "campaign again", campaign()).await?;
    let created = bounded("a get", client.get(ours.as_str(), None))
        .await??
        .kvs()
        .first()
        .map(KeyValue::create_revision)
        .context("our key is missing")?;

    // Keys whose create order differs from their key order.
    put(client, &mut t, &format!("{prefix}/zz"), 0).await?;
    put(client, &mut t, &format!("{prefix}/00"), lease).await?;
    put(client, &mut t, &format!("{prefix}/mm"), 0).await?;
    put(client, &mut t, &format!("{prefix}/zz"), 0).await?;
    put(client, &mut t, &request_key, 0).await?;
    let candidates = format!("{prefix}/");
    for (what, options) in [
        ("range by key", GetOptions::new().with_prefix()),
        (
            "range by create ascending",
            GetOptions::new()
                .with_prefix()
                .with_sort(SortTarget::Create, SortOrder::Ascend),
        ),
        (
            "range by create descending",
            GetOptions::new()
                .with_prefix()
                .with_sort(SortTarget::Create, SortOrder::Descend),
        ),
        (
            "range by create, limit 2",
            GetOptions::new()
                .with_prefix()
                .with_sort(SortTarget::Create, SortOrder::Ascend)
                .with_limit(2),
        ),
    ] {
        get(client, &mut t, what, &candidates, options).await?;
    }
    let observe = Txn::new().and_then([
        TxnOp::get(
            candidates.clone(),
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_sort(SortTarget::Create, SortOrder::Ascend),
            ),
        ),
        TxnOp::get(record_key.clone(), None),
        TxnOp::get(request_key.clone(), None),
    ]);
    txn(client, &mut t, "observe", observe).await?;
    let resign = |create_revision: i64| {
        Txn::new()
            .when([Compare::create_revision(
                ours.clone(),
                CompareOp::Equal,
                create_revision,
            )])
            .and_then([
                TxnOp::put(record_key.clone(), "{\"from\":1}", None),
                TxnOp::delete(ours.clone(), None),
                TxnOp::delete(request_key.clone(), None),
            ])
    };
    txn(
        client,
        &mut t,
        "resign with a wrong create revision",
        resign(created + 1),
    )
    .await?;
    txn(client, &mut t, "resign", resign(created)).await?;
    txn(client, &mut t, "resign again (stale)", resign(created)).await?;
    let observe = Txn::new().and_then([
        TxnOp::get(
            candidates.clone(),
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_sort(SortTarget::Create, SortOrder::Ascend),
            ),
        ),
        TxnOp::get(record_key.clone(), None),
        TxnOp::get(request_key.clone(), None),
    ]);
    txn(client, &mut t, "observe after resigning", observe).await?;
    revoke(client, &mut t, lease).await?;
    get(
        client,
        &mut t,
        "range after revoke",
        &candidates,
        GetOptions::new().with_prefix(),
    )
    .await?;
    Ok(t.lines)
}

/// Watch delete events (an explicit delete, then a revocation deleting two keys in one
/// revision), a progress request, and a replay of the same history from a past revision.
async fn watches(client: &mut Client, prefix: &str) -> Result<Vec<String>> {
    let start = revision(client).await?;
    let mut t = Transcript::new(start);
    let mut live = open_watch(client, &mut t, prefix, 0).await?;
    let lease = grant(client, &mut t, 10, None).await?.context("no lease")?;
    put(client, &mut t, &format!("{prefix}/2"), lease).await?;
    put(client, &mut t, &format!("{prefix}/1"), lease).await?;
    put(client, &mut t, &format!("{prefix}/3"), 0).await?;
    let deleted = bounded("a delete", client.delete(format!("{prefix}/3"), None)).await??;
    t.say(format!(
        "delete {prefix}/3 -> deleted={} rev={}",
        deleted.deleted(),
        t.rev(deleted.header().map_or(-1, |h| h.revision()))
    ));
    revoke(client, &mut t, lease).await?;
    watch_events(&mut live, &mut t, 6, true, CALL).await?;

    bounded("a progress request", live.request_progress()).await??;
    let progress = next_response(&mut live, CALL).await?;
    t.say(format!(
        "progress -> rev={} events={} watch_id={}",
        t.rev(progress.header().map_or(-1, |h| h.revision())),
        progress.events().len(),
        progress.watch_id()
    ));

    // The same history again, from the first revision of the script.
    let mut replay = open_watch(client, &mut t, prefix, start + 1).await?;
    watch_events(&mut replay, &mut t, 6, false, CALL).await?;
    Ok(t.lines)
}

type Script =
    for<'a> fn(
        &'a mut Client,
        &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Vec<String>>> + Send + 'a>>;

/// Every script, in order, each on its own key prefix.
fn scripts() -> Vec<(&'static str, Script)> {
    vec![
        ("leases", |c, p| Box::pin(leases(c, p))),
        ("expiry", |c, p| Box::pin(expiry(c, p))),
        ("transactions", |c, p| Box::pin(transactions(c, p))),
        ("watches", |c, p| Box::pin(watches(c, p))),
    ]
}

async fn run_all(endpoint: String) -> Result<Vec<(&'static str, Vec<String>)>> {
    let mut client = bounded("connecting", Client::connect([endpoint.as_str()], None)).await??;
    let mut transcripts = Vec::new();
    for (name, script) in scripts() {
        let prefix = format!("/differential/{name}");
        let lines = script(&mut client, &prefix)
            .await
            .with_context(|| format!("script {name} against {endpoint}"))?;
        transcripts.push((name, lines));
    }
    Ok(transcripts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etcd_model_answers_like_etcd_3_4() -> Result<()> {
    let etcd = tokio::task::spawn_blocking(EtcdProcess::start_new).await??;
    let model = EtcdModel::new(7);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let model_endpoint = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn({
        let model = model.clone();
        async move { model.serve_tcp(listener).await }
    });

    let (real, modeled) = tokio::join!(run_all(etcd.endpoint()), run_all(model_endpoint));
    server.abort();
    let (real, modeled) = (real?, modeled?);

    let mut differences = Vec::new();
    for ((name, real), (_, modeled)) in real.iter().zip(&modeled) {
        let length = real.len().max(modeled.len());
        for i in 0..length {
            let (r, m) = (real.get(i), modeled.get(i));
            if r != m {
                differences.push(format!(
                    "{name} line {i}:\n  etcd:  {}\n  model: {}",
                    r.map_or("(none)", String::as_str),
                    m.map_or("(none)", String::as_str)
                ));
            }
        }
    }
    let lines: usize = real.iter().map(|(_, lines)| lines.len()).sum();
    let transcript: Vec<String> = real
        .iter()
        .flat_map(|(name, lines)| lines.iter().map(move |line| format!("{name}: {line}")))
        .collect();
    if !differences.is_empty() {
        bail!(
            "the model differs from etcd on {} of {lines} lines:\n{}\n--- etcd's transcript ---\n{}",
            differences.len(),
            differences.join("\n"),
            transcript.join("\n")
        );
    }
    ensure!(lines > 60, "the scripts recorded only {lines} lines");
    eprintln!(
        "model and etcd ({}) agree on {lines} transcript lines:\n{}",
        elector_integration::etcd_process::etcd_program("etcd").display(),
        transcript.join("\n")
    );
    Ok(())
}

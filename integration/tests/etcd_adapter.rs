//! The etcd adapter (`elector::etcd`) against a real etcd (the `etcd` on PATH, 3.4 in CI),
//! including interplay with `etcdctl elect`, which uses Go's `concurrency.Election`.
//!
//! Every wait is bounded; etcd and etcdctl processes are killed when their guards drop,
//! whether the test passes or panics.
//!
//! One test binary per subject on purpose (each file under `tests/` is linked separately, which
//! costs CI minutes on 2 cores): every test drives the shell's etcd adapter against a real
//! etcd, with one set of helpers.

use anyhow::{Context, Result, bail, ensure};
use elector::etcd::{Election, EtcdError, EtcdOptions, Placement, check_key_placement, connect};
use elector_core::{Candidate, CandidateId, HandoverRecord, HandoverRequest, Input, Observation};
use elector_integration::etcd_process::{EtcdProcess, TestPki};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const KEY: &str = "/iotex-server";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on "the observer reports a change": the watch is immediate, the periodic re-read
/// runs every 2 s; anything slower is a failure.
const CHANGE_SEEN_WITHIN: Duration = Duration::from_secs(5);

/// Starts etcd off the runtime's worker threads (it blocks until etcd serves).
async fn start_etcd() -> Result<EtcdProcess> {
    tokio::task::spawn_blocking(EtcdProcess::start_new).await?
}

async fn client_for(etcd: &EtcdProcess) -> Result<etcd_client::Client> {
    let mut options = EtcdOptions::new(vec![etcd.endpoint()]);
    options.request_timeout = REQUEST_TIMEOUT;
    Ok(connect(&options).await?)
}

fn election(client: &etcd_client::Client, value: &str) -> Election {
    Election::new(
        client.clone(),
        KEY.to_owned(),
        value.to_owned(),
        REQUEST_TIMEOUT,
    )
}

/// A lease of `ttl` with this election's candidate key on it.
async fn campaign(election: &Election, ttl: Duration) -> Result<CandidateId> {
    let (lease, _) = election.grant(ttl).await?;
    let create_revision = election.create_candidate(lease).await?;
    Ok(CandidateId {
        lease,
        create_revision,
    })
}

fn values(observation: &Observation) -> Vec<&str> {
    observation
        .candidates
        .iter()
        .map(|candidate| candidate.value.as_str())
        .collect()
}

/// `Election::observe` running in a task, stopped when dropped.
struct Observer {
    inputs: mpsc::Receiver<Input>,
    task: JoinHandle<()>,
}

impl Observer {
    fn start(election: &Election) -> Self {
        let (tx, inputs) = mpsc::channel(64);
        let election = election.clone();
        let task = tokio::spawn(async move { election.observe(tx).await });
        Observer { inputs, task }
    }

    /// The next input, waiting at most `within`.
    async fn next(&mut self, within: Duration) -> Result<Input> {
        match tokio::time::timeout(within, self.inputs.recv()).await {
            Ok(Some(input)) => Ok(input),
            Ok(None) => bail!("the observer stopped"),
            Err(_) => bail!("the observer reported nothing within {within:?}"),
        }
    }

    /// Skips inputs until an observation satisfies `wanted`, within `within` overall.
    async fn observation_where(
        &mut self,
        within: Duration,
        what: &str,
        wanted: impl Fn(&Observation) -> bool,
    ) -> Result<Observation> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let input = self
                .next(left)
                .await
                .with_context(|| format!("waiting for {what}; saw {seen:#?}"))?;
            match input {
                Input::Observed(observation) if wanted(&observation) => return Ok(observation),
                other => seen.push(other),
            }
        }
    }

    /// Skips inputs until the observer reports a failure, within `within`.
    async fn failure(&mut self, within: Duration) -> Result<String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await.context("waiting for ObserveFailed")? {
                Input::ObserveFailed { reason } => return Ok(reason),
                _ => continue,
            }
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a connect attempt gave, for failure messages (the client has no `Debug`).
fn connected(outcome: Result<etcd_client::Client, EtcdError>) -> String {
    match outcome {
        Ok(_) => "connected".to_owned(),
        Err(error) => format!("{error:?}"),
    }
}

fn connected_outcome(outcome: &Result<etcd_client::Client, EtcdError>) -> String {
    match outcome {
        Ok(_) => "connected".to_owned(),
        Err(error) => error.to_string(),
    }
}

/// Whether `error` is one of the adapter's bounded failures (a timeout, or a transport error
/// once the HTTP/2 pings gave up on the connection).
fn is_bounded_failure(error: &EtcdError) -> bool {
    matches!(error, EtcdError::Timeout { .. } | EtcdError::Failed { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_and_keep_alive_report_the_granted_ttl() -> Result<()> {
    let etcd = start_etcd().await?;
    let client = client_for(&etcd).await?;
    let election = election(&client, "node-a");

    let (lease, ttl) = election.grant(Duration::from_secs(10)).await?;
    ensure!(lease > 0, "lease id {lease}");
    assert_eq!(ttl, Duration::from_secs(10));
    // The first keep-alive opens the stream, the second reuses it.
    assert_eq!(
        election.keep_alive_once(lease).await?,
        Duration::from_secs(10)
    );
    assert_eq!(
        election.keep_alive_once(lease).await?,
        Duration::from_secs(10)
    );

    // etcd rounds sub-second requests up and grants at least its minimum TTL (2 s with the
    // default 1 s election timeout).
    let (_, short) = election.grant(Duration::from_millis(300)).await?;
    assert_eq!(short, Duration::from_secs(2));

    // Gone: ZERO on the stream that was open for it...
    election.revoke(lease).await?;
    assert_eq!(election.keep_alive_once(lease).await?, Duration::ZERO);
    // ...and on a fresh stream (etcd-client reports "lease not found" when opening one).
    assert_eq!(election.keep_alive_once(lease).await?, Duration::ZERO);
    assert_eq!(election.keep_alive_once(0x1234).await?, Duration::ZERO);
    // Revoking what is gone already is fine.
    election.revoke(lease).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidate_layout_matches_go_concurrency_election() -> Result<()> {
    let mut etcd = start_etcd().await?;
    let client = client_for(&etcd).await?;
    let election = election(&client, "node-a");
    let ours = campaign(&election, Duration::from_secs(30)).await?;
    let key = format!("{KEY}/{:x}", ours.lease);
    assert_eq!(election.candidate_key(ours.lease), key);

    // The key holds the value and is attached to the lease.
    let value = etcd.etcdctl_ok(&["get", &key, "--print-value-only"])?;
    assert_eq!(value.trim_end(), "node-a");
    let lease_info = etcd.etcdctl_ok(&[
        "lease",
        "timetolive",
        &format!("{:x}", ours.lease),
        "--keys",
    ])?;
    ensure!(
        lease_info.contains(&format!("attached keys([{key}])")),
        "{lease_info}"
    );

    // Campaigning again with the same lease finds the key: same place in line (Go's
    // re-campaign), no new revision.
    assert_eq!(
        election.create_candidate(ours.lease).await?,
        ours.create_revision
    );

    let observation = election.observe_once().await?;
    assert_eq!(
        observation.candidates,
        vec![Candidate {
            id: ours,
            value: "node-a".to_owned()
        }]
    );
    ensure!(observation.revision >= ours.create_revision);

    // `etcdctl elect -l` (Go's Election.Observe) sees us as the leader: it prints the leader's
    // key on one line and its value on the next.
    let mut listener = etcd.spawn_etcdctl(&["elect", "-l", KEY])?;
    assert_eq!(listener.next_line(Duration::from_secs(10))?, key);
    assert_eq!(listener.next_line(Duration::from_secs(5))?, "node-a");
    listener.kill();

    // A key of our name on another lease is refused: it would not vanish with ours.
    let (other_lease, _) = election.grant(Duration::from_secs(30)).await?;
    let (stray_lease, _) = election.grant(Duration::from_secs(30)).await?;
    let stray_key = format!("{KEY}/{other_lease:x}");
    let stray_lease = format!("{stray_lease:x}");
    etcd.etcdctl_ok(&["put", &stray_key, "stray", "--lease", &stray_lease])?;
    match election.create_candidate(other_lease).await {
        Err(EtcdError::UnexpectedResponse { detail, .. }) => {
            ensure!(detail.contains("not to ours"), "{detail}")
        }
        other => bail!("expected a refusal, got {other:?}"),
    }
    etcd.stop()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_are_ordered_by_create_revision() -> Result<()> {
    let etcd = start_etcd().await?;
    let client = client_for(&etcd).await?;
    let a = election(&client, "a");
    let b = election(&client, "b");
    let c = election(&client, "c");
    // Leases in the order a, b, c; keys created in the order c, a, b: the line follows the
    // keys' creation, not the lease ids (nor the key names).
    let (lease_a, _) = a.grant(Duration::from_secs(30)).await?;
    let (lease_b, _) = b.grant(Duration::from_secs(30)).await?;
    let (lease_c, _) = c.grant(Duration::from_secs(30)).await?;
    let revision_c = c.create_candidate(lease_c).await?;
    let revision_a = a.create_candidate(lease_a).await?;
    let revision_b = b.create_candidate(lease_b).await?;
    ensure!(revision_c < revision_a && revision_a < revision_b);

    let observation = a.list().await?;
    assert_eq!(values(&observation), ["c", "a", "b"]);
    let ids: Vec<CandidateId> = observation.candidates.iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        [
            CandidateId {
                lease: lease_c,
                create_revision: revision_c
            },
            CandidateId {
                lease: lease_a,
                create_revision: revision_a
            },
            CandidateId {
                lease: lease_b,
                create_revision: revision_b
            },
        ]
    );
    assert_eq!(observation.handover_record, None);
    assert_eq!(observation.handover_request, None);
    drop(etcd);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_reports_a_deletion_ahead_of_us_and_a_lease_expiry() -> Result<()> {
    let etcd = start_etcd().await?;
    let client = client_for(&etcd).await?;
    let first = election(&client, "first");
    let second = election(&client, "second");
    let ours = election(&client, "ours");
    let first_id = campaign(&first, Duration::from_secs(30)).await?;
    // Never kept alive: expires after 2 s.
    let second_id = campaign(&second, Duration::from_secs(2)).await?;
    campaign(&ours, Duration::from_secs(30)).await?;

    let mut observer = Observer::start(&ours);
    let initial = observer
        .observation_where(CHANGE_SEEN_WITHIN, "the first read", |_| true)
        .await?;
    // The lease of "second" may have expired already on a slow machine.
    ensure!(
        values(&initial) == ["first", "second", "ours"] || values(&initial) == ["first", "ours"],
        "{initial:?}"
    );

    // A deletion ahead of us.
    first.revoke(first_id.lease).await?;
    let started = Instant::now();
    observer
        .observation_where(CHANGE_SEEN_WITHIN, "first's key gone", |o| {
            !values(o).contains(&"first")
        })
        .await?;
    ensure!(
        started.elapsed() < Duration::from_secs(2),
        "the watch should report a deletion at once, took {:?}",
        started.elapsed()
    );

    // The expiry of a lease: etcd sweeps expired leases every 500 ms.
    let expired = observer
        .observation_where(Duration::from_secs(10), "second's lease expired", |o| {
            values(o) == ["ours"]
        })
        .await?;
    ensure!(!expired.candidates.iter().any(|c| c.id == second_id));
    assert_eq!(
        second.keep_alive_once(second_id.lease).await?,
        Duration::ZERO
    );
    drop(etcd);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_stays_quiet_while_nothing_changes() -> Result<()> {
    let etcd = start_etcd().await?;
    let client = client_for(&etcd).await?;
    let ours = election(&client, "ours");
    campaign(&ours, Duration::from_secs(30)).await?;
    let mut observer = Observer::start(&ours);
    observer
        .observation_where(CHANGE_SEEN_WITHIN, "the first read", |o| {
            values(o) == ["ours"]
        })
        .await?;
    // Three recheck periods: the periodic re-reads find nothing new, and the watch answers
    // its progress requests (etcd 3.4 does), so it is not taken for dead.
    match observer.next(Duration::from_secs(7)).await {
        Err(_) => {}
        Ok(input) => bail!("nothing changed, yet the observer reported {input:?}"),
    }
    // Writes elsewhere in etcd move the revision but not the election: still quiet...
    etcd.etcdctl_ok(&["put", "/unrelated", "x"])?;
    match observer.next(Duration::from_secs(3)).await {
        Err(_) => {}
        Ok(input) => bail!("an unrelated write was reported: {input:?}"),
    }
    // ...and the observer still reports the next change.
    let newcomer = election(&client, "newcomer");
    campaign(&newcomer, Duration::from_secs(30)).await?;
    observer
        .observation_where(CHANGE_SEEN_WITHIN, "the newcomer", |o| {
            values(o) == ["ours", "newcomer"]
        })
        .await?;
    Ok(())
}

/// Registry records live beside the election and never reach it: writing one wakes no
/// observer (every elector rewrites its record; a re-read on every other elector each time
/// would cost etcd the square of the replica count), is neither a candidate nor a foreign
/// key, and reads back from the registry prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_records_never_reach_the_election() -> Result<()> {
    let etcd = start_etcd().await?;
    let client = client_for(&etcd).await?;
    let ours = election(&client, "ours");
    campaign(&ours, Duration::from_secs(30)).await?;
    let mut observer = Observer::start(&ours);
    observer
        .observation_where(CHANGE_SEEN_WITHIN, "the first read", |o| {
            values(o) == ["ours"]
        })
        .await?;
    let (lease, _) = ours.grant(Duration::from_secs(30)).await?;
    for round in 0..3 {
        ours.put_member(format!(r#"{{"value":"ours","round":{round}}}"#), lease)
            .await?;
        // Less than a recheck period, so only the watch could have reported it.
        match observer.next(Duration::from_millis(1500)).await {
            Err(_) => {}
            Ok(input) => bail!("a registry write was reported to the core: {input:?}"),
        }
    }
    ensure!(ours.foreign_keys().is_empty(), "{:?}", ours.foreign_keys());
    let records = ours.list_members().await?;
    ensure!(records.len() == 1, "{records:?}");
    ensure!(
        records[0].name == "ours" && records[0].lease == lease,
        "{records:?}"
    );
    ensure!(
        String::from_utf8_lossy(&records[0].value).contains(r#""round":2"#),
        "{records:?}"
    );
    // The election is still watched: the next candidate is reported.
    campaign(&election(&client, "newcomer"), Duration::from_secs(30)).await?;
    observer
        .observation_where(CHANGE_SEEN_WITHIN, "the newcomer", |o| {
            values(o) == ["ours", "newcomer"]
        })
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resign_with_record_hands_over_atomically() -> Result<()> {
    let etcd = start_etcd().await?;
    let client = client_for(&etcd).await?;
    let leader = election(&client, "node-a");
    let next = election(&client, "node-b");
    let leader_id = campaign(&leader, Duration::from_secs(30)).await?;
    campaign(&next, Duration::from_secs(30)).await?;
    let request_revision = next.request_handover(Some("node-b".to_owned())).await?;

    let mut observer = Observer::start(&next);
    let before = observer
        .observation_where(CHANGE_SEEN_WITHIN, "both candidates", |o| {
            values(o) == ["node-a", "node-b"]
        })
        .await?;
    assert_eq!(
        before.handover_request,
        Some(HandoverRequest {
            to: Some("node-b".to_owned()),
            revision: request_revision,
        })
    );

    // Key custody's flag travels with the record.
    let record = HandoverRecord {
        from: leader_id,
        value: "node-a".to_owned(),
        key_withdrawn: true,
    };
    leader
        .resign(
            leader_id.lease,
            Some(leader_id),
            Some(record.clone()),
            Some(request_revision),
        )
        .await?;

    // The next observation shows the record, the next candidate first, the request cleared.
    let after = observer
        .observation_where(CHANGE_SEEN_WITHIN, "the handover", |o| {
            o.handover_record.is_some()
        })
        .await?;
    assert_eq!(after.handover_record, Some(record.clone()));
    assert_eq!(values(&after), ["node-b"]);
    assert_eq!(after.handover_request, None);
    // The lease is revoked too.
    assert_eq!(
        leader.keep_alive_once(leader_id.lease).await?,
        Duration::ZERO
    );

    // Atomic: the record appeared in the very revision that deleted the key.
    let record_key = leader.handover_record_key();
    let listing = etcd.etcdctl_ok(&["get", &record_key, "-w", "json"])?;
    let listing: serde_json::Value = serde_json::from_str(&listing)?;
    let written_at = listing["kvs"][0]["mod_revision"]
        .as_i64()
        .context("the record's mod_revision")?;
    let candidate_key = leader.candidate_key(leader_id.lease);
    // (etcdctl 3.4 has no --count-only; the JSON omits an empty "kvs".)
    let keys_at = |revision: i64| -> Result<usize> {
        let listing = etcd.etcdctl_ok(&[
            "get",
            &candidate_key,
            "--rev",
            &revision.to_string(),
            "-w",
            "json",
        ])?;
        let listing: serde_json::Value = serde_json::from_str(&listing)?;
        Ok(listing["kvs"].as_array().map_or(0, Vec::len))
    };
    assert_eq!(keys_at(written_at - 1)?, 1);
    assert_eq!(keys_at(written_at)?, 0);
    // The stored form is the documented JSON.
    let stored = etcd.etcdctl_ok(&["get", &record_key, "--print-value-only"])?;
    let stored: serde_json::Value = serde_json::from_str(stored.trim_end())?;
    assert_eq!(
        stored,
        serde_json::json!({
            "from_lease": leader_id.lease,
            "from_create_revision": leader_id.create_revision,
            "value": "node-a",
            "key_withdrawn": true,
        })
    );

    // Resigning again (a retry after a lost answer): our key is gone, so the record is left
    // as it is and the call still succeeds.
    let other_record = HandoverRecord {
        from: CandidateId {
            lease: 1,
            create_revision: 1,
        },
        value: "other".to_owned(),
        key_withdrawn: false,
    };
    leader
        .resign(leader_id.lease, Some(leader_id), Some(other_record), None)
        .await?;
    assert_eq!(leader.observe_once().await?.handover_record, Some(record));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resign_without_record_deletes_only_the_request_it_acted_on() -> Result<()> {
    let etcd = start_etcd().await?;
    let client = client_for(&etcd).await?;
    let leader = election(&client, "node-a");
    let leader_id = campaign(&leader, Duration::from_secs(30)).await?;
    let acted_on = leader.request_handover(None).await?;
    // A newer request arrives before the resignation: it must survive.
    let newer = leader.request_handover(Some("node-b".to_owned())).await?;
    assert!(newer > acted_on);

    leader
        .resign(leader_id.lease, Some(leader_id), None, Some(acted_on))
        .await?;
    let after = leader.observe_once().await?;
    assert_eq!(after.candidates, []);
    assert_eq!(after.handover_record, None);
    assert_eq!(
        after.handover_request,
        Some(HandoverRequest {
            to: Some("node-b".to_owned()),
            revision: newer
        })
    );
    assert_eq!(
        leader.keep_alive_once(leader_id.lease).await?,
        Duration::ZERO
    );
    // Resigning a lease that is gone is fine; this time the request it names is deleted,
    // although no record is written.
    leader
        .resign(leader_id.lease, None, None, Some(newer))
        .await?;
    assert_eq!(leader.observe_once().await?.handover_request, None);
    drop(etcd);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handover_requests_and_unreadable_keys() -> Result<()> {
    let etcd = start_etcd().await?;
    let client = client_for(&etcd).await?;
    let election = election(&client, "node-a");

    let first = election.request_handover(None).await?;
    let second = election.request_handover(Some("node-b".to_owned())).await?;
    ensure!(second > first);
    assert_eq!(
        election.observe_once().await?.handover_request,
        Some(HandoverRequest {
            to: Some("node-b".to_owned()),
            revision: second
        })
    );
    election.clear_handover_request().await?;
    assert_eq!(election.observe_once().await?.handover_request, None);
    // Clearing nothing is fine.
    election.clear_handover_request().await?;

    // Garbage in either key reads as absent (and is logged), never as an error.
    etcd.etcdctl_ok(&["put", &election.handover_record_key(), "not json"])?;
    etcd.etcdctl_ok(&["put", &election.handover_request_key(), "{\"to\": 7}"])?;
    let observation = election.observe_once().await?;
    assert_eq!(observation.handover_record, None);
    assert_eq!(observation.handover_request, None);
    // A request written by hand without "to" means "the next in line".
    etcd.etcdctl_ok(&["put", &election.handover_request_key(), "{}"])?;
    let request = election.observe_once().await?.handover_request;
    ensure!(
        matches!(request, Some(HandoverRequest { to: None, .. })),
        "{request:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_elect_candidates_share_the_election() -> Result<()> {
    let etcd = start_etcd().await?;
    let client = client_for(&etcd).await?;
    let ours = election(&client, "ours");

    // A Go candidate first: it wins at once and prints its key, then its value.
    let mut go_leader = etcd.spawn_etcdctl(&["elect", KEY, "go-leader"])?;
    let go_key = go_leader.next_line(Duration::from_secs(10))?;
    ensure!(go_key.starts_with(&format!("{KEY}/")), "{go_key}");
    assert_eq!(go_leader.next_line(Duration::from_secs(5))?, "go-leader");

    let ours_id = campaign(&ours, Duration::from_secs(30)).await?;
    let mut observer = Observer::start(&ours);
    let line = observer
        .observation_where(CHANGE_SEEN_WITHIN, "both candidates", |o| {
            o.candidates.len() == 2
        })
        .await?;
    // The Go candidate leads; we are second, in create-revision order.
    assert_eq!(values(&line), ["go-leader", "ours"]);
    assert_eq!(line.candidates[1].id, ours_id);
    let go_id = line.candidates[0].id;
    assert_eq!(format!("{KEY}/{:x}", go_id.lease), go_key);
    ensure!(go_id.create_revision < ours_id.create_revision);

    // Ctrl-C: etcdctl resigns (deletes its key) and we are first.
    go_leader.interrupt(Duration::from_secs(10))?;
    observer
        .observation_where(CHANGE_SEEN_WITHIN, "us first", |o| values(o) == ["ours"])
        .await?;

    // A Go candidate behind us waits (prints nothing) and is listed second...
    let mut go_waiter = etcd.spawn_etcdctl(&["elect", KEY, "go-waiter"])?;
    observer
        .observation_where(CHANGE_SEEN_WITHIN, "the Go waiter", |o| {
            values(o) == ["ours", "go-waiter"]
        })
        .await?;
    ensure!(
        go_waiter.silent_for(Duration::from_secs(1)),
        "etcdctl elect claimed leadership while we led"
    );
    // ...and wins as soon as we resign.
    ours.resign(ours_id.lease, Some(ours_id), None, None)
        .await?;
    let waiter_key = go_waiter.next_line(Duration::from_secs(10))?;
    ensure!(waiter_key.starts_with(&format!("{KEY}/")), "{waiter_key}");
    assert_eq!(go_waiter.next_line(Duration::from_secs(5))?, "go-waiter");
    observer
        .observation_where(CHANGE_SEEN_WITHIN, "the Go waiter alone", |o| {
            values(o) == ["go-waiter"]
        })
        .await?;
    go_waiter.kill();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_keys_are_ignored_and_reported() -> Result<()> {
    let etcd = start_etcd().await?;
    let client = client_for(&etcd).await?;
    let a = election(&client, "a");
    let b = election(&client, "b");
    let c = election(&client, "c");

    // Before any candidate, so first in create order: a key written by hand, on no lease. As a
    // candidate it would lead forever.
    let by_hand = format!("{KEY}/1");
    etcd.etcdctl_ok(&["put", &by_hand, "by hand"])?;
    let a_id = campaign(&a, Duration::from_secs(30)).await?;
    // Named after one lease, attached to another.
    let (named_after, _) = b.grant(Duration::from_secs(30)).await?;
    let (b_lease, _) = b.grant(Duration::from_secs(30)).await?;
    let misnamed = format!("{KEY}/{named_after:x}");
    let b_lease_hex = format!("{b_lease:x}");
    etcd.etcdctl_ok(&["put", &misnamed, "misnamed", "--lease", &b_lease_hex])?;
    // Another election nested under ours (Go's concurrency.Election, through etcdctl).
    let mut nested = etcd.spawn_etcdctl(&["elect", &format!("{KEY}/sub"), "nested"])?;
    let nested_key = nested.next_line(Duration::from_secs(10))?;
    ensure!(
        nested_key.starts_with(&format!("{KEY}/sub/")),
        "{nested_key}"
    );
    // Not a hex name, on a lease.
    let not_hex = format!("{KEY}/leader");
    etcd.etcdctl_ok(&["put", &not_hex, "x", "--lease", &b_lease_hex])?;
    let b_revision = b.create_candidate(b_lease).await?;
    let c_id = campaign(&c, Duration::from_secs(30)).await?;

    // The real candidates, in create order; the others ignored, listed with the reason.
    let mut observer = Observer::start(&c);
    let line = observer
        .observation_where(CHANGE_SEEN_WITHIN, "the three candidates", |o| {
            values(o) == ["a", "b", "c"]
        })
        .await?;
    let ids: Vec<CandidateId> = line.candidates.iter().map(|c| c.id).collect();
    let b_id = CandidateId {
        lease: b_lease,
        create_revision: b_revision,
    };
    assert_eq!(ids, [a_id, b_id, c_id]);
    let foreign: Vec<(String, &str)> = c
        .foreign_keys()
        .into_iter()
        .map(|k| (k.key, k.why))
        .collect();
    let names: Vec<&str> = foreign.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(names, [&by_hand, &misnamed, &nested_key, &not_hex]);
    for ((key, why), expected) in
        foreign
            .iter()
            .zip(["no lease", "not its lease", "nested", "not its lease"])
    {
        ensure!(why.contains(expected), "{key}: {why}");
    }
    // An operator's read (`elector status`) sees the same.
    assert_eq!(values(&a.list().await?), ["a", "b", "c"]);
    assert_eq!(a.foreign_keys().len(), 4);

    // Once they are gone, the next read says so.
    nested.interrupt(Duration::from_secs(10))?;
    etcd.etcdctl_ok(&["del", &by_hand])?;
    etcd.etcdctl_ok(&["del", &misnamed])?;
    etcd.etcdctl_ok(&["del", &not_hex])?;
    observer
        .observation_where(CHANGE_SEEN_WITHIN, "a read after the deletions", |o| {
            values(o) == ["a", "b", "c"] && c.foreign_keys().is_empty()
        })
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_nested_inside_another_election_is_refused() -> Result<()> {
    let etcd = start_etcd().await?;
    let client = client_for(&etcd).await?;
    let mut options = EtcdOptions::new(vec![etcd.endpoint()]);
    options.request_timeout = REQUEST_TIMEOUT;
    let check = async |key: &str| check_key_placement(&options, key, 1, Duration::ZERO).await;

    // An election at /outer, run by etcdctl (Go's concurrency.Election).
    let mut outer = etcd.spawn_etcdctl(&["elect", "/outer", "go-leader"])?;
    let outer_key = outer.next_line(Duration::from_secs(10))?;
    let refusal = format!(
        "--key /outer/inner nests inside the election /outer, whose candidates /outer/... \
         would count our keys as theirs: choose a key outside it ({outer_key} is one of its \
         candidates)"
    );
    assert_eq!(check("/outer/inner").await, Placement::Nested(refusal));
    match check("/outer/inner/deeper").await {
        Placement::Nested(line) => {
            ensure!(line.contains("nests inside the election /outer,"), "{line}")
        }
        other => bail!("/outer/inner/deeper: {other:?}"),
    }
    // Beside it, not inside: fine.
    assert_eq!(check("/outerx/inner").await, Placement::Clear);
    assert_eq!(check("/outer").await, Placement::Clear);
    assert_eq!(check(KEY).await, Placement::Clear);

    // Under a prefix with only non-candidates (no lease, a name that is not the lease, our
    // own candidates one level down): fine.
    etcd.etcdctl_ok(&["put", "/shared/abc", "by hand"])?;
    let inner = Election::new(
        client.clone(),
        "/shared/inner".to_owned(),
        "ours".to_owned(),
        REQUEST_TIMEOUT,
    );
    let inner_id = campaign(&inner, Duration::from_secs(30)).await?;
    let inner_lease = format!("{:x}", inner_id.lease);
    etcd.etcdctl_ok(&["put", "/shared/def", "x", "--lease", &inner_lease])?;
    assert_eq!(check("/shared/inner").await, Placement::Clear);

    // A candidate behind more than a page of other keys is found.
    let mut kv = client.kv_client();
    for i in 0..300 {
        kv.put(format!("/paged/{i:04}"), "filler", None).await?;
    }
    let paged = Election::new(
        client.clone(),
        "/paged".to_owned(),
        "paged".to_owned(),
        REQUEST_TIMEOUT,
    );
    let paged_id = campaign(&paged, Duration::from_secs(30)).await?;
    ensure!(format!("{:x}", paged_id.lease) > "0300".to_owned());
    match check("/paged/inner").await {
        Placement::Nested(line) => ensure!(
            line.contains(&format!("(/paged/{:x} is one", paged_id.lease)),
            "{line}"
        ),
        other => bail!("/paged/inner: {other:?}"),
    }

    // When the outer election is gone, the key is fine.
    outer.interrupt(Duration::from_secs(10))?;
    assert_eq!(check("/outer/inner").await, Placement::Clear);

    // etcd unreachable: said so, within the bound of the tries.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut nowhere = EtcdOptions::new(vec![format!("http://127.0.0.1:{port}")]);
    nowhere.connect_timeout = Duration::from_secs(1);
    nowhere.request_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let placement =
        check_key_placement(&nowhere, "/outer/inner", 2, Duration::from_millis(100)).await;
    ensure!(
        matches!(&placement, Placement::Unchecked(reason) if reason.contains("unreachable")),
        "{placement:?}"
    );
    ensure!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

/// Runs `call`, and checks it fails within the request timeout (plus scheduling slack).
async fn assert_bounded<T: std::fmt::Debug>(
    what: &str,
    bound: Duration,
    call: impl std::future::Future<Output = Result<T, EtcdError>>,
) -> Result<()> {
    let started = Instant::now();
    let outcome = tokio::time::timeout(bound * 3, call).await;
    let elapsed = started.elapsed();
    match outcome {
        Err(_) => bail!("{what} hung for {elapsed:?}"),
        Ok(Ok(answer)) => bail!("{what} succeeded against a frozen etcd: {answer:?}"),
        Ok(Err(error)) => {
            eprintln!("{what}, after {elapsed:?}: {error}");
            ensure!(
                is_bounded_failure(&error),
                "{what}: unexpected error {error}"
            );
            ensure!(
                elapsed <= bound + Duration::from_millis(500),
                "{what} took {elapsed:?}, bound {bound:?}: {error}"
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_is_bounded_when_etcd_hangs() -> Result<()> {
    let mut etcd = start_etcd().await?;
    let timeout = Duration::from_secs(1);
    let mut options = EtcdOptions::new(vec![etcd.endpoint()]);
    options.request_timeout = timeout;
    options.connect_timeout = timeout;
    let client = connect(&options).await?;
    let ours = Election::new(client, KEY.to_owned(), "ours".to_owned(), timeout);
    let ours_id = campaign(&ours, Duration::from_secs(60)).await?;
    // An open keep-alive stream and an established watch, as in production.
    assert_eq!(
        ours.keep_alive_once(ours_id.lease).await?,
        Duration::from_secs(60)
    );
    let mut observer = Observer::start(&ours);
    observer
        .observation_where(CHANGE_SEEN_WITHIN, "the first read", |_| true)
        .await?;

    etcd.pause()?;
    let record = HandoverRecord {
        from: ours_id,
        value: "ours".to_owned(),
        key_withdrawn: false,
    };
    assert_bounded("grant", timeout, ours.grant(Duration::from_secs(10))).await?;
    assert_bounded("keep-alive", timeout, ours.keep_alive_once(ours_id.lease)).await?;
    // The stream was dropped with the timed-out call: a fresh one is opened, and bounded too.
    assert_bounded(
        "keep-alive, again",
        timeout,
        ours.keep_alive_once(ours_id.lease),
    )
    .await?;
    assert_bounded(
        "create candidate",
        timeout,
        ours.create_candidate(ours_id.lease),
    )
    .await?;
    assert_bounded("observe once", timeout, ours.observe_once()).await?;
    assert_bounded("list", timeout, ours.list()).await?;
    assert_bounded("handover request", timeout, ours.request_handover(None)).await?;
    assert_bounded("clear request", timeout, ours.clear_handover_request()).await?;
    assert_bounded("revoke", timeout, ours.revoke(ours_id.lease)).await?;
    // Two steps (transaction, then revocation), each bounded.
    assert_bounded(
        "resign",
        timeout * 2,
        ours.resign(ours_id.lease, Some(ours_id), Some(record), None),
    )
    .await?;
    // The observer notices: its periodic re-read times out.
    let reason = observer.failure(Duration::from_secs(6)).await?;
    ensure!(
        reason.contains("timed out") || reason.contains("failed"),
        "{reason}"
    );
    // A new connection cannot be made either, and says so.
    match tokio::time::timeout(Duration::from_secs(6), connect(&options)).await {
        Ok(Err(EtcdError::Unreachable { endpoints, .. })) => assert_eq!(endpoints, etcd.endpoint()),
        Ok(other) => bail!("connect to a frozen etcd: {}", connected(other)),
        Err(_) => bail!("connect to a frozen etcd hung"),
    }

    etcd.resume()?;
    // A timed-out call may still take effect: the frozen etcd had the requests in its socket
    // buffer and may carry them out now (here the revocation and the resignation). So only
    // recovery is checked, not what the lease and key look like.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match ours.observe_once().await {
            Ok(_) => break,
            Err(error) if Instant::now() < deadline => {
                eprintln!("after resume: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => bail!("no recovery after resume: {error}"),
        }
    }
    // Everything works again, on the same client and the same observer.
    let again = campaign(&ours, Duration::from_secs(60)).await?;
    assert_eq!(
        ours.keep_alive_once(again.lease).await?,
        Duration::from_secs(60)
    );
    observer
        .observation_where(Duration::from_secs(15), "the new campaign", |o| {
            o.candidates.iter().any(|c| c.id == again)
        })
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_recovers_after_etcd_restarts() -> Result<()> {
    let mut etcd = start_etcd().await?;
    let client = client_for(&etcd).await?;
    let ours = election(&client, "ours");
    let ours_id = campaign(&ours, Duration::from_secs(60)).await?;
    let mut observer = Observer::start(&ours);
    observer
        .observation_where(CHANGE_SEEN_WITHIN, "the first read", |o| {
            values(o) == ["ours"]
        })
        .await?;

    let mut etcd = tokio::task::spawn_blocking(move || etcd.stop().map(|()| etcd)).await??;
    let reason = observer.failure(Duration::from_secs(10)).await?;
    eprintln!("while etcd was down: {reason}");
    let etcd = tokio::task::spawn_blocking(move || etcd.start().map(|()| etcd)).await??;

    // The lease survived the restart (etcd persists leases), so we are still listed.
    observer
        .observation_where(Duration::from_secs(20), "a read after the restart", |o| {
            values(o) == ["ours"]
        })
        .await?;
    // And the new watch works: a change shows at once.
    let newcomer = election(&client, "newcomer");
    campaign(&newcomer, Duration::from_secs(30)).await?;
    observer
        .observation_where(CHANGE_SEEN_WITHIN, "the newcomer", |o| {
            values(o) == ["ours", "newcomer"]
        })
        .await?;
    assert_eq!(
        ours.keep_alive_once(ours_id.lease).await?,
        Duration::from_secs(60)
    );
    drop(etcd);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_reports_unreachable_etcd_and_bad_passwords() -> Result<()> {
    // Nothing listens on a port we just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let nowhere = format!("http://127.0.0.1:{port}");
    let mut options = EtcdOptions::new(vec![nowhere.clone()]);
    options.connect_timeout = Duration::from_secs(1);
    options.request_timeout = Duration::from_secs(1);
    let started = Instant::now();
    match connect(&options).await {
        Err(error @ EtcdError::Unreachable { .. }) => {
            let message = error.to_string();
            ensure!(
                message.starts_with(&format!("etcd at {nowhere} unreachable: ")),
                "{message}"
            );
            eprintln!("{message}");
        }
        other => bail!("connect to nothing: {}", connected(other)),
    }
    ensure!(started.elapsed() < Duration::from_secs(3));

    // Authentication on: a wrong password is named as such, the right one works.
    let etcd = start_etcd().await?;
    etcd.etcdctl_ok(&["user", "add", "root:rootpw"])?;
    etcd.etcdctl_ok(&["user", "add", "elector:s3cret"])?;
    etcd.etcdctl_ok(&["role", "add", "elector"])?;
    etcd.etcdctl_ok(&[
        "role",
        "grant-permission",
        "elector",
        "readwrite",
        KEY,
        "--prefix=true",
    ])?;
    // A second election key for the same user, one level down (`/team/iotex`).
    etcd.etcdctl_ok(&[
        "role",
        "grant-permission",
        "elector",
        "readwrite",
        "/team/iotex",
        "--prefix=true",
    ])?;
    etcd.etcdctl_ok(&["user", "grant-role", "elector", "elector"])?;
    etcd.etcdctl_ok(&["auth", "enable"])?;

    let mut options = EtcdOptions::new(vec![etcd.endpoint()]);
    options.user = Some("elector".to_owned());
    options.password = Some("wrong".to_owned());
    match connect(&options).await {
        Err(error @ EtcdError::AuthenticationFailed { .. }) => {
            let message = error.to_string();
            ensure!(
                message.starts_with("etcd authentication failed for user elector: "),
                "{message}"
            );
            ensure!(!message.contains("wrong"), "{message}");
            eprintln!("{message}");
        }
        other => bail!("connect with a wrong password: {}", connected(other)),
    }
    options.password = Some("s3cret".to_owned());
    // The user may not read /team/: whether /team/iotex nests cannot be checked. Said at once,
    // not retried.
    let started = Instant::now();
    let placement = check_key_placement(&options, "/team/iotex", 3, Duration::from_secs(2)).await;
    ensure!(
        matches!(&placement, Placement::Unchecked(reason) if reason.contains("permission denied")),
        "{placement:?}"
    );
    ensure!(
        started.elapsed() < Duration::from_secs(2),
        "retried: {:?}",
        started.elapsed()
    );
    let client = connect(&options).await?;
    let ours = election(&client, "ours");
    let ours_id = campaign(&ours, Duration::from_secs(30)).await?;
    assert_eq!(values(&ours.observe_once().await?), ["ours"]);
    ours.resign(
        ours_id.lease,
        Some(ours_id),
        Some(HandoverRecord {
            from: ours_id,
            value: "ours".to_owned(),
            key_withdrawn: false,
        }),
        None,
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_over_tls_with_a_client_certificate() -> Result<()> {
    let etcd =
        tokio::task::spawn_blocking(|| EtcdProcess::start_new_tls(TestPki::generate()?)).await??;
    let pki = TestPki::generate()?; // Another CA: etcd must be refused.
    let endpoint = etcd.endpoint();
    ensure!(endpoint.starts_with("https://"), "{endpoint}");
    let files = etcd.tls_files().context("etcd runs with TLS")?;

    let mut options = EtcdOptions::new(vec![endpoint.clone()]);
    options.ca = Some(files.ca.clone());
    options.cert = Some(files.client_cert.clone());
    options.key = Some(files.client_key.clone());
    let client = connect(&options).await?;
    let ours = election(&client, "ours");
    let ours_id = campaign(&ours, Duration::from_secs(30)).await?;
    assert_eq!(values(&ours.observe_once().await?), ["ours"]);
    assert_eq!(
        ours.keep_alive_once(ours_id.lease).await?,
        Duration::from_secs(30)
    );
    ours.resign(ours_id.lease, Some(ours_id), None, None)
        .await?;

    // Without a client certificate, etcd hangs up during the handshake.
    let without_cert = EtcdOptions {
        cert: None,
        key: None,
        ..options.clone()
    };
    let refused = connect(&without_cert).await;
    eprintln!(
        "without a client certificate: {}",
        connected_outcome(&refused)
    );
    ensure!(matches!(refused, Err(EtcdError::Unreachable { .. })));

    // A server certificate from an unknown CA is refused.
    let wrong_ca = EtcdOptions {
        ca: Some(pki.ca.clone()),
        ..options.clone()
    };
    let refused = connect(&wrong_ca).await;
    eprintln!("with the wrong CA: {}", connected_outcome(&refused));
    match refused {
        Err(EtcdError::Unreachable { reason, .. }) => {
            ensure!(reason.contains("certificate"), "{reason}")
        }
        other => bail!("wrong CA accepted: {}", connected(other)),
    }
    Ok(())
}

//! The model etcd inside a turmoil simulation, reached by the real etcd-client over turmoil's
//! network: the wiring the elector simulations use, on simulated time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use elector_sim::world::etcd_model::{EtcdModel, turmoil_client};
use etcd_client::{Client, EventType, PutOptions, WatchOptions};
use tokio::time::Instant;

type Transcript = Arc<Mutex<Vec<String>>>;

fn sim(seed: u64) -> turmoil::Sim<'static> {
    turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(60))
        .rng_seed(seed)
        .build()
}

/// The etcd host: serves the model on port 2379; a bounce restarts it over the same store.
fn etcd_host(sim: &mut turmoil::Sim<'static>, model: &EtcdModel) {
    let model = model.clone();
    sim.host("etcd", move || {
        let model = model.clone();
        async move {
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", 2379)).await?;
            model.serve_turmoil(listener).await?;
            Ok(())
        }
    });
}

async fn connect() -> Result<Client, etcd_client::Error> {
    turmoil_client("http://etcd:2379").await
}

fn sim_ms() -> u128 {
    turmoil::sim_elapsed().unwrap_or_default().as_millis()
}

/// Grant, put, keep alive for a while, stop, and see the key's delete event once the lease
/// expires. Returns what the client saw, with simulated times.
fn keep_alive_then_expire(seed: u64) -> Vec<String> {
    let mut sim = sim(seed);
    let model = EtcdModel::new(seed);
    etcd_host(&mut sim, &model);
    let transcript = Transcript::default();
    let log = transcript.clone();
    sim.client("elector", async move {
        let note = |line: String| log.lock().expect("log").push(line);
        let mut client = connect().await?;
        let lease = client.lease_grant(3, None).await?;
        let id = lease.id();
        note(format!(
            "{} granted {id:016x} ttl {}",
            sim_ms(),
            lease.ttl()
        ));
        let put = client
            .put("/e/k", "v", Some(PutOptions::new().with_lease(id)))
            .await?;
        note(format!(
            "{} put at {:?}",
            sim_ms(),
            put.header().map(|h| h.revision())
        ));
        let mut watch = client
            .watch("/e/", Some(WatchOptions::new().with_prefix()))
            .await?;
        assert!(watch.message().await?.expect("created").created());

        let (mut keeper, mut acks) = client.lease_keep_alive(id).await?;
        let mut last_sent = Instant::now();
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            last_sent = Instant::now();
            keeper.keep_alive().await?;
            let ack = acks.message().await?.expect("ack");
            assert_eq!((ack.id(), ack.ttl()), (id, 3));
            note(format!("{} ack ttl {}", sim_ms(), ack.ttl()));
        }

        let resp = watch.message().await?.expect("delete event");
        let waited = last_sent.elapsed();
        let event = &resp.events()[0];
        assert_eq!(event.event_type(), EventType::Delete);
        let rev = event.kv().expect("kv").mod_revision();
        note(format!("{} deleted at {rev} after {waited:?}", sim_ms()));
        // The last renewal reached the server after the send: the key lives at least the TTL
        // after it, and goes within a sweep (500 ms) plus the message latencies (turmoil's
        // default: up to 100 ms each way).
        assert!(
            waited >= Duration::from_secs(3) && waited <= Duration::from_millis(3800),
            "deleted {waited:?} after the last keep-alive"
        );
        let ttl = client.lease_time_to_live(id, None).await?;
        assert_eq!(ttl.ttl(), -1);
        Ok(())
    });
    sim.run().expect("simulation");
    assert!(model.leases().is_empty());
    assert!(model.candidates("/e/").is_empty());
    transcript.lock().expect("log").clone()
}

#[test]
fn a_lease_kept_alive_lives_and_expires_on_simulated_time() {
    let lines = keep_alive_then_expire(11);
    assert_eq!(lines.len(), 8, "{lines:#?}");
}

#[test]
fn the_same_seed_gives_the_same_run() {
    assert_eq!(keep_alive_then_expire(5), keep_alive_then_expire(5));
}

/// etcd crashes at 2 s and comes back at 3 s: the lease then lives its full TTL plus the
/// election timeout from the restart (3 + 5 + 1 = 9 s), not from the grant.
#[test]
fn a_restart_in_simulation_extends_leases_and_clients_reconnect() {
    let mut sim = sim(3);
    let model = EtcdModel::new(3);
    etcd_host(&mut sim, &model);
    let deleted_at = Arc::new(Mutex::new(None));
    let result = deleted_at.clone();
    sim.client("elector", async move {
        let mut client = connect().await?;
        let id = client.lease_grant(5, None).await?.id();
        client
            .put("/e/k", "v", Some(PutOptions::new().with_lease(id)))
            .await?;
        // Watch until the crash breaks the stream, then watch again (from the next revision)
        // until the delete arrives.
        let mut from = 0;
        loop {
            let options = WatchOptions::new().with_prefix().with_start_revision(from);
            let Ok(mut watch) = client.watch("/e/", Some(options)).await else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            while let Ok(Some(resp)) = watch.message().await {
                if let Some(header) = resp.header() {
                    from = header.revision() + 1;
                }
                if resp
                    .events()
                    .iter()
                    .any(|e| e.event_type() == EventType::Delete)
                {
                    *result.lock().expect("result") = Some(sim_ms());
                    return Ok(());
                }
            }
        }
    });

    let mut crashed = false;
    let mut bounced = false;
    while !sim.step().expect("simulation") {
        let now = sim.elapsed();
        if !crashed && now >= Duration::from_secs(2) {
            sim.crash("etcd");
            crashed = true;
        }
        if !bounced && now >= Duration::from_secs(3) {
            sim.bounce("etcd");
            bounced = true;
        }
    }
    let at = deleted_at.lock().expect("result").expect("deleted");
    assert!(
        (9_000..=9_700).contains(&at),
        "the key was deleted at {at} ms of simulated time, expected 9 s + a sweep"
    );
    assert_eq!(model.boots(), 2);
    assert_eq!(model.read(|s| s.raft_term()), 3);
}

//! A leader whose etcd member goes silent: with every elector given all three endpoints of a
//! three-member cluster, the member behind the first endpoint is frozen with SIGSTOP (its
//! sockets stay open, nothing answers, no reset: a host that vanished). Every keep-alive is
//! bounded by the request timeout and a failed one is retried at once over a member the
//! client picks; the HTTP/2 pings (one keep-alive interval, one request timeout:
//! `Timing::etcd_ping_interval`) close the dead connection. So the leader keeps its lease and
//! its node stays active, without a demotion. Run `cargo build -p elector` first.
//!
//! The frozen member is a raft follower: freezing the raft leader also stops the whole
//! cluster for etcd's own election (1 s by default), which is the etcd-wide outage the
//! benchmark measures, not the connection switch measured here.

use elector_integration::cluster::{Cluster, ClusterOptions, SETTLE, ttl};
use elector_integration::etcd_process::{EtcdProcess, raft_leader};
use std::time::Duration;
use tokio::time::Instant;

/// How long the member stays frozen: several lease TTLs, so a leader that cannot leave the
/// dead connection would step down.
const FROZEN_FOR: Duration = Duration::from_secs(12);
/// How often the leader's `/status` is read while the member is frozen.
const POLL: Duration = Duration::from_millis(50);

/// Role changes of replica `i` since its start.
async fn transitions(cluster: &Cluster, i: usize) -> f64 {
    cluster
        .metric(i, "elector_role_transitions_total")
        .await
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_rides_through_a_silently_frozen_etcd_member() {
    let mut members = tokio::task::block_in_place(|| EtcdProcess::start_cluster(3, None))
        .expect("starting a three-member etcd cluster");
    let mut endpoints: Vec<String> = members.iter().map(EtcdProcess::endpoint).collect();
    let first_leads = raft_leader(&endpoints).await.expect("raft leader") == 0;
    // A follower's endpoint first: that member is the one frozen.
    if first_leads {
        members.swap(0, 1);
        endpoints.swap(0, 1);
    }
    let cluster = Cluster::start_with(ClusterOptions {
        etcd_endpoints: endpoints.clone(),
        ..ClusterOptions::default()
    })
    .await;
    let leader = cluster.wait_for_single_leader(SETTLE).await;
    // Let the leader's client spread its calls over every member first.
    tokio::time::sleep(2 * ttl()).await;
    let transitions_before = transitions(&cluster, leader).await;
    let failures_before = cluster
        .metric(leader, "elector_keepalive_failures_total")
        .await
        .unwrap_or_default();

    tokio::task::block_in_place(|| members[0].pause()).expect("freezing the first member");
    let frozen_at = Instant::now();
    // The lease deadline as an instant, after every renewal: the longest time between two
    // renewals is how long the leader went without etcd, i.e. until it switched members.
    let mut last_renewal = frozen_at;
    let mut last_deadline: Option<Instant> = None;
    let mut longest_gap = Duration::ZERO;
    let mut closest_to_step_down: Option<u64> = None;
    while frozen_at.elapsed() < FROZEN_FOR {
        let now = Instant::now();
        if let Some(status) = cluster.status(leader).await {
            assert_eq!(
                status["role"].as_str(),
                Some("active"),
                "the leader left its role while one member was frozen:\n{}",
                cluster.describe().await
            );
            if let Some(left) = status["lease_deadline_in_ms"].as_u64() {
                let deadline = now + Duration::from_millis(left);
                // Renewed: the deadline moved on by more than the polling jitter.
                if last_deadline.is_none_or(|d| deadline > d + Duration::from_millis(100)) {
                    longest_gap = longest_gap.max(now - last_renewal);
                    last_renewal = now;
                }
                last_deadline = Some(deadline);
            }
            if let Some(left) = status["step_down_deadline_in_ms"].as_u64() {
                closest_to_step_down = Some(closest_to_step_down.map_or(left, |c| c.min(left)));
            }
        }
        assert_eq!(
            cluster.active_nodes(),
            vec![leader],
            "node {leader} left active"
        );
        tokio::time::sleep(POLL).await;
    }
    longest_gap = longest_gap.max(last_renewal.elapsed());
    let failures = cluster
        .metric(leader, "elector_keepalive_failures_total")
        .await
        .unwrap_or_default()
        - failures_before;
    tokio::task::block_in_place(|| members[0].resume()).expect("resuming the first member");

    println!(
        "frozen member {}: longest time without a lease renewal {} ms (keep-alive interval 300 ms), \
         {failures} failed keep-alives, closest to the step-down deadline {} ms",
        endpoints[0],
        longest_gap.as_millis(),
        closest_to_step_down.unwrap_or_default()
    );
    assert_eq!(
        transitions(&cluster, leader).await,
        transitions_before,
        "the leader changed role while one member was frozen"
    );
    // Generous: the renewal window of the 3 s profile is 1.67 s; a leader stuck on the dead
    // member would go without renewals until it stepped down.
    assert!(
        longest_gap < Duration::from_millis(1600),
        "the leader went {longest_gap:?} without renewing its lease"
    );
    cluster.assert_never_two_active();
    cluster.assert_no_panics();
}

//! Maintenance with `elector exclude` / `elector include` (rule `excluded_replica`), run as the
//! real binary against real electors, a real etcd and stand-in nodes (the shared cluster
//! fixture, fast timing profile): an excluded leader hands over cleanly (its successor
//! activates without the activation delay, the handover record names it), an excluded
//! replica never campaigns, not even when the leader after it dies, and campaigns again once
//! included; an excluded standby withdraws its key; both commands are idempotent; a bad VALUE
//! exits 2 with one line. The dual-active monitor watches every node throughout.
//!
//! Run `cargo build -p elector` first. Every wait and every command is bounded.

use elector::etcd::{Election, EtcdOptions, connect};
use elector_core::Observation;
use elector_integration::cluster::{Cluster, ClusterOptions, KEY, SETTLE};
use elector_integration::operator::{CommandRun, run_elector_command};
use elector_integration::timing_profile::TimingProfile;
use std::time::Duration;
use tokio::time::Instant;

/// Bound on one operator command: above `EXCLUDE_TIMEOUT`, which bounds the longest.
const COMMAND_BOUND: Duration = Duration::from_secs(60);
/// `elector exclude --timeout`: generous for a loaded machine; a handover takes about a second
/// with the fast profile.
const EXCLUDE_TIMEOUT: &str = "30s";
/// The activation delay of the cluster's profile (2.6 s, set by
/// `activation_delay_covers_early_revocation`). A successor that skipped it activates well
/// within.
fn activation_delay() -> Duration {
    TimingProfile::Functional.timing().activation_delay
}
/// How long an excluded replica is watched for a campaign after the leader died: past the
/// dead leader's lease (3 s) and the next leader's activation delay.
const WATCH_EXCLUDED: Duration = Duration::from_secs(8);

/// The election as etcd holds it now.
async fn election(cluster: &Cluster) -> Observation {
    let client = connect(&EtcdOptions::new(vec![cluster.etcd().endpoint()]))
        .await
        .expect("connecting to etcd");
    Election::new(
        client,
        KEY.to_owned(),
        String::new(),
        Duration::from_secs(2),
    )
    .list()
    .await
    .expect("reading the election")
}

fn values(observation: &Observation) -> Vec<String> {
    observation
        .candidates
        .iter()
        .map(|c| c.value.clone())
        .collect()
}

/// Waits until the candidates are `count` in number and returns their values in order.
async fn wait_for_candidates(cluster: &Cluster, count: usize) -> Vec<String> {
    let mut last = Vec::new();
    cluster
        .wait_until(&format!("{count} candidates"), SETTLE, async || {
            last = values(&election(cluster).await);
            last.len() == count
        })
        .await;
    last
}

async fn operator(cluster: &Cluster, args: &[&str]) -> CommandRun {
    let endpoint = cluster.etcd().endpoint();
    let mut all = args.to_vec();
    all.extend(["--etcd", &endpoint, "--key", KEY]);
    let run = run_elector_command(&all, COMMAND_BOUND).await;
    println!("elector {all:?}:\n{}{}", run.stdout, run.stderr);
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_excluded_leader_hands_over_and_stays_out_until_included() {
    let mut cluster = Cluster::start_with(ClusterOptions::default()).await;
    let old = cluster.wait_for_single_leader(SETTLE).await;
    wait_for_candidates(&cluster, 3).await;
    let old_value = cluster.value(old).to_owned();

    let run = operator(
        &cluster,
        &[
            "exclude",
            &old_value,
            "--reason",
            "iotex-core upgrade",
            "--timeout",
            EXCLUDE_TIMEOUT,
        ],
    )
    .await;
    run.assert_code(0, "exclude the leader");
    assert!(run.stdout.contains("handed over cleanly"), "{run:?}");
    let successor = cluster.wait_for_new_leader(old, SETTLE).await;
    assert!(
        run.stdout
            .contains(&format!("{} leads now", cluster.value(successor))),
        "{run:?}"
    );

    // Clean: the record names the old leader, and the successor skipped the delay.
    let after = election(&cluster).await;
    let record = after.handover_record.as_ref().expect("a handover record");
    assert_eq!(record.value, old_value);
    assert!(!values(&after).contains(&old_value), "{after:?}");
    let standby_at = cluster
        .last_deactivation(old)
        .expect("the old leader's node went standby");
    let active_at = cluster
        .activations()
        .into_iter()
        .filter(|&(i, _)| i == successor)
        .map(|(_, at)| at)
        .max()
        .expect("the successor's node went active");
    assert!(active_at > standby_at, "{standby_at:?} {active_at:?}");
    println!(
        "{old_value} standby at {standby_at:?}, {} active at {active_at:?}: gap {:?}",
        cluster.value(successor),
        active_at - standby_at
    );
    assert!(
        active_at - standby_at < activation_delay(),
        "the successor waited the activation delay: standby at {standby_at:?}, active at \
         {active_at:?}"
    );

    // The excluded replica says so: /status, /metrics, one log line.
    let status = cluster
        .status(old)
        .await
        .expect("the excluded one's /status");
    assert_eq!(status["excluded"], true, "{status}");
    assert_eq!(
        status["exclusion"]["reason"], "iotex-core upgrade",
        "{status}"
    );
    assert_eq!(status["role"], "standby", "{status}");
    assert_eq!(cluster.metric(old, "elector_excluded").await, Some(1.0));
    assert_eq!(cluster.log_messages(old, "EXCLUDED").len(), 1);

    // The successor dies (its node forced standby, as ExecStopPost= does): the third replica
    // takes over; the excluded one never campaigns.
    cluster.kill_elector(successor);
    assert!(cluster.supervisor_forces_standby(successor).await);
    let third = (0..3).find(|&i| i != old && i != successor).expect("three");
    let watch_until = Instant::now() + WATCH_EXCLUDED;
    while Instant::now() < watch_until {
        let now = election(&cluster).await;
        assert!(
            !values(&now).contains(&old_value),
            "the excluded replica campaigned: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cluster.wait_for_new_leader(successor, SETTLE).await, third);
    assert_eq!(cluster.role(old).await.as_deref(), Some("standby"));

    // Included: it campaigns again, behind the leader. Twice is fine.
    let run = operator(&cluster, &["include", &old_value]).await;
    run.assert_code(0, "include");
    assert!(run.stdout.contains("included"), "{run:?}");
    let order = wait_for_candidates(&cluster, 2).await;
    assert_eq!(order, [cluster.value(third), old_value.as_str()]);
    let run = operator(&cluster, &["include", &old_value]).await;
    run.assert_code(0, "include again");
    assert!(run.stdout.contains("was not excluded"), "{run:?}");
    assert_eq!(cluster.metric(old, "elector_excluded").await, Some(0.0));
    assert_eq!(cluster.log_messages(old, "included again").len(), 1);
    cluster.assert_never_two_active();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_excluded_standby_withdraws_and_bad_values_are_refused() {
    let cluster = Cluster::start_with(ClusterOptions {
        nodes: 2,
        ..ClusterOptions::default()
    })
    .await;
    let leader = cluster.wait_for_single_leader(SETTLE).await;
    wait_for_candidates(&cluster, 2).await;
    let standby = 1 - leader;
    let value = cluster.value(standby).to_owned();

    let run = operator(&cluster, &["exclude", &value, "--timeout", EXCLUDE_TIMEOUT]).await;
    run.assert_code(0, "exclude a standby");
    assert!(run.stdout.contains("withdrew its candidate key"), "{run:?}");
    assert_eq!(
        wait_for_candidates(&cluster, 1).await,
        [cluster.value(leader)]
    );
    assert_eq!(cluster.active_nodes(), [leader], "the leader is untouched");

    // Again: the first exclusion stays as it was; nothing to wait for.
    let run = operator(&cluster, &["exclude", &value, "--reason", "other"]).await;
    run.assert_code(0, "exclude again");
    assert!(run.stdout.contains("was excluded already"), "{run:?}");
    let status = cluster.status(standby).await.expect("its /status");
    assert_eq!(status["exclusion"]["reason"], "", "{status}");

    // Bad values: one line, exit 2, nothing written.
    for bad in ["", "two\nlines"] {
        let run = operator(&cluster, &["exclude", bad]).await;
        run.assert_code(2, "a bad value");
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:?}");
        assert!(run.stderr.contains("VALUE"), "{run:?}");
        operator(&cluster, &["include", bad])
            .await
            .assert_code(2, "a bad value");
    }

    let run = operator(&cluster, &["include", &value]).await;
    run.assert_code(0, "include");
    assert_eq!(wait_for_candidates(&cluster, 2).await[1], value);
    cluster.assert_never_two_active();
}

//! Rule `end_dead_term` with the real binary: when the leader's elector is killed (kill -9)
//! while its node is active, its restart, or `elector force-standby` run as systemd's
//! `ExecStopPost=`, ends the dead term in etcd once the node is confirmed standby, with a
//! handover record, so that the next leader activates once its last slot is past instead of waiting for the
//! lease to expire and then its activation delay. Run `cargo build -p elector` first.
//!
//! What is asserted is behaviour, not speed: the successor says it activated at once because
//! the previous leader handed over cleanly, and no two nodes were ever active.

use elector_integration::cluster::{Cluster, ClusterOptions, KEY, SETTLE};
use elector_integration::host::elector_binary;
use std::process::Stdio;

/// Every elector keeps its term in one shared directory (one file per value).
fn options(dir: &std::path::Path) -> ClusterOptions {
    ClusterOptions {
        extra_args: vec!["--state-dir".to_owned(), dir.display().to_string()],
        ..ClusterOptions::default()
    }
}

/// Waits until the leader sees every replica as a candidate (the others behind it).
async fn wait_for_three_candidates(cluster: &Cluster, leader: usize) {
    cluster
        .wait_until("three candidates", SETTLE, async || {
            cluster
                .status(leader)
                .await
                .and_then(|s| s["candidates"].as_array().map(Vec::len))
                == Some(3)
        })
        .await;
}

/// Whether replica `i` began a term after a clean handover: waiting only for its
/// predecessor's last slot, not the activation delay after a crash.
fn activated_after_clean_handover(cluster: &Cluster, i: usize) -> bool {
    !cluster
        .log_messages(
            i,
            "handed over cleanly: activating once its last slot is past",
        )
        .is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_elector_ends_its_dead_term_and_the_successor_activates_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cluster = Cluster::start_with(options(dir.path())).await;
    let leader = cluster.wait_for_single_leader(SETTLE).await;
    wait_for_three_candidates(&cluster, leader).await;
    assert!(
        dir.path()
            .read_dir()
            .expect("state dir")
            .any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("term-"))),
        "no term remembered"
    );

    cluster.kill_elector(leader);
    assert_eq!(
        cluster.active_nodes(),
        vec![leader],
        "killing the elector leaves its node"
    );
    cluster.start_elector(leader).await;
    let successor = cluster.wait_for_new_leader(leader, SETTLE).await;

    assert!(
        !cluster
            .log_messages(leader, "ended a term of ours that no process keeps")
            .is_empty(),
        "the restarted elector did not end its dead term:\n{}",
        cluster.log(leader)
    );
    assert!(
        activated_after_clean_handover(&cluster, successor),
        "the successor waited as after a crash:\n{}",
        cluster.log(successor)
    );
    cluster.assert_never_two_active();
    cluster.assert_no_panics();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_standby_after_a_crash_ends_the_dead_term() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cluster = Cluster::start_with(options(dir.path())).await;
    let leader = cluster.wait_for_single_leader(SETTLE).await;
    wait_for_three_candidates(&cluster, leader).await;
    cluster.kill_elector(leader);

    // systemd's ExecStopPost=: the same flags and variables as the elector.
    let admin = format!("http://{}", cluster.node(leader).admin_addr());
    let output = tokio::process::Command::new(elector_binary().expect("the elector binary"))
        .args([
            "force-standby",
            "--iotex-admin",
            &admin,
            "--etcd",
            &cluster.etcd().endpoint(),
            "--key",
            KEY,
            "--value",
            cluster.value(leader),
            "--state-dir",
            &dir.path().display().to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("running force-standby");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("with a handover record"),
        "force-standby did not end the dead term: {text}"
    );
    let successor = cluster.wait_for_new_leader(leader, SETTLE).await;
    assert!(
        activated_after_clean_handover(&cluster, successor),
        "the successor waited as after a crash:\n{}",
        cluster.log(successor)
    );
    cluster.assert_never_two_active();
    cluster.assert_no_panics();
}

/// Rule `end_dead_term` for a term of this process that an etcd outage interrupted: etcd stops
/// while a leader is active; the leader demotes its node in time and gives its lease up at its
/// deadline, but cannot delete its key or write its record while etcd is down (and etcd, once
/// back, resets every lease to its TTL, so the key would stand for another TTL). When etcd
/// answers again the old leader ends that term itself, with a handover record. Who leads next
/// depends on which candidate keys the others' own lapsed terms leave: a successor that was
/// directly behind the old leader activates once the last slot is past; one whose key came
/// later (the old leader itself among them) waits its activation delay, still a lease TTL
/// sooner than without the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_term_an_etcd_outage_interrupted_is_ended_when_etcd_returns() {
    let mut cluster = Cluster::start().await;
    let leader = cluster.wait_for_single_leader(SETTLE).await;
    wait_for_three_candidates(&cluster, leader).await;

    cluster.stop_etcd();
    cluster
        .wait_until("every elector to give its lease up", SETTLE, async || {
            for i in 0..cluster.len() {
                match cluster.status(i).await {
                    Some(s) if s["lease_id"].is_null() => {}
                    _ => return false,
                }
            }
            true
        })
        .await;
    assert!(
        cluster.active_nodes().is_empty(),
        "a node active without etcd"
    );
    cluster.start_etcd();
    let back = std::time::Instant::now();
    let new = cluster.wait_for_single_leader(SETTLE).await;
    eprintln!(
        "{} (old leader {}) active {:.1}s after etcd came back",
        cluster.value(new),
        cluster.value(leader),
        back.elapsed().as_secs_f64()
    );
    let ended = cluster.log_messages(leader, "ended a term of ours that no process keeps");
    assert!(
        ended.iter().any(|line| line["record"] == true),
        "the old leader did not end its interrupted term with a handover record:\n{}",
        cluster.log(leader)
    );
    cluster.assert_no_double_sign();
    cluster.assert_never_two_active();
    cluster.assert_no_panics();
}

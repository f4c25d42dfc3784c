//! The property itself, with the real binary: no height and round signed by two replicas.
//!
//! Three replicas beside stand-in nodes that follow iotex-core's consensus (slots of 2.5 s on
//! one grid shared by every stand-in, `prepare()` signing before it checks `active`) with our
//! delegate proposing every slot: the worst case, where every slot a successor uses too early
//! is a double sign. Leadership is moved again and again, in every way it moves: SIGTERM of
//! the leader's elector, `elector handover`, `elector exclude` (then `include`), the leader's
//! node turning unready, and kill -9 of the leader's elector restarted a second later with its
//! state directory (it ends its dead term). Each takeover must end with exactly one node
//! active, led by its elector; at the end every stand-in's signatures are judged together with
//! `elector_model::history::double_signs`, and then the mode histories with the dual-active
//! check.
//!
//! Bounded in count (three of each kind) and in time (no takeover starts after
//! [`BUDGET`]). Run `cargo build -p elector` first.

use elector_integration::cluster::{Cluster, ClusterOptions, KEY, SETTLE};
use elector_integration::operator::run_elector_command;
use std::time::{Duration, Instant};

/// Takeovers of each kind.
const ROUNDS: usize = 3;
/// No takeover starts after this much time: the file stays within a few minutes.
const BUDGET: Duration = Duration::from_secs(180);
/// Bound on each takeover: a handover waits for the predecessor's last slot, a restarted
/// elector first ends its dead term; generous for a loaded two-core machine.
const TAKEOVER: Duration = Duration::from_secs(60);
/// Bound on one operator command.
const COMMAND: Duration = Duration::from_secs(60);

#[derive(Copy, Clone, Debug)]
enum Takeover {
    Sigterm,
    Handover,
    Exclude,
    Unready,
    Kill9,
}

const KINDS: [Takeover; 5] = [
    Takeover::Sigterm,
    Takeover::Handover,
    Takeover::Exclude,
    Takeover::Unready,
    Takeover::Kill9,
];

/// Waits until the leader's elector sees all three replicas as candidates, so that every
/// takeover has two successors to choose from.
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

async fn operator(cluster: &Cluster, args: &[&str]) {
    let endpoint = cluster.etcd().endpoint();
    let mut all = args.to_vec();
    all.extend(["--etcd", &endpoint, "--key", KEY]);
    let run = run_elector_command(&all, COMMAND).await;
    run.assert_code(0, &format!("elector {all:?}"));
}

/// Moves leadership away from `leader` by `kind`; returns the new leader once exactly one
/// node is active and its elector says so, with the old leader's replica back in the
/// election.
async fn take_over(cluster: &mut Cluster, leader: usize, kind: Takeover) -> usize {
    let value = cluster.value(leader).to_owned();
    let new = match kind {
        Takeover::Sigterm => {
            cluster.sigterm(leader);
            let new = cluster.wait_for_new_leader(leader, TAKEOVER).await;
            cluster.wait_exit(leader, SETTLE).await;
            cluster.start_elector(leader).await;
            new
        }
        Takeover::Handover => {
            operator(cluster, &["handover", "--timeout", "30s"]).await;
            cluster.wait_for_new_leader(leader, TAKEOVER).await
        }
        Takeover::Exclude => {
            operator(cluster, &["exclude", &value, "--timeout", "30s"]).await;
            let new = cluster.wait_for_new_leader(leader, TAKEOVER).await;
            operator(cluster, &["include", &value]).await;
            new
        }
        Takeover::Unready => {
            cluster.node(leader).set_ready(false);
            let new = cluster.wait_for_new_leader(leader, TAKEOVER).await;
            cluster.node(leader).set_ready(true);
            new
        }
        Takeover::Kill9 => {
            cluster.kill_elector(leader);
            tokio::time::sleep(Duration::from_secs(1)).await;
            cluster.start_elector(leader).await;
            cluster.wait_for_new_leader(leader, TAKEOVER).await
        }
    };
    assert_eq!(
        cluster.active_nodes(),
        vec![new],
        "{kind:?} away from {value}: not exactly one active\n{}",
        cluster.describe().await
    );
    new
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_takeovers_never_double_sign() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Every elector keeps its term in one shared directory (one file per value): a restarted
    // elector finds the term its killed process left behind.
    let mut cluster = Cluster::start_with(ClusterOptions {
        extra_args: vec!["--state-dir".to_owned(), dir.path().display().to_string()],
        ..ClusterOptions::default()
    })
    .await;
    let started = Instant::now();
    let mut leader = cluster.wait_for_single_leader(SETTLE).await;
    let mut done = Vec::new();
    'rounds: for _ in 0..ROUNDS {
        for kind in KINDS {
            if started.elapsed() > BUDGET {
                break 'rounds;
            }
            wait_for_three_candidates(&cluster, leader).await;
            let at = Instant::now();
            let new = take_over(&mut cluster, leader, kind).await;
            eprintln!(
                "{kind:?}: {} -> {} in {:.1}s",
                cluster.value(leader),
                cluster.value(new),
                at.elapsed().as_secs_f64()
            );
            // The property after every takeover, so that a failure names the one that broke it.
            cluster.assert_no_double_sign();
            done.push(kind);
            leader = new;
            // The new leader signs a slot or two before leadership moves on.
            tokio::time::sleep(Duration::from_millis(2_500)).await;
        }
    }
    // Let the last leader sign a few slots, then judge the whole run.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let signatures: usize = cluster.signatures().iter().map(Vec::len).sum();
    eprintln!(
        "{} takeovers in {:.0}s; {signatures} signatures judged",
        done.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        done.len() >= KINDS.len(),
        "not every kind of takeover ran: {done:?}"
    );
    assert!(signatures > 0, "the leaders signed nothing");
    cluster.assert_never_two_active();
    cluster.assert_no_panics();
}

//! An elector run bare, as the Go elector always was (`elector -etcd=... -iotexAdmin=...` in a
//! shell, tmux or a `docker run` without a restart policy): no systemd, no `elector supervise`.
//! Its watcher (shell/src/commands/watcher.rs) must do what `ExecStopPost=` does under systemd.
//!
//! - kill -9 of the leader's elector (the process the operator started) or a SIGSTOP of it
//!   leaves its node standby within the restart bound plus a node round, and another replica
//!   takes over; the watcher ends the dead term, so the successor waits only for the last slot;
//! - a second elector on the same state file exits 2 naming the first;
//! - `force-standby` against a live elector's state changes nothing in etcd;
//! - without any `--state-dir` flag (the default directory), kill -9 of the leader's elector
//!   restarted a second later is taken over as after a clean handover (the restart ends the
//!   dead term; that test runs without the watcher, which would end it first).
//!
//! Everything is judged by signatures (no height and round signed twice) and then by the
//! nodes' modes. Time bounds are generous: they bound waits, they do not measure speed. Run
//! `cargo build -p elector` first.

use elector_core::Timing;
use elector_integration::cluster::{Cluster, ClusterOptions, KEY, PROFILE, SETTLE};
use elector_integration::operator::run_elector_command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bound on a takeover: the lease may have to expire, then the activation delay.
const TAKEOVER: Duration = Duration::from_secs(60);

/// The functional profile with a restart bound that leaves the watcher room for its watchdog
/// (inequality `watchdog_within_restart_bound`: loop stall + watchdog + 0.1 s + node timeout).
fn bare_timing() -> Timing {
    let mut timing = PROFILE.timing();
    timing.restart_bound = Duration::from_secs(5);
    timing.activation_delay = timing.minimum_activation_delay();
    timing
}

/// Two replicas started bare with the Go elector's flags (`-etcd=URL -iotexAdmin=URL ...`),
/// each with a state directory of its own.
fn bare() -> ClusterOptions {
    ClusterOptions {
        nodes: 2,
        go_flags: vec![0, 1],
        bare: true,
        timing: bare_timing(),
        ..ClusterOptions::default()
    }
}

/// Now on the stand-ins' clock (their model time is the wall clock since the UNIX epoch).
fn model_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
}

/// When replica `i`'s node was last seen going standby at or after `since` (model time).
fn standby_since(cluster: &Cluster, i: usize, since: Duration) -> Option<Duration> {
    let state = cluster.node(i).state();
    if state.active {
        return None;
    }
    state
        .history
        .iter()
        .rev()
        .find(|&&(at, active)| !active && at >= since)
        .map(|&(at, _)| at)
        .or(Some(since))
}

/// Whether a process whose command line names `--elector-pid <pid>` (the watcher of elector
/// `pid`) still runs.
fn watcher_of(pid: u32) -> bool {
    let needle = format!("--elector-pid\0{pid}\0");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .any(|cmdline| String::from_utf8_lossy(&cmdline).contains(&needle))
}

/// Whether replica `i` began its term after a clean handover (or a dead term its
/// predecessor's watcher or restart ended): waiting only for the last slot.
fn activated_after_clean_handover(cluster: &Cluster, i: usize) -> bool {
    !cluster
        .log_messages(
            i,
            "handed over cleanly: activating once its last slot is past",
        )
        .is_empty()
}

/// The leader's elector dies (`kill -9`) or hangs (`SIGSTOP`); the rest is the same.
async fn leader_fails(signal: libc::c_int) {
    let mut cluster = Cluster::start_with(bare()).await;
    let leader = cluster.wait_for_single_leader(SETTLE).await;
    let pid = cluster
        .elector_pid(leader)
        .expect("the leader's elector runs");
    cluster
        .wait_until("the leader's watcher", SETTLE, async || watcher_of(pid))
        .await;
    let failed_at = model_now();
    if signal == libc::SIGKILL {
        cluster.kill_elector(leader);
    } else {
        cluster.signal_elector(leader, signal);
    }
    cluster
        .wait_until("the failed leader's node standby", SETTLE, async || {
            !cluster.node(leader).state().active
        })
        .await;
    let standby_at = standby_since(&cluster, leader, failed_at).expect("standby");
    // The restart bound plus one node round (activate=false may wait for the slot in
    // progress), and a generous second for a loaded machine.
    let timing = bare_timing();
    let bound = timing.restart_bound + timing.block_interval + Duration::from_secs(1);
    assert!(
        standby_at.saturating_sub(failed_at) <= bound,
        "the node went standby {:?} after the elector failed (bound {bound:?})\n{}",
        standby_at.saturating_sub(failed_at),
        cluster.describe().await
    );
    if signal == libc::SIGSTOP {
        // The watcher killed the hung elector.
        let exit = cluster.wait_exit(leader, SETTLE).await;
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&exit),
            Some(libc::SIGKILL),
            "the hung elector was not killed: {exit:?}"
        );
    }
    let successor = cluster.wait_for_new_leader(leader, TAKEOVER).await;
    assert!(
        activated_after_clean_handover(&cluster, successor),
        "the watcher did not end the dead term: the successor waited as after a crash\n{}",
        cluster.log(leader)
    );
    cluster
        .wait_until("the watcher gone", SETTLE, async || !watcher_of(pid))
        .await;
    // The successor signs a slot or two; then the whole run is judged.
    tokio::time::sleep(timing.block_interval * 2).await;
    cluster.assert_no_double_sign();
    cluster.assert_never_two_active();
    cluster.assert_no_panics();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_bare_leader_leaves_its_node_standby_and_another_takes_over() {
    leader_fails(libc::SIGKILL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_of_a_bare_leader_leaves_its_node_standby_and_another_takes_over() {
    leader_fails(libc::SIGSTOP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_elector_on_the_same_state_exits_2_naming_the_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().display().to_string();
    let cluster = Cluster::start_with(ClusterOptions {
        nodes: 1,
        extra_args: vec!["--state-dir".to_owned(), state],
        ..bare()
    })
    .await;
    cluster.wait_for_single_leader(SETTLE).await;
    let first = cluster.elector_pid(0).expect("the first elector runs");
    let args = cluster.elector_args_with(0, "--status-addr", "off");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = run_elector_command(&args, SETTLE).await;
    run.assert_code(2, "a second elector on the same state");
    assert!(
        run.stderr.contains(&first.to_string()),
        "the refusal does not name process {first}: {}",
        run.stderr
    );
    assert_eq!(
        run.stderr.trim().lines().count(),
        1,
        "not one line: {}",
        run.stderr
    );
    assert_eq!(
        cluster.active_nodes(),
        vec![0],
        "the first elector leads on"
    );
    cluster.assert_no_double_sign();
    cluster.assert_no_panics();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_standby_against_a_live_elector_changes_nothing_in_etcd() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().display().to_string();
    let cluster = Cluster::start_with(ClusterOptions {
        extra_args: vec!["--state-dir".to_owned(), state.clone()],
        ..bare()
    })
    .await;
    let leader = cluster.wait_for_single_leader(SETTLE).await;
    let other = 1 - leader;
    cluster
        .wait_until("both candidates", SETTLE, async || {
            cluster
                .status(leader)
                .await
                .and_then(|s| s["candidates"].as_array().map(Vec::len))
                == Some(2)
        })
        .await;
    let lease = cluster.status(leader).await.expect("status")["lease_id"].clone();

    let admin = format!("http://{}", cluster.node(leader).admin_addr());
    let endpoint = cluster.etcd().endpoint();
    let run = run_elector_command(
        &[
            "force-standby",
            "--iotex-admin",
            &admin,
            "--etcd",
            &endpoint,
            "--key",
            KEY,
            "--value",
            cluster.value(leader),
            "--state-dir",
            &state,
        ],
        SETTLE,
    )
    .await;
    let text = format!("{}{}", run.stdout, run.stderr);
    assert!(
        text.contains("nothing ended in etcd"),
        "force-standby did not leave the live term alone: {text}"
    );
    // The leader keeps its lease and its key; the other replica never activates.
    let status = cluster.status(leader).await.expect("status");
    assert_eq!(status["lease_id"], lease, "the live term's lease changed");
    assert_eq!(
        status["candidates"].as_array().map(Vec::len),
        Some(2),
        "a candidate key went: {status}"
    );
    cluster
        .wait_until("the leader active again", SETTLE, async || {
            cluster.active_nodes() == vec![leader]
        })
        .await;
    assert!(
        cluster
            .log_messages(other, "role candidate -> leader")
            .is_empty(),
        "the other replica took the lead:\n{}",
        cluster.log(other)
    );
    cluster.assert_no_double_sign();
    cluster.assert_never_two_active();
    cluster.assert_no_panics();
}

/// The state files the elector's default directory holds for this cluster's values, removed
/// when the test ends (the default directory is shared with whatever else runs here).
struct DefaultStateFiles(Vec<std::path::PathBuf>);

impl Drop for DefaultStateFiles {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
            let _ = std::fs::remove_file(path.with_extension("lock"));
        }
    }
}

/// The restart path (rule `end_dead_term`), not the watcher's: these electors run without a
/// watcher, as under a supervisor that restarts them a second later with no `ExecStopPost=`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_state_dir_flag_a_restarted_leader_hands_over_cleanly() {
    let mut cluster = Cluster::start_with(ClusterOptions {
        default_state_dir: true,
        bare: false,
        ..bare()
    })
    .await;
    let dir = elector::state::state_dir(None).expect("a default state directory");
    let _cleanup = DefaultStateFiles(
        (0..cluster.len())
            .map(|i| {
                elector::state::StateFile::new(&dir, KEY, cluster.value(i))
                    .path()
                    .to_owned()
            })
            .collect(),
    );
    let leader = cluster.wait_for_single_leader(SETTLE).await;
    // Give the term time to be remembered (it is written when the node is first active).
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.kill_elector(leader);
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.start_elector(leader).await;
    let successor = cluster.wait_for_new_leader(leader, TAKEOVER).await;
    assert!(
        !cluster
            .log_messages(leader, "ended a term of ours that no process keeps")
            .is_empty(),
        "the restarted elector found no term in its default state directory:\n{}",
        cluster.log(leader)
    );
    assert!(
        activated_after_clean_handover(&cluster, successor),
        "the successor waited as after a crash:\n{}",
        cluster.log(successor)
    );
    cluster.assert_no_double_sign();
    cluster.assert_never_two_active();
    cluster.assert_no_panics();
}

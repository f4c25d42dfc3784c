//! Half-broken nodes with real processes: a real etcd, stand-in nodes over real HTTP and one
//! `elector` process per node (`elector_integration::cluster`, the fast profile with a 3 s
//! lease), for the rules `lead_may_be_given_away`, `give_way_when_node_lost`, `fence` and
//! `report_stuck`. Run `cargo build -p elector` first.
//!
//! - the leader's admin endpoint hangs, then SIGTERM: without a fence it keeps the lead and
//!   reports itself stuck until the node answers again; with a fence that kills the node it
//!   exits 1 and another replica takes over after the node died;
//! - the leader's node process dies: with a fence another replica takes over; without one the
//!   leader keeps the key and reports itself stuck;
//! - the leader's node refuses `activate=true` while reads work: the leader gives way without
//!   a fence.
//!
//! Every test checks the stand-ins' mode histories (deactivation tails included) with the
//! shared checker (`elector_model::history::dual_active`, through
//! [`Cluster::assert_never_two_active`]) and a liveness bound built from the profile's timings
//! plus [`SLACK`] for a loaded machine; the bounds are upper limits only, never expected
//! durations. The measured durations are printed (`--nocapture`).

use elector_core::{STUCK_REPORT_INTERVAL, Timing};
use elector_integration::cluster::{Cluster, ClusterOptions, PROFILE, SETTLE, log_text};
use elector_model::node::AdminFault;
use std::time::Duration;

/// `--node-lost-after` of these tests: the fast profile's (`Timing::fast_profile()`), which the
/// cluster's flags leave at the 10 s default.
const NODE_LOST_AFTER: Duration = Duration::from_secs(5);

/// Added to every liveness bound: scheduling delays of five processes and etcd's fsyncs on two
/// shared, loaded cores.
const SLACK: Duration = Duration::from_secs(10);

/// How long a stuck leader is watched keeping the lead: ten lease TTLs, six stuck reports.
const HOLD: Duration = Duration::from_secs(30);

/// How often the watch over a stuck leader looks.
const HOLD_POLL: Duration = Duration::from_millis(250);

/// A fence that stops the node for good, as `systemctl kill` would: it kills the stand-in
/// through its control endpoint, then succeeds only if nothing answers on the admin port any
/// more (so it also succeeds for a node that died by itself, and fails for one still alive).
/// Each `curl` is bounded by 2 s.
const KILL_FENCE: &str = "curl -s -m 2 -o /dev/null 'http://{admin}/control/kill'; \
                          ! curl -s -m 2 -o /dev/null 'http://{admin}/control/state'";

/// The most [`KILL_FENCE`] can take: its two bounded `curl` calls.
const KILL_FENCE_TIME: Duration = Duration::from_secs(4);

/// The timing the cluster's electors run with: the cluster's flags plus `--node-lost-after`.
fn timing() -> Timing {
    Timing {
        node_lost_after: NODE_LOST_AFTER,
        ..PROFILE.timing()
    }
}

/// Three replicas with `--node-lost-after` [`NODE_LOST_AFTER`], the given fence command (see
/// [`ClusterOptions::fence_cmd`]) and, with a fence, the marker recording each run.
async fn start(fence_cmd: Option<&str>) -> Cluster {
    if fence_cmd.is_some_and(|command| command.contains("curl")) {
        let curl = std::process::Command::new("curl").arg("--version").output();
        assert!(
            curl.is_ok_and(|o| o.status.success()),
            "these tests' fence commands need `curl` on PATH (apt-get install curl)"
        );
    }
    Cluster::start_with(ClusterOptions {
        fence_marker: fence_cmd.is_some(),
        fence_cmd: fence_cmd.map(str::to_owned),
        timing: timing(),
        ..ClusterOptions::default()
    })
    .await
}

/// A leader elected with every replica in line behind it, so that it has someone to give way
/// to.
async fn leader_with_successors(cluster: &Cluster) -> usize {
    let leader = cluster.wait_for_single_leader(SETTLE).await;
    cluster
        .wait_until("all candidates in line", SETTLE, async || {
            cluster
                .status(leader)
                .await
                .is_some_and(|s| s["candidates"].as_array().map(Vec::len) == Some(cluster.len()))
        })
        .await;
    leader
}

/// The messages of replica `i`'s log lines containing `needle`.
fn messages(cluster: &Cluster, i: usize, needle: &str) -> Vec<String> {
    cluster
        .log_messages(i, needle)
        .iter()
        .map(log_text)
        .collect()
}

/// When (since the cluster started) replica `i`'s node last became active.
fn last_activation(cluster: &Cluster, i: usize) -> Duration {
    cluster
        .activations()
        .into_iter()
        .filter(|&(node, _)| node == i)
        .map(|(_, at)| at)
        .max()
        .unwrap_or_else(|| panic!("node {i} was never active"))
}

/// Activations of nodes other than `leader` since `since`.
fn others_activated(cluster: &Cluster, leader: usize, since: Duration) -> Vec<(usize, Duration)> {
    cluster
        .activations()
        .into_iter()
        .filter(|&(node, at)| node != leader && at >= since)
        .collect()
}

/// `elector_fence_results_total{result="<result>"}` of replica `i`.
async fn fence_results(cluster: &Cluster, i: usize, result: &str) -> f64 {
    let (_, body) = cluster
        .status_server_get(i, "/metrics")
        .await
        .expect("/metrics");
    let prefix = format!("elector_fence_results_total{{result=\"{result}\"}} ");
    body.lines()
        .find_map(|line| line.strip_prefix(&prefix)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix}in /metrics of elector {i}"))
}

/// Waits until replica `i` reports itself stuck (`/status` and the `elector_stuck` metric);
/// returns the reason.
async fn wait_stuck(cluster: &Cluster, i: usize) -> String {
    cluster
        .wait_until("the leader to report itself stuck", SETTLE, async || {
            cluster
                .status(i)
                .await
                .is_some_and(|s| s["stuck"].is_string())
                && cluster.metric(i, "elector_stuck").await == Some(1.0)
        })
        .await;
    let status = cluster
        .status(i)
        .await
        .expect("the stuck elector's /status");
    status["stuck"].as_str().expect("a reason").to_owned()
}

/// Watches a stuck leader for [`HOLD`]: its elector keeps running and leading (its key first
/// in line, per its own `/status`), stays stuck, and no other node activates.
async fn assert_keeps_the_lead(cluster: &Cluster, leader: usize) {
    let since = cluster.elapsed();
    let value = cluster.value(leader).to_owned();
    let polls = HOLD.as_millis() / HOLD_POLL.as_millis();
    for _ in 0..polls {
        tokio::time::sleep(HOLD_POLL).await;
        assert!(
            others_activated(cluster, leader, since).is_empty(),
            "another node activated while the stuck leader held the lead\n{}",
            cluster.describe().await
        );
        assert!(
            cluster.elector_running(leader),
            "the stuck elector exited\n{}",
            cluster.describe().await
        );
    }
    // Still leading and stuck at the end, seen by the others too.
    let status = cluster
        .status(leader)
        .await
        .expect("the stuck elector's /status");
    assert!(status["stuck"].is_string(), "{status}");
    assert_eq!(status["leader"], value.as_str(), "{status}");
    for i in (0..cluster.len()).filter(|&i| i != leader) {
        let other = cluster.status(i).await.expect("a follower's /status");
        assert_eq!(other["leader"], value.as_str(), "{other}");
        assert_eq!(other["role"], "candidate", "{other}");
    }
    // Said in the log at least every STUCK_REPORT_INTERVAL (a loaded machine may be late).
    let reports = messages(cluster, leader, "STUCK:").len();
    let due = (HOLD.as_secs() / STUCK_REPORT_INTERVAL.as_secs()) as usize;
    assert!(reports + 2 >= due, "{reports} STUCK reports in {HOLD:?}");
}

/// 1a. The leader's admin endpoint hangs (consensus keeps the node active), then SIGTERM, and
///     no `--fence-cmd`: the elector does not exit and keeps the lead, reports itself stuck,
///     and nobody else activates for [`HOLD`]. Once the node answers again it confirms standby,
///     hands over cleanly and exits 0.
///
///     Bound after the repair: the activate=false retry (node_timeout + confirm poll), the
///     node's consensus tail, the confirming read, the resignation, the successor's watch and
///     its wait for the predecessor's last slot (the handover delay) and activation (two etcd
///     timeouts, a keep-alive interval), plus [`SLACK`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_admin_and_sigterm_without_fence_keeps_the_lead_until_repaired() {
    let t = timing();
    let cluster = start(None).await;
    let leader = leader_with_successors(&cluster).await;

    cluster.node(leader).set_admin_fault(AdminFault::Hang);
    cluster.sigterm(leader);
    let reason = wait_stuck(&cluster, leader).await;
    assert!(reason.contains("keeping the lead"), "{reason}");
    assert!(reason.contains("no --fence-cmd"), "{reason}");
    assert!(cluster.node(leader).state().active);
    assert_keeps_the_lead(&cluster, leader).await;
    assert_eq!(cluster.active_nodes(), vec![leader]);
    let failures = fence_results(&cluster, leader, "failure").await;
    assert!(failures >= 2.0, "{failures} failed fence runs while stuck");

    // The operator repairs the node's admin endpoint.
    let bound = t.node_timeout
        + t.confirm_poll_interval
        + t.consensus_tail()
        + t.confirm_poll_interval
        + t.handover_delay()
        + 2 * t.etcd_request_timeout
        + t.keepalive_interval
        + SLACK;
    let repaired_at = cluster.elapsed();
    cluster.node(leader).set_admin_fault(AdminFault::None);
    let new = cluster.wait_for_new_leader(leader, bound).await;
    let exit = cluster.wait_exit(leader, SETTLE).await;
    assert_eq!(exit.code(), Some(0), "exit status {exit}");
    let took = last_activation(&cluster, new) - repaired_at;
    eprintln!("measured: repair to successor active {took:?} (bound {bound:?})");
    assert!(!cluster.node(leader).state().active);
    let changes = messages(&cluster, new, "role ");
    assert!(
        changes.iter().any(|c| c.contains("handed over cleanly")),
        "the successor did not take over by a clean handover: {changes:#?}"
    );
    assert_eq!(cluster.metric(new, "elector_stuck").await, Some(0.0));
    cluster.assert_never_two_active();
    cluster.assert_no_panics();
}

/// 1b. The leader's admin endpoint hangs, then SIGTERM, with a fence that kills the node: the
///     fence runs once standby cannot be confirmed, the node dies, the elector resigns without
///     a handover record and exits 1; another replica activates only after the node died and
///     its own activation delay.
///
///     Bound from SIGTERM: the demotion's fence deadline (node_timeout + step-down lead), the
///     fence ([`KILL_FENCE_TIME`]), the resignation and the successor's watch (two etcd
///     timeouts), the activation delay, plus [`SLACK`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_admin_and_sigterm_with_fence_exits_1_after_the_node_died() {
    let t = timing();
    let cluster = start(Some(KILL_FENCE)).await;
    let leader = leader_with_successors(&cluster).await;

    cluster.node(leader).set_admin_fault(AdminFault::Hang);
    let sigterm_at = cluster.elapsed();
    cluster.sigterm(leader);
    let bound = t.node_timeout
        + t.step_down_lead()
        + KILL_FENCE_TIME
        + 2 * t.etcd_request_timeout
        + t.activation_delay
        + SLACK;
    let new = cluster.wait_for_new_leader(leader, bound).await;
    let exit = cluster.wait_exit(leader, SETTLE).await;
    assert_eq!(exit.code(), Some(1), "exit status {exit}");

    assert!(
        !cluster.node(leader).state().alive,
        "the fence did not kill the node"
    );
    let died_at = cluster
        .last_deactivation(leader)
        .expect("the old node stopped");
    let new_at = last_activation(&cluster, new);
    eprintln!(
        "measured: SIGTERM to fenced node {:?}, SIGTERM to successor active {:?} (bound {bound:?})",
        died_at - sigterm_at,
        new_at - sigterm_at
    );
    // No record (standby was proven by the fence, not a read): the successor waited its delay
    // after an election that came after the node died.
    assert!(
        new_at >= died_at + t.activation_delay,
        "successor active at {new_at:?}, the old node died at {died_at:?}"
    );
    let waited = messages(&cluster, new, "role ");
    assert!(
        waited.iter().any(|c| c.contains("activation delay")),
        "the successor did not wait the activation delay: {waited:#?}"
    );
    // (One run normally; a run whose `curl` timed out on a loaded machine is repeated.)
    let fence = cluster.fence_log(leader);
    assert!(fence.contains("standby not confirmed"), "{fence}");
    let exiting = messages(&cluster, leader, "exiting");
    assert!(
        exiting.iter().any(|m| m.contains("fence reported success")),
        "{exiting:#?}"
    );
    cluster.assert_never_two_active();
    cluster.assert_no_panics();
}

/// 2a. The leader's node process dies (it stops signing, both its ports refuse connections)
///     with a fence configured: the leader gives way (its probes fail, or at the latest the
///     node counts as lost), the fence proves the node stopped, and another replica is active
///     within the bound, after its activation delay (no record).
///
///     Bound from the death: node_lost_after + node_timeout + step-down lead + the fence
///     ([`KILL_FENCE_TIME`]) + two etcd timeouts + the activation delay + [`SLACK`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_node_with_fence_is_taken_over() {
    let t = timing();
    let cluster = start(Some(KILL_FENCE)).await;
    let leader = leader_with_successors(&cluster).await;

    let killed_at = cluster.elapsed();
    cluster.node(leader).kill();
    let bound = t.node_lost_after
        + t.node_timeout
        + t.step_down_lead()
        + KILL_FENCE_TIME
        + 2 * t.etcd_request_timeout
        + t.activation_delay
        + SLACK;
    let new = cluster.wait_for_new_leader(leader, bound).await;
    let new_at = last_activation(&cluster, new);
    let why = messages(&cluster, leader, "-> stepping-down");
    eprintln!(
        "measured: node death to successor active {:?} (bound {bound:?}); {why:?}",
        new_at - killed_at
    );
    assert!(
        new_at >= killed_at + t.activation_delay,
        "successor active at {new_at:?}, the node died at {killed_at:?}"
    );
    assert!(
        !cluster.fence_log(leader).is_empty(),
        "the fence did not run"
    );
    assert!(fence_results(&cluster, leader, "success").await >= 1.0);
    // The old leader's elector keeps running, out of the lead, and is not stuck.
    cluster
        .wait_until("the old leader to follow the new one", SETTLE, async || {
            cluster
                .status(leader)
                .await
                .is_some_and(|s| s["leader"] == cluster.value(new) && s["stuck"].is_null())
        })
        .await;
    assert!(cluster.elector_running(leader));
    cluster.assert_never_two_active();
    cluster.assert_no_panics();
}

/// 2b. The leader's node process dies and no `--fence-cmd` is configured: the node cannot be
///     proven standby, so the leader keeps its key (nobody else activates for [`HOLD`]) and
///     reports itself stuck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_node_without_fence_keeps_the_lead_and_reports_stuck() {
    let cluster = start(None).await;
    let leader = leader_with_successors(&cluster).await;

    cluster.node(leader).kill();
    let reason = wait_stuck(&cluster, leader).await;
    assert!(reason.contains("keeping the lead"), "{reason}");
    assert_keeps_the_lead(&cluster, leader).await;
    assert!(cluster.active_nodes().is_empty());
    assert!(fence_results(&cluster, leader, "failure").await >= 2.0);
    cluster.assert_never_two_active();
    cluster.assert_no_panics();
}

/// 3. The leader's node restarts in standby and refuses `activate=true` (500), while reads and
///    `activate=false` work: the leader finds its node lost, confirms standby by a read and
///    gives way without a fence; another replica is active within the bound. (A term whose
///    activation failed writes no record, so the successor waits its activation delay.)
///
///    Bound from the restart: node_lost_after + node_check_interval + node_timeout (the last
///    active read may be that old) + two etcd timeouts + the activation delay + [`SLACK`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_activation_gives_way_without_fence() {
    let t = timing();
    // A fence that records its runs and always fails: it must not be needed, and cannot
    // stand in for a proof of standby.
    let cluster = start(Some("false")).await;
    let leader = leader_with_successors(&cluster).await;

    cluster.node(leader).set_refuse_activation(true);
    let restarted_at = cluster.elapsed();
    cluster.node(leader).restart(false);
    let bound = t.node_lost_after
        + t.node_check_interval
        + t.node_timeout
        + 2 * t.etcd_request_timeout
        + t.activation_delay
        + SLACK;
    let new = cluster.wait_for_new_leader(leader, bound).await;
    let new_at = last_activation(&cluster, new);
    eprintln!(
        "measured: restart refusing activation to successor active {:?} (bound {bound:?})",
        new_at - restarted_at
    );
    let lost = messages(&cluster, leader, "node lost");
    assert!(!lost.is_empty(), "the leader never found its node lost");
    assert_eq!(cluster.fence_log(leader), "", "a fence ran");
    assert!(
        cluster
            .metric(leader, "elector_node_standby_unexpected_total")
            .await
            .is_some_and(|n| n >= 1.0)
    );
    let waited = messages(&cluster, new, "role ");
    assert!(
        waited.iter().any(|c| c.contains("activation delay")),
        "the successor skipped the activation delay after a failed activation: {waited:#?}"
    );
    cluster
        .wait_until("the old leader to follow, not stuck", SETTLE, async || {
            cluster
                .status(leader)
                .await
                .is_some_and(|s| s["leader"] == cluster.value(new) && s["stuck"].is_null())
        })
        .await;
    assert!(!cluster.node(leader).state().active);
    cluster.assert_never_two_active();
    cluster.assert_no_panics();
}

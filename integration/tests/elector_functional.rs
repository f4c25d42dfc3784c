//! Functional tests of the real `elector` binary: a real etcd, stand-in nodes over real HTTP,
//! and one `elector` process per node (see `elector_integration::cluster`). Run
//! `cargo build -p elector` first.
//!
//! Every test ends with the dual-active monitor: at no instant were two nodes effectively
//! active. Waits are bounded by generous limits (`SETTLE`) and only where the scenario has to
//! wait (an election, a lease expiring); nothing asserts how fast the elector is, except the
//! safety property that a leader cut off from etcd demotes its node before its lease can
//! expire.
//!
//! One test binary per subject on purpose (each file under `tests/` is linked separately, which
//! costs CI minutes on 2 cores); its tests are independent and share only the cluster fixture.

use elector_integration::cluster::{Cluster, ClusterOptions, KEY, PROFILE, SETTLE, log_text, ttl};
use elector_integration::etcd_process::EtcdProcess;
use elector_integration::host::{elector_binary, elector_command, http_get};
use elector_integration::standin::{StandIn, StandInOptions};
use elector_integration::timing_profile::profile_flags;
use elector_model::node::AdminFault;
use std::process::Stdio;
use std::time::Duration;

/// The other replicas.
fn others(cluster: &Cluster, i: usize) -> Vec<usize> {
    (0..cluster.len()).filter(|&j| j != i).collect()
}

/// The `role changed` log lines of replica `i`, as `from -> to: reason` text.
fn role_changes(cluster: &Cluster, i: usize) -> Vec<String> {
    cluster
        .log_messages(i, "role ")
        .iter()
        .map(log_text)
        .collect()
}

async fn node_failures(cluster: &Cluster, i: usize) -> f64 {
    cluster
        .metric(i, "elector_node_call_failures_total")
        .await
        .unwrap_or_else(|| panic!("elector {i} serves no elector_node_call_failures_total"))
}

/// Waits until replica `i`'s elector counted `more` further failed node calls.
async fn wait_for_node_failures(cluster: &Cluster, i: usize, more: f64, what: &str) {
    let before = node_failures(cluster, i).await;
    cluster
        .wait_until(
            &format!("elector {i} to count {more} more failed node calls ({what})"),
            SETTLE,
            async || {
                cluster.metric(i, "elector_node_call_failures_total").await >= Some(before + more)
            },
        )
        .await;
}

/// 0. The dual-active monitor itself, on real stand-ins with their electors gone: it finds
///    two nodes active at once, with the right span, and excuses deliberate activations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_sees_two_active_nodes() {
    let mut cluster = Cluster::start_with(ClusterOptions {
        nodes: 2,
        etcd_running: false,
        ..ClusterOptions::default()
    })
    .await;
    cluster.kill_elector(0);
    cluster.kill_elector(1);
    assert!(cluster.dual_active().is_empty());

    let set = async |i: usize, active: bool| {
        let admin = cluster.node(i).admin_addr();
        let answer = http_get(admin, &format!("/ha?activate={active}")).await;
        assert_eq!(answer.expect("an answer"), (200, String::new()));
    };
    set(0, true).await;
    let both_from = cluster.elapsed();
    set(1, true).await;
    set(0, false).await;
    cluster
        .wait_until("node 0's round to end", SETTLE, async || {
            !cluster.node(0).state().active
        })
        .await;
    let both_until = cluster.elapsed();
    let found = cluster.dual_active();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].nodes, (0, 1));
    assert!(
        both_from <= found[0].from && found[0].until <= both_until,
        "{found:?}"
    );

    // A deliberate activation is excused: node 0 again, beside the still active node 1.
    cluster.activate_behind_the_back(0).await;
    assert_eq!(cluster.dual_active(), found);
}

/// 1. Three electors elect exactly one leader; etcd, `etcdctl elect -l` and every `/status`
///    agree on it; an elector started with the Go elector's flags takes part like the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_electors_elect_exactly_one_leader() {
    let cluster = Cluster::start_with(ClusterOptions {
        go_flags: vec![2],
        ..ClusterOptions::default()
    })
    .await;
    let leader = cluster.wait_for_single_leader(SETTLE).await;
    let value = cluster.value(leader).to_owned();

    cluster
        .wait_until(
            "every elector to report the same leader",
            SETTLE,
            async || {
                for i in 0..cluster.len() {
                    let Some(status) = cluster.status(i).await else {
                        return false;
                    };
                    let role = if i == leader { "active" } else { "candidate" };
                    if status["leader"] != value.as_str()
                        || status["role"] != role
                        || (i == leader && status["node_mode"] != "active")
                        || status["candidates"].as_array().map(Vec::len) != Some(3)
                    {
                        return false;
                    }
                }
                true
            },
        )
        .await;
    let status = cluster.status(leader).await.expect("the leader's /status");
    assert_eq!(status["value"], value.as_str());
    assert_eq!(status["key"], KEY);
    assert_eq!(status["node_mode"], "active");
    assert_eq!(status["candidates"][0]["value"], value.as_str());
    let leader_key = status["candidate_key"]
        .as_str()
        .expect("the leader has a candidate key")
        .to_owned();

    // The Go-flag elector runs with the right value, key and node like the others.
    let go = cluster
        .status(2)
        .await
        .expect("the Go-flag elector's /status");
    assert_eq!(go["value"], "node-2");
    assert_eq!(go["key"], KEY);
    assert_eq!(go["readiness"], "ready");
    assert!(go["candidate_key"].is_string(), "{go}");

    // `etcdctl elect -l` (Go's concurrency.Election) prints the leader's key and value.
    let lines = tokio::task::block_in_place(|| {
        let mut listener = cluster.etcd().spawn_etcdctl(&["elect", "-l", KEY])?;
        let key = listener.next_line(Duration::from_secs(15))?;
        let value = listener.next_line(Duration::from_secs(5))?;
        anyhow::Ok((key, value))
    })
    .expect("etcdctl elect -l");
    assert_eq!(lines, (leader_key, value));

    cluster.assert_never_two_active();
    cluster.assert_no_panics();
}

/// 2. The leader's elector dies (SIGKILL) and its supervisor forces its node standby: another
///    node becomes active after the lease expires and the activation delay; never two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_after_the_leader_is_killed() {
    let mut cluster = Cluster::start().await;
    let old = cluster.wait_for_single_leader(SETTLE).await;

    cluster.kill_elector(old);
    assert!(
        cluster.supervisor_forces_standby(old).await,
        "the supervisor's /ha?activate=false failed"
    );
    let new = cluster.wait_for_new_leader(old, SETTLE).await;

    // Nobody handed over: the new leader waited out the activation delay.
    let changes = role_changes(&cluster, new);
    assert!(
        changes
            .iter()
            .any(|c| c.contains("-> leader") && c.contains("activation delay")),
        "the new leader did not wait the activation delay: {changes:#?}"
    );
    let status = cluster.status(new).await.expect("the new leader's /status");
    assert_eq!(status["leader"], cluster.value(new));
    cluster.assert_never_two_active();
    cluster.assert_no_panics();
}

/// 3. SIGTERM to the leader: it demotes, confirms standby, hands over and exits 0; the next
///    leader activates without the activation delay because the handover was recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_over_cleanly() {
    let cluster = Cluster::start().await;
    let old = cluster.wait_for_single_leader(SETTLE).await;
    // The others must be in line for the handover record to name the leader they saw.
    cluster
        .wait_until("all three candidates in line", SETTLE, async || {
            cluster
                .status(old)
                .await
                .is_some_and(|s| s["candidates"].as_array().map(Vec::len) == Some(cluster.len()))
        })
        .await;

    cluster.sigterm(old);
    let exit = cluster.wait_exit(old, SETTLE).await;
    assert_eq!(exit.code(), Some(0), "exit status {exit}");
    // Exit 0 means the elector confirmed its node standby by a read.
    assert!(
        !cluster.node(old).state().active,
        "the node of an elector that exited 0 is active"
    );
    let new = cluster.wait_for_new_leader(old, SETTLE).await;

    let shutdown = role_changes(&cluster, old);
    assert!(
        shutdown.iter().any(|c| c.contains("shutdown requested")),
        "{shutdown:#?}"
    );
    let exited = cluster.log_messages(old, "exiting");
    assert!(
        exited
            .iter()
            .any(|l| log_text(l).contains("confirmed standby")),
        "{exited:#?}"
    );
    cluster.assert_never_two_active();
    cluster.assert_no_panics();
    assert_took_over_cleanly(&cluster, new);
}

/// Replica `i` became leader by a clean handover: it never waited the activation delay, and
/// its log says why.
fn assert_took_over_cleanly(cluster: &Cluster, i: usize) {
    let changes = role_changes(cluster, i);
    assert!(
        !changes.iter().any(|c| c.contains("activation delay")),
        "the new leader waited the activation delay after a clean handover: {changes:#?}"
    );
    assert!(
        changes.iter().any(|c| c.contains("-> active")),
        "{changes:#?}"
    );
    assert!(
        changes.iter().any(|c| c.contains("handed over cleanly")),
        "the new leader's log does not say that the previous leader handed over cleanly \
         (when the term starts and the node is activated in one step, the activation's reason \
         replaces the term's before the role change is reported): {changes:#?}"
    );
}

/// 4. Reconciliation: a follower's node activated behind the elector's back is commanded
///    standby again; the leader's node restarted in standby is activated again.
///
///    A restarted node reports itself ready again only from its next block, up to one block
///    interval later: the electors here count enough failed probes before a node is unready
///    (two block intervals' worth) that the restart alone does not make the leader hand over,
///    which it rightly does for a node that stays unready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn electors_reconcile_their_nodes() {
    let mut timing = PROFILE.timing();
    let probes = (2 * timing.block_interval).as_millis() / timing.probe_interval.as_millis();
    timing.unready_threshold = u32::try_from(probes).expect("a small count") + 1;
    let cluster = Cluster::start_with(ClusterOptions {
        timing,
        ..ClusterOptions::default()
    })
    .await;
    let leader = cluster.wait_for_single_leader(SETTLE).await;
    let follower = others(&cluster, leader)[0];

    cluster.activate_behind_the_back(follower).await;
    cluster
        .wait_until(
            "the follower's node to be standby again",
            SETTLE,
            async || !cluster.node(follower).state().active,
        )
        .await;
    let warned = cluster.log_messages(follower, "does not lead: commanding standby");
    assert!(
        !warned.is_empty(),
        "the follower did not report its node active:\n{}",
        cluster.log(follower)
    );
    assert!(cluster.node(leader).state().active);

    cluster.node(leader).restart(false);
    cluster
        .wait_until(
            "the leader's restarted node to be active again",
            SETTLE,
            async || cluster.node(leader).state().active,
        )
        .await;
    assert_eq!(cluster.active_nodes(), vec![leader]);
    assert_eq!(
        cluster.role(leader).await.as_deref(),
        Some("active"),
        "leadership moved instead of the node being re-activated"
    );
    cluster.assert_never_two_active();
    cluster.assert_no_panics();
}

/// 5. etcd stops while a leader is active: the leader demotes its node before its lease could
///    expire, and no node is active while etcd is down; etcd back, one leader again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_outage_demotes_the_leader_in_time() {
    let mut cluster = Cluster::start().await;
    let leader = cluster.wait_for_single_leader(SETTLE).await;

    cluster.stop_etcd();
    // etcd acknowledged no keep-alive after this, so the leader's lease deadline is earlier
    // than this plus the TTL.
    let stopped_at = cluster.elapsed();
    cluster
        .wait_until("the leader's node to be standby", SETTLE, async || {
            !cluster.node(leader).state().active
        })
        .await;
    let standby_at = cluster
        .last_deactivation(leader)
        .expect("the leader's node went standby");
    assert!(
        standby_at < stopped_at + ttl(),
        "the leader's node was active until {standby_at:?}, after its lease could expire \
         ({stopped_at:?} + {:?})\n{}",
        ttl(),
        cluster.describe().await
    );
    let demoted = role_changes(&cluster, leader);
    assert!(
        demoted.iter().any(|c| c.contains("-> stepping-down")),
        "{demoted:#?}"
    );
    // Stay down until every elector gave its lease up (past every lease deadline).
    cluster
        .wait_until("every elector to give up its lease", SETTLE, async || {
            for i in 0..cluster.len() {
                match cluster.status(i).await {
                    Some(s) if s["lease_id"].is_null() => {}
                    _ => return false,
                }
            }
            true
        })
        .await;
    assert!(cluster.active_nodes().is_empty());

    cluster.start_etcd();
    let restarted_at = cluster.elapsed();
    let new = cluster.wait_for_single_leader(SETTLE).await;
    let during_outage: Vec<_> = cluster
        .activations()
        .into_iter()
        .filter(|&(_, at)| at > stopped_at && at < restarted_at)
        .collect();
    assert!(
        during_outage.is_empty(),
        "nodes activated while etcd was down: {during_outage:?}"
    );
    let status = cluster.status(new).await.expect("the new leader's /status");
    assert_eq!(status["leader"], cluster.value(new));
    cluster.assert_never_two_active();
    cluster.assert_no_panics();
}

/// 6. Bad node answers (500, a garbage body, no answer) on followers and on the leader: the
///    electors keep running and count the failures; an elector that cannot confirm standby
///    does not campaign; a leader that must step down while its node hangs runs the fence
///    command, and hands over once the node answers again. (The fence records its run and
///    fails: a fence that succeeds proves standby, and the leader would give the lead away.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_node_answers_are_survived_and_fenced() {
    let mut cluster = Cluster::start_with(ClusterOptions {
        fence_marker: true,
        fence_cmd: Some("false".into()),
        ..ClusterOptions::default()
    })
    .await;
    let leader = cluster.wait_for_single_leader(SETTLE).await;
    let followers = others(&cluster, leader);

    // Followers: each fault in turn on both.
    for fault in [
        AdminFault::Status500,
        AdminFault::GarbageBody,
        AdminFault::Hang,
    ] {
        for &f in &followers {
            cluster.node(f).set_admin_fault(fault);
        }
        for &f in &followers {
            wait_for_node_failures(&cluster, f, 3.0, fault.as_str()).await;
            assert!(cluster.elector_running(f), "elector {f} exited");
            let health = cluster.status_server_get(f, "/healthz").await;
            assert_eq!(health.map(|h| h.0), Some(200), "elector {f} stalled");
            assert!(!cluster.node(f).state().active);
        }
        assert_eq!(cluster.active_nodes(), vec![leader]);
    }

    // A restarted elector whose node answers garbage cannot confirm standby: it must not
    // campaign (the garbage contains `"active":false`, which a careless parser would take).
    let f = followers[0];
    cluster.node(f).set_admin_fault(AdminFault::GarbageBody);
    cluster.kill_elector(f);
    cluster.start_elector(f).await;
    wait_for_node_failures(&cluster, f, 5.0, "garbage after restart").await;
    let status = cluster
        .status(f)
        .await
        .expect("the restarted elector's /status");
    assert_eq!(status["role"], "starting", "{status}");
    assert!(status["candidate_key"].is_null(), "{status}");
    assert_eq!(status["node_standby_confirmed"], false, "{status}");
    for &g in &followers {
        cluster.node(g).set_admin_fault(AdminFault::None);
    }
    cluster
        .wait_until(
            "the restarted elector to campaign again",
            SETTLE,
            async || cluster.role(f).await.as_deref() == Some("candidate"),
        )
        .await;

    // The leader: each fault in turn. The node's mode is unaffected, so it stays the one
    // active node.
    for fault in [
        AdminFault::Status500,
        AdminFault::GarbageBody,
        AdminFault::Hang,
    ] {
        cluster.node(leader).set_admin_fault(fault);
        wait_for_node_failures(&cluster, leader, 3.0, fault.as_str()).await;
        assert!(
            cluster.elector_running(leader),
            "the leader's elector exited"
        );
        assert_eq!(cluster.active_nodes(), vec![leader]);
    }

    // The hung node also turns unready: the leader must step down but cannot confirm standby,
    // so it fences, and keeps its key meanwhile: nobody else may activate.
    cluster.node(leader).set_ready(false);
    cluster
        .wait_until("the leader to run its fence command", SETTLE, async || {
            !cluster.fence_log(leader).is_empty()
        })
        .await;
    let fence = cluster.fence_log(leader);
    assert!(fence.contains("standby not confirmed"), "{fence}");
    assert!(
        cluster
            .metric(leader, "elector_fence_actions_total")
            .await
            .is_some_and(|n| n >= 1.0)
    );
    assert_eq!(cluster.role(leader).await.as_deref(), Some("stepping-down"));
    assert!(cluster.elector_running(leader));
    assert_eq!(cluster.active_nodes(), vec![leader]);

    // The node answers again: standby is confirmed and the handover completes.
    cluster.node(leader).set_admin_fault(AdminFault::None);
    let new = cluster.wait_for_new_leader(leader, SETTLE).await;
    let handed = role_changes(&cluster, leader);
    assert!(
        handed
            .iter()
            .any(|c| c.contains("stepping-down -> resigning")),
        "{handed:#?}"
    );
    cluster
        .wait_until("the old leader to see the new one", SETTLE, async || {
            cluster
                .status(leader)
                .await
                .is_some_and(|s| s["leader"] == cluster.value(new))
        })
        .await;
    for i in 0..cluster.len() {
        assert!(cluster.elector_running(i), "elector {i} exited");
    }
    cluster.assert_never_two_active();
    cluster.assert_no_panics();
}

/// 7. The leader's node turns unready: leadership moves to a ready standby by a clean
///    handover, not by waiting for the lease to expire; never two active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unready_leader_hands_over() {
    let cluster = Cluster::start().await;
    let old = cluster.wait_for_single_leader(SETTLE).await;
    cluster
        .wait_until("all three candidates in line", SETTLE, async || {
            cluster
                .status(old)
                .await
                .is_some_and(|s| s["candidates"].as_array().map(Vec::len) == Some(cluster.len()))
        })
        .await;

    cluster.node(old).set_ready(false);
    let new = cluster.wait_for_new_leader(old, SETTLE).await;

    let changes = role_changes(&cluster, old);
    assert!(
        changes.iter().any(|c| c.contains("node unready")),
        "{changes:#?}"
    );
    // The unready replica left the election and stays out until its node is ready.
    cluster
        .wait_until(
            "the unready replica to leave the election",
            SETTLE,
            async || {
                cluster.status(new).await.is_some_and(|s| {
                    s["candidates"]
                        .as_array()
                        .is_some_and(|c| c.iter().all(|c| c["value"] != cluster.value(old)))
                })
            },
        )
        .await;
    cluster
        .wait_until("the unready replica to be standby", SETTLE, async || {
            cluster.role(old).await.as_deref() == Some("standby")
        })
        .await;
    assert!(!cluster.node(old).state().active);

    cluster.node(old).set_ready(true);
    cluster
        .wait_until("the ready replica to campaign again", SETTLE, async || {
            cluster.role(old).await.as_deref() == Some("candidate")
        })
        .await;
    assert_eq!(cluster.active_nodes(), vec![new]);
    cluster.assert_never_two_active();
    cluster.assert_no_panics();
    assert_took_over_cleanly(&cluster, new);
}

/// Runs the elector binary with `args` to completion (bounded): exit code, stdout, stderr.
async fn run_elector(args: &[&str]) -> (Option<i32>, String, String) {
    let mut command = tokio::process::Command::from(elector_command(
        &elector_binary().expect("the elector binary"),
    ));
    let child = command
        .args(args)
        // Never reach anything real should the flags be accepted.
        .env("ELECTOR_STATUS_ADDR", "off")
        .env("ELECTOR_ETCD", "http://127.0.0.1:1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting the elector");
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("elector {args:?} did not exit"))
        .expect("waiting for the elector");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// 8. Bad flags exit with code 2 and one line on stderr naming the problem; `--help` exits 0.
#[tokio::test]
async fn bad_flags_exit_2_with_one_line() {
    for (args, names) in [
        (&["--ttl", "9s"][..], &["renewal_window"][..]),
        (&["--bogus"], &["--bogus"]),
        (&["--iotex-admin", "nope"], &["--iotex-admin", "nope"]),
        (&["--ttl", "ten"], &["ten"]),
    ] {
        let (code, stdout, stderr) = run_elector(args).await;
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: stdout {stdout:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: stderr {stderr:?}");
        for name in names {
            assert!(stderr.contains(name), "{args:?}: {stderr:?} lacks {name}");
        }
    }
    let (code, stdout, stderr) = run_elector(&["--help"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("Usage"), "{stdout}");
    assert!(stdout.contains("--iotex-admin"), "{stdout}");
}

/// 9. etcd unreachable at start: the elector keeps running, says why, and holds its node
///    (started active, as misconfigured) in standby; once etcd serves it campaigns and leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elector_waits_for_etcd_to_appear() {
    let mut cluster = Cluster::start_with(ClusterOptions {
        nodes: 1,
        standin: StandInOptions {
            start_active: true,
            ..ClusterOptions::default().standin
        },
        etcd_running: false,
        ..ClusterOptions::default()
    })
    .await;
    cluster
        .wait_until(
            "the elector to say etcd is unreachable",
            SETTLE,
            async || cluster.log_messages(0, "etcd unreachable").len() >= 2,
        )
        .await;
    cluster
        .wait_until(
            "the node to be forced and confirmed standby",
            SETTLE,
            async || {
                !cluster.node(0).state().active
                    && cluster.status(0).await.is_some_and(|s| {
                        s["node_mode"] == "standby" && s["node_standby_confirmed"] == true
                    })
            },
        )
        .await;
    assert!(cluster.elector_running(0));
    let status = cluster.status(0).await.expect("/status");
    assert_eq!(status["etcd_connected"], false, "{status}");
    assert!(status["candidate_key"].is_null(), "{status}");
    assert!(status["lease_id"].is_null(), "{status}");

    cluster.start_etcd();
    let leader = cluster.wait_for_single_leader(SETTLE).await;
    assert_eq!(leader, 0);
    let status = cluster.status(0).await.expect("/status");
    assert_eq!(status["etcd_connected"], true, "{status}");
    assert_eq!(status["leader"], "node-0");
    cluster.assert_never_two_active();
    cluster.assert_no_panics();
}

/// 10. A `--key` nested inside another election (here `etcdctl elect /outer`, whose candidates
///     `/outer/<hex>` would count ours, `/outer/inner/<hex>`, as theirs) is refused: exit code
///     2 and one line naming both, with the node (started active, as misconfigured) standby and
///     no key of ours left in etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_nested_inside_another_election_is_refused() {
    let etcd = tokio::task::spawn_blocking(EtcdProcess::start_new)
        .await
        .expect("the etcd task")
        .expect("starting etcd (is `etcd` on PATH?)");
    let mut outer = etcd
        .spawn_etcdctl(&["elect", "/outer", "go-leader"])
        .expect("etcdctl elect");
    let outer_key = outer
        .next_line(Duration::from_secs(10))
        .expect("etcdctl elect leads");
    let node = StandIn::start(
        "127.0.0.1:0".parse().expect("an address"),
        "127.0.0.1:0".parse().expect("an address"),
        StandInOptions {
            start_active: true,
            ..StandInOptions::default()
        },
    )
    .await
    .expect("starting the stand-in node");
    let endpoint = etcd.endpoint();
    let admin = format!("http://{}", node.admin_addr());
    let probe = format!("http://{}", node.probe_addr());
    let mut args = vec![
        "--etcd",
        &endpoint,
        "--iotex-admin",
        &admin,
        "--iotex-probe",
        &probe,
        "--key",
        "/outer/inner",
        "--value",
        "inner-a",
        // Like the replica set's electors, it stands for one that systemd or `elector
        // supervise` runs: the profile's 1 s restart bound leaves no room for the watchdog of
        // a bare run's own watcher, which the elector rightly refuses before this check.
        "--no-watcher",
    ];
    let flags = profile_flags(PROFILE);
    args.extend(flags.iter().map(String::as_str));
    let (code, _, stderr) = run_elector(&args).await;
    assert_eq!(code, Some(2), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "elector: --key /outer/inner nests inside the election /outer, whose candidates \
             /outer/... would count our keys as theirs: choose a key outside it ({outer_key} \
             is one of its candidates)"
        ),
        "{stderr}"
    );
    assert!(!node.state().active, "the node was left active: {stderr}");
    let ours = etcd
        .etcdctl_ok(&["get", "/outer/inner", "--prefix", "--keys-only"])
        .expect("etcdctl get");
    assert_eq!(ours.trim(), "", "keys of ours left behind");
    outer.kill();
}

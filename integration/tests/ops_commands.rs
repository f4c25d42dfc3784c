//! The operator commands `elector status` and `elector handover`, run as the real binary
//! against a real etcd: with candidates made directly through the etcd adapter, and with real
//! electors beside stand-in nodes (`elector_integration::cluster`, fast timing profile).
//!
//! Handovers are checked on the nodes, not only in etcd: the new leader's node becomes
//! active, the old one's standby, and the shared checker (`elector_model::history::dual_active`)
//! finds no instant with two active nodes. Run `cargo build -p elector` first. Every wait and
//! every command is bounded; processes are killed when their guards drop.
//!
//! One test binary per subject on purpose (each file under `tests/` is linked separately, which
//! costs CI minutes on 2 cores); its tests are independent and share only the cluster fixture.

use elector::etcd::{Election, EtcdOptions, connect};
use elector_integration::cluster::{Cluster, ClusterOptions, KEY, SETTLE};
use elector_integration::etcd_process::EtcdProcess;
use elector_integration::host::{elector_binary, elector_command, free_port};
use elector_integration::timing_profile::TimingProfile;
use elector_model::exposition::{parse_exposition, sample_value};
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// Bound on one operator command that should finish promptly.
const PROMPT: Duration = Duration::from_secs(20);
/// `elector handover --timeout`: generous for a loaded machine; a handover takes about a
/// second with the fast profile.
const HANDOVER_TIMEOUT: &str = "30s";
/// The activation delay of the cluster's profile (2.6 s, set by
/// `activation_delay_covers_early_revocation`).
fn activation_delay() -> Duration {
    TimingProfile::Functional.timing().activation_delay
}

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn assert_code(&self, code: i32, what: &str) -> &Self {
        assert_eq!(self.code, Some(code), "{what}: {self:#?}");
        self
    }
}

/// Runs `elector <args>` with no `ELECTOR_*` variables from the test's environment, bounded
/// by `bound` (killed after it).
async fn elector(args: &[&str], bound: Duration) -> Run {
    let mut command = tokio::process::Command::from(elector_command(
        &elector_binary().expect("the elector binary"),
    ));
    command.args(args).kill_on_drop(true);
    let output = tokio::time::timeout(bound, command.output())
        .await
        .unwrap_or_else(|_| panic!("elector {args:?} did not finish within {bound:?}"))
        .unwrap_or_else(|e| panic!("running elector {args:?}: {e}"));
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `elector status --json` for `key`, parsed.
async fn status_json(endpoint: &str, key: &str) -> Value {
    let run = elector(
        &["status", "--json", "--etcd", endpoint, "--key", key],
        PROMPT,
    )
    .await;
    // 0 healthy, 1 flagged (candidates made by hand have no registry record): both a read.
    assert!(
        matches!(run.code, Some(0 | 1)),
        "elector status --json: {run:#?}"
    );
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", run.stdout))
}

fn candidate_values(status: &Value) -> Vec<String> {
    status["candidates"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|c| c["value"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The candidates and their lease, made directly in etcd as the running elector would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_candidates_in_order_and_flags_duplicates() {
    let etcd = tokio::task::spawn_blocking(EtcdProcess::start_new)
        .await
        .expect("the etcd task")
        .expect("starting etcd (is `etcd` on PATH?)");
    let endpoint = etcd.endpoint();
    let client = connect(&EtcdOptions::new(vec![endpoint.clone()]))
        .await
        .expect("connecting to etcd");
    let mut leases = Vec::new();
    for value in ["replica-a", "replica-b", "replica-a"] {
        let election = Election::new(
            client.clone(),
            KEY.to_owned(),
            value.to_owned(),
            Duration::from_secs(2),
        );
        let (lease, _) = election
            .grant(Duration::from_secs(30))
            .await
            .expect("a lease");
        election.create_candidate(lease).await.expect("a candidate");
        leases.push(format!("{lease:x}"));
    }

    // The table: election order, the leader marked, the duplicate flagged.
    // Flagged (exit 1): hand-made candidates have no registry record, and two share a value.
    let run = elector(&["status", "--etcd", &endpoint], PROMPT).await;
    run.assert_code(1, "elector status");
    println!("elector status:\n{}", run.stdout);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("election {KEY} at revision "))
            && lines[0].ends_with(": replica-a leads, 3 candidates, 0 registered replicas"),
        "{}",
        run.stdout
    );
    assert!(lines[1].contains("VALUE") && lines[1].contains("LEASE") && lines[1].contains("TTL"));
    for (row, (value, lease)) in lines[2..5]
        .iter()
        .zip(["replica-a", "replica-b", "replica-a"].iter().zip(&leases))
    {
        assert!(
            row.contains(value)
                && row.contains(lease.as_str())
                && row.contains("/30s")
                && row.contains("UNREGISTERED"),
            "row {row:?} lacks {value} {lease}: {}",
            run.stdout
        );
    }
    assert!(lines[2].contains("(leads)"), "{}", run.stdout);
    assert!(!lines[3].contains("(leads)") && !lines[4].contains("(leads)"));
    assert!(
        lines[2].contains("DUPLICATE-VALUE")
            && !lines[3].contains("DUPLICATE-VALUE")
            && lines[4].contains("DUPLICATE-VALUE"),
        "{}",
        run.stdout
    );
    let warning = lines
        .iter()
        .find(|l| l.starts_with("warning:"))
        .unwrap_or_else(|| panic!("no warning line: {}", run.stdout));
    assert!(
        warning.contains("\"replica-a\" is held by 2 candidates")
            && warning.contains(&leases[0])
            && warning.contains(&leases[2]),
        "{warning}"
    );

    // The JSON says the same, for scripts.
    let status = status_json(&endpoint, KEY).await;
    assert_eq!(status["key"], KEY);
    assert_eq!(status["leader"], "replica-a");
    assert_eq!(
        candidate_values(&status),
        ["replica-a", "replica-b", "replica-a"]
    );
    for (i, candidate) in status["candidates"].as_array().unwrap().iter().enumerate() {
        assert_eq!(candidate["position"], i + 1);
        assert_eq!(candidate["lease"], leases[i].as_str());
        assert_eq!(candidate["key"], format!("{KEY}/{}", leases[i]).as_str());
        assert_eq!(candidate["leader"], i == 0);
        assert_eq!(candidate["granted_ttl_seconds"], 30);
        let ttl = candidate["ttl_seconds"].as_i64().unwrap_or(-1);
        assert!((1..=30).contains(&ttl), "ttl {ttl}");
    }
    assert_eq!(status["duplicates"][0]["value"], "replica-a");
    assert_eq!(
        status["duplicates"][0]["leases"],
        serde_json::json!([leases[0], leases[2]])
    );
    assert_eq!(status["handover_request"], Value::Null);

    // Another key: nobody leads, flagged (exit 1).
    let run = elector(&["status", "--etcd", &endpoint, "--key", "/nobody"], PROMPT).await;
    run.assert_code(1, "status of an empty election");
    assert!(
        run.stdout.contains("nobody leads, 0 candidates") && run.stdout.contains("NO-LEADER"),
        "{run:?}"
    );

    // Refusals write nothing: a target that is not a candidate, nobody else to hand to.
    let run = elector(
        &["handover", "--etcd", &endpoint, "--to", "replica-z"],
        PROMPT,
    )
    .await;
    run.assert_code(1, "handover to a stranger");
    assert!(
        run.stderr.contains(
            "target \"replica-z\" is not a candidate (candidates: replica-a, replica-b, replica-a)"
        ),
        "{run:?}"
    );
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    let run = elector(
        &["handover", "--etcd", &endpoint, "--to", "replica-a"],
        PROMPT,
    )
    .await;
    run.assert_code(0, "handover to the leader itself");
    assert!(run.stdout.contains("replica-a leads already"), "{run:?}");
    assert_eq!(
        status_json(&endpoint, KEY).await["handover_request"],
        Value::Null,
        "a refused handover left a request behind"
    );
    // The leader here is no elector (no registry record): the command refuses at once,
    // naming it, and writes no request.
    let run = elector(
        &["handover", "--etcd", &endpoint, "--timeout", "30s"],
        PROMPT,
    )
    .await;
    run.assert_code(1, "handover to a leader that is no elector");
    assert!(
        run.stderr.contains("the leader replica-a (lease ")
            && run.stderr.contains("has no elector registry record"),
        "{run:?}"
    );
    assert_eq!(
        status_json(&endpoint, KEY).await["handover_request"],
        Value::Null,
        "a refused handover left a request behind"
    );
    // A registered leader that does not act on the request (a record without an elector
    // behind it): after the timeout the command says so and withdraws the request.
    etcd.etcdctl_ok(&["put", &format!("{KEY}.elector/members/replica-a"), "{}"])
        .expect("etcdctl put");
    let run = elector(
        &[
            "handover",
            "--etcd",
            &endpoint,
            "--timeout",
            "1s",
            "--force",
        ],
        PROMPT,
    )
    .await;
    run.assert_code(1, "handover nobody carries out");
    assert!(
        run.stderr.contains("replica-a did not hand over within 1s")
            && run.stderr.contains("the handover request was withdrawn"),
        "{run:?}"
    );
    assert_eq!(
        status_json(&endpoint, KEY).await["handover_request"],
        Value::Null,
        "the request was not withdrawn"
    );
    let alone = Election::new(
        client.clone(),
        "/alone".to_owned(),
        "only".to_owned(),
        Duration::from_secs(2),
    );
    let (lease, _) = alone.grant(Duration::from_secs(30)).await.expect("lease");
    alone.create_candidate(lease).await.expect("candidate");
    let run = elector(
        &["handover", "--etcd", &endpoint, "--key", "/alone"],
        PROMPT,
    )
    .await;
    run.assert_code(1, "handover without another candidate");
    assert!(
        run.stderr
            .contains("no candidate other than the leader only"),
        "{run:?}"
    );
    assert_eq!(
        status_json(&endpoint, "/alone").await["handover_request"],
        Value::Null
    );

    // An unreachable etcd: one line, exit 3 for status (nothing known), 1 for handover.
    drop(etcd);
    for (args, code) in [
        (vec!["status", "--etcd", endpoint.as_str()], 3),
        (vec!["handover", "--etcd", endpoint.as_str()], 1),
    ] {
        let run = elector(&args, PROMPT).await;
        run.assert_code(code, "etcd gone");
        assert!(run.stderr.contains("unreachable"), "{run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    }
}

/// Waits until `status --json` lists `count` candidates; returns their values in order.
async fn wait_for_candidates(cluster: &Cluster, count: usize) -> Vec<String> {
    let endpoint = cluster.etcd().endpoint();
    let deadline = Instant::now() + SETTLE;
    loop {
        let values = candidate_values(&status_json(&endpoint, KEY).await);
        if values.len() == count {
            return values;
        }
        assert!(
            Instant::now() < deadline,
            "{count} candidates expected within {SETTLE:?}, have {values:?}\n{}",
            cluster.describe().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until exactly node `i` is active.
async fn wait_for_active(cluster: &Cluster, i: usize) {
    cluster
        .wait_until(&format!("node {i} alone active"), SETTLE, async || {
            cluster.active_nodes() == [i]
        })
        .await;
}

/// One `elector handover`, checked on the nodes: returns the new leader's index.
async fn hand_over(cluster: &Cluster, leader: usize, to: Option<&str>, expected: &str) -> usize {
    let endpoint = cluster.etcd().endpoint();
    let mut args = vec![
        "handover",
        "--etcd",
        &endpoint,
        "--key",
        KEY,
        "--timeout",
        HANDOVER_TIMEOUT,
    ];
    if let Some(to) = to {
        args.extend(["--to", to]);
    }
    let run = elector(&args, Duration::from_secs(60)).await;
    println!("elector {args:?}:\n{}{}", run.stdout, run.stderr);
    run.assert_code(0, "elector handover");
    assert!(
        run.stdout
            .contains(&format!("handed over: {expected} leads")),
        "{run:?}"
    );
    let next = cluster
        .index_of(expected)
        .expect("a replica of the cluster");
    wait_for_active(cluster, next).await;
    let standby = cluster
        .last_change(leader, false)
        .expect("the old leader's node went standby");
    let active = cluster
        .last_change(next, true)
        .expect("the new leader's node went active");
    println!(
        "{} standby at {standby:?}, {expected} active at {active:?}: gap {:?}",
        cluster.value(leader),
        active.saturating_sub(standby)
    );
    assert!(active >= standby, "overlap: {standby:?} > {active:?}");
    // The new leader led only after the old one resigned, which was after its node read
    // standby; had it waited the activation delay, the gap would be at least that. So a
    // shorter gap shows the handover record let it skip the delay.
    assert!(
        active - standby < activation_delay(),
        "gap {:?}: the new leader waited the activation delay",
        active - standby
    );
    assert_eq!(cluster.dual_active(), [], "two nodes active at once");
    next
}

/// `elector handover --to <third in line>` (the second steps aside), then `elector handover`
/// to the next in line: each time the new leader's node becomes active after the old one's
/// went standby, without the activation delay, and never two at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handover_to_a_named_replica_and_to_the_next_in_line() {
    let cluster = Cluster::start_with(ClusterOptions::default()).await;
    let leader = cluster.wait_for_single_leader(SETTLE).await;
    let order = wait_for_candidates(&cluster, 3).await;
    assert_eq!(order[0], cluster.value(leader));

    // Named: the candidate between the leader and the target steps aside.
    let target = order[2].clone();
    let second = order[1].clone();
    let new_leader = hand_over(&cluster, leader, Some(&target), &target).await;
    let order = wait_for_candidates(&cluster, 3).await;
    assert_eq!(order[0], target, "{order:?}");
    // The one that stepped aside campaigned again, ahead of the old leader, which resigned last.
    assert_eq!(order[1], second, "{order:?}");
    assert_eq!(order[2], cluster.value(leader), "{order:?}");

    // Next in line.
    let next = order[1].clone();
    hand_over(&cluster, new_leader, None, &next).await;
    wait_for_candidates(&cluster, 3).await;
    let status = status_json(&cluster.etcd().endpoint(), KEY).await;
    assert_eq!(status["handover_request"], Value::Null);
    assert_eq!(status["last_handover"]["value"], target.as_str());
    assert_eq!(cluster.dual_active(), [], "two nodes active at once");
}

/// A handover is refused at once when no other candidate is ready: the other replica's node is
/// unready, so its elector withdrew. Nothing changes: the leader stays active, no request is
/// left in etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handover_is_refused_when_no_other_replica_is_ready() {
    let cluster = Cluster::start_with(ClusterOptions {
        nodes: 2,
        ..ClusterOptions::default()
    })
    .await;
    let leader = cluster.wait_for_single_leader(SETTLE).await;
    let other = 1 - leader;
    wait_for_candidates(&cluster, 2).await;
    cluster.node(other).set_ready(false);
    let left = wait_for_candidates(&cluster, 1).await;
    assert_eq!(left, [cluster.value(leader)]);

    let endpoint = cluster.etcd().endpoint();
    let run = elector(&["handover", "--etcd", &endpoint, "--key", KEY], PROMPT).await;
    run.assert_code(1, "handover with no ready standby");
    assert!(
        run.stderr.contains(&format!(
            "no candidate other than the leader {}",
            cluster.value(leader)
        )),
        "{run:?}"
    );
    let run = elector(
        &[
            "handover",
            "--etcd",
            &endpoint,
            "--key",
            KEY,
            "--to",
            cluster.value(other),
        ],
        PROMPT,
    )
    .await;
    run.assert_code(1, "handover to the unready replica");
    assert!(run.stderr.contains("is not a candidate"), "{run:?}");
    assert_eq!(
        status_json(&endpoint, KEY).await["handover_request"],
        Value::Null
    );
    assert_eq!(cluster.active_nodes(), [leader]);
    assert_eq!(cluster.dual_active(), [], "two nodes active at once");

    // The Grafana dashboard charts only series the leader's /metrics serves.
    let (code, metrics) = cluster
        .status_server_get(leader, "/metrics")
        .await
        .expect("the leader's /metrics");
    assert_eq!(code, 200);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/grafana/elector-dashboard.json");
    let dashboard = std::fs::read_to_string(&path).expect("reading the dashboard");
    serde_json::from_str::<Value>(&dashboard).expect("the dashboard is JSON");
    let mut charted: Vec<&str> = dashboard
        .match_indices("elector_")
        .map(|(at, _)| {
            let rest = &dashboard[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|name| name.len() > "elector_".len())
        .collect();
    charted.sort_unstable();
    charted.dedup();
    assert!(charted.len() >= 10, "{charted:?}");
    for name in charted {
        assert!(
            metrics.lines().any(|l| l.starts_with(name)),
            "the dashboard charts {name}, which /metrics does not serve:\n{metrics}"
        );
    }
}

/// `/metrics` of a running leader against a real etcd: the exposition parses line by line,
/// and says what is true: connected to etcd, one candidate, node ready and active (read
/// recently), keep-alive and node-call histograms filling. With etcd stopped,
/// `elector_etcd_connected` goes to 0 (it used to stay 1 once a client was built); with etcd
/// back, to 1 again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_tell_the_truth_about_etcd_and_the_node() {
    let mut cluster = Cluster::start_with(ClusterOptions {
        nodes: 1,
        ..ClusterOptions::default()
    })
    .await;
    cluster.wait_for_single_leader(SETTLE).await;
    cluster
        .wait_until(
            "keep-alives timed and the node read active",
            SETTLE,
            async || {
                cluster
                    .metric(0, "elector_keepalive_latency_seconds_count")
                    .await
                    .is_some_and(|n| n >= 2.0)
                    && cluster.metric(0, "elector_node_active").await == Some(1.0)
            },
        )
        .await;
    let (code, text) = cluster
        .status_server_get(0, "/metrics")
        .await
        .expect("/metrics");
    assert_eq!(code, 200);
    let samples = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let get = |name: &str, labels: &[(&str, &str)]| {
        sample_value(&samples, name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?}:\n{text}"))
    };
    assert_eq!(get("elector_etcd_connected", &[]), 1.0);
    assert_eq!(get("elector_role", &[("role", "active")]), 1.0);
    assert_eq!(get("elector_candidates", &[]), 1.0);
    assert_eq!(get("elector_node_ready", &[]), 1.0);
    assert_eq!(get("elector_node_active", &[]), 1.0);
    assert!(get("elector_node_mode_age_seconds", &[]) < 10.0, "{text}");
    assert_eq!(
        get("elector_info", &[("key", KEY), ("value", cluster.value(0))]),
        1.0
    );
    assert!(
        get(
            "elector_keepalive_latency_seconds_bucket",
            &[("le", "+Inf")]
        ) >= 2.0
    );
    assert!(
        get(
            "elector_node_call_latency_seconds_count",
            &[("call", "read_mode")]
        ) >= 1.0
    );
    assert!(get("process_resident_memory_bytes", &[]) > 0.0);
    assert!(get("process_open_fds", &[]) > 0.0);

    // etcd stops answering: within the silence bound (2 s + 2 × 300 ms here) plus a scrape.
    cluster.stop_etcd();
    let stopped = Instant::now();
    cluster
        .wait_until("elector_etcd_connected to go to 0", SETTLE, async || {
            cluster.metric(0, "elector_etcd_connected").await == Some(0.0)
        })
        .await;
    println!(
        "elector_etcd_connected went to 0 {:?} after etcd stopped",
        stopped.elapsed()
    );
    let status = cluster.status(0).await.expect("/status");
    assert_eq!(status["etcd_connected"], false, "{status}");
    assert!(status["etcd_error"].is_string(), "{status}");

    cluster.start_etcd();
    cluster
        .wait_until("elector_etcd_connected to come back", SETTLE, async || {
            cluster.metric(0, "elector_etcd_connected").await == Some(1.0)
        })
        .await;
    cluster.assert_no_panics();
}

/// `elector check` with a replica's own flags against a running cluster: the derived timings,
/// etcd and the election, the node's mode and readiness; exit 0, and nothing written (etcd's
/// revision and the nodes' histories unchanged). With another replica's identity beside an
/// active node, it fails. With etcd stopped or frozen, it fails within seconds, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reads_everything_and_changes_nothing() {
    let cluster = Cluster::start_with(ClusterOptions {
        nodes: 2,
        ..ClusterOptions::default()
    })
    .await;
    let leader = cluster.wait_for_single_leader(SETTLE).await;
    let standby = 1 - leader;
    wait_for_candidates(&cluster, 2).await;
    wait_for_active(&cluster, leader).await;
    let endpoint = cluster.etcd().endpoint();
    let revision = |status: &Value| status["revision"].as_i64().expect("a revision");
    let before = revision(&status_json(&endpoint, KEY).await);
    let histories = |c: &Cluster| {
        (0..c.len())
            .map(|i| c.node(i).state().history.len())
            .collect::<Vec<_>>()
    };
    let nodes_before = histories(&cluster);

    for (i, mode) in [
        (leader, "active (this replica leads)"),
        (standby, "standby"),
    ] {
        let mut args = vec!["check".to_owned()];
        args.extend(cluster.elector_args(i));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = elector(&args, PROMPT).await;
        println!(
            "elector check ({}):\n{}{}",
            cluster.value(i),
            run.stdout,
            run.stderr
        );
        run.assert_code(0, "elector check");
        for needle in [
            "timing (derived from the flags",
            // The functional profile's numbers, as the elector computes them (its fast lease,
            // and the drain bound of two slots).
            "lease TTL               7s",
            "activation delay        9.6s",
            "shutdown bound          6.45s",
            "failover after a crash  ≈ 17.1s",
            &format!("{} leads, 2 candidates", cluster.value(leader)),
            "answers (connected in",
            &format!("/ha: {mode}"),
            "/readiness: ready (HTTP 200)",
            "result: everything reachable and sane",
        ] {
            assert!(
                run.stdout.contains(needle),
                "{needle:?} missing:\n{}",
                run.stdout
            );
        }
        assert!(!run.stdout.contains("FAIL"), "{}", run.stdout);
    }
    assert_eq!(
        revision(&status_json(&endpoint, KEY).await),
        before,
        "check wrote to etcd"
    );
    // docs/operations.md's way to print the leader and return.
    let prefix = format!("{KEY}/");
    let printed = tokio::task::block_in_place(|| {
        cluster.etcd().etcdctl_ok(&[
            "get",
            "--prefix",
            &prefix,
            "--sort-by=CREATE",
            "--order=ASCEND",
            "--limit=1",
            "--print-value-only",
        ])
    })
    .expect("etcdctl get");
    assert_eq!(printed.trim(), cluster.value(leader));
    assert_eq!(
        histories(&cluster),
        nodes_before,
        "check changed a node's mode"
    );

    // The standby's identity beside the leader's (active) node: two could sign.
    let mut args = vec!["check".to_owned()];
    args.extend(cluster.elector_args(leader));
    let at = args.iter().position(|a| a == "--value").expect("--value") + 1;
    args[at] = cluster.value(standby).to_owned();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = elector(&args, PROMPT).await;
    run.assert_code(1, "check beside a node active under another leader");
    assert!(
        run.stdout.contains(&format!(
            "FAIL  {}/ha: active but {} leads",
            format_args!("http://{}", cluster.node(leader).admin_addr()),
            cluster.value(leader)
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("result: 1 check failed; exit 1"),
        "{}",
        run.stdout
    );

    // etcd refusing connections, and etcd frozen (SIGSTOP: connections open, no answers).
    let mut frozen = tokio::task::spawn_blocking(EtcdProcess::start_new)
        .await
        .expect("the etcd task")
        .expect("starting etcd");
    let frozen_endpoint = frozen.endpoint();
    tokio::task::block_in_place(|| frozen.pause()).expect("pausing etcd");
    let closed = format!("http://127.0.0.1:{}", free_port().expect("a free port"));
    for etcd in [closed, frozen_endpoint] {
        let mut args = vec!["check".to_owned()];
        args.extend(cluster.elector_args(standby));
        let at = args.iter().position(|a| a == "--etcd").expect("--etcd") + 1;
        args[at] = etcd.clone();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let run = elector(&args, PROMPT).await;
        let took = started.elapsed();
        println!("elector check with etcd {etcd} ({took:?}):\n{}", run.stdout);
        run.assert_code(1, "check with etcd unreachable");
        assert!(
            run.stdout
                .contains(&format!("FAIL  etcd at {etcd} unreachable")),
            "{}",
            run.stdout
        );
        assert!(run.stdout.contains("/ha: standby"), "{}", run.stdout);
        assert!(took < Duration::from_secs(15), "took {took:?}");
    }
    tokio::task::block_in_place(|| frozen.resume()).expect("resuming etcd");
    cluster.assert_never_two_active();
}

/// A second live candidate with a running elector's `--value` (two replicas configured with one
/// identity) is warned about in that elector's log, once, naming the other lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_value_is_warned_about_at_campaign_time() {
    let cluster = Cluster::start_with(ClusterOptions {
        nodes: 1,
        ..ClusterOptions::default()
    })
    .await;
    cluster.wait_for_single_leader(SETTLE).await;
    let client = connect(&EtcdOptions::new(vec![cluster.etcd().endpoint()]))
        .await
        .expect("connecting to etcd");
    let twin = Election::new(
        client,
        KEY.to_owned(),
        cluster.value(0).to_owned(),
        Duration::from_secs(2),
    );
    let (lease, _) = twin.grant(Duration::from_secs(30)).await.expect("a lease");
    twin.create_candidate(lease).await.expect("a candidate");
    let needle = "another live candidate already uses this replica's --value";
    cluster
        .wait_until("the elector to warn about its twin", SETTLE, async || {
            !cluster.log_messages(0, needle).is_empty()
        })
        .await;
    // Once per twin, however often the election is read.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let warnings = cluster.log_messages(0, needle);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0]["lease"], format!("{lease:x}").as_str());
    assert_eq!(warnings[0]["level"], "WARN");
    twin.revoke(lease).await.expect("revoking the twin");
}

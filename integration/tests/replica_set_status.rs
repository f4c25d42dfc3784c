//! `elector status` shows the whole replica set, against real etcd, real electors (each with
//! its registry record) and stand-in nodes: a healthy set exits 0; a set with one replica
//! unready, one excluded and one elector killed shows all three with their flags, as JSON and
//! as a table, and exits 1; an `etcdctl elect` candidate shows UNREGISTERED.

use elector::etcd::{EtcdOptions, connect};
use elector_integration::cluster::{Cluster, ClusterOptions, KEY, SETTLE};
use elector_integration::etcd_process::EtcdProcess;
use elector_integration::host::elector_binary;
use serde_json::Value;
use std::time::Duration;

/// The registry refresh the electors run with here: a killed elector's record is flagged
/// silent after twice this, and expires after ten times this.
const REFRESH: &str = "2s";
/// Bound on one `elector status` run.
const PROMPT: Duration = Duration::from_secs(20);
/// Pause between two reads while waiting for the set to show something.
const POLL: Duration = Duration::from_millis(250);

/// One run of `elector status`: exit code and stdout.
async fn status(endpoint: &str, json: bool) -> (Option<i32>, String) {
    let mut command = tokio::process::Command::new(elector_binary().expect("the elector binary"));
    command.args(["status", "--etcd", endpoint, "--key", KEY]);
    if json {
        command.arg("--json");
    }
    command.kill_on_drop(true);
    let output = tokio::time::timeout(PROMPT, command.output())
        .await
        .expect("elector status finished in time")
        .expect("elector status ran");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// `elector status --json`, parsed, with its exit code.
async fn status_json(endpoint: &str) -> (Option<i32>, Value) {
    let (code, stdout) = status(endpoint, true).await;
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {stdout}"));
    (code, report)
}

/// Reads `elector status --json` until `wanted` holds, at most [`SETTLE`]; returns that read.
async fn wait_for_status(
    endpoint: &str,
    what: &str,
    wanted: impl Fn(Option<i32>, &Value) -> bool,
) -> (Option<i32>, Value) {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let (code, report) = status_json(endpoint).await;
        if wanted(code, &report) {
            return (code, report);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {SETTLE:?}; last read (exit {code:?}):\n{report:#}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The row of `value` in a report.
fn row<'a>(report: &'a Value, value: &str) -> &'a Value {
    report["replicas"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["value"] == value))
        .unwrap_or_else(|| panic!("no row for {value}: {report:#}"))
}

/// The flags of a row, with their details.
fn flags(row: &Value) -> Vec<(String, String)> {
    row["flags"]
        .as_array()
        .map(|flags| {
            flags
                .iter()
                .map(|f| {
                    (
                        f["flag"].as_str().unwrap_or_default().to_owned(),
                        f["detail"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn has_flag(row: &Value, flag: &str) -> bool {
    flags(row).iter().any(|(f, _)| f == flag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_set_is_shown_whole_with_its_flags() {
    let mut cluster = Cluster::start_with(ClusterOptions {
        extra_args: vec!["--registry-refresh".to_owned(), REFRESH.to_owned()],
        ..ClusterOptions::default()
    })
    .await;
    let endpoint = cluster.etcd().endpoint();
    let leader = cluster.wait_for_single_leader(SETTLE).await;

    // Healthy: three candidates, each registered, the leader's node active: exit 0.
    let leader_value = cluster.value(leader).to_owned();
    let (code, report) = wait_for_status(&endpoint, "a healthy set", |code, report| {
        code == Some(0)
            && report["replicas"].as_array().map(Vec::len) == Some(3)
            && report["leader"] == leader_value.as_str()
            && row(report, &leader_value)["node_mode"] == "active"
    })
    .await;
    assert_eq!(code, Some(0));
    assert_eq!(report["healthy"], true);
    let leading = row(&report, cluster.value(leader));
    assert_eq!(leading["position"], 1);
    assert_eq!(leading["node_mode"], "active", "{report:#}");
    for i in 0..3 {
        let r = row(&report, cluster.value(i));
        assert_eq!(r["registered"], true, "{report:#}");
        assert_eq!(r["record"]["refresh_seconds"], 2);
        assert!(r["candidate"].is_object(), "{report:#}");
    }

    // Break it: a follower's elector killed (its node left as is), the other follower's node
    // unready, the leader excluded (the key `elector exclude` writes).
    let killed = (leader + 1) % 3;
    let unready = (leader + 2) % 3;
    cluster.kill_elector(killed);
    cluster.node(unready).set_ready(false);
    let client = connect(&EtcdOptions::new(vec![endpoint.clone()]))
        .await
        .expect("connecting to etcd");
    let exclusion = format!("{KEY}.elector/excluded/{}", cluster.value(leader));
    client
        .kv_client()
        .put(
            exclusion,
            r#"{"by":"replica_set_status test","at":"2026-01-01T00:00:00Z","reason":"upgrade"}"#,
            None,
        )
        .await
        .expect("writing the exclusion");

    let (killed_value, unready_value, excluded_value) = (
        cluster.value(killed).to_owned(),
        cluster.value(unready).to_owned(),
        cluster.value(leader).to_owned(),
    );
    let (code, report) = wait_for_status(&endpoint, "the three flagged", |_, report| {
        let silent = has_flag(row(report, &killed_value), "ELECTOR-SILENT");
        let withdrawn = flags(row(report, &unready_value))
            .iter()
            .any(|(f, d)| f == "NOT-CAMPAIGNING" && d == "node unready");
        silent && withdrawn && row(report, &excluded_value)["excluded"] == true
    })
    .await;
    println!("elector status --json:\n{report:#}");
    assert_eq!(code, Some(1), "flagged: exit 1");
    assert_eq!(report["healthy"], false);
    assert_eq!(report["replicas"].as_array().map(Vec::len), Some(3));
    let excluded = row(&report, &excluded_value);
    // Whether an excluded replica still campaigns is the exclusion's business; if it does
    // not, the reason is given.
    if excluded["candidate"].is_null() {
        assert!(
            flags(excluded)
                .iter()
                .any(|(f, d)| f == "NOT-CAMPAIGNING" && d == "excluded"),
            "{report:#}"
        );
    }
    assert_eq!(row(&report, &killed_value)["excluded"], false);
    assert_eq!(row(&report, &unready_value)["readiness"], "unready");

    // The table says the same, and exits 1 too.
    let (code, text) = status(&endpoint, false).await;
    println!("elector status:\n{text}");
    assert_eq!(code, Some(1));
    let line = |value: &str| {
        text.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(value))
            .unwrap_or_else(|| panic!("no line for {value}:\n{text}"))
            .to_owned()
    };
    assert!(line(&killed_value).contains("ELECTOR-SILENT"), "{text}");
    assert!(
        line(&unready_value).contains("NOT-CAMPAIGNING(node unready)"),
        "{text}"
    );
    assert!(line(&unready_value).contains("unready"), "{text}");
    let excluded_line = line(&excluded_value);
    let cells: Vec<&str> = excluded_line.split_whitespace().collect();
    assert!(cells.contains(&"yes"), "EXCLUDED column: {text}");
    cluster.assert_no_panics();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcdctl_candidate_is_unregistered() {
    let etcd = tokio::task::spawn_blocking(EtcdProcess::start_new)
        .await
        .expect("the etcd task")
        .expect("starting etcd (is `etcd` on PATH?)");
    let endpoint = etcd.endpoint();
    let mut elect = etcd
        .spawn_etcdctl(&["elect", KEY, "etcdctl-candidate"])
        .expect("etcdctl elect");
    // etcdctl prints its key, then the value, once it leads.
    elect
        .next_line(SETTLE)
        .expect("etcdctl elect leads an empty election");

    let (code, report) = status_json(&endpoint).await;
    assert_eq!(code, Some(1), "{report:#}");
    let foreign = row(&report, "etcdctl-candidate");
    assert_eq!(foreign["position"], 1);
    assert_eq!(foreign["registered"], false);
    assert!(has_flag(foreign, "UNREGISTERED"), "{report:#}");
    let (code, text) = status(&endpoint, false).await;
    assert_eq!(code, Some(1));
    assert!(
        text.lines()
            .any(|l| l.contains("etcdctl-candidate") && l.contains("UNREGISTERED")),
        "{text}"
    );
}

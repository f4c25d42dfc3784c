//! Key custody with the real binary, against stand-in nodes that follow iotex-core's code for
//! `/producer-keys` (v2.5.0): every node is configured with a placeholder key, the leader's
//! elector installs the operator's key only once it may activate and withdraws it whenever it
//! demotes.
//!
//! - a standby activated by hand (`/ha?activate=true`) or restarted with `system.active: true`
//!   signs nothing as the delegate, and its elector commands it back;
//! - handovers, an exclusion and an elector's kill -9 and restart move the lead with no slot
//!   signed twice, the old leader's node left holding only its placeholder;
//! - against a node without `/producer-keys` the flags exit 2 with one clear line.
//!
//! Run `cargo build -p elector` first.

use elector_integration::cluster::{Cluster, ClusterOptions, KEY, SETTLE};
use elector_integration::operator::run_elector_command;
use elector_integration::standin::{
    StandInOptions, TEST_OPERATOR_KEY, TEST_PLACEHOLDER_KEY, test_operator, test_placeholder,
};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

const TOKEN: &str = "test-admin-token";
/// Bound on a takeover (a handover waits for the predecessor's last slot).
const TAKEOVER: Duration = Duration::from_secs(60);
/// Bound on one operator command.
const COMMAND: Duration = Duration::from_secs(60);

/// Writes `text` to `dir/name`, readable by its owner only (the elector refuses others).
fn secret(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing a secret file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    path.display().to_string()
}

/// Key custody's flags, with the files in `dir`.
fn custody_flags(dir: &Path) -> Vec<String> {
    vec![
        "--producer-key-file".to_owned(),
        secret(dir, "operator.key", TEST_OPERATOR_KEY),
        "--placeholder-key-file".to_owned(),
        secret(dir, "placeholder.key", TEST_PLACEHOLDER_KEY),
        "--admin-token-file".to_owned(),
        secret(dir, "admin.token", TOKEN),
    ]
}

/// Three replicas with key custody: nodes configured with the placeholder and serving
/// `/producer-keys` behind the token; every elector keeps its term in `dir` (a restarted one
/// ends its dead term).
fn custody(dir: &Path) -> ClusterOptions {
    let mut extra_args = custody_flags(dir);
    extra_args.extend(["--state-dir".to_owned(), dir.display().to_string()]);
    ClusterOptions {
        standin: StandInOptions {
            keys: vec![test_placeholder()],
            admin_token: Some(TOKEN.to_owned()),
            ..ClusterOptions::default().standin
        },
        extra_args,
        ..ClusterOptions::default()
    }
}

/// Waits until `i`'s node lists only the placeholder and reads standby.
async fn wait_placeholder_and_standby(cluster: &Cluster, i: usize) {
    cluster
        .wait_until(
            "the node standby with only its placeholder",
            SETTLE,
            async || {
                let state = cluster.node(i).state();
                !state.active && state.keys == [test_placeholder()]
            },
        )
        .await;
}

/// The replicas whose node signed something so far.
fn signers(cluster: &Cluster) -> Vec<usize> {
    cluster
        .signatures()
        .iter()
        .enumerate()
        .filter(|(_, list)| !list.is_empty())
        .map(|(i, _)| i)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_activated_by_hand_or_booted_active_signs_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = Cluster::start_with(custody(dir.path())).await;
    let leader = cluster.wait_for_single_leader(SETTLE).await;
    assert_eq!(
        cluster.node(leader).state().keys,
        vec![test_operator()],
        "the leader's node holds the operator's key"
    );
    let standby = (leader + 1) % cluster.len();
    let booted = (leader + 2) % cluster.len();
    wait_placeholder_and_standby(&cluster, standby).await;
    wait_placeholder_and_standby(&cluster, booted).await;

    // Someone on the host activates a standby by hand; another restarts with
    // `system.active: true` (iotex-core's default).
    cluster.activate_behind_the_back(standby).await;
    cluster.node(booted).restart(true);
    // Several slots with both nodes active (until their electors command them back).
    tokio::time::sleep(Duration::from_secs(5)).await;

    assert!(
        cluster.signatures()[standby].is_empty() && cluster.signatures()[booted].is_empty(),
        "a standby signed as the delegate: {:?}",
        signers(&cluster)
    );
    wait_placeholder_and_standby(&cluster, standby).await;
    wait_placeholder_and_standby(&cluster, booted).await;
    assert_eq!(cluster.active_nodes(), vec![leader], "the leader leads on");
    assert!(
        !cluster.signatures()[leader].is_empty(),
        "the leader signed nothing"
    );
    cluster.assert_no_double_sign();
    cluster.assert_no_panics();
}

async fn operator(cluster: &Cluster, args: &[&str]) {
    let endpoint = cluster.etcd().endpoint();
    let mut all = args.to_vec();
    all.extend(["--etcd", &endpoint, "--key", KEY]);
    run_elector_command(&all, COMMAND)
        .await
        .assert_code(0, &format!("elector {all:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handovers_exclusion_and_restart_with_custody_sign_no_slot_twice() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cluster = Cluster::start_with(custody(dir.path())).await;
    let mut leader = cluster.wait_for_single_leader(SETTLE).await;
    for step in ["sigterm", "handover", "exclude", "kill-9"] {
        let old = leader;
        let value = cluster.value(old).to_owned();
        match step {
            "sigterm" => {
                cluster.sigterm(old);
                leader = cluster.wait_for_new_leader(old, TAKEOVER).await;
                cluster.wait_exit(old, SETTLE).await;
                cluster.start_elector(old).await;
            }
            "handover" => {
                operator(&cluster, &["handover", "--timeout", "30s"]).await;
                leader = cluster.wait_for_new_leader(old, TAKEOVER).await;
            }
            "exclude" => {
                operator(&cluster, &["exclude", &value, "--timeout", "30s"]).await;
                leader = cluster.wait_for_new_leader(old, TAKEOVER).await;
                operator(&cluster, &["include", &value]).await;
            }
            _ => {
                cluster.kill_elector(old);
                tokio::time::sleep(Duration::from_secs(1)).await;
                cluster.start_elector(old).await;
                leader = cluster.wait_for_new_leader(old, TAKEOVER).await;
            }
        }
        eprintln!("{step}: {value} -> {}", cluster.value(leader));
        wait_placeholder_and_standby(&cluster, old).await;
        assert_eq!(
            cluster.node(leader).state().keys,
            vec![test_operator()],
            "{step}: the new leader's node holds the operator's key"
        );
        cluster.assert_no_double_sign();
        // The new leader signs a slot or two before the lead moves on.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
    }
    cluster.assert_no_double_sign();
    cluster.assert_never_two_active();
    cluster.assert_no_panics();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custody_against_a_node_without_producer_keys_exits_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Nodes as before v2.5.0 (no `/producer-keys`), electors without custody.
    let cluster = Cluster::start_with(ClusterOptions {
        nodes: 1,
        ..ClusterOptions::default()
    })
    .await;
    let mut args = cluster.elector_args_with(0, "--status-addr", "off");
    args.extend(custody_flags(dir.path()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = run_elector_command(&args, SETTLE).await;
    run.assert_code(2, "key custody against a node without /producer-keys");
    // The keys' addresses come first (for the operator to check), then one error line.
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("\"ERROR\""))
        .collect();
    let [line] = errors[..] else {
        panic!("not one error line: {}", run.stderr);
    };
    assert!(
        line.contains("v2.5.0") && line.contains("/producer-keys"),
        "the line does not say what is needed: {line}"
    );
    cluster.assert_no_panics();
}

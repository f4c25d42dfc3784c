//! The etcd RBAC recipe (`deploy/etcd/rbac.sh`) against a real etcd with authentication on:
//! the user it makes can run electors that elect a leader and hand over cleanly (candidates,
//! leases, the watch, the handover request and record), and can read nothing else.
//!
//! Run `cargo build -p elector` first. Every wait is bounded; processes are killed on drop.

use elector_integration::cluster::{PROFILE, SETTLE};
use elector_integration::etcd_process::EtcdProcess;
use elector_integration::host::{self, elector_binary};
use elector_integration::standin::{StandIn, StandInOptions};
use elector_integration::timing_profile::profile_flags;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = "--user=root:root-password";
const USER: &str = "elector";
const PASSWORD: &str = "elector-password";
const KEY: &str = "/iotex-rbac";

/// Runs a command to completion, killed after `bound`.
fn run_bounded(mut command: Command, bound: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    let deadline = Instant::now() + bound;
    while child.try_wait().expect("waiting").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} did not finish within {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collecting the output")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn rbac_script(endpoint: &str) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/etcd/rbac.sh");
    let mut command = Command::new("sh");
    command
        .arg(script)
        .args([KEY, USER])
        .env("ETCDCTL_ENDPOINTS", endpoint)
        .env("ETCDCTL_USER", "root:root-password")
        .env("ELECTOR_ETCD_PASSWORD", PASSWORD);
    run_bounded(command, Duration::from_secs(60))
}

/// `elector <args>` as the restricted user.
fn elector_command(endpoint: &str, args: &[&str]) -> Command {
    let mut command = host::elector_command(&elector_binary().expect("the elector binary"));
    command
        .args(args)
        .args(["--etcd", endpoint, "--key", KEY, "--etcd-user", USER])
        .env("ELECTOR_ETCD_PASSWORD", PASSWORD);
    command
}

/// A running elector beside a stand-in node, killed when dropped.
struct Replica {
    value: &'static str,
    node: StandIn,
    child: Child,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn replica(endpoint: &str, value: &'static str) -> Replica {
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let node = StandIn::start(local, local, StandInOptions::default())
        .await
        .expect("starting a stand-in node");
    let admin = format!("http://{}", node.admin_addr());
    let probe = format!("http://{}", node.probe_addr());
    let mut args = vec![
        "--iotex-admin",
        &admin,
        "--iotex-probe",
        &probe,
        "--value",
        value,
        "--status-addr",
        "off",
        // The functional profile's restart bound leaves no room for a bare run's watcher:
        // these electors stand for supervised ones.
        "--no-watcher",
    ];
    let flags = profile_flags(PROFILE);
    args.extend(flags.iter().map(String::as_str));
    let child = elector_command(endpoint, &args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting an elector");
    Replica { value, node, child }
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + SETTLE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rbac_recipe_allows_the_election_and_nothing_else() {
    let etcd = tokio::task::spawn_blocking(EtcdProcess::start_new)
        .await
        .expect("the etcd task")
        .expect("starting etcd (is `etcd` on PATH?)");
    let endpoint = etcd.endpoint();
    tokio::task::block_in_place(|| {
        etcd.etcdctl_ok(&["user", "add", "root:root-password"])
            .expect("adding root");
        etcd.etcdctl_ok(&["user", "grant-role", "root", "root"])
            .expect("granting root");
        etcd.etcdctl_ok(&["auth", "enable"]).expect("enabling auth");
        etcd.etcdctl_ok(&["put", "/other/secret", "x", ROOT])
            .expect("writing a key of someone else");
    });

    // The recipe, twice: the second run changes nothing and succeeds.
    for run in 0..2 {
        let output = tokio::task::block_in_place(|| rbac_script(&endpoint));
        println!("rbac.sh (run {run}):\n{}", text(&output));
        assert!(output.status.success(), "{}", text(&output));
    }

    // Reading the election works; reading anything else does not.
    let output = tokio::task::block_in_place(|| {
        run_bounded(elector_command(&endpoint, &["status"]), SETTLE)
    });
    // An empty election is read, and flagged (exit 1): nobody leads.
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("NO-LEADER"), "{}", text(&output));
    let output = tokio::task::block_in_place(|| {
        let mut command = Command::new(elector_binary().expect("the elector binary"));
        command
            .args([
                "status",
                "--etcd",
                &endpoint,
                "--etcd-user",
                USER,
                "--key",
                "/other",
            ])
            .env("ELECTOR_ETCD_PASSWORD", PASSWORD);
        run_bounded(command, SETTLE)
    });
    // Refused by etcd: nothing could be read (exit 3).
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(
        text(&output).contains("permission denied"),
        "{}",
        text(&output)
    );

    // Two electors as the restricted user: one leads and activates its node; a handover
    // writes the request and the record and moves leadership cleanly.
    let first = replica(&endpoint, "rbac-a").await;
    wait_for("rbac-a's node active", || first.node.state().active).await;
    let second = replica(&endpoint, "rbac-b").await;
    let status = || {
        tokio::task::block_in_place(|| {
            run_bounded(elector_command(&endpoint, &["status", "--json"]), SETTLE)
        })
    };
    wait_for("two candidates", || {
        let output = status();
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        json["candidates"].as_array().map(Vec::len) == Some(2)
    })
    .await;
    let output = tokio::task::block_in_place(|| {
        run_bounded(
            elector_command(&endpoint, &["handover", "--timeout", "30s"]),
            Duration::from_secs(60),
        )
    });
    println!("elector handover: {}", text(&output));
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains(&format!("handed over: {} leads", second.value)),
        "{}",
        text(&output)
    );
    wait_for("rbac-b's node active and rbac-a's standby", || {
        second.node.state().active && !first.node.state().active
    })
    .await;
    assert_eq!(first.value, "rbac-a");
}

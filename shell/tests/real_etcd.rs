//! The shell's etcd calls against a real etcd (from PATH; `make prereqs` installs it): what
//! only etcd itself can show, such as its gRPC keep-alive enforcement closing a connection that
//! a client pings while nothing flows.
//!
//! Each test starts its own etcd on free loopback ports in a temporary directory, and stops it
//! when its guard drops. Every wait is bounded.

use elector::etcd::{Election, EtcdOptions, connect};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Bound on etcd's start-up.
const START_BOUND: Duration = Duration::from_secs(30);

/// One etcd process, killed on drop.
struct Etcd {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Etcd {
    /// Starts etcd with its default settings (notably `--grpc-keepalive-min-time=5s`) and
    /// waits until a client connects.
    async fn start() -> Etcd {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let client = format!("http://127.0.0.1:{}", free_port());
        let peer = format!("http://127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("etcd's log file");
        let child = Command::new("etcd")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--name", "shell-test"])
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("shell-test={peer}")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log handle"))
            .stderr(log)
            .spawn()
            .expect("starting etcd (`make prereqs` installs it)");
        let etcd = Etcd {
            child,
            endpoint: client,
            _dir: dir,
        };
        let deadline = Instant::now() + START_BOUND;
        while connect(&etcd.options()).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "etcd did not start within {START_BOUND:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        etcd
    }

    /// Options as the running elector's default timing gives them: HTTP/2 pings every 1 s
    /// while a stream is open.
    fn options(&self) -> EtcdOptions {
        EtcdOptions::new(vec![self.endpoint.clone()])
    }

    async fn election(&self, value: &str) -> Election {
        let client = connect(&self.options()).await.expect("connecting to etcd");
        Election::new(
            client,
            "/shell-test".to_owned(),
            value.to_owned(),
            Duration::from_secs(2),
        )
    }
}

/// Longer than etcd's `--grpc-keepalive-min-time` (5 s) at one ping a second: enough for etcd
/// to count the pings of a connection with an idle stream as abuse and close it.
const IDLE: Duration = Duration::from_secs(8);

/// The registry renews its lease once per refresh (30 s by default). Over a keep-alive stream
/// kept open between renewals, the connection is pinged every second with nothing flowing,
/// etcd closes it (GOAWAY `too_many_pings`) and the next renewal fails (`channel closed`):
/// the registry's warning every 60-90 s on a healthy etcd. `renew_once` opens a stream per
/// renewal and closes it, so the connection is idle without streams, never pinged, and every
/// renewal succeeds. The kept stream failing here too shows that this test reproduces the
/// failure it guards against.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rare_renewals_survive_an_idle_connection() {
    let etcd = Etcd::start().await;

    let registry = etcd.election("fresh-streams").await;
    let (lease, _) = registry
        .grant(Duration::from_secs(60))
        .await
        .expect("a lease");
    for round in 0..3 {
        assert_eq!(
            registry.renew_once(lease).await.map_err(|e| e.to_string()),
            Ok(true),
            "renewal {round} over a fresh stream"
        );
        tokio::time::sleep(IDLE).await;
    }
    assert_eq!(
        registry.renew_once(lease).await.map_err(|e| e.to_string()),
        Ok(true)
    );
    registry.revoke(lease).await.expect("revoking");
    assert_eq!(
        registry.renew_once(lease).await.map_err(|e| e.to_string()),
        Ok(false),
        "a revoked lease is reported gone"
    );

    let kept = etcd.election("kept-stream").await;
    let (lease, _) = kept.grant(Duration::from_secs(60)).await.expect("a lease");
    kept.keep_alive_once(lease)
        .await
        .expect("the first renewal");
    tokio::time::sleep(IDLE).await;
    let error = kept
        .keep_alive_once(lease)
        .await
        .expect_err("etcd closes a connection pinged with an idle stream");
    assert!(error.to_string().contains("channel closed"), "{error}");
}

/// `elector history` reads the election's past with one watch: every change under the key,
/// oldest first, up to the read, none of another election sharing the prefix; after a
/// compaction, from the compaction point on, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_replays_every_change_and_knows_what_was_compacted() {
    let etcd = Etcd::start().await;
    let client = connect(&etcd.options()).await.expect("connecting to etcd");
    let mut kv = client.kv_client();
    let ours = etcd.election("reader").await;
    let (lease, _) = ours.grant(Duration::from_secs(60)).await.expect("a lease");
    let candidate = format!("/shell-test/{lease:x}");
    kv.put(
        candidate.as_str(),
        "a",
        Some(etcd_client::PutOptions::new().with_lease(lease)),
    )
    .await
    .expect("put");
    kv.put("/shell-test.elector/members/a", "{}", None)
        .await
        .expect("put");
    kv.put("/shell-test-other/1", "not ours", None)
        .await
        .expect("put");
    kv.delete(candidate.as_str(), None).await.expect("delete");
    let history = ours
        .history(1000, Duration::from_secs(10))
        .await
        .expect("the history");
    assert!(!history.compacted && !history.truncated);
    assert_eq!(history.from_revision, 1);
    let seen: Vec<(String, bool)> = history
        .changes
        .iter()
        .map(|c| (c.key.clone(), c.put))
        .collect();
    assert_eq!(
        seen,
        [
            (candidate.clone(), true),
            ("/shell-test.elector/members/a".to_owned(), true),
            (candidate.clone(), false),
        ]
    );
    // A deletion carries the value it deleted.
    assert_eq!(history.changes[2].value, b"a");
    assert!(
        history
            .changes
            .windows(2)
            .all(|w| w[0].revision < w[1].revision)
    );

    // Compacted up to the members' write: the history starts there, and says so.
    let compact_at = history.changes[1].revision;
    client
        .clone()
        .compact(compact_at, None)
        .await
        .expect("compaction");
    let after = ours
        .history(1000, Duration::from_secs(10))
        .await
        .expect("the history after compaction");
    assert!(after.compacted, "{after:?}");
    assert_eq!(after.from_revision, compact_at);
    assert_eq!(
        after.changes.last().map(|c| (c.key.clone(), c.put)),
        Some((candidate, false))
    );
    // A bound on the changes read is kept, and said.
    let bounded = ours
        .history(1, Duration::from_secs(10))
        .await
        .expect("bounded");
    assert!(
        bounded.truncated && bounded.changes.len() == 1,
        "{bounded:?}"
    );
}

/// The elector binary against a real etcd, its node unreachable, in JSON: every line carries
/// the replica's value, every start message comes once (`etcd answers` too, although the
/// elector opens three connections), and a node that keeps failing is one warning, not one per
/// call. A bad flag's error follows the JSON format, with the flag and a value that works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_each_start_message_once_and_json_lines_carry_the_value() {
    let etcd = Etcd::start().await;
    let state = tempfile::tempdir().expect("a state directory");
    let closed = || format!("http://127.0.0.1:{}", free_port());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_elector"))
        .args([
            "--etcd",
            &etcd.endpoint,
            "--key",
            "/shell-test",
            "--value",
            "e2e",
        ])
        .args(["--iotex-admin", &closed(), "--iotex-probe", &closed()])
        .args(["--status-addr", "off", "--log-format", "json"])
        // Killed below: no watcher to outlive it on the same stderr, and a state directory of
        // its own (the default one is locked per value).
        .arg("--no-watcher")
        .env("ELECTOR_STATE_DIR", state.path())
        .env_remove("ELECTOR_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting the elector");
    // Long enough for every connection (election, registry, --key check) and many node calls.
    tokio::time::sleep(Duration::from_secs(5)).await;
    child.start_kill().expect("killing the elector");
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("the elector ends")
        .expect("its output");
    let text = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 4, "{text}");
    for line in &lines {
        assert_eq!(line["value"], "e2e", "{line}");
    }
    let count = |message: &str| {
        lines
            .iter()
            .filter(|l| {
                l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            })
            .count()
    };
    assert_eq!(count("etcd answers"), 1, "{text}");
    assert_eq!(count("elector starting"), 1, "{text}");
    assert_eq!(count("connected to etcd"), 1, "{text}");
    // The node never answers: one warning for its admin endpoint in these 5 s.
    assert_eq!(count("node admin call failed"), 1, "{text}");

    let bad = tokio::process::Command::new(env!("CARGO_BIN_EXE_elector"))
        .args(["--log-format", "json", "-ttl=3s"])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("running the elector");
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let line: serde_json::Value = serde_json::from_str(stderr.trim()).expect("a JSON line");
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["exit_code"], 2);
    let message = line["message"].as_str().unwrap_or_default();
    assert!(message.contains("set --ttl 10s"), "{message}");
}

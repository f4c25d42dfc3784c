//! The stand-in node over real HTTP: `/ha` reads and writes, the deactivation tail, ignored
//! values, faults, probes, restarts, the control endpoints, and the binary. Every wait is
//! bounded.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use elector_integration::standin::{StandIn, StandInOptions};
use elector_model::flag_node::{AdminFault, GARBAGE_BODY};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Bound for anything that should happen promptly.
const PROMPT: Duration = Duration::from_secs(5);

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn start(start_active: bool, round: Duration, ready: bool) -> StandIn {
    let options = StandInOptions {
        start_active,
        round,
        ready,
    };
    StandIn::start(local(), local(), options).await.unwrap()
}

/// One HTTP/1.1 request on a fresh connection; the status and body, or `None` if no complete
/// answer came within `limit`.
async fn try_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    limit: Duration,
) -> Option<(u16, String)> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request =
            format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        String::from_utf8(raw).unwrap()
    };
    let raw = timeout(limit, exchange).await.ok()?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .expect("a complete response head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Some((status, body.to_string()))
}

async fn request(addr: SocketAddr, method: &str, target: &str) -> (u16, String) {
    try_request(addr, method, target, PROMPT)
        .await
        .unwrap_or_else(|| panic!("no answer to {method} {target} within {PROMPT:?}"))
}

async fn get(addr: SocketAddr, target: &str) -> (u16, String) {
    request(addr, "GET", target).await
}

/// What `/ha` reads, checking the node's exact answer.
async fn read_mode(standin: &StandIn) -> bool {
    match get(standin.admin_addr(), "/ha").await {
        (200, body) if body == "{\"active\":true}\n" => true,
        (200, body) if body == "{\"active\":false}\n" => false,
        other => panic!("unexpected /ha read: {other:?}"),
    }
}

/// `/ha?activate=<value>`, checking the node's empty 200.
async fn write_mode(standin: &StandIn, value: &str) {
    let answer = get(standin.admin_addr(), &format!("/ha?activate={value}")).await;
    assert_eq!(answer, (200, String::new()), "activate={value}");
}

async fn control(standin: &StandIn, target: &str) -> serde_json::Value {
    let (status, body) = get(standin.admin_addr(), target).await;
    assert_eq!(status, 200, "{target}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn reads_and_writes_like_the_node() {
    let standin = start(false, Duration::ZERO, true).await;
    assert!(!read_mode(&standin).await);

    write_mode(&standin, "true").await;
    assert!(read_mode(&standin).await);
    write_mode(&standin, "false").await;
    assert!(!read_mode(&standin).await);

    // Values are lower-cased and URL-decoded; the method is not checked.
    write_mode(&standin, "TRUE").await;
    assert!(read_mode(&standin).await);
    write_mode(&standin, "%66alse").await;
    assert!(!read_mode(&standin).await);
    assert_eq!(
        request(standin.admin_addr(), "POST", "/ha?activate=True").await,
        (200, String::new())
    );
    assert!(read_mode(&standin).await);
    // An empty value is a read.
    assert_eq!(
        get(standin.admin_addr(), "/ha?activate=").await,
        (200, "{\"active\":true}\n".to_string())
    );

    assert_eq!(get(standin.admin_addr(), "/ha/").await.0, 404);
    assert_eq!(get(standin.admin_addr(), "/pause").await.0, 404);
    standin.shutdown().await;
}

#[tokio::test]
async fn other_values_are_ignored_with_an_empty_200() {
    for start_active in [false, true] {
        let standin = start(start_active, Duration::ZERO, true).await;
        for value in ["1", "0", "yes", "no", "on", "tru", "%20true", "true+"] {
            write_mode(&standin, value).await;
            assert_eq!(read_mode(&standin).await, start_active, "activate={value}");
        }
        // Go drops a pair with a `;` or a bad escape, which leaves a read.
        let read = (200, format!("{{\"active\":{start_active}}}\n"));
        for target in ["/ha?activate=true;", "/ha?activate=f%ZZalse"] {
            assert_eq!(get(standin.admin_addr(), target).await, read, "{target}");
        }
        assert_eq!(
            standin.state().history,
            vec![(Duration::ZERO, start_active)]
        );
        standin.shutdown().await;
    }
}

#[tokio::test]
async fn reads_say_active_until_the_round_ends() {
    const ROUND_MS: u64 = 1_000;
    let standin = start(true, Duration::from_millis(ROUND_MS), true).await;
    let mut changes = standin.subscribe();

    // Deactivate 100 ms into a round, so the tail is long enough to see over HTTP.
    let now_ms = standin.state().now.as_millis() as u64;
    let until_100_ms_into_next_round = ROUND_MS - now_ms % ROUND_MS + 100;
    tokio::time::sleep(Duration::from_millis(until_100_ms_into_next_round)).await;
    let deactivated_at = standin.state().now;
    write_mode(&standin, "false").await;
    assert!(
        read_mode(&standin).await,
        "the round in progress keeps the node active"
    );

    // The tail ends on a round boundary, by itself, without any request.
    let (at, active) = timeout(PROMPT, changes.recv()).await.unwrap().unwrap();
    assert!(!active);
    assert_eq!(
        at.as_nanos() % Duration::from_millis(ROUND_MS).as_nanos(),
        0,
        "{at:?}"
    );
    assert!(at > deactivated_at && at <= deactivated_at + Duration::from_millis(ROUND_MS));
    assert!(!read_mode(&standin).await);

    let state = control(&standin, "/control/state").await;
    let end_ms = at.as_millis() as u64;
    assert_eq!(
        state["history"],
        serde_json::json!([[0, true], [end_ms, false]])
    );
    assert_eq!(state["active"], false);
    standin.shutdown().await;
}

#[tokio::test]
async fn status_500_fault() {
    let standin = start(false, Duration::ZERO, true).await;
    control(&standin, "/control/fault?admin=500").await;
    for target in ["/ha", "/ha?activate=true"] {
        assert_eq!(get(standin.admin_addr(), target).await.0, 500, "{target}");
    }
    control(&standin, "/control/fault?admin=none").await;
    assert!(!read_mode(&standin).await, "a failed write has no effect");
    standin.shutdown().await;
}

#[tokio::test]
async fn garbage_fault() {
    let standin = start(true, Duration::ZERO, true).await;
    let state = control(&standin, "/control/fault?admin=garbage").await;
    assert_eq!(state["fault"], "garbage");
    let (status, body) = get(standin.admin_addr(), "/ha").await;
    assert_eq!((status, body.as_str()), (200, GARBAGE_BODY));
    assert!(serde_json::from_str::<serde_json::Value>(&body).is_err());
    assert_eq!(get(standin.admin_addr(), "/ha?activate=false").await.0, 200);
    control(&standin, "/control/fault?admin=none").await;
    assert!(read_mode(&standin).await, "a garbled write has no effect");
    standin.shutdown().await;
}

#[tokio::test]
async fn hang_fault_never_answers_and_changes_nothing() {
    let standin = start(true, Duration::ZERO, true).await;
    standin.set_admin_fault(AdminFault::Hang);
    let limit = Duration::from_millis(300);
    let admin = standin.admin_addr();
    assert_eq!(
        try_request(admin, "GET", "/ha?activate=false", limit).await,
        None
    );
    assert_eq!(try_request(admin, "GET", "/ha", limit).await, None);

    // A request left hanging on an open connection does not block the rest.
    let mut hung = TcpStream::connect(admin).await.unwrap();
    hung.write_all(b"GET /ha?activate=false HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(get(standin.probe_addr(), "/liveness").await.0, 200);
    let state = control(&standin, "/control/fault?admin=none").await;
    assert_eq!(state["fault"], "none");
    assert!(read_mode(&standin).await, "hung requests have no effect");
    assert_eq!(standin.state().history, vec![(Duration::ZERO, true)]);

    // Shutdown closes the hung connection instead of waiting for it.
    timeout(PROMPT, standin.shutdown()).await.unwrap();
    let mut rest = Vec::new();
    let read = timeout(PROMPT, hung.read_to_end(&mut rest)).await.unwrap();
    assert!(
        read.is_err() || rest.is_empty(),
        "closed without an answer: {rest:?}"
    );
}

#[tokio::test]
async fn probes() {
    let standin = start(false, Duration::ZERO, false).await;
    let probe = standin.probe_addr();
    assert_eq!(get(probe, "/liveness").await, (200, "OK".to_string()));
    assert_eq!(get(probe, "/readiness").await, (503, "FAIL".to_string()));
    assert_eq!(get(probe, "/health").await, (503, "FAIL".to_string()));

    let state = control(&standin, "/control/ready?value=true").await;
    assert_eq!(state["ready"], true);
    assert_eq!(get(probe, "/readiness").await, (200, "OK".to_string()));
    assert_eq!(
        get(probe, "/health?verbose=1").await,
        (200, "OK".to_string())
    );
    assert_eq!(get(probe, "/liveness").await, (200, "OK".to_string()));

    let (status, metrics) = get(probe, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("\niotex_standin_ready 1\n"), "{metrics}");
    assert!(metrics.contains("\niotex_standin_active 0\n"), "{metrics}");

    standin.set_ready(false);
    assert_eq!(get(probe, "/readiness").await, (503, "FAIL".to_string()));
    // The probe port serves no admin endpoints, and the other way round.
    assert_eq!(get(probe, "/ha").await.0, 404);
    assert_eq!(get(probe, "/control/state").await.0, 404);
    assert_eq!(get(standin.admin_addr(), "/liveness").await.0, 404);
    standin.shutdown().await;
}

#[tokio::test]
async fn restart_takes_the_configured_start_mode() {
    let standin = start(false, Duration::from_secs(60), true).await;
    write_mode(&standin, "true").await;
    write_mode(&standin, "false").await;
    assert!(read_mode(&standin).await, "in the tail of a 60 s round");

    // A restart drops the round in progress.
    let state = control(&standin, "/control/restart?active=false").await;
    assert_eq!(state["active"], false);
    assert!(!read_mode(&standin).await);

    // A misconfigured replica comes back active, and so again on a restart without `active`.
    let state = control(&standin, "/control/restart?active=true").await;
    assert_eq!(
        (state["active"].clone(), state["start_active"].clone()),
        (true.into(), true.into())
    );
    assert!(read_mode(&standin).await);
    write_mode(&standin, "false").await;
    control(&standin, "/control/restart").await;
    assert!(read_mode(&standin).await);

    // In-process, the same.
    standin.restart(false);
    assert!(!read_mode(&standin).await);
    let modes: Vec<bool> = standin.state().history.iter().map(|&(_, m)| m).collect();
    assert_eq!(modes, [false, true, false, true, false]);
    standin.shutdown().await;
}

#[tokio::test]
async fn refused_activation_answers_500_and_changes_nothing() {
    let standin = start(false, Duration::ZERO, true).await;
    let state = control(&standin, "/control/fault?activate=refuse").await;
    assert_eq!(state["activate_fault"], "refuse");
    assert_eq!(state["fault"], "none", "the admin fault is left as it was");
    for value in ["true", "TRUE"] {
        let answer = get(standin.admin_addr(), &format!("/ha?activate={value}")).await;
        assert_eq!(answer, (500, "activation refused\n".to_string()));
    }
    assert!(
        !read_mode(&standin).await,
        "a refused activation has no effect"
    );
    assert_eq!(standin.state().history, vec![(Duration::ZERO, false)]);

    // Reads and deactivation still work: an active node (restarted active) can be demoted.
    standin.restart(true);
    write_mode(&standin, "false").await;
    assert!(!read_mode(&standin).await);

    // An admin fault takes precedence; clearing both restores activation.
    let state = control(&standin, "/control/fault?admin=hang&activate=refuse").await;
    assert_eq!(
        (&state["fault"], &state["activate_fault"]),
        (&"hang".into(), &"refuse".into())
    );
    let limit = Duration::from_millis(300);
    let hung = try_request(standin.admin_addr(), "GET", "/ha?activate=true", limit).await;
    assert_eq!(hung, None);
    control(&standin, "/control/fault?admin=none&activate=none").await;
    write_mode(&standin, "true").await;
    assert!(read_mode(&standin).await);
    standin.shutdown().await;
}

#[tokio::test]
async fn a_killed_node_stops_signing_and_answers_nothing() {
    // Active, with 5 s rounds: a deactivation would leave a tail; a death leaves none.
    let standin = start(true, Duration::from_secs(5), true).await;
    let admin = standin.admin_addr();
    let probe = standin.probe_addr();
    // An idle keep-alive connection, and a request hung by the admin fault.
    let mut idle = TcpStream::connect(admin).await.unwrap();
    standin.set_admin_fault(AdminFault::Hang);
    let mut hung = TcpStream::connect(admin).await.unwrap();
    hung.write_all(b"GET /ha?activate=false HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();

    let state = control(&standin, "/control/kill").await;
    assert_eq!(state["alive"], false);
    assert_eq!(
        state["active"], false,
        "signing stops at once, no round tail"
    );
    assert_eq!(state["ready"], false);
    let state = standin.state();
    assert!(!state.active && !state.alive);
    let modes: Vec<bool> = state.history.iter().map(|&(_, m)| m).collect();
    assert_eq!(modes, [true, false]);

    // Open connections close without an answer; new ones are refused, on both listeners.
    for (name, stream) in [("idle", &mut idle), ("hung", &mut hung)] {
        let mut rest = Vec::new();
        let read = timeout(PROMPT, stream.read_to_end(&mut rest)).await;
        let read = read.unwrap_or_else(|_| panic!("the {name} connection stayed open"));
        assert!(read.is_err() || rest.is_empty(), "{name}: {rest:?}");
    }
    for addr in [admin, probe] {
        let connect = timeout(PROMPT, TcpStream::connect(addr)).await.unwrap();
        assert!(connect.is_err(), "{addr} still accepts connections");
    }
    // The model goes on: its history is still there for the checker.
    assert_eq!(standin.state().history, state.history);
    timeout(PROMPT, standin.shutdown()).await.unwrap();
}

#[tokio::test]
async fn control_endpoints() {
    let standin = start(false, Duration::from_secs(5), true).await;
    let admin = standin.admin_addr();

    let state = control(&standin, "/control/state").await;
    assert_eq!(state["active"], false);
    assert_eq!(state["ready"], true);
    assert_eq!(state["fault"], "none");
    assert_eq!(state["activate_fault"], "none");
    assert_eq!(state["alive"], true);
    assert_eq!(state["start_active"], false);
    assert_eq!(state["history"], serde_json::json!([[0, false]]));
    assert!(state["now_ms"].is_u64());

    // POST works like GET.
    let (status, body) = request(admin, "POST", "/control/ready?value=false").await;
    assert_eq!(status, 200);
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(state["ready"], false);
    for fault in ["500", "garbage", "hang", "none"] {
        let state = control(&standin, &format!("/control/fault?admin={fault}")).await;
        assert_eq!(state["fault"], fault);
    }

    for bad in [
        "/control/ready",
        "/control/ready?value=yes",
        "/control/fault?admin=HANG",
        "/control/fault",
        "/control/fault?activate=yes",
        "/control/fault?admin=none&activate=refuse!",
        "/control/fault?admin=bad&activate=none",
        "/control/restart?active=1",
    ] {
        assert_eq!(get(admin, bad).await.0, 400, "{bad}");
    }
    assert_eq!(request(admin, "PUT", "/control/state").await.0, 405);
    assert_eq!(get(admin, "/control/nothing").await.0, 404);
    assert_eq!(get(admin, "/control").await.0, 404);
    // Nothing changed by the bad requests.
    let state = control(&standin, "/control/state").await;
    assert_eq!(state["ready"], false);
    assert_eq!(state["activate_fault"], "none");
    assert_eq!(state["alive"], true);
    standin.shutdown().await;
}

#[tokio::test]
async fn subscribers_hear_every_mode_change_in_order() {
    let standin = start(false, Duration::ZERO, true).await;
    let mut changes = standin.subscribe();
    write_mode(&standin, "true").await;
    write_mode(&standin, "true").await;
    write_mode(&standin, "false").await;
    standin.restart(true);
    let mut heard = Vec::new();
    for _ in 0..3 {
        heard.push(timeout(PROMPT, changes.recv()).await.unwrap().unwrap());
    }
    let modes: Vec<bool> = heard.iter().map(|&(_, m)| m).collect();
    assert_eq!(modes, [true, false, true]);
    assert_eq!(standin.state().history[1..], heard[..]);
    standin.shutdown().await;
}

#[tokio::test]
async fn the_binary_serves_logs_changes_and_stops_on_sigterm() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_stand-in-node"))
        .args([
            "--admin",
            "127.0.0.1:0",
            "--probe",
            "127.0.0.1:0",
            "--round",
            "0s",
            "--unready",
        ])
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut next_line = async || {
        timeout(PROMPT, log.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    };

    let banner = next_line().await;
    let addr_after = |label: &str| -> SocketAddr {
        let start = banner
            .find(label)
            .unwrap_or_else(|| panic!("{label} in {banner}"));
        let rest = &banner[start + label.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    let admin = addr_after("admin http://");
    let probe = addr_after("probe http://");

    assert_eq!(get(probe, "/readiness").await.0, 503);
    assert_eq!(
        get(admin, "/ha").await,
        (200, "{\"active\":false}\n".to_string())
    );
    assert_eq!(get(admin, "/ha?activate=true").await, (200, String::new()));
    assert!(next_line().await.ends_with("mode active"));
    assert_eq!(get(admin, "/ha?activate=false").await, (200, String::new()));
    assert!(next_line().await.ends_with("mode standby"));

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = timeout(PROMPT, child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    assert!(next_line().await.contains("stopped on SIGTERM"));
}

//! The stand-in node over real HTTP, serving iotex-core's node model: `/ha` reads and writes,
//! the deactivation that waits for the slot in progress, ignored values, faults, probes,
//! restarts, `/producer-keys`, the control endpoints and signatures (two stand-ins share one
//! chain, so their signatures are judged together), and the binary. Every wait is bounded.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use elector_integration::standin::{
    StandIn, StandInOptions, TEST_OPERATOR_KEY, TEST_PLACEHOLDER_KEY, test_operator,
    test_placeholder,
};
use elector_model::history::double_signs;
use elector_model::node::{AdminFault, GARBAGE_BODY};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Bound for anything that should happen promptly: a few 2.5 s slots (a deactivation waits
/// for the slot in progress to start, a round in progress ends within one).
const PROMPT: Duration = Duration::from_secs(10);

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn start(start_active: bool, ready: bool) -> StandIn {
    let options = StandInOptions {
        start_active,
        ready,
        ..StandInOptions::default()
    };
    StandIn::start(local(), local(), options).await.unwrap()
}

/// The modes of the state's history, without times.
fn modes(standin: &StandIn) -> Vec<bool> {
    standin.state().history.iter().map(|&(_, m)| m).collect()
}

/// One HTTP/1.1 request on a fresh connection; the status and body, or `None` if no complete
/// answer came within `limit`.
async fn try_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    limit: Duration,
) -> Option<(u16, String)> {
    try_send(addr, method, target, "", "", limit).await
}

/// Like [`try_request`], with extra header lines (each ending in CRLF) and a body.
async fn try_send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &str,
    body: &str,
    limit: Duration,
) -> Option<(u16, String)> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
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

/// Reads `/ha` until it says `active`, within [`PROMPT`] (a round in progress ends first).
async fn wait_mode(standin: &StandIn, active: bool) {
    timeout(PROMPT, async {
        while read_mode(standin).await != active {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("/ha never read active={active}"));
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
    let standin = start(false, true).await;
    assert!(!read_mode(&standin).await);

    write_mode(&standin, "true").await;
    assert!(read_mode(&standin).await);
    // activate=false may wait for the slot in progress; the round in progress ends later.
    write_mode(&standin, "false").await;
    wait_mode(&standin, false).await;

    // Values are lower-cased and URL-decoded; the method is not checked.
    write_mode(&standin, "TRUE").await;
    assert!(read_mode(&standin).await);
    write_mode(&standin, "%66alse").await;
    wait_mode(&standin, false).await;
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
        let standin = start(start_active, true).await;
        for value in ["1", "0", "yes", "no", "on", "tru", "%20true", "true+"] {
            write_mode(&standin, value).await;
            assert_eq!(read_mode(&standin).await, start_active, "activate={value}");
        }
        // Go drops a pair with a `;` or a bad escape, which leaves a read.
        let read = (200, format!("{{\"active\":{start_active}}}\n"));
        for target in ["/ha?activate=true;", "/ha?activate=f%ZZalse"] {
            assert_eq!(get(standin.admin_addr(), target).await, read, "{target}");
        }
        assert_eq!(modes(&standin), [start_active]);
        standin.shutdown().await;
    }
}

/// An active node signs on the slot grid (our delegate proposes every slot); after
/// `activate=false` it still finishes what it started, and then signs nothing more: no slot
/// it signs for starts later than one slot (and a retry) after a read said standby.
#[tokio::test]
async fn an_active_node_signs_its_slots_and_stops_after_a_standby_read() {
    let standin = start(false, true).await;
    write_mode(&standin, "true").await;
    timeout(PROMPT, async {
        while standin
            .signatures()
            .iter()
            .filter(|s| s.kind.as_str() == "proposal")
            .count()
            < 2
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("two proposals signed within a few slots");
    write_mode(&standin, "false").await;
    wait_mode(&standin, false).await;
    let standby_read = standin.state().now;
    let count = standin.signatures().len();
    // Three more slots: nothing new beyond the last slot the model allows.
    tokio::time::sleep(Duration::from_millis(7_500)).await;
    let slot = Duration::from_millis(2_500);
    let late: Vec<_> = standin
        .signatures()
        .into_iter()
        .filter(|s| s.slot > standby_read + slot + Duration::from_millis(100))
        .collect();
    assert!(late.is_empty(), "signed after the standby read: {late:?}");
    assert!(standin.signatures().len() >= count);

    let signatures = control(&standin, "/control/signatures").await;
    let list = signatures.as_array().expect("a list");
    assert_eq!(list.len(), standin.signatures().len());
    let first = &list[0];
    for field in ["height", "round", "time_ms", "slot_ms"] {
        assert!(first[field].is_u64(), "{field} in {first}");
    }
    assert_eq!(first["kind"], "proposal");
    assert_eq!(first["key"], test_operator().as_str());
    let state = control(&standin, "/control/state").await;
    assert_eq!(state["signatures"], list.len());
    let history = state["history"].as_array().unwrap();
    let modes: Vec<bool> = history.iter().map(|e| e[1].as_bool().unwrap()).collect();
    assert_eq!(modes, [false, true, false]);
    standin.shutdown().await;
}

/// Every stand-in computes the same chain from the wall clock: two active at once sign the
/// same heights and rounds, which `double_signs` reports.
#[tokio::test]
async fn two_active_stand_ins_double_sign() {
    let a = start(false, true).await;
    let b = start(false, true).await;
    write_mode(&a, "true").await;
    write_mode(&b, "true").await;
    let found = timeout(PROMPT, async {
        loop {
            let found = double_signs(&[a.signatures(), b.signatures()]);
            if !found.is_empty() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("a double sign within a few slots");
    assert_eq!(found[0].nodes, (0, 1));
    // A standby node signs nothing.
    let c = start(false, true).await;
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    assert!(c.signatures().is_empty());
    for standin in [a, b, c] {
        standin.shutdown().await;
    }
}

#[tokio::test]
async fn status_500_fault() {
    let standin = start(false, true).await;
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
    let standin = start(true, true).await;
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
    let standin = start(true, true).await;
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
    assert_eq!(modes(&standin), [true]);

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
    let standin = start(false, false).await;
    let probe = standin.probe_addr();
    assert_eq!(get(probe, "/liveness").await, (200, "OK".to_string()));
    assert_eq!(get(probe, "/readiness").await, (503, "FAIL".to_string()));
    assert_eq!(get(probe, "/health").await, (503, "FAIL".to_string()));

    // Readiness is evaluated per block: it turns from the next block on.
    control(&standin, "/control/ready?value=true").await;
    timeout(PROMPT, async {
        while get(probe, "/readiness").await.0 != 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("ready from the next block on");
    assert_eq!(control(&standin, "/control/state").await["ready"], true);
    assert_eq!(
        get(probe, "/health?verbose=1").await,
        (200, "OK".to_string())
    );
    assert_eq!(get(probe, "/liveness").await, (200, "OK".to_string()));

    let (status, metrics) = get(probe, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("\niotex_standin_ready 1\n"), "{metrics}");
    assert!(metrics.contains("\niotex_standin_active 0\n"), "{metrics}");
    assert!(metrics.contains("iotex_consensus_height "), "{metrics}");

    standin.set_ready(false);
    timeout(PROMPT, async {
        while get(probe, "/readiness").await.0 != 503 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("unready from the next block on");
    // The probe port serves no admin endpoints, and the other way round.
    assert_eq!(get(probe, "/ha").await.0, 404);
    assert_eq!(get(probe, "/control/state").await.0, 404);
    assert_eq!(get(standin.admin_addr(), "/liveness").await.0, 404);
    standin.shutdown().await;
}

#[tokio::test]
async fn restart_takes_the_configured_start_mode() {
    let standin = start(false, true).await;
    write_mode(&standin, "true").await;

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
    wait_mode(&standin, false).await;
    control(&standin, "/control/restart").await;
    assert!(read_mode(&standin).await);

    // In-process, the same.
    standin.restart(false);
    assert!(!read_mode(&standin).await);
    let modes = modes(&standin);
    assert_eq!(modes.first(), Some(&false));
    assert_eq!(modes.last(), Some(&false));
    assert!(modes.windows(2).all(|w| w[0] != w[1]), "{modes:?}");
    standin.shutdown().await;
}

#[tokio::test]
async fn refused_activation_answers_500_and_changes_nothing() {
    let standin = start(false, true).await;
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
    assert_eq!(modes(&standin), [false]);

    // Reads and deactivation still work: an active node (restarted active) can be demoted.
    standin.restart(true);
    write_mode(&standin, "false").await;
    wait_mode(&standin, false).await;

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
    let standin = start(true, true).await;
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
    assert_eq!(state["active"], false, "signing stops at once");
    assert_eq!(state["ready"], false);
    let state = standin.state();
    assert!(!state.active && !state.alive);
    assert_eq!(modes(&standin), [true, false]);
    let signed = standin.signatures().len();

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
    // The model goes on: its history is still there for the checker, and it signs nothing.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    assert_eq!(standin.state().history, state.history);
    assert_eq!(standin.signatures().len(), signed);
    timeout(PROMPT, standin.shutdown()).await.unwrap();
}

#[tokio::test]
async fn control_endpoints() {
    let standin = start(false, true).await;
    let admin = standin.admin_addr();

    let state = control(&standin, "/control/state").await;
    assert_eq!(state["active"], false);
    assert_eq!(state["fault"], "none");
    assert_eq!(state["activate_fault"], "none");
    assert_eq!(state["alive"], true);
    assert_eq!(state["start_active"], false);
    assert_eq!(state["operator"], test_operator().as_str());
    assert_eq!(state["keys"], serde_json::json!([test_operator()]));
    assert_eq!(state["signatures"], 0);
    let now = state["now_ms"].as_u64().unwrap();
    assert_eq!(state["history"].as_array().unwrap().len(), 1);
    assert!(state["history"][0][0].as_u64().unwrap() <= now);

    // POST works like GET.
    let (status, body) = request(admin, "POST", "/control/ready?value=false").await;
    assert_eq!(status, 200);
    serde_json::from_str::<serde_json::Value>(&body).unwrap();
    for fault in ["500", "garbage", "hang", "none"] {
        let state = control(&standin, &format!("/control/fault?admin={fault}")).await;
        assert_eq!(state["fault"], fault);
    }
    assert_eq!(
        control(&standin, "/control/signatures").await,
        serde_json::json!([])
    );

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
    assert_eq!(state["activate_fault"], "none");
    assert_eq!(state["alive"], true);
    standin.shutdown().await;
}

/// `/producer-keys` as iotex-core v2.5.0 serves it: 404 without an admin token configured;
/// with one, 401 without the token, 405 for other methods, `GET` lists addresses and `PUT`
/// replaces the keys (addresses derived as the elector derives them). A node holding only a
/// placeholder signs nothing, even active.
#[tokio::test]
async fn producer_keys_need_the_token_and_replace_the_keys() {
    let without = start(false, true).await;
    assert_eq!(get(without.admin_addr(), "/producer-keys").await.0, 404);
    without.shutdown().await;

    let standin = StandIn::start(
        local(),
        local(),
        StandInOptions {
            admin_token: Some("s3cret".into()),
            ..StandInOptions::default()
        },
    )
    .await
    .unwrap();
    let admin = standin.admin_addr();
    let send = async |method: &str, headers: &str, body: &str| {
        try_send(admin, method, "/producer-keys", headers, body, PROMPT)
            .await
            .expect("an answer")
    };
    let bearer = "Authorization: Bearer s3cret\r\n";
    assert_eq!(send("GET", "", "").await.0, 401);
    assert_eq!(
        send("GET", "Authorization: Bearer nope\r\n", "").await.0,
        401
    );
    assert_eq!(send("POST", bearer, "").await.0, 405);
    assert_eq!(send("DELETE", bearer, "").await.0, 405);
    let listed = |body: &str| -> Vec<String> {
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        serde_json::from_value(json["operator_addresses"].clone()).unwrap()
    };
    let (status, body) = send("GET", bearer, "").await;
    assert_eq!(status, 200);
    assert_eq!(listed(&body), [test_operator()]);

    let put = format!("{{\"private_keys\":[\"{TEST_PLACEHOLDER_KEY}\"]}}");
    let (status, body) = send("PUT", "X-Admin-Token: s3cret\r\n", &put).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(listed(&body), [test_placeholder()]);
    assert_eq!(standin.state().keys, [test_placeholder()]);
    assert_eq!(
        send("PUT", bearer, "{\"private_keys\":[\"zz\"]}").await.0,
        400
    );
    assert_eq!(send("PUT", bearer, "not json").await.0, 400);

    // Active with the placeholder only: nothing signed with the operator's key.
    write_mode(&standin, "true").await;
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    assert!(standin.signatures().is_empty());
    let put = format!("{{\"private_keys\":[\"{TEST_OPERATOR_KEY}\"]}}");
    let (status, body) = send("PUT", bearer, &put).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(listed(&body), [test_operator()]);
    standin.shutdown().await;
}

#[tokio::test]
async fn subscribers_hear_every_mode_change_in_order() {
    let standin = start(false, true).await;
    let mut changes = standin.subscribe();
    write_mode(&standin, "true").await;
    write_mode(&standin, "true").await;
    standin.restart(false);
    standin.restart(true);
    let mut heard = Vec::new();
    for _ in 0..3 {
        heard.push(timeout(PROMPT, changes.recv()).await.unwrap().unwrap());
    }
    let modes: Vec<bool> = heard.iter().map(|&(_, m)| m).collect();
    assert_eq!(modes, [true, false, true]);
    assert_eq!(standin.state().history[1..4], heard[..]);
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
            "--block-interval",
            "2.5s",
            "--unready",
        ])
        .env_remove("IOTEX_ADMIN_TOKEN")
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
    assert_eq!(get(admin, "/producer-keys").await.0, 404);
    assert_eq!(
        get(admin, "/ha").await,
        (200, "{\"active\":false}\n".to_string())
    );
    assert_eq!(get(admin, "/ha?activate=true").await, (200, String::new()));
    assert!(next_line().await.ends_with("mode active"));
    // An active node signs, and the binary logs it.
    let mut signed = next_line().await;
    while !signed.contains(" signed height ") {
        signed = next_line().await;
    }
    assert_eq!(get(admin, "/ha?activate=false").await, (200, String::new()));
    let mut line = next_line().await;
    while !line.ends_with("mode standby") {
        assert!(line.contains(" signed height "), "{line}");
        line = next_line().await;
    }

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = timeout(PROMPT, child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    let mut line = next_line().await;
    while !line.contains("stopped on SIGTERM") {
        line = next_line().await;
    }
}

//! The `elector` binary's command line and its log output, without etcd or a node: bad flags
//! exit 2 with one line naming the flag; the Go elector's spellings start the elector; the
//! log has no ANSI colour when stderr is not a terminal; a closed stderr never kills it.
//!
//! Run `cargo build -p elector` first. Every process is bounded and killed on drop.

use elector_integration::host::{elector_binary, elector_command, free_port};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Bound on a run that must end at once (bad flags).
const PROMPT: Duration = Duration::from_secs(20);

/// The elector binary with no `ELECTOR_*` or `NO_COLOR` variable from the test's environment.
fn elector() -> Command {
    let mut command = elector_command(&elector_binary().expect("the elector binary"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name == "NO_COLOR" || name == "NOTIFY_SOCKET" {
            command.env_remove(&*name);
        }
    }
    command.stdin(Stdio::null());
    command
}

/// Runs to the end, bounded: killed (and the test failed) after `bound`.
fn run_bounded(mut command: Command, bound: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the elector");
    let deadline = Instant::now() + bound;
    while child.try_wait().expect("waiting").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the elector did not finish within {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collecting the output")
}

/// Kills the child when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads `child`'s stderr until a line contains `needle` or `bound` passes; returns the lines.
fn read_until(child: &mut Child, needle: &str, bound: Duration) -> Vec<String> {
    let stderr = child.stderr.take().expect("a piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + bound;
    let mut lines = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(needle);
                lines.push(line);
                if found {
                    return lines;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no line with {needle:?} within {bound:?}: {lines:#?}");
}

#[test]
fn bad_flags_exit_2_with_one_line_naming_the_flag() {
    for (args, needle) in [
        (vec!["--etcd", "http://"], "--etcd: \"http://\""),
        (
            vec!["--etcd", "ftp://10.0.0.1:2379"],
            "unknown scheme \"ftp\"",
        ),
        (vec!["--etcd", "http://10.0.0.1:2379/v3"], "has a path"),
        (vec!["--etcd", "https://10.0.0.1:2379"], "need the CA"),
        (
            vec!["--iotex-admin", "127.0.0.1:9009"],
            "write http://127.0.0.1:9009",
        ),
        (
            vec!["--iotexProbe=http://127.0.0.1:8080/readiness"],
            "--iotex-probe",
        ),
        (
            vec![
                "-etcd=127.0.0.1:2379",
                "iotexProbe=http://127.0.0.1:8080",
                "-key=/k",
            ],
            "write -iotexProbe=http://127.0.0.1:8080",
        ),
        (vec!["status", "--etcd", "http://etcd"], "has no port"),
        (vec!["check", "--iotex-admin", "http://"], "--iotex-admin"),
        (vec!["check", "--ttl", "9s"], "unsafe timing"),
        (vec!["--ttl", "9s"], "unsafe timing"),
    ] {
        let mut command = elector();
        command.args(&args);
        let output = run_bounded(command, PROMPT);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("elector: ") && stderr.contains(needle),
            "{args:?}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

/// The Go image's `command: [elector, -etcd=...]` with a scheme-less endpoint and two-dash
/// camel-case flags: the elector runs, on `http://` etcd.
#[test]
fn the_go_elector_command_line_runs() {
    let etcd_port = free_port().expect("a free port");
    let mut command = elector();
    command.args([
        "elector".to_owned(),
        format!("-etcd=127.0.0.1:{etcd_port}"),
        format!(
            "--iotexAdmin=http://127.0.0.1:{}",
            free_port().expect("a free port")
        ),
        format!(
            "--iotexProbe=http://127.0.0.1:{}",
            free_port().expect("a free port")
        ),
        "-key=/iotex-server".to_owned(),
        "-value=go-style".to_owned(),
        "-status-addr=off".to_owned(),
    ]);
    let mut child = Running(
        command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the elector"),
    );
    let lines = read_until(&mut child.0, "elector starting", PROMPT);
    let line = lines.last().expect("a line");
    assert!(
        line.contains(&format!("http://127.0.0.1:{etcd_port}")) && line.contains("go-style"),
        "{line}"
    );
    assert!(child.0.try_wait().expect("waiting").is_none(), "it exited");
}

/// An elector that runs against nothing (etcd and node ports closed), status server off: it
/// keeps logging warnings.
fn running_args() -> Vec<String> {
    let closed = || format!("http://127.0.0.1:{}", free_port().expect("a free port"));
    vec![
        format!("--etcd={}", closed()),
        format!("--iotex-admin={}", closed()),
        format!("--iotex-probe={}", closed()),
        "--status-addr=off".to_owned(),
        "--value=cli-test".to_owned(),
    ]
}

/// SIGTERM to `child`, then its exit code, bounded.
fn terminate(child: &mut Child, bound: Duration) -> Option<i32> {
    let pid = libc::pid_t::try_from(child.id()).expect("pid in range");
    // SAFETY: kill(2) on our own child, not yet reaped (we hold its `Child`).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait().expect("waiting") {
            return status.code();
        }
        assert!(Instant::now() < deadline, "no exit within {bound:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Bound on a clean stop of an elector whose node never answers: the shutdown grace (8.8 s with
/// defaults) and a fence attempt, with room for a loaded machine.
const STOP: Duration = Duration::from_secs(40);

#[test]
fn logs_to_a_pipe_have_no_colour_and_json_is_flat() {
    let mut command = elector();
    command.args(running_args());
    let mut child = Running(
        command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the elector"),
    );
    let lines = read_until(&mut child.0, "etcd unreachable", PROMPT);
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "ANSI escape in {line:?}");
    }
    let warning = lines.last().expect("a line");
    // Wall-clock timestamp first; the reason said once.
    assert!(
        warning.starts_with("20") && warning.contains("Z  WARN "),
        "{warning}"
    );
    assert_eq!(
        warning.matches("Connection refused").count(),
        1,
        "{warning}"
    );
    drop(child);

    let mut command = elector();
    command.args(running_args()).args(["--log-format", "json"]);
    let mut child = Running(
        command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the elector"),
    );
    let lines = read_until(&mut child.0, "etcd unreachable", PROMPT);
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value.get("fields").is_none(), "nested fields: {line}");
        assert!(
            value["message"].is_string() && value["timestamp"].is_string(),
            "{line}"
        );
    }
    let warning: serde_json::Value =
        serde_json::from_str(lines.last().expect("a line")).expect("JSON");
    assert_eq!(warning["message"], "etcd unreachable, node held in standby");
    assert!(
        warning["reason"]
            .as_str()
            .is_some_and(|r| r.contains("Connection refused")),
        "{warning}"
    );
}

/// stderr is a pipe whose reader went away (EPIPE on every write): the elector goes on, and
/// stops cleanly on SIGTERM, never with a panic (exit 101).
#[test]
fn a_broken_stderr_pipe_does_not_kill_the_elector() {
    let mut command = elector();
    command.args(running_args());
    let mut child = Running(
        command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the elector"),
    );
    let stderr = child.0.stderr.take().expect("a piped stderr");
    let mut first = String::new();
    BufReader::new(stderr)
        .read_line(&mut first)
        .expect("a first log line");
    // The reading end is dropped here: every later write fails with EPIPE.
    // The elector retries etcd with a growing backoff and warns each time: several writes.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        child.0.try_wait().expect("waiting").is_none(),
        "the elector died with stderr broken: {:?}",
        child.0.try_wait()
    );
    let code = terminate(&mut child.0, STOP);
    assert!(matches!(code, Some(0 | 1)), "exit code {code:?}");
}

/// stderr closed (`2>&-`): the elector runs and stops cleanly.
#[test]
fn a_closed_stderr_does_not_kill_the_elector() {
    let mut line = format!(
        "exec '{}'",
        elector_binary().expect("the elector binary").display()
    );
    for arg in running_args() {
        line.push_str(&format!(" '{arg}'"));
    }
    line.push_str(" 2>&-");
    let mut command = Command::new("sh");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ELECTOR_") {
            command.env_remove(name);
        }
    }
    let mut child = Running(
        command
            .args(["-c", &line])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("starting sh"),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        child.0.try_wait().expect("waiting").is_none(),
        "the elector died with stderr closed"
    );
    let code = terminate(&mut child.0, STOP);
    assert!(matches!(code, Some(0 | 1)), "exit code {code:?}");
}

/// A TTL above a minute is allowed, with a warning saying what it costs: in the running
/// elector's log and in `elector check`.
#[test]
fn a_long_ttl_is_warned_about() {
    let mut command = elector();
    command.args(running_args()).args(["--ttl", "2m"]);
    let mut child = Running(
        command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the elector"),
    );
    let lines = read_until(&mut child.0, "--ttl 2m is above 1m", PROMPT);
    assert!(
        lines.last().is_some_and(|l| l.contains("WARN")),
        "{lines:?}"
    );
    drop(child);

    let mut command = elector();
    command
        .arg("check")
        .args(running_args())
        .args(["--ttl", "2m"]);
    let output = run_bounded(command, PROMPT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "nothing answers: {stdout}");
    assert!(stdout.contains("warn  --ttl 2m is above 1m"), "{stdout}");
    assert!(
        // The activation delay covers a lease etcd ended early, so it grows with the TTL.
        stdout.contains("failover after a crash  ≈ 245.3s"),
        "{stdout}"
    );
}

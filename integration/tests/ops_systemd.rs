//! The systemd integration without systemd: the unit file's `ExecStopPost=` command line run
//! exactly as written (parsed from `deploy/systemd/elector.service`, with the variables of
//! `deploy/systemd/elector.env`) after the leader's elector was killed with SIGKILL; the
//! fence of `elector force-standby`; and the `sd_notify` messages (`READY=1`, `STATUS=`,
//! `WATCHDOG=1`, `STOPPING=1`) on a socket of our own.
//!
//! Run `cargo build -p elector` first. Every wait is bounded; processes are killed on drop.

use elector_integration::cluster::{Cluster, ClusterOptions, SETTLE};
use elector_integration::host::elector_binary;
use elector_integration::notify_socket::receive;
use elector_model::node::AdminFault;
use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn deploy_file(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/systemd")
        .join(name);
    path.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `key=value` settings of the unit's `[Service]` section, in order (a key may repeat).
fn unit_settings() -> Vec<(String, String)> {
    let path = deploy_file("elector.service");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut section = String::new();
    let mut settings = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line.to_owned();
            continue;
        }
        if section == "[Service]"
            && let Some((key, value)) = line.split_once('=')
        {
            settings.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    settings
}

fn unit_setting(name: &str) -> String {
    unit_settings()
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
        .unwrap_or_else(|| panic!("elector.service sets no {name}="))
}

/// The variables of the example environment file, as systemd reads them (quotes removed).
fn env_file() -> BTreeMap<String, String> {
    let path = deploy_file("elector.env");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not an assignment in elector.env: {line:?}"));
            let value = value.trim();
            let value = ['\'', '"']
                .into_iter()
                .find_map(|q| value.strip_prefix(q).and_then(|v| v.strip_suffix(q)))
                .unwrap_or(value);
            (key.trim().to_owned(), value.to_owned())
        })
        .collect()
}

/// A systemd command line as systemd splits it: prefixes (`-`, `@`, `:`, `+`, `!`) dropped,
/// words split on blanks, double quotes grouping. The installed binary path is replaced by
/// this workspace's binary.
fn command_line(value: &str) -> Vec<String> {
    let value = value.trim_start_matches(['-', '@', ':', '+', '!']);
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    assert!(
        words.first().is_some_and(|w| w.ends_with("/elector")),
        "the command line does not run the elector: {value:?}"
    );
    words[0] = elector_binary()
        .expect("the elector binary")
        .to_string_lossy()
        .into_owned();
    words
}

/// Runs the unit's `ExecStopPost=` as systemd would after the elector died: with the example
/// environment file, the node's admin endpoint pointed at `admin`, and `extra` variables.
fn run_exec_stop_post(admin: &str, extra: &[(&str, &str)]) -> (Option<i32>, String, Duration) {
    let words = command_line(&unit_setting("ExecStopPost"));
    let mut command = Command::new(&words[0]);
    command.args(&words[1..]).env_clear();
    command.env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command.envs(env_file());
    command.env("ELECTOR_IOTEX_ADMIN", admin);
    command.env(
        "STATE_DIRECTORY",
        elector_integration::host::private_state_dir(),
    );
    command.envs(extra.iter().copied());
    let started = Instant::now();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {words:?}: {e}"));
    let output = wait_bounded(child, Duration::from_secs(30));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text, started.elapsed())
}

/// Waits for `child` to exit and collects its output; kills it and fails after `bound`.
fn wait_bounded(mut child: Child, bound: Duration) -> std::process::Output {
    let deadline = Instant::now() + bound;
    while child.try_wait().expect("waiting for a child").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a child process did not exit within {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
        .wait_with_output()
        .expect("collecting a child's output")
}

/// The unit is what the documentation says, and its watchdog fits in the restart bound of the
/// environment file (the inequality the elector checks at start-up).
#[test]
fn the_unit_and_its_environment_file_agree() {
    assert_eq!(unit_setting("Type"), "notify");
    assert_eq!(unit_setting("Restart"), "always");
    assert_eq!(unit_setting("WatchdogSignal"), "SIGKILL");
    assert_eq!(unit_setting("EnvironmentFile"), "/etc/elector/elector.env");
    assert!(unit_setting("ExecStart").ends_with("/elector"));
    let watchdog = humantime::parse_duration(&unit_setting("WatchdogSec")).expect("WatchdogSec");
    // The timing the file gives: its profile (the default one unless ELECTOR_PROFILE is set),
    // with the timing variables it sets on top (they are commented out as shipped), as the
    // elector's own parser makes it.
    let env = env_file();
    let mut line = vec![
        "elector".to_owned(),
        "--iotex-admin=http://127.0.0.1:1".to_owned(),
        "--iotex-probe=http://127.0.0.1:1".to_owned(),
        "--value=v".to_owned(),
    ];
    for (variable, flag) in [
        ("ELECTOR_PROFILE", "profile"),
        ("ELECTOR_RESTART_BOUND", "restart-bound"),
        ("ELECTOR_NODE_TIMEOUT", "node-timeout"),
    ] {
        if let Some(value) = env.get(variable) {
            line.push(format!("--{flag}={value}"));
        }
    }
    let timing = match elector::cli::parse(line.clone()) {
        elector::cli::Parsed::Run(cli) => cli.run.timing().expect("a valid timing"),
        _ => panic!("the environment file's timing does not parse: {line:?}"),
    };
    let (bound, node_timeout) = (timing.restart_bound, timing.node_timeout);
    // LOOP_STALL + WatchdogSec + STOP_POST_START + node timeout (shell/src/systemd.rs,
    // watchdog_within_restart_bound), and the stop timeout after it when a hang meets a stop
    // (stop_within_restart_bound).
    let stop = humantime::parse_duration(&unit_setting("TimeoutStopSec")).expect("TimeoutStopSec");
    let needed = LOOP_STALL + watchdog + Duration::from_millis(100) + node_timeout;
    assert!(
        needed <= bound,
        "WatchdogSec={watchdog:?} does not fit the restart bound {bound:?}"
    );
    assert!(
        needed + stop <= bound,
        "WatchdogSec={watchdog:?} + TimeoutStopSec={stop:?} do not fit the restart bound {bound:?}"
    );
    // force-standby asks for more time as ExecStopPost=: systemd must listen to it.
    assert_eq!(unit_setting("NotifyAccess"), "all");

    // systemd's own check of the unit, with the paths pointed at this workspace.
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        println!("systemd-analyze not found: the unit's syntax is not checked");
        return;
    };
    assert!(version.status.success());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let unit = std::fs::read_to_string(deploy_file("elector.service"))
        .expect("reading the unit")
        .replace(
            "/usr/local/bin/elector",
            &elector_binary()
                .expect("the elector binary")
                .to_string_lossy(),
        )
        .replace(
            "/etc/elector/elector.env",
            &deploy_file("elector.env").to_string_lossy(),
        );
    let path = dir.path().join("elector.service");
    std::fs::write(&path, unit).expect("writing the unit");
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("running systemd-analyze verify");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(verify.status.success() && said.trim().is_empty(), "{said}");
}

/// The leader's elector dies by SIGKILL: nothing demotes its node, until the unit's
/// `ExecStopPost=` runs; then the node is standby, confirmed by a read, promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_stop_post_forces_the_node_standby_after_sigkill() {
    let mut cluster = Cluster::start_with(ClusterOptions {
        nodes: 1,
        ..ClusterOptions::default()
    })
    .await;
    let leader = cluster.wait_for_single_leader(SETTLE).await;
    cluster.kill_elector(leader);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        cluster.node(leader).state().active,
        "the node of a killed elector went standby by itself"
    );

    let admin = format!("http://{}", cluster.node(leader).admin_addr());
    let (code, output, took) = tokio::task::block_in_place(|| run_exec_stop_post(&admin, &[]));
    println!("ExecStopPost took {took:?}: {output}");
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("confirmed standby"), "{output}");
    assert!(!cluster.node(leader).state().active);
    // The command goes out at once; confirming waits for the node's round (500 ms).
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// A node that does not answer is not confirmed standby: `force-standby` gives up after its
/// timeout, runs the fence command with the reason, and exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_standby_fences_a_node_it_cannot_confirm() {
    let cluster = Cluster::start_with(ClusterOptions {
        nodes: 1,
        ..ClusterOptions::default()
    })
    .await;
    cluster.node(0).set_admin_fault(AdminFault::Hang);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let marker = dir.path().join("fenced");
    let fence = format!("echo \"$ELECTOR_FENCE_REASON\" > '{}'", marker.display());
    let admin = format!("http://{}", cluster.node(0).admin_addr());
    let (code, output, took) = tokio::task::block_in_place(|| {
        run_exec_stop_post(
            &admin,
            &[
                ("ELECTOR_FORCE_STANDBY_TIMEOUT", "1s"),
                ("ELECTOR_FENCE_CMD", &fence),
            ],
        )
    });
    println!("force-standby took {took:?}: {output}");
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains("not confirmed standby within 1s"),
        "{output}"
    );
    assert!(output.contains("succeeded"), "{output}");
    assert_eq!(output.trim().lines().count(), 1, "{output}");
    let reason = std::fs::read_to_string(&marker).expect("the fence command ran");
    assert!(reason.contains("not confirmed standby"), "{reason}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

/// The elector's loop stall bound (shell/src/systemd.rs `LOOP_STALL`).
const LOOP_STALL: Duration = Duration::from_millis(500);

/// An elector process with our own `NOTIFY_SOCKET`, killed when dropped.
struct Notified {
    child: Child,
}

impl Notified {
    /// Waits, bounded, for the elector to exit; its exit status.
    async fn exit_within(&mut self, bound: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting") {
                return status;
            }
            assert!(Instant::now() < deadline, "the elector did not exit");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The cluster's elector arguments with `--restart-bound` replaced (the fast profile's 1 s
/// cannot hold a watchdog).
fn args_with_restart_bound(cluster: &Cluster, bound: &str) -> Vec<String> {
    cluster.elector_args_with(0, "--restart-bound", bound)
}

fn spawn_notified(args: &[String], socket: &Path, watchdog_usec: &str, stderr: Stdio) -> Child {
    let mut command = Command::new(elector_binary().expect("the elector binary"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ELECTOR_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        // What systemd's StateDirectory= gives the unit: a directory of its own.
        .env(
            "STATE_DIRECTORY",
            elector_integration::host::private_state_dir(),
        )
        .env("NOTIFY_SOCKET", socket)
        .env("WATCHDOG_USEC", watchdog_usec)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("starting the elector")
}
fn has(received: &[(Instant, String)], needle: &str) -> Option<usize> {
    received.iter().position(|(_, m)| m.contains(needle))
}

/// `READY=1` once the node was confirmed standby (before leading), `STATUS=` on role changes,
/// `WATCHDOG=1` every half watchdog period, `STOPPING=1` on SIGTERM; and a watchdog that does
/// not fit in the restart bound is refused at start-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sd_notify_readiness_status_watchdog_and_stopping() {
    let mut cluster = Cluster::start_with(ClusterOptions {
        nodes: 1,
        ..ClusterOptions::default()
    })
    .await;
    cluster.kill_elector(0);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("binding the notify socket");

    // WatchdogSec=2.5s with a 3 s restart bound: 0.5 + 2.5 + 0.1 + 0.15 > 3.
    let args = args_with_restart_bound(&cluster, "3s");
    let refused = tokio::task::block_in_place(|| {
        wait_bounded(
            spawn_notified(&args, &path, "2500000", Stdio::piped()),
            Duration::from_secs(20),
        )
    });
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("watchdog_within_restart_bound"), "{stderr}");

    // WatchdogSec=1s fits.
    let mut elector = Notified {
        child: spawn_notified(&args, &path, "1000000", Stdio::null()),
    };
    let received = tokio::task::block_in_place(|| {
        receive(&socket, SETTLE, |got| {
            let pings_after_active = has(got, "STATUS=active").map_or(0, |at| {
                got[at..].iter().filter(|(_, m)| m == "WATCHDOG=1").count()
            });
            pings_after_active >= 4
        })
    });
    let messages: Vec<&str> = received.iter().map(|(_, m)| m.as_str()).collect();
    let ready = has(&received, "READY=1").unwrap_or_else(|| panic!("no READY=1: {messages:?}"));
    let active =
        has(&received, "STATUS=active").unwrap_or_else(|| panic!("no STATUS=active: {messages:?}"));
    assert!(
        ready < active,
        "READY=1 must come before leading: {messages:?}"
    );
    assert!(
        has(&received, "STATUS=starting").is_some_and(|at| at <= ready),
        "{messages:?}"
    );
    let pings: Vec<Instant> = received
        .iter()
        .filter(|(_, m)| m == "WATCHDOG=1")
        .map(|(at, _)| *at)
        .collect();
    for pair in pings.windows(2) {
        let gap = pair[1] - pair[0];
        // Every half second; a loaded machine may delay one, never by the whole period.
        assert!(gap < Duration::from_millis(950), "ping gap {gap:?}");
    }

    // SIGTERM: STOPPING=1, then a clean exit.
    let pid = libc::pid_t::try_from(elector.child.id()).expect("pid in range");
    // SAFETY: kill(2) on our own child, not yet reaped (we hold its `Child`).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let stopping = tokio::task::block_in_place(|| {
        receive(&socket, SETTLE, |got| has(got, "STOPPING=1").is_some())
    });
    assert!(has(&stopping, "STOPPING=1").is_some(), "{stopping:?}");
    let status = elector.exit_within(SETTLE).await;
    assert_eq!(status.code(), Some(0));
    assert!(!cluster.node(0).state().active);
}

/// SIGTERM while the node cannot be proven standby (its `/ha` hangs, no fence): the elector
/// does not exit, says `STATUS=STUCK: ...`, and keeps asking systemd for more stop time
/// (`EXTEND_TIMEOUT_USEC=`) so that `TimeoutStopSec=` does not SIGKILL it while it still
/// holds the lead; once the node answers standby it exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_stop_asks_systemd_for_more_time_and_says_why() {
    let mut cluster = Cluster::start_with(ClusterOptions {
        nodes: 1,
        ..ClusterOptions::default()
    })
    .await;
    cluster.kill_elector(0);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("binding the notify socket");
    let args = args_with_restart_bound(&cluster, "3s");
    let mut elector = Notified {
        child: spawn_notified(&args, &path, "1000000", Stdio::null()),
    };
    let started = tokio::task::block_in_place(|| {
        receive(&socket, SETTLE, |got| has(got, "STATUS=active").is_some())
    });
    assert!(has(&started, "STATUS=active").is_some(), "{started:?}");

    cluster.node(0).set_admin_fault(AdminFault::Hang);
    let pid = libc::pid_t::try_from(elector.child.id()).expect("pid in range");
    // SAFETY: kill(2) on our own child, not yet reaped (we hold its `Child`).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let stuck = tokio::task::block_in_place(|| {
        receive(&socket, SETTLE, |got| {
            has(got, "STATUS=STUCK").is_some()
                && got
                    .iter()
                    .filter(|(_, m)| m.contains("EXTEND_TIMEOUT_USEC="))
                    .count()
                    >= 10
        })
    });
    let messages: Vec<&str> = stuck.iter().map(|(_, m)| m.as_str()).collect();
    assert!(has(&stuck, "STATUS=STUCK").is_some(), "{messages:?}");
    let extensions = stuck
        .iter()
        .filter(|(_, m)| m.contains("EXTEND_TIMEOUT_USEC="))
        .count();
    assert!(extensions >= 10, "{messages:?}");
    assert!(
        elector.child.try_wait().expect("waiting").is_none(),
        "exited while its node may still sign"
    );
    assert!(cluster.node(0).state().active);

    // The node answers again (standby): the stop completes.
    cluster.node(0).set_admin_fault(AdminFault::None);
    let status = elector.exit_within(SETTLE).await;
    assert_eq!(status.code(), Some(0));
    assert!(!cluster.node(0).state().active);
}

/// While starting, `STATUS=` says what the elector waits for, as it changes: a node that does
/// not answer and an unreachable etcd, then an unready node, then etcd alone; then the role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sd_notify_status_says_what_starting_waits_for() {
    let mut cluster = Cluster::start_with(ClusterOptions {
        nodes: 1,
        etcd_running: false,
        standin: elector_integration::standin::StandInOptions {
            ready: false,
            ..ClusterOptions::default().standin
        },
        ..ClusterOptions::default()
    })
    .await;
    cluster.kill_elector(0);
    cluster.node(0).set_admin_fault(AdminFault::Hang);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("binding the notify socket");
    let args = args_with_restart_bound(&cluster, "3s");
    let _elector = Notified {
        child: spawn_notified(&args, &path, "1000000", Stdio::null()),
    };
    let status_with = |received: &[(Instant, String)], needles: &[&str]| {
        received.iter().any(|(_, m)| {
            m.lines().any(|l| {
                l.starts_with("STATUS=") && needles.iter().all(|needle| l.contains(needle))
            })
        })
    };
    let mut seen: Vec<String> = Vec::new();
    let mut wait_for = |needles: &[&str]| {
        let received = tokio::task::block_in_place(|| {
            receive(&socket, SETTLE, |got| status_with(got, needles))
        });
        seen.extend(received.iter().map(|(_, m)| m.clone()));
        assert!(
            status_with(&received, needles),
            "no STATUS= with {needles:?}: {seen:#?}"
        );
        received
    };
    let first = wait_for(&[
        "STATUS=starting: waiting: node not answering",
        "etcd unreachable",
    ]);
    assert!(has(&first, "READY=1").is_none(), "{first:?}");

    cluster.node(0).set_admin_fault(AdminFault::None);
    wait_for(&["STATUS=starting: waiting: node unready", "etcd unreachable"]);
    cluster.node(0).set_ready(true);
    let alone = wait_for(&["waiting: etcd unreachable"]);
    assert!(
        alone
            .iter()
            .filter(|(_, m)| m.contains("waiting: etcd unreachable"))
            .all(|(_, m)| !m.contains("node")),
        "{alone:?}"
    );
    cluster.start_etcd();
    wait_for(&["STATUS=active"]);
}

use super::*;

#[test]
fn notifications_are_parsed_like_systemd() {
    assert_eq!(
        parse_notice(b"WATCHDOG=1"),
        Notice {
            watchdog: true,
            ..Notice::default()
        }
    );
    let n = parse_notice(b"EXTEND_TIMEOUT_USEC=2500000\nSTATUS=shutting down\nREADY=1");
    assert_eq!(n.extend, Some(Duration::from_millis(2500)));
    assert!(n.ready && !n.watchdog);
    assert_eq!(parse_notice(b"STOPPING=1\nSTATUS=x"), Notice::default());
    // Malformed or unknown assignments change nothing.
    assert_eq!(
        parse_notice(b"WATCHDOG=0\nREADY\nEXTEND_TIMEOUT_USEC=soon\n\xff=1"),
        Notice::default()
    );
}

#[test]
fn backoff_doubles_up_to_its_bound_and_resets_after_a_healthy_run() {
    let mut backoff = Backoff::default();
    let quick = Duration::from_secs(1);
    let pauses: Vec<Duration> = (0..9).map(|_| backoff.after(quick)).collect();
    assert_eq!(pauses[0], RESTART_FIRST);
    assert_eq!(pauses[1], RESTART_FIRST * 2);
    assert!(pauses.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(*pauses.last().unwrap_or(&Duration::ZERO), RESTART_MAX);
    assert_eq!(backoff.after(HEALTHY_RUN), RESTART_FIRST);
    assert_eq!(backoff.after(quick), RESTART_FIRST * 2);
}

fn run_args(line: &str) -> RunArgs {
    let args =
        std::iter::once("elector".to_string()).chain(line.split_whitespace().map(str::to_string));
    match cli::parse(args) {
        Parsed::Run(parsed) => parsed.run,
        _ => panic!("{line} should parse"),
    }
}

#[test]
fn the_watchdog_fits_the_restart_bound() {
    // The systemd unit's defaults: restart bound 3 s, node timeout 300 ms: the unit's 1 s.
    assert_eq!(
        watchdog_for(None, &run_args("")),
        Ok(Duration::from_secs(1))
    );
    // The examples' 2 s: 2 - 0.5 - 0.1 - 0.3 = 1.1 s, of which the usual 1 s.
    assert_eq!(
        watchdog_for(None, &run_args("--restart-bound 2s")),
        Ok(Duration::from_secs(1))
    );
    // 1.5 s: 1.5 - 0.5 - 0.1 - 0.3 = 0.6 s.
    assert_eq!(
        watchdog_for(None, &run_args("--restart-bound 1500ms")),
        Ok(Duration::from_millis(600))
    );
    // Too short for any watchdog: one line naming the bound to use.
    let e = watchdog_for(None, &run_args("--restart-bound 1s")).unwrap_err();
    assert!(e.contains("at least 1.2s"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    // An explicit watchdog is checked with the elector's own inequality.
    let e = watchdog_for(Some(Duration::from_millis(2500)), &run_args("")).unwrap_err();
    assert!(e.contains("watchdog_within_restart_bound"), "{e}");
    assert_eq!(
        watchdog_for(Some(Duration::from_millis(500)), &run_args("")),
        Ok(Duration::from_millis(500))
    );
}

#[test]
fn force_standby_gets_the_elector_flags() {
    let run = run_args(
        "--iotex-admin http://127.0.0.1:9019 --node-timeout 150ms --value b --state-dir /s \
         --fence-cmd true --key /k --etcd 127.0.0.1:1",
    );
    let args = force_standby_args(&run, Duration::from_secs(7));
    assert_eq!(args.node.iotex_admin, "http://127.0.0.1:9019");
    assert_eq!(args.node_timeout.node_timeout, Duration::from_millis(150));
    assert_eq!(args.value(), "b");
    assert_eq!(args.state_dir.as_deref(), Some(std::path::Path::new("/s")));
    assert_eq!(args.fence.fence_cmd.as_deref(), Some("true"));
    assert_eq!(args.etcd.key(), "/k");
    assert_eq!(args.etcd.endpoints.etcd, vec!["http://127.0.0.1:1"]);
    assert_eq!(args.timeout, Duration::from_secs(7));
}

#[test]
fn the_help_states_the_numbers_used_here() {
    let help = match cli::parse(["elector", "supervise", "--help"].map(str::to_string)) {
        Parsed::Info(text) => text,
        _ => panic!("supervise --help"),
    };
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let s = |d: Duration| format!("{} s", d.as_secs_f64());
    for needle in [
        format!("doubles from {} to {}", s(RESTART_FIRST), s(RESTART_MAX)),
        "after a run of a minute".to_string(),
        format!("waits {}", s(STOP_WAIT)),
        format!("{} (loop stall)", s(systemd::LOOP_STALL)),
    ] {
        assert!(help.contains(&needle), "--help lacks {needle:?}");
    }
    assert_eq!(HEALTHY_RUN, Duration::from_secs(60));
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn datagrams_name_their_sender() {
    let (socket, name) = bind_notify_socket().expect("a notify socket");
    let sender = std::os::unix::net::UnixDatagram::unbound().expect("a socket");
    use std::os::linux::net::SocketAddrExt as _;
    let addr =
        std::os::unix::net::SocketAddr::from_abstract_name(name.trim_start_matches('@').as_bytes())
            .expect("an address");
    sender.send_to_addr(b"WATCHDOG=1", &addr).expect("sending");
    let mut buffer = [0u8; 64];
    let (n, pid) = socket
        .async_io(Interest::READABLE, || {
            recv_from_process(&socket, &mut buffer)
        })
        .await
        .expect("receiving");
    assert_eq!(&buffer[..n], b"WATCHDOG=1");
    assert_eq!(pid, Some(std::process::id()));
}

#[test]
fn exit_statuses_read_well() {
    assert_eq!(describe(ExitStatus::from_raw(1 << 8)), "exit status 1");
    assert_eq!(
        describe(ExitStatus::from_raw(libc::SIGKILL)),
        "killed by signal 9 (SIGKILL)"
    );
}

//! The command line as operators write it: Go spellings, defaults, one-line errors.

use super::*;
use elector_core::Timing;
use std::time::Duration;

fn args(line: &str) -> Vec<String> {
    std::iter::once("elector".to_string())
        .chain(line.split_whitespace().map(str::to_string))
        .collect()
}

fn run(line: &str) -> RunArgs {
    match parse(args(line)) {
        Parsed::Run(cli) => cli.run,
        Parsed::Info(_) => panic!("info for {line}"),
        Parsed::Error(e) => panic!("error for {line}: {e}"),
    }
}

fn error(line: &str) -> String {
    match parse(args(line)) {
        Parsed::Error(e) => e,
        _ => panic!("{line} should fail"),
    }
}

#[test]
fn go_flags_work() {
    let a = run(
        "-etcd=http://10.0.0.1:2379 -iotexAdmin=http://127.0.0.1:9019 -iotexProbe http://127.0.0.1:8089 -key=/k -value=a",
    );
    assert_eq!(a.endpoints(), vec!["http://10.0.0.1:2379"]);
    assert_eq!(a.node.iotex_admin, "http://127.0.0.1:9019");
    assert_eq!(a.iotex_probe, "http://127.0.0.1:8089");
    assert_eq!(a.key(), "/k");
    assert_eq!(a.value(), "a");
}

#[test]
fn conventional_flags_and_lists() {
    let a = run(
        "--etcd http://a:2379,http://b:2379 --ttl 7s --keepalive-interval 300ms --etcd-timeout 300ms --safety-margin 600ms --node-timeout 150ms --confirm-poll-interval 100ms --restart-bound 2s",
    );
    assert_eq!(a.endpoints().len(), 2);
    let t = a.timing().unwrap();
    assert_eq!(t.lease_ttl, Duration::from_secs(7));
    assert_eq!(t.activation_delay, t.minimum_activation_delay());
    assert_eq!(t.drain_bound, t.consensus_tail());
}

#[test]
fn defaults_match_the_go_elector() {
    let a = run("");
    assert_eq!(a.endpoints(), vec!["http://127.0.0.1:2379"]);
    assert_eq!(a.node.iotex_admin, "http://127.0.0.1:9009");
    assert_eq!(a.iotex_probe, "http://127.0.0.1:8080");
    assert_eq!(a.key(), "/iotex-server");
    assert!(!a.value().is_empty());
    assert_eq!(a.timing().unwrap(), Timing::default());
}

#[test]
fn bad_input_is_one_line() {
    for (line, needle) in [
        ("--ttl ten", "not a duration"),
        ("--bogus", "--bogus"),
        ("--iotex-admin 127.0.0.1:9009", "is not an http:// URL"),
        ("--ttl 9s", "renewal_window"),
        ("--drain-bound 5s", "drain_covers_consensus_tail"),
        // The drain follows the slot (10.1 s): the 10 s lease is too short for it.
        ("--block-interval 5s", "renewal_window"),
        (
            "--safety-margin 100ms",
            "margin_covers_standby_confirmation",
        ),
        (
            "--activation-delay 1s",
            "activation_delay_covers_dead_leader",
        ),
        (
            "--activation-delay 11s",
            "activation_delay_covers_early_revocation",
        ),
        ("--status-addr nowhere", "not an address"),
        ("--key /a/", "must be non-empty"),
        ("--etcd-cert /tmp/c", "--etcd-key"),
    ] {
        let e = error(line);
        assert!(e.contains(needle), "{line}: {e}");
        assert!(!e.contains('\n'), "{line}: multi-line error {e:?}");
    }
}

fn operation(line: &str) -> Operation {
    match parse(args(line)) {
        Parsed::Run(cli) => cli
            .command
            .unwrap_or_else(|| panic!("no command in {line}")),
        Parsed::Info(_) => panic!("info for {line}"),
        Parsed::Error(e) => panic!("error for {line}: {e}"),
    }
}

#[test]
fn bare_flags_still_run_the_elector() {
    match parse(args("--value a --ttl 10s")) {
        Parsed::Run(cli) => assert!(cli.command.is_none()),
        _ => panic!("bare flags must run the elector"),
    }
}

#[test]
fn operator_commands_take_the_connection_flags() {
    match operation("status --json -etcd=http://10.0.0.1:2379 -key=/k") {
        Operation::Status(a) => {
            assert!(a.json);
            assert_eq!(a.etcd.endpoints(), vec!["http://10.0.0.1:2379"]);
            assert_eq!(a.etcd.key(), "/k");
        }
        other => panic!("{other:?}"),
    }
    match operation("handover --to b --timeout 5s --etcd http://a:1,http://b:2") {
        Operation::Handover(a) => {
            assert_eq!(a.to.as_deref(), Some("b"));
            assert_eq!(a.timeout, Duration::from_secs(5));
            assert_eq!(a.etcd.endpoints().len(), 2);
        }
        other => panic!("{other:?}"),
    }
    match operation("handover") {
        Operation::Handover(a) => {
            assert_eq!(a.to, None);
            assert_eq!(a.timeout, Duration::from_secs(60));
        }
        other => panic!("{other:?}"),
    }
    match operation("exclude replica-b --reason upgrade --no-wait --etcd http://a:1") {
        Operation::Exclude(a) => {
            assert_eq!(a.value, "replica-b");
            assert_eq!(a.reason, "upgrade");
            assert!(a.no_wait);
            assert_eq!(a.timeout, Duration::from_secs(60));
            assert_eq!(a.etcd.endpoints(), vec!["http://a:1"]);
        }
        other => panic!("{other:?}"),
    }
    match operation("include replica-b -key=/k") {
        Operation::Include(a) => {
            assert_eq!(a.value, "replica-b");
            assert_eq!(a.etcd.key(), "/k");
        }
        other => panic!("{other:?}"),
    }
    match operation("force-standby -iotexAdmin=http://127.0.0.1:9019") {
        Operation::ForceStandby(a) => {
            assert_eq!(a.node.iotex_admin, "http://127.0.0.1:9019");
            assert_eq!(a.node_timeout.node_timeout, Duration::from_millis(300));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn operator_command_errors_are_one_line() {
    for (line, needle) in [
        ("status --bogus", "--bogus"),
        ("status --key /a/", "must be non-empty"),
        ("handover --to", "--to"),
        ("handover --timeout 0s", "greater than 0"),
        (
            "force-standby --iotex-admin 127.0.0.1:9009",
            "not an http:// URL",
        ),
        ("--etcd http://x:1 status", "status"),
        ("exclude", "VALUE"),
        ("exclude a --timeout 0s", "greater than 0"),
        ("exclude a --reason", "--reason"),
        ("include", "VALUE"),
        ("frobnicate", "frobnicate"),
    ] {
        let e = error(line);
        assert!(e.contains(needle), "{line}: {e}");
        assert!(!e.contains('\n'), "{line}: multi-line error {e:?}");
    }
}

/// Every operator command, as typed after `elector`.
const OPERATOR_COMMANDS: [&str; 7] = [
    "check",
    "status",
    "handover",
    "exclude",
    "include",
    "force-standby",
    "supervise",
];

#[test]
fn every_operator_command_has_help() {
    for command in OPERATOR_COMMANDS {
        match parse(args(&format!("{command} --help"))) {
            Parsed::Info(text) => {
                assert!(text.contains("Exit codes"), "{command}: {text}")
            }
            _ => panic!("{command} --help"),
        }
    }
    match parse(args("--help")) {
        Parsed::Info(text) => {
            for command in OPERATOR_COMMANDS.iter().chain(&["--ttl"]) {
                assert!(text.contains(command), "--help lacks {command}: {text}");
            }
        }
        _ => panic!("--help"),
    }
}

#[test]
fn normalization_leaves_values_and_unknown_flags_alone() {
    let out = normalize_args(args("-etcd=x -keyX=1 --key -value -value")).unwrap();
    assert_eq!(
        out,
        vec![
            "elector", "--etcd=x", "-keyX=1", "--key", "-value", "--value"
        ]
    );
    let out = normalize_args(args("-h -V -- -key")).unwrap();
    assert_eq!(out, vec!["elector", "-h", "-V", "--", "-key"]);
}

#[test]
fn every_go_spelling_works() {
    for line in [
        "-iotexAdmin=http://127.0.0.1:9019 -iotexProbe=http://127.0.0.1:8089",
        "--iotexAdmin=http://127.0.0.1:9019 --iotexProbe=http://127.0.0.1:8089",
        "-iotexAdmin http://127.0.0.1:9019 --iotexProbe http://127.0.0.1:8089",
        "--iotex-admin http://127.0.0.1:9019 -iotex-probe=http://127.0.0.1:8089",
        "elector -iotexAdmin=http://127.0.0.1:9019 -iotexProbe=http://127.0.0.1:8089",
        "/usr/local/bin/elector --iotexAdmin=http://127.0.0.1:9019 -iotexProbe=http://127.0.0.1:8089",
    ] {
        let a = run(line);
        assert_eq!(a.node.iotex_admin, "http://127.0.0.1:9019", "{line}");
        assert_eq!(a.iotex_probe, "http://127.0.0.1:8089", "{line}");
    }
    // Every long flag takes one dash, as Go's flag package allows.
    let a = run("-ttl=12s -keepalive-interval 500ms -value=b");
    assert_eq!(a.ttl, Duration::from_secs(12));
    assert_eq!(a.keepalive_interval, Duration::from_millis(500));
    assert_eq!(a.value(), "b");
    // A leading `elector` before an operator command, too.
    assert!(matches!(
        operation("elector status -etcd=127.0.0.1:2379"),
        Operation::Status(_)
    ));
}

#[test]
fn etcd_endpoints_without_a_scheme_mean_http() {
    let a = run("-etcd=127.0.0.1:2379");
    assert_eq!(a.endpoints(), vec!["http://127.0.0.1:2379"]);
    let a = run("--etcd etcd-0.etcd:2379,etcd-1.etcd:2379,[::1]:2379");
    assert_eq!(
        a.endpoints(),
        vec![
            "http://etcd-0.etcd:2379",
            "http://etcd-1.etcd:2379",
            "http://[::1]:2379"
        ]
    );
    let a = run("--etcd https://10.0.0.1:2379/ --etcd-ca /ca.pem");
    assert_eq!(a.endpoints(), vec!["https://10.0.0.1:2379"]);
    match operation("status --etcd localhost:2379") {
        Operation::Status(s) => assert_eq!(s.etcd.endpoints(), vec!["http://localhost:2379"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_urls_name_the_flag() {
    for (line, needle) in [
        ("--etcd http://", "--etcd: \"http://\" is not a valid URL"),
        ("--etcd http://:2379", "--etcd: \"http://:2379\""),
        ("--etcd ftp://a:2379", "unknown scheme \"ftp\""),
        ("--etcd unix:///run/etcd.sock", "Unix socket"),
        ("--etcd http://a:2379/v3", "has a path"),
        ("--etcd http://a:2379?x=1", "has a path"),
        ("--etcd http://etcd", "has no port"),
        ("--etcd 10.0.0.1", "has no port"),
        ("--etcd http://u:p@a:2379", "credentials"),
        (
            "--etcd http://a:1,https://b:2",
            "mixes http:// and https://",
        ),
        ("--etcd=", "empty endpoint"),
        (
            "--iotex-admin http://",
            "--iotex-admin: \"http://\" is not a valid URL",
        ),
        (
            "--iotex-admin 127.0.0.1:9009",
            "write http://127.0.0.1:9009",
        ),
        ("--iotex-admin ftp://a:1", "unknown scheme"),
        (
            "--iotex-admin http://127.0.0.1:9009/ha",
            "the elector appends /ha",
        ),
        ("--iotex-admin http://127.0.0.1:9009/?x", "query"),
        (
            "--iotex-probe http://127.0.0.1:8080/readiness",
            "appends /readiness: http://127.0.0.1:8080",
        ),
        (
            "--iotex-probe http://127.0.0.1:8080/health/",
            "ends with /health",
        ),
        ("force-standby --iotex-admin http://", "--iotex-admin"),
        ("handover --etcd http://a", "has no port"),
    ] {
        let e = error(line);
        assert!(e.contains(needle), "{line}: {e}");
        assert!(!e.contains('\n'), "{line}: multi-line error {e:?}");
    }
    // A path prefix before the endpoint is fine (a proxy).
    let a = run("--iotex-admin http://127.0.0.1:9009/node-a/");
    assert_eq!(a.node.iotex_admin, "http://127.0.0.1:9009/node-a/");
}

#[test]
fn the_readme_typo_is_refused_with_the_fix() {
    for line in [
        "-etcd=http://a:2379 -iotexAdmin=http://b:9009 iotexProbe=http://c:8080 -key=/k -value=v",
        "status iotexProbe=http://c:8080",
        "key=/k",
    ] {
        let e = error(line);
        assert!(e.contains("is not a flag (no leading dash)"), "{line}: {e}");
        assert!(!e.contains('\n'), "{e}");
    }
    let e = error("-etcd=http://a:2379 iotexProbe=http://c:8080 -key=/k");
    assert!(
        e.contains("write -iotexProbe=http://c:8080 or --iotex-probe=http://c:8080"),
        "{e}"
    );
    assert!(e.contains("-key and -value"), "{e}");
    // Anything else that is not a flag is clap's to refuse.
    assert!(error("stray").contains("stray"));
}

#[test]
fn check_takes_the_running_elector_flags() {
    match operation(
        "check -etcd=127.0.0.1:2379 --iotexAdmin=http://127.0.0.1:9019 --ttl 7s \
         --keepalive-interval 300ms --etcd-timeout 300ms \
         --safety-margin 600ms --node-timeout 150ms --confirm-poll-interval 100ms \
         --restart-bound 2s --node-lost-after 5s --status-addr off --log-format json",
    ) {
        Operation::Check(a) => {
            assert_eq!(a.run.endpoints(), vec!["http://127.0.0.1:2379"]);
            assert_eq!(a.run.node.iotex_admin, "http://127.0.0.1:9019");
            assert_eq!(a.run.timing().unwrap(), Timing::fast_profile());
            assert_eq!(a.run.etcd_args().endpoints(), a.run.endpoints());
        }
        other => panic!("{other:?}"),
    }
    // The elector's start-up checks apply.
    assert!(error("check --ttl 9s").contains("renewal_window"));
    assert!(error("check --iotex-probe http://").contains("--iotex-probe"));
}

#[test]
fn the_chain_flags_move_the_drain_and_the_delays() {
    // Before the Wake upgrade: 5 s slots. The drain follows (2 x 5 s + 100 ms); a 10 s lease
    // cannot hold it, nor a 14 s one; a 17 s one can.
    let e = error("--block-interval 5s --ttl 14s");
    assert!(e.contains("renewal_window"), "{e}");
    let t = run("--block-interval 5s --ttl 17s").timing().unwrap();
    assert_eq!(t.drain_bound, Duration::from_millis(10_100));
    assert_eq!(t.block_interval, Duration::from_secs(5));
    assert!(t.handover_delay() > Timing::default().handover_delay());
    let t = run("--tolerated-overtime 1s --unmatched-event-interval 50ms --max-clock-offset 10ms")
        .timing()
        .unwrap();
    assert_eq!(t.tolerated_overtime, Duration::from_secs(1));
    assert_eq!(t.drain_bound, Duration::from_millis(5050));
    assert_eq!(t.max_clock_offset, Duration::from_millis(10));
}

#[test]
fn key_custody_takes_all_three_files_or_none() {
    assert!(run("").custody.load().unwrap().is_none());
    let e = error("--producer-key-file /nonexistent/key");
    assert!(e.contains("all three"), "{e}");
    let e = error(
        "--producer-key-file /nonexistent/a --placeholder-key-file /nonexistent/b \
         --admin-token-file /nonexistent/c",
    );
    assert!(e.contains("--producer-key-file /nonexistent/a"), "{e}");
    assert!(!e.contains('\n'), "{e:?}");
}

#[test]
fn a_long_ttl_is_allowed_with_a_warning() {
    let a = run("--ttl 1h");
    assert!(a.timing().is_ok());
    let warnings = a.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("--ttl 1h is above 1m"), "{warnings:?}");
    assert!(run("--ttl 60s").warnings().is_empty());
}

#[test]
fn the_registry_refresh_defaults_to_the_registry_constant_and_refuses_sub_second() {
    assert_eq!(run("").registry_refresh, crate::registry::DEFAULT_REFRESH);
    assert_eq!(
        super::flags::REGISTRY_REFRESH_MIN,
        crate::registry::MIN_WRITE_GAP
    );
    assert_eq!(
        run("--registry-refresh 5s").registry_refresh,
        Duration::from_secs(5)
    );
    let refused = error("--registry-refresh 200ms");
    assert!(refused.contains("--registry-refresh"), "{refused}");
}

#[test]
fn the_log_format_of_a_line_that_does_not_parse_is_found_anyway() {
    for line in [
        "--log-format json --ttl=nonsense",
        "-log-format=json --no-such-flag",
        "--ttl 1s --log-format=JSON",
        "supervise -- --log-format json --ttl x",
    ] {
        assert_eq!(
            requested_log_format(&args(line), None),
            LogFormat::Json,
            "{line}"
        );
    }
    assert_eq!(
        requested_log_format(&args("--ttl=x"), Some("json")),
        LogFormat::Json
    );
    // The command line wins over the variable, as clap takes them.
    assert_eq!(
        requested_log_format(&args("--log-format human"), Some("json")),
        LogFormat::Human
    );
    assert_eq!(
        requested_log_format(&args("--log-format"), None),
        LogFormat::Human
    );
    assert_eq!(
        requested_log_format(&args("--value log-format=json"), None),
        LogFormat::Human
    );
}

#[test]
fn the_fast_profile_is_one_flag_and_a_flag_given_wins() {
    let fast = run("--profile fast");
    assert_eq!(fast.timing().unwrap(), Timing::fast_profile());
    assert!(fast.profile_overrides().is_empty());
    assert_eq!(
        run("--profile default").timing().unwrap(),
        Timing::default()
    );
    let mixed = run("--profile fast --ttl 8s -node-lost-after=6s");
    let t = mixed.timing().unwrap();
    assert_eq!(t.lease_ttl, Duration::from_secs(8));
    assert_eq!(t.node_lost_after, Duration::from_secs(6));
    assert_eq!(
        t.keepalive_interval,
        Timing::fast_profile().keepalive_interval
    );
    assert_eq!(mixed.profile_overrides(), ["--ttl", "--node-lost-after"]);
    // `elector check` and `force-standby` take it too.
    match operation("check --profile fast") {
        Operation::Check(a) => assert_eq!(a.run.timing().unwrap(), Timing::fast_profile()),
        other => panic!("{other:?}"),
    }
    match operation("force-standby --profile fast") {
        Operation::ForceStandby(a) => {
            assert_eq!(a.node_timeout.node_timeout, Duration::from_millis(150));
            assert_eq!(
                a.confirm_poll.confirm_poll_interval,
                Duration::from_millis(100)
            );
        }
        other => panic!("{other:?}"),
    }
    match operation("force-standby --profile fast --node-timeout 200ms") {
        Operation::ForceStandby(a) => {
            assert_eq!(a.node_timeout.node_timeout, Duration::from_millis(200))
        }
        other => panic!("{other:?}"),
    }
}

/// `--profile`'s help says exactly what the fast profile changes.
#[test]
fn the_profile_help_lists_the_fast_profile() {
    let default = timing_values(&Timing::default());
    let fast = timing_values(&Timing::fast_profile());
    let mut changed = 0;
    for ((field, d), (_, f)) in default.iter().zip(&fast) {
        // The activation delay follows from the others.
        if d == f || *field == "activation_delay" {
            continue;
        }
        changed += 1;
        let flag = flag_of_field(field).expect("a flag");
        let said = format!("{flag} {f}");
        assert!(
            crate::cli::flags::PROFILE_HELP.contains(&said),
            "the help lacks {said:?}"
        );
    }
    assert_eq!(
        crate::cli::flags::PROFILE_HELP.matches(" --").count() + 1,
        changed + 1,
        "the help names a flag the profile does not change"
    );
}

/// A migration from the Go elector needs one run: every mistake of the line is reported at
/// once, each with its fix.
#[test]
fn every_go_spelling_mistake_is_reported_at_once() {
    let e = error(
        "-etcd=127.0.0.1:2379 -iotexAdmin=http://localhost:9009/ha \
         -iotexProbe=http://localhost:8080/health -key=iotex-server -value=a",
    );
    assert!(e.starts_with("3 problems: (1) --iotex-admin: "), "{e}");
    assert!(e.contains("appends /ha: http://localhost:9009"), "{e}");
    assert!(e.contains("(2) --iotex-probe: "), "{e}");
    assert!(
        e.contains("appends /readiness: http://localhost:8080"),
        "{e}"
    );
    assert!(
        e.contains("(3) --key: \"iotex-server\" does not start with '/'"),
        "{e}"
    );
    assert!(e.contains("Write --key /iotex-server"), "{e}");
    assert!(!e.contains('\n'), "{e:?}");

    // The Go compose form: a bare iotex=, and a URL problem after it, in one run.
    let e = error("elector -etcd=http://etcd iotex=http://127.0.0.1:9009 -key=/iotex-server");
    assert!(
        e.starts_with("2 problems: (1) \"iotex=http://127.0.0.1:9009\""),
        "{e}"
    );
    assert!(e.contains("write -iotexAdmin=http://127.0.0.1:9009"), "{e}");
    assert!(e.contains("-key and -value"), "{e}");
    assert!(e.contains("(2) --etcd: \"http://etcd\" has no port"), "{e}");

    // The first Go elector's -iotex, with or without `=`.
    for line in [
        "-iotex=http://127.0.0.1:9009",
        "-iotex http://127.0.0.1:9009",
    ] {
        let e = error(line);
        assert!(e.contains("first Go elector's flag"), "{line}: {e}");
        assert!(
            e.contains("write -iotexAdmin=http://127.0.0.1:9009"),
            "{line}: {e}"
        );
    }
    let e = error("-iotex -key=/k");
    assert!(e.contains("write -iotexAdmin=URL"), "{e}");
    // A key is taken as written when it has its slash.
    assert_eq!(run("-key=/iotex-server").key(), "/iotex-server");
    let e = error("status --key iotex-server");
    assert!(e.contains("does not start with '/'"), "{e}");
}

/// An unsafe timing names the flags in the inequality with their real values, and a value of
/// one flag that works: giving it makes the line pass.
#[test]
fn timing_errors_name_the_flag_and_a_value_that_works() {
    let e = error("-ttl=3s");
    assert!(e.contains("renewal_window"), "{e}");
    assert!(e.contains("--ttl 3.000s"), "{e}");
    // The real difference, not one clamped at zero.
    assert!(e.contains("= -3.630s must exceed"), "{e}");
    for line in [
        "-ttl=3s",
        "--ttl 9s",
        "--profile fast --ttl 5s",
        "--block-interval 5s",
        "--safety-margin 100ms",
        "--activation-delay 1s",
        "--drain-bound 5s",
        "--node-lost-after 1s",
        "--node-timeout 900ms",
    ] {
        let e = error(line);
        let advice = e
            .split("; set ")
            .nth(1)
            .unwrap_or_else(|| panic!("{line}: no advice in {e}"));
        let mut words = advice.split(' ');
        let flag = words.next().expect("a flag");
        // humantime writes 13s 700ms: take the value up to the parenthesis.
        let value: String = words
            .take_while(|w| !w.starts_with('('))
            .collect::<Vec<_>>()
            .join("");
        // The line with that flag's value replaced (or the flag added).
        let name = flag.trim_start_matches('-');
        let mut kept: Vec<&str> = Vec::new();
        let mut words = line.split_whitespace();
        while let Some(word) = words.next() {
            let bare = word.trim_start_matches('-');
            if bare == name {
                words.next();
            } else if !bare.starts_with(&format!("{name}=")) {
                kept.push(word);
            }
        }
        let mended = format!("{} {flag} {value}", kept.join(" "));
        assert!(
            matches!(parse(args(&mended)), Parsed::Run(_)),
            "{line}: the advice {flag} {value} does not pass: {e}"
        );
    }
}

/// A profile sets every timing flag but the two derived ones, so the profile's flags and the
/// timing's fields name the same flags.
#[test]
fn the_profile_flags_are_the_timing_flags_but_the_derived_ones() {
    let mut from_fields: Vec<&str> = TIMING_FIELDS
        .iter()
        .map(|(_, flag)| *flag)
        .filter(|flag| !["--drain-bound", "--activation-delay"].contains(flag))
        .collect();
    let mut from_profile: Vec<&str> = PROFILE_FLAGS.iter().map(|(_, flag)| *flag).collect();
    from_fields.sort_unstable();
    from_profile.sort_unstable();
    assert_eq!(from_profile, from_fields);
}

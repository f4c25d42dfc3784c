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
        "--etcd http://a:2379,http://b:2379 --ttl 3s --keepalive-interval 300ms --etcd-timeout 300ms --drain-bound 700ms --safety-margin 500ms --node-timeout 150ms --confirm-poll-interval 100ms --restart-bound 2s",
    );
    assert_eq!(a.endpoints().len(), 2);
    let t = a.timing().unwrap();
    assert_eq!(t.lease_ttl, Duration::from_secs(3));
    assert_eq!(t.activation_delay, t.minimum_activation_delay());
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
        (
            "--safety-margin 100ms",
            "margin_covers_standby_confirmation",
        ),
        (
            "--activation-delay 1s",
            "activation_delay_covers_dead_leader",
        ),
        (
            "--activation-delay 8.5s",
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
        "check -etcd=127.0.0.1:2379 --iotexAdmin=http://127.0.0.1:9019 --ttl 3s \
         --keepalive-interval 300ms --etcd-timeout 300ms --drain-bound 700ms \
         --safety-margin 500ms --node-timeout 150ms --confirm-poll-interval 100ms \
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
        run("--registry-refresh 5s").registry_refresh,
        Duration::from_secs(5)
    );
    let refused = error("--registry-refresh 200ms");
    assert!(refused.contains("--registry-refresh"), "{refused}");
}

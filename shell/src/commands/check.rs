//! `elector check`: the running elector's flags, checked; the timings derived from them; and
//! what etcd and the node say, read without changing anything.
//!
//! Read-only by construction: etcd is read through [`status::read_report`] (a read-only
//! transaction and lease TTL queries) and a status call; the node through `GET /ha` without
//! parameters and `GET /readiness`. Every call is bounded by its timeout flag.
//!
//! Each finding is one line: `ok`, `warn` (allowed, but worth knowing) or `FAIL`. The exit
//! code is 0 without a `FAIL`, else [`EXIT_FAILED`]; bad flags never get here (exit 2 in
//! `main`).

use crate::commands::status::{self, StatusReport};
use crate::commands::watcher::Protection;
use crate::commands::{EXIT_FAILED, Outcome, connect, supervise};
use crate::systemd;
use elector::cli::{CheckArgs, RunArgs};
use elector::etcd::lease_revocation_bug;
use elector::node::{HttpGet, NodeClient, NodeTimeouts, ReqwestTransport};
use elector::node_config::{self, NodeConfig};
use elector::registry::TimingRecord;
use elector::state::{self, StateFile};
use elector::{out, outln};
use elector_core::NodeKeys;
use elector_core::Timing;
use std::time::Duration;
use tokio::time::Instant;

/// etcd's lease expiry sweep: a lease is revoked up to this long after its TTL ran out.
const ETCD_EXPIRY_SWEEP: Duration = Duration::from_millis(500);

/// The verdict of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

/// What the checks found, in order.
#[derive(Default)]
pub struct Findings {
    lines: Vec<(Verdict, String)>,
}

impl Findings {
    fn add(&mut self, verdict: Verdict, line: impl Into<String>) {
        let line = line.into();
        let mark = match verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
        };
        outln!("  {mark}  {line}");
        self.lines.push((verdict, line));
    }
    fn failures(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|(v, _)| *v == Verdict::Fail)
            .map(|(_, l)| l.as_str())
            .collect()
    }
    fn warnings(&self) -> usize {
        self.lines
            .iter()
            .filter(|(v, _)| *v == Verdict::Warn)
            .count()
    }
}

/// Runs `elector check`: exit 0 without a `FAIL`.
pub async fn run(args: Box<CheckArgs>) -> Outcome {
    let run = &args.run;
    // Checked at parse time already.
    let timing = run.timing()?;
    let value = run.value();
    outln!(
        "elector check {}: election {} as {value:?} (read-only)",
        env!("CARGO_PKG_VERSION"),
        run.key()
    );
    outln!();
    outln!(
        "timing profile: {}{}",
        run.profile.as_str(),
        match run.profile_overrides().as_slice() {
            [] => String::new(),
            flags => format!(", overridden by {}", flags.join(", ")),
        }
    );
    out!("{}", render_timing(&timing));
    let mut findings = Findings::default();
    for warning in run.warnings() {
        findings.add(Verdict::Warn, warning);
    }
    outln!();
    outln!("process (what commands the node standby if the elector dies or hangs)");
    check_process(run, &mut findings);
    outln!();
    outln!("etcd {}", run.endpoints().join(","));
    let report = check_etcd(run, &value, &mut findings).await;
    let leader = report.as_ref().and_then(|r| r.leader.clone());
    outln!();
    outln!("node");
    check_node(run, &value, leader.as_ref(), &mut findings).await;
    if let Some(path) = &run.node_config {
        outln!();
        outln!("node configuration {}", path.display());
        check_node_config(run, &value, report.as_ref(), &mut findings);
    }
    outln!();
    let failures = findings.failures();
    if failures.is_empty() {
        let warnings = match findings.warnings() {
            0 => String::new(),
            n => format!(" ({n} warning{})", if n == 1 { "" } else { "s" }),
        };
        outln!("result: everything reachable and sane{warnings}; exit 0");
        Ok(0)
    } else {
        outln!(
            "result: {} check{} failed; exit 1",
            failures.len(),
            if failures.len() == 1 { "" } else { "s" }
        );
        Ok(EXIT_FAILED)
    }
}

/// How the elector's own death or hang is covered, started as these flags and this
/// environment say, and what systemd's unit must keep to; the state directory and its owner.
fn check_process(run: &RunArgs, findings: &mut Findings) {
    let timing_room = |d: Duration| secs(d);
    match Protection::of(run) {
        Protection::Watcher => match supervise::watchdog_for(None, run) {
            Ok(watchdog) => {
                let (line, _) = Protection::Watcher.describe(Some(watchdog));
                findings.add(Verdict::Ok, format!("started bare: {line}"));
            }
            Err(line) => findings.add(
                Verdict::Fail,
                format!("started bare, the elector would refuse to start (exit 2): {line}"),
            ),
        },
        other => {
            let (line, warn) = other.describe(systemd::watchdog_from_env().ok().flatten());
            findings.add(if warn { Verdict::Warn } else { Verdict::Ok }, line);
        }
    }
    let nt = run.node_timeout.node_timeout;
    let room = run
        .restart_bound
        .saturating_sub(systemd::LOOP_STALL + systemd::STOP_POST_START + nt);
    let shipped = Duration::from_secs(1);
    let unit_fits =
        systemd::check_stop_within_restart_bound(shipped, shipped, nt, run.restart_bound).is_ok();
    findings.add(
        if unit_fits { Verdict::Ok } else { Verdict::Warn },
        format!(
            "under systemd: WatchdogSec= + TimeoutStopSec= at most {} for --restart-bound {} \
             (watchdog_within_restart_bound, stop_within_restart_bound); the shipped unit's 1s \
             + 1s {}",
            timing_room(room),
            secs(run.restart_bound),
            if unit_fits {
                "fit"
            } else {
                "do NOT fit: shorten them in a drop-in (see deploy/systemd/elector-fast-profile.conf)"
            }
        ),
    );
    let value = run.value();
    match state::state_dir(run.state_dir.as_deref()) {
        None => findings.add(
            Verdict::Warn,
            "no state directory (no --state-dir, no $STATE_DIRECTORY, no home directory): after \
             a crash the elector's term expires with its lease instead of ending at once",
        ),
        Some(dir) => {
            let state = StateFile::new(&dir, run.key(), &value);
            let owner = match state.holder() {
                Some(owner) => format!("locked by {owner}"),
                None => "not locked: no elector of this value runs here".to_string(),
            };
            findings.add(
                Verdict::Ok,
                format!(
                    "state directory {}{}: {owner}",
                    dir.display(),
                    if run.state_dir.is_some() {
                        ""
                    } else {
                        " (default)"
                    }
                ),
            );
        }
    }
}

/// A duration as seconds: `8.8s`, `10s`, `0.15s`.
fn secs(d: Duration) -> String {
    let text = format!("{:.3}", d.as_secs_f64());
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}s")
}

/// The timings derived from the flags, as a block of text.
pub fn render_timing(t: &Timing) -> String {
    let crash = t.lease_ttl + ETCD_EXPIRY_SWEEP + t.activation_delay;
    let rows: [(&str, String, String); 10] = [
        (
            "lease TTL",
            secs(t.lease_ttl),
            "--ttl; a crashed leader's key stays this long".into(),
        ),
        (
            "drain bound",
            secs(t.drain_bound),
            format!(
                "after activate=false reaches it, the node signs for this long at most \
                 (2 slots + an unmatched-event retry: {})",
                secs(t.consensus_tail())
            ),
        ),
        (
            "step-down lead",
            secs(t.step_down_lead()),
            "the leader commands standby this long before its lease deadline (drain bound + \
             safety margin)"
                .into(),
        ),
        (
            "activation delay",
            secs(t.activation_delay),
            format!(
                "a new leader's wait unless its predecessor handed over cleanly (smallest safe: \
                 {})",
                secs(t.minimum_activation_delay())
            ),
        ),
        (
            "node lost after",
            secs(t.node_lost_after),
            "a leader whose node has not read active this long gives way".into(),
        ),
        (
            "fence retry interval",
            secs(t.fence_retry_interval()),
            "a failed fence runs again after this long".into(),
        ),
        (
            "shutdown bound",
            secs(t.shutdown_grace()),
            "longest SIGTERM to exit (node timeout + drain bound + safety margin + 2 etcd \
             timeouts); under systemd the elector asks for this time while it works \
             (EXTEND_TIMEOUT_USEC), so TimeoutStopSec= stays short"
                .into(),
        ),
        (
            "failover after a crash",
            format!("≈ {}", secs(crash)),
            format!(
                "TTL + {} (etcd's expiry sweep) + activation delay",
                secs(ETCD_EXPIRY_SWEEP)
            ),
        ),
        (
            "handover delay",
            secs(t.handover_delay()),
            "after a clean handover the next leader waits out its predecessor's last slot \
             (block interval + unmatched-event retry + tolerated overtime + clock offset)"
                .into(),
        ),
        (
            "clean handover",
            format!("≤ {}", secs(t.handover_delay() + t.block_interval)),
            "SIGTERM or `elector handover`: the node's slot in progress, then the handover \
             delay; no activation delay, no slot signed twice"
                .into(),
        ),
    ];
    let mut out = String::from("timing (derived from the flags; docs/safety.md)\n");
    let value_width = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    for (name, value, why) in rows {
        let pad = value_width - value.chars().count();
        out.push_str(&format!(
            "  {name:<22}  {value}{}  {why}\n",
            " ".repeat(pad)
        ));
    }
    out
}

/// Connects, reads the election and judges it. Returns the leader's value, if read.
async fn check_etcd(run: &RunArgs, value: &str, findings: &mut Findings) -> Option<StatusReport> {
    let args = run.etcd_args();
    let started = Instant::now();
    let connection = match connect(&args).await {
        Ok(connection) => connection,
        Err(error) => {
            findings.add(Verdict::Fail, error);
            return None;
        }
    };
    findings.add(
        Verdict::Ok,
        format!(
            "etcd {} answers (connected in {:.0} ms){}",
            connection.server_version,
            started.elapsed().as_secs_f64() * 1e3,
            match &run.security.etcd_user {
                Some(user) => format!(", authenticated as {user}"),
                None => String::new(),
            }
        ),
    );
    if let Some(why) = lease_revocation_bug(&connection.server_version) {
        findings.add(Verdict::Warn, why);
    }
    let report = match status::read_report(&connection, run.key(), true).await {
        Ok(report) => report,
        Err(error) => {
            findings.add(Verdict::Fail, error);
            return None;
        }
    };
    judge_election(&report, value, findings);
    judge_timing(run, &report, value, findings);
    Some(report)
}

/// `--node-config`: what the HA setup requires of the node's configuration, with the other
/// registered replicas' p2p identity fingerprints (from `report`) to compare with.
fn check_node_config(
    run: &RunArgs,
    value: &str,
    report: Option<&StatusReport>,
    findings: &mut Findings,
) {
    let Some(path) = &run.node_config else {
        return;
    };
    let config = match NodeConfig::read(path) {
        Ok(config) => config,
        Err(error) => {
            findings.add(Verdict::Fail, error);
            return;
        }
    };
    let custody = run.custody.load().ok().flatten();
    let others: Option<Vec<(String, String)>> = report.map(|report| {
        report
            .replicas
            .iter()
            .filter(|r| r.value != value)
            .filter_map(|r| {
                let fingerprint = r.record.as_ref()?.node_key_fingerprint.clone()?;
                Some((r.value.clone(), fingerprint))
            })
            .collect()
    });
    let expected = run.node_config_expectations(custody.as_ref(), others.as_deref());
    for (level, line) in node_config::judge(&config, &expected) {
        let verdict = match level {
            node_config::Level::Ok => Verdict::Ok,
            node_config::Level::Warn => Verdict::Warn,
            node_config::Level::Fail => Verdict::Fail,
        };
        findings.add(verdict, line);
    }
}

/// The timing of these flags against the one every other registered replica publishes:
/// every replica must run the same. A replica whose activation delay would not cover a
/// predecessor's is a failure; any other difference a warning.
pub fn judge_timing(run: &RunArgs, report: &StatusReport, value: &str, findings: &mut Findings) {
    let Ok(timing) = run.timing() else {
        return;
    };
    let ours = TimingRecord::new(run.profile.as_str(), &timing);
    let mut same = 0;
    for row in &report.replicas {
        let Some(theirs) = row.record.as_ref().and_then(|r| r.timing.as_ref()) else {
            continue;
        };
        if row.value == value {
            continue;
        }
        let differences = ours.differences(theirs);
        if differences.is_empty() {
            same += 1;
            continue;
        }
        let listed: Vec<String> = differences
            .iter()
            .map(|(flag, ours, theirs)| format!("{flag} {ours} here, {theirs} there"))
            .collect();
        let line = format!(
            "timing differs from {}'s ({}): every replica must run the same timing flags",
            row.value,
            listed.join(", ")
        );
        match ours.too_short_after(theirs) {
            Some(needed) => findings.add(
                Verdict::Fail,
                format!(
                    "{line}; UNSAFE: should {} lead and die, this replica would activate before \
                     its node may have stopped signing: give it --activation-delay {} until \
                     every replica runs one timing",
                    row.value,
                    humantime::format_duration(needed)
                ),
            ),
            None => findings.add(Verdict::Warn, line),
        }
    }
    if same > 0 {
        findings.add(
            Verdict::Ok,
            format!(
                "timing: the same as {same} other registered replica{}",
                if same == 1 { "" } else { "s" }
            ),
        );
    }
}

/// The election's findings: who leads, the candidates, identities, requests.
pub fn judge_election(report: &StatusReport, value: &str, findings: &mut Findings) {
    let table = status::render_status(report);
    let mut lines = table.lines();
    if let Some(head) = lines.next() {
        let verdict = match report.leader {
            Some(_) => Verdict::Ok,
            None => Verdict::Warn,
        };
        let mine = report
            .candidates
            .iter()
            .filter(|c| c.value == value)
            .map(|c| c.position.to_string())
            .collect::<Vec<_>>();
        let note = match mine.as_slice() {
            [] => format!("; {value:?} (this replica) is not a candidate"),
            [one] => format!("; {value:?} (this replica) is #{one}"),
            many => format!("; {value:?} (this replica) is #{}", many.join(" and #")),
        };
        findings.add(verdict, format!("{head}{note}"));
    }
    // The verdict line is `elector status`'s, with its exit codes: not this command's.
    for line in lines.filter(|l| !l.starts_with("warning: ") && !l.starts_with("state: ")) {
        outln!("          {line}");
    }
    for duplicate in &report.duplicates {
        let line = format!(
            "value {:?} is held by {} candidates (leases {}): two replicas share one identity",
            duplicate.value,
            duplicate.leases.len(),
            duplicate.leases.join(", ")
        );
        if duplicate.value == value {
            findings.add(
                Verdict::Fail,
                format!("{line}, and it is this replica's --value: give each its own"),
            );
        } else {
            findings.add(Verdict::Warn, line);
        }
    }
}

/// Reads the node's mode and readiness, and judges them against the leader.
async fn check_node(run: &RunArgs, value: &str, leader: Option<&String>, findings: &mut Findings) {
    let timing = run.timing().unwrap_or_default();
    let transport = match ReqwestTransport::new() {
        Ok(transport) => transport,
        Err(error) => {
            findings.add(Verdict::Fail, error);
            return;
        }
    };
    let node = NodeClient::new(
        transport.clone(),
        &run.node.iotex_admin,
        &run.iotex_probe,
        NodeTimeouts::of(&timing),
    );
    let admin = run.node.iotex_admin.trim_end_matches('/');
    // GET /ha without parameters only reads the mode.
    match node.read_mode().await {
        Ok(active) => {
            let mode = if active { "active" } else { "standby" };
            let leads = leader.is_some_and(|l| l == value);
            let (verdict, why) = match (active, leader) {
                (false, _) => (Verdict::Ok, String::new()),
                (true, Some(_)) if leads => (Verdict::Ok, " (this replica leads)".to_string()),
                (true, Some(leader)) => (
                    Verdict::Fail,
                    format!(
                        " but {leader} leads: two nodes may sign; if this replica's elector \
                         runs it commands standby, else run `elector force-standby`"
                    ),
                ),
                (true, None) => (
                    Verdict::Fail,
                    " but no elector of this election leads (or etcd could not be read): \
                     check that an elector runs beside it"
                        .to_string(),
                ),
            };
            findings.add(verdict, format!("{admin}/ha: {mode}{why}"));
        }
        Err(error) => findings.add(
            Verdict::Fail,
            format!(
                "{admin}/ha: {error} (is the elector in the node's network namespace, and \
                 system.httpAdminPort set?)"
            ),
        ),
    }
    let probe = format!("{}/readiness", run.iotex_probe.trim_end_matches('/'));
    match transport.get(&probe, timing.node_timeout).await {
        Ok(answer) if answer.status == 200 => {
            findings.add(Verdict::Ok, format!("{probe}: ready (HTTP 200)"))
        }
        Ok(answer) => findings.add(
            Verdict::Warn,
            format!(
                "{probe}: unready (HTTP {}): the node syncs or lags; this replica does not \
                 campaign until it is ready",
                answer.status
            ),
        ),
        Err(error) => findings.add(Verdict::Fail, format!("{probe}: {error}")),
    }
    check_key_custody(run, &node, value, leader, findings).await;
}

/// Key custody, read-only: the key files load, their addresses are printed for the operator
/// to check, and `GET /producer-keys` (with the token) says what the node holds.
async fn check_key_custody<T: HttpGet>(
    run: &RunArgs,
    node: &NodeClient<T>,
    value: &str,
    leader: Option<&String>,
    findings: &mut Findings,
) {
    let custody = match run.custody.load() {
        Ok(Some(custody)) => custody,
        Ok(None) => return,
        Err(error) => {
            findings.add(Verdict::Fail, error);
            return;
        }
    };
    findings.add(
        Verdict::Ok,
        format!(
            "key custody: operator {}, this replica's placeholder {}",
            custody.operator.address(),
            custody.placeholder.address()
        ),
    );
    let admin = run.node.iotex_admin.trim_end_matches('/');
    let leads = leader.is_some_and(|l| l == value);
    match node.clone().with_custody(custody).read_keys().await {
        Ok(NodeKeys::Placeholder) => findings.add(
            Verdict::Ok,
            format!("{admin}/producer-keys: only the placeholder (it cannot sign as the delegate)"),
        ),
        Ok(NodeKeys::Operator) if leads => findings.add(
            Verdict::Ok,
            format!("{admin}/producer-keys: the operator's key (this replica leads)"),
        ),
        Ok(NodeKeys::Operator) => findings.add(
            Verdict::Warn,
            format!(
                "{admin}/producer-keys: the operator's key although this replica does not lead: \
                 it signs if activated; the elector withdraws it when it runs (check \
                 producerPrivKey in the node's config: it must be the placeholder)"
            ),
        ),
        Err(error) => findings.add(Verdict::Fail, format!("{admin}: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::status::{CandidateReport, Duplicate};

    #[test]
    fn the_default_timings_are_printed() {
        let text = render_timing(&Timing::default());
        for needle in [
            "lease TTL               10s       --ttl",
            "drain bound             5.1s",
            "step-down lead          6.6s",
            "activation delay        13.7s",
            "node lost after         10s",
            "fence retry interval    6.6s",
            "shutdown bound          8.9s",
            "failover after a crash  ≈ 24.2s",
            "handover delay          4.747s",
            "clean handover          ≤ 7.247s  SIGTERM",
        ] {
            assert!(text.contains(needle), "{needle:?} missing:\n{text}");
        }
        let fast = render_timing(&Timing::fast_profile());
        assert!(fast.contains("≈ 18.1s"), "{fast}");
    }

    fn candidate(position: usize, value: &str, lease: &str) -> CandidateReport {
        CandidateReport {
            position,
            value: value.into(),
            key: format!("/k/{lease}"),
            lease: lease.into(),
            create_revision: position as i64,
            ttl_seconds: Some(9),
            granted_ttl_seconds: Some(10),
            leader: position == 1,
        }
    }

    #[test]
    fn another_candidate_with_our_value_fails() {
        let report = StatusReport {
            key: "/k".into(),
            revision: 9,
            leader: Some("a".into()),
            healthy: false,
            flags: vec![],
            replicas: vec![],
            candidates: vec![
                candidate(1, "a", "1a"),
                candidate(2, "b", "2b"),
                candidate(3, "b", "3c"),
            ],
            duplicates: vec![Duplicate {
                value: "b".into(),
                leases: vec!["2b".into(), "3c".into()],
            }],
            handover_request: None,
            last_handover: None,
            exclusions: vec![],
            state: status::State::Attention,
        };
        let mut findings = Findings::default();
        judge_election(&report, "b", &mut findings);
        assert_eq!(findings.failures().len(), 1, "{:?}", findings.lines);
        assert!(
            findings.lines[0]
                .1
                .contains("\"b\" (this replica) is #2 and #3")
        );
        let mut findings = Findings::default();
        judge_election(&report, "a", &mut findings);
        assert!(findings.failures().is_empty());
        assert_eq!(findings.warnings(), 1);
        let empty = StatusReport {
            candidates: vec![],
            duplicates: vec![],
            leader: None,
            ..report
        };
        let mut findings = Findings::default();
        judge_election(&empty, "a", &mut findings);
        assert_eq!(findings.lines[0].0, Verdict::Warn);
        assert!(
            findings.lines[0].1.contains("nobody leads"),
            "{:?}",
            findings.lines
        );
    }

    fn run_args(line: &str) -> RunArgs {
        let args =
            std::iter::once("elector".to_owned()).chain(line.split_whitespace().map(str::to_owned));
        match elector::cli::parse(args) {
            elector::cli::Parsed::Run(cli) => cli.run,
            _ => panic!("{line} does not parse"),
        }
    }

    /// A report with one other registered replica, b, running `timing`.
    fn report_with_b(timing: &Timing) -> StatusReport {
        let record: elector::registry::MemberRecord = serde_json::from_value(serde_json::json!({
            "value": "b", "role": "active", "role_reason": "r", "node_mode": "active",
            "readiness": "ready", "version": "0.1.0", "host": "h", "lease": "1",
            "refresh_seconds": 30, "written_at": "2026-01-01T00:00:00Z",
            "timing": TimingRecord::new("default", timing),
        }))
        .expect("a record");
        let (replicas, exclusions, flags) = status::replica_set(
            &[candidate(1, "b", "1b")],
            &[record],
            &Default::default(),
            vec![],
            std::time::SystemTime::now(),
        );
        StatusReport {
            key: "/k".into(),
            revision: 9,
            leader: Some("b".into()),
            healthy: true,
            state: status::State::Healthy,
            flags,
            replicas,
            candidates: vec![candidate(1, "b", "1b")],
            duplicates: vec![],
            exclusions,
            handover_request: None,
            last_handover: None,
        }
    }

    /// `elector check` compares the timing its flags give with the other replicas': the same
    /// is ok, a difference a warning, an activation delay that would not cover the leader's
    /// timing a failure that names the value that works.
    #[test]
    fn the_timing_is_compared_with_the_other_replicas() {
        let report = report_with_b(&Timing::default());
        let mut findings = Findings::default();
        judge_timing(&run_args("--value a"), &report, "a", &mut findings);
        assert_eq!(findings.lines.len(), 1, "{:?}", findings.lines);
        assert_eq!(findings.lines[0].0, Verdict::Ok);

        let mut findings = Findings::default();
        judge_timing(
            &run_args("--value a --profile fast"),
            &report,
            "a",
            &mut findings,
        );
        assert_eq!(findings.failures().len(), 1, "{:?}", findings.lines);
        let line = findings.failures()[0];
        assert!(line.contains("--ttl 7s here, 10s there"), "{line}");
        assert!(line.contains("--activation-delay 13s 700ms"), "{line}");

        // Safe but different: a warning.
        let report = report_with_b(&Timing::fast_profile());
        let mut findings = Findings::default();
        judge_timing(&run_args("--value a"), &report, "a", &mut findings);
        assert!(findings.failures().is_empty(), "{:?}", findings.lines);
        assert_eq!(findings.warnings(), 1, "{:?}", findings.lines);
    }
}

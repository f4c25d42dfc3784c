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
use crate::commands::{EXIT_FAILED, connect};
use elector::cli::{CheckArgs, RunArgs};
use elector::etcd::lease_revocation_bug;
use elector::node::{HttpGet, NodeClient, ReqwestTransport};
use elector::{out, outln};
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

/// Runs `elector check`; returns the exit code.
pub async fn check(args: Box<CheckArgs>) -> u8 {
    let run = &args.run;
    let Ok(timing) = run.timing() else {
        // Checked at parse time; cannot happen.
        return EXIT_FAILED;
    };
    let value = run.value();
    outln!(
        "elector check {}: election {} as {value:?} (read-only)",
        env!("CARGO_PKG_VERSION"),
        run.key()
    );
    outln!();
    out!("{}", render_timing(&timing));
    let mut findings = Findings::default();
    for warning in run.warnings() {
        findings.add(Verdict::Warn, warning);
    }
    outln!();
    outln!("etcd {}", run.endpoints().join(","));
    let leader = check_etcd(run, &value, &mut findings).await;
    outln!();
    outln!("node");
    check_node(run, &value, leader.as_ref(), &mut findings).await;
    outln!();
    let failures = findings.failures();
    if failures.is_empty() {
        let warnings = match findings.warnings() {
            0 => String::new(),
            n => format!(" ({n} warning{})", if n == 1 { "" } else { "s" }),
        };
        outln!("result: everything reachable and sane{warnings}; exit 0");
        0
    } else {
        outln!(
            "result: {} check{} failed; exit 1",
            failures.len(),
            if failures.len() == 1 { "" } else { "s" }
        );
        EXIT_FAILED
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
    let rows: [(&str, String, String); 8] = [
        (
            "lease TTL",
            secs(t.lease_ttl),
            "--ttl; a crashed leader's key stays this long".into(),
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
             timeouts); systemd's TimeoutStopSec= must be above it"
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
            "clean handover",
            format!("≤ {}", secs(t.drain_bound)),
            "SIGTERM or `elector handover`: the node's drain (its last round, at most \
             --drain-bound), no activation delay, no overlap"
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
async fn check_etcd(run: &RunArgs, value: &str, findings: &mut Findings) -> Option<String> {
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
    let report = match status::read_report(&connection, run.key()).await {
        Ok(report) => report,
        Err(error) => {
            findings.add(Verdict::Fail, error);
            return None;
        }
    };
    judge_election(&report, value, findings);
    report.leader.clone()
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
    for line in lines.filter(|l| !l.starts_with("warning: ")) {
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
        timing.node_timeout,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::status::{CandidateReport, Duplicate};

    #[test]
    fn the_default_timings_are_printed() {
        let text = render_timing(&Timing::default());
        for needle in [
            "lease TTL               10s      --ttl",
            "step-down lead          6.5s",
            "activation delay        8.9s",
            "node lost after         10s",
            "fence retry interval    6.5s",
            "shutdown bound          8.8s",
            "failover after a crash  ≈ 19.4s",
            "clean handover          ≤ 5s     SIGTERM",
        ] {
            assert!(text.contains(needle), "{needle:?} missing:\n{text}");
        }
        let fast = render_timing(&Timing::fast_profile());
        assert!(fast.contains("≈ 6.3s"), "{fast}");
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
}

//! The operator commands: `elector status`, `elector handover`, `elector force-standby`.
//!
//! They read and write the election through the same adapter as the running elector
//! ([`Election`]), and reach the node through the same [`NodeClient`]. Every etcd call and
//! node call is bounded; every wait has a deadline. Results go to stdout, failures to stderr
//! as one line; the exit code says which (0 success, 1 failure; 2 is for bad flags).

use elector::cli::{EtcdArgs, ForceStandbyArgs, HandoverArgs, StatusArgs};
use elector::etcd::{self, Election};
use elector::node::{NodeClient, ReqwestTransport};
use elector::state::{StateFile, state_dir};
use elector_core::{Candidate, Observation};
use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;
use tokio::time::{Instant, timeout};

/// Exit code of a failed operator command.
pub const EXIT_FAILED: u8 = 1;

/// How often `elector handover` re-reads the election while it waits.
const HANDOVER_POLL: Duration = Duration::from_millis(100);

/// `elector force-standby` re-sends `activate=false` this often while reads still say active
/// (a node finishing its round, or one that restarted active meanwhile).
const FORCE_STANDBY_RESEND: Duration = Duration::from_secs(1);

/// A connection to the election, for an operator command.
pub(crate) struct Connection {
    pub(crate) client: Client,
    pub(crate) election: Election,
    pub(crate) request_timeout: Duration,
}

pub(crate) async fn connect(args: &EtcdArgs) -> Result<Connection, String> {
    let options = args.options()?;
    let client = etcd::connect(&options).await.map_err(|e| e.to_string())?;
    let election = Election::new(
        client.clone(),
        args.key.clone(),
        String::new(),
        options.request_timeout,
    );
    Ok(Connection {
        client,
        election,
        request_timeout: options.request_timeout,
    })
}

// ----- elector status -------------------------------------------------------------------

/// `elector status --json`: one object.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub key: String,
    /// The etcd revision the election was read at.
    pub revision: i64,
    /// The value of the leading candidate (the first), if any.
    pub leader: Option<String>,
    /// In election order: the first leads.
    pub candidates: Vec<CandidateReport>,
    /// Values held by more than one candidate: two replicas with one identity.
    pub duplicates: Vec<Duplicate>,
    pub handover_request: Option<RequestReport>,
    /// The last clean handover: the leader that wrote it.
    pub last_handover: Option<RecordReport>,
}

#[derive(Debug, Serialize)]
pub struct CandidateReport {
    /// 1 for the leader, 2 for the next in line, ...
    pub position: usize,
    pub value: String,
    /// The candidate key, `<key>/<lease hex>`.
    pub key: String,
    /// The lease id, lowercase hex (as in the key and in `etcdctl lease list`).
    pub lease: String,
    pub create_revision: i64,
    /// Seconds left on the lease (etcd rounds down; -1: expired), or null if unknown.
    pub ttl_seconds: Option<i64>,
    /// The lease's TTL as granted.
    pub granted_ttl_seconds: Option<i64>,
    pub leader: bool,
}

#[derive(Debug, Serialize)]
pub struct Duplicate {
    pub value: String,
    pub leases: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RequestReport {
    /// The replica asked for, or null for the next in line.
    pub to: Option<String>,
    pub revision: i64,
}

#[derive(Debug, Serialize)]
pub struct RecordReport {
    pub value: String,
    pub lease: String,
    pub create_revision: i64,
}

/// Runs `elector status`; returns the exit code.
pub async fn status(args: StatusArgs) -> u8 {
    match status_report(&args.etcd).await {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => elector::outln!("{text}"),
                    Err(e) => return fail(&format!("cannot render JSON: {e}")),
                }
                for warning in duplicate_warnings(&report) {
                    elector::errln!("warning: {warning}");
                }
            } else {
                elector::out!("{}", render_status(&report));
            }
            0
        }
        Err(line) => fail(&line),
    }
}

fn fail(line: &str) -> u8 {
    elector::errln!("elector: {line}");
    EXIT_FAILED
}

/// Reads the election and every candidate's lease.
pub async fn status_report(args: &EtcdArgs) -> Result<StatusReport, String> {
    let connection = connect(args).await?;
    read_report(&connection, &args.key).await
}

/// Reads the election at `key` and every candidate's lease over `connection`: reads only.
pub(crate) async fn read_report(
    connection: &Connection,
    key: &str,
) -> Result<StatusReport, String> {
    let observation = connection
        .election
        .list()
        .await
        .map_err(|e| e.to_string())?;
    let mut candidates = Vec::with_capacity(observation.candidates.len());
    for (i, candidate) in observation.candidates.iter().enumerate() {
        let (ttl, granted) = lease_ttl(connection, candidate.id.lease).await;
        candidates.push(CandidateReport {
            position: i + 1,
            value: candidate.value.clone(),
            key: connection.election.candidate_key(candidate.id.lease),
            lease: format!("{:x}", candidate.id.lease),
            create_revision: candidate.id.create_revision,
            ttl_seconds: ttl,
            granted_ttl_seconds: granted,
            leader: i == 0,
        });
    }
    Ok(StatusReport {
        key: key.to_string(),
        revision: observation.revision,
        leader: observation.candidates.first().map(|c| c.value.clone()),
        duplicates: duplicates(&observation.candidates),
        candidates,
        handover_request: observation
            .handover_request
            .as_ref()
            .map(|r| RequestReport {
                to: r.to.clone(),
                revision: r.revision,
            }),
        last_handover: observation.handover_record.as_ref().map(|r| RecordReport {
            value: r.value.clone(),
            lease: format!("{:x}", r.from.lease),
            create_revision: r.from.create_revision,
        }),
    })
}

/// The lease's TTL left and granted TTL, or `None`s if etcd did not say (bounded call).
async fn lease_ttl(connection: &Connection, lease: i64) -> (Option<i64>, Option<i64>) {
    let mut leases = connection.client.lease_client();
    match timeout(connection.request_timeout, leases.time_to_live(lease, None)).await {
        Ok(Ok(answer)) => (
            Some(answer.ttl()),
            (answer.granted_ttl() > 0).then_some(answer.granted_ttl()),
        ),
        _ => (None, None),
    }
}

fn duplicates(candidates: &[Candidate]) -> Vec<Duplicate> {
    let mut by_value: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for candidate in candidates {
        by_value
            .entry(candidate.value.as_str())
            .or_default()
            .push(format!("{:x}", candidate.id.lease));
    }
    by_value
        .into_iter()
        .filter(|(_, leases)| leases.len() > 1)
        .map(|(value, leases)| Duplicate {
            value: value.to_string(),
            leases,
        })
        .collect()
}

pub(crate) fn duplicate_warnings(report: &StatusReport) -> Vec<String> {
    report
        .duplicates
        .iter()
        .map(|d| {
            format!(
                "value {:?} is held by {} candidates (leases {}): two replicas share one \
                 identity; give each replica its own --value",
                d.value,
                d.leases.len(),
                d.leases.join(", ")
            )
        })
        .collect()
}

/// The table of `elector status`.
pub fn render_status(report: &StatusReport) -> String {
    let mut out = String::new();
    match &report.leader {
        None => {
            let _ = writeln!(
                out,
                "election {} at revision {}: no candidates, nobody leads",
                report.key, report.revision
            );
        }
        Some(leader) => {
            let _ = writeln!(
                out,
                "election {} at revision {}: {leader} leads, {} candidate{}",
                report.key,
                report.revision,
                report.candidates.len(),
                if report.candidates.len() == 1 {
                    ""
                } else {
                    "s"
                }
            );
            let rows: Vec<[String; 5]> = report
                .candidates
                .iter()
                .map(|c| {
                    let ttl = match (c.ttl_seconds, c.granted_ttl_seconds) {
                        (Some(t), _) if t < 0 => "expired".to_string(),
                        (Some(t), Some(g)) => format!("{t}s/{g}s"),
                        (Some(t), None) => format!("{t}s"),
                        (None, _) => "?".to_string(),
                    };
                    [
                        c.position.to_string(),
                        c.value.clone(),
                        c.lease.clone(),
                        ttl,
                        c.create_revision.to_string(),
                    ]
                })
                .collect();
            let header = ["#", "VALUE", "LEASE", "TTL LEFT", "CREATED AT REV"];
            let mut widths = header.map(str::len);
            for row in &rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            let line = |cells: [&str; 5], tail: &str| {
                let mut text = String::new();
                for (cell, w) in cells.iter().zip(widths) {
                    let _ = write!(text, "  {cell:<w$}");
                }
                text.push_str(tail);
                text.trim_end().to_string()
            };
            let _ = writeln!(out, "{}", line(header, ""));
            for (row, c) in rows.iter().zip(&report.candidates) {
                let cells = [
                    row[0].as_str(),
                    row[1].as_str(),
                    row[2].as_str(),
                    row[3].as_str(),
                    row[4].as_str(),
                ];
                let _ = writeln!(
                    out,
                    "{}",
                    line(cells, if c.leader { "  leader" } else { "" })
                );
            }
        }
    }
    for warning in duplicate_warnings(report) {
        let _ = writeln!(out, "warning: {warning}");
    }
    if let Some(request) = &report.handover_request {
        let _ = writeln!(
            out,
            "handover request pending (revision {}): to {}",
            request.revision,
            request.to.as_deref().unwrap_or("the next in line")
        );
    }
    if let Some(record) = &report.last_handover {
        let _ = writeln!(
            out,
            "last clean handover: by {} (lease {}, created at revision {})",
            record.value, record.lease, record.create_revision
        );
    }
    out
}

// ----- elector handover -----------------------------------------------------------------

/// Runs `elector handover`; returns the exit code.
pub async fn handover(args: HandoverArgs) -> u8 {
    let connection = match connect(&args.etcd).await {
        Ok(connection) => connection,
        Err(line) => return fail(&line),
    };
    match run_handover(&connection, &args, tokio::signal::ctrl_c()).await {
        Ok(line) => {
            elector::outln!("{line}");
            0
        }
        Err(line) => fail(&format!("handover failed: {line}")),
    }
}

/// What the current leader's term looks like at the start.
#[derive(Debug)]
struct Plan {
    leader: Candidate,
    /// The value that should lead next, if named.
    target: Option<String>,
}

/// What `elector handover` does, judged before it writes anything.
#[derive(Debug)]
enum Start {
    Request(Plan),
    /// The wanted state holds already: not a failure.
    NothingToDo(String),
}

/// Refusals that need no etcd write: nobody to hand over to.
fn plan(observation: &Observation, to: Option<&str>) -> Result<Start, String> {
    let Some(leader) = observation.candidates.first().cloned() else {
        return Err("no candidates: nobody leads, nothing to hand over".into());
    };
    let others: Vec<&Candidate> = observation.candidates[1..].iter().collect();
    match to {
        Some(target) if leader.value == target => Ok(Start::NothingToDo(format!(
            "{target} leads already; nothing to do"
        ))),
        Some(target) => {
            if !others.iter().any(|c| c.value == target) {
                let values: Vec<&str> = observation
                    .candidates
                    .iter()
                    .map(|c| c.value.as_str())
                    .collect();
                return Err(format!(
                    "target {target:?} is not a candidate (candidates: {}); only a replica \
                     whose elector runs and whose node is ready is one",
                    values.join(", ")
                ));
            }
            Ok(Start::Request(Plan {
                leader,
                target: Some(target.to_string()),
            }))
        }
        None => {
            if others.is_empty() {
                return Err(format!(
                    "no candidate other than the leader {}: a handover needs a ready standby \
                     in line",
                    leader.value
                ));
            }
            Ok(Start::Request(Plan {
                leader,
                target: None,
            }))
        }
    }
}

/// How the wait for a handover ended, or not yet.
enum Progress {
    Waiting,
    Done(String),
    Failed(String),
}

/// Judges one read of the election against the plan, from etcd facts only: the old leader's
/// key is gone, a handover record names it, and the new leader is the one asked for.
fn progress(plan: &Plan, observation: &Observation, request_revision: i64) -> Progress {
    let old = plan.leader.id;
    let still_there = observation.candidates.iter().any(|c| c.id == old);
    if !still_there {
        let clean = observation
            .handover_record
            .as_ref()
            .is_some_and(|r| r.from == old);
        let Some(new) = observation.candidates.first() else {
            return Progress::Failed(format!(
                "{} resigned but no candidate is left to lead",
                plan.leader.value
            ));
        };
        if !clean {
            return Progress::Failed(format!(
                "{} left the election without a handover record (it crashed, lost its lease or \
                 stopped uncleanly); {} leads and activates after the activation delay",
                plan.leader.value, new.value
            ));
        }
        return match &plan.target {
            Some(target) if new.value != *target => Progress::Failed(format!(
                "{} handed over cleanly, but {} leads, not {target}",
                plan.leader.value, new.value
            )),
            _ => Progress::Done(format!(
                "handed over: {} leads; {} confirmed its node standby and resigned with a \
                 handover record, so {} activates without the activation delay",
                new.value, plan.leader.value, new.value
            )),
        };
    }
    match &observation.handover_request {
        Some(request) if request.revision == request_revision => {}
        Some(request) => {
            return Progress::Failed(format!(
                "another handover request (revision {}) replaced ours",
                request.revision
            ));
        }
        None => {
            return Progress::Failed(
                "our handover request was withdrawn by someone else".to_string(),
            );
        }
    }
    let others = &observation.candidates[1..];
    match &plan.target {
        Some(target) if !others.iter().any(|c| c.value == *target) => Progress::Failed(format!(
            "target {target} left the election while {} was handing over",
            plan.leader.value
        )),
        None if others.is_empty() => Progress::Failed(format!(
            "no candidate other than the leader {} is left",
            plan.leader.value
        )),
        _ => Progress::Waiting,
    }
}

/// Why the handover did not happen in time, from the last read.
fn timeout_reason(plan: &Plan, observation: Option<&Observation>, waited: Duration) -> String {
    let waited = humantime::format_duration(Duration::from_secs(waited.as_secs().max(1)));
    let next = observation.and_then(|o| o.candidates.get(1));
    match (&plan.target, next) {
        (Some(target), Some(next)) if next.value != *target => format!(
            "after {waited} {target} is still not next in line ({} is): candidates ahead of it \
             did not step aside (a Go elector or etcdctl candidate ignores handover requests)",
            next.value
        ),
        _ => format!(
            "{} did not hand over within {waited} (its node may not confirm standby, or it is a \
             Go elector or etcdctl candidate, which ignore handover requests; see its log)",
            plan.leader.value
        ),
    }
}

async fn run_handover(
    connection: &Connection,
    args: &HandoverArgs,
    interrupted: impl std::future::Future<Output = std::io::Result<()>>,
) -> Result<String, String> {
    tokio::pin!(interrupted);
    let election = &connection.election;
    let first = election.list().await.map_err(|e| e.to_string())?;
    let plan = match plan(&first, args.to.as_deref())? {
        Start::Request(plan) => plan,
        Start::NothingToDo(line) => return Ok(line),
    };
    let started = Instant::now();
    let deadline = started + args.timeout;
    let revision = election
        .request_handover(plan.target.clone())
        .await
        .map_err(|e| e.to_string())?;
    elector::outln!(
        "handover requested (revision {revision}): {} leads, asked to hand over to {}; waiting \
         up to {}",
        plan.leader.value,
        plan.target.as_deref().unwrap_or("the next in line"),
        humantime::format_duration(args.timeout)
    );
    let mut last: Option<Observation> = None;
    let mut last_error: Option<String>;
    loop {
        tokio::select! {
            _ = &mut interrupted => {
                withdraw(connection, revision).await;
                return Err("interrupted; the handover request was withdrawn".into());
            }
            () = tokio::time::sleep(HANDOVER_POLL) => {}
        }
        match election.list().await {
            Ok(observation) => {
                last_error = None;
                match progress(&plan, &observation, revision) {
                    Progress::Waiting => {}
                    Progress::Done(line) => return Ok(with_elapsed(line, started)),
                    Progress::Failed(line) => {
                        withdraw(connection, revision).await;
                        return Err(line);
                    }
                }
                last = Some(observation);
            }
            Err(e) => last_error = Some(e.to_string()),
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    withdraw(connection, revision).await;
    // The leader may have committed just before the request was withdrawn: it goes on.
    if let Ok(observation) = election.list().await
        && let Progress::Done(line) = progress(&plan, &observation, revision)
    {
        return Ok(with_elapsed(line, started));
    }
    let mut reason = timeout_reason(&plan, last.as_ref(), started.elapsed());
    if let Some(error) = last_error {
        let _ = write!(reason, "; last etcd error: {error}");
    }
    Err(reason + "; the handover request was withdrawn")
}

fn with_elapsed(line: String, started: Instant) -> String {
    format!("{line} (after {:.2}s)", started.elapsed().as_secs_f64())
}

/// Deletes our handover request, only if it is still ours (its mod revision): a leader that
/// later took over must not act on a request nobody waits for any more.
async fn withdraw(connection: &Connection, revision: i64) {
    let key = connection.election.handover_request_key();
    let txn = Txn::new()
        .when([Compare::mod_revision(
            key.clone(),
            CompareOp::Equal,
            revision,
        )])
        .and_then([TxnOp::delete(key.clone(), None)]);
    let mut kv = connection.client.kv_client();
    match timeout(connection.request_timeout, kv.txn(txn)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => elector::errln!(
            "elector: warning: could not withdraw the handover request {key}: {e}; delete it \
             with `etcdctl del {key}`"
        ),
        Err(_) => elector::errln!(
            "elector: warning: withdrawing the handover request {key} timed out; delete it with \
             `etcdctl del {key}`"
        ),
    }
}

// ----- elector force-standby ------------------------------------------------------------

/// Runs `elector force-standby`; returns the exit code.
pub async fn force_standby(args: ForceStandbyArgs) -> u8 {
    match command_standby(&args).await {
        Ok(lines) => {
            for line in lines {
                elector::outln!("elector force-standby: {line}");
            }
            0
        }
        Err(line) => fail(&format!("force-standby: {line}")),
    }
}

/// What `elector force-standby` does, also run in-process by `elector supervise`: commands
/// the node standby at once, confirms it by a read, then ends the dead term (`--state-dir`);
/// the fence runs if standby is not confirmed within `--timeout`. Returns what it did, one line
/// each, or why standby was not confirmed, with the fence's outcome.
pub(crate) async fn command_standby(args: &ForceStandbyArgs) -> Result<Vec<String>, String> {
    let transport = ReqwestTransport::new()?;
    // Only the admin endpoint is used.
    let node = NodeClient::new(
        transport,
        &args.iotex_admin,
        &args.iotex_admin,
        args.node_timeout,
    );
    let started = Instant::now();
    let deadline = started + args.timeout;
    let mut commanded_at: Option<Instant> = None;
    let mut last_problem = String::from("no answer yet");
    loop {
        let now = Instant::now();
        let resend = commanded_at.is_none_or(|at| now >= at + FORCE_STANDBY_RESEND);
        if resend {
            match node.set_mode(false).await {
                Ok(()) => commanded_at = Some(Instant::now()),
                Err(e) => last_problem = format!("activate=false failed: {e}"),
            }
        }
        if commanded_at.is_some() {
            match node.read_mode().await {
                Ok(false) => {
                    let confirmed = format!(
                        "node {} confirmed standby after {:.2}s",
                        args.iotex_admin,
                        started.elapsed().as_secs_f64()
                    );
                    return Ok(vec![confirmed, end_dead_term_after_crash(args).await]);
                }
                Ok(true) => last_problem = "the node still reads active".into(),
                Err(e) => last_problem = format!("reading the mode failed: {e}"),
            }
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        tokio::time::sleep(args.confirm_poll_interval.min(deadline - now)).await;
    }
    let reason = format!(
        "node {} not confirmed standby within {} ({last_problem})",
        args.iotex_admin,
        humantime::format_duration(args.timeout)
    );
    Err(match &args.fence_cmd {
        None => format!("{reason}; no --fence-cmd configured"),
        Some(command) => {
            let outcome = run_fence(command, &reason, args.fence_timeout).await;
            format!("{reason}; {outcome}")
        }
    })
}

/// After a crash, with the node confirmed standby by a read: ends the term the crashed elector
/// left in etcd, if `--state-dir` remembers it as ours (rule `end_dead_term` of the core), so
/// that the next leader need not wait for its lease to expire. Bounded; says what it did. Any
/// failure only means the next leader waits as before.
async fn end_dead_term_after_crash(args: &ForceStandbyArgs) -> String {
    let Some(dir) = state_dir(args.state_dir.as_deref()) else {
        return "no --state-dir: any term left in etcd ends with its lease".into();
    };
    let value = args.value();
    let state = StateFile::new(&dir, &args.etcd.key, &value);
    let term = match state.load() {
        Ok(Some(term)) => term,
        Ok(None) => return "no term remembered: nothing to end".into(),
        Err(e) => return format!("{e}: not ending any term"),
    };
    let work = async {
        let connection = connect(&args.etcd).await?;
        let election = Election::new(
            connection.client.clone(),
            args.etcd.key.clone(),
            value.clone(),
            connection.request_timeout,
        );
        let observation = election.observe_once().await.map_err(|e| e.to_string())?;
        let Some(record) = elector_core::end_dead_term(&term, &value, &observation, true) else {
            let _ = state.store(None);
            return Ok(format!(
                "the remembered term (lease {:x}) is gone already",
                term.id.lease
            ));
        };
        let with_record = record.is_some();
        election
            .resign(term.id.lease, Some(term.id), record, None)
            .await
            .map_err(|e| e.to_string())?;
        let _ = state.store(None);
        Ok::<_, String>(format!(
            "ended the crashed elector's term (lease {:x}){}",
            term.id.lease,
            if with_record {
                " with a handover record: the next leader activates at once"
            } else {
                " without a record: the next leader waits its activation delay"
            }
        ))
    };
    match timeout(DEAD_TERM_BOUND, work).await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => format!("could not end the crashed elector's term: {e}"),
        Err(_) => format!(
            "could not end the crashed elector's term within {}",
            humantime::format_duration(DEAD_TERM_BOUND)
        ),
    }
}

/// Longest `force-standby` spends ending a dead term in etcd.
const DEAD_TERM_BOUND: Duration = Duration::from_secs(3);

/// Runs the fence command with `sh -c`, bounded; says how it went.
async fn run_fence(command: &str, reason: &str, bound: Duration) -> String {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("ELECTOR_FENCE_REASON", reason)
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => return format!("cannot start fence command {command:?}: {e}"),
    };
    match timeout(bound, child.wait()).await {
        Ok(Ok(exit)) if exit.success() => format!("fence command {command:?} succeeded"),
        Ok(Ok(exit)) => format!("FENCE COMMAND {command:?} FAILED: {exit}"),
        Ok(Err(e)) => format!("FENCE COMMAND {command:?} FAILED: {e}"),
        Err(_) => {
            let _ = child.kill().await;
            format!(
                "FENCE COMMAND {command:?} did not finish within {} and was killed",
                humantime::format_duration(bound)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elector_core::{CandidateId, HandoverRecord, HandoverRequest};

    fn candidate(lease: i64, revision: i64, value: &str) -> Candidate {
        Candidate {
            id: CandidateId {
                lease,
                create_revision: revision,
            },
            value: value.to_string(),
        }
    }

    fn observation(candidates: Vec<Candidate>) -> Observation {
        Observation {
            revision: 100,
            candidates,
            handover_record: None,
            handover_request: None,
        }
    }

    #[test]
    fn refusals_need_no_write() {
        let empty = observation(vec![]);
        assert!(plan(&empty, None).unwrap_err().contains("no candidates"));
        let alone = observation(vec![candidate(1, 10, "a")]);
        let e = plan(&alone, None).unwrap_err();
        assert!(e.contains("no candidate other than the leader a"), "{e}");
        let two = observation(vec![candidate(1, 10, "a"), candidate(2, 11, "b")]);
        let e = plan(&two, Some("zz")).unwrap_err();
        assert!(
            e.contains("\"zz\" is not a candidate (candidates: a, b)"),
            "{e}"
        );
        assert!(matches!(plan(&two, Some("a")), Ok(Start::NothingToDo(_))));
        assert!(matches!(plan(&two, Some("b")), Ok(Start::Request(_))));
        assert!(matches!(plan(&two, None), Ok(Start::Request(_))));
    }

    #[test]
    fn success_needs_the_key_gone_a_record_and_the_right_leader() {
        let a = candidate(1, 10, "a");
        let b = candidate(2, 11, "b");
        let c = candidate(3, 12, "c");
        let plan = Plan {
            leader: a.clone(),
            target: Some("c".into()),
        };
        let request = Some(HandoverRequest {
            to: Some("c".into()),
            revision: 50,
        });
        let mut waiting = observation(vec![a.clone(), b.clone(), c.clone()]);
        waiting.handover_request = request.clone();
        assert!(matches!(progress(&plan, &waiting, 50), Progress::Waiting));
        // Replaced by another request.
        assert!(matches!(progress(&plan, &waiting, 49), Progress::Failed(_)));
        // b stepped aside and campaigns again behind c.
        let b2 = candidate(4, 60, "b");
        let mut aside = observation(vec![a.clone(), c.clone(), b2.clone()]);
        aside.handover_request = request.clone();
        assert!(matches!(progress(&plan, &aside, 50), Progress::Waiting));
        // a resigned cleanly: c leads.
        let mut done = observation(vec![c.clone(), b2.clone()]);
        done.handover_record = Some(HandoverRecord {
            from: a.id,
            value: "a".into(),
        });
        assert!(matches!(progress(&plan, &done, 50), Progress::Done(_)));
        // a vanished without a record: a crash, not a handover.
        let crashed = observation(vec![c.clone(), b2.clone()]);
        assert!(matches!(progress(&plan, &crashed, 50), Progress::Failed(_)));
        // A record of an older term does not count.
        let mut stale = observation(vec![c.clone(), b2.clone()]);
        stale.handover_record = Some(HandoverRecord {
            from: b.id,
            value: "b".into(),
        });
        assert!(matches!(progress(&plan, &stale, 50), Progress::Failed(_)));
        // The target left.
        let mut gone = observation(vec![a.clone(), b.clone()]);
        gone.handover_request = request;
        match progress(&plan, &gone, 50) {
            Progress::Failed(line) => assert!(line.contains("target c left"), "{line}"),
            _ => panic!("the target left"),
        }
    }

    #[test]
    fn duplicate_values_are_flagged() {
        let list = vec![
            candidate(0x1a, 10, "a"),
            candidate(0x2b, 11, "b"),
            candidate(0x3c, 12, "a"),
        ];
        let found = duplicates(&list);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].value, "a");
        assert_eq!(found[0].leases, vec!["1a", "3c"]);
    }

    #[test]
    fn the_table_lines_up() {
        let report = StatusReport {
            key: "/k".into(),
            revision: 7,
            leader: Some("a".into()),
            candidates: vec![
                CandidateReport {
                    position: 1,
                    value: "a".into(),
                    key: "/k/1a".into(),
                    lease: "1a".into(),
                    create_revision: 5,
                    ttl_seconds: Some(9),
                    granted_ttl_seconds: Some(10),
                    leader: true,
                },
                CandidateReport {
                    position: 2,
                    value: "replica-b".into(),
                    key: "/k/2b".into(),
                    lease: "2b".into(),
                    create_revision: 6,
                    ttl_seconds: Some(-1),
                    granted_ttl_seconds: None,
                    leader: false,
                },
            ],
            duplicates: vec![],
            handover_request: None,
            last_handover: None,
        };
        let text = render_status(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "election /k at revision 7: a leads, 2 candidates");
        assert_eq!(lines[1], "  #  VALUE      LEASE  TTL LEFT  CREATED AT REV");
        assert_eq!(
            lines[2],
            "  1  a          1a     9s/10s    5               leader"
        );
        assert_eq!(lines[3], "  2  replica-b  2b     expired   6");
    }
}

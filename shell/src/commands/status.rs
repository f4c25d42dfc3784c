//! `elector status`: the whole replica set as etcd holds it, as a table or JSON: every
//! candidate in election order, then every registered replica that does not campaign, each
//! with what its registry record says (role, the node's mode and its age, readiness), whether
//! it is excluded, and flags for what is wrong ([`FlagKind`], decided by the pure
//! [`replica_set`]). Also the report `elector check` judges.
//!
//! Exit status: 0 when no flag is raised, [`EXIT_FLAGGED`] when any is (so it serves as a
//! check), [`EXIT_ETCD`] when etcd cannot be read, 2 for bad flags (clap).
//!
//! Over 600 lines for one job: reading the election, the registry and the exclusions, judging
//! the flags (one pure function) and rendering the table and the JSON schema are one command's
//! view of the set; the flag rules' tests are in `status/tests.rs`.

use super::{Connection, EXIT_FAILED, connect};
use elector::cli::{EtcdArgs, StatusArgs};
use elector::registry::{MemberRecord, SILENT_AFTER_REFRESHES};
use elector_core::Candidate;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};
use tokio::time::timeout;

/// Exit status when a flag is raised: something in the set is wrong.
pub const EXIT_FLAGGED: u8 = EXIT_FAILED;
/// Exit status when etcd could not be read (unreachable, timed out, refused): nothing is
/// known about the set, which is neither healthy nor flagged.
pub const EXIT_ETCD: u8 = 3;

/// `elector status --json`: one object. The schema is documented in docs/operations.md
/// ("Reading elector status"): fields may be added, never renamed.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub key: String,
    /// The etcd revision the election was read at.
    pub revision: i64,
    /// The value of the leading candidate (the first), if any.
    pub leader: Option<String>,
    /// No flag raised, on the set or on any replica: exit status 0.
    pub healthy: bool,
    /// Flags about the set as a whole (`NO-LEADER`).
    pub flags: Vec<Flag>,
    /// Every candidate in election order, then every registered replica that is not one.
    pub replicas: Vec<ReplicaReport>,
    /// In election order: the first leads.
    pub candidates: Vec<CandidateReport>,
    /// Values held by more than one candidate: two replicas with one identity.
    pub duplicates: Vec<Duplicate>,
    pub handover_request: Option<RequestReport>,
    /// The last clean handover: the leader that wrote it.
    pub last_handover: Option<RecordReport>,
}

#[derive(Clone, Debug, Serialize)]
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

/// What can be wrong with a replica, or with the set. Spelled in capitals in the table and in
/// the JSON (`"flag": "ACTIVE-NOT-LEADER"`); docs/operations.md says what to do about each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum FlagKind {
    /// Its node reads active, but it does not lead: two nodes may be signing.
    #[serde(rename = "ACTIVE-NOT-LEADER")]
    ActiveNotLeader,
    /// Two candidates hold its value: two replicas configured with one identity.
    #[serde(rename = "DUPLICATE-VALUE")]
    DuplicateValue,
    /// A candidate without a registry record: a Go or `etcdctl` elector (or an elector from
    /// before the registry), which `elector status` cannot see into.
    #[serde(rename = "UNREGISTERED")]
    Unregistered,
    /// Its record was not rewritten for twice its refresh interval: the elector is gone,
    /// frozen or cut off from etcd.
    #[serde(rename = "ELECTOR-SILENT")]
    ElectorSilent,
    /// A registered replica that is not a candidate; the detail says why.
    #[serde(rename = "NOT-CAMPAIGNING")]
    NotCampaigning,
    /// Its elector reports it cannot reach a safe or useful state by itself.
    #[serde(rename = "STUCK")]
    Stuck,
    /// Nobody campaigns, so nobody leads and no node signs.
    #[serde(rename = "NO-LEADER")]
    NoLeader,
}

impl FlagKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagKind::ActiveNotLeader => "ACTIVE-NOT-LEADER",
            FlagKind::DuplicateValue => "DUPLICATE-VALUE",
            FlagKind::Unregistered => "UNREGISTERED",
            FlagKind::ElectorSilent => "ELECTOR-SILENT",
            FlagKind::NotCampaigning => "NOT-CAMPAIGNING",
            FlagKind::Stuck => "STUCK",
            FlagKind::NoLeader => "NO-LEADER",
        }
    }
}

/// One raised flag and, where it helps, why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Flag {
    pub flag: FlagKind,
    pub detail: Option<String>,
}

impl Flag {
    fn new(flag: FlagKind, detail: impl Into<Option<String>>) -> Self {
        Flag {
            flag,
            detail: detail.into(),
        }
    }
}

/// One replica of the set: a candidate, a registered replica, or both.
#[derive(Clone, Debug, Serialize)]
pub struct ReplicaReport {
    /// Its place in the election (1 leads); null when it is not a candidate.
    pub position: Option<usize>,
    pub value: String,
    /// It is the leading candidate.
    pub leader: bool,
    /// Its candidate key, lease and TTL, when it is a candidate.
    pub candidate: Option<CandidateReport>,
    /// What its registry record says, wall-clock ages computed against this host's clock.
    pub registered: bool,
    pub role: Option<String>,
    pub role_reason: Option<String>,
    /// `active`, `standby` or `unknown` (null: no record).
    pub node_mode: Option<String>,
    /// How long ago the node's mode was read, by the record.
    pub node_mode_age_seconds: Option<u64>,
    pub readiness: Option<String>,
    pub stuck: Option<String>,
    /// An exclusion key `<key>.elector/excluded/<value>` exists.
    pub excluded: bool,
    /// How long ago the record was written.
    pub record_age_seconds: Option<u64>,
    /// The record as stored.
    pub record: Option<MemberRecord>,
    pub flags: Vec<Flag>,
}

/// Whole seconds from `at` (RFC 3339) to `now`; 0 for a time in the future (clock skew).
fn age_seconds(at: &str, now: SystemTime) -> Option<u64> {
    let at = humantime::parse_rfc3339_weak(at).ok()?;
    Some(now.duration_since(at).unwrap_or(Duration::ZERO).as_secs())
}

/// Roles whose elector holds a candidate key: a record in one of them without a candidate
/// means the elector's lease ended without it noticing, most likely because it is gone.
const CAMPAIGNING_ROLES: [&str; 4] = ["candidate", "leader", "active", "stepping-down"];

/// Why a registered replica is not a candidate, from its record and the exclusions.
fn not_campaigning_reason(record: &MemberRecord, excluded: bool) -> String {
    if excluded {
        return "excluded".to_owned();
    }
    if let Some(stuck) = &record.stuck {
        return format!("stuck: {stuck}");
    }
    if CAMPAIGNING_ROLES.contains(&record.role.as_str()) {
        return format!(
            "its record says {} but it has no candidate key: the elector may be gone",
            record.role
        );
    }
    if record.role == "stopped" {
        return "elector stopped".to_owned();
    }
    match record.readiness.as_str() {
        "unready" => "node unready".to_owned(),
        "unknown" => "node readiness not known yet".to_owned(),
        _ => format!("{}: {}", record.role, record.role_reason),
    }
}

/// The set as `elector status` shows it, from one read: the candidates in election order (with
/// their leases read), the registry records, the excluded values, and the time of the read.
/// Returns the rows, candidates first then registered replicas that are not candidates (in
/// value order), and the flags about the whole set. Pure: the flag logic lives here alone.
pub fn replica_set(
    candidates: &[CandidateReport],
    records: &[MemberRecord],
    excluded: &BTreeSet<String>,
    now: SystemTime,
) -> (Vec<ReplicaReport>, Vec<Flag>) {
    let by_value: BTreeMap<&str, &MemberRecord> =
        records.iter().map(|r| (r.value.as_str(), r)).collect();
    let mut holders: BTreeMap<&str, usize> = BTreeMap::new();
    for candidate in candidates {
        *holders.entry(candidate.value.as_str()).or_default() += 1;
    }
    let mut rows: Vec<ReplicaReport> = candidates
        .iter()
        .map(|c| {
            replica_row(
                Some(c),
                &c.value,
                by_value.get(c.value.as_str()).copied(),
                excluded,
                now,
            )
        })
        .collect();
    for record in records {
        if !holders.contains_key(record.value.as_str()) {
            rows.push(replica_row(
                None,
                &record.value,
                Some(record),
                excluded,
                now,
            ));
        }
    }
    for row in &mut rows {
        if holders.get(row.value.as_str()).is_some_and(|n| *n > 1) {
            let detail = format!(
                "{} candidates hold this value: give each replica its own --value",
                holders[row.value.as_str()]
            );
            row.flags.push(Flag::new(FlagKind::DuplicateValue, detail));
        }
    }
    let mut flags = Vec::new();
    if candidates.is_empty() {
        flags.push(Flag::new(
            FlagKind::NoLeader,
            "no candidate: no node signs blocks".to_owned(),
        ));
    }
    (rows, flags)
}

fn replica_row(
    candidate: Option<&CandidateReport>,
    value: &str,
    record: Option<&MemberRecord>,
    excluded: &BTreeSet<String>,
    now: SystemTime,
) -> ReplicaReport {
    let excluded = excluded.contains(value);
    let leader = candidate.is_some_and(|c| c.leader);
    let mut flags = Vec::new();
    match (candidate, record) {
        (Some(_), None) => flags.push(Flag::new(
            FlagKind::Unregistered,
            "no registry record: a Go or etcdctl elector, or an elector without the registry"
                .to_owned(),
        )),
        (None, Some(record)) => flags.push(Flag::new(
            FlagKind::NotCampaigning,
            not_campaigning_reason(record, excluded),
        )),
        _ => {}
    }
    let record_age = record.and_then(|r| age_seconds(&r.written_at, now));
    if let (Some(record), Some(age)) = (record, record_age) {
        let silent_after = record.refresh_seconds.max(1) * u64::from(SILENT_AFTER_REFRESHES);
        if age > silent_after {
            flags.push(Flag::new(
                FlagKind::ElectorSilent,
                format!(
                    "record not rewritten for {age}s (refreshed every {}s)",
                    record.refresh_seconds
                ),
            ));
        }
    }
    if let Some(record) = record {
        if record.node_mode == "active" && !leader {
            flags.push(Flag::new(
                FlagKind::ActiveNotLeader,
                "its node reads active but it does not lead: two nodes may sign".to_owned(),
            ));
        }
        if let Some(stuck) = &record.stuck {
            flags.push(Flag::new(FlagKind::Stuck, stuck.clone()));
        }
    }
    ReplicaReport {
        position: candidate.map(|c| c.position),
        value: value.to_owned(),
        leader,
        candidate: candidate.cloned(),
        registered: record.is_some(),
        role: record.map(|r| r.role.clone()),
        role_reason: record.map(|r| r.role_reason.clone()),
        node_mode: record.map(|r| r.node_mode.clone()),
        node_mode_age_seconds: record
            .and_then(|r| r.node_mode_read_at.as_deref())
            .and_then(|at| age_seconds(at, now)),
        readiness: record.map(|r| r.readiness.clone()),
        stuck: record.and_then(|r| r.stuck.clone()),
        excluded,
        record_age_seconds: record_age,
        record: record.cloned(),
        flags,
    }
}

/// Runs `elector status`; returns the exit code.
pub async fn status(args: StatusArgs) -> u8 {
    let report = match status_report(&args.etcd).await {
        Ok(report) => report,
        Err(line) => {
            elector::errln!("elector: cannot read the election: {line}");
            return EXIT_ETCD;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => elector::outln!("{text}"),
            Err(e) => {
                elector::errln!("elector: cannot render JSON: {e}");
                return EXIT_FAILED;
            }
        }
        for warning in duplicate_warnings(&report) {
            elector::errln!("warning: {warning}");
        }
    } else {
        elector::out!("{}", render_status(&report));
    }
    if report.healthy { 0 } else { EXIT_FLAGGED }
}

/// Reads the election, every candidate's lease, the registry and the exclusions.
pub async fn status_report(args: &EtcdArgs) -> Result<StatusReport, String> {
    let connection = connect(args).await?;
    read_report(&connection, args.key()).await
}

/// Reads the election at `key`, every candidate's lease, the registry records and the
/// exclusions over `connection`: reads only.
pub(crate) async fn read_report(
    connection: &Connection,
    key: &str,
) -> Result<StatusReport, String> {
    let election = &connection.election;
    let observation = election.list().await.map_err(|e| e.to_string())?;
    let mut records = Vec::new();
    for entry in election.list_members().await.map_err(|e| e.to_string())? {
        match serde_json::from_slice::<MemberRecord>(&entry.value) {
            Ok(record) => records.push(record),
            Err(error) => elector::errln!(
                "warning: ignoring the unreadable registry record {}{}: {error}",
                election.members_prefix(),
                entry.name
            ),
        }
    }
    let excluded: BTreeSet<String> = election
        .list_excluded()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|entry| entry.name)
        .collect();
    let now = SystemTime::now();
    let mut candidates = Vec::with_capacity(observation.candidates.len());
    for (i, candidate) in observation.candidates.iter().enumerate() {
        let (ttl, granted) = lease_ttl(connection, candidate.id.lease).await;
        candidates.push(CandidateReport {
            position: i + 1,
            value: candidate.value.clone(),
            key: election.candidate_key(candidate.id.lease),
            lease: format!("{:x}", candidate.id.lease),
            create_revision: candidate.id.create_revision,
            ttl_seconds: ttl,
            granted_ttl_seconds: granted,
            leader: i == 0,
        });
    }
    let (replicas, flags) = replica_set(&candidates, &records, &excluded, now);
    Ok(StatusReport {
        key: key.to_string(),
        revision: observation.revision,
        leader: observation.candidates.first().map(|c| c.value.clone()),
        healthy: flags.is_empty() && replicas.iter().all(|r| r.flags.is_empty()),
        flags,
        replicas,
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

/// An age in the table: seconds up to two minutes, then minutes, then hours.
fn short_age(seconds: u64) -> String {
    match seconds {
        0..120 => format!("{seconds}s"),
        120..7200 => format!("{}m", seconds / 60),
        _ => format!("{}h", seconds / 3600),
    }
}

/// A flag as the table shows it: `NOT-CAMPAIGNING(excluded)`; details longer than a few
/// words are left to `--json`, except the short reasons of `NOT-CAMPAIGNING`.
fn flag_cell(flag: &Flag) -> String {
    match (&flag.flag, &flag.detail) {
        (FlagKind::NotCampaigning, Some(detail)) => {
            let short = detail.split(':').next().unwrap_or(detail);
            format!("{}({short})", flag.flag.as_str())
        }
        _ => flag.flag.as_str().to_owned(),
    }
}

/// The header of the table of `elector status`.
const COLUMNS: [&str; 10] = [
    "#",
    "VALUE",
    "ROLE",
    "NODE",
    "READY",
    "EXCLUDED",
    "LEASE",
    "TTL LEFT",
    "CREATED AT REV",
    "FLAGS",
];

fn row_cells(row: &ReplicaReport) -> [String; 10] {
    let candidate = row.candidate.as_ref();
    let ttl = match candidate.map(|c| (c.ttl_seconds, c.granted_ttl_seconds)) {
        None => "-".to_string(),
        Some((Some(t), _)) if t < 0 => "expired".to_string(),
        Some((Some(t), Some(g))) => format!("{t}s/{g}s"),
        Some((Some(t), None)) => format!("{t}s"),
        Some((None, _)) => "?".to_string(),
    };
    let node = match (&row.node_mode, row.node_mode_age_seconds) {
        (Some(mode), Some(age)) => format!("{mode} {}", short_age(age)),
        (Some(mode), None) => mode.clone(),
        (None, _) => "?".to_string(),
    };
    let mut role = row.role.clone().unwrap_or_else(|| "?".to_string());
    if row.leader {
        role.push_str(" (leads)");
    }
    [
        row.position.map_or("-".to_string(), |p| p.to_string()),
        row.value.clone(),
        role,
        node,
        row.readiness.clone().unwrap_or_else(|| "?".to_string()),
        if row.excluded { "yes" } else { "no" }.to_string(),
        candidate.map_or("-".to_string(), |c| c.lease.clone()),
        ttl,
        candidate.map_or("-".to_string(), |c| c.create_revision.to_string()),
        row.flags
            .iter()
            .map(flag_cell)
            .collect::<Vec<_>>()
            .join(" "),
    ]
}

/// The table of `elector status`.
pub fn render_status(report: &StatusReport) -> String {
    let mut out = String::new();
    let registered = report.replicas.iter().filter(|r| r.registered).count();
    let candidates = report.candidates.len();
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let _ = writeln!(
        out,
        "election {} at revision {}: {}, {candidates} candidate{}, {registered} registered \
         replica{}",
        report.key,
        report.revision,
        match &report.leader {
            Some(leader) => format!("{leader} leads"),
            None => "nobody leads".to_string(),
        },
        plural(candidates),
        plural(registered),
    );
    if !report.replicas.is_empty() {
        let rows: Vec<[String; 10]> = report.replicas.iter().map(row_cells).collect();
        let mut widths = COLUMNS.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut text = String::new();
            for (cell, w) in cells.iter().zip(widths) {
                let _ = write!(text, "  {cell:<w$}");
            }
            text.trim_end().to_string()
        };
        let _ = writeln!(out, "{}", line(&COLUMNS.map(str::to_string)));
        for row in &rows {
            let _ = writeln!(out, "{}", line(row));
        }
    }
    for flag in &report.flags {
        let _ = writeln!(
            out,
            "{}: {}",
            flag.flag.as_str(),
            flag.detail.as_deref().unwrap_or("")
        );
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
    if !report.healthy {
        let _ = writeln!(
            out,
            "flagged: see FLAGS (elector status --json gives each flag's detail; \
             docs/operations.md says what to do)"
        );
    }
    out
}

#[cfg(test)]
mod tests;

//! What `elector status` says about the replica set, decided from one read: the report's
//! types (its JSON is the documented schema) and [`replica_set`], the pure function that
//! cross-checks every candidate key against the registry records and, where an elector's own
//! `/status` answered, against that, and raises the flags.
//!
//! Which source wins: an elector's `/status`, read just now, over its registry record, which
//! may be up to a refresh interval old (30 s), or older while its registry cannot write. The
//! candidate keys are etcd's own truth about who campaigns and who leads.

use elector::etcd::ExclusionJson;
use elector::registry::{MemberRecord, SILENT_AFTER_REFRESHES, TimingRecord};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

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
    /// `healthy` (exit 0), `maintenance` (only flags of planned work: exit 4) or `attention`
    /// (exit 1).
    pub state: State,
    /// Flags about the set as a whole (`NO-LEADER`, `EXCLUSION-OF-NO-REPLICA`).
    pub flags: Vec<Flag>,
    /// Every candidate in election order, then every registered replica that is not one.
    pub replicas: Vec<ReplicaReport>,
    /// In election order: the first leads.
    pub candidates: Vec<CandidateReport>,
    /// Values held by more than one candidate: two replicas with one identity.
    pub duplicates: Vec<Duplicate>,
    /// Every exclusion stored (`elector exclude`), in value order.
    pub exclusions: Vec<ExclusionReport>,
    pub handover_request: Option<RequestReport>,
    /// The last clean handover: the leader that wrote it.
    pub last_handover: Option<RecordReport>,
}

/// The verdict on the whole set, and the exit status that goes with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// No flag raised.
    Healthy,
    /// Only flags of planned work: an exclusion, an elector stopped cleanly.
    Maintenance,
    /// A flag that needs someone.
    Attention,
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

/// One exclusion key, `<key>.elector/excluded/<value>`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExclusionReport {
    pub value: String,
    /// What the key holds (null fields: it could not be read; it excludes all the same).
    pub by: Option<String>,
    pub at: Option<String>,
    pub reason: Option<String>,
    /// A replica has this value (a registry record or a candidate key): false is most likely
    /// a typo, which excludes nothing.
    pub known: bool,
}

impl ExclusionReport {
    /// The report of the exclusion of `value`, stored as `stored` (`None`: unreadable).
    pub fn new(value: String, stored: Option<ExclusionJson>) -> Self {
        ExclusionReport {
            value,
            by: stored.as_ref().map(|e| e.by.clone()),
            at: stored.as_ref().map(|e| e.at.clone()),
            reason: stored.map(|e| e.reason),
            known: false,
        }
    }
}

/// What can be wrong with a replica, or with the set. Spelled in capitals in the table and in
/// the JSON (`"flag": "ACTIVE-NOT-LEADER"`); docs/operations.md says what to do about each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum FlagKind {
    /// Its node reads active, but it does not lead: two nodes may be signing.
    #[serde(rename = "ACTIVE-NOT-LEADER")]
    ActiveNotLeader,
    /// Two electors use its value: two candidates with it, or its own `/status` names another
    /// candidate key than the one in etcd.
    #[serde(rename = "DUPLICATE-VALUE")]
    DuplicateValue,
    /// A candidate without a registry record: a Go or `etcdctl` elector (or an elector from
    /// before the registry), which `elector status` cannot see into.
    #[serde(rename = "UNREGISTERED")]
    Unregistered,
    /// Its record was not rewritten for twice its refresh interval and its `/status` does not
    /// answer: the elector is gone, frozen or cut off from etcd.
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
    /// Its elector cannot read its node: the mode shown is the last one read.
    #[serde(rename = "NODE-UNKNOWN")]
    NodeUnknown,
    /// Its record describes another candidate key than the one in etcd, and its `/status`
    /// could not confirm either: another elector with the same value wrote it, or its
    /// registry cannot write.
    #[serde(rename = "RECORD-MISMATCH")]
    RecordMismatch,
    /// It runs another timing than the leader (or than most replicas): every replica must
    /// run the same.
    #[serde(rename = "TIMING-MISMATCH")]
    TimingMismatch,
    /// Its node has the same p2p identity (`network.masterKey`) as another replica's.
    #[serde(rename = "SHARED-NODE-KEY")]
    SharedNodeKey,
    /// An exclusion of a value no replica has: most likely a typo, which excludes nothing.
    #[serde(rename = "EXCLUSION-OF-NO-REPLICA")]
    ExclusionOfNoReplica,
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
            FlagKind::NodeUnknown => "NODE-UNKNOWN",
            FlagKind::RecordMismatch => "RECORD-MISMATCH",
            FlagKind::TimingMismatch => "TIMING-MISMATCH",
            FlagKind::SharedNodeKey => "SHARED-NODE-KEY",
            FlagKind::ExclusionOfNoReplica => "EXCLUSION-OF-NO-REPLICA",
        }
    }
}

/// Whether a flag is planned work or needs someone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Planned: an excluded replica, an elector stopped cleanly.
    Maintenance,
    /// Needs someone: everything else.
    Attention,
}

/// One raised flag and, where it helps, why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Flag {
    pub flag: FlagKind,
    pub severity: Severity,
    pub detail: Option<String>,
}

impl Flag {
    pub(super) fn new(flag: FlagKind, detail: impl Into<Option<String>>) -> Self {
        Flag {
            flag,
            severity: Severity::Attention,
            detail: detail.into(),
        }
    }

    fn planned(flag: FlagKind, detail: String) -> Self {
        Flag {
            flag,
            severity: Severity::Maintenance,
            detail: Some(detail),
        }
    }
}

/// What an elector's `/status` says, as `elector status` reads it (the fields it needs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveStatus {
    pub value: String,
    pub key: String,
    pub role: String,
    #[serde(default)]
    pub role_reason: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub lease_id: Option<String>,
    #[serde(default)]
    pub node_mode: Option<String>,
    #[serde(default)]
    pub node_mode_read_ms_ago: Option<u64>,
    #[serde(default)]
    pub node_error: Option<String>,
    #[serde(default)]
    pub readiness: String,
    #[serde(default)]
    pub stuck: Option<String>,
    #[serde(default)]
    pub excluded: bool,
}

/// How asking an elector's `/status` went.
#[derive(Clone, Debug, PartialEq)]
pub enum Live {
    /// It answered for this replica of this election.
    Answered(Box<LiveStatus>),
    /// It did not answer, answered garbage, or answered for another replica: why.
    Failed(String),
}

/// One replica of the set: a candidate, a registered replica, or both.
#[derive(Clone, Debug, Serialize)]
pub struct ReplicaReport {
    /// Its place in the election (1 leads); null when it is not a candidate.
    pub position: Option<usize>,
    pub value: String,
    /// The host its elector runs on, by its record.
    pub host: Option<String>,
    /// It is the leading candidate.
    pub leader: bool,
    /// Its candidate key, lease and TTL, when it is a candidate.
    pub candidate: Option<CandidateReport>,
    /// It has a registry record.
    pub registered: bool,
    /// Where role, node and readiness come from: `live` (its `/status`, read just now),
    /// `record` (its registry record, `record_age_seconds` old) or `none`.
    pub seen: &'static str,
    pub role: Option<String>,
    pub role_reason: Option<String>,
    /// The node's mode: `active`, `standby`, or `unknown` when its elector cannot read it
    /// (null: nothing is known).
    pub node_mode: Option<String>,
    /// How long ago the read that gave the mode answered (for `unknown`, the last read that
    /// did), as of this read.
    pub node_mode_age_seconds: Option<u64>,
    pub readiness: Option<String>,
    pub stuck: Option<String>,
    /// An exclusion key `<key>.elector/excluded/<value>` exists.
    pub excluded: bool,
    /// How long ago the record was written.
    pub record_age_seconds: Option<u64>,
    /// The record as stored.
    pub record: Option<MemberRecord>,
    /// Its `/status` as read just now, when it answered.
    pub live: Option<LiveStatus>,
    /// Why its `/status` could not be used, when it was asked.
    pub live_error: Option<String>,
    pub flags: Vec<Flag>,
}

/// Whole seconds from `at` (RFC 3339) to `now`; 0 for a time in the future (clock skew).
pub fn age_seconds(at: &str, now: SystemTime) -> Option<u64> {
    let at = humantime::parse_rfc3339_weak(at).ok()?;
    Some(now.duration_since(at).unwrap_or(Duration::ZERO).as_secs())
}

/// Roles whose elector holds a candidate key: a record in one of them without a candidate
/// means the elector's lease ended without it noticing, most likely because it is gone.
const CAMPAIGNING_ROLES: [&str; 4] = ["candidate", "leader", "active", "stepping-down"];

/// How old a record may be before it must describe the candidate key of its value: the
/// registry writes a change within a second.
const RECORD_SETTLES: u64 = 3;

/// What is known of one replica, from its `/status` if it answered, else its record.
struct View<'a> {
    seen: &'static str,
    role: &'a str,
    role_reason: &'a str,
    node_mode: &'a str,
    node_error: Option<&'a str>,
    node_age: Option<u64>,
    readiness: &'a str,
    stuck: Option<&'a str>,
}

impl<'a> View<'a> {
    fn of(
        record: Option<&'a MemberRecord>,
        live: Option<&'a LiveStatus>,
        now: SystemTime,
    ) -> Option<Self> {
        if let Some(live) = live {
            return Some(View {
                seen: "live",
                role: &live.role,
                role_reason: &live.role_reason,
                node_mode: live.node_mode.as_deref().unwrap_or("unknown"),
                node_error: live.node_error.as_deref(),
                node_age: live.node_mode_read_ms_ago.map(|ms| ms / 1000),
                readiness: &live.readiness,
                stuck: live.stuck.as_deref(),
            });
        }
        let record = record?;
        Some(View {
            seen: "record",
            role: &record.role,
            role_reason: &record.role_reason,
            node_mode: &record.node_mode,
            node_error: record.node_error.as_deref(),
            node_age: record
                .node_mode_read_at
                .as_deref()
                .and_then(|at| age_seconds(at, now)),
            readiness: &record.readiness,
            stuck: record.stuck.as_deref(),
        })
    }

    /// The node's mode now: `unknown` while the elector's calls to it fail.
    fn node_now(&self) -> &'a str {
        match self.node_error {
            Some(_) => "unknown",
            None => self.node_mode,
        }
    }
}

/// Why a registered replica is not a candidate, and whether that is planned.
fn not_campaigning(view: &View, excluded: bool) -> Flag {
    if excluded {
        return Flag::planned(FlagKind::NotCampaigning, "excluded".to_owned());
    }
    if let Some(stuck) = view.stuck {
        return Flag::new(FlagKind::NotCampaigning, format!("stuck: {stuck}"));
    }
    if view.role == "stopped" {
        return Flag::planned(FlagKind::NotCampaigning, "elector stopped".to_owned());
    }
    let reason = if CAMPAIGNING_ROLES.contains(&view.role) {
        match view.seen {
            "live" => format!(
                "its /status says {} but it has no candidate key: its lease just ended",
                view.role
            ),
            _ => format!(
                "its record says {} but it has no candidate key: the elector may be gone",
                view.role
            ),
        }
    } else {
        match view.readiness {
            "unready" => "node unready".to_owned(),
            "unknown" => "node readiness not known yet".to_owned(),
            _ => format!("{}: {}", view.role, view.role_reason),
        }
    };
    Flag::new(FlagKind::NotCampaigning, reason)
}

/// The timing every replica should run: the leader's, else the one most records publish.
fn reference_timing<'a>(
    records: &'a [MemberRecord],
    leader: Option<&str>,
) -> Option<(&'a TimingRecord, String)> {
    if let Some(record) = records.iter().find(|r| Some(r.value.as_str()) == leader)
        && let Some(timing) = &record.timing
    {
        return Some((timing, format!("the leader {}'s", record.value)));
    }
    let published: Vec<&TimingRecord> = records.iter().filter_map(|r| r.timing.as_ref()).collect();
    published
        .iter()
        .max_by_key(|t| published.iter().filter(|o| o.values == t.values).count())
        .map(|t| (*t, "most replicas'".to_owned()))
}

/// The set as `elector status` shows it, from one read: the candidates in election order (with
/// their leases read), the registry records, what each elector's `/status` said (by value;
/// absent: not asked), the exclusions stored, and the time of the read. Returns the rows,
/// candidates first then registered replicas that are not candidates (in value order), the
/// exclusions (each marked known or not), and the flags about the whole set. Pure: the flag
/// logic lives here alone.
pub fn replica_set(
    candidates: &[CandidateReport],
    records: &[MemberRecord],
    live: &BTreeMap<String, Live>,
    exclusions: Vec<ExclusionReport>,
    now: SystemTime,
) -> (Vec<ReplicaReport>, Vec<ExclusionReport>, Vec<Flag>) {
    let by_value: BTreeMap<&str, &MemberRecord> =
        records.iter().map(|r| (r.value.as_str(), r)).collect();
    let excluded: BTreeSet<&str> = exclusions.iter().map(|e| e.value.as_str()).collect();
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
                live.get(&c.value),
                excluded.contains(c.value.as_str()),
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
                live.get(&record.value),
                excluded.contains(record.value.as_str()),
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
    let leader = candidates.first().map(|c| c.value.as_str());
    if let Some((reference, whose)) = reference_timing(records, leader) {
        for row in &mut rows {
            let Some(timing) = row.record.as_ref().and_then(|r| r.timing.as_ref()) else {
                continue;
            };
            let differences = reference.differences(timing);
            if !differences.is_empty() {
                let listed: Vec<String> = differences
                    .iter()
                    .map(|(flag, theirs, ours)| format!("{flag} {ours} ({whose}: {theirs})"))
                    .collect();
                let unsafe_after: Vec<String> = records
                    .iter()
                    .filter(|r| r.value != row.value)
                    .filter_map(|r| {
                        let needed = timing.too_short_after(r.timing.as_ref()?)?;
                        Some(format!(
                            "UNSAFE: should {} lead and die, this replica activates before \
                             {}'s node may have stopped signing; give it --activation-delay {} \
                             until every replica runs one timing",
                            r.value,
                            r.value,
                            humantime::format_duration(needed)
                        ))
                    })
                    .collect();
                let mut detail = format!(
                    "{}; every replica must run the same timing",
                    listed.join(", ")
                );
                for warning in unsafe_after {
                    detail.push_str("; ");
                    detail.push_str(&warning);
                }
                row.flags.push(Flag::new(FlagKind::TimingMismatch, detail));
            }
        }
    }
    let mut fingerprints: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for record in records {
        if let Some(fingerprint) = &record.node_key_fingerprint {
            fingerprints
                .entry(fingerprint.as_str())
                .or_default()
                .push(&record.value);
        }
    }
    for row in &mut rows {
        let Some(fingerprint) = row
            .record
            .as_ref()
            .and_then(|r| r.node_key_fingerprint.as_deref())
        else {
            continue;
        };
        let others: Vec<&str> = fingerprints[fingerprint]
            .iter()
            .copied()
            .filter(|v| *v != row.value)
            .collect();
        if !others.is_empty() {
            row.flags.push(Flag::new(
                FlagKind::SharedNodeKey,
                format!(
                    "its node's network.masterKey is the same as {}'s: give each replica its own \
                     p2p identity",
                    others.join(", ")
                ),
            ));
        }
    }
    let known: BTreeSet<&str> = rows.iter().map(|r| r.value.as_str()).collect();
    let mut flags = Vec::new();
    if candidates.is_empty() {
        flags.push(Flag::new(
            FlagKind::NoLeader,
            "no candidate: no node signs blocks".to_owned(),
        ));
    }
    let exclusions: Vec<ExclusionReport> = exclusions
        .into_iter()
        .map(|mut e| {
            e.known = known.contains(e.value.as_str());
            if !e.known {
                flags.push(Flag::new(
                    FlagKind::ExclusionOfNoReplica,
                    format!(
                        "{:?} is excluded, but no replica has this value (a typo?): it excludes \
                         nothing; `elector include {}` removes it",
                        e.value, e.value
                    ),
                ));
            }
            e
        })
        .collect();
    (rows, exclusions, flags)
}

fn replica_row(
    candidate: Option<&CandidateReport>,
    value: &str,
    record: Option<&MemberRecord>,
    live: Option<&Live>,
    excluded: bool,
    now: SystemTime,
) -> ReplicaReport {
    let leader = candidate.is_some_and(|c| c.leader);
    let answered = match live {
        Some(Live::Answered(status)) => Some(status.as_ref()),
        _ => None,
    };
    let live_error = match live {
        Some(Live::Failed(why)) => Some(why.clone()),
        _ => None,
    };
    let view = View::of(record, answered, now);
    let record_age = record.and_then(|r| age_seconds(&r.written_at, now));
    let mut flags = Vec::new();
    match (candidate, record, &view) {
        (Some(_), None, None) => flags.push(Flag::new(
            FlagKind::Unregistered,
            "no registry record: a Go or etcdctl elector, or an elector without the registry"
                .to_owned(),
        )),
        (None, Some(_), Some(view)) => flags.push(not_campaigning(view, excluded)),
        _ => {}
    }
    if let (Some(record), Some(age), None) = (record, record_age, answered) {
        let silent_after = record.refresh_seconds.max(1) * u64::from(SILENT_AFTER_REFRESHES);
        if age > silent_after {
            flags.push(Flag::new(
                FlagKind::ElectorSilent,
                format!(
                    "record not rewritten for {age}s (refreshed every {}s) and its /status {}",
                    record.refresh_seconds,
                    match &live_error {
                        Some(why) => format!("could not be read: {why}"),
                        None => "was not asked (no URL in its record)".to_owned(),
                    }
                ),
            ));
        }
    }
    if let Some(view) = &view {
        let hearsay = match (view.seen, record_age) {
            ("record", Some(age)) => format!(" (by its record, {age}s old)"),
            _ => String::new(),
        };
        if view.node_now() == "active" && !leader {
            flags.push(Flag::new(
                FlagKind::ActiveNotLeader,
                format!("its node reads active but it does not lead: two nodes may sign{hearsay}"),
            ));
        }
        if let Some(stuck) = view.stuck {
            flags.push(Flag::new(FlagKind::Stuck, format!("{stuck}{hearsay}")));
        }
        if view.node_now() == "unknown" && view.role != "stopped" {
            flags.push(Flag::new(
                FlagKind::NodeUnknown,
                format!(
                    "its elector cannot read its node{}{hearsay}",
                    match (view.node_error, view.node_age) {
                        (Some(error), Some(age)) => format!(
                            ": {error}; the last read, {age}s ago, said {}",
                            view.node_mode
                        ),
                        (Some(error), None) => format!(": {error}"),
                        (None, _) => ": no read has answered yet".to_owned(),
                    }
                ),
            ));
        }
    }
    if let Some(candidate) = candidate {
        match (answered, record) {
            (Some(status), _) if status.lease_id.as_deref() != Some(candidate.lease.as_str()) => {
                flags.push(Flag::new(
                    FlagKind::DuplicateValue,
                    format!(
                        "the elector whose /status answers for this value holds {}, not this \
                         candidate's lease {}: another elector uses the same --value",
                        status.lease_id.as_deref().map_or_else(
                            || "no candidate key".to_owned(),
                            |l| format!("lease {l}")
                        ),
                        candidate.lease
                    ),
                ))
            }
            (None, Some(record))
                if record.candidate_lease.as_deref() != Some(candidate.lease.as_str())
                    && record_age.is_some_and(|age| age >= RECORD_SETTLES) =>
            {
                flags.push(Flag::new(
                    FlagKind::RecordMismatch,
                    format!(
                        "its record (written {}s ago, role {}, {}) does not describe this \
                         candidate (lease {}): another elector with the same --value wrote it, \
                         or this one's registry cannot write",
                        record_age.unwrap_or(0),
                        record.role,
                        record.candidate_lease.as_deref().map_or_else(
                            || "no candidate key".to_owned(),
                            |l| format!("lease {l}")
                        ),
                        candidate.lease
                    ),
                ))
            }
            _ => {}
        }
    }
    ReplicaReport {
        position: candidate.map(|c| c.position),
        value: value.to_owned(),
        host: record.map(|r| r.host.clone()),
        leader,
        candidate: candidate.cloned(),
        registered: record.is_some(),
        seen: view.as_ref().map_or("none", |v| v.seen),
        role: view.as_ref().map(|v| v.role.to_owned()),
        role_reason: view.as_ref().map(|v| v.role_reason.to_owned()),
        node_mode: view.as_ref().map(|v| v.node_now().to_owned()),
        node_mode_age_seconds: view.as_ref().and_then(|v| v.node_age),
        readiness: view.as_ref().map(|v| v.readiness.to_owned()),
        stuck: view.as_ref().and_then(|v| v.stuck.map(str::to_owned)),
        excluded,
        record_age_seconds: record_age,
        record: record.cloned(),
        live: answered.cloned(),
        live_error,
        flags,
    }
}

/// The verdict on a set with these flags (the set's and every replica's).
pub fn state<'a>(flags: impl IntoIterator<Item = &'a Flag>) -> State {
    let mut state = State::Healthy;
    for flag in flags {
        match flag.severity {
            Severity::Attention => return State::Attention,
            Severity::Maintenance => state = State::Maintenance,
        }
    }
    state
}

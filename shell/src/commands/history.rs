//! `elector history`: the role changes and handovers of the replica set, like `patronictl
//! history`, from what the electors already write to etcd, read back from etcd's own history
//! of those keys (every revision since its last compaction; one watch, reads only):
//!
//! - the candidate keys: who led when (the lowest create revision), and every leadership
//!   change with its revision;
//! - the handover records: a leader that handed over cleanly (in the transaction that deleted
//!   its key), and the operators' handover requests;
//! - the exclusions (`elector exclude`, `elector include`), with who, when and why;
//! - every revision of every registry record: each carries the elector's last role changes
//!   with their wall-clock time and reason, so every role change of every elector is there,
//!   as long as etcd has kept the revision.
//!
//! What etcd compacted is gone (etcd compacts only when told to: `--auto-compaction-*`, or
//! `etcdctl compact`): the command says from which revision on it knows. Candidates and
//! handovers have revisions but no wall-clock time; role changes and exclusions have both.

use super::{Outcome, connect};
use elector::cli::HistoryArgs;
use elector::etcd::{ExclusionJson, KeyChange, KeyHistory};
use elector::registry::MemberRecord;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

/// Bound on the replay, whatever the history's length.
const REPLAY_BOUND: Duration = Duration::from_secs(20);
/// Changes replayed at most (a busy set writes about 4 registry records a minute per replica:
/// this is weeks of it).
const MAX_CHANGES: usize = 200_000;

/// One line of the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The etcd revision that shows it.
    pub revision: i64,
    /// Wall-clock time (RFC 3339), when the change carries one.
    pub at: Option<String>,
    /// The replica it is about (its --value), if one.
    pub replica: Option<String>,
    /// `leader`, `role`, `handover`, `handover-request`, `exclusion`, `elector`.
    pub kind: &'static str,
    pub what: String,
}

/// `elector history --json`.
#[derive(Debug, Serialize)]
pub struct HistoryReport {
    pub key: String,
    pub from_revision: i64,
    pub to_revision: i64,
    /// etcd compacted the revisions before `from_revision`: earlier events are gone.
    pub compacted: bool,
    /// The event bound was reached: the newest events are missing.
    pub truncated: bool,
    pub entries: Vec<Entry>,
}

/// Runs `elector history`.
pub async fn run(args: HistoryArgs) -> Outcome {
    let connection = connect(&args.etcd).await?;
    let read = (connection.election.history(MAX_CHANGES, REPLAY_BOUND).await)
        .map_err(|e| format!("cannot read the election's history: {e}"))?;
    let mut entries = entries(args.etcd.key(), &read.changes);
    if entries.len() > args.limit {
        entries.drain(..entries.len() - args.limit);
    }
    let report = HistoryReport {
        key: args.etcd.key().to_owned(),
        from_revision: read.from_revision,
        to_revision: read.to_revision,
        compacted: read.compacted,
        truncated: read.truncated,
        entries,
    };
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| format!("cannot render JSON: {e}"))?;
        elector::outln!("{text}");
    } else {
        elector::out!("{}", render(&report, &read));
    }
    Ok(0)
}

/// What one key is.
enum Key<'a> {
    Candidate,
    HandoverRecord,
    HandoverRequest,
    Member(&'a str),
    Exclusion(&'a str),
    Other,
}

fn classify<'a>(key: &str, full: &'a str) -> Key<'a> {
    let Some(rest) = full.strip_prefix(key) else {
        return Key::Other;
    };
    if let Some(lease) = rest.strip_prefix('/') {
        return if !lease.is_empty() && lease.bytes().all(|b| b.is_ascii_hexdigit()) {
            Key::Candidate
        } else {
            Key::Other
        };
    }
    match rest.strip_prefix(".elector/") {
        Some("handover-record") => Key::HandoverRecord,
        Some("handover-request") => Key::HandoverRequest,
        Some(other) => match (
            other.strip_prefix("members/"),
            other.strip_prefix("excluded/"),
        ) {
            (Some(value), _) => Key::Member(value),
            (_, Some(value)) => Key::Exclusion(value),
            _ => Key::Other,
        },
        None => Key::Other,
    }
}

/// The history's lines from the changes of the keys under `key`, oldest first.
pub fn entries(key: &str, changes: &[KeyChange]) -> Vec<Entry> {
    let mut out = Vec::new();
    // Candidate key -> (create revision, value).
    let mut candidates: BTreeMap<&str, (i64, String)> = BTreeMap::new();
    let mut leader: Option<(String, i64)> = None;
    let mut transitions_seen: BTreeSet<(String, String, String, String)> = BTreeSet::new();
    let mut registered: BTreeSet<&str> = BTreeSet::new();
    // The handover record written in a revision, to tell a clean change of leader.
    let mut clean_at: BTreeMap<i64, String> = BTreeMap::new();
    for change in changes {
        if let Key::HandoverRecord = classify(key, &change.key)
            && change.put
            && let Ok(record) = serde_json::from_slice::<serde_json::Value>(&change.value)
        {
            let value = record["value"].as_str().unwrap_or("?").to_owned();
            clean_at.insert(change.revision, value);
        }
    }
    for change in changes {
        let entry = |replica: Option<&str>, kind, what: String, at: Option<String>| Entry {
            revision: change.revision,
            at,
            replica: replica.map(str::to_owned),
            kind,
            what,
        };
        match classify(key, &change.key) {
            Key::Candidate => {
                if change.put {
                    let value = String::from_utf8_lossy(&change.value).into_owned();
                    candidates.insert(&change.key, (change.create_revision, value));
                } else {
                    candidates.remove(change.key.as_str());
                }
                let now = candidates
                    .iter()
                    .min_by_key(|(_, (created, _))| *created)
                    .map(|(k, (created, value))| (value.clone(), *created, *k));
                let before = leader.as_ref().map(|(v, c)| (v.clone(), *c));
                if now.as_ref().map(|(v, c, _)| (v.clone(), *c)) != before {
                    let what = match (&now, &before) {
                        (Some((value, _, k)), Some((old, _))) => format!(
                            "{value} leads ({k}), after {old}{}",
                            match clean_at.get(&change.revision) {
                                Some(by) if by == old => ": a clean handover",
                                _ =>
                                    ": no handover record (a crash, a lost lease, or a \
                                       Go/etcdctl leader)",
                            }
                        ),
                        (Some((value, _, k)), None) => format!("{value} leads ({k})"),
                        (None, Some((old, _))) => {
                            format!("nobody leads: {old} left and no candidate is left")
                        }
                        (None, None) => String::new(),
                    };
                    let replica = now.as_ref().map(|(v, _, _)| v.as_str());
                    out.push(entry(replica, "leader", what, None));
                    leader = now.map(|(v, c, _)| (v, c));
                }
            }
            Key::HandoverRecord if change.put => {
                let record: serde_json::Value =
                    serde_json::from_slice(&change.value).unwrap_or_default();
                let value = record["value"].as_str().unwrap_or("?");
                let withdrawn = record["key_withdrawn"].as_bool().unwrap_or(false);
                out.push(entry(
                    Some(value),
                    "handover",
                    format!(
                        "{value} handed over cleanly: node confirmed standby{}, key deleted \
                         (lease {:x})",
                        if withdrawn {
                            ", operator key withdrawn"
                        } else {
                            ""
                        },
                        record["from_lease"].as_i64().unwrap_or(0)
                    ),
                    None,
                ));
            }
            Key::HandoverRecord => {}
            Key::HandoverRequest => {
                let what = if change.put {
                    let request: serde_json::Value =
                        serde_json::from_slice(&change.value).unwrap_or_default();
                    format!(
                        "handover requested, to {}",
                        request["to"].as_str().unwrap_or("the next in line")
                    )
                } else {
                    "handover request done or withdrawn".to_owned()
                };
                out.push(entry(None, "handover-request", what, None));
            }
            Key::Exclusion(value) => {
                let stored = serde_json::from_slice::<ExclusionJson>(&change.value).ok();
                let what = match (change.put, &stored) {
                    (true, Some(e)) => format!(
                        "excluded by {}{}",
                        e.by,
                        if e.reason.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", e.reason)
                        }
                    ),
                    (true, None) => "excluded (unreadable exclusion)".to_owned(),
                    (false, _) => "included again (exclusion deleted)".to_owned(),
                };
                let at = match change.put {
                    true => stored.map(|e| e.at),
                    false => None,
                };
                out.push(entry(Some(value), "exclusion", what, at));
            }
            Key::Member(value) => {
                let Ok(record) = serde_json::from_slice::<MemberRecord>(&change.value) else {
                    continue;
                };
                if !change.put {
                    out.push(entry(
                        Some(value),
                        "elector",
                        "registry record gone: its lease expired (the elector stopped, died or \
                         was cut off for minutes)"
                            .to_owned(),
                        None,
                    ));
                    registered.remove(value);
                    continue;
                }
                if registered.insert(value) {
                    out.push(entry(
                        Some(value),
                        "elector",
                        format!(
                            "registered: elector {} on {}{}",
                            record.version,
                            record.host,
                            record
                                .timing
                                .as_ref()
                                .map(|t| format!(", profile {}", t.profile))
                                .unwrap_or_default()
                        ),
                        Some(record.written_at.clone()),
                    ));
                }
                let transitions = record
                    .recent_transitions
                    .iter()
                    .chain(record.last_transition.iter());
                let mut fresh: Vec<_> = transitions
                    .filter(|t| {
                        transitions_seen.insert((
                            value.to_owned(),
                            t.at.clone(),
                            t.from.clone(),
                            t.to.clone(),
                        ))
                    })
                    .collect();
                fresh.sort_by(|a, b| a.at.cmp(&b.at));
                for t in fresh {
                    out.push(entry(
                        Some(value),
                        "role",
                        format!("{} -> {}: {}", t.from, t.to, t.why),
                        Some(t.at.clone()),
                    ));
                }
            }
            Key::Other => {}
        }
    }
    out
}

/// The text form.
fn render(report: &HistoryReport, read: &KeyHistory) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "history of {} from revision {} to {} ({} changes read{}){}",
        report.key,
        report.from_revision,
        report.to_revision,
        read.changes.len(),
        if report.truncated {
            ", the newest missing: too many"
        } else {
            ""
        },
        if report.compacted {
            format!(
                ": etcd compacted what came before revision {}",
                report.from_revision
            )
        } else {
            ": all of it".to_owned()
        }
    );
    if report.entries.is_empty() {
        let _ = writeln!(out, "nothing happened in that time");
        return out;
    }
    let widths = [
        "REV".len().max(
            report
                .entries
                .iter()
                .map(|e| e.revision.to_string().len())
                .max()
                .unwrap_or(0),
        ),
        "TIME (UTC)".len().max(20),
        "REPLICA".len().max(
            report
                .entries
                .iter()
                .map(|e| e.replica.as_deref().map_or(1, str::len))
                .max()
                .unwrap_or(0),
        ),
    ];
    let _ = writeln!(
        out,
        "  {:<w0$}  {:<w1$}  {:<w2$}  EVENT",
        "REV",
        "TIME (UTC)",
        "REPLICA",
        w0 = widths[0],
        w1 = widths[1],
        w2 = widths[2]
    );
    for e in &report.entries {
        let _ = writeln!(
            out,
            "  {:<w0$}  {:<w1$}  {:<w2$}  {}",
            e.revision,
            e.at.as_deref().unwrap_or("-"),
            e.replica.as_deref().unwrap_or("-"),
            e.what,
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(revision: i64, key: &str, value: &str, create_revision: i64) -> KeyChange {
        KeyChange {
            revision,
            key: key.to_owned(),
            put: true,
            value: value.as_bytes().to_vec(),
            create_revision,
            lease: 1,
        }
    }

    fn delete(revision: i64, key: &str, value: &str) -> KeyChange {
        KeyChange {
            revision,
            key: key.to_owned(),
            put: false,
            value: value.as_bytes().to_vec(),
            create_revision: 0,
            lease: 0,
        }
    }

    fn member(value: &str, transitions: &[(&str, &str, &str)]) -> String {
        let transitions: Vec<serde_json::Value> = transitions
            .iter()
            .map(|(from, to, at)| {
                serde_json::json!({"from": from, "to": to, "at": at, "why": "because"})
            })
            .collect();
        serde_json::json!({
            "value": value, "role": "x", "role_reason": "r", "node_mode": "standby",
            "readiness": "ready", "version": "0.1.0", "host": format!("host-{value}"),
            "lease": "1", "refresh_seconds": 30, "written_at": "2026-01-01T00:00:00Z",
            "recent_transitions": transitions,
        })
        .to_string()
    }

    #[test]
    fn a_handover_an_exclusion_and_a_crash_read_back() {
        let k = "/iotex";
        let changes = vec![
            put(2, "/iotex/a1", "a", 2),
            put(
                3,
                "/iotex.elector/members/a",
                &member("a", &[("candidate", "leader", "2026-01-01T00:00:01Z")]),
                3,
            ),
            put(4, "/iotex/b2", "b", 4),
            // The same transition again in a later record: said once.
            put(
                5,
                "/iotex.elector/members/a",
                &member(
                    "a",
                    &[
                        ("candidate", "leader", "2026-01-01T00:00:01Z"),
                        ("leader", "active", "2026-01-01T00:00:02Z"),
                    ],
                ),
                3,
            ),
            put(6, "/iotex.elector/handover-request", r#"{"to":"b"}"#, 6),
            // The resignation: record and deletion in one transaction.
            put(
                7,
                "/iotex.elector/handover-record",
                r#"{"from_lease":161,"from_create_revision":2,"value":"a"}"#,
                7,
            ),
            delete(7, "/iotex/a1", "a"),
            delete(7, "/iotex.elector/handover-request", r#"{"to":"b"}"#),
            put(
                8,
                "/iotex.elector/excluded/a",
                r#"{"by":"root@ops","at":"2026-01-01T00:01:00Z","reason":"upgrade"}"#,
                8,
            ),
            delete(9, "/iotex.elector/excluded/a", ""),
            put(10, "/iotex/c3", "c", 10),
            // b's lease expired: no record.
            delete(11, "/iotex/b2", "b"),
            // Another election sharing the prefix is not ours.
            put(12, "/iotex2/d4", "d", 12),
        ];
        let got = entries(k, &changes);
        let lines: Vec<(i64, &str, Option<&str>)> = got
            .iter()
            .map(|e| (e.revision, e.kind, e.replica.as_deref()))
            .collect();
        assert_eq!(
            lines,
            [
                (2, "leader", Some("a")),
                (3, "elector", Some("a")),
                (3, "role", Some("a")),
                (5, "role", Some("a")),
                (6, "handover-request", None),
                (7, "handover", Some("a")),
                (7, "leader", Some("b")),
                (7, "handover-request", None),
                (8, "exclusion", Some("a")),
                (9, "exclusion", Some("a")),
                (11, "leader", Some("c")),
            ],
            "{got:#?}"
        );
        let what = |rev: i64, kind: &str| {
            got.iter()
                .find(|e| e.revision == rev && e.kind == kind)
                .map(|e| e.what.clone())
                .unwrap_or_default()
        };
        assert_eq!(
            what(7, "leader"),
            "b leads (/iotex/b2), after a: a clean handover"
        );
        assert!(
            what(11, "leader").contains("after b: no handover record"),
            "{got:#?}"
        );
        assert_eq!(what(5, "role"), "leader -> active: because");
        assert_eq!(what(8, "exclusion"), "excluded by root@ops: upgrade");
        assert_eq!(
            got.iter()
                .find(|e| e.revision == 8)
                .and_then(|e| e.at.clone())
                .as_deref(),
            Some("2026-01-01T00:01:00Z")
        );
        assert_eq!(what(6, "handover-request"), "handover requested, to b");
        assert!(what(3, "elector").contains("registered: elector 0.1.0 on host-a"));
    }
}

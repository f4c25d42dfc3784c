//! Waiting for the registry records an operator command changed: `elector handover` and
//! `elector exclude` return only once the replicas they moved have rewritten their records
//! ([`wait_for_records`]), so that `elector status` right after shows the new roles, not the
//! records from before.

use super::Connection;
use elector::registry::MemberRecord;
use std::time::Duration;
use tokio::time::Instant;

/// How often the records are re-read while waiting.
const RECORDS_POLL: Duration = Duration::from_millis(200);

/// What a record must say once the command's change reached its elector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// It leads now: role `leader` or `active`.
    Leads,
    /// It left the lead: a role that does not lead, its node not active.
    LeftTheLead,
    /// It reads itself excluded and does not lead, its node not active.
    Excluded,
}

/// Roles of an elector that holds the lead or is giving it away.
const LEADING: [&str; 4] = ["leader", "active", "stepping-down", "resigning"];

/// Whether `record`, written at `revision`, says what `expect` asks, written after `after`.
pub(crate) fn holds(record: &MemberRecord, revision: i64, after: i64, expect: Expect) -> bool {
    if revision <= after {
        return false;
    }
    let node_not_active = record.node_mode != "active" || record.node_error.is_some();
    match expect {
        Expect::Leads => matches!(record.role.as_str(), "leader" | "active"),
        Expect::LeftTheLead => !LEADING.contains(&record.role.as_str()) && node_not_active,
        Expect::Excluded => {
            record.excluded && !LEADING.contains(&record.role.as_str()) && node_not_active
        }
    }
}

/// One record as the summary line says it: `a standby (node standby)`.
fn said(record: &MemberRecord) -> String {
    format!(
        "{} {} (node {})",
        record.value, record.role, record.node_mode
    )
}

/// Waits until the record of every `(value, expect)` was written after revision `after` and
/// says what `expect` asks, re-reading every [`RECORDS_POLL`] until `deadline`. `Ok` with a
/// line saying what the records say now; `Err` with what is missing when the deadline passed.
pub(crate) async fn wait_for_records(
    connection: &Connection,
    wanted: &[(String, Expect)],
    after: i64,
    deadline: Instant,
) -> Result<String, String> {
    let election = &connection.election;
    let mut missing: Vec<String> = wanted.iter().map(|(v, _)| v.clone()).collect();
    loop {
        if let Ok(entries) = election.list_members().await {
            let mut lines = Vec::new();
            missing.clear();
            for (value, expect) in wanted {
                let found = entries.iter().find_map(|entry| {
                    let record = serde_json::from_slice::<MemberRecord>(&entry.value).ok()?;
                    (record.value == *value).then_some((record, entry.revision))
                });
                match found {
                    Some((record, revision)) if holds(&record, revision, after, *expect) => {
                        lines.push(said(&record));
                    }
                    Some((record, _)) => missing.push(format!("{} (still {})", said(&record), {
                        match expect {
                            Expect::Leads => "not leading",
                            Expect::LeftTheLead => "leading or its node active",
                            Expect::Excluded => "not reading itself excluded",
                        }
                    })),
                    None => missing.push(format!("{value} (no record)")),
                }
            }
            if missing.is_empty() {
                return Ok(format!("registry records rewritten: {}", lines.join(", ")));
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(format!(
                "the registry records were not rewritten in time: {}; `elector status` asks \
                 each elector's /status, which is current",
                missing.join(", ")
            ));
        }
        tokio::time::sleep(RECORDS_POLL.min(deadline - now)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(role: &str, mode: &str, excluded: bool) -> MemberRecord {
        serde_json::from_value(serde_json::json!({
            "value": "a", "role": role, "role_reason": "r", "node_mode": mode,
            "readiness": "ready", "version": "0.1.0", "host": "h", "lease": "1",
            "refresh_seconds": 30, "written_at": "2026-01-01T00:00:00Z", "excluded": excluded,
        }))
        .expect("a record")
    }

    #[test]
    fn a_record_counts_only_when_written_after_the_change_and_saying_it() {
        // Written before the change: whatever it says, it is the old one.
        assert!(!holds(
            &record("candidate", "standby", false),
            10,
            10,
            Expect::LeftTheLead
        ));
        assert!(holds(
            &record("candidate", "standby", false),
            11,
            10,
            Expect::LeftTheLead
        ));
        assert!(holds(
            &record("standby", "standby", false),
            11,
            10,
            Expect::LeftTheLead
        ));
        // The old leader's record right after the handover: not yet.
        assert!(!holds(
            &record("stepping-down", "active", false),
            11,
            10,
            Expect::LeftTheLead
        ));
        assert!(!holds(
            &record("resigning", "standby", false),
            11,
            10,
            Expect::LeftTheLead
        ));
        assert!(!holds(
            &record("candidate", "active", false),
            11,
            10,
            Expect::LeftTheLead
        ));
        // A node that does not answer is not active for this purpose: its elector says so.
        let mut unreadable = record("standby", "active", false);
        unreadable.node_error = Some("refused".into());
        assert!(holds(&unreadable, 11, 10, Expect::LeftTheLead));
        // The new leader: leader (waiting out the last slot) or active.
        assert!(holds(
            &record("leader", "standby", false),
            11,
            10,
            Expect::Leads
        ));
        assert!(holds(
            &record("active", "active", false),
            11,
            10,
            Expect::Leads
        ));
        assert!(!holds(
            &record("candidate", "standby", false),
            11,
            10,
            Expect::Leads
        ));
        // Excluded: it must read itself excluded.
        assert!(!holds(
            &record("standby", "standby", false),
            11,
            10,
            Expect::Excluded
        ));
        assert!(holds(
            &record("standby", "standby", true),
            11,
            10,
            Expect::Excluded
        ));
        assert!(!holds(
            &record("stepping-down", "active", true),
            11,
            10,
            Expect::Excluded
        ));
    }
}

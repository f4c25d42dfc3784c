//! `elector status`: the election as etcd holds it, as a table or JSON. Also the report
//! `elector check` judges.

use super::{Connection, connect, fail};
use elector::cli::{EtcdArgs, StatusArgs};
use elector_core::Candidate;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use tokio::time::timeout;

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

/// Reads the election and every candidate's lease.
pub async fn status_report(args: &EtcdArgs) -> Result<StatusReport, String> {
    let connection = connect(args).await?;
    read_report(&connection, args.key()).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fixtures::candidate;

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

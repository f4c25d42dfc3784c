//! The text form of `elector status`: a header line, the table, one line per flag with its
//! detail (the STUCK reason among them), the exclusions, the handover request and record,
//! and the verdict with its exit status.

use super::judge::{Flag, FlagKind, ReplicaReport, State, StatusReport};
use std::fmt::Write as _;

/// An age in the table: seconds up to two minutes, then minutes, then hours.
pub fn short_age(seconds: u64) -> String {
    match seconds {
        0..120 => format!("{seconds}s"),
        120..7200 => format!("{}m", seconds / 60),
        _ => format!("{}h", seconds / 3600),
    }
}

/// A flag as the table shows it: `NOT-CAMPAIGNING(excluded)`; the details follow below the
/// table, except the short reasons of `NOT-CAMPAIGNING`.
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
const COLUMNS: [&str; 11] = [
    "#", "VALUE", "HOST", "ROLE", "NODE", "READY", "EXCLUDED", "SEEN", "LEASE", "TTL LEFT", "FLAGS",
];

fn row_cells(row: &ReplicaReport) -> [String; 11] {
    let candidate = row.candidate.as_ref();
    let ttl = match candidate.map(|c| (c.ttl_seconds, c.granted_ttl_seconds)) {
        None => "-".to_string(),
        Some((Some(t), _)) if t < 0 => "expired".to_string(),
        Some((Some(t), Some(g))) => format!("{t}s/{g}s"),
        Some((Some(t), None)) => format!("{t}s"),
        Some((None, _)) => "?".to_string(),
    };
    // The age says what it is: the age of the read that gave the mode.
    let node = match (&row.node_mode, row.node_mode_age_seconds) {
        (Some(mode), Some(age)) if mode == "unknown" => {
            format!("unknown (last read {} ago)", short_age(age))
        }
        (Some(mode), Some(age)) => format!("{mode} (read {} ago)", short_age(age)),
        (Some(mode), None) => mode.clone(),
        (None, _) => "?".to_string(),
    };
    let seen = match (row.seen, row.record_age_seconds) {
        ("live", _) => "live".to_owned(),
        ("record", Some(age)) => format!("record, {} old", short_age(age)),
        ("record", None) => "record".to_owned(),
        _ => "-".to_owned(),
    };
    let mut role = row.role.clone().unwrap_or_else(|| "?".to_string());
    if row.leader {
        role.push_str(" (leads)");
    }
    [
        row.position.map_or("-".to_string(), |p| p.to_string()),
        row.value.clone(),
        row.host.clone().unwrap_or_else(|| "?".to_owned()),
        role,
        node,
        row.readiness.clone().unwrap_or_else(|| "?".to_string()),
        if row.excluded { "yes" } else { "no" }.to_string(),
        seen,
        candidate.map_or("-".to_string(), |c| c.lease.clone()),
        ttl,
        row.flags
            .iter()
            .map(flag_cell)
            .collect::<Vec<_>>()
            .join(" "),
    ]
}

/// Warnings about values held by two candidates.
pub fn duplicate_warnings(report: &StatusReport) -> Vec<String> {
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

/// The verdict line: the state and its exit status.
pub fn verdict(report: &StatusReport) -> &'static str {
    match report.state {
        State::Healthy => "state: healthy (exit 0)",
        State::Maintenance => {
            "state: planned maintenance (exit 4): only exclusions or stopped electors are flagged"
        }
        State::Attention => {
            "state: needs attention (exit 1): see the flags above (docs/operations.md says what \
             to do about each)"
        }
    }
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
        let rows: Vec<[String; 11]> = report.replicas.iter().map(row_cells).collect();
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
    for row in &report.replicas {
        for flag in &row.flags {
            if let Some(detail) = &flag.detail {
                let _ = writeln!(out, "{} {}: {detail}", row.value, flag.flag.as_str());
            }
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
    for exclusion in &report.exclusions {
        let _ = writeln!(
            out,
            "excluded: {} by {} since {}{}{}",
            exclusion.value,
            exclusion.by.as_deref().unwrap_or("?"),
            exclusion.at.as_deref().unwrap_or("?"),
            match exclusion.reason.as_deref() {
                Some("") | None => String::new(),
                Some(reason) => format!(": {reason}"),
            },
            if exclusion.known {
                ""
            } else {
                " (no replica has this value)"
            }
        );
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
    let _ = writeln!(out, "{}", verdict(report));
    out
}

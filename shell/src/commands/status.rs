//! `elector status`: the whole replica set, as a table or JSON: every candidate in election
//! order, then every registered replica that does not campaign, each cross-checked against its
//! registry record and, where it answers, its elector's own `/status` (whose URL the record
//! holds), with flags for what is wrong ([`judge::replica_set`]), the exclusions, and a verdict
//! that separates a healthy set, planned maintenance and a set that needs attention. `--watch`
//! shows it again every interval. Also the report `elector check` judges.
//!
//! Exit status: 0 healthy, [`EXIT_ATTENTION`] when a flag needs someone, [`EXIT_MAINTENANCE`]
//! when only planned work is flagged (an exclusion, an elector stopped cleanly), [`EXIT_ETCD`]
//! when etcd cannot be read, 2 for bad flags (clap).
//!
//! In files: this one reads etcd and the electors' `/status` and runs the command;
//! [`judge`] decides the flags (pure, tested in `status/tests.rs`); [`render`] writes the
//! table.

mod judge;
mod render;

pub use judge::{
    CandidateReport, Duplicate, ExclusionReport, Live, LiveStatus, RecordReport, RequestReport,
    State, StatusReport, replica_set, state,
};
pub use render::{duplicate_warnings, render_status};

use super::{Connection, EXIT_FAILED, Failure, Outcome, connect};
use elector::cli::{EtcdArgs, StatusArgs};
use elector::etcd::ExclusionJson;
use elector::node::{HttpGet, ReqwestTransport};
use elector::registry::MemberRecord;
use elector_core::Candidate;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, SystemTime};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};

/// Exit status when a flag needs someone.
pub const EXIT_ATTENTION: u8 = EXIT_FAILED;
/// Exit status when etcd could not be read (unreachable, timed out, refused): nothing is
/// known about the set, which is neither healthy nor flagged.
pub const EXIT_ETCD: u8 = 3;
/// Exit status when only planned work is flagged: an excluded replica, an elector stopped
/// cleanly.
pub const EXIT_MAINTENANCE: u8 = 4;

/// Bound on asking one elector's `/status`: they are asked at once, so this bounds them all.
const LIVE_TIMEOUT: Duration = Duration::from_secs(1);

/// The exit status of a report.
pub fn exit_code(report: &StatusReport) -> u8 {
    match report.state {
        State::Healthy => 0,
        State::Maintenance => EXIT_MAINTENANCE,
        State::Attention => EXIT_ATTENTION,
    }
}

/// Runs `elector status`; returns the exit code.
pub async fn run(args: StatusArgs) -> Outcome {
    match args.watch {
        None => match status_report(&args.etcd, !args.no_live).await {
            Ok(report) => Ok(show(&report, args.json)),
            Err(line) => Err(Failure {
                line: format!("cannot read the election: {line}"),
                code: EXIT_ETCD,
            }),
        },
        Some(interval) => Ok(watch(&args, interval, tokio::signal::ctrl_c()).await),
    }
}

/// Prints `report` as the flags ask; returns its exit status.
fn show(report: &StatusReport, json: bool) -> u8 {
    if json {
        match serde_json::to_string_pretty(report) {
            Ok(text) => elector::outln!("{text}"),
            Err(e) => {
                elector::errln!("elector: cannot render JSON: {e}");
                return EXIT_FAILED;
            }
        }
        for warning in duplicate_warnings(report) {
            elector::errln!("warning: {warning}");
        }
    } else {
        elector::out!("{}", render_status(report));
    }
    exit_code(report)
}

/// `--watch`: the report again every `interval` until Ctrl-C or `--watch-for`; a failed read
/// is said and retried at the next interval. On a terminal each report replaces the last one;
/// otherwise they follow each other (JSON: one object per line). Returns the last one's exit
/// status.
async fn watch(
    args: &StatusArgs,
    interval: Duration,
    interrupted: impl std::future::Future<Output = std::io::Result<()>>,
) -> u8 {
    tokio::pin!(interrupted);
    let deadline = Instant::now() + args.watch_for;
    let terminal = std::io::stdout().is_terminal() && !args.json;
    let mut connection: Option<Connection> = None;
    let mut code;
    loop {
        let read = async {
            if connection.is_none() {
                connection = Some(connect(&args.etcd).await?);
            }
            match &connection {
                Some(c) => read_report(c, args.etcd.key(), !args.no_live).await,
                None => Err("not connected".to_owned()),
            }
        };
        let stamp = humantime::format_rfc3339_seconds(SystemTime::now());
        match read.await {
            Ok(report) => {
                if terminal {
                    elector::out!("\x1b[H\x1b[2J");
                }
                if args.json {
                    match serde_json::to_string(&report) {
                        Ok(line) => elector::outln!("{line}"),
                        Err(e) => elector::errln!("elector: cannot render JSON: {e}"),
                    }
                    code = exit_code(&report);
                } else {
                    elector::outln!(
                        "{stamp} (every {}; Ctrl-C ends)",
                        humantime::format_duration(interval)
                    );
                    code = show(&report, false);
                    elector::outln!();
                }
            }
            Err(line) => {
                connection = None;
                code = EXIT_ETCD;
                elector::errln!("{stamp} elector: cannot read the election: {line}");
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return code;
        }
        tokio::select! {
            _ = &mut interrupted => return code,
            () = tokio::time::sleep(interval.min(deadline - now)) => {}
        }
    }
}

/// Reads the election, every candidate's lease, the registry, the exclusions and (with
/// `ask_live`) every registered elector's `/status`.
pub async fn status_report(args: &EtcdArgs, ask_live: bool) -> Result<StatusReport, String> {
    let connection = connect(args).await?;
    read_report(&connection, args.key(), ask_live).await
}

/// Reads the election at `key`, every candidate's lease, the registry records and the
/// exclusions over `connection` (reads only), and with `ask_live` every registered elector's
/// `/status` at the URL its record names (GET, bounded by [`LIVE_TIMEOUT`], all at once).
pub(crate) async fn read_report(
    connection: &Connection,
    key: &str,
    ask_live: bool,
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
    let exclusions: Vec<ExclusionReport> = election
        .list_excluded()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|entry| {
            let stored = serde_json::from_slice::<ExclusionJson>(&entry.value).ok();
            ExclusionReport::new(entry.name, stored)
        })
        .collect();
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
    let live = if ask_live {
        ask_electors(&records, key).await
    } else {
        BTreeMap::new()
    };
    let now = SystemTime::now();
    let (replicas, exclusions, flags) = replica_set(&candidates, &records, &live, exclusions, now);
    let state = state(
        flags
            .iter()
            .chain(replicas.iter().flat_map(|r| r.flags.iter())),
    );
    Ok(StatusReport {
        key: key.to_string(),
        revision: observation.revision,
        leader: observation.candidates.first().map(|c| c.value.clone()),
        healthy: state == State::Healthy,
        state,
        flags,
        replicas,
        duplicates: duplicates(&observation.candidates),
        candidates,
        exclusions,
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

/// Asks every registered elector's `/status` at once; by value. Only an answer from that very
/// replica of this election counts: a URL on 127.0.0.1 reaches this host's elector, not the
/// record's, when `elector status` runs elsewhere.
async fn ask_electors(records: &[MemberRecord], key: &str) -> BTreeMap<String, Live> {
    let transport = match ReqwestTransport::new() {
        Ok(transport) => transport,
        Err(why) => {
            return records
                .iter()
                .map(|r| (r.value.clone(), Live::Failed(why.clone())))
                .collect();
        }
    };
    let mut asks = JoinSet::new();
    for record in records {
        let Some(url) = record.status_url.clone() else {
            continue;
        };
        let transport = transport.clone();
        let (value, key) = (record.value.clone(), key.to_owned());
        asks.spawn(async move {
            let live = match transport.get(&url, LIVE_TIMEOUT).await {
                Ok(answer) => judge_answer(&value, &key, &url, answer.status, &answer.body),
                Err(why) => Live::Failed(why),
            };
            (value, live)
        });
    }
    let mut live = BTreeMap::new();
    // Every ask is bounded by LIVE_TIMEOUT; this bounds the lot once more.
    let all = async {
        while let Some(answered) = asks.join_next().await {
            if let Ok((value, answer)) = answered {
                live.insert(value, answer);
            }
        }
    };
    let _ = timeout(LIVE_TIMEOUT * 2, all).await;
    live
}

/// What one `/status` answer is worth for replica `value` of election `key`.
pub fn judge_answer(value: &str, key: &str, url: &str, status: u16, body: &str) -> Live {
    if status != 200 {
        let said = body.trim();
        return Live::Failed(format!(
            "{url} answered HTTP {status}{}",
            if said.is_empty() || said.len() > 80 {
                String::new()
            } else {
                format!(" ({said})")
            }
        ));
    }
    match serde_json::from_str::<LiveStatus>(body) {
        Ok(live) if live.value == value && live.key == key => Live::Answered(Box::new(live)),
        Ok(live) => Live::Failed(format!(
            "{url} answers for replica {:?} of {}, not for this one: the URL in its record does \
             not reach it from here (a status address on 127.0.0.1 answers only on its own host)",
            live.value, live.key
        )),
        Err(e) => Live::Failed(format!("{url} answered something else than /status ({e})")),
    }
}

/// The lease's TTL left and granted TTL, or `None`s if etcd did not say (bounded call).
async fn lease_ttl(connection: &Connection, lease: i64) -> (Option<i64>, Option<i64>) {
    match connection.election.lease_time_to_live(lease).await {
        Ok((ttl, granted)) => (Some(ttl), (granted > 0).then_some(granted)),
        Err(_) => (None, None),
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

#[cfg(test)]
mod tests;

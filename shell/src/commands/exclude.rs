//! `elector exclude`: takes a replica out of the election for maintenance (rule
//! `excluded_replica` in the core) and waits until etcd shows it left.

use super::records::{Expect, wait_for_records};
use super::{Connection, Outcome, connect};
use elector::cli::{ExcludeArgs, host_name};
use elector::etcd::{Excluded, ExclusionJson};
use elector_core::{CandidateId, Observation};
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// How often `elector exclude` re-reads the election while it waits.
const EXCLUDE_POLL: Duration = Duration::from_millis(100);

/// Runs `elector exclude`.
pub async fn run(args: ExcludeArgs) -> Outcome {
    let connection = connect(&args.etcd).await?;
    let (first, registered) = before_storing(&connection, &args)
        .await
        // Nothing was stored.
        .map_err(|line| format!("exclude: {line}"))?;
    let interrupted = tokio::signal::ctrl_c();
    let line = run_exclude(&connection, &args, first, registered, interrupted)
        .await
        .map_err(|line| {
            let lift = format!("`elector include {}` lifts it", args.value);
            format!("exclude: {line}; the exclusion stays ({lift})")
        })?;
    elector::outln!("{line}");
    Ok(0)
}

/// What is read before anything is stored: the election and the registered values; refuses a
/// value no replica has, unless `--force`.
async fn before_storing(
    connection: &Connection,
    args: &ExcludeArgs,
) -> Result<(Observation, Vec<String>), String> {
    let election = &connection.election;
    let first = election.list().await.map_err(|e| e.to_string())?;
    let registered: Vec<String> = match election.list_members().await {
        Ok(members) => members.into_iter().map(|m| m.name).collect(),
        Err(e) if args.force => {
            elector::errln!(
                "elector exclude: warning: cannot read the member registry ({e}); excluding \
                 anyway (--force)"
            );
            Vec::new()
        }
        Err(e) => {
            return Err(format!(
                "cannot read the member registry ({e}), which tells whether a replica has \
                 this value; --force excludes it anyway"
            ));
        }
    };
    if !args.force {
        known_value(&args.value, &first, &registered)?;
    }
    Ok((first, registered))
}

/// Who runs the command, for the record: `user@host`.
fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    format!("{user}@{}", host_name())
}

/// The replica's candidacy when the command starts: the leader's key (a clean handover is
/// judged against it), or whether it is a candidate at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Leads(CandidateId),
    Candidate,
    Absent,
}

fn start(observation: &Observation, value: &str) -> Start {
    match observation.candidates.iter().position(|c| c.value == value) {
        Some(0) => Start::Leads(observation.candidates[0].id),
        Some(_) => Start::Candidate,
        None => Start::Absent,
    }
}

/// A warning when excluding `value` leaves no candidate to lead.
fn alone_warning(observation: &Observation, value: &str) -> Option<String> {
    let others = observation.candidates.iter().any(|c| c.value != value);
    (!others).then(|| {
        format!(
            "warning: no candidate other than {value}: once it has left, NOBODY LEADS and no \
             node signs until another replica is ready or {value} is included again"
        )
    })
}

/// How the wait ended, or not yet.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    Waiting,
    Done(String),
    Failed(String),
}

/// Judges one read against the start, from etcd facts only: no key of `value` left; for a
/// leader, a handover record naming its term.
fn progress(start: Start, value: &str, observation: &Observation) -> Progress {
    if observation.candidates.iter().any(|c| c.value == value) {
        return Progress::Waiting;
    }
    let leader = observation.candidates.first().map(|c| c.value.as_str());
    match start {
        Start::Leads(old) => {
            let clean = observation
                .handover_record
                .as_ref()
                .is_some_and(|r| r.from == old);
            match (clean, leader) {
                (true, Some(new)) => Progress::Done(format!(
                    "{value} handed over cleanly: its node was confirmed standby and it resigned \
                     with a handover record; {new} leads now and activates without the \
                     activation delay"
                )),
                (true, None) => Progress::Done(format!(
                    "{value} handed over cleanly (node confirmed standby, handover record \
                     written); nobody leads now: no other candidate"
                )),
                (false, new) => Progress::Failed(format!(
                    "{value} left the election without a handover record (it crashed, lost its \
                     lease, or its node was proven standby only by the fence); {}",
                    new.map_or("nobody leads now".to_owned(), |new| format!(
                        "{new} leads and activates after the activation delay"
                    ))
                )),
            }
        }
        Start::Candidate | Start::Absent => Progress::Done(format!(
            "{value} withdrew its candidate key; {}",
            leader.map_or("nobody leads".to_owned(), |l| format!("{l} leads"))
        )),
    }
}

async fn run_exclude(
    connection: &Connection,
    args: &ExcludeArgs,
    first: Observation,
    registered: Vec<String>,
    interrupted: impl std::future::Future<Output = std::io::Result<()>>,
) -> Result<String, String> {
    tokio::pin!(interrupted);
    let election = &connection.election;
    let value = args.value.as_str();
    let exclusion = ExclusionJson {
        by: operator(),
        at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        reason: args.reason.clone(),
    };
    let stored = election
        .exclude(value, &exclusion)
        .await
        .map_err(|e| e.to_string())?;
    let new_exclusion = stored == Excluded::New;
    let mut said = match stored {
        Excluded::New => format!("{value} excluded"),
        Excluded::Already(Some(old)) => format!(
            "{value} was excluded already (by {} at {}{}); kept as it was",
            old.by,
            old.at,
            if old.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", old.reason)
            }
        ),
        Excluded::Already(None) => {
            format!("{value} was excluded already (the stored record is unreadable); kept")
        }
    };
    let start = start(&first, value);
    match start {
        Start::Leads(_) => said.push_str(&format!(
            ": it leads, and hands over cleanly first{}",
            if args.no_wait { "" } else { "; waiting" }
        )),
        Start::Candidate => said.push_str(": it is a standby candidate and withdraws its key"),
        Start::Absent => said.push_str(
            ": it is not a candidate now (elector stopped, node unready, or a typo), so it does \
             not campaign",
        ),
    }
    elector::outln!("{said}");
    if let Some(warning) = alone_warning(&first, value) {
        elector::errln!("elector: {warning}");
    }
    if args.no_wait {
        return Ok(format!("{value} is excluded"));
    }
    let started = Instant::now();
    let deadline = started + args.timeout;
    if start == Start::Absent {
        let wanted = records_to_wait_for(value, None, &registered);
        // An exclusion stored before: its record may say so from before, too.
        let after = if new_exclusion { first.revision } else { 0 };
        let line = format!("{value} is excluded");
        return Ok(records_rewritten(connection, &wanted, after, line, started).await);
    }
    let mut last_error: Option<String>;
    // The last revision at which the replica still held a key: records written after it
    // describe the exclusion.
    let mut before = first.revision;
    loop {
        match election.list().await {
            Ok(observation) => {
                last_error = None;
                match progress(start, value, &observation) {
                    Progress::Waiting => before = observation.revision,
                    Progress::Done(line) => {
                        let new_leader = match start {
                            Start::Leads(_) => {
                                observation.candidates.first().map(|c| c.value.as_str())
                            }
                            _ => None,
                        };
                        let wanted = records_to_wait_for(value, new_leader, &registered);
                        return Ok(
                            records_rewritten(connection, &wanted, before, line, started).await,
                        );
                    }
                    Progress::Failed(line) => return Err(line),
                }
            }
            Err(e) => last_error = Some(e.to_string()),
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::select! {
            _ = &mut interrupted => return Err("interrupted while waiting".into()),
            () = tokio::time::sleep(EXCLUDE_POLL) => {}
        }
    }
    let mut reason = format!(
        "{value} still has a candidate key after {}: its node may not be proven standby (it \
         then keeps the lead and its log and /status say STUCK), or it is a Go elector or \
         etcdctl candidate, which ignore exclusions",
        humantime::format_duration(args.timeout)
    );
    if let Some(error) = last_error {
        let _ = write!(reason, "; last etcd error: {error}");
    }
    Err(reason)
}

/// Refuses to exclude a value no replica has (no registry record, no candidate key): most
/// likely a typo, which would exclude nothing and stay stored for good. Names the values that
/// exist, and the closest.
fn known_value(
    value: &str,
    observation: &Observation,
    registered: &[String],
) -> Result<(), String> {
    let mut known: Vec<&str> = registered
        .iter()
        .map(String::as_str)
        .chain(observation.candidates.iter().map(|c| c.value.as_str()))
        .collect();
    known.sort_unstable();
    known.dedup();
    if known.contains(&value) {
        return Ok(());
    }
    let mut near: Vec<&str> = known
        .iter()
        .copied()
        .filter(|k| distance(k, value) <= 2)
        .collect();
    near.sort_by_key(|k| distance(k, value));
    Err(format!(
        "no replica has the value {value:?} (no registry record, no candidate key){}: an \
         exclusion of it would exclude nothing{}; give --force to store it anyway (for a \
         replica that has not started yet)",
        match near.first() {
            Some(near) => format!("; did you mean {near:?}?"),
            None => String::new(),
        },
        if known.is_empty() {
            String::new()
        } else {
            format!(" (replicas: {})", known.join(", "))
        }
    ))
}

/// Edit distance (insertions, deletions, substitutions) between two short values.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The records an exclusion changes: the excluded replica's (it reads itself excluded) and,
/// when it led, the new leader's; only those with a record.
fn records_to_wait_for(
    value: &str,
    new_leader: Option<&str>,
    registered: &[String],
) -> Vec<(String, Expect)> {
    let mut wanted = vec![(value.to_owned(), Expect::Excluded)];
    if let Some(new) = new_leader {
        wanted.push((new.to_owned(), Expect::Leads));
    }
    wanted.retain(|(v, _)| registered.iter().any(|r| r == v));
    wanted
}

/// `line`, once the records in `wanted` were rewritten after `before` (bounded by
/// [`super::handover::RECORDS_WAIT`]); a record that lags is said on stderr.
async fn records_rewritten(
    connection: &Connection,
    wanted: &[(String, Expect)],
    before: i64,
    line: String,
    started: Instant,
) -> String {
    let line = format!("{line} (after {:.2}s)", started.elapsed().as_secs_f64());
    if wanted.is_empty() {
        return line;
    }
    let deadline = Instant::now() + super::handover::RECORDS_WAIT;
    match wait_for_records(connection, wanted, before, deadline).await {
        Ok(records) => format!("{line}; {records}"),
        Err(lag) => {
            elector::errln!("elector exclude: warning: {lag}");
            line
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fixtures::{candidate, observation};
    use elector_core::HandoverRecord;

    #[test]
    fn where_the_replica_stands_and_the_lonely_warning() {
        let a = candidate(1, 10, "a");
        let b = candidate(2, 11, "b");
        let both = observation(vec![a.clone(), b.clone()]);
        assert_eq!(start(&both, "a"), Start::Leads(a.id));
        assert_eq!(start(&both, "b"), Start::Candidate);
        assert_eq!(start(&both, "c"), Start::Absent);
        assert_eq!(alone_warning(&both, "a"), None);
        let alone = observation(vec![a.clone()]);
        let warning = alone_warning(&alone, "a").expect("a warning");
        assert!(warning.contains("NOBODY LEADS"), "{warning}");
        assert!(alone_warning(&observation(vec![]), "a").is_some());
    }

    #[test]
    fn a_leader_is_done_only_when_gone_with_its_record() {
        let a = candidate(1, 10, "a");
        let b = candidate(2, 11, "b");
        let started = Start::Leads(a.id);
        let waiting = observation(vec![a.clone(), b.clone()]);
        assert_eq!(progress(started, "a", &waiting), Progress::Waiting);
        let mut clean = observation(vec![b.clone()]);
        clean.handover_record = Some(HandoverRecord {
            from: a.id,
            value: "a".into(),
            key_withdrawn: false,
        });
        match progress(started, "a", &clean) {
            Progress::Done(line) => assert!(line.contains("b leads now"), "{line}"),
            other => panic!("{other:?}"),
        }
        let mut alone = observation(vec![]);
        alone.handover_record = clean.handover_record.clone();
        match progress(started, "a", &alone) {
            Progress::Done(line) => assert!(line.contains("nobody leads"), "{line}"),
            other => panic!("{other:?}"),
        }
        let crashed = observation(vec![b.clone()]);
        match progress(started, "a", &crashed) {
            Progress::Failed(line) => assert!(line.contains("without a handover record")),
            other => panic!("{other:?}"),
        }
        // A record of another term does not count.
        let mut stale = observation(vec![b.clone()]);
        stale.handover_record = Some(HandoverRecord {
            from: b.id,
            value: "b".into(),
            key_withdrawn: false,
        });
        assert!(matches!(
            progress(started, "a", &stale),
            Progress::Failed(_)
        ));
    }

    /// `elector exclude nod2`: no replica has it; refused with the closest value.
    #[test]
    fn a_value_no_replica_has_is_refused_with_the_nearest() {
        let running = observation(vec![candidate(1, 10, "node1"), candidate(2, 11, "node2")]);
        let registered = vec!["node1".to_owned(), "node2".to_owned(), "node3".to_owned()];
        assert!(known_value("node2", &running, &registered).is_ok());
        // Registered but not campaigning (stopped, unready): known.
        assert!(known_value("node3", &running, &registered).is_ok());
        // A Go elector's value: a candidate without a record, known too.
        let with_go = observation(vec![candidate(1, 10, "default")]);
        assert!(known_value("default", &with_go, &[]).is_ok());
        let e = known_value("nod2", &running, &registered).unwrap_err();
        assert!(e.contains("no replica has the value \"nod2\""), "{e}");
        assert!(e.contains("did you mean \"node2\"?"), "{e}");
        assert!(e.contains("(replicas: node1, node2, node3)"), "{e}");
        assert!(e.contains("--force"), "{e}");
        let e = known_value("replica-x", &running, &registered).unwrap_err();
        assert!(!e.contains("did you mean"), "{e}");
        assert_eq!(distance("nod2", "node2"), 1);
        assert_eq!(distance("", "ab"), 2);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn an_exclusion_waits_for_the_records_of_the_replicas_it_moves() {
        let registered = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(
            records_to_wait_for("a", Some("b"), &registered),
            [
                ("a".to_owned(), Expect::Excluded),
                ("b".to_owned(), Expect::Leads)
            ]
        );
        // A Go elector taking over has no record to wait for; nor has a forced unknown value.
        assert_eq!(
            records_to_wait_for("a", Some("go"), &registered),
            [("a".to_owned(), Expect::Excluded)]
        );
        assert!(records_to_wait_for("typo", None, &registered).is_empty());
    }

    #[test]
    fn a_standby_is_done_once_its_key_is_gone() {
        let a = candidate(1, 10, "a");
        let b = candidate(2, 11, "b");
        let waiting = observation(vec![a.clone(), b.clone()]);
        assert_eq!(progress(Start::Candidate, "b", &waiting), Progress::Waiting);
        match progress(Start::Candidate, "b", &observation(vec![a])) {
            Progress::Done(line) => assert!(line.contains("b withdrew"), "{line}"),
            other => panic!("{other:?}"),
        }
    }
}

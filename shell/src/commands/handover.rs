//! `elector handover`: asks the leader to hand over cleanly and waits until etcd shows it did.

use super::records::{Expect, wait_for_records};
use super::{Connection, Outcome, connect};
use elector::cli::HandoverArgs;
use elector_core::{Candidate, Observation};
use std::fmt::Write as _;
use std::time::Duration;
use tokio::time::Instant;

/// How often `elector handover` re-reads the election while it waits.
const HANDOVER_POLL: Duration = Duration::from_millis(100);

/// Runs `elector handover`.
pub async fn run(args: HandoverArgs) -> Outcome {
    let connection = connect(&args.etcd).await?;
    let line = run_handover(&connection, &args, tokio::signal::ctrl_c())
        .await
        .map_err(|line| format!("handover failed: {line}"))?;
    elector::outln!("{line}");
    Ok(0)
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

/// Rule `handover_needs_electors`: a handover request is honoured only by electors of ours,
/// and each keeps a registry record under its value (`<key>.elector/members/<value>`). A
/// leader without one, or, with `--to`, a candidate ahead of the target without one, is a
/// Go elector or an `etcdctl elect` candidate that will never hand over or step aside: fail at
/// once, naming it, instead of waiting `--timeout` for nothing. `registered` is the values
/// with a record.
///
/// The successor must be one of ours too, unless `force`: the target (`--to`), or the next in
/// line. A Go elector activates its node the moment it leads, without waiting out its
/// predecessor's last slot; an `etcdctl elect` candidate has no node behind it, so nothing
/// signs until its lease ends.
fn handover_needs_electors(
    plan: &Plan,
    observation: &Observation,
    registered: &[String],
    force: bool,
) -> Result<(), String> {
    let is_ours = |value: &str| registered.iter().any(|r| r == value);
    let never = "a Go elector or an `etcdctl elect` candidate, which never honours a handover \
                 request";
    if !is_ours(&plan.leader.value) {
        return Err(format!(
            "the leader {} (lease {:x}) has no elector registry record: it is {never}. Stop \
             that process instead: the next in line activates once its lease expires and the \
             activation delay has passed",
            plan.leader.value, plan.leader.id.lease
        ));
    }
    if let Some(target) = &plan.target {
        for ahead in observation.candidates[1..]
            .iter()
            .take_while(|c| c.value != *target)
        {
            if !is_ours(&ahead.value) {
                return Err(format!(
                    "{} (lease {:x}) is ahead of {target} in line and has no elector registry \
                     record: it is {never}, and will not step aside",
                    ahead.value, ahead.id.lease
                ));
            }
        }
    }
    let successor = match &plan.target {
        Some(target) => observation.candidates.iter().find(|c| c.value == *target),
        None => observation.candidates.get(1),
    };
    if let Some(successor) = successor
        && !force
        && !is_ours(&successor.value)
    {
        return Err(format!(
            "{} (lease {:x}), {}, has no elector registry record: it is a Go elector or an \
             `etcdctl elect` candidate. A Go elector activates its node the moment it leads, \
             without waiting out its predecessor's last slot (a height and round may be signed \
             twice); an etcdctl candidate has no node behind it (nothing signs until its lease \
             ends). Hand over to a replica whose elector runs (`elector status` shows them), or \
             give --force to hand over anyway",
            successor.value,
            successor.id.lease,
            if plan.target.is_some() {
                "the target"
            } else {
                "the next in line"
            }
        ));
    }
    Ok(())
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
    // Without a readable registry nothing tells an elector of ours from a Go elector or an
    // etcdctl candidate: refused, unless --force.
    match election.list_members().await {
        Ok(members) => {
            let registered: Vec<String> = members.into_iter().map(|m| m.name).collect();
            handover_needs_electors(&plan, &first, &registered, args.force)?;
        }
        Err(e) if args.force => elector::errln!(
            "elector handover: warning: cannot read the member registry ({e}); asking anyway \
             (--force)"
        ),
        Err(e) => {
            return Err(format!(
                "cannot read the member registry ({e}): it tells the electors of this release \
                 from Go electors and etcdctl candidates; --force asks anyway"
            ));
        }
    }
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
    // The last revision at which the old leader still held its key: records written after it
    // describe the handover.
    let mut before = first.revision;
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
                    Progress::Waiting => before = observation.revision,
                    Progress::Done(line) => {
                        return Ok(records_rewritten(
                            connection,
                            &plan,
                            &observation,
                            before,
                            line,
                            started,
                        )
                        .await);
                    }
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
        return Ok(records_rewritten(connection, &plan, &observation, before, line, started).await);
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

/// How long a finished handover waits for the registry records of the old and the new leader
/// to say so (each writes a change within about a second).
pub(crate) const RECORDS_WAIT: Duration = Duration::from_secs(10);

/// After the handover (`done`, seen in `now`): waits until the old leader's record says it
/// left the lead and the new leader's that it leads, both written after revision `before`,
/// so that `elector status` right after shows the new roles. The handover happened either
/// way: a record that lags is said on stderr.
async fn records_rewritten(
    connection: &Connection,
    plan: &Plan,
    now: &Observation,
    before: i64,
    done: String,
    started: Instant,
) -> String {
    let mut wanted = vec![(plan.leader.value.clone(), Expect::LeftTheLead)];
    if let Some(new) = now.candidates.first() {
        wanted.push((new.value.clone(), Expect::Leads));
    }
    let registered: Vec<String> = match connection.election.list_members().await {
        Ok(members) => members.into_iter().map(|m| m.name).collect(),
        Err(_) => Vec::new(),
    };
    // A forced handover to a Go or etcdctl candidate: it has no record to wait for.
    wanted.retain(|(value, _)| registered.contains(value));
    match wait_for_records(connection, &wanted, before, Instant::now() + RECORDS_WAIT).await {
        Ok(line) => format!("{}; {line}", with_elapsed(done, started)),
        Err(line) => {
            elector::errln!("elector handover: warning: {line}");
            with_elapsed(done, started)
        }
    }
}

/// Deletes our handover request, only if it is still ours (its mod revision): a leader that
/// later took over must not act on a request nobody waits for any more.
async fn withdraw(connection: &Connection, revision: i64) {
    let key = connection.election.handover_request_key();
    if let Err(e) = connection
        .election
        .withdraw_handover_request(revision)
        .await
    {
        elector::errln!(
            "elector: warning: could not withdraw the handover request {key}: {e}; delete it \
             with `etcdctl del {key}`"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fixtures::{candidate, observation};
    use elector_core::{HandoverRecord, HandoverRequest};

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
    fn a_leader_or_a_candidate_in_the_way_without_a_record_fails_at_once() {
        let a = candidate(1, 10, "a");
        let b = candidate(2, 11, "b");
        let c = candidate(3, 12, "c");
        let all = observation(vec![a.clone(), b.clone(), c.clone()]);
        let registered = |values: &[&str]| values.iter().map(|v| v.to_string()).collect::<Vec<_>>();
        let to = |target: Option<&str>| Plan {
            leader: a.clone(),
            target: target.map(str::to_string),
        };
        assert!(
            handover_needs_electors(&to(None), &all, &registered(&["a", "b", "c"]), false).is_ok()
        );
        let e =
            handover_needs_electors(&to(None), &all, &registered(&["b", "c"]), false).unwrap_err();
        assert!(
            e.contains("the leader a (lease 1)") && e.contains("etcdctl elect"),
            "{e}"
        );
        // b stands between the leader and the target c and would never step aside.
        let e = handover_needs_electors(&to(Some("c")), &all, &registered(&["a", "c"]), false)
            .unwrap_err();
        assert!(e.contains("b (lease 2) is ahead of c"), "{e}");
        // Behind the target, an unregistered candidate is no obstacle.
        assert!(
            handover_needs_electors(&to(Some("b")), &all, &registered(&["a", "b"]), false).is_ok()
        );
    }

    /// `handover --to` an `etcdctl elect` candidate (or a Go elector), or to the next in line
    /// when it is one, is refused unless --force: nothing would sign, or a Go elector would
    /// activate without waiting out the last slot.
    #[test]
    fn an_unregistered_successor_is_refused_unless_forced() {
        let a = candidate(1, 10, "a");
        let b = candidate(2, 11, "default");
        let c = candidate(3, 12, "c");
        let all = observation(vec![a.clone(), b.clone(), c.clone()]);
        let registered = |values: &[&str]| values.iter().map(|v| v.to_string()).collect::<Vec<_>>();
        let to = |target: Option<&str>| Plan {
            leader: a.clone(),
            target: target.map(str::to_string),
        };
        let e =
            handover_needs_electors(&to(Some("default")), &all, &registered(&["a", "c"]), false)
                .unwrap_err();
        assert!(
            e.contains("default (lease 2), the target, has no elector registry record"),
            "{e}"
        );
        assert!(e.contains("--force"), "{e}");
        let e =
            handover_needs_electors(&to(None), &all, &registered(&["a", "c"]), false).unwrap_err();
        assert!(e.contains("the next in line"), "{e}");
        assert!(
            handover_needs_electors(&to(Some("default")), &all, &registered(&["a", "c"]), true)
                .is_ok()
        );
        assert!(handover_needs_electors(&to(None), &all, &registered(&["a", "c"]), true).is_ok());
        assert!(
            handover_needs_electors(&to(Some("c")), &all, &registered(&["a", "c"]), false).is_err(),
            "default is ahead of c and never steps aside, forced or not"
        );
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
            key_withdrawn: false,
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
            key_withdrawn: false,
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
}

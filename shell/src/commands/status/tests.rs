//! The flags of `elector status` (a pure function of one read), its verdict and its table.

use super::judge::{Flag, FlagKind, ReplicaReport, Severity};
use super::render::short_age;
use super::*;
use elector::registry::TimingRecord;
use elector_core::Timing;
use std::time::UNIX_EPOCH;

/// The time of the read in these tests.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn at(seconds_ago: u64) -> String {
    elector::registry::rfc3339(now() - Duration::from_secs(seconds_ago))
}

fn candidate(position: usize, value: &str, lease: &str) -> CandidateReport {
    CandidateReport {
        position,
        value: value.into(),
        key: format!("/k/{lease}"),
        lease: lease.into(),
        create_revision: 4 + position as i64,
        ttl_seconds: Some(9),
        granted_ttl_seconds: Some(10),
        leader: position == 1,
    }
}

/// A fresh record of a healthy replica in `role`, its node in `mode`.
fn record(value: &str, role: &str, mode: &str) -> MemberRecord {
    MemberRecord {
        value: value.into(),
        role: role.into(),
        role_reason: "test".into(),
        node_mode: mode.into(),
        node_mode_read_at: Some(at(1)),
        readiness: "ready".into(),
        stuck: None,
        version: "0.1.0".into(),
        host: format!("host-{value}"),
        status_url: None,
        last_transition: None,
        lease: "77".into(),
        candidate_lease: None,
        refresh_seconds: 30,
        written_at: at(2),
        excluded: false,
        node_error: None,
        timing: None,
        node_key_fingerprint: None,
        recent_transitions: Vec::new(),
    }
}

/// A record that describes candidate `lease`.
fn campaigning(value: &str, role: &str, mode: &str, lease: &str) -> MemberRecord {
    MemberRecord {
        candidate_lease: Some(lease.into()),
        ..record(value, role, mode)
    }
}

/// What an elector's `/status` says: `role`, node `mode` read 300 ms ago, lease `lease`.
fn live(value: &str, role: &str, mode: &str, lease: Option<&str>) -> Live {
    Live::Answered(Box::new(LiveStatus {
        value: value.into(),
        key: "/k".into(),
        role: role.into(),
        role_reason: "live".into(),
        version: Some("0.1.0".into()),
        lease_id: lease.map(str::to_owned),
        node_mode: Some(mode.into()),
        node_mode_read_ms_ago: Some(300),
        node_error: None,
        readiness: "ready".into(),
        stuck: None,
        excluded: false,
    }))
}

fn no_live() -> BTreeMap<String, Live> {
    BTreeMap::new()
}

fn judge(
    candidates: &[CandidateReport],
    records: &[MemberRecord],
    live: &BTreeMap<String, Live>,
) -> (Vec<ReplicaReport>, Vec<Flag>) {
    let (rows, _, flags) = replica_set(candidates, records, live, Vec::new(), now());
    (rows, flags)
}

fn kinds(row: &ReplicaReport) -> Vec<FlagKind> {
    row.flags.iter().map(|f| f.flag).collect()
}

fn exclusion(value: &str) -> ExclusionReport {
    ExclusionReport::new(
        value.into(),
        Some(elector::etcd::ExclusionJson {
            by: "root@ops".into(),
            at: "2026-01-01T00:00:00Z".into(),
            reason: "upgrade".into(),
        }),
    )
}

fn verdict_of(rows: &[ReplicaReport], flags: &[Flag]) -> State {
    state(flags.iter().chain(rows.iter().flat_map(|r| r.flags.iter())))
}

#[test]
fn a_healthy_set_raises_no_flag() {
    let candidates = [candidate(1, "a", "1a"), candidate(2, "b", "2b")];
    let records = [
        campaigning("a", "active", "active", "1a"),
        campaigning("b", "candidate", "standby", "2b"),
    ];
    let (rows, flags) = judge(&candidates, &records, &no_live());
    assert!(flags.is_empty(), "{flags:?}");
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert!(row.flags.is_empty(), "{row:?}");
        assert!(row.registered);
        assert_eq!(row.seen, "record");
        assert_eq!(
            row.host.as_deref(),
            Some(format!("host-{}", row.value).as_str())
        );
    }
    assert_eq!(rows[0].node_mode_age_seconds, Some(1));
    assert_eq!(rows[0].record_age_seconds, Some(2));
    assert!(rows[0].leader && !rows[1].leader);
    assert_eq!(verdict_of(&rows, &flags), State::Healthy);
}

#[test]
fn candidates_come_first_in_election_order_then_the_other_replicas() {
    let candidates = [candidate(1, "c", "3c"), candidate(2, "a", "1a")];
    let records = [
        campaigning("a", "candidate", "standby", "1a"),
        record("b", "standby", "standby"),
        campaigning("c", "active", "active", "3c"),
        record("d", "standby", "standby"),
    ];
    let (rows, _) = judge(&candidates, &records, &no_live());
    let order: Vec<(&str, Option<usize>)> = rows
        .iter()
        .map(|r| (r.value.as_str(), r.position))
        .collect();
    assert_eq!(
        order,
        [("c", Some(1)), ("a", Some(2)), ("b", None), ("d", None)]
    );
}

#[test]
fn the_three_broken_replicas_of_the_day_two_example() {
    // a leads; b's node is unready; c is excluded; d's elector was killed (its candidate key
    // expired, its record is old, its /status does not answer).
    let candidates = [candidate(1, "a", "1a")];
    let mut unready = record("b", "standby", "standby");
    unready.readiness = "unready".into();
    let mut killed = record("d", "candidate", "standby");
    killed.written_at = at(61);
    let records = [
        campaigning("a", "active", "active", "1a"),
        unready,
        record("c", "standby", "standby"),
        killed,
    ];
    let live = BTreeMap::from([("d".to_owned(), Live::Failed("connection refused".into()))]);
    let (rows, exclusions, flags) =
        replica_set(&candidates, &records, &live, vec![exclusion("c")], now());
    assert!(flags.is_empty());
    assert!(exclusions[0].known);
    assert!(rows[0].flags.is_empty());
    let reason = |row: &ReplicaReport| {
        row.flags
            .iter()
            .find(|f| f.flag == FlagKind::NotCampaigning)
            .and_then(|f| f.detail.clone())
            .unwrap_or_default()
    };
    assert_eq!(kinds(&rows[1]), [FlagKind::NotCampaigning]);
    assert_eq!(reason(&rows[1]), "node unready");
    assert_eq!(rows[1].flags[0].severity, Severity::Attention);
    assert_eq!(kinds(&rows[2]), [FlagKind::NotCampaigning]);
    assert_eq!(reason(&rows[2]), "excluded");
    assert_eq!(rows[2].flags[0].severity, Severity::Maintenance);
    assert!(rows[2].excluded);
    assert_eq!(
        kinds(&rows[3]),
        [FlagKind::NotCampaigning, FlagKind::ElectorSilent]
    );
    assert!(reason(&rows[3]).contains("the elector may be gone"));
    assert!(
        rows[3].flags[1]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("could not be read: connection refused")),
        "{:?}",
        rows[3].flags
    );
    assert_eq!(verdict_of(&rows, &flags), State::Attention);
}

/// Planned work alone (an exclusion, an elector stopped cleanly) is maintenance, not a fault:
/// exit 4, not 1.
#[test]
fn planned_work_alone_is_maintenance() {
    let candidates = [candidate(1, "a", "1a")];
    let records = [
        campaigning("a", "active", "active", "1a"),
        record("b", "standby", "standby"),
        record("c", "stopped", "standby"),
    ];
    let (rows, exclusions, flags) = replica_set(
        &candidates,
        &records,
        &no_live(),
        vec![exclusion("b")],
        now(),
    );
    assert!(flags.is_empty() && exclusions[0].known);
    assert_eq!(verdict_of(&rows, &flags), State::Maintenance);
    let report = report_of(
        candidates.to_vec(),
        &records,
        &no_live(),
        vec![exclusion("b")],
    );
    assert_eq!(exit_code(&report), EXIT_MAINTENANCE);
    assert!(!report.healthy);
}

/// Right after a handover the old leader's record may still say stepping-down with its node
/// active; its own /status says standby: no ACTIVE-NOT-LEADER.
#[test]
fn a_live_status_wins_over_a_stale_record() {
    let candidates = [candidate(1, "b", "2b"), candidate(2, "a", "3a")];
    let mut old_leader = campaigning("a", "stepping-down", "active", "1a");
    old_leader.written_at = at(20);
    let records = [campaigning("b", "leader", "standby", "2b"), old_leader];
    // Without a live answer, the record is all there is, and it is said to be hearsay.
    let (rows, _) = judge(&candidates, &records, &no_live());
    assert!(
        kinds(&rows[1]).contains(&FlagKind::ActiveNotLeader),
        "{rows:?}"
    );
    assert!(
        rows[1].flags[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("by its record, 20s old")),
        "{rows:?}"
    );
    let live = BTreeMap::from([(
        "a".to_owned(),
        live("a", "candidate", "standby", Some("3a")),
    )]);
    let (rows, flags) = judge(&candidates, &records, &live);
    assert!(rows[1].flags.is_empty(), "{:?}", rows[1].flags);
    assert_eq!(rows[1].seen, "live");
    assert_eq!(rows[1].role.as_deref(), Some("candidate"));
    assert_eq!(rows[1].node_mode.as_deref(), Some("standby"));
    assert_eq!(rows[1].node_mode_age_seconds, Some(0));
    assert_eq!(verdict_of(&rows, &flags), State::Healthy);
}

/// After an etcd outage a record can stay unwritten past the silence bound while its elector
/// runs and answers: not ELECTOR-SILENT, and its live role counts.
#[test]
fn an_elector_that_answers_is_not_silent() {
    let candidates = [candidate(1, "b", "2b")];
    let mut stale = record("a", "active", "active");
    stale.written_at = at(90);
    let records = [campaigning("b", "active", "active", "2b"), stale];
    let (rows, _) = judge(&candidates, &records, &no_live());
    assert!(kinds(&rows[1]).contains(&FlagKind::ElectorSilent));
    assert!(kinds(&rows[1]).contains(&FlagKind::ActiveNotLeader));
    let live = BTreeMap::from([("a".to_owned(), live("a", "standby", "standby", None))]);
    let (rows, _) = judge(&candidates, &records, &live);
    assert!(
        !kinds(&rows[1]).contains(&FlagKind::ElectorSilent),
        "{rows:?}"
    );
    assert!(
        !kinds(&rows[1]).contains(&FlagKind::ActiveNotLeader),
        "{rows:?}"
    );
    assert_eq!(rows[1].record_age_seconds, Some(90));
}

/// Two electors with one value: the stopped one's last write covers the leader's record. The
/// record no longer describes the candidate; the live /status of the other names another key.
#[test]
fn a_record_of_another_elector_with_the_same_value_is_flagged() {
    let candidates = [candidate(1, "a", "1a")];
    let mut stopped = record("a", "stopped", "standby");
    stopped.written_at = at(10);
    let (rows, _) = judge(&candidates, std::slice::from_ref(&stopped), &no_live());
    assert_eq!(kinds(&rows[0]), [FlagKind::RecordMismatch]);
    assert!(
        rows[0].flags[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("role stopped") && d.contains("lease 1a")),
        "{rows:?}"
    );
    // Freshly written (it just campaigned): not yet.
    stopped.written_at = at(1);
    let (rows, _) = judge(&candidates, &[stopped.clone()], &no_live());
    assert!(rows[0].flags.is_empty(), "{rows:?}");
    // Its /status answers for another key: another elector uses the value.
    let live = BTreeMap::from([("a".to_owned(), live("a", "stopped", "standby", None))]);
    let (rows, _) = judge(&candidates, &[stopped], &live);
    assert_eq!(kinds(&rows[0]), [FlagKind::DuplicateValue]);
}

/// A node its elector cannot read is `unknown`, never the last mode read; the age says which
/// read it was.
#[test]
fn a_node_that_cannot_be_read_is_unknown() {
    let candidates = [candidate(1, "a", "1a")];
    let mut unreadable = record("b", "standby", "standby");
    unreadable.node_error = Some("connection refused".into());
    unreadable.node_mode_read_at = Some(at(48));
    let records = [campaigning("a", "active", "active", "1a"), unreadable];
    let (rows, _) = judge(&candidates, &records, &no_live());
    assert_eq!(rows[1].node_mode.as_deref(), Some("unknown"));
    assert_eq!(rows[1].node_mode_age_seconds, Some(48));
    assert!(kinds(&rows[1]).contains(&FlagKind::NodeUnknown));
    let detail = rows[1]
        .flags
        .iter()
        .find(|f| f.flag == FlagKind::NodeUnknown)
        .and_then(|f| f.detail.clone())
        .unwrap_or_default();
    assert!(
        detail.contains("connection refused; the last read, 48s ago, said standby"),
        "{detail}"
    );
    // The table says it too.
    let report = report_of(candidates.to_vec(), &records, &no_live(), vec![]);
    assert!(
        render_status(&report).contains("unknown (last read 48s ago)"),
        "{}",
        render_status(&report)
    );
}

#[test]
fn a_record_is_silent_only_after_twice_its_refresh_interval() {
    let candidates = [candidate(1, "a", "1a")];
    let mut fresh = campaigning("a", "active", "active", "1a");
    fresh.written_at = at(60);
    let (rows, _) = judge(&candidates, &[fresh.clone()], &no_live());
    assert!(rows[0].flags.is_empty(), "{:?}", rows[0].flags);
    fresh.written_at = at(61);
    let (rows, _) = judge(&candidates, &[fresh.clone()], &no_live());
    assert_eq!(kinds(&rows[0]), [FlagKind::ElectorSilent]);
    // A short refresh interval (as tests run it) is honoured.
    fresh.refresh_seconds = 1;
    fresh.written_at = at(3);
    let (rows, _) = judge(&candidates, &[fresh], &no_live());
    assert_eq!(kinds(&rows[0]), [FlagKind::ElectorSilent]);
}

#[test]
fn an_active_node_that_does_not_lead_is_flagged() {
    let candidates = [candidate(1, "a", "1a"), candidate(2, "b", "2b")];
    let records = [
        campaigning("a", "active", "active", "1a"),
        campaigning("b", "candidate", "active", "2b"),
        record("c", "standby", "active"),
    ];
    let (rows, _) = judge(&candidates, &records, &no_live());
    assert!(rows[0].flags.is_empty());
    assert_eq!(kinds(&rows[1]), [FlagKind::ActiveNotLeader]);
    assert_eq!(
        kinds(&rows[2]),
        [FlagKind::NotCampaigning, FlagKind::ActiveNotLeader]
    );
}

#[test]
fn foreign_and_duplicate_candidates_are_flagged() {
    let candidates = [
        candidate(1, "go-elector", "1a"),
        candidate(2, "b", "2b"),
        candidate(3, "b", "3c"),
    ];
    let records = [campaigning("b", "candidate", "standby", "2b")];
    let (rows, _) = judge(&candidates, &records, &no_live());
    assert_eq!(kinds(&rows[0]), [FlagKind::Unregistered]);
    assert!(!rows[0].registered && rows[0].role.is_none());
    assert_eq!(kinds(&rows[1]), [FlagKind::DuplicateValue]);
    assert!(kinds(&rows[2]).contains(&FlagKind::DuplicateValue));
}

#[test]
fn a_stuck_leader_and_an_empty_election_are_flagged() {
    let candidates = [candidate(1, "a", "1a")];
    let mut stuck = campaigning("a", "stepping-down", "standby", "1a");
    stuck.stuck = Some("the node does not answer /ha".into());
    let (rows, flags) = judge(&candidates, &[stuck.clone()], &no_live());
    assert!(flags.is_empty());
    assert_eq!(kinds(&rows[0]), [FlagKind::Stuck]);
    assert!(
        rows[0].flags[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("the node does not answer /ha")),
        "{rows:?}"
    );
    let (rows, flags) = judge(&[], &[], &no_live());
    assert!(rows.is_empty());
    assert_eq!(flags.len(), 1);
    assert_eq!(flags[0].flag, FlagKind::NoLeader);
    // Not campaigning because stuck says so first.
    let (rows, flags) = judge(&[], &[stuck], &no_live());
    assert_eq!(flags[0].flag, FlagKind::NoLeader);
    assert_eq!(kinds(&rows[0]), [FlagKind::NotCampaigning, FlagKind::Stuck]);
    assert!(
        rows[0].flags[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("stuck: "))
    );
}

/// `elector exclude nod2` (a typo) excludes nothing: status lists it, flagged.
#[test]
fn an_exclusion_of_a_value_no_replica_has_is_flagged() {
    let candidates = [candidate(1, "node1", "1a"), candidate(2, "node2", "2b")];
    let records = [
        campaigning("node1", "active", "active", "1a"),
        campaigning("node2", "candidate", "standby", "2b"),
    ];
    let (rows, exclusions, flags) = replica_set(
        &candidates,
        &records,
        &no_live(),
        vec![exclusion("nod2")],
        now(),
    );
    assert!(!exclusions[0].known);
    assert_eq!(flags.len(), 1);
    assert_eq!(flags[0].flag, FlagKind::ExclusionOfNoReplica);
    assert!(
        flags[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("`elector include nod2`")),
        "{flags:?}"
    );
    assert_eq!(verdict_of(&rows, &flags), State::Attention);
    let report = report_of(
        candidates.to_vec(),
        &records,
        &no_live(),
        vec![exclusion("nod2")],
    );
    let text = render_status(&report);
    assert!(
        text.contains("excluded: nod2 by root@ops since 2026-01-01T00:00:00Z: upgrade (no replica has this value)"),
        "{text}"
    );
}

/// Replicas that publish another timing than the leader's are flagged, with the flags that
/// differ.
#[test]
fn replicas_whose_timing_differs_from_the_leaders_are_flagged() {
    let candidates = [candidate(1, "a", "1a"), candidate(2, "b", "2b")];
    let mut a = campaigning("a", "active", "active", "1a");
    a.timing = Some(TimingRecord::new("default", &Timing::default()));
    let mut b = campaigning("b", "candidate", "standby", "2b");
    b.timing = Some(TimingRecord::new("fast", &Timing::fast_profile()));
    let (rows, _) = judge(&candidates, &[a.clone(), b.clone()], &no_live());
    assert!(rows[0].flags.is_empty(), "{:?}", rows[0].flags);
    assert_eq!(kinds(&rows[1]), [FlagKind::TimingMismatch]);
    let detail = rows[1].flags[0].detail.clone().unwrap_or_default();
    assert!(
        detail.contains("--ttl 7s (the leader a's: 10s)"),
        "{detail}"
    );
    // b's activation delay is too short to take over from a: said, with the value that works.
    assert!(
        detail.contains("UNSAFE: should a lead and die")
            && detail.contains("--activation-delay 13s 700ms"),
        "{detail}"
    );
    // The same timing under another profile name is the same.
    b.timing = Some(TimingRecord::new("fast", &Timing::default()));
    let (rows, _) = judge(&candidates, &[a, b], &no_live());
    assert!(rows[1].flags.is_empty(), "{:?}", rows[1].flags);
}

#[test]
fn two_nodes_with_one_p2p_identity_are_flagged() {
    let candidates = [candidate(1, "a", "1a"), candidate(2, "b", "2b")];
    let mut a = campaigning("a", "active", "active", "1a");
    let mut b = campaigning("b", "candidate", "standby", "2b");
    a.node_key_fingerprint = Some("ab12".into());
    b.node_key_fingerprint = Some("ab12".into());
    let (rows, _) = judge(&candidates, &[a.clone(), b.clone()], &no_live());
    assert_eq!(kinds(&rows[0]), [FlagKind::SharedNodeKey]);
    assert_eq!(kinds(&rows[1]), [FlagKind::SharedNodeKey]);
    b.node_key_fingerprint = Some("cd34".into());
    let (rows, _) = judge(&candidates, &[a, b], &no_live());
    assert!(rows.iter().all(|r| r.flags.is_empty()));
}

/// Only an answer from that replica of this election counts.
#[test]
fn a_status_answer_must_be_the_replicas_own() {
    let body = |value: &str| {
        format!(
            r#"{{"value":"{value}","key":"/k","role":"standby","role_reason":"r",
            "readiness":"ready","node_mode":"standby","lease_id":null}}"#
        )
    };
    let url = "http://127.0.0.1:9901/status";
    assert!(matches!(
        judge_answer("a", "/k", url, 200, &body("a")),
        Live::Answered(_)
    ));
    match judge_answer("a", "/k", url, 200, &body("b")) {
        Live::Failed(why) => assert!(why.contains("answers for replica \"b\""), "{why}"),
        other => panic!("{other:?}"),
    }
    match judge_answer("a", "/k", url, 503, "starting\n") {
        Live::Failed(why) => assert!(why.contains("HTTP 503 (starting)"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        judge_answer("a", "/k", url, 200, "<html>"),
        Live::Failed(_)
    ));
}

#[test]
fn flags_have_stable_names_in_json() {
    let flag = Flag::new(FlagKind::NotCampaigning, "node unready".to_owned());
    assert_eq!(
        serde_json::to_string(&flag).ok().as_deref(),
        Some(r#"{"flag":"NOT-CAMPAIGNING","severity":"attention","detail":"node unready"}"#)
    );
    for kind in [
        FlagKind::ActiveNotLeader,
        FlagKind::DuplicateValue,
        FlagKind::Unregistered,
        FlagKind::ElectorSilent,
        FlagKind::NotCampaigning,
        FlagKind::Stuck,
        FlagKind::NoLeader,
        FlagKind::NodeUnknown,
        FlagKind::RecordMismatch,
        FlagKind::TimingMismatch,
        FlagKind::SharedNodeKey,
        FlagKind::ExclusionOfNoReplica,
    ] {
        assert_eq!(
            serde_json::to_value(kind).ok(),
            Some(serde_json::Value::String(kind.as_str().to_owned()))
        );
    }
}

fn report_of(
    candidates: Vec<CandidateReport>,
    records: &[MemberRecord],
    live: &BTreeMap<String, Live>,
    exclusions: Vec<ExclusionReport>,
) -> StatusReport {
    let (replicas, exclusions, flags) = replica_set(&candidates, records, live, exclusions, now());
    let state = verdict_of(&replicas, &flags);
    StatusReport {
        key: "/k".into(),
        revision: 7,
        leader: candidates.first().map(|c| c.value.clone()),
        healthy: state == State::Healthy,
        state,
        flags,
        replicas,
        candidates,
        duplicates: vec![],
        exclusions,
        handover_request: None,
        last_handover: None,
    }
}

#[test]
fn the_table_lines_up_and_says_every_flag() {
    let mut expired = candidate(2, "replica-b", "2b");
    expired.ttl_seconds = Some(-1);
    expired.granted_ttl_seconds = None;
    let mut stuck = record("d", "stepping-down", "standby");
    stuck.stuck = Some("node cannot be proven standby".into());
    let report = report_of(
        vec![candidate(1, "a", "1a"), expired],
        &[
            campaigning("a", "active", "active", "1a"),
            campaigning("replica-b", "candidate", "standby", "2b"),
            record("c", "standby", "standby"),
            stuck,
        ],
        &BTreeMap::from([("a".to_owned(), live("a", "active", "active", Some("1a")))]),
        vec![exclusion("c")],
    );
    let text = render_status(&report);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "election /k at revision 7: a leads, 2 candidates, 4 registered replicas"
    );
    assert_eq!(
        lines[1],
        "  #  VALUE      HOST            ROLE            NODE                   READY  EXCLUDED  \
         SEEN            LEASE  TTL LEFT  FLAGS"
    );
    assert_eq!(
        lines[2],
        "  1  a          host-a          active (leads)  active (read 0s ago)   ready  no        \
         live            1a     9s/10s"
    );
    assert_eq!(
        lines[3],
        "  2  replica-b  host-replica-b  candidate       standby (read 1s ago)  ready  no        \
         record, 2s old  2b     expired"
    );
    assert!(lines[4].contains("NOT-CAMPAIGNING(excluded)"), "{text}");
    assert!(lines[5].ends_with("NOT-CAMPAIGNING(stuck) STUCK"), "{text}");
    // Every flag's detail below the table: the STUCK reason in words.
    assert!(text.contains("\nc NOT-CAMPAIGNING: excluded\n"), "{text}");
    assert!(
        text.contains("\nd STUCK: node cannot be proven standby (by its record, 2s old)\n"),
        "{text}"
    );
    assert!(
        text.contains("\nexcluded: c by root@ops since 2026-01-01T00:00:00Z: upgrade\n"),
        "{text}"
    );
    assert!(text.ends_with("state: needs attention (exit 1): see the flags above (docs/operations.md says what to do about each)\n"), "{text}");
}

#[test]
fn an_empty_election_says_nobody_leads() {
    let report = report_of(vec![], &[], &no_live(), vec![]);
    let text = render_status(&report);
    assert_eq!(
        text.lines().next(),
        Some("election /k at revision 7: nobody leads, 0 candidates, 0 registered replicas")
    );
    assert!(text.contains("NO-LEADER: no candidate"), "{text}");
    assert!(!report.healthy);
    assert_eq!(exit_code(&report), EXIT_ATTENTION);
}

#[test]
fn ages_are_short() {
    assert_eq!(short_age(0), "0s");
    assert_eq!(short_age(119), "119s");
    assert_eq!(short_age(120), "2m");
    assert_eq!(short_age(7200), "2h");
}

#[test]
fn a_stopped_elector_says_so_before_its_node_readiness() {
    let mut stopped = record("a", "stopped", "standby");
    stopped.readiness = "unready".into();
    let (rows, _) = judge(&[], &[stopped], &no_live());
    assert_eq!(rows[0].flags[0].detail.as_deref(), Some("elector stopped"));
    assert_eq!(rows[0].flags[0].severity, Severity::Maintenance);
}

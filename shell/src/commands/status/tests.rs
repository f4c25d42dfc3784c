//! The flags of `elector status` (a pure function of one read) and its table.

use super::*;
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
    }
}

fn kinds(row: &ReplicaReport) -> Vec<FlagKind> {
    row.flags.iter().map(|f| f.flag).collect()
}

#[test]
fn a_healthy_set_raises_no_flag() {
    let candidates = [candidate(1, "a", "1a"), candidate(2, "b", "2b")];
    let records = [
        record("a", "active", "active"),
        record("b", "candidate", "standby"),
    ];
    let (rows, flags) = replica_set(&candidates, &records, &BTreeSet::new(), now());
    assert!(flags.is_empty(), "{flags:?}");
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert!(row.flags.is_empty(), "{row:?}");
        assert!(row.registered);
    }
    assert_eq!(rows[0].node_mode_age_seconds, Some(1));
    assert_eq!(rows[0].record_age_seconds, Some(2));
    assert!(rows[0].leader && !rows[1].leader);
}

#[test]
fn candidates_come_first_in_election_order_then_the_other_replicas() {
    let candidates = [candidate(1, "c", "3c"), candidate(2, "a", "1a")];
    let records = [
        record("a", "candidate", "standby"),
        record("b", "standby", "standby"),
        record("c", "active", "active"),
        record("d", "standby", "standby"),
    ];
    let (rows, _) = replica_set(&candidates, &records, &BTreeSet::new(), now());
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
    // expired, its record is old).
    let candidates = [candidate(1, "a", "1a")];
    let mut unready = record("b", "standby", "standby");
    unready.readiness = "unready".into();
    let excluded_record = record("c", "standby", "standby");
    let mut killed = record("d", "candidate", "standby");
    killed.written_at = at(61);
    let records = [
        record("a", "active", "active"),
        unready,
        excluded_record,
        killed,
    ];
    let excluded = BTreeSet::from(["c".to_string()]);
    let (rows, flags) = replica_set(&candidates, &records, &excluded, now());
    assert!(flags.is_empty());
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
    assert_eq!(kinds(&rows[2]), [FlagKind::NotCampaigning]);
    assert_eq!(reason(&rows[2]), "excluded");
    assert!(rows[2].excluded);
    assert_eq!(
        kinds(&rows[3]),
        [FlagKind::NotCampaigning, FlagKind::ElectorSilent]
    );
    assert!(reason(&rows[3]).contains("the elector may be gone"));
}

#[test]
fn a_record_is_silent_only_after_twice_its_refresh_interval() {
    let candidates = [candidate(1, "a", "1a")];
    let mut fresh = record("a", "active", "active");
    fresh.written_at = at(60);
    let (rows, _) = replica_set(&candidates, &[fresh.clone()], &BTreeSet::new(), now());
    assert!(rows[0].flags.is_empty(), "{:?}", rows[0].flags);
    fresh.written_at = at(61);
    let (rows, _) = replica_set(&candidates, &[fresh.clone()], &BTreeSet::new(), now());
    assert_eq!(kinds(&rows[0]), [FlagKind::ElectorSilent]);
    // A short refresh interval (as tests run it) is honoured.
    fresh.refresh_seconds = 1;
    fresh.written_at = at(3);
    let (rows, _) = replica_set(&candidates, &[fresh], &BTreeSet::new(), now());
    assert_eq!(kinds(&rows[0]), [FlagKind::ElectorSilent]);
}

#[test]
fn an_active_node_that_does_not_lead_is_flagged() {
    let candidates = [candidate(1, "a", "1a"), candidate(2, "b", "2b")];
    let records = [
        record("a", "active", "active"),
        record("b", "candidate", "active"),
        record("c", "standby", "active"),
    ];
    let (rows, _) = replica_set(&candidates, &records, &BTreeSet::new(), now());
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
    let records = [record("b", "candidate", "standby")];
    let (rows, _) = replica_set(&candidates, &records, &BTreeSet::new(), now());
    assert_eq!(kinds(&rows[0]), [FlagKind::Unregistered]);
    assert!(!rows[0].registered && rows[0].role.is_none());
    assert_eq!(kinds(&rows[1]), [FlagKind::DuplicateValue]);
    assert_eq!(kinds(&rows[2]), [FlagKind::DuplicateValue]);
}

#[test]
fn a_stuck_leader_and_an_empty_election_are_flagged() {
    let candidates = [candidate(1, "a", "1a")];
    let mut stuck = record("a", "stepping-down", "unknown");
    stuck.stuck = Some("the node does not answer /ha".into());
    let (rows, flags) = replica_set(&candidates, &[stuck.clone()], &BTreeSet::new(), now());
    assert!(flags.is_empty());
    assert_eq!(kinds(&rows[0]), [FlagKind::Stuck]);
    assert_eq!(
        rows[0].flags[0].detail.as_deref(),
        Some("the node does not answer /ha")
    );

    let (rows, flags) = replica_set(&[], &[], &BTreeSet::new(), now());
    assert!(rows.is_empty());
    assert_eq!(flags.len(), 1);
    assert_eq!(flags[0].flag, FlagKind::NoLeader);
    // Not campaigning because stuck says so first.
    let (rows, flags) = replica_set(&[], &[stuck], &BTreeSet::new(), now());
    assert_eq!(flags[0].flag, FlagKind::NoLeader);
    assert_eq!(kinds(&rows[0]), [FlagKind::NotCampaigning, FlagKind::Stuck]);
    assert!(
        rows[0].flags[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("stuck: "))
    );
}

#[test]
fn flags_have_stable_names_in_json() {
    let flag = Flag::new(FlagKind::NotCampaigning, "excluded".to_owned());
    assert_eq!(
        serde_json::to_string(&flag).ok().as_deref(),
        Some(r#"{"flag":"NOT-CAMPAIGNING","detail":"excluded"}"#)
    );
    for kind in [
        FlagKind::ActiveNotLeader,
        FlagKind::DuplicateValue,
        FlagKind::Unregistered,
        FlagKind::ElectorSilent,
        FlagKind::NotCampaigning,
        FlagKind::Stuck,
        FlagKind::NoLeader,
    ] {
        assert_eq!(
            serde_json::to_value(kind).ok(),
            Some(serde_json::Value::String(kind.as_str().to_owned()))
        );
    }
}

fn report(candidates: Vec<CandidateReport>, records: &[MemberRecord]) -> StatusReport {
    let excluded = BTreeSet::from(["c".to_string()]);
    let (replicas, flags) = replica_set(&candidates, records, &excluded, now());
    StatusReport {
        key: "/k".into(),
        revision: 7,
        leader: candidates.first().map(|c| c.value.clone()),
        healthy: flags.is_empty() && replicas.iter().all(|r| r.flags.is_empty()),
        flags,
        replicas,
        candidates,
        duplicates: vec![],
        handover_request: None,
        last_handover: None,
    }
}

#[test]
fn the_table_lines_up() {
    let mut expired = candidate(2, "replica-b", "2b");
    expired.ttl_seconds = Some(-1);
    expired.granted_ttl_seconds = None;
    let report = report(
        vec![candidate(1, "a", "1a"), expired],
        &[
            record("a", "active", "active"),
            record("replica-b", "candidate", "standby"),
            record("c", "standby", "standby"),
        ],
    );
    let text = render_status(&report);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "election /k at revision 7: a leads, 2 candidates, 3 registered replicas"
    );
    assert_eq!(
        lines[1],
        "  #  VALUE      ROLE            NODE        READY  EXCLUDED  LEASE  TTL LEFT  \
         CREATED AT REV  FLAGS"
    );
    assert_eq!(
        lines[2],
        "  1  a          active (leads)  active 1s   ready  no        1a     9s/10s    5"
    );
    assert_eq!(
        lines[3],
        "  2  replica-b  candidate       standby 1s  ready  no        2b     expired   6"
    );
    assert_eq!(
        lines[4],
        format!(
            "  -  c          standby         standby 1s  ready  yes       -      -         -{}\
             NOT-CAMPAIGNING(excluded)",
            " ".repeat(15)
        )
    );
    assert!(lines[5].starts_with("flagged: "), "{text}");
    assert_eq!(lines.len(), 6, "{text}");
}

#[test]
fn an_empty_election_says_nobody_leads() {
    let report = report(vec![], &[]);
    let text = render_status(&report);
    assert_eq!(
        text.lines().next(),
        Some("election /k at revision 7: nobody leads, 0 candidates, 0 registered replicas")
    );
    assert!(text.contains("NO-LEADER: no candidate"), "{text}");
    assert!(!report.healthy);
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
    let (rows, _) = replica_set(&[], &[stopped], &BTreeSet::new(), now());
    assert_eq!(rows[0].flags[0].detail.as_deref(), Some("elector stopped"));
}

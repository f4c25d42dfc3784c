//! Rule `excluded_replica`: an operator's exclusion keeps a replica out of the election.

use super::harness::*;
use crate::*;

const BEHIND: CandidateId = CandidateId {
    lease: 1200,
    create_revision: 200,
};

fn exclusion() -> Exclusion {
    Exclusion {
        by: "ops@host".into(),
        at: "2026-11-30T12:00:00Z".into(),
        reason: "iotex-core upgrade".into(),
    }
}

/// `view(ids)` with our exclusion in it.
fn excluded_view(ids: &[CandidateId]) -> Observation {
    Observation {
        excluded: Some(exclusion()),
        ..view(ids)
    }
}

fn campaigns_since(h: &Harness, since: Instant) -> Vec<(Instant, Command)> {
    h.commands_since(since)
        .into_iter()
        .filter(|(_, c)| is_campaign(c))
        .collect()
}

fn resigns_since(h: &Harness, since: Instant) -> Vec<(Instant, Command)> {
    h.commands_since(since)
        .into_iter()
        .filter(|(_, c)| is_resign(c))
        .collect()
}

#[test]
fn an_excluded_replica_never_campaigns_until_included() {
    let mut h = Harness::new();
    h.auto_all();
    // The first read already says excluded: a ready, standby node is not enough.
    h.auto.first_view = false;
    h.input(Input::Timeout);
    h.observe(excluded_view(&[other(1)]));
    h.run_for(dur(10_000));
    assert!(campaigns_since(&h, Instant::ZERO).is_empty());
    assert_eq!(h.core.role(), Role::Standby);
    assert_eq!(h.core.exclusion(), Some(&exclusion()));
    // Still excluded after the leader is gone: nobody leads, and still no campaign.
    h.observe(excluded_view(&[]));
    h.run_for(dur(10_000));
    assert!(campaigns_since(&h, Instant::ZERO).is_empty());

    let included_at = h.now;
    let out = h.observe(view(&[]));
    assert!(events(&out).contains(&Event::Included), "{out:?}");
    let ttl = h.timing.lease_ttl;
    assert!(has(&out, &Command::GrantLease { ttl }), "{out:?}");
    assert_eq!(h.core.exclusion(), None);
    assert_eq!(campaigns_since(&h, included_at).len(), 1);
}

#[test]
fn no_campaign_before_the_first_read_of_the_election() {
    // Until the election was read the replica cannot know it is excluded.
    let mut h = Harness::new();
    h.auto_all();
    h.auto.first_view = false;
    h.run_for(dur(5000));
    assert!(campaigns_since(&h, Instant::ZERO).is_empty());
    let out = h.observe(view(&[]));
    let ttl = h.timing.lease_ttl;
    assert!(has(&out, &Command::GrantLease { ttl }), "{out:?}");
}

#[test]
fn an_excluded_candidate_withdraws_its_key_without_a_record() {
    let mut h = Harness::candidate_behind(&[other(1)]);
    h.run_for(dur(2000));
    let t = h.now;
    let out = h.observe(excluded_view(&[other(1), OURS]));
    assert_eq!(
        events(&out)
            .iter()
            .filter(|e| matches!(e, Event::Excluded { .. }))
            .count(),
        1
    );
    assert_eq!(
        resigns_since(&h, t),
        vec![(
            t,
            Command::Resign {
                lease: LEASE,
                candidate: Some(OURS),
                record: None,
                clear_request: None,
            }
        )]
    );
    h.input(Input::Resigned { lease: LEASE });
    h.observe(excluded_view(&[other(1)]));
    h.run_for(dur(10_000));
    assert!(
        campaigns_since(&h, t).is_empty(),
        "campaigned while excluded"
    );
    assert_eq!(h.core.role(), Role::Standby);
}

#[test]
fn an_excluded_leader_hands_over_cleanly_with_a_record() {
    let (mut h, _) = Harness::active_leader(&[BEHIND]);
    h.run_for(dur(2000));
    h.auto.node.as_mut().unwrap().drain = dur(1000);
    let t = h.now;
    h.observe(excluded_view(&[OURS, BEHIND]));
    assert_eq!(h.mode_commands_since(t), vec![(t, NodeCall::SetStandby)]);
    h.run_for(dur(999));
    assert!(
        resigns_since(&h, t).is_empty(),
        "resigned before standby was read"
    );
    h.run_for(dur(1));
    assert_eq!(
        resigns_since(&h, t),
        vec![(
            t + dur(1000),
            Command::Resign {
                lease: LEASE,
                candidate: Some(OURS),
                record: Some(record(OURS)),
                clear_request: None,
            }
        )]
    );
    let resigned_at = h.now;
    h.input(Input::Resigned { lease: LEASE });
    h.observe(excluded_view(&[BEHIND]));
    h.run_for(dur(10_000));
    assert!(campaigns_since(&h, resigned_at).is_empty());
}

#[test]
fn the_only_replica_hands_over_when_excluded() {
    // Unlike an unready leader, an excluded one leaves even with nobody to take over.
    let (mut h, _) = Harness::active_leader(&[]);
    h.run_for(dur(2000));
    let t = h.now;
    h.observe(excluded_view(&[OURS]));
    let resigned = resigns_since(&h, t);
    assert_eq!(resigned.len(), 1, "{resigned:?}");
    assert!(
        matches!(
            &resigned[0].1,
            Command::Resign {
                record: Some(_),
                ..
            }
        ),
        "{resigned:?}"
    );
}

#[test]
fn an_excluded_leader_whose_node_cannot_be_proven_standby_keeps_the_lead() {
    let (mut h, _) = Harness::active_leader(&[BEHIND]);
    h.run_for(dur(3000));
    h.auto.node.as_mut().unwrap().stuck = true;
    h.auto.fence_fails = true;
    let t = h.now;
    h.observe(excluded_view(&[OURS, BEHIND]));
    let lead = h.timing.step_down_lead();
    h.run_until(t + lead + dur(30_000));
    assert!(
        h.commands_since(t)
            .iter()
            .any(|(_, c)| matches!(c, Command::Fence { .. })),
        "fenced"
    );
    assert!(
        resigns_since(&h, t).is_empty(),
        "gave the lead away with the node not proven standby"
    );
    assert!(h.core.stuck().is_some());
}

#[test]
fn an_exclusion_commits_a_handover_that_waits_for_a_named_successor() {
    let (mut h, _) = Harness::active_leader(&[BEHIND]);
    h.run_for(dur(2000));
    let t = h.now;
    // Waits for "nobody" to come next in line: only the exclusion makes it leave at once.
    h.input(Input::HandoverRequested {
        to: Some("nobody".into()),
    });
    h.run_for(dur(1000));
    assert!(resigns_since(&h, t).is_empty());
    h.observe(excluded_view(&[OURS, BEHIND]));
    assert_eq!(resigns_since(&h, t).len(), 1);
}

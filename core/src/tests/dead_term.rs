//! Rule `end_dead_term`: a restarted elector ends the term its crashed process left behind,
//! once its node is confirmed standby by a read; and what it remembers for that.

use super::harness::*;
use crate::*;

/// The term our previous process held.
const DEAD: CandidateId = CandidateId {
    lease: 4242,
    create_revision: 50,
};
const B1: CandidateId = CandidateId {
    lease: 1201,
    create_revision: 201,
};

fn dead(record_allowed: bool) -> RememberedTerm {
    RememberedTerm {
        id: DEAD,
        record_allowed,
    }
}

/// An observation with the dead term (our value) first, then `behind`.
fn view_with_dead(behind: &[CandidateId]) -> Observation {
    let mut obs = view(behind);
    obs.candidates.insert(
        0,
        Candidate {
            id: DEAD,
            value: "us".into(),
        },
    );
    obs
}

fn restarted(previous: RememberedTerm) -> Harness {
    let mut settings = Settings::new("us", Timing::default());
    settings.previous_term = Some(previous);
    let mut h = Harness::with(settings);
    // The first read is the one each test hands in: it decides about the dead term.
    h.auto.first_view = false;
    h.auto.probe = Some(true);
    h.auto.node = Some(FakeNode::standby());
    h
}

fn endings(h: &Harness) -> Vec<(Instant, Command)> {
    h.commands_since(Instant::ZERO)
        .into_iter()
        .filter(|(_, c)| matches!(c, Command::Resign { lease, .. } if *lease == DEAD.lease))
        .collect()
}

#[test]
fn ends_a_dead_leading_term_with_a_record_once_standby_is_read() {
    let mut h = restarted(dead(true));
    // The node was left active by the crashed process: it drains for 2 s.
    h.auto.node = Some(FakeNode {
        active: true,
        drain: dur(2000),
        ..FakeNode::standby()
    });
    h.input(Input::Timeout);
    h.observe(view_with_dead(&[B1]));
    h.run_for(dur(1000));
    assert!(
        endings(&h).is_empty(),
        "ended before the node was read standby"
    );
    h.run_for(dur(2000));
    let ended = endings(&h);
    assert_eq!(ended.len(), 1, "{ended:?}");
    let (at, command) = &ended[0];
    assert_eq!(
        *command,
        Command::Resign {
            lease: DEAD.lease,
            candidate: Some(DEAD),
            record: Some(HandoverRecord {
                from: DEAD,
                value: "us".into(),
                key_withdrawn: false,
            }),
            clear_request: None,
        }
    );
    // Only after a read said standby.
    assert!(h.core.node_standby_confirmed());
    assert!(*at >= ms(2000));
    let out = h.input(Input::Resigned { lease: DEAD.lease });
    assert!(events(&out).contains(&Event::DeadTermEnded {
        id: DEAD,
        record: true
    }));
    assert!(out.contains(&Output::Command(Command::RememberTerm { term: None })));
}

#[test]
fn never_ends_a_dead_term_whose_node_cannot_be_read_standby() {
    let mut h = restarted(dead(true));
    h.auto.node = Some(FakeNode {
        active: true,
        stuck: true,
        ..FakeNode::standby()
    });
    h.input(Input::Timeout);
    h.observe(view_with_dead(&[B1]));
    h.run_for(dur(60_000));
    assert!(endings(&h).is_empty());
}

#[test]
fn a_term_that_had_not_passed_its_gate_ends_without_a_record() {
    let mut h = restarted(dead(false));
    h.input(Input::Timeout);
    h.observe(view_with_dead(&[B1]));
    h.run_for(dur(2000));
    let ended = endings(&h);
    assert_eq!(ended.len(), 1);
    assert!(matches!(ended[0].1, Command::Resign { record: None, .. }));
}

#[test]
fn a_dead_term_that_does_not_lead_ends_without_a_record() {
    let mut h = restarted(dead(true));
    h.input(Input::Timeout);
    let mut obs = view(&[B1]);
    obs.candidates.push(Candidate {
        id: DEAD,
        value: "us".into(),
    });
    h.observe(obs);
    h.run_for(dur(2000));
    let ended = endings(&h);
    assert_eq!(ended.len(), 1);
    assert!(matches!(ended[0].1, Command::Resign { record: None, .. }));
}

#[test]
fn a_live_key_with_our_value_but_another_lease_is_never_ended() {
    // Another elector started with the same --value: its key is not the term we remember.
    let mut h = restarted(dead(true));
    h.input(Input::Timeout);
    let mut obs = view(&[B1]);
    obs.candidates.insert(
        0,
        Candidate {
            id: CandidateId {
                lease: 777,
                create_revision: 60,
            },
            value: "us".into(),
        },
    );
    h.observe(obs);
    h.run_for(dur(10_000));
    assert!(
        !h.commands_since(Instant::ZERO)
            .iter()
            .any(|(_, c)| matches!(
                c,
                Command::Resign {
                    candidate: Some(_),
                    ..
                }
            )),
        "ended someone else's term"
    );
}

#[test]
fn pure_rule_requires_the_exact_key_our_value_and_a_read() {
    let obs = view_with_dead(&[B1]);
    assert_eq!(end_dead_term(&dead(true), "us", &obs, false, false), None);
    assert_eq!(end_dead_term(&dead(true), "them", &obs, true, false), None);
    let other = RememberedTerm {
        id: CandidateId {
            lease: DEAD.lease,
            create_revision: 51,
        },
        record_allowed: true,
    };
    assert_eq!(end_dead_term(&other, "us", &obs, true, false), None);
    assert_eq!(
        end_dead_term(&dead(true), "us", &obs, true, false),
        Some(Some(HandoverRecord {
            from: DEAD,
            value: "us".into(),
            key_withdrawn: false,
        }))
    );
    // Key custody: a confirmed withdrawal proves standby too, and the record says so.
    assert_eq!(
        end_dead_term(&dead(true), "us", &obs, false, true),
        Some(Some(HandoverRecord {
            from: DEAD,
            value: "us".into(),
            key_withdrawn: true,
        }))
    );
    assert_eq!(
        end_dead_term(&dead(false), "us", &obs, true, false),
        Some(None)
    );
}

#[test]
fn a_failed_ending_is_retried() {
    let mut h = restarted(dead(true));
    h.input(Input::Timeout);
    h.observe(view_with_dead(&[B1]));
    h.run_for(dur(2000));
    assert_eq!(endings(&h).len(), 1);
    h.input(Input::ResignFailed {
        lease: DEAD.lease,
        reason: "timeout".into(),
    });
    h.run_for(dur(2000));
    assert_eq!(endings(&h).len(), 2);
}

#[test]
fn remembers_its_candidacy_and_what_its_end_may_claim() {
    let (mut h, _) = Harness::active_leader(&[B1]);
    let remembered: Vec<Option<RememberedTerm>> = h
        .commands_since(Instant::ZERO)
        .into_iter()
        .filter_map(|(_, c)| match c {
            Command::RememberTerm { term } => Some(term),
            _ => None,
        })
        .collect();
    // Created (no record yet), then the gate passed (a record allowed).
    assert_eq!(
        remembered,
        vec![
            Some(RememberedTerm {
                id: OURS,
                record_allowed: false
            }),
            Some(RememberedTerm {
                id: OURS,
                record_allowed: true
            }),
        ]
    );
    // A failed activate=true takes the claim back.
    h.run_for(dur(3000));
    let t = h.now;
    h.auto.node.as_mut().unwrap().active = false;
    h.auto.node.as_mut().unwrap().refuses_activation = true;
    h.run_for(dur(4000));
    assert!(h.commands_since(t).iter().any(|(_, c)| *c
        == Command::RememberTerm {
            term: Some(RememberedTerm {
                id: OURS,
                record_allowed: false
            })
        }));
}

//! Rules `readiness`, `unready_leader` and `withdraw_when_unready`.

use super::harness::*;
use crate::*;

const BEHIND: CandidateId = CandidateId {
    lease: 1200,
    create_revision: 200,
};

fn resigns(h: &Harness, since: Instant) -> Vec<(Instant, Command)> {
    h.commands_since(since)
        .into_iter()
        .filter(|(_, c)| is_resign(c))
        .collect()
}

#[test]
fn unready_leader_demotes_confirms_then_resigns_with_record() {
    let (mut h, activated) = Harness::active_leader(&[BEHIND]); // active at 13.7 s
    h.run_until(ms(14_100)); // probes at whole seconds, all good so far
    h.auto.node.as_mut().unwrap().drain = dur(1000);
    h.auto.probe = Some(false);
    let since = h.now;
    h.run_until(ms(16_600)); // failures at 15 s and 16 s: nothing changes
    assert_eq!(h.mode_commands_since(activated).len(), 1);
    h.run_until(ms(17_000)); // the third failure reaches the threshold
    let unready_at = ms(17_000);
    assert_eq!(h.core.readiness(), Readiness::Unready);
    assert_eq!(
        h.mode_commands_since(since),
        vec![(unready_at, NodeCall::SetStandby)]
    );
    assert!(
        resigns(&h, since).is_empty(),
        "not before standby is confirmed"
    );

    // Drained after 1 s; the read then confirms and the record goes with the resignation.
    h.run_until(unready_at + dur(999));
    assert!(resigns(&h, since).is_empty());
    h.run_until(unready_at + dur(1000));
    assert_eq!(
        resigns(&h, since),
        vec![(
            unready_at + dur(1000),
            Command::Resign {
                lease: LEASE,
                candidate: Some(OURS),
                record: Some(HandoverRecord {
                    from: OURS,
                    value: "us".into(),
                    key_withdrawn: false,
                }),
                clear_request: None,
            }
        )]
    );
    // Resigned: no new campaign while unready.
    h.input(Input::Resigned { lease: LEASE });
    let out = h.run_for(dur(5000));
    assert!(!commands(&out).iter().any(is_campaign));
    assert_eq!(h.core.role(), Role::Standby);
}

#[test]
fn unready_leader_without_other_candidates_keeps_leading() {
    let (mut h, activated) = Harness::active_leader(&[]);
    h.auto.probe = Some(false);
    h.run_for(dur(30_000));
    assert_eq!(h.core.readiness(), Readiness::Unready);
    assert_eq!(h.mode_commands_since(activated).len(), 1);
    assert!(resigns(&h, activated).is_empty());
    assert_eq!(h.core.role(), Role::Active);
}

#[test]
fn fewer_failed_probes_than_the_threshold_change_nothing() {
    let (mut h, activated) = Harness::active_leader(&[BEHIND]);
    for _ in 0..5 {
        h.auto.probe = Some(false);
        h.run_for(dur(2000)); // two failures
        h.auto.probe = Some(true);
        h.run_for(dur(1000));
    }
    assert_eq!(h.core.readiness(), Readiness::Ready);
    assert_eq!(h.mode_commands_since(activated).len(), 1);
}

#[test]
fn unready_candidate_withdraws_and_campaigns_again_when_ready() {
    let mut h = Harness::candidate_behind(&[other(1)]);
    h.run_until(ms(2500));
    h.auto.probe = Some(false);
    h.run_until(ms(5000)); // failures at 3, 4, 5 s
    assert_eq!(
        resigns(&h, ms(2500)),
        vec![(
            ms(5000),
            Command::Resign {
                lease: LEASE,
                candidate: Some(OURS),
                record: None,
                clear_request: None,
            }
        )]
    );
    h.input(Input::Resigned { lease: LEASE });
    assert_eq!(h.core.candidate(), None);
    h.run_until(ms(10_000));
    assert!(
        !h.commands_since(ms(5000))
            .iter()
            .any(|(_, c)| is_campaign(c))
    );
    h.auto.probe = Some(true);
    h.run_until(ms(11_000));
    let (at, c) = h.last_command(is_campaign).unwrap();
    assert_eq!((at, c), (ms(11_000), Command::GrantLease { ttl: TTL }));
}

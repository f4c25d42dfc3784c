//! Rules `shutdown`, `handover_request` and `handover_record`.

use super::harness::*;
use crate::*;

const B1: CandidateId = CandidateId {
    lease: 1201,
    create_revision: 201,
};
const B2: CandidateId = CandidateId {
    lease: 1202,
    create_revision: 202,
};
const B3: CandidateId = CandidateId {
    lease: 1203,
    create_revision: 203,
};

fn our_record() -> Option<HandoverRecord> {
    Some(HandoverRecord {
        from: OURS,
        value: "us".into(),
        key_withdrawn: false,
    })
}

fn resign_with_record() -> Command {
    Command::Resign {
        lease: LEASE,
        candidate: Some(OURS),
        record: our_record(),
        clear_request: None,
    }
}

fn resigns(h: &Harness, since: Instant) -> Vec<(Instant, Command)> {
    h.commands_since(since)
        .into_iter()
        .filter(|(_, c)| is_resign(c))
        .collect()
}

fn exits(h: &Harness) -> Vec<(Instant, Command)> {
    h.commands_since(Instant::ZERO)
        .into_iter()
        .filter(|(_, c)| matches!(c, Command::Exit { .. }))
        .collect()
}

#[test]
fn shutdown_demotes_confirms_records_resigns_then_exits_0() {
    let (mut h, activated) = Harness::active_leader(&[B1]);
    h.run_for(dur(3000));
    h.auto.node.as_mut().unwrap().drain = dur(1000);
    let t = h.now;
    let out = h.input(Input::ShutdownRequested);
    assert_eq!(node_calls(&out, NodeCall::SetStandby), 1, "demoted at once");
    assert!(!commands(&out).iter().any(is_resign));

    h.run_until(t + dur(999));
    assert!(resigns(&h, t).is_empty(), "not before standby is confirmed");
    h.run_until(t + dur(1000));
    assert_eq!(resigns(&h, t), vec![(t + dur(1000), resign_with_record())]);
    assert!(exits(&h).is_empty(), "not before the resignation is done");

    h.run_until(t + dur(1100));
    let out = h.input(Input::Resigned { lease: LEASE });
    assert_eq!(commands(&out), vec![Command::Exit { code: 0 }]);
    assert_eq!(
        h.mode_commands_since(activated),
        vec![(activated, NodeCall::SetActive), (t, NodeCall::SetStandby)]
    );
    assert_eq!(h.core.role(), Role::Stopped);
    // Stopped for good: nothing more comes out.
    assert!(h.run_for(dur(10_000)).is_empty());
}

#[test]
fn shutdown_of_a_candidate_resigns_without_record_and_exits_0() {
    let mut h = Harness::candidate_behind(&[other(1)]);
    h.run_until(ms(3000));
    let out = h.input(Input::ShutdownRequested);
    assert_eq!(
        commands(&out),
        vec![Command::Resign {
            lease: LEASE,
            candidate: Some(OURS),
            record: None,
            clear_request: None,
        }]
    );
    let out = h.input(Input::Resigned { lease: LEASE });
    assert_eq!(commands(&out), vec![Command::Exit { code: 0 }]);
}

#[test]
fn shutdown_while_starting_exits_0_once_standby_is_confirmed() {
    let mut h = Harness::new();
    h.input(Input::Timeout);
    h.input(Input::ShutdownRequested);
    h.node_done(None);
    let out = h.node_done(Some(false));
    assert_eq!(commands(&out), vec![Command::Exit { code: 0 }]);
}

#[test]
fn shutdown_with_an_unconfirmable_node_keeps_the_lease_until_the_fence_succeeds() {
    // The node ignores activate=false (its admin endpoint misbehaves) and no fence works yet.
    let (mut h, _) = Harness::active_leader(&[B1]);
    h.run_for(dur(3000));
    h.auto.node.as_mut().unwrap().stuck = true;
    h.auto.fence_fails = true;
    let t = h.now;
    h.input(Input::ShutdownRequested);
    let grace = h.timing.shutdown_grace();
    let lead = h.timing.step_down_lead();
    h.run_until(t + lead - dur(1));
    assert!(
        !h.commands_since(t)
            .iter()
            .any(|(_, c)| matches!(c, Command::Fence { .. }))
    );
    let out = h.run_until(t + lead);
    assert!(has_fence(&out), "fenced at demotion + drain bound + margin");

    // Long past the grace: the key and lease are kept (keep-alives go on), no exit, the fence
    // is retried, standby is commanded again and again, and the replica says it is stuck.
    h.run_until(t + grace + dur(60_000));
    assert!(resigns(&h, t).is_empty(), "gave the lead away unproven");
    assert!(exits(&h).is_empty(), "exited while the node may sign");
    assert_eq!(h.core.lease(), Some(LEASE));
    let keepalives = h
        .commands_since(t + grace)
        .iter()
        .filter(|(_, c)| matches!(c, Command::KeepAlive { .. }))
        .count();
    assert!(
        keepalives >= 50,
        "lease kept alive: {keepalives} {:?}",
        h.commands_since(t + grace)
            .iter()
            .take(30)
            .collect::<Vec<_>>()
    );
    let fences = h
        .commands_since(t)
        .iter()
        .filter(|(_, c)| matches!(c, Command::Fence { .. }))
        .count();
    assert!(fences >= 9, "fence retried: {fences}");
    let standby_commands = h
        .mode_commands_since(t + grace)
        .iter()
        .filter(|(_, c)| *c == NodeCall::SetStandby)
        .count();
    assert!(standby_commands >= 9, "{standby_commands}");
    let stuck = h.core.stuck().expect("stuck").to_string();
    assert!(stuck.contains("keeping the lead"), "{stuck}");

    // Now the fence works: the node stops, the lead is given away without a record (the
    // fence proves the node stopped, not when), and the elector exits 1.
    h.auto.fence_fails = false;
    let fixed = h.now;
    h.run_for(h.timing.fence_retry_interval() + dur(1000));
    let expected = Command::Resign {
        lease: LEASE,
        candidate: Some(OURS),
        record: None,
        clear_request: None,
    };
    assert_eq!(
        resigns(&h, fixed)
            .into_iter()
            .map(|(_, c)| c)
            .collect::<Vec<_>>(),
        vec![expected]
    );
    let out = h.input(Input::Resigned { lease: LEASE });
    assert_eq!(commands(&out), vec![Command::Exit { code: 1 }]);
}

#[test]
fn shutdown_exits_0_with_a_record_once_a_stuck_node_reads_standby() {
    let (mut h, _) = Harness::active_leader(&[B1]);
    h.run_for(dur(3000));
    h.auto.node.as_mut().unwrap().stuck = true;
    h.auto.fence_fails = true;
    let t = h.now;
    h.input(Input::ShutdownRequested);
    h.run_until(t + h.timing.shutdown_grace() + dur(20_000));
    assert!(resigns(&h, t).is_empty());
    // The node's admin endpoint recovers and obeys: standby confirmed by a read, a clean
    // handover after all.
    let node = h.auto.node.as_mut().unwrap();
    node.stuck = false;
    node.active = false;
    h.auto.fence = None;
    let recovered = h.now;
    h.run_for(dur(2000));
    assert_eq!(
        resigns(&h, recovered)
            .into_iter()
            .map(|(_, c)| c)
            .collect::<Vec<_>>(),
        vec![resign_with_record()]
    );
    h.input(Input::Resigned { lease: LEASE });
    assert_eq!(
        exits(&h).last().map(|(_, c)| c.clone()),
        Some(Command::Exit { code: 0 })
    );
    assert!(h.core.stuck().is_none());
}

#[test]
fn shutdown_holding_no_lease_exits_1_after_the_fence_failed() {
    // Cut off from etcd and with a stuck node: the lease is gone, so there is nothing to give
    // away; the elector exits once the grace ran out and the fence had its say.
    let (mut h, _) = Harness::active_leader(&[B1]);
    h.run_for(dur(3000));
    h.auto.node.as_mut().unwrap().stuck = true;
    h.auto.fence_fails = true;
    h.auto.keepalive = KeepAlives::Fail(dur(1000));
    h.run_for(dur(15_000));
    assert_eq!(h.core.lease(), None);
    let t = h.now;
    h.input(Input::ShutdownRequested);
    h.run_until(t + h.timing.shutdown_grace() + dur(1000));
    assert!(resigns(&h, t).is_empty());
    assert!(
        matches!(exits(&h).as_slice(), [(_, Command::Exit { code: 1 })]),
        "{:?}",
        exits(&h)
    );
}

fn has_fence(out: &[Output]) -> bool {
    commands(out)
        .iter()
        .any(|c| matches!(c, Command::Fence { .. }))
}

#[test]
fn local_handover_to_next_in_line_records_resigns_and_campaigns_again() {
    let (mut h, activated) = Harness::active_leader(&[B1]);
    h.run_for(dur(3000));
    let t = h.now;
    let out = h.input(Input::HandoverRequested { to: None });
    // The fake node drains at once: demote, confirm, record and resign in one go.
    assert_eq!(node_calls(&out, NodeCall::SetStandby), 1);
    assert_eq!(resigns(&h, t), vec![(t, resign_with_record())]);
    let out = h.input(Input::Resigned { lease: LEASE });
    assert_eq!(commands(&out), vec![Command::GrantLease { ttl: TTL }]);
    assert!(exits(&h).is_empty());
    assert_eq!(
        h.mode_commands_since(activated),
        vec![(activated, NodeCall::SetActive), (t, NodeCall::SetStandby)]
    );
}

#[test]
fn handover_to_named_target_waits_until_it_is_next_in_line() {
    let (mut h, activated) = Harness::active_leader(&[B1, B2]);
    h.run_for(dur(1000));
    h.input(Input::HandoverRequested {
        to: Some(candidate(B2).value),
    });
    h.run_for(dur(5000));
    assert_eq!(
        h.mode_commands_since(activated).len(),
        1,
        "B1 is next, not B2"
    );
    // B1 stepped aside and campaigned again behind B2.
    let t = h.now;
    h.observe(view(&[OURS, B2, B3]));
    assert_eq!(
        h.mode_commands_since(activated),
        vec![(activated, NodeCall::SetActive), (t, NodeCall::SetStandby)]
    );
    assert_eq!(resigns(&h, t), vec![(t, resign_with_record())]);
}

#[test]
fn handover_request_in_observation_hands_over() {
    let (mut h, _) = Harness::active_leader(&[B1]);
    h.run_for(dur(1000));
    let t = h.now;
    let mut obs = view(&[OURS, B1]);
    obs.handover_request = Some(HandoverRequest {
        to: Some(candidate(B1).value),
        revision: 500,
    });
    h.observe(obs);
    // The resignation deletes the request it acted on, guarded by its revision.
    let expected = Command::Resign {
        lease: LEASE,
        candidate: Some(OURS),
        record: our_record(),
        clear_request: Some(500),
    };
    assert_eq!(resigns(&h, t), vec![(t, expected)]);
}

#[test]
fn handover_request_naming_ourselves_is_ignored() {
    let (mut h, activated) = Harness::active_leader(&[B1]);
    let mut obs = view(&[OURS, B1]);
    obs.handover_request = Some(HandoverRequest {
        to: Some("us".into()),
        revision: 500,
    });
    h.observe(obs);
    h.run_for(dur(60_000));
    assert_eq!(h.mode_commands_since(activated).len(), 1);
    assert!(resigns(&h, activated).is_empty());
}

#[test]
fn candidate_ahead_of_named_target_steps_aside_and_campaigns_again() {
    let mut h = Harness::candidate_behind(&[other(1)]);
    h.run_until(ms(2000));
    let mut obs = view(&[other(1), OURS, B1]);
    obs.handover_request = Some(HandoverRequest {
        to: Some(candidate(B1).value),
        revision: 500,
    });
    let out = h.observe(obs.clone());
    assert_eq!(
        commands(&out),
        vec![Command::Resign {
            lease: LEASE,
            candidate: Some(OURS),
            record: None,
            clear_request: None,
        }]
    );
    let out = h.input(Input::Resigned { lease: LEASE });
    assert_eq!(commands(&out), vec![Command::GrantLease { ttl: TTL }]);
    // The same request seen again (we are a new candidate now) is not acted on twice.
    h.grant();
    h.input(Input::CandidateCreated {
        lease: LEASE,
        create_revision: 2000,
    });
    let ours = CandidateId {
        lease: LEASE,
        create_revision: 2000,
    };
    obs.revision = 2001;
    obs.candidates = [other(1), B1, ours]
        .iter()
        .map(|id| Candidate {
            id: *id,
            value: if *id == ours {
                "us".into()
            } else {
                candidate(*id).value
            },
        })
        .collect();
    let out = h.observe(obs);
    assert!(!commands(&out).iter().any(is_resign));
    assert_eq!(h.core.role(), Role::Candidate);
}

#[test]
fn handover_without_successor_is_abandoned_after_timeout() {
    let (mut h, activated) = Harness::active_leader(&[]);
    h.input(Input::HandoverRequested { to: None });
    let timeout = h.timing.handover_timeout;
    h.run_for(timeout + dur(1000));
    assert_eq!(h.mode_commands_since(activated).len(), 1);
    // A candidate joining afterwards does not revive the abandoned handover.
    h.observe(view(&[OURS, B1]));
    h.run_for(dur(5000));
    assert_eq!(h.mode_commands_since(activated).len(), 1);
    assert_eq!(h.core.role(), Role::Active);
}

#[test]
fn retried_resignation_drops_the_record_once_standby_is_no_longer_confirmed() {
    let (mut h, _) = Harness::active_leader(&[B1]);
    h.run_for(dur(1000));
    let t = h.now;
    h.input(Input::HandoverRequested { to: None });
    assert_eq!(resigns(&h, t), vec![(t, resign_with_record())]);
    // The node restarts active; the next periodic read finds it, then the resignation fails.
    h.run_for(dur(300));
    let node = h.auto.node.as_mut().unwrap();
    node.active = true;
    node.drain = dur(3000);
    let out = h.run_until(t + dur(1300)); // reads at +0.2 s, +1.2 s
    assert!(events(&out).contains(&Event::NodeActiveUnexpectedly));
    h.run_for(dur(100));
    h.input(Input::ResignFailed {
        lease: LEASE,
        reason: "timeout".into(),
    });
    h.run_for(dur(2000));
    assert!(!h.core.node_standby_confirmed());
    // No retry while the node may be active (rule `lead_may_be_given_away`) ...
    assert!(resigns(&h, t + dur(1)).is_empty());
    // ... and once it drained and reads standby again, one without a record.
    h.run_for(dur(3000));
    assert!(h.core.node_standby_confirmed());
    let retries: Vec<_> = resigns(&h, t + dur(1))
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    assert!(!retries.is_empty());
    assert!(
        retries
            .iter()
            .all(|c| matches!(c, Command::Resign { record: None, .. })),
        "a record claims a standby that is no longer confirmed: {retries:?}"
    );
}

#[test]
fn shutdown_confirms_standby_with_a_read_made_after_the_standby_command() {
    // The node restarted (standby) unnoticed; a read in flight when the shutdown comes says
    // standby. The core still sends activate=false, and confirms with a read made after it,
    // before it resigns with a record and exits 0.
    let (mut h, _) = Harness::active_leader(&[B1]);
    h.auto.node = None;
    h.run_for(dur(1000));
    assert_eq!(h.last_node_call().1, NodeCall::ReadMode);
    h.input(Input::ShutdownRequested);
    let out = h.node_done(Some(false));
    assert_eq!(commands(&out).len(), 1, "{out:?}");
    assert_eq!(h.last_node_call().1, NodeCall::SetStandby);
    let out = h.node_done(None);
    assert_eq!(commands(&out).len(), 1, "{out:?}");
    assert_eq!(h.last_node_call().1, NodeCall::ReadMode);
    let out = h.node_done(Some(false));
    assert_eq!(commands(&out), vec![resign_with_record()]);
    let out = h.input(Input::Resigned { lease: LEASE });
    assert_eq!(commands(&out), vec![Command::Exit { code: 0 }]);
}

#[test]
fn handover_with_a_stuck_node_and_a_failing_fence_keeps_the_key() {
    // The node never confirms standby and the fence fails: while it may be active nobody else
    // may lead, so the leader keeps its key and says it is stuck.
    let (mut h, _) = Harness::active_leader(&[B1]);
    h.run_for(dur(3000));
    h.auto.node.as_mut().unwrap().stuck = true;
    h.auto.fence_fails = true;
    let t = h.now;
    h.input(Input::HandoverRequested { to: None });
    let lead = h.timing.step_down_lead();
    h.run_until(t + lead + dur(30_000));
    assert!(
        h.commands_since(t)
            .iter()
            .any(|(_, c)| matches!(c, Command::Fence { .. })),
        "fenced"
    );
    assert!(
        resigns(&h, t).is_empty(),
        "resigned with an unconfirmed node"
    );
    assert!(h.core.stuck().is_some());
}

#[test]
fn handover_with_a_stuck_node_resigns_without_record_once_the_fence_succeeds() {
    let (mut h, _) = Harness::active_leader(&[B1]);
    h.run_for(dur(3000));
    h.auto.node.as_mut().unwrap().stuck = true;
    let t = h.now;
    h.input(Input::HandoverRequested { to: None });
    let lead = h.timing.step_down_lead();
    h.run_until(t + lead + dur(5000));
    let fence_at = h
        .commands_since(t)
        .into_iter()
        .find(|(_, c)| matches!(c, Command::Fence { .. }))
        .map(|(at, _)| at)
        .expect("fenced");
    let resigned = resigns(&h, t);
    assert_eq!(resigned.len(), 1, "{resigned:?}");
    let (at, command) = &resigned[0];
    assert!(
        *at > fence_at,
        "resigned when the fence started, not when it succeeded"
    );
    assert!(
        matches!(command, Command::Resign { record: None, .. }),
        "a fenced node proves no clean handover: {command:?}"
    );
}

//! Key custody: rules `install_key_last`, `withdraw_key_when_demoting`, `reconcile_keys`, and
//! the withdrawal as proof of standby (rules `lead_may_be_given_away`, `handover_record`,
//! `wait_out_last_slot`).

use super::harness::*;
use crate::*;

const B1: CandidateId = CandidateId {
    lease: 2001,
    create_revision: 50,
};

fn custody() -> Settings {
    let mut settings = Settings::new("us", Timing::default());
    settings.key_custody = true;
    settings
}

fn node_calls_since(h: &Harness, since: Instant) -> Vec<(Instant, NodeCall)> {
    h.commands_since(since)
        .into_iter()
        .filter_map(|(at, c)| match c {
            Command::Node { call, .. } => Some((at, call)),
            _ => None,
        })
        .collect()
}

fn first(calls: &[(Instant, NodeCall)], call: NodeCall) -> Option<usize> {
    calls.iter().position(|(_, c)| *c == call)
}

fn resigns(h: &Harness, since: Instant) -> Vec<(Instant, Command)> {
    h.commands_since(since)
        .into_iter()
        .filter(|(_, c)| is_resign(c))
        .collect()
}

#[test]
fn a_node_that_booted_with_the_operator_key_loses_it_before_the_elector_campaigns() {
    let mut h = Harness::with(custody());
    h.auto_all();
    h.auto.node.as_mut().unwrap().operator_key = true;
    h.input(Input::Timeout);
    h.run_until(ms(3000));
    let calls = node_calls_since(&h, Instant::ZERO);
    let standby = first(&calls, NodeCall::SetStandby).expect("activate=false");
    let withdraw = first(&calls, NodeCall::WithdrawKey).expect("a withdrawal");
    assert!(standby < withdraw, "activate=false first: {calls:?}");
    assert!(!h.auto.node.as_ref().unwrap().operator_key);
    let (granted_at, _) = h
        .last_command(|c| matches!(c, Command::GrantLease { .. }))
        .expect("campaigning");
    assert!(
        granted_at >= calls[withdraw].0,
        "campaigned before the withdrawal"
    );
}

#[test]
fn the_key_goes_in_after_the_activation_gate_and_just_before_activate_true() {
    let mut h = Harness::candidate_behind_with(custody(), &[]);
    h.run_until(ms(30_000));
    let calls = node_calls_since(&h, Instant::ZERO);
    let install = first(&calls, NodeCall::InstallKey).expect("installed");
    let activate = first(&calls, NodeCall::SetActive).expect("activated");
    assert_eq!(activate, install + 1, "{calls:?}");
    assert!(calls[install].0 >= Instant::ZERO + h.timing.activation_delay);
    assert!(h.auto.node.as_ref().unwrap().operator_key);
    assert_eq!(h.core.role(), Role::Active);
}

#[test]
fn a_withdrawal_proves_standby_and_its_record_says_so() {
    let (mut h, _) = Harness::active_leader_with(custody(), &[B1]);
    h.run_for(dur(3000));
    // /ha accepts activate=false without acting on it: only the withdrawal can prove standby.
    h.auto.node.as_mut().unwrap().stuck = true;
    let t = h.now;
    h.input(Input::HandoverRequested { to: None });
    h.run_for(dur(2000));
    let calls = node_calls_since(&h, t);
    assert_eq!(calls[0].1, NodeCall::SetStandby, "{calls:?}");
    assert_eq!(calls[1].1, NodeCall::WithdrawKey, "{calls:?}");
    let resigned = resigns(&h, t);
    assert!(
        matches!(
            resigned.as_slice(),
            [(
                _,
                Command::Resign {
                    record: Some(HandoverRecord {
                        key_withdrawn: true,
                        ..
                    }),
                    ..
                }
            )]
        ),
        "{resigned:?}"
    );
}

#[test]
fn a_withdrawal_that_fails_proves_nothing() {
    let (mut h, _) = Harness::active_leader_with(custody(), &[B1]);
    h.run_for(dur(3000));
    let node = h.auto.node.as_mut().unwrap();
    node.stuck = true;
    node.keys_broken = true;
    h.auto.fence_fails = true;
    let t = h.now;
    h.input(Input::HandoverRequested { to: None });
    h.run_for(dur(20_000));
    assert!(resigns(&h, t).is_empty(), "{:?}", resigns(&h, t));
    assert!(h.core.stuck().is_some());
}

#[test]
fn a_record_with_a_withdrawn_key_waits_only_the_slot_clearance() {
    let mut h = Harness::candidate_behind_with(custody(), &[B1]);
    h.run_until(ms(1000));
    let mut obs = view(&[OURS]);
    obs.handover_record = Some(HandoverRecord {
        key_withdrawn: true,
        ..record(B1)
    });
    h.observe(obs);
    h.run_until(ms(20_000));
    let wait = h.timing.handover_delay_after_withdrawal();
    assert!(wait < h.timing.handover_delay());
    let installed: Vec<Instant> = node_calls_since(&h, ms(1000))
        .into_iter()
        .filter(|(_, c)| *c == NodeCall::InstallKey)
        .map(|(at, _)| at)
        .collect();
    assert_eq!(installed, vec![ms(1000) + wait]);
}

#[test]
fn a_standby_node_that_shows_the_operator_key_has_it_withdrawn() {
    let mut h = Harness::candidate_behind_with(custody(), &[B1]);
    h.run_until(ms(5000));
    // Somebody installs the key by hand.
    h.auto.node.as_mut().unwrap().operator_key = true;
    let t = h.now;
    let out = h.run_for(dur(5000));
    assert!(
        events(&out).contains(&Event::OperatorKeyUnexpected),
        "{:?}",
        events(&out)
    );
    assert!(
        node_calls_since(&h, t)
            .iter()
            .any(|(_, c)| *c == NodeCall::WithdrawKey)
    );
    assert!(!h.auto.node.as_ref().unwrap().operator_key);
}

#[test]
fn a_leader_whose_node_lost_the_key_installs_it_again() {
    let (mut h, _) = Harness::active_leader_with(custody(), &[B1]);
    h.run_for(dur(3000));
    // The node restarted with its placeholder but kept its mode (a reload of keys alone).
    h.auto.node.as_mut().unwrap().operator_key = false;
    let t = h.now;
    let out = h.run_for(dur(5000));
    assert!(events(&out).contains(&Event::OperatorKeyMissing));
    assert!(
        node_calls_since(&h, t)
            .iter()
            .any(|(_, c)| *c == NodeCall::InstallKey)
    );
    assert!(h.auto.node.as_ref().unwrap().operator_key);
}

#[test]
fn a_key_that_cannot_be_installed_leaves_the_node_inactive_and_the_leader_gives_way() {
    let mut h = Harness::candidate_behind_with(custody(), &[]);
    h.observe(view(&[OURS, B1]));
    h.auto.node.as_mut().unwrap().keys_broken = true;
    // The withdrawal at start was done before the endpoint broke.
    let t = h.now;
    h.run_for(h.timing.activation_delay + h.timing.node_lost_after + dur(10_000));
    let calls = node_calls_since(&h, t);
    assert!(
        calls.iter().all(|(_, c)| *c != NodeCall::SetActive),
        "never activated without the key: {calls:?}"
    );
    assert!(h.core.node_lost().is_some(), "{}", h.core.role_reason());
    assert!(
        !resigns(&h, t).is_empty(),
        "gave way: {}",
        h.core.role_reason()
    );
}

//! Rules `node_active_allowed`, `activation_gate` and `wait_out_last_slot`.

use super::harness::*;
use crate::*;

fn set_active_times(h: &Harness, since: Instant) -> Vec<Instant> {
    h.commands_since(since)
        .into_iter()
        .filter(|(_, c)| is_set_active(c))
        .map(|(at, _)| at)
        .collect()
}

/// A candidate behind `ahead`, then at 1 s an observation with us first carrying `record`.
/// Returns the harness and the instant of that observation.
fn becomes_first(ahead: &[CandidateId], record: Option<HandoverRecord>) -> (Harness, Instant) {
    let mut h = Harness::candidate_behind(ahead);
    h.run_until(ms(1000));
    let mut obs = view(&[OURS]);
    obs.handover_record = record;
    h.observe(obs);
    assert!(matches!(h.core.role(), Role::Leader | Role::Active));
    (h, ms(1000))
}

#[test]
fn waits_activation_delay_when_no_previous_leader_was_seen() {
    let mut h = Harness::candidate_behind(&[]); // first in the first observation, at t=0
    let first = Instant::ZERO;
    let delay = h.timing.activation_delay;
    h.run_until(first + delay - dur(1));
    assert!(set_active_times(&h, Instant::ZERO).is_empty());
    assert_eq!(h.core.role(), Role::Leader);
    h.run_until(first + delay + dur(5000));
    assert_eq!(set_active_times(&h, Instant::ZERO), vec![first + delay]);
    assert_eq!(h.core.role(), Role::Active);
}

#[test]
fn new_leader_after_crashed_leader_waits_activation_delay() {
    // The previous leader's key vanished without a handover record (its lease expired).
    let (mut h, first) = becomes_first(&[other(1)], None);
    h.run_until(first + dur(20_000));
    assert_eq!(
        set_active_times(&h, Instant::ZERO),
        vec![first + h.timing.activation_delay]
    );
}

#[test]
fn handover_record_naming_observed_previous_leader_waits_only_for_its_last_slot() {
    let (mut h, first) = becomes_first(&[other(1)], Some(record(other(1))));
    // Rule `wait_out_last_slot`: the predecessor's node may still broadcast a proposal it
    // signed before its deactivation, for a slot our node would use if it prepared within
    // the tolerated overtime of its start.
    let slot_wait = h.timing.handover_delay();
    assert!(slot_wait < h.timing.activation_delay);
    h.run_until(first + slot_wait - dur(1));
    assert!(set_active_times(&h, Instant::ZERO).is_empty());
    assert_eq!(h.core.role(), Role::Leader);
    h.run_until(first + dur(20_000));
    assert_eq!(set_active_times(&h, Instant::ZERO), vec![first + slot_wait]);
    assert_eq!(h.core.role(), Role::Active);
}

#[test]
fn stale_handover_record_does_not_skip_delay() {
    // The record names a term that ended before the one we saw (o1 was leader, o5 is old).
    let (mut h, first) = becomes_first(&[other(1)], Some(record(other(5))));
    assert!(set_active_times(&h, Instant::ZERO).is_empty());
    h.run_until(first + dur(20_000));
    assert_eq!(
        set_active_times(&h, Instant::ZERO),
        vec![first + h.timing.activation_delay]
    );
}

#[test]
fn record_from_leader_seen_before_does_not_skip_delay_after_an_unseen_leader() {
    // We saw [o1, o2, us]. o1 handed over cleanly (record o1) to o2, which led and crashed;
    // we missed those changes and now see [us] with o1's record. o2's node may still be
    // active: the record does not describe the term that ended just before ours.
    let (mut h, first) = becomes_first(&[other(1), other(2)], Some(record(other(1))));
    assert!(
        set_active_times(&h, Instant::ZERO).is_empty(),
        "skipped the delay on a record that does not name the last leader"
    );
    h.run_until(first + dur(20_000));
    assert_eq!(
        set_active_times(&h, Instant::ZERO),
        vec![first + h.timing.activation_delay]
    );
}

#[test]
fn record_from_the_only_leader_ahead_still_skips_delay_after_it_moved_up() {
    // [o1, o2, us] -> [o2, us] (o1 left) -> [us] + record(o2): o2 was the only one ahead.
    let mut h = Harness::candidate_behind(&[other(1), other(2)]);
    h.run_until(ms(500));
    h.observe(view(&[other(2), OURS]));
    h.run_until(ms(1000));
    let mut obs = view(&[OURS]);
    obs.handover_record = Some(record(other(2)));
    h.observe(obs);
    h.run_until(ms(20_000));
    assert_eq!(
        set_active_times(&h, Instant::ZERO),
        vec![ms(1000) + h.timing.handover_delay()]
    );
}

#[test]
fn activation_needs_room_for_one_more_keepalive_round() {
    // A clean handover makes us leader at 1 s; the gate opens at 1 s + the handover delay.
    // Activation needs gate + keep-alive interval + etcd timeout <= the step-down deadline,
    // which the one acknowledged keep-alive places: sent 1 ms later, or 1 ms too early.
    let timing = Timing::default();
    let gate = ms(1000) + timing.handover_delay();
    let needed_step_down = gate + timing.activation_room();
    let from_send = timing.drift_scaled(timing.lease_ttl) - timing.step_down_lead();
    let just_enough = needed_step_down - from_send;
    for (sent_at, activates) in [(just_enough, true), (just_enough - dur(1), false)] {
        let mut h = Harness::standby_ready();
        h.auto.probe = Some(true);
        h.auto.node = Some(FakeNode::standby());
        h.auto.keepalive = KeepAlives::Manual;
        h.grant();
        h.created();
        h.observe(view(&[other(1), OURS]));
        h.run_until(ms(1000));
        let mut obs = view(&[OURS]);
        obs.handover_record = Some(record(other(1)));
        h.observe(obs);
        h.run_until(sent_at);
        h.input(Input::KeepAliveAcked {
            lease: LEASE,
            sent_at,
            ttl: TTL,
        });
        assert_eq!(h.core.step_down_deadline(), Some(sent_at + from_send));
        h.run_until(gate + dur(1));
        assert_eq!(
            set_active_times(&h, Instant::ZERO),
            if activates { vec![gate] } else { vec![] },
            "keep-alive sent at {sent_at}"
        );
    }
}

#[test]
fn does_not_activate_an_unready_node() {
    let mut h = Harness::candidate_behind(&[]);
    h.auto.probe = Some(false);
    let first = ms(0);
    let delay = h.timing.activation_delay;
    h.run_until(first + delay + dur(5000));
    assert_eq!(h.core.readiness(), Readiness::Unready);
    assert_eq!(
        h.core.role(),
        Role::Leader,
        "alone: keeps leading, inactive"
    );
    assert!(set_active_times(&h, Instant::ZERO).is_empty());
    // The next good probe activates it.
    h.auto.probe = Some(true);
    let now = h.now;
    h.run_for(dur(1000));
    let times = set_active_times(&h, Instant::ZERO);
    assert_eq!(times.len(), 1);
    assert!(times[0] > now && times[0] <= now + h.timing.probe_interval);
}

#[test]
fn does_not_activate_after_a_failed_probe() {
    // One failed probe is below the unready threshold, but a node whose latest probe failed is
    // not made active: it must be ready *now*.
    let mut h = Harness::candidate_behind(&[]);
    // Leader at 0, gate at the activation delay; probes at whole seconds, the last one before
    // the gate fails.
    let gate = h.timing.activation_delay;
    let last_probe = ms(gate.as_millis() as u64 / 1000 * 1000);
    h.run_until(last_probe - dur(400));
    h.auto.probe = Some(false);
    let past_gate = Instant::ZERO + gate + dur(50);
    assert!(past_gate < last_probe + dur(1000));
    h.run_until(past_gate);
    assert_eq!(
        h.core.readiness(),
        Readiness::Ready,
        "1 failure < threshold 3"
    );
    assert!(set_active_times(&h, Instant::ZERO).is_empty());
    h.auto.probe = Some(true);
    h.run_until(last_probe + dur(2000));
    assert_eq!(
        set_active_times(&h, Instant::ZERO),
        vec![last_probe + dur(1000)]
    );
}

#[test]
fn does_not_activate_while_another_candidate_leads() {
    let mut h = Harness::candidate_behind(&[other(1)]);
    h.run_until(ms(60_000));
    assert!(set_active_times(&h, Instant::ZERO).is_empty());
    assert_eq!(h.core.role(), Role::Candidate);
}

#[test]
fn demotes_at_once_when_our_key_disappears() {
    let (mut h, activated) = Harness::active_leader(&[]);
    h.run_for(dur(3000));
    let at = h.now;
    let mut obs = view(&[other(200)]);
    obs.revision = OUR_REV + 5;
    let out = h.observe(obs);
    assert!(
        events(&out)
            .iter()
            .any(|e| matches!(e, Event::LeaseLost { lease: LEASE, .. }))
    );
    assert_eq!(
        h.mode_commands_since(activated),
        vec![(activated, NodeCall::SetActive), (at, NodeCall::SetStandby)]
    );
}

#[test]
fn observation_before_candidate_created_still_makes_us_leader() {
    // The watch reports our new key before the create call returns.
    let mut h = Harness::standby_ready();
    h.auto_all();
    h.grant();
    h.observe(view(&[OURS]));
    h.run_until(ms(100));
    h.created();
    assert_eq!(h.core.role(), Role::Leader, "{}", h.core.role_reason());
    h.run_until(ms(20_000));
    assert_eq!(
        set_active_times(&h, Instant::ZERO),
        vec![ms(100) + h.timing.activation_delay]
    );
}

#[test]
fn activation_after_a_clean_handover_says_so() {
    // Operators read the role change to see whether the delay was skipped.
    let (mut h, first) = becomes_first(&[other(1)], Some(record(other(1))));
    assert!(
        h.core.role_reason().contains("last slot"),
        "{}",
        h.core.role_reason()
    );
    h.run_until(first + dur(10_000));
    assert_eq!(h.core.role(), Role::Active);
    assert!(
        h.core.role_reason().contains("handed over cleanly"),
        "{}",
        h.core.role_reason()
    );
}

#[test]
fn first_step_is_due_at_once() {
    let mut core = Elector::new(Settings::new("us", Timing::default()), ms(5)).unwrap();
    assert_eq!(core.poll_output(), Output::Timeout(ms(5)));
    core.handle_input(ms(5), Input::Timeout);
    assert_eq!(core.poll_output(), Output::Command(Command::Observe));
}

//! Rules `node_active_allowed` and `activation_gate`.

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
fn handover_record_naming_observed_previous_leader_skips_delay() {
    let (h, first) = becomes_first(&[other(1)], Some(record(other(1))));
    assert_eq!(set_active_times(&h, Instant::ZERO), vec![first]);
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
    assert_eq!(set_active_times(&h, Instant::ZERO), vec![ms(1000)]);
}

#[test]
fn activation_needs_room_for_one_more_keepalive_round() {
    // Lease granted (sent at 0), keep-alives unanswered: step-down deadline 3.4 s. A clean
    // handover makes us leader; activation needs now + 1 s + 1 s <= 3.4 s.
    for (first_at, activates) in [(1400, true), (1401, false)] {
        let mut h = Harness::standby_ready();
        h.auto.probe = Some(true);
        h.auto.node = Some(FakeNode::standby());
        h.grant();
        h.created();
        h.observe(view(&[other(1), OURS]));
        assert_eq!(h.core.step_down_deadline(), Some(ms(3400)));
        h.run_until(ms(first_at));
        let mut obs = view(&[OURS]);
        obs.handover_record = Some(record(other(1)));
        h.observe(obs);
        assert_eq!(
            !set_active_times(&h, Instant::ZERO).is_empty(),
            activates,
            "leader at {first_at} ms"
        );
        if !activates {
            // The keep-alive sent at 1 s is acked at 1.5 s: step-down moves to 4.4 s.
            h.run_until(ms(1500));
            h.ack_keepalive();
            assert_eq!(h.core.step_down_deadline(), Some(ms(4400)));
            assert_eq!(set_active_times(&h, Instant::ZERO), vec![ms(1500)]);
        }
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
    // Leader at 0, gate at 8.9 s; probes at whole seconds, the one at 8 s fails.
    h.run_until(ms(7_600));
    h.auto.probe = Some(false);
    h.run_until(ms(8_600));
    assert_eq!(
        h.core.readiness(),
        Readiness::Ready,
        "1 failure < threshold 3"
    );
    assert!(set_active_times(&h, Instant::ZERO).is_empty());
    h.auto.probe = Some(true);
    h.run_until(ms(10_000));
    assert_eq!(set_active_times(&h, Instant::ZERO), vec![ms(9000)]);
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
    let (h, _) = becomes_first(&[other(1)], Some(record(other(1))));
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

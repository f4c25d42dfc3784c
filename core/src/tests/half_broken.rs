//! Rules `lead_may_be_given_away`, `give_way_when_node_lost`, `handover_record` (failed
//! activations), `fence` (repeated) and `report_stuck`: nodes that cannot be confirmed standby
//! or cannot be activated.

use super::harness::*;
use crate::*;

const B1: CandidateId = CandidateId {
    lease: 1201,
    create_revision: 201,
};

fn resigns(h: &Harness, since: Instant) -> Vec<(Instant, Command)> {
    h.commands_since(since)
        .into_iter()
        .filter(|(_, c)| is_resign(c))
        .collect()
}

fn fences(h: &Harness, since: Instant) -> Vec<Instant> {
    h.commands_since(since)
        .into_iter()
        .filter(|(_, c)| matches!(c, Command::Fence { .. }))
        .map(|(at, _)| at)
        .collect()
}

/// The longest a leader with another candidate behind it takes, from its node's failure to
/// its resignation, when the fence works: the node is found lost (`node_lost_after` after the
/// last read that said active, which is at most one `node_check_interval` + `node_timeout`
/// before the failure), then the fence runs one step-down lead later, and its answer (100 ms
/// in these tests) proves standby.
fn give_way_bound(t: &Timing) -> Duration {
    t.node_check_interval
        + t.node_timeout
        + t.node_lost_after
        + t.node_timeout
        + t.step_down_lead()
        + dur(100)
}

use std::time::Duration;

#[test]
fn leader_whose_node_dies_fences_and_resigns_without_record() {
    let (mut h, _) = Harness::active_leader(&[B1]);
    h.run_for(dur(5000));
    let node = h.auto.node.as_mut().unwrap();
    node.dead = true;
    node.active = false;
    let died = h.now;
    let out = h.run_for(give_way_bound(&h.timing));
    assert!(
        events(&out)
            .iter()
            .any(|e| matches!(e, Event::NodeLost { .. })),
        "{:?}",
        events(&out)
    );
    assert_eq!(fences(&h, died).len(), 1);
    let resigned = resigns(&h, died);
    assert_eq!(resigned.len(), 1, "gave way within the bound: {resigned:?}");
    assert!(
        matches!(resigned[0].1, Command::Resign { record: None, .. }),
        "a fenced node proves no clean handover"
    );
    assert!(resigned[0].0 > fences(&h, died)[0]);
}

#[test]
fn leader_whose_admin_endpoint_breaks_while_it_signs_fences_before_giving_way() {
    // Consensus keeps running (the node signs), only /ha fails: the lead may be given away
    // only after the fence reported success, never on a timeout.
    let (mut h, _) = Harness::active_leader(&[B1]);
    h.run_for(dur(5000));
    h.auto.node.as_mut().unwrap().dead = true; // still active
    let broke = h.now;
    h.run_for(give_way_bound(&h.timing));
    let fenced = fences(&h, broke);
    let resigned = resigns(&h, broke);
    assert_eq!(fenced.len(), 1);
    assert_eq!(resigned.len(), 1);
    assert!(resigned[0].0 > fenced[0]);
}

#[test]
fn leader_whose_admin_endpoint_breaks_keeps_the_lead_without_a_working_fence() {
    let (mut h, _) = Harness::active_leader(&[B1]);
    h.auto.fence_fails = true;
    h.run_for(dur(5000));
    h.auto.node.as_mut().unwrap().dead = true;
    let broke = h.now;
    let out = h.run_for(dur(60_000));
    assert!(resigns(&h, broke).is_empty(), "gave the lead away unproven");
    assert_eq!(h.core.lease(), Some(LEASE));
    assert!(
        fences(&h, broke).len() >= 5,
        "the fence is retried: {:?}",
        fences(&h, broke)
    );
    let stuck = h.core.stuck().expect("reported stuck").to_string();
    assert!(stuck.contains("keeping the lead"), "{stuck}");
    let reports = events(&out)
        .iter()
        .filter(|e| matches!(e, Event::Stuck { .. }))
        .count();
    assert!(reports >= 8, "repeated every few seconds: {reports}");
    assert!(h.core.node_lost().is_some());

    // The operator stops the node by hand (its admin endpoint answers again, standby):
    // the leader hands over at last, and is no longer stuck.
    let node = h.auto.node.as_mut().unwrap();
    node.dead = false;
    node.active = false;
    let fixed = h.now;
    let out = h.run_for(dur(3000));
    assert_eq!(resigns(&h, fixed).len(), 1);
    assert!(events(&out).contains(&Event::Unstuck));
    assert!(h.core.stuck().is_none());
}

#[test]
fn leader_whose_node_refuses_activation_hands_over_without_record() {
    // Reads work and say standby; activate=true fails every time.
    let mut h = Harness::candidate_behind(&[]);
    h.auto.node.as_mut().unwrap().refuses_activation = true;
    h.observe(view(&[OURS, B1]));
    let led = h.now;
    let delay = h.timing.activation_delay;
    h.run_for(delay + h.timing.node_lost_after + dur(3000));
    let activations = h
        .mode_commands_since(led)
        .into_iter()
        .filter(|(_, c)| *c == NodeCall::SetActive)
        .count();
    assert!(activations >= 2, "it tried more than once: {activations}");
    let resigned = resigns(&h, led);
    assert_eq!(resigned.len(), 1, "{resigned:?}");
    // Standby was confirmed by a read, but an activate=true of this term failed and could
    // still land: no record, the successor waits its activation delay.
    assert!(matches!(
        resigned[0].1,
        Command::Resign {
            record: None,
            candidate: Some(OURS),
            ..
        }
    ));
    assert!(
        fences(&h, led).is_empty(),
        "no fence needed: standby was read"
    );
}

#[test]
fn a_timed_out_activation_forbids_the_record_of_its_term() {
    // One activate=true times out (it may still land); later the node is demoted cleanly.
    let (mut h, _) = Harness::active_leader(&[B1]);
    // The activation in flight fails; the node stays standby.
    let t = h.now;
    h.run_for(dur(3000));
    let _ = t;
    // Inject: the next activation fails.
    h.auto.node.as_mut().unwrap().refuses_activation = true;
    h.auto.node.as_mut().unwrap().active = false; // restarted: reads standby
    h.run_for(dur(4000)); // re-activation after a fresh probe fails
    h.auto.node.as_mut().unwrap().refuses_activation = false;
    h.run_for(dur(4000)); // and the next one works
    assert!(h.core.node_active_commanded());
    let asked = h.now;
    h.input(Input::HandoverRequested { to: None });
    h.run_for(dur(3000));
    let resigned = resigns(&h, asked);
    assert_eq!(resigned.len(), 1, "{resigned:?}");
    assert!(
        matches!(resigned[0].1, Command::Resign { record: None, .. }),
        "a record in a term with a failed activation: {:?}",
        resigned[0].1
    );
}

#[test]
fn leader_with_a_lost_node_and_nobody_behind_keeps_trying_and_says_so() {
    let (mut h, _) = Harness::active_leader(&[]);
    h.run_for(dur(5000));
    h.auto.node.as_mut().unwrap().refuses_activation = true;
    h.auto.node.as_mut().unwrap().active = false;
    let t = h.now;
    h.run_for(h.timing.node_lost_after + dur(5000));
    assert!(resigns(&h, t).is_empty(), "nobody to hand over to");
    let stuck = h.core.stuck().expect("stuck").to_string();
    assert!(stuck.contains("no other candidate"), "{stuck}");
    // A candidate appears: the leader gives way to it.
    h.observe(view(&[OURS, B1]));
    h.run_for(dur(3000));
    assert_eq!(resigns(&h, t).len(), 1);
}

#[test]
fn a_healthy_leader_is_never_found_lost() {
    let (mut h, _) = Harness::active_leader(&[B1]);
    let out = h.run_for(dur(120_000));
    assert!(
        !events(&out)
            .iter()
            .any(|e| matches!(e, Event::NodeLost { .. } | Event::Stuck { .. }))
    );
    assert_eq!(h.core.role(), Role::Active);
}

#[test]
fn resign_is_never_started_by_a_starting_fence() {
    // With a fence that never answers (hangs), standby is never proven: no resignation.
    let (mut h, _) = Harness::active_leader(&[B1]);
    h.auto.fence = None;
    h.run_for(dur(5000));
    h.auto.node.as_mut().unwrap().dead = true;
    let broke = h.now;
    h.run_for(dur(60_000));
    assert_eq!(fences(&h, broke).len(), 1, "one run, still running");
    assert!(resigns(&h, broke).is_empty());
}

#[test]
fn a_node_that_keeps_refusing_activation_is_asked_less_and_less_often() {
    // Nobody to hand over to: the leader keeps trying, with a growing pause, and reports the
    // standby episode once, not on every read.
    let (mut h, _) = Harness::active_leader(&[]);
    h.run_for(dur(3000));
    let node = h.auto.node.as_mut().unwrap();
    node.active = false;
    node.refuses_activation = true;
    let t = h.now;
    let out = h.run_for(dur(60_000));
    let attempts: Vec<Instant> = h
        .mode_commands_since(t)
        .into_iter()
        .filter(|(_, c)| *c == NodeCall::SetActive)
        .map(|(at, _)| at)
        .collect();
    assert!(attempts.len() >= 3, "{attempts:?}");
    assert!(attempts.len() <= 10, "asked too often: {attempts:?}");
    let gaps: Vec<Duration> = attempts
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .collect();
    assert!(
        gaps.windows(2).all(|g| g[1] >= g[0]),
        "the pause grows: {gaps:?}"
    );
    let reports = events(&out)
        .iter()
        .filter(|e| **e == Event::NodeStandbyUnexpectedly)
        .count();
    assert_eq!(reports, 1);
    // The stuck report is repeated every STUCK_REPORT_INTERVAL, not more often.
    let stuck: Vec<Instant> = h
        .log
        .iter()
        .filter(|(at, o)| *at >= t && matches!(o, Output::Event(Event::Stuck { .. })))
        .map(|(at, _)| *at)
        .collect();
    assert!(stuck.len() >= 5, "{stuck:?}");
    assert!(
        stuck
            .windows(2)
            .all(|w| w[1].saturating_duration_since(w[0]) >= STUCK_REPORT_INTERVAL),
        "{stuck:?}"
    );
}

#[test]
fn the_fence_reason_never_quotes_a_read_older_than_the_activation() {
    let (mut h, _) = Harness::active_leader(&[B1]);
    // No read after the activation: the node's admin endpoint breaks at once.
    h.auto.node.as_mut().unwrap().dead = true;
    h.auto.fence = None;
    h.input(Input::HandoverRequested { to: None });
    let out = h.run_for(dur(10_000));
    let reasons: Vec<String> = commands(&out)
        .into_iter()
        .filter_map(|c| match c {
            Command::Fence { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert!(!reasons.is_empty());
    assert!(
        reasons.iter().all(|r| !r.contains("last read: standby")),
        "{reasons:?}"
    );
}

#[test]
fn an_acknowledged_standby_that_did_not_take_is_commanded_again() {
    // The admin endpoint answers 200 to activate=false without acting on it; the fence never
    // answers. Once a node within its bounds would have been confirmed standby (drain bound
    // and safety margin after the acknowledgement), the command is sent again, at the first
    // read after that, and again after each such period; the fence's own retry (every
    // step-down lead, rule `fence`) sends it too, never sooner.
    let (mut h, _) = Harness::active_leader(&[B1]);
    h.auto.fence = None;
    h.run_for(dur(3000));
    h.auto.node.as_mut().unwrap().stuck = true;
    let t = h.now;
    h.input(Input::HandoverRequested { to: None });
    h.run_for(dur(20_000));
    let standby: Vec<Instant> = h
        .mode_commands_since(t)
        .into_iter()
        .filter(|(_, c)| *c == NodeCall::SetStandby)
        .map(|(at, _)| at)
        .collect();
    assert!(standby.len() >= 3, "{standby:?}");
    let after =
        h.timing.drain_bound.mul_f64(1.0 + h.timing.max_clock_drift) + h.timing.safety_margin;
    let earliest = after.min(h.timing.fence_retry_interval());
    for pair in standby.windows(2) {
        let gap = pair[1].saturating_duration_since(pair[0]);
        assert!(
            gap >= earliest || gap <= dur(500),
            "resent too early: {standby:?}"
        );
        assert!(
            gap <= after + h.timing.confirm_poll_interval + dur(1),
            "{standby:?}"
        );
    }
}

#[test]
fn a_handover_waiting_for_a_named_target_does_not_hold_up_a_leader_whose_node_is_lost() {
    let b2 = CandidateId {
        lease: 1202,
        create_revision: 202,
    };
    let (mut h, _) = Harness::active_leader(&[B1, b2]);
    h.run_for(dur(1000));
    // Named target B2 is not next in line: the handover waits up to `handover_timeout`.
    h.input(Input::HandoverRequested {
        to: Some(candidate(b2).value),
    });
    let node = h.auto.node.as_mut().unwrap();
    node.dead = true;
    node.active = false;
    let died = h.now;
    assert!(h.timing.handover_timeout > give_way_bound(&h.timing));
    h.run_for(give_way_bound(&h.timing));
    // The lost node outranks the wait: B1, next in line, gets the lead once the fence worked.
    assert_eq!(fences(&h, died).len(), 1);
    assert_eq!(resigns(&h, died).len(), 1, "gave way within the bound");
}

#[test]
fn a_handover_waiting_for_a_named_target_does_not_hide_that_nobody_signs() {
    let (mut h, _) = Harness::active_leader(&[]);
    h.run_for(dur(1000));
    h.input(Input::HandoverRequested {
        to: Some(candidate(B1).value),
    });
    let node = h.auto.node.as_mut().unwrap();
    node.dead = true;
    node.active = false;
    h.run_for(h.timing.node_lost_after + dur(5000));
    let stuck = h.core.stuck().expect("stuck").to_string();
    assert!(stuck.contains("no other candidate"), "{stuck}");
}

/// Rule `lead_may_be_given_away` with rule `reconcile_node`: a resignation retried after a
/// failure needs the proof again. A fence that reported success stops proving standby once a
/// read sent after it says active (the node restarted active, or the fence did not stop it).
/// Run with and without the planted bug `fence_success_survives_active_read`: the test sees
/// the difference.
#[test]
fn a_fence_success_proves_nothing_once_a_later_read_says_active() {
    let retries = |planted: bool| {
        let mut settings = Settings::new("us", Timing::default());
        settings.mutation.fence_success_survives_active_read = planted;
        let (mut h, _) = Harness::active_leader_with(settings, &[B1]);
        h.run_for(dur(5000));
        // The admin endpoint breaks while the node signs; a handover is asked for.
        h.auto.node.as_mut().unwrap().dead = true;
        h.input(Input::HandoverRequested { to: None });
        let broke = h.now;
        h.run_for(h.timing.step_down_lead() + dur(2000));
        assert_eq!(fences(&h, broke).len(), 1, "planted {planted}");
        let first = resigns(&h, broke);
        assert_eq!(first.len(), 1, "the fence's success proves standby");
        // etcd fails the resignation; meanwhile the node restarts active and ignores
        // activate=false (a misconfigured restart with a broken admin handler).
        h.input(Input::ResignFailed {
            lease: LEASE,
            reason: "etcd unreachable".into(),
        });
        h.auto.node = Some(FakeNode {
            active: true,
            stuck: true,
            ..FakeNode::standby()
        });
        let failed = h.now;
        h.run_for(dur(3000));
        resigns(&h, failed + dur(1)).len()
    };
    assert_eq!(retries(false), 0, "no resignation on a stale fence success");
    assert!(retries(true) > 0, "the planted bug resigns again");
}

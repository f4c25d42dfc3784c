//! Rules `lease_deadline`, `step_down_deadline` and `fence`.

use super::harness::*;
use crate::*;
use std::time::Duration;

fn resigns(h: &Harness, since: Instant) -> Vec<(Instant, Command)> {
    h.commands_since(since)
        .into_iter()
        .filter(|(_, c)| is_resign(c))
        .collect()
}

fn is_keepalive(c: &Command) -> bool {
    matches!(c, Command::KeepAlive { .. })
}

#[test]
fn lease_deadline_counts_from_grant_send_time() {
    let mut h = Harness::standby_ready(); // GrantLease sent at t=0
    h.run_until(ms(700));
    h.grant(); // answered at 0.7 s
    // 10 s TTL x (1 - 0.01) = 9.9 s from the send time, not from the answer.
    assert_eq!(h.core.lease_deadline(), Some(ms(9_900)));
    assert_eq!(
        h.core.step_down_deadline(),
        Some(ms(9_900) - h.timing.step_down_lead())
    );
}

#[test]
fn lease_deadline_counts_from_send_time() {
    let mut h = Harness::standby_ready();
    h.auto.probe = Some(true);
    h.auto.node = Some(FakeNode::standby());
    h.grant();
    let out = h.run_until(ms(1000));
    assert!(has(&out, &Command::KeepAlive { lease: LEASE }));
    // The ack arrives late, 900 ms after the keep-alive was sent at 1 s.
    h.run_until(ms(1900));
    h.ack_keepalive();
    assert_eq!(h.core.lease_deadline(), Some(ms(1000 + 9_900)));
    assert_eq!(
        h.core.step_down_deadline(),
        Some(ms(1000 + 9_900) - h.timing.step_down_lead())
    );
}

#[test]
fn late_ack_with_old_sent_at_gives_old_based_deadline() {
    let mut h = Harness::standby_ready();
    h.auto.probe = Some(true);
    h.auto.node = Some(FakeNode::standby());
    h.grant();
    h.run_until(ms(1000)); // keep-alive sent at 1 s
    // Answered only at 4.5 s, after a long etcd stall: the lease was reset when etcd served
    // it, no earlier than 1 s. Counting from the arrival would claim 3.5 s too many.
    h.run_until(ms(4500));
    h.ack_keepalive();
    assert_eq!(h.core.lease_deadline(), Some(ms(10_900)));
    assert_ne!(h.core.lease_deadline(), Some(ms(4500 + 9_900)));
    // An even older send time never pulls the deadline back.
    h.input(Input::KeepAliveAcked {
        lease: LEASE,
        sent_at: ms(500),
        ttl: TTL,
    });
    assert_eq!(h.core.lease_deadline(), Some(ms(10_900)));
}

#[test]
fn lease_deadline_uses_granted_ttl_scaled_by_drift_bound() {
    let mut timing = Timing {
        lease_ttl: Duration::from_secs(20),
        max_clock_drift: 0.05,
        ..Timing::default()
    };
    timing.activation_delay = timing.minimum_activation_delay();
    let mut h = Harness::with(Settings::new("us", timing));
    h.bring_to_grant();
    h.input(Input::LeaseGranted {
        lease: LEASE,
        ttl: Duration::from_secs(20),
        sent_at: Instant::ZERO,
    });
    assert_eq!(h.core.lease_deadline(), Some(ms(19_000)));
    // etcd may answer with another TTL; the ack's TTL counts.
    h.run_until(ms(1000));
    h.input(Input::KeepAliveAcked {
        lease: LEASE,
        sent_at: ms(1000),
        ttl: Duration::from_secs(30),
    });
    assert_eq!(h.core.lease_deadline(), Some(ms(1000 + 28_500)));
}

#[test]
fn zero_ttl_ack_loses_the_lease() {
    let mut h = Harness::candidate_behind(&[other(1)]);
    h.auto.keepalive = KeepAlives::Manual;
    h.run_for(dur(1000));
    let out = h.input(Input::KeepAliveAcked {
        lease: LEASE,
        sent_at: h.now,
        ttl: Duration::ZERO,
    });
    assert!(matches!(
        events(&out).as_slice(),
        [Event::LeaseLost { lease: LEASE, .. }, ..]
    ));
    // Rule `end_dead_term` ends the lapsed term: that exact key and its lease, no record (a
    // candidate's term claims none).
    assert!(
        has(
            &out,
            &Command::Resign {
                lease: LEASE,
                candidate: Some(OURS),
                record: None,
                clear_request: None,
            }
        ),
        "{out:?}"
    );
    assert_eq!(h.core.lease(), None);
    assert_eq!(h.core.candidate(), None);
}

/// An etcd outage interrupts a clean handover: the lease reaches its deadline while the
/// resignation cannot get through. Rule `end_dead_term` takes the lapsed term over: its ending
/// (key, lease, and the handover record the term may claim) is retried every keep-alive
/// interval, so it lands within about a second of etcd's return, and the next leader need not
/// wait for the key to expire and then its activation delay.
#[test]
fn a_resignation_an_outage_interrupted_is_finished_when_etcd_answers() {
    const B1: CandidateId = CandidateId {
        lease: 2001,
        create_revision: 50,
    };
    let with_record = |c: &Command| {
        matches!(
            c,
            Command::Resign {
                lease: LEASE,
                candidate: Some(OURS),
                record: Some(HandoverRecord { from: OURS, .. }),
                ..
            }
        )
    };
    let (mut h, _) = Harness::active_leader(&[B1]);
    h.run_for(dur(3000));
    h.auto.keepalive = KeepAlives::Fail(h.timing.etcd_request_timeout);
    let t = h.now;
    h.input(Input::HandoverRequested { to: None });
    // etcd answers no resignation until it is back.
    let mut failed = 0;
    let mut answered = 0usize;
    for _ in 0..400 {
        h.run_for(dur(100));
        let sent = resigns(&h, t);
        for _ in answered..sent.len() {
            h.input(Input::ResignFailed {
                lease: LEASE,
                reason: "etcd unreachable".into(),
            });
            failed += 1;
        }
        answered = sent.len();
    }
    assert_eq!(h.core.lease(), None, "the lease lapsed at its deadline");
    assert!(failed >= 20, "retried all along: {failed}");
    let sent = resigns(&h, t);
    let last = sent.last().expect("resignations").clone();
    assert!(with_record(&last.1), "{last:?}");
    assert!(
        h.now.saturating_duration_since(last.0) <= h.timing.keepalive_interval + dur(100),
        "retried within a keep-alive interval: last at {}",
        last.0
    );
    // etcd is back: the next attempt lands, and the term is over.
    h.run_for(h.timing.keepalive_interval);
    let sent = resigns(&h, t);
    assert!(sent.len() > answered, "one more attempt");
    h.input(Input::Resigned { lease: LEASE });
    let after = h.now;
    h.run_for(dur(5000));
    assert!(
        resigns(&h, after)
            .iter()
            .all(|(_, c)| !matches!(c, Command::Resign { lease: LEASE, .. })),
        "{:?}",
        resigns(&h, after)
    );
}

/// A lapsed term whose key etcd no longer shows (it expired, or another leader followed) is
/// forgotten: nothing is sent for it.
#[test]
fn a_lapsed_term_whose_key_is_gone_is_forgotten() {
    let mut h = Harness::candidate_behind(&[other(1)]);
    h.auto.keepalive = KeepAlives::Manual;
    h.run_for(dur(1000));
    h.observe(view(&[other(1)]));
    let out = h.input(Input::KeepAliveAcked {
        lease: LEASE,
        sent_at: h.now,
        ttl: Duration::ZERO,
    });
    assert!(
        !commands(&out).iter().any(|c| matches!(
            c,
            Command::Resign {
                candidate: Some(_),
                ..
            }
        )),
        "{out:?}"
    );
}

#[test]
fn lease_is_given_up_at_its_deadline_without_acks() {
    let mut h = Harness::candidate_behind(&[other(1)]); // lease granted, sent at t=0
    h.auto.keepalive = KeepAlives::Fail(dur(1000));
    h.run_until(ms(9_899));
    assert_eq!(h.core.lease(), Some(LEASE));
    let out = h.run_until(ms(9_900));
    assert!(
        events(&out)
            .iter()
            .any(|e| matches!(e, Event::LeaseLost { lease: LEASE, .. }))
    );
    assert_eq!(h.core.lease(), None);
}

/// An active leader whose keep-alives stop being acknowledged from now on. Returns the
/// harness, the send time of the last acknowledged keep-alive, and the step-down deadline
/// computed from it.
fn leader_losing_etcd(node: FakeNode) -> (Harness, Instant, Instant) {
    let (mut h, _) = Harness::active_leader(&[]);
    h.run_for(dur(20_000)); // a steady leader for a while
    h.auto.node = Some(FakeNode {
        active: true,
        ..node
    });
    h.auto.keepalive = KeepAlives::Fail(dur(1000));
    let (last_acked, _) = h.last_command(is_keepalive).unwrap();
    let deadline = last_acked + Duration::from_millis(9_900);
    let step_down = deadline - h.timing.step_down_lead();
    assert_eq!(h.core.step_down_deadline(), Some(step_down));
    (h, last_acked, step_down)
}

#[test]
fn keeps_node_active_while_keepalives_are_acked() {
    let (mut h, activated) = Harness::active_leader(&[]);
    h.run_for(dur(120_000));
    assert_eq!(
        h.mode_commands_since(activated).len(),
        1,
        "only the SetActive"
    );
    assert_eq!(h.core.role(), Role::Active);
}

#[test]
fn commands_standby_at_step_down_deadline() {
    let (mut h, since, step_down) = leader_losing_etcd(FakeNode::standby());
    h.run_until(step_down + Duration::from_secs(20));
    let modes = h.mode_commands_since(since);
    assert_eq!(modes, vec![(step_down, NodeCall::SetStandby)]);
    // The last read while active started early enough to end before the deadline.
    let last_read = h.commands_since(since).into_iter().rev().find(|(at, c)| {
        *at < step_down
            && matches!(
                c,
                Command::Node {
                    call: NodeCall::ReadMode,
                    ..
                }
            )
    });
    if let Some((at, _)) = last_read {
        assert!(at + h.timing.node_timeout < step_down, "read at {at}");
    }
    assert!(h.core.node_standby_confirmed());
    assert!(
        !h.commands_since(since)
            .iter()
            .any(|(_, c)| matches!(c, Command::Fence { .. }))
    );
}

#[test]
fn standby_confirmed_only_by_a_read_saying_false() {
    let (mut h, _, step_down) = leader_losing_etcd(FakeNode {
        drain: dur(2000),
        ..FakeNode::standby()
    });
    h.run_until(step_down);
    assert_eq!(h.core.role(), Role::SteppingDown, "acked, not confirmed");
    assert!(!h.core.node_standby_confirmed());
    h.run_until(step_down + dur(1999));
    assert_eq!(h.core.role(), Role::SteppingDown);
    assert_eq!(h.core.node_last_read(), Some(true));
    // Drained at +2 s: the read then says false.
    h.run_until(step_down + dur(2000));
    assert!(h.core.node_standby_confirmed());
    let confirmed_at = h
        .log
        .iter()
        .rev()
        .find(|(_, o)| *o == Output::Event(Event::StandbyConfirmed))
        .map(|(at, _)| *at);
    assert_eq!(confirmed_at, Some(step_down + dur(2000)));
    assert_ne!(h.core.role(), Role::SteppingDown);
}

#[test]
fn rereads_at_confirm_poll_interval_while_draining() {
    let (mut h, _, step_down) = leader_losing_etcd(FakeNode {
        drain: dur(2000),
        ..FakeNode::standby()
    });
    h.run_until(step_down + dur(2000));
    let reads: Vec<Instant> = h
        .commands_since(step_down)
        .into_iter()
        .filter(|(_, c)| {
            matches!(
                c,
                Command::Node {
                    call: NodeCall::ReadMode,
                    ..
                }
            )
        })
        .map(|(at, _)| at)
        .collect();
    let expected: Vec<Instant> = (0..=10).map(|i| step_down + dur(200 * i)).collect();
    assert_eq!(reads, expected);
    assert_eq!(
        h.mode_commands_since(step_down),
        vec![(step_down, NodeCall::SetStandby)],
        "activate=false is sent once, not re-sent on every read"
    );
}

#[test]
fn fences_when_standby_unconfirmed_at_lease_deadline() {
    let (mut h, last_acked, step_down) = leader_losing_etcd(FakeNode {
        stuck: true,
        ..FakeNode::standby()
    });
    let lease_deadline = last_acked + dur(9_900);
    let out = h.run_until(lease_deadline - dur(1));
    assert!(
        !commands(&out)
            .iter()
            .any(|c| matches!(c, Command::Fence { .. }))
    );
    assert_eq!(
        h.mode_commands_since(step_down),
        vec![(step_down, NodeCall::SetStandby)]
    );

    let out = h.run_until(lease_deadline);
    let fences: Vec<_> = commands(&out)
        .into_iter()
        .filter(|c| matches!(c, Command::Fence { .. }))
        .collect();
    assert_eq!(fences.len(), 1, "{out:?}");
    assert!(
        events(&out)
            .iter()
            .any(|e| matches!(e, Event::Fenced { .. }))
    );

    // The fence stopped the node: it is not run again, and the node is not activated.
    h.run_for(dur(30_000));
    let later = h.commands_since(lease_deadline + dur(1));
    assert!(
        !later
            .iter()
            .any(|(_, c)| matches!(c, Command::Fence { .. })),
        "{later:?}"
    );
    assert!(!later.iter().any(|(_, c)| is_set_active(c)));
}

#[test]
fn a_failing_fence_is_repeated_while_the_node_is_not_proven_standby() {
    let (mut h, last_acked, _) = leader_losing_etcd(FakeNode {
        stuck: true,
        ..FakeNode::standby()
    });
    h.auto.fence_fails = true;
    let lease_deadline = last_acked + dur(9_900);
    h.run_until(lease_deadline + dur(30_000));
    let fences: Vec<Instant> = h
        .commands_since(lease_deadline)
        .into_iter()
        .filter(|(_, c)| matches!(c, Command::Fence { .. }))
        .map(|(at, _)| at)
        .collect();
    // First at the lease deadline, then one fence_retry_interval after each failure.
    let retry = h.timing.fence_retry_interval() + dur(100);
    let expected: Vec<Instant> = (0..5).map(|n| lease_deadline + retry * n).collect();
    assert_eq!(fences, expected);
    // No lease is held any more (it expired), but the node may be active: stuck, loudly.
    assert!(h.core.stuck().is_some());
    let stuck_reports = h
        .log
        .iter()
        .filter(|(_, o)| matches!(o, Output::Event(Event::Stuck { .. })))
        .count();
    assert!(
        stuck_reports >= 5,
        "repeated every few seconds: {stuck_reports}"
    );
    assert!(
        !h.commands_since(lease_deadline)
            .iter()
            .any(|(_, c)| is_campaign(c))
    );
    // The lease was not revoked: it was past our deadline, but etcd may still hold it.
    assert!(
        !h.commands_since(lease_deadline)
            .iter()
            .any(|(_, c)| is_resign(c)),
        "revoked a lease while the node may be active"
    );
}

#[test]
fn reactivation_under_renewed_lease_disarms_the_fence_of_the_earlier_step_down() {
    // Keep-alives are lost, the leader steps down at its deadline; then a keep-alive is acked
    // again and the node, never confirmed standby, is activated again under the renewed lease.
    let (mut h, last_acked, step_down) = leader_losing_etcd(FakeNode {
        drain: dur(3000),
        ..FakeNode::standby()
    });
    h.run_until(step_down);
    assert_eq!(h.core.role(), Role::SteppingDown);
    h.auto.keepalive = KeepAlives::Ack(dur(100));
    h.run_until(step_down + dur(20_000));
    let modes = h.mode_commands_since(last_acked);
    assert_eq!(modes[0], (step_down, NodeCall::SetStandby));
    assert_eq!(modes[1].1, NodeCall::SetActive, "{modes:?}");
    assert_eq!(modes.len(), 2, "{modes:?}");
    assert_eq!(h.core.role(), Role::Active);
    let fences: Vec<_> = h
        .commands_since(step_down)
        .into_iter()
        .filter(|(_, c)| matches!(c, Command::Fence { .. }))
        .collect();
    assert!(
        fences.is_empty(),
        "fenced a legitimately active leader: {fences:?}"
    );
}

/// The smallest safety margin `Timing::validate` accepts, other timings at their defaults.
fn smallest_valid_margin() -> Duration {
    (0..3000)
        .map(|ms| dur(ms * 10))
        .find(|&safety_margin| {
            let t = Timing {
                safety_margin,
                ..Timing::default()
            };
            t.validate().is_ok()
        })
        .unwrap()
}

/// An active leader with the smallest valid safety margin; keep-alives acked at once.
fn tight_active_leader() -> Harness {
    let timing = Timing {
        safety_margin: smallest_valid_margin(),
        ..Timing::default()
    };
    let mut h = Harness::with(Settings::new("us", timing.clone()));
    h.bring_to_grant();
    h.auto_all();
    h.grant();
    h.created();
    h.observe(view(&[OURS, other(200)]));
    h.run_for(timing.activation_delay + dur(3000));
    assert_eq!(h.core.role(), Role::Active);
    h
}

/// The slowest node within every bound, answering by hand from the `SetStandby` just emitted:
/// it is served and answered at the end of its node_timeout, the node drains for the full
/// drain_bound, and reads are spaced so that one is served 1 ms before the drain ends and
/// answered a full node_timeout later. Returns when standby is confirmed or the lease is gone.
fn slowest_confirmation(h: &mut Harness) {
    let timing = h.timing.clone();
    let nt = timing.node_timeout;
    let (_, call, sent) = h.last_node_call();
    assert_eq!(call, NodeCall::SetStandby);
    h.run_until(sent + nt);
    h.node_done(None);
    let drained = sent + nt + timing.drain_bound;
    let first_read = h.last_node_call().2;
    let span = (drained - dur(1)).saturating_duration_since(first_read);
    let gap = span / (span.as_millis().div_ceil(nt.as_millis()) as u32);
    assert!(gap >= timing.confirm_poll_interval && gap <= nt);
    while !h.core.node_standby_confirmed() && h.core.lease().is_some() {
        let (_, call, emitted) = h.last_node_call();
        assert_eq!(call, NodeCall::ReadMode);
        let latency = if emitted + gap <= drained - dur(1) {
            gap
        } else {
            nt
        };
        h.run_until(emitted + latency);
        h.node_done(Some(emitted < drained));
    }
}

fn fences_since(h: &Harness, since: Instant) -> Vec<(Instant, Command)> {
    h.commands_since(since)
        .into_iter()
        .filter(|(_, c)| matches!(c, Command::Fence { .. }))
        .collect()
}

#[test]
fn smallest_valid_margin_covers_the_slowest_confirmation_at_step_down() {
    // Keep-alives stop being answered: the core steps down at its deadline, and a node within
    // every bound must be confirmed standby before the lease deadline, or the fence runs
    // against a node that kept every promise.
    let mut h = tight_active_leader();
    h.auto.keepalive = KeepAlives::Fail(h.timing.etcd_request_timeout);
    let step_down = h.core.step_down_deadline().unwrap();
    h.run_until(step_down - dur(1));
    h.auto.node = None;
    h.run_until(step_down);
    assert_eq!(h.last_node_call().1, NodeCall::SetStandby);
    slowest_confirmation(&mut h);
    assert!(h.core.node_standby_confirmed());
    assert_eq!(fences_since(&h, step_down), vec![]);
}

#[test]
fn smallest_valid_margin_covers_the_slowest_confirmation_after_a_handover() {
    // The handover comes while a read is in flight: activate=false waits for its answer (up
    // to node_timeout). The fence deadline must leave room for that wait too.
    let mut h = tight_active_leader();
    let nt = h.timing.node_timeout;
    h.auto.node = None;
    let before = h.last_node_call().0;
    while h.last_node_call().0 == before {
        h.run_for(dur(1));
    }
    let (_, call, read_at) = h.last_node_call();
    assert_eq!(call, NodeCall::ReadMode);
    h.input(Input::HandoverRequested { to: None });
    assert_eq!(
        h.last_node_call().1,
        NodeCall::ReadMode,
        "one call at a time"
    );
    h.run_until(read_at + nt);
    h.node_done(Some(true));
    assert_eq!(h.last_node_call().1, NodeCall::SetStandby);
    slowest_confirmation(&mut h);
    assert!(h.core.node_standby_confirmed());
    assert_eq!(fences_since(&h, read_at), vec![]);
}

fn grant_attempts(h: &Harness) -> Vec<Instant> {
    h.commands_since(Instant::ZERO)
        .into_iter()
        .filter(|(_, c)| matches!(c, Command::GrantLease { .. }))
        .map(|(at, _)| at)
        .collect()
}

#[test]
fn grant_retries_back_off_to_a_quarter_of_the_ttl_and_restart_when_etcd_answers() {
    let mut h = Harness::with(Settings::new("us", Timing::fast_profile()));
    h.bring_to_grant();
    h.auto.probe = Some(true);
    let failed = || Input::LeaseGrantFailed {
        reason: "etcd unreachable".into(),
    };
    for _ in 0..6 {
        h.input(failed());
        let before = grant_attempts(&h).len();
        for _ in 0..300 {
            h.run_for(dur(10));
            if grant_attempts(&h).len() > before {
                break;
            }
        }
    }
    let gaps: Vec<Duration> = grant_attempts(&h)
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .collect();
    // 200 ms doubling, capped at a quarter of the 7 s TTL (not at 5 s).
    assert_eq!(gaps, [200, 400, 800, 1600, 1750, 1750].map(dur));

    // etcd answers a read while the next grant waits its 1.75 s: it comes 200 ms later.
    h.input(failed());
    h.run_for(dur(100));
    let read_at = h.now;
    h.observe(view(&[other(1)]));
    h.run_for(dur(300));
    assert_eq!(grant_attempts(&h).last(), Some(&(read_at + dur(200))));
}

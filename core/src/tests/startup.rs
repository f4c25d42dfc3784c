//! Rule `campaign_allowed`: force the node standby, confirm it by a read, and campaign only
//! with the node confirmed standby and ready.

use super::harness::*;
use crate::*;
use std::time::Duration;

#[test]
fn starts_by_forcing_standby_and_reading_it_back() {
    let mut h = Harness::new();
    let out = h.input(Input::Timeout);
    assert_eq!(
        commands(&out),
        vec![
            Command::Observe,
            Command::Node {
                id: 1,
                call: NodeCall::SetStandby
            },
            Command::ProbeReadiness,
        ]
    );
    assert_eq!(h.core.role(), Role::Starting);

    // Ready, but standby is only commanded: no campaign yet.
    assert!(commands(&h.input(probed(true))).is_empty());
    // The acknowledgement of activate=false is no proof either: read it back.
    let out = h.node_done(None);
    assert_eq!(
        commands(&out),
        vec![Command::Node {
            id: 2,
            call: NodeCall::ReadMode
        }]
    );
    assert!(!h.core.node_standby_confirmed());

    let out = h.node_done(Some(false));
    assert!(events(&out).contains(&Event::StandbyConfirmed));
    assert_eq!(commands(&out), vec![Command::GrantLease { ttl: TTL }]);
    assert_eq!(h.core.role(), Role::Standby);
}

#[test]
fn never_campaigns_before_standby_confirmed() {
    // The node acknowledges activate=false but keeps reading active (misconfigured, stuck).
    let mut h = Harness::new();
    h.auto.probe = Some(true);
    h.auto.fence = Some(dur(100));
    h.auto.fence_fails = true;
    h.auto.node = Some(FakeNode {
        active: true,
        stuck: true,
        ..FakeNode::standby()
    });
    h.input(Input::Timeout);
    h.run_until(ms(30_000));
    let all = h.commands_since(Instant::ZERO);
    assert!(!all.iter().any(|(_, c)| is_campaign(c)), "{all:?}");
    assert_eq!(h.core.role(), Role::Starting);

    // The node finally reads standby: the campaign starts at the first read that says so.
    let node = h.auto.node.as_mut().unwrap();
    node.active = false;
    node.stuck = false;
    let flipped = h.now;
    h.run_for(dur(1000));
    let first_read = h
        .commands_since(flipped + dur(1))
        .into_iter()
        .find(|(_, c)| {
            matches!(
                c,
                Command::Node {
                    call: NodeCall::ReadMode,
                    ..
                }
            )
        })
        .map(|(at, _)| at)
        .expect("keeps reading");
    let (grant_at, _) = h
        .last_command(is_campaign)
        .expect("campaigns once confirmed");
    assert_eq!(grant_at, first_read);
    assert!(first_read <= flipped + h.timing.confirm_poll_interval);
}

#[test]
fn never_campaigns_while_unready() {
    let mut h = Harness::new();
    h.auto.node = Some(FakeNode::standby());
    h.auto.probe = Some(false);
    h.input(Input::Timeout);
    h.run_until(ms(30_000));
    assert!(h.core.node_standby_confirmed());
    assert_eq!(h.core.readiness(), Readiness::Unready);
    assert!(
        !h.commands_since(Instant::ZERO)
            .iter()
            .any(|(_, c)| is_campaign(c))
    );

    // One good probe and the campaign starts at once.
    h.auto.probe = Some(true);
    let out = h.run_until(ms(31_000));
    assert!(has(&out, &Command::GrantLease { ttl: TTL }));
    let (at, _) = h.last_command(is_campaign).unwrap();
    assert_eq!(at, ms(31_000), "at the first good probe");
}

#[test]
fn never_creates_candidate_when_node_reads_active_while_lease_is_granted() {
    // GrantLease goes out at t=0 with the node confirmed standby; the node then restarts
    // active before the grant comes back. The granted lease must not be used to campaign.
    let mut h = Harness::standby_ready();
    h.auto.probe = Some(true);
    h.auto.keepalive = KeepAlives::Ack(Duration::ZERO);
    h.auto.node = Some(FakeNode {
        active: true,
        drain: dur(2000),
        ..FakeNode::standby()
    });
    // Confirmed at t=0; the next read, at the poll interval, finds it active.
    let out = h.run_until(ms(200));
    assert!(events(&out).contains(&Event::NodeActiveUnexpectedly));
    assert_eq!(node_calls(&out, NodeCall::SetStandby), 1);
    assert!(!h.core.node_standby_confirmed());

    h.run_until(ms(900));
    let out = h.grant(); // sent at 0
    assert!(
        !has(&out, &Command::CreateCandidate { lease: LEASE }),
        "campaigned with a node that reads active: {out:?}"
    );
    // Drained 2 s after activate=false (t=0.2 s): the read at 2.2 s confirms standby and the
    // candidate key follows at once.
    h.run_until(ms(4000));
    let (at, _) = h
        .last_command(|c| matches!(c, Command::CreateCandidate { .. }))
        .expect("campaigns once confirmed");
    assert_eq!(at, ms(2200));
}

#[test]
fn never_creates_candidate_when_node_turns_unready_while_lease_is_granted() {
    let timing = Timing {
        unready_threshold: 1,
        probe_interval: dur(500),
        ..Timing::default()
    };
    let mut h = Harness::with(Settings::new("us", timing));
    h.bring_to_grant(); // GrantLease at t=0
    h.auto.node = Some(FakeNode::standby());
    h.auto.keepalive = KeepAlives::Ack(Duration::ZERO);
    h.auto.probe = Some(false);
    h.run_until(ms(500));
    assert_eq!(h.core.readiness(), Readiness::Unready);
    h.run_until(ms(800));
    let out = h.grant(); // sent at 0
    assert!(
        !has(&out, &Command::CreateCandidate { lease: LEASE }),
        "campaigned with an unready node: {out:?}"
    );
    // Ready again at the next probe: the candidate key follows at once.
    h.auto.probe = Some(true);
    h.run_until(ms(1000));
    let (at, _) = h
        .last_command(|c| matches!(c, Command::CreateCandidate { .. }))
        .expect("campaigns once ready");
    assert_eq!(at, ms(1000));
}

#[test]
fn retries_a_failed_standby_command_after_the_poll_interval() {
    let mut h = Harness::new();
    h.input(Input::Timeout);
    h.input(probed(true));
    let out = h.node_failed(); // activate=false timed out
    assert!(commands(&out).is_empty(), "no tight retry loop: {out:?}");
    let poll = h.timing.confirm_poll_interval;
    let out = h.run_until(Instant::ZERO + poll);
    assert_eq!(
        commands(&out),
        vec![Command::Node {
            id: 2,
            call: NodeCall::SetStandby
        }]
    );
    h.node_done(None);
    let out = h.node_done(Some(false));
    assert_eq!(commands(&out), vec![Command::GrantLease { ttl: TTL }]);
}

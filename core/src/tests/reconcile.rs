//! Rule `reconcile_node`: a read is the only proof of the node's mode, and the mode is brought
//! back in line with the role as soon as a read disagrees.

use super::harness::*;
use crate::*;

fn read_times(h: &Harness, since: Instant) -> Vec<Instant> {
    h.commands_since(since)
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
        .collect()
}

#[test]
fn commands_standby_at_once_when_node_reads_active_while_not_leader() {
    let mut h = Harness::candidate_behind(&[other(1)]);
    h.run_until(ms(5000));
    // The node restarts, misconfigured: active.
    h.auto.node.as_mut().unwrap().active = true;
    let since = h.now;
    let out = h.run_for(h.timing.node_check_interval);
    let read_at = read_times(&h, since)[0];
    assert!(events(&out).contains(&Event::NodeActiveUnexpectedly));
    assert_eq!(
        h.mode_commands_since(since),
        vec![(read_at, NodeCall::SetStandby)],
        "standby commanded at the read that found it active"
    );
    assert!(
        h.core.node_standby_confirmed(),
        "the fake node obeys at once"
    );
}

#[test]
fn fences_a_node_that_stays_active_while_not_leader() {
    let mut h = Harness::candidate_behind(&[other(1)]);
    h.run_until(ms(5000));
    let node = h.auto.node.as_mut().unwrap();
    node.active = true;
    node.stuck = true;
    let since = h.now;
    h.run_for(dur(20_000));
    let found = read_times(&h, since)[0];
    let fences: Vec<Instant> = h
        .commands_since(since)
        .into_iter()
        .filter(|(_, c)| matches!(c, Command::Fence { .. }))
        .map(|(at, _)| at)
        .collect();
    // Within drain bound + safety margin of finding it active, once.
    assert_eq!(fences, vec![found + h.timing.step_down_lead()]);
    assert!(
        !h.commands_since(since)
            .iter()
            .any(|(_, c)| is_set_active(c))
    );
}

#[test]
fn reactivates_leader_node_after_it_restarted_in_standby() {
    let (mut h, activated) = Harness::active_leader(&[]);
    h.run_for(dur(5000));
    // The node restarts (configured standby, as it should be).
    h.auto.node.as_mut().unwrap().active = false;
    let since = h.now;
    let out = h.run_for(h.timing.node_check_interval + h.timing.probe_interval);
    let read_at = read_times(&h, since)[0];
    assert!(events(&out).contains(&Event::StandbyConfirmed));
    // Said, not silent; and activated again only after a probe sent after that read said
    // ready (it may have restarted unready). Meanwhile it is commanded standby.
    assert!(events(&out).contains(&Event::NodeStandbyUnexpectedly));
    let probe_at = h
        .commands_since(read_at)
        .into_iter()
        .find(|(_, c)| *c == Command::ProbeReadiness)
        .map(|(at, _)| at)
        .expect("a fresh probe");
    let modes = h.mode_commands_since(activated);
    let reactivated = modes.last().expect("modes").0;
    assert_eq!(
        modes,
        vec![
            (activated, NodeCall::SetActive),
            (read_at, NodeCall::SetStandby),
            (reactivated, NodeCall::SetActive)
        ]
    );
    assert!(probe_at > read_at);
    // After the fresh probe, and one node-check interval of backoff.
    assert!(reactivated >= probe_at);
    assert_eq!(reactivated, read_at + h.timing.node_check_interval);
    assert_eq!(h.core.role(), Role::Active);
}

#[test]
fn leader_node_reading_standby_is_not_reactivated_while_unready() {
    let (mut h, activated) = Harness::active_leader(&[]);
    h.run_for(dur(5000));
    h.auto.node.as_mut().unwrap().active = false;
    h.auto.probe = Some(false);
    h.run_for(dur(1500));
    h.auto.probe = None; // no answers: readiness stays unknown-fresh
    h.run_for(dur(10_000));
    let activations = h
        .mode_commands_since(activated + dur(1))
        .into_iter()
        .filter(|(_, c)| *c == NodeCall::SetActive)
        .count();
    assert_eq!(
        activations, 0,
        "re-activated before a fresh successful probe"
    );
}

#[test]
fn a_read_older_than_the_activation_proves_nothing() {
    // A read that said false but was made before our activate=true does not confirm standby.
    let (mut h, _) = Harness::active_leader(&[]);
    h.auto.node = None; // answer by hand from here
    h.run_for(dur(1000));
    let (id, call, _) = h.last_node_call();
    assert_eq!(call, NodeCall::ReadMode);
    // An answer for an unknown (old) call id is ignored.
    h.input(Input::NodeCallDone {
        id: id - 1,
        call: NodeCall::ReadMode,
        active: Some(false),
        keys: None,
    });
    assert!(!h.core.node_standby_confirmed());
    assert!(h.core.node_active_commanded());
}

#[test]
fn reads_periodically_while_standby() {
    let mut h = Harness::candidate_behind(&[other(1)]);
    h.run_until(ms(10_000));
    let reads = read_times(&h, ms(3000));
    let gaps: Vec<_> = reads
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .collect();
    assert!(!gaps.is_empty());
    assert!(
        gaps.iter().all(|g| *g == h.timing.node_check_interval),
        "{gaps:?}"
    );
}

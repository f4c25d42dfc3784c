use super::*;

const ROUND: Duration = Duration::from_secs(5);

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn answer(reply: HaReply) -> Reply {
    match reply {
        HaReply::Answer(reply) => reply,
        HaReply::Hang => panic!("expected an answer, got a hang"),
    }
}

fn read(node: &mut NodeModel, now: Duration) -> Reply {
    answer(node.handle_ha(now, None))
}

fn write(node: &mut NodeModel, now: Duration, value: &str) -> Reply {
    answer(node.handle_ha(now, Some(value)))
}

fn active_body(active: bool) -> String {
    format!("{{\"active\":{active}}}\n")
}

#[test]
fn read_reports_start_mode() {
    let mut standby = NodeModel::new(false, ROUND);
    assert_eq!(
        read(&mut standby, ms(10)),
        Reply::new(200, active_body(false))
    );
    let mut active = NodeModel::new(true, ROUND);
    assert_eq!(
        read(&mut active, ms(10)),
        Reply::new(200, active_body(true))
    );
}

#[test]
fn empty_value_is_a_read() {
    let mut node = NodeModel::new(true, ROUND);
    assert_eq!(
        write(&mut node, ms(10), ""),
        Reply::new(200, active_body(true))
    );
}

#[test]
fn activate_answers_empty_200_and_reads_active_at_once() {
    let mut node = NodeModel::new(false, ROUND);
    assert_eq!(write(&mut node, ms(100), "true"), Reply::new(200, ""));
    assert!(node.is_effectively_active(ms(100)));
    assert_eq!(read(&mut node, ms(100)).body, active_body(true));
    assert_eq!(
        node.mode_history(ms(100)),
        vec![(ms(0), false), (ms(100), true)]
    );
}

#[test]
fn values_are_lower_cased() {
    let mut node = NodeModel::new(false, Duration::ZERO);
    write(&mut node, ms(1), "TRUE");
    assert!(node.is_effectively_active(ms(1)));
    write(&mut node, ms(2), "False");
    assert!(!node.is_effectively_active(ms(2)));
}

#[test]
fn bad_values_are_ignored_with_an_empty_200() {
    for start in [false, true] {
        let mut node = NodeModel::new(start, ROUND);
        for value in [
            "1", "0", "yes", "no", "on", " true", "true ", "tru", "falsey",
        ] {
            assert_eq!(
                write(&mut node, ms(7), value),
                Reply::new(200, ""),
                "{value}"
            );
            assert_eq!(node.is_effectively_active(ms(7)), start, "{value}");
        }
        assert_eq!(node.mode_history(ms(7)), vec![(ms(0), start)]);
    }
}

#[test]
fn deactivation_reads_active_until_the_round_window_ends() {
    let mut node = NodeModel::new(true, ROUND);
    // 7 s is inside the window [5 s, 10 s).
    assert_eq!(write(&mut node, ms(7_000), "false"), Reply::new(200, ""));
    assert!(!node.is_commanded_active());
    assert_eq!(node.tail_end(), Some(ms(10_000)));
    assert_eq!(read(&mut node, ms(7_000)).body, active_body(true));
    assert_eq!(read(&mut node, ms(9_999)).body, active_body(true));
    assert!(node.is_effectively_active(ms(9_999)));
    assert!(!node.is_effectively_active(ms(10_000)));
    assert_eq!(read(&mut node, ms(10_000)).body, active_body(false));
    assert_eq!(node.tail_end(), None);
    assert_eq!(
        node.mode_history(ms(20_000)),
        vec![(ms(0), true), (ms(10_000), false)]
    );
}

#[test]
fn deactivation_on_a_window_boundary_finishes_the_round_just_started() {
    let mut node = NodeModel::new(true, ROUND);
    write(&mut node, ms(5_000), "false");
    assert_eq!(node.tail_end(), Some(ms(10_000)));
}

#[test]
fn repeated_deactivation_does_not_extend_the_tail() {
    let mut node = NodeModel::new(true, ROUND);
    write(&mut node, ms(1_000), "false");
    write(&mut node, ms(4_000), "false");
    assert_eq!(node.tail_end(), Some(ms(5_000)));
    // Standby already: a later deactivation starts no round.
    write(&mut node, ms(6_000), "false");
    assert_eq!(node.tail_end(), None);
    assert!(!node.is_effectively_active(ms(6_000)));
    assert_eq!(
        node.mode_history(ms(6_000)),
        vec![(ms(0), true), (ms(5_000), false)]
    );
}

#[test]
fn deactivating_a_standby_node_has_no_tail() {
    let mut node = NodeModel::new(false, ROUND);
    write(&mut node, ms(1_000), "false");
    assert!(!node.is_effectively_active(ms(1_000)));
    assert_eq!(node.mode_history(ms(1_000)), vec![(ms(0), false)]);
}

#[test]
fn reactivation_during_the_tail_keeps_the_node_active() {
    let mut node = NodeModel::new(true, ROUND);
    write(&mut node, ms(1_000), "false");
    write(&mut node, ms(2_000), "true");
    assert_eq!(node.tail_end(), None);
    assert!(node.is_effectively_active(ms(60_000)));
    assert_eq!(node.mode_history(ms(60_000)), vec![(ms(0), true)]);
}

#[test]
fn zero_round_deactivates_at_once() {
    let mut node = NodeModel::new(true, Duration::ZERO);
    write(&mut node, ms(1_234), "false");
    assert_eq!(node.tail_end(), None);
    assert_eq!(read(&mut node, ms(1_234)).body, active_body(false));
    assert_eq!(
        node.mode_history(ms(1_234)),
        vec![(ms(0), true), (ms(1_234), false)]
    );
}

#[test]
fn history_materializes_the_tail_end_when_it_is_due() {
    let mut node = NodeModel::new(false, ROUND);
    write(&mut node, ms(1_000), "true");
    write(&mut node, ms(2_000), "false");
    let before_end = node.mode_history(ms(4_999));
    assert_eq!(before_end, vec![(ms(0), false), (ms(1_000), true)]);
    let after_end = node.mode_history(ms(5_000));
    assert_eq!(
        after_end,
        vec![(ms(0), false), (ms(1_000), true), (ms(5_000), false)]
    );
    // Settling the tail by a later call records it at the instant it ended, not later.
    write(&mut node, ms(8_000), "true");
    assert_eq!(
        node.mode_history(ms(8_000)),
        vec![
            (ms(0), false),
            (ms(1_000), true),
            (ms(5_000), false),
            (ms(8_000), true)
        ]
    );
}

#[test]
fn history_only_grows() {
    let mut node = NodeModel::new(true, ms(300));
    let mut previous = node.mode_history(ms(0));
    let script = [
        (100, "false"),
        (350, "true"),
        (400, "false"),
        (610, "false"),
        (650, "x"),
    ];
    for (at, value) in script {
        for t in (previous.last().unwrap().0.as_millis() as u64..at).step_by(25) {
            let now = node.mode_history(ms(t));
            assert!(
                now.starts_with(&previous),
                "{now:?} does not extend {previous:?}"
            );
            previous = now;
        }
        write(&mut node, ms(at), value);
        let now = node.mode_history(ms(at));
        assert!(
            now.starts_with(&previous),
            "{now:?} does not extend {previous:?}"
        );
        assert!(now.windows(2).all(|w| w[0].1 != w[1].1 && w[0].0 <= w[1].0));
        previous = now;
    }
    assert_eq!(
        previous,
        vec![
            (ms(0), true),
            (ms(300), false),
            (ms(350), true),
            (ms(600), false)
        ]
    );
}

#[test]
fn advance_settles_an_ended_tail() {
    let mut node = NodeModel::new(true, ROUND);
    write(&mut node, ms(1_000), "false");
    node.advance(ms(4_000));
    assert_eq!(node.tail_end(), Some(ms(5_000)));
    node.advance(ms(6_000));
    assert_eq!(node.tail_end(), None);
    assert_eq!(
        node.mode_history(ms(6_000)),
        vec![(ms(0), true), (ms(5_000), false)]
    );
}

#[test]
fn time_going_backwards_is_taken_as_the_latest_time() {
    let mut node = NodeModel::new(true, ROUND);
    write(&mut node, ms(7_000), "false");
    write(&mut node, ms(11_000), "x");
    // An earlier `now` must not resurrect the tail that has ended.
    assert!(!node.is_effectively_active(ms(8_000)));
    write(&mut node, ms(3_000), "true");
    assert_eq!(node.mode_history(ms(0)).last(), Some(&(ms(11_000), true)));
}

#[test]
fn restart_uses_the_configured_start_mode_and_drops_the_tail() {
    let mut node = NodeModel::new(false, ROUND);
    write(&mut node, ms(1_000), "true");
    write(&mut node, ms(2_000), "false");
    // A restart mid-tail loses the consensus state: standby at once.
    node.restart(ms(3_000), false);
    assert!(!node.is_effectively_active(ms(3_000)));
    assert!(!node.start_active());
    // A misconfigured replica (`system.active` left at its default) comes back active.
    node.restart(ms(9_000), true);
    assert!(node.start_active());
    assert!(node.is_commanded_active());
    assert_eq!(read(&mut node, ms(9_000)).body, active_body(true));
    assert_eq!(
        node.mode_history(ms(9_000)),
        vec![
            (ms(0), false),
            (ms(1_000), true),
            (ms(3_000), false),
            (ms(9_000), true)
        ]
    );
}

#[test]
fn restart_keeps_readiness_and_faults() {
    let mut node = NodeModel::new(true, ROUND);
    node.set_ready(true);
    node.set_admin_fault(AdminFault::Status500);
    node.restart(ms(1_000), true);
    assert!(node.is_ready());
    assert_eq!(node.admin_fault(), AdminFault::Status500);
    assert_eq!(node.mode_history(ms(1_000)), vec![(ms(0), true)]);
}

#[test]
fn status_500_fault_answers_500_and_has_no_effect() {
    let mut node = NodeModel::new(false, ROUND);
    node.set_admin_fault(AdminFault::Status500);
    for value in [None, Some("true"), Some("false")] {
        let reply = answer(node.handle_ha(ms(10), value));
        assert_eq!(reply.status, 500);
    }
    assert!(!node.is_effectively_active(ms(10)));
    node.set_admin_fault(AdminFault::None);
    assert_eq!(read(&mut node, ms(20)).body, active_body(false));
}

#[test]
fn garbage_fault_answers_200_with_non_json_and_has_no_effect() {
    let mut node = NodeModel::new(true, Duration::ZERO);
    node.set_admin_fault(AdminFault::GarbageBody);
    assert_eq!(read(&mut node, ms(10)), Reply::new(200, GARBAGE_BODY));
    assert_eq!(
        write(&mut node, ms(10), "false"),
        Reply::new(200, GARBAGE_BODY)
    );
    assert!(node.is_effectively_active(ms(10)));
    assert!(GARBAGE_BODY.contains("\"active\":false"));
}

#[test]
fn hang_fault_never_answers_and_has_no_effect() {
    let mut node = NodeModel::new(true, Duration::ZERO);
    node.set_admin_fault(AdminFault::Hang);
    assert_eq!(node.handle_ha(ms(10), Some("false")), HaReply::Hang);
    assert_eq!(node.handle_ha(ms(10), None), HaReply::Hang);
    assert!(node.is_effectively_active(ms(10)));
    assert_eq!(node.mode_history(ms(10)), vec![(ms(0), true)]);
}

#[test]
fn a_fault_does_not_stop_the_tail_from_ending() {
    let mut node = NodeModel::new(true, ROUND);
    write(&mut node, ms(1_000), "false");
    node.set_admin_fault(AdminFault::Hang);
    assert_eq!(node.handle_ha(ms(6_000), Some("true")), HaReply::Hang);
    assert!(!node.is_effectively_active(ms(6_000)));
    assert_eq!(
        node.mode_history(ms(6_000)),
        vec![(ms(0), true), (ms(5_000), false)]
    );
}

#[test]
fn refused_activation_answers_500_and_leaves_reads_and_standby_working() {
    let mut node = NodeModel::new(false, ROUND);
    node.set_refuse_activation(true);
    assert_eq!(write(&mut node, ms(10), "true").status, 500);
    assert!(!node.is_effectively_active(ms(10)));
    assert_eq!(read(&mut node, ms(20)).body, active_body(false));
    // A node already active keeps signing; it can still be demoted.
    let mut active = NodeModel::new(true, Duration::ZERO);
    active.set_refuse_activation(true);
    assert_eq!(write(&mut active, ms(10), "false"), Reply::new(200, ""));
    assert!(!active.is_effectively_active(ms(10)));
    active.restart(ms(20), false);
    assert!(active.refuses_activation());
    active.set_refuse_activation(false);
    assert_eq!(write(&mut active, ms(30), "true"), Reply::new(200, ""));
    assert!(active.is_effectively_active(ms(30)));
}

#[test]
fn fault_names_round_trip() {
    for fault in [
        AdminFault::None,
        AdminFault::Status500,
        AdminFault::GarbageBody,
        AdminFault::Hang,
    ] {
        assert_eq!(AdminFault::parse(fault.as_str()), Some(fault));
    }
    assert_eq!(AdminFault::parse("HANG"), None);
}

#[test]
fn liveness_is_always_ok() {
    let mut node = NodeModel::new(false, ROUND);
    assert_eq!(node.handle_probe(ms(0), "/liveness"), Reply::new(200, "OK"));
    node.set_ready(true);
    node.set_admin_fault(AdminFault::Hang);
    assert_eq!(node.handle_probe(ms(0), "/liveness"), Reply::new(200, "OK"));
}

#[test]
fn readiness_and_health_follow_readiness() {
    let mut node = NodeModel::new(false, ROUND);
    assert!(!node.is_ready());
    for path in ["/readiness", "/health"] {
        assert_eq!(node.handle_probe(ms(0), path), Reply::new(503, "FAIL"));
    }
    node.set_ready(true);
    for path in ["/readiness", "/health"] {
        assert_eq!(node.handle_probe(ms(0), path), Reply::new(200, "OK"));
    }
    node.set_ready(false);
    assert_eq!(node.handle_probe(ms(0), "/health"), Reply::new(503, "FAIL"));
}

#[test]
fn probes_are_not_affected_by_admin_faults() {
    let mut node = NodeModel::new(false, ROUND);
    node.set_ready(true);
    node.set_admin_fault(AdminFault::Status500);
    assert_eq!(
        node.handle_probe(ms(0), "/readiness"),
        Reply::new(200, "OK")
    );
}

#[test]
fn metrics_report_mode_and_readiness() {
    let mut node = NodeModel::new(true, ROUND);
    write(&mut node, ms(1_000), "false");
    let during_tail = node.handle_probe(ms(2_000), "/metrics");
    assert_eq!(during_tail.status, 200);
    assert!(during_tail.body.contains("\niotex_standin_active 1\n"));
    assert!(during_tail.body.contains("\niotex_standin_ready 0\n"));
    let after_tail = node.handle_probe(ms(5_000), "/metrics").body;
    assert!(after_tail.contains("\niotex_standin_active 0\n"));
    assert!(after_tail.contains("\niotex_standin_mode_changes_total 1\n"));
}

#[test]
fn unknown_probe_paths_are_404() {
    let node = NodeModel::new(false, ROUND);
    assert_eq!(node.handle_probe(ms(0), "/ha").status, 404);
    assert_eq!(node.handle_probe(ms(0), "/").status, 404);
}

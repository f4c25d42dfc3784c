//! The registry's write schedule and its record.

use super::*;
use elector_core::{Elector, Instant as CoreInstant, Settings, Timing};

fn snapshot() -> Snapshot {
    let telemetry = Telemetry::new("/iotex", "node-a");
    let core = Elector::new(
        Settings::new("node-a".to_owned(), Timing::default()),
        CoreInstant::ZERO,
    )
    .expect("default timing");
    telemetry.update(&core, CoreInstant::ZERO);
    telemetry.snapshot().expect("a snapshot after an update")
}

fn watched(role: &'static str) -> Watched {
    let mut snapshot = snapshot();
    snapshot.role = role;
    Watched::of(&snapshot)
}

#[test]
fn a_change_is_written_at_once_but_never_twice_within_the_gap() {
    let t0 = Instant::now();
    let mut schedule = WriteSchedule::new(DEFAULT_REFRESH);
    assert!(schedule.due(t0, &watched("standby")), "the first write");
    schedule.written(t0, watched("standby"));
    assert!(!schedule.due(t0 + Duration::from_millis(500), &watched("candidate")));
    assert!(schedule.due(t0 + MIN_WRITE_GAP, &watched("candidate")));
    assert!(!schedule.due(t0 + MIN_WRITE_GAP, &watched("standby")));
}

#[test]
fn an_unchanged_record_is_refreshed_every_interval() {
    let t0 = Instant::now();
    let mut schedule = WriteSchedule::new(DEFAULT_REFRESH);
    schedule.written(t0, watched("standby"));
    assert!(!schedule.due(t0 + DEFAULT_REFRESH - MIN_WRITE_GAP, &watched("standby")));
    assert!(schedule.due(t0 + DEFAULT_REFRESH, &watched("standby")));
}

#[test]
fn a_flapping_node_costs_at_most_one_write_a_second() {
    let t0 = Instant::now();
    let mut schedule = WriteSchedule::new(DEFAULT_REFRESH);
    let mut writes = 0;
    // The snapshot is looked at every 100 ms here (ten times the real rate), and the role
    // changes every time.
    let roles = ["active", "standby", "candidate"];
    for step in 0..600u32 {
        let now = t0 + Duration::from_millis(100) * step;
        let role = roles[step as usize % roles.len()];
        if schedule.due(now, &watched(role)) {
            schedule.written(now, watched(role));
            writes += 1;
        }
    }
    assert_eq!(writes, 60, "one write per second over a minute");
}

#[test]
fn failures_back_off_up_to_the_refresh_interval() {
    let t0 = Instant::now();
    let refresh = Duration::from_secs(8);
    let mut schedule = WriteSchedule::new(refresh);
    schedule.failed(t0);
    assert!(schedule.failing());
    assert!(!schedule.due(t0 + Duration::from_millis(999), &watched("standby")));
    assert!(schedule.due(t0 + RETRY_FIRST, &watched("standby")));
    let mut now = t0;
    let mut delays = Vec::new();
    for _ in 0..5 {
        let (at, delay) = schedule.retry.expect("retrying");
        delays.push(delay.as_secs());
        now = at;
        schedule.failed(now);
    }
    assert_eq!(delays, vec![1, 2, 4, 8, 8]);
    schedule.written(now, watched("standby"));
    assert!(!schedule.failing());
}

#[test]
fn the_record_copies_the_snapshot_and_says_when() {
    let mut snapshot = snapshot();
    snapshot.node_mode = Some("active");
    snapshot.stuck = Some("the node does not answer".to_owned());
    snapshot.lease_id = Some("2b".to_owned());
    snapshot.last_transition = Some(crate::telemetry::Transition {
        from: "standby",
        to: "candidate",
        reason: "node ready".to_owned(),
        at_unix_ms: 1_700_000_000_000,
    });
    let context = RecordContext {
        host: "host-a".to_owned(),
        status_url: Some("http://host-a:9901/status".to_owned()),
        refresh: DEFAULT_REFRESH,
        timing: TimingRecord::new("default", &Timing::default()),
        node_key_fingerprint: Some("5f3a".to_owned()),
    };
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_100);
    let record = MemberRecord::new(&snapshot, &context, 0x1a, Some(Duration::from_secs(3)), now);
    assert_eq!(record.value, "node-a");
    assert_eq!(record.node_mode, "active");
    assert_eq!(
        record.node_mode_read_at.as_deref(),
        Some("2023-11-14T22:14:57Z")
    );
    assert_eq!(record.written_at, "2023-11-14T22:15:00Z");
    assert_eq!(record.lease, "1a");
    assert_eq!(record.candidate_lease.as_deref(), Some("2b"));
    assert_eq!(record.refresh_seconds, 30);
    assert_eq!(record.stuck.as_deref(), Some("the node does not answer"));
    let transition = record.last_transition.as_ref().expect("a transition");
    assert_eq!(transition.at, "2023-11-14T22:13:20Z");
    assert_eq!(transition.why, "node ready");

    // The stored form: the documented field names, read back the same.
    let json = serde_json::to_value(&record).expect("serializable");
    for field in [
        "value",
        "role",
        "role_reason",
        "node_mode",
        "node_mode_read_at",
        "readiness",
        "stuck",
        "version",
        "host",
        "status_url",
        "last_transition",
        "lease",
        "candidate_lease",
        "refresh_seconds",
        "written_at",
        "excluded",
        "node_error",
        "timing",
        "node_key_fingerprint",
        "recent_transitions",
    ] {
        assert!(json.get(field).is_some(), "{field} missing from {json}");
    }
    let back: MemberRecord = serde_json::from_value(json).expect("readable");
    assert_eq!(back, record);
}

#[test]
fn an_unknown_mode_and_a_wildcard_address_are_spelled_out() {
    let snapshot = snapshot();
    let context = RecordContext {
        host: "h".to_owned(),
        status_url: None,
        refresh: DEFAULT_REFRESH,
        timing: TimingRecord::new("default", &Timing::default()),
        node_key_fingerprint: None,
    };
    let record = MemberRecord::new(&snapshot, &context, 1, None, SystemTime::now());
    assert_eq!(record.node_mode, "unknown");
    assert_eq!(record.node_mode_read_at, None);
    let any: SocketAddr = "0.0.0.0:9901".parse().expect("an address");
    assert_eq!(status_url(any, "host-a"), "http://host-a:9901/status");
    let one: SocketAddr = "10.0.0.5:9901".parse().expect("an address");
    assert_eq!(status_url(one, "host-a"), "http://10.0.0.5:9901/status");
}

/// The record publishes the timing by value; two timings compare flag by flag, in the units
/// an operator writes.
#[test]
fn timings_are_published_and_compared_by_flag() {
    let default = TimingRecord::new("default", &Timing::default());
    let fast = TimingRecord::new("fast", &Timing::fast_profile());
    assert_eq!(default.values["lease_ttl_ms"], 10_000);
    assert_eq!(default.values["max_clock_drift"], 0.01);
    assert_eq!(default.values["unready_threshold"], 3);
    assert!(default.differences(&default).is_empty());
    let differences = default.differences(&fast);
    assert!(
        differences.contains(&("--ttl".to_owned(), "10s".to_owned(), "7s".to_owned())),
        "{differences:?}"
    );
    assert!(
        differences
            .iter()
            .any(|(flag, _, _)| flag == "--activation-delay"),
        "{differences:?}"
    );
    // Only the values count: the same timing under another profile name is the same.
    let renamed = TimingRecord::new("fast", &Timing::default());
    assert!(default.differences(&renamed).is_empty());
    // A value only one side publishes (another release) is a difference.
    let mut older = default.clone();
    older.values.remove("max_clock_offset_ms");
    assert_eq!(
        default.differences(&older),
        [(
            "--max-clock-offset".to_owned(),
            "100ms".to_owned(),
            "unset".to_owned()
        )]
    );
    // Stored and read back as JSON.
    let back: TimingRecord =
        serde_json::from_str(&serde_json::to_string(&fast).expect("JSON")).expect("readable");
    assert_eq!(back, fast);
}

/// A record written before these fields existed still reads.
#[test]
fn an_older_record_still_reads() {
    let old = r#"{"value":"a","role":"standby","role_reason":"r","node_mode":"standby",
        "readiness":"ready","version":"0.1.0","host":"h","lease":"1","refresh_seconds":30,
        "written_at":"2026-01-01T00:00:00Z"}"#;
    let record: MemberRecord = serde_json::from_str(old).expect("an older record reads");
    assert!(!record.excluded && record.timing.is_none() && record.recent_transitions.is_empty());
}

/// A published timing reads back whole; a replica with a shorter activation delay than its
/// predecessor's timing needs is told apart.
#[test]
fn a_published_timing_reads_back_and_judges_a_takeover() {
    let default = TimingRecord::new("default", &Timing::default());
    let fast = TimingRecord::new("fast", &Timing::fast_profile());
    assert_eq!(default.timing(), Some(Timing::default()));
    assert_eq!(fast.timing(), Some(Timing::fast_profile()));
    // A fast-profile replica taking over from a default one activates too early.
    let needed = fast.too_short_after(&default).expect("too short");
    assert_eq!(needed, Timing::default().activation_delay);
    assert_eq!(default.too_short_after(&fast), None);
    assert_eq!(default.too_short_after(&default), None);
    // With the default's activation delay, a fast replica may take over safely.
    let covered = Timing {
        activation_delay: Timing::default().activation_delay,
        ..Timing::fast_profile()
    };
    assert_eq!(
        TimingRecord::new("fast", &covered).too_short_after(&default),
        None
    );
    let mut partial = default.clone();
    partial.values.remove("lease_ttl_ms");
    assert_eq!(partial.timing(), None);
}

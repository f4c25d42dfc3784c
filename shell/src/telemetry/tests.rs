//! `/metrics` as Prometheus reads it, `/status`, and the server's methods.

use super::server::router;
use super::*;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use elector_core::{Settings, Timing};
use elector_model::exposition::{parse_exposition, sample_value};
use tower::ServiceExt;

fn telemetry() -> Arc<Telemetry> {
    let telemetry = Telemetry::new("/iotex-server", "replica \"a\"\n");
    let core = Elector::new(
        Settings::new("replica-a".to_string(), Timing::default()),
        Instant::ZERO,
    )
    .expect("default timing");
    telemetry.update(&core, Instant::ZERO);
    telemetry
}

#[test]
fn the_exposition_parses_and_keeps_every_name() {
    let telemetry = telemetry();
    let m = &telemetry.metrics;
    m.observe_keepalive(Duration::from_millis(3));
    m.observe_keepalive(Duration::from_millis(40));
    m.observe_keepalive(Duration::from_secs(9));
    m.observe_node_call(NodeCallKind::ReadMode, Duration::from_millis(2));
    m.set_node_mode(false);
    let text = telemetry.render_metrics();
    let samples = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for name in [
        "elector_role",
        "elector_role_transitions_total",
        "elector_keepalive_latency_seconds_sum",
        "elector_keepalive_latency_seconds_count",
        "elector_keepalive_latency_seconds_bucket",
        "elector_keepalive_last_latency_seconds",
        "elector_keepalive_failures_total",
        "elector_node_call_failures_total",
        "elector_node_call_latency_seconds_bucket",
        "elector_fence_actions_total",
        "elector_fence_results_total",
        "elector_node_standby_unexpected_total",
        "elector_stuck",
        "elector_excluded",
        "elector_node_lost",
        "elector_etcd_connected",
        "elector_node_active",
        "elector_node_ready",
        "elector_node_mode_age_seconds",
        "elector_info",
    ] {
        assert!(
            samples.iter().any(|(n, _, _)| n == name),
            "{name} missing:\n{text}"
        );
    }
    // Labels are escaped, and read back as they were.
    assert_eq!(
        sample_value(&samples, "elector_info", &[("value", "replica \"a\"\n")]),
        Some(1.0)
    );
    assert_eq!(
        sample_value(&samples, "elector_role", &[("role", "starting")]),
        Some(1.0)
    );
    // A cumulative histogram whose +Inf bucket is the count.
    let bucket = |le: &str| {
        sample_value(
            &samples,
            "elector_keepalive_latency_seconds_bucket",
            &[("le", le)],
        )
    };
    assert_eq!(bucket("0.001"), Some(0.0));
    assert_eq!(bucket("0.005"), Some(1.0));
    assert_eq!(bucket("0.05"), Some(2.0));
    assert_eq!(bucket("5"), Some(2.0));
    assert_eq!(bucket("+Inf"), Some(3.0));
    assert_eq!(
        sample_value(&samples, "elector_keepalive_latency_seconds_count", &[]),
        Some(3.0)
    );
    let sum = sample_value(&samples, "elector_keepalive_latency_seconds_sum", &[]).unwrap_or(0.0);
    assert!((sum - 9.043).abs() < 1e-9, "{sum}");
    assert_eq!(
        sample_value(
            &samples,
            "elector_node_call_latency_seconds_count",
            &[("call", "read_mode")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample_value(&samples, "elector_node_active", &[]),
        Some(0.0)
    );
    assert_eq!(sample_value(&samples, "elector_node_ready", &[]), Some(0.0));
    assert_eq!(
        sample_value(&samples, "elector_etcd_connected", &[]),
        Some(0.0)
    );
    // No election read yet: no candidate count rather than a made-up 0.
    assert_eq!(sample_value(&samples, "elector_candidates", &[]), None);
    #[cfg(target_os = "linux")]
    for name in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        let v = sample_value(&samples, name, &[]).unwrap_or_else(|| panic!("{name} missing"));
        assert!(v >= 0.0, "{name} {v}");
    }
}

#[test]
fn the_reader_refuses_what_prometheus_would() {
    for text in [
        "elector_x 1\n",
        "# TYPE elector_x gauge\nelector_x one\n",
        "# TYPE elector_x gauge\nelector_x{a=\"b} 1\n",
        "# TYPE elector_x gauge\n# TYPE elector_x gauge\n",
        "# TYPE elector_x gauge\nelector-x 1\n",
        "# TYPE elector_x gauge\nelector_x 1 2 3\n",
    ] {
        assert!(parse_exposition(text).is_err(), "{text:?} accepted");
    }
}

#[tokio::test(start_paused = true)]
async fn etcd_connected_follows_recent_successes() {
    let metrics = Metrics::default();
    metrics.set_etcd_silence_bound(Duration::from_secs(4));
    assert!(!metrics.etcd_connected(), "nothing succeeded yet");
    metrics.etcd.succeeded();
    assert!(metrics.etcd_connected());
    metrics
        .etcd
        .failed("etcd keep-alive of lease 1a timed out after 1s");
    tokio::time::advance(Duration::from_secs(3)).await;
    assert!(metrics.etcd_connected(), "within the bound");
    assert!(
        metrics
            .etcd
            .error()
            .is_some_and(|e| e.contains("timed out"))
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(
        !metrics.etcd_connected(),
        "silent for longer than the bound"
    );
    metrics.etcd.succeeded();
    assert!(metrics.etcd_connected());
    assert_eq!(metrics.etcd.error(), None);
}

#[tokio::test]
async fn only_get_and_head_are_served() {
    let telemetry = telemetry();
    let answer = |method: Method, path: &str| {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty());
        router(telemetry.clone()).oneshot(request.expect("a valid request"))
    };
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        for path in ["/metrics", "/nowhere"] {
            let response = answer(method.clone(), path).await.expect("an answer");
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(
                response.headers().get("allow").map(|v| v.as_bytes()),
                Some(&b"GET, HEAD"[..])
            );
        }
    }
    for method in [Method::GET, Method::HEAD] {
        for path in ["/metrics", "/status", "/healthz"] {
            let response = answer(method.clone(), path).await.expect("an answer");
            assert_eq!(response.status(), StatusCode::OK, "{method} {path}");
        }
    }
    let response = answer(Method::GET, "/nowhere").await.expect("an answer");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[test]
fn an_exclusion_shows_in_status_and_metrics() {
    let telemetry = Telemetry::new("/iotex-server", "replica-a");
    let mut core = Elector::new(
        Settings::new("replica-a".to_string(), Timing::default()),
        Instant::ZERO,
    )
    .expect("default timing");
    let exclusion = elector_core::Exclusion {
        by: "ops@host-1".into(),
        at: "2026-11-30T12:00:00Z".into(),
        reason: "iotex-core upgrade".into(),
    };
    core.handle_input(
        Instant::ZERO,
        elector_core::Input::Observed(elector_core::Observation {
            revision: 5,
            excluded: Some(exclusion),
            ..Default::default()
        }),
    );
    telemetry.update(&core, Instant::ZERO);
    let snapshot = telemetry.snapshot().expect("a snapshot");
    assert!(snapshot.excluded);
    assert_eq!(
        snapshot.exclusion,
        Some(ExclusionView {
            by: "ops@host-1".into(),
            since: "2026-11-30T12:00:00Z".into(),
            reason: "iotex-core upgrade".into(),
        })
    );
    let text = telemetry.render_metrics();
    let samples = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(sample_value(&samples, "elector_excluded", &[]), Some(1.0));
    assert_eq!(
        sample_value(&samples, "elector_excluded_since_timestamp_seconds", &[]),
        Some(1_796_040_000.0)
    );

    // Included again: the flag drops and the time goes.
    core.handle_input(
        Instant::ZERO,
        elector_core::Input::Observed(elector_core::Observation {
            revision: 6,
            ..Default::default()
        }),
    );
    telemetry.update(&core, Instant::ZERO);
    let snapshot = telemetry.snapshot().expect("a snapshot");
    assert!(!snapshot.excluded && snapshot.exclusion.is_none());
    let text = telemetry.render_metrics();
    let samples = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(sample_value(&samples, "elector_excluded", &[]), Some(0.0));
    assert_eq!(
        sample_value(&samples, "elector_excluded_since_timestamp_seconds", &[]),
        None
    );
}

/// `/status` says which release answers, how old the node read is, and the recent role
/// changes; `/metrics` has the timing comparison once the registry made one.
#[test]
fn status_reports_the_version_and_metrics_the_timing_comparison() {
    let telemetry = telemetry();
    let snapshot = telemetry.snapshot().expect("a snapshot");
    assert_eq!(snapshot.version, crate::cli::VERSION);
    let body = serde_json::to_value(&snapshot).expect("JSON");
    assert_eq!(body["version"], crate::cli::VERSION);
    assert!(body.get("node_mode_read_ms_ago").is_some(), "{body}");
    assert!(body["recent_transitions"].is_array(), "{body}");
    // Before the registry compared the timings: no sample (unknown is not 0).
    let text = telemetry.render_metrics();
    assert!(!text.contains("elector_timing_mismatch"), "{text}");
    telemetry.metrics.set_timing_mismatch(2);
    let text = telemetry.render_metrics();
    let samples = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        sample_value(&samples, "elector_timing_mismatch", &[]),
        Some(2.0)
    );
    // The node read's age follows the read.
    telemetry.metrics.set_node_mode(false);
    let age = telemetry
        .snapshot()
        .and_then(|s| s.node_mode_read_ms_ago)
        .expect("an age after a read");
    assert!(age < 1000, "{age}");
}

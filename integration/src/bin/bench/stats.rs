//! Summaries of measured values (nearest-rank percentiles) and how durations are shown.

use std::time::{Duration, Instant};

#[derive(Clone, Debug, Default)]
pub(super) struct Summary {
    pub(super) n: usize,
    pub(super) min: f64,
    pub(super) q1: f64,
    pub(super) median: f64,
    pub(super) q3: f64,
    pub(super) p95: f64,
    pub(super) max: f64,
}

/// Nearest-rank percentile of sorted values.
pub(super) fn rank(sorted: &[f64], q: f64) -> f64 {
    let k = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[k - 1]
}

pub(super) fn summarize(values: &[f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Summary {
        n,
        min: v[0],
        q1: rank(&v, 0.25),
        median,
        q3: rank(&v, 0.75),
        p95: rank(&v, 0.95),
        max: v[n - 1],
    })
}

pub(super) fn median(values: &[f64]) -> Option<f64> {
    summarize(values).map(|s| s.median)
}

/// `later - earlier` in seconds, negative when `later` is earlier.
pub(super) fn signed_seconds(later: Instant, earlier: Instant) -> f64 {
    if later >= earlier {
        (later - earlier).as_secs_f64()
    } else {
        -(earlier - later).as_secs_f64()
    }
}

pub(super) fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s} s")
    }
}

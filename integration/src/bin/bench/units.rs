//! How the report writes seconds, milliseconds, bytes and dual-active time: one place for
//! every section.

use std::time::Duration;

/// Seconds with two decimals below 10 s, one above.
pub(super) fn fmt_s(v: f64) -> String {
    if v.abs() < 10.0 {
        format!("{v:.2} s")
    } else {
        format!("{v:.1} s")
    }
}

/// Seconds as whole milliseconds.
pub(super) fn fmt_ms(v: f64) -> String {
    format!("{:.0} ms", v * 1000.0)
}

/// Bytes as MiB with one decimal.
pub(super) fn fmt_bytes(b: u64) -> String {
    let mib = b as f64 / 1024.0 / 1024.0;
    format!("{mib:.1} MiB")
}

/// A total dual-active time as the report shows it: `never`, or the time in bold.
pub(super) fn fmt_overlap(overlap: Duration) -> String {
    if overlap.is_zero() {
        "never".to_owned()
    } else {
        format!("**{:.3} s**", overlap.as_secs_f64())
    }
}

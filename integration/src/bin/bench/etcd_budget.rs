//! The etcd budget per elector, as the benchmark report states it: what the design allows,
//! beside what the footprint phase measures. The registry's figures come from its own
//! constants (`elector::registry`), so the report cannot drift from the code.

use std::fmt::Write as _;

/// Appends the "etcd budget per elector" section (Markdown) to `o`.
pub(super) fn budget_section(o: &mut String) {
    use elector::registry::{DEFAULT_REFRESH, MIN_WRITE_GAP};
    let refreshes_per_minute = 60.0 / DEFAULT_REFRESH.as_secs_f64();
    // One Put and one keep-alive per refresh.
    let steady = 2.0 * refreshes_per_minute;
    let flapping = 60.0 / MIN_WRITE_GAP.as_secs_f64() + refreshes_per_minute;
    let _ = writeln!(
        o,
        "## etcd budget per elector\n\n\
         Default timing, in gRPC messages etcd receives (as counted above):\n\n\
         | part | steady state | worst case |\n\
         | --- | ---: | ---: |\n\
         | election: keep-alive every `--keepalive-interval` (1 s), periodic re-read and watch \
         progress request every 2 s | 2/s | plus one read per change of the election |\n\
         | member registry (`<key>.elector/members/<value>`): one Put and one keep-alive of its \
         own lease per `--registry-refresh` ({}) | {steady:.0}/min ({:.2}/s) | a flapping node: \
         at most one Put per second, {flapping:.0}/min, whatever the flapping rate |\n\n\
         Registry writes wake no elector (the observer skips events on registry keys), so they \
         cost no reads elsewhere and the load stays linear in the number of electors. In the \
         footprint above they are the `Put` messages and one `LeaseKeepAlive` per refresh.\n",
        humantime::format_duration(DEFAULT_REFRESH),
        steady / 60.0,
    );
}

#[cfg(test)]
mod tests {
    use super::budget_section;

    #[test]
    fn the_registry_budget_follows_its_constants() {
        let mut text = String::new();
        budget_section(&mut text);
        assert!(text.starts_with("## etcd budget per elector\n"), "{text}");
        // 30 s refresh: one Put and one keep-alive each; at most one Put a second.
        assert!(text.contains("| 4/min (0.07/s) |"), "{text}");
        assert!(text.contains("62/min"), "{text}");
    }
}

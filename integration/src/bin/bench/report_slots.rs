//! What a gap with no active node costs the delegate: its own slots, missed. The report's
//! section that puts every takeover of the run (handovers, elector restarts, crashed hosts,
//! the Go election) on one scale.

use super::crash::failovers;
use super::elector_crash::Recovery;
use super::handover::{Handover, handover_values};
use super::results::Results;
use super::stats::median;
use elector_integration::timing_profile::TimingProfile;
use std::fmt::Write as _;

/// A mainnet delegate proposes about one slot in this many (24 active delegates).
const OUR_SLOTS_ONE_IN: f64 = 24.0;

/// Expected slots of ours that fall into a gap of `gap` seconds, per 100 takeovers: our slots
/// come every `period` seconds at a phase the takeover does not know, so a gap covers
/// `gap / period` of them on average.
fn missed_per_100(gap: f64, period: f64) -> f64 {
    100.0 * gap / period
}

pub(super) fn render_slot_cost(o: &mut String, r: &Results) {
    let slot = TimingProfile::Default.timing().block_interval.as_secs_f64();
    let period = slot * OUR_SLOTS_ONE_IN;
    let _ = writeln!(o, "## What a takeover costs in our own slots\n");
    let _ = writeln!(
        o,
        "A delegate proposes about one slot in {OUR_SLOTS_ONE_IN:.0} ({slot} s slots: one every \
         {period:.0} s). A takeover whose nodes are inactive for *gap* seconds misses on average \
         gap ÷ {period:.0} s of our slots (the median gap of this run's trials below, as our \
         slots per 100 takeovers). The benchmark's stand-ins make us the proposer of every \
         slot, the worst case for double signing; this table counts what the mainnet schedule \
         would cost. A double sign would cost far more than any row.\n"
    );
    let _ = writeln!(
        o,
        "| takeover | trials | gap with no active node, median | our slots missed per 100 |"
    );
    let _ = writeln!(o, "| --- | ---: | ---: | ---: |");
    let mut row = |name: String, gaps: Vec<f64>| {
        let Some(gap) = median(&gaps) else {
            let _ = writeln!(o, "| {name} | not run | | |");
            return;
        };
        let _ = writeln!(
            o,
            "| {name} | {} | {gap:.2} s | {:.1} |",
            gaps.len(),
            missed_per_100(gap, period)
        );
    };
    for kind in [Handover::Sigterm, Handover::Command, Handover::Unready] {
        let gaps = r
            .handover
            .as_ref()
            .map(|h| handover_values(h, kind, |t| t.gap))
            .unwrap_or_default();
        row(format!("handover, defaults: {}", kind.label()), gaps);
    }
    for (name, result) in [
        ("defaults", &r.elector_crash_default),
        ("fast profile", &r.elector_crash_fast),
    ] {
        for recovery in [Recovery::Restart, Recovery::ExecStopPost] {
            let gaps = result
                .as_ref()
                .map(|e| e.values(recovery, |t| t.gap))
                .unwrap_or_default();
            row(
                format!("elector killed, {name}: {}", recovery.label()),
                gaps,
            );
        }
    }
    // A crashed host's node dies with it: the gap is the whole failover.
    for (name, result) in [
        ("host crashed, elector defaults", &r.crash_default),
        ("host crashed, elector fast profile", &r.crash_fast),
        (
            "host crashed, `etcdctl elect` pair (the Go election)",
            &r.baseline,
        ),
    ] {
        row(
            name.to_owned(),
            result.as_ref().map(failovers).unwrap_or_default(),
        );
    }
    let _ = writeln!(o);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_of_one_period_misses_one_slot_per_takeover() {
        assert_eq!(missed_per_100(60.0, 60.0), 100.0);
        assert_eq!(missed_per_100(3.0, 60.0), 5.0);
    }
}

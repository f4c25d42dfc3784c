//! The run for people ([`Outcome::render`]: setup, schedule, timeline, verdict), and
//! [`first_difference`], which tells where two renderings of one seed part (the determinism
//! check).

use crate::checker::verdict::{Expectation, Outcome};
use crate::seed::schedule::{FenceOutcome, secs};
use elector_model::node::Signature;
use std::time::Duration;

impl Outcome {
    /// The run for people: setup, schedule, timeline and verdict. `warnings` adds the
    /// electors' failure warnings (throttled by the driver) to the timeline.
    pub fn render(&self, warnings: bool) -> String {
        use std::fmt::Write as _;
        let s = &self.scenario;
        let t = &s.profile.timing();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "seed {}: {} profile (ttl {}, activation delay {}, drain bound {}, restart bound {}), {} replicas, tick {}ms, etcd link latency <= {}ms (curve {}), mutation {}",
            s.seed,
            s.profile.name(),
            secs(t.lease_ttl),
            secs(t.activation_delay),
            secs(t.drain_bound),
            secs(t.restart_bound),
            s.replicas(),
            s.tick.as_millis(),
            s.latency_max.as_millis(),
            s.latency_curve,
            s.mutation.name()
        );
        for (i, e) in s.electors.iter().enumerate() {
            let _ = writeln!(
                out,
                "  elector-{i}: clock rate {:.4}, starts at {}; node-{i} ready at {}",
                e.rate,
                secs(e.start_delay),
                secs(s.nodes[i].ready_at)
            );
        }
        let _ = writeln!(
            out,
            "  fence: {}",
            match s.fence.outcome {
                FenceOutcome::Absent => "NOT configured (every run fails at once)".to_owned(),
                outcome => format!("{} after {}", outcome.name(), secs(s.fence.delay)),
            }
        );
        let _ = writeln!(
            out,
            "  key custody: {}",
            if s.custody {
                "on (nodes start with their placeholder; the leader installs the operator's key)"
            } else {
                "off"
            }
        );
        let _ = writeln!(
            out,
            "schedule ({} faults{}):",
            s.faults.len(),
            if s.persistent.is_some() {
                " and a persistent one"
            } else {
                ""
            }
        );
        for f in &s.faults {
            let _ = writeln!(out, "  {} .. {}  {}", secs(f.at), secs(f.heal), f.kind);
        }
        if let Some(p) = &s.persistent {
            let _ = writeln!(out, "  {} .. end     {p}", secs(p.at));
        }
        let _ = writeln!(
            out,
            "  last heal {}, liveness deadline {}, end {}",
            secs(s.last_heal),
            secs(s.liveness_deadline),
            secs(s.duration)
        );
        let _ = writeln!(out, "timeline:");
        for entry in &self.trace {
            if !warnings && entry.what.starts_with("warn: ") {
                continue;
            }
            let _ = writeln!(out, "{entry}");
        }
        let _ = writeln!(
            out,
            "signatures (our delegate proposes {}; spans of heights each node signed, with when):",
            if s.chain.delegates == 1 {
                "every slot".to_owned()
            } else {
                format!("one slot in {}", s.chain.delegates)
            }
        );
        for (node, list) in self.signatures.iter().enumerate() {
            let _ = writeln!(
                out,
                "  node-{node}: {} signatures{}",
                list.len(),
                signing_spans(list)
            );
        }
        if let Some(d) = &self.longest_drain {
            let _ = writeln!(
                out,
                "  longest drain: node-{} signed until {} after activate=false reached it at {} (drain bound {})",
                d.node,
                secs(d.length),
                secs(d.at),
                secs(t.drain_bound)
            );
        }
        let _ = writeln!(out, "verdict: {:?}", self.verdict());
        for b in &self.broken {
            let _ = writeln!(out, "  assumption broken ({}): {}", b.kind.name(), b.detail);
        }
        for p in self.problems() {
            let _ = writeln!(out, "  {p}");
        }
        if let Some(p) = &self.persistent {
            let _ = writeln!(
                out,
                "  persistent fault on node-{} ({}): {}",
                p.victim.node,
                if p.victim.hit_leader {
                    "the leader's"
                } else {
                    "not the leader's"
                },
                match (p.expectation, p.window, &p.problem) {
                    (Expectation::Unchecked, _, _) | (_, None, _) => "not checked".to_owned(),
                    (_, _, Some(_)) => "VIOLATED".to_owned(),
                    (Expectation::Active, Some((from, until)), None) => format!(
                        "another node active from {} after the fault{} through {}..{}",
                        p.recovery.map(secs).unwrap_or_default(),
                        if p.settled_at_start {
                            ""
                        } else {
                            " (not settled before it)"
                        },
                        secs(from),
                        secs(until)
                    ),
                    (Expectation::Stuck, Some((from, until)), None) => format!(
                        "unable to give the lead away; through {}..{} its elector reported itself stuck at the {} samples it led, another node active otherwise",
                        secs(from),
                        secs(until),
                        p.stuck_checked
                    ),
                }
            );
        }
        let _ = writeln!(
            out,
            "  safety: {}; liveness: {}; stability: {} leadership changes ({} activations) for {} faults; {} fences ({} with a healthy node)",
            match (self.double_signs.is_empty(), self.overlaps.is_empty()) {
                (true, true) => "no height and round signed twice, never two active nodes",
                (false, true) => "DOUBLE SIGNS (never two active nodes)",
                (true, false) => "no double sign, but TWO ACTIVE NODES",
                (false, false) => "DOUBLE SIGNS and TWO ACTIVE NODES",
            },
            match (&self.settled, self.liveness_ok()) {
                _ if self.stuck_to_the_end => {
                    "not expected (the persistent fault's elector reported itself stuck)".to_owned()
                }
                (Some(st), true) => format!(
                    "node-{} active alone from {} ({} after the last heal)",
                    st.node,
                    secs(st.since),
                    secs(st.since.saturating_sub(s.last_heal))
                ),
                _ => "VIOLATED".to_owned(),
            },
            self.leadership_changes,
            self.activations,
            self.faults,
            self.fences,
            self.unexplained_fences.len()
        );
        out
    }
}

/// The stretches of consecutive heights a node signed, with the times of their first and
/// last signatures: `, heights 5..16 (12.500s..40.100s), 30..31 (...)`.
fn signing_spans(list: &[Signature]) -> String {
    let mut spans: Vec<(u64, u64, Duration, Duration)> = Vec::new();
    for sig in list {
        match spans.last_mut() {
            Some(span) if sig.height >= span.1 && sig.height <= span.1 + 1 => {
                span.1 = sig.height;
                span.3 = sig.at;
            }
            _ => spans.push((sig.height, sig.height, sig.at, sig.at)),
        }
    }
    spans
        .iter()
        .enumerate()
        .map(|(i, &(from, to, first, last))| {
            format!(
                "{}{from}..{to} ({}..{})",
                if i == 0 { ", heights " } else { ", " },
                secs(first),
                secs(last)
            )
        })
        .collect()
}

/// Where two renderings of the same seed first differ, line by line, or `None` when they are
/// equal: the one message of every determinism check (a run that does not replay).
pub fn first_difference(a: &str, b: &str) -> Option<String> {
    if a == b {
        return None;
    }
    Some(
        a.lines()
            .zip(b.lines())
            .find(|(x, y)| x != y)
            .map(|(x, y)| format!("first difference: {x:?} vs {y:?}"))
            .unwrap_or_else(|| "one timeline is a prefix of the other".to_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_renderings_have_no_difference() {
        assert_eq!(first_difference("a\nb\n", "a\nb\n"), None);
    }

    #[test]
    fn the_first_differing_line_is_named() {
        assert_eq!(
            first_difference("a\nb\nc\n", "a\nB\nC\n").as_deref(),
            Some("first difference: \"b\" vs \"B\"")
        );
    }

    #[test]
    fn a_longer_rendering_is_a_difference() {
        assert_eq!(
            first_difference("a\n", "a\nb\n").as_deref(),
            Some("one timeline is a prefix of the other")
        );
    }
}

//! The safety checks every layer shares, on what the nodes did:
//! - [`double_signs`], the property itself: no height and round signed by two replicas with
//!   the operator key;
//! - [`dual_active`], its proxy: at no instant are two nodes active.
//!
//! The simulation, the functional and Docker tests, the demo and the benchmark all use these.

use crate::node::{SignKind, Signature};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A height and round for which two replicas signed with the same key: a double sign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoubleSign {
    pub height: u64,
    pub round: u32,
    /// The key both signed with.
    pub key: String,
    /// Indexes of the two replicas, in the order their signatures were given.
    pub nodes: (usize, usize),
    /// What each signed, and when.
    pub first: (SignKind, Duration),
    pub second: (SignKind, Duration),
}

impl fmt::Display for DoubleSign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "height {} round {} signed by replicas {} ({} at {:.3}s) and {} ({} at {:.3}s) with key {}",
            self.height,
            self.round,
            self.nodes.0,
            self.first.0.as_str(),
            self.first.1.as_secs_f64(),
            self.nodes.1,
            self.second.0.as_str(),
            self.second.1.as_secs_f64(),
            self.key,
        )
    }
}

/// Every `(height, round)` signed with one key by two different replicas (any kinds: a
/// proposal and an endorsement of the same round count too). `replicas[i]` is everything
/// replica `i` signed, across its node's restarts; one report per pair of replicas and round.
pub fn double_signs(replicas: &[Vec<Signature>]) -> Vec<DoubleSign> {
    // (height, round, key) -> the first signature of each replica.
    type FirstByReplica = BTreeMap<usize, (SignKind, Duration)>;
    let mut by_round: BTreeMap<(u64, u32, &str), FirstByReplica> = BTreeMap::new();
    for (replica, signatures) in replicas.iter().enumerate() {
        for s in signatures {
            by_round
                .entry((s.height, s.round, s.key.as_str()))
                .or_default()
                .entry(replica)
                .or_insert((s.kind, s.at));
        }
    }
    let mut found = Vec::new();
    for ((height, round, key), signers) in by_round {
        let signers: Vec<_> = signers.into_iter().collect();
        for (i, &(a, first)) in signers.iter().enumerate() {
            for &(b, second) in &signers[i + 1..] {
                found.push(DoubleSign {
                    height,
                    round,
                    key: key.to_owned(),
                    nodes: (a, b),
                    first,
                    second,
                });
            }
        }
    }
    found
}

/// When a node's effective mode changed: `(time, active)`, in time order, times on a clock
/// shared by all histories checked together. The first entry is the mode at the start.
pub type History = Vec<(Duration, bool)>;

/// A stretch of time during which two nodes were both active.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overlap {
    /// Indexes of the two nodes, in the order the histories were given.
    pub nodes: (usize, usize),
    pub from: Duration,
    pub until: Duration,
}

/// The active intervals of one history, up to `end` (a node still active at `end` counts as
/// active until then).
pub fn active_intervals(history: &[(Duration, bool)], end: Duration) -> Vec<(Duration, Duration)> {
    let mut intervals = Vec::new();
    let mut since: Option<Duration> = None;
    for &(at, active) in history {
        match (since, active) {
            (None, true) => since = Some(at),
            (Some(start), false) => {
                if at > start {
                    intervals.push((start, at));
                }
                since = None;
            }
            _ => {}
        }
    }
    if let Some(start) = since
        && end > start
    {
        intervals.push((start, end));
    }
    intervals
}

/// Every overlap of active intervals between two different nodes, up to `end`.
pub fn dual_active(histories: &[History], end: Duration) -> Vec<Overlap> {
    let intervals: Vec<_> = histories.iter().map(|h| active_intervals(h, end)).collect();
    let mut overlaps = Vec::new();
    for a in 0..intervals.len() {
        for b in a + 1..intervals.len() {
            for &(a_from, a_until) in &intervals[a] {
                for &(b_from, b_until) in &intervals[b] {
                    let from = a_from.max(b_from);
                    let until = a_until.min(b_until);
                    if from < until {
                        overlaps.push(Overlap {
                            nodes: (a, b),
                            from,
                            until,
                        });
                    }
                }
            }
        }
    }
    overlaps.sort_by_key(|o| o.from);
    overlaps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(height: u64, round: u32, kind: SignKind, at_ms: u64) -> Signature {
        Signature {
            at: Duration::from_millis(at_ms),
            height,
            round,
            slot: Duration::ZERO,
            kind,
            key: "io1operator".into(),
        }
    }

    #[test]
    fn one_round_signed_by_two_replicas_is_a_double_sign() {
        let a = vec![
            sig(7, 0, SignKind::Proposal, 100),
            sig(7, 0, SignKind::ProposalEndorsement, 150),
        ];
        let b = vec![sig(7, 1, SignKind::Proposal, 2600)];
        let c = vec![sig(7, 0, SignKind::ProposalEndorsement, 300)];
        assert!(double_signs(&[a.clone(), b]).is_empty());
        let found = double_signs(&[a, vec![], c]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].height, found[0].round, found[0].nodes),
            (7, 0, (0, 2))
        );
        assert_eq!(
            found[0].first,
            (SignKind::Proposal, Duration::from_millis(100))
        );
        assert!(
            found[0].to_string().contains("height 7 round 0"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn signatures_with_another_key_do_not_count() {
        let a = vec![sig(3, 0, SignKind::Proposal, 0)];
        let mut b = vec![sig(3, 0, SignKind::Proposal, 0)];
        b[0].key = "io1placeholder".into();
        assert!(double_signs(&[a, b]).is_empty());
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn intervals_close_at_the_end() {
        let h = vec![
            (ms(0), false),
            (ms(10), true),
            (ms(20), false),
            (ms(30), true),
        ];
        assert_eq!(
            active_intervals(&h, ms(50)),
            vec![(ms(10), ms(20)), (ms(30), ms(50))]
        );
    }

    #[test]
    fn handover_back_to_back_is_not_an_overlap() {
        let a = vec![(ms(0), true), (ms(100), false)];
        let b = vec![(ms(0), false), (ms(100), true)];
        assert!(dual_active(&[a, b], ms(200)).is_empty());
    }

    #[test]
    fn overlap_is_found_with_its_span() {
        let a = vec![(ms(0), true), (ms(150), false)];
        let b = vec![(ms(0), false), (ms(100), true)];
        let c = vec![(ms(0), false)];
        assert_eq!(
            dual_active(&[a, c, b], ms(200)),
            vec![Overlap {
                nodes: (0, 2),
                from: ms(100),
                until: ms(150)
            }]
        );
    }

    #[test]
    fn a_node_active_at_the_end_overlaps_a_later_one() {
        let a = vec![(ms(0), true)];
        let b = vec![(ms(0), false), (ms(500), true)];
        assert_eq!(dual_active(&[a, b], ms(600)).len(), 1);
    }
}

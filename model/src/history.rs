//! Node mode histories and the one safety check every test shares: at no instant are two
//! nodes active. The simulation, the functional tests and the demo all use this function.

use std::time::Duration;

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

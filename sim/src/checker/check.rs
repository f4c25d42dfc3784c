//! The checker: judges a run by the nodes' mode histories (what a read of `/ha` would have
//! said at every instant, the "active until the round ends" tail included), in simulated time.
//!
//! - Safety: at no instant are two nodes active ([`overlaps`], the checker shared with the
//!   functional tests and the demo).
//! - Liveness: after the last fault heals, exactly one node is active by the deadline and stays
//!   active, alone, until the end of the run ([`settled`], [`liveness_bound`]).
//! - Stability: leadership changes hands at most once per fault, plus once
//!   ([`leadership_changes`]).
//! - During a persistent node fault ([`persistent_fault_bound`]): a replica whose node died,
//!   whose `/ha` broke or whose node refuses activation gives the lead away in bounded time
//!   when it can prove its node standby (a read, or a fence that succeeds), and otherwise
//!   reports itself stuck and keeps the lead.

pub use crate::seed::schedule::FENCE_TIMEOUT;
use crate::world::etcd_model::{ELECTION_TIMEOUT, SWEEP_INTERVAL};
use elector_core::Timing;
use elector_model::history::Overlap;
use elector_model::node::Transition;
use std::time::Duration;

/// Room for what the bound does not itemize: the simulated network's latency and step
/// granularity, one more etcd round trip, the activation call itself.
pub const LIVENESS_SLACK: Duration = Duration::from_secs(1);

/// How long after the last fault heals exactly one node must be active. The honest bound is
/// the longest of three paths to a new leadership, then the activation:
///
/// - **the old leader's lease runs out**: it was renewed at the latest when the last fault
///   healed, so etcd expires it within `lease_ttl`, plus 1 s if etcd itself just restarted
///   (it resets leases to TTL + election timeout), plus one 500 ms expiry sweep;
/// - **the new leader reaches etcd again** ([`reconnect_span`]): turmoil's TCP does not
///   retransmit, so a partition that dropped a segment leaves the HTTP/2 connection silently
///   dead (real TCP recovers from short partitions, not necessarily from long ones). Only an
///   HTTP/2 ping notices. The simulation runs hyper's real pings over turmoil's TCP, sized
///   as in production from the timing (`Timing::etcd_ping_interval`, one keep-alive
///   interval; `Timing::etcd_ping_timeout`, one request timeout); they go out only while a
///   stream is open (`keep_alive_while_idle(false)`), and a stream opens with the next etcd
///   call, at most one retry backoff (`Timing::etcd_retry_max`, a quarter of the TTL) later.
///   The next attempts come at most one more backoff later (the observer's and the
///   campaign's retries run side by side, and any answered call ends the observer's wait), and
///   a grant and a candidate key take one request timeout each;
/// - **the new leader's elector restarts** ([`restart_span`]): a crash that healed last
///   restarts its elector only once systemd's `ExecStopPost=` (`elector force-standby`)
///   finished, which drains the node and ends the remembered term first; when every other
///   replica is down too, that elector is the next leader.
///
/// Then the new leader waits the activation delay on its own clock (up to
/// `1 / (1 - max_clock_drift)` times longer in real time; after a clean handover it waits
/// only `Timing::handover_delay`, shorter), reads its node's readiness and mode (one probe or
/// check interval) and activates it (one node timeout: a standby node answers
/// `activate=true` at once, no `prepare()` holds its lock), plus [`LIVENESS_SLACK`].
///
/// Not a path of its own: a node whose readiness fault healed says so only with its next
/// block (iotex-core evaluates readiness per block), up to `block_interval` + the block's
/// commit time (a fifth of a slot) + its sync lag (at most 300 ms) = 3.3 s later; then a probe
/// (1 s) and a campaign (two request timeouts) make it a leader within 6.3 s, well inside
/// the others. The old leader's drain (`drain_bound`, 5.1 s with 2.5 s slots)
/// happens before its lease runs out or its record is written, inside the first two paths.
///
/// With the default timing: max(11.5 s, 9 s, 11.8 s) + 13.84 s + 1 s + 0.3 s + 1 s = 27.9 s;
/// with the 7 s fast profile: max(8.5 s, 4.7 s, 9.55 s) + 10.71 s + 1 s + 0.15 s + 1 s =
/// 22.4 s; with quick-restart (its 9.6 s delay): 21.4 s. The search reports the slowest recovery it saw
/// next to this bound.
pub fn liveness_bound(timing: &Timing) -> Duration {
    let expiry = timing.lease_ttl + ELECTION_TIMEOUT + SWEEP_INTERVAL;
    let reconnect = reconnect_span(timing);
    let restart = restart_span(timing);
    let delay = timing
        .activation_delay
        .div_f64(1.0 - timing.max_clock_drift);
    expiry.max(reconnect).max(restart)
        + delay
        + timing.probe_interval.max(timing.node_check_interval)
        + timing.node_timeout
        + LIVENESS_SLACK
}

/// How long after its restart was due an elector whose crash healed last may take to become
/// a candidate again (the `restart` path of [`liveness_bound`]), term by term:
///
/// - `drain_bound + confirm_poll_interval + 2 x node_timeout`: `ExecStopPost=` (force-standby)
///   commands standby; iotex-core accepts it when the slot in progress starts, makes its last
///   signature and reads standby within `drain_bound` of it; force-standby's next read comes
///   one poll later, and a command re-sent meanwhile and that read take a node timeout each;
/// - `DEAD_TERM_BOUND` (3 s): it ends the term the crashed elector left in etcd, or gives up;
/// - `3 x node_timeout + 2 x etcd_request_timeout`: the restarted elector commands standby,
///   confirms it and probes readiness, then grants its lease and creates its candidate key.
///
/// Default: 5.1 + 0.2 + 0.6 + 3 + 0.9 + 2 = 11.8 s; fast and quick-restart profiles: 5.1 +
/// 0.1 + 0.3 + 3 + 0.45 + 0.6 = 9.55 s. (If its old key is still there, it is the first
/// candidate until ended or expired: the expiry path covers that.)
pub fn restart_span(timing: &Timing) -> Duration {
    let stop_post = timing.drain_bound + timing.confirm_poll_interval + 2 * timing.node_timeout;
    let start = 3 * timing.node_timeout + 2 * timing.etcd_request_timeout;
    stop_post + elector::standby::DEAD_TERM_BOUND + start
}

/// How long after a persistent node fault begins on the leader's replica some other node must
/// be active, when another replica is healthy (node up, admin endpoint working, ready, its
/// elector connected) and the leader can prove its node standby: by a read (the node refuses
/// activation but answers reads) or by a fence run that succeeds. The path, term by term, each
/// counted on the leader's clock where the core counts it (up to `1 / (1 - max_clock_drift)`
/// longer in real time):
///
/// - `node_lost_after + node_check_interval + node_timeout`: the leader counts its node as lost
///   `node_lost_after` after the last read that said active (rule `give_way_when_node_lost`;
///   a dead node is found unready sooner, rule `unready_leader`). That read came before the
///   fault; one check interval and one node timeout are added so that the bound does not
///   depend on it coming right before;
/// - `node_timeout + max(step_down_lead, shutdown_grace)`: the handover demotes the node (a
///   node call in flight ends first: a read or `activate=true`, bounded by `node_timeout`;
///   the slower `activate=false` is never in flight while the node is commanded active), and
///   the fence runs when standby is not confirmed `step_down_lead` later (the drain is now
///   iotex-core's consensus tail, 5.1 s); after a SIGTERM, at the end of its shutdown grace at
///   the latest;
/// - [`FENCE_TIMEOUT`]: the fence stops the node and reports success within the fence timeout
///   (rule `lead_may_be_given_away`: only then may the lead go);
/// - `2 * etcd_request_timeout`: the resignation (a transaction deleting the key, then the
///   lease revocation); the successor's watch sees the key gone (network latency:
///   [`LIVENESS_SLACK`]);
/// - `activation_delay`: the successor waits it (the fence proves the node stopped, not when,
///   so no handover record is written; a node that refuses activation is proven standby by a
///   read, and its successor waits only `Timing::handover_delay`, shorter);
/// - `max(probe_interval, node_check_interval) + node_timeout`: it reads readiness and mode and
///   activates its node;
/// - [`LIVENESS_SLACK`].
///
/// With the default timing: 11.41 + 9.29 + 10 + 2 + 13.84 + 1.3 + 1 = 48.8 s; with the 7 s
/// fast profile: 6.21 + 6.67 + 10 + 0.6 + 10.71 + 1.15 + 1 = 36.3 s; quick-restart (9.6 s
/// delay): 35.3 s.
/// When the fence cannot succeed
/// (absent, failing, timing out) and the node cannot be read, the leader must instead keep the
/// lead and report itself stuck (`/status`'s `stuck`) by the same bound: its first fence run
/// fails by the fence timeout.
pub fn persistent_fault_bound(timing: &Timing) -> Duration {
    let on_clock = |d: Duration| d.div_f64(1.0 - timing.max_clock_drift);
    let lost = on_clock(timing.node_lost_after + timing.node_check_interval + timing.node_timeout);
    let to_fence =
        timing.node_timeout + on_clock(timing.step_down_lead().max(timing.shutdown_grace()));
    let resign = 2 * timing.etcd_request_timeout;
    let activate = on_clock(timing.activation_delay)
        + timing.probe_interval.max(timing.node_check_interval)
        + timing.node_timeout;
    lost + to_fence + FENCE_TIMEOUT + resign + activate + LIVENESS_SLACK
}

/// When the run must be settled: [`liveness_bound`] after the last transient fault healed;
/// with a persistent node fault beginning at `persistent_at`, a further
/// [`persistent_fault_bound`] after the later of that and the fault's start (the replica hit
/// may lead again after a transient fault, and then needs the whole path again).
pub fn liveness_deadline(
    timing: &Timing,
    last_heal: Duration,
    persistent_at: Option<Duration>,
) -> Duration {
    let settled = last_heal + liveness_bound(timing);
    match persistent_at {
        None => settled,
        Some(at) => settled.max(at) + persistent_fault_bound(timing),
    }
}

/// The first instant of `[from, until)` at which none of `nodes` is active, if there is one.
pub fn first_gap(
    histories: &[Vec<Transition>],
    nodes: &[usize],
    from: Duration,
    until: Duration,
) -> Option<Duration> {
    let picked: Vec<Vec<Transition>> = nodes.iter().map(|&n| histories[n].clone()).collect();
    let sets = active_sets(&picked);
    let empty_at_from = sets
        .iter()
        .take_while(|(at, _)| *at <= from)
        .last()
        .is_none_or(|(_, set)| set.is_empty());
    if empty_at_from {
        return Some(from);
    }
    sets.iter()
        .find(|(at, set)| *at > from && *at < until && set.is_empty())
        .map(|(at, _)| *at)
}

/// Since when `nodes` have had an active member without a gap, as of `at`.
pub fn active_since(
    histories: &[Vec<Transition>],
    nodes: &[usize],
    at: Duration,
) -> Option<Duration> {
    let picked: Vec<Vec<Transition>> = nodes.iter().map(|&n| histories[n].clone()).collect();
    let mut since = None;
    for (when, set) in active_sets(&picked) {
        if when > at {
            break;
        }
        since = if set.is_empty() {
            None
        } else {
            since.or(Some(when))
        };
    }
    since
}

/// How long after a partition healed an elector may still be cut off from etcd in the
/// simulation: the next etcd call comes at most one retry backoff later
/// (`Timing::etcd_retry_max`); its HTTP/2 connection, silently broken (turmoil does not
/// retransmit), is closed by a ping unanswered for one ping interval plus one ping timeout
/// (`Timing::dead_connection_bound`); then one more backoff and a grant and a candidate key,
/// a request timeout each (the `reconnect` path of [`liveness_bound`]). Default timing:
/// 2.5 + 2 + 2.5 + 2 = 9 s; 3 s profile: 0.75 + 0.6 + 0.75 + 0.6 = 2.7 s.
pub fn reconnect_span(timing: &Timing) -> Duration {
    timing.etcd_retry_max()
        + timing.dead_connection_bound()
        + timing.etcd_retry_max()
        + 2 * timing.etcd_request_timeout
}

/// Every change of the set of active nodes, in time order: `(when, active nodes from then)`.
/// Changes at one instant are applied together (a node that stops at `t` and one that starts
/// at `t` never overlap).
pub fn active_sets(histories: &[Vec<Transition>]) -> Vec<(Duration, Vec<usize>)> {
    let mut changes: Vec<(Duration, usize, bool)> = histories
        .iter()
        .enumerate()
        .flat_map(|(node, history)| history.iter().map(move |&(at, active)| (at, node, active)))
        .collect();
    changes.sort_by_key(|&(at, node, _)| (at, node));
    let mut active = vec![false; histories.len()];
    let mut sets: Vec<(Duration, Vec<usize>)> = Vec::new();
    let mut i = 0;
    while i < changes.len() {
        let at = changes[i].0;
        while i < changes.len() && changes[i].0 == at {
            active[changes[i].1] = changes[i].2;
            i += 1;
        }
        let set: Vec<usize> = (0..active.len()).filter(|&n| active[n]).collect();
        if sets.last().map(|(_, s)| s) != Some(&set) {
            sets.push((at, set));
        }
    }
    sets
}

/// Safety: every stretch of time during which two nodes were both active, up to `end`: the
/// shared checker of the simulation, the functional tests and the demo
/// ([`elector_model::history::dual_active`]).
pub fn overlaps(histories: &[Vec<Transition>], end: Duration) -> Vec<Overlap> {
    elector_model::history::dual_active(histories, end)
}

/// The final state of a run, if it is exactly one active node: since when (the last change of
/// the set of active nodes) and which.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    pub since: Duration,
    pub node: usize,
}

/// Liveness evidence: `Some` when the run ends with exactly one node active, alone since
/// `since`. Liveness holds when `since` is no later than the deadline.
pub fn settled(histories: &[Vec<Transition>]) -> Option<Settled> {
    let sets = active_sets(histories);
    let (since, set) = sets.last()?;
    match set.as_slice() {
        [node] => Some(Settled {
            since: *since,
            node: *node,
        }),
        _ => None,
    }
}

/// Every start of an active span (the "active until the round ends" tail counts as part of
/// the span), in time order: `(when, node)`.
pub fn activations(histories: &[Vec<Transition>]) -> Vec<(Duration, usize)> {
    let mut starts: Vec<(Duration, usize)> = histories
        .iter()
        .enumerate()
        .flat_map(|(node, h)| {
            let first = h.first().filter(|t| t.1).map(|t| (t.0, node));
            first.into_iter().chain(
                h.windows(2)
                    .filter(|w| !w[0].1 && w[1].1)
                    .map(move |w| (w[1].0, node)),
            )
        })
        .collect();
    starts.sort_unstable();
    starts
}

/// Stability evidence: how many times leadership changed hands, counting the first
/// activation: each activation of a node other than the one activated before it. (A leader
/// that re-activates its own node after the node restarted keeps its leadership.)
pub fn leadership_changes(histories: &[Vec<Transition>]) -> usize {
    let mut last = None;
    let mut changes = 0;
    for (_, node) in activations(histories) {
        if last != Some(node) {
            changes += 1;
            last = Some(node);
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn h(changes: &[(u64, bool)]) -> Vec<Transition> {
        changes.iter().map(|&(at, a)| (s(at), a)).collect()
    }

    #[test]
    fn back_to_back_activity_is_not_an_overlap() {
        let histories = vec![
            h(&[(0, false), (100, true), (500, false)]),
            h(&[(0, false), (500, true)]),
        ];
        assert!(overlaps(&histories, s(1000)).is_empty());
        assert_eq!(
            settled(&histories),
            Some(Settled {
                since: s(500),
                node: 1
            })
        );
        assert_eq!(activations(&histories), vec![(s(100), 0), (s(500), 1)]);
        assert_eq!(leadership_changes(&histories), 2);
    }

    #[test]
    fn overlaps_are_found_with_every_node_involved() {
        let histories = vec![
            h(&[(0, false), (100, true), (600, false)]),
            h(&[(0, false), (500, true), (700, false), (800, true)]),
            h(&[(0, false), (550, true), (650, false)]),
        ];
        assert_eq!(
            overlaps(&histories, s(1000)),
            vec![
                Overlap {
                    nodes: (0, 1),
                    from: s(500),
                    until: s(600)
                },
                Overlap {
                    nodes: (0, 2),
                    from: s(550),
                    until: s(600)
                },
                Overlap {
                    nodes: (1, 2),
                    from: s(550),
                    until: s(650)
                },
            ]
        );
        assert_eq!(activations(&histories).len(), 4);
        assert_eq!(leadership_changes(&histories), 4);
    }

    #[test]
    fn a_leader_reactivating_its_own_node_keeps_its_leadership() {
        let histories = vec![
            h(&[(0, false), (100, true), (200, false), (300, true)]),
            h(&[(0, false), (900, true)]),
        ];
        assert_eq!(activations(&histories).len(), 3);
        assert_eq!(leadership_changes(&histories), 2);
    }

    #[test]
    fn an_overlap_still_open_at_the_end_is_reported_to_the_end() {
        let histories = vec![h(&[(0, true)]), h(&[(0, false), (300, true)])];
        assert_eq!(
            overlaps(&histories, s(900)),
            vec![Overlap {
                nodes: (0, 1),
                from: s(300),
                until: s(900)
            }]
        );
        assert_eq!(settled(&histories), None);
        assert_eq!(activations(&histories), vec![(s(0), 0), (s(300), 1)]);
    }

    #[test]
    fn nobody_active_is_not_settled() {
        let histories = vec![h(&[(0, false), (10, true), (20, false)]), h(&[(0, false)])];
        assert_eq!(settled(&histories), None);
    }

    #[test]
    fn gaps_and_active_stretches() {
        let histories = vec![
            h(&[(0, false), (100, true), (500, false)]),
            h(&[(0, false), (600, true)]),
        ];
        assert_eq!(
            first_gap(&histories, &[0, 1], s(100), s(1000)),
            Some(s(500))
        );
        assert_eq!(first_gap(&histories, &[0, 1], s(600), s(1000)), None);
        assert_eq!(first_gap(&histories, &[1], s(0), s(1000)), Some(s(0)));
        assert_eq!(first_gap(&histories, &[0, 1], s(200), s(500)), None);
        assert_eq!(active_since(&histories, &[1], s(900)), Some(s(600)));
        assert_eq!(active_since(&histories, &[0, 1], s(550)), None);
        assert_eq!(active_since(&histories, &[0], s(300)), Some(s(100)));
    }

    #[test]
    fn persistent_fault_bounds_of_the_profiles() {
        let standard = persistent_fault_bound(&Timing::default());
        assert!(
            standard > Duration::from_millis(48_800) && standard < Duration::from_millis(48_900),
            "{standard:?}"
        );
        let fast =
            persistent_fault_bound(&elector_model::timing_profile::TimingProfile::Fast.timing());
        assert!(
            fast > Duration::from_millis(36_300) && fast < Duration::from_millis(36_400),
            "{fast:?}"
        );
        // The quick-restart profile's activation delay is 1 s shorter than the fast one's.
        let quick = persistent_fault_bound(
            &elector_model::timing_profile::TimingProfile::QuickRestart.timing(),
        );
        assert!(
            quick > Duration::from_millis(35_300) && quick < Duration::from_millis(35_400),
            "{quick:?}"
        );
        let t = Timing::default();
        let lb = liveness_bound(&t);
        let pb = persistent_fault_bound(&t);
        assert_eq!(liveness_deadline(&t, s(5000), None), s(5000) + lb);
        assert_eq!(
            liveness_deadline(&t, s(5000), Some(s(1000))),
            s(5000) + lb + pb
        );
        assert_eq!(
            liveness_deadline(&t, s(5000), Some(s(90_000))),
            s(90_000) + pb
        );
    }

    #[test]
    fn liveness_bounds_of_the_profiles() {
        // The restart path is the longest of the three in every profile.
        use elector_model::timing_profile::TimingProfile as P;
        for profile in [P::Default, P::Fast, P::QuickRestart] {
            let t = &profile.timing();
            let expiry = t.lease_ttl + ELECTION_TIMEOUT + SWEEP_INTERVAL;
            assert!(
                restart_span(t) > expiry.max(reconnect_span(t)),
                "{}",
                profile.name()
            );
        }
        assert_eq!(
            restart_span(&Timing::default()),
            Duration::from_millis(11_800)
        );
        let standard = liveness_bound(&Timing::default());
        assert!(
            standard > Duration::from_millis(27_900) && standard < Duration::from_millis(28_000),
            "{standard:?}"
        );
        let fast = liveness_bound(&elector_model::timing_profile::TimingProfile::Fast.timing());
        assert!(
            fast > Duration::from_millis(22_400) && fast < Duration::from_millis(22_500),
            "{fast:?}"
        );
        let quick =
            liveness_bound(&elector_model::timing_profile::TimingProfile::QuickRestart.timing());
        assert!(
            quick > Duration::from_millis(21_350) && quick < Duration::from_millis(21_450),
            "{quick:?}"
        );
    }
}

//! The judgements that need more than the histories: whether a fence was explained by a
//! node fault, whether the run broke the fence assumption at a lease expiry, and the
//! persistent fault's check over the world's `/status` samples. [`crate::checker::check`] holds the
//! judgements from the histories alone; [`crate::seed::run::simulate`] puts them together.

use crate::checker::verdict::{
    Broken, BrokenKind, Expectation, PersistentReport, StatusSample, Victim,
};
use crate::seed::schedule::{FaultKind, Scenario, Target, secs};
use crate::world::Samples;
use crate::world::etcd_model::{ELECTION_TIMEOUT, SWEEP_INTERVAL};
use crate::world::host::FenceCall;
use elector_model::node::Transition;
use std::time::Duration;

/// Whether `node`'s admin endpoint failed (an admin fault, a restart, the persistent fault) or
/// someone else set its mode or keys (an activation by hand, a late key replacement) at some
/// time in `[from, to]`: then standby could not be confirmed by a read in time. (A node
/// activated by hand while its elector waits out the drain of its own `activate=false` reads
/// like a node that did not take the command: it is commanded again a drain bound after the
/// acknowledgement, close to the fence deadline.)
fn node_troubled(
    scenario: &Scenario,
    victim: Option<&Victim>,
    node: usize,
    from: Duration,
    to: Duration,
) -> bool {
    let transient = scenario.faults.iter().any(|f| {
        let hit = match f.kind {
            FaultKind::Admin { node, .. }
            | FaultKind::NodeRestart { node, .. }
            | FaultKind::BootsWithOperatorKey { node, .. }
            | FaultKind::KeysLate { node, .. }
            | FaultKind::HandActivation { node } => node,
            _ => return false,
        };
        hit == node && f.at <= to && f.heal >= from
    });
    let persistent = scenario
        .persistent
        .as_ref()
        .zip(victim)
        .is_some_and(|(p, v)| v.node == node && p.at <= to);
    transient || persistent
}

/// Whether the node of the fencing elector had an admin fault or a restart in the lease TTL
/// before the fence: then standby could not be confirmed, and the fence is what it is for.
pub(crate) fn fence_explained(
    scenario: &Scenario,
    victim: Option<&Victim>,
    call: &FenceCall,
) -> bool {
    let from = call.at.saturating_sub(scenario.profile.timing().lease_ttl);
    node_troubled(scenario, victim, call.elector, from, call.at)
}

/// The limit of rule `activation_delay_covers_early_revocation`: the activation delay covers
/// a leader that etcd's early revocation caught cut off only if that leader can command its
/// node standby. One whose node's admin endpoint failed must fence, and its fence runs at its
/// lease deadline (`drain_bound + safety_margin` after the demotion), after the successor's
/// delay ran out. A run in which such a leader ran a fence its node's trouble explains, within
/// a lease TTL (and one second) of the revocation, broke that documented assumption. A fence
/// against a healthy node does not count: the fence discipline reports it.
pub(crate) fn fenced_after_early_revocation(
    scenario: &Scenario,
    victim: Option<&Victim>,
    revocations: &[(usize, Duration)],
    fences: &[FenceCall],
) -> Vec<Broken> {
    let within = scenario.profile.timing().lease_ttl + Duration::from_secs(1);
    let mut broken = Vec::new();
    for &(leader, revoked) in revocations {
        let fenced = fences.iter().find(|call| {
            call.elector == leader
                && call.at >= revoked
                && call.at <= revoked + within
                && fence_explained(scenario, victim, call)
        });
        if let Some(call) = fenced {
            broken.push(Broken {
                kind: BrokenKind::FencedAfterEarlyRevocation,
                replica: leader,
                from: revoked,
                detail: format!(
                    "etcd revoked elector-{leader}'s lease early at {} while it was cut off, and \
                     node-{leader}'s admin endpoint failed: it fenced at {}",
                    secs(revoked),
                    secs(call.at)
                ),
            });
        }
    }
    broken
}

/// Whether `elector` may have been cut off from etcd in `[from, to]`: a partition, hold or
/// latency rise on its link, etcd down, or the elector itself down. Only then may its lease
/// run out while it lives and holds it.
fn cut_off(scenario: &Scenario, elector: usize, from: Duration, to: Duration) -> bool {
    let on = |target: Target| match target {
        Target::All => true,
        Target::One(i) => i == elector,
    };
    scenario.faults.iter().any(|f| {
        let hit = match f.kind {
            FaultKind::Partition { target, .. }
            | FaultKind::Hold { target }
            | FaultKind::Latency { target, .. } => on(target),
            // The leader it cuts off is known only when it begins: any elector may be it.
            FaultKind::EtcdCrash | FaultKind::EarlyRevocation { .. } => true,
            FaultKind::ElectorCrash { elector: e, .. }
            | FaultKind::ElectorShutdown { elector: e } => e == elector,
            _ => false,
        };
        hit && f.at <= to && f.heal >= from
    })
}

/// Whether `history` is active at every instant of `[from, to]`.
fn active_throughout(history: &[Transition], from: Duration, to: Duration) -> bool {
    let at_from = history
        .iter()
        .take_while(|(at, _)| *at <= from)
        .last()
        .is_some_and(|(_, active)| *active);
    at_from
        && !history
            .iter()
            .any(|&(at, active)| at > from && at <= to && !active)
}

/// The documented assumption about the fence when the lease runs out: an elector cut off from
/// etcd whose node cannot be demoted (its admin endpoint fails) cannot keep its lease, so the
/// fence must stop the node before a successor may activate (`restart_bound + drain_bound`
/// after the expiry, which the activation delay covers). A run in which a node was still
/// active that long after its elector's lease expired, with its admin endpoint failing, its
/// elector cut off, and a fence that does not stop a node within `restart_bound` (absent,
/// failing, timing out or late), broke it. A lease given away (deleted or revoked by its
/// elector) never counts: the core must not do that before the node is proven standby.
pub(crate) fn unstopped_at_expiry(
    scenario: &Scenario,
    victim: Option<&Victim>,
    histories: &[Vec<Transition>],
    expirations: &[(usize, Duration)],
    end: Duration,
) -> Vec<Broken> {
    let t = &scenario.profile.timing();
    if scenario.fence.stops_node_within(t.restart_bound) {
        return Vec::new();
    }
    let mut broken = Vec::new();
    // The lease was last renewed at most its TTL (plus etcd's restart grace and one sweep)
    // before it expired; a partition that healed before that may still have left the
    // elector's connection silently dead for up to the reconnect span.
    let renewed_within = t.lease_ttl + ELECTION_TIMEOUT + SWEEP_INTERVAL;
    let cut_off_within = renewed_within + crate::checker::check::reconnect_span(t);
    for &(replica, expired) in expirations {
        let covered = expired + t.restart_bound + t.drain_bound;
        if covered < end
            && active_throughout(&histories[replica], expired, covered)
            && node_troubled(
                scenario,
                victim,
                replica,
                expired.saturating_sub(renewed_within),
                expired,
            )
            && cut_off(
                scenario,
                replica,
                expired.saturating_sub(cut_off_within),
                expired,
            )
        {
            broken.push(Broken {
                kind: BrokenKind::UnstoppedAtLeaseExpiry,
                replica,
                from: expired,
                detail: format!(
                    "elector-{replica}'s lease expired at {} while it was cut off from etcd and node-{replica}'s admin endpoint failed; the fence ({}) had not stopped the node {} later",
                    secs(expired),
                    scenario.fence.outcome.name(),
                    secs(t.restart_bound + t.drain_bound)
                ),
            });
        }
    }
    broken
}

/// Whether the persistent fault's replica cannot give the lead away: its node cannot be read
/// (dead, or `/ha` broken) and the fence cannot succeed.
fn victim_cannot_give_way(scenario: &Scenario) -> bool {
    scenario
        .persistent
        .as_ref()
        .is_some_and(|p| p.kind.needs_fence() && !scenario.fence.outcome.can_succeed())
}

/// The persistent fault's elector over `[from, ..)`: whether it led and reported itself stuck
/// at every sample, and the first sample at which it led without reporting stuck.
pub(crate) struct StuckAtEnd {
    pub(crate) stuck_throughout: bool,
    pub(crate) unreported: Option<Duration>,
}

pub(crate) fn judge_stuck_at_end(
    scenario: &Scenario,
    samples: &Samples,
    end: Duration,
) -> StuckAtEnd {
    let from = scenario.liveness_deadline;
    let tail: Vec<&StatusSample> = samples
        .victim_status
        .iter()
        .filter(|s| s.at >= from && s.at < end)
        .collect();
    if !victim_cannot_give_way(scenario) {
        return StuckAtEnd {
            stuck_throughout: false,
            unreported: None,
        };
    }
    StuckAtEnd {
        stuck_throughout: !tail.is_empty()
            && tail.iter().all(|s| s.running && s.leading && s.stuck),
        unreported: tail
            .iter()
            .find(|s| s.running && s.leading && !s.stuck)
            .map(|s| s.at),
    }
}

/// The check during the persistent fault, over the window from
/// `max(fault start, last transient heal before it + liveness bound) + persistent bound` to
/// the next transient fault's start (or the end): when the fault hit the leader's replica,
/// either another node is active at every instant of the window (the replica could prove its
/// node standby: by a read, or by a fence that succeeds), or the replica keeps leading and
/// reports itself stuck at every sample of it (it could not).
pub(crate) fn judge_persistent(
    scenario: &Scenario,
    victim: &Victim,
    histories: &[Vec<Transition>],
    samples: &Samples,
    end: Duration,
) -> Option<PersistentReport> {
    let p = scenario.persistent.as_ref()?;
    let t = &scenario.profile.timing();
    let first_up = scenario
        .nodes
        .iter()
        .map(|n| n.ready_at)
        .chain(scenario.electors.iter().map(|e| e.start_delay));
    let heal_before = scenario
        .faults
        .iter()
        .filter(|f| f.at <= p.at)
        .map(|f| f.heal)
        .chain(first_up)
        .max()
        .unwrap_or_default();
    let settled_from = heal_before + crate::checker::check::liveness_bound(t);
    let from = settled_from.max(p.at) + crate::checker::check::persistent_fault_bound(t);
    let until = scenario
        .faults
        .iter()
        .filter(|f| f.at > p.at)
        .map(|f| f.at)
        .min()
        .unwrap_or(end)
        .min(end);
    let window = (from < until).then_some((from, until));
    let expectation = match window {
        None => Expectation::Unchecked,
        Some(_) if !victim.hit_leader => Expectation::Unchecked,
        Some(_) if victim_cannot_give_way(scenario) => Expectation::Stuck,
        Some(_) => Expectation::Active,
    };
    let others: Vec<usize> = (0..histories.len()).filter(|&n| n != victim.node).collect();
    let mut report = PersistentReport {
        victim: victim.clone(),
        expectation,
        window,
        settled_at_start: settled_from <= p.at,
        recovery: None,
        stuck_checked: 0,
        problem: None,
    };
    let v = victim.node;
    match (expectation, window) {
        (Expectation::Active, Some((from, until))) => {
            report.recovery = crate::checker::check::active_since(histories, &others, from)
                .map(|s| s.saturating_sub(p.at));
            if let Some(gap) = crate::checker::check::first_gap(histories, &others, from, until) {
                report.problem = Some(format!(
                    "PERSISTENT: no node other than node-{v} active at {} ({} after the {} fault on node-{v} began at {}; bound {} from {})",
                    secs(gap),
                    secs(gap.saturating_sub(p.at)),
                    p.kind.name(),
                    secs(p.at),
                    secs(crate::checker::check::persistent_fault_bound(t)),
                    secs(settled_from.max(p.at))
                ));
            }
        }
        (Expectation::Stuck, Some((from, until))) => {
            for s in samples
                .victim_status
                .iter()
                .filter(|s| s.at >= from && s.at < until)
            {
                let leads = s.running && s.leading;
                report.stuck_checked += usize::from(leads);
                let other_active = || {
                    crate::checker::check::first_gap(
                        histories,
                        &others,
                        s.at,
                        s.at + Duration::from_nanos(1),
                    )
                    .is_none()
                };
                let what = if leads && !s.stuck {
                    "leads without reporting itself stuck"
                } else if !leads && !other_active() {
                    "does not lead, and no other node is active"
                } else {
                    continue;
                };
                report.problem = Some(format!(
                    "STUCK: at {} elector-{v} {what}, its node unable to be proven standby (the {} fault began at {}, fence {})",
                    secs(s.at),
                    p.kind.name(),
                    secs(p.at),
                    scenario.fence.outcome.name()
                ));
                break;
            }
        }
        _ => {}
    }
    Some(report)
}

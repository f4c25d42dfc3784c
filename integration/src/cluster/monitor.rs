//! The safety monitor of a [`Cluster`]: first every replica's signatures, judged with the
//! simulation's `elector_model::history::double_signs` (the property: no height and round
//! signed by two replicas); second every node's mode history on the cluster's time line,
//! checked with `elector_model::history::dual_active`. Activations a test made on purpose are
//! excused, and what their nodes signed while so activated.

use super::Cluster;
use crate::host::http_get;
use crate::standin::ClockAnchor;
use elector_model::history::{DoubleSign, History, Overlap, double_signs, dual_active};
use elector_model::node::Signature;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// An activation made on purpose behind the electors' backs: the monitor excuses the active
/// interval of `node` that began between `from` and `to`.
pub(super) struct Injected {
    node: usize,
    from: Instant,
    to: Instant,
}

impl Cluster {
    /// `/ha?activate=true` on replica `i`'s node, as a misbehaving operator or a second process
    /// would do. The monitor excuses the activation.
    pub async fn activate_behind_the_back(&self, i: usize) {
        let from = Instant::now();
        let answer = http_get(self.node(i).admin_addr(), "/ha?activate=true").await;
        let to = Instant::now();
        assert!(
            matches!(answer, Ok((200, _))),
            "activating node {i}: {answer:?}"
        );
        self.injected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Injected { node: i, from, to });
    }

    /// When (since the cluster started) replica `i`'s node last became inactive, if it was
    /// ever active and is not now.
    pub fn last_deactivation(&self, i: usize) -> Option<Duration> {
        let history = self.set.replica_history(i);
        match history.last() {
            Some(&(at, false)) if history.len() > 1 => Some(at),
            _ => None,
        }
    }

    /// Every activation of every node so far: `(replica, time since the cluster started)`,
    /// in no particular order. A node that started active is listed at its start.
    pub fn activations(&self) -> Vec<(usize, Duration)> {
        (0..self.len())
            .flat_map(|i| {
                self.set
                    .replica_history(i)
                    .into_iter()
                    .filter(|&(_, active)| active)
                    .map(move |(at, _)| (i, at))
            })
            .collect()
    }

    /// Every node's mode history on the cluster's time line (time since the cluster started),
    /// without the activations excused by [`Cluster::activate_behind_the_back`], and the time
    /// they run up to.
    pub(super) fn histories(&self) -> (Vec<History>, Duration) {
        let injected = self.injected.lock().unwrap_or_else(|p| p.into_inner());
        let host = self.set.host();
        let mut histories = Vec::with_capacity(self.len());
        for i in 0..self.len() {
            let excused = |at: Duration| {
                injected.iter().any(|inj| {
                    inj.node == i && host.on_clock(inj.from) <= at && at <= host.on_clock(inj.to)
                })
            };
            let mut history = History::new();
            let mut skipping = false;
            for (at, active) in self.set.replica_history(i) {
                if active && excused(at) {
                    // Leave out the excused activation and the deactivation that ends it.
                    skipping = true;
                } else if skipping && !active {
                    skipping = false;
                } else if !skipping {
                    history.push((at, active));
                }
            }
            histories.push(history);
        }
        (histories, self.elapsed())
    }

    /// Whether replica `i`'s signature at model time `at` falls in an excused activation: from
    /// the request to the end of the active interval it began, plus the consensus tail (two
    /// slots and a retry: what a node still signs after a deactivation).
    fn excused_signature(&self, i: usize, at_on_clock: Duration) -> bool {
        let injected = self.injected.lock().unwrap_or_else(|p| p.into_inner());
        let host = self.set.host();
        let history = self.set.replica_history(i);
        let tail = 2 * super::block_interval() + Duration::from_millis(100);
        injected.iter().filter(|inj| inj.node == i).any(|inj| {
            let from = host.on_clock(inj.from);
            let ended = history
                .iter()
                .find(|&&(t, active)| !active && t >= from)
                .map(|&(t, _)| t + tail);
            at_on_clock >= from && ended.is_none_or(|end| at_on_clock <= end)
        })
    }

    /// Every replica's signatures (index: replica), those of excused activations left out.
    pub fn signatures(&self) -> Vec<Vec<Signature>> {
        let anchor = ClockAnchor::now();
        let host = self.set.host();
        self.set
            .signatures()
            .into_iter()
            .enumerate()
            .map(|(i, signatures)| {
                signatures
                    .into_iter()
                    .filter(|s| !self.excused_signature(i, host.on_clock(anchor.instant_of(s.at))))
                    .collect()
            })
            .collect()
    }

    /// Every height and round two replicas signed so far, excused activations left out.
    /// [`Cluster::assert_never_two_active`] fails unless this is empty.
    pub fn double_signs(&self) -> Vec<DoubleSign> {
        double_signs(&self.signatures())
    }

    /// The property alone: panics if two replicas signed the same height and round.
    pub fn assert_no_double_sign(&self) {
        let found = self.double_signs();
        if found.is_empty() {
            return;
        }
        let mut text = String::new();
        for double in &found {
            let _ = writeln!(text, "{double}");
        }
        let (histories, end) = self.histories();
        panic!(
            "DOUBLE SIGN ({} height(s) and round(s) signed by two replicas):\n{text}{}",
            found.len(),
            describe_histories(&histories, end)
        );
    }

    /// Every span so far during which two or more nodes were effectively active (times since
    /// the cluster started), excused activations left out. [`Cluster::assert_never_two_active`]
    /// fails unless this is empty.
    pub fn dual_active(&self) -> Vec<Overlap> {
        let (histories, end) = self.histories();
        dual_active(&histories, end)
    }

    /// The safety monitor: panics, first, if two replicas signed the same height and round
    /// ([`Cluster::assert_no_double_sign`], the property); second, if two nodes were active at
    /// one instant at any time since the cluster started, with the simulation's check
    /// ([`elector_model::history::dual_active`]).
    ///
    /// The stand-ins' histories share the wall clock; a clean handover leaves a gap of at
    /// least the predecessor's last slot.
    pub fn assert_never_two_active(&self) {
        self.assert_no_double_sign();
        let (histories, end) = self.histories();
        let found = dual_active(&histories, end);
        let mut text = String::new();
        for overlap in &found {
            let _ = writeln!(
                text,
                "nodes {} and {} both active from {:?} until {:?}",
                overlap.nodes.0, overlap.nodes.1, overlap.from, overlap.until,
            );
        }
        assert!(
            found.is_empty(),
            "TWO NODES ACTIVE AT ONCE:\n{text}{}",
            describe_histories(&histories, end)
        );
    }
}

/// Each node's mode changes, for failure messages.
pub(super) fn describe_histories(histories: &[History], end: Duration) -> String {
    let mut text = format!("mode histories (since the cluster started; now {end:?}):\n");
    for (i, history) in histories.iter().enumerate() {
        let changes: Vec<String> = history
            .iter()
            .map(|&(at, active)| format!("{at:?} {}", if active { "active" } else { "standby" }))
            .collect();
        let _ = writeln!(text, "  node {i}: {}", changes.join(", "));
    }
    text
}

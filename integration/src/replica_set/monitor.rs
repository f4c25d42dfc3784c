//! The safety monitor of a [`ReplicaSet`]: first every replica's signatures, judged with the
//! simulation's `elector_model::history::double_signs` (the property: no height and round
//! signed by two replicas); second every replica's mode history on the run's clock, checked
//! with `elector_model::history::dual_active`. Activations a test made on purpose are
//! excused, and what their nodes signed while so activated. The checks themselves
//! ([`check_no_double_sign`], [`check_never_two_active`]) judge the Docker tests' container
//! replicas too, whose histories and signatures come from logs.

use super::ReplicaSet;
use crate::host::http_get_ok;
use crate::standin::ClockAnchor;
use anyhow::{Result, bail};
use elector_model::history::{DoubleSign, History, Overlap, double_signs, dual_active};
use elector_model::node::Signature;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// An activation made on purpose behind the electors' backs: the monitor excuses the active
/// interval of `replica`'s node that began between `from` and `to`, and what the node signed
/// from `from` until `tail` after that interval ended.
pub(super) struct Excused {
    replica: usize,
    from: Instant,
    to: Instant,
    /// What a node still signs after a deactivation: two slots and a retry.
    tail: Duration,
}

impl ReplicaSet {
    /// `/ha?activate=true` on replica `i`'s node, as a misbehaving operator or a second process
    /// would do. The monitor excuses the activation.
    pub async fn activate_behind_the_back(&self, i: usize) -> Result<()> {
        let admin = self.node(i)?.admin_addr();
        let from = Instant::now();
        http_get_ok(admin, "/ha?activate=true").await?;
        let excused = Excused {
            replica: i,
            from,
            to: Instant::now(),
            tail: 2 * self.node_options.block_interval + Duration::from_millis(100),
        };
        self.excused().push(excused);
        Ok(())
    }

    fn excused(&self) -> std::sync::MutexGuard<'_, Vec<Excused>> {
        self.excused.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every replica's mode history on the run's clock (index: replica, its node's lives
    /// merged), without the excused activations: what the monitor judges.
    pub fn judged_histories(&self) -> Vec<History> {
        let excused = self.excused();
        let on_clock = |at| self.host.on_clock(at);
        (0..self.replicas.len())
            .map(|i| {
                let is_excused = |at: Duration| {
                    excused
                        .iter()
                        .any(|e| e.replica == i && on_clock(e.from) <= at && at <= on_clock(e.to))
                };
                let mut history = History::new();
                let mut skipping = false;
                for (at, active) in self.replica_history(i) {
                    if active && is_excused(at) {
                        // Leave out the excused activation and the deactivation that ends it.
                        skipping = true;
                    } else if skipping && !active {
                        skipping = false;
                    } else if !skipping {
                        history.push((at, active));
                    }
                }
                history
            })
            .collect()
    }

    /// Every replica's signatures (index: replica), on the model's clock, without those of
    /// excused activations: from the request until the tail after the interval it began.
    pub fn signatures(&self) -> Vec<Vec<Signature>> {
        let excused = self.excused();
        let anchor = ClockAnchor::now();
        (0..self.replicas.len())
            .map(|i| {
                let history = self.replica_history(i);
                let is_excused = |at: Duration| {
                    excused.iter().filter(|e| e.replica == i).any(|e| {
                        let from = self.host.on_clock(e.from);
                        let ended = history.iter().find(|&&(t, active)| !active && t >= from);
                        at >= from && ended.is_none_or(|&(t, _)| at <= t + e.tail)
                    })
                };
                self.replica_signatures(i)
                    .into_iter()
                    .filter(|s| !is_excused(self.host.on_clock(anchor.instant_of(s.at))))
                    .collect()
            })
            .collect()
    }

    /// The property: every height and round two replicas signed with the same key, over the
    /// whole run so far (every life of every node), excused activations left out. Empty when
    /// safe.
    pub fn double_signs(&self) -> Vec<DoubleSign> {
        double_signs(&self.signatures())
    }

    /// Every span so far during which two or more replicas' nodes were active at once (on the
    /// run's clock), excused activations left out.
    pub fn dual_active(&self) -> Vec<Overlap> {
        dual_active(&self.judged_histories(), self.elapsed())
    }

    /// Fails if two replicas signed the same height and round (excused activations left out).
    pub fn check_no_double_sign(&self) -> Result<()> {
        let (histories, end) = (self.judged_histories(), self.elapsed());
        check_no_double_sign(&self.signatures(), &histories, end, &self.values())
    }

    /// The safety checks over the whole run so far, excused activations left out: first no
    /// height and round signed by two replicas (the property), then never two nodes active at
    /// one instant (a round still in progress counts as active).
    pub fn check_safety(&self) -> Result<()> {
        self.check_no_double_sign()?;
        check_never_two_active(&self.judged_histories(), self.elapsed(), &self.values())
    }

    /// Every replica's value, in order: the names in the monitor's messages.
    pub fn values(&self) -> Vec<&str> {
        self.replicas.iter().map(|r| r.value()).collect()
    }
}

/// Fails if two replicas (index: replica, named by `names`) signed the same height and round;
/// the error lists them all, then the `histories` up to `end`.
pub fn check_no_double_sign(
    signatures: &[Vec<Signature>],
    histories: &[History],
    end: Duration,
    names: &[&str],
) -> Result<()> {
    let found = double_signs(signatures);
    if found.is_empty() {
        return Ok(());
    }
    let mut text = String::new();
    for double in &found {
        let (a, b) = (names[double.nodes.0], names[double.nodes.1]);
        let _ = writeln!(text, "  {a} and {b}: {double}");
    }
    bail!(
        "DOUBLE SIGN ({} height(s) and round(s) signed by two replicas):\n{text}{}",
        found.len(),
        describe_histories(histories, end, names)
    )
}

/// Fails if two of `histories` (named by `names`) were active at one instant before `end`;
/// the error lists every overlap, then the histories.
pub fn check_never_two_active(histories: &[History], end: Duration, names: &[&str]) -> Result<()> {
    let found = dual_active(histories, end);
    if found.is_empty() {
        return Ok(());
    }
    let mut text = String::new();
    for overlap in &found {
        let _ = writeln!(
            text,
            "  {} and {} both active from {:?} until {:?}",
            names[overlap.nodes.0], names[overlap.nodes.1], overlap.from, overlap.until,
        );
    }
    bail!(
        "TWO NODES ACTIVE AT ONCE:\n{text}{}",
        describe_histories(histories, end, names)
    )
}

/// When `history` last changed to `active`, if ever.
pub fn last_change(history: &History, active: bool) -> Option<Duration> {
    history
        .iter()
        .rev()
        .find(|&&(_, mode)| mode == active)
        .map(|&(at, _)| at)
}

/// Each node's mode changes, for failure messages.
pub fn describe_histories(histories: &[History], end: Duration, names: &[&str]) -> String {
    let mut text = format!("mode histories (on the run's clock; now {end:?}):\n");
    for (i, history) in histories.iter().enumerate() {
        let changes: Vec<String> = history
            .iter()
            .map(|&(at, active)| format!("{at:?} {}", if active { "active" } else { "standby" }))
            .collect();
        let _ = writeln!(text, "  {}: {}", names[i], changes.join(", "));
    }
    text
}

//! The chain as the replicas see it: consensus timing, the slot grid, the round a node picks,
//! and a deterministic network that produces the blocks.
//!
//! Read in iotex-core (`consensus/consensusfsm/consensus_ttl.go`,
//! `consensus/scheme/rolldpos/roundcalculator.go`):
//! - Slots lie on one grid for the whole chain: a block's time is its proposal time rounded
//!   down to a multiple of the block interval since genesis, and round `r` of the height after
//!   a block at `T` starts at `T + (r + 1) * interval`.
//! - A node that prepares at `now` uses the slot it is in if it is less than
//!   `tolerated_overtime` into it, else the next one; right after a block (less than one
//!   interval since it) it always uses the next slot (round 0).
//! - The proposer of height `h`, round `r` is the `(h + r) % delegates`-th proposer (time-based
//!   rotation).
//!
//! The network here is deterministic: every slot commits a block at `commit_after` past its
//! start, except the slots [`Chain::failed_every`] leaves empty, whatever the replicas sign.
//! So every replica, in this process or another, computes the same chain from the same clock,
//! and the same `(height, round)` names the same slot everywhere. What this does not model: a
//! round that fails because none of our replicas proposed in our slot.

use std::time::Duration;

/// The node's consensus timing (`ConsensusTiming`, the Wake or Dardanelles upgrade's values,
/// and `toleratedOvertime`), as iotex-core's code defines them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsensusTiming {
    /// One slot: `blockInterval`.
    pub block_interval: Duration,
    /// `toleratedOvertime`: how far into a slot a node still uses it when it prepares.
    pub tolerated_overtime: Duration,
    /// `acceptBlockTTL`: how long a round waits for the proposal.
    pub accept_block_ttl: Duration,
    /// `acceptProposalEndorsementTTL`.
    pub accept_proposal_endorsement_ttl: Duration,
    /// `acceptLockEndorsementTTL`.
    pub accept_lock_endorsement_ttl: Duration,
    /// `commitTTL`.
    pub commit_ttl: Duration,
    /// `unmatchedEventTTL`: an event that matches no transition is retried until it is this
    /// old, then dropped.
    pub unmatched_event_ttl: Duration,
    /// `unmatchedEventInterval`: how often such an event is retried.
    pub unmatched_event_interval: Duration,
    /// `consensus.rollDPoS.delay`: a node that starts active runs its first round this long
    /// after start (`RollDPoS.Start` -> `BackToPrepare(startDelay)`), whatever its mode then.
    pub start_delay: Duration,
    /// How long minting and signing a proposal takes (`Proposal()`, under the read lock).
    pub mint_time: Duration,
}

impl ConsensusTiming {
    /// Mainnet since the Wake upgrade (`DefaultWakeUpgradeConfig`): 2.5 s slots.
    pub fn wake() -> Self {
        ConsensusTiming {
            block_interval: Duration::from_millis(2500),
            tolerated_overtime: Duration::from_secs(2),
            accept_block_ttl: Duration::from_millis(800),
            accept_proposal_endorsement_ttl: Duration::from_millis(800),
            accept_lock_endorsement_ttl: Duration::from_millis(450),
            commit_ttl: Duration::from_millis(450),
            unmatched_event_ttl: Duration::from_millis(1500),
            unmatched_event_interval: Duration::from_millis(100),
            start_delay: Duration::from_secs(5),
            mint_time: Duration::from_millis(50),
        }
    }

    /// Mainnet before the Wake upgrade (`DefaultDardanellesUpgradeConfig`): 5 s slots.
    pub fn dardanelles() -> Self {
        ConsensusTiming {
            block_interval: Duration::from_secs(5),
            tolerated_overtime: Duration::from_secs(2),
            accept_block_ttl: Duration::from_secs(2),
            accept_proposal_endorsement_ttl: Duration::from_secs(1),
            accept_lock_endorsement_ttl: Duration::from_secs(1),
            commit_ttl: Duration::from_secs(1),
            unmatched_event_ttl: Duration::from_secs(2),
            unmatched_event_interval: Duration::from_millis(100),
            start_delay: Duration::from_secs(5),
            mint_time: Duration::from_millis(50),
        }
    }

    /// The same phases scaled to another block interval, for tests that need short slots
    /// (the phases keep their shares of the slot; the tolerated overtime its share too).
    pub fn scaled_to(&self, block_interval: Duration) -> Self {
        let factor = block_interval.as_secs_f64() / self.block_interval.as_secs_f64();
        let scale = |d: Duration| d.mul_f64(factor);
        ConsensusTiming {
            block_interval,
            tolerated_overtime: scale(self.tolerated_overtime),
            accept_block_ttl: scale(self.accept_block_ttl),
            accept_proposal_endorsement_ttl: scale(self.accept_proposal_endorsement_ttl),
            accept_lock_endorsement_ttl: scale(self.accept_lock_endorsement_ttl),
            commit_ttl: scale(self.commit_ttl),
            unmatched_event_ttl: scale(self.unmatched_event_ttl),
            unmatched_event_interval: self.unmatched_event_interval,
            start_delay: self.start_delay,
            mint_time: self.mint_time,
        }
    }
}

/// A round: a height, its round number, and when its slot starts.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Round {
    pub height: u64,
    pub round: u32,
    pub start: Duration,
}

/// The latest block a node knows: its height and its slot's start (the grid-aligned block
/// time). Height 0 is genesis, at the chain's genesis time.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Tip {
    pub height: u64,
    pub time: Duration,
}

/// The chain: its timing, the proposer schedule, and the deterministic network that commits
/// its blocks. Times are on the caller's clock, the same for every replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    pub timing: ConsensusTiming,
    /// When the genesis block was made; slot `k` starts at `genesis + k * block_interval`.
    pub genesis: Duration,
    /// Proposers in the rotation: our delegate proposes one slot in this many (24 on
    /// mainnet; 1 makes it the proposer of every slot, the worst case).
    pub delegates: u64,
    /// The block of a slot is committed this long after the slot starts.
    pub commit_after: Duration,
    /// When the other delegates' messages for a slot's round arrive, after its start: the
    /// proposal, a majority of proposal endorsements, of lock endorsements, and of pre-commit
    /// endorsements (the last one commits the block, at `commit_after`).
    pub block_after: Duration,
    pub proposal_endorsements_after: Duration,
    pub lock_endorsements_after: Duration,
    /// Every `failed_every`-th slot commits nothing (its round times out and the next slot is
    /// the next round of the same height); `None`: every slot commits.
    pub failed_every: Option<u64>,
}

impl Chain {
    /// A chain with `timing`, genesis at `genesis`, our delegate proposing one slot in
    /// `delegates`, blocks committed a fifth of a slot after it starts, no failed slots.
    pub fn new(timing: ConsensusTiming, genesis: Duration, delegates: u64) -> Self {
        let slot = timing.block_interval;
        Chain {
            genesis,
            delegates: delegates.max(1),
            block_after: slot / 50,
            proposal_endorsements_after: slot * 2 / 25,
            lock_endorsements_after: slot * 3 / 25,
            commit_after: slot / 5,
            failed_every: None,
            timing,
        }
    }

    pub fn interval(&self) -> Duration {
        self.timing.block_interval
    }

    /// Index of the slot `t` falls in (`0` before the first slot after genesis).
    pub fn slot_index(&self, t: Duration) -> u64 {
        let since = t.saturating_sub(self.genesis).as_nanos();
        (since / self.interval().as_nanos().max(1)) as u64
    }

    /// When slot `k` starts.
    pub fn slot_start(&self, k: u64) -> Duration {
        self.genesis + self.interval() * u32::try_from(k).unwrap_or(u32::MAX)
    }

    fn slot_failed(&self, k: u64) -> bool {
        self.failed_every
            .is_some_and(|n| n > 1 && k > 0 && k % n == n - 1)
    }

    /// Failed slots among `1..=k`.
    fn failed_up_to(&self, k: u64) -> u64 {
        match self.failed_every {
            Some(n) if n > 1 => (k + 1) / n,
            _ => 0,
        }
    }

    /// The height of the block slot `k` commits (if it commits one).
    fn height_of_slot(&self, k: u64) -> u64 {
        k - self.failed_up_to(k)
    }

    /// The height and round the network runs in slot `k`, and whether the slot commits a block.
    pub fn round_of_slot(&self, k: u64) -> (Round, bool) {
        // The round number counts the failed slots right before this one.
        let mut failed_before = 0u32;
        let mut j = k.saturating_sub(1);
        while j >= 1 && self.slot_failed(j) {
            failed_before += 1;
            j -= 1;
        }
        let round = Round {
            height: self.height_of_slot(k.saturating_sub(1)) + 1,
            round: failed_before,
            start: self.slot_start(k),
        };
        (round, !self.slot_failed(k))
    }

    /// The latest block committed by `t` (genesis before the first commit).
    pub fn tip_at(&self, t: Duration) -> Tip {
        let Some(t) = t.checked_sub(self.commit_after) else {
            return self.genesis_tip();
        };
        let mut k = self.slot_index(t);
        while k > 0 && self.slot_failed(k) {
            k -= 1;
        }
        if k == 0 {
            return self.genesis_tip();
        }
        Tip {
            height: self.height_of_slot(k),
            time: self.slot_start(k),
        }
    }

    fn genesis_tip(&self) -> Tip {
        Tip {
            height: 0,
            time: self.genesis,
        }
    }

    /// `roundInfo` with the tolerated overtime (`UpdateRound` at prepare time): the round a node
    /// whose latest block is `tip` uses for the next height when it prepares at `now`. `None`
    /// when `now` is not after the block (iotex-core's `errInvalidCurrentTime`).
    pub fn round_at(&self, tip: Tip, now: Duration) -> Option<Round> {
        let interval = self.interval();
        let last = tip.time;
        if now <= last {
            return None;
        }
        let since = now - last;
        let mut round = 0u64;
        if since > interval {
            round = (since.as_nanos() / interval.as_nanos()) as u64;
            let into_slot = Duration::from_nanos((since.as_nanos() % interval.as_nanos()) as u64);
            let tolerated = self.timing.tolerated_overtime;
            if tolerated.is_zero() || into_slot < tolerated {
                round -= 1;
            }
        }
        let start = last + interval * u32::try_from(round + 1).unwrap_or(u32::MAX);
        Some(Round {
            height: tip.height + 1,
            round: u32::try_from(round).unwrap_or(u32::MAX),
            start,
        })
    }

    /// Whether our delegate proposes in `round` (time-based rotation: the `(height + round) %
    /// delegates`-th proposer; ours is the first).
    pub fn we_propose(&self, round: &Round) -> bool {
        (round.height + u64::from(round.round)).is_multiple_of(self.delegates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn chain() -> Chain {
        Chain::new(ConsensusTiming::wake(), Duration::ZERO, 1)
    }

    #[test]
    fn a_node_within_the_tolerated_overtime_uses_the_slot_it_is_in() {
        let c = chain();
        // Block of slot 3 (height 3) at 7.5 s; slot 4 starts at 10 s, commits at 10.5 s.
        let tip = c.tip_at(ms(10_100));
        assert_eq!(
            tip,
            Tip {
                height: 3,
                time: ms(7_500)
            }
        );
        let r = c.round_at(tip, ms(10_100)).unwrap();
        assert_eq!((r.height, r.round, r.start), (4, 0, ms(10_000)));
        // 2 s into the slot or later: the next slot, round 1 of the same height.
        let r = c.round_at(tip, ms(12_000)).unwrap();
        assert_eq!((r.height, r.round, r.start), (4, 1, ms(12_500)));
        // Right after a block: round 0 of the next height, in the next slot.
        let tip = c.tip_at(ms(10_600));
        assert_eq!(tip.height, 4);
        let r = c.round_at(tip, ms(10_600)).unwrap();
        assert_eq!((r.height, r.round, r.start), (5, 0, ms(12_500)));
    }

    #[test]
    fn failed_slots_make_later_rounds_of_the_same_height() {
        let mut c = chain();
        c.failed_every = Some(4);
        // Slots 3, 7, 11 fail. Slot 3 runs height 3 round 0 and commits nothing; slot 4 runs
        // height 3 round 1.
        assert_eq!(c.round_of_slot(3).0.height, 3);
        assert!(!c.round_of_slot(3).1);
        let (r, commits) = c.round_of_slot(4);
        assert_eq!((r.height, r.round, commits), (3, 1, true));
        assert_eq!(c.round_of_slot(5).0.height, 4);
        // A node that prepares in slot 4 within the tolerance picks the network's round.
        let tip = c.tip_at(ms(10_100));
        assert_eq!(
            tip,
            Tip {
                height: 2,
                time: ms(5_000)
            }
        );
        let r = c.round_at(tip, ms(10_100)).unwrap();
        assert_eq!((r.height, r.round, r.start), (3, 1, ms(10_000)));
    }

    #[test]
    fn one_delegate_in_n_proposes() {
        let mut c = chain();
        c.delegates = 24;
        let ours = (1..=48)
            .filter(|&k| c.we_propose(&c.round_of_slot(k).0))
            .count();
        assert_eq!(ours, 2);
    }
}

//! The consensus FSM (`consensus/consensusfsm/fsm.go`) and the network's side of it: one queue
//! of events handled one at a time, `prepare()` step by step with the context's lock, the
//! round's timers, the other delegates' messages, and blocks arriving by sync.

use super::lock::Holder;
use super::{MaxByHeight, NodeModel, SignKind, Ticket};
use crate::chain::{Round, Tip};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// The FSM's states (`S_PREPARE` ... `S_ACCEPT_PRECOMMIT_ENDORSEMENT`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum FsmState {
    /// Between rounds (`InitState`): a read of a standby node here says `false`.
    #[default]
    Prepare,
    AcceptBlockProposal,
    AcceptProposalEndorsement,
    AcceptLockEndorsement,
    AcceptPreCommitEndorsement,
}

/// An event type. `majority`: the message completes a majority of the other delegates'
/// endorsements (the network's); our own endorsement alone never does.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Prepare,
    ReceiveBlock,
    FailedToReceiveBlock,
    ReceiveProposalEndorsement { majority: bool },
    StopReceivingProposalEndorsement,
    ReceiveLockEndorsement { majority: bool },
    StopReceivingLockEndorsement,
    ReceivePreCommitEndorsement { majority: bool },
    StopReceivingPreCommitEndorsement,
    Calibrate { height: u64 },
}

/// A consensus event: its type, the height and round it was made for, and when it was made
/// (an unmatched event is dropped once `unmatched_event_ttl` old).
#[derive(Clone, Debug)]
pub(super) struct Event {
    kind: Kind,
    height: u64,
    round: u32,
    created: Duration,
}

impl Event {
    /// An event for `round` (`NewConsensusEvent`), made at `now`.
    pub(super) fn new(kind: Kind, round: Round, now: Duration) -> Self {
        Event {
            kind,
            height: round.height,
            round: round.round,
            created: now,
        }
    }
}

/// Where a `prepare()` in progress stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Step {
    /// `ctx.Prepare()`: the write lock, then the round.
    UpdateRound,
    /// `ctx.Proposal()`: the read lock; mint and sign if we are the proposer.
    Propose,
    /// Minting, holding the read lock, until `wake_at`.
    Minting,
    /// `ctx.WaitUntilRoundStart()`: the read lock.
    WaitRoundStart,
    /// Sleeping until the round starts, holding the read lock, until `wake_at`.
    Sleeping,
    /// `ctx.Broadcast(proposal)`: the read lock.
    Broadcast,
    /// `ctx.HasDelegate()`: the read lock; then into the round, or back to prepare.
    CheckDelegate,
}

/// The one handler that takes time: `prepare()`.
#[derive(Clone, Debug)]
pub(super) struct PrepareRun {
    step: Step,
    /// The round we signed a proposal for.
    proposal: Option<Round>,
    overtime: Duration,
    wake_at: Option<Duration>,
}

/// The network's majorities seen in the current round (the endorsement manager's counts).
#[derive(Clone, Debug, Default)]
struct Votes {
    round: (u64, u32),
    proposal: bool,
    lock: bool,
    commit: bool,
}

/// The FSM goroutine, its queue and timers, and the p2p goroutine's deliveries.
#[derive(Clone, Debug, Default)]
pub(super) struct Fsm {
    pub(super) state: FsmState,
    /// The event channel.
    pub(super) queue: VecDeque<Event>,
    /// Events produced with a delay (`delayProduce`), by due time and order of production.
    timers: Vec<(Duration, u64, Event)>,
    seq: u64,
    /// A `prepare()` in progress: the FSM's lock is held.
    pub(super) handler: Option<PrepareRun>,
    /// Reads waiting for the FSM's lock (`CurrentState()`).
    pub(super) readers: VecDeque<Ticket>,
    votes: Votes,
    /// Messages the p2p goroutine holds while it waits for the read lock (`Active()`).
    deliveries: BTreeMap<u64, Event>,
    next_delivery: u64,
}

impl Fsm {
    /// `produceOne` with no delay: into the channel.
    pub(super) fn produce(&mut self, event: Event) {
        self.queue.push_back(event);
    }

    /// `produceOne` with a delay: a timer puts it into the channel at `at`.
    pub(super) fn produce_at(&mut self, at: Duration, event: Event) {
        self.seq += 1;
        self.timers.push((at, self.seq, event));
    }

    pub(super) fn next_due(&self) -> Option<Duration> {
        let timer = self.timers.iter().map(|(at, _, _)| *at).min();
        let wake = self.handler.as_ref().and_then(|h| h.wake_at);
        timer.into_iter().chain(wake).min()
    }
}

/// Something the network does at a given time.
#[derive(Clone, Debug)]
enum Happening {
    /// Another delegate's message for a round arrives (`HandleConsensusMsg`).
    Message(Kind, Round),
    /// The block of a slot arrives by sync.
    Block(Tip),
}

impl NodeModel {
    // ---- handling events -----------------------------------------------------------------

    /// `ConsensusFSM.handle`: drop stale events, retry future and unmatched ones, else run the
    /// transition.
    pub(super) fn handle_event(&mut self, event: Event) {
        if self.is_stale(&event) {
            return;
        }
        let interval = self.config.chain.timing.unmatched_event_interval;
        if (event.height, event.round) > (self.round.height, self.round.round) {
            self.fsm.produce_at(self.now + interval, event);
            return;
        }
        if !self.transition(&event) {
            let ttl = self.config.chain.timing.unmatched_event_ttl;
            if self.now.saturating_sub(event.created) <= ttl {
                self.fsm.produce_at(self.now + interval, event);
            }
        }
    }

    /// `roundCtx.IsStale`: an older height, or an older round of this height unless it is a
    /// pre-commit endorsement.
    fn is_stale(&self, event: &Event) -> bool {
        if event.height != self.round.height {
            return event.height < self.round.height;
        }
        event.round < self.round.round
            && !matches!(event.kind, Kind::ReceivePreCommitEndorsement { .. })
    }

    /// Runs the transition for the current state, if there is one.
    fn transition(&mut self, event: &Event) -> bool {
        use FsmState as S;
        use Kind as K;
        match (self.fsm.state, event.kind) {
            (S::Prepare, K::Prepare) => {
                self.fsm.handler = Some(PrepareRun {
                    step: Step::UpdateRound,
                    proposal: None,
                    overtime: Duration::ZERO,
                    wake_at: None,
                });
                self.resume_handler();
            }
            (S::AcceptBlockProposal, K::ReceiveBlock | K::FailedToReceiveBlock) => {
                // `processBlock`: endorse the proposal (or nothing, on the timeout).
                self.endorse(
                    SignKind::ProposalEndorsement,
                    K::ReceiveProposalEndorsement { majority: false },
                );
                self.set_state(S::AcceptProposalEndorsement);
            }
            // A pre-commit endorsement counts as a proposal endorsement here.
            (
                S::AcceptProposalEndorsement,
                K::ReceiveProposalEndorsement { majority }
                | K::ReceivePreCommitEndorsement { majority },
            ) => {
                self.count_vote(event.kind, majority);
                if self.fsm.votes.proposal || self.fsm.votes.commit {
                    self.endorse(
                        SignKind::LockEndorsement,
                        K::ReceiveLockEndorsement { majority: false },
                    );
                    self.set_state(S::AcceptLockEndorsement);
                }
            }
            (S::AcceptProposalEndorsement, K::StopReceivingProposalEndorsement) => {
                self.set_state(S::AcceptLockEndorsement);
            }
            (S::AcceptLockEndorsement, K::ReceiveProposalEndorsement { majority }) => {
                self.count_vote(event.kind, majority);
                if self.fsm.votes.proposal || self.fsm.votes.commit {
                    self.endorse(
                        SignKind::LockEndorsement,
                        K::ReceiveLockEndorsement { majority: false },
                    );
                }
            }
            (
                S::AcceptLockEndorsement,
                K::ReceiveLockEndorsement { majority }
                | K::ReceivePreCommitEndorsement { majority },
            ) => {
                self.count_vote(event.kind, majority);
                if self.fsm.votes.lock || self.fsm.votes.commit {
                    self.endorse(
                        SignKind::CommitEndorsement,
                        K::ReceivePreCommitEndorsement { majority: false },
                    );
                    self.set_state(S::AcceptPreCommitEndorsement);
                }
            }
            (S::AcceptLockEndorsement, K::StopReceivingLockEndorsement) => self.back_to_prepare(),
            (S::AcceptPreCommitEndorsement, K::ReceivePreCommitEndorsement { majority }) => {
                self.count_vote(event.kind, majority);
                if self.fsm.votes.commit {
                    // `Commit`: the block is ours to build on.
                    self.tip = Tip {
                        height: self.round.height,
                        time: self.round.start,
                    }
                    .max_by_height(self.tip);
                    self.back_to_prepare();
                }
            }
            (S::AcceptPreCommitEndorsement, K::StopReceivingPreCommitEndorsement) => {
                self.back_to_prepare()
            }
            (state, K::Calibrate { height }) if state != S::Prepare => {
                // `calibrate`: an older block changes nothing (`ErrOldCalibrateEvt`).
                if self.round.height <= height {
                    self.back_to_prepare();
                }
            }
            _ => return false,
        }
        true
    }

    fn count_vote(&mut self, kind: Kind, majority: bool) {
        let round = (self.round.height, self.round.round);
        if self.fsm.votes.round != round {
            self.fsm.votes = Votes {
                round,
                ..Votes::default()
            };
        }
        if !majority {
            return;
        }
        match kind {
            Kind::ReceiveProposalEndorsement { .. } => self.fsm.votes.proposal = true,
            Kind::ReceiveLockEndorsement { .. } => self.fsm.votes.lock = true,
            Kind::ReceivePreCommitEndorsement { .. } => self.fsm.votes.commit = true,
            _ => {}
        }
    }

    /// Signs an endorsement of the current round, broadcasts it (no active check), and
    /// queues it to ourselves as `own`.
    fn endorse(&mut self, kind: SignKind, own: Kind) {
        let round = self.round;
        self.sign(round, kind);
        self.fsm.produce(Event::new(own, round, self.now));
    }

    fn set_state(&mut self, state: FsmState) {
        self.fsm.state = state;
        self.record_mode();
    }

    /// `BackToPrepare(0)`: a prepare event only if active; the state is prepare either way.
    fn back_to_prepare(&mut self) {
        if self.active {
            self.fsm
                .produce(Event::new(Kind::Prepare, self.round, self.now));
        }
        self.set_state(FsmState::Prepare);
    }

    // ---- prepare() -----------------------------------------------------------------------

    /// Goes on with `prepare()`: each step takes the context's lock as iotex-core does, and
    /// the handler stops where it must wait (a lock, the mint, the sleep until the round).
    pub(super) fn resume_handler(&mut self) {
        let timing = self.config.chain.timing.clone();
        while let Some(run) = self.fsm.handler.clone() {
            match run.step {
                Step::UpdateRound => {
                    if !self.granted_write(Holder::Fsm) {
                        return;
                    }
                    let updated = self.update_round();
                    self.unlock(Holder::Fsm);
                    if !updated {
                        // "Error during prepare": back to prepare.
                        self.fsm.handler = None;
                        self.back_to_prepare();
                        return;
                    }
                    self.set_step(Step::Propose);
                }
                Step::Propose => {
                    if !self.granted_read(Holder::Fsm) {
                        return;
                    }
                    let round = self.round;
                    let proposes = !self.signing_keys(&round, SignKind::Proposal).is_empty();
                    let handler = self.fsm.handler.as_mut().expect("handler");
                    handler.proposal = proposes.then_some(round);
                    if proposes && !timing.mint_time.is_zero() {
                        handler.wake_at = Some(self.now + timing.mint_time);
                        handler.step = Step::Minting;
                        return;
                    }
                    self.read_unlock(Holder::Fsm);
                    self.set_step(Step::WaitRoundStart);
                }
                Step::Minting | Step::Sleeping => {
                    if run.wake_at.is_some() {
                        return;
                    }
                    self.read_unlock(Holder::Fsm);
                    let next = if run.step == Step::Minting {
                        Step::WaitRoundStart
                    } else {
                        Step::Broadcast
                    };
                    self.set_step(next);
                }
                Step::WaitRoundStart => {
                    if !self.granted_read(Holder::Fsm) {
                        return;
                    }
                    let start = self.round.start;
                    let (sleep, overtime) = if self.now < start {
                        (start - self.now, Duration::ZERO)
                    } else {
                        let overtime = self.now - start;
                        // A standby node waits out the tolerated overtime.
                        if !self.has_delegate() && timing.tolerated_overtime > overtime {
                            (timing.tolerated_overtime - overtime, Duration::ZERO)
                        } else {
                            (Duration::ZERO, overtime)
                        }
                    };
                    let handler = self.fsm.handler.as_mut().expect("handler");
                    handler.overtime = overtime;
                    if !sleep.is_zero() {
                        handler.wake_at = Some(self.now + sleep);
                        handler.step = Step::Sleeping;
                        return;
                    }
                    self.read_unlock(Holder::Fsm);
                    self.set_step(Step::Broadcast);
                }
                Step::Broadcast => {
                    if let Some(proposal) = run.proposal {
                        if !self.granted_read(Holder::Fsm) {
                            return;
                        }
                        self.sign(proposal, SignKind::Proposal);
                        self.read_unlock(Holder::Fsm);
                    }
                    self.set_step(Step::CheckDelegate);
                }
                Step::CheckDelegate => {
                    if !self.granted_read(Holder::Fsm) {
                        return;
                    }
                    let delegate = self.has_delegate();
                    self.read_unlock(Holder::Fsm);
                    self.fsm.handler = None;
                    if delegate {
                        self.enter_round(run.proposal, run.overtime);
                    } else {
                        self.back_to_prepare();
                    }
                    return;
                }
            }
        }
    }

    fn set_step(&mut self, step: Step) {
        if let Some(handler) = self.fsm.handler.as_mut() {
            handler.step = step;
        }
    }

    /// `ctx.Prepare()`: the next height's round at `now` (`UpdateRound`); false on iotex-core's
    /// errors (a lower height, a clock behind the last block).
    fn update_round(&mut self) -> bool {
        let height = self.tip.height + 1;
        if height < self.round.height {
            return false;
        }
        if height == self.round.height && self.now < self.round.start {
            return true;
        }
        match self.config.chain.round_at(self.tip, self.now) {
            Some(round) => {
                self.round = round;
                true
            }
            None => false,
        }
    }

    /// The end of `prepare()` for a delegate: our own proposal to ourselves, and the round's
    /// timers, counted from now (`ttl = acceptBlockTTL - overtime`).
    fn enter_round(&mut self, proposal: Option<Round>, overtime: Duration) {
        let timing = self.config.chain.timing.clone();
        let round = self.round;
        if proposal.is_some() {
            self.fsm
                .produce(Event::new(Kind::ReceiveBlock, round, self.now));
        }
        let phases = [
            (timing.accept_block_ttl, Kind::FailedToReceiveBlock),
            (
                timing.accept_proposal_endorsement_ttl,
                Kind::StopReceivingProposalEndorsement,
            ),
            (
                timing.accept_lock_endorsement_ttl,
                Kind::StopReceivingLockEndorsement,
            ),
            (timing.commit_ttl, Kind::StopReceivingPreCommitEndorsement),
        ];
        // The ttl may start below zero (a round joined late): such timers fire at once.
        let mut ttl_end = self.now + phases[0].0;
        for (i, (phase, kind)) in phases.into_iter().enumerate() {
            if i > 0 {
                ttl_end += phase;
            }
            let at = ttl_end
                .checked_sub(overtime)
                .unwrap_or(self.now)
                .max(self.now);
            let event = Event::new(kind, round, self.now);
            if at <= self.now {
                self.fsm.produce(event);
            } else {
                self.fsm.produce_at(at, event);
            }
        }
        self.set_state(FsmState::AcceptBlockProposal);
    }

    // ---- time ----------------------------------------------------------------------------

    /// Timers and handler wake-ups due at `at`.
    pub(super) fn fsm_due(&mut self, at: Duration) {
        let mut due: Vec<(Duration, u64, Event)> = Vec::new();
        self.fsm.timers.retain(|timer| {
            if timer.0 <= at {
                due.push(timer.clone());
                false
            } else {
                true
            }
        });
        due.sort_by_key(|(t, seq, _)| (*t, *seq));
        for (_, _, event) in due {
            self.fsm.produce(event);
        }
        let woken = self
            .fsm
            .handler
            .as_mut()
            .filter(|h| h.wake_at.is_some_and(|w| w <= at))
            .map(|h| h.wake_at = None)
            .is_some();
        if woken {
            self.runnable.push_back(Holder::Fsm);
        }
    }

    // ---- the network ---------------------------------------------------------------------

    /// The network's happenings of slot `k`: the other delegates' messages for its round
    /// (none in a slot that fails; no proposal from them in our own slot), and its block,
    /// arriving here `sync_lag` after it was committed.
    fn happenings(&self, k: u64) -> Vec<(Duration, Happening)> {
        let chain = &self.config.chain;
        if k == 0 {
            return Vec::new();
        }
        let (round, commits) = chain.round_of_slot(k);
        if !commits {
            return Vec::new();
        }
        let start = round.start;
        let mut list = Vec::with_capacity(5);
        if !chain.we_propose(&round) {
            list.push((
                start + chain.block_after,
                Happening::Message(Kind::ReceiveBlock, round),
            ));
        }
        list.push((
            start + chain.proposal_endorsements_after,
            Happening::Message(Kind::ReceiveProposalEndorsement { majority: true }, round),
        ));
        list.push((
            start + chain.lock_endorsements_after,
            Happening::Message(Kind::ReceiveLockEndorsement { majority: true }, round),
        ));
        list.push((
            start + chain.commit_after,
            Happening::Message(Kind::ReceivePreCommitEndorsement { majority: true }, round),
        ));
        list.push((
            start + chain.commit_after + self.config.sync_lag,
            Happening::Block(Tip {
                height: round.height,
                time: start,
            }),
        ));
        list
    }

    /// The slots whose happenings may still lie after `network_done`.
    fn open_slots(&self) -> std::ops::RangeInclusive<u64> {
        let chain = &self.config.chain;
        let reach = chain.commit_after + self.config.sync_lag;
        let first = chain.slot_index(self.network_done.saturating_sub(reach));
        first..=chain.slot_index(self.network_done) + 1
    }

    pub(super) fn next_network_at(&self) -> Option<Duration> {
        self.open_slots()
            .flat_map(|k| self.happenings(k))
            .map(|(at, _)| at)
            .filter(|&at| at > self.network_done)
            .min()
    }

    /// Applies the network's happenings after `network_done` up to `at`, in time order.
    pub(super) fn network_until(&mut self, at: Duration) {
        let mut due: Vec<(Duration, Happening)> = self
            .open_slots()
            .flat_map(|k| self.happenings(k))
            .filter(|(t, _)| *t > self.network_done && *t <= at)
            .collect();
        due.sort_by_key(|(t, _)| *t);
        for (_, happening) in due {
            match happening {
                Happening::Message(kind, round) => {
                    self.deliver(Event::new(kind, round, self.now));
                }
                Happening::Block(tip) => {
                    // Readiness is evaluated per block.
                    self.ready_reported = self.ready_wanted;
                    if tip.height > self.tip.height {
                        self.tip = tip;
                        // A block that did not come through our own consensus: `Calibrate`.
                        let event = Event::new(
                            Kind::Calibrate { height: tip.height },
                            self.round,
                            self.now,
                        );
                        self.deliver(event);
                    }
                }
            }
        }
    }

    /// The p2p goroutine hands a message or a synced block's calibration to the FSM; it needs
    /// the read lock first (`Active()`, `Height()`, `NewConsensusEvent`).
    fn deliver(&mut self, event: Event) {
        let id = self.fsm.next_delivery;
        self.fsm.next_delivery += 1;
        self.fsm.deliveries.insert(id, event);
        self.runnable.push_back(Holder::Delivery(id));
    }

    pub(super) fn resume_delivery(&mut self, id: u64) {
        let holder = Holder::Delivery(id);
        if !self.granted_read(holder) {
            return;
        }
        self.read_unlock(holder);
        let Some(mut event) = self.fsm.deliveries.remove(&id) else {
            return;
        };
        if let Kind::Calibrate { .. } = event.kind {
            // `NewConsensusEvent`: made for the round the context is in now.
            event.height = self.round.height;
            event.round = self.round.round;
            self.fsm.produce(event);
            return;
        }
        // `HandleConsensusMsg`: nothing while standby, nothing for a height outside
        // [consensus height, consensus height + 1].
        let height = self.round.height;
        if self.active && height != 0 && event.height >= height && event.height <= height + 1 {
            self.fsm.produce(event);
        }
    }
}

//! A deterministic driver for unit tests: inputs are handed in at explicit instants, outputs are
//! drained until [`Output::Timeout`], and the core is woken exactly at the timeouts it asks for.
//! Simple automatic answers (probes, keep-alives, a fake node) keep the background going so a
//! test only scripts what it is about.

use crate::*;
use std::time::Duration;

/// Our lease and candidate key in unit tests.
pub(super) const LEASE: LeaseId = 7;
pub(super) const OUR_REV: i64 = 100;
pub(super) const OURS: CandidateId = CandidateId {
    lease: LEASE,
    create_revision: OUR_REV,
};
pub(super) const TTL: Duration = Duration::from_secs(10);

pub(super) fn ms(v: u64) -> Instant {
    Instant::from_millis(v)
}

pub(super) fn dur(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Another replica's candidate key.
pub(super) fn other(n: i64) -> CandidateId {
    CandidateId {
        lease: 1000 + n,
        create_revision: n,
    }
}

pub(super) fn candidate(id: CandidateId) -> Candidate {
    let value = if id == OURS {
        "us".to_string()
    } else {
        format!("o{}", id.create_revision)
    };
    Candidate { id, value }
}

/// An observation with these candidates in this order.
pub(super) fn view(ids: &[CandidateId]) -> Observation {
    Observation {
        revision: 1000,
        candidates: ids.iter().copied().map(candidate).collect(),
        handover_record: None,
        handover_request: None,
        excluded: None,
    }
}

pub(super) fn record(from: CandidateId) -> HandoverRecord {
    HandoverRecord {
        from,
        value: candidate(from).value,
        key_withdrawn: false,
    }
}

/// How keep-alives are answered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum KeepAlives {
    /// The test answers them.
    Manual,
    /// Acked this long after they are sent, with the default TTL.
    Ack(Duration),
    /// Failed (the driver's timeout) this long after they are sent.
    Fail(Duration),
}

/// A node that answers every call at once: it drains for `drain` after `activate=false`, and,
/// when `stuck`, ignores `activate=false` altogether.
#[derive(Clone, Debug)]
pub(super) struct FakeNode {
    pub active: bool,
    pub drain: Duration,
    pub drained_at: Instant,
    pub stuck: bool,
    /// The process is gone, or its admin endpoint broke: every call fails. (`active` stays
    /// as it is: a half-broken node may still sign.)
    pub dead: bool,
    /// `activate=true` fails and changes nothing; reads and `activate=false` work.
    pub refuses_activation: bool,
    /// Key custody: the node holds the operator's key (else only its placeholder).
    pub operator_key: bool,
    /// `/producer-keys` fails every call (an iotex-core without it, a wrong token).
    pub keys_broken: bool,
}

impl FakeNode {
    pub(super) fn standby() -> Self {
        FakeNode {
            active: false,
            drain: Duration::ZERO,
            drained_at: Instant::ZERO,
            stuck: false,
            dead: false,
            refuses_activation: false,
            operator_key: false,
            keys_broken: false,
        }
    }

    pub(super) fn reads_active(&self, now: Instant) -> bool {
        self.active || now < self.drained_at
    }
}

/// Automatic answers; `None`/`Manual` leaves the command for the test.
pub(super) struct Auto {
    pub probe: Option<bool>,
    pub keepalive: KeepAlives,
    pub node: Option<FakeNode>,
    /// Answer the fence command after this long: with success (the fence stops the node: it
    /// reads standby from then on), or, with `fence_fails`, with failure (the node is untouched).
    pub fence: Option<Duration>,
    pub fence_fails: bool,
    /// Answer `Observe` with an empty election at once (tests of a restart's first read turn
    /// this off and hand in the view they are about).
    pub first_view: bool,
}

pub(super) struct Harness {
    pub core: Elector,
    pub timing: Timing,
    /// Key custody is on: the node's keys are installed and withdrawn too.
    pub key_custody: bool,
    pub now: Instant,
    /// The core's last requested wake-up.
    pub wake: Instant,
    /// Every command and event, with the instant it was emitted.
    pub log: Vec<(Instant, Output)>,
    /// `log[taken..]` is what [`Harness::take`] returns next.
    taken: usize,
    queue: Vec<(Instant, u64, Input)>,
    seq: u64,
    /// Inputs handed in at one instant: a guard against a core that never settles.
    spin: (Instant, u32),
    pub auto: Auto,
}

impl Harness {
    /// A core created at t=0 with default timing; nothing is handed in yet.
    pub(super) fn new() -> Self {
        Self::with(Settings::new("us", Timing::default()))
    }

    pub(super) fn with(settings: Settings) -> Self {
        let timing = settings.timing.clone();
        let key_custody = settings.key_custody;
        Harness {
            core: Elector::new(settings, Instant::ZERO).expect("valid settings"),
            timing,
            key_custody,
            now: Instant::ZERO,
            wake: Instant::ZERO,
            log: Vec::new(),
            taken: 0,
            queue: Vec::new(),
            seq: 0,
            spin: (Instant::ZERO, 0),
            auto: Auto {
                probe: None,
                keepalive: KeepAlives::Manual,
                node: None,
                fence: None,
                fence_fails: false,
                first_view: true,
            },
        }
    }

    /// Hands in `input` now, then whatever the automatic answers produce at this instant.
    pub(super) fn input(&mut self, input: Input) -> Vec<Output> {
        self.deliver(input);
        self.run_to(self.now);
        self.take()
    }

    /// Moves time to `t`: delivers queued answers and wakes the core at every timeout it asks
    /// for up to `t` (answers first when they fall on the same instant). Returns the outputs.
    pub(super) fn run_until(&mut self, t: Instant) -> Vec<Output> {
        self.run_to(t);
        self.take()
    }

    fn run_to(&mut self, t: Instant) {
        assert!(t >= self.now, "time runs forwards");
        loop {
            let queued = self.queue.iter().map(|q| (q.0, q.1)).min();
            let wake = (self.wake > self.now).then_some(self.wake);
            match (queued, wake) {
                (Some((at, seq)), wake) if at <= t && wake.is_none_or(|w| at <= w) => {
                    let i = self.queue.iter().position(|q| q.1 == seq).unwrap();
                    let (_, _, input) = self.queue.remove(i);
                    self.now = at;
                    self.deliver(input);
                }
                (_, Some(wake)) if wake <= t => {
                    self.now = wake;
                    self.deliver(Input::Timeout);
                }
                _ => break,
            }
        }
        self.now = t;
    }

    pub(super) fn run_for(&mut self, d: Duration) -> Vec<Output> {
        self.run_until(self.now + d)
    }

    /// Outputs emitted since the last call.
    pub(super) fn take(&mut self) -> Vec<Output> {
        let new = self.log[self.taken..]
            .iter()
            .map(|(_, o)| o.clone())
            .collect();
        self.taken = self.log.len();
        new
    }

    /// Schedules `input` for `at` (delivered by [`Harness::run_until`]).
    pub(super) fn schedule(&mut self, at: Instant, input: Input) {
        self.seq += 1;
        self.queue.push((at, self.seq, input));
    }

    fn deliver(&mut self, input: Input) {
        if self.spin.0 == self.now {
            self.spin.1 += 1;
            assert!(self.spin.1 < 10_000, "the core spins at {}", self.now);
        } else {
            self.spin = (self.now, 0);
        }
        self.core.handle_input(self.now, input);
        loop {
            match self.core.poll_output() {
                Output::Timeout(at) => {
                    assert!(at > self.now, "the core asks for a future wake-up");
                    self.wake = at;
                    break;
                }
                output => {
                    if let Output::Command(command) = &output {
                        self.answer_automatically(command);
                    }
                    self.log.push((self.now, output));
                }
            }
        }
    }

    fn answer_automatically(&mut self, command: &Command) {
        let now = self.now;
        match command {
            // The observer's first read: an empty election, as the driver reports it at once.
            // Tests hand in the views they are about.
            Command::Observe if self.auto.first_view => self.schedule(
                now,
                Input::Observed(Observation {
                    revision: 1,
                    ..Observation::default()
                }),
            ),
            Command::ProbeReadiness => {
                if let Some(ready) = self.auto.probe {
                    self.schedule(now, probed(ready));
                }
            }
            Command::KeepAlive { lease } => match self.auto.keepalive {
                KeepAlives::Manual => {}
                KeepAlives::Ack(after) => self.schedule(
                    now + after,
                    Input::KeepAliveAcked {
                        lease: *lease,
                        sent_at: now,
                        ttl: TTL,
                    },
                ),
                KeepAlives::Fail(after) => self.schedule(
                    now + after,
                    Input::KeepAliveFailed {
                        lease: *lease,
                        reason: "timeout".into(),
                    },
                ),
            },
            Command::Node { id, call } => {
                let Some(node) = self.auto.node.as_mut() else {
                    return;
                };
                let key_call = matches!(
                    call,
                    NodeCall::InstallKey | NodeCall::WithdrawKey | NodeCall::ReadKeys
                );
                if node.dead
                    || (node.refuses_activation && *call == NodeCall::SetActive)
                    || (node.keys_broken && key_call)
                {
                    let failed = Input::NodeCallFailed {
                        id: *id,
                        call: *call,
                        reason: "connection refused".into(),
                    };
                    self.schedule(now, failed);
                    return;
                }
                let active = match call {
                    NodeCall::SetActive => {
                        node.active = true;
                        None
                    }
                    NodeCall::SetStandby => {
                        if node.active && !node.stuck {
                            node.active = false;
                            node.drained_at = now + node.drain;
                        }
                        None
                    }
                    NodeCall::ReadMode => Some(node.reads_active(now)),
                    NodeCall::InstallKey => {
                        node.operator_key = true;
                        None
                    }
                    NodeCall::WithdrawKey => {
                        node.operator_key = false;
                        None
                    }
                    NodeCall::ReadKeys => None,
                };
                let keys = key_call.then_some(if node.operator_key {
                    NodeKeys::Operator
                } else {
                    NodeKeys::Placeholder
                });
                let done = Input::NodeCallDone {
                    id: *id,
                    call: *call,
                    active,
                    keys,
                };
                self.schedule(now, done);
            }
            Command::Fence { run, .. } => {
                if let Some(after) = self.auto.fence {
                    let success = !self.auto.fence_fails;
                    if success && let Some(node) = self.auto.node.as_mut() {
                        // A fence that reports success has stopped the node (docs/safety.md):
                        // it no longer signs, and its admin endpoint no longer answers.
                        node.active = false;
                        node.stuck = false;
                        node.drained_at = Instant::ZERO;
                        node.dead = true;
                    }
                    let done = Input::FenceDone {
                        run: *run,
                        success,
                        detail: if success { "fenced" } else { "fence failed" }.into(),
                    };
                    self.schedule(now + after, done);
                }
            }
            _ => {}
        }
    }

    // ----- reading the log --------------------------------------------------------------

    /// Commands emitted at or after `since`, with their instants.
    pub(super) fn commands_since(&self, since: Instant) -> Vec<(Instant, Command)> {
        self.log
            .iter()
            .filter(|(at, _)| *at >= since)
            .filter_map(|(at, o)| match o {
                Output::Command(c) => Some((*at, c.clone())),
                _ => None,
            })
            .collect()
    }

    /// Node calls (not reads) emitted at or after `since`.
    pub(super) fn mode_commands_since(&self, since: Instant) -> Vec<(Instant, NodeCall)> {
        self.commands_since(since)
            .into_iter()
            .filter_map(|(at, c)| match c {
                Command::Node { call, .. } if call != NodeCall::ReadMode => Some((at, call)),
                _ => None,
            })
            .collect()
    }

    /// The last command matching `pred`, with the instant it was emitted.
    pub(super) fn last_command(
        &self,
        pred: impl Fn(&Command) -> bool,
    ) -> Option<(Instant, Command)> {
        self.commands_since(Instant::ZERO)
            .into_iter()
            .rev()
            .find(|(_, c)| pred(c))
    }

    /// The last node call emitted: (id, call, emitted at).
    pub(super) fn last_node_call(&self) -> (CallId, NodeCall, Instant) {
        match self.last_command(|c| matches!(c, Command::Node { .. })) {
            Some((at, Command::Node { id, call })) => (id, call, at),
            _ => panic!("no node call yet"),
        }
    }

    // ----- answering by hand ------------------------------------------------------------

    /// Answers the last node call as done; `active` is the mode read (for reads).
    pub(super) fn node_done(&mut self, active: Option<bool>) -> Vec<Output> {
        let (id, call, _) = self.last_node_call();
        assert_eq!(call == NodeCall::ReadMode, active.is_some(), "{call:?}");
        self.input(Input::NodeCallDone {
            id,
            call,
            active,
            keys: None,
        })
    }

    /// Answers the last node call as failed.
    pub(super) fn node_failed(&mut self) -> Vec<Output> {
        let (id, call, _) = self.last_node_call();
        self.input(Input::NodeCallFailed {
            id,
            call,
            reason: "timeout".into(),
        })
    }

    /// Answers the last `GrantLease` with [`LEASE`], sent when the command was emitted.
    pub(super) fn grant(&mut self) -> Vec<Output> {
        let (sent_at, _) = self
            .last_command(|c| matches!(c, Command::GrantLease { .. }))
            .expect("a grant was asked for");
        self.input(Input::LeaseGranted {
            lease: LEASE,
            ttl: TTL,
            sent_at,
        })
    }

    /// Answers the last `KeepAlive` with an ack carrying its send time.
    pub(super) fn ack_keepalive(&mut self) -> Vec<Output> {
        let (sent_at, _) = self
            .last_command(|c| matches!(c, Command::KeepAlive { .. }))
            .expect("a keep-alive was sent");
        self.input(Input::KeepAliveAcked {
            lease: LEASE,
            sent_at,
            ttl: TTL,
        })
    }

    pub(super) fn created(&mut self) -> Vec<Output> {
        self.input(Input::CandidateCreated {
            lease: LEASE,
            create_revision: OUR_REV,
        })
    }

    pub(super) fn observe(&mut self, observation: Observation) -> Vec<Output> {
        self.input(Input::Observed(observation))
    }

    // ----- common starts ----------------------------------------------------------------

    /// Started at t=0 with a standby, ready node (confirmed by hand), a lease asked for.
    pub(super) fn standby_ready() -> Self {
        Self::standby_ready_with(Settings::new("us", Timing::default()))
    }

    /// [`Harness::standby_ready`] with these settings.
    pub(super) fn standby_ready_with(settings: Settings) -> Self {
        let mut h = Harness::with(settings);
        h.bring_to_grant();
        h
    }

    /// From a fresh core: confirms standby, probes ready, until `GrantLease` is emitted.
    pub(super) fn bring_to_grant(&mut self) {
        let out = self.input(Input::Timeout);
        assert_eq!(
            commands(&out),
            vec![
                Command::Observe,
                Command::Node {
                    id: 1,
                    call: NodeCall::SetStandby
                },
                Command::ProbeReadiness
            ]
        );
        self.node_done(None);
        if self.key_custody {
            // Rule `withdraw_key_when_demoting`: the key goes after activate=false, and a read
            // of /producer-keys confirms it.
            for expected in [NodeCall::WithdrawKey, NodeCall::ReadKeys] {
                let (id, call, _) = self.last_node_call();
                assert_eq!(call, expected);
                self.input(Input::NodeCallDone {
                    id,
                    call,
                    active: None,
                    keys: Some(NodeKeys::Placeholder),
                });
            }
        }
        self.node_done(Some(false));
        let out = self.input(probed(true));
        let ttl = self.timing.lease_ttl;
        assert!(has(&out, &Command::GrantLease { ttl }), "{out:?}");
    }

    /// A candidate behind `ahead` (empty: leader), with automatic answers from here on: probes
    /// ready, keep-alives acked at once, a standby node that answers at once.
    pub(super) fn candidate_behind(ahead: &[CandidateId]) -> Self {
        Self::candidate_behind_with(Settings::new("us", Timing::default()), ahead)
    }

    /// [`Harness::candidate_behind`] with these settings.
    pub(super) fn candidate_behind_with(settings: Settings, ahead: &[CandidateId]) -> Self {
        let mut h = Harness::standby_ready_with(settings);
        h.auto_all();
        h.grant();
        h.created();
        let mut ids = ahead.to_vec();
        ids.push(OURS);
        h.observe(view(&ids));
        h
    }

    /// Probes ready, keep-alives acked at once, a standby node answering at once.
    pub(super) fn auto_all(&mut self) {
        self.auto.probe = Some(true);
        self.auto.keepalive = KeepAlives::Ack(Duration::ZERO);
        self.auto.node = Some(FakeNode::standby());
        self.auto.fence = Some(dur(100));
    }

    /// Leader with the node commanded active (after the full activation delay), with `behind`
    /// candidates after us. Returns the instant `SetActive` was emitted.
    pub(super) fn active_leader(behind: &[CandidateId]) -> (Self, Instant) {
        Self::active_leader_with(Settings::new("us", Timing::default()), behind)
    }

    /// [`Harness::active_leader`] with these settings.
    pub(super) fn active_leader_with(
        settings: Settings,
        behind: &[CandidateId],
    ) -> (Self, Instant) {
        let mut h = Harness::candidate_behind_with(settings, &[]);
        let mut ids = vec![OURS];
        ids.extend_from_slice(behind);
        h.observe(view(&ids));
        let delay = h.timing.activation_delay;
        h.run_for(delay);
        let (at, _) = h
            .last_command(|c| {
                matches!(
                    c,
                    Command::Node {
                        call: NodeCall::SetActive,
                        ..
                    }
                )
            })
            .expect("activated");
        assert_eq!(h.core.role(), Role::Active);
        (h, at)
    }
}

pub(super) fn probed(ready: bool) -> Input {
    Input::Probed {
        ready,
        detail: if ready { "OK" } else { "FAIL" }.into(),
    }
}

/// The commands in `out`, without [`Command::RememberTerm`] (bookkeeping for rule
/// `end_dead_term`, checked by its own tests).
pub(super) fn commands(out: &[Output]) -> Vec<Command> {
    out.iter()
        .filter_map(|o| match o {
            Output::Command(Command::RememberTerm { .. }) => None,
            Output::Command(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn events(out: &[Output]) -> Vec<Event> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn has(out: &[Output], command: &Command) -> bool {
    commands(out).contains(command)
}

/// Node calls of this kind among the outputs.
pub(super) fn node_calls(out: &[Output], kind: NodeCall) -> usize {
    commands(out)
        .iter()
        .filter(|c| matches!(c, Command::Node { call, .. } if *call == kind))
        .count()
}

pub(super) fn is_campaign(c: &Command) -> bool {
    matches!(
        c,
        Command::GrantLease { .. } | Command::CreateCandidate { .. }
    )
}

pub(super) fn is_set_active(c: &Command) -> bool {
    matches!(
        c,
        Command::Node {
            call: NodeCall::SetActive,
            ..
        }
    )
}

pub(super) fn is_resign(c: &Command) -> bool {
    matches!(c, Command::Resign { .. })
}

//! `cargo bench -p elector-core --bench decision`: the cost of the core's decision step, so
//! that regressions in the hot path show.
//!
//! One decision step is `Elector::handle_input(now, input)` followed by draining
//! `Elector::poll_output()` until it returns `Output::Timeout`, which is what the driver does
//! for every input. The core is first brought to a steady state by a tiny driver that answers
//! every command at once (probes ready, keep-alives acked, a node that obeys, a candidate key
//! created, an observation with us first), and then measured on:
//!
//! - `keepalive_ack`, `observation`, `timeout`: one step for that input, fed again and again at
//!   the same instant to an active leader (a fixed point: the step emits no command, which the
//!   setup checks), so every iteration does the same work;
//! - `leader_second`, `standby_second`: one second of core time for an active leader (three
//!   candidates) and for a candidate waiting behind another leader, with every wake-up and
//!   every answer the driver hands in during that second (keep-alive, node check, probe, idle
//!   wake-ups), driver included.
//!
//! `make bench` copies the medians into docs/benchmarks.md.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use elector_core::{
    Candidate, CandidateId, Command, Elector, Input, Instant, NodeCall, Observation, Output, Role,
    Settings, Timing,
};
use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Duration;

const LEASE: i64 = 0x694d_7f2a_11c3_0001;
const OUR_REVISION: i64 = 100;

fn candidate(lease: i64, create_revision: i64, value: &str) -> Candidate {
    Candidate {
        id: CandidateId {
            lease,
            create_revision,
        },
        value: value.to_owned(),
    }
}

/// The election as etcd would show it: us first (`leading`) or second, three candidates.
fn election(leading: bool) -> Observation {
    let us = candidate(LEASE, OUR_REVISION, "replica-a");
    let other = candidate(LEASE + 1, OUR_REVISION - 10, "replica-b");
    let third = candidate(LEASE + 2, OUR_REVISION + 10, "replica-c");
    let candidates = if leading {
        vec![us, other, third]
    } else {
        vec![other, us, third]
    };
    Observation {
        revision: 1_000,
        candidates,
        handover_record: None,
        handover_request: None,
        excluded: None,
    }
}

/// Drains the core's outputs after one input: what the driver does. Returns the number of
/// commands and the next wake-up.
#[inline]
fn drain(core: &mut Elector) -> (usize, Instant) {
    let mut commands = 0;
    loop {
        match core.poll_output() {
            Output::Timeout(at) => return (commands, at),
            Output::Command(command) => {
                black_box(&command);
                commands += 1;
            }
            Output::Event(event) => {
                black_box(&event);
            }
        }
    }
}

/// A driver that answers every command at once, as a healthy etcd and node would.
struct World {
    core: Elector,
    now: Instant,
    wake: Instant,
    answers: VecDeque<Input>,
    node_active: bool,
    leading: bool,
    ttl: Duration,
    /// Send time of the keep-alive not answered yet (see [`World::hold_keepalive`]).
    held_keepalive: Option<Instant>,
    hold_keepalives: bool,
}

impl World {
    fn new(leading: bool) -> World {
        let timing = Timing::default();
        let ttl = timing.lease_ttl;
        let core = Elector::new(Settings::new("replica-a", timing), Instant::ZERO)
            .expect("default timing is valid");
        World {
            core,
            now: Instant::ZERO,
            wake: Instant::ZERO,
            answers: VecDeque::new(),
            node_active: false,
            leading,
            ttl,
            held_keepalive: None,
            hold_keepalives: false,
        }
    }

    /// Hands in one input now, then answers whatever the core asked for.
    fn step(&mut self, input: Input) {
        self.core.handle_input(self.now, input);
        loop {
            match self.core.poll_output() {
                Output::Timeout(at) => {
                    self.wake = at;
                    return;
                }
                Output::Command(command) => self.answer(command),
                Output::Event(_) => {}
            }
        }
    }

    fn answer(&mut self, command: Command) {
        let now = self.now;
        let answer = match command {
            Command::Observe => Input::Observed(election(self.leading)),
            Command::GrantLease { ttl } => Input::LeaseGranted {
                lease: LEASE,
                ttl,
                sent_at: now,
            },
            Command::KeepAlive { lease } => {
                if self.hold_keepalives {
                    self.held_keepalive = Some(now);
                    return;
                }
                Input::KeepAliveAcked {
                    lease,
                    sent_at: now,
                    ttl: self.ttl,
                }
            }
            Command::CreateCandidate { lease } => Input::CandidateCreated {
                lease,
                create_revision: OUR_REVISION,
            },
            Command::Node { id, call } => {
                match call {
                    NodeCall::SetActive => self.node_active = true,
                    NodeCall::SetStandby => self.node_active = false,
                    NodeCall::ReadMode => {}
                    // No key custody in this steady state.
                    NodeCall::InstallKey | NodeCall::WithdrawKey | NodeCall::ReadKeys => {
                        panic!("unexpected key call {call:?}")
                    }
                }
                Input::NodeCallDone {
                    id,
                    call,
                    active: (call == NodeCall::ReadMode).then_some(self.node_active),
                    keys: None,
                }
            }
            Command::ProbeReadiness => Input::Probed {
                ready: true,
                detail: "OK".to_owned(),
            },
            // The shell keeps it in `--state-dir` and answers nothing (rule `end_dead_term`).
            Command::RememberTerm { .. } => return,
            other => panic!("unexpected command in a healthy steady state: {other:?}"),
        };
        self.answers.push_back(answer);
    }

    /// Advances core time to `until`, handing in the answers and the core's timeouts in order.
    fn run_until(&mut self, until: Instant) {
        loop {
            if let Some(input) = self.answers.pop_front() {
                self.step(input);
            } else if self.wake <= until {
                self.now = self.now.max(self.wake);
                self.step(Input::Timeout);
            } else {
                break;
            }
        }
        self.now = until;
    }

    fn run_for(&mut self, period: Duration) {
        self.run_until(self.now + period);
    }

    /// Runs until the core sends a keep-alive and leaves it unanswered; returns its send time.
    fn hold_keepalive(&mut self) -> Instant {
        self.hold_keepalives = true;
        self.held_keepalive = None;
        while self.held_keepalive.is_none() {
            self.run_for(Duration::from_millis(10));
        }
        self.hold_keepalives = false;
        self.held_keepalive.take().expect("a keep-alive was sent")
    }
}

/// An active leader: past the activation delay, node commanded active, three candidates.
fn active_leader() -> World {
    let mut world = World::new(true);
    world.run_for(Timing::default().activation_delay + Duration::from_secs(2));
    assert_eq!(
        world.core.role(),
        Role::Active,
        "{}",
        world.core.role_reason()
    );
    world
}

/// Feeds `input` once at the world's instant and checks that it is a fixed point: no command
/// out, still active. Returns the input, to be fed again in the measurement.
fn fixed_point(world: &mut World, input: Input) -> Input {
    for _ in 0..2 {
        world.core.handle_input(world.now, input.clone());
        let (commands, _) = drain(&mut world.core);
        assert_eq!(commands, 0, "{input:?} should be a fixed point");
    }
    assert_eq!(world.core.role(), Role::Active);
    input
}

fn decision_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision");

    // A keep-alive acknowledged 2 ms after it was sent.
    let mut world = active_leader();
    let sent_at = world.hold_keepalive();
    world.now = sent_at + Duration::from_millis(2);
    let ttl = world.ttl;
    let ack = fixed_point(
        &mut world,
        Input::KeepAliveAcked {
            lease: LEASE,
            sent_at,
            ttl,
        },
    );
    group.bench_function("keepalive_ack", |b| {
        b.iter(|| {
            world.core.handle_input(world.now, black_box(ack.clone()));
            black_box(drain(&mut world.core))
        })
    });

    // The same election read again (the watch fired, or the periodic re-read).
    let mut world = active_leader();
    let observed = fixed_point(&mut world, Input::Observed(election(true)));
    group.bench_function("observation", |b| {
        b.iter_batched(
            || observed.clone(),
            |input| {
                world.core.handle_input(world.now, input);
                black_box(drain(&mut world.core))
            },
            BatchSize::SmallInput,
        )
    });

    // A wake-up with nothing due.
    let mut world = active_leader();
    fixed_point(&mut world, Input::Timeout);
    group.bench_function("timeout", |b| {
        b.iter(|| {
            world.core.handle_input(world.now, Input::Timeout);
            black_box(drain(&mut world.core))
        })
    });

    // One second of core time, all inputs included.
    let mut world = active_leader();
    group.bench_function("leader_second", |b| {
        b.iter(|| world.run_for(Duration::from_secs(1)))
    });
    assert_eq!(world.core.role(), Role::Active);

    let mut world = World::new(false);
    world.run_for(Duration::from_secs(3));
    assert_eq!(world.core.role(), Role::Candidate);
    group.bench_function("standby_second", |b| {
        b.iter(|| world.run_for(Duration::from_secs(1)))
    });
    assert_eq!(world.core.role(), Role::Candidate);

    group.finish();
}

criterion_group! {
    name = benches;
    // Short enough for `make bench`; criterion reports the noise it sees.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = decision_step
}
criterion_main!(benches);

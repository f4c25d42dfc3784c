//! Property tests: the core runs in a randomized [`World`] and a [`Checker`] that watches only
//! what crosses the sans-IO boundary asserts the safety properties after every step. The
//! checker computes the lease and step-down deadlines itself, from the acks it delivered.
//!
//! - P0 `no_activation_over_a_previous_leader`: `SetActive` only once no previous leader's node
//!   can still sign a height and round ours would sign (world truth: a crash + restart bound +
//!   drain bound, or a clean handover + its last slot (rule `wait_out_last_slot`), then the
//!   slot's tolerated overtime and the clock offset).
//! - P1 `standby_commanded_by_step_down_deadline`: while the last mode command is `SetActive`,
//!   the time is before the step-down deadline (ack send time + TTL x (1 - drift) - drain
//!   bound - safety margin).
//! - P2 `activation_preconditions`: `SetActive` only when the last observation had our key
//!   first, the lease had room for one more keep-alive round, the last probe was ready, and no
//!   shutdown was requested.
//! - P3 `shutdown_exits_standby`: after `ShutdownRequested` the core exits within the grace
//!   (plus the fence's run time and one etcd request) when the fence works; the last mode command before `Exit` is `SetStandby`, and
//!   `Exit{0}` only after a read made after it said `false`.
//! - P4 `campaign_preconditions`: `GrantLease`/`CreateCandidate` only with the node confirmed
//!   standby (a read after the last `SetActive` said `false`) and ready.
//! - P5 `record_only_when_confirmed`: a `Resign` carrying a handover record only with the node
//!   confirmed standby.
//! - P7 `lead_given_away_only_when_proven` (rule `lead_may_be_given_away`): a `Resign` of a
//!   lease that carried our candidate key only when a read after the last `SetActive` said
//!   `false`, or a fence run reported success since it and no read sent after that success
//!   said `true`, or (key custody) a read after the last `InstallKey` listed only the
//!   placeholder; and, with key custody, never while an installed key was not at least asked
//!   to be withdrawn.
//! - P8 `no_record_after_a_failed_activation` (rule `handover_record`): a `Resign` carrying a
//!   record only for a lease in whose term no `SetActive` failed.
//! - P9 `excluded_never_campaigns` (rule `excluded_replica`): no `GrantLease` or
//!   `CreateCandidate` while the last observation delivered says we are excluded.
//! - P6 `no_fence_for_a_good_node`: with a node that keeps its promises (never fails a call,
//!   never restarts or hangs, answers within node_timeout, drains within drain_bound), the
//!   fence never runs.
//!
//! `property_check_catches_*` run the same check over a fixed, seeded set of scenarios with a
//! planted bug (`Mutation`) and require a counterexample: proof that the check can fail.
//!
//! The property checker, its scenario generator and the planted-bug tests that prove it can
//! fail share one set of definitions.

use super::scenario::{self, Scenario};
use super::world::{self, World};
use crate::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use std::collections::HashMap;
use std::time::Duration;

/// A broken property: its name, the time and what happened.
#[derive(Debug)]
pub(super) struct Violation {
    pub property: &'static str,
    pub at: Instant,
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} violated at {}: {}",
            self.property, self.at, self.detail
        )
    }
}

/// Watches inputs and outputs; knows nothing of the core's insides.
struct Checker {
    timing: Timing,
    lease: Option<LeaseId>,
    /// Best lease deadline per lease, from the grants and acks delivered.
    deadlines: HashMap<LeaseId, Instant>,
    candidate: Option<CandidateId>,
    first: Option<CandidateId>,
    last_probe: Option<bool>,
    failed_probes: u32,
    ever_ready: bool,
    /// Last `SetActive`/`SetStandby` emitted, its id, and the lease held when it was.
    last_mode: Option<(NodeCall, CallId, Option<LeaseId>)>,
    /// A read made after the last `SetActive` said `false` (none since said `true`).
    confirmed: bool,
    /// A read made after the last `SetStandby` said `false`.
    read_standby_after_last_standby: bool,
    shutdown_at: Option<Instant>,
    exit: Option<(Instant, i32)>,
    fenced: bool,
    /// A fence run reported success since the last `SetActive`, and no read sent after that
    /// said active (then the fence did not stop the node, or it restarted active).
    fence_succeeded: bool,
    /// Key custody: the id of the last `InstallKey`, and whether an answer to a later key call
    /// listed only the placeholder (none since listed the operator's key).
    last_install: Option<CallId>,
    key_withdrawn: bool,
    /// An `InstallKey` was sent and no `WithdrawKey` since.
    key_outstanding: bool,
    /// The highest node call id issued so far; at a fence's success, the reads with a higher
    /// id are the ones sent after it.
    last_call_id: CallId,
    fence_succeeded_after_call: CallId,
    /// Leases that carried our candidate key.
    keyed: std::collections::HashSet<LeaseId>,
    /// Leases in whose term a `SetActive` failed or timed out.
    activation_failed: std::collections::HashSet<LeaseId>,
    /// The last observation delivered says an operator excluded us.
    excluded: bool,
}

impl Checker {
    fn new(timing: Timing) -> Self {
        Checker {
            timing,
            lease: None,
            deadlines: HashMap::new(),
            candidate: None,
            first: None,
            last_probe: None,
            failed_probes: 0,
            ever_ready: false,
            last_mode: None,
            confirmed: false,
            read_standby_after_last_standby: false,
            shutdown_at: None,
            exit: None,
            fenced: false,
            fence_succeeded: false,
            last_install: None,
            key_withdrawn: false,
            key_outstanding: false,
            last_call_id: 0,
            fence_succeeded_after_call: 0,
            keyed: Default::default(),
            activation_failed: Default::default(),
            excluded: false,
        }
    }

    /// The step-down deadline of `lease`, computed here from what was delivered.
    fn step_down(&self, lease: Option<LeaseId>) -> Option<Instant> {
        let deadline = self.deadlines.get(&lease?)?;
        Some(*deadline - self.timing.drain_bound - self.timing.safety_margin)
    }

    fn ready(&self) -> bool {
        self.ever_ready && self.failed_probes < self.timing.unready_threshold
    }

    fn on_input(&mut self, now: Instant, input: &Input) {
        let scaled = |ttl: Duration| ttl.mul_f64(1.0 - self.timing.max_clock_drift);
        match input {
            Input::LeaseGranted {
                lease,
                ttl,
                sent_at,
            } => {
                self.lease = Some(*lease);
                self.candidate = None;
                self.deadlines.insert(*lease, *sent_at + scaled(*ttl));
            }
            Input::KeepAliveAcked {
                lease,
                sent_at,
                ttl,
            } if !ttl.is_zero() => {
                let renewed = *sent_at + scaled(*ttl);
                let best = self.deadlines.entry(*lease).or_insert(renewed);
                *best = (*best).max(renewed);
            }
            Input::CandidateCreated {
                lease,
                create_revision,
            } if Some(*lease) == self.lease => {
                self.keyed.insert(*lease);
                self.candidate = Some(CandidateId {
                    lease: *lease,
                    create_revision: *create_revision,
                });
            }
            Input::Observed(obs) => {
                self.first = obs.candidates.first().map(|c| c.id);
                self.excluded = obs.excluded.is_some();
            }
            Input::Probed { ready, .. } => {
                self.last_probe = Some(*ready);
                if *ready {
                    self.ever_ready = true;
                    self.failed_probes = 0;
                } else {
                    self.failed_probes += 1;
                }
            }
            Input::NodeCallDone {
                id,
                call: NodeCall::ReadMode,
                active: Some(active),
                ..
            } => {
                let after = |kind: NodeCall| {
                    self.last_mode
                        .is_none_or(|(call, last, _)| call != kind || *id > last)
                };
                if *active {
                    self.confirmed = false;
                    self.read_standby_after_last_standby = false;
                    if *id > self.fence_succeeded_after_call {
                        self.fence_succeeded = false;
                    }
                } else {
                    if after(NodeCall::SetActive) {
                        self.confirmed = true;
                    }
                    if matches!(self.last_mode, Some((NodeCall::SetStandby, last, _)) if *id > last)
                    {
                        self.read_standby_after_last_standby = true;
                    }
                }
            }
            Input::ShutdownRequested => {
                self.shutdown_at.get_or_insert(now);
            }
            Input::NodeCallDone {
                id,
                keys: Some(keys),
                ..
            } => match keys {
                NodeKeys::Placeholder if self.last_install.is_none_or(|last| *id > last) => {
                    self.key_withdrawn = true;
                }
                NodeKeys::Placeholder => {}
                NodeKeys::Operator => self.key_withdrawn = false,
            },
            Input::FenceDone { success: true, .. } => {
                self.fence_succeeded = true;
                self.fence_succeeded_after_call = self.last_call_id;
            }
            Input::NodeCallFailed {
                call: NodeCall::SetActive,
                ..
            } => {
                if let Some(lease) = self.lease {
                    self.activation_failed.insert(lease);
                }
            }
            _ => {}
        }
    }

    fn on_command(
        &mut self,
        now: Instant,
        command: &Command,
        world: &World,
    ) -> Result<(), Violation> {
        let fail = |property, detail: String| {
            Err(Violation {
                property,
                at: now,
                detail,
            })
        };
        if let Command::Node { id, .. } = command {
            self.last_call_id = self.last_call_id.max(*id);
        }
        match command {
            Command::Node {
                id,
                call: call @ (NodeCall::SetActive | NodeCall::InstallKey),
            } => {
                if now < world.danger_until {
                    return fail(
                        "P0 no_activation_over_a_previous_leader",
                        format!(
                            "a previous leader's node may sign a slot ours would use until {}",
                            world.danger_until
                        ),
                    );
                }
                let room = self.timing.keepalive_interval + self.timing.etcd_request_timeout;
                let step_down = self.step_down(self.lease);
                let leading = self.candidate.is_some() && self.first == self.candidate;
                let has_room = step_down.is_some_and(|sd| now + room <= sd);
                if !leading
                    || !has_room
                    || self.last_probe != Some(true)
                    || self.shutdown_at.is_some()
                {
                    return fail(
                        "P2 activation_preconditions",
                        format!(
                            "{call:?} with candidate {:?}, first {:?}, step-down {step_down:?}, \
                             last probe {:?}, shutdown {:?}",
                            self.candidate, self.first, self.last_probe, self.shutdown_at
                        ),
                    );
                }
                if *call == NodeCall::InstallKey {
                    self.last_install = Some(*id);
                    self.key_withdrawn = false;
                    self.key_outstanding = true;
                    return Ok(());
                }
                self.last_mode = Some((NodeCall::SetActive, *id, self.lease));
                self.confirmed = false;
                self.fence_succeeded = false;
                self.read_standby_after_last_standby = false;
            }
            Command::Node {
                call: NodeCall::WithdrawKey,
                ..
            } => self.key_outstanding = false,
            Command::Node {
                id,
                call: NodeCall::SetStandby,
            } => {
                self.last_mode = Some((NodeCall::SetStandby, *id, self.lease));
                self.read_standby_after_last_standby = false;
            }
            Command::GrantLease { .. } | Command::CreateCandidate { .. }
                if !self.confirmed
                    || !self.ready()
                    || (world.key_custody() && !self.key_withdrawn) =>
            {
                return fail(
                    "P4 campaign_preconditions",
                    format!(
                        "{command:?} with standby confirmed {}, key withdrawn {} and ready {}",
                        self.confirmed,
                        self.key_withdrawn,
                        self.ready()
                    ),
                );
            }
            Command::GrantLease { .. } | Command::CreateCandidate { .. } if self.excluded => {
                return fail(
                    "P9 excluded_never_campaigns",
                    format!("{command:?} while excluded"),
                );
            }
            Command::Resign { lease, .. }
                if self.keyed.contains(lease)
                    && ((!self.confirmed && !self.fence_succeeded && !self.key_withdrawn)
                        || self.key_outstanding) =>
            {
                return fail(
                    "P7 lead_given_away_only_when_proven",
                    format!(
                        "{command:?}: the lease carried our key and the node is not proven \
                         standby"
                    ),
                );
            }
            Command::Resign {
                lease,
                record: Some(record),
                ..
            } if self.activation_failed.contains(lease) => {
                return fail(
                    "P8 no_record_after_a_failed_activation",
                    format!("{record:?} written in a term whose activate=true failed"),
                );
            }
            Command::Resign {
                record: Some(record),
                ..
            } if (!self.confirmed || record.key_withdrawn) && !self.key_withdrawn => {
                return fail(
                    "P5 record_only_when_confirmed",
                    format!(
                        "{record:?} written with the node not confirmed standby (read {}, key \
                         withdrawn {})",
                        self.confirmed, self.key_withdrawn
                    ),
                );
            }
            Command::Fence { .. } => self.fenced = true,
            Command::Exit { code } => {
                let Some(asked) = self.shutdown_at else {
                    return fail("P3 shutdown_exits_standby", "exit without shutdown".into());
                };
                if !matches!(self.last_mode, Some((NodeCall::SetStandby, ..))) {
                    return fail(
                        "P3 shutdown_exits_standby",
                        format!("exit after {:?}", self.last_mode),
                    );
                }
                if *code == 0 && !self.read_standby_after_last_standby && !self.key_withdrawn {
                    return fail(
                        "P3 shutdown_exits_standby",
                        "exit 0 without a read saying standby after the last SetStandby".into(),
                    );
                }
                // A resignation in flight at the end of the grace gets its answer first. Only
                // with a fence that works: with a failing one the lease is kept (P7) and the
                // exit waits for proof, however long that takes.
                let limit = asked
                    + self.timing.shutdown_grace()
                    + world::fence_bound()
                    + self.timing.etcd_request_timeout;
                if now > limit && world.fence_works() {
                    return fail("P3 shutdown_exits_standby", format!("exit after {limit}"));
                }
                self.exit = Some((now, *code));
            }
            _ => {}
        }
        Ok(())
    }

    /// After every step.
    fn check(&self, now: Instant) -> Result<(), Violation> {
        if let Some((NodeCall::SetActive, _, lease)) = self.last_mode {
            let step_down = self.step_down(lease);
            if step_down.is_none_or(|sd| now >= sd) {
                return Err(Violation {
                    property: "P1 standby_commanded_by_step_down_deadline",
                    at: now,
                    detail: format!(
                        "node still commanded active; step-down deadline {step_down:?}"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// What a run did, for the coverage statistics.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Summary {
    pub activations: u32,
    pub step_downs: u32,
    pub fences: u32,
    pub exits: u32,
    pub clean_starts: u32,
}

impl Summary {
    fn count(&mut self, command: &Command, checker: &Checker) {
        match command {
            Command::Node {
                call: NodeCall::SetActive,
                ..
            } => self.activations += 1,
            Command::Node {
                call: NodeCall::SetStandby,
                ..
            } if checker
                .last_mode
                .is_some_and(|(call, ..)| call == NodeCall::SetActive) =>
            {
                self.step_downs += 1
            }
            Command::Fence { .. } => self.fences += 1,
            Command::Exit { .. } => self.exits += 1,
            _ => {}
        }
    }
}

/// Runs one scenario; the first violated property, if any.
pub(super) fn run(sc: &Scenario, mutation: Mutation) -> Result<Summary, Violation> {
    let mut world = World::new(sc);
    let timing = world.timing.clone();
    let mut settings = Settings::new(world::US, timing.clone());
    settings.mutation = mutation;
    settings.key_custody = sc.key_custody();
    let mut core = Elector::new(settings, Instant::ZERO).expect("valid timing");
    let mut checker = Checker::new(timing.clone());
    let mut summary = Summary::default();
    let mut end = world.end();
    let mut wake = Instant::ZERO;
    let mut now = Instant::ZERO;
    let mut pending = vec![Input::Timeout];
    // `ELECTOR_TRACE=1 cargo test ... -- --nocapture` prints every step: paste a failing
    // scenario into a test that calls `run` to see its trace.
    let trace = std::env::var_os("ELECTOR_TRACE").is_some();
    loop {
        for input in pending.drain(..) {
            if input == Input::ShutdownRequested && checker.shutdown_at.is_none() {
                // Give the shutdown time to finish, whatever the scenario's length.
                let room = timing.shutdown_grace() + world::fence_bound() + Duration::from_secs(1);
                end = end.max(now + room);
            }
            if trace && input != Input::Timeout {
                println!("{now} <- {input:?}");
            }
            checker.on_input(now, &input);
            core.handle_input(now, input);
            loop {
                let command = match core.poll_output() {
                    Output::Timeout(at) => {
                        wake = at;
                        break;
                    }
                    Output::Event(event) => {
                        if trace {
                            println!("{now}    event {event:?}");
                        }
                        continue;
                    }
                    Output::Command(command) => command,
                };
                if trace {
                    println!("{now} -> {command:?}");
                }
                summary.count(&command, &checker);
                checker.on_command(now, &command, &world)?;
                world.on_command(&command);
            }
            checker.check(now)?;
        }
        if world.exited {
            break;
        }
        // World events first when they fall on the core's wake-up instant.
        match world.next_at() {
            Some(at) if at <= wake => {
                if at > end {
                    break;
                }
                pending = world.step();
                now = at;
            }
            _ => {
                if wake > end {
                    break;
                }
                now = wake;
                world.now = wake;
                pending.push(Input::Timeout);
            }
        }
    }
    if let Some(asked) = checker.shutdown_at
        && checker.exit.is_none()
        && world.fence_works()
        && end
            > asked + timing.shutdown_grace() + world::fence_bound() + timing.etcd_request_timeout
    {
        return Err(Violation {
            property: "P3 shutdown_exits_standby",
            at: end,
            detail: format!("shutdown asked at {asked}, no exit"),
        });
    }
    if !world.node_misbehaved && checker.fenced {
        return Err(Violation {
            property: "P6 no_fence_for_a_good_node",
            at: end,
            detail: "fenced a node that behaved within its bounds".into(),
        });
    }
    Ok(summary)
}

/// Cases per property run; `PROPTEST_CASES` overrides it.
const CASES: u32 = 2000;

fn config(cases: u32) -> Config {
    Config {
        cases,
        max_shrink_iters: 2_000,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config(CASES))]

    /// P0-P9 hold in every randomized world.
    #[test]
    fn safety_properties_hold(sc in scenario::scenario()) {
        run(&sc, Mutation::default()).map_err(|v| TestCaseError::fail(v.to_string()))?;
    }
}

/// Runs `cases` deterministic scenarios; the first violation found, if any.
fn search(mutation: Mutation, cases: u32) -> Option<(Violation, Scenario)> {
    let config = Config {
        cases,
        max_shrink_iters: 0,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let tried = std::cell::Cell::new(0u32);
    let result = runner.run(&scenario::scenario(), |sc| {
        tried.set(tried.get() + 1);
        run(&sc, mutation)
            .map(|_| ())
            .map_err(|v| TestCaseError::fail(v.property))
    });
    if std::env::var_os("ELECTOR_TRACE").is_some() {
        println!("{mutation:?}: {} cases tried", tried.get());
    }
    match result {
        Ok(()) => None,
        Err(TestError::Fail(_, sc)) => {
            let violation = run(&sc, mutation).expect_err("the failure reproduces");
            Some((violation, sc))
        }
        Err(TestError::Abort(reason)) => panic!("aborted: {reason}"),
    }
}

#[test]
fn property_check_catches_a_missing_safety_margin() {
    let mutation = Mutation {
        no_safety_margin: true,
        ..Mutation::default()
    };
    let (violation, sc) = search(mutation, 200).expect("P1 or P2 must find the planted bug");
    // Without the margin the core counts on a later step-down deadline than the checker: it
    // keeps the node active past the real one (P1), or, with key custody, installs the key
    // with less room than an activation needs (P2).
    assert!(
        violation.property.starts_with("P1") || violation.property.starts_with("P2"),
        "{violation}\n{sc:?}"
    );
}

#[test]
fn property_check_catches_resigning_before_standby_is_confirmed() {
    let mutation = Mutation {
        resign_before_standby_confirmed: true,
        ..Mutation::default()
    };
    let (violation, sc) = search(mutation, 300).expect("P5 or P7 must find the planted bug");
    assert!(
        violation.property.starts_with("P5") || violation.property.starts_with("P7"),
        "{violation}\n{sc:?}"
    );
}

#[test]
fn property_check_catches_resigning_when_the_fence_starts() {
    let mutation = Mutation {
        resign_when_fence_starts: true,
        ..Mutation::default()
    };
    let (violation, sc) = search(mutation, 400).expect("P7 must find the planted bug");
    assert!(violation.property.starts_with("P7"), "{violation}\n{sc:?}");
}

#[test]
fn property_check_catches_an_exclusion_that_skips_the_proof() {
    let mutation = Mutation {
        exclusion_skips_proof: true,
        ..Mutation::default()
    };
    let (violation, sc) = search(mutation, 400).expect("P5 or P7 must find the planted bug");
    assert!(
        violation.property.starts_with("P5") || violation.property.starts_with("P7"),
        "{violation}\n{sc:?}"
    );
}

#[test]
fn property_check_catches_a_handover_that_skips_the_slot_wait() {
    let mutation = Mutation {
        handover_skips_slot_wait: true,
        ..Mutation::default()
    };
    let (violation, sc) = search(mutation, 400).expect("P0 must find the planted bug");
    assert!(violation.property.starts_with("P0"), "{violation}\n{sc:?}");
}

#[test]
fn property_check_catches_a_resignation_before_the_key_withdrawal_is_confirmed() {
    let mutation = Mutation {
        resign_before_key_withdrawal_confirmed: true,
        ..Mutation::default()
    };
    let (violation, sc) = search(mutation, 400).expect("P5 or P7 must find the planted bug");
    assert!(
        violation.property.starts_with("P5") || violation.property.starts_with("P7"),
        "{violation}\n{sc:?}"
    );
}

#[test]
fn property_check_catches_a_key_installed_before_the_activation_gate() {
    let mutation = Mutation {
        install_key_before_gate: true,
        ..Mutation::default()
    };
    let (violation, sc) = search(mutation, 400).expect("P0 must find the planted bug");
    assert!(violation.property.starts_with("P0"), "{violation}\n{sc:?}");
}

/// The control run of every planted-bug search above: the same scenarios (the searches are
/// deterministic, and each tries a prefix of these) without the bug find nothing.
#[test]
fn the_planted_bug_searches_find_nothing_without_a_bug() {
    if let Some((violation, sc)) = search(Mutation::default(), 400) {
        panic!("the control run found {violation}\n{sc:?}");
    }
}

/// The randomized worlds reach the interesting states, so the properties are not vacuous.
#[test]
fn randomized_worlds_cover_activation_step_down_fence_and_exit() {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let mut total = Summary::default();
    for _ in 0..100 {
        let sc = scenario::scenario()
            .new_tree(&mut runner)
            .expect("a scenario")
            .current();
        if let Ok(s) = run(&sc, Mutation::default()) {
            total.activations += s.activations;
            total.step_downs += s.step_downs;
            total.fences += s.fences;
            total.exits += s.exits;
            total.clean_starts += u32::from(s.activations > 0);
        }
    }
    assert!(total.clean_starts >= 30, "{total:?}");
    assert!(total.step_downs >= 10, "{total:?}");
    assert!(total.fences >= 1, "{total:?}");
    assert!(total.exits >= 5, "{total:?}");
}

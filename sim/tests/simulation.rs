//! Determinism, and proof that the simulation can fail.
//!
//! The CI seed set is not here: `make sim-ci` (part of `make test`) runs it in the optimized
//! `elector-sim` binary, several times faster than this debug test build could, and prints
//! each failing seed's replay command. These tests check what a search relies on: the same
//! seed gives the same run, a run that breaks an assumption is reported as such, the core's
//! planted bugs are found within a bounded number of seeds, and a persistent fault is judged
//! both ways.

use elector_sim::check::persistent_fault_bound;
use elector_sim::render::first_difference;
use elector_sim::run::simulate;
use elector_sim::schedule::{
    FaultKind, FenceOutcome, MutationChoice, Options, PersistentKind, ProfileChoice, Scenario,
};
use elector_sim::search::search;
use elector_sim::verdict::{BrokenKind, Expectation, Verdict};

/// The same seed gives the same run: schedule, every line of the timeline, every node's
/// history. (The seed has faults of many kinds, a fence and a clean handover.)
#[test]
fn the_same_seed_gives_the_same_trace() {
    let options = Options::default();
    let scenario = Scenario::generate(DETERMINISM_SEED, &options);
    assert!(scenario.faults.len() >= 4, "{:?}", scenario.faults);
    let first = simulate(&scenario);
    let second = simulate(&scenario);
    assert!(first.trace.len() > 50, "{}", first.render(true));
    assert_eq!(first.histories, second.histories);
    if let Some(diff) = first_difference(&first.render(true), &second.render(true)) {
        panic!("seed {DETERMINISM_SEED} ran differently twice; {diff}");
    }
}

const DETERMINISM_SEED: u64 = 1;

/// A run that breaks an assumption is reported as such, never as a pass.
#[test]
fn a_misconfigured_active_start_is_reported_not_passed() {
    let options = Options::default();
    let seed = (0..2000)
        .find(|&seed| {
            Scenario::generate(seed, &options).faults.iter().any(|f| {
                matches!(
                    f.kind,
                    FaultKind::NodeRestart {
                        active_start: true,
                        ..
                    }
                )
            })
        })
        .expect("some seed restarts a node active");
    let outcome = simulate(&Scenario::generate(seed, &options));
    assert_eq!(outcome.verdict(), Verdict::AssumptionBroken, "seed {seed}");
    assert!(
        outcome
            .broken
            .iter()
            .any(|b| b.kind == BrokenKind::MisconfiguredActiveStart)
    );
}

/// With the core's planted bug "resign before standby is confirmed", a leader that hands over
/// tells its successor to skip the activation delay while its own node is still finishing
/// its round: two active nodes. The search must find it within a bounded number of seeds.
#[test]
fn the_search_finds_the_planted_resign_before_confirmed_bug() {
    let options = Options {
        mutation: MutationChoice::ResignBeforeStandbyConfirmed,
        break_assumptions: false,
        profile: ProfileChoice::Mixed,
        ..Options::default()
    };
    let seed = first_dual_active(&options);
    // And the finding replays.
    let outcome = simulate(&Scenario::generate(seed, &options));
    assert!(!outcome.safety_ok(), "seed {seed} did not replay");
    assert_eq!(outcome.verdict(), Verdict::Violation);
}

/// With the core's planted bug "short activation delay", a new leader waits only what a dead
/// previous leader needs (rule `activation_delay_covers_dead_leader`), not what a leader needs
/// that was cut off when etcd revoked its lease early (`activation_delay_covers_early_revocation`,
/// the fault `FaultKind::EarlyRevocation`): that leader's node is still draining, or not yet
/// commanded standby, when the successor activates. The quick-restart profile is where the two
/// bounds lie furthest apart (1.72 s against 2.67 s). The search must find it, and the finding
/// must involve an early revocation.
#[test]
fn the_search_finds_the_planted_short_activation_delay_bug() {
    let options = Options {
        mutation: MutationChoice::ShortActivationDelay,
        break_assumptions: false,
        profile: ProfileChoice::QuickRestart,
        ..Options::default()
    };
    let seed = first_dual_active(&options);
    let outcome = simulate(&Scenario::generate(seed, &options));
    assert_eq!(outcome.verdict(), Verdict::Violation, "seed {seed}");
    assert!(
        outcome
            .scenario
            .faults
            .iter()
            .any(|f| f.kind == FaultKind::EarlyRevocation),
        "seed {seed} has no early revocation:\n{}",
        outcome.render(false)
    );
}

const MUTATION_SEEDS: u64 = 200;

/// The first of [`MUTATION_SEEDS`] seeds whose run has two active nodes at once; fails the
/// test if none has.
fn first_dual_active(options: &Options) -> u64 {
    let summary = search(options, 0..MUTATION_SEEDS, 1, false, |run, _| {
        !run.dual_active
    });
    assert!(
        !summary.dual_active.is_empty(),
        "no dual-active in {MUTATION_SEEDS} seeds with the planted bug:\n{}",
        summary.report(options)
    );
    summary.dual_active[0]
}

/// With the core's planted bug "no safety margin", a leader cut off from etcd commands its
/// node standby only `drain_bound` before its lease deadline, so the standby cannot be
/// confirmed in time and the fence runs against a healthy node. (It never yields two active
/// nodes: a new leader still waits the activation delay, which covers the late step-down.)
/// The search must flag it within a bounded number of seeds.
#[test]
fn the_search_finds_the_planted_no_safety_margin_bug() {
    let options = Options {
        mutation: MutationChoice::NoSafetyMargin,
        break_assumptions: false,
        ..Options::default()
    };
    let summary = search(&options, 0..MUTATION_SEEDS, 1, false, |run, _| {
        run.unexplained_fences == 0
    });
    assert!(
        !summary.unexplained_fences.is_empty(),
        "no fence against a healthy node in {MUTATION_SEEDS} seeds with the planted bug:\n{}",
        summary.report(&options)
    );
    let seed = summary.unexplained_fences[0];
    let outcome = simulate(&Scenario::generate(seed, &options));
    assert_eq!(outcome.verdict(), Verdict::Violation, "seed {seed}");
    assert!(!outcome.fence_discipline_ok());
}

/// With the core's planted bug "resign when the fence starts", a leader whose node cannot be
/// read gives the lead away as soon as its fence starts, not when the fence reports success:
/// with a fence that fails, times out or succeeds late, the successor activates (after its
/// activation delay) while the old node still signs. The search must find it within a bounded
/// number of seeds (seed 15 with these options: `/ha` broken on the leader's node for good,
/// SIGTERM to its elector, a fence that succeeds late).
#[test]
fn the_search_finds_the_planted_resign_when_fence_starts_bug() {
    let options = Options {
        mutation: MutationChoice::ResignWhenFenceStarts,
        ..Options::default()
    };
    let summary = search(&options, 0..MUTATION_SEEDS, 1, false, |run, _| {
        !(run.dual_active && run.verdict == Verdict::Violation)
    });
    assert!(
        !summary.dual_active.is_empty(),
        "no dual-active in {MUTATION_SEEDS} seeds with the planted bug:\n{}",
        summary.report(&options)
    );
    let seed = summary.dual_active[0];
    let outcome = simulate(&Scenario::generate(seed, &options));
    assert!(!outcome.safety_ok(), "seed {seed} did not replay");
    assert_eq!(outcome.verdict(), Verdict::Violation, "seed {seed}");
    // The same seed without the bug: the leader keeps the lead until the fence succeeds.
    let fixed = simulate(&Scenario::generate(seed, &Options::default()));
    assert!(fixed.safety_ok(), "seed {seed} fails without the bug too");
}

/// With the core's planted bug "exclusion skips the proof", an excluded leader counts its node
/// standby as soon as it commanded it, and resigns with a handover record while the node
/// still finishes its round: its successor skips the activation delay, two active nodes. The
/// search must find it within a bounded number of seeds (only runs with an exclusion of the
/// leader can), and the same seed without the bug must be safe.
#[test]
fn the_search_finds_the_planted_exclusion_skips_proof_bug() {
    let options = Options {
        mutation: MutationChoice::ExclusionSkipsProof,
        break_assumptions: false,
        ..Options::default()
    };
    let seed = first_dual_active(&options);
    let scenario = Scenario::generate(seed, &options);
    assert!(
        scenario
            .faults
            .iter()
            .any(|f| matches!(f.kind, FaultKind::Exclusion { .. })),
        "seed {seed} found something other than the exclusion: {:?}",
        scenario.faults
    );
    let outcome = simulate(&scenario);
    assert!(!outcome.safety_ok(), "seed {seed} did not replay");
    assert_eq!(outcome.verdict(), Verdict::Violation, "seed {seed}");
    let fixed = simulate(&Scenario::generate(
        seed,
        &Options {
            break_assumptions: false,
            ..Options::default()
        },
    ));
    assert!(fixed.safety_ok(), "seed {seed} fails without the bug too");
}

/// The first seed whose scenario has a persistent fault of this kind with this fence outcome,
/// no transient fault after it or less than a lease TTL before it (a crash whose
/// `ExecStopPost` meets the broken node breaks the restart bound) and no early revocation
/// (which, meeting a broken admin endpoint, breaks an assumption of its own), among the first
/// 2,000.
fn persistent_seed(kind: &str, fence: FenceOutcome) -> u64 {
    let options = Options::default();
    (0..2000)
        .find(|&seed| {
            let s = Scenario::generate(seed, &options);
            s.fence.outcome == fence
                && s.persistent.as_ref().is_some_and(|p| {
                    p.quiet_after
                        && p.kind.name() == kind
                        && s.faults
                            .iter()
                            .all(|f| f.heal + s.profile.timing.lease_ttl <= p.at)
                })
                && !s
                    .faults
                    .iter()
                    .any(|f| f.kind == FaultKind::EarlyRevocation)
        })
        .unwrap_or_else(|| panic!("no seed draws {kind} with a fence that {}", fence.name()))
}

/// A persistent fault on the leader's replica is checked both ways: with a fence that can
/// succeed another node takes over within the bound; with one that cannot, the leader keeps
/// the lead and reports itself stuck to the end (and nobody else activates).
#[test]
fn persistent_faults_are_checked_for_takeover_or_stuck_report() {
    let timing = |s: &Scenario| s.profile.timing.clone();
    let seed = persistent_seed("node-death", FenceOutcome::Succeeds);
    let outcome = simulate(&Scenario::generate(seed, &Options::default()));
    let report = outcome.persistent.as_ref().expect("a persistent fault");
    assert_eq!(
        outcome.verdict(),
        Verdict::Pass,
        "seed {seed}: {:?}",
        outcome.problems()
    );
    assert!(report.victim.hit_leader, "seed {seed}");
    assert_eq!(report.expectation, Expectation::Active, "seed {seed}");
    let recovery = report.recovery.expect("another node took over");
    assert!(
        recovery <= persistent_fault_bound(&timing(&outcome.scenario)),
        "seed {seed}: {recovery:?}"
    );

    let seed = persistent_seed("admin-broken", FenceOutcome::TimesOut);
    let scenario = Scenario::generate(seed, &Options::default());
    assert!(matches!(
        scenario.persistent.as_ref().map(|p| &p.kind),
        Some(PersistentKind::AdminBroken { .. })
    ));
    let outcome = simulate(&scenario);
    let report = outcome.persistent.as_ref().expect("a persistent fault");
    assert_eq!(
        outcome.verdict(),
        Verdict::Pass,
        "seed {seed}: {:?}",
        outcome.problems()
    );
    assert!(report.victim.hit_leader, "seed {seed}");
    assert_eq!(report.expectation, Expectation::Stuck, "seed {seed}");
    assert!(outcome.stuck_to_the_end, "seed {seed}");
    assert!(outcome.stuck_reports > 0, "seed {seed}");
}

//! One run: builds the `World` for a scenario, runs it under a trace recorder and a panic
//! counter, and judges what it recorded into an [`Outcome`].

use crate::checker::check::{activations, leadership_changes, overlaps, settled};
use crate::checker::judge::{
    fence_explained, fenced_after_early_revocation, judge_persistent, judge_stuck_at_end,
    unstopped_at_expiry,
};
use crate::checker::verdict::{Broken, BrokenKind, Drain, Outcome};
use crate::seed::schedule::Scenario;
use crate::seed::schedule::secs;
use crate::seed::trace::{Entry, Recorder, TraceSubscriber};
use crate::world::{RunResult, Samples, World};
use elector_model::history::{DoubleSign, Overlap, double_signs};
use elector_model::node::{Signature, Transition};
use std::panic::AssertUnwindSafe;
use std::time::Duration;

thread_local! {
    static PANICS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts panics per thread (tokio swallows panics of spawned tasks; a run must not).
fn install_panic_counter() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            previous(info);
        }));
    });
}

/// How far before and after a safety failure the timeline shows every signature.
const SIGNATURES_BEFORE: Duration = Duration::from_secs(5);
const SIGNATURES_AFTER: Duration = Duration::from_millis(2500);

/// At most this many safety failures get their signatures in the timeline.
const FAILURES_SHOWN: usize = 10;

/// Timeline entries for every signature within a few seconds of a double sign or of two nodes
/// active at once (the first [`FAILURES_SHOWN`] of each), so that a failing seed's replay
/// shows what each node signed around it; the double-signed ones are marked.
fn signatures_around_failures(
    signatures: &[Vec<Signature>],
    double_signs: &[DoubleSign],
    overlaps: &[Overlap],
) -> Vec<Entry> {
    let mut windows: Vec<(Duration, Duration)> = double_signs
        .iter()
        .take(FAILURES_SHOWN)
        .map(|d| (d.first.1.min(d.second.1), d.first.1.max(d.second.1)))
        .chain(
            overlaps
                .iter()
                .take(FAILURES_SHOWN)
                .map(|o| (o.from, o.until)),
        )
        .map(|(from, until)| {
            (
                from.saturating_sub(SIGNATURES_BEFORE),
                until + SIGNATURES_AFTER,
            )
        })
        .collect();
    windows.sort();
    let shown = |at: Duration| {
        windows
            .iter()
            .any(|&(from, until)| from <= at && at <= until)
    };
    let doubled = |node: usize, s: &Signature| {
        double_signs.iter().any(|d| {
            (d.height, d.round) == (s.height, s.round) && (d.nodes.0 == node || d.nodes.1 == node)
        })
    };
    let mut entries = Vec::new();
    for (node, list) in signatures.iter().enumerate() {
        for s in list.iter().filter(|s| shown(s.at)) {
            entries.push(Entry {
                at: s.at,
                seq: u64::MAX - 1,
                who: format!("node-{node}"),
                what: format!(
                    "signs {} height {} round {} (slot at {}){}",
                    s.kind.as_str(),
                    s.height,
                    s.round,
                    secs(s.slot),
                    if doubled(node, s) {
                        "  <- DOUBLE SIGN"
                    } else {
                        ""
                    }
                ),
            });
        }
    }
    entries
}

/// The longest drain of node `node`: from an `activate=false` that reached it while it was
/// commanded active to the last signature it made before the next command or restart.
/// `drain_bound` is meant to cover it (inequality `drain_covers_consensus_tail`).
fn longest_drain(
    node: usize,
    commands: &[(Duration, bool)],
    signed: &[Signature],
) -> Option<Drain> {
    let mut longest: Option<Drain> = None;
    for (i, pair) in commands.windows(2).enumerate() {
        let ((_, was_active), (at, active)) = (pair[0], pair[1]);
        if !was_active || active {
            continue;
        }
        let until = commands.get(i + 2).map_or(Duration::MAX, |c| c.0);
        let last = signed
            .iter()
            .filter(|s| s.at >= at && s.at < until)
            .map(|s| s.at)
            .max();
        if let Some(last) = last {
            let length = last - at;
            if longest.as_ref().is_none_or(|d| length > d.length) {
                longest = Some(Drain { node, at, length });
            }
        }
    }
    longest
}

/// Runs one scenario and judges it.
pub fn simulate(scenario: &Scenario) -> Outcome {
    install_panic_counter();
    let recorder = Recorder::default();
    let dispatch = tracing::Dispatch::new(TraceSubscriber::new(recorder.clone()));
    let panics_before = PANICS.with(|p| p.get());
    let world_recorder = recorder.clone();
    let (run, histories, signatures, longest_drain) =
        tracing::dispatcher::with_default(&dispatch, || {
            let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let world = World::new(scenario, world_recorder);
                let nodes = world.nodes.clone();
                let run = world.run();
                for node in &nodes {
                    node.advance(run.simulated);
                }
                let histories: Vec<Vec<Transition>> = nodes.iter().map(|n| n.history()).collect();
                let signatures: Vec<Vec<Signature>> =
                    nodes.iter().map(|n| n.signatures()).collect();
                let drain = nodes
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| longest_drain(i, &n.commands(), &signatures[i]))
                    .max_by_key(|d| d.length);
                (run, histories, signatures, drain)
            }));
            match run {
                Ok(result) => result,
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_else(|| "panic".to_owned());
                    (
                        RunResult {
                            simulated: Duration::ZERO,
                            error: Some(format!("panicked: {message}")),
                            broken: Vec::new(),
                            fences: Vec::new(),
                            victim: None,
                            samples: Samples::default(),
                        },
                        vec![vec![(Duration::ZERO, false)]; scenario.replicas()],
                        vec![Vec::new(); scenario.replicas()],
                        None,
                    )
                }
            }
        });
    let RunResult {
        simulated,
        mut error,
        mut broken,
        fences,
        victim,
        samples,
    } = run;
    let panics = PANICS.with(|p| p.get()) - panics_before;
    if panics > 0 && error.is_none() {
        error = Some(format!("{panics} task(s) panicked"));
    }

    for i in scenario.drift_beyond_bound() {
        broken.push(Broken {
            kind: BrokenKind::DriftBeyondBound,
            replica: i,
            from: Duration::ZERO,
            detail: format!(
                "elector-{i} clock rate {:.4} (bound ±{})",
                scenario.electors[i].rate,
                scenario.profile.timing().max_clock_drift
            ),
        });
    }
    broken.extend(unstopped_at_expiry(
        scenario,
        victim.as_ref(),
        &histories,
        &samples.expirations,
        simulated,
    ));
    broken.extend(fenced_after_early_revocation(
        scenario,
        victim.as_ref(),
        &samples.early_revocations,
        &fences,
    ));
    broken.sort_by(|a, b| (a.kind, &a.detail).cmp(&(b.kind, &b.detail)));
    let unexplained_fences = fences
        .iter()
        .filter(|call| !fence_explained(scenario, victim.as_ref(), call))
        .map(|call| (call.elector, call.at))
        .collect();

    let mut trace = recorder.entries();
    let stuck_reports = trace.iter().filter(|e| e.what.contains("STUCK: ")).count();
    for (node, history) in histories.iter().enumerate() {
        for &(at, active) in history.iter().skip(1) {
            trace.push(Entry {
                at,
                seq: u64::MAX,
                who: format!("node-{node}"),
                what: format!("mode {}", if active { "ACTIVE" } else { "standby" }),
            });
        }
    }
    let double_signs = double_signs(&signatures);
    let overlaps = overlaps(&histories, simulated);
    trace.extend(signatures_around_failures(
        &signatures,
        &double_signs,
        &overlaps,
    ));
    trace.sort_by_key(|e| (e.at, e.seq));
    let persistent = victim
        .as_ref()
        .and_then(|v| judge_persistent(scenario, v, &histories, &samples, simulated));
    let end_of_run = judge_stuck_at_end(scenario, &samples, simulated);

    Outcome {
        scenario: scenario.clone(),
        simulated,
        error,
        broken,
        double_signs,
        overlaps,
        settled: settled(&histories),
        activations: activations(&histories).len(),
        leadership_changes: leadership_changes(&histories),
        faults: scenario.faults.len() + usize::from(scenario.persistent.is_some()),
        fences: fences.len(),
        unexplained_fences,
        persistent,
        stuck_to_the_end: end_of_run.stuck_throughout,
        unreported_stuck: end_of_run.unreported,
        stuck_reports,
        histories,
        signatures,
        longest_drain,
        trace,
    }
}

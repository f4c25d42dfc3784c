//! One run: builds the `World` for a scenario, runs it under a trace recorder and a panic
//! counter, and judges what it recorded into an [`Outcome`].

use crate::check::{activations, leadership_changes, overlaps, settled};
use crate::judge::{
    fence_explained, fenced_after_early_revocation, judge_persistent, judge_stuck_at_end,
    unstopped_at_expiry,
};
use crate::schedule::Scenario;
use crate::trace::{Entry, Recorder, TraceSubscriber};
use crate::verdict::{Broken, BrokenKind, Outcome};
use crate::world::{RunResult, Samples, World};
use elector_model::node::Transition;
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

/// Runs one scenario and judges it.
pub fn simulate(scenario: &Scenario) -> Outcome {
    install_panic_counter();
    let recorder = Recorder::default();
    let dispatch = tracing::Dispatch::new(TraceSubscriber::new(recorder.clone()));
    let panics_before = PANICS.with(|p| p.get());
    let world_recorder = recorder.clone();
    let (run, histories) = tracing::dispatcher::with_default(&dispatch, || {
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let world = World::new(scenario, world_recorder);
            let nodes = world.nodes.clone();
            let run = world.run();
            let histories: Vec<Vec<Transition>> =
                nodes.iter().map(|n| n.history(run.simulated)).collect();
            (run, histories)
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
            detail: format!(
                "elector-{i} clock rate {:.4} (bound ±{})",
                scenario.electors[i].rate, scenario.profile.timing.max_clock_drift
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
        overlaps: overlaps(&histories, simulated),
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
        trace,
    }
}

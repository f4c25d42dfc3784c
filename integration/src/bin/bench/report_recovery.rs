//! The report's sections on recovery: the elector crash on a live host, etcd trouble
//! ride-through and the lease TTL's trade-off, and the simulation's speed in both builds. Called by the report in the document's order.

use super::crash::{CrashResult, failovers};
use super::elector_crash::{ElectorCrashResult, RESTART_AFTER, Recovery};
use super::etcd_trouble::{Trouble, TroubleResult};
use super::results::{Measured, Results};
use super::sim::SimSpeed;
use super::stats::{median, secs, summarize};
use super::units::{fmt_ms, fmt_s};
use elector_integration::timing_profile::TimingProfile;
use std::fmt::Write as _;

/// What the elector-crash recovery should cost beyond the waits the slots impose: about one
/// second of etcd calls and the successor's next observation (the faster-recovery goal).
const ELECTOR_CRASH_SLACK: f64 = 1.0;

/// The target of an elector-crash recovery, kill → the other node active: the restart (if
/// any), `activate=false` held until the next slot starts (at most a slot), the successor's
/// wait for that last slot to clear (`Timing::handover_delay`, rule `wait_out_last_slot`),
/// and [`ELECTOR_CRASH_SLACK`]. A crashed host takes the lease TTL and the activation delay.
fn elector_crash_target(profile: TimingProfile, recovery: Recovery) -> f64 {
    let timing = profile.timing();
    let restart = match recovery {
        Recovery::Restart => RESTART_AFTER.as_secs_f64(),
        Recovery::ExecStopPost => 0.0,
    };
    restart
        + timing.block_interval.as_secs_f64()
        + timing.handover_delay().as_secs_f64()
        + ELECTOR_CRASH_SLACK
}

pub(super) fn render_elector_crash(o: &mut String, r: &Results, tag: &str) {
    let _ = writeln!(o, "## Elector crash on a live host\n\n{tag}");
    let _ = writeln!(
        o,
        "kill -9 of the leader's **elector alone**: its node and host live on, the node still \
         active. Then either (*restart*) the elector is started again after {} with the same \
         `--state-dir`, or (*ExecStopPost*) it stays dead and `elector force-standby` runs at \
         once with that `--state-dir`, as systemd's `ExecStopPost=` does. Either one confirms \
         the node standby by a read and then ends the dead term in etcd (rule \
         `end_dead_term`: handover record, key deleted, lease revoked, in one guarded \
         transaction), so the successor need not wait for the lease to expire nor for the \
         activation delay. Two replicas per cluster, both electors with a `--state-dir`; each \
         round runs both recoveries (after ExecStopPost the supervisor starts the elector \
         again, as the standby). *Trigger → active*: the kill until the other node is active. \
         *Gap*: the old node inactive (its last slot finished) until the new one is active. \
         *Signed twice / overlap*: heights and rounds signed by two replicas \
         (`elector_model::history::double_signs`) and time with two nodes active \
         (`dual_active`), over every node. *Target*: the restart (if any) + a slot \
         (`activate=false` is held until the next slot starts) + the successor's wait for that \
         slot to clear (`handover_delay`, {} with the defaults) + {}, where a crashed host \
         takes the lease TTL and the activation delay; met when the median is within it.\n",
        secs(RESTART_AFTER),
        fmt_s(
            TimingProfile::Default
                .timing()
                .handover_delay()
                .as_secs_f64()
        ),
        fmt_s(ELECTOR_CRASH_SLACK),
    );
    let _ = writeln!(
        o,
        "| profile | recovery | trials | trigger → active: min | median | p95 | max | target (median) | kill → old node inactive, median | gap median (max) | signed twice / overlap | crashed host, median |"
    );
    let _ = writeln!(
        o,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let mut notes = Vec::new();
    for (profile, result, host_crash) in [
        (
            TimingProfile::Default,
            &r.elector_crash_default,
            &r.crash_default,
        ),
        (TimingProfile::Fast, &r.elector_crash_fast, &r.crash_fast),
    ] {
        let name = profile_name(profile);
        let Some(e) = result else {
            let _ = writeln!(o, "| {name} | not run | | | | | | | | | | |");
            continue;
        };
        for recovery in [Recovery::Restart, Recovery::ExecStopPost] {
            elector_crash_row(o, name, profile, e, recovery, host_crash);
        }
        notes.push(format!("{name}: {}", e.summary()));
    }
    if !notes.is_empty() {
        let _ = writeln!(o, "\n{}.", notes.join("; "));
    }
    let _ = writeln!(
        o,
        "\n*Crashed host* is the median of the crash failover above (elector and node killed \
         together, the same profile): without a live host nothing can confirm the node \
         standby, so the successor waits for the lease to expire and then the whole activation \
         delay.\n"
    );
}

fn elector_crash_row(
    o: &mut String,
    name: &str,
    profile: TimingProfile,
    e: &ElectorCrashResult,
    recovery: Recovery,
    host_crash: &Option<CrashResult>,
) {
    let label = recovery.label();
    let Some(s) = summarize(&e.values(recovery, |t| t.takeover)) else {
        let _ = writeln!(o, "| {name} | {label} | 0 (all failed) | | | | | | | | | |");
        return;
    };
    let target = elector_crash_target(profile, recovery);
    let gaps = summarize(&e.values(recovery, |t| t.gap));
    let _ = writeln!(
        o,
        "| {name} | {label} | {} | {} | **{}** | {} | {} | {} ({}) | {} | {} | {} | {} |",
        s.n,
        fmt_s(s.min),
        fmt_s(s.median),
        fmt_s(s.p95),
        fmt_s(s.max),
        fmt_s(target),
        if s.median <= target {
            "met"
        } else {
            "**not met**"
        },
        median(&e.values(recovery, |t| t.standby))
            .map(fmt_s)
            .unwrap_or_default(),
        gaps.map(|g| format!("{} ({})", fmt_ms(g.median), fmt_ms(g.max)))
            .unwrap_or_default(),
        e.check.cell(),
        host_crash
            .as_ref()
            .and_then(|c| median(&failovers(c)))
            .map(fmt_s)
            .unwrap_or_else(|| "not run".into()),
    );
}

/// The simulation's speed at the CI seed set's settings, in the release and the test build.
pub(super) fn render_sim_builds(o: &mut String, r: &Results) {
    let args = &r.settings;
    let (Some(release), Some(test_build)) = (&r.sim_ci_release, &r.sim_ci_test_build) else {
        return;
    };
    let _ = writeln!(
        o,
        "At the CI seed set's settings (`make sim-ci`: `--profile mixed`, each seed drawing the \
         default or the fast profile, `--tick-ms {}`), {} seeds in each build of \
         `elector-sim`: the release build `make sim-ci` runs, and the build the tests run in \
         (cargo's dev profile, `cargo build -p elector-sim`, what `cargo test -p elector-sim` \
         compiles the simulation with). Simulated seconds per wall second, all cores together:\n",
        args.sim_ci_tick_ms, args.sim_ci_seeds
    );
    let _ = writeln!(
        o,
        "| build | binary | wall | simulated s per wall s | per core |"
    );
    let _ = writeln!(o, "| --- | --- | ---: | ---: | ---: |");
    let row = |o: &mut String, build: &str, path: &std::path::Path, s: &Measured<SimSpeed>| match s
    {
        Ok(s) => {
            let _ = writeln!(
                o,
                "| {build} | `{}` | {:.0} s | **{:.0}** | {} |",
                path.display(),
                s.wall,
                s.per_wall_second,
                s.per_core.map(|c| format!("{c:.0}")).unwrap_or_default()
            );
        }
        Err(e) => {
            let _ = writeln!(
                o,
                "| {build} | `{}` | not measured: {e:#} | | |",
                path.display()
            );
        }
    };
    row(o, "release (`make sim-ci`)", &args.sim, release);
    row(
        o,
        "test build (dev profile)",
        &args.sim_test_build,
        test_build,
    );
    if let (Ok(a), Ok(b)) = (release, test_build)
        && b.per_wall_second > 0.0
    {
        let _ = writeln!(
            o,
            "\nThe release build is {:.1}× the test build's speed.",
            a.per_wall_second / b.per_wall_second
        );
    }
    let _ = writeln!(o);
}

/// Patroni's defaults (its dynamic configuration: `ttl`, `loop_wait`, `retry_timeout`), in
/// seconds, for the side-by-side figure.
const PATRONI_TTL: f64 = 30.0;
const PATRONI_LOOP_WAIT: f64 = 10.0;
const PATRONI_RETRY_TIMEOUT: f64 = 10.0;

pub(super) fn render_etcd_trouble(o: &mut String, r: &Results, tag: &str) {
    let _ = writeln!(o, "## etcd trouble: ride-through\n\n{tag}");
    if r.etcd_trouble.is_empty() {
        let _ = writeln!(o, "Not run in this invocation.\n");
        return;
    }
    let _ = writeln!(
        o,
        "A three-member etcd cluster of real `etcd` processes on loopback (its own, not the \
         shared one), three replicas on one key, every elector given all three endpoints. \
         **Members in turn**: the raft leader first (found with the maintenance status API: \
         each member's id against the leader id it reports), then the others; each is frozen \
         (SIGSTOP) for the lease TTL + 2 s and thawed, then killed (SIGKILL) as long and \
         started again on its data directory, each restored and healthy before the next. A \
         leader that could not move to a live member would lose its lease within that time. \
         *Demotions*: an active node turning inactive; *moves*: a node turning active; both \
         from the stand-in nodes' own histories over the disturbance and 2 s after; *by etcd*: \
         the demotions whose elector logged `demoting: lease lost`, etcd having ended a lease \
         its leader still held (key deleted or lease gone before the step-down point). \
         **Whole cluster**: every member frozen at once for 0.3, 0.4, ... TTL and thawed, \
         watching until 3 keep-alive periods + 1 s after etcd serves again; the longest freeze \
         before the first demotion (or move) is what the leader rides through.\n"
    );
    let _ = writeln!(
        o,
        "| profile | member | raft leader | trouble | held | demotions | of them by etcd | moves |"
    );
    let _ = writeln!(o, "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |");
    for t in &r.etcd_trouble {
        for m in &t.members {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                profile_name(t.profile),
                m.member,
                if m.raft_leader { "yes" } else { "no" },
                match m.trouble {
                    Trouble::Freeze => "frozen (SIGSTOP)",
                    Trouble::Kill => "killed (SIGKILL), restarted",
                },
                fmt_s(m.held),
                bold_unless_zero(m.demotions),
                m.by_etcd,
                bold_unless_zero(m.moves),
            );
        }
    }
    let _ = writeln!(
        o,
        "\nA frozen member is not a dead one: its kernel still accepts connections, so the \
         client's balanced channel can reconnect to it and send the next keep-alive there, and \
         when it is the raft leader the others must first elect a new one (etcd's election \
         timeout, 1 s by default) before any member renews a lease. All of it must fit in the \
         leader's window from its last acknowledged keep-alive to its step-down point \
         (docs/safety.md, `dead_connection_replaced`); when it does not, the leader demotes in time and another \
         replica takes over: a needless failover, never two active nodes. A demotion *by etcd* \
         has another cause: etcd before 3.4.31 revokes every lease when a frozen raft leader \
         is thawed (etcd issue #15247), the active replica's included; the electors then warn \
         about the release at start-up."
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "| | lease TTL | longest etcd-wide outage ridden through | first that demoted | freezes tried |"
    );
    let _ = writeln!(o, "| --- | ---: | ---: | ---: | --- |");
    for t in &r.etcd_trouble {
        let _ = writeln!(
            o,
            "| elector, {} | {} | **{}** | {} | {} |",
            profile_name(t.profile),
            secs(t.profile.timing().lease_ttl),
            t.ride_through()
                .map(fmt_s)
                .unwrap_or_else(|| "none of those tried".into()),
            t.first_demotion()
                .map(fmt_s)
                .unwrap_or_else(|| "none up to the longest tried".into()),
            t.outages
                .iter()
                .map(|x| format!("{}{}", fmt_s(x.length), if x.demoted { " ✗" } else { "" }))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    let _ = writeln!(
        o,
        "| Patroni defaults (not measured: its documented rule) | {PATRONI_TTL:.0} s | **{:.0} s** (up to {:.0} s) | | |",
        PATRONI_RETRY_TIMEOUT,
        PATRONI_LOOP_WAIT + PATRONI_RETRY_TIMEOUT,
    );
    let _ = writeln!(
        o,
        "\nPatroni's figure: its documentation of the dynamic configuration \
         (<https://patroni.readthedocs.io/en/latest/dynamic_configuration.html>) says of \
         `retry_timeout` that \"DCS or network issues shorter than this will not cause Patroni \
         to demote the leader\", and requires `loop_wait + 2 × retry_timeout ≤ ttl`. The \
         leader updates its key once per HA loop (every `loop_wait`) and retries a failing \
         update for `retry_timeout` before it demotes, so an outage of `retry_timeout` = {:.0} \
         s is always ridden through, and one of up to `loop_wait + retry_timeout` = {:.0} s if \
         it begins just after an update. With a {:.0} s `ttl` a crashed primary's lock \
         expires after up to {:.0} s and a replica takes it at its next loop: failover up to \
         `ttl + loop_wait` = {:.0} s.",
        PATRONI_RETRY_TIMEOUT,
        PATRONI_LOOP_WAIT + PATRONI_RETRY_TIMEOUT,
        PATRONI_TTL,
        PATRONI_TTL,
        PATRONI_TTL + PATRONI_LOOP_WAIT,
    );
    let notes: Vec<String> = r
        .etcd_trouble
        .iter()
        .map(|t| {
            format!(
                "{}: {:.0} s wall, {}{}",
                profile_name(t.profile),
                t.wall.as_secs_f64(),
                t.check.describe(),
                t.error
                    .as_ref()
                    .map(|e| format!("; **failed**: {e}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    let _ = writeln!(o, "\n{}.\n", notes.join("; "));
}

fn bold_unless_zero(n: usize) -> String {
    if n == 0 {
        "0".into()
    } else {
        format!("**{n}**")
    }
}

fn profile_name(profile: TimingProfile) -> &'static str {
    match profile {
        TimingProfile::Default => "defaults",
        TimingProfile::Fast => "fast profile",
        other => other.name(),
    }
}

/// The trade-off the lease TTL sets, with this run's figures where it has them.
pub(super) fn render_lease_tradeoff(o: &mut String, r: &Results) {
    let _ = writeln!(o, "## The lease TTL: ride-through against failover\n");
    let measured = |c: &Option<CrashResult>| {
        c.as_ref()
            .and_then(|c| median(&failovers(c)))
            .map(fmt_s)
            .unwrap_or_else(|| "not measured in this run".into())
    };
    let ride = |profile: TimingProfile| {
        r.etcd_trouble
            .iter()
            .find(|t| t.profile == profile)
            .and_then(TroubleResult::ride_through)
            .map(fmt_s)
            .unwrap_or_else(|| "not measured in this run".into())
    };
    let _ = writeln!(
        o,
        "One number sets both sides. A leader keeps its node active only while it can prove \
         its lease alive, and must have its node drained before the lease could expire: it \
         steps down at its last acknowledged keep-alive + TTL − (drain bound + safety margin). \
         So an etcd outage rides through up to about TTL − drain bound − safety margin − the \
         time since the last keep-alive ({} with the defaults, {} with the fast profile, less up \
         to one keep-alive period): the longer the TTL, the longer the outages ridden \
         through. A successor may activate only once the lease of a leader that vanished has \
         expired (up to a TTL) and the activation delay has passed, which covers a dead \
         leader (restart bound + drain bound) and a leader cut off when etcd ended its lease \
         early (about the TTL less the step-down lead, with the defaults; docs/safety.md): the \
         longer the TTL, the slower the failover after a crashed host, twice over. A crashed \
         *elector* on a live host no longer pays this (see above), and a clean handover never \
         did: the TTL sets the price of the faults nothing on the host can report.\n",
        secs(ride_through_bound(TimingProfile::Default)),
        secs(ride_through_bound(TimingProfile::Fast)),
    );
    let _ = writeln!(
        o,
        "| profile | lease TTL | crashed host: failover, median | etcd-wide outage ridden through | suits |"
    );
    let _ = writeln!(o, "| --- | ---: | ---: | ---: | --- |");
    let _ = writeln!(
        o,
        "| defaults | {} | {} | {} | etcd shared with other work, across zones or on busy disks, where stalls of a few seconds (leader elections, fsync, compaction) happen; nodes whose drain takes up to 5 s; downtime of ~20 s after a host crash is acceptable |",
        secs(TimingProfile::Default.timing().lease_ttl),
        measured(&r.crash_default),
        ride(TimingProfile::Default)
    );
    let _ = writeln!(
        o,
        "| fast profile | {} | {} | {} | a dedicated, healthy etcd cluster on a low-latency network (one zone), and a block producer for whom every second of downtime costs; accept that an etcd stall of a couple of seconds moves leadership |",
        secs(TimingProfile::Fast.timing().lease_ttl),
        measured(&r.crash_fast),
        ride(TimingProfile::Fast)
    );
    let _ = writeln!(
        o,
        "\nNeither choice risks two active nodes: the step-down point and the activation delay \
         are derived from the TTL, the drain bound and the clock margins (docs/safety.md), so \
         a shorter TTL buys faster failover with fewer ride-through seconds, never with \
         safety. Give every elector all \
         etcd endpoints, so that a leader can move to a live member; whether it does so \
         before its step-down point, for a member that hangs with its connections open, the \
         etcd trouble table above shows.\n"
    );
}

/// The longest etcd outage a leader can ride through, right after a keep-alive was
/// acknowledged: the TTL less the step-down lead (drain bound + safety margin).
fn ride_through_bound(profile: TimingProfile) -> std::time::Duration {
    let t = profile.timing();
    t.lease_ttl.saturating_sub(t.step_down_lead())
}

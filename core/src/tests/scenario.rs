//! The scenarios of the property tests: a seed, a timing configuration and the happenings
//! (etcd outages, lost keep-alives, other candidates joining, leaving and crashing, node
//! restarts, hangs and broken admin endpoints, handover requests, shutdowns) that the
//! randomized [`super::world::World`] plays out, drawn by proptest so that a failure shrinks.

use crate::*;
use proptest::prelude::*;
use std::time::Duration;

/// Whom a handover is for.
#[derive(Clone, Debug)]
pub(super) enum Target {
    NextInLine,
    Us,
    /// One of the other candidates, by index (modulo their number).
    Other(u8),
    /// A replica that is not a candidate.
    Nobody,
}

/// Something that happens in the world at a scenario-chosen instant.
#[derive(Clone, Debug)]
pub(super) enum Happening {
    /// etcd answers nothing for this long (every request times out, the watch stalls).
    EtcdOutage {
        ms: u32,
    },
    /// The next `count` keep-alives are lost.
    KeepAliveLoss {
        count: u8,
    },
    /// Another replica campaigns (behind everyone).
    OtherJoins,
    /// Another candidate leaves: cleanly (handover record if it leads) or by crashing.
    OtherLeaves {
        pick: u8,
        clean: bool,
    },
    /// The leading other hands over cleanly and its successor crashes `gap_ms` later.
    LeaderChurn {
        gap_ms: u32,
    },
    /// Readiness probes fail for this long.
    Unready {
        ms: u32,
    },
    /// The node process restarts, in this mode (`true`: misconfigured active).
    NodeRestarts {
        active: bool,
    },
    /// The node hangs in a consensus round: `activate=false` takes effect only after this long
    /// plus its drain (it breaks `drain_bound`).
    NodeHangs {
        ms: u32,
    },
    /// The node's admin endpoint breaks (every call times out) while its consensus keeps
    /// running in whatever mode it was: a half-broken node.
    AdminBroken {
        ms: u32,
    },
    /// The node process dies (it stops signing at once; calls are refused) and restarts in
    /// standby this long after.
    NodeDies {
        ms: u32,
    },
    /// `activate=true` fails (the node answers an error and stays standby); reads work.
    ActivationRefused {
        ms: u32,
    },
    /// `elector handover` on this host.
    LocalHandover(Target),
    /// An operator writes a handover request key.
    RequestedHandover(Target),
    /// An operator excludes us (`elector exclude`) and includes us again this long after.
    Excluded {
        ms: u32,
    },
    Shutdown,
}

/// One randomized run.
#[derive(Clone, Debug)]
pub(super) struct Scenario {
    /// Which timing configuration (see [`timing`]).
    pub profile: u8,
    pub seed: u64,
    pub node_starts_active: bool,
    /// Candidates that exist before ours.
    pub others_ahead: u8,
    pub node_fail_pct: u8,
    pub etcd_fail_pct: u8,
    pub probe_flake_pct: u8,
    /// Longest node answer, as a percentage of `node_timeout`.
    pub node_latency_pct: u8,
    /// Longest etcd answer, as a percentage of `etcd_request_timeout`.
    pub etcd_latency_pct: u8,
    /// Longest delay of a watch notification.
    pub watch_lag_ms: u32,
    /// etcd grants 5 s more than asked.
    pub bigger_ttl: bool,
    /// Chance that one run of the fence fails (does nothing and says so); 100: no fence.
    pub fence_fail_pct: u8,
    pub happenings: Vec<(u32, Happening)>,
    pub duration_ms: u32,
}

impl Scenario {
    /// Key custody is on in half the runs (drawn from the seed, so that the scenarios the
    /// planted-bug searches try stay the same).
    pub(super) fn key_custody(&self) -> bool {
        self.seed.is_multiple_of(2)
    }
}

/// The timing configurations runs are drawn from; all pass [`Timing::validate`].
pub(super) fn timing(profile: u8) -> Timing {
    let mut t = match profile % 3 {
        0 => Timing::default(),
        // The fast profile: a 7 s lease.
        1 => Timing::fast_profile(),
        // Defaults with the smallest safety margin the inequalities allow.
        _ => Timing {
            safety_margin: Duration::from_millis(951),
            ..Timing::default()
        },
    };
    t.activation_delay = t.minimum_activation_delay();
    t.validate().expect("test profiles are valid");
    t
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        Just(Target::NextInLine),
        Just(Target::Us),
        any::<u8>().prop_map(Target::Other),
        Just(Target::Nobody),
    ]
}

fn happening() -> impl Strategy<Value = Happening> {
    prop_oneof![
        3 => (500..15_000u32).prop_map(|ms| Happening::EtcdOutage { ms }),
        3 => (1..12u8).prop_map(|count| Happening::KeepAliveLoss { count }),
        3 => Just(Happening::OtherJoins),
        3 => (any::<u8>(), any::<bool>()).prop_map(|(pick, clean)| Happening::OtherLeaves { pick, clean }),
        2 => (0..3_000u32).prop_map(|gap_ms| Happening::LeaderChurn { gap_ms }),
        2 => (500..8_000u32).prop_map(|ms| Happening::Unready { ms }),
        1 => any::<bool>().prop_map(|active| Happening::NodeRestarts { active }),
        1 => (1_000..20_000u32).prop_map(|ms| Happening::NodeHangs { ms }),
        1 => (1_000..40_000u32).prop_map(|ms| Happening::AdminBroken { ms }),
        1 => (1_000..40_000u32).prop_map(|ms| Happening::NodeDies { ms }),
        1 => (1_000..40_000u32).prop_map(|ms| Happening::ActivationRefused { ms }),
        2 => target().prop_map(Happening::LocalHandover),
        2 => target().prop_map(Happening::RequestedHandover),
        2 => (500..20_000u32).prop_map(|ms| Happening::Excluded { ms }),
        1 => Just(Happening::Shutdown),
    ]
}

pub(super) fn scenario() -> impl Strategy<Value = Scenario> {
    (
        (
            0..3u8,
            any::<u64>(),
            prop::bool::weighted(0.2),
            0..3u8,
            prop_oneof![Just(0u8), 1..15u8],
            prop_oneof![Just(0u8), 1..15u8],
            prop_oneof![Just(0u8), 1..30u8],
        ),
        (
            1..=100u8,
            1..=100u8,
            prop_oneof![1..50u32, 50..3_000u32],
            prop::bool::weighted(0.2),
            prop::collection::vec((0..60_000u32, happening()), 0..14),
            30_000..90_000u32,
            prop_oneof![3 => Just(0u8), 1 => Just(50u8), 1 => Just(100u8)],
        ),
    )
        .prop_map(
            |(
                (profile, seed, node_starts_active, others_ahead, node_fail, etcd_fail, flake),
                (
                    node_lat,
                    etcd_lat,
                    watch_lag_ms,
                    bigger_ttl,
                    mut happenings,
                    duration_ms,
                    fence_fail_pct,
                ),
            )| {
                happenings.sort_by_key(|(at, _)| *at);
                Scenario {
                    profile,
                    seed,
                    node_starts_active,
                    others_ahead,
                    node_fail_pct: node_fail,
                    etcd_fail_pct: etcd_fail,
                    probe_flake_pct: flake,
                    node_latency_pct: node_lat,
                    etcd_latency_pct: etcd_lat,
                    watch_lag_ms,
                    bigger_ttl,
                    fence_fail_pct,
                    happenings,
                    duration_ms,
                }
            },
        )
}

//! The elector timings the simulation and the real-world tests run, each defined once as a
//! core [`Timing`]. The stand-in nodes' consensus round (2.5 s slots) stays within every
//! profile's drain bound.

use elector_core::Timing;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimingProfile {
    /// The defaults of `elector --help`: 10 s lease, 5.1 s drain bound (iotex-core's consensus
    /// tail with 2.5 s slots), 13.7 s activation delay (rule
    /// `activation_delay_covers_early_revocation`; the dead-leader bound is 10.3 s).
    Default,
    /// The fast profile of docs/safety.md (`Timing::fast_profile`, what the deploy files' fast
    /// drop-in sets) for a low-latency etcd: a 7 s lease, the shortest the 5.1 s drain allows,
    /// a 2 s restart bound, 10.6 s activation delay (dead-leader bound 9.29 s).
    Fast,
    /// The fast profile with a supervisor that commands standby within 1 s and the activation
    /// delay that allows (its own minimum, 9.6 s; the dead-leader bound is 8.28 s): the
    /// shortest activation gate the inequalities allow, so the simulation sees a leader
    /// activate as early as the rules let it.
    QuickRestart,
    /// The defaults with a 20 s lease and the activation delay that allows (23.8 s), for the
    /// planted bug `short-activation-delay`: a leader that etcd's early revocation catches cut
    /// off keeps its node active until its own step-down deadline, 13.3 s after its last
    /// acknowledged keep-alive; with a 20 s lease that is far beyond the dead-leader bound
    /// (10.3 s), so a gate that waits only that shows at once. With the default 10 s lease the
    /// two bounds lie 3.4 s apart, but iotex-core's drain is rarely near its 5.1 s bound
    /// (usually within one 2.5 s slot), which eats the difference.
    LongLease,
    /// The functional tests' profile: quick-restart's 1 s restart bound with quicker probes and
    /// node checks (a test sees a turned-unready node in a fraction of a second), a 600 ms
    /// safety margin (room for a loaded 2-core runner), a 10 s handover timeout and the
    /// default node-lost bound: TTL 7 s, activation delay 9.6 s. The restart bound leaves no
    /// room for a bare run's own watcher: its electors run with `--no-watcher`, standing for
    /// supervised ones.
    Functional,
}

impl TimingProfile {
    /// Every profile, in the order the docs list them.
    pub const ALL: [TimingProfile; 5] = [
        TimingProfile::Default,
        TimingProfile::Fast,
        TimingProfile::QuickRestart,
        TimingProfile::LongLease,
        TimingProfile::Functional,
    ];

    /// The profile [`TimingProfile::name`] spells `name`.
    pub fn from_name(name: &str) -> Option<TimingProfile> {
        TimingProfile::ALL.into_iter().find(|p| p.name() == name)
    }

    /// As `--profile` of the simulation spells it.
    pub fn name(self) -> &'static str {
        match self {
            TimingProfile::Default => "default",
            TimingProfile::Fast => "fast",
            TimingProfile::QuickRestart => "quick-restart",
            TimingProfile::LongLease => "long-lease",
            TimingProfile::Functional => "functional",
        }
    }

    /// The core's timing of this profile, with the activation delay the elector derives.
    pub fn timing(self) -> Timing {
        let mut timing = match self {
            TimingProfile::Default => return Timing::default(),
            TimingProfile::Fast => return Timing::fast_profile(),
            TimingProfile::QuickRestart => Timing {
                restart_bound: Duration::from_secs(1),
                ..Timing::fast_profile()
            },
            TimingProfile::LongLease => Timing {
                lease_ttl: Duration::from_secs(20),
                ..Timing::default()
            },
            TimingProfile::Functional => Timing {
                safety_margin: Duration::from_millis(600),
                restart_bound: Duration::from_secs(1),
                probe_interval: Duration::from_millis(200),
                node_check_interval: Duration::from_millis(300),
                handover_timeout: Duration::from_secs(10),
                node_lost_after: Timing::default().node_lost_after,
                ..Timing::fast_profile()
            },
        };
        timing.activation_delay = timing.minimum_activation_delay();
        timing
    }
}

#[cfg(test)]
mod tests {
    use super::TimingProfile as P;

    #[test]
    fn every_profile_is_safe() {
        for profile in P::ALL {
            assert_eq!(P::from_name(profile.name()), Some(profile));
            let timing = profile.timing();
            timing
                .validate()
                .unwrap_or_else(|e| panic!("{profile:?}: {e}"));
        }
    }

    #[test]
    fn the_functional_profile_keeps_the_fast_lease() {
        let timing = P::Functional.timing();
        assert_eq!(timing.lease_ttl, P::Fast.timing().lease_ttl);
        assert_eq!(timing.restart_bound, P::QuickRestart.timing().restart_bound);
    }
}

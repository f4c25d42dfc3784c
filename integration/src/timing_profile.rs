//! The elector timing profiles the host-process fixtures run, defined once as core
//! [`Timing`]s, and [`timing_flags`]: a `Timing` as the `elector` command line that gives it
//! back (the inverse of the CLI's parser, checked by the tests below with that parser).

use elector_core::Timing;
use std::time::Duration;

/// A timing for the electors and the consensus round of their stand-in nodes, which must stay
/// within the timing's drain bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimingProfile {
    /// The elector's defaults: TTL 10 s, drain bound 5.1 s, activation delay 13.7 s; 2.5 s
    /// slots.
    Default,
    /// The fast profile of docs/safety.md for a low-latency etcd (what the deploy files' fast
    /// drop-in sets): TTL 7 s, activation delay 10.6 s; 2.5 s slots.
    Fast,
    /// The functional tests' profile: the fast profile with quicker probes and node checks (a
    /// test sees a turned-unready node in a fraction of a second), a 1 s restart bound, a
    /// 600 ms safety margin (room for a loaded 2-core runner), a 10 s handover timeout and
    /// the default node-lost bound: TTL 7 s, activation delay 9.6 s; 2.5 s slots. The
    /// restart bound leaves no room for a bare run's own watcher: its electors run with
    /// `--no-watcher`, standing for supervised ones.
    Functional,
}

impl TimingProfile {
    /// The core's timing of this profile, with the activation delay the elector derives.
    pub fn timing(self) -> Timing {
        match self {
            TimingProfile::Default => Timing::default(),
            TimingProfile::Fast => Timing::fast_profile(),
            TimingProfile::Functional => {
                let mut timing = Timing {
                    safety_margin: Duration::from_millis(600),
                    restart_bound: Duration::from_secs(1),
                    probe_interval: Duration::from_millis(200),
                    node_check_interval: Duration::from_millis(300),
                    handover_timeout: Duration::from_secs(10),
                    node_lost_after: Timing::default().node_lost_after,
                    ..Timing::fast_profile()
                };
                timing.activation_delay = timing.minimum_activation_delay();
                timing
            }
        }
    }

    /// The elector flags of this profile ([`timing_flags`] of [`TimingProfile::timing`]).
    pub fn flags(self) -> Vec<String> {
        timing_flags(&self.timing())
    }
}

/// `timing` as `elector` flags (`--ttl=3s`, ...), one argument each, that the CLI parses back
/// into `timing`. `--activation-delay` is left out when it is the one the elector derives
/// itself, so that a profile stays correct when the derivation changes.
pub fn timing_flags(timing: &Timing) -> Vec<String> {
    let flag = |name: &str, value: &dyn std::fmt::Display| format!("--{name}={value}");
    let duration = humantime::format_duration;
    let mut flags = vec![
        flag("ttl", &duration(timing.lease_ttl)),
        flag("keepalive-interval", &duration(timing.keepalive_interval)),
        flag("etcd-timeout", &duration(timing.etcd_request_timeout)),
        flag("drain-bound", &duration(timing.drain_bound)),
        flag("max-clock-drift", &timing.max_clock_drift),
        flag("safety-margin", &duration(timing.safety_margin)),
        flag("node-timeout", &duration(timing.node_timeout)),
        flag("node-check-interval", &duration(timing.node_check_interval)),
        flag(
            "confirm-poll-interval",
            &duration(timing.confirm_poll_interval),
        ),
        flag("probe-interval", &duration(timing.probe_interval)),
        flag("unready-threshold", &timing.unready_threshold),
        flag("restart-bound", &duration(timing.restart_bound)),
        flag("handover-timeout", &duration(timing.handover_timeout)),
        flag("node-lost-after", &duration(timing.node_lost_after)),
        flag("block-interval", &duration(timing.block_interval)),
    ];
    if timing.activation_delay != timing.minimum_activation_delay() {
        flags.push(flag("activation-delay", &duration(timing.activation_delay)));
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::{TimingProfile, timing_flags};
    use elector_core::Timing;
    use std::time::Duration;

    /// The timing the `elector` CLI makes of `flags` (with the mandatory node flags).
    fn parsed(flags: Vec<String>) -> Timing {
        let line = [
            "elector",
            "--iotex-admin=http://127.0.0.1:1",
            "--iotex-probe=http://127.0.0.1:1",
            "--value=v",
        ]
        .map(str::to_owned)
        .into_iter()
        .chain(flags.iter().cloned());
        match elector::cli::parse(line) {
            elector::cli::Parsed::Run(cli) => cli.run.timing().expect("a valid timing"),
            elector::cli::Parsed::Info(text) => panic!("{flags:?} print: {text}"),
            elector::cli::Parsed::Error(line) => panic!("{flags:?} rejected: {line}"),
        }
    }

    #[test]
    fn every_profile_parses_back_to_its_timing() {
        for profile in [
            TimingProfile::Default,
            TimingProfile::Fast,
            TimingProfile::Functional,
        ] {
            assert_eq!(parsed(profile.flags()), profile.timing(), "{profile:?}");
        }
    }

    #[test]
    fn an_explicit_activation_delay_is_kept() {
        let mut timing = Timing::fast_profile();
        timing.activation_delay += Duration::from_millis(1234);
        let flags = timing_flags(&timing);
        assert!(flags.iter().any(|f| f.starts_with("--activation-delay=")));
        assert_eq!(parsed(flags), timing);
    }

    #[test]
    fn the_functional_profile_keeps_the_fast_lease() {
        let timing = TimingProfile::Functional.timing();
        assert_eq!(timing.lease_ttl, Timing::fast_profile().lease_ttl);
        assert_eq!(timing.probe_interval, Duration::from_millis(200));
        timing.validate().expect("the functional profile is safe");
    }
}

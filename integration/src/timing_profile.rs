//! The timing profiles (defined once, in `elector_model`) as the `elector` command line:
//! [`timing_flags`] gives back a `Timing` (the inverse of the CLI's parser, checked by the
//! tests below with that parser).

pub use elector_model::timing_profile::TimingProfile;

use elector_core::Timing;

/// The elector flags of `profile` ([`timing_flags`] of its timing).
pub fn profile_flags(profile: TimingProfile) -> Vec<String> {
    timing_flags(&profile.timing())
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
    use super::{TimingProfile, profile_flags, timing_flags};
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
            assert_eq!(
                parsed(profile_flags(profile)),
                profile.timing(),
                "{profile:?}"
            );
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
}

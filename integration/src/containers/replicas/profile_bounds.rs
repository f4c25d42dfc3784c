//! [`ProfileBounds`]: the timing profiles as the Docker tests run them, with the bounds the
//! tests wait for, computed from the elector's own timing.

use crate::timing_profile::TimingProfile;
use std::time::Duration;

/// Slack added to every computed bound, for scheduling on two busy cores.
const SLACK: Duration = Duration::from_secs(5);
/// The elector re-reads the election at least this often, whatever its watch says
/// (`elector::etcd::OBSERVE_RECHECK_PERIOD`).
const RECHECK: Duration = elector::etcd::OBSERVE_RECHECK_PERIOD;
/// etcd revokes expired leases in a sweep every 500 ms.
const SWEEP: Duration = Duration::from_millis(500);

/// A timing profile as the container tests run it: its timing (the electors get it as flags
/// generated from it), and the bounds the tests derive from its numbers (one name per
/// meaning: [`TimingProfile`] is the profile).
#[derive(Clone, Debug)]
pub struct ProfileBounds {
    pub name: &'static str,
    /// The profile it starts from.
    pub profile: TimingProfile,
    /// The electors' timing: the profile's, unless a test changes it. Its block interval is
    /// the stand-in nodes'.
    pub timing: elector_core::Timing,
}

impl ProfileBounds {
    /// `profile` with the tests' name for it.
    fn of(name: &'static str, profile: TimingProfile) -> ProfileBounds {
        ProfileBounds {
            name,
            profile,
            timing: profile.timing(),
        }
    }

    /// The defaults (10 s lease, 13.7 s activation delay), nodes with 2.5 s slots.
    pub fn default_timing() -> ProfileBounds {
        ProfileBounds::of("default", TimingProfile::Default)
    }

    /// docs/safety.md's fast profile for a low-latency etcd (7 s lease, 10.6 s activation
    /// delay), nodes with 2.5 s slots.
    pub fn fast() -> ProfileBounds {
        ProfileBounds::of("fast", TimingProfile::Fast)
    }

    pub fn ttl(&self) -> Duration {
        self.timing.lease_ttl
    }

    /// Bound on the first activation after the electors start: a lease, a key, the
    /// activation delay (no handover record yet), plus slack.
    pub fn first_activation_bound(&self) -> Duration {
        self.timing.activation_delay + RECHECK + SLACK
    }

    /// Bound on a takeover after the leader stopped renewing: its lease runs out (TTL plus
    /// etcd's sweep), the next candidate sees it (watch, or the periodic re-read at worst) and
    /// waits the activation delay, plus slack.
    pub fn takeover_bound(&self) -> Duration {
        self.timing.lease_ttl + SWEEP + RECHECK + self.timing.activation_delay + SLACK
    }

    /// The latest lease deadline an elector can hold when its renewals stop reaching etcd at
    /// `cut`: its last acknowledged keep-alive was sent no later than `cut`, and its deadline
    /// is that send time plus TTL × (1 − drift) (docs/safety.md, `lease_deadline`). Its node
    /// must be standby by then; etcd cannot expire the lease before it.
    pub fn lease_deadline_after_cut(&self, cut: Duration) -> Duration {
        cut + self
            .timing
            .lease_ttl
            .mul_f64(1.0 - self.timing.max_clock_drift)
    }

    /// The earliest moment etcd may expire such a lease, if keep-alives went out every
    /// interval and were each answered within the request timeout: the last one it served
    /// was sent at most one keep-alive round before `cut`. For reports; the elector only
    /// promises [`Self::lease_deadline_after_cut`].
    pub fn earliest_expiry_after_cut(&self, cut: Duration) -> Duration {
        (cut + self.timing.lease_ttl)
            .saturating_sub(self.timing.keepalive_interval + self.timing.etcd_request_timeout)
    }
}

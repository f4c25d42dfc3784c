//! Timing configuration and the inequalities that make it safe.
//!
//! Every inequality here is written out, with the default numbers, in `docs/safety.md`.
//! A configuration that breaks one is refused with an error naming it; nothing is clamped.

use std::fmt;
use std::time::Duration;

/// etcd refuses to keep a lease shorter than about 1.5 x its election timeout (1 s by default)
/// and silently raises the TTL. Planning with a shorter TTL would put our deadlines before the
/// real ones, so it is refused instead.
pub const ETCD_MINIMUM_TTL: Duration = Duration::from_secs(2);

/// The longest wait between two attempts at etcd after failures, whatever the lease TTL: a
/// recovered etcd is used again within this.
pub const ETCD_RETRY_CAP: Duration = Duration::from_secs(5);

/// Above this rate difference between two clocks the host is broken, not drifting.
pub const MAX_SUPPORTED_DRIFT: f64 = 0.1;

/// The timings the elector runs on. Defaults fit a 10 s lease and a 5 s IoTeX block interval.
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    /// TTL requested for the lease. etcd may grant another; every ack carries the granted one.
    pub lease_ttl: Duration,
    /// How often a keep-alive is sent while a lease is held.
    pub keepalive_interval: Duration,
    /// Longest wait for any one etcd request; the driver abandons it then and reports failure.
    pub etcd_request_timeout: Duration,
    /// Longest time a node keeps reporting active after `activate=false` (it finishes its
    /// consensus round; a round fits in the 5 s block interval).
    pub drain_bound: Duration,
    /// Largest rate difference between this host's clock and etcd's (0.01 = 1 %).
    pub max_clock_drift: f64,
    /// Slack between "node certainly drained" and "lease may expire": covers the standby command
    /// and its confirming read.
    pub safety_margin: Duration,
    /// Longest wait for one call to the node's admin or probe endpoint.
    pub node_timeout: Duration,
    /// How often the node's mode is read to reconcile it with the role.
    pub node_check_interval: Duration,
    /// How often the mode is re-read while a standby is not yet confirmed.
    pub confirm_poll_interval: Duration,
    /// How often readiness is probed.
    pub probe_interval: Duration,
    /// Consecutive failed probes after which the node counts as unready.
    pub unready_threshold: u32,
    /// Documented assumption: after an elector dies or hangs, something (systemd's
    /// `ExecStopPost`, the watchdog, the restarted elector) commands its node standby within
    /// this bound.
    pub restart_bound: Duration,
    /// How long a new leader waits before activating when it cannot know that the previous
    /// leader's node was confirmed standby.
    pub activation_delay: Duration,
    /// How long a leader waits for a named handover target to become next in line.
    pub handover_timeout: Duration,
    /// A leader whose node has not been shown active by a read for this long (since it first
    /// commanded `activate=true` in its term, or since the last read that said active) counts
    /// its node as lost and gives way to another candidate (rule `give_way_when_node_lost`).
    pub node_lost_after: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        let mut timing = Timing {
            lease_ttl: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(1),
            etcd_request_timeout: Duration::from_secs(1),
            drain_bound: Duration::from_secs(5),
            max_clock_drift: 0.01,
            safety_margin: Duration::from_millis(1500),
            node_timeout: Duration::from_millis(300),
            node_check_interval: Duration::from_secs(1),
            confirm_poll_interval: Duration::from_millis(200),
            probe_interval: Duration::from_secs(1),
            unready_threshold: 3,
            restart_bound: Duration::from_secs(3),
            activation_delay: Duration::ZERO,
            handover_timeout: Duration::from_secs(30),
            node_lost_after: Duration::from_secs(10),
        };
        timing.activation_delay = timing.minimum_activation_delay();
        timing
    }
}

impl Timing {
    /// The 3 s lease profile of docs/safety.md, for nodes that drain within 700 ms: the same
    /// inequalities as the defaults, every interval scaled to the faster drain (failover in
    /// about 6 s). `TimingProfile::Fast` in `elector-integration` turns it into flags.
    pub fn fast_profile() -> Timing {
        let mut timing = Timing {
            lease_ttl: Duration::from_secs(3),
            keepalive_interval: Duration::from_millis(300),
            etcd_request_timeout: Duration::from_millis(300),
            drain_bound: Duration::from_millis(700),
            safety_margin: Duration::from_millis(500),
            node_timeout: Duration::from_millis(150),
            confirm_poll_interval: Duration::from_millis(100),
            restart_bound: Duration::from_secs(2),
            node_lost_after: Duration::from_secs(5),
            ..Timing::default()
        };
        timing.activation_delay = timing.minimum_activation_delay();
        timing
    }

    /// The lease TTL as this host may count it: scaled down by the clock drift bound, so that
    /// counting it on a slow local clock still ends before etcd's lease does.
    pub fn drift_scaled(&self, ttl: Duration) -> Duration {
        ttl.mul_f64(1.0 - self.max_clock_drift)
    }

    /// Step-down lead: how long before the lease deadline the node must be commanded standby.
    /// The node drains within `drain_bound`; the margin covers the command and its confirmation.
    pub fn step_down_lead(&self) -> Duration {
        self.drain_bound + self.safety_margin
    }

    /// Room a leader needs before its step-down deadline to (re)activate: one more keep-alive
    /// round, so that a healthy lease is renewed before the deadline forces a step-down.
    pub fn activation_room(&self) -> Duration {
        self.keepalive_interval + self.etcd_request_timeout
    }

    /// Rule `activation_delay_covers_dead_leader`: after the previous leader's elector died,
    /// its node may stay active until its supervisor commands standby (`restart_bound`) and
    /// it drains (`drain_bound`), counted from the lease's expiry at the earliest; the new
    /// leader's wait, on a clock that may run fast by `max_clock_drift`, must cover that.
    pub fn dead_leader_activation_delay(&self) -> Duration {
        (self.restart_bound + self.drain_bound).mul_f64(1.0 + self.max_clock_drift)
    }

    /// Rule `activation_delay_covers_early_revocation`: etcd may end a lease before its TTL
    /// (releases before 3.4.31 and 3.5.13 revoke every lease when a stalled raft leader
    /// resumes, etcd issue #15247; an operator may revoke it by hand). A leader that is cut
    /// off at that moment cannot hear of it: its node stays active until its own deadlines
    /// demote it. Its last acknowledged keep-alive was sent at `s`, no later than the
    /// revocation (a keep-alive served after the revocation answers "not found"). It commands
    /// standby at its step-down deadline, `TTL·(1−ρ) − (drain_bound + safety_margin)` after `s`
    /// on its clock, which may run slow by ρ; the command lands within `node_timeout` and the
    /// node drains within `drain_bound`. The new leader saw the key go at or after the
    /// revocation, and waits on a clock that may run fast by ρ; its wait must cover all that.
    pub fn early_revocation_activation_delay(&self) -> Duration {
        let rho = self.max_clock_drift;
        let demoted = (self.drain_bound + self.safety_margin).saturating_sub(self.node_timeout);
        (self.lease_ttl + self.drain_bound)
            .saturating_sub(demoted.div_f64(1.0 - rho))
            .mul_f64(1.0 + rho)
    }

    /// The smallest activation delay the two inequalities allow (`activation_delay_covers_*`),
    /// rounded up to 100 ms.
    pub fn minimum_activation_delay(&self) -> Duration {
        let exact = self
            .dead_leader_activation_delay()
            .max(self.early_revocation_activation_delay());
        let step = 100u128;
        let ms = exact.as_millis().div_ceil(step) * step;
        Duration::from_millis(ms as u64)
    }

    /// Longest a shutdown may take: finish a node call in flight, demote, drain, confirm,
    /// resign (a transaction and a revocation).
    pub fn shutdown_grace(&self) -> Duration {
        self.node_timeout + self.drain_bound + self.safety_margin + 2 * self.etcd_request_timeout
    }

    /// How often a fence that failed is run again while the node is still not proven standby:
    /// one drain and confirmation span, so that a node that recovered by itself is seen first.
    pub fn fence_retry_interval(&self) -> Duration {
        self.step_down_lead()
    }

    /// The longest wait between two attempts at etcd after failures (the campaign's retries,
    /// the observer's, the connect loop's): [`ETCD_RETRY_CAP`], but no more than a quarter of
    /// the lease TTL, so that after an outage a replica is back in the election well within
    /// one lease (10 s lease: 2.5 s; 3 s lease: 750 ms, not 5 s).
    pub fn etcd_retry_max(&self) -> Duration {
        ETCD_RETRY_CAP.min(self.lease_ttl / 4)
    }

    /// How soon a keep-alive that failed is sent again: every missed round brings the
    /// step-down deadline closer.
    pub fn keepalive_retry_interval(&self) -> Duration {
        self.keepalive_interval / 4
    }

    /// HTTP/2 ping interval of etcd connections: a connection with a stream open that has read
    /// nothing for this long is pinged. One keep-alive interval, so that a connection silently
    /// dead (its member's host vanished, packets dropped without a reset) is noticed about when
    /// the keep-alive sent over it times out, not 10 s later. Healthy connections carrying our
    /// keep-alives and watch answer more often than this, so pings are rare; etcd does not count
    /// a ping that follows data it sent against its `--grpc-keepalive-min-time`.
    pub fn etcd_ping_interval(&self) -> Duration {
        self.keepalive_interval
    }

    /// How long an HTTP/2 ping may go unanswered before its connection is closed (and the
    /// channel reconnects or balances to another endpoint): one request timeout, the same
    /// patience as for any call.
    pub fn etcd_ping_timeout(&self) -> Duration {
        self.etcd_request_timeout
    }

    /// How long after its last answer a silently dead etcd connection is closed by its pings.
    pub fn dead_connection_bound(&self) -> Duration {
        self.etcd_ping_interval() + self.etcd_ping_timeout()
    }

    /// The shortest `node_lost_after` allowed: three node-check rounds, each with a slow
    /// answer, so that one or two failed reads never move leadership.
    pub fn minimum_node_lost_after(&self) -> Duration {
        3 * (self.node_check_interval + self.node_timeout)
    }

    /// Checks every inequality of `docs/safety.md`. The error names the first one violated.
    pub fn validate(&self) -> Result<(), TimingError> {
        let fail =
            |inequality: &'static str, detail: String| Err(TimingError { inequality, detail });
        let positive = [
            ("keepalive_interval", self.keepalive_interval),
            ("etcd_request_timeout", self.etcd_request_timeout),
            ("node_timeout", self.node_timeout),
            ("node_check_interval", self.node_check_interval),
            ("confirm_poll_interval", self.confirm_poll_interval),
            ("probe_interval", self.probe_interval),
        ];
        for (name, value) in positive {
            if value.is_zero() {
                return fail(
                    "positive_intervals",
                    format!("{name} must be greater than 0"),
                );
            }
        }
        if self.unready_threshold == 0 {
            return fail(
                "positive_intervals",
                "unready_threshold must be at least 1".into(),
            );
        }
        if !(0.0..MAX_SUPPORTED_DRIFT).contains(&self.max_clock_drift) {
            return fail(
                "drift_bound",
                format!(
                    "max_clock_drift {} must be in [0, {MAX_SUPPORTED_DRIFT})",
                    self.max_clock_drift
                ),
            );
        }
        if self.lease_ttl < ETCD_MINIMUM_TTL {
            return fail(
                "etcd_minimum_ttl",
                format!(
                    "lease_ttl {} < etcd's minimum TTL {}",
                    secs(self.lease_ttl),
                    secs(ETCD_MINIMUM_TTL)
                ),
            );
        }
        // The standby command and a confirming read each take up to node_timeout, reads repeat
        // every confirm_poll_interval, and the drain itself is measured on a drifting clock.
        // The last read that still sees the node active may be served just before the drain
        // ends and answered a full node_timeout later; the next read starts only then. So reads
        // repeat every max(confirm_poll_interval, node_timeout), not every
        // confirm_poll_interval (with defaults that would allow 0.85 s, too little: a fence
        // against a node within its bounds).
        let confirm_cost = 2 * self.node_timeout
            + self.confirm_poll_interval.max(self.node_timeout)
            + self.drain_bound.mul_f64(self.max_clock_drift);
        if self.safety_margin < confirm_cost {
            return fail(
                "margin_covers_standby_confirmation",
                format!(
                    "safety_margin {} < 2 x node_timeout + max(confirm_poll_interval, node_timeout) + drain_bound x max_clock_drift = {}",
                    secs(self.safety_margin),
                    secs(confirm_cost)
                ),
            );
        }
        if self.activation_room() < self.node_timeout {
            return fail(
                "activation_room_covers_node_call",
                format!(
                    "keepalive_interval + etcd_request_timeout {} < node_timeout {}",
                    secs(self.activation_room()),
                    secs(self.node_timeout)
                ),
            );
        }
        let scaled_ttl = self.drift_scaled(self.lease_ttl);
        let window = scaled_ttl.saturating_sub(self.step_down_lead());
        let needed = self.etcd_request_timeout + self.activation_room();
        if window <= needed {
            return fail(
                "renewal_window",
                format!(
                    "lease_ttl x (1 - max_clock_drift) - drain_bound - safety_margin = {} must exceed \
                     etcd_request_timeout + keepalive_interval + etcd_request_timeout = {}",
                    secs(window),
                    secs(needed)
                ),
            );
        }
        // A leader whose connection died silently right after its last acknowledged keep-alive
        // closes it by its pings, retries the keep-alive over another connection and is
        // answered before it must step down: it rides through the loss of one etcd member.
        let replaced = self.dead_connection_bound()
            + self.keepalive_retry_interval()
            + self.etcd_request_timeout;
        if window <= replaced {
            return fail(
                "dead_connection_replaced",
                format!(
                    "lease_ttl x (1 - max_clock_drift) - drain_bound - safety_margin = {} must exceed \
                     ping interval (keepalive_interval) + ping timeout (etcd_request_timeout) + \
                     keepalive_interval / 4 + etcd_request_timeout = {}",
                    secs(window),
                    secs(replaced)
                ),
            );
        }
        if self.node_lost_after < self.minimum_node_lost_after() {
            return fail(
                "node_lost_spans_reads",
                format!(
                    "node_lost_after {} < 3 x (node_check_interval + node_timeout) = {}",
                    secs(self.node_lost_after),
                    secs(self.minimum_node_lost_after())
                ),
            );
        }
        let min_delay = self.dead_leader_activation_delay();
        if self.activation_delay < min_delay {
            return fail(
                "activation_delay_covers_dead_leader",
                format!(
                    "activation_delay {} < (restart_bound + drain_bound) x (1 + max_clock_drift) = {}",
                    secs(self.activation_delay),
                    secs(min_delay)
                ),
            );
        }
        let min_delay = self.early_revocation_activation_delay();
        if self.activation_delay < min_delay {
            return fail(
                "activation_delay_covers_early_revocation",
                format!(
                    "activation_delay {} < (lease_ttl + drain_bound - (drain_bound + \
                     safety_margin - node_timeout) / (1 - max_clock_drift)) x (1 + \
                     max_clock_drift) = {}",
                    secs(self.activation_delay),
                    secs(min_delay)
                ),
            );
        }
        Ok(())
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// A timing configuration that breaks one of the safety inequalities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimingError {
    /// The name of the inequality, as in `docs/safety.md`.
    pub inequality: &'static str,
    /// The numbers that break it.
    pub detail: String,
}

impl fmt::Display for TimingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unsafe timing ({}): {} (see docs/safety.md)",
            self.inequality, self.detail
        )
    }
}

impl std::error::Error for TimingError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(timing: Timing) -> &'static str {
        timing.validate().expect_err("must be rejected").inequality
    }

    #[test]
    fn defaults_are_safe() {
        Timing::default().validate().expect("defaults must pass");
        assert_eq!(
            Timing::default().activation_delay,
            Duration::from_millis(8900)
        );
    }

    #[test]
    fn rejects_zero_intervals() {
        let t = Timing {
            probe_interval: Duration::ZERO,
            ..Timing::default()
        };
        assert_eq!(rejected(t), "positive_intervals");
        let t = Timing {
            unready_threshold: 0,
            ..Timing::default()
        };
        assert_eq!(rejected(t), "positive_intervals");
    }

    #[test]
    fn rejects_drift_out_of_range() {
        for drift in [-0.01, 0.1, 0.5, f64::NAN] {
            let t = Timing {
                max_clock_drift: drift,
                ..Timing::default()
            };
            assert_eq!(rejected(t), "drift_bound", "drift {drift}");
        }
    }

    #[test]
    fn rejects_ttl_below_etcd_minimum() {
        let t = Timing {
            lease_ttl: Duration::from_millis(1500),
            ..Timing::default()
        };
        assert_eq!(rejected(t), "etcd_minimum_ttl");
    }

    #[test]
    fn rejects_margin_smaller_than_confirmation() {
        let t = Timing {
            safety_margin: Duration::from_millis(700),
            ..Timing::default()
        };
        let err = t.validate().unwrap_err();
        assert_eq!(err.inequality, "margin_covers_standby_confirmation");
        assert!(err.to_string().contains("safety_margin 0.700s"), "{err}");
    }

    #[test]
    fn rejects_activation_room_smaller_than_node_call() {
        let t = Timing {
            keepalive_interval: Duration::from_millis(100),
            etcd_request_timeout: Duration::from_millis(100),
            node_timeout: Duration::from_millis(300),
            ..Timing::default()
        };
        assert_eq!(rejected(t), "activation_room_covers_node_call");
    }

    #[test]
    fn rejects_pings_too_slow_to_replace_a_dead_connection_before_step_down() {
        // Renewal fits (1 + 1.2 + 1 = 3.2 s < 3.4 s), but a connection dead since the last ack
        // is closed after 1.2 + 1 s, and the retried keep-alive needs 0.3 + 1 s more.
        let t = Timing {
            keepalive_interval: Duration::from_millis(1200),
            ..Timing::default()
        };
        assert_eq!(rejected(t), "dead_connection_replaced");
    }

    #[test]
    fn pings_and_retry_caps_follow_the_lease_timing() {
        let default = Timing::default();
        assert_eq!(default.etcd_ping_interval(), Duration::from_secs(1));
        assert_eq!(default.dead_connection_bound(), Duration::from_secs(2));
        assert_eq!(default.etcd_retry_max(), Duration::from_millis(2500));
        let fast = Timing::fast_profile();
        assert_eq!(fast.dead_connection_bound(), Duration::from_millis(600));
        assert_eq!(fast.etcd_retry_max(), Duration::from_millis(750));
        let long = Timing {
            lease_ttl: Duration::from_secs(60),
            ..Timing::default()
        };
        assert_eq!(long.etcd_retry_max(), ETCD_RETRY_CAP);
    }

    #[test]
    fn rejects_ttl_without_renewal_window() {
        let t = Timing {
            lease_ttl: Duration::from_secs(9),
            ..Timing::default()
        };
        assert_eq!(rejected(t), "renewal_window");
        let t = Timing {
            drain_bound: Duration::from_secs(7),
            ..Timing::default()
        };
        assert_eq!(rejected(t), "renewal_window");
    }

    #[test]
    fn rejects_short_activation_delay() {
        let t = Timing {
            activation_delay: Duration::from_secs(8),
            ..Timing::default()
        };
        assert_eq!(rejected(t), "activation_delay_covers_dead_leader");
        // The old default, 8.1 s, covers a dead leader but not a lease etcd revoked early.
        let t = Timing {
            activation_delay: Duration::from_millis(8100),
            ..Timing::default()
        };
        assert_eq!(rejected(t), "activation_delay_covers_early_revocation");
    }

    #[test]
    fn early_revocation_bound_is_the_documented_number() {
        // (10 + 5 - (5 + 1.5 - 0.3) / 0.99) x 1.01 = 8.825 s with the defaults; the 3 s
        // profile's (3 + 0.7 - 1.05 / 0.99) x 1.01 = 2.666 s is below its dead-leader bound.
        let default = Timing::default().early_revocation_activation_delay();
        assert!((default.as_secs_f64() - 8.8248).abs() < 1e-3, "{default:?}");
        let fast = Timing::fast_profile();
        assert!((fast.early_revocation_activation_delay().as_secs_f64() - 2.6658).abs() < 1e-3);
        assert_eq!(fast.activation_delay, Duration::from_millis(2800));
    }

    #[test]
    fn rejects_node_lost_after_shorter_than_three_reads() {
        let t = Timing {
            node_lost_after: Duration::from_millis(3800),
            ..Timing::default()
        };
        assert_eq!(rejected(t), "node_lost_spans_reads");
        let t = Timing {
            node_lost_after: Duration::from_millis(3900),
            ..Timing::default()
        };
        t.validate().expect("3 x (1 s + 300 ms) is enough");
    }

    #[test]
    fn short_ttl_is_possible_with_fast_nodes() {
        // A 3 s lease is safe when the node drains within 1 s.
        Timing::fast_profile()
            .validate()
            .expect("fast profile is safe");
    }
}

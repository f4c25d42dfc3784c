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

/// The timings the elector runs on. Defaults fit a 10 s lease and mainnet's consensus since the
/// Wake upgrade (2.5 s slots).
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    /// TTL requested for the lease. etcd may grant another; every ack carries the granted one.
    pub lease_ttl: Duration,
    /// How often a keep-alive is sent while a lease is held.
    pub keepalive_interval: Duration,
    /// Longest wait for any one etcd request; the driver abandons it then and reports failure.
    pub etcd_request_timeout: Duration,
    /// Longest time after `activate=false` reaches the node until it made its last signature
    /// and reads standby (inequality `drain_covers_consensus_tail`: iotex-core holds the
    /// command until the slot in progress starts, finishes the round in progress, and runs the
    /// prepare events queued before it).
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
    /// The chain's slot: iotex-core's block interval (2.5 s since the Wake upgrade, 5 s before).
    pub block_interval: Duration,
    /// iotex-core's `toleratedOvertime`: a node that prepares less than this into a slot signs
    /// for that slot (its height and round), else for the next one.
    pub tolerated_overtime: Duration,
    /// iotex-core's `unmatchedEventInterval`: a consensus event that matches no transition
    /// (a prepare event queued while a round runs) is retried this often.
    pub unmatched_event_interval: Duration,
    /// Largest difference between two replicas' wall clocks: their nodes place slots by them
    /// (NTP keeps it to milliseconds).
    pub max_clock_offset: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        let mut timing = Timing {
            lease_ttl: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(1),
            etcd_request_timeout: Duration::from_secs(1),
            drain_bound: Duration::ZERO,
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
            block_interval: Duration::from_millis(2500),
            tolerated_overtime: Duration::from_secs(2),
            unmatched_event_interval: Duration::from_millis(100),
            max_clock_offset: Duration::from_millis(100),
        };
        timing.drain_bound = timing.consensus_tail();
        timing.activation_delay = timing.minimum_activation_delay();
        timing
    }
}

impl Timing {
    /// The fast profile of docs/safety.md: the shortest lease the default consensus timing
    /// allows with a low-latency etcd (7 s), every etcd interval scaled down, the restart bound
    /// of `elector supervise` (2 s). `TimingProfile::Fast` in `elector-integration` turns it
    /// into flags.
    pub fn fast_profile() -> Timing {
        let mut timing = Timing {
            lease_ttl: Duration::from_secs(7),
            keepalive_interval: Duration::from_millis(300),
            etcd_request_timeout: Duration::from_millis(300),
            safety_margin: Duration::from_millis(600),
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

    /// What iotex-core still signs after `activate=false` reached it, and for how long: the
    /// command waits until the slot in progress starts (a `prepare()` sleeps until then holding
    /// the lock the command needs) or the node finishes the round in progress, within one
    /// block interval; prepare events queued before the command still run and each signs for
    /// the next slot at the latest: one more block interval, and one retry of an event that
    /// did not match (`unmatched_event_interval`). Inequality `drain_covers_consensus_tail`
    /// requires `drain_bound` to cover it.
    pub fn consensus_tail(&self) -> Duration {
        2 * self.block_interval + self.unmatched_event_interval
    }

    /// After a read of `/ha` answered `{"active":false}` at `t`, the node may still sign for a
    /// slot that starts up to this much later: no round is in progress then, and a prepare
    /// event queued before the deactivation (or retried, `unmatched_event_interval` later)
    /// signs for the next slot at the latest.
    pub fn last_slot_after_standby_read(&self) -> Duration {
        self.block_interval + self.unmatched_event_interval
    }

    /// How long after the start of a slot a replica that activates may still sign for it:
    /// its node uses a slot it prepares less than `tolerated_overtime` into, on a wall clock
    /// up to `max_clock_offset` away from the one that placed the predecessor's slots.
    pub fn slot_clearance(&self) -> Duration {
        self.tolerated_overtime + self.max_clock_offset
    }

    /// Rule `wait_out_last_slot`: after a clean handover (a handover record naming the
    /// previous leader), the successor waits until the last slot its predecessor's node may
    /// still sign for ([`Timing::last_slot_after_standby_read`], counted from the read that
    /// proved it standby, which came before the record the successor saw) is more than
    /// [`Timing::slot_clearance`] in the past, on a clock that may run fast by ρ. Then its
    /// node's first slot is later than any its predecessor's node signed: no height and round
    /// is signed twice.
    pub fn handover_delay(&self) -> Duration {
        (self.last_slot_after_standby_read() + self.slot_clearance())
            .mul_f64(1.0 + self.max_clock_drift)
    }

    /// Rule `wait_out_last_slot` after a handover whose record says the operator's key was
    /// withdrawn from the predecessor's node (key custody): once `/producer-keys` answered the
    /// withdrawal, that node signs nothing more (the update takes the lock signing takes; a
    /// proposal signed before it is for the slot that was starting), so the successor waits
    /// only [`Timing::slot_clearance`] from the record, on a clock that may run fast by ρ.
    pub fn handover_delay_after_withdrawal(&self) -> Duration {
        self.slot_clearance().mul_f64(1.0 + self.max_clock_drift)
    }

    /// How long a call to the node may take when it carries `activate=false`, or withdraws the
    /// operator's key (key custody): iotex-core holds it until the slot in progress starts (most
    /// of a block interval on an active node that prepared its next proposal), and then answers
    /// within `node_timeout`. Reads, probes, `activate=true` and the key's installation keep
    /// `node_timeout`: a timed-out one proves nothing and, if it lands later, lands in the order
    /// it was sent (the node's lock is writer-preferring).
    pub fn standby_call_timeout(&self) -> Duration {
        self.block_interval + self.node_timeout
    }

    /// Rule `activation_delay_covers_dead_leader`: after the previous leader's elector died,
    /// its node may sign until its supervisor commands standby (`restart_bound`) and it
    /// drains (`drain_bound`), counted from the lease's expiry at the earliest; the new
    /// leader's node must not use that last slot ([`Timing::slot_clearance`]); its wait, on a
    /// clock that may run fast by `max_clock_drift`, must cover that.
    pub fn dead_leader_activation_delay(&self) -> Duration {
        (self.restart_bound + self.drain_bound + self.slot_clearance())
            .mul_f64(1.0 + self.max_clock_drift)
    }

    /// Rule `activation_delay_covers_early_revocation`: etcd may end a lease before its TTL
    /// (releases before 3.4.31 and 3.5.13 revoke every lease when a stalled raft leader
    /// resumes, etcd issue #15247; an operator may revoke it by hand). A leader that is cut
    /// off at that moment cannot hear of it: its node signs until its own deadlines demote it.
    /// Its last acknowledged keep-alive was sent at `s`, no later than the revocation (a
    /// keep-alive served after the revocation answers "not found"). It commands standby at its
    /// step-down deadline, `TTL·(1−ρ) − (drain_bound + safety_margin)` after `s` on its clock,
    /// which may run slow by ρ; the command lands within `node_timeout` on that clock, or, if
    /// the leader's elector died or hung before that deadline, its supervisor sends it within
    /// `restart_bound`. The node drains within `drain_bound`, and the new leader's node must
    /// not use its last slot ([`Timing::slot_clearance`]). The new leader saw the key go at or
    /// after the revocation, and waits on a clock that may run fast by ρ.
    pub fn early_revocation_activation_delay(&self) -> Duration {
        let rho = self.max_clock_drift;
        let step_down = self
            .lease_ttl
            .saturating_sub(self.step_down_lead().div_f64(1.0 - rho));
        let commanded = self.restart_bound.max(self.node_timeout.div_f64(1.0 - rho));
        (step_down + commanded + self.drain_bound + self.slot_clearance()).mul_f64(1.0 + rho)
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
            ("block_interval", self.block_interval),
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
        if self.drain_bound < self.consensus_tail() {
            return fail(
                "drain_covers_consensus_tail",
                format!(
                    "drain_bound {} < 2 x block_interval + unmatched_event_interval = {}",
                    secs(self.drain_bound),
                    secs(self.consensus_tail())
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
                    "activation_delay {} < (restart_bound + drain_bound + tolerated_overtime + \
                     max_clock_offset) x (1 + max_clock_drift) = {}",
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
                    "activation_delay {} < (lease_ttl - (drain_bound + safety_margin) / (1 - \
                     max_clock_drift) + max(restart_bound, node_timeout / (1 - \
                     max_clock_drift)) + drain_bound + tolerated_overtime + max_clock_offset) x \
                     (1 + max_clock_drift) = {}",
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
        let timing = Timing::default();
        timing.validate().expect("defaults must pass");
        assert_eq!(timing.drain_bound, Duration::from_millis(5100));
        assert_eq!(timing.activation_delay, Duration::from_millis(13_700));
        assert_eq!(timing.standby_call_timeout(), Duration::from_millis(2800));
    }

    #[test]
    fn the_drain_must_cover_what_the_node_signs_after_the_command() {
        let t = Timing {
            drain_bound: Duration::from_secs(5),
            ..Timing::default()
        };
        let err = t.validate().unwrap_err();
        assert_eq!(err.inequality, "drain_covers_consensus_tail");
        assert!(err.to_string().contains("= 5.100s"), "{err}");
        // Before the Wake upgrade (5 s slots) the tail is 10.1 s.
        let pre_wake = Timing {
            block_interval: Duration::from_secs(5),
            ..Timing::default()
        };
        assert_eq!(pre_wake.consensus_tail(), Duration::from_millis(10_100));
        assert_eq!(rejected(pre_wake), "drain_covers_consensus_tail");
    }

    #[test]
    fn a_clean_handover_waits_out_the_predecessors_last_slot() {
        // (2.5 + 0.1 + 2 + 0.1) x 1.01 = 4.747 s with the defaults.
        let delay = Timing::default().handover_delay();
        assert!((delay.as_secs_f64() - 4.747).abs() < 1e-6, "{delay:?}");
        let pre_wake = Timing {
            block_interval: Duration::from_secs(5),
            ..Timing::default()
        };
        assert!((pre_wake.handover_delay().as_secs_f64() - 7.272).abs() < 1e-6);
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
        assert_eq!(fast.etcd_retry_max(), Duration::from_millis(1750));
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
        // The slot makes the drain: a 3 s lease cannot hold a node that signs for 5.1 s after
        // the command.
        let t = Timing {
            lease_ttl: Duration::from_secs(3),
            ..Timing::fast_profile()
        };
        assert_eq!(rejected(t), "renewal_window");
    }

    #[test]
    fn rejects_short_activation_delay() {
        let t = Timing {
            activation_delay: Duration::from_secs(10),
            ..Timing::default()
        };
        assert_eq!(rejected(t), "activation_delay_covers_dead_leader");
        // 11 s covers a dead leader but not a lease etcd revoked early while its leader was
        // cut off and then died before its step-down deadline.
        let t = Timing {
            activation_delay: Duration::from_secs(11),
            ..Timing::default()
        };
        assert_eq!(rejected(t), "activation_delay_covers_early_revocation");
    }

    #[test]
    fn activation_delay_bounds_are_the_documented_numbers() {
        // Dead leader: (3 + 5.1 + 2 + 0.1) x 1.01 = 10.302 s. Early revocation:
        // (10 - 6.6 / 0.99 + max(3, 0.3 / 0.99) + 5.1 + 2.1) x 1.01 = 13.669 s.
        let default = Timing::default();
        let dead = default.dead_leader_activation_delay().as_secs_f64();
        assert!((dead - 10.302).abs() < 1e-6, "{dead}");
        let early = default.early_revocation_activation_delay().as_secs_f64();
        assert!((early - 13.668_667).abs() < 1e-3, "{early}");
        // Fast profile: (2 + 5.1 + 2.1) x 1.01 = 9.292 s and
        // (7 - 5.7 / 0.99 + 2 + 5.1 + 2.1) x 1.01 = 10.547 s.
        let fast = Timing::fast_profile();
        assert!((fast.dead_leader_activation_delay().as_secs_f64() - 9.292).abs() < 1e-6);
        assert!((fast.early_revocation_activation_delay().as_secs_f64() - 10.5469).abs() < 1e-3);
        assert_eq!(fast.activation_delay, Duration::from_millis(10_600));
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
    fn the_fast_profile_is_safe() {
        Timing::fast_profile()
            .validate()
            .expect("fast profile is safe");
    }
}

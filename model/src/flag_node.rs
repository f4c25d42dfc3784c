//! The earlier, simpler model of the node (a mode flag with a drain tail), kept only until the
//! simulation and the stand-in serve [`crate::node`]: the admin endpoint `/ha` and the
//! probe server. No I/O and no clock: every call that depends on time takes `now`, the time
//! since an epoch chosen by the caller (the simulation's clock, or a stand-in server's start).
//!
//! The rules, from `iotex-core` (`pkg/ha/ha.go`, `pkg/probe/probe.go`, `config/config.go`):
//! - `/ha?activate=true` activates, `/ha?activate=false` deactivates; both answer 200 with an
//!   empty body. The value is lower-cased first, so `TRUE` works too.
//! - `/ha` without the parameter (or with an empty value) is the only read: 200 with
//!   `{"active":true}\n` or `{"active":false}\n`.
//! - Any other value (`1`, `yes`) does nothing and still answers 200 with an empty body: the
//!   node never reports bad input.
//! - A read reports `ctx.active || fsm state != Init`: after `activate=false` an active node
//!   finishes the consensus round it is in, and reads say `true` until that round ends. This
//!   model takes rounds to be fixed windows `[k * round, (k + 1) * round)` since the epoch, and
//!   an active node to be always inside one; so deactivating at `t` leaves a *tail* of active
//!   reads up to the end of `t`'s window. A `round` of zero means no tail.
//! - `/liveness` always answers 200 `OK`; `/readiness` and `/health` answer 503 `FAIL` until
//!   the node is ready and 200 `OK` once it is.
//!
//! On top of the node's own behaviour the model can inject faults into `/ha`
//! ([`AdminFault`]) and make the node refuse activation ([`NodeModel::set_refuse_activation`]:
//! `activate=true` answers 500 and does nothing, while reads and `activate=false` still work),
//! and it records every change of the mode a read would report, so that a simulation can check
//! that two replicas were never active at once.

use std::time::Duration;

/// One HTTP answer: status code and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    fn new(status: u16, body: impl Into<String>) -> Self {
        Reply {
            status,
            body: body.into(),
        }
    }
}

/// What the admin endpoint does with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HaReply {
    /// Send this answer.
    Answer(Reply),
    /// Never answer (the [`AdminFault::Hang`] fault). A server keeps the connection open and
    /// silent; the request had no effect.
    Hang,
}

/// A fault injected into the admin endpoint `/ha`. Under any fault a request has **no effect**
/// on the mode: the node never got to handle it. Probes are not affected.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum AdminFault {
    /// The node's own behaviour.
    #[default]
    None,
    /// Answer 500 to every request.
    Status500,
    /// Answer 200 with a body that is not the node's JSON (see [`GARBAGE_BODY`]).
    GarbageBody,
    /// Never answer.
    Hang,
}

impl AdminFault {
    /// The name used by the stand-in's control endpoint: `none`, `500`, `garbage`, `hang`.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminFault::None => "none",
            AdminFault::Status500 => "500",
            AdminFault::GarbageBody => "garbage",
            AdminFault::Hang => "hang",
        }
    }

    /// The inverse of [`AdminFault::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "none" => Some(AdminFault::None),
            "500" => Some(AdminFault::Status500),
            "garbage" => Some(AdminFault::GarbageBody),
            "hang" => Some(AdminFault::Hang),
            _ => None,
        }
    }
}

/// The body answered under [`AdminFault::GarbageBody`]. It is not JSON (the object is never
/// closed) yet contains `"active":false`, so a client that looks for substrings instead of
/// parsing would wrongly conclude that the node is standby: the dangerous misreading.
pub const GARBAGE_BODY: &str = "{\"active\":false <html>502 Bad Gateway</html>\n";

/// One change of the reported mode: when, and the mode from then on.
pub type Transition = (Duration, bool);

/// The node: its mode, its readiness, its configuration and the faults injected into it.
///
/// Time must not go backwards between calls; an earlier `now` is taken as the latest time seen.
#[derive(Clone, Debug)]
pub struct NodeModel {
    /// Length of a consensus round; rounds are aligned to multiples of it since the epoch.
    round: Duration,
    /// `ctx.active`: what `/ha?activate=` last set (or the start mode).
    active: bool,
    /// When the consensus round the node is finishing after a deactivation ends; only set
    /// while `active` is false. Until then reads still say `true`.
    tail_end: Option<Duration>,
    ready: bool,
    /// The mode the node (re)started in: `system.active` of its configuration.
    start_active: bool,
    fault: AdminFault,
    /// `activate=true` answers 500 without effect (a node that cannot take the active role).
    refuse_activation: bool,
    /// The latest `now` seen by a call that changes state.
    last_now: Duration,
    /// Every change of the reported mode, except a due tail end not yet settled (see
    /// [`NodeModel::mode_history`]). The first entry is the start mode at the epoch.
    history: Vec<Transition>,
}

impl NodeModel {
    /// A node started at the epoch in `start_active` mode (the real default is `true`; a
    /// standby replica is configured `false`), not ready, with no fault, and consensus rounds
    /// of length `round` (5 s on mainnet; zero for no tail).
    pub fn new(start_active: bool, round: Duration) -> Self {
        NodeModel {
            round,
            active: start_active,
            tail_end: None,
            ready: false,
            start_active,
            fault: AdminFault::None,
            refuse_activation: false,
            last_now: Duration::ZERO,
            history: vec![(Duration::ZERO, start_active)],
        }
    }

    /// The length of a consensus round.
    pub fn round(&self) -> Duration {
        self.round
    }

    /// Handles one request to `/ha`. `activate` is the decoded value of the first `activate`
    /// query parameter, or `None` when there is none; the model lower-cases it, like the node.
    pub fn handle_ha(&mut self, now: Duration, activate: Option<&str>) -> HaReply {
        let now = self.settle(now);
        match self.fault {
            AdminFault::None => {}
            AdminFault::Status500 => {
                return HaReply::Answer(Reply::new(500, "internal server error\n"));
            }
            AdminFault::GarbageBody => return HaReply::Answer(Reply::new(200, GARBAGE_BODY)),
            AdminFault::Hang => return HaReply::Hang,
        }
        // Go's `Query().Get` gives "" for a missing parameter, so an empty value is a read.
        let value = activate.unwrap_or("").to_lowercase();
        match value.as_str() {
            "" => {
                let body = format!("{{\"active\":{}}}\n", self.reported());
                return HaReply::Answer(Reply::new(200, body));
            }
            "true" if self.refuse_activation => {
                return HaReply::Answer(Reply::new(500, "activation refused\n"));
            }
            "true" => {
                self.active = true;
                self.tail_end = None;
            }
            // Only an active node is inside a round; deactivating a standby node (even one
            // still finishing its round) changes nothing, so falls through to the ignored case.
            "false" if self.active => {
                self.active = false;
                let end = self.round_end(now);
                self.tail_end = (end > now).then_some(end);
            }
            // Other values are ignored without a word, like the node does.
            _ => {}
        }
        self.record(now);
        HaReply::Answer(Reply::new(200, ""))
    }

    /// Handles one request to the probe server, by path (without the query).
    pub fn handle_probe(&self, now: Duration, path: &str) -> Reply {
        match path {
            "/liveness" => Reply::new(200, "OK"),
            "/readiness" | "/health" if self.ready => Reply::new(200, "OK"),
            "/readiness" | "/health" => Reply::new(503, "FAIL"),
            "/metrics" => Reply::new(200, self.metrics(now)),
            // Go's `http.NotFound`.
            _ => Reply::new(404, "404 page not found\n"),
        }
    }

    /// Makes the node ready (probes answer `OK`) or not (`FAIL`).
    pub fn set_ready(&mut self, ready: bool) {
        self.ready = ready;
    }

    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Injects a fault into `/ha`, or clears it with [`AdminFault::None`].
    pub fn set_admin_fault(&mut self, fault: AdminFault) {
        self.fault = fault;
    }

    pub fn admin_fault(&self) -> AdminFault {
        self.fault
    }

    /// Makes `activate=true` answer 500 without effect (or work again). Reads and
    /// `activate=false` are not affected; an admin fault takes precedence. Kept across
    /// restarts, like faults.
    pub fn set_refuse_activation(&mut self, refuse: bool) {
        self.refuse_activation = refuse;
    }

    pub fn refuses_activation(&self) -> bool {
        self.refuse_activation
    }

    /// The node process restarts at `now` configured with `system.active = start_active`: the
    /// consensus state is lost (no tail), the mode is the start mode. Readiness and injected
    /// faults are left as they are; they belong to the test, not to the process.
    pub fn restart(&mut self, now: Duration, start_active: bool) {
        let now = self.settle(now);
        self.start_active = start_active;
        self.active = start_active;
        self.tail_end = None;
        self.record(now);
    }

    /// The mode of the latest (re)start.
    pub fn start_active(&self) -> bool {
        self.start_active
    }

    /// `ctx.active`: whether the node was last told (or started) active. Differs from
    /// [`NodeModel::is_effectively_active`] during the tail of a deactivation.
    pub fn is_commanded_active(&self) -> bool {
        self.active
    }

    /// What a read of `/ha` at `now` would say (without faults): `true` while active and
    /// during the tail of a deactivation.
    pub fn is_effectively_active(&self, now: Duration) -> bool {
        let now = now.max(self.last_now);
        self.active || self.tail_end.is_some_and(|end| end > now)
    }

    /// When the tail of the latest deactivation ends, if one is pending: the next change of
    /// the reported mode that happens by time alone. Lets a server wake up to report it.
    pub fn tail_end(&self) -> Option<Duration> {
        self.tail_end
    }

    /// Lets time pass up to `now` without a request: a tail that has ended is settled into the
    /// history, and [`NodeModel::tail_end`] moves on. Reads never need this; a server that
    /// sleeps until `tail_end` calls it when it wakes.
    pub fn advance(&mut self, now: Duration) {
        self.settle(now);
    }

    /// Every change of the reported mode up to `now`, oldest first, starting with the start
    /// mode at the epoch. Consecutive entries always differ in mode. A tail that ended at or
    /// before `now` appears at the instant it ended, so the result for a later `now` always
    /// extends the result for an earlier one.
    pub fn mode_history(&self, now: Duration) -> Vec<Transition> {
        let now = now.max(self.last_now);
        let mut history = self.history.clone();
        if let Some(end) = self.tail_end.filter(|&end| end <= now) {
            history.push((end, false));
        }
        history
    }

    /// Advances the model to `now` (clamped to the latest time seen): a tail that has ended is
    /// recorded at the instant it ended. Returns the clamped `now`.
    fn settle(&mut self, now: Duration) -> Duration {
        let now = now.max(self.last_now);
        self.last_now = now;
        if let Some(end) = self.tail_end.filter(|&end| end <= now) {
            self.tail_end = None;
            self.history.push((end, false));
        }
        now
    }

    /// The reported mode, valid right after [`NodeModel::settle`]: any tail left is pending.
    fn reported(&self) -> bool {
        self.active || self.tail_end.is_some()
    }

    /// Appends the reported mode at `now` to the history if it changed.
    fn record(&mut self, now: Duration) {
        let reported = self.reported();
        if self.history.last().map(|&(_, mode)| mode) != Some(reported) {
            self.history.push((now, reported));
        }
    }

    /// The end of the round window containing `now`; `now` itself when rounds have no length.
    fn round_end(&self, now: Duration) -> Duration {
        let round = self.round.as_nanos();
        if round == 0 {
            return now;
        }
        let into_round = now.as_nanos() % round;
        // `into_round < round`, so this is positive and fits whenever `round` does.
        let left = u64::try_from(round - into_round).unwrap_or(u64::MAX);
        now.saturating_add(Duration::from_nanos(left))
    }

    /// The stand-in's Prometheus metrics (the real node's are not modelled).
    fn metrics(&self, now: Duration) -> String {
        let changes = self.mode_history(now).len() - 1;
        format!(
            "# HELP iotex_standin_active Whether a read of /ha reports active (1) or not (0).\n\
             # TYPE iotex_standin_active gauge\n\
             iotex_standin_active {}\n\
             # HELP iotex_standin_ready Whether the readiness probe answers OK (1) or not (0).\n\
             # TYPE iotex_standin_ready gauge\n\
             iotex_standin_ready {}\n\
             # HELP iotex_standin_mode_changes_total Changes of the reported mode since start.\n\
             # TYPE iotex_standin_mode_changes_total counter\n\
             iotex_standin_mode_changes_total {changes}\n",
            u8::from(self.is_effectively_active(now)),
            u8::from(self.ready),
        )
    }
}

#[cfg(test)]
mod tests;

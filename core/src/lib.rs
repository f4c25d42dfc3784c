//! # elector-core
//!
//! The sans-IO decision machine of the IoTeX elector. It decides when a replica campaigns,
//! leads, activates its node, steps down, fences and hands over; it does no I/O and reads no
//! clock. The driver feeds [`Input`]s with the current [`Instant`] through
//! [`Elector::handle_input`] and executes what [`Elector::poll_output`] returns until it
//! returns [`Output::Timeout`].
//!
//! # The driver's run loop
//!
//! The shell's driver (shell/src/driver.rs) is this loop with etcd, the node, the fence and a
//! clock behind it; the simulation runs the same driver on simulated ones.
//!
//! ```no_run
//! use elector_core::{Command, Elector, Event, Input, Instant, Output, Settings, Timing};
//!
//! /// `wait(at)` returns the next result of an executed command, signal or request, or
//! /// [`Input::Timeout`] once `at` has passed, with the time it happened; `execute` starts a
//! /// command whose result comes back through `wait`; `report` logs an event. Returns the
//! /// exit code the core decided.
//! fn run(
//!     mut elector: Elector,
//!     mut wait: impl FnMut(Instant) -> (Instant, Input),
//!     mut execute: impl FnMut(Command),
//!     mut report: impl FnMut(Event),
//! ) -> i32 {
//!     loop {
//!         // Everything the core wants done now; it ends with the time to call it again.
//!         let wake_at = loop {
//!             match elector.poll_output() {
//!                 Output::Command(Command::Exit { code }) => return code,
//!                 Output::Command(command) => execute(command),
//!                 Output::Event(event) => report(event),
//!                 Output::Timeout(at) => break at,
//!             }
//!         };
//!         let (now, input) = wait(wake_at);
//!         elector.handle_input(now, input);
//!     }
//! }
//!
//! let elector = Elector::new(Settings::new("replica-a", Timing::default()), Instant::ZERO)
//!     .expect("the default timing is safe");
//! // The shell passes its etcd and node adapters, its clock and its logger here.
//! ```
//!
//! # Rules
//!
//! Each rule is one function of that name under `core/src/` (a method of [`Elector`], or
//! [`end_dead_term`]); docs/safety.md explains them, docs/architecture.md says which file
//! holds each, and the test `rule_names` keeps the three lists and the code the same.
//!
//! - `campaign_allowed`: campaign only with the node confirmed standby and ready.
//! - `lease_deadline`: send time of the last acknowledged keep-alive + granted TTL x (1 - drift).
//! - `step_down_deadline`: lease deadline - drain bound - safety margin; the node is commanded
//!   standby by then.
//! - `fence`: standby not confirmed by the lease deadline runs the fence command.
//! - `node_active_allowed`: active only while leading, ready, past the activation gate.
//! - `activation_gate`: a new leader waits the activation delay unless the previous term ended
//!   with a handover record.
//! - `wait_out_last_slot`: after a handover record, the new leader still waits until the last
//!   slot its predecessor's node may sign for is more than the tolerated overtime past.
//! - `reconcile_node`: a node that reads active while it should not is commanded standby.
//! - `quiet_window`: no node call may still be running at the step-down deadline.
//! - `readiness_from_probes`, `unready_leader`, `withdraw_when_unready`: unready nodes give way.
//! - `lead_may_be_given_away`: the key is deleted, the lease revoked and a record written only
//!   with the node proven standby (a read said standby, or the fence reported success).
//! - `give_way_when_node_lost`: a leader whose node has not read active for `node_lost_after`
//!   hands over.
//! - `report_stuck`: a replica that cannot reach a safe or useful state says so, repeatedly.
//! - `end_dead_term`: a term of ours no process keeps (a crashed process's, or our own that
//!   lapsed in an etcd outage) is ended once the node is confirmed standby by a read.
//! - `handover_request`, `handover_record`, `shutdown`: clean, gapless handovers.
//! - `excluded_replica`: an excluded replica does not campaign; if it leads it hands over
//!   cleanly first, even with nobody to take over.
//! - `install_key_last`, `withdraw_key_when_demoting`, `reconcile_keys`: with key custody, the
//!   node holds the operator's key only while it may be active; a withdrawal confirmed by the
//!   node proves standby.
//!
//! `docs/safety.md` gives the timing inequalities ([`Timing::validate`]) and the worst case.

#![warn(missing_docs, unreachable_pub)]

mod config;
mod elector;
mod protocol;
mod time;

pub use config::{ETCD_MINIMUM_TTL, ETCD_RETRY_CAP, MAX_SUPPORTED_DRIFT, Timing, TimingError};
#[cfg(any(test, feature = "mutation"))]
pub use elector::Mutation;
pub use elector::{Elector, Readiness, STUCK_REPORT_INTERVAL, Settings, end_dead_term};
pub use protocol::{
    CallId, Candidate, CandidateId, Command, Event, Exclusion, HandoverRecord, HandoverRequest,
    Input, LeaseId, NodeCall, NodeKeys, Observation, Output, RememberedTerm, Role,
};
pub use time::Instant;

/// Whether this build has the planted bugs of the tests compiled in (`feature = "mutation"`,
/// turned on by the simulation). Their switches are off unless a test turns them on, but a
/// product binary must not carry them at all: `elector --version` says so loudly, and `make`
/// checks every binary it installs.
pub const PLANTED_BUGS_COMPILED: bool = cfg!(feature = "mutation");

#[cfg(test)]
mod tests;

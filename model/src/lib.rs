//! # elector-model: what the simulation and the real-world tests agree on
//!
//! Pure, std-only pieces that every world uses, so that a rule is written once and every layer
//! tests it the same way:
//!
//! - [`chain`]: the slot grid, the round a node picks, and a deterministic network, read from
//!   iotex-core's consensus code;
//! - [`node`]: the IoTeX node as the elector meets it, from iotex-core's code: `/ha`,
//!   `/producer-keys`, the probes, the consensus FSM and every signature it makes. The
//!   simulation serves it over turmoil (`elector-sim`); the stand-in node serves it over TCP
//!   (`elector-integration`);
//! - [`history`]: the checks on what the nodes did: [`history::double_signs`] (no height and
//!   round signed by two replicas) and [`history::dual_active`] (no two nodes active at once);
//! - [`exposition`]: a strict reader of the Prometheus text format, for the tests that read
//!   the elector's `/metrics`;
//! - [`timing_profile`]: the elector timings the simulation and the real-world tests run,
//!   each defined once.
//!
//! It lives apart from `elector-sim` so that the real-world tests, and the binaries built
//! with them (the stand-in node, the demo, the benchmark), never link the simulation: the
//! simulation turns on `elector-core`'s planted bugs (`mutation`), and cargo would unify that
//! feature into an `elector` built in the same invocation.

pub mod chain;
pub mod exposition;
pub mod history;
pub mod node;
pub mod timing_profile;

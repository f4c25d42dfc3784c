//! # elector-model: what the simulation and the real-world tests agree on
//!
//! Two pure, std-only pieces that both worlds use, so that a rule is written once and both
//! test it the same way:
//!
//! - [`node`]: the IoTeX node as the elector sees it (`/ha` and the probe server), with the
//!   faults the tests inject. The simulation serves it over turmoil (`elector-sim`); the
//!   stand-in node serves it over TCP (`elector-integration`).
//! - [`history`]: node mode histories and the one safety check every test shares,
//!   [`history::dual_active`]: at no instant are two nodes active.
//!
//! It lives apart from `elector-sim` so that the real-world tests, and the binaries built
//! with them (the stand-in node, the demo, the benchmark), never link the simulation: the
//! simulation turns on `elector-core`'s planted bugs (`mutation`), and cargo would unify that
//! feature into an `elector` built in the same invocation.

pub mod history;
pub mod node;

//! Unit and property tests of the decision core.
//!
//! - `harness`: a deterministic driver with explicit time, for the unit tests.
//! - one module of unit tests per group of rules (see the crate docs for the rule names).
//! - `scenario` + `world` + `properties`: randomized scenarios, a world (etcd, node and
//!   operator) answering the core's commands, and the safety properties checked after every
//!   step.

mod harness;

mod activation;
mod custody;
mod dead_term;
mod excluded;
mod half_broken;
mod lease;
mod reconcile;
mod shutdown_handover;
mod startup;
mod unready;

mod properties;
mod scenario;
mod world;

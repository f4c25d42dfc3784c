//! The seed driver: a seed's random numbers ([`rng`]) and the faults drawn from them
//! ([`schedule`]), one run of a seed ([`run`]), many seeds ([`search`]), and a run shown to a
//! reader ([`render`], [`trace`]). Same seed, same run.

pub mod render;
pub mod rng;
pub mod run;
pub mod schedule;
pub mod search;
pub mod trace;

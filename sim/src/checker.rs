//! The checker: what a run's history must satisfy ([`check`]: the bounds and the property,
//! no (height, round) signed by two replicas, before its proxy, never two active), the
//! judgement of one run against them ([`judge`]), and its outcome ([`verdict`]). It reads what
//! the world recorded and never drives it.

pub mod check;
pub mod judge;
pub mod verdict;

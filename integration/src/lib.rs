//! Tests, demo and benchmark of the elector against real etcd processes and stand-in nodes:
//! the shared host-process pieces ([`host`], [`timing_profile`]), the one replica set of
//! host processes ([`replica_set`]) that the demo, the benchmark (`src/bin/bench/`, a binary
//! of its own so that no test compiles it), the functional tests'
//! [`cluster`] and the Docker tests' host electors build on, the
//! container harness ([`containers`]), etcd processes and the stand-in node.

pub mod cluster;
pub mod containers;
pub mod etcd_process;
pub mod go_election;
pub mod host;
pub mod notify_socket;
pub mod operator;
pub mod replica_set;
pub mod standin;
pub mod timing_profile;

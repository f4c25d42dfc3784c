//! The IoTeX elector's shell: runs the decision core (`elector-core`) against etcd and the
//! node. Modules:
//! - [`driver`]: the loop that feeds the core and executes its commands;
//! - [`etcd`]: the election on etcd (Go `concurrency.Election` layout);
//! - [`node`]: the node's `/ha` and `/readiness` endpoints;
//! - [`fence`]: the operator's fence action (`--fence-cmd`), for the driver and
//!   `elector force-standby`;
//! - [`clock`]: the clock seam; [`status`]: `/status`, `/metrics`, `/healthz`; [`cli`]: flags;
//! - [`registry`]: this elector's record in etcd, for `elector status` (never read by the
//!   election);
//! - [`state`]: `--state-dir`, the term remembered across a crash (rule `end_dead_term`);
//!   [`standby`]: what `elector force-standby` does (also the simulation's `ExecStopPost=`);
//!   [`logging`]: the log format.
//! - [`node_config`]: the node's `config.yaml` (`--node-config`), judged for the HA setup.
//!
//! The binary (`main.rs`) adds the commands, one file each under `commands/`.

/// `elector --version`: the package version, and a loud mark on a build with the tests'
/// planted bugs compiled in (`elector_core::PLANTED_BUGS_COMPILED`), which must never run in
/// production; `make` refuses to install such a binary.
pub const VERSION: &str = if elector_core::PLANTED_BUGS_COMPILED {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (TEST BUILD: planted bugs compiled in; never run it in production)"
    )
} else {
    env!("CARGO_PKG_VERSION")
};

pub mod cli;
pub mod clock;
pub mod custody;
pub mod driver;
pub mod etcd;
pub mod fence;
pub mod logging;
pub mod node;
pub mod node_config;
pub mod registry;
pub mod standby;
pub mod state;
pub mod telemetry;

//! The driver: feeds the core its inputs and carries out its commands. Nothing else.
//!
//! One task runs the core: this loop. Every command is executed by its own task (etcd calls,
//! probes) or by the node worker (node calls, strictly one after another, so their answers
//! come back in order): see [`execute`]. Every result comes back to the core as an input on
//! one channel. No decision about roles or time is made here: if one seems needed, it belongs
//! in `elector-core`.
//!
//! Beside the loop: [`connect`] (the etcd connect loop and its seam), [`report`] (what the
//! core's events are logged as), [`log_throttle`] (failures logged without floods, recoveries
//! once).

mod connect;
mod execute;
mod log_throttle;
mod report;

pub use crate::fence::{Fence, FenceFuture};

use crate::clock::Clock;
use crate::etcd::{Connect, Election};
use crate::node::{HttpGet, NodeClient};
use crate::state::StateFile;
use crate::telemetry::Telemetry;
use connect::connect_loop;
use elector_core::{Command, Elector, Input, Output};
use execute::{Executor, spawn_node_worker};
use log_throttle::LogThrottle;
use report::{IdentityCheck, report};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::info;

/// Requests from outside the driver: signals, the status server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    Shutdown,
    Handover { to: Option<String> },
}

/// Everything the driver needs.
pub struct Driver<T: HttpGet, C: Clock, E: Connect> {
    pub core: Elector,
    pub clock: C,
    pub node: NodeClient<T>,
    pub etcd: E,
    /// The election key (`--key`) and our value (`--value`).
    pub key: String,
    pub value: String,
    pub etcd_request_timeout: Duration,
    pub fence: Fence,
    pub telemetry: Arc<Telemetry>,
    /// `--state-dir`'s term file, if one is configured (rule `end_dead_term`).
    pub state: Option<StateFile>,
}

impl<T: HttpGet, C: Clock, E: Connect> Driver<T, C, E> {
    /// Runs until the core says exit; returns the exit code.
    pub async fn run(self, mut control: mpsc::UnboundedReceiver<Control>) -> i32 {
        let Driver {
            mut core,
            clock,
            node,
            etcd,
            key,
            value,
            etcd_request_timeout,
            fence,
            telemetry,
            state,
        } = self;
        let clock = Arc::new(clock);
        let mut identity = IdentityCheck::new(value.clone());
        let (tx, mut rx) = mpsc::channel::<Input>(1024);
        let (election_tx, election_rx) = watch::channel::<Option<Election>>(None);
        let retry_max = core.timing().etcd_retry_max();
        tokio::spawn(connect_loop(
            etcd,
            key,
            value,
            (etcd_request_timeout, retry_max),
            election_tx,
            telemetry.metrics.clone(),
        ));
        let node_calls = spawn_node_worker(node.clone(), tx.clone(), telemetry.metrics.clone());
        let mut exec = Executor {
            tx,
            clock: clock.clone(),
            node,
            node_calls,
            election: election_rx,
            fence,
            metrics: telemetry.metrics.clone(),
            state,
        };
        let mut log = LogThrottle::default();
        let mut control_open = true;
        let mut shutting_down = false;
        loop {
            let wake = loop {
                match core.poll_output() {
                    Output::Command(Command::Exit { code }) => {
                        telemetry.update(&core, clock.now());
                        info!(code, reason = %core.role_reason(), "exiting");
                        return code;
                    }
                    Output::Command(command) => exec.execute(command),
                    Output::Event(event) => report(&event, &telemetry.metrics),
                    Output::Timeout(at) => break at,
                }
            };
            telemetry.update(&core, clock.now());
            identity.check(&core, clock.now());
            let input = tokio::select! {
                // Fixed order (inputs, control, timer) instead of tokio's random one, so that
                // a simulation seed always gives the same run.
                biased;
                Some(input) = rx.recv() => input,
                message = control.recv(), if control_open => match message {
                    Some(Control::Shutdown) => {
                        if !shutting_down {
                            shutting_down = true;
                            info!("shutdown requested: demoting, confirming standby, resigning");
                        }
                        Input::ShutdownRequested
                    }
                    Some(Control::Handover { to }) => Input::HandoverRequested { to },
                    None => { control_open = false; continue; }
                },
                _ = tokio::time::sleep_until(clock.wake_at(wake)) => Input::Timeout,
                // Nothing for the core: the loop only shows it is alive (`LOOP_HEARTBEAT`).
                () = tokio::time::sleep(crate::telemetry::LOOP_HEARTBEAT) => continue,
            };
            log.input(&input, tokio::time::Instant::now());
            core.handle_input(clock.now(), input);
        }
    }
}

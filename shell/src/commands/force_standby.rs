//! `elector force-standby`: commands the node standby and confirms it by a read (with key
//! custody, also withdraws the operator's key), for systemd's `ExecStopPost=`; runs the fence
//! if standby is not proven in time. The work itself is the library's
//! [`elector::standby::ForceStandby`], which the simulation runs too.

use super::{Outcome, connect};
use elector::cli::{EtcdArgs, ForceStandbyArgs};
use elector::etcd::Connect;
use elector::node::{NodeClient, NodeTimeouts, ReqwestTransport};
use elector::standby::{DeadTermEnding, ForceStandby};
use elector::state::{StateFile, state_dir};
use std::time::Duration;

/// Under systemd (`ExecStopPost=`, with `NotifyAccess=all` so that systemd hears it), how much
/// more time each `EXTEND_TIMEOUT_USEC` asks for, every half of it: the unit's
/// `TimeoutStopSec=` is short (inequality `stop_within_restart_bound`) and also bounds this
/// command, which may need the node's slot in progress and more to confirm standby. A
/// force-standby that hangs stops asking and is killed this long after its last request.
const EXTEND_BY: Duration = Duration::from_secs(1);

/// Runs `elector force-standby`.
pub async fn run(args: ForceStandbyArgs) -> Outcome {
    let extending = crate::systemd::Notifier::from_env()
        .ok()
        .flatten()
        .map(|notifier| tokio::spawn(ask_for_time(notifier)));
    let outcome = command_standby(&args).await;
    if let Some(task) = extending {
        task.abort();
    }
    for line in outcome.map_err(|line| format!("force-standby: {line}"))? {
        elector::outln!("elector force-standby: {line}");
    }
    Ok(0)
}

/// Asks systemd for [`EXTEND_BY`] more, every half of it, until aborted.
async fn ask_for_time(notifier: crate::systemd::Notifier) {
    use crate::systemd::Notify as _;
    loop {
        let _ = notifier.notify(&format!("EXTEND_TIMEOUT_USEC={}", EXTEND_BY.as_micros()));
        tokio::time::sleep(EXTEND_BY / 2).await;
    }
}

/// The operator command's etcd connection, from its flags.
struct OperatorConnect(EtcdArgs);

impl Connect for OperatorConnect {
    async fn connect(&self) -> Result<etcd_client::Client, String> {
        Ok(connect(&self.0).await?.client)
    }
}

/// What `elector force-standby` does, also run in-process by `elector supervise` and by the
/// watcher of a bare run: commands the node standby at once (with key custody, withdraws the
/// operator's key too), confirms it by a read, then ends the dead term (`--state-dir`); the
/// fence runs if standby is not confirmed within `--timeout`. Returns what it did, one line
/// each, or why standby was not confirmed, with the fence's outcome.
pub(crate) async fn command_standby(args: &ForceStandbyArgs) -> Result<Vec<String>, String> {
    let transport = ReqwestTransport::new()?;
    let custody = args.custody.load()?;
    // Only the admin endpoint is used.
    let mut node = NodeClient::new(
        transport,
        &args.node.iotex_admin,
        &args.node.iotex_admin,
        NodeTimeouts {
            call: args.node_timeout.node_timeout,
            // iotex-core holds activate=false until the slot in progress starts.
            standby: args.chain.block_interval + args.node_timeout.node_timeout,
        },
    );
    let key_custody = custody.is_some();
    if let Some(custody) = custody {
        node = node.with_custody(custody);
    }
    let dead_term = state_dir(args.state_dir.as_deref()).map(|dir| {
        let value = args.value();
        DeadTermEnding {
            state: StateFile::new(&dir, args.etcd.key(), &value).for_node(&args.node.iotex_admin),
            key: args.etcd.key().to_string(),
            value,
            etcd: OperatorConnect(args.etcd.clone()),
            // What `EtcdArgs::options` makes every call's bound.
            request_timeout: args.etcd.timeout.etcd_timeout,
        }
    });
    ForceStandby {
        node,
        key_custody,
        admin: args.node.iotex_admin.clone(),
        timeout: args.timeout,
        confirm_poll_interval: args.confirm_poll.confirm_poll_interval,
        fence: args.fence.fence(),
        dead_term,
    }
    .run()
    .await
}

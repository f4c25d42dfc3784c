//! The driver: feeds the core its inputs and carries out its commands. Nothing else.
//!
//! One task runs the core. Every command is executed by its own task (etcd calls, probes) or
//! by the node worker (node calls, strictly one after another, so their answers come back in
//! order), and every result comes back to the core as an input on one channel. No decision
//! about roles or time is made here: if one seems needed, it belongs in `elector-core`.

use crate::clock::Clock;
use crate::etcd::Election;
use crate::node::{HttpGet, NodeClient};
use crate::state::StateFile;
use crate::status::{Metrics, NodeCallKind, Status};
use elector_core::{Command, Elector, Event, Input, LeaseId, NodeCall, Output, Role};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

/// How the driver gets an etcd client: `etcd::connect` in production, a turmoil channel in
/// the simulation. Called again after a failure, with backoff.
pub trait Connect: Send + Sync + 'static {
    fn connect(&self) -> impl Future<Output = Result<etcd_client::Client, String>> + Send;
}

/// What the fence action does.
pub type FenceFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// The operator's fence action, run when standby cannot be confirmed in time.
#[derive(Clone)]
pub enum Fence {
    /// No fence configured: the event is logged as an error and counted.
    None,
    /// A shell command (`--fence-cmd`), run with `sh -c`, killed after the timeout. The reason
    /// is passed in `ELECTOR_FENCE_REASON`.
    Command { command: String, timeout: Duration },
    /// A function (the simulation's model of a fence).
    Custom(Arc<dyn Fn(String) -> FenceFuture + Send + Sync>),
}

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
    pub status: Arc<Status>,
    /// `--state-dir`'s term file, if one is configured (rule `end_dead_term`).
    pub state: Option<StateFile>,
}

/// Backoff between etcd connection attempts.
const CONNECT_RETRY_MIN: Duration = Duration::from_millis(200);
const CONNECT_RETRY_MAX: Duration = Duration::from_secs(5);
/// A repeated failure of the same kind and reason is logged at most this often.
const LOG_REPEAT_EVERY: Duration = Duration::from_secs(10);

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
            status,
            state,
        } = self;
        let clock = Arc::new(clock);
        let mut identity = IdentityCheck::new(value.clone());
        let (tx, mut rx) = mpsc::channel::<Input>(1024);
        let (election_tx, election_rx) = watch::channel::<Option<Election>>(None);
        tokio::spawn(connect_loop(
            etcd,
            key,
            value,
            etcd_request_timeout,
            election_tx,
            status.metrics.clone(),
        ));
        let node_calls = spawn_node_worker(node.clone(), tx.clone(), status.metrics.clone());
        let mut exec = Executor {
            tx,
            clock: clock.clone(),
            node,
            node_calls,
            election: election_rx,
            fence,
            metrics: status.metrics.clone(),
            state,
        };
        let mut log = LogThrottle::default();
        let mut control_open = true;
        let mut shutting_down = false;
        loop {
            let wake = loop {
                match core.poll_output() {
                    Output::Command(Command::Exit { code }) => {
                        status.update(&core, clock.now());
                        info!(code, reason = %core.role_reason(), "exiting");
                        return code;
                    }
                    Output::Command(command) => exec.execute(command),
                    Output::Event(event) => report(&event, &status.metrics),
                    Output::Timeout(at) => break at,
                }
            };
            status.update(&core, clock.now());
            identity.check(&core);
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
            };
            log.failure(&input);
            core.handle_input(clock.now(), input);
        }
    }
}

/// Carries out commands; every result goes back to the core through `tx`.
struct Executor<T: HttpGet, C: Clock> {
    tx: mpsc::Sender<Input>,
    clock: Arc<C>,
    node: NodeClient<T>,
    node_calls: mpsc::UnboundedSender<(u64, NodeCall)>,
    election: watch::Receiver<Option<Election>>,
    fence: Fence,
    metrics: Arc<Metrics>,
    state: Option<StateFile>,
}

impl<T: HttpGet, C: Clock> Executor<T, C> {
    fn execute(&mut self, command: Command) {
        let tx = self.tx.clone();
        let clock = self.clock.clone();
        match command {
            Command::Observe => {
                let mut election = self.election.clone();
                tokio::spawn(async move {
                    // Wait for the first connection; the observer reconnects by itself after.
                    let connected = match election.wait_for(Option::is_some).await {
                        Ok(ready) => ready.clone(),
                        Err(_) => return,
                    };
                    if let Some(election) = connected {
                        election.observe(tx).await;
                    }
                });
            }
            Command::GrantLease { ttl } => {
                let election = self.connected();
                tokio::spawn(async move {
                    let sent_at = clock.now();
                    let input = match election {
                        Err(reason) => Input::LeaseGrantFailed { reason },
                        Ok(e) => match e.grant(ttl).await {
                            Ok((lease, ttl)) => Input::LeaseGranted {
                                lease,
                                ttl,
                                sent_at,
                            },
                            Err(err) => Input::LeaseGrantFailed {
                                reason: err.to_string(),
                            },
                        },
                    };
                    let _ = tx.send(input).await;
                });
            }
            Command::KeepAlive { lease } => {
                let election = self.connected();
                let metrics = self.metrics.clone();
                tokio::spawn(async move {
                    let sent_at = clock.now();
                    let input = match election {
                        Err(reason) => Input::KeepAliveFailed { lease, reason },
                        Ok(e) => match e.keep_alive_once(lease).await {
                            Ok(ttl) => {
                                let latency = clock.now().saturating_duration_since(sent_at);
                                metrics.observe_keepalive(latency);
                                Input::KeepAliveAcked {
                                    lease,
                                    sent_at,
                                    ttl,
                                }
                            }
                            Err(err) => {
                                metrics.count_keepalive_failure();
                                Input::KeepAliveFailed {
                                    lease,
                                    reason: err.to_string(),
                                }
                            }
                        },
                    };
                    let _ = tx.send(input).await;
                });
            }
            Command::CreateCandidate { lease } => {
                let election = self.connected();
                tokio::spawn(async move {
                    let input = match election {
                        Err(reason) => Input::CandidateCreateFailed { lease, reason },
                        Ok(e) => match e.create_candidate(lease).await {
                            Ok(create_revision) => Input::CandidateCreated {
                                lease,
                                create_revision,
                            },
                            Err(err) => Input::CandidateCreateFailed {
                                lease,
                                reason: err.to_string(),
                            },
                        },
                    };
                    let _ = tx.send(input).await;
                });
            }
            Command::Resign {
                lease,
                candidate,
                record,
                clear_request,
            } => {
                let election = self.connected();
                tokio::spawn(async move {
                    let input = match election {
                        Err(reason) => Input::ResignFailed { lease, reason },
                        Ok(e) => match e.resign(lease, candidate, record, clear_request).await {
                            Ok(()) => Input::Resigned { lease },
                            Err(err) => Input::ResignFailed {
                                lease,
                                reason: err.to_string(),
                            },
                        },
                    };
                    let _ = tx.send(input).await;
                });
            }
            Command::Node { id, call } => {
                // The worker outlives the loop; a send can only fail while shutting down.
                let _ = self.node_calls.send((id, call));
            }
            Command::ProbeReadiness => {
                let node = self.node.clone();
                let metrics = self.metrics.clone();
                tokio::spawn(async move {
                    let started = tokio::time::Instant::now();
                    let probed = node.probe_ready().await;
                    metrics.observe_node_call(NodeCallKind::Readiness, started.elapsed());
                    let input = match probed {
                        Ok(()) => {
                            metrics.probe.succeeded();
                            Input::Probed {
                                ready: true,
                                detail: String::new(),
                            }
                        }
                        Err(detail) => {
                            metrics.probe.failed(&detail);
                            Input::Probed {
                                ready: false,
                                detail,
                            }
                        }
                    };
                    let _ = tx.send(input).await;
                });
            }
            Command::Fence { run, reason } => {
                self.metrics.count_fence();
                let fence = self.fence.clone();
                tokio::spawn(async move {
                    let (success, detail) = match run_fence(&fence, reason).await {
                        Ok(detail) => (true, detail),
                        Err(detail) => (false, detail),
                    };
                    let input = Input::FenceDone {
                        run,
                        success,
                        detail,
                    };
                    let _ = tx.send(input).await;
                });
            }
            Command::RememberTerm { term } => {
                // A few hundred bytes, written and synced in place: the loop waits for it, so
                // that what the core was told to remember is on disk before its next step.
                if let Some(state) = &self.state
                    && let Err(e) = state.store(term)
                {
                    warn!("{e}: a crash now makes the next leader wait for the lease to expire");
                }
            }
            Command::Exit { .. } => unreachable!("handled by the loop"),
        }
    }

    /// The etcd election, or why there is none yet.
    fn connected(&self) -> Result<Election, String> {
        self.election
            .borrow()
            .clone()
            .ok_or_else(|| "not connected to etcd yet".to_string())
    }
}

/// Connects to etcd, retrying with backoff and saying why, until it succeeds.
async fn connect_loop<E: Connect>(
    etcd: E,
    key: String,
    value: String,
    request_timeout: Duration,
    out: watch::Sender<Option<Election>>,
    metrics: Arc<Metrics>,
) {
    let mut backoff = CONNECT_RETRY_MIN;
    loop {
        match etcd.connect().await {
            Ok(client) => {
                info!("connected to etcd");
                metrics.etcd.succeeded();
                let election = Election::new(client, key, value, request_timeout)
                    .with_health(metrics.etcd.clone());
                let _ = out.send(Some(election));
                return;
            }
            Err(reason) => {
                metrics.etcd.failed(&reason);
                warn!(
                    retry_in_ms = backoff.as_millis() as u64,
                    reason = %reason,
                    "etcd unreachable, node held in standby"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(CONNECT_RETRY_MAX);
            }
        }
    }
}

/// Executes node calls one at a time, in the order the core made them.
fn spawn_node_worker<T: HttpGet>(
    node: NodeClient<T>,
    tx: mpsc::Sender<Input>,
    metrics: Arc<Metrics>,
) -> mpsc::UnboundedSender<(u64, NodeCall)> {
    let (calls, mut queue) = mpsc::unbounded_channel::<(u64, NodeCall)>();
    tokio::spawn(async move {
        while let Some((id, call)) = queue.recv().await {
            let started = tokio::time::Instant::now();
            let (kind, result) = match call {
                NodeCall::SetActive => (
                    NodeCallKind::Activate,
                    node.set_mode(true).await.map(|()| None),
                ),
                NodeCall::SetStandby => (
                    NodeCallKind::Deactivate,
                    node.set_mode(false).await.map(|()| None),
                ),
                NodeCall::ReadMode => (NodeCallKind::ReadMode, node.read_mode().await.map(Some)),
            };
            metrics.observe_node_call(kind, started.elapsed());
            let input = match result {
                Ok(active) => {
                    metrics.node.succeeded();
                    if let Some(active) = active {
                        metrics.set_node_mode(active);
                    }
                    Input::NodeCallDone { id, call, active }
                }
                Err(reason) => {
                    metrics.count_node_failure();
                    metrics.node.failed(&reason);
                    Input::NodeCallFailed { id, call, reason }
                }
            };
            if tx.send(input).await.is_err() {
                return;
            }
        }
    });
    calls
}

async fn run_fence(fence: &Fence, reason: String) -> Result<String, String> {
    match fence {
        Fence::None => Err(format!(
            "no --fence-cmd configured; fence needed because {reason}"
        )),
        Fence::Custom(f) => f(reason).await,
        Fence::Command { command, timeout } => {
            let mut child = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .env("ELECTOR_FENCE_REASON", &reason)
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot start fence command {command:?}: {e}"))?;
            match tokio::time::timeout(*timeout, child.wait()).await {
                Ok(Ok(exit)) if exit.success() => {
                    Ok(format!("fence command {command:?} succeeded"))
                }
                Ok(Ok(exit)) => Err(format!("fence command {command:?} failed: {exit}")),
                Ok(Err(e)) => Err(format!("fence command {command:?}: {e}")),
                Err(_) => {
                    let _ = child.kill().await;
                    Err(format!(
                        "fence command {command:?} did not finish within {}s and was killed",
                        timeout.as_secs_f64()
                    ))
                }
            }
        }
    }
}

/// Logs what the core reports: one line per role change, with the reason.
fn report(event: &Event, metrics: &Metrics) {
    match event {
        Event::RoleChanged { from, to, reason } => {
            metrics.count_transition();
            // `role` and `from` are for collectors; the human line says them in the message.
            let (from, role) = (from.as_str(), to.as_str());
            match to {
                Role::SteppingDown => warn!(role, from, %reason, "role {from} -> {role}"),
                _ => info!(role, from, %reason, "role {from} -> {role}"),
            }
        }
        Event::StandbyConfirmed => info!("node confirmed standby"),
        Event::Fenced { reason } => error!(%reason, "FENCING"),
        Event::NodeActiveUnexpectedly => {
            warn!("node reports active although this replica does not lead: commanding standby")
        }
        Event::NodeStandbyUnexpectedly => {
            metrics.count_standby_unexpected();
            warn!(
                "node reads standby although this leader commanded it active (demoted by \
                 someone else, restarted, or refusing activation): activating again only after \
                 a fresh successful readiness probe"
            )
        }
        Event::FenceFinished {
            success: true,
            detail,
        } => {
            metrics.count_fence_outcome(true);
            warn!(reason = %detail, "fence succeeded (the node counts as standby)")
        }
        Event::FenceFinished {
            success: false,
            detail,
        } => {
            metrics.count_fence_outcome(false);
            error!(
                reason = %detail,
                "FENCE FAILED (the node may still be active; it will be retried)"
            )
        }
        Event::NodeLost { reason } => {
            warn!(
                %reason,
                "node lost (giving way to another candidate if there is one)"
            )
        }
        Event::Stuck { reason } => {
            error!(%reason, "STUCK")
        }
        Event::Unstuck => info!("no longer stuck"),
        Event::DeadTermEnded { id, record } => info!(
            lease = format!("{:x}", id.lease),
            record,
            "ended the term our crashed process left behind (node confirmed standby){}",
            if *record {
                ": the next leader activates at once"
            } else {
                ""
            }
        ),
        Event::LeaseLost { lease, reason } => {
            warn!(lease = format!("{lease:x}"), %reason, "lease lost")
        }
    }
}

/// Warns when another live candidate uses our `--value` (two replicas configured with one
/// identity: handover targets and logs become ambiguous), once per such candidate, from the
/// time we campaign. Only a warning: nothing about roles is decided here.
struct IdentityCheck {
    value: String,
    warned: HashSet<LeaseId>,
}

impl IdentityCheck {
    fn new(value: String) -> Self {
        IdentityCheck {
            value,
            warned: HashSet::new(),
        }
    }

    fn check(&mut self, core: &Elector) {
        let (Some(ours), Some(view)) = (core.candidate(), core.observation()) else {
            return;
        };
        for other in &view.candidates {
            if other.value == self.value && other.id != ours && self.warned.insert(other.id.lease) {
                warn!(
                    value = %self.value,
                    lease = format!("{:x}", other.id.lease),
                    "another live candidate already uses this replica's --value: two replicas \
                     share one identity, so handover targets and logs are ambiguous; give each \
                     replica its own --value (if this replica restarted within the lease TTL, it \
                     may be its own previous key, which expires by itself)"
                );
            }
        }
    }
}

/// Logs failures reported to the core without flooding: a failure of the same kind with the
/// same reason is repeated at most every [`LOG_REPEAT_EVERY`].
#[derive(Default)]
struct LogThrottle {
    last: HashMap<&'static str, (String, tokio::time::Instant)>,
}

impl LogThrottle {
    fn failure(&mut self, input: &Input) {
        let (kind, reason) = match input {
            Input::LeaseGrantFailed { reason } => ("etcd lease grant", reason),
            Input::KeepAliveFailed { reason, .. } => ("etcd keep-alive", reason),
            Input::CandidateCreateFailed { reason, .. } => ("etcd candidate key", reason),
            Input::ObserveFailed { reason } => ("etcd watch", reason),
            Input::ResignFailed { reason, .. } => ("etcd resign", reason),
            Input::NodeCallFailed { reason, .. } => ("node admin call", reason),
            Input::Probed {
                ready: false,
                detail,
            } => ("node readiness", detail),
            _ => return,
        };
        let now = tokio::time::Instant::now();
        let repeat = self
            .last
            .get(kind)
            .is_some_and(|(last, at)| last == reason && now < *at + LOG_REPEAT_EVERY);
        if !repeat {
            // `kind` is for collectors; the human line says it in the message.
            warn!(kind, %reason, "{kind} failed");
            self.last.insert(kind, (reason.clone(), now));
        }
    }
}

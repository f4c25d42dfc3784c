//! Carrying out the core's commands. Each etcd call and probe runs in its own task; node calls
//! go to one worker that makes them strictly one after another, so their answers come back in
//! the order the core asked. Every result goes back to the core as an input.

use crate::clock::Clock;
use crate::etcd::{Election, EtcdError};
use crate::fence::Fence;
use crate::node::{HttpGet, NodeClient};
use crate::state::StateFile;
use crate::telemetry::{Metrics, NodeCallKind};
use elector_core::{Command, Input, NodeCall, NodeKeys};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tracing::warn;

/// Carries out commands; every result goes back to the core through `tx`.
pub(crate) struct Executor<T: HttpGet, C: Clock> {
    pub(crate) tx: mpsc::Sender<Input>,
    pub(crate) clock: Arc<C>,
    pub(crate) node: NodeClient<T>,
    pub(crate) node_calls: mpsc::UnboundedSender<(u64, NodeCall)>,
    pub(crate) election: watch::Receiver<Option<Election>>,
    pub(crate) fence: Fence,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) state: Option<StateFile>,
}

impl<T: HttpGet, C: Clock> Executor<T, C> {
    /// Starts `command`; its result arrives later on `tx`. `Exit` is the loop's own.
    pub(crate) fn execute(&mut self, command: Command) {
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
            Command::GrantLease { ttl } => self.spawn_etcd(
                move |e: Election| async move {
                    let sent_at = clock.now();
                    let (lease, ttl) = e.grant(ttl).await?;
                    Ok(Input::LeaseGranted {
                        lease,
                        ttl,
                        sent_at,
                    })
                },
                |reason| Input::LeaseGrantFailed { reason },
            ),
            Command::KeepAlive { lease } => {
                let metrics = self.metrics.clone();
                self.spawn_etcd(
                    move |e: Election| async move {
                        let sent_at = clock.now();
                        match e.keep_alive_once(lease).await {
                            Ok(ttl) => {
                                let latency = clock.now().saturating_duration_since(sent_at);
                                metrics.observe_keepalive(latency);
                                Ok(Input::KeepAliveAcked {
                                    lease,
                                    sent_at,
                                    ttl,
                                })
                            }
                            Err(err) => {
                                metrics.count_keepalive_failure();
                                Err(err)
                            }
                        }
                    },
                    move |reason| Input::KeepAliveFailed { lease, reason },
                )
            }
            Command::CreateCandidate { lease } => self.spawn_etcd(
                move |e: Election| async move {
                    let create_revision = e.create_candidate(lease).await?;
                    Ok(Input::CandidateCreated {
                        lease,
                        create_revision,
                    })
                },
                move |reason| Input::CandidateCreateFailed { lease, reason },
            ),
            Command::Resign {
                lease,
                candidate,
                record,
                clear_request,
            } => self.spawn_etcd(
                move |e: Election| async move {
                    e.resign(lease, candidate, record, clear_request).await?;
                    Ok(Input::Resigned { lease })
                },
                move |reason| Input::ResignFailed { lease, reason },
            ),
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
                    let (success, detail) = match fence.run(reason).await {
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

    /// Runs one etcd call in its own task and sends the core its answer: `call`'s input when
    /// it succeeds, `failed(reason)` when it fails or when etcd is not connected yet (every
    /// etcd command has its own failure input, and the core must hear of each one).
    fn spawn_etcd<Call, Answer>(
        &self,
        call: Call,
        failed: impl FnOnce(String) -> Input + Send + 'static,
    ) where
        Call: FnOnce(Election) -> Answer + Send + 'static,
        Answer: Future<Output = Result<Input, EtcdError>> + Send,
    {
        let election = self.connected();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let input = match election {
                Err(reason) => failed(reason),
                Ok(e) => call(e).await.unwrap_or_else(|err| failed(err.to_string())),
            };
            let _ = tx.send(input).await;
        });
    }

    /// The etcd election, or why there is none yet.
    fn connected(&self) -> Result<Election, String> {
        self.election
            .borrow()
            .clone()
            .ok_or_else(|| "not connected to etcd yet".to_string())
    }
}

/// Executes node calls one at a time, in the order the core made them.
pub(crate) fn spawn_node_worker<T: HttpGet>(
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
                    node.set_mode(true).await.map(|()| (None, None)),
                ),
                NodeCall::SetStandby => (
                    NodeCallKind::Deactivate,
                    node.set_mode(false).await.map(|()| (None, None)),
                ),
                NodeCall::ReadMode => (
                    NodeCallKind::ReadMode,
                    node.read_mode().await.map(|active| (Some(active), None)),
                ),
                NodeCall::InstallKey => (NodeCallKind::InstallKey, keys(node.install_key().await)),
                NodeCall::WithdrawKey => {
                    (NodeCallKind::WithdrawKey, keys(node.withdraw_key().await))
                }
                NodeCall::ReadKeys => (NodeCallKind::ReadKeys, keys(node.read_keys().await)),
            };
            metrics.observe_node_call(kind, started.elapsed());
            let input = match result {
                Ok((active, keys)) => {
                    metrics.node.succeeded();
                    if let Some(active) = active {
                        metrics.set_node_mode(active);
                    }
                    if let Some(keys) = keys {
                        metrics.set_node_keys(keys);
                    }
                    Input::NodeCallDone {
                        id,
                        call,
                        active,
                        keys,
                    }
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

/// A key call's answer as the node worker passes it on: what the node lists.
fn keys(
    result: Result<NodeKeys, crate::node::KeyCallError>,
) -> Result<(Option<bool>, Option<NodeKeys>), String> {
    result.map(|keys| (None, Some(keys))).map_err(|e| e.reason)
}

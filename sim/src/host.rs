//! The simulated elector host: what one `elector-i` process runs (the shell's real
//! [`Driver`] over turmoil's network and a drifting clock), its modeled `--fence-cmd`, and
//! what it shares with the world loop (`ElectorSlot`). A crash drops the host's tasks; a
//! restart runs `ElectorHost::run` again.

use crate::schedule::{FENCE_TIMEOUT, FenceOutcome, FenceSetup};
use crate::trace::{Recorder, sim_now};
use crate::transport::{ADMIN_PORT, ETCD_PORT, NodeCell, PROBE_PORT, SimConnect, TurmoilHttp};
use elector::clock::{Clock, TokioClock};
use elector::driver::{Control, Driver, Fence, FenceFuture};
use elector::node::NodeClient;
use elector::status::Status;
use elector_core::{Elector, Settings, Timing};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;

/// The election key, as in production.
pub const KEY: &str = "/iotex-server";

/// What the electors' hosts share with the world loop.
#[derive(Default)]
pub(crate) struct ElectorSlot {
    pub(crate) control: Mutex<Option<mpsc::UnboundedSender<Control>>>,
    pub(crate) exited: Mutex<Option<i32>>,
    boots: AtomicU32,
    /// The running process's `/status` (what an operator or a monitor sees).
    pub(crate) status: Mutex<Option<Arc<Status>>>,
}

/// One fence call.
#[derive(Clone, Debug)]
pub(crate) struct FenceCall {
    pub(crate) elector: usize,
    pub(crate) at: Duration,
}

/// Everything one elector host needs to (re)start.
pub(crate) struct ElectorHost {
    pub(crate) index: usize,
    pub(crate) value: String,
    pub(crate) rate: f64,
    pub(crate) start_delay: Duration,
    pub(crate) timing: Timing,
    pub(crate) mutation: elector_core::Mutation,
    pub(crate) slot: Arc<ElectorSlot>,
    pub(crate) node: Arc<NodeCell>,
    pub(crate) fence: FenceSetup,
    pub(crate) fences: Arc<Mutex<Vec<FenceCall>>>,
    pub(crate) recorder: Recorder,
}

impl ElectorHost {
    fn name(&self) -> String {
        format!("elector-{}", self.index)
    }

    pub(crate) async fn run(self: Arc<Self>) {
        if self.slot.boots.fetch_add(1, Ordering::SeqCst) == 0 && !self.start_delay.is_zero() {
            tokio::time::sleep(self.start_delay).await;
        }
        let clock = TokioClock::with_rate(self.rate);
        let mut settings = Settings::new(self.value.clone(), self.timing.clone());
        settings.mutation = self.mutation;
        let core = match Elector::new(settings, clock.now()) {
            Ok(core) => core,
            Err(error) => {
                self.recorder
                    .record(sim_now(), self.name(), format!("refused to start: {error}"));
                *lock(&self.slot.exited) = Some(2);
                return;
            }
        };
        self.recorder
            .record(sim_now(), self.name(), "process started");
        let node = NodeClient::new(
            TurmoilHttp,
            &format!("http://node-{}:{ADMIN_PORT}", self.index),
            &format!("http://node-{}:{PROBE_PORT}", self.index),
            self.timing.node_timeout,
        );
        let (control, control_rx) = mpsc::unbounded_channel();
        *lock(&self.slot.control) = Some(control);
        let driver = Driver {
            core,
            clock,
            node,
            etcd: SimConnect {
                uri: format!("http://etcd:{ETCD_PORT}"),
                request_timeout: self.timing.etcd_request_timeout,
                ping: elector::etcd::pings_for(&self.timing),
            },
            key: KEY.to_owned(),
            value: self.value.clone(),
            etcd_request_timeout: self.timing.etcd_request_timeout,
            fence: self.fence(),
            status: Status::new(KEY, &self.value),
            state: None,
        };
        *lock(&self.slot.status) = Some(driver.status.clone());
        let code = driver.run(control_rx).await;
        *lock(&self.slot.exited) = Some(code);
    }

    /// The modeled `--fence-cmd`, as the scenario draws it ([`FenceOutcome`]). A run that
    /// reports success has stopped the node's signing before it reports; a run that fails or
    /// times out leaves the node as it is. Without a configured fence every run fails at once,
    /// as the real driver's `Fence::None` does.
    fn fence(self: &Arc<Self>) -> Fence {
        let host = self.clone();
        Fence::Custom(Arc::new(move |reason: String| -> FenceFuture {
            let host = host.clone();
            Box::pin(async move {
                let at = sim_now();
                lock(&host.fences).push(FenceCall {
                    elector: host.index,
                    at,
                });
                let node = host.node.name().to_owned();
                let outcome = host.fence.outcome;
                if outcome == FenceOutcome::Absent {
                    host.recorder.record(
                        at,
                        host.name(),
                        format!("fence needed but no --fence-cmd configured: {reason}"),
                    );
                    return Err("no --fence-cmd configured".to_owned());
                }
                tokio::time::sleep(host.fence.delay).await;
                let now = sim_now();
                if outcome.can_succeed() {
                    host.node.fence(now);
                    host.recorder.record(
                        now,
                        host.name(),
                        format!("fence: {node} stopped, success reported ({reason})"),
                    );
                    Ok(format!("{node} forced standby"))
                } else {
                    let what = match outcome {
                        FenceOutcome::TimesOut => format!(
                            "did not finish within {}s and was killed",
                            FENCE_TIMEOUT.as_secs()
                        ),
                        _ => "exited with status 1".to_owned(),
                    };
                    host.recorder.record(
                        now,
                        host.name(),
                        format!("fence FAILED: {what}, {node} untouched ({reason})"),
                    );
                    Err(format!("fence command {what}"))
                }
            })
        }))
    }
}

/// Locks a mutex shared with the hosts; a panicked host's data is still what it last wrote.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

//! The simulated elector host: what one `elector-i` process runs (the shell's real
//! [`Driver`] over turmoil's network and a drifting clock, with its `--state-dir`), its
//! modeled `--fence-cmd`, systemd's `ExecStopPost=` (the shell's own `elector force-standby`,
//! [`ForceStandby`]), and what it shares with the world loop (`ElectorSlot`). A crash drops
//! the host's tasks; the world then (re)starts the host's software in the mode it sets:
//! the elector, or its `ExecStopPost=`.

use crate::seed::schedule::{FENCE_TIMEOUT, FenceOutcome, FenceSetup};
use crate::seed::trace::{Recorder, sim_now};
use crate::world::transport::{
    ADMIN_PORT, ETCD_PORT, NodeCell, PROBE_PORT, SimConnect, TurmoilHttp,
};
use elector::clock::{Clock, TokioClock};
use elector::custody::{KeyCustody, ProducerKey};
use elector::driver::{Control, Driver, Fence, FenceFuture};
use elector::node::{NodeClient, NodeTimeouts};
use elector::standby::{DeadTermEnding, ForceStandby};
use elector::state::StateFile;
use elector::telemetry::Telemetry;
use elector_core::{Elector, Settings, Timing};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;

/// The election key, as in production.
pub const KEY: &str = "/iotex-server";

/// The nodes' admin token (`IOTEX_ADMIN_TOKEN`) under key custody.
pub(crate) const ADMIN_TOKEN: &str = "sim-admin-token";

/// The operator's producer key, shared by every replica: a fixed key, so that its address is
/// the one the product derives.
pub(crate) fn operator_key() -> ProducerKey {
    ProducerKey::parse(&"11".repeat(32)).expect("a valid fixed key")
}

/// Replica `index`'s placeholder key under key custody: a key of its own, no delegate's.
pub(crate) fn placeholder_key(index: usize) -> ProducerKey {
    let byte = 0x20 + (index % 0x40) as u8;
    ProducerKey::parse(&format!("{byte:02x}").repeat(32)).expect("a valid fixed key")
}

/// What an elector host's software runs when the world (re)starts it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum HostMode {
    /// The elector (`ExecStart=`).
    #[default]
    Elector,
    /// systemd's `ExecStopPost=`: `elector force-standby`, after the elector exited or died.
    StopPost,
}

/// What the electors' hosts share with the world loop.
#[derive(Default)]
pub(crate) struct ElectorSlot {
    pub(crate) control: Mutex<Option<mpsc::UnboundedSender<Control>>>,
    pub(crate) exited: Mutex<Option<i32>>,
    /// What the software runs at the host's next (re)start.
    pub(crate) mode: Mutex<HostMode>,
    /// The outcome of the last `ExecStopPost=` run, once it finished.
    pub(crate) stop_post_done: Mutex<Option<Result<Vec<String>, String>>>,
    boots: AtomicU32,
    /// The running process's `/status` (what an operator or a monitor sees).
    pub(crate) telemetry: Mutex<Option<Arc<Telemetry>>>,
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
    /// Key custody (the elector and its `ExecStopPost=` alike).
    pub(crate) custody: bool,
    pub(crate) slot: Arc<ElectorSlot>,
    pub(crate) node: Arc<NodeCell>,
    pub(crate) fence: FenceSetup,
    pub(crate) fences: Arc<Mutex<Vec<FenceCall>>>,
    pub(crate) recorder: Recorder,
    /// `--state-dir` (and `ExecStopPost=`'s): a directory of its own, kept across crashes.
    pub(crate) state_dir: PathBuf,
}

impl ElectorHost {
    fn name(&self) -> String {
        format!("elector-{}", self.index)
    }

    /// The host's software, in the mode the world set.
    pub(crate) async fn run(self: Arc<Self>) {
        let mode = *lock(&self.slot.mode);
        match mode {
            HostMode::Elector => self.run_elector().await,
            HostMode::StopPost => {
                let outcome = self.stop_post().await;
                *lock(&self.slot.stop_post_done) = Some(outcome);
            }
        }
    }

    /// `--state-dir`'s term file, for this host's node (the elector and its `ExecStopPost=`
    /// name it alike, as their shared flags do).
    fn state_file(&self) -> StateFile {
        StateFile::new(&self.state_dir, KEY, &self.value).for_node(&self.admin_url())
    }

    fn admin_url(&self) -> String {
        format!("http://node-{}:{ADMIN_PORT}", self.index)
    }

    fn etcd(&self) -> SimConnect {
        SimConnect {
            uri: format!("http://etcd:{ETCD_PORT}"),
            request_timeout: self.timing.etcd_request_timeout,
            ping: elector::etcd::pings_for(&self.timing),
        }
    }

    fn node_client(&self) -> NodeClient<TurmoilHttp> {
        let client = NodeClient::new(
            TurmoilHttp,
            &self.admin_url(),
            &format!("http://node-{}:{PROBE_PORT}", self.index),
            NodeTimeouts::of(&self.timing),
        );
        if !self.custody {
            return client;
        }
        client.with_custody(KeyCustody::new(
            operator_key(),
            placeholder_key(self.index),
            ADMIN_TOKEN,
        ))
    }

    /// systemd's `ExecStopPost=`: what `elector force-standby` does with the elector's
    /// settings (shared environment file): `activate=false`, confirmed by a read within its
    /// default `--timeout` (10 s), then the end of the term `--state-dir` remembers (rule
    /// `end_dead_term`); the fence if standby is not confirmed.
    async fn stop_post(self: &Arc<Self>) -> Result<Vec<String>, String> {
        ForceStandby {
            node: self.node_client(),
            key_custody: self.custody,
            admin: self.admin_url(),
            timeout: FORCE_STANDBY_TIMEOUT,
            confirm_poll_interval: self.timing.confirm_poll_interval,
            fence: self.fence(),
            dead_term: Some(DeadTermEnding {
                state: self.state_file(),
                key: KEY.to_owned(),
                value: self.value.clone(),
                etcd: self.etcd(),
                request_timeout: self.timing.etcd_request_timeout,
            }),
        }
        .run()
        .await
    }

    async fn run_elector(self: Arc<Self>) {
        if self.slot.boots.fetch_add(1, Ordering::SeqCst) == 0 && !self.start_delay.is_zero() {
            tokio::time::sleep(self.start_delay).await;
        }
        let clock = TokioClock::with_rate(self.rate);
        let mut settings = Settings::new(self.value.clone(), self.timing.clone());
        settings.mutation = self.mutation;
        settings.key_custody = self.custody;
        // `--state-dir`: the term a crashed previous process left (rule `end_dead_term`).
        let state = self.state_file();
        match state.load() {
            Ok(previous) => {
                if let Some(term) = &previous {
                    self.recorder.record(
                        sim_now(),
                        self.name(),
                        format!(
                            "found the term of a previous process in --state-dir (lease {:x}): it is ended once the node reads standby",
                            term.id.lease
                        ),
                    );
                }
                settings.previous_term = previous;
            }
            Err(e) => {
                self.recorder
                    .record(sim_now(), self.name(), format!("warn: --state-dir: {e}"))
            }
        }
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
        let node = self.node_client();
        let (control, control_rx) = mpsc::unbounded_channel();
        *lock(&self.slot.control) = Some(control);
        let driver = Driver {
            core,
            clock,
            node,
            etcd: self.etcd(),
            key: KEY.to_owned(),
            value: self.value.clone(),
            etcd_request_timeout: self.timing.etcd_request_timeout,
            fence: self.fence(),
            telemetry: Telemetry::new(KEY, &self.value),
            state: Some(state),
        };
        *lock(&self.slot.telemetry) = Some(driver.telemetry.clone());
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

/// `elector force-standby`'s default `--timeout`, which the shipped unit's `ExecStopPost=`
/// keeps.
pub const FORCE_STANDBY_TIMEOUT: Duration = Duration::from_secs(10);

/// Locks a mutex shared with the hosts; a panicked host's data is still what it last wrote.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

//! The Go election as the benchmark's baseline: `etcdctl elect` (etcd's `concurrency.Election`,
//! the code the Go elector uses) with a wrapper doing what the Go elector does on winning.

use crate::etcd_process::EtcdctlProcess;
use crate::host::http_get_blocking;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long the Go elector waits before calling a node again that did not answer 200.
const ACTIVATION_RETRY: Duration = Duration::from_secs(10);
/// How long the wrapper waits for a line of etcdctl before checking for a kill request.
const LINE_WAIT: Duration = Duration::from_millis(5);
/// Bound on the wrapper's report of a kill.
const KILL_REPORT_BOUND: Duration = Duration::from_secs(5);

/// `etcdctl elect` and a wrapper thread that does what the Go elector does on winning: call
/// `/ha?activate=true`, retried every 10 s until it answers 200; never deactivate.
pub struct GoCandidate {
    kill: Option<mpsc::Sender<()>>,
    killed: mpsc::Receiver<Instant>,
    thread: Option<thread::JoinHandle<()>>,
}

impl GoCandidate {
    /// Starts the wrapper around a running `etcdctl elect`; `admin` is its node's admin address.
    pub fn start(mut etcdctl: EtcdctlProcess, admin: SocketAddr) -> GoCandidate {
        let (kill_tx, kill_rx) = mpsc::channel::<()>();
        let (killed_tx, killed_rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            let mut leads = false;
            let mut activated = false;
            let mut next_try = Instant::now();
            // Ends when asked to, or when the handle is gone: each turn waits at most a few ms
            // for etcdctl and one bounded activation call.
            loop {
                match kill_rx.try_recv() {
                    Err(mpsc::TryRecvError::Empty) => {}
                    // Asked to, or the handle is gone: kill -9.
                    _ => {
                        let at = Instant::now();
                        etcdctl.kill();
                        let _ = killed_tx.send(at);
                        return;
                    }
                }
                // etcdctl elect prints the key and the value once it leads.
                if etcdctl.next_line(LINE_WAIT).is_ok() {
                    leads = true;
                }
                if leads && !activated && Instant::now() >= next_try {
                    match http_get_blocking(admin, "/ha?activate=true") {
                        Ok((200, _)) => activated = true,
                        _ => next_try = Instant::now() + ACTIVATION_RETRY,
                    }
                }
            }
        });
        GoCandidate {
            kill: Some(kill_tx),
            killed: killed_rx,
            thread: Some(thread),
        }
    }

    /// kill -9 of etcdctl; returns the instant of the kill.
    pub async fn kill9(mut self) -> Result<Instant> {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        let killed = std::mem::replace(&mut self.killed, mpsc::channel().1);
        tokio::task::spawn_blocking(move || killed.recv_timeout(KILL_REPORT_BOUND))
            .await?
            .context("the etcdctl wrapper did not report its kill")
    }
}

impl Drop for GoCandidate {
    fn drop(&mut self) {
        self.kill.take();
        if let Some(thread) = self.thread.take() {
            // It notices within a few ms (an activation call in flight: within 2 × 3 s).
            let _ = thread.join();
        }
    }
}

//! One replica of a [`super::ReplicaSet`]: the lives of its stand-in node (a crashed host's
//! node is replaced by a new one, and every life's history stays) and its candidate.

use super::{FlagStyle, Host};
use crate::go_election::GoCandidate;
use crate::host::Guarded;
use crate::standin::{ClockAnchor, StandIn};
use elector_model::history::History;
use elector_model::node::Signature;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Instant;

/// One life of a stand-in node; a crashed host's node is replaced by a new one.
pub(super) struct NodeLife {
    pub(super) standin: Option<StandIn>,
    /// This process's clock and the stand-ins' (the wall clock) read together: what puts its
    /// history on the run's clock.
    pub(super) anchor: ClockAnchor,
    /// Its history once stopped (a stopped node is inactive), on the model's clock.
    pub(super) history: Option<History>,
    /// What it signed, once stopped.
    pub(super) signatures: Option<Vec<Signature>>,
}

impl NodeLife {
    /// Its history so far, on the model's clock (since the UNIX epoch).
    pub(super) fn history(&self) -> History {
        match (&self.history, &self.standin) {
            (Some(h), _) => h.clone(),
            (None, Some(n)) => n.state().history,
            (None, None) => Vec::new(),
        }
    }

    /// When model time `at` was, on this process's clock.
    pub(super) fn instant_of(&self, at: std::time::Duration) -> Instant {
        self.anchor.instant_of(at)
    }

    /// Its history so far, on the run's clock.
    pub(super) fn history_on(&self, host: &Host) -> History {
        self.history()
            .into_iter()
            .map(|(t, a)| (host.on_clock(self.instant_of(t)), a))
            .collect()
    }

    /// Everything it signed so far (model times).
    pub(super) fn signatures(&self) -> Vec<Signature> {
        match (&self.signatures, &self.standin) {
            (Some(s), _) => s.clone(),
            (None, Some(n)) => n.signatures(),
            (None, None) => Vec::new(),
        }
    }
}

/// How a replica takes part in the election.
pub(super) enum Candidate {
    None,
    /// Its last elector process, running or ended (its exit status stays readable).
    Elector(Guarded),
    Go(GoCandidate),
}

/// A stand-in node (its lives) and its candidate.
pub struct Replica {
    pub(super) value: String,
    pub(super) lives: Vec<NodeLife>,
    pub(super) candidate: Candidate,
    pub(super) flags: FlagStyle,
    /// Its own etcd endpoints, instead of the host's.
    pub(super) etcd: Option<String>,
    pub(super) status_port: Option<u16>,
    pub(super) log: PathBuf,
}

impl Replica {
    /// Its value in the election.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Its current node, unless it crashed.
    pub fn node(&self) -> Option<&StandIn> {
        self.lives.last().and_then(|l| l.standin.as_ref())
    }

    /// Whether its node is effectively active now (a deactivation tail counts).
    pub fn is_active(&self) -> bool {
        self.node().is_some_and(|n| n.state().active)
    }

    pub(super) fn elector(&self) -> Option<&Guarded> {
        match &self.candidate {
            Candidate::Elector(g) => Some(g),
            _ => None,
        }
    }

    /// The process id of its elector, while one runs.
    pub fn elector_pid(&self) -> Option<u32> {
        self.elector().filter(|g| g.is_running()).map(Guarded::pid)
    }

    /// Whether its elector process runs (not exited, not killed).
    pub fn elector_running(&self) -> bool {
        self.elector().is_some_and(Guarded::is_running)
    }

    /// The exit status of its last elector process, once it ended.
    pub fn elector_exit(&self) -> Option<ExitStatus> {
        self.elector().and_then(Guarded::exit)
    }

    /// The loopback port of its elector's status server, if it has one.
    pub fn status_port(&self) -> Option<u16> {
        self.status_port
    }

    /// The address of its elector's status server, if it has one.
    pub fn status_addr(&self) -> Option<SocketAddr> {
        self.status_port
            .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }

    /// Its elector log file (every start appended).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Its elector log so far (empty if none was written).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of its elector log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

//! What every phase shares: the environment its replica sets run in (one etcd, the elector
//! binary, a log directory), running sets at once, and the check of the one property on each
//! finished set.

use super::etcd::Etcd;
use super::units::fmt_overlap;
use elector_integration::replica_set::{FlagStyle, Host, ReplicaSet};
use elector_integration::timing_profile::TimingProfile;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Bound on reaching a state the cluster should reach by itself (an election, a failover).
pub(super) const SETTLE: Duration = Duration::from_secs(90);

/// What a finished set's nodes say about the one property: the total time two nodes were
/// active at once ([`ReplicaSet::overlap`], a proxy) and the slots signed by two replicas
/// ([`ReplicaSet::double_signs`], the property itself), with how much each check read.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub(super) struct SetCheck {
    pub(super) overlap: Duration,
    pub(super) histories: usize,
    pub(super) signatures: usize,
    pub(super) double_signs: usize,
}

impl SetCheck {
    pub(super) fn of(set: &ReplicaSet) -> SetCheck {
        let (overlap, histories) = set.overlap();
        let signatures = set.signatures();
        SetCheck {
            overlap,
            histories,
            signatures: signatures.iter().map(Vec::len).sum(),
            double_signs: elector_model::history::double_signs(&signatures).len(),
        }
    }

    pub(super) fn add(&mut self, other: SetCheck) {
        self.overlap += other.overlap;
        self.histories += other.histories;
        self.signatures += other.signatures;
        self.double_signs += other.double_signs;
    }

    /// No slot signed twice and never two nodes active: anything else fails the run.
    pub(super) fn clean(&self) -> bool {
        self.double_signs == 0 && self.overlap.is_zero()
    }

    /// A table cell: slots signed twice / time two nodes were active, "0 / 0" when clean.
    pub(super) fn cell(&self) -> String {
        if self.clean() {
            "0 / 0".to_owned()
        } else {
            format!(
                "**{} / {:.3} s**",
                self.double_signs,
                self.overlap.as_secs_f64()
            )
        }
    }

    /// For the report: "no slot signed twice (412 signatures), dual-active never (12 node
    /// histories)".
    pub(super) fn describe(&self) -> String {
        let signed = if self.double_signs == 0 {
            "no slot signed twice".to_owned()
        } else {
            format!("**{} slot(s) signed twice**", self.double_signs)
        };
        format!(
            "{signed} ({} signatures), dual-active {} ({} node histories)",
            self.signatures,
            fmt_overlap(self.overlap),
            self.histories
        )
    }
}

/// The environment every replica set shares.
pub(super) struct Env {
    pub(super) origin: Instant,
    pub(super) etcd: Etcd,
    pub(super) elector: PathBuf,
    pub(super) logs: PathBuf,
}

impl Env {
    pub(super) fn host(&self) -> Host {
        Host {
            origin: self.origin,
            etcd: self.etcd.process.endpoint(),
            elector: self.elector.clone(),
            logs: self.logs.clone(),
        }
    }

    /// Runs `scenario` on `clusters` replica sets at once, set `c` on the key
    /// `/bench/<name>-<c>`; returns each outcome with the set's [`SetCheck`]. Every set is
    /// shut down.
    pub(super) async fn in_parallel<T>(
        &self,
        name: &str,
        profile: TimingProfile,
        clusters: usize,
        scenario: impl AsyncFn(&mut ReplicaSet, usize) -> T,
    ) -> Vec<(T, SetCheck)> {
        let scenario = &scenario;
        join_all((0..clusters).map(|c| async move {
            let key = format!("/bench/{name}-{c}");
            let mut set = ReplicaSet::new(self.host(), key, profile, FlagStyle::Conventional);
            let outcome = scenario(&mut set, c).await;
            let check = SetCheck::of(&set);
            set.shutdown().await;
            (outcome, check)
        }))
        .await
    }
}

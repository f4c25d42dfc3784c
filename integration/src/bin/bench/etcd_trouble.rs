//! The `etcd-trouble` phase: three electors, each given all three endpoints of a three-member
//! etcd cluster. First each member in turn, the raft leader first, is frozen (SIGSTOP) for
//! [`hold`] and thawed, then killed for as long and started again, each restored before the
//! next: demotions and leadership moves are counted (the goal is none while a majority is
//! up). Then the whole cluster is frozen for increasing lengths until the leader demotes: the
//! longest etcd-wide outage it rode through.

use super::env::{SETTLE, SetCheck};
use anyhow::{Context, Result, bail};
use elector_integration::etcd_process::{EtcdProcess, raft_leader};
use elector_integration::replica_set::{FlagStyle, Host, ReplicaSet};
use elector_integration::timing_profile::TimingProfile;
use elector_model::history::History;
use etcd_client::{Client, GetOptions};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::task::block_in_place;

/// Members of the cluster: the smallest that keeps a majority with one member down.
const MEMBERS: usize = 3;

/// How long one member stays frozen or dead: the lease TTL and 2 s more, so that a leader
/// that could not switch to a live member would have lost its lease meanwhile.
fn hold(profile: TimingProfile) -> Duration {
    profile.timing().lease_ttl + Duration::from_secs(2)
}

/// Quiet time after a member is restored, before the next one is disturbed.
const SETTLE_BETWEEN: Duration = Duration::from_secs(2);

/// The etcd-wide freezes tried, in tenths of the lease TTL: from 0.3 TTL to 1.5 TTL.
const OUTAGE_TENTHS: std::ops::RangeInclusive<u32> = 3..=15;

/// After an etcd-wide freeze, how long to watch for a demotion once etcd serves again: a
/// leader whose lease expired meanwhile learns it at its next keep-alive.
fn after_thaw(profile: TimingProfile) -> Duration {
    profile.timing().keepalive_interval * 3 + Duration::from_secs(1)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Trouble {
    Freeze,
    Kill,
}

/// One disturbance of one member and what the electors did meanwhile.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct MemberTrouble {
    pub(super) member: String,
    pub(super) raft_leader: bool,
    pub(super) trouble: Trouble,
    pub(super) held: f64,
    /// Active nodes that went inactive.
    pub(super) demotions: usize,
    /// Of those, demotions because etcd ended a lease its leader still held (its key deleted,
    /// or a keep-alive answered "not found", before the step-down deadline): the leader's log
    /// says `demoting: lease lost`. etcd before 3.4.31 revokes every lease when a frozen raft
    /// leader is thawed (etcd issue #15247).
    pub(super) by_etcd: usize,
    /// Nodes that became active.
    pub(super) moves: usize,
}

/// One etcd-wide freeze and whether the leader rode through it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Outage {
    pub(super) length: f64,
    pub(super) demoted: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct TroubleResult {
    #[serde(with = "profile_by_name")]
    pub(super) profile: TimingProfile,
    pub(super) members: Vec<MemberTrouble>,
    pub(super) outages: Vec<Outage>,
    pub(super) check: SetCheck,
    pub(super) wall: Duration,
    pub(super) error: Option<String>,
}

/// A timing profile in the results: its name, as `elector-sim --profile` spells it.
mod profile_by_name {
    use elector_integration::timing_profile::TimingProfile;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(
        profile: &TimingProfile,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(profile.name())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<TimingProfile, D::Error> {
        let name = String::deserialize(deserializer)?;
        TimingProfile::from_name(&name)
            .ok_or_else(|| D::Error::custom(format!("unknown timing profile {name:?}")))
    }
}

impl TroubleResult {
    /// The longest etcd-wide freeze tried that the leader rode through, if shorter ones all
    /// passed too.
    pub(super) fn ride_through(&self) -> Option<f64> {
        self.outages
            .iter()
            .take_while(|o| !o.demoted)
            .map(|o| o.length)
            .last()
    }

    /// The shortest freeze that made the leader demote.
    pub(super) fn first_demotion(&self) -> Option<f64> {
        self.outages.iter().find(|o| o.demoted).map(|o| o.length)
    }
}

/// What a leader's log says, once per demotion, when etcd ended its lease before its step-down
/// deadline (the role change into stepping-down with the core's demotion reason; later role
/// changes of the same demotion repeat the reason without this arrow).
const DEMOTED_BY_ETCD: &str = "-> stepping-down: demoting: lease lost";

/// How many times each replica's elector log says [`DEMOTED_BY_ETCD`] so far.
fn demoted_by_etcd(set: &ReplicaSet) -> Vec<usize> {
    set.replicas()
        .iter()
        .map(|r| r.log().matches(DEMOTED_BY_ETCD).count())
        .collect()
}

/// Demotions (an active node going inactive) and activations in `histories` at or after
/// `since` (on the run's clock).
fn changes_since(histories: &[History], since: Duration) -> (usize, usize) {
    let (mut demotions, mut activations) = (0, 0);
    for history in histories {
        let mut active = false;
        for &(at, now_active) in history {
            if at >= since && now_active != active {
                if now_active {
                    activations += 1;
                } else {
                    demotions += 1;
                }
            }
            active = now_active;
        }
    }
    (demotions, activations)
}

pub(super) async fn etcd_trouble_phase(
    host: Host,
    profile: TimingProfile,
    dir: &Path,
) -> TroubleResult {
    let started = Instant::now();
    let mut result = TroubleResult {
        profile,
        members: Vec::new(),
        outages: Vec::new(),
        check: SetCheck::default(),
        wall: Duration::ZERO,
        error: None,
    };
    let outcome = async {
        std::fs::create_dir_all(dir)?;
        // Members' data and logs go in `dir`, to be kept with the elector logs.
        let mut etcd = block_in_place(|| EtcdProcess::start_cluster(MEMBERS, Some(dir)))?;
        let key = format!("/bench/etcd-trouble-{}", profile.name());
        let mut set = ReplicaSet::new(host, key, profile, FlagStyle::Conventional);
        let endpoints: Vec<String> = etcd.iter().map(EtcdProcess::endpoint).collect();
        set.set_etcd_endpoints(endpoints.join(","));
        let outcome = trouble(&mut etcd, &endpoints, &mut set, profile, &mut result).await;
        result.check = SetCheck::of(&set);
        set.shutdown().await;
        outcome
    }
    .await;
    if let Err(e) = outcome {
        result.error = Some(format!("{e:#}"));
    }
    result.wall = started.elapsed();
    result
}

/// The etcd fixture's waits block: they run in `block_in_place`, so the stand-in nodes,
/// served on this runtime, go on answering the electors meanwhile.
async fn trouble(
    etcd: &mut [EtcdProcess],
    endpoints: &[String],
    set: &mut ReplicaSet,
    profile: TimingProfile,
    result: &mut TroubleResult,
) -> Result<()> {
    for value in ["a", "b", "c"] {
        let i = set.add_replica(value.to_owned(), false).await?;
        set.start_elector(i)?;
    }
    set.wait_active(None, SETTLE).await?;
    wait_candidates(endpoints, set.key(), MEMBERS as i64).await?;
    let hold = hold(profile);
    let first = raft_leader(endpoints).await?;
    let order: Vec<usize> = std::iter::once(first)
        .chain((0..MEMBERS).filter(|&m| m != first))
        .collect();
    for m in order {
        for trouble in [Trouble::Freeze, Trouble::Kill] {
            let leads_raft = raft_leader(endpoints).await? == m;
            let since = set.host().on_clock(Instant::now());
            let by_etcd_before = demoted_by_etcd(set);
            match trouble {
                Trouble::Freeze => etcd[m].pause()?,
                Trouble::Kill => etcd[m].kill(),
            }
            tokio::time::sleep(hold).await;
            match trouble {
                Trouble::Freeze => {
                    etcd[m].resume()?;
                    block_in_place(|| etcd[m].wait_until_serving())?;
                }
                // On the same data directory: the member rejoins.
                Trouble::Kill => block_in_place(|| etcd[m].start())?,
            }
            tokio::time::sleep(SETTLE_BETWEEN).await;
            let (demotions, moves) = changes_since(&set.histories(), since);
            let by_etcd = demoted_by_etcd(set)
                .iter()
                .zip(&by_etcd_before)
                .map(|(now, before)| now - before)
                .sum();
            result.members.push(MemberTrouble {
                member: etcd[m].name().to_owned(),
                raft_leader: leads_raft,
                trouble,
                held: hold.as_secs_f64(),
                demotions,
                by_etcd,
                moves,
            });
            set.wait_active(None, SETTLE).await?;
            wait_candidates(endpoints, set.key(), MEMBERS as i64).await?;
        }
    }
    let ttl = profile.timing().lease_ttl;
    for tenths in OUTAGE_TENTHS {
        let length = ttl * tenths / 10;
        let since = set.host().on_clock(Instant::now());
        for member in etcd.iter_mut() {
            member.pause()?;
        }
        tokio::time::sleep(length).await;
        for member in etcd.iter_mut() {
            member.resume()?;
        }
        block_in_place(|| {
            etcd.iter_mut()
                .try_for_each(EtcdProcess::wait_until_serving)
        })?;
        tokio::time::sleep(after_thaw(profile)).await;
        let (demotions, moves) = changes_since(&set.histories(), since);
        let demoted = demotions + moves > 0;
        result.outages.push(Outage {
            length: length.as_secs_f64(),
            demoted,
        });
        if demoted {
            break;
        }
        wait_candidates(endpoints, set.key(), MEMBERS as i64).await?;
    }
    // The cluster recovers by itself (one active node again) before it is torn down.
    set.wait_active(None, SETTLE).await?;
    Ok(())
}

/// Waits (bounded) until `count` candidate keys are under `<key>/`, read from the cluster at
/// `endpoints`.
async fn wait_candidates(endpoints: &[String], key: &str, count: i64) -> Result<()> {
    let mut client = Client::connect(endpoints, None)
        .await
        .context("connecting to the etcd cluster")?;
    let deadline = Instant::now() + SETTLE;
    loop {
        let found = client
            .get(
                format!("{key}/"),
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .context("counting candidates")?
            .count();
        if found == count {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{key}: {found} candidates, not {count}, within {SETTLE:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

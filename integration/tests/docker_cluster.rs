//! The elector against a real three-member etcd 3.4.23 cluster on a private Docker network,
//! under the faults users' clusters see: the active replica's elector dies, the
//! member the leader talks to freezes (`docker pause`), the raft leader member stops, the
//! leader's elector is cut off the network for real, the whole cluster restarts.
//!
//! Every case records the nodes' mode histories, checks never-two-active with the
//! simulation's checker, and asserts the timing bounds of docs/safety.md. Electors run on the
//! host (reaching the members' ports published on 127.0.0.1), except in the partition case,
//! where each elector runs in a container sharing its stand-in node's network namespace.
//! Skipped with a loud message when no Docker engine answers, unless
//! `ELECTOR_REQUIRE_DOCKER=1`. Images: `make etcd-image` (and `make image` for the partition).

use anyhow::{Context, Result, anyhow, ensure};
use elector_integration::containers::etcd::EtcdCluster;
use elector_integration::containers::replicas::{
    ContainerReplicas, ElectionWatch, HostReplicas, ProfileBounds,
};
use elector_integration::containers::{DockerTest, elector_image, etcd_image, stand_in_image};
use std::time::{Duration, Instant};

const KEY: &str = "/iotex-cluster";
const MEMBERS: usize = 3;
/// Bound on the cluster serving again after members come back.
const HEAL_WITHIN: Duration = Duration::from_secs(40);

async fn begin(test: &str) -> Result<Option<DockerTest>> {
    let Some(docker) = DockerTest::begin(test).await else {
        return Ok(None);
    };
    docker
        .require_image(&etcd_image(), "make etcd-image")
        .await?;
    Ok(Some(docker))
}

/// The candidate key holding `value`, read through `endpoint`.
async fn candidate_key(endpoint: &str, value: &str) -> Result<String> {
    let read = async {
        let mut client = etcd_client::Client::connect([endpoint], None).await?;
        client
            .get(
                format!("{KEY}/"),
                Some(etcd_client::GetOptions::new().with_prefix()),
            )
            .await
    };
    let answer = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .context("reading the candidates timed out")??;
    answer
        .kvs()
        .iter()
        .find(|kv| kv.value() == value.as_bytes())
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .with_context(|| format!("no candidate key holds {value:?}"))
}

/// A failed case's error with every etcd member's log tail appended: leader changes, lease
/// revocations and slow requests explain most surprises here.
async fn with_etcd_logs(cluster: &EtcdCluster, outcome: Result<()>) -> Result<()> {
    match outcome {
        Ok(()) => Ok(()),
        Err(error) => Err(anyhow!(
            "{error:?}\n\netcd members' logs:\n{}",
            cluster.log_tails(30).await
        )),
    }
}

fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// The active replica's elector is killed (SIGKILL); its supervisor commands the node standby
/// (as `ExecStopPost=` does). Another replica takes over only after etcd expired the dead
/// leader's lease (its key's deletion) plus the activation delay, within the takeover bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leader_elector_is_taken_over() -> Result<()> {
    let Some(docker) = begin("killed_leader_elector_is_taken_over").await? else {
        return Ok(());
    };
    let cluster = EtcdCluster::start(docker.docker(), MEMBERS).await?;
    let outcome = async {
        let profile = ProfileBounds::fast();
        let mut replicas =
            HostReplicas::start(KEY, &profile, &vec![cluster.endpoints(); 3], &[], &[]).await?;
        let leader = replicas
            .wait_single_active(None, profile.first_activation_bound())
            .await?;
        let witness = cluster.member(0).endpoint();
        let leader_key = candidate_key(&witness, replicas.value(leader)).await?;
        let watch = ElectionWatch::start(&witness, KEY).await?;

        let killed = replicas.now();
        replicas.kill_elector(leader)?;
        replicas.force_standby(leader).await?;
        let next = replicas
            .wait_single_active(Some(leader), profile.takeover_bound())
            .await?;
        let standby = replicas
            .last_change(leader, false)
            .context("never standby")?;
        let activated = replicas.last_change(next, true).context("no activation")?;
        let deleted = replicas.at(watch
            .deleted_at(&leader_key)
            .context("the dead leader's key was never deleted")?);
        ensure!(
            standby - killed <= profile.timing.restart_bound + profile.timing.drain_bound,
            "the dead leader's node stayed active {:.2}s",
            secs(standby - killed)
        );
        // The new leader saw the key go (its watch is as quick as ours, give or take 100 ms) and
        // then waited the activation delay: nothing recorded that the old node was standby.
        ensure!(
            activated + Duration::from_millis(100) >= deleted + profile.timing.activation_delay,
            "{} activated {:.2}s after the dead leader's key was deleted, before the activation \
             delay",
            replicas.value(next),
            secs(activated.saturating_sub(deleted))
        );
        replicas.assert_sole_active_for(next, profile.ttl()).await?;
        replicas.check_never_two_active()?;
        eprintln!(
            "kill: {} -> {} in {:.2}s (bound {:.2}s); lease expired +{:.2}s; old node standby \
             +{:.2}s",
            replicas.value(leader),
            replicas.value(next),
            secs(activated - killed),
            secs(profile.takeover_bound()),
            secs(deleted.saturating_sub(killed)),
            secs(standby - killed)
        );
        Ok::<(), anyhow::Error>(())
    }
    .await;
    with_etcd_logs(&cluster, outcome).await
}

/// Each elector talks to one member. The member the leader talks to is frozen
/// (`docker pause`) for longer than the TTL: the leader's node goes standby before its lease
/// can expire (by its lease deadline, and before etcd actually deleted its key),
/// another replica takes over meanwhile, and after the unpause there is still one leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_member_makes_its_leader_step_down_in_time() -> Result<()> {
    let Some(docker) = begin("paused_member_makes_its_leader_step_down_in_time").await? else {
        return Ok(());
    };
    let cluster = EtcdCluster::start(docker.docker(), MEMBERS).await?;
    let outcome = async {
        let profile = ProfileBounds::fast();
        let endpoints: Vec<Vec<String>> =
            cluster.endpoints().into_iter().map(|e| vec![e]).collect();
        let replicas = HostReplicas::start(KEY, &profile, &endpoints, &[], &[]).await?;
        let leader = replicas
            .wait_single_active(None, profile.first_activation_bound())
            .await?;
        let witness = cluster.member((leader + 1) % MEMBERS);
        let leader_key = candidate_key(&witness.endpoint(), replicas.value(leader)).await?;
        let watch = ElectionWatch::start(&witness.endpoint(), KEY).await?;

        let pause_started = Instant::now();
        let paused = replicas.now();
        cluster.member(leader).pause().await?;
        let next = replicas
            .wait_single_active(Some(leader), profile.takeover_bound())
            .await?;
        let standby = replicas
            .last_change(leader, false)
            .context("never standby")?;
        let deleted = replicas.at(watch.wait_deleted(&leader_key, profile.ttl()).await?);
        let earliest_expiry = profile.earliest_expiry_after_cut(paused);
        let deadline = profile.lease_deadline_after_cut(paused);
        ensure!(
            standby > paused && standby <= deadline && standby < deleted,
            "the leader's node went standby at {:.2}s; paused at {:.2}s, its lease deadline at \
             the latest {:.2}s, key deleted at {:.2}s",
            secs(standby),
            secs(paused),
            secs(deadline),
            secs(deleted)
        );
        // Keep the member frozen for longer than the TTL in any case.
        let hold = (profile.ttl() + Duration::from_secs(1)).saturating_sub(pause_started.elapsed());
        tokio::time::sleep(hold).await;
        cluster.member(leader).unpause().await?;
        let unpaused = replicas.now();

        // One leader after the unpause; the old leader campaigns again behind it. etcd before
        // 3.4.31 (this is 3.4.23) may revoke every lease when a frozen raft leader resumes
        // (etcd issue #15247): `next` then sees its key go and demotes at once, every
        // candidate campaigns again, and the new leader waits the activation delay. Allowed,
        // but only as that: `next` must have lost its key, not its lease deadline, and the
        // cluster must settle on one leader again.
        tokio::time::sleep(profile.ttl() * 2).await;
        let after = replicas
            .wait_single_active(None, profile.takeover_bound())
            .await?;
        replicas
            .assert_sole_active_for(after, profile.ttl())
            .await?;
        let demoted_after_unpause = replicas
            .histories()
            .get(next)
            .is_some_and(|history| history.iter().any(|&(at, active)| !active && at > unpaused));
        let revoked = replicas
            .elector_log(next)
            .contains("lease lost: our candidate key was deleted");
        ensure!(
            !demoted_after_unpause || revoked,
            "{} lost its lead after the unpause without etcd deleting its key\n{}",
            replicas.value(next),
            replicas.log_tails(20)
        );
        let rejoined = watch
            .events()
            .iter()
            .any(|e| e.value.as_deref() == Some(replicas.value(leader)));
        ensure!(
            rejoined,
            "{} did not campaign again after the unpause",
            replicas.value(leader)
        );
        replicas.check_never_two_active()?;
        eprintln!(
            "pause: {} standby {:.2}s after the pause (earliest expiry +{:.2}s, key deleted \
             +{:.2}s); {} active +{:.2}s; paused {:.1}s; {}",
            replicas.value(leader),
            secs(standby - paused),
            secs(earliest_expiry - paused),
            secs(deleted - paused),
            replicas.value(next),
            secs(replicas.last_change(next, true).unwrap_or_default() - paused),
            secs(unpaused - paused),
            if demoted_after_unpause {
                format!(
                    "etcd revoked the live leases as the frozen member resumed, {} leads now",
                    replicas.value(after)
                )
            } else {
                "no change after the unpause".to_owned()
            }
        );
        Ok::<(), anyhow::Error>(())
    }
    .await;
    with_etcd_logs(&cluster, outcome).await
}

/// With the default profile (10 s lease), the raft leader member is stopped (`docker stop`:
/// it hands leadership over and exits). The electors have every member's endpoint: while the
/// cluster re-elects, the active node stays active, with no gap and no other activation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_raft_leader_causes_no_failover() -> Result<()> {
    let Some(docker) = begin("stopped_raft_leader_causes_no_failover").await? else {
        return Ok(());
    };
    let cluster = EtcdCluster::start(docker.docker(), MEMBERS).await?;
    let outcome = async {
        let profile = ProfileBounds::default_timing();
        let replicas =
            HostReplicas::start(KEY, &profile, &vec![cluster.endpoints(); 3], &[], &[]).await?;
        let leader = replicas
            .wait_single_active(None, profile.first_activation_bound())
            .await?;
        let raft_leader = cluster.leader().await?;

        let stopped = replicas.now();
        cluster.member(raft_leader).stop().await?;
        let stop_took = replicas.now() - stopped;
        // A needless step-down would come within one lease TTL.
        replicas
            .assert_sole_active_for(leader, profile.ttl())
            .await?;
        let new_raft_leader = cluster.leader().await?;
        ensure!(
            new_raft_leader != raft_leader,
            "member {raft_leader} still leads after being stopped"
        );
        cluster.member(raft_leader).start_again(HEAL_WITHIN).await?;
        replicas
            .assert_sole_active_for(leader, Duration::from_secs(2))
            .await?;
        let activations: usize = replicas
            .histories()
            .iter()
            .map(|history| history.iter().filter(|(_, active)| *active).count())
            .sum();
        ensure!(
            activations == 1,
            "expected a single activation, histories: {:?}",
            replicas.histories()
        );
        replicas.check_never_two_active()?;
        eprintln!(
            "raft leader stop: member {raft_leader} stopped in {:.2}s, member {new_raft_leader} \
             leads now; {} stayed active throughout",
            secs(stop_took),
            replicas.value(leader)
        );
        Ok::<(), anyhow::Error>(())
    }
    .await;
    with_etcd_logs(&cluster, outcome).await
}

/// The whole cluster is stopped, kept down for longer than a lease, and started again on its
/// data: the leader's node goes standby by its lease deadline while etcd is gone, nobody
/// activates meanwhile, and afterwards exactly one node is active again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_restart_ends_with_one_leader() -> Result<()> {
    let Some(docker) = begin("whole_cluster_restart_ends_with_one_leader").await? else {
        return Ok(());
    };
    let cluster = EtcdCluster::start(docker.docker(), MEMBERS).await?;
    let outcome = async {
        let profile = ProfileBounds::fast();
        let replicas =
            HostReplicas::start(KEY, &profile, &vec![cluster.endpoints(); 3], &[], &[]).await?;
        let leader = replicas
            .wait_single_active(None, profile.first_activation_bound())
            .await?;

        let stopping = replicas.now();
        cluster
            .restart_all(profile.ttl() + Duration::from_secs(1), HEAL_WITHIN)
            .await?;
        let healed = replicas.now();
        let after = replicas
            .wait_single_active(None, profile.takeover_bound())
            .await?;
        replicas
            .assert_sole_active_for(after, profile.ttl() * 2)
            .await?;

        // etcd was gone for longer than a lease: the leader stepped down by its lease deadline
        // (its last renewal was sent before the members were stopped), and no node was active
        // from then until etcd was back.
        let histories = replicas.histories();
        let stepped_down = histories[leader]
            .iter()
            .find(|&&(at, active)| at > stopping && !active)
            .map(|&(at, _)| at);
        let deadline = profile.lease_deadline_after_cut(stopping);
        ensure!(
            stepped_down.is_some_and(|at| at <= deadline),
            "etcd was down from {:.2}s to {:.2}s but {} stepped down at {stepped_down:?} (deadline \
             {:.2}s)",
            secs(stopping),
            secs(healed),
            replicas.value(leader),
            secs(deadline)
        );
        let active_while_down = histories.iter().enumerate().any(|(i, history)| {
            history
                .iter()
                .any(|&(at, active)| active && at > deadline && at < healed)
                || (i != leader
                    && history
                        .iter()
                        .any(|&(at, a)| a && at > stopping && at < healed))
        });
        ensure!(
            !active_while_down,
            "a node activated while etcd was down: {histories:?}"
        );
        replicas.check_never_two_active()?;
        eprintln!(
            "cluster restart: down {:.2}s; {} led before and stepped down +{:.2}s; {} leads after \
             (active {:.2}s after etcd was back)",
            secs(healed - stopping),
            replicas.value(leader),
            secs(stepped_down.unwrap_or_default().saturating_sub(stopping)),
            replicas.value(after),
            secs(
                replicas
                    .last_change(after, true)
                    .unwrap_or_default()
                    .saturating_sub(healed)
            )
        );
        Ok::<(), anyhow::Error>(())
    }
    .await;
    with_etcd_logs(&cluster, outcome).await
}

/// Electors in containers, each in its stand-in node's network namespace. The leader's
/// replica is disconnected from the etcd network (a real partition; elector and node still
/// talk over loopback): its node goes standby before its lease can expire, another replica
/// takes over, and after reconnecting there is still exactly one leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_leader_container_steps_down_in_time() -> Result<()> {
    let Some(docker) = begin("partitioned_leader_container_steps_down_in_time").await? else {
        return Ok(());
    };
    docker.require_image(&elector_image(), "make image").await?;
    docker
        .require_image(&stand_in_image(), "make image")
        .await?;
    let cluster = EtcdCluster::start(docker.docker(), MEMBERS).await?;
    let outcome = async {
        let profile = ProfileBounds::fast();
        let replicas = ContainerReplicas::start(
            docker.docker(),
            cluster.network(),
            &cluster.network_endpoints(),
            KEY,
            &profile,
            3,
        )
        .await?;
        let leader = replicas
            .wait_single_active(None, profile.first_activation_bound())
            .await?;
        let witness = cluster.member(0).endpoint();
        let leader_key = candidate_key(&witness, replicas.value(leader)).await?;
        let watch = ElectionWatch::start(&witness, KEY).await?;

        let cut = replicas.now();
        cluster
            .network()
            .disconnect(docker.docker(), replicas.node_id(leader))
            .await?;
        let next = replicas
            .wait_single_active(Some(leader), profile.takeover_bound())
            .await?;
        let standby = replicas
            .last_change(leader, false)
            .await?
            .context("never standby")?;
        let deleted = replicas.at(watch.wait_deleted(&leader_key, profile.ttl()).await?);
        let earliest_expiry = profile.earliest_expiry_after_cut(cut);
        let deadline = profile.lease_deadline_after_cut(cut);
        ensure!(
            standby > cut && standby <= deadline && standby < deleted,
            "the cut-off leader's node went standby at {:.2}s; cut at {:.2}s, its lease deadline \
             at the latest {:.2}s, key deleted at {:.2}s",
            secs(standby),
            secs(cut),
            secs(deadline),
            secs(deleted)
        );
        let took_over = replicas
            .last_change(next, true)
            .await?
            .context("no activation")?;

        cluster
            .network()
            .connect(docker.docker(), replicas.node_id(leader), &[])
            .await?;
        let healed = replicas.now();
        // After healing: the old leader campaigns again, behind the new one, which stays alone.
        let rejoin_by = Instant::now() + profile.ttl() * 2 + Duration::from_secs(5);
        loop {
            let back = watch
                .events()
                .iter()
                .any(|e| e.value.as_deref() == Some(replicas.value(leader)));
            if back {
                break;
            }
            ensure!(
                Instant::now() < rejoin_by,
                "{} did not campaign again after reconnecting\n{}",
                replicas.value(leader),
                replicas.log_tails(20).await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(profile.ttl()).await;
        let histories = replicas.histories().await?;
        ensure!(
            histories[next].last() == Some(&(took_over, true)),
            "{} did not stay active after healing: {:?}",
            replicas.value(next),
            histories[next]
        );
        ensure!(
            histories
                .iter()
                .enumerate()
                .all(|(i, history)| i == next || history.last().is_some_and(|&(_, a)| !a)),
            "another node is active after healing: {histories:?}"
        );
        replicas.check_never_two_active().await?;
        eprintln!(
            "partition: {} standby {:.2}s after the cut (earliest expiry +{:.2}s, key deleted \
             +{:.2}s); {} active +{:.2}s; healed at +{:.2}s, one leader since",
            replicas.value(leader),
            secs(standby - cut),
            secs(earliest_expiry - cut),
            secs(deleted - cut),
            replicas.value(next),
            secs(took_over - cut),
            secs(healed - cut)
        );
        Ok::<(), anyhow::Error>(())
    }
    .await;
    with_etcd_logs(&cluster, outcome).await
}

//! A three-member etcd cluster of real `etcd` processes on loopback, for the `etcd-trouble`
//! phase: each member can be frozen (SIGSTOP), thawed (SIGCONT), killed (SIGKILL) and started
//! again on its data directory; the raft leader is found with the maintenance status API.
//! Every member is killed when the cluster is dropped.

use anyhow::{Context, Result, bail};
use elector_integration::host::Guarded;
use elector_integration::host::{free_port, http_get};
use etcd_client::Client;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Members of the cluster: the smallest that keeps a majority with one member down.
pub(super) const MEMBERS: usize = 3;

/// How long a member (or the whole cluster) may take to serve again after a start or thaw.
const HEALTHY_WITHIN: Duration = Duration::from_secs(30);

/// Bound on one status call to a member.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    process: Option<Guarded>,
    frozen: bool,
}

pub(super) struct EtcdCluster {
    dir: PathBuf,
    members: Vec<Member>,
}

impl EtcdCluster {
    /// Starts [`MEMBERS`] members under `dir` and waits until every one serves.
    pub(super) async fn start(dir: &Path) -> Result<EtcdCluster> {
        let mut members = Vec::new();
        for m in 0..MEMBERS {
            members.push(Member {
                name: format!("m{m}"),
                client_port: free_port()?,
                peer_port: free_port()?,
                process: None,
                frozen: false,
            });
        }
        let mut cluster = EtcdCluster {
            dir: dir.to_owned(),
            members,
        };
        for m in 0..MEMBERS {
            cluster.spawn(m)?;
        }
        for m in 0..MEMBERS {
            cluster.wait_healthy(m).await?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, m: usize) -> Result<()> {
        let initial_cluster = self
            .members
            .iter()
            .map(|x| format!("{}=http://127.0.0.1:{}", x.name, x.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let member = &self.members[m];
        let client_url = format!("http://127.0.0.1:{}", member.client_port);
        let peer_url = format!("http://127.0.0.1:{}", member.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}.log", member.name)))
            .context("opening an etcd member's log")?;
        // An existing data directory makes etcd ignore the --initial-* flags: a restart rejoins.
        let child = Command::new("etcd")
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(self.dir.join(format!("{}.data", member.name)))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "elector-bench"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting `etcd` (is it on PATH?)")?;
        let member = &mut self.members[m];
        member.process = Some(Guarded::new(child));
        member.frozen = false;
        Ok(())
    }

    /// Every member's client URL, comma separated (an elector's `--etcd`).
    pub(super) fn endpoints(&self) -> String {
        (0..MEMBERS)
            .map(|m| self.endpoint(m))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn endpoint(&self, m: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[m].client_port)
    }

    /// Member `m` answers `/health` with `"health":"true"` (it has a leader and serves).
    async fn healthy(&self, m: usize) -> bool {
        let addr: SocketAddr = (Ipv4Addr::LOCALHOST, self.members[m].client_port).into();
        let probe = tokio::time::timeout(STATUS_TIMEOUT, http_get(addr, "/health"));
        matches!(probe.await, Ok(Ok((200, body))) if body.contains(r#""health":"true""#))
    }

    pub(super) async fn wait_healthy(&self, m: usize) -> Result<()> {
        let deadline = Instant::now() + HEALTHY_WITHIN;
        while !self.healthy(m).await {
            if Instant::now() > deadline {
                bail!(
                    "etcd member {} not healthy within {HEALTHY_WITHIN:?}",
                    self.members[m].name
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    pub(super) async fn wait_all_healthy(&self) -> Result<()> {
        for m in 0..MEMBERS {
            self.wait_healthy(m).await?;
        }
        Ok(())
    }

    /// The member that is raft leader now, by the maintenance status API: each member's own
    /// id against the leader id a live member reports.
    pub(super) async fn raft_leader(&self) -> Result<usize> {
        let mut ids = Vec::new();
        let mut leader = None;
        for m in 0..MEMBERS {
            let status = async {
                let mut client = Client::connect([self.endpoint(m)], None).await?;
                client.status().await
            };
            let status = tokio::time::timeout(STATUS_TIMEOUT, status)
                .await
                .context("etcd status timed out")?
                .with_context(|| format!("etcd status of member {m}"))?;
            let id = status.header().map(|h| h.member_id()).unwrap_or_default();
            ids.push(id);
            leader = leader.or(Some(status.leader()));
        }
        let leader = leader.context("no member answered")?;
        ids.iter()
            .position(|id| *id == leader)
            .with_context(|| format!("the raft leader {leader:x} is not a member"))
    }

    fn signal(&self, m: usize, sig: libc::c_int) -> Result<()> {
        self.members[m]
            .process
            .as_ref()
            .with_context(|| format!("etcd member {} is not running", self.members[m].name))?
            .signal(sig)
    }

    /// SIGSTOP: the member hangs, its connections stay open, nothing answers.
    pub(super) fn freeze(&mut self, m: usize) -> Result<()> {
        self.signal(m, libc::SIGSTOP)?;
        self.members[m].frozen = true;
        Ok(())
    }

    /// SIGCONT of a frozen member.
    pub(super) fn thaw(&mut self, m: usize) -> Result<()> {
        self.signal(m, libc::SIGCONT)?;
        self.members[m].frozen = false;
        Ok(())
    }

    /// kill -9 of member `m`.
    pub(super) fn kill(&mut self, m: usize) -> Result<()> {
        let member = &mut self.members[m];
        let process = member
            .process
            .take()
            .with_context(|| format!("etcd member {} is not running", member.name))?;
        process.kill9();
        member.frozen = false;
        Ok(())
    }

    /// Starts a killed member again on its data directory and waits until it serves.
    pub(super) async fn restart(&mut self, m: usize) -> Result<()> {
        self.spawn(m)?;
        self.wait_healthy(m).await
    }

    pub(super) fn name(&self, m: usize) -> &str {
        &self.members[m].name
    }

    /// A client on every member, for the benchmark's own reads.
    pub(super) async fn client(&self) -> Result<Client> {
        let endpoints: Vec<String> = (0..MEMBERS).map(|m| self.endpoint(m)).collect();
        Client::connect(endpoints, None)
            .await
            .context("connecting to the etcd cluster")
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in 0..MEMBERS {
            // A stopped process is killed by SIGKILL as well; continue it first all the same,
            // so that nothing is left stopped should the kill fail.
            if self.members[m].frozen {
                let _ = self.signal(m, libc::SIGCONT);
            }
        }
    }
}

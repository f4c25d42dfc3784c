//! etcd in containers: one member ([`EtcdContainer::start`], plain or TLS with client
//! certificates), or a cluster on a private network ([`EtcdCluster::start`]).
//!
//! Every member publishes its client port on a fixed port of the host's loopback, chosen at
//! creation, so endpoints stay valid across `docker stop`/`start` (a dynamically published
//! port may change on restart). Data lives in the image's `/var/lib/etcd` volume (an
//! anonymous volume: on the host's file system rather than the container's overlay, and
//! removed with the container), so a restarted member keeps its data, as real etcd does.
//!
//! `etcdctl` runs inside a member with [`EtcdContainer::etcdctl`] (bounded, to completion) or
//! [`EtcdContainer::spawn_etcdctl`] (long-running, with a terminal so Ctrl-C can stop it).
//!
//! Apart from [`raft_leader`], nothing is shared with [`crate::etcd_process`]: members here
//! are reached by container name on a network and checked by `etcdctl` inside the container.

use super::{
    DockerNetwork, ExecOutput, ImageRef, TtyExec, etcd_image, exec, labels, log_tail,
    loopback_port_bindings, unique_name,
};
use crate::etcd_process::{TestPki, raft_leader};
use crate::host::free_port;
use anyhow::{Context, Result, bail};
use futures_util::future::try_join_all;
use std::time::{Duration, Instant};
use testcontainers::bollard::Docker;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// The line etcd 3.4 logs on stderr once it serves clients, with its default logger
/// (capnslog; `--logger zap` logs other words in 3.4, so it is not set).
pub const READY_MESSAGE: &str = "ready to serve client requests";
/// Bound on a member (or a whole cluster) becoming ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(40);
/// Where the TLS files are inside the container.
const PKI_DIR: &str = "/etc/etcd/pki";

/// TLS material copied into an etcd container: the server's certificate and key, the CA that
/// signs clients, and a client certificate for `etcdctl` inside the container.
#[derive(Clone)]
pub struct ContainerTls {
    ca: Vec<u8>,
    server_cert: Vec<u8>,
    server_key: Vec<u8>,
    client_cert: Vec<u8>,
    client_key: Vec<u8>,
}

impl ContainerTls {
    /// The files of `pki` (its server certificate is for 127.0.0.1, which is how both the host,
    /// through the published port, and `etcdctl` inside the container reach etcd).
    pub fn from_pki(pki: &TestPki) -> Result<ContainerTls> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))
        };
        Ok(ContainerTls {
            ca: read(&pki.ca)?,
            server_cert: read(&pki.server_cert)?,
            server_key: read(&pki.server_key)?,
            client_cert: read(&pki.client_cert)?,
            client_key: read(&pki.client_key)?,
        })
    }

    fn files(&self) -> [(&'static str, &Vec<u8>); 5] {
        [
            ("ca.pem", &self.ca),
            ("server.pem", &self.server_cert),
            ("server.key", &self.server_key),
            ("client.pem", &self.client_cert),
            ("client.key", &self.client_key),
        ]
    }
}

/// How to start one member.
struct MemberSpec {
    name: String,
    host_port: u16,
    network: Option<String>,
    /// How peers reach this member (its container name on a network, or 127.0.0.1 alone).
    peer_host: String,
    initial_cluster: String,
    cluster_token: String,
    tls: Option<ContainerTls>,
}

impl MemberSpec {
    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    fn args(&self) -> Vec<String> {
        let scheme = self.scheme();
        let advertise_client = match &self.network {
            Some(_) => format!("{scheme}://{}:2379", self.name),
            None => format!("{scheme}://127.0.0.1:2379"),
        };
        let mut args: Vec<String> = [
            "--name",
            &self.name,
            "--data-dir",
            "/var/lib/etcd/data",
            "--listen-client-urls",
            &format!("{scheme}://0.0.0.0:2379"),
            "--advertise-client-urls",
            &advertise_client,
            "--listen-peer-urls",
            "http://0.0.0.0:2380",
            "--initial-advertise-peer-urls",
            &format!("http://{}:2380", self.peer_host),
            "--initial-cluster",
            &self.initial_cluster,
            "--initial-cluster-token",
            &self.cluster_token,
            "--initial-cluster-state",
            "new",
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect();
        if self.tls.is_some() {
            for (flag, file) in [
                ("--cert-file", "server.pem"),
                ("--key-file", "server.key"),
                ("--trusted-ca-file", "ca.pem"),
            ] {
                args.push(flag.to_owned());
                args.push(format!("{PKI_DIR}/{file}"));
            }
            args.push("--client-cert-auth".to_owned());
        }
        args
    }

    async fn start(self, docker: &Docker, image: &ImageRef) -> Result<EtcdContainer> {
        let bindings = loopback_port_bindings(&[(self.host_port, 2379)]);
        let mut request = GenericImage::new(image.name.clone(), image.tag.clone())
            .with_entrypoint("etcd")
            .with_wait_for(WaitFor::message_on_stderr(READY_MESSAGE))
            .with_container_name(self.name.clone())
            .with_labels(labels())
            .with_mapped_port(self.host_port, 2379.tcp())
            .with_host_config_modifier(move |config| {
                config.port_bindings = Some(bindings.clone());
            })
            .with_startup_timeout(START_TIMEOUT)
            .with_cmd(self.args());
        if let Some(network) = &self.network {
            request = request.with_network(network.clone());
        }
        if let Some(tls) = &self.tls {
            for (file, bytes) in tls.files() {
                request = request.with_copy_to(format!("{PKI_DIR}/{file}"), bytes.clone());
            }
        }
        let container = request
            .start()
            .await
            .with_context(|| format!("starting etcd member {}", self.name))?;
        Ok(EtcdContainer {
            docker: docker.clone(),
            container,
            name: self.name,
            host_port: self.host_port,
            tls: self.tls.is_some(),
        })
    }
}

/// One etcd member in a container. Removed (with its data volume) when dropped.
pub struct EtcdContainer {
    docker: Docker,
    container: ContainerAsync<GenericImage>,
    name: String,
    host_port: u16,
    tls: bool,
}

impl EtcdContainer {
    /// A fresh single-member etcd (plain `http://`, or with `tls` serving clients over TLS
    /// only and requiring client certificates), ready to serve.
    pub async fn start(docker: &Docker, tls: Option<ContainerTls>) -> Result<EtcdContainer> {
        let image = etcd_image();
        let name = unique_name("etcd");
        let spec = MemberSpec {
            initial_cluster: format!("{name}=http://127.0.0.1:2380"),
            cluster_token: name.clone(),
            name,
            host_port: free_port()?,
            network: None,
            peer_host: "127.0.0.1".to_owned(),
            tls,
        };
        spec.start(docker, &image).await
    }

    /// The container's id.
    pub fn id(&self) -> &str {
        self.container.id()
    }

    /// The container's name, which is also the member's name and, on a network, its host name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client URL from the host: `http(s)://127.0.0.1:<published port>`.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.host_port)
    }

    /// The client URL from another container on the member's network.
    pub fn network_endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}:2379", self.name)
    }

    /// `etcdctl` inside the container, against this member, with the client certificate when
    /// TLS is on, followed by `args`.
    fn etcdctl_command(&self, args: &[&str]) -> Vec<String> {
        let scheme = if self.tls { "https" } else { "http" };
        let mut command: Vec<String> = vec![
            "etcdctl".into(),
            "--endpoints".into(),
            format!("{scheme}://127.0.0.1:2379"),
            "--dial-timeout=2s".into(),
            "--command-timeout=5s".into(),
        ];
        if self.tls {
            for (flag, file) in [
                ("--cacert", "ca.pem"),
                ("--cert", "client.pem"),
                ("--key", "client.key"),
            ] {
                command.push(flag.into());
                command.push(format!("{PKI_DIR}/{file}"));
            }
        }
        command.extend(args.iter().map(|arg| (*arg).to_owned()));
        command
    }

    /// Runs `etcdctl <args>` inside the container to completion (bounded).
    pub async fn etcdctl(&self, args: &[&str]) -> Result<ExecOutput> {
        exec(&self.docker, self.id(), &self.etcdctl_command(args)).await
    }

    /// Runs `etcdctl <args>`, fails unless it succeeds, and returns its standard output.
    pub async fn etcdctl_ok(&self, args: &[&str]) -> Result<String> {
        let output = self.etcdctl(args).await?;
        if !output.success() {
            bail!(
                "etcdctl {args:?} in {} failed ({:?}): {}{}",
                self.name,
                output.exit_code,
                output.stderr.trim(),
                output.stdout.trim()
            );
        }
        Ok(output.stdout)
    }

    /// Starts a long-running `etcdctl <args>` (`elect`, `elect -l`, `watch`) inside the
    /// container, with a terminal: its lines can be awaited and Ctrl-C stops it.
    pub async fn spawn_etcdctl(&self, args: &[&str]) -> Result<TtyExec> {
        TtyExec::start(&self.docker, self.id(), &self.etcdctl_command(args)).await
    }

    /// `etcdctl elect -l <key>`: the leader's value as etcdctl sees it (it prints the leader's
    /// key, then its value, and keeps listening; it is stopped after the second line).
    pub async fn elect_listen_value(&self, key: &str, within: Duration) -> Result<String> {
        self.listen(&["elect", "-l", key], key, within).await
    }

    /// [`Self::elect_listen_value`] with a `--user=name:password` flag, for etcd with
    /// authentication enabled.
    pub async fn elect_listen_value_as(
        &self,
        key: &str,
        user_flag: &str,
        within: Duration,
    ) -> Result<String> {
        self.listen(&[user_flag, "elect", "-l", key], key, within)
            .await
    }

    async fn listen(&self, args: &[&str], key: &str, within: Duration) -> Result<String> {
        let mut listener = self.spawn_etcdctl(args).await?;
        let leader_key = listener.next_line(within).await?;
        let value = listener.next_line(within).await?;
        if !leader_key.starts_with(&format!("{key}/")) {
            bail!("etcdctl elect -l {key} printed {leader_key:?} as the leader's key");
        }
        listener.interrupt(Duration::from_secs(5)).await?;
        Ok(value)
    }

    /// Freezes the member (`docker pause`): connections stay open, nothing answers.
    pub async fn pause(&self) -> Result<()> {
        self.container
            .pause()
            .await
            .with_context(|| format!("pausing {}", self.name))
    }

    pub async fn unpause(&self) -> Result<()> {
        self.container
            .unpause()
            .await
            .with_context(|| format!("unpausing {}", self.name))
    }

    /// `docker stop`: SIGTERM (etcd hands raft leadership over before it exits), SIGKILL after
    /// 10 s.
    pub async fn stop(&self) -> Result<()> {
        self.container
            .stop()
            .await
            .with_context(|| format!("stopping {}", self.name))
    }

    /// `docker start` of a stopped member; returns once it is healthy again.
    pub async fn start_again(&self, within: Duration) -> Result<()> {
        self.container
            .start()
            .await
            .with_context(|| format!("starting {} again", self.name))?;
        self.wait_healthy(within).await
    }

    /// Waits until `etcdctl endpoint health` inside the container succeeds: the member has a
    /// leader and serves reads.
    pub async fn wait_healthy(&self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let health = self
                .etcdctl(&[
                    "endpoint",
                    "health",
                    "--dial-timeout=1s",
                    "--command-timeout=1s",
                ])
                .await;
            match health {
                Ok(output) if output.success() => return Ok(()),
                other if Instant::now() > deadline => {
                    let detail = match other {
                        Ok(output) => format!("{}{}", output.stdout.trim(), output.stderr.trim()),
                        Err(error) => format!("{error:#}"),
                    };
                    bail!(
                        "{} not healthy within {within:?}: {detail}\n--- its log ---\n{}",
                        self.name,
                        log_tail(&self.docker, self.id(), 20).await
                    );
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// The last lines of the member's log.
    pub async fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.docker, self.id(), lines).await
    }
}

/// A cluster of etcd members on a private Docker network of its own. Members are named
/// `<unique>-m<i>` on the network; each publishes its client port on the host's loopback.
/// Dropping it removes the members, then the network.
pub struct EtcdCluster {
    // Field order is drop order: members leave the network before it is removed.
    members: Vec<EtcdContainer>,
    network: DockerNetwork,
}

impl EtcdCluster {
    /// Starts `size` members at once (each waits for the others to form a quorum) and returns
    /// when all serve.
    pub async fn start(docker: &Docker, size: usize) -> Result<EtcdCluster> {
        let network = DockerNetwork::create(docker, "etcd-net").await?;
        let image = etcd_image();
        let prefix = unique_name("etcd");
        let names: Vec<String> = (0..size).map(|i| format!("{prefix}-m{i}")).collect();
        let initial_cluster = names
            .iter()
            .map(|name| format!("{name}=http://{name}:2380"))
            .collect::<Vec<_>>()
            .join(",");
        let mut specs = Vec::new();
        for name in &names {
            specs.push(MemberSpec {
                name: name.clone(),
                host_port: free_port()?,
                network: Some(network.name().to_owned()),
                peer_host: name.clone(),
                initial_cluster: initial_cluster.clone(),
                cluster_token: prefix.clone(),
                tls: None,
            });
        }
        let members = try_join_all(specs.into_iter().map(|spec| spec.start(docker, &image)))
            .await
            .context("starting the etcd cluster")?;
        Ok(EtcdCluster { members, network })
    }

    pub fn members(&self) -> &[EtcdContainer] {
        &self.members
    }

    pub fn member(&self, i: usize) -> &EtcdContainer {
        &self.members[i]
    }

    pub fn network(&self) -> &DockerNetwork {
        &self.network
    }

    /// Every member's client URL from the host.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(EtcdContainer::endpoint).collect()
    }

    /// Every member's client URL from a container on the cluster's network.
    pub fn network_endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(EtcdContainer::network_endpoint)
            .collect()
    }

    /// The index of the raft leader, as the members that answer report it.
    pub async fn leader(&self) -> Result<usize> {
        raft_leader(&self.endpoints()).await
    }

    /// Waits until every member is healthy.
    pub async fn wait_healthy(&self, within: Duration) -> Result<()> {
        try_join_all(
            self.members
                .iter()
                .map(|member| member.wait_healthy(within)),
        )
        .await?;
        Ok(())
    }

    /// Stops every member (`docker stop`, all at once), keeps them down for `down_for`, then
    /// starts them all again and waits until all are healthy: the whole cluster restarted on
    /// its data.
    pub async fn restart_all(&self, down_for: Duration, within: Duration) -> Result<()> {
        let stopping = Instant::now();
        // A member that lost its quorum lingers in a graceful shutdown; SIGKILL after 3 s
        // (etcd's write-ahead log makes that safe, as a power loss is).
        try_join_all(
            self.members
                .iter()
                .map(|member| member.container.stop_with_timeout(Some(3))),
        )
        .await?;
        eprintln!(
            "etcd cluster stopped in {:.2}s",
            stopping.elapsed().as_secs_f64()
        );
        tokio::time::sleep(down_for).await;
        let starting = Instant::now();
        for member in &self.members {
            member
                .container
                .start()
                .await
                .with_context(|| format!("starting {} again", member.name))?;
        }
        self.wait_healthy(within).await?;
        eprintln!(
            "etcd cluster started and healthy in {:.2}s",
            starting.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Every member's log tail, for failure messages.
    pub async fn log_tails(&self, lines: usize) -> String {
        let mut text = String::new();
        for member in &self.members {
            text.push_str(&format!(
                "--- {} ---\n{}\n",
                member.name,
                member.log_tail(lines).await
            ));
        }
        text
    }
}

//! Docker fixtures for the tests against containerized etcd and the compose example
//! (deploy/docker-compose.yml), on testcontainers 0.28 and the bollard client it re-exports.
//!
//! The machine's engine is Debian's Docker 20.10 (API 1.41) and there is no registry: every
//! image is built locally beforehand (`make etcd-image`, `make image`; see docs/testing.md).
//! testcontainers never negotiates the API version and works with this engine only because
//! bollard 0.21.1 sends unversioned request paths; bollard stays pinned at 0.21.1.
//!
//! - [`DockerTest::begin`]: the gate every Docker test passes first. It skips the test with a
//!   loud message when no engine answers, unless `ELECTOR_REQUIRE_DOCKER=1` (CI), which makes
//!   that a failure. It also serializes Docker tests across processes (a lock file), because
//!   their timing bounds assume the two cores are not shared with another cluster, and it
//!   removes what crashed earlier runs left behind.
//! - [`etcd`]: a single etcd container (plain or TLS) and a three-member cluster on a private
//!   network, with pause, stop, start, restart, and `etcdctl` run inside a member.
//! - [`replicas`]: electors as host processes beside in-process stand-in nodes, electors in
//!   containers sharing a stand-in container's network namespace, the timing profiles, and
//!   the node-mode histories checked with [`elector_model::history::dual_active`].
//!
//! Everything a fixture creates carries the labels of [`labels`] and a unique name, and is
//! removed when its guard drops, on success and on failure. Containers are removed by
//! testcontainers' drop; networks by [`DockerNetwork`]'s. A test process killed outright
//! leaves them behind; the next [`DockerTest::begin`] removes those whose process is gone.
//!
//! Tests run on a multi-threaded tokio runtime (`#[tokio::test(flavor = "multi_thread")]`):
//! testcontainers removes containers on drop with `block_in_place`. How to run them, the
//! images, and what this engine needs: docs/testing.md.

pub mod etcd;
mod exec;
mod logs;
pub mod replicas;

pub use exec::{ExecOutput, TtyExec, exec};
pub use logs::{LogLine, log_tail, logs_with_times, parse_rfc3339_utc};

use anyhow::{Context, Result, anyhow, bail};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};
use testcontainers::bollard::Docker;
use testcontainers::bollard::models::{
    EndpointSettings, NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest,
    PortBinding,
};
use testcontainers::bollard::query_parameters::{
    KillContainerOptions, ListContainersOptions, ListNetworksOptions, RemoveContainerOptions,
};

/// Set to `1` to make a missing Docker engine a test failure instead of a skip (CI sets it).
pub const REQUIRE_DOCKER_ENV: &str = "ELECTOR_REQUIRE_DOCKER";
/// The etcd image: `name:tag`. Users with a registry can point the tests at an upstream image,
/// e.g. `ELECTOR_ETCD_IMAGE=quay.io/coreos/etcd:v3.4.23`.
pub const ETCD_IMAGE_ENV: &str = "ELECTOR_ETCD_IMAGE";
/// Built by `make etcd-image` from Debian's etcd 3.4.23.
pub const DEFAULT_ETCD_IMAGE: &str = "elector-test/etcd:3.4.23";
/// The elector image, `name:tag`.
pub const ELECTOR_IMAGE_ENV: &str = "ELECTOR_IMAGE";
/// Built by `make image` from the release binary.
pub const DEFAULT_ELECTOR_IMAGE: &str = "iotex-elector:latest";
/// The stand-in node image, `name:tag`.
pub const STAND_IN_IMAGE_ENV: &str = "ELECTOR_STAND_IN_IMAGE";
/// Built by `make image` from the release `stand-in-node` binary.
pub const DEFAULT_STAND_IN_IMAGE: &str = "elector-test/stand-in-node:latest";

/// Label on everything the fixtures create.
pub const LABEL_TEST: &str = "org.iotex.elector.test";
/// Label naming the test process that created a resource (for the stale sweep).
pub const LABEL_PID: &str = "org.iotex.elector.test.pid";
/// Label naming the host of that process: the sweep only judges its own host's processes.
pub const LABEL_HOST: &str = "org.iotex.elector.test.host";
/// Compose projects of the compose test are named `<this prefix><pid>`.
pub const COMPOSE_PROJECT_PREFIX: &str = "elector-compose-";

/// Bound on the first answer of the engine.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on waiting for another process's Docker tests to finish.
const LOCK_WAIT: Duration = Duration::from_secs(20 * 60);
/// Bound on any single Docker API call made outside testcontainers.
const DOCKER_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one `exec` that is expected to finish by itself.
const EXEC_TIMEOUT: Duration = Duration::from_secs(20);

/// The gate of a Docker test: a Docker client, held while the test runs, and the lock that
/// keeps other Docker tests (in this process or another) from running meanwhile.
///
/// Declare it first in the test so it drops last, after every container.
pub struct DockerTest {
    docker: Docker,
    test: String,
    started: Instant,
    _lock: TestLock,
}

impl DockerTest {
    /// Returns `None` (after printing why, loudly) when no Docker engine answers, so the test
    /// can return early: `let Some(docker) = DockerTest::begin("name").await else { return };`.
    /// With `ELECTOR_REQUIRE_DOCKER=1` it panics instead.
    pub async fn begin(test: &str) -> Option<DockerTest> {
        let docker = match ping().await {
            Ok(docker) => docker,
            Err(error) => {
                if docker_required() {
                    panic!(
                        "{test}: {REQUIRE_DOCKER_ENV}=1 but no Docker engine answers: {error:#}"
                    );
                }
                let bar = "!".repeat(78);
                eprintln!(
                    "\n{bar}\n!! SKIPPED {test}: no Docker engine answers ({error:#}).\n\
                     !! Start dockerd (Debian: apt-get install docker.io) and build the images\n\
                     !! (make etcd-image image), or set {REQUIRE_DOCKER_ENV}=1 to fail instead.\n{bar}\n"
                );
                return None;
            }
        };
        let name = test.to_owned();
        let lock = tokio::task::spawn_blocking(move || TestLock::acquire(&name))
            .await
            .expect("the lock task panicked")
            .unwrap_or_else(|error| panic!("{test}: {error:#}"));
        if !SWEPT.swap(true, Ordering::SeqCst)
            && let Err(error) = sweep_stale(&docker).await
        {
            eprintln!("{test}: could not remove resources of crashed test runs: {error:#}");
        }
        eprintln!("{test}: Docker engine answers; running");
        Some(DockerTest {
            docker,
            test: test.to_owned(),
            started: Instant::now(),
            _lock: lock,
        })
    }

    /// A bollard client of this test.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The test's name, for messages.
    pub fn test(&self) -> &str {
        &self.test
    }

    /// Fails with a message naming `make_target` unless `image` exists locally: nothing can be
    /// pulled on this machine, and testcontainers would otherwise try to.
    pub async fn require_image(&self, image: &ImageRef, make_target: &str) -> Result<()> {
        match bounded(self.docker.inspect_image(&image.reference())).await {
            Ok(_) => Ok(()),
            Err(error) => bail!(
                "image {} is not available locally ({error:#}); build it with `{make_target}`, \
                 or `docker pull` it where a registry is reachable",
                image.reference()
            ),
        }
    }
}

impl Drop for DockerTest {
    fn drop(&mut self) {
        eprintln!(
            "{}: Docker part took {:.1}s",
            self.test,
            self.started.elapsed().as_secs_f64()
        );
    }
}

fn docker_required() -> bool {
    std::env::var(REQUIRE_DOCKER_ENV).is_ok_and(|value| value.trim() == "1")
}

/// A fresh bollard client (DOCKER_HOST or the local socket) that answered a ping.
async fn ping() -> Result<Docker> {
    let docker = Docker::connect_with_defaults().context("no Docker client configuration")?;
    match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
        Ok(Ok(_)) => Ok(docker),
        Ok(Err(error)) => Err(anyhow!(error)),
        Err(_) => bail!("no answer to a ping within {PING_TIMEOUT:?}"),
    }
}

/// Whether this process already removed what crashed runs left.
static SWEPT: AtomicBool = AtomicBool::new(false);

/// A cross-process lock (`flock` on a file in the temporary directory): Docker tests run one
/// at a time on this machine.
struct TestLock {
    _file: File,
}

impl TestLock {
    fn acquire(test: &str) -> Result<TestLock> {
        let path = std::env::temp_dir().join("elector-docker-tests.lock");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening the Docker test lock {}", path.display()))?;
        let deadline = Instant::now() + LOCK_WAIT;
        let mut told = false;
        loop {
            if flock(&file, libc::LOCK_EX | libc::LOCK_NB)? {
                break;
            }
            if Instant::now() > deadline {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                bail!(
                    "another Docker test ({}) held {} for more than {LOCK_WAIT:?}",
                    holder.trim(),
                    path.display()
                );
            }
            if !told {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = match holder.trim() {
                    "" => "another process",
                    named => named,
                };
                eprintln!("{test}: waiting for another Docker test to finish ({holder})");
                told = true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        file.set_len(0)?;
        writeln!(file, "pid {} test {test}", std::process::id())?;
        Ok(TestLock { _file: file })
    }
}

/// `flock(2)`; `Ok(false)` when the lock is held elsewhere (with `LOCK_NB`).
fn flock(file: &File, operation: libc::c_int) -> Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock(2) on a descriptor owned by `file`, which outlives the call.
    let result = unsafe { libc::flock(file.as_raw_fd(), operation) };
    if result == 0 {
        return Ok(true);
    }
    let error = std::io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(false);
    }
    Err(error).context("locking the Docker test lock file")
}

/// The labels every fixture resource carries.
pub fn labels() -> HashMap<String, String> {
    HashMap::from([
        (LABEL_TEST.to_owned(), "1".to_owned()),
        (LABEL_PID.to_owned(), std::process::id().to_string()),
        (LABEL_HOST.to_owned(), host_name()),
    ])
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

/// A name no other resource on the engine has: `elector-<pid>-<n>-<purpose>`.
pub fn unique_name(purpose: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    format!("elector-{}-{n}-{purpose}", std::process::id())
}

/// Whether process `pid` exists on this host.
fn process_alive(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Removes containers and networks that a test process of this host created and did not
/// remove because it died (SIGKILL, abort): those whose process is gone. Compose projects of
/// the compose test too.
async fn sweep_stale(docker: &Docker) -> Result<()> {
    let host = host_name();
    let stale = |labels: Option<&HashMap<String, String>>| -> bool {
        let Some(labels) = labels else { return false };
        if let Some(project) = labels.get("com.docker.compose.project")
            && let Some(pid) = project.strip_prefix(COMPOSE_PROJECT_PREFIX)
        {
            return pid.parse().is_ok_and(|pid| !process_alive(pid));
        }
        labels.get(LABEL_HOST) == Some(&host)
            && labels
                .get(LABEL_PID)
                .and_then(|pid| pid.parse().ok())
                .is_some_and(|pid| !process_alive(pid))
    };
    let containers = bounded(docker.list_containers(Some(ListContainersOptions {
        all: true,
        ..Default::default()
    })))
    .await?;
    for container in containers {
        if stale(container.labels.as_ref())
            && let Some(id) = container.id
        {
            eprintln!(
                "removing container {:?} left by a crashed test run",
                container.names.unwrap_or_default()
            );
            let _ = remove_container(docker, &id).await;
        }
    }
    let networks = bounded(docker.list_networks(None::<ListNetworksOptions>)).await?;
    for network in networks {
        if stale(network.labels.as_ref())
            && let Some(name) = network.name
        {
            eprintln!("removing network {name} left by a crashed test run");
            let _ = bounded(docker.remove_network(&name)).await;
        }
    }
    Ok(())
}

/// A Docker API call bounded by [`DOCKER_CALL_TIMEOUT`].
pub async fn bounded<T, E>(call: impl Future<Output = Result<T, E>>) -> Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(DOCKER_CALL_TIMEOUT, call).await {
        Ok(result) => result.map_err(anyhow::Error::from),
        Err(_) => bail!("the Docker engine did not answer within {DOCKER_CALL_TIMEOUT:?}"),
    }
}

/// Removes a container and its anonymous volumes, running or not.
pub async fn remove_container(docker: &Docker, id: &str) -> Result<()> {
    bounded(docker.remove_container(
        id,
        Some(RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        }),
    ))
    .await
}

/// Sends `signal` (`SIGKILL`, `SIGINT`, ...) to a container's main process.
pub async fn kill_container(docker: &Docker, id: &str, signal: &str) -> Result<()> {
    bounded(docker.kill_container(
        id,
        Some(KillContainerOptions {
            signal: signal.to_owned(),
        }),
    ))
    .await
    .with_context(|| format!("sending {signal} to container {id}"))
}

/// An image reference split the way testcontainers wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    pub name: String,
    pub tag: String,
}

impl ImageRef {
    /// `name:tag` (`latest` when there is no tag); a registry port is not a tag.
    pub fn parse(reference: &str) -> ImageRef {
        let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
        match reference[last_slash..].rfind(':') {
            Some(colon) => ImageRef {
                name: reference[..last_slash + colon].to_owned(),
                tag: reference[last_slash + colon + 1..].to_owned(),
            },
            None => ImageRef {
                name: reference.to_owned(),
                tag: "latest".to_owned(),
            },
        }
    }

    /// From `env` if set and not empty, else `default`.
    pub fn from_env(env: &str, default: &str) -> ImageRef {
        match std::env::var(env) {
            Ok(value) if !value.trim().is_empty() => ImageRef::parse(value.trim()),
            _ => ImageRef::parse(default),
        }
    }

    pub fn reference(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }
}

/// The etcd image of the tests ([`ETCD_IMAGE_ENV`]).
pub fn etcd_image() -> ImageRef {
    ImageRef::from_env(ETCD_IMAGE_ENV, DEFAULT_ETCD_IMAGE)
}

/// The elector image of the tests ([`ELECTOR_IMAGE_ENV`]).
pub fn elector_image() -> ImageRef {
    ImageRef::from_env(ELECTOR_IMAGE_ENV, DEFAULT_ELECTOR_IMAGE)
}

/// The stand-in node image of the tests ([`STAND_IN_IMAGE_ENV`]).
pub fn stand_in_image() -> ImageRef {
    ImageRef::from_env(STAND_IN_IMAGE_ENV, DEFAULT_STAND_IN_IMAGE)
}

/// Port bindings on the host's loopback only, for a host config modifier: testcontainers
/// binds mapped ports on every interface, and nothing here needs to be reachable from
/// elsewhere.
pub fn loopback_port_bindings(
    mappings: &[(u16, u16)],
) -> HashMap<String, Option<Vec<PortBinding>>> {
    mappings
        .iter()
        .map(|&(host, container)| {
            (
                format!("{container}/tcp"),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".to_owned()),
                    host_port: Some(host.to_string()),
                }]),
            )
        })
        .collect()
}

/// A private bridge network, removed when dropped (after the containers on it: declare it
/// before them, or keep it in a struct field after theirs).
pub struct DockerNetwork {
    name: String,
}

impl DockerNetwork {
    pub async fn create(docker: &Docker, purpose: &str) -> Result<DockerNetwork> {
        let name = unique_name(purpose);
        bounded(docker.create_network(NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".to_owned()),
            labels: Some(labels()),
            ..Default::default()
        }))
        .await
        .with_context(|| format!("creating the Docker network {name}"))?;
        Ok(DockerNetwork { name })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Cuts `container` off this network: a real partition (its other networks stay).
    pub async fn disconnect(&self, docker: &Docker, container: &str) -> Result<()> {
        bounded(docker.disconnect_network(
            &self.name,
            NetworkDisconnectRequest {
                container: container.to_owned(),
                force: Some(true),
            },
        ))
        .await
        .with_context(|| format!("disconnecting {container} from {}", self.name))
    }

    /// Attaches `container` to this network again, under `aliases` as DNS names.
    pub async fn connect(&self, docker: &Docker, container: &str, aliases: &[&str]) -> Result<()> {
        bounded(docker.connect_network(
            &self.name,
            NetworkConnectRequest {
                container: container.to_owned(),
                endpoint_config: Some(EndpointSettings {
                    aliases: Some(aliases.iter().map(|alias| (*alias).to_owned()).collect()),
                    ..Default::default()
                }),
            },
        ))
        .await
        .with_context(|| format!("connecting {container} to {}", self.name))
    }
}

impl Drop for DockerNetwork {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A fresh client on a thread of its own: this may run inside or outside a runtime,
        // and the test's client may belong to a runtime that is shutting down.
        let removal = std::thread::spawn(move || -> Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let docker = Docker::connect_with_defaults()?;
                bounded(docker.remove_network(&name)).await
            })
        });
        match removal.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("could not remove Docker network {}: {error:#}", self.name),
            Err(_) => eprintln!("removing Docker network {} panicked", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_at_the_tag() {
        assert_eq!(
            ImageRef::parse("elector-test/etcd:3.4.23"),
            ImageRef {
                name: "elector-test/etcd".into(),
                tag: "3.4.23".into()
            }
        );
        assert_eq!(
            ImageRef::parse("registry:5000/etcd"),
            ImageRef {
                name: "registry:5000/etcd".into(),
                tag: "latest".into()
            }
        );
        assert_eq!(
            ImageRef::parse("quay.io/coreos/etcd:v3.4.23").reference(),
            "quay.io/coreos/etcd:v3.4.23"
        );
    }
}

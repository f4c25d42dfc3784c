//! The compose example, run for real: `deploy/docker-compose.yml` with the override
//! `deploy/docker-compose.standin.yml` (stand-in nodes, the locally built etcd and elector
//! images). Brings the project up, finds the active replica (the stand-ins' logs, and the
//! electors' `/status` on their published ports), kills the active replica's node and elector
//! (SIGKILL), checks that the other replica takes over within the bound, never with two
//! active, and tears everything down (also on failure).
//!
//! `make compose-test` runs only this. Needs Docker Compose (Debian's `docker-compose` v1, or
//! the `docker compose` plugin) and the images of `make etcd-image image`. Skipped with a
//! loud message when no engine answers, unless `ELECTOR_REQUIRE_DOCKER=1`.

use anyhow::{Context, Result, bail, ensure};
use elector_integration::containers::replicas::{ProfileBounds, stand_in_history};
use elector_integration::containers::{
    COMPOSE_PROJECT_PREFIX, DockerTest, elector_image, etcd_image, logs_with_times, stand_in_image,
};
use elector_integration::host::{free_port, http_get_ok};
use elector_integration::replica_set::monitor::check_never_two_active;
use elector_model::history::History;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant, SystemTime};
use testcontainers::bollard::Docker;

/// Bound on `docker-compose up` and other compose commands.
const COMPOSE_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on the teardown in `Drop`.
const DOWN_TIMEOUT: Duration = Duration::from_secs(60);
const REPLICAS: [&str; 2] = ["a", "b"];

/// One compose project, brought down (with its volumes) when dropped.
struct Compose {
    program: Vec<String>,
    project: String,
    files: Vec<PathBuf>,
    env: Vec<(String, String)>,
}

impl Compose {
    /// `docker-compose`, or the `docker compose` plugin, whichever answers.
    fn find_program() -> Option<Vec<String>> {
        for program in [vec!["docker-compose"], vec!["docker", "compose"]] {
            let works = std::process::Command::new(program[0])
                .args(&program[1..])
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            if works {
                return Some(program.into_iter().map(str::to_owned).collect());
            }
        }
        None
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.program[0]);
        command
            .args(&self.program[1..])
            .arg("-p")
            .arg(&self.project);
        for file in &self.files {
            command.arg("-f").arg(file);
        }
        command
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs a compose command to completion (bounded); fails unless it succeeds.
    async fn run(&self, args: &[&str]) -> Result<Output> {
        let output = tokio::time::timeout(COMPOSE_TIMEOUT, self.command(args).output())
            .await
            .with_context(|| format!("compose {args:?} took longer than {COMPOSE_TIMEOUT:?}"))?
            .with_context(|| format!("running compose {args:?}"))?;
        ensure!(
            output.status.success(),
            "compose {args:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(output)
    }

    /// The container id of a service.
    async fn container(&self, service: &str) -> Result<String> {
        let output = self.run(&["ps", "-q", service]).await?;
        let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        ensure!(!id.is_empty(), "service {service} has no container");
        Ok(id)
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let mut command = std::process::Command::new(&self.program[0]);
        command
            .args(&self.program[1..])
            .arg("-p")
            .arg(&self.project);
        for file in &self.files {
            command.arg("-f").arg(file);
        }
        command
            .args(["down", "--volumes", "--remove-orphans", "--timeout", "2"])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let Ok(mut child) = command.spawn() else {
            eprintln!("could not run compose down for {}", self.project);
            return;
        };
        let deadline = Instant::now() + DOWN_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    eprintln!(
                        "compose down of {} did not finish within {DOWN_TIMEOUT:?}",
                        self.project
                    );
                    return;
                }
            }
        }
    }
}

/// A replica of the compose project: its node container and its elector's status address.
struct Replica {
    name: &'static str,
    node: String,
    status: SocketAddr,
    /// When it was killed, on the test's clock: its node is inactive from then on.
    killed: Option<Duration>,
}

/// Every node's history on the clock starting at `origin`, from the stand-ins' logs; a killed
/// node's history ends inactive at its kill.
async fn histories(
    docker: &Docker,
    replicas: &[Replica],
    origin: SystemTime,
) -> Result<Vec<History>> {
    let mut all = Vec::new();
    for replica in replicas {
        let lines = logs_with_times(docker, &replica.node).await?;
        let mut history = stand_in_history(&lines, origin)
            .with_context(|| format!("the history of node {}", replica.name))?;
        if let Some(killed) = replica.killed {
            history.retain(|&(at, _)| at <= killed);
            history.push((killed, false));
        }
        all.push(history);
    }
    Ok(all)
}

/// Waits until exactly one live node other than `except` is active; returns it.
async fn wait_single_active(
    docker: &Docker,
    replicas: &[Replica],
    origin: SystemTime,
    except: Option<usize>,
    within: Duration,
) -> Result<usize> {
    let deadline = Instant::now() + within;
    loop {
        let histories = histories(docker, replicas, origin).await?;
        let active: Vec<usize> = histories
            .iter()
            .enumerate()
            .filter(|(_, h)| h.last().is_some_and(|&(_, active)| active))
            .map(|(i, _)| i)
            .collect();
        if let [one] = active[..]
            && Some(one) != except
        {
            return Ok(one);
        }
        ensure!(
            Instant::now() < deadline,
            "no single active node within {within:?}; active: {active:?}; histories: \
             {histories:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The elector's role and node mode from its `/status`.
async fn status(replica: &Replica) -> Result<(String, String)> {
    let body = http_get_ok(replica.status, "/status").await?;
    let json: serde_json::Value = serde_json::from_str(&body)
        .with_context(|| format!("/status of {} is not JSON: {body}", replica.name))?;
    let field = |name: &str| json[name].as_str().unwrap_or("null").to_owned();
    Ok((field("role"), field("node_mode")))
}

/// Waits until replica's `/status` says `role` with the node in `mode`.
async fn wait_status(replica: &Replica, role: &str, mode: &str, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let seen = status(replica).await;
        if let Ok((r, m)) = &seen
            && r == role
            && m == mode
        {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "elector {} did not report role {role} with node {mode} within {within:?}: {seen:?}",
            replica.name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn since(origin: SystemTime) -> Duration {
    SystemTime::now()
        .duration_since(origin)
        .unwrap_or(Duration::ZERO)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_example_fails_over_when_the_active_replica_dies() -> Result<()> {
    let test = "compose_example_fails_over_when_the_active_replica_dies";
    let Some(docker) = DockerTest::begin(test).await else {
        return Ok(());
    };
    docker
        .require_image(&etcd_image(), "make etcd-image")
        .await?;
    docker.require_image(&elector_image(), "make image").await?;
    docker
        .require_image(&stand_in_image(), "make image")
        .await?;
    let Some(program) = Compose::find_program() else {
        if std::env::var("ELECTOR_REQUIRE_DOCKER").is_ok_and(|v| v.trim() == "1") {
            bail!("ELECTOR_REQUIRE_DOCKER=1 but neither docker-compose nor `docker compose` runs");
        }
        eprintln!(
            "\n!! SKIPPED {test}: no Docker Compose (Debian: apt-get install docker-compose)\n"
        );
        return Ok(());
    };

    let deploy = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let status_ports = [free_port()?, free_port()?];
    // The compose files take the images the tests use (ELECTOR_ETCD_IMAGE and the like).
    let env = vec![
        ("ETCD_IMAGE".to_owned(), etcd_image().reference()),
        ("ELECTOR_IMAGE".to_owned(), elector_image().reference()),
        ("STAND_IN_IMAGE".to_owned(), stand_in_image().reference()),
        ("NODE_A_P2P_PORT".to_owned(), free_port()?.to_string()),
        ("NODE_B_P2P_PORT".to_owned(), free_port()?.to_string()),
        (
            "ELECTOR_A_STATUS_PORT".to_owned(),
            status_ports[0].to_string(),
        ),
        (
            "ELECTOR_B_STATUS_PORT".to_owned(),
            status_ports[1].to_string(),
        ),
    ];
    let compose = Compose {
        program,
        project: format!("{COMPOSE_PROJECT_PREFIX}{}", std::process::id()),
        files: vec![
            deploy.join("docker-compose.yml"),
            deploy.join("docker-compose.standin.yml"),
        ],
        env,
    };
    let origin = SystemTime::now();
    compose.run(&["up", "-d"]).await?;
    let mut replicas = Vec::new();
    for (i, name) in REPLICAS.into_iter().enumerate() {
        replicas.push(Replica {
            name,
            node: compose.container(&format!("node-{name}")).await?,
            status: SocketAddr::from((Ipv4Addr::LOCALHOST, status_ports[i])),
            killed: None,
        });
    }
    let docker = docker.docker().clone();
    // The compose file's electors run with the default timing and the file's restart bound
    // (the image runs them under `elector supervise`), hence its shorter activation delay.
    let mut profile = ProfileBounds::default_timing();
    profile.timing.restart_bound = restart_bound_of(&deploy.join("docker-compose.yml"))?;
    profile.timing.activation_delay = profile.timing.minimum_activation_delay();

    let leader = wait_single_active(
        &docker,
        &replicas,
        origin,
        None,
        profile.first_activation_bound() + Duration::from_secs(10),
    )
    .await?;
    let other = 1 - leader;
    wait_status(
        &replicas[leader],
        "active",
        "active",
        Duration::from_secs(5),
    )
    .await?;
    wait_status(
        &replicas[other],
        "candidate",
        "standby",
        Duration::from_secs(5),
    )
    .await?;

    let name = replicas[leader].name;
    let before_kill = since(origin);
    compose
        .run(&[
            "kill",
            "-s",
            "SIGKILL",
            &format!("node-{name}"),
            &format!("elector-{name}"),
        ])
        .await?;
    replicas[leader].killed = Some(since(origin));
    let next = wait_single_active(
        &docker,
        &replicas,
        origin,
        Some(leader),
        profile.takeover_bound(),
    )
    .await?;
    wait_status(&replicas[next], "active", "active", Duration::from_secs(5)).await?;

    let histories = histories(&docker, &replicas, origin).await?;
    let activated = histories[next]
        .iter()
        .rev()
        .find(|&&(_, active)| active)
        .map(|&(at, _)| at)
        .context("no activation")?;
    // The dead leader's lease ran out and the next leader waited the activation delay.
    ensure!(
        activated >= before_kill + profile.timing.activation_delay,
        "replica {} activated {:.2}s after the kill, before the activation delay",
        replicas[next].name,
        (activated.saturating_sub(before_kill)).as_secs_f64()
    );
    let names: Vec<&str> = replicas.iter().map(|r| r.name).collect();
    check_never_two_active(&histories, since(origin), &names)?;
    eprintln!(
        "compose: replica {} active, killed at {:.2}s; replica {} active {:.2}s later (bound \
         {:.2}s)",
        replicas[leader].name,
        before_kill.as_secs_f64(),
        replicas[next].name,
        (activated.saturating_sub(before_kill)).as_secs_f64(),
        profile.takeover_bound().as_secs_f64()
    );
    Ok(())
}

/// The `ELECTOR_RESTART_BOUND:` a compose file gives its electors.
fn restart_bound_of(file: &std::path::Path) -> Result<Duration> {
    let text = std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
    let value = text
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("ELECTOR_RESTART_BOUND:"))
        .with_context(|| format!("{} sets no ELECTOR_RESTART_BOUND", file.display()))?;
    humantime::parse_duration(value.trim().trim_matches('"'))
        .with_context(|| format!("ELECTOR_RESTART_BOUND: {value}"))
}

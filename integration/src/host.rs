//! What every fixture running `elector` processes on this host shares: finding the binary
//! ([`elector_binary`]), starting it without the caller's `ELECTOR_*` settings
//! ([`elector_command`]), free loopback ports ([`free_port`]) and a minimal HTTP client for
//! status servers, stand-ins and etcd's metrics ([`http_get`], [`http_get_blocking`],
//! [`http_get_ok`]), and a child process killed when its guard drops ([`Guarded`]).

use anyhow::{Context, Result, anyhow, bail};
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Set this environment variable to run another `elector` binary (a release build, a
/// candidate fix) than the workspace's.
pub const BINARY_VAR: &str = "ELECTOR_BIN";

/// Bound on one HTTP exchange with a status server, a stand-in or etcd.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(3);

/// The `elector` binary to run: `$ELECTOR_BIN` if set; else the workspace's of the running
/// executable's build profile (`<target>/<profile>/deps/<test>` → `<target>/<profile>/elector`),
/// else of the other profile, else `$CARGO_TARGET_DIR/debug/elector`. Warns when it is older
/// than the shell's or core's sources.
pub fn elector_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(BINARY_VAR) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("{BINARY_VAR}={} is not a file", path.display());
        }
        return Ok(path);
    }
    let profile_dir = std::env::current_exe().ok().and_then(|exe| {
        let dir = exe.parent()?;
        Some(if dir.ends_with("deps") {
            dir.parent()?.to_owned()
        } else {
            dir.to_owned()
        })
    });
    let mut candidates = Vec::new();
    if let Some(dir) = profile_dir {
        candidates.push(dir.join("elector"));
        if let Some(target) = dir.parent() {
            for other in ["debug", "release"] {
                if !dir.ends_with(other) {
                    candidates.push(target.join(other).join("elector"));
                }
            }
        }
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(Path::new(&dir).join("debug").join("elector"));
    }
    let found = candidates
        .iter()
        .find(|path| path.is_file())
        .ok_or_else(|| {
            anyhow!(
                "the elector binary is missing (looked at {candidates:?}): run `cargo build -p \
                 elector` first, or set {BINARY_VAR}"
            )
        })?;
    warn_if_stale(found);
    Ok(found.clone())
}

/// Warns when the binary is older than the shell or core sources: it may not be what is meant
/// to be checked. (Not a failure: others may be editing those files right now.)
fn warn_if_stale(binary: &Path) {
    let Ok(built) = binary.metadata().and_then(|m| m.modified()) else {
        return;
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut newer = Vec::new();
    for dir in ["shell/src", "core/src"] {
        collect_newer(&workspace.join(dir), built, &mut newer);
    }
    if let Some(first) = newer.first() {
        eprintln!(
            "warning: {} is older than {} source file(s), e.g. {}; run `cargo build -p elector`",
            binary.display(),
            newer.len(),
            first.display()
        );
    }
}

/// Files under `dir` modified after `than`. Bounded by the source tree (no symlinks followed).
fn collect_newer(dir: &Path, than: std::time::SystemTime, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            collect_newer(&path, than, out);
        } else if entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified > than)
        {
            out.push(path);
        }
    }
}

/// A command running `binary` configured only by what the caller gives it: an `ELECTOR_*`
/// variable of the environment the fixture runs in (a developer's shell) would otherwise
/// configure every elector. Its state directory is a fresh one of its own
/// ([`private_state_dir`], as `ELECTOR_STATE_DIR`; a `--state-dir` flag wins): the default,
/// `/var/lib/elector` for root, is locked per value, and tests running side by side reuse
/// values.
pub fn elector_command(binary: &Path) -> Command {
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ELECTOR_") {
            command.env_remove(name);
        }
    }
    command.env("ELECTOR_STATE_DIR", private_state_dir());
    command
}

/// A new, empty state directory under the system's temporary directory, never the same twice
/// (process id and a counter). Left behind: a few bytes each.
pub fn private_state_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("elector-test-state-{}-{n}", std::process::id()))
}

/// A free loopback port, never the same twice in this process. Whoever asked binds it later;
/// another process could take it first, which is unlikely enough for tests and benchmarks and
/// fails loudly.
pub fn free_port() -> Result<u16> {
    /// Attempts at finding a port not given out before (the kernel rarely repeats one soon).
    const ATTEMPTS: usize = 1000;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    for _ in 0..ATTEMPTS {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
        let port = listener.local_addr()?.port();
        if given.insert(port) {
            return Ok(port);
        }
    }
    bail!("no new free loopback port in {ATTEMPTS} attempts")
}

/// One `GET` on a fresh connection, bounded by [`HTTP_TIMEOUT`]: the status code and body.
/// A client per call, with no pool: tests run many tokio runtimes, and a pooled connection
/// must not outlive the runtime that opened it.
pub async fn http_get(addr: SocketAddr, target: &str) -> Result<(u16, String)> {
    let url = format!("http://{addr}{target}");
    let exchange = async {
        let client = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .pool_max_idle_per_host(0)
            .build()?;
        let answer = client.get(&url).send().await?;
        let status = answer.status().as_u16();
        Ok::<_, reqwest::Error>((status, answer.text().await?))
    };
    exchange.await.with_context(|| format!("GET {url}"))
}

/// [`http_get`] blocking the thread, for code outside an async runtime (a runtime of its own
/// for the one call).
pub fn http_get_blocking(addr: SocketAddr, target: &str) -> Result<(u16, String)> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("a runtime for one GET")?
        .block_on(http_get(addr, target))
}

/// [`http_get`] that fails unless the answer is 200; the body.
pub async fn http_get_ok(addr: SocketAddr, target: &str) -> Result<String> {
    match http_get(addr, target).await? {
        (200, body) => Ok(body),
        (status, body) => bail!("GET http://{addr}{target}: {status} {}", body.trim()),
    }
}

/// A child process, killed (SIGKILL) and reaped when dropped. Its exit status is kept once
/// seen; every method takes `&self`, so a replica set can be read while its processes run.
pub struct Guarded {
    /// The child and, once reaped, its exit status. Reaping happens only under this lock, so
    /// while `exit` is `None` the child's pid names our own process.
    state: Mutex<(Child, Option<ExitStatus>)>,
    pid: u32,
}

impl Guarded {
    pub fn new(child: Child) -> Guarded {
        let pid = child.id();
        Guarded {
            state: Mutex::new((child, None)),
            pid,
        }
    }

    fn lock(&self) -> MutexGuard<'_, (Child, Option<ExitStatus>)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The exit status, once the process ended (it is reaped then).
    pub fn exit(&self) -> Option<ExitStatus> {
        let mut state = self.lock();
        let (child, exit) = &mut *state;
        if exit.is_none()
            && let Ok(Some(status)) = child.try_wait()
        {
            *exit = Some(status);
        }
        *exit
    }

    pub fn is_running(&self) -> bool {
        self.exit().is_none()
    }

    /// Sends `sig`; fails if the process has already ended.
    pub fn signal(&self, sig: libc::c_int) -> Result<()> {
        let mut state = self.lock();
        let (child, exit) = &mut *state;
        if exit.is_some() || matches!(child.try_wait(), Ok(Some(_))) {
            bail!("process {} has already exited", self.pid);
        }
        let pid = libc::pid_t::try_from(self.pid).context("pid out of range")?;
        // SAFETY: kill(2) reads two integers; `pid` is our child, not reaped (checked above
        // under the lock that every reap takes), so it cannot name another process.
        if unsafe { libc::kill(pid, sig) } != 0 {
            return Err(std::io::Error::last_os_error()).context("kill(2)");
        }
        Ok(())
    }

    /// kill -9 and reap; returns the instant just before the signal was sent.
    pub fn kill9(&self) -> Instant {
        let mut state = self.lock();
        let (child, exit) = &mut *state;
        let at = Instant::now();
        if exit.is_none() {
            let _ = child.kill();
            *exit = child.wait().ok();
        }
        at
    }

    /// Waits (bounded, without blocking the runtime) for the exit.
    pub async fn wait_exit(&self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exit() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[cfg(test)]
mod tests {
    use super::free_port;

    #[test]
    fn free_ports_are_not_given_twice() {
        let ports: Vec<u16> = (0..20).map(|_| free_port().unwrap()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len());
    }
}

//! A real, single-member etcd for tests: the `etcd` on `PATH` (or in `$TEST_ETCD_DIR`, see
//! [`etcd_program`]), on free loopback ports, in a temporary directory.
//!
//! It can be stopped and started again on the same data directory and ports (an "etcd
//! restarted" test), paused and resumed with SIGSTOP/SIGCONT (a hung etcd: connections stay
//! open, nothing answers), and it is killed when dropped. etcd's output goes to `etcd.log` in
//! the temporary directory; if the test panics, the directory is kept and the log's path and
//! tail are printed.
//!
//! [`EtcdProcess::start_cluster`] starts the members of one multi-member cluster instead, each
//! its own process that can be paused, stopped or killed and started again alone;
//! [`raft_leader`] says which member leads raft.
//!
//! [`EtcdProcess::start_new_tls`] serves clients over TLS only, with client certificates
//! required, from a throw-away CA made with the `openssl` command ([`TestPki`]).
//!
//! The methods block (they wait for processes); call them from a multi-threaded tokio runtime
//! or from `spawn_blocking`, so the runtime's other tasks go on meanwhile.
//!
//! One etcd process's life (ports, data directory, TLS material, start, stop, kill, restart,
//! pause, `etcdctl`): every method depends on how the process was started.

use crate::host::free_port;
use anyhow::{Context, Result, anyhow, bail};
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long etcd may take to serve after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long etcd may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one etcdctl run: its own `--command-timeout` plus start-up.
const ETCDCTL_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound on one member's answer to a status call.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// The variable that names a directory holding another etcd release's `etcd` and `etcdctl`
/// (`make unit-etcd35` sets it to etcd 3.5.1's): the tests of etcd's semantics run against
/// each release users run.
pub const ETCD_DIR_VARIABLE: &str = "TEST_ETCD_DIR";

/// `etcd` or `etcdctl`: from `$TEST_ETCD_DIR` when it is set, else from `PATH`.
pub fn etcd_program(name: &str) -> PathBuf {
    match std::env::var_os(ETCD_DIR_VARIABLE) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join(name),
        _ => PathBuf::from(name),
    }
}

/// One etcd server process and its data directory.
pub struct EtcdProcess {
    dir: Option<TempDir>,
    client_port: u16,
    peer_port: u16,
    tls: Option<TestPki>,
    child: Option<Child>,
    paused: bool,
    /// `--name`.
    name: String,
    /// `--initial-cluster`: this member alone, or every member of its cluster.
    initial_cluster: String,
}

impl EtcdProcess {
    /// Starts a fresh etcd and waits until it serves.
    pub fn start_new() -> Result<Self> {
        Self::start_with(None)
    }

    /// Starts a fresh etcd that serves clients over TLS only (`https://`), requires client
    /// certificates signed by `pki`'s CA, and waits until it serves.
    pub fn start_new_tls(pki: TestPki) -> Result<Self> {
        Self::start_with(Some(pki))
    }

    fn start_with(tls: Option<TestPki>) -> Result<Self> {
        let mut etcd = Self::unstarted("elector-test".to_owned(), tls, None)?;
        etcd.start()?;
        Ok(etcd)
    }

    /// A member not started yet, in a directory of its own (created in `keep_in` and left
    /// there, or temporary) and on free ports, forming a cluster of its own.
    fn unstarted(name: String, tls: Option<TestPki>, keep_in: Option<&Path>) -> Result<Self> {
        let prefix = format!("elector-etcd-{name}-");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix);
        let dir = match keep_in {
            Some(parent) => builder.disable_cleanup(true).tempdir_in(parent),
            None => builder.tempdir(),
        }
        .context("creating etcd's directory")?;
        let peer_port = free_port()?;
        Ok(EtcdProcess {
            dir: Some(dir),
            client_port: free_port()?,
            peer_port,
            tls,
            child: None,
            paused: false,
            initial_cluster: format!("{name}=http://127.0.0.1:{peer_port}"),
            name,
        })
    }

    /// Starts the `size` members `m0`, `m1`, ... of one fresh plain-text cluster and waits
    /// until each serves (has a leader). The first member is `members[0]`, and so on. Their
    /// directories are temporary, or with `keep_in` created there and left after the members
    /// are gone (for logs kept with others).
    pub fn start_cluster(size: usize, keep_in: Option<&Path>) -> Result<Vec<Self>> {
        let mut members = (0..size)
            .map(|i| Self::unstarted(format!("m{i}"), None, keep_in))
            .collect::<Result<Vec<_>>>()?;
        let initial_cluster = members
            .iter()
            .map(|m| m.initial_cluster.as_str())
            .collect::<Vec<_>>()
            .join(",");
        for m in &mut members {
            m.initial_cluster.clone_from(&initial_cluster);
            // No member serves before a majority runs: start all, then wait for each.
            m.spawn()?;
        }
        for m in &mut members {
            m.wait_until_serving()?;
        }
        Ok(members)
    }

    fn dir(&self) -> &Path {
        match &self.dir {
            Some(dir) => dir.path(),
            None => Path::new("/nonexistent"),
        }
    }

    /// The member's name (`--name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client URL, `http://127.0.0.1:<port>` (`https://` with TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// The CA and client certificate to reach a TLS etcd with.
    pub fn tls_files(&self) -> Option<&TestPki> {
        self.tls.as_ref()
    }

    /// etcd's log file (stdout and stderr of every run, appended).
    pub fn log_path(&self) -> PathBuf {
        self.dir().join("etcd.log")
    }

    /// The last `lines` lines of etcd's log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn failure(&self, what: String) -> anyhow::Error {
        anyhow!(
            "{what}\netcd log: {}\n--- last lines ---\n{}",
            self.log_path().display(),
            self.log_tail(20)
        )
    }

    /// Starts etcd (again) on the same data directory and ports, and waits until it serves.
    /// Does nothing if it runs already.
    pub fn start(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        self.spawn()?;
        self.wait_until_serving()
    }

    /// Starts the etcd process, without waiting for it to serve.
    fn spawn(&mut self) -> Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("opening etcd's log file")?;
        let client_url = self.endpoint();
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new(etcd_program("etcd"));
        if let Some(pki) = &self.tls {
            command
                .arg("--cert-file")
                .arg(&pki.server_cert)
                .arg("--key-file")
                .arg(&pki.server_key)
                .arg("--trusted-ca-file")
                .arg(&pki.ca)
                .arg("--client-cert-auth");
        }
        // An existing data directory makes etcd ignore the --initial-* flags: a restart rejoins.
        let child = command
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(self.dir().join("data"))
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(&self.initial_cluster)
            .arg("--logger")
            .arg("zap")
            .arg("--log-outputs")
            .arg("stderr")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("duplicating the log file handle")?)
            .stderr(log)
            .spawn()
            .context("starting `etcd` (is it on PATH?)")?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    /// Polls `GET /health` (`etcdctl endpoint health` with TLS) until etcd says it is healthy:
    /// it has a leader and serves reads.
    pub fn wait_until_serving(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.client_port));
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(self.failure(format!("etcd exited during start-up: {status}")));
            }
            let healthy = match self.tls {
                None => health_check(address),
                Some(_) => self.etcdctl_health_check(),
            };
            if healthy {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.failure(format!(
                    "etcd did not serve {} within {START_TIMEOUT:?}",
                    self.endpoint()
                )));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops etcd gracefully (SIGTERM; SIGKILL if it lingers) and waits until it is gone.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if self.paused {
            // A stopped process does not act on SIGTERM until it is continued.
            signal(&child, libc::SIGCONT)?;
            self.paused = false;
        }
        signal(&child, libc::SIGTERM)?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Ok(());
                }
            }
        }
    }

    /// Kills etcd at once (SIGKILL, as a power loss does): no graceful shutdown, no raft
    /// leadership handed over.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL works on a stopped process too.
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// Freezes etcd with SIGSTOP: its sockets stay open but nothing answers. Returns once every
    /// thread of etcd has stopped: kill(2) only queues the stop, and a thread still running on
    /// the other core could otherwise answer a request sent right after.
    pub fn pause(&mut self) -> Result<()> {
        let child = self.child.as_ref().context("etcd is not running")?;
        signal(child, libc::SIGSTOP)?;
        self.paused = true;
        wait_until_stopped(child.id(), Duration::from_secs(5))
    }

    /// Lets a paused etcd go on (SIGCONT).
    pub fn resume(&mut self) -> Result<()> {
        let child = self.child.as_ref().context("etcd is not running")?;
        signal(child, libc::SIGCONT)?;
        self.paused = false;
        Ok(())
    }

    fn etcdctl_command(&self) -> Command {
        let mut command = Command::new(etcd_program("etcdctl"));
        command
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(self.endpoint())
            .arg("--dial-timeout=3s")
            .arg("--command-timeout=5s")
            .stdin(Stdio::null());
        if let Some(pki) = &self.tls {
            command
                .arg("--cacert")
                .arg(&pki.ca)
                .arg("--cert")
                .arg(&pki.client_cert)
                .arg("--key")
                .arg(&pki.client_key);
        }
        command
    }

    fn etcdctl_health_check(&self) -> bool {
        let status = self
            .etcdctl_command()
            .args([
                "endpoint",
                "health",
                "--dial-timeout=1s",
                "--command-timeout=1s",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        matches!(status, Ok(status) if status.success())
    }

    /// Runs `etcdctl <args>` against this etcd to completion (bounded) and returns its output.
    pub fn etcdctl(&self, args: &[&str]) -> Result<Output> {
        let mut child = self
            .etcdctl_command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting `etcdctl` (is it on PATH?)")?;
        // Read both pipes on threads so a chatty etcdctl cannot block on a full pipe.
        let stdout = child.stdout.take().map(read_all_in_background);
        let stderr = child.stderr.take().map(read_all_in_background);
        let deadline = Instant::now() + ETCDCTL_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("etcdctl {args:?} did not finish within {ETCDCTL_TIMEOUT:?}");
                }
                Err(error) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(error).context("waiting for etcdctl");
                }
            }
        };
        let collect = |reader: Option<thread::JoinHandle<Vec<u8>>>| {
            reader
                .and_then(|handle| handle.join().ok())
                .unwrap_or_default()
        };
        Ok(Output {
            status,
            stdout: collect(stdout),
            stderr: collect(stderr),
        })
    }

    /// Runs `etcdctl <args>`, fails unless it succeeds, and returns its standard output.
    pub fn etcdctl_ok(&self, args: &[&str]) -> Result<String> {
        let output = self.etcdctl(args)?;
        if !output.status.success() {
            bail!(
                "etcdctl {args:?} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Starts a long-running `etcdctl <args>` (`elect`, `watch`) whose output lines can be
    /// awaited; it is killed when the returned guard is dropped.
    pub fn spawn_etcdctl(&self, args: &[&str]) -> Result<EtcdctlProcess> {
        let mut child = self
            .etcdctl_command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting `etcdctl` (is it on PATH?)")?;
        let stdout = child.stdout.take().context("etcdctl has no stdout")?;
        Ok(EtcdctlProcess {
            child,
            lines: lines_in_background(stdout),
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        })
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            let log = dir.path().join("etcd.log");
            let kept = dir.keep();
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = tail.lines().collect();
            eprintln!(
                "etcd data and log kept in {}; etcd log {}:\n{}",
                kept.display(),
                log.display(),
                lines[lines.len().saturating_sub(30)..].join("\n")
            );
        }
    }
}

/// A long-running etcdctl (`elect`, `watch`), killed when dropped.
pub struct EtcdctlProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    args: Vec<String>,
}

impl EtcdctlProcess {
    /// The next line etcdctl prints, waiting at most `within`.
    pub fn next_line(&mut self, within: Duration) -> Result<String> {
        self.lines.recv_timeout(within).map_err(|error| {
            anyhow!(
                "etcdctl {:?} printed no line within {within:?}: {error}",
                self.args
            )
        })
    }

    /// Whether etcdctl printed no line for `period`: it waits, as a campaign behind a leader
    /// does.
    pub fn silent_for(&mut self, period: Duration) -> bool {
        self.lines.recv_timeout(period).is_err()
    }

    /// Sends SIGINT (what Ctrl-C does: `etcdctl elect` resigns on it) and waits, bounded, for
    /// the exit.
    pub fn interrupt(&mut self, within: Duration) -> Result<()> {
        signal(&self.child, libc::SIGINT)?;
        let deadline = Instant::now() + within;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => bail!(
                    "etcdctl {:?} did not exit within {within:?} of SIGINT",
                    self.args
                ),
            }
        }
    }

    /// Kills etcdctl at once (SIGKILL): it cannot resign, its lease stays until it expires.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for EtcdctlProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `signal` to `child` (nothing if it has exited and been reaped).
fn signal(child: &Child, signal: libc::c_int) -> Result<()> {
    let pid = libc::pid_t::try_from(child.id()).context("process id out of range")?;
    // SAFETY: kill(2) only reads its two integer arguments; `pid` is our own child, not yet
    // reaped (the `Child` still holds it), so it cannot name another process.
    let result = unsafe { libc::kill(pid, signal) };
    if result != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("sending signal {signal} to process {pid}"));
    }
    Ok(())
}

/// Waits until every thread of process `pid` is stopped (state `T` in /proc), within `bound`.
fn wait_until_stopped(pid: u32, bound: Duration) -> Result<()> {
    let pid = i32::try_from(pid).context("process id out of range")?;
    let process = procfs::process::Process::new(pid).context("reading the process in /proc")?;
    let all_stopped = || -> Result<bool> {
        for task in process.tasks().context("listing the process's threads")? {
            // A thread that exited between the listing and the read is not running either.
            let Ok(stat) = task.and_then(|task| task.stat()) else {
                continue;
            };
            if stat.state != 'T' {
                return Ok(false);
            }
        }
        Ok(true)
    };
    let deadline = Instant::now() + bound;
    while !all_stopped()? {
        if Instant::now() >= deadline {
            bail!("process {pid} did not stop within {bound:?} of SIGSTOP");
        }
        thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Which of the etcd members at `endpoints` (plain `http://`) is the raft leader, by the
/// maintenance status API: each member's own id against the leader id the members that answer
/// know. A member that does not answer (frozen, killed) is not found as the leader.
pub async fn raft_leader(endpoints: &[String]) -> Result<usize> {
    let mut ids = Vec::new();
    let mut leader = None;
    for endpoint in endpoints {
        let status = async {
            let mut client = etcd_client::Client::connect([endpoint], None).await?;
            client.status().await
        };
        match tokio::time::timeout(STATUS_TIMEOUT, status).await {
            Ok(Ok(status)) => {
                ids.push(status.header().map(|header| header.member_id()));
                // 0: this member knows no leader.
                if status.leader() != 0 {
                    leader = Some(status.leader());
                }
            }
            _ => ids.push(None),
        }
    }
    let leader = leader.with_context(|| format!("no member of {endpoints:?} knows a leader"))?;
    ids.iter()
        .position(|id| *id == Some(leader))
        .with_context(|| format!("the raft leader {leader:x} is not a member that answers"))
}

/// `GET /health` on etcd's client port; true if it answers `"health":"true"`.
fn health_check(address: SocketAddr) -> bool {
    let timeout = Duration::from_millis(500);
    let Ok(mut stream) = TcpStream::connect_timeout(&address, timeout) else {
        return false;
    };
    if stream.set_read_timeout(Some(timeout)).is_err()
        || stream.set_write_timeout(Some(timeout)).is_err()
    {
        return false;
    }
    let request = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    // HTTP/1.0: the server closes the connection after the answer.
    let _ = stream.take(64 * 1024).read_to_string(&mut answer);
    answer.contains(r#""health":"true""#)
}

fn read_all_in_background(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

fn lines_in_background(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// A throw-away CA with a server certificate for 127.0.0.1 and a client certificate, made
/// with the `openssl` command in a temporary directory (removed when dropped).
pub struct TestPki {
    _dir: TempDir,
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TestPki {
    /// Makes the CA and both certificates (P-256 keys, valid for a day).
    pub fn generate() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("elector-pki-")
            .tempdir()
            .context("creating the PKI's temporary directory")?;
        let path = |name: &str| dir.path().join(name);
        let new_key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let subject = |name: &str| format!("/CN=elector test {name}");
        openssl(
            dir.path(),
            &[
                &[
                    "req", "-x509", "-days", "1", "-keyout", "ca.key", "-out", "ca.pem",
                ][..],
                &new_key,
                &["-subj", &subject("CA")],
            ]
            .concat(),
        )?;
        for (name, usage, san) in [
            ("server", "serverAuth", "subjectAltName=IP:127.0.0.1\n"),
            ("client", "clientAuth", ""),
        ] {
            let (key, csr) = (format!("{name}.key"), format!("{name}.csr"));
            let (cert, extensions) = (format!("{name}.pem"), format!("{name}.ext"));
            std::fs::write(
                path(&extensions),
                format!("{san}extendedKeyUsage={usage}\n"),
            )
            .context("writing certificate extensions")?;
            openssl(
                dir.path(),
                &[
                    &["req", "-keyout", &key, "-out", &csr][..],
                    &new_key,
                    &["-subj", &subject(name)],
                ]
                .concat(),
            )?;
            openssl(
                dir.path(),
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "1",
                    "-out",
                    &cert,
                    "-extfile",
                    &extensions,
                ],
            )?;
        }
        Ok(TestPki {
            ca: path("ca.pem"),
            server_cert: path("server.pem"),
            server_key: path("server.key"),
            client_cert: path("client.pem"),
            client_key: path("client.key"),
            _dir: dir,
        })
    }
}

/// Runs `openssl <args>` in `dir`, failing with its stderr.
fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running `openssl` (is it on PATH?)")?;
    if !output.status.success() {
        bail!(
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

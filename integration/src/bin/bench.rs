//! `make bench`: failover, handover and footprint of the elector, measured on this machine
//! against a real local etcd and stand-in nodes, side by side with etcd's Go election
//! (`etcdctl elect`, the code the Go elector uses). Writes `docs/benchmarks.md` and the chart
//! `docs/benchmarks.svg`.
//!
//! Phases (each can be chosen with `--phases`):
//! - `idle`: etcd's own CPU with no client, for reference;
//! - `crash-default`, `crash-fast`: kill -9 of the active replica's elector and node (a
//!   crashed host), time until the other node is active, at the default timing and with the
//!   3 s lease profile. Many two-replica clusters on distinct keys run at once;
//! - `baseline`: the same with two `etcdctl elect` candidates, each with a wrapper that
//!   activates its node when etcdctl prints that it leads, and never demotes (the Go elector's
//!   behaviour);
//! - `handover`: SIGTERM to the leader's elector, `elector handover`, and the leader's node
//!   turning unready: the gap with no active node and the overlap (`dual_active`);
//! - `footprint`: RSS and CPU of an idle leader and standby, etcd requests per elector;
//! - `scale`: 100 electors on one etcd: etcd CPU and keep-alive latency;
//! - `sim`: the simulation's speed (simulated seconds per wall second);
//! - the criterion results of `cargo bench -p elector-core` are read from `--criterion-dir`.
//!
//! Every child process is killed when its guard is dropped: on success, on error, on panic and
//! on Ctrl-C or SIGTERM (the run is abandoned and the guards dropped).

use anyhow::{Context, Result, bail};
use clap::Parser;
use elector_core::Timing;
use elector_integration::FAST_PROFILE_ARGS;
use elector_integration::etcd_process::{EtcdProcess, EtcdctlProcess};
use elector_integration::standin::{StandIn, StandInOptions};
use elector_sim::history::{History, dual_active};
use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use futures_util::future::join_all;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ----- command line -------------------------------------------------------------------------

#[derive(Parser, Debug)]
#[command(
    about = "Failover, handover and footprint of the elector against a local etcd; \
                   writes docs/benchmarks.md and docs/benchmarks.svg."
)]
struct Args {
    /// The elector binary (a release build)
    #[arg(long, default_value = "bin/elector")]
    elector: PathBuf,
    /// The simulation binary; its speed is reported if it runs
    #[arg(long, default_value = "target/release/elector-sim")]
    sim: PathBuf,
    /// Where `cargo bench -p elector-core` left criterion's results
    #[arg(long, default_value = "target/criterion")]
    criterion_dir: PathBuf,
    /// The report to write
    #[arg(long, default_value = "docs/benchmarks.md")]
    out: PathBuf,
    /// The chart to write (plain SVG)
    #[arg(long, default_value = "docs/benchmarks.svg")]
    svg: PathBuf,
    /// Phases to run, comma separated: idle, crash-default, crash-fast, baseline, handover,
    /// footprint, scale, sim (default: all)
    #[arg(long, value_delimiter = ',')]
    phases: Option<Vec<String>>,
    /// Crash failover, default timing: clusters run at once, and trials each
    #[arg(long, default_value_t = 10)]
    crash_clusters: usize,
    #[arg(long, default_value_t = 2)]
    crash_rounds: usize,
    /// Crash failover, 3 s profile: clusters run at once, and trials each
    #[arg(long, default_value_t = 10)]
    fast_clusters: usize,
    #[arg(long, default_value_t = 2)]
    fast_rounds: usize,
    /// Baseline (`etcdctl elect` pairs), all at once, one trial each
    #[arg(long, default_value_t = 20)]
    baseline_clusters: usize,
    /// Handover: clusters run at once, and rounds (one trial of each kind per round)
    #[arg(long, default_value_t = 5)]
    handover_clusters: usize,
    #[arg(long, default_value_t = 2)]
    handover_rounds: usize,
    /// Measuring window of the footprint phase (CPU is extrapolated to an hour)
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    footprint_window: Duration,
    /// Scale phase: two-replica clusters on one etcd (100 electors with 50)
    #[arg(long, default_value_t = 50)]
    scale_clusters: usize,
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    scale_window: Duration,
    /// etcd alone, before any client, for reference
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    idle_window: Duration,
    /// Seeds of the simulation run
    #[arg(long, default_value_t = 50)]
    sim_seeds: u64,
}

const ALL_PHASES: [&str; 8] = [
    "idle",
    "crash-default",
    "crash-fast",
    "baseline",
    "handover",
    "footprint",
    "scale",
    "sim",
];

impl Args {
    fn runs(&self, phase: &str) -> bool {
        self.phases
            .as_ref()
            .is_none_or(|p| p.iter().any(|x| x == phase))
    }
}

// ----- timing profiles ----------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Profile {
    /// The elector's defaults: TTL 10 s, drain bound 5 s, activation delay 8.1 s.
    Default,
    /// The 3 s lease profile of docs/safety.md.
    Fast,
}

impl Profile {
    fn args(self) -> &'static [&'static str] {
        match self {
            Profile::Default => &[],
            Profile::Fast => &FAST_PROFILE_ARGS,
        }
    }

    /// The core's timing for this profile, with the activation delay the elector derives.
    fn timing(self) -> Timing {
        match self {
            Profile::Default => Timing::default(),
            Profile::Fast => Timing::fast_profile(),
        }
    }

    /// The stand-ins' consensus round: within the drain bound, like the demo's.
    fn round(self) -> Duration {
        match self {
            Profile::Default => Duration::from_secs(2),
            Profile::Fast => Duration::from_millis(500),
        }
    }

    fn describe(self) -> String {
        let t = self.timing();
        format!(
            "TTL {}, activation delay {}, stand-in round {}",
            secs(t.lease_ttl),
            secs(t.activation_delay),
            secs(self.round())
        )
    }
}

/// Bound on reaching a state the cluster should reach by itself (an election, a failover).
const SETTLE: Duration = Duration::from_secs(90);
/// Bound on the Go election's failover: its session TTL is 60 s.
const BASELINE_SETTLE: Duration = Duration::from_secs(150);
/// Poll period of the waits.
const POLL: Duration = Duration::from_millis(10);
/// Bound on one HTTP exchange.
const HTTP_TIMEOUT: Duration = Duration::from_secs(3);
/// Bound on an elector's exit after SIGTERM (the elector's own bound is 8.8 s by default).
const EXIT_BOUND: Duration = Duration::from_secs(20);

// ----- processes ----------------------------------------------------------------------------

/// A child process, killed (SIGKILL) and reaped when dropped.
struct Guarded {
    child: Child,
}

impl Guarded {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: libc::c_int) -> Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).context("pid out of range")?;
        // SAFETY: kill(2) reads two integers; `pid` is our child, not reaped yet (the `Child`
        // still holds it), so it cannot name another process.
        if unsafe { libc::kill(pid, sig) } != 0 {
            return Err(std::io::Error::last_os_error()).context("kill(2)");
        }
        Ok(())
    }

    /// kill -9 and reap; returns the instant just before the signal was sent.
    fn kill9(&mut self) -> Instant {
        let at = Instant::now();
        let _ = self.child.kill();
        let _ = self.child.wait();
        at
    }

    /// Waits (bounded, without blocking the runtime) for the exit.
    async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) of a process so far, from /proc/<pid>/stat.
fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may contain spaces; fields after it are plain.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) (utime, stime) are the 12th and 13th after the name.
    let ticks: u64 = fields
        .get(11..13)
        .context("short /proc stat")?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks()))
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a configuration value; no memory is passed.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
}

/// A `kB` field of /proc/<pid>/status (`VmRSS`, `VmHWM`), in bytes.
fn status_kb(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// The pid of the process whose command line contains `needle` (etcd's data directory).
fn find_pid(needle: &str) -> Option<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        (pid != me && cmdline.contains(needle) && !cmdline.contains("etcdctl")).then_some(pid)
    })
}

/// Busy and total jiffies of the whole machine, from /proc/stat.
fn machine_jiffies() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// CPU used by this process and its reaped children.
fn own_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks: u64 = fields.get(11..15).map(|f| f.iter().sum()).unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / clock_ticks())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

// ----- HTTP ---------------------------------------------------------------------------------

/// `GET path` (HTTP/1.0, so the answer is neither chunked nor kept alive); status and body.
async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        anyhow::Ok(parse_http(&raw)?)
    };
    tokio::time::timeout(HTTP_TIMEOUT, exchange)
        .await
        .with_context(|| format!("GET http://{addr}{path}: no answer within {HTTP_TIMEOUT:?}"))?
        .with_context(|| format!("GET http://{addr}{path}"))
}

/// The same, blocking, for the baseline's wrapper threads.
fn http_get_blocking(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let mut raw = Vec::new();
    stream.take(1 << 20).read_to_end(&mut raw)?;
    parse_http(&raw)
}

fn parse_http(raw: &[u8]) -> Result<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").context("incomplete answer")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("bad status line")?;
    Ok((status, body.to_owned()))
}

/// Prometheus text: the sum of every sample of `name` per value of `label` (all samples under
/// the key "" when `label` is empty).
fn metric_by_label(text: &str, name: &str, label: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once('}') {
                Some((labels, value)) => (labels, value),
                None => continue,
            },
            None if rest.starts_with(' ') => ("", rest),
            None => continue,
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let key = labels
            .split(',')
            .find_map(|kv| kv.strip_prefix(label)?.strip_prefix("=\""))
            .map(|v| v.trim_end_matches('"').to_owned())
            .unwrap_or_default();
        let key = if label.is_empty() { String::new() } else { key };
        *out.entry(key).or_insert(0.0) += value;
    }
    out
}

fn metric_total(text: &str, name: &str) -> f64 {
    metric_by_label(text, name, "").values().sum()
}

// ----- statistics ---------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
struct Summary {
    n: usize,
    min: f64,
    q1: f64,
    median: f64,
    q3: f64,
    p95: f64,
    max: f64,
}

/// Nearest-rank percentile of sorted values.
fn rank(sorted: &[f64], q: f64) -> f64 {
    let k = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[k - 1]
}

fn summarize(values: &[f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Summary {
        n,
        min: v[0],
        q1: rank(&v, 0.25),
        median,
        q3: rank(&v, 0.75),
        p95: rank(&v, 0.95),
        max: v[n - 1],
    })
}

fn median(values: &[f64]) -> Option<f64> {
    summarize(values).map(|s| s.median)
}

/// `later - earlier` in seconds, negative when `later` is earlier.
fn signed_seconds(later: Instant, earlier: Instant) -> f64 {
    if later >= earlier {
        (later - earlier).as_secs_f64()
    } else {
        -(earlier - later).as_secs_f64()
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s} s")
    }
}

// ----- etcd ---------------------------------------------------------------------------------

/// The etcd every phase shares, its process id and a client for the benchmark's own reads.
struct Etcd {
    process: EtcdProcess,
    pid: u32,
    client: Client,
    metrics_addr: SocketAddr,
}

impl Etcd {
    async fn start() -> Result<Etcd> {
        let process = tokio::task::spawn_blocking(EtcdProcess::start_new).await??;
        let data_dir = process
            .log_path()
            .parent()
            .context("etcd's directory")?
            .join("data");
        let pid = find_pid(&data_dir.display().to_string())
            .context("finding etcd's process id in /proc")?;
        let endpoint = process.endpoint();
        let client = Client::connect([endpoint.clone()], None)
            .await
            .context("connecting to etcd")?;
        let metrics_addr: SocketAddr = endpoint
            .trim_start_matches("http://")
            .parse()
            .context("etcd's address")?;
        Ok(Etcd {
            process,
            pid,
            client,
            metrics_addr,
        })
    }

    fn endpoint(&self) -> String {
        self.process.endpoint()
    }

    async fn metrics(&self) -> Result<String> {
        let (status, body) = http_get(self.metrics_addr, "/metrics").await?;
        if status != 200 {
            bail!("etcd /metrics answered {status}");
        }
        Ok(body)
    }

    /// Candidate keys under `<key>/`.
    async fn candidates(&self, key: &str) -> Result<i64> {
        let mut client = self.client.clone();
        let response = client
            .get(
                format!("{key}/"),
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await?;
        Ok(response.count())
    }

    async fn wait_candidates(&self, key: &str, count: i64, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if self.candidates(key).await? == count {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{key}: not {count} candidates within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A snapshot of what etcd served: gRPC messages received and RPCs handled, per method.
#[derive(Clone, Debug, Default)]
struct EtcdCounters {
    received: BTreeMap<String, f64>,
    handled: BTreeMap<String, f64>,
    cpu: Duration,
    at: Option<Instant>,
}

async fn etcd_counters(etcd: &Etcd) -> Result<EtcdCounters> {
    let text = etcd.metrics().await?;
    Ok(EtcdCounters {
        received: metric_by_label(&text, "grpc_server_msg_received_total", "grpc_method"),
        handled: metric_by_label(&text, "grpc_server_handled_total", "grpc_method"),
        cpu: cpu_time(etcd.pid)?,
        at: Some(Instant::now()),
    })
}

/// What etcd did between two snapshots.
#[derive(Clone, Debug, Default)]
struct EtcdWindow {
    seconds: f64,
    cpu_share: f64,
    received_per_s: BTreeMap<String, f64>,
    handled_per_s: f64,
    rss: u64,
}

impl EtcdWindow {
    fn of(before: &EtcdCounters, after: &EtcdCounters, rss: u64) -> EtcdWindow {
        let seconds = match (before.at, after.at) {
            (Some(a), Some(b)) => (b - a).as_secs_f64().max(1e-3),
            _ => 1.0,
        };
        let delta = |a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>| {
            b.iter()
                .map(|(k, v)| (k.clone(), (v - a.get(k).copied().unwrap_or(0.0)) / seconds))
                .filter(|(_, v)| *v > 0.0)
                .collect::<BTreeMap<_, _>>()
        };
        EtcdWindow {
            seconds,
            cpu_share: (after.cpu.saturating_sub(before.cpu)).as_secs_f64() / seconds,
            received_per_s: delta(&before.received, &after.received),
            handled_per_s: delta(&before.handled, &after.handled).values().sum(),
            rss,
        }
    }

    fn received_total(&self) -> f64 {
        self.received_per_s.values().sum()
    }
}

/// Records the deletions of candidate keys under `<key>/` (with the deleted value), to tell
/// when etcd expired a lease.
struct KeyWatch {
    deletions: Arc<Mutex<Vec<(Instant, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl KeyWatch {
    async fn start(etcd: &Etcd, key: &str) -> Result<KeyWatch> {
        let mut client = etcd.client.clone();
        let mut stream = client
            .watch(
                format!("{key}/"),
                Some(WatchOptions::new().with_prefix().with_prev_key()),
            )
            .await
            .context("watching the election")?;
        let deletions = Arc::new(Mutex::new(Vec::new()));
        let sink = deletions.clone();
        let task = tokio::spawn(async move {
            while let Ok(Some(response)) = stream.message().await {
                let at = Instant::now();
                for event in response.events() {
                    if event.event_type() == EventType::Delete {
                        let value = event
                            .prev_kv()
                            .and_then(|kv| kv.value_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        sink.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((at, value));
                    }
                }
            }
        });
        Ok(KeyWatch { deletions, task })
    }

    /// When the key holding `value` was deleted after `since`.
    fn deleted(&self, value: &str, since: Instant) -> Option<Instant> {
        self.deletions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(at, v)| *at >= since && v == value)
            .map(|(at, _)| *at)
    }
}

impl Drop for KeyWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ----- replicas -----------------------------------------------------------------------------

/// One life of a stand-in node; a crashed host's node is replaced by a new one.
struct NodeLife {
    standin: Option<StandIn>,
    /// When it started, on the benchmark's clock (just before `StandIn::start`).
    started: Instant,
    /// Its history once stopped (a stopped node is inactive).
    history: Option<History>,
}

/// How a replica takes part in the election.
enum Candidate {
    None,
    Elector(Guarded),
    Go(GoCandidate),
}

struct Replica {
    value: String,
    lives: Vec<NodeLife>,
    candidate: Candidate,
    status_port: Option<u16>,
    /// Elector processes started for this replica.
    starts: usize,
}

impl Replica {
    fn node(&self) -> Option<&StandIn> {
        self.lives.last().and_then(|l| l.standin.as_ref())
    }

    fn is_active(&self) -> bool {
        self.node().is_some_and(|n| n.state().active)
    }

    fn elector_pid(&self) -> Option<u32> {
        match &self.candidate {
            Candidate::Elector(g) => Some(g.pid()),
            _ => None,
        }
    }
}

/// The environment every cluster shares.
struct Env {
    origin: Instant,
    etcd: Etcd,
    elector: PathBuf,
    logs: PathBuf,
}

impl Env {
    fn on_clock(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.origin)
    }
}

/// Replicas on one election key.
struct Cluster<'a> {
    env: &'a Env,
    key: String,
    profile: Profile,
    replicas: Vec<Replica>,
}

impl<'a> Cluster<'a> {
    fn new(env: &'a Env, key: String, profile: Profile) -> Self {
        Cluster {
            env,
            key,
            profile,
            replicas: Vec::new(),
        }
    }

    /// Adds a replica with a fresh node (and no candidate yet); returns its index.
    async fn add_replica(&mut self, value: String, status: bool) -> Result<usize> {
        let status_port = if status { Some(free_port()?) } else { None };
        self.replicas.push(Replica {
            value,
            lives: Vec::new(),
            candidate: Candidate::None,
            status_port,
            starts: 0,
        });
        let i = self.replicas.len() - 1;
        self.start_node(i).await?;
        Ok(i)
    }

    async fn start_node(&mut self, i: usize) -> Result<()> {
        let options = StandInOptions {
            start_active: false,
            round: self.profile.round(),
            ready: true,
        };
        let any: SocketAddr = (Ipv4Addr::LOCALHOST, 0).into();
        let started = Instant::now();
        let standin = StandIn::start(any, any, options)
            .await
            .context("starting a stand-in node")?;
        self.replicas[i].lives.push(NodeLife {
            standin: Some(standin),
            started,
            history: None,
        });
        Ok(())
    }

    fn start_elector(&mut self, i: usize) -> Result<()> {
        let env = self.env;
        let replica = &mut self.replicas[i];
        replica.starts += 1;
        let node = replica.node().context("the replica has no node")?;
        let (admin, probe) = (node.admin_addr(), node.probe_addr());
        let log_name = format!(
            "{}-{}-{}.log",
            self.key.trim_start_matches('/').replace('/', "_"),
            replica.value,
            replica.starts
        );
        let log = std::fs::File::create(env.logs.join(log_name)).context("creating a log")?;
        let status = match replica.status_port {
            Some(port) => format!("127.0.0.1:{port}"),
            None => "off".to_owned(),
        };
        let child = Command::new(&env.elector)
            .arg("--etcd")
            .arg(env.etcd.endpoint())
            .arg("--iotex-admin")
            .arg(format!("http://{admin}"))
            .arg("--iotex-probe")
            .arg(format!("http://{probe}"))
            .arg("--key")
            .arg(&self.key)
            .arg("--value")
            .arg(&replica.value)
            .arg("--status-addr")
            .arg(status)
            .args(self.profile.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", env.elector.display()))?;
        replica.candidate = Candidate::Elector(Guarded { child });
        Ok(())
    }

    /// The Go election: `etcdctl elect <key> <value>` and a wrapper that activates the node
    /// once etcdctl says it leads.
    fn start_go_candidate(&mut self, i: usize) -> Result<()> {
        let replica = &mut self.replicas[i];
        let admin = replica
            .node()
            .context("the replica has no node")?
            .admin_addr();
        let etcdctl = self
            .env
            .etcd
            .process
            .spawn_etcdctl(&["elect", &self.key, &replica.value])?;
        replica.candidate = Candidate::Go(GoCandidate::start(etcdctl, admin));
        Ok(())
    }

    /// A crashed host: kill -9 of the candidate process, and the node stops. Returns the
    /// instant of the kill.
    async fn crash(&mut self, i: usize) -> Result<Instant> {
        let replica = &mut self.replicas[i];
        let killed_at = match std::mem::replace(&mut replica.candidate, Candidate::None) {
            Candidate::Elector(mut guard) => guard.kill9(),
            Candidate::Go(go) => go.kill9().await?,
            Candidate::None => bail!("replica {} has no candidate to kill", replica.value),
        };
        let life = replica.lives.last_mut().context("no node")?;
        if let Some(node) = life.standin.take() {
            let state = node.state();
            let mut history = state.history;
            history.push((state.now, false));
            life.history = Some(history);
            node.shutdown().await;
        }
        Ok(killed_at)
    }

    fn active(&self) -> Vec<usize> {
        (0..self.replicas.len())
            .filter(|&i| self.replicas[i].is_active())
            .collect()
    }

    /// Waits until exactly one node, not `except`, is active; returns it and when it became
    /// active (from its history).
    async fn wait_active(
        &self,
        except: Option<usize>,
        within: Duration,
    ) -> Result<(usize, Instant)> {
        let deadline = Instant::now() + within;
        loop {
            if let [one] = self.active()[..]
                && Some(one) != except
            {
                let life = self.replicas[one].lives.last().context("no node")?;
                let node = life.standin.as_ref().context("no node")?;
                let became = node
                    .state()
                    .history
                    .iter()
                    .rev()
                    .find(|(_, active)| *active)
                    .map(|(at, _)| life.started + *at)
                    .unwrap_or_else(Instant::now);
                return Ok((one, became));
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: no single active node within {within:?} (active: {:?})",
                    self.key,
                    self.active()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// When replica `i`'s current node last went from active to inactive, at or after `since`.
    fn went_standby(&self, i: usize, since: Instant) -> Option<Instant> {
        let life = self.replicas[i].lives.last()?;
        let history = match &life.history {
            Some(h) => h.clone(),
            None => life.standin.as_ref()?.state().history,
        };
        history
            .iter()
            .filter(|(_, active)| !active)
            .map(|(at, _)| life.started + *at)
            .rfind(|at| *at >= since)
    }

    /// Every node life's history on the benchmark's clock, up to now.
    fn histories(&self) -> Vec<History> {
        self.replicas
            .iter()
            .flat_map(|r| r.lives.iter())
            .map(|life| {
                let offset = self.env.on_clock(life.started);
                let raw = match (&life.history, &life.standin) {
                    (Some(h), _) => h.clone(),
                    (None, Some(n)) => n.state().history,
                    (None, None) => Vec::new(),
                };
                raw.into_iter().map(|(t, a)| (t + offset, a)).collect()
            })
            .collect()
    }

    /// Total time two nodes of this cluster were active at once, over the whole run so far.
    fn overlap(&self) -> (Duration, usize) {
        let end = self.env.on_clock(Instant::now());
        let overlaps = dual_active(&self.histories(), end);
        let total = overlaps.iter().map(|o| o.until - o.from).sum();
        (total, self.histories().len())
    }

    /// Stops everything: candidates first (kill -9: nothing to measure any more), then nodes.
    async fn shutdown(mut self) {
        for replica in &mut self.replicas {
            replica.candidate = Candidate::None;
        }
        for replica in &mut self.replicas {
            for life in &mut replica.lives {
                if let Some(node) = life.standin.take() {
                    node.shutdown().await;
                }
            }
        }
    }
}

// ----- the Go election baseline -------------------------------------------------------------

/// `etcdctl elect` and a wrapper thread that does what the Go elector does on winning: call
/// `/ha?activate=true`, retried every 10 s until it answers 200; never deactivate.
struct GoCandidate {
    kill: Option<mpsc::Sender<()>>,
    killed: mpsc::Receiver<Instant>,
    thread: Option<thread::JoinHandle<()>>,
}

impl GoCandidate {
    fn start(mut etcdctl: EtcdctlProcess, admin: SocketAddr) -> GoCandidate {
        let (kill_tx, kill_rx) = mpsc::channel::<()>();
        let (killed_tx, killed_rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            let mut leads = false;
            let mut activated = false;
            let mut next_try = Instant::now();
            loop {
                match kill_rx.try_recv() {
                    Err(mpsc::TryRecvError::Empty) => {}
                    // Asked to, or the handle is gone: kill -9.
                    _ => {
                        let at = Instant::now();
                        etcdctl.kill();
                        let _ = killed_tx.send(at);
                        return;
                    }
                }
                // etcdctl elect prints the key and the value once it leads.
                if etcdctl.next_line(Duration::from_millis(5)).is_ok() {
                    leads = true;
                }
                if leads && !activated && Instant::now() >= next_try {
                    match http_get_blocking(admin, "/ha?activate=true") {
                        Ok((200, _)) => activated = true,
                        _ => next_try = Instant::now() + Duration::from_secs(10),
                    }
                }
            }
        });
        GoCandidate {
            kill: Some(kill_tx),
            killed: killed_rx,
            thread: Some(thread),
        }
    }

    /// kill -9 of etcdctl; returns the instant of the kill.
    async fn kill9(mut self) -> Result<Instant> {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        let killed = std::mem::replace(&mut self.killed, mpsc::channel().1);
        tokio::task::spawn_blocking(move || killed.recv_timeout(Duration::from_secs(5)))
            .await?
            .context("the etcdctl wrapper did not report its kill")
    }
}

impl Drop for GoCandidate {
    fn drop(&mut self) {
        self.kill.take();
        if let Some(thread) = self.thread.take() {
            // It notices within a few ms (an activation call in flight: within 2 × 3 s).
            let _ = thread.join();
        }
    }
}

// ----- phases -------------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
struct CrashTrial {
    failover: f64,
    /// kill -> the killed candidate's key deleted by etcd (lease expired).
    expiry: Option<f64>,
}

#[derive(Clone, Debug, Default)]
struct CrashResult {
    trials: Vec<CrashTrial>,
    clusters: usize,
    overlap: Duration,
    histories: usize,
    wall: Duration,
    errors: Vec<String>,
}

/// A deterministic spread of kill instants over a keep-alive period, per cluster and round.
fn jitter(cluster: usize, round: usize) -> Duration {
    Duration::from_millis(((cluster * 7 + round * 3) % 10) as u64 * 100)
}

/// Crash failover of our elector: `clusters` two-replica clusters at once, `rounds` kills each;
/// after each, the crashed replica comes back (new node, new elector) as the standby.
async fn crash_phase(env: &Env, profile: Profile, clusters: usize, rounds: usize) -> CrashResult {
    let started = Instant::now();
    let name = match profile {
        Profile::Default => "crash",
        Profile::Fast => "crash-fast",
    };
    let results = join_all((0..clusters).map(|c| async move {
        let mut cluster = Cluster::new(env, format!("/bench/{name}-{c}"), profile);
        let outcome = crash_cluster(&mut cluster, c, rounds).await;
        let overlap = cluster.overlap();
        cluster.shutdown().await;
        (outcome, overlap)
    }))
    .await;
    let mut result = CrashResult {
        clusters,
        wall: started.elapsed(),
        ..CrashResult::default()
    };
    for (outcome, (overlap, histories)) in results {
        match outcome {
            Ok(mut trials) => result.trials.append(&mut trials),
            Err(e) => result.errors.push(format!("{e:#}")),
        }
        result.overlap += overlap;
        result.histories += histories;
    }
    result
}

async fn crash_cluster(
    cluster: &mut Cluster<'_>,
    c: usize,
    rounds: usize,
) -> Result<Vec<CrashTrial>> {
    let env = cluster.env;
    let watch = KeyWatch::start(&env.etcd, &cluster.key).await?;
    for value in ["a", "b"] {
        let i = cluster.add_replica(value.to_owned(), false).await?;
        cluster.start_elector(i)?;
    }
    let mut trials = Vec::new();
    let mut leader = cluster.wait_active(None, SETTLE).await?.0;
    for round in 0..rounds {
        cluster
            .env
            .etcd
            .wait_candidates(&cluster.key, 2, SETTLE)
            .await?;
        tokio::time::sleep(Duration::from_secs(2) + jitter(c, round)).await;
        let value = cluster.replicas[leader].value.clone();
        let killed_at = cluster.crash(leader).await?;
        let (next, active_at) = cluster.wait_active(Some(leader), SETTLE).await?;
        trials.push(CrashTrial {
            failover: (active_at - killed_at).as_secs_f64(),
            expiry: watch
                .deleted(&value, killed_at)
                .map(|at| (at - killed_at).as_secs_f64()),
        });
        // The host comes back: a new node and elector, standby behind the new leader.
        if round + 1 < rounds {
            cluster.start_node(leader).await?;
            cluster.start_elector(leader)?;
        }
        leader = next;
    }
    Ok(trials)
}

/// The Go election: `clusters` pairs of `etcdctl elect` candidates at once, one kill each.
async fn baseline_phase(env: &Env, clusters: usize) -> CrashResult {
    let started = Instant::now();
    let results = join_all((0..clusters).map(|c| async move {
        let mut cluster = Cluster::new(env, format!("/bench/go-{c}"), Profile::Default);
        // etcd's Go client renews its session every TTL/3 = 20 s: spread the kills over that
        // period, as ours are spread over our keep-alive period.
        let spread = GO_KEEPALIVE_PERIOD.mul_f64(c as f64 / clusters as f64);
        let outcome = baseline_cluster(&mut cluster, spread).await;
        let overlap = cluster.overlap();
        cluster.shutdown().await;
        (outcome, overlap)
    }))
    .await;
    let mut result = CrashResult {
        clusters,
        wall: started.elapsed(),
        ..CrashResult::default()
    };
    for (outcome, (overlap, histories)) in results {
        match outcome {
            Ok(trial) => result.trials.push(trial),
            Err(e) => result.errors.push(format!("{e:#}")),
        }
        result.overlap += overlap;
        result.histories += histories;
    }
    result
}

/// How often etcd's Go client renews a 60 s session's lease (`clientv3`: TTL / 3).
const GO_KEEPALIVE_PERIOD: Duration = Duration::from_secs(20);

async fn baseline_cluster(cluster: &mut Cluster<'_>, spread: Duration) -> Result<CrashTrial> {
    let env = cluster.env;
    let watch = KeyWatch::start(&env.etcd, &cluster.key).await?;
    let a = cluster.add_replica("a".into(), false).await?;
    cluster.start_go_candidate(a)?;
    let (leader, _) = cluster.wait_active(None, SETTLE).await?;
    let b = cluster.add_replica("b".into(), false).await?;
    cluster.start_go_candidate(b)?;
    env.etcd.wait_candidates(&cluster.key, 2, SETTLE).await?;
    tokio::time::sleep(Duration::from_secs(2) + spread).await;
    let killed_at = cluster.crash(leader).await?;
    let (_, active_at) = cluster.wait_active(Some(leader), BASELINE_SETTLE).await?;
    Ok(CrashTrial {
        failover: (active_at - killed_at).as_secs_f64(),
        expiry: watch
            .deleted("a", killed_at)
            .map(|at| (at - killed_at).as_secs_f64()),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Handover {
    Sigterm,
    Command,
    Unready,
}

impl Handover {
    fn label(self) -> &'static str {
        match self {
            Handover::Sigterm => "SIGTERM to the leader's elector",
            Handover::Command => "`elector handover`",
            Handover::Unready => "leader's node turns unready",
        }
    }
}

#[derive(Clone, Debug)]
struct HandoverTrial {
    kind: Handover,
    /// Trigger -> the new node active.
    takeover: f64,
    /// The old node inactive -> the new node active (negative would be an overlap).
    gap: f64,
    /// The old node inactive, counted from the trigger (its round, the elector's detection).
    standby: f64,
    /// Exit code of the SIGTERM'd elector or of `elector handover`.
    exit: Option<i32>,
}

#[derive(Clone, Debug, Default)]
struct HandoverResult {
    trials: Vec<HandoverTrial>,
    clusters: usize,
    overlap: Duration,
    histories: usize,
    wall: Duration,
    errors: Vec<String>,
}

async fn handover_phase(env: &Env, clusters: usize, rounds: usize) -> HandoverResult {
    let started = Instant::now();
    let results = join_all((0..clusters).map(|c| async move {
        let mut cluster = Cluster::new(env, format!("/bench/handover-{c}"), Profile::Default);
        let mut trials = Vec::new();
        let outcome = handover_cluster(&mut cluster, c, rounds, &mut trials).await;
        let overlap = cluster.overlap();
        cluster.shutdown().await;
        (trials, outcome, overlap)
    }))
    .await;
    let mut result = HandoverResult {
        clusters,
        wall: started.elapsed(),
        ..HandoverResult::default()
    };
    for (mut trials, outcome, (overlap, histories)) in results {
        result.trials.append(&mut trials);
        if let Err(e) = outcome {
            result.errors.push(format!("{e:#}"));
        }
        result.overlap += overlap;
        result.histories += histories;
    }
    result
}

async fn handover_cluster(
    cluster: &mut Cluster<'_>,
    c: usize,
    rounds: usize,
    trials: &mut Vec<HandoverTrial>,
) -> Result<()> {
    let env = cluster.env;
    for value in ["a", "b"] {
        let i = cluster.add_replica(value.to_owned(), false).await?;
        cluster.start_elector(i)?;
    }
    let mut leader = cluster.wait_active(None, SETTLE).await?.0;
    for round in 0..rounds {
        for kind in [Handover::Sigterm, Handover::Command, Handover::Unready] {
            env.etcd.wait_candidates(&cluster.key, 2, SETTLE).await?;
            tokio::time::sleep(Duration::from_secs(1) + jitter(c, round)).await;
            let (trigger, mut exit) = match kind {
                Handover::Sigterm => {
                    let at = Instant::now();
                    match &cluster.replicas[leader].candidate {
                        Candidate::Elector(guard) => guard.signal(libc::SIGTERM)?,
                        _ => bail!("the leader has no elector"),
                    }
                    (at, None)
                }
                Handover::Command => (Instant::now(), None),
                Handover::Unready => {
                    let at = Instant::now();
                    cluster.replicas[leader]
                        .node()
                        .context("no node")?
                        .set_ready(false);
                    (at, None)
                }
            };
            let (next, active_at) = if kind == Handover::Command {
                let command = tokio::process::Command::new(&env.elector)
                    .arg("handover")
                    .arg("--etcd")
                    .arg(env.etcd.endpoint())
                    .arg("--key")
                    .arg(&cluster.key)
                    .arg("--timeout")
                    .arg("60s")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true)
                    .output();
                let (waited, output) =
                    tokio::join!(cluster.wait_active(Some(leader), SETTLE), async {
                        tokio::time::timeout(Duration::from_secs(75), command).await
                    });
                let output = output
                    .context("`elector handover` did not finish within 75 s")?
                    .context("running `elector handover`")?;
                exit = output.status.code();
                if !output.status.success() {
                    bail!(
                        "`elector handover` failed ({}): {}",
                        output.status,
                        String::from_utf8_lossy(&output.stderr).trim()
                    );
                }
                waited?
            } else {
                cluster.wait_active(Some(leader), SETTLE).await?
            };
            let standby_at = cluster.went_standby(leader, trigger).unwrap_or(active_at);
            match kind {
                Handover::Sigterm => {
                    let status = match &mut cluster.replicas[leader].candidate {
                        Candidate::Elector(guard) => guard.wait_exit(EXIT_BOUND).await,
                        _ => None,
                    };
                    let status = status.context("the elector did not exit after SIGTERM")?;
                    exit = status.code();
                    // The operator (systemd) starts it again; it becomes the standby.
                    cluster.start_elector(leader)?;
                }
                Handover::Command => {}
                Handover::Unready => {
                    let node = cluster.replicas[leader].node().context("no node")?;
                    node.set_ready(true);
                }
            }
            trials.push(HandoverTrial {
                kind,
                takeover: (active_at - trigger).as_secs_f64(),
                gap: signed_seconds(active_at, standby_at),
                standby: (standby_at.saturating_duration_since(trigger)).as_secs_f64(),
                exit,
            });
            leader = next;
        }
    }
    Ok(())
}

#[derive(Clone, Debug, Default)]
struct Footprint {
    window: f64,
    leader_rss: u64,
    standby_rss: u64,
    leader_hwm: u64,
    standby_hwm: u64,
    /// CPU seconds per hour, extrapolated from the window.
    leader_cpu_per_hour: f64,
    standby_cpu_per_hour: f64,
    etcd: EtcdWindow,
    /// Keep-alives per second of the leader and the standby, from their own counters.
    leader_keepalives_per_s: f64,
    standby_keepalives_per_s: f64,
    binary_size: u64,
}

/// An elector's `elector_keepalive_latency_seconds` sum and count.
async fn keepalive_counters(port: u16) -> Result<(f64, f64)> {
    let addr: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
    let (status, body) = http_get(addr, "/metrics").await?;
    if status != 200 {
        bail!("elector /metrics answered {status}");
    }
    Ok((
        metric_total(&body, "elector_keepalive_latency_seconds_sum"),
        metric_total(&body, "elector_keepalive_latency_seconds_count"),
    ))
}

async fn footprint_phase(env: &Env, window: Duration) -> Result<Footprint> {
    let mut cluster = Cluster::new(env, "/bench/footprint".into(), Profile::Default);
    let outcome = footprint_cluster(&mut cluster, window).await;
    cluster.shutdown().await;
    outcome
}

async fn footprint_cluster(cluster: &mut Cluster<'_>, window: Duration) -> Result<Footprint> {
    let env = cluster.env;
    for value in ["a", "b"] {
        let i = cluster.add_replica(value.to_owned(), true).await?;
        cluster.start_elector(i)?;
    }
    let (leader, _) = cluster.wait_active(None, SETTLE).await?;
    env.etcd.wait_candidates(&cluster.key, 2, SETTLE).await?;
    let standby = 1 - leader;
    // Let start-up work (connections, first reads) pass.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pid = |i: usize| cluster.replicas[i].elector_pid().context("no elector");
    let port = |i: usize| cluster.replicas[i].status_port.context("no status port");
    let (leader_pid, standby_pid) = (pid(leader)?, pid(standby)?);
    let before = etcd_counters(&env.etcd).await?;
    let cpu_before = (cpu_time(leader_pid)?, cpu_time(standby_pid)?);
    let ka_before = (
        keepalive_counters(port(leader)?).await?,
        keepalive_counters(port(standby)?).await?,
    );
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let after = etcd_counters(&env.etcd).await?;
    let cpu_after = (cpu_time(leader_pid)?, cpu_time(standby_pid)?);
    let ka_after = (
        keepalive_counters(port(leader)?).await?,
        keepalive_counters(port(standby)?).await?,
    );
    let seconds = t0.elapsed().as_secs_f64();
    if cluster.active() != vec![leader] {
        bail!("the leader changed during the footprint window");
    }
    let per_hour =
        |a: Duration, b: Duration| (b.saturating_sub(a)).as_secs_f64() / seconds * 3600.0;
    Ok(Footprint {
        window: seconds,
        leader_rss: status_kb(leader_pid, "VmRSS")?,
        standby_rss: status_kb(standby_pid, "VmRSS")?,
        leader_hwm: status_kb(leader_pid, "VmHWM")?,
        standby_hwm: status_kb(standby_pid, "VmHWM")?,
        leader_cpu_per_hour: per_hour(cpu_before.0, cpu_after.0),
        standby_cpu_per_hour: per_hour(cpu_before.1, cpu_after.1),
        etcd: EtcdWindow::of(&before, &after, status_kb(env.etcd.pid, "VmRSS")?),
        leader_keepalives_per_s: (ka_after.0.1 - ka_before.0.1) / seconds,
        standby_keepalives_per_s: (ka_after.1.1 - ka_before.1.1) / seconds,
        binary_size: std::fs::metadata(&env.elector)?.len(),
    })
}

#[derive(Clone, Debug, Default)]
struct Scale {
    electors: usize,
    clusters: usize,
    etcd: EtcdWindow,
    /// Mean keep-alive round trip over the window, all electors together (seconds).
    keepalive_mean: f64,
    /// Per-elector means: median and worst.
    keepalive_median_of_means: f64,
    keepalive_worst_mean: f64,
    keepalives_per_s: f64,
    electors_cpu_share: f64,
    startup: f64,
    overlap: Duration,
    histories: usize,
}

async fn scale_phase(env: &Env, clusters: usize, window: Duration) -> Result<Scale> {
    let mut all: Vec<Cluster<'_>> = (0..clusters)
        .map(|c| Cluster::new(env, format!("/bench/scale-{c}"), Profile::Default))
        .collect();
    let outcome = scale_clusters(env, &mut all, window).await;
    for cluster in all {
        cluster.shutdown().await;
    }
    outcome
}

async fn scale_clusters(env: &Env, all: &mut [Cluster<'_>], window: Duration) -> Result<Scale> {
    let started = Instant::now();
    for cluster in all.iter_mut() {
        for value in ["a", "b"] {
            let i = cluster.add_replica(value.to_owned(), true).await?;
            cluster.start_elector(i)?;
            // Spread the start-ups a little, as a fleet would be.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let waits = join_all(all.iter().map(|c| c.wait_active(None, SETTLE))).await;
    for w in waits {
        w?;
    }
    for cluster in all.iter() {
        env.etcd.wait_candidates(&cluster.key, 2, SETTLE).await?;
    }
    let startup = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ports: Vec<u16> = all
        .iter()
        .flat_map(|c| c.replicas.iter().filter_map(|r| r.status_port))
        .collect();
    let pids: Vec<u32> = all
        .iter()
        .flat_map(|c| c.replicas.iter().filter_map(Replica::elector_pid))
        .collect();
    let read_all = || async {
        let counters = join_all(ports.iter().map(|p| keepalive_counters(*p))).await;
        counters.into_iter().collect::<Result<Vec<_>>>()
    };
    let cpu_all = || -> Result<Duration> { pids.iter().map(|p| cpu_time(*p)).sum() };
    let before = etcd_counters(&env.etcd).await?;
    let ka_before = read_all().await?;
    let cpu_before = cpu_all()?;
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let after = etcd_counters(&env.etcd).await?;
    let ka_after = read_all().await?;
    let cpu_after = cpu_all()?;
    let seconds = t0.elapsed().as_secs_f64();
    let (mut sum, mut count, mut means) = (0.0, 0.0, Vec::new());
    for (b, a) in ka_before.iter().zip(&ka_after) {
        let (ds, dc) = (a.0 - b.0, a.1 - b.1);
        sum += ds;
        count += dc;
        if dc > 0.0 {
            means.push(ds / dc);
        }
    }
    let (overlap, histories) = all.iter().fold((Duration::ZERO, 0), |acc, c| {
        let (o, h) = c.overlap();
        (acc.0 + o, acc.1 + h)
    });
    let means_summary = summarize(&means).unwrap_or_default();
    Ok(Scale {
        electors: ports.len(),
        clusters: all.len(),
        etcd: EtcdWindow::of(&before, &after, status_kb(env.etcd.pid, "VmRSS")?),
        keepalive_mean: if count > 0.0 { sum / count } else { 0.0 },
        keepalive_median_of_means: means_summary.median,
        keepalive_worst_mean: means_summary.max,
        keepalives_per_s: count / seconds,
        electors_cpu_share: cpu_after.saturating_sub(cpu_before).as_secs_f64() / seconds,
        startup,
        overlap,
        histories,
    })
}

async fn idle_phase(env: &Env, window: Duration) -> Result<EtcdWindow> {
    let before = etcd_counters(&env.etcd).await?;
    tokio::time::sleep(window).await;
    let after = etcd_counters(&env.etcd).await?;
    Ok(EtcdWindow::of(
        &before,
        &after,
        status_kb(env.etcd.pid, "VmRSS")?,
    ))
}

#[derive(Clone, Debug, Default)]
struct SimSpeed {
    /// The simulation's own summary line.
    line: String,
    per_wall_second: f64,
    per_core: Option<f64>,
    exit: Option<i32>,
    wall: f64,
}

/// Runs the simulation binary for `seeds` seeds and reads its speed line.
async fn sim_phase(sim: &Path, seeds: u64) -> Result<SimSpeed> {
    if !sim.exists() {
        bail!("{} does not exist", sim.display());
    }
    let started = Instant::now();
    let command = tokio::process::Command::new(sim)
        .arg("--seeds")
        .arg(seeds.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), command)
        .await
        .context("the simulation did not finish within 300 s")??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    // "simulated: 6000 s in 4.2 s wall: 1428 simulated s per wall s (714 per core)"
    let line = stdout
        .lines()
        .find(|l| l.contains("simulated s per wall s"))
        .with_context(|| {
            format!(
                "no speed line in the simulation's output ({}): {}",
                output.status,
                stdout.lines().last().unwrap_or("")
            )
        })?
        .trim()
        .to_owned();
    let number_before = |marker: &str| -> Option<f64> {
        let head = line.split(marker).next()?;
        head.split_whitespace().last()?.parse().ok()
    };
    Ok(SimSpeed {
        per_wall_second: number_before("simulated s per wall s").context("parsing the speed")?,
        per_core: number_before("per core"),
        line: line.clone(),
        exit: output.status.code(),
        wall: started.elapsed().as_secs_f64(),
    })
}

/// Criterion's median estimates (ns) for the decision-step benchmarks, by name.
fn criterion_results(dir: &Path) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir.join("decision")) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path().join("new").join("estimates.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        if let Some(ns) = json["median"]["point_estimate"].as_f64() {
            out.insert(entry.file_name().to_string_lossy().into_owned(), ns);
        }
    }
    out
}

// ----- the machine --------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
struct Machine {
    cores: usize,
    cpu: String,
    memory: String,
    kernel: String,
    etcd: String,
    etcdctl: String,
    commit: String,
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into());
    let first_line = |s: String| s.lines().next().unwrap_or("unknown").to_owned();
    let etcd = first_line(command_output("etcd", &["--version"]));
    let etcdctl = first_line(command_output("etcdctl", &["version"]));
    let commit = command_output("git", &["describe", "--always", "--dirty"]);
    Machine {
        cores: thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        cpu,
        memory,
        kernel: command_output("uname", &["-sr"]),
        etcd: etcd.trim_start_matches("etcd Version: ").to_owned(),
        etcdctl: etcdctl.trim_start_matches("etcdctl version: ").to_owned(),
        commit: if commit.is_empty() {
            "unknown".into()
        } else {
            commit
        },
    }
}

// ----- the run ------------------------------------------------------------------------------

#[derive(Default)]
struct Results {
    machine: Machine,
    started_utc: String,
    wall: f64,
    load_start: String,
    load_end: String,
    busy_share: f64,
    others_share: f64,
    idle: Option<Result<EtcdWindow>>,
    crash_default: Option<CrashResult>,
    crash_fast: Option<CrashResult>,
    baseline: Option<CrashResult>,
    handover: Option<HandoverResult>,
    footprint: Option<Result<Footprint>>,
    scale: Option<Result<Scale>>,
    sim: Option<Result<SimSpeed>>,
    criterion: BTreeMap<String, f64>,
    args: Vec<String>,
}

fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

async fn run(args: Args) -> Result<()> {
    if let Some(phases) = &args.phases
        && let Some(unknown) = phases.iter().find(|p| !ALL_PHASES.contains(&p.as_str()))
    {
        bail!(
            "unknown phase {unknown:?}; phases: {}",
            ALL_PHASES.join(", ")
        );
    }
    if !args.elector.exists() {
        bail!(
            "{} not found: run `make build` first",
            args.elector.display()
        );
    }
    let started = Instant::now();
    let (busy0, total0) = machine_jiffies();
    let own0 = own_cpu();
    let mut results = Results {
        machine: machine(),
        started_utc: utc_now(),
        load_start: load_average(),
        args: std::env::args().skip(1).collect(),
        ..Results::default()
    };
    let m = &results.machine;
    eprintln!(
        "bench: {} cores ({}), {} memory, etcd {}; load average {}",
        m.cores, m.cpu, m.memory, m.etcd, results.load_start
    );
    let logs = tempfile::Builder::new()
        .prefix("elector-bench-")
        .tempdir()?;
    let env = Env {
        origin: Instant::now(),
        etcd: Etcd::start().await?,
        elector: args.elector.clone(),
        logs: logs.path().to_owned(),
    };
    eprintln!(
        "  etcd {} (pid {}); elector logs in {}",
        env.etcd.endpoint(),
        env.etcd.pid,
        logs.path().display()
    );
    let step = |name: &str| eprintln!("  [{:>5.0}s] {name}", started.elapsed().as_secs_f64());

    if args.runs("idle") {
        step("idle: etcd alone");
        results.idle = Some(idle_phase(&env, args.idle_window).await);
    }
    if args.runs("crash-default") {
        step("crash failover, default timing");
        let r = crash_phase(
            &env,
            Profile::Default,
            args.crash_clusters,
            args.crash_rounds,
        )
        .await;
        report_errors("crash-default", &r.errors);
        results.crash_default = Some(r);
    }
    if args.runs("crash-fast") {
        step("crash failover, 3 s profile");
        let r = crash_phase(&env, Profile::Fast, args.fast_clusters, args.fast_rounds).await;
        report_errors("crash-fast", &r.errors);
        results.crash_fast = Some(r);
    }
    if args.runs("baseline") {
        step("crash failover, etcdctl elect (Go concurrency.Election)");
        let r = baseline_phase(&env, args.baseline_clusters).await;
        report_errors("baseline", &r.errors);
        results.baseline = Some(r);
    }
    if args.runs("handover") {
        step("clean handover: SIGTERM, elector handover, unready leader");
        let r = handover_phase(&env, args.handover_clusters, args.handover_rounds).await;
        report_errors("handover", &r.errors);
        results.handover = Some(r);
    }
    if args.runs("footprint") {
        step("footprint: one idle leader and one standby");
        let r = footprint_phase(&env, args.footprint_window).await;
        if let Err(e) = &r {
            eprintln!("  footprint failed: {e:#}");
        }
        results.footprint = Some(r);
    }
    if args.runs("scale") {
        step("scale: many electors on one etcd");
        let r = scale_phase(&env, args.scale_clusters, args.scale_window).await;
        if let Err(e) = &r {
            eprintln!("  scale failed: {e:#}");
        }
        results.scale = Some(r);
    }
    let etcd_cpu = cpu_time(env.etcd.pid).unwrap_or_default();
    drop(env);
    if args.runs("sim") {
        step("simulation speed");
        let r = sim_phase(&args.sim, args.sim_seeds).await;
        if let Err(e) = &r {
            eprintln!("  simulation: {e:#}");
        }
        results.sim = Some(r);
    }
    results.criterion = criterion_results(&args.criterion_dir);

    let (busy1, total1) = machine_jiffies();
    let wall = started.elapsed().as_secs_f64();
    results.wall = wall;
    results.load_end = load_average();
    let machine_seconds = (total1 - total0) as f64 / clock_ticks();
    let busy_seconds = (busy1 - busy0) as f64 / clock_ticks();
    let ours = (own_cpu().saturating_sub(own0) + etcd_cpu).as_secs_f64();
    if machine_seconds > 0.0 {
        results.busy_share = busy_seconds / machine_seconds;
        results.others_share = ((busy_seconds - ours) / machine_seconds).max(0.0);
    }
    step("writing the report");
    let markdown = render_markdown(&results, &args);
    std::fs::write(&args.out, markdown)
        .with_context(|| format!("writing {}", args.out.display()))?;
    std::fs::write(&args.svg, render_svg(&results))
        .with_context(|| format!("writing {}", args.svg.display()))?;
    eprintln!(
        "bench: wrote {} and {} in {:.0} s",
        args.out.display(),
        args.svg.display(),
        wall
    );
    print_summary(&results);
    let failed = [
        &results.crash_default,
        &results.crash_fast,
        &results.baseline,
    ]
    .iter()
    .any(|r| {
        r.as_ref()
            .is_some_and(|r| !r.errors.is_empty() || !r.overlap.is_zero())
    }) || results
        .handover
        .as_ref()
        .is_some_and(|r| !r.errors.is_empty() || !r.overlap.is_zero());
    if failed {
        let kept = logs.keep();
        bail!(
            "some trials failed or overlapped; elector logs kept in {}",
            kept.display()
        );
    }
    Ok(())
}

fn report_errors(phase: &str, errors: &[String]) {
    for e in errors {
        eprintln!("  {phase}: {e}");
    }
}

fn print_summary(r: &Results) {
    let line = |name: &str, c: &Option<CrashResult>| {
        if let Some(s) = c.as_ref().and_then(|c| summarize(&failovers(c))) {
            eprintln!(
                "  {name:<28} n={:<3} median {:>6.2}s  p95 {:>6.2}s  max {:>6.2}s",
                s.n, s.median, s.p95, s.max
            );
        }
    };
    line("crash failover, default", &r.crash_default);
    line("crash failover, 3 s", &r.crash_fast);
    line("etcdctl elect baseline", &r.baseline);
    if let Some(h) = &r.handover {
        for kind in [Handover::Sigterm, Handover::Command, Handover::Unready] {
            if let Some(s) = summarize(&handover_values(h, kind, |t| t.gap)) {
                eprintln!(
                    "  gap, {:<22} n={:<3} median {:>6.3}s  max {:>6.3}s",
                    format!("{kind:?}"),
                    s.n,
                    s.median,
                    s.max
                );
            }
        }
    }
}

fn failovers(c: &CrashResult) -> Vec<f64> {
    c.trials.iter().map(|t| t.failover).collect()
}

fn expiries(c: &CrashResult) -> Vec<f64> {
    c.trials.iter().filter_map(|t| t.expiry).collect()
}

fn after_expiry(c: &CrashResult) -> Vec<f64> {
    c.trials
        .iter()
        .filter_map(|t| t.expiry.map(|e| t.failover - e))
        .collect()
}

fn handover_values(
    h: &HandoverResult,
    kind: Handover,
    f: impl Fn(&HandoverTrial) -> f64,
) -> Vec<f64> {
    h.trials.iter().filter(|t| t.kind == kind).map(f).collect()
}

// ----- the report ---------------------------------------------------------------------------

fn fmt_s(v: f64) -> String {
    if v.abs() < 10.0 {
        format!("{v:.2} s")
    } else {
        format!("{v:.1} s")
    }
}

fn fmt_ms(v: f64) -> String {
    format!("{:.0} ms", v * 1000.0)
}

fn fmt_bytes(b: u64) -> String {
    let mib = b as f64 / 1024.0 / 1024.0;
    format!("{mib:.1} MiB")
}

fn render_markdown(r: &Results, args: &Args) -> String {
    let m = &r.machine;
    let mut o = String::new();
    let busy = if r.others_share > 0.25 {
        "busy: other work shared the machine"
    } else if r.others_share > 0.05 {
        "somewhat busy"
    } else {
        "otherwise idle"
    };
    let _ = writeln!(o, "# Benchmarks\n");
    let _ = writeln!(
        o,
        "Generated by `make bench` ({}, {:.0} s wall). Every figure below was measured in that \
         one run, on this machine:\n",
        r.started_utc, r.wall
    );
    let _ = writeln!(o, "| | |\n| --- | --- |");
    let _ = writeln!(
        o,
        "| machine | {} cores ({}), {} memory, {} |",
        m.cores, m.cpu, m.memory, m.kernel
    );
    let _ = writeln!(
        o,
        "| etcd | {} (etcdctl {}), one member on loopback, fresh data directory in /tmp |",
        m.etcd, m.etcdctl
    );
    let _ = writeln!(
        o,
        "| elector | `{}` (release build), commit {} |",
        args.elector.display(),
        m.commit
    );
    let _ = writeln!(
        o,
        "| load | load average {} at the start, {} at the end; all {} cores were {:.0}% busy \
         during the run, {:.0} points of it from processes other than the benchmark, its etcd \
         and its electors ({busy}) |",
        r.load_start,
        r.load_end,
        m.cores,
        r.busy_share * 100.0,
        r.others_share * 100.0
    );
    let _ = writeln!(o, "| command | `bench {}` |", r.args.join(" "));
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "![Failover and handover distributions](benchmarks.svg)\n"
    );

    // Crash failover.
    let tag = format!(
        "_Measured on {} cores ({}), {} memory, with etcd {}, in the run above._\n",
        m.cores, m.cpu, m.memory, m.etcd
    );
    let _ = writeln!(o, "## Crash failover\n\n{tag}");
    let _ = writeln!(
        o,
        "kill -9 of the active replica's elector **and** its node (a crashed host), until the \
         other replica's node is active (the stand-in node's own record of its mode). Two \
         replicas per cluster; many clusters on distinct keys run at once against the one \
         etcd, each killing its leader a few times (the killed replica comes back as the \
         standby). Kills are spread over the keep-alive period (ours: 1 s, or 0.3 s; the Go \
         client's: 20 s, a third of its 60 s session), since the time left on the lease at the \
         kill is part of the failover. Percentiles are nearest-rank (p95 of 20 trials is the \
         19th).\n"
    );
    let _ = writeln!(
        o,
        "| candidates | trials | min | median | p95 | max | median vs. the Go election |"
    );
    let _ = writeln!(o, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let baseline_median = r.baseline.as_ref().and_then(|b| median(&failovers(b)));
    let row = |o: &mut String, name: String, c: &Option<CrashResult>, is_baseline: bool| {
        let Some(c) = c else {
            let _ = writeln!(o, "| {name} | not run | | | | | |");
            return;
        };
        match summarize(&failovers(c)) {
            Some(s) => {
                let ratio = match (is_baseline, baseline_median) {
                    (true, _) => "1 (baseline)".to_owned(),
                    (false, Some(b)) => {
                        format!("{:.2} ({:.1}× faster)", s.median / b, b / s.median)
                    }
                    (false, None) => "baseline not run".to_owned(),
                };
                let _ = writeln!(
                    o,
                    "| {name} | {} | {} | **{}** | {} | {} | {ratio} |",
                    s.n,
                    fmt_s(s.min),
                    fmt_s(s.median),
                    fmt_s(s.p95),
                    fmt_s(s.max)
                );
            }
            None => {
                let _ = writeln!(o, "| {name} | 0 (all failed) | | | | | |");
            }
        }
    };
    row(
        &mut o,
        format!("elector, defaults ({})", Profile::Default.describe()),
        &r.crash_default,
        false,
    );
    row(
        &mut o,
        format!("elector, 3 s profile ({})", Profile::Fast.describe()),
        &r.crash_fast,
        false,
    );
    row(
        &mut o,
        "`etcdctl elect` pair (Go `concurrency.Election`, 60 s session) + activate-on-win wrapper"
            .into(),
        &r.baseline,
        true,
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Where the time goes (medians): kill → etcd deletes the dead candidate's key (its lease expired), then → the new leader's node is active.\n"
    );
    let _ = writeln!(
        o,
        "| candidates | kill → lease expired | expired → node active | expected |"
    );
    let _ = writeln!(o, "| --- | ---: | ---: | --- |");
    for (name, c, expected) in [
        (
            "elector, defaults",
            &r.crash_default,
            "TTL − time since the last keep-alive (0–1 s) + etcd's expiry sweep (≤ 0.5 s); then the activation delay 8.1 s + a node call",
        ),
        (
            "elector, 3 s profile",
            &r.crash_fast,
            "TTL 3 s − (0–0.3 s) + sweep; then activation delay 2.8 s",
        ),
        (
            "`etcdctl elect` pair",
            &r.baseline,
            "session TTL 60 s − time since the last keep-alive (0–20 s, every TTL/3) + sweep; then one /ha call",
        ),
    ] {
        if let Some(c) = c {
            let _ = writeln!(
                o,
                "| {name} | {} | {} | {expected} |",
                median(&expiries(c)).map(fmt_s).unwrap_or("–".into()),
                median(&after_expiry(c)).map(fmt_s).unwrap_or("–".into()),
            );
        }
    }
    let _ = writeln!(o);
    if let Some(c) = &r.crash_default {
        let t = Profile::Default.timing();
        let bound = (t.lease_ttl + t.activation_delay).as_secs_f64() + 1.0;
        if let Some(s) = summarize(&failovers(c)) {
            let _ = writeln!(
                o,
                "Target: the default-timing median ({}) is {} TTL + activation delay + 1 s = {}.",
                fmt_s(s.median),
                if s.median <= bound {
                    "within"
                } else {
                    "**not** within"
                },
                fmt_s(bound)
            );
        }
    }
    let mut notes = Vec::new();
    for (name, c) in [
        ("defaults", &r.crash_default),
        ("3 s profile", &r.crash_fast),
        ("etcdctl elect", &r.baseline),
    ] {
        if let Some(c) = c {
            notes.push(format!(
                "{name}: {} clusters at once, {:.0} s wall, dual-active {} ({} node histories checked){}",
                c.clusters,
                c.wall.as_secs_f64(),
                if c.overlap.is_zero() {
                    "never".to_owned()
                } else {
                    format!("**{:.3} s**", c.overlap.as_secs_f64())
                },
                c.histories,
                if c.errors.is_empty() {
                    String::new()
                } else {
                    format!("; **{} cluster(s) failed**: {}", c.errors.len(), c.errors.join("; "))
                }
            ));
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(o, "\n{}.", notes.join("; "));
    }
    let _ = writeln!(
        o,
        "\nThe Go election's wrapper does what the Go elector does: it calls \
         `/ha?activate=true` when `etcdctl elect` prints that it leads, and never deactivates. \
         Here the killed leader's node died with its host; had only the Go elector died, its \
         node would have stayed active next to the new one.\n"
    );

    // Handover.
    let _ = writeln!(o, "## Clean handover and unready leader\n\n{tag}");
    let _ = writeln!(
        o,
        "Default timing, stand-in round 2 s (a node finishes its round after `activate=false`). \
         *Gap*: from the old node inactive (its round finished) to the new node active: time \
         with no active node. *Overlap*: time with two active nodes, from \
         `elector_sim::history::dual_active` over every node history of the run. *Trigger → \
         active* includes the old node's round.\n"
    );
    if let Some(h) = &r.handover {
        let _ = writeln!(
            o,
            "| trigger | trials | gap min | gap median | gap p95 | gap max | overlap | trigger → old node inactive, median | trigger → new node active, median (max) | exit codes |"
        );
        let _ = writeln!(
            o,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
        );
        for kind in [Handover::Sigterm, Handover::Command, Handover::Unready] {
            let gaps = handover_values(h, kind, |t| t.gap);
            let takeovers = summarize(&handover_values(h, kind, |t| t.takeover));
            let exits: Vec<String> = {
                let mut e: BTreeMap<String, usize> = BTreeMap::new();
                for t in h.trials.iter().filter(|t| t.kind == kind) {
                    if let Some(code) = t.exit {
                        *e.entry(code.to_string()).or_default() += 1;
                    }
                }
                e.into_iter().map(|(k, n)| format!("{k} ×{n}")).collect()
            };
            match summarize(&gaps) {
                Some(s) => {
                    let _ = writeln!(
                        o,
                        "| {} | {} | {} | **{}** | {} | {} | {} | {} | {} | {} |",
                        kind.label(),
                        s.n,
                        fmt_ms(s.min),
                        fmt_ms(s.median),
                        fmt_ms(s.p95),
                        fmt_ms(s.max),
                        if h.overlap.is_zero() {
                            "0".into()
                        } else {
                            fmt_ms(h.overlap.as_secs_f64())
                        },
                        median(&handover_values(h, kind, |t| t.standby))
                            .map(fmt_s)
                            .unwrap_or_default(),
                        takeovers
                            .map(|t| format!("{} ({})", fmt_s(t.median), fmt_s(t.max)))
                            .unwrap_or_default(),
                        if exits.is_empty() {
                            "–".into()
                        } else {
                            exits.join(", ")
                        }
                    );
                }
                None => {
                    let _ = writeln!(o, "| {} | 0 | | | | | | | | |", kind.label());
                }
            }
        }
        let _ = writeln!(
            o,
            "\n{} clusters at once, {} rounds of the three triggers each, {:.0} s wall; overlap \
             over all {} node histories: {}.{}",
            h.clusters,
            args.handover_rounds,
            h.wall.as_secs_f64(),
            h.histories,
            if h.overlap.is_zero() {
                "none".to_owned()
            } else {
                format!("**{:.3} s**", h.overlap.as_secs_f64())
            },
            if h.errors.is_empty() {
                String::new()
            } else {
                format!(" **Failed: {}**", h.errors.join("; "))
            }
        );
        let _ = writeln!(
            o,
            "The unready leader is noticed after `--unready-threshold` (3) failed probes \
             `--probe-interval` (1 s) apart, then hands over cleanly like the others.\n"
        );
    } else {
        let _ = writeln!(o, "Not run in this invocation.\n");
    }

    // Footprint.
    let _ = writeln!(o, "## Footprint\n\n{tag}");
    match &r.footprint {
        Some(Ok(f)) => {
            let _ = writeln!(
                o,
                "One two-replica cluster, default timing, idle (nothing changes), alone on etcd, \
                 measured over {:.0} s. CPU is user + system time from `/proc/<pid>/stat` over \
                 the window, extrapolated to an hour (clock ticks of 10 ms: about ±{:.1} s per \
                 hour). Memory is `VmRSS` (and the peak, `VmHWM`) from `/proc/<pid>/status`.\n",
                f.window,
                3600.0 / f.window * 0.01
            );
            let _ = writeln!(o, "| | leader (node active) | standby (candidate) |");
            let _ = writeln!(o, "| --- | ---: | ---: |");
            let _ = writeln!(
                o,
                "| RSS | {} | {} |",
                fmt_bytes(f.leader_rss),
                fmt_bytes(f.standby_rss)
            );
            let _ = writeln!(
                o,
                "| peak RSS | {} | {} |",
                fmt_bytes(f.leader_hwm),
                fmt_bytes(f.standby_hwm)
            );
            let _ = writeln!(
                o,
                "| CPU per hour idle | {:.1} s ({:.3}% of a core) | {:.1} s ({:.3}% of a core) |",
                f.leader_cpu_per_hour,
                f.leader_cpu_per_hour / 36.0,
                f.standby_cpu_per_hour,
                f.standby_cpu_per_hour / 36.0
            );
            let _ = writeln!(
                o,
                "| keep-alives per second (own counter `elector_keepalive_latency_seconds_count`) | {:.2} | {:.2} |",
                f.leader_keepalives_per_s, f.standby_keepalives_per_s
            );
            let _ = writeln!(
                o,
                "| binary size (`{}`, stripped) | {} | |",
                args.elector.display(),
                fmt_bytes(f.binary_size)
            );
            let per = f.etcd.received_total() / 2.0;
            let _ = writeln!(
                o,
                "\netcd requests per second per elector: **{per:.2}** — gRPC messages etcd \
                 received (`grpc_server_msg_received_total` from etcd's `/metrics`, all methods: \
                 unary calls and each message on a stream, so every keep-alive counts) over the \
                 window, divided by the 2 electors. By method, per elector: {}. RPCs \
                 completed (`grpc_server_handled_total`, so not the messages on open streams): \
                 {:.2}/s for both. etcd CPU meanwhile: {:.2}% of a core.\n",
                f.etcd
                    .received_per_s
                    .iter()
                    .map(|(k, v)| format!("{k} {:.2}/s", v / 2.0))
                    .collect::<Vec<_>>()
                    .join(", "),
                f.etcd.handled_per_s,
                f.etcd.cpu_share * 100.0
            );
        }
        Some(Err(e)) => {
            let _ = writeln!(o, "Failed: {e:#}\n");
        }
        None => {
            let _ = writeln!(o, "Not run in this invocation.\n");
        }
    }

    elector_integration::etcd_budget::budget_section(&mut o);

    // Scale.
    let _ = writeln!(o, "## Scale: many electors on one etcd\n\n{tag}");
    match &r.scale {
        Some(Ok(s)) => {
            let _ = writeln!(
                o,
                "{} electors ({} two-replica clusters on distinct keys), default timing, all \
                 idle, one etcd, measured over {:.0} s after all clusters had a leader (start-up \
                 took {:.1} s). Keep-alive latency is the electors' own \
                 `elector_keepalive_latency_seconds_sum` / `_count` (send to acknowledgement) \
                 from each one's `/metrics`, differenced over the window.\n",
                s.electors, s.clusters, s.etcd.seconds, s.startup
            );
            let idle = r.idle.as_ref().and_then(|i| i.as_ref().ok());
            let two = r.footprint.as_ref().and_then(|f| f.as_ref().ok());
            let _ = writeln!(o, "| | value |");
            let _ = writeln!(o, "| --- | ---: |");
            let _ = writeln!(
                o,
                "| etcd CPU (`/proc/<pid>/stat`) | **{:.1}% of a core**{}{} |",
                s.etcd.cpu_share * 100.0,
                idle.map(|i| format!("; alone: {:.1}%", i.cpu_share * 100.0))
                    .unwrap_or_default(),
                two.map(|f| format!("; with 2 electors: {:.1}%", f.etcd.cpu_share * 100.0))
                    .unwrap_or_default()
            );
            let _ = writeln!(o, "| etcd RSS | {} |", fmt_bytes(s.etcd.rss));
            let _ = writeln!(
                o,
                "| etcd gRPC messages received | {:.0}/s ({:.2}/s per elector) |",
                s.etcd.received_total(),
                s.etcd.received_total() / s.electors.max(1) as f64
            );
            let _ = writeln!(
                o,
                "| keep-alive latency, mean over all | **{}** |",
                fmt_ms_precise(s.keepalive_mean)
            );
            let _ = writeln!(
                o,
                "| keep-alive latency, per-elector means: median / worst | {} / {} |",
                fmt_ms_precise(s.keepalive_median_of_means),
                fmt_ms_precise(s.keepalive_worst_mean)
            );
            let _ = writeln!(
                o,
                "| keep-alives acknowledged | {:.0}/s |",
                s.keepalives_per_s
            );
            let _ = writeln!(
                o,
                "| the {} electors' CPU together | {:.1}% of a core |",
                s.electors,
                s.electors_cpu_share * 100.0
            );
            let _ = writeln!(
                o,
                "| dual-active | {} ({} node histories) |\n",
                if s.overlap.is_zero() {
                    "never".to_owned()
                } else {
                    format!("**{:.3} s**", s.overlap.as_secs_f64())
                },
                s.histories
            );
            let _ = writeln!(o, "The stand-in nodes run inside the benchmark process.\n");
        }
        Some(Err(e)) => {
            let _ = writeln!(o, "Failed: {e:#}\n");
        }
        None => {
            let _ = writeln!(o, "Not run in this invocation.\n");
        }
    }

    // Decision step.
    let _ = writeln!(o, "## The core's decision step (criterion)\n\n{tag}");
    if r.criterion.is_empty() {
        let _ = writeln!(
            o,
            "No criterion results found in `{}` (run `cargo bench -p elector-core --bench decision`).\n",
            args.criterion_dir.display()
        );
    } else {
        let _ = writeln!(
            o,
            "`cargo bench -p elector-core --bench decision` (core/benches/decision.rs): \
             `handle_input` plus draining `poll_output` until the timeout, on a steady-state core. \
             Median of criterion's estimate, same machine and run.\n"
        );
        let _ = writeln!(o, "| benchmark | what | median |");
        let _ = writeln!(o, "| --- | --- | ---: |");
        let describe = |name: &str| match name {
            "keepalive_ack" => "active leader: a keep-alive acknowledged",
            "observation" => "active leader: the election read again (3 candidates)",
            "timeout" => "active leader: a wake-up with nothing due",
            "leader_second" => "one second of an active leader, every input included",
            "standby_second" => "one second of a standby candidate, every input included",
            _ => "",
        };
        for (name, ns) in &r.criterion {
            let value = if *ns >= 1000.0 {
                format!("{:.2} µs", ns / 1000.0)
            } else {
                format!("{ns:.0} ns")
            };
            let _ = writeln!(o, "| `decision/{name}` | {} | {value} |", describe(name));
        }
        let _ = writeln!(o);
    }

    // Simulation.
    let _ = writeln!(o, "## Simulation speed\n\n{tag}");
    match &r.sim {
        Some(Ok(s)) => {
            let _ = writeln!(
                o,
                "`{} --seeds {}` ({:.0} s wall{}): **{:.0} simulated seconds per wall second**{}. \
                 Its own line: `{}`\n",
                args.sim.display(),
                args.sim_seeds,
                s.wall,
                match s.exit {
                    Some(0) => String::new(),
                    Some(code) => format!(", exit code {code}: the search reported a problem"),
                    None => ", killed".into(),
                },
                s.per_wall_second,
                s.per_core
                    .map(|c| format!(" ({c:.0} per core)"))
                    .unwrap_or_default(),
                s.line
            );
        }
        Some(Err(e)) => {
            let _ = writeln!(o, "Not measured: {e:#}.\n");
        }
        None => {
            let _ = writeln!(o, "Not run in this invocation.\n");
        }
    }

    // Reproducing.
    let _ = writeln!(o, "## Reproducing\n");
    let _ = writeln!(
        o,
        "`make bench` builds the release binaries, runs criterion (about 30 s), then \
         `target/release/bench` with the defaults below ({:.0} s in this run), and rewrites this \
         file and the chart. One part alone: `target/release/bench --phases <phase> --out \
         /tmp/b.md --svg /tmp/b.svg`; `--help` lists every option.\n",
        r.wall
    );
    let _ = writeln!(o, "| line | phase and options |");
    let _ = writeln!(o, "| --- | --- |");
    let _ = writeln!(
        o,
        "| crash failover, defaults | `--phases crash-default --crash-clusters {} --crash-rounds {}` |",
        args.crash_clusters, args.crash_rounds
    );
    let _ = writeln!(
        o,
        "| crash failover, 3 s profile | `--phases crash-fast --fast-clusters {} --fast-rounds {}` |",
        args.fast_clusters, args.fast_rounds
    );
    let _ = writeln!(
        o,
        "| `etcdctl elect` baseline | `--phases baseline --baseline-clusters {}` |",
        args.baseline_clusters
    );
    let _ = writeln!(
        o,
        "| handover, unready leader | `--phases handover --handover-clusters {} --handover-rounds {}` |",
        args.handover_clusters, args.handover_rounds
    );
    let _ = writeln!(
        o,
        "| footprint | `--phases footprint --footprint-window {}` |",
        humantime::format_duration(args.footprint_window)
    );
    let _ = writeln!(
        o,
        "| scale | `--phases scale --scale-clusters {} --scale-window {}` (etcd alone: `--phases idle`) |",
        args.scale_clusters,
        humantime::format_duration(args.scale_window)
    );
    let _ = writeln!(
        o,
        "| decision step | `cargo bench -p elector-core --bench decision` |"
    );
    let _ = writeln!(
        o,
        "| simulation speed | `--phases sim --sim-seeds {}`, or `{} --seeds {}` |",
        args.sim_seeds,
        args.sim.display(),
        args.sim_seeds
    );
    o
}

fn fmt_ms_precise(v: f64) -> String {
    format!("{:.2} ms", v * 1000.0)
}

// ----- the chart ----------------------------------------------------------------------------

struct Row {
    label: String,
    values: Vec<f64>,
    colour: &'static str,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A step for axis ticks: 1, 2 or 5 times a power of ten, about `max / 6`.
fn tick_step(max: f64) -> f64 {
    let raw = (max / 6.0).max(1e-6);
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power)
}

/// One panel: a box plot per row (quartiles, median, min–max whiskers) and every trial as a
/// dot, on a shared linear axis. Returns the SVG and its height.
fn panel(title: &str, unit: &str, scale: f64, rows: &[Row], top: f64) -> (String, f64) {
    const WIDTH: f64 = 900.0;
    const LEFT: f64 = 300.0;
    const RIGHT: f64 = 40.0;
    const ROW: f64 = 46.0;
    /// Room for a median label.
    const LABEL: f64 = 150.0;
    let mut s = String::new();
    let max = rows
        .iter()
        .flat_map(|r| r.values.iter())
        .fold(0.0f64, |a, b| a.max(*b))
        * scale;
    let step = tick_step(max.max(1e-3));
    let axis_max = (max / step).ceil().max(1.0) * step;
    let x = |v: f64| LEFT + (v * scale) / axis_max * (WIDTH - LEFT - RIGHT);
    let _ = writeln!(
        s,
        r#"<text x="20" y="{:.0}" font-size="16" font-weight="bold">{}</text>"#,
        top + 20.0,
        escape(title)
    );
    let plot_top = top + 34.0;
    let plot_bottom = plot_top + ROW * rows.len() as f64;
    // Grid and ticks.
    let mut t = 0.0;
    while t <= axis_max + step / 2.0 {
        let px = LEFT + t / axis_max * (WIDTH - LEFT - RIGHT);
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{plot_top:.1}" x2="{px:.1}" y2="{plot_bottom:.1}" stroke="#ddd"/>"##
        );
        let label = if step < 1.0 {
            format!("{t:.1}")
        } else {
            format!("{t:.0}")
        };
        let _ = writeln!(
            s,
            r##"<text x="{px:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#555">{label}</text>"##,
            plot_bottom + 14.0
        );
        t += step;
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#555">{}</text>"##,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        plot_bottom + 30.0,
        escape(unit)
    );
    for (i, row) in rows.iter().enumerate() {
        let cy = plot_top + ROW * i as f64 + ROW / 2.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="end">{}</text>"#,
            LEFT - 10.0,
            cy + 4.0,
            escape(&row.label)
        );
        let Some(sum) = summarize(&row.values) else {
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" font-size="12" fill="#999">not run</text>"##,
                LEFT + 6.0,
                cy + 4.0
            );
            continue;
        };
        let h = 16.0;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{cy:.1}" x2="{:.1}" y2="{cy:.1}" stroke="{}" stroke-width="1.5"/>"#,
            x(sum.min),
            x(sum.max),
            row.colour
        );
        for v in [sum.min, sum.max] {
            let _ = writeln!(
                s,
                r#"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="{3}" stroke-width="1.5"/>"#,
                x(v),
                cy - h / 3.0,
                cy + h / 3.0,
                row.colour
            );
        }
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}" fill-opacity="0.25" stroke="{}"/>"#,
            x(sum.q1),
            cy - h / 2.0,
            (x(sum.q3) - x(sum.q1)).max(1.0),
            row.colour,
            row.colour
        );
        let _ = writeln!(
            s,
            r#"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="{3}" stroke-width="3"/>"#,
            x(sum.median),
            cy - h / 2.0 - 2.0,
            cy + h / 2.0 + 2.0,
            row.colour
        );
        for (k, v) in row.values.iter().enumerate() {
            // Spread the dots vertically a little so equal values stay visible.
            let dy = ((k * 7) % 5) as f64 * 2.0 - 4.0;
            let _ = writeln!(
                s,
                r##"<circle cx="{:.1}" cy="{:.1}" r="2.2" fill="#222" fill-opacity="0.55"/>"##,
                x(*v),
                cy + h / 2.0 + 6.0 + dy / 2.0
            );
        }
        let median_text = if scale == 1.0 {
            format!("median {:.2} s (n={})", sum.median, sum.n)
        } else {
            format!("median {:.0} ms (n={})", sum.median * scale, sum.n)
        };
        // Right of the whiskers if it fits, else left of them.
        let (label_x, anchor) = if x(sum.max) + 8.0 + LABEL <= WIDTH {
            (x(sum.max) + 8.0, "start")
        } else {
            (x(sum.min) - 8.0, "end")
        };
        let _ = writeln!(
            s,
            r##"<text x="{label_x:.1}" y="{:.1}" font-size="11" fill="#333" text-anchor="{anchor}">{}</text>"##,
            cy + 4.0,
            escape(&median_text)
        );
    }
    (s, plot_bottom + 40.0 - top)
}

fn render_svg(r: &Results) -> String {
    const TOP: f64 = 50.0;
    let values = |c: &Option<CrashResult>| c.as_ref().map(failovers).unwrap_or_default();
    let crash = vec![
        Row {
            label: "elector, 3 s profile".into(),
            values: values(&r.crash_fast),
            colour: "#1b7837",
        },
        Row {
            label: "elector, defaults (TTL 10 s)".into(),
            values: values(&r.crash_default),
            colour: "#2166ac",
        },
        Row {
            label: "etcdctl elect (Go election, 60 s)".into(),
            values: values(&r.baseline),
            colour: "#b2182b",
        },
    ];
    let handover_rows = |f: fn(&HandoverTrial) -> f64| -> Vec<Row> {
        [
            (Handover::Sigterm, "SIGTERM", "#5e3c99"),
            (Handover::Command, "elector handover", "#e66101"),
            (Handover::Unready, "unready leader", "#4d9221"),
        ]
        .into_iter()
        .map(|(kind, label, colour)| Row {
            label: label.into(),
            values: r
                .handover
                .as_ref()
                .map(|h| handover_values(h, kind, f))
                .unwrap_or_default(),
            colour,
        })
        .collect()
    };
    let gaps = handover_rows(|t| t.gap);
    let takeovers = handover_rows(|t| t.takeover);
    let m = &r.machine;
    let (p1, h1) = panel(
        "Crash failover: kill -9 of the active replica's elector and node → other node active",
        "seconds",
        1.0,
        &crash,
        TOP,
    );
    let (p2, h2) = panel(
        "Clean handover: time with no active node (old node inactive → new node active)",
        "milliseconds",
        1000.0,
        &gaps,
        TOP + h1,
    );
    let (p3, h3) = panel(
        "Clean handover: trigger → new node active (includes the rest of the old node's 2 s round)",
        "seconds",
        1.0,
        &takeovers,
        TOP + h1 + h2,
    );
    let height = TOP + h1 + h2 + h3 + 30.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="900" height="{height:.0}" viewBox="0 0 900 {height:.0}" font-family="DejaVu Sans, Arial, sans-serif">"#
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#fff"/>"##);
    let _ = writeln!(
        s,
        r##"<text x="20" y="22" font-size="13" fill="#333">{}</text>"##,
        escape(&format!(
            "elector benchmarks, {}: {} cores ({}), {} memory, etcd {}, loopback.",
            r.started_utc, m.cores, m.cpu, m.memory, m.etcd
        ))
    );
    let _ = writeln!(
        s,
        r##"<text x="20" y="40" font-size="12" fill="#555">Box: quartiles; thick bar: median; whiskers: min–max; dots: single trials.</text>"##
    );
    s.push_str(&p1);
    s.push_str(&p2);
    s.push_str(&p3);
    let _ = writeln!(
        s,
        r##"<text x="20" y="{:.0}" font-size="11" fill="#777">Generated by make bench; numbers in docs/benchmarks.md.</text>"##,
        height - 10.0
    );
    s.push_str("</svg>\n");
    s
}

// ----- main ---------------------------------------------------------------------------------

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("bench: {e}");
                std::process::exit(1);
            }
        };
    // On Ctrl-C or SIGTERM the run is dropped: every guard kills its process.
    let outcome = tokio::select! {
        outcome = run(args) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        _ = terminate.recv() => Err(anyhow::anyhow!("terminated")),
    };
    if let Err(e) = outcome {
        eprintln!("bench failed: {e:#}");
        std::process::exit(1);
    }
}

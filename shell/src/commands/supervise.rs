//! `elector supervise -- <elector flags>`: a parent for containers and hosts without systemd,
//! doing for the elector what `deploy/systemd/elector.service` does (`Restart=`,
//! `WatchdogSec=`, `ExecStopPost=elector force-standby`, passing SIGTERM on).
//!
//! - The child is this binary (`current_exe`) with the flags after `--` and the environment,
//!   plus `NOTIFY_SOCKET` (an abstract datagram socket of ours) and `WATCHDOG_USEC`: the child
//!   speaks the systemd notify protocol to us (`systemd`).
//! - The child's death is seen at once (its exit is awaited). A child that sends no
//!   `WATCHDOG=1` for the watchdog interval is killed (SIGKILL) and handled as dead.
//! - After a death, the node is commanded standby in-process, exactly as `elector
//!   force-standby` does ([`command_standby`]) with the child's flags, then the child is
//!   restarted after a pause ([`Backoff`]).
//! - SIGTERM and SIGINT are passed on; the child hands over cleanly and the supervisor exits
//!   with its status, waiting [`STOP_WAIT`] or longer while the child asks for more
//!   (`EXTEND_TIMEOUT_USEC`).
//!
//! The bound it gives (docs/safety.md, `--restart-bound`): a death is commanded standby within
//! `--node-timeout`; a hang within [`systemd::LOOP_STALL`] + watchdog +
//! [`systemd::STOP_POST_START`] (the supervisor sends the command within milliseconds of the
//! kill, well inside that allowance) + `--node-timeout`. That is the sum the child checks
//! against `--restart-bound` at start-up (`watchdog_within_restart_bound`), since it sees the
//! watchdog in `WATCHDOG_USEC`; the supervisor picks the longest watchdog that fits.
//!
//! The supervisor's loop, its notify socket and watchdog, the forced standby after a death and
//! the restart backoff are one state machine about one child; its unit tests sit below it.

use super::force_standby::command_standby;
use super::{EXIT_FAILED, EXIT_USAGE};
use crate::systemd;
use elector::cli::{self, ForceStandbyArgs, Parsed, RunArgs, SuperviseArgs};
use elector::logging;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::UnixDatagram;
use tokio::process::{Child, Command};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tracing::{error, info, warn};

/// Pause before the first restart: short, since a restarted elector forces its node standby
/// first thing and stays out of the election until then.
pub const RESTART_FIRST: Duration = Duration::from_millis(500);
/// Longest pause between restarts of a child that keeps dying.
pub const RESTART_MAX: Duration = Duration::from_secs(30);
/// A child that ran this long was healthy: the next pause is [`RESTART_FIRST`] again.
pub const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// The watchdog when `--watchdog` is not given and `--restart-bound` leaves room: the
/// systemd unit's `WatchdogSec=`.
const WATCHDOG_DEFAULT: Duration = Duration::from_secs(1);
/// The shortest watchdog that is not a false alarm on a busy host: the child pings every half
/// interval on a 100 ms tick, so pings come up to 100 ms late.
const WATCHDOG_MIN: Duration = Duration::from_millis(300);
/// Until its first ping the child is starting (process start, flag checks, runtime); one that
/// has not pinged by then hangs before its loop ever ran.
pub(crate) const FIRST_PING_WITHIN: Duration = Duration::from_secs(10);

/// How long a stop waits for the child after passing SIGTERM on, unless it asks for more time
/// (`EXTEND_TIMEOUT_USEC`, which a live elector sends while it works towards standby). Above
/// the default shutdown bound (8.8 s).
pub const STOP_WAIT: Duration = Duration::from_secs(10);
/// Bound on reaping a child after SIGKILL (a process in uninterruptible sleep).
pub(crate) const REAP_WAIT: Duration = Duration::from_secs(5);
/// The start of the abstract name of the supervisor's notify socket: how the elector tells
/// `elector supervise` from systemd in its `NOTIFY_SOCKET` (`@` marks an abstract name).
pub(crate) const SOCKET_PREFIX: &str = "elector-supervise/";
/// Largest notification datagram read; the elector's are far smaller.
const DATAGRAM_MAX: usize = 4096;

/// Runs `elector supervise`; returns the exit code.
pub async fn supervise(args: SuperviseArgs) -> u8 {
    let run = match cli::parse(std::iter::once("elector".to_string()).chain(args.elector.clone())) {
        Parsed::Run(parsed) => match parsed.command {
            None => parsed.run,
            Some(cli::Operation::Supervise(_)) => {
                elector::errln!("elector: supervise: the flags after -- must not be `supervise`");
                return EXIT_USAGE;
            }
            // `docker run <image> status ...` with `supervise --` as the entry point: an
            // operator command needs no supervision; it replaces this process.
            Some(_) => return exec_unsupervised(&args.elector),
        },
        Parsed::Info(text) => {
            elector::out!("{text}");
            return 0;
        }
        Parsed::Error(line) => {
            let child: Vec<String> = std::iter::once("elector".to_string())
                .chain(args.elector.clone())
                .collect();
            let env = std::env::var("ELECTOR_LOG_FORMAT").ok();
            let format = cli::requested_log_format(&child, env.as_deref());
            logging::fatal(format, &line, EXIT_USAGE);
            return EXIT_USAGE;
        }
    };
    logging::init(run.log_format, "info", Some(&run.value()));
    let watchdog = match watchdog_for(args.watchdog, &run) {
        Ok(watchdog) => watchdog,
        Err(line) => {
            logging::fatal(run.log_format, &format!("supervise: {line}"), EXIT_USAGE);
            return EXIT_USAGE;
        }
    };
    let (socket, name) = match bind_notify_socket() {
        Ok(bound) => bound,
        Err(line) => {
            error!("supervise: cannot create the notify socket: {line}");
            return EXIT_FAILED;
        }
    };
    let (Ok(term), Ok(int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("supervise: cannot install signal handlers");
        return EXIT_FAILED;
    };
    let mut supervisor = Supervisor {
        child_args: args.elector,
        standby: force_standby_args(&run, args.standby_timeout),
        watchdog,
        socket,
        socket_name: name,
        term,
        int,
        stop: None,
    };
    info!(
        watchdog_ms = watchdog.as_millis() as u64,
        restart_bound_ms = run.restart_bound.as_millis() as u64,
        node = %run.node.iotex_admin,
        "supervise: supervising the elector: on its death or stall the node is commanded standby and \
         the elector restarted"
    );
    supervisor.run().await
}

/// Replaces this process with the operator command named after `--`; returns only on failure.
fn exec_unsupervised(child_args: &[String]) -> u8 {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            elector::errln!("elector: supervise: cannot find this binary: {e}");
            return EXIT_FAILED;
        }
    };
    let e = std::process::Command::new(&exe).args(child_args).exec();
    elector::errln!("elector: supervise: cannot run {}: {e}", exe.display());
    EXIT_FAILED
}

/// The watchdog interval: `--watchdog`, else the longest up to [`WATCHDOG_DEFAULT`] that fits
/// `--restart-bound` (inequality `watchdog_within_restart_bound`). An error is one line.
pub(crate) fn watchdog_for(asked: Option<Duration>, run: &RunArgs) -> Result<Duration, String> {
    if let Some(watchdog) = asked {
        systemd::check_restart_bound(watchdog, run.node_timeout.node_timeout, run.restart_bound)?;
        return Ok(watchdog);
    }
    let overhead = systemd::LOOP_STALL + systemd::STOP_POST_START + run.node_timeout.node_timeout;
    let room = run.restart_bound.saturating_sub(overhead);
    if room < WATCHDOG_MIN {
        let s = |d: Duration| format!("{}s", d.as_secs_f64());
        return Err(format!(
            "--restart-bound {} leaves no room for a watchdog of at least {}: a hang is \
             commanded standby within loop stall {} + watchdog + {} + --node-timeout {}; \
             raise --restart-bound to at least {} on every replica",
            s(run.restart_bound),
            s(WATCHDOG_MIN),
            s(systemd::LOOP_STALL),
            s(systemd::STOP_POST_START),
            s(run.node_timeout.node_timeout),
            s(overhead + WATCHDOG_MIN)
        ));
    }
    Ok(room.min(WATCHDOG_DEFAULT))
}

/// `elector force-standby`'s flags, from the child's: what systemd's `ExecStopPost=` gets from
/// the shared environment file.
pub(crate) fn force_standby_args(run: &RunArgs, timeout: Duration) -> ForceStandbyArgs {
    ForceStandbyArgs {
        node: run.node.clone(),
        custody: run.custody.clone(),
        node_timeout: run.node_timeout.clone(),
        chain: run.chain.clone(),
        confirm_poll: run.confirm_poll.clone(),
        // The child's timing flags have their profile's values already.
        profile: run.profile,
        timeout,
        fence: run.fence.clone(),
        value: Some(run.value()),
        state_dir: run.state_dir.clone(),
        etcd: run.etcd_args(),
    }
}

/// A fresh abstract datagram socket for the child's notifications (no file to create or
/// clean up, also on a read-only root file system); returns it and its `NOTIFY_SOCKET` name.
#[cfg(target_os = "linux")]
fn bind_notify_socket() -> Result<(UnixDatagram, String), String> {
    use std::os::linux::net::SocketAddrExt as _;
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("{SOCKET_PREFIX}{}/{unique}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|e| e.to_string())?;
    let socket = std::os::unix::net::UnixDatagram::bind_addr(&addr).map_err(|e| e.to_string())?;
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    pass_credentials(&socket).map_err(|e| format!("SO_PASSCRED: {e}"))?;
    let socket = UnixDatagram::from_std(socket).map_err(|e| e.to_string())?;
    Ok((socket, format!("@{name}")))
}

#[cfg(not(target_os = "linux"))]
fn bind_notify_socket() -> Result<(UnixDatagram, String), String> {
    Err("abstract sockets exist on Linux only".into())
}

/// Has the kernel attach the sender's credentials to every datagram (`SCM_CREDENTIALS`): an
/// abstract socket can be reached by any process in the network namespace (in a pod, the
/// node's too), and only the child's pings may count.
#[cfg(target_os = "linux")]
fn pass_credentials(socket: &std::os::unix::net::UnixDatagram) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt(2) on an open socket with a pointer to a c_int and its exact size.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Receives one datagram without blocking; returns its length and the sender's process id,
/// if the kernel attached credentials ([`pass_credentials`]).
#[cfg(target_os = "linux")]
fn recv_from_process(
    socket: &UnixDatagram,
    buffer: &mut [u8],
) -> std::io::Result<(usize, Option<u32>)> {
    use std::os::fd::AsRawFd as _;
    let mut iov = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    // Room for one `ucred` control message, aligned as `cmsghdr` requires.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; all-zero is a valid empty header, filled in below.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &raw mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: recvmsg(2) on an open socket; `message` points at `iov` (into `buffer`) and
    // `control`, which outlive the call and whose lengths are given.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &raw mut message, libc::MSG_DONTWAIT) };
    let n = usize::try_from(n).map_err(|_| std::io::Error::last_os_error())?;
    let mut sender = None;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled, within
    // `msg_controllen`; a `ucred` is read unaligned from an SCM_CREDENTIALS message only.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&raw const message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET
                && (*header).cmsg_type == libc::SCM_CREDENTIALS
            {
                let credentials: libc::ucred =
                    std::ptr::read_unaligned(libc::CMSG_DATA(header).cast());
                sender = u32::try_from(credentials.pid).ok();
            }
            header = libc::CMSG_NXTHDR(&raw const message, header);
        }
    }
    Ok((n, sender))
}

#[cfg(not(target_os = "linux"))]
fn recv_from_process(
    _socket: &UnixDatagram,
    _buffer: &mut [u8],
) -> std::io::Result<(usize, Option<u32>)> {
    Err(std::io::Error::other(
        "abstract sockets exist on Linux only",
    ))
}

/// What one notification datagram of the child says (`sd_notify(3)`: newline-separated
/// `KEY=VALUE` assignments). Unknown and malformed assignments are ignored, as systemd does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Notice {
    pub ready: bool,
    pub watchdog: bool,
    /// `EXTEND_TIMEOUT_USEC`: the child asks for this much more time from now.
    pub extend: Option<Duration>,
}

pub fn parse_notice(datagram: &[u8]) -> Notice {
    let mut notice = Notice::default();
    for line in String::from_utf8_lossy(datagram).lines() {
        match line.split_once('=') {
            Some(("READY", "1")) => notice.ready = true,
            Some(("WATCHDOG", "1")) => notice.watchdog = true,
            Some(("EXTEND_TIMEOUT_USEC", usec)) => {
                if let Ok(usec) = usec.trim().parse::<u64>() {
                    notice.extend = Some(Duration::from_micros(usec));
                }
            }
            _ => {}
        }
    }
    notice
}

/// The pause before the next start of a child that died: [`RESTART_FIRST`], doubled after
/// each death up to [`RESTART_MAX`], back to the first after a run of [`HEALTHY_RUN`].
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: RESTART_FIRST,
        }
    }
}

impl Backoff {
    /// The pause after a child that ran for `ran`.
    pub fn after(&mut self, ran: Duration) -> Duration {
        if ran >= HEALTHY_RUN {
            self.next = RESTART_FIRST;
        }
        let pause = self.next;
        self.next = (self.next * 2).min(RESTART_MAX);
        pause
    }
}

/// How one run of the child ended.
#[derive(Debug)]
enum Ending {
    /// It exited by itself, or after a signal we passed on.
    Exited {
        status: ExitStatus,
        ready: bool,
        ran: Duration,
    },
    /// We sent SIGKILL: no watchdog ping in time, or a stop outlasted its bound.
    Killed { why: String, ran: Duration },
}

/// A stop asked of the supervisor: when the child must be gone.
#[derive(Clone, Copy, Debug)]
struct Stop {
    deadline: Instant,
}

struct Supervisor {
    child_args: Vec<String>,
    standby: ForceStandbyArgs,
    watchdog: Duration,
    socket: UnixDatagram,
    socket_name: String,
    term: Signal,
    int: Signal,
    stop: Option<Stop>,
}

impl Supervisor {
    /// Starts, watches and restarts the child until a stop; returns the exit code.
    ///
    /// Not bounded in count, on purpose: the replica must come back whenever it can, as under
    /// systemd's `Restart=always`. Each pass is bounded in time (the forced standby by
    /// `--standby-timeout` and `--fence-timeout`, the pause by [`RESTART_MAX`]) and the rate
    /// of restarts by [`Backoff`]; a stop ends the loop at any point.
    async fn run(&mut self) -> u8 {
        let mut backoff = Backoff::default();
        loop {
            let mut child = match self.spawn() {
                Ok(child) => child,
                Err(line) => {
                    error!("supervise: cannot start the elector: {line}");
                    return EXIT_FAILED;
                }
            };
            let ending = self.watch(&mut child).await;
            let asked_to_stop = self.stop.is_some();
            let ran = match &ending {
                Ending::Exited { status, ready, ran } => {
                    let code = status.code();
                    if asked_to_stop && code == Some(0) {
                        info!("supervise: elector stopped cleanly (exit status 0): exiting");
                        return 0;
                    }
                    if code == Some(i32::from(EXIT_USAGE)) {
                        error!(
                            "supervise: elector exited with status 2 (bad flags or configuration, see its \
                             error above): not restarting it"
                        );
                        // Exit 2 comes before the elector touches its node, or after a clean
                        // shutdown; once it ran, make sure anyway.
                        if *ready {
                            self.force_standby().await;
                        }
                        return EXIT_USAGE;
                    }
                    error!(
                        exit = %describe(*status),
                        ran_ms = ran.as_millis() as u64,
                        "supervise: elector exited ({}): commanding its node standby",
                        describe(*status)
                    );
                    *ran
                }
                Ending::Killed { why, ran } => {
                    error!(
                        ran_ms = ran.as_millis() as u64,
                        "supervise: elector killed (SIGKILL): {why}; commanding its node standby"
                    );
                    *ran
                }
            };
            let standby = self.force_standby().await;
            if let Ending::Killed { .. } = ending {
                reap(&mut child).await;
            }
            if asked_to_stop {
                return match ending {
                    Ending::Exited { status, .. } => status
                        .code()
                        .and_then(|c| u8::try_from(c).ok())
                        .filter(|&c| c != 0)
                        .unwrap_or(EXIT_FAILED),
                    Ending::Killed { .. } => EXIT_FAILED,
                };
            }
            let pause = backoff.after(ran);
            info!(
                restart_in_ms = pause.as_millis() as u64,
                "supervise: restarting the elector in {:.1} s",
                pause.as_secs_f64()
            );
            tokio::select! {
                () = sleep(pause) => {}
                _ = self.term.recv() => return stopped_while_down(standby),
                _ = self.int.recv() => return stopped_while_down(standby),
            }
        }
    }

    /// Starts the child with our notify socket and watchdog in its environment.
    fn spawn(&self) -> Result<Child, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
        let child = Command::new(&exe)
            .args(&self.child_args)
            .env("NOTIFY_SOCKET", &self.socket_name)
            .env("WATCHDOG_USEC", self.watchdog.as_micros().to_string())
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", exe.display()))?;
        info!(pid = child.id(), "supervise: elector started");
        Ok(child)
    }

    /// Watches the child until it exits or is killed; passes signals on.
    async fn watch(&mut self, child: &mut Child) -> Ending {
        let started = Instant::now();
        let mut ping_deadline = started + FIRST_PING_WITHIN;
        let mut ready = false;
        let mut buffer = vec![0u8; DATAGRAM_MAX];
        loop {
            let stop_deadline = self.stop.map(|s| s.deadline);
            let deadline = stop_deadline.map_or(ping_deadline, |d| d.min(ping_deadline));
            tokio::select! {
                status = child.wait() => {
                    let ran = started.elapsed();
                    return match status {
                        Ok(status) => Ending::Exited { status, ready, ran },
                        // Cannot happen for our own child; handled as a death.
                        Err(e) => Ending::Killed { why: format!("waiting for it failed: {e}"), ran },
                    };
                }
                received = self.socket.async_io(Interest::READABLE, || recv_from_process(&self.socket, &mut buffer)) => {
                    // Another process's datagram (anything in the network namespace can
                    // reach the socket) must not keep a stalled child alive.
                    let Ok((n, sender)) = received else { continue };
                    if sender.is_none() || sender != child.id() {
                        continue;
                    }
                    let notice = parse_notice(&buffer[..n]);
                    let now = Instant::now();
                    if notice.watchdog {
                        ping_deadline = now + self.watchdog;
                    }
                    if notice.ready && !ready {
                        ready = true;
                        info!(pid = child.id(), "supervise: elector ready: its node was confirmed standby at start");
                    }
                    if let (Some(extend), Some(stop)) = (notice.extend, self.stop.as_mut()) {
                        stop.deadline = stop.deadline.max(now + extend);
                    }
                }
                _ = self.term.recv() => self.pass_on(child, libc::SIGTERM, "SIGTERM"),
                _ = self.int.recv() => self.pass_on(child, libc::SIGINT, "SIGINT"),
                () = sleep_until(deadline) => {
                    let why = if stop_deadline.is_some_and(|d| d <= ping_deadline) {
                        format!("it did not stop within {STOP_WAIT:?} of the signal, nor ask for more time")
                    } else {
                        format!("no watchdog ping for {:?}", self.watchdog)
                    };
                    // SIGKILL first: a killed child runs no more code, so the node may be
                    // commanded standby at once, before it is reaped.
                    if let Err(e) = child.start_kill() {
                        warn!("supervise: killing the elector: {e}");
                    }
                    return Ending::Killed { why, ran: started.elapsed() };
                }
            }
        }
    }

    /// Passes a stop signal on to the child and starts the bounded wait for it.
    fn pass_on(&mut self, child: &Child, signal: libc::c_int, name: &str) {
        let Some(pid) = child.id().and_then(|id| libc::pid_t::try_from(id).ok()) else {
            return;
        };
        // SAFETY: kill(2) with integer arguments; `pid` is our child, not yet reaped (we hold
        // its `Child`, and only `wait` reaps it), so it names no other process.
        if unsafe { libc::kill(pid, signal) } != 0 {
            warn!(
                "supervise: passing {name} on to the elector failed: {}",
                std::io::Error::last_os_error()
            );
        }
        if self.stop.is_none() {
            info!("supervise: {name} passed on to the elector, waiting for its clean handover");
            self.stop = Some(Stop {
                deadline: Instant::now() + STOP_WAIT,
            });
        }
    }

    /// Commands the node standby as `elector force-standby` does; logs the outcome and returns
    /// whether standby was confirmed.
    async fn force_standby(&self) -> bool {
        let started = Instant::now();
        match command_standby(&self.standby).await {
            Ok(lines) => {
                info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "supervise: standby forced: {}",
                    lines.join("; ")
                );
                true
            }
            Err(line) => {
                error!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "supervise: FORCING STANDBY FAILED: {line}"
                );
                false
            }
        }
    }
}

/// The exit code when a stop arrives while no child runs: its node was forced standby, or not.
fn stopped_while_down(standby: bool) -> u8 {
    info!("supervise: stop asked while the elector was down: exiting");
    if standby { 0 } else { EXIT_FAILED }
}

/// Reaps a killed child, bounded.
async fn reap(child: &mut Child) {
    if timeout(REAP_WAIT, child.wait()).await.is_err() {
        warn!("supervise: the killed elector was not reaped within {REAP_WAIT:?}");
    }
}

/// An exit status as a person reads it: `exit status 1`, `killed by signal 9 (SIGKILL)`.
pub(crate) fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => {
            let name = match signal {
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGTERM => " (SIGTERM)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGABRT => " (SIGABRT)",
                _ => "",
            };
            format!("killed by signal {signal}{name}")
        }
        (None, None) => status.to_string(),
    }
}

#[cfg(test)]
mod tests;

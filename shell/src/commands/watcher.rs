//! The watcher: a bare-run elector's own `ExecStopPost=`.
//!
//! The guarantee (docs/safety.md) assumes that when an elector dies or hangs, its node is
//! commanded standby within `--restart-bound`. systemd's unit and `elector supervise` arrange
//! that from outside. An elector started any other way (a shell, tmux, `docker run` without a
//! supervisor, the Go elector's command line) keeps a small process of its own beside it that
//! does it, the watcher:
//!
//! - The elector (the process the operator started; it keeps its pid, its signals, its log and
//!   its exit code) starts this binary again as `elector watch --elector-pid <pid> --watchdog
//!   <w> -- <its own arguments>`, in a process group of its own (a terminal's Ctrl-C does not
//!   reach it), with the read end of a pipe as its stdin. The elector is the pipe's only
//!   writer: its end is closed on exec, so no command it runs holds it.
//! - Over the pipe the elector speaks the systemd notify protocol (the same task writes it,
//!   [`crate::systemd::keep_informed`]), one notification per write, each ending in a NUL byte (a
//!   write of at most `PIPE_BUF` bytes is atomic): `WATCHDOG=1` every half watchdog while its
//!   driver loop runs, and [`STANDBY_PROVEN`] when it exits with its node proven standby.
//! - The elector's death closes the pipe: the watcher reads end-of-file at once and, unless
//!   the elector said [`STANDBY_PROVEN`], commands the node standby exactly as `elector
//!   force-standby` does with the elector's flags (which also ends the dead term kept in the
//!   state directory, so a successor need not wait for the lease), then exits. It does not
//!   restart the elector: that is a supervisor's job (systemd, `elector supervise`).
//! - A hang (SIGSTOP, Ctrl-Z, a stalled loop) stops the pings: after the watchdog the watcher
//!   kills the elector (SIGKILL) and goes on as after a death.
//! - The watcher's own death is seen by the elector (its child exited), which starts another
//!   after a pause ([`Backoff`]) and says so in its log.
//!
//! The bound is the supervisor's: a death is commanded standby within `--node-timeout`, a hang
//! within loop stall + watchdog + 0.1 s + `--node-timeout`, which must fit `--restart-bound`
//! (inequality `watchdog_within_restart_bound`; the watchdog is the longest that fits, at most
//! 1 s).
//!
//! What stays unprotected is said at start-up and by `elector check` ([`Protection`]): both
//! processes killed at once (a cgroup or container killed whole, `pkill -9 elector`, the OOM
//! killer taking both), and an elector that is a container's PID 1 (its death ends the
//! container; only a restart policy brings an elector back to command standby).

use crate::commands::force_standby::command_standby;
use crate::commands::supervise::{
    self, Backoff, FIRST_PING_WITHIN, REAP_WAIT, describe, force_standby_args, parse_notice,
};
use crate::commands::{EXIT_FAILED, EXIT_USAGE};
use crate::systemd::Notify;
use elector::cli::{self, Parsed, RunArgs, WatchArgs};
use elector::logging;
use std::io::{self, PipeWriter, Write as _};
use std::os::unix::process::CommandExt as _;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt as _;
use tokio::process::Child;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tracing::{error, info, warn};

/// What the elector writes last when it exits with its node proven standby: nothing is left
/// for the watcher to do.
pub const STANDBY_PROVEN: &str = "STANDBY_PROVEN=1";

/// After the elector died, how long the watcher tries to confirm standby (then the fence
/// runs): `elector force-standby`'s and `elector supervise`'s default.
const STANDBY_TIMEOUT: Duration = Duration::from_secs(10);

/// What commands this elector's node standby when the elector dies or hangs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// systemd runs it (`NOTIFY_SOCKET`): the unit's `ExecStopPost=` and `WatchdogSec=`.
    Systemd,
    /// `elector supervise` runs it.
    Supervise,
    /// Its own watcher process.
    Watcher,
    /// It is PID 1 (a container's init): no process of its own can outlive it.
    ContainerInit,
    /// `--no-watcher`: something else, or nothing.
    Off,
}

impl Protection {
    /// What protects an elector started with these flags in this environment.
    pub fn of(run: &RunArgs) -> Protection {
        Protection::decide(
            std::env::var("NOTIFY_SOCKET").ok().as_deref(),
            run.no_watcher,
            std::process::id(),
        )
    }

    fn decide(notify_socket: Option<&str>, no_watcher: bool, pid: u32) -> Protection {
        match notify_socket {
            Some(socket) if socket.starts_with(&format!("@{}", supervise::SOCKET_PREFIX)) => {
                Protection::Supervise
            }
            Some(_) => Protection::Systemd,
            None if no_watcher => Protection::Off,
            None if pid == 1 => Protection::ContainerInit,
            None => Protection::Watcher,
        }
    }

    /// What it covers and what it leaves open, one line (the start-up log and `elector
    /// check`); `warn` says whether it deserves a warning.
    pub fn describe(self, watchdog: Option<Duration>) -> (String, bool) {
        match self {
            Protection::Systemd => (
                match watchdog {
                    Some(w) => format!(
                        "run by systemd: if this elector dies, the unit's ExecStopPost=elector \
                         force-standby commands its node standby; a hang is caught by \
                         WatchdogSec= ({:.1}s)",
                        w.as_secs_f64()
                    ),
                    None => "run by systemd without WatchdogSec=: a hang of this elector is not \
                             caught; use deploy/systemd/elector.service"
                        .to_string(),
                },
                watchdog.is_none(),
            ),
            Protection::Supervise => (
                "run by `elector supervise`: if this elector dies or hangs, it commands the node \
                 standby and restarts the elector"
                    .to_string(),
                false,
            ),
            Protection::Watcher => (
                format!(
                    "watched by a process of its own (`elector watch`): if this elector dies, or \
                     hangs for {:.1}s, the watcher commands its node standby and ends its term; \
                     not covered: both killed at once (a cgroup or container killed whole, \
                     `pkill -9 elector`); nothing restarts the elector: for that, run it with \
                     deploy/systemd/elector.service or `elector supervise`",
                    watchdog.unwrap_or_default().as_secs_f64()
                ),
                false,
            ),
            Protection::ContainerInit => (
                "running as PID 1 (a container's init) without a supervisor: if this elector \
                 dies, its container ends with it and nothing commands the node standby until an \
                 elector starts again here: give the container a restart policy (docker \
                 --restart=always, Kubernetes restartPolicy: Always) and --state-dir on a volume"
                    .to_string(),
                true,
            ),
            Protection::Off => (
                "--no-watcher: if this elector dies or hangs, nothing of its own commands its \
                 node standby; whatever runs it must (`elector force-standby` after it exits)"
                    .to_string(),
                true,
            ),
        }
    }
}

/// The elector's end of the pipe to its watcher: a [`Notify`] target, replaced when a new
/// watcher is started.
#[derive(Default)]
pub struct WatcherLink {
    pipe: Mutex<Option<PipeWriter>>,
    pid: AtomicU32,
    /// The elector is exiting: a watcher that exits now is not replaced.
    closing: AtomicBool,
}

impl Notify for WatcherLink {
    fn notify(&self, state: &str) -> io::Result<()> {
        let mut frame = state.replace('\0', " ").into_bytes();
        // One write of at most PIPE_BUF (4096) bytes is atomic: a frame is never torn.
        frame.truncate(4095);
        frame.push(0);
        let mut pipe = self.pipe.lock().unwrap_or_else(|e| e.into_inner());
        match pipe.as_mut() {
            Some(pipe) => pipe.write(&frame).map(|_| ()),
            None => Err(io::Error::other("no watcher process")),
        }
    }

    fn target(&self) -> String {
        format!("watcher process {}", self.pid.load(Ordering::Relaxed))
    }
}

impl WatcherLink {
    /// The elector is about to exit: tells the watcher whether its node was proven standby
    /// (then the watcher has nothing to do), and stops replacing watchers.
    pub fn finish(&self, standby_proven: bool) {
        self.closing.store(true, Ordering::SeqCst);
        if standby_proven && let Err(e) = self.notify(STANDBY_PROVEN) {
            warn!("cannot tell the watcher that the node is standby: {e}");
        }
    }

    /// The watcher's process id (0 before the first one started).
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::Relaxed)
    }
}

/// Starts the watcher for this elector and keeps one running for the life of the process.
/// Returns the link to notify through. An error is one line: a watchdog that does not fit
/// `--restart-bound`, or a watcher that cannot be started at all.
pub fn start(run: &RunArgs) -> Result<(Arc<WatcherLink>, Duration), String> {
    let watchdog = supervise::watchdog_for(None, run)?;
    let link = Arc::new(WatcherLink::default());
    let child = spawn(watchdog, &link).map_err(|e| {
        format!(
            "cannot start the watcher process ({e}); run the elector with \
             deploy/systemd/elector.service or `elector supervise`, or pass --no-watcher where \
             something else commands the node standby when the elector dies"
        )
    })?;
    tokio::spawn(keep_watched(link.clone(), watchdog, child));
    Ok((link, watchdog))
}

/// Starts one watcher process and points the link at its pipe.
fn spawn(watchdog: Duration, link: &WatcherLink) -> io::Result<Child> {
    let (reader, writer) = io::pipe()?;
    set_nonblocking(&writer)?;
    // The running binary, even if the file was replaced by an upgrade since.
    let exe = if std::path::Path::new("/proc/self/exe").exists() {
        std::path::PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe()?
    };
    let mut command = std::process::Command::new(exe);
    command
        .arg0("elector")
        .arg("watch")
        .arg("--elector-pid")
        .arg(std::process::id().to_string())
        .arg("--watchdog")
        .arg(format!("{}ms", watchdog.as_millis()))
        .arg("--")
        .args(std::env::args_os().skip(1))
        .stdin(Stdio::from(reader))
        // Its own process group: a terminal's Ctrl-C and Ctrl-Z reach only the elector.
        .process_group(0);
    let child = tokio::process::Command::from(command).spawn()?;
    *link.pipe.lock().unwrap_or_else(|e| e.into_inner()) = Some(writer);
    link.pid
        .store(child.id().unwrap_or_default(), Ordering::Relaxed);
    Ok(child)
}

/// Replaces a watcher that exits while the elector runs, after a pause that grows while they
/// keep exiting. Unbounded in count on purpose, like a supervisor's restarts: the elector must
/// not stay unwatched; each pass waits for an exit and a pause.
async fn keep_watched(link: Arc<WatcherLink>, watchdog: Duration, mut child: Child) {
    let mut backoff = Backoff::default();
    let mut started = Instant::now();
    loop {
        let exit = child.wait().await;
        if link.closing.load(Ordering::SeqCst) {
            return;
        }
        let how = match exit {
            Ok(status) => describe(status),
            Err(e) => format!("waiting for it failed: {e}"),
        };
        loop {
            let pause = backoff.after(started.elapsed());
            error!(
                watcher_pid = link.pid(),
                "the watcher process exited ({how}): until another runs, a death of this elector \
                 leaves its node as it is; starting another in {:.1}s",
                pause.as_secs_f64()
            );
            sleep(pause).await;
            if link.closing.load(Ordering::SeqCst) {
                return;
            }
            match spawn(watchdog, &link) {
                Ok(next) => {
                    child = next;
                    started = Instant::now();
                    info!(watcher_pid = link.pid(), "watcher process started again");
                    break;
                }
                Err(e) => {
                    error!("cannot start the watcher process: {e}");
                    continue;
                }
            }
        }
    }
}

fn set_nonblocking(pipe: &PipeWriter) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let fd = pipe.as_raw_fd();
    // SAFETY: fcntl(2) on a descriptor we own, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// How a watch ended.
enum Ending {
    /// End of file: the elector exited or was killed by someone else.
    Died,
    /// No ping within the watchdog: we killed it.
    Hung,
}

/// Runs the hidden `elector watch`: watches the elector that started it until it exits;
/// returns the exit code.
pub async fn watch(args: WatchArgs) -> u8 {
    let run = match cli::parse(std::iter::once("elector".to_string()).chain(args.elector.clone())) {
        Parsed::Run(parsed) if parsed.command.is_none() => parsed.run,
        Parsed::Error(line) => {
            elector::errln!("elector: watch: {line}");
            return EXIT_USAGE;
        }
        _ => {
            elector::errln!("elector: watch: the flags after -- must be the elector's own");
            return EXIT_USAGE;
        }
    };
    logging::init(run.log_format, "info", Some(&run.value()));
    let elector_pid = args.elector_pid;
    // Our stdin is the pipe; its only writer is the elector.
    let pipe = match stdin_pipe() {
        Ok(pipe) => pipe,
        Err(e) => {
            error!("watcher: stdin is not the elector's pipe: {e}");
            return EXIT_USAGE;
        }
    };
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        error!("watcher: cannot install signal handlers");
        return EXIT_FAILED;
    };
    let ending = match watch_pipe(
        pipe,
        elector_pid,
        args.watchdog,
        &mut term,
        &mut int,
        &mut hup,
    )
    .await
    {
        Watched::Ended(ending) => ending,
        Watched::Proven => return 0,
        Watched::Stopped(name) => {
            warn!(
                elector_pid,
                "watcher: {name}: exiting; the elector starts another watcher"
            );
            return 0;
        }
    };
    match ending {
        Ending::Died => error!(
            elector_pid,
            "watcher: the elector exited without proving its node standby: commanding the node \
             standby"
        ),
        Ending::Hung => error!(
            elector_pid,
            "watcher: no ping from the elector for {:.1}s: killed it (SIGKILL); commanding the \
             node standby",
            args.watchdog.as_secs_f64()
        ),
    }
    let started = Instant::now();
    match command_standby(&force_standby_args(&run, STANDBY_TIMEOUT)).await {
        Ok(lines) => {
            info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "watcher: standby forced: {}; the elector is not restarted (a supervisor's job)",
                lines.join("; ")
            );
            0
        }
        Err(line) => {
            error!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "watcher: FORCING STANDBY FAILED: {line}"
            );
            EXIT_FAILED
        }
    }
}

/// How watching the pipe ended.
enum Watched {
    /// The elector exited with its node proven standby.
    Proven,
    Ended(Ending),
    /// A signal asked the watcher to go.
    Stopped(&'static str),
}

/// Reads the elector's notifications until it exits or hangs.
async fn watch_pipe(
    mut pipe: tokio::net::unix::pipe::Receiver,
    elector_pid: u32,
    watchdog: Duration,
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
    hup: &mut tokio::signal::unix::Signal,
) -> Watched {
    let mut ping_deadline = Instant::now() + FIRST_PING_WITHIN;
    let mut proven = false;
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        tokio::select! {
            read = pipe.read(&mut chunk) => match read {
                Ok(0) => return if proven { Watched::Proven } else { Watched::Ended(Ending::Died) },
                Ok(n) => {
                    pending.extend_from_slice(&chunk[..n]);
                    while let Some(end) = pending.iter().position(|&b| b == 0) {
                        let frame: Vec<u8> = pending.drain(..=end).collect();
                        let frame = &frame[..frame.len() - 1];
                        if parse_notice(frame).watchdog {
                            ping_deadline = Instant::now() + watchdog;
                        }
                        if String::from_utf8_lossy(frame).lines().any(|l| l == STANDBY_PROVEN) {
                            proven = true;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A pipe that cannot be read cannot tell us of a death: as good as one.
                Err(e) => {
                    error!(elector_pid, "watcher: reading the elector's pipe failed: {e}");
                    return Watched::Ended(Ending::Died);
                }
            },
            // Once the elector proved standby, it has nothing left to stall on: wait for its
            // exit only.
            () = sleep_until(ping_deadline), if !proven => {
                kill_elector(elector_pid);
                // The pipe closes when the killed process is gone; a process in
                // uninterruptible sleep runs no more code once it wakes, so go on anyway.
                let closed = timeout(REAP_WAIT, async {
                    loop {
                        match pipe.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                }).await;
                if closed.is_err() {
                    warn!(elector_pid, "watcher: the killed elector's pipe is still open after {REAP_WAIT:?}");
                }
                return Watched::Ended(Ending::Hung);
            }
            _ = term.recv() => return Watched::Stopped("SIGTERM"),
            _ = int.recv() => return Watched::Stopped("SIGINT"),
            // A closed terminal is no reason to stop watching.
            _ = hup.recv() => {}
        }
    }
}

/// SIGKILL to the elector, only while it is still our parent: its pid is then its own (a dead
/// parent's pid could have been reused, and we would have been handed to another parent).
fn kill_elector(elector_pid: u32) {
    // SAFETY: getppid(2) has no preconditions.
    let parent = unsafe { libc::getppid() };
    let Ok(pid) = libc::pid_t::try_from(elector_pid) else {
        return;
    };
    if parent != pid {
        warn!(
            elector_pid,
            parent, "watcher: the elector is no longer our parent: not killing anything"
        );
        return;
    }
    // SAFETY: kill(2) with integer arguments, to our live parent (checked just above).
    if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
        warn!(
            elector_pid,
            "watcher: killing the elector failed: {}",
            io::Error::last_os_error()
        );
    }
}

/// Our stdin, as an asynchronous pipe.
fn stdin_pipe() -> io::Result<tokio::net::unix::pipe::Receiver> {
    use std::os::fd::AsFd as _;
    let fd = io::stdin().as_fd().try_clone_to_owned()?;
    tokio::net::unix::pipe::Receiver::from_file(std::fs::File::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protection_follows_how_the_elector_was_started() {
        let decide = Protection::decide;
        assert_eq!(
            decide(Some("/run/systemd/notify"), false, 4242),
            Protection::Systemd
        );
        assert_eq!(
            decide(Some("@elector-supervise/17/123"), false, 4242),
            Protection::Supervise
        );
        // The flag does not turn off what runs the elector from outside.
        assert_eq!(
            decide(Some("/run/systemd/notify"), true, 4242),
            Protection::Systemd
        );
        assert_eq!(decide(None, false, 4242), Protection::Watcher);
        assert_eq!(decide(None, true, 4242), Protection::Off);
        assert_eq!(decide(None, false, 1), Protection::ContainerInit);
    }

    #[test]
    fn what_is_left_open_is_said() {
        let (line, warn) = Protection::Watcher.describe(Some(Duration::from_secs(1)));
        assert!(line.contains("not covered"), "{line}");
        assert!(!warn);
        for unprotected in [Protection::ContainerInit, Protection::Off] {
            let (line, warn) = unprotected.describe(None);
            assert!(warn, "{line}");
            assert!(!line.contains('\n'), "{line}");
        }
        assert!(Protection::Systemd.describe(None).1);
        assert!(!Protection::Systemd.describe(Some(Duration::from_secs(1))).1);
    }

    #[test]
    fn frames_are_atomic_and_end_in_nul() {
        let (mut reader, writer) = io::pipe().expect("pipe");
        let link = WatcherLink::default();
        *link.pipe.lock().expect("lock") = Some(writer);
        link.notify("WATCHDOG=1").expect("write");
        link.notify(&"x".repeat(10_000)).expect("a long one, cut");
        link.finish(true);
        drop(link);
        let mut all = Vec::new();
        io::Read::read_to_end(&mut reader, &mut all).expect("read");
        let frames: Vec<&[u8]> = all.split(|&b| b == 0).collect();
        assert_eq!(frames[0], b"WATCHDOG=1");
        assert_eq!(frames[1].len(), 4095);
        assert_eq!(frames[2], STANDBY_PROVEN.as_bytes());
        assert_eq!(frames[3], b"");
    }
}

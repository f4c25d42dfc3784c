//! systemd integration: readiness, status lines and watchdog pings over the `sd_notify(3)`
//! datagram protocol, spoken directly (it is one `sendto` of `KEY=VALUE` lines to the Unix
//! datagram socket named in `$NOTIFY_SOCKET`): the `sd-notify` crate sends blocking, where a
//! stalled systemd must not stall the loop that pings the watchdog, and takes no `@abstract`
//! socket names.
//!
//! - `READY=1` once the driver loop runs and the node was confirmed standby (or the elector
//!   went on past start-up), so `systemctl start` returns when the node is known standby.
//! - `STATUS=` whenever what `systemctl status` should show changes ([`status_line`]): while
//!   starting or standing by, what the elector waits for (`starting: waiting: node not
//!   answering (...); etcd unreachable (...)`); `STUCK: <why>` while stuck; `standby:
//!   EXCLUDED by <who> since <when>: <why> ...` while an operator excludes it; else
//!   `<role>: <reason>`.
//! - `WATCHDOG=1` every half `WatchdogSec=` (`$WATCHDOG_USEC`), but only while the driver loop
//!   ran within [`LOOP_STALL`]: a hung loop stops the pings, systemd kills the elector
//!   (`WatchdogSignal=SIGKILL`) and `ExecStopPost=elector force-standby` demotes the node.
//! - `STOPPING=1` on SIGTERM or SIGINT.
//! - `STATUS=STUCK: <reason>` while the core reports itself stuck (rule `report_stuck`).
//! - `EXTEND_TIMEOUT_USEC=` while stopping and the loop runs, at once on SIGTERM and then
//!   every half watchdog period, each for one period: the elector exits only once its node is
//!   proven standby, so `TimeoutStopSec=` must not SIGKILL it while it still works towards
//!   that; a stalled loop stops asking, and the stop timeout applies again. The unit's short
//!   `TimeoutStopSec=` then bounds a stall during a stop as the watchdog bounds one before it
//!   ([`check_stop_within_restart_bound`]).
//!
//! Nothing is sent when `$NOTIFY_SOCKET` is unset; no pings when `$WATCHDOG_USEC` is unset or
//! `$WATCHDOG_PID` names another process.
//!
//! The restart bound of docs/safety.md must cover a hang: the last ping can come up to
//! [`LOOP_STALL`] after the loop stopped, systemd kills the elector `WatchdogSec` after the last
//! ping, then `ExecStopPost=` starts (allowed [`STOP_POST_START`]) and its `activate=false`
//! lands within `--node-timeout`. [`check_restart_bound`] checks that sum at start-up.
//!
//! The same protocol goes to the watcher process of a bare run (`watcher`), through the
//! [`Notify`] seam.

use elector::telemetry::{Snapshot, Telemetry};
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, warn};

/// The driver loop runs at least every `LOOP_HEARTBEAT` (200 ms); a loop that has not run for
/// this long is hung, and the watchdog pings stop. Small, because every bound on a hang adds
/// it (`watchdog_within_restart_bound`, `stop_within_restart_bound`); 300 ms of scheduling
/// delay on a loaded host still pass.
pub const LOOP_STALL: Duration = Duration::from_millis(500);

/// Allowance for systemd to start `ExecStopPost=` and for `elector force-standby` to send its
/// first command after the elector was killed.
pub const STOP_POST_START: Duration = Duration::from_millis(100);

/// How often the supervisor looks at the status snapshot for readiness and role changes.
const STATUS_TICK: Duration = Duration::from_millis(100);

/// While stopping, a live elector asks systemd for more time (`EXTEND_TIMEOUT_USEC`): it
/// exits only once its node is proven standby (rule `shutdown` of the core), and systemd's
/// `TimeoutStopSec=` must not SIGKILL it before. Each request asks for one watchdog period
/// ([`stop_extension`]), every half period: systemd turns the watchdog off while a unit stops,
/// and the extensions take its place, so a loop that stalls during the stop is killed as soon
/// as a watchdog would have killed it. Without a watchdog, this much.
const EXTEND_WITHOUT_WATCHDOG: Duration = Duration::from_millis(2500);

/// The time each `EXTEND_TIMEOUT_USEC` asks for: the watchdog period (see
/// [`EXTEND_WITHOUT_WATCHDOG`]).
pub fn stop_extension(watchdog: Option<Duration>) -> Duration {
    watchdog.unwrap_or(EXTEND_WITHOUT_WATCHDOG)
}

/// A warning about failed notifications is repeated at most this often.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// The socket systemd listens on for notifications.
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    shown: String,
}

impl Notifier {
    /// The notifier for `$NOTIFY_SOCKET`, or `None` when it is unset (not run by systemd with
    /// `Type=notify`). An error names a value that cannot work.
    pub fn from_env() -> Result<Option<Notifier>, String> {
        match std::env::var_os("NOTIFY_SOCKET") {
            None => Ok(None),
            Some(value) => Notifier::new(&value.to_string_lossy()).map(Some),
        }
    }

    /// The notifier for a socket path (`/run/systemd/notify`) or abstract name (`@name`).
    pub fn new(socket: &str) -> Result<Notifier, String> {
        let bad = |why: String| format!("NOTIFY_SOCKET={socket:?}: {why}");
        let addr = if let Some(name) = socket.strip_prefix('@') {
            abstract_address(name.as_bytes()).map_err(|e| bad(e.to_string()))?
        } else if socket.starts_with('/') {
            SocketAddr::from_pathname(socket).map_err(|e| bad(e.to_string()))?
        } else {
            return Err(bad(
                "not a socket path or @abstract name (vsock is not supported)".into(),
            ));
        };
        let socket_fd = UnixDatagram::unbound().map_err(|e| bad(e.to_string()))?;
        // Never block the runtime: a full queue at systemd loses a notification, no more.
        socket_fd
            .set_nonblocking(true)
            .map_err(|e| bad(e.to_string()))?;
        Ok(Notifier {
            socket: socket_fd,
            addr,
            shown: socket.to_string(),
        })
    }
}

/// Where the elector's notifications go: systemd's socket ([`Notifier`]), or the watcher
/// process of a bare run (`watcher::WatcherLink`), which reads the same protocol.
pub trait Notify: Send + Sync {
    /// Sends one notification: newline-separated `KEY=VALUE` assignments. Never blocks: a
    /// receiver that does not read loses notifications, no more.
    fn notify(&self, state: &str) -> io::Result<()>;

    /// Where notifications go, for the log.
    fn target(&self) -> String;
}

impl Notify for Notifier {
    fn notify(&self, state: &str) -> io::Result<()> {
        self.socket
            .send_to_addr(state.as_bytes(), &self.addr)
            .map(|_| ())
    }

    fn target(&self) -> String {
        self.shown.clone()
    }
}

#[cfg(target_os = "linux")]
fn abstract_address(name: &[u8]) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(target_os = "linux"))]
fn abstract_address(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::other("abstract sockets exist on Linux only"))
}

/// The watchdog period asked for by systemd (`$WATCHDOG_USEC`), if it is meant for this
/// process (`$WATCHDOG_PID` unset or ours).
pub fn watchdog_from_env() -> Result<Option<Duration>, String> {
    let Some(usec) = std::env::var_os("WATCHDOG_USEC") else {
        return Ok(None);
    };
    if let Some(pid) = std::env::var_os("WATCHDOG_PID")
        && pid.to_string_lossy().trim() != std::process::id().to_string()
    {
        return Ok(None);
    }
    parse_watchdog_usec(&usec.to_string_lossy()).map(Some)
}

fn parse_watchdog_usec(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<u64>() {
        Ok(usec) if usec > 0 => Ok(Duration::from_micros(usec)),
        _ => Err(format!(
            "WATCHDOG_USEC={text:?} is not a positive number of microseconds"
        )),
    }
}

/// Inequality `watchdog_within_restart_bound`: after a hang, the node must be commanded
/// standby within `--restart-bound` (docs/safety.md): [`LOOP_STALL`] + `WatchdogSec` +
/// [`STOP_POST_START`] + `--node-timeout` ≤ `--restart-bound`.
pub fn check_restart_bound(
    watchdog: Duration,
    node_timeout: Duration,
    restart_bound: Duration,
) -> Result<(), String> {
    let needed = LOOP_STALL + watchdog + STOP_POST_START + node_timeout;
    if needed <= restart_bound {
        return Ok(());
    }
    let s = |d: Duration| format!("{}s", d.as_secs_f64());
    Err(format!(
        "unsafe timing (watchdog_within_restart_bound): loop stall {} + WatchdogSec {} + \
         ExecStopPost start {} + --node-timeout {} = {} > --restart-bound {}; lower \
         WatchdogSec= to {} or less, or raise --restart-bound to {} or more on every replica \
         (see docs/operations.md)",
        s(LOOP_STALL),
        s(watchdog),
        s(STOP_POST_START),
        s(node_timeout),
        s(needed),
        s(restart_bound),
        s(restart_bound.saturating_sub(LOOP_STALL + STOP_POST_START + node_timeout)),
        s(needed)
    ))
}

/// Inequality `stop_within_restart_bound`: systemd turns the watchdog off while a unit stops,
/// so a loop that stalls and is then asked to stop (a restart, a rollout) is killed only when
/// `TimeoutStopSec=` runs out: the stop may come just before the watchdog would have fired,
/// and then [`LOOP_STALL`] + `WatchdogSec` + `TimeoutStopSec` + [`STOP_POST_START`] +
/// `--node-timeout` must fit `--restart-bound`. The elector cannot see `TimeoutStopSec=`;
/// `elector check` prints what fits and the shipped unit keeps to it. A live elector asks for more time at once when the stop begins.
pub fn check_stop_within_restart_bound(
    watchdog: Duration,
    stop_timeout: Duration,
    node_timeout: Duration,
    restart_bound: Duration,
) -> Result<(), String> {
    let needed = LOOP_STALL + watchdog + stop_timeout + STOP_POST_START + node_timeout;
    if needed <= restart_bound {
        return Ok(());
    }
    let s = |d: Duration| format!("{}s", d.as_secs_f64());
    Err(format!(
        "unsafe timing (stop_within_restart_bound): loop stall {} + WatchdogSec {} + \
         TimeoutStopSec {} + ExecStopPost start {} + --node-timeout {} = {} > --restart-bound {}",
        s(LOOP_STALL),
        s(watchdog),
        s(stop_timeout),
        s(STOP_POST_START),
        s(node_timeout),
        s(needed),
        s(restart_bound)
    ))
}

/// Whether a watchdog ping may be sent: the driver loop ran recently enough.
pub fn loop_alive(loop_age: Duration) -> bool {
    loop_age < LOOP_STALL
}

/// Keeps systemd informed until the process exits: `READY=1` once, `STATUS=` on role
/// changes, `WATCHDOG=1` every half `watchdog` while the driver loop is alive.
pub async fn keep_informed(
    notifier: Arc<dyn Notify>,
    watchdog: Option<Duration>,
    telemetry: Arc<Telemetry>,
) {
    let ping_every = watchdog.map(|w| w / 2);
    let tick = ping_every.map_or(STATUS_TICK, |p| p.min(STATUS_TICK));
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ready = false;
    let mut last_status: Option<String> = None;
    let mut last_extend: Option<Instant> = None;
    let mut last_ping: Option<Instant> = None;
    let mut warnings = elector::logging::Every::new(WARN_EVERY);
    let mut send = |state: String| {
        if let Err(e) = notifier.notify(&state) {
            if warnings.due(Instant::now()).is_some() {
                warn!(socket = notifier.target(), "notification failed: {e}");
            }
        } else {
            debug!(state = %state.replace('\n', " "), "notified systemd");
        }
    };
    loop {
        ticks.tick().await;
        let now = Instant::now();
        if let Some(every) = ping_every
            && last_ping.is_none_or(|at| now >= at + every)
            && loop_alive(telemetry.loop_age())
        {
            send("WATCHDOG=1".into());
            last_ping = Some(now);
        }
        let Some(snapshot) = telemetry.snapshot() else {
            continue;
        };
        let mut lines = Vec::new();
        let extension = stop_extension(watchdog);
        if snapshot.shutting_down
            && loop_alive(telemetry.loop_age())
            && last_extend.is_none_or(|at| now >= at + extension / 2)
        {
            lines.push(format!("EXTEND_TIMEOUT_USEC={}", extension.as_micros()));
            last_extend = Some(now);
        }
        let line = status_line(&snapshot);
        if last_status.as_ref() != Some(&line) {
            lines.push(format!("STATUS={line}"));
            last_status = Some(line);
        }
        if !ready && (snapshot.node_standby_confirmed || !matches!(snapshot.role, "starting")) {
            ready = true;
            lines.push("READY=1".into());
        }
        if !lines.is_empty() {
            send(lines.join("\n"));
        }
    }
}

/// What `systemctl status` shows (`STATUS=`), one line: while stuck, why (it is what an
/// operator needs during a stop that waits for the node to be proven standby); while excluded
/// and not leading, by whom and since when; while starting or standing by, what the elector
/// waits for ([`waiting_for`]); else the role, the leader if
/// another replica leads, and the reason of the last role change.
pub fn status_line(snapshot: &Snapshot) -> String {
    if let Some(reason) = &snapshot.stuck {
        return format!("STUCK: {}", one_line(reason));
    }
    // Out of rotation on purpose: say by whom, not what a campaign would wait for. A leader
    // that is handing over shows its role and reason below.
    if let Some(exclusion) = snapshot
        .exclusion
        .as_ref()
        .filter(|_| matches!(snapshot.role, "starting" | "standby"))
    {
        let why = if exclusion.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", one_line(&exclusion.reason))
        };
        return format!(
            "{}: EXCLUDED by {} since {}{why} (elector include {} ends it)",
            snapshot.role, exclusion.by, exclusion.since, snapshot.value
        );
    }
    if let Some(waiting) = waiting_for(snapshot) {
        return format!("{}: {}", snapshot.role, one_line(&waiting));
    }
    let leader = match &snapshot.leader {
        Some(leader) if *leader != snapshot.value => format!(" (leader: {leader})"),
        _ => String::new(),
    };
    format!(
        "{}{leader}: {}",
        snapshot.role,
        one_line(&snapshot.role_reason)
    )
}

/// What a starting or standby elector waits for, from what its calls last said: the node (not
/// answering, still active, unready) and etcd (unreachable). `None` when it waits for nothing
/// it could name, or is past those stages.
pub fn waiting_for(snapshot: &Snapshot) -> Option<String> {
    if !matches!(snapshot.role, "starting" | "standby") {
        return None;
    }
    let mut waits = Vec::new();
    if !snapshot.node_standby_confirmed {
        waits.push(match (&snapshot.node_error, snapshot.node_mode) {
            (Some(error), _) => format!("node not answering ({error})"),
            (None, Some("active")) => {
                "node still reads active (finishing its consensus round)".to_string()
            }
            _ => "node standby not confirmed yet".to_string(),
        });
    } else if snapshot.readiness != "ready" {
        waits.push(match &snapshot.readiness_error {
            Some(error) => format!("node unready ({error})"),
            None => "node readiness not known yet".to_string(),
        });
    }
    if !snapshot.etcd_connected {
        waits.push(match &snapshot.etcd_error {
            Some(error) => format!("etcd unreachable ({error})"),
            None => "etcd not connected yet".to_string(),
        });
    }
    (!waits.is_empty()).then(|| format!("waiting: {}", waits.join("; ")))
}

/// A status line must not contain newlines: they separate assignments.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_usec_is_parsed_strictly() {
        assert_eq!(parse_watchdog_usec("1000000"), Ok(Duration::from_secs(1)));
        assert!(parse_watchdog_usec("0").is_err());
        assert!(parse_watchdog_usec("1s").is_err());
        assert!(parse_watchdog_usec("").is_err());
    }

    #[test]
    fn the_restart_bound_must_cover_a_hang() {
        let ms = Duration::from_millis;
        // Defaults of the unit file: WatchdogSec=1s, node timeout 300 ms, restart bound 3 s.
        assert!(check_restart_bound(ms(1000), ms(300), ms(3000)).is_ok());
        let e = check_restart_bound(ms(2500), ms(300), ms(3000)).unwrap_err();
        assert!(e.contains("watchdog_within_restart_bound"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        // Values that work, for each side.
        assert!(
            e.contains("lower WatchdogSec= to 2.1s or less, or raise --restart-bound to 3.4s"),
            "{e}"
        );
        assert!(check_restart_bound(ms(2100), ms(300), ms(3000)).is_ok());
        assert!(check_restart_bound(ms(2500), ms(300), ms(3400)).is_ok());
    }

    #[test]
    fn the_restart_bound_must_cover_a_hang_before_a_stop() {
        let ms = Duration::from_millis;
        // The unit: WatchdogSec=1s, TimeoutStopSec=1s: 0.5 + 1 + 1 + 0.1 + 0.3 = 2.9 <= 3.
        assert!(check_stop_within_restart_bound(ms(1000), ms(1000), ms(300), ms(3000)).is_ok());
        // The old unit's 60 s.
        let e =
            check_stop_within_restart_bound(ms(1000), ms(60_000), ms(300), ms(3000)).unwrap_err();
        assert!(e.contains("stop_within_restart_bound"), "{e}");
        // The fast profile's drop-in: WatchdogSec=600ms, TimeoutStopSec=600ms, node timeout
        // 150 ms, bound 2 s: 0.5 + 0.6 + 0.6 + 0.1 + 0.15 = 1.95.
        assert!(check_stop_within_restart_bound(ms(600), ms(600), ms(150), ms(2000)).is_ok());
    }

    #[test]
    fn pings_stop_when_the_loop_stalls() {
        // A live loop runs every heartbeat; one late heartbeat is no stall.
        assert!(loop_alive(elector::telemetry::LOOP_HEARTBEAT * 2));
        assert!(!loop_alive(LOOP_STALL));
    }

    fn snapshot(role: &'static str) -> Snapshot {
        Snapshot {
            version: "0.1.0",
            role,
            role_reason: "elector started".into(),
            key: "/iotex-server".into(),
            value: "a".into(),
            leader: None,
            candidate_key: None,
            lease_id: None,
            lease_deadline_in_ms: None,
            step_down_deadline_in_ms: None,
            node_mode: None,
            node_mode_read_ms_ago: None,
            node_standby_confirmed: false,
            node_proven_standby: false,
            node_active_commanded: false,
            node_lost: None,
            stuck: None,
            shutting_down: false,
            excluded: false,
            exclusion: None,
            readiness: "unknown",
            election_revision: None,
            candidates: Vec::new(),
            etcd_connected: false,
            etcd_error: None,
            node_error: None,
            readiness_error: None,
            last_transition: None,
            recent_transitions: Vec::new(),
        }
    }

    #[test]
    fn an_excluded_standby_says_who_excluded_it() {
        let mut s = snapshot("standby");
        s.excluded = true;
        s.exclusion = Some(elector::telemetry::ExclusionView {
            by: "ops@host-1".into(),
            since: "2026-11-30T12:00:00Z".into(),
            reason: "upgrade".into(),
        });
        assert_eq!(
            status_line(&s),
            "standby: EXCLUDED by ops@host-1 since 2026-11-30T12:00:00Z: upgrade (elector \
             include a ends it)"
        );
        // A leader handing over because of it shows its role and reason instead.
        s.role = "stepping-down";
        s.role_reason = "demoting: handover (replica excluded)".into();
        assert!(
            status_line(&s).starts_with("stepping-down"),
            "{}",
            status_line(&s)
        );
    }

    #[test]
    fn starting_says_what_it_waits_for() {
        let mut s = snapshot("starting");
        s.node_error = Some("/ha: connection refused".into());
        s.etcd_error = Some("etcd at http://e:2379 unreachable: refused".into());
        assert_eq!(
            status_line(&s),
            "starting: waiting: node not answering (/ha: connection refused); etcd unreachable \
             (etcd at http://e:2379 unreachable: refused)"
        );
        s.node_error = None;
        s.node_mode = Some("active");
        assert!(
            status_line(&s).contains("node still reads active"),
            "{}",
            status_line(&s)
        );
        s.node_mode = Some("standby");
        s.node_standby_confirmed = true;
        s.readiness = "unready";
        s.readiness_error = Some("/readiness answered HTTP 503: \"FAIL\"".into());
        s.etcd_connected = true;
        assert_eq!(
            status_line(&s),
            "starting: waiting: node unready (/readiness answered HTTP 503: \"FAIL\")"
        );
        // Standby with a ready node and etcd unreachable.
        let mut s = snapshot("standby");
        s.node_standby_confirmed = true;
        s.readiness = "ready";
        s.etcd_error = Some("etcd lease grant timed out after 1s\nmore".into());
        assert_eq!(
            status_line(&s),
            "standby: waiting: etcd unreachable (etcd lease grant timed out after 1s more)"
        );
        // Nothing to wait for: the role and its reason.
        s.etcd_connected = true;
        s.role_reason = "withdrawing: node unready".into();
        assert_eq!(status_line(&s), "standby: withdrawing: node unready");
        // Stuck wins; a leader elsewhere is named.
        let mut s = snapshot("candidate");
        s.leader = Some("b".into());
        s.role_reason = "candidate key created at revision 7".into();
        assert_eq!(
            status_line(&s),
            "candidate (leader: b): candidate key created at revision 7"
        );
        s.stuck = Some("node may be active".into());
        assert_eq!(status_line(&s), "STUCK: node may be active");
    }

    #[test]
    fn bad_sockets_are_named() {
        let e = Notifier::new("vsock:2:999").err().unwrap_or_default();
        assert!(e.contains("NOTIFY_SOCKET"), "{e}");
    }

    #[test]
    fn notifications_arrive_as_datagrams() {
        let dir = std::env::temp_dir().join(format!("elector-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).expect("binding a test socket");
        let notifier = Notifier::new(path.to_str().expect("utf-8 path")).expect("notifier");
        notifier.notify("READY=1\nSTATUS=standby").expect("send");
        let mut buffer = [0u8; 256];
        let n = listener.recv(&mut buffer).expect("receive");
        assert_eq!(&buffer[..n], b"READY=1\nSTATUS=standby");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn abstract_sockets_work() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("elector-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("address");
        let listener = UnixDatagram::bind_addr(&addr).expect("binding");
        let notifier = Notifier::new(&format!("@{name}")).expect("notifier");
        notifier.notify("WATCHDOG=1").expect("send");
        let mut buffer = [0u8; 64];
        let n = listener.recv(&mut buffer).expect("receive");
        assert_eq!(&buffer[..n], b"WATCHDOG=1");
    }
}

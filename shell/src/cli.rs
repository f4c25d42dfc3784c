//! Command line. Accepts the Go elector's flags as they were written in the wild and
//! conventional ones: Go's flag package takes `-flag=v`, `--flag=v`, `-flag v` and `--flag v`
//! alike, so every long flag here works with one or two dashes, `iotexAdmin` and
//! `iotexProbe` are aliases of `--iotex-admin` and `--iotex-probe`, and a leading `elector`
//! argument (the Go image's `command: [elector, -etcd=...]`) is skipped. Every flag can also
//! come from an `ELECTOR_*` environment variable. Errors are one line, exit code 2.
//!
//! Every URL is parsed with a real URL parser at start-up ([`etcd_endpoint`], [`node_url`]):
//! an etcd endpoint without a scheme (`127.0.0.1:2379`, as Go's clientv3 takes it) means
//! `http://`; a missing host or port, an unknown scheme, or a path where none belongs is a
//! one-line error naming the flag, not a retry loop.
//!
//! Without a subcommand the elector runs. The operator commands `check`, `status`, `history`,
//! `handover`, `exclude`, `include` and `force-standby` take their flags after the subcommand name (`elector status --etcd
//! URL`), with the same names and environment variables as the running elector, so one
//! environment file serves all.

mod flags;
mod go_spelling;
mod timing_advice;
mod urls;

pub use flags::{
    CheckArgs, ConfirmPoll, ElectionKey, EtcdArgs, EtcdEndpoints, EtcdSecurity, EtcdTimeout,
    ExcludeArgs, FenceArgs, ForceStandbyArgs, HandoverArgs, HistoryArgs, IncludeArgs, LogFormat,
    NodeAdmin, NodeTimeout, PROFILE_FLAGS, Profile, RunArgs, StatusAddr, StatusArgs, SuperviseArgs,
    TTL_WARN_ABOVE, WatchArgs, derive_timing, host_name,
};
pub use go_spelling::{normalize, normalize_args};
pub use timing_advice::{TIMING_FIELDS, TimingValue, explain_timing, flag_of_field, timing_values};
pub use urls::{etcd_endpoint, node_url};

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::collections::BTreeSet;

pub use crate::VERSION;

#[derive(Parser, Debug)]
#[command(
    name = "elector",
    version = VERSION,
    about = "Keeps exactly one IoTeX delegate replica active, using etcd leader election.",
    long_about = "Keeps exactly one IoTeX delegate replica active, using etcd leader election.\n\n\
        Run one elector beside each replica (same host or network namespace: the node's admin \
        port listens on 127.0.0.1). The elector forces its node to standby, campaigns in etcd \
        and activates the node only while it leads, stepping down before its lease can expire. \
        Drop-in for the Go elector: -etcd=, -iotexAdmin=, -iotexProbe=, -key=, -value= work, \
        with one or two dashes, and every flag below also takes one dash (-ttl=3s). An etcd \
        endpoint without a scheme (127.0.0.1:2379) means http://.\n\n\
        Operator commands (flags after the command name; `elector <command> --help`): \
        `elector check` validates the flags, prints the derived timings and reads etcd and \
        the node without changing anything, `elector status` shows the whole replica set and flags what is wrong, `elector handover [--to VALUE]` moves leadership \
        cleanly, `elector force-standby` commands the node standby (systemd ExecStopPost=).",
    after_help = "Safety rules and the timing inequalities: docs/safety.md. \
        Operations: docs/operations.md.",
    args_conflicts_with_subcommands = true,
    subcommand_help_heading = "Operator commands",
    subcommand_value_name = "COMMAND"
)]
pub struct Cli {
    /// An operator command; without one, the elector runs.
    #[command(subcommand)]
    pub command: Option<Operation>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// The operator commands.
#[derive(Subcommand, Debug, Clone)]
pub enum Operation {
    /// Check the flags and what they reach, changing nothing: timings, etcd, the node
    #[command(
        long_about = "Takes the running elector's flags (and ELECTOR_* variables), checks them \
            as the elector would at start-up, and prints the timings derived from them: lease \
            TTL, step-down lead, activation delay, node-lost bound, fence retry interval, the \
            shutdown bound (the longest a SIGTERM takes; systemd's TimeoutStopSec= must be \
            above it) and the expected failover after a crash and after a clean handover.\n\n\
            Then connects to etcd with the given TLS and auth and reads the election \
            (candidates in order with their leases, the leader, a pending handover request, \
            the last handover record), compares the timing of its flags with the one every \
            other registered replica publishes, and reads the node's mode (GET /ha) and its \
            readiness probe. With --node-config, it judges the node's config.yaml for what the \
            HA setup requires: system.active: false, system.httpAdminPort set to \
            --iotex-admin's port, httpStatsPort to --iotex-probe's, a network.masterKey of its \
            own (compared by fingerprint with the other replicas' records, never shown), and \
            with key custody this replica's placeholder as chain.producerPrivKey (shown by \
            address only). It says what it found, one line per check (ok, warn, FAIL), each \
            with what to change.\n\n\
            Read-only: it never writes to etcd and never sends activate=true or \
            activate=false to the node. Every call is bounded; it ends within seconds even \
            when nothing answers.",
        after_help = "Exit codes: 0 every check passed (warnings allowed), 1 a check failed \
            (etcd unreachable, refused or failing; the node's /ha not answering or garbled; the \
            probe not answering; the node active while this replica does not lead; another \
            candidate using this replica's --value; an activation delay too short to follow a \
            replica of another timing; a node configuration that does not fit), 2 bad flags, \
            unsafe timing or an unreadable --node-config."
    )]
    Check(Box<CheckArgs>),
    /// Show the whole replica set: candidates in order, registered replicas, flags for what is wrong
    #[command(
        long_about = "Shows the replica set of the election at --key: every candidate in election \
            order (the first leads), then every registered replica that is not a candidate. \
            Every elector keeps a record at <key>.elector/members/<value> (see \
            --registry-refresh); Go and etcdctl candidates have none. Each record is \
            cross-checked with the candidate keys and, unless --no-live, with its elector's own \
            /status (the URL in the record, asked at once, 1 s at most; only an answer from \
            that very replica counts): a live answer wins over a record, which may be a refresh \
            interval old.\n\n\
            Each row: position (- if not a candidate), value, HOST, ROLE (\"(leads)\" on the \
            leader), NODE (active, standby, or unknown when its elector cannot read it, with \
            the age of the read that said so), READY, EXCLUDED, SEEN (live, or the record and \
            its age), the candidate's lease and TTL left, and FLAGS. Below: each flag's detail \
            (the STUCK reason among them), every exclusion (one of a value no replica has is \
            flagged), a pending handover request, the last clean handover, and the verdict.\n\n\
            Flags needing attention: ACTIVE-NOT-LEADER (node active while not leading: two \
            nodes may sign), DUPLICATE-VALUE and RECORD-MISMATCH (two electors, one --value), \
            UNREGISTERED (a Go or etcdctl candidate), ELECTOR-SILENT (record not rewritten for \
            twice its refresh interval and /status not answering), NODE-UNKNOWN, STUCK, \
            TIMING-MISMATCH (another timing than the leader's; UNSAFE when an activation delay \
            would not cover a predecessor), SHARED-NODE-KEY, NO-LEADER, \
            EXCLUSION-OF-NO-REPLICA, NOT-CAMPAIGNING(reason). Planned maintenance: \
            NOT-CAMPAIGNING(excluded), NOT-CAMPAIGNING(elector stopped). docs/operations.md \
            (\"Day two\") says what to do about each.\n\n\
            --json prints one object (schema in docs/operations.md); --watch shows it again \
            every interval (one JSON object per line with --json). Reads etcd and the \
            electors' /status only; works beside running electors, Go electors and etcdctl \
            candidates.",
        after_help = "Exit codes: 0 healthy (no flag), 4 planned maintenance (only excluded \
            replicas or electors stopped cleanly are flagged), 1 needs attention (any other \
            flag), 2 bad flags, 3 etcd could not be read (unreachable, timed out or refused: \
            nothing is known). With --watch, the last report's."
    )]
    Status(StatusArgs),
    /// The role changes and handovers of the replica set, from etcd's history of its keys
    #[command(
        long_about = "Reads back, from etcd's own history of the election's keys (every revision \
            since etcd last compacted; one watch, reads only), what the electors wrote: who led \
            from which revision on, and whether each change of leader was a clean handover \
            (the old leader's handover record in the same revision) or not (a crash, a lost \
            lease, a Go or etcdctl leader); every role change of every elector with its time \
            and reason (each registry record carries its last eight); handover requests; \
            exclusions and inclusions with who, when and why; electors registering and their \
            records expiring. Like patronictl history.\n\n\
            What etcd compacted is gone (etcd compacts only when configured to: \
            --auto-compaction-retention, or etcdctl compact): the first line says from which \
            revision on the history is known. Changes of leader and handovers have revisions, \
            not times; role changes and exclusions have both.",
        after_help = "Exit codes: 0 shown, 1 etcd could not be read, 2 bad flags."
    )]
    History(HistoryArgs),
    /// Ask the leader to hand over cleanly, and wait until it did
    #[command(
        long_about = "Asks the current leader to hand over: it commands its node standby, waits \
            until a read confirms standby, then in one etcd transaction writes a handover record \
            and deletes its key, so the next leader activates its node at once, without the \
            activation delay and without overlap. With --to, candidates ahead of the named one \
            step aside first. Candidates are only replicas whose node is ready (an unready \
            replica withdraws), so a candidate in line is a ready standby.\n\n\
            Refuses at once when no other candidate exists or the named one is not a \
            candidate. A Go elector or etcdctl candidate ignores handover requests: a leader \
            without an elector registry record (or, with --to, such a candidate ahead of the \
            target) is refused at once, naming it. The successor (--to, or the next in line) \
            must have a record too, unless --force: a Go elector activates its node at once, \
            without waiting out its predecessor's last slot, and an etcdctl candidate has no \
            node (nothing would sign).\n\n\
            Succeeds when etcd shows the old leader's key gone, a handover record naming it, \
            and the new leader first (the named one, if any), and then returns once both \
            registry records say so (10 s at most), so that `elector status` right after shows \
            the new roles. Otherwise fails with the reason after --timeout and withdraws the \
            request.",
        after_help = "Exit codes: 0 handed over (or the named replica leads already), 1 refused, \
            failed or timed out (the request is withdrawn), 2 bad flags."
    )]
    Handover(HandoverArgs),
    /// Take a replica out of the election for maintenance; a leader hands over cleanly first
    #[command(long_about = EXCLUDE_ABOUT, after_help = EXCLUDE_EXIT_CODES)]
    Exclude(ExcludeArgs),
    /// Let an excluded replica campaign again
    #[command(
        long_about = "Deletes the exclusion `elector exclude` stored for VALUE (<key>.elector/excluded/VALUE). Its elector sees it within a moment and campaigns again once its node is confirmed standby and ready. Including a replica that is not excluded does nothing and succeeds.",
        after_help = "Exit codes: 0 included (or was not excluded), 1 etcd unreachable or failed, 2 bad flags or a bad VALUE."
    )]
    Include(IncludeArgs),
    /// Command the node standby and confirm it by a read (for systemd ExecStopPost=)
    #[command(
        long_about = "Sends /ha?activate=false to the node at once, then reads /ha until it \
            says {\"active\":false}, re-sending the command on failures, all within --timeout. \
            Meant for systemd's ExecStopPost=, so that the node is standby whenever the elector \
            exits, for whatever reason (crash, kill -9, watchdog). If standby is not confirmed \
            in time and --fence-cmd is set, the fence command runs.\n\n\
            Not a way to move leadership: a running leader's elector activates its node again at \
            its next check. Use `elector handover` for that.",
        after_help = "Exit codes: 0 standby confirmed, 1 not confirmed in time (fence run if \
            configured), 2 bad flags."
    )]
    ForceStandby(ForceStandbyArgs),
    /// Run the elector as a child; on its death or stall command the node standby, restart it
    #[command(long_about = SUPERVISE_ABOUT, after_help = SUPERVISE_EXIT_CODES)]
    Supervise(Box<SuperviseArgs>),
    /// The watcher process a bare-run elector keeps beside itself (started by the elector)
    #[command(hide = true)]
    Watch(Box<WatchArgs>),
}

/// `elector exclude --help`: what an exclusion does, and how the command waits.
const EXCLUDE_ABOUT: &str = "Stores an exclusion for VALUE in etcd at \
    <key>.elector/excluded/VALUE (JSON: by user@host, at an RFC 3339 time, --reason; no lease, so it stays until `elector include VALUE`). Every \
    elector reads its own exclusion with the election (Patroni's nofailover, settable at run \
    time): an excluded replica does not campaign; a standby withdraws its candidate key; a \
    leader hands over cleanly first, exactly as for `elector handover` (node commanded \
    standby, confirmed standby, handover record written with the deletion of its key), so the \
    next in line activates without the activation delay. A leader whose node cannot be proven \
    standby keeps the lead and reports itself STUCK (see its log and /status) rather than risk \
    two active nodes.\n\n\
    Excluding the only candidate leaves nobody leading: the command says so with a warning. \
    Excluding a replica that is excluded already keeps the first exclusion (its time and \
    reason) and succeeds. A VALUE no replica has (no registry record, no candidate key: a \
    typo) is refused, naming the closest value, unless --force.\n\n\
    Unless --no-wait, waits (up to --timeout) until VALUE has no candidate key left, then \
    until the registry records say so (its own excluded, a new leader's leading; 10 s at \
    most), so that `elector status` right after shows the new roles, and says who leads now. \
    On timeout or Ctrl-C the exclusion stays; `elector include VALUE` undoes it.";

/// `elector exclude --help`: what its exit status means.
const EXCLUDE_EXIT_CODES: &str = "Exit codes: 0 excluded, and VALUE has left the election \
    (a leader with a handover record) or was no candidate (or --no-wait), 1 refused (no replica has VALUE, without --force), \
    etcd unreachable or failed, VALUE still a candidate after --timeout or on Ctrl-C, or a \
    leader that left without a handover record (the exclusion stays in every case but the \
    refusal), 2 bad flags or a bad VALUE.";

/// `elector supervise --help`: what the supervisor is for and what it does on each event.
const SUPERVISE_ABOUT: &str = "A small parent process for containers and hosts without \
    systemd: runs the elector (this binary, with the arguments after --, and the same ELECTOR_* \
    variables) as its child and takes the part of systemd's unit (Restart=, WatchdogSec=, \
    ExecStopPost=elector force-standby).\n\n\
    When the child exits for any reason other than a stop asked for here (a crash, kill -9, the \
    OOM killer), the node is commanded standby at once, exactly as `elector force-standby` does \
    with the child's --iotex-admin, --node-timeout, --fence-cmd, --value, --state-dir and etcd \
    flags, and the child is restarted after a pause that doubles from 0.5 s to 30 s and starts \
    over after a run of a minute. The child pings a watchdog (the systemd notify protocol: \
    NOTIFY_SOCKET and WATCHDOG_USEC are set for it); a child that misses its pings for \
    --watchdog is killed (SIGKILL) and handled as dead. Death is seen at once, so the node is \
    commanded standby within --node-timeout of it; a hang within 0.5 s (loop stall) + \
    --watchdog + 0.1 s + --node-timeout. The child checks that sum against --restart-bound at start-up, \
    as under systemd.\n\n\
    SIGTERM and SIGINT are passed on to the child, which hands over cleanly; the supervisor \
    waits 10 s for it, longer while the child asks for more time (EXTEND_TIMEOUT_USEC), and \
    exits with the child's status. A child that exits 2 (bad flags or configuration) is not \
    restarted: the supervisor exits 2. An operator command after -- (status, handover, ...) \
    runs unsupervised.\n\n\
    Under systemd, run the elector directly with deploy/systemd/elector.service instead: the \
    supervisor does not relay its child's notifications to systemd (it replaces NOTIFY_SOCKET \
    and WATCHDOG_USEC with its own).";

/// `elector supervise --help`: what its exit status means.
const SUPERVISE_EXIT_CODES: &str = "Exit codes: 0 the child handed over cleanly after SIGTERM or \
    SIGINT, 1 the child was stopped but its node had to be forced standby (the node's state is \
    in the log), 2 bad flags of the supervisor or the child; otherwise the child's own status.";

impl Operation {
    /// Checks what clap cannot; normalizes the etcd endpoints.
    pub fn validate(&mut self) -> Result<(), String> {
        match self {
            Operation::Check(args) => one_line_of(args.run.problems()),
            Operation::Status(args) => args.validate(),
            Operation::History(args) => args.etcd.validate(),
            Operation::Handover(args) => args.validate(),
            Operation::Exclude(args) => args.validate(),
            Operation::Include(args) => args.validate(),
            Operation::ForceStandby(args) => args.validate(),
            Operation::Supervise(args) => {
                if args.standby_timeout.is_zero() {
                    return Err("--standby-timeout: must be greater than 0".into());
                }
                if args.watchdog.is_some_and(|w| w.is_zero()) {
                    return Err("--watchdog: must be greater than 0".into());
                }
                Ok(())
            }
            Operation::Watch(args) => {
                if args.watchdog.is_zero() {
                    return Err("--watchdog: must be greater than 0".into());
                }
                Ok(())
            }
        }
    }
}

/// The outcome of parsing: run, or print something and exit.
pub enum Parsed {
    Run(Box<Cli>),
    /// `--help` or `--version`: print to stdout, exit 0.
    Info(String),
    /// A bad flag: one line for stderr, exit 2.
    Error(String),
}

/// Parses the command line (Go spellings normalized, see [`normalize`]) and checks it; etcd
/// endpoints come out normalized (`scheme://host:port`), and the timing flags not given take
/// `--profile`'s values. Every problem found is reported at once, in one line: the Go
/// spellings that cannot work, then clap's refusal or every flag that does not check out
/// (URLs, the key, the timing), so that a migration needs one run, not one per mistake.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Parsed {
    let (args, mut problems) = normalize(args);
    let matches = match Cli::command().try_get_matches_from(args) {
        Ok(matches) => matches,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            return Parsed::Info(e.to_string());
        }
        Err(e) => {
            problems.push(one_line(&e));
            return Parsed::Error(join_problems(problems));
        }
    };
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => {
            problems.push(one_line(&e));
            return Parsed::Error(join_problems(problems));
        }
    };
    let checked = match &mut cli.command {
        // The running elector's flags (and variables) do not concern an operator command:
        // only its own are checked.
        Some(operation) => {
            if let Operation::Check(args) = operation
                && let Some(sub) = matches.subcommand_matches("check")
            {
                args.run.apply_profile(explicit(sub));
            }
            if let Operation::ForceStandby(args) = operation
                && let Some(sub) = matches.subcommand_matches("force-standby")
            {
                args.apply_profile(&explicit(sub));
            }
            operation.validate()
        }
        None => {
            cli.run.apply_profile(explicit(&matches));
            one_line_of(cli.run.problems())
        }
    };
    if let Err(line) = checked {
        problems.push(line);
    }
    if problems.is_empty() {
        Parsed::Run(Box::new(cli))
    } else {
        Parsed::Error(join_problems(problems))
    }
}

/// The ids of the arguments given on the command line or as `ELECTOR_*` variables.
fn explicit(matches: &ArgMatches) -> BTreeSet<String> {
    matches
        .ids()
        .filter(|id| {
            matches!(
                matches.value_source(id.as_str()),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
        .map(|id| id.as_str().to_owned())
        .collect()
}

/// Problems as one result: none is `Ok`, else one line.
fn one_line_of(problems: Vec<String>) -> Result<(), String> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(join_problems(problems))
    }
}

/// One line for one problem or several: `2 problems: (1) ... (2) ...`.
fn join_problems(problems: Vec<String>) -> String {
    match problems.len() {
        0 => "bad arguments (see --help)".to_owned(),
        1 => problems.into_iter().next().unwrap_or_default(),
        n => {
            let numbered: Vec<String> = problems
                .iter()
                .enumerate()
                .map(|(i, p)| format!("({}) {p}", i + 1))
                .collect();
            format!("{n} problems: {}", numbered.join(" "))
        }
    }
}

/// The log format a command line asks for, read without parsing it, for the one-line error
/// of a command line that does not parse: `--log-format json` (any spelling the parser takes:
/// one or two dashes, `=` or a space), else `env` (`ELECTOR_LOG_FORMAT`); human otherwise,
/// and for anything else.
pub fn requested_log_format(args: &[String], env: Option<&str>) -> LogFormat {
    let mut asked: Option<&str> = None;
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            continue;
        };
        if let Some(value) = body.strip_prefix("log-format=") {
            asked = Some(value);
        } else if body == "log-format" {
            asked = rest.next().map(String::as_str);
        }
    }
    match asked.or(env) {
        Some(format) if format.eq_ignore_ascii_case("json") => LogFormat::Json,
        _ => LogFormat::Human,
    }
}

/// clap's error, as one line: its message without the usage block and tips.
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let message: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.trim_start().starts_with("tip:"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let line = message.join(" ");
    let line = line.trim_start_matches("error: ");
    if line.is_empty() {
        "bad arguments (see --help)".to_string()
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests;

//! `elector`: keeps exactly one IoTeX delegate replica active. See `elector --help`.
//!
//! Parses the command line, dispatches to the elector ([`commands::run`]), an operator
//! command ([`commands`], one file each) or the supervisor ([`commands::supervise`]), and turns
//! the outcome into the exit code. Under systemd (`Type=notify`) the elector reports
//! readiness, role changes and watchdog pings ([`systemd`]).

mod commands;
mod systemd;

use commands::{EXIT_FAILED, EXIT_USAGE};
use elector::cli::{self, LogFormat, Operation, Parsed};
use elector::logging;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let cli = match cli::parse(args.iter().cloned()) {
        Parsed::Run(cli) => cli,
        Parsed::Info(text) => {
            elector::out!("{text}");
            return ExitCode::SUCCESS;
        }
        Parsed::Error(line) => {
            let env = std::env::var("ELECTOR_LOG_FORMAT").ok();
            let format = cli::requested_log_format(&args, env.as_deref());
            logging::fatal(format, &line, EXIT_USAGE);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match cli.command {
        Some(operation) => ExitCode::from(run_operation(operation)),
        None => run_elector(cli.run),
    }
}

/// Runs the elector; its exit code comes from the driver, 2 for a configuration problem.
fn run_elector(args: cli::RunArgs) -> ExitCode {
    let format = args.log_format;
    logging::init(format, "info", Some(&args.value()));
    // Two workers: the driver's loop never waits behind the status server or a slow call.
    let Some(runtime) = runtime(tokio::runtime::Builder::new_multi_thread().worker_threads(2))
    else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(commands::run::run(args)) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(line) => {
            logging::fatal(format, &line, EXIT_USAGE);
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Runs an operator command; returns its exit code (0 success, 1 failure).
fn run_operation(operation: Operation) -> u8 {
    // Operator commands print their results; the log only carries warnings and errors. The
    // supervisor logs its events as the elector it runs does (it sets its log up itself).
    if !matches!(operation, Operation::Supervise(_) | Operation::Watch(_)) {
        logging::init(LogFormat::Human, "warn", None);
    }
    let Some(runtime) = runtime(&mut tokio::runtime::Builder::new_current_thread()) else {
        return EXIT_FAILED;
    };
    runtime.block_on(async move {
        match operation {
            Operation::Check(args) => exit_code(commands::check::run(args).await),
            Operation::Status(args) => exit_code(commands::status::run(args).await),
            Operation::History(args) => exit_code(commands::history::run(args).await),
            Operation::Handover(args) => exit_code(commands::handover::run(args).await),
            Operation::Exclude(args) => exit_code(commands::exclude::run(args).await),
            Operation::Include(args) => exit_code(commands::include::run(args).await),
            Operation::ForceStandby(args) => exit_code(commands::force_standby::run(args).await),
            Operation::Supervise(args) => commands::supervise::supervise(*args).await,
            Operation::Watch(args) => commands::watcher::watch(*args).await,
        }
    })
}

/// An operator command's exit code; its failure said on stderr as one line.
fn exit_code(outcome: commands::Outcome) -> u8 {
    outcome.unwrap_or_else(|failure| {
        elector::errln!("elector: {}", failure.line);
        failure.code
    })
}

/// The tokio runtime `builder` describes, with timers and I/O; `None` (said on stderr) if the
/// system refuses it.
fn runtime(builder: &mut tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    match builder.enable_all().build() {
        Ok(runtime) => Some(runtime),
        Err(e) => {
            elector::errln!("elector: cannot start the runtime: {e}");
            None
        }
    }
}

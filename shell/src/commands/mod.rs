//! The operator commands, one file each: [`check`], [`status`], [`history`], [`handover`],
//! [`exclude`], [`include`], [`force_standby`]; [`run`], the elector itself (no subcommand);
//! [`supervise`], the parent that runs the elector as its child where no systemd unit can; and
//! [`watcher`] (`elector watch`, started by a bare run itself), the small process that commands
//! the node standby when a bare-run elector dies or hangs. Beside them, `records`: waiting for
//! the registry records a command changed.
//!
//! The operator commands read and write the election through the same adapter as the running
//! elector ([`Election`]), and reach the node through the same `NodeClient`. Every etcd call
//! and node call is bounded; every wait has a deadline. Each is `run(args) -> Outcome`:
//! results go to stdout, and a failure comes back as one line ([`Failure`]) that `main.rs`
//! prints on stderr and turns into the exit code (0 success, [`EXIT_FAILED`]; 2 is for bad
//! flags).

pub mod check;
pub mod exclude;
pub mod force_standby;
pub mod handover;
pub mod history;
pub mod include;
mod records;
pub mod run;
pub mod status;
pub mod supervise;
pub mod watcher;

use elector::cli::EtcdArgs;
use elector::etcd::{self, Election};
use etcd_client::Client;

/// Exit code of a failed command: an operator command that did not do what it was asked, a
/// node that could not be confirmed standby, a child that had to be killed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code for bad flags or configuration, as clap and the Go flag package use.
pub const EXIT_USAGE: u8 = 2;

/// What an operator command ends with: its exit code once its result is printed, or a failure.
pub type Outcome = Result<u8, Failure>;

/// An operator command's failure: one line for stderr, and its exit code.
#[derive(Debug)]
pub struct Failure {
    pub line: String,
    pub code: u8,
}

/// A failure line exits [`EXIT_FAILED`], so that `?` works on `Result<_, String>`.
impl From<String> for Failure {
    fn from(line: String) -> Failure {
        Failure {
            line,
            code: EXIT_FAILED,
        }
    }
}

/// A connection to the election, for an operator command.
pub(crate) struct Connection {
    pub(crate) client: Client,
    /// The election, through the adapter's bounded calls (every call the commands make).
    pub(crate) election: Election,
    /// What the member that answered the connection's status call said it runs.
    pub(crate) server_version: String,
}

/// Connects to etcd with the operator command's flags.
pub(crate) async fn connect(args: &EtcdArgs) -> Result<Connection, String> {
    let options = args.options()?;
    let (client, server_version) = etcd::connect_reporting_version(&options)
        .await
        .map_err(|e| e.to_string())?;
    let election = Election::new(
        client.clone(),
        args.key().to_string(),
        String::new(),
        options.request_timeout,
    );
    Ok(Connection {
        client,
        election,
        server_version,
    })
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! The election as the commands' tests build it.
    use elector_core::{Candidate, CandidateId, Observation};

    pub(crate) fn candidate(lease: i64, revision: i64, value: &str) -> Candidate {
        Candidate {
            id: CandidateId {
                lease,
                create_revision: revision,
            },
            value: value.to_string(),
        }
    }

    pub(crate) fn observation(candidates: Vec<Candidate>) -> Observation {
        Observation {
            revision: 100,
            candidates,
            handover_record: None,
            handover_request: None,
            excluded: None,
        }
    }
}

//! Operator commands (`elector exclude`, `elector include`, ...) run as the real binary, for
//! the tests: bounded, with none of the test environment's `ELECTOR_*` variables.

use crate::host::{elector_binary, elector_command};
use std::time::Duration;

/// What one run of an operator command did.
#[derive(Debug)]
pub struct CommandRun {
    /// The exit code; `None` if a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CommandRun {
    /// Panics, with the whole run, unless it exited with `code`.
    pub fn assert_code(&self, code: i32, what: &str) -> &Self {
        assert_eq!(self.code, Some(code), "{what}: {self:#?}");
        self
    }
}

/// Runs `elector <args>`; panics if it does not finish within `bound` (it is killed then).
pub async fn run_elector_command(args: &[&str], bound: Duration) -> CommandRun {
    let binary = elector_binary().expect("the elector binary");
    let mut command = tokio::process::Command::from(elector_command(&binary));
    command.args(args).kill_on_drop(true);
    let output = tokio::time::timeout(bound, command.output())
        .await
        .unwrap_or_else(|_| panic!("elector {args:?} did not finish within {bound:?}"))
        .unwrap_or_else(|e| panic!("running elector {args:?}: {e}"));
    CommandRun {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

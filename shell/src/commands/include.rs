//! `elector include`: lifts an exclusion, so the replica campaigns again.

use super::{connect, fail};
use elector::cli::IncludeArgs;

/// Runs `elector include`; returns the exit code.
pub async fn include(args: IncludeArgs) -> u8 {
    let connection = match connect(&args.etcd).await {
        Ok(connection) => connection,
        Err(line) => return fail(&line),
    };
    match connection.election.include(&args.value).await {
        Ok(true) => {
            elector::outln!(
                "{} included: its elector campaigns again once its node is confirmed standby and \
                 ready",
                args.value
            );
            0
        }
        Ok(false) => {
            elector::outln!("{} was not excluded; nothing to do", args.value);
            0
        }
        Err(e) => fail(&format!("include failed: {e}")),
    }
}

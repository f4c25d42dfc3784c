//! `elector include`: lifts an exclusion, so the replica campaigns again.

use super::{Outcome, connect};
use elector::cli::IncludeArgs;

/// Runs `elector include`.
pub async fn run(args: IncludeArgs) -> Outcome {
    let connection = connect(&args.etcd).await?;
    match connection.election.include(&args.value).await {
        Ok(true) => {
            elector::outln!(
                "{} included: its elector campaigns again once its node is confirmed standby and \
                 ready",
                args.value
            );
            Ok(0)
        }
        Ok(false) => {
            elector::outln!("{} was not excluded; nothing to do", args.value);
            Ok(0)
        }
        Err(e) => Err(format!("include failed: {e}").into()),
    }
}

//! The operator's fence action (`--fence-cmd`): the one runner both the elector's driver and
//! `elector force-standby` use, so that a fence command is started, bounded and reported the
//! same way wherever standby could not be confirmed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// What the fence action does.
pub type FenceFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// The operator's fence action, run when standby cannot be confirmed in time.
#[derive(Clone)]
pub enum Fence {
    /// No fence configured: the event is logged as an error and counted.
    None,
    /// A shell command (`--fence-cmd`), run with `sh -c`, killed after the timeout. The reason
    /// is passed in `ELECTOR_FENCE_REASON`.
    Command { command: String, timeout: Duration },
    /// A function (the simulation's model of a fence).
    Custom(Arc<dyn Fn(String) -> FenceFuture + Send + Sync>),
}

impl Fence {
    /// `--fence-cmd` and `--fence-timeout` as a fence: none without a command.
    pub fn from_flags(command: Option<&str>, timeout: Duration) -> Fence {
        match command {
            Some(command) => Fence::Command {
                command: command.to_string(),
                timeout,
            },
            None => Fence::None,
        }
    }

    /// Runs the fence for `reason`: `Ok` with what happened when it says the node is stopped,
    /// `Err` with why not (no fence configured, the command failed or timed out).
    pub async fn run(&self, reason: String) -> Result<String, String> {
        match self {
            Fence::None => Err(format!(
                "no --fence-cmd configured; fence needed because {reason}"
            )),
            Fence::Custom(f) => f(reason).await,
            Fence::Command { command, timeout } => run_command(command, &reason, *timeout).await,
        }
    }
}

/// Runs `command` with `sh -c` and the reason in `ELECTOR_FENCE_REASON`; kills it after
/// `bound`. Success is exit status 0 alone: anything else may leave the node active.
async fn run_command(command: &str, reason: &str, bound: Duration) -> Result<String, String> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("ELECTOR_FENCE_REASON", reason)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start fence command {command:?}: {e}"))?;
    match tokio::time::timeout(bound, child.wait()).await {
        Ok(Ok(exit)) if exit.success() => Ok(format!("fence command {command:?} succeeded")),
        Ok(Ok(exit)) => Err(format!("fence command {command:?} failed: {exit}")),
        Ok(Err(e)) => Err(format!("fence command {command:?}: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            Err(format!(
                "fence command {command:?} did not finish within {} and was killed",
                humantime::format_duration(bound)
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_command_outcome_is_its_exit_status() {
        let fence = |command: &str| Fence::from_flags(Some(command), Duration::from_secs(5));
        let ok = fence("test \"$ELECTOR_FENCE_REASON\" = why")
            .run("why".into())
            .await;
        assert!(ok.is_ok_and(|detail| detail.contains("succeeded")));
        let failed = fence("exit 3").run("why".into()).await.unwrap_err();
        assert!(failed.contains("failed"), "{failed}");
        let none = Fence::from_flags(None, Duration::from_secs(5));
        let refused = none.run("the lease ran out".into()).await.unwrap_err();
        assert!(refused.contains("no --fence-cmd configured"), "{refused}");
        assert!(refused.contains("the lease ran out"), "{refused}");
    }

    #[tokio::test]
    async fn a_hung_command_is_killed_at_its_bound() {
        let fence = Fence::from_flags(Some("sleep 30"), Duration::from_millis(100));
        let started = std::time::Instant::now();
        let killed = fence.run("why".into()).await.unwrap_err();
        assert!(killed.contains("was killed"), "{killed}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

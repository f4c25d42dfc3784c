//! Commands run inside containers: [`exec`] to completion, and [`TtyExec`], an interactive
//! process on a terminal (for `etcdctl` sessions the tests keep open).

use super::{EXEC_TIMEOUT, bounded};
use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use std::time::{Duration, Instant};
use testcontainers::bollard::Docker;
use testcontainers::bollard::container::LogOutput;
use testcontainers::bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// What a finished `exec` printed and how it ended.
#[derive(Clone, Debug)]
pub struct ExecOutput {
    pub exit_code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// Runs `cmd` inside `container` to completion, bounded by [`EXEC_TIMEOUT`] (give the command
/// its own shorter timeouts: a command still running at the bound is left to die with the
/// container).
pub async fn exec(docker: &Docker, container: &str, cmd: &[String]) -> Result<ExecOutput> {
    let run = async {
        let created = docker
            .create_exec(
                container,
                CreateExecOptions::<String> {
                    cmd: Some(cmd.to_vec()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await?;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        if let StartExecResults::Attached { mut output, .. } = docker
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: None,
                }),
            )
            .await?
        {
            while let Some(chunk) = output.next().await {
                match chunk? {
                    LogOutput::StdOut { message } => stdout.extend_from_slice(&message),
                    LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                    LogOutput::Console { message } => stdout.extend_from_slice(&message),
                    LogOutput::StdIn { .. } => {}
                }
            }
        }
        let inspect = docker.inspect_exec(&created.id).await?;
        Ok::<_, anyhow::Error>(ExecOutput {
            exit_code: inspect.exit_code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    };
    match tokio::time::timeout(EXEC_TIMEOUT, run).await {
        Ok(result) => result.with_context(|| format!("exec {cmd:?} in {container}")),
        Err(_) => bail!("exec {cmd:?} in {container} did not finish within {EXEC_TIMEOUT:?}"),
    }
}

/// A long-running command inside a container with a terminal (`docker exec -it`), so that it
/// can be interrupted as Ctrl-C does: [`TtyExec::interrupt`] types `^C` and the terminal
/// sends SIGINT to it. Images without a shell or `kill` need this to signal an exec'd process.
/// Output lines arrive as they are printed. A process still running when this is dropped
/// dies with its container.
pub struct TtyExec {
    docker: Docker,
    exec_id: String,
    input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    lines: mpsc::UnboundedReceiver<String>,
    reader: tokio::task::JoinHandle<()>,
    what: String,
}

impl TtyExec {
    pub async fn start(docker: &Docker, container: &str, cmd: &[String]) -> Result<TtyExec> {
        let what = format!("{cmd:?} in {container}");
        let created = bounded(docker.create_exec(
            container,
            CreateExecOptions::<String> {
                cmd: Some(cmd.to_vec()),
                attach_stdin: Some(true),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                tty: Some(true),
                ..Default::default()
            },
        ))
        .await
        .with_context(|| format!("creating exec {what}"))?;
        let started = bounded(docker.start_exec(
            &created.id,
            Some(StartExecOptions {
                detach: false,
                tty: true,
                output_capacity: None,
            }),
        ))
        .await
        .with_context(|| format!("starting exec {what}"))?;
        let StartExecResults::Attached { mut output, input } = started else {
            bail!("exec {what} started detached");
        };
        let (tx, lines) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            let mut pending = String::new();
            while let Some(Ok(chunk)) = output.next().await {
                pending.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
                while let Some(end) = pending.find('\n') {
                    let line = pending[..end].trim_end_matches('\r').to_owned();
                    pending.drain(..=end);
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(TtyExec {
            docker: docker.clone(),
            exec_id: created.id,
            input,
            lines,
            reader,
            what,
        })
    }

    /// The next output line, waiting at most `within`.
    pub async fn next_line(&mut self, within: Duration) -> Result<String> {
        match tokio::time::timeout(within, self.lines.recv()).await {
            Ok(Some(line)) => Ok(line),
            Ok(None) => bail!("{} ended its output", self.what),
            Err(_) => bail!("{} printed no line within {within:?}", self.what),
        }
    }

    /// Whether no line was printed during `period`.
    pub async fn silent_for(&mut self, period: Duration) -> bool {
        tokio::time::timeout(period, self.lines.recv())
            .await
            .is_err()
    }

    /// Whether the process still runs.
    pub async fn running(&self) -> Result<bool> {
        let inspect = bounded(self.docker.inspect_exec(&self.exec_id)).await?;
        Ok(inspect.running.unwrap_or(false))
    }

    /// Types Ctrl-C (the terminal sends SIGINT) and waits, bounded, until the process exited;
    /// returns its exit code.
    pub async fn interrupt(&mut self, within: Duration) -> Result<Option<i64>> {
        self.input
            .write_all(&[0x03])
            .await
            .with_context(|| format!("typing ^C to {}", self.what))?;
        self.input.flush().await?;
        let deadline = Instant::now() + within;
        loop {
            let inspect = bounded(self.docker.inspect_exec(&self.exec_id)).await?;
            if inspect.running == Some(false) {
                return Ok(inspect.exit_code);
            }
            if Instant::now() > deadline {
                bail!("{} still runs {within:?} after ^C", self.what);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for TtyExec {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

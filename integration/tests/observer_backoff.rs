//! The observer's backoff ends as soon as etcd answers any other call: a real etcd is stopped
//! until the observer's pause has grown long, started again, and a grant through the same
//! election brings the observer back at once instead of when its pause ends (a new leader
//! would otherwise see its own key late).

use anyhow::{Result, bail};
use elector::etcd::{Election, EtcdOptions, connect};
use elector_core::Input;
use elector_integration::etcd_process::EtcdProcess;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

const KEY: &str = "/observer-backoff";
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// Failed rounds before etcd comes back: the pause after the last is 200 ms × 2^6 = 12.8 s.
const FAILED_ROUNDS: usize = 7;
const PAUSE_AFTER_LAST_FAILURE: Duration = Duration::from_millis(12_800);
/// How soon after the grant the observer must report: its first backoff, one read, slack.
const BACK_WITHIN: Duration = Duration::from_secs(2);

async fn next(inputs: &mut mpsc::Receiver<Input>, within: Duration) -> Result<Input> {
    match tokio::time::timeout(within, inputs.recv()).await {
        Ok(Some(input)) => Ok(input),
        Ok(None) => bail!("the observer stopped"),
        Err(_) => bail!("the observer reported nothing within {within:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_answered_call_ends_the_observers_backoff() -> Result<()> {
    let mut etcd = tokio::task::spawn_blocking(EtcdProcess::start_new).await??;
    let mut options = EtcdOptions::new(vec![etcd.endpoint()]);
    options.request_timeout = REQUEST_TIMEOUT;
    let client = connect(&options).await?;
    // A cap far above the pauses reached here, so only the reset can end the last one early.
    let election = Election::new(client, KEY.to_owned(), "us".to_owned(), REQUEST_TIMEOUT)
        .with_retry_max(Duration::from_secs(60));
    let (tx, mut inputs) = mpsc::channel(64);
    let observer = {
        let election = election.clone();
        tokio::spawn(async move { election.observe(tx).await })
    };
    assert!(matches!(
        next(&mut inputs, Duration::from_secs(10)).await?,
        Input::Observed(_)
    ));

    etcd = tokio::task::spawn_blocking(move || etcd.stop().map(|()| etcd)).await??;
    let mut failed = 0;
    let mut last_failure = Instant::now();
    while failed < FAILED_ROUNDS {
        match next(&mut inputs, Duration::from_secs(30)).await? {
            Input::ObserveFailed { .. } => {
                failed += 1;
                last_failure = Instant::now();
            }
            other => bail!("while etcd is down: {other:?}"),
        }
    }

    etcd = tokio::task::spawn_blocking(move || etcd.start().map(|()| etcd)).await??;
    let mut answered = None;
    for _attempt in 0..20 {
        if election.grant(Duration::from_secs(10)).await.is_ok() {
            answered = Some(Instant::now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let Some(answered) = answered else {
        bail!("etcd did not answer a grant after it was started again");
    };
    let mut back = None;
    // A round that failed just before etcd answered may still be reported first.
    for _input in 0..FAILED_ROUNDS {
        match next(&mut inputs, BACK_WITHIN).await? {
            Input::Observed(_) => {
                back = Some(Instant::now());
                break;
            }
            Input::ObserveFailed { .. } => {}
            other => bail!("after etcd came back: {other:?}"),
        }
    }
    let Some(back) = back else {
        bail!("the observer kept failing after etcd answered");
    };
    println!(
        "observer back {} ms after the grant was answered; its pause would have ended {} ms after it",
        (back - answered).as_millis(),
        (last_failure + PAUSE_AFTER_LAST_FAILURE)
            .saturating_duration_since(answered)
            .as_millis()
    );
    assert!(
        back < last_failure + PAUSE_AFTER_LAST_FAILURE,
        "the observer waited out its pause"
    );
    observer.abort();
    drop(etcd);
    Ok(())
}

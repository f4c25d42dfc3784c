//! Failure logging without floods: an etcd or node call that keeps failing the same way is
//! logged once, then again only every [`LOG_REPEAT_EVERY`], while the core still sees every
//! failure.

use elector_core::Input;
use std::collections::HashMap;
use std::time::Duration;
use tracing::warn;

/// A repeated failure of the same kind and reason is logged at most this often.
const LOG_REPEAT_EVERY: Duration = Duration::from_secs(10);

/// The last failure logged of each kind, and when.
#[derive(Default)]
pub(crate) struct LogThrottle {
    last: HashMap<&'static str, (String, tokio::time::Instant)>,
}

impl LogThrottle {
    /// Logs `input` if it reports a failure not logged within [`LOG_REPEAT_EVERY`].
    pub(crate) fn failure(&mut self, input: &Input) {
        let (kind, reason) = match input {
            Input::LeaseGrantFailed { reason } => ("etcd lease grant", reason),
            Input::KeepAliveFailed { reason, .. } => ("etcd keep-alive", reason),
            Input::CandidateCreateFailed { reason, .. } => ("etcd candidate key", reason),
            Input::ObserveFailed { reason } => ("etcd watch", reason),
            Input::ResignFailed { reason, .. } => ("etcd resign", reason),
            Input::NodeCallFailed { reason, .. } => ("node admin call", reason),
            Input::Probed {
                ready: false,
                detail,
            } => ("node readiness", detail),
            _ => return,
        };
        let now = tokio::time::Instant::now();
        let repeat = self
            .last
            .get(kind)
            .is_some_and(|(last, at)| last == reason && now < *at + LOG_REPEAT_EVERY);
        if !repeat {
            // `kind` is for collectors; the human line says it in the message.
            warn!(kind, %reason, "{kind} failed");
            self.last.insert(kind, (reason.clone(), now));
        }
    }
}

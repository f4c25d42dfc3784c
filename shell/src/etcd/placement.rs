//! The start-up check that `--key` does not nest inside another election, whose candidates
//! would count ours as theirs.

use super::{EtcdError, EtcdOptions, connect, describe, foreign_reason};
use etcd_client::{Client, GetOptions};
use std::time::Duration;
use tokio::time::timeout;

/// Keys read per page, and pages read at most per enclosing prefix, by [`check_key_placement`].
const PLACEMENT_PAGE: i64 = 256;
const PLACEMENT_PAGES: usize = 16;

/// The keys of the elections `key` would nest inside: every proper prefix of `key` that ends
/// just before a `/` (`/a/b/c`: `/a` and `/a/b`). The empty prefix is left out: nobody runs an
/// election at the empty key, and its range would span most of the keyspace.
pub fn enclosing_keys(key: &str) -> Vec<&str> {
    key.match_indices('/')
        .map(|(at, _)| &key[..at])
        .filter(|prefix| !prefix.is_empty())
        .collect()
}

/// Looks for an election that `key` nests inside: an enclosing key `P` ([`enclosing_keys`])
/// with a candidate `P/<lease id in hex>` on that lease. Such an election (a Go elector,
/// `etcdctl elect`) would count our candidates `key/<hex>`, which are under `P/`, as its own.
/// Returns `P` and one of its candidates.
///
/// Reads keys only, [`PLACEMENT_PAGE`] at a time and at most [`PLACEMENT_PAGES`] pages per
/// prefix, over `[P/0, P/g)`: the names that start with a lowercase hex digit.
pub async fn find_enclosing_election(
    client: &Client,
    key: &str,
    request_timeout: Duration,
) -> Result<Option<(String, String)>, EtcdError> {
    for election in enclosing_keys(key) {
        let prefix = format!("{election}/");
        let end = format!("{election}/g");
        let mut from = format!("{election}/0").into_bytes();
        for _ in 0..PLACEMENT_PAGES {
            let operation = || format!("read of {prefix}<hex> (is --key {key} nested?)");
            let options = GetOptions::new()
                .with_range(end.clone())
                .with_keys_only()
                .with_limit(PLACEMENT_PAGE);
            let mut kv = client.kv_client();
            let page_from = from.clone();
            let page = match timeout(request_timeout, kv.get(page_from, Some(options))).await {
                Ok(Ok(page)) => page,
                Ok(Err(error)) => {
                    return Err(EtcdError::Failed {
                        operation: operation(),
                        reason: describe(&error),
                    });
                }
                Err(_) => {
                    return Err(EtcdError::Timeout {
                        operation: operation(),
                        timeout: request_timeout,
                    });
                }
            };
            if let Some(found) = page
                .kvs()
                .iter()
                .find(|kv| foreign_reason(&prefix, kv.key(), kv.lease()).is_none())
            {
                let found = String::from_utf8_lossy(found.key()).into_owned();
                return Ok(Some((election.to_owned(), found)));
            }
            match page.kvs().last() {
                Some(last) if page.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
    }
    Ok(None)
}

/// What [`check_key_placement`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// No election encloses the key.
    Clear,
    /// The key nests inside another election; the line says which, for the operator.
    Nested(String),
    /// It could not be checked (etcd unreachable, permission denied); why.
    Unchecked(String),
}

/// Checks at start that `key` does not nest inside another election
/// ([`find_enclosing_election`]), with its own connection: up to `attempts` tries, `pause`
/// apart, while etcd cannot be reached or does not answer. Bounded: at most `attempts` times
/// (connect + request timeouts, plus the reads), plus the pauses. A refusal (authentication,
/// permissions, bad options) is not retried.
pub async fn check_key_placement(
    opts: &EtcdOptions,
    key: &str,
    attempts: u32,
    pause: Duration,
) -> Placement {
    if enclosing_keys(key).is_empty() {
        return Placement::Clear;
    }
    let mut last = String::from("not tried");
    for attempt in 1..=attempts.max(1) {
        if attempt > 1 {
            tokio::time::sleep(pause).await;
        }
        let client = match connect(opts).await {
            Ok(client) => client,
            Err(error @ (EtcdError::Unreachable { .. } | EtcdError::Timeout { .. })) => {
                last = error.to_string();
                continue;
            }
            Err(error) => return Placement::Unchecked(error.to_string()),
        };
        match find_enclosing_election(&client, key, opts.request_timeout).await {
            Ok(None) => return Placement::Clear,
            Ok(Some((election, candidate))) => {
                return Placement::Nested(format!(
                    "--key {key} nests inside the election {election}, whose candidates \
                     {election}/... would count our keys as theirs: choose a key outside it \
                     ({candidate} is one of its candidates)"
                ));
            }
            Err(error @ EtcdError::Timeout { .. }) => last = error.to_string(),
            Err(error @ EtcdError::Failed { .. }) if !is_refusal(&error) => {
                last = error.to_string();
            }
            Err(error) => return Placement::Unchecked(error.to_string()),
        }
    }
    Placement::Unchecked(last)
}

/// Whether etcd refused a call for who we are (no permission, bad token), not for its state.
/// [`describe`] starts a gRPC status with its code's name.
fn is_refusal(error: &EtcdError) -> bool {
    match error {
        EtcdError::Failed { reason, .. } => {
            reason.starts_with("PermissionDenied")
                || reason.starts_with("Unauthenticated")
                || reason.starts_with("InvalidArgument")
        }
        EtcdError::AuthenticationFailed { .. } | EtcdError::InvalidOptions(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enclosing_keys_are_the_prefixes_before_each_slash() {
        assert_eq!(enclosing_keys("/a/b/c"), ["/a", "/a/b"]);
        assert_eq!(enclosing_keys("/iotex-server"), Vec::<&str>::new());
        assert_eq!(enclosing_keys("iotex"), Vec::<&str>::new());
        assert_eq!(enclosing_keys("a/b"), ["a"]);
        assert_eq!(enclosing_keys("/a//b"), ["/a", "/a/"]);
    }
}

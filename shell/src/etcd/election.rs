//! The calls the core's commands make on the election: lease grant and keep-alive, candidate
//! creation, the one-read observation, resignation (with the handover record), and the
//! operator's handover request.

use super::layout::{HandoverRecordJson, HandoverRequestJson, header_revision};
use super::{Election, EtcdError, describe};
use elector_core::{CandidateId, HandoverRecord, LeaseId, Observation};
use etcd_client::{
    Compare, CompareOp, GetOptions, KeyValue, LeaseKeepAliveStream, LeaseKeeper, PutOptions,
    SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
};
use std::sync::PoisonError;
use std::time::Duration;
use tokio::time::timeout;
use tracing::{info, warn};

/// etcd's answer when a lease does not exist (any more): revoke and keep-alive say so.
fn is_lease_not_found(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            status.code() == tonic::Code::NotFound && status.message().contains("lease not found")
        }
        // etcd-client's `keep_alive` turns a first answer with TTL 0 into this error.
        etcd_client::Error::LeaseKeepAliveError(message) => message == "lease not found",
        _ => false,
    }
}

/// What [`Election::put_if_absent`] found.
pub(super) enum PutIfAbsent {
    /// Written now, at this revision (`None` if etcd's answer had no header).
    Created(Option<i64>),
    /// The key existed; what it holds (`None` if the read came back empty).
    Exists(Option<KeyValue>),
}

/// One open keep-alive stream of one lease.
///
/// The stream is reused so a keep-alive costs one round trip. etcd answers the requests of a
/// stream in order, but an answer does not say which request it answers: a call that times out
/// leaves its answer in flight, and the next call would read it and credit it to its own, later
/// send time, overestimating the lease. So a call takes the stream out of the [`Election`] and
/// puts it back only after a clean exchange; a call that fails or is dropped (timeout) drops
/// the stream, and the next call opens a fresh one.
pub(super) struct KeepAliveStream {
    lease: LeaseId,
    keeper: LeaseKeeper,
    answers: LeaseKeepAliveStream,
}

impl Election {
    /// Grants a lease of `ttl` (rounded up to whole seconds, as etcd counts). Returns the
    /// lease and the TTL etcd granted, which can be longer (etcd's minimum is about 2 s).
    pub async fn grant(&self, ttl: Duration) -> Result<(LeaseId, Duration), EtcdError> {
        let seconds = i64::try_from(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0))
            .unwrap_or(i64::MAX)
            .max(1);
        let operation = || format!("grant of a {seconds}s lease");
        let mut leases = self.shared.client.lease_client();
        let answer = self
            .bounded(operation, async move { leases.grant(seconds, None).await })
            .await?;
        if !answer.error().is_empty() {
            return Err(EtcdError::Failed {
                operation: operation(),
                reason: answer.error().to_owned(),
            });
        }
        match u64::try_from(answer.ttl()) {
            Ok(granted) if granted > 0 => Ok((answer.id(), Duration::from_secs(granted))),
            _ => Err(EtcdError::UnexpectedResponse {
                operation: operation(),
                detail: format!("granted TTL {}", answer.ttl()),
            }),
        }
    }

    /// Sends one keep-alive for `lease` and returns the TTL etcd granted from then on, or
    /// [`Duration::ZERO`] when the lease no longer exists. The caller takes the time before
    /// calling: that is no later than when the request left.
    ///
    /// The stream is kept open between calls (see [`KeepAliveStream`]). Opening a stream costs
    /// an extra keep-alive, because etcd-client sends one and drops its answer; the TTL
    /// returned is then that of the second, which was sent later still, so still safe.
    pub async fn keep_alive_once(&self, lease: LeaseId) -> Result<Duration, EtcdError> {
        let operation = || format!("keep-alive of lease {lease:x}");
        let reusable = {
            let mut slot = self
                .shared
                .keep_alive
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            slot.take().filter(|stream| stream.lease == lease)
        };
        let exchange = async {
            let mut stream = match reusable {
                Some(stream) => stream,
                None => match self.shared.client.lease_client().keep_alive(lease).await {
                    Ok((keeper, answers)) => KeepAliveStream {
                        lease,
                        keeper,
                        answers,
                    },
                    Err(error) if is_lease_not_found(&error) => return Ok((Duration::ZERO, None)),
                    Err(error) => return Err(error),
                },
            };
            stream.keeper.keep_alive().await?;
            match stream.answers.message().await? {
                Some(answer) if answer.id() != lease => {
                    Err(etcd_client::Error::LeaseKeepAliveError(format!(
                        "answer for lease {:x}",
                        answer.id()
                    )))
                }
                Some(answer) => match u64::try_from(answer.ttl()) {
                    Ok(ttl) if ttl > 0 => Ok((Duration::from_secs(ttl), Some(stream))),
                    _ => Ok((Duration::ZERO, None)),
                },
                None => Err(etcd_client::Error::LeaseKeepAliveError(
                    "etcd closed the keep-alive stream".to_owned(),
                )),
            }
        };
        let (ttl, stream) = self.bounded(operation, exchange).await?;
        if let Some(stream) = stream {
            *self
                .shared
                .keep_alive
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(stream);
        }
        Ok(ttl)
    }

    /// Renews `lease` once over a keep-alive stream of its own, closed again right after the
    /// answer, and says whether the lease still exists. For a lease renewed rarely (the
    /// registry's, once per `--registry-refresh`), where [`Election::keep_alive_once`]'s kept
    /// stream would be wrong: a stream left open between two renewals sits idle on its
    /// connection, the connection's HTTP/2 pings (one per keep-alive interval while a stream is
    /// open, [`super::pings_for`]) then go unanswered by data, and etcd (gRPC's keep-alive
    /// enforcement, `--grpc-keepalive-min-time`, 5 s by default) takes more than two such pings
    /// in that time for abuse and closes the connection (GOAWAY `too_many_pings`). The next
    /// renewal over the kept stream then failed with `channel closed`, every other refresh, on
    /// a healthy etcd. Without an open stream a connection is not pinged at all.
    ///
    /// One round trip: etcd-client's `keep_alive` sends the first keep-alive itself and reads
    /// its answer (TTL 0: the lease is gone).
    pub async fn renew_once(&self, lease: LeaseId) -> Result<bool, EtcdError> {
        let operation = || format!("keep-alive of lease {lease:x}");
        let mut leases = self.shared.client.lease_client();
        let renewed = self
            .bounded(operation, async move {
                match leases.keep_alive(lease).await {
                    // Both halves are dropped here: the stream ends with this call.
                    Ok((_keeper, _answers)) => Ok(true),
                    Err(error) if is_lease_not_found(&error) => Ok(false),
                    Err(error) => Err(error),
                }
            })
            .await?;
        Ok(renewed)
    }

    /// One transaction: if `create_revision(key) == 0` put `value` (with `options`), else
    /// read the key. How a candidate key and an exclusion are created without overwriting.
    pub(super) async fn put_if_absent(
        &self,
        operation: impl Fn() -> String,
        key: &str,
        value: String,
        options: Option<PutOptions>,
    ) -> Result<PutIfAbsent, EtcdError> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, options)])
            .or_else([TxnOp::get(key, None)]);
        let mut kv = self.shared.client.kv_client();
        let answer = self
            .bounded(operation, async move { kv.txn(txn).await })
            .await?;
        if answer.succeeded() {
            return Ok(PutIfAbsent::Created(header_revision(&answer)));
        }
        let existing = answer.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(get) => get.kvs().first().cloned(),
            _ => None,
        });
        Ok(PutIfAbsent::Exists(existing))
    }

    /// Creates this replica's candidate key for `lease` unless it exists, and returns its
    /// create revision: its place in the line. Like Go's `Campaign`, one transaction: if
    /// `create_revision(key) == 0` put the value attached to the lease, else read the key.
    pub async fn create_candidate(&self, lease: LeaseId) -> Result<i64, EtcdError> {
        let key = self.candidate_key(lease);
        let operation = || format!("creation of candidate {key}");
        let value = self.shared.value.clone();
        let options = Some(PutOptions::new().with_lease(lease));
        let existing = match self.put_if_absent(operation, &key, value, options).await? {
            PutIfAbsent::Created(revision) => {
                return revision.ok_or_else(|| EtcdError::UnexpectedResponse {
                    operation: operation(),
                    detail: "no header".to_owned(),
                });
            }
            PutIfAbsent::Exists(existing) => existing,
        };
        let Some(existing) = existing else {
            return Err(EtcdError::UnexpectedResponse {
                operation: operation(),
                detail: "the key exists but could not be read".to_owned(),
            });
        };
        if existing.lease() != lease {
            // Such a key would not vanish with our lease: never treat it as ours.
            return Err(EtcdError::UnexpectedResponse {
                operation: operation(),
                detail: format!(
                    "the key exists attached to lease {:x}, not to ours",
                    existing.lease()
                ),
            });
        }
        if existing.value() != self.shared.value.as_bytes() {
            warn!(
                key = %key,
                stored = %String::from_utf8_lossy(existing.value()),
                ours = %self.shared.value,
                "our candidate key holds another value"
            );
        }
        Ok(existing.create_revision())
    }

    /// One consistent read of the election: a transaction without compares whose four reads
    /// are served at one revision: the candidates (by create revision, ascending), the
    /// handover record, the handover request and this replica's exclusion key. Linearizable (a transaction always is), so
    /// never a stale member's view.
    pub async fn observe_once(&self) -> Result<Observation, EtcdError> {
        let operation = || format!("read of election {}", self.shared.key);
        let txn = Txn::new().and_then([
            TxnOp::get(
                self.candidate_prefix(),
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_sort(SortTarget::Create, SortOrder::Ascend),
                ),
            ),
            TxnOp::get(self.handover_record_key(), None),
            TxnOp::get(self.handover_request_key(), None),
            TxnOp::get(self.exclusion_key(self.value()), None),
        ]);
        let mut kv = self.shared.client.kv_client();
        let answer = self
            .bounded(operation, async move { kv.txn(txn).await })
            .await?;
        self.parse_observation(&answer)
            .map_err(|detail| EtcdError::UnexpectedResponse {
                operation: operation(),
                detail,
            })
    }

    /// The election as it is now, for operator tools: same as [`Election::observe_once`].
    pub async fn list(&self) -> Result<Observation, EtcdError> {
        self.observe_once().await
    }

    /// Leaves the election.
    ///
    /// With `record` and `candidate`: one transaction that, only while our key still has the
    /// candidate's create revision, writes the handover record (no lease: it must outlive
    /// us), deletes our key and clears any handover request. If our key is gone already the
    /// transaction does nothing, and we go on. Then the lease is revoked (a lease that no
    /// longer exists counts as revoked).
    ///
    /// The transaction and the revocation are each bounded by the request timeout.
    pub async fn resign(
        &self,
        lease: LeaseId,
        candidate: Option<CandidateId>,
        record: Option<HandoverRecord>,
        clear_request: Option<i64>,
    ) -> Result<(), EtcdError> {
        let Some(candidate) = candidate else {
            if record.is_some() {
                warn!(
                    lease = %format!("{lease:x}"),
                    "resigning without a candidate key: no handover record written"
                );
            }
            if let Some(revision) = clear_request {
                self.clear_acted_on_request(revision).await?;
            }
            return self.revoke(lease).await;
        };
        let key = self.candidate_key(lease);
        let with_record = record.is_some();
        let mut ops = Vec::with_capacity(3);
        if let Some(record) = record {
            let json = serde_json::to_string(&HandoverRecordJson {
                from_lease: record.from.lease,
                from_create_revision: record.from.create_revision,
                value: record.value,
                key_withdrawn: record.key_withdrawn,
            })
            .map_err(|error| EtcdError::Failed {
                operation: format!("handover from candidate {key}"),
                reason: error.to_string(),
            })?;
            ops.push(TxnOp::put(self.handover_record_key(), json, None));
        }
        ops.push(TxnOp::delete(key.clone(), None));
        let ours =
            Compare::create_revision(key.clone(), CompareOp::Equal, candidate.create_revision);
        // The request this resignation acted on goes in the same transaction as our key: a
        // successor must never see us gone and the request still there, or it would act on
        // it again and hand over in turn. Guarded by its revision, so that a newer request
        // survives: if it changed (or is gone), the same deletion is made without it.
        let mut deleted = false;
        if let Some(revision) = clear_request {
            let request = self.handover_request_key();
            let mut with_request = ops.clone();
            with_request.push(TxnOp::delete(request.clone(), None));
            let txn = Txn::new()
                .when([
                    ours.clone(),
                    Compare::mod_revision(request, CompareOp::Equal, revision),
                ])
                .and_then(with_request);
            deleted = self.resign_txn(&key, with_record, txn).await?;
        }
        if !deleted {
            let txn = Txn::new().when([ours]).and_then(ops);
            deleted = self.resign_txn(&key, with_record, txn).await?;
            if !deleted {
                info!(key = %key, "our candidate key was gone already; nothing written");
            }
        }
        self.revoke(lease).await
    }

    /// One attempt at deleting our key (and writing the record): whether it succeeded.
    async fn resign_txn(&self, key: &str, with_record: bool, txn: Txn) -> Result<bool, EtcdError> {
        let operation = || match with_record {
            true => format!("handover from candidate {key}"),
            false => format!("deletion of candidate {key}"),
        };
        let mut kv = self.shared.client.kv_client();
        let answer = self
            .bounded(operation, async move { kv.txn(txn).await })
            .await?;
        if answer.succeeded() {
            match with_record {
                true => info!(key = %key, "handover record written, candidate key deleted"),
                false => info!(key = %key, "candidate key deleted (no handover record)"),
            }
        }
        Ok(answer.succeeded())
    }

    /// Deletes the handover request the leader acted on, if it is still that one.
    async fn clear_acted_on_request(&self, revision: i64) -> Result<(), EtcdError> {
        if self.withdraw_handover_request(revision).await? {
            info!(revision, "handover request deleted: it has been acted on");
        }
        Ok(())
    }

    /// Revokes `lease`, deleting every key attached to it. A lease that does not exist counts
    /// as revoked.
    pub async fn revoke(&self, lease: LeaseId) -> Result<(), EtcdError> {
        let mut leases = self.shared.client.lease_client();
        let revoked = timeout(self.shared.request_timeout, async move {
            leases.revoke(lease).await
        })
        .await;
        match revoked {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) if is_lease_not_found(&error) => Ok(()),
            Ok(Err(error)) => Err(EtcdError::Failed {
                operation: format!("revocation of lease {lease:x}"),
                reason: describe(&error),
            }),
            Err(_) => Err(EtcdError::Timeout {
                operation: format!("revocation of lease {lease:x}"),
                timeout: self.shared.request_timeout,
            }),
        }
    }

    /// Asks the leader to hand over to the replica whose value is `to`, or to the next in line.
    /// Returns the request's revision, which tells it from later requests.
    pub async fn request_handover(&self, to: Option<String>) -> Result<i64, EtcdError> {
        let key = self.handover_request_key();
        let operation = || format!("write of handover request {key}");
        let json = serde_json::to_string(&HandoverRequestJson { to }).map_err(|error| {
            EtcdError::Failed {
                operation: operation(),
                reason: error.to_string(),
            }
        })?;
        let mut kv = self.shared.client.kv_client();
        let put_key = key.clone();
        let answer = self
            .bounded(operation, async move { kv.put(put_key, json, None).await })
            .await?;
        answer
            .header()
            .map(|header| header.revision())
            .ok_or_else(|| EtcdError::UnexpectedResponse {
                operation: operation(),
                detail: "no header".to_owned(),
            })
    }

    /// Deletes the handover request if it is still the one with this mod revision: a newer
    /// request (another `elector handover`) survives. Whether it was deleted. The leader
    /// clears the request it acted on with it, and `elector handover` its own on giving up.
    pub async fn withdraw_handover_request(&self, revision: i64) -> Result<bool, EtcdError> {
        let key = self.handover_request_key();
        let operation = || format!("deletion of handover request {key}");
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                revision,
            )])
            .and_then([TxnOp::delete(key.clone(), None)]);
        let mut kv = self.shared.client.kv_client();
        let answer = self
            .bounded(operation, async move { kv.txn(txn).await })
            .await?;
        Ok(answer.succeeded())
    }

    /// The TTL left and the granted TTL of `lease`, in seconds; `(0, 0)` or less when etcd
    /// no longer knows it.
    pub async fn lease_time_to_live(&self, lease: LeaseId) -> Result<(i64, i64), EtcdError> {
        let operation = || format!("time-to-live of lease {lease:x}");
        let mut leases = self.shared.client.lease_client();
        let answer = self
            .bounded(
                operation,
                async move { leases.time_to_live(lease, None).await },
            )
            .await?;
        Ok((answer.ttl(), answer.granted_ttl()))
    }

    /// Withdraws any pending handover request.
    pub async fn clear_handover_request(&self) -> Result<(), EtcdError> {
        let key = self.handover_request_key();
        let operation = || format!("deletion of handover request {key}");
        let mut kv = self.shared.client.kv_client();
        let delete_key = key.clone();
        self.bounded(operation, async move { kv.delete(delete_key, None).await })
            .await?;
        Ok(())
    }
}

//! The election's key layout: candidate and handover key names, which keys under the prefix
//! are candidates (and which are foreign, logged but never counted), and the JSON the
//! handover record and request are stored as. Also turning one read into an [`Observation`].

use super::Election;
use elector_core::{
    Candidate, CandidateId, Exclusion, HandoverRecord, HandoverRequest, LeaseId, Observation,
};
use etcd_client::{GetResponse, KeyValue, TxnOpResponse, TxnResponse};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::PoisonError;
use std::time::Duration;
use tracing::{error, info, warn};

/// A persisting set of foreign keys is logged again this often (a new set at once).
const FOREIGN_LOG_EVERY: Duration = Duration::from_secs(60);
/// At most this many foreign keys are named in one log line.
const FOREIGN_LOG_NAMES: usize = 10;

/// The handover record as stored in etcd.
#[derive(Serialize, Deserialize)]
pub(super) struct HandoverRecordJson {
    pub(super) from_lease: i64,
    pub(super) from_create_revision: i64,
    pub(super) value: String,
    /// Key custody: the operator's key was withdrawn from the node before the record. Written
    /// only when true, so a record without custody has no such field; an older elector ignores
    /// it (and waits the longer slot wait, which is safe).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) key_withdrawn: bool,
}

/// The handover request as stored in etcd. A missing `to` means "the next in line".
#[derive(Serialize, Deserialize)]
pub(super) struct HandoverRequestJson {
    #[serde(default)]
    pub(super) to: Option<String>,
}

/// An operator's exclusion of one replica as stored in etcd (`elector exclude`), at
/// [`Election::exclusion_key`]. All three fields are plain text for people reading etcd.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ExclusionJson {
    /// `user@host` of whoever ran `elector exclude`.
    pub by: String,
    /// When, as an RFC 3339 wall-clock time.
    pub at: String,
    /// Why, as the operator said (`--reason`); may be empty.
    #[serde(default)]
    pub reason: String,
}

/// A key under the election prefix `<key>/` that is not a candidate. Candidates are exactly
/// `<key>/<lease id in lowercase hex>` attached to that lease, as Go's `concurrency.Election`
/// and `etcdctl elect` write them; anything else is ignored by the election.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignKey {
    /// The full key (non-UTF-8 bytes replaced).
    pub key: String,
    /// The lease it is attached to; 0 for none.
    pub lease: LeaseId,
    /// Why it is not a candidate.
    pub why: &'static str,
}

impl fmt::Display for ForeignKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.key, self.why)
    }
}

/// Whether the key `key`, attached to `lease`, is a candidate of the election whose candidate
/// prefix is `prefix` (`<key>/`): `None` if it is, else why not.
pub fn foreign_reason(prefix: &str, key: &[u8], lease: LeaseId) -> Option<&'static str> {
    let Some(name) = key.strip_prefix(prefix.as_bytes()) else {
        return Some("outside the election prefix");
    };
    if name.contains(&b'/') {
        return Some("nested below the candidates: another election's key, or written by hand");
    }
    if lease <= 0 {
        return Some("attached to no lease, so it would never go away");
    }
    if name != format!("{lease:x}").as_bytes() {
        return Some("its name is not its lease id in lowercase hex");
    }
    None
}

/// The foreign keys of the last read, and when they were last logged.
#[derive(Default)]
pub(super) struct ForeignReport {
    keys: Vec<ForeignKey>,
    throttle: ForeignLogThrottle,
}

/// Logs a set of foreign keys at once when it changes, and again every
/// [`FOREIGN_LOG_EVERY`] while it persists.
#[derive(Default)]
struct ForeignLogThrottle {
    last: Option<(tokio::time::Instant, Vec<String>)>,
}

impl ForeignLogThrottle {
    /// Whether `keys`, read at `now`, should be logged; remembers it if so.
    fn due(&mut self, now: tokio::time::Instant, keys: &[ForeignKey]) -> bool {
        let names: Vec<String> = keys.iter().map(|k| k.key.clone()).collect();
        let due = match &self.last {
            None => !names.is_empty(),
            Some((at, last)) => {
                *last != names || (!names.is_empty() && now >= *at + FOREIGN_LOG_EVERY)
            }
        };
        if due {
            self.last = Some((now, names));
        }
        due
    }
}

impl Election {
    /// The keys under `<key>/` that the last read of the election ignored because they are not
    /// candidates (see [`ForeignKey`]), in create-revision order. Empty before the first read.
    pub fn foreign_keys(&self) -> Vec<ForeignKey> {
        self.shared
            .foreign
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys
            .clone()
    }

    /// The prefix of all candidate keys: `<key>/`.
    pub fn candidate_prefix(&self) -> String {
        format!("{}/", self.shared.key)
    }

    /// The candidate key of `lease`: `<key>/<lease in lowercase hex>`, as Go's
    /// `concurrency.Election` names it (etcd lease ids are positive).
    pub fn candidate_key(&self, lease: LeaseId) -> String {
        format!("{}/{lease:x}", self.shared.key)
    }

    /// Where a leader leaves its handover record: `<key>.elector/handover-record`.
    pub fn handover_record_key(&self) -> String {
        format!("{}.elector/handover-record", self.shared.key)
    }

    /// Where an operator asks for a handover: `<key>.elector/handover-request`.
    pub fn handover_request_key(&self) -> String {
        format!("{}.elector/handover-request", self.shared.key)
    }

    /// Where an operator excludes the replica `value` from the election (rule
    /// `excluded_replica`): `<key>.elector/excluded/<value>`.
    pub fn exclusion_key(&self, value: &str) -> String {
        format!("{}{value}", self.excluded_prefix())
    }

    /// Where `elector exclude` keeps its exclusions: `<key>.elector/excluded/`, one key per
    /// excluded value.
    pub fn excluded_prefix(&self) -> String {
        format!("{}.elector/excluded/", self.shared.key)
    }

    pub(super) fn parse_observation(&self, answer: &TxnResponse) -> Result<Observation, String> {
        let revision = header_revision(answer).ok_or("no header")?;
        let responses = answer.op_responses();
        let [
            TxnOpResponse::Get(candidates_read),
            TxnOpResponse::Get(record),
            TxnOpResponse::Get(request),
            TxnOpResponse::Get(excluded),
        ] = responses.as_slice()
        else {
            return Err(format!(
                "expected four range results, got {} results",
                responses.len()
            ));
        };
        let prefix = self.candidate_prefix();
        let mut foreign = Vec::new();
        let mut candidates = Vec::new();
        for kv in candidates_read.kvs() {
            match foreign_reason(&prefix, kv.key(), kv.lease()) {
                None => candidates.push(Candidate {
                    id: CandidateId {
                        lease: kv.lease(),
                        create_revision: kv.create_revision(),
                    },
                    value: String::from_utf8_lossy(kv.value()).into_owned(),
                }),
                Some(why) => foreign.push(ForeignKey {
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    lease: kv.lease(),
                    why,
                }),
            }
        }
        // etcd sorted them already; a stable sort keeps that order and makes the election
        // order independent of whatever serves the read.
        candidates.sort_by_key(|candidate: &Candidate| candidate.id.create_revision);
        self.report_foreign(foreign);
        Ok(Observation {
            revision,
            candidates,
            handover_record: first_kv(record).and_then(|kv| self.parse_record(kv)),
            handover_request: first_kv(request).and_then(|kv| self.parse_request(kv)),
            excluded: first_kv(excluded).map(|kv| self.parse_exclusion(kv)),
        })
    }

    /// Keeps the foreign keys of the last read and logs them, throttled.
    fn report_foreign(&self, keys: Vec<ForeignKey>) {
        let mut report = self
            .shared
            .foreign
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if report.throttle.due(tokio::time::Instant::now(), &keys) {
            if keys.is_empty() {
                info!(key = %self.shared.key, "no foreign keys under the election prefix any more");
            } else {
                let mut named: Vec<String> = keys
                    .iter()
                    .take(FOREIGN_LOG_NAMES)
                    .map(ToString::to_string)
                    .collect();
                if keys.len() > FOREIGN_LOG_NAMES {
                    named.push(format!("and {} more", keys.len() - FOREIGN_LOG_NAMES));
                }
                error!(
                    key = %self.shared.key,
                    count = keys.len(),
                    foreign = %named.join(", "),
                    "foreign keys under the election prefix {}: ignored, never candidates. \
                     Candidates are {}<lease id in hex> on that lease. Delete them \
                     (etcdctl del KEY) or move the other election out of {}",
                    self.candidate_prefix(),
                    self.candidate_prefix(),
                    self.candidate_prefix(),
                );
            }
        }
        report.keys = keys;
    }

    fn parse_record(&self, kv: &KeyValue) -> Option<HandoverRecord> {
        match serde_json::from_slice::<HandoverRecordJson>(kv.value()) {
            Ok(json) => Some(HandoverRecord {
                from: CandidateId {
                    lease: json.from_lease,
                    create_revision: json.from_create_revision,
                },
                value: json.value,
                key_withdrawn: json.key_withdrawn,
            }),
            Err(error) => {
                warn!(
                    key = %self.handover_record_key(),
                    %error,
                    "ignoring an unreadable handover record"
                );
                None
            }
        }
    }

    /// An exclusion key that cannot be read still excludes: the operator meant to take the
    /// replica out, and staying out of the election is the safe side.
    fn parse_exclusion(&self, kv: &KeyValue) -> Exclusion {
        match serde_json::from_slice::<ExclusionJson>(kv.value()) {
            Ok(json) => Exclusion {
                by: json.by,
                at: json.at,
                reason: json.reason,
            },
            Err(error) => {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                warn!(
                    %key,
                    %error,
                    "unreadable exclusion record: this replica counts as excluded; \
                     `elector include` deletes it"
                );
                Exclusion {
                    by: "unknown".to_owned(),
                    at: String::new(),
                    reason: format!("unreadable exclusion record at {key}: {error}"),
                }
            }
        }
    }

    fn parse_request(&self, kv: &KeyValue) -> Option<HandoverRequest> {
        match serde_json::from_slice::<HandoverRequestJson>(kv.value()) {
            Ok(json) => Some(HandoverRequest {
                to: json.to,
                revision: kv.mod_revision(),
            }),
            Err(error) => {
                warn!(
                    key = %self.handover_request_key(),
                    %error,
                    "ignoring an unreadable handover request"
                );
                None
            }
        }
    }
}

pub(super) fn header_revision(answer: &TxnResponse) -> Option<i64> {
    answer.header().map(|header| header.revision())
}

fn first_kv(get: &GetResponse) -> Option<&KeyValue> {
    get.kvs().first()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_exactly_the_lease_in_hex_on_that_lease() {
        let prefix = "/iotex-server/";
        let lease: LeaseId = 0x694d_7f1a_0c2b_0e15;
        assert_eq!(
            foreign_reason(prefix, b"/iotex-server/694d7f1a0c2b0e15", lease),
            None
        );
        let cases: Vec<(&[u8], LeaseId, &str)> = vec![
            (b"/iotex-server/694d7f1a0c2b0e15", 0, "no lease"),
            (b"/iotex-server/694d7f1a0c2b0e15", 0x1234, "not its lease"),
            (b"/iotex-server/694D7F1A0C2B0E15", lease, "not its lease"),
            (b"/iotex-server/0694d7f1a0c2b0e15", lease, "not its lease"),
            (b"/iotex-server/leader", lease, "not its lease"),
            (b"/iotex-server/", lease, "not its lease"),
            (b"/iotex-server/\xff", lease, "not its lease"),
            (b"/iotex-server/sub/694d7f1a0c2b0e15", lease, "nested"),
            (b"/iotex-server/694d7f1a0c2b0e15/", lease, "nested"),
            (b"/iotex-server.elector/handover-record", 0, "outside"),
        ];
        for (key, lease, expected) in cases {
            let why = foreign_reason(prefix, key, lease);
            assert!(
                why.is_some_and(|why| why.contains(expected)),
                "{}: {why:?}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn foreign_keys_are_logged_on_change_and_then_once_a_minute() {
        let key = |name: &str| ForeignKey {
            key: name.to_owned(),
            lease: 0,
            why: "test",
        };
        let mut throttle = ForeignLogThrottle::default();
        let t0 = tokio::time::Instant::now();
        assert!(!throttle.due(t0, &[]), "nothing to say");
        assert!(throttle.due(t0, &[key("/k/x")]));
        assert!(!throttle.due(t0 + Duration::from_secs(2), &[key("/k/x")]));
        assert!(throttle.due(t0 + Duration::from_secs(3), &[key("/k/x"), key("/k/y")]));
        let t1 = t0 + Duration::from_secs(3);
        assert!(!throttle.due(t1 + Duration::from_secs(59), &[key("/k/x"), key("/k/y")]));
        assert!(throttle.due(t1 + FOREIGN_LOG_EVERY, &[key("/k/x"), key("/k/y")]));
        // Gone: said once, then quiet.
        assert!(throttle.due(t1 + FOREIGN_LOG_EVERY, &[]));
        assert!(!throttle.due(t1 + FOREIGN_LOG_EVERY * 3, &[]));
    }

    #[test]
    fn the_exclusion_wire_format_is_stable() {
        let json = ExclusionJson {
            by: "ops@host-1".to_owned(),
            at: "2026-11-30T12:00:00Z".to_owned(),
            reason: "upgrade".to_owned(),
        };
        assert_eq!(
            serde_json::to_string(&json).ok().as_deref(),
            Some(r#"{"by":"ops@host-1","at":"2026-11-30T12:00:00Z","reason":"upgrade"}"#)
        );
        let no_reason: Result<ExclusionJson, _> =
            serde_json::from_str(r#"{"by":"a@b","at":"2026-11-30T12:00:00Z"}"#);
        assert!(no_reason.is_ok_and(|j| j.reason.is_empty()));
    }

    #[test]
    fn the_wire_formats_are_stable() {
        let mut record = HandoverRecordJson {
            from_lease: 0x694d_7f1a,
            from_create_revision: 42,
            value: "node-a".to_owned(),
            key_withdrawn: false,
        };
        assert_eq!(
            serde_json::to_string(&record).ok().as_deref(),
            Some(r#"{"from_lease":1766686490,"from_create_revision":42,"value":"node-a"}"#)
        );
        record.key_withdrawn = true;
        assert_eq!(
            serde_json::to_string(&record).ok().as_deref(),
            Some(
                r#"{"from_lease":1766686490,"from_create_revision":42,"value":"node-a","key_withdrawn":true}"#
            )
        );
        let request: Result<HandoverRequestJson, _> = serde_json::from_str("{}");
        assert!(matches!(request, Ok(HandoverRequestJson { to: None })));
        assert_eq!(
            serde_json::to_string(&HandoverRequestJson {
                to: Some("b".to_owned())
            })
            .ok()
            .as_deref(),
            Some(r#"{"to":"b"}"#)
        );
    }
}

//! The member registry's keys, beside the election: `<key>.elector/members/<value>`, one
//! record per elector (written by [`crate::registry`]), and the exclusion keys
//! `<key>.elector/excluded/<value>` that `elector status` reads to say which replica is
//! excluded. Both live outside the candidates' prefix `<key>/`, so Go and `etcdctl elect`
//! candidates never see them. Neither is ever part of an [`elector_core::Observation`]: a
//! record must never influence the election.

use super::{Election, EtcdError};
use elector_core::LeaseId;
use etcd_client::{GetOptions, PutOptions};

/// One key read under a registry prefix: the part of the key after the prefix, its value, the
/// lease it is attached to (0 for none) and the revision that wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixEntry {
    pub name: String,
    pub value: Vec<u8>,
    pub lease: LeaseId,
    /// The revision that last wrote the key (its mod revision).
    pub revision: i64,
}

/// Whether a key under the election's watched prefix is a registry record: writes of records
/// change nothing about the election, so the observer skips a re-read for them.
pub fn is_member_key(key: &str, member_key: &[u8]) -> bool {
    member_key.starts_with(members_prefix_of(key).as_bytes())
}

fn members_prefix_of(key: &str) -> String {
    format!("{key}.elector/members/")
}

impl Election {
    /// Where every elector keeps its record: `<key>.elector/members/`.
    pub fn members_prefix(&self) -> String {
        members_prefix_of(&self.shared.key)
    }

    /// This elector's record: `<key>.elector/members/<value>`.
    pub fn member_key(&self) -> String {
        format!("{}{}", self.members_prefix(), self.shared.value)
    }

    /// Writes this elector's record `json`, attached to `lease` so it vanishes with the
    /// elector. One Put, bounded by the request timeout.
    pub async fn put_member(&self, json: String, lease: LeaseId) -> Result<(), EtcdError> {
        let key = self.member_key();
        let operation = || format!("write of the registry record {}", self.member_key());
        let mut kv = self.shared.client.kv_client();
        let options = PutOptions::new().with_lease(lease);
        self.bounded(
            operation,
            async move { kv.put(key, json, Some(options)).await },
        )
        .await
        .map(drop)
    }

    /// Every registry record, in key order.
    pub async fn list_members(&self) -> Result<Vec<PrefixEntry>, EtcdError> {
        self.list_prefix(self.members_prefix()).await
    }

    /// Every exclusion key, in key order.
    pub async fn list_excluded(&self) -> Result<Vec<PrefixEntry>, EtcdError> {
        self.list_prefix(self.excluded_prefix()).await
    }

    /// One prefix read, bounded by the request timeout.
    async fn list_prefix(&self, prefix: String) -> Result<Vec<PrefixEntry>, EtcdError> {
        let operation = || format!("read of {prefix}");
        let mut kv = self.shared.client.kv_client();
        let read = prefix.clone();
        let answer = self
            .bounded(operation, async move {
                kv.get(read, Some(GetOptions::new().with_prefix())).await
            })
            .await?;
        Ok(answer
            .kvs()
            .iter()
            .map(|kv| PrefixEntry {
                name: String::from_utf8_lossy(&kv.key()[prefix.len().min(kv.key().len())..])
                    .into_owned(),
                value: kv.value().to_vec(),
                lease: kv.lease(),
                revision: kv.mod_revision(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_told_apart_from_the_election() {
        assert!(is_member_key("/iotex", b"/iotex.elector/members/node-a"));
        assert!(!is_member_key("/iotex", b"/iotex/694d7f1a"));
        assert!(!is_member_key("/iotex", b"/iotex.elector/handover-request"));
        assert!(!is_member_key("/iotex", b"/iotex.elector/excluded/node-a"));
        assert!(!is_member_key("/iotex2", b"/iotex.elector/members/node-a"));
    }
}

//! Operators' exclusions (`elector exclude`, `elector include`): the key
//! `<key>.elector/excluded/<value>` ([`Election::exclusion_key`]) holding an [`ExclusionJson`],
//! with no lease, so that an exclusion outlives every elector and stays until it is lifted.
//! Each running elector reads its own key with the election (rule `excluded_replica`).

use super::election::PutIfAbsent;
use super::layout::ExclusionJson;
use super::{Election, EtcdError};

/// What [`Election::exclude`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Excluded {
    /// The exclusion was written now.
    New,
    /// The replica was excluded already; the stored exclusion is kept as it was (its time says
    /// since when), and this is what it says (`None`: it cannot be read, but excludes anyway).
    Already(Option<ExclusionJson>),
}

impl Election {
    /// Excludes the replica `value`, unless it is excluded already (then the first exclusion,
    /// with its time and reason, stays): one transaction, so two operators racing leave one.
    pub async fn exclude(
        &self,
        value: &str,
        exclusion: &ExclusionJson,
    ) -> Result<Excluded, EtcdError> {
        let key = self.exclusion_key(value);
        let operation = || format!("write of exclusion {key}");
        let json = serde_json::to_string(exclusion).map_err(|error| EtcdError::Failed {
            operation: operation(),
            reason: error.to_string(),
        })?;
        Ok(
            match self.put_if_absent(operation, &key, json, None).await? {
                PutIfAbsent::Created(_) => Excluded::New,
                PutIfAbsent::Exists(stored) => {
                    Excluded::Already(stored.and_then(|kv| serde_json::from_slice(kv.value()).ok()))
                }
            },
        )
    }

    /// Lifts the exclusion of `value`; says whether there was one.
    pub async fn include(&self, value: &str) -> Result<bool, EtcdError> {
        let key = self.exclusion_key(value);
        let operation = || format!("deletion of exclusion {key}");
        let mut kv = self.shared.client.kv_client();
        let delete_key = key.clone();
        let answer = self
            .bounded(operation, async move { kv.delete(delete_key, None).await })
            .await?;
        Ok(answer.deleted() > 0)
    }
}

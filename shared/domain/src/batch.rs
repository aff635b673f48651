//! Batches of generation requests: up to [`MAX_BATCH_ITEMS`] requests sent at once, each judged on
//! its own. A batch record keeps, per item in the order sent, what became of it (a job created, a
//! job replayed by its idempotency key, or a refusal with its field paths), so the batch can be
//! read back later to follow its jobs.

use crate::error::FieldError;
use crate::job::JobId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The most requests one batch may carry: enough to script a campaign, few enough that one API
/// call (and one Lambda invocation) validates and records them all well inside its timeout.
pub const MAX_BATCH_ITEMS: usize = 50;

/// `bat_` followed by a UUIDv7 in simple form, like job ids.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BatchId(String);

impl BatchId {
    pub fn generate() -> Self {
        Self(format!("bat_{}", uuid::Uuid::now_v7().simple()))
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = raw.len() == 36
            && raw.starts_with("bat_")
            && raw[4..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!("not a batch id: {}", crate::error::echo(raw)))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BatchId {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        Self::parse(&v)
    }
}

impl From<BatchId> for String {
    fn from(b: BatchId) -> String {
        b.0
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why one item of a batch made no job, as the API would have answered it alone: the HTTP status,
/// the problem's slug (`validation`, `quota-exceeded`, `conflict`, ...), one sentence, and every
/// field it broke, addressed from the batch body's root (`items[3].duration_seconds`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemError {
    pub status: u16,
    pub kind: String,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// When the refusal passes with time (a quota, a throttled store): seconds to wait before
    /// sending the item again, as `Retry-After` would say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

/// What became of one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ItemOutcome {
    /// A new job.
    Created { job_id: JobId },
    /// The job this item's idempotency key made before, for the same request.
    Replayed { job_id: JobId },
    /// No job: the item was refused.
    Error { error: ItemError },
}

/// One item of a batch, at its position in the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItem {
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(flatten)]
    pub outcome: ItemOutcome,
}

impl BatchItem {
    /// The job the item made or replayed.
    pub fn job_id(&self) -> Option<&JobId> {
        match &self.outcome {
            ItemOutcome::Created { job_id } | ItemOutcome::Replayed { job_id } => Some(job_id),
            ItemOutcome::Error { .. } => None,
        }
    }
}

/// A recorded batch: written once, when every item has its outcome, and never changed after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub id: BatchId,
    pub owner: String,
    pub created_at: DateTime<Utc>,
    pub items: Vec<BatchItem>,
}

/// How many items ended each way.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCounts {
    pub created: u32,
    pub replayed: u32,
    pub failed: u32,
}

impl Batch {
    pub fn counts(&self) -> BatchCounts {
        let mut counts = BatchCounts::default();
        for item in &self.items {
            match item.outcome {
                ItemOutcome::Created { .. } => counts.created += 1,
                ItemOutcome::Replayed { .. } => counts.replayed += 1,
                ItemOutcome::Error { .. } => counts.failed += 1,
            }
        }
        counts
    }
}

/// The path of `field` inside item `index` of a batch body: `items[3].duration_seconds`, or
/// `items[3]` for the item as a whole (`body`).
pub fn item_field(index: usize, field: &str) -> String {
    match field {
        "" | "body" => format!("items[{index}]"),
        f if f.starts_with('[') => format!("items[{index}]{f}"),
        f => format!("items[{index}].{f}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_ids_are_checked_like_job_ids() {
        let id = BatchId::generate();
        assert_eq!(BatchId::parse(id.as_str()), Ok(id.clone()));
        for bad in [
            "",
            "bat_",
            "job_0190c5d37e1a7b3c9d4e5f6a7b8c9d0e",
            "bat_XYZ",
        ] {
            assert!(BatchId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn item_fields_are_addressed_from_the_batch_root() {
        assert_eq!(
            item_field(3, "duration_seconds"),
            "items[3].duration_seconds"
        );
        assert_eq!(
            item_field(0, "brand.logo.opacity"),
            "items[0].brand.logo.opacity"
        );
        assert_eq!(item_field(7, "body"), "items[7]");
    }

    #[test]
    fn items_serialize_flat_with_their_result() {
        let job_id = JobId::generate();
        let item = BatchItem {
            index: 2,
            idempotency_key: Some("k-2".into()),
            outcome: ItemOutcome::Replayed {
                job_id: job_id.clone(),
            },
        };
        let v = serde_json::to_value(&item).expect("encode");
        assert_eq!(
            v,
            serde_json::json!({"index": 2, "idempotency_key": "k-2", "result": "replayed", "job_id": job_id.as_str()})
        );
        let back: BatchItem = serde_json::from_value(v).expect("decode");
        assert_eq!(back, item);
    }
}

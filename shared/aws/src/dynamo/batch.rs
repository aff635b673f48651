//! The DynamoDB `BatchStore`, in the single table.
//!
//! Item: `PK` = `BATCH#<id>`, `SK` = `META` (`entity` = `batch`): `doc` (the [`Batch`] as JSON,
//! every item's outcome), `owner`, `created_at`, `item_count`, and `expires_at` as long after the
//! batch as a finished job is kept (the batch only points at jobs; it outliving them would list
//! ids that read as absent). Written once, conditional on the key being new. Fifty items with
//! their refusals stay far under DynamoDB's 400 KB item limit.

use super::{
    ATTR_CREATED_AT, ATTR_DOC, ATTR_ENTITY, ATTR_EXPIRES_AT, ATTR_OWNER, ATTR_PK, ATTR_SK,
    DynamoJobStore, SK_META, decode, encode_error, epoch_seconds, n, s, sdk_error, timestamp,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use vidpipe_domain::batch::{Batch, BatchId};
use vidpipe_domain::ports::{BatchStore, StoreError};

/// On batch items: how many requests the batch carried, for people reading the table.
pub const ATTR_ITEM_COUNT: &str = "item_count";

/// `BATCH#<id>`.
pub fn batch_pk(id: &BatchId) -> String {
    format!("BATCH#{id}")
}

#[async_trait]
impl BatchStore for DynamoJobStore {
    async fn put_batch(&self, batch: &Batch) -> Result<(), StoreError> {
        let doc = serde_json::to_string(batch).map_err(encode_error)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(ATTR_PK, s(batch_pk(&batch.id)))
            .item(ATTR_SK, s(SK_META))
            .item(ATTR_ENTITY, s("batch"))
            .item(ATTR_OWNER, s(&batch.owner))
            .item(ATTR_CREATED_AT, s(timestamp(batch.created_at)))
            .item(ATTR_ITEM_COUNT, n(batch.items.len()))
            .item(
                ATTR_EXPIRES_AT,
                n(epoch_seconds(batch.created_at, self.retention)),
            )
            .item(ATTR_DOC, s(doc))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", ATTR_PK)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => Err(match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => {
                    StoreError::AlreadyExists(format!("batch {}", batch.id))
                }
                _ => sdk_error("PutItem (batch)", err),
            }),
        }
    }

    async fn get_batch(&self, id: &BatchId) -> Result<Option<Batch>, StoreError> {
        let Some(item) = self.get_item(batch_pk(id), "GetItem (batch)").await? else {
            return Ok(None);
        };
        decode(&item, "batch").map(Some)
    }
}

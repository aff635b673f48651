//! The DynamoDB `LiveStore`: live-progress connections and their subscriptions, in a table of
//! their own (the template's `LiveTable`), not in the jobs table. The pusher is fed by the jobs
//! table's stream; a snapshot written there on every push would feed the stream back to the
//! pusher, and the connect/subscribe functions would need write access to the job records.
//!
//! Items (`PK` / `SK`, every one with `expires_at` for the table's TTL):
//! - connection: `CONN#<id>` / `META`: `doc` (the [`LiveConnection`]), `owner`;
//! - subscription: `SUB#<job id>` / `CONN#<connection id>`: `doc` (the [`LiveSubscription`]),
//!   `seq` (its snapshot's, the condition of every snapshot save), `owner`; one query of the
//!   job's partition lists a job's subscribers;
//! - the connection's index of its subscriptions: `CONN#<id>` / `SUB#<job id>`, so removing a
//!   connection finds its subscriptions with one query of its own partition.

use super::{
    ATTR_DOC, ATTR_ENTITY, ATTR_EXPIRES_AT, ATTR_OWNER, ATTR_PK, ATTR_SK, Item, SK_META,
    build_error, decode, encode_error, n, number, s, sdk_error,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use std::time::Duration;
use vidpipe_domain::ErrorClass;
use vidpipe_domain::events::LiveSnapshot;
use vidpipe_domain::ports::{LiveConnection, LiveStore, LiveSubscription, StoreError};

/// On subscription items: the snapshot's `seq`, the authority for the save condition.
pub const ATTR_SEQ: &str = "seq";

pub fn connection_pk(id: &str) -> String {
    format!("CONN#{id}")
}

pub fn subscription_pk(job_id: &str) -> String {
    format!("SUB#{job_id}")
}

/// The live table: `PK`/`SK`, on-demand, TTL on `expires_at`. Tests and the emulator create it
/// with this; in AWS the template owns it and must match.
pub async fn create_live_table(client: &Client, table_name: &str) -> Result<(), StoreError> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
    };
    client
        .create_table()
        .table_name(table_name)
        .attribute_definitions(attr(ATTR_PK).map_err(build_error)?)
        .attribute_definitions(attr(ATTR_SK).map_err(build_error)?)
        .key_schema(key(ATTR_PK, KeyType::Hash).map_err(build_error)?)
        .key_schema(key(ATTR_SK, KeyType::Range).map_err(build_error)?)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .map_err(|e| sdk_error("CreateTable (live)", e))?;
    use aws_sdk_dynamodb::client::Waiters;
    client
        .wait_until_table_exists()
        .table_name(table_name)
        .wait(Duration::from_secs(120))
        .await
        .map_err(|e| {
            StoreError::backend(
                "waiting for the live table to become active",
                ErrorClass::Retryable,
                e,
            )
        })?;
    client
        .update_time_to_live()
        .table_name(table_name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(ATTR_EXPIRES_AT)
                .build()
                .map_err(build_error)?,
        )
        .send()
        .await
        .map_err(|e| sdk_error("UpdateTimeToLive (live)", e))?;
    Ok(())
}

/// Connections and subscriptions in the live table. Cheap to clone.
#[derive(Clone)]
pub struct DynamoLiveStore {
    client: Client,
    table: String,
}

impl DynamoLiveStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Every item of one partition (a connection's, or a job's subscriptions).
    async fn partition(&self, pk: String, what: &str) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", ATTR_PK)
                .expression_attribute_values(":pk", s(&pk))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error(what, e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    async fn delete(&self, pk: String, sk: String, what: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(ATTR_PK, s(pk))
            .key(ATTR_SK, s(sk))
            .send()
            .await
            .map_err(|e| sdk_error(what, e))?;
        Ok(())
    }
}

fn refuse_empty(what: &str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() {
        return Err(StoreError::backend(
            format!("an empty {what}"),
            ErrorClass::Permanent,
            std::io::Error::other("empty id"),
        ));
    }
    Ok(())
}

#[async_trait]
impl LiveStore for DynamoLiveStore {
    async fn put_connection(&self, c: &LiveConnection) -> Result<(), StoreError> {
        refuse_empty("connection id", &c.id)?;
        let doc = serde_json::to_string(c).map_err(encode_error)?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item(ATTR_PK, s(connection_pk(&c.id)))
            .item(ATTR_SK, s(SK_META))
            .item(ATTR_ENTITY, s("live_connection"))
            .item(ATTR_OWNER, s(&c.tenant))
            .item(ATTR_EXPIRES_AT, n(c.expires_at.timestamp()))
            .item(ATTR_DOC, s(doc))
            .send()
            .await
            .map_err(|e| sdk_error("PutItem (live connection)", e))?;
        Ok(())
    }

    async fn get_connection(&self, id: &str) -> Result<Option<LiveConnection>, StoreError> {
        refuse_empty("connection id", id)?;
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ATTR_PK, s(connection_pk(id)))
            .key(ATTR_SK, s(SK_META))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem (live connection)", e))?;
        out.item
            .map(|item| decode(&item, "live connection"))
            .transpose()
    }

    async fn remove_connection(&self, id: &str) -> Result<(), StoreError> {
        refuse_empty("connection id", id)?;
        let items = self
            .partition(connection_pk(id), "Query (live connection)")
            .await?;
        for item in items {
            let sk = super::string(&item, ATTR_SK)?.to_owned();
            if let Some(job_id) = sk.strip_prefix("SUB#") {
                self.delete(
                    subscription_pk(job_id),
                    connection_pk(id),
                    "DeleteItem (live subscription)",
                )
                .await?;
            }
            self.delete(connection_pk(id), sk, "DeleteItem (live connection)")
                .await?;
        }
        Ok(())
    }

    async fn subscribe(&self, sub: &LiveSubscription) -> Result<(), StoreError> {
        refuse_empty("connection id", &sub.connection_id)?;
        refuse_empty("job id", &sub.job_id)?;
        let doc = serde_json::to_string(sub).map_err(encode_error)?;
        let expires = n(sub.expires_at.timestamp());
        // The index item first: a subscription is never left where its connection's removal
        // would not find it.
        self.client
            .put_item()
            .table_name(&self.table)
            .item(ATTR_PK, s(connection_pk(&sub.connection_id)))
            .item(ATTR_SK, s(subscription_pk(&sub.job_id)))
            .item(ATTR_ENTITY, s("live_subscription_index"))
            .item(ATTR_EXPIRES_AT, expires.clone())
            .send()
            .await
            .map_err(|e| sdk_error("PutItem (live subscription index)", e))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item(ATTR_PK, s(subscription_pk(&sub.job_id)))
            .item(ATTR_SK, s(connection_pk(&sub.connection_id)))
            .item(ATTR_ENTITY, s("live_subscription"))
            .item(ATTR_OWNER, s(&sub.tenant))
            .item(ATTR_SEQ, n(sub.snapshot.seq))
            .item(ATTR_EXPIRES_AT, expires)
            .item(ATTR_DOC, s(doc))
            .send()
            .await
            .map_err(|e| sdk_error("PutItem (live subscription)", e))?;
        Ok(())
    }

    async fn unsubscribe(&self, connection_id: &str, job_id: &str) -> Result<(), StoreError> {
        refuse_empty("connection id", connection_id)?;
        refuse_empty("job id", job_id)?;
        self.delete(
            subscription_pk(job_id),
            connection_pk(connection_id),
            "DeleteItem (live subscription)",
        )
        .await?;
        self.delete(
            connection_pk(connection_id),
            subscription_pk(job_id),
            "DeleteItem (live subscription index)",
        )
        .await
    }

    async fn subscribers(&self, job_id: &str) -> Result<Vec<LiveSubscription>, StoreError> {
        refuse_empty("job id", job_id)?;
        let items = self
            .partition(subscription_pk(job_id), "Query (live subscriptions)")
            .await?;
        items
            .iter()
            .map(|item| {
                let mut sub: LiveSubscription = decode(item, "live subscription")?;
                if let Some(text) = item.get(ATTR_SNAPSHOT).and_then(|v| v.as_s().ok()) {
                    sub.snapshot = serde_json::from_str(text).map_err(|e| {
                        StoreError::backend(
                            "stored live snapshot does not parse",
                            ErrorClass::Permanent,
                            e,
                        )
                    })?;
                }
                // The condition's attribute is the authority on the seq.
                sub.snapshot.seq = number(item, ATTR_SEQ)?;
                Ok(sub)
            })
            .collect()
    }

    async fn save_snapshot(
        &self,
        connection_id: &str,
        job_id: &str,
        expected_seq: u64,
        snapshot: &LiveSnapshot,
    ) -> Result<(), StoreError> {
        refuse_empty("connection id", connection_id)?;
        refuse_empty("job id", job_id)?;
        // The snapshot is an attribute of its own beside the doc (which keeps the subscription
        // as made), so a save is one conditional update and never rewrites the rest.
        let doc = serde_json::to_string(snapshot).map_err(encode_error)?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ATTR_PK, s(subscription_pk(job_id)))
            .key(ATTR_SK, s(connection_pk(connection_id)))
            .update_expression("SET #snap = :snap, #seq = :seq")
            .condition_expression("attribute_exists(#pk) AND #seq = :expected")
            .expression_attribute_names("#pk", ATTR_PK)
            .expression_attribute_names("#snap", ATTR_SNAPSHOT)
            .expression_attribute_names("#seq", ATTR_SEQ)
            .expression_attribute_values(":snap", s(doc))
            .expression_attribute_values(":seq", n(snapshot.seq))
            .expression_attribute_values(":expected", n(expected_seq))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => Err(match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => {
                    StoreError::Conflict(format!(
                        "the subscription of {connection_id} to {job_id} moved past seq \
                         {expected_seq} or is gone"
                    ))
                }
                _ => sdk_error("UpdateItem (live snapshot)", err),
            }),
        }
    }
}

/// On subscription items: the latest snapshot as JSON, once one was saved after subscribing
/// (the doc keeps the one it subscribed with).
pub const ATTR_SNAPSHOT: &str = "snapshot";

//! The DynamoDB `JobStore`: jobs, their clip records, assets and idempotency guards in one table
//! (single-table design), with the same semantics as the embedded SQLite store — optimistic
//! versions through condition expressions, atomic idempotency through a transaction.
//!
//! Layout (`PK` / `SK`):
//!
//! | item | PK | SK | other attributes |
//! |---|---|---|---|
//! | job | `JOB#<id>` | `META` | `doc`, `status`, `owner`, `version`, `created_at`, `updated_at`, `idempotency_key`?, `GSI1PK`, `GSI1SK`, `expires_at`? |
//! | clip | `JOB#<id>` | `CLIP#NNN` | `doc`, `job_id`, `clip_index`, `status`, `updated_at`, `expires_at` |
//! | composition | `JOB#<id>` | `COMP#<composition id>` | `doc`, `job_id`, `composition_id`, `parent_composition_id`?, `status`, `created_at`, `updated_at`, `expires_at` |
//! | asset | `ASSET#<id>` | `META` | `doc`, `owner`, `kind`, `created_at` |
//! | idempotency guard | `IDEM#<owner>#<key>` | `META` | `job_id`, `owner`, `idempotency_key`, `created_at`, `expires_at`? |
//! | processing record | `PROC#<source id>` | `META` | `doc`, `status`, `bucket`, `source_key`, `created_at`, `updated_at`, `expires_at`?, `GSI1PK` = `PROCS#<client>`, `GSI1SK` |
//! | raw upload | `UPLOAD#<upload id>` | `META` | `doc`, `owner`, `status`, `version`, `source_key`, `created_at`, `updated_at`, `expires_at` |
//! | lease pool | `LEASE#<pool>` | `LEASE` | `pool`, `holders` (holder → expiry, epoch ms), `version`, `expires_at` |
//! | tenant's active jobs | `QUOTA#<tenant>` | `ACTIVE` | `active` (string set of job ids) |
//! | tenant's day | `QUOTA#<tenant>` | `DAY#<YYYY-MM-DD>` | `used` (seconds), `expires_at` |
//! | quota claim | `QUOTA#<tenant>` | `CLAIM#<job>` | `job`, `day`, `seconds`, `claimed_at` (epoch ms) |
//! | tenant's webhook secrets | `WHSEC#<tenant>` | `META` | `doc`, `owner`, `version` |
//! | webhook delivery attempt | `HOOK#<kind>#<job id>` | `ATTEMPT#<attempt id>` | `doc`, `attempted_at`, `webhook_id`, `outcome`, `expires_at` |
//! | batch of generation requests | `BATCH#<id>` | `META` | `doc`, `owner`, `created_at`, `item_count`, `expires_at` |
//!
//! `GSI1` (`GSI1PK` = `TENANT#<owner>`, `GSI1SK` = `<created_at, RFC 3339 with nanoseconds>#<id>`,
//! projection ALL) lists a tenant's jobs newest first. Every item carries `entity` (`job`, `clip`,
//! `asset`, `idempotency`, `process`, `lease`, `quota`, `webhook_secret`, `webhook_attempt`,
//! `batch`, `composition`) so a raw scan is readable. Webhook secrets and attempts are in
//! `dynamo/webhook.rs`, batches in `dynamo/batch.rs`, compositions in `dynamo/composition.rs`.
//!
//! Lease pools ([`LeaseStore`](vidpipe_domain::ports::LeaseStore), in `dynamo/lease.rs`) keep all
//! of a pool's leases in one item, so a grant is one conditional write on its `version`.
//!
//! Tenant quotas ([`QuotaStore`](vidpipe_domain::ports::QuotaStore), in `dynamo/quota.rs`) are
//! counted by one transaction of conditional writes on the tenant's `QUOTA#` items.
//!
//! Processing records ([`ProcessStore`]) are keyed by the source write's id, so a re-run of the
//! same upload replaces its record: `save_process` puts the whole item, conditional on the
//! version it was read at. A record whose key is under `raw/{client}/` is on `GSI1` in the
//! partition `PROCS#<client>`, apart from the tenant's jobs, so a tenant lists its own.
//!
//! Each record's full value is the `doc` attribute: the same JSON the SQLite store keeps, so
//! floats and nanosecond timestamps roundtrip byte for byte. The other attributes are
//! projections of it for keys, conditions, the index, TTL and people reading the console; the
//! `version` attribute is the authority on the version.

use crate::error::{class_of, describe};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CancellationReason, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, Put,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TimeToLiveSpecification,
    TransactWriteItem,
};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use std::collections::HashMap;
use std::time::Duration;
use vidpipe_domain::ErrorClass;
use vidpipe_domain::asset::{Asset, AssetId};
use vidpipe_domain::job::{ClipRecord, Job, JobId};
use vidpipe_domain::ports::{
    JobPage, JobStore, ProcessPage, ProcessStore, StoreError, UploadStore,
};
use vidpipe_domain::processing::{ProcessJob, ProcessStatus};
use vidpipe_domain::upload::{UploadId, UploadRecord};

mod batch;
mod composition;
mod lease;
mod live;
mod quota;
mod webhook;

pub use composition::{ATTR_COMPOSITION_ID, ATTR_PARENT_COMPOSITION_ID, composition_sk};
pub use lease::{ATTR_HOLDERS, ATTR_POOL, LEASE_TTL_MARGIN, SK_LEASE, lease_pk};
pub use live::{
    ATTR_SEQ, ATTR_SNAPSHOT, DynamoLiveStore, connection_pk, create_live_table, subscription_pk,
};
pub use quota::{
    ATTR_ACTIVE, ATTR_CLAIMED_AT, ATTR_DAY, ATTR_SECONDS, ATTR_USED, SK_QUOTA_ACTIVE,
    quota_claim_sk, quota_day_sk, quota_pk,
};
pub use webhook::{
    ATTR_ATTEMPTED_AT, ATTR_OUTCOME, ATTR_WEBHOOK_ID, delivery_pk, delivery_sk, webhook_secret_pk,
};

/// Partition key of the table.
pub const ATTR_PK: &str = "PK";
/// Sort key of the table.
pub const ATTR_SK: &str = "SK";
/// Partition key of [`INDEX_GSI1`]: `TENANT#<owner>`, on job items only.
pub const ATTR_GSI1PK: &str = "GSI1PK";
/// Sort key of [`INDEX_GSI1`]: `<created_at>#<job id>`, on job items only.
pub const ATTR_GSI1SK: &str = "GSI1SK";
/// The index listing a tenant's jobs by creation time.
pub const INDEX_GSI1: &str = "GSI1";
/// The table's TTL attribute: epoch seconds, set once a job can no longer change.
pub const ATTR_EXPIRES_AT: &str = "expires_at";
/// The record as JSON; the authority for every field except `version`.
pub const ATTR_DOC: &str = "doc";
pub const ATTR_VERSION: &str = "version";
pub const ATTR_STATUS: &str = "status";
pub const ATTR_OWNER: &str = "owner";
pub const ATTR_CREATED_AT: &str = "created_at";
pub const ATTR_UPDATED_AT: &str = "updated_at";
pub const ATTR_IDEMPOTENCY_KEY: &str = "idempotency_key";
pub const ATTR_JOB_ID: &str = "job_id";
pub const ATTR_CLIP_INDEX: &str = "clip_index";
pub const ATTR_KIND: &str = "kind";
/// On processing records: the uploaded object's bucket and key, for people reading the table.
pub const ATTR_BUCKET: &str = "bucket";
pub const ATTR_SOURCE_KEY: &str = "source_key";
/// Which kind of record an item is: `job`, `clip`, `asset`, `idempotency`, `process` or `lease`.
pub const ATTR_ENTITY: &str = "entity";
/// Sort key of every item that is the main record of its partition.
pub const SK_META: &str = "META";

/// How long a finished job (and its clips and idempotency guard) stays before TTL removes it.
/// Matches the `compositions/` lifecycle, so a job record outlives none of its outputs by much.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 24 * 60 * 60);

/// How long a finished processing record stays: as long as its outputs (the `processed/`
/// lifecycle rule), so the record never outlives what it describes by much, nor the reverse.
pub const PROCESS_RETENTION: Duration = Duration::from_secs(180 * 24 * 60 * 60);

/// Clips expire this long after the job would, counted from their last write, so that a job's
/// record (which expires first) never shows a partial clip list.
const CLIP_TTL_GRACE: TimeDelta = TimeDelta::days(1);

/// Pages are capped so one call cannot pull a whole tenant's history into memory (as in SQLite).
const MAX_PAGE: u32 = 1000;

/// How often `create` retries a transaction that lost to a concurrent one on the same items
/// (`TransactionConflict`): the retry then sees the winner's write and reports it.
const CREATE_ATTEMPTS: u32 = 4;

pub fn job_pk(id: &JobId) -> String {
    format!("JOB#{id}")
}

/// Clip sort keys are zero-padded so they sort by index up to 999; `get` sorts by the index
/// itself anyway, so larger indexes stay correct.
pub fn clip_sk(index: u32) -> String {
    format!("CLIP#{index:03}")
}

pub fn asset_pk(id: &AssetId) -> String {
    format!("ASSET#{id}")
}

/// `PROC#<source id>`: one record per source write ([`vidpipe_domain::processing::SourceRef::id`]).
pub fn process_pk(source_id: &str) -> String {
    format!("PROC#{source_id}")
}

/// `UPLOAD#<upload id>`: one announced raw upload.
pub fn upload_pk(id: &UploadId) -> String {
    format!("UPLOAD#{id}")
}

/// `GSI1PK` of a tenant's processing records, a partition apart from its jobs' `TENANT#`.
pub fn process_tenant_pk(owner: &str) -> String {
    format!("PROCS#{owner}")
}

/// `GSI1SK` of a processing record: creation time (fixed precision) and id.
pub fn process_gsi1_sk(created_at: DateTime<Utc>, id: &str) -> String {
    format!(
        "{}#{id}",
        created_at.to_rfc3339_opts(SecondsFormat::Nanos, true)
    )
}

pub fn tenant_pk(owner: &str) -> String {
    format!("TENANT#{owner}")
}

/// Fixed precision (nanoseconds, `Z`) so that string order is time order.
pub fn gsi1_sk(created_at: DateTime<Utc>, id: &JobId) -> String {
    format!(
        "{}#{id}",
        created_at.to_rfc3339_opts(SecondsFormat::Nanos, true)
    )
}

/// `IDEM#<owner>#<key>`. `%` and `#` in the owner are percent-escaped so that no two
/// (owner, key) pairs share a guard: otherwise owner `a#b` with key `c` and owner `a` with key
/// `b#c` would collide, and one tenant would be told the id of another tenant's job.
pub fn idempotency_pk(owner: &str, key: &str) -> String {
    let owner = owner.replace('%', "%25").replace('#', "%23");
    format!("IDEM#{owner}#{key}")
}

/// The key schema, the `GSI1` index and on-demand billing, as a `CreateTable` request ready to
/// send. Tests and local tooling create the table with it; in AWS the SAM template owns the table
/// and must match this definition.
pub fn table_definition(
    client: &Client,
    table_name: &str,
) -> Result<CreateTableFluentBuilder, StoreError> {
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
    let gsi = GlobalSecondaryIndex::builder()
        .index_name(INDEX_GSI1)
        .key_schema(key(ATTR_GSI1PK, KeyType::Hash).map_err(build_error)?)
        .key_schema(key(ATTR_GSI1SK, KeyType::Range).map_err(build_error)?)
        // ALL: a listing page is one query, with no follow-up reads per job.
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(build_error)?;
    Ok(client
        .create_table()
        .table_name(table_name)
        .attribute_definitions(attr(ATTR_PK).map_err(build_error)?)
        .attribute_definitions(attr(ATTR_SK).map_err(build_error)?)
        .attribute_definitions(attr(ATTR_GSI1PK).map_err(build_error)?)
        .attribute_definitions(attr(ATTR_GSI1SK).map_err(build_error)?)
        .key_schema(key(ATTR_PK, KeyType::Hash).map_err(build_error)?)
        .key_schema(key(ATTR_SK, KeyType::Range).map_err(build_error)?)
        .global_secondary_indexes(gsi)
        .billing_mode(BillingMode::PayPerRequest))
}

/// Creates the table from [`table_definition`], waits until it is active and turns TTL on for
/// [`ATTR_EXPIRES_AT`]. For tests and local tooling.
pub async fn create_table(client: &Client, table_name: &str) -> Result<(), StoreError> {
    table_definition(client, table_name)?
        .send()
        .await
        .map_err(|e| sdk_error("CreateTable", e))?;
    client
        .wait_until_table_exists()
        .table_name(table_name)
        .wait(Duration::from_secs(120))
        .await
        .map_err(|e| {
            StoreError::backend(
                "waiting for the table to become active",
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
        .map_err(|e| sdk_error("UpdateTimeToLive", e))?;
    Ok(())
}

type Item = HashMap<String, AttributeValue>;

/// Job and asset records in one DynamoDB table (layout in the module docs).
///
/// Cheap to clone: the SDK client is a handle. Two stores built from two clients are two
/// independent writers, and DynamoDB's condition checks decide any race between them.
#[derive(Debug, Clone)]
pub struct DynamoJobStore {
    client: Client,
    table: String,
    retention: TimeDelta,
}

impl DynamoJobStore {
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        Self {
            client,
            table: table_name.into(),
            retention: TimeDelta::seconds(DEFAULT_RETENTION.as_secs() as i64),
        }
    }

    /// Changes how long finished jobs are kept (default [`DEFAULT_RETENTION`]).
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = TimeDelta::from_std(retention).unwrap_or(TimeDelta::MAX);
        self
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The `expires_at` a job item gets when saved in this state: set once terminal, counted
    /// from the job's own `updated_at` (the moment it ended), absent while it can still move.
    pub fn job_expiry(&self, job: &Job) -> Option<i64> {
        job.status
            .is_terminal()
            .then(|| epoch_seconds(job.updated_at, self.retention))
    }

    fn job_item(&self, job: &Job) -> Result<Item, StoreError> {
        let mut item = Item::new();
        item.insert(ATTR_PK.into(), s(job_pk(&job.id)));
        item.insert(ATTR_SK.into(), s(SK_META));
        item.insert(ATTR_ENTITY.into(), s("job"));
        item.insert(ATTR_JOB_ID.into(), s(job.id.as_str()));
        item.insert(ATTR_OWNER.into(), s(&job.owner));
        item.insert(ATTR_STATUS.into(), s(job.status.as_str()));
        item.insert(ATTR_VERSION.into(), n(job.version));
        item.insert(ATTR_CREATED_AT.into(), s(timestamp(job.created_at)));
        item.insert(ATTR_UPDATED_AT.into(), s(timestamp(job.updated_at)));
        item.insert(ATTR_GSI1PK.into(), s(tenant_pk(&job.owner)));
        item.insert(ATTR_GSI1SK.into(), s(gsi1_sk(job.created_at, &job.id)));
        item.insert(ATTR_DOC.into(), s(job_doc(job)?));
        if let Some(key) = &job.idempotency_key {
            item.insert(ATTR_IDEMPOTENCY_KEY.into(), s(key));
        }
        if let Some(expires) = self.job_expiry(job) {
            item.insert(ATTR_EXPIRES_AT.into(), n(expires));
        }
        Ok(item)
    }

    fn guard_item(job: &Job, key: &str) -> Item {
        let mut item = Item::new();
        item.insert(ATTR_PK.into(), s(idempotency_pk(&job.owner, key)));
        item.insert(ATTR_SK.into(), s(SK_META));
        item.insert(ATTR_ENTITY.into(), s("idempotency"));
        item.insert(ATTR_JOB_ID.into(), s(job.id.as_str()));
        item.insert(ATTR_OWNER.into(), s(&job.owner));
        item.insert(ATTR_IDEMPOTENCY_KEY.into(), s(key));
        item.insert(ATTR_CREATED_AT.into(), s(timestamp(job.created_at)));
        item
    }

    /// A conditional put that only creates: the condition names the partition key, which every
    /// item has, so it holds exactly when no item exists under the key.
    fn create_only_put(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", ATTR_PK)
            // The failed guard then carries the winner's job id: no second read needed.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// One page of a tenant's items on GSI1, newest first, and the cursor to the next page.
    /// One item past the page tells whether another page exists, so the last page carries no
    /// cursor and no caller ever fetches an empty trailing page.
    async fn newest_first(
        &self,
        gsi_pk: String,
        mut start: Option<Item>,
        limit: usize,
        operation: &str,
    ) -> Result<(Vec<Item>, Option<String>), StoreError> {
        let want = limit + 1;
        let mut items: Vec<Item> = Vec::with_capacity(want);
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(INDEX_GSI1)
                .key_condition_expression("#gpk = :gpk")
                .expression_attribute_names("#gpk", ATTR_GSI1PK)
                .expression_attribute_values(":gpk", s(gsi_pk.clone()))
                .scan_index_forward(false)
                .limit(i32::try_from(want - items.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error(operation, e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() && items.len() < want => start = Some(key),
                _ => break,
            }
        }
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = match items.last() {
            Some(last) if more => Some(encode_cursor(last)?),
            _ => None,
        };
        Ok((items, next_cursor))
    }

    async fn get_item(&self, pk: String, operation: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ATTR_PK, s(pk))
            .key(ATTR_SK, s(SK_META))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(operation, e))?;
        Ok(out.item)
    }

    /// The job id a guard names, read consistently; `None` if the guard is gone.
    async fn guard_job(&self, owner: &str, key: &str) -> Result<Option<JobId>, StoreError> {
        self.get_item(idempotency_pk(owner, key), "GetItem (idempotency guard)")
            .await?
            .map(|item| guard_job_id(&item))
            .transpose()
    }

    /// After a cancelled create transaction: which condition failed, and what that means.
    /// `Ok(None)` asks for another attempt.
    async fn explain_cancelled_create(
        &self,
        job: &Job,
        reasons: &[CancellationReason],
    ) -> Result<Option<StoreError>, StoreError> {
        let failed =
            |i: usize| reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
        if failed(0) {
            return Ok(Some(StoreError::AlreadyExists(format!("job {}", job.id))));
        }
        if let Some(key) = &job.idempotency_key
            && failed(1)
        {
            if let Some(existing) = reasons[1].item().map(guard_job_id).transpose()? {
                return Ok(Some(StoreError::DuplicateIdempotencyKey(existing)));
            }
            // No old item in the reason: read the guard (it can only have expired since).
            return Ok(self
                .guard_job(&job.owner, key)
                .await?
                .map(StoreError::DuplicateIdempotencyKey));
        }
        if reasons.is_empty() {
            // A backend that gives no reasons: look at both items directly.
            if self
                .get_item(job_pk(&job.id), "GetItem (job)")
                .await?
                .is_some()
            {
                return Ok(Some(StoreError::AlreadyExists(format!("job {}", job.id))));
            }
            if let Some(key) = &job.idempotency_key
                && let Some(existing) = self.guard_job(&job.owner, key).await?
            {
                return Ok(Some(StoreError::DuplicateIdempotencyKey(existing)));
            }
            return Ok(None);
        }
        let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("None")).collect();
        if codes.contains(&"TransactionConflict") {
            return Ok(None);
        }
        Err(StoreError::Backend {
            message: format!("create of job {} was cancelled: {codes:?}", job.id),
            class: if codes
                .iter()
                .any(|c| *c == "ThrottlingError" || *c == "ProvisionedThroughputExceeded")
            {
                ErrorClass::Retryable
            } else {
                ErrorClass::Permanent
            },
            source: None,
        })
    }

    /// After a refused save: the item (from the failure, or read now) tells conflict from absence.
    async fn explain_failed_save(
        &self,
        job: &Job,
        old: Option<&Item>,
    ) -> Result<StoreError, StoreError> {
        let current = match old {
            Some(item) => Some(number(item, ATTR_VERSION)?),
            None => match self.get_item(job_pk(&job.id), "GetItem (job)").await? {
                Some(item) => Some(number(&item, ATTR_VERSION)?),
                None => None,
            },
        };
        Ok(match current {
            None => StoreError::NotFound(format!("job {}", job.id)),
            Some(v) => StoreError::Conflict(format!(
                "job {} is at version {v}, not {}",
                job.id, job.version
            )),
        })
    }

    /// Once a job has ended its guard can go when the job goes. Best effort: a guard that keeps
    /// no TTL only costs a small item, so a failure here must not fail the save that ended the job.
    async fn expire_guard(&self, job: &Job, expires_at: i64) {
        let Some(key) = &job.idempotency_key else {
            return;
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ATTR_PK, s(idempotency_pk(&job.owner, key)))
            .key(ATTR_SK, s(SK_META))
            .update_expression("SET #ttl = :ttl")
            .condition_expression("#job = :job")
            .expression_attribute_names("#ttl", ATTR_EXPIRES_AT)
            .expression_attribute_names("#job", ATTR_JOB_ID)
            .expression_attribute_values(":ttl", n(expires_at))
            .expression_attribute_values(":job", s(job.id.as_str()))
            .send()
            .await;
        if let Err(e) = result {
            tracing::warn!(job = %job.id, error = %describe("UpdateItem (idempotency guard TTL)", &e), "idempotency guard keeps no TTL");
        }
    }
}

#[async_trait]
impl JobStore for DynamoJobStore {
    async fn create(&self, job: &Job) -> Result<Job, StoreError> {
        let stored = Job {
            version: 1,
            ..job.clone()
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .client
                .transact_write_items()
                .transact_items(self.create_only_put(self.job_item(&stored)?)?);
            if let Some(key) = &stored.idempotency_key {
                request =
                    request.transact_items(self.create_only_put(Self::guard_item(&stored, key))?);
            }
            let err = match request.send().await {
                Ok(_) => return Ok(stored),
                Err(e) => e,
            };
            let verdict = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    self.explain_cancelled_create(&stored, cancelled.cancellation_reasons())
                        .await?
                }
                _ => return Err(sdk_error("TransactWriteItems (create job)", err)),
            };
            if let Some(refusal) = verdict {
                return Err(refusal);
            }
            if attempt >= CREATE_ATTEMPTS {
                return Err(StoreError::Backend {
                    message: format!(
                        "create of job {} kept conflicting with concurrent transactions",
                        job.id
                    ),
                    class: ErrorClass::Retryable,
                    source: None,
                });
            }
            tokio::time::sleep(Duration::from_millis(25 * u64::from(attempt))).await;
        }
    }

    async fn get(&self, id: &JobId) -> Result<Option<Job>, StoreError> {
        let mut job: Option<Job> = None;
        let mut clips = Vec::new();
        let mut start: Option<Item> = None;
        // One partition holds the job and its clips: one query, paged past DynamoDB's 1 MB limit.
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", ATTR_PK)
                .expression_attribute_values(":pk", s(job_pk(id)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("Query (job)", e))?;
            for item in out.items() {
                let sk = string(item, ATTR_SK)?;
                if sk == SK_META {
                    job = Some(job_from_item(item)?);
                } else if sk.starts_with("CLIP#") {
                    clips.push(decode::<ClipRecord>(item, "clip")?);
                }
                // Other sort keys belong to records this store does not read.
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(job.map(|mut job| {
            clips.sort_by_key(|c| c.index);
            job.clips = clips;
            job
        }))
    }

    async fn save(&self, job: &Job) -> Result<Job, StoreError> {
        let next = job
            .version
            .checked_add(1)
            .ok_or_else(|| StoreError::Conflict(format!("job {} version overflow", job.id)))?;
        let saved = Job {
            version: next,
            ..job.clone()
        };
        let expires = self.job_expiry(&saved);

        // Every projection is rewritten from the saved job, so the item never disagrees with its
        // doc; `expires_at` appears once the job has ended.
        let mut set = vec![
            "#doc = :doc",
            "#status = :status",
            "#version = :next",
            "#owner = :owner",
            "#created = :created",
            "#updated = :updated",
            "#gpk = :gpk",
            "#gsk = :gsk",
        ];
        let mut remove = Vec::new();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ATTR_PK, s(job_pk(&job.id)))
            .key(ATTR_SK, s(SK_META))
            .condition_expression("attribute_exists(#pk) AND #version = :expected")
            .expression_attribute_names("#pk", ATTR_PK)
            .expression_attribute_names("#doc", ATTR_DOC)
            .expression_attribute_names("#status", ATTR_STATUS)
            .expression_attribute_names("#version", ATTR_VERSION)
            .expression_attribute_names("#owner", ATTR_OWNER)
            .expression_attribute_names("#created", ATTR_CREATED_AT)
            .expression_attribute_names("#updated", ATTR_UPDATED_AT)
            .expression_attribute_names("#gpk", ATTR_GSI1PK)
            .expression_attribute_names("#gsk", ATTR_GSI1SK)
            .expression_attribute_names("#idem", ATTR_IDEMPOTENCY_KEY)
            .expression_attribute_names("#ttl", ATTR_EXPIRES_AT)
            .expression_attribute_values(":doc", s(job_doc(&saved)?))
            .expression_attribute_values(":status", s(saved.status.as_str()))
            .expression_attribute_values(":next", n(next))
            .expression_attribute_values(":expected", n(job.version))
            .expression_attribute_values(":owner", s(&saved.owner))
            .expression_attribute_values(":created", s(timestamp(saved.created_at)))
            .expression_attribute_values(":updated", s(timestamp(saved.updated_at)))
            .expression_attribute_values(":gpk", s(tenant_pk(&saved.owner)))
            .expression_attribute_values(":gsk", s(gsi1_sk(saved.created_at, &saved.id)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match &saved.idempotency_key {
            Some(key) => {
                set.push("#idem = :idem");
                request = request.expression_attribute_values(":idem", s(key));
            }
            None => remove.push("#idem"),
        }
        match expires {
            Some(at) => {
                set.push("#ttl = :ttl");
                request = request.expression_attribute_values(":ttl", n(at));
            }
            None => remove.push("#ttl"),
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }

        match request.update_expression(expression).send().await {
            Ok(_) => {}
            Err(err) => {
                return Err(match err.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                        self.explain_failed_save(job, failed.item()).await?
                    }
                    _ => sdk_error("UpdateItem (save job)", err),
                });
            }
        }
        if let Some(at) = expires {
            self.expire_guard(&saved, at).await;
        }
        Ok(saved)
    }

    async fn put_clip(&self, job: &JobId, clip: &ClipRecord) -> Result<(), StoreError> {
        // A clip belongs to a job that exists. A transaction with a condition check on the job
        // would make clip writes contend with the job's saves (TransactionConflict), which is
        // exactly what storing clips apart avoids; jobs are never deleted except by TTL long
        // after they end, so a plain read first is enough.
        if self.get_item(job_pk(job), "GetItem (job)").await?.is_none() {
            return Err(StoreError::NotFound(format!("job {job}")));
        }
        let doc = serde_json::to_string(clip).map_err(encode_error)?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item(ATTR_PK, s(job_pk(job)))
            .item(ATTR_SK, s(clip_sk(clip.index)))
            .item(ATTR_ENTITY, s("clip"))
            .item(ATTR_JOB_ID, s(job.as_str()))
            .item(ATTR_CLIP_INDEX, n(clip.index))
            .item(ATTR_STATUS, s(serde_plain(&clip.status)?))
            .item(ATTR_UPDATED_AT, s(timestamp(clip.updated_at)))
            .item(
                ATTR_EXPIRES_AT,
                n(epoch_seconds(
                    clip.updated_at,
                    self.retention + CLIP_TTL_GRACE,
                )),
            )
            .item(ATTR_DOC, s(doc))
            .send()
            .await
            .map_err(|e| sdk_error("PutItem (clip)", e))?;
        Ok(())
    }

    async fn list(
        &self,
        owner: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<JobPage, StoreError> {
        // A zero limit would hand back an empty page with a cursor forever; one is the least useful page.
        let limit = limit.clamp(1, MAX_PAGE) as usize;
        let start = cursor.map(|c| decode_cursor(c, owner)).transpose()?;
        let (items, next_cursor) = self
            .newest_first(tenant_pk(owner), start, limit, "Query (GSI1 list jobs)")
            .await?;
        let jobs = items
            .iter()
            .map(job_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(JobPage { jobs, next_cursor })
    }

    async fn put_asset(&self, asset: &Asset) -> Result<(), StoreError> {
        let doc = serde_json::to_string(asset).map_err(encode_error)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(ATTR_PK, s(asset_pk(&asset.id)))
            .item(ATTR_SK, s(SK_META))
            .item(ATTR_ENTITY, s("asset"))
            .item(ATTR_OWNER, s(&asset.owner))
            .item(ATTR_KIND, s(serde_plain(&asset.kind)?))
            .item(ATTR_CREATED_AT, s(timestamp(asset.created_at)))
            .item(ATTR_DOC, s(doc))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", ATTR_PK)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => Err(match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => {
                    StoreError::AlreadyExists(format!("asset {}", asset.id))
                }
                _ => sdk_error("PutItem (asset)", err),
            }),
        }
    }

    async fn get_asset(&self, id: &AssetId) -> Result<Option<Asset>, StoreError> {
        self.get_item(asset_pk(id), "GetItem (asset)")
            .await?
            .map(|item| decode::<Asset>(&item, "asset"))
            .transpose()
    }

    async fn find_idempotent(&self, owner: &str, key: &str) -> Result<Option<JobId>, StoreError> {
        self.guard_job(owner, key).await
    }
}

#[async_trait]
impl ProcessStore for DynamoJobStore {
    async fn save_process(&self, job: &ProcessJob) -> Result<ProcessJob, StoreError> {
        let saved = ProcessJob {
            version: job.version.checked_add(1).ok_or_else(|| {
                StoreError::Conflict(format!("processing record {} version overflow", job.id))
            })?,
            ..job.clone()
        };
        let doc = serde_json::to_string(&saved).map_err(encode_error)?;
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(ATTR_PK, s(process_pk(&saved.id)))
            .item(ATTR_SK, s(SK_META))
            .item(ATTR_ENTITY, s("process"))
            .item(ATTR_STATUS, s(saved.status.as_str()))
            .item(ATTR_VERSION, n(saved.version))
            .item(ATTR_BUCKET, s(&saved.source.bucket))
            .item(ATTR_SOURCE_KEY, s(&saved.source.key))
            .item(ATTR_CREATED_AT, s(timestamp(saved.created_at)))
            .item(ATTR_UPDATED_AT, s(timestamp(saved.updated_at)))
            .item(ATTR_DOC, s(doc));
        // A record under raw/{client}/ is listed on GSI1 in its tenant's own partition, apart
        // from the tenant's generation jobs.
        if let Some(owner) = saved.owner() {
            request = request
                .item(ATTR_GSI1PK, s(process_tenant_pk(owner)))
                .item(ATTR_GSI1SK, s(process_gsi1_sk(saved.created_at, &saved.id)));
        }
        // The whole item is replaced, so only the version it was read at may be there: none for
        // a first save, else the same number.
        request = if job.version == 0 {
            request
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", ATTR_PK)
        } else {
            request
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", ATTR_VERSION)
                .expression_attribute_values(":expected", n(job.version))
        };
        // A running record must not expire under a long job; an ended one goes with its outputs.
        if saved.status != ProcessStatus::Running {
            let retention = TimeDelta::seconds(PROCESS_RETENTION.as_secs() as i64);
            request = request.item(
                ATTR_EXPIRES_AT,
                n(epoch_seconds(saved.updated_at, retention)),
            );
        }
        match request.send().await {
            Ok(_) => Ok(saved),
            Err(err) => Err(match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => {
                    StoreError::Conflict(format!(
                        "processing record {} changed since version {}",
                        job.id, job.version
                    ))
                }
                _ => sdk_error("PutItem (processing record)", err),
            }),
        }
    }

    async fn list_process(
        &self,
        owner: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<ProcessPage, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE) as usize;
        let start = cursor
            .map(|c| decode_process_cursor(c, owner))
            .transpose()?;
        let (items, next_cursor) = self
            .newest_first(
                process_tenant_pk(owner),
                start,
                limit,
                "Query (GSI1 list processing records)",
            )
            .await?;
        let jobs = items
            .iter()
            .map(|item| decode::<ProcessJob>(item, "processing"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProcessPage { jobs, next_cursor })
    }

    async fn get_process(&self, id: &str) -> Result<Option<ProcessJob>, StoreError> {
        self.get_item(process_pk(id), "GetItem (processing record)")
            .await?
            .map(|item| decode::<ProcessJob>(&item, "processing"))
            .transpose()
    }
}

// ---- items ----

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn epoch_seconds(from: DateTime<Utc>, after: TimeDelta) -> i64 {
    from.checked_add_signed(after)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
        .timestamp()
}

/// The job's JSON as stored: clips live in their own items, so the doc never carries them.
fn job_doc(job: &Job) -> Result<String, StoreError> {
    serde_json::to_string(&Job {
        clips: Vec::new(),
        ..job.clone()
    })
    .map_err(encode_error)
}

/// A unit enum's serde name (`done`, `logo`), the same text its JSON carries.
fn serde_plain<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    match serde_json::to_value(value).map_err(encode_error)? {
        serde_json::Value::String(text) => Ok(text),
        other => Ok(other.to_string()),
    }
}

fn string<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        Some(_) => Err(corrupt(format!("attribute {name} is not a string"))),
        None => Err(corrupt(format!("attribute {name} is missing"))),
    }
}

fn number(item: &Item, name: &str) -> Result<u64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| corrupt(format!("attribute {name} is not a whole number: {v:?}"))),
        Some(_) => Err(corrupt(format!("attribute {name} is not a number"))),
        None => Err(corrupt(format!("attribute {name} is missing"))),
    }
}

fn decode<T: serde::de::DeserializeOwned>(item: &Item, what: &str) -> Result<T, StoreError> {
    let doc = string(item, ATTR_DOC)?;
    serde_json::from_str(doc).map_err(|e| {
        StoreError::backend(
            format!("stored {what} record does not parse"),
            ErrorClass::Permanent,
            e,
        )
    })
}

fn job_from_item(item: &Item) -> Result<Job, StoreError> {
    let mut job: Job = decode(item, "job")?;
    job.version = number(item, ATTR_VERSION)?;
    Ok(job)
}

fn guard_job_id(item: &Item) -> Result<JobId, StoreError> {
    let raw = string(item, ATTR_JOB_ID)?;
    JobId::parse(raw).map_err(|e| corrupt(format!("idempotency guard names no job: {e}")))
}

#[async_trait]
impl UploadStore for DynamoJobStore {
    async fn save_upload(&self, upload: &UploadRecord) -> Result<UploadRecord, StoreError> {
        let saved = UploadRecord {
            version: upload.version.checked_add(1).ok_or_else(|| {
                StoreError::Conflict(format!("upload {} version overflow", upload.id))
            })?,
            ..upload.clone()
        };
        let doc = serde_json::to_string(&saved).map_err(encode_error)?;
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(ATTR_PK, s(upload_pk(&saved.id)))
            .item(ATTR_SK, s(SK_META))
            .item(ATTR_ENTITY, s("upload"))
            .item(ATTR_OWNER, s(&saved.owner))
            .item(ATTR_STATUS, s(saved.status.as_str()))
            .item(ATTR_VERSION, n(saved.version))
            .item(ATTR_SOURCE_KEY, s(&saved.key))
            .item(ATTR_CREATED_AT, s(timestamp(saved.created_at)))
            .item(ATTR_UPDATED_AT, s(timestamp(saved.updated_at)))
            // An announcement is kept as long as the processing record of its object.
            .item(
                ATTR_EXPIRES_AT,
                n(epoch_seconds(
                    saved.updated_at,
                    TimeDelta::seconds(PROCESS_RETENTION.as_secs() as i64),
                )),
            )
            .item(ATTR_DOC, s(doc));
        request = if upload.version == 0 {
            request
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", ATTR_PK)
        } else {
            request
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", ATTR_VERSION)
                .expression_attribute_values(":expected", n(upload.version))
        };
        match request.send().await {
            Ok(_) => Ok(saved),
            Err(err) => Err(match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => {
                    StoreError::Conflict(format!(
                        "upload {} changed since version {}",
                        upload.id, upload.version
                    ))
                }
                _ => sdk_error("PutItem (upload)", err),
            }),
        }
    }

    async fn get_upload(&self, id: &UploadId) -> Result<Option<UploadRecord>, StoreError> {
        self.get_item(upload_pk(id), "GetItem (upload)")
            .await?
            .map(|item| decode::<UploadRecord>(&item, "upload"))
            .transpose()
    }
}

// ---- cursors ----

/// The attributes that position a query on `GSI1`: the index keys plus the table keys.
const CURSOR_KEYS: [&str; 4] = [ATTR_PK, ATTR_SK, ATTR_GSI1PK, ATTR_GSI1SK];

/// Hex of the JSON of the last returned item's key (what DynamoDB would give as
/// `LastEvaluatedKey` had the query stopped there).
fn encode_cursor(last: &Item) -> Result<String, StoreError> {
    let mut key = serde_json::Map::new();
    for name in CURSOR_KEYS {
        key.insert(
            name.to_owned(),
            serde_json::Value::String(string(last, name)?.to_owned()),
        );
    }
    Ok(hex::encode(serde_json::Value::Object(key).to_string()))
}

/// Accepts only what [`encode_cursor`] makes, for this owner: a cursor is opaque to callers, and
/// one naming another tenant's partition must not be honoured.
fn decode_cursor(cursor: &str, owner: &str) -> Result<Item, StoreError> {
    let invalid = || StoreError::Backend {
        message: "invalid cursor".to_owned(),
        class: ErrorClass::Permanent,
        source: None,
    };
    let bytes = hex::decode(cursor).map_err(|_| invalid())?;
    let fields: HashMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if fields.len() != CURSOR_KEYS.len()
        || CURSOR_KEYS.iter().any(|k| !fields.contains_key(*k))
        || fields.get(ATTR_GSI1PK) != Some(&tenant_pk(owner))
        || fields.get(ATTR_SK).map(String::as_str) != Some(SK_META)
        || !fields.get(ATTR_PK).is_some_and(|pk| pk.starts_with("JOB#"))
    {
        return Err(invalid());
    }
    Ok(fields.into_iter().map(|(k, v)| (k, s(v))).collect())
}

/// [`decode_cursor`] for a tenant's processing records: the same shape, in the tenant's
/// `PROCS#` partition and on a `PROC#` item.
fn decode_process_cursor(cursor: &str, owner: &str) -> Result<Item, StoreError> {
    let invalid = || StoreError::Backend {
        message: "invalid cursor".to_owned(),
        class: ErrorClass::Permanent,
        source: None,
    };
    let bytes = hex::decode(cursor).map_err(|_| invalid())?;
    let fields: HashMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if fields.len() != CURSOR_KEYS.len()
        || CURSOR_KEYS.iter().any(|k| !fields.contains_key(*k))
        || fields.get(ATTR_GSI1PK) != Some(&process_tenant_pk(owner))
        || fields.get(ATTR_SK).map(String::as_str) != Some(SK_META)
        || !fields
            .get(ATTR_PK)
            .is_some_and(|pk| pk.starts_with("PROC#"))
    {
        return Err(invalid());
    }
    Ok(fields.into_iter().map(|(k, v)| (k, s(v))).collect())
}

// ---- errors ----

fn sdk_error<E>(operation: &str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    StoreError::Backend {
        message: describe(operation, &err),
        class: class_of(&err),
        source: Some(Box::new(err)),
    }
}

fn build_error(e: BuildError) -> StoreError {
    StoreError::backend("cannot build a DynamoDB request", ErrorClass::Permanent, e)
}

fn encode_error(e: serde_json::Error) -> StoreError {
    StoreError::backend("cannot encode a record as JSON", ErrorClass::Permanent, e)
}

fn corrupt(message: String) -> StoreError {
    StoreError::Backend {
        message: format!("corrupt record: {message}"),
        class: ErrorClass::Permanent,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_layout() {
        let id = JobId::parse("job_0123456789abcdef0123456789abcdef").expect("id");
        assert_eq!(job_pk(&id), "JOB#job_0123456789abcdef0123456789abcdef");
        assert_eq!(clip_sk(7), "CLIP#007");
        assert_eq!(tenant_pk("alice"), "TENANT#alice");
        assert_eq!(idempotency_pk("alice", "k1"), "IDEM#alice#k1");
        assert_eq!(process_pk("ab12"), "PROC#ab12");
        assert_ne!(idempotency_pk("a#b", "c"), idempotency_pk("a", "b#c"));
        let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(
            gsi1_sk(t, &id),
            "2026-01-02T03:04:05.000000000Z#job_0123456789abcdef0123456789abcdef"
        );
    }

    #[test]
    fn cursors_roundtrip_only_for_their_owner() {
        let mut item = Item::new();
        item.insert(ATTR_PK.into(), s("JOB#job_x"));
        item.insert(ATTR_SK.into(), s(SK_META));
        item.insert(ATTR_GSI1PK.into(), s(tenant_pk("alice")));
        item.insert(ATTR_GSI1SK.into(), s("2026#job_x"));
        item.insert(ATTR_DOC.into(), s("{}"));
        let cursor = encode_cursor(&item).expect("encode");
        let key = decode_cursor(&cursor, "alice").expect("decode");
        assert_eq!(key.len(), 4);
        assert_eq!(key.get(ATTR_GSI1SK), Some(&s("2026#job_x")));
        for (bad, owner) in [(cursor.as_str(), "bob"), ("zz", "alice"), ("7b7d", "alice")] {
            let err = decode_cursor(bad, owner).expect_err("invalid");
            assert_eq!(err.to_string(), "store backend error: invalid cursor");
            assert_eq!(err.class(), ErrorClass::Permanent);
        }
    }
}

//! The DynamoDB `QuotaStore`: a tenant's quotas in one partition of the single table, counted
//! by conditional writes in one transaction.
//!
//! Items under `PK` = `QUOTA#<tenant>` (`entity` = `quota`):
//! - `SK` = `ACTIVE`: `active`, the string set of the tenant's claimed jobs, so the concurrency
//!   check is `size(active) < :k` on the very item the claim is added to;
//! - `SK` = `DAY#<YYYY-MM-DD>`: `used`, seconds charged to that UTC day, checked as
//!   `used <= :budget - :seconds`; `expires_at` (the table's TTL) two days after the day ends;
//! - `SK` = `CLAIM#<job>`: one per claimed job, with the `day` and `seconds` it was charged and
//!   `claimed_at` (epoch ms). It is the guard that makes a repeated acquire count once, and what
//!   a release reads to know what to refund; deleting it in the release transaction is what
//!   makes a second release a no-op.
//!
//! `acquire` is one `TransactWriteItems`: put the claim (if absent), add the job to `active`
//! (if under the limit), add the seconds to the day (if within the budget). All or nothing; the
//! cancellation reasons say which condition refused. `release` is another: delete the claim (if
//! present), remove the job from `active`, and on refund take the seconds off its day.
//! Transactions that lose to a concurrent one on the same items (`TransactionConflict`) retry a
//! bounded number of times. Names need no escaping: the tenant is the rest of a partition key
//! behind a prefix no other item uses, and jobs are set members or the rest of a sort key.

use super::{
    ATTR_ENTITY, ATTR_EXPIRES_AT, ATTR_PK, ATTR_SK, DynamoJobStore, Item, build_error, corrupt, n,
    number, s, sdk_error, string,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Delete, Put, TransactWriteItem, Update,
};
use chrono::{DateTime, Days, NaiveDate, Utc};
use std::time::Duration;
use vidpipe_domain::ErrorClass;
use vidpipe_domain::ports::{QuotaStore, StoreError, check_quota_names};
use vidpipe_domain::quota::{
    ActiveClaim, Admission, QuotaClaim, QuotaKind, QuotaLimits, QuotaUsage,
};

pub const SK_QUOTA_ACTIVE: &str = "ACTIVE";
/// On the `ACTIVE` item: the string set of claimed jobs.
pub const ATTR_ACTIVE: &str = "active";
/// On `DAY#` items: seconds charged.
pub const ATTR_USED: &str = "used";
/// On `CLAIM#` items.
pub const ATTR_DAY: &str = "day";
pub const ATTR_SECONDS: &str = "seconds";
pub const ATTR_CLAIMED_AT: &str = "claimed_at";

/// How long a day's item outlives the day: long enough that a late refund or a report still
/// finds it, short enough that a tenant's partition does not grow for ever.
const DAY_RETENTION_DAYS: u64 = 2;

/// Transaction attempts before giving up on a storm of conflicts (each lost round means another
/// caller's transaction landed).
const QUOTA_ATTEMPTS: u32 = 16;

/// `QUOTA#<tenant>`.
pub fn quota_pk(tenant: &str) -> String {
    format!("QUOTA#{tenant}")
}

/// `DAY#<YYYY-MM-DD>`.
pub fn quota_day_sk(day: NaiveDate) -> String {
    format!("DAY#{day}")
}

/// `CLAIM#<job>`.
pub fn quota_claim_sk(job: &str) -> String {
    format!("CLAIM#{job}")
}

/// The TTL of a day's item: epoch seconds, [`DAY_RETENTION_DAYS`] after the day ends.
fn day_expiry(day: NaiveDate) -> i64 {
    day.checked_add_days(Days::new(1 + DAY_RETENTION_DAYS))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(i64::MAX, |t| t.and_utc().timestamp())
}

/// What a cancelled transaction came to.
enum Cancelled {
    /// The condition at this index refused.
    Condition(usize),
    /// Lost to a concurrent transaction: try again.
    Conflict,
}

#[async_trait]
impl QuotaStore for DynamoJobStore {
    async fn acquire(
        &self,
        claim: &QuotaClaim,
        limits: &QuotaLimits,
    ) -> Result<Admission, StoreError> {
        check_quota_names(&claim.tenant, &claim.job)?;
        if limits.is_unlimited() {
            return Ok(Admission::Granted);
        }
        if let Some(budget) = limits.daily_output_seconds
            && claim.output_seconds > budget
        {
            // No write can ever fit it, and `:budget - :seconds` would go below zero.
            let usage = self.usage(&claim.tenant, claim.day).await?;
            return Ok(Admission::Refused {
                quota: QuotaKind::DailyOutputMinutes,
                usage,
            });
        }
        for attempt in 1..=QUOTA_ATTEMPTS {
            let items = self.acquire_items(claim, limits)?;
            let cancelled = match self.transact(items, "acquire quota").await? {
                None => return Ok(Admission::Granted),
                Some(c) => c,
            };
            let quota = match cancelled {
                Cancelled::Condition(0) => return Ok(Admission::Granted),
                Cancelled::Condition(1) => QuotaKind::ConcurrentJobs,
                Cancelled::Condition(_) => QuotaKind::DailyOutputMinutes,
                Cancelled::Conflict => {
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
            };
            let usage = self.usage(&claim.tenant, claim.day).await?;
            return Ok(Admission::Refused { quota, usage });
        }
        Err(conflict(&claim.tenant, "acquire"))
    }

    async fn release(&self, tenant: &str, job: &str, refund: bool) -> Result<(), StoreError> {
        check_quota_names(tenant, job)?;
        for attempt in 1..=QUOTA_ATTEMPTS {
            let Some(item) = self
                .get_quota_item(tenant, &quota_claim_sk(job), "GetItem (quota claim)")
                .await?
            else {
                return Ok(());
            };
            let day = string(&item, ATTR_DAY)?;
            let day = NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .map_err(|e| corrupt(format!("quota claim {job:?} has day {day:?}: {e}")))?;
            let seconds = number(&item, ATTR_SECONDS)?;
            let items = self.release_items(tenant, job, refund.then_some((day, seconds)))?;
            match self.transact(items, "release quota").await? {
                // Done, or another release deleted the claim between the read and the write.
                None | Some(Cancelled::Condition(_)) => return Ok(()),
                Some(Cancelled::Conflict) => tokio::time::sleep(backoff(attempt)).await,
            }
        }
        Err(conflict(tenant, "release"))
    }

    async fn usage(&self, tenant: &str, day: NaiveDate) -> Result<QuotaUsage, StoreError> {
        let active = self.active_set(tenant).await?.len();
        let used = match self
            .get_quota_item(tenant, &quota_day_sk(day), "GetItem (quota day)")
            .await?
        {
            Some(item) => signed(&item, ATTR_USED)?.max(0) as u64,
            None => 0,
        };
        Ok(QuotaUsage {
            active_jobs: u32::try_from(active).unwrap_or(u32::MAX),
            output_seconds: used,
        })
    }

    async fn active(&self, tenant: &str) -> Result<Vec<ActiveClaim>, StoreError> {
        let mut claims = Vec::new();
        for job in self.active_set(tenant).await? {
            // A member without its claim can only be mid-release; it is reported with no age
            // worth trusting, so a reconciler treats it as new and leaves it.
            let claimed_at = match self
                .get_quota_item(tenant, &quota_claim_sk(&job), "GetItem (quota claim)")
                .await?
            {
                Some(item) => {
                    let ms = signed(&item, ATTR_CLAIMED_AT)?;
                    DateTime::<Utc>::from_timestamp_millis(ms)
                        .ok_or_else(|| corrupt(format!("quota claim {job:?} has time {ms}")))?
                }
                None => Utc::now(),
            };
            claims.push(ActiveClaim { job, claimed_at });
        }
        claims.sort_by_key(|c| c.claimed_at);
        Ok(claims)
    }
}

impl DynamoJobStore {
    fn acquire_items(
        &self,
        claim: &QuotaClaim,
        limits: &QuotaLimits,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let pk = quota_pk(&claim.tenant);
        let put = Put::builder()
            .table_name(&self.table)
            .item(ATTR_PK, s(&pk))
            .item(ATTR_SK, s(quota_claim_sk(&claim.job)))
            .item(ATTR_ENTITY, s("quota"))
            .item("job", s(&claim.job))
            .item(ATTR_DAY, s(claim.day.to_string()))
            .item(ATTR_SECONDS, n(claim.output_seconds))
            .item(ATTR_CLAIMED_AT, n(claim.claimed_at.timestamp_millis()))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", ATTR_PK)
            .build()
            .map_err(build_error)?;
        let mut active = Update::builder()
            .table_name(&self.table)
            .key(ATTR_PK, s(&pk))
            .key(ATTR_SK, s(SK_QUOTA_ACTIVE))
            .update_expression("ADD #active :job SET #entity = :entity")
            .expression_attribute_names("#active", ATTR_ACTIVE)
            .expression_attribute_names("#entity", ATTR_ENTITY)
            .expression_attribute_values(":job", AttributeValue::Ss(vec![claim.job.clone()]))
            .expression_attribute_values(":entity", s("quota"));
        if let Some(k) = limits.concurrent_jobs {
            active = active
                .condition_expression("attribute_not_exists(#active) OR size(#active) < :k")
                .expression_attribute_values(":k", n(k));
        }
        let mut day = Update::builder()
            .table_name(&self.table)
            .key(ATTR_PK, s(&pk))
            .key(ATTR_SK, s(quota_day_sk(claim.day)))
            .update_expression("ADD #used :seconds SET #entity = :entity, #expires = :expires")
            .expression_attribute_names("#used", ATTR_USED)
            .expression_attribute_names("#entity", ATTR_ENTITY)
            .expression_attribute_names("#expires", ATTR_EXPIRES_AT)
            .expression_attribute_values(":seconds", n(claim.output_seconds))
            .expression_attribute_values(":entity", s("quota"))
            .expression_attribute_values(":expires", n(day_expiry(claim.day)));
        if let Some(budget) = limits.daily_output_seconds {
            // `acquire` refused a claim over the whole budget before getting here.
            let room = budget.saturating_sub(claim.output_seconds);
            day = day
                .condition_expression("attribute_not_exists(#used) OR #used <= :room")
                .expression_attribute_values(":room", n(room));
        }
        Ok(vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder()
                .update(active.build().map_err(build_error)?)
                .build(),
            TransactWriteItem::builder()
                .update(day.build().map_err(build_error)?)
                .build(),
        ])
    }

    fn release_items(
        &self,
        tenant: &str,
        job: &str,
        refund: Option<(NaiveDate, u64)>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let pk = quota_pk(tenant);
        let delete = Delete::builder()
            .table_name(&self.table)
            .key(ATTR_PK, s(&pk))
            .key(ATTR_SK, s(quota_claim_sk(job)))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", ATTR_PK)
            .build()
            .map_err(build_error)?;
        let active = Update::builder()
            .table_name(&self.table)
            .key(ATTR_PK, s(&pk))
            .key(ATTR_SK, s(SK_QUOTA_ACTIVE))
            .update_expression("DELETE #active :job")
            .expression_attribute_names("#active", ATTR_ACTIVE)
            .expression_attribute_values(":job", AttributeValue::Ss(vec![job.to_owned()]))
            .build()
            .map_err(build_error)?;
        let mut items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder().update(active).build(),
        ];
        if let Some((day, seconds)) = refund {
            // If the day's item has expired, this recreates it below zero, with its TTL: a
            // past day's figure that nothing reads and that goes away again by itself.
            let update = Update::builder()
                .table_name(&self.table)
                .key(ATTR_PK, s(&pk))
                .key(ATTR_SK, s(quota_day_sk(day)))
                .update_expression(
                    "ADD #used :refund SET #expires = if_not_exists(#expires, :expires)",
                )
                .expression_attribute_names("#used", ATTR_USED)
                .expression_attribute_names("#expires", ATTR_EXPIRES_AT)
                .expression_attribute_values(":refund", n(-(seconds.min(i64::MAX as u64) as i64)))
                .expression_attribute_values(":expires", n(day_expiry(day)))
                .build()
                .map_err(build_error)?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        Ok(items)
    }

    /// Runs a transaction: `None` when it landed, else why it was cancelled.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        operation: &str,
    ) -> Result<Option<Cancelled>, StoreError> {
        let err = match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => return Ok(None),
            Err(e) => e,
        };
        match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                cancelled(c.cancellation_reasons(), operation).map(Some)
            }
            _ => Err(sdk_error(&format!("TransactWriteItems ({operation})"), err)),
        }
    }

    async fn get_quota_item(
        &self,
        tenant: &str,
        sk: &str,
        operation: &str,
    ) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ATTR_PK, s(quota_pk(tenant)))
            .key(ATTR_SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(operation, e))?;
        Ok(out.item)
    }

    async fn active_set(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        let item = self
            .get_quota_item(tenant, SK_QUOTA_ACTIVE, "GetItem (quota active)")
            .await?;
        match item.as_ref().and_then(|i| i.get(ATTR_ACTIVE)) {
            None => Ok(Vec::new()),
            Some(AttributeValue::Ss(jobs)) => Ok(jobs.clone()),
            Some(_) => Err(corrupt(format!(
                "attribute {ATTR_ACTIVE} is not a string set"
            ))),
        }
    }
}

/// Which condition refused, or a conflict to retry; anything else is an error of its class.
fn cancelled(reasons: &[CancellationReason], operation: &str) -> Result<Cancelled, StoreError> {
    let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("None")).collect();
    if let Some(i) = codes.iter().position(|c| *c == "ConditionalCheckFailed") {
        return Ok(Cancelled::Condition(i));
    }
    if codes.is_empty() || codes.contains(&"TransactionConflict") {
        return Ok(Cancelled::Conflict);
    }
    Err(StoreError::Backend {
        message: format!("{operation} was cancelled: {codes:?}"),
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

/// A number that may be negative (a refunded day, a timestamp).
fn signed(item: &Item, name: &str) -> Result<i64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| corrupt(format!("attribute {name} is not a whole number: {v:?}"))),
        Some(_) => Err(corrupt(format!("attribute {name} is not a number"))),
        None => Err(corrupt(format!("attribute {name} is missing"))),
    }
}

fn conflict(tenant: &str, operation: &str) -> StoreError {
    StoreError::Conflict(format!(
        "quotas of {tenant:?} kept changing during {operation} ({QUOTA_ATTEMPTS} attempts)"
    ))
}

/// Grows with the attempt, with jitter, so racers that lost together do not retry together.
fn backoff(attempt: u32) -> Duration {
    use std::hash::BuildHasher;
    let jitter = std::collections::hash_map::RandomState::new().hash_one(attempt) % 10;
    Duration::from_millis(5 * u64::from(attempt.min(8)) + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_keys_follow_the_layout() {
        assert_eq!(quota_pk("acme"), "QUOTA#acme");
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        assert_eq!(quota_day_sk(day), "DAY#2026-12-01");
        assert_eq!(quota_claim_sk("job_1"), "CLAIM#job_1");
        // 2026-12-04T00:00:00Z: two whole days after the day ends.
        assert_eq!(day_expiry(day), 1_796_342_400);
    }
}

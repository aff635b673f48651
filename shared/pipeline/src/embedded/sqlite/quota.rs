//! The embedded `QuotaStore`: one row per claimed job in `quota_claims` and one per tenant and
//! day in `quota_days`, in the same SQLite file, so every process on the machine that opens it
//! shares the tenant's limits.
//!
//! `acquire` and `release` are each one IMMEDIATE transaction: SQLite's write lock is taken
//! before reading, so the count and the charge checked are still the count and the charge when
//! the claim is written, across handles and processes alike.

use super::{SqliteJobStore, corrupt, sql_error};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use vidpipe_domain::ports::{QuotaStore, StoreError, check_quota_names};
use vidpipe_domain::quota::{
    ActiveClaim, Admission, QuotaClaim, QuotaKind, QuotaLimits, QuotaUsage,
};

#[async_trait::async_trait]
impl QuotaStore for SqliteJobStore {
    async fn acquire(
        &self,
        claim: &QuotaClaim,
        limits: &QuotaLimits,
    ) -> Result<Admission, StoreError> {
        check_quota_names(&claim.tenant, &claim.job)?;
        if limits.is_unlimited() {
            return Ok(Admission::Granted);
        }
        let (claim, limits) = (claim.clone(), *limits);
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            let held: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM quota_claims WHERE tenant = ?1 AND job = ?2",
                    [&claim.tenant, &claim.job],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_error)?;
            if held.is_some() {
                return Ok(Admission::Granted);
            }
            let day = claim.day.to_string();
            let usage = usage_in(&tx, &claim.tenant, &day)?;
            let refused = |quota| Ok(Admission::Refused { quota, usage });
            if let Some(k) = limits.concurrent_jobs
                && usage.active_jobs >= k
            {
                return refused(QuotaKind::ConcurrentJobs);
            }
            if let Some(budget) = limits.daily_output_seconds
                && usage.output_seconds.saturating_add(claim.output_seconds) > budget
            {
                return refused(QuotaKind::DailyOutputMinutes);
            }
            let seconds = to_i64(claim.output_seconds)?;
            tx.execute(
                "INSERT INTO quota_claims (tenant, job, day, seconds, claimed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    claim.tenant,
                    claim.job,
                    day,
                    seconds,
                    claim.claimed_at.timestamp_millis()
                ],
            )
            .map_err(sql_error)?;
            tx.execute(
                "INSERT INTO quota_days (tenant, day, used) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant, day) DO UPDATE SET used = used + excluded.used",
                params![claim.tenant, day, seconds],
            )
            .map_err(sql_error)?;
            tx.commit().map_err(sql_error)?;
            Ok(Admission::Granted)
        })
        .await
    }

    async fn release(&self, tenant: &str, job: &str, refund: bool) -> Result<(), StoreError> {
        check_quota_names(tenant, job)?;
        let (tenant, job) = (tenant.to_owned(), job.to_owned());
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            let claimed: Option<(String, i64)> = tx
                .query_row(
                    "DELETE FROM quota_claims WHERE tenant = ?1 AND job = ?2 RETURNING day, seconds",
                    [&tenant, &job],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(sql_error)?;
            // No claim: never claimed, or released already. Either way there is nothing to free
            // or refund, which is what makes a duplicate delivery harmless.
            if let Some((day, seconds)) = claimed
                && refund
            {
                tx.execute(
                    "UPDATE quota_days SET used = MAX(used - ?3, 0) WHERE tenant = ?1 AND day = ?2",
                    params![tenant, day, seconds],
                )
                .map_err(sql_error)?;
            }
            tx.commit().map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn usage(&self, tenant: &str, day: NaiveDate) -> Result<QuotaUsage, StoreError> {
        let (tenant, day) = (tenant.to_owned(), day.to_string());
        self.with_conn(move |conn| usage_in(conn, &tenant, &day))
            .await
    }

    async fn active(&self, tenant: &str) -> Result<Vec<ActiveClaim>, StoreError> {
        let tenant = tenant.to_owned();
        self.with_conn(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT job, claimed_at FROM quota_claims WHERE tenant = ?1 ORDER BY claimed_at",
                )
                .map_err(sql_error)?;
            let rows = stmt
                .query_map([&tenant], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(sql_error)?;
            rows.map(|row| {
                let (job, ms) = row.map_err(sql_error)?;
                let claimed_at = DateTime::<Utc>::from_timestamp_millis(ms)
                    .ok_or_else(|| corrupt(format!("quota claim {job:?} has time {ms}")))?;
                Ok(ActiveClaim { job, claimed_at })
            })
            .collect()
        })
        .await
    }
}

fn usage_in(conn: &Connection, tenant: &str, day: &str) -> Result<QuotaUsage, StoreError> {
    let active: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM quota_claims WHERE tenant = ?1",
            [tenant],
            |r| r.get(0),
        )
        .map_err(sql_error)?;
    let used: Option<i64> = conn
        .query_row(
            "SELECT used FROM quota_days WHERE tenant = ?1 AND day = ?2",
            [tenant, day],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_error)?;
    Ok(QuotaUsage {
        active_jobs: u32::try_from(active).unwrap_or(u32::MAX),
        output_seconds: u64::try_from(used.unwrap_or(0)).unwrap_or(0),
    })
}

fn to_i64(seconds: u64) -> Result<i64, StoreError> {
    i64::try_from(seconds).map_err(|_| corrupt(format!("{seconds} seconds does not fit a row")))
}

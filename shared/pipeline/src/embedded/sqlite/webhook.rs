//! The embedded `WebhookSecretStore` and `DeliveryLog`: a row per tenant in `webhook_secrets`
//! (written under its version, as jobs are) and a row per attempt in `webhook_attempts`, in the
//! same SQLite file as the jobs they tell of.

use super::{SqliteJobStore, decode_error, encode_error, nanos, sql_error, to_i64};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use vidpipe_domain::ports::{DeliveryLog, StoreError, WebhookSecretStore, check_webhook_name};
use vidpipe_domain::webhook::{DeliveryAttempt, JobKind, TenantSecrets};

#[async_trait::async_trait]
impl WebhookSecretStore for SqliteJobStore {
    async fn get_secrets(&self, tenant: &str) -> Result<Option<TenantSecrets>, StoreError> {
        check_webhook_name("tenant", tenant)?;
        let tenant = tenant.to_owned();
        self.with_conn(move |conn| {
            let row: Option<(i64, String)> = conn
                .query_row(
                    "SELECT version, doc FROM webhook_secrets WHERE tenant = ?1",
                    [&tenant],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(sql_error)?;
            row.map(|(version, doc)| {
                let mut secrets: TenantSecrets =
                    serde_json::from_str(&doc).map_err(decode_error)?;
                secrets.version = version as u64;
                Ok(secrets)
            })
            .transpose()
        })
        .await
    }

    async fn save_secrets(&self, secrets: &TenantSecrets) -> Result<TenantSecrets, StoreError> {
        check_webhook_name("tenant", &secrets.tenant)?;
        let expected = to_i64(secrets.version)?;
        let saved = TenantSecrets {
            version: secrets.version.checked_add(1).ok_or_else(|| {
                StoreError::Conflict(format!("secrets of {} version overflow", secrets.tenant))
            })?,
            ..secrets.clone()
        };
        let doc = serde_json::to_string(&saved).map_err(encode_error)?;
        let (tenant, version) = (saved.tenant.clone(), to_i64(saved.version)?);
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            // Read and written under one write lock: of two writers from one version, one wins.
            let stored: i64 = tx
                .query_row(
                    "SELECT version FROM webhook_secrets WHERE tenant = ?1",
                    [&tenant],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_error)?
                .unwrap_or(0);
            if stored != expected {
                return Err(StoreError::Conflict(format!(
                    "webhook secrets of {tenant} are at version {stored}, not {expected}"
                )));
            }
            tx.execute(
                "INSERT INTO webhook_secrets (tenant, version, doc) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant) DO UPDATE SET version = excluded.version, doc = excluded.doc",
                params![tenant, version, doc],
            )
            .map_err(sql_error)?;
            tx.commit().map_err(sql_error)
        })
        .await?;
        Ok(saved)
    }
}

#[async_trait::async_trait]
impl DeliveryLog for SqliteJobStore {
    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> Result<(), StoreError> {
        check_webhook_name("job id", &attempt.job_id)?;
        let doc = serde_json::to_string(attempt).map_err(encode_error)?;
        let at = nanos(attempt.attempted_at)?;
        let (kind, job, id) = (
            attempt.kind.as_str(),
            attempt.job_id.clone(),
            attempt.id.clone(),
        );
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO webhook_attempts (kind, job_id, id, attempted_at, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (kind, job_id, id) DO UPDATE
                 SET attempted_at = excluded.attempted_at, doc = excluded.doc",
                params![kind, job, id, at, doc],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn attempts(
        &self,
        kind: JobKind,
        job_id: &str,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        check_webhook_name("job id", job_id)?;
        let job = job_id.to_owned();
        self.with_conn(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT doc FROM webhook_attempts WHERE kind = ?1 AND job_id = ?2
                     ORDER BY attempted_at, id",
                )
                .map_err(sql_error)?;
            let docs = stmt
                .query_map(params![kind.as_str(), job], |r| r.get::<_, String>(0))
                .map_err(sql_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_error)?;
            docs.iter()
                .map(|d| serde_json::from_str(d).map_err(decode_error))
                .collect()
        })
        .await
    }
}

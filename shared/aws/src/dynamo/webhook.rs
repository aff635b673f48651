//! The DynamoDB `WebhookSecretStore` and `DeliveryLog`, in the single table.
//!
//! Items:
//! - `PK` = `WHSEC#<tenant>`, `SK` = `META` (`entity` = `webhook_secret`): `doc` (the
//!   [`TenantSecrets`] as JSON), `owner`, `version`, written conditionally on the version read
//!   (absent for the first write), so of racing writers one wins;
//! - `PK` = `HOOK#<kind>#<job id>`, `SK` = `ATTEMPT#<attempt id>` (`entity` =
//!   `webhook_attempt`): `doc` (the [`DeliveryAttempt`]), `attempted_at`, `webhook_id`,
//!   `outcome`, and `expires_at` as long after the attempt as a finished job is kept. Keyed by
//!   the attempt's id, so recording it again replaces it; read back with one query of the
//!   job's partition and ordered by time here (a job has a handful of attempts).

use super::{
    ATTR_DOC, ATTR_ENTITY, ATTR_EXPIRES_AT, ATTR_OWNER, ATTR_PK, ATTR_SK, ATTR_VERSION,
    DynamoJobStore, SK_META, decode, encode_error, epoch_seconds, n, number, s, sdk_error,
    timestamp,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use vidpipe_domain::ports::{DeliveryLog, StoreError, WebhookSecretStore, check_webhook_name};
use vidpipe_domain::webhook::{DeliveryAttempt, JobKind, TenantSecrets};

/// On attempt items: the attempt's time, delivery id and outcome, for people reading the table.
pub const ATTR_ATTEMPTED_AT: &str = "attempted_at";
pub const ATTR_WEBHOOK_ID: &str = "webhook_id";
pub const ATTR_OUTCOME: &str = "outcome";

/// `WHSEC#<tenant>`.
pub fn webhook_secret_pk(tenant: &str) -> String {
    format!("WHSEC#{tenant}")
}

/// `HOOK#<kind>#<job id>`: the kind first, so a generation and a processing job never share a
/// partition even under the same id.
pub fn delivery_pk(kind: JobKind, job_id: &str) -> String {
    format!("HOOK#{}#{job_id}", kind.as_str())
}

/// `ATTEMPT#<attempt id>`.
pub fn delivery_sk(attempt_id: &str) -> String {
    format!("ATTEMPT#{attempt_id}")
}

#[async_trait]
impl WebhookSecretStore for DynamoJobStore {
    async fn get_secrets(&self, tenant: &str) -> Result<Option<TenantSecrets>, StoreError> {
        check_webhook_name("tenant", tenant)?;
        let Some(item) = self
            .get_item(webhook_secret_pk(tenant), "GetItem (webhook secrets)")
            .await?
        else {
            return Ok(None);
        };
        let mut secrets: TenantSecrets = decode(&item, "webhook secrets")?;
        secrets.version = number(&item, ATTR_VERSION)?;
        Ok(Some(secrets))
    }

    async fn save_secrets(&self, secrets: &TenantSecrets) -> Result<TenantSecrets, StoreError> {
        check_webhook_name("tenant", &secrets.tenant)?;
        let saved = TenantSecrets {
            version: secrets.version.checked_add(1).ok_or_else(|| {
                StoreError::Conflict(format!("secrets of {} version overflow", secrets.tenant))
            })?,
            ..secrets.clone()
        };
        let doc = serde_json::to_string(&saved).map_err(encode_error)?;
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(ATTR_PK, s(webhook_secret_pk(&saved.tenant)))
            .item(ATTR_SK, s(SK_META))
            .item(ATTR_ENTITY, s("webhook_secret"))
            .item(ATTR_OWNER, s(&saved.tenant))
            .item(ATTR_VERSION, n(saved.version))
            .item(ATTR_DOC, s(doc));
        let request = if secrets.version == 0 {
            request
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", ATTR_PK)
        } else {
            request
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", ATTR_VERSION)
                .expression_attribute_values(":expected", n(secrets.version))
        };
        match request.send().await {
            Ok(_) => Ok(saved),
            Err(err) => Err(match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => {
                    StoreError::Conflict(format!(
                        "webhook secrets of {} changed since version {}",
                        secrets.tenant, secrets.version
                    ))
                }
                _ => sdk_error("PutItem (webhook secrets)", err),
            }),
        }
    }
}

#[async_trait]
impl DeliveryLog for DynamoJobStore {
    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> Result<(), StoreError> {
        check_webhook_name("job id", &attempt.job_id)?;
        let doc = serde_json::to_string(attempt).map_err(encode_error)?;
        let outcome = serde_json::to_value(attempt.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        self.client
            .put_item()
            .table_name(&self.table)
            .item(ATTR_PK, s(delivery_pk(attempt.kind, &attempt.job_id)))
            .item(ATTR_SK, s(delivery_sk(&attempt.id)))
            .item(ATTR_ENTITY, s("webhook_attempt"))
            .item(ATTR_ATTEMPTED_AT, s(timestamp(attempt.attempted_at)))
            .item(ATTR_WEBHOOK_ID, s(&attempt.webhook_id))
            .item(ATTR_OUTCOME, s(outcome))
            .item(
                ATTR_EXPIRES_AT,
                // As long as the job it tells of.
                n(epoch_seconds(attempt.attempted_at, self.retention)),
            )
            .item(ATTR_DOC, s(doc))
            .send()
            .await
            .map_err(|e| sdk_error("PutItem (webhook attempt)", e))?;
        Ok(())
    }

    async fn attempts(
        &self,
        kind: JobKind,
        job_id: &str,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        check_webhook_name("job id", job_id)?;
        let mut attempts = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :attempt)")
                .expression_attribute_names("#pk", ATTR_PK)
                .expression_attribute_names("#sk", ATTR_SK)
                .expression_attribute_values(":pk", s(delivery_pk(kind, job_id)))
                .expression_attribute_values(":attempt", s("ATTEMPT#"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("Query (webhook attempts)", e))?;
            for item in out.items() {
                attempts.push(decode::<DeliveryAttempt>(item, "webhook attempt")?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        attempts.sort_by(|a, b| (a.attempted_at, &a.id).cmp(&(b.attempted_at, &b.id)));
        Ok(attempts)
    }
}

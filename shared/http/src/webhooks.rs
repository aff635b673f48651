//! The webhook routes: the tenant's signing secret and its rotation, and the delivery log of a
//! generation or a processing job. Views and handlers together, as one area of the API; the
//! signing, retries and log live in `vidpipe_pipeline::webhooks`.

use crate::ApiState;
use crate::error::ApiError;
use crate::handlers::{Call, json_response};
use crate::views::Problem;
use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vidpipe_domain::ErrorClass;
use vidpipe_domain::ports::OrchestratorError;
use vidpipe_domain::webhook::{
    DeliveryAttempt, DeliveryOutcome, JobKind, TenantSecrets, WebhookEvent, WebhookFormat,
};
use vidpipe_pipeline::ServiceError;
use vidpipe_pipeline::webhooks::{WebhookError, Webhooks};

// ---- views ----

/// A rotated-out secret, still signing until `expires_at`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PreviousSecretView {
    pub secret: String,
    pub expires_at: DateTime<Utc>,
}

/// The tenant's webhook signing secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookSecretView {
    /// `whsec_` and base64: give it to a Standard Webhooks library to verify deliveries.
    pub secret: String,
    pub created_at: DateTime<Utc>,
    /// When the current secret replaced the one before it.
    pub rotated_at: Option<DateTime<Utc>>,
    /// Secrets rotated out less than 24 hours ago: deliveries are signed with these too
    /// (`webhook-signature` holds one `v1,` signature per secret), so a receiver still
    /// verifying with one of them keeps accepting deliveries during the overlap.
    pub previous: Vec<PreviousSecretView>,
}

impl From<&TenantSecrets> for WebhookSecretView {
    fn from(s: &TenantSecrets) -> Self {
        let now = Utc::now();
        WebhookSecretView {
            secret: s.current.expose().to_owned(),
            created_at: s.created_at,
            rotated_at: s.rotated_at,
            previous: s
                .previous
                .iter()
                .filter(|p| p.expires_at > now)
                .map(|p| PreviousSecretView {
                    secret: p.secret.expose().to_owned(),
                    expires_at: p.expires_at,
                })
                .collect(),
        }
    }
}

/// One attempt to deliver one event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    /// The attempt's own id.
    pub id: String,
    /// The delivery's `webhook-id` header: the same on every attempt of one event.
    pub webhook_id: String,
    pub event: WebhookEvent,
    /// Where it went: scheme, host and port only (a URL's path may be a credential).
    pub target: String,
    pub format: WebhookFormat,
    /// 1-based, per `webhook_id`.
    pub attempt: u32,
    pub attempted_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// What went wrong (a timeout, a refused target, an answer that is not 2xx).
    pub error: Option<String>,
    /// `delivered`, `retrying` (another attempt followed) or `gave_up`.
    pub outcome: DeliveryOutcome,
}

impl From<&DeliveryAttempt> for DeliveryView {
    fn from(a: &DeliveryAttempt) -> Self {
        DeliveryView {
            id: a.id.clone(),
            webhook_id: a.webhook_id.clone(),
            event: a.event,
            target: a.target.clone(),
            format: a.format,
            attempt: a.attempt,
            attempted_at: a.attempted_at,
            duration_ms: a.duration_ms,
            status: a.status,
            error: a.error.clone(),
            outcome: a.outcome,
        }
    }
}

/// Every delivery attempt of one job, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryListView {
    pub job_id: String,
    pub kind: JobKind,
    pub items: Vec<DeliveryView>,
}

// ---- errors ----

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Store(s) => ApiError::Service(s.into()),
            WebhookError::Rotation(r) => ApiError::Conflict(format!("{r}.")),
            WebhookError::Random | WebhookError::Client(_) => ApiError::Internal(e.to_string()),
        }
    }
}

fn webhooks(state: &ApiState) -> Result<&Webhooks, ApiError> {
    state.service.deps.webhooks.as_deref().ok_or_else(|| {
        // A deployment without the webhook wiring: a passing 503 rather than a bug's 500.
        ApiError::Service(ServiceError::Orchestrator(OrchestratorError::Backend {
            message: "webhooks are not configured on this deployment".into(),
            class: ErrorClass::Retryable,
            source: None,
        }))
    })
}

// ---- handlers ----

#[utoipa::path(
    get,
    path = "/v1/webhook-secret",
    tag = "webhooks",
    operation_id = "getWebhookSecret",
    summary = "The secret your webhook deliveries are signed with",
    description = "Every delivery (a generation's or processing job's `completed` or `failed`, to the `webhook_url` of its request or upload) is signed per Standard Webhooks: headers `webhook-id` (the same on every retry of one event: de-duplicate on it), `webhook-timestamp` (Unix seconds) and `webhook-signature` (`v1,` and the base64 of HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}` keyed with the secret's base64-decoded part after `whsec_`). Any Standard Webhooks library verifies them. The secret is made on first use.",
    responses(
        (status = 200, description = "The secret, and any still in their rotation overlap.", body = WebhookSecretView,
            example = json!({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "created_at": "2026-12-01T09:00:00Z", "rotated_at": null, "previous": []})),
    )
)]
pub async fn get_webhook_secret(
    state: &ApiState,
    call: &Call<'_>,
) -> Result<Response<Body>, ApiError> {
    let secrets = webhooks(state)?.tenant_secrets(call.tenant).await?;
    json_response(StatusCode::OK, &WebhookSecretView::from(&secrets))
}

#[utoipa::path(
    post,
    path = "/v1/webhook-secret/rotate",
    tag = "webhooks",
    operation_id = "rotateWebhookSecret",
    summary = "Replace the signing secret, keeping the old one valid for 24 hours",
    description = "A new secret signs every delivery from now on. For the next 24 hours the old one signs them too (a second `v1,` signature in `webhook-signature`), so receivers can switch to the new secret at their pace. At most four rotated-out secrets may be in their overlap at once.",
    responses(
        (status = 200, description = "Rotated.", body = WebhookSecretView),
        (status = 409, description = "Four earlier secrets are still in their overlap; the detail says when the next rotation is possible.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rotate_webhook_secret(
    state: &ApiState,
    call: &Call<'_>,
) -> Result<Response<Body>, ApiError> {
    let secrets = webhooks(state)?.rotate(call.tenant).await?;
    json_response(StatusCode::OK, &WebhookSecretView::from(&secrets))
}

async fn deliveries(
    state: &ApiState,
    kind: JobKind,
    job_id: &str,
) -> Result<Response<Body>, ApiError> {
    let attempts = webhooks(state)?
        .attempts(kind, job_id)
        .await
        .map_err(|e| ApiError::Service(e.into()))?;
    json_response(
        StatusCode::OK,
        &DeliveryListView {
            job_id: job_id.to_owned(),
            kind,
            items: attempts.iter().map(DeliveryView::from).collect(),
        },
    )
}

#[utoipa::path(
    get,
    path = "/v1/generations/{id}/deliveries",
    tag = "webhooks",
    operation_id = "listGenerationDeliveries",
    summary = "Every webhook delivery attempt of a generation",
    description = "Each attempt with its time, duration, the receiver's status or the error, and whether another attempt followed. 5xx, 429 (after its `Retry-After`), timeouts and connection failures are retried with backoff and jitter for up to 30 seconds; other answers are not.",
    params(("id" = String, Path, description = "Generation id.")),
    responses(
        (status = 200, description = "The attempts, oldest first (empty when nothing was sent).", body = DeliveryListView,
            example = json!({"job_id": "job_0123456789abcdef0123456789abcdef", "kind": "generation", "items": [{"id": "att_019ad0c5e5a07c31b1e2f0a4c3d2e1f0", "webhook_id": "msg_5e1f0c2b9a8e7d6c5b4a39281706f5e4", "event": "completed", "target": "https://hooks.example.com", "format": "standard", "attempt": 1, "attempted_at": "2026-12-01T09:31:00Z", "duration_ms": 412, "status": 503, "error": "the receiver answered 503", "outcome": "retrying"}, {"id": "att_019ad0c5e9c87c31b1e2f0a4c3d2e1f1", "webhook_id": "msg_5e1f0c2b9a8e7d6c5b4a39281706f5e4", "event": "completed", "target": "https://hooks.example.com", "format": "standard", "attempt": 2, "attempted_at": "2026-12-01T09:31:01Z", "duration_ms": 87, "status": 200, "error": null, "outcome": "delivered"}]})),
        (status = 404, description = "No such generation for this tenant.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_generation_deliveries(
    state: &ApiState,
    call: &Call<'_>,
) -> Result<Response<Body>, ApiError> {
    let id = call.job_id()?;
    // Another tenant's job is as missing as one that never was.
    state
        .service
        .get(call.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("No generation {id}.")))?;
    deliveries(state, JobKind::Generation, id.as_str()).await
}

#[utoipa::path(
    get,
    path = "/v1/processing-jobs/{id}/deliveries",
    tag = "webhooks",
    operation_id = "listProcessingDeliveries",
    summary = "Every webhook delivery attempt of a processing job",
    description = "As for generations. A retried job's runs are told apart by their `webhook_id`.",
    params(("id" = String, Path, description = "Processing job id (40 hex digits).")),
    responses(
        (status = 200, description = "The attempts, oldest first.", body = DeliveryListView),
        (status = 404, description = "No such job for this tenant.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_processing_deliveries(
    state: &ApiState,
    call: &Call<'_>,
) -> Result<Response<Body>, ApiError> {
    let id = crate::uploads::process_id(call)?;
    let job = crate::uploads::service(state)?
        .job(call.tenant, &id)
        .await?;
    deliveries(state, JobKind::Processing, &job.id).await
}

//! vidpipe's HTTP API over the ports: one `handle` function that routes a `lambda_http::Request`,
//! resolves the tenant, calls the service and answers with JSON or an RFC 7807 problem. The Lambda
//! binary builds an [`ApiState`] once per cold start and passes every request here; it holds no
//! logic of its own, so everything the API does is testable in process.

pub mod batches;
pub mod compositions;
pub mod context;
pub mod error;
pub mod handlers;
pub mod json;
pub mod openapi;
pub mod routes;
pub mod timelines;
pub mod uploads;
pub mod views;
pub mod webhooks;

use crate::error::ApiError;
use crate::handlers::Call;
use crate::routes::{Matched, Operation};
use lambda_http::http::{HeaderValue, header};
use lambda_http::{Body, Request, Response};
use std::sync::Arc;
use std::time::Instant;
use vidpipe_domain::ports::UploadSigner;
use vidpipe_pipeline::Service;

/// Everything the handlers share, built once per cold start.
pub struct ApiState {
    pub service: Arc<Service>,
    /// Mints the presigned PUT URLs for asset uploads.
    pub uploads: Arc<dyn UploadSigner>,
    /// A path prefix the API is mounted under (e.g. `/api`), stripped before routing when
    /// present; `""` for none. The API Gateway stage is stripped on its own.
    pub base_path: String,
    /// Raw uploads and processing jobs; `None` where the deployment has no processing pipeline
    /// (those routes then answer 503).
    pub processing: Option<Arc<vidpipe_pipeline::uploads::UploadService>>,
    /// Take the tenant from the `x-vidpipe-tenant` header when the request carries no JWT claims.
    /// For local development and AWS emulation only, where no authorizer runs. **Never enable it
    /// in production**: any caller could then act as any tenant.
    pub trust_tenant_header: bool,
}

/// Answers one request, on any route. Never fails: every error becomes a problem response.
pub async fn handle(state: &ApiState, req: Request) -> Response<Body> {
    answer(state, None, req).await
}

/// Answers one request in the function deployed for `only` (one Lambda per route). API Gateway
/// sends it nothing else; anything else that reaches it (a misrouted integration, a function URL)
/// is answered as a route that does not exist here rather than served with a role not meant for it.
pub async fn handle_only(state: &ApiState, only: Operation, req: Request) -> Response<Body> {
    answer(state, Some(only), req).await
}

async fn answer(state: &ApiState, only: Option<Operation>, req: Request) -> Response<Body> {
    let started = Instant::now();
    let request_id = context::request_id(&req);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut response = match dispatch(state, only, &req).await {
        Ok(response) => response,
        Err(e) => {
            if e.is_server_error() {
                tracing::error!(%request_id, %method, %path, error = %e, causes = %causes(&e), "request failed");
            }
            problem_response(&e, &path, &request_id)
        }
    };
    let headers = response.headers_mut();
    // Job views change and URLs in them are credentials: no cache should keep either.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", id);
    }
    tracing::info!(
        %request_id,
        %method,
        %path,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

async fn dispatch(
    state: &ApiState,
    only: Option<Operation>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path();
    let stage = context::stage(req)
        .map(|s| format!("/{s}"))
        .unwrap_or_default();
    // The stage comes first in a path (`/{stage}/{base}/v1/...`).
    let prefixes = [stage.as_str(), state.base_path.as_str()];
    let (operation, id, prefix) = match routes::route(req.method(), path, &prefixes) {
        Matched::Found {
            operation,
            id,
            prefix,
        } => (operation, id, prefix),
        Matched::WrongMethod { allow } => return Err(ApiError::MethodNotAllowed { allow }),
        Matched::NotFound => return Err(ApiError::RouteNotFound),
    };
    if only.is_some_and(|only| only != operation) {
        return Err(ApiError::RouteNotFound);
    }
    let tenant = context::tenant(req, state.trust_tenant_header)?;
    let base = context::base(req, prefix);
    let call = Call {
        tenant: &tenant,
        id,
        base: &base,
    };
    match operation {
        Operation::SubmitGeneration => handlers::submit_generation(state, &call, req).await,
        Operation::ListGenerations => handlers::list_generations(state, &call, req).await,
        Operation::GetGeneration => handlers::get_generation(state, &call).await,
        Operation::CancelGeneration => handlers::cancel_generation(state, &call).await,
        Operation::DownloadGeneration => handlers::download_generation(state, &call).await,
        Operation::CreateAsset => handlers::create_asset(state, &call, req).await,
        Operation::GetAsset => handlers::get_asset(state, &call).await,
        Operation::CreateUpload => uploads::create_upload(state, &call, req).await,
        Operation::CompleteUpload => uploads::complete_upload(state, &call).await,
        Operation::AbortUpload => uploads::abort_upload(state, &call).await,
        Operation::ListProcessingJobs => uploads::list_processing_jobs(state, &call, req).await,
        Operation::GetProcessingJob => uploads::get_processing_job(state, &call).await,
        Operation::DownloadProcessingJob => uploads::download_processing_job(state, &call).await,
        Operation::RetryProcessingJob => uploads::retry_processing_job(state, &call).await,
        Operation::GetWebhookSecret => webhooks::get_webhook_secret(state, &call).await,
        Operation::RotateWebhookSecret => webhooks::rotate_webhook_secret(state, &call).await,
        Operation::ListGenerationDeliveries => {
            webhooks::list_generation_deliveries(state, &call).await
        }
        Operation::ListProcessingDeliveries => {
            webhooks::list_processing_deliveries(state, &call).await
        }
        Operation::SubmitGenerationBatch => {
            batches::submit_generation_batch(state, &call, req).await
        }
        Operation::GetGenerationBatch => batches::get_generation_batch(state, &call).await,
        Operation::RecomposeGeneration => {
            compositions::recompose_generation(state, &call, req).await
        }
        Operation::ListCompositions => compositions::list_compositions(state, &call).await,
        Operation::CreateComposition => timelines::create_composition(state, &call, req).await,
        Operation::GetComposition => timelines::get_composition(state, &call).await,
    }
}

/// The problem body and headers for an error.
pub fn problem_response(e: &ApiError, instance: &str, request_id: &str) -> Response<Body> {
    let spec = e.spec();
    let status = spec.status;
    let retry_after = spec.retry_after;
    let allow: Vec<&str> = spec.allow.iter().map(|m| m.as_str()).collect();
    let allow = allow.join(", ");
    let problem = spec.into_problem(instance, request_id);
    // Problem holds only strings and numbers, so encoding cannot fail; the fallback is for form.
    let body = serde_json::to_string(&problem).unwrap_or_else(|_| "{}".into());
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == lambda_http::http::StatusCode::UNAUTHORIZED {
        // RFC 9110 requires the challenge on every 401.
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if let Some(after) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(after.as_secs()));
    }
    if !allow.is_empty()
        && let Ok(value) = HeaderValue::from_str(&allow)
    {
        headers.insert(header::ALLOW, value);
    }
    response
}

/// The error's source chain, for the log line (the response never carries it).
fn causes(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut next = e.source();
    while let Some(cause) = next {
        parts.push(cause.to_string());
        next = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::http::StatusCode;
    use vidpipe_domain::ErrorClass;
    use vidpipe_domain::error::FieldError;
    use vidpipe_domain::job::{JobId, JobStatus};
    use vidpipe_domain::ports::{BlobError, MediaError, OrchestratorError, StoreError};
    use vidpipe_pipeline::{ServiceError, StepError};

    fn problem(e: ApiError) -> (StatusCode, Option<String>, serde_json::Value) {
        let r = problem_response(&e, "/v1/x", "req-1");
        let retry = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = serde_json::from_slice(r.body().as_ref()).unwrap();
        (r.status(), retry, body)
    }

    #[test]
    fn service_errors_map_by_class_and_never_leak_their_cause() {
        let secret =
            || std::io::Error::other("SECRET table arn:aws:dynamodb:eu-west-1:1:table/jobs");
        let cases: Vec<(ServiceError, u16, bool)> = vec![
            (
                StoreError::backend("SECRET throttled", ErrorClass::Retryable, secret()).into(),
                503,
                true,
            ),
            (StoreError::Conflict("SECRET".into()).into(), 503, true),
            (
                StoreError::backend("SECRET denied", ErrorClass::Permanent, secret()).into(),
                500,
                false,
            ),
            (
                BlobError::backend("SECRET slow down", ErrorClass::Retryable, secret()).into(),
                503,
                true,
            ),
            (BlobError::InvalidKey("SECRET".into()).into(), 500, false),
            (
                OrchestratorError::Backend {
                    message: "SECRET".into(),
                    class: ErrorClass::Retryable,
                    source: None,
                }
                .into(),
                503,
                true,
            ),
            (
                OrchestratorError::Backend {
                    message: "SECRET".into(),
                    class: ErrorClass::Permanent,
                    source: None,
                }
                .into(),
                500,
                false,
            ),
            (MediaError::InvalidInput("SECRET".into()).into(), 500, false),
            (StepError::Internal("SECRET".into()).into(), 500, false),
            (
                ServiceError::AlreadyFinished {
                    id: "job_1".into(),
                    status: JobStatus::Completed,
                },
                409,
                false,
            ),
            (ServiceError::NotFound("job_1".into()), 404, false),
            (
                ServiceError::IdempotencyConflict {
                    key: "k-1".into(),
                    existing: JobId::generate(),
                },
                409,
                false,
            ),
            (
                ServiceError::UnsupportedContentType(FieldError::new("content_type", "gif")),
                415,
                false,
            ),
            (
                ServiceError::TooLarge(FieldError::new("size_bytes", "big")),
                413,
                false,
            ),
        ];
        for (e, status, retry) in cases {
            let (got, retry_after, body) = problem(ApiError::Service(e));
            assert_eq!(got.as_u16(), status, "{body}");
            assert_eq!(retry_after.is_some(), retry, "{body}");
            assert!(!body.to_string().contains("SECRET"), "cause leaked: {body}");
            assert_eq!(body["request_id"], "req-1");
        }
    }
}

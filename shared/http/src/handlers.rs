//! One function per route: read the request, call the service or a port, shape the view. Domain
//! rules (asset limits, idempotency) live in the service; a handler only parses and maps. Each is
//! annotated with its OpenAPI description right where its behaviour is written, so the document
//! and the code change together.

use crate::ApiState;
use crate::context::{self, Query};
use crate::error::ApiError;
use crate::views::{
    AssetUploadView, AssetView, CreateAssetBody, DownloadLink, DownloadView, JobListView, JobView,
    Problem,
};
use chrono::Utc;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use std::num::NonZeroU64;
use std::time::Duration;
use vidpipe_domain::asset::{AssetId, AssetKind};
use vidpipe_domain::error::{FieldError, ValidationErrors, echo};
use vidpipe_domain::job::{JobId, JobStatus};
use vidpipe_domain::ports::StoreError;
use vidpipe_domain::{ErrorClass, GenerationRequestBody};
use vidpipe_pipeline::ServiceError;
use vidpipe_pipeline::service::AssetAnnouncement;

/// How long download URLs work: long enough to fetch a large MP4 on a slow link.
pub const DOWNLOAD_TTL: Duration = Duration::from_secs(3600);
pub const LIST_DEFAULT_LIMIT: u32 = 20;
pub const LIST_MAX_LIMIT: u32 = 100;
/// Cursors are opaque but short; a huge one is refused before it reaches the store.
const CURSOR_MAX_CHARS: usize = 1024;
/// Marks a 200 that replays an earlier submission with the same Idempotency-Key.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The per-request values a handler works with, after routing and authentication.
pub struct Call<'a> {
    pub tenant: &'a str,
    /// The `{id}` segment, for routes that have one.
    pub id: Option<&'a str>,
    /// Where the caller reached the API (`https://host/stage`, or just the path prefix when the
    /// request names no host); links are built under it, so following one goes the same way.
    pub base: &'a str,
}

impl Call<'_> {
    pub(crate) fn job_id(&self) -> Result<JobId, ApiError> {
        let raw = self.id.unwrap_or_default();
        JobId::parse(raw).map_err(|_| ApiError::NotFound(format!("No generation {}.", echo(raw))))
    }

    fn asset_id(&self) -> Result<AssetId, ApiError> {
        let raw = self.id.unwrap_or_default();
        AssetId::parse(raw).map_err(|_| ApiError::NotFound(format!("No asset {}.", echo(raw))))
    }
}

pub fn json_response<T: Serialize>(
    status: StatusCode,
    value: &T,
) -> Result<Response<Body>, ApiError> {
    let text = serde_json::to_string(value)
        .map_err(|e| ApiError::Internal(format!("encode response: {e}")))?;
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::Text(text))
        .map_err(|e| ApiError::Internal(format!("build response: {e}")))
}

fn with_header(
    mut response: Response<Body>,
    name: header::HeaderName,
    value: &str,
) -> Result<Response<Body>, ApiError> {
    let value = HeaderValue::from_str(value)
        .map_err(|e| ApiError::Internal(format!("header value: {e}")))?;
    response.headers_mut().insert(name, value);
    Ok(response)
}

#[utoipa::path(
    post,
    path = "/v1/generations",
    tag = "generations",
    operation_id = "submitGeneration",
    summary = "Start a generation",
    description = "Validates the request and every brand asset it names (each must exist, belong to the caller, be of the right kind and be uploaded), checks the tenant's quotas, records the job and starts it. With an `Idempotency-Key`, repeating the same request returns the first job with 200 and `Idempotent-Replayed: true`; the same key with a different request is a 409.",
    request_body(content = GenerationRequestBody, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters; scoped to the tenant.")),
    responses(
        (status = 202, description = "Accepted: the job is queued.", body = JobView,
            headers(("Location" = String, description = "The job's URL."))),
        (status = 200, description = "Replay: the job first created with this Idempotency-Key.", body = JobView,
            headers(("Idempotent-Replayed" = String, description = "`true`."))),
        (status = 400, description = "Malformed JSON or Idempotency-Key.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The Idempotency-Key was used with a different request.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not application/json.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named in `errors`.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over a per-tenant quota; nothing was recorded. `type` ends in `quota-exceeded`; `quota` is `concurrent_jobs` (jobs not yet ended) or `daily_output_minutes` (requested output per UTC day), with its `limit`, what is `used` and what was `requested` (jobs, or minutes). An idempotent replay is answered even at the limit.", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait: 30 for `concurrent_jobs`, until the next 00:00 UTC for `daily_output_minutes`."))),
    )
)]
pub async fn submit_generation(
    state: &ApiState,
    call: &Call<'_>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let body: GenerationRequestBody = context::json_body(req)?;
    let key = context::idempotency_key(req)?;
    let submitted = state
        .service
        .submit(call.tenant, &body, key.as_deref())
        .await?;
    let view = JobView::new(submitted.job(), call.base);
    if submitted.is_created() {
        let response = json_response(StatusCode::ACCEPTED, &view)?;
        return with_header(response, header::LOCATION, &view.links.self_);
    }
    let response = json_response(StatusCode::OK, &view)?;
    with_header(
        response,
        header::HeaderName::from_static(REPLAYED_HEADER),
        "true",
    )
}

#[utoipa::path(
    get,
    path = "/v1/generations",
    tag = "generations",
    operation_id = "listGenerations",
    summary = "List generations, newest first",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 1 to 100; default 20."),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page."),
    ),
    responses(
        (status = 200, description = "One page.", body = JobListView),
        (status = 400, description = "Bad `limit` or `cursor`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_generations(
    state: &ApiState,
    call: &Call<'_>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let query = Query::of(req);
    let (limit, cursor) = page_params(&query)?;
    let page = match state.service.list(call.tenant, limit, cursor).await {
        Ok(page) => page,
        // The JobStore contract: a cursor it cannot read is a permanent backend error of its own.
        Err(ServiceError::Store(StoreError::Backend {
            class: ErrorClass::Permanent,
            ..
        })) if cursor.is_some() => {
            return Err(bad_cursor());
        }
        Err(e) => return Err(e.into()),
    };
    let view = JobListView {
        items: page
            .jobs
            .iter()
            .map(|j| JobView::new(j, call.base))
            .collect(),
        next_cursor: page.next_cursor,
    };
    json_response(StatusCode::OK, &view)
}

#[utoipa::path(
    get,
    path = "/v1/generations/{id}",
    tag = "generations",
    operation_id = "getGeneration",
    summary = "A generation's status, progress, clips and outputs",
    params(("id" = String, Path, description = "Generation id (`job_` and 32 hex digits).")),
    responses(
        (status = 200, description = "The job, with a link to each finished clip's picture.", body = JobView),
        (status = 404, description = "No such generation for this tenant.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_generation(state: &ApiState, call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let id = call.job_id()?;
    let job = state
        .service
        .get(call.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("No generation {id}.")))?;
    let mut view = JobView::new(&job, call.base);
    // Signing is local to this process (no store call), so a tile picture per clip costs
    // nothing the page would notice.
    let blobs = &state.service.deps.blobs;
    for (clip, shown) in job.clips.iter().zip(view.clips.iter_mut()) {
        if let Some(key) = &clip.thumbnail_key
            && clip.status == vidpipe_domain::job::ClipStatus::Done
        {
            shown.thumbnail_url = Some(blobs.presign_get(key, DOWNLOAD_TTL).await?);
        }
    }
    json_response(StatusCode::OK, &view)
}

#[utoipa::path(
    post,
    path = "/v1/generations/{id}/cancel",
    tag = "generations",
    operation_id = "cancelGeneration",
    summary = "Cancel a generation",
    description = "Stops a live job. Cancelling a cancelled job again is accepted and changes nothing; a completed or failed job cannot be cancelled.",
    params(("id" = String, Path, description = "Generation id.")),
    responses(
        (status = 202, description = "Cancelled (or already cancelled).", body = JobView),
        (status = 404, description = "No such generation for this tenant.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job already completed or failed.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel_generation(
    state: &ApiState,
    call: &Call<'_>,
) -> Result<Response<Body>, ApiError> {
    let id = call.job_id()?;
    let job = state.service.cancel(call.tenant, &id).await?;
    // The cancel returns the record as written, without its clips; a read shows the whole job.
    let job = state.service.get(call.tenant, &id).await?.unwrap_or(job);
    json_response(StatusCode::ACCEPTED, &JobView::new(&job, call.base))
}

#[utoipa::path(
    get,
    path = "/v1/generations/{id}/download",
    tag = "generations",
    operation_id = "downloadGeneration",
    summary = "Presigned URLs for a completed generation's video and thumbnail",
    params(("id" = String, Path, description = "Generation id.")),
    responses(
        (status = 200, description = "URLs valid for one hour.", body = DownloadView),
        (status = 404, description = "No such generation for this tenant.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job has not completed.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn download_generation(
    state: &ApiState,
    call: &Call<'_>,
) -> Result<Response<Body>, ApiError> {
    let id = call.job_id()?;
    let job = state
        .service
        .get(call.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("No generation {id}.")))?;
    if job.status != JobStatus::Completed {
        return Err(ApiError::Conflict(format!(
            "Generation {id} is {}; downloads are available once it is completed.",
            job.status
        )));
    }
    let outputs = job
        .outputs
        .as_ref()
        .ok_or_else(|| ApiError::Internal(format!("completed job {id} has no outputs")))?;
    // Taken before signing, so the stated expiry is never later than the URLs' own.
    let expires_at = Utc::now() + DOWNLOAD_TTL;
    let blobs = &state.service.deps.blobs;
    let video = blobs.presign_get(&outputs.final_key, DOWNLOAD_TTL).await?;
    let thumbnail = blobs
        .presign_get(&outputs.thumbnail_key, DOWNLOAD_TTL)
        .await?;
    let view = DownloadView {
        job_id: id.to_string(),
        video: DownloadLink {
            url: video,
            content_type: "video/mp4".into(),
            size_bytes: Some(outputs.size_bytes),
        },
        thumbnail: DownloadLink {
            url: thumbnail,
            content_type: "image/jpeg".into(),
            size_bytes: None,
        },
        expires_at,
    };
    json_response(StatusCode::OK, &view)
}

#[utoipa::path(
    post,
    path = "/v1/assets",
    tag = "assets",
    operation_id = "createAsset",
    summary = "Announce a brand asset and get a URL to upload it to",
    description = "Records the asset and returns a presigned PUT URL valid for 15 minutes. The asset can be named in a generation once its file is uploaded.",
    request_body(content = CreateAssetBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; upload the file next.", body = AssetUploadView,
            headers(("Location" = String, description = "The asset's URL."))),
        (status = 400, description = "Malformed JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`size_bytes` over the kind's limit (logo 10 MiB, music 50 MiB), or body over 64 KiB.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`content_type` not accepted for the kind, or body not JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or invalid fields (`kind`, `size_bytes` of 0, ...).", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_asset(
    state: &ApiState,
    call: &Call<'_>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let body: CreateAssetBody = context::json_body(req)?;
    let announced = state
        .service
        .announce_asset(call.tenant, &announcement(body)?, state.uploads.as_ref())
        .await?;
    let asset = &announced.asset;
    let view = AssetUploadView {
        asset_id: asset.id.to_string(),
        kind: asset.kind,
        content_type: asset.content_type.clone(),
        size_bytes: asset.size_bytes,
        upload_url: announced.upload.url,
        method: "PUT".into(),
        headers: announced.upload.headers.into_iter().collect(),
        expires_at: announced.expires_at,
    };
    let response = json_response(StatusCode::CREATED, &view)?;
    with_header(
        response,
        header::LOCATION,
        &format!("{}/v1/assets/{}", call.base, asset.id),
    )
}

/// The body's fields as typed values. Every field missing or unreadable is reported at once; the
/// rules that need the kind (accepted content types, size limits) are the service's.
fn announcement(body: CreateAssetBody) -> Result<AssetAnnouncement, ValidationErrors> {
    let mut errors = Vec::new();
    let kind = match body.kind.as_deref().map(AssetKind::parse) {
        None => {
            errors.push(FieldError::new("kind", "is required"));
            None
        }
        Some(Err(unknown)) => {
            errors.push(FieldError::new("kind", unknown.to_string()));
            None
        }
        Some(Ok(kind)) => Some(kind),
    };
    if body.content_type.is_none() {
        errors.push(FieldError::new("content_type", "is required"));
    }
    let size_bytes = match body.size_bytes.map(NonZeroU64::new) {
        None => {
            errors.push(FieldError::new("size_bytes", "is required"));
            None
        }
        Some(None) => {
            errors.push(FieldError::new("size_bytes", "must be at least 1"));
            None
        }
        Some(size) => size,
    };
    match (kind, body.content_type, size_bytes) {
        (Some(kind), Some(content_type), Some(size_bytes)) => Ok(AssetAnnouncement {
            kind,
            content_type,
            size_bytes,
        }),
        _ => Err(ValidationErrors { errors }),
    }
}

#[utoipa::path(
    get,
    path = "/v1/assets/{id}",
    tag = "assets",
    operation_id = "getAsset",
    summary = "An asset and whether its file has been uploaded",
    params(("id" = String, Path, description = "Asset id (`ast_` and 32 hex digits).")),
    responses(
        (status = 200, description = "The asset.", body = AssetView),
        (status = 404, description = "No such asset for this tenant.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_asset(state: &ApiState, call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let id = call.asset_id()?;
    let asset = state
        .service
        .deps
        .jobs
        .get_asset(&id)
        .await?
        .filter(|a| a.owner == call.tenant)
        .ok_or_else(|| ApiError::NotFound(format!("No asset {id}.")))?;
    let meta = state.service.deps.blobs.head(&asset.key).await?;
    json_response(
        StatusCode::OK,
        &AssetView::new(&asset, meta.map(|m| m.size_bytes)),
    )
}

/// The `limit` and `cursor` of a list route, checked alike for every list: a whole number from 1
/// to [`LIST_MAX_LIMIT`] and a cursor of sane length (its seal is the service's to check).
pub(crate) fn page_params(query: &Query) -> Result<(u32, Option<&str>), ApiError> {
    let limit = match query.get("limit")? {
        None => LIST_DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=LIST_MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "limit",
                    format!(
                        "must be a whole number from 1 to {LIST_MAX_LIMIT} (got {})",
                        echo(raw)
                    ),
                )
            })?,
    };
    let cursor = query.get("cursor")?;
    if cursor.is_some_and(|c| c.is_empty() || c.len() > CURSOR_MAX_CHARS) {
        return Err(bad_cursor());
    }
    Ok((limit, cursor))
}

/// The answer to a cursor this API did not issue (or issued to another tenant).
pub(crate) fn bad_cursor() -> ApiError {
    ApiError::bad_request("cursor", crate::error::BAD_CURSOR)
}

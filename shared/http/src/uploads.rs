//! The upload and processing routes: announce a raw upload and get presigned URLs (one PUT, or a
//! multipart upload's parts), complete or abort it, and list, read, download and retry the
//! tenant's processing jobs. Views and handlers together, as one area of the API; the rules
//! live in `vidpipe_pipeline::uploads` and the domain's `upload` module.

use crate::ApiState;
use crate::context::{self, Query};
use crate::error::ApiError;
use crate::handlers::{Call, bad_cursor, json_response, page_params};
use crate::views::Problem;
use chrono::{DateTime, Utc};
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;
use vidpipe_domain::ErrorClass;
use vidpipe_domain::ports::{OrchestratorError, SignedUpload, StoreError};
use vidpipe_domain::processing::{OutputRecord, ProcessJob, ProcessStatus, Route};
use vidpipe_domain::upload::{UploadBody, UploadId, UploadRecord, UploadRefusal, UploadStatus};
use vidpipe_pipeline::ServiceError;
use vidpipe_pipeline::processing::Manifest;
use vidpipe_pipeline::uploads::{UploadError, UploadService, UploadTarget};

// ---- views ----

/// Announces a raw upload. Fields are optional here so a missing one is a named error.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project": "launch", "filename": "take-1.mp4", "size_bytes": 48_213_504u64, "content_type": "video/mp4"}))]
pub struct CreateUploadBody {
    /// 1 to 64 lowercase letters, digits, `-` or `_`, starting with a letter or digit.
    pub project: Option<String>,
    /// A bare file name with a video extension (mp4, mov, m4v, mkv, webm, avi, mpg, mpeg, ts,
    /// mts): no `/` or `\`, no `..`, no control characters, at most 200 bytes.
    pub filename: Option<String>,
    /// The file's exact size: at least 1, at most 10 GiB. Up to 100 MiB the upload is one PUT,
    /// above it a multipart upload.
    pub size_bytes: Option<u64>,
    /// A `video/*` type.
    pub content_type: Option<String>,
    /// Optional; must be your own tenant (uploads always go under `raw/{tenant}/`). Any other
    /// value is refused with 403.
    pub client: Option<String>,
    /// Optional: an `https` URL told when this file's processing completes or fails, in a
    /// delivery signed per Standard Webhooks with your secret (`GET /v1/webhook-secret`).
    /// Private, loopback and link-local targets are refused.
    pub webhook_url: Option<String>,
}

/// One request to send: the method, the URL and exactly these headers (they are signed).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignedRequestView {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
}

impl From<SignedUpload> for SignedRequestView {
    fn from(s: SignedUpload) -> Self {
        SignedRequestView {
            method: "PUT".into(),
            url: s.url,
            headers: s.headers.into_iter().collect(),
        }
    }
}

/// One part of a multipart upload.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UploadPartView {
    /// 1-based.
    pub part_number: u32,
    /// The part's exact length: bytes `[(part_number - 1) * part_size, + size_bytes)` of the file.
    pub size_bytes: u64,
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UploadLinks {
    /// POST here once every byte is sent.
    pub complete: String,
    /// DELETE here to abandon the upload.
    pub abort: String,
}

/// An announced upload and where to send it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UploadView {
    pub upload_id: String,
    /// `single` (one PUT of the whole file) or `multipart` (a PUT per part).
    pub mode: String,
    /// `pending`, `completed` or `aborted`.
    pub status: String,
    /// Where the file lands: `raw/{tenant}/{project}/{filename}`.
    pub key: String,
    pub size_bytes: u64,
    pub content_type: String,
    /// For `single`: the one request to send.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload: Option<SignedRequestView>,
    /// For `multipart`: every part but the last is this long.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    /// For `multipart`: one request per part, in any order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<UploadPartView>>,
    /// When the URLs stop working.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    pub links: UploadLinks,
}

impl UploadView {
    fn of(record: &UploadRecord, prefix: &str) -> Self {
        UploadView {
            upload_id: record.id.to_string(),
            mode: if record.multipart.is_some() {
                "multipart"
            } else {
                "single"
            }
            .into(),
            status: record.status.as_str().into(),
            key: record.key.clone(),
            size_bytes: record.size_bytes,
            content_type: record.content_type.clone(),
            upload: None,
            part_size: None,
            parts: None,
            expires_at: None,
            links: UploadLinks {
                complete: format!("{prefix}/v1/uploads/{}/complete", record.id),
                abort: format!("{prefix}/v1/uploads/{}", record.id),
            },
        }
    }
}

/// One step's run time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StepTimingView {
    /// `probe`, `transcode`, `split`, `render_segment`, `encode_audio`, `assemble`, `publish`, ...
    pub step: String,
    /// The segment's index, for `render_segment`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<u32>,
    pub seconds: f64,
}

/// One rendition as measured by ffprobe after it was written.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RenditionView {
    pub rendition: String,
    pub key: String,
    pub width: u32,
    pub height: u32,
    pub video_codec: String,
    pub pix_fmt: String,
    pub duration_seconds: f64,
    pub frames: Option<u64>,
    pub video_bitrate: Option<u64>,
    pub audio_codec: Option<String>,
    pub size_bytes: u64,
}

impl From<&OutputRecord> for RenditionView {
    fn from(o: &OutputRecord) -> Self {
        RenditionView {
            rendition: o.rendition.clone(),
            key: o.key.clone(),
            width: o.width,
            height: o.height,
            video_codec: o.video_codec.clone(),
            pix_fmt: o.pix_fmt.clone(),
            duration_seconds: o.duration_seconds,
            frames: o.frames,
            video_bitrate: o.video_bitrate,
            audio_codec: o.audio_codec.clone(),
            size_bytes: o.size_bytes,
        }
    }
}

/// What a run cost, from its manifest.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProcessCostView {
    /// Lambda seconds across every step (segments each counted).
    pub compute_seconds: f64,
    /// Fargate worker seconds (zero on the Lambda routes).
    pub worker_seconds: f64,
    /// `None` where a size that was used is unknown.
    pub estimated_usd: Option<f64>,
    pub estimated_usd_per_output_minute: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProcessErrorView {
    /// The stable error name, e.g. `VidPipe.SourceRejected`.
    pub error: String,
    /// One sentence, safe to show.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProcessLinks {
    #[serde(rename = "self")]
    pub self_: String,
    pub download: String,
    pub retry: String,
}

/// One processing job: a raw upload's run through probe, transcode and publish.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProcessingJobView {
    /// 40 hex digits: the upload write's id.
    pub id: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// The raw object processed.
    pub source_key: String,
    pub project: Option<String>,
    /// `single_pass` (one Lambda), `segments` (a Map of Lambdas) or `worker` (Fargate), once
    /// probed.
    pub route: Option<String>,
    /// The source's probed duration.
    pub source_duration_seconds: Option<f64>,
    pub source_width: Option<u32>,
    pub source_height: Option<u32>,
    /// Each step's time, once the run succeeded.
    pub steps: Vec<StepTimingView>,
    pub renditions: Vec<RenditionView>,
    pub thumbnail_key: Option<String>,
    pub manifest_key: Option<String>,
    pub cost: Option<ProcessCostView>,
    pub error: Option<ProcessErrorView>,
    /// Retries asked for over the API.
    pub retries: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub links: ProcessLinks,
}

impl ProcessingJobView {
    fn of(job: &ProcessJob, manifest: Option<&Manifest>, prefix: &str) -> Self {
        let route = job.route.map(|r| {
            match r {
                Route::SinglePass => "single_pass",
                Route::Segments => "segments",
                Route::Worker => "worker",
            }
            .to_owned()
        });
        let steps = manifest
            .map(|m| {
                m.timings
                    .iter()
                    .map(|t| StepTimingView {
                        step: t.step.as_str().to_owned(),
                        segment: t.segment,
                        seconds: t.seconds,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let base = format!("{prefix}/v1/processing-jobs/{}", job.id);
        ProcessingJobView {
            id: job.id.clone(),
            status: job.status.as_str().into(),
            source_key: job.source.key.clone(),
            project: job.path.as_ref().map(|p| p.project.clone()),
            route,
            source_duration_seconds: job.facts.as_ref().map(|f| f.duration_seconds),
            source_width: job.facts.as_ref().map(|f| f.width),
            source_height: job.facts.as_ref().map(|f| f.height),
            steps,
            renditions: job.outputs.iter().map(RenditionView::from).collect(),
            thumbnail_key: job.thumbnail_key.clone(),
            manifest_key: job.manifest_key.clone(),
            cost: manifest.map(|m| ProcessCostView {
                compute_seconds: m.cost.compute_seconds,
                worker_seconds: m.cost.worker_seconds,
                estimated_usd: m.cost.estimated_usd,
                estimated_usd_per_output_minute: m.cost.estimated_usd_per_output_minute,
            }),
            error: job.error.as_ref().map(|e| ProcessErrorView {
                error: e.error.clone(),
                reason: e.reason.clone(),
            }),
            retries: job.retries,
            created_at: job.created_at,
            updated_at: job.updated_at,
            links: ProcessLinks {
                download: format!("{base}/download"),
                retry: format!("{base}/retry"),
                self_: base,
            },
        }
    }
}

/// One page of processing jobs, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProcessingJobListView {
    pub items: Vec<ProcessingJobView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A presigned URL of one output.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutputLinkView {
    /// The rendition's name, or `thumbnail`.
    pub name: String,
    pub key: String,
    pub url: String,
    pub content_type: String,
    pub size_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProcessingDownloadView {
    pub id: String,
    /// Every rendition, then the thumbnail.
    pub outputs: Vec<OutputLinkView>,
    /// When the URLs stop working (24 hours).
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RetryView {
    /// The Step Functions execution running the retry: the same for every request while it runs.
    pub execution: String,
    pub job: ProcessingJobView,
}

// ---- errors ----

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        match e {
            UploadError::Refused(UploadRefusal::Invalid(v)) => ApiError::Invalid(v),
            UploadError::Refused(UploadRefusal::OtherTenant(f)) => ApiError::Forbidden {
                detail: format!("{} {}.", f.field, f.rule),
                errors: vec![f],
            },
            UploadError::Refused(UploadRefusal::NotVideo(f)) => {
                ApiError::Service(ServiceError::UnsupportedContentType(f))
            }
            UploadError::Refused(UploadRefusal::TooLarge(f)) => {
                ApiError::Service(ServiceError::TooLarge(f))
            }
            UploadError::InvalidCursor => ApiError::bad_request("cursor", crate::error::BAD_CURSOR),
            UploadError::NotFound(detail) => ApiError::NotFound(detail),
            UploadError::Conflict(detail) => ApiError::Conflict(detail),
            UploadError::Mismatch(v) => ApiError::Invalid(v),
            UploadError::Store(s) => ApiError::Service(s.into()),
            UploadError::Blob(b) => ApiError::Service(b.into()),
            UploadError::Orchestrator(o) => ApiError::Service(o.into()),
            UploadError::Transition(t) => ApiError::Conflict(t.to_string()),
        }
    }
}

pub(crate) fn service(state: &ApiState) -> Result<&Arc<UploadService>, ApiError> {
    state.processing.as_ref().ok_or_else(|| {
        // A deployment without the uploads wiring: a passing 503 rather than a bug's 500.
        ApiError::Service(ServiceError::Orchestrator(OrchestratorError::Backend {
            message: "uploads are not configured on this deployment".into(),
            class: ErrorClass::Retryable,
            source: None,
        }))
    })
}

fn upload_id(call: &Call<'_>) -> Result<UploadId, ApiError> {
    let raw = call.id.unwrap_or_default();
    UploadId::parse(raw).map_err(|_| ApiError::NotFound(format!("No upload {raw:?}.")))
}

pub(crate) fn process_id(call: &Call<'_>) -> Result<String, ApiError> {
    let raw = call.id.unwrap_or_default();
    if raw.len() == 40 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(raw.to_ascii_lowercase())
    } else {
        Err(ApiError::NotFound(format!("No processing job {raw:?}.")))
    }
}

// ---- handlers ----

#[utoipa::path(
    post,
    path = "/v1/uploads",
    tag = "uploads",
    operation_id = "createUpload",
    summary = "Announce a raw upload and get where to send it",
    description = "Records the upload and signs where to send the file, under `raw/{tenant}/{project}/{filename}`. Up to 100 MiB: one presigned PUT (`mode: single`), its length and content type bound into the signature, so the store refuses another size. Above it: a multipart upload (`mode: multipart`) with one presigned PUT per part (16 MiB parts by default; every part but the last is `part_size` long); send the parts in any order, then POST `links.complete`. URLs work for 6 hours. Once the file is in place, processing starts by itself (S3 → SQS → Step Functions); find it under `GET /v1/processing-jobs`. Announcing the same file again replaces the earlier announcement.",
    request_body(content = CreateUploadBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; send the file next.", body = UploadView,
            headers(("Location" = String, description = "Where to complete the upload.")),
            example = json!({"upload_id": "upl_5f0c6a3e1d2b4c8f9a7e6d5c4b3a2910", "mode": "single", "status": "pending", "key": "raw/acme/launch/take-1.mp4", "size_bytes": 48_213_504u64, "content_type": "video/mp4", "upload": {"method": "PUT", "url": "https://media.s3.amazonaws.com/raw/acme/launch/take-1.mp4?X-Amz-Signature=...", "headers": {"content-length": "48213504", "content-type": "video/mp4", "x-amz-server-side-encryption": "AES256"}}, "expires_at": "2026-12-01T15:20:00Z", "links": {"complete": "/v1/uploads/upl_5f0c6a3e1d2b4c8f9a7e6d5c4b3a2910/complete", "abort": "/v1/uploads/upl_5f0c6a3e1d2b4c8f9a7e6d5c4b3a2910"}})),
        (status = 400, description = "Malformed JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`client` names another tenant's prefix.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`size_bytes` over 10 GiB, or body over 64 KiB.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`content_type` is not a video type, or the body is not JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or invalid fields, each named.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_upload(
    state: &ApiState,
    call: &Call<'_>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let body: CreateUploadBody = context::json_body(req)?;
    let body = UploadBody {
        project: body.project,
        filename: body.filename,
        size_bytes: body.size_bytes,
        content_type: body.content_type,
        client: body.client,
        webhook_url: body.webhook_url,
    };
    let created = service(state)?.create(call.tenant, &body).await?;
    let mut view = UploadView::of(&created.record, call.base);
    view.expires_at = Some(created.expires_at);
    match created.target {
        UploadTarget::Single(signed) => view.upload = Some(signed.into()),
        UploadTarget::Multipart { part_size, parts } => {
            view.part_size = Some(part_size);
            view.parts = Some(
                parts
                    .into_iter()
                    .map(|p| UploadPartView {
                        part_number: p.number,
                        size_bytes: p.size_bytes,
                        method: "PUT".into(),
                        url: p.upload.url,
                        headers: p.upload.headers.into_iter().collect(),
                    })
                    .collect(),
            );
        }
    }
    let mut response = json_response(StatusCode::CREATED, &view)?;
    if let Ok(v) = HeaderValue::from_str(&view.links.complete) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

#[utoipa::path(
    post,
    path = "/v1/uploads/{id}/complete",
    tag = "uploads",
    operation_id = "completeUpload",
    summary = "Finish an upload",
    description = "Checks the stored bytes against the announcement and, for a multipart upload, joins the parts the store holds (listed by the server; the client sends no ETags). Every planned part must be there at its planned length; the object must be the announced size. Completing twice is harmless. A single PUT needs no completion to be processed, but completing confirms its size.",
    params(("id" = String, Path, description = "Upload id (`upl_` and 32 hex digits).")),
    responses(
        (status = 200, description = "Completed.", body = UploadView,
            example = json!({"upload_id": "upl_5f0c6a3e1d2b4c8f9a7e6d5c4b3a2910", "mode": "multipart", "status": "completed", "key": "raw/acme/launch/keynote.mov", "size_bytes": 734_003_200u64, "content_type": "video/quicktime", "links": {"complete": "/v1/uploads/upl_5f0c6a3e1d2b4c8f9a7e6d5c4b3a2910/complete", "abort": "/v1/uploads/upl_5f0c6a3e1d2b4c8f9a7e6d5c4b3a2910"}})),
        (status = 404, description = "No such upload for this tenant.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Aborted, or no file uploaded yet.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Parts missing or of the wrong length, or the object is not the announced size.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn complete_upload(
    state: &ApiState,
    call: &Call<'_>,
) -> Result<Response<Body>, ApiError> {
    let id = upload_id(call)?;
    let record = service(state)?.complete(call.tenant, &id).await?;
    json_response(StatusCode::OK, &UploadView::of(&record, call.base))
}

#[utoipa::path(
    delete,
    path = "/v1/uploads/{id}",
    tag = "uploads",
    operation_id = "abortUpload",
    summary = "Abandon an upload",
    description = "Drops a pending upload and any parts already sent. Aborting twice is harmless; a completed upload cannot be aborted.",
    params(("id" = String, Path, description = "Upload id.")),
    responses(
        (status = 200, description = "Aborted.", body = UploadView,
            example = json!({"upload_id": "upl_5f0c6a3e1d2b4c8f9a7e6d5c4b3a2910", "mode": "multipart", "status": "aborted", "key": "raw/acme/launch/keynote.mov", "size_bytes": 734_003_200u64, "content_type": "video/quicktime", "links": {"complete": "/v1/uploads/upl_5f0c6a3e1d2b4c8f9a7e6d5c4b3a2910/complete", "abort": "/v1/uploads/upl_5f0c6a3e1d2b4c8f9a7e6d5c4b3a2910"}})),
        (status = 404, description = "No such upload for this tenant.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The upload is completed.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn abort_upload(state: &ApiState, call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let id = upload_id(call)?;
    let record = service(state)?.abort(call.tenant, &id).await?;
    debug_assert_eq!(record.status, UploadStatus::Aborted);
    json_response(StatusCode::OK, &UploadView::of(&record, call.base))
}

#[utoipa::path(
    get,
    path = "/v1/processing-jobs",
    tag = "processing",
    operation_id = "listProcessingJobs",
    summary = "List processing jobs, newest first",
    description = "The tenant's processing jobs (one per raw object written under `raw/{tenant}/`), newest first. Timings and cost are on each job once it succeeded.",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 1 to 100; default 20."),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page."),
    ),
    responses(
        (status = 200, description = "One page.", body = ProcessingJobListView),
        (status = 400, description = "Bad `limit` or `cursor`.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_processing_jobs(
    state: &ApiState,
    call: &Call<'_>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let query = Query::of(req);
    let (limit, cursor) = page_params(&query)?;
    let uploads = service(state)?;
    let page = match uploads.list_jobs(call.tenant, limit, cursor).await {
        Ok(page) => page,
        Err(UploadError::Store(StoreError::Backend {
            class: ErrorClass::Permanent,
            ..
        })) if cursor.is_some() => return Err(bad_cursor()),
        Err(e) => return Err(e.into()),
    };
    let mut items = Vec::with_capacity(page.jobs.len());
    for job in &page.jobs {
        items.push(ProcessingJobView::of(job, None, call.base));
    }
    json_response(
        StatusCode::OK,
        &ProcessingJobListView {
            items,
            next_cursor: page.next_cursor,
        },
    )
}

#[utoipa::path(
    get,
    path = "/v1/processing-jobs/{id}",
    tag = "processing",
    operation_id = "getProcessingJob",
    summary = "A processing job: status, route, steps and timings, renditions, cost, error",
    params(("id" = String, Path, description = "Processing job id (40 hex digits).")),
    responses(
        (status = 200, description = "The job.", body = ProcessingJobView,
            example = json!({"id": "6f1d0c2b9a8e7d6c5b4a39281706f5e4d3c2b1a0", "status": "succeeded", "source_key": "raw/acme/launch/take-1.mp4", "project": "launch", "route": "single_pass", "source_duration_seconds": 14.0, "source_width": 640, "source_height": 360, "steps": [{"step": "probe", "seconds": 0.4}, {"step": "transcode", "seconds": 6.1}, {"step": "publish", "seconds": 1.2}], "renditions": [{"rendition": "youtube", "key": "processed/acme/launch/take-1_youtube.mp4", "width": 640, "height": 360, "video_codec": "h264", "pix_fmt": "yuv420p", "duration_seconds": 6.0, "frames": 180, "video_bitrate": 812_000, "audio_codec": "aac", "size_bytes": 640_212}], "thumbnail_key": "processed/acme/launch/take-1_thumbnail.jpg", "manifest_key": "processed/acme/launch/take-1_manifest.json", "cost": {"compute_seconds": 7.7, "worker_seconds": 0.0, "estimated_usd": 0.0002, "estimated_usd_per_output_minute": 0.002}, "error": null, "retries": 0, "created_at": "2026-12-01T09:30:00Z", "updated_at": "2026-12-01T09:30:09Z", "links": {"self": "/v1/processing-jobs/6f1d0c2b9a8e7d6c5b4a39281706f5e4d3c2b1a0", "download": "/v1/processing-jobs/6f1d0c2b9a8e7d6c5b4a39281706f5e4d3c2b1a0/download", "retry": "/v1/processing-jobs/6f1d0c2b9a8e7d6c5b4a39281706f5e4d3c2b1a0/retry"}})),
        (status = 404, description = "No such job for this tenant.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_processing_job(
    state: &ApiState,
    call: &Call<'_>,
) -> Result<Response<Body>, ApiError> {
    let id = process_id(call)?;
    let uploads = service(state)?;
    let job = uploads.job(call.tenant, &id).await?;
    let manifest = uploads.manifest(&job).await;
    json_response(
        StatusCode::OK,
        &ProcessingJobView::of(&job, manifest.as_ref(), call.base),
    )
}

#[utoipa::path(
    get,
    path = "/v1/processing-jobs/{id}/download",
    tag = "processing",
    operation_id = "downloadProcessingJob",
    summary = "Presigned URLs for every rendition and the thumbnail, valid 24 hours",
    params(("id" = String, Path, description = "Processing job id.")),
    responses(
        (status = 200, description = "URLs valid for 24 hours.", body = ProcessingDownloadView,
            example = json!({"id": "6f1d0c2b9a8e7d6c5b4a39281706f5e4d3c2b1a0", "outputs": [{"name": "youtube", "key": "processed/acme/launch/take-1_youtube.mp4", "url": "https://media.s3.amazonaws.com/processed/acme/launch/take-1_youtube.mp4?X-Amz-Signature=...", "content_type": "video/mp4", "size_bytes": 640_212}, {"name": "thumbnail", "key": "processed/acme/launch/take-1_thumbnail.jpg", "url": "https://media.s3.amazonaws.com/processed/acme/launch/take-1_thumbnail.jpg?X-Amz-Signature=...", "content_type": "image/jpeg", "size_bytes": null}], "expires_at": "2026-12-02T09:31:00Z"})),
        (status = 404, description = "No such job for this tenant.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job has not succeeded.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn download_processing_job(
    state: &ApiState,
    call: &Call<'_>,
) -> Result<Response<Body>, ApiError> {
    let id = process_id(call)?;
    let (job, links, expires_at) = service(state)?.download(call.tenant, &id).await?;
    let view = ProcessingDownloadView {
        id: job.id,
        outputs: links
            .into_iter()
            .map(|l| OutputLinkView {
                name: l.name,
                key: l.key,
                url: l.url,
                content_type: l.content_type.into(),
                size_bytes: l.size_bytes,
            })
            .collect(),
        expires_at,
    };
    json_response(StatusCode::OK, &view)
}

#[utoipa::path(
    post,
    path = "/v1/processing-jobs/{id}/retry",
    tag = "processing",
    operation_id = "retryProcessingJob",
    summary = "Run a failed job again from its raw object",
    description = "Starts the processing of the job's raw object again. Idempotent: while the retry runs, asking again answers 200 with the same execution instead of starting another. Only a failed job can be retried, and only while its raw object exists.",
    params(("id" = String, Path, description = "Processing job id.")),
    responses(
        (status = 202, description = "Retry started.", body = RetryView,
            example = json!({"execution": "6f1d0c2b9a8e7d6c5b4a39281706f5e4d3c2b1a0-retry-1", "job": {"id": "6f1d0c2b9a8e7d6c5b4a39281706f5e4d3c2b1a0", "status": "running", "source_key": "raw/acme/launch/take-1.mp4", "project": "launch", "route": null, "source_duration_seconds": null, "source_width": null, "source_height": null, "steps": [], "renditions": [], "thumbnail_key": null, "manifest_key": null, "cost": null, "error": null, "retries": 1, "created_at": "2026-12-01T09:30:00Z", "updated_at": "2026-12-01T10:02:00Z", "links": {"self": "/v1/processing-jobs/6f1d0c2b9a8e7d6c5b4a39281706f5e4d3c2b1a0", "download": "/v1/processing-jobs/6f1d0c2b9a8e7d6c5b4a39281706f5e4d3c2b1a0/download", "retry": "/v1/processing-jobs/6f1d0c2b9a8e7d6c5b4a39281706f5e4d3c2b1a0/retry"}}})),
        (status = 200, description = "The retry already running, answered again.", body = RetryView),
        (status = 404, description = "No such job for this tenant.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job succeeded or is still on its first run, or its raw object is gone.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn retry_processing_job(
    state: &ApiState,
    call: &Call<'_>,
) -> Result<Response<Body>, ApiError> {
    let id = process_id(call)?;
    let retried = service(state)?.retry(call.tenant, &id).await?;
    debug_assert_eq!(retried.job.status, ProcessStatus::Running);
    let view = RetryView {
        execution: retried.execution,
        job: ProcessingJobView::of(&retried.job, None, call.base),
    };
    let status = if retried.started {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    json_response(status, &view)
}

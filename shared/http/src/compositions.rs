//! The versions routes: a completed generation recomposed with edits into a new composition
//! (rendered by the orchestrator, in process or on the state machine), and a generation's
//! versions listed, each with its parent and, once completed, its own download.

use crate::ApiState;
use crate::context;
use crate::error::ApiError;
use crate::handlers::{Call, DOWNLOAD_TTL, json_response};
use crate::json;
use crate::views::{DownloadLink, Problem};
use chrono::{DateTime, Utc};
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vidpipe_domain::ValidationErrors;
use vidpipe_domain::composition::{
    Composition, CompositionStatus, RecomposeEdits, SceneAsset, lineage,
};
use vidpipe_domain::job::JobError;

/// Where to go next with a composition.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompositionLinks {
    /// The generation's versions, this one among them.
    pub compositions: String,
    /// The generation it is a version of.
    pub generation: String,
    /// Where to POST edits for another version.
    pub recompose: String,
}

/// A completed composition's files: presigned GETs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompositionDownloads {
    /// The final MP4.
    pub video: DownloadLink,
    pub thumbnail: DownloadLink,
    /// When both URLs stop working.
    pub expires_at: DateTime<Utc>,
}

/// One version of a generation's video.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompositionView {
    /// `cmp_` and 32 hex digits; a generation's first composition shares its job id's digits.
    pub composition_id: String,
    pub job_id: String,
    /// The version it was made from; `null` for the generation's first.
    pub parent_composition_id: Option<String>,
    /// Its ancestors, parent first, back to the generation's first composition.
    pub ancestors: Vec<String>,
    pub status: CompositionStatus,
    /// The edits it was made with, as sent (absent on the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub edits: Option<serde_json::Value>,
    /// The scenes it shows an uploaded asset in instead of the generation's clip (absent when
    /// none): which asset replaced which scene.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scene_assets: Vec<SceneAsset>,
    /// Once completed.
    pub duration_seconds: Option<f64>,
    /// Once completed: the final MP4's size.
    pub size_bytes: Option<u64>,
    /// Why it failed, when it did.
    pub error: Option<JobError>,
    /// Present on a completed version in a listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloads: Option<CompositionDownloads>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub links: CompositionLinks,
}

impl CompositionView {
    /// `versions` is every composition of the job, for the ancestors.
    pub fn new(c: &Composition, versions: &[Composition], base: &str) -> Self {
        // A job's versions always name it; only a timeline render names none.
        let job_id = c
            .job_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let generation = format!("{base}/v1/generations/{job_id}");
        let ancestors = lineage(versions, &c.id)
            .iter()
            .skip(1)
            .map(|a| a.id.to_string())
            .collect();
        CompositionView {
            composition_id: c.id.to_string(),
            job_id,
            parent_composition_id: c.parent_composition_id.as_ref().map(ToString::to_string),
            ancestors,
            status: c.status,
            edits: c.edits.clone(),
            scene_assets: c.asset_scenes(),
            duration_seconds: c.outputs.as_ref().map(|o| o.duration_seconds),
            size_bytes: c.outputs.as_ref().map(|o| o.size_bytes),
            error: c.error.clone(),
            downloads: None,
            created_at: c.created_at,
            updated_at: c.updated_at,
            links: CompositionLinks {
                compositions: format!("{generation}/compositions"),
                recompose: format!("{generation}/recompose"),
                generation,
            },
        }
    }
}

/// A generation's versions, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompositionListView {
    pub job_id: String,
    pub items: Vec<CompositionView>,
}

const EXAMPLE_JOB: &str = "job_0190c5d37e1a7b3c9d4e5f6a7b8c9d0e";
const EXAMPLE_FIRST: &str = "cmp_0190c5d37e1a7b3c9d4e5f6a7b8c9d0e";
const EXAMPLE_SECOND: &str = "cmp_0193a1f0c2d47e8f9a0b1c2d3e4f5a6b";

#[utoipa::path(
    post,
    path = "/v1/generations/{id}/recompose",
    tag = "generations",
    operation_id = "recomposeGeneration",
    summary = "Render a new version of a completed generation with edits",
    description = "Lays the generation's clips out again with the edits (another aspect or resolution, transition, captions on or off, new music or logo, scene order, scenes replaced by a new prompt or by an uploaded `video` or `image` asset) as a new composition that records `parent_composition_id`: the generation's latest completed version unless the body names one. Nothing is planned again; only the scenes `scenes` gives a `prompt` are generated (through the provider chain and its cache); a scene given an `asset_id` shows that asset, fitted to the scene's frames and the output's shape, with no provider call (a video must last the scene: a shorter one is refused at `scenes[i].asset_id`); every other clip is reused. The version's `scene_assets` records which asset replaced which scene. Every field is optional; absent keeps the parent's choice. The new version renders in the background: follow it in `links.compositions`. Once it completes, the generation's own outputs and download point at it.",
    params(("id" = String, Path, description = "Generation id (`job_` and 32 hex digits).")),
    request_body(content = RecomposeEdits, content_type = "application/json",
        example = json!({"aspect_ratio": "9:16", "transition": "fade", "captions": false, "order": [2, 0, 1], "scenes": [{"index": 1, "prompt": "A red lighthouse in a storm"}]})),
    responses(
        (status = 202, description = "Accepted: the new version is recorded and rendering.", body = CompositionView,
            headers(("Location" = String, description = "The generation's versions.")),
            example = json!({"composition_id": EXAMPLE_SECOND, "job_id": EXAMPLE_JOB, "parent_composition_id": EXAMPLE_FIRST, "ancestors": [EXAMPLE_FIRST], "status": "rendering", "edits": {"aspect_ratio": "9:16"}, "duration_seconds": null, "size_bytes": null, "error": null, "created_at": "2026-12-01T10:00:00Z", "updated_at": "2026-12-01T10:00:00Z", "links": {"compositions": format!("/v1/generations/{EXAMPLE_JOB}/compositions"), "generation": format!("/v1/generations/{EXAMPLE_JOB}"), "recompose": format!("/v1/generations/{EXAMPLE_JOB}/recompose")}})),
        (status = 400, description = "Malformed JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such generation for this tenant.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The generation has not completed.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not application/json.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid edits, each named by its JSON path (`aspect_ratio`, `order[1]`, `parent_composition_id`, `scenes[0].asset_id`, ...). Nothing was recorded.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over a per-tenant quota; nothing was recorded. A recompose renders as much as a generation, so it is counted like one: a slot while it renders, and its length charged to the UTC day (refunded if it fails). The body is the generations' `quota-exceeded` problem.", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait: 30 for `concurrent_jobs`, until the next 00:00 UTC for `daily_output_minutes`."))),
    )
)]
pub async fn recompose_generation(
    state: &ApiState,
    call: &Call<'_>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let id = call.job_id()?;
    // Read as a document (not `json_body`): the edits carry lists (`order`), which other
    // bodies refuse.
    let value = context::json_document(req, context::MAX_BODY_BYTES)?;
    let edits: RecomposeEdits =
        json::typed(&value).map_err(|e| ApiError::Invalid(ValidationErrors { errors: vec![e] }))?;
    let composition = state.service.recompose(call.tenant, &id, &edits).await?;
    let versions = state.service.deps.jobs.compositions(&id).await?;
    let view = CompositionView::new(&composition, &versions, call.base);
    let mut response = json_response(StatusCode::ACCEPTED, &view)?;
    let location = HeaderValue::from_str(&view.links.compositions)
        .map_err(|e| ApiError::Internal(format!("header value: {e}")))?;
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/v1/generations/{id}/compositions",
    tag = "generations",
    operation_id = "listCompositions",
    summary = "A generation's versions, oldest first, each with its parent and its own download",
    params(("id" = String, Path, description = "Generation id.")),
    responses(
        (status = 200, description = "Every version; a completed one carries presigned URLs valid for one hour.", body = CompositionListView,
            example = json!({"job_id": EXAMPLE_JOB, "items": [
                {"composition_id": EXAMPLE_FIRST, "job_id": EXAMPLE_JOB, "parent_composition_id": null, "ancestors": [], "status": "completed", "duration_seconds": 30.0, "size_bytes": 9_812_004u64, "error": null, "downloads": {"video": {"url": format!("https://media.s3.amazonaws.com/compositions/{EXAMPLE_FIRST}/final.mp4?X-Amz-Signature=..."), "content_type": "video/mp4", "size_bytes": 9_812_004u64}, "thumbnail": {"url": format!("https://media.s3.amazonaws.com/compositions/{EXAMPLE_FIRST}/thumbnail.jpg?X-Amz-Signature=..."), "content_type": "image/jpeg", "size_bytes": null}, "expires_at": "2026-12-01T11:00:00Z"}, "created_at": "2026-12-01T09:30:00Z", "updated_at": "2026-12-01T09:31:10Z", "links": {"compositions": format!("/v1/generations/{EXAMPLE_JOB}/compositions"), "generation": format!("/v1/generations/{EXAMPLE_JOB}"), "recompose": format!("/v1/generations/{EXAMPLE_JOB}/recompose")}},
                {"composition_id": EXAMPLE_SECOND, "job_id": EXAMPLE_JOB, "parent_composition_id": EXAMPLE_FIRST, "ancestors": [EXAMPLE_FIRST], "status": "rendering", "edits": {"aspect_ratio": "9:16"}, "duration_seconds": null, "size_bytes": null, "error": null, "created_at": "2026-12-01T10:00:00Z", "updated_at": "2026-12-01T10:00:00Z", "links": {"compositions": format!("/v1/generations/{EXAMPLE_JOB}/compositions"), "generation": format!("/v1/generations/{EXAMPLE_JOB}"), "recompose": format!("/v1/generations/{EXAMPLE_JOB}/recompose")}}
            ]})),
        (status = 404, description = "No such generation for this tenant.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_compositions(
    state: &ApiState,
    call: &Call<'_>,
) -> Result<Response<Body>, ApiError> {
    let id = call.job_id()?;
    let versions = state
        .service
        .compositions(call.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("No generation {id}.")))?;
    // Taken before signing, so the stated expiry is never later than the URLs' own.
    let expires_at = Utc::now() + DOWNLOAD_TTL;
    let blobs = &state.service.deps.blobs;
    let mut items = Vec::with_capacity(versions.len());
    for c in &versions {
        let mut view = CompositionView::new(c, &versions, call.base);
        if c.status == CompositionStatus::Completed
            && let Some(outputs) = &c.outputs
        {
            view.downloads = Some(CompositionDownloads {
                video: DownloadLink {
                    url: blobs.presign_get(&outputs.final_key, DOWNLOAD_TTL).await?,
                    content_type: "video/mp4".into(),
                    size_bytes: Some(outputs.size_bytes),
                },
                thumbnail: DownloadLink {
                    url: blobs
                        .presign_get(&outputs.thumbnail_key, DOWNLOAD_TTL)
                        .await?,
                    content_type: "image/jpeg".into(),
                    size_bytes: None,
                },
                expires_at,
            });
        }
        items.push(view);
    }
    json_response(
        StatusCode::OK,
        &CompositionListView {
            job_id: id.to_string(),
            items,
        },
    )
}

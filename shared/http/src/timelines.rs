//! `POST /v1/compositions`: a JSON timeline document rendered in one pass (or, with
//! `?dry_run=true`, only validated and predicted), and `GET /v1/compositions/{id}`: the render's
//! record. Every invalid field is answered as a 422
//! problem naming its JSON path (`tracks[1].clips[3].length`). The work is in
//! `vidpipe_pipeline::edit`.

use crate::ApiState;
use crate::context::{self, Query};
use crate::error::ApiError;
use crate::handlers::{Call, DOWNLOAD_TTL, json_response};
use crate::views::Problem;
use chrono::{DateTime, Utc};
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use vidpipe_domain::composition::{Composition, CompositionId, CompositionStatus, TimelineCall};
use vidpipe_domain::error::echo;
use vidpipe_domain::job::JobError;
use vidpipe_pipeline::ServiceError;
use vidpipe_pipeline::edit::{self, EditError};

/// Largest timeline document accepted: a hundred clips on each of ten tracks with long titles
/// fit well under it.
pub const MAX_TIMELINE_BODY_BYTES: usize = 1024 * 1024;

/// A timeline render: its status, prediction and, once completed, where to fetch it (for an
/// hour).
#[derive(Debug, Clone, Serialize)]
pub struct TimelineView {
    pub composition_id: String,
    pub status: CompositionStatus,
    /// Predicted while rendering; measured once completed.
    pub duration_seconds: f64,
    pub route: vidpipe_domain::job::ComposeRoute,
    pub provider_calls: Vec<TimelineCall>,
    pub error: Option<JobError>,
    pub links: TimelineLinks,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineLinks {
    /// Where to poll it.
    #[serde(rename = "self")]
    pub self_: String,
    /// Once completed: the MP4, presigned.
    #[serde(rename = "final", skip_serializing_if = "Option::is_none")]
    pub final_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<String>,
}

impl TimelineView {
    async fn new(state: &ApiState, c: &Composition, base: &str) -> Result<Self, ApiError> {
        let blobs = &state.service.deps.blobs;
        let timeline = c.timeline.clone().ok_or_else(|| {
            ApiError::Internal(format!("composition {} is not a timeline render", c.id))
        })?;
        let (final_, thumbnail) = match (&c.status, &c.outputs) {
            (CompositionStatus::Completed, Some(o)) => (
                Some(blobs.presign_get(&o.final_key, DOWNLOAD_TTL).await?),
                Some(blobs.presign_get(&o.thumbnail_key, DOWNLOAD_TTL).await?),
            ),
            _ => (None, None),
        };
        Ok(TimelineView {
            composition_id: c.id.to_string(),
            status: c.status,
            duration_seconds: c
                .outputs
                .as_ref()
                .map_or(timeline.duration_seconds, |o| o.duration_seconds),
            route: timeline.route,
            provider_calls: timeline.provider_calls,
            error: c.error.clone(),
            links: TimelineLinks {
                self_: format!("{base}/v1/compositions/{}", c.id),
                final_,
                thumbnail,
            },
            created_at: c.created_at,
            updated_at: c.updated_at,
        })
    }
}

#[utoipa::path(
    post,
    path = "/v1/compositions",
    tag = "compositions",
    operation_id = "createComposition",
    summary = "Render a JSON timeline, or dry-run it",
    description = "A timeline document: `output` (`aspect` 16:9, 9:16, 1:1 or 4:5; `resolution` 360p to 1080p; `fps` 24, 25 or 30; `background` #rrggbb), `tracks` (the first drawn on top), each with `clips`: an `asset` (`video` or `image` from an uploaded asset's `asset_id` or an earlier generation's `{job_id, scene}`, a video heard in its window at its `volume`, 0 to 2, default 1; `title` text drawn by the caption engine; `audio` by `asset_id`; `generate`, a `prompt` the provider chain turns into a clip through the clip cache), `start` and `length` in seconds, `fit` (cover, contain with blurred bands, crop), `position`, `scale`, `opacity`, `transition` (`in`, `out` from the xfade set, `duration`) and `effect` (zoom-in, zoom-out, pan-left, pan-right); a `soundtrack` (`asset_id`, `volume`, `fade_in`, `fade_out`, `ducking` under the audio clips and the videos' sound; the whole mix is levelled to -14 LUFS, true peak -1.5 dBTP) and `captions` (`style`, `position`, `size`, `cues` of `text`, `start`, `length`). Clips on one track may not overlap; at most 6 visual clips may be on screen at once (one render pass). With `dry_run=true` nothing is rendered, called or recorded: the answer is the normalised timeline (defaults filled, times in frames), `duration_seconds`, `route` (lambda or worker, as a generation's compose), the `provider_calls` it would make with their `cache_hit`, and `estimated_cost`. Without it the timeline is rendered and recorded as a composition of no job, read back at `GET /v1/compositions/{id}` (the `Location`): on the AWS stack the answer is 202 with `status` `rendering` (the validated, normalised timeline is stored and a state-machine execution named by the composition makes its `generate` clips through the provider chain and clip cache, then renders it in Lambda or on Fargate by its route); `vidpipe serve` renders before it answers, 201 with `status` `completed`.",
    params(("dry_run" = Option<bool>, Query, description = "`true`: validate and predict only.")),
    request_body(content = Object, content_type = "application/json", example = json!({
        "output": {"aspect": "9:16", "resolution": "720p", "fps": 30, "background": "#101820"},
        "tracks": [
            {"clips": [{"asset": {"type": "title", "text": "Summer sale", "style": {"style": "bold-outline"}},
                        "start": 0.5, "length": 2, "position": "top", "transition": {"in": "fade", "out": "fade", "duration": 0.3}}]},
            {"clips": [
                {"asset": {"type": "image", "asset_id": "ast_0190c5d37e1a7b3c9d4e5f6a7b8c9d0e"}, "start": 0, "length": 3, "fit": "contain", "effect": "zoom-in"},
                {"asset": {"type": "generate", "prompt": "Waves rolling onto a beach at sunset"}, "start": 3, "length": 4,
                 "transition": {"in": "wipeleft", "duration": 0.5}}
            ]},
            {"clips": [{"asset": {"type": "audio", "asset_id": "ast_0190c5d37e1a7b3c9d4e5f6a7b8c9d0f"}, "start": 1, "length": 3}]}
        ],
        "soundtrack": {"asset_id": "ast_0190c5d37e1a7b3c9d4e5f6a7b8c9d10", "volume": 0.7, "fade_out": 1, "ducking": true},
        "captions": {"style": "boxed", "cues": [{"text": "Everything 30% off", "start": 3.5, "length": 3}]}
    })),
    responses(
        (status = 200, description = "Dry run: the normalised timeline and its predictions.", body = Object, example = json!({
            "dry_run": true, "duration_seconds": 7.0, "total_frames": 210, "route": "lambda",
            "provider_calls": [{"path": "tracks[1].clips[1]", "provider": "procedural", "prompt": "Waves rolling onto a beach at sunset", "frames": 120, "cache_hit": false}],
            "estimated_cost": {"provider_usd": 0.0, "compute_usd": 0.00006, "total_usd": 0.00006, "basis": ["tracks[1].clips[1]: procedural $0.0000"]},
            "timeline": {"output": {"aspect": "9:16", "resolution": "720p", "width": 720, "height": 1280, "fps": 30, "background": "#101820"}}
        })),
        (status = 201, description = "Rendered before the answer (`vidpipe serve`, one process).", body = Object,
            headers(("Location" = String, description = "The composition's URL.")),
            example = json!({
            "composition_id": "cmp_0190c5d37e1a7b3c9d4e5f6a7b8c9d0e", "status": "completed", "duration_seconds": 7.0, "route": "lambda",
            "provider_calls": [], "error": null,
            "links": {"self": "https://…/v1/compositions/cmp_0190c5d37e1a7b3c9d4e5f6a7b8c9d0e", "final": "https://…/compositions/cmp_…/final.mp4", "thumbnail": "https://…/thumbnail.jpg"},
            "created_at": "2026-01-02T03:04:05Z", "updated_at": "2026-01-02T03:04:09Z"
        })),
        (status = 202, description = "Accepted and rendering (the AWS stack): poll the `Location` until `status` is `completed` or `failed`. `duration_seconds`, `route` and `provider_calls` are the prediction.", body = Object,
            headers(("Location" = String, description = "The composition's URL.")),
            example = json!({
            "composition_id": "cmp_0190c5d37e1a7b3c9d4e5f6a7b8c9d0e", "status": "rendering", "duration_seconds": 7.0, "route": "lambda",
            "provider_calls": [{"path": "tracks[1].clips[1]", "provider": "replicate", "prompt": "Waves rolling onto a beach at sunset", "frames": 120, "cache_hit": false}],
            "error": null, "links": {"self": "https://…/v1/compositions/cmp_0190c5d37e1a7b3c9d4e5f6a7b8c9d0e"},
            "created_at": "2026-01-02T03:04:05Z", "updated_at": "2026-01-02T03:04:05Z"
        })),
        (status = 400, description = "Malformed JSON or a bad `dry_run`.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not application/json.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The timeline breaks a rule; each field is named by its JSON path in `errors` (`tracks[1].clips[3].length`). Nothing was rendered.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over a per-tenant quota; nothing was recorded. A render makes output as a generation does, so it is counted like one (a dry run is not): a slot while it renders, and its length charged to the UTC day (refunded if it fails). The body is the generations' `quota-exceeded` problem.", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait: 30 for `concurrent_jobs`, until the next 00:00 UTC for `daily_output_minutes`."))),
    )
)]
pub async fn create_composition(
    state: &ApiState,
    call: &Call<'_>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let dry_run = match Query::of(req).get("dry_run")? {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "dry_run",
                format!(
                    "must be true or false (got {})",
                    vidpipe_domain::error::echo(other)
                ),
            ));
        }
    };
    let doc = context::json_document(req, MAX_TIMELINE_BODY_BYTES)?;
    let deps = &state.service.deps;
    if dry_run {
        let plan = edit::dry_run(deps, call.tenant, &doc)
            .await
            .map_err(api_error)?;
        let mut v = serde_json::to_value(&plan)
            .map_err(|e| ApiError::Internal(format!("encode dry run: {e}")))?;
        v["dry_run"] = serde_json::Value::Bool(true);
        return json_response(StatusCode::OK, &v);
    }
    if !deps.media.renders_edits() {
        // The stack's API functions carry no ffmpeg, and a render would outlast API Gateway's
        // 30 s: the document is stored and recorded here and rendered by the state machine,
        // whose execution is named by the composition.
        let accepted = state.service.accept_timeline(call.tenant, &doc).await?;
        if let Err(e) = state
            .service
            .orchestrator
            .start_timeline(&accepted.id)
            .await
        {
            let failed = edit::record_failure(
                deps,
                &accepted.id,
                vidpipe_domain::names::START_FAILED,
                &e.to_string(),
            )
            .await;
            tracing::error!(composition = %accepted.id, error = %e, recorded = failed.is_ok(), "timeline execution not started");
            return Err(ApiError::Service(ServiceError::Step(e.into())));
        }
        let view = TimelineView::new(state, &accepted, call.base).await?;
        let response = json_response(StatusCode::ACCEPTED, &view)?;
        return with_location(response, &view.links.self_);
    }
    // One process: rendered before the answer, as `vidpipe compose` renders.
    let started = std::time::Instant::now();
    let accepted = state.service.accept_timeline(call.tenant, &doc).await?;
    let done = edit::render_recorded(deps, &accepted, started, &|_| {})
        .await
        .map_err(api_error)?;
    let recorded = edit::get(deps, call.tenant, &done.composition_id)
        .await
        .map_err(|e| ApiError::Service(ServiceError::Step(e)))?
        .ok_or_else(|| ApiError::Internal(format!("{} was not recorded", done.composition_id)))?;
    let view = TimelineView::new(state, &recorded, call.base).await?;
    let response = json_response(StatusCode::CREATED, &view)?;
    with_location(response, &view.links.self_)
}

fn with_location(mut response: Response<Body>, url: &str) -> Result<Response<Body>, ApiError> {
    let value =
        HeaderValue::from_str(url).map_err(|e| ApiError::Internal(format!("header value: {e}")))?;
    response.headers_mut().insert(header::LOCATION, value);
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/v1/compositions/{id}",
    tag = "compositions",
    operation_id = "getComposition",
    summary = "A timeline render: status, prediction and downloads",
    description = "A composition made by `POST /v1/compositions`: `status` (`rendering`, `completed` or `failed`), `duration_seconds` (predicted while rendering, measured once completed), `route` (lambda or worker), the `provider_calls` its `generate` assets make (once completed, the provider that made each clip, or `cache_hit`), `error` (`code` is the stable error name, `message` a public reason) and `links`: `self`, and once completed `final` and `thumbnail`, presigned for an hour. Another tenant's composition is answered as a missing one. A generation's versions are listed under `/v1/generations/{id}/compositions` instead.",
    params(("id" = String, Path, description = "The composition id, `cmp_` and 32 hex digits.")),
    responses(
        (status = 200, description = "The composition.", body = Object, example = json!({
            "composition_id": "cmp_0190c5d37e1a7b3c9d4e5f6a7b8c9d0e", "status": "completed", "duration_seconds": 7.0, "route": "lambda",
            "provider_calls": [{"path": "tracks[1].clips[1]", "provider": "procedural", "prompt": "Waves rolling onto a beach at sunset", "frames": 120, "cache_hit": false}],
            "error": null,
            "links": {"self": "https://…/v1/compositions/cmp_0190c5d37e1a7b3c9d4e5f6a7b8c9d0e", "final": "https://…/compositions/cmp_…/final.mp4", "thumbnail": "https://…/thumbnail.jpg"},
            "created_at": "2026-01-02T03:04:05Z", "updated_at": "2026-01-02T03:04:41Z"
        })),
        (status = 404, description = "No such composition for this tenant.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_composition(
    state: &ApiState,
    call: &Call<'_>,
) -> Result<Response<Body>, ApiError> {
    let raw = call.id.unwrap_or_default();
    let missing = || ApiError::NotFound(format!("No composition {}.", echo(raw)));
    let id = CompositionId::parse(raw).map_err(|_| missing())?;
    let found = edit::get(&state.service.deps, call.tenant, &id)
        .await
        .map_err(|e| ApiError::Service(ServiceError::Step(e)))?
        .ok_or_else(missing)?;
    let view = TimelineView::new(state, &found, call.base).await?;
    json_response(StatusCode::OK, &view)
}

fn api_error(e: EditError) -> ApiError {
    match e {
        EditError::Invalid(v) => ApiError::Invalid(v),
        EditError::Step(e) => ApiError::Service(ServiceError::Step(e)),
    }
}

//! `POST /v1/compositions`: a JSON timeline document rendered in one pass (or, with
//! `?dry_run=true`, only validated and predicted). Every invalid field is answered as a 422
//! problem naming its JSON path (`tracks[1].clips[3].length`). The work is in
//! `vidpipe_pipeline::edit`.

use crate::ApiState;
use crate::context::{self, Query};
use crate::error::ApiError;
use crate::handlers::{Call, DOWNLOAD_TTL, json_response};
use crate::views::Problem;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use vidpipe_pipeline::ServiceError;
use vidpipe_pipeline::edit::{self, EditError, ProviderCall};

/// Largest timeline document accepted: a hundred clips on each of ten tracks with long titles
/// fit well under it.
pub const MAX_TIMELINE_BODY_BYTES: usize = 1024 * 1024;

/// A rendered composition: where to fetch it, for an hour.
#[derive(Debug, Clone, Serialize)]
pub struct CompositionView {
    pub composition_id: String,
    pub status: &'static str,
    pub duration_seconds: f64,
    pub route: vidpipe_domain::job::ComposeRoute,
    pub provider_calls: Vec<ProviderCall>,
    pub links: CompositionLinks,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompositionLinks {
    #[serde(rename = "final")]
    pub final_: String,
    pub thumbnail: String,
}

#[utoipa::path(
    post,
    path = "/v1/compositions",
    tag = "compositions",
    operation_id = "createComposition",
    summary = "Render a JSON timeline, or dry-run it",
    description = "A timeline document: `output` (`aspect` 16:9, 9:16, 1:1 or 4:5; `resolution` 360p to 1080p; `fps` 24, 25 or 30; `background` #rrggbb), `tracks` (the first drawn on top), each with `clips`: an `asset` (`video` or `image` from an uploaded asset's `asset_id` or an earlier generation's `{job_id, scene}`, a video heard in its window at its `volume`, 0 to 2, default 1; `title` text drawn by the caption engine; `audio` by `asset_id`; `generate`, a `prompt` the provider chain turns into a clip through the clip cache), `start` and `length` in seconds, `fit` (cover, contain with blurred bands, crop), `position`, `scale`, `opacity`, `transition` (`in`, `out` from the xfade set, `duration`) and `effect` (zoom-in, zoom-out, pan-left, pan-right); a `soundtrack` (`asset_id`, `volume`, `fade_in`, `fade_out`, `ducking` under the audio clips and the videos' sound; the whole mix is levelled to -14 LUFS, true peak -1.5 dBTP) and `captions` (`style`, `position`, `size`, `cues` of `text`, `start`, `length`). Clips on one track may not overlap; at most 6 visual clips may be on screen at once (one render pass). With `dry_run=true` nothing is rendered, called or recorded: the answer is the normalised timeline (defaults filled, times in frames), `duration_seconds`, `route` (lambda or worker, as a generation's compose), the `provider_calls` it would make with their `cache_hit`, and `estimated_cost`.",
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
        (status = 201, description = "Rendered.", body = Object, example = json!({
            "composition_id": "cmp_0190c5d37e1a7b3c9d4e5f6a7b8c9d0e", "status": "completed", "duration_seconds": 7.0, "route": "lambda",
            "provider_calls": [], "links": {"final": "https://…/compositions/cmp_…/final.mp4", "thumbnail": "https://…/thumbnail.jpg"}
        })),
        (status = 400, description = "Malformed JSON, a bad `dry_run`, or a render asked of a deployment that only dry-runs timelines (the AWS stack; `vidpipe serve` renders).", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not application/json.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The timeline breaks a rule; each field is named by its JSON path in `errors` (`tracks[1].clips[3].length`). Nothing was rendered.", body = Problem, content_type = "application/problem+json"),
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
        // 30 s; the stack validates and predicts, `vidpipe serve` renders.
        return Err(ApiError::bad_request(
            "dry_run",
            "this deployment only dry-runs timelines (send dry_run=true); render them with vidpipe serve",
        ));
    }
    let done = edit::render(deps, call.tenant, &doc, &|_| {})
        .await
        .map_err(api_error)?;
    let view = CompositionView {
        composition_id: done.composition_id.to_string(),
        status: done.status,
        duration_seconds: done.duration_seconds,
        route: done.route,
        provider_calls: done.provider_calls,
        links: CompositionLinks {
            final_: deps
                .blobs
                .presign_get(&done.final_key, DOWNLOAD_TTL)
                .await?,
            thumbnail: deps
                .blobs
                .presign_get(&done.thumbnail_key, DOWNLOAD_TTL)
                .await?,
        },
    };
    json_response(StatusCode::CREATED, &view)
}

fn api_error(e: EditError) -> ApiError {
    match e {
        EditError::Invalid(v) => ApiError::Invalid(v),
        EditError::Step(e) => ApiError::Service(ServiceError::Step(e)),
    }
}

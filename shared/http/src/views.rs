//! The JSON shapes the API speaks, apart from the domain's own request body. They are views:
//! built from domain records at the edge so the wire format can stay stable while records evolve,
//! and so internal fields (versions, idempotency keys, plans) never leak.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use vidpipe_domain::asset::{Asset, AssetKind};
use vidpipe_domain::error::FieldError;
use vidpipe_domain::job::{ClipStatus, Job, JobError, JobStatus, Stage};
use vidpipe_domain::quota::QuotaKind;

/// An RFC 7807 problem, served as `application/problem+json`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// `urn:vidpipe:problem:{slug}`: stable, for programs to branch on.
    #[serde(rename = "type")]
    pub r#type: String,
    pub title: String,
    pub status: u16,
    /// What went wrong with this request, for people.
    pub detail: String,
    /// The request path.
    pub instance: String,
    /// Quote it when reporting a problem: it finds the server's log lines.
    pub request_id: String,
    /// Each offending field (dotted path such as `brand.logo.opacity`) and the rule it broke.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// On `quota-exceeded` problems: the quota the request would break.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaKind>,
    /// On `quota-exceeded` problems: the tenant's limit, in jobs (`concurrent_jobs`) or minutes
    /// (`daily_output_minutes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
    /// On `quota-exceeded` problems: jobs running now, or minutes already charged today (UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used: Option<f64>,
    /// On `quota-exceeded` problems: what this request asks for, in the same unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<f64>,
}

/// Where to go next with a generation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobLinks {
    #[serde(rename = "self")]
    pub self_: String,
    pub cancel: String,
    pub download: String,
}

/// The validated request a job runs, with defaults filled in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RequestSummary {
    pub prompt: String,
    pub duration_seconds: u32,
    pub aspect_ratio: String,
    pub resolution: String,
    pub fps: u32,
    pub clip_count: u8,
    pub transition: String,
    pub transition_duration_seconds: f64,
    pub captions: bool,
    /// `boxed`, `bold-outline` or `karaoke`.
    pub caption_style: String,
    /// The narrator asked for (`espeak`, `polly`, `openai`, or `default`), when narrated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narration: Option<String>,
    /// Where the job's webhook goes, when the request named one: its scheme, host and port
    /// (the path may be the receiver's credential, so it is not echoed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_target: Option<String>,
    /// The clip provider the request chose to lead the chain, when it chose one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The planner the request chose, when it chose one (`planner` says which one planned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planner: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClipView {
    pub index: u32,
    pub status: ClipStatus,
    pub attempts: u32,
    pub cache_hit: bool,
    pub error: Option<String>,
    /// The provider that made the clip (or is making it).
    pub provider: String,
    /// Why earlier providers of the chain did not make it, when they did not.
    pub fallback: Option<String>,
    /// What the provider call cost, when known.
    pub cost_usd: Option<f64>,
    /// A link (valid one hour) to the finished clip's picture, a JPEG of its middle frame 320
    /// px wide, for its tile. On `GET /v1/generations/{id}` only, once the clip is done; absent
    /// for clips made before clips had pictures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutputsView {
    pub final_key: String,
    /// Size of the final MP4.
    pub size_bytes: u64,
    pub duration_seconds: f64,
    pub thumbnail_key: String,
    pub timeline_key: String,
    pub metadata_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StageTimingView {
    pub stage: Stage,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub seconds: Option<f64>,
}

/// A generation job as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub status: JobStatus,
    /// The working stage, while the job is in one.
    pub stage: Option<Stage>,
    /// 0..=100, weighted by stage, finished clips and compose progress.
    pub progress_percent: f64,
    pub request: RequestSummary,
    /// The planner that made the plan (`rules`, `bedrock`, `openai`), once planned.
    pub planner: Option<String>,
    /// Why the configured LLM planner's plan was not used, when it was not.
    pub planner_fallback: Option<String>,
    pub clips: Vec<ClipView>,
    pub outputs: Option<OutputsView>,
    /// What the job cost, once completed.
    #[schema(value_type = Option<vidpipe_domain::job::GenerationCost>)]
    pub cost: Option<vidpipe_domain::job::GenerationCost>,
    pub error: Option<JobError>,
    /// Stages entered so far, in pipeline order.
    pub stages: Vec<StageTimingView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub links: JobLinks,
}

impl JobView {
    /// `base` is where the caller reached the API (see [`crate::context::base`]), so links work
    /// the way it came in.
    pub fn new(job: &Job, base: &str) -> Self {
        let r = &job.request;
        let base = format!("{base}/v1/generations/{}", job.id);
        JobView {
            id: job.id.to_string(),
            status: job.status,
            stage: job.status.stage(),
            // One decimal is all a progress bar needs, and it keeps the JSON free of float noise.
            progress_percent: (job.progress() * 10.0).round() / 10.0,
            request: RequestSummary {
                prompt: r.prompt.as_str().to_owned(),
                duration_seconds: r.duration_seconds,
                aspect_ratio: r.aspect_ratio.to_string(),
                resolution: r.resolution.to_string(),
                fps: r.fps.get(),
                clip_count: r.clip_count.get(),
                transition: r.transition.kind.to_string(),
                transition_duration_seconds: r.transition.duration_seconds,
                captions: r.captions,
                caption_style: r.caption_style.style.to_string(),
                narration: r.narration.as_ref().map(|n| {
                    n.narrator
                        .map_or_else(|| "default".to_owned(), |k| k.to_string())
                }),
                webhook_target: r.webhook_url.as_ref().map(|u| u.origin()),
                provider: r.provider.clone(),
                planner: r.planner.clone(),
            },
            clips: job
                .clips
                .iter()
                .map(|c| ClipView {
                    index: c.index,
                    status: c.status,
                    attempts: c.attempts,
                    cache_hit: c.cache_hit,
                    error: c.error.clone(),
                    provider: c.provider.clone(),
                    fallback: c.fallback.clone(),
                    cost_usd: c.cost.as_ref().map(|k| k.usd),
                    thumbnail_url: None,
                })
                .collect(),
            planner: job.plan.as_ref().map(|p| p.planner.clone()),
            planner_fallback: job.plan.as_ref().and_then(|p| p.fallback.clone()),
            cost: job.cost.clone(),
            outputs: job.outputs.as_ref().map(|o| OutputsView {
                final_key: o.final_key.clone(),
                size_bytes: o.size_bytes,
                duration_seconds: o.duration_seconds,
                thumbnail_key: o.thumbnail_key.clone(),
                timeline_key: o.timeline_key.clone(),
                metadata_key: o.metadata_key.clone(),
            }),
            error: job.error.clone(),
            stages: job
                .stages
                .iter()
                .map(|(stage, t)| StageTimingView {
                    stage: *stage,
                    started_at: t.started_at,
                    finished_at: t.finished_at,
                    seconds: t.seconds(),
                })
                .collect(),
            created_at: job.created_at,
            updated_at: job.updated_at,
            links: JobLinks {
                cancel: format!("{base}/cancel"),
                download: format!("{base}/download"),
                self_: base,
            },
        }
    }
}

/// One page of generations, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobListView {
    pub items: Vec<JobView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A presigned URL for one output.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DownloadLink {
    pub url: String,
    pub content_type: String,
    pub size_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DownloadView {
    pub job_id: String,
    /// The final MP4.
    pub video: DownloadLink,
    pub thumbnail: DownloadLink,
    /// When both URLs stop working.
    pub expires_at: DateTime<Utc>,
}

/// Announces an upload. Fields are optional here so a missing one is a named validation error.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAssetBody {
    #[schema(value_type = Option<AssetKind>)]
    pub kind: Option<String>,
    /// Logos and images: image/png, image/jpeg. Music: audio/mpeg, audio/wav, audio/x-wav,
    /// audio/mp4, audio/x-m4a. Videos: video/mp4, video/quicktime, video/webm.
    pub content_type: Option<String>,
    /// The exact size of the file that will be uploaded. Logos and images up to 10 MiB, music up
    /// to 50 MiB, videos up to 100 MiB (a video must also have a video stream, each side 16 to
    /// 4096 pixels and a length up to 600 s, checked when a step first uses it).
    pub size_bytes: Option<u64>,
}

/// The new asset and where to upload its file.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AssetUploadView {
    pub asset_id: String,
    pub kind: AssetKind,
    pub content_type: String,
    pub size_bytes: u64,
    /// PUT the file here, with exactly `headers`, before `expires_at`.
    pub upload_url: String,
    /// Always `PUT`.
    pub method: String,
    pub headers: BTreeMap<String, String>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AssetView {
    pub asset_id: String,
    pub kind: AssetKind,
    pub content_type: String,
    /// The size announced when the asset was created.
    pub size_bytes: u64,
    /// Whether the file has arrived; a generation may only use uploaded assets.
    pub uploaded: bool,
    /// The stored object's size, once uploaded.
    pub uploaded_size_bytes: Option<u64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_seconds: Option<f64>,
    pub created_at: DateTime<Utc>,
}

impl AssetView {
    pub fn new(asset: &Asset, uploaded_size: Option<u64>) -> Self {
        AssetView {
            asset_id: asset.id.to_string(),
            kind: asset.kind,
            content_type: asset.content_type.clone(),
            size_bytes: asset.size_bytes,
            uploaded: uploaded_size.is_some(),
            uploaded_size_bytes: uploaded_size,
            width: asset.width,
            height: asset.height,
            duration_seconds: asset.duration_seconds,
            created_at: asset.created_at,
        }
    }
}

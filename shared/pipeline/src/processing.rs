//! The upload-processing steps every runner calls (the embedded runner below, the Lambda
//! functions under `statemachine/processing.asl.json`, the Fargate worker): probe, transcode in
//! one pass, or split / render segments / assemble, then publish; any failure is recorded and
//! notified. Steps read and write through the ports, and hand each other keys, never media.

use crate::error::StepError;
use crate::policy::RetryPolicy;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use vidpipe_domain::media::ProbeInfo;
use vidpipe_domain::ports::{BlobError, BlobStore, MediaError, Notifier, ProcessStore};
use vidpipe_domain::processing::{
    self as domain, Fit, OutputRecord, ProcessEvent, ProcessFailure, ProcessJob, ProcessSettings,
    ProcessStatus, Rejection, RenditionSet, Route, SourceFacts, SourcePath, SourceRef, TrimWindow,
};
use vidpipe_media::Tools;
use vidpipe_media::process::{self as media, EncodeTarget, Span, ThumbnailTarget, Watermark};

/// How long a presigned source URL stays valid: longer than any single step.
const SOURCE_URL_TTL: Duration = Duration::from_secs(3600);

/// Lambda's arm64 price per GB-second (us-east-1, 2026), used for the manifest's cost figures.
pub const LAMBDA_ARM64_USD_PER_GB_SECOND: f64 = 0.000_013_333_4;

/// Fargate's Linux/arm64 prices (us-east-1, 2026): the worker's seconds are billed at these.
pub const FARGATE_ARM64_USD_PER_VCPU_HOUR: f64 = 0.032_38;
pub const FARGATE_ARM64_USD_PER_GB_HOUR: f64 = 0.003_56;

/// The worker task's size, as the template gives it (CPU units of 1/1024 vCPU, MiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FargateSize {
    pub cpu_units: u32,
    pub memory_mb: u32,
}

impl FargateSize {
    pub fn usd_per_second(&self) -> f64 {
        (self.cpu_units as f64 / 1024.0 * FARGATE_ARM64_USD_PER_VCPU_HOUR
            + self.memory_mb as f64 / 1024.0 * FARGATE_ARM64_USD_PER_GB_HOUR)
            / 3600.0
    }
}

/// Where the Fargate worker leaves its `Rendered` under the source's `temp/` folder: an ECS task
/// cannot return a payload, so publish reads it from there.
pub const WORKER_RENDERED: &str = "worker-rendered.json";

/// Where the worker leaves the error that ended it: ECS only tells Step Functions that the task
/// exited non-zero (`States.TaskFailed`), and record_failure should record the real name.
pub const WORKER_FAILURE: &str = "worker-failure.json";

/// The step name a worker transcode is timed under, so the manifest can tell its seconds (billed
/// by Fargate, not Lambda) from the rest.
pub const WORKER_TRANSCODE_STEP: &str = "worker_transcode";

/// Everything a processing step needs, built once per cold start (or once per CLI run).
#[derive(Clone)]
pub struct ProcessDeps {
    pub records: Arc<dyn ProcessStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub notifier: Arc<dyn Notifier>,
    pub tools: Tools,
    pub settings: ProcessSettings,
    pub renditions: RenditionSet,
    /// Blob key of the watermark image (PNG or JPEG).
    pub watermark_key: String,
    /// Long sources go to the Fargate worker instead of segments.
    pub worker_configured: bool,
    /// The worker task's size, for the cost of its seconds; `None` when unknown.
    pub worker_size: Option<FargateSize>,
    /// The function's memory, for cost figures; `None` on one machine.
    pub memory_mb: Option<u32>,
    pub scratch_dir: PathBuf,
}

/// The execution input: the uploaded object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInput {
    pub source: SourceRef,
}

/// Seconds one step spent, for the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub step: String,
    pub seconds: f64,
}

/// Probe's output, carried by every later step: small, keys and numbers only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probed {
    pub source: SourceRef,
    pub source_id: String,
    pub path: SourcePath,
    pub facts: SourceFacts,
    pub window: TrimWindow,
    pub route: Route,
    pub has_audio: bool,
    #[serde(default)]
    pub timings: Vec<Timing>,
}

/// Where the renditions and thumbnail were written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendered {
    pub probed: Probed,
    pub thumbnail_key: String,
    #[serde(default)]
    pub timings: Vec<Timing>,
}

/// One segment's work order: output frames `[first_frame, first_frame + frames)`, read from
/// `key` starting at source time `input_offset`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentTask {
    pub index: u32,
    pub key: String,
    pub first_frame: u64,
    pub input_offset: f64,
    pub frames: u64,
}

/// The split's plan: the segments, where the audio goes, the thumbnail already written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    pub probed: Probed,
    pub segments: Vec<SegmentTask>,
    pub audio_key: String,
    pub thumbnail_key: String,
    #[serde(default)]
    pub timings: Vec<Timing>,
}

/// Assemble's input: the plan, the Map's results (one per segment, in any order) and the audio
/// step's timing; the two ran side by side in a Parallel state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssembleInput {
    pub split: Split,
    pub rendered: Vec<SegmentDone>,
    pub audio: Timing,
}

/// One Map iteration's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentInput {
    pub probed: Probed,
    pub segment: SegmentTask,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentDone {
    pub index: u32,
    /// One key per encoding, in `RenditionSet::encodings` order.
    pub parts: Vec<String>,
    pub seconds: f64,
}

/// What publish is given: the `Rendered` a Lambda step returned, or, after the Fargate worker,
/// the `Probed` the route chose from (the worker's `Rendered` is then read from `temp/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PublishInput {
    Rendered(Box<Rendered>),
    AfterWorker(Box<Probed>),
}

/// The Catch's input: the execution's source and Step Functions' error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessFailureInput {
    pub source: SourceRef,
    pub error_type: String,
    pub cause: String,
}

fn timed(step: &str, started: Instant) -> Timing {
    Timing {
        step: step.to_owned(),
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// A URL ffmpeg can open for `key`: presigned for S3; for the filesystem store, its path (the
/// `file:` protocol of ffmpeg does not percent-decode).
async fn media_input(blobs: &dyn BlobStore, key: &str) -> Result<OsString, StepError> {
    let url = blobs.presign_get(key, SOURCE_URL_TTL).await?;
    Ok(match url.strip_prefix("file://") {
        Some(path) => OsString::from(percent_decode(path)),
        None => OsString::from(url),
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An empty scratch folder for one step of one source: whatever a crashed earlier attempt left
/// there is cleared first, so a retry never reads a stale part.
async fn work_dir(deps: &ProcessDeps, source_id: &str, name: &str) -> Result<PathBuf, StepError> {
    let dir = deps.scratch_dir.join("process").join(source_id).join(name);
    let _ = tokio::fs::remove_dir_all(&dir).await;
    tokio::fs::create_dir_all(&dir).await?;
    Ok(dir)
}

/// The record as it stands, or a fresh one for this source.
async fn record_for(deps: &ProcessDeps, source: &SourceRef) -> Result<ProcessJob, StepError> {
    let now = Utc::now();
    Ok(match deps.records.get_process(&source.id()).await? {
        Some(mut job) => {
            job.updated_at = now;
            job
        }
        None => ProcessJob::new(source, now),
    })
}

/// Step 1: reads the upload through a URL (no download), checks it, picks the route and opens
/// the record. Rejections are `VidPipe.SourceRejected`: permanent, recorded by the Catch.
pub async fn probe(deps: &ProcessDeps, input: &ProcessInput) -> Result<Probed, StepError> {
    let started = Instant::now();
    let source = &input.source;
    let path = SourcePath::parse(&source.key)
        .map_err(|e| StepError::Rejected(Rejection::NotMedia(e.to_string())))?;
    let head = deps.blobs.head(&source.key).await?.ok_or_else(|| {
        StepError::Rejected(Rejection::NotMedia(format!(
            "{} no longer exists",
            source.key
        )))
    })?;
    if head.size_bytes == 0 {
        return Err(StepError::Rejected(Rejection::Empty));
    }
    let url = media_input(deps.blobs.as_ref(), &source.key).await?;
    let info: ProbeInfo = match media::probe_input(&deps.tools, &url).await {
        Ok(info) => info,
        Err(MediaError::InvalidInput(why)) => {
            return Err(StepError::Rejected(Rejection::NotMedia(why)));
        }
        Err(e) => return Err(e.into()),
    };
    let facts = SourceFacts::check(&info, head.size_bytes, &deps.settings)?;
    let window = TrimWindow::new(&facts, &deps.settings);
    let route = domain::route(
        window.duration_seconds(),
        &deps.settings,
        deps.worker_configured,
    );
    let mut job = record_for(deps, source).await?;
    job.status = ProcessStatus::Running;
    job.path = Some(path.clone());
    job.route = Some(route);
    job.facts = Some(facts.clone());
    job.error = None;
    job.outputs.clear();
    job.manifest_key = None;
    deps.records.put_process(&job).await?;
    Ok(Probed {
        source: source.clone(),
        source_id: job.id,
        path,
        has_audio: facts.audio_codec.is_some(),
        facts,
        window,
        route,
        timings: vec![timed("probe", started)],
    })
}

/// The encodes of this configuration, each with its box for this source.
fn targets(deps: &ProcessDeps, probed: &Probed, dir: &Path) -> Vec<EncodeTarget> {
    deps.renditions
        .encodings()
        .iter()
        .enumerate()
        .map(|(i, group)| {
            let r = group[0];
            EncodeTarget {
                fit: Fit::compute(probed.facts.width, probed.facts.height, r.width, r.height),
                video_kbps: r.video_kbps,
                audio_kbps: r.audio_kbps,
                output: dir.join(format!("encoding_{i}.mp4")),
            }
        })
        .collect()
}

async fn watermark(deps: &ProcessDeps) -> Result<Watermark, StepError> {
    let bytes = match deps.blobs.get_bytes(&deps.watermark_key).await {
        Ok(b) => b,
        Err(BlobError::NotFound(_)) => {
            return Err(StepError::Configuration(format!(
                "the watermark {:?} does not exist in the media store; upload a PNG or JPEG there \
                 or change the watermark setting",
                deps.watermark_key
            )));
        }
        Err(e) => return Err(e.into()),
    };
    Watermark::decode(&bytes, deps.settings.watermark.clone()).map_err(|e| {
        StepError::Configuration(format!("the watermark {:?}: {e}", deps.watermark_key))
    })
}

fn thumbnail_target(deps: &ProcessDeps, probed: &Probed, dir: &Path) -> ThumbnailTarget {
    let (width, height) = domain::thumbnail_size(&probed.facts, deps.settings.thumbnail_long_side);
    let seconds = probed
        .window
        .thumbnail_seconds(deps.settings.thumbnail_fraction);
    ThumbnailTarget {
        frame: (seconds * probed.window.rate.as_f64()).round() as u64,
        width,
        height,
        output: dir.join("thumbnail.jpg"),
    }
}

/// Uploads each encoding under every rendition name that shares it.
async fn publish_encodings(
    deps: &ProcessDeps,
    probed: &Probed,
    files: &[PathBuf],
) -> Result<(), StepError> {
    for (group, file) in deps.renditions.encodings().iter().zip(files) {
        for r in group {
            deps.blobs
                .put_file(&probed.path.rendition_key(&r.name), file, "video/mp4")
                .await?;
        }
    }
    Ok(())
}

/// Step 2 (short sources): one ffmpeg process, one decode, every rendition and the thumbnail.
pub async fn transcode(
    deps: &ProcessDeps,
    probed: &Probed,
    progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<Rendered, StepError> {
    let started = Instant::now();
    let dir = work_dir(deps, &probed.source_id, "single").await?;
    let mark = watermark(deps).await?;
    let input = media_input(deps.blobs.as_ref(), &probed.source.key).await?;
    let targets = targets(deps, probed, &dir);
    let thumb = thumbnail_target(deps, probed, &dir);
    let job = media::RenderJob {
        input,
        source_size: (probed.facts.width, probed.facts.height),
        span: Span::whole(&probed.window),
        targets: &targets,
        thumbnail: Some(thumb.clone()),
        watermark: &mark,
        audio: Some(probed.has_audio),
        work_dir: &dir,
    };
    let report = vidpipe_media::run::Progress {
        total_seconds: probed.window.duration_seconds(),
        report: progress,
    };
    media::render(&deps.tools, &job, Some(report)).await?;
    let files: Vec<PathBuf> = targets.iter().map(|t| t.output.clone()).collect();
    publish_encodings(deps, probed, &files).await?;
    let thumbnail_key = probed.path.thumbnail_key();
    deps.blobs
        .put_file(&thumbnail_key, &thumb.output, "image/jpeg")
        .await?;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    let mut timings = probed.timings.clone();
    timings.push(timed("transcode", started));
    Ok(Rendered {
        probed: probed.clone(),
        thumbnail_key,
        timings,
    })
}

/// Step 2 on the Fargate worker (long sources, when the stack has one): the same single pass
/// with no 15-minute limit, its `Rendered` stored at `temp/{source_id}/worker-rendered.json`.
pub async fn transcode_on_worker(
    deps: &ProcessDeps,
    probed: &Probed,
    progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<(), StepError> {
    let mut rendered = transcode(deps, probed, progress).await?;
    // Re-label the step's time (transcode's own, the last): the manifest bills it at Fargate's
    // rate, not Lambda's.
    if let Some(t) = rendered.timings.last_mut() {
        t.step = WORKER_TRANSCODE_STEP.to_owned();
    }
    put_temp_json(deps, &probed.source_id, WORKER_RENDERED, &rendered).await
}

/// Writes a small JSON file under the source's `temp/` folder.
async fn put_temp_json(
    deps: &ProcessDeps,
    source_id: &str,
    name: &str,
    value: &impl Serialize,
) -> Result<(), StepError> {
    deps.blobs
        .put_bytes(
            &domain::temp_key(source_id, name),
            serde_json::to_vec(value)?,
            "application/json",
        )
        .await?;
    Ok(())
}

/// The Fargate worker's whole job: the transcode with the step retry policy (Step Functions does
/// not retry a task that exited non-zero), and on a final failure the error left for
/// record_failure. Files a crashed earlier attempt left are removed first, so neither a stale
/// output nor a stale failure is ever read.
pub async fn run_worker(
    deps: &ProcessDeps,
    probed: &Probed,
    progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<(), StepError> {
    for name in [WORKER_RENDERED, WORKER_FAILURE] {
        deps.blobs
            .delete(&domain::temp_key(&probed.source_id, name))
            .await?;
    }
    let outcome = RetryPolicy::STEP
        .retry(
            |attempt, e| tracing::warn!(attempt, error = %e, "worker transcode failed; retrying"),
            || transcode_on_worker(deps, probed, progress),
        )
        .await;
    if let Err(e) = &outcome {
        let failure = ProcessFailure {
            error: e.error_type().to_owned(),
            reason: e.to_string(),
        };
        put_temp_json(deps, &probed.source_id, WORKER_FAILURE, &failure).await?;
    }
    outcome
}

/// Publish after either kind of transcode. After the worker, the stored `Rendered` must be
/// there: a task that exited 0 without it is an internal error, not a silent success.
pub async fn publish_any(
    deps: &ProcessDeps,
    input: &PublishInput,
) -> Result<ProcessEvent, StepError> {
    match input {
        PublishInput::Rendered(rendered) => publish(deps, rendered).await,
        PublishInput::AfterWorker(probed) => {
            let key = domain::temp_key(&probed.source_id, WORKER_RENDERED);
            let bytes = deps.blobs.get_bytes(&key).await.map_err(|e| match e {
                BlobError::NotFound(_) => {
                    StepError::Internal(format!("the worker finished without writing {key}"))
                }
                other => other.into(),
            })?;
            let rendered: Rendered = serde_json::from_slice(&bytes)?;
            publish(deps, &rendered).await
        }
    }
}

/// Step 2a (long sources): cuts the output timeline into segments, encodes the audio once and
/// takes the thumbnail. Each segment is rendered straight from the source through its own
/// frame-accurate seek, so nothing is copied into `temp/` first: a stream-copy split moved every
/// source byte twice through one function, which the benchmark showed to dominate the wall time,
/// and its MP4 pieces lost the reordered tail frames of B-frame sources.
pub async fn split(deps: &ProcessDeps, probed: &Probed) -> Result<Split, StepError> {
    let started = Instant::now();
    let dir = work_dir(deps, &probed.source_id, "split").await?;
    let input = media_input(deps.blobs.as_ref(), &probed.source.key).await?;
    let tasks: Vec<SegmentTask> = probed
        .window
        .segments(deps.settings.segment_seconds)
        .into_iter()
        .enumerate()
        .map(|(i, (first, frames))| SegmentTask {
            index: i as u32,
            key: probed.source.key.clone(),
            first_frame: first,
            input_offset: probed.window.source_seconds(first),
            frames,
        })
        .collect();
    let audio_key = domain::temp_key(&probed.source_id, "audio.m4a");
    let thumb = thumbnail_target(deps, probed, &dir);
    media::thumbnail(
        &deps.tools,
        &input,
        probed.window.start_seconds + thumb.frame as f64 / probed.window.rate.as_f64(),
        (thumb.width, thumb.height),
        &thumb.output,
    )
    .await?;
    let thumbnail_key = probed.path.thumbnail_key();
    deps.blobs
        .put_file(&thumbnail_key, &thumb.output, "image/jpeg")
        .await?;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    let mut timings = probed.timings.clone();
    timings.push(timed("split", started));
    Ok(Split {
        probed: probed.clone(),
        segments: tasks,
        audio_key,
        thumbnail_key,
        timings,
    })
}

/// Step 2b' (beside the Map): encodes the whole trimmed audio once, so segment seams never
/// split an AAC frame. It runs in parallel with the segment renders: on a long upload it takes
/// as long as a couple of segment waves, and before it sat on the critical path.
pub async fn encode_audio(deps: &ProcessDeps, split: &Split) -> Result<Timing, StepError> {
    let started = Instant::now();
    let probed = &split.probed;
    let dir = work_dir(deps, &probed.source_id, "audio").await?;
    let input = media_input(deps.blobs.as_ref(), &probed.source.key).await?;
    let audio = dir.join("audio.m4a");
    let audio_kbps = deps
        .renditions
        .renditions
        .iter()
        .map(|r| r.audio_kbps)
        .max()
        .unwrap_or(128);
    media::encode_audio(
        &deps.tools,
        &input,
        Span::whole(&probed.window),
        probed.has_audio,
        audio_kbps,
        &audio,
    )
    .await?;
    deps.blobs
        .put_file(&split.audio_key, &audio, "audio/mp4")
        .await?;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    Ok(timed("audio", started))
}

/// Step 2b (one Map iteration): renders one segment's video to every encoding.
pub async fn render_segment(
    deps: &ProcessDeps,
    input: &SegmentInput,
) -> Result<SegmentDone, StepError> {
    let started = Instant::now();
    let probed = &input.probed;
    let seg = &input.segment;
    let dir = work_dir(
        deps,
        &probed.source_id,
        &format!("segment_{:04}", seg.index),
    )
    .await?;
    let mark = watermark(deps).await?;
    let input = media_input(deps.blobs.as_ref(), &seg.key).await?;
    let targets = targets(deps, probed, &dir);
    let job = media::RenderJob {
        input,
        source_size: (probed.facts.width, probed.facts.height),
        span: Span {
            input_offset: seg.input_offset,
            rate: probed.window.rate,
            frames: seg.frames,
        },
        targets: &targets,
        thumbnail: None,
        watermark: &mark,
        audio: None,
        work_dir: &dir,
    };
    media::render(&deps.tools, &job, None).await?;
    let mut parts = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let key = domain::temp_key(
            &probed.source_id,
            &format!("parts/{:04}_{i}.mp4", seg.index),
        );
        deps.blobs.put_file(&key, &t.output, "video/mp4").await?;
        parts.push(key);
    }
    let _ = tokio::fs::remove_dir_all(&dir).await;
    Ok(SegmentDone {
        index: seg.index,
        parts,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Step 2c: per encoding, concatenates the segment renders by stream copy and muxes the audio.
pub async fn assemble(deps: &ProcessDeps, input: &AssembleInput) -> Result<Rendered, StepError> {
    let started = Instant::now();
    let split = &input.split;
    let probed = &split.probed;
    if input.rendered.len() != split.segments.len() {
        return Err(StepError::Internal(format!(
            "{} segments rendered of {}",
            input.rendered.len(),
            split.segments.len()
        )));
    }
    let dir = work_dir(deps, &probed.source_id, "assemble").await?;
    let audio = dir.join("audio.m4a");
    deps.blobs.get_to_file(&split.audio_key, &audio).await?;
    let mut rendered = input.rendered.clone();
    rendered.sort_by_key(|r| r.index);
    let encodings = deps.renditions.encodings().len();
    let mut files = Vec::new();
    for e in 0..encodings {
        let mut parts = Vec::new();
        for r in &rendered {
            let key = r.parts.get(e).ok_or_else(|| {
                StepError::Internal(format!("segment {} lacks encoding {e}", r.index))
            })?;
            let local = dir.join(format!("part_{:04}_{e}.mp4", r.index));
            deps.blobs.get_to_file(key, &local).await?;
            parts.push(local);
        }
        let out = dir.join(format!("encoding_{e}.mp4"));
        media::concat(
            &deps.tools,
            &parts,
            &audio,
            probed.window.duration_seconds(),
            &out,
        )
        .await?;
        files.push(out);
    }
    publish_encodings(deps, probed, &files).await?;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    // The scratch objects are no longer needed; the temp/ lifecycle rule is the backstop.
    if let Ok(list) = deps
        .blobs
        .list(&domain::temp_key(&probed.source_id, ""))
        .await
    {
        for b in list {
            let _ = deps.blobs.delete(&b.key).await;
        }
    }
    let mut timings = split.timings.clone();
    timings.push(input.audio.clone());
    for r in &rendered {
        timings.push(Timing {
            step: format!("segment_{:04}", r.index),
            seconds: r.seconds,
        });
    }
    timings.push(timed("assemble", started));
    Ok(Rendered {
        probed: probed.clone(),
        thumbnail_key: split.thumbnail_key.clone(),
        timings,
    })
}

/// The manifest published beside the outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub source: SourceRef,
    pub source_id: String,
    pub route: Route,
    pub source_facts: SourceFacts,
    pub trim: TrimSummary,
    pub outputs: Vec<OutputRecord>,
    pub thumbnail_key: String,
    pub timings: Vec<Timing>,
    pub cost: CostFigures,
    pub created_at: chrono::DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrimSummary {
    pub intro_seconds: f64,
    pub outro_seconds: f64,
    pub output_seconds: f64,
    pub frames: u64,
    pub frame_rate: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostFigures {
    /// Sum of every Lambda step's seconds (segments counted each: they run in parallel, and
    /// are paid for each).
    pub compute_seconds: f64,
    pub memory_mb: Option<u32>,
    pub usd_per_gb_second: f64,
    /// Seconds the Fargate worker spent transcoding (zero on the other routes).
    #[serde(default)]
    pub worker_seconds: f64,
    #[serde(default)]
    pub worker_size: Option<FargateSize>,
    /// `None` where a size that was used is unknown (on one machine, no memory is billed).
    pub estimated_usd: Option<f64>,
    pub estimated_usd_per_output_minute: Option<f64>,
}

impl CostFigures {
    fn of(
        timings: &[Timing],
        memory_mb: Option<u32>,
        worker_size: Option<FargateSize>,
        output_seconds: f64,
    ) -> CostFigures {
        let (worker, lambda): (Vec<&Timing>, Vec<&Timing>) = timings
            .iter()
            .partition(|t| t.step == WORKER_TRANSCODE_STEP);
        let compute_seconds: f64 = lambda.iter().map(|t| t.seconds).sum();
        let worker_seconds: f64 = worker.iter().map(|t| t.seconds).sum();
        let lambda_usd = memory_mb
            .map(|mb| compute_seconds * mb as f64 / 1024.0 * LAMBDA_ARM64_USD_PER_GB_SECOND);
        let worker_usd = if worker_seconds > 0.0 {
            worker_size.map(|s| worker_seconds * s.usd_per_second())
        } else {
            Some(0.0)
        };
        let estimated = lambda_usd.zip(worker_usd).map(|(l, w)| l + w);
        let output_minutes = (output_seconds / 60.0).max(1.0 / 60.0);
        CostFigures {
            compute_seconds,
            memory_mb,
            usd_per_gb_second: LAMBDA_ARM64_USD_PER_GB_SECOND,
            worker_seconds,
            worker_size: worker_size.filter(|_| worker_seconds > 0.0),
            estimated_usd: estimated,
            estimated_usd_per_output_minute: estimated.map(|usd| usd / output_minutes),
        }
    }
}

/// Step 3: measures every output, writes the manifest, completes the record and notifies the
/// webhook. Returns the event the state machine sends to SNS and EventBridge.
pub async fn publish(deps: &ProcessDeps, rendered: &Rendered) -> Result<ProcessEvent, StepError> {
    let started = Instant::now();
    let probed = &rendered.probed;
    let mut outputs = Vec::new();
    // Renditions that share an encode (reels, tiktok) are the same bytes: probed once.
    let mut probes: Vec<(_, ProbeInfo)> = Vec::new();
    for r in &deps.renditions.renditions {
        let key = probed.path.rendition_key(&r.name);
        let size = deps
            .blobs
            .head(&key)
            .await?
            .ok_or_else(|| StepError::Internal(format!("{key} was not written")))?
            .size_bytes;
        let info = match probes.iter().find(|(k, _)| *k == r.encoding_key()) {
            Some((_, info)) => info.clone(),
            None => {
                let url = media_input(deps.blobs.as_ref(), &key).await?;
                let info = media::probe_input(&deps.tools, &url).await?;
                probes.push((r.encoding_key(), info.clone()));
                info
            }
        };
        let v = info
            .video()
            .ok_or_else(|| StepError::Internal(format!("{key} has no video stream")))?;
        outputs.push(OutputRecord {
            rendition: r.name.clone(),
            key,
            width: v.width.unwrap_or(0),
            height: v.height.unwrap_or(0),
            video_codec: v.codec.clone(),
            pix_fmt: v.pix_fmt.clone().unwrap_or_default(),
            duration_seconds: info.duration_seconds.unwrap_or(0.0),
            frames: v.frames,
            video_bitrate: v.bit_rate,
            audio_codec: info.audio().map(|a| a.codec.clone()),
            size_bytes: size,
        });
    }
    let mut timings = rendered.timings.clone();
    timings.push(timed("publish", started));
    let cost = CostFigures::of(
        &timings,
        deps.memory_mb,
        deps.worker_size,
        probed.window.duration_seconds(),
    );
    let manifest = Manifest {
        source: probed.source.clone(),
        source_id: probed.source_id.clone(),
        route: probed.route,
        source_facts: probed.facts.clone(),
        trim: TrimSummary {
            intro_seconds: deps.settings.intro_seconds,
            outro_seconds: deps.settings.outro_seconds,
            output_seconds: probed.window.duration_seconds(),
            frames: probed.window.frames,
            frame_rate: probed.window.rate.to_string(),
        },
        outputs: outputs.clone(),
        thumbnail_key: rendered.thumbnail_key.clone(),
        timings,
        cost,
        created_at: Utc::now(),
    };
    let manifest_key = probed.path.manifest_key();
    deps.blobs
        .put_bytes(
            &manifest_key,
            serde_json::to_vec_pretty(&manifest)?,
            "application/json",
        )
        .await?;
    let mut job = record_for(deps, &probed.source).await?;
    job.status = ProcessStatus::Succeeded;
    job.route = Some(probed.route);
    job.facts = Some(probed.facts.clone());
    job.outputs = outputs;
    job.thumbnail_key = Some(rendered.thumbnail_key.clone());
    job.manifest_key = Some(manifest_key);
    job.error = None;
    deps.records.put_process(&job).await?;
    let event = ProcessEvent::of(&job);
    notify(deps, &event).await;
    Ok(event)
}

/// Delivers to the configured notifier, retrying passing failures. A notification that still
/// fails is logged, not raised: the outputs and the record are already right, and failing the
/// job over a chat message would be worse.
async fn notify(deps: &ProcessDeps, event: &ProcessEvent) {
    let result = RetryPolicy::STEP
        .retry(
            |attempt, e| tracing::warn!(attempt, error = %e, "notification failed; retrying"),
            || async { deps.notifier.notify(event).await.map_err(StepError::Notify) },
        )
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, source_id = %event.source_id, "notification not delivered");
    }
}

/// The Catch target: records why the source failed and notifies. Returns the event the state
/// machine sends on. `cause` may be Step Functions' JSON text (`{"errorType","errorMessage"}`);
/// the message is taken out of it.
pub async fn record_failure(
    deps: &ProcessDeps,
    input: &ProcessFailureInput,
) -> Result<ProcessEvent, StepError> {
    let failure = match worker_failure(deps, input).await? {
        Some(failure) => failure,
        None => ProcessFailure {
            error: input.error_type.clone(),
            reason: reason_from_cause(&input.cause),
        },
    };
    let mut job = record_for(deps, &input.source).await?;
    job.status = ProcessStatus::Failed;
    job.error = Some(failure);
    deps.records.put_process(&job).await?;
    let event = ProcessEvent::of(&job);
    notify(deps, &event).await;
    Ok(event)
}

/// The error the Fargate worker left, when the failure is its task's (`States.TaskFailed`).
async fn worker_failure(
    deps: &ProcessDeps,
    input: &ProcessFailureInput,
) -> Result<Option<ProcessFailure>, StepError> {
    if input.error_type != "States.TaskFailed" {
        return Ok(None);
    }
    let key = domain::temp_key(&input.source.id(), WORKER_FAILURE);
    match deps.blobs.get_bytes(&key).await {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(BlobError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The readable part of Step Functions' Cause: a Lambda error's `errorMessage`; for an ECS task
/// that stopped without saying why (killed, out of memory, no capacity), its stop reason and
/// the container's exit code and reason; otherwise the text as it is.
fn reason_from_cause(cause: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(cause) else {
        return cause.to_owned();
    };
    if let Some(m) = v.get("errorMessage").and_then(|m| m.as_str()) {
        return m.to_owned();
    }
    if let Some(stopped) = v.get("StoppedReason").and_then(|m| m.as_str()) {
        let mut reason = format!("the worker task stopped: {stopped}");
        for c in v
            .get("Containers")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
        {
            if let Some(code) = c.get("ExitCode").and_then(|x| x.as_i64()) {
                reason.push_str(&format!("; exit code {code}"));
            }
            if let Some(why) = c.get("Reason").and_then(|x| x.as_str()) {
                reason.push_str(&format!(" ({why})"));
            }
        }
        return reason;
    }
    cause.to_owned()
}

/// What the embedded runner reports as it goes (the CLI draws its bars from these).
#[derive(Debug, Clone, PartialEq)]
pub enum ProcessProgress {
    Stage(&'static str),
    Fraction(f64),
    SegmentsPlanned(usize),
    SegmentDone(u32),
}

/// Walks the processing state machine in process, in the ASL's order and with its retries.
/// Returns the final record (failed or succeeded); `Err` only if even recording failed.
pub async fn run_embedded(
    deps: &ProcessDeps,
    input: &ProcessInput,
    max_concurrency: usize,
    progress: Arc<dyn Fn(ProcessProgress) + Send + Sync>,
) -> Result<ProcessJob, StepError> {
    let outcome = run_steps(deps, input, max_concurrency, progress.clone()).await;
    if let Err(e) = outcome {
        progress(ProcessProgress::Stage("record_failure"));
        let failure = ProcessFailureInput {
            source: input.source.clone(),
            error_type: e.error_type().to_owned(),
            cause: e.to_string(),
        };
        RetryPolicy::STEP
            .retry(|_, _| {}, || record_failure(deps, &failure))
            .await?;
    }
    deps.records
        .get_process(&input.source.id())
        .await?
        .ok_or_else(|| StepError::Internal("the processing record vanished".into()))
}

async fn run_steps(
    deps: &ProcessDeps,
    input: &ProcessInput,
    max_concurrency: usize,
    progress: Arc<dyn Fn(ProcessProgress) + Send + Sync>,
) -> Result<ProcessEvent, StepError> {
    let step = RetryPolicy::STEP;
    let quiet = |_: u32, e: &StepError| tracing::warn!(error = %e, "step failed; retrying");
    progress(ProcessProgress::Stage("probe"));
    let probed = step.retry(quiet, || probe(deps, input)).await?;
    let rendered = match probed.route {
        // One machine has no Fargate: the worker route runs the same single pass here.
        Route::SinglePass | Route::Worker => {
            progress(ProcessProgress::Stage("transcode"));
            let p = progress.clone();
            let report = move |f: f64| p(ProcessProgress::Fraction(f));
            step.retry(quiet, || transcode(deps, &probed, &report))
                .await?
        }
        Route::Segments => {
            progress(ProcessProgress::Stage("split"));
            let split = step.retry(quiet, || split(deps, &probed)).await?;
            progress(ProcessProgress::SegmentsPlanned(split.segments.len()));
            progress(ProcessProgress::Stage("segments"));
            // The ASL's Parallel: the audio beside the segment Map. Either failing ends both.
            let (rendered, audio) = tokio::try_join!(
                render_segments(deps, &split, max_concurrency, progress.clone()),
                step.retry(quiet, || encode_audio(deps, &split)),
            )?;
            let input = AssembleInput {
                split,
                rendered,
                audio,
            };
            progress(ProcessProgress::Stage("assemble"));
            step.retry(quiet, || assemble(deps, &input)).await?
        }
    };
    progress(ProcessProgress::Stage("publish"));
    step.retry(quiet, || publish(deps, &rendered)).await
}

/// The ASL's Map: every segment, at most `max_concurrency` at once, each with the step retries.
async fn render_segments(
    deps: &ProcessDeps,
    split: &Split,
    max_concurrency: usize,
    progress: Arc<dyn Fn(ProcessProgress) + Send + Sync>,
) -> Result<Vec<SegmentDone>, StepError> {
    let gate = Arc::new(Semaphore::new(max_concurrency.max(1)));
    let mut set = JoinSet::new();
    for seg in &split.segments {
        let (deps, gate, progress) = (deps.clone(), gate.clone(), progress.clone());
        let input = SegmentInput {
            probed: split.probed.clone(),
            segment: seg.clone(),
        };
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let done = RetryPolicy::STEP
                .retry(|_, _| {}, || render_segment(&deps, &input))
                .await?;
            progress(ProcessProgress::SegmentDone(done.index));
            Ok::<_, StepError>(done)
        });
    }
    let mut rendered = Vec::new();
    while let Some(joined) = set.join_next().await {
        // The first failure ends the Map, as Step Functions does; the rest are dropped.
        rendered.push(joined.map_err(|e| StepError::Internal(e.to_string()))??);
    }
    rendered.sort_by_key(|r: &SegmentDone| r.index);
    Ok(rendered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(step: &str, seconds: f64) -> Timing {
        Timing {
            step: step.into(),
            seconds,
        }
    }

    #[test]
    fn cost_bills_lambda_seconds_by_memory_and_worker_seconds_by_task_size() {
        let lambda = [t("probe", 1.0), t("transcode", 9.0), t("publish", 2.0)];
        let c = CostFigures::of(&lambda, Some(2048), None, 120.0);
        assert_eq!(c.compute_seconds, 12.0);
        let usd = 12.0 * 2.0 * LAMBDA_ARM64_USD_PER_GB_SECOND;
        assert!((c.estimated_usd.unwrap() - usd).abs() < 1e-12);
        assert!((c.estimated_usd_per_output_minute.unwrap() - usd / 2.0).abs() < 1e-12);
        assert_eq!((c.worker_seconds, c.worker_size), (0.0, None));

        let size = FargateSize {
            cpu_units: 4096,
            memory_mb: 8192,
        };
        let worker = [
            t("probe", 1.0),
            t(WORKER_TRANSCODE_STEP, 3600.0),
            t("publish", 2.0),
        ];
        let c = CostFigures::of(&worker, Some(1024), Some(size), 600.0);
        assert_eq!((c.compute_seconds, c.worker_seconds), (3.0, 3600.0));
        // One hour of 4 vCPU and 8 GB, plus 3 Lambda seconds at 1 GB.
        let usd = 4.0 * FARGATE_ARM64_USD_PER_VCPU_HOUR
            + 8.0 * FARGATE_ARM64_USD_PER_GB_HOUR
            + 3.0 * LAMBDA_ARM64_USD_PER_GB_SECOND;
        assert!((c.estimated_usd.unwrap() - usd).abs() < 1e-9);
        // Worker seconds of an unknown size make the estimate unknown, not low.
        assert_eq!(
            CostFigures::of(&worker, Some(1024), None, 600.0).estimated_usd,
            None
        );
        assert_eq!(
            CostFigures::of(&lambda, None, Some(size), 600.0).estimated_usd,
            None
        );
    }

    #[test]
    fn causes_become_readable_reasons() {
        assert_eq!(
            reason_from_cause(
                r#"{"errorType":"VidPipe.SourceRejected","errorMessage":"no video"}"#
            ),
            "no video"
        );
        let ecs = r#"{"StoppedReason":"Essential container in task exited","Containers":[{"Name":"worker","ExitCode":137,"Reason":"OutOfMemoryError: Container killed due to memory usage"}]}"#;
        assert_eq!(
            reason_from_cause(ecs),
            "the worker task stopped: Essential container in task exited; exit code 137 \
             (OutOfMemoryError: Container killed due to memory usage)"
        );
        assert_eq!(reason_from_cause("plain words"), "plain words");
    }

    #[test]
    fn file_urls_decode_back_to_paths() {
        assert_eq!(
            percent_decode("/a/My%20Clip%20%C3%BC.MOV"),
            "/a/My Clip ü.MOV"
        );
        assert_eq!(percent_decode("/a/100%"), "/a/100%");
        assert_eq!(percent_decode("/a/%zz"), "/a/%zz");
    }
}

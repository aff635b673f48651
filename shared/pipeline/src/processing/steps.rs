//! The upload-processing steps every runner calls (the embedded runner, the processing Lambda
//! under `statemachine/processing.asl.json`, the Fargate worker): probe, transcode in one pass,
//! or split / render segments / encode audio / assemble, then publish; any failure is recorded
//! and notified. Steps read and write through the ports and hand each other keys, never media.

use super::manifest::{CostFigures, FargateSize, Manifest, TrimSummary};
use super::types::{
    AssembleInput, Probed, ProcessFailureInput, ProcessInput, Rendered, SegmentDone, SegmentInput,
    SegmentTask, Split, Timing,
};
use super::worker;
use crate::error::StepError;
use crate::failure::{WorkerFailure, public_reason, recorded_reason};
use crate::policy::RetryPolicy;
use crate::scratch::Scratch;
use chrono::Utc;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vidpipe_domain::media::{
    EncodeTarget, MediaSource, ProbeInfo, RenderJob, Span, ThumbnailTarget, Watermark,
};
use vidpipe_domain::ports::{
    BlobError, BlobStore, MediaError, Notifier, ProcessStore, RenditionEngine, StoreError,
    UploadStore,
};
use vidpipe_domain::processing::{
    self as domain, Fit, OutputRecord, ProcessEvent, ProcessFailure, ProcessJob, ProcessSettings,
    ProcessStage, Rejection, RenditionSet, SourcePath, SourceRef, TrimWindow,
};
use vidpipe_domain::steps::ProcessingStep;
use vidpipe_domain::upload::{UploadId, UploadStatus};

/// How long a presigned source URL stays valid: longer than any single step.
const SOURCE_URL_TTL: Duration = Duration::from_secs(3600);

/// Everything a processing step needs, built once per cold start (or once per CLI run).
#[derive(Clone)]
pub struct ProcessDeps {
    pub records: Arc<dyn ProcessStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub notifier: Arc<dyn Notifier>,
    pub media: Arc<dyn RenditionEngine>,
    pub settings: ProcessSettings,
    pub renditions: RenditionSet,
    /// Announced raw uploads: a source whose stored size is not the announced one is
    /// rejected. `None` where nothing announces uploads (the CLI stores files itself).
    pub uploads: Option<Arc<dyn UploadStore>>,
    /// Blob key of the watermark image (PNG or JPEG).
    pub watermark_key: String,
    /// Long sources go to the Fargate worker instead of segments.
    pub worker_configured: bool,
    /// The worker task's size, for the cost of its seconds; `None` when unknown.
    pub worker_size: Option<FargateSize>,
    /// The function's memory, for cost figures; `None` on one machine.
    pub memory_mb: Option<u32>,
    pub scratch_dir: PathBuf,
    /// Signed webhooks to the upload's `webhook_url` or the default target; `None` for none.
    pub webhooks: Option<Arc<crate::webhooks::Webhooks>>,
}

impl ProcessDeps {
    /// This step's scratch folder for this source, emptied first and removed when dropped.
    async fn scratch(&self, source_id: &str, name: &str) -> Result<Scratch, StepError> {
        let path = self.scratch_dir.join("process").join(source_id).join(name);
        Ok(Scratch::new(path).await?)
    }

    async fn source(&self, key: &str) -> Result<MediaSource, StepError> {
        Ok(self.blobs.media_source(key, SOURCE_URL_TTL).await?)
    }
}

/// Read-modify-write of a source's record under the store's version check, re-reading on a
/// conflict. `change` sees the record as stored (or a new one) and returns `Ok(None)` when there
/// is nothing to write.
async fn update_record<F>(
    deps: &ProcessDeps,
    source: &SourceRef,
    mut change: F,
) -> Result<ProcessJob, StepError>
where
    F: FnMut(&ProcessJob) -> Result<Option<ProcessJob>, StepError>,
{
    const ATTEMPTS: u32 = 8;
    for attempt in 1..=ATTEMPTS {
        let current = match deps.records.get_process(&source.id()).await? {
            Some(job) => job,
            None => ProcessJob::new(source, Utc::now()),
        };
        let Some(next) = change(&current)? else {
            return Ok(current);
        };
        match deps.records.save_process(&next).await {
            Ok(saved) => return Ok(saved),
            Err(StoreError::Conflict(_)) if attempt < ATTEMPTS => continue,
            Err(e) => return Err(e.into()),
        }
    }
    unreachable!("the last attempt returns")
}

/// Records that the run entered `stage` (or got `fraction` of the way through it) for live
/// progress. Best effort: the outputs do not depend on it, so a failed write is logged and the
/// step goes on. Only a running, stored record moves, so this never touches an outcome (the
/// Fargate worker calls it too, and still never records how the run ended).
async fn mark_stage(deps: &ProcessDeps, source: &SourceRef, stage: ProcessStage, fraction: f64) {
    let result = update_record(deps, source, |j| {
        if j.version == 0 {
            return Ok(None);
        }
        Ok(j.advanced(stage, fraction, PROGRESS_STEP, Utc::now()))
    })
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, source_id = %source.id(), %stage, "live progress not recorded");
    }
}

/// The smallest move of a stage's fraction worth a record write (and a pushed event).
const PROGRESS_STEP: f64 = 0.1;

/// Step 1: reads the upload where it lies (no download), checks it, picks the route and starts
/// the record's run. Rejections are `VidPipe.SourceRejected`: permanent, recorded by the Catch.
pub async fn probe(deps: &ProcessDeps, input: &ProcessInput) -> Result<Probed, StepError> {
    let started = Instant::now();
    let source = &input.source;
    let path = SourcePath::parse(&source.key).map_err(Rejection::from)?;
    let head = deps.blobs.head(&source.key).await?.ok_or(Rejection::Gone)?;
    if head.size_bytes == 0 {
        return Err(Rejection::Empty.into());
    }
    // The upload URL was signed for the announced length; this holds whatever the store did.
    if let Some(uploads) = &deps.uploads
        && let Some(announced) = uploads.get_upload(&UploadId::for_key(&source.key)).await?
        && announced.status != UploadStatus::Aborted
        && announced.size_bytes != head.size_bytes
    {
        return Err(Rejection::SizeMismatch {
            announced: announced.size_bytes,
            stored: head.size_bytes,
        }
        .into());
    }
    let media = deps.source(&source.key).await?;
    let info: ProbeInfo = match deps.media.probe_source(&media).await {
        Ok(info) => info,
        Err(MediaError::InvalidInput(why)) => return Err(Rejection::NotMedia(why).into()),
        Err(e) => return Err(e.into()),
    };
    let facts = domain::SourceFacts::check(&info, head.size_bytes, &deps.settings)?;
    let window = TrimWindow::new(&facts, &deps.settings);
    let route = domain::route(
        window.duration_seconds(),
        &deps.settings,
        deps.worker_configured,
    );
    let job = update_record(deps, source, |j| {
        let mut next = j.start_run(Utc::now())?;
        next.path = Some(path.clone());
        next.route = Some(route);
        next.facts = Some(facts.clone());
        Ok(Some(next))
    })
    .await?;
    Ok(Probed {
        source: source.clone(),
        source_id: job.id,
        path,
        has_audio: facts.audio_codec.is_some(),
        facts,
        window,
        route,
        timings: vec![Timing::since(ProcessingStep::Probe, started)],
    })
}

/// The encodes of this configuration, each with its box for this source.
fn targets(deps: &ProcessDeps, probed: &Probed, dir: &Scratch) -> Vec<EncodeTarget> {
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

/// The configured watermark, decoded. Missing or undecodable, it is the operator's to fix.
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
    deps.media
        .decode_watermark(&bytes, deps.settings.watermark.clone())
        .map_err(|e| {
            StepError::Configuration(format!("the watermark {:?}: {e}", deps.watermark_key))
        })
}

fn thumbnail_target(deps: &ProcessDeps, probed: &Probed, dir: &Scratch) -> ThumbnailTarget {
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
    transcode_as(deps, probed, ProcessingStep::Transcode, progress).await
}

/// The single pass, timed under `step` (the worker's seconds are billed at Fargate's rate).
pub(super) async fn transcode_as(
    deps: &ProcessDeps,
    probed: &Probed,
    step: ProcessingStep,
    progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<Rendered, StepError> {
    let started = Instant::now();
    // The single pass trims, watermarks and encodes in one decode: the run enters all three.
    mark_stage(deps, &probed.source, ProcessStage::Renditions, 0.0).await;
    let dir = deps.scratch(&probed.source_id, "single").await?;
    let mark = watermark(deps).await?;
    let source = deps.source(&probed.source.key).await?;
    let targets = targets(deps, probed, &dir);
    let thumb = thumbnail_target(deps, probed, &dir);
    let job = RenderJob {
        source: &source,
        source_size: (probed.facts.width, probed.facts.height),
        span: Span::whole(&probed.window),
        targets: &targets,
        thumbnail: Some(&thumb),
        watermark: &mark,
        audio: Some(probed.has_audio),
        work_dir: dir.path(),
    };
    // ffmpeg reports progress synchronously; a watch channel hands the latest figure to a task
    // that records it, so the render never waits on the store (as generation's compose does).
    let (tx, mut rx) = tokio::sync::watch::channel(0.0f64);
    let report = move |f: f64| {
        progress(f);
        let _ = tx.send(f);
    };
    let render = deps.media.render(&job, Some(&report));
    let persist = async {
        let mut saved = 0.0f64;
        while rx.changed().await.is_ok() {
            let f = *rx.borrow_and_update();
            if f - saved >= PROGRESS_STEP {
                saved = f;
                mark_stage(deps, &probed.source, ProcessStage::Renditions, f).await;
            }
        }
    };
    tokio::pin!(render);
    tokio::pin!(persist);
    tokio::select! {
        r = &mut render => r?,
        () = &mut persist => render.await?,
    }
    let files: Vec<PathBuf> = targets.iter().map(|t| t.output.clone()).collect();
    publish_encodings(deps, probed, &files).await?;
    let thumbnail_key = probed.path.thumbnail_key();
    deps.blobs
        .put_file(&thumbnail_key, &thumb.output, "image/jpeg")
        .await?;
    mark_stage(deps, &probed.source, ProcessStage::Thumbnail, 1.0).await;
    let mut timings = probed.timings.clone();
    timings.push(Timing::since(step, started));
    Ok(Rendered {
        probed: probed.clone(),
        thumbnail_key,
        timings,
    })
}

/// Step 2a (long sources): cuts the output timeline into segments and takes the thumbnail. Each
/// segment is rendered straight from the source through its own frame-accurate seek, so nothing
/// is copied into `temp/` first: a stream-copy split moved every source byte twice through one
/// function, which the benchmark showed to dominate the wall time, and its MP4 pieces lost the
/// reordered tail frames of B-frame sources.
pub async fn split(deps: &ProcessDeps, probed: &Probed) -> Result<Split, StepError> {
    let started = Instant::now();
    mark_stage(deps, &probed.source, ProcessStage::Renditions, 0.0).await;
    let dir = deps.scratch(&probed.source_id, "split").await?;
    let source = deps.source(&probed.source.key).await?;
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
    deps.media
        .thumbnail(
            &source,
            probed.window.start_seconds + thumb.frame as f64 / probed.window.rate.as_f64(),
            (thumb.width, thumb.height),
            &thumb.output,
        )
        .await?;
    let thumbnail_key = probed.path.thumbnail_key();
    deps.blobs
        .put_file(&thumbnail_key, &thumb.output, "image/jpeg")
        .await?;
    let mut timings = probed.timings.clone();
    timings.push(Timing::since(ProcessingStep::Split, started));
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
    let dir = deps.scratch(&probed.source_id, "audio").await?;
    let source = deps.source(&probed.source.key).await?;
    let audio = dir.join("audio.m4a");
    let audio_kbps = deps
        .renditions
        .renditions
        .iter()
        .map(|r| r.audio_kbps)
        .max()
        .unwrap_or(128);
    deps.media
        .encode_audio(
            &source,
            Span::whole(&probed.window),
            probed.has_audio,
            audio_kbps,
            &audio,
        )
        .await?;
    deps.blobs
        .put_file(&split.audio_key, &audio, "audio/mp4")
        .await?;
    Ok(Timing::since(ProcessingStep::EncodeAudio, started))
}

/// Step 2b (one Map iteration): renders one segment's video to every encoding.
pub async fn render_segment(
    deps: &ProcessDeps,
    input: &SegmentInput,
) -> Result<SegmentDone, StepError> {
    let started = Instant::now();
    let probed = &input.probed;
    let seg = &input.segment;
    let dir = deps
        .scratch(&probed.source_id, &format!("segment_{:04}", seg.index))
        .await?;
    let mark = watermark(deps).await?;
    let source = deps.source(&seg.key).await?;
    let targets = targets(deps, probed, &dir);
    let job = RenderJob {
        source: &source,
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
        work_dir: dir.path(),
    };
    deps.media.render(&job, None).await?;
    let mut parts = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let key = domain::temp_key(
            &probed.source_id,
            &format!("parts/{:04}_{i}.mp4", seg.index),
        );
        deps.blobs.put_file(&key, &t.output, "video/mp4").await?;
        parts.push(key);
    }
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
    let dir = deps.scratch(&probed.source_id, "assemble").await?;
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
        deps.media
            .concat(&parts, &audio, probed.window.duration_seconds(), &out)
            .await?;
        files.push(out);
    }
    publish_encodings(deps, probed, &files).await?;
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
            step: ProcessingStep::RenderSegment,
            segment: Some(r.index),
            seconds: r.seconds,
        });
    }
    timings.push(Timing::since(ProcessingStep::Assemble, started));
    // The thumbnail was stored by the split; the run is past it once every rendition is.
    mark_stage(deps, &probed.source, ProcessStage::Thumbnail, 1.0).await;
    Ok(Rendered {
        probed: probed.clone(),
        thumbnail_key: split.thumbnail_key.clone(),
        timings,
    })
}

/// Step 3: measures every output, writes the manifest, completes the record and notifies the
/// webhook. Returns the event the state machine sends to SNS and EventBridge.
pub async fn publish(deps: &ProcessDeps, rendered: &Rendered) -> Result<ProcessEvent, StepError> {
    let started = Instant::now();
    let probed = &rendered.probed;
    mark_stage(deps, &probed.source, ProcessStage::Publish, 0.0).await;
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
                let source = deps.source(&key).await?;
                let info = deps.media.probe_source(&source).await?;
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
    timings.push(Timing::since(ProcessingStep::Publish, started));
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
    let job = update_record(deps, &probed.source, |j| {
        // A retry after a lost response finds its own success: nothing to write again.
        if j.status == domain::ProcessStatus::Succeeded
            && j.manifest_key.as_deref() == Some(manifest_key.as_str())
        {
            return Ok(None);
        }
        let mut next = j.succeed(
            outputs.clone(),
            rendered.thumbnail_key.clone(),
            manifest_key.clone(),
            Utc::now(),
        )?;
        next.route = Some(probed.route);
        next.facts = Some(probed.facts.clone());
        Ok(Some(next))
    })
    .await?;
    let event = ProcessEvent::of(&job);
    notify(deps, &event).await;
    tell_webhook(deps, &job, Some(&manifest)).await;
    Ok(event)
}

/// Tells the upload's webhook target how the run ended; bounded, never failing the step, and
/// sent once per run and outcome (a repeated step finds its delivery in the log).
async fn tell_webhook(deps: &ProcessDeps, job: &ProcessJob, manifest: Option<&Manifest>) {
    if let Some(webhooks) = &deps.webhooks {
        webhooks
            .tell_processing(deps.blobs.as_ref(), deps.uploads.as_deref(), job, manifest)
            .await;
    }
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
/// the message is taken out of it and made safe to publish.
///
/// A run that already succeeded stays succeeded: a Publish whose response was lost and then
/// timed out has published, and its late failure is not the source's. The success is returned
/// again, so the state machine's failure notification then carries the truth.
pub async fn record_failure(
    deps: &ProcessDeps,
    input: &ProcessFailureInput,
) -> Result<ProcessEvent, StepError> {
    let failure = match worker::failure_left(deps, input).await? {
        Some(WorkerFailure { error, reason }) => ProcessFailure {
            error,
            reason: public_reason(&reason),
        },
        None => ProcessFailure {
            error: input.error_type.clone(),
            reason: recorded_reason(&input.cause),
        },
    };
    let mut wrote = false;
    let job = update_record(deps, &input.source, |j| {
        wrote = false;
        match j.status {
            domain::ProcessStatus::Succeeded => {
                tracing::warn!(
                    source_id = %j.id,
                    error = %failure.error,
                    "a failure arrived after the run succeeded; the success stands"
                );
                Ok(None)
            }
            // A retried RecordFailure whose first response was lost: recorded and notified once.
            domain::ProcessStatus::Failed => Ok(None),
            domain::ProcessStatus::Running => {
                wrote = true;
                Ok(Some(j.fail(failure.clone(), Utc::now())?))
            }
        }
    })
    .await?;
    let event = ProcessEvent::of(&job);
    if wrote {
        notify(deps, &event).await;
    }
    if job.status == domain::ProcessStatus::Failed {
        tell_webhook(deps, &job, None).await;
    }
    Ok(event)
}

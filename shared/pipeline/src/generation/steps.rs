//! The step functions: one async function per state-machine task, `(deps, typed input) -> typed
//! output`. The embedded runner, the Lambda entrypoints and the Fargate worker all call these same
//! functions. Every step is safe to run twice (Step Functions retries, duplicate deliveries): it
//! reads the job first and returns the earlier result when the work is already done.

use super::clips::{ClipLimits, ProviderChain};
use super::manifest::{cost, metadata};
use super::types::{
    ClipTask, ComposeOutput, FailureInput, FinalizeOutput, JobRef, OutputProbe, PlanOutput,
};
use super::worker;
use crate::error::StepError;
use crate::failure::{public_reason, recorded_reason};
use crate::scratch::Scratch;
use chrono::Utc;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use vidpipe_domain::composition::{Composition, CompositionId, CompositionStatus};
use vidpipe_domain::job::{ClipRecord, ComposeRoute, Job, JobId, JobStatus, Outputs};
use vidpipe_domain::media::{CompositionJob, MeasuredAudio, ToolVersions};
use vidpipe_domain::plan::PlanError;
use vidpipe_domain::plan::RulesPlanner;
use vidpipe_domain::ports::{
    BlobStore, JobStore, LeaseStore, MediaEngine, MediaError, Planner, QuotaStore, StoreError,
};
use vidpipe_domain::timeline::Timeline;
use vidpipe_domain::{AssetId, AssetKind, keys};

/// What every step needs, built once per process (per cold start in Lambda).
#[derive(Clone)]
pub struct StepDeps {
    pub jobs: Arc<dyn JobStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub planner: Arc<dyn Planner>,
    /// The clip providers in fallback order.
    pub providers: ProviderChain,
    /// The narrators offered; `None` where narration is not available, and narrated requests
    /// fail with a configuration error.
    pub narrators: Option<super::narration::Narrators>,
    /// Bounds calls per provider across jobs; `None` leaves them unbounded (tests, one job).
    pub leases: Option<Arc<dyn LeaseStore>>,
    /// Tenants' quota counters: a job's claim is released when it ends. `None` where nothing
    /// counts quotas (tests); the limits themselves are the service's, which admits jobs.
    pub quotas: Option<Arc<dyn QuotaStore>>,
    pub clip_limits: ClipLimits,
    pub media: Arc<dyn MediaEngine>,
    /// Local scratch space (`/tmp` in Lambda); each job works in its own folder below it.
    pub scratch_dir: PathBuf,
    /// Jobs with more frames compose on the Fargate worker; `None` where there is no worker
    /// (one machine, or a stack without one).
    pub worker_threshold_frames: Option<u32>,
    /// The function's memory where steps run in Lambda, for the compute cost; `None` on one
    /// machine, where compute costs nothing extra.
    pub memory_mb: Option<u32>,
    /// Signed webhooks: secrets, the delivery log and the default target. `None` where no
    /// job is ever reported (tests of other parts).
    pub webhooks: Option<Arc<crate::webhooks::Webhooks>>,
}

pub(crate) async fn load(deps: &StepDeps, id: &JobId) -> Result<Job, StepError> {
    deps.jobs
        .get(id)
        .await?
        .ok_or_else(|| StepError::JobNotFound(id.to_string()))
}

/// Read-modify-write with the store's version check, re-reading on conflict. `change` returns
/// `Ok(None)` when there is nothing to write. A cancelled job stops every writer but the canceller.
pub(crate) async fn update_job<F>(
    deps: &StepDeps,
    id: &JobId,
    mut change: F,
) -> Result<Job, StepError>
where
    F: FnMut(&Job) -> Result<Option<Job>, StepError>,
{
    const ATTEMPTS: u32 = 8;
    for attempt in 1..=ATTEMPTS {
        let current = load(deps, id).await?;
        let Some(next) = change(&current)? else {
            return Ok(current);
        };
        match deps.jobs.save(&next).await {
            Ok(saved) => return Ok(saved),
            Err(StoreError::Conflict(_)) if attempt < ATTEMPTS => continue,
            Err(e) => return Err(e.into()),
        }
    }
    unreachable!("the last attempt returns")
}

/// Gives back an ended job's quota claim: its concurrency slot, and for a failed job (which
/// delivered nothing) its output seconds. Safe to repeat (the store frees and refunds once), and
/// never fails the caller: the job has ended either way, and a claim left behind is freed by the
/// service's reconciliation the next time its tenant reaches the limit.
pub(crate) async fn release_quota(deps: &StepDeps, job: &Job) {
    let Some(quotas) = &deps.quotas else { return };
    if !job.status.is_terminal() {
        return;
    }
    let refund = job.status == JobStatus::Failed;
    if let Err(e) = quotas.release(&job.owner, job.id.as_str(), refund).await {
        tracing::warn!(job = %job.id, tenant = %job.owner, error = %e, "could not release the job's quota claim");
    }
}

/// Gives back a recompose's or timeline render's claim once its composition ended: refunded when it failed, since it
/// delivered nothing. A claim that was never made (no limits, the CLI) is a no-op to release.
pub(crate) async fn release_composition_quota(deps: &StepDeps, composition: &Composition) {
    let Some(quotas) = &deps.quotas else { return };
    if !composition.status.is_terminal() {
        return;
    }
    let claim = match &composition.job_id {
        Some(job) => vidpipe_domain::quota::composition_claim(job, &composition.id),
        // A timeline render, of no job, claims under its own id.
        None => composition.id.to_string(),
    };
    let refund = composition.status == CompositionStatus::Failed;
    if let Err(e) = quotas.release(&composition.owner, &claim, refund).await {
        tracing::warn!(composition = %composition.id, tenant = %composition.owner, error = %e, "could not release the recompose's quota claim");
    }
}

pub(crate) fn ensure_live(job: &Job) -> Result<(), StepError> {
    match job.status {
        JobStatus::Cancelled => Err(StepError::Cancelled(job.id.to_string())),
        JobStatus::Failed => Err(StepError::WrongState(format!(
            "job {} already failed",
            job.id
        ))),
        _ => Ok(()),
    }
}

fn plan_output(deps: &StepDeps, job: &Job) -> Option<PlanOutput> {
    let plan = job.plan.as_ref()?;
    Some(PlanOutput {
        job_id: job.id.clone(),
        total_frames: plan.total_frames,
        route: ComposeRoute::for_frames(plan.total_frames, deps.worker_threshold_frames),
        scenes: plan
            .scenes
            .iter()
            .map(|s| ClipTask {
                job_id: job.id.clone(),
                scene_index: s.index,
                composition_id: None,
            })
            .collect(),
    })
}

/// Plans the scenes and moves the job to `generating`.
pub async fn plan(deps: &StepDeps, input: &JobRef) -> Result<PlanOutput, StepError> {
    let id = &input.job_id;
    let job = load(deps, id).await?;
    ensure_live(&job)?;
    match job.status {
        JobStatus::Queued => {
            update_job(deps, id, |j| match j.status {
                JobStatus::Queued => Ok(Some(j.transition(JobStatus::Planning, Utc::now())?)),
                _ => Ok(None),
            })
            .await?;
        }
        JobStatus::Planning => {}
        _ => {
            return plan_output(deps, &job).ok_or_else(|| {
                StepError::WrongState(format!("job {id} is {} without a plan", job.status))
            });
        }
    }

    check_brand_assets(deps, &job).await?;
    // A request may choose the rules beneath a configured LLM planner.
    let mut plan = match job.request.planner.as_deref() {
        Some(name) if name == RulesPlanner::NAME && deps.planner.name() != name => {
            RulesPlanner.plan(&job.request)?
        }
        _ => deps.planner.plan(&job.request).await?,
    };
    if let Some(spec) = &job.request.narration {
        let dir = Scratch::new(deps.scratch_dir.join(id.as_str()).join("narration")).await?;
        super::narration::narrate(deps, &job, spec, &mut plan, dir.path()).await?;
    }
    let expected = job.request.clip_count.get() as usize;
    if plan.scenes.len() != expected || plan.composed_frames() != job.request.total_frames() {
        return Err(PlanError::Invalid(format!(
            "{} scenes covering {} frames; wanted {expected} scenes covering {}",
            plan.scenes.len(),
            plan.composed_frames(),
            job.request.total_frames()
        ))
        .into());
    }
    deps.blobs
        .put_bytes(
            &keys::plan(id),
            serde_json::to_vec_pretty(&plan)?,
            "application/json",
        )
        .await?;
    let now = Utc::now();
    for scene in &plan.scenes {
        deps.jobs
            .put_clip(
                id,
                &ClipRecord::pending(
                    scene.index,
                    deps.providers
                        .led_by(job.request.provider.as_deref())
                        .first()
                        .name(),
                    scene.frames,
                    now,
                ),
            )
            .await?;
    }
    let job = update_job(deps, id, |j| {
        ensure_live(j)?;
        if j.status != JobStatus::Planning {
            return Ok(None);
        }
        let mut next = j.transition(JobStatus::Generating, Utc::now())?;
        next.plan = Some(plan.clone());
        Ok(Some(next))
    })
    .await?;
    plan_output(deps, &job)
        .ok_or_else(|| StepError::WrongState(format!("job {id} has no plan after planning")))
}

/// Judges every brand asset the job names by its stored file, before anything uses it: a client
/// uploads an announced asset itself, after the submit's checks, so the file can be anything.
/// It must be the announced size (the upload URL was signed for it) and probe as its kind
/// (a PNG or JPEG logo, music with audio), by the same rule the CLI's ingest applies. Failing,
/// the job fails with `VidPipe.AssetRejected` and a reason naming the asset.
async fn check_brand_assets(deps: &StepDeps, job: &Job) -> Result<(), StepError> {
    let brand = &job.request.brand;
    let wanted = [
        (AssetKind::Logo, brand.logo.as_ref().map(|l| &l.asset_id)),
        (AssetKind::Music, brand.music.as_ref().map(|m| &m.asset_id)),
    ];
    let mut scratch = None;
    for (kind, id) in wanted {
        let Some(id) = id else { continue };
        let asset = deps
            .jobs
            .get_asset(id)
            .await?
            .ok_or_else(|| StepError::WrongState(format!("asset {id} is gone")))?;
        let dir = match &scratch {
            Some(dir) => dir,
            None => scratch
                .insert(Scratch::new(deps.scratch_dir.join(job.id.as_str()).join("assets")).await?),
        };
        let local = judge_stored_asset(deps, &asset, kind, dir.path()).await?.0;
        if kind == AssetKind::Music {
            // First seen here: measured now (or found measured), so the compose only levels it.
            super::levels::music_loudness(deps, &local).await?;
        }
    }
    Ok(())
}

/// Judges an asset by its stored file, as a step about to use it (the file of an asset announced
/// over the API is the client's to upload, after every check the API made): it must be the
/// announced size and probe as `rule` (the asset's own kind, or `logo` for a logo asset used as
/// an image) by [`crate::service::asset_content`], the CLI ingest's rule. The file is left in
/// `dir` (under its stored extension: ffprobe picks some demuxers by it); its path and what the
/// probe measured are returned. A file that breaks the rule is `VidPipe.AssetRejected`, naming
/// the asset.
pub(crate) async fn judge_stored_asset(
    deps: &StepDeps,
    asset: &vidpipe_domain::Asset,
    rule: AssetKind,
    dir: &Path,
) -> Result<(std::path::PathBuf, crate::service::AssetFacts), StepError> {
    let id = &asset.id;
    let rejected = |why: String| {
        StepError::AssetRejected(format!(
            "the {} asset {id} ({}) {why}",
            asset.kind.as_str(),
            asset.key
        ))
    };
    let meta = deps
        .blobs
        .head(&asset.key)
        .await?
        .ok_or_else(|| rejected("has not been uploaded".into()))?;
    if meta.size_bytes != asset.size_bytes {
        return Err(rejected(format!(
            "is {} bytes but was announced as {}",
            meta.size_bytes, asset.size_bytes
        )));
    }
    let ext = Path::new(&asset.key)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("bin");
    let local = dir.join(format!("{}.{ext}", asset.id));
    deps.blobs.get_to_file(&asset.key, &local).await?;
    let probe = match deps.media.probe(&local).await {
        Ok(p) => p,
        Err(MediaError::InvalidInput(why)) => {
            return Err(rejected(format!("is not readable media: {why}")));
        }
        Err(e) => return Err(e.into()),
    };
    let facts = crate::service::asset_content(rule, &probe).map_err(rejected)?;
    Ok((local, facts))
}

async fn asset_key(deps: &StepDeps, id: &AssetId) -> Result<String, StepError> {
    Ok(deps
        .jobs
        .get_asset(id)
        .await?
        .ok_or_else(|| StepError::WrongState(format!("asset {id} is gone")))?
        .key)
}

/// Composes the final video, its thumbnail and timeline, and moves the job to `composing`.
/// `on_progress` sees the 0..=1 fraction as ffmpeg reports it; the job record is updated in
/// coarser steps so a long render does not hammer the store.
pub async fn compose(
    deps: &StepDeps,
    input: &JobRef,
    on_progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<ComposeOutput, StepError> {
    let id = &input.job_id;
    let started = Instant::now();
    let job = update_job(deps, id, |j| {
        ensure_live(j)?;
        match j.status {
            JobStatus::Generating => {
                let expected = j.plan.as_ref().map_or(0, |p| p.scenes.len()) as u32;
                if expected == 0 || j.clips_done() != expected {
                    return Err(StepError::WrongState(format!(
                        "job {id}: {} of {expected} clips done",
                        j.clips_done()
                    )));
                }
                Ok(Some(j.transition(JobStatus::Composing, Utc::now())?))
            }
            JobStatus::Composing => Ok(None),
            other => Err(StepError::WrongState(format!(
                "job {id} is {other}, cannot compose"
            ))),
        }
    })
    .await?;
    let plan = job
        .plan
        .clone()
        .ok_or_else(|| StepError::WrongState(format!("job {id} has no plan")))?;

    // The job's first composition, recorded before its render so the versions list shows it
    // while it renders; a repeated step finds it and renders into the same folder again.
    let composition_id = CompositionId::first_of(id);
    if deps
        .jobs
        .get_composition(id, &composition_id)
        .await?
        .is_none()
    {
        let clip_keys = plan
            .scenes
            .iter()
            .map(|s| keys::clip(id, s.index))
            .collect();
        let first = Composition::rendering(
            composition_id.clone(),
            id.clone(),
            &job.owner,
            None,
            clip_keys,
            Utc::now(),
        );
        deps.jobs.put_composition(&first).await?;
    }

    let dir = Scratch::new(deps.scratch_dir.join(id.as_str()).join("compose")).await?;
    let clip_keys: Vec<String> = plan
        .scenes
        .iter()
        .map(|s| keys::clip(id, s.index))
        .collect();
    let source_size = job.request.frame_size();
    let (probe, tools) = compose_in(
        deps,
        &job,
        &plan,
        ComposeSource {
            composition_id: &composition_id,
            clip_keys: &clip_keys,
            clip_size: source_size,
            uploaded: &[],
        },
        dir.path(),
        on_progress,
    )
    .await?;
    Ok(ComposeOutput {
        job_id: id.clone(),
        composition_id: Some(composition_id.clone()),
        final_key: keys::final_video(&composition_id),
        thumbnail_key: keys::thumbnail(&composition_id),
        timeline_key: keys::timeline(&composition_id),
        probe,
        tools,
        compose_seconds: started.elapsed().as_secs_f64(),
    })
}

/// What a composition is made from: its id (its folder), the stored clips in timeline order
/// (`clip_keys[i]` is `plan.scenes[i]`'s), and the frame size those clips were made at.
pub(crate) struct ComposeSource<'a> {
    pub composition_id: &'a CompositionId,
    pub clip_keys: &'a [String],
    pub clip_size: (u32, u32),
    /// Positions in `clip_keys` of uploaded assets standing in for scenes (a recompose's
    /// replaced scenes): any shape and length, so always fitted to cover the frame.
    pub uploaded: &'a [usize],
}

/// Renders `plan` (as `job.request` asks) into `source.composition_id`'s folder. Clips made at
/// another frame size than the request's (a recompose to another aspect or resolution) are
/// scaled and cropped to cover the frame inside the composer's one pass: the stored clips stay
/// as they were made and no fitting run comes before the compose.
pub(crate) async fn compose_in(
    deps: &StepDeps,
    job: &Job,
    plan: &vidpipe_domain::Plan,
    source: ComposeSource<'_>,
    dir: &std::path::Path,
    on_progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<(OutputProbe, ToolVersions), StepError> {
    let id = &job.id;
    let composition_id = source.composition_id;
    let clip_keys = source.clip_keys;
    let refit = source.clip_size != job.request.frame_size();
    let mut clips = Vec::with_capacity(clip_keys.len());
    for (i, key) in clip_keys.iter().enumerate() {
        // An upload keeps its extension (a still is demuxed by it); generated clips are MP4.
        let ext = match Path::new(key).extension().and_then(|e| e.to_str()) {
            Some(ext) if source.uploaded.contains(&i) => ext,
            _ => "mp4",
        };
        let local = dir.join(format!("clip_{i:03}.{ext}"));
        deps.blobs.get_to_file(key, &local).await?;
        clips.push(local);
    }
    let brand = &job.request.brand;
    let logo_key = match &brand.logo {
        Some(l) => Some(asset_key(deps, &l.asset_id).await?),
        None => None,
    };
    let music_key = match &brand.music {
        Some(m) => Some(asset_key(deps, &m.asset_id).await?),
        None => None,
    };
    // The local copy keeps the stored extension: decoders are chosen by it.
    let fetch = |key: Option<String>, name: &str| {
        let ext = key
            .as_deref()
            .and_then(|k| Path::new(k).extension())
            .map(|e| e.to_owned());
        let local = match ext {
            Some(ext) => dir.join(name).with_extension(ext),
            None => dir.join(name),
        };
        async move {
            match key {
                Some(k) => {
                    deps.blobs.get_to_file(&k, &local).await?;
                    Ok::<_, StepError>(Some(local))
                }
                None => Ok(None),
            }
        }
    };
    let logo = fetch(logo_key.clone(), "logo").await?;
    let music = match fetch(music_key.clone(), "music").await? {
        Some(path) => Some(MeasuredAudio {
            loudness: super::levels::music_loudness(deps, &path).await?,
            path,
        }),
        None => None,
    };
    let mut timeline = Timeline::build(&job.request, plan, clip_keys, logo_key, music_key);
    for (i, clip) in timeline.clips.iter_mut().enumerate() {
        if refit || source.uploaded.contains(&i) {
            clip.fit = vidpipe_domain::ClipFit::Cover;
        }
    }
    let mut narration = Vec::with_capacity(timeline.narration.len());
    for cue in &timeline.narration {
        let name = format!("narration_{:03}", cue.index);
        let Some(path) = fetch(Some(cue.key.clone()), &name).await? else {
            continue;
        };
        let measured = plan
            .scenes
            .iter()
            .find(|s| s.index == cue.index)
            .and_then(|s| s.speech.as_ref())
            .and_then(|s| s.loudness.clone());
        let loudness = match measured {
            Some(l) => l,
            // A plan made before speech was measured when spoken.
            None => deps.media.loudness(&path).await?,
        };
        narration.push(MeasuredAudio { path, loudness });
    }
    let composition = CompositionJob {
        timeline: timeline.clone(),
        clips,
        logo,
        music,
        narration,
        work_dir: dir.to_path_buf(),
        final_path: dir.join("final.mp4"),
        thumbnail_path: dir.join("thumbnail.jpg"),
    };

    // ffmpeg reports progress synchronously; a watch channel hands the latest figure to a task
    // that persists it, so the render never waits on the store.
    let (tx, mut rx) = tokio::sync::watch::channel(0.0f64);
    let report = move |f: f64| {
        on_progress(f);
        let _ = tx.send(f);
    };
    let render = deps.media.compose(&composition, &report);
    let persist = async {
        let mut saved = 0.0f64;
        while rx.changed().await.is_ok() {
            let f = *rx.borrow_and_update();
            if f - saved >= 0.1 {
                saved = f;
                update_job(deps, id, |j| {
                    ensure_live(j)?;
                    let mut next = j.clone();
                    next.compose_fraction = f;
                    next.updated_at = Utc::now();
                    Ok(Some(next))
                })
                .await?;
            }
        }
        Ok::<(), StepError>(())
    };
    tokio::pin!(render);
    tokio::pin!(persist);
    // A cancel seen while persisting progress ends the render: dropping it kills ffmpeg.
    tokio::select! {
        r = &mut render => r?,
        p = &mut persist => {
            p?;
            render.await?;
        }
    }

    let size = tokio::fs::metadata(&composition.final_path).await?.len();
    let probe = OutputProbe::from_probe(&deps.media.probe(&composition.final_path).await?, size)?;
    deps.blobs
        .put_file(
            &keys::final_video(composition_id),
            &composition.final_path,
            "video/mp4",
        )
        .await?;
    deps.blobs
        .put_file(
            &keys::thumbnail(composition_id),
            &composition.thumbnail_path,
            "image/jpeg",
        )
        .await?;
    deps.blobs
        .put_bytes(
            &keys::timeline(composition_id),
            serde_json::to_vec_pretty(&timeline)?,
            "application/json",
        )
        .await?;
    Ok((probe, deps.media.versions().await?))
}

/// Writes metadata.json and completes the job.
pub async fn finalize(deps: &StepDeps, input: &ComposeOutput) -> Result<FinalizeOutput, StepError> {
    let id = &input.job_id;
    // A compose output from before compositions were recorded names none: it was the first.
    let composition_id = input
        .composition_id
        .clone()
        .unwrap_or_else(|| CompositionId::first_of(id));
    let outputs = Outputs {
        final_key: input.final_key.clone(),
        thumbnail_key: input.thumbnail_key.clone(),
        timeline_key: input.timeline_key.clone(),
        metadata_key: keys::metadata(&composition_id),
        duration_seconds: input.probe.duration_seconds,
        size_bytes: input.probe.size_bytes,
    };
    let before = load(deps, id).await?;
    let mut clip_bytes = 0;
    for clip in &before.clips {
        if let Some(key) = &clip.key
            && let Some(meta) = deps.blobs.head(key).await?
        {
            clip_bytes += meta.size_bytes;
        }
    }
    let thumbnail_bytes = deps
        .blobs
        .head(&input.thumbnail_key)
        .await?
        .map_or(0, |m| m.size_bytes);
    let job = update_job(deps, id, |j| {
        if j.status == JobStatus::Completed {
            return Ok(None);
        }
        ensure_live(j)?;
        let mut next = j.transition(JobStatus::Completed, Utc::now())?;
        next.compose_fraction = 1.0;
        next.outputs = Some(outputs.clone());
        next.cost = Some(cost(j, input, deps.memory_mb, clip_bytes, thumbnail_bytes));
        Ok(Some(next))
    })
    .await?;
    release_quota(deps, &job).await;
    // Written from the saved job so its stage timings are the final ones. A retry after a crash
    // finds the job completed and rewrites the same document.
    let outputs = job.outputs.clone().unwrap_or(outputs);
    deps.blobs
        .put_bytes(
            &outputs.metadata_key,
            serde_json::to_vec_pretty(&metadata(&job, input))?,
            "application/json",
        )
        .await?;
    record_composition(deps, &job, &composition_id, &outputs).await?;
    // Last, once everything it links to is written. A retried finalize finds the delivery in
    // the log and sends nothing twice.
    tell_webhook(deps, &job).await;
    Ok(FinalizeOutput {
        job_id: id.clone(),
        status: job.status,
        outputs,
    })
}

/// Marks the job's composition completed with its outputs (recording it whole if the compose
/// step that rendered it predates composition records). Repeating it rewrites the same record.
async fn record_composition(
    deps: &StepDeps,
    job: &Job,
    composition_id: &CompositionId,
    outputs: &Outputs,
) -> Result<(), StepError> {
    let now = Utc::now();
    let mut composition = match deps.jobs.get_composition(&job.id, composition_id).await? {
        Some(c) => c,
        None => Composition::rendering(
            composition_id.clone(),
            job.id.clone(),
            &job.owner,
            None,
            job.clips.iter().filter_map(|c| c.key.clone()).collect(),
            job.created_at,
        ),
    };
    if composition.status == CompositionStatus::Completed
        && composition.outputs.as_ref() == Some(outputs)
    {
        return Ok(());
    }
    composition.status = CompositionStatus::Completed;
    composition.outputs = Some(outputs.clone());
    composition.error = None;
    composition.updated_at = now;
    deps.jobs.put_composition(&composition).await?;
    Ok(())
}

/// Marks a composition still rendering as failed, with the reason; one that ended keeps its end.
pub(crate) async fn fail_composition(
    deps: &StepDeps,
    job: &JobId,
    composition_id: &CompositionId,
    error: &vidpipe_domain::JobError,
) -> Result<(), StepError> {
    if let Some(mut c) = deps.jobs.get_composition(job, composition_id).await?
        && c.status == CompositionStatus::Rendering
    {
        c.status = CompositionStatus::Failed;
        c.error = Some(error.clone());
        c.updated_at = Utc::now();
        deps.jobs.put_composition(&c).await?;
        release_composition_quota(deps, &c).await;
    }
    Ok(())
}

/// Records why a job failed, as one readable sentence under its error name (the Fargate
/// worker's own error when it left one). A job that already ended (completed, cancelled,
/// failed) keeps its outcome: a late failure report never overwrites a cancel or a success.
pub async fn record_failure(deps: &StepDeps, input: &FailureInput) -> Result<Job, StepError> {
    let (code, message) = match worker::failure_left(deps, input).await? {
        Some(left) => (left.error, public_reason(&left.reason)),
        None => (input.error_type.clone(), recorded_reason(&input.cause)),
    };
    if let Some(composition) = &input.composition_id {
        // A recompose's failure is its composition's: the job completed earlier and keeps that.
        let error = vidpipe_domain::JobError {
            code,
            message,
            stage: Some(vidpipe_domain::job::Stage::Composing),
        };
        fail_composition(deps, &input.job_id, composition, &error).await?;
        return load(deps, &input.job_id).await;
    }
    let job = update_job(deps, &input.job_id, |j| {
        if j.status.is_terminal() {
            return Ok(None);
        }
        Ok(Some(j.fail(&code, &message, Utc::now())?))
    })
    .await?;
    if job.status == JobStatus::Failed
        && let Some(error) = &job.error
    {
        fail_composition(deps, &job.id, &CompositionId::first_of(&job.id), error).await?;
    }
    // Also when the job had ended already: a repeat finds no claim and changes nothing.
    release_quota(deps, &job).await;
    // Also on a repeat: a first invocation that recorded but never delivered is made good, and
    // one that delivered is found in the log.
    if job.status == JobStatus::Failed {
        tell_webhook(deps, &job).await;
    }
    Ok(job)
}

/// Tells the job's webhook target how it ended; bounded in time and never failing the step.
async fn tell_webhook(deps: &StepDeps, job: &Job) {
    if let Some(webhooks) = &deps.webhooks {
        // The job as stored, with its clips; the caller's copy may predate them.
        let job = match deps.jobs.get(&job.id).await {
            Ok(Some(stored)) => stored,
            _ => job.clone(),
        };
        webhooks.tell_generation(deps.blobs.as_ref(), &job).await;
    }
}

//! Timeline documents as a service: a posted document is validated (its shape by
//! [`vidpipe_domain::edit`], its assets and earlier generations against the tenant's records),
//! then either dry-run (the normalised edit, predicted duration, route, the provider calls it
//! would make with their cache hits, an estimated cost; nothing is written) or rendered in one
//! ffmpeg pass to `compositions/{composition_id}/` and recorded as a composition of no job
//! (accepted as `rendering`, then completed or failed), readable by its id. `generate` assets go through the provider
//! chain with the same clip cache as generations, so an unchanged prompt is never paid twice.

use crate::error::StepError;
use crate::generation::StepDeps;
use crate::scratch::Scratch;
use chrono::Utc;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vidpipe_domain::composition::{
    Composition, CompositionId, CompositionStatus, TimelineCall, TimelineRender,
};
use vidpipe_domain::edit::{self, Edit, EditJob, Layer, MediaRef, Visual};
use vidpipe_domain::job::{ComposeRoute, JobError, JobStatus, Outputs, Stage};
use vidpipe_domain::media::{ClipSpec, Motion};
use vidpipe_domain::ports::{ClipMedia, ClipProgress, ClipProvider, ProviderError};
use vidpipe_domain::{AssetKind, FieldError, ValidationErrors, keys};

/// Why a document was refused or its render failed.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The document, or what it names, is invalid: every error with its JSON path.
    #[error("invalid timeline")]
    Invalid(ValidationErrors),
    #[error(transparent)]
    Step(#[from] StepError),
}

macro_rules! step_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for EditError {
            fn from(e: $t) -> Self {
                EditError::Step(e.into())
            }
        }
    )*};
}
step_errors!(
    vidpipe_domain::ports::StoreError,
    vidpipe_domain::ports::BlobError,
    vidpipe_domain::ports::MediaError,
    ProviderError,
    std::io::Error
);

/// A `generate` asset's clip: who makes it, and whether the cache already holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderCall {
    /// The clip's JSON path in the document.
    pub path: String,
    pub provider: String,
    pub prompt: String,
    pub frames: u32,
    pub cache_hit: bool,
    #[serde(skip)]
    pub cache_key: String,
    #[serde(skip)]
    pub spec: ClipSpec,
}

impl ProviderCall {
    /// What a composition's record keeps of it.
    pub fn record(&self) -> TimelineCall {
        TimelineCall {
            path: self.path.clone(),
            provider: self.provider.clone(),
            prompt: self.prompt.clone(),
            frames: self.frames,
            cache_hit: self.cache_hit,
        }
    }
}

/// What a render would cost: provider calls (cache hits are free) and compute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostEstimate {
    /// `None` when some provider that would be called publishes no price.
    pub provider_usd: Option<f64>,
    /// `None` on one machine, where compute costs nothing extra.
    pub compute_usd: Option<f64>,
    pub total_usd: Option<f64>,
    pub basis: Vec<String>,
}

/// A dry run's answer. Nothing was rendered, called or recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRun {
    pub timeline: Edit,
    pub duration_seconds: f64,
    pub total_frames: u32,
    pub route: ComposeRoute,
    pub provider_calls: Vec<ProviderCall>,
    pub estimated_cost: CostEstimate,
}

/// A finished render.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rendered {
    pub composition_id: CompositionId,
    pub status: &'static str,
    pub final_key: String,
    pub thumbnail_key: String,
    pub duration_seconds: f64,
    pub route: ComposeRoute,
    pub provider_calls: Vec<ProviderCall>,
    pub render_seconds: f64,
}

/// Compose throughput the estimate assumes: output seconds rendered per second of a function's
/// time at 1080p (measured on the compose benchmark, about realtime on 2 vCPUs), scaled by pixels.
const RENDER_SECONDS_PER_OUTPUT_SECOND_1080P: f64 = 1.0;

/// Validates the document and everything it names for `owner`.
pub async fn check(
    deps: &StepDeps,
    owner: &str,
    doc: &serde_json::Value,
) -> Result<Edit, EditError> {
    let edit = edit::validate(doc).map_err(EditError::Invalid)?;
    let mut errors = Vec::new();
    for layer in &edit.layers {
        match &layer.visual {
            Visual::Image { source } | Visual::Video { source, .. } => {
                let video = matches!(layer.visual, Visual::Video { .. });
                if let Err(e) = resolve_ref(deps, owner, source, video).await? {
                    errors.push(FieldError::new(ref_path(&layer.path, source), e));
                } else if let (true, MediaRef::Asset(id)) = (video, source) {
                    let seconds = deps
                        .jobs
                        .get_asset(id)
                        .await?
                        .and_then(|a| a.duration_seconds);
                    if let Err(e) = long_enough(seconds, layer, edit.output.fps) {
                        errors.push(e);
                    }
                }
            }
            Visual::Title { .. } | Visual::Generate { .. } => {}
        }
    }
    for clip in &edit.audio {
        if let Err(e) = music_asset(deps, owner, &clip.asset_id).await? {
            errors.push(FieldError::new(format!("{}.asset.asset_id", clip.path), e));
        }
    }
    if let Some(s) = &edit.soundtrack
        && let Err(e) = music_asset(deps, owner, &s.asset_id).await?
    {
        errors.push(FieldError::new("soundtrack.asset_id", e));
    }
    if errors.is_empty() {
        Ok(edit)
    } else {
        Err(EditError::Invalid(ValidationErrors { errors }))
    }
}

fn ref_path(clip: &str, r: &MediaRef) -> String {
    match r {
        MediaRef::Asset(_) => format!("{clip}.asset.asset_id"),
        MediaRef::Generation { .. } => format!("{clip}.asset.generation"),
    }
}

/// The store key behind a picture reference, or why there is none.
async fn resolve_ref(
    deps: &StepDeps,
    owner: &str,
    r: &MediaRef,
    video: bool,
) -> Result<Result<String, String>, EditError> {
    Ok(match r {
        MediaRef::Asset(id) => match deps.jobs.get_asset(id).await? {
            // A logo is an image too.
            Some(a) if a.owner == owner && video && a.kind == AssetKind::Video => Ok(a.key),
            Some(a) if a.owner == owner && !video && a.kind.is_still() => Ok(a.key),
            Some(a) if a.owner == owner => Err(format!(
                "asset {id} is {}, not {}",
                a.kind.as_str(),
                if video { "a video" } else { "an image" }
            )),
            _ => Err(format!(
                "no {} asset {id}",
                if video { "video" } else { "image" }
            )),
        },
        MediaRef::Generation { job_id, scene } => match deps.jobs.get(job_id).await? {
            Some(j) if j.owner == owner => {
                let scenes = j.plan.as_ref().map_or(0, |p| p.scenes.len() as u32);
                if j.status != JobStatus::Completed {
                    Err(format!(
                        "generation {job_id} is {}, not completed",
                        j.status
                    ))
                } else if *scene >= scenes {
                    Err(format!(
                        "generation {job_id} has {scenes} scenes (got scene {scene})"
                    ))
                } else if video {
                    Ok(keys::clip(job_id, *scene))
                } else {
                    Ok(keys::generation_thumbnail(job_id, *scene))
                }
            }
            _ => Err(format!("no generation {job_id}")),
        },
    })
}

async fn music_asset(
    deps: &StepDeps,
    owner: &str,
    id: &vidpipe_domain::AssetId,
) -> Result<Result<String, String>, EditError> {
    Ok(match deps.jobs.get_asset(id).await? {
        Some(a) if a.owner == owner && a.kind == AssetKind::Music => Ok(a.key),
        Some(a) if a.owner == owner => Err(format!("asset {id} is {}, not audio", a.kind.as_str())),
        _ => Err(format!("no audio asset {id}")),
    })
}

/// The clip a `generate` layer asks for: the edit's frame, rate and the layer's length.
fn spec_for(edit: &Edit, i: usize, layer: &Layer, prompt: &str, seed: u64) -> ClipSpec {
    ClipSpec {
        scene_index: i as u32,
        visual_prompt: prompt.to_owned(),
        seed,
        width: edit.output.width,
        height: edit.output.height,
        fps: edit.output.fps,
        frames: layer.frames,
        first_frame: None,
    }
}

fn cache_key(provider: &dyn ClipProvider, spec: &ClipSpec) -> String {
    keys::cached_clip(
        provider.name(),
        &spec.cache_digest(&provider.cache_identity()),
    )
}

/// Each `generate` layer's clip: from any provider of the chain whose cached clip exists (as a
/// generation reuses one), else from the chain's first.
async fn provider_calls(deps: &StepDeps, edit: &Edit) -> Result<Vec<ProviderCall>, EditError> {
    let mut calls = Vec::new();
    for (i, layer) in edit.layers.iter().enumerate() {
        let Visual::Generate { prompt, seed } = &layer.visual else {
            continue;
        };
        let spec = spec_for(edit, i, layer, prompt, *seed);
        let mut hit = None;
        for name in deps.providers.names() {
            let provider = deps.providers.by_name(&name).expect("a named provider");
            let key = cache_key(provider.as_ref(), &spec);
            if deps.blobs.head(&key).await?.is_some() {
                hit = Some((name, key));
                break;
            }
        }
        let first = deps.providers.first();
        let (provider, cache_key, cache_hit) = match hit {
            Some((name, key)) => (name, key, true),
            None => (
                first.name().to_owned(),
                cache_key(first.as_ref(), &spec),
                false,
            ),
        };
        calls.push(ProviderCall {
            path: layer.path.clone(),
            provider,
            prompt: prompt.clone(),
            frames: layer.frames,
            cache_hit,
            cache_key,
            spec,
        });
    }
    Ok(calls)
}

fn estimate(deps: &StepDeps, edit: &Edit, calls: &[ProviderCall]) -> CostEstimate {
    let mut basis = Vec::new();
    let mut provider_usd = Some(0.0);
    for call in calls {
        if call.cache_hit {
            basis.push(format!("{}: cached clip, $0", call.path));
            continue;
        }
        let price = deps
            .providers
            .by_name(&call.provider)
            .and_then(|p| p.estimate_usd(&call.spec));
        match price {
            Some(usd) => {
                basis.push(format!("{}: {} ${usd:.4}", call.path, call.provider));
                provider_usd = provider_usd.map(|t| t + usd);
            }
            None => {
                basis.push(format!(
                    "{}: {} publishes no price",
                    call.path, call.provider
                ));
                provider_usd = None;
            }
        }
    }
    let pixels = (edit.output.width * edit.output.height) as f64 / (1920.0 * 1080.0);
    let render_seconds = edit.duration_seconds * RENDER_SECONDS_PER_OUTPUT_SECOND_1080P * pixels;
    let compute_usd = deps.memory_mb.map(|mb| {
        let usd = render_seconds * mb as f64 / 1024.0
            * crate::processing::manifest::LAMBDA_ARM64_USD_PER_GB_SECOND;
        basis.push(format!(
            "compose: about {render_seconds:.1} s at {mb} MB (${usd:.5})"
        ));
        usd
    });
    let total_usd = provider_usd.map(|p| p + compute_usd.unwrap_or(0.0));
    CostEstimate {
        provider_usd,
        compute_usd,
        total_usd,
        basis,
    }
}

/// Validates and predicts, touching nothing: no job, no composition, no provider call.
pub async fn dry_run(
    deps: &StepDeps,
    owner: &str,
    doc: &serde_json::Value,
) -> Result<DryRun, EditError> {
    let edit = check(deps, owner, doc).await?;
    let calls = provider_calls(deps, &edit).await?;
    Ok(DryRun {
        duration_seconds: edit.duration_seconds,
        total_frames: edit.total_frames,
        route: ComposeRoute::for_frames(edit.total_frames, deps.worker_threshold_frames),
        estimated_cost: estimate(deps, &edit, &calls),
        provider_calls: calls,
        timeline: edit,
    })
}

/// Longest a `generate` clip is waited for before the render gives up on that provider.
const GENERATE_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// Makes (or takes from the cache) one `generate` clip, at `dest`.
async fn generate(
    deps: &StepDeps,
    call: &mut ProviderCall,
    dir: &Path,
    dest: &Path,
) -> Result<(), EditError> {
    if call.cache_hit && deps.blobs.head(&call.cache_key).await?.is_some() {
        deps.blobs.get_to_file(&call.cache_key, dest).await?;
        return Ok(());
    }
    let mut last = None;
    for name in deps.providers.names() {
        let provider = deps.providers.by_name(&name).expect("a named provider");
        let raw = dir.join(format!("raw_{}", call.spec.scene_index));
        match make(provider.as_ref(), &call.spec, &raw).await {
            Ok(ClipMedia::Video) => {
                deps.media.fit_clip(&raw, &call.spec, dest).await?;
            }
            Ok(ClipMedia::Image) => {
                let motion = Motion::ALL[call.spec.scene_index as usize % Motion::ALL.len()];
                deps.media
                    .animate_still(&raw, &call.spec, motion, dest)
                    .await?;
            }
            Err(e) => {
                tracing::warn!(provider = %name, path = %call.path, error = %e, "generate failed; next provider");
                last = Some(e);
                continue;
            }
        }
        let key = cache_key(provider.as_ref(), &call.spec);
        deps.blobs.put_file(&key, dest, "video/mp4").await?;
        call.provider = name;
        call.cache_key = key;
        return Ok(());
    }
    Err(last
        .unwrap_or_else(|| ProviderError::Failed("no provider".into()))
        .into())
}

/// Submits and polls one provider to the end (bounded by [`GENERATE_TIMEOUT`]).
async fn make(
    provider: &dyn ClipProvider,
    spec: &ClipSpec,
    dest: &Path,
) -> Result<ClipMedia, ProviderError> {
    let identity = format!("edit-{}", spec.cache_digest(&provider.cache_identity()));
    let started = Instant::now();
    let mut progress = provider.submit(spec, &identity, dest).await?;
    loop {
        match progress {
            ClipProgress::Ready { media, .. } => return Ok(media),
            ClipProgress::Pending { handle, poll_after } => {
                if started.elapsed() > GENERATE_TIMEOUT {
                    let _ = provider.cancel(&handle).await;
                    return Err(ProviderError::Failed(format!(
                        "{} did not finish in {} s",
                        provider.name(),
                        GENERATE_TIMEOUT.as_secs()
                    )));
                }
                tokio::time::sleep(
                    poll_after.clamp(Duration::from_millis(200), Duration::from_secs(30)),
                )
                .await;
                progress = provider.poll(&handle, dest).await?;
            }
        }
    }
}

/// Accepts a document for rendering: validates and predicts it, stores the normalised timeline
/// at `compositions/{id}/timeline.json` (what the render reads, wherever it runs) and records the
/// composition as `rendering`, of no job. Nothing is rendered or called yet.
pub async fn accept(
    deps: &StepDeps,
    owner: &str,
    doc: &serde_json::Value,
) -> Result<Composition, EditError> {
    let prepared = prepare(deps, owner, doc).await?;
    record(deps, prepared).await
}

/// A document validated and predicted, with the composition it will be recorded as; nothing is
/// stored yet, so a caller may refuse it (a tenant over its quota) and leave nothing behind.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub composition: Composition,
    timeline: Vec<u8>,
}

impl Prepared {
    /// Whole seconds of output it asks for, as a quota counts them.
    pub fn output_seconds(&self) -> u64 {
        self.composition
            .timeline
            .as_ref()
            .map_or(0, |t| t.duration_seconds.ceil() as u64)
    }
}

/// [`accept`]'s checks and prediction, unrecorded.
pub async fn prepare(
    deps: &StepDeps,
    owner: &str,
    doc: &serde_json::Value,
) -> Result<Prepared, EditError> {
    let edit = check(deps, owner, doc).await?;
    let calls = provider_calls(deps, &edit).await?;
    let id = CompositionId::generate();
    let timeline = serde_json::to_vec_pretty(&edit).map_err(StepError::from)?;
    let composition = Composition::timeline(
        id,
        owner,
        TimelineRender {
            duration_seconds: edit.duration_seconds,
            total_frames: edit.total_frames,
            route: ComposeRoute::for_frames(edit.total_frames, deps.worker_threshold_frames),
            provider_calls: calls.iter().map(ProviderCall::record).collect(),
        },
        Utc::now(),
    );
    Ok(Prepared {
        composition,
        timeline,
    })
}

/// Stores a prepared document's timeline (what the render reads, wherever it runs), then
/// records its composition as `rendering`.
pub async fn record(deps: &StepDeps, prepared: Prepared) -> Result<Composition, EditError> {
    let Prepared {
        composition,
        timeline,
    } = prepared;
    deps.blobs
        .put_bytes(
            &keys::timeline(&composition.id),
            timeline,
            "application/json",
        )
        .await?;
    deps.jobs.put_composition(&composition).await?;
    Ok(composition)
}

/// Renders a document in this process: [`accept`], then [`render_recorded`].
pub async fn render(
    deps: &StepDeps,
    owner: &str,
    doc: &serde_json::Value,
    progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<Rendered, EditError> {
    let started = Instant::now();
    let accepted = accept(deps, owner, doc).await?;
    render_recorded(deps, &accepted, started, progress).await
}

/// Renders an accepted composition in this process ([`render_accepted`]), recording a failed
/// render as failed with its error's stable name. `started` is when the request arrived.
pub async fn render_recorded(
    deps: &StepDeps,
    accepted: &Composition,
    started: Instant,
    progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<Rendered, EditError> {
    let (done, calls) = match render_accepted(deps, &accepted.id, progress).await {
        Ok(done) => done,
        Err(e) => {
            record_failure(deps, &accepted.id, e.error_type(), &e.to_string()).await?;
            return Err(e.into());
        }
    };
    let outputs = done
        .outputs
        .as_ref()
        .expect("a completed render has outputs");
    Ok(Rendered {
        composition_id: done.id.clone(),
        status: "completed",
        final_key: outputs.final_key.clone(),
        thumbnail_key: outputs.thumbnail_key.clone(),
        duration_seconds: outputs.duration_seconds,
        route: accepted.timeline.as_ref().expect("a timeline").route,
        provider_calls: calls,
        render_seconds: started.elapsed().as_secs_f64(),
    })
}

/// The timeline render `id` of `owner`, or `None`: another tenant's is as absent as a missing one.
pub async fn get(
    deps: &StepDeps,
    owner: &str,
    id: &CompositionId,
) -> Result<Option<Composition>, StepError> {
    Ok(deps
        .jobs
        .get_timeline(id)
        .await?
        .filter(|c| c.owner == owner))
}

/// The accepted timeline render `id`, read back; a missing one is a wrong state, not a retry.
async fn accepted(deps: &StepDeps, id: &CompositionId) -> Result<Composition, StepError> {
    deps.jobs
        .get_timeline(id)
        .await?
        .ok_or_else(|| StepError::WrongState(format!("timeline {id} is not recorded")))
}

/// An accepted render with its stored timeline and the provider calls its `generate` assets
/// make now (a clip cached since it was accepted is a hit).
pub async fn stored(
    deps: &StepDeps,
    id: &CompositionId,
) -> Result<(Composition, Vec<ProviderCall>, Edit), StepError> {
    let composition = accepted(deps, id).await?;
    let raw = deps.blobs.get_bytes(&keys::timeline(id)).await?;
    let edit: Edit = serde_json::from_slice(&raw)?;
    let calls = provider_calls(deps, &edit).await.map_err(into_step_error)?;
    Ok((composition, calls, edit))
}

/// Makes one `generate` clip into the clip cache (nothing when the cache has it).
pub async fn cache_clip(
    deps: &StepDeps,
    id: &CompositionId,
    call: &mut ProviderCall,
) -> Result<(), StepError> {
    let dir = Scratch::new(
        deps.scratch_dir
            .join("edits")
            .join(id.as_str())
            .join(format!("layer_{}", call.spec.scene_index)),
    )
    .await?;
    let dest = dir.path().join("clip.mp4");
    generate(deps, call, dir.path(), &dest)
        .await
        .map_err(into_step_error)
}

/// Renders an accepted composition from its stored timeline: makes (or takes from the clip
/// cache) its `generate` clips, runs the one pass, stores the outputs under
/// `compositions/{id}/` and records it completed. A composition already completed renders
/// nothing again (a duplicate delivery); one already failed is a wrong state. A failure is left
/// to the caller to record ([`record_failure`]), so a state machine may retry first.
pub async fn render_accepted(
    deps: &StepDeps,
    id: &CompositionId,
    progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<(Composition, Vec<ProviderCall>), StepError> {
    let (composition, mut calls, edit) = stored(deps, id).await?;
    match composition.status {
        CompositionStatus::Completed => return Ok((composition, calls)),
        CompositionStatus::Failed => {
            return Err(StepError::WrongState(format!(
                "timeline {id} already failed"
            )));
        }
        CompositionStatus::Rendering => {}
    }
    let owner = composition.owner.as_str();
    let dir = Scratch::new(deps.scratch_dir.join("edits").join(id.as_str())).await?;
    let path = dir.path().to_owned();
    let mut layer_files: Vec<Option<PathBuf>> = Vec::with_capacity(edit.layers.len());
    let mut next_call = 0;
    for (i, layer) in edit.layers.iter().enumerate() {
        let file = match &layer.visual {
            Visual::Title { .. } => None,
            Visual::Image { source } | Visual::Video { source, .. } => {
                let video = matches!(layer.visual, Visual::Video { .. });
                // Checked when accepted; gone since only if its record or generation went.
                let key = resolve_ref(deps, owner, source, video)
                    .await
                    .map_err(into_step_error)?
                    .map_err(|e| {
                        StepError::AssetRejected(format!("{}: {e}", ref_path(&layer.path, source)))
                    })?;
                let local = match source {
                    MediaRef::Asset(id) => uploaded(deps, id, video, layer, edit.output.fps, &path)
                        .await
                        .map_err(into_step_error)?,
                    MediaRef::Generation { .. } => {
                        let local = path.join(format!("layer_{i:02}"));
                        deps.blobs.get_to_file(&key, &local).await?;
                        local
                    }
                };
                Some(local)
            }
            Visual::Generate { .. } => {
                let local = path.join(format!("generated_{i:02}.mp4"));
                generate(deps, &mut calls[next_call], &path, &local)
                    .await
                    .map_err(into_step_error)?;
                next_call += 1;
                Some(local)
            }
        };
        layer_files.push(file);
    }
    let mut audio_files = Vec::with_capacity(edit.audio.len());
    for (k, clip) in edit.audio.iter().enumerate() {
        let key = music_key(
            deps,
            owner,
            &clip.asset_id,
            &format!("{}.asset.asset_id", clip.path),
        )
        .await?;
        let local = path.join(format!("audio_{k:02}"));
        deps.blobs.get_to_file(&key, &local).await?;
        audio_files.push(local);
    }
    let soundtrack_file = match &edit.soundtrack {
        Some(s) => {
            let key = music_key(deps, owner, &s.asset_id, "soundtrack.asset_id").await?;
            let local = path.join("soundtrack");
            deps.blobs.get_to_file(&key, &local).await?;
            Some(local)
        }
        None => None,
    };
    let job = EditJob {
        edit: edit.clone(),
        layer_files,
        audio_files,
        soundtrack_file,
        final_path: path.join("final.mp4"),
        thumbnail_path: path.join("thumbnail.jpg"),
        work_dir: path.join("work"),
    };
    deps.media.render_edit(&job, progress).await?;
    let size_bytes = tokio::fs::metadata(&job.final_path).await?.len();
    let probe = crate::generation::OutputProbe::from_probe(
        &deps.media.probe(&job.final_path).await?,
        size_bytes,
    )?;
    let outputs = Outputs {
        final_key: keys::final_video(id),
        thumbnail_key: keys::thumbnail(id),
        timeline_key: keys::timeline(id),
        metadata_key: keys::metadata(id),
        duration_seconds: probe.duration_seconds,
        size_bytes: probe.size_bytes,
    };
    deps.blobs
        .put_file(&outputs.final_key, &job.final_path, "video/mp4")
        .await?;
    deps.blobs
        .put_file(&outputs.thumbnail_key, &job.thumbnail_path, "image/jpeg")
        .await?;
    deps.blobs
        .put_bytes(
            &outputs.metadata_key,
            serde_json::to_vec_pretty(&serde_json::json!({
                "composition_id": id,
                "provider_calls": calls,
                "probe": probe,
            }))?,
            "application/json",
        )
        .await?;
    let mut done = composition;
    done.status = CompositionStatus::Completed;
    done.outputs = Some(outputs);
    if let Some(t) = &mut done.timeline {
        // Who made each clip in the end (a fallback provider); whether the cache had it is as
        // it was when accepted (in the stack the clip step has since filled the cache).
        let accepted: Vec<TimelineCall> = std::mem::take(&mut t.provider_calls);
        t.provider_calls = calls
            .iter()
            .map(|c| {
                let mut r = c.record();
                if let Some(a) = accepted.iter().find(|a| a.path == r.path) {
                    r.cache_hit = a.cache_hit;
                }
                r
            })
            .collect();
    }
    done.updated_at = Utc::now();
    deps.jobs.put_composition(&done).await?;
    crate::generation::steps::release_composition_quota(deps, &done).await;
    Ok((done, calls))
}

/// Records an accepted render as failed with its error's stable name and a public reason. A
/// composition already ended keeps its end (a late or repeated failure changes nothing).
pub async fn record_failure(
    deps: &StepDeps,
    id: &CompositionId,
    error_type: &str,
    cause: &str,
) -> Result<Composition, StepError> {
    let mut composition = accepted(deps, id).await?;
    if composition.status.is_terminal() {
        return Ok(composition);
    }
    composition.status = CompositionStatus::Failed;
    composition.error = Some(JobError {
        code: error_type.to_owned(),
        message: crate::failure::public_reason(cause),
        stage: Some(Stage::Composing),
    });
    composition.updated_at = Utc::now();
    deps.jobs.put_composition(&composition).await?;
    crate::generation::steps::release_composition_quota(deps, &composition).await;
    Ok(composition)
}

/// A render step's error as the step error it carries: an invalid reference found at render time
/// names its paths as a rejected asset.
fn into_step_error(e: EditError) -> StepError {
    match e {
        EditError::Step(e) => e,
        EditError::Invalid(v) => StepError::AssetRejected(
            v.errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.rule))
                .collect::<Vec<_>>()
                .join("; "),
        ),
    }
}

async fn music_key(
    deps: &StepDeps,
    owner: &str,
    id: &vidpipe_domain::AssetId,
    path: &str,
) -> Result<String, StepError> {
    music_asset(deps, owner, id)
        .await
        .map_err(into_step_error)?
        .map_err(|e| StepError::AssetRejected(format!("{path}: {e}")))
}

/// A video asset shorter than its clip is refused at the clip's `length`, rather than padded:
/// the composer would hold its last frame (or a loop would repeat its start), a freeze or a
/// jump the document never asked for. One frame short is tolerated (rounding to the rate).
/// An asset announced over the API has no length until its file is probed: `None` passes here
/// and the render judges the file.
fn long_enough(seconds: Option<f64>, layer: &Layer, fps: u32) -> Result<(), FieldError> {
    let needed = layer.frames as f64 / fps as f64;
    match seconds {
        Some(s) if s + 1.0 / fps as f64 + 1e-6 < needed => Err(FieldError::new(
            format!("{}.length", layer.path),
            format!(
                "is {needed:.2} s but the video asset is {s:.2} s long; shorten the clip or \
                 upload a longer video"
            ),
        )),
        _ => Ok(()),
    }
}

/// An uploaded asset's file for a layer, judged by its content first (a file announced over
/// the API is the client's to upload, after validation): an image must probe as one picture, a
/// video as a video at least as long as its clip.
async fn uploaded(
    deps: &StepDeps,
    id: &vidpipe_domain::AssetId,
    video: bool,
    layer: &Layer,
    fps: u32,
    dir: &Path,
) -> Result<PathBuf, EditError> {
    let asset = deps
        .jobs
        .get_asset(id)
        .await?
        .ok_or_else(|| StepError::WrongState(format!("asset {id} is gone")))?;
    let rule = if video { AssetKind::Video } else { asset.kind };
    let (local, (_, _, seconds)) =
        crate::generation::steps::judge_stored_asset(deps, &asset, rule, dir).await?;
    if video {
        long_enough(seconds, layer, fps)
            .map_err(|e| EditError::Invalid(ValidationErrors { errors: vec![e] }))?;
    }
    Ok(local)
}

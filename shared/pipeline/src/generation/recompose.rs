//! Recompose: a finished job's clips laid out again with edits (another aspect or resolution,
//! transition, captions, music, logo, scene order) into a new composition that names its parent.
//! No planning and no provider call: the clips are the job's own, read from the store (and
//! fitted locally when the frame changes); only the composer runs.

use super::steps::{
    ComposeSource, StepDeps, compose_in, fail_composition, load, release_composition_quota,
};
use super::types::{ClipTask, CompositionRef, FinalizeOutput, PlanOutput};
use crate::error::StepError;
use crate::scratch::Scratch;
use chrono::Utc;
use vidpipe_domain::composition::{
    Composition, CompositionId, CompositionStatus, RecomposeEdits, Recomposition,
};
use vidpipe_domain::job::{ComposeRoute, JobError, JobId, JobStatus, Outputs, Stage};
use vidpipe_domain::request::{LogoSpec, MusicSpec};
use vidpipe_domain::{AssetId, AssetKind, FieldError, ValidationErrors, keys};

/// Why a recompose was refused before anything rendered.
#[derive(Debug, thiserror::Error)]
pub enum RecomposeError {
    #[error("job {0} not found")]
    JobNotFound(JobId),
    #[error("composition {0} not found")]
    CompositionNotFound(String),
    /// Only a completed job has clips to lay out again.
    #[error("job {job} is {status}; only a completed job can be recomposed")]
    NotCompleted { job: JobId, status: JobStatus },
    #[error("invalid edits")]
    Invalid(ValidationErrors),
    #[error(transparent)]
    Step(#[from] StepError),
}

impl From<vidpipe_domain::ports::StoreError> for RecomposeError {
    fn from(e: vidpipe_domain::ports::StoreError) -> Self {
        RecomposeError::Step(e.into())
    }
}

/// Checks the edits against the job and records the new composition as `rendering`; nothing is
/// rendered yet. The returned composition is what [`render`] then makes.
pub async fn prepare(
    deps: &StepDeps,
    owner: &str,
    job_id: &JobId,
    edits: &RecomposeEdits,
) -> Result<Composition, RecomposeError> {
    let (composition, _) = draft(deps, owner, job_id, edits).await?;
    deps.jobs.put_composition(&composition).await?;
    Ok(composition)
}

/// [`prepare`]'s checks and the composition it would record, unrecorded, with the seconds of
/// output its job asked for: the service claims the tenant's quota for them between the two, so
/// a refusal leaves no version behind.
pub async fn draft(
    deps: &StepDeps,
    owner: &str,
    job_id: &JobId,
    edits: &RecomposeEdits,
) -> Result<(Composition, u64), RecomposeError> {
    let job = match deps.jobs.get(job_id).await? {
        Some(j) if j.owner == owner => j,
        // Another tenant's job is as absent as a missing one.
        _ => return Err(RecomposeError::JobNotFound(job_id.clone())),
    };
    if job.status != JobStatus::Completed || job.plan.is_none() {
        return Err(RecomposeError::NotCompleted {
            job: job.id.clone(),
            status: job.status,
        });
    }
    let versions = deps.jobs.compositions(job_id).await?;
    let parent = match &edits.parent_composition_id {
        Some(raw) => versions
            .iter()
            .find(|c| c.id.as_str() == raw)
            .ok_or_else(|| RecomposeError::CompositionNotFound(raw.clone()))?,
        None => versions
            .iter()
            .rev()
            .find(|c| c.status == CompositionStatus::Completed)
            .ok_or_else(|| RecomposeError::CompositionNotFound("(none completed)".into()))?,
    };
    if parent.status != CompositionStatus::Completed {
        return Err(RecomposeError::CompositionNotFound(format!(
            "{} is {}",
            parent.id,
            parent.status.as_str()
        )));
    }
    // Validated now, so a bad edit is refused before a composition is recorded.
    let (request, plan) = parent_setup(deps, &job, parent).await?;
    let done = edits
        .apply(&request, &plan, &parent.clip_keys)
        .map_err(RecomposeError::Invalid)?;
    for (field, raw, kind) in [
        ("music_asset_id", &edits.music_asset_id, AssetKind::Music),
        ("logo_asset_id", &edits.logo_asset_id, AssetKind::Logo),
    ] {
        if let Some(raw) = raw {
            let id = AssetId::parse(raw)
                .map_err(|e| RecomposeError::Invalid(ValidationErrors::single(field, e)))?;
            match deps.jobs.get_asset(&id).await? {
                Some(a) if a.owner == owner && a.kind == kind => {}
                _ => {
                    return Err(RecomposeError::Invalid(ValidationErrors::single(
                        field,
                        format!("no {} asset {id}", kind.as_str()),
                    )));
                }
            }
        }
    }
    let shown = scene_assets(deps, owner, edits, &done.plan).await?;
    let id = CompositionId::generate();
    // A scene replaced by a prompt plays the new composition's own clip, one replaced by an
    // asset plays the uploaded file itself (fitted in the compose); the rest are the parent's.
    let replaced: Vec<u32> = edits.scenes.iter().flatten().map(|s| s.index).collect();
    let clip_keys = done
        .plan
        .scenes
        .iter()
        .zip(done.clip_keys)
        .map(
            |(scene, key)| match shown.iter().find(|(i, _)| *i == scene.index) {
                Some((_, asset)) => asset.key.clone(),
                None if replaced.contains(&scene.index) => keys::composition_clip(&id, scene.index),
                None => key,
            },
        )
        .collect();
    if let Some(voice) = &edits.voice
        && let Some(reason) =
            super::narration::unknown_voice(deps, done.request.narration.as_ref(), voice.trim())
                .await?
    {
        return Err(RecomposeError::Invalid(ValidationErrors::single(
            "voice", reason,
        )));
    }
    let mut composition = Composition::rendering(
        id,
        job.id.clone(),
        owner,
        Some(parent.id.clone()),
        clip_keys,
        Utc::now(),
    );
    composition.edits = Some(serde_json::to_value(edits).map_err(StepError::from)?);
    Ok((composition, u64::from(job.request.duration_seconds)))
}

/// The assets that replace scenes, by scene index: each the tenant's own `video` asset (no
/// shorter than its scene, where its length is known; one frame short is rounding) or `image`
/// or `logo` asset (held for the scene). Refusals name `scenes[i].asset_id`.
///
/// A video shorter than its scene is refused rather than looped or frozen on its last frame:
/// either would show something the upload does not, and the scene's length is the plan's, so the
/// caller's remedy is a longer video. An asset announced over the API has no length until its
/// file is probed; the render judges that file and fails the composition if it is short.
async fn scene_assets(
    deps: &StepDeps,
    owner: &str,
    edits: &RecomposeEdits,
    plan: &vidpipe_domain::Plan,
) -> Result<Vec<(u32, vidpipe_domain::Asset)>, RecomposeError> {
    let mut errors = Vec::new();
    let mut shown = Vec::new();
    for (i, scene) in edits.scenes.iter().flatten().enumerate() {
        let Some(raw) = &scene.asset_id else { continue };
        let field = format!("scenes[{i}].asset_id");
        // Its form was checked by `apply`.
        let Ok(id) = AssetId::parse(raw) else {
            continue;
        };
        let Some(target) = plan.scenes.iter().find(|s| s.index == scene.index) else {
            continue;
        };
        let asset = match deps.jobs.get_asset(&id).await? {
            Some(a) if a.owner == owner => a,
            // Another tenant's asset is as absent as a missing one.
            _ => {
                errors.push(FieldError::new(field, format!("no asset {id}")));
                continue;
            }
        };
        if asset.kind != AssetKind::Video && !asset.kind.is_still() {
            errors.push(FieldError::new(
                field,
                format!(
                    "asset {id} is {}, not a video or an image",
                    asset.kind.as_str()
                ),
            ));
            continue;
        }
        if let Some(rule) = too_short(&asset, target.frames, plan_fps(plan)) {
            errors.push(FieldError::new(field, rule));
            continue;
        }
        // An asset announced over the API is uploaded by the client afterwards: refused here,
        // by name, until it is (its content is judged when the version renders).
        if deps
            .blobs
            .head(&asset.key)
            .await
            .map_err(StepError::from)?
            .is_none()
        {
            errors.push(FieldError::new(
                field,
                format!(
                    "asset {id} has not been uploaded yet: PUT its file to the upload_url first"
                ),
            ));
            continue;
        }
        shown.push((scene.index, asset));
    }
    if errors.is_empty() {
        Ok(shown)
    } else {
        Err(RecomposeError::Invalid(ValidationErrors { errors }))
    }
}

fn plan_fps(plan: &vidpipe_domain::Plan) -> u32 {
    plan.fps.max(1)
}

/// Why a video asset cannot fill `frames` at `fps`, if its known length falls short by more
/// than a frame.
fn too_short(asset: &vidpipe_domain::Asset, frames: u32, fps: u32) -> Option<String> {
    let seconds = asset
        .duration_seconds
        .filter(|_| asset.kind == AssetKind::Video)?;
    let needed = frames as f64 / fps as f64;
    (seconds + 1.0 / fps as f64 + 1e-6 < needed).then(|| {
        format!(
            "video asset {} is {seconds:.2} s long; the scene lasts {needed:.2} s",
            asset.id
        )
    })
}

/// The request and plan a completed composition was rendered from: the job's own for the first,
/// else the parent's recorded setup (its edits applied over its own parent, back to the first).
async fn parent_setup(
    deps: &StepDeps,
    job: &vidpipe_domain::Job,
    parent: &Composition,
) -> Result<(vidpipe_domain::GenerationRequest, vidpipe_domain::Plan), RecomposeError> {
    let versions = deps.jobs.compositions(&job.id).await?;
    let chain = vidpipe_domain::composition::lineage(&versions, &parent.id);
    let mut request = job.request.clone();
    let mut plan = job
        .plan
        .clone()
        .expect("checked: a completed job has a plan");
    let mut clip_keys: Vec<String> = plan
        .scenes
        .iter()
        .map(|s| keys::clip(&job.id, s.index))
        .collect();
    // Oldest first: each version's edits were applied over its parent's result.
    for c in chain.iter().rev() {
        let Some(raw) = &c.edits else { continue };
        let edits: RecomposeEdits = serde_json::from_value(raw.clone()).map_err(StepError::from)?;
        let mut done = edits
            .apply(&request, &plan, &clip_keys)
            .map_err(RecomposeError::Invalid)?;
        // That version's speech, from the cache (it was spoken when the version was made).
        speak_again(deps, job, &edits, &done.request, &mut done.plan, &c.id).await?;
        request = with_assets(done.request, &edits);
        plan = done.plan;
        clip_keys = done.clip_keys;
    }
    Ok((request, plan))
}

/// A new voice, or narration turned on over a parent without it: the lines spoken again into
/// `composition`'s folder (no clip is made) and the plan's speech replaced.
async fn speak_again(
    deps: &StepDeps,
    job: &vidpipe_domain::Job,
    edits: &RecomposeEdits,
    request: &vidpipe_domain::GenerationRequest,
    plan: &mut vidpipe_domain::Plan,
    composition: &CompositionId,
) -> Result<(), StepError> {
    match &request.narration {
        Some(spec) if edits.speaks_again(plan) => {
            super::narration::respeak(deps, job, spec, plan, composition).await
        }
        _ => Ok(()),
    }
}

/// The brand with the edits' music and logo in place of the parent's, keeping the parent's
/// placement and levels (or a request's defaults where the parent had none).
fn with_assets(
    mut request: vidpipe_domain::GenerationRequest,
    edits: &RecomposeEdits,
) -> vidpipe_domain::GenerationRequest {
    if let Some(id) = edits
        .music_asset_id
        .as_deref()
        .and_then(|r| AssetId::parse(r).ok())
    {
        request.brand.music = Some(match request.brand.music.take() {
            Some(m) => MusicSpec { asset_id: id, ..m },
            None => MusicSpec {
                asset_id: id,
                volume: 0.8,
                fade_in_seconds: 1.0,
                fade_out_seconds: 2.0,
            },
        });
    }
    if let Some(id) = edits
        .logo_asset_id
        .as_deref()
        .and_then(|r| AssetId::parse(r).ok())
    {
        request.brand.logo = Some(match request.brand.logo.take() {
            Some(l) => LogoSpec { asset_id: id, ..l },
            None => LogoSpec {
                asset_id: id,
                position: vidpipe_domain::Corner::TopRight,
                opacity: 0.9,
                scale: 0.12,
            },
        });
    }
    request
}

/// Renders a prepared composition and records how it ended. On success the job's outputs point
/// at the new version (the job stays completed); on failure the composition says why and the
/// job keeps its earlier outputs.
pub async fn render(
    deps: &StepDeps,
    composition: &Composition,
    on_progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<Composition, StepError> {
    match render_in(deps, composition, on_progress).await {
        Ok(done) => Ok(done),
        Err(e) => {
            let error = JobError {
                code: e.error_type().to_owned(),
                message: crate::failure::public_reason(&e.to_string()),
                stage: Some(Stage::Composing),
            };
            let job = composition.job().map_err(StepError::WrongState)?;
            fail_composition(deps, job, &composition.id, &error).await?;
            Err(e)
        }
    }
}

/// The state machine's plan for a recompose (no planning, no provider call for kept scenes):
/// the scenes the composition replaces as clip tasks named by it (none when it replaces nothing,
/// or has already ended and so needs nothing), and where it composes, by the frame rule a job's
/// compose follows.
pub async fn plan(deps: &StepDeps, input: &CompositionRef) -> Result<PlanOutput, StepError> {
    let job = load(deps, &input.job_id).await?;
    let composition = stored(deps, input).await?;
    let total_frames = job
        .plan
        .as_ref()
        .ok_or_else(|| StepError::WrongState(format!("job {} has no plan", job.id)))?
        .total_frames;
    let scenes = if composition.status.is_terminal() {
        Vec::new()
    } else {
        composition
            .replaced_scenes()
            .into_iter()
            .map(|scene_index| ClipTask {
                job_id: job.id.clone(),
                scene_index,
                composition_id: Some(composition.id.clone()),
            })
            .collect()
    };
    Ok(PlanOutput {
        job_id: job.id.clone(),
        total_frames,
        route: ComposeRoute::for_frames(total_frames, deps.worker_threshold_frames),
        scenes,
    })
}

/// The state machine's compose for a recompose, in Lambda or on the Fargate worker. Unlike
/// [`render`] it leaves a failure to the state machine (which retries passing errors first, then
/// records it through record_failure), and a duplicate delivery of a finished render renders
/// nothing again.
pub async fn render_step(
    deps: &StepDeps,
    input: &CompositionRef,
    on_progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<CompositionRef, StepError> {
    let composition = stored(deps, input).await?;
    match composition.status {
        CompositionStatus::Completed => {}
        CompositionStatus::Failed => {
            return Err(StepError::WrongState(format!(
                "composition {} already failed",
                composition.id
            )));
        }
        CompositionStatus::Rendering => {
            render_in(deps, &composition, on_progress).await?;
        }
    }
    Ok(input.clone())
}

/// The state machine's finalize for a recompose: the render recorded the composition whole, so
/// this only reports it (and refuses one that is not completed, e.g. a worker that exited 0
/// without rendering).
pub async fn finalize(
    deps: &StepDeps,
    input: &CompositionRef,
) -> Result<FinalizeOutput, StepError> {
    let job = load(deps, &input.job_id).await?;
    let composition = stored(deps, input).await?;
    match (composition.status, composition.outputs) {
        (CompositionStatus::Completed, Some(outputs)) => Ok(FinalizeOutput {
            job_id: job.id,
            status: job.status,
            outputs,
        }),
        (status, _) => Err(StepError::WrongState(format!(
            "composition {} is {} after its render",
            input.composition_id,
            status.as_str()
        ))),
    }
}

async fn stored(deps: &StepDeps, input: &CompositionRef) -> Result<Composition, StepError> {
    deps.jobs
        .get_composition(&input.job_id, &input.composition_id)
        .await?
        .ok_or_else(|| {
            StepError::WrongState(format!("composition {} is gone", input.composition_id))
        })
}

async fn render_in(
    deps: &StepDeps,
    composition: &Composition,
    on_progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<Composition, StepError> {
    let job = load(deps, composition.job().map_err(StepError::WrongState)?).await?;
    let parent = match &composition.parent_composition_id {
        Some(p) => deps
            .jobs
            .get_composition(&job.id, p)
            .await?
            .ok_or_else(|| StepError::WrongState(format!("composition {p} is gone")))?,
        None => {
            return Err(StepError::WrongState(format!(
                "{} has no parent",
                composition.id
            )));
        }
    };
    let edits: RecomposeEdits = match &composition.edits {
        Some(raw) => serde_json::from_value(raw.clone())?,
        None => RecomposeEdits::default(),
    };
    let (request, plan) = parent_setup(deps, &job, &parent)
        .await
        .map_err(|e| StepError::WrongState(e.to_string()))?;
    let clip_size = job.request.frame_size();
    let Recomposition { request, plan, .. } = edits
        .apply(&request, &plan, &parent.clip_keys)
        .map_err(|e| StepError::WrongState(format!("edits no longer apply: {e:?}")))?;
    // As recorded when prepared: the parent's clips, and this version's own for the scenes it
    // replaced (made by the clip step before this render).
    let clip_keys = composition.clip_keys.clone();
    // The job's generated files this version plays start a new 90 days under `generations/`'s
    // expiry, so no composition outlives its clips. Done here, where the files are read, rather
    // than when the version is recorded: the API function that records it holds no media grant.
    let speech = plan.scenes.iter().filter_map(|s| s.speech.as_ref());
    for key in clip_keys
        .iter()
        .chain(speech.map(|s| &s.key))
        .filter(|k| k.starts_with("generations/"))
    {
        deps.blobs.renew(key).await?;
    }
    let mut plan = plan;
    speak_again(deps, &job, &edits, &request, &mut plan, &composition.id).await?;
    let mut edited = job.clone();
    edited.request = with_assets(request, &edits);
    edited.plan = Some(plan.clone());

    let dir = Scratch::new(
        deps.scratch_dir
            .join(job.id.as_str())
            .join(composition.id.as_str()),
    )
    .await?;
    let uploaded = judge_scene_assets(deps, composition, &plan, dir.path()).await?;
    let (probe, _tools) = compose_in(
        deps,
        &edited,
        &plan,
        ComposeSource {
            composition_id: &composition.id,
            clip_keys: &clip_keys,
            clip_size,
            uploaded: &uploaded,
        },
        dir.path(),
        on_progress,
    )
    .await?;
    let outputs = Outputs {
        final_key: keys::final_video(&composition.id),
        thumbnail_key: keys::thumbnail(&composition.id),
        timeline_key: keys::timeline(&composition.id),
        metadata_key: keys::metadata(&composition.id),
        duration_seconds: probe.duration_seconds,
        size_bytes: probe.size_bytes,
    };
    deps.blobs
        .put_bytes(
            &outputs.metadata_key,
            serde_json::to_vec_pretty(&serde_json::json!({
                "job_id": job.id,
                "composition_id": composition.id,
                "parent_composition_id": composition.parent_composition_id,
                "edits": composition.edits,
                "scene_assets": composition.asset_scenes(),
                "probe": probe,
            }))?,
            "application/json",
        )
        .await?;
    let mut done = composition.clone();
    done.status = CompositionStatus::Completed;
    done.outputs = Some(outputs);
    done.updated_at = Utc::now();
    deps.jobs.put_composition(&done).await?;
    release_composition_quota(deps, &done).await;
    Ok(done)
}

/// The timeline positions of the scenes `composition` shows an uploaded asset in, each asset
/// judged first by its stored file (the file of an asset announced over the API is the client's
/// to upload, after the edits were checked): it must probe as its kind and, for a video, last
/// the scene. A bad one fails the render with `VidPipe.AssetRejected`, naming the asset.
async fn judge_scene_assets(
    deps: &StepDeps,
    composition: &Composition,
    plan: &vidpipe_domain::Plan,
    dir: &std::path::Path,
) -> Result<Vec<usize>, StepError> {
    let mut positions = Vec::new();
    for shown in composition.asset_scenes() {
        let Some(at) = plan
            .scenes
            .iter()
            .position(|s| s.index == shown.scene_index)
        else {
            continue;
        };
        let mut asset =
            deps.jobs.get_asset(&shown.asset_id).await?.ok_or_else(|| {
                StepError::WrongState(format!("asset {} is gone", shown.asset_id))
            })?;
        let judged = dir.join("judged");
        tokio::fs::create_dir_all(&judged).await?;
        let (local, (_, _, seconds)) =
            super::steps::judge_stored_asset(deps, &asset, asset.kind, &judged).await?;
        // Only judged here: the compose fetches its own copy, so scratch holds one at a time.
        tokio::fs::remove_file(&local).await?;
        asset.duration_seconds = seconds;
        if let Some(rule) = too_short(&asset, plan.scenes[at].frames, plan_fps(plan)) {
            return Err(StepError::AssetRejected(format!(
                "scene {}: {rule}",
                shown.scene_index
            )));
        }
        positions.push(at);
    }
    Ok(positions)
}

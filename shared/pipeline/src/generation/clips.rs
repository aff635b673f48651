//! One scene's clip through the provider chain: the cache first, then each provider in turn.
//! Asynchronous providers are submitted and then polled by later calls of the same step, so no
//! process ever waits minutes for a provider: the state machine's `Wait` state (or the embedded
//! runner's sleep) sits between the calls. A per-provider lease bounds the calls running at once
//! across every job.

use super::steps::{StepDeps, ensure_live, load};
use super::types::{ClipOutput, ClipTask};
use crate::error::StepError;
use crate::failure::public_reason;
use crate::policy::RetryPolicy;
use crate::scratch::Scratch;
use chrono::Utc;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vidpipe_domain::ErrorClass;
use vidpipe_domain::composition::{Composition, CompositionId, RecomposeEdits};
use vidpipe_domain::job::{ClipRecord, ClipStatus, Job, JobId, JobStatus};
use vidpipe_domain::keys;
use vidpipe_domain::media::{ClipSpec, Motion};
use vidpipe_domain::plan::Scene;
use vidpipe_domain::ports::{ClipMedia, ClipProgress, ClipProvider, ProviderCost, ProviderError};

/// The providers to try for each clip, in order: the first makes the clip unless it fails for
/// good, then the next is asked, and every fallback is recorded on the clip with its reason.
#[derive(Clone)]
pub struct ProviderChain(Vec<Arc<dyn ClipProvider>>);

impl ProviderChain {
    /// A chain needs at least one provider; configuration refuses an empty list before here.
    pub fn new(providers: Vec<Arc<dyn ClipProvider>>) -> Self {
        assert!(!providers.is_empty(), "a provider chain needs a provider");
        Self(providers)
    }

    pub fn single(provider: Arc<dyn ClipProvider>) -> Self {
        Self(vec![provider])
    }

    pub fn first(&self) -> &Arc<dyn ClipProvider> {
        &self.0[0]
    }

    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|p| p.name().to_owned()).collect()
    }

    fn position(&self, name: &str) -> usize {
        self.0.iter().position(|p| p.name() == name).unwrap_or(0)
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<dyn ClipProvider>> {
        self.0.iter().find(|p| p.name() == name)
    }

    /// The chain a request's chosen provider leads: it first, the others after it in their
    /// order, as its fallbacks. A name the chain lacks (refused at submit) leaves it as it is.
    pub fn led_by(&self, chosen: Option<&str>) -> ProviderChain {
        let Some(lead) = chosen.and_then(|name| self.0.iter().find(|p| p.name() == name)) else {
            return self.clone();
        };
        let mut providers = vec![lead.clone()];
        providers.extend(self.0.iter().filter(|p| !Arc::ptr_eq(p, lead)).cloned());
        ProviderChain(providers)
    }
}

/// How clip calls are paced and bounded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipLimits {
    /// Calls running at once against one provider, across every job sharing the lease store.
    pub per_provider: u32,
    /// A lease outlives a crashed holder by at most this.
    pub lease_ttl: Duration,
    /// How long to wait before asking again when every slot is taken.
    pub slot_wait: Duration,
    /// Polls of one call before it counts as stuck: cancelled, and the next provider asked.
    pub max_polls: u32,
    /// Tries of one provider on passing errors before the next provider is asked; matches the
    /// clip retry policy, so the state machine's last retry is the one that falls back.
    pub attempts_per_provider: u32,
}

impl Default for ClipLimits {
    fn default() -> Self {
        Self {
            per_provider: 4,
            lease_ttl: Duration::from_secs(20 * 60),
            slot_wait: Duration::from_secs(5),
            max_polls: 180,
            attempts_per_provider: RetryPolicy::CLIP.max_attempts,
        }
    }
}

/// The state machine waits at most this long between polls, whatever a provider suggests.
const MAX_POLL_WAIT: Duration = Duration::from_secs(60);

fn spec_for(job: &Job, scene: &Scene, fps: u32) -> ClipSpec {
    let (width, height) = job.request.frame_size();
    ClipSpec {
        scene_index: scene.index,
        visual_prompt: scene.visual_prompt.clone(),
        seed: job.request.seed,
        width,
        height,
        fps,
        frames: scene.frames,
        first_frame: None,
    }
}

/// Whose clip is being made: a job's scene, or a scene a recompose replaced. `name` tells the
/// provider calls, leases and first frames of the two apart.
struct Work {
    job_id: JobId,
    name: String,
    composition: Option<CompositionId>,
}

/// Keeps a clip's progress: on the job for its own scenes, on the composition for a replaced one
/// (read again first, so the write keeps what else changed on it).
async fn save(deps: &StepDeps, work: &Work, record: &ClipRecord) -> Result<(), StepError> {
    let Some(c) = &work.composition else {
        deps.jobs.put_clip(&work.job_id, record).await?;
        return Ok(());
    };
    let mut composition = deps
        .jobs
        .get_composition(&work.job_id, c)
        .await?
        .ok_or_else(|| StepError::WrongState(format!("composition {c} is gone")))?;
    composition.clips.retain(|r| r.index != record.index);
    composition.clips.push(record.clone());
    composition.clips.sort_by_key(|r| r.index);
    composition.updated_at = Utc::now();
    deps.jobs.put_composition(&composition).await?;
    Ok(())
}

/// The new prompt a composition gives scene `index`, if it replaces it.
fn replacement_prompt(composition: &Composition, index: u32) -> Option<String> {
    let edits: RecomposeEdits = serde_json::from_value(composition.edits.clone()?).ok()?;
    edits
        .scenes?
        .into_iter()
        .find(|s| s.index == index)
        .and_then(|s| Some(s.prompt?.trim().to_owned()))
}

fn cache_key(provider: &dyn ClipProvider, spec: &ClipSpec) -> String {
    keys::cached_clip(
        provider.name(),
        &spec.cache_digest(&provider.cache_identity()),
    )
}

/// Names one clip across retries and resubmissions; providers that bill per call carry it so a
/// resubmission finds the call already made.
fn identity(work: &str, scene: u32) -> String {
    format!("{work}-{scene:03}")
}

fn holder(work: &str, scene: u32) -> String {
    format!("{work}/{scene}")
}

fn waiting(out: ClipOutput, wait: Duration) -> ClipOutput {
    ClipOutput {
        wait_seconds: Some(wait.as_secs().clamp(1, MAX_POLL_WAIT.as_secs()) as u32),
        ..out
    }
}

/// Generates one scene's clip, or moves it one step on: from the cache when an identical clip
/// exists, else through the provider chain. Returns with `wait_seconds` set while a provider is
/// still working; call again after that long.
pub async fn generate_clip(deps: &StepDeps, task: &ClipTask) -> Result<ClipOutput, StepError> {
    let started = Instant::now();
    let id = &task.job_id;
    let job = load(deps, id).await?;
    ensure_live(&job)?;
    // The request's chosen provider leads this job's chain.
    let chosen;
    let deps = if job.request.provider.is_some() {
        chosen = StepDeps {
            providers: deps.providers.led_by(job.request.provider.as_deref()),
            ..deps.clone()
        };
        &chosen
    } else {
        deps
    };
    let work = match &task.composition_id {
        None => Work {
            job_id: id.clone(),
            name: id.to_string(),
            composition: None,
        },
        Some(c) => Work {
            job_id: id.clone(),
            name: c.to_string(),
            composition: Some(c.clone()),
        },
    };
    let composition = match &work.composition {
        None => None,
        Some(c) => Some(
            deps.jobs
                .get_composition(id, c)
                .await?
                .ok_or_else(|| StepError::WrongState(format!("composition {c} is gone")))?,
        ),
    };
    let (key, records) = match &composition {
        None => (keys::clip(id, task.scene_index), &job.clips),
        Some(c) => (keys::composition_clip(&c.id, task.scene_index), &c.clips),
    };
    let existing = records
        .iter()
        .find(|c| c.index == task.scene_index)
        .cloned();
    let out = |provider: &str, cache_hit: bool| ClipOutput {
        job_id: id.clone(),
        scene_index: task.scene_index,
        composition_id: task.composition_id.clone(),
        key: key.clone(),
        cache_hit,
        provider: provider.to_owned(),
        wait_seconds: None,
    };
    if let Some(done) = existing.as_ref().filter(|c| c.status == ClipStatus::Done)
        && deps.blobs.head(&key).await?.is_some()
    {
        return Ok(out(&done.provider, done.cache_hit));
    }
    // A job's clips are made while it generates; a replaced scene's while its composition
    // renders, the job itself long completed.
    match &composition {
        None if job.status != JobStatus::Generating => {
            return Err(StepError::WrongState(format!(
                "job {id} is {}, not generating",
                job.status
            )));
        }
        Some(c) if job.status != JobStatus::Completed || c.status.is_terminal() => {
            return Err(StepError::WrongState(format!(
                "composition {} of job {id} ({}) is {}, not rendering",
                c.id,
                job.status,
                c.status.as_str()
            )));
        }
        _ => {}
    }
    let plan = job
        .plan
        .as_ref()
        .ok_or_else(|| StepError::WrongState(format!("job {id} has no plan")))?;
    let mut scene = plan
        .scenes
        .iter()
        .find(|s| s.index == task.scene_index)
        .ok_or_else(|| {
            StepError::WrongState(format!("job {id} has no scene {}", task.scene_index))
        })?
        .clone();
    if let Some(c) = &composition {
        scene.visual_prompt = replacement_prompt(c, scene.index).ok_or_else(|| {
            StepError::WrongState(format!(
                "composition {} replaces no scene {}",
                c.id, scene.index
            ))
        })?;
    }
    let scene = &scene;
    let spec = spec_for(&job, scene, plan.fps);
    let mut record = existing.unwrap_or_else(|| {
        ClipRecord::pending(
            scene.index,
            deps.providers.first().name(),
            scene.frames,
            Utc::now(),
        )
    });
    let dir = Scratch::new(
        deps.scratch_dir
            .join(id.as_str())
            .join(format!("{}_clip_{:03}", work.name, scene.index)),
    )
    .await?;
    let mut at = deps.providers.position(&record.provider);
    // A clip any provider of the chain made before is reused before anyone is asked: a scene
    // the first provider refused last time would otherwise be refused (and billed) again.
    if record.handle.is_none() {
        for (i, provider) in deps.providers.0.iter().enumerate().skip(at) {
            if deps
                .blobs
                .head(&cache_key(provider.as_ref(), &spec))
                .await?
                .is_some()
            {
                if i != at {
                    record.provider = provider.name().to_owned();
                }
                at = i;
                break;
            }
        }
    }
    let mut counted = Duration::ZERO;
    loop {
        let provider = deps.providers.0[at].clone();
        let step = advance(
            deps,
            &work,
            &spec,
            provider.as_ref(),
            &mut record,
            dir.path(),
        )
        .await;
        // The step's own time, for the job's compute cost; a fallback loops, so count once.
        let now = started.elapsed();
        record.compute_ms += (now - counted).as_millis() as u64;
        counted = now;
        match step {
            Ok(Advance::Done { cache_hit }) => {
                deps.blobs
                    .copy(&cache_key(provider.as_ref(), &spec), &key)
                    .await?;
                let picture = match &work.composition {
                    None => keys::generation_thumbnail(id, scene.index),
                    Some(c) => keys::composition_clip_thumbnail(c, scene.index),
                };
                record.thumbnail_key = tile_picture(deps, &spec, &key, picture, dir.path()).await;
                record.status = ClipStatus::Done;
                record.key = Some(key.clone());
                record.cache_hit = cache_hit;
                record.handle = None;
                record.error = None;
                record.updated_at = Utc::now();
                save(deps, &work, &record).await?;
                release(deps, provider.as_ref(), &work.name, scene.index).await;
                return Ok(out(provider.name(), cache_hit));
            }
            Ok(Advance::Wait(wait)) => {
                record.status = ClipStatus::Generating;
                record.updated_at = Utc::now();
                save(deps, &work, &record).await?;
                return Ok(waiting(out(provider.name(), false), wait));
            }
            Err(e) => {
                let retry_here = e.class() == ErrorClass::Retryable
                    && record.attempts < deps.clip_limits.attempts_per_provider;
                let reason = public_reason(&e.to_string());
                // A provider that says when to come back is asked again then, through the same
                // wait as a poll: the state machine's Retry could not honour the hint.
                if let StepError::Provider(ProviderError::Throttled {
                    retry_after: Some(after),
                }) = &e
                    && retry_here
                {
                    record.status = ClipStatus::Generating;
                    record.error = Some(reason);
                    record.updated_at = Utc::now();
                    save(deps, &work, &record).await?;
                    return Ok(waiting(out(provider.name(), false), *after));
                }
                if retry_here || at + 1 == deps.providers.0.len() {
                    let status = if retry_here {
                        ClipStatus::Generating
                    } else {
                        release(deps, provider.as_ref(), &work.name, scene.index).await;
                        ClipStatus::Failed
                    };
                    record.status = status;
                    record.error = Some(reason);
                    record.updated_at = Utc::now();
                    save(deps, &work, &record).await?;
                    return Err(e);
                }
                // This provider is done with: the next one in the chain makes the clip.
                if let Some(handle) = record.handle.take() {
                    let _ = provider.cancel(&handle).await;
                }
                release(deps, provider.as_ref(), &work.name, scene.index).await;
                at += 1;
                let note = format!("{}: {reason}", provider.name());
                record.fallback = Some(match record.fallback.take() {
                    Some(earlier) => format!("{earlier}; {note}"),
                    None => note,
                });
                record.provider = deps.providers.0[at].name().to_owned();
                record.attempts = 0;
                record.polls = 0;
                record.error = None;
            }
        }
    }
}

enum Advance {
    Done { cache_hit: bool },
    Wait(Duration),
}

/// One provider's turn: the cache, or a poll of the running call, or (with a free slot) a
/// submit. Errors leave `record` saying how far it got.
async fn advance(
    deps: &StepDeps,
    work: &Work,
    spec: &ClipSpec,
    provider: &dyn ClipProvider,
    record: &mut ClipRecord,
    dir: &Path,
) -> Result<Advance, StepError> {
    let cache = cache_key(provider, spec);
    if deps.blobs.head(&cache).await?.is_some() {
        return Ok(Advance::Done { cache_hit: true });
    }
    let raw = dir.join("provider.out");
    let progress = match record.handle.clone() {
        Some(handle) => {
            if record.polls >= deps.clip_limits.max_polls {
                return Err(ProviderError::Unavailable(format!(
                    "no result after {} polls",
                    record.polls
                ))
                .into());
            }
            record.polls += 1;
            let polled = provider.poll(&handle, &raw).await;
            if polled.is_err() {
                record.attempts += 1;
            }
            polled
        }
        None => {
            if !acquire(deps, provider, &work.name, spec.scene_index).await? {
                return Ok(Advance::Wait(deps.clip_limits.slot_wait));
            }
            record.attempts += 1;
            let mut spec = spec.clone();
            if provider.wants_first_frame() && spec.first_frame.is_none() {
                let (frame, cost) = first_frame(deps, work, &spec, dir).await?;
                spec.first_frame = Some(frame);
                record.cost = add_cost(record.cost.take(), cost);
            }
            provider
                .submit(&spec, &identity(&work.name, spec.scene_index), &raw)
                .await
        }
    };
    match progress? {
        ClipProgress::Pending { handle, poll_after } => {
            record.handle = Some(handle);
            Ok(Advance::Wait(poll_after))
        }
        ClipProgress::Ready { media, cost } => {
            record.handle = None;
            record.bytes += tokio::fs::metadata(&raw)
                .await
                .map(|m| m.len())
                .unwrap_or(0);
            let clip = fit(deps, spec, media, &raw, dir).await?;
            deps.blobs.put_file(&cache, &clip, "video/mp4").await?;
            record.cost = add_cost(record.cost.take(), cost);
            Ok(Advance::Done { cache_hit: false })
        }
    }
}

/// A first frame for an image-to-video model: a still of the scene from the chain's first still
/// provider that makes one, kept with the job (so a retry reuses it) and handed over as a
/// presigned `https` URL, or as a `data:` URI where the store has no such URLs (one machine).
/// The clip's cache key leaves it out: it follows from the spec and the chain.
async fn first_frame(
    deps: &StepDeps,
    work: &Work,
    spec: &ClipSpec,
    dir: &Path,
) -> Result<(String, Option<ProviderCost>), StepError> {
    // A replaced scene's still is its composition's own: the job's is of the old prompt.
    let name = match &work.composition {
        None => format!("first_frame_{:03}", spec.scene_index),
        Some(c) => format!("{c}_first_frame_{:03}", spec.scene_index),
    };
    let key = keys::temp(&work.job_id, &name);
    let mut cost = None;
    if deps.blobs.head(&key).await?.is_none() {
        let still = dir.join("first_frame");
        let mut made = false;
        let mut reasons = Vec::new();
        for maker in deps.providers.0.iter().filter(|p| p.makes_stills()) {
            let id = format!("{}-first-frame", identity(&work.name, spec.scene_index));
            match maker.submit(spec, &id, &still).await {
                Ok(ClipProgress::Ready {
                    media: ClipMedia::Image,
                    cost: c,
                }) => {
                    cost = c;
                    made = true;
                    break;
                }
                Ok(_) => reasons.push(format!("{} did not return a still", maker.name())),
                Err(e) => reasons.push(format!(
                    "{}: {}",
                    maker.name(),
                    public_reason(&e.to_string())
                )),
            }
        }
        if !made {
            let why = if reasons.is_empty() {
                "no provider of the chain makes stills (add bedrock-canvas or openai-image)".into()
            } else {
                reasons.join("; ")
            };
            return Err(
                ProviderError::Rejected(format!("the model needs a first frame: {why}")).into(),
            );
        }
        let mime = image_mime(&tokio::fs::read(&still).await?);
        deps.blobs.put_file(&key, &still, mime).await?;
    }
    let url = deps
        .blobs
        .presign_get(&key, Duration::from_secs(3600))
        .await?;
    if url.starts_with("https://") {
        return Ok((url, cost));
    }
    use base64::Engine;
    let bytes = deps.blobs.get_bytes(&key).await?;
    let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
    Ok((format!("data:{};base64,{data}", image_mime(&bytes)), cost))
}

/// How wide a clip's tile picture is: enough for a tile on a phone or a desktop grid, a few KB.
pub const TILE_PICTURE_WIDTH: u32 = 320;

/// A tile picture's size for a `width`x`height` clip: [`TILE_PICTURE_WIDTH`] wide (never wider
/// than the clip), the clip's shape, an even height.
pub fn tile_picture_size(width: u32, height: u32) -> (u32, u32) {
    let w = TILE_PICTURE_WIDTH.min(width).max(2) & !1;
    let h = ((f64::from(w) * f64::from(height) / f64::from(width.max(1)) / 2.0).round() as u32 * 2)
        .max(2);
    (w, h)
}

/// Takes the finished clip's middle frame as a small JPEG beside it, and returns its key. Best
/// effort: a tile without a picture is no reason to fail or redo a clip that was made (and
/// paid for), so a failure is logged and the clip goes on without one.
async fn tile_picture(
    deps: &StepDeps,
    spec: &ClipSpec,
    clip_key: &str,
    picture_key: String,
    dir: &Path,
) -> Option<String> {
    let local = dir.join("tile.mp4");
    let picture = dir.join("tile.jpg");
    let middle = f64::from(spec.frames) / f64::from(spec.fps.max(1)) / 2.0;
    let size = tile_picture_size(spec.width, spec.height);
    let made = async {
        deps.blobs.get_to_file(clip_key, &local).await?;
        deps.media
            .still_frame(&local, middle, size, &picture)
            .await?;
        deps.blobs
            .put_file(&picture_key, &picture, "image/jpeg")
            .await?;
        Ok::<_, StepError>(())
    }
    .await;
    let _ = tokio::fs::remove_file(&local).await;
    match made {
        Ok(()) => Some(picture_key),
        Err(e) => {
            tracing::warn!(error = %public_reason(&e.to_string()), scene = spec.scene_index, "no tile picture for the clip");
            None
        }
    }
}

fn image_mime(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        "image/webp"
    } else {
        "image/png"
    }
}

/// Makes what a provider returned into the scene's clip: a still gets its Ken Burns move, a video
/// of another size, rate or length is fitted; a video that already matches is kept as it is.
/// Only media that probes as video may enter the cache: a bad clip must not be reused.
async fn fit(
    deps: &StepDeps,
    spec: &ClipSpec,
    media: ClipMedia,
    raw: &Path,
    dir: &Path,
) -> Result<PathBuf, StepError> {
    let fitted = dir.join("clip.mp4");
    let clip = match media {
        ClipMedia::Image => {
            deps.media
                .animate_still(raw, spec, Motion::for_scene(spec), &fitted)
                .await?;
            fitted
        }
        ClipMedia::Video => {
            let probe = deps.media.probe(raw).await?;
            let video = probe.video().ok_or_else(|| {
                ProviderError::Failed("the provider returned a file without a video stream".into())
            })?;
            let exact = video.width == Some(spec.width)
                && video.height == Some(spec.height)
                && video.frames == Some(spec.frames as u64)
                && video
                    .frame_rate
                    .is_some_and(|f| (f - spec.fps as f64).abs() < 0.01);
            if exact {
                raw.to_path_buf()
            } else {
                deps.media.fit_clip(raw, spec, &fitted).await?;
                fitted
            }
        }
    };
    if deps.media.probe(&clip).await?.video().is_none() {
        return Err(ProviderError::Failed("the clip has no video stream".into()).into());
    }
    Ok(clip)
}

fn add_cost(a: Option<ProviderCost>, b: Option<ProviderCost>) -> Option<ProviderCost> {
    match (a, b) {
        (Some(a), Some(b)) => Some(ProviderCost {
            usd: a.usd + b.usd,
            basis: format!("{}; {}", a.basis, b.basis),
        }),
        (a, b) => a.or(b),
    }
}

async fn acquire(
    deps: &StepDeps,
    provider: &dyn ClipProvider,
    work: &str,
    scene: u32,
) -> Result<bool, StepError> {
    let Some(leases) = &deps.leases else {
        return Ok(true);
    };
    Ok(leases
        .acquire(
            provider.name(),
            &holder(work, scene),
            deps.clip_limits.per_provider,
            deps.clip_limits.lease_ttl,
        )
        .await?)
}

/// Best effort: a lease left behind expires on its own.
async fn release(deps: &StepDeps, provider: &dyn ClipProvider, work: &str, scene: u32) {
    release_named(deps, provider.name(), work, scene).await;
}

async fn release_named(deps: &StepDeps, provider: &str, work: &str, scene: u32) {
    if let Some(leases) = &deps.leases
        && let Err(e) = leases.release(provider, &holder(work, scene)).await
    {
        tracing::warn!(error = %e, provider, "lease release failed");
    }
}

/// Stops every provider call a job still has running (cancel), and frees their slots. The slot
/// is freed by the provider's name even where no client for it is wired (the cancel route builds
/// only the providers that can cancel), so a cancel never leaves a slot held until it expires.
pub async fn cancel_outstanding(deps: &StepDeps, job: &Job) {
    for clip in &job.clips {
        if let Some(provider) = deps.providers.by_name(&clip.provider)
            && let Some(handle) = &clip.handle
            && clip.status != ClipStatus::Done
            && let Err(e) = provider.cancel(handle).await
        {
            tracing::warn!(error = %public_reason(&e.to_string()), provider = provider.name(), "cancel of a provider call failed");
        }
        if !clip.provider.is_empty() {
            release_named(deps, &clip.provider, job.id.as_str(), clip.index).await;
        }
    }
}

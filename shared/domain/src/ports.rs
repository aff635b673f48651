//! The ports: traits in the domain's language that adapters implement (SQLite or DynamoDB for
//! jobs, filesystem or S3 for blobs, procedural or AI providers for clips, ffmpeg for media).
//! Each doc comment states the contract the conformance suite for that port checks.

use crate::asset::{Asset, AssetId};
use crate::error::ErrorClass;
use crate::job::{ClipRecord, Job, JobId};
use crate::media::{
    ClipSpec, CompositionJob, MediaSource, ProbeInfo, RenderJob, Span, ToolVersions, Watermark,
};
use crate::plan::{Plan, PlanError};
use crate::processing::WatermarkSpec;
use crate::request::GenerationRequest;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found: {0}")]
    NotFound(String),
    /// The record changed since it was read (version or state check failed). Re-read and decide.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// A job with the same owner and idempotency key already exists.
    #[error("duplicate idempotency key; existing job {0}")]
    DuplicateIdempotencyKey(JobId),
    #[error("store backend error: {message}")]
    Backend {
        message: String,
        class: ErrorClass,
        #[source]
        source: Option<BoxError>,
    },
}

impl StoreError {
    pub fn backend(
        message: impl Into<String>,
        class: ErrorClass,
        source: impl Into<BoxError>,
    ) -> Self {
        StoreError::Backend {
            message: message.into(),
            class,
            source: Some(source.into()),
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::Backend { class, .. } => *class,
            StoreError::Conflict(_) => ErrorClass::Retryable,
            _ => ErrorClass::Permanent,
        }
    }
}

/// One page of a tenant's jobs, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// Opaque; pass it back to get the next page. `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Job and asset records.
///
/// Contract:
/// - `create` stores a new job at version 1; an existing id is `AlreadyExists`, and an existing
///   (owner, idempotency key) pair is `DuplicateIdempotencyKey` naming the first job. Atomic.
/// - `get` returns the job with its clip records sorted by index, or `None`.
/// - `save` writes the job only if the stored version equals `job.version`, and returns it with
///   the version incremented; otherwise `Conflict` (`NotFound` if absent). So two writers that
///   read the same state can never both move it. Clip records are not written through `save`.
/// - `put_clip` upserts one clip record by index; repeating it is harmless.
/// - `list` pages a tenant's jobs newest first; a bad cursor is `NotFound`-free: it is an error of
///   its own (`Backend` with class permanent) rather than a silent first page.
/// - `put_asset` creates an asset record (`AlreadyExists` on a repeat id); `get_asset` reads it.
/// - `find_idempotent` names the job an (owner, idempotency key) pair made, or `None`.
///
/// A job's compositions are kept beside it, by the same store ([`CompositionStore`]).
#[async_trait]
pub trait JobStore: CompositionStore + Send + Sync {
    async fn create(&self, job: &Job) -> Result<Job, StoreError>;
    async fn get(&self, id: &JobId) -> Result<Option<Job>, StoreError>;
    async fn save(&self, job: &Job) -> Result<Job, StoreError>;
    async fn put_clip(&self, job: &JobId, clip: &ClipRecord) -> Result<(), StoreError>;
    async fn list(
        &self,
        owner: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<JobPage, StoreError>;
    async fn put_asset(&self, asset: &Asset) -> Result<(), StoreError>;
    async fn get_asset(&self, id: &AssetId) -> Result<Option<Asset>, StoreError>;
    async fn find_idempotent(&self, owner: &str, key: &str) -> Result<Option<JobId>, StoreError>;
}

/// A job's compositions ([`crate::composition::Composition`]), kept beside the job.
///
/// Contract:
/// - `put_composition` upserts one composition by (job, id); repeating it is harmless. The job
///   must exist (`NotFound` otherwise), and the composition's `job_id` names it. A composition
///   naming no job (a timeline render) is upserted by its id alone, beside no job.
/// - `get_timeline` returns the composition of no job with that id, or `None` (also when the id
///   is a job's version: those are read through their job).
/// - `get_composition` returns the composition of that job with that id, or `None` (also when
///   the id belongs to another job).
/// - `compositions` returns every composition of a job, oldest first (by `created_at`, then id),
///   each with every field as written; a job with none gives an empty list.
#[async_trait]
pub trait CompositionStore: Send + Sync {
    async fn put_composition(
        &self,
        composition: &crate::composition::Composition,
    ) -> Result<(), StoreError>;
    async fn get_composition(
        &self,
        job: &JobId,
        id: &crate::composition::CompositionId,
    ) -> Result<Option<crate::composition::Composition>, StoreError>;
    async fn compositions(
        &self,
        job: &JobId,
    ) -> Result<Vec<crate::composition::Composition>, StoreError>;
    async fn get_timeline(
        &self,
        id: &crate::composition::CompositionId,
    ) -> Result<Option<crate::composition::Composition>, StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("no object at {0}")]
    NotFound(String),
    /// Empty, absolute, or containing `.`/`..`/empty segments or a backslash.
    #[error("invalid key {0:?}")]
    InvalidKey(String),
    #[error("blob backend error: {message}")]
    Backend {
        message: String,
        class: ErrorClass,
        #[source]
        source: Option<BoxError>,
    },
}

impl BlobError {
    pub fn backend(
        message: impl Into<String>,
        class: ErrorClass,
        source: impl Into<BoxError>,
    ) -> Self {
        BlobError::Backend {
            message: message.into(),
            class,
            source: Some(source.into()),
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            BlobError::Backend { class, .. } => *class,
            _ => ErrorClass::Permanent,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobMeta {
    pub key: String,
    pub size_bytes: u64,
    pub content_type: Option<String>,
}

/// A key must be relative, `/`-separated, with no empty, `.` or `..` segments and no backslash,
/// so a key can never leave the store's root on any backend.
pub fn validate_key(key: &str) -> Result<(), BlobError> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key.contains('\\')
        || key.contains('\0')
        || key
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..");
    if bad {
        Err(BlobError::InvalidKey(key.to_owned()))
    } else {
        Ok(())
    }
}

/// Objects under keys (see `keys`).
///
/// Contract:
/// - puts replace whole objects atomically: a reader sees the old or the new object, never a part;
/// - `get_*` of a missing key is `NotFound`; `head` of a missing key is `Ok(None)`;
/// - `copy` is server-side where the backend allows; `delete` of a missing key is `Ok`;
/// - `list` returns every object under a prefix, sorted by key;
/// - `presign_get` gives a URL that fetches the object without credentials for `ttl`;
/// - `media_source` tells the media engine where to read an existing object from, for at least
///   `ttl`: its file where the store is local, else a URL; a missing object is `NotFound`;
/// - every key is checked with [`validate_key`] first.
#[async_trait]
pub trait BlobStore: Send + Sync {
    async fn put_file(&self, key: &str, src: &Path, content_type: &str) -> Result<(), BlobError>;
    async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), BlobError>;
    async fn get_to_file(&self, key: &str, dest: &Path) -> Result<(), BlobError>;
    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, BlobError>;
    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, BlobError>;
    async fn copy(&self, from: &str, to: &str) -> Result<(), BlobError>;
    /// Restarts `key`'s age for the store's expiry rules, its bytes and content type kept: a
    /// composition made late renews the clips it plays, so `generations/`'s 90-day rule never
    /// expires what a recorded composition refers to. A missing key is `NotFound`. Stores that
    /// cannot write (or do not keep objects) refuse.
    async fn renew(&self, key: &str) -> Result<(), BlobError> {
        Err(BlobError::Backend {
            message: format!("renew {key:?}: this store cannot renew objects"),
            class: crate::error::ErrorClass::Permanent,
            source: None,
        })
    }
    async fn delete(&self, key: &str) -> Result<(), BlobError>;
    async fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError>;
    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<String, BlobError>;
    async fn media_source(&self, key: &str, ttl: Duration) -> Result<MediaSource, BlobError>;
}

#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    #[error("orchestrator error: {message}")]
    Backend {
        message: String,
        class: ErrorClass,
        #[source]
        source: Option<BoxError>,
    },
}

/// Runs a job's steps somewhere (Step Functions, or in process).
///
/// Contract: `start` is idempotent per job id (a second start of the same job is `Ok` and starts
/// nothing new); `cancel` stops a running execution and is `Ok` if it already ended.
#[async_trait]
pub trait Orchestrator: Send + Sync {
    async fn start(&self, job: &JobId) -> Result<(), OrchestratorError>;
    async fn cancel(&self, job: &JobId) -> Result<(), OrchestratorError>;
    /// Starts rendering `composition`, already recorded as `rendering`, of the completed `job`
    /// (a recompose): no planning, generation only for the scenes it replaces. Idempotent per
    /// composition id, as `start` is per job. The default refuses, for orchestrators that only
    /// run whole jobs.
    async fn start_composition(
        &self,
        job: &JobId,
        composition: &crate::composition::CompositionId,
    ) -> Result<(), OrchestratorError> {
        Err(OrchestratorError::Backend {
            message: format!("this orchestrator renders no compositions ({composition} of {job})"),
            class: ErrorClass::Permanent,
            source: None,
        })
    }
    /// Starts rendering the timeline render `composition`, already recorded as `rendering` with
    /// its timeline stored: its `generate` clips made through the provider chain and clip cache,
    /// then the one pass, by its route. Idempotent per composition id. The default refuses, for
    /// orchestrators that render timelines in process (or not at all).
    async fn start_timeline(
        &self,
        composition: &crate::composition::CompositionId,
    ) -> Result<(), OrchestratorError> {
        Err(OrchestratorError::Backend {
            message: format!("this orchestrator renders no timelines ({composition})"),
            class: ErrorClass::Permanent,
            source: None,
        })
    }
}

/// Turns a request into scenes. Contract: the plan has `clip_count` scenes whose frames, minus
/// the overlaps, add up to exactly the requested duration.
#[async_trait]
pub trait Planner: Send + Sync {
    fn name(&self) -> &str;
    async fn plan(&self, request: &GenerationRequest) -> Result<Plan, PlanError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider asked us to slow down; retry after the hint if any.
    #[error("provider throttled the request")]
    Throttled { retry_after: Option<Duration> },
    /// A passing failure (timeout, 5xx): retrying may succeed.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused this input (content policy, bad prompt): retrying will not help.
    #[error("provider rejected the scene: {0}")]
    Rejected(String),
    #[error("provider failed: {0}")]
    Failed(String),
    #[error(transparent)]
    Media(#[from] MediaError),
}

impl ProviderError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ProviderError::Throttled { .. } | ProviderError::Unavailable(_) => {
                ErrorClass::Retryable
            }
            ProviderError::Media(m) => m.class(),
            _ => ErrorClass::Permanent,
        }
    }
}

/// What a provider left at `dest` once a clip is ready: a video, or a still that the pipeline
/// turns into a clip with motion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClipMedia {
    Video,
    Image,
}

/// What one provider call cost, as the provider reported it or as the price table says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderCost {
    pub usd: f64,
    /// How the figure was reached, for example `predict_time 12.5 s at $0.0005/s`.
    pub basis: String,
}

/// Where a clip stands after a submit or a poll.
#[derive(Debug, Clone, PartialEq)]
pub enum ClipProgress {
    /// `dest` holds the media.
    Ready {
        media: ClipMedia,
        cost: Option<ProviderCost>,
    },
    /// The provider is still working: poll `handle` again after `poll_after`. The handle is the
    /// provider's own id (a prediction id, an invocation ARN), small and safe to store.
    Pending {
        handle: String,
        poll_after: Duration,
    },
}

/// Makes one scene's clip.
///
/// Contract:
/// - `submit` starts the clip and either finishes it (`Ready`, media at `dest`) or returns a
///   handle to poll; it never blocks for minutes. `identity` names the clip across retries: a
///   provider that bills per call uses it so that a resubmission after a lost response finds the
///   call already made instead of paying twice;
/// - `poll` with a handle from `submit` reports `Pending` again, or `Ready` with the media at
///   `dest`; a call that ended badly is `Rejected` (the input) or `Failed` (anything else);
/// - `cancel` stops a pending call and is `Ok` when it already ended;
/// - `cache_identity` covers everything besides the spec that changes the pixels (model,
///   version, input mapping), so two configurations never share a cached clip;
/// - the composer normalises size, rate and length, so media may be close-but-not-exact.
///
/// Synchronous providers implement `generate` only; the defaults turn it into a submit that is
/// ready at once.
#[async_trait]
pub trait ClipProvider: Send + Sync {
    /// Stable name: recorded on clips and the first part of the cache key.
    fn name(&self) -> &str;

    fn cache_identity(&self) -> String {
        self.name().to_owned()
    }

    /// An image-to-video model: the spec must carry `first_frame`. The pipeline asks a still
    /// provider of the chain for one.
    fn wants_first_frame(&self) -> bool {
        false
    }

    /// Makes stills (`ClipMedia::Image`) synchronously, so it can draw a first frame.
    fn makes_stills(&self) -> bool {
        false
    }

    /// What one call for `spec` would cost, before making it (a dry run's estimate); `None`
    /// when the provider publishes no price.
    fn estimate_usd(&self, spec: &ClipSpec) -> Option<f64> {
        let _ = spec;
        None
    }

    async fn generate(&self, spec: &ClipSpec, dest: &Path) -> Result<(), ProviderError> {
        let _ = (spec, dest);
        Err(ProviderError::Failed(format!(
            "{} has no synchronous generate",
            self.name()
        )))
    }

    async fn submit(
        &self,
        spec: &ClipSpec,
        identity: &str,
        dest: &Path,
    ) -> Result<ClipProgress, ProviderError> {
        let _ = identity;
        self.generate(spec, dest).await?;
        Ok(ClipProgress::Ready {
            media: ClipMedia::Video,
            cost: None,
        })
    }

    async fn poll(&self, handle: &str, dest: &Path) -> Result<ClipProgress, ProviderError> {
        let _ = dest;
        Err(ProviderError::Failed(format!(
            "{} does not poll (handle {handle})",
            self.name()
        )))
    }

    async fn cancel(&self, handle: &str) -> Result<(), ProviderError> {
        let _ = handle;
        Ok(())
    }
}

/// Speaks one line of narration.
///
/// Contract:
/// - `speak` writes the whole line's audio at `dest` in the returned format and returns at once
///   (speech for a scene takes seconds, so no narrator is polled);
/// - `words`, when not empty, covers the text's words in order, each with byte offsets into
///   `spec.text` on character boundaries and times that never go backwards;
/// - errors classify as clips' do: `Throttled`/`Unavailable` are worth retrying, `Rejected` is
///   the text or voice refused;
/// - `cache_identity` covers everything besides the spec that changes the sound (engine build,
///   model, sample rate), so two configurations never share cached speech.
#[async_trait]
pub trait Narrator: Send + Sync {
    /// Stable name: recorded with the job and the first part of the cache key.
    fn name(&self) -> &str;

    fn cache_identity(&self) -> String {
        self.name().to_owned()
    }

    async fn speak(
        &self,
        spec: &crate::narration::SpeechSpec,
        dest: &Path,
    ) -> Result<crate::narration::Speech, ProviderError>;

    /// The voice names this narrator accepts, to refuse an unknown one before anything is
    /// spoken; `None` when it cannot list them (the name is then only checked for form).
    async fn voices(&self) -> Result<Option<Vec<String>>, ProviderError> {
        Ok(None)
    }
}

/// Leases that bound how many calls run at once against one provider, across every job and
/// process sharing the store.
///
/// Contract:
/// - `acquire` grants a lease on `pool` to `holder` when fewer than `limit` unexpired leases are
///   held, and answers `false` otherwise; a holder that already holds one is granted again (its
///   expiry renewed), so a retried step never takes a second slot;
/// - leases expire after `ttl`, so a crashed holder frees its slot;
/// - `release` frees the holder's lease and is `Ok` when it holds none;
/// - of many concurrent acquirers racing for `k` free slots exactly `k` win;
/// - an empty pool or holder name is refused ([`check_lease_names`]).
#[async_trait]
pub trait LeaseStore: Send + Sync {
    async fn acquire(
        &self,
        pool: &str,
        holder: &str,
        limit: u32,
        ttl: Duration,
    ) -> Result<bool, StoreError>;
    async fn release(&self, pool: &str, holder: &str) -> Result<(), StoreError>;
}

/// A DynamoDB map key must not be empty, and an empty pool is always a caller's bug: every
/// adapter refuses both, so they stay alike.
pub fn check_lease_names(pool: &str, holder: &str) -> Result<(), StoreError> {
    if pool.is_empty() || holder.is_empty() {
        return Err(StoreError::Backend {
            message: format!(
                "lease pool and holder must not be empty (pool {pool:?}, holder {holder:?})"
            ),
            class: ErrorClass::Permanent,
            source: None,
        });
    }
    Ok(())
}

/// Per-tenant quota counters ([`crate::quota`]): jobs running at once, and output charged per
/// UTC day.
///
/// Contract:
/// - `acquire` records `claim` and counts it (one active job, and its seconds on its day) when
///   every limit that is set still holds: fewer than `concurrent_jobs` active claims, and the
///   day's charge plus the claim's seconds at most `daily_output_seconds`. Otherwise it answers
///   `Refused`, naming the quota (concurrency is checked first) with the usage it saw, and
///   counts nothing. Atomic: of many concurrent acquirers for `k` free slots exactly `k` win,
///   and a budget is never overspent by racers;
/// - with no limit set at all, `acquire` grants and records nothing (nothing to release later);
/// - a second `acquire` of a job already claimed is `Granted` and counts nothing more;
/// - `release` ends a job's claim: its slot is freed, and with `refund` its seconds go back to
///   the day it was charged to. Releasing a job that holds no claim (never claimed, or released
///   already) is `Ok` and changes nothing, so duplicate deliveries never free or refund twice;
/// - `usage` reads a tenant's active jobs and one day's charge; `active` lists the active
///   claims (for a reconciler that frees claims whose job ended without releasing);
/// - tenants and days are apart; names are opaque text; an empty tenant or job is refused
///   (`Backend`, permanent).
#[async_trait]
pub trait QuotaStore: Send + Sync {
    async fn acquire(
        &self,
        claim: &crate::quota::QuotaClaim,
        limits: &crate::quota::QuotaLimits,
    ) -> Result<crate::quota::Admission, StoreError>;
    async fn release(&self, tenant: &str, job: &str, refund: bool) -> Result<(), StoreError>;
    async fn usage(
        &self,
        tenant: &str,
        day: chrono::NaiveDate,
    ) -> Result<crate::quota::QuotaUsage, StoreError>;
    async fn active(&self, tenant: &str) -> Result<Vec<crate::quota::ActiveClaim>, StoreError>;
}

/// [`crate::quota::check_claim_names`] as a store error.
pub fn check_quota_names(tenant: &str, job: &str) -> Result<(), StoreError> {
    crate::quota::check_claim_names(tenant, job).map_err(|message| StoreError::Backend {
        message,
        class: ErrorClass::Permanent,
        source: None,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The input is not usable media (not a video, no audio where audio is required, corrupt).
    #[error("invalid media: {0}")]
    InvalidInput(String),
    #[error("{tool} not found: {hint}")]
    ToolMissing { tool: String, hint: String },
    /// The tool ran and failed; `stderr_tail` holds its last lines.
    #[error("{tool} failed ({status}): {stderr_tail}")]
    ToolFailed {
        tool: String,
        status: String,
        stderr_tail: String,
    },
    #[error("media i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl MediaError {
    pub fn class(&self) -> ErrorClass {
        match self {
            // Disk-full or a killed process may pass; a missing tool or a bad input will not.
            MediaError::Io(_) | MediaError::ToolFailed { .. } => ErrorClass::Retryable,
            _ => ErrorClass::Permanent,
        }
    }
}

/// ffmpeg and ffprobe, in the domain's terms.
///
/// Contract: `probe` never modifies its input and reports `InvalidInput` for anything that is not
/// media; `compose` writes `final_path` (H.264 yuv420p, AAC, faststart, exactly the timeline's
/// frames) and `thumbnail_path`, reporting progress in 0..=1 as it goes.
#[async_trait]
pub trait MediaEngine: Send + Sync {
    async fn probe(&self, path: &Path) -> Result<ProbeInfo, MediaError>;
    async fn compose(
        &self,
        job: &CompositionJob,
        progress: &(dyn Fn(f64) + Send + Sync),
    ) -> Result<(), MediaError>;
    async fn versions(&self) -> Result<ToolVersions, MediaError>;
    /// The EBU R128 loudness of `path`'s first audio stream, with its gating blocks: measured
    /// once where the audio is made or first seen, and kept with it, so a compose only
    /// computes gains. An engine without the means to listen says so.
    async fn loudness(&self, path: &Path) -> Result<crate::loudness::Loudness, MediaError> {
        Err(MediaError::ToolMissing {
            tool: "loudness".into(),
            hint: format!(
                "this media engine cannot measure the loudness of {}",
                path.display()
            ),
        })
    }
    /// Turns a still (PNG, JPEG, WebP) into `spec`'s clip: exactly `spec.frames` frames at its
    /// size and rate, with a slow Ken Burns move ([`crate::media::Motion`]); the still is
    /// scaled to cover the frame first, whatever its own shape.
    async fn animate_still(
        &self,
        image: &Path,
        spec: &ClipSpec,
        motion: crate::media::Motion,
        output: &Path,
    ) -> Result<(), MediaError>;
    /// Fits a provider's video to `spec`: exactly `spec.frames` frames at its rate (a short
    /// clip loops, a long one is cut), and its size, blur-padded where the shapes differ (a
    /// 16:9 clip in a 9:16 frame sits sharp in the middle of a blurred, zoomed copy of itself).
    /// Audio is dropped: the composer lays its own.
    async fn fit_clip(
        &self,
        input: &Path,
        spec: &ClipSpec,
        output: &Path,
    ) -> Result<(), MediaError>;

    /// Whether [`Self::render_edit`] works here (the stack's API functions hold no ffmpeg).
    fn renders_edits(&self) -> bool {
        false
    }

    /// Renders a timeline document in one pass (see [`crate::edit`]).
    async fn render_edit(
        &self,
        job: &crate::edit::EditJob,
        progress: &(dyn Fn(f64) + Send + Sync),
    ) -> Result<(), MediaError> {
        let _ = (job, progress);
        Err(MediaError::InvalidInput(
            "this media engine cannot render timeline documents".into(),
        ))
    }

    /// Writes one frame of `input`, taken `at_seconds` in, as a JPEG of exactly `size`: a clip's
    /// tile picture. An engine without the means to decode says so.
    async fn still_frame(
        &self,
        input: &Path,
        at_seconds: f64,
        size: (u32, u32),
        output: &Path,
    ) -> Result<(), MediaError> {
        let _ = (at_seconds, size, output);
        Err(MediaError::ToolMissing {
            tool: "still_frame".into(),
            hint: format!(
                "this media engine cannot take a frame of {}",
                input.display()
            ),
        })
    }
}

/// A URL a client can upload one object to, and the headers it must send with it: they are part
/// of the signature, so leaving one out makes the store refuse the upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedUpload {
    pub url: String,
    pub headers: Vec<(String, String)>,
}

/// Mints URLs a client can upload one object to directly (S3 presigned PUT). Separate from
/// [`BlobStore`] because only a remote store can offer it: on one machine the CLI ingests files
/// itself.
///
/// Contract:
/// - `presign_put`'s URL accepts exactly one PUT of `content_type` and exactly `size_bytes`
///   bytes to `key`, with `headers`, until `ttl` passes; `headers` holds the content type, the
///   length and nothing the client need not send (no tracing headers);
/// - a multipart upload is created once per object (`create_multipart` returns the store's
///   upload id), each part gets its own URL bound to its length (`presign_part`), `list_parts`
///   reports the parts the store holds, in number order, `complete_multipart` joins them and
///   `abort_multipart` drops them (`Ok` when the upload is already gone).
#[async_trait]
pub trait UploadSigner: Send + Sync {
    async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size_bytes: u64,
        ttl: Duration,
    ) -> Result<SignedUpload, BlobError>;

    async fn create_multipart(&self, key: &str, content_type: &str) -> Result<String, BlobError> {
        let _ = content_type;
        Err(multipart_unsupported(key))
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        size_bytes: u64,
        ttl: Duration,
    ) -> Result<SignedUpload, BlobError> {
        let _ = (upload_id, part_number, size_bytes, ttl);
        Err(multipart_unsupported(key))
    }

    async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<crate::upload::UploadedPart>, BlobError> {
        let _ = upload_id;
        Err(multipart_unsupported(key))
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[crate::upload::UploadedPart],
    ) -> Result<(), BlobError> {
        let _ = (upload_id, parts);
        Err(multipart_unsupported(key))
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), BlobError> {
        let _ = upload_id;
        Err(multipart_unsupported(key))
    }
}

fn multipart_unsupported(key: &str) -> BlobError {
    BlobError::Backend {
        message: format!("this store offers no multipart uploads (for {key:?})"),
        class: ErrorClass::Permanent,
        source: None,
    }
}

/// Announced raw uploads ([`crate::upload::UploadRecord`]), one per object key.
///
/// Contract: `save_upload` writes only if the stored version equals `upload.version` (0: none
/// yet) and returns the record one version higher, else `Conflict`; `get_upload` returns the
/// last record saved, or `None`.
#[async_trait]
pub trait UploadStore: Send + Sync {
    async fn save_upload(
        &self,
        upload: &crate::upload::UploadRecord,
    ) -> Result<crate::upload::UploadRecord, StoreError>;
    async fn get_upload(
        &self,
        id: &crate::upload::UploadId,
    ) -> Result<Option<crate::upload::UploadRecord>, StoreError>;
}

/// One page of a tenant's processing records, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessPage {
    pub jobs: Vec<crate::processing::ProcessJob>,
    /// Opaque; pass it back for the next page. `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Starts a processing execution of an uploaded object (Step Functions in AWS).
///
/// Contract: idempotent per `name`: starting the same name with the same source again starts
/// nothing new and is `Ok`.
#[async_trait]
pub trait ProcessStarter: Send + Sync {
    async fn start_processing(
        &self,
        source: &crate::processing::SourceRef,
        name: &str,
    ) -> Result<(), OrchestratorError>;
}

/// Processing records, one per source write ([`crate::processing::SourceRef::id`]).
///
/// Contract:
/// - `save` writes the record only if the stored version still equals `job.version` (0: no
///   record yet) and returns it as stored, its version one higher; otherwise `Conflict`, and
///   nothing is written. Of several writers racing from one version exactly one wins;
/// - a re-run of the same write replaces its record, it never adds a second;
/// - `get` returns the last record saved, or `None`;
/// - `list_process` pages the records of one tenant (the `raw/{client}/` segment of their key)
///   newest first by creation; a cursor it did not issue for this tenant is a permanent
///   `Backend` error, never a silent first page.
#[async_trait]
pub trait ProcessStore: Send + Sync {
    async fn list_process(
        &self,
        owner: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<ProcessPage, StoreError>;
    async fn save_process(
        &self,
        job: &crate::processing::ProcessJob,
    ) -> Result<crate::processing::ProcessJob, StoreError>;
    async fn get_process(
        &self,
        id: &str,
    ) -> Result<Option<crate::processing::ProcessJob>, StoreError>;
}

/// Tenants' webhook signing secrets ([`crate::webhook::TenantSecrets`]), one record per tenant.
///
/// Contract: `save_secrets` writes only if the stored version equals `secrets.version` (0: none
/// yet) and returns the record one version higher, else `Conflict`, writing nothing; of several
/// writers racing from one version exactly one wins. `get_secrets` returns the last record
/// saved, or `None`. Tenants are apart; an empty tenant is refused (`Backend`, permanent).
#[async_trait]
pub trait WebhookSecretStore: Send + Sync {
    async fn get_secrets(
        &self,
        tenant: &str,
    ) -> Result<Option<crate::webhook::TenantSecrets>, StoreError>;
    async fn save_secrets(
        &self,
        secrets: &crate::webhook::TenantSecrets,
    ) -> Result<crate::webhook::TenantSecrets, StoreError>;
}

/// Every attempt to deliver a webhook ([`crate::webhook::DeliveryAttempt`]).
///
/// Contract: `record_attempt` keeps the attempt under its job (`kind`, `job_id`); recording the
/// same attempt id again replaces it, so a repeat is harmless. `attempts` returns every attempt
/// of one job, oldest first (by `attempted_at`, then id), with every field as recorded; a job
/// with none gives an empty list. Generation and processing jobs are apart even under the same
/// id; an empty job id is refused (`Backend`, permanent).
#[async_trait]
pub trait DeliveryLog: Send + Sync {
    async fn record_attempt(
        &self,
        attempt: &crate::webhook::DeliveryAttempt,
    ) -> Result<(), StoreError>;
    async fn attempts(
        &self,
        kind: crate::webhook::JobKind,
        job_id: &str,
    ) -> Result<Vec<crate::webhook::DeliveryAttempt>, StoreError>;
}

/// Batches of generation requests ([`crate::batch::Batch`]), one record per batch.
///
/// Contract: `put_batch` writes a new batch whole (every item, every field); an id already
/// stored is `AlreadyExists`, writing nothing, so a batch is never half replaced. `get_batch`
/// returns the batch as written, items in their order, or `None`. The store does not judge
/// owners: callers compare `owner` (another tenant's batch reads as absent).
#[async_trait]
pub trait BatchStore: Send + Sync {
    async fn put_batch(&self, batch: &crate::batch::Batch) -> Result<(), StoreError>;
    async fn get_batch(
        &self,
        id: &crate::batch::BatchId,
    ) -> Result<Option<crate::batch::Batch>, StoreError>;
}

/// An empty tenant or job id names nothing: every adapter refuses it alike.
pub fn check_webhook_name(what: &str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() {
        return Err(StoreError::Backend {
            message: format!("webhook {what} must not be empty"),
            class: ErrorClass::Permanent,
            source: None,
        });
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The receiver could not be reached or answered 5xx/429: a retry may succeed.
    #[error("notification not delivered: {0}")]
    Unavailable(String),
    /// The receiver refused the message (4xx): retrying will not help.
    #[error("notification refused: {0}")]
    Refused(String),
}

/// Tells someone a source finished processing, either way.
///
/// Contract: `notify` delivers the event at least once or returns an error; delivering the same
/// event twice is allowed (receivers de-duplicate on `source_id` and `status`).
#[async_trait]
pub trait Notifier: Send + Sync {
    async fn notify(&self, event: &crate::processing::ProcessEvent) -> Result<(), NotifyError>;
}

/// What upload processing needs from the media engine: probing a source where it lies, the
/// one-decode render of every rendition (whole or one segment), the audio encoded once, the
/// stream-copy join of segment renders, and a thumbnail.
///
/// Contract:
/// - `probe_source` never modifies its input; anything that is not media is `InvalidInput`;
/// - no error text names a source's location (a signed URL, a server path): only its key;
/// - `render` writes every target to exactly `job.span.frames` frames (and the thumbnail, when
///   asked), reporting progress in 0..=1 when given a reporter;
/// - `decode_watermark` accepts PNG and JPEG by content and refuses anything else as
///   `InvalidInput`.
#[async_trait]
pub trait RenditionEngine: Send + Sync {
    async fn probe_source(&self, source: &MediaSource) -> Result<ProbeInfo, MediaError>;
    fn decode_watermark(&self, bytes: &[u8], spec: WatermarkSpec) -> Result<Watermark, MediaError>;
    async fn render(
        &self,
        job: &RenderJob<'_>,
        progress: Option<&(dyn Fn(f64) + Send + Sync)>,
    ) -> Result<(), MediaError>;
    async fn encode_audio(
        &self,
        source: &MediaSource,
        span: Span,
        has_audio: bool,
        kbps: u32,
        output: &Path,
    ) -> Result<(), MediaError>;
    async fn concat(
        &self,
        parts: &[std::path::PathBuf],
        audio: &Path,
        seconds: f64,
        output: &Path,
    ) -> Result<(), MediaError>;
    async fn thumbnail(
        &self,
        source: &MediaSource,
        source_seconds: f64,
        size: (u32, u32),
        output: &Path,
    ) -> Result<(), MediaError>;
}

/// One open live-progress connection (a WebSocket) and whose it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveConnection {
    /// The gateway's connection id (API Gateway's `connectionId`).
    pub id: String,
    pub tenant: String,
    pub connected_at: chrono::DateTime<chrono::Utc>,
    /// When the store may forget it (a DynamoDB TTL): API Gateway closes any connection after
    /// two hours, so nothing outlives that by much.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// A connection's subscription to one job, with what it has been told of it so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveSubscription {
    pub connection_id: String,
    pub tenant: String,
    pub job_id: String,
    pub snapshot: crate::events::LiveSnapshot,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Where the live-progress gateway keeps its connections and their subscriptions. Snapshots are
/// saved under a check on the `seq` they were computed from, so two pushers racing on one
/// subscription cannot both tell the same events with different numbers.
#[async_trait]
pub trait LiveStore: Send + Sync {
    async fn put_connection(&self, connection: &LiveConnection) -> Result<(), StoreError>;
    async fn get_connection(&self, id: &str) -> Result<Option<LiveConnection>, StoreError>;
    /// Forgets the connection and every subscription it had; a connection already gone is fine.
    async fn remove_connection(&self, id: &str) -> Result<(), StoreError>;
    /// Creates or replaces the subscription of `connection_id` to `job_id`.
    async fn subscribe(&self, subscription: &LiveSubscription) -> Result<(), StoreError>;
    /// A subscription that does not exist is fine.
    async fn unsubscribe(&self, connection_id: &str, job_id: &str) -> Result<(), StoreError>;
    /// Every subscription to `job_id`, in no particular order.
    async fn subscribers(&self, job_id: &str) -> Result<Vec<LiveSubscription>, StoreError>;
    /// Replaces the subscription's snapshot if the stored one still has `seq == expected_seq`.
    /// `Conflict` when it moved on or the subscription is gone.
    async fn save_snapshot(
        &self,
        connection_id: &str,
        job_id: &str,
        expected_seq: u64,
        snapshot: &crate::events::LiveSnapshot,
    ) -> Result<(), StoreError>;
}

/// Why a live-progress frame could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The connection is closed for good (API Gateway's `GoneException`, HTTP 410).
    #[error("connection {0} is gone")]
    Gone(String),
    #[error("sending to {connection}: {message}")]
    Failed { connection: String, message: String },
}

/// Sends one text frame to one live-progress connection (API Gateway's `PostToConnection`, a
/// local WebSocket).
#[async_trait]
pub trait LiveSender: Send + Sync {
    async fn send(&self, connection_id: &str, text: &str) -> Result<(), SendError>;
}

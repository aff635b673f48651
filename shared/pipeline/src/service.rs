//! The use cases callers drive (the CLI and the HTTP API): submit a generation, read and list a
//! tenant's jobs, cancel, ingest a brand asset from a local file or announce one a client uploads
//! itself. Everything a request refers to is checked before a job exists, so a rejected request
//! leaves nothing behind. A new job must also fit its tenant's quotas ([`vidpipe_domain::quota`]):
//! it claims a concurrency slot and its output minutes before it is recorded, and gives them
//! back when it ends.

use crate::cursor::{CursorKeyError, CursorSeal};
use crate::generation::StepDeps;
use crate::generation::steps::{release_quota, update_job};
use chrono::{DateTime, Utc};
use std::num::NonZeroU64;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use vidpipe_domain::asset::{Asset, AssetId, AssetKind};
use vidpipe_domain::composition::{CompositionId, CompositionStatus};
use vidpipe_domain::error::{FieldError, ValidationErrors};
use vidpipe_domain::job::{Job, JobId, JobStatus};
use vidpipe_domain::media::StreamKind;
use vidpipe_domain::ports::{
    BlobError, JobPage, MediaError, Orchestrator, OrchestratorError, QuotaStore, SignedUpload,
    StoreError, UploadSigner,
};
use vidpipe_domain::quota::{Admission, QuotaClaim, QuotaExceeded, QuotaKind, QuotaLimits};
use vidpipe_domain::{GenerationRequest, GenerationRequestBody, keys, names};

pub const LOGO_MAX_BYTES: u64 = 10 * 1024 * 1024;
pub const MUSIC_MAX_BYTES: u64 = 50 * 1024 * 1024;
/// Timeline images, like logos.
pub const IMAGE_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Videos: 100 MiB, the API's single-PUT upload limit, and a size a function's 512 MB scratch
/// holds twice (the probe's copy and the compose's) beside a render's own files.
pub const VIDEO_MAX_BYTES: u64 = 100 * 1024 * 1024;
/// Longest uploaded video: ten minutes, the longest a composition plays.
pub const VIDEO_MAX_SECONDS: f64 = 600.0;
/// Each side of an uploaded video, in pixels: beyond 4096 (DCI 4K) the one-pass composer's
/// scalers would spend a render's budget on one clip; under 16 nothing recognisable is left.
pub const VIDEO_SIDE_PIXELS: std::ops::RangeInclusive<u32> = 16..=4096;
/// Each side of an uploaded image: a still is fitted once, so it may be larger than a video.
pub const IMAGE_SIDE_PIXELS: std::ops::RangeInclusive<u32> = 1..=8192;
/// How long an upload URL works: an upload is expected to start right after it is asked for.
pub const UPLOAD_TTL: Duration = Duration::from_secs(15 * 60);
/// How old a claim must be before reconciliation may judge it. A claim is made before its job
/// is recorded, so a young claim without a job is a submission in flight, not a leak.
pub const RECONCILE_GRACE: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error("job {0} not found")]
    NotFound(String),
    #[error("job {id} already {status}")]
    AlreadyFinished { id: String, status: JobStatus },
    /// The job is not in a state the request needs (a recompose of a job not completed).
    #[error("{0}")]
    Conflict(String),
    /// The idempotency key already made `existing` from a different request.
    #[error("idempotency key {key:?} was already used with a different request (job {existing})")]
    IdempotencyConflict { key: String, existing: JobId },
    /// An announced asset's content type is not one its kind accepts.
    #[error("{0}")]
    UnsupportedContentType(FieldError),
    /// An announced asset is larger than its kind allows.
    #[error("{0}")]
    TooLarge(FieldError),
    /// The tenant is over one of its quotas; nothing was recorded.
    #[error(transparent)]
    QuotaExceeded(#[from] QuotaExceeded),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Orchestrator(#[from] OrchestratorError),
    #[error(transparent)]
    Step(#[from] crate::error::StepError),
    /// A list cursor that this deployment did not seal for this tenant, or that was altered.
    #[error("invalid list cursor")]
    InvalidCursor,
    /// No cursor could be sealed (no key: the OS gave no randomness).
    #[error(transparent)]
    CursorKey(#[from] CursorKeyError),
}

/// What a submission came to: a new job, or a replay of the one its idempotency key first made.
/// The third outcome, the key reused with a different request, is
/// [`ServiceError::IdempotencyConflict`].
#[derive(Debug)]
pub enum Submitted {
    Created(Job),
    Replayed(Job),
}

impl Submitted {
    pub fn job(&self) -> &Job {
        match self {
            Submitted::Created(job) | Submitted::Replayed(job) => job,
        }
    }

    pub fn is_created(&self) -> bool {
        matches!(self, Submitted::Created(_))
    }
}

/// What a client says about a file it is about to upload itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetAnnouncement {
    pub kind: AssetKind,
    /// As the client sent it: parameters and letter case are tolerated.
    pub content_type: String,
    pub size_bytes: NonZeroU64,
}

/// An announced asset, recorded, and where its file is to be uploaded.
#[derive(Debug, Clone)]
pub struct AnnouncedAsset {
    pub asset: Asset,
    pub upload: SignedUpload,
    /// When `upload` stops working.
    pub expires_at: DateTime<Utc>,
}

pub struct Service {
    pub deps: StepDeps,
    pub orchestrator: Arc<dyn Orchestrator>,
    /// Seals list cursors; `None` only when no random key could be made.
    cursors: Option<CursorSeal>,
    /// Every tenant's limits, counted in `deps.quotas` (unlimited by default).
    pub quota_limits: QuotaLimits,
    /// Where batches of requests are recorded (`crate::batch`); `None` where none are taken.
    pub batches: Option<Arc<dyn vidpipe_domain::ports::BatchStore>>,
    /// The providers and planners a request may choose; by default what `deps` runs with. A
    /// front end whose steps run elsewhere (the stack's API) is told its deployment's.
    pub choices: vidpipe_domain::request::Choices,
}

impl Service {
    /// With list cursors sealed under a random key of this process's own: enough for one
    /// process (the embedded pipeline, tests). A deployment of many instances passes its shared
    /// key with [`Service::with_cursor_seal`].
    pub fn new(deps: StepDeps, orchestrator: Arc<dyn Orchestrator>) -> Self {
        let choices =
            vidpipe_domain::request::Choices::of(deps.providers.names(), deps.planner.name());
        Self {
            choices,
            deps,
            orchestrator,
            cursors: CursorSeal::ephemeral().ok(),
            quota_limits: QuotaLimits::UNLIMITED,
            batches: None,
        }
    }

    /// The same service, offering `choices` to requests (the deployment's, where the steps
    /// run in other processes).
    pub fn with_choices(mut self, choices: vidpipe_domain::request::Choices) -> Self {
        self.choices = choices;
        self
    }

    /// The same service, recording batches of requests in `store`.
    pub fn with_batches(mut self, store: Arc<dyn vidpipe_domain::ports::BatchStore>) -> Self {
        self.batches = Some(store);
        self
    }

    pub fn with_cursor_seal(mut self, seal: CursorSeal) -> Self {
        self.cursors = Some(seal);
        self
    }

    /// The same service, admitting jobs within `limits` (counted only where `deps.quotas` is
    /// set).
    pub fn with_quota_limits(mut self, limits: QuotaLimits) -> Self {
        self.quota_limits = limits;
        self
    }

    /// Validates the body and the assets it names, claims the tenant's quotas, records the job
    /// and starts its execution. An idempotent replay never touches the quotas: it is answered
    /// even when the tenant is at its limit.
    pub async fn submit(
        &self,
        owner: &str,
        body: &GenerationRequestBody,
        idempotency_key: Option<&str>,
    ) -> Result<Submitted, ServiceError> {
        let request = body.validate_with(self.webhook_rules())?;
        self.choices.check(&request)?;
        self.check_assets(owner, &request).await?;
        let job = Job::new(
            owner,
            request,
            idempotency_key.map(str::to_owned),
            Utc::now(),
        );
        // Claimed before the job is recorded, so a refusal leaves no record behind.
        if let Err(refused) = self.claim_quota(&job).await? {
            // The same request repeated with its key is a replay, not a new job.
            if let Some(key) = idempotency_key
                && let Some(existing) = self.deps.jobs.find_idempotent(owner, key).await?
            {
                return self.replay(&job, existing).await;
            }
            return Err(refused.into());
        }
        let job = match self.deps.jobs.create(&job).await {
            Ok(job) => job,
            Err(e) => {
                // Nothing was recorded, so the claim is given back whole.
                self.unclaim(&job).await;
                return match e {
                    StoreError::DuplicateIdempotencyKey(existing) => {
                        self.replay(&job, existing).await
                    }
                    e => Err(e.into()),
                };
            }
        };
        if let Err(e) = self.orchestrator.start(&job.id).await {
            // A job that can never run must not sit in `queued` forever.
            let failed = update_job(&self.deps, &job.id, |j| {
                Ok(Some(j.fail(
                    names::START_FAILED,
                    e.to_string(),
                    Utc::now(),
                )?))
            })
            .await;
            // Released whatever the record says: the job will never run.
            self.unclaim(&job).await;
            failed?;
            return Err(e.into());
        }
        Ok(Submitted::Created(job))
    }

    /// Which `webhook_url`s a request may name: the deployment's rules, public https alone
    /// where webhooks are not wired.
    pub fn webhook_rules(&self) -> vidpipe_domain::webhook::UrlRules {
        self.deps
            .webhooks
            .as_ref()
            .map(|w| w.settings.url_rules)
            .unwrap_or_default()
    }

    /// Claims `job`'s share of its tenant's quotas: `Ok(Err(..))` is a refusal. At the
    /// concurrency limit, claims whose jobs have ended without releasing (a lost release, an
    /// execution stopped by hand) are reconciled first, and the claim is tried once more.
    async fn claim_quota(&self, job: &Job) -> Result<Result<(), QuotaExceeded>, ServiceError> {
        self.claim(
            &job.owner,
            job.id.as_str(),
            u64::from(job.request.duration_seconds),
        )
        .await
    }

    /// Claims one slot and `output_seconds` of the day for the claim named `name` (a job's id,
    /// or a recompose's [`vidpipe_domain::quota::composition_claim`]).
    pub(crate) async fn claim(
        &self,
        owner: &str,
        name: &str,
        output_seconds: u64,
    ) -> Result<Result<(), QuotaExceeded>, ServiceError> {
        let Some(store) = &self.deps.quotas else {
            return Ok(Ok(()));
        };
        let limits = self.quota_limits;
        if limits.is_unlimited() {
            return Ok(Ok(()));
        }
        let now = Utc::now();
        let claim = QuotaClaim::new(owner, name, output_seconds, now);
        let mut admission = store.acquire(&claim, &limits).await?;
        if matches!(
            admission,
            Admission::Refused {
                quota: QuotaKind::ConcurrentJobs,
                ..
            }
        ) && self.reconcile(store.as_ref(), owner, now).await? > 0
        {
            admission = store.acquire(&claim, &limits).await?;
        }
        Ok(match admission {
            Admission::Granted => Ok(()),
            Admission::Refused { quota, usage } => {
                Err(QuotaExceeded::new(quota, &limits, &claim, usage, now))
            }
        })
    }

    /// Releases the claims of `tenant`'s jobs that have ended (or were never recorded) but
    /// still hold a slot, and says how many it freed.
    async fn reconcile(
        &self,
        store: &dyn QuotaStore,
        tenant: &str,
        now: chrono::DateTime<Utc>,
    ) -> Result<usize, ServiceError> {
        let mut freed = 0;
        for claim in store.active(tenant).await? {
            if now - claim.claimed_at < RECONCILE_GRACE {
                continue;
            }
            let refund = if let Some((job, id)) =
                vidpipe_domain::quota::parse_composition_claim(&claim.job)
            {
                let composition = self.deps.jobs.get_composition(&job, &id).await?;
                match composition.filter(|c| c.owner == tenant) {
                    Some(c) if !c.status.is_terminal() => continue,
                    Some(c) => c.status == CompositionStatus::Failed,
                    None => true,
                }
            } else if let Ok(id) = CompositionId::parse(&claim.job) {
                // A timeline render's claim, named by its composition alone.
                match self.deps.jobs.get_timeline(&id).await? {
                    Some(c) if c.owner == tenant && !c.status.is_terminal() => continue,
                    Some(c) if c.owner == tenant => c.status == CompositionStatus::Failed,
                    _ => true,
                }
            } else {
                let job = match JobId::parse(&claim.job) {
                    Ok(id) => self.deps.jobs.get(&id).await?,
                    Err(_) => None,
                };
                match job.filter(|j| j.owner == tenant) {
                    Some(j) if !j.status.is_terminal() => continue,
                    Some(j) => j.status == JobStatus::Failed,
                    // Claimed, then never recorded: nothing ran.
                    None => true,
                }
            };
            tracing::warn!(tenant, job = %claim.job, "releasing a quota claim its job left behind");
            store.release(tenant, &claim.job, refund).await?;
            freed += 1;
        }
        Ok(freed)
    }

    /// Gives back the whole claim of a job that never ran. Logged, never raised: the caller is
    /// already answering with the error that stopped the job.
    async fn unclaim(&self, job: &Job) {
        self.unclaim_named(&job.owner, job.id.as_str()).await;
    }

    /// [`Self::unclaim`] by claim name.
    pub(crate) async fn unclaim_named(&self, owner: &str, name: &str) {
        let Some(store) = &self.deps.quotas else {
            return;
        };
        if self.quota_limits.is_unlimited() {
            return;
        }
        if let Err(e) = store.release(owner, name, true).await {
            tracing::warn!(claim = name, error = %e, "could not release the quota claim of work that never started");
        }
    }

    /// The job `existing` that `job`'s idempotency key first made, if `job` asks for the same.
    async fn replay(&self, job: &Job, existing: JobId) -> Result<Submitted, ServiceError> {
        let earlier = self
            .deps
            .jobs
            .get(&existing)
            .await?
            .ok_or_else(|| ServiceError::NotFound(existing.to_string()))?;
        // Compared as validated requests, so a body that differs only by spelling out a default
        // is still the same request.
        if earlier.request != job.request {
            return Err(ServiceError::IdempotencyConflict {
                key: job.idempotency_key.clone().unwrap_or_default(),
                existing,
            });
        }
        Ok(Submitted::Replayed(earlier))
    }

    async fn check_assets(
        &self,
        owner: &str,
        request: &GenerationRequest,
    ) -> Result<(), ServiceError> {
        let mut errors = Vec::new();
        let wanted = [
            (
                "brand.logo.asset_id",
                request.brand.logo.as_ref().map(|l| &l.asset_id),
                AssetKind::Logo,
            ),
            (
                "brand.music.asset_id",
                request.brand.music.as_ref().map(|m| &m.asset_id),
                AssetKind::Music,
            ),
        ];
        for (field, id, kind) in wanted {
            let Some(id) = id else { continue };
            match self.deps.jobs.get_asset(id).await? {
                // Another tenant's asset is reported exactly like a missing one.
                Some(a) if a.owner == owner && a.kind == kind => {
                    // Assets announced over the API are uploaded by the client afterwards, so
                    // the object itself must be there, non-empty and within the limit.
                    let limit = max_bytes(kind);
                    match self.deps.blobs.head(&a.key).await? {
                        None => errors.push(FieldError::new(
                            field,
                            format!("asset {id} has not been uploaded yet: PUT its file to the upload_url first"),
                        )),
                        Some(m) if m.size_bytes == 0 => {
                            errors.push(FieldError::new(field, format!("asset {id} was uploaded empty")))
                        }
                        Some(m) if m.size_bytes > limit => errors.push(FieldError::new(
                            field,
                            format!("asset {id} is {} bytes; the limit is {limit}", m.size_bytes),
                        )),
                        // The URL was signed for the announced length; a store that did not
                        // enforce it must not let another file through.
                        Some(m) if m.size_bytes != a.size_bytes => errors.push(FieldError::new(
                            field,
                            format!(
                                "asset {id} was announced as {} bytes but {} bytes were uploaded; announce it again with its real size",
                                a.size_bytes, m.size_bytes
                            ),
                        )),
                        Some(_) => {}
                    }
                }
                Some(a) if a.owner == owner => errors.push(FieldError::new(
                    field,
                    format!(
                        "asset {id} is a {} asset, not a {}",
                        a.kind.as_str(),
                        kind.as_str()
                    ),
                )),
                _ => errors.push(FieldError::new(field, format!("no asset {id}"))),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors { errors }.into())
        }
    }

    /// A tenant's job; another tenant's job is reported as missing.
    pub async fn get(&self, owner: &str, id: &JobId) -> Result<Option<Job>, ServiceError> {
        Ok(self.deps.jobs.get(id).await?.filter(|j| j.owner == owner))
    }

    pub async fn list(
        &self,
        owner: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<JobPage, ServiceError> {
        let seal = self
            .cursors
            .as_ref()
            .ok_or(ServiceError::CursorKey(CursorKeyError::NoRandomness))?;
        let inner = cursor
            .map(|c| seal.open(owner, c).ok_or(ServiceError::InvalidCursor))
            .transpose()?;
        let mut page = self
            .deps
            .jobs
            .list(owner, limit.clamp(1, 100), inner.as_deref())
            .await?;
        page.next_cursor = page.next_cursor.map(|c| seal.seal(owner, &c)).transpose()?;
        Ok(page)
    }

    /// Cancels a live job: records `cancelled` first (so every step sees it and stops), then
    /// stops the execution.
    pub async fn cancel(&self, owner: &str, id: &JobId) -> Result<Job, ServiceError> {
        let job = self
            .get(owner, id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(id.to_string()))?;
        if job.status == JobStatus::Cancelled {
            return Ok(job);
        }
        if job.status.is_terminal() {
            return Err(ServiceError::AlreadyFinished {
                id: id.to_string(),
                status: job.status,
            });
        }
        let mut finished = None;
        let job = update_job(&self.deps, id, |j| {
            if j.status.is_terminal() {
                finished = Some(j.status);
                return Ok(None);
            }
            Ok(Some(j.transition(JobStatus::Cancelled, Utc::now())?))
        })
        .await?;
        release_quota(&self.deps, &job).await;
        if let Some(status) = finished.filter(|s| *s != JobStatus::Cancelled) {
            return Err(ServiceError::AlreadyFinished {
                id: id.to_string(),
                status,
            });
        }
        self.orchestrator.cancel(id).await?;
        // After the stop, so no step submits anew behind the cancels; the job re-read so clips
        // submitted since the first read are seen too.
        let current = self.deps.jobs.get(id).await?.unwrap_or_else(|| job.clone());
        crate::generation::cancel_outstanding(&self.deps, &current).await;
        Ok(job)
    }

    /// Checks a local file is the kind of asset it claims to be (by probing its content, not
    /// trusting its name), stores it under `uploads/` and records it. `field` names the input in
    /// errors (a flag, or a body field).
    pub async fn ingest_asset(
        &self,
        owner: &str,
        kind: AssetKind,
        path: &Path,
        field: &str,
    ) -> Result<Asset, ServiceError> {
        let invalid = |rule: String| ServiceError::Invalid(ValidationErrors::single(field, rule));
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        let content_type = kind.content_type_for_extension(ext).ok_or_else(|| {
            invalid(match kind {
                AssetKind::Logo => format!(
                    "must be a PNG or JPEG file (.png, .jpg, .jpeg); got {:?}",
                    path.display().to_string()
                ),
                AssetKind::Music => format!(
                    "must be an MP3, WAV or M4A file (.mp3, .wav, .m4a); got {:?}",
                    path.display().to_string()
                ),
                AssetKind::Image => format!(
                    "must be a PNG or JPEG file (.png, .jpg, .jpeg); got {:?}",
                    path.display().to_string()
                ),
                AssetKind::Video => format!(
                    "must be an MP4, MOV or WebM file (.mp4, .mov, .webm); got {:?}",
                    path.display().to_string()
                ),
            })
        })?;
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
        let limit = max_bytes(kind);
        if meta.len() == 0 {
            return Err(invalid("is an empty file".into()));
        }
        if meta.len() > limit {
            return Err(invalid(format!(
                "is {} bytes; the limit is {limit}",
                meta.len()
            )));
        }
        let probe = match self.deps.media.probe(path).await {
            Ok(p) => p,
            Err(MediaError::InvalidInput(why)) => {
                return Err(invalid(format!(
                    "is not a valid {} file: {why}",
                    kind_noun(kind)
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let (width, height, duration) = asset_content(kind, &probe).map_err(invalid)?;
        let ext = kind.extension_for(content_type).unwrap_or("bin");
        let asset = Asset {
            width,
            height,
            duration_seconds: duration,
            ..new_asset(owner, kind, content_type, ext, meta.len())
        };
        self.deps
            .blobs
            .put_file(&asset.key, path, content_type)
            .await?;
        self.deps.jobs.put_asset(&asset).await?;
        Ok(asset)
    }

    /// Records an asset whose file the client uploads afterwards, straight to the store, through
    /// a URL `uploads` signs. Only what is known before the file exists is checked here (the
    /// content type and announced size against the kind); [`Service::submit`] checks the file.
    pub async fn announce_asset(
        &self,
        owner: &str,
        announced: &AssetAnnouncement,
        uploads: &dyn UploadSigner,
    ) -> Result<AnnouncedAsset, ServiceError> {
        let kind = announced.kind;
        let essence = announced
            .content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        let (content_type, ext) = kind
            .content_types()
            .iter()
            .find(|(ct, _)| ct.eq_ignore_ascii_case(essence))
            .copied()
            .ok_or_else(|| {
                let accepted: Vec<&str> = kind.content_types().iter().map(|(ct, _)| *ct).collect();
                ServiceError::UnsupportedContentType(FieldError::new(
                    "content_type",
                    format!(
                        "must be one of {} for a {} asset (got {})",
                        accepted.join(", "),
                        kind.as_str(),
                        vidpipe_domain::error::echo(&announced.content_type)
                    ),
                ))
            })?;
        let size = announced.size_bytes.get();
        let limit = max_bytes(kind);
        if size > limit {
            return Err(ServiceError::TooLarge(FieldError::new(
                "size_bytes",
                format!(
                    "is {size} bytes; a {} asset may be at most {limit}",
                    kind.as_str()
                ),
            )));
        }
        let asset = new_asset(owner, kind, content_type, ext, size);
        // Taken before signing, so the stated expiry is never later than the URL's own.
        let expires_at = Utc::now() + UPLOAD_TTL;
        // Signed before the record is written: a failed signing then leaves nothing behind.
        let upload = uploads
            .presign_put(&asset.key, content_type, size, UPLOAD_TTL)
            .await?;
        self.deps.jobs.put_asset(&asset).await?;
        Ok(AnnouncedAsset {
            asset,
            upload,
            expires_at,
        })
    }
}

/// A probed asset's width and height (pictures) and length in seconds (music, videos).
pub type AssetFacts = (Option<u32>, Option<u32>, Option<f64>);

/// What a probed file must be to serve as an asset of `kind`: a logo or image is one PNG or JPEG
/// image and nothing else, music has audio of a measurable length, a video has a video stream
/// (not a single picture) of sane size and a measurable length up to [`VIDEO_MAX_SECONDS`]. `Ok` gives the logo's size or the
/// track's length; `Err` is the rule broken, to follow the asset's name ("is not a PNG ...").
/// The CLI's ingest and the generation's plan step both judge by it.
pub fn asset_content(
    kind: AssetKind,
    probe: &vidpipe_domain::media::ProbeInfo,
) -> Result<AssetFacts, String> {
    match kind {
        AssetKind::Logo | AssetKind::Image => {
            let still = probe
                .streams
                .iter()
                .find(|s| {
                    s.kind == StreamKind::Video && matches!(s.codec.as_str(), "png" | "mjpeg")
                })
                .filter(|_| probe.audio().is_none());
            let s = still
                .ok_or_else(|| format!("is not a PNG or JPEG image (found {})", describe(probe)))?;
            if kind == AssetKind::Image {
                sides(s.width, s.height, IMAGE_SIDE_PIXELS)?;
            }
            Ok((s.width, s.height, None))
        }
        AssetKind::Video => {
            // A picture format holds one frame, whatever its codec: not a video.
            let picture = probe.format_name.ends_with("_pipe") || probe.format_name == "image2";
            let v = probe
                .video()
                .filter(|_| !picture)
                .ok_or_else(|| format!("has no video stream (found {})", describe(probe)))?;
            let (w, h) = sides(v.width, v.height, VIDEO_SIDE_PIXELS)?;
            let d = probe
                .duration_seconds
                .or(v.duration_seconds)
                .filter(|d| d.is_finite() && *d > 0.0)
                .ok_or_else(|| "has no measurable duration".to_owned())?;
            if d > VIDEO_MAX_SECONDS {
                return Err(format!(
                    "is {d:.1} s long; a video asset may be at most {VIDEO_MAX_SECONDS} s"
                ));
            }
            Ok((Some(w), Some(h), Some(d)))
        }
        AssetKind::Music => {
            let a = probe
                .audio()
                .ok_or_else(|| format!("has no audio (found {})", describe(probe)))?;
            let duration = probe
                .duration_seconds
                .or(a.duration_seconds)
                .filter(|d| *d > 0.0);
            let d = duration.ok_or_else(|| "has no measurable duration".to_owned())?;
            Ok((None, None, Some(d)))
        }
    }
}

/// A picture's width and height, both known and within `range`.
fn sides(
    width: Option<u32>,
    height: Option<u32>,
    range: std::ops::RangeInclusive<u32>,
) -> Result<(u32, u32), String> {
    match (width, height) {
        (Some(w), Some(h)) if range.contains(&w) && range.contains(&h) => Ok((w, h)),
        (Some(w), Some(h)) => Err(format!(
            "is {w}x{h}; each side must be {} to {} pixels",
            range.start(),
            range.end()
        )),
        _ => Err("has no measurable width and height".to_owned()),
    }
}

/// A fresh asset's record, keyed under `uploads/` by a new id. Only a probed file has dimensions
/// or a duration; the caller adds them.
fn new_asset(
    owner: &str,
    kind: AssetKind,
    content_type: &str,
    ext: &str,
    size_bytes: u64,
) -> Asset {
    let id = AssetId::generate();
    Asset {
        key: keys::upload(owner, &id, ext),
        id,
        owner: owner.to_owned(),
        kind,
        content_type: content_type.to_owned(),
        size_bytes,
        width: None,
        height: None,
        duration_seconds: None,
        created_at: Utc::now(),
    }
}

/// The largest accepted file for an asset kind.
pub fn max_bytes(kind: AssetKind) -> u64 {
    match kind {
        AssetKind::Logo => LOGO_MAX_BYTES,
        AssetKind::Music => MUSIC_MAX_BYTES,
        AssetKind::Image => IMAGE_MAX_BYTES,
        AssetKind::Video => VIDEO_MAX_BYTES,
    }
}

fn kind_noun(kind: AssetKind) -> &'static str {
    match kind {
        AssetKind::Logo | AssetKind::Image => "image",
        AssetKind::Music => "audio",
        AssetKind::Video => "video",
    }
}

fn describe(p: &vidpipe_domain::media::ProbeInfo) -> String {
    if p.streams.is_empty() {
        return format!("{} with no streams", p.format_name);
    }
    let streams: Vec<String> = p
        .streams
        .iter()
        .map(|s| format!("{:?} {}", s.kind, s.codec).to_lowercase())
        .collect();
    format!("{}: {}", p.format_name, streams.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generation::RunnerConfig;
    use crate::local::{LocalOptions, LocalStack};
    use async_trait::async_trait;
    use std::sync::Mutex;

    const OWNER: &str = "alice";

    /// Starts nothing: these tests are about what is recorded, not about runs.
    struct Idle;

    #[async_trait]
    impl Orchestrator for Idle {
        async fn start(&self, _: &JobId) -> Result<(), OrchestratorError> {
            Ok(())
        }
        async fn cancel(&self, _: &JobId) -> Result<(), OrchestratorError> {
            Ok(())
        }
    }

    /// Remembers what it was asked to sign.
    #[derive(Default)]
    struct Signer(Mutex<Vec<(String, String, u64, Duration)>>);

    #[async_trait]
    impl UploadSigner for Signer {
        async fn presign_put(
            &self,
            key: &str,
            content_type: &str,
            size_bytes: u64,
            ttl: Duration,
        ) -> Result<SignedUpload, BlobError> {
            self.0
                .lock()
                .unwrap()
                .push((key.into(), content_type.into(), size_bytes, ttl));
            Ok(SignedUpload {
                url: format!("https://uploads.example.test/{key}"),
                headers: vec![("Content-Type".into(), content_type.into())],
            })
        }
    }

    /// A service over the embedded SQLite and filesystem stores under `home`.
    async fn service(home: &Path) -> Service {
        let options = LocalOptions {
            home: Some(home.to_path_buf()),
            ..Default::default()
        };
        let stack = LocalStack::open_with(options, None, RunnerConfig::default())
            .await
            .expect("open local stack");
        Service::new(stack.deps().clone(), Arc::new(Idle))
    }

    fn body(prompt: &str) -> GenerationRequestBody {
        GenerationRequestBody {
            prompt: Some(prompt.into()),
            duration_seconds: Some(10.0),
            aspect_ratio: Some("9:16".into()),
            ..Default::default()
        }
    }

    fn announcement(kind: AssetKind, content_type: &str, size: u64) -> AssetAnnouncement {
        AssetAnnouncement {
            kind,
            content_type: content_type.into(),
            size_bytes: NonZeroU64::new(size).unwrap(),
        }
    }

    #[tokio::test]
    async fn an_idempotency_key_creates_once_replays_the_same_request_and_refuses_another() {
        let home = tempfile::tempdir().unwrap();
        let service = service(home.path()).await;
        let first = service
            .submit(OWNER, &body("Snow on a village"), Some("k-1"))
            .await
            .unwrap();
        assert!(first.is_created());

        // Spelling out a default leaves the request the same.
        let mut same = body("Snow on a village");
        same.transition_duration_seconds =
            Some(vidpipe_domain::request::DEFAULT_TRANSITION_SECONDS);
        let again = service.submit(OWNER, &same, Some("k-1")).await.unwrap();
        assert!(!again.is_created());
        assert_eq!(again.job().id, first.job().id);

        match service
            .submit(OWNER, &body("Rain on a city"), Some("k-1"))
            .await
        {
            Err(ServiceError::IdempotencyConflict { key, existing }) => {
                assert_eq!((key.as_str(), &existing), ("k-1", &first.job().id));
            }
            Err(e) => panic!("expected a conflict, got {e}"),
            Ok(s) => panic!("expected a conflict, got job {}", s.job().id),
        }
        assert_eq!(service.list(OWNER, 10, None).await.unwrap().jobs.len(), 1);

        // Keys are per tenant.
        let bobs = service
            .submit("bob", &body("Rain on a city"), Some("k-1"))
            .await
            .unwrap();
        assert!(bobs.is_created());
        assert_ne!(bobs.job().id, first.job().id);
    }

    #[tokio::test]
    async fn an_announced_asset_is_signed_under_its_upload_key_then_recorded() {
        let home = tempfile::tempdir().unwrap();
        let service = service(home.path()).await;
        let signer = Signer::default();
        let before = Utc::now();
        let announced = service
            .announce_asset(
                OWNER,
                &announcement(AssetKind::Logo, "Image/PNG; charset=binary", 2048),
                &signer,
            )
            .await
            .unwrap();
        let asset = &announced.asset;
        assert_eq!(asset.content_type, "image/png");
        assert_eq!(asset.key, keys::upload(OWNER, &asset.id, "png"));
        assert_eq!((asset.owner.as_str(), asset.size_bytes), (OWNER, 2048));
        assert_eq!(
            *signer.0.lock().unwrap(),
            [(asset.key.clone(), "image/png".to_owned(), 2048, UPLOAD_TTL)]
        );
        assert!(announced.expires_at >= before + UPLOAD_TTL);
        assert!(announced.expires_at <= Utc::now() + UPLOAD_TTL);
        let stored = service.deps.jobs.get_asset(&asset.id).await.unwrap();
        assert_eq!(stored.as_ref(), Some(asset));
    }

    #[tokio::test]
    async fn an_announcement_must_fit_its_kinds_content_types_and_size_limit() {
        let home = tempfile::tempdir().unwrap();
        let service = service(home.path()).await;
        let signer = Signer::default();
        let announce = |kind, content_type, size| {
            let a = announcement(kind, content_type, size);
            let (service, signer) = (&service, &signer);
            async move { service.announce_asset(OWNER, &a, signer).await }
        };
        for (kind, content_type) in [
            (AssetKind::Logo, "image/gif"),
            (AssetKind::Music, "image/png"),
            (AssetKind::Video, "image/png"),
            (AssetKind::Image, "video/mp4"),
        ] {
            match announce(kind, content_type, 1).await {
                Err(ServiceError::UnsupportedContentType(e)) => {
                    assert_eq!(e.field, "content_type");
                    assert!(
                        e.rule.contains(&format!("for a {} asset", kind.as_str())),
                        "{e}"
                    );
                }
                other => panic!("{content_type} as {kind:?}: {:?}", other.map(|a| a.asset)),
            }
        }
        for (kind, limit) in [
            (AssetKind::Logo, LOGO_MAX_BYTES),
            (AssetKind::Music, MUSIC_MAX_BYTES),
            (AssetKind::Image, IMAGE_MAX_BYTES),
            (AssetKind::Video, VIDEO_MAX_BYTES),
        ] {
            let content_type = kind.content_types()[0].0;
            announce(kind, content_type, limit).await.unwrap();
            match announce(kind, content_type, limit + 1).await {
                Err(ServiceError::TooLarge(e)) => {
                    assert_eq!(e.field, "size_bytes");
                    assert!(e.rule.ends_with(&format!("at most {limit}")), "{e}");
                }
                other => panic!("{kind:?} over its limit: {:?}", other.map(|a| a.asset)),
            }
        }
        // Only those within their limits got as far as signing.
        assert_eq!(signer.0.lock().unwrap().len(), AssetKind::ALL.len());
    }

    /// A service under `limits`, over the local stack's SQLite quotas, starting nothing.
    async fn limited(home: &Path, limits: QuotaLimits) -> Service {
        service(home).await.with_quota_limits(limits)
    }

    fn refusal(result: Result<Submitted, ServiceError>) -> QuotaExceeded {
        match result {
            Err(ServiceError::QuotaExceeded(q)) => q,
            Err(e) => panic!("expected a quota refusal, got {e}"),
            Ok(s) => panic!("expected a quota refusal, got job {}", s.job().id),
        }
    }

    async fn fail(service: &Service, id: &JobId) {
        let input = crate::generation::FailureInput {
            job_id: id.clone(),
            composition_id: None,
            error_type: vidpipe_domain::names::INTERNAL.into(),
            cause: "test".into(),
        };
        // Twice, as a duplicate delivery would: the refund must come back once.
        for _ in 0..2 {
            crate::generation::record_failure(&service.deps, &input)
                .await
                .unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_k_plus_first_concurrent_submit_is_refused_and_an_ended_job_frees_its_slot() {
        let home = tempfile::tempdir().unwrap();
        let service = limited(home.path(), QuotaLimits::from_settings(2, 0)).await;
        let bodies = [body("One"), body("Two"), body("Three")];
        let (a, b, c) = tokio::join!(
            service.submit(OWNER, &bodies[0], None),
            service.submit(OWNER, &bodies[1], None),
            service.submit(OWNER, &bodies[2], None),
        );
        let mut created = Vec::new();
        let mut refused = Vec::new();
        for r in [a, b, c] {
            match r {
                Ok(s) => created.push(s.job().id.clone()),
                Err(e) => refused.push(refusal(Err(e))),
            }
        }
        assert_eq!(
            (created.len(), refused.len()),
            (2, 1),
            "limit 2: two of three"
        );
        let q = &refused[0];
        assert_eq!(q.quota, QuotaKind::ConcurrentJobs);
        assert_eq!((q.limit, q.used), (2.0, 2.0));
        assert_eq!(
            q.retry_after,
            vidpipe_domain::quota::CONCURRENCY_RETRY_AFTER
        );
        assert_eq!(
            service.list(OWNER, 10, None).await.unwrap().jobs.len(),
            2,
            "the refused submission left no job behind"
        );
        // Another tenant has its own slots.
        assert!(service.submit("bob", &body("Four"), None).await.is_ok());

        // A failure (delivered twice) frees one slot, and only one.
        fail(&service, &created[0]).await;
        service.submit(OWNER, &body("Five"), None).await.unwrap();
        refusal(service.submit(OWNER, &body("Six"), None).await);
        // So does a cancel.
        service.cancel(OWNER, &created[1]).await.unwrap();
        service.submit(OWNER, &body("Seven"), None).await.unwrap();
        refusal(service.submit(OWNER, &body("Eight"), None).await);
    }

    #[tokio::test]
    async fn a_replay_is_answered_at_the_limit_and_a_failed_start_releases() {
        let home = tempfile::tempdir().unwrap();
        let service = limited(home.path(), QuotaLimits::from_settings(1, 0)).await;
        let first = service
            .submit(OWNER, &body("Snow"), Some("k-1"))
            .await
            .unwrap();
        let again = service
            .submit(OWNER, &body("Snow"), Some("k-1"))
            .await
            .unwrap();
        assert!(!again.is_created(), "a replay, not a refusal, at the limit");
        assert_eq!(again.job().id, first.job().id);
        refusal(service.submit(OWNER, &body("Rain"), Some("k-2")).await);

        // A job whose execution cannot start fails and gives its claim back.
        struct Broken;
        #[async_trait]
        impl Orchestrator for Broken {
            async fn start(&self, _: &JobId) -> Result<(), OrchestratorError> {
                Err(OrchestratorError::Backend {
                    message: "down".into(),
                    class: vidpipe_domain::ErrorClass::Retryable,
                    source: None,
                })
            }
            async fn cancel(&self, _: &JobId) -> Result<(), OrchestratorError> {
                Ok(())
            }
        }
        let broken = Service::new(service.deps.clone(), Arc::new(Broken))
            .with_quota_limits(QuotaLimits::from_settings(1, 0));
        let quotas = service.deps.quotas.clone().unwrap();
        let today = Utc::now().date_naive();
        assert!(matches!(
            broken.submit("carol", &body("Fog"), None).await,
            Err(ServiceError::Orchestrator(_))
        ));
        assert_eq!(
            quotas.usage("carol", today).await.unwrap(),
            vidpipe_domain::quota::QuotaUsage::default(),
            "nothing stays claimed for a job that never started"
        );
    }

    #[tokio::test]
    async fn the_daily_budget_refunds_failures_but_not_cancels() {
        let home = tempfile::tempdir().unwrap();
        // One minute a day: six 10 s jobs.
        let service = limited(home.path(), QuotaLimits::from_settings(0, 1)).await;
        let mut jobs = Vec::new();
        for i in 0..6 {
            jobs.push(
                service
                    .submit(OWNER, &body(&format!("Scene {i}")), None)
                    .await
                    .unwrap()
                    .job()
                    .id
                    .clone(),
            );
        }
        let q = refusal(service.submit(OWNER, &body("Scene 6"), None).await);
        assert_eq!(q.quota, QuotaKind::DailyOutputMinutes);
        assert_eq!((q.limit, q.used, q.requested), (1.0, 1.0, 0.17));
        assert!(q.retry_after <= Duration::from_secs(86_401));
        fail(&service, &jobs[0]).await;
        service.submit(OWNER, &body("Scene 7"), None).await.unwrap();
        service.cancel(OWNER, &jobs[1]).await.unwrap();
        let q = refusal(service.submit(OWNER, &body("Scene 8"), None).await);
        assert_eq!(q.used, 1.0, "a cancelled job keeps its charge");
    }

    #[tokio::test]
    async fn a_claim_its_job_left_behind_is_reconciled_at_the_limit() {
        let home = tempfile::tempdir().unwrap();
        let limits = QuotaLimits::from_settings(1, 0);
        let service = limited(home.path(), limits).await;
        let quotas = service.deps.quotas.clone().unwrap();
        // A finished job whose release was lost, claimed long ago.
        let ended = service.submit(OWNER, &body("Old"), None).await.unwrap();
        let id = ended.job().id.clone();
        update_job(&service.deps, &id, |j| {
            Ok(Some(j.transition(JobStatus::Cancelled, Utc::now())?))
        })
        .await
        .unwrap();
        quotas.release(OWNER, id.as_str(), false).await.unwrap();
        let old = Utc::now() - RECONCILE_GRACE - chrono::TimeDelta::minutes(1);
        let stale = QuotaClaim::new(OWNER, id.as_str(), 10, old);
        assert_eq!(
            quotas.acquire(&stale, &limits).await.unwrap(),
            Admission::Granted
        );
        // A young claim with no job yet is a submission in flight: left alone.
        let young = QuotaClaim::new("dave", "job_in_flight", 10, Utc::now());
        assert_eq!(
            quotas.acquire(&young, &limits).await.unwrap(),
            Admission::Granted
        );
        service.submit(OWNER, &body("New"), None).await.unwrap();
        refusal(service.submit("dave", &body("New"), None).await);
    }

    #[test]
    fn asset_kinds_parse_by_the_names_they_serialize_as() {
        for kind in AssetKind::ALL {
            assert_eq!(AssetKind::parse(kind.as_str()), Ok(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        let unknown = AssetKind::parse("gif").unwrap_err();
        assert_eq!(
            unknown.to_string(),
            r#"must be one of logo, music, image, video (got "gif")"#
        );
        assert!(AssetKind::parse("Logo").is_err());
    }
}

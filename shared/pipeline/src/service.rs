//! The use cases callers drive (the CLI now, the API functions later): submit a generation,
//! read and list a tenant's jobs, cancel, and ingest a brand asset. Everything a request refers to
//! is checked before a job exists, so a rejected request leaves nothing behind.

use crate::steps::{StepDeps, update_job};
use chrono::Utc;
use std::path::Path;
use std::sync::Arc;
use vidpipe_domain::asset::{Asset, AssetId, AssetKind};
use vidpipe_domain::error::{FieldError, ValidationErrors};
use vidpipe_domain::job::{Job, JobId, JobStatus};
use vidpipe_domain::media::StreamKind;
use vidpipe_domain::ports::{
    BlobError, JobPage, MediaError, Orchestrator, OrchestratorError, StoreError,
};
use vidpipe_domain::{GenerationRequest, GenerationRequestBody, keys};

pub const LOGO_MAX_BYTES: u64 = 10 * 1024 * 1024;
pub const MUSIC_MAX_BYTES: u64 = 50 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error("job {0} not found")]
    NotFound(String),
    #[error("job {id} already {status}")]
    AlreadyFinished { id: String, status: JobStatus },
    /// The idempotency key already made `existing` from a different request.
    #[error("idempotency key {key:?} was already used with a different request (job {existing})")]
    IdempotencyConflict { key: String, existing: JobId },
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
}

/// A submission that was accepted: a new job, or a replay of the one its idempotency key first
/// made. The key reused with a different request is [`ServiceError::IdempotencyConflict`].
pub struct Submitted {
    pub job: Job,
    /// False when the idempotency key matched an earlier job, which is returned instead.
    pub created: bool,
}

pub struct Service {
    pub deps: StepDeps,
    pub orchestrator: Arc<dyn Orchestrator>,
}

impl Service {
    pub fn new(deps: StepDeps, orchestrator: Arc<dyn Orchestrator>) -> Self {
        Self { deps, orchestrator }
    }

    /// Validates the body and the assets it names, records the job and starts its execution.
    pub async fn submit(
        &self,
        owner: &str,
        body: &GenerationRequestBody,
        idempotency_key: Option<&str>,
    ) -> Result<Submitted, ServiceError> {
        let request = body.validate()?;
        self.check_assets(owner, &request).await?;
        let job = Job::new(
            owner,
            request,
            idempotency_key.map(str::to_owned),
            Utc::now(),
        );
        let job = match self.deps.jobs.create(&job).await {
            Ok(job) => job,
            Err(StoreError::DuplicateIdempotencyKey(existing)) => {
                return self.replay(&job, existing).await;
            }
            Err(e) => return Err(e.into()),
        };
        if let Err(e) = self.orchestrator.start(&job.id).await {
            // A job that can never run must not sit in `queued` forever.
            update_job(&self.deps, &job.id, |j| {
                Ok(Some(j.fail(
                    "VidPipe.StartFailed",
                    e.to_string(),
                    Utc::now(),
                )?))
            })
            .await?;
            return Err(e.into());
        }
        Ok(Submitted { job, created: true })
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
        Ok(Submitted {
            job: earlier,
            created: false,
        })
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
                        Some(_) => {}
                    }
                }
                Some(a) if a.owner == owner => errors.push(FieldError::new(
                    field,
                    format!("asset {id} is a {:?} asset, not a {kind:?}", a.kind).to_lowercase(),
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
        Ok(self
            .deps
            .jobs
            .list(owner, limit.clamp(1, 100), cursor)
            .await?)
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
        if let Some(status) = finished.filter(|s| *s != JobStatus::Cancelled) {
            return Err(ServiceError::AlreadyFinished {
                id: id.to_string(),
                status,
            });
        }
        self.orchestrator.cancel(id).await?;
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
        let (width, height, duration) = match kind {
            AssetKind::Logo => {
                let still = probe
                    .streams
                    .iter()
                    .find(|s| {
                        s.kind == StreamKind::Video && matches!(s.codec.as_str(), "png" | "mjpeg")
                    })
                    .filter(|_| probe.audio().is_none());
                let s = still.ok_or_else(|| {
                    invalid(format!(
                        "is not a PNG or JPEG image (found {})",
                        describe(&probe)
                    ))
                })?;
                (s.width, s.height, None)
            }
            AssetKind::Music => {
                let a = probe
                    .audio()
                    .ok_or_else(|| invalid(format!("has no audio (found {})", describe(&probe))))?;
                let duration = probe
                    .duration_seconds
                    .or(a.duration_seconds)
                    .filter(|d| *d > 0.0);
                let d = duration.ok_or_else(|| invalid("has no measurable duration".into()))?;
                (None, None, Some(d))
            }
        };
        let id = AssetId::generate();
        let ext = kind.extension_for(content_type).unwrap_or("bin");
        let key = keys::upload(owner, &id, ext);
        self.deps.blobs.put_file(&key, path, content_type).await?;
        let asset = Asset {
            id,
            owner: owner.to_owned(),
            kind,
            content_type: content_type.to_owned(),
            key,
            size_bytes: meta.len(),
            width,
            height,
            duration_seconds: duration,
            created_at: Utc::now(),
        };
        self.deps.jobs.put_asset(&asset).await?;
        Ok(asset)
    }
}

/// The largest accepted file for an asset kind.
pub fn max_bytes(kind: AssetKind) -> u64 {
    match kind {
        AssetKind::Logo => LOGO_MAX_BYTES,
        AssetKind::Music => MUSIC_MAX_BYTES,
    }
}

fn kind_noun(kind: AssetKind) -> &'static str {
    match kind {
        AssetKind::Logo => "image",
        AssetKind::Music => "audio",
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
    use crate::local::{LocalOptions, LocalStack};
    use crate::runner::RunnerConfig;
    use async_trait::async_trait;

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

    #[tokio::test]
    async fn an_idempotency_key_creates_once_replays_the_same_request_and_refuses_another() {
        let home = tempfile::tempdir().unwrap();
        let service = service(home.path()).await;
        let first = service
            .submit(OWNER, &body("Snow on a village"), Some("k-1"))
            .await
            .unwrap();
        assert!(first.created);

        // Spelling out a default leaves the request the same.
        let mut same = body("Snow on a village");
        same.transition_duration_seconds =
            Some(vidpipe_domain::request::DEFAULT_TRANSITION_SECONDS);
        let again = service.submit(OWNER, &same, Some("k-1")).await.unwrap();
        assert!(!again.created);
        assert_eq!(again.job.id, first.job.id);

        match service
            .submit(OWNER, &body("Rain on a city"), Some("k-1"))
            .await
        {
            Err(ServiceError::IdempotencyConflict { key, existing }) => {
                assert_eq!((key.as_str(), &existing), ("k-1", &first.job.id));
            }
            Err(e) => panic!("expected a conflict, got {e}"),
            Ok(s) => panic!("expected a conflict, got job {}", s.job.id),
        }
        assert_eq!(service.list(OWNER, 10, None).await.unwrap().jobs.len(), 1);

        // Keys are per tenant.
        let bobs = service
            .submit("bob", &body("Rain on a city"), Some("k-1"))
            .await
            .unwrap();
        assert!(bobs.created);
        assert_ne!(bobs.job.id, first.job.id);
    }
}

//! Raw uploads and processing records over the API: announce a file and get where to PUT it (one
//! presigned PUT up to the single-PUT limit, a multipart upload with a presigned URL per part
//! above it), complete or abort it, and read, download and retry a tenant's processing records.
//!
//! The API never starts the processing of a new upload itself: the object's arrival under
//! `raw/` does, through S3 → SQS → the dispatcher, so there is one path into the pipeline.
//! Only a retry starts an execution from here, of an object that was already processed once.

use crate::cursor::CursorSeal;
use crate::processing::Manifest;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use vidpipe_domain::error::{FieldError, ValidationErrors};
use vidpipe_domain::ports::{
    BlobError, BlobStore, OrchestratorError, ProcessPage, ProcessStarter, ProcessStore,
    SignedUpload, StoreError, UploadSigner, UploadStore,
};
use vidpipe_domain::processing::{ProcessJob, ProcessStatus, ProcessTransitionError};
use vidpipe_domain::upload::{
    self, MultipartState, UploadBody, UploadId, UploadRecord, UploadRefusal, UploadStatus,
    UploadedPart,
};

/// How long upload URLs work. A part URL must outlive the upload of every part before it, so
/// this is longer than an asset's: a 10 GiB file on a slow link takes hours.
pub const RAW_UPLOAD_TTL: Duration = Duration::from_secs(6 * 60 * 60);
/// How long download URLs work: the seed asks for 24 hours.
pub const DOWNLOAD_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Where uploads switch to multipart and how big the parts are. Configurable so that a test can
/// send a multipart upload of a few megabytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadPolicy {
    /// Files of at most this many bytes get one presigned PUT.
    pub single_put_max: u64,
    /// The wanted part size (raised to S3's 5 MiB minimum, and as needed for 10 000 parts).
    pub part_size: u64,
}

impl Default for UploadPolicy {
    fn default() -> Self {
        UploadPolicy {
            single_put_max: upload::SINGLE_PUT_MAX_BYTES,
            part_size: upload::DEFAULT_PART_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Refused(#[from] UploadRefusal),
    /// Unknown, or another tenant's: the two are indistinguishable on purpose.
    #[error("{0}")]
    NotFound(String),
    /// A list cursor this deployment did not seal for this tenant, or that was altered.
    #[error("invalid list cursor")]
    InvalidCursor,
    /// The request does not fit the record's state (completing an aborted upload, retrying a
    /// job that succeeded, downloading a failed one).
    #[error("{0}")]
    Conflict(String),
    /// The uploaded bytes are not what was announced; each problem named.
    #[error(transparent)]
    Mismatch(ValidationErrors),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Orchestrator(#[from] OrchestratorError),
    #[error(transparent)]
    Transition(#[from] ProcessTransitionError),
}

/// Where a client sends an upload.
#[derive(Debug, Clone)]
pub enum UploadTarget {
    /// One PUT of the whole file.
    Single(SignedUpload),
    /// A PUT per part, in any order, then `complete`.
    Multipart {
        part_size: u64,
        parts: Vec<PartTarget>,
    },
}

#[derive(Debug, Clone)]
pub struct PartTarget {
    pub number: u32,
    pub size_bytes: u64,
    pub upload: SignedUpload,
}

/// An announced upload and where to send it.
#[derive(Debug, Clone)]
pub struct CreatedUpload {
    pub record: UploadRecord,
    pub target: UploadTarget,
    pub expires_at: DateTime<Utc>,
}

/// A retry's outcome: the record as it now stands, the execution running it, and whether this
/// call started it (`false`: a retry already running was found and is answered again).
#[derive(Debug, Clone)]
pub struct Retried {
    pub job: ProcessJob,
    pub execution: String,
    pub started: bool,
}

/// A download URL of one output.
#[derive(Debug, Clone)]
pub struct OutputLink {
    pub name: String,
    pub key: String,
    pub url: String,
    pub content_type: &'static str,
    pub size_bytes: Option<u64>,
}

pub struct UploadService {
    pub uploads: Arc<dyn UploadStore>,
    pub records: Arc<dyn ProcessStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub signer: Arc<dyn UploadSigner>,
    /// Starts retries; `None` where no processing pipeline is wired (retries then answer 503).
    pub starter: Option<Arc<dyn ProcessStarter>>,
    pub policy: UploadPolicy,
    /// Seals list cursors as generations' are (opaque, tenant-bound); `None` hands out the
    /// store's own cursors, which only a deployment without randomness would do.
    pub cursors: Option<CursorSeal>,
    /// Which `webhook_url`s an announcement may name (a development stack allows loopback).
    pub webhook_rules: vidpipe_domain::webhook::UrlRules,
}

impl UploadService {
    /// Validates the announcement, records it and signs where to send the file. Announcing the
    /// same file again replaces the earlier announcement (its multipart upload, if pending, is
    /// aborted so its parts stop costing storage).
    pub async fn create(
        &self,
        owner: &str,
        body: &UploadBody,
    ) -> Result<CreatedUpload, UploadError> {
        let spec = body.validate_with(owner, self.webhook_rules)?;
        let key = upload::raw_key(owner, &spec.project, &spec.filename);
        let id = UploadId::for_key(&key);
        let earlier = self.uploads.get_upload(&id).await?;
        if let Some(e) = &earlier
            && e.status == UploadStatus::Pending
            && let Some(m) = &e.multipart
        {
            self.signer.abort_multipart(&e.key, &m.upload_id).await?;
        }
        // Taken before signing, so the stated expiry is never later than the URLs' own.
        let expires_at = Utc::now() + RAW_UPLOAD_TTL;
        let (target, multipart) = if spec.size_bytes <= self.policy.single_put_max {
            let signed = self
                .signer
                .presign_put(&key, &spec.content_type, spec.size_bytes, RAW_UPLOAD_TTL)
                .await?;
            (UploadTarget::Single(signed), None)
        } else {
            let (part_size, count) = upload::plan_parts(spec.size_bytes, self.policy.part_size);
            let upload_id = self
                .signer
                .create_multipart(&key, &spec.content_type)
                .await?;
            let mut parts = Vec::with_capacity(count as usize);
            for number in 1..=count {
                let size_bytes = upload::part_length(spec.size_bytes, part_size, number);
                let signed = self
                    .signer
                    .presign_part(&key, &upload_id, number, size_bytes, RAW_UPLOAD_TTL)
                    .await?;
                parts.push(PartTarget {
                    number,
                    size_bytes,
                    upload: signed,
                });
            }
            (
                UploadTarget::Multipart { part_size, parts },
                Some(MultipartState {
                    upload_id,
                    part_size,
                    parts: count,
                }),
            )
        };
        let now = Utc::now();
        let record = UploadRecord {
            id,
            owner: owner.to_owned(),
            project: spec.project,
            filename: spec.filename,
            key,
            size_bytes: spec.size_bytes,
            content_type: spec.content_type,
            multipart,
            status: UploadStatus::Pending,
            webhook_url: spec.webhook_url,
            created_at: now,
            updated_at: now,
            version: earlier.map_or(0, |e| e.version),
        };
        let record = self.uploads.save_upload(&record).await?;
        Ok(CreatedUpload {
            record,
            target,
            expires_at,
        })
    }

    /// A tenant's upload; another tenant's is reported as missing.
    pub async fn get(&self, owner: &str, id: &UploadId) -> Result<UploadRecord, UploadError> {
        self.uploads
            .get_upload(id)
            .await?
            .filter(|u| u.owner == owner)
            .ok_or_else(|| UploadError::NotFound(format!("No upload {id}.")))
    }

    /// Checks the uploaded bytes against the announcement and, for a multipart upload, joins the
    /// parts. The parts are listed from the store rather than taken from the client, so nothing
    /// the client says can join parts that are not there. Completing again is harmless.
    pub async fn complete(&self, owner: &str, id: &UploadId) -> Result<UploadRecord, UploadError> {
        let record = self.get(owner, id).await?;
        match record.status {
            UploadStatus::Completed => return Ok(record),
            UploadStatus::Aborted => {
                return Err(UploadError::Conflict(format!(
                    "Upload {id} was aborted; announce the file again to upload it."
                )));
            }
            UploadStatus::Pending => {}
        }
        if let Some(m) = &record.multipart {
            let parts = self.signer.list_parts(&record.key, &m.upload_id).await?;
            check_parts(&record, m, &parts)?;
            self.signer
                .complete_multipart(&record.key, &m.upload_id, &parts)
                .await?;
        }
        let stored = self.blobs.head(&record.key).await?;
        match stored {
            None => {
                return Err(UploadError::Conflict(format!(
                    "Upload {id} has no file yet: PUT it to the upload URL first."
                )));
            }
            Some(m) if m.size_bytes != record.size_bytes => {
                return Err(UploadError::Mismatch(ValidationErrors::single(
                    "size_bytes",
                    format!(
                        "was announced as {} but {} bytes were uploaded",
                        record.size_bytes, m.size_bytes
                    ),
                )));
            }
            Some(_) => {}
        }
        self.moved(record, UploadStatus::Completed).await
    }

    /// Drops a pending upload (and its parts). Aborting again is harmless; a completed upload
    /// cannot be aborted.
    pub async fn abort(&self, owner: &str, id: &UploadId) -> Result<UploadRecord, UploadError> {
        let record = self.get(owner, id).await?;
        match record.status {
            UploadStatus::Aborted => return Ok(record),
            UploadStatus::Completed => {
                return Err(UploadError::Conflict(format!(
                    "Upload {id} is completed; its file is being or was processed."
                )));
            }
            UploadStatus::Pending => {}
        }
        if let Some(m) = &record.multipart {
            self.signer
                .abort_multipart(&record.key, &m.upload_id)
                .await?;
        }
        self.moved(record, UploadStatus::Aborted).await
    }

    async fn moved(
        &self,
        record: UploadRecord,
        status: UploadStatus,
    ) -> Result<UploadRecord, UploadError> {
        let next = UploadRecord {
            status,
            updated_at: Utc::now(),
            ..record
        };
        Ok(self.uploads.save_upload(&next).await?)
    }

    pub async fn list_jobs(
        &self,
        owner: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<ProcessPage, UploadError> {
        let Some(seal) = &self.cursors else {
            return Ok(self
                .records
                .list_process(owner, limit.clamp(1, 100), cursor)
                .await?);
        };
        let inner = cursor
            .map(|c| seal.open(owner, c).ok_or(UploadError::InvalidCursor))
            .transpose()?;
        let mut page = self
            .records
            .list_process(owner, limit.clamp(1, 100), inner.as_deref())
            .await?;
        page.next_cursor = match page.next_cursor {
            Some(c) => Some(seal.seal(owner, &c).map_err(|e| {
                UploadError::Store(StoreError::Backend {
                    message: format!("cannot seal a list cursor: {e}"),
                    class: vidpipe_domain::ErrorClass::Retryable,
                    source: None,
                })
            })?),
            None => None,
        };
        Ok(page)
    }

    /// A tenant's processing record; another tenant's is reported as missing.
    pub async fn job(&self, owner: &str, id: &str) -> Result<ProcessJob, UploadError> {
        self.records
            .get_process(id)
            .await?
            .filter(|j| j.owner() == Some(owner))
            .ok_or_else(|| UploadError::NotFound(format!("No processing job {id}.")))
    }

    /// The manifest a succeeded run published (its timings and cost); `None` before success or
    /// when it cannot be read, which the view then leaves out rather than failing the read.
    pub async fn manifest(&self, job: &ProcessJob) -> Option<Manifest> {
        let key = job.manifest_key.as_deref()?;
        match self.blobs.get_bytes(key).await {
            Ok(bytes) => serde_json::from_slice(&bytes).ok(),
            Err(e) => {
                tracing::warn!(key, error = %e, "manifest unreadable");
                None
            }
        }
    }

    /// Presigned URLs (valid [`DOWNLOAD_TTL`]) for every rendition and the thumbnail of a
    /// succeeded job.
    pub async fn download(
        &self,
        owner: &str,
        id: &str,
    ) -> Result<(ProcessJob, Vec<OutputLink>, DateTime<Utc>), UploadError> {
        let job = self.job(owner, id).await?;
        if job.status != ProcessStatus::Succeeded {
            return Err(UploadError::Conflict(format!(
                "Processing job {id} is {}; downloads are available once it succeeded.",
                job.status
            )));
        }
        let expires_at = Utc::now() + DOWNLOAD_TTL;
        let mut links = Vec::with_capacity(job.outputs.len() + 1);
        for o in &job.outputs {
            links.push(OutputLink {
                name: o.rendition.clone(),
                key: o.key.clone(),
                url: self.blobs.presign_get(&o.key, DOWNLOAD_TTL).await?,
                content_type: "video/mp4",
                size_bytes: Some(o.size_bytes),
            });
        }
        if let Some(key) = &job.thumbnail_key {
            links.push(OutputLink {
                name: "thumbnail".into(),
                key: key.clone(),
                url: self.blobs.presign_get(key, DOWNLOAD_TTL).await?,
                content_type: "image/jpeg",
                size_bytes: None,
            });
        }
        Ok((job, links, expires_at))
    }

    /// Runs a failed job again from its raw object. The record moves to running under its
    /// version check first, naming the retry; of two racing retries one wins and the other finds
    /// that retry running and answers with the same execution. Starting is idempotent per
    /// execution name, so a retry whose start was lost is started again by the next call.
    pub async fn retry(&self, owner: &str, id: &str) -> Result<Retried, UploadError> {
        let starter = self.starter.as_ref().ok_or_else(|| {
            UploadError::Orchestrator(OrchestratorError::Backend {
                message: "no processing pipeline is configured for retries".into(),
                class: vidpipe_domain::ErrorClass::Retryable,
                source: None,
            })
        })?;
        const ATTEMPTS: u32 = 8;
        for _ in 0..ATTEMPTS {
            let job = self.job(owner, id).await?;
            match job.status {
                ProcessStatus::Succeeded => {
                    return Err(UploadError::Conflict(format!(
                        "Processing job {id} succeeded; only a failed job can be retried."
                    )));
                }
                ProcessStatus::Running if job.retries == 0 => {
                    return Err(UploadError::Conflict(format!(
                        "Processing job {id} is still running its first run."
                    )));
                }
                ProcessStatus::Running => {
                    let execution = job.retry_name(job.retries);
                    starter.start_processing(&job.source, &execution).await?;
                    return Ok(Retried {
                        job,
                        execution,
                        started: false,
                    });
                }
                ProcessStatus::Failed => {}
            }
            if self.blobs.head(&job.source.key).await?.is_none() {
                return Err(UploadError::Conflict(format!(
                    "Processing job {id} cannot be retried: its raw object {} is gone.",
                    job.source.key
                )));
            }
            let mut next = job.start_run(Utc::now())?;
            next.retries = job.retries + 1;
            let saved = match self.records.save_process(&next).await {
                Ok(saved) => saved,
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let execution = saved.retry_name(saved.retries);
            starter.start_processing(&saved.source, &execution).await?;
            return Ok(Retried {
                job: saved,
                execution,
                started: true,
            });
        }
        Err(UploadError::Store(StoreError::Conflict(format!(
            "processing record {id} kept changing during the retry"
        ))))
    }
}

/// The parts the store holds must be exactly the planned ones: every number from 1, each of
/// its planned length, adding up to the announced size.
fn check_parts(
    record: &UploadRecord,
    m: &MultipartState,
    parts: &[UploadedPart],
) -> Result<(), UploadError> {
    let mut errors = Vec::new();
    let missing: Vec<String> = (1..=m.parts)
        .filter(|n| !parts.iter().any(|p| p.number == *n))
        .map(|n| n.to_string())
        .collect();
    if !missing.is_empty() {
        errors.push(FieldError::new(
            "parts",
            format!(
                "part(s) {} of {} have not been uploaded",
                missing.join(", "),
                m.parts
            ),
        ));
    }
    for p in parts {
        if p.number == 0 || p.number > m.parts {
            errors.push(FieldError::new(
                "parts",
                format!("part {} is not one of the {} planned", p.number, m.parts),
            ));
            continue;
        }
        let want = upload::part_length(record.size_bytes, m.part_size, p.number);
        if p.size_bytes != want {
            errors.push(FieldError::new(
                format!("parts[{}].size_bytes", p.number - 1),
                format!(
                    "part {} is {} bytes; it must be {want}",
                    p.number, p.size_bytes
                ),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(UploadError::Mismatch(ValidationErrors { errors }))
    }
}

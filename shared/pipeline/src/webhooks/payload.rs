//! What a delivery says: a job's outcome as a [`WebhookPayload`], with presigned links to its
//! outputs, its cost and its timings, for generations and processing jobs alike.

use crate::processing::Manifest;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;
use vidpipe_domain::job::{Job, JobStatus};
use vidpipe_domain::ports::BlobStore;
use vidpipe_domain::processing::{ProcessJob, ProcessStatus};
use vidpipe_domain::webhook::{
    JobKind, WebhookEvent, WebhookFailure, WebhookJob, WebhookOutput, WebhookPayload,
};

/// The event a generation's status tells of; `None` while it runs or once cancelled.
pub fn generation_event(job: &Job) -> Option<WebhookEvent> {
    match job.status {
        JobStatus::Completed => Some(WebhookEvent::Completed),
        JobStatus::Failed => Some(WebhookEvent::Failed),
        _ => None,
    }
}

/// The event a processing record's status tells of; `None` while it runs.
pub fn processing_event(job: &ProcessJob) -> Option<WebhookEvent> {
    match job.status {
        ProcessStatus::Succeeded => Some(WebhookEvent::Completed),
        ProcessStatus::Failed => Some(WebhookEvent::Failed),
        ProcessStatus::Running => None,
    }
}

/// Presigns each `(name, key, content type, size)`; one that cannot be signed is left out (and
/// logged) rather than holding up the whole delivery.
async fn links(
    blobs: &dyn BlobStore,
    ttl: Duration,
    wanted: Vec<(String, String, &'static str, Option<u64>)>,
) -> (Vec<WebhookOutput>, Option<DateTime<Utc>>) {
    if wanted.is_empty() {
        return (Vec::new(), None);
    }
    // Taken before signing, so the stated expiry is never later than the URLs' own.
    let expires_at = Utc::now() + ttl;
    let mut outputs = Vec::with_capacity(wanted.len());
    for (name, key, content_type, size_bytes) in wanted {
        match blobs.presign_get(&key, ttl).await {
            Ok(url) => outputs.push(WebhookOutput {
                name,
                key,
                url,
                content_type: content_type.to_owned(),
                size_bytes,
            }),
            Err(e) => tracing::warn!(%key, error = %e, "cannot presign an output for a webhook"),
        }
    }
    (outputs, Some(expires_at))
}

/// A generation's `completed` or `failed` payload; `None` for a job that has not ended so.
pub async fn generation_payload(
    job: &Job,
    blobs: &dyn BlobStore,
    link_ttl: Duration,
) -> Option<WebhookPayload> {
    let event = generation_event(job)?;
    let wanted = match (&job.outputs, event) {
        (Some(o), WebhookEvent::Completed) => vec![
            (
                "video".to_owned(),
                o.final_key.clone(),
                "video/mp4",
                Some(o.size_bytes),
            ),
            (
                "thumbnail".to_owned(),
                o.thumbnail_key.clone(),
                "image/jpeg",
                None,
            ),
        ],
        _ => Vec::new(),
    };
    let (outputs, links_expire_at) = links(blobs, link_ttl, wanted).await;
    let timings: BTreeMap<String, f64> = job
        .stages
        .iter()
        .filter_map(|(stage, t)| Some((stage.as_str().to_owned(), t.seconds()?)))
        .collect();
    Some(WebhookPayload {
        event,
        timestamp: job.updated_at,
        data: WebhookJob {
            job_id: job.id.to_string(),
            kind: JobKind::Generation,
            status: job.status.as_str().to_owned(),
            source_key: None,
            outputs,
            links_expire_at,
            cost_usd: job.cost.as_ref().map(|c| c.total_usd),
            cost: job.cost.as_ref().and_then(|c| serde_json::to_value(c).ok()),
            timings,
            error: job.error.as_ref().map(|e| WebhookFailure {
                error: e.code.clone(),
                reason: e.message.clone(),
            }),
            created_at: job.created_at,
            finished_at: job.updated_at,
        },
    })
}

/// A processing job's `completed` or `failed` payload, with its manifest's cost and timings
/// when it succeeded; `None` while it runs.
pub async fn processing_payload(
    job: &ProcessJob,
    manifest: Option<&Manifest>,
    blobs: &dyn BlobStore,
    link_ttl: Duration,
) -> Option<WebhookPayload> {
    let event = processing_event(job)?;
    let mut wanted: Vec<_> = job
        .outputs
        .iter()
        .map(|o| {
            (
                o.rendition.clone(),
                o.key.clone(),
                "video/mp4",
                Some(o.size_bytes),
            )
        })
        .collect();
    if let Some(thumb) = &job.thumbnail_key
        && event == WebhookEvent::Completed
    {
        wanted.push(("thumbnail".to_owned(), thumb.clone(), "image/jpeg", None));
    }
    let (outputs, links_expire_at) = links(blobs, link_ttl, wanted).await;
    let mut timings = BTreeMap::new();
    for t in manifest.map(|m| m.timings.as_slice()).unwrap_or_default() {
        *timings.entry(t.step.as_str().to_owned()).or_insert(0.0) += t.seconds;
    }
    Some(WebhookPayload {
        event,
        timestamp: job.updated_at,
        data: WebhookJob {
            job_id: job.id.clone(),
            kind: JobKind::Processing,
            status: job.status.as_str().to_owned(),
            source_key: Some(job.source.key.clone()),
            outputs,
            links_expire_at,
            cost_usd: manifest.and_then(|m| m.cost.estimated_usd),
            cost: manifest.and_then(|m| serde_json::to_value(&m.cost).ok()),
            timings,
            error: job.error.as_ref().map(|e| WebhookFailure {
                error: e.error.clone(),
                reason: e.reason.clone(),
            }),
            created_at: job.created_at,
            finished_at: job.updated_at,
        },
    })
}

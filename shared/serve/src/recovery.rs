//! Nothing stays running with nobody running it. At shutdown, jobs get a bounded wait to end on
//! their own and the ones that do not are recorded as failed, saying so; at start-up, jobs a
//! crash left unfinished (no process can still be running them: they ran inside the one that
//! died) are recorded as failed the same way. Both go through the pipelines' own failure steps,
//! so quotas are released and webhooks told as for any failure.

use std::time::Duration;
use vidpipe_domain::job::JobId;
use vidpipe_domain::names;
use vidpipe_domain::ports::ProcessStore;
use vidpipe_domain::processing::{ProcessSettings, RenditionSet};
use vidpipe_pipeline::StepError;
use vidpipe_pipeline::generation::{FailureInput, record_failure};
use vidpipe_pipeline::local::LocalStack;
use vidpipe_pipeline::processing::{self, ProcessFailureInput};

use crate::processing::LocalProcessing;

/// The error name recorded on interrupted jobs: running them again may well succeed.
pub const INTERRUPTED: &str = names::TRANSIENT;

pub const CRASH_REASON: &str = "Interrupted: the vidpipe process running this job stopped \
before it finished (found unfinished when vidpipe serve started again). Submit it again.";

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("cannot list unfinished jobs: {0}")]
    Store(#[from] vidpipe_domain::ports::StoreError),
    #[error("cannot record job {id} as failed: {source}")]
    Record {
        id: String,
        #[source]
        source: StepError,
    },
}

/// What start-up found unfinished and recorded as failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    pub jobs: Vec<String>,
    pub processing: Vec<String>,
}

/// Records every unfinished job of this home as failed. Call it before any job can start.
pub async fn fail_unfinished(stack: &LocalStack) -> Result<Recovered, RecoveryError> {
    let unfinished = stack.store().unfinished().await?;
    let mut recovered = Recovered::default();
    for id in unfinished.jobs {
        let Ok(job_id) = JobId::parse(&id) else {
            tracing::warn!(
                id,
                "an unfinished job with an unreadable id was left as it is"
            );
            continue;
        };
        fail_job(stack, &job_id, CRASH_REASON).await?;
        recovered.jobs.push(id);
    }
    let deps = stack.processing(ProcessSettings::default(), RenditionSet::default_set());
    for id in unfinished.processing {
        let Some(job) = stack.store().get_process(&id).await? else {
            continue;
        };
        processing::record_failure(
            &deps,
            &ProcessFailureInput {
                source: job.source.clone(),
                error_type: INTERRUPTED.to_owned(),
                cause: CRASH_REASON.to_owned(),
            },
        )
        .await
        .map_err(|source| RecoveryError::Record {
            id: id.clone(),
            source,
        })?;
        recovered.processing.push(id);
    }
    if !recovered.jobs.is_empty() || !recovered.processing.is_empty() {
        tracing::warn!(
            jobs = ?recovered.jobs,
            processing = ?recovered.processing,
            "jobs a stopped process left unfinished were recorded as failed"
        );
    }
    Ok(recovered)
}

async fn fail_job(stack: &LocalStack, id: &JobId, reason: &str) -> Result<(), RecoveryError> {
    record_failure(
        stack.deps(),
        &FailureInput {
            job_id: id.clone(),
            composition_id: None,
            error_type: INTERRUPTED.to_owned(),
            cause: reason.to_owned(),
        },
    )
    .await
    .map(|_| ())
    .map_err(|source| RecoveryError::Record {
        id: id.to_string(),
        source,
    })
}

/// At shutdown: waits up to `grace` for running jobs and processing runs to end, then records
/// the rest as failed with the reason.
pub async fn drain(stack: &LocalStack, processing: &LocalProcessing, grace: Duration) {
    let reason = format!(
        "Interrupted: vidpipe serve was stopped before this job finished (it waited {} s for \
         running jobs). Submit it again.",
        grace.as_secs()
    );
    let (jobs, sources) = tokio::join!(stack.orchestrator().drain(grace), processing.drain(grace));
    for id in jobs {
        if let Err(e) = fail_job(stack, &id, &reason).await {
            tracing::error!(error = %e, "an interrupted job could not be recorded; the next start will");
        }
    }
    for source in sources {
        let failed = processing::record_failure(
            processing.deps(),
            &ProcessFailureInput {
                source,
                error_type: INTERRUPTED.to_owned(),
                cause: reason.clone(),
            },
        )
        .await;
        if let Err(e) = failed {
            tracing::error!(error = %e, "an interrupted processing run could not be recorded; the next start will");
        }
    }
}

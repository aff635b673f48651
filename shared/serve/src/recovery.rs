//! Nothing stays running with nobody running it. At shutdown, jobs get a bounded wait to end on
//! their own and the ones that do not are recorded as failed, saying so; at start-up, jobs a
//! crash left unfinished (no process can still be running them: they ran inside the one that
//! died) are recorded as failed the same way. Both go through the pipelines' own failure steps,
//! so quotas are released and webhooks told as for any failure.

use std::time::Duration;
use vidpipe_domain::composition::CompositionId;
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
    /// Recomposes (new versions of completed jobs): only the version fails, the job keeps its
    /// outcome.
    pub compositions: Vec<String>,
    /// Timeline renders (`POST /v1/compositions`) the crash cut short.
    pub timelines: Vec<String>,
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
        .map_err(not_recorded(&id))?;
        recovered.processing.push(id);
    }
    for (job, id) in unfinished.compositions {
        let (Ok(job_id), Ok(composition_id)) = (JobId::parse(&job), CompositionId::parse(&id))
        else {
            tracing::warn!(
                job,
                id,
                "an unfinished composition with unreadable ids was left as it is"
            );
            continue;
        };
        // A job's first composition is its own render, failed above with its job.
        if composition_id == CompositionId::first_of(&job_id) {
            continue;
        }
        record_failure(
            stack.deps(),
            &FailureInput {
                job_id,
                composition_id: Some(composition_id),
                error_type: INTERRUPTED.to_owned(),
                cause: CRASH_REASON.to_owned(),
            },
        )
        .await
        .map_err(not_recorded(&id))?;
        recovered.compositions.push(id);
    }
    for id in unfinished.timelines {
        let Ok(composition_id) = CompositionId::parse(&id) else {
            tracing::warn!(
                id,
                "an unfinished timeline render with an unreadable id was left as it is"
            );
            continue;
        };
        vidpipe_pipeline::edit::record_failure(
            stack.deps(),
            &composition_id,
            INTERRUPTED,
            CRASH_REASON,
        )
        .await
        .map_err(not_recorded(&id))?;
        recovered.timelines.push(id);
    }
    if recovered != Recovered::default() {
        tracing::warn!(
            jobs = ?recovered.jobs,
            processing = ?recovered.processing,
            compositions = ?recovered.compositions,
            timelines = ?recovered.timelines,
            "jobs a stopped process left unfinished were recorded as failed"
        );
    }
    Ok(recovered)
}

/// Names the record a failure step could not write.
fn not_recorded(id: &str) -> impl FnOnce(StepError) -> RecoveryError + '_ {
    move |source| RecoveryError::Record {
        id: id.to_owned(),
        source,
    }
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
    .map_err(not_recorded(id.as_str()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use vidpipe_domain::composition::{Composition, CompositionStatus};
    use vidpipe_domain::job::{Job, JobStatus};
    use vidpipe_domain::request::GenerationRequestBody;
    use vidpipe_pipeline::local::LocalOptions;

    /// A recompose or a timeline render a killed server left `rendering` fails at the next
    /// start, under the interrupted name; the recompose's completed job keeps its outcome.
    #[tokio::test]
    async fn a_crashed_render_fails_and_its_job_stays_completed() {
        let home = tempfile::tempdir().unwrap();
        let stack = LocalStack::open(LocalOptions {
            home: Some(home.path().to_path_buf()),
            ..LocalOptions::default()
        })
        .await
        .unwrap();
        let body = GenerationRequestBody {
            prompt: Some("A lighthouse at night.".into()),
            duration_seconds: Some(5.0),
            aspect_ratio: Some("16:9".into()),
            ..Default::default()
        };
        let mut job = Job::new("local", body.validate().unwrap(), None, chrono::Utc::now());
        job.status = JobStatus::Completed;
        let store = stack.store();
        let job = vidpipe_domain::ports::JobStore::create(store.as_ref(), &job)
            .await
            .unwrap();
        let rendering = Composition::rendering(
            CompositionId::generate(),
            job.id.clone(),
            "local",
            Some(CompositionId::first_of(&job.id)),
            Vec::new(),
            chrono::Utc::now(),
        );
        let jobs: &dyn vidpipe_domain::ports::JobStore = store.as_ref();
        jobs.put_composition(&rendering).await.unwrap();

        let timeline = Composition::timeline(
            CompositionId::generate(),
            "local",
            vidpipe_domain::composition::TimelineRender {
                duration_seconds: 2.0,
                total_frames: 50,
                route: vidpipe_domain::job::ComposeRoute::Lambda,
                provider_calls: Vec::new(),
            },
            chrono::Utc::now(),
        );
        jobs.put_composition(&timeline).await.unwrap();

        let recovered = fail_unfinished(&stack).await.unwrap();
        assert_eq!(recovered.compositions, vec![rendering.id.to_string()]);
        assert_eq!(recovered.timelines, vec![timeline.id.to_string()]);
        let render = jobs.get_timeline(&timeline.id).await.unwrap().unwrap();
        assert_eq!(render.status, CompositionStatus::Failed);
        assert_eq!(render.error.expect("a reason").code, INTERRUPTED);
        assert!(recovered.jobs.is_empty());
        let after = jobs
            .get_composition(&job.id, &rendering.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.status, CompositionStatus::Failed);
        let error = after.error.expect("a reason");
        assert_eq!(error.code, INTERRUPTED);
        assert!(error.message.contains("Interrupted"), "{}", error.message);
        assert_eq!(
            jobs.get(&job.id).await.unwrap().unwrap().status,
            JobStatus::Completed
        );
        // A second start finds nothing left to record.
        assert_eq!(fail_unfinished(&stack).await.unwrap(), Recovered::default());
    }
}

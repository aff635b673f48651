//! The Fargate worker's hand-off for long uploads. An ECS task cannot return a payload, so the
//! worker leaves its `Rendered` under the source's `temp/` folder for publish, or, when it gives
//! up, the error that ended it for RecordFailure, which records and notifies once (the same
//! convention as generation's worker).

use super::steps::{ProcessDeps, is_worker_failure, publish, transcode_as};
use super::types::{Probed, ProcessFailureInput, PublishInput, Rendered};
use crate::error::StepError;
use crate::failure::WorkerFailure;
use crate::policy::RetryPolicy;
use serde::Serialize;
use serde::de::DeserializeOwned;
use vidpipe_domain::ports::BlobError;
use vidpipe_domain::processing::{self as domain, ProcessEvent};
use vidpipe_domain::steps::ProcessingStep;

/// Where the worker leaves its `Rendered`, under `temp/process/{source_id}/`.
pub const WORKER_RENDERED: &str = "worker-rendered.json";

/// Where the worker leaves the error that ended it.
pub const WORKER_FAILURE: &str = "worker-failure.json";

async fn put_temp_json(
    deps: &ProcessDeps,
    source_id: &str,
    name: &str,
    value: &impl Serialize,
) -> Result<(), StepError> {
    deps.blobs
        .put_bytes(
            &domain::temp_key(source_id, name),
            serde_json::to_vec(value)?,
            "application/json",
        )
        .await?;
    Ok(())
}

async fn get_temp_json<T: DeserializeOwned>(
    deps: &ProcessDeps,
    source_id: &str,
    name: &str,
) -> Result<Option<T>, StepError> {
    match deps
        .blobs
        .get_bytes(&domain::temp_key(source_id, name))
        .await
    {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        Err(BlobError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The worker's whole job: the transcode with the step retry policy (Step Functions does not
/// retry a task that exited non-zero), and on a final failure the error left for RecordFailure.
/// Files a crashed earlier attempt left are removed first, so neither a stale output nor a
/// stale failure is ever read.
pub async fn run_worker(
    deps: &ProcessDeps,
    probed: &Probed,
    progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<(), StepError> {
    for name in [WORKER_RENDERED, WORKER_FAILURE] {
        deps.blobs
            .delete(&domain::temp_key(&probed.source_id, name))
            .await?;
    }
    let outcome = RetryPolicy::STEP
        .retry(
            |attempt, e| tracing::warn!(attempt, error = %e, "worker transcode failed; retrying"),
            || transcode_as(deps, probed, ProcessingStep::WorkerTranscode, progress),
        )
        .await;
    match outcome {
        Ok(rendered) => put_temp_json(deps, &probed.source_id, WORKER_RENDERED, &rendered).await,
        Err(e) => {
            let failure = WorkerFailure {
                error: e.error_type().to_owned(),
                reason: e.to_string(),
            };
            put_temp_json(deps, &probed.source_id, WORKER_FAILURE, &failure).await?;
            Err(e)
        }
    }
}

/// Publish after either kind of transcode. After the worker, the stored `Rendered` must be
/// there: a task that exited 0 without it is an internal error, not a silent success.
pub async fn publish_any(
    deps: &ProcessDeps,
    input: &PublishInput,
) -> Result<ProcessEvent, StepError> {
    match input {
        PublishInput::Rendered(rendered) => publish(deps, rendered).await,
        PublishInput::AfterWorker(probed) => {
            let rendered: Rendered = get_temp_json(deps, &probed.source_id, WORKER_RENDERED)
                .await?
                .ok_or_else(|| {
                    StepError::Internal(format!(
                        "the worker finished without writing {}",
                        domain::temp_key(&probed.source_id, WORKER_RENDERED)
                    ))
                })?;
            publish(deps, &rendered).await
        }
    }
}

/// The error the Fargate worker left, when the failure is its task's (`States.TaskFailed`).
pub(super) async fn failure_left(
    deps: &ProcessDeps,
    input: &ProcessFailureInput,
) -> Result<Option<WorkerFailure>, StepError> {
    if !is_worker_failure(input) {
        return Ok(None);
    }
    match get_temp_json(deps, &input.source.id(), WORKER_FAILURE).await {
        // An unreadable file is as good as none: the Catch's own error is recorded instead.
        Err(StepError::Data(_)) => Ok(None),
        other => other,
    }
}

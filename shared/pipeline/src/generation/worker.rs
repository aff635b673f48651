//! The Fargate worker's hand-off for long compositions. An ECS task cannot return a payload, so
//! the worker leaves its `ComposeOutput` under the job's `temp/` folder for finalize, or, when it
//! gives up, the error that ended it for RecordFailure, which records it once (the same
//! convention as upload processing's worker).

use super::steps::{StepDeps, compose, finalize};
use super::types::{ComposeOutput, FailureInput, FinalizeInput, FinalizeOutput, JobRef};
use crate::error::StepError;
use crate::failure::WorkerFailure;
use crate::policy::RetryPolicy;
use vidpipe_domain::job::JobId;
use vidpipe_domain::ports::BlobError;
use vidpipe_domain::{keys, names};

/// Where the worker leaves its compose output, under `temp/{job_id}/`.
pub const WORKER_COMPOSE_OUTPUT: &str = "compose-output.json";

/// Where the worker leaves the error that ended it.
pub const WORKER_FAILURE: &str = "worker-failure.json";

async fn put_temp_json(
    deps: &StepDeps,
    job: &JobId,
    name: &str,
    value: &impl serde::Serialize,
) -> Result<(), StepError> {
    deps.blobs
        .put_bytes(
            &keys::temp(job, name),
            serde_json::to_vec(value)?,
            "application/json",
        )
        .await?;
    Ok(())
}

/// The worker's whole job: compose with the step retry policy (Step Functions does not retry a
/// task that exited non-zero), and on a final failure the error left for RecordFailure. Files a
/// crashed earlier attempt left are removed first, so neither is ever read stale.
pub async fn run_worker(
    deps: &StepDeps,
    input: &JobRef,
    progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<(), StepError> {
    for name in [WORKER_COMPOSE_OUTPUT, WORKER_FAILURE] {
        deps.blobs.delete(&keys::temp(&input.job_id, name)).await?;
    }
    let composed = RetryPolicy::STEP
        .retry(
            |attempt, e| tracing::warn!(attempt, error = %e, "compose failed; retrying"),
            || compose(deps, input, progress),
        )
        .await;
    match composed {
        Ok(output) => put_temp_json(deps, &input.job_id, WORKER_COMPOSE_OUTPUT, &output).await,
        Err(e) => {
            let failure = WorkerFailure {
                error: e.error_type().to_owned(),
                reason: e.to_string(),
            };
            put_temp_json(deps, &input.job_id, WORKER_FAILURE, &failure).await?;
            Err(e)
        }
    }
}

/// Finalize from either kind of input (see [`FinalizeInput`]). After the worker, its stored
/// output must be there: a task that exited 0 without it is an internal error.
pub async fn finalize_any(
    deps: &StepDeps,
    input: &FinalizeInput,
) -> Result<FinalizeOutput, StepError> {
    match input {
        FinalizeInput::Composed(output) => finalize(deps, output).await,
        FinalizeInput::AfterWorker(job) => {
            let key = keys::temp(&job.job_id, WORKER_COMPOSE_OUTPUT);
            let bytes = deps.blobs.get_bytes(&key).await.map_err(|e| match e {
                BlobError::NotFound(_) => {
                    StepError::Internal(format!("the worker finished without writing {key}"))
                }
                other => other.into(),
            })?;
            let output: ComposeOutput = serde_json::from_slice(&bytes)?;
            finalize(deps, &output).await
        }
    }
}

/// The error the Fargate worker left, when the failure is its task's (`States.TaskFailed`).
pub(super) async fn failure_left(
    deps: &StepDeps,
    input: &FailureInput,
) -> Result<Option<WorkerFailure>, StepError> {
    if input.error_type != names::STATES_TASK_FAILED {
        return Ok(None);
    }
    match deps
        .blobs
        .get_bytes(&keys::temp(&input.job_id, WORKER_FAILURE))
        .await
    {
        // An unreadable file is as good as none: the Catch's own error is recorded instead.
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(BlobError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

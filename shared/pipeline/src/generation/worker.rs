//! The Fargate worker's hand-off for long compositions ([`crate::handoff`], the convention both
//! pipelines share): its `ComposeOutput` for finalize, or its final error for RecordFailure.

use super::steps::{StepDeps, compose, finalize};
use super::types::{CompositionRef, FailureInput, FinalizeInput, FinalizeOutput, JobRef};
use crate::error::StepError;
use crate::failure::WorkerFailure;
use crate::handoff::Handoff;
use vidpipe_domain::composition::CompositionId;
use vidpipe_domain::job::JobId;
use vidpipe_domain::keys;

/// Where the worker leaves its compose output, under `temp/{job_id}/`.
pub const WORKER_COMPOSE_OUTPUT: &str = "compose-output.json";

/// Where the worker leaves the error that ended it.
pub const WORKER_FAILURE: &str = "worker-failure.json";

/// A recompose's files are under its composition's own folder, so a recompose never reads the
/// job's first compose's files (or another version's).
fn handoff<'a>(
    deps: &'a StepDeps,
    job: &JobId,
    composition: Option<&CompositionId>,
) -> Handoff<'a> {
    let name = |file: &str| match composition {
        Some(c) => format!("{c}/{file}"),
        None => file.to_owned(),
    };
    Handoff {
        blobs: deps.blobs.as_ref(),
        output_key: keys::temp(job, &name(WORKER_COMPOSE_OUTPUT)),
        failure_key: keys::temp(job, &name(WORKER_FAILURE)),
    }
}

/// The worker's whole job: compose, leaving the output or the final error.
pub async fn run_worker(
    deps: &StepDeps,
    input: &JobRef,
    progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<(), StepError> {
    handoff(deps, &input.job_id, None)
        .run(|| compose(deps, input, progress))
        .await
}

/// The worker's recompose: renders the composition, leaving its reference or the final error.
pub async fn run_worker_composition(
    deps: &StepDeps,
    input: &CompositionRef,
    progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<(), StepError> {
    handoff(deps, &input.job_id, Some(&input.composition_id))
        .run(|| super::recompose::render_step(deps, input, progress))
        .await
}

/// Finalize from either kind of input (see [`FinalizeInput`]).
pub async fn finalize_any(
    deps: &StepDeps,
    input: &FinalizeInput,
) -> Result<FinalizeOutput, StepError> {
    match input {
        FinalizeInput::Composed(output) => finalize(deps, output).await,
        FinalizeInput::Recomposed(r) => super::recompose::finalize(deps, r).await,
        FinalizeInput::AfterWorker(job) => {
            let output = handoff(deps, &job.job_id, None).output().await?;
            finalize(deps, &output).await
        }
    }
}

/// The error the Fargate worker left, when the failure is its task's (`States.TaskFailed`).
pub(super) async fn failure_left(
    deps: &StepDeps,
    input: &FailureInput,
) -> Result<Option<WorkerFailure>, StepError> {
    handoff(deps, &input.job_id, input.composition_id.as_ref())
        .failure_left(&input.error_type)
        .await
}

//! The Fargate worker's hand-off for long uploads ([`crate::handoff`], the convention both
//! pipelines share): its `Rendered` for publish, or its final error for RecordFailure.

use super::steps::{ProcessDeps, publish, transcode_as};
use super::types::{Probed, ProcessFailureInput, PublishInput, Rendered};
use crate::error::StepError;
use crate::failure::WorkerFailure;
use crate::handoff::Handoff;
use vidpipe_domain::processing::{self as domain, ProcessEvent};
use vidpipe_domain::steps::ProcessingStep;

/// Where the worker leaves its `Rendered`, under `temp/process/{source_id}/`.
pub const WORKER_RENDERED: &str = "worker-rendered.json";

/// Where the worker leaves the error that ended it.
pub const WORKER_FAILURE: &str = "worker-failure.json";

fn handoff<'a>(deps: &'a ProcessDeps, source_id: &str) -> Handoff<'a> {
    Handoff {
        blobs: deps.blobs.as_ref(),
        output_key: domain::temp_key(source_id, WORKER_RENDERED),
        failure_key: domain::temp_key(source_id, WORKER_FAILURE),
    }
}

/// The worker's whole job: the single pass, timed as the worker's (billed at Fargate's rate),
/// leaving its `Rendered` or the final error.
pub async fn run_worker(
    deps: &ProcessDeps,
    probed: &Probed,
    progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<(), StepError> {
    handoff(deps, &probed.source_id)
        .run(|| transcode_as(deps, probed, ProcessingStep::WorkerTranscode, progress))
        .await
}

/// Publish after either kind of transcode (see [`PublishInput`]).
pub async fn publish_any(
    deps: &ProcessDeps,
    input: &PublishInput,
) -> Result<ProcessEvent, StepError> {
    match input {
        PublishInput::Rendered(rendered) => publish(deps, rendered).await,
        PublishInput::AfterWorker(probed) => {
            let rendered: Rendered = handoff(deps, &probed.source_id).output().await?;
            publish(deps, &rendered).await
        }
    }
}

/// The error the Fargate worker left, when the failure is its task's (`States.TaskFailed`).
pub(super) async fn failure_left(
    deps: &ProcessDeps,
    input: &ProcessFailureInput,
) -> Result<Option<WorkerFailure>, StepError> {
    handoff(deps, &input.source.id())
        .failure_left(&input.error_type)
        .await
}

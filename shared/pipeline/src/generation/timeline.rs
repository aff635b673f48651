//! A timeline render (`POST /v1/compositions`) in the state machine: the steps of its branch of
//! `statemachine/generation.asl.json`. The API accepted the document (stored its normalised
//! timeline, recorded the composition as `rendering`); here its `generate` clips are made into
//! the clip cache one Map item each, then the one pass renders it (in Lambda or on the Fargate
//! worker, by its route), then finalize reports it, or the failure is recorded with its stable
//! error name. No job, no planning. The work itself is in [`crate::edit`].

use super::steps::StepDeps;
use crate::edit;
use crate::error::StepError;
use serde::{Deserialize, Serialize};
use vidpipe_domain::composition::{CompositionId, CompositionStatus};
use vidpipe_domain::job::{ComposeRoute, Outputs};

/// The execution's input, and what render, finalize and the plan are handed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineRef {
    pub composition_id: CompositionId,
}

/// One `generate` asset's clip to make: the layer's index in the normalised timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineClipTask {
    pub composition_id: CompositionId,
    pub layer: u32,
}

/// The Map's items (the clips the cache lacks) and the route the Choice reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelinePlan {
    pub composition_id: CompositionId,
    pub total_frames: u32,
    pub route: ComposeRoute,
    pub clips: Vec<TimelineClipTask>,
}

/// A clip in the cache: who made it, or that the cache had it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineClipOutput {
    pub composition_id: CompositionId,
    pub layer: u32,
    pub provider: String,
    pub cache_hit: bool,
}

/// What finalize reports: the composition's outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineDone {
    pub composition_id: CompositionId,
    pub status: CompositionStatus,
    pub outputs: Outputs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineFailureInput {
    pub composition_id: CompositionId,
    pub error_type: String,
    pub cause: String,
}

/// The clips to make (none once the composition has ended: a duplicate delivery makes nothing)
/// and where it renders, by the frame rule a job's compose follows.
pub async fn plan(deps: &StepDeps, input: &TimelineRef) -> Result<TimelinePlan, StepError> {
    let (composition, calls, edit) = edit::stored(deps, &input.composition_id).await?;
    let clips = if composition.status.is_terminal() {
        Vec::new()
    } else {
        calls
            .iter()
            .filter(|c| !c.cache_hit)
            .map(|c| TimelineClipTask {
                composition_id: input.composition_id.clone(),
                layer: c.spec.scene_index,
            })
            .collect()
    };
    Ok(TimelinePlan {
        composition_id: input.composition_id.clone(),
        total_frames: edit.total_frames,
        route: ComposeRoute::for_frames(edit.total_frames, deps.worker_threshold_frames),
        clips,
    })
}

/// Makes one layer's clip into the clip cache through the provider chain (the cache answers a
/// repeat, so a retried or duplicated item calls no provider again).
pub async fn generate_clip(
    deps: &StepDeps,
    task: &TimelineClipTask,
) -> Result<TimelineClipOutput, StepError> {
    let (_, calls, _) = edit::stored(deps, &task.composition_id).await?;
    let mut call = calls
        .into_iter()
        .find(|c| c.spec.scene_index == task.layer)
        .ok_or_else(|| {
            StepError::WrongState(format!(
                "timeline {} has no generate asset at layer {}",
                task.composition_id, task.layer
            ))
        })?;
    let cache_hit = call.cache_hit;
    edit::cache_clip(deps, &task.composition_id, &mut call).await?;
    Ok(TimelineClipOutput {
        composition_id: task.composition_id.clone(),
        layer: task.layer,
        provider: call.provider,
        cache_hit,
    })
}

/// Renders the composition (in Lambda, or on the worker) and records it completed; a finished
/// one renders nothing again. A failure is left to the state machine (retry, then
/// [`record_failure`]).
pub async fn render_step(
    deps: &StepDeps,
    input: &TimelineRef,
    progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<TimelineRef, StepError> {
    edit::render_accepted(deps, &input.composition_id, progress).await?;
    Ok(input.clone())
}

/// Reports the rendered composition; one that is not completed (a worker that exited 0 without
/// rendering) is a wrong state.
pub async fn finalize(deps: &StepDeps, input: &TimelineRef) -> Result<TimelineDone, StepError> {
    let (composition, _, _) = edit::stored(deps, &input.composition_id).await?;
    match (composition.status, composition.outputs) {
        (CompositionStatus::Completed, Some(outputs)) => Ok(TimelineDone {
            composition_id: composition.id,
            status: CompositionStatus::Completed,
            outputs,
        }),
        (status, _) => Err(StepError::WrongState(format!(
            "timeline {} is {} after its render",
            input.composition_id,
            status.as_str()
        ))),
    }
}

/// Records the failure on the composition (kept as it is if it already ended, e.g. the worker
/// recorded its own error first).
pub async fn record_failure(
    deps: &StepDeps,
    input: &TimelineFailureInput,
) -> Result<TimelineRef, StepError> {
    edit::record_failure(deps, &input.composition_id, &input.error_type, &input.cause).await?;
    Ok(TimelineRef {
        composition_id: input.composition_id.clone(),
    })
}

/// The worker's render: records its own failure on the composition (the state machine's
/// RecordTimelineFailure then keeps it) and returns the error, so the task exits non-zero.
pub async fn run_worker(
    deps: &StepDeps,
    input: &TimelineRef,
    progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<(), StepError> {
    match render_step(deps, input, progress).await {
        Ok(_) => Ok(()),
        Err(e) => {
            edit::record_failure(deps, &input.composition_id, e.error_type(), &e.to_string())
                .await?;
            Err(e)
        }
    }
}

//! The one generation Lambda: every task of `statemachine/generation.asl.json` invokes the same
//! function with `{"step": NAME, "input": STEP INPUT}`, and this dispatches to the step in
//! `vidpipe_pipeline::generation` — the same convention as upload processing. One function per
//! pipeline keeps one bootstrap to build and link (each release bootstrap is a fat-LTO link) and
//! one cold start to keep warm; the measured cost is a plan or finalize cold start loading the
//! media code too (8.3 MB instead of 6.3 MB, a millisecond or two).

use crate::StepFailure;
use serde::Deserialize;
use vidpipe_domain::steps::GenerationStep;
use vidpipe_pipeline::StepError;
use vidpipe_pipeline::generation::timeline::{
    self, TimelineClipTask, TimelineFailureInput, TimelineRef,
};
use vidpipe_pipeline::generation::{
    self as steps, ClipTask, ComposeTask, CompositionRef, FailureInput, FinalizeInput, JobRef,
    StepDeps,
};

/// One invocation of the generation function.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "step", content = "input", rename_all = "snake_case")]
pub enum GenerationTask {
    Plan(JobRef),
    /// A recompose execution's first step (its input names the composition).
    PlanRecompose(CompositionRef),
    GenerateClip(ClipTask),
    PollClip(ClipTask),
    /// The job's compose, or a recompose's render when the composition is named.
    Compose(ComposeTask),
    /// The compose output, a recompose's composition, or after the Fargate worker only the job.
    Finalize(Box<FinalizeInput>),
    RecordFailure(FailureInput),
    /// A timeline render's branch (`timeline_id` in the execution input).
    PlanTimeline(TimelineRef),
    GenerateTimelineClip(TimelineClipTask),
    RenderTimeline(TimelineRef),
    FinalizeTimeline(TimelineRef),
    RecordTimelineFailure(TimelineFailureInput),
}

impl GenerationTask {
    pub fn step(&self) -> GenerationStep {
        match self {
            GenerationTask::Plan(_) => GenerationStep::Plan,
            GenerationTask::PlanRecompose(_) => GenerationStep::PlanRecompose,
            GenerationTask::GenerateClip(_) => GenerationStep::GenerateClip,
            GenerationTask::PollClip(_) => GenerationStep::PollClip,
            GenerationTask::Compose(_) => GenerationStep::Compose,
            GenerationTask::Finalize(_) => GenerationStep::Finalize,
            GenerationTask::RecordFailure(_) => GenerationStep::RecordFailure,
            GenerationTask::PlanTimeline(_) => GenerationStep::PlanTimeline,
            GenerationTask::GenerateTimelineClip(_) => GenerationStep::GenerateTimelineClip,
            GenerationTask::RenderTimeline(_) => GenerationStep::RenderTimeline,
            GenerationTask::FinalizeTimeline(_) => GenerationStep::FinalizeTimeline,
            GenerationTask::RecordTimelineFailure(_) => GenerationStep::RecordTimelineFailure,
        }
    }
}

/// Runs one step and returns its output as the JSON the state machine carries on.
pub async fn run_task(
    deps: &StepDeps,
    task: GenerationTask,
) -> Result<serde_json::Value, StepError> {
    fn json(v: impl serde::Serialize) -> Result<serde_json::Value, StepError> {
        Ok(serde_json::to_value(v)?)
    }
    match task {
        GenerationTask::Plan(input) => json(steps::plan(deps, &input).await?),
        GenerationTask::PlanRecompose(input) => json(steps::recompose::plan(deps, &input).await?),
        // One function for both: it reads the clip's record and submits, polls or returns the
        // clip, so a retried or duplicated call of either is harmless.
        GenerationTask::GenerateClip(input) | GenerationTask::PollClip(input) => {
            json(steps::generate_clip(deps, &input).await?)
        }
        GenerationTask::Compose(input) => {
            // Progress goes to the log only: Step Functions has no channel for it.
            let progress = |f: f64| tracing::debug!(progress = f, "composing");
            match input.composition_id {
                Some(composition_id) => {
                    let input = CompositionRef {
                        job_id: input.job_id,
                        composition_id,
                    };
                    json(steps::recompose::render_step(deps, &input, &progress).await?)
                }
                None => {
                    let input = JobRef {
                        job_id: input.job_id,
                    };
                    json(steps::compose(deps, &input, &progress).await?)
                }
            }
        }
        GenerationTask::Finalize(input) => json(steps::finalize_any(deps, &input).await?),
        GenerationTask::RecordFailure(input) => json(steps::record_failure(deps, &input).await?),
        GenerationTask::PlanTimeline(input) => json(timeline::plan(deps, &input).await?),
        GenerationTask::GenerateTimelineClip(input) => {
            json(timeline::generate_clip(deps, &input).await?)
        }
        GenerationTask::RenderTimeline(input) => {
            let progress = |f: f64| tracing::debug!(progress = f, "rendering timeline");
            json(timeline::render_step(deps, &input, &progress).await?)
        }
        GenerationTask::FinalizeTimeline(input) => json(timeline::finalize(deps, &input).await?),
        GenerationTask::RecordTimelineFailure(input) => {
            json(timeline::record_failure(deps, &input).await?)
        }
    }
}

/// The whole life of the generation Lambda: configuration and clients once per cold start,
/// then one step per invocation.
pub async fn serve() -> Result<(), lambda_runtime::Error> {
    crate::init_tracing();
    let config = crate::Config::from_env()?;
    let aws = crate::Aws::load(&config).await;
    let deps = crate::with_media(&config, &aws).await?;
    let deps = &deps;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<GenerationTask>| async move {
            let task = event.payload;
            tracing::info!(step = %task.step(), "generation step");
            run_task(deps, task).await.map_err(StepFailure)
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_is_tagged_by_its_name_with_its_input_beside() {
        let job = serde_json::json!({ "job_id": "job_0000000000000000000000000000abcd" });
        let cmp = serde_json::json!({ "composition_id": "cmp_0000000000000000000000000000abcd" });
        let inputs = [
            (GenerationStep::Plan, job.clone()),
            (
                GenerationStep::PlanRecompose,
                serde_json::json!({ "job_id": job["job_id"], "composition_id": "cmp_0000000000000000000000000000abcd" }),
            ),
            (
                GenerationStep::GenerateClip,
                serde_json::json!({ "job_id": job["job_id"], "scene_index": 2 }),
            ),
            (
                GenerationStep::PollClip,
                serde_json::json!({ "job_id": job["job_id"], "scene_index": 2 }),
            ),
            (GenerationStep::Compose, job.clone()),
            (GenerationStep::Finalize, job.clone()),
            (
                GenerationStep::RecordFailure,
                serde_json::json!({
                    "job_id": job["job_id"],
                    "error_type": vidpipe_domain::names::INTERNAL,
                    "cause": "boom",
                }),
            ),
            (GenerationStep::PlanTimeline, cmp.clone()),
            (
                GenerationStep::GenerateTimelineClip,
                serde_json::json!({ "composition_id": cmp["composition_id"], "layer": 1 }),
            ),
            (GenerationStep::RenderTimeline, cmp.clone()),
            (GenerationStep::FinalizeTimeline, cmp.clone()),
            (
                GenerationStep::RecordTimelineFailure,
                serde_json::json!({
                    "composition_id": cmp["composition_id"],
                    "error_type": vidpipe_domain::names::PROVIDER_REJECTED,
                    "cause": "no",
                }),
            ),
        ];
        assert_eq!(inputs.len(), GenerationStep::ALL.len());
        for (step, input) in inputs {
            let task: GenerationTask =
                serde_json::from_value(serde_json::json!({ "step": step, "input": input }))
                    .unwrap_or_else(|e| panic!("{step}: {e}"));
            assert_eq!(task.step(), step);
        }
        let unknown = serde_json::from_value::<GenerationTask>(serde_json::json!({
            "step": "probe", "input": {}
        }));
        assert!(
            unknown.is_err(),
            "a processing step is not a generation step"
        );
    }
}

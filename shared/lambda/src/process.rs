//! The one processing Lambda: every task of `statemachine/processing.asl.json` invokes the same
//! function with `{"step": NAME, "input": STEP INPUT}`, and this dispatches to the step in
//! `vidpipe_pipeline::processing` (the same convention as generation: one function per pipeline).
//!
//! The input sits under `input` rather than beside `step` because the ASL (JSONPath) cannot merge
//! a constant into a state's whole input; `"input.$": "$"` passes it as it is, with no field list
//! to keep in step with the Rust types.

use crate::{Aws, Config, StepFailure};
use serde::Deserialize;
use vidpipe_domain::steps::ProcessingStep;
use vidpipe_pipeline::StepError;
use vidpipe_pipeline::processing::{
    self as steps, AssembleInput, Probed, ProcessDeps, ProcessFailureInput, ProcessInput,
    PublishInput, SegmentInput, Split,
};

/// One invocation of the processing function.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "step", content = "input", rename_all = "snake_case")]
pub enum ProcessingTask {
    Probe(ProcessInput),
    Transcode(Box<Probed>),
    Split(Box<Probed>),
    RenderSegment(Box<SegmentInput>),
    EncodeAudio(Box<Split>),
    Assemble(Box<AssembleInput>),
    /// A `Rendered`, or after the Fargate worker the `Probed` it was given.
    Publish(Box<PublishInput>),
    RecordFailure(ProcessFailureInput),
}

impl ProcessingTask {
    pub fn step(&self) -> ProcessingStep {
        match self {
            ProcessingTask::Probe(_) => ProcessingStep::Probe,
            ProcessingTask::Transcode(_) => ProcessingStep::Transcode,
            ProcessingTask::Split(_) => ProcessingStep::Split,
            ProcessingTask::RenderSegment(_) => ProcessingStep::RenderSegment,
            ProcessingTask::EncodeAudio(_) => ProcessingStep::EncodeAudio,
            ProcessingTask::Assemble(_) => ProcessingStep::Assemble,
            ProcessingTask::Publish(_) => ProcessingStep::Publish,
            ProcessingTask::RecordFailure(_) => ProcessingStep::RecordFailure,
        }
    }
}

/// Runs one step and returns its output as the JSON the state machine carries on.
pub async fn run_task(
    deps: &ProcessDeps,
    task: ProcessingTask,
) -> Result<serde_json::Value, StepError> {
    fn json(v: impl serde::Serialize) -> Result<serde_json::Value, StepError> {
        Ok(serde_json::to_value(v)?)
    }
    match task {
        ProcessingTask::Probe(input) => json(steps::probe(deps, &input).await?),
        ProcessingTask::Transcode(probed) => {
            // Progress goes to the log only: Step Functions has no channel for it.
            let progress = |f: f64| tracing::debug!(progress = f, "transcoding");
            json(steps::transcode(deps, &probed, &progress).await?)
        }
        ProcessingTask::Split(probed) => json(steps::split(deps, &probed).await?),
        ProcessingTask::RenderSegment(input) => json(steps::render_segment(deps, &input).await?),
        ProcessingTask::EncodeAudio(split) => json(steps::encode_audio(deps, &split).await?),
        ProcessingTask::Assemble(input) => json(steps::assemble(deps, &input).await?),
        ProcessingTask::Publish(input) => json(steps::publish_any(deps, &input).await?),
        ProcessingTask::RecordFailure(input) => json(steps::record_failure(deps, &input).await?),
    }
}

/// The whole life of the processing Lambda: configuration and clients once per cold start,
/// then one step per invocation.
pub async fn serve() -> Result<(), lambda_runtime::Error> {
    crate::init_tracing();
    let config = Config::from_env()?;
    let aws = Aws::load(&config).await;
    let deps = crate::process_deps(&config, &aws)?;
    let deps = &deps;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<ProcessingTask>| async move {
            let task = event.payload;
            tracing::info!(step = %task.step(), "processing step");
            run_task(deps, task).await.map_err(StepFailure)
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_tagged_by_name_with_their_input_beside() {
        let step: ProcessingTask = serde_json::from_value(serde_json::json!({
            "step": "probe",
            "input": { "source": { "bucket": "b", "key": "raw/a/b/c.mp4" } }
        }))
        .unwrap();
        assert!(matches!(&step, ProcessingTask::Probe(i) if i.source.key == "raw/a/b/c.mp4"));
        let step: ProcessingTask = serde_json::from_value(serde_json::json!({
            "step": "record_failure",
            "input": {
                "source": { "bucket": "b", "key": "raw/a/b/c.mp4", "version": "v" },
                "error_type": vidpipe_domain::names::SOURCE_REJECTED,
                "cause": "no video"
            }
        }))
        .unwrap();
        assert_eq!(step.step(), ProcessingStep::RecordFailure);
        let unknown = serde_json::from_value::<ProcessingTask>(serde_json::json!({
            "step": "compose", "input": {}
        }));
        assert!(unknown.is_err());
    }
}

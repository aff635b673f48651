//! The one processing Lambda: every task of `statemachine/processing.asl.json` invokes the same
//! function with `{"step": NAME, "input": STEP INPUT}`, and this dispatches to the step in
//! `vidpipe_pipeline::processing`. One function instead of seven keeps one bootstrap to build and
//! link (each release bootstrap is a fat-LTO link) and one cold start to keep warm.
//!
//! The input sits under `input` rather than beside `step` because the ASL (JSONPath) cannot merge
//! a constant into a state's whole input; `"input.$": "$"` passes it as it is, with no field list
//! to keep in step with the Rust types.

use crate::{Aws, Config, StepFailure};
use serde::Deserialize;
use vidpipe_pipeline::StepError;
use vidpipe_pipeline::processing::{
    self as steps, AssembleInput, Probed, ProcessDeps, ProcessFailureInput, ProcessInput,
    PublishInput, SegmentInput, Split,
};

/// One invocation of the processing function.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "step", content = "input", rename_all = "snake_case")]
pub enum ProcessStep {
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

impl ProcessStep {
    pub fn name(&self) -> &'static str {
        match self {
            ProcessStep::Probe(_) => "probe",
            ProcessStep::Transcode(_) => "transcode",
            ProcessStep::Split(_) => "split",
            ProcessStep::RenderSegment(_) => "render_segment",
            ProcessStep::EncodeAudio(_) => "encode_audio",
            ProcessStep::Assemble(_) => "assemble",
            ProcessStep::Publish(_) => "publish",
            ProcessStep::RecordFailure(_) => "record_failure",
        }
    }
}

/// Runs one step and returns its output as the JSON the state machine carries on.
pub async fn run_step(
    deps: &ProcessDeps,
    step: ProcessStep,
) -> Result<serde_json::Value, StepError> {
    fn json(v: impl serde::Serialize) -> Result<serde_json::Value, StepError> {
        Ok(serde_json::to_value(v)?)
    }
    match step {
        ProcessStep::Probe(input) => json(steps::probe(deps, &input).await?),
        ProcessStep::Transcode(probed) => {
            // Progress goes to the log only: Step Functions has no channel for it.
            let progress = |f: f64| tracing::debug!(progress = f, "transcoding");
            json(steps::transcode(deps, &probed, &progress).await?)
        }
        ProcessStep::Split(probed) => json(steps::split(deps, &probed).await?),
        ProcessStep::RenderSegment(input) => json(steps::render_segment(deps, &input).await?),
        ProcessStep::EncodeAudio(split) => json(steps::encode_audio(deps, &split).await?),
        ProcessStep::Assemble(input) => json(steps::assemble(deps, &input).await?),
        ProcessStep::Publish(input) => json(steps::publish_any(deps, &input).await?),
        ProcessStep::RecordFailure(input) => json(steps::record_failure(deps, &input).await?),
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
        move |event: lambda_runtime::LambdaEvent<ProcessStep>| async move {
            let step = event.payload;
            tracing::info!(step = step.name(), "processing step");
            run_step(deps, step).await.map_err(StepFailure)
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_tagged_by_name_with_their_input_beside() {
        let step: ProcessStep = serde_json::from_value(serde_json::json!({
            "step": "probe",
            "input": { "source": { "bucket": "b", "key": "raw/a/b/c.mp4" } }
        }))
        .unwrap();
        assert!(matches!(&step, ProcessStep::Probe(i) if i.source.key == "raw/a/b/c.mp4"));
        let step: ProcessStep = serde_json::from_value(serde_json::json!({
            "step": "record_failure",
            "input": {
                "source": { "bucket": "b", "key": "raw/a/b/c.mp4", "version": "v" },
                "error_type": "VidPipe.SourceRejected",
                "cause": "{\"errorType\":\"VidPipe.SourceRejected\",\"errorMessage\":\"no video\"}"
            }
        }))
        .unwrap();
        assert_eq!(step.name(), "record_failure");
        let unknown = serde_json::from_value::<ProcessStep>(serde_json::json!({
            "step": "compose", "input": {}
        }));
        assert!(unknown.is_err());
    }
}

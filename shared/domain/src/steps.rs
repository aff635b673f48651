//! The steps of both pipelines, named once. Each is one task state in its state machine, one
//! function in `vidpipe_pipeline::{generation, processing}::steps`, one tag of its Lambda's
//! payload, and the name its timings, progress and bills are kept under. The serde name is the
//! name everywhere, and [`fmt::Display`] prints the same.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The generation state machine's tasks (`statemachine/generation.asl.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GenerationStep {
    Plan,
    /// A recompose's plan: no planning, only the scenes it replaces (often none) and the route.
    PlanRecompose,
    /// Starts a scene's clip (or takes it from the cache): done, or a provider call to poll.
    GenerateClip,
    /// Asks the provider again after the state machine's wait; the same step function.
    PollClip,
    Compose,
    Finalize,
    RecordFailure,
    /// A timeline render's first step: the `generate` clips the cache lacks, and the route.
    PlanTimeline,
    /// Makes one `generate` asset's clip into the clip cache through the provider chain.
    GenerateTimelineClip,
    /// The timeline's one pass in Lambda (the worker runs the same work on Fargate).
    RenderTimeline,
    FinalizeTimeline,
    RecordTimelineFailure,
}

/// The upload-processing state machine's tasks (`statemachine/processing.asl.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessingStep {
    Probe,
    Transcode,
    /// The transcode on the Fargate worker: the same work, billed by the task's size.
    WorkerTranscode,
    Split,
    RenderSegment,
    EncodeAudio,
    Assemble,
    Publish,
    RecordFailure,
}

impl GenerationStep {
    pub const ALL: [GenerationStep; 12] = [
        GenerationStep::Plan,
        GenerationStep::PlanRecompose,
        GenerationStep::GenerateClip,
        GenerationStep::PollClip,
        GenerationStep::Compose,
        GenerationStep::Finalize,
        GenerationStep::RecordFailure,
        GenerationStep::PlanTimeline,
        GenerationStep::GenerateTimelineClip,
        GenerationStep::RenderTimeline,
        GenerationStep::FinalizeTimeline,
        GenerationStep::RecordTimelineFailure,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GenerationStep::Plan => "plan",
            GenerationStep::PlanRecompose => "plan_recompose",
            GenerationStep::GenerateClip => "generate_clip",
            GenerationStep::PollClip => "poll_clip",
            GenerationStep::Compose => "compose",
            GenerationStep::Finalize => "finalize",
            GenerationStep::RecordFailure => "record_failure",
            GenerationStep::PlanTimeline => "plan_timeline",
            GenerationStep::GenerateTimelineClip => "generate_timeline_clip",
            GenerationStep::RenderTimeline => "render_timeline",
            GenerationStep::FinalizeTimeline => "finalize_timeline",
            GenerationStep::RecordTimelineFailure => "record_timeline_failure",
        }
    }
}

impl ProcessingStep {
    pub const ALL: [ProcessingStep; 9] = [
        ProcessingStep::Probe,
        ProcessingStep::Transcode,
        ProcessingStep::WorkerTranscode,
        ProcessingStep::Split,
        ProcessingStep::RenderSegment,
        ProcessingStep::EncodeAudio,
        ProcessingStep::Assemble,
        ProcessingStep::Publish,
        ProcessingStep::RecordFailure,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProcessingStep::Probe => "probe",
            ProcessingStep::Transcode => "transcode",
            ProcessingStep::WorkerTranscode => "worker_transcode",
            ProcessingStep::Split => "split",
            ProcessingStep::RenderSegment => "render_segment",
            ProcessingStep::EncodeAudio => "encode_audio",
            ProcessingStep::Assemble => "assemble",
            ProcessingStep::Publish => "publish",
            ProcessingStep::RecordFailure => "record_failure",
        }
    }

    /// Whether this step runs on the Fargate worker, so its seconds are billed there.
    pub fn on_worker(self) -> bool {
        self == ProcessingStep::WorkerTranscode
    }
}

impl fmt::Display for GenerationStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ProcessingStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_name(v: impl Serialize) -> String {
        serde_json::to_value(v)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn the_printed_name_is_the_serde_name() {
        for s in GenerationStep::ALL {
            assert_eq!(s.to_string(), serde_name(s));
            assert_eq!(
                serde_json::from_value::<GenerationStep>(serde_name(s).into()).unwrap(),
                s
            );
        }
        for s in ProcessingStep::ALL {
            assert_eq!(s.to_string(), serde_name(s));
            assert_eq!(
                serde_json::from_value::<ProcessingStep>(serde_name(s).into()).unwrap(),
                s
            );
        }
    }
}

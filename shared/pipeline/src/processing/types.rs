//! The values upload-processing steps hand each other: small, keys and numbers only, so every
//! state stays far under Step Functions' 256 KB.

use serde::{Deserialize, Serialize};
use std::time::Instant;
use vidpipe_domain::processing::{Route, SourceFacts, SourcePath, SourceRef, TrimWindow};
use vidpipe_domain::steps::ProcessingStep;

/// The execution input: the uploaded object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInput {
    pub source: SourceRef,
}

/// Seconds one step spent, for the manifest and its bill. Segment renders carry their index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub step: ProcessingStep,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<u32>,
    pub seconds: f64,
}

impl Timing {
    pub fn since(step: ProcessingStep, started: Instant) -> Timing {
        Timing {
            step,
            segment: None,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// Probe's output, carried by every later step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probed {
    pub source: SourceRef,
    pub source_id: String,
    pub path: SourcePath,
    pub facts: SourceFacts,
    pub window: TrimWindow,
    pub route: Route,
    pub has_audio: bool,
    #[serde(default)]
    pub timings: Vec<Timing>,
}

/// Where the renditions and thumbnail were written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendered {
    pub probed: Probed,
    pub thumbnail_key: String,
    #[serde(default)]
    pub timings: Vec<Timing>,
}

/// One segment's work order: output frames `[first_frame, first_frame + frames)`, read from
/// `key` starting at source time `input_offset`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentTask {
    pub index: u32,
    pub key: String,
    pub first_frame: u64,
    pub input_offset: f64,
    pub frames: u64,
}

/// The split's plan: the segments, where the audio goes, the thumbnail already written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    pub probed: Probed,
    pub segments: Vec<SegmentTask>,
    pub audio_key: String,
    pub thumbnail_key: String,
    #[serde(default)]
    pub timings: Vec<Timing>,
}

/// Assemble's input: the plan, the Map's results (one per segment, in any order) and the audio
/// step's timing; the two ran side by side in a Parallel state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssembleInput {
    pub split: Split,
    pub rendered: Vec<SegmentDone>,
    pub audio: Timing,
}

/// One Map iteration's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentInput {
    pub probed: Probed,
    pub segment: SegmentTask,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentDone {
    pub index: u32,
    /// One key per encoding, in `RenditionSet::encodings` order.
    pub parts: Vec<String>,
    pub seconds: f64,
}

/// What publish is given: the `Rendered` a Lambda step returned, or, after the Fargate worker,
/// the `Probed` the route chose from (the worker's `Rendered` is then read from `temp/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PublishInput {
    Rendered(Box<Rendered>),
    AfterWorker(Box<Probed>),
}

/// The Catch's input: the execution's source and Step Functions' error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessFailureInput {
    pub source: SourceRef,
    pub error_type: String,
    pub cause: String,
}

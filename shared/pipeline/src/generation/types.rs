//! The values generation steps hand each other: small on purpose (payloads carry ids and keys,
//! never media), since every state stays far under Step Functions' 256 KB.

use crate::error::StepError;
use serde::{Deserialize, Serialize};
use vidpipe_domain::job::{ComposeRoute, JobId, JobStatus, Outputs};
use vidpipe_domain::media::{ProbeInfo, ToolVersions};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRef {
    pub job_id: JobId,
}

/// A recompose in the state machine: the completed job and the composition it renders. The
/// execution's input, and what plan_recompose, compose and finalize are handed on that branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompositionRef {
    pub job_id: JobId,
    pub composition_id: vidpipe_domain::composition::CompositionId,
}

/// Compose's input: the job (its first composition), or a recompose's composition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComposeTask {
    pub job_id: JobId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition_id: Option<vidpipe_domain::composition::CompositionId>,
}

/// One Map iteration's input: small on purpose (payloads carry keys, never media).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClipTask {
    pub job_id: JobId,
    pub scene_index: u32,
    /// Set for a scene a recompose replaces: the clip is that composition's, made from its new
    /// prompt, and the job's own clip of the scene is left alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition_id: Option<vidpipe_domain::composition::CompositionId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanOutput {
    pub job_id: JobId,
    pub total_frames: u32,
    /// Where compose runs: the state machine's Choice reads it.
    pub route: ComposeRoute,
    pub scenes: Vec<ClipTask>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipOutput {
    pub job_id: JobId,
    pub scene_index: u32,
    /// The task's composition, handed back so PollClip's input (this output) names it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition_id: Option<vidpipe_domain::composition::CompositionId>,
    pub key: String,
    pub cache_hit: bool,
    /// The provider that made the clip, or is making it.
    #[serde(default)]
    pub provider: String,
    /// Set while a provider is still working: call the step again after this many seconds
    /// (the state machine's `Wait` reads it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_seconds: Option<u32>,
}

/// The measured properties of the composed video, carried to finalize and into metadata.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputProbe {
    pub duration_seconds: f64,
    pub width: u32,
    pub height: u32,
    pub video_codec: String,
    pub pix_fmt: String,
    pub audio_codec: Option<String>,
    pub frames: Option<u64>,
    pub size_bytes: u64,
}

impl OutputProbe {
    pub(crate) fn from_probe(p: &ProbeInfo, size_bytes: u64) -> Result<Self, StepError> {
        let v = p
            .video()
            .ok_or_else(|| StepError::WrongState("composed file has no video stream".into()))?;
        Ok(Self {
            duration_seconds: p.duration_seconds.unwrap_or_default(),
            width: v.width.unwrap_or_default(),
            height: v.height.unwrap_or_default(),
            video_codec: v.codec.clone(),
            pix_fmt: v.pix_fmt.clone().unwrap_or_default(),
            audio_codec: p.audio().map(|a| a.codec.clone()),
            frames: v.frames,
            size_bytes,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComposeOutput {
    pub job_id: JobId,
    /// The composition rendered; absent in outputs written before compositions were recorded
    /// (the job's first, then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition_id: Option<vidpipe_domain::composition::CompositionId>,
    pub final_key: String,
    pub thumbnail_key: String,
    pub timeline_key: String,
    pub probe: OutputProbe,
    pub tools: ToolVersions,
    pub compose_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalizeOutput {
    pub job_id: JobId,
    pub status: JobStatus,
    pub outputs: Outputs,
}

/// Finalize's input: the compose output itself (compose ran in Lambda and returned it), a
/// recompose's composition (its render recorded it whole, in Lambda or on Fargate), or only the
/// job (compose ran on Fargate, which cannot return a payload, and stored it instead). Untagged,
/// so the order matters: a composition reference is tried before the bare job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FinalizeInput {
    Composed(Box<ComposeOutput>),
    Recomposed(CompositionRef),
    AfterWorker(JobRef),
}

/// What the ASL's Catch hands to record-failure: the error's type name and its message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureInput {
    pub job_id: JobId,
    /// Set on a recompose: the failure is that composition's, and the completed job keeps its
    /// outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition_id: Option<vidpipe_domain::composition::CompositionId>,
    pub error_type: String,
    pub cause: String,
}

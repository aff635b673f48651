//! The generation job: its status machine, per-stage timings, per-clip records and the progress
//! figure derived from them. Status changes only go through [`Job::transition`], which refuses
//! moves the machine does not allow; stores add the optimistic version check on top.

use crate::plan::Plan;
use crate::request::GenerationRequest;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// `job_` followed by a UUIDv7 in simple form: sortable by creation time, safe in keys and URLs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

impl JobId {
    pub fn generate() -> Self {
        Self(format!("job_{}", uuid::Uuid::now_v7().simple()))
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = raw.len() == 36
            && raw.starts_with("job_")
            && raw[4..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!("not a job id: {}", crate::error::echo(raw)))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for JobId {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        Self::parse(&v)
    }
}

impl From<JobId> for String {
    fn from(j: JobId) -> String {
        j.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Planning,
    Generating,
    Composing,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 7] = [
        JobStatus::Queued,
        JobStatus::Planning,
        JobStatus::Generating,
        JobStatus::Composing,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// The allowed moves: forward one stage at a time, and from any live state to failed or
    /// cancelled. Terminal states never move again.
    pub fn can_move_to(self, next: JobStatus) -> bool {
        use JobStatus::*;
        match (self, next) {
            (Queued, Planning)
            | (Planning, Generating)
            | (Generating, Composing)
            | (Composing, Completed) => true,
            (from, Failed | Cancelled) => !from.is_terminal(),
            _ => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Planning => "planning",
            JobStatus::Generating => "generating",
            JobStatus::Composing => "composing",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// The working stage this status belongs to, if it is one.
    pub fn stage(self) -> Option<Stage> {
        match self {
            JobStatus::Planning => Some(Stage::Planning),
            JobStatus::Generating => Some(Stage::Generating),
            JobStatus::Composing => Some(Stage::Composing),
            _ => None,
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a job's composition runs. Decided in Rust from the plan (as processing's probe decides
/// its route), so the state machine's Choice, the embedded runner and a test all read one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComposeRoute {
    /// The compose step in Lambda (15 minutes at most).
    Lambda,
    /// The Fargate worker, for jobs longer than the stack's threshold.
    Worker,
}

impl ComposeRoute {
    /// `worker_threshold_frames` is `Some` only where a worker exists: more frames than it go
    /// to the worker.
    pub fn for_frames(total_frames: u32, worker_threshold_frames: Option<u32>) -> ComposeRoute {
        match worker_threshold_frames {
            Some(threshold) if total_frames > threshold => ComposeRoute::Worker,
            _ => ComposeRoute::Lambda,
        }
    }
}

/// The three working stages, with their share of the progress bar.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Planning,
    Generating,
    Composing,
}

impl Stage {
    /// The serde name: what records, metadata and events call the stage.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Planning => "planning",
            Stage::Generating => "generating",
            Stage::Composing => "composing",
        }
    }

    /// Percent of the whole job at which the stage starts and ends. Clip generation dominates
    /// wall time with real providers, so it carries the largest share.
    pub fn span(self) -> (f64, f64) {
        match self {
            Stage::Planning => (0.0, 5.0),
            Stage::Generating => (5.0, 70.0),
            Stage::Composing => (70.0, 100.0),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTiming {
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl StageTiming {
    pub fn seconds(&self) -> Option<f64> {
        Some((self.finished_at? - self.started_at?).num_milliseconds() as f64 / 1000.0)
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClipStatus {
    Pending,
    Generating,
    Done,
    Failed,
}

/// One scene's clip. Stored apart from the job record so that clips generated in parallel never
/// contend for the job's version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipRecord {
    pub index: u32,
    pub status: ClipStatus,
    pub provider: String,
    pub key: Option<String>,
    pub cache_hit: bool,
    pub attempts: u32,
    pub frames: u32,
    pub error: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// The provider's id for a call still running (a prediction id, an invocation ARN), so a
    /// later poll or a cancel can find it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// Why an earlier provider in the chain did not make this clip, when one did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// What the provider call that made it cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::ports::ProviderCost>,
    /// Polls made of the running call; bounds how long a stuck call is waited for.
    #[serde(default)]
    pub polls: u32,
    /// Milliseconds the clip's steps ran (submits, polls, fitting), for the compute cost.
    #[serde(default)]
    pub compute_ms: u64,
    /// Bytes fetched from the provider.
    #[serde(default)]
    pub bytes: u64,
    /// A small JPEG of the finished clip (its middle frame, [`crate::keys::generation_thumbnail`]),
    /// for the clip's tile; absent on records written before tiles had pictures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_key: Option<String>,
}

/// What a generation job cost: the providers' bills (as they reported them, or by the configured
/// price table), the compute its steps ran for, and the bytes it moved.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationCost {
    pub total_usd: f64,
    pub provider_usd: f64,
    pub compute_usd: f64,
    /// Milliseconds the steps ran for, by step (`plan`, `generate_clip`, `compose`).
    pub compute_ms: std::collections::BTreeMap<String, u64>,
    /// The functions' memory the compute is priced at; absent on one machine (no bill).
    pub memory_mb: Option<u32>,
    /// Fetched from providers, written to and read back from the store, and the outputs.
    pub bytes_moved: u64,
    /// One line per bill: what, how much, and how it was reached.
    pub lines: Vec<CostLine>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostLine {
    pub item: String,
    pub usd: f64,
    pub basis: String,
}

impl ClipRecord {
    /// A scene's clip before anything was tried, assigned to the chain's first provider.
    pub fn pending(index: u32, provider: &str, frames: u32, now: DateTime<Utc>) -> Self {
        Self {
            index,
            status: ClipStatus::Pending,
            provider: provider.to_owned(),
            key: None,
            cache_hit: false,
            attempts: 0,
            frames,
            error: None,
            updated_at: now,
            handle: None,
            fallback: None,
            cost: None,
            polls: 0,
            compute_ms: 0,
            bytes: 0,
            thumbnail_key: None,
        }
    }
}

/// Why a job failed: a stable code (the error's type name) and a human reason.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub code: String,
    pub message: String,
    pub stage: Option<Stage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outputs {
    pub final_key: String,
    pub thumbnail_key: String,
    pub timeline_key: String,
    pub metadata_key: String,
    pub duration_seconds: f64,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    /// The tenant: the JWT subject over the API, `local` on one machine.
    pub owner: String,
    pub request: GenerationRequest,
    pub status: JobStatus,
    pub idempotency_key: Option<String>,
    pub plan: Option<Plan>,
    pub stages: BTreeMap<Stage, StageTiming>,
    /// 0..=1 within the composing stage, from ffmpeg's progress output.
    pub compose_fraction: f64,
    pub error: Option<JobError>,
    pub outputs: Option<Outputs>,
    /// Filled by stores on read; never written through the job record.
    #[serde(default)]
    pub clips: Vec<ClipRecord>,
    /// What the job cost, set when it completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<GenerationCost>,
    /// Optimistic concurrency: every successful write increments it.
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job {job} cannot move from {from} to {to}")]
pub struct TransitionError {
    pub job: JobId,
    pub from: JobStatus,
    pub to: JobStatus,
}

impl Job {
    pub fn new(
        owner: impl Into<String>,
        request: GenerationRequest,
        idempotency_key: Option<String>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: JobId::generate(),
            owner: owner.into(),
            request,
            status: JobStatus::Queued,
            idempotency_key,
            plan: None,
            stages: BTreeMap::new(),
            compose_fraction: 0.0,
            error: None,
            outputs: None,
            clips: Vec::new(),
            cost: None,
            version: 0,
            created_at: now,
            updated_at: now,
        }
    }

    /// Moves the job to `to`, closing the current stage's timing and opening the next one.
    /// Returns the changed copy; persisting it (with the version check) is the store's job.
    pub fn transition(&self, to: JobStatus, now: DateTime<Utc>) -> Result<Job, TransitionError> {
        if !self.status.can_move_to(to) {
            return Err(TransitionError {
                job: self.id.clone(),
                from: self.status,
                to,
            });
        }
        let mut next = self.clone();
        if let Some(stage) = self.status.stage() {
            next.stages.entry(stage).or_default().finished_at = Some(now);
        }
        if let Some(stage) = to.stage() {
            next.stages.entry(stage).or_default().started_at = Some(now);
        }
        next.status = to;
        next.updated_at = now;
        Ok(next)
    }

    /// Moves to `failed` with a reason, keeping which stage it failed in.
    pub fn fail(
        &self,
        code: impl Into<String>,
        message: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Result<Job, TransitionError> {
        let stage = self.status.stage();
        let mut next = self.transition(JobStatus::Failed, now)?;
        next.error = Some(JobError {
            code: code.into(),
            message: message.into(),
            stage,
        });
        Ok(next)
    }

    pub fn cache_hits(&self) -> u32 {
        self.clips
            .iter()
            .filter(|c| c.cache_hit && c.status == ClipStatus::Done)
            .count() as u32
    }

    pub fn clips_done(&self) -> u32 {
        self.clips
            .iter()
            .filter(|c| c.status == ClipStatus::Done)
            .count() as u32
    }

    /// Percent complete, weighted by stage, by finished clips and by compose progress. Derived,
    /// never stored, so it cannot disagree with the records it summarises.
    pub fn progress(&self) -> f64 {
        let within = |stage: Stage, fraction: f64| {
            let (lo, hi) = stage.span();
            lo + (hi - lo) * fraction.clamp(0.0, 1.0)
        };
        match self.status {
            JobStatus::Queued => 0.0,
            JobStatus::Planning => within(Stage::Planning, 0.0),
            JobStatus::Generating => {
                let total = self.request.clip_count.get() as f64;
                within(Stage::Generating, self.clips_done() as f64 / total)
            }
            JobStatus::Composing => within(Stage::Composing, self.compose_fraction),
            JobStatus::Completed => 100.0,
            // A stopped job keeps the progress it had reached, which tells where it stopped.
            JobStatus::Failed | JobStatus::Cancelled => match self
                .error
                .as_ref()
                .and_then(|e| e.stage)
                .or_else(|| self.last_stage())
            {
                Some(Stage::Planning) | None => 0.0,
                Some(Stage::Generating) => within(
                    Stage::Generating,
                    self.clips_done() as f64 / self.request.clip_count.get() as f64,
                ),
                Some(Stage::Composing) => within(Stage::Composing, self.compose_fraction),
            },
        }
    }

    fn last_stage(&self) -> Option<Stage> {
        self.stages.keys().next_back().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobStatus::*;

    #[test]
    fn clip_records_written_before_tile_pictures_still_read() {
        let old = r#"{"index":2,"status":"done","provider":"procedural","key":"generations/j/clips/clip_002.mp4","cache_hit":false,"attempts":1,"frames":90,"error":null,"updated_at":"2026-11-01T10:00:00Z"}"#;
        let clip: ClipRecord = serde_json::from_str(old).unwrap();
        assert_eq!(clip.thumbnail_key, None);
        let mut with = clip.clone();
        with.thumbnail_key = Some("generations/j/thumbnails/clip_002.jpg".into());
        let back: ClipRecord =
            serde_json::from_str(&serde_json::to_string(&with).unwrap()).unwrap();
        assert_eq!(back, with);
        // An absent picture is left out, so a record reads the same to an older reader.
        assert!(
            !serde_json::to_string(&clip)
                .unwrap()
                .contains("thumbnail_key")
        );
    }

    #[test]
    fn only_the_documented_moves_are_allowed() {
        let allowed = [
            (Queued, Planning),
            (Planning, Generating),
            (Generating, Composing),
            (Composing, Completed),
        ];
        for from in JobStatus::ALL {
            for to in JobStatus::ALL {
                let expected = allowed.contains(&(from, to))
                    || (!from.is_terminal() && matches!(to, Failed | Cancelled));
                assert_eq!(from.can_move_to(to), expected, "{from} -> {to}");
            }
        }
    }
}

#[cfg(test)]
mod route_tests {
    use super::*;

    #[test]
    fn only_a_stack_with_a_worker_sends_long_jobs_there() {
        assert_eq!(ComposeRoute::for_frames(3601, None), ComposeRoute::Lambda);
        assert_eq!(
            ComposeRoute::for_frames(3600, Some(3600)),
            ComposeRoute::Lambda
        );
        assert_eq!(
            ComposeRoute::for_frames(3601, Some(3600)),
            ComposeRoute::Worker
        );
        assert_eq!(ComposeRoute::for_frames(1, Some(0)), ComposeRoute::Worker);
    }
}

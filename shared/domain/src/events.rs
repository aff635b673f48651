//! Live progress: the events a subscriber is sent about one job, and the pure functions that turn
//! what it has been told so far ([`LiveSnapshot`]) and the job's current record into the next
//! events. The stack's pusher, `vidpipe serve` and the web app share these shapes.
//!
//! Records are read whole and compared with the snapshot, never diffed record to record, so a
//! stream that skips, repeats or reorders changes still yields one ordered, gap-free story:
//! stages in their order, each clip's latest status, a percent that never goes down, and one
//! terminal event. The same record twice yields nothing the second time.

use crate::job::{ClipStatus, Job, JobStatus, Stage};
use crate::names;
use crate::processing::{ProcessJob, ProcessStage, ProcessStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which pipeline a job belongs to: the webhooks' kind, one type for both.
pub use crate::webhook::JobKind;

/// One output a completed job offers. The domain knows its store key; the sender turns the key
/// into a link (presigned on AWS, a `/v1/...` download route on one machine), and only the name
/// and the link go on the wire.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Download {
    pub name: String,
    #[serde(default)]
    pub url: String,
    #[serde(skip)]
    pub key: String,
}

/// A server-to-client frame. Every frame carries `seq`, increasing per job within one
/// subscription, so a client drops any frame with `seq <= last seen`. The `subscribed` ack and
/// `error` frames carry 0; a job's events start at 1.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    /// The job entered a stage (generation: planning, generating, composing; processing: probe,
    /// trim, watermark, renditions, thumbnail, publish).
    Stage {
        job_id: String,
        kind: JobKind,
        stage: String,
        at: DateTime<Utc>,
        seq: u64,
    },
    /// A generation's clip changed status, provider or fallback.
    Clip {
        job_id: String,
        kind: JobKind,
        index: u32,
        status: ClipStatus,
        provider: String,
        fallback: Option<String>,
        cache_hit: bool,
        /// The finished clip's picture for its tile (named `thumbnail`), linked like a
        /// completed job's downloads; only on `done`, and absent for clips made before clips
        /// had pictures.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thumbnail: Option<Download>,
        seq: u64,
    },
    /// Percent done, 0..=100, never lower than an earlier one for the same job.
    Progress {
        job_id: String,
        kind: JobKind,
        percent: f64,
        seq: u64,
    },
    Completed {
        job_id: String,
        kind: JobKind,
        downloads: Vec<Download>,
        seq: u64,
    },
    Failed {
        job_id: String,
        kind: JobKind,
        reason: String,
        code: String,
        seq: u64,
    },
    /// The ack of a subscribe.
    Subscribed {
        job_id: String,
        kind: JobKind,
        seq: u64,
    },
    /// A refused subscribe (no such job, or another tenant's: the same answer) or a bad message.
    Error {
        message: String,
        job_id: Option<String>,
        seq: u64,
    },
}

/// The one answer to a subscribe for a job that does not exist or is another tenant's.
pub const NOT_SUBSCRIBABLE: &str = "no such job";

impl LiveEvent {
    pub fn subscribed(job_id: impl Into<String>, kind: JobKind) -> LiveEvent {
        LiveEvent::Subscribed {
            job_id: job_id.into(),
            kind,
            seq: 0,
        }
    }

    pub fn error(message: impl Into<String>, job_id: Option<String>) -> LiveEvent {
        LiveEvent::Error {
            message: message.into(),
            job_id,
            seq: 0,
        }
    }

    /// The `type` tag as it appears on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            LiveEvent::Stage { .. } => "stage",
            LiveEvent::Clip { .. } => "clip",
            LiveEvent::Progress { .. } => "progress",
            LiveEvent::Completed { .. } => "completed",
            LiveEvent::Failed { .. } => "failed",
            LiveEvent::Subscribed { .. } => "subscribed",
            LiveEvent::Error { .. } => "error",
        }
    }

    pub fn seq(&self) -> u64 {
        match self {
            LiveEvent::Stage { seq, .. }
            | LiveEvent::Clip { seq, .. }
            | LiveEvent::Progress { seq, .. }
            | LiveEvent::Completed { seq, .. }
            | LiveEvent::Failed { seq, .. }
            | LiveEvent::Subscribed { seq, .. }
            | LiveEvent::Error { seq, .. } => *seq,
        }
    }

    pub fn job_id(&self) -> Option<&str> {
        match self {
            LiveEvent::Stage { job_id, .. }
            | LiveEvent::Clip { job_id, .. }
            | LiveEvent::Progress { job_id, .. }
            | LiveEvent::Completed { job_id, .. }
            | LiveEvent::Failed { job_id, .. }
            | LiveEvent::Subscribed { job_id, .. } => Some(job_id),
            LiveEvent::Error { job_id, .. } => job_id.as_deref(),
        }
    }

    /// Fills each download's link from its key (a no-op on other events).
    pub fn fill_downloads(&mut self, mut url_for: impl FnMut(&str) -> String) {
        match self {
            LiveEvent::Completed { downloads, .. } => {
                for d in downloads {
                    d.url = url_for(&d.key);
                }
            }
            LiveEvent::Clip {
                thumbnail: Some(d), ..
            } => d.url = url_for(&d.key),
            _ => {}
        }
    }

    /// The store keys a completed event's links (or a done clip's picture's) are to be made for.
    pub fn download_keys(&self) -> Vec<&str> {
        match self {
            LiveEvent::Completed { downloads, .. } => {
                downloads.iter().map(|d| d.key.as_str()).collect()
            }
            LiveEvent::Clip {
                thumbnail: Some(d), ..
            } => vec![d.key.as_str()],
            _ => Vec::new(),
        }
    }

    /// The JSON text frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events serialize: no maps with non-string keys")
    }
}

/// What a client may send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ClientMessage {
    Subscribe { job_id: String },
    Unsubscribe { job_id: String },
}

impl ClientMessage {
    /// Parses a text frame; the error is the message an `error` frame carries back.
    pub fn parse(text: &str) -> Result<ClientMessage, String> {
        serde_json::from_str(text).map_err(|_| {
            "expected {\"action\":\"subscribe\"|\"unsubscribe\",\"job_id\":\"...\"}".to_owned()
        })
    }
}

/// The last status a subscriber was told for one clip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClipSeen {
    pub index: u32,
    pub status: ClipStatus,
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    #[serde(default)]
    pub cache_hit: bool,
}

/// How a job's run ended, as told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    Failed,
}

/// What one subscriber has been told about one job: small enough to keep per subscription (a
/// DynamoDB attribute, a map entry in `vidpipe serve`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveSnapshot {
    pub kind: JobKind,
    /// The last `seq` sent.
    #[serde(default)]
    pub seq: u64,
    /// The last stage told, by its wire name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clips: Vec<ClipSeen>,
    /// The highest percent sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

impl LiveSnapshot {
    pub fn new(kind: JobKind) -> LiveSnapshot {
        LiveSnapshot {
            kind,
            seq: 0,
            stage: None,
            clips: Vec::new(),
            percent: None,
            outcome: None,
        }
    }
}

/// Percent as sent: one decimal, so float noise never makes a "new" figure.
fn rounded(percent: f64) -> f64 {
    (percent.clamp(0.0, 100.0) * 10.0).round() / 10.0
}

/// Builds the events of one call, numbering them after the snapshot's `seq`.
struct Emitter {
    job_id: String,
    kind: JobKind,
    next: LiveSnapshot,
    events: Vec<LiveEvent>,
}

impl Emitter {
    fn new(prev: Option<&LiveSnapshot>, kind: JobKind, job_id: &str) -> Emitter {
        let next = match prev {
            Some(p) if p.kind == kind => p.clone(),
            _ => LiveSnapshot::new(kind),
        };
        Emitter {
            job_id: job_id.to_owned(),
            kind,
            next,
            events: Vec::new(),
        }
    }

    fn seq(&mut self) -> u64 {
        self.next.seq += 1;
        self.next.seq
    }

    fn stage(&mut self, name: &str, at: DateTime<Utc>) {
        let seq = self.seq();
        self.events.push(LiveEvent::Stage {
            job_id: self.job_id.clone(),
            kind: self.kind,
            stage: name.to_owned(),
            at,
            seq,
        });
        self.next.stage = Some(name.to_owned());
    }

    /// Sends the percent if it is above every one sent before (or is the first).
    fn progress(&mut self, percent: f64) {
        let percent = rounded(percent);
        if self.next.percent.is_some_and(|p| percent <= p) {
            return;
        }
        let seq = self.seq();
        self.events.push(LiveEvent::Progress {
            job_id: self.job_id.clone(),
            kind: self.kind,
            percent,
            seq,
        });
        self.next.percent = Some(percent);
    }

    fn completed(&mut self, downloads: Vec<Download>) {
        if self.next.outcome == Some(Outcome::Completed) {
            return;
        }
        let seq = self.seq();
        self.events.push(LiveEvent::Completed {
            job_id: self.job_id.clone(),
            kind: self.kind,
            downloads,
            seq,
        });
        self.next.outcome = Some(Outcome::Completed);
    }

    fn failed(&mut self, code: &str, reason: &str) {
        if self.next.outcome == Some(Outcome::Failed) {
            return;
        }
        let seq = self.seq();
        self.events.push(LiveEvent::Failed {
            job_id: self.job_id.clone(),
            kind: self.kind,
            reason: reason.to_owned(),
            code: code.to_owned(),
            seq,
        });
        self.next.outcome = Some(Outcome::Failed);
    }

    fn done(self) -> (Vec<LiveEvent>, LiveSnapshot) {
        (self.events, self.next)
    }
}

const GENERATION_STAGES: [Stage; 3] = [Stage::Planning, Stage::Generating, Stage::Composing];

fn told_generation_stage(snapshot: &LiveSnapshot) -> Option<Stage> {
    let told = snapshot.stage.as_deref()?;
    GENERATION_STAGES.into_iter().find(|s| s.as_str() == told)
}

/// The events that bring a subscriber told `prev` up to `job` (all of them from `None`), and
/// what it has then been told.
pub fn generation_events(prev: Option<&LiveSnapshot>, job: &Job) -> (Vec<LiveEvent>, LiveSnapshot) {
    let mut e = Emitter::new(prev, JobKind::Generation, job.id.as_str());
    let current = job.status.stage().or_else(|| {
        // A stopped or completed job has passed every stage it has a timing for.
        job.stages.keys().next_back().copied()
    });
    for stage in GENERATION_STAGES {
        let told = told_generation_stage(&e.next);
        let entered = current.is_some_and(|c| stage <= c) || job.status == JobStatus::Completed;
        if entered && told.is_none_or(|t| stage > t) {
            let at = job
                .stages
                .get(&stage)
                .and_then(|t| t.started_at)
                .unwrap_or(job.updated_at);
            e.stage(stage.as_str(), at);
        }
        if stage == Stage::Generating && told_generation_stage(&e.next) >= Some(Stage::Generating) {
            clip_events(&mut e, job);
        }
    }
    e.progress(job.progress());
    match job.status {
        JobStatus::Completed => {
            let downloads = job
                .outputs
                .as_ref()
                .map(|o| {
                    vec![
                        Download {
                            name: "final".to_owned(),
                            url: String::new(),
                            key: o.final_key.clone(),
                        },
                        Download {
                            name: "thumbnail".to_owned(),
                            url: String::new(),
                            key: o.thumbnail_key.clone(),
                        },
                    ]
                })
                .unwrap_or_default();
            e.completed(downloads);
        }
        JobStatus::Failed => {
            let (code, reason) = job
                .error
                .as_ref()
                .map(|err| (err.code.as_str(), err.message.as_str()))
                .unwrap_or((names::INTERNAL, "the job failed"));
            e.failed(code, reason);
        }
        JobStatus::Cancelled => e.failed(names::CANCELLED, "the job was cancelled"),
        _ => {}
    }
    e.done()
}

fn clip_events(e: &mut Emitter, job: &Job) {
    let mut clips: Vec<_> = job.clips.iter().collect();
    clips.sort_by_key(|c| c.index);
    for clip in clips {
        let seen = ClipSeen {
            index: clip.index,
            status: clip.status,
            provider: clip.provider.clone(),
            fallback: clip.fallback.clone(),
            cache_hit: clip.cache_hit,
        };
        match e.next.clips.iter_mut().find(|c| c.index == clip.index) {
            Some(old) if *old == seen => continue,
            Some(old) => *old = seen.clone(),
            None => e.next.clips.push(seen.clone()),
        }
        let seq = e.seq();
        e.events.push(LiveEvent::Clip {
            job_id: e.job_id.clone(),
            kind: e.kind,
            index: seen.index,
            status: seen.status,
            provider: seen.provider,
            fallback: seen.fallback,
            cache_hit: seen.cache_hit,
            thumbnail: clip
                .thumbnail_key
                .as_ref()
                .filter(|_| clip.status == ClipStatus::Done)
                .map(|key| Download {
                    name: "thumbnail".into(),
                    url: String::new(),
                    key: key.clone(),
                }),
            seq,
        });
    }
}

/// [`generation_events`] for a processing record. A new run of the same record (a retry after a
/// failure) is told from its first stage again; its percent still never goes below one sent.
pub fn processing_events(
    prev: Option<&LiveSnapshot>,
    job: &ProcessJob,
) -> (Vec<LiveEvent>, LiveSnapshot) {
    let mut e = Emitter::new(prev, JobKind::Processing, &job.id);
    if job.status == ProcessStatus::Running && e.next.outcome.is_some() {
        e.next.outcome = None;
        e.next.stage = None;
    }
    let current = match (job.status, job.step) {
        (ProcessStatus::Succeeded, _) => Some(ProcessStage::Publish),
        (_, step) => step.map(|s| s.stage),
    };
    let told = e.next.stage.as_deref().and_then(ProcessStage::parse);
    if let Some(current) = current {
        for stage in ProcessStage::ALL {
            if stage <= current && told.is_none_or(|t| stage > t) {
                let at = job
                    .step
                    .filter(|s| s.stage == stage)
                    .map(|s| s.started_at)
                    .unwrap_or(job.updated_at);
                e.stage(stage.as_str(), at);
            }
        }
    }
    e.progress(job.progress());
    match job.status {
        ProcessStatus::Succeeded => {
            let mut downloads: Vec<Download> = job
                .outputs
                .iter()
                .map(|o| Download {
                    name: o.rendition.clone(),
                    url: String::new(),
                    key: o.key.clone(),
                })
                .collect();
            if let Some(key) = &job.thumbnail_key {
                downloads.push(Download {
                    name: "thumbnail".to_owned(),
                    url: String::new(),
                    key: key.clone(),
                });
            }
            e.completed(downloads);
        }
        ProcessStatus::Failed => {
            let (code, reason) = job
                .error
                .as_ref()
                .map(|f| (f.error.as_str(), f.reason.as_str()))
                .unwrap_or((names::INTERNAL, "processing failed"));
            e.failed(code, reason);
        }
        ProcessStatus::Running => {}
    }
    e.done()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{ClipRecord, JobError, Outputs};
    use crate::processing::{OutputRecord, ProcessFailure, SourceRef};

    fn request(clips: u32) -> crate::request::GenerationRequest {
        let body: crate::request::GenerationRequestBody =
            serde_json::from_value(serde_json::json!({
                "prompt": "A fox wakes. It hunts at dawn.", "duration_seconds": 10,
                "clip_count": clips, "aspect_ratio": "16:9"
            }))
            .unwrap();
        body.validate().unwrap()
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    /// Every state a two-clip generation passes through, in order.
    fn generation_states() -> Vec<Job> {
        let mut states = Vec::new();
        let mut job = Job::new("alice", request(2), None, t(0));
        states.push(job.clone());
        job = job.transition(JobStatus::Planning, t(1)).unwrap();
        states.push(job.clone());
        job = job.transition(JobStatus::Generating, t(2)).unwrap();
        job.clips = vec![
            ClipRecord::pending(0, "replicate", 150, t(2)),
            ClipRecord::pending(1, "replicate", 150, t(2)),
        ];
        states.push(job.clone());
        job.clips[0].status = ClipStatus::Generating;
        states.push(job.clone());
        job.clips[0].status = ClipStatus::Done;
        states.push(job.clone());
        job.clips[1].status = ClipStatus::Done;
        job.clips[1].provider = "procedural".into();
        job.clips[1].fallback = Some("replicate: throttled".into());
        states.push(job.clone());
        job = job.transition(JobStatus::Composing, t(5)).unwrap();
        states.push(job.clone());
        job.compose_fraction = 0.5;
        states.push(job.clone());
        job = job.transition(JobStatus::Completed, t(9)).unwrap();
        job.outputs = Some(Outputs {
            final_key: "out/final.mp4".into(),
            thumbnail_key: "out/thumb.jpg".into(),
            timeline_key: "out/timeline.json".into(),
            metadata_key: "out/metadata.json".into(),
            duration_seconds: 10.0,
            size_bytes: 1000,
        });
        states.push(job);
        states
    }

    /// Runs a subscriber through `states`, returning everything it was sent.
    fn follow<J>(
        states: &[J],
        f: impl Fn(Option<&LiveSnapshot>, &J) -> (Vec<LiveEvent>, LiveSnapshot),
    ) -> Vec<LiveEvent> {
        let mut snap: Option<LiveSnapshot> = None;
        let mut all = Vec::new();
        for s in states {
            let (events, next) = f(snap.as_ref(), s);
            all.extend(events);
            snap = Some(next);
        }
        all
    }

    fn summary(events: &[LiveEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                LiveEvent::Stage { stage, .. } => format!("stage:{stage}"),
                LiveEvent::Clip { index, status, .. } => format!("clip:{index}:{status:?}"),
                LiveEvent::Progress { percent, .. } => format!("progress:{percent}"),
                other => other.type_name().to_owned(),
            })
            .collect()
    }

    fn assert_well_ordered(events: &[LiveEvent]) {
        let seqs: Vec<u64> = events.iter().map(LiveEvent::seq).collect();
        let expected: Vec<u64> = (1..=events.len() as u64).collect();
        assert_eq!(seqs, expected, "seq numbers 1, 2, 3...");
        let mut last = -1.0;
        for e in events {
            if let LiveEvent::Progress { percent, .. } = e {
                assert!(*percent > last, "{percent} after {last}");
                last = *percent;
            }
        }
    }

    #[test]
    fn a_generation_is_told_in_order_and_ends_completed_with_its_downloads() {
        let events = follow(&generation_states(), generation_events);
        assert_eq!(
            summary(&events),
            [
                "progress:0",
                "stage:planning",
                "stage:generating",
                "clip:0:Pending",
                "clip:1:Pending",
                "progress:5",
                "clip:0:Generating",
                "clip:0:Done",
                "progress:37.5",
                "clip:1:Done",
                "progress:70",
                "stage:composing",
                "progress:85",
                "progress:100",
                "completed",
            ]
        );
        assert_well_ordered(&events);
        let LiveEvent::Completed { downloads, .. } = events.last().unwrap() else {
            panic!()
        };
        let names: Vec<_> = downloads.iter().map(|d| (&*d.name, &*d.key)).collect();
        assert_eq!(
            names,
            [("final", "out/final.mp4"), ("thumbnail", "out/thumb.jpg")]
        );
        let fallback = events.iter().find_map(|e| match e {
            LiveEvent::Clip {
                index: 1,
                status: ClipStatus::Done,
                provider,
                fallback,
                ..
            } => Some((provider.clone(), fallback.clone())),
            _ => None,
        });
        assert_eq!(
            fallback,
            Some((
                "procedural".to_owned(),
                Some("replicate: throttled".to_owned())
            ))
        );
    }

    #[test]
    fn the_same_record_twice_gives_nothing_new() {
        for state in generation_states() {
            let (_, snap) = generation_events(None, &state);
            let (again, snap2) = generation_events(Some(&snap), &state);
            assert!(again.is_empty(), "{:?} gave {again:?}", state.status);
            assert_eq!(snap, snap2);
        }
        for state in processing_states() {
            let (_, snap) = processing_events(None, &state);
            let (again, _) = processing_events(Some(&snap), &state);
            assert!(again.is_empty(), "{:?} gave {again:?}", state.status);
        }
    }

    #[test]
    fn a_late_subscriber_catches_up_from_none_in_the_same_order() {
        let states = generation_states();
        let (events, _) = generation_events(None, states.last().unwrap());
        assert_eq!(
            summary(&events),
            [
                "stage:planning",
                "stage:generating",
                "clip:0:Done",
                "clip:1:Done",
                "stage:composing",
                "progress:100",
                "completed",
            ]
        );
        assert_well_ordered(&events);
        let LiveEvent::Stage { at, .. } = &events[1] else {
            panic!()
        };
        assert_eq!(*at, t(2), "a stage is dated when it started");
        // Mid-way: the stages so far, then the clips and the percent reached.
        let (events, _) = generation_events(None, &states[4]);
        assert_eq!(
            summary(&events),
            [
                "stage:planning",
                "stage:generating",
                "clip:0:Done",
                "clip:1:Pending",
                "progress:37.5"
            ]
        );
    }

    #[test]
    fn skipped_and_reordered_records_never_send_a_lower_percent() {
        let states = generation_states();
        // A stream that delivers every record twice, then an old one after a newer one.
        let mut feed = Vec::new();
        for s in &states {
            feed.push(s.clone());
            feed.push(s.clone());
        }
        feed.insert(12, states[3].clone());
        let events = follow(&feed, generation_events);
        assert_well_ordered(&events);
        let only = |events: &[LiveEvent], prefix: &str| -> Vec<String> {
            summary(events)
                .into_iter()
                .filter(|s| s.starts_with(prefix))
                .collect()
        };
        let clean = follow(&states, generation_events);
        for kind in ["progress", "stage", "completed"] {
            assert_eq!(only(&events, kind), only(&clean, kind), "{kind} events");
        }
        // Skipping straight from queued to completed still tells every stage, once.
        let events = follow(&[states[0].clone(), states[8].clone()], generation_events);
        assert_eq!(
            summary(&events),
            [
                "progress:0",
                "stage:planning",
                "stage:generating",
                "clip:0:Done",
                "clip:1:Done",
                "stage:composing",
                "progress:100",
                "completed",
            ]
        );
    }

    #[test]
    fn a_failed_or_cancelled_generation_ends_failed_with_its_reason() {
        let states = generation_states();
        let failed = states[4]
            .fail(names::PROVIDER_REJECTED, "the prompt was refused", t(4))
            .unwrap();
        let (events, snap) = generation_events(None, &failed);
        let last = events.last().unwrap();
        assert_eq!(
            last,
            &LiveEvent::Failed {
                job_id: failed.id.to_string(),
                kind: JobKind::Generation,
                reason: "the prompt was refused".into(),
                code: names::PROVIDER_REJECTED.into(),
                seq: events.len() as u64,
            }
        );
        assert_eq!(
            failed.error,
            Some(JobError {
                code: names::PROVIDER_REJECTED.into(),
                message: "the prompt was refused".into(),
                stage: Some(Stage::Generating)
            })
        );
        assert!(generation_events(Some(&snap), &failed).0.is_empty());
        let cancelled = states[2].transition(JobStatus::Cancelled, t(3)).unwrap();
        let (events, _) = generation_events(None, &cancelled);
        assert!(matches!(
            events.last(),
            Some(LiveEvent::Failed { code, .. }) if code == names::CANCELLED
        ));
    }

    fn processing_states() -> Vec<ProcessJob> {
        let source = SourceRef {
            bucket: "media".into(),
            key: "raw/acme/launch/teaser.mp4".into(),
            version: None,
        };
        let mut states = Vec::new();
        let job = ProcessJob::new(&source, t(0)).start_run(t(0)).unwrap();
        states.push(job.clone());
        let job = job
            .advanced(ProcessStage::Renditions, 0.0, 0.1, t(1))
            .unwrap();
        states.push(job.clone());
        let job = job
            .advanced(ProcessStage::Renditions, 0.5, 0.1, t(2))
            .unwrap();
        states.push(job.clone());
        let job = job
            .advanced(ProcessStage::Thumbnail, 1.0, 0.1, t(3))
            .unwrap();
        states.push(job.clone());
        let job = job.advanced(ProcessStage::Publish, 0.0, 0.1, t(4)).unwrap();
        states.push(job.clone());
        let output = |name: &str| OutputRecord {
            rendition: name.into(),
            key: format!("renditions/acme/launch/teaser_{name}.mp4"),
            width: 1920,
            height: 1080,
            video_codec: "h264".into(),
            pix_fmt: "yuv420p".into(),
            duration_seconds: 5.0,
            frames: Some(150),
            video_bitrate: None,
            audio_codec: None,
            size_bytes: 10,
        };
        let job = job
            .succeed(
                vec![output("youtube"), output("reels")],
                "thumbnails/acme/launch/teaser.jpg".into(),
                "manifests/acme/launch/teaser.json".into(),
                t(5),
            )
            .unwrap();
        states.push(job);
        states
    }

    #[test]
    fn a_processing_run_is_told_in_order_and_ends_completed_with_each_rendition() {
        let events = follow(&processing_states(), processing_events);
        assert_eq!(
            summary(&events),
            [
                "stage:probe",
                "progress:0",
                "stage:trim",
                "stage:watermark",
                "stage:renditions",
                "progress:5",
                "progress:45",
                "stage:thumbnail",
                "progress:90",
                "stage:publish",
                "progress:100",
                "completed",
            ]
        );
        assert_well_ordered(&events);
        let LiveEvent::Completed { downloads, .. } = events.last().unwrap() else {
            panic!()
        };
        let names: Vec<_> = downloads.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["youtube", "reels", "thumbnail"]);
    }

    #[test]
    fn a_failed_run_then_its_retry_are_told_without_a_lower_percent() {
        let states = processing_states();
        let failed = states[2]
            .fail(
                ProcessFailure {
                    error: names::MEDIA_FAILED.into(),
                    reason: "ffmpeg exited 1".into(),
                },
                t(3),
            )
            .unwrap();
        let retry = failed.start_run(t(10)).unwrap();
        let events = follow(
            &[states[0].clone(), states[2].clone(), failed, retry],
            processing_events,
        );
        let tail = summary(&events);
        assert_eq!(
            tail[tail.len() - 3..],
            ["progress:45", "failed", "stage:probe"],
            "{tail:?}"
        );
        assert_well_ordered(&events);
    }

    #[test]
    fn advancing_is_monotonic_and_throttled() {
        let states = processing_states();
        let running = &states[2];
        assert!(
            running
                .advanced(ProcessStage::Probe, 1.0, 0.1, t(9))
                .is_none()
        );
        assert!(
            running
                .advanced(ProcessStage::Renditions, 0.55, 0.1, t(9))
                .is_none()
        );
        assert!(
            running
                .advanced(ProcessStage::Renditions, 0.4, 0.0, t(9))
                .is_none()
        );
        assert!(
            running
                .advanced(ProcessStage::Renditions, 1.0, 0.1, t(9))
                .is_some()
        );
        let done = states.last().unwrap();
        assert!(
            done.advanced(ProcessStage::Publish, 1.0, 0.0, t(9))
                .is_none()
        );
    }

    #[test]
    fn a_done_clip_links_its_picture_and_others_leave_the_field_out() {
        let mut job = generation_states().last().unwrap().clone();
        job.clips[0].thumbnail_key = Some("generations/j/thumbnails/clip_000.jpg".into());
        let (mut events, _) = generation_events(None, &job);
        let clips: Vec<_> = events
            .iter_mut()
            .filter(|e| e.type_name() == "clip")
            .collect();
        assert_eq!(clips.len(), 2);
        assert_eq!(
            clips[0].download_keys(),
            ["generations/j/thumbnails/clip_000.jpg"]
        );
        assert!(clips[1].download_keys().is_empty());
        for e in clips {
            e.fill_downloads(|k| format!("https://cdn.example/{k}"));
        }
        let wire: Vec<serde_json::Value> = events
            .iter()
            .filter(|e| e.type_name() == "clip")
            .map(|e| serde_json::from_str(&e.to_json()).unwrap())
            .collect();
        assert_eq!(
            wire[0]["thumbnail"],
            serde_json::json!({"name":"thumbnail","url":"https://cdn.example/generations/j/thumbnails/clip_000.jpg"})
        );
        assert!(wire[1].get("thumbnail").is_none(), "{}", wire[1]);
        // A clip not yet done has no picture, even with a key left from an earlier run.
        job.clips[0].status = ClipStatus::Generating;
        let (events, _) = generation_events(None, &job);
        assert!(
            events
                .iter()
                .all(|e| e.download_keys().iter().all(|k| !k.contains("thumbnails")))
        );
    }

    #[test]
    fn the_wire_format_is_the_contract() {
        let (events, _) = generation_events(None, generation_states().last().unwrap());
        let mut completed = events.last().unwrap().clone();
        completed.fill_downloads(|k| format!("https://cdn.example/{k}"));
        let v: serde_json::Value = serde_json::from_str(&completed.to_json()).unwrap();
        assert_eq!(v["type"], "completed");
        assert_eq!(v["kind"], "generation");
        assert_eq!(v["seq"], 7);
        assert_eq!(
            v["downloads"][0],
            serde_json::json!({"name":"final","url":"https://cdn.example/out/final.mp4"})
        );
        let stage: serde_json::Value = serde_json::from_str(&events[0].to_json()).unwrap();
        assert_eq!(stage["stage"], "planning");
        assert!(
            DateTime::parse_from_rfc3339(stage["at"].as_str().unwrap()).is_ok(),
            "{stage}"
        );
        let clip: serde_json::Value = serde_json::from_str(&events[2].to_json()).unwrap();
        assert_eq!(clip["status"], "done");
        assert_eq!(clip["fallback"], serde_json::Value::Null);
        assert_eq!(clip["cache_hit"], false);
        let err: serde_json::Value =
            serde_json::from_str(&LiveEvent::error(NOT_SUBSCRIBABLE, None).to_json()).unwrap();
        assert_eq!(
            err,
            serde_json::json!({"type":"error","message":"no such job","job_id":null,"seq":0})
        );
        assert_eq!(
            ClientMessage::parse(r#"{"action":"subscribe","job_id":"j"}"#),
            Ok(ClientMessage::Subscribe { job_id: "j".into() })
        );
        assert!(ClientMessage::parse(r#"{"action":"dance"}"#).is_err());
    }
}

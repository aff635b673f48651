//! Upload processing on this machine: the twin of the stack's S3 trigger and Step Functions
//! start. An object landing under `raw/` (an API upload, a file dropped in the watched folder)
//! and a retry through the API both start [`run_embedded`] here, at most once per execution
//! name, as Step Functions' execution names ensure in AWS.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use vidpipe_domain::ports::{OrchestratorError, ProcessStarter};
use vidpipe_domain::processing::{
    ProcessJob, ProcessStage, ProcessStatus, SourceRef, StageProgress,
};
use vidpipe_domain::steps::ProcessingStep;
use vidpipe_pipeline::local::LOCAL_BUCKET;
use vidpipe_pipeline::processing::{ProcessDeps, ProcessInput, ProcessProgress, run_embedded};

pub struct LocalProcessing {
    deps: ProcessDeps,
    concurrency: usize,
    /// Every execution started, by name, with its source (for recording an interruption).
    runs: Mutex<HashMap<String, (SourceRef, JoinHandle<()>)>>,
    /// The record id of every processing record that may have changed: the live socket reads
    /// the record again when its id passes by.
    changes: broadcast::Sender<String>,
    /// Where each running record's run is, from the runner's progress reports: live progress
    /// for records whose steps do not store it themselves.
    steps: Arc<Mutex<HashMap<String, StageProgress>>>,
}

impl LocalProcessing {
    pub fn new(deps: ProcessDeps, concurrency: usize) -> Self {
        let (changes, _) = broadcast::channel(1024);
        LocalProcessing {
            deps,
            concurrency: concurrency.max(1),
            runs: Mutex::new(HashMap::new()),
            changes,
            steps: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn deps(&self) -> &ProcessDeps {
        &self.deps
    }

    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.changes.subscribe()
    }

    /// An object arrived under `raw/`: process that write (named by its content digest, so
    /// the same bytes landing twice are one record and one run).
    pub async fn arrived(&self, key: &str, digest: String) -> Option<String> {
        let source = SourceRef {
            bucket: LOCAL_BUCKET.to_owned(),
            key: key.to_owned(),
            version: Some(digest),
        };
        let name = source.id();
        self.start(&source, &name).then_some(name)
    }

    /// Starts `source` as execution `name` unless that name was started before. Returns whether
    /// this call started it.
    pub fn start(&self, source: &SourceRef, name: &str) -> bool {
        let mut runs = self.runs.lock().expect("runs lock");
        if runs.contains_key(name) {
            return false;
        }
        let deps = self.deps.clone();
        let input = ProcessInput {
            source: source.clone(),
        };
        let concurrency = self.concurrency;
        let changes = self.changes.clone();
        let id = source.id();
        let steps = self.steps.clone();
        steps.lock().expect("steps lock").remove(&id);
        let handle = tokio::spawn(async move {
            let tell = changes.clone();
            let record = id.clone();
            let segments = Mutex::new((0u32, 0u32));
            let progress = Arc::new(move |p: ProcessProgress| {
                let at = {
                    let mut seg = segments.lock().expect("segments lock");
                    stage_of(&p, &mut seg)
                };
                if let Some((stage, fraction)) = at {
                    let mut steps = steps.lock().expect("steps lock");
                    let now = chrono::Utc::now();
                    let next = match steps.get(&record) {
                        Some(cur) if cur.stage > stage => None,
                        Some(cur) if cur.stage == stage => Some(StageProgress {
                            fraction: fraction.max(cur.fraction),
                            ..*cur
                        }),
                        _ => Some(StageProgress {
                            stage,
                            started_at: now,
                            fraction,
                        }),
                    };
                    if let Some(next) = next {
                        steps.insert(record.clone(), next);
                    }
                }
                let _ = tell.send(record.clone());
            });
            match run_embedded(&deps, &input, concurrency, progress).await {
                Ok(job) => {
                    tracing::info!(source = %input.source.key, status = %job.status, "processed")
                }
                Err(e) => {
                    tracing::error!(source = %input.source.key, error = %e, "processing could not record its end")
                }
            }
            let _ = changes.send(id);
        });
        runs.insert(name.to_owned(), (source.clone(), handle));
        true
    }

    /// Where the record's current run is, as its progress reports said; `None` once it ended.
    pub fn step_of(&self, job: &ProcessJob) -> Option<StageProgress> {
        if job.status != ProcessStatus::Running {
            return None;
        }
        self.steps.lock().expect("steps lock").get(&job.id).copied()
    }

    /// Waits up to `grace` for every run to end, then aborts the rest and returns their
    /// sources.
    pub async fn drain(&self, grace: Duration) -> Vec<SourceRef> {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let running: Vec<String> = self
                .runs
                .lock()
                .expect("runs lock")
                .iter()
                .filter(|(_, (_, h))| !h.is_finished())
                .map(|(name, _)| name.clone())
                .collect();
            if running.is_empty() {
                return Vec::new();
            }
            if tokio::time::Instant::now() >= deadline {
                let runs = self.runs.lock().expect("runs lock");
                return running
                    .iter()
                    .filter_map(|name| runs.get(name))
                    .map(|(source, handle)| {
                        handle.abort();
                        source.clone()
                    })
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The subscriber's stage for a runner report, and the fraction into it. Trim and watermark are
/// part of the rendition pass, so every encoding step is the renditions stage; segments count
/// as fractions of it.
fn stage_of(p: &ProcessProgress, segments: &mut (u32, u32)) -> Option<(ProcessStage, f64)> {
    match p {
        ProcessProgress::Step(step) => match step {
            ProcessingStep::Probe => Some((ProcessStage::Probe, 0.0)),
            ProcessingStep::Transcode
            | ProcessingStep::WorkerTranscode
            | ProcessingStep::Split
            | ProcessingStep::RenderSegment
            | ProcessingStep::EncodeAudio => Some((ProcessStage::Renditions, 0.0)),
            ProcessingStep::Assemble => Some((ProcessStage::Renditions, 1.0)),
            ProcessingStep::Publish => Some((ProcessStage::Publish, 0.0)),
            ProcessingStep::RecordFailure => None,
        },
        ProcessProgress::Fraction(f) => Some((ProcessStage::Renditions, f.clamp(0.0, 1.0))),
        ProcessProgress::SegmentsPlanned(n) => {
            *segments = (*n as u32, 0);
            None
        }
        ProcessProgress::SegmentDone(_) => {
            segments.1 += 1;
            let (planned, done) = *segments;
            (planned > 0).then(|| {
                (
                    ProcessStage::Renditions,
                    f64::from(done) / f64::from(planned),
                )
            })
        }
    }
}

#[async_trait]
impl ProcessStarter for LocalProcessing {
    async fn start_processing(
        &self,
        source: &SourceRef,
        name: &str,
    ) -> Result<(), OrchestratorError> {
        self.start(source, name);
        Ok(())
    }
}

//! The embedded runner: walks the generation state machine's steps in the ASL's order (plan, a
//! bounded-concurrency Map of generate-clip, compose, finalize; any failure goes to
//! record-failure) with tokio, applying the same retry policies. It is also the in-process
//! `Orchestrator` for one-machine use.

use super::clips;
use super::steps::{self, StepDeps};
use super::types::{ClipTask, FailureInput, JobRef};
use crate::error::StepError;
use crate::policy::RetryPolicy;
use async_trait::async_trait;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, broadcast};
use tokio::task::{JoinHandle, JoinSet};
use vidpipe_domain::composition::{Composition, CompositionId};
use vidpipe_domain::job::{Job, JobId, JobStatus};
use vidpipe_domain::ports::{Orchestrator, OrchestratorError};

/// What a watcher (the CLI's progress bars, a test) sees as a run goes.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    Stage {
        job_id: JobId,
        status: JobStatus,
    },
    ClipStarted {
        job_id: JobId,
        index: u32,
    },
    ClipRetrying {
        job_id: JobId,
        index: u32,
        attempt: u32,
        error: String,
    },
    /// A provider is still working on the clip; it is asked again after `seconds`.
    ClipWaiting {
        job_id: JobId,
        index: u32,
        provider: String,
        seconds: u32,
    },
    ClipFinished {
        job_id: JobId,
        index: u32,
        cache_hit: bool,
        provider: String,
    },
    ComposeProgress {
        job_id: JobId,
        fraction: f64,
    },
    Finished {
        job_id: JobId,
        status: JobStatus,
    },
}

#[derive(Clone, Copy, Debug)]
pub struct RunnerConfig {
    /// The Map state's `MaxConcurrency`.
    pub max_concurrency: usize,
    pub clip_retry: RetryPolicy,
    pub step_retry: RetryPolicy,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            max_concurrency: 2,
            clip_retry: RetryPolicy::CLIP,
            step_retry: RetryPolicy::STEP,
        }
    }
}

pub struct EmbeddedRunner {
    deps: StepDeps,
    config: RunnerConfig,
    events: broadcast::Sender<RunEvent>,
}

/// Retries `f` under `policy` (see [`RetryPolicy::retry`]).
async fn retrying<T, F, Fut>(
    policy: RetryPolicy,
    on_retry: impl FnMut(u32, &StepError),
    f: F,
) -> Result<T, StepError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StepError>>,
{
    policy.retry(on_retry, f).await
}

impl EmbeddedRunner {
    pub fn new(deps: StepDeps, config: RunnerConfig) -> Self {
        let (events, _) = broadcast::channel(4096);
        Self {
            deps,
            config,
            events,
        }
    }

    pub fn deps(&self) -> &StepDeps {
        &self.deps
    }

    pub fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.events.subscribe()
    }

    fn emit(&self, e: RunEvent) {
        // No subscriber is fine: events are for watchers, the job record is the truth.
        let _ = self.events.send(e);
    }

    /// Renders a recorded composition of a completed job (a recompose) and returns how it ended.
    /// A composition that already ended is returned as it is; a failure is recorded on the
    /// composition, never on the job, which keeps its earlier outputs.
    pub async fn run_composition(
        &self,
        job_id: &JobId,
        composition_id: &CompositionId,
    ) -> Result<Composition, StepError> {
        let composition = self
            .deps
            .jobs
            .get_composition(job_id, composition_id)
            .await?
            .ok_or_else(|| {
                StepError::WrongState(format!("composition {composition_id} is gone"))
            })?;
        if composition.status.is_terminal() {
            return Ok(composition);
        }
        // The Map again, fed only the scenes this version replaces (often none).
        let tasks: Vec<ClipTask> = composition
            .replaced_scenes()
            .into_iter()
            .map(|scene_index| ClipTask {
                job_id: job_id.clone(),
                scene_index,
                composition_id: Some(composition_id.clone()),
            })
            .collect();
        if let Err(e) = self.generate_all(tasks).await {
            let error = vidpipe_domain::JobError {
                code: e.error_type().to_owned(),
                message: crate::failure::public_reason(&e.to_string()),
                stage: Some(vidpipe_domain::job::Stage::Generating),
            };
            steps::fail_composition(&self.deps, job_id, composition_id, &error).await?;
            return Err(e);
        }
        // Read again: the clip step recorded the replaced scenes' clips on it.
        let composition = self
            .deps
            .jobs
            .get_composition(job_id, composition_id)
            .await?
            .unwrap_or(composition);
        super::recompose::render(&self.deps, &composition, &|_| {}).await
    }

    /// Runs the job to an end and returns its final record. Failures are recorded on the job
    /// (never lost); the returned error is only for a job that cannot be found or read.
    pub async fn run(&self, job_id: &JobId) -> Result<Job, StepError> {
        let current = self
            .deps
            .jobs
            .get(job_id)
            .await?
            .ok_or_else(|| StepError::JobNotFound(job_id.to_string()))?;
        let outcome = if current.status.is_terminal() {
            Ok(())
        } else {
            self.run_steps(job_id).await
        };
        // A cancel was recorded by the canceller; every other failure is recorded here.
        if let Err(e) = outcome
            && !matches!(e, StepError::Cancelled(_))
        {
            let input = FailureInput {
                job_id: job_id.clone(),
                composition_id: None,
                error_type: e.error_type().to_owned(),
                cause: e.to_string(),
            };
            retrying(
                self.config.step_retry,
                |_, _| {},
                || steps::record_failure(&self.deps, &input),
            )
            .await?;
        }
        let job = self
            .deps
            .jobs
            .get(job_id)
            .await?
            .ok_or_else(|| StepError::JobNotFound(job_id.to_string()))?;
        self.emit(RunEvent::Finished {
            job_id: job_id.clone(),
            status: job.status,
        });
        Ok(job)
    }

    async fn run_steps(&self, job_id: &JobId) -> Result<(), StepError> {
        let input = JobRef {
            job_id: job_id.clone(),
        };
        let step_retry = self.config.step_retry;
        self.emit(RunEvent::Stage {
            job_id: job_id.clone(),
            status: JobStatus::Planning,
        });
        let plan = retrying(step_retry, |_, _| {}, || steps::plan(&self.deps, &input)).await?;

        self.emit(RunEvent::Stage {
            job_id: job_id.clone(),
            status: JobStatus::Generating,
        });
        self.generate_all(plan.scenes).await?;

        self.emit(RunEvent::Stage {
            job_id: job_id.clone(),
            status: JobStatus::Composing,
        });
        let progress = |fraction: f64| {
            self.emit(RunEvent::ComposeProgress {
                job_id: job_id.clone(),
                fraction,
            })
        };
        let composed = retrying(
            step_retry,
            |_, _| {},
            || steps::compose(&self.deps, &input, &progress),
        )
        .await?;
        retrying(
            step_retry,
            |_, _| {},
            || steps::finalize(&self.deps, &composed),
        )
        .await?;
        Ok(())
    }

    /// The Map state: every scene, at most `max_concurrency` at once; the first failure that
    /// survives its retries fails the Map and stops the rest.
    async fn generate_all(&self, tasks: Vec<ClipTask>) -> Result<(), StepError> {
        let limit = Arc::new(Semaphore::new(self.config.max_concurrency.max(1)));
        let mut set = JoinSet::new();
        for task in tasks {
            let deps = self.deps.clone();
            let events = self.events.clone();
            let policy = self.config.clip_retry;
            let limit = limit.clone();
            set.spawn(async move {
                let _permit = limit
                    .acquire_owned()
                    .await
                    .map_err(|e| StepError::Internal(e.to_string()))?;
                let _ = events.send(RunEvent::ClipStarted {
                    job_id: task.job_id.clone(),
                    index: task.scene_index,
                });
                let on_retry = |attempt: u32, e: &StepError| {
                    let _ = events.send(RunEvent::ClipRetrying {
                        job_id: task.job_id.clone(),
                        index: task.scene_index,
                        attempt,
                        error: e.to_string(),
                    });
                };
                // The ASL's GenerateClip → Wait → PollClip loop: each call is one step with its
                // own retries, and the wait between them is the provider's.
                let out = loop {
                    let out =
                        retrying(policy, on_retry, || clips::generate_clip(&deps, &task)).await?;
                    let Some(seconds) = out.wait_seconds else {
                        break out;
                    };
                    let _ = events.send(RunEvent::ClipWaiting {
                        job_id: out.job_id.clone(),
                        index: out.scene_index,
                        provider: out.provider.clone(),
                        seconds,
                    });
                    tokio::time::sleep(Duration::from_secs(u64::from(seconds))).await;
                };
                let _ = events.send(RunEvent::ClipFinished {
                    job_id: out.job_id.clone(),
                    index: out.scene_index,
                    cache_hit: out.cache_hit,
                    provider: out.provider.clone(),
                });
                Ok::<_, StepError>(())
            });
        }
        while let Some(joined) = set.join_next().await {
            joined.map_err(|e| StepError::Internal(format!("clip task crashed: {e}")))??;
        }
        Ok(())
    }
}

type RunHandle = JoinHandle<Result<Job, StepError>>;
type RenderHandle = JoinHandle<Result<Composition, StepError>>;

/// In-process orchestration: each started job runs as a tokio task. Starting a job id twice
/// starts nothing new, as a Step Functions execution name would ensure.
pub struct EmbeddedOrchestrator {
    runner: Arc<EmbeddedRunner>,
    /// Every job started here; the first `wait` takes the handle.
    runs: Mutex<HashMap<JobId, Option<RunHandle>>>,
    /// Every recompose started here, by composition, with its job.
    renders: Mutex<HashMap<CompositionId, (JobId, Option<RenderHandle>)>>,
}

impl EmbeddedOrchestrator {
    pub fn new(runner: Arc<EmbeddedRunner>) -> Self {
        Self {
            runner,
            runs: Mutex::new(HashMap::new()),
            renders: Mutex::new(HashMap::new()),
        }
    }

    pub fn runner(&self) -> &Arc<EmbeddedRunner> {
        &self.runner
    }

    /// Waits for a started job's run to end. `None` if this orchestrator never started it or it
    /// was already waited for.
    pub async fn wait(&self, job: &JobId) -> Option<Result<Job, StepError>> {
        let handle = self.runs.lock().expect("runs lock").get_mut(job)?.take()?;
        Some(match handle.await {
            Ok(r) => r,
            Err(e) if e.is_cancelled() => self
                .runner
                .deps()
                .jobs
                .get(job)
                .await
                .map_err(StepError::from)
                .and_then(|j| j.ok_or_else(|| StepError::JobNotFound(job.to_string()))),
            Err(e) => Err(StepError::Internal(format!("run crashed: {e}"))),
        })
    }
}

impl EmbeddedOrchestrator {
    /// Waits for a started recompose to end. `None` if this orchestrator never started it or it
    /// was already waited for.
    pub async fn wait_composition(
        &self,
        composition: &CompositionId,
    ) -> Option<Result<Composition, StepError>> {
        let handle = self
            .renders
            .lock()
            .expect("renders lock")
            .get_mut(composition)?
            .1
            .take()?;
        Some(match handle.await {
            Ok(r) => r,
            Err(e) => Err(StepError::Internal(format!("render crashed: {e}"))),
        })
    }

    /// Waits up to `grace` for every run still going to end on its own, then aborts the ones
    /// that have not and returns their ids, so the caller can record why they stopped. A
    /// process that is shutting down calls it once, after it has stopped starting jobs.
    pub async fn drain(&self, grace: Duration) -> Vec<JobId> {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let running: Vec<JobId> = self
                .runs
                .lock()
                .expect("runs lock")
                .iter()
                .filter(|(_, h)| h.as_ref().is_some_and(|h| !h.is_finished()))
                .map(|(id, _)| id.clone())
                .collect();
            let rendering: Vec<(CompositionId, JobId)> = self
                .renders
                .lock()
                .expect("renders lock")
                .iter()
                .filter(|(_, (_, h))| h.as_ref().is_some_and(|h| !h.is_finished()))
                .map(|(id, (job, _))| (id.clone(), job.clone()))
                .collect();
            if running.is_empty() && rendering.is_empty() {
                return running;
            }
            if tokio::time::Instant::now() >= deadline {
                {
                    let runs = self.runs.lock().expect("runs lock");
                    for id in &running {
                        if let Some(Some(handle)) = runs.get(id) {
                            handle.abort();
                        }
                    }
                    let renders = self.renders.lock().expect("renders lock");
                    for (id, _) in &rendering {
                        if let Some((_, Some(handle))) = renders.get(id) {
                            handle.abort();
                        }
                    }
                }
                // A stopped recompose is the composition's failure, not its completed job's.
                let error = vidpipe_domain::JobError {
                    code: "Interrupted".into(),
                    message: "the server stopped before the render ended".into(),
                    stage: Some(vidpipe_domain::job::Stage::Composing),
                };
                for (id, job) in &rendering {
                    if let Err(e) =
                        steps::fail_composition(self.runner.deps(), job, id, &error).await
                    {
                        tracing::warn!(composition = %id, error = %e, "could not record the stop");
                    }
                }
                return running;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[async_trait]
impl Orchestrator for EmbeddedOrchestrator {
    async fn start(&self, job: &JobId) -> Result<(), OrchestratorError> {
        let mut runs = self.runs.lock().expect("runs lock");
        if runs.contains_key(job) {
            return Ok(());
        }
        let runner = self.runner.clone();
        let id = job.clone();
        runs.insert(
            job.clone(),
            Some(tokio::spawn(async move { runner.run(&id).await })),
        );
        Ok(())
    }

    async fn start_composition(
        &self,
        job: &JobId,
        composition: &CompositionId,
    ) -> Result<(), OrchestratorError> {
        let mut renders = self.renders.lock().expect("renders lock");
        if renders.contains_key(composition) {
            return Ok(());
        }
        let runner = self.runner.clone();
        let (job_id, id) = (job.clone(), composition.clone());
        renders.insert(
            composition.clone(),
            (
                job.clone(),
                Some(tokio::spawn(async move {
                    runner.run_composition(&job_id, &id).await
                })),
            ),
        );
        Ok(())
    }

    async fn cancel(&self, job: &JobId) -> Result<(), OrchestratorError> {
        // Aborting drops the running step, which kills any ffmpeg it spawned.
        if let Some(Some(handle)) = self.runs.lock().expect("runs lock").get(job) {
            handle.abort();
        }
        Ok(())
    }
}

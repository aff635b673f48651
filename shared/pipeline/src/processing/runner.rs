//! The embedded runner for upload processing: walks `statemachine/processing.asl.json` in
//! process, in its order and with its retries (the Map's bounded concurrency, the audio beside
//! it as the Parallel state does, every failure recorded by RecordFailure).

use super::steps::{
    ProcessDeps, assemble, encode_audio, probe, publish, record_failure, render_segment, split,
    transcode,
};
use super::types::{
    AssembleInput, ProcessFailureInput, ProcessInput, SegmentDone, SegmentInput, Split,
};
use crate::error::StepError;
use crate::policy::RetryPolicy;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use vidpipe_domain::processing::{ProcessEvent, ProcessJob, Route};
use vidpipe_domain::steps::ProcessingStep;

/// What the embedded runner reports as it goes (the CLI draws its bars from these).
#[derive(Debug, Clone, PartialEq)]
pub enum ProcessProgress {
    Step(ProcessingStep),
    Fraction(f64),
    SegmentsPlanned(usize),
    SegmentDone(u32),
}

/// Walks the processing state machine in process. Returns the final record (failed or
/// succeeded); `Err` only if even recording failed.
pub async fn run_embedded(
    deps: &ProcessDeps,
    input: &ProcessInput,
    max_concurrency: usize,
    progress: Arc<dyn Fn(ProcessProgress) + Send + Sync>,
) -> Result<ProcessJob, StepError> {
    let outcome = run_steps(deps, input, max_concurrency, progress.clone()).await;
    if let Err(e) = outcome {
        progress(ProcessProgress::Step(ProcessingStep::RecordFailure));
        let failure = ProcessFailureInput {
            source: input.source.clone(),
            error_type: e.error_type().to_owned(),
            cause: e.to_string(),
        };
        RetryPolicy::STEP
            .retry(|_, _| {}, || record_failure(deps, &failure))
            .await?;
    }
    deps.records
        .get_process(&input.source.id())
        .await?
        .ok_or_else(|| StepError::Internal("the processing record vanished".into()))
}

async fn run_steps(
    deps: &ProcessDeps,
    input: &ProcessInput,
    max_concurrency: usize,
    progress: Arc<dyn Fn(ProcessProgress) + Send + Sync>,
) -> Result<ProcessEvent, StepError> {
    let step = RetryPolicy::STEP;
    let quiet = |_: u32, e: &StepError| tracing::warn!(error = %e, "step failed; retrying");
    progress(ProcessProgress::Step(ProcessingStep::Probe));
    let probed = step.retry(quiet, || probe(deps, input)).await?;
    let rendered = match probed.route {
        // One machine has no Fargate: the worker route runs the same single pass here.
        Route::SinglePass | Route::Worker => {
            progress(ProcessProgress::Step(ProcessingStep::Transcode));
            let p = progress.clone();
            let report = move |f: f64| p(ProcessProgress::Fraction(f));
            step.retry(quiet, || transcode(deps, &probed, &report))
                .await?
        }
        Route::Segments => {
            progress(ProcessProgress::Step(ProcessingStep::Split));
            let split = step.retry(quiet, || split(deps, &probed)).await?;
            progress(ProcessProgress::SegmentsPlanned(split.segments.len()));
            progress(ProcessProgress::Step(ProcessingStep::RenderSegment));
            // The ASL's Parallel: the audio beside the segment Map. Either failing ends both.
            let (rendered, audio) = tokio::try_join!(
                render_segments(deps, &split, max_concurrency, progress.clone()),
                step.retry(quiet, || encode_audio(deps, &split)),
            )?;
            let input = AssembleInput {
                split,
                rendered,
                audio,
            };
            progress(ProcessProgress::Step(ProcessingStep::Assemble));
            step.retry(quiet, || assemble(deps, &input)).await?
        }
    };
    progress(ProcessProgress::Step(ProcessingStep::Publish));
    step.retry(quiet, || publish(deps, &rendered)).await
}

/// The ASL's Map: every segment, at most `max_concurrency` at once, each with the step retries.
async fn render_segments(
    deps: &ProcessDeps,
    split: &Split,
    max_concurrency: usize,
    progress: Arc<dyn Fn(ProcessProgress) + Send + Sync>,
) -> Result<Vec<SegmentDone>, StepError> {
    let gate = Arc::new(Semaphore::new(max_concurrency.max(1)));
    let mut set = JoinSet::new();
    for seg in &split.segments {
        let (deps, gate, progress) = (deps.clone(), gate.clone(), progress.clone());
        let input = SegmentInput {
            probed: split.probed.clone(),
            segment: seg.clone(),
        };
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let done = RetryPolicy::STEP
                .retry(|_, _| {}, || render_segment(&deps, &input))
                .await?;
            progress(ProcessProgress::SegmentDone(done.index));
            Ok::<_, StepError>(done)
        });
    }
    let mut rendered = Vec::new();
    while let Some(joined) = set.join_next().await {
        // The first failure ends the Map, as Step Functions does; the rest are dropped.
        rendered.push(joined.map_err(|e| StepError::Internal(e.to_string()))??);
    }
    rendered.sort_by_key(|r: &SegmentDone| r.index);
    Ok(rendered)
}

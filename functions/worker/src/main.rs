//! Fargate worker entrypoint, for work longer than Lambda allows: wiring only.
//! - `vidpipe-worker compose --job-id ID [--composition-id C]` runs generation's compose, or a
//!   recompose's render of composition C (`vidpipe_pipeline::generation::worker`);
//! - `vidpipe-worker timeline --composition-id C` renders timeline render C (a composition of no
//!   job; `vidpipe_pipeline::generation::timeline`), recording its own failure on it;
//! - `vidpipe-worker process` (the probe's output in `VIDPIPE_PROBED`) runs the upload's single
//!   pass (`vidpipe_pipeline::processing::worker`).
//!
//! Both pipelines follow one convention: the worker retries passing errors itself (Step
//! Functions does not retry a failed ECS task), leaves its output in `temp/` for the next step,
//! or its final error for the state machine's RecordFailure, and exits non-zero.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::process::ExitCode;
use vidpipe_domain::JobId;
use vidpipe_domain::composition::CompositionId;
use vidpipe_pipeline::generation::timeline::TimelineRef;
use vidpipe_pipeline::generation::{self, CompositionRef, JobRef};
use vidpipe_pipeline::processing::{self, Probed};

#[derive(Parser)]
#[command(
    name = "vidpipe-worker",
    about = "Runs long vidpipe steps outside Lambda"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compose one job's final video, or render one of its recompositions.
    Compose {
        #[arg(long, env = "VIDPIPE_JOB_ID")]
        job_id: String,
        /// A recompose's composition (the recompose state machine branch passes it).
        #[arg(long, env = "VIDPIPE_COMPOSITION_ID")]
        composition_id: Option<String>,
    },
    /// Render one timeline render (`POST /v1/compositions`), its clips already in the cache.
    Timeline {
        #[arg(long, env = "VIDPIPE_COMPOSITION_ID")]
        composition_id: String,
    },
    /// Transcode one upload in a single pass: every rendition and the thumbnail.
    Process {
        /// The probe step's output (JSON), as the state machine passes it.
        #[arg(long, env = "VIDPIPE_PROBED")]
        probed: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    vidpipe_lambda::init_tracing();
    let config = vidpipe_lambda::Config::from_env()?;
    let aws = vidpipe_lambda::Aws::load(&config).await;
    // One log line per tenth: a long render reports progress many times a second.
    let logged = std::sync::atomic::AtomicU32::new(0);
    let progress = |f: f64| {
        let tenth = (f * 10.0).floor() as u32;
        if logged.fetch_max(tenth, std::sync::atomic::Ordering::Relaxed) < tenth {
            tracing::info!(progress = f, "working");
        }
    };
    let outcome = match Cli::parse().command {
        Command::Compose {
            job_id,
            composition_id,
        } => {
            let job_id = JobId::parse(&job_id).map_err(anyhow::Error::msg)?;
            let deps = vidpipe_lambda::with_media(&config, &aws).await?;
            match composition_id {
                Some(raw) => {
                    let input = CompositionRef {
                        job_id,
                        composition_id: CompositionId::parse(&raw).map_err(anyhow::Error::msg)?,
                    };
                    generation::run_worker_composition(&deps, &input, &progress).await
                }
                None => generation::run_worker(&deps, &JobRef { job_id }, &progress).await,
            }
        }
        Command::Timeline { composition_id } => {
            let input = TimelineRef {
                composition_id: CompositionId::parse(&composition_id)
                    .map_err(anyhow::Error::msg)?,
            };
            let deps = vidpipe_lambda::with_media(&config, &aws).await?;
            generation::timeline::run_worker(&deps, &input, &progress).await
        }
        Command::Process { probed } => {
            let probed: Probed = serde_json::from_str(&probed).context("VIDPIPE_PROBED")?;
            let deps = vidpipe_lambda::process_deps(&config, &aws)?;
            processing::run_worker(&deps, &probed, &progress).await
        }
    };
    Ok(match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error_type = e.error_type(), error = %e, "the worker gave up");
            ExitCode::FAILURE
        }
    })
}

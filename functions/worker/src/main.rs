//! Fargate worker entrypoint, for work longer than Lambda allows:
//! - `vidpipe-worker compose --job-id ID` runs the generation compose step and leaves its output
//!   where the state machine's finalize step picks it up;
//! - `vidpipe-worker process` (the probe's output in `VIDPIPE_PROBED`) runs the upload's single
//!   pass and leaves its output where the processing publish step picks it up.
//!
//! Step Functions does not retry a failed ECS task, so passing errors are retried here with the
//! step policy. A final compose failure is recorded on the job under its real error name before
//! the process exits non-zero (otherwise the job would only say `States.TaskFailed`); a final
//! processing failure is left in `temp/` for the state machine's RecordFailure, which records and
//! notifies once.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::process::ExitCode;
use vidpipe_domain::{JobId, keys};
use vidpipe_pipeline::policy::RetryPolicy;
use vidpipe_pipeline::processing::{self, Probed};
use vidpipe_pipeline::steps::{self, FailureInput, JobRef, WORKER_COMPOSE_OUTPUT};

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
    /// Compose one job's final video.
    Compose {
        #[arg(long, env = "VIDPIPE_JOB_ID")]
        job_id: String,
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
    match Cli::parse().command {
        Command::Compose { job_id } => compose(&job_id).await,
        Command::Process { probed } => process(&probed).await,
    }
}

async fn process(probed: &str) -> anyhow::Result<ExitCode> {
    let probed: Probed = serde_json::from_str(probed).context("VIDPIPE_PROBED")?;
    let config = vidpipe_lambda::Config::from_env()?;
    let aws = vidpipe_lambda::Aws::load(&config).await;
    let deps = vidpipe_lambda::process_deps(&config, &aws)?;
    // One log line per tenth: a long upload reports progress many times a second.
    let logged = std::sync::atomic::AtomicU32::new(0);
    let progress = |f: f64| {
        let tenth = (f * 10.0).floor() as u32;
        if logged.fetch_max(tenth, std::sync::atomic::Ordering::Relaxed) < tenth {
            tracing::info!(progress = f, "transcoding");
        }
    };
    match processing::run_worker(&deps, &probed, &progress).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            tracing::error!(error_type = e.error_type(), error = %e, "transcode failed");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn compose(job_id: &str) -> anyhow::Result<ExitCode> {
    let job_id = JobId::parse(job_id).map_err(anyhow::Error::msg)?;
    let config = vidpipe_lambda::Config::from_env()?;
    let aws = vidpipe_lambda::Aws::load(&config).await;
    let deps = vidpipe_lambda::with_media(&config, &aws)?;
    let input = JobRef {
        job_id: job_id.clone(),
    };
    let progress = |f: f64| tracing::info!(progress = f, "composing");
    let composed = RetryPolicy::STEP
        .retry(
            |attempt, e| tracing::warn!(attempt, error = %e, "compose failed; retrying"),
            || steps::compose(&deps, &input, &progress),
        )
        .await;
    match composed {
        Ok(output) => {
            deps.blobs
                .put_bytes(
                    &keys::temp(&job_id, WORKER_COMPOSE_OUTPUT),
                    serde_json::to_vec(&output)?,
                    "application/json",
                )
                .await
                .context("storing the compose output for finalize")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            tracing::error!(error_type = e.error_type(), error = %e, "compose failed");
            let failure = FailureInput {
                job_id,
                error_type: e.error_type().to_owned(),
                cause: e.to_string(),
            };
            steps::record_failure(&deps, &failure)
                .await
                .context("recording the failure")?;
            Ok(ExitCode::FAILURE)
        }
    }
}

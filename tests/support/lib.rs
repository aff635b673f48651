//! Test support for the suite: the one-machine stack in a temporary home, the emulated AWS stack
//! ([`emulator`]) and reading processing manifests. Making and measuring media comes from
//! `vidpipe_testkit`, re-exported here.

pub mod emulator;

use std::path::Path;
use std::sync::Arc;
use vidpipe_domain::ports::ClipProvider;
use vidpipe_pipeline::local::{LocalOptions, LocalStack};
use vidpipe_pipeline::{RunnerConfig, policy::RetryPolicy};
pub use vidpipe_testkit::*;

/// Refuses every scene, as a provider's content filter would.
pub struct Refusing;

#[async_trait::async_trait]
impl ClipProvider for Refusing {
    fn name(&self) -> &str {
        "refusing"
    }
    async fn generate(
        &self,
        _: &vidpipe_domain::media::ClipSpec,
        _: &Path,
    ) -> Result<(), vidpipe_domain::ports::ProviderError> {
        Err(vidpipe_domain::ports::ProviderError::Rejected(
            "prompt violates policy".into(),
        ))
    }
}

/// Submits `body` as `owner` and waits for the job's end.
pub async fn run_job(
    stack: &LocalStack,
    owner: &str,
    body: &vidpipe_domain::GenerationRequestBody,
) -> vidpipe_domain::Job {
    let submitted = stack
        .service()
        .submit(owner, body, None)
        .await
        .expect("submit");
    stack
        .orchestrator()
        .wait(&submitted.job().id)
        .await
        .expect("the run was started")
        .expect("the run ended")
}

/// A fresh one-machine stack in its own temporary home.
pub async fn stack(home: &Path) -> LocalStack {
    stack_with(home, None).await
}

pub async fn stack_with(home: &Path, provider: Option<Arc<dyn ClipProvider>>) -> LocalStack {
    stack_with_options(
        home,
        LocalOptions {
            home: Some(home.to_path_buf()),
            ffmpeg_dir: None,
            max_concurrency: 2,
            ..LocalOptions::default()
        },
        provider,
    )
    .await
}

/// A stack with its planner or provider chain chosen, retries immediate.
pub async fn stack_with_options(
    home: &Path,
    options: LocalOptions,
    provider: Option<Arc<dyn ClipProvider>>,
) -> LocalStack {
    let config = RunnerConfig {
        max_concurrency: 2,
        clip_retry: RetryPolicy::immediate(4),
        step_retry: RetryPolicy::immediate(3),
    };
    let options = LocalOptions {
        home: Some(home.to_path_buf()),
        ..options
    };
    LocalStack::open_with(options, provider, config)
        .await
        .expect("open local stack")
}

/// The step names of a processing manifest's timings, in order.
pub fn timing_steps(manifest: &serde_json::Value) -> Vec<String> {
    manifest["timings"]
        .as_array()
        .expect("manifest timings")
        .iter()
        .map(|t| t["step"].as_str().expect("a timing's step").to_owned())
        .collect()
}

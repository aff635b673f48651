//! The Fargate worker's hand-off, one convention for both pipelines. An ECS task cannot return a
//! payload, and ECS tells Step Functions only that a task exited non-zero (`States.TaskFailed`),
//! so the worker leaves either its output or the error that ended it as small JSON files under
//! the job's `temp/` folder: the next step reads the output, RecordFailure records the error
//! (once, with its real name).

use crate::error::StepError;
use crate::failure::WorkerFailure;
use crate::policy::RetryPolicy;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use vidpipe_domain::names;
use vidpipe_domain::ports::{BlobError, BlobStore};

/// Where one worker run leaves its files.
pub struct Handoff<'a> {
    pub blobs: &'a dyn BlobStore,
    /// The output's key (`temp/.../compose-output.json`, `temp/.../worker-rendered.json`).
    pub output_key: String,
    /// The final error's key (`temp/.../worker-failure.json`).
    pub failure_key: String,
}

impl Handoff<'_> {
    /// Runs `work` with the step retry policy (Step Functions does not retry a task that exited
    /// non-zero) and leaves its output, or its final error, for the state machine. Files an
    /// earlier, crashed attempt left are removed first, so neither is ever read stale.
    pub async fn run<T, F, Fut>(&self, work: F) -> Result<(), StepError>
    where
        T: Serialize,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        for key in [&self.output_key, &self.failure_key] {
            self.blobs.delete(key).await?;
        }
        let outcome = RetryPolicy::STEP
            .retry(
                |attempt, e| tracing::warn!(attempt, error = %e, "worker step failed; retrying"),
                work,
            )
            .await;
        match outcome {
            Ok(output) => put_json(self.blobs, &self.output_key, &output).await,
            Err(e) => {
                let failure = WorkerFailure {
                    error: e.error_type().to_owned(),
                    reason: e.to_string(),
                };
                put_json(self.blobs, &self.failure_key, &failure).await?;
                Err(e)
            }
        }
    }

    /// The output the worker left. A task that exited 0 without it is an internal error, never
    /// a silent success.
    pub async fn output<T: DeserializeOwned>(&self) -> Result<T, StepError> {
        get_json(self.blobs, &self.output_key)
            .await?
            .ok_or_else(|| {
                StepError::Internal(format!(
                    "the worker finished without writing {}",
                    self.output_key
                ))
            })
    }

    /// The error the worker left, when the failure being recorded is its task's.
    pub async fn failure_left(&self, error_type: &str) -> Result<Option<WorkerFailure>, StepError> {
        if error_type != names::STATES_TASK_FAILED {
            return Ok(None);
        }
        match get_json(self.blobs, &self.failure_key).await {
            // An unreadable file is as good as none: the Catch's own error is recorded instead.
            Err(StepError::Data(_)) => Ok(None),
            other => other,
        }
    }
}

async fn put_json(
    blobs: &dyn BlobStore,
    key: &str,
    value: &impl Serialize,
) -> Result<(), StepError> {
    blobs
        .put_bytes(key, serde_json::to_vec(value)?, "application/json")
        .await?;
    Ok(())
}

async fn get_json<T: DeserializeOwned>(
    blobs: &dyn BlobStore,
    key: &str,
) -> Result<Option<T>, StepError> {
    match blobs.get_bytes(key).await {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        Err(BlobError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::FsBlobStore;

    use vidpipe_domain::ports::ProviderError;

    fn handoff(blobs: &FsBlobStore) -> Handoff<'_> {
        Handoff {
            blobs,
            output_key: "temp/job/output.json".into(),
            failure_key: "temp/job/worker-failure.json".into(),
        }
    }

    #[tokio::test]
    async fn the_worker_leaves_its_output_or_its_final_error_never_both() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FsBlobStore::new(dir.path()).unwrap();
        let h = handoff(&blobs);
        // A failed run leaves its real error name for RecordFailure...
        let err = h
            .run(|| async {
                Err::<u32, _>(StepError::Provider(ProviderError::Rejected("no".into())))
            })
            .await
            .unwrap_err();
        let left = h.failure_left(names::STATES_TASK_FAILED).await.unwrap();
        assert_eq!(left.unwrap().error, err.error_type());
        assert_eq!(err.error_type(), names::PROVIDER_REJECTED);
        // ...which only a task failure reads: a Lambda's own error is recorded as it came.
        assert_eq!(h.failure_left(names::INTERNAL).await.unwrap(), None);
        assert!(
            h.output::<u32>().await.is_err(),
            "no output after a failure"
        );

        // A later successful run clears the stale failure and leaves its output.
        h.run(|| async { Ok::<_, StepError>(42u32) }).await.unwrap();
        assert_eq!(h.output::<u32>().await.unwrap(), 42);
        assert_eq!(
            h.failure_left(names::STATES_TASK_FAILED).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn passing_errors_are_retried_by_the_worker_itself() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FsBlobStore::new(dir.path()).unwrap();
        let h = handoff(&blobs);
        let tries = std::sync::atomic::AtomicU32::new(0);
        h.run(|| async {
            let n = tries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n == 0 {
                Err(StepError::Io(std::io::Error::other("disk hiccup")))
            } else {
                Ok(n)
            }
        })
        .await
        .unwrap();
        assert_eq!(tries.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(h.output::<u32>().await.unwrap(), 1);
    }
}

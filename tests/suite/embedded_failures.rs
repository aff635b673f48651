//! Failures end in a terminal job with a reason, retries absorb passing faults, and a cancel
//! mid-run stops the work: nothing hangs and nothing is lost.

use async_trait::async_trait;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use vidpipe_domain::media::ClipSpec;
use vidpipe_domain::ports::{ClipProvider, ProviderError};
use vidpipe_domain::request::GenerationRequestBody;
use vidpipe_domain::{ClipStatus, JobStatus, keys, names};
use vidpipe_media::ProceduralProvider;
use vidpipe_tests::*;

const OWNER: &str = "local";

fn body(clips: i64) -> GenerationRequestBody {
    GenerationRequestBody {
        prompt: Some("Storm clouds over a harbour".into()),
        duration_seconds: Some(5.0),
        aspect_ratio: Some("16:9".into()),
        resolution: Some("720p".into()),
        clip_count: Some(clips),
        ..Default::default()
    }
}

/// Throttles the first `fail` calls, then renders procedurally.
struct Flaky {
    calls: AtomicU32,
    fail: u32,
    inner: ProceduralProvider,
}

#[async_trait]
impl ClipProvider for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }
    async fn generate(&self, spec: &ClipSpec, dest: &Path) -> Result<(), ProviderError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail {
            return Err(ProviderError::Throttled { retry_after: None });
        }
        self.inner.generate(spec, dest).await
    }
}

/// Takes its time, so a cancel lands mid-generation.
struct Slow;

#[async_trait]
impl ClipProvider for Slow {
    fn name(&self) -> &str {
        "slow"
    }
    async fn generate(&self, _: &ClipSpec, _: &Path) -> Result<(), ProviderError> {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Err(ProviderError::Unavailable("too slow".into()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_always_fails_ends_the_job_failed_with_its_reason() {
    let home = tempfile::tempdir().unwrap();
    let stack = stack_with(home.path(), Some(Arc::new(Refusing))).await;
    let s = stack.service().submit(OWNER, &body(2), None).await.unwrap();
    let job = stack
        .orchestrator()
        .wait(&s.job().id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    let err = job.error.clone().expect("a reason");
    assert_eq!(err.code, names::PROVIDER_REJECTED);
    assert!(err.message.contains("prompt violates policy"), "{err:?}");
    assert_eq!(err.stage, Some(vidpipe_domain::Stage::Generating));
    assert!(
        job.clips
            .iter()
            .any(|c| c.status == ClipStatus::Failed && c.error.is_some())
    );
    assert!(job.outputs.is_none());
    assert!(
        stack
            .deps()
            .blobs
            .head(&keys::final_video(
                &vidpipe_domain::CompositionId::first_of(&job.id)
            ))
            .await
            .unwrap()
            .is_none()
    );
    // A failure is final: nothing cached from a refused scene.
    assert!(stack.deps().blobs.list("cache/").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_and_the_job_completes() {
    let home = tempfile::tempdir().unwrap();
    let flaky = Arc::new(Flaky {
        calls: AtomicU32::new(0),
        fail: 2,
        inner: ProceduralProvider::new(tools()),
    });
    let stack = stack_with(home.path(), Some(flaky.clone())).await;
    let s = stack.service().submit(OWNER, &body(1), None).await.unwrap();
    let job = stack
        .orchestrator()
        .wait(&s.job().id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    assert_eq!(job.clips[0].attempts, 3, "two throttles then success");
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_run_ends_cancelled_and_stops_the_work() {
    let home = tempfile::tempdir().unwrap();
    let stack = stack_with(home.path(), Some(Arc::new(Slow))).await;
    let s = stack.service().submit(OWNER, &body(2), None).await.unwrap();
    // Wait until generation is under way.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let j = stack
            .service()
            .get(OWNER, &s.job().id)
            .await
            .unwrap()
            .unwrap();
        if j.status == JobStatus::Generating {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reached generating: {:?}",
            j.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = std::time::Instant::now();
    let cancelled = stack.service().cancel(OWNER, &s.job().id).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    let job = stack
        .orchestrator()
        .wait(&s.job().id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the run must stop promptly"
    );
    assert_eq!(job.status, JobStatus::Cancelled);
    assert!(job.error.is_none(), "a cancel is not a failure");
    // A cancelled job stays cancelled, and cancelling again is harmless.
    let again = stack.service().cancel(OWNER, &s.job().id).await.unwrap();
    assert_eq!(again.status, JobStatus::Cancelled);
    // Another tenant sees nothing to cancel.
    assert!(
        stack
            .service()
            .cancel("intruder", &s.job().id)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_gives_one_job() {
    let home = tempfile::tempdir().unwrap();
    let stack = stack_with(home.path(), Some(Arc::new(Refusing))).await;
    let a = stack
        .service()
        .submit(OWNER, &body(1), Some("key-1"))
        .await
        .unwrap();
    let b = stack
        .service()
        .submit(OWNER, &body(1), Some("key-1"))
        .await
        .unwrap();
    assert!(a.is_created() && !b.is_created());
    assert_eq!(a.job().id, b.job().id);
    stack.orchestrator().wait(&a.job().id).await;
    assert_eq!(
        stack
            .service()
            .list(OWNER, 10, None)
            .await
            .unwrap()
            .jobs
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_move_a_job_out_of_a_state_once() {
    // Two processes' worth of writers: separate store handles on one database file.
    let home = tempfile::tempdir().unwrap();
    let stack = stack_with(home.path(), Some(Arc::new(Refusing))).await;
    let req = body(1).validate().unwrap();
    let job = vidpipe_domain::Job::new(OWNER, req, None, chrono::Utc::now());
    let created = stack.deps().jobs.create(&job).await.unwrap();
    let db = home.path().join("vidpipe.sqlite3");
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let store = vidpipe_pipeline::embedded::SqliteJobStore::open(&db).unwrap();
        let read = created.clone();
        tasks.push(tokio::spawn(async move {
            use vidpipe_domain::ports::JobStore;
            let next = read
                .transition(JobStatus::Planning, chrono::Utc::now())
                .unwrap();
            store.save(&next).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(vidpipe_domain::ports::StoreError::Conflict(_)) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(wins, 1, "exactly one writer may move the job out of queued");
    let stored = stack.deps().jobs.get(&created.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.version), (JobStatus::Planning, 2));
}

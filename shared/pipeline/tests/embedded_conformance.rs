//! Runs the port conformance suites against the embedded adapters (SQLite job store, filesystem
//! blob store, SQLite lease, quota, webhook and batch stores), plus the many-writers race on one
//! job's state.

use chrono::Utc;
use std::sync::Arc;
use vidpipe_domain::ports::{BlobError, BlobStore, JobStore, StoreError};
use vidpipe_domain::{ErrorClass, JobStatus};
use vidpipe_pipeline::conformance::{
    batch_store, blob_store, composition_store, job_store, lease_store, live_store, process_store,
    quota_store, webhook_store,
};
use vidpipe_pipeline::embedded::{EmbeddedPaths, FsBlobStore, SqliteJobStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_job_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("state").join("vidpipe.sqlite3");
    // Two handles opened on one file: two connections, two independent writers.
    let a = SqliteJobStore::open(&db).expect("open first handle");
    let b = SqliteJobStore::open(&db).expect("open second handle");
    job_store::run_all(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_memory_job_store_conforms_on_one_handle() {
    let store = SqliteJobStore::open_in_memory().expect("open in memory");
    job_store::run_all(&store, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_process_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteJobStore::open(dir.path().join("vidpipe.sqlite3")).expect("open");
    process_store::run_all(&store).await;
    process_store::upload_store_run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_lease_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("vidpipe.sqlite3");
    // Two handles on one file, as two processes sharing the machine's provider limits would be.
    let a = Arc::new(SqliteJobStore::open(&db).expect("open first handle"));
    let b = Arc::new(SqliteJobStore::open(&db).expect("open second handle"));
    lease_store::run_all(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_quota_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("vidpipe.sqlite3");
    // Two handles on one file, as two CLI processes sharing one tenant's quotas would be.
    let a = Arc::new(SqliteJobStore::open(&db).expect("open first handle"));
    let b = Arc::new(SqliteJobStore::open(&db).expect("open second handle"));
    quota_store::run_all(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_webhook_stores_conform() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("vidpipe.sqlite3");
    // Two handles on one file, as the API and a pipeline step rotating and reading would be.
    let a = Arc::new(SqliteJobStore::open(&db).expect("open first handle"));
    let b = Arc::new(SqliteJobStore::open(&db).expect("open second handle"));
    webhook_store::secret_store_run_all(a.clone(), b).await;
    webhook_store::delivery_log_run_all(&*a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_batch_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("vidpipe.sqlite3");
    // Two handles on one file, as the API recording a batch and another process reading it.
    let a = SqliteJobStore::open(&db).expect("open first handle");
    let b = SqliteJobStore::open(&db).expect("open second handle");
    batch_store::run_all(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_composition_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("vidpipe.sqlite3");
    let a = SqliteJobStore::open(&db).expect("open first handle");
    let b = SqliteJobStore::open(&db).expect("open second handle");
    composition_store::run_all(&a, &a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_memory_lease_store_conforms_on_one_handle() {
    let store = Arc::new(SqliteJobStore::open_in_memory().expect("open in memory"));
    lease_store::run_all(store.clone(), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_blob_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsBlobStore::new(dir.path().join("blobs")).expect("open blob store");
    blob_store::run_all(&store).await;
    blob_store::presign_get_serves_the_object(&store, blob_store::fetch_file_url).await;
    blob_store::media_source_locates_the_object(&store, blob_store::fetch_file_url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_racing_on_one_jobs_state() {
    const WRITERS: usize = 8;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("vidpipe.sqlite3");
    let handles: Vec<Arc<SqliteJobStore>> = (0..WRITERS)
        .map(|_| Arc::new(SqliteJobStore::open(&db).expect("open handle")))
        .collect();
    let created = handles[0]
        .create(&job_store::sample_job("racer", None))
        .await
        .expect("create");

    // Every writer reads first, then all save at once, so all of them start from version 1.
    let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
    let tasks: Vec<_> = handles
        .iter()
        .map(|store| {
            let store = Arc::clone(store);
            let barrier = Arc::clone(&barrier);
            let id = created.id.clone();
            tokio::spawn(async move {
                let read = store.get(&id).await.expect("get").expect("job exists");
                let next = read
                    .transition(JobStatus::Planning, Utc::now())
                    .expect("queued -> planning");
                barrier.wait().await;
                store.save(&next).await
            })
        })
        .collect();

    let mut wins = 0;
    let mut conflicts = 0;
    for task in tasks {
        match task.await.expect("writer task") {
            Ok(saved) => {
                wins += 1;
                assert_eq!(saved.version, 2);
            }
            Err(StoreError::Conflict(_)) => conflicts += 1,
            Err(other) => panic!("a losing writer must get Conflict, got {other:?}"),
        }
    }
    assert_eq!(
        (wins, conflicts),
        (1, WRITERS - 1),
        "exactly one writer may move the job"
    );
    let stored = handles[WRITERS - 1]
        .get(&created.id)
        .await
        .expect("get")
        .expect("job exists");
    assert_eq!(stored.version, 2);
    assert_eq!(stored.status, JobStatus::Planning);
}

#[tokio::test]
async fn fs_blob_store_keeps_its_reserved_tree_out_of_keys_and_listings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsBlobStore::new(dir.path()).expect("open blob store");
    store
        .put_bytes("a/x.bin", b"x".to_vec(), "application/octet-stream")
        .await
        .expect("put");
    let keys: Vec<String> = store
        .list("")
        .await
        .expect("list all")
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(
        keys,
        vec!["a/x.bin".to_owned()],
        "sidecars and staging files must never be listed"
    );
    assert!(matches!(
        store
            .put_bytes(".fsblob/meta/a", b"x".to_vec(), "text/plain")
            .await,
        Err(BlobError::InvalidKey(_))
    ));
    assert!(store.list(".fsblob/").await.is_err());
    assert_eq!(
        std::fs::read(dir.path().join("a/x.bin")).expect("object at its key path"),
        b"x"
    );
}

#[tokio::test]
async fn sqlite_store_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("vidpipe.sqlite3");
    let job = job_store::sample_job("reopen", Some("key-1"));
    {
        let store = SqliteJobStore::open(&db).expect("open");
        store.create(&job).await.expect("create");
    }
    let store = SqliteJobStore::open(&db).expect("reopen");
    let got = store
        .get(&job.id)
        .await
        .expect("get")
        .expect("job persisted");
    assert_eq!(got.version, 1);
    assert!(matches!(
        store.create(&job_store::sample_job("reopen", Some("key-1"))).await,
        Err(StoreError::DuplicateIdempotencyKey(id)) if id == job.id
    ));
}

#[test]
fn embedded_paths_layout() {
    let paths = EmbeddedPaths::new("/srv/vidpipe");
    assert_eq!(
        paths.db,
        std::path::Path::new("/srv/vidpipe/vidpipe.sqlite3")
    );
    assert_eq!(paths.blobs, std::path::Path::new("/srv/vidpipe/blobs"));
    // An explicit base wins over the environment, and comes back absolute.
    let explicit = EmbeddedPaths::from_env_or(Some("/tmp/explicit-home".into()));
    assert_eq!(explicit, EmbeddedPaths::new("/tmp/explicit-home"));
    let relative = EmbeddedPaths::from_env_or(Some("rel".into()));
    assert!(relative.base.is_absolute());
}

#[tokio::test]
async fn fs_blob_store_reports_an_object_that_is_also_a_prefix_as_permanent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsBlobStore::new(dir.path()).expect("open blob store");
    store
        .put_bytes("a/b", b"object".to_vec(), "text/plain")
        .await
        .expect("put a/b");
    for key in ["a/b/c", "a/b/c/d"] {
        match store.put_bytes(key, b"x".to_vec(), "text/plain").await {
            Err(e @ BlobError::Backend { .. }) => {
                assert_eq!(e.class(), ErrorClass::Permanent, "{e}")
            }
            other => panic!("put {key} under an object must fail permanently, got {other:?}"),
        }
    }
    store
        .put_bytes("p/q/r", b"x".to_vec(), "text/plain")
        .await
        .expect("put p/q/r");
    assert!(
        store
            .put_bytes("p/q", b"x".to_vec(), "text/plain")
            .await
            .is_err()
    );
    assert_eq!(store.get_bytes("a/b").await.expect("a/b intact"), b"object");
    assert_eq!(
        store.list("").await.expect("list").len(),
        2,
        "failed puts leave nothing behind"
    );
}

#[tokio::test]
async fn sqlite_invalid_cursor_says_so() {
    let store = SqliteJobStore::open_in_memory().expect("open");
    let err = store
        .list("someone", 10, Some("zz"))
        .await
        .expect_err("invalid cursor");
    assert_eq!(err.to_string(), "store backend error: invalid cursor");
    assert_eq!(err.class(), ErrorClass::Permanent);
}

/// The offline planner and provider pass the same suites as the AI adapters do against their
/// fakes (shared/ai/tests, shared/aws/tests/bedrock.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_planner_and_procedural_provider_conform() {
    use vidpipe_pipeline::conformance::{clip_provider, planner};
    let body: vidpipe_domain::request::GenerationRequestBody =
        serde_json::from_value(serde_json::json!({
            "prompt": "A fox wakes. It hunts at dawn. The sun rises. Snow falls.",
            "duration_seconds": 12, "aspect_ratio": "9:16", "clip_count": 3
        }))
        .expect("body");
    planner::run_all(
        &vidpipe_domain::plan::RulesPlanner,
        &body.validate().expect("valid"),
    )
    .await;
    let tools = vidpipe_media::Tools::locate(None).expect("ffmpeg: run layers/ffmpeg/build.sh");
    let spec = vidpipe_domain::media::ClipSpec {
        scene_index: 0,
        visual_prompt: "a fox in the snow".into(),
        seed: 1,
        width: 320,
        height: 180,
        fps: 24,
        frames: 24,
        first_frame: None,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    clip_provider::run_all(
        &vidpipe_media::ProceduralProvider::new(tools),
        &spec,
        dir.path(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_live_store_conforms() {
    // One process's store: both handles are the same map.
    let store = Arc::new(vidpipe_pipeline::live::MemoryLiveStore::default());
    live_store::run_all(store.clone(), store).await;
}

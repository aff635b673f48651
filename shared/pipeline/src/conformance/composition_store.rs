//! The `CompositionStore` conformance suite: a job's versions read back whole, oldest first, a
//! repeat put harmless (it replaces), jobs apart, and no composition without its job. Every check
//! makes its own jobs, so one backend hosts them all. A timeline render (a composition of no job)
//! reads back by its id alone, and never among a job's versions.

use super::job_store::sample_job;
use super::unique;
use chrono::{DateTime, TimeDelta, Utc};
use vidpipe_domain::composition::{
    Composition, CompositionId, CompositionStatus, TimelineCall, TimelineRender, lineage,
};
use vidpipe_domain::job::{ComposeRoute, Job, JobError, JobId, Outputs};
use vidpipe_domain::ports::{CompositionStore, JobStore, StoreError};
use vidpipe_domain::{Stage, keys};

/// Runs every check. `jobs` and `store` must reach the same backend (they are usually one
/// adapter); `other_handle` reaches it through its own connection or client.
pub async fn run_all(
    jobs: &dyn JobStore,
    store: &dyn CompositionStore,
    other_handle: &dyn CompositionStore,
) {
    a_job_without_compositions_lists_none(jobs, store).await;
    versions_read_back_whole_and_oldest_first(jobs, store, other_handle).await;
    putting_a_composition_again_replaces_it(jobs, store).await;
    jobs_are_apart(jobs, store).await;
    a_composition_needs_its_job(store).await;
    a_timeline_reads_back_by_its_id_alone(jobs, store, other_handle).await;
}

/// Whole milliseconds: every backend keeps at least that, so the roundtrip compares exactly.
fn now_ms() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now")
}

async fn stored_job(jobs: &dyn JobStore) -> Job {
    jobs.create(&sample_job(&unique("comp-owner"), None))
        .await
        .expect("create the job")
}

fn completed(mut c: Composition, at: DateTime<Utc>) -> Composition {
    c.status = CompositionStatus::Completed;
    c.outputs = Some(Outputs {
        final_key: keys::final_video(&c.id),
        thumbnail_key: keys::thumbnail(&c.id),
        timeline_key: keys::timeline(&c.id),
        metadata_key: keys::metadata(&c.id),
        duration_seconds: 12.0,
        size_bytes: 987_654,
    });
    c.updated_at = at;
    c
}

fn clip_keys(job: &JobId) -> Vec<String> {
    (0..3).map(|i| keys::clip(job, i)).collect()
}

async fn list(store: &dyn CompositionStore, job: &JobId) -> Vec<Composition> {
    store
        .compositions(job)
        .await
        .unwrap_or_else(|e| panic!("compositions of {job}: {e:?}"))
}

pub async fn a_job_without_compositions_lists_none(
    jobs: &dyn JobStore,
    store: &dyn CompositionStore,
) {
    let job = stored_job(jobs).await;
    assert!(list(store, &job.id).await.is_empty());
    let absent = store
        .get_composition(&job.id, &CompositionId::first_of(&job.id))
        .await
        .expect("get");
    assert_eq!(absent, None);
}

pub async fn versions_read_back_whole_and_oldest_first(
    jobs: &dyn JobStore,
    store: &dyn CompositionStore,
    other: &dyn CompositionStore,
) {
    let job = stored_job(jobs).await;
    let t0 = now_ms();
    let first = completed(
        Composition::rendering(
            CompositionId::first_of(&job.id),
            job.id.clone(),
            &job.owner,
            None,
            clip_keys(&job.id),
            t0,
        ),
        t0 + TimeDelta::milliseconds(40_000),
    );
    let mut second = Composition::rendering(
        CompositionId::generate(),
        job.id.clone(),
        &job.owner,
        Some(first.id.clone()),
        clip_keys(&job.id),
        t0 + TimeDelta::milliseconds(60_000),
    );
    second.edits = Some(serde_json::json!({"aspect_ratio": "9:16", "captions": false}));
    let mut third = Composition::rendering(
        CompositionId::generate(),
        job.id.clone(),
        &job.owner,
        Some(second.id.clone()),
        vec![keys::clip(&job.id, 2), keys::clip(&job.id, 0)],
        t0 + TimeDelta::milliseconds(90_000),
    );
    third.status = CompositionStatus::Failed;
    third.error = Some(JobError {
        code: "MediaError".into(),
        message: "ffmpeg exited with 1".into(),
        stage: Some(Stage::Composing),
    });
    // Written newest first, through both handles: the order read back is the store's doing.
    for (c, s) in [(&third, store), (&second, other), (&first, store)] {
        s.put_composition(c).await.expect("put composition");
    }
    let all = list(other, &job.id).await;
    assert_eq!(all, vec![first.clone(), second.clone(), third.clone()]);
    assert_eq!(
        store
            .get_composition(&job.id, &second.id)
            .await
            .expect("get"),
        Some(second.clone())
    );
    let chain: Vec<_> = lineage(&all, &third.id)
        .iter()
        .map(|c| c.id.clone())
        .collect();
    assert_eq!(chain, vec![third.id, second.id, first.id]);
}

pub async fn putting_a_composition_again_replaces_it(
    jobs: &dyn JobStore,
    store: &dyn CompositionStore,
) {
    let job = stored_job(jobs).await;
    let t0 = now_ms();
    let rendering = Composition::rendering(
        CompositionId::generate(),
        job.id.clone(),
        &job.owner,
        None,
        clip_keys(&job.id),
        t0,
    );
    store.put_composition(&rendering).await.expect("put");
    store
        .put_composition(&rendering)
        .await
        .expect("a repeat is harmless");
    let done = completed(rendering.clone(), t0 + TimeDelta::seconds(5));
    store.put_composition(&done).await.expect("put completed");
    assert_eq!(list(store, &job.id).await, vec![done]);
}

pub async fn jobs_are_apart(jobs: &dyn JobStore, store: &dyn CompositionStore) {
    let (a, b) = (stored_job(jobs).await, stored_job(jobs).await);
    let c = Composition::rendering(
        CompositionId::first_of(&a.id),
        a.id.clone(),
        &a.owner,
        None,
        clip_keys(&a.id),
        now_ms(),
    );
    store.put_composition(&c).await.expect("put");
    assert!(list(store, &b.id).await.is_empty());
    assert_eq!(
        store.get_composition(&b.id, &c.id).await.expect("get"),
        None,
        "an id is looked up within its job"
    );
    // The job's own record is untouched by its compositions.
    let read = jobs.get(&a.id).await.expect("get job").expect("stored");
    assert_eq!(read.version, a.version);
    assert!(read.clips.is_empty());
}

pub async fn a_composition_needs_its_job(store: &dyn CompositionStore) {
    let ghost = JobId::generate();
    let c = Composition::rendering(
        CompositionId::first_of(&ghost),
        ghost.clone(),
        "nobody",
        None,
        vec![],
        now_ms(),
    );
    match store.put_composition(&c).await {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("a composition of a missing job: {other:?}"),
    }
}

pub async fn a_timeline_reads_back_by_its_id_alone(
    jobs: &dyn JobStore,
    store: &dyn CompositionStore,
    other: &dyn CompositionStore,
) {
    let t0 = now_ms();
    let render = TimelineRender {
        duration_seconds: 2.0,
        total_frames: 48,
        route: ComposeRoute::Lambda,
        provider_calls: vec![TimelineCall {
            path: "tracks[1].clips[0]".into(),
            provider: "procedural".into(),
            prompt: "waves".into(),
            frames: 48,
            cache_hit: false,
        }],
    };
    let rendering = Composition::timeline(
        CompositionId::generate(),
        unique("timeline-owner"),
        render,
        t0,
    );
    assert_eq!(
        store.get_timeline(&rendering.id).await.expect("get"),
        None,
        "not yet put"
    );
    // No job is needed; a repeat is harmless and the last write wins.
    store
        .put_composition(&rendering)
        .await
        .expect("put timeline");
    store.put_composition(&rendering).await.expect("repeat");
    assert_eq!(
        other.get_timeline(&rendering.id).await.expect("get"),
        Some(rendering.clone())
    );
    let mut failed = rendering.clone();
    failed.status = CompositionStatus::Failed;
    failed.error = Some(JobError {
        code: "ProviderError".into(),
        message: "no provider made the clip".into(),
        stage: Some(Stage::Generating),
    });
    failed.updated_at = t0 + TimeDelta::seconds(3);
    other.put_composition(&failed).await.expect("put failed");
    assert_eq!(
        store.get_timeline(&rendering.id).await.expect("get"),
        Some(failed)
    );
    let done = completed(rendering.clone(), t0 + TimeDelta::seconds(9));
    store.put_composition(&done).await.expect("put completed");
    assert_eq!(
        other.get_timeline(&done.id).await.expect("get"),
        Some(done.clone())
    );
    // A job's versions are not timelines, and a timeline is no job's version.
    let job = stored_job(jobs).await;
    let version = Composition::rendering(
        CompositionId::first_of(&job.id),
        job.id.clone(),
        &job.owner,
        None,
        clip_keys(&job.id),
        t0,
    );
    store.put_composition(&version).await.expect("put version");
    assert_eq!(store.get_timeline(&version.id).await.expect("get"), None);
    assert_eq!(
        store.get_composition(&job.id, &done.id).await.expect("get"),
        None
    );
    assert_eq!(list(store, &job.id).await, vec![version]);
}

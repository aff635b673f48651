//! The `JobStore` conformance suite: every line of the port's contract, as checks any adapter
//! (SQLite, DynamoDB) must pass.
//!
//! Call [`run_all`] with two handles on the same backend, opened independently (two SQLite
//! connections on one file, two DynamoDB clients on one table): the race checks need writers
//! that really can interleave. Passing one handle twice still runs, but proves less.

use super::unique;
use chrono::{DateTime, Duration as TimeDelta, Utc};
use std::collections::HashSet;
use vidpipe_domain::asset::{Asset, AssetId, AssetKind};
use vidpipe_domain::composition::CompositionId;
use vidpipe_domain::job::{ClipRecord, ClipStatus, Job, JobId, JobStatus, Outputs};
use vidpipe_domain::plan::RulesPlanner;
use vidpipe_domain::ports::{JobStore, StoreError};
use vidpipe_domain::request::{BrandBody, LogoBody, MusicBody};
use vidpipe_domain::{ErrorClass, GenerationRequestBody, keys};

/// Runs every check. `other_handle` must reach the same backend as `store` through its own
/// connection or client.
pub async fn run_all(store: &dyn JobStore, other_handle: &dyn JobStore) {
    create_then_get_roundtrips_every_field(store).await;
    get_of_unknown_id_is_none(store).await;
    create_rejects_an_existing_id(store).await;
    idempotency_key_is_unique_per_owner(store).await;
    idempotency_key_race_has_one_winner(store, other_handle).await;
    save_increments_the_version(store).await;
    save_with_a_stale_version_conflicts(store).await;
    save_of_an_absent_job_is_not_found(store).await;
    concurrent_writers_from_one_read_exactly_one_wins(store, other_handle).await;
    put_clip_upserts_and_get_sorts_clips(store).await;
    save_does_not_write_clips(store).await;
    parallel_clip_writes_do_not_contend(store, other_handle).await;
    list_pages_newest_first_without_gaps(store).await;
    list_isolates_owners(store).await;
    list_rejects_an_invalid_cursor(store).await;
    assets_roundtrip_and_reject_repeats(store).await;
}

/// A minimal valid job for `owner`, created now.
pub fn sample_job(owner: &str, idempotency_key: Option<&str>) -> Job {
    sample_job_at(owner, idempotency_key, Utc::now())
}

/// A minimal valid job for `owner` with a chosen creation time (for ordering checks).
pub fn sample_job_at(owner: &str, idempotency_key: Option<&str>, created_at: DateTime<Utc>) -> Job {
    let request = GenerationRequestBody {
        prompt: Some("A lighthouse at dawn. Waves roll in. Gulls circle overhead.".into()),
        duration_seconds: Some(12.0),
        aspect_ratio: Some("16:9".into()),
        ..Default::default()
    }
    .validate()
    .expect("the sample request is valid");
    Job::new(
        owner,
        request,
        idempotency_key.map(str::to_owned),
        created_at,
    )
}

/// A job with every optional field filled, so a roundtrip proves nothing is dropped.
fn rich_job(owner: &str) -> Job {
    let request = GenerationRequestBody {
        prompt: Some(
            "A city at night. Neon signs flicker. Rain on the street. A train passes.".into(),
        ),
        duration_seconds: Some(20.0),
        aspect_ratio: Some("9:16".into()),
        resolution: Some("720p".into()),
        fps: Some(24),
        clip_count: Some(4),
        transition: Some("fadeblack".into()),
        transition_duration_seconds: Some(0.75),
        captions: Some(vidpipe_domain::request::CaptionsBody::Styled(
            vidpipe_domain::request::CaptionStyleBody {
                style: Some("karaoke".into()),
                position: Some("top".into()),
                size: Some("large".into()),
            },
        )),
        narration: Some(vidpipe_domain::request::NarrationBody {
            enabled: Some(true),
            provider: Some("polly".into()),
            voice: Some("Joanna".into()),
            engine: Some("long-form".into()),
        }),
        webhook_url: Some("https://hooks.example.com/vidpipe/done".into()),
        provider: Some("procedural".into()),
        planner: Some("rules".into()),
        seed: Some(4242),
        brand: Some(BrandBody {
            logo: Some(LogoBody {
                asset_id: Some(AssetId::generate().to_string()),
                position: Some("bottom-left".into()),
                opacity: Some(0.6),
                scale: Some(0.1),
            }),
            music: Some(MusicBody {
                asset_id: Some(AssetId::generate().to_string()),
                volume: Some(0.5),
                fade_in_seconds: Some(0.5),
                fade_out_seconds: Some(1.5),
            }),
        }),
    }
    .validate()
    .expect("the rich sample request is valid");
    let t0 = Utc::now();
    let job = Job::new(owner, request, Some(unique("idem")), t0);
    let mut job = job
        .transition(JobStatus::Planning, t0 + TimeDelta::milliseconds(5))
        .and_then(|j| j.transition(JobStatus::Generating, t0 + TimeDelta::milliseconds(250)))
        .and_then(|j| j.transition(JobStatus::Composing, t0 + TimeDelta::milliseconds(9_001)))
        .and_then(|j| {
            j.fail(
                "MediaError",
                "ffmpeg exited with 1",
                t0 + TimeDelta::milliseconds(12_345),
            )
        })
        .expect("the sample transitions are allowed");
    job.plan = Some(
        RulesPlanner
            .plan(&job.request)
            .expect("the rules planner plans the sample"),
    );
    job.compose_fraction = 0.375;
    let first = CompositionId::first_of(&job.id);
    job.outputs = Some(Outputs {
        final_key: keys::final_video(&first),
        thumbnail_key: keys::thumbnail(&first),
        timeline_key: keys::timeline(&first),
        metadata_key: keys::metadata(&first),
        duration_seconds: 20.0,
        size_bytes: 1_234_567,
    });
    job
}

fn clip(index: u32, status: ClipStatus) -> ClipRecord {
    ClipRecord {
        index,
        status,
        provider: "procedural".into(),
        key: (status == ClipStatus::Done)
            .then(|| format!("generations/x/clips/clip_{index:03}.mp4")),
        cache_hit: index.is_multiple_of(2),
        attempts: 1 + index,
        frames: 90 + index,
        error: (status == ClipStatus::Failed).then(|| "boom".to_owned()),
        updated_at: Utc::now(),
        handle: None,
        fallback: None,
        cost: None,
        polls: 0,
        compute_ms: 0,
        bytes: 0,
        thumbnail_key: (status == ClipStatus::Done)
            .then(|| format!("generations/x/thumbnails/clip_{index:03}.jpg")),
    }
}

async fn must_create(store: &dyn JobStore, job: &Job) -> Job {
    store
        .create(job)
        .await
        .unwrap_or_else(|e| panic!("create of a new job {} failed: {e}", job.id))
}

async fn must_get(store: &dyn JobStore, id: &JobId) -> Job {
    match store.get(id).await {
        Ok(Some(job)) => job,
        Ok(None) => panic!("get {id}: the job is missing"),
        Err(e) => panic!("get {id} failed: {e}"),
    }
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

/// `create` stores the job at version 1 and `get` gives back every field unchanged.
pub async fn create_then_get_roundtrips_every_field(store: &dyn JobStore) {
    let job = rich_job(&unique("owner"));
    let created = must_create(store, &job).await;
    assert_eq!(
        created.version, 1,
        "create must return the job at version 1"
    );
    let expected = Job {
        version: 1,
        ..job.clone()
    };
    assert_eq!(created, expected, "create must return the job it stored");
    let got = must_get(store, &job.id).await;
    assert_eq!(
        got, expected,
        "get must return every field of the created job unchanged"
    );

    // A plain new job too: the minimal shape must roundtrip as well.
    let plain = sample_job(&unique("owner"), None);
    must_create(store, &plain).await;
    assert_eq!(
        must_get(store, &plain.id).await,
        Job {
            version: 1,
            ..plain
        }
    );
}

pub async fn get_of_unknown_id_is_none(store: &dyn JobStore) {
    let id = JobId::generate();
    match store.get(&id).await {
        Ok(None) => {}
        other => panic!("get of an unknown id must be Ok(None), got {other:?}"),
    }
}

pub async fn create_rejects_an_existing_id(store: &dyn JobStore) {
    let job = sample_job(&unique("owner"), None);
    must_create(store, &job).await;
    let mut again = job.clone();
    again.request.seed = 99;
    match store.create(&again).await {
        Err(StoreError::AlreadyExists(_)) => {}
        other => panic!("create of an existing id must be AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        must_get(store, &job.id).await.request.seed,
        job.request.seed,
        "a refused create must not overwrite"
    );
}

/// A repeated (owner, key) names the first job and stores nothing; another owner may reuse the
/// key; jobs without a key never collide.
pub async fn idempotency_key_is_unique_per_owner(store: &dyn JobStore) {
    let owner = unique("owner");
    let key = unique("idem");
    let first = must_create(store, &sample_job(&owner, Some(&key))).await;

    let second = sample_job(&owner, Some(&key));
    match store.create(&second).await {
        Err(StoreError::DuplicateIdempotencyKey(existing)) => {
            assert_eq!(
                existing, first.id,
                "DuplicateIdempotencyKey must name the first job"
            )
        }
        other => panic!(
            "a repeated (owner, idempotency key) must be DuplicateIdempotencyKey, got {other:?}"
        ),
    }
    assert!(
        store.get(&second.id).await.expect("get").is_none(),
        "a job refused for its idempotency key must not be stored"
    );

    let other_owner = sample_job(&unique("owner"), Some(&key));
    must_create(store, &other_owner).await;

    let found = |owner: String, key: String| async move {
        store
            .find_idempotent(&owner, &key)
            .await
            .unwrap_or_else(|e| panic!("find_idempotent({owner:?}, {key:?}): {e:?}"))
    };
    assert_eq!(
        found(owner.clone(), key.clone()).await,
        Some(first.id.clone()),
        "find_idempotent names the first job"
    );
    assert_eq!(
        found(other_owner.owner.clone(), key.clone()).await,
        Some(other_owner.id.clone()),
        "keys are per owner"
    );
    assert_eq!(found(owner.clone(), unique("idem")).await, None);

    let a = sample_job(&owner, None);
    let b = sample_job(&owner, None);
    must_create(store, &a).await;
    must_create(store, &b).await;
}

/// Two handles create jobs with the same (owner, key) at once: one is stored, the other is told
/// which one.
pub async fn idempotency_key_race_has_one_winner(a: &dyn JobStore, b: &dyn JobStore) {
    for _ in 0..3 {
        let owner = unique("owner");
        let key = unique("idem");
        let ja = sample_job(&owner, Some(&key));
        let jb = sample_job(&owner, Some(&key));
        let (ra, rb) = tokio::join!(a.create(&ja), b.create(&jb));
        let (winner, loser) = match (ra, rb) {
            (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
            (ra, rb) => panic!(
                "racing creates with one idempotency key: expected exactly one success, got {ra:?} and {rb:?}"
            ),
        };
        match loser {
            StoreError::DuplicateIdempotencyKey(id) => {
                assert_eq!(id, winner.id, "the loser must be told the winner's id")
            }
            other => panic!("the losing create must be DuplicateIdempotencyKey, got {other:?}"),
        }
    }
}

pub async fn save_increments_the_version(store: &dyn JobStore) {
    let created = must_create(store, &sample_job(&unique("owner"), None)).await;
    let planning = created
        .transition(JobStatus::Planning, Utc::now())
        .expect("queued -> planning");
    let saved = store
        .save(&planning)
        .await
        .expect("save from the current version");
    assert_eq!(saved.version, 2, "save must return the version incremented");
    assert_eq!(
        saved,
        Job {
            version: 2,
            ..planning.clone()
        },
        "save must return the job it wrote"
    );
    let got = must_get(store, &created.id).await;
    assert_eq!(got, saved, "get after save must return the saved job");

    let mut generating = got
        .transition(JobStatus::Generating, Utc::now())
        .expect("planning -> generating");
    generating.plan = Some(RulesPlanner.plan(&generating.request).expect("plan"));
    let saved = store.save(&generating).await.expect("second save");
    assert_eq!(saved.version, 3);
    assert_eq!(must_get(store, &created.id).await, saved);
}

pub async fn save_with_a_stale_version_conflicts(store: &dyn JobStore) {
    let created = must_create(store, &sample_job(&unique("owner"), None)).await;
    let saved = store
        .save(
            &created
                .transition(JobStatus::Planning, Utc::now())
                .expect("transition"),
        )
        .await
        .expect("first save");

    let stale = created
        .transition(JobStatus::Cancelled, Utc::now())
        .expect("queued -> cancelled");
    assert_conflict(
        store.save(&stale).await,
        "save from a version that was already replaced",
    );
    let mut ahead = saved.clone();
    ahead.version += 5;
    assert_conflict(
        store.save(&ahead).await,
        "save from a version the store never had",
    );

    let got = must_get(store, &created.id).await;
    assert_eq!(
        got, saved,
        "a refused save must leave the stored job untouched"
    );
}

pub async fn save_of_an_absent_job_is_not_found(store: &dyn JobStore) {
    let mut never_created = sample_job(&unique("owner"), None);
    never_created.version = 1;
    match store.save(&never_created).await {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("save of a job that was never created must be NotFound, got {other:?}"),
    }
    assert!(
        store.get(&never_created.id).await.expect("get").is_none(),
        "save must not create"
    );
}

/// Both handles read the same state and try to move it: exactly one wins, the other gets
/// `Conflict`, at every stage of the job.
pub async fn concurrent_writers_from_one_read_exactly_one_wins(a: &dyn JobStore, b: &dyn JobStore) {
    let created = must_create(a, &sample_job(&unique("owner"), None)).await;
    let mut expected_version = created.version;
    for next in [
        JobStatus::Planning,
        JobStatus::Generating,
        JobStatus::Composing,
    ] {
        let (read_a, read_b) = tokio::join!(a.get(&created.id), b.get(&created.id));
        let read_a = read_a.expect("get via a").expect("job visible via a");
        let read_b = read_b.expect("get via b").expect("job visible via b");
        assert_eq!(
            read_a.version, expected_version,
            "both handles must see the latest version"
        );
        assert_eq!(
            read_b.version, expected_version,
            "both handles must see the latest version"
        );
        let mut write_a = read_a.transition(next, Utc::now()).expect("allowed move");
        write_a.compose_fraction = 0.1;
        let mut write_b = read_b.transition(next, Utc::now()).expect("allowed move");
        write_b.compose_fraction = 0.2;

        let (ra, rb) = tokio::join!(a.save(&write_a), b.save(&write_b));
        let winner = match (ra, rb) {
            (Ok(w), Err(StoreError::Conflict(_))) | (Err(StoreError::Conflict(_)), Ok(w)) => w,
            (ra, rb) => panic!(
                "two writers from one read ({next}): expected one Ok and one Conflict, got {ra:?} and {rb:?}"
            ),
        };
        expected_version += 1;
        assert_eq!(winner.version, expected_version);
        let stored = must_get(b, &created.id).await;
        assert_eq!(
            stored, winner,
            "the stored job must be exactly the winner's write"
        );
        assert_eq!(stored.status, next);
    }
}

/// `put_clip` upserts by index, repeats are harmless, `get` sorts by index, and clip writes do
/// not touch the job's version (they are stored apart precisely so they never contend for it).
pub async fn put_clip_upserts_and_get_sorts_clips(store: &dyn JobStore) {
    let created = must_create(store, &sample_job(&unique("owner"), None)).await;
    for index in [2, 0, 1] {
        store
            .put_clip(&created.id, &clip(index, ClipStatus::Generating))
            .await
            .unwrap_or_else(|e| panic!("put_clip {index} failed: {e}"));
    }
    let done = clip(1, ClipStatus::Done);
    store
        .put_clip(&created.id, &done)
        .await
        .expect("put_clip update");
    store
        .put_clip(&created.id, &done)
        .await
        .expect("put_clip repeated");

    let got = must_get(store, &created.id).await;
    let indexes: Vec<u32> = got.clips.iter().map(|c| c.index).collect();
    assert_eq!(
        indexes,
        vec![0, 1, 2],
        "clips must come back once per index, sorted by index"
    );
    assert_eq!(
        got.clips[1], done,
        "the later put_clip must replace the record"
    );
    assert_eq!(
        got.clips[0],
        clip_with_time(0, ClipStatus::Generating, got.clips[0].updated_at)
    );
    assert_eq!(
        got.version, created.version,
        "put_clip must not change the job's version"
    );
    assert_eq!(
        Job {
            clips: vec![],
            ..got
        },
        created,
        "put_clip must not change the job record"
    );
}

fn clip_with_time(index: u32, status: ClipStatus, updated_at: DateTime<Utc>) -> ClipRecord {
    ClipRecord {
        updated_at,
        ..clip(index, status)
    }
}

/// Clip records are not written through `save`: a job carrying other clips leaves the stored
/// ones as they were.
pub async fn save_does_not_write_clips(store: &dyn JobStore) {
    let created = must_create(store, &sample_job(&unique("owner"), None)).await;
    let stored_clip = clip(0, ClipStatus::Done);
    store
        .put_clip(&created.id, &stored_clip)
        .await
        .expect("put_clip");
    let mut job = must_get(store, &created.id).await;
    job.clips = vec![clip(0, ClipStatus::Failed), clip(7, ClipStatus::Pending)];
    let job = job
        .transition(JobStatus::Planning, Utc::now())
        .expect("transition");
    store.save(&job).await.expect("save");
    let got = must_get(store, &created.id).await;
    assert_eq!(
        got.clips,
        vec![stored_clip],
        "save must not write clip records"
    );
    assert_eq!(got.status, JobStatus::Planning);
}

/// Clips written in parallel through two handles all land, and the job's version stays put.
pub async fn parallel_clip_writes_do_not_contend(a: &dyn JobStore, b: &dyn JobStore) {
    let created = must_create(a, &sample_job(&unique("owner"), None)).await;
    let writes_a = async {
        for index in (0..8).step_by(2) {
            a.put_clip(&created.id, &clip(index, ClipStatus::Done))
                .await
                .expect("put_clip via a");
        }
    };
    let writes_b = async {
        for index in (1..8).step_by(2) {
            b.put_clip(&created.id, &clip(index, ClipStatus::Done))
                .await
                .expect("put_clip via b");
        }
    };
    tokio::join!(writes_a, writes_b);
    let got = must_get(a, &created.id).await;
    let indexes: Vec<u32> = got.clips.iter().map(|c| c.index).collect();
    assert_eq!(
        indexes,
        (0..8).collect::<Vec<_>>(),
        "every parallel clip write must land"
    );
    assert_eq!(
        got.version, created.version,
        "clip writes must not contend for the job's version"
    );
    // The job can still move from the version it was read at.
    let moved = got
        .transition(JobStatus::Planning, Utc::now())
        .expect("transition");
    b.save(&moved)
        .await
        .expect("save after parallel clip writes");
}

/// Pages are newest first, at most `limit` long, and together hold every job exactly once, even
/// when creation times tie across a page boundary. A short page ends the listing.
pub async fn list_pages_newest_first_without_gaps(store: &dyn JobStore) {
    let owner = unique("owner");
    let base = Utc::now();
    // Offsets in seconds: ties at 1 and 3 straddle the boundaries of pages of 3.
    let offsets = [0, 1, 1, 2, 3, 3, 4];
    let mut ids = HashSet::new();
    for offset in offsets {
        let job = sample_job_at(&owner, None, base - TimeDelta::seconds(offset));
        ids.insert(must_create(store, &job).await.id);
    }
    // One job saved past version 1: listing must show the current version.
    let newest = store
        .list(&owner, 1, None)
        .await
        .expect("list first page")
        .jobs;
    assert_eq!(newest.len(), 1, "a limit of 1 must return one job");
    let moved = store
        .save(
            &newest[0]
                .transition(JobStatus::Planning, Utc::now())
                .expect("transition"),
        )
        .await
        .expect("save");

    for limit in [3u32, 2, 1] {
        let mut seen: Vec<Job> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        let max_pages = offsets.len().div_ceil(limit as usize) + 1;
        loop {
            pages += 1;
            assert!(
                pages <= max_pages,
                "limit {limit}: listing did not end after {max_pages} pages"
            );
            let page = store
                .list(&owner, limit, cursor.as_deref())
                .await
                .unwrap_or_else(|e| panic!("list page {pages} (limit {limit}) failed: {e}"));
            assert!(
                page.jobs.len() <= limit as usize,
                "limit {limit}: page {pages} has {} jobs",
                page.jobs.len()
            );
            if page.jobs.len() < limit as usize {
                assert!(
                    page.next_cursor.is_none(),
                    "limit {limit}: a short page must be the last (no cursor)"
                );
            }
            if page.next_cursor.is_some() {
                assert!(
                    !page.jobs.is_empty(),
                    "limit {limit}: a page with a cursor must not be empty"
                );
            }
            seen.extend(page.jobs);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let listed: Vec<&JobId> = seen.iter().map(|j| &j.id).collect();
        let unique_ids: HashSet<&JobId> = listed.iter().copied().collect();
        assert_eq!(
            unique_ids.len(),
            listed.len(),
            "limit {limit}: a job appeared on two pages: {listed:?}"
        );
        assert_eq!(
            unique_ids,
            ids.iter().collect(),
            "limit {limit}: listing must hold every job of the owner"
        );
        assert!(
            seen.windows(2).all(|w| w[0].created_at >= w[1].created_at),
            "limit {limit}: jobs must be newest first"
        );
        let listed_moved = seen
            .iter()
            .find(|j| j.id == moved.id)
            .expect("the saved job is listed");
        assert_eq!(
            listed_moved.version, moved.version,
            "list must show the current version"
        );
        assert_eq!(listed_moved.status, JobStatus::Planning);
    }

    let all = store
        .list(&owner, 100, None)
        .await
        .expect("list with a large limit");
    assert_eq!(all.jobs.len(), offsets.len());
    assert!(
        all.next_cursor.is_none(),
        "a page shorter than the limit carries no cursor"
    );
}

pub async fn list_isolates_owners(store: &dyn JobStore) {
    let owner_a = unique("owner");
    let owner_b = unique("owner");
    let a1 = must_create(store, &sample_job(&owner_a, None)).await;
    let a2 = must_create(store, &sample_job(&owner_a, None)).await;
    let b1 = must_create(store, &sample_job(&owner_b, None)).await;

    let page_a = store.list(&owner_a, 10, None).await.expect("list a");
    let ids_a: HashSet<JobId> = page_a.jobs.into_iter().map(|j| j.id).collect();
    assert_eq!(
        ids_a,
        HashSet::from([a1.id, a2.id]),
        "list must return exactly the owner's jobs"
    );
    let page_b = store.list(&owner_b, 10, None).await.expect("list b");
    assert_eq!(
        page_b.jobs.iter().map(|j| &j.id).collect::<Vec<_>>(),
        vec![&b1.id]
    );

    let empty = store
        .list(&unique("nobody"), 10, None)
        .await
        .expect("list of an owner without jobs");
    assert!(
        empty.jobs.is_empty() && empty.next_cursor.is_none(),
        "an owner without jobs gets one empty last page"
    );
}

/// A cursor the store did not issue is a permanent backend error, never a silent first page.
pub async fn list_rejects_an_invalid_cursor(store: &dyn JobStore) {
    let owner = unique("owner");
    must_create(store, &sample_job(&owner, None)).await;
    for bad in ["not a cursor", "AAAA", "%%%", "{}"] {
        match store.list(&owner, 10, Some(bad)).await {
            Err(e @ StoreError::Backend { .. }) => {
                assert_eq!(
                    e.class(),
                    ErrorClass::Permanent,
                    "an invalid cursor ({bad:?}) must be permanent: {e}"
                )
            }
            other => panic!(
                "list with the invalid cursor {bad:?} must be a Backend error, got {other:?}"
            ),
        }
    }
}

pub async fn assets_roundtrip_and_reject_repeats(store: &dyn JobStore) {
    let owner = unique("owner");
    let id = AssetId::generate();
    let logo = Asset {
        key: keys::upload(&owner, &id, "png"),
        id,
        owner: owner.clone(),
        kind: AssetKind::Logo,
        content_type: "image/png".into(),
        size_bytes: 20_480,
        width: Some(512),
        height: Some(256),
        duration_seconds: None,
        created_at: Utc::now(),
    };
    store
        .put_asset(&logo)
        .await
        .expect("put_asset of a new asset");
    assert_eq!(
        store.get_asset(&logo.id).await.expect("get_asset"),
        Some(logo.clone()),
        "asset roundtrip"
    );

    let music_id = AssetId::generate();
    let music = Asset {
        key: keys::upload(&owner, &music_id, "mp3"),
        id: music_id,
        owner,
        kind: AssetKind::Music,
        content_type: "audio/mpeg".into(),
        size_bytes: 3_000_000,
        width: None,
        height: None,
        duration_seconds: Some(31.25),
        created_at: Utc::now(),
    };
    store
        .put_asset(&music)
        .await
        .expect("put_asset of a second asset");
    assert_eq!(
        store.get_asset(&music.id).await.expect("get_asset"),
        Some(music)
    );

    let mut repeat = logo.clone();
    repeat.size_bytes = 1;
    match store.put_asset(&repeat).await {
        Err(StoreError::AlreadyExists(_)) => {}
        other => panic!("put_asset of an existing id must be AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        store.get_asset(&logo.id).await.expect("get_asset"),
        Some(logo),
        "a refused put must not overwrite"
    );
    assert_eq!(
        store
            .get_asset(&AssetId::generate())
            .await
            .expect("get_asset of an unknown id"),
        None
    );
}

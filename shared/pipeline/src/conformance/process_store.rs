//! The `ProcessStore` conformance suite: the port's contract (a save writes only over the version
//! it read and returns the record one version on; a re-run replaces, never adds; get returns the
//! last save or `None`) as checks every adapter (SQLite, DynamoDB) must pass.

use super::unique;
use chrono::{Duration as TimeDelta, Utc};
use vidpipe_domain::names;
use vidpipe_domain::ports::{ProcessStore, StoreError};
use vidpipe_domain::processing::{ProcessFailure, ProcessJob, SourceRef};

fn source(label: &str) -> SourceRef {
    SourceRef {
        bucket: "media".into(),
        key: format!("raw/{}/launch/My Clip ü.MOV", unique(label)),
        version: Some("v1".into()),
    }
}

pub async fn run_all(store: &dyn ProcessStore) {
    unknown_id_is_none(store).await;
    save_then_get_roundtrips(store).await;
    a_second_save_replaces_the_first(store).await;
    records_of_other_writes_stay_apart(store).await;
    a_stale_version_conflicts_and_writes_nothing(store).await;
    of_racing_writers_from_one_version_exactly_one_wins(store).await;
    a_tenant_lists_its_own_records_newest_first_in_pages(store).await;
}

pub async fn unknown_id_is_none(store: &dyn ProcessStore) {
    let id = source("none").id();
    assert_eq!(store.get_process(&id).await.expect("get"), None);
}

pub async fn save_then_get_roundtrips(store: &dyn ProcessStore) {
    let job = ProcessJob::new(&source("roundtrip"), Utc::now());
    let saved = store.save_process(&job).await.expect("save");
    assert_eq!(
        saved.version,
        job.version + 1,
        "a save moves the version on"
    );
    assert_eq!(store.get_process(&job.id).await.expect("get"), Some(saved));
}

pub async fn a_second_save_replaces_the_first(store: &dyn ProcessStore) {
    let running = store
        .save_process(&ProcessJob::new(&source("replace"), Utc::now()))
        .await
        .expect("save");
    let failed = running
        .fail(
            ProcessFailure {
                error: names::SOURCE_REJECTED.into(),
                reason: "the file is empty (0 bytes)".into(),
            },
            running.updated_at + TimeDelta::seconds(5),
        )
        .expect("running can fail");
    let failed = store.save_process(&failed).await.expect("second save");
    assert_eq!(
        store.get_process(&running.id).await.expect("get"),
        Some(failed),
        "a re-run must replace the record, not keep the first"
    );
}

pub async fn records_of_other_writes_stay_apart(store: &dyn ProcessStore) {
    let first = source("apart");
    let mut second = first.clone();
    second.version = Some("v2".into());
    let (a, b) = (
        ProcessJob::new(&first, Utc::now()),
        ProcessJob::new(&second, Utc::now()),
    );
    let a = store.save_process(&a).await.expect("save a");
    let b = store.save_process(&b).await.expect("save b");
    assert_ne!(a.id, b.id);
    assert_eq!(store.get_process(&a.id).await.expect("get a"), Some(a));
    assert_eq!(store.get_process(&b.id).await.expect("get b"), Some(b));
}

pub async fn a_stale_version_conflicts_and_writes_nothing(store: &dyn ProcessStore) {
    let fresh = ProcessJob::new(&source("stale"), Utc::now());
    let saved = store.save_process(&fresh).await.expect("save");
    // A second writer that also saw "no record yet".
    let err = store.save_process(&fresh).await.expect_err("stale create");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let mut behind = saved.clone();
    behind.version -= 1;
    let err = store.save_process(&behind).await.expect_err("stale update");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        store.get_process(&saved.id).await.expect("get"),
        Some(saved),
        "a refused save leaves the record as it was"
    );
}

pub async fn of_racing_writers_from_one_version_exactly_one_wins(store: &dyn ProcessStore) {
    let mut current = store
        .save_process(&ProcessJob::new(&source("race"), Utc::now()))
        .await
        .expect("save");
    for round in 1..=4 {
        let mut a = current.clone();
        a.updated_at = current.updated_at + TimeDelta::milliseconds(round);
        let mut b = current.clone();
        b.updated_at = current.updated_at + TimeDelta::milliseconds(round + 100);
        let (ra, rb) = tokio::join!(store.save_process(&a), store.save_process(&b));
        current = match (ra, rb) {
            (Ok(w), Err(StoreError::Conflict(_))) | (Err(StoreError::Conflict(_)), Ok(w)) => w,
            (ra, rb) => panic!(
                "two writers from version {}: expected one Ok and one Conflict, got {ra:?} and {rb:?}",
                current.version
            ),
        };
        assert_eq!(
            store.get_process(&current.id).await.expect("get"),
            Some(current.clone())
        );
    }
}

/// `list_process` pages one tenant's records (the `raw/{client}/` segment) newest first by
/// creation, each page's cursor leading to the next, and refuses a cursor it did not make.
pub async fn a_tenant_lists_its_own_records_newest_first_in_pages(store: &dyn ProcessStore) {
    let tenant = unique("lister");
    let other = unique("other");
    let base = Utc::now();
    let mut made = Vec::new();
    for i in 0..5i64 {
        let src = SourceRef {
            bucket: "media".into(),
            key: format!("raw/{tenant}/launch/take {i}.mp4"),
            version: Some("v1".into()),
        };
        let job = ProcessJob::new(&src, base + TimeDelta::seconds(i));
        let saved = store.save_process(&job).await.expect("save");
        // A later write keeps the record's place: the order is by creation.
        let failed = saved
            .fail(
                ProcessFailure {
                    error: names::SOURCE_REJECTED.into(),
                    reason: "the file is empty (0 bytes)".into(),
                },
                base + TimeDelta::seconds(100 - i),
            )
            .expect("fail");
        store.save_process(&failed).await.expect("second save");
        made.push(job.id);
    }
    let theirs = SourceRef {
        bucket: "media".into(),
        key: format!("raw/{other}/launch/take.mp4"),
        version: None,
    };
    store
        .save_process(&ProcessJob::new(&theirs, base + TimeDelta::seconds(50)))
        .await
        .expect("save");

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let page = store
            .list_process(&tenant, 2, cursor.as_deref())
            .await
            .expect("list");
        assert!(page.jobs.len() <= 2);
        seen.extend(page.jobs.iter().map(|j| j.id.clone()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    made.reverse();
    assert_eq!(
        seen, made,
        "newest first, every record once, no other tenant's"
    );
    let others = store.list_process(&other, 10, None).await.expect("list");
    assert_eq!(others.jobs.len(), 1);
    assert_eq!(others.next_cursor, None);
    match store.list_process(&tenant, 2, Some("not-a-cursor")).await {
        Err(StoreError::Backend { class, .. }) => {
            assert_eq!(class, vidpipe_domain::ErrorClass::Permanent)
        }
        other => panic!("a foreign cursor must be refused, got {other:?}"),
    }
}

/// The `UploadStore` contract: versioned saves, one record per id, `None` before the first.
pub async fn upload_store_run_all(store: &dyn vidpipe_domain::ports::UploadStore) {
    use vidpipe_domain::upload::{UploadId, UploadRecord, UploadStatus};
    let key = format!("raw/{}/launch/a.mp4", unique("uploader"));
    let id = UploadId::for_key(&key);
    assert_eq!(store.get_upload(&id).await.expect("get"), None);
    let now = Utc::now();
    let record = UploadRecord {
        id: id.clone(),
        owner: "uploader".into(),
        project: "launch".into(),
        filename: "a.mp4".into(),
        key,
        size_bytes: 12,
        content_type: "video/mp4".into(),
        multipart: None,
        status: UploadStatus::Pending,
        // Kept whole, as every field is.
        webhook_url: Some(
            vidpipe_domain::webhook::WebhookUrl::parse(
                "https://hooks.example.com/vidpipe?team=a",
                Default::default(),
            )
            .expect("a public https URL"),
        ),
        created_at: now,
        updated_at: now,
        version: 0,
    };
    let saved = store.save_upload(&record).await.expect("save");
    assert_eq!(saved.version, 1);
    assert_eq!(
        store.get_upload(&id).await.expect("get"),
        Some(saved.clone())
    );
    assert!(matches!(
        store.save_upload(&record).await,
        Err(StoreError::Conflict(_))
    ));
    let done = UploadRecord {
        status: UploadStatus::Completed,
        ..saved
    };
    let done = store.save_upload(&done).await.expect("second save");
    assert_eq!(done.version, 2);
    assert_eq!(store.get_upload(&id).await.expect("get"), Some(done));
}

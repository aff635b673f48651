//! The `ProcessStore` conformance suite: the port's contract (put creates or replaces by id, get
//! returns the last put or `None`) as checks every adapter (SQLite, DynamoDB) must pass.

use super::unique;
use chrono::{Duration as TimeDelta, Utc};
use vidpipe_domain::ports::ProcessStore;
use vidpipe_domain::processing::{ProcessFailure, ProcessJob, ProcessStatus, SourceRef};

fn source(label: &str) -> SourceRef {
    SourceRef {
        bucket: "media".into(),
        key: format!("raw/{}/launch/My Clip ü.MOV", unique(label)),
        version: Some("v1".into()),
    }
}

pub async fn run_all(store: &dyn ProcessStore) {
    unknown_id_is_none(store).await;
    put_then_get_roundtrips(store).await;
    a_second_put_replaces_the_first(store).await;
    records_of_other_writes_stay_apart(store).await;
}

pub async fn unknown_id_is_none(store: &dyn ProcessStore) {
    let id = source("none").id();
    assert_eq!(store.get_process(&id).await.expect("get"), None);
}

pub async fn put_then_get_roundtrips(store: &dyn ProcessStore) {
    let job = ProcessJob::new(&source("roundtrip"), Utc::now());
    store.put_process(&job).await.expect("put");
    assert_eq!(store.get_process(&job.id).await.expect("get"), Some(job));
}

pub async fn a_second_put_replaces_the_first(store: &dyn ProcessStore) {
    let running = ProcessJob::new(&source("replace"), Utc::now());
    store.put_process(&running).await.expect("put");
    let mut failed = running.clone();
    failed.status = ProcessStatus::Failed;
    failed.updated_at = running.updated_at + TimeDelta::seconds(5);
    failed.error = Some(ProcessFailure {
        error: "VidPipe.SourceRejected".into(),
        reason: "the file is empty (0 bytes)".into(),
    });
    store.put_process(&failed).await.expect("second put");
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
    store.put_process(&a).await.expect("put a");
    store.put_process(&b).await.expect("put b");
    assert_ne!(a.id, b.id);
    assert_eq!(store.get_process(&a.id).await.expect("get a"), Some(a));
    assert_eq!(store.get_process(&b.id).await.expect("get b"), Some(b));
}

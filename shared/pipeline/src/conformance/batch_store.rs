//! The conformance suite of `BatchStore`: a batch reads back whole (every outcome, field error
//! and key, items in their order) through another handle, a second write of the same id is
//! refused and changes nothing, and an unknown id is absent. Every check uses fresh ids, so one
//! backend hosts them all.

use super::unique;
use chrono::{DateTime, Utc};
use vidpipe_domain::batch::{Batch, BatchId, BatchItem, ItemError, ItemOutcome, MAX_BATCH_ITEMS};
use vidpipe_domain::error::FieldError;
use vidpipe_domain::job::JobId;
use vidpipe_domain::ports::{BatchStore, StoreError};

/// Runs every `BatchStore` check. `other_handle` must reach the same backend through its own
/// connection or client.
pub async fn run_all(store: &dyn BatchStore, other_handle: &dyn BatchStore) {
    an_unknown_batch_is_absent(store).await;
    a_batch_reads_back_whole_in_order(store, other_handle).await;
    a_full_batch_of_refusals_fits(store, other_handle).await;
    a_batch_is_written_once(store, other_handle).await;
}

/// Whole milliseconds: every backend keeps at least that, so the roundtrip compares exactly.
fn now_ms() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now")
}

fn refusal(index: usize) -> ItemOutcome {
    ItemOutcome::Error {
        error: ItemError {
            status: 422,
            kind: "validation".into(),
            detail: "2 field(s) failed validation.".into(),
            errors: vec![
                FieldError::new(
                    format!("items[{index}].duration_seconds"),
                    "must be a whole number of seconds from 5 to 300 (got 4.5)",
                ),
                // Any Unicode a rule may quote survives the roundtrip.
                FieldError::new(format!("items[{index}].prompt"), "« too long » — 字幕 🎬"),
            ],
            retry_after_seconds: None,
        },
    }
}

fn batch(owner: &str, items: Vec<BatchItem>) -> Batch {
    Batch {
        id: BatchId::generate(),
        owner: owner.to_owned(),
        created_at: now_ms(),
        items,
    }
}

async fn get(store: &dyn BatchStore, id: &BatchId) -> Option<Batch> {
    store
        .get_batch(id)
        .await
        .unwrap_or_else(|e| panic!("get_batch {id}: {e:?}"))
}

pub async fn an_unknown_batch_is_absent(store: &dyn BatchStore) {
    assert_eq!(get(store, &BatchId::generate()).await, None);
}

pub async fn a_batch_reads_back_whole_in_order(store: &dyn BatchStore, other: &dyn BatchStore) {
    let owner = unique("batch-whole");
    let items = vec![
        BatchItem {
            index: 0,
            idempotency_key: Some("key-0".into()),
            outcome: ItemOutcome::Created {
                job_id: JobId::generate(),
            },
        },
        BatchItem {
            index: 1,
            idempotency_key: None,
            outcome: refusal(1),
        },
        BatchItem {
            index: 2,
            idempotency_key: Some("key-2".into()),
            outcome: ItemOutcome::Replayed {
                job_id: JobId::generate(),
            },
        },
        BatchItem {
            index: 3,
            idempotency_key: None,
            outcome: ItemOutcome::Error {
                error: ItemError {
                    status: 429,
                    kind: "quota-exceeded".into(),
                    detail: "Over the concurrent_jobs quota.".into(),
                    errors: vec![],
                    retry_after_seconds: Some(30),
                },
            },
        },
    ];
    let written = batch(&owner, items);
    store.put_batch(&written).await.expect("put_batch");
    let read = get(other, &written.id).await.expect("stored");
    assert_eq!(
        read, written,
        "the batch reads back whole through another handle"
    );
    let counts = read.counts();
    assert_eq!((counts.created, counts.replayed, counts.failed), (1, 1, 2));
}

pub async fn a_full_batch_of_refusals_fits(store: &dyn BatchStore, other: &dyn BatchStore) {
    let owner = unique("batch-full");
    let items = (0..MAX_BATCH_ITEMS)
        .map(|i| BatchItem {
            index: i as u32,
            idempotency_key: Some(format!("{}-{i}", "k".repeat(240))),
            outcome: refusal(i),
        })
        .collect();
    let written = batch(&owner, items);
    store.put_batch(&written).await.expect("a full batch fits");
    assert_eq!(get(other, &written.id).await, Some(written));
}

pub async fn a_batch_is_written_once(store: &dyn BatchStore, other: &dyn BatchStore) {
    let owner = unique("batch-once");
    let first = batch(
        &owner,
        vec![BatchItem {
            index: 0,
            idempotency_key: None,
            outcome: ItemOutcome::Created {
                job_id: JobId::generate(),
            },
        }],
    );
    store.put_batch(&first).await.expect("first write");
    let again = Batch {
        owner: unique("batch-thief"),
        items: vec![],
        ..first.clone()
    };
    match other.put_batch(&again).await {
        Err(StoreError::AlreadyExists(_)) => {}
        other => panic!(
            "a second write of batch {} must be AlreadyExists, got {other:?}",
            first.id
        ),
    }
    assert_eq!(
        get(store, &first.id).await,
        Some(first),
        "nothing was replaced"
    );
}

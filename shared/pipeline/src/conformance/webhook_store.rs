//! The conformance suites of the webhook ports: `WebhookSecretStore` (versioned saves, one
//! winner among racing writers, tenants apart, secrets and their overlap kept whole) and
//! `DeliveryLog` (every attempt kept with every field, oldest first, a repeat harmless, jobs and
//! kinds apart). Every check uses fresh tenants and job ids, so one backend hosts them all.

use super::unique;
use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Arc;
use vidpipe_domain::ErrorClass;
use vidpipe_domain::ports::{DeliveryLog, StoreError, WebhookSecretStore};
use vidpipe_domain::webhook::{
    DeliveryAttempt, DeliveryOutcome, JobKind, TenantSecrets, WebhookEvent, WebhookFormat,
    WebhookSecret, webhook_id,
};

/// Runs every `WebhookSecretStore` check. `other_handle` must reach the same backend through its
/// own connection or client, so the race has writers that really interleave.
pub async fn secret_store_run_all(
    store: Arc<dyn WebhookSecretStore>,
    other_handle: Arc<dyn WebhookSecretStore>,
) {
    a_new_tenant_has_no_secrets(&*store).await;
    saves_are_versioned_and_read_back_whole(&*store, &*other_handle).await;
    a_stale_save_is_a_conflict_and_writes_nothing(&*store).await;
    tenants_are_apart(&*store).await;
    an_empty_tenant_is_refused(&*store).await;
    racing_first_saves_give_one_winner(store, other_handle).await;
}

/// Runs every `DeliveryLog` check.
pub async fn delivery_log_run_all(log: &dyn DeliveryLog) {
    attempts_read_back_whole_and_oldest_first(log).await;
    recording_an_attempt_again_replaces_it(log).await;
    jobs_and_kinds_are_apart(log).await;
    an_empty_job_id_is_refused(log).await;
}

fn secret(fill: u8) -> WebhookSecret {
    WebhookSecret::from_key(&[fill; 32])
}

/// Whole milliseconds: every backend keeps at least that, so the roundtrip compares exactly.
fn now_ms() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now")
}

async fn get(store: &dyn WebhookSecretStore, tenant: &str) -> Option<TenantSecrets> {
    store
        .get_secrets(tenant)
        .await
        .unwrap_or_else(|e| panic!("get_secrets {tenant}: {e:?}"))
}

pub async fn a_new_tenant_has_no_secrets(store: &dyn WebhookSecretStore) {
    assert_eq!(get(store, &unique("whsec-none")).await, None);
}

pub async fn saves_are_versioned_and_read_back_whole(
    store: &dyn WebhookSecretStore,
    other: &dyn WebhookSecretStore,
) {
    let tenant = unique("whsec-save");
    let t0 = now_ms();
    let first = TenantSecrets::new(&tenant, secret(1), t0);
    let saved = store.save_secrets(&first).await.expect("first save");
    assert_eq!(saved.version, 1);
    assert_eq!(get(other, &tenant).await, Some(saved.clone()));
    let rotated = saved.rotate(secret(2), t0).expect("rotate");
    let saved = other
        .save_secrets(&rotated)
        .await
        .expect("save the rotation");
    assert_eq!(saved.version, 2);
    let read = get(store, &tenant).await.expect("stored");
    assert_eq!(read, saved, "the rotation and its overlap read back whole");
    assert_eq!(read.signing_secrets(t0), vec![&secret(2), &secret(1)]);
    assert_eq!(read.previous[0].expires_at, t0 + TimeDelta::hours(24));
}

pub async fn a_stale_save_is_a_conflict_and_writes_nothing(store: &dyn WebhookSecretStore) {
    let tenant = unique("whsec-stale");
    let t0 = now_ms();
    let saved = store
        .save_secrets(&TenantSecrets::new(&tenant, secret(1), t0))
        .await
        .expect("first save");
    // Another first save (version 0) after one landed.
    let again = store
        .save_secrets(&TenantSecrets::new(&tenant, secret(9), t0))
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let moved = store
        .save_secrets(&saved.rotate(secret(2), t0).expect("rotate"))
        .await
        .expect("save at version 1");
    // A writer still holding version 1.
    let stale = store
        .save_secrets(&saved.rotate(secret(3), t0).expect("rotate"))
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    assert_eq!(get(store, &tenant).await, Some(moved));
}

pub async fn tenants_are_apart(store: &dyn WebhookSecretStore) {
    let (a, b) = (unique("whsec-a"), unique("whsec-b"));
    let t0 = now_ms();
    store
        .save_secrets(&TenantSecrets::new(&a, secret(1), t0))
        .await
        .expect("save a");
    store
        .save_secrets(&TenantSecrets::new(&b, secret(2), t0))
        .await
        .expect("save b");
    assert_eq!(get(store, &a).await.expect("a").current, secret(1));
    assert_eq!(get(store, &b).await.expect("b").current, secret(2));
}

pub async fn an_empty_tenant_is_refused(store: &dyn WebhookSecretStore) {
    for result in [
        store.get_secrets("").await.map(|_| ()),
        store
            .save_secrets(&TenantSecrets::new("", secret(1), now_ms()))
            .await
            .map(|_| ()),
    ] {
        match result {
            Err(e @ StoreError::Backend { .. }) => assert_eq!(e.class(), ErrorClass::Permanent),
            other => panic!("an empty tenant must be a permanent backend error, got {other:?}"),
        }
    }
}

pub async fn racing_first_saves_give_one_winner(
    store: Arc<dyn WebhookSecretStore>,
    other: Arc<dyn WebhookSecretStore>,
) {
    const RACERS: u8 = 6;
    let tenant = unique("whsec-race");
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS as usize));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let handle = if i % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            let (tenant, barrier) = (tenant.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                handle
                    .save_secrets(&TenantSecrets::new(&tenant, secret(i + 1), Utc::now()))
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("racer") {
            Ok(saved) => winners.push(saved),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("a losing racer must get Conflict, got {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one first save may land");
    assert_eq!(
        get(&*store, &tenant).await.expect("stored").current,
        winners[0].current,
        "every reader sees the winner's secret"
    );
}

fn attempt(kind: JobKind, job: &str, n: u32, at: DateTime<Utc>) -> DeliveryAttempt {
    DeliveryAttempt {
        id: format!("att_{}", uuid::Uuid::now_v7().simple()),
        kind,
        job_id: job.to_owned(),
        tenant: "acme".into(),
        webhook_id: webhook_id(kind, job, 0, WebhookEvent::Completed),
        event: WebhookEvent::Completed,
        target: "https://hooks.example.com".into(),
        format: WebhookFormat::Standard,
        attempt: n,
        attempted_at: at,
        duration_ms: 12 + u64::from(n),
        status: Some(500),
        error: Some("the receiver answered 500".into()),
        outcome: DeliveryOutcome::Retrying,
    }
}

async fn attempts(log: &dyn DeliveryLog, kind: JobKind, job: &str) -> Vec<DeliveryAttempt> {
    log.attempts(kind, job)
        .await
        .unwrap_or_else(|e| panic!("attempts of {job}: {e:?}"))
}

async fn record(log: &dyn DeliveryLog, a: &DeliveryAttempt) {
    log.record_attempt(a)
        .await
        .unwrap_or_else(|e| panic!("record {}: {e:?}", a.id));
}

pub async fn attempts_read_back_whole_and_oldest_first(log: &dyn DeliveryLog) {
    let job = unique("hook-order");
    assert!(attempts(log, JobKind::Generation, &job).await.is_empty());
    let t0 = now_ms();
    let first = attempt(JobKind::Generation, &job, 1, t0);
    let mut second = attempt(
        JobKind::Generation,
        &job,
        2,
        t0 + TimeDelta::milliseconds(1500),
    );
    second.status = Some(200);
    second.error = None;
    second.outcome = DeliveryOutcome::Delivered;
    let mut third = attempt(JobKind::Generation, &job, 3, t0 + TimeDelta::seconds(3));
    third.status = None;
    third.error = Some("no connection: refused".into());
    third.outcome = DeliveryOutcome::GaveUp;
    third.format = WebhookFormat::Slack;
    // Recorded out of order: the log orders by time.
    for a in [&third, &first, &second] {
        record(log, a).await;
    }
    assert_eq!(
        attempts(log, JobKind::Generation, &job).await,
        vec![first, second, third]
    );
}

pub async fn recording_an_attempt_again_replaces_it(log: &dyn DeliveryLog) {
    let job = unique("hook-repeat");
    let mut a = attempt(JobKind::Processing, &job, 1, now_ms());
    record(log, &a).await;
    record(log, &a).await;
    assert_eq!(
        attempts(log, JobKind::Processing, &job).await,
        vec![a.clone()]
    );
    a.outcome = DeliveryOutcome::GaveUp;
    record(log, &a).await;
    assert_eq!(attempts(log, JobKind::Processing, &job).await, vec![a]);
}

pub async fn jobs_and_kinds_are_apart(log: &dyn DeliveryLog) {
    let job = unique("hook-apart");
    let other = unique("hook-apart-other");
    let g = attempt(JobKind::Generation, &job, 1, now_ms());
    let p = attempt(JobKind::Processing, &job, 1, now_ms());
    let o = attempt(JobKind::Generation, &other, 1, now_ms());
    for a in [&g, &p, &o] {
        record(log, a).await;
    }
    assert_eq!(attempts(log, JobKind::Generation, &job).await, vec![g]);
    assert_eq!(attempts(log, JobKind::Processing, &job).await, vec![p]);
    assert_eq!(attempts(log, JobKind::Generation, &other).await, vec![o]);
}

pub async fn an_empty_job_id_is_refused(log: &dyn DeliveryLog) {
    let bad = attempt(JobKind::Generation, "", 1, now_ms());
    for result in [
        log.record_attempt(&bad).await,
        log.attempts(JobKind::Generation, "").await.map(|_| ()),
    ] {
        match result {
            Err(e @ StoreError::Backend { .. }) => assert_eq!(e.class(), ErrorClass::Permanent),
            other => panic!("an empty job id must be a permanent backend error, got {other:?}"),
        }
    }
}

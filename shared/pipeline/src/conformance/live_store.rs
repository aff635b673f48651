//! The conformance suite of the `LiveStore` port: connections read back whole and removed with
//! every subscription they had, subscriptions listed per job and replaced on a repeat,
//! snapshots saved only from the `seq` they were computed from, and one winner of a race.

use super::unique;
use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Arc;
use vidpipe_domain::events::{JobKind, LiveSnapshot, Outcome};
use vidpipe_domain::ports::{LiveConnection, LiveStore, LiveSubscription, StoreError};

/// Runs every check. `other_handle` must reach the same backend through its own client.
pub async fn run_all(store: Arc<dyn LiveStore>, other_handle: Arc<dyn LiveStore>) {
    connections_read_back_whole(&*store).await;
    subscriptions_are_listed_per_job_and_replaced_on_a_repeat(&*store).await;
    removing_a_connection_removes_its_subscriptions(&*store).await;
    unsubscribing_removes_one_and_is_harmless_twice(&*store).await;
    a_snapshot_saves_only_from_its_seq(&*store).await;
    racing_snapshot_saves_give_one_winner(store, other_handle).await;
}

/// Whole seconds: every backend keeps at least that.
fn now_s() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).expect("now")
}

fn connection(tenant: &str) -> LiveConnection {
    let now = now_s();
    LiveConnection {
        id: unique("conn"),
        tenant: tenant.to_owned(),
        connected_at: now,
        expires_at: now + TimeDelta::hours(3),
    }
}

fn subscription(c: &LiveConnection, job_id: &str) -> LiveSubscription {
    LiveSubscription {
        connection_id: c.id.clone(),
        tenant: c.tenant.clone(),
        job_id: job_id.to_owned(),
        snapshot: LiveSnapshot::new(JobKind::Generation),
        expires_at: c.expires_at,
    }
}

fn told(seq: u64) -> LiveSnapshot {
    LiveSnapshot {
        seq,
        stage: Some("generating".into()),
        percent: Some(37.5),
        outcome: (seq > 5).then_some(Outcome::Completed),
        ..LiveSnapshot::new(JobKind::Generation)
    }
}

async fn subs(store: &dyn LiveStore, job: &str) -> Vec<LiveSubscription> {
    let mut v = store
        .subscribers(job)
        .await
        .unwrap_or_else(|e| panic!("subscribers {job}: {e:?}"));
    v.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
    v
}

pub async fn connections_read_back_whole(store: &dyn LiveStore) {
    let c = connection(&unique("tenant"));
    assert_eq!(store.get_connection(&c.id).await.unwrap(), None);
    store.put_connection(&c).await.unwrap();
    assert_eq!(store.get_connection(&c.id).await.unwrap(), Some(c.clone()));
    store.remove_connection(&c.id).await.unwrap();
    assert_eq!(store.get_connection(&c.id).await.unwrap(), None);
    // Removing it again is harmless.
    store.remove_connection(&c.id).await.unwrap();
}

pub async fn subscriptions_are_listed_per_job_and_replaced_on_a_repeat(store: &dyn LiveStore) {
    let tenant = unique("tenant");
    let (a, b) = (connection(&tenant), connection(&tenant));
    let (job, other_job) = (unique("job"), unique("job"));
    for c in [&a, &b] {
        store.put_connection(c).await.unwrap();
        store.subscribe(&subscription(c, &job)).await.unwrap();
    }
    store
        .subscribe(&subscription(&a, &other_job))
        .await
        .unwrap();
    let mut expected = vec![subscription(&a, &job), subscription(&b, &job)];
    expected.sort_by(|x, y| x.connection_id.cmp(&y.connection_id));
    assert_eq!(subs(store, &job).await, expected);
    assert_eq!(
        subs(store, &other_job).await,
        vec![subscription(&a, &other_job)]
    );
    // A repeated subscribe starts the subscription over: one item, a fresh snapshot.
    store.save_snapshot(&a.id, &job, 0, &told(3)).await.unwrap();
    store.subscribe(&subscription(&a, &job)).await.unwrap();
    let after = subs(store, &job).await;
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|s| s.snapshot.seq == 0), "{after:?}");
    assert!(subs(store, &unique("job")).await.is_empty());
}

pub async fn removing_a_connection_removes_its_subscriptions(store: &dyn LiveStore) {
    let tenant = unique("tenant");
    let (gone, stays) = (connection(&tenant), connection(&tenant));
    let job = unique("job");
    for c in [&gone, &stays] {
        store.put_connection(c).await.unwrap();
        store.subscribe(&subscription(c, &job)).await.unwrap();
    }
    let other = unique("job");
    store.subscribe(&subscription(&gone, &other)).await.unwrap();
    store.remove_connection(&gone.id).await.unwrap();
    assert_eq!(subs(store, &job).await, vec![subscription(&stays, &job)]);
    assert!(subs(store, &other).await.is_empty());
    assert_eq!(store.get_connection(&gone.id).await.unwrap(), None);
    assert!(store.get_connection(&stays.id).await.unwrap().is_some());
}

pub async fn unsubscribing_removes_one_and_is_harmless_twice(store: &dyn LiveStore) {
    let c = connection(&unique("tenant"));
    store.put_connection(&c).await.unwrap();
    let (job, kept) = (unique("job"), unique("job"));
    store.subscribe(&subscription(&c, &job)).await.unwrap();
    store.subscribe(&subscription(&c, &kept)).await.unwrap();
    store.unsubscribe(&c.id, &job).await.unwrap();
    store.unsubscribe(&c.id, &job).await.unwrap();
    assert!(subs(store, &job).await.is_empty());
    assert_eq!(subs(store, &kept).await.len(), 1);
    // A removed subscription takes no snapshot.
    assert!(matches!(
        store.save_snapshot(&c.id, &job, 0, &told(1)).await,
        Err(StoreError::Conflict(_))
    ));
}

pub async fn a_snapshot_saves_only_from_its_seq(store: &dyn LiveStore) {
    let c = connection(&unique("tenant"));
    store.put_connection(&c).await.unwrap();
    let job = unique("job");
    store.subscribe(&subscription(&c, &job)).await.unwrap();
    store.save_snapshot(&c.id, &job, 0, &told(4)).await.unwrap();
    assert_eq!(subs(store, &job).await[0].snapshot, told(4));
    // From a stale seq: refused, and the saved one stands.
    assert!(matches!(
        store.save_snapshot(&c.id, &job, 0, &told(9)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(subs(store, &job).await[0].snapshot, told(4));
    store.save_snapshot(&c.id, &job, 4, &told(7)).await.unwrap();
    assert_eq!(subs(store, &job).await[0].snapshot, told(7));
}

pub async fn racing_snapshot_saves_give_one_winner(
    store: Arc<dyn LiveStore>,
    other: Arc<dyn LiveStore>,
) {
    let c = connection(&unique("tenant"));
    store.put_connection(&c).await.unwrap();
    let job = unique("job");
    store.subscribe(&subscription(&c, &job)).await.unwrap();
    let mut tasks = Vec::new();
    for (i, s) in [store.clone(), other, store.clone(), store.clone()]
        .into_iter()
        .enumerate()
    {
        let (id, job) = (c.id.clone(), job.clone());
        tasks.push(tokio::spawn(async move {
            s.save_snapshot(&id, &job, 0, &told(i as u64 + 1)).await
        }));
    }
    let mut won = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.expect("task") {
            Ok(()) => won.push(i as u64 + 1),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("save {i}: {e:?}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one racing save wins: {won:?}");
    assert_eq!(subs(&*store, &job).await[0].snapshot, told(won[0]));
}

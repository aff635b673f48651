//! The `LeaseStore` conformance suite: the port's contract (grants up to the limit and no more, a
//! holder's re-acquire renews instead of taking a second slot, release frees a slot and is `Ok`
//! when nothing is held, leases expire, pools are apart, racers for `k` free slots give exactly
//! `k` winners) as checks every adapter (SQLite, DynamoDB) must pass.
//!
//! Call [`run_all`] with two handles on the same backend, opened independently (two SQLite
//! connections on one file, two DynamoDB clients on one table), so the race has acquirers that
//! really interleave. Passing one handle twice still runs, but proves less. Every check uses a
//! fresh pool, so one backend hosts every check and reruns.

use super::unique;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use vidpipe_domain::ErrorClass;
use vidpipe_domain::ports::{LeaseStore, StoreError};

/// Long enough that no lease in a non-expiry check lapses while the check runs, even on a slow,
/// shared machine.
const LONG: Duration = Duration::from_secs(600);

/// Runs every check. `other_handle` must reach the same backend as `store` through its own
/// connection or client.
pub async fn run_all(store: Arc<dyn LeaseStore>, other_handle: Arc<dyn LeaseStore>) {
    grants_up_to_the_limit_and_refuses_beyond(&*store).await;
    a_holder_reacquiring_takes_no_second_slot(&*store).await;
    release_frees_a_slot(&*store, &*other_handle).await;
    release_of_an_unheld_lease_is_ok(&*store).await;
    pools_are_independent(&*store).await;
    names_are_opaque(&*store).await;
    limit_zero_refuses_all(&*store).await;
    empty_names_are_refused(&*store).await;
    // The two timed checks wait on the clock; run side by side, they cost one wait.
    tokio::join!(
        an_expired_lease_frees_its_slot(&*store),
        renewal_extends_the_expiry(&*store),
    );
    racing_acquirers_for_k_slots_give_exactly_k_winners(store, other_handle).await;
}

fn pool(label: &str) -> String {
    unique(&format!("lease-{label}"))
}

async fn acquire(store: &dyn LeaseStore, pool: &str, holder: &str, limit: u32) -> bool {
    store
        .acquire(pool, holder, limit, LONG)
        .await
        .unwrap_or_else(|e| panic!("acquire {pool} for {holder} (limit {limit}): {e:?}"))
}

async fn release(store: &dyn LeaseStore, pool: &str, holder: &str) {
    store
        .release(pool, holder)
        .await
        .unwrap_or_else(|e| panic!("release {pool} for {holder}: {e:?}"));
}

pub async fn grants_up_to_the_limit_and_refuses_beyond(store: &dyn LeaseStore) {
    let pool = pool("limit");
    let mut answers = Vec::new();
    for i in 0..5 {
        answers.push(acquire(store, &pool, &format!("job-{i}/0"), 3).await);
    }
    assert_eq!(
        answers,
        [true, true, true, false, false],
        "limit 3 grants the first three holders and refuses the rest"
    );
}

pub async fn a_holder_reacquiring_takes_no_second_slot(store: &dyn LeaseStore) {
    let pool = pool("reacquire");
    assert!(acquire(store, &pool, "a", 2).await, "first acquire");
    assert!(
        acquire(store, &pool, "a", 2).await,
        "a re-acquire is granted"
    );
    assert!(acquire(store, &pool, "a", 2).await, "and again");
    assert!(
        acquire(store, &pool, "b", 2).await,
        "a's repeats took one slot, so the second is still free"
    );
    assert!(
        !acquire(store, &pool, "c", 2).await,
        "a and b hold both slots"
    );
    assert!(
        acquire(store, &pool, "b", 2).await,
        "a holder is granted again even when the pool is full"
    );
}

pub async fn release_frees_a_slot(store: &dyn LeaseStore, other_handle: &dyn LeaseStore) {
    let pool = pool("release");
    assert!(acquire(store, &pool, "a", 1).await);
    assert!(
        !acquire(store, &pool, "b", 1).await,
        "a holds the only slot"
    );
    release(store, &pool, "a").await;
    assert!(
        acquire(other_handle, &pool, "b", 1).await,
        "a's release frees its slot, for every handle"
    );
    assert!(
        !acquire(store, &pool, "a", 1).await,
        "a released, so it no longer holds a lease"
    );
    release(other_handle, &pool, "b").await;
    assert!(acquire(store, &pool, "a", 1).await, "free again");
}

pub async fn release_of_an_unheld_lease_is_ok(store: &dyn LeaseStore) {
    let pool = pool("unheld");
    release(store, &pool, "nobody").await;
    assert!(acquire(store, &pool, "a", 1).await);
    release(store, &pool, "b").await;
    release(store, &pool, "b").await;
    assert!(
        !acquire(store, &pool, "c", 1).await,
        "releasing another holder's lease must leave a's in place"
    );
    release(store, &pool, "a").await;
    release(store, &pool, "a").await;
    assert!(
        acquire(store, &pool, "c", 1).await,
        "a second release of a is Ok and changes nothing"
    );
}

pub async fn pools_are_independent(store: &dyn LeaseStore) {
    let (first, second) = (pool("apart-1"), pool("apart-2"));
    assert!(acquire(store, &first, "a", 1).await);
    assert!(!acquire(store, &first, "b", 1).await);
    assert!(
        acquire(store, &second, "b", 1).await,
        "a full pool does not fill another"
    );
    assert!(
        acquire(store, &second, "a", 2).await,
        "one holder may hold a lease in each of two pools"
    );
    release(store, &second, "a").await;
    assert!(
        !acquire(store, &first, "b", 1).await,
        "a release in one pool frees nothing in another"
    );
}

/// Pool and holder names are any non-empty text: separators a key layout might use (`#`, `/`,
/// `%`, `:`), spaces and non-ASCII must neither collide nor fail.
pub async fn names_are_opaque(store: &dyn LeaseStore) {
    let base = pool("names");
    let pools = [
        base.clone(),
        format!("{base}#x"),
        format!("{base}%23x"),
        format!("{base}/x"),
        format!("{base} ü:x"),
    ];
    let holders = [
        "job_0123/4",
        "job_0123#4",
        "job_0123%234",
        "job 0123/ü",
        "#",
        "%",
    ];
    for pool in &pools {
        assert!(
            acquire(store, pool, holders[0], 1).await,
            "pool {pool:?} is its own pool"
        );
        for holder in &holders[1..] {
            assert!(
                !acquire(store, pool, holder, 1).await,
                "holder {holder:?} is not holder {:?} in pool {pool:?}",
                holders[0]
            );
        }
    }
    let pool = &pools[1];
    release(store, pool, holders[0]).await;
    let mut granted = Vec::new();
    for holder in holders {
        granted.push(acquire(store, pool, holder, 6).await);
    }
    assert_eq!(granted, [true; 6], "six distinct holders fill six slots");
    for holder in holders {
        assert!(
            acquire(store, pool, holder, 6).await,
            "{holder:?} renews its own lease"
        );
    }
    assert!(
        !acquire(store, pool, "job_0123", 6).await,
        "all six slots held"
    );
}

pub async fn limit_zero_refuses_all(store: &dyn LeaseStore) {
    let pool = pool("zero");
    for holder in ["a", "b", "a"] {
        assert!(
            !acquire(store, &pool, holder, 0).await,
            "limit 0 grants no lease ({holder})"
        );
    }
    assert!(
        acquire(store, &pool, "a", 1).await,
        "refusals left nothing held"
    );
}

pub async fn empty_names_are_refused(store: &dyn LeaseStore) {
    let pool = pool("empty");
    for (p, h) in [("", "a"), (pool.as_str(), ""), ("", "")] {
        match store.acquire(p, h, 1, LONG).await {
            Err(e @ StoreError::Backend { .. }) => {
                assert_eq!(e.class(), ErrorClass::Permanent, "{e}")
            }
            other => panic!("acquire({p:?}, {h:?}) must fail permanently, got {other:?}"),
        }
        match store.release(p, h).await {
            Err(e @ StoreError::Backend { .. }) => {
                assert_eq!(e.class(), ErrorClass::Permanent, "{e}")
            }
            other => panic!("release({p:?}, {h:?}) must fail permanently, got {other:?}"),
        }
    }
}

pub async fn an_expired_lease_frees_its_slot(store: &dyn LeaseStore) {
    let pool = pool("expiry");
    let short = Duration::from_secs(2);
    assert!(
        store
            .acquire(&pool, "crashed", 1, short)
            .await
            .expect("acquire")
    );
    assert!(
        !acquire(store, &pool, "next", 1).await,
        "an unexpired lease holds its slot"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        acquire(store, &pool, "next", 1).await,
        "a lease past its ttl frees its slot"
    );
    assert!(
        !store
            .acquire(&pool, "crashed", 1, short)
            .await
            .expect("acquire"),
        "the expired holder lost its lease: it is a newcomer to a full pool"
    );
}

pub async fn renewal_extends_the_expiry(store: &dyn LeaseStore) {
    let pool = pool("renew");
    assert!(
        store
            .acquire(&pool, "a", 1, Duration::from_secs(2))
            .await
            .expect("acquire")
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        store
            .acquire(&pool, "a", 1, Duration::from_secs(4))
            .await
            .expect("renew"),
        "the holder renews"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !acquire(store, &pool, "b", 1).await,
        "past the first ttl, the renewed lease still holds the slot"
    );
}

pub async fn racing_acquirers_for_k_slots_give_exactly_k_winners(
    store: Arc<dyn LeaseStore>,
    other_handle: Arc<dyn LeaseStore>,
) {
    const RACERS: usize = 8;
    const LIMIT: u32 = 3;
    let pool = pool("race");
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            // Alternate handles, so the race is between connections and not only tasks.
            let store = Arc::clone(if i % 2 == 0 { &store } else { &other_handle });
            let barrier = Arc::clone(&barrier);
            let pool = pool.clone();
            tokio::spawn(async move {
                let holder = format!("job-{i}/0");
                barrier.wait().await;
                let granted = store.acquire(&pool, &holder, LIMIT, LONG).await;
                (holder, granted)
            })
        })
        .collect();
    let mut winners = BTreeSet::new();
    let mut losers = BTreeSet::new();
    for task in tasks {
        let (holder, granted) = task.await.expect("acquirer task");
        match granted {
            Ok(true) => winners.insert(holder),
            Ok(false) => losers.insert(holder),
            Err(e) => panic!("{holder}: a racing acquire must answer, got {e:?}"),
        };
    }
    assert_eq!(
        (winners.len(), losers.len()),
        (LIMIT as usize, RACERS - LIMIT as usize),
        "8 racers for 3 slots: exactly 3 win (winners {winners:?})"
    );
    // The answers match what is stored: winners hold (a renewal is granted), losers do not.
    for holder in &winners {
        assert!(
            acquire(&*other_handle, &pool, holder, LIMIT).await,
            "{holder} won, so it holds a lease"
        );
    }
    for holder in &losers {
        assert!(
            !acquire(&*store, &pool, holder, LIMIT).await,
            "{holder} lost, so the pool is full for it"
        );
    }
    let first = winners.first().expect("a winner").clone();
    release(&*store, &pool, &first).await;
    let next = losers.first().expect("a loser").clone();
    assert!(
        acquire(&*other_handle, &pool, &next, LIMIT).await,
        "a winner's release lets one loser in"
    );
}

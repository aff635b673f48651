//! The `QuotaStore` conformance suite: the port's contract (a concurrency limit grants `k` and no
//! more, a daily budget is never overspent, a release frees once and refunds once, a repeated
//! acquire counts once, no limits record nothing, tenants and days are apart, and racers for
//! `k` slots or `k` budget shares give exactly `k` winners) as checks every adapter (SQLite,
//! DynamoDB) must pass.
//!
//! Call [`run_all`] with two handles on the same backend, opened independently, so the races
//! have acquirers that really interleave. Every check uses a fresh tenant, so one backend hosts
//! every check and reruns.

use super::unique;
use chrono::{NaiveDate, Utc};
use std::collections::BTreeSet;
use std::sync::Arc;
use vidpipe_domain::ErrorClass;
use vidpipe_domain::ports::{QuotaStore, StoreError};
use vidpipe_domain::quota::{Admission, QuotaClaim, QuotaKind, QuotaLimits, QuotaUsage};

/// Runs every check. `other_handle` must reach the same backend as `store` through its own
/// connection or client.
pub async fn run_all(store: Arc<dyn QuotaStore>, other_handle: Arc<dyn QuotaStore>) {
    concurrency_grants_up_to_the_limit_and_refuses_beyond(&*store).await;
    release_frees_a_slot_once(&*store, &*other_handle).await;
    a_repeated_acquire_counts_once(&*store).await;
    the_daily_budget_is_spent_exactly_and_refunds_once(&*store, &*other_handle).await;
    a_claim_over_the_whole_budget_is_refused(&*store).await;
    concurrency_is_reported_before_the_budget(&*store).await;
    no_limits_record_nothing(&*store).await;
    tenants_and_days_are_apart(&*store).await;
    names_are_opaque(&*store).await;
    empty_names_are_refused(&*store).await;
    racing_acquirers_for_k_slots_give_exactly_k_winners(store.clone(), other_handle.clone()).await;
    racing_acquirers_for_a_budget_never_overspend_it(store, other_handle).await;
}

fn tenant(label: &str) -> String {
    unique(&format!("quota-{label}"))
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn claim(tenant: &str, job: &str, seconds: u64) -> QuotaClaim {
    QuotaClaim::new(tenant, job, seconds, Utc::now())
}

fn claim_on(tenant: &str, job: &str, seconds: u64, day: NaiveDate) -> QuotaClaim {
    QuotaClaim {
        day,
        ..claim(tenant, job, seconds)
    }
}

fn jobs(k: u32) -> QuotaLimits {
    QuotaLimits {
        concurrent_jobs: Some(k),
        daily_output_seconds: None,
    }
}

fn budget(seconds: u64) -> QuotaLimits {
    QuotaLimits {
        concurrent_jobs: None,
        daily_output_seconds: Some(seconds),
    }
}

async fn acquire(store: &dyn QuotaStore, claim: &QuotaClaim, limits: QuotaLimits) -> Admission {
    store
        .acquire(claim, &limits)
        .await
        .unwrap_or_else(|e| panic!("acquire {claim:?} under {limits:?}: {e:?}"))
}

async fn granted(store: &dyn QuotaStore, claim: &QuotaClaim, limits: QuotaLimits) -> bool {
    acquire(store, claim, limits).await == Admission::Granted
}

async fn release(store: &dyn QuotaStore, tenant: &str, job: &str, refund: bool) {
    store
        .release(tenant, job, refund)
        .await
        .unwrap_or_else(|e| panic!("release {tenant}/{job} (refund {refund}): {e:?}"));
}

async fn usage(store: &dyn QuotaStore, tenant: &str, day: NaiveDate) -> QuotaUsage {
    store
        .usage(tenant, day)
        .await
        .unwrap_or_else(|e| panic!("usage of {tenant} on {day}: {e:?}"))
}

async fn active(store: &dyn QuotaStore, tenant: &str) -> BTreeSet<String> {
    store
        .active(tenant)
        .await
        .unwrap_or_else(|e| panic!("active of {tenant}: {e:?}"))
        .into_iter()
        .map(|c| c.job)
        .collect()
}

fn set(jobs: &[&str]) -> BTreeSet<String> {
    jobs.iter().map(|j| (*j).to_owned()).collect()
}

pub async fn concurrency_grants_up_to_the_limit_and_refuses_beyond(store: &dyn QuotaStore) {
    let t = tenant("limit");
    let mut answers = Vec::new();
    for i in 0..4 {
        answers.push(acquire(store, &claim(&t, &format!("job-{i}"), 10), jobs(2)).await);
    }
    let refused = Admission::Refused {
        quota: QuotaKind::ConcurrentJobs,
        usage: QuotaUsage {
            active_jobs: 2,
            output_seconds: 20,
        },
    };
    assert_eq!(
        answers,
        [
            Admission::Granted,
            Admission::Granted,
            refused.clone(),
            refused
        ],
        "limit 2 admits two jobs, then refuses naming the quota and the usage it saw"
    );
    assert_eq!(active(store, &t).await, set(&["job-0", "job-1"]));
    let claims = store.active(&t).await.expect("active");
    let before = Utc::now() - chrono::TimeDelta::minutes(1);
    assert!(
        claims.iter().all(|c| c.claimed_at > before),
        "claims carry their time: {claims:?}"
    );
}

pub async fn release_frees_a_slot_once(store: &dyn QuotaStore, other_handle: &dyn QuotaStore) {
    let t = tenant("release");
    assert!(granted(store, &claim(&t, "a", 10), jobs(1)).await);
    assert!(!granted(store, &claim(&t, "b", 10), jobs(1)).await);
    release(store, &t, "a", false).await;
    assert!(
        granted(other_handle, &claim(&t, "b", 10), jobs(1)).await,
        "a's release frees its slot, for every handle"
    );
    // A duplicate delivery of a's end must not free b's slot.
    release(store, &t, "a", false).await;
    release(other_handle, &t, "a", true).await;
    release(store, &t, "never-claimed", true).await;
    assert!(
        !granted(store, &claim(&t, "c", 10), jobs(1)).await,
        "repeated releases of a freed nothing more"
    );
    assert_eq!(usage(store, &t, today()).await.active_jobs, 1);
    assert_eq!(
        usage(store, &t, today()).await.output_seconds,
        20,
        "releases without refund keep the charge; a's late refund found no claim to refund"
    );
}

pub async fn a_repeated_acquire_counts_once(store: &dyn QuotaStore) {
    let t = tenant("repeat");
    let limits = QuotaLimits {
        concurrent_jobs: Some(2),
        daily_output_seconds: Some(100),
    };
    for _ in 0..3 {
        assert!(
            granted(store, &claim(&t, "a", 40), limits).await,
            "a job already claimed is granted again"
        );
    }
    assert_eq!(
        usage(store, &t, today()).await,
        QuotaUsage {
            active_jobs: 1,
            output_seconds: 40
        },
        "and counted once"
    );
    assert!(granted(store, &claim(&t, "b", 60), limits).await);
    assert!(
        granted(store, &claim(&t, "a", 40), limits).await,
        "a holder is granted again even when both quotas are full"
    );
}

pub async fn the_daily_budget_is_spent_exactly_and_refunds_once(
    store: &dyn QuotaStore,
    other_handle: &dyn QuotaStore,
) {
    let t = tenant("budget");
    let limits = budget(100);
    assert!(granted(store, &claim(&t, "a", 60), limits).await);
    assert_eq!(
        acquire(store, &claim(&t, "b", 41), limits).await,
        Admission::Refused {
            quota: QuotaKind::DailyOutputMinutes,
            usage: QuotaUsage {
                active_jobs: 1,
                output_seconds: 60
            }
        },
        "60 + 41 is over 100"
    );
    assert!(
        granted(other_handle, &claim(&t, "c", 40), limits).await,
        "60 + 40 is exactly the budget"
    );
    assert!(!granted(store, &claim(&t, "d", 1), limits).await, "spent");
    release(store, &t, "c", false).await;
    assert!(
        !granted(store, &claim(&t, "d", 1), limits).await,
        "a release without refund keeps the charge"
    );
    release(store, &t, "a", true).await;
    release(other_handle, &t, "a", true).await;
    assert_eq!(
        usage(store, &t, today()).await,
        QuotaUsage {
            active_jobs: 0,
            output_seconds: 40
        },
        "a's refund came back once, however often its release was delivered"
    );
    assert!(granted(store, &claim(&t, "d", 60), limits).await);
    assert!(!granted(store, &claim(&t, "e", 1), limits).await);
}

pub async fn a_claim_over_the_whole_budget_is_refused(store: &dyn QuotaStore) {
    let t = tenant("huge");
    assert!(
        !granted(store, &claim(&t, "a", 301), budget(300)).await,
        "on an empty day, a claim over the budget is still refused"
    );
    assert_eq!(usage(store, &t, today()).await, QuotaUsage::default());
    assert!(
        active(store, &t).await.is_empty(),
        "a refusal records nothing"
    );
    assert!(granted(store, &claim(&t, "b", 300), budget(300)).await);
}

pub async fn concurrency_is_reported_before_the_budget(store: &dyn QuotaStore) {
    let t = tenant("both");
    let limits = QuotaLimits {
        concurrent_jobs: Some(1),
        daily_output_seconds: Some(60),
    };
    assert!(granted(store, &claim(&t, "a", 60), limits).await);
    match acquire(store, &claim(&t, "b", 60), limits).await {
        Admission::Refused { quota, .. } => assert_eq!(quota, QuotaKind::ConcurrentJobs),
        Admission::Granted => panic!("both quotas are full"),
    }
    release(store, &t, "a", false).await;
    match acquire(store, &claim(&t, "b", 60), limits).await {
        Admission::Refused { quota, usage } => {
            assert_eq!(quota, QuotaKind::DailyOutputMinutes);
            assert_eq!(usage.output_seconds, 60);
        }
        Admission::Granted => panic!("the budget is spent"),
    }
    assert!(
        active(store, &t).await.is_empty(),
        "a budget refusal took no slot"
    );
}

pub async fn no_limits_record_nothing(store: &dyn QuotaStore) {
    let t = tenant("unlimited");
    for i in 0..3 {
        assert!(
            granted(
                store,
                &claim(&t, &format!("j{i}"), 300),
                QuotaLimits::UNLIMITED
            )
            .await
        );
    }
    assert_eq!(usage(store, &t, today()).await, QuotaUsage::default());
    assert!(active(store, &t).await.is_empty());
    release(store, &t, "j0", true).await;
    assert_eq!(usage(store, &t, today()).await, QuotaUsage::default());
}

pub async fn tenants_and_days_are_apart(store: &dyn QuotaStore) {
    let (a, b) = (tenant("apart-a"), tenant("apart-b"));
    let limits = QuotaLimits {
        concurrent_jobs: Some(1),
        daily_output_seconds: Some(60),
    };
    assert!(granted(store, &claim(&a, "x", 60), limits).await);
    assert!(
        granted(store, &claim(&b, "x", 60), limits).await,
        "another tenant has its own slot and budget, even for the same job name"
    );
    release(store, &a, "x", false).await;
    let yesterday = today().pred_opt().expect("a day before");
    assert!(
        granted(store, &claim_on(&a, "y", 60, yesterday), limits).await,
        "yesterday's budget is not today's"
    );
    assert_eq!(usage(store, &a, yesterday).await.output_seconds, 60);
    assert_eq!(usage(store, &a, today()).await.output_seconds, 60);
    release(store, &a, "y", true).await;
    assert_eq!(
        usage(store, &a, yesterday).await.output_seconds,
        0,
        "a refund goes back to the day the claim was charged to"
    );
    assert_eq!(usage(store, &a, today()).await.output_seconds, 60);
    assert_eq!(usage(store, &b, today()).await.active_jobs, 1);
}

/// Tenant and job names are any non-empty text: separators a key layout might use (`#`, `/`,
/// `%`, `:`), spaces and non-ASCII must neither collide nor fail.
pub async fn names_are_opaque(store: &dyn QuotaStore) {
    let base = tenant("names");
    let tenants = [
        base.clone(),
        format!("{base}#x"),
        format!("{base}%23x"),
        format!("{base}/x"),
    ];
    let job_names = ["job#1", "job%231", "job 1/ü", "#"];
    for t in &tenants {
        for job in job_names {
            assert!(
                granted(store, &claim(t, job, 1), jobs(4)).await,
                "{t:?} {job:?}"
            );
        }
        assert!(
            !granted(store, &claim(t, "job1", 1), jobs(4)).await,
            "four distinct jobs fill {t:?}'s four slots"
        );
        assert_eq!(active(store, t).await, set(&job_names));
    }
    release(store, &tenants[1], "job#1", false).await;
    assert!(granted(store, &claim(&tenants[1], "job1", 1), jobs(4)).await);
    assert!(
        !granted(store, &claim(&tenants[0], "job1", 1), jobs(4)).await,
        "a release under one tenant frees nothing under a look-alike"
    );
}

pub async fn empty_names_are_refused(store: &dyn QuotaStore) {
    let t = tenant("empty");
    for (tn, job) in [("", "a"), (t.as_str(), ""), ("", "")] {
        match store.acquire(&claim(tn, job, 1), &jobs(1)).await {
            Err(e @ StoreError::Backend { .. }) => {
                assert_eq!(e.class(), ErrorClass::Permanent, "{e}")
            }
            other => panic!("acquire({tn:?}, {job:?}) must fail permanently, got {other:?}"),
        }
        match store.release(tn, job, true).await {
            Err(e @ StoreError::Backend { .. }) => {
                assert_eq!(e.class(), ErrorClass::Permanent, "{e}")
            }
            other => panic!("release({tn:?}, {job:?}) must fail permanently, got {other:?}"),
        }
    }
}

/// Racers start together from a barrier, alternating handles so the race is between
/// connections and not only tasks; returns the winners and the losers.
async fn race(
    store: Arc<dyn QuotaStore>,
    other_handle: Arc<dyn QuotaStore>,
    tenant: &str,
    racers: usize,
    seconds: u64,
    limits: QuotaLimits,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let barrier = Arc::new(tokio::sync::Barrier::new(racers));
    let tasks: Vec<_> = (0..racers)
        .map(|i| {
            let store = Arc::clone(if i % 2 == 0 { &store } else { &other_handle });
            let barrier = Arc::clone(&barrier);
            let claim = claim(tenant, &format!("job-{i}"), seconds);
            tokio::spawn(async move {
                barrier.wait().await;
                let answer = store.acquire(&claim, &limits).await;
                (claim.job, answer)
            })
        })
        .collect();
    let (mut winners, mut losers) = (BTreeSet::new(), BTreeSet::new());
    for task in tasks {
        let (job, answer) = task.await.expect("acquirer task");
        match answer {
            Ok(Admission::Granted) => winners.insert(job),
            Ok(Admission::Refused { .. }) => losers.insert(job),
            Err(e) => panic!("{job}: a racing acquire must answer, got {e:?}"),
        };
    }
    (winners, losers)
}

pub async fn racing_acquirers_for_k_slots_give_exactly_k_winners(
    store: Arc<dyn QuotaStore>,
    other_handle: Arc<dyn QuotaStore>,
) {
    const RACERS: usize = 8;
    const LIMIT: u32 = 3;
    let t = tenant("race");
    let (winners, losers) = race(
        store.clone(),
        other_handle.clone(),
        &t,
        RACERS,
        10,
        jobs(LIMIT),
    )
    .await;
    assert_eq!(
        (winners.len(), losers.len()),
        (LIMIT as usize, RACERS - LIMIT as usize),
        "8 racers for 3 slots: exactly 3 win (winners {winners:?})"
    );
    assert_eq!(
        active(&*other_handle, &t).await,
        winners,
        "the store holds exactly the winners"
    );
    assert_eq!(usage(&*store, &t, today()).await.active_jobs, LIMIT);
    let first = winners.first().expect("a winner").clone();
    release(&*store, &t, &first, false).await;
    let next = losers.first().expect("a loser").clone();
    assert!(
        granted(&*other_handle, &claim(&t, &next, 10), jobs(LIMIT)).await,
        "a winner's release lets one loser in"
    );
}

pub async fn racing_acquirers_for_a_budget_never_overspend_it(
    store: Arc<dyn QuotaStore>,
    other_handle: Arc<dyn QuotaStore>,
) {
    const RACERS: usize = 8;
    let t = tenant("budget-race");
    let (winners, _) = race(store.clone(), other_handle, &t, RACERS, 60, budget(180)).await;
    assert_eq!(
        winners.len(),
        3,
        "8 racers for 60 s each against 180 s: exactly 3 win (winners {winners:?})"
    );
    assert_eq!(usage(&*store, &t, today()).await.output_seconds, 180);
}

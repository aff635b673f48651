//! Per-tenant quotas: how many jobs a tenant may have running at once, and how many minutes of
//! output it may ask for in one UTC day. The numbers and the refusal live here; counting them
//! atomically is the [`QuotaStore`](crate::ports::QuotaStore) port's job.
//!
//! What is counted, and when:
//! - a job takes a concurrency slot when it is accepted and gives it back when it reaches a
//!   terminal state (completed, failed, cancelled);
//! - its requested duration is charged to the day (UTC) it was accepted on. A job that **fails**
//!   is refunded, since it delivered no output; a **completed** or **cancelled** job keeps its
//!   charge (a cancel stops work already paid for, and refunding it would make
//!   submit-then-cancel a free loop around the budget).
//!
//! A recompose (a new version of a completed job) renders as much output as a job does, so it
//! is counted the same way, under the claim name [`composition_claim`].
//!
//! Generations are counted today. Upload processing starts from an S3 write that names no
//! authenticated tenant, so it is not; the port takes any job id, so a processing API can claim
//! through the same store once it exists.

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long a caller refused for concurrency is asked to wait: about the time a short
/// generation takes, so a retry is likely to find a slot without hammering the API.
pub const CONCURRENCY_RETRY_AFTER: Duration = Duration::from_secs(30);

/// The limits every tenant gets. `None` is unlimited: nothing is counted for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaLimits {
    /// Jobs accepted and not yet terminal.
    pub concurrent_jobs: Option<u32>,
    /// Seconds of requested output accepted per UTC day (the budget is set in minutes; it is
    /// kept in seconds because durations are whole seconds).
    pub daily_output_seconds: Option<u64>,
}

impl QuotaLimits {
    pub const UNLIMITED: QuotaLimits = QuotaLimits {
        concurrent_jobs: None,
        daily_output_seconds: None,
    };

    /// From the deployment's settings, where `0` means unlimited (a limit of no jobs at all
    /// would make the API useless, so zero is free to mean "off").
    pub fn from_settings(concurrent_jobs: u32, daily_output_minutes: u32) -> Self {
        Self {
            concurrent_jobs: (concurrent_jobs > 0).then_some(concurrent_jobs),
            daily_output_seconds: (daily_output_minutes > 0)
                .then(|| u64::from(daily_output_minutes) * 60),
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.concurrent_jobs.is_none() && self.daily_output_seconds.is_none()
    }
}

/// One job's claim on its tenant's quotas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaClaim {
    pub tenant: String,
    /// Any job id (a generation's, or later a processing job's); opaque to the store.
    pub job: String,
    /// The UTC day the output is charged to.
    pub day: NaiveDate,
    /// Requested output, in whole seconds.
    pub output_seconds: u64,
    /// When the claim was made; a reconciler leaves young claims alone, since the job they
    /// belong to may not be recorded yet.
    pub claimed_at: DateTime<Utc>,
}

impl QuotaClaim {
    pub fn new(tenant: &str, job: &str, output_seconds: u64, now: DateTime<Utc>) -> Self {
        Self {
            tenant: tenant.to_owned(),
            job: job.to_owned(),
            day: now.date_naive(),
            output_seconds,
            claimed_at: now,
        }
    }
}

/// Which quota a refusal is about; the names are the API's `quota` member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum QuotaKind {
    ConcurrentJobs,
    DailyOutputMinutes,
}

impl QuotaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaKind::ConcurrentJobs => "concurrent_jobs",
            QuotaKind::DailyOutputMinutes => "daily_output_minutes",
        }
    }
}

impl std::fmt::Display for QuotaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tenant's counted usage: its active jobs, and one day's charged output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaUsage {
    pub active_jobs: u32,
    pub output_seconds: u64,
}

/// A job the store counts as active, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveClaim {
    pub job: String,
    pub claimed_at: DateTime<Utc>,
}

/// What an acquire came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Granted,
    /// Nothing was counted. `usage` is the tenant's as the store saw it when refusing.
    Refused {
        quota: QuotaKind,
        usage: QuotaUsage,
    },
}

/// A refusal as callers report it: which quota, its limit, how much is used, what was asked,
/// and when retrying makes sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.sentence())]
pub struct QuotaExceeded {
    pub quota: QuotaKind,
    /// Jobs, or minutes.
    pub limit: f64,
    /// Jobs active, or minutes charged today.
    pub used: f64,
    /// One job, or the minutes this job asks for.
    pub requested: f64,
    pub retry_after: Duration,
    /// True when the request alone is over the limit: waiting will never let it in.
    pub never_fits: bool,
}

impl QuotaExceeded {
    /// The refusal for `quota` given the limits, the claim refused and the usage seen.
    pub fn new(
        quota: QuotaKind,
        limits: &QuotaLimits,
        claim: &QuotaClaim,
        usage: QuotaUsage,
        now: DateTime<Utc>,
    ) -> Self {
        match quota {
            QuotaKind::ConcurrentJobs => Self {
                quota,
                limit: f64::from(limits.concurrent_jobs.unwrap_or(0)),
                used: f64::from(usage.active_jobs),
                requested: 1.0,
                retry_after: CONCURRENCY_RETRY_AFTER,
                never_fits: false,
            },
            QuotaKind::DailyOutputMinutes => {
                let budget = limits.daily_output_seconds.unwrap_or(0);
                Self {
                    quota,
                    limit: minutes(budget),
                    used: minutes(usage.output_seconds),
                    requested: minutes(claim.output_seconds),
                    retry_after: until_next_day(now),
                    never_fits: claim.output_seconds > budget,
                }
            }
        }
    }

    fn sentence(&self) -> String {
        match self.quota {
            QuotaKind::ConcurrentJobs => format!(
                "quota concurrent_jobs exceeded: {} of {} jobs are running; retry when one ends",
                self.used, self.limit
            ),
            QuotaKind::DailyOutputMinutes if self.never_fits => format!(
                "quota daily_output_minutes exceeded: this job asks for {} minutes, more than the daily budget of {}",
                self.requested, self.limit
            ),
            QuotaKind::DailyOutputMinutes => format!(
                "quota daily_output_minutes exceeded: {} of {} minutes used today and this job asks for {}; the budget renews at 00:00 UTC",
                self.used, self.limit, self.requested
            ),
        }
    }
}

/// Seconds as minutes, to two decimals (a 10 s job is 0.17 minutes).
fn minutes(seconds: u64) -> f64 {
    (seconds as f64 / 60.0 * 100.0).round() / 100.0
}

/// Whole seconds until the next UTC midnight, at least one.
pub fn until_next_day(now: DateTime<Utc>) -> Duration {
    let next = now
        .date_naive()
        .checked_add_days(Days::new(1))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc());
    let secs = next.map_or(86_400, |t| (t - now).num_seconds().max(0) as u64);
    // Rounded up by a second so a client waiting exactly this long lands on the new day.
    Duration::from_secs(secs.saturating_add(1).max(1))
}

/// Empty tenant or job names are always a caller's bug; every adapter refuses them alike.
/// The claim name of a recompose: its composition and, after `@`, the job it belongs to, so a
/// reconciler can find the record (compositions are stored under their job).
pub fn composition_claim(
    job: &crate::job::JobId,
    composition: &crate::composition::CompositionId,
) -> String {
    format!("{composition}@{job}")
}

/// The job and composition a [`composition_claim`] name stands for; `None` for any other claim.
pub fn parse_composition_claim(
    name: &str,
) -> Option<(crate::job::JobId, crate::composition::CompositionId)> {
    let (composition, job) = name.split_once('@')?;
    Some((
        crate::job::JobId::parse(job).ok()?,
        crate::composition::CompositionId::parse(composition).ok()?,
    ))
}

pub fn check_claim_names(tenant: &str, job: &str) -> Result<(), String> {
    if tenant.is_empty() || job.is_empty() {
        Err(format!(
            "quota tenant and job must not be empty (tenant {tenant:?}, job {job:?})"
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn composition_claims_name_their_job() {
        let job = crate::job::JobId::generate();
        let c = crate::composition::CompositionId::generate();
        let name = composition_claim(&job, &c);
        assert_eq!(parse_composition_claim(&name), Some((job.clone(), c)));
        assert_eq!(parse_composition_claim(job.as_str()), None);
        assert_eq!(parse_composition_claim("cmp_x@job_y"), None);
    }

    #[test]
    fn zero_settings_mean_unlimited() {
        assert!(QuotaLimits::from_settings(0, 0).is_unlimited());
        assert_eq!(
            QuotaLimits::from_settings(3, 90),
            QuotaLimits {
                concurrent_jobs: Some(3),
                daily_output_seconds: Some(5400)
            }
        );
    }

    #[test]
    fn refusals_say_which_quota_and_when_to_retry() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 23, 59, 0).unwrap();
        let limits = QuotaLimits::from_settings(2, 10);
        let claim = QuotaClaim::new("acme", "job_1", 90, now);
        let concurrent = QuotaExceeded::new(
            QuotaKind::ConcurrentJobs,
            &limits,
            &claim,
            QuotaUsage {
                active_jobs: 2,
                output_seconds: 0,
            },
            now,
        );
        assert_eq!((concurrent.limit, concurrent.used), (2.0, 2.0));
        assert_eq!(concurrent.retry_after, CONCURRENCY_RETRY_AFTER);
        let daily = QuotaExceeded::new(
            QuotaKind::DailyOutputMinutes,
            &limits,
            &claim,
            QuotaUsage {
                active_jobs: 0,
                output_seconds: 540,
            },
            now,
        );
        assert_eq!((daily.limit, daily.used, daily.requested), (10.0, 9.0, 1.5));
        assert_eq!(daily.retry_after, Duration::from_secs(61));
        assert!(!daily.never_fits);
        assert!(daily.to_string().contains("9 of 10 minutes"), "{daily}");
        let huge = QuotaClaim::new("acme", "job_2", 660, now);
        let never = QuotaExceeded::new(
            QuotaKind::DailyOutputMinutes,
            &limits,
            &huge,
            QuotaUsage::default(),
            now,
        );
        assert!(never.never_fits);
        assert!(never.to_string().contains("more than the daily budget"));
    }

    #[test]
    fn the_next_day_is_at_least_a_second_away() {
        let midnight = Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap();
        assert_eq!(until_next_day(midnight), Duration::from_secs(86_401));
        let late = Utc.with_ymd_and_hms(2026, 12, 1, 23, 59, 59).unwrap();
        assert_eq!(until_next_day(late), Duration::from_secs(2));
    }
}

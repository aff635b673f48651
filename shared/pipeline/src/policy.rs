//! Retry policies shared by the embedded runner and the state machine: the ASL `Retry` blocks
//! carry the same numbers (a test compares them), so a job behaves the same on both runners.

use crate::error::StepError;
use std::future::Future;
use std::time::Duration;
use vidpipe_domain::ErrorClass;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (ASL `MaxAttempts` counts retries: this minus one).
    pub max_attempts: u32,
    pub interval: Duration,
    pub backoff_rate: f64,
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// For provider calls: throttling clears in seconds, outages in tens of seconds.
    pub const CLIP: RetryPolicy = RetryPolicy {
        max_attempts: 4,
        interval: Duration::from_secs(2),
        backoff_rate: 2.0,
        max_delay: Duration::from_secs(30),
    };

    /// For store/blob/ffmpeg hiccups inside the other steps.
    pub const STEP: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        interval: Duration::from_secs(1),
        backoff_rate: 2.0,
        max_delay: Duration::from_secs(10),
    };

    /// No waiting: for tests that exercise the retry paths.
    pub const fn immediate(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            interval: Duration::ZERO,
            backoff_rate: 1.0,
            max_delay: Duration::ZERO,
        }
    }

    /// The un-jittered delay before retry number `retry` (1-based): `interval` times
    /// `backoff_rate` per earlier retry, capped at `max_delay`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let base =
            self.interval.as_secs_f64() * self.backoff_rate.powi(retry.saturating_sub(1) as i32);
        Duration::from_secs_f64(base.min(self.max_delay.as_secs_f64()))
    }

    /// Delay before retry number `retry` (1-based): [`Self::backoff`] with full jitter, i.e. drawn
    /// from `[0, backoff)` as Step Functions' `JitterStrategy: FULL` does. A provider's own hint
    /// wins when it asks for longer, even past `max_delay`.
    pub fn delay(&self, retry: u32, hint: Option<Duration>) -> Duration {
        let d = self.backoff(retry).mul_f64(jitter_fraction());
        hint.map_or(d, |h| h.max(d))
    }
}

impl RetryPolicy {
    /// Runs `f`, retrying retryable step errors as the state machine's `Retry` would; permanent
    /// errors and the last retryable one are returned. `on_retry` hears of each retry.
    pub async fn retry<T, F, Fut>(
        &self,
        mut on_retry: impl FnMut(u32, &StepError),
        mut f: F,
    ) -> Result<T, StepError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        let mut attempt = 1;
        loop {
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) if e.class() == ErrorClass::Retryable && attempt < self.max_attempts => {
                    on_retry(attempt, &e);
                    tokio::time::sleep(self.delay(attempt, e.retry_after())).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A fraction in [0, 1) that varies between calls; jitter needs spread, not cryptographic quality.
fn jitter_fraction() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    let bits = RandomState::new().hash_one(std::time::SystemTime::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_capped() {
        let p = RetryPolicy::CLIP;
        // 2 s doubling per retry, capped at 30 s.
        let secs = |n: u64| Duration::from_secs(n);
        let expected = [2, 4, 8, 16, 30, 30, 30, 30, 30].map(secs);
        for (retry, want) in (1..10).zip(expected) {
            assert_eq!(p.backoff(retry), want, "backoff before retry {retry}");
            let d = p.delay(retry, None);
            assert!(d <= p.max_delay, "{d:?}");
            assert!(
                d < want,
                "full jitter draws below the backoff: {d:?} vs {want:?}"
            );
        }
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        // A hint past the cap still wins; a shorter one leaves the jittered draw as it is.
        assert_eq!(p.delay(9, Some(secs(45))), secs(45));
        assert!(p.delay(9, Some(Duration::ZERO)) < secs(30));
        assert_eq!(RetryPolicy::immediate(3).delay(2, None), Duration::ZERO);
    }
}

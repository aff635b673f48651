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

    /// Delay before retry number `retry` (1-based): exponential with full jitter, as Step
    /// Functions' `JitterStrategy: FULL` does, capped at `max_delay`. A provider's own hint wins
    /// when it asks for longer.
    pub fn delay(&self, retry: u32, hint: Option<Duration>) -> Duration {
        let base =
            self.interval.as_secs_f64() * self.backoff_rate.powi(retry.saturating_sub(1) as i32);
        let capped = base.min(self.max_delay.as_secs_f64());
        let jittered = capped * jitter_fraction();
        let d = Duration::from_secs_f64(jittered);
        match hint {
            Some(h) if h > d => h.min(self.max_delay.max(h)),
            _ => d,
        }
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
        for retry in 1..10 {
            let d = p.delay(retry, None);
            assert!(d <= p.max_delay, "{d:?}");
        }
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }
}

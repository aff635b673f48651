//! The embedded `LeaseStore`: one row per held lease in the `leases` table of the same SQLite
//! file, so every process on the machine that opens the file shares the provider limits.
//!
//! Each `acquire` is one IMMEDIATE transaction: it takes SQLite's write lock before reading, so
//! the count it checks is still the count when it inserts, across handles and processes alike.

use super::{SqliteJobStore, sql_error};
use chrono::Utc;
use rusqlite::{TransactionBehavior, params};
use std::time::Duration;
use vidpipe_domain::ports::{LeaseStore, StoreError};

#[async_trait::async_trait]
impl LeaseStore for SqliteJobStore {
    async fn acquire(
        &self,
        pool: &str,
        holder: &str,
        limit: u32,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        vidpipe_domain::ports::check_lease_names(pool, holder)?;
        let (pool, holder) = (pool.to_owned(), holder.to_owned());
        let ttl_ms = ceil_millis(ttl);
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            // Read the clock under the write lock, so no writer that saw a later time can have
            // committed before this one judges what has expired.
            let now = Utc::now().timestamp_millis();
            let expires_at = now.saturating_add(ttl_ms);
            tx.execute(
                "DELETE FROM leases WHERE pool = ?1 AND expires_at <= ?2",
                params![pool, now],
            )
            .map_err(sql_error)?;
            let renewed = tx
                .execute(
                    "UPDATE leases SET expires_at = ?3 WHERE pool = ?1 AND holder = ?2",
                    params![pool, holder, expires_at],
                )
                .map_err(sql_error)?;
            let granted = if renewed == 1 {
                true
            } else {
                let held: i64 = tx
                    .query_row(
                        "SELECT COUNT(*) FROM leases WHERE pool = ?1",
                        [&pool],
                        |r| r.get(0),
                    )
                    .map_err(sql_error)?;
                if held < i64::from(limit) {
                    tx.execute(
                        "INSERT INTO leases (pool, holder, expires_at) VALUES (?1, ?2, ?3)",
                        params![pool, holder, expires_at],
                    )
                    .map_err(sql_error)?;
                    true
                } else {
                    false
                }
            };
            // Committed even on a refusal: the expired rows are gone for the next caller too.
            tx.commit().map_err(sql_error)?;
            Ok(granted)
        })
        .await
    }

    async fn release(&self, pool: &str, holder: &str) -> Result<(), StoreError> {
        vidpipe_domain::ports::check_lease_names(pool, holder)?;
        let (pool, holder) = (pool.to_owned(), holder.to_owned());
        self.with_conn(move |conn| {
            // One statement is atomic on its own; deleting nothing is the "held none" case.
            conn.execute(
                "DELETE FROM leases WHERE pool = ?1 AND holder = ?2",
                params![pool, holder],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }
}

/// Rounded up, so a sub-millisecond ttl still lasts a moment instead of being born expired;
/// saturating, so `Duration::MAX` means "until released" rather than an overflow.
fn ceil_millis(ttl: Duration) -> i64 {
    let ms = ttl.as_nanos().div_ceil(1_000_000);
    i64::try_from(ms).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_whole_milliseconds_and_saturates() {
        assert_eq!(ceil_millis(Duration::from_micros(1)), 1);
        assert_eq!(ceil_millis(Duration::from_millis(1500)), 1500);
        assert_eq!(ceil_millis(Duration::from_nanos(1_500_001)), 2);
        assert_eq!(ceil_millis(Duration::ZERO), 0);
        assert_eq!(ceil_millis(Duration::MAX), i64::MAX);
    }
}

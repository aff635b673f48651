//! The DynamoDB `LeaseStore`: one item per pool on the single table, holding every lease of the
//! pool, so that counting the leases and adding one is a single conditional write.
//!
//! Item: `PK` = `LEASE#<pool>`, `SK` = `LEASE`, `entity` = `lease`, `pool`, `holders` (a map of
//! holder → expiry in epoch milliseconds), `version` (bumped on every write) and `expires_at`
//! (the table's TTL, epoch seconds: the latest expiry plus [`LEASE_TTL_MARGIN`]), so an idle
//! pool's item goes away by itself.
//!
//! A change reads the item, drops expired holders, decides, and puts the whole item back on the
//! condition that `version` is still the one read (`attribute_not_exists` for a new pool). A lost
//! race re-reads and decides again, a bounded number of times. Names need no escaping: the pool
//! is the whole rest of the key after a prefix no other item uses, and holders are only ever map
//! keys inside an item value, never named in an expression.

use super::{
    ATTR_ENTITY, ATTR_EXPIRES_AT, ATTR_PK, ATTR_SK, ATTR_VERSION, DynamoJobStore, Item, corrupt, n,
    number, s, sdk_error,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{TimeDelta, Utc};
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;
use vidpipe_domain::ports::{LeaseStore, StoreError};

/// Sort key of a pool's lease item.
pub const SK_LEASE: &str = "LEASE";
/// On lease items: holder → expiry, epoch milliseconds.
pub const ATTR_HOLDERS: &str = "holders";
/// On lease items: the pool's name, unprefixed, for people reading the table.
pub const ATTR_POOL: &str = "pool";

/// How long a pool's item outlives its last lease. TTL deletion runs late (hours, even days) and
/// a stale item is harmless, since expired holders are ignored on read; the margin only has to
/// keep the item from vanishing between a read and the conditional write that follows it.
pub const LEASE_TTL_MARGIN: TimeDelta = TimeDelta::hours(1);

/// How many read-decide-write rounds one call makes before giving up with `Conflict`. Each lost
/// round means another caller's write landed, so with `n` racers every one has its answer within
/// `n` rounds; this bounds a pathological storm instead.
const LEASE_ATTEMPTS: u32 = 16;

/// `LEASE#<pool>`.
pub fn lease_pk(pool: &str) -> String {
    format!("LEASE#{pool}")
}

/// Holder → expiry in epoch milliseconds.
type Holders = HashMap<String, i64>;

/// A pool's item as read: its holders, and the version a write must find to replace it.
struct Pool {
    version: Option<u64>,
    holders: Holders,
}

/// What a decision asks of the item.
enum Change<T> {
    /// Answer without writing: nothing that matters changed.
    Keep(T),
    /// Write the holders back, then answer.
    Write(T),
}

#[async_trait]
impl LeaseStore for DynamoJobStore {
    async fn acquire(
        &self,
        pool: &str,
        holder: &str,
        limit: u32,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        vidpipe_domain::ports::check_lease_names(pool, holder)?;
        let ttl_ms = ceil_millis(ttl);
        self.change_pool(pool, "acquire", |holders, now| {
            let expires_at = now.saturating_add(ttl_ms);
            if let Some(expiry) = holders.get_mut(holder) {
                *expiry = expires_at;
                Change::Write(true)
            } else if holders.len() < limit as usize {
                holders.insert(holder.to_owned(), expires_at);
                Change::Write(true)
            } else {
                // Expired holders dropped on this read are left in the item: every reader drops
                // them again, so removing them is not worth a write that contends with grants.
                Change::Keep(false)
            }
        })
        .await
    }

    async fn release(&self, pool: &str, holder: &str) -> Result<(), StoreError> {
        vidpipe_domain::ports::check_lease_names(pool, holder)?;
        self.change_pool(pool, "release", |holders, _| {
            if holders.remove(holder).is_some() {
                Change::Write(())
            } else {
                Change::Keep(())
            }
        })
        .await
    }
}

impl DynamoJobStore {
    /// Read, drop expired holders, `decide`, and write back on the version read, until a write
    /// lands or `decide` needs none.
    async fn change_pool<T>(
        &self,
        pool: &str,
        operation: &str,
        decide: impl Fn(&mut Holders, i64) -> Change<T> + Send + Sync,
    ) -> Result<T, StoreError>
    where
        T: Send,
    {
        for attempt in 1..=LEASE_ATTEMPTS {
            let Pool {
                version,
                mut holders,
            } = self.read_pool(pool).await?;
            let now = Utc::now().timestamp_millis();
            holders.retain(|_, expiry| *expiry > now);
            let answer = match decide(&mut holders, now) {
                Change::Keep(answer) => return Ok(answer),
                Change::Write(answer) => answer,
            };
            if self.write_pool(pool, version, &holders, now).await? {
                return Ok(answer);
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
        Err(StoreError::Conflict(format!(
            "lease pool {pool:?} kept changing during {operation} ({LEASE_ATTEMPTS} attempts)"
        )))
    }

    async fn read_pool(&self, pool: &str) -> Result<Pool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ATTR_PK, s(lease_pk(pool)))
            .key(ATTR_SK, s(SK_LEASE))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem (lease pool)", e))?;
        let Some(item) = out.item else {
            return Ok(Pool {
                version: None,
                holders: Holders::new(),
            });
        };
        Ok(Pool {
            version: Some(number(&item, ATTR_VERSION)?),
            holders: holders_of(&item)?,
        })
    }

    /// Puts the whole item if it is still at `read` (absent for `None`); `Ok(false)` when another
    /// writer got there first.
    async fn write_pool(
        &self,
        pool: &str,
        read: Option<u64>,
        holders: &Holders,
        now: i64,
    ) -> Result<bool, StoreError> {
        let next = match read {
            None => 1,
            Some(v) => v.checked_add(1).ok_or_else(|| {
                StoreError::Conflict(format!("lease pool {pool:?} version overflow"))
            })?,
        };
        let latest = holders.values().copied().max().unwrap_or(now);
        let map = holders
            .iter()
            .map(|(holder, expiry)| (holder.clone(), n(expiry)))
            .collect();
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(ATTR_PK, s(lease_pk(pool)))
            .item(ATTR_SK, s(SK_LEASE))
            .item(ATTR_ENTITY, s("lease"))
            .item(ATTR_POOL, s(pool))
            .item(ATTR_HOLDERS, AttributeValue::M(map))
            .item(ATTR_VERSION, n(next))
            .item(ATTR_EXPIRES_AT, n(ttl_seconds(latest)));
        request = match read {
            None => request
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", ATTR_PK),
            Some(v) => request
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", ATTR_VERSION)
                .expression_attribute_values(":expected", n(v)),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(sdk_error("PutItem (lease pool)", err)),
            },
        }
    }
}

fn holders_of(item: &Item) -> Result<Holders, StoreError> {
    let map = match item.get(ATTR_HOLDERS) {
        Some(AttributeValue::M(map)) => map,
        Some(_) => return Err(corrupt(format!("attribute {ATTR_HOLDERS} is not a map"))),
        None => return Err(corrupt(format!("attribute {ATTR_HOLDERS} is missing"))),
    };
    map.iter()
        .map(|(holder, expiry)| match expiry {
            AttributeValue::N(v) => v.parse().map(|ms| (holder.clone(), ms)).map_err(|_| {
                corrupt(format!(
                    "lease expiry of {holder:?} is not a whole number: {v:?}"
                ))
            }),
            _ => Err(corrupt(format!(
                "lease expiry of {holder:?} is not a number"
            ))),
        })
        .collect()
}

/// The TTL attribute for an item whose latest lease ends at `latest_ms`: epoch seconds, rounded
/// up, plus the margin.
fn ttl_seconds(latest_ms: i64) -> i64 {
    latest_ms
        .div_euclid(1000)
        .saturating_add(i64::from(latest_ms.rem_euclid(1000) != 0))
        .saturating_add(LEASE_TTL_MARGIN.num_seconds())
}

/// Rounded up, so a sub-millisecond ttl still lasts a moment instead of being born expired;
/// saturating, so `Duration::MAX` means "until released" rather than an overflow.
fn ceil_millis(ttl: Duration) -> i64 {
    let ms = ttl.as_nanos().div_ceil(1_000_000);
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// Grows with the attempt, with jitter, so racers that lost together do not retry together.
fn backoff(attempt: u32) -> Duration {
    // A fresh RandomState is seeded differently each time: enough randomness for jitter without
    // a dependency on a random number crate.
    let jitter = RandomState::new().hash_one(attempt) % 10;
    Duration::from_millis(5 * u64::from(attempt.min(8)) + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_keys_and_ttl_follow_the_layout() {
        assert_eq!(lease_pk("replicate"), "LEASE#replicate");
        assert_eq!(lease_pk("a#b"), "LEASE#a#b");
        let margin = LEASE_TTL_MARGIN.num_seconds();
        assert_eq!(ttl_seconds(1_700_000_000_000), 1_700_000_000 + margin);
        assert_eq!(ttl_seconds(1_700_000_000_001), 1_700_000_001 + margin);
        assert_eq!(ceil_millis(Duration::from_micros(1)), 1);
        assert_eq!(ceil_millis(Duration::MAX), i64::MAX);
        assert_eq!(ttl_seconds(i64::MAX), i64::MAX / 1000 + 1 + margin);
    }

    #[test]
    fn backoff_stays_short() {
        for attempt in 1..=LEASE_ATTEMPTS {
            let wait = backoff(attempt);
            assert!(wait >= Duration::from_millis(5), "{wait:?}");
            assert!(wait < Duration::from_millis(50), "{wait:?}");
        }
    }
}

//! The embedded `JobStore`: one SQLite file, with the same conditional-write semantics as the
//! DynamoDB table (optimistic versions, atomic idempotency keys, clips stored apart from the job).
//! The same file holds processing records (`ProcessStore`), provider leases (`LeaseStore`, in
//! `sqlite/lease.rs`), tenant quotas (`QuotaStore`, in `sqlite/quota.rs`) and webhook secrets
//! and deliveries (`WebhookSecretStore`, `DeliveryLog`, in `sqlite/webhook.rs`), batches of
//! generation requests (`BatchStore`, in `sqlite/batch.rs`) and a job's compositions
//! (`CompositionStore`, in `sqlite/composition.rs`).
//!
//! rusqlite is blocking, so every call runs on `spawn_blocking`. Each handle owns one connection
//! behind a mutex; two handles opened on the same file are two independent writers, and SQLite's
//! write lock plus the `version = ?` condition decide any race between them.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vidpipe_domain::ErrorClass;
use vidpipe_domain::asset::{Asset, AssetId};
use vidpipe_domain::job::{ClipRecord, Job, JobId};
use vidpipe_domain::ports::{
    JobPage, JobStore, ProcessPage, ProcessStore, StoreError, UploadStore,
};
use vidpipe_domain::processing::ProcessJob;
use vidpipe_domain::upload::{UploadId, UploadRecord};

mod batch;
mod composition;
mod lease;
mod quota;
mod webhook;

/// How long a writer waits for another connection's write lock before giving up with a
/// retryable error. Long enough that ordinary contention between handles never surfaces.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Bumped when the schema changes; `open` refuses files written by a newer vidpipe.
const SCHEMA_VERSION: i64 = 1;

/// Pages are capped so one call cannot pull a whole tenant's history into memory.
const MAX_PAGE: u32 = 1000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id              TEXT PRIMARY KEY,
    owner           TEXT NOT NULL,
    status          TEXT NOT NULL,
    -- Unix nanoseconds: an integer orders exactly, unlike text timestamps of varying precision.
    created_at      INTEGER NOT NULL,
    version         INTEGER NOT NULL,
    idempotency_key TEXT,
    doc             TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS jobs_owner_idempotency
    ON jobs (owner, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_owner_created
    ON jobs (owner, created_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS clips (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx    INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (job_id, idx)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS assets (
    id         TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    doc        TEXT NOT NULL
) STRICT;
-- Added after schema 1 shipped; CREATE IF NOT EXISTS makes it appear in older files too.
CREATE TABLE IF NOT EXISTS process_jobs (
    id         TEXT PRIMARY KEY,
    updated_at INTEGER NOT NULL,
    doc        TEXT NOT NULL
) STRICT;
-- Added after schema 1 shipped, like process_jobs: who owns a processing record (the raw/{client}/
-- segment of its key) and when it was first written, for listing a tenant's records.
CREATE TABLE IF NOT EXISTS process_owners (
    id         TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS process_owners_owner_created
    ON process_owners (owner, created_at DESC, id DESC);
-- Added after schema 1 shipped: announced raw uploads, one per key.
CREATE TABLE IF NOT EXISTS uploads (
    id  TEXT PRIMARY KEY,
    doc TEXT NOT NULL
) STRICT;
-- Added after schema 1 shipped, like process_jobs. Expiry in Unix milliseconds: leases last
-- seconds to minutes, so whole seconds would round a short lease away.
CREATE TABLE IF NOT EXISTS leases (
    pool       TEXT NOT NULL,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (pool, holder)
) STRICT, WITHOUT ROWID;
-- Added after schema 1 shipped, like leases. A claim is a job counted against its tenant's
-- quotas (day: the UTC date charged, YYYY-MM-DD; claimed_at: Unix milliseconds); a day row holds
-- the seconds charged to it.
CREATE TABLE IF NOT EXISTS quota_claims (
    tenant     TEXT NOT NULL,
    job        TEXT NOT NULL,
    day        TEXT NOT NULL,
    seconds    INTEGER NOT NULL,
    claimed_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, job)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quota_days (
    tenant TEXT NOT NULL,
    day    TEXT NOT NULL,
    used   INTEGER NOT NULL,
    PRIMARY KEY (tenant, day)
) STRICT, WITHOUT ROWID;
-- Added after schema 1 shipped, like quota_days: each tenant's webhook secrets (the version
-- column is the authority, as on jobs) and every delivery attempt (attempted_at in Unix
-- nanoseconds, which orders exactly).
CREATE TABLE IF NOT EXISTS webhook_secrets (
    tenant  TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    doc     TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS webhook_attempts (
    kind         TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    id           TEXT NOT NULL,
    attempted_at INTEGER NOT NULL,
    doc          TEXT NOT NULL,
    PRIMARY KEY (kind, job_id, id)
) STRICT, WITHOUT ROWID;
-- Added after schema 1 shipped, like webhook_secrets: batches of generation requests, each
-- written once with every item's outcome (created_at in Unix nanoseconds).
CREATE TABLE IF NOT EXISTS batches (
    id         TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    doc        TEXT NOT NULL
) STRICT;
-- Added after schema 1 shipped, like webhook_attempts: a job's compositions (its versions),
-- created_at in Unix nanoseconds for exact ordering.
CREATE TABLE IF NOT EXISTS compositions (
    job_id     TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    id         TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    doc        TEXT NOT NULL,
    PRIMARY KEY (job_id, id)
) STRICT, WITHOUT ROWID;
-- Added after compositions: timeline renders, compositions of no job, by their id alone.
CREATE TABLE IF NOT EXISTS timelines (
    id         TEXT NOT NULL PRIMARY KEY,
    owner      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    doc        TEXT NOT NULL
) STRICT;
";

/// Ids of unfinished work across every tenant (see [`SqliteJobStore::unfinished`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unfinished {
    pub jobs: Vec<String>,
    pub processing: Vec<String>,
    /// Recomposes still `rendering`, as `(job id, composition id)`.
    pub compositions: Vec<(String, String)>,
    /// Timeline renders (compositions of no job) still `rendering`.
    pub timelines: Vec<String>,
}

/// SQLite-backed job and asset records. Not `Clone` on purpose: a clone would share the
/// connection, so wrap a handle in an `Arc` to share it, and `open` again for an independent one.
pub struct SqliteJobStore {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteJobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteJobStore").finish_non_exhaustive()
    }
}

impl SqliteJobStore {
    /// Opens (creating if needed) the database file and its parent directory, switches it to WAL
    /// so readers never block the writer, and creates the schema. Blocking; call it at startup.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::backend(
                    format!("cannot create {}", parent.display()),
                    ErrorClass::Permanent,
                    e,
                )
            })?;
        }
        let conn = Connection::open(path).map_err(sql_error)?;
        // The timeout comes first so that even switching to WAL waits for a concurrent opener.
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_error)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(sql_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "sqlite did not switch to WAL");
        }
        Self::init(conn)
    }

    /// A private database that vanishes with the handle. Every `open_in_memory` is a separate
    /// database, so it cannot stand in for a second handle in race tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(sql_error)?)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        // NORMAL is durable across application crashes in WAL mode; only power loss can drop the
        // last commits, which is acceptable for a local job log.
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(sql_error)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_error)?;
        let found: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql_error)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::Backend {
                message: format!(
                    "database schema version {found} is newer than this vidpipe understands ({SCHEMA_VERSION})"
                ),
                class: ErrorClass::Permanent,
                source: None,
            });
        }
        tx.execute_batch(SCHEMA).map_err(sql_error)?;
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .map_err(sql_error)?;
        tx.commit().map_err(sql_error)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Every tenant's unfinished work: generation jobs in no terminal state, processing records
    /// still running, and recomposes and timeline renders still rendering. A process that runs jobs in process (`vidpipe serve`) asks at
    /// start-up, when none of these can still be running, to record them as failed.
    pub async fn unfinished(&self) -> Result<Unfinished, StoreError> {
        self.with_conn(|conn| {
            let ids = |sql: &str| -> Result<Vec<String>, StoreError> {
                let mut stmt = conn.prepare(sql).map_err(sql_error)?;
                let rows = stmt
                    .query_map([], |r| r.get::<_, String>(0))
                    .map_err(sql_error)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(sql_error)
            };
            Ok(Unfinished {
                jobs: ids(
                    "SELECT id FROM jobs WHERE status NOT IN ('completed', 'failed', 'cancelled') \
                     ORDER BY created_at",
                )?,
                processing: ids(
                    "SELECT id FROM process_jobs WHERE json_extract(doc, '$.status') = 'running' \
                     ORDER BY updated_at",
                )?,
                compositions: {
                    let mut stmt = conn
                        .prepare(
                            "SELECT job_id, id FROM compositions \
                             WHERE json_extract(doc, '$.status') = 'rendering' ORDER BY created_at",
                        )
                        .map_err(sql_error)?;
                    let rows = stmt
                        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                        .map_err(sql_error)?;
                    rows.collect::<Result<Vec<_>, _>>().map_err(sql_error)?
                },
                timelines: ids(
                    "SELECT id FROM timelines WHERE json_extract(doc, '$.status') = 'rendering' \
                     ORDER BY created_at",
                )?,
            })
        })
        .await
    }

    /// Runs `f` with this handle's connection on the blocking pool.
    async fn with_conn<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic mid-call leaves no open transaction (rusqlite rolls back on drop), so the
            // connection is still sound after poisoning.
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| {
            StoreError::backend(
                format!("sqlite task did not complete: {e}"),
                ErrorClass::Permanent,
                e,
            )
        })?
    }
}

#[async_trait::async_trait]
impl JobStore for SqliteJobStore {
    async fn create(&self, job: &Job) -> Result<Job, StoreError> {
        let mut stored = job.clone();
        stored.version = 1;
        let row = JobRow::from_job(&stored)?;
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            // Checked inside the write transaction, so no other writer can slip in between the
            // checks and the insert: that is what makes create atomic.
            if job_exists(&tx, &row.id)? {
                return Err(StoreError::AlreadyExists(row.id));
            }
            if let Some(key) = &row.idempotency_key
                && let Some(existing) = job_by_idempotency_key(&tx, &row.owner, key)?
            {
                return Err(StoreError::DuplicateIdempotencyKey(existing));
            }
            tx.execute(
                "INSERT INTO jobs (id, owner, status, created_at, version, idempotency_key, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    row.id,
                    row.owner,
                    row.status,
                    row.created_at,
                    row.version,
                    row.idempotency_key,
                    row.doc
                ],
            )
            .map_err(sql_error)?;
            tx.commit().map_err(sql_error)
        })
        .await?;
        Ok(stored)
    }

    async fn get(&self, id: &JobId) -> Result<Option<Job>, StoreError> {
        let id = id.as_str().to_owned();
        self.with_conn(move |conn| {
            // One read transaction, so the job and its clips come from the same snapshot.
            let tx = conn.transaction().map_err(sql_error)?;
            let found = tx
                .query_row("SELECT version, doc FROM jobs WHERE id = ?1", [&id], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .optional()
                .map_err(sql_error)?;
            let Some((version, doc)) = found else {
                return Ok(None);
            };
            let mut job = decode_job(version, &doc)?;
            job.clips = clips_of(&tx, &id)?;
            Ok(Some(job))
        })
        .await
    }

    async fn save(&self, job: &Job) -> Result<Job, StoreError> {
        let expected = job.version;
        let mut saved = job.clone();
        saved.version = expected
            .checked_add(1)
            .ok_or_else(|| StoreError::Conflict(format!("job {} version overflow", job.id)))?;
        let row = JobRow::from_job(&saved)?;
        let expected = to_i64(expected)?;
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            if let Some(key) = &row.idempotency_key
                && let Some(existing) = job_by_idempotency_key(&tx, &row.owner, key)?
                && existing.as_str() != row.id
            {
                return Err(StoreError::DuplicateIdempotencyKey(existing));
            }
            // The version condition is the whole concurrency story: of two writers that read the
            // same version, SQLite's write lock serialises them and only the first matches.
            let changed = tx
                .execute(
                    "UPDATE jobs SET owner = ?2, status = ?3, created_at = ?4, version = ?5,
                            idempotency_key = ?6, doc = ?7
                     WHERE id = ?1 AND version = ?8",
                    params![
                        row.id,
                        row.owner,
                        row.status,
                        row.created_at,
                        row.version,
                        row.idempotency_key,
                        row.doc,
                        expected
                    ],
                )
                .map_err(sql_error)?;
            if changed == 0 {
                let current: Option<i64> = tx
                    .query_row("SELECT version FROM jobs WHERE id = ?1", [&row.id], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(sql_error)?;
                return Err(match current {
                    None => StoreError::NotFound(format!("job {}", row.id)),
                    Some(v) => StoreError::Conflict(format!(
                        "job {} is at version {v}, not {expected}",
                        row.id
                    )),
                });
            }
            tx.commit().map_err(sql_error)
        })
        .await?;
        Ok(saved)
    }

    async fn put_clip(&self, job: &JobId, clip: &ClipRecord) -> Result<(), StoreError> {
        let id = job.as_str().to_owned();
        let index = i64::from(clip.index);
        let record = serde_json::to_string(clip).map_err(encode_error)?;
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            if !job_exists(&tx, &id)? {
                return Err(StoreError::NotFound(format!("job {id}")));
            }
            // Clips live in their own rows so parallel clip updates never touch the job's version.
            tx.execute(
                "INSERT INTO clips (job_id, idx, record) VALUES (?1, ?2, ?3)
                 ON CONFLICT (job_id, idx) DO UPDATE SET record = excluded.record",
                params![id, index, record],
            )
            .map_err(sql_error)?;
            tx.commit().map_err(sql_error)
        })
        .await
    }

    async fn list(
        &self,
        owner: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<JobPage, StoreError> {
        let owner = owner.to_owned();
        // A zero limit would hand back an empty page with a cursor forever; one is the least useful page.
        let limit = limit.clamp(1, MAX_PAGE);
        let after = cursor.map(Cursor::decode).transpose()?;
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(sql_error)?;
            // One row past the page tells whether another page exists, so the last page carries no cursor.
            let fetch = i64::from(limit) + 1;
            let rows: Vec<(String, i64, i64, String)> = {
                let map = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?));
                match &after {
                    None => {
                        let mut stmt = tx
                            .prepare_cached(
                                "SELECT id, created_at, version, doc FROM jobs WHERE owner = ?1
                                 ORDER BY created_at DESC, id DESC LIMIT ?2",
                            )
                            .map_err(sql_error)?;
                        stmt.query_map(params![owner, fetch], map)
                            .map_err(sql_error)?
                            .collect::<Result<_, _>>()
                            .map_err(sql_error)?
                    }
                    Some(c) => {
                        let mut stmt = tx
                            .prepare_cached(
                                "SELECT id, created_at, version, doc FROM jobs
                                 WHERE owner = ?1 AND (created_at < ?2 OR (created_at = ?2 AND id < ?3))
                                 ORDER BY created_at DESC, id DESC LIMIT ?4",
                            )
                            .map_err(sql_error)?;
                        stmt.query_map(params![owner, c.created_at, c.id, fetch], map)
                            .map_err(sql_error)?
                            .collect::<Result<_, _>>()
                            .map_err(sql_error)?
                    }
                }
            };
            let more = rows.len() > limit as usize;
            let mut jobs = Vec::with_capacity(limit as usize);
            let mut last = None;
            for (id, created_at, version, doc) in rows.into_iter().take(limit as usize) {
                let mut job = decode_job(version, &doc)?;
                job.clips = clips_of(&tx, &id)?;
                last = Some(Cursor { created_at, id });
                jobs.push(job);
            }
            let next_cursor = if more { last.map(|c| c.encode()) } else { None };
            Ok(JobPage { jobs, next_cursor })
        })
        .await
    }

    async fn put_asset(&self, asset: &Asset) -> Result<(), StoreError> {
        let id = asset.id.as_str().to_owned();
        let owner = asset.owner.clone();
        let created_at = nanos(asset.created_at)?;
        let doc = serde_json::to_string(asset).map_err(encode_error)?;
        self.with_conn(move |conn| {
            let inserted = conn
                .execute(
                    "INSERT INTO assets (id, owner, created_at, doc) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (id) DO NOTHING",
                    params![id, owner, created_at, doc],
                )
                .map_err(sql_error)?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists(format!("asset {id}")));
            }
            Ok(())
        })
        .await
    }

    async fn get_asset(&self, id: &AssetId) -> Result<Option<Asset>, StoreError> {
        let id = id.as_str().to_owned();
        self.with_conn(move |conn| {
            let doc: Option<String> = conn
                .query_row("SELECT doc FROM assets WHERE id = ?1", [&id], |r| r.get(0))
                .optional()
                .map_err(sql_error)?;
            doc.map(|d| serde_json::from_str(&d).map_err(decode_error))
                .transpose()
        })
        .await
    }

    async fn find_idempotent(&self, owner: &str, key: &str) -> Result<Option<JobId>, StoreError> {
        let (owner, key) = (owner.to_owned(), key.to_owned());
        self.with_conn(move |conn| job_by_idempotency_key(conn, &owner, &key))
            .await
    }
}

#[async_trait::async_trait]
impl ProcessStore for SqliteJobStore {
    async fn save_process(&self, job: &ProcessJob) -> Result<ProcessJob, StoreError> {
        let expected = job.version;
        let mut saved = job.clone();
        saved.version = expected.checked_add(1).ok_or_else(|| {
            StoreError::Conflict(format!("processing record {} version overflow", job.id))
        })?;
        let id = saved.id.clone();
        let updated = nanos(saved.updated_at)?;
        let created = nanos(saved.created_at)?;
        let owner = saved.owner().map(str::to_owned);
        let doc = serde_json::to_string(&saved).map_err(decode_error)?;
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            // The version lives in the document; the write lock held from here to the commit
            // makes read-compare-write one step, so of two writers from one version one wins.
            let current: Option<String> = tx
                .query_row("SELECT doc FROM process_jobs WHERE id = ?1", [&id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(sql_error)?;
            let stored_version = match current {
                Some(d) => {
                    serde_json::from_str::<ProcessJob>(&d)
                        .map_err(decode_error)?
                        .version
                }
                None => 0,
            };
            if stored_version != expected {
                return Err(StoreError::Conflict(format!(
                    "processing record {id} is at version {stored_version}, not {expected}"
                )));
            }
            tx.execute(
                "INSERT INTO process_jobs (id, updated_at, doc) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET updated_at = excluded.updated_at, doc = excluded.doc",
                params![id, updated, doc],
            )
            .map_err(sql_error)?;
            if let Some(owner) = owner {
                tx.execute(
                    "INSERT INTO process_owners (id, owner, created_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (id) DO NOTHING",
                    params![id, owner, created],
                )
                .map_err(sql_error)?;
            }
            tx.commit().map_err(sql_error)?;
            Ok(())
        })
        .await?;
        Ok(saved)
    }

    async fn list_process(
        &self,
        owner: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<ProcessPage, StoreError> {
        let owner = owner.to_owned();
        let limit = limit.clamp(1, MAX_PAGE);
        let after = cursor.map(ProcessCursor::decode).transpose()?;
        self.with_conn(move |conn| {
            let fetch = i64::from(limit) + 1;
            let (after_at, after_id) = match &after {
                Some(c) => (c.created_at, c.id.clone()),
                None => (i64::MAX, String::new()),
            };
            // Without a cursor every row is before (MAX, ""): the same statement serves both.
            let mut stmt = conn
                .prepare_cached(
                    "SELECT o.created_at, o.id, p.doc FROM process_owners o
                     JOIN process_jobs p ON p.id = o.id
                     WHERE o.owner = ?1
                       AND (o.created_at < ?2 OR (o.created_at = ?2 AND o.id < ?3) OR ?4)
                     ORDER BY o.created_at DESC, o.id DESC LIMIT ?5",
                )
                .map_err(sql_error)?;
            let rows: Vec<(i64, String, String)> = stmt
                .query_map(
                    params![owner, after_at, after_id, after.is_none(), fetch],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .map_err(sql_error)?
                .collect::<Result<_, _>>()
                .map_err(sql_error)?;
            let more = rows.len() as i64 > i64::from(limit);
            let rows = &rows[..rows.len().min(limit as usize)];
            let next_cursor = match rows.last() {
                Some((created_at, id, _)) if more => Some(
                    ProcessCursor {
                        created_at: *created_at,
                        id: id.clone(),
                    }
                    .encode(),
                ),
                _ => None,
            };
            let jobs = rows
                .iter()
                .map(|(_, _, doc)| serde_json::from_str(doc).map_err(decode_error))
                .collect::<Result<Vec<ProcessJob>, _>>()?;
            Ok(ProcessPage { jobs, next_cursor })
        })
        .await
    }

    async fn get_process(&self, id: &str) -> Result<Option<ProcessJob>, StoreError> {
        let id = id.to_owned();
        self.with_conn(move |conn| {
            let doc: Option<String> = conn
                .query_row("SELECT doc FROM process_jobs WHERE id = ?1", [&id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(sql_error)?;
            doc.map(|d| serde_json::from_str(&d).map_err(decode_error))
                .transpose()
        })
        .await
    }
}

#[async_trait::async_trait]
impl UploadStore for SqliteJobStore {
    async fn save_upload(&self, upload: &UploadRecord) -> Result<UploadRecord, StoreError> {
        let expected = upload.version;
        let mut saved = upload.clone();
        saved.version = expected.checked_add(1).ok_or_else(|| {
            StoreError::Conflict(format!("upload {} version overflow", upload.id))
        })?;
        let id = saved.id.to_string();
        let doc = serde_json::to_string(&saved).map_err(encode_error)?;
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            let current: Option<String> = tx
                .query_row("SELECT doc FROM uploads WHERE id = ?1", [&id], |r| r.get(0))
                .optional()
                .map_err(sql_error)?;
            let stored_version = match current {
                Some(d) => {
                    serde_json::from_str::<UploadRecord>(&d)
                        .map_err(decode_error)?
                        .version
                }
                None => 0,
            };
            if stored_version != expected {
                return Err(StoreError::Conflict(format!(
                    "upload {id} is at version {stored_version}, not {expected}"
                )));
            }
            tx.execute(
                "INSERT INTO uploads (id, doc) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
                params![id, doc],
            )
            .map_err(sql_error)?;
            tx.commit().map_err(sql_error)?;
            Ok(())
        })
        .await?;
        Ok(saved)
    }

    async fn get_upload(&self, id: &UploadId) -> Result<Option<UploadRecord>, StoreError> {
        let id = id.to_string();
        self.with_conn(move |conn| {
            let doc: Option<String> = conn
                .query_row("SELECT doc FROM uploads WHERE id = ?1", [&id], |r| r.get(0))
                .optional()
                .map_err(sql_error)?;
            doc.map(|d| serde_json::from_str(&d).map_err(decode_error))
                .transpose()
        })
        .await
    }
}

/// Where a page of processing records stopped: the last record's creation and id.
struct ProcessCursor {
    created_at: i64,
    id: String,
}

impl ProcessCursor {
    fn encode(&self) -> String {
        hex::encode(format!("proc:{}:{}", self.created_at, self.id))
    }

    fn decode(raw: &str) -> Result<Self, StoreError> {
        let invalid = || StoreError::Backend {
            message: "invalid cursor".to_owned(),
            class: ErrorClass::Permanent,
            source: None,
        };
        let bytes = hex::decode(raw).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let rest = text.strip_prefix("proc:").ok_or_else(invalid)?;
        let (created_at, id) = rest.split_once(':').ok_or_else(invalid)?;
        let created_at = created_at.parse().map_err(|_| invalid())?;
        if id.len() != 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        Ok(Self {
            created_at,
            id: id.to_owned(),
        })
    }
}

/// The columns of one job row, computed before entering the blocking pool.
struct JobRow {
    id: String,
    owner: String,
    status: &'static str,
    created_at: i64,
    version: i64,
    idempotency_key: Option<String>,
    doc: String,
}

impl JobRow {
    fn from_job(job: &Job) -> Result<Self, StoreError> {
        // Clips have their own table; keeping them out of the document means a stale in-memory
        // copy of the job can never overwrite newer clip records.
        let mut doc = job.clone();
        doc.clips.clear();
        Ok(Self {
            id: job.id.as_str().to_owned(),
            owner: job.owner.clone(),
            status: job.status.as_str(),
            created_at: nanos(job.created_at)?,
            version: to_i64(job.version)?,
            idempotency_key: job.idempotency_key.clone(),
            doc: serde_json::to_string(&doc).map_err(encode_error)?,
        })
    }
}

/// The position after the last job of a page. Encoded as hex of `created_at:id`: opaque to
/// callers, and anything that does not decode to exactly this shape is rejected.
struct Cursor {
    created_at: i64,
    id: String,
}

impl Cursor {
    fn encode(&self) -> String {
        hex::encode(format!("{}:{}", self.created_at, self.id))
    }

    fn decode(raw: &str) -> Result<Self, StoreError> {
        let invalid = || StoreError::Backend {
            message: "invalid cursor".to_owned(),
            class: ErrorClass::Permanent,
            source: None,
        };
        let bytes = hex::decode(raw).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (created_at, id) = text.split_once(':').ok_or_else(invalid)?;
        let created_at = created_at.parse().map_err(|_| invalid())?;
        let id = JobId::parse(id).map_err(|_| invalid())?;
        Ok(Self {
            created_at,
            id: id.as_str().to_owned(),
        })
    }
}

fn job_exists(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE id = ?1)",
        [id],
        |r| r.get(0),
    )
    .map_err(sql_error)
}

fn job_by_idempotency_key(
    conn: &Connection,
    owner: &str,
    key: &str,
) -> Result<Option<JobId>, StoreError> {
    let id: Option<String> = conn
        .query_row(
            "SELECT id FROM jobs WHERE owner = ?1 AND idempotency_key = ?2",
            [owner, key],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_error)?;
    id.map(|id| JobId::parse(&id).map_err(|e| corrupt(format!("stored job id: {e}"))))
        .transpose()
}

fn clips_of(conn: &Connection, job_id: &str) -> Result<Vec<ClipRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT record FROM clips WHERE job_id = ?1 ORDER BY idx")
        .map_err(sql_error)?;
    let records = stmt
        .query_map([job_id], |r| r.get::<_, String>(0))
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_error)?;
    records
        .iter()
        .map(|r| serde_json::from_str(r).map_err(decode_error))
        .collect()
}

fn decode_job(version: i64, doc: &str) -> Result<Job, StoreError> {
    let mut job: Job = serde_json::from_str(doc).map_err(decode_error)?;
    // The column is what the conditional update checks, so it is the authority.
    job.version =
        u64::try_from(version).map_err(|_| corrupt(format!("negative version {version}")))?;
    Ok(job)
}

fn nanos(at: DateTime<Utc>) -> Result<i64, StoreError> {
    at.timestamp_nanos_opt().ok_or_else(|| StoreError::Backend {
        message: format!("timestamp {at} is outside the range the store can order"),
        class: ErrorClass::Permanent,
        source: None,
    })
}

fn to_i64(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version)
        .map_err(|_| StoreError::Conflict(format!("version {version} is out of range")))
}

/// Busy and locked mean another connection held the lock past the timeout: trying again later
/// can succeed. Anything else (corruption, a full disk, a schema mismatch) will not fix itself.
fn sql_error(e: rusqlite::Error) -> StoreError {
    let class = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => ErrorClass::Retryable,
        _ => ErrorClass::Permanent,
    };
    StoreError::backend(format!("sqlite: {e}"), class, e)
}

fn encode_error(e: serde_json::Error) -> StoreError {
    StoreError::backend(
        format!("cannot encode record: {e}"),
        ErrorClass::Permanent,
        e,
    )
}

fn decode_error(e: serde_json::Error) -> StoreError {
    StoreError::backend(
        format!("stored record does not decode: {e}"),
        ErrorClass::Permanent,
        e,
    )
}

fn corrupt(message: String) -> StoreError {
    StoreError::Backend {
        message,
        class: ErrorClass::Permanent,
        source: None,
    }
}

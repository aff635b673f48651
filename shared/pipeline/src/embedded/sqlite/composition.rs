//! The embedded `CompositionStore`: a row per composition in `compositions`, under its job (the
//! row goes with the job), in the same SQLite file; a timeline render, of no job, is a row of
//! `timelines` by its id alone.

use super::{SqliteJobStore, decode_error, encode_error, job_exists, nanos, sql_error};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use vidpipe_domain::composition::{Composition, CompositionId};
use vidpipe_domain::job::JobId;
use vidpipe_domain::ports::{CompositionStore, StoreError};

#[async_trait::async_trait]
impl CompositionStore for SqliteJobStore {
    async fn put_composition(&self, composition: &Composition) -> Result<(), StoreError> {
        let doc = serde_json::to_string(composition).map_err(encode_error)?;
        let at = nanos(composition.created_at)?;
        let id = composition.id.as_str().to_owned();
        let Some(job) = &composition.job_id else {
            let owner = composition.owner.clone();
            return self
                .with_conn(move |conn| {
                    conn.execute(
                        "INSERT INTO timelines (id, owner, created_at, doc) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
                        params![id, owner, at, doc],
                    )
                    .map(drop)
                    .map_err(sql_error)
                })
                .await;
        };
        let job = job.as_str().to_owned();
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            if !job_exists(&tx, &job)? {
                return Err(StoreError::NotFound(format!("job {job}")));
            }
            tx.execute(
                "INSERT INTO compositions (job_id, id, created_at, doc) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (job_id, id) DO UPDATE
                 SET created_at = excluded.created_at, doc = excluded.doc",
                params![job, id, at, doc],
            )
            .map_err(sql_error)?;
            tx.commit().map_err(sql_error)
        })
        .await
    }

    async fn get_composition(
        &self,
        job: &JobId,
        id: &CompositionId,
    ) -> Result<Option<Composition>, StoreError> {
        let (job, id) = (job.as_str().to_owned(), id.as_str().to_owned());
        self.with_conn(move |conn| {
            let doc: Option<String> = conn
                .query_row(
                    "SELECT doc FROM compositions WHERE job_id = ?1 AND id = ?2",
                    params![job, id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_error)?;
            doc.map(|d| serde_json::from_str(&d).map_err(decode_error))
                .transpose()
        })
        .await
    }

    async fn compositions(&self, job: &JobId) -> Result<Vec<Composition>, StoreError> {
        let job = job.as_str().to_owned();
        self.with_conn(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT doc FROM compositions WHERE job_id = ?1 ORDER BY created_at, id",
                )
                .map_err(sql_error)?;
            let docs = stmt
                .query_map([job], |r| r.get::<_, String>(0))
                .map_err(sql_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_error)?;
            docs.iter()
                .map(|d| serde_json::from_str(d).map_err(decode_error))
                .collect()
        })
        .await
    }

    async fn get_timeline(&self, id: &CompositionId) -> Result<Option<Composition>, StoreError> {
        let id = id.as_str().to_owned();
        self.with_conn(move |conn| {
            let doc: Option<String> = conn
                .query_row("SELECT doc FROM timelines WHERE id = ?1", [id], |r| {
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

//! The embedded `BatchStore`: a row per batch in `batches`, in the same SQLite file as the jobs
//! its items made. A batch is written once, whole, and only read after.

use super::{SqliteJobStore, decode_error, encode_error, nanos, sql_error};
use rusqlite::{ErrorCode, OptionalExtension, params};
use vidpipe_domain::batch::{Batch, BatchId};
use vidpipe_domain::ports::{BatchStore, StoreError};

#[async_trait::async_trait]
impl BatchStore for SqliteJobStore {
    async fn put_batch(&self, batch: &Batch) -> Result<(), StoreError> {
        let doc = serde_json::to_string(batch).map_err(encode_error)?;
        let created = nanos(batch.created_at)?;
        let (id, owner) = (batch.id.to_string(), batch.owner.clone());
        self.with_conn(move |conn| {
            match conn.execute(
                "INSERT INTO batches (id, owner, created_at, doc) VALUES (?1, ?2, ?3, ?4)",
                params![id, owner, created, doc],
            ) {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == ErrorCode::ConstraintViolation =>
                {
                    Err(StoreError::AlreadyExists(format!("batch {id}")))
                }
                Err(e) => Err(sql_error(e)),
            }
        })
        .await
    }

    async fn get_batch(&self, id: &BatchId) -> Result<Option<Batch>, StoreError> {
        let id = id.to_string();
        self.with_conn(move |conn| {
            let doc: Option<String> = conn
                .query_row("SELECT doc FROM batches WHERE id = ?1", [&id], |r| r.get(0))
                .optional()
                .map_err(sql_error)?;
            doc.map(|d| serde_json::from_str(&d).map_err(decode_error))
                .transpose()
        })
        .await
    }
}

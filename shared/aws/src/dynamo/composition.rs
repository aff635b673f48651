//! The DynamoDB `CompositionStore`, in the single table: a job's compositions share its partition.
//!
//! Item: `PK` = `JOB#<job id>`, `SK` = `COMP#<composition id>` (`entity` = `composition`): `doc`
//! (the [`Composition`] as JSON), `job_id`, `composition_id`, `parent_composition_id`?, `status`,
//! `created_at`, `updated_at`, and `expires_at` as long after its last write as a clip record,
//! so a composition's record and the clip records it refers to go together. The job's `get`
//! reads only `META` and `CLIP#` items of the partition, so compositions never disturb it.
//!
//! A timeline render belongs to no job: its item is `PK` = `CMP#<composition id>`, `SK` = `META`
//! (`entity` = `timeline`), with the same attributes but `job_id`, and `owner`.

use super::{
    ATTR_CREATED_AT, ATTR_DOC, ATTR_ENTITY, ATTR_EXPIRES_AT, ATTR_JOB_ID, ATTR_OWNER, ATTR_PK,
    ATTR_SK, ATTR_STATUS, ATTR_UPDATED_AT, CLIP_TTL_GRACE, DynamoJobStore, SK_META, decode,
    encode_error, epoch_seconds, job_pk, n, s, sdk_error, timestamp,
};
use async_trait::async_trait;
use vidpipe_domain::composition::{Composition, CompositionId};
use vidpipe_domain::job::JobId;
use vidpipe_domain::ports::{CompositionStore, StoreError};

pub const ATTR_COMPOSITION_ID: &str = "composition_id";
pub const ATTR_PARENT_COMPOSITION_ID: &str = "parent_composition_id";

/// `COMP#<composition id>`.
pub fn composition_sk(id: &CompositionId) -> String {
    format!("COMP#{id}")
}

/// `CMP#<composition id>`: a timeline render's own partition.
pub fn timeline_pk(id: &CompositionId) -> String {
    format!("CMP#{id}")
}

impl DynamoJobStore {
    async fn put_timeline(&self, composition: &Composition) -> Result<(), StoreError> {
        let doc = serde_json::to_string(composition).map_err(encode_error)?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item(ATTR_PK, s(timeline_pk(&composition.id)))
            .item(ATTR_SK, s(SK_META))
            .item(ATTR_ENTITY, s("timeline"))
            .item(ATTR_OWNER, s(&composition.owner))
            .item(ATTR_COMPOSITION_ID, s(composition.id.as_str()))
            .item(ATTR_STATUS, s(composition.status.as_str()))
            .item(ATTR_CREATED_AT, s(timestamp(composition.created_at)))
            .item(ATTR_UPDATED_AT, s(timestamp(composition.updated_at)))
            .item(
                ATTR_EXPIRES_AT,
                n(epoch_seconds(
                    composition.updated_at,
                    self.retention + CLIP_TTL_GRACE,
                )),
            )
            .item(ATTR_DOC, s(doc))
            .send()
            .await
            .map_err(|e| sdk_error("PutItem (timeline)", e))?;
        Ok(())
    }
}

#[async_trait]
impl CompositionStore for DynamoJobStore {
    async fn put_composition(&self, composition: &Composition) -> Result<(), StoreError> {
        let Some(job) = &composition.job_id else {
            return self.put_timeline(composition).await;
        };
        // As `put_clip`: a plain read of the job first, so a composition never contends with
        // the job's saves; jobs are only ever removed by TTL, long after they end.
        if self.get_item(job_pk(job), "GetItem (job)").await?.is_none() {
            return Err(StoreError::NotFound(format!("job {job}")));
        }
        let doc = serde_json::to_string(composition).map_err(encode_error)?;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(ATTR_PK, s(job_pk(job)))
            .item(ATTR_SK, s(composition_sk(&composition.id)))
            .item(ATTR_ENTITY, s("composition"))
            .item(ATTR_JOB_ID, s(job.as_str()))
            .item(ATTR_COMPOSITION_ID, s(composition.id.as_str()))
            .item(ATTR_STATUS, s(composition.status.as_str()))
            .item(ATTR_CREATED_AT, s(timestamp(composition.created_at)))
            .item(ATTR_UPDATED_AT, s(timestamp(composition.updated_at)))
            .item(
                ATTR_EXPIRES_AT,
                n(epoch_seconds(
                    composition.updated_at,
                    self.retention + CLIP_TTL_GRACE,
                )),
            )
            .item(ATTR_DOC, s(doc));
        if let Some(parent) = &composition.parent_composition_id {
            put = put.item(ATTR_PARENT_COMPOSITION_ID, s(parent.as_str()));
        }
        put.send()
            .await
            .map_err(|e| sdk_error("PutItem (composition)", e))?;
        Ok(())
    }

    async fn get_composition(
        &self,
        job: &JobId,
        id: &CompositionId,
    ) -> Result<Option<Composition>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ATTR_PK, s(job_pk(job)))
            .key(ATTR_SK, s(composition_sk(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem (composition)", e))?;
        out.item
            .map(|item| decode::<Composition>(&item, "composition"))
            .transpose()
    }

    async fn compositions(&self, job: &JobId) -> Result<Vec<Composition>, StoreError> {
        let mut all = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :comp)")
                .expression_attribute_names("#pk", ATTR_PK)
                .expression_attribute_names("#sk", ATTR_SK)
                .expression_attribute_values(":pk", s(job_pk(job)))
                .expression_attribute_values(":comp", s("COMP#"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("Query (compositions)", e))?;
            for item in out.items() {
                all.push(decode::<Composition>(item, "composition")?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(all)
    }

    async fn get_timeline(&self, id: &CompositionId) -> Result<Option<Composition>, StoreError> {
        self.get_item(timeline_pk(id), "GetItem (timeline)")
            .await?
            .map(|item| decode::<Composition>(&item, "timeline"))
            .transpose()
    }
}

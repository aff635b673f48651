//! A job's versions through the service, as the API offers them: a recompose recorded and
//! started on the orchestrator (in process, or the state machine), and the versions listed.
//! The rendering itself is [`crate::generation::recompose`]'s.

use crate::edit::{self, EditError};
use crate::generation::recompose::{self, RecomposeError};
use crate::service::{Service, ServiceError};
use vidpipe_domain::ValidationErrors;
use vidpipe_domain::composition::{Composition, RecomposeEdits};
use vidpipe_domain::job::{JobError, JobId};
use vidpipe_domain::quota::composition_claim;

impl Service {
    /// Checks the edits against the tenant's completed job, records the new composition as
    /// `rendering` and starts its render. The composition returned is the one recorded.
    pub async fn recompose(
        &self,
        owner: &str,
        job: &JobId,
        edits: &RecomposeEdits,
    ) -> Result<Composition, ServiceError> {
        let (composition, seconds) = recompose::draft(&self.deps, owner, job, edits)
            .await
            .map_err(refusal)?;
        // A recompose renders as much as a job does, so it takes a slot and its length of the
        // day like one; claimed before it is recorded, so a refusal leaves no version behind.
        let claim = composition_claim(job, &composition.id);
        if let Err(refused) = self.claim(owner, &claim, seconds).await? {
            return Err(refused.into());
        }
        if let Err(e) = self.deps.jobs.put_composition(&composition).await {
            self.unclaim_named(owner, &claim).await;
            return Err(e.into());
        }
        if let Err(e) = self
            .orchestrator
            .start_composition(job, &composition.id)
            .await
        {
            // A render that can never start must not stay `rendering` forever.
            let error = JobError {
                code: vidpipe_domain::names::START_FAILED.to_owned(),
                message: e.to_string(),
                stage: None,
            };
            let mut failed = composition.clone();
            failed.status = vidpipe_domain::composition::CompositionStatus::Failed;
            failed.error = Some(error);
            failed.updated_at = chrono::Utc::now();
            self.unclaim_named(owner, &claim).await;
            self.deps.jobs.put_composition(&failed).await?;
            return Err(e.into());
        }
        Ok(composition)
    }

    /// Accepts a timeline document for rendering: validated and predicted, the tenant's quotas
    /// claimed for its length (a render makes output as a job does, so it is counted like one),
    /// then its timeline stored and its composition recorded as `rendering`. A refusal records
    /// nothing. The render frees the slot; a failed one is refunded.
    pub async fn accept_timeline(
        &self,
        owner: &str,
        doc: &serde_json::Value,
    ) -> Result<Composition, ServiceError> {
        let prepared = edit::prepare(&self.deps, owner, doc)
            .await
            .map_err(edit_refusal)?;
        let claim = prepared.composition.id.to_string();
        if let Err(refused) = self.claim(owner, &claim, prepared.output_seconds()).await? {
            return Err(refused.into());
        }
        match edit::record(&self.deps, prepared).await {
            Ok(composition) => Ok(composition),
            Err(e) => {
                self.unclaim_named(owner, &claim).await;
                Err(edit_refusal(e))
            }
        }
    }

    /// The tenant's job's compositions, oldest first; `None` for a job it does not have.
    pub async fn compositions(
        &self,
        owner: &str,
        job: &JobId,
    ) -> Result<Option<Vec<Composition>>, ServiceError> {
        if self.get(owner, job).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(self.deps.jobs.compositions(job).await?))
    }
}

fn edit_refusal(e: EditError) -> ServiceError {
    match e {
        EditError::Invalid(v) => ServiceError::Invalid(v),
        EditError::Step(e) => ServiceError::Step(e),
    }
}

/// A refused recompose in the service's terms: a missing job is 404, a job or parent that is
/// not ready is a conflict, a bad edit names its field.
fn refusal(e: RecomposeError) -> ServiceError {
    match e {
        RecomposeError::JobNotFound(id) => ServiceError::NotFound(id.to_string()),
        RecomposeError::NotCompleted { job, status } => ServiceError::Conflict(format!(
            "Generation {job} is {status}; only a completed generation can be recomposed."
        )),
        RecomposeError::CompositionNotFound(what) => {
            ServiceError::Invalid(ValidationErrors::single(
                "parent_composition_id",
                format!("no completed composition of this generation: {what}"),
            ))
        }
        RecomposeError::Invalid(errors) => ServiceError::Invalid(errors),
        RecomposeError::Step(e) => ServiceError::Step(e),
    }
}

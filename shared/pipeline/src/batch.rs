//! Batch submission: many generation requests in one call, each judged on its own through the
//! same [`Service::submit`] as a single request (validation, assets, quotas, idempotency), and
//! the outcome of every item recorded as one [`Batch`] that can be read back to follow its jobs.
//!
//! Items are submitted in order, one after another, so under a quota the first items are the
//! ones admitted and a batch's outcome does not depend on timing.

use crate::service::{Service, ServiceError, Submitted};
use chrono::Utc;
use vidpipe_domain::GenerationRequestBody;
use vidpipe_domain::batch::{Batch, BatchId, BatchItem, ItemError, ItemOutcome, item_field};
use vidpipe_domain::error::FieldError;
use vidpipe_domain::job::Job;
use vidpipe_domain::ports::StoreError;
use vidpipe_domain::{ErrorClass, error::ValidationErrors};

/// One item of a batch as the caller's reader made of it.
#[derive(Debug, Clone)]
pub enum BatchEntry {
    /// A request to submit, with the item's own idempotency key.
    Read {
        body: Box<GenerationRequestBody>,
        idempotency_key: Option<String>,
    },
    /// The item could not be read as a request (wrong shape, a bad key); nothing is submitted.
    /// Field paths are already the batch body's (`items[3].fps`).
    Unreadable(ItemError),
}

/// A recorded batch and, for the items that made or replayed one, its job as it stood right
/// after submission (in item order; `None` for refused items).
#[derive(Debug)]
pub struct SubmittedBatch {
    pub batch: Batch,
    pub jobs: Vec<Option<Job>>,
}

impl Service {
    /// Submits every entry in order and records the batch. `describe` says how a refusal is
    /// reported (the API's status and problem slug for a [`ServiceError`]); field paths in it are
    /// rewritten under the item (`duration_seconds` becomes `items[3].duration_seconds`).
    ///
    /// An item that fails for a passing reason (a store throttled) is recorded as such and the
    /// rest go on; the caller retries it, safely when it carries an idempotency key. Only a
    /// batch that cannot be recorded fails the call, after its jobs were submitted: their
    /// idempotency keys make a retry of the whole batch safe.
    pub async fn submit_batch(
        &self,
        owner: &str,
        entries: Vec<BatchEntry>,
        describe: &(dyn Fn(&ServiceError) -> ItemError + Send + Sync),
    ) -> Result<SubmittedBatch, ServiceError> {
        let store = self.batch_store()?;
        let mut items = Vec::with_capacity(entries.len());
        let mut jobs = Vec::with_capacity(entries.len());
        for (index, entry) in entries.into_iter().enumerate() {
            let (idempotency_key, outcome, job) = match entry {
                BatchEntry::Unreadable(error) => (None, ItemOutcome::Error { error }, None),
                BatchEntry::Read {
                    body,
                    idempotency_key,
                } => match self.submit(owner, &body, idempotency_key.as_deref()).await {
                    Ok(Submitted::Created(job)) => (
                        idempotency_key,
                        ItemOutcome::Created {
                            job_id: job.id.clone(),
                        },
                        Some(job),
                    ),
                    Ok(Submitted::Replayed(job)) => (
                        idempotency_key,
                        ItemOutcome::Replayed {
                            job_id: job.id.clone(),
                        },
                        Some(job),
                    ),
                    Err(e) => {
                        let error = under_item(index, describe(&e));
                        if error.status >= 500 {
                            tracing::warn!(owner, index, error = %e, "a batch item failed");
                        }
                        (idempotency_key, ItemOutcome::Error { error }, None)
                    }
                },
            };
            items.push(BatchItem {
                index: index as u32,
                idempotency_key,
                outcome,
            });
            jobs.push(job);
        }
        let batch = Batch {
            id: BatchId::generate(),
            owner: owner.to_owned(),
            created_at: Utc::now(),
            items,
        };
        store.put_batch(&batch).await?;
        Ok(SubmittedBatch { batch, jobs })
    }

    /// A tenant's batch; another tenant's is reported as missing.
    pub async fn get_batch(
        &self,
        owner: &str,
        id: &BatchId,
    ) -> Result<Option<Batch>, ServiceError> {
        Ok(self
            .batch_store()?
            .get_batch(id)
            .await?
            .filter(|b| b.owner == owner))
    }

    fn batch_store(&self) -> Result<&dyn vidpipe_domain::ports::BatchStore, ServiceError> {
        self.batches.as_deref().ok_or_else(|| {
            ServiceError::Store(StoreError::Backend {
                message: "this deployment records no batches".into(),
                class: ErrorClass::Permanent,
                source: None,
            })
        })
    }
}

/// `error` with every field path moved under item `index`.
fn under_item(index: usize, mut error: ItemError) -> ItemError {
    for e in &mut error.errors {
        e.field = item_field(index, &e.field);
    }
    error
}

/// A refusal of the item's own shape (before any submission), as a validation problem.
pub fn unreadable(index: usize, errors: Vec<FieldError>) -> ItemError {
    let errors: Vec<FieldError> = errors
        .into_iter()
        .map(|e| FieldError::new(item_field(index, &e.field), e.rule))
        .collect();
    let v = ValidationErrors { errors };
    let fields: Vec<&str> = v.errors.iter().map(|e| e.field.as_str()).collect();
    ItemError {
        status: 422,
        kind: "validation".into(),
        detail: format!(
            "{} field(s) failed validation: {}.",
            v.errors.len(),
            fields.join(", ")
        ),
        errors: v.errors,
        retry_after_seconds: None,
    }
}

//! The step error: every failure a step can report, each with a stable `error_type` name from
//! [`vidpipe_domain::names`] (what a Lambda reports and what the ASL `Retry`/`Catch` blocks match) and a retryable/permanent class
//! that the embedded runner honours the same way Step Functions does.

use vidpipe_domain::job::TransitionError;
use vidpipe_domain::plan::PlanError;
use vidpipe_domain::ports::{
    BlobError, MediaError, NotifyError, OrchestratorError, ProviderError, StoreError,
};
use vidpipe_domain::processing::{ProcessTransitionError, Rejection};
use vidpipe_domain::{ErrorClass, names};

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("job {0} not found")]
    JobNotFound(String),
    #[error("job {0} was cancelled")]
    Cancelled(String),
    /// The job is not in a state this step can act on (e.g. compose before every clip is done).
    #[error("{0}")]
    WrongState(String),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(transparent)]
    ProcessTransition(#[from] ProcessTransitionError),
    #[error("planning failed: {0}")]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Orchestrator(#[from] OrchestratorError),
    #[error("local i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad data: {0}")]
    Data(#[from] serde_json::Error),
    /// The upload cannot be processed (not media, too short, ...): the job fails with the reason.
    #[error("source rejected: {0}")]
    Rejected(#[from] Rejection),
    /// A brand asset's stored file is not what was announced (wrong content, another size): the
    /// job fails with the reason, which names the asset.
    #[error("{0}")]
    AssetRejected(String),
    /// The deployment is missing something it needs (the watermark image): an operator's fix.
    #[error("configuration error: {0}")]
    Configuration(String),
    #[error(transparent)]
    Notify(#[from] NotifyError),
    /// A bug or a crashed task: never retried, always recorded.
    #[error("internal error: {0}")]
    Internal(String),
}

impl StepError {
    pub fn error_type(&self) -> &'static str {
        use names::*;
        match self {
            StepError::JobNotFound(_) => JOB_NOT_FOUND,
            StepError::Cancelled(_) => CANCELLED,
            StepError::WrongState(_)
            | StepError::Transition(_)
            | StepError::ProcessTransition(_) => WRONG_STATE,
            StepError::Plan(PlanError::Unavailable(_)) => TRANSIENT,
            StepError::Plan(_) => PLAN_FAILED,
            StepError::Provider(ProviderError::Throttled { .. }) => PROVIDER_THROTTLED,
            StepError::Provider(ProviderError::Unavailable(_)) => PROVIDER_UNAVAILABLE,
            StepError::Provider(ProviderError::Media(m)) | StepError::Media(m) => match m {
                MediaError::InvalidInput(_) => INVALID_MEDIA,
                MediaError::ToolMissing { .. } => INTERNAL,
                _ => MEDIA_FAILED,
            },
            StepError::Provider(_) => PROVIDER_REJECTED,
            StepError::Store(StoreError::Conflict(_)) => CONFLICT,
            StepError::Store(e) if e.class() == ErrorClass::Retryable => TRANSIENT,
            StepError::Blob(e) if e.class() == ErrorClass::Retryable => TRANSIENT,
            StepError::Orchestrator(_) => TRANSIENT,
            StepError::Rejected(_) => SOURCE_REJECTED,
            StepError::AssetRejected(_) => ASSET_REJECTED,
            StepError::Configuration(_) => CONFIGURATION,
            StepError::Notify(NotifyError::Unavailable(_)) => TRANSIENT,
            StepError::Notify(NotifyError::Refused(_)) => INTERNAL,
            StepError::Io(_) => TRANSIENT,
            StepError::Store(_)
            | StepError::Blob(_)
            | StepError::Data(_)
            | StepError::Internal(_) => INTERNAL,
        }
    }

    pub fn class(&self) -> ErrorClass {
        if names::RETRYABLE.contains(&self.error_type()) {
            ErrorClass::Retryable
        } else {
            ErrorClass::Permanent
        }
    }

    /// The provider's own back-off hint, if it gave one.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            StepError::Provider(ProviderError::Throttled { retry_after }) => *retry_after,
            _ => None,
        }
    }
}

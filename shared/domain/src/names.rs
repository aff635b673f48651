//! Every error name the state machines, the records and the notifications use, in one place.
//!
//! A Lambda reports a step error with one of the `VidPipe.*` names as its `error_type`; the ASL's
//! `Retry` and `Catch` blocks match them verbatim, and failed records carry them. The `States.*`
//! names are Step Functions' own, listed here so Rust never spells one out elsewhere. Renaming a
//! name here without the ASL breaks a deployed stack: a test cross-checks the two, and another
//! fails on any such literal outside this module.

pub const JOB_NOT_FOUND: &str = "VidPipe.JobNotFound";
pub const CANCELLED: &str = "VidPipe.Cancelled";
pub const WRONG_STATE: &str = "VidPipe.WrongState";
pub const PLAN_FAILED: &str = "VidPipe.PlanFailed";
pub const PROVIDER_THROTTLED: &str = "VidPipe.ProviderThrottled";
pub const PROVIDER_UNAVAILABLE: &str = "VidPipe.ProviderUnavailable";
pub const PROVIDER_REJECTED: &str = "VidPipe.ProviderRejected";
pub const INVALID_MEDIA: &str = "VidPipe.InvalidMedia";
pub const MEDIA_FAILED: &str = "VidPipe.MediaFailed";
pub const CONFLICT: &str = "VidPipe.Conflict";
pub const TRANSIENT: &str = "VidPipe.Transient";
pub const INTERNAL: &str = "VidPipe.Internal";
pub const SOURCE_REJECTED: &str = "VidPipe.SourceRejected";
pub const CONFIGURATION: &str = "VidPipe.ConfigurationError";
/// A brand asset whose stored file is not what was announced (not a PNG/JPEG logo, not audio
/// music, another size): the job fails naming the asset.
pub const ASSET_REJECTED: &str = "VidPipe.AssetRejected";
/// Recorded on a job whose execution could not be started (the orchestrator refused it).
pub const START_FAILED: &str = "VidPipe.StartFailed";

/// Every `VidPipe.*` name a step can report.
pub const STEP_ERRORS: &[&str] = &[
    JOB_NOT_FOUND,
    CANCELLED,
    WRONG_STATE,
    PLAN_FAILED,
    PROVIDER_THROTTLED,
    PROVIDER_UNAVAILABLE,
    PROVIDER_REJECTED,
    INVALID_MEDIA,
    MEDIA_FAILED,
    CONFLICT,
    TRANSIENT,
    INTERNAL,
    SOURCE_REJECTED,
    CONFIGURATION,
    ASSET_REJECTED,
];

/// The names a retry policy retries (besides the platform's own transient errors).
pub const RETRYABLE: &[&str] = &[
    PROVIDER_THROTTLED,
    PROVIDER_UNAVAILABLE,
    MEDIA_FAILED,
    CONFLICT,
    TRANSIENT,
];

/// Step Functions' catch-all.
pub const STATES_ALL: &str = "States.ALL";
/// What Step Functions reports for an ECS task that exited non-zero (the Fargate worker).
pub const STATES_TASK_FAILED: &str = "States.TaskFailed";
pub const STATES_TIMEOUT: &str = "States.Timeout";

/// Lambda's own transient failures, retried by every task state.
pub const LAMBDA_TRANSIENT: &[&str] = &[
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_names_are_step_errors_and_every_name_is_distinct() {
        for r in RETRYABLE {
            assert!(STEP_ERRORS.contains(r), "{r}");
        }
        let mut all: Vec<&str> = STEP_ERRORS.to_vec();
        all.push(START_FAILED);
        all.sort();
        let before = all.len();
        all.dedup();
        assert_eq!(all.len(), before, "two constants share a name");
        assert!(all.iter().all(|n| n.starts_with("VidPipe.")));
    }
}

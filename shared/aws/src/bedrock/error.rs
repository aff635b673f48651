//! What a Bedrock runtime failure means to the pipeline: slow down, try again later, or stop
//! because the input or the setup is wrong. One mapping serves every operation, keyed on the
//! error code the service sends, since all of them share the same exception names.

use crate::error::{code_of, describe, status_of};
use aws_sdk_bedrockruntime::config::http::HttpResponse;
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use vidpipe_domain::ports::ProviderError;

/// How a failed call should be treated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Too many requests, or too many async invocations in flight: back off and retry.
    Throttled,
    /// The service or model failed for now (5xx, not ready, timed out, connection lost).
    Unavailable(String),
    /// The service refused this input (validation, content filters): retrying cannot help.
    Rejected(String),
    /// Anything else: access, a wrong model id, an idempotency conflict. Permanent.
    Failed(String),
}

impl Failure {
    pub(crate) fn of<E>(operation: &str, err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let described = describe(operation, err);
        match err {
            SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
                return Failure::Unavailable(described);
            }
            SdkError::DispatchFailure(d) if !d.is_user() => {
                return Failure::Unavailable(described);
            }
            SdkError::ServiceError(_) => {}
            _ => return Failure::Failed(described),
        }
        let status = status_of(err).unwrap_or(0);
        match code_of(err) {
            Some("ThrottlingException" | "ServiceQuotaExceededException") => Failure::Throttled,
            _ if status == 429 => Failure::Throttled,
            Some(
                "ServiceUnavailableException"
                | "InternalServerException"
                | "ModelNotReadyException"
                | "ModelTimeoutException",
            ) => Failure::Unavailable(described),
            _ if status >= 500 => Failure::Unavailable(described),
            Some("ValidationException") => Failure::Rejected(service_message(err, described)),
            _ => Failure::Failed(described),
        }
    }
}

/// The service's own words where it gave some: a content-filter refusal reads better without
/// the operation and status around it.
fn service_message<E: ProvideErrorMetadata>(
    err: &SdkError<E, HttpResponse>,
    fallback: String,
) -> String {
    match err {
        SdkError::ServiceError(ctx) => ctx.err().message().map(str::to_owned).unwrap_or(fallback),
        _ => fallback,
    }
}

impl From<Failure> for ProviderError {
    fn from(f: Failure) -> Self {
        match f {
            // Bedrock sends no Retry-After; the caller's own backoff decides.
            Failure::Throttled => ProviderError::Throttled { retry_after: None },
            Failure::Unavailable(m) => ProviderError::Unavailable(m),
            Failure::Rejected(m) => ProviderError::Rejected(m),
            Failure::Failed(m) => ProviderError::Failed(m),
        }
    }
}

//! Classifies AWS SDK failures as retryable or permanent, once, for every adapter in this crate.
//!
//! The three SDKs share one `SdkError` type, so one function serves DynamoDB, S3 and Step
//! Functions. The SDK's own retry layer has already spent its attempts on throttling and transient
//! faults by the time an error reaches us; the class we assign decides whether the *caller* (the
//! ASL `Retry` block, the embedded runner) tries again later, so when in doubt we say permanent:
//! a permanent error fails fast and visibly, a wrongly retryable one burns retries and time.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use vidpipe_domain::ErrorClass;

/// Error codes that mean "slow down" or "the service failed for now", across the three services.
/// A 5xx status or HTTP 429 is retryable whatever its code; these cover the 4xx throttles.
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "TransactionInProgressException",
    "TransactionConflictException",
    "SlowDown",
    "PriorRequestNotComplete",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalServerError",
    "ServiceUnavailable",
];

/// Whether retrying the same request later may succeed.
pub(crate) fn class_of<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> ErrorClass {
    match err {
        // The request could not even be built: a bug or bad input, never a passing fault.
        SdkError::ConstructionFailure(_) => ErrorClass::Permanent,
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => ErrorClass::Retryable,
        // A "user" dispatch failure is a misconfiguration (bad endpoint URL); io and timeouts pass.
        SdkError::DispatchFailure(d) if d.is_user() => ErrorClass::Permanent,
        SdkError::DispatchFailure(_) => ErrorClass::Retryable,
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code_retryable = ctx
                .err()
                .code()
                .is_some_and(|c| RETRYABLE_CODES.contains(&c));
            if status >= 500 || status == 429 || code_retryable {
                ErrorClass::Retryable
            } else {
                ErrorClass::Permanent
            }
        }
        _ => ErrorClass::Permanent,
    }
}

/// The service's error code, when the service answered with one.
pub(crate) fn code_of<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    match err {
        SdkError::ServiceError(ctx) => ctx.err().code(),
        _ => None,
    }
}

/// The HTTP status of the service's answer, when there was one.
pub(crate) fn status_of<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// A one-line description naming the operation, for the domain error's message. The full SDK
/// error stays attached as the `source`.
pub(crate) fn describe<E>(operation: &str, err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            format!(
                "{operation} failed: {} (HTTP {}): {}",
                e.code().unwrap_or("unknown error"),
                ctx.raw().status().as_u16(),
                e.message().unwrap_or("no message")
            )
        }
        other => format!("{operation} failed: {}", DisplayErrorContext(other)),
    }
}

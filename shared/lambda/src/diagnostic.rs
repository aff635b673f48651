//! Step errors as Lambda reports them: `error_type` is the stable `VidPipe.*` name the state
//! machine's `Retry` and `Catch` match, and the message keeps the error's cause chain.

use lambda_runtime::Diagnostic;
use std::error::Error as _;
use vidpipe_pipeline::StepError;
use vidpipe_pipeline::failure::public_reason;

/// Newtype so the orphan rule lets us say how a `StepError` becomes a `Diagnostic`.
#[derive(Debug)]
pub struct StepFailure(pub StepError);

impl From<StepFailure> for Diagnostic {
    fn from(f: StepFailure) -> Self {
        let mut message = f.0.to_string();
        let mut source = f.0.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = s.source();
        }
        // The message becomes the execution's Cause, which RecordFailure records and notifies:
        // it must name objects by key, never by a signed URL or a scratch path.
        let message = public_reason(&message);
        tracing::error!(error_type = f.0.error_type(), %message, "step failed");
        Diagnostic {
            error_type: f.0.error_type().to_owned(),
            error_message: message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vidpipe_domain::ports::ProviderError;

    #[test]
    fn error_type_is_the_stable_name() {
        let d: Diagnostic = StepFailure(StepError::Provider(ProviderError::Throttled {
            retry_after: None,
        }))
        .into();
        assert_eq!(d.error_type, vidpipe_domain::names::PROVIDER_THROTTLED);
        let d: Diagnostic = StepFailure(StepError::Cancelled("job_x".into())).into();
        assert_eq!(d.error_type, vidpipe_domain::names::CANCELLED);
        assert!(d.error_message.contains("job_x"));
    }
}

//! The Step Functions `Orchestrator`: one execution of the generation state machine per job,
//! named by the job id so that starting twice is harmless and cancelling needs no lookup.
//!
//! The execution input is only `{"job_id": "..."}`: every step reads what it needs (request,
//! plan, clip records) from the job store, so the input can never disagree with the record and
//! payloads stay far under Step Functions' 256 KB limit.

use crate::error::{class_of, code_of, describe};
use async_trait::async_trait;
use aws_sdk_sfn::Client;
use aws_sdk_sfn::config::http::HttpResponse;
use aws_sdk_sfn::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sfn::operation::start_execution::StartExecutionError;
use aws_sdk_sfn::operation::stop_execution::StopExecutionError;
use aws_sdk_sfn::types::ExecutionStatus;
use vidpipe_domain::ErrorClass;
use vidpipe_domain::composition::CompositionId;
use vidpipe_domain::job::JobId;
use vidpipe_domain::ports::{Orchestrator, OrchestratorError};

/// The `error` a cancelled execution stops with; the ASL and dashboards can match it exactly.
pub const CANCEL_ERROR: &str = vidpipe_domain::names::CANCELLED;

/// The parts of a state machine ARN an execution ARN is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StateMachineArn {
    /// `arn:<partition>:states:<region>:<account>`
    base: String,
    name: String,
}

impl StateMachineArn {
    /// `arn:<partition>:states:<region>:<account>:stateMachine:<name>`
    fn parse(arn: &str) -> Option<Self> {
        let parts: Vec<&str> = arn.split(':').collect();
        match parts.as_slice() {
            [
                "arn",
                partition,
                "states",
                region,
                account,
                "stateMachine",
                name,
            ] if !partition.is_empty()
                && !region.is_empty()
                && !account.is_empty()
                && !name.is_empty() =>
            {
                Some(Self {
                    base: format!("arn:{partition}:states:{region}:{account}"),
                    name: (*name).to_owned(),
                })
            }
            _ => None,
        }
    }
}

/// Runs each job as a Standard-workflow execution named by the job id.
///
/// Express workflows do not keep execution names unique, so this orchestrator must be given a
/// Standard state machine (the template's generation machine is one).
#[derive(Debug, Clone)]
pub struct SfnOrchestrator {
    client: Client,
    state_machine_arn: String,
    /// `None` when the configured ARN is malformed: every call then fails permanently.
    parsed: Option<StateMachineArn>,
}

impl SfnOrchestrator {
    /// Never fails, so wiring stays simple; a malformed ARN is logged here and makes every call
    /// fail with a permanent error. Use [`SfnOrchestrator::try_new`] to refuse it at cold start.
    pub fn new(client: Client, state_machine_arn: impl Into<String>) -> Self {
        let state_machine_arn = state_machine_arn.into();
        let parsed = StateMachineArn::parse(&state_machine_arn);
        if parsed.is_none() {
            tracing::error!(
                state_machine_arn,
                "not a state machine ARN; starting and cancelling jobs will fail"
            );
        }
        Self {
            client,
            state_machine_arn,
            parsed,
        }
    }

    /// As [`SfnOrchestrator::new`], but a malformed ARN is a permanent error now rather than at
    /// the first call.
    pub fn try_new(
        client: Client,
        state_machine_arn: impl Into<String>,
    ) -> Result<Self, OrchestratorError> {
        let orchestrator = Self::new(client, state_machine_arn);
        match orchestrator.parsed {
            Some(_) => Ok(orchestrator),
            None => Err(bad_arn(&orchestrator.state_machine_arn)),
        }
    }

    pub fn state_machine_arn(&self) -> &str {
        &self.state_machine_arn
    }

    /// `arn:aws:states:REGION:ACCOUNT:execution:STATE_MACHINE:JOB_ID`
    pub fn execution_arn(&self, job: &JobId) -> Result<String, OrchestratorError> {
        let parsed = self
            .parsed
            .as_ref()
            .ok_or_else(|| bad_arn(&self.state_machine_arn))?;
        Ok(format!("{}:execution:{}:{job}", parsed.base, parsed.name))
    }

    /// The execution input for a job.
    pub fn input(job: &JobId) -> String {
        serde_json::json!({ "job_id": job.as_str() }).to_string()
    }

    /// The execution input for a recompose: the job and the composition to render. The state
    /// machine's first choice sees `composition_id` and skips planning.
    pub fn composition_input(job: &JobId, composition: &CompositionId) -> String {
        serde_json::json!({ "job_id": job.as_str(), "composition_id": composition.as_str() })
            .to_string()
    }

    /// The execution input for a timeline render: the composition alone (it belongs to no job).
    /// The state machine's first choice sees `timeline_id`.
    pub fn timeline_input(composition: &CompositionId) -> String {
        serde_json::json!({ "timeline_id": composition.as_str() }).to_string()
    }

    /// Whether the job's execution is still running; `None` if it never started.
    pub async fn is_running(&self, job: &JobId) -> Result<Option<bool>, OrchestratorError> {
        match self
            .client
            .describe_execution()
            .execution_arn(self.execution_arn(job)?)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.status == ExecutionStatus::Running)),
            Err(e) if code_of(&e) == Some("ExecutionDoesNotExist") => Ok(None),
            Err(e) => Err(sdk_error("DescribeExecution", e)),
        }
    }
}

#[async_trait]
impl Orchestrator for SfnOrchestrator {
    async fn start(&self, job: &JobId) -> Result<(), OrchestratorError> {
        // A malformed state machine ARN fails here, without a call.
        self.execution_arn(job)?;
        let started = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(job.as_str())
            .input(Self::input(job))
            .send()
            .await;
        match started {
            Ok(_) => Ok(()),
            // Same name as an earlier execution (running with other input, or already ended):
            // this job was started before, and a job runs once.
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(StartExecutionError::ExecutionAlreadyExists(_))
                ) =>
            {
                tracing::debug!(job = %job, "execution already exists; start is a no-op");
                Ok(())
            }
            Err(e) => Err(sdk_error("StartExecution", e)),
        }
    }

    async fn start_composition(
        &self,
        job: &JobId,
        composition: &CompositionId,
    ) -> Result<(), OrchestratorError> {
        self.execution_arn(job)?;
        // Named by the composition (as unique as a job id, and of the same form), so a repeated
        // start of the same recompose starts nothing new.
        start_named(
            &self.client,
            &self.state_machine_arn,
            composition.as_str(),
            Self::composition_input(job, composition),
        )
        .await
        .map(|_| ())
    }

    async fn start_timeline(&self, composition: &CompositionId) -> Result<(), OrchestratorError> {
        // Named by the composition, so a repeated start (a retried request, a duplicate
        // delivery) renders nothing twice.
        start_named(
            &self.client,
            &self.state_machine_arn,
            composition.as_str(),
            Self::timeline_input(composition),
        )
        .await
        .map(|_| ())
    }

    async fn cancel(&self, job: &JobId) -> Result<(), OrchestratorError> {
        let stopped = self
            .client
            .stop_execution()
            .execution_arn(self.execution_arn(job)?)
            .error(CANCEL_ERROR)
            .cause("cancelled by request")
            .send()
            .await;
        match stopped {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(StopExecutionError::ExecutionDoesNotExist(_))
                ) =>
            {
                Ok(())
            }
            Err(e) => {
                // Stopping an execution that has already ended is refused by some backends; the
                // contract says that is fine, so only a still-running execution is a failure.
                let err = sdk_error("StopExecution", e);
                if err_class(&err) == ErrorClass::Permanent
                    && self.is_running(job).await? != Some(true)
                {
                    return Ok(());
                }
                Err(err)
            }
        }
    }
}

/// What [`start_named`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// An execution with this name and input is running: started now, or already running
    /// (StartExecution is idempotent for the same name and input while the execution runs).
    Running,
    /// An execution with this name has ended, or runs with another input: nothing was started.
    AlreadyExists,
}

/// Starts an execution of any Standard state machine under a deterministic `name`, so a second
/// start for the same work (a duplicate delivery) starts nothing: `ExecutionAlreadyExists` is
/// [`Started::AlreadyExists`], not an error. The processing dispatcher names executions by the
/// uploaded object's source id.
pub async fn start_named(
    client: &Client,
    state_machine_arn: &str,
    name: &str,
    input: String,
) -> Result<Started, OrchestratorError> {
    let started = client
        .start_execution()
        .state_machine_arn(state_machine_arn)
        .name(name)
        .input(input)
        .send()
        .await;
    match started {
        Ok(_) => Ok(Started::Running),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(StartExecutionError::ExecutionAlreadyExists(_))
            ) =>
        {
            Ok(Started::AlreadyExists)
        }
        Err(e) => Err(sdk_error("StartExecution", e)),
    }
}

fn bad_arn(arn: &str) -> OrchestratorError {
    OrchestratorError::Backend {
        message: format!("not a state machine ARN: {arn:?}"),
        class: ErrorClass::Permanent,
        source: None,
    }
}

fn err_class(err: &OrchestratorError) -> ErrorClass {
    match err {
        OrchestratorError::Backend { class, .. } => *class,
    }
}

fn sdk_error<E>(operation: &str, err: SdkError<E, HttpResponse>) -> OrchestratorError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    OrchestratorError::Backend {
        message: describe(operation, &err),
        class: class_of(&err),
        source: Some(Box::new(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_arns_follow_the_state_machine() {
        let parsed =
            StateMachineArn::parse("arn:aws-cn:states:cn-north-1:123456789012:stateMachine:gen")
                .expect("arn");
        assert_eq!(parsed.base, "arn:aws-cn:states:cn-north-1:123456789012");
        assert_eq!(parsed.name, "gen");
        for bad in [
            "",
            "gen",
            "arn:aws:states:r:a:execution:gen:x",
            "arn:aws:lambda:r:a:stateMachine:gen",
        ] {
            assert!(StateMachineArn::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_input_names_only_the_job() {
        let id = JobId::parse("job_0123456789abcdef0123456789abcdef").expect("id");
        assert_eq!(
            SfnOrchestrator::input(&id),
            r#"{"job_id":"job_0123456789abcdef0123456789abcdef"}"#
        );
    }
}

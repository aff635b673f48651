//! Startup for every vidpipe Lambda and the Fargate worker: configuration read from the
//! environment once, SDK clients built once per cold start, step dependencies wired from them,
//! and the mapping from a step error to the Lambda diagnostic whose `error_type` the ASL matches.
//! Handlers receive what is built here and never read the environment themselves.

pub mod config;
pub mod diagnostic;
pub mod dispatch;
pub mod process;
pub mod wiring;

pub use config::{Config, ConfigError, ProviderKind};
pub use diagnostic::StepFailure;
pub use wiring::{Aws, NoNotifier, process_deps, service, with_media, without_media};

/// The whole life of a step Lambda: logging, configuration and clients once per cold start, then
/// [`serve_step`]. Each step's `main` is this one call.
pub async fn run_step<I, O, F, Fut>(
    deps: fn(&Config, &Aws) -> Result<vidpipe_pipeline::StepDeps, ConfigError>,
    step: F,
) -> Result<(), lambda_runtime::Error>
where
    I: serde::de::DeserializeOwned + Send + 'static,
    O: serde::Serialize + Send + 'static,
    F: Fn(vidpipe_pipeline::StepDeps, I) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<O, vidpipe_pipeline::StepError>> + Send,
{
    init_tracing();
    let config = Config::from_env()?;
    let aws = Aws::load(&config).await;
    let deps = deps(&config, &aws)?;
    serve_step(deps, step).await
}

/// Runs one step function as a Lambda: deserialises its typed input, calls the step with the
/// dependencies built at cold start, and reports failures with their stable error type.
pub async fn serve_step<I, O, F, Fut>(
    deps: vidpipe_pipeline::StepDeps,
    step: F,
) -> Result<(), lambda_runtime::Error>
where
    I: serde::de::DeserializeOwned + Send + 'static,
    O: serde::Serialize + Send + 'static,
    F: Fn(vidpipe_pipeline::StepDeps, I) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<O, vidpipe_pipeline::StepError>> + Send,
{
    let step = &step;
    let deps = &deps;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<I>| async move {
            step(deps.clone(), event.payload).await.map_err(StepFailure)
        },
    ))
    .await
}

/// The whole life of the upload dispatcher: configuration and clients once per cold start, then
/// one SQS batch per invocation (see [`dispatch`]).
pub async fn serve_dispatch() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let config = Config::from_env()?;
    let arn = config
        .processing_state_machine_arn
        .clone()
        .ok_or(ConfigError::Missing("VIDPIPE_PROCESSING_STATE_MACHINE_ARN"))?;
    // Only the Step Functions client: building the S3 and DynamoDB clients too would link both
    // SDKs into the bootstrap for nothing.
    let sdk = vidpipe_aws::config::load_sdk_config(config.endpoint_url.as_deref()).await;
    let sfn = vidpipe_aws::config::sfn_client(&sdk);
    let (sfn, arn) = (&sfn, arn.as_str());
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<aws_lambda_events::sqs::SqsEvent>| async move {
            Ok::<_, lambda_runtime::Error>(dispatch::dispatch(sfn, arn, event.payload).await)
        },
    ))
    .await
}

/// JSON logs when Lambda asks for them (`AWS_LAMBDA_LOG_FORMAT=JSON`), level from
/// `AWS_LAMBDA_LOG_LEVEL`/`RUST_LOG`.
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}

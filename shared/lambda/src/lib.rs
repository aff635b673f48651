//! Startup for every vidpipe Lambda and the Fargate worker: configuration read from the
//! environment once, SDK clients built once per cold start, step dependencies wired from them,
//! and the mapping from a step error to the Lambda diagnostic whose `error_type` the ASL matches.
//! Handlers receive what is built here and never read the environment themselves.

pub mod ai;
pub mod ai_kinds;
pub mod api;
pub mod config;
pub mod diagnostic;
pub mod dispatch;
pub mod generation;
pub mod jwt;
pub mod live;
pub mod narrators;
pub mod process;
pub mod wiring;

pub use ai_kinds::{PlannerKind, ProviderKind};
pub use config::{Config, ConfigError};
pub use diagnostic::StepFailure;
pub use wiring::{Aws, NoNotifier, process_deps, with_media};

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

/// JSON logs when Lambda asks for them (`AWS_LAMBDA_LOG_FORMAT=JSON`), at the level
/// `AWS_LAMBDA_LOG_LEVEL` (else `RUST_LOG`, else INFO) names. Lambda's log controls set one level
/// per function, so a plain level filter does what the runtime's default subscriber does, without
/// its per-target directive parser: that parser is a regex engine, about 180 kB of every bootstrap.
pub fn init_tracing() {
    use lambda_runtime::tracing::subscriber;
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|l| l.parse::<subscriber::filter::LevelFilter>().ok())
        .unwrap_or(subscriber::filter::LevelFilter::INFO);
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let fmt = subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_max_level(level);
    // A second init (tests wiring twice) keeps the first subscriber.
    let _ = if json {
        fmt.json().try_init()
    } else {
        fmt.try_init()
    };
}

//! Lambda entrypoint for the record-failure step: wiring only. The work is `vidpipe_pipeline::steps::record_failure`.

use vidpipe_pipeline::steps::{self, FailureInput};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    vidpipe_lambda::init_tracing();
    let config = vidpipe_lambda::Config::from_env()?;
    let aws = vidpipe_lambda::Aws::load(&config).await;
    let deps = vidpipe_lambda::step_deps(&config, &aws)?;
    vidpipe_lambda::serve_step(deps, |deps, input: FailureInput| async move {
        steps::record_failure(&deps, &input).await
    })
    .await
}

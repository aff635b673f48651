//! Lambda entrypoint for the finalize step: wiring only. The work is `vidpipe_pipeline::steps::finalize`.

use vidpipe_pipeline::steps::{self, FinalizeInput};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    vidpipe_lambda::init_tracing();
    let config = vidpipe_lambda::Config::from_env()?;
    let aws = vidpipe_lambda::Aws::load(&config).await;
    let deps = vidpipe_lambda::step_deps(&config, &aws)?;
    vidpipe_lambda::serve_step(deps, |deps, input: FinalizeInput| async move {
        steps::finalize_any(&deps, &input).await
    })
    .await
}

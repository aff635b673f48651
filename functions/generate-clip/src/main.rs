//! Lambda entrypoint for the generate-clip step: wiring only. The work is `vidpipe_pipeline::steps::generate_clip`.

use vidpipe_pipeline::steps::{self, ClipTask};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    vidpipe_lambda::init_tracing();
    let config = vidpipe_lambda::Config::from_env()?;
    let aws = vidpipe_lambda::Aws::load(&config).await;
    let deps = vidpipe_lambda::step_deps(&config, &aws)?;
    vidpipe_lambda::serve_step(deps, |deps, input: ClipTask| async move {
        steps::generate_clip(&deps, &input).await
    })
    .await
}

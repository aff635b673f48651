//! Lambda entrypoint for the plan step: wiring only. The work is `vidpipe_pipeline::steps::plan`.

use vidpipe_pipeline::steps::{self, JobRef};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    vidpipe_lambda::run_step(
        vidpipe_lambda::without_media,
        |deps, input: JobRef| async move { steps::plan(&deps, &input).await },
    )
    .await
}

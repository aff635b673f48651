//! Lambda entrypoint for the compose step: wiring only. The work is `vidpipe_pipeline::steps::compose`.

use vidpipe_pipeline::steps::{self, JobRef};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    vidpipe_lambda::run_step(
        vidpipe_lambda::with_media,
        |deps, input: JobRef| async move { steps::compose(&deps, &input, &|_| {}).await },
    )
    .await
}

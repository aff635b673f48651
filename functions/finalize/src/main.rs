//! Lambda entrypoint for the finalize step: wiring only. The work is `vidpipe_pipeline::steps::finalize`.

use vidpipe_pipeline::steps::{self, FinalizeInput};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    vidpipe_lambda::run_step(
        vidpipe_lambda::without_media,
        |deps, input: FinalizeInput| async move { steps::finalize_any(&deps, &input).await },
    )
    .await
}

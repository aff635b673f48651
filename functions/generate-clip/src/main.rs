//! Lambda entrypoint for the generate-clip step: wiring only. The work is `vidpipe_pipeline::steps::generate_clip`.

use vidpipe_pipeline::steps::{self, ClipTask};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    vidpipe_lambda::run_step(
        vidpipe_lambda::with_media,
        |deps, input: ClipTask| async move { steps::generate_clip(&deps, &input).await },
    )
    .await
}

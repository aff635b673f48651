//! Lambda entrypoint for the record-failure step: wiring only. The work is `vidpipe_pipeline::steps::record_failure`.

use vidpipe_pipeline::steps::{self, FailureInput};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    vidpipe_lambda::run_step(
        vidpipe_lambda::without_media,
        |deps, input: FailureInput| async move { steps::record_failure(&deps, &input).await },
    )
    .await
}

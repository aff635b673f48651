//! Lambda entrypoint for the upload-processing steps: wiring only. The step dispatch is
//! `vidpipe_lambda::process`, the steps are `vidpipe_pipeline::processing`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    vidpipe_lambda::process::serve().await
}

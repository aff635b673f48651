//! Lambda entrypoint for the generation steps: wiring only. The step dispatch is
//! `vidpipe_lambda::generation`, the steps are `vidpipe_pipeline::generation`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    vidpipe_lambda::generation::serve().await
}

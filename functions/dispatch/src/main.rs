//! Lambda entrypoint for the upload dispatcher: wiring only. The decisions are
//! `vidpipe_lambda::dispatch`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    vidpipe_lambda::serve_dispatch().await
}

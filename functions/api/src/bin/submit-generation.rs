//! `POST /v1/generations`: admits a generation (quotas counted) and starts its execution. One Lambda per route; everything but the wiring is in `vidpipe_http`.

use vidpipe_http::routes::Operation;
use vidpipe_lambda::api::{Submit, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    serve::<Submit>(Operation::SubmitGeneration).await
}

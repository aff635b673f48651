//! `GET /v1/generations/{id}/compositions`: a job's versions with their parents and presigned downloads, read-only. One Lambda per route; everything but the wiring is in `vidpipe_http`.

use vidpipe_http::routes::Operation;
use vidpipe_lambda::api::{RecordsAndMedia, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    serve::<RecordsAndMedia>(Operation::ListCompositions).await
}

//! `GET /v1/generations/batches/{id}`: a batch's items and their jobs' statuses, read-only. One Lambda per route; everything but the wiring is in `vidpipe_http`.

use vidpipe_http::routes::Operation;
use vidpipe_lambda::api::{Records, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    serve::<Records>(Operation::GetGenerationBatch).await
}

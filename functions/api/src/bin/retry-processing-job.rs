//! `POST /v1/processing-jobs/{id}/retry`: runs a failed processing job again from its raw object. One Lambda per route; everything but the wiring is in `vidpipe_http`.

use vidpipe_http::routes::Operation;
use vidpipe_lambda::api::{Retry, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    serve::<Retry>(Operation::RetryProcessingJob).await
}

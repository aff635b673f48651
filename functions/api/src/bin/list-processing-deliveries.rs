//! `GET /v1/processing-jobs/{id}/deliveries`: every webhook delivery attempt for a processing job. One Lambda per route; everything but the wiring is in `vidpipe_http`.

use vidpipe_http::routes::Operation;
use vidpipe_lambda::api::{Records, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    serve::<Records>(Operation::ListProcessingDeliveries).await
}

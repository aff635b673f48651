//! `GET /v1/generations/{id}`: one generation's status, clips (with presigned links to their pictures), timings and cost. One Lambda per route; everything but the wiring is in `vidpipe_http`.

use vidpipe_http::routes::Operation;
use vidpipe_lambda::api::{RecordsAndMedia, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    serve::<RecordsAndMedia>(Operation::GetGeneration).await
}

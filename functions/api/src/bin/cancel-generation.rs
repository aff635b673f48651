//! `POST /v1/generations/{id}/cancel`: stops the execution and the providers' running calls. One Lambda per route; everything but the wiring is in `vidpipe_http`.

use vidpipe_http::routes::Operation;
use vidpipe_lambda::api::{Cancel, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    serve::<Cancel>(Operation::CancelGeneration).await
}

//! `POST /v1/generations/{id}/recompose`: records a new composition of a completed job and starts its execution. One Lambda per route; everything but the wiring is in `vidpipe_http`.

use vidpipe_http::routes::Operation;
use vidpipe_lambda::api::{Recompose, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    serve::<Recompose>(Operation::RecomposeGeneration).await
}

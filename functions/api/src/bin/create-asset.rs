//! `POST /v1/assets`: records a brand asset and presigns its upload. One Lambda per route; everything but the wiring is in `vidpipe_http`.

use vidpipe_http::routes::Operation;
use vidpipe_lambda::api::{Assets, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    serve::<Assets>(Operation::CreateAsset).await
}

//! `GET /v1/assets/{id}`: one asset, with the size actually stored. One Lambda per route; everything but the wiring is in `vidpipe_http`.

use vidpipe_http::routes::Operation;
use vidpipe_lambda::api::{RecordsAndMedia, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    serve::<RecordsAndMedia>(Operation::GetAsset).await
}

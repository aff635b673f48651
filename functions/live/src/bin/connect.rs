//! `$connect`: verifies the bearer JWT (query `token` or a `bearer.<token>` subprotocol) and records the connection. One Lambda per route; the work is in `vidpipe_pipeline::live`.

use vidpipe_lambda::live::{LiveRoute, serve_live};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve_live(LiveRoute::Connect).await
}

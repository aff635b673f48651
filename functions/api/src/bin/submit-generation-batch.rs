//! `POST /v1/generations/batch`: up to 50 generations submitted at once, each item judged alone. One Lambda per route; everything but the wiring is in `vidpipe_http`.

use vidpipe_http::routes::Operation;
use vidpipe_lambda::api::{Submit, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    serve::<Submit>(Operation::SubmitGenerationBatch).await
}

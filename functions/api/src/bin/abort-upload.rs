//! `DELETE /v1/uploads/{id}`: drops a pending upload. One Lambda per route; everything but the wiring is in `vidpipe_http`.

use vidpipe_http::routes::Operation;
use vidpipe_lambda::api::{Uploads, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    serve::<Uploads>(Operation::AbortUpload).await
}

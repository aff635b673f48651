//! `POST /v1/uploads`: announces raw footage and presigns its PUT or multipart parts. One Lambda per route; everything but the wiring is in `vidpipe_http`.

use vidpipe_http::routes::Operation;
use vidpipe_lambda::api::{Uploads, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    serve::<Uploads>(Operation::CreateUpload).await
}

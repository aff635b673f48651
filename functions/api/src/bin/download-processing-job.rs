//! `GET /v1/processing-jobs/{id}/download`: presigned links to every rendition and the thumbnail. One Lambda per route; everything but the wiring is in `vidpipe_http`.

use vidpipe_http::routes::Operation;
use vidpipe_lambda::api::{RecordsAndMedia, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    serve::<RecordsAndMedia>(Operation::DownloadProcessingJob).await
}

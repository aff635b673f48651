//! `POST /v1/compositions`: a JSON timeline dry-run, or accepted and rendered by the state machine (202). One Lambda per route; everything but the wiring is in `vidpipe_http`.

use vidpipe_http::routes::Operation;
use vidpipe_lambda::api::{Timelines, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    serve::<Timelines>(Operation::CreateComposition).await
}

//! `POST /v1/webhook-secret/rotate`: a new signing secret; the old one keeps signing for 24 h. One Lambda per route; everything but the wiring is in `vidpipe_http`.

use vidpipe_http::routes::Operation;
use vidpipe_lambda::api::{WebhookSecrets, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    serve::<WebhookSecrets>(Operation::RotateWebhookSecret).await
}

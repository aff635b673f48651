//! `GET /v1/webhook-secret`: the tenant's webhook signing secret, made on first use. One Lambda per route; everything but the wiring is in `vidpipe_http`.

use vidpipe_http::routes::Operation;
use vidpipe_lambda::api::{WebhookSecrets, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    serve::<WebhookSecrets>(Operation::GetWebhookSecret).await
}

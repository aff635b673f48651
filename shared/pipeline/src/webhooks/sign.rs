//! Standard Webhooks signatures: `v1,` and the base64 of HMAC-SHA256 over
//! `{webhook-id}.{webhook-timestamp}.{body}`, one per valid secret, separated by spaces.

use base64::Engine;
use ring::hmac;
use vidpipe_domain::webhook::WebhookSecret;

/// The `webhook-signature` header value for one delivery attempt.
pub fn signature_header(
    id: &str,
    timestamp: i64,
    body: &[u8],
    secrets: &[&WebhookSecret],
) -> String {
    secrets
        .iter()
        .map(|secret| {
            let key = hmac::Key::new(hmac::HMAC_SHA256, &secret.key());
            let mut ctx = hmac::Context::with_key(&key);
            ctx.update(id.as_bytes());
            ctx.update(b".");
            ctx.update(timestamp.to_string().as_bytes());
            ctx.update(b".");
            ctx.update(body);
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(ctx.sign().as_ref())
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

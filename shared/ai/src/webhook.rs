//! Replicate webhook deliveries: Standard Webhooks signature checks (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature`, a `whsec_` secret, five minutes of clock tolerance)
//! and the clip identity our webhook URLs carry.

use crate::replicate::{Prediction, WEBHOOK_IDENTITY_PARAM};
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Our configuration is wrong, not the delivery: answer 5xx so Replicate retries later.
    #[error("webhook secret is not a whsec_ base64 key")]
    Secret,
    #[error("webhook header {0} is missing or malformed")]
    Header(&'static str),
    #[error("webhook timestamp is outside the five-minute tolerance")]
    Stale,
    #[error("webhook signature does not match")]
    Signature,
    #[error("webhook body is not a prediction: {0}")]
    Body(String),
}

impl WebhookError {
    /// Whether the delivery is at fault (answer 4xx) rather than our setup.
    pub fn is_delivery_fault(&self) -> bool {
        !matches!(self, WebhookError::Secret)
    }
}

/// Checks a delivery's signature against `secret` and parses its body. Verifying the same
/// delivery again gives the same prediction: the check has no memory, so de-duplicating by
/// `webhook-id` (or by the prediction's status) is the receiver's job and repeats are harmless.
pub fn verify_webhook(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Prediction, WebhookError> {
    let hook = standardwebhooks::Webhook::new(secret.trim()).map_err(|_| WebhookError::Secret)?;
    hook.verify(body, headers).map_err(|e| {
        use standardwebhooks::WebhookError as E;
        match e {
            E::InvalidSecret(_) => WebhookError::Secret,
            E::MissingHeader(h) | E::InvalidHeader(h) => WebhookError::Header(header_name(h)),
            E::InvalidTimestamp => WebhookError::Header("webhook-timestamp"),
            E::TimestampTooOldError | E::FutureTimestampError => WebhookError::Stale,
            E::InvalidSignature | E::InvalidPayload => WebhookError::Signature,
        }
    })?;
    serde_json::from_slice(body).map_err(|e| WebhookError::Body(e.to_string()))
}

/// [`verify_webhook`] for callers holding headers as name/value pairs (a Lambda event).
pub fn verify_webhook_pairs(
    secret: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Prediction, WebhookError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        // Names and values that are not valid HTTP are dropped; a missing signature header then
        // fails the check as it should.
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.append(n, v);
        }
    }
    verify_webhook(secret, &map, body)
}

fn header_name(short: &str) -> &'static str {
    match short {
        "id" => "webhook-id",
        "timestamp" => "webhook-timestamp",
        _ => "webhook-signature",
    }
}

/// The clip identity in a webhook URL we generated (full URL, or path and query as a receiver
/// sees it); `None` when it carries none.
pub fn clip_identity_from_webhook_url(url: &str) -> Option<String> {
    let parsed = Url::parse(url)
        .or_else(|_| Url::parse("http://receiver.invalid/")?.join(url))
        .ok()?;
    parsed
        .query_pairs()
        .find(|(k, _)| k == WEBHOOK_IDENTITY_PARAM)
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

//! The web app's files and `GET /app-config.json`, which tells the app that the API is this
//! origin, where the live socket is, and whether it needs the start-up token.

use crate::Shared;
use crate::access::Access;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use vidpipe_webapp::{AppConfig, AuthConfig};

pub async fn app_config(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| plain_authority(h))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            shared
                .files
                .public_origin()
                .trim_start_matches("http://")
                .to_owned()
        });
    let choices = &shared.api.service.choices;
    let config = AppConfig {
        providers: choices.providers.clone(),
        planners: choices.planners.clone(),
        api_base: String::new(),
        websocket_url: Some(format!("ws://{host}/v1/live")),
        auth: match shared.access {
            Access::Open => AuthConfig::Local,
            Access::Token(_) => AuthConfig::Token,
        },
    };
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        config.to_json(),
    )
        .into_response()
}

/// A `Host` value safe to write into a URL: letters, digits and `.-:[]` only.
fn plain_authority(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

/// One of the app's files (any page path gets the index; see `vidpipe_webapp::asset`).
pub fn asset(path: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = vidpipe_webapp::asset(path) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let etag = (!asset.etag.is_empty()).then(|| format!("\"{}\"", asset.etag));
    if let Some(etag) = &etag
        && headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut response = asset.body.into_owned().into_response();
    let h = response.headers_mut();
    if let Ok(ct) = HeaderValue::from_str(&asset.content_type) {
        h.insert(header::CONTENT_TYPE, ct);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if asset.immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        h.insert(header::ETAG, etag);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

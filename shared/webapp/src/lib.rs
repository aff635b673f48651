//! The web app as the binary carries it: the files `scripts/web-build.sh` writes to `web/dist`,
//! embedded at compile time, and the `/app-config.json` document that tells the app where the
//! API and the live-progress socket are and how to sign in. `vidpipe serve` and the stack's app
//! function both serve these, so the page is the same everywhere.
//!
//! When `web/dist` is absent (the app was never built), the crate still compiles, and
//! [`asset`] answers the index with a small page saying how to build it.

use rust_embed::RustEmbed;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

#[derive(RustEmbed)]
#[folder = "../../web/dist"]
#[allow_missing = true]
struct Dist;

/// One file to answer with.
#[derive(Debug, Clone)]
pub struct Asset {
    pub body: Cow<'static, [u8]>,
    pub content_type: String,
    /// Vite names built files by content (`assets/index-3f2a1b.js`): those may be cached for
    /// good; everything else (the index, the app config) must be revalidated.
    pub immutable: bool,
    /// A hex SHA-256 of the body, for `ETag`.
    pub etag: String,
}

/// What answers a path the app does not have but the browser asked for as a page: the app's
/// router decides what `/jobs/123` shows, so every page path gets the index.
pub const INDEX: &str = "index.html";

/// Shown when the binary was built without the app (`web/dist` missing).
pub const NOT_BUILT_PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>vidpipe: app not built</title></head><body style=\"font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem\">\
<h1>vidpipe: app not built</h1>\
<p>This binary was built without the web app. Build it with <code>scripts/web-build.sh</code> \
(which writes <code>web/dist</code>), then rebuild vidpipe. The API is served all the same under \
<code>/v1/</code>.</p></body></html>\n";

/// Whether the binary carries the built app.
pub fn is_built() -> bool {
    Dist::get(INDEX).is_some()
}

/// The embedded file at `path` (no leading `/`; `""` is the index). A path with no file and no
/// extension is a page of the app and gets the index; a missing file with an extension (a
/// script, an image) is `None`, so it is a 404 rather than HTML the browser cannot use.
pub fn asset(path: &str) -> Option<Asset> {
    let path = path.trim_start_matches('/');
    let path = if path.is_empty() { INDEX } else { path };
    if let Some(file) = Dist::get(path) {
        return Some(Asset {
            content_type: file.metadata.mimetype().to_owned(),
            immutable: path.starts_with("assets/"),
            etag: hex(&file.metadata.sha256_hash()),
            body: file.data,
        });
    }
    let last = path.rsplit('/').next().unwrap_or_default();
    if last.contains('.') && path != INDEX {
        return None;
    }
    Some(match Dist::get(INDEX) {
        Some(file) => Asset {
            content_type: "text/html; charset=utf-8".into(),
            immutable: false,
            etag: hex(&file.metadata.sha256_hash()),
            body: file.data,
        },
        None => Asset {
            body: Cow::Borrowed(NOT_BUILT_PAGE.as_bytes()),
            content_type: "text/html; charset=utf-8".into(),
            immutable: false,
            etag: String::new(),
        },
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `GET /app-config.json`: where the app finds the API and the socket, and how it signs in.
/// The shape is shared with the web app and the stack (see the live-progress contract).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppConfig {
    /// Prefix of the API's `/v1/...` paths: `""` for the same origin.
    pub api_base: String,
    /// The live-progress WebSocket, `ws://.../v1/live` or the stack's `wss://...`; `None` where
    /// the deployment has none (the app then polls).
    pub websocket_url: Option<String>,
    pub auth: AuthConfig,
    /// The clip providers a request may choose to lead the chain (`provider`), in chain order:
    /// the deployment's configured chain. The Create form offers a choice when there are two or
    /// more.
    #[serde(default)]
    pub providers: Vec<String>,
    /// The planners a request may choose (`planner`): the configured one, and `rules` beneath
    /// an LLM planner.
    #[serde(default)]
    pub planners: Vec<String>,
}

/// The planners a deployment configured with `planner` offers: it, and the rules beneath an
/// LLM planner (its fallback anyway). The API checks a request's choice against the same list.
pub fn planners_for(planner: &str) -> Vec<String> {
    let mut planners = vec![planner.to_owned()];
    if planner != "rules" {
        planners.push("rules".to_owned());
    }
    planners
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum AuthConfig {
    /// `vidpipe serve` on loopback: no sign-in at all.
    Local,
    /// `vidpipe serve` on another address: the token it printed at start-up, sent as
    /// `Authorization: Bearer` (and `?token=` on the socket).
    Token,
    /// The stack: OIDC authorization code with PKCE against `issuer`, for `client_id`.
    Oidc {
        issuer: String,
        client_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        audience: Option<String>,
    },
}

/// A setting [`AppConfig::from_env`] could not use.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {why}")]
pub struct ConfigError {
    pub name: &'static str,
    pub why: String,
}

impl AppConfig {
    /// The stack's app function's settings (from the template's parameters): the OIDC issuer
    /// (`VIDPIPE_OIDC_ISSUER`), the web app's client id (`VIDPIPE_OIDC_CLIENT_ID`), the audience
    /// (`VIDPIPE_OIDC_AUDIENCE`, optional) and the live socket (`VIDPIPE_WEBSOCKET_URL`,
    /// optional). The API is the same origin as the app (`api_base` `""`): the function sits
    /// behind the HTTP API itself.
    pub fn from_env() -> Result<AppConfig, ConfigError> {
        let var = |name: &'static str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let need = |name: &'static str| {
            var(name).ok_or(ConfigError {
                name,
                why: "must be set".into(),
            })
        };
        let issuer = need("VIDPIPE_OIDC_ISSUER")?;
        if !issuer.starts_with("https://") {
            return Err(ConfigError {
                name: "VIDPIPE_OIDC_ISSUER",
                why: "must be an https URL".into(),
            });
        }
        // The stack's chain and planner (VIDPIPE_PROVIDER, VIDPIPE_PLANNER), as its functions
        // read them: `bedrock` is the reel model's short name, and the defaults are the same.
        let providers = var("VIDPIPE_PROVIDER")
            .unwrap_or_else(|| "procedural".into())
            .split(',')
            .map(|p| match p.trim() {
                "bedrock" => "bedrock-reel".to_owned(),
                p => p.to_owned(),
            })
            .filter(|p| !p.is_empty())
            .collect();
        let planner = var("VIDPIPE_PLANNER").unwrap_or_else(|| "rules".into());
        Ok(AppConfig {
            providers,
            planners: planners_for(planner.trim()),
            api_base: String::new(),
            websocket_url: var("VIDPIPE_WEBSOCKET_URL"),
            auth: AuthConfig::Oidc {
                issuer,
                client_id: need("VIDPIPE_OIDC_CLIENT_ID")?,
                audience: var("VIDPIPE_OIDC_AUDIENCE"),
            },
        })
    }

    pub fn to_json(&self) -> String {
        // Strings and options only: encoding cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

/// A framework-neutral answer, for the stack's app function.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Answers a `GET` of `path`: `/app-config.json` from `config_json`, else the app's file (any
/// page path gets the index). Paths under `/v1/` are the API's: one that reached the app has no
/// route, and is a 404 problem as the API would give.
pub fn respond(path: &str, if_none_match: Option<&str>, config_json: &str) -> Reply {
    let plain = |status: u16, content_type: &str, body: Vec<u8>| Reply {
        status,
        headers: vec![
            ("content-type", content_type.to_owned()),
            ("cache-control", "no-store".to_owned()),
        ],
        body,
    };
    if path == "/v1" || path.starts_with("/v1/") {
        let problem = serde_json::json!({
            "type": "about:blank",
            "title": "Not found",
            "status": 404,
            "detail": "No such route; see the OpenAPI document for the API's routes.",
            "instance": path,
        });
        return plain(
            404,
            "application/problem+json",
            problem.to_string().into_bytes(),
        );
    }
    if path == "/app-config.json" {
        return plain(200, "application/json", config_json.as_bytes().to_vec());
    }
    let Some(asset) = asset(path) else {
        return plain(404, "text/plain; charset=utf-8", b"not found\n".to_vec());
    };
    let etag = format!("\"{}\"", asset.etag);
    let cache = if asset.immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut headers = vec![
        ("cache-control", cache.to_owned()),
        ("x-content-type-options", "nosniff".to_owned()),
    ];
    if !asset.etag.is_empty() {
        headers.push(("etag", etag.clone()));
        if if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == etag)) {
            return Reply {
                status: 304,
                headers,
                body: Vec::new(),
            };
        }
    }
    headers.push(("content-type", asset.content_type));
    Reply {
        status: 200,
        headers,
        body: asset.body.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_config_has_the_contract_shape() {
        let local = AppConfig {
            api_base: String::new(),
            websocket_url: Some("ws://127.0.0.1:8080/v1/live".into()),
            auth: AuthConfig::Local,
            providers: vec!["replicate".into(), "procedural".into()],
            planners: planners_for("openai"),
        };
        assert_eq!(
            serde_json::to_value(&local).unwrap(),
            serde_json::json!({"api_base": "", "websocket_url": "ws://127.0.0.1:8080/v1/live", "auth": {"mode": "local"},
                "providers": ["replicate", "procedural"], "planners": ["openai", "rules"]})
        );
        // A config written before the choices reads as offering none.
        let old: AppConfig =
            serde_json::from_str(r#"{"api_base":"","websocket_url":null,"auth":{"mode":"local"}}"#)
                .unwrap();
        assert!(old.providers.is_empty() && old.planners.is_empty());
        assert_eq!(planners_for("rules"), ["rules"]);
        let oidc = AppConfig {
            providers: vec!["procedural".into()],
            planners: planners_for("rules"),
            api_base: "https://api.example".into(),
            websocket_url: Some("wss://ws.example".into()),
            auth: AuthConfig::Oidc {
                issuer: "https://issuer.example".into(),
                client_id: "abc".into(),
                audience: Some("vidpipe".into()),
            },
        };
        assert_eq!(
            serde_json::to_value(&oidc).unwrap()["auth"],
            serde_json::json!({"mode": "oidc", "issuer": "https://issuer.example", "client_id": "abc", "audience": "vidpipe"})
        );
    }

    #[test]
    fn the_function_answers_config_app_and_api_misses() {
        let config = r#"{"api_base":""}"#;
        let r = respond("/app-config.json", None, config);
        assert_eq!((r.status, r.body.as_slice()), (200, config.as_bytes()));
        let r = respond("/v1/unknown", None, config);
        assert_eq!(r.status, 404);
        assert!(
            r.headers
                .contains(&("content-type", "application/problem+json".into()))
        );
        let page = respond("/history", None, config);
        assert_eq!(page.status, 200);
        if let Some((_, etag)) = page.headers.iter().find(|(n, _)| *n == "etag") {
            assert_eq!(respond("/", Some(etag), config).status, 304);
        }
    }

    #[test]
    fn pages_get_the_index_and_missing_files_do_not() {
        let index = asset("").expect("the index, built or not");
        assert!(index.content_type.starts_with("text/html"));
        assert_eq!(
            asset("jobs/123").expect("a page path").body,
            index.body,
            "an app route is the index"
        );
        assert!(asset("assets/missing-file.js").is_none());
        if !is_built() {
            assert_eq!(index.body.as_ref(), NOT_BUILT_PAGE.as_bytes());
        }
    }
}

//! What a handler needs from the raw request besides its route: the request id, the tenant, the
//! query, and a JSON body read under a size cap with the offending field named on failure. All the
//! reading of API Gateway's request context lives here, so handlers only see plain values.

use crate::error::ApiError;
use crate::json;
use lambda_http::http::header;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde::de::DeserializeOwned;
use vidpipe_domain::error::{FieldError, ValidationErrors, echo_unquoted};

/// Largest JSON body accepted. The biggest valid request (a 2000-character prompt and a brand
/// block) is far under it; anything past it is a mistake or abuse, refused before parsing.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The header naming the tenant when no JWT is present and the deployment trusts it.
pub const TENANT_HEADER: &str = "x-vidpipe-tenant";
/// The custom claim that names the tenant when a user's tenant is not their own subject.
pub const TENANT_CLAIM: &str = "tenant";
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
const IDEMPOTENCY_KEY_MAX: usize = 255;
const TENANT_MAX: usize = 128;

/// The id a problem body carries and the logs are tagged with: the Lambda invocation's id when
/// running in Lambda, else API Gateway's, else a fresh one so that a problem always has one.
pub fn request_id(req: &Request) -> String {
    let lambda = req
        .lambda_context_ref()
        .map(|c| c.request_id.as_str())
        .filter(|id| !id.is_empty());
    let gateway = || match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c.request_id.as_deref(),
        Some(RequestContext::ApiGatewayV1(c)) => c.request_id.as_deref(),
        _ => None,
    };
    lambda
        .or_else(|| gateway().filter(|id| !id.is_empty()))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("gen-{}", uuid::Uuid::now_v7().simple()))
}

/// The API Gateway stage, when the path carries one (`$default` does not).
pub fn stage(req: &Request) -> Option<&str> {
    let stage = match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(c) => c.stage.as_deref(),
        RequestContext::ApiGatewayV1(c) => c.stage.as_deref(),
        _ => None,
    }?;
    (stage != "$default").then_some(stage)
}

/// Where the caller reached the API, for links: `scheme://host` when the request names its host,
/// then the path prefix it used. `stripped` is what routing removed (stage, base path); a
/// function URL served by `cargo lambda watch` adds the `/lambda-url/{function}` that watch
/// removed before the event was made, which the event records only as its domain prefix.
pub fn base(req: &Request, stripped: &str) -> String {
    let origin = origin(req).unwrap_or_default();
    let emulated = watch_prefix(req).unwrap_or_default();
    format!("{origin}{emulated}{stripped}")
}

/// `scheme://host` from the `Host` header. The scheme is `X-Forwarded-Proto`'s (API Gateway sets
/// it), else plain http for a loopback host (a local emulator), else https.
fn origin(req: &Request) -> Option<String> {
    let header = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let host = header(header::HOST).filter(|h| {
        // Only a plain authority: the value is written into links verbatim.
        !h.is_empty()
            && h.len() <= 255
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    })?;
    let forwarded = header(header::HeaderName::from_static("x-forwarded-proto"))
        .and_then(|p| p.split(',').next())
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| p == "http" || p == "https");
    let loopback = ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .any(|l| host == *l || host.strip_prefix(l).is_some_and(|r| r.starts_with(':')));
    let scheme = forwarded.unwrap_or_else(|| if loopback { "http" } else { "https" }.into());
    Some(format!("{scheme}://{host}"))
}

/// `/lambda-url/{function}` for an event `cargo lambda watch` made from a function-URL request.
/// Watch marks its events with the domain `localhost` and the user agent `cargo-lambda`, which
/// neither API Gateway nor a real function URL ever sets, and names the function in the domain
/// prefix.
fn watch_prefix(req: &Request) -> Option<String> {
    let Some(RequestContext::ApiGatewayV2(c)) = req.request_context_ref() else {
        return None;
    };
    let from_watch = c.domain_name.as_deref() == Some("localhost")
        && c.http.user_agent.as_deref() == Some("cargo-lambda");
    let function = c.domain_prefix.as_deref().filter(|f| {
        !f.is_empty()
            && f.len() <= 64
            && f.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })?;
    from_watch.then(|| format!("/lambda-url/{function}"))
}

/// The tenant: the JWT authorizer's `tenant` claim, else its `sub`; failing both, the
/// `x-vidpipe-tenant` header but only when `trust_header` (a dev/emulation setting: anyone can
/// send a header, so in production it would let any caller act as any tenant).
pub fn tenant(req: &Request, trust_header: bool) -> Result<String, ApiError> {
    let claims = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|j| &j.claims),
        _ => None,
    };
    let from_claims = claims.and_then(|c| {
        [TENANT_CLAIM, "sub"]
            .iter()
            .find_map(|name| c.get(*name).filter(|v| !v.is_empty()).cloned())
    });
    let raw = match from_claims {
        Some(t) => t,
        None if trust_header => req
            .headers()
            .get(TENANT_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| ApiError::Unauthenticated {
                detail: format!("No JWT claims and no {TENANT_HEADER} header."),
            })?,
        None => {
            return Err(ApiError::Unauthenticated {
                detail: "The request carries no authenticated subject.".into(),
            });
        }
    };
    // The tenant becomes a segment of storage keys (`uploads/{owner}/...`), so it must be one
    // safe segment whatever the identity provider puts in `sub`.
    let safe = raw.len() <= TENANT_MAX
        && raw != "."
        && raw != ".."
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@|:+=".contains(&b));
    if safe {
        Ok(raw)
    } else {
        Err(ApiError::Unauthenticated {
            detail: "The authenticated tenant id contains characters the API does not accept."
                .into(),
        })
    }
}

/// The `Idempotency-Key` header: 1..=255 visible ASCII characters, or absent.
pub fn idempotency_key(req: &Request) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let key = value.to_str().ok().map(str::trim).unwrap_or_default();
    if !is_idempotency_key(key) {
        return Err(ApiError::bad_request(
            "Idempotency-Key",
            IDEMPOTENCY_KEY_RULE,
        ));
    }
    Ok(Some(key.to_owned()))
}

/// The rule an idempotency key breaks, in a header or a batch item.
pub const IDEMPOTENCY_KEY_RULE: &str = "must be 1 to 255 visible ASCII characters";

/// 1..=255 visible ASCII characters, scoped to the tenant wherever it is given.
pub fn is_idempotency_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= IDEMPOTENCY_KEY_MAX && key.bytes().all(|b| b.is_ascii_graphic())
}

/// The query string's parameters. A parameter given twice is refused rather than guessed at.
pub struct Query(lambda_http::aws_lambda_events::query_map::QueryMap);

impl Query {
    /// Read from the URI, which lambda_http rebuilds from the event's raw query string for every
    /// event kind, so tests built with the plain http builder see the same thing.
    pub fn of(req: &Request) -> Self {
        let raw = req.uri().query().unwrap_or_default();
        Query(raw.parse().unwrap_or_default())
    }

    pub fn get(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.0.all(name) {
            None => Ok(None),
            Some(values) if values.len() == 1 => Ok(Some(values[0])),
            Some(_) => Err(ApiError::bad_request(name, "must be given at most once")),
        }
    }
}

/// Reads a JSON body: refuses a body over [`MAX_BODY_BYTES`] (413), a content type other than
/// JSON (415), malformed JSON (400), and a well-formed body of the wrong shape (422), naming the
/// field's path in the last case.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let value = json_document(req, MAX_BODY_BYTES)?;
    if let Some(path) = first_array(&value, String::new()) {
        let field = if path.is_empty() {
            "body".to_owned()
        } else {
            echo_unquoted(&path)
        };
        return Err(ApiError::invalid(
            &field,
            "must not be an array: no field of this API takes a list",
        ));
    }
    json::typed(&value).map_err(|e| ApiError::Invalid(ValidationErrors { errors: vec![e] }))
}

/// Reads a JSON body as one document, of any shape: refuses a body over `max_bytes` (413), a
/// content type other than JSON (415), an empty body, malformed JSON or a key given twice (400).
pub fn json_document(req: &Request, max_bytes: usize) -> Result<serde_json::Value, ApiError> {
    // Text, binary (base64 in the event, decoded by lambda_http) and empty bodies alike.
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > max_bytes {
        return Err(ApiError::TooLarge {
            detail: format!(
                "The body is {} bytes; the limit is {max_bytes}.",
                bytes.len()
            ),
            errors: vec![],
        });
    }
    let content_type = req
        .headers()
        .get(lambda_http::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !is_json(content_type) {
        let got = if content_type.is_empty() {
            "none".to_owned()
        } else {
            vidpipe_domain::error::echo(content_type)
        };
        return Err(ApiError::UnsupportedMediaType {
            detail: format!("The body must be application/json (got {got})."),
            errors: vec![],
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest {
            detail: "The body is empty; a JSON object is required.".into(),
            errors: vec![],
        });
    }
    // Syntax and repeated keys first (400), then shape (422). Going through a `Value` also lets
    // arrays be refused: serde reads an array as a struct's fields by position, which no caller
    // means, and none of the single requests' bodies has an array field.
    json::parse(bytes).map_err(|e| match e {
        json::ReadError::Syntax(why) => ApiError::BadRequest {
            detail: format!("The body is not valid JSON: {why}."),
            errors: vec![],
        },
        json::ReadError::Duplicate(path) => ApiError::BadRequest {
            detail: format!("The body gives the key {path} more than once."),
            errors: vec![FieldError::new(path, "is given more than once")],
        },
    })
}

/// The dotted path of the first array in `value`, if any.
pub(crate) fn first_array(value: &serde_json::Value, path: String) -> Option<String> {
    match value {
        serde_json::Value::Array(_) => Some(path),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(name, v)| {
            first_array(
                v,
                if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                },
            )
        }),
        _ => None,
    }
}

/// `application/json`, optionally with parameters, or any `+json` structured suffix.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json(""));
    }
}

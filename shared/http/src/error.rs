//! The API's one error enum and its one mapping to an HTTP status and an RFC 7807 problem body.
//! Every failure a handler meets becomes an `ApiError`; nothing else decides a status. Causes are
//! logged with their source chain but never written into a response: 5xx bodies carry a generic
//! detail and the `request_id` that finds the log line.

use crate::views::Problem;
use lambda_http::http::{Method, StatusCode};
use std::time::Duration;
use vidpipe_domain::ErrorClass;
use vidpipe_domain::error::{FieldError, ValidationErrors, echo};
use vidpipe_domain::ports::{BlobError, OrchestratorError, StoreError};
use vidpipe_domain::quota::QuotaExceeded;
use vidpipe_pipeline::ServiceError;

/// How long a client should wait before retrying a request that failed for a passing reason.
pub const RETRY_AFTER: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no route for this path")]
    RouteNotFound,
    #[error("method not allowed here")]
    MethodNotAllowed { allow: Vec<Method> },
    #[error("no tenant could be established for the request")]
    Unauthenticated { detail: String },
    /// The request could not be read: malformed JSON, a bad query parameter or header.
    #[error("bad request: {detail}")]
    BadRequest {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// Well-formed, but breaks the rules; every violation is listed.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error("unsupported media type: {detail}")]
    UnsupportedMediaType {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("too large: {detail}")]
    TooLarge {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// The caller named something only another tenant may use (a `raw/{client}/` prefix).
    #[error("forbidden: {detail}")]
    Forbidden {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// Unknown, or another tenant's: the two are indistinguishable on purpose.
    #[error("{0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// A bug or an inconsistent record; the message goes to the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Service(e.into())
    }
}

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        ApiError::Service(e.into())
    }
}

/// Everything a response needs from an error, computed in one place.
pub struct ProblemSpec {
    pub status: StatusCode,
    /// Stable slug for the problem `type` (`urn:vidpipe:problem:{slug}`).
    pub slug: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub retry_after: Option<Duration>,
    pub allow: Vec<Method>,
    /// The refusal, for `quota-exceeded` problems: named in the body's `quota` members.
    pub quota: Option<QuotaExceeded>,
}

/// The rule a list cursor breaks when it is not one this deployment issued to this tenant.
pub const BAD_CURSOR: &str = "is not a cursor this API issued; pass next_cursor back unchanged";

const GENERIC_DETAIL: &str =
    "An unexpected error occurred; quote the request_id when reporting it.";
const UNAVAILABLE_DETAIL: &str =
    "A backing service is temporarily unavailable; retry after the Retry-After delay.";

impl ApiError {
    pub fn bad_request(field: &str, rule: impl Into<String>) -> Self {
        let rule = rule.into();
        ApiError::BadRequest {
            detail: format!("{field}: {rule}"),
            errors: vec![FieldError::new(field, rule)],
        }
    }

    pub fn invalid(field: &str, rule: impl Into<String>) -> Self {
        ApiError::Invalid(ValidationErrors::single(field, rule))
    }

    /// True for failures the server caused (5xx): logged at error level with their cause.
    pub fn is_server_error(&self) -> bool {
        self.spec().status.is_server_error()
    }

    /// The single status mapping.
    pub fn spec(&self) -> ProblemSpec {
        let spec = |status, slug, title, detail: String, errors: Vec<FieldError>| ProblemSpec {
            status,
            slug,
            title,
            detail,
            errors,
            retry_after: None,
            allow: Vec::new(),
            quota: None,
        };
        match self {
            ApiError::RouteNotFound => spec(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                "No such route; see the OpenAPI document for the API's routes.".into(),
                vec![],
            ),
            ApiError::MethodNotAllowed { allow } => {
                let names: Vec<&str> = allow.iter().map(Method::as_str).collect();
                ProblemSpec {
                    allow: allow.clone(),
                    ..spec(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "method-not-allowed",
                        "Method not allowed",
                        format!("This path accepts {}.", names.join(", ")),
                        vec![],
                    )
                }
            }
            ApiError::Unauthenticated { detail } => spec(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Unauthenticated",
                detail.clone(),
                vec![],
            ),
            ApiError::BadRequest { detail, errors } => spec(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "Bad request",
                detail.clone(),
                errors.clone(),
            ),
            ApiError::Invalid(v) => validation(v),
            ApiError::UnsupportedMediaType { detail, errors } => spec(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                detail.clone(),
                errors.clone(),
            ),
            ApiError::TooLarge { detail, errors } => spec(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Payload too large",
                detail.clone(),
                errors.clone(),
            ),
            ApiError::Forbidden { detail, errors } => spec(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                detail.clone(),
                errors.clone(),
            ),
            ApiError::NotFound(detail) => spec(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                detail.clone(),
                vec![],
            ),
            ApiError::Conflict(detail) => spec(
                StatusCode::CONFLICT,
                "conflict",
                "Conflict",
                detail.clone(),
                vec![],
            ),
            ApiError::Internal(_) => internal(),
            ApiError::Service(e) => service_spec(e),
        }
    }
}

/// The status mapping of a service error, for a whole request or one item of a batch.
pub fn service_spec(e: &ServiceError) -> ProblemSpec {
    let spec = |status, slug, title, detail: String, errors: Vec<FieldError>| ProblemSpec {
        status,
        slug,
        title,
        detail,
        errors,
        retry_after: None,
        allow: Vec::new(),
        quota: None,
    };
    match e {
        ServiceError::Invalid(v) => validation(v),
        ServiceError::NotFound(id) => spec(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("No generation {id}."),
            vec![],
        ),
        ServiceError::AlreadyFinished { id, status } => spec(
            StatusCode::CONFLICT,
            "conflict",
            "Conflict",
            format!("Generation {id} is already {status}."),
            vec![],
        ),
        ServiceError::Conflict(detail) => ApiError::Conflict(detail.clone()).spec(),
        ServiceError::IdempotencyConflict { key, existing } => ApiError::Conflict(format!(
            "Idempotency-Key {} was already used with a different request (generation {existing}).",
            echo(key)
        ))
        .spec(),
        ServiceError::UnsupportedContentType(e) => ApiError::UnsupportedMediaType {
            detail: field_detail(e),
            errors: vec![e.clone()],
        }
        .spec(),
        ServiceError::TooLarge(e) => ApiError::TooLarge {
            detail: field_detail(e),
            errors: vec![e.clone()],
        }
        .spec(),
        ServiceError::InvalidCursor => ApiError::bad_request("cursor", BAD_CURSOR).spec(),
        ServiceError::CursorKey(_) => internal(),
        ServiceError::QuotaExceeded(q) => ProblemSpec {
            status: StatusCode::TOO_MANY_REQUESTS,
            slug: "quota-exceeded",
            title: "Quota exceeded",
            detail: format!("{}.", capitalised(&q.to_string())),
            errors: vec![],
            retry_after: Some(q.retry_after),
            allow: Vec::new(),
            quota: Some(q.clone()),
        },
        ServiceError::Store(s) => by_class(s.class()),
        ServiceError::Blob(b) => by_class(b.class()),
        ServiceError::Orchestrator(o) => by_class(orchestrator_class(o)),
        // Media and step failures belong to jobs, not to API calls: reaching one here is a
        // server fault whatever its class.
        ServiceError::Media(_) | ServiceError::Step(_) => internal(),
    }
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A one-field refusal as a sentence: `size_bytes is 12 bytes; ...`.
fn field_detail(e: &FieldError) -> String {
    format!("{} {}.", e.field, e.rule)
}

fn orchestrator_class(e: &OrchestratorError) -> ErrorClass {
    match e {
        OrchestratorError::Backend { class, .. } => *class,
    }
}

fn validation(v: &ValidationErrors) -> ProblemSpec {
    let fields: Vec<&str> = v.errors.iter().map(|e| e.field.as_str()).collect();
    ProblemSpec {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        slug: "validation",
        title: "Invalid request",
        detail: format!(
            "{} field(s) failed validation: {}.",
            v.errors.len(),
            fields.join(", ")
        ),
        errors: v.errors.clone(),
        retry_after: None,
        allow: Vec::new(),
        quota: None,
    }
}

fn by_class(class: ErrorClass) -> ProblemSpec {
    match class {
        ErrorClass::Retryable => ProblemSpec {
            status: StatusCode::SERVICE_UNAVAILABLE,
            slug: "unavailable",
            title: "Service unavailable",
            detail: UNAVAILABLE_DETAIL.into(),
            errors: vec![],
            retry_after: Some(RETRY_AFTER),
            allow: Vec::new(),
            quota: None,
        },
        ErrorClass::Permanent => internal(),
    }
}

fn internal() -> ProblemSpec {
    ProblemSpec {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        slug: "internal",
        title: "Internal server error",
        detail: GENERIC_DETAIL.into(),
        errors: vec![],
        retry_after: None,
        allow: Vec::new(),
        quota: None,
    }
}

impl ProblemSpec {
    pub fn into_problem(self, instance: &str, request_id: &str) -> Problem {
        Problem {
            r#type: format!("urn:vidpipe:problem:{}", self.slug),
            title: self.title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail,
            instance: instance.to_owned(),
            request_id: request_id.to_owned(),
            errors: (!self.errors.is_empty()).then_some(self.errors),
            quota: self.quota.as_ref().map(|q| q.quota),
            limit: self.quota.as_ref().map(|q| q.limit),
            used: self.quota.as_ref().map(|q| q.used),
            requested: self.quota.as_ref().map(|q| q.requested),
        }
    }
}

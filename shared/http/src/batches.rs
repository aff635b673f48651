//! The batch routes: many generation requests in one call, each item judged on its own (created,
//! replayed by its own idempotency key, or refused with its field paths, `items[3].fps`), and the
//! batch read back to follow its jobs. Reading an item is public so the CLI's `batch` command
//! reads its rows exactly as the API reads items.

use crate::ApiState;
use crate::context::{self, IDEMPOTENCY_KEY_RULE, first_array, is_idempotency_key};
use crate::error::{ApiError, service_spec};
use crate::handlers::{Call, json_response};
use crate::json;
use crate::views::{JobLinks, JobView, Problem};
use chrono::{DateTime, Utc};
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use vidpipe_domain::GenerationRequestBody;
use vidpipe_domain::batch::{Batch, BatchCounts, BatchId, ItemError, ItemOutcome, MAX_BATCH_ITEMS};
use vidpipe_domain::error::{FieldError, echo, echo_unquoted};
use vidpipe_domain::job::{Job, JobId, JobStatus};
use vidpipe_pipeline::ServiceError;
use vidpipe_pipeline::batch::{BatchEntry, unreadable};

/// Largest batch body accepted: fifty of the largest single requests (a 2000-character prompt of
/// four-byte characters and a brand block) fit with room to spare, and it stays far under a
/// Lambda payload.
pub const MAX_BATCH_BODY_BYTES: usize = 1024 * 1024;

/// The key an item's idempotency key is given under, beside the request's own fields.
pub const ITEM_KEY_FIELD: &str = "idempotency_key";

/// A batch of generation requests.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    /// 1 to 50 requests, judged one by one in this order.
    #[schema(min_items = 1, max_items = 50)]
    pub items: Vec<BatchItemBody>,
}

/// One item: a generation request, optionally with its own idempotency key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchItemBody {
    #[serde(flatten)]
    pub request: GenerationRequestBody,
    /// 1 to 255 visible ASCII characters, scoped to the tenant like the `Idempotency-Key`
    /// header: the same key with the same request replays the first job, with another request
    /// it is refused (409) for this item alone.
    #[schema(min_length = 1, max_length = 255, pattern = r"^[!-~]+$")]
    pub idempotency_key: Option<String>,
}

/// What became of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchItemResult {
    Created,
    Replayed,
    Error,
}

/// One item of a batch: its job (created or replayed) with its status now, or why it has none.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchItemView {
    /// Position in the request's `items`, from 0.
    pub index: u32,
    pub result: BatchItemResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The job's status as of this answer (absent for refused items, and for a job no longer
    /// kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<JobStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<JobLinks>,
    /// Why the item made no job: the status and problem slug the request alone would have had,
    /// and every field it broke, addressed from the batch body (`items[3].duration_seconds`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchLinks {
    #[serde(rename = "self")]
    pub self_: String,
}

/// A batch and each of its items, in request order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchView {
    pub batch_id: String,
    pub created_at: DateTime<Utc>,
    pub counts: BatchCounts,
    pub items: Vec<BatchItemView>,
    pub links: BatchLinks,
}

impl BatchView {
    /// The view of `batch`, with `jobs[i]` the job of item `i` as it stands (if it has one).
    pub fn new(batch: &Batch, jobs: &[Option<Job>], base: &str) -> Self {
        let items = batch
            .items
            .iter()
            .zip(jobs.iter().chain(std::iter::repeat(&None)))
            .map(|(item, job)| {
                let job_view = job.as_ref().map(|j| JobView::new(j, base));
                let (result, error) = match &item.outcome {
                    ItemOutcome::Created { .. } => (BatchItemResult::Created, None),
                    ItemOutcome::Replayed { .. } => (BatchItemResult::Replayed, None),
                    ItemOutcome::Error { error } => (BatchItemResult::Error, Some(error.clone())),
                };
                BatchItemView {
                    index: item.index,
                    result,
                    idempotency_key: item.idempotency_key.clone(),
                    job_id: item.job_id().map(ToString::to_string),
                    status: job_view.as_ref().map(|v| v.status),
                    progress_percent: job_view.as_ref().map(|v| v.progress_percent),
                    links: job_view.map(|v| v.links),
                    error,
                }
            })
            .collect();
        BatchView {
            batch_id: batch.id.to_string(),
            created_at: batch.created_at,
            counts: batch.counts(),
            items,
            links: BatchLinks {
                self_: batch_url(base, &batch.id),
            },
        }
    }
}

fn batch_url(base: &str, id: &BatchId) -> String {
    format!("{base}/v1/generations/batches/{id}")
}

/// The batch body's items as entries to submit. The body's own shape (an object with `items`,
/// an array of 1 to 50) is refused whole, naming the field; each item's shape is judged alone.
pub fn read_batch(value: &Value) -> Result<Vec<BatchEntry>, ApiError> {
    let Value::Object(fields) = value else {
        return Err(ApiError::invalid(
            "body",
            format!("must be an object with items (got {})", kind_of(value)),
        ));
    };
    if let Some(other) = fields.keys().find(|k| k.as_str() != "items") {
        return Err(ApiError::invalid(
            &echo_unquoted(other),
            "is not a field here; the fields are items",
        ));
    }
    let items = match fields.get("items") {
        None | Some(Value::Null) => return Err(ApiError::invalid("items", "is required")),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(ApiError::invalid(
                "items",
                format!(
                    "must be an array of generation requests (got {})",
                    kind_of(other)
                ),
            ));
        }
    };
    if items.is_empty() {
        return Err(ApiError::invalid("items", "must hold at least 1 request"));
    }
    if items.len() > MAX_BATCH_ITEMS {
        return Err(ApiError::invalid(
            "items",
            format!(
                "must hold at most {MAX_BATCH_ITEMS} requests (got {})",
                items.len()
            ),
        ));
    }
    Ok(items
        .iter()
        .enumerate()
        .map(|(index, item)| read_item(index, item))
        .collect())
}

/// One item as a request and its idempotency key, or every reason it is not one (field paths
/// under `items[index]`). Business rules (ranges, assets, quotas) are the service's.
pub fn read_item(index: usize, item: &Value) -> BatchEntry {
    let Value::Object(fields) = item else {
        return BatchEntry::Unreadable(unreadable(
            index,
            vec![FieldError::new(
                "body",
                format!("must be an object (got {})", kind_of(item)),
            )],
        ));
    };
    let mut request = fields.clone();
    let mut errors = Vec::new();
    let idempotency_key = match request.remove(ITEM_KEY_FIELD) {
        None | Some(Value::Null) => None,
        Some(Value::String(key)) if is_idempotency_key(&key) => Some(key),
        Some(_) => {
            errors.push(FieldError::new(ITEM_KEY_FIELD, IDEMPOTENCY_KEY_RULE));
            None
        }
    };
    let request = Value::Object(request);
    let body = match first_array(&request, String::new()) {
        Some(path) => {
            errors.push(FieldError::new(
                echo_unquoted(&path),
                "must not be an array: no field of a request takes a list",
            ));
            None
        }
        None => match json::typed::<GenerationRequestBody>(&request) {
            Ok(body) => Some(body),
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };
    match body {
        Some(body) if errors.is_empty() => BatchEntry::Read {
            body: Box::new(body),
            idempotency_key,
        },
        _ => BatchEntry::Unreadable(unreadable(index, errors)),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A refused item as the API would have answered the request alone.
pub fn item_error(e: &ServiceError) -> ItemError {
    let spec = service_spec(e);
    ItemError {
        status: spec.status.as_u16(),
        kind: spec.slug.to_owned(),
        detail: spec.detail,
        errors: spec.errors,
        retry_after_seconds: spec.retry_after.map(|d| d.as_secs()),
    }
}

#[utoipa::path(
    post,
    path = "/v1/generations/batch",
    tag = "generations",
    operation_id = "submitGenerationBatch",
    summary = "Start up to 50 generations at once",
    description = "Each item is a generation request (the body of `POST /v1/generations`) with an optional `idempotency_key` of its own, and is judged alone, in order: validated, its assets checked, the tenant's quotas claimed, its job recorded and started. One item's refusal refuses nothing else. Each item's `result` is `created`, `replayed` (its key made a job before, for the same request) or `error`, whose `errors` name fields from the batch body's root (`items[3].duration_seconds`). Under a quota the earliest items are admitted, and a refused item says when to try it again (`retry_after_seconds`). The `Idempotency-Key` header is not read here: each item carries its own. The batch is recorded and can be read back at its `links.self`.",
    request_body(content = BatchBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The batch, every item with its result.", body = BatchView,
            headers(("Location" = String, description = "The batch's URL."))),
        (status = 400, description = "Malformed JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not application/json.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The body is not an object with `items`, an array of 1 to 50 requests; the field is named in `errors`. Nothing was submitted.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn submit_generation_batch(
    state: &ApiState,
    call: &Call<'_>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let value = context::json_document(req, MAX_BATCH_BODY_BYTES)?;
    let entries = read_batch(&value)?;
    let submitted = state
        .service
        .submit_batch(call.tenant, entries, &item_error)
        .await?;
    let view = BatchView::new(&submitted.batch, &submitted.jobs, call.base);
    let mut response = json_response(StatusCode::CREATED, &view)?;
    let location = HeaderValue::from_str(&view.links.self_)
        .map_err(|e| ApiError::Internal(format!("header value: {e}")))?;
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/v1/generations/batches/{id}",
    tag = "generations",
    operation_id = "getGenerationBatch",
    summary = "A batch's items, with each job's status now",
    params(("id" = String, Path, description = "Batch id (`bat_` and 32 hex digits).")),
    responses(
        (status = 200, description = "The batch.", body = BatchView),
        (status = 404, description = "No such batch for this tenant.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_generation_batch(
    state: &ApiState,
    call: &Call<'_>,
) -> Result<Response<Body>, ApiError> {
    let raw = call.id.unwrap_or_default();
    let not_found = || ApiError::NotFound(format!("No batch {}.", echo(raw)));
    let id = BatchId::parse(raw).map_err(|_| not_found())?;
    let batch = state
        .service
        .get_batch(call.tenant, &id)
        .await?
        .ok_or_else(not_found)?;
    let mut jobs = Vec::with_capacity(batch.items.len());
    for item in &batch.items {
        jobs.push(match item.job_id() {
            Some(job) => job_now(state, call.tenant, job).await?,
            None => None,
        });
    }
    json_response(StatusCode::OK, &BatchView::new(&batch, &jobs, call.base))
}

async fn job_now(state: &ApiState, tenant: &str, id: &JobId) -> Result<Option<Job>, ApiError> {
    Ok(state.service.get(tenant, id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(entry: &BatchEntry) -> Vec<(String, String)> {
        match entry {
            BatchEntry::Unreadable(e) => e
                .errors
                .iter()
                .map(|f| (f.field.clone(), f.rule.clone()))
                .collect(),
            BatchEntry::Read { .. } => vec![],
        }
    }

    #[test]
    fn items_are_read_alone_with_paths_from_the_batch_root() {
        let entries = read_batch(&json!({"items": [
            {"prompt": "A", "duration_seconds": 10, "aspect_ratio": "16:9", "idempotency_key": "k-0"},
            {"prompt": "B", "duration_seconds": "ten"},
            "not an item",
            {"prompt": "C", "brand": {"logo": {"opacity": [1]}}},
            {"prompt": "D", "idempotency_key": ""},
            {"prompt": "E", "colour": "red"},
        ]}))
        .expect("a well-formed batch");
        assert_eq!(entries.len(), 6);
        match &entries[0] {
            BatchEntry::Read {
                body,
                idempotency_key,
            } => {
                assert_eq!(body.prompt.as_deref(), Some("A"));
                assert_eq!(idempotency_key.as_deref(), Some("k-0"));
            }
            other => panic!("item 0 reads: {other:?}"),
        }
        assert_eq!(
            errors(&entries[1]),
            vec![(
                "items[1].duration_seconds".into(),
                "must be a number (got a string)".into()
            )]
        );
        assert_eq!(errors(&entries[2])[0].0, "items[2]");
        assert_eq!(errors(&entries[3])[0].0, "items[3].brand.logo.opacity");
        assert_eq!(
            errors(&entries[4]),
            vec![(
                "items[4].idempotency_key".into(),
                IDEMPOTENCY_KEY_RULE.into()
            )]
        );
        assert_eq!(errors(&entries[5])[0].0, "items[5].colour");
    }

    #[test]
    fn the_batch_shape_is_refused_whole_naming_the_field() {
        let field = |v: Value| match read_batch(&v) {
            Err(ApiError::Invalid(v)) => v.errors[0].field.clone(),
            other => panic!("{v}: {other:?}"),
        };
        let many: Vec<Value> = (0..=MAX_BATCH_ITEMS).map(|_| json!({})).collect();
        assert_eq!(field(json!({"items": many})), "items");
        assert_eq!(field(json!({"items": {"prompt": "x"}})), "items");
        assert_eq!(field(json!({"items": []})), "items");
        assert_eq!(field(json!({})), "items");
        assert_eq!(field(json!([{"prompt": "x"}])), "body");
        assert_eq!(field(json!({"items": [{}], "extra": 1})), "extra");
        let full: Vec<Value> = (0..MAX_BATCH_ITEMS).map(|_| json!({})).collect();
        assert_eq!(
            read_batch(&json!({ "items": full })).map(|e| e.len()).ok(),
            Some(50)
        );
    }
}

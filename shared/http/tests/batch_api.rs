//! The batch routes end to end in process: HTTP API v2 events through `vidpipe_http::handle`
//! against the embedded stack (SQLite jobs, quotas and batches). Jobs are counted by listing them
//! back, so an item that claims a job must really have made one. The provider never finishes a
//! clip, so every job stays live and nothing renders.

use async_trait::async_trait;
use lambda_http::Request;
use lambda_http::http::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use vidpipe_domain::media::ClipSpec;
use vidpipe_domain::ports::{ClipProvider, ProviderError};
use vidpipe_domain::quota::QuotaLimits;
use vidpipe_http::ApiState;
use vidpipe_pipeline::local::{LocalOptions, LocalStack};
use vidpipe_pipeline::policy::RetryPolicy;
use vidpipe_pipeline::{EmbeddedOrchestrator, RunnerConfig, Service};

const ALICE: &str = "alice";
const BOB: &str = "bob";

/// Never finishes a clip, so a job stays live for as long as a test needs.
struct Stalled;

#[async_trait]
impl ClipProvider for Stalled {
    fn name(&self) -> &str {
        "stalled"
    }
    async fn generate(&self, _: &ClipSpec, _: &Path) -> Result<(), ProviderError> {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Err(ProviderError::Unavailable("stalled".into()))
    }
}

struct Api {
    state: ApiState,
    _stack: LocalStack,
    _home: TempDir,
}

async fn api(limits: QuotaLimits) -> Api {
    let home = tempfile::tempdir().unwrap();
    let config = RunnerConfig {
        max_concurrency: 2,
        clip_retry: RetryPolicy::immediate(2),
        step_retry: RetryPolicy::immediate(2),
    };
    let options = LocalOptions {
        home: Some(home.path().to_path_buf()),
        max_concurrency: 2,
        ..LocalOptions::default()
    };
    let stack = LocalStack::open_with(options, Some(Arc::new(Stalled)), config)
        .await
        .expect("open local stack");
    let orchestrator = Arc::new(EmbeddedOrchestrator::new(stack.runner().clone()));
    let batches = stack
        .service()
        .batches
        .clone()
        .expect("the stack records batches");
    let service = Service::new(stack.deps().clone(), orchestrator)
        .with_quota_limits(limits)
        .with_batches(batches);
    Api {
        state: ApiState {
            service: Arc::new(service),
            uploads: Arc::new(NoUploads),
            processing: None,
            base_path: String::new(),
            trust_tenant_header: false,
        },
        _stack: stack,
        _home: home,
    }
}

struct NoUploads;

#[async_trait]
impl vidpipe_domain::ports::UploadSigner for NoUploads {
    async fn presign_put(
        &self,
        key: &str,
        _: &str,
        _: u64,
        _: Duration,
    ) -> Result<vidpipe_domain::ports::SignedUpload, vidpipe_domain::ports::BlobError> {
        Err(vidpipe_domain::ports::BlobError::InvalidKey(key.into()))
    }
}

/// One HTTP API (payload 2.0) event, as API Gateway delivers it, for `tenant`. `target` is the
/// path and, after a `?`, the query.
fn request(method: Method, target: &str, tenant: &str, body: Option<&str>) -> Request {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": "api.example.test", "content-type": "application/json"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api-id",
            "domainName": "api.example.test",
            "domainPrefix": "api",
            "http": {"method": method.as_str(), "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "192.0.2.1", "userAgent": "batch-test"},
            "requestId": "gw-req-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1767225600000u64,
            "authorizer": {"jwt": {"claims": {"sub": tenant}, "scopes": null}}
        },
        "body": body,
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("a valid HTTP API v2 event")
}

struct Reply {
    status: u16,
    location: Option<String>,
    content_type: String,
    json: Value,
}

async fn send(api: &Api, method: Method, path: &str, tenant: &str, body: Option<&Value>) -> Reply {
    let text = body.map(Value::to_string);
    let req = request(method, path, tenant, text.as_deref());
    let response = vidpipe_http::handle(&api.state, req).await;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Reply {
        status: response.status().as_u16(),
        location: header("location"),
        content_type: header("content-type").unwrap_or_default(),
        json: serde_json::from_slice(response.body().as_ref()).expect("a JSON body"),
    }
}

async fn post_batch(api: &Api, tenant: &str, items: Vec<Value>) -> Reply {
    let body = json!({ "items": items });
    send(
        api,
        Method::POST,
        "/v1/generations/batch",
        tenant,
        Some(&body),
    )
    .await
}

/// A request that renders small and fast, were it rendered.
fn item(n: usize) -> Value {
    json!({
        "prompt": format!("Scene number {n}. A lighthouse at dusk."),
        "duration_seconds": 5,
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "clip_count": 1,
        "seed": n
    })
}

/// The tenant's jobs, as the list route gives them.
async fn job_ids(api: &Api, tenant: &str) -> Vec<String> {
    let r = send(api, Method::GET, "/v1/generations?limit=100", tenant, None).await;
    assert_eq!(r.status, 200, "{}", r.json);
    let mut ids: Vec<String> = r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn fields(item: &Value) -> Vec<String> {
    item["error"]["errors"]
        .as_array()
        .map(|es| {
            es.iter()
                .map(|e| e["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn twenty_items_with_three_invalid_make_seventeen_jobs_and_three_itemised_errors() {
    let api = api(QuotaLimits::UNLIMITED).await;
    let mut items: Vec<Value> = (0..20).map(item).collect();
    items[3]["duration_seconds"] = json!(4);
    items[8]["aspect_ratio"] = json!("2:1");
    items[15]["fps"] = json!("thirty");
    let r = post_batch(&api, ALICE, items).await;
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.content_type, "application/json");
    let batch_id = r.json["batch_id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.location.as_deref(),
        Some(format!("https://api.example.test/v1/generations/batches/{batch_id}").as_str())
    );
    assert_eq!(
        r.json["counts"],
        json!({"created": 17, "replayed": 0, "failed": 3})
    );
    let answered = r.json["items"].as_array().unwrap();
    assert_eq!(answered.len(), 20);
    let expected_errors = [
        (3, "items[3].duration_seconds"),
        (8, "items[8].aspect_ratio"),
        (15, "items[15].fps"),
    ];
    for (i, it) in answered.iter().enumerate() {
        assert_eq!(it["index"], i);
        match expected_errors.iter().find(|(at, _)| *at == i) {
            Some((_, field)) => {
                assert_eq!(it["result"], "error", "{it}");
                assert_eq!(it["error"]["status"], 422, "{it}");
                assert_eq!(it["error"]["kind"], "validation", "{it}");
                assert_eq!(fields(it), vec![field.to_string()], "{it}");
                assert!(it.get("job_id").is_none(), "{it}");
            }
            None => {
                assert_eq!(it["result"], "created", "{it}");
                assert!(it["job_id"].as_str().unwrap().starts_with("job_"));
                assert!(it["status"].is_string(), "{it}");
                assert!(
                    it["links"]["self"]
                        .as_str()
                        .unwrap()
                        .contains("/v1/generations/job_")
                );
            }
        }
    }
    // Seventeen jobs exist, exactly the ones the items name.
    let mut created: Vec<String> = answered
        .iter()
        .filter_map(|it| it["job_id"].as_str().map(str::to_owned))
        .collect();
    created.sort();
    assert_eq!(created.len(), 17);
    assert_eq!(job_ids(&api, ALICE).await, created);

    // The batch reads back with the same items and each job's status now.
    let path = format!("/v1/generations/batches/{batch_id}");
    let read = send(&api, Method::GET, &path, ALICE, None).await;
    assert_eq!(read.status, 200, "{}", read.json);
    assert_eq!(read.json["counts"], r.json["counts"]);
    let items = read.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 20);
    for (now, then) in items.iter().zip(answered) {
        assert_eq!(now["job_id"], then["job_id"]);
        assert_eq!(now["result"], then["result"]);
        assert_eq!(now["error"], then["error"]);
        if then["job_id"].is_string() {
            assert!(
                ["queued", "planning", "generating"].contains(&now["status"].as_str().unwrap()),
                "{now}"
            );
        }
    }
    // Another tenant's batch is not found, like an unknown one.
    let other = send(&api, Method::GET, &path, BOB, None).await;
    assert_eq!(other.status, 404, "{}", other.json);
    let unknown = send(
        &api,
        Method::GET,
        "/v1/generations/batches/bat_0190c5d37e1a7b3c9d4e5f6a7b8c9d0e",
        ALICE,
        None,
    )
    .await;
    assert_eq!(unknown.status, 404);
    let garbage = send(
        &api,
        Method::GET,
        "/v1/generations/batches/nope",
        ALICE,
        None,
    )
    .await;
    assert_eq!(garbage.status, 404);
}

#[tokio::test]
async fn items_with_their_own_idempotency_keys_replay_their_first_job() {
    let api = api(QuotaLimits::UNLIMITED).await;
    let keyed = |n: usize, key: &str| {
        let mut v = item(n);
        v["idempotency_key"] = json!(key);
        v
    };
    let first = post_batch(&api, ALICE, vec![keyed(0, "row-0"), keyed(1, "row-1")]).await;
    assert_eq!(first.status, 201, "{}", first.json);
    assert_eq!(
        first.json["counts"],
        json!({"created": 2, "replayed": 0, "failed": 0})
    );
    let first_ids: Vec<&Value> = first.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["job_id"])
        .collect();

    // The same two again (one spelling out a default), one key reused for another request, and
    // a new one.
    let mut same_with_default = keyed(1, "row-1");
    same_with_default["fps"] = json!(30);
    let second = post_batch(
        &api,
        ALICE,
        vec![
            keyed(0, "row-0"),
            same_with_default,
            keyed(7, "row-0"),
            keyed(2, "row-2"),
        ],
    )
    .await;
    assert_eq!(second.status, 201, "{}", second.json);
    let items = second.json["items"].as_array().unwrap();
    assert_eq!(items[0]["result"], "replayed");
    assert_eq!(&items[0]["job_id"], first_ids[0]);
    assert_eq!(items[0]["idempotency_key"], "row-0");
    assert_eq!(items[1]["result"], "replayed");
    assert_eq!(&items[1]["job_id"], first_ids[1]);
    assert_eq!(items[2]["result"], "error");
    assert_eq!(items[2]["error"]["status"], 409, "{}", items[2]);
    assert_eq!(items[3]["result"], "created");
    assert_eq!(
        second.json["counts"],
        json!({"created": 1, "replayed": 2, "failed": 1})
    );
    // Three jobs in all: replays and the refused reuse made none.
    assert_eq!(job_ids(&api, ALICE).await.len(), 3);
    // Keys are the tenant's: Bob's row-0 is a job of his own.
    let bob = post_batch(&api, BOB, vec![keyed(0, "row-0")]).await;
    assert_eq!(bob.json["items"][0]["result"], "created", "{}", bob.json);
    assert_ne!(&bob.json["items"][0]["job_id"], first_ids[0]);
}

#[tokio::test]
async fn a_batch_over_fifty_or_not_an_array_is_refused_whole_naming_the_field() {
    let api = api(QuotaLimits::UNLIMITED).await;
    let too_many = post_batch(&api, ALICE, (0..51).map(item).collect()).await;
    assert_eq!(too_many.status, 422, "{}", too_many.json);
    assert_eq!(too_many.content_type, "application/problem+json");
    assert_eq!(too_many.json["errors"][0]["field"], "items");
    assert!(
        too_many.json["errors"][0]["rule"]
            .as_str()
            .unwrap()
            .contains("at most 50"),
        "{}",
        too_many.json
    );
    let cases = [
        (json!({"items": item(0)}), "items"),
        (json!({"items": "all of them"}), "items"),
        (json!({"items": []}), "items"),
        (json!({}), "items"),
        (json!([item(0)]), "body"),
        (json!({"items": [item(0)], "mode": "fast"}), "mode"),
    ];
    for (body, field) in cases {
        let r = send(
            &api,
            Method::POST,
            "/v1/generations/batch",
            ALICE,
            Some(&body),
        )
        .await;
        assert_eq!(r.status, 422, "{body}: {}", r.json);
        assert_eq!(r.json["errors"][0]["field"], field, "{body}: {}", r.json);
    }
    // Exactly fifty is a batch.
    let fifty = post_batch(&api, ALICE, (0..50).map(item).collect()).await;
    assert_eq!(fifty.status, 201, "{}", fifty.json);
    assert_eq!(fifty.json["counts"]["created"], 50);
    // Only the fifty were made: the refused bodies submitted nothing.
    assert_eq!(job_ids(&api, ALICE).await.len(), 50);
}

#[tokio::test]
async fn quotas_apply_per_item_and_the_earliest_items_are_admitted() {
    let api = api(QuotaLimits::from_settings(2, 0)).await;
    let r = post_batch(&api, ALICE, (0..4).map(item).collect()).await;
    assert_eq!(r.status, 201, "{}", r.json);
    let results: Vec<&str> = r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["created", "created", "error", "error"]);
    for refused in &r.json["items"].as_array().unwrap()[2..] {
        assert_eq!(refused["error"]["status"], 429, "{refused}");
        assert_eq!(refused["error"]["kind"], "quota-exceeded", "{refused}");
        assert_eq!(refused["error"]["retry_after_seconds"], 30, "{refused}");
    }
    assert_eq!(job_ids(&api, ALICE).await.len(), 2);
}

//! `POST /v1/compositions` end to end in process: HTTP API v2 events through
//! `vidpipe_http::handle` against the embedded stack. Every invalid timeline of a table answers
//! 422 naming its JSON path and creates nothing; a dry run answers its prediction; a render
//! answers where the video is, and the video is as long as the dry run said.

use async_trait::async_trait;
use lambda_http::Request;
use lambda_http::http::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use vidpipe_domain::quota::QuotaLimits;
use vidpipe_http::ApiState;
use vidpipe_pipeline::local::{LocalOptions, LocalStack};
use vidpipe_pipeline::{EmbeddedOrchestrator, Service};

const ALICE: &str = "alice";

struct Api {
    state: ApiState,
    stack: LocalStack,
    home: TempDir,
}

async fn api() -> Api {
    api_with(QuotaLimits::UNLIMITED).await
}

async fn api_with(quota_limits: QuotaLimits) -> Api {
    let home = tempfile::tempdir().unwrap();
    let stack = LocalStack::open(LocalOptions {
        home: Some(home.path().to_path_buf()),
        max_concurrency: 1,
        quota_limits,
        ..LocalOptions::default()
    })
    .await
    .expect("open local stack");
    let orchestrator = Arc::new(EmbeddedOrchestrator::new(stack.runner().clone()));
    let service = Service::new(stack.deps().clone(), orchestrator).with_quota_limits(quota_limits);
    Api {
        state: ApiState {
            service: Arc::new(service),
            uploads: Arc::new(NoUploads),
            processing: None,
            base_path: String::new(),
            trust_tenant_header: false,
        },
        stack,
        home,
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

fn request(target: &str, tenant: &str, body: &str) -> Request {
    request_as(Method::POST, target, tenant, body)
}

fn request_as(method: Method, target: &str, tenant: &str, body: &str) -> Request {
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
                     "sourceIp": "192.0.2.1", "userAgent": "compositions-test"},
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

async fn post(api: &Api, target: &str, body: &Value) -> (u16, String, Value) {
    let response =
        vidpipe_http::handle(&api.state, request(target, ALICE, &body.to_string())).await;
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let json = serde_json::from_slice(response.body().as_ref()).expect("a JSON body");
    (response.status().as_u16(), content_type, json)
}

async fn get(api: &Api, path: &str, tenant: &str) -> (u16, Value) {
    let response =
        vidpipe_http::handle(&api.state, request_as(Method::GET, path, tenant, "")).await;
    let json = serde_json::from_slice(response.body().as_ref()).expect("a JSON body");
    (response.status().as_u16(), json)
}

fn valid() -> Value {
    json!({
        "output": {"aspect": "16:9", "resolution": "360p", "fps": 25},
        "tracks": [
            {"clips": [{"asset": {"type": "title", "text": "Hello"}, "start": 0, "length": 1}]},
            {"clips": [
                {"asset": {"type": "generate", "prompt": "a red kite"}, "start": 0, "length": 1.2},
                {"asset": {"type": "title", "text": "Bye"}, "start": 1.2, "length": 0.8,
                 "transition": {"in": "fade", "duration": 0.2}}
            ]}
        ]
    })
}

#[tokio::test]
async fn invalid_timelines_answer_422_naming_their_json_paths() {
    let api = api().await;
    type Edit = fn(&mut Value);
    let cases: Vec<(&str, Edit)> = vec![
        ("output.aspect", |d| d["output"]["aspect"] = json!("2:1")),
        ("output.fps", |d| d["output"]["fps"] = json!(29.97)),
        ("tracks", |d| {
            d.as_object_mut().unwrap().remove("tracks");
        }),
        ("tracks[1].clips[1].length", |d| {
            d["tracks"][1]["clips"][1]["length"] = json!(0)
        }),
        ("tracks[1].clips[1].start", |d| {
            d["tracks"][1]["clips"][1]["start"] = json!(0.5)
        }),
        ("tracks[1].clips[0].asset.prompt", |d| {
            d["tracks"][1]["clips"][0]["asset"]["prompt"] = json!(" ")
        }),
        ("tracks[1].clips[1].transition.out", |d| {
            d["tracks"][1]["clips"][1]["transition"]["out"] = json!("spiral")
        }),
        ("tracks[0].clips[0].fit", |d| {
            d["tracks"][0]["clips"][0]["fit"] = json!("fill")
        }),
        ("tracks[0].clips[0].asset.asset_id", |d| {
            d["tracks"][0]["clips"][0]["asset"] =
                json!({"type": "image", "asset_id": "ast_0123456789abcdef0123456789abcdef"});
        }),
        (
            "soundtrack.asset_id",
            |d| d["soundtrack"] = json!({"asset_id": "ast_0123456789abcdef0123456789abcdef"}),
        ),
        (
            "captions.cues[0].length",
            |d| d["captions"] = json!({"cues": [{"text": "x", "start": 0, "length": -1}]}),
        ),
        ("tracks", |d| {
            let layer = json!({"clips": [{"asset": {"type": "title", "text": "x"}, "start": 0, "length": 1}]});
            d["tracks"] = Value::Array(vec![layer; 7]);
        }),
    ];
    for (i, (path, edit)) in cases.into_iter().enumerate() {
        let mut doc = valid();
        edit(&mut doc);
        for target in ["/v1/compositions", "/v1/compositions?dry_run=true"] {
            let (status, content_type, body) = post(&api, target, &doc).await;
            assert_eq!(status, 422, "case {i} ({path}) at {target}: {body}");
            assert_eq!(content_type, "application/problem+json");
            let fields: Vec<&str> = body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            assert!(fields.contains(&path), "case {i}: {path} not in {fields:?}");
        }
    }
    // Nothing was rendered or recorded along the way.
    assert!(!api.home.path().join("blobs/compositions").exists());
    let jobs = api.stack.deps().jobs.list(ALICE, 10, None).await.unwrap();
    assert!(jobs.jobs.is_empty());
}

#[tokio::test]
async fn a_dry_run_predicts_and_a_render_delivers_that_length() {
    let api = api().await;
    let (status, _, plan) = post(&api, "/v1/compositions?dry_run=true", &valid()).await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["dry_run"], json!(true));
    assert_eq!(plan["total_frames"], json!(50));
    assert_eq!(plan["route"], json!("lambda"));
    assert_eq!(plan["provider_calls"][0]["cache_hit"], json!(false));
    assert_eq!(plan["timeline"]["output"]["width"], json!(640));
    assert!(!api.home.path().join("blobs/compositions").exists());

    let (status, _, done) = post(&api, "/v1/compositions", &valid()).await;
    assert_eq!(status, 201, "{done}");
    assert_eq!(done["status"], json!("completed"));
    let id = done["composition_id"].as_str().unwrap();
    let video = api.stack.blob_path(&vidpipe_domain::keys::final_video(
        &serde_json::from_value(json!(id)).unwrap(),
    ));
    let frames = vidpipe_testkit::probe(&video).video_frames;
    assert_eq!(frames, Some(50));
    let (_, _, again) = post(&api, "/v1/compositions?dry_run=true", &valid()).await;
    assert_eq!(again["provider_calls"][0]["cache_hit"], json!(true));

    // Recorded: read back by its id, by its tenant only.
    let self_link = done["links"]["self"].as_str().unwrap();
    assert!(
        self_link.ends_with(&format!("/v1/compositions/{id}")),
        "{done}"
    );
    let (status, got) = get(&api, &format!("/v1/compositions/{id}"), ALICE).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["status"], json!("completed"));
    assert_eq!(got["route"], json!("lambda"));
    assert_eq!(got["error"], Value::Null);
    assert!(
        (got["duration_seconds"].as_f64().unwrap() - 2.0).abs() < 0.05,
        "{got}"
    );
    let calls = got["provider_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{got}");
    assert_eq!(calls[0]["path"], json!("tracks[1].clips[0]"));
    assert_eq!(calls[0]["provider"], json!("procedural"));
    assert_eq!(
        calls[0]["cache_hit"],
        json!(false),
        "made, not cached, when rendered"
    );
    assert!(
        got["links"]["final"]
            .as_str()
            .unwrap()
            .contains("final.mp4"),
        "{got}"
    );
    assert!(got["links"]["thumbnail"].as_str().is_some(), "{got}");
    for (path, tenant) in [
        (format!("/v1/compositions/{id}"), "bob"),
        (
            "/v1/compositions/cmp_0000000000000000000000000000abcd".to_owned(),
            ALICE,
        ),
        ("/v1/compositions/not-an-id".to_owned(), ALICE),
    ] {
        let (status, problem) = get(&api, &path, tenant).await;
        assert_eq!(status, 404, "{path} as {tenant}: {problem}");
    }

    let (status, _, bad) = post(&api, "/v1/compositions?dry_run=maybe", &valid()).await;
    assert_eq!(status, 400, "{bad}");
}

/// A render makes output as a generation does, so it is counted like one: its length charged to
/// the day, its slot freed when it ends. Over the budget it is refused with the quota problem
/// and nothing is recorded; a dry run, which renders nothing, is still answered.
#[tokio::test]
async fn a_render_is_counted_in_the_tenants_quota_and_a_dry_run_is_not() {
    let api = api_with(QuotaLimits {
        concurrent_jobs: Some(1),
        daily_output_seconds: Some(3),
    })
    .await;
    let (status, _, done) = post(&api, "/v1/compositions", &valid()).await;
    assert_eq!(status, 201, "{done}");
    let quotas = api.stack.deps().quotas.clone().expect("quotas are counted");
    let usage = quotas
        .usage(ALICE, chrono::Utc::now().date_naive())
        .await
        .unwrap();
    assert_eq!((usage.active_jobs, usage.output_seconds), (0, 2));

    let renders = || {
        std::fs::read_dir(api.home.path().join("blobs/compositions"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let before = renders();
    let (status, content_type, refused) = post(&api, "/v1/compositions", &valid()).await;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(refused["quota"], json!("daily_output_minutes"), "{refused}");
    assert_eq!(renders(), before, "a refused render stores nothing");
    let (status, _, plan) = post(&api, "/v1/compositions?dry_run=true", &valid()).await;
    assert_eq!(status, 200, "{plan}");
}

//! The API end to end in process: HTTP API v2 events (as API Gateway sends them) go through
//! `vidpipe_http::handle` against the embedded stack, and the responses are judged as a client
//! would judge them: status, headers and JSON body. The OpenAPI document is checked against the
//! checked-in file and the route table.

use async_trait::async_trait;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Context, Request, RequestExt, Response};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use vidpipe_domain::asset::AssetId;
use vidpipe_domain::job::{JobId, JobStatus};
use vidpipe_domain::media::ClipSpec;
use vidpipe_domain::ports::{BlobError, ClipProvider, ProviderError, SignedUpload, UploadSigner};
use vidpipe_http::ApiState;
use vidpipe_http::routes::ROUTES;
use vidpipe_pipeline::local::{LocalOptions, LocalStack};
use vidpipe_pipeline::policy::RetryPolicy;
use vidpipe_pipeline::{EmbeddedOrchestrator, RunnerConfig, Service};

const ALICE: &str = "alice";
const BOB: &str = "bob";

// ---------------------------------------------------------------------------------------------
// Harness

/// Signs nothing: the URL just echoes what it was asked for, so a test can check the key, the
/// content type and the lifetime the API chose.
struct EchoSigner;

#[async_trait]
impl UploadSigner for EchoSigner {
    async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        _size_bytes: u64,
        ttl: Duration,
    ) -> Result<SignedUpload, BlobError> {
        Ok(SignedUpload {
            url: format!(
                "https://uploads.example.test/{key}?content-type={content_type}&ttl={}",
                ttl.as_secs()
            ),
            headers: vec![("Content-Type".into(), content_type.into())],
        })
    }
}

/// Never finishes a clip, so a job stays live (generating) for as long as a test needs.
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
    /// The orchestrator the service starts jobs on, kept to wait for a run's end.
    orchestrator: Arc<EmbeddedOrchestrator>,
    _stack: LocalStack,
    _home: TempDir,
}

/// An API over a fresh embedded stack. `provider` `None` renders real clips procedurally.
async fn api_with(provider: Option<Arc<dyn ClipProvider>>, trust_tenant_header: bool) -> Api {
    let home = tempfile::tempdir().unwrap();
    let config = RunnerConfig {
        max_concurrency: 2,
        clip_retry: RetryPolicy::immediate(2),
        step_retry: RetryPolicy::immediate(2),
    };
    let options = LocalOptions {
        home: Some(home.path().to_path_buf()),
        ffmpeg_dir: None,
        max_concurrency: 2,
        ..LocalOptions::default()
    };
    let stack = LocalStack::open_with(options, provider, config)
        .await
        .expect("open local stack");
    // LocalStack owns its Service by value; the API wants an Arc, so build one over the same
    // deps and runner, with an orchestrator the test can wait on.
    let orchestrator = Arc::new(EmbeddedOrchestrator::new(stack.runner().clone()));
    let service = Arc::new(Service::new(stack.deps().clone(), orchestrator.clone()));
    let state = ApiState {
        service,
        uploads: Arc::new(EchoSigner),
        processing: None,
        base_path: String::new(),
        trust_tenant_header,
    };
    Api {
        state,
        orchestrator,
        _stack: stack,
        _home: home,
    }
}

async fn api() -> Api {
    api_with(Some(Arc::new(Stalled)), false).await
}

/// One HTTP API (payload 2.0) event, shaped as API Gateway delivers it.
struct Event {
    method: Method,
    path: String,
    query: String,
    body: Option<String>,
    content_type: Option<String>,
    claims: Option<Value>,
    headers: Vec<(String, String)>,
    stage: String,
    /// Made by `cargo lambda watch` from a function-URL request to this function.
    watch: Option<String>,
}

fn event(method: Method, path: &str) -> Event {
    Event {
        method,
        path: path.to_owned(),
        query: String::new(),
        body: None,
        content_type: None,
        claims: Some(json!({ "sub": ALICE })),
        headers: Vec::new(),
        stage: "$default".into(),
        watch: None,
    }
}

impl Event {
    fn tenant(mut self, sub: &str) -> Self {
        self.claims = Some(json!({ "sub": sub }));
        self
    }
    fn claims(mut self, claims: Option<Value>) -> Self {
        self.claims = claims;
        self
    }
    fn json(mut self, body: &Value) -> Self {
        self.body = Some(body.to_string());
        self.content_type = Some("application/json".into());
        self
    }
    fn raw(mut self, body: &str, content_type: Option<&str>) -> Self {
        self.body = Some(body.to_owned());
        self.content_type = content_type.map(str::to_owned);
        self
    }
    fn query(mut self, query: &str) -> Self {
        self.query = query.to_owned();
        self
    }
    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    fn stage(mut self, stage: &str) -> Self {
        self.stage = stage.to_owned();
        self
    }
    /// The event `cargo lambda watch` makes for `http://127.0.0.1:9000/lambda-url/{function}/...`.
    fn via_watch(mut self, function: &str) -> Self {
        self.watch = Some(function.to_owned());
        self.headers.push(("host".into(), "127.0.0.1:9000".into()));
        self
    }

    fn request(self) -> Request {
        let mut headers = serde_json::Map::new();
        headers.insert("host".into(), "api.example.test".into());
        if let Some(ct) = &self.content_type {
            headers.insert("content-type".into(), ct.clone().into());
        }
        for (k, v) in &self.headers {
            headers.insert(k.to_lowercase(), v.clone().into());
        }
        // API Gateway puts a named stage in front of the route's path in rawPath.
        let raw_path = if self.stage == "$default" {
            self.path.clone()
        } else {
            format!("/{}{}", self.stage, self.path)
        };
        let mut context = json!({
            "accountId": "123456789012",
            "apiId": "api-id",
            "domainName": "api.example.test",
            "domainPrefix": "api",
            "http": {
                "method": self.method.as_str(),
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "api-test"
            },
            "requestId": "gw-req-1",
            "routeKey": "$default",
            "stage": self.stage,
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1767225600000u64
        });
        if let Some(function) = &self.watch {
            context["domainName"] = json!("localhost");
            context["domainPrefix"] = json!(function);
            context["http"]["userAgent"] = json!("cargo-lambda");
        }
        if let Some(claims) = self.claims {
            context["authorizer"] = json!({ "jwt": { "claims": claims, "scopes": null } });
        }
        let event = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": raw_path,
            "rawQueryString": self.query,
            "headers": headers,
            "requestContext": context,
            "body": self.body,
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).expect("a valid HTTP API v2 event")
    }
}

struct Reply {
    status: StatusCode,
    response: Response<Body>,
    json: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
    }

    /// Asserts an RFC 7807 problem with this status, and returns its body.
    fn problem(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.json
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let p = &self.json;
        assert_eq!(p["status"], status);
        for field in ["type", "title", "detail", "instance", "request_id"] {
            let v = p[field]
                .as_str()
                .unwrap_or_else(|| panic!("problem without {field}: {p}"));
            assert!(!v.is_empty(), "empty {field}: {p}");
        }
        assert!(
            p["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:vidpipe:problem:")
        );
        p
    }

    /// Asserts a problem naming `field` in its `errors`.
    fn names(&self, status: u16, field: &str) {
        let p = self.problem(status);
        let errors = p["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no errors list: {p}"));
        assert!(
            errors
                .iter()
                .any(|e| e["field"] == field && e["rule"].as_str().is_some_and(|r| !r.is_empty())),
            "{field} not named in {p}"
        );
    }

    fn ok(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.json
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
        &self.json
    }
}

async fn call(api: &Api, req: Request) -> Reply {
    let response = vidpipe_http::handle(&api.state, req).await;
    let json =
        serde_json::from_slice(response.body().as_ref()).expect("every response body is JSON");
    Reply {
        status: response.status(),
        response,
        json,
    }
}

async fn send(api: &Api, e: Event) -> Reply {
    call(api, e.request()).await
}

fn body() -> Value {
    json!({
        "prompt": "A lighthouse at dusk",
        "duration_seconds": 5,
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "clip_count": 1
    })
}

async fn submit(api: &Api, tenant: &str, b: &Value) -> Value {
    let r = send(
        api,
        event(Method::POST, "/v1/generations")
            .tenant(tenant)
            .json(b),
    )
    .await;
    r.ok(202).clone()
}

// ---------------------------------------------------------------------------------------------
// Generations

#[tokio::test]
async fn submit_answers_202_with_the_job_view_and_links() {
    let api = api().await;
    let r = send(&api, event(Method::POST, "/v1/generations").json(&body())).await;
    let v = r.ok(202);
    let id = v["id"].as_str().unwrap();
    assert!(JobId::parse(id).is_ok());
    let base = "https://api.example.test";
    assert_eq!(
        r.header("location"),
        Some(format!("{base}/v1/generations/{id}").as_str())
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(r.header("x-request-id").is_some());
    assert_eq!(v["status"], "queued");
    assert_eq!(v["progress_percent"], 0.0);
    assert_eq!(v["request"]["prompt"], "A lighthouse at dusk");
    assert_eq!(v["request"]["fps"], 30, "defaults are filled in");
    assert_eq!(v["links"]["self"], format!("{base}/v1/generations/{id}"));
    assert_eq!(
        v["links"]["cancel"],
        format!("{base}/v1/generations/{id}/cancel")
    );
    assert_eq!(
        v["links"]["download"],
        format!("{base}/v1/generations/{id}/download")
    );
    assert!(v["created_at"].as_str().is_some() && v["updated_at"].as_str().is_some());

    // GET shows the same job, and the runner soon moves it on.
    let got = send(&api, event(Method::GET, &format!("/v1/generations/{id}"))).await;
    assert_eq!(got.ok(200)["id"], id);
    for key in [
        "status",
        "stage",
        "progress_percent",
        "clips",
        "outputs",
        "error",
        "stages",
        "request",
    ] {
        assert!(
            got.json.get(key).is_some(),
            "view lacks {key}: {}",
            got.json
        );
    }
}

#[tokio::test]
async fn same_idempotency_key_replays_the_job_and_a_different_body_conflicts() {
    let api = api().await;
    let first = send(
        &api,
        event(Method::POST, "/v1/generations")
            .header("Idempotency-Key", "k-1")
            .json(&body()),
    )
    .await;
    let id = first.ok(202)["id"].clone();

    // The same request again, with a default spelled out: the same request, so a replay.
    let mut same = body();
    same["fps"] = json!(30);
    let again = send(
        &api,
        event(Method::POST, "/v1/generations")
            .header("Idempotency-Key", "k-1")
            .json(&same),
    )
    .await;
    assert_eq!(again.ok(200)["id"], id);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));

    let mut other = body();
    other["prompt"] = json!("Something else entirely");
    let conflict = send(
        &api,
        event(Method::POST, "/v1/generations")
            .header("Idempotency-Key", "k-1")
            .json(&other),
    )
    .await;
    let p = conflict.problem(409);
    assert_eq!(
        p["detail"],
        format!(
            "Idempotency-Key \"k-1\" was already used with a different request (generation {}).",
            id.as_str().unwrap()
        )
    );

    // Keys are per tenant: bob's k-1 is a new job.
    let bobs = send(
        &api,
        event(Method::POST, "/v1/generations")
            .tenant(BOB)
            .header("Idempotency-Key", "k-1")
            .json(&body()),
    )
    .await;
    assert_ne!(bobs.ok(202)["id"], id);

    let list = send(&api, event(Method::GET, "/v1/generations")).await;
    assert_eq!(
        list.ok(200)["items"].as_array().unwrap().len(),
        1,
        "one job for alice"
    );

    let bad_key = send(
        &api,
        event(Method::POST, "/v1/generations")
            .header("Idempotency-Key", "a b")
            .json(&body()),
    )
    .await;
    bad_key.names(400, "Idempotency-Key");
}

#[tokio::test]
async fn another_tenants_job_and_asset_are_not_found() {
    let api = api().await;
    let job = submit(&api, ALICE, &body()).await;
    let id = job["id"].as_str().unwrap();
    let asset = send(
        &api,
        event(Method::POST, "/v1/assets")
            .json(&json!({"kind": "logo", "content_type": "image/png", "size_bytes": 10})),
    )
    .await;
    let asset_id = asset.ok(201)["asset_id"].as_str().unwrap().to_owned();

    let paths = [
        (Method::GET, format!("/v1/generations/{id}")),
        (Method::POST, format!("/v1/generations/{id}/cancel")),
        (Method::GET, format!("/v1/generations/{id}/download")),
        (Method::GET, format!("/v1/assets/{asset_id}")),
    ];
    for (method, path) in paths {
        let r = send(&api, event(method.clone(), &path).tenant(BOB)).await;
        r.problem(404);
        // ...and the owner still sees it.
        let own = send(
            &api,
            event(
                Method::GET,
                &path.replace("/cancel", "").replace("/download", ""),
            ),
        )
        .await;
        assert_eq!(own.status, StatusCode::OK, "{method} {path}: {}", own.json);
    }
    // Bob's cancel did nothing.
    let still = send(&api, event(Method::GET, &format!("/v1/generations/{id}"))).await;
    assert_ne!(still.ok(200)["status"], "cancelled");
    // Bob's list is empty.
    let list = send(&api, event(Method::GET, "/v1/generations").tenant(BOB)).await;
    assert_eq!(list.ok(200)["items"], json!([]));
    // Ids that are not ids at all are simply not found.
    send(&api, event(Method::GET, "/v1/generations/nope"))
        .await
        .problem(404);
    send(&api, event(Method::GET, "/v1/assets/nope"))
        .await
        .problem(404);
}

#[tokio::test]
async fn the_tenant_comes_from_jwt_claims_or_a_trusted_header_only() {
    let api = api().await;
    // No claims, no trusted header: 401, even with the header.
    let r = send(
        &api,
        event(Method::GET, "/v1/generations")
            .claims(None)
            .header("x-vidpipe-tenant", ALICE),
    )
    .await;
    r.problem(401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    send(
        &api,
        event(Method::POST, "/v1/generations")
            .claims(None)
            .json(&body()),
    )
    .await
    .problem(401);
    // Claims without a usable subject.
    send(
        &api,
        event(Method::GET, "/v1/generations").claims(Some(json!({"email": "a@example.test"}))),
    )
    .await
    .problem(401);
    // A subject that cannot be a storage key segment.
    send(&api, event(Method::GET, "/v1/generations").tenant("../etc"))
        .await
        .problem(401);

    // The custom `tenant` claim wins over `sub`.
    let job = submit(&api, ALICE, &body()).await;
    let path = format!("/v1/generations/{}", job["id"].as_str().unwrap());
    let as_member =
        event(Method::GET, &path).claims(Some(json!({"sub": "user-7", "tenant": ALICE})));
    send(&api, as_member).await.ok(200);

    // With the header trusted (emulation), the header names the tenant when there are no claims.
    let dev = api_with(Some(Arc::new(Stalled)), true).await;
    let r = send(
        &dev,
        event(Method::POST, "/v1/generations")
            .claims(None)
            .header("x-vidpipe-tenant", BOB)
            .json(&body()),
    )
    .await;
    let id = r.ok(202)["id"].as_str().unwrap().to_owned();
    let get = |tenant: &str| {
        event(Method::GET, &format!("/v1/generations/{id}"))
            .claims(None)
            .header("x-vidpipe-tenant", tenant)
    };
    send(&dev, get(BOB)).await.ok(200);
    send(&dev, get(ALICE)).await.problem(404);
    send(&dev, event(Method::GET, "/v1/generations").claims(None))
        .await
        .problem(401);
}

#[tokio::test]
async fn every_invalid_field_is_a_422_naming_it() {
    let api = api().await;
    let asset = "ast_0123456789abcdef0123456789abcdef";
    let cases: Vec<(&str, Value)> = vec![
        ("prompt", json!({"prompt": "   "})),
        ("prompt", json!({"prompt": "x".repeat(2001)})),
        ("duration_seconds", json!({"duration_seconds": 4})),
        ("duration_seconds", json!({"duration_seconds": 7.5})),
        ("aspect_ratio", json!({"aspect_ratio": "3:2"})),
        ("resolution", json!({"resolution": "4k"})),
        ("fps", json!({"fps": 60})),
        ("clip_count", json!({"clip_count": 0})),
        ("clip_count", json!({"clip_count": 5})),
        ("transition", json!({"transition": "spin"})),
        (
            "transition_duration_seconds",
            json!({"transition": "fade", "transition_duration_seconds": 3.0}),
        ),
        (
            "brand.logo.asset_id",
            json!({"brand": {"logo": {"asset_id": "logo.png"}}}),
        ),
        ("brand.logo.asset_id", json!({"brand": {"logo": {}}})),
        (
            "brand.logo.position",
            json!({"brand": {"logo": {"asset_id": asset, "position": "middle"}}}),
        ),
        (
            "brand.logo.opacity",
            json!({"brand": {"logo": {"asset_id": asset, "opacity": 1.5}}}),
        ),
        (
            "brand.logo.scale",
            json!({"brand": {"logo": {"asset_id": asset, "scale": 0.9}}}),
        ),
        (
            "brand.music.asset_id",
            json!({"brand": {"music": {"asset_id": "song"}}}),
        ),
        (
            "brand.music.volume",
            json!({"brand": {"music": {"asset_id": asset, "volume": -1}}}),
        ),
        (
            "brand.music.fade_in_seconds",
            json!({"brand": {"music": {"asset_id": asset, "fade_in_seconds": 11}}}),
        ),
        (
            "brand.music.fade_out_seconds",
            json!({"brand": {"music": {"asset_id": asset, "fade_out_seconds": -2}}}),
        ),
        // Brand assets must exist for the tenant (the service's check).
        (
            "brand.logo.asset_id",
            json!({"brand": {"logo": {"asset_id": asset}}}),
        ),
        (
            "brand.music.asset_id",
            json!({"brand": {"music": {"asset_id": asset}}}),
        ),
    ];
    for (field, patch) in cases {
        let mut b = body();
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        let r = send(&api, event(Method::POST, "/v1/generations").json(&b)).await;
        r.names(422, field);
    }
    // Missing required fields are named all at once.
    let r = send(
        &api,
        event(Method::POST, "/v1/generations").json(&json!({})),
    )
    .await;
    for field in ["prompt", "duration_seconds", "aspect_ratio"] {
        r.names(422, field);
    }
    // Nothing was created by any of them.
    let list = send(&api, event(Method::GET, "/v1/generations")).await;
    assert_eq!(list.ok(200)["items"], json!([]));
}

#[tokio::test]
async fn a_provider_or_planner_not_offered_is_a_422_naming_it() {
    let api = api().await;
    // This stack offers its one provider (`stalled`) and the rules planner.
    for (field, choice, names) in [
        ("provider", json!({"provider": "sora"}), "stalled"),
        ("planner", json!({"planner": "openai"}), "rules"),
        ("provider", json!({"provider": "Not A Name"}), "such as"),
    ] {
        let mut b = body();
        b.as_object_mut()
            .unwrap()
            .extend(choice.as_object().unwrap().clone());
        let r = send(&api, event(Method::POST, "/v1/generations").json(&b)).await;
        let errors = &r.problem(422)["errors"];
        assert_eq!(errors.as_array().unwrap().len(), 1, "{errors}");
        assert_eq!(errors[0]["field"], field, "{errors}");
        assert!(
            errors[0]["rule"].as_str().unwrap().contains(names),
            "{errors}"
        );
    }
    let listed = send(&api, event(Method::GET, "/v1/generations")).await;
    assert_eq!(
        listed.ok(200)["items"],
        json!([]),
        "a refused choice makes no job"
    );
    // An offered choice is taken and shown back.
    let mut b = body();
    b["provider"] = json!("stalled");
    b["planner"] = json!("rules");
    let job = submit(&api, "tenant-a", &b).await;
    assert_eq!(job["request"]["provider"], "stalled");
    assert_eq!(job["request"]["planner"], "rules");
}

#[tokio::test]
async fn unreadable_bodies_are_refused_with_the_right_status() {
    let api = api().await;
    let post = || event(Method::POST, "/v1/generations");
    // Malformed JSON: 400.
    send(&api, post().raw("{\"prompt\": ", Some("application/json")))
        .await
        .problem(400);
    send(&api, post().raw("{} trailing", Some("application/json")))
        .await
        .problem(400);
    send(&api, post().raw("", Some("application/json")))
        .await
        .problem(400);
    // Bytes that are not UTF-8 (a base64 body in the event, binary to lambda_http): 400 too,
    // never a 5xx.
    let binary = |bytes: &[u8]| {
        let mut req = post().raw("", Some("application/json")).request();
        *req.body_mut() = Body::Binary(bytes.to_vec());
        req
    };
    let r = call(&api, binary(&[0xff, 0xfe, b'1', 0xd8, 0xbd, 0xe0])).await;
    let detail = r.problem(400)["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("not valid JSON"), "{detail}");
    call(&api, binary(body().to_string().as_bytes()))
        .await
        .ok(202);
    // Well-formed, wrong shape: 422 naming the field's path.
    let mut wrong_type = body();
    wrong_type["fps"] = json!("thirty");
    send(&api, post().json(&wrong_type)).await.names(422, "fps");
    let nested = json!({"prompt": "p", "brand": {"logo": {"opacity": "high"}}});
    send(&api, post().json(&nested))
        .await
        .names(422, "brand.logo.opacity");
    let mut unknown = body();
    unknown["colour"] = json!("red");
    let r = send(&api, post().json(&unknown)).await;
    r.names(422, "colour");
    let unknown_nested = json!({"prompt": "p", "brand": {"logo": {"size": 3}}});
    send(&api, post().json(&unknown_nested))
        .await
        .names(422, "brand.logo.size");
    // Arrays are never read as a struct's fields by position, at the top or nested.
    send(&api, post().json(&json!(["A prompt", 5, "16:9"])))
        .await
        .names(422, "body");
    send(
        &api,
        post().json(&json!({"prompt": "p", "brand": [{"asset_id": "x"}]})),
    )
    .await
    .names(422, "brand");
    send(&api, post().json(&json!("a string")))
        .await
        .names(422, "body");
    // Not JSON at all: 415.
    send(
        &api,
        post().raw("prompt=hi", Some("application/x-www-form-urlencoded")),
    )
    .await
    .problem(415);
    send(&api, post().raw(&body().to_string(), None))
        .await
        .problem(415);
    send(
        &api,
        post().raw(&body().to_string(), Some("application/json; charset=utf-8")),
    )
    .await
    .ok(202);
    // Over 64 KiB: 413, before any parsing.
    let huge = json!({"prompt": "x".repeat(70 * 1024)});
    send(&api, post().json(&huge)).await.problem(413);
}

#[tokio::test]
async fn list_pages_newest_first_with_limit_and_cursor() {
    let api = api().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut b = body();
        b["prompt"] = json!(format!("Scene {i}"));
        ids.push(
            submit(&api, ALICE, &b).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    submit(&api, BOB, &body()).await;
    ids.reverse();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &cursor {
            Some(c) => format!("limit=2&cursor={c}"),
            None => "limit=2".into(),
        };
        let page = send(&api, event(Method::GET, "/v1/generations").query(&q)).await;
        let page = page.ok(200).clone();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|j| j["id"].as_str().unwrap().to_owned()));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids, "alice's jobs, newest first, each once");
    assert_eq!(pages, 3);
    // The default limit covers them all.
    let all = send(&api, event(Method::GET, "/v1/generations")).await;
    assert_eq!(all.ok(200)["items"].as_array().unwrap().len(), 5);
    assert!(all.json["next_cursor"].is_null());

    for bad in [
        "limit=0",
        "limit=101",
        "limit=ten",
        "limit=",
        "limit=-1",
        "limit=1&limit=2",
    ] {
        send(&api, event(Method::GET, "/v1/generations").query(bad))
            .await
            .names(400, "limit");
    }
    for bad in [
        "cursor=",
        "cursor=not-a-cursor",
        "cursor=zz",
        "cursor=6a6f62",
    ] {
        send(&api, event(Method::GET, "/v1/generations").query(bad))
            .await
            .names(400, "cursor");
    }
}

#[tokio::test]
async fn cancel_is_202_and_repeatable_and_a_finished_job_conflicts() {
    let api = api().await;
    let job = submit(&api, ALICE, &body()).await;
    let id = job["id"].as_str().unwrap();
    let cancel = || event(Method::POST, &format!("/v1/generations/{id}/cancel"));
    let r = send(&api, cancel()).await;
    assert_eq!(r.ok(202)["status"], "cancelled");
    // Cancelling again is accepted and changes nothing.
    assert_eq!(send(&api, cancel()).await.ok(202)["status"], "cancelled");
    // A cancelled job has nothing to download.
    send(
        &api,
        event(Method::GET, &format!("/v1/generations/{id}/download")),
    )
    .await
    .problem(409);
    send(
        &api,
        event(
            Method::POST,
            "/v1/generations/job_0123456789abcdef0123456789abcdef/cancel",
        ),
    )
    .await
    .problem(404);
}

/// An API whose service admits jobs within `limits`, counted in the stack's SQLite file.
async fn api_with_quotas(limits: vidpipe_domain::quota::QuotaLimits) -> Api {
    let mut api = api().await;
    let service =
        Service::new(api._stack.deps().clone(), api.orchestrator.clone()).with_quota_limits(limits);
    api.state.service = Arc::new(service);
    api
}

#[tokio::test]
async fn over_a_quota_is_429_with_retry_after_naming_the_quota() {
    use vidpipe_domain::quota::QuotaLimits;
    let api = api_with_quotas(QuotaLimits::from_settings(1, 0)).await;
    let first = submit(&api, ALICE, &body()).await;
    let create = || event(Method::POST, "/v1/generations").json(&body());
    let r = send(&api, create()).await;
    let p = r.problem(429);
    assert_eq!(p["type"], "urn:vidpipe:problem:quota-exceeded");
    assert_eq!(p["title"], "Quota exceeded");
    assert_eq!(p["quota"], "concurrent_jobs");
    assert_eq!(
        (p["limit"].as_f64(), p["used"].as_f64()),
        (Some(1.0), Some(1.0))
    );
    assert_eq!(p["requested"].as_f64(), Some(1.0));
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("1 of 1 jobs are running"),
        "{p}"
    );
    assert_eq!(r.header("retry-after"), Some("30"));
    // Nothing was recorded for the refused request; another tenant is not limited by alice.
    let list = send(&api, event(Method::GET, "/v1/generations")).await;
    assert_eq!(list.ok(200)["items"].as_array().map(Vec::len), Some(1));
    submit(&api, BOB, &body()).await;
    // Ending the first job frees the slot.
    let id = first["id"].as_str().unwrap();
    send(
        &api,
        event(Method::POST, &format!("/v1/generations/{id}/cancel")),
    )
    .await
    .ok(202);
    send(&api, create()).await.ok(202);

    // The daily budget: one minute, so a second 60 s job is refused until 00:00 UTC.
    let api = api_with_quotas(QuotaLimits::from_settings(0, 1)).await;
    let minute = json!({
        "prompt": "A lighthouse at dusk", "duration_seconds": 60, "aspect_ratio": "16:9",
        "resolution": "720p", "clip_count": 1
    });
    submit(&api, ALICE, &minute).await;
    let r = send(&api, event(Method::POST, "/v1/generations").json(&minute)).await;
    let p = r.problem(429);
    assert_eq!(p["quota"], "daily_output_minutes");
    assert_eq!(
        (
            p["limit"].as_f64(),
            p["used"].as_f64(),
            p["requested"].as_f64()
        ),
        (Some(1.0), Some(1.0), Some(1.0))
    );
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    let now = chrono::Utc::now();
    let midnight = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let expected = (midnight - now).num_seconds() as u64;
    assert!(
        wait >= expected && wait <= expected + 2,
        "Retry-After {wait} s is the time to 00:00 UTC ({expected} s)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_is_409_until_completed_then_gives_presigned_urls() {
    let api = api_with(None, false).await;
    let job = submit(&api, ALICE, &body()).await;
    let id = job["id"].as_str().unwrap();
    let download = || event(Method::GET, &format!("/v1/generations/{id}/download"));
    let early = send(&api, download()).await;
    early.problem(409);
    assert!(early.json["detail"].as_str().unwrap().contains("completed"));

    let done = api
        .orchestrator
        .wait(&JobId::parse(id).unwrap())
        .await
        .expect("started here")
        .expect("run ends");
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);

    let view = send(&api, event(Method::GET, &format!("/v1/generations/{id}"))).await;
    let view = view.ok(200);
    assert_eq!(view["status"], "completed");
    assert_eq!(view["progress_percent"], 100.0);
    assert!(view["outputs"]["size_bytes"].as_u64().unwrap() > 0);
    assert_eq!(view["clips"][0]["status"], "done");
    assert_eq!(view["clips"][0]["attempts"], 1);
    assert_eq!(view["stages"].as_array().unwrap().len(), 3);

    let r = send(&api, download()).await;
    let d = r.ok(200);
    assert_eq!(d["job_id"], id);
    for (part, suffix) in [("video", "final.mp4"), ("thumbnail", "thumbnail.jpg")] {
        let url = d[part]["url"].as_str().unwrap();
        assert!(url.ends_with(suffix), "{url}");
        // The embedded store signs file:// URLs; the file must be there.
        let path = url.strip_prefix("file://").unwrap();
        assert!(Path::new(path).is_file(), "{path}");
    }
    let expires: chrono::DateTime<chrono::Utc> = d["expires_at"].as_str().unwrap().parse().unwrap();
    let left = expires - chrono::Utc::now();
    assert!(
        left > chrono::Duration::minutes(59) && left <= chrono::Duration::minutes(60),
        "{left}"
    );
    // A completed job cannot be cancelled.
    send(
        &api,
        event(Method::POST, &format!("/v1/generations/{id}/cancel")),
    )
    .await
    .problem(409);
}

// ---------------------------------------------------------------------------------------------
// Assets

#[tokio::test]
async fn assets_are_announced_then_uploaded_and_only_uploaded_ones_can_be_used() {
    let api = api().await;
    let r = send(
        &api,
        event(Method::POST, "/v1/assets")
            .json(&json!({"kind": "logo", "content_type": "image/PNG", "size_bytes": 2048})),
    )
    .await;
    let created = r.ok(201).clone();
    let asset_id = created["asset_id"].as_str().unwrap();
    assert!(AssetId::parse(asset_id).is_ok());
    assert_eq!(
        r.header("location"),
        Some(format!("https://api.example.test/v1/assets/{asset_id}").as_str())
    );
    let key = format!("uploads/{ALICE}/{asset_id}/original.png");
    assert_eq!(
        created["upload_url"],
        format!("https://uploads.example.test/{key}?content-type=image/png&ttl=900")
    );
    assert_eq!(created["method"], "PUT");
    assert_eq!(created["headers"], json!({"Content-Type": "image/png"}));
    assert_eq!(created["content_type"], "image/png");
    let expires: chrono::DateTime<chrono::Utc> =
        created["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(expires > chrono::Utc::now() + chrono::Duration::minutes(14));

    let get = send(&api, event(Method::GET, &format!("/v1/assets/{asset_id}"))).await;
    let a = get.ok(200);
    assert_eq!(a["uploaded"], false);
    assert!(a["uploaded_size_bytes"].is_null());
    assert_eq!(a["kind"], "logo");
    assert_eq!(a["size_bytes"], 2048);

    // Named in a generation before its upload: refused, naming the field.
    let mut b = body();
    b["brand"] = json!({"logo": {"asset_id": asset_id}});
    send(&api, event(Method::POST, "/v1/generations").json(&b))
        .await
        .names(422, "brand.logo.asset_id");
    // A logo named as music is the wrong kind.
    let mut as_music = body();
    as_music["brand"] = json!({"music": {"asset_id": asset_id}});
    send(&api, event(Method::POST, "/v1/generations").json(&as_music))
        .await
        .names(422, "brand.music.asset_id");

    // The client PUTs the file (here: straight into the blob store).
    api.state
        .service
        .deps
        .blobs
        .put_bytes(&key, vec![0u8; 2048], "image/png")
        .await
        .unwrap();
    let get = send(&api, event(Method::GET, &format!("/v1/assets/{asset_id}"))).await;
    assert_eq!(get.ok(200)["uploaded"], true);
    assert_eq!(get.json["uploaded_size_bytes"], 2048);
    send(&api, event(Method::POST, "/v1/generations").json(&b))
        .await
        .ok(202);
    // Bob cannot use alice's asset.
    send(
        &api,
        event(Method::POST, "/v1/generations").tenant(BOB).json(&b),
    )
    .await
    .names(422, "brand.logo.asset_id");
}

#[tokio::test]
async fn invalid_asset_announcements_name_the_field() {
    let api = api().await;
    let post = |b: Value| event(Method::POST, "/v1/assets").json(&b);
    send(
        &api,
        post(json!({"kind": "gif", "content_type": "image/gif", "size_bytes": 1})),
    )
    .await
    .names(422, "kind");
    // Videos and images: their own types and limits (100 MiB, 10 MiB).
    for (kind, content_type, ext) in [
        ("video", "video/mp4", "mp4"),
        ("video", "video/quicktime", "mov"),
        ("video", "video/webm", "webm"),
        ("image", "image/jpeg", "jpg"),
    ] {
        let r = send(
            &api,
            post(json!({"kind": kind, "content_type": content_type, "size_bytes": 1})),
        )
        .await;
        let created = r.ok(201);
        assert_eq!(created["kind"], kind);
        assert!(
            created["upload_url"]
                .as_str()
                .unwrap()
                .contains(&format!("/original.{ext}?")),
            "{created}"
        );
    }
    send(
        &api,
        post(json!({"kind": "video", "content_type": "image/png", "size_bytes": 1})),
    )
    .await
    .names(415, "content_type");
    send(
        &api,
        post(json!({"kind": "image", "content_type": "video/mp4", "size_bytes": 1})),
    )
    .await
    .names(415, "content_type");
    let video_max = 100 * 1024 * 1024;
    send(
        &api,
        post(json!({"kind": "video", "content_type": "video/mp4", "size_bytes": video_max})),
    )
    .await
    .ok(201);
    send(
        &api,
        post(json!({"kind": "video", "content_type": "video/mp4", "size_bytes": video_max + 1})),
    )
    .await
    .names(413, "size_bytes");
    send(
        &api,
        post(json!({"kind": "image", "content_type": "image/png", "size_bytes": 10 * 1024 * 1024 + 1})),
    )
    .await
    .names(413, "size_bytes");
    send(
        &api,
        post(json!({"kind": "logo", "content_type": "image/gif", "size_bytes": 1})),
    )
    .await
    .names(415, "content_type");
    send(
        &api,
        post(json!({"kind": "music", "content_type": "image/png", "size_bytes": 1})),
    )
    .await
    .names(415, "content_type");
    send(
        &api,
        post(json!({"kind": "logo", "content_type": "image/png", "size_bytes": 0})),
    )
    .await
    .names(422, "size_bytes");
    let too_big = 10 * 1024 * 1024 + 1;
    send(
        &api,
        post(json!({"kind": "logo", "content_type": "image/png", "size_bytes": too_big})),
    )
    .await
    .names(413, "size_bytes");
    send(
        &api,
        post(json!({"kind": "music", "content_type": "audio/mpeg", "size_bytes": too_big})),
    )
    .await
    .ok(201);
    send(&api, post(json!({"kind": "music", "content_type": "audio/mpeg", "size_bytes": 50 * 1024 * 1024 + 1})))
        .await
        .names(413, "size_bytes");
    send(
        &api,
        post(json!({"kind": "logo", "content_type": "image/png", "size_bytes": -5})),
    )
    .await
    .names(422, "size_bytes");
    send(
        &api,
        post(json!({"kind": "logo", "content_type": "image/png", "size_bytes": 1, "name": "x"})),
    )
    .await
    .names(422, "name");
    let r = send(&api, post(json!({}))).await;
    for field in ["kind", "content_type", "size_bytes"] {
        r.names(422, field);
    }
    send(
        &api,
        event(Method::POST, "/v1/assets").raw("kind=logo", Some("text/plain")),
    )
    .await
    .problem(415);
}

// ---------------------------------------------------------------------------------------------
// Routing, request ids, events

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let api = api().await;
    let r = send(&api, event(Method::GET, "/v1/nothing")).await;
    r.problem(404);
    assert_eq!(r.json["instance"], "/v1/nothing");
    send(&api, event(Method::GET, "/")).await.problem(404);
    // Unknown routes answer the same with or without a tenant.
    send(&api, event(Method::GET, "/v2/generations").claims(None))
        .await
        .problem(404);

    let r = send(&api, event(Method::DELETE, "/v1/generations")).await;
    r.problem(405);
    assert_eq!(r.header("allow"), Some("POST, GET"));
    let r = send(
        &api,
        event(
            Method::GET,
            "/v1/generations/job_0123456789abcdef0123456789abcdef/cancel",
        ),
    )
    .await;
    r.problem(405);
    assert_eq!(r.header("allow"), Some("POST"));
    send(&api, event(Method::PUT, "/v1/assets"))
        .await
        .problem(405);
}

#[tokio::test]
async fn a_stage_or_base_path_prefix_is_tolerated_and_kept_in_links() {
    let mut api = api().await;
    let r = send(
        &api,
        event(Method::POST, "/v1/generations")
            .stage("prod")
            .json(&body()),
    )
    .await;
    let v = r.ok(202);
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(
        v["links"]["self"],
        format!("https://api.example.test/prod/v1/generations/{id}")
    );
    send(
        &api,
        event(Method::GET, &format!("/v1/generations/{id}/")).stage("prod"),
    )
    .await
    .ok(200);

    api.state.base_path = "/api".into();
    let r = send(
        &api,
        event(Method::GET, &format!("/api/v1/generations/{id}")),
    )
    .await;
    assert_eq!(
        r.ok(200)["links"]["cancel"],
        format!("https://api.example.test/api/v1/generations/{id}/cancel")
    );
    // Unprefixed still works (a function URL in emulation has no mapping in front of it).
    send(&api, event(Method::GET, &format!("/v1/generations/{id}")))
        .await
        .ok(200);
}

#[tokio::test]
async fn problems_carry_the_lambda_or_gateway_request_id_or_a_generated_one() {
    let api = api().await;
    // API Gateway's id when not running under Lambda.
    let r = send(&api, event(Method::GET, "/v1/nothing")).await;
    assert_eq!(r.problem(404)["request_id"], "gw-req-1");
    assert_eq!(r.header("x-request-id"), Some("gw-req-1"));

    // The Lambda invocation's id first.
    let mut context = Context::default();
    context.request_id = "lambda-req-9".into();
    let req = event(Method::GET, "/v1/nothing")
        .request()
        .with_lambda_context(context);
    assert_eq!(
        call(&api, req).await.problem(404)["request_id"],
        "lambda-req-9"
    );

    // A request built without any event context still gets one.
    let bare = lambda_http::http::Request::builder()
        .method("GET")
        .uri("/v1/generations")
        .body(Body::Empty)
        .unwrap();
    let r = call(&api, bare).await;
    let id = r.problem(401)["request_id"].as_str().unwrap();
    assert!(id.starts_with("gen-"), "{id}");
}

#[tokio::test]
async fn a_checked_in_http_api_fixture_is_served() {
    let api = api().await;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/list_generations.json"
    ))
    .unwrap();
    let req = lambda_http::request::from_str(&text).expect("fixture parses");
    let r = call(&api, req).await;
    assert_eq!(r.ok(200)["items"], json!([]));
    assert_eq!(r.header("x-request-id"), Some("JKJaXmPLvHcESHA="));
}

// ---------------------------------------------------------------------------------------------
// OpenAPI

#[test]
fn the_openapi_document_matches_the_checked_in_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(vidpipe_http::openapi::DOCUMENT_PATH);
    let generated = vidpipe_http::openapi::document_json();
    if std::env::var_os("VIDPIPE_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        generated == checked_in,
        "{} is out of date with the code. Review the change, then regenerate it with:\n    VIDPIPE_UPDATE_OPENAPI=1 cargo test -p vidpipe-http --test api the_openapi_document\n",
        path.display()
    );
}

#[test]
fn every_route_is_documented_and_every_documented_operation_is_routed() {
    let doc = vidpipe_http::openapi::document();
    let mut documented = Vec::new();
    for (path, item) in &doc.paths.paths {
        let ops = [
            (Method::GET, &item.get),
            (Method::POST, &item.post),
            (Method::PUT, &item.put),
            (Method::DELETE, &item.delete),
            (Method::PATCH, &item.patch),
            (Method::HEAD, &item.head),
            (Method::OPTIONS, &item.options),
            (Method::TRACE, &item.trace),
        ];
        for (method, op) in ops {
            let Some(op) = op else { continue };
            documented.push((method.clone(), path.clone()));
            // Every operation documents its problems as problem+json.
            for status in ["401", "500"] {
                assert!(
                    op.responses.responses.contains_key(status),
                    "{method} {path} lacks {status}"
                );
            }
        }
    }
    for route in ROUTES {
        assert!(
            documented.contains(&(route.method.clone(), route.path.to_owned())),
            "{} {} is routed but not in the OpenAPI document",
            route.method,
            route.path
        );
    }
    for (method, path) in &documented {
        assert!(
            ROUTES.iter().any(|r| r.method == method && r.path == path),
            "{method} {path} is documented but not routed"
        );
    }
    assert_eq!(documented.len(), ROUTES.len());
}

/// The fields the document marks required are exactly the ones the API names as missing when a
/// body gives none, and a documented body with only those fields (and the domain's own values
/// for them) is accepted: the schema's rules are the API's, not a guess at them.
#[tokio::test]
async fn the_documented_required_fields_are_the_ones_the_api_asks_for() {
    let api = api().await;
    let doc: Value =
        serde_json::from_str(&vidpipe_http::openapi::document_json()).expect("the document");
    let required = |schema: &str| -> Vec<String> {
        let mut names: Vec<String> = doc["components"]["schemas"][schema]["required"]
            .as_array()
            .unwrap_or_else(|| panic!("{schema} documents no required fields"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    for (path, schema, minimal, accepted) in [
        (
            "/v1/generations",
            "GenerationRequestBody",
            json!({"prompt": "A kite over dunes", "duration_seconds": 5, "aspect_ratio": "1:1"}),
            202,
        ),
        (
            "/v1/assets",
            "CreateAssetBody",
            json!({"kind": "logo", "content_type": "image/png", "size_bytes": 1}),
            201,
        ),
    ] {
        let r = send(&api, event(Method::POST, path).json(&json!({}))).await;
        let mut named: Vec<String> = r.problem(422)["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect();
        named.sort();
        assert_eq!(named, required(schema), "{path}");
        let mut fields: Vec<String> = minimal.as_object().unwrap().keys().cloned().collect();
        fields.sort();
        assert_eq!(
            fields,
            required(schema),
            "{path}: the minimal body is the required fields"
        );
        send(&api, event(Method::POST, path).json(&minimal))
            .await
            .ok(accepted);
    }
    // A nested object's required field: a logo without its asset.
    let body =
        json!({"prompt": "p", "duration_seconds": 5, "aspect_ratio": "1:1", "brand": {"logo": {}}});
    send(&api, event(Method::POST, "/v1/generations").json(&body))
        .await
        .names(422, "brand.logo.asset_id");
    assert_eq!(
        doc["components"]["schemas"]["LogoBody"]["required"],
        json!(["asset_id"])
    );
}

/// Asset refusals read exactly as they always have, wherever their rules live: problem type,
/// detail and each field's rule.
#[tokio::test]
async fn asset_refusals_keep_their_exact_problem_bodies() {
    let api = api().await;
    let post = |b: Value| event(Method::POST, "/v1/assets").json(&b);
    let cases = [
        (
            json!({"kind": "gif", "content_type": "image/gif", "size_bytes": 0}),
            422,
            "urn:vidpipe:problem:validation",
            "2 field(s) failed validation: kind, size_bytes.",
            json!([
                {"field": "kind", "rule": "must be one of logo, music, image, video (got \"gif\")"},
                {"field": "size_bytes", "rule": "must be at least 1"},
            ]),
        ),
        (
            json!({"kind": "logo", "content_type": "image/gif", "size_bytes": 1}),
            415,
            "urn:vidpipe:problem:unsupported-media-type",
            "content_type must be one of image/png, image/jpeg for a logo asset (got \"image/gif\").",
            json!([{
                "field": "content_type",
                "rule": "must be one of image/png, image/jpeg for a logo asset (got \"image/gif\")",
            }]),
        ),
        (
            json!({"kind": "music", "content_type": "audio/mpeg", "size_bytes": 52428801u64}),
            413,
            "urn:vidpipe:problem:too-large",
            "size_bytes is 52428801 bytes; a music asset may be at most 52428800.",
            json!([{
                "field": "size_bytes",
                "rule": "is 52428801 bytes; a music asset may be at most 52428800",
            }]),
        ),
    ];
    for (body, status, kind, detail, errors) in cases {
        let r = send(&api, post(body)).await;
        let p = r.problem(status);
        assert_eq!((&p["type"], &p["detail"]), (&json!(kind), &json!(detail)));
        assert_eq!(p["errors"], errors);
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile input: wording, echoes, duplicate keys, cursors, links

/// Asserts the whole problem body but its request id.
fn exact(r: &Reply, status: u16, slug: &str, detail: &str, errors: Value) {
    let p = r.problem(status);
    assert_eq!(p["type"], format!("urn:vidpipe:problem:{slug}"), "{p}");
    assert_eq!(p["detail"], detail, "{p}");
    assert_eq!(p["errors"], errors, "{p}");
}

fn validation(r: &Reply, field: &str, rule: &str) {
    exact(
        r,
        422,
        "validation",
        &format!("1 field(s) failed validation: {field}."),
        json!([{"field": field, "rule": rule}]),
    );
}

#[tokio::test]
async fn type_errors_are_worded_for_people_and_name_the_path() {
    let api = api().await;
    let generation: Vec<(Value, &str, &str)> = vec![
        (
            json!({"duration_seconds": "10"}),
            "duration_seconds",
            "must be a number (got a string)",
        ),
        (
            json!({"seed": -1}),
            "seed",
            "must be a whole number ≥ 0 (got -1)",
        ),
        (
            json!({"seed": 1.5}),
            "seed",
            "must be a whole number ≥ 0 (got 1.5)",
        ),
        (
            json!({"fps": "30"}),
            "fps",
            "must be a whole number (got a string)",
        ),
        (
            json!({"clip_count": 2.5}),
            "clip_count",
            "must be a whole number (got 2.5)",
        ),
        (json!({"prompt": 7}), "prompt", "must be a string (got 7)"),
        (
            json!({"aspect_ratio": false}),
            "aspect_ratio",
            "must be a string (got false)",
        ),
        (
            json!({"transition_duration_seconds": {}}),
            "transition_duration_seconds",
            "must be a number (got an object)",
        ),
        (
            json!({"captions": "yes"}),
            "captions",
            "must be true, false or an object (got a string)",
        ),
        (
            json!({"captions": {"style": 3}}),
            "captions.style",
            "must be a string (got 3)",
        ),
        (
            json!({"captions": {"colour": "red"}}),
            "captions.colour",
            "is not a field here; the fields are style, position, size",
        ),
        (
            json!({"brand": "acme"}),
            "brand",
            "must be an object (got a string)",
        ),
        (
            json!({"brand": {"logo": 1}}),
            "brand.logo",
            "must be an object (got 1)",
        ),
        (
            json!({"brand": {"logo": {"opacity": "high"}}}),
            "brand.logo.opacity",
            "must be a number (got a string)",
        ),
        (
            json!({"brand": {"logo": {"asset_id": 5}}}),
            "brand.logo.asset_id",
            "must be a string (got 5)",
        ),
        (
            json!({"brand": {"music": {"volume": true}}}),
            "brand.music.volume",
            "must be a number (got true)",
        ),
        (
            json!({"brand": {"music": {"fade_in_seconds": "1"}}}),
            "brand.music.fade_in_seconds",
            "must be a number (got a string)",
        ),
        (
            json!({"narration": true}),
            "narration",
            "must be an object (got true)",
        ),
        (
            json!({"narration": {"enabled": "yes"}}),
            "narration.enabled",
            "must be true or false (got a string)",
        ),
        (
            json!({"narration": {"voice": 5}}),
            "narration.voice",
            "must be a string (got 5)",
        ),
        (
            json!({"narration": {"provider": null, "engine": 1}}),
            "narration.engine",
            "must be a string (got 1)",
        ),
        (
            json!({"colour": "red"}),
            "colour",
            "is not a field here; the fields are prompt, duration_seconds, aspect_ratio, resolution, fps, clip_count, transition, transition_duration_seconds, captions, seed, brand, narration, webhook_url, provider, planner",
        ),
    ];
    for (patch, field, rule) in generation {
        let mut b = body();
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        let r = send(&api, event(Method::POST, "/v1/generations").json(&b)).await;
        validation(&r, field, rule);
        let text = r.json.to_string();
        assert!(
            !text.contains("invalid type") && !text.contains("expected"),
            "serde's words leaked: {text}"
        );
    }
    let r = send(
        &api,
        event(Method::POST, "/v1/generations").json(&json!("a string")),
    )
    .await;
    validation(&r, "body", "must be an object (got a string)");

    let asset: Vec<(Value, &str, &str)> = vec![
        (
            json!({"kind": "logo", "content_type": "image/png", "size_bytes": "10"}),
            "size_bytes",
            "must be a whole number ≥ 0 (got a string)",
        ),
        (
            json!({"kind": "logo", "content_type": "image/png", "size_bytes": -5}),
            "size_bytes",
            "must be a whole number ≥ 0 (got -5)",
        ),
        (
            json!({"kind": 3, "content_type": "image/png", "size_bytes": 1}),
            "kind",
            "must be a string (got 3)",
        ),
        (
            json!({"kind": "logo", "content_type": null, "size_bytes": 1, "x": 1}),
            "x",
            "is not a field here; the fields are kind, content_type, size_bytes",
        ),
    ];
    for (b, field, rule) in asset {
        let r = send(&api, event(Method::POST, "/v1/assets").json(&b)).await;
        validation(&r, field, rule);
    }
}

#[tokio::test]
async fn echoed_values_are_capped() {
    let api = api().await;
    let long = "x".repeat(5000);
    let capped = format!("\"{}…", "x".repeat(38));
    let mut b = body();
    b["duration_seconds"] = json!(1e308);
    let r = send(&api, event(Method::POST, "/v1/generations").json(&b)).await;
    validation(
        &r,
        "duration_seconds",
        "must be a whole number of seconds from 5 to 300 (got 1e308)",
    );
    let mut b = body();
    b["brand"] =
        json!({"logo": {"asset_id": "ast_0123456789abcdef0123456789abcdef", "opacity": -1e308}});
    let r = send(&api, event(Method::POST, "/v1/generations").json(&b)).await;
    validation(
        &r,
        "brand.logo.opacity",
        "must be between 0 and 1 (got -1e308)",
    );
    let mut b = body();
    b["aspect_ratio"] = json!(long);
    let r = send(&api, event(Method::POST, "/v1/generations").json(&b)).await;
    validation(
        &r,
        "aspect_ratio",
        &format!("must be one of 16:9, 9:16, 1:1, 4:5 (got {capped})"),
    );
    let mut b = body();
    b["narration"] = json!({"voice": long});
    let r = send(&api, event(Method::POST, "/v1/generations").json(&b)).await;
    validation(
        &r,
        "narration.voice",
        &format!("must be 1 to 64 letters, digits or _+-. (got {capped})"),
    );
    // A key of 5000 characters names itself capped too.
    let mut b = body();
    b[&long] = json!(1);
    let r = send(&api, event(Method::POST, "/v1/generations").json(&b)).await;
    assert_eq!(
        r.problem(422)["errors"][0]["field"],
        format!("{}…", "x".repeat(39))
    );
    let r = send(
        &api,
        event(Method::POST, "/v1/assets")
            .json(&json!({"kind": "logo", "content_type": long, "size_bytes": 1})),
    )
    .await;
    exact(
        &r,
        415,
        "unsupported-media-type",
        &format!(
            "content_type must be one of image/png, image/jpeg for a logo asset (got {capped})."
        ),
        json!([{"field": "content_type", "rule": format!("must be one of image/png, image/jpeg for a logo asset (got {capped})")}]),
    );
    let r = send(
        &api,
        event(Method::GET, "/v1/generations").query(&format!("limit={long}")),
    )
    .await;
    exact(
        &r,
        400,
        "bad-request",
        &format!("limit: must be a whole number from 1 to 100 (got {capped})"),
        json!([{"field": "limit", "rule": format!("must be a whole number from 1 to 100 (got {capped})")}]),
    );
    let r = send(&api, event(Method::GET, &format!("/v1/generations/{long}"))).await;
    assert_eq!(r.problem(404)["detail"], format!("No generation {capped}."));
    let r = send(&api, event(Method::GET, &format!("/v1/assets/{long}"))).await;
    assert_eq!(r.problem(404)["detail"], format!("No asset {capped}."));
    let r = send(
        &api,
        event(Method::POST, "/v1/generations")
            .raw(&body().to_string(), Some(&format!("text/{long}"))),
    )
    .await;
    assert_eq!(
        r.problem(415)["detail"],
        format!(
            "The body must be application/json (got \"text/{}…).",
            "x".repeat(33)
        )
    );
}

#[tokio::test]
async fn a_key_given_twice_is_refused_at_any_depth() {
    let api = api().await;
    let cases = [
        (
            "/v1/generations",
            r#"{"prompt": "a", "duration_seconds": 5, "aspect_ratio": "16:9", "prompt": "b"}"#,
            "prompt",
        ),
        (
            "/v1/generations",
            r#"{"prompt": "a", "duration_seconds": 5, "aspect_ratio": "16:9",
                "brand": {"logo": {"opacity": 0.5, "scale": 0.1, "opacity": 1}}}"#,
            "brand.logo.opacity",
        ),
        (
            "/v1/generations",
            r#"{"prompt": "a", "duration_seconds": 5, "aspect_ratio": "16:9",
                "captions": {"style": "boxed", "style": "karaoke"}}"#,
            "captions.style",
        ),
        (
            "/v1/assets",
            r#"{"kind": "logo", "content_type": "image/png", "size_bytes": 1, "size_bytes": 99999999}"#,
            "size_bytes",
        ),
    ];
    for (path, raw, key) in cases {
        let r = send(
            &api,
            event(Method::POST, path).raw(raw, Some("application/json")),
        )
        .await;
        exact(
            &r,
            400,
            "bad-request",
            &format!("The body gives the key {key} more than once."),
            json!([{"field": key, "rule": "is given more than once"}]),
        );
    }
    // Nothing was created.
    let list = send(&api, event(Method::GET, "/v1/generations")).await;
    assert_eq!(list.ok(200)["items"], json!([]));
}

#[tokio::test]
async fn cursors_are_opaque_and_bound_to_their_tenant() {
    let api = api().await;
    for _ in 0..3 {
        submit(&api, ALICE, &body()).await;
        submit(&api, BOB, &body()).await;
    }
    let page = |tenant: &str, query: String| {
        event(Method::GET, "/v1/generations")
            .tenant(tenant)
            .query(&query)
    };
    let first = send(&api, page(ALICE, "limit=1".into())).await;
    let cursor = first.ok(200)["next_cursor"].as_str().unwrap().to_owned();
    // Opaque: not the store's hex key, nor anything that decodes to it.
    assert!(hex_text(&cursor).is_none(), "a readable cursor: {cursor}");
    assert!(!cursor.contains(ALICE));
    send(&api, page(ALICE, format!("limit=1&cursor={cursor}")))
        .await
        .ok(200);
    let bad = |r: &Reply| {
        exact(
            r,
            400,
            "bad-request",
            "cursor: is not a cursor this API issued; pass next_cursor back unchanged",
            json!([{"field": "cursor", "rule": "is not a cursor this API issued; pass next_cursor back unchanged"}]),
        )
    };
    // Another tenant's cursor, a tampered one, and the old hex form are all refused.
    bad(&send(&api, page(BOB, format!("limit=1&cursor={cursor}"))).await);
    for i in [0, cursor.len() / 2, cursor.len() - 1] {
        let mut altered = cursor.clone().into_bytes();
        altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        bad(&send(&api, page(ALICE, format!("limit=1&cursor={altered}"))).await);
    }
    bad(&send(&api, page(ALICE, "cursor=6a6f62".into())).await);
}

/// The text a hex string spells, when it is hex of text.
fn hex_text(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

#[tokio::test]
async fn links_follow_the_way_the_caller_came_in() {
    let mut api = api().await;
    // A function URL served by cargo lambda watch: watch strips /lambda-url/{function}.
    let r = send(
        &api,
        event(Method::POST, "/v1/generations")
            .via_watch("vidpipe-api")
            .json(&body()),
    )
    .await;
    let v = r.ok(202).clone();
    let id = v["id"].as_str().unwrap();
    let base = "http://127.0.0.1:9000/lambda-url/vidpipe-api";
    assert_eq!(
        r.header("location"),
        Some(format!("{base}/v1/generations/{id}").as_str())
    );
    assert_eq!(
        v["links"]["download"],
        format!("{base}/v1/generations/{id}/download")
    );
    // A proxy's X-Forwarded-Proto wins; a stage and a base path both stay in.
    api.state.base_path = "/api".into();
    let r = send(
        &api,
        event(Method::GET, &format!("/api/v1/generations/{id}"))
            .stage("prod")
            .header("x-forwarded-proto", "http"),
    )
    .await;
    assert_eq!(
        r.ok(200)["links"]["self"],
        format!("http://api.example.test/prod/api/v1/generations/{id}")
    );
    // A Host that is no plain authority is not written into links: they stay paths.
    let r = send(
        &api,
        event(Method::GET, &format!("/v1/generations/{id}")).header("host", "user@evil.test"),
    )
    .await;
    assert_eq!(r.ok(200)["links"]["self"], format!("/v1/generations/{id}"));
}

// ---------------------------------------------------------------------------------------------
// Webhooks

#[tokio::test]
async fn each_tenant_has_its_own_secret_and_rotation_keeps_the_old_one_a_day() {
    let api = api().await;
    let first = send(&api, event(Method::GET, "/v1/webhook-secret")).await;
    let secret = first.ok(200)["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(first.json["previous"], json!([]));
    // Made once: asked again, the same secret.
    let again = send(&api, event(Method::GET, "/v1/webhook-secret")).await;
    assert_eq!(again.ok(200)["secret"], secret.as_str());
    let bobs = send(&api, event(Method::GET, "/v1/webhook-secret").tenant(BOB)).await;
    assert_ne!(bobs.ok(200)["secret"], secret.as_str());

    let rotated = send(&api, event(Method::POST, "/v1/webhook-secret/rotate")).await;
    let view = rotated.ok(200);
    assert_ne!(view["secret"], secret.as_str());
    assert_eq!(view["previous"][0]["secret"], secret.as_str());
    let rotated_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(view["rotated_at"].clone()).unwrap();
    let expires_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(view["previous"][0]["expires_at"].clone()).unwrap();
    assert_eq!(expires_at - rotated_at, chrono::TimeDelta::hours(24));
    // Bob's secret is untouched by Alice's rotation.
    let bobs_after = send(&api, event(Method::GET, "/v1/webhook-secret").tenant(BOB)).await;
    assert_eq!(bobs_after.ok(200)["secret"], bobs.json["secret"]);
    // Wrong method on the rotation.
    send(&api, event(Method::GET, "/v1/webhook-secret/rotate"))
        .await
        .problem(405);
}

#[tokio::test]
async fn webhook_urls_are_checked_at_submit_and_deliveries_are_tenant_scoped() {
    let api = api().await;
    for bad in [
        "http://hooks.example.com/x",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.1/hook",
        "https://[::1]/hook",
        "not a url",
    ] {
        let mut b = body();
        b["webhook_url"] = json!(bad);
        let r = send(&api, event(Method::POST, "/v1/generations").json(&b)).await;
        let problem = r.problem(422);
        assert_eq!(
            problem["errors"][0]["field"], "webhook_url",
            "{bad}: {problem}"
        );
    }
    let mut b = body();
    b["webhook_url"] = json!("https://hooks.example.com/vidpipe");
    let job = submit(&api, ALICE, &b).await;
    assert_eq!(
        job["request"]["webhook_target"],
        "https://hooks.example.com"
    );
    let id = job["id"].as_str().unwrap();
    let path = format!("/v1/generations/{id}/deliveries");
    let r = send(&api, event(Method::GET, &path)).await;
    let list = r.ok(200);
    assert_eq!(list["job_id"], id);
    assert_eq!(list["kind"], "generation");
    // Still running: nothing sent yet.
    assert_eq!(list["items"], json!([]));
    send(&api, event(Method::GET, &path).tenant(BOB))
        .await
        .problem(404);
    send(
        &api,
        event(Method::GET, "/v1/generations/job_nope/deliveries"),
    )
    .await
    .problem(404);
    // No processing pipeline on this deployment: its deliveries route says so, passing.
    let r = send(
        &api,
        event(
            Method::GET,
            "/v1/processing-jobs/0123456789abcdef0123456789abcdef01234567/deliveries",
        ),
    )
    .await;
    r.problem(503);
}

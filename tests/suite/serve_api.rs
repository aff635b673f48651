//! `vidpipe serve`'s API is the stack's: the same routes, problems and OpenAPI, acting as the
//! local tenant on loopback; the app and its config beside it.

use crate::serve_support::{client, serve};
use serde_json::{Value, json};
use vidpipe_serve::ServeOptions;

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_duration_is_the_stacks_problem_with_the_fields_path() {
    let home = tempfile::tempdir().unwrap();
    let served = serve(home.path(), ServeOptions::default()).await;
    let http = client();
    let r = http
        .post(served.at("/v1/generations"))
        .json(
            &json!({"prompt": "A calm sea. Gulls.", "duration_seconds": 3, "aspect_ratio": "16:9"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let problem: Value = r.json().await.unwrap();
    let errors = problem["errors"].as_array().expect("field errors");
    assert!(
        errors.iter().any(|e| e["field"] == "duration_seconds"),
        "{problem}"
    );
    assert!(
        problem["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    // The same body through the stack's handler in process gives the same problem, field for
    // field (only the request id differs).
    let direct = stack_problem(
        json!({"prompt": "A calm sea. Gulls.", "duration_seconds": 3, "aspect_ratio": "16:9"}),
    )
    .await;
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("request_id");
        v
    };
    assert_eq!(strip(problem), strip(direct));

    // A type error names its path too (the 422 the API gives for a wrong shape).
    let r = http
        .post(served.at("/v1/generations"))
        .json(&json!({"prompt": "x", "duration_seconds": 10, "aspect_ratio": "16:9", "brand": {"logo": {"opacity": "high"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let problem: Value = r.json().await.unwrap();
    assert!(
        problem.to_string().contains("brand.logo.opacity"),
        "{problem}"
    );

    // No job was created by either.
    let list: Value = http
        .get(served.at("/v1/generations"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");
    served.stop().await;
}

/// The problem `vidpipe_http::handle` gives for `body` with the local tenant's claims, as the
/// Lambda route would.
async fn stack_problem(body: Value) -> Value {
    let home = tempfile::tempdir().unwrap();
    let stack = vidpipe_tests::stack(home.path()).await;
    let state = vidpipe_http::ApiState {
        service: std::sync::Arc::new(stack.service_with_blobs(stack.blobs().clone())),
        uploads: std::sync::Arc::new(NoUploads),
        base_path: String::new(),
        processing: None,
        trust_tenant_header: true,
    };
    let req = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/v1/generations")
        .header("content-type", "application/json")
        .header("x-vidpipe-tenant", "local")
        .body(lambda_http::Body::Text(body.to_string()))
        .unwrap();
    let r = vidpipe_http::handle(&state, req).await;
    serde_json::from_slice(r.body().as_ref()).unwrap()
}

struct NoUploads;

#[async_trait::async_trait]
impl vidpipe_domain::ports::UploadSigner for NoUploads {
    async fn presign_put(
        &self,
        key: &str,
        _: &str,
        _: u64,
        _: std::time::Duration,
    ) -> Result<vidpipe_domain::ports::SignedUpload, vidpipe_domain::ports::BlobError> {
        Err(vidpipe_domain::ports::BlobError::InvalidKey(key.to_owned()))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_its_config_and_the_openapi_are_served() {
    let home = tempfile::tempdir().unwrap();
    let served = serve(home.path(), ServeOptions::default()).await;
    let http = client();
    let page = http.get(served.at("/")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("<html"), "{html}");
    // An app route is the app too; a missing script is not.
    assert_eq!(
        http.get(served.at("/jobs/abc"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        html
    );
    assert_eq!(
        http.get(served.at("/assets/nope-123.js"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );

    let config: Value = http
        .get(served.at("/app-config.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["api_base"], "");
    assert_eq!(config["auth"], json!({"mode": "local"}));
    assert_eq!(config["websocket_url"], served.ws_url().as_str());
    // What a request may choose here: this server's chain and planner.
    assert_eq!(config["providers"], json!(["procedural"]));
    assert_eq!(config["planners"], json!(["rules"]));

    let doc: Value = http
        .get(served.at("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc,
        serde_json::from_str::<Value>(&vidpipe_http::openapi::document_json()).unwrap()
    );
    assert!(doc["paths"]["/v1/generations"].is_object());

    // An unknown API path is the API's 404 problem, not the app.
    let r = http
        .get(served.at("/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    served.stop().await;
}

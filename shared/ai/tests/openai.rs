//! The OpenAI-compatible planner and image provider against a fake server on 127.0.0.1.

use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use vidpipe_ai::openai::{
    OpenAiConfig, OpenAiConfigError, OpenAiImageProvider, OpenAiPlanner, RetryPolicy, image_size,
};
use vidpipe_domain::media::ClipSpec;
use vidpipe_domain::plan::PlanError;
use vidpipe_domain::ports::{ClipMedia, ClipProgress, ClipProvider, Planner, ProviderError};
use vidpipe_domain::{GenerationRequest, GenerationRequestBody};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const KEY: &str = "sk-test-very-secret-0123456789";
/// A real 1x1 PNG.
const PNG_B64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

fn png() -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(PNG_B64)
        .unwrap()
}

fn request(seconds: u32, clips: u32) -> GenerationRequest {
    let body: GenerationRequestBody = serde_json::from_value(json!({
        "prompt": "A fox wakes in the snow. It hunts at dawn. The sun rises over the hills.",
        "duration_seconds": seconds,
        "clip_count": clips,
        "aspect_ratio": "16:9",
    }))
    .unwrap();
    body.validate().unwrap()
}

fn config(server: &MockServer, key: Option<&str>) -> OpenAiConfig {
    let mut env: HashMap<&str, String> = HashMap::from([
        ("OPENAI_BASE_URL", format!("{}/v1/", server.uri())),
        ("VIDPIPE_OPENAI_MODEL", "gpt-test".to_owned()),
        ("VIDPIPE_OPENAI_IMAGE_MODEL", "gpt-image-1".to_owned()),
        ("VIDPIPE_OPENAI_IMAGE_PRICE", "0.04".to_owned()),
    ]);
    if let Some(k) = key {
        env.insert("OPENAI_API_KEY", k.to_owned());
    }
    OpenAiConfig::from_lookup(|k| env.get(k).cloned()).unwrap()
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        retries: 2,
        backoff: Duration::from_millis(5),
        max_retry_after: Duration::from_secs(20),
    }
}

fn planner(server: &MockServer, key: Option<&str>) -> OpenAiPlanner {
    OpenAiPlanner::new(&config(server, key))
        .unwrap()
        .with_retry(fast())
}

fn draft(scenes: usize) -> String {
    let scenes: Vec<Value> = (0..scenes)
        .map(|i| {
            json!({
                "visual_prompt": format!("wide shot of scene {i}, soft light"),
                "caption": format!("Caption {i}"),
                "narration": format!("Narration {i}."),
                "weight": 3 + i,
            })
        })
        .collect();
    json!({ "scenes": scenes }).to_string()
}

fn chat(content: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "finish_reason": "stop",
        }],
    }))
}

async fn mount_chat(server: &MockServer, answer: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(answer)
        .mount(server)
        .await;
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap()
}

async fn plan_error(server: &MockServer, answer: ResponseTemplate) -> PlanError {
    mount_chat(server, answer).await;
    planner(server, Some(KEY))
        .plan(&request(10, 2))
        .await
        .unwrap_err()
}

#[test]
fn config_reads_every_variable_and_defaults_the_base_url() {
    let env = HashMap::from([
        ("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1/"),
        ("OPENAI_API_KEY", KEY),
        ("VIDPIPE_OPENAI_MODEL", "llama3.1"),
        ("VIDPIPE_OPENAI_IMAGE_MODEL", "dall-e-3"),
        ("VIDPIPE_OPENAI_IMAGE_PRICE", "0.08"),
    ]);
    let c = OpenAiConfig::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
    assert_eq!(c.base_url, "http://127.0.0.1:11434/v1");
    assert_eq!(c.api_key.as_ref().map(|k| k.expose()), Some(KEY));
    assert_eq!(c.chat_model.as_deref(), Some("llama3.1"));
    assert_eq!(c.image_model.as_deref(), Some("dall-e-3"));
    assert_eq!(c.image_price_usd, Some(0.08));

    let empty = OpenAiConfig::from_lookup(|k| (k == "OPENAI_API_KEY").then(String::new)).unwrap();
    assert_eq!(empty.base_url, "https://api.openai.com/v1");
    assert_eq!(empty.api_key, None);
    assert_eq!(empty.chat_model, None);
    assert_eq!(empty.image_price_usd, None);
}

#[test]
fn config_errors_name_the_variable() {
    let with = |var: &'static str, value: &'static str| {
        OpenAiConfig::from_lookup(move |k| (k == var).then(|| value.to_owned()))
    };
    let price = with("VIDPIPE_OPENAI_IMAGE_PRICE", "cheap").unwrap_err();
    assert!(
        matches!(
            price,
            OpenAiConfigError::Invalid {
                var: "VIDPIPE_OPENAI_IMAGE_PRICE",
                ..
            }
        ),
        "{price:?}"
    );
    assert!(matches!(
        with("VIDPIPE_OPENAI_IMAGE_PRICE", "-1").unwrap_err(),
        OpenAiConfigError::Invalid {
            var: "VIDPIPE_OPENAI_IMAGE_PRICE",
            ..
        }
    ));
    let url = with("OPENAI_BASE_URL", "ftp://example.invalid/v1").unwrap_err();
    assert!(
        url.to_string().starts_with("OPENAI_BASE_URL is invalid"),
        "{url}"
    );
    assert!(matches!(
        with("OPENAI_BASE_URL", "not a url").unwrap_err(),
        OpenAiConfigError::Invalid {
            var: "OPENAI_BASE_URL",
            ..
        }
    ));

    let bare = OpenAiConfig::from_lookup(|_| None).unwrap();
    let planner = OpenAiPlanner::new(&bare).unwrap_err();
    assert_eq!(
        planner,
        OpenAiConfigError::Missing {
            var: "VIDPIPE_OPENAI_MODEL"
        }
    );
    assert_eq!(planner.to_string(), "VIDPIPE_OPENAI_MODEL is not set");
    assert_eq!(
        OpenAiImageProvider::new(&bare).unwrap_err(),
        OpenAiConfigError::Missing {
            var: "VIDPIPE_OPENAI_IMAGE_MODEL"
        }
    );
}

#[tokio::test]
async fn a_well_formed_answer_becomes_a_plan_with_the_requests_scenes_and_frames() {
    let server = MockServer::start().await;
    mount_chat(&server, chat(json!(draft(3)))).await;
    let r = request(12, 3);

    let p = planner(&server, Some(KEY));
    assert_eq!(p.name(), "openai");
    let plan = p.plan(&r).await.unwrap();

    assert_eq!(plan.planner, "openai");
    assert_eq!(plan.scenes.len(), 3);
    assert_eq!(plan.composed_frames(), r.total_frames());
    assert_eq!(
        plan.scenes[2].visual_prompt,
        "wide shot of scene 2, soft light"
    );
    assert_eq!(plan.scenes[1].caption, "Caption 1");
    assert_eq!(plan.scenes[0].narration, "Narration 0.");
    assert_eq!(
        plan.scenes.iter().map(|s| s.weight).collect::<Vec<_>>(),
        [3, 4, 5]
    );

    let sent = requests(&server).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].headers.get("authorization").unwrap(),
        &format!("Bearer {KEY}")
    );
    let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(body["model"], "gpt-test");
    assert!(body["temperature"].as_f64().unwrap() <= 0.3);
    let format = &body["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["name"], "vidpipe_plan");
    assert_eq!(format["json_schema"]["strict"], true);
    let scenes = &format["json_schema"]["schema"]["properties"]["scenes"];
    assert_eq!(scenes["minItems"], 3);
    assert_eq!(scenes["maxItems"], 3);
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], "system");
    assert!(messages[0]["content"].as_str().unwrap().contains("exactly"));
    assert_eq!(messages[1]["role"], "user");
    let user = messages[1]["content"].as_str().unwrap();
    assert!(user.contains("It hunts at dawn."), "{user}");
    assert!(user.contains("12 seconds"), "{user}");
    assert!(user.contains("16:9"), "{user}");
    assert!(user.contains("exactly 3"), "{user}");
}

#[tokio::test]
async fn malformed_json_content_is_invalid_without_a_retry() {
    let server = MockServer::start().await;
    let err = plan_error(&server, chat(json!("{\"scenes\": [ oops"))).await;
    assert!(
        matches!(&err, PlanError::Invalid(m) if m.starts_with("not a plan")),
        "{err:?}"
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn a_wrong_scene_count_is_invalid() {
    let server = MockServer::start().await;
    let err = plan_error(&server, chat(json!(draft(3)))).await;
    assert_eq!(
        err,
        PlanError::Invalid("3 scenes; the request asks for 2".into())
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn an_empty_field_is_invalid() {
    let server = MockServer::start().await;
    let text = draft(2).replace("Caption 1", "  ");
    let err = plan_error(&server, chat(json!(text))).await;
    assert_eq!(err, PlanError::Invalid("scenes[1].caption is empty".into()));
}

#[tokio::test]
async fn empty_choices_null_content_or_a_refusal_is_invalid() {
    let server = MockServer::start().await;
    let none = ResponseTemplate::new(200).set_body_json(json!({"choices": []}));
    assert_eq!(
        plan_error(&server, none).await,
        PlanError::Invalid("the answer has no choices".into())
    );

    let server = MockServer::start().await;
    assert_eq!(
        plan_error(&server, chat(Value::Null)).await,
        PlanError::Invalid("the message has no content".into())
    );

    let server = MockServer::start().await;
    let refused = ResponseTemplate::new(200).set_body_json(json!({
        "choices": [{"message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}}]
    }));
    assert_eq!(
        plan_error(&server, refused).await,
        PlanError::Invalid("the model refused: I can't help with that.".into())
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_chat(&server, chat(json!(draft(2)))).await;

    let started = Instant::now();
    let plan = planner(&server, Some(KEY))
        .plan(&request(10, 2))
        .await
        .unwrap();
    assert_eq!(plan.scenes.len(), 2);
    assert_eq!(requests(&server).await.len(), 2);
    // The policy's own backoff is 5 ms, so only the header can account for a full second.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn three_500s_make_the_planner_unavailable_after_exactly_three_requests() {
    let server = MockServer::start().await;
    let err = plan_error(
        &server,
        ResponseTemplate::new(500)
            .set_body_json(json!({"error": {"message": "boom", "type": "server_error"}})),
    )
    .await;
    assert_eq!(
        err,
        PlanError::Unavailable("HTTP 500: server_error: boom (after 3 attempts)".into())
    );
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn a_bad_key_is_unavailable_at_once_and_its_reason_hides_the_key() {
    let server = MockServer::start().await;
    let err = plan_error(
        &server,
        ResponseTemplate::new(401).set_body_json(json!({"error": {
            "message": format!("Incorrect API key provided: {KEY}."),
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }})),
    )
    .await;
    assert_eq!(
        err,
        PlanError::Unavailable(
            "HTTP 401: invalid_api_key: Incorrect API key provided: ***.".into()
        )
    );
    assert!(!format!("{err} {err:?}").contains(KEY));
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_after_the_retries() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let env = HashMap::from([
        ("OPENAI_BASE_URL", format!("http://127.0.0.1:{port}/v1")),
        ("VIDPIPE_OPENAI_MODEL", "m".to_owned()),
    ]);
    let c = OpenAiConfig::from_lookup(|k| env.get(k).cloned()).unwrap();
    let err = OpenAiPlanner::new(&c)
        .unwrap()
        .with_retry(fast())
        .plan(&request(10, 2))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PlanError::Unavailable(m)
            if m.starts_with("chat/completions could not connect") && m.ends_with("(after 3 attempts)")),
        "{err:?}"
    );
}

#[tokio::test]
async fn without_a_key_no_authorization_header_is_sent() {
    let server = MockServer::start().await;
    mount_chat(&server, chat(json!(draft(2)))).await;
    planner(&server, None).plan(&request(10, 2)).await.unwrap();
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 1);
    assert!(sent[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn temperature_can_be_left_out_for_models_that_refuse_it() {
    let server = MockServer::start().await;
    mount_chat(&server, chat(json!(draft(2)))).await;
    planner(&server, None)
        .with_temperature(None)
        .plan(&request(10, 2))
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&requests(&server).await[0].body).unwrap();
    assert!(body.get("temperature").is_none(), "{body}");
}

// ---------------------------------------------------------------------------------------------
// Images

fn spec(width: u32, height: u32) -> ClipSpec {
    ClipSpec {
        scene_index: 1,
        visual_prompt: "a red fox in fresh snow at dawn".into(),
        seed: 7,
        width,
        height,
        fps: 30,
        frames: 120,
        first_frame: None,
    }
}

fn provider(server: &MockServer, key: Option<&str>) -> OpenAiImageProvider {
    OpenAiImageProvider::new(&config(server, key)).unwrap()
}

async fn mount_images(server: &MockServer, answer: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(answer)
        .mount(server)
        .await;
}

fn b64_answer() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"created": 1, "data": [{"b64_json": PNG_B64}]}))
}

async fn submit_error(server: &MockServer, answer: ResponseTemplate) -> ProviderError {
    mount_images(server, answer).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("still.png");
    let err = provider(server, Some(KEY))
        .submit(&spec(1920, 1080), "job/1", &dest)
        .await
        .unwrap_err();
    assert!(!dest.exists());
    err
}

#[tokio::test]
async fn a_b64_answer_writes_the_decoded_png() {
    let server = MockServer::start().await;
    mount_images(&server, b64_answer()).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("still.png");

    let p = provider(&server, Some(KEY));
    let progress = p.submit(&spec(1920, 1080), "job/1", &dest).await.unwrap();

    let ClipProgress::Ready { media, cost } = progress else {
        panic!("{progress:?}")
    };
    assert_eq!(media, ClipMedia::Image);
    let cost = cost.unwrap();
    assert_eq!(cost.usd, 0.04);
    assert_eq!(cost.basis, "1 image at $0.04/image (gpt-image-1 1536x1024)");
    assert_eq!(std::fs::read(&dest).unwrap(), png());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let sent = requests(&server).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].headers.get("authorization").unwrap(),
        &format!("Bearer {KEY}")
    );
    let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(
        body,
        json!({"model": "gpt-image-1", "prompt": "a red fox in fresh snow at dawn", "n": 1, "size": "1536x1024"})
    );
}

#[tokio::test]
async fn a_url_answer_is_downloaded_without_the_key() {
    let server = MockServer::start().await;
    mount_images(
        &server,
        ResponseTemplate::new(200)
            .set_body_json(json!({"data": [{"url": format!("{}/files/img-1.png", server.uri())}]})),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/files/img-1.png"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(png()))
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("still.png");

    let progress = provider(&server, Some(KEY))
        .submit(&spec(1080, 1920), "job/1", &dest)
        .await
        .unwrap();
    assert!(matches!(
        progress,
        ClipProgress::Ready {
            media: ClipMedia::Image,
            ..
        }
    ));
    assert_eq!(std::fs::read(&dest).unwrap(), png());
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].url.path(), "/files/img-1.png");
    assert!(sent[1].headers.get("authorization").is_none());
}

#[tokio::test]
async fn gpt_image_1_sizes_follow_the_aspect() {
    let server = MockServer::start().await;
    mount_images(&server, b64_answer()).await;
    let p = provider(&server, None);
    let dir = tempfile::tempdir().unwrap();
    for (w, h) in [(1920, 1080), (1080, 1920), (1080, 1080)] {
        p.submit(
            &spec(w, h),
            "job/1",
            &dir.path().join(format!("{w}x{h}.png")),
        )
        .await
        .unwrap();
    }
    let sizes: Vec<String> = requests(&server)
        .await
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            body["size"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(sizes, ["1536x1024", "1024x1536", "1024x1024"]);
}

#[test]
fn other_models_get_their_own_sizes() {
    assert_eq!(image_size("dall-e-3", 1920, 1080), (1792, 1024));
    assert_eq!(image_size("dall-e-3", 720, 1280), (1024, 1792));
    assert_eq!(image_size("dall-e-3", 1080, 1080), (1024, 1024));
    assert_eq!(image_size("dall-e-2", 1920, 1080), (1024, 1024));
    // 4:5 is nearer 2:3 than 1:1 on a log scale.
    assert_eq!(image_size("gpt-image-1", 1080, 1350), (1024, 1536));
    // Anything else keeps the spec's shape: long side at most 1024, multiples of 64.
    assert_eq!(image_size("stablediffusion", 1920, 1080), (1024, 576));
    assert_eq!(image_size("stablediffusion", 1080, 1920), (576, 1024));
    assert_eq!(image_size("stablediffusion", 1080, 1350), (832, 1024));
    assert_eq!(image_size("stablediffusion", 640, 360), (640, 384));
}

#[tokio::test]
async fn a_429_is_throttled_with_the_hint() {
    let server = MockServer::start().await;
    let err = submit_error(
        &server,
        ResponseTemplate::new(429).insert_header("Retry-After", "7"),
    )
    .await;
    assert!(
        matches!(err, ProviderError::Throttled { retry_after: Some(d) } if d == Duration::from_secs(7)),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_exhausted_quota_fails_instead_of_throttling() {
    let server = MockServer::start().await;
    let err = submit_error(
        &server,
        ResponseTemplate::new(429).set_body_json(json!({"error": {
            "message": "You exceeded your current quota.", "type": "insufficient_quota", "code": "insufficient_quota"
        }})),
    )
    .await;
    assert!(
        matches!(&err, ProviderError::Failed(m) if m == "HTTP 429: insufficient_quota: You exceeded your current quota."),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_content_policy_400_is_rejected() {
    let server = MockServer::start().await;
    let err = submit_error(
        &server,
        ResponseTemplate::new(400).set_body_json(json!({"error": {
            "code": "content_policy_violation",
            "message": "Your request was rejected as a result of our safety system.",
            "type": "invalid_request_error",
        }})),
    )
    .await;
    assert!(
        matches!(&err, ProviderError::Rejected(m) if m == "Your request was rejected as a result of our safety system."),
        "{err:?}"
    );
}

#[tokio::test]
async fn other_4xx_fail_and_5xx_are_unavailable() {
    let server = MockServer::start().await;
    let err = submit_error(
        &server,
        ResponseTemplate::new(400).set_body_json(json!({"error": {
            "code": "invalid_size", "message": "size is not supported", "type": "invalid_request_error",
        }})),
    )
    .await;
    assert!(
        matches!(&err, ProviderError::Failed(m) if m == "HTTP 400: invalid_size: size is not supported"),
        "{err:?}"
    );

    let server = MockServer::start().await;
    let err = submit_error(
        &server,
        ResponseTemplate::new(503).set_body_string("overloaded"),
    )
    .await;
    assert!(
        matches!(&err, ProviderError::Unavailable(m) if m == "HTTP 503: overloaded"),
        "{err:?}"
    );
}

#[tokio::test]
async fn bytes_that_are_not_an_image_fail() {
    let server = MockServer::start().await;
    let html = base64::engine::general_purpose::STANDARD.encode("<html>oops</html>");
    let err = submit_error(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({"data": [{"b64_json": html}]})),
    )
    .await;
    assert!(
        matches!(&err, ProviderError::Failed(m) if m == "the 17 bytes returned are not a PNG, JPEG or WebP image"),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_key_never_shows_in_debug_output_or_errors() {
    let server = MockServer::start().await;
    let c = config(&server, Some(KEY));
    let p = OpenAiPlanner::new(&c).unwrap();
    let i = OpenAiImageProvider::new(&c).unwrap();
    let debug = format!(
        "{c:?} {p:?} {i:?} {:?} {}",
        c.api_key,
        c.api_key.clone().unwrap()
    );
    assert!(!debug.contains(KEY), "{debug}");
    assert!(debug.contains("***"), "{debug}");

    let echo = ResponseTemplate::new(403).set_body_json(json!({"error": {
        "message": format!("key {KEY} may not use gpt-image-1"), "code": "forbidden",
    }}));
    let err = submit_error(&server, echo).await;
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(KEY), "{shown}");
    assert!(
        matches!(&err, ProviderError::Failed(m) if m == "HTTP 403: forbidden: key *** may not use gpt-image-1"),
        "{err:?}"
    );
}

#[test]
fn the_cache_identity_names_the_model_and_the_size_rule() {
    let env = HashMap::from([("VIDPIPE_OPENAI_IMAGE_MODEL", "dall-e-3")]);
    let c = OpenAiConfig::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
    let p = OpenAiImageProvider::new(&c).unwrap();
    assert_eq!(p.name(), "openai-image");
    assert_eq!(p.cache_identity(), "openai-image|dall-e-3|size-v1");
}

#[tokio::test]
async fn a_long_retry_after_is_capped_by_the_policy() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "3600"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_chat(&server, chat(json!(draft(2)))).await;
    let p = OpenAiPlanner::new(&config(&server, None))
        .unwrap()
        .with_retry(RetryPolicy {
            max_retry_after: Duration::from_millis(50),
            ..fast()
        });

    let started = Instant::now();
    p.plan(&request(10, 2)).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn retry_after_ms_is_read_as_milliseconds() {
    let server = MockServer::start().await;
    let err = submit_error(
        &server,
        ResponseTemplate::new(429)
            .insert_header("retry-after-ms", "1500")
            .insert_header("Retry-After", "2"),
    )
    .await;
    assert!(
        matches!(err, ProviderError::Throttled { retry_after: Some(d) } if d == Duration::from_millis(1500)),
        "{err:?}"
    );
}

/// The ports' conformance suites: the planner against a well-formed answer, the image provider
/// against a b64 still.
#[tokio::test]
async fn the_openai_planner_and_image_provider_conform_to_their_ports() {
    let server = MockServer::start().await;
    mount_chat(&server, chat(json!(draft(3)))).await;
    mount_images(&server, b64_answer()).await;
    vidpipe_pipeline::conformance::planner::run_all(&planner(&server, None), &request(12, 3)).await;
    let dir = tempfile::tempdir().unwrap();
    vidpipe_pipeline::conformance::clip_provider::run_all(
        &provider(&server, Some("sk-test")),
        &spec(1280, 720),
        dir.path(),
    )
    .await;
}

//! The Bedrock adapters with real SDK clients against a local fake of the Bedrock runtime API
//! that speaks its restJson1 shapes (Converse, StartAsyncInvoke, GetAsyncInvoke, InvokeModel)
//! and its error responses. SDK retries are off so a throttle reaches the adapter as sent.

use aws_config::retry::RetryConfig;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use vidpipe_aws::bedrock::{
    BedrockConfig, BedrockPlanner, NovaCanvasProvider, NovaReelProvider, PlannerRetry,
    reel_request_token,
};
use vidpipe_domain::media::ClipSpec;
use vidpipe_domain::plan::{PlanDraft, PlanError};
use vidpipe_domain::ports::{
    BlobStore, ClipMedia, ClipProgress, ClipProvider, Planner, ProviderCost, ProviderError,
};
use vidpipe_domain::request::{GenerationRequest, GenerationRequestBody};
use vidpipe_pipeline::embedded::FsBlobStore;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const PLANNER_MODEL: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";
const BUCKET: &str = "media-bucket";
const ARN: &str = "arn:aws:bedrock:us-east-1:123456789012:async-invoke/abc123def456";
const ARN_PATH: &str =
    "/async-invoke/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aasync-invoke%2Fabc123def456";

async fn client(server: &MockServer) -> aws_sdk_bedrockruntime::Client {
    let sdk = vidpipe_aws::config::emulator_sdk_config(&server.uri())
        .await
        .into_builder()
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .build();
    BedrockConfig::default().client(&sdk)
}

fn request(prompt: &str, seconds: u32, clips: u32) -> GenerationRequest {
    let body: GenerationRequestBody = serde_json::from_value(json!({
        "prompt": prompt, "duration_seconds": seconds, "clip_count": clips, "aspect_ratio": "16:9"
    }))
    .expect("body");
    body.validate().expect("valid request")
}

fn spec(width: u32, height: u32, first_frame: Option<String>) -> ClipSpec {
    ClipSpec {
        scene_index: 0,
        visual_prompt: "A red fox wakes in the snow at dawn, slow push-in".into(),
        seed: 3_000_000_000,
        width,
        height,
        fps: 30,
        frames: 150,
        first_frame,
    }
}

fn body_of(req: &Request) -> Value {
    serde_json::from_slice(&req.body).expect("JSON body")
}

async fn received(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("recording on")
}

fn throttled() -> ResponseTemplate {
    ResponseTemplate::new(429)
        .insert_header("x-amzn-ErrorType", "ThrottlingException")
        .insert_header("content-type", "application/json")
        .set_body_json(json!({"message": "Too many requests, please wait before trying again."}))
}

fn converse_answer(content: Value, stop_reason: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason,
        "usage": {"inputTokens": 412, "outputTokens": 230, "totalTokens": 642},
        "metrics": {"latencyMs": 1830}
    }))
}

fn tool_use(input: Value) -> Value {
    json!([{"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "submit_plan", "input": input}}])
}

fn scene(n: u32, weight: u32) -> Value {
    json!({
        "visual_prompt": format!("scene {n} visual"),
        "caption": format!("caption {n}"),
        "narration": format!("narration {n}"),
        "weight": weight
    })
}

async fn planner_against(response: ResponseTemplate) -> (MockServer, BedrockPlanner) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/model/[^/]+/converse$"))
        .respond_with(response)
        .mount(&server)
        .await;
    let planner =
        BedrockPlanner::new(client(&server).await, PLANNER_MODEL).with_retry(PlannerRetry {
            attempts: 2,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        });
    (server, planner)
}

#[tokio::test]
async fn converse_tool_use_becomes_a_plan_of_exactly_the_requested_scenes() {
    let answer = converse_answer(
        tool_use(json!({"scenes": [scene(0, 4), scene(1, 5), scene(2, 6)]})),
        "tool_use",
    );
    let (server, planner) = planner_against(answer).await;
    let r = request("A fox wakes. It hunts at dawn. The snow falls.", 12, 3);

    let plan = planner.plan(&r).await.expect("plan");

    assert_eq!(planner.name(), "bedrock");
    assert_eq!(plan.planner, "bedrock");
    assert_eq!(plan.scenes.len(), 3);
    assert_eq!(plan.composed_frames(), r.total_frames());
    assert_eq!(plan.total_frames, r.total_frames());
    let narrations: Vec<&str> = plan.scenes.iter().map(|s| s.narration.as_str()).collect();
    assert_eq!(narrations, ["narration 0", "narration 1", "narration 2"]);
    assert_eq!(plan.scenes[2].caption, "caption 2");

    let requests = received(&server).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].url.path(),
        "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    );
    let body = body_of(&requests[0]);
    assert_eq!(
        body["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "submit_plan"}})
    );
    let tools = body["toolConfig"]["tools"].as_array().expect("tools");
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0]["toolSpec"]["name"], "submit_plan");
    assert_eq!(
        tools[0]["toolSpec"]["inputSchema"]["json"],
        PlanDraft::json_schema(3)
    );
    let system = body["system"][0]["text"].as_str().expect("system prompt");
    assert!(system.contains("exactly 3 scenes"), "{system}");
    assert_eq!(body["messages"][0]["role"], "user");
    let user = body["messages"][0]["content"][0]["text"]
        .as_str()
        .expect("user text");
    assert!(
        user.ends_with("Text:\nA fox wakes. It hunts at dawn. The snow falls."),
        "{user}"
    );
}

#[tokio::test]
async fn a_throttled_converse_is_retried_then_unavailable() {
    let (server, planner) = planner_against(throttled()).await;

    let err = planner
        .plan(&request("One. Two.", 10, 2))
        .await
        .unwrap_err();

    assert_eq!(
        err,
        PlanError::Unavailable("Converse was throttled (after 2 attempts)".into())
    );
    assert_eq!(received(&server).await.len(), 2);
}

#[tokio::test]
async fn a_text_answer_without_the_tool_is_invalid() {
    let answer = converse_answer(json!([{"text": "Sure! Scene 1: a fox."}]), "end_turn");
    let (server, planner) = planner_against(answer).await;

    let err = planner
        .plan(&request("One. Two.", 10, 2))
        .await
        .unwrap_err();

    assert_eq!(
        err,
        PlanError::Invalid(
            "the model answered without calling submit_plan (stop reason end_turn)".into()
        )
    );
    assert_eq!(received(&server).await.len(), 1);
}

#[tokio::test]
async fn a_tool_input_with_the_wrong_count_or_shape_is_invalid() {
    let (_server, planner) = planner_against(converse_answer(
        tool_use(json!({"scenes": [scene(0, 5)]})),
        "tool_use",
    ))
    .await;
    let err = planner
        .plan(&request("One. Two.", 10, 2))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PlanError::Invalid("1 scenes; the request asks for 2".into())
    );

    let (_server, planner) = planner_against(converse_answer(
        tool_use(json!({"plan": "two scenes"})),
        "tool_use",
    ))
    .await;
    let err = planner
        .plan(&request("One. Two.", 10, 2))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PlanError::Invalid(m) if m.starts_with("submit_plan input is not a plan: unknown field `plan`")),
        "{err:?}"
    );
}

// ---- Nova Reel ----

struct ReelFixture {
    server: MockServer,
    provider: NovaReelProvider,
    blobs: Arc<FsBlobStore>,
    dir: tempfile::TempDir,
}

async fn reel_fixture() -> ReelFixture {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = Arc::new(FsBlobStore::new(dir.path().join("bucket")).expect("fs store"));
    let config = BedrockConfig::from_lookup(|name| {
        (name == "VIDPIPE_BEDROCK_REEL_USD_PER_SECOND").then(|| "0.25".to_owned())
    })
    .expect("config");
    let provider = config
        .reel(&client(&server).await, blobs.clone(), BUCKET)
        .with_poll_after(Duration::from_secs(20));
    ReelFixture {
        server,
        provider,
        blobs,
        dir,
    }
}

fn get_async_invoke(status: &str, extra: Value) -> ResponseTemplate {
    let mut body = json!({
        "invocationArn": ARN,
        "modelArn": "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-reel-v1:1",
        "clientRequestToken": reel_request_token("job/scene-0"),
        "status": status,
        "submitTime": "2025-06-01T12:00:00Z",
        "lastModifiedTime": "2025-06-01T12:01:30Z",
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://media-bucket/temp/bedrock-reel/abc123def456"}}
    });
    body.as_object_mut()
        .expect("object")
        .extend(extra.as_object().expect("object").clone());
    ResponseTemplate::new(200).set_body_json(body)
}

async fn mount_get(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path_regex(r"^/async-invoke/[^/]+$"))
        .respond_with(response)
        .mount(server)
        .await;
}

#[tokio::test]
async fn reel_submit_starts_an_idempotent_async_invoke_and_is_pending_with_the_arn() {
    let f = reel_fixture().await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/async-invoke$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"invocationArn": ARN})))
        .mount(&f.server)
        .await;
    let png = b"\x89PNG\r\n\x1a\nfake-png-bytes".to_vec();
    let uri = format!("data:image/png;base64,{}", BASE64.encode(&png));
    let dest = f.dir.path().join("clip.mp4");

    let first = f
        .provider
        .submit(&spec(1920, 1080, Some(uri.clone())), "job/scene-0", &dest)
        .await
        .expect("submit");
    let again = f
        .provider
        .submit(&spec(1920, 1080, Some(uri)), "job/scene-0", &dest)
        .await
        .expect("resubmit");

    let pending = ClipProgress::Pending {
        handle: ARN.into(),
        poll_after: Duration::from_secs(20),
    };
    assert_eq!(first, pending);
    assert_eq!(again, pending);
    let requests = received(&f.server).await;
    assert_eq!(requests.len(), 2);
    let (a, b) = (body_of(&requests[0]), body_of(&requests[1]));
    assert_eq!(a["clientRequestToken"], reel_request_token("job/scene-0"));
    assert_eq!(a["clientRequestToken"], b["clientRequestToken"]);
    assert_eq!(a["modelId"], "amazon.nova-reel-v1:1");
    assert_eq!(
        a["outputDataConfig"],
        json!({"s3OutputDataConfig": {"s3Uri": "s3://media-bucket/temp/bedrock-reel/"}})
    );
    assert_eq!(
        a["modelInput"],
        json!({
            "taskType": "TEXT_VIDEO",
            "textToVideoParams": {
                "text": "A red fox wakes in the snow at dawn, slow push-in",
                "images": [{"format": "png", "source": {"bytes": BASE64.encode(&png)}}]
            },
            "videoGenerationConfig": {
                "durationSeconds": 6,
                "fps": 24,
                "dimension": "1280x720",
                "seed": 3_000_000_000u64 % 2_147_483_647
            }
        })
    );
    assert!(!dest.exists());
}

#[tokio::test]
async fn reel_submit_without_a_data_uri_is_text_only_and_a_long_prompt_is_cut() {
    let f = reel_fixture().await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/async-invoke$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"invocationArn": ARN})))
        .mount(&f.server)
        .await;
    let mut long = spec(1080, 1920, Some("https://example.test/frame.png".into()));
    long.visual_prompt = "snowy ".repeat(100);

    f.provider
        .submit(&long, "job/scene-1", &f.dir.path().join("c.mp4"))
        .await
        .expect("submit");

    let body = body_of(&received(&f.server).await[0]);
    let params = &body["modelInput"]["textToVideoParams"];
    assert_eq!(params.get("images"), None);
    let text = params["text"].as_str().expect("text");
    assert_eq!(text, "snowy ".repeat(85).trim_end());
    assert_eq!(text.chars().count(), 509);
}

#[tokio::test]
async fn reel_submit_throttled_is_throttled() {
    let f = reel_fixture().await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/async-invoke$"))
        .respond_with(throttled())
        .mount(&f.server)
        .await;

    let err = f
        .provider
        .submit(
            &spec(1920, 1080, None),
            "job/scene-0",
            &f.dir.path().join("c.mp4"),
        )
        .await
        .unwrap_err();

    assert!(
        matches!(err, ProviderError::Throttled { retry_after: None }),
        "{err:?}"
    );
}

#[tokio::test]
async fn reel_poll_in_progress_is_pending() {
    let f = reel_fixture().await;
    mount_get(&f.server, get_async_invoke("InProgress", json!({}))).await;
    let dest = f.dir.path().join("clip.mp4");

    let progress = f.provider.poll(ARN, &dest).await.expect("poll");

    assert_eq!(
        progress,
        ClipProgress::Pending {
            handle: ARN.into(),
            poll_after: Duration::from_secs(20)
        }
    );
    let requests = received(&f.server).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].url.path(), ARN_PATH);
    assert!(!dest.exists());
}

#[tokio::test]
async fn reel_poll_completed_fetches_the_video_from_our_bucket() {
    let f = reel_fixture().await;
    let video = b"\x00\x00\x00\x18ftypmp42 fake nova reel video".to_vec();
    f.blobs
        .put_bytes(
            "temp/bedrock-reel/abc123def456/output.mp4",
            video.clone(),
            "video/mp4",
        )
        .await
        .expect("seed output");
    mount_get(
        &f.server,
        get_async_invoke("Completed", json!({"endTime": "2025-06-01T12:01:30Z"})),
    )
    .await;
    let dest = f.dir.path().join("clip.mp4");

    let progress = f.provider.poll(ARN, &dest).await.expect("poll");

    assert_eq!(
        progress,
        ClipProgress::Ready {
            media: ClipMedia::Video,
            cost: Some(ProviderCost {
                usd: 1.5,
                basis: "6 s of Nova Reel video at $0.25/s".into()
            })
        }
    );
    assert_eq!(std::fs::read(&dest).expect("dest"), video);
}

#[tokio::test]
async fn reel_output_in_another_bucket_is_refused() {
    let f = reel_fixture().await;
    mount_get(
        &f.server,
        get_async_invoke(
            "Completed",
            json!({"outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://someone-else/x/abc123def456"}}}),
        ),
    )
    .await;

    let err = f
        .provider
        .poll(ARN, &f.dir.path().join("clip.mp4"))
        .await
        .unwrap_err();

    assert_eq!(
        err.to_string(),
        "provider failed: output \"s3://someone-else/x/abc123def456\" is outside bucket media-bucket"
    );
}

#[tokio::test]
async fn reel_poll_failed_reports_the_failure_message() {
    let f = reel_fixture().await;
    mount_get(
        &f.server,
        get_async_invoke(
            "Failed",
            json!({"failureMessage": "Internal failure while generating the video"}),
        ),
    )
    .await;
    let err = f
        .provider
        .poll(ARN, &f.dir.path().join("clip.mp4"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Failed(m) if m == "Internal failure while generating the video"),
        "{err:?}"
    );

    let f = reel_fixture().await;
    mount_get(
        &f.server,
        get_async_invoke(
            "Failed",
            json!({"failureMessage": "The generated video was blocked by our content filters."}),
        ),
    )
    .await;
    let err = f
        .provider
        .poll(ARN, &f.dir.path().join("clip.mp4"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Rejected(m) if m == "The generated video was blocked by our content filters."),
        "{err:?}"
    );
}

#[tokio::test]
async fn reel_cancel_is_ok() {
    let f = reel_fixture().await;
    f.provider.cancel(ARN).await.expect("cancel");
    assert_eq!(received(&f.server).await.len(), 0);
}

// ---- Nova Canvas ----

async fn canvas_against(response: ResponseTemplate) -> (MockServer, NovaCanvasProvider) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/model/[^/]+/invoke$"))
        .respond_with(response)
        .mount(&server)
        .await;
    let config = BedrockConfig::from_lookup(|name| {
        (name == "VIDPIPE_BEDROCK_CANVAS_USD_PER_IMAGE").then(|| "0.5".to_owned())
    })
    .expect("config");
    let provider = config.canvas(&client(&server).await);
    (server, provider)
}

#[tokio::test]
async fn canvas_writes_the_decoded_image_at_a_size_per_aspect() {
    let image = b"\x89PNG\r\n\x1a\nfake canvas image".to_vec();
    let answer = ResponseTemplate::new(200)
        .insert_header("content-type", "application/json")
        .set_body_json(json!({"images": [BASE64.encode(&image)], "error": null}));
    let (server, provider) = canvas_against(answer).await;
    let dir = tempfile::tempdir().expect("tempdir");

    let mut sizes = Vec::new();
    for (i, (w, h)) in [(1920, 1080), (1080, 1920), (1080, 1080), (1080, 1350)]
        .into_iter()
        .enumerate()
    {
        let dest = dir.path().join(format!("still-{i}.png"));
        let progress = provider
            .submit(&spec(w, h, None), "job/scene-0", &dest)
            .await
            .expect("submit");
        assert_eq!(
            progress,
            ClipProgress::Ready {
                media: ClipMedia::Image,
                cost: Some(ProviderCost {
                    usd: 0.5,
                    basis: "1 standard Nova Canvas image at $0.5".into()
                })
            }
        );
        assert_eq!(std::fs::read(&dest).expect("dest"), image);
    }
    for req in received(&server).await {
        assert_eq!(req.url.path(), "/model/amazon.nova-canvas-v1%3A0/invoke");
        let body = body_of(&req);
        assert_eq!(body["taskType"], "TEXT_IMAGE");
        assert_eq!(
            body["textToImageParams"]["text"],
            "A red fox wakes in the snow at dawn, slow push-in"
        );
        let config = &body["imageGenerationConfig"];
        assert_eq!(config["numberOfImages"], 1);
        assert_eq!(config["quality"], "standard");
        assert_eq!(config["seed"], 3_000_000_000u64 % 858_993_460);
        assert_eq!(config["cfgScale"], 6.5);
        sizes.push((config["width"].clone(), config["height"].clone()));
    }
    assert_eq!(
        sizes,
        [(1280, 720), (720, 1280), (1024, 1024), (896, 1120)]
            .map(|(w, h)| (json!(w), json!(h)))
            .to_vec()
    );
}

#[tokio::test]
async fn canvas_throttled_is_throttled() {
    let (_server, provider) = canvas_against(throttled()).await;
    let dir = tempfile::tempdir().expect("tempdir");

    let err = provider
        .submit(
            &spec(1920, 1080, None),
            "job/scene-0",
            &dir.path().join("s.png"),
        )
        .await
        .unwrap_err();

    assert!(
        matches!(err, ProviderError::Throttled { retry_after: None }),
        "{err:?}"
    );
}

#[tokio::test]
async fn canvas_error_field_is_a_rejection() {
    let answer = ResponseTemplate::new(200)
        .insert_header("content-type", "application/json")
        .set_body_json(json!({
            "images": [],
            "error": "This generated image has been blocked by our content filters."
        }));
    let (_server, provider) = canvas_against(answer).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("s.png");

    let err = provider
        .submit(&spec(1920, 1080, None), "job/scene-0", &dest)
        .await
        .unwrap_err();

    assert!(
        matches!(&err, ProviderError::Rejected(m) if m == "This generated image has been blocked by our content filters."),
        "{err:?}"
    );
    assert!(!dest.exists());
}

#[tokio::test]
async fn canvas_validation_exception_is_a_rejection_with_the_service_message() {
    let answer = ResponseTemplate::new(400)
        .insert_header("x-amzn-ErrorType", "ValidationException")
        .insert_header("content-type", "application/json")
        .set_body_json(
            json!({"message": "Malformed input request: width must be a multiple of 16"}),
        );
    let (_server, provider) = canvas_against(answer).await;
    let dir = tempfile::tempdir().expect("tempdir");

    let err = provider
        .submit(
            &spec(1920, 1080, None),
            "job/scene-0",
            &dir.path().join("s.png"),
        )
        .await
        .unwrap_err();

    assert!(
        matches!(&err, ProviderError::Rejected(m) if m == "Malformed input request: width must be a multiple of 16"),
        "{err:?}"
    );
}

// ---- The ports' conformance suites ----

#[tokio::test]
async fn the_bedrock_adapters_conform_to_their_ports() {
    use vidpipe_pipeline::conformance::{clip_provider, planner};
    let (_server, p) = planner_against(converse_answer(
        tool_use(json!({"scenes": [scene(0, 2), scene(1, 3)]})),
        "tool_use",
    ))
    .await;
    planner::run_all(&p, &request("A fox wakes. It hunts at dawn.", 10, 2)).await;

    let f = reel_fixture().await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/async-invoke$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"invocationArn": ARN})))
        .mount(&f.server)
        .await;
    mount_get(
        &f.server,
        get_async_invoke("Completed", json!({"endTime": "2025-06-01T12:01:30Z"})),
    )
    .await;
    f.blobs
        .put_bytes(
            "temp/bedrock-reel/abc123def456/output.mp4",
            b"\x00\x00\x00\x18ftypmp42 fake nova reel video".to_vec(),
            "video/mp4",
        )
        .await
        .expect("seed output");
    let dir = tempfile::tempdir().expect("tempdir");
    clip_provider::run_all(
        &f.provider,
        &spec(1280, 720, None),
        &dir.path().join("reel"),
    )
    .await;

    let image = b"\x89PNG\r\n\x1a\nfake canvas image".to_vec();
    let (_server, canvas) = canvas_against(
        ResponseTemplate::new(200)
            .insert_header("content-type", "application/json")
            .set_body_json(json!({"images": [BASE64.encode(&image)], "error": null})),
    )
    .await;
    clip_provider::run_all(&canvas, &spec(1280, 720, None), &dir.path().join("canvas")).await;
}

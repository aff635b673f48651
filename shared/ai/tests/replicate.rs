//! The Replicate provider against a fake API on 127.0.0.1: the prediction lifecycle, every
//! ending, HTTP failures, the lost-create check, and webhook verification.

use base64::Engine as _;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use vidpipe_ai::replicate::{
    ConfigError, ENV_INPUT, ENV_PRICE_PER_SECOND, ENV_TOKEN, ReplicateConfig, ReplicateProvider,
    parse_retry_after, webhook_url_for,
};
use vidpipe_ai::webhook::{
    WebhookError, clip_identity_from_webhook_url, verify_webhook, verify_webhook_pairs,
};
use vidpipe_domain::media::ClipSpec;
use vidpipe_domain::ports::{ClipMedia, ClipProgress, ClipProvider, ProviderError};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "r8_TopSecretTokenValue123";
const IDENTITY: &str = "clip-0f3a9c";

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

fn provider(server: &MockServer, model: &str, extra: &[(&str, &str)]) -> ReplicateProvider {
    let uri = server.uri();
    let mut pairs = vec![
        ("REPLICATE_API_TOKEN", TOKEN),
        ("VIDPIPE_REPLICATE_URL", uri.as_str()),
        ("VIDPIPE_REPLICATE_MODEL", model),
    ];
    pairs.extend_from_slice(extra);
    ReplicateProvider::from_lookup(env(&pairs)).expect("config")
}

fn spec(first_frame: Option<&str>) -> ClipSpec {
    ClipSpec {
        scene_index: 0,
        visual_prompt: "a lighthouse at dusk, waves".into(),
        seed: 7,
        width: 1280,
        height: 720,
        fps: 24,
        frames: 96,
        first_frame: first_frame.map(str::to_owned),
    }
}

fn prediction(id: &str, status: &str) -> Value {
    json!({"id": id, "status": status, "model": "minimax/video-01", "version": "hidden",
           "input": {"prompt": "a lighthouse at dusk, waves", "prompt_optimizer": false},
           "output": null, "error": null, "metrics": {},
           "urls": {"get": format!("https://api.invalid/v1/predictions/{id}")}})
}

fn with(mut p: Value, key: &str, value: Value) -> Value {
    p[key] = value;
    p
}

fn dest() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clip.mp4");
    (dir, file)
}

async fn empty_list(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/v1/predictions"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"next": null, "results": []})),
        )
        .mount(server)
        .await;
}

async fn requests(server: &MockServer, verb: &str, route: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == verb && r.url.path() == route)
        .collect()
}

fn header(r: &Request, name: &str) -> String {
    r.headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn create_starting_then_processing_then_succeeded_copies_the_exact_bytes() {
    let server = MockServer::start().await;
    empty_list(&server).await;
    Mock::given(method("POST"))
        .and(path("/v1/models/minimax/video-01/predictions"))
        .respond_with(ResponseTemplate::new(201).set_body_json(prediction("p1", "starting")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/predictions/p1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(prediction("p1", "processing")))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let out = format!("{}/files/p1/output.mp4", server.uri());
    Mock::given(method("GET"))
        .and(path("/v1/predictions/p1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(with(
            prediction("p1", "succeeded"),
            "output",
            json!(out),
        )))
        .mount(&server)
        .await;
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i * 31 % 251) as u8).collect();
    Mock::given(method("GET"))
        .and(path("/files/p1/output.mp4"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(bytes.clone(), "video/mp4"))
        .mount(&server)
        .await;

    let p = provider(&server, "minimax/video-01", &[]);
    let (_dir, file) = dest();
    let pending = ClipProgress::Pending {
        handle: "p1".into(),
        poll_after: Duration::from_secs(5),
    };
    assert_eq!(
        p.submit(&spec(None), IDENTITY, &file).await.unwrap(),
        pending
    );
    assert_eq!(p.poll("p1", &file).await.unwrap(), pending);
    assert!(!file.exists());
    assert_eq!(
        p.poll("p1", &file).await.unwrap(),
        ClipProgress::Ready {
            media: ClipMedia::Video,
            cost: None
        }
    );
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
    assert_eq!(
        requests(&server, "GET", "/v1/predictions/p1").await.len(),
        2
    );
    assert_eq!(
        requests(&server, "POST", "/v1/models/minimax/video-01/predictions")
            .await
            .len(),
        1
    );
    // The output host must never see the API token.
    let copy = &requests(&server, "GET", "/files/p1/output.mp4").await[0];
    assert_eq!(header(copy, "authorization"), "");
}

#[tokio::test]
async fn a_list_output_takes_the_first_media_url_and_an_image_is_reported_as_one() {
    let server = MockServer::start().await;
    empty_list(&server).await;
    let first = format!("{}/files/a.png", server.uri());
    let second = format!("{}/files/b.png", server.uri());
    Mock::given(method("POST"))
        .and(path("/v1/models/minimax/video-01/predictions"))
        .respond_with(ResponseTemplate::new(201).set_body_json(with(
            prediction("p2", "succeeded"),
            "output",
            json!([first, second]),
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/files/a.png"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(b"PNG-A".to_vec(), "image/png"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/files/b.png"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(b"PNG-B".to_vec(), "image/png"))
        .mount(&server)
        .await;

    let p = provider(&server, "minimax/video-01", &[]);
    let (_dir, file) = dest();
    assert_eq!(
        p.submit(&spec(None), IDENTITY, &file).await.unwrap(),
        ClipProgress::Ready {
            media: ClipMedia::Image,
            cost: None
        }
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"PNG-A");
    assert!(requests(&server, "GET", "/files/b.png").await.is_empty());
}

#[tokio::test]
async fn a_string_output_with_predict_time_is_costed_at_the_configured_price() {
    let server = MockServer::start().await;
    let out = format!("{}/files/c.mp4?token=abc", server.uri());
    let done = with(
        with(prediction("p3", "succeeded"), "output", json!(out)),
        "metrics",
        json!({"predict_time": 12.5, "total_time": 14.0}),
    );
    Mock::given(method("GET"))
        .and(path("/v1/predictions/p3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(done))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/files/c.mp4"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(b"MP4".to_vec(), "video/mp4"))
        .mount(&server)
        .await;

    let p = provider(
        &server,
        "minimax/video-01",
        &[(ENV_PRICE_PER_SECOND, "0.002")],
    );
    let (_dir, file) = dest();
    match p.poll("p3", &file).await.unwrap() {
        ClipProgress::Ready {
            media: ClipMedia::Video,
            cost: Some(cost),
        } => {
            assert!((cost.usd - 0.025).abs() < 1e-12, "{}", cost.usd);
            assert_eq!(cost.basis, "predict_time 12.5 s at $0.002/s");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"MP4");
}

async fn poll_once(body: Value) -> Result<ClipProgress, ProviderError> {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/predictions/px"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    let p = provider(&server, "minimax/video-01", &[]);
    let (_dir, file) = dest();
    p.poll("px", &file).await
}

#[tokio::test]
async fn failed_canceled_and_aborted_each_end_their_own_way() {
    let refused = poll_once(with(
        prediction("px", "failed"),
        "error",
        json!("Input flagged as NSFW by the safety checker"),
    ))
    .await;
    match refused {
        Err(ProviderError::Rejected(r)) => assert_eq!(
            r,
            "prediction px failed: Input flagged as NSFW by the safety checker"
        ),
        other => panic!("{other:?}"),
    }

    let crashed = poll_once(with(
        prediction("px", "failed"),
        "error",
        json!("CUDA out of memory; see https://h.invalid/log?sig=SECRETSIG"),
    ))
    .await;
    match crashed {
        Err(ProviderError::Failed(r)) => assert_eq!(
            r,
            "prediction px failed: CUDA out of memory; see https://h.invalid/log?[redacted]"
        ),
        other => panic!("{other:?}"),
    }

    let canceled = match poll_once(prediction("px", "canceled")).await {
        Err(ProviderError::Failed(r)) => r,
        other => panic!("{other:?}"),
    };
    assert!(
        canceled.contains("was canceled while running"),
        "{canceled}"
    );

    let aborted = match poll_once(prediction("px", "aborted")).await {
        Err(ProviderError::Failed(r)) => r,
        other => panic!("{other:?}"),
    };
    assert!(
        aborted.contains("was aborted before it started"),
        "{aborted}"
    );
    assert_ne!(canceled, aborted);
}

#[tokio::test]
async fn throttling_reports_retry_after_when_given_and_none_otherwise() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/predictions/slow"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "7"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/predictions/bare"))
        .respond_with(ResponseTemplate::new(429))
        .mount(&server)
        .await;
    let p = provider(&server, "minimax/video-01", &[]);
    let (_dir, file) = dest();
    match p.poll("slow", &file).await {
        Err(ProviderError::Throttled { retry_after }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)))
        }
        other => panic!("{other:?}"),
    }
    match p.poll("bare", &file).await {
        Err(ProviderError::Throttled { retry_after }) => assert_eq!(retry_after, None),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn server_errors_and_refused_connections_are_unavailable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/predictions/p5"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let p = provider(&server, "minimax/video-01", &[]);
    let (_dir, file) = dest();
    match p.poll("p5", &file).await {
        Err(ProviderError::Unavailable(r)) => {
            assert_eq!(r, "prediction poll: replicate answered HTTP 503")
        }
        other => panic!("{other:?}"),
    }

    // A port nothing listens on: bind one, note it, and close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let closed = ReplicateProvider::from_lookup(env(&[
        ("REPLICATE_API_TOKEN", TOKEN),
        ("VIDPIPE_REPLICATE_URL", url.as_str()),
        ("VIDPIPE_REPLICATE_MODEL", "minimax/video-01"),
    ]))
    .unwrap();
    match closed.poll("p5", &file).await {
        Err(ProviderError::Unavailable(r)) => assert!(!r.contains(TOKEN), "{r}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_output_that_is_gone_when_copied_is_an_expired_failure() {
    let server = MockServer::start().await;
    let out = format!("{}/files/old.mp4?X-Signature=SIGNEDSECRET", server.uri());
    Mock::given(method("GET"))
        .and(path("/v1/predictions/p6"))
        .respond_with(ResponseTemplate::new(200).set_body_json(with(
            prediction("p6", "succeeded"),
            "output",
            json!(out),
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/files/old.mp4"))
        .respond_with(ResponseTemplate::new(410))
        .mount(&server)
        .await;
    let p = provider(&server, "minimax/video-01", &[]);
    let (dir, file) = dest();
    match p.poll("p6", &file).await {
        Err(ProviderError::Failed(r)) => assert_eq!(r, "output expired before it was copied"),
        other => panic!("{other:?}"),
    }
    assert!(!file.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn a_signed_output_url_never_reaches_an_error() {
    let server = MockServer::start().await;
    let out = format!("{}/files/broken.mp4?X-Signature=SIGNEDSECRET", server.uri());
    Mock::given(method("GET"))
        .and(path("/v1/predictions/p7"))
        .respond_with(ResponseTemplate::new(200).set_body_json(with(
            prediction("p7", "succeeded"),
            "output",
            json!(out),
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/files/broken.mp4"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    let p = provider(&server, "minimax/video-01", &[]);
    let (_dir, file) = dest();
    let err = p.poll("p7", &file).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("SIGNEDSECRET"), "{text}");
}

#[tokio::test]
async fn an_official_model_is_created_on_its_model_endpoint_with_every_header() {
    let server = MockServer::start().await;
    empty_list(&server).await;
    Mock::given(method("POST"))
        .and(path("/v1/models/kwaivgi/kling-v2.1/predictions"))
        .respond_with(ResponseTemplate::new(201).set_body_json(prediction("k1", "starting")))
        .mount(&server)
        .await;
    let p = provider(
        &server,
        "kwaivgi/kling-v2.1",
        &[(
            "VIDPIPE_REPLICATE_WEBHOOK_URL",
            "https://hooks.example/replicate",
        )],
    );
    let (_dir, file) = dest();
    let frame = "https://frames.example/scene0.png";
    let got = p.submit(&spec(Some(frame)), IDENTITY, &file).await.unwrap();
    assert_eq!(
        got,
        ClipProgress::Pending {
            handle: "k1".into(),
            poll_after: Duration::from_secs(5)
        }
    );

    let created = requests(&server, "POST", "/v1/models/kwaivgi/kling-v2.1/predictions").await;
    assert_eq!(created.len(), 1);
    let r = &created[0];
    assert_eq!(header(r, "authorization"), format!("Bearer {TOKEN}"));
    assert_eq!(header(r, "prefer"), "wait=5");
    assert_eq!(header(r, "cancel-after"), "15m");
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body,
        json!({
            "input": {"prompt": "a lighthouse at dusk, waves", "start_image": frame,
                      "duration": 5, "mode": "standard"},
            "webhook": "https://hooks.example/replicate?vidpipe_clip=clip-0f3a9c",
            "webhook_events_filter": ["completed"]
        })
    );
    assert!(
        requests(&server, "POST", "/v1/predictions")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_pinned_version_is_created_on_predictions_with_its_version_and_template() {
    let server = MockServer::start().await;
    empty_list(&server).await;
    Mock::given(method("POST"))
        .and(path("/v1/predictions"))
        .respond_with(ResponseTemplate::new(201).set_body_json(prediction("v1", "processing")))
        .mount(&server)
        .await;
    let template = r#"{"prompt": "{prompt}, cinematic", "seed": "{seed}", "num_frames": "{frames}",
                       "size": "{width}x{height}", "aspect_ratio": "{aspect_ratio}"}"#;
    let p = provider(
        &server,
        "acme/wan-custom:5f0e1d2c",
        &[
            (ENV_INPUT, template),
            ("VIDPIPE_REPLICATE_WAIT_SECONDS", "3"),
            ("VIDPIPE_REPLICATE_CANCEL_AFTER", "20m"),
        ],
    );
    let (_dir, file) = dest();
    p.submit(&spec(None), IDENTITY, &file).await.unwrap();
    let created = requests(&server, "POST", "/v1/predictions").await;
    assert_eq!(created.len(), 1);
    let r = &created[0];
    assert_eq!(header(r, "prefer"), "wait=3");
    assert_eq!(header(r, "cancel-after"), "20m");
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body,
        json!({
            "version": "5f0e1d2c",
            "input": {"prompt": "a lighthouse at dusk, waves, cinematic", "seed": 7,
                      "num_frames": 96, "size": "1280x720", "aspect_ratio": "16:9"}
        })
    );
}

#[tokio::test]
async fn a_resubmit_after_a_lost_create_finds_the_prediction_by_its_webhook_identity() {
    let server = MockServer::start().await;
    let hook = "https://hooks.example/replicate";
    let other = with(
        prediction("other", "processing"),
        "webhook",
        json!(format!("{hook}?vidpipe_clip=another-clip")),
    );
    let mine = with(
        with(
            prediction("mine", "processing"),
            "webhook",
            json!(format!("{hook}?vidpipe_clip={IDENTITY}")),
        ),
        "model",
        json!("kwaivgi/kling-v2.1"),
    );
    let other = with(other, "model", json!("kwaivgi/kling-v2.1"));
    Mock::given(method("GET"))
        .and(path("/v1/predictions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": [other, mine]})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(prediction("dup", "starting")))
        .mount(&server)
        .await;
    let p = provider(
        &server,
        "kwaivgi/kling-v2.1",
        &[("VIDPIPE_REPLICATE_WEBHOOK_URL", hook)],
    );
    let (_dir, file) = dest();
    let got = p
        .submit(&spec(Some("https://frames.example/0.png")), IDENTITY, &file)
        .await
        .unwrap();
    assert_eq!(
        got,
        ClipProgress::Pending {
            handle: "mine".into(),
            poll_after: Duration::from_secs(5)
        }
    );
    let posts = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST")
        .count();
    assert_eq!(posts, 0);
}

#[tokio::test]
async fn without_webhooks_a_resubmit_matches_on_model_and_input_and_skips_failed_ones() {
    let server = MockServer::start().await;
    let same_input = prediction("x", "processing")["input"].clone();
    let failed = prediction("dead", "failed");
    let different = with(
        prediction("different", "processing"),
        "input",
        json!({"prompt": "something else", "prompt_optimizer": false}),
    );
    // A list entry without its input: its details are fetched to decide.
    let mut sparse = prediction("sparse", "starting");
    sparse.as_object_mut().unwrap().remove("input");
    let mine = with(prediction("mine", "processing"), "input", same_input);
    Mock::given(method("GET"))
        .and(path("/v1/predictions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"results": [failed, different, sparse, mine]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/predictions/sparse"))
        .respond_with(ResponseTemplate::new(200).set_body_json(with(
            prediction("sparse", "starting"),
            "input",
            json!({"prompt": "yet another", "prompt_optimizer": false}),
        )))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(prediction("dup", "starting")))
        .mount(&server)
        .await;
    let p = provider(&server, "minimax/video-01", &[]);
    let (_dir, file) = dest();
    let got = p.submit(&spec(None), IDENTITY, &file).await.unwrap();
    assert_eq!(
        got,
        ClipProgress::Pending {
            handle: "mine".into(),
            poll_after: Duration::from_secs(5)
        }
    );
    assert_eq!(
        requests(&server, "GET", "/v1/predictions/sparse")
            .await
            .len(),
        1
    );
    let posts = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST")
        .count();
    assert_eq!(posts, 0);
}

#[tokio::test]
async fn cancel_posts_to_the_cancel_endpoint_and_a_missing_prediction_is_fine() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/predictions/p8/cancel"))
        .respond_with(ResponseTemplate::new(200).set_body_json(prediction("p8", "canceled")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/predictions/gone/cancel"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"detail": "Not found."})))
        .mount(&server)
        .await;
    let p = provider(&server, "minimax/video-01", &[]);
    p.cancel("p8").await.unwrap();
    p.cancel("gone").await.unwrap();
    let sent = requests(&server, "POST", "/v1/predictions/p8/cancel").await;
    assert_eq!(sent.len(), 1);
    assert_eq!(header(&sent[0], "authorization"), format!("Bearer {TOKEN}"));
    assert!(matches!(
        p.cancel("../models").await,
        Err(ProviderError::Failed(_))
    ));
}

#[tokio::test]
async fn an_invalid_input_is_rejected_with_the_api_detail() {
    let server = MockServer::start().await;
    empty_list(&server).await;
    Mock::given(method("POST"))
        .and(path("/v1/models/minimax/video-01/predictions"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "title": "Input validation failed", "status": 422,
            "detail": "- input.prompt: String should have at most 2000 characters"
        })))
        .mount(&server)
        .await;
    let p = provider(&server, "minimax/video-01", &[]);
    let (_dir, file) = dest();
    match p.submit(&spec(None), IDENTITY, &file).await {
        Err(ProviderError::Rejected(r)) => assert_eq!(
            r,
            "prediction create: - input.prompt: String should have at most 2000 characters"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_missing_first_frame_is_rejected_before_any_request() {
    let server = MockServer::start().await;
    let p = provider(&server, "kwaivgi/kling-v2.1", &[]);
    let (_dir, file) = dest();
    match p.submit(&spec(None), IDENTITY, &file).await {
        Err(ProviderError::Rejected(r)) => assert_eq!(
            r,
            "kwaivgi/kling-v2.1 starts from an image and scene 0 has no first frame"
        ),
        other => panic!("{other:?}"),
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_token_never_shows_in_debug_output_or_errors() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"detail": "Invalid token."})))
        .mount(&server)
        .await;
    let p = provider(&server, "minimax/video-01", &[]);
    let debug = format!("{p:?} {:?} {}", p.config(), p.config().token);
    assert!(!debug.contains(TOKEN), "{debug}");
    assert!(debug.contains("***"));
    let (_dir, file) = dest();
    let err = p.poll("p9", &file).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains(TOKEN), "{text}");
    match err {
        ProviderError::Failed(r) => {
            assert_eq!(
                r,
                "prediction poll: replicate refused the API token (HTTP 401)"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn configuration_errors_name_the_variable() {
    let missing = ReplicateConfig::from_lookup(env(&[("VIDPIPE_REPLICATE_MODEL", "a/b")]));
    assert_eq!(
        missing.unwrap_err(),
        ConfigError::Missing { var: ENV_TOKEN }
    );

    let price = ReplicateConfig::from_lookup(env(&[
        (ENV_TOKEN, TOKEN),
        ("VIDPIPE_REPLICATE_MODEL", "minimax/video-01"),
        (ENV_PRICE_PER_SECOND, "cheap"),
    ]))
    .unwrap_err();
    assert!(
        matches!(
            price,
            ConfigError::Invalid {
                var: ENV_PRICE_PER_SECOND,
                ..
            }
        ),
        "{price}"
    );

    let no_preset = ReplicateConfig::from_lookup(env(&[
        (ENV_TOKEN, TOKEN),
        ("VIDPIPE_REPLICATE_MODEL", "someone/unknown-model"),
    ]))
    .unwrap_err();
    assert!(
        matches!(no_preset, ConfigError::Invalid { var: ENV_INPUT, .. }),
        "{no_preset}"
    );
    assert!(!format!("{no_preset}").contains(TOKEN));

    let bad_model = ReplicateConfig::from_lookup(env(&[
        (ENV_TOKEN, TOKEN),
        ("VIDPIPE_REPLICATE_MODEL", "no-slash"),
    ]))
    .unwrap_err();
    assert!(
        matches!(
            bad_model,
            ConfigError::Invalid {
                var: "VIDPIPE_REPLICATE_MODEL",
                ..
            }
        ),
        "{bad_model}"
    );

    let bad_url = ReplicateConfig::from_lookup(env(&[
        (ENV_TOKEN, TOKEN),
        ("VIDPIPE_REPLICATE_MODEL", "minimax/video-01"),
        ("VIDPIPE_REPLICATE_WEBHOOK_URL", "not a url"),
    ]))
    .unwrap_err();
    assert!(
        matches!(
            bad_url,
            ConfigError::Invalid {
                var: "VIDPIPE_REPLICATE_WEBHOOK_URL",
                ..
            }
        ),
        "{bad_url}"
    );
}

#[test]
fn cache_identities_differ_by_model_version_and_mapping() {
    let make = |model: &str, input: Option<&str>| {
        let mut pairs = vec![(ENV_TOKEN, TOKEN), ("VIDPIPE_REPLICATE_MODEL", model)];
        if let Some(i) = input {
            pairs.push((ENV_INPUT, i));
        }
        ReplicateProvider::from_lookup(env(&pairs))
            .unwrap()
            .cache_identity()
    };
    let kling = make("kwaivgi/kling-v2.1", None);
    assert!(
        kling.starts_with("replicate|kwaivgi/kling-v2.1|"),
        "{kling}"
    );
    let minimax = make("minimax/video-01", None);
    let custom = make("minimax/video-01", Some(r#"{"prompt": "{prompt}"}"#));
    let pinned = make("minimax/video-01:abc", Some(r#"{"prompt": "{prompt}"}"#));
    let reordered = make(
        "minimax/video-01",
        Some(r#"{"prompt_optimizer": false, "prompt": "{prompt}"}"#),
    );
    assert_ne!(kling, minimax);
    assert_ne!(minimax, custom);
    assert_ne!(custom, pinned);
    // The preset written out by hand, keys in another order, is the same mapping.
    assert_eq!(minimax, reordered);
}

const SECRET_BYTES: &[u8] = b"vidpipe-test-webhook-signing-key";

fn secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(SECRET_BYTES)
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn signed(id: &str, ts: i64, body: &[u8]) -> HeaderMap {
    let sig = standardwebhooks::Webhook::new(&secret())
        .unwrap()
        .sign(id, ts, body)
        .unwrap();
    let mut h = HeaderMap::new();
    h.insert("webhook-id", id.parse().unwrap());
    h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
    h.insert("webhook-signature", sig.parse().unwrap());
    h
}

fn webhook_body() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": "wh1", "status": "succeeded", "output": "https://out.example/v.mp4",
        "error": null, "metrics": {"predict_time": 3.25},
        "webhook": format!("https://hooks.example/r?vidpipe_clip={IDENTITY}")
    }))
    .unwrap()
}

#[test]
fn a_valid_webhook_verifies_and_verifying_it_again_gives_the_same_prediction() {
    let body = webhook_body();
    let headers = signed("msg_1", now(), &body);
    let first = verify_webhook(&secret(), &headers, &body).unwrap();
    assert_eq!(first.id, "wh1");
    assert_eq!(first.output_url(), Some("https://out.example/v.mp4"));
    assert_eq!(first.metrics.as_ref().unwrap().predict_time, Some(3.25));
    assert_eq!(
        clip_identity_from_webhook_url(first.webhook.as_deref().unwrap()).as_deref(),
        Some(IDENTITY)
    );
    let again = verify_webhook(&secret(), &headers, &body).unwrap();
    assert_eq!(first, again);

    let pairs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_uppercase(), v.to_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        verify_webhook_pairs(&secret(), &pairs, &body).unwrap(),
        first
    );
}

#[test]
fn a_bad_signature_a_tampered_body_and_a_stale_timestamp_are_refused() {
    let body = webhook_body();
    let mut forged = signed("msg_2", now(), &body);
    forged.insert(
        "webhook-signature",
        "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
            .parse()
            .unwrap(),
    );
    assert!(matches!(
        verify_webhook(&secret(), &forged, &body),
        Err(WebhookError::Signature)
    ));

    let headers = signed("msg_3", now(), &body);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert!(matches!(
        verify_webhook(&secret(), &headers, &tampered),
        Err(WebhookError::Signature)
    ));

    let stale = signed("msg_4", now() - 6 * 60, &body);
    assert!(matches!(
        verify_webhook(&secret(), &stale, &body),
        Err(WebhookError::Stale)
    ));

    let mut unsigned = signed("msg_5", now(), &body);
    unsigned.remove("webhook-signature");
    assert!(matches!(
        verify_webhook(&secret(), &unsigned, &body),
        Err(WebhookError::Header("webhook-signature"))
    ));

    assert!(matches!(
        verify_webhook(
            "whsec_***not base64***",
            &signed("msg_6", now(), &body),
            &body
        ),
        Err(WebhookError::Secret)
    ));
}

#[test]
fn webhook_urls_carry_the_identity_and_give_it_back() {
    let url = webhook_url_for("https://hooks.example/r?tenant=a", "replicate|x y/z").unwrap();
    assert_eq!(
        url,
        "https://hooks.example/r?tenant=a&vidpipe_clip=replicate%7Cx+y%2Fz"
    );
    assert_eq!(
        clip_identity_from_webhook_url(&url).as_deref(),
        Some("replicate|x y/z")
    );
    assert_eq!(
        clip_identity_from_webhook_url("/r?tenant=a&vidpipe_clip=abc").as_deref(),
        Some("abc")
    );
    assert_eq!(
        clip_identity_from_webhook_url("https://hooks.example/r"),
        None
    );
}

#[tokio::test]
async fn a_verified_webhook_settles_the_clip_without_a_poll() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/files/hooked.mp4"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(b"HOOKED".to_vec(), "video/mp4"))
        .mount(&server)
        .await;
    let body = serde_json::to_vec(&json!({
        "id": "wh2", "status": "succeeded",
        "output": [format!("{}/files/hooked.mp4", server.uri())],
        "metrics": {"predict_time": 4.0}
    }))
    .unwrap();
    let prediction = verify_webhook(&secret(), &signed("msg_7", now(), &body), &body).unwrap();
    let p = provider(
        &server,
        "minimax/video-01",
        &[(ENV_PRICE_PER_SECOND, "0.5")],
    );
    let (_dir, file) = dest();
    match p.settle(&prediction, &file).await.unwrap() {
        ClipProgress::Ready {
            media: ClipMedia::Video,
            cost: Some(cost),
        } => assert_eq!(cost.usd, 2.0),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"HOOKED");
    assert!(
        requests(&server, "GET", "/v1/predictions/wh2")
            .await
            .is_empty()
    );
}

#[test]
fn retry_after_reads_seconds_and_http_dates() {
    let mut h = HeaderMap::new();
    h.insert("retry-after", "120".parse().unwrap());
    assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(120)));
    let later = std::time::SystemTime::now() + Duration::from_secs(90);
    h.insert(
        "retry-after",
        httpdate::fmt_http_date(later).parse().unwrap(),
    );
    let wait = parse_retry_after(&h).unwrap();
    assert!(
        wait > Duration::from_secs(85) && wait <= Duration::from_secs(90),
        "{wait:?}"
    );
    h.insert(
        "retry-after",
        "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
    );
    assert_eq!(parse_retry_after(&h), Some(Duration::ZERO));
    h.insert("retry-after", "soon".parse().unwrap());
    assert_eq!(parse_retry_after(&h), None);
}

#[tokio::test]
async fn an_earlier_prediction_whose_output_expired_is_made_again() {
    let server = MockServer::start().await;
    let old = with(
        prediction("old", "succeeded"),
        "output",
        json!(format!("{}/files/old.mp4", server.uri())),
    );
    Mock::given(method("GET"))
        .and(path("/v1/predictions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": [old]})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/files/old.mp4"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/models/minimax/video-01/predictions"))
        .respond_with(ResponseTemplate::new(201).set_body_json(prediction("new", "starting")))
        .mount(&server)
        .await;
    let p = provider(&server, "minimax/video-01", &[]);
    let (_dir, file) = dest();
    assert_eq!(
        p.submit(&spec(None), IDENTITY, &file).await.unwrap(),
        ClipProgress::Pending {
            handle: "new".into(),
            poll_after: Duration::from_secs(5)
        }
    );
    assert_eq!(
        requests(&server, "POST", "/v1/models/minimax/video-01/predictions")
            .await
            .len(),
        1
    );
}

/// Image-to-video presets ask the pipeline for a first frame; text-to-video ones do not.
#[tokio::test]
async fn only_templates_with_a_first_frame_want_one() {
    let server = MockServer::start().await;
    assert!(provider(&server, "kwaivgi/kling-v2.1", &[]).wants_first_frame());
    assert!(!provider(&server, "minimax/video-01", &[]).wants_first_frame());
    assert!(!provider(&server, "wan-video/wan-2.2-t2v-fast", &[]).wants_first_frame());
}

/// The port's conformance suite, against a fake that creates, processes and succeeds.
#[tokio::test]
async fn the_replicate_provider_conforms_to_the_clip_provider_port() {
    let server = MockServer::start().await;
    empty_list(&server).await;
    Mock::given(method("POST"))
        .and(path("/v1/models/minimax/video-01/predictions"))
        .respond_with(ResponseTemplate::new(201).set_body_json(prediction("p1", "starting")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/predictions/p1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(prediction("p1", "processing")))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let out = format!("{}/files/p1/output.mp4", server.uri());
    Mock::given(method("GET"))
        .and(path("/v1/predictions/p1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(with(
            prediction("p1", "succeeded"),
            "output",
            json!(out),
        )))
        .mount(&server)
        .await;
    let mp4 = [&b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2"[..], &[0u8; 64]].concat();
    Mock::given(method("GET"))
        .and(path("/files/p1/output.mp4"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(mp4, "video/mp4"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/predictions/p1/cancel"))
        .respond_with(ResponseTemplate::new(200).set_body_json(prediction("p1", "succeeded")))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    vidpipe_pipeline::conformance::clip_provider::run_all(
        &provider(&server, "minimax/video-01", &[]),
        &spec(None),
        dir.path(),
    )
    .await;
}

//! `vidpipe generate --planner openai --provider replicate,openai-image,procedural` against local
//! fakes speaking the real APIs' shapes: the LLM's plan is used, a scene Replicate refuses falls
//! back to an OpenAI still with a Ken Burns move, the JSON says who made each clip and why it fell
//! back, a second identical run makes no provider call, and no token reaches any output.

use base64::Engine;
use serde_json::json;
use std::process::{Command, Output};
use vidpipe_tests::{probe, test_clip, write_logo};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const REPLICATE_TOKEN: &str = "r8_TOPSECRETreplicate0123456789";
const OPENAI_KEY: &str = "sk-TOPSECRETopenai0123456789";

fn vidpipe(home: &std::path::Path, env: &[(&str, String)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vidpipe"));
    cmd.arg("--home").arg(home).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("VIDPIPE_LOG", "debug")
        .output()
        .expect("run vidpipe")
}

async fn fakes(dir: &std::path::Path) -> (MockServer, MockServer) {
    let replicate = MockServer::start().await;
    let openai = MockServer::start().await;
    let clip = std::fs::read(test_clip(&dir.join("model.mp4"), (1280, 720), 24, 6.0)).unwrap();
    let still =
        std::fs::read(write_logo(&dir.join("still.png"), 256, 256, [30, 140, 220])).unwrap();

    let plan = json!({"scenes": [
        {"visual_prompt": "a harbour at dawn, wide shot", "caption": "Dawn", "narration": "The harbour wakes.", "weight": 2},
        {"visual_prompt": "REFUSE a storm over the sea", "caption": "Storm", "narration": "Then the storm.", "weight": 3}
    ]});
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-1", "object": "chat.completion",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": plan.to_string()}}]
        })))
        .mount(&openai)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "created": 1,
            "data": [{"b64_json": base64::engine::general_purpose::STANDARD.encode(&still)}]
        })))
        .mount(&openai)
        .await;

    Mock::given(method("GET"))
        .and(path("/v1/predictions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"next": null, "previous": null, "results": []})),
        )
        .mount(&replicate)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/models/minimax/video-01/predictions"))
        .and(body_string_contains("REFUSE"))
        .respond_with(
            ResponseTemplate::new(422).set_body_json(
                json!({"title": "Invalid input", "detail": "input.prompt was flagged"}),
            ),
        )
        .with_priority(1)
        .mount(&replicate)
        .await;
    let base = replicate.uri();
    Mock::given(method("POST"))
        .and(path("/v1/models/minimax/video-01/predictions"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": "p1", "model": "minimax/video-01", "version": "hidden", "status": "starting",
            "input": {}, "urls": {"get": format!("{base}/v1/predictions/p1"), "cancel": format!("{base}/v1/predictions/p1/cancel")}
        })))
        .with_priority(2)
        .mount(&replicate)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/predictions/p1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "p1", "model": "minimax/video-01", "version": "hidden", "status": "succeeded",
            "input": {}, "output": format!("{base}/files/p1.mp4?X-Amz-Signature=abc"),
            "metrics": {"predict_time": 40.0}
        })))
        .mount(&replicate)
        .await;
    Mock::given(method("GET"))
        .and(path("/files/p1.mp4"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(clip)
                .insert_header("content-type", "video/mp4"),
        )
        .mount(&replicate)
        .await;
    (replicate, openai)
}

async fn calls(server: &MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_chains_providers_records_fallbacks_caches_and_never_prints_a_token() {
    let home = tempfile::tempdir().unwrap();
    let (replicate, openai) = fakes(home.path()).await;
    let env = vec![
        ("REPLICATE_API_TOKEN", REPLICATE_TOKEN.to_owned()),
        ("VIDPIPE_REPLICATE_URL", replicate.uri()),
        ("VIDPIPE_REPLICATE_MODEL", "minimax/video-01".to_owned()),
        ("VIDPIPE_REPLICATE_PRICE_PER_SECOND", "0.001".to_owned()),
        ("VIDPIPE_REPLICATE_WAIT_SECONDS", "0".to_owned()),
        ("OPENAI_BASE_URL", format!("{}/v1", openai.uri())),
        ("OPENAI_API_KEY", OPENAI_KEY.to_owned()),
        ("VIDPIPE_OPENAI_MODEL", "gpt-4o-mini".to_owned()),
        ("VIDPIPE_OPENAI_IMAGE_MODEL", "gpt-image-1".to_owned()),
    ];
    let args = [
        "generate",
        "--prompt",
        "The harbour wakes. Then the storm.",
        "--duration",
        "6",
        "--aspect",
        "9:16",
        "--resolution",
        "720p",
        "--clips",
        "2",
        "--planner",
        "openai",
        "--provider",
        "replicate,openai-image,procedural",
        "--json",
    ];
    let home_path = home.path().to_path_buf();
    let env2 = env.clone();
    let first = tokio::task::spawn_blocking(move || vidpipe(&home_path, &env2, &args))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&first.stdout).to_string();
    let stderr = String::from_utf8_lossy(&first.stderr).to_string();
    assert!(first.status.success(), "stderr: {stderr}");
    for secret in [REPLICATE_TOKEN, OPENAI_KEY, "X-Amz-Signature"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} leaked"
        );
    }
    assert!(
        stderr.contains("DEBUG"),
        "the scan needs the debug log to be on"
    );

    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["status"], "completed");
    assert_eq!(v["planner"], "openai");
    assert_eq!(v["planner_fallback"], serde_json::Value::Null);
    let clips = v["clips"].as_array().unwrap();
    assert_eq!(clips[0]["provider"], "replicate");
    assert!(clips[0].get("fallback").is_none(), "{}", clips[0]);
    assert!((clips[0]["cost"]["usd"].as_f64().unwrap() - 0.04).abs() < 1e-9);
    assert_eq!(clips[1]["provider"], "openai-image");
    assert_eq!(
        clips[1]["fallback"],
        "replicate: provider rejected the scene: prediction create: input.prompt was flagged"
    );
    assert!((v["cost"]["provider_usd"].as_f64().unwrap() - 0.04).abs() < 1e-9);
    let f = probe(std::path::Path::new(v["final"].as_str().unwrap()));
    assert_eq!((f.width, f.height), (720, 1280));
    assert!((f.duration - 6.0).abs() <= 1.0 / 30.0, "{}", f.duration);

    // The same request again: every clip from the cache, no clip provider called.
    let replicate_before = calls(&replicate).await.len();
    let images_before = calls(&openai)
        .await
        .iter()
        .filter(|r| r.url.path().ends_with("/images/generations"))
        .count();
    let home_path = home.path().to_path_buf();
    let second = tokio::task::spawn_blocking(move || vidpipe(&home_path, &env, &args))
        .await
        .unwrap();
    assert!(second.status.success());
    let v2: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(v2["cache_hits"], 2);
    assert_eq!(calls(&replicate).await.len(), replicate_before);
    let images_after = calls(&openai)
        .await
        .iter()
        .filter(|r| r.url.path().ends_with("/images/generations"))
        .count();
    assert_eq!(images_after, images_before);
}

/// The OpenAI planner's answer is unusable (prose, a plan of the wrong size, no answer at all):
/// the rules plan is used and the job says which planner fell back and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_llm_answer_gives_the_rules_plan_with_the_reason() {
    let one_scene = json!({"scenes": [
        {"visual_prompt": "a harbour", "caption": "Dawn", "narration": "The harbour wakes.", "weight": 2}
    ]});
    let answers = [
        (
            json!({"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Sure! Here is a lovely plan."}}]}),
            "not a plan",
        ),
        (
            json!({"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": one_scene.to_string()}}]}),
            "1 scenes; the request asks for 2",
        ),
        (json!({"choices": []}), "no choices"),
    ];
    for (answer, reason) in answers {
        let home = tempfile::tempdir().unwrap();
        let openai = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(answer))
            .mount(&openai)
            .await;
        let env = vec![
            ("OPENAI_BASE_URL", format!("{}/v1", openai.uri())),
            ("VIDPIPE_OPENAI_MODEL", "gpt-4o-mini".to_owned()),
        ];
        let home_path = home.path().to_path_buf();
        let out = tokio::task::spawn_blocking(move || {
            vidpipe(
                &home_path,
                &env,
                &[
                    "generate",
                    "--prompt",
                    "The harbour wakes. Then the storm.",
                    "--duration",
                    "5",
                    "--aspect",
                    "1:1",
                    "--clips",
                    "2",
                    "--planner",
                    "openai",
                    "--json",
                ],
            )
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["status"], "completed");
        assert_eq!(v["planner"], "rules");
        let fallback = v["planner_fallback"].as_str().unwrap();
        assert!(
            fallback.starts_with("openai: planner returned an unusable plan: ")
                && fallback.contains(reason),
            "{fallback}"
        );
        assert_eq!(
            openai.received_requests().await.unwrap().len(),
            1,
            "no retry of a bad answer"
        );
    }
}

#[test]
fn an_unknown_provider_or_planner_is_named_by_its_flag() {
    let home = tempfile::tempdir().unwrap();
    for (flag, value, want) in [
        (
            "--provider",
            "replicate,sora",
            "error: --provider: unknown provider \"sora\" (known: procedural, replicate, bedrock-reel, bedrock-canvas, openai-image)",
        ),
        (
            "--planner",
            "gpt",
            "error: --planner: unknown planner \"gpt\" (known: rules, bedrock, openai)",
        ),
    ] {
        let out = vidpipe(
            home.path(),
            &[],
            &[
                "generate",
                "--prompt",
                "x",
                "--duration",
                "5",
                "--aspect",
                "1:1",
                flag,
                value,
            ],
        );
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().last(), Some(want), "{stderr}");
    }
}

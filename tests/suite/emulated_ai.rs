//! Replicate on the emulated stack: the state machine submits a prediction, waits in its `Wait`
//! state, polls until the fake says `succeeded`, and the clip is copied into the bucket; a job
//! cancelled mid-prediction cancels the prediction. The token comes from an SSM SecureString the
//! functions read at cold start, as the template deploys them.

use serde_json::{Value, json};
use std::time::Duration;
use vidpipe_tests::emulator::Emulator;
use vidpipe_tests::test_clip;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "r8_emulatedTOKENfromSSM";
const TOKEN_PARAMETER: &str = "/vidpipe/replicate-api-token";

fn prediction(base: &str, id: &str, status: &str) -> Value {
    let mut p = json!({
        "id": id, "model": "minimax/video-01", "version": "hidden", "status": status,
        "input": {}, "created_at": "2026-12-01T00:00:00Z",
        "urls": {"get": format!("{base}/v1/predictions/{id}"), "cancel": format!("{base}/v1/predictions/{id}/cancel")}
    });
    if status == "succeeded" {
        p["output"] = json!(format!("{base}/files/{id}.mp4"));
        p["metrics"] = json!({"predict_time": 12.0});
    }
    p
}

async fn fake_replicate(clip: Vec<u8>) -> MockServer {
    let server = MockServer::start().await;
    mount(&server, clip).await;
    server
}

async fn mount(server: &MockServer, clip: Vec<u8>) {
    let base = server.uri();
    let auth = format!("Bearer {TOKEN}");
    Mock::given(method("GET"))
        .and(path("/v1/predictions"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"next": null, "results": []})),
        )
        .mount(server)
        .await;
    // A prompt with "stuck" never finishes: the job is cancelled while it runs.
    Mock::given(method("POST"))
        .and(path("/v1/models/minimax/video-01/predictions"))
        .and(header("authorization", auth.as_str()))
        .and(body_string_contains("stuck"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(prediction(&base, "stuck1", "starting")),
        )
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/models/minimax/video-01/predictions"))
        .and(header("authorization", auth.as_str()))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(prediction(&base, "ok1", "starting")),
        )
        .with_priority(2)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/predictions/stuck1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(prediction(
            &base,
            "stuck1",
            "processing",
        )))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/predictions/stuck1/cancel"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(prediction(&base, "stuck1", "canceled")),
        )
        .mount(server)
        .await;
    // Two polls find it still processing; the third finds it done.
    Mock::given(method("GET"))
        .and(path("/v1/predictions/ok1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(prediction(
            &base,
            "ok1",
            "processing",
        )))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/predictions/ok1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(prediction(
            &base,
            "ok1",
            "succeeded",
        )))
        .with_priority(2)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/files/ok1.mp4"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(clip)
                .insert_header("content-type", "video/mp4"),
        )
        .mount(server)
        .await;
}

fn requests(rt: &tokio::runtime::Runtime, server: &MockServer, m: &str, p: &str) -> usize {
    rt.block_on(server.received_requests())
        .unwrap_or_default()
        .iter()
        .filter(|r| r.method.as_str() == m && r.url.path() == p)
        .count()
}

#[test]
fn replicate_is_submitted_waited_for_and_polled_by_the_state_machine_and_cancelled_with_the_job() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clip = std::fs::read(test_clip(
        &dir.path().join("model.mp4"),
        (1280, 720),
        24,
        6.0,
    ))
    .unwrap();
    let fake = rt.block_on(fake_replicate(clip.clone()));
    let emu = Emulator::start_with(
        &[
            ("VIDPIPE_REPLICATE_URL", fake.uri().as_str()),
            ("VIDPIPE_REPLICATE_WAIT_SECONDS", "0"),
        ],
        &[("Provider", "replicate")],
    );
    // The token lives in SSM, where the template tells the functions to read it.
    emu.aws_json(
        "ssm",
        "AmazonSSM.PutParameter",
        &json!({"Name": TOKEN_PARAMETER, "Value": TOKEN, "Type": "SecureString"}),
    );

    let body = json!({
        "prompt": "Paper boats on a rainy street",
        "duration_seconds": 5,
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "clip_count": 1,
        "seed": 3
    });
    let r = emu.call("POST", "/v1/generations", "tenant-r", Some(&body), &[]);
    assert_eq!(r.status, 202, "{}", r.json);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let done = emu.wait_for(&id, "tenant-r", Duration::from_secs(600), |j| {
        matches!(
            j["status"].as_str(),
            Some("completed" | "failed" | "cancelled")
        )
    });
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["clips"][0]["provider"], "replicate");
    assert_eq!(done["clips"][0]["fallback"], Value::Null);
    assert_eq!(
        requests(
            &rt,
            &fake,
            "POST",
            "/v1/models/minimax/video-01/predictions"
        ),
        1
    );
    assert_eq!(requests(&rt, &fake, "GET", "/v1/predictions/ok1"), 3);
    let execution = format!(
        "{}:{id}",
        emu.state_machine_arn
            .replace(":stateMachine:", ":execution:")
    );
    let states = emu.entered_states(&execution);
    let waits = states.iter().filter(|s| *s == "WaitForProvider").count();
    let polls = states.iter().filter(|s| *s == "PollClip").count();
    assert_eq!((waits, polls), (3, 3), "{states:?}");

    // Runner agreement on the asynchronous path: the embedded runner, given the same fake and
    // request, submits once, waits and polls as often, and ends the same way.
    rt.block_on(async {
        fake.reset().await;
        mount(&fake, clip).await;
    });
    let embedded = rt.block_on(embedded_run(&fake.uri(), &body, dir.path()));
    assert_eq!(embedded.waits, waits);
    assert_eq!(embedded.status, "completed");
    assert_eq!(embedded.provider, "replicate");
    assert_eq!(
        embedded.duration_seconds,
        done["outputs"]["duration_seconds"].as_f64().unwrap()
    );
    assert_eq!(
        requests(
            &rt,
            &fake,
            "POST",
            "/v1/models/minimax/video-01/predictions"
        ),
        1
    );
    assert_eq!(requests(&rt, &fake, "GET", "/v1/predictions/ok1"), 3);

    // Cancelled while Replicate is still working: the prediction is cancelled too.
    let mut stuck = body.clone();
    stuck["prompt"] = json!("A stuck render of the sea");
    let r = emu.call("POST", "/v1/generations", "tenant-r", Some(&stuck), &[]);
    assert_eq!(r.status, 202, "{}", r.json);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while requests(&rt, &fake, "GET", "/v1/predictions/stuck1") == 0 {
        assert!(std::time::Instant::now() < deadline, "never polled");
        std::thread::sleep(Duration::from_millis(500));
    }
    let c = emu.call(
        "POST",
        &format!("/v1/generations/{id}/cancel"),
        "tenant-r",
        None,
        &[],
    );
    assert!(c.status == 200 || c.status == 202, "{}", c.json);
    assert_eq!(c.json["status"], "cancelled", "{}", c.json);
    assert_eq!(
        requests(&rt, &fake, "POST", "/v1/predictions/stuck1/cancel"),
        1
    );
}

struct EmbeddedOutcome {
    status: String,
    provider: String,
    waits: usize,
    duration_seconds: f64,
}

async fn embedded_run(replicate_url: &str, body: &Value, dir: &std::path::Path) -> EmbeddedOutcome {
    use vidpipe_lambda::{PlannerKind, ProviderKind};
    let env = [
        ("REPLICATE_API_TOKEN", TOKEN.to_owned()),
        ("VIDPIPE_REPLICATE_URL", replicate_url.to_owned()),
        ("VIDPIPE_REPLICATE_MODEL", "minimax/video-01".to_owned()),
        ("VIDPIPE_REPLICATE_WAIT_SECONDS", "0".to_owned()),
    ];
    let lookup = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
    let setup = vidpipe_lambda::ai::build(
        PlannerKind::Rules,
        &[ProviderKind::Replicate],
        &lookup,
        std::sync::Arc::new(vidpipe_media::ProceduralProvider::new(
            vidpipe_tests::tools(),
        )),
        None,
    )
    .unwrap();
    let home = dir.join("embedded");
    let stack = vidpipe_tests::stack_with_options(
        &home,
        vidpipe_pipeline::local::LocalOptions {
            providers: setup.providers,
            ..Default::default()
        },
        None,
    )
    .await;
    let mut events = stack.runner().subscribe();
    let request: vidpipe_domain::request::GenerationRequestBody =
        serde_json::from_value(body.clone()).unwrap();
    let s = stack
        .service()
        .submit("local", &request, None)
        .await
        .unwrap();
    let job = stack
        .orchestrator()
        .wait(&s.job().id)
        .await
        .unwrap()
        .unwrap();
    let mut waits = 0;
    while let Ok(e) = events.try_recv() {
        if matches!(e, vidpipe_pipeline::RunEvent::ClipWaiting { .. }) {
            waits += 1;
        }
    }
    EmbeddedOutcome {
        status: job.status.to_string(),
        provider: job.clips[0].provider.clone(),
        waits,
        duration_seconds: job.outputs.as_ref().map_or(0.0, |o| o.duration_seconds),
    }
}

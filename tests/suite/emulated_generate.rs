//! The serverless stack end to end on emulated AWS, through the API function: moto runs the real
//! state machine from statemachine/generation.asl.json, and every task invokes the real Rust
//! function under `cargo lambda watch`. Outputs are fetched through presigned URLs and measured.

use serde_json::{Value, json};
use std::sync::OnceLock;
use std::time::Duration;
use vidpipe_domain::ports::BlobStore;
use vidpipe_tests::emulator::{Emulator, fetch};
use vidpipe_tests::probe;

fn stack() -> &'static Emulator {
    static STACK: OnceLock<Emulator> = OnceLock::new();
    STACK.get_or_init(|| Emulator::start(&[]))
}

fn body() -> Value {
    json!({
        "prompt": "Paper boats on a rainy street. Kids laughing. A rainbow appears.",
        "duration_seconds": 6,
        "aspect_ratio": "9:16",
        "resolution": "720p",
        "clip_count": 2,
        "transition": "dissolve",
        "seed": 11
    })
}

fn submit(emu: &Emulator, tenant: &str, body: &Value, key: Option<&str>) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = key
        .map(|k| vec![("idempotency-key", k)])
        .unwrap_or_default();
    let r = emu.call("POST", "/v1/generations", tenant, Some(body), &headers);
    (r.status, r.json)
}

/// Fetches a finished job's video through its presigned download link and measures it; returns
/// the facts and the download answer (for the other links).
fn download_final(
    emu: &Emulator,
    id: &str,
    tenant: &str,
    dir: &std::path::Path,
) -> (vidpipe_tests::Facts, Value) {
    let dl = emu.call(
        "GET",
        &format!("/v1/generations/{id}/download"),
        tenant,
        None,
        &[],
    );
    assert_eq!(dl.status, 200, "{:?}", dl.json);
    let video = dir.join("final.mp4");
    std::fs::write(&video, fetch(dl.json["video"]["url"].as_str().unwrap())).unwrap();
    (probe(&video), dl.json)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_generation_completes_and_downloads_an_mp4_that_measures_right_and_matches_the_embedded_runner()
{
    let emu = stack();
    let (status, job) = submit(emu, "tenant-a", &body(), None);
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(
        job["links"]["self"],
        format!("{}/v1/generations/{id}", emu.api)
    );

    let done = emu.wait_for(&id, "tenant-a", Duration::from_secs(600), |j| {
        matches!(
            j["status"].as_str(),
            Some("completed" | "failed" | "cancelled")
        )
    });
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["progress_percent"], 100.0);
    let clips = done["clips"].as_array().unwrap();
    assert_eq!(clips.len(), 2);
    assert!(clips.iter().all(|c| c["status"] == "done"), "{done}");

    let dir = tempfile::tempdir().unwrap();
    let (f, links) = download_final(emu, &id, "tenant-a", dir.path());
    assert!(
        (f.duration - 6.0).abs() <= 1.0 / 30.0,
        "duration {}",
        f.duration
    );
    assert_eq!((f.width, f.height), (720, 1280));
    assert_eq!(f.video_frames, Some(180));
    assert_eq!(
        (f.video_codec.as_str(), f.pix_fmt.as_str()),
        ("h264", "yuv420p")
    );
    assert_eq!(f.audio_codec.as_deref(), Some("aac"));
    let thumb = dir.path().join("thumbnail.jpg");
    std::fs::write(&thumb, fetch(links["thumbnail"]["url"].as_str().unwrap())).unwrap();
    let t = probe(&thumb);
    assert_eq!((t.width, t.height), (360, 640));

    // Another tenant learns nothing about it.
    for (method, path) in [
        ("GET", format!("/v1/generations/{id}")),
        ("POST", format!("/v1/generations/{id}/cancel")),
        ("GET", format!("/v1/generations/{id}/download")),
    ] {
        let r = emu.call(method, &path, "tenant-b", None, &[]);
        assert_eq!(r.status, 404, "{method} {path}: {:?}", r.json);
        assert_eq!(r.content_type, "application/problem+json");
    }

    // Runner agreement: the same request on the embedded runner plans the same scenes and
    // renders a video with the same measured properties.
    let rt = runtime();
    let (emulated_plan, embedded_plan, embedded_video) = rt.block_on(async {
        let sdk = vidpipe_aws::config::emulator_sdk_config(&emu.moto).await;
        let s3 =
            vidpipe_aws::S3BlobStore::new(vidpipe_aws::config::s3_client(&sdk), emu.bucket.clone());
        let job_id = vidpipe_domain::JobId::parse(&id).unwrap();
        let emulated: Value = serde_json::from_slice(
            &s3.get_bytes(&vidpipe_domain::keys::plan(&job_id))
                .await
                .unwrap(),
        )
        .unwrap();

        let home = tempfile::tempdir().unwrap();
        let local = vidpipe_tests::stack(home.path()).await;
        let b: vidpipe_domain::GenerationRequestBody = serde_json::from_value(body()).unwrap();
        let s = local.service().submit("local", &b, None).await.unwrap();
        let job = local
            .orchestrator()
            .wait(&s.job().id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            job.status,
            vidpipe_domain::JobStatus::Completed,
            "{:?}",
            job.error
        );
        let embedded: Value = serde_json::from_slice(
            &local
                .deps()
                .blobs
                .get_bytes(&vidpipe_domain::keys::plan(&job.id))
                .await
                .unwrap(),
        )
        .unwrap();
        let video = dir.path().join("embedded.mp4");
        std::fs::copy(local.blob_path(&job.outputs.unwrap().final_key), &video).unwrap();
        (emulated, embedded, video)
    });
    assert_eq!(
        emulated_plan, embedded_plan,
        "both runners must plan the same scenes"
    );
    let e = probe(&embedded_video);
    assert_eq!(
        (
            e.width,
            e.height,
            e.video_frames,
            e.video_codec.as_str(),
            e.pix_fmt.as_str()
        ),
        (
            f.width,
            f.height,
            f.video_frames,
            f.video_codec.as_str(),
            f.pix_fmt.as_str()
        )
    );
    assert!((e.duration - f.duration).abs() <= 1.0 / 30.0);
    assert_eq!(e.audio_codec, f.audio_codec);
}

#[test]
fn the_same_idempotency_key_gives_one_job() {
    let emu = stack();
    let (first_status, first) = submit(emu, "tenant-idem", &body(), Some("same-key-1"));
    let (second_status, second) = submit(emu, "tenant-idem", &body(), Some("same-key-1"));
    assert_eq!(first_status, 202, "{first}");
    assert_eq!(second_status, 200, "{second}");
    assert_eq!(first["id"], second["id"]);
    let mut other = body();
    other["prompt"] = json!("Something else entirely");
    let (conflict, problem) = submit(emu, "tenant-idem", &other, Some("same-key-1"));
    assert_eq!(conflict, 409, "{problem}");
    let list = emu.call("GET", "/v1/generations?limit=10", "tenant-idem", None, &[]);
    assert_eq!(
        list.json["items"].as_array().unwrap().len(),
        1,
        "{:?}",
        list.json
    );
}

#[test]
fn every_invalid_body_is_a_problem_naming_the_field() {
    let emu = stack();
    let cases = [
        (
            "prompt",
            json!({"prompt": "  ", "duration_seconds": 10, "aspect_ratio": "16:9"}),
        ),
        (
            "duration_seconds",
            json!({"prompt": "x", "duration_seconds": 301, "aspect_ratio": "16:9"}),
        ),
        (
            "aspect_ratio",
            json!({"prompt": "x", "duration_seconds": 10, "aspect_ratio": "2:1"}),
        ),
        (
            "resolution",
            json!({"prompt": "x", "duration_seconds": 10, "aspect_ratio": "16:9", "resolution": "8k"}),
        ),
        (
            "fps",
            json!({"prompt": "x", "duration_seconds": 10, "aspect_ratio": "16:9", "fps": 60}),
        ),
        (
            "clip_count",
            json!({"prompt": "x", "duration_seconds": 10, "aspect_ratio": "16:9", "clip_count": 21}),
        ),
        (
            "transition",
            json!({"prompt": "x", "duration_seconds": 10, "aspect_ratio": "16:9", "transition": "spin"}),
        ),
        (
            "transition_duration_seconds",
            json!({"prompt": "x", "duration_seconds": 10, "aspect_ratio": "16:9", "transition_duration_seconds": 9}),
        ),
        (
            "brand.logo.asset_id",
            json!({"prompt": "x", "duration_seconds": 10, "aspect_ratio": "16:9", "brand": {"logo": {"asset_id": "nope"}}}),
        ),
        (
            "brand.music.volume",
            json!({"prompt": "x", "duration_seconds": 10, "aspect_ratio": "16:9", "brand": {"music": {"asset_id": "ast_0000000000000000000000000000abcd", "volume": 5}}}),
        ),
        (
            "seed",
            json!({"prompt": "x", "duration_seconds": 10, "aspect_ratio": "16:9", "seed": "abc"}),
        ),
    ];
    for (field, b) in cases {
        let r = emu.call("POST", "/v1/generations", "tenant-c", Some(&b), &[]);
        assert!(
            (400..500).contains(&r.status),
            "{field}: status {}",
            r.status
        );
        assert_eq!(r.content_type, "application/problem+json", "{field}");
        let named = r.json["errors"]
            .as_array()
            .is_some_and(|es| es.iter().any(|e| e["field"] == field));
        assert!(named, "{field}: {}", r.json);
        assert!(
            r.json["request_id"].as_str().is_some_and(|s| !s.is_empty()),
            "{field}: {}",
            r.json
        );
    }
    let list = emu.call("GET", "/v1/generations", "tenant-c", None, &[]);
    assert!(
        list.json["items"].as_array().unwrap().is_empty(),
        "nothing was created"
    );
}

#[test]
fn a_cancel_mid_run_ends_cancelled_and_stops_the_execution() {
    let emu = stack();
    let long = json!({"prompt": "A long slow journey across mountains, rivers and cities", "duration_seconds": 60, "aspect_ratio": "16:9", "resolution": "720p", "clip_count": 10, "seed": 99});
    let (status, job) = submit(emu, "tenant-d", &long, None);
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let live = emu.wait_for(&id, "tenant-d", Duration::from_secs(300), |j| {
        j["status"] != "queued" && j["status"] != "planning"
    });
    assert!(
        matches!(live["status"].as_str(), Some("generating" | "composing")),
        "{live}"
    );
    let c = emu.call(
        "POST",
        &format!("/v1/generations/{id}/cancel"),
        "tenant-d",
        None,
        &[],
    );
    assert_eq!(c.status, 202, "{:?}", c.json);
    let end = emu.wait_for(&id, "tenant-d", Duration::from_secs(120), |j| {
        j["status"] != "generating" && j["status"] != "composing"
    });
    assert_eq!(end["status"], "cancelled", "{end}");
    // Stopped at once in AWS; moto's executor may first finish the task in flight, after which the
    // next step sees the cancel. Either way nothing may be left running.
    let running = runtime().block_on(async {
        let sdk = vidpipe_aws::config::emulator_sdk_config(&emu.moto).await;
        let sfn = vidpipe_aws::SfnOrchestrator::new(
            vidpipe_aws::config::sfn_client(&sdk),
            emu.state_machine_arn.clone(),
        );
        let job = vidpipe_domain::JobId::parse(&id).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let running = sfn.is_running(&job).await.unwrap();
            if running != Some(true) || tokio::time::Instant::now() > deadline {
                return running;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    assert_eq!(running, Some(false), "the execution must be stopped");
    // Cancelling a finished job is a conflict, not a second cancel.
    let again = emu.call(
        "POST",
        &format!("/v1/generations/{id}/cancel"),
        "tenant-d",
        None,
        &[],
    );
    assert!(
        again.status == 202 || again.status == 409,
        "{:?}",
        again.json
    );
}

/// Fargate configured and a threshold of one frame: compose runs as `vidpipe-worker compose`
/// through ecs:runTask.sync (the emulator runs the task's entry point as a local process), and
/// finalize picks up what the worker stored. The video measures as the Lambda compose's does.
#[test]
fn a_long_generation_composes_on_the_fargate_worker() {
    let emu = Emulator::start_with(
        &[],
        &[
            (
                "WorkerImageUri",
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/vidpipe-worker:test",
            ),
            ("FargateSubnetIds", "subnet-0a1b2c3d"),
            ("FargateSecurityGroupIds", "sg-0a1b2c3d"),
            ("FargateComposeThresholdFrames", "1"),
        ],
    );
    let (status, job) = submit(&emu, "tenant-w", &body(), None);
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let done = emu.wait_for(&id, "tenant-w", Duration::from_secs(600), |j| {
        matches!(
            j["status"].as_str(),
            Some("completed" | "failed" | "cancelled")
        )
    });
    assert_eq!(done["status"], "completed", "{done}");

    // The execution went through the ECS task, not the compose Lambda.
    let list = emu.aws_json(
        "states",
        "AWSStepFunctions.ListExecutions",
        &json!({ "stateMachineArn": emu.state_machine_arn }),
    );
    let execution = list["executions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == id.as_str())
        .unwrap_or_else(|| panic!("no execution named {id}: {list}"));
    let entered = emu.entered_states(execution["executionArn"].as_str().unwrap());
    assert!(
        entered.iter().any(|s| s == "ComposeOnFargate"),
        "{entered:?}"
    );
    assert!(!entered.iter().any(|s| s == "Compose"), "{entered:?}");

    let dir = tempfile::tempdir().unwrap();
    let (f, _) = download_final(&emu, &id, "tenant-w", dir.path());
    assert_eq!((f.width, f.height), (720, 1280));
    assert_eq!(f.video_frames, Some(180));
    assert_eq!(
        (f.video_codec.as_str(), f.pix_fmt.as_str()),
        ("h264", "yuv420p")
    );
    assert_eq!(f.audio_codec.as_deref(), Some("aac"));
}

#[test]
fn a_narrated_generation_speaks_through_the_stack_and_bad_narration_is_a_named_problem() {
    let emu = stack();
    let mut narrated = body();
    narrated["narration"] = json!({"provider": "espeak", "voice": "en-us"});
    narrated["captions"] = json!({"style": "karaoke"});
    let (status, job) = submit(emu, "tenant-narr", &narrated, None);
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let done = emu.wait_for(&id, "tenant-narr", Duration::from_secs(600), |j| {
        matches!(j["status"].as_str(), Some("completed" | "failed"))
    });
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["request"]["narration"], "espeak");
    assert_eq!(done["request"]["caption_style"], "karaoke");
    let dir = tempfile::tempdir().unwrap();
    let (facts, _) = download_final(emu, &id, "tenant-narr", dir.path());
    assert!((facts.duration - 6.0).abs() < 0.05, "{facts:?}");
    let video = dir.path().join("final.mp4");
    assert!(
        vidpipe_tests::loudness(&video, None).mean_db > -35.0,
        "the video speaks"
    );

    let mut bad = body();
    bad["narration"] = json!({"provider": "espeak", "engine": "neural", "voice": "a b"});
    let (status, problem) = submit(emu, "tenant-narr", &bad, None);
    assert_eq!(status, 422, "{problem}");
    let text = problem.to_string();
    assert!(
        text.contains("narration.engine") && text.contains("narration.voice"),
        "{text}"
    );
}

/// `Location` and `links` carry the function URL's `/lambda-url/{function}` prefix, so each can be
/// followed exactly as handed out.
#[test]
fn location_and_links_can_be_followed_as_given() {
    let emu = stack();
    let tenant = "tenant-links";
    let r = emu.call("POST", "/v1/generations", tenant, Some(&body()), &[]);
    assert_eq!(r.status, 202, "{}", r.json);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let location = r.location.clone().expect("a Location header");
    assert!(
        location.starts_with(&emu.api),
        "{location} is not under {}",
        emu.api
    );

    let got = emu.call_url("GET", &location, tenant, None, &[]);
    assert_eq!(
        (got.status, &got.json["id"]),
        (200, &json!(id)),
        "{}",
        got.json
    );
    let links = &r.json["links"];
    let this = emu.call_url("GET", links["self"].as_str().unwrap(), tenant, None, &[]);
    assert_eq!(
        (this.status, &this.json["id"]),
        (200, &json!(id)),
        "{}",
        this.json
    );
    // Not yet completed: the download link answers the API's 409, not a 404 from nowhere.
    let cancel = emu.call_url("POST", links["cancel"].as_str().unwrap(), tenant, None, &[]);
    assert_eq!(cancel.status, 202, "{}", cancel.json);
    assert_eq!(cancel.json["status"], "cancelled");
    let download = emu.call_url(
        "GET",
        links["download"].as_str().unwrap(),
        tenant,
        None,
        &[],
    );
    assert_eq!(download.status, 409, "{}", download.json);
    assert_eq!(download.json["type"], "urn:vidpipe:problem:conflict");
}

/// The objects under a prefix of the stack's bucket, by key.
fn keys_under(emu: &Emulator, prefix: &str) -> Vec<String> {
    runtime().block_on(async {
        let sdk = vidpipe_aws::config::emulator_sdk_config(&emu.moto).await;
        let s3 =
            vidpipe_aws::S3BlobStore::new(vidpipe_aws::config::s3_client(&sdk), emu.bucket.clone());
        let mut keys: Vec<String> = s3
            .list(prefix)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        keys.sort();
        keys
    })
}

/// Recompose on the stack runs through the state machine: the execution named by the
/// composition takes PlanRecompose (no planning), the Map only for replaced scenes and the compose
/// Lambda for the composition. A 9:16 recompose makes no clip at all (no clip step, no new clip
/// object, the job's clips untouched) and measures exactly 720x1280; a replaced scene makes
/// exactly one clip, the composition's own; the versions list shows the parent chain.
#[test]
fn a_recompose_runs_through_the_state_machine_reusing_the_jobs_clips() {
    let emu = stack();
    let tenant = "tenant-r";
    let body = json!({
        "prompt": "A calm sea. Gulls overhead.",
        "duration_seconds": 5,
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "fps": 24,
        "clip_count": 2,
        "seed": 5
    });
    let (status, job) = submit(emu, tenant, &body, None);
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let done = emu.wait_for(&id, tenant, Duration::from_secs(600), |j| {
        matches!(
            j["status"].as_str(),
            Some("completed" | "failed" | "cancelled")
        )
    });
    assert_eq!(done["status"], "completed", "{done}");
    let job_clips = format!("generations/{id}/clips/");
    let clips_before = keys_under(emu, &job_clips);
    assert_eq!(clips_before.len(), 2, "{clips_before:?}");
    let first = format!("cmp_{}", &id[4..]);

    // Recompose to a composition, then wait for the composition (not the job) to end.
    let recompose = |edits: &Value| -> String {
        let r = emu.call(
            "POST",
            &format!("/v1/generations/{id}/recompose"),
            tenant,
            Some(edits),
            &[],
        );
        assert_eq!(r.status, 202, "{:?}", r.json);
        assert_eq!(r.json["status"], "rendering", "{:?}", r.json);
        r.json["composition_id"].as_str().unwrap().to_owned()
    };
    let settled = |cmp: &str| -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(600);
        loop {
            let list = emu.call(
                "GET",
                &format!("/v1/generations/{id}/compositions"),
                tenant,
                None,
                &[],
            );
            assert_eq!(list.status, 200, "{:?}", list.json);
            let mine = list.json["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["composition_id"] == cmp)
                .cloned()
                .expect("the new version is listed");
            if mine["status"] != "rendering" {
                return list.json;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{cmp} still rendering: {mine}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    let entered = |cmp: &str| -> Vec<String> {
        let list = emu.aws_json(
            "states",
            "AWSStepFunctions.ListExecutions",
            &json!({ "stateMachineArn": emu.state_machine_arn }),
        );
        let execution = list["executions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == cmp)
            .unwrap_or_else(|| panic!("no execution named {cmp}: {list}"))
            .clone();
        emu.entered_states(execution["executionArn"].as_str().unwrap())
    };

    let portrait = recompose(&json!({"aspect_ratio": "9:16"}));
    let list = settled(&portrait);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    assert_eq!(items[0]["composition_id"], first.as_str());
    assert_eq!(items[0]["parent_composition_id"], Value::Null);
    let mine = &items[1];
    assert_eq!(mine["composition_id"], portrait.as_str());
    assert_eq!(mine["status"], "completed", "{list}");
    assert_eq!(mine["parent_composition_id"], first.as_str());
    assert_eq!(mine["ancestors"], json!([first]));
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("portrait.mp4");
    std::fs::write(
        &video,
        fetch(mine["downloads"]["video"]["url"].as_str().unwrap()),
    )
    .unwrap();
    let f = probe(&video);
    assert_eq!((f.width, f.height), (720, 1280));
    assert_eq!(f.video_frames, Some(120), "5 s at 24 fps, as the parent");
    let states = entered(&portrait);
    for want in ["PlanRecompose", "RecomposeInLambda", "Finalize"] {
        assert!(states.iter().any(|s| s == want), "{want}: {states:?}");
    }
    for never in ["Plan", "GenerateClip", "ComposeInLambda", "RecordFailure"] {
        assert!(!states.iter().any(|s| s == never), "{never}: {states:?}");
    }
    // Nothing generated: the clip step (the only caller of a provider) never ran, the job's
    // clips are as they were, and the composition has none of its own. (The shared cache/ is
    // not compared: other tests on this stack write to it meanwhile.)
    assert_eq!(keys_under(emu, &job_clips), clips_before);
    assert!(keys_under(emu, &format!("compositions/{portrait}/clips/")).is_empty());
    let job = emu.call("GET", &format!("/v1/generations/{id}"), tenant, None, &[]);
    assert_eq!(job.json["status"], "completed", "the job keeps its outcome");

    // One scene replaced by a new prompt: exactly one clip made, the composition's own.
    let replaced = recompose(&json!({
        "parent_composition_id": portrait,
        "scenes": [{"index": 1, "prompt": "A lighthouse at dusk."}]
    }));
    let list = settled(&replaced);
    let items = list["items"].as_array().unwrap();
    let mine = items
        .iter()
        .find(|c| c["composition_id"] == replaced.as_str())
        .unwrap();
    assert_eq!(mine["status"], "completed", "{list}");
    assert_eq!(mine["ancestors"], json!([portrait, first]));
    let own = keys_under(emu, &format!("compositions/{replaced}/clips/"));
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!(keys_under(emu, &job_clips), clips_before);
    let states = entered(&replaced);
    assert_eq!(
        states.iter().filter(|s| *s == "GenerateClip").count(),
        1,
        "{states:?}"
    );
    std::fs::write(
        &video,
        fetch(mine["downloads"]["video"]["url"].as_str().unwrap()),
    )
    .unwrap();
    let f = probe(&video);
    assert_eq!((f.width, f.height), (720, 1280));
    assert_eq!(f.video_frames, Some(120));
}

/// A timeline through the stack: a dry run prices it with the stack's configured chain; a render
/// answers 202 and runs the state machine's timeline branch (its one `generate` clip made
/// through the provider chain, the one pass in Lambda), recorded on a composition of no job that
/// GET reads back; the MP4 measures as the timeline says; starting the execution again (a
/// duplicate delivery) renders nothing twice.
#[test]
fn a_timeline_renders_through_the_state_machine_and_is_recorded() {
    let emu = stack();
    let tenant = "tenant-t";
    let timeline = json!({
        "output": {"aspect": "16:9", "resolution": "360p", "fps": 24},
        "tracks": [
            {"clips": [{"asset": {"type": "title", "text": "Hello"}, "start": 0, "length": 1}]},
            {"clips": [{"asset": {"type": "generate", "prompt": "A paper kite over dunes", "seed": 3},
                        "start": 0, "length": 2}]}
        ]
    });

    let dry = emu.call(
        "POST",
        "/v1/compositions?dry_run=true",
        tenant,
        Some(&timeline),
        &[],
    );
    assert_eq!(dry.status, 200, "{:?}", dry.json);
    let calls = dry.json["provider_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{:?}", dry.json);
    // The stack's chain (template Provider, default procedural), priced as it prices.
    assert_eq!(calls[0]["provider"], "procedural", "{:?}", dry.json);
    assert_eq!(
        dry.json["estimated_cost"]["provider_usd"],
        json!(0.0),
        "{:?}",
        dry.json
    );

    let r = emu.call("POST", "/v1/compositions", tenant, Some(&timeline), &[]);
    assert_eq!(r.status, 202, "{:?}", r.json);
    assert_eq!(r.json["status"], "rendering", "{:?}", r.json);
    let cmp = r.json["composition_id"].as_str().unwrap().to_owned();
    let location = r.location.clone().expect("a Location");
    assert!(
        location.ends_with(&format!("/v1/compositions/{cmp}")),
        "{location}"
    );

    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let done = loop {
        let got = emu.call_url("GET", &location, tenant, None, &[]);
        assert_eq!(got.status, 200, "{:?}", got.json);
        if got.json["status"] != "rendering" {
            break got.json;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{cmp} still rendering"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["route"], "lambda", "{done}");
    assert_eq!(
        done["provider_calls"][0]["provider"], "procedural",
        "{done}"
    );
    let other = emu.call(
        "GET",
        &format!("/v1/compositions/{cmp}"),
        "tenant-u",
        None,
        &[],
    );
    assert_eq!(
        other.status, 404,
        "another tenant's is absent: {:?}",
        other.json
    );

    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("timeline.mp4");
    std::fs::write(&video, fetch(done["links"]["final"].as_str().unwrap())).unwrap();
    let f = probe(&video);
    assert_eq!((f.width, f.height), (640, 360));
    assert_eq!(f.video_frames, Some(48), "2 s at 24 fps");

    let executions = || -> Vec<Value> {
        let list = emu.aws_json(
            "states",
            "AWSStepFunctions.ListExecutions",
            &json!({ "stateMachineArn": emu.state_machine_arn }),
        );
        list["executions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"] == cmp.as_str())
            .cloned()
            .collect()
    };
    let mine = executions();
    assert_eq!(mine.len(), 1, "{mine:?}");
    let arn = mine[0]["executionArn"].as_str().unwrap().to_owned();
    let states = emu.entered_states(&arn);
    for want in [
        "PlanTimeline",
        "GenerateTimelineClip",
        "RenderTimelineInLambda",
        "FinalizeTimeline",
    ] {
        assert!(states.iter().any(|s| s == want), "{want}: {states:?}");
    }
    for never in [
        "Plan",
        "GenerateClip",
        "ComposeInLambda",
        "RecordTimelineFailure",
    ] {
        assert!(!states.iter().any(|s| s == never), "{never}: {states:?}");
    }

    // A duplicate start, through the orchestrator the API uses: nothing new runs or renders.
    runtime().block_on(async {
        use vidpipe_domain::ports::Orchestrator;
        let sdk = vidpipe_aws::config::emulator_sdk_config(&emu.moto).await;
        let sfn = vidpipe_aws::SfnOrchestrator::new(
            vidpipe_aws::config::sfn_client(&sdk),
            emu.state_machine_arn.clone(),
        );
        let id = vidpipe_domain::composition::CompositionId::parse(&cmp).unwrap();
        sfn.start_timeline(&id)
            .await
            .expect("a repeat start is a no-op");
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(executions().len(), 1, "one execution per composition");
    let renders = emu
        .entered_states(&arn)
        .iter()
        .filter(|s| *s == "RenderTimelineInLambda")
        .count();
    assert_eq!(renders, 1);
    let again = emu.call_url("GET", &location, tenant, None, &[]);
    assert_eq!(
        again.json["updated_at"], done["updated_at"],
        "not rendered again"
    );
}

//! Live progress on the emulated stack, end to end: WebSocket clients connect to the emulator's
//! gateway, which forwards `$connect`, `$disconnect` and `$default` to the real `functions/live`
//! under `cargo lambda watch`; the jobs table's stream (moto's) is fed to the real pusher, which
//! posts through the gateway's `@connections` management API. The stack delivers every stream
//! batch twice (`--stream-repeat 2`), so each subscriber here also proves that a record told
//! twice repeats nothing and never sends a percent back.
//!
//! - a generation's subscriber gets the whole ordered story to `completed` with links that
//!   download the video; another tenant's subscribe is refused word for word as a missing job's;
//!   a client that vanished without `$disconnect` is removed on GoneException and the job still
//!   completes; a connect without a tenant is refused before any upgrade;
//! - the web app's `/app-config.json` names the stack's own socket;
//! - a processing job's subscriber gets its six stages in order to `completed` with one link per
//!   rendition and the thumbnail.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use vidpipe_tests::emulator::{Emulator, fetch, send_signed};
use vidpipe_tests::{ffmpeg, probe};

const ALICE: &str = "alice-live";
const BOB: &str = "bob-live";
/// Limits for one short job on a shared 2-core machine (first invokes compile nothing: --warm).
const JOB_LIMIT: Duration = Duration::from_secs(300);

fn stack() -> &'static Emulator {
    static STACK: OnceLock<Emulator> = OnceLock::new();
    STACK.get_or_init(|| {
        // Trims of 1 s so a 4 s upload is a whole processing job.
        Emulator::start_args(
            &[],
            &[("IntroSeconds", "1"), ("OutroSeconds", "1")],
            &["--stream-repeat", "2"],
        )
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects as `tenant` (the emulated stack trusts `?tenant=`, as its HTTP API trusts the
/// tenant header); `lose_disconnect` asks the gateway to drop this client's `$disconnect`, as
/// API Gateway may. Returns the socket and its connection id.
async fn connect(emu: &Emulator, tenant: &str, lose_disconnect: bool) -> (Socket, String) {
    let url = format!(
        "{}?tenant={tenant}",
        emu.ready["websocket"].as_str().unwrap()
    );
    let mut req = url.into_client_request().unwrap();
    if lose_disconnect {
        req.headers_mut()
            .insert("x-emulator-lose-disconnect", "1".parse().unwrap());
    }
    let (ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("the gateway upgrades a tenant's connect");
    let id = resp
        .headers()
        .get("x-emulator-connection-id")
        .expect("the emulator names the connection")
        .to_str()
        .unwrap()
        .to_owned();
    (ws, id)
}

async fn next_frame(ws: &mut Socket, within: Duration) -> Value {
    loop {
        let msg = tokio::time::timeout(within, ws.next())
            .await
            .unwrap_or_else(|_| panic!("a frame within {within:?}"))
            .expect("the socket stays open")
            .expect("a frame");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).expect("JSON frame");
        }
    }
}

async fn send(ws: &mut Socket, action: &str, job_id: &str) {
    ws.send(Message::Text(
        json!({"action": action, "job_id": job_id})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
}

/// Subscribes and reads the ack, then every frame up to `completed` or `failed`.
async fn story(ws: &mut Socket, job_id: &str, kind: &str) -> Vec<Value> {
    send(ws, "subscribe", job_id).await;
    let ack = next_frame(ws, Duration::from_secs(60)).await;
    assert_eq!(ack["type"], "subscribed", "{ack}");
    assert_eq!(ack["kind"], kind, "{ack}");
    let mut frames = Vec::new();
    loop {
        let f = next_frame(ws, JOB_LIMIT).await;
        assert_eq!(f["job_id"], job_id, "{f}");
        let end = f["type"] == "completed" || f["type"] == "failed";
        frames.push(f);
        if end {
            return frames;
        }
    }
}

/// What every story must be, whatever the job: `seq` strictly increasing, no event told twice,
/// percents in 0..=100 never going down and ending at 100, `completed` last. Returns the stages.
fn assert_well_told(frames: &[Value]) -> Vec<String> {
    let seqs: Vec<u64> = frames.iter().map(|f| f["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "seq: {seqs:?}");
    let mut seen = std::collections::HashSet::new();
    for f in frames {
        let mut bare = f.clone();
        bare.as_object_mut().unwrap().remove("seq");
        assert!(
            seen.insert(bare.to_string()),
            "told twice: {f} in {frames:#?}"
        );
    }
    let percents: Vec<f64> = frames
        .iter()
        .filter(|f| f["type"] == "progress")
        .map(|f| f["percent"].as_f64().unwrap())
        .collect();
    assert!(
        percents.windows(2).all(|w| w[1] >= w[0]),
        "percent went back: {percents:?}"
    );
    assert!(percents.iter().all(|p| (0.0..=100.0).contains(p)));
    assert_eq!(percents.last().copied(), Some(100.0), "{percents:?}");
    assert_eq!(frames.last().unwrap()["type"], "completed", "{frames:#?}");
    frames
        .iter()
        .filter(|f| f["type"] == "stage")
        .map(|f| f["stage"].as_str().unwrap().to_owned())
        .collect()
}

fn download_url(completed: &Value, name: &str) -> String {
    completed["downloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .and_then(|d| d["url"].as_str())
        .unwrap_or_else(|| panic!("no {name} download in {completed}"))
        .to_owned()
}

fn stats(emu: &Emulator) -> Value {
    ureq::get(emu.ready["websocket_stats"].as_str().unwrap())
        .call()
        .unwrap()
        .into_json()
        .unwrap()
}

/// The live table's items of one connection: its own, and its subscriptions' (`SUB#job`).
fn live_items_of(emu: &Emulator, connection: &str) -> Vec<Value> {
    let table = emu.resource("tables", "LiveTable");
    let scan = emu.aws_json(
        "dynamodb",
        "DynamoDB_20120810.Scan",
        &json!({ "TableName": table }),
    );
    let me = format!("CONN#{connection}");
    scan["Items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["PK"]["S"] == me.as_str() || i["SK"]["S"] == me.as_str())
        .cloned()
        .collect()
}

#[test]
fn a_generation_is_told_in_order_to_completed_and_only_to_its_tenant() {
    let emu = stack();
    let ws_url = emu.ready["websocket"].as_str().unwrap().to_owned();
    // The web app is told this stack's own socket (WebAppWebSocketUrl is empty).
    let config = emu.call("GET", "/app-config.json", ALICE, None, &[]);
    assert_eq!(config.status, 200, "{}", config.json);
    assert_eq!(
        config.json["websocket_url"],
        ws_url.as_str(),
        "{}",
        config.json
    );
    runtime().block_on(async {
        // No tenant: the connect function answers 401 and the gateway never upgrades.
        match tokio_tungstenite::connect_async(ws_url.as_str()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), 401)
            }
            other => panic!("a connect without a tenant must be refused: {other:?}"),
        }

        let (mut alice, _) = connect(emu, ALICE, false).await;
        let (mut bob, _) = connect(emu, BOB, false).await;
        let (mut vanishing, vanishing_id) = connect(emu, ALICE, true).await;

        let body = json!({
            "prompt": "A lighthouse at dusk. Waves break on the rocks.",
            "duration_seconds": 5, "aspect_ratio": "16:9", "resolution": "720p",
            "clip_count": 2, "captions": false, "seed": 5
        });
        let r = emu.call("POST", "/v1/generations", ALICE, Some(&body), &[]);
        assert_eq!(r.status, 202, "{}", r.json);
        let id = r.json["id"].as_str().unwrap().to_owned();

        // Bob's subscribe to Alice's job reads exactly as one to a job that does not exist.
        send(&mut bob, "subscribe", &id).await;
        let refused = next_frame(&mut bob, Duration::from_secs(60)).await;
        let missing_id = "job_0000000000000000000000000000000f";
        send(&mut bob, "subscribe", missing_id).await;
        let missing = next_frame(&mut bob, Duration::from_secs(60)).await;
        assert_eq!(refused["type"], "error", "{refused}");
        assert_eq!(refused["job_id"], id.as_str());
        assert_eq!(missing["type"], "error", "{missing}");
        assert_eq!(
            refused["message"], missing["message"],
            "ids cannot be probed"
        );

        // A client that subscribes and vanishes without its $disconnect reaching the functions.
        send(&mut vanishing, "subscribe", &id).await;
        assert_eq!(
            next_frame(&mut vanishing, Duration::from_secs(60)).await["type"],
            "subscribed"
        );
        // The gateway runs one frame's function at a time per connection: once this second
        // frame is answered, the subscribe's catch-up has all been posted while still connected.
        send(&mut vanishing, "subscribe", missing_id).await;
        loop {
            let f = next_frame(&mut vanishing, Duration::from_secs(60)).await;
            if f["type"] == "error" && f["job_id"] == missing_id {
                break;
            }
        }
        vanishing.close(None).await.unwrap();
        drop(vanishing);
        let kept = live_items_of(emu, &vanishing_id);
        assert!(
            kept.iter().any(|i| i["SK"]["S"] == "META"),
            "without $disconnect the connection stays recorded: {kept:?}"
        );
        let gone_before = stats(emu)["gone"].as_u64().unwrap();

        let frames = story(&mut alice, &id, "generation").await;
        let stages = assert_well_told(&frames);
        assert_eq!(
            stages,
            ["planning", "generating", "composing"],
            "{frames:#?}"
        );
        for index in 0..2 {
            assert!(
                frames.iter().any(|f| f["type"] == "clip"
                    && f["index"] == index
                    && f["status"] == "done"
                    && f["provider"] == "procedural"),
                "clip {index} done: {frames:#?}"
            );
        }
        let completed = frames.last().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let video = dir.path().join("final.mp4");
        std::fs::write(&video, fetch(&download_url(completed, "final"))).unwrap();
        let facts = probe(&video);
        assert!((facts.duration - 5.0).abs() < 0.15, "{facts:?}");
        assert_eq!((facts.width, facts.height), (1280, 720), "{facts:?}");

        // The vanished client met GoneException and was removed, and the job is completed.
        let start = Instant::now();
        loop {
            let left = live_items_of(emu, &vanishing_id);
            if left.is_empty() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "a gone connection is removed: {left:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let s = stats(emu);
        assert!(s["gone"].as_u64().unwrap() > gone_before, "{s}");
        assert!(s["lost_disconnects"].as_u64().unwrap() >= 1, "{s}");
        let job = emu.call("GET", &format!("/v1/generations/{id}"), ALICE, None, &[]);
        assert_eq!(job.json["status"], "completed", "{}", job.json);

        // Records were delivered twice, and nothing above was told twice for it.
        let streams = s["streams"].as_array().unwrap();
        assert!(
            streams
                .iter()
                .any(|f| f["redelivered"].as_u64().unwrap() > 0),
            "{s}"
        );

        // Bob heard nothing of Alice's job: the next thing he gets is the answer to his next frame.
        send(&mut bob, "unsubscribe", missing_id).await;
        send(&mut bob, "subscribe", missing_id).await;
        let next = next_frame(&mut bob, Duration::from_secs(60)).await;
        assert_ne!(next["job_id"], id.as_str(), "{next}");
    });
}

/// A 4 s 320x240 upload with a tone, sent the way a client sends one (`POST /v1/uploads`, PUT).
fn upload(emu: &Emulator, dir: &Path) -> String {
    let path = dir.join("clip.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25:duration=4",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=4",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
        path.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&path).unwrap();
    let body = json!({"project": "live", "filename": "clip.mp4",
                      "size_bytes": bytes.len(), "content_type": "video/mp4"});
    let r = emu.call("POST", "/v1/uploads", ALICE, Some(&body), &[]);
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.json["mode"], "single", "{}", r.json);
    assert_eq!(send_signed(&r.json["upload"], &bytes), 200);
    r.json["key"].as_str().unwrap().to_owned()
}

#[test]
fn a_processing_job_is_told_stage_by_stage_to_completed_with_every_rendition() {
    let emu = stack();
    let dir = tempfile::tempdir().unwrap();
    let key = upload(emu, dir.path());
    // The job exists once the upload's arrival started it; subscribing late gets the catch-up.
    let start = Instant::now();
    let id = loop {
        let r = emu.call("GET", "/v1/processing-jobs?limit=100", ALICE, None, &[]);
        assert_eq!(r.status, 200, "{}", r.json);
        if let Some(j) = r.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["source_key"] == key.as_str())
        {
            break j["id"].as_str().unwrap().to_owned();
        }
        assert!(start.elapsed() < JOB_LIMIT, "no processing job for {key}");
        std::thread::sleep(Duration::from_millis(300));
    };
    let frames = runtime().block_on(async {
        let (mut ws, _) = connect(emu, ALICE, false).await;
        story(&mut ws, &id, "processing").await
    });
    let stages = assert_well_told(&frames);
    assert_eq!(
        stages,
        [
            "probe",
            "trim",
            "watermark",
            "renditions",
            "thumbnail",
            "publish"
        ],
        "{frames:#?}"
    );
    let completed = frames.last().unwrap();
    let detail = emu.call(
        "GET",
        &format!("/v1/processing-jobs/{id}"),
        ALICE,
        None,
        &[],
    );
    assert_eq!(detail.json["status"], "succeeded", "{}", detail.json);
    let mut told: Vec<String> = completed["downloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_owned())
        .collect();
    told.sort();
    let mut want: Vec<String> = detail.json["renditions"]
        .as_array()
        .unwrap_or_else(|| panic!("renditions in {}", detail.json))
        .iter()
        .map(|o| o["rendition"].as_str().unwrap().to_owned())
        .chain(["thumbnail".to_owned()])
        .collect();
    want.sort();
    assert_eq!(told, want, "{completed}");
    // A rendition link downloads a video of the trimmed length (4 s less 1 s each end).
    let first = want.iter().find(|n| *n != "thumbnail").unwrap();
    let out = dir.path().join("rendition.mp4");
    std::fs::write(&out, fetch(&download_url(completed, first))).unwrap();
    let facts = probe(&out);
    assert!((facts.duration - 2.0).abs() < 0.2, "{facts:?}");
}

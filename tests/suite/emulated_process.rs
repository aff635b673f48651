//! Upload processing end to end on emulated AWS: a plain S3 PutObject under raw/, moto's bucket
//! notification into the raw-upload queue, the real dispatcher and processing functions under
//! `cargo lambda watch`, moto executing statemachine/processing.asl.json, SNS. Outputs are
//! fetched from S3 and measured with ffprobe; executions are found by listing them.
//!
//! Two stacks: the template's defaults (single pass), and one with a 4 s segment threshold and
//! 2 s segments, so the same source takes the segment Map and can be compared frame for frame.

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use vidpipe_aws::DynamoJobStore;
use vidpipe_aws::config::{dynamodb_client, emulator_sdk_config, s3_client};
use vidpipe_domain::names;
use vidpipe_domain::ports::{BlobStore, ProcessStore};
use vidpipe_domain::processing::{Fit, ProcessFailure, ProcessStatus, RenditionSet, SourceRef};
use vidpipe_tests::emulator::Emulator;
use vidpipe_tests::{ffmpeg, probe, write_logo};

const WATERMARK_KEY: &str = "config/watermark.png";
const SOURCE_SECONDS: f64 = 14.0;
/// The template's trims: 3 s intro, 5 s outro.
const OUTPUT_SECONDS: f64 = SOURCE_SECONDS - 8.0;
const FPS: f64 = 30.0;
const RENDITIONS: [&str; 3] = ["youtube", "reels", "tiktok"];

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

/// A started stack with the watermark in place.
fn prepared(env: &[(&str, &str)]) -> Emulator {
    let emu = Emulator::start(env);
    install_watermark(&emu);
    emu
}

/// The template's defaults: everything here is short enough for one pass.
fn stack() -> &'static Emulator {
    static STACK: OnceLock<Emulator> = OnceLock::new();
    STACK.get_or_init(|| prepared(&[]))
}

/// A 4 s threshold and 2 s segments: the 6 s output takes the segment Map. Its own scratch
/// directory, since both stacks' functions run on this machine.
fn segment_stack() -> &'static Emulator {
    static STACK: OnceLock<Emulator> = OnceLock::new();
    STACK.get_or_init(|| {
        let scratch = std::env::temp_dir().join("vidpipe-emulated-segments");
        prepared(&[
            ("VIDPIPE_SEGMENT_THRESHOLD_SECONDS", "4"),
            ("VIDPIPE_SEGMENT_SECONDS", "2"),
            ("VIDPIPE_SCRATCH_DIR", scratch.to_str().unwrap()),
        ])
    })
}

/// Fargate configured (an image, subnets and security groups) and a 4 s threshold: long uploads
/// run `vidpipe-worker process` through ecs:runTask.sync, which the emulator runs as a local
/// process with the task definition's environment and the state's overrides.
fn worker_stack() -> &'static Emulator {
    static STACK: OnceLock<Emulator> = OnceLock::new();
    STACK.get_or_init(|| {
        let scratch = std::env::temp_dir().join("vidpipe-emulated-worker");
        let emu = Emulator::start_with(
            &[
                ("VIDPIPE_SEGMENT_THRESHOLD_SECONDS", "4"),
                ("VIDPIPE_SCRATCH_DIR", scratch.to_str().unwrap()),
            ],
            &[
                (
                    "WorkerImageUri",
                    "123456789012.dkr.ecr.us-east-1.amazonaws.com/vidpipe-worker:test",
                ),
                ("FargateSubnetIds", "subnet-0a1b2c3d"),
                ("FargateSecurityGroupIds", "sg-0a1b2c3d"),
                ("WorkerCpu", "2048"),
                ("WorkerMemory", "4096"),
            ],
        );
        install_watermark(&emu);
        emu
    })
}

fn install_watermark(emu: &Emulator) {
    let dir = tempfile::tempdir().unwrap();
    let png = write_logo(&dir.path().join("mark.png"), 200, 80, [255, 255, 255]);
    let bytes = std::fs::read(png).unwrap();
    runtime().block_on(async {
        blobs(emu)
            .await
            .put_bytes(WATERMARK_KEY, bytes, "image/png")
            .await
            .expect("upload the watermark");
    });
}

async fn blobs(emu: &Emulator) -> vidpipe_aws::S3BlobStore {
    let sdk = emulator_sdk_config(&emu.moto).await;
    vidpipe_aws::S3BlobStore::new(s3_client(&sdk), emu.bucket.clone())
}

/// 640x360 at 30 fps with a tone and a keyframe every second; without B-frames (the B-frame
/// variant is `a_b_frame_source_takes_the_segment_map_too`).
fn source_video(dir: &Path, name: &str) -> Vec<u8> {
    source_video_with(dir, name, false)
}

fn source_video_with(dir: &Path, name: &str, b_frames: bool) -> Vec<u8> {
    let path = dir.join(name);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size=640x360:rate=30:duration={SOURCE_SECONDS}"),
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=330:duration={SOURCE_SECONDS}"),
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-g",
        "30",
        "-force_key_frames",
        "expr:gte(t,n_forced*1)",
        "-bf",
        if b_frames { "3" } else { "0" },
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
        "-f",
        "mov",
        path.to_str().unwrap(),
    ]);
    std::fs::read(path).unwrap()
}

fn upload(emu: &Emulator, key: &str, bytes: Vec<u8>, content_type: &str) {
    runtime().block_on(async {
        blobs(emu)
            .await
            .put_bytes(key, bytes, content_type)
            .await
            .unwrap_or_else(|e| panic!("PutObject {key}: {e}"))
    });
}

/// Every execution of the processing state machine whose input names `key`: (name, ARN, input).
fn executions_for(emu: &Emulator, key: &str) -> Vec<(String, String, Value)> {
    let arn = emu.resource("state_machines", "ProcessingStateMachine");
    let list = emu.aws_json(
        "states",
        "AWSStepFunctions.ListExecutions",
        &json!({ "stateMachineArn": arn, "maxResults": 1000 }),
    );
    let mut out = Vec::new();
    for e in list["executions"].as_array().cloned().unwrap_or_default() {
        let exec_arn = e["executionArn"].as_str().unwrap().to_owned();
        let d = emu.aws_json(
            "states",
            "AWSStepFunctions.DescribeExecution",
            &json!({ "executionArn": exec_arn }),
        );
        let input: Value = serde_json::from_str(d["input"].as_str().unwrap_or("{}")).unwrap();
        if input["source"]["key"] == key {
            out.push((e["name"].as_str().unwrap().to_owned(), exec_arn, input));
        }
    }
    out
}

/// Waits for the one execution of `key` to end; returns (its description, its input).
fn finished(emu: &Emulator, key: &str, limit: Duration) -> (Value, Value) {
    let start = Instant::now();
    loop {
        let found = executions_for(emu, key);
        assert!(
            found.len() <= 1,
            "{key}: more than one execution: {found:?}"
        );
        if let Some((_, arn, input)) = found.first() {
            let d = emu.aws_json(
                "states",
                "AWSStepFunctions.DescribeExecution",
                &json!({ "executionArn": arn }),
            );
            if d["status"] != "RUNNING" {
                return (d, input.clone());
            }
        }
        assert!(
            start.elapsed() < limit,
            "{key}: no finished execution within {limit:?} (found {})",
            found.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// An SQS queue subscribed to the processing topic, created by the test.
struct Subscription {
    url: String,
}

impl Subscription {
    fn new(emu: &Emulator, name: &str) -> Subscription {
        let created = emu.aws_json(
            "sqs",
            "AmazonSQS.CreateQueue",
            &json!({ "QueueName": name }),
        );
        let url = created["QueueUrl"].as_str().unwrap().to_owned();
        let attrs = emu.aws_json(
            "sqs",
            "AmazonSQS.GetQueueAttributes",
            &json!({ "QueueUrl": url, "AttributeNames": ["QueueArn"] }),
        );
        let queue_arn = attrs["Attributes"]["QueueArn"].as_str().unwrap().to_owned();
        let topic = emu.resource("topics", "ProcessingTopic");
        let answer = emu.aws_query(
            "sns",
            &[
                ("Action", "Subscribe"),
                ("Version", "2010-03-31"),
                ("TopicArn", &topic),
                ("Protocol", "sqs"),
                ("Endpoint", &queue_arn),
            ],
        );
        assert!(answer.contains("SubscriptionArn"), "{answer}");
        Subscription { url }
    }

    /// The first ProcessEvent published for `key`, within `limit`.
    fn event_for(&self, emu: &Emulator, key: &str, limit: Duration) -> Value {
        let start = Instant::now();
        loop {
            let got = emu.aws_json(
                "sqs",
                "AmazonSQS.ReceiveMessage",
                &json!({ "QueueUrl": self.url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1 }),
            );
            for m in got["Messages"].as_array().cloned().unwrap_or_default() {
                let envelope: Value = serde_json::from_str(m["Body"].as_str().unwrap()).unwrap();
                let event: Value =
                    serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
                if event["key"] == key {
                    return event;
                }
            }
            assert!(
                start.elapsed() < limit,
                "no SNS notification for {key} within {limit:?}"
            );
        }
    }
}

/// Every frame of the trimmed source, as H.264 yuv420p with AAC audio.
fn assert_whole_output(f: &vidpipe_tests::Facts, name: &str) {
    assert_eq!(
        f.video_frames,
        Some((OUTPUT_SECONDS * FPS) as u64),
        "{name}"
    );
    assert_eq!(
        (f.video_codec.as_str(), f.pix_fmt.as_str()),
        ("h264", "yuv420p"),
        "{name}"
    );
    assert_eq!(f.audio_codec.as_deref(), Some("aac"), "{name}");
}

/// The failure recorded for `source` in the emulated table (the record must say failed).
fn recorded_failure(emu: &Emulator, source: &SourceRef) -> ProcessFailure {
    let record = runtime().block_on(async {
        let sdk = emulator_sdk_config(&emu.moto).await;
        DynamoJobStore::new(dynamodb_client(&sdk), emu.ready["table"].as_str().unwrap())
            .get_process(&source.id())
            .await
            .unwrap()
            .expect("a processing record")
    });
    assert_eq!(record.status, ProcessStatus::Failed);
    record.error.expect("the failure")
}

/// Fetches an object to a file and measures it.
fn fetch_probe(emu: &Emulator, key: &str, dir: &Path, name: &str) -> vidpipe_tests::Facts {
    let path = dir.join(name);
    let bytes = runtime().block_on(async {
        blobs(emu)
            .await
            .get_bytes(key)
            .await
            .unwrap_or_else(|e| panic!("GetObject {key}: {e}"))
    });
    std::fs::write(&path, bytes).unwrap();
    probe(&path)
}

/// ETag and Last-Modified, through a presigned HEAD: what a rewrite would change.
fn stamp(emu: &Emulator, key: &str) -> (String, String) {
    let url = runtime().block_on(async {
        blobs(emu)
            .await
            .presign_get(key, Duration::from_secs(300))
            .await
            .unwrap()
    });
    let r = ureq::get(&url)
        .call()
        .unwrap_or_else(|e| panic!("GET {key}: {e}"));
    (
        r.header("etag").unwrap_or_default().to_owned(),
        r.header("last-modified").unwrap_or_default().to_owned(),
    )
}

/// S3's notification encoding of a key (what moto and AWS put in the event): `+` for a space,
/// `%XX` for everything but unreserved characters.
fn s3_event_key(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        match b {
            b' ' => out.push('+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[test]
fn an_upload_is_processed_once_into_measured_renditions_and_notified() {
    let emu = stack();
    let dir = tempfile::tempdir().unwrap();
    let subscription = Subscription::new(emu, "test-notified-success");
    let key = "raw/acme/launch/My Clip ü.MOV";
    upload(
        emu,
        key,
        source_video(dir.path(), "src.mov"),
        "video/quicktime",
    );

    let (done, input) = finished(emu, key, Duration::from_secs(900));
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    // Named by the write: bucket, key, and the notification's sequencer (no versioning).
    let source: SourceRef = serde_json::from_value(input["source"].clone()).unwrap();
    assert_eq!(
        (source.bucket.as_str(), source.key.as_str()),
        (emu.bucket.as_str(), key)
    );
    assert!(
        source.version.is_some(),
        "the sequencer names the write: {input}"
    );
    assert_eq!(done["name"], source.id());
    let states = emu.entered_states(done["executionArn"].as_str().unwrap());
    assert!(states.iter().any(|s| s == "Transcode"), "{states:?}");
    assert!(!states.iter().any(|s| s == "RenderSegments"), "{states:?}");

    // Every rendition measured: the trimmed duration, h264 yuv420p with AAC, the box of its
    // profile shrunk to the source (never upscaled), every frame.
    for name in RENDITIONS {
        let out_key = format!("processed/acme/launch/My Clip ü_{name}.mp4");
        let f = fetch_probe(emu, &out_key, dir.path(), &format!("{name}.mp4"));
        assert!(
            (f.duration - OUTPUT_SECONDS).abs() <= 1.0 / FPS + 1e-3,
            "{name}: duration {} (want {OUTPUT_SECONDS})",
            f.duration
        );
        assert_whole_output(&f, name);
        let profile = RenditionSet::default_set()
            .renditions
            .into_iter()
            .find(|r| r.name == name)
            .unwrap();
        let fit = Fit::compute(640, 360, profile.width, profile.height);
        assert_eq!((f.width, f.height), (fit.width, fit.height), "{name}");
        assert!(
            fit.inner_width <= 640 && fit.inner_height <= 360,
            "{name}: the picture is never upscaled"
        );
    }
    let thumb = fetch_probe(
        emu,
        "processed/acme/launch/My Clip ü_thumbnail.jpg",
        dir.path(),
        "thumb.jpg",
    );
    assert_eq!((thumb.width, thumb.height), (640, 360));
    let manifest: Value = runtime().block_on(async {
        serde_json::from_slice(
            &blobs(emu)
                .await
                .get_bytes("processed/acme/launch/My Clip ü_manifest.json")
                .await
                .unwrap(),
        )
        .unwrap()
    });
    assert_eq!(manifest["route"], "single_pass");
    assert_eq!(
        manifest["outputs"].as_array().unwrap().len(),
        3,
        "{manifest}"
    );

    let event = subscription.event_for(emu, key, Duration::from_secs(60));
    assert_eq!(event["status"], "succeeded", "{event}");
    assert_eq!(event["source_id"], source.id());
    assert_eq!(event["outputs"].as_array().unwrap().len(), 3, "{event}");

    // Duplicate delivery: the same notification again (as S3 may send it) starts nothing and
    // rewrites nothing.
    let outputs: Vec<String> = RENDITIONS
        .iter()
        .map(|n| format!("processed/acme/launch/My Clip ü_{n}.mp4"))
        .chain(["processed/acme/launch/My Clip ü_manifest.json".to_owned()])
        .collect();
    let before: Vec<_> = outputs.iter().map(|k| stamp(emu, k)).collect();
    let body = json!({
        "Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": "2026-01-01T00:00:00.000Z",
            "eventName": "ObjectCreated:Put",
            "s3": {
                "s3SchemaVersion": "1.0",
                "bucket": { "name": emu.bucket, "arn": format!("arn:aws:s3:::{}", emu.bucket) },
                "object": { "key": s3_event_key(key), "sequencer": source.version }
            }
        }]
    });
    let raw_queue = emu.resource("queues", "RawUploadQueue");
    let dlq = emu.resource("queues", "RawUploadDeadLetterQueue");
    let sqs = runtime()
        .block_on(async { aws_sdk_sqs::Client::new(&emulator_sdk_config(&emu.moto).await) });
    runtime()
        .block_on(
            sqs.send_message()
                .queue_url(&raw_queue)
                .message_body(body.to_string())
                .send(),
        )
        .expect("SendMessage");
    // Wait until the dispatcher has taken it off the queue, then a little for any execution it
    // might (wrongly) have started to show.
    let depth = |queue: &str| -> u64 {
        let attrs = runtime()
            .block_on(
                sqs.get_queue_attributes()
                    .queue_url(queue)
                    .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                    .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                    .send(),
            )
            .expect("GetQueueAttributes");
        attrs
            .attributes()
            .into_iter()
            .flatten()
            .filter_map(|(_, v)| v.parse::<u64>().ok())
            .sum()
    };
    let start = Instant::now();
    while depth(&raw_queue) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the raw queue never drained"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(3));
    let all = executions_for(emu, key);
    assert_eq!(
        all.len(),
        1,
        "a duplicate delivery started another execution: {all:?}"
    );
    let after: Vec<_> = outputs.iter().map(|k| stamp(emu, k)).collect();
    assert_eq!(
        before, after,
        "outputs were rewritten by a duplicate delivery"
    );
    // Nothing was given up on: the dispatcher took the duplicate as done, not as a failure.
    let dead = runtime()
        .block_on(
            sqs.receive_message()
                .queue_url(&dlq)
                .max_number_of_messages(10)
                .send(),
        )
        .expect("ReceiveMessage");
    assert!(dead.messages().is_empty(), "{dead:?}");
    assert_eq!(depth(&dlq), 0);
}

#[test]
fn a_long_upload_takes_the_segment_map_and_matches_the_single_pass_output() {
    segments_match_single_pass("clip", false);
}

/// The same with B-frames, as most cameras and phones write them: every segment seeks the
/// source itself, so no reordered frame is lost at a cut.
#[test]
fn a_b_frame_source_takes_the_segment_map_too() {
    segments_match_single_pass("bframes", true);
}

fn segments_match_single_pass(stem: &str, b_frames: bool) {
    let dir = tempfile::tempdir().unwrap();
    let bytes = source_video_with(dir.path(), "src.mp4", b_frames);
    // The same source through both stacks: one pass here, segments there.
    let single = stack();
    let segmented = segment_stack();
    let reference = format!("raw/acme/reference/{stem}.mp4");
    let long = format!("raw/acme/long/{stem}.mp4");
    upload(single, &reference, bytes.clone(), "video/mp4");
    upload(segmented, &long, bytes, "video/mp4");

    let (seg_done, seg_input) = finished(segmented, &long, Duration::from_secs(900));
    assert_eq!(seg_done["status"], "SUCCEEDED", "{seg_done}");
    let states = segmented.entered_states(seg_done["executionArn"].as_str().unwrap());
    for s in [
        "Split",
        "RenderAndEncodeAudio",
        "RenderSegments",
        "RenderSegment",
        "EncodeAudio",
        "Assemble",
        "Publish",
    ] {
        assert!(
            states.iter().any(|e| e == s),
            "segment path missed {s}: {states:?}"
        );
    }
    assert!(!states.iter().any(|s| s == "Transcode"), "{states:?}");
    let renders = states.iter().filter(|s| *s == "RenderSegment").count();
    assert!(
        renders >= 3,
        "6 s in 2 s segments is at least 3 renders, got {renders}"
    );

    let (ref_done, _) = finished(single, &reference, Duration::from_secs(900));
    assert_eq!(ref_done["status"], "SUCCEEDED", "{ref_done}");
    let ref_states = single.entered_states(ref_done["executionArn"].as_str().unwrap());
    assert!(
        ref_states.iter().any(|s| s == "Transcode"),
        "{ref_states:?}"
    );

    for name in RENDITIONS {
        let seg = fetch_probe(
            segmented,
            &format!("processed/acme/long/{stem}_{name}.mp4"),
            dir.path(),
            &format!("seg_{stem}_{name}.mp4"),
        );
        let one = fetch_probe(
            single,
            &format!("processed/acme/reference/{stem}_{name}.mp4"),
            dir.path(),
            &format!("one_{stem}_{name}.mp4"),
        );
        assert_eq!(seg.video_frames, one.video_frames, "{name}: frame count");
        assert_eq!(
            seg.video_frames,
            Some((OUTPUT_SECONDS * FPS) as u64),
            "{name}"
        );
        assert!(
            (seg.duration - one.duration).abs() <= 1.0 / FPS + 1e-3,
            "{name}: segments {} s, one pass {} s",
            seg.duration,
            one.duration
        );
        assert_eq!((seg.width, seg.height), (one.width, one.height), "{name}");
        assert_eq!(
            (seg.video_codec.as_str(), seg.pix_fmt.as_str()),
            ("h264", "yuv420p")
        );
        assert_eq!(seg.audio_codec.as_deref(), Some("aac"), "{name}");
        let audio = seg.audio_duration.unwrap_or(0.0);
        assert!(
            (audio - OUTPUT_SECONDS).abs() <= 0.05,
            "{name}: the audio, encoded once, spans the output ({audio} s)"
        );
    }
    // This source's segment scratch objects are cleaned up after assembly. (Only its own: the
    // other segment test shares the stack and may be mid-run.)
    let source: SourceRef = serde_json::from_value(seg_input["source"].clone()).unwrap();
    let prefix = vidpipe_domain::processing::temp_key(&source.id(), "");
    let leftovers =
        runtime().block_on(async { blobs(segmented).await.list(&prefix).await.unwrap() });
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_text_file_named_mp4_is_rejected_recorded_and_notified() {
    let emu = stack();
    let subscription = Subscription::new(emu, "test-notified-failure");
    let key = "raw/acme/launch/notes.mp4";
    upload(
        emu,
        key,
        b"these are meeting notes, not a video\n".repeat(20),
        "video/mp4",
    );
    let (done, input) = finished(emu, key, Duration::from_secs(300));
    assert_eq!(done["status"], "FAILED", "{done}");
    let source: SourceRef = serde_json::from_value(input["source"].clone()).unwrap();

    let error = recorded_failure(emu, &source);
    assert_eq!(error.error, names::SOURCE_REJECTED);
    assert!(
        error.reason.contains("not readable media"),
        "the reason is the rejection's: {}",
        error.reason
    );

    let event = subscription.event_for(emu, key, Duration::from_secs(60));
    // ffprobe read the upload through a presigned URL and echoed it in its complaint: neither
    // the record nor the notification may carry it (anyone reading them could fetch the upload).
    for text in [error.reason.clone(), event.to_string()] {
        for leak in ["X-Amz-", "x-id=", "?", "http://", "/tmp/"] {
            assert!(!text.contains(leak), "{leak:?} leaked into {text}");
        }
    }
    assert_eq!(event["status"], "failed", "{event}");
    assert_eq!(event["error"]["error"], names::SOURCE_REJECTED, "{event}");

    let outputs = runtime().block_on(async {
        blobs(emu)
            .await
            .list("processed/acme/launch/notes")
            .await
            .unwrap()
    });
    assert!(
        outputs.is_empty(),
        "a rejected upload published {outputs:?}"
    );
}

/// A long upload on a stack with Fargate: the route picks the worker, the task runs the single
/// pass, publish reads what it left, and the outputs equal the one-pass outputs. Then, with the
/// watermark gone, the worker's own error name (not ECS's States.TaskFailed) is recorded and
/// notified.
#[test]
fn a_long_upload_runs_on_the_fargate_worker_when_the_stack_has_one() {
    let emu = worker_stack();
    let dir = tempfile::tempdir().unwrap();
    let subscription = Subscription::new(emu, "test-notified-worker");
    let key = "raw/acme/long/worker clip.mp4";
    upload(emu, key, source_video(dir.path(), "src.mp4"), "video/mp4");
    let (done, _) = finished(emu, key, Duration::from_secs(900));
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    let states = emu.entered_states(done["executionArn"].as_str().unwrap());
    for s in ["Probe", "TranscodeOnFargate", "WorkerTranscoded", "Publish"] {
        assert!(
            states.iter().any(|e| e == s),
            "worker path missed {s}: {states:?}"
        );
    }
    for s in ["Transcode", "Split", "RenderSegments"] {
        assert!(
            !states.iter().any(|e| e == s),
            "worker path entered {s}: {states:?}"
        );
    }
    for name in RENDITIONS {
        let out = fetch_probe(
            emu,
            &format!("processed/acme/long/worker clip_{name}.mp4"),
            dir.path(),
            &format!("worker_{name}.mp4"),
        );
        assert_whole_output(&out, name);
        let fit = match name {
            "youtube" => Fit::compute(640, 360, 1920, 1080),
            _ => Fit::compute(640, 360, 1080, 1920),
        };
        assert_eq!((out.width, out.height), (fit.width, fit.height), "{name}");
    }
    let manifest: Value = runtime().block_on(async {
        let bytes = blobs(emu)
            .await
            .get_bytes("processed/acme/long/worker clip_manifest.json")
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    });
    assert_eq!(manifest["route"], "worker", "{manifest}");
    assert_eq!(
        vidpipe_tests::timing_steps(&manifest),
        ["probe", "worker_transcode", "publish"],
        "{manifest}"
    );
    // The worker's seconds are billed at the template's task size, not as Lambda seconds.
    let cost = &manifest["cost"];
    assert!(cost["worker_seconds"].as_f64().unwrap() > 0.0, "{cost}");
    assert_eq!(
        cost["worker_size"],
        json!({"cpu_units": 2048, "memory_mb": 4096}),
        "{cost}"
    );
    assert!(cost["estimated_usd"].as_f64().unwrap() > 0.0, "{cost}");
    let event = subscription.event_for(emu, key, Duration::from_secs(60));
    assert_eq!(event["status"], "succeeded", "{event}");

    // Now a failure inside the task: the watermark is gone, so the worker fails with
    // VidPipe.ConfigurationError (permanent: tried once), leaves it in temp/ and exits 1.
    runtime().block_on(async { blobs(emu).await.delete(WATERMARK_KEY).await.unwrap() });
    let failing = "raw/acme/long/no mark.mp4";
    upload(
        emu,
        failing,
        source_video(dir.path(), "src2.mp4"),
        "video/mp4",
    );
    let (failed, input2) = finished(emu, failing, Duration::from_secs(600));
    install_watermark(emu);
    assert_eq!(failed["status"], "FAILED", "{failed}");
    let states = emu.entered_states(failed["executionArn"].as_str().unwrap());
    assert!(
        states.iter().any(|s| s == "TranscodeOnFargate"),
        "{states:?}"
    );
    assert!(states.iter().any(|s| s == "RecordFailure"), "{states:?}");
    let source: SourceRef = serde_json::from_value(input2["source"].clone()).unwrap();
    let error = recorded_failure(emu, &source);
    assert_eq!(error.error, names::CONFIGURATION, "{error:?}");
    assert!(error.reason.contains("watermark"), "{}", error.reason);
    let event = subscription.event_for(emu, failing, Duration::from_secs(60));
    assert_eq!(event["status"], "failed", "{event}");
    assert_eq!(event["error"]["error"], names::CONFIGURATION, "{event}");
}

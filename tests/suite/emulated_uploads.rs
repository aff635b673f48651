//! Uploads over the API on emulated AWS, the way a newcomer sends a file: `POST /v1/uploads`,
//! PUT the bytes to the presigned URL(s) exactly as handed out, complete, then watch the
//! processing job the object's arrival started (S3 → SQS → the dispatcher → Step Functions)
//! through `GET /v1/processing-jobs`. Renditions are fetched through the download route's URLs
//! and judged by ffprobe. The stack is started with 5 MiB multipart parts and a 5 MiB single-PUT
//! limit, so a ~7 MiB file takes the multipart path; nothing installs a watermark but the
//! emulator's own development seed.
//!
//! Also: every new route tried as another tenant (404, or 403 for a prefix), a raw upload of
//! another size than announced failing its job with a named reason and a retry, and a garbage
//! logo failing its generation with `VidPipe.AssetRejected`.

use serde_json::{Value, json};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use vidpipe_domain::names;
use vidpipe_domain::processing::Fit;
use vidpipe_tests::emulator::{Emulator, fetch, send_signed};
use vidpipe_tests::{ffmpeg, probe};

const MIB: u64 = 1024 * 1024;
const ALICE: &str = "alice";
const BOB: &str = "bob";
const SOURCE_SECONDS: f64 = 14.0;
/// The template's trims: 3 s intro, 5 s outro.
const OUTPUT_SECONDS: f64 = SOURCE_SECONDS - 8.0;

fn stack() -> &'static Emulator {
    static STACK: OnceLock<Emulator> = OnceLock::new();
    STACK.get_or_init(|| {
        let scratch = std::env::temp_dir().join("vidpipe-emulated-uploads");
        let part = (5 * MIB).to_string();
        Emulator::start(&[
            ("VIDPIPE_UPLOAD_SINGLE_PUT_MAX_BYTES", part.as_str()),
            ("VIDPIPE_UPLOAD_PART_BYTES", part.as_str()),
            ("VIDPIPE_SCRATCH_DIR", scratch.to_str().unwrap()),
        ])
    })
}

/// 640x360 at 30 fps with a tone; `bitrate` sets how big the file is.
fn source_video(dir: &Path, name: &str, bitrate: &str) -> Vec<u8> {
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
        "ultrafast",
        "-b:v",
        bitrate,
        "-minrate",
        bitrate,
        "-maxrate",
        bitrate,
        "-bufsize",
        "1M",
        "-x264-params",
        "nal-hrd=cbr:filler=1",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
        "-f",
        "mp4",
        path.to_str().unwrap(),
    ]);
    std::fs::read(path).unwrap()
}

/// Announces and uploads `bytes` as `file` under `project`, then completes. Returns the upload.
fn upload(emu: &Emulator, file: &str, bytes: &[u8], announced: u64) -> Value {
    let body = json!({"project": "launch", "filename": file, "size_bytes": announced, "content_type": "video/mp4"});
    let r = emu.call("POST", "/v1/uploads", ALICE, Some(&body), &[]);
    assert_eq!(r.status, 201, "{}", r.json);
    let up = r.json;
    assert_eq!(up["key"], format!("raw/{ALICE}/launch/{file}"));
    match up["mode"].as_str().unwrap() {
        "single" => {
            let headers = up["upload"]["headers"].as_object().unwrap();
            assert!(
                headers.keys().all(|k| k == "content-type"
                    || k == "content-length"
                    || k.starts_with("x-amz-server-side-encryption")),
                "only the headers the client must send: {headers:?}"
            );
            assert_eq!(send_signed(&up["upload"], bytes), 200);
        }
        "multipart" => {
            let part_size = up["part_size"].as_u64().unwrap() as usize;
            for p in up["parts"].as_array().unwrap() {
                let n = p["part_number"].as_u64().unwrap() as usize;
                let start = (n - 1) * part_size;
                let end = (start + p["size_bytes"].as_u64().unwrap() as usize).min(bytes.len());
                assert_eq!(send_signed(p, &bytes[start..end]), 200, "part {n}");
            }
        }
        other => panic!("mode {other}"),
    }
    up
}

/// Waits until the tenant's processing job for `key` is no longer running.
fn job_for(emu: &Emulator, key: &str, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        let r = emu.call("GET", "/v1/processing-jobs?limit=100", ALICE, None, &[]);
        assert_eq!(r.status, 200, "{}", r.json);
        let found = r.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["source_key"] == key)
            .cloned();
        if let Some(j) = found.filter(|j| j["status"] != "running") {
            return j;
        }
        assert!(
            start.elapsed() < limit,
            "no finished job for {key} in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Downloads every rendition through the download route and measures it.
fn assert_processed(emu: &Emulator, job: &Value, dir: &Path) {
    assert_eq!(job["status"], "succeeded", "{job}");
    let id = job["id"].as_str().unwrap();
    let detail = emu.call(
        "GET",
        &format!("/v1/processing-jobs/{id}"),
        ALICE,
        None,
        &[],
    );
    assert_eq!(detail.status, 200);
    let d = &detail.json;
    assert_eq!(d["route"], "single_pass", "{d}");
    let steps: Vec<&str> = d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["probe", "transcode", "publish"], "{d}");
    assert!(d["cost"]["compute_seconds"].as_f64().unwrap() > 0.0, "{d}");
    assert_eq!(d["renditions"].as_array().unwrap().len(), 3);

    let r = emu.call(
        "GET",
        &format!("/v1/processing-jobs/{id}/download"),
        ALICE,
        None,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.json);
    let outputs = r.json["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 4, "three renditions and the thumbnail");
    for o in outputs {
        let name = o["name"].as_str().unwrap();
        let ext = if name == "thumbnail" { "jpg" } else { "mp4" };
        let path = dir.join(format!("{id}_{name}.{ext}"));
        std::fs::write(&path, fetch(o["url"].as_str().unwrap())).unwrap();
        let f = probe(&path);
        if name == "thumbnail" {
            assert_eq!(f.video_codec, "mjpeg", "{name}");
            continue;
        }
        // The source is 640x360 landscape: no upscaling, youtube keeps it, the portrait boxes
        // shrink to its width.
        assert_eq!(f.video_codec, "h264", "{name}");
        assert_eq!(f.pix_fmt, "yuv420p", "{name}");
        assert_eq!(
            f.video_frames,
            Some((OUTPUT_SECONDS * 30.0) as u64),
            "{name}"
        );
        assert!(
            (f.duration - OUTPUT_SECONDS).abs() < 0.1,
            "{name}: {}",
            f.duration
        );
        assert_eq!(f.audio_codec.as_deref(), Some("aac"), "{name}");
        let (bw, bh) = if name == "youtube" {
            (1920, 1080)
        } else {
            (1080, 1920)
        };
        let fit = Fit::compute(640, 360, bw, bh);
        assert_eq!((f.width, f.height), (fit.width, fit.height), "{name}");
    }
}

#[test]
fn presigned_and_multipart_uploads_land_in_raw_and_process_through_step_functions() {
    let emu = stack();
    let dir = tempfile::tempdir().unwrap();

    let small = source_video(dir.path(), "small.mp4", "400k");
    assert!((small.len() as u64) < 5 * MIB);
    let up = upload(emu, "small.mp4", &small, small.len() as u64);
    assert_eq!(up["mode"], "single");
    let id = up["upload_id"].as_str().unwrap();
    let done = emu.call(
        "POST",
        &format!("/v1/uploads/{id}/complete"),
        ALICE,
        None,
        &[],
    );
    assert_eq!(done.status, 200, "{}", done.json);
    assert_eq!(done.json["status"], "completed");

    let large = source_video(dir.path(), "large.mp4", "4000k");
    assert!((large.len() as u64) > 5 * MIB, "{} bytes", large.len());
    let up = upload(emu, "large.mp4", &large, large.len() as u64);
    assert_eq!(up["mode"], "multipart", "{up}");
    assert!(up["parts"].as_array().unwrap().len() >= 2);
    let id = up["upload_id"].as_str().unwrap();
    let done = emu.call(
        "POST",
        &format!("/v1/uploads/{id}/complete"),
        ALICE,
        None,
        &[],
    );
    assert_eq!(done.status, 200, "{}", done.json);

    for key in ["raw/alice/launch/small.mp4", "raw/alice/launch/large.mp4"] {
        let job = job_for(emu, key, Duration::from_secs(900));
        assert_processed(emu, &job, dir.path());
    }
}

#[test]
fn every_new_route_refuses_another_tenant() {
    let emu = stack();
    let dir = tempfile::tempdir().unwrap();
    let bytes = source_video(dir.path(), "mine.mp4", "400k");
    let up = upload(emu, "mine.mp4", &bytes, bytes.len() as u64);
    let upload_id = up["upload_id"].as_str().unwrap();
    let job = job_for(emu, "raw/alice/launch/mine.mp4", Duration::from_secs(900));
    let job_id = job["id"].as_str().unwrap();

    // Writing under another tenant's prefix: 403, whatever the path tricks.
    let body = json!({"client": ALICE, "project": "launch", "filename": "x.mp4", "size_bytes": 10, "content_type": "video/mp4"});
    let r = emu.call("POST", "/v1/uploads", BOB, Some(&body), &[]);
    assert_eq!(r.status, 403, "{}", r.json);
    let body = json!({"project": "..", "filename": "../alice/launch/x.mp4", "size_bytes": 10, "content_type": "video/mp4"});
    let r = emu.call("POST", "/v1/uploads", BOB, Some(&body), &[]);
    assert_eq!(r.status, 422, "{}", r.json);

    for (method, path) in [
        ("POST", format!("/v1/uploads/{upload_id}/complete")),
        ("DELETE", format!("/v1/uploads/{upload_id}")),
        ("GET", format!("/v1/processing-jobs/{job_id}")),
        ("GET", format!("/v1/processing-jobs/{job_id}/download")),
        ("POST", format!("/v1/processing-jobs/{job_id}/retry")),
    ] {
        let r = emu.call(method, &path, BOB, None, &[]);
        assert_eq!(r.status, 404, "{method} {path}: {}", r.json);
    }
    let r = emu.call("GET", "/v1/processing-jobs", BOB, None, &[]);
    assert!(
        r.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["source_key"].as_str().unwrap().starts_with("raw/bob/")),
        "{}",
        r.json
    );
}

#[test]
fn a_raw_upload_of_another_size_fails_its_job_and_a_retry_runs_it_again() {
    let emu = stack();
    let dir = tempfile::tempdir().unwrap();
    let bytes = source_video(dir.path(), "short.mp4", "400k");
    // Announced 1000 bytes short: the signed length refuses it in AWS; whatever the store did,
    // the probe compares the stored size with the announcement.
    let announced = bytes.len() as u64 - 1000;
    let body = json!({"project": "launch", "filename": "short.mp4", "size_bytes": announced, "content_type": "video/mp4"});
    let r = emu.call("POST", "/v1/uploads", ALICE, Some(&body), &[]);
    assert_eq!(r.status, 201, "{}", r.json);
    let mut req = r.json["upload"].clone();
    req["headers"]
        .as_object_mut()
        .unwrap()
        .insert("content-length".into(), bytes.len().to_string().into());
    let status = send_signed(&req, &bytes);
    if status != 200 {
        // The store enforced the signed length itself.
        assert!((400..500).contains(&status), "{status}");
        return;
    }
    let id = r.json["upload_id"].as_str().unwrap();
    let done = emu.call(
        "POST",
        &format!("/v1/uploads/{id}/complete"),
        ALICE,
        None,
        &[],
    );
    assert_eq!(done.status, 422, "{}", done.json);
    assert_eq!(done.json["errors"][0]["field"], "size_bytes");

    let job = job_for(emu, "raw/alice/launch/short.mp4", Duration::from_secs(600));
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["error"], names::SOURCE_REJECTED, "{job}");
    let reason = job["error"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!(
            "{} bytes but its upload announced {announced}",
            bytes.len()
        )),
        "{reason}"
    );

    let job_id = job["id"].as_str().unwrap();
    let r = emu.call(
        "POST",
        &format!("/v1/processing-jobs/{job_id}/retry"),
        ALICE,
        None,
        &[],
    );
    assert_eq!(r.status, 202, "{}", r.json);
    let execution = r.json["execution"].as_str().unwrap().to_owned();
    assert_eq!(execution, format!("{job_id}-retry-1"));
    // The retry is a real execution of the processing state machine, and it fails the same way.
    let machine = emu.resource("state_machines", "ProcessingStateMachine");
    let list = emu.aws_json(
        "states",
        "AWSStepFunctions.ListExecutions",
        &json!({ "stateMachineArn": machine, "maxResults": 1000 }),
    );
    assert!(
        list["executions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == execution.as_str()),
        "{list}"
    );
    let start = Instant::now();
    loop {
        let r = emu.call(
            "GET",
            &format!("/v1/processing-jobs/{job_id}"),
            ALICE,
            None,
            &[],
        );
        if r.json["status"] == "failed" {
            assert_eq!(r.json["retries"], 1);
            assert_eq!(r.json["error"]["error"], names::SOURCE_REJECTED);
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(600), "{}", r.json);
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_garbage_logo_fails_the_generation_naming_the_asset_and_a_wrong_size_is_refused() {
    let emu = stack();
    let announce = |size: usize| {
        let body = json!({"kind": "logo", "content_type": "image/png", "size_bytes": size});
        let r = emu.call("POST", "/v1/assets", ALICE, Some(&body), &[]);
        assert_eq!(r.status, 201, "{}", r.json);
        let headers = r.json["headers"].as_object().unwrap();
        assert_eq!(
            headers["content-length"],
            size.to_string().as_str(),
            "{headers:?}"
        );
        assert!(!headers.keys().any(|k| k.contains("trace")), "{headers:?}");
        r.json
    };
    let put = |asset: &Value, bytes: &[u8]| {
        let req = json!({"method": "PUT", "url": asset["upload_url"], "headers": asset["headers"]});
        send_signed(&req, bytes)
    };
    let generate = |asset_id: &str| {
        let body = json!({
            "prompt": "Paper boats on a rainy street",
            "duration_seconds": 5,
            "aspect_ratio": "16:9",
            "brand": {"logo": {"asset_id": asset_id}}
        });
        emu.call("POST", "/v1/generations", ALICE, Some(&body), &[])
    };

    // Garbage of exactly the announced size passes the submit and fails the job.
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    let asset = announce(garbage.len());
    assert_eq!(put(&asset, &garbage), 200);
    let asset_id = asset["asset_id"].as_str().unwrap();
    let r = generate(asset_id);
    assert_eq!(r.status, 202, "{}", r.json);
    let id = r.json["id"].as_str().unwrap();
    let end = emu.wait_for(id, ALICE, Duration::from_secs(600), |j| {
        j["status"] != "queued" && j["status"] != "planning"
    });
    assert_eq!(end["status"], "failed", "{end}");
    assert_eq!(end["error"]["code"], names::ASSET_REJECTED, "{end}");
    let message = end["error"]["message"].as_str().unwrap();
    assert!(message.contains(asset_id), "{message}");
    assert!(message.contains("logo"), "{message}");

    // A file of another size than announced: refused by the store, or by the submit.
    let asset = announce(100);
    let png = vidpipe_tests::write_logo(
        &std::env::temp_dir().join("vidpipe-uploads-logo.png"),
        200,
        80,
        [200, 30, 30],
    );
    let bytes = std::fs::read(png).unwrap();
    assert_ne!(bytes.len(), 100);
    let mut req = json!({"method": "PUT", "url": asset["upload_url"], "headers": asset["headers"]});
    req["headers"]["content-length"] = bytes.len().to_string().into();
    let status = send_signed(&req, &bytes);
    if status == 200 {
        let r = generate(asset["asset_id"].as_str().unwrap());
        assert_eq!(r.status, 422, "{}", r.json);
        assert_eq!(r.json["errors"][0]["field"], "brand.logo.asset_id");
        let rule = r.json["errors"][0]["rule"].as_str().unwrap();
        assert!(rule.contains("announced as 100 bytes"), "{rule}");
    } else {
        assert!((400..500).contains(&status), "{status}");
    }
}

#[test]
fn a_garbage_raw_upload_fails_its_job_with_a_named_reason() {
    let emu = stack();
    let garbage = b"this is a shopping list, not a video\n".repeat(100);
    let up = upload(emu, "list.mp4", &garbage, garbage.len() as u64);
    assert_eq!(up["mode"], "single");
    let job = job_for(emu, "raw/alice/launch/list.mp4", Duration::from_secs(600));
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["error"], names::SOURCE_REJECTED, "{job}");
    let reason = job["error"]["reason"].as_str().unwrap();
    assert!(reason.contains("not readable media"), "{reason}");
    let id = job["id"].as_str().unwrap();
    let r = emu.call(
        "GET",
        &format!("/v1/processing-jobs/{id}/download"),
        ALICE,
        None,
        &[],
    );
    assert_eq!(
        r.status, 409,
        "nothing to download from a failed job: {}",
        r.json
    );
}

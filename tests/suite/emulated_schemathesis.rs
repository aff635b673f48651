//! schemathesis against the API on emulated AWS: every operation of the checked-in OpenAPI
//! document (`shared/http/openapi.json`, which a test keeps equal to the code's) is called with
//! the document's examples, its coverage cases (boundaries and invalid values) and fuzzed
//! inputs, then chained statefully, and every answer must be no 5xx, a documented status, the
//! documented content type and headers, and a body the documented schema accepts.
//!
//! Before the run the tenant is given one of everything a view can show, so the 200s are judged
//! on real records and not only on empty lists: a completed, a cancelled and a failed generation,
//! an uploaded logo, a processed upload (renditions, steps, cost) and a failed one, a pending and
//! an aborted upload, a batch (its one item refused). Their ids are offered to schemathesis as dictionaries for the `{id}`
//! parameters, half the time, so the read, cancel, download, complete, abort and retry routes
//! answer on live records as well as on unknown ids.
//!
//! The stack runs with a concurrent-jobs quota of 1 and a daily output budget of 3 minutes: a
//! fuzzed generation may ask for 300 s of 1080p, and the quotas bound how much of that two cores
//! render while the run goes on; the 429s they answer are judged like any other response.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use vidpipe_tests::emulator::{Emulator, send_signed};
use vidpipe_tests::ffmpeg;

const TENANT: &str = "conformance";
/// Fixed, so a failure is replayed by running the test again.
const SEED: &str = "20261201";
const MAX_EXAMPLES: &str = "40";
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The records seeded for the tenant, by the dictionary that offers their ids.
struct Seeded {
    generations: Vec<String>,
    assets: Vec<String>,
    uploads: Vec<String>,
    processing_jobs: Vec<String>,
    batches: Vec<String>,
}

fn submit(emu: &Emulator, body: &Value) -> String {
    let r = emu.call("POST", "/v1/generations", TENANT, Some(body), &[]);
    assert_eq!(r.status, 202, "{}", r.json);
    r.json["id"].as_str().unwrap().to_owned()
}

fn ended(j: &Value) -> bool {
    matches!(
        j["status"].as_str(),
        Some("completed" | "failed" | "cancelled")
    )
}

/// Announces an asset and PUTs `bytes` to its URL as handed out.
fn asset(emu: &Emulator, bytes: &[u8]) -> String {
    let body = json!({"kind": "logo", "content_type": "image/png", "size_bytes": bytes.len()});
    let r = emu.call("POST", "/v1/assets", TENANT, Some(&body), &[]);
    assert_eq!(r.status, 201, "{}", r.json);
    let req = json!({"method": "PUT", "url": r.json["upload_url"], "headers": r.json["headers"]});
    assert_eq!(send_signed(&req, bytes), 200);
    r.json["asset_id"].as_str().unwrap().to_owned()
}

/// Announces a raw upload of `bytes` and, when `bytes` is given, PUTs it. Returns the upload.
fn upload(emu: &Emulator, file: &str, size: usize, bytes: Option<&[u8]>) -> Value {
    let body = json!({"project": "conformance", "filename": file, "size_bytes": size, "content_type": "video/mp4"});
    let r = emu.call("POST", "/v1/uploads", TENANT, Some(&body), &[]);
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.json["mode"], "single", "{}", r.json);
    if let Some(bytes) = bytes {
        assert_eq!(send_signed(&r.json["upload"], bytes), 200);
    }
    r.json
}

/// Waits for the processing job of `key` to end; its id.
fn processed(emu: &Emulator, key: &str, want: &str) -> String {
    let start = Instant::now();
    loop {
        let r = emu.call("GET", "/v1/processing-jobs?limit=100", TENANT, None, &[]);
        assert_eq!(r.status, 200, "{}", r.json);
        let job = r.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["source_key"] == key && j["status"] != "running")
            .cloned();
        if let Some(job) = job {
            assert_eq!(job["status"], want, "{job}");
            return job["id"].as_str().unwrap().to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "no ended job for {key}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn seed(emu: &Emulator, dir: &Path) -> Seeded {
    // A logo that is a PNG, and one that only says it is.
    let png = vidpipe_tests::write_logo(&dir.join("logo.png"), 120, 40, [30, 90, 200]);
    let logo = asset(emu, &std::fs::read(png).unwrap());
    let garbage: Vec<u8> = (0..2048u32).map(|i| (i * 13 % 251) as u8).collect();
    let fake_logo = asset(emu, &garbage);

    // One at a time: the stack allows this tenant one live job.
    let small = |extra: Value| {
        let mut body = json!({
            "prompt": "A lighthouse at dusk. The beam sweeps the fog.",
            "duration_seconds": 5,
            "aspect_ratio": "1:1",
            "resolution": "720p",
            "fps": 24,
            "clip_count": 1,
            "seed": 7
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let completed = submit(emu, &small(json!({"brand": {"logo": {"asset_id": logo}}})));
    let done = emu.wait_for(&completed, TENANT, Duration::from_secs(600), ended);
    assert_eq!(done["status"], "completed", "{done}");
    let failed = submit(
        emu,
        &small(json!({"brand": {"logo": {"asset_id": fake_logo}}})),
    );
    let done = emu.wait_for(&failed, TENANT, Duration::from_secs(600), ended);
    assert_eq!(done["status"], "failed", "{done}");
    let cancelled = submit(emu, &small(json!({})));
    let r = emu.call(
        "POST",
        &format!("/v1/generations/{cancelled}/cancel"),
        TENANT,
        None,
        &[],
    );
    assert_eq!(r.status, 202, "{}", r.json);
    let done = emu.wait_for(&cancelled, TENANT, Duration::from_secs(120), ended);
    assert_eq!(done["status"], "cancelled", "{done}");
    // A batch whose one item is refused: recorded, and no job to hold the tenant's one slot.
    let r = emu.call(
        "POST",
        "/v1/generations/batch",
        TENANT,
        Some(&json!({"items": [small(json!({"duration_seconds": 4}))]})),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.json["counts"]["failed"], 1, "{}", r.json);
    let batch = r.json["batch_id"].as_str().unwrap().to_owned();

    // A clip just longer than the trims (3 s intro, 5 s outro), small so it processes fast.
    let clip = dir.join("take.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=24:duration=10",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=10",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
        clip.to_str().unwrap(),
    ]);
    let clip = std::fs::read(clip).unwrap();
    let good = upload(emu, "take.mp4", clip.len(), Some(&clip));
    let list = b"not a video, a shopping list\n".repeat(40);
    let bad = upload(emu, "list.mp4", list.len(), Some(&list));
    let pending = upload(emu, "later.mp4", 1_000_000, None);
    let aborted = upload(emu, "never.mp4", 1_000_000, None);
    let id = aborted["upload_id"].as_str().unwrap();
    let r = emu.call("DELETE", &format!("/v1/uploads/{id}"), TENANT, None, &[]);
    assert_eq!(r.status, 200, "{}", r.json);
    let succeeded = processed(emu, good["key"].as_str().unwrap(), "succeeded");
    let rejected = processed(emu, bad["key"].as_str().unwrap(), "failed");

    let ids = |uploads: &[&Value]| {
        uploads
            .iter()
            .map(|u| u["upload_id"].as_str().unwrap().to_owned())
            .collect()
    };
    Seeded {
        generations: vec![completed, failed, cancelled],
        assets: vec![logo, fake_logo],
        uploads: ids(&[&good, &bad, &pending, &aborted]),
        processing_jobs: vec![succeeded, rejected],
        batches: vec![batch],
    }
}

/// Calls every route once, waiting as long as it takes: each route is its own function, which
/// the emulator starts (`cargo run`) on its first call, and that waits for cargo's lock on the
/// target dir while anything else builds there. A cold start is not what the run judges.
fn warm_every_route(emu: &Emulator) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(900))
        .build();
    let unknown = "0";
    for route in [
        ("POST", "/v1/generations".to_owned()),
        ("GET", "/v1/generations".to_owned()),
        ("GET", format!("/v1/generations/{unknown}")),
        ("POST", format!("/v1/generations/{unknown}/cancel")),
        ("GET", format!("/v1/generations/{unknown}/download")),
        ("POST", "/v1/assets".to_owned()),
        ("GET", format!("/v1/assets/{unknown}")),
        ("POST", "/v1/uploads".to_owned()),
        ("POST", format!("/v1/uploads/{unknown}/complete")),
        ("DELETE", format!("/v1/uploads/{unknown}")),
        ("GET", "/v1/processing-jobs".to_owned()),
        ("GET", format!("/v1/processing-jobs/{unknown}")),
        ("GET", format!("/v1/processing-jobs/{unknown}/download")),
        ("POST", format!("/v1/processing-jobs/{unknown}/retry")),
        ("POST", "/v1/generations/batch".to_owned()),
        ("GET", format!("/v1/generations/batches/{unknown}")),
    ] {
        let (method, path) = route;
        let answer = agent
            .request(method, &format!("{}{path}", emu.api))
            .set("x-vidpipe-tenant", TENANT)
            .call();
        let status = match answer {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        // Bodiless POSTs are refused; unknown ids are not found; nothing is a 5xx.
        assert!((200..500).contains(&status), "{method} {path}: {status}");
    }
}

/// schemathesis's configuration: the seeded ids as dictionaries bound to each route's `{id}`.
fn config(seeded: &Seeded) -> String {
    let list = |ids: &[String]| {
        let quoted: Vec<String> = ids.iter().map(|i| format!("{i:?}")).collect();
        format!("[{}]", quoted.join(", "))
    };
    let mut toml = String::new();
    for (name, ids, path) in [
        (
            "generations",
            &seeded.generations,
            "^/v1/generations/\\\\{id\\\\}",
        ),
        ("assets", &seeded.assets, "^/v1/assets/\\\\{id\\\\}"),
        ("uploads", &seeded.uploads, "^/v1/uploads/\\\\{id\\\\}"),
        (
            "processing_jobs",
            &seeded.processing_jobs,
            "^/v1/processing-jobs/\\\\{id\\\\}",
        ),
        (
            "batches",
            &seeded.batches,
            "^/v1/generations/batches/\\\\{id\\\\}",
        ),
    ] {
        toml.push_str(&format!(
            "[dictionaries.{name}]\nvalues = {}\n\n[[operations]]\ninclude-path-regex = \"{path}\"\nparameters = {{ \"path.id\" = {{ dictionary = \"{name}\", probability = 0.5 }} }}\n\n",
            list(ids)
        ));
    }
    toml
}

fn schemathesis() -> PathBuf {
    let bin = root().join(".tools/venv/bin/schemathesis");
    assert!(
        bin.exists(),
        "{} missing: run scripts/setup.sh",
        bin.display()
    );
    bin
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_off_the_documented_schema() {
    let emu = Emulator::start_with(
        &[],
        &[
            ("MaxConcurrentJobsPerTenant", "1"),
            ("DailyOutputMinutesPerTenant", "3"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    warm_every_route(&emu);
    let seeded = seed(&emu, dir.path());
    let cfg = dir.path().join("schemathesis.toml");
    std::fs::write(&cfg, config(&seeded)).unwrap();
    let har = dir.path().join("exchanges.har");

    let started = Instant::now();
    let out = Command::new(schemathesis())
        .arg("--config-file")
        .arg(&cfg)
        .arg("run")
        .arg(root().join("shared/http/openapi.json"))
        .args(["--url", &emu.api])
        .args(["--header", &format!("x-vidpipe-tenant: {TENANT}")])
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
        // One worker: the emulated function serves one invocation at a time anyway. The timeout
        // is generous for a loaded two-core machine; no check here is on response time.
        .args(["--workers", "1", "--request-timeout", "120"])
        .args(["--generation-database", "none"])
        .args(["--report", "har", "--report-har-path"])
        .arg(&har)
        .args(["--no-color", "--output-truncate", "false"])
        .current_dir(dir.path())
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "schemathesis took {:.0} s\n{stdout}{stderr}",
        started.elapsed().as_secs_f64()
    );
    assert!(out.status.success(), "schemathesis found problems (above)");
    assert_reached_live_records(&emu, &har, &seeded);
}

/// The run was not judged on 404s and empty lists alone: every seeded record was read with a
/// 200, the downloads of the finished ones were signed, and the lists showed the records.
fn assert_reached_live_records(emu: &Emulator, har: &Path, seeded: &Seeded) {
    let har: Value = serde_json::from_slice(&std::fs::read(har).expect("the HAR report")).unwrap();
    let entries = har["log"]["entries"].as_array().expect("HAR entries");
    // (method, path under the API, status, response body)
    let exchanges: Vec<(&str, String, u64, &str)> = entries
        .iter()
        .map(|e| {
            let url = e["request"]["url"].as_str().unwrap();
            let path = url
                .strip_prefix(emu.api.as_str())
                .unwrap_or(url)
                .split('?')
                .next()
                .unwrap()
                .to_owned();
            (
                e["request"]["method"].as_str().unwrap(),
                path,
                e["response"]["status"].as_u64().unwrap(),
                e["response"]["content"]["text"]
                    .as_str()
                    .unwrap_or_default(),
            )
        })
        .collect();
    let answered = |method: &str, path: &str, status: u64| {
        exchanges
            .iter()
            .any(|(m, p, s, _)| *m == method && p == path && *s == status)
    };
    eprintln!("schemathesis sent {} requests", exchanges.len());
    assert!(exchanges.len() > 500, "{} requests", exchanges.len());
    let mut missing = Vec::new();
    let mut want = |method: &'static str, path: String, status: u64| {
        if !answered(method, &path, status) {
            missing.push(format!("{method} {path} -> {status}"));
        }
    };
    for id in &seeded.generations {
        want("GET", format!("/v1/generations/{id}"), 200);
    }
    want(
        "GET",
        format!("/v1/generations/{}/download", seeded.generations[0]),
        200,
    );
    for id in &seeded.assets {
        want("GET", format!("/v1/assets/{id}"), 200);
    }
    for id in &seeded.processing_jobs {
        want("GET", format!("/v1/processing-jobs/{id}"), 200);
    }
    want(
        "GET",
        format!("/v1/processing-jobs/{}/download", seeded.processing_jobs[0]),
        200,
    );
    assert!(missing.is_empty(), "never answered: {missing:#?}");
    // The lists carried the finished records, views and all.
    for (list, id) in [
        ("/v1/generations", &seeded.generations[0]),
        ("/v1/processing-jobs", &seeded.processing_jobs[0]),
    ] {
        assert!(
            exchanges.iter().any(|(m, p, s, body)| *m == "GET"
                && p == list
                && *s == 200
                && body.contains(id.as_str())),
            "no 200 from GET {list} that listed {id}"
        );
    }
}

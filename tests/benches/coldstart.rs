//! Measures what a Lambda cold start costs: the size of each release bootstrap, and the time from
//! process start to the first handled event, against a local stand-in for the Lambda Runtime API
//! (and for DynamoDB, which the step function reads first).
//!
//! Build the bootstraps first, then run:
//!   cargo lambda build --release [--arm64]      (bootstraps in target/lambda/<bin>/bootstrap)
//!   cargo bench -p vidpipe-tests --bench coldstart
//! Only bootstraps this machine can execute are timed; sizes are reported for all. With arm64
//! bootstraps under target/lambda, build the host's too (`cargo build --release --bin ...`, into
//! target/release) to time them: sizes come from the former, times from the latter.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

const RUNS: usize = 15;

/// Each route's bootstrap must fit in this on arm64 (issue 11).
const API_SIZE_TARGET: u64 = 6 * 1000 * 1000;

/// An HTTP API (payload 2.0) event for one route, `{id}` filled with an id nobody has.
fn api_event(method: &str, template: &str) -> Vec<u8> {
    let path = template.replace("{id}", "job_0000000000000000000000000000abcd");
    let body = if method == "POST" { Some("{}") } else { None };
    serde_json::to_vec(&serde_json::json!({
        "version": "2.0",
        "routeKey": format!("{method} {template}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "bench", "content-type": "application/json", "x-vidpipe-tenant": "bench"},
        "requestContext": {
            "accountId": "000000000000", "apiId": "bench", "domainName": "bench",
            "domainPrefix": "bench",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": "req-1", "routeKey": format!("{method} {template}"), "stage": "$default",
            "time": "21/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
        },
        "body": body,
        "isBase64Encoded": false,
    }))
    .expect("an event encodes")
}

/// A bootstrap to measure: bin name, the event it gets, size target (bytes), p50 target (ms).
type Target<'a> = (&'static str, &'a [u8], Option<u64>, Option<f64>);

/// What the stub saw: when the first response or error for the event arrived.
#[derive(Default)]
struct Seen {
    answered: Option<(Instant, &'static str)>,
    served_event: bool,
}

async fn serve(
    req: Request<Incoming>,
    event: Arc<Vec<u8>>,
    seen: Arc<Mutex<Seen>>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_owned();
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let _ = req.into_body().collect().await?;
    let ok = |body: Vec<u8>| Ok(Response::new(Full::new(Bytes::from(body))));
    if path.ends_with("/runtime/invocation/next") {
        let mut s = seen.lock().await;
        if s.served_event {
            drop(s);
            // One event per process: park the runtime until it is killed.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return ok(Vec::new());
        }
        s.served_event = true;
        let deadline = (std::time::SystemTime::now() + Duration::from_secs(30))
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        return Ok(Response::builder()
            .header("lambda-runtime-aws-request-id", "req-1")
            .header("lambda-runtime-deadline-ms", deadline.to_string())
            .header(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:000000000000:function:bench",
            )
            .header(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000",
            )
            .body(Full::new(Bytes::from(event.as_ref().clone())))
            .unwrap());
    }
    if path.ends_with("/response") || path.ends_with("/error") {
        let mut s = seen.lock().await;
        if s.answered.is_none() {
            s.answered = Some((
                Instant::now(),
                if path.ends_with("/error") {
                    "error"
                } else {
                    "response"
                },
            ));
        }
        return Ok(Response::builder()
            .status(202)
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    if target.as_deref().is_some_and(|t| t.starts_with("DynamoDB")) {
        // An empty table: the step finds no job and reports it, a real handled event.
        return ok(br#"{"Items":[],"Count":0,"ScannedCount":0}"#.to_vec());
    }
    Ok(Response::builder()
        .status(404)
        .body(Full::new(Bytes::new()))
        .unwrap())
}

/// Starts one bootstrap against a fresh stub and returns the time to its first answer.
async fn cold_start(bootstrap: &Path, event: &[u8]) -> Option<(Duration, &'static str)> {
    let listener = TcpListener::bind("127.0.0.1:0").await.ok()?;
    let addr = listener.local_addr().ok()?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let event = Arc::new(event.to_vec());
    let server = {
        let seen = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let (seen, event) = (seen.clone(), event.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        serve(req, event.clone(), seen.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        })
    };
    let started = Instant::now();
    let mut child = tokio::process::Command::new(bootstrap)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_ENDPOINT_URL", format!("http://{addr}"))
        .env("VIDPIPE_TABLE", "bench")
        .env("VIDPIPE_BUCKET", "bench")
        .env(
            "VIDPIPE_STATE_MACHINE_ARN",
            "arn:aws:states:us-east-1:000000000000:stateMachine:bench",
        )
        .env(
            "VIDPIPE_PROCESSING_STATE_MACHINE_ARN",
            "arn:aws:states:us-east-1:000000000000:stateMachine:bench-processing",
        )
        .env("VIDPIPE_FFMPEG_DIR", "/nonexistent")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let deadline = started + Duration::from_secs(10);
    let answer = loop {
        if let Some((at, kind)) = seen.lock().await.answered {
            break Some((at - started, kind));
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    };
    let _ = child.kill().await;
    server.abort();
    answer
}

fn find_bootstrap(root: &Path, bin: &str) -> Option<PathBuf> {
    [
        target_dir(root).join("lambda").join(bin).join("bootstrap"),
        target_dir(root).join("release").join(bin),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

fn runs_here(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    // ELF e_machine: 0x3E x86_64, 0xB7 aarch64.
    let machine = bytes.get(18..20).map(|b| u16::from_le_bytes([b[0], b[1]]));
    matches!(
        (machine, std::env::consts::ARCH),
        (Some(0x3E), "x86_64") | (Some(0xB7), "aarch64")
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    // One event per route's function, for its own route: an unknown id, or an empty body, which
    // it answers (404, 422, or 503 where the stub has no such service) after its cold start.
    let api_events: Vec<(&'static str, Vec<u8>)> = vidpipe_lambda::api::API_FUNCTIONS
        .iter()
        .map(|f| {
            let route = vidpipe_http::routes::ROUTES
                .iter()
                .find(|r| r.operation == f.operation)
                .expect("every function has its route");
            (f.bin, api_event(route.method.as_str(), route.path))
        })
        .collect();
    // A record_failure of an unknown job: the generation function answers (with JobNotFound)
    // after its cold start, without touching media.
    let step_event = serde_json::json!({
        "step": "record_failure",
        "input": {
            "job_id": "job_0000000000000000000000000000abcd",
            "error_type": vidpipe_domain::names::INTERNAL,
            "cause": "bench",
        },
    })
    .to_string();
    let mut bins: Vec<Target> = api_events
        .iter()
        .map(|(bin, event)| (*bin, event.as_slice(), Some(API_SIZE_TARGET), Some(10.0)))
        .collect();
    bins.extend([
        ("vidpipe-generate", step_event.as_bytes(), None, Some(10.0)),
        ("vidpipe-process", b"{}".as_slice(), None, None),
        ("vidpipe-dispatch", b"{}".as_slice(), None, None),
        ("vidpipe-worker", b"{}".as_slice(), None, None),
    ]);
    println!(
        "{:<38} {:>10} {:>12} {:>12} {:>9}",
        "bootstrap", "size MB", "p50 ms", "max ms", "answer"
    );
    for (bin, event, size_target, ms_target) in bins {
        let Some(path) = find_bootstrap(&root, bin) else {
            println!("{bin:<38} not built (run cargo lambda build --release)");
            continue;
        };
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let size_note = size_target.map_or(String::new(), |t| {
            format!("  size/target {:.2}", size as f64 / t as f64)
        });
        // Sizes are the deployable build's (arm64 under target/lambda when built so); the timing
        // needs one this machine runs: the same bin built for the host, if that is the other.
        let runnable = std::iter::once(path.clone())
            .chain(std::iter::once(target_dir(&root).join("release").join(bin)))
            .find(|p| runs_here(p));
        let Some(runnable) = runnable.filter(|_| ms_target.is_some() && bin != "vidpipe-worker")
        else {
            println!(
                "{bin:<38} {:>10.2} {:>12} {:>12} {:>9}{size_note}",
                size as f64 / 1e6,
                "-",
                "-",
                "-"
            );
            continue;
        };
        let mut times = Vec::with_capacity(RUNS);
        let mut kind = "";
        for _ in 0..RUNS {
            if let Some((d, k)) = cold_start(&runnable, event).await {
                times.push(d.as_secs_f64() * 1000.0);
                kind = k;
            }
        }
        if times.is_empty() {
            println!("{bin:<38} {:>10.2} never answered", size as f64 / 1e6);
            continue;
        }
        times.sort_by(f64::total_cmp);
        let p50 = times[times.len() / 2];
        let max = times[times.len() - 1];
        let ms_note = ms_target.map_or(String::new(), |t| format!("  p50/target {:.2}", p50 / t));
        println!(
            "{bin:<38} {:>10.2} {p50:>12.2} {max:>12.2} {kind:>9}{size_note}{ms_note}",
            size as f64 / 1e6
        );
    }
}

/// Where cargo builds: `CARGO_TARGET_DIR` when set (a shared target), else the workspace's.
fn target_dir(root: &Path) -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

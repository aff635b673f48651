//! Load on `vidpipe serve`, loopback only and bounded: 50 clients, each holding a live socket
//! subscribed to one of 10 running jobs and polling the API (the job, the list) every 250 ms,
//! until every job ends. Reports p50/p99 API latency and dropped events, and fails on any 5xx,
//! on any client that missed a stage or its job's end, or on a gap in a socket's `seq`.
//!
//! Ignored by default (minutes of CPU); CI runs it (`scripts/test.sh`):
//! `cargo test -p vidpipe-tests --test suite serve_load -- --ignored --nocapture`.

use crate::serve_support::{client, serve};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use vidpipe_serve::ServeOptions;

const CLIENTS: usize = 50;
const JOBS: usize = 10;
const LIMIT: Duration = Duration::from_secs(900);

struct ClientReport {
    latencies_ms: Vec<f64>,
    server_errors: Vec<String>,
    /// Expected events not seen: a stage, or the job's end.
    dropped: Vec<String>,
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "load: minutes of CPU; CI runs it with --ignored"]
async fn fifty_clients_poll_and_hold_sockets_while_ten_jobs_run() {
    let home = tempfile::tempdir().unwrap();
    let served = serve(home.path(), ServeOptions::default()).await;
    let http = client();
    let mut ids = Vec::new();
    for n in 0..JOBS {
        let job: Value = http
            .post(served.at("/v1/generations"))
            .json(&json!({
                "prompt": format!("Scene {n}. A kite over a beach. The tide turns."),
                "duration_seconds": 5, "aspect_ratio": "1:1", "resolution": "720p",
                "clip_count": 1, "captions": false, "seed": n
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(job["id"].as_str().expect("submitted").to_owned());
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let id = ids[c % JOBS].clone();
        let http = http.clone();
        let job_url = served.at(&format!("/v1/generations/{id}"));
        let list_url = served.at("/v1/generations?limit=20");
        let ws_url = served.ws_url();
        tasks.push(tokio::spawn(async move {
            one_client(http, job_url, list_url, ws_url, id).await
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    let mut dropped = Vec::new();
    for t in tasks {
        let r = tokio::time::timeout(LIMIT, t)
            .await
            .expect("the load run ends in time")
            .expect("client task");
        latencies.extend(r.latencies_ms);
        errors.extend(r.server_errors);
        dropped.extend(r.dropped);
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    println!(
        "serve load: {CLIENTS} clients, {JOBS} jobs, {} API requests in {:.1} s: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; 5xx {}; dropped events {}",
        latencies.len(),
        started.elapsed().as_secs_f64(),
        pct(0.5),
        pct(0.99),
        latencies.last().copied().unwrap_or_default(),
        errors.len(),
        dropped.len()
    );
    assert!(errors.is_empty(), "5xx answers: {errors:?}");
    assert!(dropped.is_empty(), "dropped events: {dropped:?}");
    served.stop().await;
}

async fn one_client(
    http: reqwest::Client,
    job_url: String,
    list_url: String,
    ws_url: String,
    id: String,
) -> ClientReport {
    let mut report = ClientReport {
        latencies_ms: Vec::new(),
        server_errors: Vec::new(),
        dropped: Vec::new(),
    };
    let (ws, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .expect("socket");
    let (mut tx, mut rx) = ws.split();
    tx.send(Message::Text(
        json!({"action": "subscribe", "job_id": id})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let mut frames: Vec<Value> = Vec::new();
    let mut poll = tokio::time::interval(Duration::from_millis(250));
    let mut turn = 0u64;
    let ended = loop {
        tokio::select! {
            msg = rx.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let f: Value = serde_json::from_str(&t).unwrap();
                    let end = f["type"] == "completed" || f["type"] == "failed";
                    frames.push(f);
                    if end {
                        break true;
                    }
                }
                Some(Ok(_)) => {}
                _ => break false,
            },
            _ = poll.tick() => {
                turn += 1;
                let url = if turn.is_multiple_of(2) { &list_url } else { &job_url };
                let t = Instant::now();
                match http.get(url).send().await {
                    Ok(r) => {
                        report.latencies_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                        if r.status().is_server_error() {
                            report.server_errors.push(format!("{url}: {}", r.status()));
                        }
                        let _ = r.bytes().await;
                    }
                    Err(e) => report.server_errors.push(format!("{url}: {e}")),
                }
            }
        }
    };
    if !ended {
        report
            .dropped
            .push(format!("{id}: the socket closed before the job ended"));
    }
    let seqs: Vec<u64> = frames
        .iter()
        .filter(|f| f["type"] != "subscribed")
        .map(|f| f["seq"].as_u64().unwrap_or(0))
        .collect();
    if seqs.iter().enumerate().any(|(i, s)| *s != i as u64 + 1) {
        report.dropped.push(format!("{id}: seq gap in {seqs:?}"));
    }
    for stage in ["planning", "generating", "composing"] {
        if !frames
            .iter()
            .any(|f| f["type"] == "stage" && f["stage"] == stage)
        {
            report.dropped.push(format!("{id}: no {stage} stage"));
        }
    }
    if !frames.iter().any(|f| f["type"] == "completed") {
        report.dropped.push(format!("{id}: no completed event"));
    }
    report
}

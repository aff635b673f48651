//! `vidpipe serve` as a process: it prints its URL when ready; a job a killed server left
//! running is recorded as failed, with the reason, when it starts again; and Ctrl-C gives
//! running jobs a bounded wait and records the ones still running as failed.

use crate::serve_support::{client, eventually, serve, vidpipe_binary};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use vidpipe_serve::ServeOptions;

/// Starts `vidpipe serve --port 0` on `home` and returns the child and the URL it printed.
// The caller kills and waits for the child; only a failed start (a panic) leaves it unreaped.
#[allow(clippy::zombie_processes)]
fn start(home: &std::path::Path) -> (Child, String, Vec<String>) {
    let mut child = Command::new(vidpipe_binary())
        .args(["--home"])
        .arg(home)
        .args(["serve", "--port", "0", "--bind", "127.0.0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vidpipe serve");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("vidpipe serve prints its URL within 60 s");
        lines.push(line.clone());
        if let Some(url) = line.strip_prefix("vidpipe serve: listening on ") {
            return (child, url.to_owned(), lines);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_servers_running_job_is_failed_at_the_next_start() {
    let home = tempfile::tempdir().unwrap();
    let (mut child, url, _) = start(home.path());
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with('/'),
        "{url}"
    );
    let http = client();
    // Long enough to be mid-run when killed.
    let job: Value = http
        .post(format!("{url}v1/generations"))
        .json(&json!({"prompt": "A slow river. Trees sway. Birds cross the sky. Night falls.", "duration_seconds": 120, "aspect_ratio": "16:9"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = job["id"].as_str().expect("job id").to_owned();
    let job_url = format!("{url}v1/generations/{id}");
    eventually("the job to be running", Duration::from_secs(60), || {
        let http = http.clone();
        let job_url = job_url.clone();
        async move {
            let j: Value = http.get(&job_url).send().await.ok()?.json().await.ok()?;
            matches!(
                j["status"].as_str(),
                Some("planning" | "generating" | "composing")
            )
            .then_some(())
        }
    })
    .await;
    child.kill().expect("kill -9");
    child.wait().unwrap();

    let (mut again, url, _) = start(home.path());
    let j: Value = http
        .get(format!("{url}v1/generations/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(j["status"], "failed", "{j:#}");
    assert_eq!(j["error"]["code"], vidpipe_serve::recovery::INTERRUPTED);
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Interrupted"),
        "{j:#}"
    );
    again.kill().unwrap();
    again.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_waits_a_bounded_time_then_records_the_running_job_failed() {
    let home = tempfile::tempdir().unwrap();
    let served = serve(
        home.path(),
        ServeOptions {
            shutdown_grace: Duration::from_secs(1),
            ..ServeOptions::default()
        },
    )
    .await;
    let http = client();
    let job: Value = http
        .post(served.at("/v1/generations"))
        .json(&json!({"prompt": "A slow river. Trees sway. Birds cross the sky.", "duration_seconds": 120, "aspect_ratio": "16:9"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    let home_path = served.home.clone();
    let started = std::time::Instant::now();
    served.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the wait is bounded"
    );
    let stack = vidpipe_tests::stack(&home_path).await;
    let j = stack
        .service()
        .get("local", &vidpipe_domain::job::JobId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(j.status, vidpipe_domain::JobStatus::Failed, "{j:#?}");
    let e = j.error.unwrap();
    assert!(e.message.contains("vidpipe serve was stopped"), "{e:?}");
}

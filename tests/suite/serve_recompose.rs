//! The versions routes through `vidpipe serve` (the stack's handlers, the in-process runner): a
//! completed job recomposed to 9:16 over HTTP renders in process into a new version naming its
//! parent, judged by ffprobe on its own download; bad edits are refused by their JSON path.

use crate::serve_support::{client, serve};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use vidpipe_serve::ServeOptions;

/// Polls `url` until `done` holds for its JSON, for at most two minutes.
async fn until(http: &reqwest::Client, url: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v: Value = http.get(url).send().await.unwrap().json().await.unwrap();
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out at {url}: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_recomposes_a_finished_job_to_portrait_as_a_new_version() {
    let home = tempfile::tempdir().unwrap();
    let served = serve(home.path(), ServeOptions::default()).await;
    let http = client();
    let job: Value = http
        .post(served.at("/v1/generations"))
        .json(
            &json!({"prompt": "A calm sea. Gulls overhead.", "duration_seconds": 5,
                      "aspect_ratio": "16:9", "resolution": "720p", "fps": 24, "clip_count": 2}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    let recompose = served.at(&format!("/v1/generations/{id}/recompose"));

    // Not completed yet (or just now): only a completed job is recomposed, else 409.
    let early = http
        .post(&recompose)
        .json(&json!({"aspect_ratio": "9:16"}))
        .send()
        .await
        .unwrap();
    let job = until(&http, &served.at(&format!("/v1/generations/{id}")), |j| {
        j["status"] == "completed" || j["status"] == "failed"
    })
    .await;
    assert_eq!(job["status"], "completed", "{job}");
    if early.status().as_u16() != 202 {
        assert_eq!(early.status().as_u16(), 409);
    }

    // Bad edits: each refused by its JSON path, nothing recorded.
    for (body, field) in [
        (json!({"aspect_ratio": "3:2"}), "aspect_ratio"),
        (json!({"order": [0, "x"]}), "order[1]"),
        (json!({"order": [0, 0]}), "order"),
        (json!({"aspect": "9:16"}), "aspect"),
        (
            json!({"parent_composition_id": "cmp_0123456789abcdef0123456789abcdef"}),
            "parent_composition_id",
        ),
    ] {
        let r = http.post(&recompose).json(&body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 422, "{body}");
        let problem: Value = r.json().await.unwrap();
        assert!(
            problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{body} → {problem}"
        );
    }
    let missing = served.at("/v1/generations/job_0123456789abcdef0123456789abcdef/recompose");
    let r = http.post(&missing).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);

    let r = http
        .post(&recompose)
        .json(&json!({"aspect_ratio": "9:16"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let list_url = served.at(&format!("/v1/generations/{id}/compositions"));
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with(&format!("/v1/generations/{id}/compositions"))
    );
    let made: Value = r.json().await.unwrap();
    let first = format!("cmp_{}", &id[4..]);
    assert_eq!(made["parent_composition_id"], first, "{made}");
    assert_eq!(made["status"], "rendering");
    assert_eq!(made["ancestors"], json!([first]));
    let new = made["composition_id"].as_str().unwrap().to_owned();

    let list = until(&http, &list_url, |l| {
        l["items"]
            .as_array()
            .is_some_and(|items| items.iter().all(|c| c["status"] != "rendering"))
    })
    .await;
    let items = list["items"].as_array().unwrap();
    // An early 202 made a version of its own; the chain is what is checked either way.
    let mine = items
        .iter()
        .find(|c| c["composition_id"] == new.as_str())
        .expect("listed");
    assert_eq!(items[0]["composition_id"], first);
    assert_eq!(items[0]["parent_composition_id"], Value::Null);
    assert_eq!(mine["status"], "completed", "{list}");
    assert_eq!(mine["parent_composition_id"], first);
    let video = mine["downloads"]["video"]["url"].as_str().unwrap();
    let bytes = http.get(video).send().await.unwrap().bytes().await.unwrap();
    let file = home.path().join("portrait.mp4");
    std::fs::write(&file, &bytes).unwrap();
    let f = vidpipe_tests::probe(&file);
    assert_eq!((f.width, f.height), (720, 1280));
    assert_eq!(f.video_frames, Some(120), "5 s at 24 fps, as the parent");
    // The first version keeps its own 16:9 download.
    let first_video = items[0]["downloads"]["video"]["url"].as_str().unwrap();
    let bytes = http
        .get(first_video)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    std::fs::write(&file, &bytes).unwrap();
    let f = vidpipe_tests::probe(&file);
    assert_eq!((f.width, f.height), (1280, 720));
    served.stop().await;
}

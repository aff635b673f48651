//! Processing through `vidpipe serve`: a multipart upload through the API lands in the embedded
//! blob store and is processed into renditions that download and play (ffprobe); a file
//! dropped into the watched folder is processed once, moved to `done/`, and the same bytes
//! dropped again make no second record.

use crate::serve_support::{client, eventually, serve};
use serde_json::{Value, json};
use std::time::Duration;
use vidpipe_pipeline::uploads::UploadPolicy;
use vidpipe_serve::ServeOptions;

async fn processing_jobs(http: &reqwest::Client, url: &str) -> Vec<Value> {
    let list: Value = http.get(url).send().await.unwrap().json().await.unwrap();
    list["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_upload_and_a_watched_file_are_processed_once() {
    let home = tempfile::tempdir().unwrap();
    let media = tempfile::tempdir().unwrap();
    let watched = home.path().join("drop");
    let served = serve(
        home.path(),
        ServeOptions {
            watch: Some(watched.clone()),
            // Every upload multipart (one 5 MiB part at most), so parts, their listing and the
            // join are what this exercises.
            upload_policy: UploadPolicy {
                single_put_max: 0,
                part_size: 5 * 1024 * 1024,
            },
            ..ServeOptions::default()
        },
    )
    .await;
    let http = client();

    // 10 s of 320x240: 2 s remain after the default 3 s intro and 5 s outro.
    let raw = vidpipe_tests::write_clip(
        &media.path().join("take-1.mp4"),
        "testsrc2=size=320x240:rate=30",
        10.0,
        &[],
    );
    let bytes = std::fs::read(&raw).unwrap();
    let announced: Value = http
        .post(served.at("/v1/uploads"))
        .json(&json!({"project": "launch", "filename": "take-1.mp4", "size_bytes": bytes.len(), "content_type": "video/mp4"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(announced["mode"], "multipart", "{announced}");
    assert_eq!(announced["key"], "raw/local/launch/take-1.mp4");
    let parts = announced["parts"].as_array().unwrap();
    let part_size = announced["part_size"].as_u64().unwrap() as usize;
    for part in parts {
        let n = part["part_number"].as_u64().unwrap() as usize;
        let len = part["size_bytes"].as_u64().unwrap() as usize;
        let start = (n - 1) * part_size;
        let mut put = http.put(part["url"].as_str().unwrap());
        for (k, v) in part["headers"].as_object().unwrap() {
            put = put.header(k, v.as_str().unwrap());
        }
        let r = put
            .body(bytes[start..start + len].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    }
    // A tampered URL is refused.
    let tampered = parts[0]["url"]
        .as_str()
        .unwrap()
        .replace("part=1", "part=2");
    assert_eq!(
        http.put(tampered)
            .body(vec![0u8; 3])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        403
    );
    let completed = http
        .post(announced["links"]["complete"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        completed.status().as_u16(),
        200,
        "{}",
        completed.text().await.unwrap()
    );

    // The watched folder: a different file, written slowly as a copy would be.
    let dropped = vidpipe_tests::write_clip(
        &media.path().join("field.mov"),
        "testsrc=size=320x240:rate=25",
        10.0,
        &[],
    );
    std::fs::copy(&dropped, watched.join("field.mov")).unwrap();

    let list_url = served.at("/v1/processing-jobs");
    let jobs = eventually(
        "both processing jobs to end",
        Duration::from_secs(300),
        || {
            let http = http.clone();
            let url = list_url.clone();
            async move {
                let jobs = processing_jobs(&http, &url).await;
                (jobs.len() == 2 && jobs.iter().all(|j| j["status"] != "running")).then_some(jobs)
            }
        },
    )
    .await;
    for job in &jobs {
        assert_eq!(job["status"], "succeeded", "{job:#}");
    }
    let keys: Vec<&str> = jobs
        .iter()
        .map(|j| j["source_key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"raw/local/launch/take-1.mp4"), "{keys:?}");
    assert!(keys.contains(&"raw/local/watch/field.mov"), "{keys:?}");
    assert!(
        watched.join("done/field.mov").exists(),
        "the watched file moved to done/"
    );
    assert!(!watched.join("field.mov").exists());

    // Every rendition of the upload downloads and plays.
    let upload = jobs
        .iter()
        .find(|j| j["source_key"] == "raw/local/launch/take-1.mp4")
        .unwrap();
    let downloads: Value = http
        .get(served.at(&format!(
            "/v1/processing-jobs/{}/download",
            upload["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let outputs = downloads["outputs"].as_array().unwrap();
    let mut renditions = Vec::new();
    for o in outputs.iter().filter(|o| o["name"] != "thumbnail") {
        let body = http.get(o["url"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(body.status().as_u16(), 200);
        let path = media
            .path()
            .join(format!("{}.mp4", o["name"].as_str().unwrap()));
        std::fs::write(&path, body.bytes().await.unwrap()).unwrap();
        let facts = vidpipe_tests::probe(&path);
        assert!((facts.duration - 2.0).abs() < 0.1, "{facts:?}");
        assert_eq!(facts.video_codec, "h264");
        renditions.push(o["name"].as_str().unwrap().to_owned());
    }
    renditions.sort();
    assert_eq!(renditions, ["reels", "tiktok", "youtube"]);

    // The same bytes dropped again: moved aside, no second record.
    std::fs::copy(&dropped, watched.join("field.mov")).unwrap();
    eventually(
        "the second drop to be moved",
        Duration::from_secs(30),
        || {
            let moved = watched.join("done/field.mov.1").exists();
            async move { moved.then_some(()) }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(processing_jobs(&http, &list_url).await.len(), 2);
    served.stop().await;
}

//! `vidpipe serve`'s live socket: a subscriber sees a generation's stages in order, its clips,
//! a percent that never goes down and `completed` with links that download the video; and on a
//! server that requires its token, nothing without it and nothing of another tenant with it.

use crate::serve_support::{client, serve};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use vidpipe_serve::ServeOptions;

fn short_job() -> Value {
    json!({
        "prompt": "A lighthouse at dusk. Waves break on the rocks.",
        "duration_seconds": 5,
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "clip_count": 2,
        "captions": false
    })
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_frame(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(180), ws.next())
            .await
            .expect("a frame within 180 s")
            .expect("the socket stays open")
            .expect("a frame");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).expect("JSON frame");
        }
    }
}

async fn subscribe(ws: &mut Socket, id: &str) {
    ws.send(Message::Text(
        json!({"action": "subscribe", "job_id": id})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscriber_sees_the_ordered_story_to_completed() {
    let home = tempfile::tempdir().unwrap();
    let served = serve(home.path(), ServeOptions::default()).await;
    let http = client();
    let (mut ws, _) = tokio_tungstenite::connect_async(served.ws_url())
        .await
        .expect("connect without a token on loopback");

    // Unknown ids get the error, and a bad frame too.
    subscribe(&mut ws, "job_0000000000000000000000000000000f").await;
    let e = next_frame(&mut ws).await;
    assert_eq!(e["type"], "error", "{e}");
    assert_eq!(e["job_id"], "job_0000000000000000000000000000000f");
    ws.send(Message::Text("{\"action\":\"dance\"}".into()))
        .await
        .unwrap();
    assert_eq!(next_frame(&mut ws).await["type"], "error");

    let job: Value = http
        .post(served.at("/v1/generations"))
        .json(&short_job())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = job["id"].as_str().expect("job id").to_owned();
    subscribe(&mut ws, &id).await;

    let ack = next_frame(&mut ws).await;
    assert_eq!(ack["type"], "subscribed", "{ack}");
    assert_eq!(ack["kind"], "generation");
    let mut frames = Vec::new();
    loop {
        let f = next_frame(&mut ws).await;
        assert_eq!(f["job_id"], id.as_str(), "{f}");
        let done = f["type"] == "completed" || f["type"] == "failed";
        frames.push(f);
        if done {
            break;
        }
    }
    let seqs: Vec<u64> = frames.iter().map(|f| f["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] > w[0]),
        "seq increases: {seqs:?}"
    );
    let stages: Vec<&str> = frames
        .iter()
        .filter(|f| f["type"] == "stage")
        .map(|f| f["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        ["planning", "generating", "composing"],
        "{frames:#?}"
    );
    let percents: Vec<f64> = frames
        .iter()
        .filter(|f| f["type"] == "progress")
        .map(|f| f["percent"].as_f64().unwrap())
        .collect();
    assert!(percents.windows(2).all(|w| w[1] >= w[0]), "{percents:?}");
    assert_eq!(percents.last().copied(), Some(100.0), "{percents:?}");
    for index in 0..2 {
        assert!(
            frames.iter().any(|f| f["type"] == "clip"
                && f["index"] == index
                && f["status"] == "done"
                && f["provider"] == "procedural"),
            "clip {index} done: {frames:#?}"
        );
    }
    let last = frames.last().unwrap();
    assert_eq!(last["type"], "completed", "{last}");
    let downloads = last["downloads"].as_array().unwrap();
    let url_of = |name: &str| {
        downloads
            .iter()
            .find(|d| d["name"] == name)
            .and_then(|d| d["url"].as_str())
            .unwrap_or_else(|| panic!("{name} in {last}"))
            .to_owned()
    };
    let video = http.get(url_of("final")).send().await.unwrap();
    assert_eq!(video.status().as_u16(), 200);
    let path = home.path().join("downloaded.mp4");
    std::fs::write(&path, video.bytes().await.unwrap()).unwrap();
    let facts = vidpipe_tests::probe(&path);
    assert!((facts.duration - 5.0).abs() < 0.1, "{facts:?}");
    assert_eq!((facts.width, facts.height), (1280, 720));
    assert_eq!(
        http.get(url_of("thumbnail"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );

    // A late subscriber (another socket) gets the whole story as catch-up, the same events.
    let (mut late, _) = tokio_tungstenite::connect_async(served.ws_url())
        .await
        .unwrap();
    subscribe(&mut late, &id).await;
    assert_eq!(next_frame(&mut late).await["type"], "subscribed");
    let mut caught = Vec::new();
    loop {
        let f = next_frame(&mut late).await;
        let done = f["type"] == "completed";
        caught.push(f["type"].as_str().unwrap().to_owned());
        if done {
            break;
        }
    }
    assert_eq!(
        caught.iter().filter(|t| *t == "stage").count(),
        3,
        "{caught:?}"
    );
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_token_nothing_without_it_and_nothing_of_another_tenant() {
    let home = tempfile::tempdir().unwrap();
    let served = serve(
        home.path(),
        ServeOptions {
            require_token: true,
            ..ServeOptions::default()
        },
    )
    .await;
    let token = served.token.clone().expect("a token is required");
    assert_eq!(token.len(), 64);
    let http = client();

    let r = http.get(served.at("/v1/generations")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = http
        .get(served.at("/v1/generations"))
        .bearer_auth("0".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // The page and its config load without it (the app asks for the token), and say so.
    let config: Value = http
        .get(served.at("/app-config.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["auth"], json!({"mode": "token"}));
    assert!(
        tokio_tungstenite::connect_async(served.ws_url())
            .await
            .is_err(),
        "a socket without the token is refused"
    );

    // Another tenant's job in the same home (written by another process on the machine).
    let other = vidpipe_tests::stack(home.path()).await;
    let theirs = other
        .service()
        .submit(
            "someone-else",
            &serde_json::from_value(short_job()).unwrap(),
            None,
        )
        .await
        .expect("submit as another tenant");
    let their_id = theirs.job().id.to_string();

    let r = http
        .get(served.at(&format!("/v1/generations/{their_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        404,
        "another tenant's job is not found"
    );
    let list: Value = http
        .get(served.at("/v1/generations"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");

    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{}?token={token}", served.ws_url()))
            .await
            .expect("the token opens the socket");
    subscribe(&mut ws, &their_id).await;
    let refused = next_frame(&mut ws).await;
    subscribe(&mut ws, "job_0000000000000000000000000000000f").await;
    let missing = next_frame(&mut ws).await;
    assert_eq!(refused["type"], "error");
    assert_eq!(
        refused["message"], missing["message"],
        "another tenant's job and no job answer alike"
    );
    other.orchestrator().wait(&theirs.job().id).await;
    served.stop().await;
}

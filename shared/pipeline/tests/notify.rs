//! The `Notifier` adapters against what receives them: the webhook against a local fake speaking
//! a Slack-compatible incoming webhook's shape (JSON POST, 2xx on success), the JSON-lines file
//! read back, and the fan-out trying every notifier.

use vidpipe_domain::names;
use vidpipe_domain::ports::{Notifier, NotifyError};
use vidpipe_domain::processing::{ProcessEvent, ProcessFailure, ProcessStatus};
use vidpipe_pipeline::notify::{Fanout, JsonlNotifier, WebhookNotifier};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn failed_event() -> ProcessEvent {
    ProcessEvent {
        source_id: "a".repeat(40),
        bucket: "media".into(),
        key: "raw/acme/launch/notes.mp4".into(),
        status: ProcessStatus::Failed,
        manifest_key: None,
        outputs: Vec::new(),
        error: Some(ProcessFailure {
            error: names::SOURCE_REJECTED.into(),
            reason: "the file is not readable media".into(),
        }),
    }
}

#[tokio::test]
async fn the_webhook_posts_a_slack_text_and_the_whole_event() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/T000/B000"))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(1)
        .mount(&server)
        .await;
    let hook = WebhookNotifier::new(format!("{}/hooks/T000/B000", server.uri())).unwrap();
    let event = failed_event();
    hook.notify(&event).await.expect("delivered");
    let received = server.received_requests().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(
        body["text"],
        format!(
            "vidpipe: raw/acme/launch/notes.mp4 failed: {}: the file is not readable media",
            names::SOURCE_REJECTED
        )
    );
    let echoed: ProcessEvent = serde_json::from_value(body["vidpipe"].clone()).unwrap();
    assert_eq!(echoed, event);
}

#[tokio::test]
async fn webhook_failures_are_classed_for_retry() {
    let server = MockServer::start().await;
    for (route, status) in [("/busy", 503), ("/slow", 429), ("/gone", 404)] {
        Mock::given(path(route))
            .respond_with(ResponseTemplate::new(status))
            .mount(&server)
            .await;
    }
    let send = |route: &str| {
        let hook = WebhookNotifier::new(format!("{}{route}", server.uri())).unwrap();
        async move { hook.notify(&failed_event()).await }
    };
    assert!(matches!(
        send("/busy").await,
        Err(NotifyError::Unavailable(_))
    ));
    assert!(matches!(
        send("/slow").await,
        Err(NotifyError::Unavailable(_))
    ));
    assert!(matches!(send("/gone").await, Err(NotifyError::Refused(_))));
    // Nobody listening at all: passing, so retried.
    let closed = WebhookNotifier::new("http://127.0.0.1:9/hook").unwrap();
    assert!(matches!(
        closed.notify(&failed_event()).await,
        Err(NotifyError::Unavailable(_))
    ));
}

#[tokio::test]
async fn the_jsonl_file_reads_back_every_event_in_order_and_fanout_tries_all() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sub").join("notifications.jsonl");
    let jsonl = JsonlNotifier::new(&file);
    assert!(jsonl.read_all().await.unwrap().is_empty());
    let mut second = failed_event();
    second.status = ProcessStatus::Succeeded;
    second.error = None;

    // The refusing webhook comes first; the file still gets the event, and the error is returned.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400))
        .mount(&server)
        .await;
    let fanout = Fanout(vec![
        Box::new(WebhookNotifier::new(server.uri()).unwrap()),
        Box::new(JsonlNotifier::new(&file)),
    ]);
    assert!(matches!(
        fanout.notify(&failed_event()).await,
        Err(NotifyError::Refused(_))
    ));
    jsonl.notify(&second).await.unwrap();
    assert_eq!(
        jsonl.read_all().await.unwrap(),
        vec![failed_event(), second]
    );
}

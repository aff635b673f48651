//! The `Notifier` adapters: the JSON-lines file read back, and the fan-out trying every
//! notifier. (The Slack-compatible webhook is a format of the signed webhooks: tests/webhooks.rs.)

use vidpipe_domain::names;
use vidpipe_domain::ports::{Notifier, NotifyError};
use vidpipe_domain::processing::{ProcessEvent, ProcessFailure, ProcessStatus};
use vidpipe_pipeline::notify::{Fanout, JsonlNotifier};

/// A receiver that refuses every event, as a misconfigured endpoint would.
struct Refusing;

#[async_trait::async_trait]
impl Notifier for Refusing {
    async fn notify(&self, _: &ProcessEvent) -> Result<(), NotifyError> {
        Err(NotifyError::Refused("answered 400".into()))
    }
}

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
async fn the_jsonl_file_reads_back_every_event_in_order_and_fanout_tries_all() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sub").join("notifications.jsonl");
    let jsonl = JsonlNotifier::new(&file);
    assert!(jsonl.read_all().await.unwrap().is_empty());
    let mut second = failed_event();
    second.status = ProcessStatus::Succeeded;
    second.error = None;

    // The refusing notifier comes first; the file still gets the event, and the error is returned.
    let fanout = Fanout(vec![
        Box::new(Refusing),
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

//! The upload dispatcher's decisions: which S3 notifications (delivered through SQS) become a
//! processing execution, under which deterministic name, and which SQS records are reported as
//! failed so SQS delivers them again. Parsing and deciding are plain functions, tested here; the
//! handler only adds the Step Functions call.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use vidpipe_aws::sfn::{Started, start_named};
use vidpipe_domain::ErrorClass;
use vidpipe_domain::ports::{OrchestratorError, ProcessStarter};
use vidpipe_domain::processing::{SourcePath, SourceRef};
use vidpipe_pipeline::processing::ProcessInput;

/// What to do with one record of an S3 notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start (or find already started) the processing execution of this write.
    Process(SourceRef),
    /// Nothing to process; the reason is logged. Never a failure: retrying cannot change it.
    Skip(String),
}

/// The parts of S3's notification JSON the dispatcher reads. Our own minimal shape rather than
/// `aws_lambda_events::s3::S3Event`, which requires fields (`eventTime`, `userIdentity`,
/// `requestParameters`) a decision does not need and whose absence would fail the whole body.
#[derive(Debug, Deserialize)]
struct Notification {
    #[serde(rename = "Records", default)]
    records: Vec<Record>,
    /// `s3:TestEvent` when S3 checks it can reach the queue (the body then has no records).
    #[serde(rename = "Event")]
    event: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Record {
    #[serde(rename = "eventName", default)]
    event_name: String,
    s3: Entity,
}

#[derive(Debug, Deserialize)]
struct Entity {
    bucket: Bucket,
    object: Object,
}

#[derive(Debug, Deserialize)]
struct Bucket {
    name: String,
}

#[derive(Debug, Deserialize)]
struct Object {
    key: String,
    #[serde(rename = "versionId")]
    version_id: Option<String>,
    sequencer: Option<String>,
}

/// Decodes a key as S3 writes it into notifications: `+` is a space and `%XX` a byte, and the
/// bytes are UTF-8. `None` for a malformed escape or bytes that are not UTF-8.
pub fn decode_key(raw: &str) -> Option<String> {
    // percent-encoding leaves a malformed escape as it is; S3 never writes one, so a key that
    // has one is not S3's and is refused rather than guessed at.
    let bytes = raw.as_bytes();
    let well_formed = bytes.iter().enumerate().all(|(i, b)| {
        *b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return None;
    }
    percent_decode_str(&raw.replace('+', " "))
        .decode_utf8()
        .ok()
        .map(|k| k.into_owned())
}

/// The decisions for one SQS message body. A body that is not an S3 notification is skipped
/// (logged), like a test event: it can never become processable by being delivered again.
pub fn decide(body: &str) -> Vec<Decision> {
    let notification: Notification = match serde_json::from_str(body) {
        Ok(n) => n,
        Err(e) => return vec![Decision::Skip(format!("not an S3 notification: {e}"))],
    };
    if notification.event.as_deref() == Some("s3:TestEvent") {
        return vec![Decision::Skip("s3:TestEvent".into())];
    }
    if notification.records.is_empty() {
        return vec![Decision::Skip("an S3 notification without records".into())];
    }
    notification
        .records
        .into_iter()
        .map(decide_record)
        .collect()
}

fn decide_record(record: Record) -> Decision {
    // The bucket only sends ObjectCreated:*; anything else (a widened configuration, a
    // replayed delete) is not an upload.
    if !record.event_name.starts_with("ObjectCreated:") {
        return Decision::Skip(format!("event {:?} is not an upload", record.event_name));
    }
    let Some(key) = decode_key(&record.s3.object.key) else {
        return Decision::Skip(format!(
            "key {:?} is not a valid URL-encoded UTF-8 key",
            record.s3.object.key
        ));
    };
    if let Err(e) = SourcePath::parse(&key) {
        return Decision::Skip(e.to_string());
    }
    let nonempty = |v: Option<String>| v.filter(|v| !v.is_empty());
    // A versioned bucket names each write by its version; an unversioned one only orders writes
    // to a key by the sequencer, which is as good an identity for one write.
    let version = nonempty(record.s3.object.version_id).or(nonempty(record.s3.object.sequencer));
    Decision::Process(SourceRef {
        bucket: record.s3.bucket.name,
        key,
        version,
    })
}

/// The execution input for a source: what `processing::probe` reads (`ProcessInput`).
pub fn execution_input(source: &SourceRef) -> String {
    serde_json::to_string(&ProcessInput {
        source: source.clone(),
    })
    .expect("a SourceRef always serialises")
}

/// Starts the processing execution of every processable record in the batch. A message whose
/// start failed is reported, so SQS delivers it again (and, after the queue's maxReceiveCount,
/// moves it to the dead-letter queue); everything else, skips and duplicates included, is done.
pub async fn dispatch(
    sfn: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
    event: SqsEvent,
) -> SqsBatchResponse {
    let mut failures = Vec::new();
    for message in event.records {
        let id = message.message_id.clone().unwrap_or_default();
        let body = message.body.as_deref().unwrap_or_default();
        let mut failed = false;
        for decision in decide(body) {
            match decision {
                Decision::Skip(why) => tracing::info!(message_id = %id, %why, "skipped"),
                Decision::Process(source) => {
                    let name = source.id();
                    let started =
                        start_named(sfn, state_machine_arn, &name, execution_input(&source)).await;
                    match started {
                        Ok(Started::Running) => tracing::info!(
                            execution = %name,
                            key = %source.key,
                            "started (or already running)"
                        ),
                        Ok(Started::AlreadyExists) => tracing::info!(
                            execution = %name,
                            key = %source.key,
                            "already started (duplicate delivery)"
                        ),
                        Err(e) => {
                            log_start_failure(&id, &name, &e);
                            failed = true;
                        }
                    }
                }
            }
        }
        if failed {
            failures.push(BatchItemFailure {
                item_identifier: id,
            });
        }
    }
    SqsBatchResponse {
        batch_item_failures: failures,
    }
}

/// Starts processing executions for the API's retries, by the same input the dispatcher gives.
pub struct SfnProcessStarter {
    client: aws_sdk_sfn::Client,
    state_machine_arn: String,
}

impl SfnProcessStarter {
    pub fn new(client: aws_sdk_sfn::Client, state_machine_arn: String) -> Self {
        Self {
            client,
            state_machine_arn,
        }
    }
}

#[async_trait::async_trait]
impl ProcessStarter for SfnProcessStarter {
    async fn start_processing(
        &self,
        source: &SourceRef,
        name: &str,
    ) -> Result<(), OrchestratorError> {
        // An execution of this name that already ended (or runs) is this retry: nothing to start.
        start_named(
            &self.client,
            &self.state_machine_arn,
            name,
            execution_input(source),
        )
        .await
        .map(|_| ())
    }
}

/// Permanent failures (a wrong ARN, missing permission) are reported like passing ones: the
/// message then ends in the dead-letter queue, from which it can be redriven once the stack is
/// fixed, instead of the upload being silently dropped.
fn log_start_failure(message_id: &str, execution: &str, e: &OrchestratorError) {
    let OrchestratorError::Backend { class, .. } = e;
    match class {
        ErrorClass::Retryable => {
            tracing::warn!(message_id, execution, error = %e, "start failed; SQS will redeliver")
        }
        ErrorClass::Permanent => tracing::error!(
            message_id,
            execution,
            error = %e,
            "start failed permanently; the message goes to the DLQ after its receives"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(key: &str, version: Option<&str>, sequencer: Option<&str>) -> String {
        let mut object = serde_json::json!({ "key": key, "size": 1234, "eTag": "abc" });
        if let Some(v) = version {
            object["versionId"] = v.into();
        }
        if let Some(s) = sequencer {
            object["sequencer"] = s.into();
        }
        serde_json::json!({
            "Records": [{
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": { "bucket": { "name": "media" }, "object": object }
            }]
        })
        .to_string()
    }

    fn source(decisions: Vec<Decision>) -> SourceRef {
        match decisions.as_slice() {
            [Decision::Process(s)] => s.clone(),
            other => panic!("expected one source, got {other:?}"),
        }
    }

    #[test]
    fn keys_are_url_decoded() {
        assert_eq!(
            decode_key("raw/a/b/My+Clip.mp4").unwrap(),
            "raw/a/b/My Clip.mp4"
        );
        assert_eq!(decode_key("raw%2Fa%2Fb%2Fx.mp4").unwrap(), "raw/a/b/x.mp4");
        assert_eq!(decode_key("a%2Bb%20c").unwrap(), "a+b c");
        assert_eq!(decode_key("My+Clip+%C3%BC.MOV").unwrap(), "My Clip ü.MOV");
        for bad in ["a%2", "a%zz", "a%C3", "a%+1", "a%-1"] {
            assert_eq!(decode_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_video_upload_becomes_a_source_with_its_version() {
        let s = source(decide(&body(
            "raw/acme/launch/My+Clip+%C3%BC.MOV",
            Some("v1"),
            Some("0A1B"),
        )));
        assert_eq!(
            s,
            SourceRef {
                bucket: "media".into(),
                key: "raw/acme/launch/My Clip ü.MOV".into(),
                version: Some("v1".into()),
            }
        );
        // moto writes `/` as %2F.
        let s = source(decide(&body(
            "raw%2Facme%2Flaunch%2Fa.mp4",
            None,
            Some("0A1B"),
        )));
        assert_eq!(s.key, "raw/acme/launch/a.mp4");
    }

    #[test]
    fn a_versionless_bucket_uses_the_sequencer() {
        let first = source(decide(&body(
            "raw/a/b/x.mp4",
            None,
            Some("0055AED6DCD90281E5"),
        )));
        assert_eq!(first.version.as_deref(), Some("0055AED6DCD90281E5"));
        let again = source(decide(&body(
            "raw/a/b/x.mp4",
            Some(""),
            Some("0055AED6DCD90281E5"),
        )));
        assert_eq!(again.id(), first.id(), "same write, same execution name");
        let later = source(decide(&body(
            "raw/a/b/x.mp4",
            None,
            Some("0055AED6DCD90281F0"),
        )));
        assert_ne!(later.id(), first.id(), "a new write is a new execution");
        let bare = source(decide(&body("raw/a/b/x.mp4", None, None)));
        assert_eq!(bare.version, None);
    }

    #[test]
    fn non_videos_outside_keys_and_test_events_are_skipped() {
        for key in [
            "raw/a/b/notes.txt",
            "raw/a/b.mp4",
            "uploads/a/b/c.mp4",
            "raw/a/b/%ZZ.mp4",
        ] {
            assert!(
                matches!(
                    decide(&body(key, None, Some("1"))).as_slice(),
                    [Decision::Skip(_)]
                ),
                "{key}"
            );
        }
        let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-01-01T00:00:00.000Z","Bucket":"media"}"#;
        assert_eq!(
            decide(test_event),
            vec![Decision::Skip("s3:TestEvent".into())]
        );
        assert!(matches!(decide("not json").as_slice(), [Decision::Skip(_)]));
        let deleted = body("raw/a/b/x.mp4", None, Some("1"))
            .replace("ObjectCreated:Put", "ObjectRemoved:Delete");
        assert!(matches!(decide(&deleted).as_slice(), [Decision::Skip(_)]));
    }

    #[test]
    fn the_execution_input_is_what_probe_reads() {
        let s = SourceRef {
            bucket: "media".into(),
            key: "raw/a/b/x.mp4".into(),
            version: None,
        };
        let input: ProcessInput = serde_json::from_str(&execution_input(&s)).unwrap();
        assert_eq!(input.source, s);
        assert_eq!(
            execution_input(&s),
            r#"{"source":{"bucket":"media","key":"raw/a/b/x.mp4"}}"#
        );
    }
}

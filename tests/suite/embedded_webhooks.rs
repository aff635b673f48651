//! Signed webhooks end to end on the one-machine stack, as `vidpipe generate --webhook-url` and
//! an announced upload would run: a local receiver on 127.0.0.1 gets exactly one `completed`
//! delivery for a finished job (none more when the step runs again) and one `failed` delivery
//! for a failed one, each verified by the `standardwebhooks` crate under the tenant's secret,
//! with working links to the outputs, the cost and the timings.

use chrono::Utc;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use vidpipe_domain::processing::{ProcessSettings, ProcessStatus, RenditionSet};
use vidpipe_domain::request::GenerationRequestBody;
use vidpipe_domain::upload::{UploadId, UploadRecord, UploadStatus};
use vidpipe_domain::webhook::{
    DeliveryOutcome, JobKind, UrlRules, WebhookEvent, WebhookPayload, WebhookUrl,
};
use vidpipe_domain::{JobStatus, names};
use vidpipe_pipeline::generation::{FailureInput, record_failure};
use vidpipe_pipeline::local::{LocalOptions, LocalStack};
use vidpipe_pipeline::processing::{self, ProcessInput};
use vidpipe_pipeline::webhooks::{DeliveryReport, WebhookSettings, Webhooks};
use vidpipe_tests::{Refusing, probe, stack_with_options, write_clip};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const OWNER: &str = "local";

/// A local receiver that accepts every delivery at `/hook`.
async fn receiver() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

/// The stack as `vidpipe --webhook-allow-loopback` opens it: loopback receivers allowed.
async fn open(
    home: &Path,
    provider: Option<Arc<dyn vidpipe_domain::ports::ClipProvider>>,
) -> LocalStack {
    let options = LocalOptions {
        max_concurrency: 2,
        webhooks: WebhookSettings {
            url_rules: UrlRules {
                allow_loopback: true,
            },
            backoff_base: Duration::from_millis(20),
            ..WebhookSettings::default()
        },
        ..LocalOptions::default()
    };
    stack_with_options(home, options, provider).await
}

fn body(webhook: &str) -> GenerationRequestBody {
    GenerationRequestBody {
        prompt: Some("Lanterns drift over a dark lake. Fireworks bloom.".into()),
        duration_seconds: Some(5.0),
        aspect_ratio: Some("16:9".into()),
        resolution: Some("720p".into()),
        clip_count: Some(1),
        webhook_url: Some(webhook.to_owned()),
        ..Default::default()
    }
}

fn webhooks(stack: &LocalStack) -> &Webhooks {
    stack
        .deps()
        .webhooks
        .as_deref()
        .expect("webhooks are wired")
}

/// Verifies a delivery with the `standardwebhooks` crate and returns its payload.
async fn verified(stack: &LocalStack, tenant: &str, request: &Request) -> WebhookPayload {
    let secret = webhooks(stack)
        .tenant_secrets(tenant)
        .await
        .expect("the tenant's secret")
        .current;
    standardwebhooks::Webhook::new(secret.expose())
        .unwrap()
        .verify(&request.body, &request.headers)
        .expect("the signature verifies under the tenant's secret");
    serde_json::from_slice(&request.body).expect("the payload")
}

/// The local path a presigned link of the embedded blob store points at.
fn local_file(url: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(
        url.strip_prefix("file://")
            .expect("a file URL on one machine"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_generation_is_told_once_with_links_cost_and_timings() {
    let home = tempfile::tempdir().unwrap();
    let server = receiver().await;
    let stack = open(home.path(), None).await;
    let hook = format!("{}/hook", server.uri());
    let job = vidpipe_tests::run_job(&stack, OWNER, &body(&hook)).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);

    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 1, "exactly one delivery");
    let payload = verified(&stack, OWNER, &received[0]).await;
    assert_eq!(payload.event, WebhookEvent::Completed);
    assert_eq!(payload.data.job_id, job.id.to_string());
    assert_eq!(payload.data.kind, JobKind::Generation);
    assert_eq!(payload.data.status, "completed");
    assert!(payload.data.cost_usd.is_some() && payload.data.cost.is_some());
    for stage in ["planning", "generating", "composing"] {
        assert!(
            payload.data.timings.contains_key(stage),
            "{stage} timing missing"
        );
    }
    // The video link fetches the composed MP4 itself.
    let video = payload
        .data
        .outputs
        .iter()
        .find(|o| o.name == "video")
        .expect("a video link");
    let outputs = job.outputs.as_ref().unwrap();
    assert_eq!(video.key, outputs.final_key);
    assert_eq!(video.size_bytes, Some(outputs.size_bytes));
    let facts = probe(&local_file(&video.url));
    assert!((facts.duration - 5.0).abs() < 0.05, "{}", facts.duration);
    assert!(payload.data.outputs.iter().any(|o| o.name == "thumbnail"));
    assert!(payload.data.links_expire_at.unwrap() > Utc::now() + chrono::TimeDelta::hours(23));

    // The step delivering again (a duplicate invocation) sends nothing more.
    let again = webhooks(&stack)
        .tell_generation(stack.deps().blobs.as_ref(), &job)
        .await;
    assert_eq!(again, Some(DeliveryReport::AlreadyDelivered));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    let log = webhooks(&stack)
        .attempts(JobKind::Generation, job.id.as_str())
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].outcome, DeliveryOutcome::Delivered);
    assert_eq!(log[0].status, Some(200));
    assert_eq!(
        log[0].webhook_id,
        received[0].headers["webhook-id"].to_str().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_generation_is_told_once_with_its_reason() {
    let home = tempfile::tempdir().unwrap();
    let server = receiver().await;
    let stack = open(home.path(), Some(Arc::new(Refusing))).await;
    let job = vidpipe_tests::run_job(&stack, OWNER, &body(&format!("{}/hook", server.uri()))).await;
    assert_eq!(job.status, JobStatus::Failed);
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 1, "exactly one delivery");
    let payload = verified(&stack, OWNER, &received[0]).await;
    assert_eq!(payload.event, WebhookEvent::Failed);
    assert_eq!(payload.data.status, "failed");
    let error = payload.data.error.expect("the reason");
    assert_eq!(error.error, names::PROVIDER_REJECTED);
    assert!(
        error.reason.contains("prompt violates policy"),
        "{}",
        error.reason
    );
    assert!(payload.data.outputs.is_empty());

    // RecordFailure invoked again (a Step Functions retry whose first answer was lost) records
    // nothing new and sends nothing twice.
    let input = FailureInput {
        job_id: job.id.clone(),
        composition_id: None,
        error_type: names::PROVIDER_REJECTED.into(),
        cause: "prompt violates policy".into(),
    };
    record_failure(stack.deps(), &input).await.unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_uploads_processing_is_told_with_every_rendition() {
    let home = tempfile::tempdir().unwrap();
    let server = receiver().await;
    let stack = open(home.path(), None).await;
    stack.install_watermark(None).await.unwrap();
    let src = write_clip(
        &home.path().join("take.mp4"),
        "testsrc2=s=320x180:r=30",
        3.0,
        &[],
    );
    let source = stack.ingest_raw(&src, "acme", "launch").await.unwrap();
    // The announcement an API client made, naming its receiver.
    let now = Utc::now();
    let record = UploadRecord {
        id: UploadId::for_key(&source.key),
        owner: "acme".into(),
        project: "launch".into(),
        filename: "take.mp4".into(),
        key: source.key.clone(),
        size_bytes: std::fs::metadata(&src).unwrap().len(),
        content_type: "video/mp4".into(),
        multipart: None,
        status: UploadStatus::Completed,
        webhook_url: Some(
            WebhookUrl::parse(
                &format!("{}/hook", server.uri()),
                UrlRules {
                    allow_loopback: true,
                },
            )
            .unwrap(),
        ),
        created_at: now,
        updated_at: now,
        version: 0,
    };
    let store = stack.processing(ProcessSettings::default(), RenditionSet::default_set());
    store
        .uploads
        .as_ref()
        .unwrap()
        .save_upload(&record)
        .await
        .unwrap();
    let settings = ProcessSettings {
        intro_seconds: 0.5,
        outro_seconds: 0.5,
        ..ProcessSettings::default()
    };
    let deps = stack.processing(settings, RenditionSet::default_set());
    let job = processing::run_embedded(&deps, &ProcessInput { source }, 2, Arc::new(|_| {}))
        .await
        .unwrap();
    assert_eq!(job.status, ProcessStatus::Succeeded, "{:?}", job.error);

    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 1, "exactly one delivery");
    let payload = verified(&stack, "acme", &received[0]).await;
    assert_eq!(payload.event, WebhookEvent::Completed);
    assert_eq!(payload.data.kind, JobKind::Processing);
    assert_eq!(payload.data.job_id, job.id);
    assert_eq!(
        payload.data.source_key.as_deref(),
        Some("raw/acme/launch/take.mp4")
    );
    let mut names: Vec<_> = payload
        .data
        .outputs
        .iter()
        .map(|o| o.name.as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["reels", "thumbnail", "tiktok", "youtube"]);
    let youtube = payload
        .data
        .outputs
        .iter()
        .find(|o| o.name == "youtube")
        .unwrap();
    let facts = probe(&local_file(&youtube.url));
    assert!((facts.duration - 2.0).abs() < 0.1, "{}", facts.duration);
    assert!(payload.data.timings.contains_key("transcode"));
    assert!(payload.data.cost.is_some());
}

//! Signed webhooks against local receivers on 127.0.0.1: signatures verified by the
//! `standardwebhooks` crate (not our code), retries with a stable `webhook-id` and every attempt
//! in the delivery log, `Retry-After` honoured, other 4xx given up at once, timeouts bounded by
//! the delivery's budget, the SSRF guard's refusals before and at connection time, and both
//! secrets verifying during a rotation's overlap.

use chrono::{TimeDelta, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vidpipe_domain::names;
use vidpipe_domain::ports::WebhookSecretStore;
use vidpipe_domain::webhook::{
    DeliveryOutcome, JobKind, UrlRules, WebhookEvent, WebhookFailure, WebhookFormat, WebhookJob,
    WebhookPayload, WebhookUrl, webhook_id,
};
use vidpipe_pipeline::embedded::SqliteJobStore;
use vidpipe_pipeline::webhooks::guard::{self, GuardedResolver, TargetRefused};
use vidpipe_pipeline::webhooks::{
    Delivery, DeliveryReport, WebhookSettings, WebhookTarget, Webhooks,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const DEV: UrlRules = UrlRules {
    allow_loopback: true,
};
const STRICT: UrlRules = UrlRules {
    allow_loopback: false,
};

struct Harness {
    hooks: Webhooks,
    store: Arc<SqliteJobStore>,
    _dir: tempfile::TempDir,
}

/// Fast, bounded settings: millisecond backoff so retries do not slow the suite.
fn settings(rules: UrlRules) -> WebhookSettings {
    WebhookSettings {
        url_rules: rules,
        max_attempts: 4,
        attempt_timeout: Duration::from_secs(5),
        total_budget: Duration::from_secs(20),
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(40),
        ..WebhookSettings::default()
    }
}

fn harness(settings: WebhookSettings) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteJobStore::open(dir.path().join("db.sqlite3")).unwrap());
    let hooks = Webhooks::new(store.clone(), store.clone(), settings).unwrap();
    Harness {
        hooks,
        store,
        _dir: dir,
    }
}

fn payload(job: &str, event: WebhookEvent) -> WebhookPayload {
    let now = Utc::now();
    WebhookPayload {
        event,
        timestamp: now,
        data: WebhookJob {
            job_id: job.into(),
            kind: JobKind::Generation,
            status: "failed".into(),
            source_key: None,
            outputs: Vec::new(),
            links_expire_at: None,
            cost_usd: Some(0.25),
            cost: None,
            timings: [("planning".to_owned(), 0.5)].into(),
            error: Some(WebhookFailure {
                error: names::PLAN_FAILED.into(),
                reason: "the plan did not fit".into(),
            }),
            created_at: now,
            finished_at: now,
        },
    }
}

fn delivery(url: &str, rules: UrlRules, job: &str, format: WebhookFormat) -> Delivery {
    Delivery {
        tenant: "acme".into(),
        kind: JobKind::Generation,
        job_id: job.into(),
        run: 0,
        target: WebhookTarget {
            url: WebhookUrl::parse(url, rules).expect("a valid target"),
            format,
        },
        payload: payload(job, WebhookEvent::Failed),
    }
}

/// Checks one received request with the `standardwebhooks` crate under `secret`.
fn verifies(secret: &str, request: &Request) -> bool {
    let hook = standardwebhooks::Webhook::new(secret).expect("a whsec_ secret");
    hook.verify(&request.body, &request.headers).is_ok()
}

fn header(request: &Request, name: &str) -> String {
    request.headers[name].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_500_then_200_is_one_delivery_with_one_id_and_two_logged_attempts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let h = harness(settings(DEV));
    let d = delivery(
        &format!("{}/hook", server.uri()),
        DEV,
        "job_retry",
        WebhookFormat::Standard,
    );

    let report = h.hooks.deliver(&d).await;
    assert_eq!(report, DeliveryReport::Delivered { attempts: 2 });
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    let id = webhook_id(JobKind::Generation, "job_retry", 0, WebhookEvent::Failed);
    assert_eq!(header(&received[0], "webhook-id"), id);
    assert_eq!(header(&received[1], "webhook-id"), id);
    // Another implementation accepts both attempts under the tenant's secret.
    let secret = h.hooks.tenant_secrets("acme").await.unwrap().current;
    assert!(received.iter().all(|r| verifies(secret.expose(), r)));
    // The body is the payload itself.
    let body: WebhookPayload = serde_json::from_slice(&received[1].body).unwrap();
    assert_eq!(body, d.payload);

    let log = h
        .hooks
        .attempts(JobKind::Generation, "job_retry")
        .await
        .unwrap();
    let seen: Vec<_> = log
        .iter()
        .map(|a| (a.attempt, a.status, a.outcome, a.webhook_id.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, Some(500), DeliveryOutcome::Retrying, id.as_str()),
            (2, Some(200), DeliveryOutcome::Delivered, id.as_str()),
        ]
    );
    assert_eq!(log[0].target, server.uri());
    assert!(log[0].error.as_deref().unwrap().contains("500"));

    // A duplicate invocation of the step finds the delivery in the log and sends nothing.
    assert_eq!(h.hooks.deliver(&d).await, DeliveryReport::AlreadyDelivered);
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let h = harness(settings(DEV));
    let started = Instant::now();
    let report = h
        .hooks
        .deliver(&delivery(
            &server.uri(),
            DEV,
            "job_429",
            WebhookFormat::Standard,
        ))
        .await;
    let elapsed = started.elapsed();
    assert_eq!(report, DeliveryReport::Delivered { attempts: 2 });
    // The backoff alone is at most 40 ms: only the Retry-After explains a second's wait.
    assert!(
        elapsed >= Duration::from_millis(950),
        "retried after {elapsed:?}"
    );
    let log = h
        .hooks
        .attempts(JobKind::Generation, "job_429")
        .await
        .unwrap();
    assert_eq!(log[0].status, Some(429));
    assert!(log[1].attempted_at - log[0].attempted_at >= TimeDelta::milliseconds(950));
}

#[tokio::test]
async fn other_4xx_answers_are_given_up_at_once_and_a_5xx_storm_after_max_attempts() {
    let server = MockServer::start().await;
    Mock::given(path("/gone"))
        .respond_with(ResponseTemplate::new(410))
        .mount(&server)
        .await;
    Mock::given(path("/down"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let h = harness(settings(DEV));
    let gone = h
        .hooks
        .deliver(&delivery(
            &format!("{}/gone", server.uri()),
            DEV,
            "job_gone",
            WebhookFormat::Standard,
        ))
        .await;
    assert!(
        matches!(gone, DeliveryReport::GaveUp { attempts: 1, .. }),
        "{gone:?}"
    );
    let down = h
        .hooks
        .deliver(&delivery(
            &format!("{}/down", server.uri()),
            DEV,
            "job_down",
            WebhookFormat::Standard,
        ))
        .await;
    assert!(
        matches!(down, DeliveryReport::GaveUp { attempts: 4, .. }),
        "{down:?}"
    );
    let received = server.received_requests().await.unwrap();
    assert_eq!(
        received.iter().filter(|r| r.url.path() == "/gone").count(),
        1
    );
    assert_eq!(
        received.iter().filter(|r| r.url.path() == "/down").count(),
        4
    );
    let log = h
        .hooks
        .attempts(JobKind::Generation, "job_down")
        .await
        .unwrap();
    let outcomes: Vec<_> = log.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        [
            DeliveryOutcome::Retrying,
            DeliveryOutcome::Retrying,
            DeliveryOutcome::Retrying,
            DeliveryOutcome::GaveUp
        ]
    );
    assert!(log.iter().all(|a| a.status == Some(503)));
}

#[tokio::test]
async fn timeouts_are_retried_within_the_total_budget() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let h = harness(WebhookSettings {
        attempt_timeout: Duration::from_millis(300),
        total_budget: Duration::from_millis(1500),
        max_attempts: 50,
        ..settings(DEV)
    });
    let started = Instant::now();
    let report = h
        .hooks
        .deliver(&delivery(
            &server.uri(),
            DEV,
            "job_slow",
            WebhookFormat::Standard,
        ))
        .await;
    let elapsed = started.elapsed();
    assert!(
        matches!(report, DeliveryReport::GaveUp { .. }),
        "{report:?}"
    );
    assert!(
        elapsed < Duration::from_millis(2500),
        "the delivery took {elapsed:?}, past its budget"
    );
    let log = h
        .hooks
        .attempts(JobKind::Generation, "job_slow")
        .await
        .unwrap();
    assert!(log.len() >= 2, "timeouts are retried: {log:?}");
    assert!(log.iter().all(|a| a.status.is_none()
        && a.error.as_deref().is_some_and(|e| e.contains("no answer"))
        && a.duration_ms < 1000));
    assert_eq!(log.last().unwrap().outcome, DeliveryOutcome::GaveUp);
}

#[tokio::test]
async fn private_loopback_and_link_local_targets_are_refused() {
    // By their URL, before anything is resolved.
    for url in [
        "http://127.0.0.1:9/hook",
        "https://127.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.8/hook",
        "https://10.255.1.1/hook",
        "https://192.168.1.20/hook",
        "https://[::1]/hook",
        "https://[fc00::1]/hook",
        "https://[fd12:3456::1]/hook",
        "https://[fe80::1]/hook",
        "https://[::ffff:10.0.0.8]/hook",
    ] {
        assert!(WebhookUrl::parse(url, STRICT).is_err(), "{url} accepted");
    }
    // A hostname is judged by what it resolves to: localhost is loopback.
    let named =
        WebhookUrl::parse("https://localhost:9/hook", STRICT).expect("a name passes the URL rules");
    match guard::check_target(&named, STRICT).await {
        Err(TargetRefused::Forbidden { why, .. }) => assert_eq!(why, "loopback"),
        other => panic!("localhost must be refused, got {other:?}"),
    }
    // The development flag admits loopback, and nothing else.
    assert!(guard::check_target(&named, DEV).await.is_ok());
    for host in ["10.1.2.3", "192.168.0.1", "169.254.169.254", "fc00::1"] {
        assert!(
            guard::resolve_checked(host, true).await.is_err(),
            "{host} admitted"
        );
    }
}

#[tokio::test]
async fn a_refused_target_is_never_contacted_even_at_connection_time() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let port = server.address().port();
    // A stack without the development flag, given a name that resolves to loopback: the
    // delivery gives up, recorded, and the receiver hears nothing.
    let h = harness(settings(STRICT));
    let d = Delivery {
        target: WebhookTarget {
            url: WebhookUrl::parse(&format!("https://localhost:{port}/hook"), STRICT).unwrap(),
            format: WebhookFormat::Standard,
        },
        ..delivery(&server.uri(), DEV, "job_ssrf", WebhookFormat::Standard)
    };
    let report = h.hooks.deliver(&d).await;
    assert!(
        matches!(&report, DeliveryReport::GaveUp { attempts: 1, error } if error.contains("loopback")),
        "{report:?}"
    );
    // A URL stored while loopback was allowed is checked again under today's rules.
    let stored = delivery(&server.uri(), DEV, "job_stored", WebhookFormat::Standard);
    assert!(matches!(
        h.hooks.deliver(&stored).await,
        DeliveryReport::GaveUp { .. }
    ));
    assert!(server.received_requests().await.unwrap().is_empty());
    let log = h
        .hooks
        .attempts(JobKind::Generation, "job_ssrf")
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].outcome, DeliveryOutcome::GaveUp);

    // The client's resolver is the guard itself: whatever a pre-check saw, a connection to a
    // loopback answer is refused, and the refusal is what the error carries.
    let client = reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver {
            allow_loopback: false,
        }))
        .no_proxy()
        .build()
        .unwrap();
    let err = client
        .post(format!("http://localhost:{port}/hook"))
        .send()
        .await
        .expect_err("a loopback answer must not be connected to");
    assert!(
        matches!(
            guard::refusal_in(&err),
            Some(TargetRefused::Forbidden { .. })
        ),
        "{err:?}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn during_a_rotation_both_secrets_verify_and_after_it_only_the_new_one() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let h = harness(settings(DEV));
    let old = h.hooks.tenant_secrets("acme").await.unwrap();
    let rotated = h.hooks.rotate("acme").await.unwrap();
    assert_ne!(rotated.current, old.current);
    assert_eq!(rotated.previous[0].secret, old.current);
    let overlap = rotated.previous[0].expires_at - rotated.rotated_at.unwrap();
    assert_eq!(overlap, TimeDelta::hours(24));

    let d = delivery(&server.uri(), DEV, "job_rotated", WebhookFormat::Standard);
    assert!(matches!(
        h.hooks.deliver(&d).await,
        DeliveryReport::Delivered { .. }
    ));
    let first = &server.received_requests().await.unwrap()[0];
    assert_eq!(header(first, "webhook-signature").split(' ').count(), 2);
    assert!(
        verifies(old.current.expose(), first),
        "the old secret verifies"
    );
    assert!(
        verifies(rotated.current.expose(), first),
        "the new secret verifies"
    );

    // Once the overlap has passed, the old secret signs nothing.
    let mut expired = h.store.get_secrets("acme").await.unwrap().unwrap();
    expired.previous[0].expires_at = Utc::now() - TimeDelta::seconds(1);
    h.store.save_secrets(&expired).await.unwrap();
    let d = delivery(&server.uri(), DEV, "job_after", WebhookFormat::Standard);
    assert!(matches!(
        h.hooks.deliver(&d).await,
        DeliveryReport::Delivered { .. }
    ));
    let second = &server.received_requests().await.unwrap()[1];
    assert!(!verifies(old.current.expose(), second));
    assert!(verifies(rotated.current.expose(), second));
}

#[tokio::test]
async fn the_slack_format_carries_a_text_and_the_payload_and_is_signed_too() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    let h = harness(settings(DEV));
    let d = delivery(&server.uri(), DEV, "job_slack", WebhookFormat::Slack);
    assert!(matches!(
        h.hooks.deliver(&d).await,
        DeliveryReport::Delivered { attempts: 1 }
    ));
    let received = &server.received_requests().await.unwrap()[0];
    let body: serde_json::Value = serde_json::from_slice(&received.body).unwrap();
    assert_eq!(
        body["text"],
        format!(
            "vidpipe: generation job_slack failed: {}: the plan did not fit",
            names::PLAN_FAILED
        )
    );
    let echoed: WebhookPayload = serde_json::from_value(body["vidpipe"].clone()).unwrap();
    assert_eq!(echoed, d.payload);
    let secret = h.hooks.tenant_secrets("acme").await.unwrap().current;
    assert!(verifies(secret.expose(), received));
    let log = h
        .hooks
        .attempts(JobKind::Generation, "job_slack")
        .await
        .unwrap();
    assert_eq!(log[0].format, WebhookFormat::Slack);
}

//! Signed webhooks, for generations and processing jobs alike: each job that ends tells its
//! target (the request's or upload's `webhook_url`, else the deployment's default) with one
//! delivery signed per Standard Webhooks under the tenant's `whsec_` secrets.
//!
//! | module | what lives there |
//! |---|---|
//! | [`guard`] | the SSRF guard: public `https` targets only, checked after DNS, connected to as checked |
//! | [`sign`] | the `webhook-signature` header |
//! | [`payload`] | the payload of a generation or processing job |
//!
//! Delivery ([`Webhooks::deliver`]):
//! - the `webhook-id` comes from the job, the run and the event, so every attempt and every
//!   duplicate invocation of the step sends the same id, and a delivery the log already shows
//!   as delivered is not sent again;
//! - 5xx, 429 (after its `Retry-After`), timeouts and connection failures are retried with
//!   exponential backoff and jitter; any other answer but 2xx ends the delivery;
//! - attempts and the total time are bounded, so the step that delivers never hangs, and a
//!   delivery that fails never fails the job: it is logged and recorded, never raised;
//! - every attempt is recorded in the [`DeliveryLog`] (time, status or error, duration).

pub mod guard;
pub mod payload;
pub mod sign;

use crate::processing::Manifest;
use chrono::Utc;
use ring::rand::SecureRandom;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vidpipe_domain::job::Job;
use vidpipe_domain::ports::{BlobStore, DeliveryLog, StoreError, UploadStore, WebhookSecretStore};
use vidpipe_domain::processing::ProcessJob;
use vidpipe_domain::upload::UploadId;
use vidpipe_domain::webhook::{
    DeliveryAttempt, DeliveryOutcome, JobKind, RotationRefused, SECRET_BYTES, TenantSecrets,
    UrlRules, WebhookFormat, WebhookPayload, WebhookSecret, WebhookUrl, webhook_id,
};

/// Where a delivery goes and how its body is shaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    pub url: WebhookUrl,
    pub format: WebhookFormat,
}

/// A deployment's webhook settings.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Told of every job whose request or upload names no `webhook_url`.
    pub default_target: Option<WebhookTarget>,
    /// Whether `http` to loopback is allowed (a development stack, tests).
    pub url_rules: UrlRules,
    /// Attempts per delivery, first included.
    pub max_attempts: u32,
    /// The most one attempt may take, connection to answer.
    pub attempt_timeout: Duration,
    /// The most a whole delivery may take, waits included: the bound on the step that sends it.
    pub total_budget: Duration,
    /// The first retry's wait; it doubles per attempt up to `backoff_max`, then gets jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long the payload's output links work.
    pub link_ttl: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            default_target: None,
            url_rules: UrlRules::default(),
            max_attempts: 5,
            attempt_timeout: Duration::from_secs(10),
            // Half the shortest timeout of a task that delivers (generation's RecordFailure,
            // 60 s), leaving the rest for the step's own work.
            total_budget: Duration::from_secs(30),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(20),
            link_ttl: Duration::from_secs(24 * 60 * 60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rotation(#[from] RotationRefused),
    #[error("no randomness for a new webhook secret")]
    Random,
    #[error("cannot build the webhook client: {0}")]
    Client(String),
}

/// One event of one job to deliver.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub tenant: String,
    pub kind: JobKind,
    pub job_id: String,
    /// Which run of the job: 0 for generations; a processing job's retry count.
    pub run: u32,
    pub target: WebhookTarget,
    pub payload: WebhookPayload,
}

/// What a delivery came to (also in the delivery log, attempt by attempt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryReport {
    Delivered {
        attempts: u32,
    },
    /// The log shows this `webhook-id` delivered already: nothing was sent.
    AlreadyDelivered,
    GaveUp {
        attempts: u32,
        error: String,
    },
}

/// Secrets, the log, the settings and the guarded HTTP client, built once per process.
pub struct Webhooks {
    pub secrets: Arc<dyn WebhookSecretStore>,
    pub log: Arc<dyn DeliveryLog>,
    pub settings: WebhookSettings,
    client: std::sync::OnceLock<reqwest::Client>,
    random: ring::rand::SystemRandom,
}

/// How many times a secret write is retried after losing to a concurrent one.
const SECRET_ATTEMPTS: u32 = 4;

impl Webhooks {
    pub fn new(
        secrets: Arc<dyn WebhookSecretStore>,
        log: Arc<dyn DeliveryLog>,
        settings: WebhookSettings,
    ) -> Result<Self, WebhookError> {
        Ok(Self {
            secrets,
            log,
            settings,
            client: std::sync::OnceLock::new(),
            random: ring::rand::SystemRandom::new(),
        })
    }

    /// The guarded HTTP client, built on first delivery: the API's routes only read and rotate
    /// secrets, and never pay for (nor link) a client they do not use.
    fn client(&self) -> Result<&reqwest::Client, WebhookError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = reqwest::Client::builder()
            // Every name is resolved and checked by the guard, and the connection goes to what
            // it checked; a proxy would resolve for us, so none is used.
            .dns_resolver(Arc::new(guard::GuardedResolver {
                allow_loopback: self.settings.url_rules.allow_loopback,
            }))
            .no_proxy()
            // A redirect could lead anywhere; a receiver that moved says so with its 3xx.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.settings.attempt_timeout)
            .user_agent("vidpipe-webhooks/1")
            .build()
            .map_err(|e| WebhookError::Client(e.to_string()))?;
        Ok(self.client.get_or_init(|| client))
    }

    fn fresh_secret(&self) -> Result<WebhookSecret, WebhookError> {
        let mut key = [0u8; SECRET_BYTES];
        self.random
            .fill(&mut key)
            .map_err(|_| WebhookError::Random)?;
        Ok(WebhookSecret::from_key(&key))
    }

    /// The tenant's secrets, made on first use. Two first uses at once agree: the loser of the
    /// versioned write reads the winner's.
    pub async fn tenant_secrets(&self, tenant: &str) -> Result<TenantSecrets, WebhookError> {
        for _ in 0..SECRET_ATTEMPTS {
            if let Some(found) = self.secrets.get_secrets(tenant).await? {
                return Ok(found);
            }
            let fresh = TenantSecrets::new(tenant, self.fresh_secret()?, Utc::now());
            match self.secrets.save_secrets(&fresh).await {
                Ok(saved) => return Ok(saved),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict(format!("webhook secrets of {tenant} keep changing")).into())
    }

    /// Rotates the tenant's secret: a new one signs from now on, and the old one signs too for
    /// the next 24 hours.
    pub async fn rotate(&self, tenant: &str) -> Result<TenantSecrets, WebhookError> {
        for _ in 0..SECRET_ATTEMPTS {
            let current = self.tenant_secrets(tenant).await?;
            let next = current.rotate(self.fresh_secret()?, Utc::now())?;
            match self.secrets.save_secrets(&next).await {
                Ok(saved) => return Ok(saved),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict(format!("webhook secrets of {tenant} keep changing")).into())
    }

    /// Where a job with `url` (its request's or upload's) is reported: that URL in the standard
    /// format, else the deployment's default, else nowhere.
    pub fn target_for(&self, url: Option<&WebhookUrl>) -> Option<WebhookTarget> {
        match url {
            Some(url) => Some(WebhookTarget {
                url: url.clone(),
                format: WebhookFormat::Standard,
            }),
            None => self.settings.default_target.clone(),
        }
    }

    /// Tells a generation's target that it completed or failed. Never fails: the outcome is in
    /// the log and the trace, and `None` says there was nothing to tell (no target, or a job
    /// that has not ended so).
    pub async fn tell_generation(
        &self,
        blobs: &dyn BlobStore,
        job: &Job,
    ) -> Option<DeliveryReport> {
        let target = self.target_for(job.request.webhook_url.as_ref())?;
        let payload = payload::generation_payload(job, blobs, self.settings.link_ttl).await?;
        let delivery = Delivery {
            tenant: job.owner.clone(),
            kind: JobKind::Generation,
            job_id: job.id.to_string(),
            run: 0,
            target,
            payload,
        };
        Some(self.deliver(&delivery).await)
    }

    /// Tells a processing job's target (its upload's `webhook_url`, else the default) that it
    /// completed or failed. A record outside `raw/{tenant}/` has no tenant to sign for and is
    /// not told.
    pub async fn tell_processing(
        &self,
        blobs: &dyn BlobStore,
        uploads: Option<&dyn UploadStore>,
        job: &ProcessJob,
        manifest: Option<&Manifest>,
    ) -> Option<DeliveryReport> {
        let tenant = job.owner()?;
        let announced = match uploads {
            Some(store) => match store.get_upload(&UploadId::for_key(&job.source.key)).await {
                Ok(record) => record.and_then(|r| r.webhook_url),
                Err(e) => {
                    tracing::warn!(source_id = %job.id, error = %e, "cannot read the upload's webhook URL; using the default");
                    None
                }
            },
            None => None,
        };
        let target = self.target_for(announced.as_ref())?;
        let payload =
            payload::processing_payload(job, manifest, blobs, self.settings.link_ttl).await?;
        let delivery = Delivery {
            tenant: tenant.to_owned(),
            kind: JobKind::Processing,
            job_id: job.id.clone(),
            run: job.retries,
            target,
            payload,
        };
        Some(self.deliver(&delivery).await)
    }

    /// Every recorded attempt of a job's deliveries, oldest first.
    pub async fn attempts(
        &self,
        kind: JobKind,
        job_id: &str,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        self.log.attempts(kind, job_id).await
    }

    /// Delivers one event: signed, retried within the settings' bounds, every attempt logged.
    pub async fn deliver(&self, d: &Delivery) -> DeliveryReport {
        let id = webhook_id(d.kind, &d.job_id, d.run, d.payload.event);
        let earlier: Vec<DeliveryAttempt> = match self.log.attempts(d.kind, &d.job_id).await {
            Ok(all) => all.into_iter().filter(|a| a.webhook_id == id).collect(),
            Err(e) => {
                // Better a possible duplicate (receivers de-duplicate on the id) than silence.
                tracing::warn!(webhook_id = %id, error = %e, "cannot read the delivery log");
                Vec::new()
            }
        };
        if earlier
            .iter()
            .any(|a| a.outcome == DeliveryOutcome::Delivered)
        {
            tracing::info!(webhook_id = %id, job = %d.job_id, "webhook already delivered");
            return DeliveryReport::AlreadyDelivered;
        }
        let mut attempt = Attempt {
            webhooks: self,
            d,
            id: &id,
            number: earlier.iter().map(|a| a.attempt).max().unwrap_or(0),
        };
        let secrets = match self.tenant_secrets(&d.tenant).await {
            Ok(s) => s,
            Err(e) => {
                let error = format!("no signing secret: {e}");
                attempt
                    .record(Instant::now(), None, &error, DeliveryOutcome::GaveUp)
                    .await;
                return DeliveryReport::GaveUp { attempts: 0, error };
            }
        };
        let body = match body(d) {
            Ok(b) => b,
            Err(e) => {
                let error = format!("cannot encode the payload: {e}");
                attempt
                    .record(Instant::now(), None, &error, DeliveryOutcome::GaveUp)
                    .await;
                return DeliveryReport::GaveUp { attempts: 0, error };
            }
        };
        let s = &self.settings;
        let deadline = Instant::now() + s.total_budget;
        let mut tries = 0;
        loop {
            tries += 1;
            let started = Instant::now();
            let remaining = deadline.saturating_duration_since(started);
            // The lookup too is bounded: a resolver that hangs must not hold the step.
            let checked = tokio::time::timeout(
                remaining.min(s.attempt_timeout),
                guard::check_target(&d.target.url, s.url_rules),
            )
            .await
            .unwrap_or_else(|_| {
                Err(guard::TargetRefused::Unresolvable {
                    host: d.target.url.origin(),
                    reason: "the lookup took too long".into(),
                })
            });
            let verdict = match checked {
                Err(refused) if refused.is_passing() => Verdict::Retry {
                    status: None,
                    error: refused.to_string(),
                    after: None,
                },
                Err(refused) => Verdict::Stop {
                    status: None,
                    error: refused.to_string(),
                },
                Ok(_) => {
                    // What the lookup left of the budget.
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    self.send(
                        &id,
                        &body,
                        &secrets,
                        &d.target,
                        remaining.min(s.attempt_timeout),
                    )
                    .await
                }
            };
            let (status, error, outcome, wait) = match verdict {
                Verdict::Delivered { status } => (
                    Some(status),
                    String::new(),
                    DeliveryOutcome::Delivered,
                    None,
                ),
                Verdict::Stop { status, error } => (status, error, DeliveryOutcome::GaveUp, None),
                Verdict::Retry {
                    status,
                    error,
                    after,
                } => {
                    let wait = after.unwrap_or_else(|| self.backoff(tries));
                    if tries >= s.max_attempts {
                        let e = format!("{error}; gave up after {tries} attempts");
                        (status, e, DeliveryOutcome::GaveUp, None)
                    } else if Instant::now() + wait >= deadline {
                        let e = format!(
                            "{error}; the next attempt (in {:.1} s) would pass the {} s budget",
                            wait.as_secs_f64(),
                            s.total_budget.as_secs()
                        );
                        (status, e, DeliveryOutcome::GaveUp, None)
                    } else {
                        (status, error, DeliveryOutcome::Retrying, Some(wait))
                    }
                }
            };
            attempt.record(started, status, &error, outcome).await;
            match outcome {
                DeliveryOutcome::Delivered => {
                    tracing::info!(webhook_id = %id, job = %d.job_id, target = %d.target.url.origin(), attempts = tries, "webhook delivered");
                    return DeliveryReport::Delivered { attempts: tries };
                }
                DeliveryOutcome::GaveUp => {
                    tracing::warn!(webhook_id = %id, job = %d.job_id, target = %d.target.url.origin(), attempts = tries, %error, "webhook not delivered");
                    return DeliveryReport::GaveUp {
                        attempts: tries,
                        error,
                    };
                }
                DeliveryOutcome::Retrying => {
                    tokio::time::sleep(wait.unwrap_or_default()).await;
                }
            }
        }
    }

    /// One signed POST, judged.
    async fn send(
        &self,
        id: &str,
        body: &[u8],
        secrets: &TenantSecrets,
        target: &WebhookTarget,
        timeout: Duration,
    ) -> Verdict {
        let now = Utc::now();
        let timestamp = now.timestamp();
        let signature = sign::signature_header(id, timestamp, body, &secrets.signing_secrets(now));
        let client = match self.client() {
            Ok(c) => c,
            Err(e) => {
                return Verdict::Stop {
                    status: None,
                    error: e.to_string(),
                };
            }
        };
        let request = client
            .post(target.url.as_str())
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_vec())
            .timeout(timeout)
            .send();
        let no_answer = || Verdict::Retry {
            status: None,
            error: format!("no answer within {:.1} s", timeout.as_secs_f64()),
            after: None,
        };
        let response = match tokio::time::timeout(timeout, request).await {
            Err(_) => return no_answer(),
            Ok(Err(e)) if e.is_timeout() => return no_answer(),
            Ok(Err(e)) => {
                if let Some(refused) = guard::refusal_in(&e) {
                    return Verdict::Stop {
                        status: None,
                        error: refused.to_string(),
                    };
                }
                let what = if e.is_connect() {
                    "no connection"
                } else {
                    "request failed"
                };
                // Without the URL: its path may be the receiver's credential.
                return Verdict::Retry {
                    status: None,
                    error: format!("{what}: {}", e.without_url()),
                    after: None,
                };
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        let code = status.as_u16();
        if status.is_success() {
            Verdict::Delivered { status: code }
        } else if code == 429 || status.is_server_error() {
            Verdict::Retry {
                status: Some(code),
                error: format!("the receiver answered {code}"),
                after: retry_after(response.headers()),
            }
        } else {
            Verdict::Stop {
                status: Some(code),
                error: format!("the receiver answered {code}; not retried"),
            }
        }
    }

    /// The wait before retry `tries + 1`: doubling from the base, capped, then between half
    /// and all of that at random, so receivers that failed together are not retried together.
    fn backoff(&self, tries: u32) -> Duration {
        let s = &self.settings;
        let doubled = s
            .backoff_base
            .saturating_mul(1u32 << tries.saturating_sub(1).min(20))
            .min(s.backoff_max);
        let mut bytes = [0u8; 8];
        let fraction = match self.random.fill(&mut bytes) {
            Ok(()) => u64::from_le_bytes(bytes) as f64 / u64::MAX as f64,
            Err(_) => 0.5,
        };
        doubled.mul_f64(0.5 + 0.5 * fraction)
    }
}

enum Verdict {
    Delivered {
        status: u16,
    },
    Retry {
        status: Option<u16>,
        error: String,
        after: Option<Duration>,
    },
    Stop {
        status: Option<u16>,
        error: String,
    },
}

/// Records the attempts of one delivery, numbering them after the earlier invocations' own.
struct Attempt<'a> {
    webhooks: &'a Webhooks,
    d: &'a Delivery,
    id: &'a str,
    number: u32,
}

impl Attempt<'_> {
    async fn record(
        &mut self,
        started: Instant,
        status: Option<u16>,
        error: &str,
        outcome: DeliveryOutcome,
    ) {
        self.number += 1;
        let elapsed = started.elapsed();
        let record = DeliveryAttempt {
            id: format!("att_{}", uuid::Uuid::now_v7().simple()),
            kind: self.d.kind,
            job_id: self.d.job_id.clone(),
            tenant: self.d.tenant.clone(),
            webhook_id: self.id.to_owned(),
            event: self.d.payload.event,
            target: self.d.target.url.origin(),
            format: self.d.target.format,
            attempt: self.number,
            attempted_at: Utc::now() - chrono::TimeDelta::from_std(elapsed).unwrap_or_default(),
            duration_ms: elapsed.as_millis() as u64,
            status,
            error: (!error.is_empty()).then(|| error.to_owned()),
            outcome,
        };
        if let Err(e) = self.webhooks.log.record_attempt(&record).await {
            tracing::warn!(webhook_id = %self.id, error = %e, "cannot record a webhook attempt");
        }
    }
}

/// The body in the target's format.
fn body(d: &Delivery) -> Result<Vec<u8>, serde_json::Error> {
    match d.target.format {
        WebhookFormat::Standard => serde_json::to_vec(&d.payload),
        WebhookFormat::Slack => serde_json::to_vec(&serde_json::json!({
            "text": d.payload.summary(),
            "vidpipe": d.payload,
        })),
    }
}

/// `Retry-After` as seconds or an HTTP date; `None` when absent or unreadable.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let raw = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = raw.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    (at.with_timezone(&Utc) - Utc::now()).to_std().ok()
}

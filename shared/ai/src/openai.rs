//! OpenAI-compatible HTTP clients (OpenAI itself, Ollama, vLLM, LocalAI): a [`Planner`] that asks
//! a chat model for a structured plan, and a [`ClipProvider`] that makes a still per scene with
//! an image model. Both speak only the common subset of the API, so one base URL switches vendor.

use base64::Engine as _;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Client, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use vidpipe_domain::GenerationRequest;
use vidpipe_domain::media::ClipSpec;
use vidpipe_domain::plan::{Plan, PlanDraft, PlanError};
use vidpipe_domain::ports::{
    ClipMedia, ClipProgress, ClipProvider, MediaError, Planner, ProviderCost, ProviderError,
};

pub const ENV_BASE_URL: &str = "OPENAI_BASE_URL";
pub const ENV_API_KEY: &str = "OPENAI_API_KEY";
pub const ENV_CHAT_MODEL: &str = "VIDPIPE_OPENAI_MODEL";
pub const ENV_IMAGE_MODEL: &str = "VIDPIPE_OPENAI_IMAGE_MODEL";
pub const ENV_IMAGE_PRICE: &str = "VIDPIPE_OPENAI_IMAGE_PRICE";
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// Server messages are quoted in errors; a proxy's HTML page should not become a 50 kB reason.
const MESSAGE_MAX_CHARS: usize = 300;

/// The bearer token (see [`crate::secret::Secret`]).
pub type ApiKey = crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenAiConfigError {
    #[error("{var} is not set")]
    Missing { var: &'static str },
    #[error("{var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
}

/// Where the OpenAI-compatible server is and what to ask it for. Models are optional here because
/// a deployment may use only the planner or only the images; each client's constructor names the
/// variable it lacks.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiConfig {
    /// Without a trailing slash, e.g. `http://127.0.0.1:11434/v1` for Ollama.
    pub base_url: String,
    /// Local servers need none; then no `Authorization` header is sent at all.
    pub api_key: Option<ApiKey>,
    pub chat_model: Option<String>,
    pub image_model: Option<String>,
    /// USD per generated image, reported as the clip's cost.
    pub image_price_usd: Option<f64>,
}

impl OpenAiConfig {
    /// Reads the `OPENAI_*` and `VIDPIPE_OPENAI_*` variables through `lookup` (pass
    /// `|k| std::env::var(k).ok()` in production). Empty values count as unset, as shells and
    /// templates often export a variable with nothing in it.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, OpenAiConfigError> {
        let get = |var: &str| {
            lookup(var)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let base_url = match get(ENV_BASE_URL) {
            None => DEFAULT_BASE_URL.to_owned(),
            Some(url) => {
                let parsed = reqwest::Url::parse(&url).map_err(|e| OpenAiConfigError::Invalid {
                    var: ENV_BASE_URL,
                    reason: e.to_string(),
                })?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(OpenAiConfigError::Invalid {
                        var: ENV_BASE_URL,
                        reason: format!(
                            "must be an http or https URL (got scheme {})",
                            parsed.scheme()
                        ),
                    });
                }
                url.trim_end_matches('/').to_owned()
            }
        };
        let image_price_usd = match get(ENV_IMAGE_PRICE) {
            None => None,
            Some(raw) => match raw.parse::<f64>() {
                Ok(p) if p.is_finite() && p >= 0.0 => Some(p),
                _ => {
                    return Err(OpenAiConfigError::Invalid {
                        var: ENV_IMAGE_PRICE,
                        reason: format!("must be a non-negative number of USD (got {raw:?})"),
                    });
                }
            },
        };
        Ok(Self {
            base_url,
            api_key: get(ENV_API_KEY).map(ApiKey::new),
            chat_model: get(ENV_CHAT_MODEL),
            image_model: get(ENV_IMAGE_MODEL),
            image_price_usd,
        })
    }
}

/// How often and how patiently the planner retries a passing failure (429, 5xx, no connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// Wait before the first retry; it doubles for each later one.
    pub backoff: Duration,
    /// Ceiling on a server's `Retry-After`, so one answer cannot park a planning step for long.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 2,
            backoff: Duration::from_millis(500),
            max_retry_after: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// Runs `call` until it succeeds, fails for good, or the retries are spent; passing failures
    /// (no answer, 5xx, a 429 that is not an exhausted quota) wait out the server's hint or a
    /// doubling backoff in between. `adapter` and `what` name the call in the warning logged.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        adapter: &str,
        what: &str,
        mut call: F,
    ) -> Result<T, GaveUp>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, CallError>>,
    {
        let attempts = self.retries + 1;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match call().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let Some(hint) = error.retry_hint() else {
                return Err(GaveUp {
                    error,
                    attempts: attempt,
                    exhausted: false,
                });
            };
            if attempt >= attempts {
                return Err(GaveUp {
                    error,
                    attempts: attempt,
                    exhausted: true,
                });
            }
            let backoff = self.backoff * 2u32.saturating_pow(attempt - 1);
            let delay = hint.map_or(backoff, |h| h.min(self.max_retry_after));
            tracing::warn!(
                adapter,
                attempt,
                delay_ms = delay.as_millis() as u64,
                reason = %error.describe(),
                "retrying the {what}"
            );
            tokio::time::sleep(delay).await;
        }
    }
}

/// How a retried call ended without success.
#[derive(Debug)]
pub(crate) struct GaveUp {
    pub(crate) error: CallError,
    pub(crate) attempts: u32,
    /// The failure was a passing one, and every retry was spent on it.
    pub(crate) exhausted: bool,
}

impl GaveUp {
    /// The failure, with the attempts spent when it was retried.
    pub(crate) fn describe(&self) -> String {
        if self.exhausted {
            format!(
                "{} (after {} attempts)",
                self.error.describe(),
                self.attempts
            )
        } else {
            self.error.describe()
        }
    }
}

/// What one HTTP exchange came to, before each client maps it to its own port's errors.
#[derive(Debug)]
pub(crate) enum CallError {
    /// No answer: connect failure, timeout, broken body.
    Transport(String),
    /// A 2xx answer that is not JSON: the server is not what the base URL promised.
    BadBody(String),
    /// An answer other than 2xx, with the server's error fields.
    Status {
        status: StatusCode,
        retry_after: Option<Duration>,
        code: Option<String>,
        message: String,
    },
}

impl CallError {
    pub(crate) fn describe(&self) -> String {
        match self {
            CallError::Transport(m) | CallError::BadBody(m) => m.clone(),
            CallError::Status {
                status,
                code,
                message,
                ..
            } => match code {
                Some(c) => format!("HTTP {}: {c}: {message}", status.as_u16()),
                None => format!("HTTP {}: {message}", status.as_u16()),
            },
        }
    }

    /// OpenAI answers 429 both for "slow down" and for an exhausted quota; only the first passes.
    pub(crate) fn is_quota(&self) -> bool {
        matches!(self, CallError::Status { code: Some(c), .. } if c == "insufficient_quota")
    }

    /// `Some` when asking again may succeed, with the server's wait hint if it gave one.
    pub(crate) fn retry_hint(&self) -> Option<Option<Duration>> {
        match self {
            CallError::BadBody(_) => None,
            CallError::Transport(_) => Some(None),
            CallError::Status { status, .. } if status.is_server_error() => Some(None),
            CallError::Status {
                status,
                retry_after,
                ..
            } if *status == StatusCode::TOO_MANY_REQUESTS && !self.is_quota() => Some(*retry_after),
            // 4xx other than a rate limit (bad key, unknown model, schema refused) and an
            // exhausted quota stay the same however often they are asked.
            CallError::Status { .. } => None,
        }
    }
}

/// The HTTP plumbing every client shares: base URL, key, and redaction of the key from anything
/// the server says back (a misconfigured proxy may echo the request's headers).
#[derive(Clone)]
pub(crate) struct Http {
    client: Client,
    base_url: String,
    api_key: Option<ApiKey>,
}

impl fmt::Debug for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .finish()
    }
}

impl Http {
    pub(crate) fn new(config: &OpenAiConfig, timeout: Duration) -> Result<Self, OpenAiConfigError> {
        let client = Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| OpenAiConfigError::HttpClient(e.to_string()))?;
        Ok(Self {
            client,
            base_url: config.base_url.clone(),
            api_key: config.api_key.clone(),
        })
    }

    /// Removes the key, then truncates: in that order, so a cut can never leave part of the key.
    fn redact(&self, text: &str) -> String {
        let clean = match &self.api_key {
            Some(key) if !key.expose().is_empty() => text.replace(key.expose(), "***"),
            _ => text.to_owned(),
        };
        clean.chars().take(MESSAGE_MAX_CHARS).collect()
    }

    async fn post_json(&self, endpoint: &str, body: &Value) -> Result<Value, CallError> {
        let bytes = self.post_bytes(endpoint, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            CallError::BadBody(format!(
                "{endpoint} answered 2xx with a body that is not JSON: {e}"
            ))
        })
    }

    /// POSTs `body` as JSON and returns the 2xx answer's bytes as they came.
    pub(crate) async fn post_bytes(
        &self,
        endpoint: &str,
        body: &Value,
    ) -> Result<Vec<u8>, CallError> {
        let url = format!("{}/{endpoint}", self.base_url);
        let mut req = self.client.post(&url).json(body);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key.expose());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| CallError::Transport(self.transport(endpoint, e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(self.status_error(resp).await);
        }
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| CallError::Transport(self.transport(endpoint, e)))
    }

    /// Downloads a URL the server handed out. The key is never sent along: such URLs are
    /// presigned links to blob storage, often on another host.
    async fn download(&self, url: &str) -> Result<Vec<u8>, CallError> {
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| CallError::Transport(self.transport("image download", e)))?;
        if !resp.status().is_success() {
            return Err(self.status_error(resp).await);
        }
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| CallError::Transport(self.transport("image download", e)))
    }

    fn transport(&self, what: &str, e: reqwest::Error) -> String {
        let kind = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "could not connect"
        } else {
            "failed"
        };
        // Without the URL: a base URL may carry credentials in its user-info part.
        self.redact(&format!("{what} {kind}: {}", e.without_url()))
    }

    async fn status_error(&self, resp: Response) -> CallError {
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let body = resp.text().await.unwrap_or_default();
        let (code, message) = error_fields(&body);
        CallError::Status {
            status,
            retry_after,
            code: code.map(|c| self.redact(&c)),
            message: self.redact(&message),
        }
    }
}

/// The server's wait hint: OpenAI's `retry-after-ms` where given, else `Retry-After` in whole or
/// fractional seconds. The HTTP-date form is not worth a date parser here: it is read as no hint.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let seconds = number("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| number("retry-after"))?;
    // `try_from` refuses negative, NaN and absurdly large hints instead of panicking on them.
    Duration::try_from_secs_f64(seconds).ok()
}

/// `error.code` (or `error.type`) and `error.message` from an OpenAI-style error body; servers
/// that answer `{"error": "text"}` or plain text are read too.
fn error_fields(body: &str) -> (Option<String>, String) {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        let text = body.trim();
        return (
            None,
            if text.is_empty() {
                "no message".into()
            } else {
                text.into()
            },
        );
    };
    let err = v.get("error").unwrap_or(&v);
    if let Some(text) = err.as_str() {
        return (None, text.to_owned());
    }
    let field = |k: &str| err.get(k).and_then(Value::as_str).map(str::to_owned);
    let code = field("code").or_else(|| field("type"));
    let message = field("message").unwrap_or_else(|| "no message".into());
    (code, message)
}

// ---------------------------------------------------------------------------------------------
// Planner

const SYSTEM_PROMPT: &str = "You plan short social videos. Split the user's prompt into exactly \
the requested number of scenes, in the prompt's order, so that every sentence of the prompt is \
covered by some scene and none is dropped or invented. For each scene give: visual_prompt, a \
self-contained description of what the camera sees (subject, setting, shot type, lighting, \
motion) written for a text-to-video model and mentioning no on-screen text; caption, a short \
on-screen caption of at most a dozen words; narration, the words a narrator says over the scene, \
taken from the prompt's own sentences for that scene; weight, a whole number from 1 to 100 giving \
the scene's length relative to the others. Answer with the JSON object only, no prose and no \
code fences.";

/// Plans with a chat model through structured output (`response_format` of type `json_schema`,
/// strict), so the server itself holds the model to the draft's shape where it can.
#[derive(Debug, Clone)]
pub struct OpenAiPlanner {
    http: Http,
    model: String,
    retry: RetryPolicy,
    temperature: Option<f64>,
}

impl OpenAiPlanner {
    pub const NAME: &'static str = "openai";
    /// Low, so the plan keeps to the prompt's own words instead of embellishing them.
    pub const DEFAULT_TEMPERATURE: f64 = 0.2;

    /// Needs `VIDPIPE_OPENAI_MODEL`.
    pub fn new(config: &OpenAiConfig) -> Result<Self, OpenAiConfigError> {
        let model = config
            .chat_model
            .clone()
            .ok_or(OpenAiConfigError::Missing {
                var: ENV_CHAT_MODEL,
            })?;
        Ok(Self {
            // A long prompt into many scenes on a local CPU model can take a minute.
            http: Http::new(config, Duration::from_secs(120))?,
            model,
            retry: RetryPolicy::default(),
            temperature: Some(Self::DEFAULT_TEMPERATURE),
        })
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// `None` leaves the field out, for reasoning models that refuse any temperature.
    pub fn with_temperature(mut self, temperature: Option<f64>) -> Self {
        self.temperature = temperature;
        self
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    fn body(&self, request: &GenerationRequest) -> Value {
        let n = u32::from(request.clip_count.get());
        let user = format!(
            "Prompt:\n{}\n\nVideo length: {} seconds. Aspect ratio: {}. Scenes: exactly {n}.",
            request.prompt.as_str(),
            request.duration_seconds,
            request.aspect_ratio,
        );
        let mut body = json!({
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": user},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "vidpipe_plan",
                    "strict": true,
                    "schema": PlanDraft::json_schema(n),
                },
            },
        });
        if let Some(t) = self.temperature {
            body["temperature"] = json!(t);
        }
        body
    }

    /// The server's answer, retried while the failure may pass.
    async fn answer(&self, body: &Value) -> Result<Value, PlanError> {
        self.retry
            .run(Self::NAME, "chat completion", || {
                self.http.post_json("chat/completions", body)
            })
            .await
            .map_err(|gave_up| match &gave_up.error {
                CallError::BadBody(_) => PlanError::Invalid(gave_up.describe()),
                _ => PlanError::Unavailable(gave_up.describe()),
            })
    }
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Vec<ChatChoice>,
}

#[derive(Deserialize)]
struct ChatChoice {
    message: Option<ChatMessage>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChatMessage {
    content: Option<String>,
    refusal: Option<String>,
}

/// The draft text in a chat answer, or why there is none.
fn plan_text(answer: Value) -> Result<String, PlanError> {
    let resp: ChatResponse = serde_json::from_value(answer)
        .map_err(|e| PlanError::Invalid(format!("not a chat completion: {e}")))?;
    let choice = resp
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| PlanError::Invalid("the answer has no choices".into()))?;
    let message = choice
        .message
        .ok_or_else(|| PlanError::Invalid("the first choice has no message".into()))?;
    if let Some(refusal) = message.refusal.filter(|r| !r.trim().is_empty()) {
        let refusal: String = refusal.chars().take(MESSAGE_MAX_CHARS).collect();
        return Err(PlanError::Invalid(format!("the model refused: {refusal}")));
    }
    if choice.finish_reason.as_deref() == Some("length") {
        return Err(PlanError::Invalid(
            "the answer was cut off at the token limit".into(),
        ));
    }
    message
        .content
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| PlanError::Invalid("the message has no content".into()))
}

#[async_trait]
impl Planner for OpenAiPlanner {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn plan(&self, request: &GenerationRequest) -> Result<Plan, PlanError> {
        let answer = self.answer(&self.body(request)).await?;
        let text = plan_text(answer)?;
        PlanDraft::parse(&text)?.into_plan(Self::NAME, request)
    }
}

// ---------------------------------------------------------------------------------------------
// Images

/// Names the size rule in the cache identity: changing [`image_size`] must change this too, so
/// stills cached under the old rule are not reused at the wrong shape.
const SIZE_RULE: &str = "size-v1";

/// The size to ask `model` for, given the spec's frame size.
///
/// - `gpt-image-*`: the supported size (1024x1024, 1536x1024, 1024x1536) whose aspect is closest
///   to the spec's;
/// - `dall-e-3*`: likewise among 1024x1024, 1792x1024, 1024x1792;
/// - `dall-e-2*`: 1024x1024, its only size that is not a thumbnail;
/// - any other model (Stable Diffusion behind LocalAI and the like): the spec's own shape, scaled
///   down (never up) so the long side is at most 1024, each side rounded to the nearest multiple
///   of 64 (at least 64), as latent-diffusion models work in 64-pixel steps.
///
/// Closeness is measured on the logarithm of width/height, so 2:1 and 1:2 are equally far from
/// square; a tie goes to the size listed first (square). The composer fits whatever comes back.
pub fn image_size(model: &str, width: u32, height: u32) -> (u32, u32) {
    const GPT_IMAGE: [(u32, u32); 3] = [(1024, 1024), (1536, 1024), (1024, 1536)];
    const DALL_E_3: [(u32, u32); 3] = [(1024, 1024), (1792, 1024), (1024, 1792)];
    let (width, height) = (width.max(1), height.max(1));
    let choices: &[(u32, u32)] = if model.starts_with("gpt-image-") {
        &GPT_IMAGE
    } else if model.starts_with("dall-e-3") {
        &DALL_E_3
    } else if model.starts_with("dall-e-2") {
        &[(1024, 1024)]
    } else {
        let scale = (1024.0 / width.max(height) as f64).min(1.0);
        let step = |v: u32| (((v as f64 * scale) / 64.0).round() as u32).max(1) * 64;
        return (step(width), step(height));
    };
    let aspect = |w: u32, h: u32| (w as f64 / h as f64).ln();
    let wanted = aspect(width, height);
    let mut best = choices[0];
    for &c in &choices[1..] {
        if (aspect(c.0, c.1) - wanted).abs() < (aspect(best.0, best.1) - wanted).abs() {
            best = c;
        }
    }
    best
}

/// Makes one still per scene with an image model; the pipeline animates it into a clip. The
/// call is synchronous: `submit` answers `Ready` or an error, never a handle.
#[derive(Debug, Clone)]
pub struct OpenAiImageProvider {
    http: Http,
    model: String,
    price_usd: Option<f64>,
}

#[derive(Deserialize)]
struct ImagesResponse {
    #[serde(default)]
    data: Vec<ImageDatum>,
}

#[derive(Deserialize)]
struct ImageDatum {
    b64_json: Option<String>,
    url: Option<String>,
}

impl OpenAiImageProvider {
    pub const NAME: &'static str = "openai-image";

    /// Needs `VIDPIPE_OPENAI_IMAGE_MODEL`.
    pub fn new(config: &OpenAiConfig) -> Result<Self, OpenAiConfigError> {
        let model = config
            .image_model
            .clone()
            .ok_or(OpenAiConfigError::Missing {
                var: ENV_IMAGE_MODEL,
            })?;
        Ok(Self {
            // High-quality gpt-image-1 stills take up to about a minute.
            http: Http::new(config, Duration::from_secs(180))?,
            model,
            price_usd: config.image_price_usd,
        })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    fn provider_error(&self, err: CallError) -> ProviderError {
        let reason = err.describe();
        match err {
            CallError::Transport(_) => ProviderError::Unavailable(reason),
            CallError::BadBody(_) => ProviderError::Failed(reason),
            CallError::Status { status, .. } if status.is_server_error() => {
                ProviderError::Unavailable(reason)
            }
            CallError::Status { status, .. }
                if status == StatusCode::TOO_MANY_REQUESTS && err.is_quota() =>
            {
                ProviderError::Failed(reason)
            }
            CallError::Status {
                status,
                retry_after,
                ..
            } if status == StatusCode::TOO_MANY_REQUESTS => {
                ProviderError::Throttled { retry_after }
            }
            CallError::Status {
                status,
                code: Some(code),
                message,
                ..
            } if status == StatusCode::BAD_REQUEST && is_safety_code(&code) => {
                ProviderError::Rejected(message)
            }
            CallError::Status { .. } => ProviderError::Failed(reason),
        }
    }

    async fn image_bytes(&self, answer: Value) -> Result<Vec<u8>, ProviderError> {
        let resp: ImagesResponse = serde_json::from_value(answer)
            .map_err(|e| ProviderError::Failed(format!("not an images answer: {e}")))?;
        let datum = resp
            .data
            .into_iter()
            .next()
            .ok_or_else(|| ProviderError::Failed("the answer holds no image".into()))?;
        if let Some(b64) = datum.b64_json {
            return base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| ProviderError::Failed(format!("b64_json does not decode: {e}")));
        }
        match datum.url {
            Some(url) => self
                .http
                .download(&url)
                .await
                .map_err(|e| self.provider_error(e)),
            None => Err(ProviderError::Failed(
                "the image has neither b64_json nor url".into(),
            )),
        }
    }
}

/// OpenAI's codes for a prompt its moderation refused; other servers say "safety" somewhere.
fn is_safety_code(code: &str) -> bool {
    let code = code.to_ascii_lowercase();
    code == "content_policy_violation"
        || code == "moderation_blocked"
        || code.contains("content_policy")
        || code.contains("safety")
}

/// PNG, JPEG and WebP are what these servers make and what the still-to-clip step reads; an
/// error page served with a 200 must not be cached as a scene.
fn looks_like_image(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n")
        || bytes.starts_with(&[0xFF, 0xD8, 0xFF])
        || (bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP")
}

/// Writes beside `dest` and renames, so a crash mid-write never leaves a truncated still that a
/// retry would take for a finished one.
pub(crate) async fn write_atomically(dest: &Path, bytes: &[u8]) -> Result<(), MediaError> {
    let mut tmp = dest.as_os_str().to_owned();
    tmp.push(".part");
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, dest).await?;
    Ok(())
}

#[async_trait]
impl ClipProvider for OpenAiImageProvider {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn cache_identity(&self) -> String {
        format!("{}|{}|{SIZE_RULE}", Self::NAME, self.model)
    }

    fn makes_stills(&self) -> bool {
        true
    }

    async fn submit(
        &self,
        spec: &ClipSpec,
        _identity: &str,
        dest: &Path,
    ) -> Result<ClipProgress, ProviderError> {
        let (w, h) = image_size(&self.model, spec.width, spec.height);
        let size = format!("{w}x{h}");
        // `response_format` is left out: gpt-image models refuse it and always answer b64_json,
        // while the others default to a URL, which is downloaded.
        let body = json!({
            "model": self.model,
            "prompt": spec.visual_prompt,
            "n": 1,
            "size": size,
        });
        let answer = self
            .http
            .post_json("images/generations", &body)
            .await
            .map_err(|e| self.provider_error(e))?;
        let bytes = self.image_bytes(answer).await?;
        if !looks_like_image(&bytes) {
            return Err(ProviderError::Failed(format!(
                "the {} bytes returned are not a PNG, JPEG or WebP image",
                bytes.len()
            )));
        }
        write_atomically(dest, &bytes).await?;
        tracing::info!(
            provider = Self::NAME,
            model = %self.model,
            size = %size,
            bytes = bytes.len(),
            scene = spec.scene_index,
            "still ready"
        );
        Ok(ClipProgress::Ready {
            media: ClipMedia::Image,
            cost: self.price_usd.map(|usd| ProviderCost {
                usd,
                basis: format!("1 image at ${usd}/image ({} {size})", self.model),
            }),
        })
    }
}

//! Replicate's HTTP API as a [`ClipProvider`]: predictions are created once per clip identity,
//! polled (or settled from a webhook), and their output copied at once, before Replicate
//! deletes it an hour later.

use crate::webhook::clip_identity_from_webhook_url;
use base64::Engine as _;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Response, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use vidpipe_domain::media::ClipSpec;
use vidpipe_domain::ports::{ClipMedia, ClipProgress, ClipProvider, ProviderCost, ProviderError};

pub const ENV_TOKEN: &str = "REPLICATE_API_TOKEN";
pub const ENV_URL: &str = "VIDPIPE_REPLICATE_URL";
pub const ENV_MODEL: &str = "VIDPIPE_REPLICATE_MODEL";
pub const ENV_INPUT: &str = "VIDPIPE_REPLICATE_INPUT";
pub const ENV_WEBHOOK_URL: &str = "VIDPIPE_REPLICATE_WEBHOOK_URL";
pub const ENV_PRICE_PER_SECOND: &str = "VIDPIPE_REPLICATE_PRICE_PER_SECOND";
pub const ENV_WAIT_SECONDS: &str = "VIDPIPE_REPLICATE_WAIT_SECONDS";
pub const ENV_CANCEL_AFTER: &str = "VIDPIPE_REPLICATE_CANCEL_AFTER";

pub const DEFAULT_BASE_URL: &str = "https://api.replicate.com";

/// The query parameter of our webhook URL that carries the clip identity, so a lost create can
/// be recognised in the prediction list and a webhook delivery tied back to its clip.
pub const WEBHOOK_IDENTITY_PARAM: &str = "vidpipe_clip";

/// How many listed predictions may be fetched one by one when the list leaves out the fields
/// needed to recognise ours; bounds the cost of the lost-create check.
const MAX_DETAIL_FETCHES: usize = 5;

/// Status codes an expired output answers with: Replicate removes outputs after an hour and the
/// delivery host then refuses or forgets the object.
const EXPIRED: [StatusCode; 3] = [
    StatusCode::NOT_FOUND,
    StatusCode::GONE,
    StatusCode::FORBIDDEN,
];

/// The bearer token (see [`crate::secret::Secret`]).
pub type ApiToken = crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is not set")]
    Missing { var: &'static str },
    #[error("{var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
}

impl ConfigError {
    fn invalid(var: &'static str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            var,
            reason: reason.into(),
        }
    }
}

/// Which model runs: an official model (addressed by name, always its latest version) or one
/// pinned version of any model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    pub owner: String,
    pub name: String,
    pub version: Option<String>,
}

impl ModelRef {
    /// `owner/name` or `owner/name:version`.
    pub fn parse(text: &str) -> Result<ModelRef, String> {
        let (path, version) = match text.split_once(':') {
            Some((path, version)) => (path, Some(version)),
            None => (text, None),
        };
        let (owner, name) = path
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not owner/name or owner/name:version"))?;
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if !segment_ok(owner) || !segment_ok(name) {
            return Err(format!("{text:?} is not owner/name or owner/name:version"));
        }
        if let Some(v) = version
            && (v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(format!("version {v:?} of {path} is not an id"));
        }
        Ok(ModelRef {
            owner: owner.to_owned(),
            name: name.to_owned(),
            version: version.map(str::to_owned),
        })
    }

    /// `owner/name`, as predictions report their `model`.
    pub fn model_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}/{}:{v}", self.owner, self.name),
            None => write!(f, "{}/{}", self.owner, self.name),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReplicateConfig {
    pub token: ApiToken,
    /// API base, without the `/v1`.
    pub base_url: String,
    pub model: ModelRef,
    /// Overrides the preset's input mapping; see [`InputMapping`].
    pub input_template: Option<Value>,
    /// Base URL of our webhook receiver; the clip identity is added to it per prediction.
    pub webhook_url: Option<String>,
    /// USD per second of `metrics.predict_time`.
    pub price_per_second: Option<f64>,
    /// `Prefer: wait=N`: how long a create may block hoping to finish at once. Zero sends none.
    pub prefer_wait: Duration,
    /// `Cancel-After`: the deadline after which Replicate stops a prediction (and its billing).
    pub cancel_after: Duration,
    /// How long to wait before polling a pending prediction.
    pub poll_after: Duration,
    /// Timeout of one API call (a create adds `prefer_wait` to it).
    pub request_timeout: Duration,
    /// Timeout of one output copy.
    pub download_timeout: Duration,
}

impl ReplicateConfig {
    pub fn new(token: impl Into<String>, model: &str) -> Result<Self, ConfigError> {
        let token = token.into();
        if token.trim().is_empty() {
            return Err(ConfigError::Missing { var: ENV_TOKEN });
        }
        Ok(ReplicateConfig {
            token: ApiToken::new(token),
            base_url: DEFAULT_BASE_URL.to_owned(),
            model: ModelRef::parse(model).map_err(|r| ConfigError::invalid(ENV_MODEL, r))?,
            input_template: None,
            webhook_url: None,
            price_per_second: None,
            prefer_wait: Duration::from_secs(5),
            cancel_after: Duration::from_secs(15 * 60),
            poll_after: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            download_timeout: Duration::from_secs(600),
        })
    }

    /// Reads the `REPLICATE_*`/`VIDPIPE_REPLICATE_*` variables through `lookup` (the process
    /// environment in production, a map in tests). Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var: &str| lookup(var).filter(|v| !v.trim().is_empty());
        let token = get(ENV_TOKEN).ok_or(ConfigError::Missing { var: ENV_TOKEN })?;
        let model = get(ENV_MODEL).ok_or(ConfigError::Missing { var: ENV_MODEL })?;
        let mut config = ReplicateConfig::new(token, model.trim())?;
        if let Some(url) = get(ENV_URL) {
            config.base_url = checked_base_url(ENV_URL, &url)?;
        }
        if let Some(text) = get(ENV_INPUT) {
            let template: Value = serde_json::from_str(&text)
                .map_err(|e| ConfigError::invalid(ENV_INPUT, format!("not JSON: {e}")))?;
            config.input_template = Some(template);
        }
        if let Some(url) = get(ENV_WEBHOOK_URL) {
            config.webhook_url = Some(checked_base_url(ENV_WEBHOOK_URL, &url)?);
        }
        if let Some(price) = get(ENV_PRICE_PER_SECOND) {
            let usd: f64 = price.trim().parse().map_err(|_| {
                ConfigError::invalid(ENV_PRICE_PER_SECOND, format!("{price:?} is not a number"))
            })?;
            if !usd.is_finite() || usd < 0.0 {
                return Err(ConfigError::invalid(
                    ENV_PRICE_PER_SECOND,
                    "must be a non-negative number of USD per second",
                ));
            }
            config.price_per_second = Some(usd);
        }
        if let Some(wait) = get(ENV_WAIT_SECONDS) {
            let secs: u64 = wait
                .trim()
                .parse()
                .ok()
                .filter(|s| *s <= 60)
                .ok_or_else(|| {
                    ConfigError::invalid(ENV_WAIT_SECONDS, "must be whole seconds, 0 to 60")
                })?;
            config.prefer_wait = Duration::from_secs(secs);
        }
        if let Some(after) = get(ENV_CANCEL_AFTER) {
            config.cancel_after = parse_span(after.trim())
                .filter(|d| *d >= Duration::from_secs(5))
                .ok_or_else(|| {
                    ConfigError::invalid(
                        ENV_CANCEL_AFTER,
                        format!("{after:?} is not a span like 90s, 15m or 1h (at least 5s)"),
                    )
                })?;
        }
        // Checked now so a bad template or a model without a preset fails at start-up, not
        // on the first scene.
        InputMapping::for_config(&config)?;
        Ok(config)
    }
}

fn checked_base_url(var: &'static str, text: &str) -> Result<String, ConfigError> {
    let url = Url::parse(text.trim()).map_err(|e| ConfigError::invalid(var, e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::invalid(var, "must be an http(s) URL"));
    }
    Ok(text.trim().trim_end_matches('/').to_owned())
}

/// `90s`, `15m`, `1h`, or bare seconds.
fn parse_span(text: &str) -> Option<Duration> {
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = digits.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return None,
    };
    n.checked_mul(mult).map(Duration::from_secs)
}

/// The `Cancel-After` header's form of a span: the largest whole unit.
fn format_span(d: Duration) -> String {
    let s = d.as_secs().max(1);
    if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// How a scene becomes a model's `input`: a JSON object whose strings may hold placeholders.
///
/// A string that is exactly one placeholder becomes the typed value (`{seed}`, `{width}`,
/// `{height}`, `{fps}`, `{frames}` and `{duration}` are numbers); placeholders inside longer
/// strings are replaced by their text. `{duration|5,10}` rounds the scene's seconds up to the
/// nearest allowed value (the longest when none is long enough: the composer cuts a long clip
/// but would have to loop a short one); `{aspect_ratio|16:9,9:16}` picks the nearest allowed
/// shape. `{first_frame}` makes the first frame mandatory.
#[derive(Debug, Clone, PartialEq)]
pub struct InputMapping {
    template: Value,
}

const PLACEHOLDERS: [&str; 9] = [
    "prompt",
    "seed",
    "duration",
    "aspect_ratio",
    "width",
    "height",
    "fps",
    "frames",
    "first_frame",
];

/// Presets for models whose input fields were checked against their published input schemas.
const PRESETS: [(&str, &str); 3] = [
    (
        "minimax/video-01",
        r#"{"prompt": "{prompt}", "prompt_optimizer": false}"#,
    ),
    (
        "wan-video/wan-2.2-t2v-fast",
        r#"{"prompt": "{prompt}", "seed": "{seed}", "aspect_ratio": "{aspect_ratio|16:9,9:16}",
            "resolution": "480p", "num_frames": 81, "frames_per_second": 16}"#,
    ),
    (
        "kwaivgi/kling-v2.1",
        r#"{"prompt": "{prompt}", "start_image": "{first_frame}", "duration": "{duration|5,10}",
            "mode": "standard"}"#,
    ),
];

impl InputMapping {
    /// Checks a template: a JSON object whose placeholders are all known and well formed.
    pub fn new(template: Value) -> Result<Self, String> {
        if !template.is_object() {
            return Err("the input template must be a JSON object".into());
        }
        check_placeholders(&template)?;
        Ok(InputMapping { template })
    }

    /// The shipped mapping for `owner/name`, if there is one.
    pub fn preset(model_name: &str) -> Option<Self> {
        PRESETS
            .iter()
            .find(|(name, _)| *name == model_name)
            .map(|(_, text)| {
                let template = serde_json::from_str(text).expect("presets are valid JSON");
                InputMapping::new(template).expect("presets are valid templates")
            })
    }

    /// Models with a preset.
    pub fn preset_models() -> impl Iterator<Item = &'static str> {
        PRESETS.iter().map(|(name, _)| *name)
    }

    pub fn for_config(config: &ReplicateConfig) -> Result<Self, ConfigError> {
        match &config.input_template {
            Some(template) => {
                InputMapping::new(template.clone()).map_err(|r| ConfigError::invalid(ENV_INPUT, r))
            }
            None => InputMapping::preset(&config.model.model_name()).ok_or_else(|| {
                ConfigError::invalid(
                    ENV_INPUT,
                    format!(
                        "model {} has no preset input mapping (presets: {}); set one",
                        config.model.model_name(),
                        InputMapping::preset_models().collect::<Vec<_>>().join(", ")
                    ),
                )
            }),
        }
    }

    pub fn template(&self) -> &Value {
        &self.template
    }

    /// A digest of the template, independent of key order.
    pub fn digest(&self) -> String {
        let canonical = canonical_json(&self.template);
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }

    /// Fills the template from a scene.
    pub fn render(&self, spec: &ClipSpec, model: &str) -> Result<Value, ProviderError> {
        render_value(&self.template, spec, model)
    }
}

fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&map[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", parts.join(","))
        }
        other => other.to_string(),
    }
}

/// One `{name}` or `{name|options}` token found in a string.
struct Token<'a> {
    start: usize,
    end: usize,
    name: &'a str,
    options: Option<&'a str>,
}

/// Tokens are `{` + lowercase letters/underscores + optional `|…` + `}`; other braces are text.
fn tokens(text: &str) -> Vec<Token<'_>> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find('{').map(|i| i + from) {
        let Some(close) = text[open..].find('}').map(|i| i + open) else {
            break;
        };
        let inner = &text[open + 1..close];
        let (name, options) = match inner.split_once('|') {
            Some((n, o)) => (n, Some(o)),
            None => (inner, None),
        };
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            found.push(Token {
                start: open,
                end: close + 1,
                name,
                options,
            });
            from = close + 1;
        } else {
            from = open + 1;
        }
    }
    found
}

fn check_placeholders(value: &Value) -> Result<(), String> {
    match value {
        Value::String(s) => {
            for t in tokens(s) {
                if !PLACEHOLDERS.contains(&t.name) {
                    return Err(format!(
                        "unknown placeholder {{{}}} (known: {})",
                        t.name,
                        PLACEHOLDERS.join(", ")
                    ));
                }
                if let Some(options) = t.options {
                    match t.name {
                        "duration" => {
                            duration_options(options)?;
                        }
                        "aspect_ratio" => {
                            aspect_options(options)?;
                        }
                        other => return Err(format!("{{{other}}} takes no options")),
                    }
                }
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(check_placeholders),
        Value::Object(map) => map.values().try_for_each(check_placeholders),
        _ => Ok(()),
    }
}

fn duration_options(options: &str) -> Result<Vec<f64>, String> {
    let values: Result<Vec<f64>, _> = options.split(',').map(|o| o.trim().parse()).collect();
    match values {
        Ok(v) if !v.is_empty() && v.iter().all(|x| x.is_finite() && *x > 0.0) => Ok(v),
        _ => Err(format!(
            "{{duration|{options}}}: options must be positive seconds"
        )),
    }
}

fn aspect_options(options: &str) -> Result<Vec<(String, f64)>, String> {
    options
        .split(',')
        .map(|o| {
            let o = o.trim();
            let ratio = o.split_once(':').and_then(|(w, h)| {
                let (w, h): (f64, f64) = (w.parse().ok()?, h.parse().ok()?);
                (w > 0.0 && h > 0.0).then_some(w / h)
            });
            ratio
                .map(|r| (o.to_owned(), r))
                .ok_or_else(|| format!("{{aspect_ratio|{options}}}: {o:?} is not W:H"))
        })
        .collect()
}

fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        Value::Number(Number::from(x as i64))
    } else {
        Number::from_f64((x * 1000.0).round() / 1000.0)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

fn placeholder_value(t: &Token<'_>, spec: &ClipSpec, model: &str) -> Result<Value, ProviderError> {
    Ok(match t.name {
        "prompt" => Value::String(spec.visual_prompt.clone()),
        "seed" => Value::Number(spec.seed.into()),
        "width" => Value::Number(spec.width.into()),
        "height" => Value::Number(spec.height.into()),
        "fps" => Value::Number(spec.fps.into()),
        "frames" => Value::Number(spec.frames.into()),
        "duration" => {
            let seconds = spec.duration_seconds();
            match t.options {
                Some(options) => {
                    let allowed = duration_options(options).map_err(ProviderError::Failed)?;
                    let longest = allowed.iter().copied().fold(f64::MIN, f64::max);
                    let fit = allowed
                        .iter()
                        .copied()
                        .filter(|a| *a + 1e-9 >= seconds)
                        .fold(None, |best: Option<f64>, a| {
                            Some(best.map_or(a, |b| b.min(a)))
                        });
                    number(fit.unwrap_or(longest))
                }
                None => number(seconds),
            }
        }
        "aspect_ratio" => match t.options {
            Some(options) => {
                let allowed = aspect_options(options).map_err(ProviderError::Failed)?;
                let want = (spec.width as f64 / spec.height.max(1) as f64).ln();
                let best = allowed
                    .into_iter()
                    .min_by(|a, b| (a.1.ln() - want).abs().total_cmp(&(b.1.ln() - want).abs()))
                    .map(|(name, _)| name)
                    .unwrap_or_else(|| spec.aspect_ratio());
                Value::String(best)
            }
            None => Value::String(spec.aspect_ratio()),
        },
        "first_frame" => match &spec.first_frame {
            Some(frame) => Value::String(frame.clone()),
            None => {
                return Err(ProviderError::Rejected(format!(
                    "{model} starts from an image and scene {} has no first frame",
                    spec.scene_index
                )));
            }
        },
        other => {
            return Err(ProviderError::Failed(format!(
                "unknown placeholder {other}"
            )));
        }
    })
}

fn render_value(value: &Value, spec: &ClipSpec, model: &str) -> Result<Value, ProviderError> {
    Ok(match value {
        Value::String(s) => {
            let found = tokens(s);
            if found.len() == 1 && found[0].start == 0 && found[0].end == s.len() {
                placeholder_value(&found[0], spec, model)?
            } else if found.is_empty() {
                value.clone()
            } else {
                let mut out = String::with_capacity(s.len());
                let mut at = 0;
                for t in &found {
                    out.push_str(&s[at..t.start]);
                    match placeholder_value(t, spec, model)? {
                        Value::String(text) => out.push_str(&text),
                        other => out.push_str(&other.to_string()),
                    }
                    at = t.end;
                }
                out.push_str(&s[at..]);
                Value::String(out)
            }
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value(v, spec, model))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k.clone(), render_value(v, spec, model)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionStatus {
    Starting,
    Processing,
    Succeeded,
    Failed,
    Canceled,
    Aborted,
    /// A status this client does not know yet; treated as still running.
    #[serde(other)]
    Unknown,
}

impl PredictionStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            PredictionStatus::Succeeded
                | PredictionStatus::Failed
                | PredictionStatus::Canceled
                | PredictionStatus::Aborted
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    #[serde(default)]
    pub predict_time: Option<f64>,
    #[serde(default)]
    pub total_time: Option<f64>,
}

/// A prediction as the API and its webhooks describe it (the fields vidpipe reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub id: String,
    pub status: PredictionStatus,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub input: Option<Value>,
    #[serde(default)]
    pub output: Option<Value>,
    /// Usually a string; kept as JSON because models are free to put anything there.
    #[serde(default)]
    pub error: Option<Value>,
    #[serde(default)]
    pub metrics: Option<Metrics>,
    #[serde(default)]
    pub webhook: Option<String>,
    /// Set once Replicate has deleted the output (an hour after completion).
    #[serde(default)]
    pub data_removed: Option<bool>,
}

impl Prediction {
    /// The first media URL of the output: the output itself when a string, else the first
    /// URL-like string in a list (or an object's values).
    pub fn output_url(&self) -> Option<&str> {
        fn find(v: &Value) -> Option<&str> {
            match v {
                Value::String(s)
                    if s.starts_with("https://")
                        || s.starts_with("http://")
                        || s.starts_with("data:") =>
                {
                    Some(s)
                }
                Value::Array(items) => items.iter().find_map(find),
                Value::Object(map) => map.values().find_map(find),
                _ => None,
            }
        }
        self.output.as_ref().and_then(find)
    }

    /// The error as text, with any URL's query string removed.
    pub fn error_text(&self) -> Option<String> {
        match &self.error {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(redact_urls(s)),
            Some(other) => Some(redact_urls(&other.to_string())),
        }
    }
}

#[derive(Debug, Deserialize)]
struct PredictionPage {
    #[serde(default)]
    results: Vec<Prediction>,
}

/// Replaces the query string of every http(s) URL in `text`: signed URLs carry their signature
/// there, and error text ends up in job records.
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = ["https://", "http://"]
            .iter()
            .filter_map(|scheme| rest.find(scheme))
            .min();
        let Some(start) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..start]);
        let url_len = rest[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')'))
            .unwrap_or(rest.len() - start);
        let url = &rest[start..start + url_len];
        match url.find('?') {
            Some(q) => {
                out.push_str(&url[..q]);
                out.push_str("?[redacted]");
            }
            None => out.push_str(url),
        }
        rest = &rest[start + url_len..];
    }
}

/// Words in a failed prediction's error that mean the input itself was refused, so retrying the
/// same scene cannot help.
const REFUSAL_MARKERS: [&str; 10] = [
    "nsfw",
    "safety",
    "content policy",
    "moderation",
    "flagged",
    "sensitive",
    "prohibited",
    "invalid input",
    "input validation",
    "inappropriate",
];

fn is_refusal(error: &str) -> bool {
    let lower = error.to_ascii_lowercase();
    REFUSAL_MARKERS.iter().any(|m| lower.contains(m))
}

/// The `webhook` URL for one clip: the configured base with the identity as a query parameter.
pub fn webhook_url_for(base: &str, identity: &str) -> Result<String, ProviderError> {
    let mut url = Url::parse(base)
        .map_err(|e| ProviderError::Failed(format!("webhook URL is invalid: {e}")))?;
    url.query_pairs_mut()
        .append_pair(WEBHOOK_IDENTITY_PARAM, identity);
    Ok(url.into())
}

/// Parses `Retry-After`: delay seconds or an HTTP date.
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Why copying an output failed; an expired output is told apart so a lost create whose result
/// is gone can be made again.
enum CopyError {
    Expired,
    Other(ProviderError),
}

impl From<CopyError> for ProviderError {
    fn from(e: CopyError) -> Self {
        match e {
            CopyError::Expired => {
                ProviderError::Failed("output expired before it was copied".into())
            }
            CopyError::Other(e) => e,
        }
    }
}

/// The Replicate clip provider.
#[derive(Debug, Clone)]
pub struct ReplicateProvider {
    config: ReplicateConfig,
    mapping: InputMapping,
    http: reqwest::Client,
    identity: String,
}

impl ReplicateProvider {
    pub fn new(config: ReplicateConfig) -> Result<Self, ConfigError> {
        let mapping = InputMapping::for_config(&config)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ConfigError::invalid(ENV_URL, format!("HTTP client: {e}")))?;
        let identity = format!("replicate|{}|{}", config.model, &mapping.digest()[..16]);
        Ok(ReplicateProvider {
            config,
            mapping,
            http,
            identity,
        })
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        ReplicateProvider::new(ReplicateConfig::from_lookup(lookup)?)
    }

    pub fn config(&self) -> &ReplicateConfig {
        &self.config
    }

    pub fn mapping(&self) -> &InputMapping {
        &self.mapping
    }

    fn api(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.config.base_url)
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.bearer_auth(self.config.token.expose())
            .timeout(self.config.request_timeout)
    }

    /// Turns a prediction (from a create, a poll or a verified webhook) into the clip's progress,
    /// copying a finished output to `dest`.
    pub async fn settle(
        &self,
        prediction: &Prediction,
        dest: &Path,
    ) -> Result<ClipProgress, ProviderError> {
        self.settle_inner(prediction, dest)
            .await
            .map_err(ProviderError::from)
    }

    async fn settle_inner(&self, p: &Prediction, dest: &Path) -> Result<ClipProgress, CopyError> {
        match p.status {
            PredictionStatus::Starting | PredictionStatus::Processing => Ok(self.pending(p)),
            PredictionStatus::Unknown => {
                tracing::warn!(prediction = %p.id, "unknown prediction status; polling on");
                Ok(self.pending(p))
            }
            PredictionStatus::Succeeded => {
                if p.data_removed == Some(true) {
                    return Err(CopyError::Expired);
                }
                let url = p.output_url().ok_or_else(|| {
                    CopyError::Other(ProviderError::Failed(format!(
                        "prediction {} succeeded without a media URL in its output",
                        p.id
                    )))
                })?;
                let media = self.copy_output(url, dest).await?;
                tracing::info!(prediction = %p.id, "replicate output copied");
                Ok(ClipProgress::Ready {
                    media,
                    cost: self.cost(p),
                })
            }
            PredictionStatus::Failed => {
                let text = p
                    .error_text()
                    .unwrap_or_else(|| "no error given".to_owned());
                let reason = format!("prediction {} failed: {text}", p.id);
                Err(CopyError::Other(if is_refusal(&text) {
                    ProviderError::Rejected(reason)
                } else {
                    ProviderError::Failed(reason)
                }))
            }
            PredictionStatus::Canceled => Err(CopyError::Other(ProviderError::Failed(format!(
                "prediction {} was canceled while running (by a cancel request or its \
                 Cancel-After deadline)",
                p.id
            )))),
            PredictionStatus::Aborted => Err(CopyError::Other(ProviderError::Failed(format!(
                "prediction {} was aborted before it started: its Cancel-After deadline \
                 passed in the queue",
                p.id
            )))),
        }
    }

    fn pending(&self, p: &Prediction) -> ClipProgress {
        ClipProgress::Pending {
            handle: p.id.clone(),
            poll_after: self.config.poll_after,
        }
    }

    fn cost(&self, p: &Prediction) -> Option<ProviderCost> {
        let seconds = p.metrics.as_ref()?.predict_time?;
        let price = self.config.price_per_second?;
        Some(ProviderCost {
            usd: seconds * price,
            basis: format!("predict_time {seconds} s at ${price}/s"),
        })
    }

    /// Copies an output to `dest` through a sibling temporary file, so `dest` is whole or absent.
    async fn copy_output(&self, url: &str, dest: &Path) -> Result<ClipMedia, CopyError> {
        if let Some(data) = url.strip_prefix("data:") {
            return write_data_uri(data, dest).await.map_err(CopyError::Other);
        }
        // No Authorization here: outputs are served by another host that must never see it.
        let mut resp = self
            .http
            .get(url)
            .timeout(self.config.download_timeout)
            .send()
            .await
            .map_err(|e| CopyError::Other(transport_error("output copy", e)))?;
        let status = resp.status();
        if EXPIRED.contains(&status) {
            return Err(CopyError::Expired);
        }
        if !status.is_success() {
            return Err(CopyError::Other(status_error(
                "output copy",
                status,
                resp.headers(),
                "",
            )));
        }
        let media = media_kind(
            resp.headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            url,
        );
        let part = part_path(dest);
        let result: Result<(), ProviderError> = async {
            use tokio::io::AsyncWriteExt as _;
            let mut file = tokio::fs::File::create(&part)
                .await
                .map_err(|e| ProviderError::Failed(format!("cannot write the clip: {e}")))?;
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| transport_error("output copy", e))?
            {
                file.write_all(&chunk)
                    .await
                    .map_err(|e| ProviderError::Failed(format!("cannot write the clip: {e}")))?;
            }
            file.sync_all()
                .await
                .map_err(|e| ProviderError::Failed(format!("cannot write the clip: {e}")))?;
            tokio::fs::rename(&part, dest)
                .await
                .map_err(|e| ProviderError::Failed(format!("cannot write the clip: {e}")))
        }
        .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(CopyError::Other(e));
        }
        Ok(media)
    }

    async fn get_prediction(&self, id: &str) -> Result<Prediction, ProviderError> {
        let resp = self
            .authed(self.http.get(self.api(&format!("predictions/{id}"))))
            .send()
            .await
            .map_err(|e| transport_error("prediction poll", e))?;
        parse_json(resp, "prediction poll").await
    }

    /// Is `p` (possibly only a list entry) the prediction this clip already made?
    fn same_model(&self, p: &Prediction) -> bool {
        match &self.config.model.version {
            Some(v) => p.version.as_deref() == Some(v.as_str()),
            None => p.model.as_deref() == Some(self.config.model.model_name().as_str()),
        }
    }

    /// `Some(answer)` when `p` carries enough to decide, `None` when its details are needed.
    fn is_ours(&self, p: &Prediction, input: &Value, identity: &str) -> Option<bool> {
        if self.config.webhook_url.is_some()
            && let Some(hook) = &p.webhook
        {
            return Some(clip_identity_from_webhook_url(hook).as_deref() == Some(identity));
        }
        p.input.as_ref().map(|i| i == input)
    }

    /// Looks through the first page of predictions for one this clip already created and that
    /// has not ended badly.
    async fn find_existing(
        &self,
        input: &Value,
        identity: &str,
    ) -> Result<Option<Prediction>, ProviderError> {
        let resp = self
            .authed(self.http.get(self.api("predictions")))
            .send()
            .await
            .map_err(|e| transport_error("prediction list", e))?;
        let page: PredictionPage = parse_json(resp, "prediction list").await?;
        let mut fetched = 0;
        for listed in page.results {
            let alive = !matches!(
                listed.status,
                PredictionStatus::Failed | PredictionStatus::Canceled | PredictionStatus::Aborted
            );
            if !alive || listed.data_removed == Some(true) || !self.same_model(&listed) {
                continue;
            }
            let candidate = match self.is_ours(&listed, input, identity) {
                Some(true) => listed,
                Some(false) => continue,
                None if fetched < MAX_DETAIL_FETCHES => {
                    fetched += 1;
                    let full = self.get_prediction(&listed.id).await?;
                    if self.is_ours(&full, input, identity) != Some(true) {
                        continue;
                    }
                    full
                }
                None => continue,
            };
            return Ok(Some(candidate));
        }
        Ok(None)
    }

    async fn create(
        &self,
        input: Value,
        webhook: Option<String>,
    ) -> Result<Prediction, ProviderError> {
        let mut body = Map::new();
        let url = match &self.config.model.version {
            Some(version) => {
                body.insert("version".into(), Value::String(version.clone()));
                self.api("predictions")
            }
            None => self.api(&format!(
                "models/{}/{}/predictions",
                self.config.model.owner, self.config.model.name
            )),
        };
        body.insert("input".into(), input);
        if let Some(hook) = webhook {
            body.insert("webhook".into(), Value::String(hook));
            body.insert(
                "webhook_events_filter".into(),
                Value::Array(vec![Value::String("completed".into())]),
            );
        }
        let mut req = self
            .authed(self.http.post(url))
            .timeout(self.config.request_timeout + self.config.prefer_wait)
            .header("Cancel-After", format_span(self.config.cancel_after))
            .json(&Value::Object(body));
        if !self.config.prefer_wait.is_zero() {
            req = req.header(
                "Prefer",
                format!("wait={}", self.config.prefer_wait.as_secs().max(1)),
            );
        }
        let resp = req
            .send()
            .await
            .map_err(|e| transport_error("prediction create", e))?;
        parse_json(resp, "prediction create").await
    }
}

fn check_handle(handle: &str) -> Result<(), ProviderError> {
    if handle.is_empty()
        || !handle
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ProviderError::Failed(format!(
            "{handle:?} is not a Replicate prediction id"
        )));
    }
    Ok(())
}

#[async_trait::async_trait]
impl ClipProvider for ReplicateProvider {
    fn name(&self) -> &str {
        "replicate"
    }

    fn cache_identity(&self) -> String {
        self.identity.clone()
    }

    fn wants_first_frame(&self) -> bool {
        self.mapping.template().to_string().contains("{first_frame")
    }

    async fn submit(
        &self,
        spec: &ClipSpec,
        identity: &str,
        dest: &Path,
    ) -> Result<ClipProgress, ProviderError> {
        let model = self.config.model.to_string();
        let input = self.mapping.render(spec, &model)?;
        let webhook = match &self.config.webhook_url {
            Some(base) => Some(webhook_url_for(base, identity)?),
            None => None,
        };
        if let Some(existing) = self.find_existing(&input, identity).await? {
            tracing::info!(prediction = %existing.id, "found this clip's earlier prediction");
            match self.settle_inner(&existing, dest).await {
                Err(CopyError::Expired) => {
                    tracing::warn!(
                        prediction = %existing.id,
                        "earlier prediction's output expired; creating a new one"
                    );
                }
                other => return other.map_err(ProviderError::from),
            }
        }
        let created = self.create(input, webhook).await?;
        tracing::info!(prediction = %created.id, status = ?created.status, "prediction created");
        self.settle(&created, dest).await
    }

    async fn poll(&self, handle: &str, dest: &Path) -> Result<ClipProgress, ProviderError> {
        check_handle(handle)?;
        let p = self.get_prediction(handle).await?;
        self.settle(&p, dest).await
    }

    async fn cancel(&self, handle: &str) -> Result<(), ProviderError> {
        check_handle(handle)?;
        let resp = self
            .authed(
                self.http
                    .post(self.api(&format!("predictions/{handle}/cancel"))),
            )
            .send()
            .await
            .map_err(|e| transport_error("prediction cancel", e))?;
        let status = resp.status();
        // 404: gone or never made; either way nothing bills. Replicate answers a cancel of an
        // ended prediction with the prediction itself, so any success is fine.
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        Err(status_error("prediction cancel", status, &headers, &body))
    }
}

async fn parse_json<T: serde::de::DeserializeOwned>(
    resp: Response,
    what: &str,
) -> Result<T, ProviderError> {
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.map_err(|e| transport_error(what, e))?;
    if !status.is_success() {
        return Err(status_error(
            what,
            status,
            &headers,
            &String::from_utf8_lossy(&body),
        ));
    }
    serde_json::from_slice(&body).map_err(|e| {
        ProviderError::Unavailable(format!("{what}: replicate answered unreadable JSON: {e}"))
    })
}

/// The API's own explanation: `detail` (or `title`) of its problem JSON, else a bounded piece of
/// the body.
fn api_detail(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let detail = parsed.as_ref().and_then(|v| {
        ["detail", "title", "error"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str).map(str::to_owned))
    });
    let text = detail.unwrap_or_else(|| body.chars().take(300).collect());
    redact_urls(text.trim())
}

fn status_error(what: &str, status: StatusCode, headers: &HeaderMap, body: &str) -> ProviderError {
    let code = status.as_u16();
    match status {
        StatusCode::TOO_MANY_REQUESTS => ProviderError::Throttled {
            retry_after: parse_retry_after(headers),
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ProviderError::Failed(format!(
            "{what}: replicate refused the API token (HTTP {code})"
        )),
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
            ProviderError::Rejected(format!("{what}: {}", api_detail(body)))
        }
        StatusCode::REQUEST_TIMEOUT => ProviderError::Unavailable(format!("{what}: HTTP {code}")),
        s if s.is_server_error() => {
            ProviderError::Unavailable(format!("{what}: replicate answered HTTP {code}"))
        }
        _ => ProviderError::Failed(format!("{what}: HTTP {code}: {}", api_detail(body))),
    }
}

/// Transport failures never carry the URL: an output URL's query is a signature.
fn transport_error(what: &str, e: reqwest::Error) -> ProviderError {
    let e = e.without_url();
    if e.is_decode() || e.is_body() {
        ProviderError::Unavailable(format!("{what}: response cut short: {e}"))
    } else {
        ProviderError::Unavailable(format!("{what}: {e}"))
    }
}

fn media_kind(content_type: Option<&str>, url: &str) -> ClipMedia {
    if let Some(ct) = content_type {
        let ct = ct.to_ascii_lowercase();
        if ct.starts_with("image/") {
            return ClipMedia::Image;
        }
        if ct.starts_with("video/") {
            return ClipMedia::Video;
        }
    }
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path
        .rsplit('/')
        .next()
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase());
    match ext.as_deref() {
        Some("png" | "jpg" | "jpeg" | "webp" | "gif" | "avif") => ClipMedia::Image,
        _ => ClipMedia::Video,
    }
}

fn part_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "clip".into());
    dest.with_file_name(format!(".{name}.replicate-part"))
}

async fn write_data_uri(data: &str, dest: &Path) -> Result<ClipMedia, ProviderError> {
    let (meta, payload) = data
        .split_once(',')
        .ok_or_else(|| ProviderError::Failed("output data URI has no payload".into()))?;
    if !meta.ends_with(";base64") {
        return Err(ProviderError::Failed(
            "output data URI is not base64".into(),
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload.trim())
        .map_err(|e| ProviderError::Failed(format!("output data URI is not base64: {e}")))?;
    let media = media_kind(Some(meta.trim_end_matches(";base64")), "");
    let part = part_path(dest);
    let write = async {
        tokio::fs::write(&part, &bytes).await?;
        tokio::fs::rename(&part, dest).await
    };
    if let Err(e) = write.await {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(ProviderError::Failed(format!("cannot write the clip: {e}")));
    }
    Ok(media)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(frames: u32, first_frame: Option<&str>) -> ClipSpec {
        ClipSpec {
            scene_index: 2,
            visual_prompt: "a red fox".into(),
            seed: 42,
            width: 1080,
            height: 1920,
            fps: 24,
            frames,
            first_frame: first_frame.map(str::to_owned),
        }
    }

    #[test]
    fn exact_placeholders_become_typed_values_and_embedded_ones_text() {
        let m = InputMapping::new(serde_json::json!({
            "prompt": "{prompt}", "seed": "{seed}", "size": "{width}x{height}",
            "d": "{duration}", "list": ["{fps}", {"f": "{frames}"}], "fixed": 3,
            "literal": "{ not a placeholder }"
        }))
        .unwrap();
        let v = m.render(&spec(60, None), "m").unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "prompt": "a red fox", "seed": 42, "size": "1080x1920", "d": 2.5,
                "list": [24, {"f": 60}], "fixed": 3, "literal": "{ not a placeholder }"
            })
        );
    }

    #[test]
    fn duration_rounds_up_to_an_allowed_value_and_caps_at_the_longest() {
        let m = InputMapping::new(serde_json::json!({"d": "{duration|5,10}"})).unwrap();
        assert_eq!(m.render(&spec(24 * 3, None), "m").unwrap()["d"], 5);
        assert_eq!(m.render(&spec(24 * 7, None), "m").unwrap()["d"], 10);
        assert_eq!(m.render(&spec(24 * 12, None), "m").unwrap()["d"], 10);
        assert_eq!(m.render(&spec(24 * 5, None), "m").unwrap()["d"], 5);
    }

    #[test]
    fn aspect_ratio_picks_the_nearest_allowed_shape() {
        let m =
            InputMapping::new(serde_json::json!({"a": "{aspect_ratio|16:9,9:16,1:1}"})).unwrap();
        assert_eq!(m.render(&spec(24, None), "m").unwrap()["a"], "9:16");
        let mut s = spec(24, None);
        (s.width, s.height) = (1080, 1350);
        assert_eq!(m.render(&s, "m").unwrap()["a"], "1:1");
    }

    #[test]
    fn a_needed_first_frame_that_is_missing_is_a_rejection() {
        let m = InputMapping::preset("kwaivgi/kling-v2.1").unwrap();
        match m.render(&spec(24, None), "kwaivgi/kling-v2.1") {
            Err(ProviderError::Rejected(r)) => assert!(r.contains("no first frame"), "{r}"),
            other => panic!("{other:?}"),
        }
        let v = m
            .render(&spec(24, Some("https://x/y.png")), "kwaivgi/kling-v2.1")
            .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"prompt": "a red fox", "start_image": "https://x/y.png",
                "duration": 5, "mode": "standard"})
        );
    }

    #[test]
    fn templates_with_unknown_placeholders_are_refused() {
        assert!(InputMapping::new(serde_json::json!({"p": "{promt}"})).is_err());
        assert!(InputMapping::new(serde_json::json!({"p": "{seed|1,2}"})).is_err());
        assert!(InputMapping::new(serde_json::json!({"p": "{duration|x}"})).is_err());
        assert!(InputMapping::new(serde_json::json!(["{prompt}"])).is_err());
    }

    #[test]
    fn the_digest_ignores_key_order_but_not_values() {
        let a = InputMapping::new(serde_json::json!({"a": 1, "b": "{prompt}"})).unwrap();
        let b: Value = serde_json::from_str(r#"{"b": "{prompt}", "a": 1}"#).unwrap();
        let c = InputMapping::new(serde_json::json!({"a": 2, "b": "{prompt}"})).unwrap();
        assert_eq!(a.digest(), InputMapping::new(b).unwrap().digest());
        assert_ne!(a.digest(), c.digest());
    }

    #[test]
    fn urls_lose_their_query_strings() {
        assert_eq!(
            redact_urls("fetch https://h/o.mp4?sig=abc&x=1 failed; see http://h/p"),
            "fetch https://h/o.mp4?[redacted] failed; see http://h/p"
        );
    }

    #[test]
    fn spans_parse_and_format() {
        assert_eq!(parse_span("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_span("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_span("2d"), None);
        assert_eq!(format_span(Duration::from_secs(900)), "15m");
        assert_eq!(format_span(Duration::from_secs(7200)), "2h");
        assert_eq!(format_span(Duration::from_secs(45)), "45s");
    }

    #[test]
    fn the_wan_preset_sends_seed_and_a_supported_shape() {
        let m = InputMapping::preset("wan-video/wan-2.2-t2v-fast").unwrap();
        let v = m.render(&spec(120, None), "wan").unwrap();
        assert_eq!(
            v,
            serde_json::json!({"prompt": "a red fox", "seed": 42, "aspect_ratio": "9:16",
                "resolution": "480p", "num_frames": 81, "frames_per_second": 16})
        );
        let minimax = InputMapping::preset("minimax/video-01").unwrap();
        assert_eq!(
            minimax.render(&spec(120, None), "minimax").unwrap(),
            serde_json::json!({"prompt": "a red fox", "prompt_optimizer": false})
        );
    }

    #[test]
    fn model_refs_parse() {
        let m = ModelRef::parse("kwaivgi/kling-v2.1").unwrap();
        assert_eq!(
            (m.owner.as_str(), m.name.as_str(), m.version),
            ("kwaivgi", "kling-v2.1", None)
        );
        let v = ModelRef::parse("a/b:abc123").unwrap();
        assert_eq!(v.version.as_deref(), Some("abc123"));
        assert!(ModelRef::parse("nope").is_err());
        assert!(ModelRef::parse("a/b:").is_err());
        assert!(ModelRef::parse("a/../b").is_err());
    }
}

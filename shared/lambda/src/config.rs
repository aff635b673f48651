//! Configuration from the environment, read once at cold start. Every variable is named here, so
//! the template's `Environment` blocks and this file are the whole contract.

use crate::ai_kinds::{PlannerKind, ProviderKind};
use std::path::PathBuf;
use vidpipe_domain::processing::ProcessSettings;
use vidpipe_domain::quota::QuotaLimits;
use vidpipe_domain::webhook::{UrlRules, WebhookFormat, WebhookUrl};
use vidpipe_pipeline::cursor::CURSOR_KEY_MIN_BYTES;
use vidpipe_pipeline::processing::FargateSize;
use vidpipe_pipeline::uploads::UploadPolicy;
use vidpipe_pipeline::webhooks::{WebhookSettings, WebhookTarget};

/// Where the watermark image is looked for in the media bucket unless `VIDPIPE_WATERMARK_KEY`
/// says otherwise.
pub const DEFAULT_WATERMARK_KEY: &str = "config/watermark.png";

#[derive(Debug, Clone)]
pub struct Config {
    /// `VIDPIPE_TABLE`: the single DynamoDB table.
    pub table: Option<String>,
    /// `VIDPIPE_BUCKET`: the media bucket.
    pub bucket: Option<String>,
    /// `VIDPIPE_STATE_MACHINE_ARN`: the generation state machine (the API starts and stops it).
    pub state_machine_arn: Option<String>,
    /// `VIDPIPE_KMS_KEY_ID`: encrypt media with this KMS key instead of S3-managed keys.
    pub kms_key_id: Option<String>,
    /// `AWS_ENDPOINT_URL`: set when talking to an emulator (the SDK reads it too).
    pub endpoint_url: Option<String>,
    /// `VIDPIPE_FFMPEG_DIR`: where ffmpeg and ffprobe are (the layer puts them in `/opt/bin`).
    pub ffmpeg_dir: Option<PathBuf>,
    /// `VIDPIPE_PROVIDER`: the clip providers in fallback order, comma-separated (default
    /// `procedural`).
    pub providers: Vec<ProviderKind>,
    /// `VIDPIPE_PLANNER`: `rules` (default), `bedrock` or `openai`; an LLM falls back to the rules.
    pub planner: PlannerKind,
    /// `VIDPIPE_PROVIDER_CONCURRENCY`: calls running at once against one provider, across every
    /// job (default 4).
    pub provider_concurrency: Option<u32>,
    /// The planners' and providers' own settings ([`AI_VARS`]), read when they are built.
    pub ai_env: AiEnv,
    /// `VIDPIPE_SCRATCH_DIR`: local scratch space (default `/tmp/vidpipe`, Lambda's writable disk).
    pub scratch_dir: PathBuf,
    /// `VIDPIPE_TRUST_TENANT_HEADER=1`: emulation only. Without an API Gateway JWT authorizer in
    /// front (function URLs), the API takes the tenant from `x-vidpipe-tenant`. Never in AWS.
    pub trust_tenant_header: bool,
    /// `VIDPIPE_PROCESSING_STATE_MACHINE_ARN`: the processing state machine (the dispatcher
    /// starts it).
    pub processing_state_machine_arn: Option<String>,
    /// Upload processing: trims, limits and routing. Defaults are the domain's; each of
    /// `VIDPIPE_INTRO_SECONDS`, `VIDPIPE_OUTRO_SECONDS`, `VIDPIPE_SEGMENT_THRESHOLD_SECONDS`,
    /// `VIDPIPE_SEGMENT_SECONDS`, `VIDPIPE_MAX_DURATION_SECONDS` and `VIDPIPE_MAX_SIZE_BYTES`
    /// replaces one.
    pub process: ProcessSettings,
    /// Raw uploads over the API: `VIDPIPE_UPLOAD_SINGLE_PUT_MAX_BYTES` (default 100 MiB) is the
    /// largest file sent in one PUT, `VIDPIPE_UPLOAD_PART_BYTES` (default 16 MiB, at least S3's
    /// 5 MiB) the part size above it.
    pub upload: UploadPolicy,
    /// `VIDPIPE_WATERMARK_KEY`: the watermark image's key in the media bucket.
    pub watermark_key: String,
    /// `VIDPIPE_WEBHOOK_URL`: the default webhook target, told of every generation and
    /// processing job whose request or upload names no `webhook_url`; checked by the same rules.
    pub webhook_url: Option<String>,
    /// `VIDPIPE_WEBHOOK_FORMAT`: the default target's body, `slack` (default: a Slack-compatible
    /// incoming webhook, as this variable always meant) or `standard` (the signed payload alone).
    /// Deliveries to a request's own `webhook_url` are always `standard`.
    pub webhook_format: WebhookFormat,
    /// `VIDPIPE_WEBHOOK_ALLOW_LOOPBACK=1`: development and emulation only. Webhook targets may be
    /// `http` to loopback (a local receiver); private and link-local stay refused.
    pub webhook_allow_loopback: bool,
    /// `VIDPIPE_PROCESS_WORKER=1`: long uploads go to the Fargate worker instead of segments.
    pub process_worker: bool,
    /// `VIDPIPE_COMPOSE_WORKER_THRESHOLD_FRAMES`, set only where the stack has a Fargate worker:
    /// jobs with more frames compose there.
    pub compose_worker_threshold_frames: Option<u32>,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` (set by Lambda): for the manifest's cost figures.
    pub memory_mb: Option<u32>,
    /// `VIDPIPE_WORKER_CPU` (units of 1/1024 vCPU) and `VIDPIPE_WORKER_MEMORY_MB`, both or
    /// neither: the Fargate worker's size, for the cost of its seconds.
    pub worker_size: Option<FargateSize>,
    /// `VIDPIPE_CURSOR_KEY`: the secret list cursors are sealed with, at least 32 bytes. The
    /// template fills it from a Secrets Manager secret it generates per stack. Unset, each
    /// instance seals under a random key of its own, so a cursor only pages on the instance that
    /// issued it.
    pub cursor_key: Option<CursorKey>,
    /// `VIDPIPE_MAX_CONCURRENT_JOBS` (jobs per tenant not yet ended) and
    /// `VIDPIPE_DAILY_OUTPUT_MINUTES` (minutes of requested output per tenant per UTC day):
    /// whole numbers, `0` or unset for unlimited. Read by the API, which admits jobs.
    pub quota_limits: QuotaLimits,
}

impl Config {
    /// The webhook settings: the default target and which targets are allowed; delivery
    /// bounds are the pipeline's defaults (30 s at most per delivery, five attempts).
    pub fn webhook_settings(&self) -> WebhookSettings {
        let url_rules = UrlRules {
            allow_loopback: self.webhook_allow_loopback,
        };
        WebhookSettings {
            // Checked when the configuration was read.
            default_target: self
                .webhook_url
                .as_deref()
                .and_then(|u| WebhookUrl::parse(u, url_rules).ok())
                .map(|url| WebhookTarget {
                    url,
                    format: self.webhook_format,
                }),
            url_rules,
            ..WebhookSettings::default()
        }
    }
}

/// Key material for list cursors. `Debug` shows no byte of it.
#[derive(Clone)]
pub struct CursorKey(String);

impl CursorKey {
    pub fn material(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

/// Every variable the AI adapters read (`vidpipe_ai`, `vidpipe_aws::bedrock`) or that names a
/// secret for them.
pub const AI_VARS: &[&str] = &[
    "REPLICATE_API_TOKEN",
    "VIDPIPE_REPLICATE_URL",
    "VIDPIPE_REPLICATE_MODEL",
    "VIDPIPE_REPLICATE_INPUT",
    "VIDPIPE_REPLICATE_WEBHOOK_URL",
    "VIDPIPE_REPLICATE_PRICE_PER_SECOND",
    "VIDPIPE_REPLICATE_WAIT_SECONDS",
    "VIDPIPE_REPLICATE_CANCEL_AFTER",
    "VIDPIPE_REPLICATE_TOKEN_PARAMETER",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "VIDPIPE_OPENAI_MODEL",
    "VIDPIPE_OPENAI_IMAGE_MODEL",
    "VIDPIPE_OPENAI_IMAGE_PRICE",
    "VIDPIPE_OPENAI_KEY_PARAMETER",
    "VIDPIPE_BEDROCK_MODEL",
    "VIDPIPE_BEDROCK_REGION",
    "VIDPIPE_BEDROCK_REEL_MODEL",
    "VIDPIPE_BEDROCK_CANVAS_MODEL",
    "VIDPIPE_BEDROCK_REEL_PREFIX",
    "VIDPIPE_BEDROCK_REEL_USD_PER_SECOND",
    "VIDPIPE_BEDROCK_CANVAS_USD_PER_IMAGE",
    "VIDPIPE_NARRATOR",
    "VIDPIPE_ESPEAK",
    "VIDPIPE_POLLY_VOICE",
    "VIDPIPE_POLLY_ENGINE",
    "VIDPIPE_POLLY_REGION",
    "VIDPIPE_OPENAI_TTS_MODEL",
    "VIDPIPE_OPENAI_TTS_VOICE",
    "VIDPIPE_OPENAI_TTS_USD_PER_MILLION_CHARS",
];

/// The AI settings as read; tokens among them, so `Debug` shows names only.
#[derive(Clone, Default)]
pub struct AiEnv(std::collections::BTreeMap<&'static str, String>);

impl AiEnv {
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

impl std::fmt::Debug for AiEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is invalid: {why}")]
    Invalid { name: &'static str, why: String },
    #[error("environment variable {0} is required")]
    Missing(&'static str),
}

impl Config {
    pub fn table(&self) -> Result<&str, ConfigError> {
        self.table
            .as_deref()
            .ok_or(ConfigError::Missing("VIDPIPE_TABLE"))
    }

    pub fn bucket(&self) -> Result<&str, ConfigError> {
        self.bucket
            .as_deref()
            .ok_or(ConfigError::Missing("VIDPIPE_BUCKET"))
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The same, over any lookup: tests pass a map instead of mutating the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| {
            lookup(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let providers = match get("VIDPIPE_PROVIDER") {
            None => vec![ProviderKind::Procedural],
            Some(raw) => ProviderKind::parse_chain(&raw, "VIDPIPE_PROVIDER")?,
        };
        let planner = match get("VIDPIPE_PLANNER") {
            None => PlannerKind::Rules,
            Some(raw) => PlannerKind::parse(&raw, "VIDPIPE_PLANNER")?,
        };
        let flag = |name: &str| matches!(get(name).as_deref(), Some("1" | "true" | "yes"));
        let defaults = ProcessSettings::default();
        let process = ProcessSettings {
            intro_seconds: seconds(&get, "VIDPIPE_INTRO_SECONDS", defaults.intro_seconds, true)?,
            outro_seconds: seconds(&get, "VIDPIPE_OUTRO_SECONDS", defaults.outro_seconds, true)?,
            segment_threshold_seconds: seconds(
                &get,
                "VIDPIPE_SEGMENT_THRESHOLD_SECONDS",
                defaults.segment_threshold_seconds,
                false,
            )?,
            segment_seconds: seconds(
                &get,
                "VIDPIPE_SEGMENT_SECONDS",
                defaults.segment_seconds,
                false,
            )?,
            max_duration_seconds: seconds(
                &get,
                "VIDPIPE_MAX_DURATION_SECONDS",
                defaults.max_duration_seconds,
                false,
            )?,
            max_size_bytes: whole(&get, "VIDPIPE_MAX_SIZE_BYTES", defaults.max_size_bytes)?,
            ..defaults
        };
        let webhook_allow_loopback = flag("VIDPIPE_WEBHOOK_ALLOW_LOOPBACK");
        let webhook_url = get("VIDPIPE_WEBHOOK_URL");
        if let Some(url) = &webhook_url {
            WebhookUrl::parse(
                url,
                UrlRules {
                    allow_loopback: webhook_allow_loopback,
                },
            )
            // The rule only: the URL itself may hold the receiver's credential.
            .map_err(|why| ConfigError::Invalid {
                name: "VIDPIPE_WEBHOOK_URL",
                why: why.split(" (got").next().unwrap_or_default().to_owned(),
            })?;
        }
        let webhook_format = match get("VIDPIPE_WEBHOOK_FORMAT") {
            None => WebhookFormat::Slack,
            Some(raw) => WebhookFormat::parse(&raw).map_err(|why| ConfigError::Invalid {
                name: "VIDPIPE_WEBHOOK_FORMAT",
                why,
            })?,
        };
        let positive = |name| positive::<u32>(&get, name);
        let worker_size = match (
            positive("VIDPIPE_WORKER_CPU")?,
            positive("VIDPIPE_WORKER_MEMORY_MB")?,
        ) {
            (Some(cpu_units), Some(memory_mb)) => Some(FargateSize {
                cpu_units,
                memory_mb,
            }),
            (None, None) => None,
            (Some(_), None) => return Err(ConfigError::Missing("VIDPIPE_WORKER_MEMORY_MB")),
            (None, Some(_)) => return Err(ConfigError::Missing("VIDPIPE_WORKER_CPU")),
        };
        let memory_mb = positive("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")?;
        // Zero is a real threshold (every job on the worker), so not a positive-number setting.
        let name = "VIDPIPE_COMPOSE_WORKER_THRESHOLD_FRAMES";
        let compose_worker_threshold_frames = get(name)
            .map(|raw| {
                raw.parse::<u32>().map_err(|_| ConfigError::Invalid {
                    name,
                    why: format!("{raw:?} is not a whole number of frames"),
                })
            })
            .transpose()?;
        let name = "VIDPIPE_CURSOR_KEY";
        let cursor_key = match get(name) {
            // CloudFormation resolves the template's dynamic reference; an emulator that does not
            // hands it over verbatim, which is no secret.
            Some(raw) if raw.starts_with("{{resolve:") => None,
            Some(raw) if raw.len() < CURSOR_KEY_MIN_BYTES => {
                return Err(ConfigError::Invalid {
                    name,
                    why: format!("must be at least {CURSOR_KEY_MIN_BYTES} bytes"),
                });
            }
            other => other.map(CursorKey),
        };
        let quota_limits = QuotaLimits::from_settings(
            quota_setting(&get, "VIDPIPE_MAX_CONCURRENT_JOBS")?,
            quota_setting(&get, "VIDPIPE_DAILY_OUTPUT_MINUTES")?,
        );
        Ok(Self {
            table: get("VIDPIPE_TABLE"),
            bucket: get("VIDPIPE_BUCKET"),
            state_machine_arn: get("VIDPIPE_STATE_MACHINE_ARN"),
            kms_key_id: get("VIDPIPE_KMS_KEY_ID"),
            endpoint_url: get("AWS_ENDPOINT_URL"),
            ffmpeg_dir: get("VIDPIPE_FFMPEG_DIR").map(PathBuf::from),
            providers,
            planner,
            provider_concurrency: positive("VIDPIPE_PROVIDER_CONCURRENCY")?,
            ai_env: AiEnv(
                AI_VARS
                    .iter()
                    .filter_map(|&k| get(k).map(|v| (k, v)))
                    .collect(),
            ),
            scratch_dir: get("VIDPIPE_SCRATCH_DIR")
                .map_or_else(|| PathBuf::from("/tmp/vidpipe"), PathBuf::from),
            trust_tenant_header: flag("VIDPIPE_TRUST_TENANT_HEADER"),
            processing_state_machine_arn: get("VIDPIPE_PROCESSING_STATE_MACHINE_ARN"),
            process,
            upload: UploadPolicy {
                single_put_max: whole(
                    &get,
                    "VIDPIPE_UPLOAD_SINGLE_PUT_MAX_BYTES",
                    UploadPolicy::default().single_put_max,
                )?,
                part_size: whole(
                    &get,
                    "VIDPIPE_UPLOAD_PART_BYTES",
                    UploadPolicy::default().part_size,
                )?,
            },
            watermark_key: get("VIDPIPE_WATERMARK_KEY")
                .unwrap_or_else(|| DEFAULT_WATERMARK_KEY.to_owned()),
            webhook_url,
            webhook_format,
            webhook_allow_loopback,
            process_worker: flag("VIDPIPE_PROCESS_WORKER"),
            compose_worker_threshold_frames,
            memory_mb,
            worker_size,
            cursor_key,
            quota_limits,
        })
    }
}

/// A quota setting: a whole number, `0` (or unset) for unlimited.
pub fn quota_setting(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<u32, ConfigError> {
    let Some(raw) = get(name) else {
        return Ok(0);
    };
    raw.parse::<u32>().map_err(|_| ConfigError::Invalid {
        name,
        why: format!("{raw:?} is not a whole number (0 means unlimited)"),
    })
}

/// A duration setting in seconds: finite, and positive (or zero where `zero_ok`: a trim can be
/// switched off, a segment length cannot).
fn seconds(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: f64,
    zero_ok: bool,
) -> Result<f64, ConfigError> {
    let Some(raw) = get(name) else {
        return Ok(default);
    };
    match raw.parse::<f64>() {
        Ok(v) if v.is_finite() && (v > 0.0 || (zero_ok && v == 0.0)) => Ok(v),
        _ => Err(ConfigError::Invalid {
            name,
            why: format!(
                "{raw:?} is not a {} number of seconds",
                if zero_ok { "non-negative" } else { "positive" }
            ),
        }),
    }
}

fn whole(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    Ok(positive(get, name)?.unwrap_or(default))
}

/// A setting that, when given, is a whole number above zero.
fn positive<N: std::str::FromStr + Default + PartialOrd>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<N>, ConfigError> {
    let Some(raw) = get(name) else {
        return Ok(None);
    };
    raw.parse::<N>()
        .ok()
        .filter(|v| *v > N::default())
        .map(Some)
        .ok_or_else(|| ConfigError::Invalid {
            name,
            why: format!("{raw:?} is not a positive whole number"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn the_cursor_key_is_checked_and_never_shown() {
        let secret = "k3y-material-0123456789abcdefghijkl";
        let c = config(&[("VIDPIPE_CURSOR_KEY", secret)]).unwrap();
        assert_eq!(c.cursor_key.as_ref().unwrap().material(), secret.as_bytes());
        assert!(!format!("{c:?}").contains(secret));
        let err = config(&[("VIDPIPE_CURSOR_KEY", "short-secret")]).unwrap_err();
        assert!(err.to_string().contains("VIDPIPE_CURSOR_KEY"), "{err}");
        assert!(!err.to_string().contains("short-secret"), "{err}");
        // An unresolved template reference (an emulator) is no key.
        let c = config(&[(
            "VIDPIPE_CURSOR_KEY",
            "{{resolve:secretsmanager:arn:aws:secretsmanager:us-east-1:1:secret:x:SecretString}}",
        )])
        .unwrap();
        assert!(c.cursor_key.is_none());
        assert!(config(&[]).unwrap().cursor_key.is_none());
    }

    #[test]
    fn quotas_are_unlimited_unless_set_and_zero_means_unlimited() {
        assert!(config(&[]).unwrap().quota_limits.is_unlimited());
        let c = config(&[
            ("VIDPIPE_MAX_CONCURRENT_JOBS", "3"),
            ("VIDPIPE_DAILY_OUTPUT_MINUTES", "0"),
        ])
        .unwrap();
        assert_eq!(c.quota_limits, QuotaLimits::from_settings(3, 0));
        assert_eq!(c.quota_limits.daily_output_seconds, None);
        let c = config(&[("VIDPIPE_DAILY_OUTPUT_MINUTES", "90")]).unwrap();
        assert_eq!(c.quota_limits.daily_output_seconds, Some(5400));
        for bad in ["-1", "two", "1.5"] {
            let err = config(&[("VIDPIPE_MAX_CONCURRENT_JOBS", bad)]).unwrap_err();
            assert!(
                err.to_string().contains("VIDPIPE_MAX_CONCURRENT_JOBS"),
                "{err}"
            );
        }
    }

    #[test]
    fn unknown_provider_is_named() {
        let err = config(&[("VIDPIPE_PROVIDER", "sora")]).unwrap_err();
        assert!(err.to_string().contains("sora"));
    }

    #[test]
    fn emulation_flag_and_defaults() {
        let c = config(&[
            ("VIDPIPE_TRUST_TENANT_HEADER", "1"),
            ("VIDPIPE_BUCKET", " media "),
        ])
        .unwrap();
        assert!(c.trust_tenant_header);
        assert_eq!(c.bucket.as_deref(), Some("media"));
        assert_eq!(c.scratch_dir, PathBuf::from("/tmp/vidpipe"));
        assert!(!config(&[]).unwrap().trust_tenant_header);
    }

    #[test]
    fn processing_settings_default_to_the_domain_and_take_overrides() {
        let c = config(&[]).unwrap();
        assert_eq!(c.process, ProcessSettings::default());
        assert_eq!(c.watermark_key, DEFAULT_WATERMARK_KEY);
        assert_eq!(
            (c.webhook_url, c.memory_mb, c.process_worker),
            (None, None, false)
        );
        let c = config(&[
            ("VIDPIPE_INTRO_SECONDS", "0"),
            ("VIDPIPE_OUTRO_SECONDS", "2.5"),
            ("VIDPIPE_SEGMENT_THRESHOLD_SECONDS", "4"),
            ("VIDPIPE_SEGMENT_SECONDS", "2"),
            ("VIDPIPE_MAX_DURATION_SECONDS", "600"),
            ("VIDPIPE_MAX_SIZE_BYTES", "1000000"),
            ("VIDPIPE_WATERMARK_KEY", "brand/mark.png"),
            ("VIDPIPE_WEBHOOK_URL", "https://hooks.example/x"),
            ("VIDPIPE_PROCESS_WORKER", "1"),
            (
                "VIDPIPE_PROCESSING_STATE_MACHINE_ARN",
                "arn:aws:states:r:1:stateMachine:p",
            ),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "3008"),
            ("VIDPIPE_WORKER_CPU", "4096"),
            ("VIDPIPE_WORKER_MEMORY_MB", "8192"),
        ])
        .unwrap();
        assert_eq!(
            c.worker_size,
            Some(FargateSize {
                cpu_units: 4096,
                memory_mb: 8192
            })
        );
        assert_eq!(c.process.intro_seconds, 0.0);
        assert_eq!(c.process.outro_seconds, 2.5);
        assert_eq!(c.process.segment_threshold_seconds, 4.0);
        assert_eq!(c.process.segment_seconds, 2.0);
        assert_eq!(c.process.max_duration_seconds, 600.0);
        assert_eq!(c.process.max_size_bytes, 1_000_000);
        assert_eq!(c.watermark_key, "brand/mark.png");
        assert_eq!(c.webhook_url.as_deref(), Some("https://hooks.example/x"));
        let target = c.webhook_settings().default_target.unwrap();
        assert_eq!(
            (target.url.as_str(), target.format),
            ("https://hooks.example/x", WebhookFormat::Slack)
        );
        assert!(!c.webhook_settings().url_rules.allow_loopback);
        assert!(c.process_worker);
        assert_eq!(c.compose_worker_threshold_frames, None);
        assert_eq!(c.memory_mb, Some(3008));
        assert!(c.processing_state_machine_arn.is_some());
    }

    #[test]
    fn loopback_webhooks_need_the_development_flag() {
        let local = [("VIDPIPE_WEBHOOK_URL", "http://127.0.0.1:9000/hook")];
        assert!(config(&local).is_err());
        let c = config(&[
            local[0],
            ("VIDPIPE_WEBHOOK_ALLOW_LOOPBACK", "1"),
            ("VIDPIPE_WEBHOOK_FORMAT", "standard"),
        ])
        .unwrap();
        let settings = c.webhook_settings();
        assert!(settings.url_rules.allow_loopback);
        assert_eq!(
            settings.default_target.unwrap().format,
            WebhookFormat::Standard
        );
    }

    #[test]
    fn the_compose_worker_threshold_is_set_only_with_a_worker_and_may_be_zero() {
        let none = config(&[]).unwrap();
        assert_eq!(none.compose_worker_threshold_frames, None);
        let zero = config(&[("VIDPIPE_COMPOSE_WORKER_THRESHOLD_FRAMES", "0")]).unwrap();
        assert_eq!(zero.compose_worker_threshold_frames, Some(0));
        let err = config(&[("VIDPIPE_COMPOSE_WORKER_THRESHOLD_FRAMES", "-1")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("VIDPIPE_COMPOSE_WORKER_THRESHOLD_FRAMES"),
            "{err}"
        );
    }

    #[test]
    fn invalid_processing_settings_name_their_variable() {
        for (name, value) in [
            ("VIDPIPE_INTRO_SECONDS", "-1"),
            ("VIDPIPE_OUTRO_SECONDS", "five"),
            ("VIDPIPE_SEGMENT_THRESHOLD_SECONDS", "0"),
            ("VIDPIPE_SEGMENT_SECONDS", "NaN"),
            ("VIDPIPE_MAX_DURATION_SECONDS", "inf"),
            ("VIDPIPE_MAX_SIZE_BYTES", "1.5"),
            ("VIDPIPE_WEBHOOK_URL", "hooks.example/x"),
            ("VIDPIPE_WEBHOOK_URL", "http://hooks.example/x"),
            ("VIDPIPE_WEBHOOK_URL", "https://169.254.169.254/latest"),
            ("VIDPIPE_WEBHOOK_FORMAT", "xml"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "lots"),
            ("VIDPIPE_WORKER_CPU", "0"),
        ] {
            let err = config(&[(name, value)]).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Invalid { name: n, .. } if *n == name),
                "{name}={value}: {err}"
            );
            assert!(err.to_string().contains(name), "{err}");
        }
        // Half a worker size is refused, naming the half that is missing.
        let err = config(&[("VIDPIPE_WORKER_CPU", "1024")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Missing("VIDPIPE_WORKER_MEMORY_MB")
        ));
    }
}

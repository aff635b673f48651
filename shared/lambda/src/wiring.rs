//! Builds the SDK clients and the step dependencies once per cold start.

use crate::ai::{BedrockDeps, ReelOutput, SecretValues};
use crate::config::{Config, ConfigError};
use std::sync::Arc;
use vidpipe_aws::{AwsClients, DynamoJobStore, Encryption, S3BlobStore};
use vidpipe_domain::media::{CompositionJob, ProbeInfo, ToolVersions};
use vidpipe_domain::plan::RulesPlanner;
use vidpipe_domain::ports::{
    ClipProvider, MediaEngine, MediaError, Notifier, NotifyError, ProviderError,
};
use vidpipe_domain::processing::{ProcessEvent, RenditionSet};
use vidpipe_media::{FfmpegEngine, ProceduralProvider, Tools};
use vidpipe_pipeline::StepDeps;
use vidpipe_pipeline::generation::{ClipLimits, FallbackPlanner, ProviderChain};
use vidpipe_pipeline::processing::ProcessDeps;
use vidpipe_pipeline::webhooks::Webhooks;

/// The SDK clients, from one loaded configuration (credentials, region, endpoint).
#[derive(Clone)]
pub struct Aws {
    pub clients: AwsClients,
    /// For the clients built only where chosen (Bedrock, SSM).
    pub sdk: aws_config::SdkConfig,
}

impl Aws {
    pub async fn load(config: &Config) -> Self {
        let sdk = vidpipe_aws::config::load_sdk_config(config.endpoint_url.as_deref()).await;
        Self {
            clients: AwsClients::new(&sdk),
            sdk,
        }
    }

    pub fn blob_store(&self, config: &Config) -> Result<S3BlobStore, ConfigError> {
        media_bucket(self.clients.s3.clone(), config)
    }
}

/// The media bucket over an S3 client, encrypting with the stack's KMS key when it has one.
pub(crate) fn media_bucket(
    s3: aws_sdk_s3::Client,
    config: &Config,
) -> Result<S3BlobStore, ConfigError> {
    let encryption = match &config.kms_key_id {
        Some(key) => Encryption::Kms {
            key_id: Some(key.clone()),
        },
        None => Encryption::S3Managed,
    };
    Ok(S3BlobStore::new(s3, config.bucket()?).with_encryption(encryption))
}

/// Where ffmpeg should be. Functions without the layer (plan, record-failure, the API) never run
/// it, so a missing binary must not stop them starting: it is reported when first used.
fn tools(config: &Config) -> Tools {
    Tools::locate(config.ffmpeg_dir.as_deref()).unwrap_or_else(|_| {
        let dir = config
            .ffmpeg_dir
            .clone()
            .unwrap_or_else(|| "/opt/bin".into());
        Tools {
            ffmpeg: dir.join("ffmpeg"),
            ffprobe: dir.join("ffprobe"),
        }
    })
}

/// Everything a rendering step needs (generate-clip, compose, the worker): the ffmpeg engine and
/// the configured planner and providers.
pub async fn with_media(config: &Config, aws: &Aws) -> Result<StepDeps, ConfigError> {
    let tools = tools(config);
    let procedural: Arc<dyn ClipProvider> = Arc::new(ProceduralProvider::new(tools.clone()));
    // espeak-ng where its layer or binary is; without it only cloud narrators are offered.
    let espeak = vidpipe_media::EspeakNarrator::locate(tools.clone())
        .ok()
        .map(|e| Arc::new(e) as Arc<dyn vidpipe_domain::ports::Narrator>);
    let narrators: NarratorsBuilder =
        Box::new(move |lookup, sdk| crate::narrators::build(lookup, espeak, Some(sdk)));
    deps(
        config,
        aws,
        procedural,
        Arc::new(FfmpegEngine::new(tools)),
        Some(narrators),
    )
    .await
}

/// Builds the narrators once the secrets are read (an OpenAI-compatible narrator needs its key).
type NarratorsBuilder = Box<
    dyn FnOnce(
            &dyn Fn(&str) -> Option<String>,
            &aws_config::SdkConfig,
        ) -> Result<vidpipe_pipeline::generation::narration::Narrators, ConfigError>
        + Send,
>;

async fn deps(
    config: &Config,
    aws: &Aws,
    procedural: Arc<dyn ClipProvider>,
    media: Arc<dyn MediaEngine>,
    narrators: Option<NarratorsBuilder>,
) -> Result<StepDeps, ConfigError> {
    let env = |k: &str| config.ai_env.get(k);
    let secrets = SecretValues::resolve(&env, &aws.sdk).await?;
    let lookup = secrets.over(&env);
    let store = Arc::new(DynamoJobStore::new(
        aws.clients.dynamodb.clone(),
        config.table()?,
    ));
    let blobs: Arc<dyn vidpipe_domain::ports::BlobStore> = Arc::new(aws.blob_store(config)?);
    let bedrock = BedrockDeps {
        sdk: aws.sdk.clone(),
        reel_output: Some(ReelOutput {
            blobs: blobs.clone(),
            bucket: config.bucket()?.to_owned(),
        }),
    };
    let ai = crate::ai::build(
        config.planner,
        &config.providers,
        &lookup,
        procedural,
        Some(&bedrock),
    )?;
    let planner: Arc<dyn vidpipe_domain::ports::Planner> = match ai.planner {
        Some(llm) => Arc::new(FallbackPlanner::new(llm)),
        None => Arc::new(RulesPlanner),
    };
    let mut clip_limits = ClipLimits::default();
    if let Some(n) = config.provider_concurrency {
        clip_limits.per_provider = n;
    }
    Ok(StepDeps {
        jobs: store.clone(),
        blobs,
        planner,
        providers: ProviderChain::new(ai.providers),
        narrators: narrators
            .map(|build| build(&lookup, &aws.sdk))
            .transpose()?,
        leases: Some(store.clone()),
        quotas: Some(store.clone()),
        webhooks: Some(webhooks(config, &store)?),
        clip_limits,
        media,
        scratch_dir: config.scratch_dir.clone(),
        worker_threshold_frames: config.compose_worker_threshold_frames,
        memory_mb: config.memory_mb,
    })
}

/// What the processing function's steps need: processing records in the job table, the media
/// bucket, ffmpeg from the layer, the settings from the environment and the checked-in rendition
/// profiles. The webhook (when configured) is the only notifier here: SNS and EventBridge are
/// sent by the state machine itself, from the event the step returns.
pub fn process_deps(config: &Config, aws: &Aws) -> Result<ProcessDeps, ConfigError> {
    let store = Arc::new(DynamoJobStore::new(
        aws.clients.dynamodb.clone(),
        config.table()?,
    ));
    Ok(ProcessDeps {
        webhooks: Some(webhooks(config, &store)?),
        records: store.clone(),
        uploads: Some(store),
        blobs: Arc::new(aws.blob_store(config)?),
        // SNS and EventBridge are sent by the state machine, webhooks by `webhooks`.
        notifier: Arc::new(NoNotifier),
        media: Arc::new(FfmpegEngine::new(tools(config))),
        settings: config.process.clone(),
        renditions: RenditionSet::default_set(),
        watermark_key: config.watermark_key.clone(),
        worker_configured: config.process_worker,
        worker_size: config.worker_size,
        memory_mb: config.memory_mb,
        scratch_dir: config.scratch_dir.clone(),
    })
}

/// Signed webhooks over the table: tenants' secrets and the delivery log beside the jobs.
pub fn webhooks(
    config: &Config,
    store: &Arc<DynamoJobStore>,
) -> Result<Arc<Webhooks>, ConfigError> {
    Webhooks::new(store.clone(), store.clone(), config.webhook_settings())
        .map(Arc::new)
        .map_err(|e| ConfigError::Invalid {
            name: "VIDPIPE_WEBHOOK_URL",
            why: e.to_string(),
        })
}

/// Tells nobody: the state machine itself publishes every outcome to SNS and EventBridge, and
/// webhooks are delivered apart.
pub struct NoNotifier;

#[async_trait::async_trait]
impl Notifier for NoNotifier {
    async fn notify(&self, _: &ProcessEvent) -> Result<(), NotifyError> {
        Ok(())
    }
}

/// Stands in for the engine and provider in functions deployed without the FFmpeg layer. Their
/// steps never render; if one ever did, it fails with the tool-missing error the ASL already
/// treats as permanent, naming where media work runs.
pub(crate) struct NoMedia {
    provider: &'static str,
}

impl NoMedia {
    pub(crate) fn new() -> Self {
        Self {
            provider: ProceduralProvider::NAME,
        }
    }

    fn missing(&self) -> MediaError {
        MediaError::ToolMissing {
            tool: "ffmpeg".into(),
            hint: "this function is deployed without the media engine; rendering runs in the \
                   generate-clip and compose functions"
                .into(),
        }
    }
}

#[async_trait::async_trait]
impl MediaEngine for NoMedia {
    async fn probe(&self, _: &std::path::Path) -> Result<ProbeInfo, MediaError> {
        Err(self.missing())
    }
    async fn compose(
        &self,
        _: &CompositionJob,
        _: &(dyn Fn(f64) + Send + Sync),
    ) -> Result<(), MediaError> {
        Err(self.missing())
    }
    async fn versions(&self) -> Result<ToolVersions, MediaError> {
        Err(self.missing())
    }
    async fn animate_still(
        &self,
        _: &std::path::Path,
        _: &vidpipe_domain::media::ClipSpec,
        _: vidpipe_domain::media::Motion,
        _: &std::path::Path,
    ) -> Result<(), MediaError> {
        Err(self.missing())
    }
    async fn fit_clip(
        &self,
        _: &std::path::Path,
        _: &vidpipe_domain::media::ClipSpec,
        _: &std::path::Path,
    ) -> Result<(), MediaError> {
        Err(self.missing())
    }
}

#[async_trait::async_trait]
impl ClipProvider for NoMedia {
    fn name(&self) -> &str {
        self.provider
    }
    async fn generate(
        &self,
        _: &vidpipe_domain::media::ClipSpec,
        _: &std::path::Path,
    ) -> Result<(), ProviderError> {
        Err(self.missing().into())
    }
}

/// The deployment's provider chain as a function that never makes a clip sees it: each
/// configured provider by its name, in the configured order, for naming, pricing and the clip
/// cache's keys (a dry run, a render's prediction). Procedural is the real provider (free, and
/// never run here); the others are described by name only and refuse work, so no token is read
/// and no client is linked. Their cache identity is their name: a clip cached under a model's
/// fuller identity is predicted as a call, never as a hit.
pub(crate) fn described_chain(config: &Config) -> Vec<Arc<dyn ClipProvider>> {
    config
        .providers
        .iter()
        .map(|kind| -> Arc<dyn ClipProvider> {
            match kind {
                crate::ai_kinds::ProviderKind::Procedural => {
                    Arc::new(ProceduralProvider::new(tools(config)))
                }
                other => Arc::new(Described(other.as_str())),
            }
        })
        .collect()
}

/// A configured provider by name alone (see [`described_chain`]).
struct Described(&'static str);

#[async_trait::async_trait]
impl ClipProvider for Described {
    fn name(&self) -> &str {
        self.0
    }
    async fn generate(
        &self,
        _: &vidpipe_domain::media::ClipSpec,
        _: &std::path::Path,
    ) -> Result<(), ProviderError> {
        Err(ProviderError::Failed(format!(
            "{} is only described in this function; clips are made by the generation function",
            self.0
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vidpipe_domain::media::ClipSpec;

    #[tokio::test]
    async fn the_described_chain_is_the_configured_one_without_its_secrets() {
        let env = std::collections::HashMap::from([
            ("VIDPIPE_TABLE".to_owned(), "t".to_owned()),
            ("VIDPIPE_BUCKET".to_owned(), "b".to_owned()),
            (
                "VIDPIPE_PROVIDER".to_owned(),
                "replicate,bedrock-canvas,procedural".to_owned(),
            ),
        ]);
        // No REPLICATE_API_TOKEN, no SSM parameter: describing needs none.
        let config = Config::from_lookup(|k| env.get(k).cloned()).expect("config");
        let chain = described_chain(&config);
        let names: Vec<&str> = chain.iter().map(|p| p.name()).collect();
        assert_eq!(names, ["replicate", "bedrock-canvas", "procedural"]);
        let spec = ClipSpec {
            scene_index: 0,
            visual_prompt: "kite".into(),
            seed: 1,
            width: 640,
            height: 360,
            fps: 24,
            frames: 48,
            first_frame: None,
        };
        assert_eq!(chain[0].estimate_usd(&spec), None);
        assert_eq!(chain[2].estimate_usd(&spec), Some(0.0));
        let dest = std::env::temp_dir().join("vidpipe-described-never-written.mp4");
        assert!(
            chain[0].generate(&spec, &dest).await.is_err() && !dest.exists(),
            "a described provider makes nothing"
        );
    }
}

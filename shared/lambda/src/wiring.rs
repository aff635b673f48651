//! Builds the SDK clients and the step dependencies once per cold start.

use crate::config::{Config, ConfigError, ProviderKind};
use std::sync::Arc;
use vidpipe_aws::{AwsClients, DynamoJobStore, Encryption, S3BlobStore, SfnOrchestrator};
use vidpipe_domain::ports::ClipProvider;
use vidpipe_media::{FfmpegEngine, ProceduralProvider, Tools};
use vidpipe_pipeline::planners::Rules;
use vidpipe_pipeline::{Service, StepDeps};

/// The SDK clients, from one loaded configuration (credentials, region, endpoint).
#[derive(Clone)]
pub struct Aws {
    pub clients: AwsClients,
}

impl Aws {
    pub async fn load(config: &Config) -> Self {
        let sdk = vidpipe_aws::config::load_sdk_config(config.endpoint_url.as_deref()).await;
        Self {
            clients: AwsClients::new(&sdk),
        }
    }

    pub fn blob_store(&self, config: &Config) -> Result<S3BlobStore, ConfigError> {
        let encryption = match &config.kms_key_id {
            Some(key) => Encryption::Kms {
                key_id: Some(key.clone()),
            },
            None => Encryption::S3Managed,
        };
        Ok(S3BlobStore::new(self.clients.s3.clone(), config.bucket()?).with_encryption(encryption))
    }
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

/// Everything a step needs.
pub fn step_deps(config: &Config, aws: &Aws) -> Result<StepDeps, ConfigError> {
    let tools = tools(config);
    let provider: Arc<dyn ClipProvider> = match config.provider {
        ProviderKind::Procedural => Arc::new(ProceduralProvider::new(tools.clone())),
    };
    Ok(StepDeps {
        jobs: Arc::new(DynamoJobStore::new(
            aws.clients.dynamodb.clone(),
            config.table()?,
        )),
        blobs: Arc::new(aws.blob_store(config)?),
        planner: Arc::new(Rules::default()),
        provider,
        media: Arc::new(FfmpegEngine::new(tools)),
        scratch_dir: config.scratch_dir.clone(),
    })
}

/// The API's service: the step dependencies plus Step Functions as the orchestrator.
pub fn service(config: &Config, aws: &Aws, deps: StepDeps) -> Result<Service, ConfigError> {
    let arn = config
        .state_machine_arn
        .clone()
        .ok_or(ConfigError::Missing("VIDPIPE_STATE_MACHINE_ARN"))?;
    Ok(Service::new(
        deps,
        Arc::new(SfnOrchestrator::new(aws.clients.sfn.clone(), arn)),
    ))
}

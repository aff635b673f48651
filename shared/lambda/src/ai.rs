//! Builds the planner and the clip-provider chain that a deployment or a CLI run chose, from the
//! same environment names in both places (the stack maps its parameters onto them). Tokens may
//! sit in SSM Parameter Store: `VIDPIPE_REPLICATE_TOKEN_PARAMETER` and
//! `VIDPIPE_OPENAI_KEY_PARAMETER` name the parameters, read once per cold start, whose values
//! fill `REPLICATE_API_TOKEN` and `OPENAI_API_KEY`.

use crate::ai_kinds::{PlannerKind, ProviderKind};
use crate::config::ConfigError;
use aws_config::SdkConfig;
use std::collections::HashMap;
use std::sync::Arc;
use vidpipe_ai::openai::{OpenAiConfig, OpenAiConfigError, OpenAiImageProvider, OpenAiPlanner};
use vidpipe_ai::replicate::{ConfigError as ReplicateConfigError, ReplicateProvider};
use vidpipe_domain::ports::{BlobStore, ClipProvider, Planner};

/// Each secret's parameter-name variable and the variable its value fills.
pub const SECRET_PARAMETERS: [(&str, &str); 2] = [
    ("VIDPIPE_REPLICATE_TOKEN_PARAMETER", "REPLICATE_API_TOKEN"),
    ("VIDPIPE_OPENAI_KEY_PARAMETER", "OPENAI_API_KEY"),
];

/// The values read from SSM, to be looked up before the environment.
#[derive(Default, Clone)]
pub struct SecretValues(HashMap<&'static str, String>);

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl SecretValues {
    /// Reads the parameters the environment names; none named, no call made.
    pub async fn resolve(
        lookup: &(dyn Fn(&str) -> Option<String> + Sync),
        sdk: &SdkConfig,
    ) -> Result<Self, ConfigError> {
        let mut values = HashMap::new();
        let mut client = None;
        for (parameter_var, target) in SECRET_PARAMETERS {
            let Some(name) = lookup(parameter_var).filter(|n| !n.trim().is_empty()) else {
                continue;
            };
            let secrets = client.get_or_insert_with(|| vidpipe_aws::secrets::Secrets::new(sdk));
            let value = secrets
                .read(name.trim())
                .await
                .map_err(|e| ConfigError::Invalid {
                    name: parameter_var,
                    why: e.to_string(),
                })?;
            values.insert(target, value);
        }
        Ok(Self(values))
    }

    /// The environment with these values laid over it.
    pub fn over<'a>(
        &'a self,
        lookup: &'a (dyn Fn(&str) -> Option<String> + Sync),
    ) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| self.0.get(k).cloned().or_else(|| lookup(k))
    }
}

/// What Bedrock clients need: the SDK configuration, and for Nova Reel (which writes its video to
/// S3 only) the bucket and the store to fetch it through.
#[derive(Clone)]
pub struct BedrockDeps {
    pub sdk: SdkConfig,
    pub reel_output: Option<ReelOutput>,
}

#[derive(Clone)]
pub struct ReelOutput {
    pub blobs: Arc<dyn BlobStore>,
    pub bucket: String,
}

/// The chosen planner (`None`: the rules) and providers, in fallback order.
pub struct AiSetup {
    pub planner: Option<Arc<dyn Planner>>,
    pub providers: Vec<Arc<dyn ClipProvider>>,
}

fn replicate_error(e: ReplicateConfigError) -> ConfigError {
    match e {
        ReplicateConfigError::Missing { var } => ConfigError::Missing(var),
        ReplicateConfigError::Invalid { var, reason } => ConfigError::Invalid {
            name: var,
            why: reason,
        },
    }
}

fn openai_error(e: OpenAiConfigError) -> ConfigError {
    match e {
        OpenAiConfigError::Missing { var } => ConfigError::Missing(var),
        OpenAiConfigError::Invalid { var, reason } => ConfigError::Invalid {
            name: var,
            why: reason,
        },
        OpenAiConfigError::HttpClient(why) => ConfigError::Invalid {
            name: "OPENAI_BASE_URL",
            why,
        },
    }
}

/// Builds every chosen adapter; a missing or bad setting of any of them is an error here, at cold
/// start, naming the variable. `procedural` is the offline provider to use for its name (the real
/// one where ffmpeg runs, a stand-in elsewhere).
pub fn build(
    planner: PlannerKind,
    providers: &[ProviderKind],
    lookup: &dyn Fn(&str) -> Option<String>,
    procedural: Arc<dyn ClipProvider>,
    bedrock: Option<&BedrockDeps>,
) -> Result<AiSetup, ConfigError> {
    let mut openai = None;
    let mut openai_config = || -> Result<OpenAiConfig, ConfigError> {
        if openai.is_none() {
            openai = Some(OpenAiConfig::from_lookup(lookup).map_err(openai_error)?);
        }
        Ok(openai.clone().expect("just set"))
    };
    let bedrock_deps = |what: &'static str| {
        bedrock.ok_or(ConfigError::Invalid {
            name: what,
            why: "Bedrock needs AWS credentials and a bucket".into(),
        })
    };
    let planner: Option<Arc<dyn Planner>> = match planner {
        PlannerKind::Rules => None,
        PlannerKind::OpenAi => Some(Arc::new(
            OpenAiPlanner::new(&openai_config()?).map_err(openai_error)?,
        )),
        PlannerKind::Bedrock => Some(bedrock::planner(bedrock_deps("VIDPIPE_PLANNER")?, lookup)?),
    };
    let mut chain: Vec<Arc<dyn ClipProvider>> = Vec::with_capacity(providers.len());
    for kind in providers {
        chain.push(match kind {
            ProviderKind::Procedural => procedural.clone(),
            ProviderKind::Replicate => {
                Arc::new(ReplicateProvider::from_lookup(lookup).map_err(replicate_error)?)
            }
            ProviderKind::OpenAiImage => {
                Arc::new(OpenAiImageProvider::new(&openai_config()?).map_err(openai_error)?)
            }
            ProviderKind::BedrockReel => bedrock::reel(bedrock_deps("VIDPIPE_PROVIDER")?, lookup)?,
            ProviderKind::BedrockCanvas => {
                bedrock::canvas(bedrock_deps("VIDPIPE_PROVIDER")?, lookup)?
            }
        });
    }
    Ok(AiSetup {
        planner,
        providers: chain,
    })
}

/// The configured providers whose running calls a cancel can stop: only Replicate's predictions
/// can be cancelled (Bedrock's async invocations and the synchronous providers cannot), so the
/// cancel route's function builds only it and links none of the others.
pub fn cancellers(
    providers: &[ProviderKind],
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Arc<dyn ClipProvider>>, ConfigError> {
    let mut list: Vec<Arc<dyn ClipProvider>> = Vec::new();
    if providers.contains(&ProviderKind::Replicate) {
        list.push(Arc::new(
            ReplicateProvider::from_lookup(lookup).map_err(replicate_error)?,
        ));
    }
    Ok(list)
}

mod bedrock {
    use super::BedrockDeps;
    use crate::config::ConfigError;
    use std::sync::Arc;
    use vidpipe_aws::bedrock::{BedrockConfig, BedrockConfigError};
    use vidpipe_domain::ports::{ClipProvider, Planner};

    fn config(lookup: &dyn Fn(&str) -> Option<String>) -> Result<BedrockConfig, ConfigError> {
        BedrockConfig::from_lookup(lookup).map_err(|e| match e {
            BedrockConfigError::BadPrice { name, .. } => ConfigError::Invalid {
                name,
                why: e.to_string(),
            },
        })
    }

    pub fn planner(
        deps: &BedrockDeps,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Arc<dyn Planner>, ConfigError> {
        let config = config(lookup)?;
        let client = config.client(&deps.sdk);
        Ok(Arc::new(
            config
                .planner(&client)
                .ok_or(ConfigError::Missing("VIDPIPE_BEDROCK_MODEL"))?,
        ))
    }

    pub fn reel(
        deps: &BedrockDeps,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Arc<dyn ClipProvider>, ConfigError> {
        let config = config(lookup)?;
        let output = deps.reel_output.as_ref().ok_or(ConfigError::Invalid {
            name: "VIDPIPE_PROVIDER",
            why: "bedrock-reel writes its videos to S3: name the bucket (VIDPIPE_BUCKET)".into(),
        })?;
        let client = config.client(&deps.sdk);
        Ok(Arc::new(config.reel(
            &client,
            output.blobs.clone(),
            output.bucket.clone(),
        )))
    }

    pub fn canvas(
        deps: &BedrockDeps,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Arc<dyn ClipProvider>, ConfigError> {
        let config = config(lookup)?;
        let client = config.client(&deps.sdk);
        Ok(Arc::new(config.canvas(&client)))
    }
}

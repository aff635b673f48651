//! `--planner` and `--provider` on one machine: the same names and environment settings as the
//! stack's (`vidpipe_lambda::ai`), built into the local stack's options.

use anyhow::{Context, Result};
use std::sync::Arc;
use vidpipe_lambda::ai::{BedrockDeps, ReelOutput, SecretValues};
use vidpipe_lambda::{ConfigError, PlannerKind, ProviderKind};
use vidpipe_media::{ProceduralProvider, Tools};
use vidpipe_pipeline::local::LocalOptions;

pub async fn choose(
    options: &mut LocalOptions,
    planner: Option<&str>,
    providers: Option<&str>,
) -> Result<()> {
    // The flags name themselves in errors, not as environment variables.
    let flag = |name: &str, e: ConfigError| match e {
        ConfigError::Invalid { why, .. } => anyhow::anyhow!("{name}: {why}"),
        other => other.into(),
    };
    let planner = match planner.map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => PlannerKind::parse(p, "VIDPIPE_PLANNER").map_err(|e| flag("--planner", e))?,
        None => PlannerKind::Rules,
    };
    let chain = match providers.map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => {
            ProviderKind::parse_chain(p, "VIDPIPE_PROVIDER").map_err(|e| flag("--provider", e))?
        }
        None => vec![ProviderKind::Procedural],
    };
    if planner == PlannerKind::Rules && chain == [ProviderKind::Procedural] {
        return Ok(());
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let needs_aws = planner == PlannerKind::Bedrock
        || chain
            .iter()
            .any(|k| matches!(k, ProviderKind::BedrockReel | ProviderKind::BedrockCanvas))
        || vidpipe_lambda::ai::SECRET_PARAMETERS
            .iter()
            .any(|(var, _)| env(var).is_some());
    let sdk = if needs_aws {
        Some(vidpipe_aws::config::load_sdk_config(env("AWS_ENDPOINT_URL").as_deref()).await)
    } else {
        None
    };
    let secrets = match &sdk {
        Some(sdk) => SecretValues::resolve(&env, sdk).await?,
        None => SecretValues::default(),
    };
    let lookup = secrets.over(&env);
    // Nova Reel writes its videos to S3 only: a local run names the bucket it may use.
    let bedrock = sdk.as_ref().map(|sdk| BedrockDeps {
        sdk: sdk.clone(),
        reel_output: env("VIDPIPE_BEDROCK_BUCKET")
            .or_else(|| env("VIDPIPE_BUCKET"))
            .map(|bucket| ReelOutput {
                blobs: Arc::new(vidpipe_aws::S3BlobStore::new(
                    vidpipe_aws::config::s3_client(sdk),
                    &bucket,
                )),
                bucket,
            }),
    });
    let tools = Tools::locate(options.ffmpeg_dir.as_deref())?;
    let setup = vidpipe_lambda::ai::build(
        planner,
        &chain,
        &lookup,
        Arc::new(ProceduralProvider::new(tools)),
        bedrock.as_ref(),
    )
    .context("configuring the planner and providers")?;
    options.planner = setup.planner;
    options.providers = setup.providers;
    Ok(())
}

/// `--narrator`: espeak-ng offline needs nothing; Polly and an OpenAI-compatible server are
/// built from the same settings as the stack's, and become the default for this run.
pub async fn choose_narrator(options: &mut LocalOptions, narrator: Option<&str>) -> Result<()> {
    let Some(name) = narrator.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(());
    };
    let kind: vidpipe_domain::request::NarratorKind = name
        .parse()
        .map_err(|why: String| anyhow::anyhow!("--narrator: {why}"))?;
    if kind == vidpipe_domain::request::NarratorKind::Espeak {
        return Ok(());
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let sdk = match kind {
        vidpipe_domain::request::NarratorKind::Polly => {
            Some(vidpipe_aws::config::load_sdk_config(env("AWS_ENDPOINT_URL").as_deref()).await)
        }
        _ => None,
    };
    let lookup = |k: &str| {
        if k == vidpipe_lambda::narrators::NARRATOR_VAR {
            Some(name.to_owned())
        } else {
            env(k)
        }
    };
    let tools = Tools::locate(options.ffmpeg_dir.as_deref())?;
    let espeak = vidpipe_media::EspeakNarrator::locate(tools)
        .ok()
        .map(|e| Arc::new(e) as Arc<dyn vidpipe_domain::ports::Narrator>);
    options.narrators = Some(
        vidpipe_lambda::narrators::build(&lookup, espeak, sdk.as_ref())
            .map_err(|e| anyhow::anyhow!("--narrator {name}: {e}"))?,
    );
    Ok(())
}

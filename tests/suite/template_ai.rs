//! Every allowed value of the template's `Provider` and `Planner` parameters starts: the
//! functions' environment, as `template.yaml` gives it for that value, configures the planner
//! and every provider of the chain as a cold start does (with the SSM-held tokens filled in as
//! `SecretValues` would), so no value deploys to a stack that fails at its first event.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use vidpipe_domain::ports::Narrator;
use vidpipe_domain::request::NarratorKind;
use vidpipe_lambda::ai::{self, BedrockDeps, ReelOutput, SECRET_PARAMETERS};
use vidpipe_lambda::{Config, PlannerKind, ProviderKind};
use vidpipe_media::{EspeakNarrator, ProceduralProvider};
use vidpipe_tests::tools;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn function_env(function: &str, params: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut cmd = Command::new(root().join(".tools/venv/bin/python"));
    cmd.current_dir(root())
        .arg("scripts/check/function_env.py")
        .arg(function);
    for (k, v) in params {
        cmd.arg("--param").arg(format!("{k}={v}"));
    }
    let out = cmd.output().expect("run scripts/check/function_env.py");
    assert!(
        out.status.success(),
        "function_env.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("function_env.py prints JSON")
}

/// The template's allowed values for a parameter, read from the YAML itself.
fn allowed(parameter: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    yaml["Parameters"][parameter]["AllowedValues"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{parameter} has AllowedValues"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn sdk() -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("us-east-1"))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build()
}

#[test]
fn every_provider_and_planner_value_configures_at_cold_start() {
    let providers = allowed("Provider");
    let planners = allowed("Planner");
    assert!(providers.len() >= 6 && planners == ["rules", "bedrock", "openai"]);
    let home = tempfile::tempdir().unwrap();
    let blobs = Arc::new(vidpipe_pipeline::embedded::FsBlobStore::new(home.path()).unwrap());
    let mut checked = 0;
    for provider in &providers {
        for planner in &planners {
            for function in ["GenerateFunction", "CancelGenerationFunction"] {
                let ctx = format!("{function} with Provider={provider} Planner={planner}");
                let mut env =
                    function_env(function, &[("Provider", provider), ("Planner", planner)]);
                for (parameter, target) in SECRET_PARAMETERS {
                    if env.contains_key(parameter) {
                        env.insert(target.to_owned(), format!("token-from-{parameter}"));
                    }
                }
                let config = Config::from_lookup(|k| env.get(k).cloned())
                    .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                let expected: Vec<ProviderKind> = provider
                    .split(',')
                    .map(|n| ProviderKind::parse(n).unwrap())
                    .collect();
                assert_eq!(config.providers, expected, "{ctx}");
                assert_eq!(config.planner.as_str(), planner, "{ctx}");
                let lookup = |k: &str| config.ai_env.get(k);
                if function == "CancelGenerationFunction" {
                    // The cancel route builds only the providers whose calls can be cancelled.
                    let cancellers = ai::cancellers(&config.providers, &lookup)
                        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    let names: Vec<&str> = cancellers.iter().map(|p| p.name()).collect();
                    let want: Vec<&str> = expected
                        .iter()
                        .filter(|k| **k == ProviderKind::Replicate)
                        .map(|k| k.as_str())
                        .collect();
                    assert_eq!(names, want, "{ctx}");
                    checked += 1;
                    continue;
                }
                let bedrock = BedrockDeps {
                    sdk: sdk(),
                    reel_output: Some(ReelOutput {
                        blobs: blobs.clone(),
                        bucket: "media".into(),
                    }),
                };
                let setup = ai::build(
                    config.planner,
                    &config.providers,
                    &lookup,
                    Arc::new(ProceduralProvider::new(tools())),
                    Some(&bedrock),
                )
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                let names: Vec<&str> = setup.providers.iter().map(|p| p.name()).collect();
                let want: Vec<&str> = expected.iter().map(|k| k.as_str()).collect();
                assert_eq!(names, want, "{ctx}");
                assert_eq!(
                    setup.planner.as_ref().map(|p| p.name().to_owned()),
                    (config.planner != PlannerKind::Rules).then(|| planner.clone()),
                    "{ctx}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, providers.len() * planners.len() * 2);
}

/// Without its token the chosen provider does not start: the error names the variable (and is
/// raised at cold start, not at the first clip).
#[test]
fn a_chosen_provider_without_its_token_fails_at_start_naming_it() {
    let env = function_env("GenerateFunction", &[("Provider", "replicate")]);
    let config = Config::from_lookup(|k| env.get(k).cloned()).unwrap();
    let lookup = |k: &str| config.ai_env.get(k);
    let err = ai::build(
        config.planner,
        &config.providers,
        &lookup,
        Arc::new(ProceduralProvider::new(tools())),
        None,
    )
    .err()
    .expect("no token, no start");
    assert_eq!(
        err.to_string(),
        "environment variable REPLICATE_API_TOKEN is required"
    );
}

#[test]
fn every_narrator_value_configures_at_cold_start_and_is_the_default() {
    let narrators = allowed("Narrator");
    assert_eq!(narrators, ["espeak", "polly", "openai"]);
    for narrator in &narrators {
        for engine in allowed("PollyEngine") {
            let ctx = format!("Narrator={narrator} PollyEngine={engine}");
            let mut env = function_env(
                "GenerateFunction",
                &[("Narrator", narrator), ("PollyEngine", &engine)],
            );
            for (parameter, target) in SECRET_PARAMETERS {
                if env.contains_key(parameter) {
                    env.insert(target.to_owned(), format!("token-from-{parameter}"));
                }
            }
            assert_eq!(env.get("VIDPIPE_NARRATOR"), Some(narrator), "{ctx}");
            // Whatever the default, the function is told where the espeak layer's binary is, as
            // wiring::with_media reads it at a cold start (the path itself is checked against
            // the layer's tree in stack_wiring).
            let binary = env
                .get("VIDPIPE_ESPEAK")
                .unwrap_or_else(|| panic!("{ctx}: no VIDPIPE_ESPEAK"));
            let espeak: Arc<dyn Narrator> = Arc::new(EspeakNarrator::new(binary.into(), tools()));
            let config = Config::from_lookup(|k| env.get(k).cloned())
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let lookup = |k: &str| config.ai_env.get(k);
            let built = vidpipe_lambda::narrators::build(&lookup, Some(espeak), Some(&sdk()))
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let default = built.pick(None).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let want = match narrator.as_str() {
                "espeak" => "espeak",
                "polly" => "polly",
                _ => "openai-speech",
            };
            assert_eq!(default.name(), want, "{ctx}");
            if narrator == "polly" {
                assert!(default.cache_identity().contains(&engine), "{ctx}");
            }
            // espeak-ng and Polly are on offer to a request that names them, whatever the default.
            for named in [NarratorKind::Espeak, NarratorKind::Polly] {
                built
                    .pick(Some(named))
                    .unwrap_or_else(|e| panic!("{ctx}: {named}: {e}"));
            }
        }
    }
}

#[test]
fn a_stack_deployed_with_no_narrator_named_speaks_offline_with_espeak() {
    let env = function_env("GenerateFunction", &[]);
    assert_eq!(
        env.get("VIDPIPE_NARRATOR").map(String::as_str),
        Some("espeak")
    );
    assert_eq!(
        env.get("VIDPIPE_ESPEAK").map(String::as_str),
        Some("/opt/bin/espeak-ng")
    );
}

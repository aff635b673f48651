//! Configuration from the environment, read once at cold start. Every variable is named here, so
//! the template's `Environment` blocks and this file are the whole contract.

use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Procedural,
}

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
    /// `VIDPIPE_PROVIDER`: which clip provider generate-clip uses (default `procedural`).
    pub provider: ProviderKind,
    /// `VIDPIPE_SCRATCH_DIR`: local scratch space (default `/tmp/vidpipe`, Lambda's writable disk).
    pub scratch_dir: PathBuf,
    /// `VIDPIPE_TRUST_TENANT_HEADER=1`: emulation only. Without an API Gateway JWT authorizer in
    /// front (function URLs), the API takes the tenant from `x-vidpipe-tenant`. Never in AWS.
    pub trust_tenant_header: bool,
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
        let provider = match get("VIDPIPE_PROVIDER").as_deref() {
            None | Some("procedural") => ProviderKind::Procedural,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "VIDPIPE_PROVIDER",
                    why: format!("unknown provider {other:?} (known: procedural)"),
                });
            }
        };
        let flag = |name: &str| matches!(get(name).as_deref(), Some("1" | "true" | "yes"));
        Ok(Self {
            table: get("VIDPIPE_TABLE"),
            bucket: get("VIDPIPE_BUCKET"),
            state_machine_arn: get("VIDPIPE_STATE_MACHINE_ARN"),
            kms_key_id: get("VIDPIPE_KMS_KEY_ID"),
            endpoint_url: get("AWS_ENDPOINT_URL"),
            ffmpeg_dir: get("VIDPIPE_FFMPEG_DIR").map(PathBuf::from),
            provider,
            scratch_dir: get("VIDPIPE_SCRATCH_DIR")
                .map_or_else(|| PathBuf::from("/tmp/vidpipe"), PathBuf::from),
            trust_tenant_header: flag("VIDPIPE_TRUST_TENANT_HEADER"),
        })
    }
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
}

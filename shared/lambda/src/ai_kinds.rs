//! The names a deployment or a CLI run chooses its planner and clip providers by: the values of
//! `VIDPIPE_PLANNER` and `VIDPIPE_PROVIDER` (a comma-separated fallback chain), of the stack's
//! `Planner` and `Provider` parameters, and of the CLI's `--planner` and `--provider`.

use crate::config::ConfigError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    Procedural,
    Replicate,
    BedrockReel,
    BedrockCanvas,
    OpenAiImage,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 5] = [
        ProviderKind::Procedural,
        ProviderKind::Replicate,
        ProviderKind::BedrockReel,
        ProviderKind::BedrockCanvas,
        ProviderKind::OpenAiImage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Procedural => "procedural",
            ProviderKind::Replicate => "replicate",
            ProviderKind::BedrockReel => "bedrock-reel",
            ProviderKind::BedrockCanvas => "bedrock-canvas",
            ProviderKind::OpenAiImage => "openai-image",
        }
    }

    /// `bedrock` alone is the name earlier stacks deployed with; it meant the video model.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "bedrock" => Some(ProviderKind::BedrockReel),
            _ => Self::ALL.into_iter().find(|k| k.as_str() == name),
        }
    }

    /// A fallback chain such as `replicate,bedrock-canvas,procedural`: at least one name, each
    /// known, none twice.
    pub fn parse_chain(raw: &str, setting: &'static str) -> Result<Vec<Self>, ConfigError> {
        let mut chain = Vec::new();
        for name in raw.split(',').map(str::trim) {
            let kind = Self::parse(name).ok_or_else(|| ConfigError::Invalid {
                name: setting,
                why: format!(
                    "unknown provider {name:?} (known: {})",
                    Self::ALL.map(Self::as_str).join(", ")
                ),
            })?;
            if chain.contains(&kind) {
                return Err(ConfigError::Invalid {
                    name: setting,
                    why: format!("{name} is named twice"),
                });
            }
            chain.push(kind);
        }
        Ok(chain)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlannerKind {
    Rules,
    Bedrock,
    OpenAi,
}

impl PlannerKind {
    pub const ALL: [PlannerKind; 3] = [
        PlannerKind::Rules,
        PlannerKind::Bedrock,
        PlannerKind::OpenAi,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PlannerKind::Rules => "rules",
            PlannerKind::Bedrock => "bedrock",
            PlannerKind::OpenAi => "openai",
        }
    }

    pub fn parse(name: &str, setting: &'static str) -> Result<Self, ConfigError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| ConfigError::Invalid {
                name: setting,
                why: format!(
                    "unknown planner {name:?} (known: {})",
                    Self::ALL.map(Self::as_str).join(", ")
                ),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_keeps_its_order_and_refuses_unknown_and_repeated_names() {
        let chain = ProviderKind::parse_chain("replicate, bedrock-canvas,procedural", "X").unwrap();
        assert_eq!(
            chain,
            [
                ProviderKind::Replicate,
                ProviderKind::BedrockCanvas,
                ProviderKind::Procedural
            ]
        );
        let err = ProviderKind::parse_chain("replicate,sora", "VIDPIPE_PROVIDER").unwrap_err();
        assert!(
            err.to_string().contains("unknown provider \"sora\""),
            "{err}"
        );
        assert!(ProviderKind::parse_chain("procedural,procedural", "X").is_err());
        assert!(ProviderKind::parse_chain("", "X").is_err());
        assert_eq!(
            ProviderKind::parse("bedrock"),
            Some(ProviderKind::BedrockReel)
        );
    }
}

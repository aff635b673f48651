//! Bedrock settings read once from the environment (or any lookup), and the runtime client built
//! from the shared SDK configuration with the Bedrock region applied.

use super::{BedrockPlanner, NovaCanvasProvider, NovaReelProvider};
use aws_config::{Region, SdkConfig};
use std::sync::Arc;
use vidpipe_domain::ports::BlobStore;

/// The Nova Reel version that makes 6-second 1280x720 shots from text or text and a first frame.
pub const DEFAULT_REEL_MODEL: &str = "amazon.nova-reel-v1:1";
/// Nova Canvas, text to image.
pub const DEFAULT_CANVAS_MODEL: &str = "amazon.nova-canvas-v1:0";
/// Under the bucket's `temp/` prefix, which a lifecycle rule empties (template.yaml), so the
/// service's copies never need deleting by hand.
pub const DEFAULT_REEL_PREFIX: &str = "temp/bedrock-reel";
/// On-demand price of one second of 720p Nova Reel video in us-east-1, from the Amazon Bedrock
/// pricing page (Amazon Nova, creative content generation).
pub const DEFAULT_REEL_USD_PER_SECOND: f64 = 0.08;
/// On-demand price of one standard-quality Nova Canvas image up to 1024x1024 pixels in
/// us-east-1, from the same page. Every size [`super::canvas_size`] picks for the usual shapes
/// is within that tier.
pub const DEFAULT_CANVAS_USD_PER_IMAGE: f64 = 0.04;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BedrockConfigError {
    #[error("{name} must be a non-negative number of US dollars, not {value:?}")]
    BadPrice { name: &'static str, value: String },
}

/// Everything the Bedrock adapters are configured with.
#[derive(Debug, Clone, PartialEq)]
pub struct BedrockConfig {
    /// `VIDPIPE_BEDROCK_MODEL`: the Converse model (or inference profile) the planner asks, for
    /// example an Anthropic Claude or Amazon Nova model id. `None`: no Bedrock planner.
    pub planner_model: Option<String>,
    /// `VIDPIPE_BEDROCK_REGION`: where Bedrock is called when it differs from the functions' own
    /// region (Nova Reel 1.1 runs in fewer regions than the rest of the stack may).
    pub region: Option<String>,
    /// `VIDPIPE_BEDROCK_REEL_MODEL`.
    pub reel_model: String,
    /// `VIDPIPE_BEDROCK_REEL_PREFIX`: where in our bucket Nova Reel writes its output.
    pub reel_prefix: String,
    /// `VIDPIPE_BEDROCK_CANVAS_MODEL`.
    pub canvas_model: String,
    /// `VIDPIPE_BEDROCK_REEL_USD_PER_SECOND`.
    pub reel_usd_per_second: f64,
    /// `VIDPIPE_BEDROCK_CANVAS_USD_PER_IMAGE`.
    pub canvas_usd_per_image: f64,
}

impl Default for BedrockConfig {
    fn default() -> Self {
        Self {
            planner_model: None,
            region: None,
            reel_model: DEFAULT_REEL_MODEL.to_owned(),
            reel_prefix: DEFAULT_REEL_PREFIX.to_owned(),
            canvas_model: DEFAULT_CANVAS_MODEL.to_owned(),
            reel_usd_per_second: DEFAULT_REEL_USD_PER_SECOND,
            canvas_usd_per_image: DEFAULT_CANVAS_USD_PER_IMAGE,
        }
    }
}

impl BedrockConfig {
    pub const MODEL_VAR: &'static str = "VIDPIPE_BEDROCK_MODEL";
    pub const REGION_VAR: &'static str = "VIDPIPE_BEDROCK_REGION";
    pub const REEL_MODEL_VAR: &'static str = "VIDPIPE_BEDROCK_REEL_MODEL";
    pub const REEL_PREFIX_VAR: &'static str = "VIDPIPE_BEDROCK_REEL_PREFIX";
    pub const CANVAS_MODEL_VAR: &'static str = "VIDPIPE_BEDROCK_CANVAS_MODEL";
    pub const REEL_PRICE_VAR: &'static str = "VIDPIPE_BEDROCK_REEL_USD_PER_SECOND";
    pub const CANVAS_PRICE_VAR: &'static str = "VIDPIPE_BEDROCK_CANVAS_USD_PER_IMAGE";

    /// Reads the settings through `lookup` (`|k| std::env::var(k).ok()` in a function), so tests
    /// never touch the process environment. Blank values count as unset.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, BedrockConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let price = |name: &'static str, default: f64| match get(name) {
            None => Ok(default),
            Some(value) => match value.parse::<f64>() {
                Ok(usd) if usd.is_finite() && usd >= 0.0 => Ok(usd),
                _ => Err(BedrockConfigError::BadPrice { name, value }),
            },
        };
        let defaults = Self::default();
        Ok(Self {
            planner_model: get(Self::MODEL_VAR),
            region: get(Self::REGION_VAR),
            reel_model: get(Self::REEL_MODEL_VAR).unwrap_or(defaults.reel_model),
            reel_prefix: get(Self::REEL_PREFIX_VAR)
                .map(|p| p.trim_matches('/').to_owned())
                .unwrap_or(defaults.reel_prefix),
            canvas_model: get(Self::CANVAS_MODEL_VAR).unwrap_or(defaults.canvas_model),
            reel_usd_per_second: price(Self::REEL_PRICE_VAR, defaults.reel_usd_per_second)?,
            canvas_usd_per_image: price(Self::CANVAS_PRICE_VAR, defaults.canvas_usd_per_image)?,
        })
    }

    /// A Bedrock runtime client from the shared configuration (its HTTPS client, credentials,
    /// endpoint override and retry settings), in [`Self::region`] when one is set.
    pub fn client(&self, sdk: &SdkConfig) -> aws_sdk_bedrockruntime::Client {
        let mut builder = aws_sdk_bedrockruntime::config::Builder::from(sdk);
        if let Some(region) = &self.region {
            builder = builder.region(Region::new(region.clone()));
        }
        aws_sdk_bedrockruntime::Client::from_conf(builder.build())
    }

    /// The planner on [`Self::planner_model`], or `None` when no model is configured.
    pub fn planner(&self, client: &aws_sdk_bedrockruntime::Client) -> Option<BedrockPlanner> {
        self.planner_model
            .as_ref()
            .map(|model| BedrockPlanner::new(client.clone(), model.clone()))
    }

    /// Nova Reel writing under [`Self::reel_prefix`] of `bucket`, which `blobs` must serve.
    pub fn reel(
        &self,
        client: &aws_sdk_bedrockruntime::Client,
        blobs: Arc<dyn BlobStore>,
        bucket: impl Into<String>,
    ) -> NovaReelProvider {
        NovaReelProvider::new(client.clone(), blobs, bucket, self.reel_prefix.clone())
            .with_model(self.reel_model.clone())
            .with_price_per_second(self.reel_usd_per_second)
    }

    pub fn canvas(&self, client: &aws_sdk_bedrockruntime::Client) -> NovaCanvasProvider {
        NovaCanvasProvider::new(client.clone())
            .with_model(self.canvas_model.clone())
            .with_price_per_image(self.canvas_usd_per_image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn unset_variables_take_the_defaults_and_prices_are_checked() {
        let config = BedrockConfig::from_lookup(|_| None).unwrap();
        assert_eq!(config, BedrockConfig::default());

        let vars: HashMap<&str, &str> = HashMap::from([
            (
                "VIDPIPE_BEDROCK_MODEL",
                "anthropic.claude-3-5-haiku-20241022-v1:0",
            ),
            ("VIDPIPE_BEDROCK_REGION", " us-west-2 "),
            ("VIDPIPE_BEDROCK_REEL_PREFIX", "/temp/reel/"),
            ("VIDPIPE_BEDROCK_REEL_USD_PER_SECOND", "0.1"),
            ("VIDPIPE_BEDROCK_CANVAS_MODEL", ""),
        ]);
        let config = BedrockConfig::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(
            config.planner_model.as_deref(),
            Some("anthropic.claude-3-5-haiku-20241022-v1:0")
        );
        assert_eq!(config.region.as_deref(), Some("us-west-2"));
        assert_eq!(config.reel_prefix, "temp/reel");
        assert_eq!(config.reel_usd_per_second, 0.1);
        assert_eq!(config.canvas_model, DEFAULT_CANVAS_MODEL);

        let bad = BedrockConfig::from_lookup(|k| {
            (k == "VIDPIPE_BEDROCK_CANVAS_USD_PER_IMAGE").then(|| "-1".to_owned())
        });
        assert_eq!(
            bad,
            Err(BedrockConfigError::BadPrice {
                name: "VIDPIPE_BEDROCK_CANVAS_USD_PER_IMAGE",
                value: "-1".into()
            })
        );
    }
}

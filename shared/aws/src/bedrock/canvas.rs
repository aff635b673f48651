//! Nova Canvas stills: one synchronous `InvokeModel` per scene; the pipeline animates the still
//! into the scene's clip.

use super::error::Failure;
use super::reel::cut_at_word;
use async_trait::async_trait;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::primitives::Blob;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use std::path::Path;
use vidpipe_domain::media::ClipSpec;
use vidpipe_domain::ports::{ClipMedia, ClipProgress, ClipProvider, ProviderCost, ProviderError};

/// Nova Canvas's text-to-image prompt limit, in characters.
const PROMPT_MAX_CHARS: usize = 1024;
/// Nova Canvas accepts seeds 0..=858,993,459.
const SEED_MODULUS: u64 = 858_993_460;
/// Nova Canvas's own default prompt adherence.
const DEFAULT_CFG_SCALE: f64 = 6.5;
const SIDE_MIN: u32 = 320;
const SIDE_MAX: u32 = 4096;
/// 4.19 MP, Nova Canvas's largest image.
const PIXELS_MAX: u32 = 4_194_304;
/// About a megapixel: the price tier of 1024x1024 and plenty for a still the composer scales.
const PIXELS_TARGET: f64 = 1024.0 * 1024.0;

/// The image size asked of Nova Canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanvasSize {
    pub width: u32,
    pub height: u32,
}

/// A size of the clip's shape within Nova Canvas's limits: each side a multiple of 16 from 320
/// to 4096, at most 4.19 MP, the longer side at most four times the shorter. The usual shapes
/// get sizes of about a megapixel; any other shape is scaled to about a megapixel.
pub fn canvas_size(width: u32, height: u32) -> CanvasSize {
    let known = match (width.max(1), height.max(1)) {
        (w, h) if w * 9 == h * 16 => Some((1280, 720)),
        (w, h) if w * 16 == h * 9 => Some((720, 1280)),
        (w, h) if w == h => Some((1024, 1024)),
        (w, h) if w * 5 == h * 4 => Some((896, 1120)),
        _ => None,
    };
    if let Some((width, height)) = known {
        return CanvasSize { width, height };
    }
    let ratio = (width.max(1) as f64 / height.max(1) as f64).clamp(0.25, 4.0);
    let snap = |side: f64| {
        let rounded = ((side / 16.0).round() as u32).max(1) * 16;
        rounded.clamp(SIDE_MIN, SIDE_MAX)
    };
    let h = (PIXELS_TARGET / ratio).sqrt();
    let (mut w, mut h) = (snap(h * ratio), snap(h));
    while w * h > PIXELS_MAX {
        (w, h) = (snap(w as f64 * 0.9), snap(h as f64 * 0.9));
    }
    CanvasSize {
        width: w,
        height: h,
    }
}

/// Nova Canvas as a clip provider that makes stills.
#[derive(Debug, Clone)]
pub struct NovaCanvasProvider {
    client: Client,
    model_id: String,
    usd_per_image: f64,
    cfg_scale: f64,
}

impl NovaCanvasProvider {
    pub const NAME: &'static str = "bedrock-canvas";

    pub fn new(client: Client) -> Self {
        Self {
            client,
            model_id: super::DEFAULT_CANVAS_MODEL.to_owned(),
            usd_per_image: super::DEFAULT_CANVAS_USD_PER_IMAGE,
            cfg_scale: DEFAULT_CFG_SCALE,
        }
    }

    pub fn with_model(mut self, model_id: impl Into<String>) -> Self {
        self.model_id = model_id.into();
        self
    }

    pub fn with_price_per_image(mut self, usd: f64) -> Self {
        self.usd_per_image = usd;
        self
    }

    /// Prompt adherence, 1.1..=10 (Nova Canvas's range).
    pub fn with_cfg_scale(mut self, cfg_scale: f64) -> Self {
        self.cfg_scale = cfg_scale.clamp(1.1, 10.0);
        self
    }

    fn body(&self, spec: &ClipSpec) -> serde_json::Value {
        let size = canvas_size(spec.width, spec.height);
        serde_json::json!({
            "taskType": "TEXT_IMAGE",
            "textToImageParams": { "text": cut_at_word(&spec.visual_prompt, PROMPT_MAX_CHARS) },
            "imageGenerationConfig": {
                "numberOfImages": 1,
                "width": size.width,
                "height": size.height,
                "seed": spec.seed % SEED_MODULUS,
                "quality": "standard",
                "cfgScale": self.cfg_scale,
            }
        })
    }
}

/// Nova Canvas's answer: base64 images, or an error when its filters blocked the output.
#[derive(Deserialize)]
struct CanvasResponse {
    #[serde(default)]
    images: Vec<String>,
    #[serde(default)]
    error: Option<String>,
}

#[async_trait]
impl ClipProvider for NovaCanvasProvider {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn makes_stills(&self) -> bool {
        true
    }

    fn cache_identity(&self) -> String {
        format!(
            "{}/{}/standard/cfg{}",
            Self::NAME,
            self.model_id,
            self.cfg_scale
        )
    }

    async fn submit(
        &self,
        spec: &ClipSpec,
        _identity: &str,
        dest: &Path,
    ) -> Result<ClipProgress, ProviderError> {
        let body = serde_json::to_vec(&self.body(spec))
            .map_err(|e| ProviderError::Failed(format!("cannot encode the request: {e}")))?;
        let out = self
            .client
            .invoke_model()
            .model_id(&self.model_id)
            .content_type("application/json")
            .accept("application/json")
            .body(Blob::new(body))
            .send()
            .await
            .map_err(|e| ProviderError::from(Failure::of("InvokeModel", &e)))?;
        let answer: CanvasResponse = serde_json::from_slice(out.body().as_ref())
            .map_err(|e| ProviderError::Failed(format!("Nova Canvas answered non-JSON: {e}")))?;
        if let Some(error) = answer.error.filter(|e| !e.trim().is_empty()) {
            return Err(ProviderError::Rejected(error));
        }
        let first = answer
            .images
            .first()
            .ok_or_else(|| ProviderError::Failed("Nova Canvas returned no image".to_owned()))?;
        let bytes = BASE64
            .decode(first.as_bytes())
            .map_err(|e| ProviderError::Failed(format!("Nova Canvas image is not base64: {e}")))?;
        tokio::fs::write(dest, bytes)
            .await
            .map_err(|e| ProviderError::Media(e.into()))?;
        Ok(ClipProgress::Ready {
            media: ClipMedia::Image,
            cost: Some(ProviderCost {
                usd: self.usd_per_image,
                basis: format!("1 standard Nova Canvas image at ${}", self.usd_per_image),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_gets_a_size_within_the_limits() {
        assert_eq!(
            canvas_size(1920, 1080),
            CanvasSize {
                width: 1280,
                height: 720
            }
        );
        assert_eq!(
            canvas_size(1080, 1920),
            CanvasSize {
                width: 720,
                height: 1280
            }
        );
        assert_eq!(
            canvas_size(1080, 1080),
            CanvasSize {
                width: 1024,
                height: 1024
            }
        );
        assert_eq!(
            canvas_size(1080, 1350),
            CanvasSize {
                width: 896,
                height: 1120
            }
        );
        for (w, h) in [(4, 3), (3, 4), (21, 9), (1, 10), (10, 1), (2, 3)] {
            let s = canvas_size(w, h);
            assert!(
                s.width.is_multiple_of(16) && s.height.is_multiple_of(16),
                "{w}x{h}: {s:?}"
            );
            assert!((SIDE_MIN..=SIDE_MAX).contains(&s.width), "{w}x{h}: {s:?}");
            assert!((SIDE_MIN..=SIDE_MAX).contains(&s.height), "{w}x{h}: {s:?}");
            assert!(s.width * s.height <= PIXELS_MAX, "{w}x{h}: {s:?}");
            assert!(
                s.width <= 4 * s.height && s.height <= 4 * s.width,
                "{w}x{h}: {s:?}"
            );
        }
    }
}

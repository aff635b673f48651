//! Nova Reel clips: one asynchronous invocation per scene, written by Bedrock into our bucket and
//! fetched through the blob store once the invocation completes.
//!
//! Nova Reel makes 6-second, 1280x720, 24 fps shots whatever the scene asks; the composer fits
//! them to the scene's length and shape (`MediaEngine::fit_clip`). A first frame given as a PNG or
//! JPEG `data:` URI is sent as the shot's starting image; Nova Reel expects it at 1280x720 and
//! refuses other sizes, which surfaces as `Rejected`.

use super::document::json_to_document;
use super::error::Failure;
use async_trait::async_trait;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::types::{
    AsyncInvokeOutputDataConfig, AsyncInvokeS3OutputDataConfig, AsyncInvokeStatus,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use vidpipe_domain::ErrorClass;
use vidpipe_domain::media::ClipSpec;
use vidpipe_domain::ports::{
    BlobError, BlobStore, ClipMedia, ClipProgress, ClipProvider, ProviderCost, ProviderError,
};

/// Length of every shot, the only single-shot length Nova Reel makes.
pub const REEL_SECONDS: u32 = 6;
const REEL_FPS: u32 = 24;
const REEL_DIMENSION: &str = "1280x720";
/// Nova Reel's text-to-video prompt limit, in characters.
const PROMPT_MAX_CHARS: usize = 512;
/// Nova Reel accepts seeds 0..=2,147,483,646, one short of 2^31.
const SEED_MODULUS: u64 = 2_147_483_647;
/// A 6-second shot typically takes about 90 s; polling sooner only spends requests.
const DEFAULT_POLL_AFTER: Duration = Duration::from_secs(30);
/// Where Bedrock leaves the video inside the invocation's output folder.
const OUTPUT_FILE: &str = "output.mp4";

/// Nova Reel as a clip provider. See the module doc for what it makes.
#[derive(Clone)]
pub struct NovaReelProvider {
    client: Client,
    blobs: Arc<dyn BlobStore>,
    bucket: String,
    prefix: String,
    model_id: String,
    usd_per_second: f64,
    poll_after: Duration,
}

impl std::fmt::Debug for NovaReelProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NovaReelProvider")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("model_id", &self.model_id)
            .finish_non_exhaustive()
    }
}

impl NovaReelProvider {
    pub const NAME: &'static str = "bedrock-reel";

    /// `blobs` must be the store over `bucket`: Bedrock writes each video under
    /// `s3://{bucket}/{prefix}/` and the provider reads it back through `blobs`.
    pub fn new(
        client: Client,
        blobs: Arc<dyn BlobStore>,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
    ) -> Self {
        Self {
            client,
            blobs,
            bucket: bucket.into(),
            prefix: prefix.into().trim_matches('/').to_owned(),
            model_id: super::DEFAULT_REEL_MODEL.to_owned(),
            usd_per_second: super::DEFAULT_REEL_USD_PER_SECOND,
            poll_after: DEFAULT_POLL_AFTER,
        }
    }

    pub fn with_model(mut self, model_id: impl Into<String>) -> Self {
        self.model_id = model_id.into();
        self
    }

    pub fn with_price_per_second(mut self, usd: f64) -> Self {
        self.usd_per_second = usd;
        self
    }

    pub fn with_poll_after(mut self, poll_after: Duration) -> Self {
        self.poll_after = poll_after;
        self
    }

    fn output_uri(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}/", self.bucket)
        } else {
            format!("s3://{}/{}/", self.bucket, self.prefix)
        }
    }

    /// The key in our bucket of the video in the invocation folder `s3_uri`; another bucket is
    /// refused, as the blob store could only read a same-named key of ours.
    fn video_key(&self, s3_uri: &str) -> Result<String, ProviderError> {
        let rest = s3_uri
            .strip_prefix("s3://")
            .ok_or_else(|| ProviderError::Failed(format!("output {s3_uri:?} is not an s3 URI")))?;
        let (bucket, folder) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket != self.bucket {
            return Err(ProviderError::Failed(format!(
                "output {s3_uri:?} is outside bucket {}",
                self.bucket
            )));
        }
        let folder = folder.trim_end_matches('/');
        Ok(if folder.is_empty() {
            OUTPUT_FILE.to_owned()
        } else {
            format!("{folder}/{OUTPUT_FILE}")
        })
    }

    fn cost(&self) -> ProviderCost {
        ProviderCost {
            usd: REEL_SECONDS as f64 * self.usd_per_second,
            basis: format!(
                "{REEL_SECONDS} s of Nova Reel video at ${}/s",
                self.usd_per_second
            ),
        }
    }
}

/// The `clientRequestToken` for a clip: a digest of its identity, so a resubmission after a lost
/// response names the same invocation and Bedrock starts (and bills) nothing new. 64 hex digits
/// fit the API's 1..=256 printable-ASCII limit whatever the identity holds.
pub fn reel_request_token(identity: &str) -> String {
    hex::encode(Sha256::digest(format!("vidpipe/bedrock-reel/{identity}")))
}

/// The model input for one scene, as Nova Reel's text-to-video task takes it.
fn model_input(spec: &ClipSpec) -> Result<serde_json::Value, ProviderError> {
    let mut params =
        serde_json::json!({ "text": cut_at_word(&spec.visual_prompt, PROMPT_MAX_CHARS) });
    if let Some(image) = first_frame_image(spec.first_frame.as_deref())? {
        params["images"] = serde_json::json!([image]);
    }
    Ok(serde_json::json!({
        "taskType": "TEXT_VIDEO",
        "textToVideoParams": params,
        "videoGenerationConfig": {
            "durationSeconds": REEL_SECONDS,
            "fps": REEL_FPS,
            "dimension": REEL_DIMENSION,
            "seed": spec.seed % SEED_MODULUS,
        }
    }))
}

/// The first frame as Nova Reel's image source, when it is a `data:` URI; an `https` URL cannot
/// be passed to Bedrock and the scene is made from its text alone.
fn first_frame_image(
    first_frame: Option<&str>,
) -> Result<Option<serde_json::Value>, ProviderError> {
    let Some(uri) = first_frame else {
        return Ok(None);
    };
    let Some(rest) = uri.strip_prefix("data:") else {
        tracing::debug!("bedrock-reel: first frame is not a data: URI; text only");
        return Ok(None);
    };
    let (header, data) = rest
        .split_once(',')
        .ok_or_else(|| ProviderError::Rejected("first frame data: URI has no comma".to_owned()))?;
    let mut parts = header.split(';');
    let format = match parts.next().map(str::to_ascii_lowercase).as_deref() {
        Some("image/png") => "png",
        Some("image/jpeg" | "image/jpg") => "jpeg",
        other => {
            return Err(ProviderError::Rejected(format!(
                "Nova Reel takes a PNG or JPEG first frame, not {}",
                other.unwrap_or("an untyped one")
            )));
        }
    };
    if !parts.any(|p| p.eq_ignore_ascii_case("base64")) {
        return Err(ProviderError::Rejected(
            "first frame data: URI is not base64".to_owned(),
        ));
    }
    // Decoded and re-encoded so that a URI with line breaks or URL-safe padding still reaches
    // Bedrock as the standard alphabet it requires.
    let cleaned: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = BASE64
        .decode(cleaned.as_bytes())
        .map_err(|e| ProviderError::Rejected(format!("first frame is not valid base64: {e}")))?;
    Ok(Some(serde_json::json!({
        "format": format,
        "source": { "bytes": BASE64.encode(bytes) }
    })))
}

/// At most `max` characters, cut at the last space before the limit where there is one.
pub(crate) fn cut_at_word(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let head: String = text.chars().take(max).collect();
    let next_is_space = text.chars().nth(max).is_some_and(char::is_whitespace);
    if next_is_space {
        return head.trim_end().to_owned();
    }
    match head.rfind(char::is_whitespace) {
        Some(at) if at > 0 => head[..at].trim_end().to_owned(),
        _ => head,
    }
}

/// Fails a completed invocation as Rejected when Bedrock blamed the input.
fn failed_invocation(message: &str) -> ProviderError {
    let lower = message.to_ascii_lowercase();
    if ["content", "validation", "filter", "policy", "moderat"]
        .iter()
        .any(|w| lower.contains(w))
    {
        ProviderError::Rejected(message.to_owned())
    } else {
        ProviderError::Failed(message.to_owned())
    }
}

fn blob_error(key: &str, e: BlobError) -> ProviderError {
    match e.class() {
        ErrorClass::Retryable => ProviderError::Unavailable(format!("cannot fetch {key}: {e}")),
        _ => ProviderError::Failed(format!("cannot fetch {key}: {e}")),
    }
}

#[async_trait]
impl ClipProvider for NovaReelProvider {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn cache_identity(&self) -> String {
        format!(
            "{}/{}/{REEL_SECONDS}s-{REEL_DIMENSION}-{REEL_FPS}fps",
            Self::NAME,
            self.model_id
        )
    }

    async fn submit(
        &self,
        spec: &ClipSpec,
        identity: &str,
        _dest: &Path,
    ) -> Result<ClipProgress, ProviderError> {
        let input = model_input(spec)?;
        let s3 = AsyncInvokeS3OutputDataConfig::builder()
            .s3_uri(self.output_uri())
            .build()
            .map_err(|e| ProviderError::Failed(format!("cannot build the output config: {e}")))?;
        let out = self
            .client
            .start_async_invoke()
            .model_id(&self.model_id)
            .client_request_token(reel_request_token(identity))
            .model_input(json_to_document(&input))
            .output_data_config(AsyncInvokeOutputDataConfig::S3OutputDataConfig(s3))
            .send()
            .await
            .map_err(|e| ProviderError::from(Failure::of("StartAsyncInvoke", &e)))?;
        Ok(ClipProgress::Pending {
            handle: out.invocation_arn().to_owned(),
            poll_after: self.poll_after,
        })
    }

    async fn poll(&self, handle: &str, dest: &Path) -> Result<ClipProgress, ProviderError> {
        let out = self
            .client
            .get_async_invoke()
            .invocation_arn(handle)
            .send()
            .await
            .map_err(|e| ProviderError::from(Failure::of("GetAsyncInvoke", &e)))?;
        match out.status() {
            AsyncInvokeStatus::InProgress => Ok(ClipProgress::Pending {
                handle: handle.to_owned(),
                poll_after: self.poll_after,
            }),
            AsyncInvokeStatus::Completed => {
                let uri = match out.output_data_config() {
                    Some(AsyncInvokeOutputDataConfig::S3OutputDataConfig(s3)) => s3.s3_uri(),
                    _ => {
                        return Err(ProviderError::Failed(format!(
                            "invocation {handle} completed without an S3 output"
                        )));
                    }
                };
                let key = self.video_key(uri)?;
                self.blobs
                    .get_to_file(&key, dest)
                    .await
                    .map_err(|e| blob_error(&key, e))?;
                Ok(ClipProgress::Ready {
                    media: ClipMedia::Video,
                    cost: Some(self.cost()),
                })
            }
            AsyncInvokeStatus::Failed => Err(failed_invocation(
                out.failure_message()
                    .unwrap_or("the invocation failed without a message"),
            )),
            other => Err(ProviderError::Failed(format!(
                "invocation {handle} has unknown status {}",
                other.as_str()
            ))),
        }
    }

    /// Bedrock has no call that stops an async invocation: it runs to its end and is billed
    /// either way. There is nothing to do, so this succeeds, and the output it leaves expires
    /// with the bucket's `temp/` lifecycle rule.
    async fn cancel(&self, handle: &str) -> Result<(), ProviderError> {
        tracing::debug!(handle, "bedrock-reel: async invocations cannot be stopped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_cut_at_a_word() {
        assert_eq!(cut_at_word("  short  ", 10), "short");
        assert_eq!(cut_at_word("alpha beta gamma", 10), "alpha beta");
        assert_eq!(cut_at_word("alpha beta gamma", 12), "alpha beta");
        assert_eq!(cut_at_word("abcdefghijkl", 5), "abcde");
    }

    #[test]
    fn request_tokens_are_stable_hex_and_differ_per_identity() {
        let a = reel_request_token("job-1/scene-0/attempt");
        assert_eq!(a, reel_request_token("job-1/scene-0/attempt"));
        assert_ne!(a, reel_request_token("job-1/scene-1/attempt"));
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn failure_messages_about_the_input_are_rejections() {
        assert!(matches!(
            failed_invocation("The output was blocked by our content filters."),
            ProviderError::Rejected(_)
        ));
        assert!(matches!(
            failed_invocation("Internal error"),
            ProviderError::Failed(_)
        ));
    }
}

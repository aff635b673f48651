//! OpenAI-compatible speech (`POST /audio/speech`: OpenAI itself, or a local server such as
//! LocalAI or Kokoro-FastAPI) as a [`Narrator`]. It answers MP3 bytes and no word times, which
//! the pipeline estimates from the audio's length. Input over the endpoint's limit is spoken in
//! pieces split at sentence ends, and their MP3s are joined.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::json;
use vidpipe_domain::mp3;
use vidpipe_domain::narration::{AudioFormat, Speech, SpeechSpec, split_for_limit};
use vidpipe_domain::ports::{Narrator, ProviderCost, ProviderError};

use crate::openai::{
    CallError, GaveUp, Http, OpenAiConfig, OpenAiConfigError, RetryPolicy, write_atomically,
};

pub const ENV_TTS_MODEL: &str = "VIDPIPE_OPENAI_TTS_MODEL";
pub const ENV_TTS_VOICE: &str = "VIDPIPE_OPENAI_TTS_VOICE";
pub const ENV_TTS_PRICE: &str = "VIDPIPE_OPENAI_TTS_USD_PER_MILLION_CHARS";
pub const DEFAULT_TTS_MODEL: &str = "gpt-4o-mini-tts";
pub const DEFAULT_TTS_VOICE: &str = "alloy";
/// The endpoint refuses `input` over 4096 characters; pieces are cut at this many bytes, which
/// is never more characters.
pub const MAX_INPUT_CHARS: usize = 4096;

/// What to ask the speech endpoint for.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechSettings {
    /// `VIDPIPE_OPENAI_TTS_MODEL`.
    pub model: String,
    /// `VIDPIPE_OPENAI_TTS_VOICE`: used when a spec names no voice.
    pub voice: String,
    /// `VIDPIPE_OPENAI_TTS_USD_PER_MILLION_CHARS`: the input's price, reported as the speech's
    /// cost; unset reports none (local servers bill nothing, and gpt-4o-mini-tts bills by
    /// tokens, which this endpoint does not report).
    pub usd_per_million_chars: Option<f64>,
}

impl Default for SpeechSettings {
    fn default() -> Self {
        Self {
            model: DEFAULT_TTS_MODEL.to_owned(),
            voice: DEFAULT_TTS_VOICE.to_owned(),
            usd_per_million_chars: None,
        }
    }
}

impl SpeechSettings {
    /// Reads the `VIDPIPE_OPENAI_TTS_*` variables through `lookup`; blank values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, OpenAiConfigError> {
        let get = |var: &str| {
            lookup(var)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let defaults = Self::default();
        let usd_per_million_chars = match get(ENV_TTS_PRICE) {
            None => None,
            Some(raw) => match raw.parse::<f64>() {
                Ok(p) if p.is_finite() && p >= 0.0 => Some(p),
                _ => {
                    return Err(OpenAiConfigError::Invalid {
                        var: ENV_TTS_PRICE,
                        reason: format!("must be a non-negative number of USD (got {raw:?})"),
                    });
                }
            },
        };
        Ok(Self {
            model: get(ENV_TTS_MODEL).unwrap_or(defaults.model),
            voice: get(ENV_TTS_VOICE).unwrap_or(defaults.voice),
            usd_per_million_chars,
        })
    }
}

/// Speech from an OpenAI-compatible server, in MP3.
#[derive(Debug, Clone)]
pub struct OpenAiSpeech {
    http: Http,
    settings: SpeechSettings,
    retry: RetryPolicy,
}

impl OpenAiSpeech {
    pub const NAME: &'static str = "openai-speech";

    pub fn new(config: &OpenAiConfig, settings: SpeechSettings) -> Result<Self, OpenAiConfigError> {
        Ok(Self {
            // A full 4096-character piece takes OpenAI tens of seconds; a CPU server longer.
            http: Http::new(config, Duration::from_secs(180))?,
            settings,
            retry: RetryPolicy::default(),
        })
    }

    /// Reads `OPENAI_BASE_URL`, `OPENAI_API_KEY` and `VIDPIPE_OPENAI_TTS_*` through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, OpenAiConfigError> {
        let config = OpenAiConfig::from_lookup(&lookup)?;
        Self::new(&config, SpeechSettings::from_lookup(&lookup)?)
    }

    /// [`Self::from_lookup`] over the process environment.
    pub fn from_env() -> Result<Self, OpenAiConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn settings(&self) -> &SpeechSettings {
        &self.settings
    }

    fn provider_error(gave_up: GaveUp) -> ProviderError {
        let reason = gave_up.describe();
        match gave_up.error {
            CallError::Transport(_) => ProviderError::Unavailable(reason),
            CallError::BadBody(_) => ProviderError::Failed(reason),
            CallError::Status { status, .. } if status.is_server_error() => {
                ProviderError::Unavailable(reason)
            }
            CallError::Status { status, .. }
                if status == StatusCode::TOO_MANY_REQUESTS && gave_up.error.is_quota() =>
            {
                ProviderError::Failed(reason)
            }
            CallError::Status {
                status,
                retry_after,
                ..
            } if status == StatusCode::TOO_MANY_REQUESTS => {
                ProviderError::Throttled { retry_after }
            }
            // The input, voice or model refused: the same request would be refused again.
            CallError::Status { status, .. } if status == StatusCode::BAD_REQUEST => {
                ProviderError::Rejected(reason)
            }
            CallError::Status { .. } => ProviderError::Failed(reason),
        }
    }

    async fn speak_piece(&self, input: &str, voice: &str) -> Result<Vec<u8>, ProviderError> {
        let body = json!({
            "model": self.settings.model,
            "input": input,
            "voice": voice,
            "response_format": "mp3",
        });
        let bytes = self
            .retry
            .run(Self::NAME, "speech request", || {
                self.http.post_bytes("audio/speech", &body)
            })
            .await
            .map_err(Self::provider_error)?;
        // A server that ignored `response_format` (or an error page sent with a 200) must not
        // be stored as narration.
        mp3::audio_frames(&bytes).map_err(|e| {
            ProviderError::Failed(format!("the speech answer is not MP3 audio: {e}"))
        })?;
        Ok(bytes)
    }
}

#[async_trait]
impl Narrator for OpenAiSpeech {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn cache_identity(&self) -> String {
        format!(
            "{}|{}|voice={}|mp3",
            Self::NAME,
            self.settings.model,
            self.settings.voice
        )
    }

    async fn speak(&self, spec: &SpeechSpec, dest: &Path) -> Result<Speech, ProviderError> {
        let voice = spec
            .voice
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .unwrap_or(&self.settings.voice);
        if spec.text.trim().is_empty() {
            return Err(ProviderError::Rejected("there is no text to speak".into()));
        }
        let mut audio = Vec::new();
        for (_, piece) in split_for_limit(&spec.text, MAX_INPUT_CHARS) {
            if !piece.trim().is_empty() {
                audio.push(self.speak_piece(piece, voice).await?);
            }
        }
        let pieces = audio.len();
        let bytes = match audio.len() {
            1 => audio.pop().unwrap_or_default(),
            _ => mp3::concat(&audio)
                .map_err(|e| ProviderError::Failed(format!("cannot join the speech: {e}")))?,
        };
        write_atomically(dest, &bytes).await?;
        let characters = spec.text.chars().count();
        tracing::info!(
            narrator = Self::NAME,
            model = %self.settings.model,
            voice = %voice,
            pieces,
            characters,
            bytes = bytes.len(),
            "speech ready"
        );
        Ok(Speech {
            format: AudioFormat::Mp3,
            words: Vec::new(),
            cost: self
                .settings
                .usd_per_million_chars
                .map(|rate| ProviderCost {
                    usd: characters as f64 * rate / 1_000_000.0,
                    basis: format!(
                        "{characters} characters of {} speech at ${rate} per million",
                        self.settings.model
                    ),
                }),
        })
    }
}

//! Amazon Polly as a [`Narrator`]: MP3 speech from `SynthesizeSpeech`, and word times from a
//! second call for its word speech marks. Text over Polly's per-request limit is spoken in
//! pieces split at sentence ends, whose MP3s are joined and whose marks are moved along by the
//! audio before them.

use crate::error::{code_of, describe, status_of};
use async_trait::async_trait;
use aws_config::{Region, SdkConfig};
use aws_sdk_polly::Client;
use aws_sdk_polly::config::http::HttpResponse;
use aws_sdk_polly::error::SdkError;
use aws_sdk_polly::operation::synthesize_speech::SynthesizeSpeechError;
use aws_sdk_polly::types::{Engine, OutputFormat, SpeechMarkType, TextType, VoiceId};
use serde::Deserialize;
use std::path::Path;
use vidpipe_domain::mp3;
use vidpipe_domain::narration::{AudioFormat, Speech, SpeechSpec, WordTiming, split_for_limit};
use vidpipe_domain::ports::{MediaError, Narrator, ProviderCost, ProviderError};

/// A US English voice that every engine but long-form speaks.
pub const DEFAULT_VOICE: &str = "Joanna";
pub const DEFAULT_ENGINE: &str = "neural";
/// `SynthesizeSpeech` bills at most 3000 characters a request. Pieces are cut at this many
/// bytes, which is never more characters.
pub const MAX_CHARS: usize = 3000;
/// Polly's engines, each priced differently.
pub const ENGINES: [&str; 4] = ["standard", "neural", "long-form", "generative"];

/// On-demand USD per million characters by engine, from the Amazon Polly pricing page. Speech
/// marks requests are billed like speech, so a narration costs its characters twice.
pub fn usd_per_million_chars(engine: &str) -> Option<f64> {
    match engine {
        "standard" => Some(4.0),
        "neural" => Some(16.0),
        "long-form" => Some(100.0),
        "generative" => Some(30.0),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollyConfigError {
    #[error("{var} must be one of standard, neural, long-form or generative, not {value:?}")]
    BadEngine { var: &'static str, value: String },
}

/// The voice and engine used when a spec names none, and where Polly is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollySettings {
    /// `VIDPIPE_POLLY_VOICE`.
    pub voice: String,
    /// `VIDPIPE_POLLY_ENGINE`: one of [`ENGINES`].
    pub engine: String,
    /// `VIDPIPE_POLLY_REGION`: when Polly should be called outside the functions' region (the
    /// long-form engine is offered in few regions).
    pub region: Option<String>,
}

impl Default for PollySettings {
    fn default() -> Self {
        Self {
            voice: DEFAULT_VOICE.to_owned(),
            engine: DEFAULT_ENGINE.to_owned(),
            region: None,
        }
    }
}

impl PollySettings {
    pub const VOICE_VAR: &'static str = "VIDPIPE_POLLY_VOICE";
    pub const ENGINE_VAR: &'static str = "VIDPIPE_POLLY_ENGINE";
    pub const REGION_VAR: &'static str = "VIDPIPE_POLLY_REGION";

    /// Reads the settings through `lookup`, so tests never touch the process environment.
    /// Blank values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, PollyConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let defaults = Self::default();
        let engine = match get(Self::ENGINE_VAR) {
            None => defaults.engine,
            Some(e) if ENGINES.contains(&e.as_str()) => e,
            Some(value) => {
                return Err(PollyConfigError::BadEngine {
                    var: Self::ENGINE_VAR,
                    value,
                });
            }
        };
        Ok(Self {
            voice: get(Self::VOICE_VAR).unwrap_or(defaults.voice),
            engine,
            region: get(Self::REGION_VAR),
        })
    }

    pub fn from_env() -> Result<Self, PollyConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// A Polly client from the shared configuration (HTTPS client, credentials, endpoint
    /// override, retries), in [`Self::region`] when one is set.
    pub fn client(&self, sdk: &SdkConfig) -> Client {
        let mut builder = aws_sdk_polly::config::Builder::from(sdk);
        if let Some(region) = &self.region {
            builder = builder.region(Region::new(region.clone()));
        }
        Client::from_conf(builder.build())
    }
}

/// Amazon Polly narrating in MP3 with word marks.
#[derive(Debug, Clone)]
pub struct PollyNarrator {
    client: Client,
    settings: PollySettings,
}

impl PollyNarrator {
    pub const NAME: &'static str = "polly";

    /// `client` should come from [`PollySettings::client`] so the region setting applies.
    pub fn new(client: Client, settings: PollySettings) -> Self {
        Self { client, settings }
    }

    /// Reads `VIDPIPE_POLLY_*` from the process environment and builds the client.
    pub fn from_env(sdk: &SdkConfig) -> Result<Self, PollyConfigError> {
        let settings = PollySettings::from_env()?;
        Ok(Self::new(settings.client(sdk), settings))
    }

    pub fn settings(&self) -> &PollySettings {
        &self.settings
    }

    async fn synthesize(
        &self,
        text: &str,
        voice: &str,
        engine: &str,
        marks: bool,
    ) -> Result<Synthesized, ProviderError> {
        let mut call = self
            .client
            .synthesize_speech()
            .text(text)
            .text_type(TextType::Text)
            .voice_id(VoiceId::from(voice))
            .engine(Engine::from(engine));
        call = if marks {
            call.output_format(OutputFormat::Json)
                .speech_mark_types(SpeechMarkType::Word)
        } else {
            call.output_format(OutputFormat::Mp3)
        };
        let operation = if marks {
            "SynthesizeSpeech (word marks)"
        } else {
            "SynthesizeSpeech"
        };
        let out = call.send().await.map_err(|e| failure(operation, &e))?;
        let characters = u64::try_from(out.request_characters()).unwrap_or(0);
        let bytes = out
            .audio_stream
            .collect()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("{operation}: body lost: {e}")))?
            .into_bytes()
            .to_vec();
        Ok(Synthesized {
            bytes,
            // Polly reports what it billed; counting ourselves is the fallback.
            characters: if characters > 0 {
                characters
            } else {
                text.chars().count() as u64
            },
        })
    }
}

struct Synthesized {
    bytes: Vec<u8>,
    characters: u64,
}

/// One line of Polly's speech-marks stream.
#[derive(Deserialize)]
struct Mark {
    time: u64,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    start: usize,
    #[serde(default)]
    end: usize,
}

/// The word marks in a marks stream (JSON lines), as byte ranges of `piece` with their times.
/// A mark off the text or off a character boundary is dropped rather than failing the speech:
/// the audio is good, and captions fall back to the marks that are.
fn word_marks(stream: &[u8], piece: &str) -> Result<Vec<(usize, usize, u64)>, ProviderError> {
    let text = std::str::from_utf8(stream)
        .map_err(|_| ProviderError::Failed("Polly's speech marks are not UTF-8".into()))?;
    let mut words = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mark: Mark = serde_json::from_str(line).map_err(|e| {
            ProviderError::Failed(format!("Polly sent a speech mark that is not JSON: {e}"))
        })?;
        if mark.kind != "word" {
            continue;
        }
        let on_text = mark.start < mark.end
            && mark.end <= piece.len()
            && piece.is_char_boundary(mark.start)
            && piece.is_char_boundary(mark.end);
        if !on_text {
            tracing::warn!(
                narrator = PollyNarrator::NAME,
                start = mark.start,
                end = mark.end,
                "dropping a word mark outside the text"
            );
            continue;
        }
        words.push((mark.start, mark.end, mark.time));
    }
    Ok(words)
}

/// Each word heard until the next one starts, the last until the audio ends; times never go
/// backwards, whatever the marks said.
fn close_words(mut words: Vec<WordTiming>, total_ms: u32) -> Vec<WordTiming> {
    let mut last = 0;
    for w in &mut words {
        w.start_ms = w.start_ms.max(last).min(total_ms);
        last = w.start_ms;
    }
    let starts: Vec<u32> = words.iter().skip(1).map(|w| w.start_ms).collect();
    for (i, w) in words.iter_mut().enumerate() {
        w.end_ms = starts.get(i).copied().unwrap_or(total_ms).max(w.start_ms);
    }
    words
}

/// What a failed `SynthesizeSpeech` means: slow down, try later, or this text or voice will
/// never be spoken.
fn failure(operation: &str, err: &SdkError<SynthesizeSpeechError, HttpResponse>) -> ProviderError {
    let described = describe(operation, err);
    match err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            return ProviderError::Unavailable(described);
        }
        SdkError::DispatchFailure(d) if !d.is_user() => {
            return ProviderError::Unavailable(described);
        }
        SdkError::ServiceError(_) => {}
        _ => return ProviderError::Failed(described),
    }
    let status = status_of(err).unwrap_or(0);
    match code_of(err) {
        // Polly sends no Retry-After; the caller's backoff decides.
        Some("ThrottlingException" | "TooManyRequestsException") => {
            ProviderError::Throttled { retry_after: None }
        }
        _ if status == 429 => ProviderError::Throttled { retry_after: None },
        Some("ServiceFailureException") => ProviderError::Unavailable(described),
        _ if status >= 500 => ProviderError::Unavailable(described),
        Some(
            "TextLengthExceededException"
            | "InvalidSsmlException"
            | "LexiconNotFoundException"
            | "EngineNotSupportedException"
            | "LanguageNotSupportedException"
            | "InvalidSampleRateException"
            | "MarksNotSupportedForFormatException"
            | "SsmlMarksNotSupportedForTextTypeException"
            | "ValidationException",
        ) => ProviderError::Rejected(described),
        _ => ProviderError::Failed(described),
    }
}

/// Writes beside `dest` and renames, so a crash mid-write never leaves truncated speech that a
/// retry would take for finished.
async fn write_atomically(dest: &Path, bytes: &[u8]) -> Result<(), MediaError> {
    let mut tmp = dest.as_os_str().to_owned();
    tmp.push(".part");
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, dest).await?;
    Ok(())
}

#[async_trait]
impl Narrator for PollyNarrator {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn cache_identity(&self) -> String {
        format!(
            "{}|voice={}|engine={}|mp3",
            Self::NAME,
            self.settings.voice,
            self.settings.engine
        )
    }

    async fn speak(&self, spec: &SpeechSpec, dest: &Path) -> Result<Speech, ProviderError> {
        let pick = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let voice = pick(&spec.voice).unwrap_or_else(|| self.settings.voice.clone());
        let engine = pick(&spec.engine).unwrap_or_else(|| self.settings.engine.clone());
        let Some(rate) = usd_per_million_chars(&engine) else {
            return Err(ProviderError::Rejected(format!(
                "Polly has no engine {engine:?} (standard, neural, long-form, generative)"
            )));
        };
        if spec.text.trim().is_empty() {
            return Err(ProviderError::Rejected("there is no text to speak".into()));
        }

        let mut audio = Vec::new();
        let mut words = Vec::new();
        let mut offset_ms: u32 = 0;
        let mut characters: u64 = 0;
        for (start, piece) in split_for_limit(&spec.text, MAX_CHARS) {
            if piece.trim().is_empty() {
                continue;
            }
            let (sound, marks) = tokio::try_join!(
                self.synthesize(piece, &voice, &engine, false),
                self.synthesize(piece, &voice, &engine, true),
            )?;
            let piece_ms = mp3::duration_ms(&sound.bytes)
                .map_err(|e| ProviderError::Failed(format!("Polly's audio is not MP3: {e}")))?;
            for (s, e, time) in word_marks(&marks.bytes, piece)? {
                // A mark past its piece's audio would overlap the next piece's words.
                let local = u32::try_from(time).unwrap_or(u32::MAX).min(piece_ms);
                words.push(WordTiming {
                    start: start + s,
                    end: start + e,
                    start_ms: offset_ms.saturating_add(local),
                    end_ms: 0,
                });
            }
            offset_ms = offset_ms.saturating_add(piece_ms);
            characters += sound.characters + marks.characters;
            audio.push(sound.bytes);
        }
        let pieces = audio.len();
        let bytes = match audio.len() {
            1 => audio.pop().unwrap_or_default(),
            _ => mp3::concat(&audio)
                .map_err(|e| ProviderError::Failed(format!("cannot join Polly's audio: {e}")))?,
        };
        write_atomically(dest, &bytes).await?;
        tracing::info!(
            narrator = Self::NAME,
            voice = %voice,
            engine = %engine,
            pieces,
            characters,
            duration_ms = offset_ms,
            words = words.len(),
            "speech ready"
        );
        Ok(Speech {
            format: AudioFormat::Mp3,
            words: close_words(words, offset_ms),
            cost: Some(ProviderCost {
                usd: characters as f64 * rate / 1_000_000.0,
                basis: format!(
                    "{characters} characters of {engine} speech and word marks at ${rate} per million"
                ),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn settings_default_and_refuse_an_unknown_engine() {
        assert_eq!(
            PollySettings::from_lookup(|_| None).unwrap(),
            PollySettings::default()
        );
        let vars = HashMap::from([
            ("VIDPIPE_POLLY_VOICE", " Matthew "),
            ("VIDPIPE_POLLY_ENGINE", "long-form"),
            ("VIDPIPE_POLLY_REGION", "us-east-1"),
        ]);
        let s = PollySettings::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(
            s,
            PollySettings {
                voice: "Matthew".into(),
                engine: "long-form".into(),
                region: Some("us-east-1".into()),
            }
        );
        let bad = PollySettings::from_lookup(|k| {
            (k == "VIDPIPE_POLLY_ENGINE").then(|| "turbo".to_owned())
        });
        assert_eq!(
            bad,
            Err(PollyConfigError::BadEngine {
                var: "VIDPIPE_POLLY_ENGINE",
                value: "turbo".into()
            })
        );
    }

    #[test]
    fn word_marks_keep_words_on_the_text_only() {
        let piece = "Hé said hi.";
        let stream = concat!(
            r#"{"time":6,"type":"sentence","start":0,"end":12,"value":"Hé said hi."}"#,
            "\n",
            r#"{"time":6,"type":"word","start":0,"end":3,"value":"Hé"}"#,
            "\n",
            r#"{"time":300,"type":"word","start":4,"end":8,"value":"said"}"#,
            "\n",
            r#"{"time":400,"type":"word","start":1,"end":2,"value":"?"}"#,
            "\n",
            r#"{"time":500,"type":"word","start":9,"end":40,"value":"?"}"#,
            "\n\n",
        );
        assert_eq!(
            word_marks(stream.as_bytes(), piece).unwrap(),
            [(0, 3, 6), (4, 8, 300)]
        );
        assert!(word_marks(b"not json\n", piece).is_err());
    }

    #[test]
    fn words_end_where_the_next_begins_and_never_go_back() {
        let w = |start_ms| WordTiming {
            start: 0,
            end: 1,
            start_ms,
            end_ms: 0,
        };
        let closed = close_words(vec![w(10), w(300), w(250), w(900)], 800);
        let times: Vec<(u32, u32)> = closed.iter().map(|w| (w.start_ms, w.end_ms)).collect();
        assert_eq!(times, [(10, 300), (300, 300), (300, 800), (800, 800)]);
    }
}

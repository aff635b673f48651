//! Narration, inside the plan step: each scene's line spoken (or taken from the cache), measured,
//! and the scene lengths re-shared so every line fits its window. It belongs to planning because
//! the speech decides how long scenes are, and clips are made at those lengths.

use super::steps::StepDeps;
use crate::error::StepError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use vidpipe_domain::Plan;
use vidpipe_domain::job::Job;
use vidpipe_domain::keys;
use vidpipe_domain::loudness::Loudness;
use vidpipe_domain::narration::{
    AudioFormat, SceneSpeech, SpeechSpec, WordTiming, lines_to_speak, narrate_plan,
};
use vidpipe_domain::ports::{BlobError, Narrator};
use vidpipe_domain::request::{NarrationSpec, NarratorKind};

/// The narrators a deployment offers and the one used when a request names none.
#[derive(Clone)]
pub struct Narrators {
    default: NarratorKind,
    adapters: Vec<(NarratorKind, Arc<dyn Narrator>)>,
}

impl Narrators {
    /// A `default` missing from `adapters` is allowed: requests that rely on it fail naming it
    /// (espeak-ng where the binary is not installed), and the others still run.
    pub fn new(default: NarratorKind, adapters: Vec<(NarratorKind, Arc<dyn Narrator>)>) -> Self {
        Narrators { default, adapters }
    }

    /// The narrator a request asked for, or the default; a narrator this deployment does not
    /// offer is a configuration error naming the ones it does.
    pub fn pick(&self, asked: Option<NarratorKind>) -> Result<&Arc<dyn Narrator>, StepError> {
        let kind = asked.unwrap_or(self.default);
        self.adapters
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, n)| n)
            .ok_or_else(|| {
                let offered: Vec<&str> = self.adapters.iter().map(|(k, _)| k.as_str()).collect();
                StepError::Configuration(format!(
                    "narrator {kind} is not configured here (offered: {})",
                    offered.join(", ")
                ))
            })
    }
}

/// What the cache keeps beside the audio.
#[derive(Serialize, Deserialize)]
struct CachedSpeech {
    format: AudioFormat,
    duration_ms: u32,
    words: Vec<WordTiming>,
    /// Measured when the line was spoken; entries cached before that get it at their next use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    loudness: Option<Loudness>,
}

/// Speaks the plan's lines with the request's narrator and fits the plan to them.
pub(crate) async fn narrate(
    deps: &StepDeps,
    job: &Job,
    spec: &NarrationSpec,
    plan: &mut Plan,
    dir: &Path,
) -> Result<(), StepError> {
    let narrators = deps.narrators.as_ref().ok_or_else(|| {
        StepError::Configuration("this deployment has no narrator configured".into())
    })?;
    let narrator = narrators.pick(spec.narrator)?;
    let speeches = speak_lines(deps, narrator.as_ref(), spec, plan, dir, |index, ext| {
        keys::speech(&job.id, index, ext)
    })
    .await?;
    narrate_plan(
        plan,
        &job.request,
        narrator.name(),
        spec.voice.clone(),
        speeches,
    )?;
    Ok(())
}

/// Each scene's line (see [`lines_to_speak`]) spoken, or `None` where there is none to say;
/// `key(index, ext)` names the copy the scene's speech is played from.
async fn speak_lines(
    deps: &StepDeps,
    narrator: &dyn Narrator,
    spec: &NarrationSpec,
    plan: &Plan,
    dir: &Path,
    key: impl Fn(u32, &str) -> String,
) -> Result<Vec<Option<SceneSpeech>>, StepError> {
    tokio::fs::create_dir_all(dir).await?;
    let lines: Vec<Option<String>> = lines_to_speak(plan)
        .into_iter()
        .map(|l| l.map(str::to_owned))
        .collect();
    let mut speeches = Vec::with_capacity(lines.len());
    for (scene, line) in plan.scenes.iter().zip(&lines) {
        let Some(line) = line else {
            speeches.push(None);
            continue;
        };
        let speech = SpeechSpec {
            text: line.clone(),
            voice: spec.voice.clone(),
            engine: spec.engine.map(|e| e.to_string()),
        };
        speeches.push(Some(
            speak_cached(deps, narrator, scene.index, &speech, dir, &key).await?,
        ));
    }
    Ok(speeches)
}

/// A recompose's speech: the lines of `plan` (whose scene lengths are its clips', kept) spoken
/// with `spec`'s narrator and voice into `composition`'s own folder, the plan's narration
/// replaced and its tempo fitted. Lines said before in that voice come from the cache.
pub(crate) async fn respeak(
    deps: &StepDeps,
    job: &Job,
    spec: &NarrationSpec,
    plan: &mut Plan,
    composition: &vidpipe_domain::CompositionId,
) -> Result<(), StepError> {
    let narrators = deps.narrators.as_ref().ok_or_else(|| {
        StepError::Configuration("this deployment has no narrator configured".into())
    })?;
    let narrator = narrators.pick(spec.narrator)?;
    let dir = crate::scratch::Scratch::new(
        deps.scratch_dir
            .join(job.id.as_str())
            .join(format!("{composition}-speech")),
    )
    .await?;
    let speeches = speak_lines(deps, narrator.as_ref(), spec, plan, dir.path(), |i, ext| {
        keys::composition_speech(composition, i, ext)
    })
    .await?;
    vidpipe_domain::narration::narrate_fixed(plan, narrator.name(), spec.voice.clone(), speeches)?;
    Ok(())
}

/// Why `voice` is not one of the narrator's that `spec` picks (the deployment's default where
/// the request named none), or `None` when it is, or when the narrator cannot list its voices.
pub(crate) async fn unknown_voice(
    deps: &StepDeps,
    spec: Option<&NarrationSpec>,
    voice: &str,
) -> Result<Option<String>, StepError> {
    let Some(narrators) = deps.narrators.as_ref() else {
        return Ok(Some("no narrator is configured here".into()));
    };
    let narrator = narrators.pick(spec.and_then(|s| s.narrator))?;
    let Some(voices) = narrator.voices().await? else {
        return Ok(None);
    };
    // espeak-ng's `voice+variant` (en-us+f3) is its voice with another timbre.
    let base = voice.split('+').next().unwrap_or(voice);
    if voices
        .iter()
        .any(|v| v.eq_ignore_ascii_case(voice) || v.eq_ignore_ascii_case(base))
    {
        return Ok(None);
    }
    let some: Vec<&str> = voices.iter().take(8).map(String::as_str).collect();
    Ok(Some(format!(
        "{} has no voice {voice:?} (it has {}, for example {})",
        narrator.name(),
        voices.len(),
        some.join(", ")
    )))
}

/// One line: from the cache when this narrator said exactly this before, else spoken, measured
/// (length and loudness) and cached. The job (or the recomposed version) gets its own copy, at
/// `key(index, ext)`, as clips are copied.
async fn speak_cached(
    deps: &StepDeps,
    narrator: &dyn Narrator,
    index: u32,
    spec: &SpeechSpec,
    dir: &Path,
    key: &impl Fn(u32, &str) -> String,
) -> Result<SceneSpeech, StepError> {
    let digest = {
        let mut h = Sha256::new();
        for part in [
            narrator.cache_identity().as_str(),
            spec.voice.as_deref().unwrap_or(""),
            spec.engine.as_deref().unwrap_or(""),
            spec.text.as_str(),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        hex::encode(h.finalize())
    };
    let meta_key = keys::cached_speech(narrator.name(), &digest, "json");
    let cached = match deps.blobs.get_bytes(&meta_key).await {
        Ok(bytes) => serde_json::from_slice::<CachedSpeech>(&bytes).ok(),
        Err(BlobError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let cached = match cached {
        Some(c) if c.loudness.is_some() => c,
        // Cached before speech was measured where it is made: measured now, once, and kept.
        Some(mut c) => {
            let ext = c.format.extension();
            let local = dir.join(format!("speech_{index:03}.{ext}"));
            deps.blobs
                .get_to_file(&keys::cached_speech(narrator.name(), &digest, ext), &local)
                .await?;
            c.loudness = Some(deps.media.loudness(&local).await?);
            deps.blobs
                .put_bytes(&meta_key, serde_json::to_vec(&c)?, "application/json")
                .await?;
            c
        }
        None => {
            let local = dir.join(format!("speech_{index:03}"));
            let speech = narrator.speak(spec, &local).await?;
            let ext = speech.format.extension();
            let duration = deps
                .media
                .probe(&local)
                .await?
                .duration_seconds
                .unwrap_or(0.0);
            if duration <= 0.0 {
                return Err(StepError::Provider(
                    vidpipe_domain::ports::ProviderError::Failed(format!(
                        "{} returned speech without a length",
                        narrator.name()
                    )),
                ));
            }
            let duration_ms = (duration * 1000.0).round() as u32;
            let words = if speech.words.is_empty() {
                vidpipe_domain::narration::estimate_word_timings(&spec.text, duration_ms)
            } else {
                speech.words
            };
            let audio_key = keys::cached_speech(narrator.name(), &digest, ext);
            deps.blobs
                .put_file(&audio_key, &local, content_type(speech.format))
                .await?;
            let record = CachedSpeech {
                format: speech.format,
                duration_ms,
                words,
                loudness: Some(deps.media.loudness(&local).await?),
            };
            // The metadata goes last: its presence says the audio is complete.
            deps.blobs
                .put_bytes(&meta_key, serde_json::to_vec(&record)?, "application/json")
                .await?;
            record
        }
    };
    let ext = cached.format.extension();
    let key = key(index, ext);
    deps.blobs
        .copy(&keys::cached_speech(narrator.name(), &digest, ext), &key)
        .await?;
    Ok(SceneSpeech {
        key,
        duration_ms: cached.duration_ms,
        words: cached.words,
        // A line is played once through: the plan keeps the figure, not the blocks.
        loudness: cached.loudness.as_ref().map(Loudness::summary),
    })
}

fn content_type(format: AudioFormat) -> &'static str {
    match format {
        AudioFormat::Mp3 => "audio/mpeg",
        AudioFormat::Wav => "audio/wav",
    }
}

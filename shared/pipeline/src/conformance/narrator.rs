//! The `Narrator` conformance suite: what the narration step relies on from every narrator
//! (Polly, OpenAI-compatible speech, the offline ones), each run against its own local fake
//! speaking the real API.
//!
//! - `cache_identity` starts with the narrator's name and is stable;
//! - `speak` leaves audio at `dest` in the format it reports: the container's magic bytes, and
//!   ffprobe finds an audio stream of that codec with a length;
//! - reported words are in the text's order, on its character boundaries, with times that never
//!   go backwards and end within the audio;
//! - a text longer than any one request allows is spoken whole: longer audio, and words (when
//!   reported) up to its end;
//! - a reported cost is a finite, non-negative figure with a basis.

use std::path::Path;
use vidpipe_domain::mp3;
use vidpipe_domain::narration::{AudioFormat, Speech, SpeechSpec};
use vidpipe_domain::ports::Narrator;
use vidpipe_media::Tools;

/// Bytes of text the long check speaks: over Polly's 3000 characters and OpenAI's 4096 twice.
pub const LONG_TEXT_BYTES: usize = 9000;
/// Slack for words that end with the audio: a narrator counts every frame it was sent, while
/// ffprobe trims the encoder's priming and padding (a few frames) when the file is tagged.
const END_SLACK_MS: u32 = 150;

/// Runs every check with `spec` (a sentence or two); `dir` is a scratch folder (made if missing).
pub async fn run_all(narrator: &dyn Narrator, spec: &SpeechSpec, dir: &Path) {
    std::fs::create_dir_all(dir).expect("scratch folder");
    identity_names_the_narrator_and_is_stable(narrator);
    let short_ms = speaks_the_line(narrator, spec, &dir.join("line")).await;
    a_long_text_is_spoken_whole(narrator, spec, short_ms, &dir.join("long")).await;
}

pub fn identity_names_the_narrator_and_is_stable(narrator: &dyn Narrator) {
    let identity = narrator.cache_identity();
    assert!(
        identity.starts_with(narrator.name()),
        "{}: cache identity {identity:?} must start with the name",
        narrator.name()
    );
    assert_eq!(
        identity,
        narrator.cache_identity(),
        "{}: unstable identity",
        narrator.name()
    );
}

/// Speaks `spec` and checks the audio and words; returns the audio's probed length.
pub async fn speaks_the_line(narrator: &dyn Narrator, spec: &SpeechSpec, dest: &Path) -> u32 {
    let name = narrator.name();
    let speech = narrator
        .speak(spec, dest)
        .await
        .unwrap_or_else(|e| panic!("{name}: speak failed: {e}"));
    check_speech(name, &spec.text, &speech, dest).await
}

/// Speaks [`long_text`] of `spec`'s text: more audio than the short line, and words (when the
/// narrator reports them) through the last repetition, so no piece was dropped.
pub async fn a_long_text_is_spoken_whole(
    narrator: &dyn Narrator,
    spec: &SpeechSpec,
    short_ms: u32,
    dest: &Path,
) {
    let name = narrator.name();
    let long = SpeechSpec {
        text: long_text(&spec.text),
        ..spec.clone()
    };
    let speech = narrator
        .speak(&long, dest)
        .await
        .unwrap_or_else(|e| panic!("{name}: speaking {} bytes failed: {e}", long.text.len()));
    let long_ms = check_speech(name, &long.text, &speech, dest).await;
    assert!(
        u64::from(long_ms) * 2 > u64::from(short_ms) * 3,
        "{name}: {} bytes made {long_ms} ms of audio, the {}-byte line {short_ms} ms",
        long.text.len(),
        spec.text.len()
    );
    if let Some(last) = speech.words.last() {
        assert!(
            last.end > long.text.len() - spec.text.len(),
            "{name}: the last word reported ends at byte {} of {}: the end was not spoken",
            last.end,
            long.text.len()
        );
    }
}

/// `text` repeated, a space between, to at least [`LONG_TEXT_BYTES`].
pub fn long_text(text: &str) -> String {
    let text = text.trim();
    assert!(!text.is_empty(), "the suite needs some text");
    let mut long = String::from(text);
    while long.len() < LONG_TEXT_BYTES {
        long.push(' ');
        long.push_str(text);
    }
    long
}

/// Checks what `speak` returned and left at `dest`; returns the audio's length in ms.
async fn check_speech(name: &str, text: &str, speech: &Speech, dest: &Path) -> u32 {
    let bytes = std::fs::read(dest).unwrap_or_else(|e| panic!("{name}: no audio at dest: {e}"));
    let codec_ok: fn(&str) -> bool = match speech.format {
        AudioFormat::Mp3 => {
            assert!(
                mp3::looks_like_mp3(&bytes),
                "{name}: said MP3, wrote something else"
            );
            |c| c == "mp3"
        }
        AudioFormat::Wav => {
            assert!(
                bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WAVE"),
                "{name}: said WAV, wrote something else"
            );
            |c| c.starts_with("pcm_")
        }
    };
    let tools = Tools::locate(None).expect("the narrator suite probes audio with ffprobe");
    let info = vidpipe_media::probe(&tools, dest)
        .await
        .unwrap_or_else(|e| panic!("{name}: ffprobe cannot read the audio: {e}"));
    let audio = info
        .audio()
        .unwrap_or_else(|| panic!("{name}: no audio stream in {info:?}"));
    assert!(
        codec_ok(&audio.codec),
        "{name}: a {:?} file holding {}",
        speech.format,
        audio.codec
    );
    let seconds = audio
        .duration_seconds
        .or(info.duration_seconds)
        .unwrap_or(0.0);
    assert!(seconds > 0.0, "{name}: the audio has no length");
    let duration_ms = (seconds * 1000.0).round() as u32;

    let mut last_end = 0;
    let mut last_ms = 0;
    for w in &speech.words {
        let on_text = w.start < w.end
            && w.end <= text.len()
            && text.is_char_boundary(w.start)
            && text.is_char_boundary(w.end);
        assert!(on_text, "{name}: word {w:?} is not a span of the text");
        assert!(
            w.start >= last_end,
            "{name}: word {w:?} starts before the previous ends at byte {last_end}"
        );
        assert!(
            w.start_ms >= last_ms && w.end_ms >= w.start_ms,
            "{name}: word {w:?} goes back in time (previous start {last_ms} ms)"
        );
        assert!(
            w.end_ms <= duration_ms + END_SLACK_MS,
            "{name}: word {w:?} ends after the {duration_ms} ms of audio"
        );
        last_end = w.end;
        last_ms = w.start_ms;
    }
    if let Some(cost) = &speech.cost {
        assert!(
            cost.usd.is_finite() && cost.usd >= 0.0 && !cost.basis.trim().is_empty(),
            "{name}: a cost needs a non-negative figure and a basis: {cost:?}"
        );
    }
    duration_ms
}

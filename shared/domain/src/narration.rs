//! Narration's shapes: what a narrator is asked to say, the words it says and when, and the text
//! arithmetic every narrator shares (splitting long text at sentences, estimating word times for
//! narrators that report none).

use crate::plan::{PlanError, allocate_frames, allocate_frames_with_floors};
use serde::{Deserialize, Serialize};

/// One line of speech to synthesize.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeechSpec {
    pub text: String,
    /// The narrator's own voice name (`Joanna`, `en-us`, `alloy`); `None` is its default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    /// Polly's engine (`standard`, `neural`, `long-form`, `generative`); others ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

/// A spoken word: where it is in the text (byte offsets into [`SpeechSpec::text`], so captions
/// can highlight exactly what was said) and when it is heard, in milliseconds from the start of
/// the audio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WordTiming {
    pub start: usize,
    pub end: usize,
    pub start_ms: u32,
    pub end_ms: u32,
}

/// The container a narrator wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioFormat {
    Mp3,
    Wav,
}

impl AudioFormat {
    pub fn extension(self) -> &'static str {
        match self {
            AudioFormat::Mp3 => "mp3",
            AudioFormat::Wav => "wav",
        }
    }
}

/// What a narrator left at its destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speech {
    pub format: AudioFormat,
    /// Word times as the narrator reported them; empty when it reports none, and the pipeline
    /// estimates them with [`estimate_word_timings`] from the measured length.
    pub words: Vec<WordTiming>,
    /// What the call cost, when the narrator bills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::ports::ProviderCost>,
}

/// A scene's speech as the plan keeps it: the audio in the store, its measured length, and its
/// words' times from the start of the audio, at the narrator's own pace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneSpeech {
    pub key: String,
    pub duration_ms: u32,
    /// Byte offsets into the scene's `narration`.
    pub words: Vec<WordTiming>,
    /// Its loudness once through, measured when it was spoken (or first taken from a cache
    /// that had none); `None` in plans made before speech was measured there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loudness: Option<crate::loudness::Loudness>,
}

/// Who narrated a plan and how fast it is played.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanNarration {
    pub narrator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    /// 1.0, or up to [`MAX_TEMPO`] where the speech only fits faster.
    pub tempo: f64,
}

/// Silence kept before and after a scene's speech inside its window, so a line never starts on
/// the cut or runs into the next scene's first word.
pub const SPEECH_LEAD_SECONDS: f64 = 0.15;
pub const SPEECH_TAIL_SECONDS: f64 = 0.25;
/// The fastest narration is played: beyond it speech stops sounding natural.
pub const MAX_TEMPO: f64 = 1.25;

/// Scene lengths that make room for the narration, and the tempo it is played at.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechFit {
    pub frames: Vec<u32>,
    /// 1.0, or up to [`MAX_TEMPO`] when the speech only fits faster.
    pub tempo: f64,
}

/// Frames of scene `i`'s window that are not its own: half of each transition it shares.
fn shared_half_overlaps(i: usize, n: usize, overlap: u32) -> u32 {
    if n < 2 {
        return 0;
    }
    let neighbours = (i > 0) as u32 + (i + 1 < n) as u32;
    neighbours * overlap / 2
}

/// Scene lengths (clip frames, overlaps included, adding up as [`allocate_frames`] does) where
/// each scene's window, from the middle of the transition before it to the middle of the one
/// after, holds its speech plus the lead and tail silences. Scenes share the rest by weight.
/// When the speech does not fit at its own pace it is played faster, up to [`MAX_TEMPO`];
/// beyond that the plan is refused with [`PlanError::NarrationTooLong`].
///
/// [`allocate_frames`]: crate::plan::allocate_frames
pub fn fit_speech(
    total_frames: u32,
    overlap: u32,
    fps: u32,
    min_visible: u32,
    weights: &[u32],
    speech_seconds: &[f64],
) -> Result<SpeechFit, PlanError> {
    let n = weights.len();
    assert_eq!(n, speech_seconds.len(), "one speech length per scene");
    let floors_at = |tempo: f64| -> Vec<u32> {
        speech_seconds
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                if s <= 0.0 {
                    return min_visible;
                }
                let need = ((s / tempo + SPEECH_LEAD_SECONDS + SPEECH_TAIL_SECONDS) * fps as f64)
                    .ceil() as u32;
                need.saturating_sub(shared_half_overlaps(i, n, overlap))
                    .max(min_visible)
            })
            .collect()
    };
    let try_at =
        |tempo: f64| allocate_frames_with_floors(total_frames, overlap, &floors_at(tempo), weights);
    if let Ok(frames) = try_at(1.0) {
        return Ok(SpeechFit { frames, tempo: 1.0 });
    }
    if let Err(e @ PlanError::DoesNotFit { .. }) =
        allocate_frames(total_frames, overlap, min_visible, weights)
    {
        return Err(e);
    }
    if try_at(MAX_TEMPO).is_err() {
        let speech: f64 = speech_seconds.iter().map(|s| s.max(0.0)).sum();
        let pauses = speech_seconds.iter().filter(|&&s| s > 0.0).count() as f64
            * (SPEECH_LEAD_SECONDS + SPEECH_TAIL_SECONDS);
        let room = (total_frames as f64 / fps as f64 - pauses).max(0.0);
        return Err(PlanError::NarrationTooLong {
            speech_ms: (speech / MAX_TEMPO * 1000.0).round() as u32,
            room_ms: (room * 1000.0).round() as u32,
            max_tempo_percent: (MAX_TEMPO * 100.0).round() as u32,
        });
    }
    // Feasibility only grows with the tempo: bisect for the slowest that fits, to a
    // thousandth, which is finer than a frame of speech at any length the limits allow.
    let (mut slow, mut fast) = (1.0, MAX_TEMPO);
    while fast - slow > 0.001 {
        let mid = (slow + fast) / 2.0;
        if try_at(mid).is_ok() {
            fast = mid;
        } else {
            slow = mid;
        }
    }
    let tempo = (fast * 1000.0).ceil() / 1000.0;
    Ok(SpeechFit {
        frames: try_at(tempo)?,
        tempo,
    })
}

/// Gives the plan its speech: each scene's measured line (`None` where a scene has none, such as
/// a scene repeating the previous one's idea), scene lengths re-shared so every line fits its
/// window ([`fit_speech`]), and who spoke at what tempo. The video's length is unchanged.
pub fn narrate_plan(
    plan: &mut crate::plan::Plan,
    request: &crate::request::GenerationRequest,
    narrator: &str,
    voice: Option<String>,
    speeches: Vec<Option<SceneSpeech>>,
) -> Result<(), PlanError> {
    assert_eq!(
        plan.scenes.len(),
        speeches.len(),
        "one speech slot per scene"
    );
    let fps = plan.fps;
    let weights: Vec<u32> = plan.scenes.iter().map(|s| s.weight).collect();
    let seconds: Vec<f64> = speeches
        .iter()
        .map(|s| s.as_ref().map_or(0.0, |s| s.duration_ms as f64 / 1000.0))
        .collect();
    let fit = fit_speech(
        plan.total_frames,
        request.transition.overlap_frames(request.fps),
        fps,
        crate::request::MIN_SCENE_VISIBLE_SECONDS * fps,
        &weights,
        &seconds,
    )?;
    for ((scene, frames), speech) in plan.scenes.iter_mut().zip(fit.frames).zip(speeches) {
        scene.frames = frames;
        scene.speech = speech;
    }
    plan.narration = Some(PlanNarration {
        narrator: narrator.to_owned(),
        voice,
        tempo: fit.tempo,
    });
    Ok(())
}

/// Gives speech to a plan whose scene lengths are fixed (a recompose: its clips are made): each
/// scene keeps its frames and the speech is played at the slowest tempo, from 1.0 up to
/// [`MAX_TEMPO`], at which every line fits its window with the lead and tail silences.
pub fn narrate_fixed(
    plan: &mut crate::plan::Plan,
    narrator: &str,
    voice: Option<String>,
    speeches: Vec<Option<SceneSpeech>>,
) -> Result<(), PlanError> {
    assert_eq!(
        plan.scenes.len(),
        speeches.len(),
        "one speech slot per scene"
    );
    let (fps, overlap, n) = (plan.fps as f64, plan.overlap_frames(), plan.scenes.len());
    let mut tempo: f64 = 1.0;
    let (mut speech_ms, mut room_ms) = (0u32, 0u32);
    for (i, (scene, speech)) in plan.scenes.iter().zip(&speeches).enumerate() {
        let Some(speech) = speech else { continue };
        let window = scene
            .frames
            .saturating_sub(shared_half_overlaps(i, n, overlap)) as f64
            / fps;
        let room = window - SPEECH_LEAD_SECONDS - SPEECH_TAIL_SECONDS;
        let seconds = speech.duration_ms as f64 / 1000.0;
        speech_ms += speech.duration_ms;
        room_ms += (room.max(0.0) * 1000.0).round() as u32;
        // A frame's worth of slack: the window is counted in whole frames when played.
        let usable = room - 1.0 / fps;
        tempo = tempo.max(if usable > 0.0 {
            seconds / usable
        } else {
            f64::INFINITY
        });
    }
    let tempo = (tempo * 1000.0).ceil() / 1000.0;
    if tempo > MAX_TEMPO {
        return Err(PlanError::NarrationTooLong {
            speech_ms: (speech_ms as f64 / MAX_TEMPO).round() as u32,
            room_ms,
            max_tempo_percent: (MAX_TEMPO * 100.0).round() as u32,
        });
    }
    for (scene, speech) in plan.scenes.iter_mut().zip(speeches) {
        scene.speech = speech;
    }
    plan.narration = Some(PlanNarration {
        narrator: narrator.to_owned(),
        voice,
        tempo,
    });
    Ok(())
}

/// Each scene's line to speak: its narration, or nothing where it repeats the scene before
/// (a prompt with fewer ideas than scenes spreads one idea over several; it is said once).
pub fn lines_to_speak(plan: &crate::plan::Plan) -> Vec<Option<&str>> {
    let mut previous: Option<&str> = None;
    plan.scenes
        .iter()
        .map(|s| {
            let line = s.narration.trim();
            let repeat = previous == Some(line);
            previous = Some(line);
            (!line.is_empty() && !repeat).then_some(line)
        })
        .collect()
}

/// Splits `text` into pieces of at most `limit` bytes, at sentence ends where possible, then at
/// spaces, then anywhere on a character boundary; the pieces joined give back `text` exactly,
/// so byte offsets reported per piece map back by adding the piece's start.
pub fn split_for_limit(text: &str, limit: usize) -> Vec<(usize, &str)> {
    assert!(limit >= 4, "a limit below one character cannot be split");
    let mut pieces = Vec::new();
    let mut start = 0;
    while text.len() - start > limit {
        let window = &text[start..floor_char_boundary(text, start + limit)];
        let cut = last_break(window, |c| {
            matches!(c, '.' | '!' | '?' | '。' | '！' | '？' | '\n')
        })
        .or_else(|| last_break(window, char::is_whitespace))
        .unwrap_or(window.len());
        pieces.push((start, &text[start..start + cut]));
        start += cut;
    }
    if start < text.len() || pieces.is_empty() {
        pieces.push((start, &text[start..]));
    }
    pieces
}

/// Byte index just after the last `is_break` character (and the spaces after it) in `window`,
/// when that leaves a non-empty piece.
fn last_break(window: &str, is_break: impl Fn(char) -> bool) -> Option<usize> {
    let (i, c) = window.char_indices().rev().find(|&(_, c)| is_break(c))?;
    let mut end = i + c.len_utf8();
    end += window[end..]
        .char_indices()
        .find(|&(_, c)| !c.is_whitespace())
        .map_or(window.len() - end, |(j, _)| j);
    (end > 0).then_some(end)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The words of `text` as byte ranges: runs between whitespace, and each CJK character on its
/// own (those scripts do not separate words with spaces, and a caption highlights them one by
/// one).
pub fn words(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut word_start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = word_start.take() {
                out.push((s, i));
            }
        } else if is_cjk(c) {
            if let Some(s) = word_start.take() {
                out.push((s, i));
            }
            out.push((i, i + c.len_utf8()));
        } else if word_start.is_none() {
            word_start = Some(i);
        }
    }
    if let Some(s) = word_start {
        out.push((s, text.len()));
    }
    // Punctuation alone (a dash, a CJK full stop) is no word: it joins the one before.
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(out.len());
    for (s, e) in out {
        let punct = text[s..e].chars().all(|c| !c.is_alphanumeric());
        match merged.last_mut() {
            Some(last) if punct => last.1 = e,
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// Han, kana, hangul and CJK punctuation: scripts written without spaces between words.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3000..=0x303F | 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF |
        0xAC00..=0xD7AF | 0xF900..=0xFAFF | 0xFF00..=0xFFEF | 0x20000..=0x2FA1F)
}

/// Word times for a narrator that reports none: the audio's length shared out by each word's
/// letters, with a pause counted after sentence and clause punctuation, and a short lead-in and
/// tail of silence that synthesizers leave. Monotonic, inside `[0, duration_ms]`.
pub fn estimate_word_timings(text: &str, duration_ms: u32) -> Vec<WordTiming> {
    let spans = words(text);
    if spans.is_empty() || duration_ms == 0 {
        return Vec::new();
    }
    // Units: one per character, plus pauses worth a few characters after punctuation.
    let weight = |&(s, e): &(usize, usize)| -> f64 {
        let w = &text[s..e];
        let letters = w.chars().filter(|c| c.is_alphanumeric()).count().max(1) as f64;
        letters + 1.0
    };
    let pause = |&(_, e): &(usize, usize)| -> f64 {
        match text[..e].chars().last() {
            Some('.' | '!' | '?' | '。' | '！' | '？') => 6.0,
            Some(',' | ';' | ':' | '、' | '，') => 3.0,
            _ => 0.0,
        }
    };
    let lead = (duration_ms as f64 * 0.03).min(120.0);
    let tail = (duration_ms as f64 * 0.05).min(200.0);
    let speaking = (duration_ms as f64 - lead - tail).max(1.0);
    let units: f64 = spans
        .iter()
        .enumerate()
        .map(|(i, s)| weight(s) + if i + 1 < spans.len() { pause(s) } else { 0.0 })
        .sum();
    let per_unit = speaking / units;
    let mut t = lead;
    spans
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let start_ms = t.round() as u32;
            t += weight(s) * per_unit;
            let end_ms = (t.round() as u32).min(duration_ms);
            if i + 1 < spans.len() {
                t += pause(s) * per_unit;
            }
            WordTiming {
                start: s.0,
                end: s.1,
                start_ms,
                end_ms,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn split_prefers_sentence_ends() {
        let text = "One two three. Four five six. Seven eight.";
        let pieces = split_for_limit(text, 20);
        let texts: Vec<&str> = pieces.iter().map(|p| p.1).collect();
        assert_eq!(
            texts,
            ["One two three. ", "Four five six. ", "Seven eight."]
        );
        assert_eq!(pieces[1].0, 15);
    }

    #[test]
    fn split_falls_back_to_spaces_then_characters() {
        let pieces = split_for_limit("aaaa bbbb cccc", 7);
        assert_eq!(
            pieces.iter().map(|p| p.1).collect::<Vec<_>>(),
            ["aaaa ", "bbbb ", "cccc"]
        );
        let pieces = split_for_limit("日本語のテキスト", 7);
        assert!(pieces.iter().all(|p| p.1.len() <= 7));
        assert_eq!(
            pieces.iter().map(|p| p.1).collect::<String>(),
            "日本語のテキスト"
        );
    }

    #[test]
    fn words_split_cjk_by_character_and_keep_punctuation_with_its_word() {
        let t = "Hello, world — again.";
        let w: Vec<&str> = words(t).iter().map(|&(s, e)| &t[s..e]).collect();
        assert_eq!(w, ["Hello,", "world —", "again."]);
        let j = "猫が好き。";
        let w: Vec<&str> = words(j).iter().map(|&(s, e)| &j[s..e]).collect();
        assert_eq!(w, ["猫", "が", "好", "き。"]);
    }

    #[test]
    fn estimates_pause_at_sentence_ends() {
        let t = "Short. Then another longer sentence";
        let w = estimate_word_timings(t, 3000);
        assert_eq!(w.len(), 5);
        let gap_after_stop = w[1].start_ms - w[0].end_ms;
        let gap_inside = w[2].start_ms - w[1].end_ms;
        assert!(gap_after_stop > 100, "{w:?}");
        assert_eq!(gap_inside, 0, "{w:?}");
    }

    #[test]
    fn speech_gets_room_then_tempo_then_a_clear_refusal() {
        // 10 s at 30 fps, three scenes, 15-frame transitions, 1 s minimum each.
        let w = [4, 5, 6];
        let even = fit_speech(300, 15, 30, 30, &w, &[0.0, 0.0, 0.0]).unwrap();
        assert_eq!(even.frames, allocate_frames(300, 15, 30, &w).unwrap());
        assert_eq!(even.tempo, 1.0);

        // A long first line takes its room from the others, at its own pace.
        let fit = fit_speech(300, 15, 30, 30, &w, &[5.0, 1.0, 1.0]).unwrap();
        assert_eq!(fit.tempo, 1.0);
        let window0 = fit.frames[0] - 15 + 7;
        assert!(window0 as f64 >= (5.0 + SPEECH_LEAD_SECONDS + SPEECH_TAIL_SECONDS) * 30.0);
        assert_eq!(fit.frames.iter().sum::<u32>() - 2 * 15, 300);

        // Too much speech for the video at 1x fits a little faster.
        let fast = fit_speech(300, 15, 30, 30, &w, &[3.5, 3.5, 2.5]).unwrap();
        assert!(fast.tempo > 1.0 && fast.tempo <= MAX_TEMPO, "{fast:?}");
        assert_eq!(fast.frames.iter().sum::<u32>() - 2 * 15, 300);

        // And far too much is refused, saying why.
        let err = fit_speech(300, 15, 30, 30, &w, &[9.0, 9.0, 9.0]).unwrap_err();
        assert!(matches!(
            err,
            PlanError::NarrationTooLong {
                speech_ms: 21600,
                max_tempo_percent: 125,
                ..
            }
        ));
        assert!(err.to_string().contains("lengthen the video"), "{err}");
    }

    proptest! {
        #[test]
        fn fitted_scenes_always_add_up_and_hold_their_speech(
            speech in proptest::collection::vec(0.0f64..4.0, 1..6),
            seconds in 6u32..30,
        ) {
            let n = speech.len();
            let weights = vec![5; n];
            let (fps, overlap) = (24, 12);
            if let Ok(fit) = fit_speech(seconds * fps, overlap, fps, fps, &weights, &speech) {
                let overlaps = if n > 1 { overlap * (n as u32 - 1) } else { 0 };
                prop_assert_eq!(fit.frames.iter().sum::<u32>() - overlaps, seconds * fps);
                for (i, (&f, &s)) in fit.frames.iter().zip(&speech).enumerate() {
                    if s > 0.0 {
                        let neighbours = (i > 0) as u32 + (i + 1 < n) as u32;
                        let window = f - neighbours * overlap + shared_half_overlaps(i, n, overlap);
                        let need = (s / fit.tempo + SPEECH_LEAD_SECONDS + SPEECH_TAIL_SECONDS) * fps as f64;
                        prop_assert!(window as f64 + 1e-9 >= need.ceil(), "scene {} {:?}", i, fit);
                    }
                }
            }
        }

        #[test]
        fn split_pieces_rejoin_and_respect_the_limit(text in "\\PC{0,300}", limit in 4usize..64) {
            let pieces = split_for_limit(&text, limit);
            let joined: String = pieces.iter().map(|p| p.1).collect();
            prop_assert_eq!(&joined, &text);
            for (start, piece) in &pieces {
                prop_assert!(piece.len() <= limit);
                prop_assert_eq!(&text[*start..*start + piece.len()], *piece);
            }
        }

        #[test]
        fn estimates_are_ordered_and_inside_the_audio(text in "[a-z .,]{0,200}", ms in 1u32..60_000) {
            let w = estimate_word_timings(&text, ms);
            let mut last = 0;
            for t in &w {
                prop_assert!(t.start_ms >= last && t.end_ms >= t.start_ms && t.end_ms <= ms);
                last = t.end_ms;
            }
        }
    }
}

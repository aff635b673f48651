//! Loudness: measuring an audio file once (EBU R128 by ffmpeg's `ebur128`, block by block), and
//! predicting the mix level from the stored figures of its parts.
//!
//! The compose levels its inputs with plain gains computed from figures measured when each
//! input was made or first seen, so its one ffmpeg run never has to listen first. (It used to
//! run `loudnorm` three times, voice, music and mix: `loudnorm` works at 192 kHz and cost about
//! 0.8 s of CPU per 30 s stereo pass, more than every other audio filter together.)

use std::path::Path;
use vidpipe_domain::loudness::Loudness;
use vidpipe_domain::ports::MediaError;

use crate::run::{self, os};
use crate::tools::Tools;

/// The measuring filter's instance name, which ffmpeg puts in front of its log lines.
const INSTANCE: &str = "ebur128@measure";

/// Blocks logged before the first full 400 ms window: ebur128 logs every 100 ms from the
/// start, but gates only complete blocks.
const PARTIAL_BLOCKS: usize = 3;

/// Measures `path`'s first audio stream: the momentary loudness of every gating block, and from
/// them the integrated loudness, as one short audio-only ffmpeg run.
pub async fn measure(tools: &Tools, path: &Path) -> Result<Loudness, MediaError> {
    let args = [
        os("-i"),
        os(path),
        os("-map"),
        os("0:a:0"),
        os("-af"),
        os(format!("{INSTANCE}=framelog=info")),
        os("-f"),
        os("null"),
        os("-"),
    ];
    let mut blocks = Vec::new();
    let mut summary = false;
    run::ffmpeg_scan(tools, args, |line| {
        if let Some(m) = block_loudness(line) {
            blocks.push(m);
        } else if line.starts_with(&format!("[{INSTANCE} @")) && line.contains("Summary:") {
            summary = true;
        }
    })
    .await?;
    if !summary {
        return Err(MediaError::ToolFailed {
            tool: "ffmpeg".into(),
            status: "no ebur128 summary".into(),
            stderr_tail: format!("no loudness for {}", path.display()),
        });
    }
    Ok(Loudness::from_blocks(
        blocks.into_iter().skip(PARTIAL_BLOCKS).collect(),
    ))
}

/// The `M:` figure of one of the measuring filter's per-block lines.
fn block_loudness(line: &str) -> Option<f32> {
    let rest = line.strip_prefix(&format!("[{INSTANCE} @"))?;
    let m = &rest[rest.find(" M:")? + 3..];
    m.split_whitespace().next()?.parse().ok()
}

/// What the mix is made of, at the levels the compose gives them.
#[derive(Debug, Clone, PartialEq)]
pub struct MixModel {
    pub duration_seconds: f64,
    /// Where speech is heard (start, length), each clip at `speech_lufs`.
    pub speech: Vec<(f64, f64)>,
    pub speech_lufs: f64,
    /// The bed's level before its fades, when there is one; it is taken as ducked out of the
    /// sum under speech (the ducking keeps it at least 10 dB below).
    pub music_lufs: Option<f64>,
    pub music_fade_in_seconds: f64,
    pub music_fade_out_seconds: f64,
}

impl MixModel {
    /// The integrated loudness the mix will measure, predicted from its parts: mean energy
    /// over the time each part is heard. Silence drops out as ebur128's absolute gate drops it;
    /// a linear fade carries a third of the full level's energy over its length.
    pub fn predicted_lufs(&self) -> Option<f64> {
        let d = self.duration_seconds.max(0.0);
        let speech: f64 = self
            .speech
            .iter()
            .map(|&(s, l)| (s + l).min(d) - s.clamp(0.0, d))
            .filter(|l| *l > 0.0)
            .sum::<f64>()
            .min(d);
        let mut energy = speech * power(self.speech_lufs);
        let mut heard = speech;
        if let Some(music) = self.music_lufs {
            let free = d - speech;
            let fades = (self.music_fade_in_seconds + self.music_fade_out_seconds).clamp(0.0, d);
            // The fades fall mostly where no one speaks (the ends); count them in the free time.
            let faded = fades.min(free);
            energy += ((free - faded) + faded / 3.0) * power(music);
            heard += free;
        }
        (heard > 0.0 && energy > 0.0).then(|| 10.0 * (energy / heard).log10())
    }
}

fn power(lufs: f64) -> f64 {
    10f64.powf(lufs / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_block_lines_of_its_own_filter() {
        let line = "[ebur128@measure @ 0x7f23] t: 0.399977   TARGET:-23 LUFS    M: -21.8 S:-120.7     I: -21.8 LUFS       LRA:   0.0 LU";
        assert_eq!(block_loudness(line), Some(-21.8));
        let early = "[ebur128@measure @ 0x7f23] t: 0.1  TARGET:-23 LUFS    M:-120.7 S:-120.7     I: -70.0 LUFS       LRA:   0.0 LU";
        assert_eq!(block_loudness(early), Some(-120.7));
        assert_eq!(block_loudness("[ebur128@measure @ 0x7f23] Summary:"), None);
        assert_eq!(
            block_loudness("[Parsed_ebur128_0 @ 0x1] t: 0.4 TARGET:-23 LUFS M: -21.8 S:-120.7"),
            None,
            "another instance's line"
        );
    }

    #[test]
    fn speech_alone_is_its_own_level() {
        let m = MixModel {
            duration_seconds: 30.0,
            speech: vec![(1.0, 4.0), (10.0, 5.0)],
            speech_lufs: -16.0,
            music_lufs: None,
            music_fade_in_seconds: 0.0,
            music_fade_out_seconds: 0.0,
        };
        assert!((m.predicted_lufs().unwrap() - -16.0).abs() < 1e-9);
    }

    #[test]
    fn music_between_lines_pulls_the_mix_towards_its_level() {
        let m = MixModel {
            duration_seconds: 20.0,
            speech: vec![(0.0, 10.0)],
            speech_lufs: -16.0,
            music_lufs: Some(-26.0),
            music_fade_in_seconds: 0.0,
            music_fade_out_seconds: 0.0,
        };
        // Half the time at -16, half at -26: 10·log10((1 + 0.1) / 2).
        let want = 10.0 * ((1.0 + 0.1) / 2.0f64).log10() - 16.0;
        assert!((m.predicted_lufs().unwrap() - want).abs() < 1e-9);
        let none = MixModel {
            speech: vec![],
            music_lufs: None,
            ..m
        };
        assert_eq!(none.predicted_lufs(), None);
    }
}

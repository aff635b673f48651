//! Loudness of a composition's audio inputs, measured before the compose (EBU R128 integrated,
//! by ffmpeg's `ebur128` in one short audio-only run), and the mix level predicted from it.
//!
//! Knowing each input's level lets the compose's single render use plain gains where it used
//! to run `loudnorm` three times (voice, music, mix): `loudnorm` works at 192 kHz and cost about
//! 0.8 s of CPU per 30 s stereo pass, more than every other audio filter together.

use std::ffi::OsString;
use std::path::PathBuf;
use vidpipe_domain::ports::MediaError;

use crate::filtergraph::{Chain, Filter, Graph, Pad};
use crate::run::{self, os};
use crate::tools::Tools;

/// Below this an input is silence for our purposes (ebur128 reports -70 LUFS for digital
/// silence, the absolute gate).
const SILENT_LUFS: f64 = -69.0;

/// One file to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct LoudnessInput {
    pub path: PathBuf,
    /// Measure it looped to exactly this long (a music bed as the compose plays it); `None`
    /// measures the file once through.
    pub looped_to_seconds: Option<f64>,
}

/// Integrated loudness (LUFS) of each input, in order; `None` for one that is silent.
pub async fn integrated_lufs(
    tools: &Tools,
    inputs: &[LoudnessInput],
) -> Result<Vec<Option<f64>>, MediaError> {
    if inputs.is_empty() {
        return Ok(Vec::new());
    }
    let mut args: Vec<OsString> = Vec::new();
    for input in inputs {
        if let Some(secs) = input.looped_to_seconds {
            args.extend([
                os("-stream_loop"),
                os("-1"),
                os("-t"),
                os(format!("{secs}")),
            ]);
        }
        args.extend([os("-i"), os(&input.path)]);
    }
    // Each input through its own named ebur128 (the name tags its summary in the log), then
    // all of them concatenated into one null output so every input is read to its end.
    let mut g = Graph::new();
    let pads: Vec<Pad> = (0..inputs.len())
        .map(|k| {
            let pad = Pad::new(format!("m{k}"));
            g.push(
                Chain::new([Pad::audio(k)])
                    .then(Filter::new(tag(k)).opt("framelog", "quiet"))
                    .then(
                        Filter::new("aformat")
                            .opt("sample_fmts", "fltp")
                            .opt("sample_rates", 48_000)
                            .opt("channel_layouts", "mono"),
                    )
                    .to([pad.clone()]),
            );
            pad
        })
        .collect();
    let n = pads.len();
    g.push(
        Chain::new(pads)
            .then(Filter::new("concat").opt("n", n).opt("v", 0).opt("a", 1))
            .to([Pad::new("out")]),
    );
    args.extend([
        os("-filter_complex"),
        os(g.to_string()),
        os("-map"),
        os("[out]"),
        os("-f"),
        os("null"),
        os("-"),
    ]);
    // Each summary is about a dozen lines and comes at the end of the log.
    let log = run::ffmpeg_log(tools, args, 20 * n + 40).await?;
    (0..n)
        .map(|k| {
            summary_integrated(&log, &tag(k)).ok_or_else(|| MediaError::ToolFailed {
                tool: "ffmpeg".into(),
                status: "no ebur128 summary".into(),
                stderr_tail: format!("no loudness for {}", inputs[k].path.display()),
            })
        })
        .map(|r| r.map(|lufs| (lufs > SILENT_LUFS).then_some(lufs)))
        .collect()
}

/// The filter with an instance name, which ffmpeg puts in front of its log lines.
fn tag(k: usize) -> String {
    format!("ebur128@loud{k}")
}

/// The `I:` value of the summary that the filter instance `name` logged.
fn summary_integrated(log: &str, name: &str) -> Option<f64> {
    let start = log.find(&format!("[{name} @"))?;
    let rest = &log[start..];
    let summary = &rest[rest.find("Summary:")?..];
    summary
        .lines()
        .find_map(|l| l.trim().strip_prefix("I:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
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
    fn reads_each_named_summary() {
        let log = "\
[ebur128@loud1 @ 0x1] Summary:\n\n  Integrated loudness:\n    I:         -21.0 LUFS\n    Threshold: -31.2 LUFS\n\
[ebur128@loud0 @ 0x2] Summary:\n\n  Integrated loudness:\n    I:         -70.0 LUFS\n";
        assert_eq!(summary_integrated(log, &tag(1)), Some(-21.0));
        assert_eq!(summary_integrated(log, &tag(0)), Some(-70.0));
        assert_eq!(summary_integrated(log, &tag(2)), None);
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

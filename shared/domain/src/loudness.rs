//! Loudness as EBU R128 measures it, kept with the audio it describes: an audio file is measured
//! once, where it is made (a narration clip) or first seen (a music asset), and every compose
//! afterwards levels it from the stored figures instead of listening to it again.

use serde::{Deserialize, Serialize};

/// BS.1770's absolute gate: blocks quieter than this are silence and count for nothing.
pub const ABSOLUTE_GATE_LUFS: f64 = -70.0;
/// BS.1770's relative gate, below the ungated mean of the blocks that passed the absolute one.
pub const RELATIVE_GATE_LU: f64 = 10.0;
/// Gating blocks are 400 ms long and start every 100 ms.
pub const BLOCK_SECONDS: f64 = 0.4;
pub const BLOCK_STEP_SECONDS: f64 = 0.1;

/// One audio file's loudness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Loudness {
    /// Integrated loudness of the file played once through (LUFS); `None` for silence.
    pub integrated_lufs: Option<f64>,
    /// The momentary loudness (LUFS) of each gating block in order, the first ending 0.4 s in
    /// and one every 0.1 s after: enough to know the integrated loudness of any stretch of the
    /// file, or of the file looped, without measuring it again. Empty where only the figure
    /// for the whole file is kept (a narration line, always played once through).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<f32>,
}

impl Loudness {
    /// The loudness of a file whose gating blocks measured `blocks`.
    pub fn from_blocks(blocks: Vec<f32>) -> Loudness {
        Loudness {
            integrated_lufs: gated(blocks.iter().copied()),
            blocks,
        }
    }

    /// The same without the blocks: what a record that only plays the file once through keeps.
    pub fn summary(&self) -> Loudness {
        Loudness {
            integrated_lufs: self.integrated_lufs,
            blocks: Vec::new(),
        }
    }

    /// The integrated loudness of the file as a compose plays a bed: from its start, looped
    /// when shorter than `seconds`, cut at `seconds`. Blocks that would straddle a loop's seam
    /// are left out (a few in hundreds). Without blocks, the figure for the whole file.
    pub fn played_for(&self, seconds: f64) -> Option<f64> {
        if self.blocks.is_empty() {
            return self.integrated_lufs;
        }
        // The file is as long as its last block's end (to the 100 ms the blocks resolve).
        let length = BLOCK_SECONDS + BLOCK_STEP_SECONDS * (self.blocks.len() - 1) as f64;
        let ends = |k: usize| BLOCK_SECONDS + BLOCK_STEP_SECONDS * k as f64;
        // A small slack so a block ending exactly at `seconds` counts despite rounding.
        let limit = seconds + 1e-6;
        let played = (0..)
            .map(|lap| lap as f64 * length)
            .take_while(|start| start + BLOCK_SECONDS <= limit)
            .flat_map(|start| {
                self.blocks
                    .iter()
                    .enumerate()
                    .take_while(move |(k, _)| start + ends(*k) <= limit)
                    .map(|(_, &b)| b)
            });
        gated(played)
    }
}

/// BS.1770's integrated loudness of a series of block loudnesses: the mean power of the blocks
/// above the absolute gate and above the relative gate under their own mean.
pub fn gated(blocks: impl Iterator<Item = f32> + Clone) -> Option<f64> {
    let power = |lufs: f64| 10f64.powf(lufs / 10.0);
    let mean = |it: &mut dyn Iterator<Item = f64>| {
        let (sum, n) = it.fold((0.0, 0usize), |(s, n), p| (s + p, n + 1));
        (n > 0).then(|| 10.0 * (sum / n as f64).log10())
    };
    let loud = blocks.map(f64::from).filter(|&l| l > ABSOLUTE_GATE_LUFS);
    let ungated = mean(&mut loud.clone().map(power))?;
    let threshold = ungated - RELATIVE_GATE_LU;
    mean(&mut loud.filter(|&l| l > threshold).map(power))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_level_is_its_own_integrated_loudness() {
        let l = Loudness::from_blocks(vec![-20.0; 50]);
        assert!((l.integrated_lufs.unwrap() - -20.0).abs() < 1e-6);
        assert!((l.played_for(60.0).unwrap() - -20.0).abs() < 1e-6);
    }

    #[test]
    fn silence_is_none_and_quiet_blocks_are_gated_out() {
        assert_eq!(
            Loudness::from_blocks(vec![-120.7; 10]).integrated_lufs,
            None
        );
        assert_eq!(Loudness::from_blocks(Vec::new()).integrated_lufs, None);
        // Ten blocks at -20 and ten at -40: the quiet ones fall under the relative gate.
        let mut blocks = vec![-20.0; 10];
        blocks.extend([-40.0; 10]);
        let l = Loudness::from_blocks(blocks);
        assert!((l.integrated_lufs.unwrap() - -20.0).abs() < 1e-6);
        // Ten at -20 and ten at -26 both pass: the mean power.
        let mut blocks = vec![-20.0f32; 10];
        blocks.extend([-26.0; 10]);
        let want = 10.0 * ((power(-20.0) + power(-26.0)) / 2.0).log10();
        let got = Loudness::from_blocks(blocks).integrated_lufs.unwrap();
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }

    fn power(l: f64) -> f64 {
        10f64.powf(l / 10.0)
    }

    #[test]
    fn a_bed_cut_short_is_as_loud_as_the_part_that_plays() {
        // A quiet 10 s intro (-30) then a loud rest (-14): the first 10 s are the intro.
        let mut blocks = vec![-30.0f32; 97];
        blocks.extend([-14.0; 200]);
        let l = Loudness::from_blocks(blocks);
        assert!((l.played_for(10.0).unwrap() - -30.0).abs() < 1e-6);
        assert!(l.integrated_lufs.unwrap() > -15.0);
    }

    #[test]
    fn a_looped_bed_repeats_its_blocks() {
        // 2 s of -18 then 2 s of -24 (4 s: 37 blocks); played for 6 s it is one and a half laps.
        let mut blocks = vec![-18.0f32; 17];
        blocks.extend([-24.0; 20]);
        let l = Loudness::from_blocks(blocks.clone());
        let lap = blocks.clone();
        // The second lap from 4 s: blocks ending by 6 s end at most 2 s into it.
        let second: Vec<f32> = lap.iter().copied().take(17).collect();
        let want = gated(lap.iter().copied().chain(second.iter().copied())).unwrap();
        let got = l.played_for(6.0).unwrap();
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        // Looped long enough, the bed converges on its own integrated loudness.
        let long = l.played_for(400.0).unwrap();
        assert!((long - l.integrated_lufs.unwrap()).abs() < 0.05, "{long}");
        // Shorter than a block: nothing is heard long enough to measure.
        assert_eq!(l.played_for(0.3), None);
    }

    #[test]
    fn the_summary_keeps_the_figure_and_drops_the_blocks() {
        let l = Loudness::from_blocks(vec![-20.0; 5]);
        let s = l.summary();
        assert!(s.blocks.is_empty());
        assert_eq!(s.integrated_lufs, l.integrated_lufs);
        assert_eq!(s.played_for(100.0), l.integrated_lufs);
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("blocks"), "{json}");
        let back: Loudness = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}

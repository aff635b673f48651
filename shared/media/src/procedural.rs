//! The procedural clip provider: offline, free and deterministic clips drawn by ffmpeg's
//! `gradients` source, with palette and motion chosen from the prompt's words. It is the default
//! provider and every test uses it, so it must be cheap.

use async_trait::async_trait;
use std::path::Path;
use vidpipe_domain::media::ClipSpec;
use vidpipe_domain::ports::{ClipProvider, MediaError, ProviderError};

use crate::compose::FfmpegEngine;
use crate::filtergraph::{Chain, Filter, Graph};
use crate::run::{self, os};
use crate::tools::Tools;

/// Gradients are drawn at this fraction of the output size and scaled up: a smooth gradient
/// loses nothing, and drawing it is most of the cost (1080p: ~0.7 s instead of ~3.5 s for 6 s).
const DRAW_DIVISOR: u32 = 4;

/// Offline clip provider drawing animated gradients.
#[derive(Debug, Clone)]
pub struct ProceduralProvider {
    tools: Tools,
}

impl ProceduralProvider {
    pub const NAME: &'static str = "procedural";

    pub fn new(tools: Tools) -> ProceduralProvider {
        ProceduralProvider { tools }
    }
}

impl From<&FfmpegEngine> for ProceduralProvider {
    fn from(engine: &FfmpegEngine) -> ProceduralProvider {
        ProceduralProvider::new(engine.tools().clone())
    }
}

#[async_trait]
impl ClipProvider for ProceduralProvider {
    fn name(&self) -> &str {
        Self::NAME
    }

    /// Drawn locally: free.
    fn estimate_usd(&self, _spec: &ClipSpec) -> Option<f64> {
        Some(0.0)
    }

    async fn generate(&self, spec: &ClipSpec, dest: &Path) -> Result<(), ProviderError> {
        if spec.width < 2 || spec.height < 2 || spec.width % 2 == 1 || spec.height % 2 == 1 {
            return Err(ProviderError::Rejected(format!(
                "frame size {}x{} must be even and non-zero",
                spec.width, spec.height
            )));
        }
        if spec.fps == 0 || spec.frames == 0 {
            return Err(ProviderError::Rejected(
                "fps and frames must be positive".into(),
            ));
        }
        if let Some(parent) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(MediaError::Io)?;
        }
        let look = Look::for_scene(&spec.visual_prompt, spec.scene_index, spec.seed);
        // Written beside the destination and renamed, so a cache never sees half a clip.
        let partial = dest.with_extension("partial.mp4");
        let args = render_args(spec, &look, &partial);
        let result = run::ffmpeg(&self.tools, args, None).await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e.into());
        }
        tokio::fs::rename(&partial, dest)
            .await
            .map_err(MediaError::Io)?;
        Ok(())
    }
}

fn render_args(spec: &ClipSpec, look: &Look, dest: &Path) -> Vec<std::ffi::OsString> {
    let draw_w = (spec.width / DRAW_DIVISOR).max(16) & !1;
    let draw_h = (spec.height / DRAW_DIVISOR).max(16) & !1;
    let mut source = Filter::new("gradients")
        .opt("s", format!("{draw_w}x{draw_h}"))
        .opt("r", spec.fps)
        .opt("n", look.palette.len())
        .opt("type", look.kind)
        .num("speed", look.speed)
        .opt("seed", look.seed);
    for (i, c) in look.palette.iter().enumerate() {
        source = source.opt(&format!("c{i}"), format!("0x{c:06x}"));
    }
    let mut g = Graph::new();
    g.push(Chain::new([]).then(source));
    let vf = Chain::new([])
        .then(
            Filter::new("scale")
                .opt("w", spec.width)
                .opt("h", spec.height)
                .opt("flags", "bilinear"),
        )
        .then(Filter::new("setsar").arg(1))
        .then(Filter::new("format").arg("yuv420p"));
    let mut vf_graph = Graph::new();
    vf_graph.push(vf);
    let mut args = vec![
        os("-f"),
        os("lavfi"),
        os("-i"),
        os(g.to_string()),
        os("-vf"),
        os(vf_graph.to_string()),
    ];
    args.extend(clip_output_args(spec, dest));
    args
}

/// How every scene clip is encoded, whichever way it was made (drawn, animated from a still,
/// fitted from a provider's video): clips that share settings compose identically.
pub(crate) fn clip_output_args(spec: &ClipSpec, dest: &Path) -> Vec<std::ffi::OsString> {
    vec![
        os("-frames:v"),
        os(spec.frames.to_string()),
        os("-an"),
        os("-c:v"),
        os("libx264"),
        // An intermediate that the composer re-encodes: encode fast, keep quality high.
        os("-preset"),
        os("ultrafast"),
        os("-crf"),
        os("18"),
        os("-pix_fmt"),
        os("yuv420p"),
        os("-r"),
        os(spec.fps.to_string()),
        os("-fflags"),
        os("+bitexact"),
        os("-movflags"),
        os("+faststart"),
        os("-f"),
        os("mp4"),
        os(dest),
    ]
}

/// What a scene looks like, derived only from (prompt, scene, seed).
#[derive(Debug, Clone, PartialEq)]
pub struct Look {
    pub palette: Vec<u32>,
    pub kind: &'static str,
    pub speed: f64,
    pub seed: u32,
}

const PALETTES: &[(&[&str], &[u32])] = &[
    (
        &[
            "ocean",
            "sea",
            "water",
            "wave",
            "waves",
            "beach",
            "lake",
            "river",
            "underwater",
            "blue",
        ],
        &[0x0b2545, 0x13315c, 0x1e6091, 0x48cae4, 0xade8f4],
    ),
    (
        &[
            "sunset", "sunrise", "dawn", "dusk", "golden", "autumn", "orange", "warm",
        ],
        &[0x3d1a4a, 0xc0392b, 0xf39c12, 0xffc971, 0xffe8c2],
    ),
    (
        &[
            "forest", "tree", "trees", "jungle", "nature", "garden", "leaf", "leaves", "green",
            "meadow", "spring",
        ],
        &[0x081c15, 0x1b4332, 0x2d6a4f, 0x52b788, 0xb7e4c7],
    ),
    (
        &[
            "night", "star", "stars", "space", "moon", "midnight", "galaxy", "dark", "cosmic",
        ],
        &[0x03045e, 0x0b0b2b, 0x240046, 0x3c096c, 0x5a189a],
    ),
    (
        &[
            "fire", "flame", "flames", "lava", "volcano", "red", "heat", "burning", "passion",
        ],
        &[0x370617, 0x6a040f, 0x9d0208, 0xdc2f02, 0xf48c06],
    ),
    (
        &[
            "snow", "ice", "winter", "frost", "frozen", "arctic", "white", "cloud", "clouds",
        ],
        &[0xcaf0f8, 0xe0fbfc, 0x90e0ef, 0xf8f9fa, 0xadb5bd],
    ),
    (
        &["desert", "sand", "dune", "dunes", "earth", "coffee", "wood"],
        &[0x6f4518, 0x8b5e34, 0xbc8a5f, 0xe7bc91, 0xffedd8],
    ),
    (
        &["city", "neon", "cyber", "urban", "club", "party", "tech"],
        &[0x10002b, 0x7209b7, 0xf72585, 0x4cc9f0, 0x3a0ca3],
    ),
];

const FAST_WORDS: &[&str] = &[
    "storm",
    "fast",
    "city",
    "dance",
    "dancing",
    "energy",
    "action",
    "race",
    "racing",
    "rush",
    "explosion",
    "party",
    "run",
    "running",
    "striking",
];
const SLOW_WORDS: &[&str] = &[
    "calm",
    "still",
    "slow",
    "gentle",
    "quiet",
    "peaceful",
    "serene",
    "soft",
    "relax",
    "relaxing",
    "meditation",
];
const KINDS: &[&str] = &["linear", "radial", "circular", "spiral", "square"];
const BASE_SPEED: f64 = 0.015;

impl Look {
    pub fn for_scene(prompt: &str, scene_index: u32, seed: u64) -> Look {
        let lower = prompt.to_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let h = fnv1a(&[
            prompt.as_bytes(),
            &scene_index.to_le_bytes(),
            &seed.to_le_bytes(),
        ]);

        let n = 3 + (h % 3) as usize;
        let palette: Vec<u32> = match PALETTES
            .iter()
            .find(|(keys, _)| words.iter().any(|w| keys.contains(w)))
        {
            // Rotate through the family so neighbouring scenes differ but stay on theme.
            Some((_, colours)) => (0..n)
                .map(|i| colours[(i + (h >> 8) as usize) % colours.len()])
                .collect(),
            None => {
                let hue = (h >> 16) as f64 % 360.0;
                (0..n)
                    .map(|i| {
                        hsv(
                            (hue + i as f64 * 35.0) % 360.0,
                            0.65,
                            0.35 + 0.15 * i as f64,
                        )
                    })
                    .collect()
            }
        };
        let fast = words.iter().filter(|w| FAST_WORDS.contains(w)).count() as i32;
        let slow = words.iter().filter(|w| SLOW_WORDS.contains(w)).count() as i32;
        let speed = match fast - slow {
            d if d > 0 => BASE_SPEED * 3.0,
            d if d < 0 => BASE_SPEED * 0.35,
            _ => BASE_SPEED,
        };
        Look {
            palette,
            kind: KINDS[((h >> 24) % KINDS.len() as u64) as usize],
            speed: (speed * (0.85 + ((h >> 32) % 30) as f64 / 100.0)).clamp(0.0, 1.0),
            seed: (h >> 32) as u32,
        }
    }
}

/// FNV-1a: a stable hash (std's hasher may change between Rust releases; pixels must not).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for part in parts {
        for &b in (part.len() as u64).to_le_bytes().iter().chain(part.iter()) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

fn hsv(h: f64, s: f64, v: f64) -> u32 {
    let c = v * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let m = v - c;
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let to = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u32;
    (to(r) << 16) | (to(g) << 8) | to(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_choose_palette_and_motion() {
        let ocean = Look::for_scene("A calm ocean at dawn", 0, 0);
        assert!(
            ocean.palette.iter().all(|c| PALETTES[0].1.contains(c)),
            "{ocean:?}"
        );
        assert!(ocean.speed < BASE_SPEED);
        let storm = Look::for_scene("fire storm over the city", 1, 0);
        assert!(
            storm.palette.iter().all(|c| PALETTES[4].1.contains(c)),
            "{storm:?}"
        );
        assert!(storm.speed > BASE_SPEED);
    }

    #[test]
    fn same_inputs_same_look_and_seed_changes_it() {
        let a = Look::for_scene("abstract shapes", 2, 7);
        assert_eq!(a, Look::for_scene("abstract shapes", 2, 7));
        assert_ne!(a, Look::for_scene("abstract shapes", 2, 8));
    }
}

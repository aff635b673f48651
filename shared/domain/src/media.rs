//! Media facts and requests in the domain's terms: what a probe reports, what a clip render or a
//! composition is asked to produce. The `MediaEngine` port speaks these types; ffmpeg is one
//! implementation of it.

use crate::timeline::Timeline;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    Video,
    Audio,
    Subtitle,
    Data,
    Attachment,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamInfo {
    pub index: u32,
    pub kind: StreamKind,
    pub codec: String,
    pub profile: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub pix_fmt: Option<String>,
    /// Nominal rate (`r_frame_rate`) and average rate; they differ for variable frame rate.
    pub frame_rate: Option<f64>,
    pub avg_frame_rate: Option<f64>,
    pub rotation: i32,
    pub frames: Option<u64>,
    pub duration_seconds: Option<f64>,
    pub bit_rate: Option<u64>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeInfo {
    pub format_name: String,
    pub duration_seconds: Option<f64>,
    pub size_bytes: Option<u64>,
    pub bit_rate: Option<u64>,
    pub streams: Vec<StreamInfo>,
}

impl ProbeInfo {
    pub fn video(&self) -> Option<&StreamInfo> {
        self.streams.iter().find(|s| s.kind == StreamKind::Video)
    }

    pub fn audio(&self) -> Option<&StreamInfo> {
        self.streams.iter().find(|s| s.kind == StreamKind::Audio)
    }
}

/// What a clip provider is asked for: one scene at the output's size, rate and exact length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipSpec {
    pub scene_index: u32,
    pub visual_prompt: String,
    pub seed: u64,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub frames: u32,
}

impl ClipSpec {
    pub fn duration_seconds(&self) -> f64 {
        self.frames as f64 / self.fps as f64
    }

    /// Content address for the clip cache: everything that changes the pixels, and the provider.
    /// The scene index is left out on purpose: the same prompt at the same size is the same clip.
    pub fn cache_digest(&self, provider: &str) -> String {
        let mut h = Sha256::new();
        for part in [
            provider.as_bytes(),
            self.visual_prompt.as_bytes(),
            &self.seed.to_le_bytes(),
            &self.width.to_le_bytes(),
            &self.height.to_le_bytes(),
            &self.fps.to_le_bytes(),
            &self.frames.to_le_bytes(),
        ] {
            // Length-prefixed so that ("ab","c") and ("a","bc") never collide.
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        hex::encode(h.finalize())
    }
}

/// Everything one composition needs, as local files.
#[derive(Debug, Clone)]
pub struct CompositionJob {
    pub timeline: Timeline,
    /// Local path of each timeline clip, in timeline order.
    pub clips: Vec<PathBuf>,
    pub logo: Option<PathBuf>,
    pub music: Option<PathBuf>,
    /// Where caption images and other scratch files may be written.
    pub work_dir: PathBuf,
    pub final_path: PathBuf,
    pub thumbnail_path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolVersions {
    pub ffmpeg: String,
    pub ffprobe: String,
}

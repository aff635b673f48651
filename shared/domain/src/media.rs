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
    /// The frame to start from, for image-to-video models: an `https` URL or a `data:` URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_frame: Option<String>,
}

impl ClipSpec {
    /// The frame's shape as providers name it: `16:9`, `9:16`, `1:1` or `4:5` (reduced).
    pub fn aspect_ratio(&self) -> String {
        fn gcd(a: u32, b: u32) -> u32 {
            if b == 0 { a } else { gcd(b, a % b) }
        }
        let g = gcd(self.width, self.height).max(1);
        format!("{}:{}", self.width / g, self.height / g)
    }

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
        // Only when set, so clips cached before first frames existed keep their keys.
        if let Some(frame) = &self.first_frame {
            h.update((frame.len() as u64).to_le_bytes());
            h.update(frame.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// A Ken Burns move over a still: chosen from the scene (see [`Motion::for_scene`]), so the same
/// scene always moves the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Motion {
    ZoomIn,
    ZoomOut,
    PanLeft,
    PanRight,
}

impl Motion {
    pub const ALL: [Motion; 4] = [
        Motion::ZoomIn,
        Motion::ZoomOut,
        Motion::PanLeft,
        Motion::PanRight,
    ];

    /// Deterministic in the prompt, seed and index: a retry or a recompose moves identically.
    pub fn for_scene(spec: &ClipSpec) -> Motion {
        let digest = spec.cache_digest("motion");
        let byte = u8::from_str_radix(&digest[..2], 16).unwrap_or(0);
        Motion::ALL[(byte as usize + spec.scene_index as usize) % Motion::ALL.len()]
    }
}

/// Everything one composition needs, as local files.
#[derive(Debug, Clone)]
pub struct CompositionJob {
    pub timeline: Timeline,
    /// Local path of each timeline clip, in timeline order.
    pub clips: Vec<PathBuf>,
    pub logo: Option<PathBuf>,
    pub music: Option<MeasuredAudio>,
    /// Each narration cue's audio, in `timeline.narration` order.
    pub narration: Vec<MeasuredAudio>,
    /// Where caption images and other scratch files may be written.
    pub work_dir: PathBuf,
    pub final_path: PathBuf,
    pub thumbnail_path: PathBuf,
}

/// A local audio file and its loudness, measured where the file was made or first seen: the
/// compose levels it from this figure and never measures it again.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuredAudio {
    pub path: PathBuf,
    pub loudness: crate::loudness::Loudness,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolVersions {
    pub ffmpeg: String,
    pub ffprobe: String,
}

/// Where the media engine reads an object from: a local file (the filesystem store) or a URL it
/// opens directly (a presigned S3 GET, so ffmpeg reads only the byte ranges it needs). `key` is
/// the object's name in the store: what messages call it, never the URL, whose signature would
/// let any reader of a notification fetch the upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSource {
    pub key: String,
    pub location: MediaLocation,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaLocation {
    Path(PathBuf),
    Url(String),
}

impl MediaSource {
    /// The text ffmpeg is given as its input.
    pub fn as_os_str(&self) -> &std::ffi::OsStr {
        match &self.location {
            MediaLocation::Path(p) => p.as_os_str(),
            MediaLocation::Url(u) => std::ffi::OsStr::new(u),
        }
    }

    /// `text` with every mention of this source's location replaced by its key: tools echo
    /// their input in their errors, and a signed URL or a server path must not reach a record.
    pub fn redact(&self, text: &str) -> String {
        let location = match &self.location {
            MediaLocation::Path(p) => p.to_string_lossy().into_owned(),
            MediaLocation::Url(u) => u.clone(),
        };
        if location.is_empty() {
            return text.to_owned();
        }
        text.replace(&location, &self.key)
    }
}

/// One encode of a rendition render: a box, bitrates and where the file goes. Several
/// renditions may share one.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeTarget {
    pub fit: crate::processing::Fit,
    pub video_kbps: u32,
    pub audio_kbps: u32,
    pub output: PathBuf,
}

/// Which part of the output timeline a render produces, and from where in its input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    /// Seconds to skip in the input before the first output frame.
    pub input_offset: f64,
    pub rate: crate::processing::Rate,
    pub frames: u64,
}

impl Span {
    /// The whole trimmed output, read from the original source.
    pub fn whole(window: &crate::processing::TrimWindow) -> Span {
        Span {
            input_offset: window.start_seconds,
            rate: window.rate,
            frames: window.frames,
        }
    }

    pub fn seconds(&self) -> f64 {
        self.frames as f64 / self.rate.as_f64()
    }
}

/// The thumbnail a single pass writes along the way.
#[derive(Debug, Clone, PartialEq)]
pub struct ThumbnailTarget {
    /// Output frame index (within the span) to take.
    pub frame: u64,
    pub width: u32,
    pub height: u32,
    pub output: PathBuf,
}

/// A watermark decoded to straight RGBA pixels, with where and how strongly to place it. Decoded
/// once per step by the engine, so a broken image is found before any encode starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Watermark {
    pub width: u32,
    pub height: u32,
    /// `width * height * 4` bytes.
    pub rgba: Vec<u8>,
    pub spec: crate::processing::WatermarkSpec,
}

/// Everything one rendition render needs.
#[derive(Debug, Clone, Copy)]
pub struct RenderJob<'a> {
    pub source: &'a MediaSource,
    /// Displayed source size (rotation applied), to size the blur-pad.
    pub source_size: (u32, u32),
    pub span: Span,
    pub targets: &'a [EncodeTarget],
    pub thumbnail: Option<&'a ThumbnailTarget>,
    pub watermark: &'a Watermark,
    /// `Some(has_audio)`: write audio (a silent track when the source has none). `None`: video
    /// only, for segment renders whose audio is encoded once elsewhere.
    pub audio: Option<bool>,
    pub work_dir: &'a std::path::Path,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processing::{Rate, TrimWindow};

    #[test]
    fn a_whole_span_starts_at_the_intro_and_lasts_the_window() {
        let window = TrimWindow {
            start_seconds: 3.0,
            rate: Rate { num: 30, den: 1 },
            frames: 30 * 40,
        };
        let span = Span::whole(&window);
        assert_eq!(span.input_offset, 3.0);
        assert_eq!(span.seconds(), 40.0);
    }

    #[test]
    fn redaction_names_the_key_instead_of_the_url() {
        let url = "http://127.0.0.1:9/b/raw/a/p/x.mp4?X-Amz-Signature=abc&x-id=GetObject";
        let source = MediaSource {
            key: "raw/a/p/x.mp4".into(),
            location: MediaLocation::Url(url.into()),
        };
        assert_eq!(
            source.redact(&format!("{url}: Invalid data found")),
            "raw/a/p/x.mp4: Invalid data found"
        );
    }
}

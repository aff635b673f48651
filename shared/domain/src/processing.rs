//! The upload-processing job in the domain's terms: where a raw upload sits and where its outputs
//! go, the rendition profiles, the settings (trims, limits, watermark, routing), the checks that
//! reject a source, the geometry and frame math every runner shares, and the job record.

use crate::media::ProbeInfo;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The profile file checked into the repo; `RenditionSet::from_json` reads a replacement.
pub const DEFAULT_RENDITIONS: &str = include_str!("../renditions.json");

/// Extensions the dispatcher treats as video, compared case-insensitively.
pub const VIDEO_EXTENSIONS: [&str; 10] = [
    "mp4", "mov", "m4v", "mkv", "webm", "avi", "mpg", "mpeg", "ts", "mts",
];

/// One uploaded object, identified the way S3 identifies a write: bucket, key and version (or,
/// for an unversioned bucket, the event sequencer, which orders writes to the same key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    pub bucket: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl SourceRef {
    /// Stable id of this write: the record key and the execution name. Length-prefixed parts, so
    /// ("ab","c") and ("a","bc") never collide. 40 hex digits fit the 80-character name limit.
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            self.bucket.as_str(),
            self.key.as_str(),
            self.version.as_deref().unwrap_or(""),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        hex::encode(&h.finalize()[..20])
    }
}

/// Where an upload sits in the layout: `raw/{client}/{project}/{file}`. `file` may itself hold
/// folders; they are kept in the output keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePath {
    pub client: String,
    pub project: String,
    /// The file's path below the project, without its extension.
    pub stem: String,
    pub extension: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourcePathError {
    #[error("{0:?} is not under raw/{{client}}/{{project}}/")]
    OutsideLayout(String),
    #[error("{0:?} has no video extension (known: {known})", known = VIDEO_EXTENSIONS.join(", "))]
    NotVideo(String),
    /// `.` or `..` segments, control characters: a key that could name something outside its
    /// own folder once mapped to a path is an unusable upload, never a server fault.
    #[error("{0:?} is not a safe object key (no `.` or `..` segments, no control characters)")]
    Unsafe(String),
}

impl SourcePath {
    pub fn parse(key: &str) -> Result<SourcePath, SourcePathError> {
        let outside = || SourcePathError::OutsideLayout(key.to_owned());
        let unsafe_segment = key.split('/').any(|seg| seg == "." || seg == "..");
        if unsafe_segment || key.chars().any(char::is_control) {
            return Err(SourcePathError::Unsafe(key.to_owned()));
        }
        let rest = key.strip_prefix("raw/").ok_or_else(outside)?;
        let mut parts = rest.splitn(3, '/');
        let (client, project, file) = match (parts.next(), parts.next(), parts.next()) {
            (Some(c), Some(p), Some(f)) if !c.is_empty() && !p.is_empty() && !f.is_empty() => {
                (c, p, f)
            }
            _ => return Err(outside()),
        };
        if file.ends_with('/') {
            return Err(outside());
        }
        let name_start = file.rfind('/').map_or(0, |i| i + 1);
        let (stem, extension) = match file[name_start..].rfind('.') {
            Some(dot) if dot > 0 => (&file[..name_start + dot], &file[name_start + dot + 1..]),
            _ => return Err(SourcePathError::NotVideo(key.to_owned())),
        };
        if !is_video_extension(extension) {
            return Err(SourcePathError::NotVideo(key.to_owned()));
        }
        Ok(SourcePath {
            client: client.to_owned(),
            project: project.to_owned(),
            stem: stem.to_owned(),
            extension: extension.to_owned(),
        })
    }

    fn prefix(&self) -> String {
        format!("processed/{}/{}/{}", self.client, self.project, self.stem)
    }

    pub fn rendition_key(&self, rendition: &str) -> String {
        format!("{}_{rendition}.mp4", self.prefix())
    }

    pub fn thumbnail_key(&self) -> String {
        format!("{}_thumbnail.jpg", self.prefix())
    }

    pub fn manifest_key(&self) -> String {
        format!("{}_manifest.json", self.prefix())
    }
}

pub fn is_video_extension(ext: &str) -> bool {
    VIDEO_EXTENSIONS.iter().any(|v| v.eq_ignore_ascii_case(ext))
}

/// Scratch objects of one processing run (segments, per-segment renders, the audio track).
pub fn temp_key(source_id: &str, name: &str) -> String {
    format!("temp/process/{source_id}/{name}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    H264,
}

/// One platform rendition: the box it fills, its codec and bitrates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenditionProfile {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub codec: VideoCodec,
    pub video_kbps: u32,
    pub audio_kbps: u32,
}

impl RenditionProfile {
    /// Two renditions with the same encoding key produce identical bytes, so they are encoded
    /// once and published under both names.
    pub fn encoding_key(&self) -> (u32, u32, VideoCodec, u32, u32) {
        (
            self.width,
            self.height,
            self.codec,
            self.video_kbps,
            self.audio_kbps,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenditionSet {
    pub renditions: Vec<RenditionProfile>,
}

impl RenditionSet {
    pub fn default_set() -> RenditionSet {
        RenditionSet::from_json(DEFAULT_RENDITIONS).expect("the checked-in profile file is valid")
    }

    pub fn from_json(text: &str) -> Result<RenditionSet, String> {
        let set: RenditionSet = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if set.renditions.is_empty() {
            return Err("no renditions".into());
        }
        for (i, r) in set.renditions.iter().enumerate() {
            let name_ok = !r.name.is_empty()
                && r.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !name_ok {
                return Err(format!("rendition {i}: name must be [a-z0-9-]+"));
            }
            if set.renditions[..i].iter().any(|o| o.name == r.name) {
                return Err(format!("rendition {:?} appears twice", r.name));
            }
            if r.width < 16 || r.height < 16 || r.width > 7680 || r.height > 7680 {
                return Err(format!("rendition {:?}: size out of range", r.name));
            }
            if !r.width.is_multiple_of(2) || !r.height.is_multiple_of(2) {
                return Err(format!(
                    "rendition {:?}: width and height must be even",
                    r.name
                ));
            }
            if !(100..=100_000).contains(&r.video_kbps) || !(32..=512).contains(&r.audio_kbps) {
                return Err(format!("rendition {:?}: bitrate out of range", r.name));
            }
        }
        Ok(set)
    }

    /// Renditions grouped by encoding: each group is encoded once.
    pub fn encodings(&self) -> Vec<Vec<&RenditionProfile>> {
        let mut groups: Vec<Vec<&RenditionProfile>> = Vec::new();
        for r in &self.renditions {
            match groups
                .iter_mut()
                .find(|g| g[0].encoding_key() == r.encoding_key())
            {
                Some(g) => g.push(r),
                None => groups.push(vec![r]),
            }
        }
        groups
    }
}

/// Watermark placement: bottom right, its width a fraction of the output width, a margin that is
/// a fraction of the output width too, at a fixed opacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatermarkSpec {
    pub opacity: f64,
    pub width_fraction: f64,
    pub margin_fraction: f64,
}

impl Default for WatermarkSpec {
    fn default() -> Self {
        WatermarkSpec {
            opacity: 0.10,
            width_fraction: 0.15,
            margin_fraction: 0.03,
        }
    }
}

impl WatermarkSpec {
    /// Watermark width, margin (pixels) for an output `width` wide.
    pub fn placement(&self, width: u32) -> (u32, u32) {
        let w = ((width as f64 * self.width_fraction).round() as u32).max(2);
        let m = (width as f64 * self.margin_fraction).round() as u32;
        (w, m)
    }
}

/// What the processing pipeline is configured with (template parameters in AWS, flags locally).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessSettings {
    pub intro_seconds: f64,
    pub outro_seconds: f64,
    pub max_duration_seconds: f64,
    pub max_size_bytes: u64,
    /// Trimmed durations above this take the segment path (or the Fargate worker).
    pub segment_threshold_seconds: f64,
    /// Segment length: the output is cut every this many seconds (the last one is shorter);
    /// each segment renders from its own frame-accurate seek, so no keyframe is needed there.
    pub segment_seconds: f64,
    pub thumbnail_fraction: f64,
    pub thumbnail_long_side: u32,
    pub watermark: WatermarkSpec,
}

impl Default for ProcessSettings {
    fn default() -> Self {
        ProcessSettings {
            intro_seconds: 3.0,
            outro_seconds: 5.0,
            max_duration_seconds: 4.0 * 3600.0,
            max_size_bytes: 10 * 1024 * 1024 * 1024,
            segment_threshold_seconds: 300.0,
            segment_seconds: 60.0,
            thumbnail_fraction: 0.10,
            thumbnail_long_side: 1280,
            watermark: WatermarkSpec::default(),
        }
    }
}

/// Why a source cannot be processed. Retrying never helps; the job fails with this reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// The key is not `raw/{client}/{project}/{file}` with a video extension, or is unsafe.
    #[error(transparent)]
    Key(#[from] SourcePathError),
    #[error("the object no longer exists")]
    Gone,
    #[error("the file is empty (0 bytes)")]
    Empty,
    #[error("the file is not readable media: {0}")]
    NotMedia(String),
    #[error("the file has no video stream")]
    NoVideo,
    #[error("the video is {duration:.3} s long; trimming {intro} s + {outro} s needs more")]
    TooShort {
        duration: f64,
        intro: f64,
        outro: f64,
    },
    #[error("the video is {duration:.1} s long; the limit is {limit} s")]
    TooLong { duration: f64, limit: f64 },
    #[error("the file is {size} bytes; the limit is {limit}")]
    TooLarge { size: u64, limit: u64 },
    /// The stored object is not the size its upload announced (and the URL was signed for).
    #[error("the file is {stored} bytes but its upload announced {announced}")]
    SizeMismatch { announced: u64, stored: u64 },
}

/// How the transcode runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// One ffmpeg process, one decode, every rendition and the thumbnail.
    SinglePass,
    /// Keyframe-aligned segments transcoded in parallel, audio once, concatenated.
    Segments,
    /// The whole single pass on the Fargate worker.
    Worker,
}

/// A frame rate as a ratio, so 30000/1001 stays exact in ffmpeg arguments and frame math.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub num: u32,
    pub den: u32,
}

impl Rate {
    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// The output rate for a source: its nominal rate when that is constant and at most 60,
    /// otherwise the average rate rounded to a whole number (never above 60). NTSC rates are
    /// recognised and kept exact.
    pub fn for_source(nominal: Option<f64>, average: Option<f64>) -> Rate {
        let usable = |r: Option<f64>| r.filter(|r| r.is_finite() && *r >= 1.0);
        let (nominal, average) = (usable(nominal), usable(average));
        let vfr = is_variable(nominal, average);
        let pick = if vfr { average } else { nominal.or(average) };
        let r = pick.unwrap_or(30.0).min(60.0);
        for base in [24u32, 30, 60] {
            let ntsc = base as f64 * 1000.0 / 1001.0;
            if (r - ntsc).abs() < 0.005 {
                return Rate {
                    num: base * 1000,
                    den: 1001,
                };
            }
        }
        if !vfr && (r - r.round()).abs() > 1e-3 {
            // An odd but constant rate (12.5, 23.5): keep it to the millisecond.
            return Rate {
                num: (r * 1000.0).round() as u32,
                den: 1000,
            };
        }
        Rate {
            num: (r.round() as u32).max(1),
            den: 1,
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// ffprobe's nominal and average rates disagree by more than 1 % for variable frame rate.
pub fn is_variable(nominal: Option<f64>, average: Option<f64>) -> bool {
    match (nominal, average) {
        (Some(n), Some(a)) if n > 0.0 && a > 0.0 => (n - a).abs() / a > 0.01,
        _ => false,
    }
}

/// What processing needs from a probe, and the decision it leads to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceFacts {
    pub duration_seconds: f64,
    pub size_bytes: u64,
    /// Displayed size: rotation already applied.
    pub width: u32,
    pub height: u32,
    pub rotation: i32,
    pub nominal_rate: Option<f64>,
    pub average_rate: Option<f64>,
    pub variable_frame_rate: bool,
    pub video_codec: String,
    pub audio_codec: Option<String>,
    pub format_name: String,
}

impl SourceFacts {
    /// Checks a probe against the settings. `size_bytes` is the object's stored size.
    pub fn check(
        probe: &ProbeInfo,
        size_bytes: u64,
        settings: &ProcessSettings,
    ) -> Result<SourceFacts, Rejection> {
        if size_bytes > settings.max_size_bytes {
            return Err(Rejection::TooLarge {
                size: size_bytes,
                limit: settings.max_size_bytes,
            });
        }
        let video = probe.video().ok_or(Rejection::NoVideo)?;
        // A still image (one PNG/JPEG frame) probes as a video stream; it is not a video.
        if matches!(
            video.codec.as_str(),
            "png" | "mjpeg" | "bmp" | "gif" | "webp"
        ) && probe.duration_seconds.unwrap_or(0.0) <= 0.0
        {
            return Err(Rejection::NoVideo);
        }
        let (w, h) = match (video.width, video.height) {
            (Some(w), Some(h)) if w > 0 && h > 0 => (w, h),
            _ => return Err(Rejection::NotMedia("the video stream has no size".into())),
        };
        let duration = probe
            .duration_seconds
            .or(video.duration_seconds)
            .filter(|d| d.is_finite() && *d > 0.0)
            .ok_or_else(|| Rejection::NotMedia("the duration cannot be measured".into()))?;
        if duration > settings.max_duration_seconds {
            return Err(Rejection::TooLong {
                duration,
                limit: settings.max_duration_seconds,
            });
        }
        // At least one frame must remain once both ends are cut.
        if duration - settings.intro_seconds - settings.outro_seconds < 0.5 {
            return Err(Rejection::TooShort {
                duration,
                intro: settings.intro_seconds,
                outro: settings.outro_seconds,
            });
        }
        let rotation = video.rotation.rem_euclid(360);
        let (width, height) = if rotation == 90 || rotation == 270 {
            (h, w)
        } else {
            (w, h)
        };
        Ok(SourceFacts {
            duration_seconds: duration,
            size_bytes,
            width,
            height,
            rotation: video.rotation,
            nominal_rate: video.frame_rate,
            average_rate: video.avg_frame_rate,
            variable_frame_rate: is_variable(video.frame_rate, video.avg_frame_rate),
            video_codec: video.codec.clone(),
            audio_codec: probe.audio().map(|a| a.codec.clone()),
            format_name: probe.format_name.clone(),
        })
    }
}

/// One rendition's frame: the output box and, inside it, the picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fit {
    pub width: u32,
    pub height: u32,
    /// The source picture scaled into the box; smaller than the box on one axis when the aspects
    /// differ (the rest is blurred fill).
    pub inner_width: u32,
    pub inner_height: u32,
}

impl Fit {
    pub fn is_padded(&self) -> bool {
        self.inner_width != self.width || self.inner_height != self.height
    }

    /// Fits a `sw`x`sh` (displayed) source into a `tw`x`th` rendition. Never upscales: when the
    /// source would have to grow to fill the box, the box shrinks instead, keeping its aspect.
    /// All sizes are even, as yuv420p needs.
    pub fn compute(sw: u32, sh: u32, tw: u32, th: u32) -> Fit {
        let scale = (tw as f64 / sw as f64).min(th as f64 / sh as f64);
        let shrink = if scale > 1.0 { 1.0 / scale } else { 1.0 };
        let even = |v: f64| ((v / 2.0).floor() as u32 * 2).max(2);
        let width = even(tw as f64 * shrink);
        let height = even(th as f64 * shrink);
        let fit = (width as f64 / sw as f64).min(height as f64 / sh as f64);
        let inner = |v: u32| even(v as f64 * fit + 1e-6);
        Fit {
            width,
            height,
            inner_width: inner(sw).min(width),
            inner_height: inner(sh).min(height),
        }
    }
}

/// The trimmed output's timeline: which source span becomes the output, at which rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrimWindow {
    pub start_seconds: f64,
    pub rate: Rate,
    pub frames: u64,
}

impl TrimWindow {
    pub fn new(facts: &SourceFacts, settings: &ProcessSettings) -> TrimWindow {
        let rate = Rate::for_source(facts.nominal_rate, facts.average_rate);
        let trimmed = facts.duration_seconds - settings.intro_seconds - settings.outro_seconds;
        TrimWindow {
            start_seconds: settings.intro_seconds,
            rate,
            frames: ((trimmed * rate.as_f64()).round() as u64).max(1),
        }
    }

    pub fn duration_seconds(&self) -> f64 {
        self.frames as f64 / self.rate.as_f64()
    }

    /// The thumbnail's time in the output, as a whole frame.
    pub fn thumbnail_seconds(&self, fraction: f64) -> f64 {
        let frame = ((self.frames as f64 * fraction).floor() as u64).min(self.frames - 1);
        frame as f64 / self.rate.as_f64()
    }

    /// The output cut into pieces of about `segment_seconds`: (first frame, frame count) each.
    /// Pieces are whole frames of the output timeline, so rendering each from its own seek and
    /// joining them gives exactly the frames of the single pass. A very long output gets longer
    /// pieces, so there are never more than [`MAX_SEGMENTS`].
    pub fn segments(&self, segment_seconds: f64) -> Vec<(u64, u64)> {
        let per = ((segment_seconds * self.rate.as_f64()).round() as u64)
            .max(self.frames.div_ceil(MAX_SEGMENTS))
            .max(1);
        (0..self.frames.div_ceil(per))
            .map(|i| (i * per, per.min(self.frames - i * per)))
            .collect()
    }

    /// The source time of output frame `frame`.
    pub fn source_seconds(&self, frame: u64) -> f64 {
        self.start_seconds + frame as f64 / self.rate.as_f64()
    }
}

/// The most segments one upload is cut into. The plan and the Map's results travel in the
/// execution's state, which Step Functions caps at 256 KB; each segment adds about 300 bytes.
pub const MAX_SEGMENTS: u64 = 300;

/// Picks the route for a trimmed duration.
pub fn route(trimmed_seconds: f64, settings: &ProcessSettings, worker_configured: bool) -> Route {
    if trimmed_seconds <= settings.segment_threshold_seconds {
        Route::SinglePass
    } else if worker_configured {
        Route::Worker
    } else {
        Route::Segments
    }
}

/// Thumbnail size: the displayed aspect, long side capped, never upscaled, even.
pub fn thumbnail_size(facts: &SourceFacts, long_side: u32) -> (u32, u32) {
    let long = facts.width.max(facts.height);
    let scale = (long_side as f64 / long as f64).min(1.0);
    let even = |v: u32| (((v as f64 * scale) / 2.0).round() as u32 * 2).max(2);
    (even(facts.width), even(facts.height))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessStatus {
    Running,
    Succeeded,
    Failed,
}

/// One published output, as measured after it was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub rendition: String,
    pub key: String,
    pub width: u32,
    pub height: u32,
    pub video_codec: String,
    pub pix_fmt: String,
    pub duration_seconds: f64,
    pub frames: Option<u64>,
    pub video_bitrate: Option<u64>,
    pub audio_codec: Option<String>,
    pub size_bytes: u64,
}

/// The record of one source's processing, keyed by [`SourceRef::id`]: a re-run of the same
/// write overwrites it, a new write of the same key gets its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessJob {
    pub id: String,
    pub source: SourceRef,
    pub path: Option<SourcePath>,
    pub status: ProcessStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<SourceFacts>,
    #[serde(default)]
    pub outputs: Vec<OutputRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_key: Option<String>,
    /// `{error name}: {message}` when failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ProcessFailure>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Optimistic concurrency, as on generation jobs: 0 before the first write, and every
    /// successful write increments it.
    #[serde(default)]
    pub version: u64,
    /// Retries asked for over the API; retry `n` runs as execution [`ProcessJob::retry_name`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    /// Where the current run is, for live progress. Absent on records written before it existed
    /// and on runs that have not been probed yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StageProgress>,
}

/// The stages of a processing run as subscribers see them. Trim and watermark happen inside the
/// rendition pass (one ffmpeg decode does all three), so a run enters them as the pass starts;
/// the thumbnail stage is entered once the thumbnail is stored beside the renditions.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessStage {
    Probe,
    Trim,
    Watermark,
    Renditions,
    Thumbnail,
    Publish,
}

impl ProcessStage {
    pub const ALL: [ProcessStage; 6] = [
        ProcessStage::Probe,
        ProcessStage::Trim,
        ProcessStage::Watermark,
        ProcessStage::Renditions,
        ProcessStage::Thumbnail,
        ProcessStage::Publish,
    ];

    /// The serde name: what records and events call the stage.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessStage::Probe => "probe",
            ProcessStage::Trim => "trim",
            ProcessStage::Watermark => "watermark",
            ProcessStage::Renditions => "renditions",
            ProcessStage::Thumbnail => "thumbnail",
            ProcessStage::Publish => "publish",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Percent of the run at which the stage starts and ends. The rendition encodes dominate
    /// wall time, so they carry the largest share; trim and watermark are entered together with
    /// them and carry none of their own.
    pub fn span(self) -> (f64, f64) {
        match self {
            ProcessStage::Probe => (0.0, 5.0),
            ProcessStage::Trim => (5.0, 5.0),
            ProcessStage::Watermark => (5.0, 5.0),
            ProcessStage::Renditions => (5.0, 85.0),
            ProcessStage::Thumbnail => (85.0, 90.0),
            ProcessStage::Publish => (90.0, 100.0),
        }
    }
}

impl std::fmt::Display for ProcessStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stage a run is in, when it entered it, and how far into it (0..=1) it is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StageProgress {
    pub stage: ProcessStage,
    pub started_at: DateTime<Utc>,
    #[serde(default)]
    pub fraction: f64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ProcessStatus {
    /// The allowed moves. A run ends once, either way; a new run of the same write (a re-run or
    /// a retry) starts again from either end. What is never allowed is a late failure turning a
    /// success into a failure: a Publish whose response was lost and then timed out has still
    /// published, and its outputs and notification stand.
    pub fn can_move_to(self, next: ProcessStatus) -> bool {
        use ProcessStatus::*;
        matches!(
            (self, next),
            (Running, Running | Succeeded | Failed) | (Succeeded | Failed, Running)
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProcessStatus::Running => "running",
            ProcessStatus::Succeeded => "succeeded",
            ProcessStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for ProcessStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("processing record {id} cannot move from {from} to {to}")]
pub struct ProcessTransitionError {
    pub id: String,
    pub from: ProcessStatus,
    pub to: ProcessStatus,
}

impl ProcessJob {
    /// A new run of this record: cleared of any earlier run's outcome. Allowed from any status.
    pub fn start_run(&self, now: DateTime<Utc>) -> Result<ProcessJob, ProcessTransitionError> {
        let mut next = self.moved(ProcessStatus::Running, now)?;
        next.step = Some(StageProgress {
            stage: ProcessStage::Probe,
            started_at: now,
            fraction: 0.0,
        });
        next.error = None;
        next.outputs.clear();
        next.thumbnail_key = None;
        next.manifest_key = None;
        Ok(next)
    }

    /// The run succeeded with these outputs.
    pub fn succeed(
        &self,
        outputs: Vec<OutputRecord>,
        thumbnail_key: String,
        manifest_key: String,
        now: DateTime<Utc>,
    ) -> Result<ProcessJob, ProcessTransitionError> {
        let mut next = self.moved(ProcessStatus::Succeeded, now)?;
        next.outputs = outputs;
        next.thumbnail_key = Some(thumbnail_key);
        next.manifest_key = Some(manifest_key);
        next.error = None;
        Ok(next)
    }

    /// The running run entered `stage` (or moved within it to `fraction`). `None` when there is
    /// nothing to write: the run is not running, is already past that point, or the fraction
    /// moved by less than `min_step` (so a progress callback does not write on every frame).
    pub fn advanced(
        &self,
        stage: ProcessStage,
        fraction: f64,
        min_step: f64,
        now: DateTime<Utc>,
    ) -> Option<ProcessJob> {
        if self.status != ProcessStatus::Running {
            return None;
        }
        let fraction = fraction.clamp(0.0, 1.0);
        let step = match self.step {
            Some(cur) if cur.stage > stage => return None,
            Some(cur) if cur.stage == stage => {
                if fraction < cur.fraction + min_step && fraction < 1.0 || fraction <= cur.fraction
                {
                    return None;
                }
                StageProgress { fraction, ..cur }
            }
            _ => StageProgress {
                stage,
                started_at: now,
                fraction,
            },
        };
        let mut next = self.clone();
        next.step = Some(step);
        next.updated_at = now;
        Some(next)
    }

    /// Percent of the run done, from its stage and the fraction within it; derived, never
    /// stored. A failed run keeps the percent it had reached.
    pub fn progress(&self) -> f64 {
        match (self.status, self.step) {
            (ProcessStatus::Succeeded, _) => 100.0,
            (_, None) => 0.0,
            (_, Some(s)) => {
                let (lo, hi) = s.stage.span();
                lo + (hi - lo) * s.fraction.clamp(0.0, 1.0)
            }
        }
    }

    /// The run failed for `failure`. Refused once the run succeeded.
    pub fn fail(
        &self,
        failure: ProcessFailure,
        now: DateTime<Utc>,
    ) -> Result<ProcessJob, ProcessTransitionError> {
        let mut next = self.moved(ProcessStatus::Failed, now)?;
        next.error = Some(failure);
        Ok(next)
    }

    fn moved(
        &self,
        to: ProcessStatus,
        now: DateTime<Utc>,
    ) -> Result<ProcessJob, ProcessTransitionError> {
        if !self.status.can_move_to(to) {
            return Err(ProcessTransitionError {
                id: self.id.clone(),
                from: self.status,
                to,
            });
        }
        let mut next = self.clone();
        next.status = to;
        next.updated_at = now;
        Ok(next)
    }

    /// The tenant the record belongs to: the `raw/{client}/` segment of its key. A key outside
    /// the layout belongs to no tenant.
    pub fn owner(&self) -> Option<&str> {
        self.path.as_ref().map(|p| p.client.as_str())
    }

    /// The execution name of retry `n`: the source id (40 hex digits) and the number, within
    /// Step Functions' 80 characters, and the same for every request asking for that retry.
    pub fn retry_name(&self, n: u32) -> String {
        format!("{}-retry-{n}", self.id)
    }

    /// A new running record for `source`, before anything is known about it.
    pub fn new(source: &SourceRef, now: DateTime<Utc>) -> ProcessJob {
        ProcessJob {
            id: source.id(),
            source: source.clone(),
            path: SourcePath::parse(&source.key).ok(),
            status: ProcessStatus::Running,
            route: None,
            facts: None,
            outputs: Vec::new(),
            thumbnail_key: None,
            manifest_key: None,
            error: None,
            created_at: now,
            updated_at: now,
            version: 0,
            retries: 0,
            step: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessFailure {
    /// The stable error name (`VidPipe.SourceRejected`, ...).
    pub error: String,
    pub reason: String,
}

/// What subscribers are told when a source finishes, either way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessEvent {
    pub source_id: String,
    pub bucket: String,
    pub key: String,
    pub status: ProcessStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_key: Option<String>,
    #[serde(default)]
    pub outputs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ProcessFailure>,
}

impl ProcessEvent {
    pub fn of(job: &ProcessJob) -> ProcessEvent {
        ProcessEvent {
            source_id: job.id.clone(),
            bucket: job.source.bucket.clone(),
            key: job.source.key.clone(),
            status: job.status,
            manifest_key: job.manifest_key.clone(),
            outputs: job.outputs.iter().map(|o| o.key.clone()).collect(),
            error: job.error.clone(),
        }
    }

    /// One line for chat webhooks and e-mail subjects.
    pub fn summary(&self) -> String {
        match (&self.status, &self.error) {
            (ProcessStatus::Failed, Some(e)) => {
                format!("vidpipe: {} failed: {}: {}", self.key, e.error, e.reason)
            }
            (ProcessStatus::Failed, None) => format!("vidpipe: {} failed", self.key),
            _ => format!(
                "vidpipe: {} processed into {} outputs",
                self.key,
                self.outputs.len()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_paths_parse_and_map_to_output_keys() {
        let p = SourcePath::parse("raw/acme/launch/My Clip ü.MOV").unwrap();
        assert_eq!(p.client, "acme");
        assert_eq!(p.project, "launch");
        assert_eq!(p.stem, "My Clip ü");
        assert_eq!(p.extension, "MOV");
        assert_eq!(
            p.rendition_key("youtube"),
            "processed/acme/launch/My Clip ü_youtube.mp4"
        );
        assert_eq!(
            p.thumbnail_key(),
            "processed/acme/launch/My Clip ü_thumbnail.jpg"
        );
        let nested = SourcePath::parse("raw/a/b/day1/take.2.mp4").unwrap();
        assert_eq!(nested.stem, "day1/take.2");
        for bad in [
            "raw/a/b.mp4",
            "raw//b/c.mp4",
            "uploads/a/b/c.mp4",
            "raw/a/b/",
            "raw/a/b/dir/",
        ] {
            assert!(
                matches!(
                    SourcePath::parse(bad),
                    Err(SourcePathError::OutsideLayout(_))
                ),
                "{bad}"
            );
        }
        for bad in ["raw/a/b/notes.txt", "raw/a/b/noext", "raw/a/b/.mp4"] {
            assert!(
                matches!(SourcePath::parse(bad), Err(SourcePathError::NotVideo(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn source_ids_are_stable_and_separate_versions() {
        let a = SourceRef {
            bucket: "b".into(),
            key: "raw/c/p/x.mp4".into(),
            version: Some("v1".into()),
        };
        let mut b = a.clone();
        assert_eq!(a.id(), b.id());
        assert_eq!(a.id().len(), 40);
        b.version = Some("v2".into());
        assert_ne!(a.id(), b.id());
        let c = SourceRef {
            bucket: "bra".into(),
            key: "w/c/p/x.mp4".into(),
            version: Some("v1".into()),
        };
        assert_ne!(a.id(), c.id());
    }

    #[test]
    fn the_checked_in_profiles_are_the_platform_targets() {
        let set = RenditionSet::default_set();
        let get = |n: &str| set.renditions.iter().find(|r| r.name == n).unwrap();
        assert_eq!((get("youtube").width, get("youtube").height), (1920, 1080));
        assert_eq!(get("youtube").video_kbps, 5000);
        for n in ["reels", "tiktok"] {
            assert_eq!(
                (get(n).width, get(n).height, get(n).video_kbps),
                (1080, 1920, 4000)
            );
        }
        // Reels and TikTok share one encode.
        assert_eq!(set.encodings().len(), 2);
        assert!(RenditionSet::from_json(r#"{"renditions":[]}"#).is_err());
        assert!(
            RenditionSet::from_json(
                r#"{"renditions":[{"name":"x","width":101,"height":100,"codec":"h264","video_kbps":1000,"audio_kbps":128}]}"#
            )
            .is_err()
        );
    }

    #[test]
    fn fits_never_upscale_and_keep_the_box_aspect() {
        // Same aspect, big enough: the full box.
        assert_eq!(
            Fit::compute(3840, 2160, 1920, 1080),
            Fit {
                width: 1920,
                height: 1080,
                inner_width: 1920,
                inner_height: 1080
            }
        );
        // Smaller source: the box shrinks to it.
        assert_eq!(
            Fit::compute(1280, 720, 1920, 1080),
            Fit {
                width: 1280,
                height: 720,
                inner_width: 1280,
                inner_height: 720
            }
        );
        // Portrait into landscape: full box, picture pillarboxed at its own size or less.
        let f = Fit::compute(1080, 1920, 1920, 1080);
        assert_eq!((f.width, f.height, f.inner_height), (1920, 1080, 1080));
        assert!(f.inner_width <= 608 && f.inner_width >= 606, "{f:?}");
        // Landscape into portrait.
        let f = Fit::compute(1920, 1080, 1080, 1920);
        assert_eq!((f.width, f.height, f.inner_width), (1080, 1920, 1080));
        assert!(f.is_padded());
        // Odd small source: box shrinks, sizes even.
        let f = Fit::compute(1001, 563, 1920, 1080);
        assert_eq!((f.width, f.height), (1000, 562));
        assert!(f.width.is_multiple_of(2) && f.height.is_multiple_of(2));
        // Small portrait into portrait box: shrinks to the source width.
        let f = Fit::compute(360, 640, 1080, 1920);
        assert_eq!((f.width, f.height), (360, 640));
        // Square into landscape.
        let f = Fit::compute(1080, 1080, 1920, 1080);
        assert_eq!(
            (f.width, f.height, f.inner_width, f.inner_height),
            (1920, 1080, 1080, 1080)
        );
        for (sw, sh) in [(1001, 563), (563, 1001), (1, 1), (7, 3000), (4000, 9)] {
            for (tw, th) in [(1920, 1080), (1080, 1920)] {
                let f = Fit::compute(sw, sh, tw, th);
                assert!(f.width <= tw && f.height <= th);
                assert!(f.inner_width <= f.width && f.inner_height <= f.height);
                assert!(f.inner_width.is_multiple_of(2) && f.inner_height.is_multiple_of(2));
            }
        }
    }

    #[test]
    fn rates_stay_exact_and_vfr_becomes_constant() {
        assert_eq!(
            Rate::for_source(Some(30.0), Some(30.0)),
            Rate { num: 30, den: 1 }
        );
        assert_eq!(
            Rate::for_source(Some(30000.0 / 1001.0), Some(30000.0 / 1001.0)),
            Rate {
                num: 30000,
                den: 1001
            }
        );
        // VFR: nominal 90, average 27.4 → 27.
        assert_eq!(
            Rate::for_source(Some(90.0), Some(27.4)),
            Rate { num: 27, den: 1 }
        );
        assert_eq!(
            Rate::for_source(Some(120.0), Some(120.0)),
            Rate { num: 60, den: 1 }
        );
        assert_eq!(Rate::for_source(None, None), Rate { num: 30, den: 1 });
        assert_eq!(
            Rate::for_source(Some(12.5), Some(12.5)),
            Rate {
                num: 12500,
                den: 1000
            }
        );
        assert!(is_variable(Some(90.0), Some(27.4)));
        assert!(!is_variable(Some(30.0), Some(29.9999)));
    }

    #[test]
    fn trim_window_frames_and_segment_boundaries() {
        let facts = SourceFacts {
            duration_seconds: 20.0,
            size_bytes: 1,
            width: 640,
            height: 360,
            rotation: 0,
            nominal_rate: Some(25.0),
            average_rate: Some(25.0),
            variable_frame_rate: false,
            video_codec: "h264".into(),
            audio_codec: None,
            format_name: "mov".into(),
        };
        let w = TrimWindow::new(&facts, &ProcessSettings::default());
        assert_eq!(w.frames, 12 * 25);
        assert_eq!(w.duration_seconds(), 12.0);
        assert_eq!(w.thumbnail_seconds(0.10), 1.2);
        assert_eq!(w.segments(5.0), vec![(0, 125), (125, 125), (250, 50)]);
        assert_eq!(w.segments(100.0), vec![(0, 300)]);
        // Four hours in 15 s pieces would be 960 segments: the pieces grow to stay under 300.
        let long = TrimWindow {
            frames: 4 * 3600 * 25,
            ..w
        };
        let cut = long.segments(15.0);
        assert_eq!(cut.len() as u64, MAX_SEGMENTS);
        assert_eq!(cut.iter().map(|(_, n)| n).sum::<u64>(), long.frames);
        assert!(cut.windows(2).all(|p| p[0].0 + p[0].1 == p[1].0));
        assert_eq!(w.source_seconds(125), 8.0);
        assert_eq!(
            route(12.0, &ProcessSettings::default(), false),
            Route::SinglePass
        );
        assert_eq!(
            route(301.0, &ProcessSettings::default(), false),
            Route::Segments
        );
        assert_eq!(
            route(301.0, &ProcessSettings::default(), true),
            Route::Worker
        );
        assert_eq!(thumbnail_size(&facts, 1280), (640, 360));
    }
}

//! The JSON edit (a "timeline document" as callers post it to `POST /v1/compositions` or pass
//! to `vidpipe compose`): output settings, tracks of clips, a soundtrack and captions. It is
//! validated from the raw JSON, so every error names its JSON path (`tracks[1].clips[3].length`),
//! and normalised into an [`Edit`]: defaults filled, times resolved to frames, layers in
//! drawing order. A document the one-pass composer cannot render (more simultaneous layers than
//! [`MAX_LAYERS`]) is refused here with the reason.
//!
//! The first track is drawn on top, as in most editors' track lists; within a track, clips may
//! not overlap. Audio clips (`audio` assets) and video clips' own sound (at the clip's `volume`)
//! are the foreground: a soundtrack with `ducking` is lowered under them.

use crate::asset::AssetId;
use crate::captions::CaptionOptions;
use crate::error::{FieldError, ValidationErrors, echo, echo_number, echo_unquoted};
use crate::job::JobId;
use crate::media::Motion;
use crate::request::{AspectRatio, TransitionKind, string_enum};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;

/// Visual layers on screen at one instant. Each is decoded, fitted and overlaid in the one
/// ffmpeg pass; past this many a 1080p render's filter threads and memory outgrow a Lambda (and
/// the result is rarely legible anyway).
pub const MAX_LAYERS: usize = 6;
pub const MAX_TRACKS: usize = 10;
pub const MAX_CLIPS_PER_TRACK: usize = 100;
/// The longest edit, as the longest generation.
pub const MAX_DURATION_SECONDS: f64 = 300.0;
pub const MAX_TITLE_CHARS: usize = 500;
pub const MAX_CAPTION_CUES: usize = 200;
/// Scale is relative to the frame; a clip may be blown up to twice the frame, no more.
pub const MAX_SCALE: f64 = 2.0;
pub const MAX_TRANSITION_SECONDS: f64 = 2.0;
/// An audio or video clip's `volume` is a plain gain: up to twice its own level (+6 dB).
pub const MAX_CLIP_VOLUME: f64 = 2.0;
pub const DEFAULT_TRANSITION_SECONDS: f64 = 0.5;

string_enum!(
    /// The short side of the output frame.
    EditResolution { P360 => "360p", P480 => "480p", P720 => "720p", P1080 => "1080p" }
);

impl EditResolution {
    pub fn short_side(self) -> u32 {
        match self {
            EditResolution::P360 => 360,
            EditResolution::P480 => 480,
            EditResolution::P720 => 720,
            EditResolution::P1080 => 1080,
        }
    }
}

string_enum!(
    /// How a picture fills its box: `cover` scales to fill and crops the overflow; `contain`
    /// fits inside and fills the bands with a blurred copy of itself; `crop` keeps the source's
    /// pixels at 1:1 and crops the centre to the box.
    Fit { Cover => "cover", Contain => "contain", Crop => "crop" }
);

string_enum!(
    /// Where a clip's box sits in the frame.
    Placement {
        Center => "center",
        Top => "top",
        Bottom => "bottom",
        Left => "left",
        Right => "right",
        TopLeft => "top-left",
        TopRight => "top-right",
        BottomLeft => "bottom-left",
        BottomRight => "bottom-right",
    }
);

string_enum!(
    /// A Ken Burns move over the clip.
    Effect { ZoomIn => "zoom-in", ZoomOut => "zoom-out", PanLeft => "pan-left", PanRight => "pan-right" }
);

impl Effect {
    pub fn motion(self) -> Motion {
        match self {
            Effect::ZoomIn => Motion::ZoomIn,
            Effect::ZoomOut => Motion::ZoomOut,
            Effect::PanLeft => Motion::PanLeft,
            Effect::PanRight => Motion::PanRight,
        }
    }
}

impl Placement {
    /// Top-left corner of a `w`x`h` box in a `fw`x`fh` frame.
    pub fn origin(self, (fw, fh): (u32, u32), (w, h): (u32, u32)) -> (i64, i64) {
        let (fw, fh, w, h) = (fw as i64, fh as i64, w as i64, h as i64);
        let (l, c, r) = (0, (fw - w) / 2, fw - w);
        let (t, m, b) = (0, (fh - h) / 2, fh - h);
        match self {
            Placement::Center => (c, m),
            Placement::Top => (c, t),
            Placement::Bottom => (c, b),
            Placement::Left => (l, m),
            Placement::Right => (r, m),
            Placement::TopLeft => (l, t),
            Placement::TopRight => (r, t),
            Placement::BottomLeft => (l, b),
            Placement::BottomRight => (r, b),
        }
    }
}

/// Where a picture comes from: an uploaded asset, or a scene of an earlier generation (its clip
/// for a video, its thumbnail for an image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaRef {
    Asset(AssetId),
    Generation { job_id: JobId, scene: u32 },
}

/// What a visual layer shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Visual {
    /// A moving picture; its own sound (if it has any) plays in its window at `volume`.
    Video {
        source: MediaRef,
        #[serde(default = "unit_volume")]
        volume: f64,
    },
    Image {
        source: MediaRef,
    },
    /// Text drawn by the caption engine.
    Title {
        text: String,
        style: CaptionOptions,
    },
    /// A clip the provider chain makes from a prompt (through the clip cache).
    Generate {
        prompt: String,
        seed: u64,
    },
}

/// The volume of a clip that names none (and of edits normalised before video clips had sound).
fn unit_volume() -> f64 {
    1.0
}

/// A transition at one end of a layer, in frames.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LayerTransition {
    pub kind: TransitionKind,
    pub frames: u32,
}

/// One visual clip, normalised: every default filled and every time in frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// Its JSON path in the document, for errors found later (a missing asset).
    pub path: String,
    pub track: usize,
    pub visual: Visual,
    pub start_frame: u32,
    pub frames: u32,
    pub fit: Fit,
    pub position: Placement,
    pub scale: f64,
    pub opacity: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition_in: Option<LayerTransition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition_out: Option<LayerTransition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<Effect>,
}

impl Layer {
    pub fn end_frame(&self) -> u32 {
        self.start_frame + self.frames
    }
}

/// A voice (or any sound) clip; the soundtrack ducks under these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioClip {
    pub path: String,
    pub asset_id: AssetId,
    pub start_frame: u32,
    pub frames: u32,
    pub volume: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Soundtrack {
    pub asset_id: AssetId,
    pub volume: f64,
    pub fade_in_seconds: f64,
    pub fade_out_seconds: f64,
    /// Lowered under the audio clips and the video clips' own sound while they sound.
    pub ducking: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionLine {
    pub text: String,
    pub start_frame: u32,
    pub frames: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    pub aspect: AspectRatio,
    pub resolution: EditResolution,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// `#rrggbb`.
    pub background: String,
}

/// A validated, normalised edit: what the renderer draws and a dry run returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edit {
    pub output: Output,
    /// In drawing order: the bottom layer first.
    pub layers: Vec<Layer>,
    pub audio: Vec<AudioClip>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soundtrack: Option<Soundtrack>,
    pub caption_style: CaptionOptions,
    pub captions: Vec<CaptionLine>,
    pub total_frames: u32,
    pub duration_seconds: f64,
}

impl Edit {
    pub fn seconds(&self, frames: u32) -> f64 {
        frames as f64 / self.output.fps as f64
    }

    /// The most layers on screen at once, and the first frame where that happens.
    pub fn peak_layers(&self) -> (usize, u32) {
        peak(&self.layers)
    }
}

fn peak(layers: &[Layer]) -> (usize, u32) {
    let mut events: Vec<(u32, i32)> = layers
        .iter()
        .flat_map(|l| [(l.start_frame, 1), (l.end_frame(), -1)])
        .collect();
    // Ends before starts at the same frame: back-to-back clips do not overlap.
    events.sort();
    let (mut now, mut best, mut at) = (0i32, 0usize, 0u32);
    for (frame, delta) in events {
        now += delta;
        if now as usize > best {
            best = now as usize;
            at = frame;
        }
    }
    (best, at)
}

/// A render of an edit on one machine: the edit, the local file behind each layer (`None` for a
/// title), each audio clip and the soundtrack, and where the outputs go.
#[derive(Debug, Clone, PartialEq)]
pub struct EditJob {
    pub edit: Edit,
    pub layer_files: Vec<Option<std::path::PathBuf>>,
    pub audio_files: Vec<std::path::PathBuf>,
    pub soundtrack_file: Option<std::path::PathBuf>,
    pub final_path: std::path::PathBuf,
    pub thumbnail_path: std::path::PathBuf,
    /// Scratch for the stills and title images the renderer writes.
    pub work_dir: std::path::PathBuf,
}

/// Validates a timeline document and normalises it. Every violation is reported, each with its
/// JSON path.
pub fn validate(doc: &Value) -> Result<Edit, ValidationErrors> {
    let mut c = Walk::default();
    let edit = c.document(doc);
    match edit {
        Some(e) if c.errors.is_empty() => Ok(e),
        _ => Err(ValidationErrors { errors: c.errors }),
    }
}

#[derive(Default)]
struct Walk {
    errors: Vec<FieldError>,
}

const TYPES: &str = "video, image, title, audio, generate";

impl Walk {
    fn fail(&mut self, path: &str, rule: impl Into<String>) {
        self.errors.push(FieldError::new(path, rule));
    }

    /// The object at `path`, with its unknown keys reported.
    fn object<'v>(
        &mut self,
        path: &str,
        v: &'v Value,
        known: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Some(map) = v.as_object() else {
            self.fail(path, format!("must be an object (got {})", kind(v)));
            return None;
        };
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                self.fail(
                    &join(path, &echo_unquoted(key)),
                    format!("is not a known field (known: {})", known.join(", ")),
                );
            }
        }
        Some(map)
    }

    fn number(&mut self, path: &str, v: Option<&Value>, min: f64, max: f64) -> Option<f64> {
        let v = v?;
        match v.as_f64() {
            Some(n) if n.is_finite() && (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.fail(
                    path,
                    format!("must be between {min} and {max} (got {})", echo_number(n)),
                );
                None
            }
            None => {
                self.fail(path, format!("must be a number (got {})", kind(v)));
                None
            }
        }
    }

    fn string<'v>(&mut self, path: &str, v: Option<&'v Value>) -> Option<&'v str> {
        let v = v?;
        match v.as_str() {
            Some(s) => Some(s),
            None => {
                self.fail(path, format!("must be a string (got {})", kind(v)));
                None
            }
        }
    }

    fn parsed<T: FromStr<Err = String>>(&mut self, path: &str, v: Option<&Value>) -> Option<T> {
        let s = self.string(path, v)?;
        s.parse().map_err(|e| self.fail(path, e)).ok()
    }

    fn required<T>(&mut self, path: &str, v: Option<T>, present: bool) -> Option<T> {
        if !present {
            self.fail(path, "is required");
        }
        v
    }

    fn document(&mut self, doc: &Value) -> Option<Edit> {
        let map = self.object(
            "",
            doc,
            &["output", "tracks", "soundtrack", "captions", "duration"],
        )?;
        let output = match map.get("output") {
            Some(v) => self.output(v),
            None => self.output(&Value::Object(Map::new())),
        };
        let fps = output.as_ref().map_or(30, |o| o.fps);
        let frames = |s: f64| (s * fps as f64).round() as u32;

        let mut layers: Vec<Layer> = Vec::new();
        let mut audio = Vec::new();
        match map.get("tracks") {
            None => self.fail("tracks", "is required"),
            Some(Value::Array(tracks)) if tracks.is_empty() => {
                self.fail("tracks", "must have at least one track")
            }
            Some(Value::Array(tracks)) if tracks.len() > MAX_TRACKS => self.fail(
                "tracks",
                format!(
                    "must have at most {MAX_TRACKS} tracks (got {})",
                    tracks.len()
                ),
            ),
            Some(Value::Array(tracks)) => {
                for (t, track) in tracks.iter().enumerate() {
                    self.track(t, track, fps, &mut layers, &mut audio);
                }
            }
            Some(v) => self.fail("tracks", format!("must be an array (got {})", kind(v))),
        }
        let soundtrack = map.get("soundtrack").and_then(|v| self.soundtrack(v));
        let (caption_style, captions) = match map.get("captions") {
            Some(v) => self.captions(v, fps),
            None => (CaptionOptions::default(), Vec::new()),
        };
        let content_end = layers
            .iter()
            .map(Layer::end_frame)
            .chain(audio.iter().map(|a: &AudioClip| a.start_frame + a.frames))
            .max()
            .unwrap_or(0);
        let total_frames = match map.get("duration") {
            Some(v) => self
                .number("duration", Some(v), 0.1, MAX_DURATION_SECONDS)
                .map_or(content_end, frames),
            None => content_end,
        };
        if layers.is_empty() && self.errors.is_empty() {
            self.fail(
                "tracks",
                "must hold at least one visual clip (video, image, title or generate)",
            );
        }
        if total_frames as f64 / fps as f64 > MAX_DURATION_SECONDS + 1e-9 {
            self.fail(
                "tracks",
                format!(
                    "end at {} s, past the longest edit of {MAX_DURATION_SECONDS} s",
                    echo_number(total_frames as f64 / fps as f64)
                ),
            );
        }
        for (i, cue) in captions.iter().enumerate() {
            if cue.start_frame >= total_frames && total_frames > 0 {
                self.fail(
                    &format!("captions.cues[{i}].start"),
                    "starts after the edit ends",
                );
            }
        }
        // The first track is on top: drawn last.
        layers.sort_by(|a, b| {
            b.track
                .cmp(&a.track)
                .then(a.start_frame.cmp(&b.start_frame))
        });
        let (most, at) = peak(&layers);
        if most > MAX_LAYERS {
            self.fail(
                "tracks",
                format!(
                    "{most} visual clips overlap at {} s; one render pass composites at most \
                     {MAX_LAYERS} at once (split the edit or flatten tracks)",
                    echo_number(at as f64 / fps as f64)
                ),
            );
        }
        let output = output?;
        Some(Edit {
            duration_seconds: total_frames as f64 / fps as f64,
            output,
            layers,
            audio,
            soundtrack,
            caption_style,
            captions,
            total_frames,
        })
    }

    fn output(&mut self, v: &Value) -> Option<Output> {
        let map = self.object("output", v, &["aspect", "resolution", "fps", "background"])?;
        let aspect = match map.get("aspect") {
            Some(v) => self.parsed::<AspectRatio>("output.aspect", Some(v)),
            None => Some(AspectRatio::Landscape),
        };
        let resolution = match map.get("resolution") {
            Some(v) => self.parsed::<EditResolution>("output.resolution", Some(v)),
            None => Some(EditResolution::P1080),
        };
        let fps = match map.get("fps") {
            Some(v) => match v.as_u64() {
                Some(n @ (24 | 25 | 30)) => Some(n as u32),
                _ => {
                    self.fail("output.fps", format!("must be one of 24, 25, 30 (got {v})"));
                    None
                }
            },
            None => Some(30),
        };
        let background = match map.get("background") {
            Some(v) => {
                self.string("output.background", Some(v))
                    .and_then(|s| match parse_colour(s) {
                        Some(c) => Some(c),
                        None => {
                            self.fail(
                                "output.background",
                                format!("must be a colour like #1a2b3c (got {})", echo(s)),
                            );
                            None
                        }
                    })
            }
            None => Some("#000000".to_owned()),
        };
        let (aspect, resolution, fps, background) = (aspect?, resolution?, fps?, background?);
        let (width, height) = frame_size(aspect, resolution.short_side());
        Some(Output {
            aspect,
            resolution,
            width,
            height,
            fps,
            background,
        })
    }

    fn track(
        &mut self,
        t: usize,
        v: &Value,
        fps: u32,
        layers: &mut Vec<Layer>,
        audio: &mut Vec<AudioClip>,
    ) {
        let path = format!("tracks[{t}]");
        let Some(map) = self.object(&path, v, &["clips"]) else {
            return;
        };
        let clips = match map.get("clips") {
            Some(Value::Array(c)) if c.is_empty() => {
                self.fail(&format!("{path}.clips"), "must have at least one clip");
                return;
            }
            Some(Value::Array(c)) if c.len() > MAX_CLIPS_PER_TRACK => {
                self.fail(
                    &format!("{path}.clips"),
                    format!(
                        "must have at most {MAX_CLIPS_PER_TRACK} clips (got {})",
                        c.len()
                    ),
                );
                return;
            }
            Some(Value::Array(c)) => c,
            Some(v) => {
                self.fail(
                    &format!("{path}.clips"),
                    format!("must be an array (got {})", kind(v)),
                );
                return;
            }
            None => {
                self.fail(&format!("{path}.clips"), "is required");
                return;
            }
        };
        // (start, end, index) of this track's clips, for the overlap check.
        let mut spans: Vec<(u32, u32, usize)> = Vec::new();
        for (i, clip) in clips.iter().enumerate() {
            let cpath = format!("{path}.clips[{i}]");
            match self.clip(&cpath, t, clip, fps) {
                Some(Parsed::Visual(l)) => {
                    spans.push((l.start_frame, l.end_frame(), i));
                    layers.push(l);
                }
                Some(Parsed::Audio(a)) => {
                    spans.push((a.start_frame, a.start_frame + a.frames, i));
                    audio.push(a);
                }
                None => {}
            }
        }
        spans.sort();
        for pair in spans.windows(2) {
            let ((_, end, a), (start, _, b)) = (pair[0], pair[1]);
            if start < end {
                self.fail(
                    &format!("{path}.clips[{b}].start"),
                    format!(
                        "overlaps clips[{a}] on the same track (it ends at {} s); put overlapping \
                         clips on different tracks",
                        echo_number(end as f64 / fps as f64)
                    ),
                );
            }
        }
    }

    fn clip(&mut self, path: &str, track: usize, v: &Value, fps: u32) -> Option<Parsed> {
        let map = self.object(
            path,
            v,
            &[
                "asset",
                "start",
                "length",
                "fit",
                "position",
                "scale",
                "opacity",
                "transition",
                "effect",
            ],
        )?;
        let p = |f: &str| format!("{path}.{f}");
        let start = self.number(&p("start"), map.get("start"), 0.0, MAX_DURATION_SECONDS);
        let start = self.required(&p("start"), start, map.contains_key("start"));
        let length = self.number(&p("length"), map.get("length"), 0.0, MAX_DURATION_SECONDS);
        let length = self.required(&p("length"), length, map.contains_key("length"));
        let frames = length.map(|l| (l * fps as f64).round() as u32);
        if let Some(0) = frames {
            self.fail(
                &p("length"),
                format!("must be at least one frame (1/{fps} s)"),
            );
        }
        let start_frame = start.map(|s| (s * fps as f64).round() as u32);
        let asset = match map.get("asset") {
            Some(v) => self.asset(&p("asset"), v),
            None => {
                self.fail(&p("asset"), "is required");
                None
            }
        };
        let fit = match map.get("fit") {
            Some(v) => self.parsed::<Fit>(&p("fit"), Some(v)),
            None => Some(Fit::Cover),
        };
        let position = match map.get("position") {
            Some(v) => self.parsed::<Placement>(&p("position"), Some(v)),
            None => Some(Placement::Center),
        };
        let scale = match map.get("scale") {
            Some(v) => self.number(&p("scale"), Some(v), 0.05, MAX_SCALE),
            None => Some(1.0),
        };
        let opacity = match map.get("opacity") {
            Some(v) => self.number(&p("opacity"), Some(v), 0.0, 1.0),
            None => Some(1.0),
        };
        let effect = match map.get("effect") {
            Some(v) => self.parsed::<Effect>(&p("effect"), Some(v)).map(Some),
            None => Some(None),
        };
        let transition = match map.get("transition") {
            Some(v) => self.transition(&p("transition"), v, fps),
            None => Some((None, None)),
        };
        let (asset, start_frame, frames) = (asset?, start_frame?, frames.filter(|&f| f > 0)?);
        if let Some((a, b)) = transition {
            let used: u32 = [a, b].iter().flatten().map(|t| t.frames).sum();
            if used > frames {
                self.fail(
                    &p("transition.duration"),
                    format!(
                        "the transitions ({} s) are longer than the clip",
                        echo_number(used as f64 / fps as f64)
                    ),
                );
            }
        }
        match asset {
            Asset::Audio { asset_id, volume } => {
                for field in [
                    "fit",
                    "position",
                    "scale",
                    "opacity",
                    "transition",
                    "effect",
                ] {
                    if map.contains_key(field) {
                        self.fail(&p(field), "does not apply to an audio clip");
                    }
                }
                Some(Parsed::Audio(AudioClip {
                    path: path.to_owned(),
                    asset_id,
                    start_frame,
                    frames,
                    volume,
                }))
            }
            Asset::Visual(visual) => {
                let (transition_in, transition_out) = transition?;
                Some(Parsed::Visual(Layer {
                    path: path.to_owned(),
                    track,
                    visual,
                    start_frame,
                    frames,
                    fit: fit?,
                    position: position?,
                    scale: scale?,
                    opacity: opacity?,
                    transition_in,
                    transition_out,
                    effect: effect?,
                }))
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn transition(
        &mut self,
        path: &str,
        v: &Value,
        fps: u32,
    ) -> Option<(Option<LayerTransition>, Option<LayerTransition>)> {
        let map = self.object(path, v, &["in", "out", "duration"])?;
        let duration = match map.get("duration") {
            Some(v) => self.number(
                &format!("{path}.duration"),
                Some(v),
                1.0 / fps as f64,
                MAX_TRANSITION_SECONDS,
            ),
            None => Some(DEFAULT_TRANSITION_SECONDS),
        };
        let mut end = |name: &str| -> Option<Option<TransitionKind>> {
            match map.get(name) {
                Some(v) => self
                    .parsed::<TransitionKind>(&format!("{path}.{name}"), Some(v))
                    .map(Some),
                None => Some(None),
            }
        };
        let (i, o) = (end("in")?, end("out")?);
        let frames = (duration? * fps as f64).round().max(1.0) as u32;
        // `cut` is no transition at all.
        let at = |k: Option<TransitionKind>| {
            k.filter(|k| *k != TransitionKind::Cut)
                .map(|kind| LayerTransition { kind, frames })
        };
        Some((at(i), at(o)))
    }

    fn asset(&mut self, path: &str, v: &Value) -> Option<Asset> {
        let Some(map) = v.as_object() else {
            self.fail(path, format!("must be an object (got {})", kind(v)));
            return None;
        };
        let p = |f: &str| format!("{path}.{f}");
        let ty = match map.get("type") {
            Some(t) => self.string(&p("type"), Some(t))?,
            None => {
                self.fail(&p("type"), format!("is required (one of {TYPES})"));
                return None;
            }
        };
        match ty {
            "video" => {
                let map = self.object(path, v, &["type", "asset_id", "generation", "volume"])?;
                let source = self.media_ref(path, map);
                let volume = self.volume(&p("volume"), map.get("volume"));
                Some(Asset::Visual(Visual::Video {
                    source: source?,
                    volume: volume?,
                }))
            }
            "image" => {
                let map = self.object(path, v, &["type", "asset_id", "generation"])?;
                let source = self.media_ref(path, map)?;
                Some(Asset::Visual(Visual::Image { source }))
            }
            "title" => {
                let map = self.object(path, v, &["type", "text", "style"])?;
                let text = self.string(&p("text"), map.get("text"));
                let text = self.required(&p("text"), text, map.contains_key("text"));
                let text = text.and_then(|t| {
                    let n = t.trim().chars().count();
                    if n == 0 {
                        self.fail(&p("text"), "must not be empty");
                        None
                    } else if n > MAX_TITLE_CHARS {
                        self.fail(
                            &p("text"),
                            format!("must be at most {MAX_TITLE_CHARS} characters (got {n})"),
                        );
                        None
                    } else {
                        Some(t.trim().to_owned())
                    }
                });
                let style = self.caption_options(&p("style"), map.get("style"))?;
                Some(Asset::Visual(Visual::Title { text: text?, style }))
            }
            "generate" => {
                let map = self.object(path, v, &["type", "prompt", "seed"])?;
                let prompt = self.string(&p("prompt"), map.get("prompt"));
                let prompt = self.required(&p("prompt"), prompt, map.contains_key("prompt"));
                let prompt = prompt.and_then(|t| {
                    crate::request::Prompt::parse(t)
                        .map_err(|e| self.fail(&p("prompt"), e))
                        .ok()
                });
                let seed = match map.get("seed") {
                    Some(v) => match v.as_u64() {
                        Some(s) => Some(s),
                        None => {
                            self.fail(&p("seed"), "must be a whole number ≥ 0");
                            None
                        }
                    },
                    None => Some(0),
                };
                Some(Asset::Visual(Visual::Generate {
                    prompt: prompt?.as_str().to_owned(),
                    seed: seed?,
                }))
            }
            "audio" => {
                let map = self.object(path, v, &["type", "asset_id", "volume"])?;
                let id = self.asset_id(&p("asset_id"), map.get("asset_id"));
                let volume = self.volume(&p("volume"), map.get("volume"));
                Some(Asset::Audio {
                    asset_id: id?,
                    volume: volume?,
                })
            }
            other => {
                self.fail(
                    &p("type"),
                    format!("must be one of {TYPES} (got {})", echo(other)),
                );
                None
            }
        }
    }

    /// A clip's gain, 0 (muted) to [`MAX_CLIP_VOLUME`]; 1 when not given.
    fn volume(&mut self, path: &str, v: Option<&Value>) -> Option<f64> {
        match v {
            Some(v) => self.number(path, Some(v), 0.0, MAX_CLIP_VOLUME),
            None => Some(unit_volume()),
        }
    }

    fn asset_id(&mut self, path: &str, v: Option<&Value>) -> Option<AssetId> {
        let Some(v) = v else {
            self.fail(path, "is required");
            return None;
        };
        let s = self.string(path, Some(v))?;
        AssetId::parse(s).map_err(|e| self.fail(path, e)).ok()
    }

    fn media_ref(&mut self, path: &str, map: &Map<String, Value>) -> Option<MediaRef> {
        match (map.get("asset_id"), map.get("generation")) {
            (Some(_), Some(_)) => {
                self.fail(path, "names both asset_id and generation; give one");
                None
            }
            (Some(v), None) => self
                .asset_id(&format!("{path}.asset_id"), Some(v))
                .map(MediaRef::Asset),
            (None, Some(v)) => {
                let gp = format!("{path}.generation");
                let g = self.object(&gp, v, &["job_id", "scene"])?;
                let job = self.string(&format!("{gp}.job_id"), g.get("job_id"));
                let job = self.required(&format!("{gp}.job_id"), job, g.contains_key("job_id"));
                let job = job.and_then(|j| {
                    JobId::parse(j)
                        .map_err(|e| self.fail(&format!("{gp}.job_id"), e))
                        .ok()
                });
                let scene = match g.get("scene") {
                    Some(v) => match v.as_u64() {
                        Some(s) if s < 64 => Some(s as u32),
                        _ => {
                            self.fail(&format!("{gp}.scene"), "must be a scene index 0..63");
                            None
                        }
                    },
                    None => {
                        self.fail(&format!("{gp}.scene"), "is required");
                        None
                    }
                };
                Some(MediaRef::Generation {
                    job_id: job?,
                    scene: scene?,
                })
            }
            (None, None) => {
                self.fail(
                    &format!("{path}.asset_id"),
                    "is required (or generation: {job_id, scene})",
                );
                None
            }
        }
    }

    fn caption_options(&mut self, path: &str, v: Option<&Value>) -> Option<CaptionOptions> {
        let Some(v) = v else {
            return Some(CaptionOptions::default());
        };
        let map = self.object(path, v, &["style", "position", "size"])?;
        let mut opts = CaptionOptions::default();
        let mut ok = true;
        if let Some(v) = map.get("style") {
            match self.parsed(&format!("{path}.style"), Some(v)) {
                Some(s) => opts.style = s,
                None => ok = false,
            }
        }
        if let Some(v) = map.get("position") {
            match self.parsed(&format!("{path}.position"), Some(v)) {
                Some(s) => opts.position = s,
                None => ok = false,
            }
        }
        if let Some(v) = map.get("size") {
            match self.parsed(&format!("{path}.size"), Some(v)) {
                Some(s) => opts.size = s,
                None => ok = false,
            }
        }
        ok.then_some(opts)
    }

    fn soundtrack(&mut self, v: &Value) -> Option<Soundtrack> {
        let path = "soundtrack";
        let map = self.object(
            path,
            v,
            &["asset_id", "volume", "fade_in", "fade_out", "ducking"],
        )?;
        let asset_id = self.asset_id("soundtrack.asset_id", map.get("asset_id"));
        let num = |w: &mut Walk, f: &str, default: f64, max: f64| match map.get(f) {
            Some(v) => w.number(&format!("{path}.{f}"), Some(v), 0.0, max),
            None => Some(default),
        };
        let volume = num(self, "volume", 0.8, 1.0);
        let fade_in = num(self, "fade_in", 0.0, 10.0);
        let fade_out = num(self, "fade_out", 0.0, 10.0);
        let ducking = match map.get("ducking") {
            Some(Value::Bool(b)) => Some(*b),
            Some(v) => {
                self.fail(
                    "soundtrack.ducking",
                    format!("must be true or false (got {})", kind(v)),
                );
                None
            }
            None => Some(true),
        };
        Some(Soundtrack {
            asset_id: asset_id?,
            volume: volume?,
            fade_in_seconds: fade_in?,
            fade_out_seconds: fade_out?,
            ducking: ducking?,
        })
    }

    fn captions(&mut self, v: &Value, fps: u32) -> (CaptionOptions, Vec<CaptionLine>) {
        let Some(map) = self.object("captions", v, &["style", "position", "size", "cues"]) else {
            return (CaptionOptions::default(), Vec::new());
        };
        let mut style_map = map.clone();
        style_map.remove("cues");
        let opts = self
            .caption_options("captions", Some(&Value::Object(style_map)))
            .unwrap_or_default();
        let cues = match map.get("cues") {
            Some(Value::Array(c)) if c.len() > MAX_CAPTION_CUES => {
                self.fail(
                    "captions.cues",
                    format!(
                        "must have at most {MAX_CAPTION_CUES} cues (got {})",
                        c.len()
                    ),
                );
                return (opts, Vec::new());
            }
            Some(Value::Array(c)) => c,
            Some(v) => {
                self.fail(
                    "captions.cues",
                    format!("must be an array (got {})", kind(v)),
                );
                return (opts, Vec::new());
            }
            None => {
                self.fail("captions.cues", "is required");
                return (opts, Vec::new());
            }
        };
        let mut lines = Vec::new();
        let mut last_end = 0u32;
        for (i, cue) in cues.iter().enumerate() {
            let path = format!("captions.cues[{i}]");
            let Some(m) = self.object(&path, cue, &["text", "start", "length"]) else {
                continue;
            };
            let text = self.string(&format!("{path}.text"), m.get("text"));
            let text = self.required(&format!("{path}.text"), text, m.contains_key("text"));
            let start = self.number(
                &format!("{path}.start"),
                m.get("start"),
                0.0,
                MAX_DURATION_SECONDS,
            );
            let start = self.required(&format!("{path}.start"), start, m.contains_key("start"));
            let length = self.number(
                &format!("{path}.length"),
                m.get("length"),
                0.0,
                MAX_DURATION_SECONDS,
            );
            let length = self.required(&format!("{path}.length"), length, m.contains_key("length"));
            if let Some(t) = text
                && t.trim().is_empty()
            {
                self.fail(&format!("{path}.text"), "must not be empty");
                continue;
            }
            let (Some(text), Some(start), Some(length)) = (text, start, length) else {
                continue;
            };
            let (s, f) = (
                (start * fps as f64).round() as u32,
                (length * fps as f64).round() as u32,
            );
            if f == 0 {
                self.fail(
                    &format!("{path}.length"),
                    format!("must be at least one frame (1/{fps} s)"),
                );
                continue;
            }
            // One caption at a time: they share the caption area.
            if s < last_end {
                self.fail(&format!("{path}.start"), "overlaps the cue before it");
            }
            last_end = s + f;
            lines.push(CaptionLine {
                text: text.trim().to_owned(),
                start_frame: s,
                frames: f,
            });
        }
        (opts, lines)
    }
}

enum Asset {
    Visual(Visual),
    Audio { asset_id: AssetId, volume: f64 },
}

enum Parsed {
    Visual(Layer),
    Audio(AudioClip),
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `#rgb` or `#rrggbb` (or a few names), as `#rrggbb`.
fn parse_colour(s: &str) -> Option<String> {
    let named = match s.trim().to_ascii_lowercase().as_str() {
        "black" => Some("#000000"),
        "white" => Some("#ffffff"),
        _ => None,
    };
    if let Some(n) = named {
        return Some(n.to_owned());
    }
    let hex = s.trim().strip_prefix('#')?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match hex.len() {
        6 => Some(format!("#{}", hex.to_ascii_lowercase())),
        3 => Some(format!(
            "#{}",
            hex.chars()
                .flat_map(|c| [c, c])
                .collect::<String>()
                .to_ascii_lowercase()
        )),
        _ => None,
    }
}

/// The frame for an aspect at a short side, long side rounded to even (yuv420p).
pub fn frame_size(aspect: AspectRatio, short: u32) -> (u32, u32) {
    let (wr, hr) = aspect.ratio();
    let even = |v: f64| ((v / 2.0).round() as u32) * 2;
    if wr >= hr {
        (even(short as f64 * wr as f64 / hr as f64), short)
    } else {
        (short, even(short as f64 * hr as f64 / wr as f64))
    }
}

impl fmt::Display for MediaRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MediaRef::Asset(a) => write!(f, "{a}"),
            MediaRef::Generation { job_id, scene } => write!(f, "{job_id} scene {scene}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const A: &str = "ast_0123456789abcdef0123456789abcdef";

    fn base() -> Value {
        json!({
            "output": {"aspect": "16:9", "resolution": "360p", "fps": 25, "background": "#102030"},
            "tracks": [
                {"clips": [{"asset": {"type": "title", "text": "Hello"}, "start": 1, "length": 2}]},
                {"clips": [
                    {"asset": {"type": "image", "asset_id": A}, "start": 0, "length": 2,
                     "fit": "contain", "effect": "zoom-in",
                     "transition": {"in": "fade", "out": "wipeleft", "duration": 0.4}},
                    {"asset": {"type": "generate", "prompt": "waves"}, "start": 2, "length": 2}
                ]},
                {"clips": [{"asset": {"type": "audio", "asset_id": A}, "start": 0.5, "length": 1}]}
            ],
            "soundtrack": {"asset_id": A, "volume": 0.5},
            "captions": {"style": "bold-outline", "cues": [{"text": "hi", "start": 0, "length": 1}]}
        })
    }

    #[test]
    fn a_valid_document_is_normalised_to_frames_and_drawing_order() {
        let e = validate(&base()).unwrap();
        assert_eq!(
            (e.output.width, e.output.height, e.output.fps),
            (640, 360, 25)
        );
        assert_eq!(e.output.background, "#102030");
        assert_eq!(e.total_frames, 100);
        assert_eq!(e.duration_seconds, 4.0);
        // Bottom track first; the title (track 0) is drawn last.
        let tracks: Vec<usize> = e.layers.iter().map(|l| l.track).collect();
        assert_eq!(tracks, vec![1, 1, 0]);
        let img = &e.layers[0];
        assert_eq!((img.start_frame, img.frames), (0, 50));
        assert_eq!(img.fit, Fit::Contain);
        assert_eq!(img.effect, Some(Effect::ZoomIn));
        assert_eq!(
            img.transition_in,
            Some(LayerTransition {
                kind: TransitionKind::Fade,
                frames: 10
            })
        );
        assert_eq!(e.layers[2].fit, Fit::Cover);
        assert_eq!(e.layers[2].scale, 1.0);
        assert_eq!(e.audio[0].start_frame, 13);
        assert!(e.soundtrack.as_ref().unwrap().ducking);
        assert_eq!(e.captions[0].frames, 25);
        assert_eq!(e.peak_layers().0, 2);
    }

    #[test]
    fn a_video_clip_keeps_its_volume_and_defaults_to_its_own_level() {
        let mut doc = base();
        doc["tracks"][1]["clips"][0]["asset"] = json!({"type": "video", "asset_id": A});
        doc["tracks"][1]["clips"][1]["asset"] =
            json!({"type": "video", "asset_id": A, "volume": 0.25});
        let e = validate(&doc).unwrap();
        let volumes: Vec<f64> = e
            .layers
            .iter()
            .filter_map(|l| match l.visual {
                Visual::Video { volume, .. } => Some(volume),
                _ => None,
            })
            .collect();
        assert_eq!(volumes, vec![1.0, 0.25]);
        // The normalised form names it, and one stored before it existed reads as unit gain.
        let v = serde_json::to_value(&e.layers[0].visual).unwrap();
        assert_eq!(v["volume"], json!(1.0));
        let old: Visual =
            serde_json::from_value(json!({"type": "video", "source": {"asset": A}})).unwrap();
        assert!(matches!(old, Visual::Video { volume: 1.0, .. }));
    }

    #[test]
    fn defaults_fill_the_output() {
        let e = validate(&json!({"tracks": [{"clips": [
            {"asset": {"type": "title", "text": "x"}, "start": 0, "length": 1}
        ]}]}))
        .unwrap();
        assert_eq!(
            (e.output.width, e.output.height, e.output.fps),
            (1920, 1080, 30)
        );
        assert_eq!(e.output.background, "#000000");
    }

    /// Each case: a change to the valid document, and the path its error must name.
    #[test]
    fn invalid_documents_name_their_json_paths() {
        type Edit = fn(&mut Value);
        let cases: Vec<(&str, Edit)> = vec![
            ("output.aspect", |d| d["output"]["aspect"] = json!("3:2")),
            ("output.resolution", |d| {
                d["output"]["resolution"] = json!("4k")
            }),
            ("output.fps", |d| d["output"]["fps"] = json!(60)),
            ("output.background", |d| {
                d["output"]["background"] = json!("#12345")
            }),
            ("output.colour", |d| d["output"]["colour"] = json!("red")),
            ("tracks", |d| d["tracks"] = json!([])),
            ("tracks", |d| d["tracks"] = json!("x")),
            ("tracks[1].clips", |d| d["tracks"][1]["clips"] = json!([])),
            ("tracks[1].clips[1].length", |d| {
                d["tracks"][1]["clips"][1]["length"] = json!(-1)
            }),
            ("tracks[1].clips[1].length", |d| {
                d["tracks"][1]["clips"][1]["length"] = json!(0.001)
            }),
            ("tracks[1].clips[1].length", |d| {
                d["tracks"][1]["clips"][1]
                    .as_object_mut()
                    .unwrap()
                    .remove("length");
            }),
            ("tracks[1].clips[1].start", |d| {
                d["tracks"][1]["clips"][1]["start"] = json!("2")
            }),
            ("tracks[1].clips[1].start", |d| {
                d["tracks"][1]["clips"][1]["start"] = json!(1)
            }),
            ("tracks[1].clips[0].fit", |d| {
                d["tracks"][1]["clips"][0]["fit"] = json!("stretch")
            }),
            ("tracks[1].clips[0].position", |d| {
                d["tracks"][1]["clips"][0]["position"] = json!("middle")
            }),
            ("tracks[1].clips[0].scale", |d| {
                d["tracks"][1]["clips"][0]["scale"] = json!(3)
            }),
            ("tracks[1].clips[0].opacity", |d| {
                d["tracks"][1]["clips"][0]["opacity"] = json!(1.5)
            }),
            ("tracks[1].clips[0].effect", |d| {
                d["tracks"][1]["clips"][0]["effect"] = json!("spin")
            }),
            ("tracks[1].clips[0].transition.in", |d| {
                d["tracks"][1]["clips"][0]["transition"]["in"] = json!("swirl")
            }),
            ("tracks[1].clips[0].transition.duration", |d| {
                d["tracks"][1]["clips"][0]["transition"]["duration"] = json!(5)
            }),
            ("tracks[1].clips[0].transition.duration", |d| {
                d["tracks"][1]["clips"][0]["transition"]["duration"] = json!(1.5)
            }),
            ("tracks[1].clips[0].asset.type", |d| {
                d["tracks"][1]["clips"][0]["asset"]["type"] = json!("gif")
            }),
            ("tracks[1].clips[0].asset.asset_id", |d| {
                d["tracks"][1]["clips"][0]["asset"]["asset_id"] = json!("ast_nope")
            }),
            ("tracks[1].clips[0].asset", |d| {
                d["tracks"][1]["clips"][0]["asset"]["generation"] =
                    json!({"job_id": "x", "scene": 0})
            }),
            ("tracks[1].clips[0].asset.generation.job_id", |d| {
                d["tracks"][1]["clips"][0]["asset"] =
                    json!({"type": "video", "generation": {"job_id": "job_x", "scene": 0}});
            }),
            ("tracks[1].clips[0].asset.generation.scene", |d| {
                d["tracks"][1]["clips"][0]["asset"] = json!({"type": "video", "generation": {"job_id": "job_0123456789abcdef0123456789abcdef"}});
            }),
            ("tracks[0].clips[0].asset.text", |d| {
                d["tracks"][0]["clips"][0]["asset"]["text"] = json!("  ")
            }),
            ("tracks[0].clips[0].asset.style.style", |d| {
                d["tracks"][0]["clips"][0]["asset"]["style"] = json!({"style": "neon"})
            }),
            ("tracks[1].clips[1].asset.prompt", |d| {
                d["tracks"][1]["clips"][1]["asset"]["prompt"] = json!("")
            }),
            ("tracks[2].clips[0].asset.volume", |d| {
                d["tracks"][2]["clips"][0]["asset"]["volume"] = json!(9)
            }),
            ("tracks[1].clips[0].asset.volume", |d| {
                d["tracks"][1]["clips"][0]["asset"] =
                    json!({"type": "video", "asset_id": A, "volume": 2.5})
            }),
            ("tracks[1].clips[0].asset.volume", |d| {
                d["tracks"][1]["clips"][0]["asset"] =
                    json!({"type": "video", "asset_id": A, "volume": "loud"})
            }),
            // An image has no sound to turn up.
            ("tracks[1].clips[0].asset.volume", |d| {
                d["tracks"][1]["clips"][0]["asset"]["volume"] = json!(0.5)
            }),
            ("tracks[2].clips[0].effect", |d| {
                d["tracks"][2]["clips"][0]["effect"] = json!("zoom-in")
            }),
            ("tracks[2].clips[0].asset.asset_id", |d| {
                d["tracks"][2]["clips"][0]["asset"]
                    .as_object_mut()
                    .unwrap()
                    .remove("asset_id");
            }),
            ("soundtrack.volume", |d| {
                d["soundtrack"]["volume"] = json!(2)
            }),
            ("soundtrack.ducking", |d| {
                d["soundtrack"]["ducking"] = json!("yes")
            }),
            ("soundtrack.asset_id", |d| d["soundtrack"] = json!({})),
            ("captions.cues[0].text", |d| {
                d["captions"]["cues"][0]["text"] = json!("")
            }),
            ("captions.cues[1].start", |d| {
                d["captions"]["cues"] = json!([{"text": "a", "start": 0, "length": 2}, {"text": "b", "start": 1, "length": 1}]);
            }),
            ("captions.size", |d| d["captions"]["size"] = json!("huge")),
            ("duration", |d| d["duration"] = json!(1000)),
            ("tracks", |d| {
                let layer = json!({"clips": [{"asset": {"type": "title", "text": "x"}, "start": 0, "length": 1}]});
                d["tracks"] = Value::Array(vec![layer; MAX_LAYERS + 1]);
            }),
        ];
        for (i, (path, edit)) in cases.into_iter().enumerate() {
            let mut doc = base();
            edit(&mut doc);
            let err = validate(&doc).expect_err(&format!("case {i} ({path}) must fail"));
            assert!(
                err.names(path),
                "case {i}: expected an error at {path}, got {:?}",
                err.errors
            );
        }
    }

    #[test]
    fn too_many_layers_says_why_and_when() {
        let layer =
            json!({"clips": [{"asset": {"type": "title", "text": "x"}, "start": 1, "length": 1}]});
        let doc = json!({"tracks": vec![layer; MAX_LAYERS + 1]});
        let err = validate(&doc).unwrap_err();
        let rule = &err.errors[0].rule;
        assert!(rule.contains("7 visual clips overlap at 1 s"), "{rule}");
        // Back to back is no overlap: six layers then six more.
        let mut tracks = Vec::new();
        for _ in 0..MAX_LAYERS {
            tracks.push(json!({"clips": [
                {"asset": {"type": "title", "text": "x"}, "start": 0, "length": 1},
                {"asset": {"type": "title", "text": "y"}, "start": 1, "length": 1}
            ]}));
        }
        assert!(validate(&json!({ "tracks": tracks })).is_ok());
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let mut doc = base();
        doc["output"]["fps"] = json!(7);
        doc["tracks"][0]["clips"][0]["length"] = json!(-2);
        doc["soundtrack"]["volume"] = json!(5);
        let err = validate(&doc).unwrap_err();
        for p in [
            "output.fps",
            "tracks[0].clips[0].length",
            "soundtrack.volume",
        ] {
            assert!(err.names(p), "{p}: {:?}", err.errors);
        }
    }
}

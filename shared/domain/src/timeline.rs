//! The concrete timeline a composition renders: where each clip starts, where transitions
//! overlap, when each caption shows, and the brand overlays. Pure arithmetic over the plan, in
//! whole frames, so the composer and the tests agree on every number.

use crate::narration::SPEECH_LEAD_SECONDS;
use crate::plan::Plan;
use crate::request::{GenerationRequest, LogoSpec, MusicSpec, Transition, TransitionKind};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineClip {
    pub index: u32,
    pub key: String,
    pub start_frame: u32,
    pub frames: u32,
    /// How a clip of another shape than the frame is fitted; a clip of the frame's shape is
    /// only scaled. Timelines recorded before the field existed were contained.
    #[serde(default, skip_serializing_if = "ClipFit::is_contain")]
    pub fit: ClipFit,
}

/// Fitting a clip of another shape into the frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClipFit {
    /// The whole picture, centred on a blurred copy of itself (blur-pad).
    #[default]
    Contain,
    /// The frame filled, the picture's overflow cropped evenly from both sides.
    Cover,
}

impl ClipFit {
    pub fn is_contain(&self) -> bool {
        *self == ClipFit::Contain
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionCue {
    pub index: u32,
    pub text: String,
    pub start_seconds: f64,
    pub end_seconds: f64,
    /// When the text is narration: each word as it is heard in the video, so the composer can
    /// page the text and highlight the word being spoken. Empty for a scene caption.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<CueWord>,
}

/// A spoken word of a caption: byte offsets into the cue's text and its time in the video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CueWord {
    pub start: usize,
    pub end: usize,
    pub start_seconds: f64,
    pub end_seconds: f64,
}

/// One scene's speech placed in the video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NarrationCue {
    pub index: u32,
    pub key: String,
    pub start_seconds: f64,
    /// Length as heard, after the tempo.
    pub duration_seconds: f64,
    pub tempo: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogoOverlay {
    pub key: String,
    pub spec: LogoSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MusicBed {
    pub key: String,
    pub spec: MusicSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub total_frames: u32,
    pub duration_seconds: f64,
    pub transition: Transition,
    pub overlap_frames: u32,
    pub clips: Vec<TimelineClip>,
    pub captions: Vec<CaptionCue>,
    pub logo: Option<LogoOverlay>,
    pub music: Option<MusicBed>,
    /// The voice-over, scene by scene; empty when the video is not narrated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub narration: Vec<NarrationCue>,
    #[serde(default)]
    pub caption_style: crate::request::CaptionOptions,
    /// Where the thumbnail is taken: the middle of the first scene's unshared part.
    pub thumbnail_seconds: f64,
    /// Long side of the thumbnail in pixels; the short side keeps the video's aspect.
    pub thumbnail_long_side: u32,
}

pub const THUMBNAIL_LONG_SIDE: u32 = 640;

impl Timeline {
    /// Lays the plan's clips end to end, each overlapping the previous by the transition.
    /// `clip_keys[i]` is the blob key of scene i's clip; logo and music keys come from the assets.
    pub fn build(
        request: &GenerationRequest,
        plan: &Plan,
        clip_keys: &[String],
        logo_key: Option<String>,
        music_key: Option<String>,
    ) -> Timeline {
        let (width, height) = request.frame_size();
        let fps = plan.fps;
        let overlap = plan.overlap_frames();
        let mut start = 0u32;
        let mut clips = Vec::with_capacity(plan.scenes.len());
        let mut captions = Vec::new();
        let mut narration = Vec::new();
        let tempo = plan.narration.as_ref().map_or(1.0, |n| n.tempo);
        let n = plan.scenes.len();
        for (i, scene) in plan.scenes.iter().enumerate() {
            clips.push(TimelineClip {
                index: scene.index,
                key: clip_keys[i].clone(),
                start_frame: start,
                frames: scene.frames,
                fit: ClipFit::default(),
            });
            // A scene's window runs from the middle of the transition before it to the middle
            // of the one after: captions change hands there, so two never overlap, and the
            // planner made each window long enough for its speech.
            let lead = if i > 0 { overlap as f64 / 2.0 } else { 0.0 };
            let tail = if i + 1 < n { overlap as f64 / 2.0 } else { 0.0 };
            let window_start = (start as f64 + lead) / fps as f64;
            let window_end = (start as f64 + scene.frames as f64 - tail) / fps as f64;
            let spoken_at = window_start + SPEECH_LEAD_SECONDS;
            if let Some(speech) = &scene.speech {
                narration.push(NarrationCue {
                    index: scene.index,
                    key: speech.key.clone(),
                    start_seconds: spoken_at,
                    duration_seconds: speech.duration_ms as f64 / 1000.0 / tempo,
                    tempo,
                });
            }
            let cue = match &scene.speech {
                Some(speech) if !scene.narration.is_empty() => Some(CaptionCue {
                    index: scene.index,
                    text: scene.narration.clone(),
                    start_seconds: window_start,
                    end_seconds: window_end,
                    words: speech
                        .words
                        .iter()
                        .map(|w| CueWord {
                            start: w.start,
                            end: w.end,
                            start_seconds: spoken_at + w.start_ms as f64 / 1000.0 / tempo,
                            end_seconds: spoken_at + w.end_ms as f64 / 1000.0 / tempo,
                        })
                        .collect(),
                }),
                _ if !scene.caption.is_empty() => Some(CaptionCue {
                    index: scene.index,
                    text: scene.caption.clone(),
                    start_seconds: window_start,
                    end_seconds: window_end,
                    words: Vec::new(),
                }),
                _ => None,
            };
            if request.captions {
                captions.extend(cue);
            }
            start += scene.frames - overlap;
        }
        let first = &plan.scenes[0];
        let first_visible_end = first.frames - if n > 1 { overlap } else { 0 };
        let total_frames = plan.composed_frames();
        Timeline {
            width,
            height,
            fps,
            total_frames,
            duration_seconds: total_frames as f64 / fps as f64,
            transition: plan.transition,
            overlap_frames: overlap,
            clips,
            captions,
            logo: request
                .brand
                .logo
                .clone()
                .zip(logo_key)
                .map(|(spec, key)| LogoOverlay { key, spec }),
            music: request
                .brand
                .music
                .clone()
                .zip(music_key)
                .map(|(spec, key)| MusicBed { key, spec }),
            narration,
            caption_style: request.caption_style,
            thumbnail_seconds: (first_visible_end as f64 / 2.0).floor() / fps as f64,
            thumbnail_long_side: THUMBNAIL_LONG_SIDE,
        }
    }

    /// `xfade` offsets in seconds: transition k starts when the first k+1 clips, merged, have
    /// `overlap` frames left. Empty for a cut, where clips are concatenated instead.
    pub fn xfade_offsets(&self) -> Vec<f64> {
        if self.transition.kind == TransitionKind::Cut || self.clips.len() < 2 {
            return Vec::new();
        }
        self.clips[1..]
            .iter()
            .map(|c| c.start_frame as f64 / self.fps as f64)
            .collect()
    }

    pub fn transition_seconds(&self) -> f64 {
        self.overlap_frames as f64 / self.fps as f64
    }

    /// Thumbnail size keeping the video's aspect, even dimensions.
    pub fn thumbnail_size(&self) -> (u32, u32) {
        let long = self.thumbnail_long_side as f64;
        let even = |v: f64| (((v / 2.0).round() as u32) * 2).max(2);
        if self.width >= self.height {
            (
                even(long),
                even(long * self.height as f64 / self.width as f64),
            )
        } else {
            (
                even(long * self.width as f64 / self.height as f64),
                even(long),
            )
        }
    }
}

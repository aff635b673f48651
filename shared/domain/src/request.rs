//! The generation request: a loosely typed body as callers send it, and the validated
//! `GenerationRequest` that can only exist when every rule holds. Validation collects every
//! violation with the field it concerns, so the API and the CLI can name them all at once.

use crate::asset::AssetId;
pub use crate::captions::{CaptionOptions, CaptionPosition, CaptionSize, CaptionStyle};
use crate::error::{FieldError, ValidationErrors, echo, echo_number};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

pub const PROMPT_MAX_CHARS: usize = 2000;
pub const DURATION_MIN_SECONDS: u32 = 5;
pub const DURATION_MAX_SECONDS: u32 = 300;
pub const CLIP_COUNT_MAX: u8 = 20;
pub const TRANSITION_MIN_SECONDS: f64 = 0.1;
pub const TRANSITION_MAX_SECONDS: f64 = 2.0;
pub const DEFAULT_TRANSITION_SECONDS: f64 = 0.5;
/// Every scene stays on screen at least this long outside its transitions, so a plan never
/// degenerates into flicker.
pub const MIN_SCENE_VISIBLE_SECONDS: u32 = 1;

/// A prompt: 1..=2000 characters (Unicode scalar values) after trimming.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Prompt(String);

impl Prompt {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars == 0 {
            return Err("must not be empty or only whitespace".into());
        }
        if chars > PROMPT_MAX_CHARS {
            return Err(format!(
                "must be at most {PROMPT_MAX_CHARS} characters after trimming (got {chars})"
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Prompt {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Prompt> for String {
    fn from(p: Prompt) -> Self {
        p.0
    }
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The accepted spellings, for error messages.
            pub fn choices() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let wanted = s.trim().to_ascii_lowercase();
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == wanted)
                    .ok_or_else(|| format!("must be one of {} (got {})", Self::choices(), $crate::error::echo(s)))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
// Other domain modules spell their closed sets the same way.
pub(crate) use string_enum;

string_enum!(
    /// The frame's shape.
    AspectRatio { Landscape => "16:9", Portrait => "9:16", Square => "1:1", Vertical4x5 => "4:5" }
);

string_enum!(
    /// The length of the frame's short side.
    Resolution { P720 => "720p", P1080 => "1080p" }
);

string_enum!(
    /// Where the logo sits.
    Corner { TopLeft => "top-left", TopRight => "top-right", BottomLeft => "bottom-left", BottomRight => "bottom-right" }
);

string_enum!(
    /// How one scene gives way to the next. Every kind but `cut` is an ffmpeg `xfade` transition
    /// of the same name, so it overlaps the two scenes by the transition's duration.
    TransitionKind {
        Cut => "cut",
        Fade => "fade",
        FadeBlack => "fadeblack",
        FadeWhite => "fadewhite",
        Dissolve => "dissolve",
        WipeLeft => "wipeleft",
        WipeRight => "wiperight",
        WipeUp => "wipeup",
        WipeDown => "wipedown",
        SlideLeft => "slideleft",
        SlideRight => "slideright",
        SlideUp => "slideup",
        SlideDown => "slidedown",
        CircleOpen => "circleopen",
        CircleClose => "circleclose",
        Radial => "radial",
        SmoothLeft => "smoothleft",
        SmoothRight => "smoothright",
        Pixelize => "pixelize",
        ZoomIn => "zoomin",
    }
);

string_enum!(
    /// Who speaks the narration: espeak-ng offline, Amazon Polly, or an OpenAI-compatible server.
    NarratorKind { Espeak => "espeak", Polly => "polly", Openai => "openai" }
);

string_enum!(
    /// Amazon Polly's engines; other narrators ignore it.
    PollyEngine { Standard => "standard", Neural => "neural", LongForm => "long-form", Generative => "generative" }
);

/// A voice-over for the video: each scene's narration line spoken in that scene.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NarrationSpec {
    /// `None`: the deployment's narrator (espeak-ng offline unless one is configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narrator: Option<NarratorKind>,
    /// The narrator's voice name; `None` picks one for the text's language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<PollyEngine>,
}

/// Longest voice name accepted: every narrator's names are short identifiers.
pub const VOICE_MAX_CHARS: usize = 64;

impl AspectRatio {
    /// Output frame size for this aspect at a resolution: the short side is the resolution's,
    /// the long side is rounded to an even number (H.264 with yuv420p needs even dimensions).
    pub fn frame_size(self, resolution: Resolution) -> (u32, u32) {
        let short = resolution.short_side();
        let (w_ratio, h_ratio) = self.ratio();
        let even = |v: f64| ((v / 2.0).round() as u32) * 2;
        if w_ratio >= h_ratio {
            (even(short as f64 * w_ratio as f64 / h_ratio as f64), short)
        } else {
            (short, even(short as f64 * h_ratio as f64 / w_ratio as f64))
        }
    }

    pub fn ratio(self) -> (u32, u32) {
        match self {
            AspectRatio::Landscape => (16, 9),
            AspectRatio::Portrait => (9, 16),
            AspectRatio::Square => (1, 1),
            AspectRatio::Vertical4x5 => (4, 5),
        }
    }
}

impl Resolution {
    pub fn short_side(self) -> u32 {
        match self {
            Resolution::P720 => 720,
            Resolution::P1080 => 1080,
        }
    }
}

/// Frames per second: 24, 25 or 30.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Fps(u32);

impl Fps {
    pub const ALLOWED: [u32; 3] = [24, 25, 30];

    pub fn new(value: u32) -> Result<Self, String> {
        if Self::ALLOWED.contains(&value) {
            Ok(Self(value))
        } else {
            Err(format!("must be 24, 25 or 30 (got {value})"))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Fps {
    type Error = String;
    fn try_from(v: u32) -> Result<Self, String> {
        Self::new(v)
    }
}

impl From<Fps> for u32 {
    fn from(f: Fps) -> u32 {
        f.0
    }
}

/// Number of scenes (and so of generated clips): 1..=20.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct ClipCount(u8);

impl ClipCount {
    pub fn new(value: u8) -> Result<Self, String> {
        if (1..=CLIP_COUNT_MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(format!(
                "must be between 1 and {CLIP_COUNT_MAX} (got {value})"
            ))
        }
    }

    /// One scene per ~6 s of video, within 1..=20: long enough to read a caption, short enough
    /// to keep a social video moving.
    pub fn default_for(duration_seconds: u32) -> Self {
        Self(duration_seconds.div_ceil(6).clamp(1, CLIP_COUNT_MAX as u32) as u8)
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for ClipCount {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        Self::new(v)
    }
}

impl From<ClipCount> for u8 {
    fn from(c: ClipCount) -> u8 {
        c.0
    }
}

/// A transition and how long it overlaps two scenes (zero for `cut`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub kind: TransitionKind,
    pub duration_seconds: f64,
}

impl Transition {
    pub const CUT: Transition = Transition {
        kind: TransitionKind::Cut,
        duration_seconds: 0.0,
    };

    /// The overlap in whole frames: the planner works in frames so the output's length is exact.
    pub fn overlap_frames(&self, fps: Fps) -> u32 {
        if self.kind == TransitionKind::Cut {
            0
        } else {
            (self.duration_seconds * fps.get() as f64).round() as u32
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogoSpec {
    pub asset_id: AssetId,
    pub position: Corner,
    /// 0 (invisible) ..= 1 (opaque).
    pub opacity: f64,
    /// Logo width as a fraction of the frame width.
    pub scale: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MusicSpec {
    pub asset_id: AssetId,
    /// Linear gain applied after loudness normalisation: 0..=1.
    pub volume: f64,
    pub fade_in_seconds: f64,
    pub fade_out_seconds: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Brand {
    pub logo: Option<LogoSpec>,
    pub music: Option<MusicSpec>,
}

/// A request that passed every rule. Build it with [`GenerationRequestBody::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationRequest {
    pub prompt: Prompt,
    pub duration_seconds: u32,
    pub aspect_ratio: AspectRatio,
    pub resolution: Resolution,
    pub fps: Fps,
    pub clip_count: ClipCount,
    pub transition: Transition,
    pub captions: bool,
    pub seed: u64,
    pub brand: Brand,
    /// The captions' look; records from before styles existed read as the boxed default.
    #[serde(default)]
    pub caption_style: CaptionOptions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narration: Option<NarrationSpec>,
    /// Where the job's `completed` or `failed` delivery goes, signed with the tenant's secret;
    /// without one, the deployment's default target (if any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<crate::webhook::WebhookUrl>,
    /// The provider chosen to lead the chain ([`Choices`] checked it was offered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The planner chosen ([`Choices`] checked it was offered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planner: Option<String>,
}

/// What a deployment offers a request to choose: its clip providers (in chain order) and its
/// planners. A request's syntax is checked by [`GenerationRequestBody::validate_with`]; whether
/// a name is offered here, by [`Choices::check`], since only the deployment knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choices {
    pub providers: Vec<String>,
    pub planners: Vec<String>,
}

impl Choices {
    /// The choices of a deployment configured with `providers` and `planner`: an LLM planner
    /// offers the rules too (they are its fallback anyway).
    pub fn of(providers: Vec<String>, planner: &str) -> Choices {
        let rules = crate::plan::RulesPlanner::NAME;
        let mut planners = vec![planner.to_owned()];
        if planner != rules {
            planners.push(rules.to_owned());
        }
        Choices {
            providers,
            planners,
        }
    }

    /// Refuses a chosen provider or planner this deployment does not offer, by its field.
    pub fn check(&self, request: &GenerationRequest) -> Result<(), ValidationErrors> {
        let mut errors = Vec::new();
        for (field, chosen, offered) in [
            ("provider", &request.provider, &self.providers),
            ("planner", &request.planner, &self.planners),
        ] {
            if let Some(name) = chosen
                && !offered.iter().any(|o| o == name)
            {
                errors.push(FieldError::new(
                    field,
                    format!(
                        "must be one of this deployment's: {} (got {})",
                        offered.join(", "),
                        echo(name)
                    ),
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors { errors })
        }
    }
}

/// A provider or planner name as a request may give it: short, lower-case letters, digits
/// and `-`.
fn choice_name(raw: &str) -> Result<String, String> {
    let ok = !raw.is_empty()
        && raw.len() <= 40
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(format!(
            "must be a name such as procedural or rules (got {})",
            echo(raw)
        ))
    }
}

impl GenerationRequest {
    pub fn frame_size(&self) -> (u32, u32) {
        self.aspect_ratio.frame_size(self.resolution)
    }

    pub fn total_frames(&self) -> u32 {
        self.duration_seconds * self.fps.get()
    }
}

/// The body as a caller sends it (JSON over the API, flags from the CLI). Every field is optional
/// here so that a missing field becomes a named validation error rather than a parse failure.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationRequestBody {
    pub prompt: Option<String>,
    pub duration_seconds: Option<f64>,
    pub aspect_ratio: Option<String>,
    pub resolution: Option<String>,
    pub fps: Option<i64>,
    pub clip_count: Option<i64>,
    pub transition: Option<String>,
    pub transition_duration_seconds: Option<f64>,
    /// `true`/`false`, or an object choosing the style (captions on).
    pub captions: Option<CaptionsBody>,
    pub seed: Option<u64>,
    pub brand: Option<BrandBody>,
    pub narration: Option<NarrationBody>,
    /// An `https` URL told when the job completes or fails, in a delivery signed per Standard
    /// Webhooks with the tenant's secret (`GET /v1/webhook-secret`). Private, loopback and
    /// link-local targets are refused, here and again after DNS when delivering.
    pub webhook_url: Option<String>,
    /// The clip provider to lead this job's chain, one of the deployment's (`/app-config.json`
    /// lists them as `providers`); the chain's other providers stay its fallbacks. Default: the
    /// configured chain as it is.
    pub provider: Option<String>,
    /// The scene planner, one of the deployment's (`planners` in `/app-config.json`: the
    /// configured planner, and `rules` beneath an LLM one). Default: the configured planner.
    pub planner: Option<String>,
}

/// Captions as the body gives them: a switch, or a style (which turns them on).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CaptionsBody {
    Enabled(bool),
    Styled(CaptionStyleBody),
}

// By hand rather than `untagged`: an untagged enum hides why neither shape fitted ("data did
// not match any variant"), where this one names the style's own bad field and path.
impl<'de> Deserialize<'de> for CaptionsBody {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Shape;
        impl<'de> serde::de::Visitor<'de> for Shape {
            type Value = CaptionsBody;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("must be true, false or an object")
            }

            fn visit_bool<E>(self, on: bool) -> Result<CaptionsBody, E> {
                Ok(CaptionsBody::Enabled(on))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<CaptionsBody, A::Error> {
                CaptionStyleBody::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(CaptionsBody::Styled)
            }
        }
        de.deserialize_any(Shape)
    }
}

impl From<bool> for CaptionsBody {
    fn from(on: bool) -> Self {
        CaptionsBody::Enabled(on)
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptionStyleBody {
    /// `boxed` (default), `bold-outline` or `karaoke`.
    pub style: Option<String>,
    /// `bottom` (default), `center` or `top`.
    pub position: Option<String>,
    /// `small`, `medium` (default) or `large`.
    pub size: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NarrationBody {
    /// Default `true` when the object is given.
    pub enabled: Option<bool>,
    /// `espeak`, `polly` or `openai`; absent means the deployment's narrator.
    pub provider: Option<String>,
    /// The narrator's voice (for example `Joanna`, `en-us`, `alloy`): letters, digits and
    /// `_+-.`, at most 64 characters. Absent picks one for the prompt's language.
    pub voice: Option<String>,
    /// Polly's engine: `standard`, `neural`, `long-form` or `generative`. Only with `polly` or
    /// no provider.
    pub engine: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrandBody {
    pub logo: Option<LogoBody>,
    pub music: Option<MusicBody>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogoBody {
    pub asset_id: Option<String>,
    pub position: Option<String>,
    pub opacity: Option<f64>,
    pub scale: Option<f64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MusicBody {
    pub asset_id: Option<String>,
    pub volume: Option<f64>,
    pub fade_in_seconds: Option<f64>,
    pub fade_out_seconds: Option<f64>,
}

/// Collects field errors while validation walks the body.
#[derive(Default)]
struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn fail(&mut self, field: &str, rule: impl Into<String>) {
        self.errors.push(FieldError::new(field, rule));
    }

    fn required<T>(&mut self, field: &str, value: Option<T>) -> Option<T> {
        if value.is_none() {
            self.fail(field, "is required");
        }
        value
    }

    fn parsed<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|rule| self.fail(field, rule)).ok()
    }

    fn ranged(&mut self, field: &str, value: f64, min: f64, max: f64) -> Option<f64> {
        if value.is_finite() && (min..=max).contains(&value) {
            Some(value)
        } else {
            self.fail(
                field,
                format!(
                    "must be between {min} and {max} (got {})",
                    echo_number(value)
                ),
            );
            None
        }
    }
}

impl GenerationRequestBody {
    /// Checks every rule and returns the request, or every violation with its field. A
    /// webhook URL must be public `https`.
    pub fn validate(&self) -> Result<GenerationRequest, ValidationErrors> {
        self.validate_with(crate::webhook::UrlRules::default())
    }

    /// [`Self::validate`] under a deployment's webhook URL rules (a development stack accepts
    /// `http` to loopback).
    pub fn validate_with(
        &self,
        webhook_rules: crate::webhook::UrlRules,
    ) -> Result<GenerationRequest, ValidationErrors> {
        let mut c = Checker::default();

        let prompt = c
            .required("prompt", self.prompt.as_deref())
            .and_then(|p| c.parsed("prompt", Prompt::parse(p)));

        let duration = c.required("duration_seconds", self.duration_seconds).and_then(|d| {
            if d.fract() != 0.0 || !(DURATION_MIN_SECONDS as f64..=DURATION_MAX_SECONDS as f64).contains(&d) {
                c.fail(
                    "duration_seconds",
                    format!("must be a whole number of seconds from {DURATION_MIN_SECONDS} to {DURATION_MAX_SECONDS} (got {})", echo_number(d)),
                );
                None
            } else {
                Some(d as u32)
            }
        });

        let aspect = c
            .required("aspect_ratio", self.aspect_ratio.as_deref())
            .and_then(|a| c.parsed("aspect_ratio", a.parse::<AspectRatio>()));

        let resolution = match self.resolution.as_deref() {
            None => Some(Resolution::P1080),
            Some(r) => c.parsed("resolution", r.parse::<Resolution>()),
        };

        let fps = match self.fps {
            None => Some(Fps(30)),
            Some(f) => c.parsed(
                "fps",
                u32::try_from(f)
                    .map_err(|_| format!("must be 24, 25 or 30 (got {f})"))
                    .and_then(Fps::new),
            ),
        };

        let explicit_clips = match self.clip_count {
            None => None,
            Some(n) => c.parsed(
                "clip_count",
                u8::try_from(n)
                    .map_err(|_| format!("must be between 1 and {CLIP_COUNT_MAX} (got {n})"))
                    .and_then(ClipCount::new),
            ),
        };

        let kind = match self.transition.as_deref() {
            None => Some(TransitionKind::Fade),
            Some(t) => c.parsed("transition", t.parse::<TransitionKind>()),
        };
        let transition = kind.and_then(|kind| {
            if kind == TransitionKind::Cut {
                if self.transition_duration_seconds.is_some_and(|d| d != 0.0) {
                    c.fail(
                        "transition_duration_seconds",
                        "must be 0 or absent for a cut",
                    );
                    return None;
                }
                return Some(Transition::CUT);
            }
            let d = self
                .transition_duration_seconds
                .unwrap_or(DEFAULT_TRANSITION_SECONDS);
            c.ranged(
                "transition_duration_seconds",
                d,
                TRANSITION_MIN_SECONDS,
                TRANSITION_MAX_SECONDS,
            )
            .map(|duration_seconds| Transition {
                kind,
                duration_seconds,
            })
        });

        let brand = self
            .brand
            .as_ref()
            .map(|b| validate_brand(&mut c, b))
            .unwrap_or_default();
        let (captions, caption_style) = validate_captions(&mut c, self.captions.as_ref());
        let narration = self
            .narration
            .as_ref()
            .and_then(|n| validate_narration(&mut c, n));

        // The fit check needs every number it depends on to be valid on its own first.
        let clip_count = match (duration, fps, transition) {
            (Some(d), Some(fps), Some(t)) => {
                let requested = explicit_clips.unwrap_or_else(|| ClipCount::default_for(d));
                let fits = |n: u8| scenes_fit(d, fps, t, n);
                if fits(requested.get()) {
                    Some(requested)
                } else if explicit_clips.is_some() {
                    let max = (1..=requested.get()).rev().find(|&n| fits(n)).unwrap_or(1);
                    c.fail(
                        "clip_count",
                        format!(
                            "{} scenes do not fit in {d} s with {} s transitions: each scene needs {MIN_SCENE_VISIBLE_SECONDS} s on screen besides its transitions; at most {max} fit",
                            requested.get(),
                            t.duration_seconds
                        ),
                    );
                    None
                } else if fits(1) {
                    // A derived default shrinks quietly to what fits.
                    (1..=requested.get())
                        .rev()
                        .find(|&n| fits(n))
                        .map(ClipCount)
                } else {
                    c.fail(
                        "transition_duration_seconds",
                        format!("is too long for a {d} s video"),
                    );
                    None
                }
            }
            _ => None,
        };

        let webhook_url = self.webhook_url.as_deref().and_then(|u| {
            c.parsed(
                "webhook_url",
                crate::webhook::WebhookUrl::parse(u, webhook_rules),
            )
        });

        let provider = self
            .provider
            .as_deref()
            .and_then(|p| c.parsed("provider", choice_name(p)));
        let planner = self
            .planner
            .as_deref()
            .and_then(|p| c.parsed("planner", choice_name(p)));

        if !c.errors.is_empty() {
            return Err(ValidationErrors { errors: c.errors });
        }
        // Every Option is Some once no error was recorded.
        match (
            prompt, duration, aspect, resolution, fps, clip_count, transition,
        ) {
            (
                Some(prompt),
                Some(duration_seconds),
                Some(aspect_ratio),
                Some(resolution),
                Some(fps),
                Some(clip_count),
                Some(transition),
            ) => Ok(GenerationRequest {
                prompt,
                duration_seconds,
                aspect_ratio,
                resolution,
                fps,
                clip_count,
                transition,
                captions,
                seed: self.seed.unwrap_or(0),
                brand,
                caption_style,
                narration,
                webhook_url,
                provider,
                planner,
            }),
            _ => Err(ValidationErrors::single("request", "is incomplete")),
        }
    }
}

/// Whether `n` scenes can each show for the minimum time, given the transition overlap.
/// With total frames F, overlap t and n scenes, the clips add up to F + (n-1)t frames; the end
/// clips need min_visible + t and the middle ones min_visible + 2t, so F >= n*min_visible + (n-1)t.
pub fn scenes_fit(duration_seconds: u32, fps: Fps, transition: Transition, n: u8) -> bool {
    let total = (duration_seconds * fps.get()) as u64;
    let t = transition.overlap_frames(fps) as u64;
    let min_visible = (MIN_SCENE_VISIBLE_SECONDS * fps.get()) as u64;
    total >= n as u64 * min_visible + (n as u64).saturating_sub(1) * t
}

fn validate_captions(c: &mut Checker, body: Option<&CaptionsBody>) -> (bool, CaptionOptions) {
    let styled = match body {
        None => return (true, CaptionOptions::default()),
        Some(CaptionsBody::Enabled(on)) => return (*on, CaptionOptions::default()),
        Some(CaptionsBody::Styled(s)) => s,
    };
    let d = CaptionOptions::default();
    let style = match styled.style.as_deref() {
        None => Some(d.style),
        Some(v) => c.parsed("captions.style", v.parse::<CaptionStyle>()),
    };
    let position = match styled.position.as_deref() {
        None => Some(d.position),
        Some(v) => c.parsed("captions.position", v.parse::<CaptionPosition>()),
    };
    let size = match styled.size.as_deref() {
        None => Some(d.size),
        Some(v) => c.parsed("captions.size", v.parse::<CaptionSize>()),
    };
    (
        true,
        CaptionOptions {
            style: style.unwrap_or(d.style),
            position: position.unwrap_or(d.position),
            size: size.unwrap_or(d.size),
        },
    )
}

fn validate_narration(c: &mut Checker, n: &NarrationBody) -> Option<NarrationSpec> {
    // Every field is checked before any verdict, so one answer names them all.
    let before = c.errors.len();
    let narrator = n
        .provider
        .as_deref()
        .and_then(|p| c.parsed("narration.provider", p.parse::<NarratorKind>()));
    let voice = n.voice.as_deref().map(str::trim).and_then(|v| {
        let ok = !v.is_empty()
            && v.chars().count() <= VOICE_MAX_CHARS
            && v.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '+' | '-' | '.'));
        if !ok {
            c.fail(
                "narration.voice",
                format!(
                    "must be 1 to {VOICE_MAX_CHARS} letters, digits or _+-. (got {})",
                    echo(v)
                ),
            );
        }
        ok.then(|| v.to_owned())
    });
    let engine = n.engine.as_deref().and_then(|e| {
        let engine = c.parsed("narration.engine", e.parse::<PollyEngine>())?;
        if narrator.is_some_and(|k| k != NarratorKind::Polly) {
            c.fail(
                "narration.engine",
                "is Polly's setting: use it with provider polly",
            );
            return None;
        }
        Some(engine)
    });
    if c.errors.len() > before || !n.enabled.unwrap_or(true) {
        return None;
    }
    Some(NarrationSpec {
        narrator,
        voice,
        engine,
    })
}

fn validate_brand(c: &mut Checker, b: &BrandBody) -> Brand {
    let logo = b.logo.as_ref().and_then(|l| {
        let asset_id = c
            .required("brand.logo.asset_id", l.asset_id.as_deref())
            .and_then(|id| c.parsed("brand.logo.asset_id", AssetId::parse(id)));
        let position = match l.position.as_deref() {
            None => Some(Corner::TopRight),
            Some(p) => c.parsed("brand.logo.position", p.parse::<Corner>()),
        };
        let opacity = c.ranged("brand.logo.opacity", l.opacity.unwrap_or(0.9), 0.0, 1.0);
        let scale = c.ranged("brand.logo.scale", l.scale.unwrap_or(0.12), 0.02, 0.5);
        Some(LogoSpec {
            asset_id: asset_id?,
            position: position?,
            opacity: opacity?,
            scale: scale?,
        })
    });
    let music = b.music.as_ref().and_then(|m| {
        let asset_id = c
            .required("brand.music.asset_id", m.asset_id.as_deref())
            .and_then(|id| c.parsed("brand.music.asset_id", AssetId::parse(id)));
        let volume = c.ranged("brand.music.volume", m.volume.unwrap_or(0.8), 0.0, 1.0);
        let fade_in = c.ranged(
            "brand.music.fade_in_seconds",
            m.fade_in_seconds.unwrap_or(1.0),
            0.0,
            10.0,
        );
        let fade_out = c.ranged(
            "brand.music.fade_out_seconds",
            m.fade_out_seconds.unwrap_or(2.0),
            0.0,
            10.0,
        );
        Some(MusicSpec {
            asset_id: asset_id?,
            volume: volume?,
            fade_in_seconds: fade_in?,
            fade_out_seconds: fade_out?,
        })
    });
    Brand { logo, music }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> GenerationRequestBody {
        GenerationRequestBody {
            prompt: Some("A calm ocean at sunrise".into()),
            duration_seconds: Some(10.0),
            aspect_ratio: Some("16:9".into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_fill_in() {
        let r = body().validate().unwrap();
        assert_eq!(r.resolution, Resolution::P1080);
        assert_eq!(r.fps.get(), 30);
        assert_eq!(r.clip_count.get(), 2);
        assert_eq!(r.transition.kind, TransitionKind::Fade);
        assert!(r.captions);
        assert_eq!(r.frame_size(), (1920, 1080));
    }

    #[test]
    fn frame_sizes_per_aspect_and_resolution() {
        let cases = [
            ("16:9", "720p", (1280, 720)),
            ("16:9", "1080p", (1920, 1080)),
            ("9:16", "720p", (720, 1280)),
            ("9:16", "1080p", (1080, 1920)),
            ("1:1", "720p", (720, 720)),
            ("1:1", "1080p", (1080, 1080)),
            ("4:5", "720p", (720, 900)),
            ("4:5", "1080p", (1080, 1350)),
        ];
        for (a, r, size) in cases {
            let a: AspectRatio = a.parse().unwrap();
            let r: Resolution = r.parse().unwrap();
            assert_eq!(a.frame_size(r), size, "{a} {r}");
        }
    }

    #[test]
    fn unicode_prompt_counts_characters_not_bytes() {
        let p = "é".repeat(PROMPT_MAX_CHARS);
        assert!(Prompt::parse(&p).is_ok());
        assert!(Prompt::parse(&format!("{p}é")).is_err());
        assert_eq!(Prompt::parse("  日本の海  ").unwrap().as_str(), "日本の海");
    }

    #[test]
    fn all_errors_are_reported_together() {
        let b = GenerationRequestBody {
            prompt: Some("   ".into()),
            duration_seconds: Some(301.0),
            aspect_ratio: Some("3:2".into()),
            fps: Some(60),
            ..Default::default()
        };
        let e = b.validate().unwrap_err();
        for f in ["prompt", "duration_seconds", "aspect_ratio", "fps"] {
            assert!(e.names(f), "{f} missing from {e}");
        }
    }

    #[test]
    fn captions_take_a_switch_or_a_style() {
        let json = |v: serde_json::Value| -> GenerationRequestBody {
            let mut b = serde_json::to_value(body()).unwrap();
            b["captions"] = v;
            serde_json::from_value(b).unwrap()
        };
        let off = json(serde_json::json!(false)).validate().unwrap();
        assert!(!off.captions);
        let styled = json(serde_json::json!({"style": "karaoke", "position": "top"}))
            .validate()
            .unwrap();
        assert!(styled.captions);
        assert_eq!(styled.caption_style.style, CaptionStyle::Karaoke);
        assert_eq!(styled.caption_style.position, CaptionPosition::Top);
        assert_eq!(styled.caption_style.size, CaptionSize::Medium);
        let e = json(serde_json::json!({"style": "comic", "size": "huge"}))
            .validate()
            .unwrap_err();
        assert!(e.names("captions.style") && e.names("captions.size"), "{e}");
        // An unknown key is a parse error, not a silently ignored style.
        let mut b = serde_json::to_value(body()).unwrap();
        b["captions"] = serde_json::json!({"colour": "red"});
        assert!(serde_json::from_value::<GenerationRequestBody>(b).is_err());
    }

    #[test]
    fn narration_is_checked_field_by_field() {
        let with = |n: NarrationBody| GenerationRequestBody {
            narration: Some(n),
            ..body()
        };
        let on = with(NarrationBody::default()).validate().unwrap();
        assert_eq!(
            on.narration,
            Some(NarrationSpec {
                narrator: None,
                voice: None,
                engine: None
            })
        );
        let polly = with(NarrationBody {
            provider: Some("polly".into()),
            voice: Some("Joanna".into()),
            engine: Some("long-form".into()),
            ..Default::default()
        })
        .validate()
        .unwrap();
        let n = polly.narration.unwrap();
        assert_eq!(n.narrator, Some(NarratorKind::Polly));
        assert_eq!(n.engine, Some(PollyEngine::LongForm));
        let off = with(NarrationBody {
            enabled: Some(false),
            ..Default::default()
        });
        assert_eq!(off.validate().unwrap().narration, None);

        let e = with(NarrationBody {
            provider: Some("festival".into()),
            ..Default::default()
        })
        .validate()
        .unwrap_err();
        assert!(e.names("narration.provider"), "{e}");
        let e = with(NarrationBody {
            voice: Some("Joanna; rm -rf /".into()),
            ..Default::default()
        })
        .validate()
        .unwrap_err();
        assert!(e.names("narration.voice"), "{e}");
        let e = with(NarrationBody {
            provider: Some("espeak".into()),
            engine: Some("neural".into()),
            voice: Some("a b".into()),
            ..Default::default()
        })
        .validate()
        .unwrap_err();
        assert!(
            e.names("narration.engine") && e.names("narration.voice"),
            "{e}"
        );
    }
}

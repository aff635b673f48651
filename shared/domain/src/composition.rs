//! Compositions as versions of a job's video. A job's first compose records its first
//! composition; each recompose renders another one from the same clips and records which one it
//! was made from (`parent_composition_id`), so the versions form a chain back to the first.
//! Every composition's files live under `compositions/{composition_id}/` (see [`crate::keys`]).
//! A timeline render (`POST /v1/compositions`) is a composition of no job: it carries the
//! prediction it was rendered by ([`TimelineRender`]) instead, and is found by its id alone.

use crate::job::{ClipRecord, ComposeRoute, JobError, JobId, Outputs};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// `cmp_` followed by a UUIDv7 in simple form, like a [`JobId`]: sortable by creation time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CompositionId(String);

impl CompositionId {
    pub fn generate() -> Self {
        Self(format!("cmp_{}", uuid::Uuid::now_v7().simple()))
    }

    /// The id of a job's first composition: derived from the job's own id, so a compose step
    /// that runs twice (a retry, a duplicate delivery) writes the same composition both times.
    pub fn first_of(job: &JobId) -> Self {
        Self(format!("cmp_{}", &job.as_str()[4..]))
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = raw.len() == 36
            && raw.starts_with("cmp_")
            && raw[4..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!("not a composition id: {}", crate::error::echo(raw)))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CompositionId {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        Self::parse(&v)
    }
}

impl From<CompositionId> for String {
    fn from(c: CompositionId) -> String {
        c.0
    }
}

impl fmt::Display for CompositionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompositionStatus {
    /// Recorded before its render; a recompose is `rendering` until its files are written.
    Rendering,
    Completed,
    Failed,
}

impl CompositionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CompositionStatus::Rendering => "rendering",
            CompositionStatus::Completed => "completed",
            CompositionStatus::Failed => "failed",
        }
    }

    pub fn is_terminal(self) -> bool {
        self != CompositionStatus::Rendering
    }
}

/// One rendered (or rendering) version of a job's video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Composition {
    pub id: CompositionId,
    /// The job whose clips it lays out; `None` for a timeline render, which belongs to no job
    /// (records written before timelines were recorded always name one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
    /// The tenant, as on the job.
    pub owner: String,
    /// The composition this one was made from; `None` for the job's first.
    pub parent_composition_id: Option<CompositionId>,
    pub status: CompositionStatus,
    /// The blob keys of the clips the composition is made of, in timeline order: what it keeps
    /// alive (see [`Composition::refers_to`]).
    pub clip_keys: Vec<String>,
    /// What was changed from the parent, as the caller asked for it (absent on a first compose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edits: Option<serde_json::Value>,
    /// The clips of the scenes it replaced (by a new prompt), as they are being made: the
    /// provider's progress, kept here rather than on the job, whose clips stay the parent's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clips: Vec<ClipRecord>,
    /// Set once completed: every key is under `compositions/{id}/`.
    pub outputs: Option<Outputs>,
    pub error: Option<JobError>,
    /// Set on a timeline render only: what it was predicted to be when it was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<TimelineRender>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A timeline render's prediction, recorded with it: its length, where it renders, and the
/// clips the provider chain makes for its `generate` assets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineRender {
    pub duration_seconds: f64,
    pub total_frames: u32,
    pub route: ComposeRoute,
    #[serde(default)]
    pub provider_calls: Vec<TimelineCall>,
}

/// One `generate` asset's clip: which provider makes it (the one that made it, once rendered)
/// and whether the clip cache already held it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineCall {
    /// The clip's JSON path in the document (`tracks[1].clips[0]`).
    pub path: String,
    pub provider: String,
    pub prompt: String,
    pub frames: u32,
    pub cache_hit: bool,
}

impl Composition {
    /// A composition about to be rendered.
    pub fn rendering(
        id: CompositionId,
        job_id: JobId,
        owner: impl Into<String>,
        parent: Option<CompositionId>,
        clip_keys: Vec<String>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            job_id: Some(job_id),
            owner: owner.into(),
            parent_composition_id: parent,
            status: CompositionStatus::Rendering,
            clip_keys,
            edits: None,
            clips: Vec::new(),
            outputs: None,
            error: None,
            timeline: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// A timeline render about to be rendered: no job, no parent, no job clips to keep alive.
    pub fn timeline(
        id: CompositionId,
        owner: impl Into<String>,
        render: TimelineRender,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            job_id: None,
            owner: owner.into(),
            parent_composition_id: None,
            status: CompositionStatus::Rendering,
            clip_keys: Vec::new(),
            edits: None,
            clips: Vec::new(),
            outputs: None,
            error: None,
            timeline: Some(render),
            created_at: now,
            updated_at: now,
        }
    }

    /// The job whose version this is, or why there is none (a timeline render).
    pub fn job(&self) -> Result<&JobId, String> {
        self.job_id
            .as_ref()
            .ok_or_else(|| format!("composition {} is a timeline render of no job", self.id))
    }

    /// The composition's files: the seed's layout, one folder per composition.
    pub fn output_keys(&self) -> (String, String, String, String) {
        (
            crate::keys::final_video(&self.id),
            crate::keys::thumbnail(&self.id),
            crate::keys::timeline(&self.id),
            crate::keys::metadata(&self.id),
        )
    }

    /// The scenes this version replaced with a new prompt, by scene index: the ones a provider
    /// makes. A scene replaced by an asset is in [`Composition::asset_scenes`] instead.
    pub fn replaced_scenes(&self) -> Vec<u32> {
        self.scene_edits()
            .iter()
            .filter(|s| s.prompt.is_some())
            .map(|s| s.index)
            .collect()
    }

    /// The scenes this version shows an uploaded asset in, as its edits name them.
    pub fn asset_scenes(&self) -> Vec<SceneAsset> {
        self.scene_edits()
            .iter()
            .filter_map(|s| {
                let asset_id = crate::asset::AssetId::parse(s.asset_id.as_deref()?).ok()?;
                Some(SceneAsset {
                    scene_index: s.index,
                    asset_id,
                })
            })
            .collect()
    }

    fn scene_edits(&self) -> Vec<SceneEdit> {
        self.edits
            .as_ref()
            .and_then(|e| serde_json::from_value::<RecomposeEdits>(e.clone()).ok())
            .and_then(|e| e.scenes)
            .unwrap_or_default()
    }

    pub fn refers_to(&self, clip_key: &str) -> bool {
        self.clip_keys.iter().any(|k| k == clip_key)
    }
}

/// The chain of versions from `id` back to the first: `id` first, its parent next. Stops at a
/// missing parent or a cycle (which a store never holds, but a chain is never walked forever).
pub fn lineage<'a>(versions: &'a [Composition], id: &CompositionId) -> Vec<&'a Composition> {
    let mut chain: Vec<&Composition> = Vec::new();
    let mut next = Some(id);
    while let Some(want) = next {
        let Some(found) = versions.iter().find(|c| &c.id == want) else {
            break;
        };
        if chain.iter().any(|c| c.id == found.id) {
            break;
        }
        chain.push(found);
        next = found.parent_composition_id.as_ref();
    }
    chain
}

/// What a recompose changes, as the caller sends it: every field optional, absent keeps the
/// parent's choice. Applied to the job's request and plan by [`RecomposeEdits::apply`], which
/// never touches a clip: the same clips are laid out again.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecomposeEdits {
    /// `16:9`, `9:16`, `1:1` or `4:5`: the clips are fitted to it (scaled and cropped to cover
    /// the frame where the shapes differ), not regenerated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aspect_ratio: Option<String>,
    /// `720p` or `1080p`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// One of the xfade set or `cut`; keeps the parent's transition length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captions: Option<bool>,
    /// An uploaded music asset to lay under the video instead of the parent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub music_asset_id: Option<String>,
    /// An uploaded logo asset to show instead of the parent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_asset_id: Option<String>,
    /// The scenes in their new order, by scene index: a permutation of the parent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Vec<u32>>,
    /// The version to start from; the job's latest completed composition when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_composition_id: Option<String>,
    /// Scenes to replace, by scene index, each with a new prompt (only these are generated,
    /// through the provider chain and its cache) or an uploaded asset (no provider call); every
    /// other clip is reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenes: Option<Vec<SceneEdit>>,
    /// `false` drops the voice-over (captions fall back to the scenes' own); `true` keeps it, or
    /// speaks the scenes' lines where the parent had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narration: Option<bool>,
    /// Another voice of the configured narrator: the lines are spoken again, no clip is made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
}

/// One scene replaced in a recompose: by a new prompt (a clip made through the provider chain)
/// or by an uploaded asset (no provider call). Exactly one of the two.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneEdit {
    /// The scene's index in the job's plan (from 0), whatever its place in the order.
    pub index: u32,
    /// What the new clip shows: 1 to 2000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// An uploaded `video` asset (at least as long as the scene), or an `image` or `logo` asset
    /// held for the scene: fitted to the scene's frames and the output's shape in the compose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_id: Option<String>,
}

impl SceneEdit {
    /// The scene replaced by a new prompt.
    pub fn prompt(index: u32, prompt: impl Into<String>) -> Self {
        Self {
            index,
            prompt: Some(prompt.into()),
            asset_id: None,
        }
    }

    /// The scene replaced by an uploaded asset.
    pub fn asset(index: u32, asset_id: impl Into<String>) -> Self {
        Self {
            index,
            prompt: None,
            asset_id: Some(asset_id.into()),
        }
    }
}

/// A scene a composition shows an uploaded asset in, instead of the job's clip: the record of
/// which asset replaced which scene.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneAsset {
    /// The scene's index in the job's plan.
    pub scene_index: u32,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub asset_id: crate::asset::AssetId,
}

/// Longest prompt a replaced scene takes, as a request's own prompt.
pub const SCENE_PROMPT_MAX_CHARS: usize = 2000;

/// A recompose's request, plan and clips, with the edits applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Recomposition {
    pub request: crate::request::GenerationRequest,
    pub plan: crate::plan::Plan,
    /// `clip_keys[i]` is the clip of `plan.scenes[i]`.
    pub clip_keys: Vec<String>,
}

impl RecomposeEdits {
    /// Whether the lines must be spoken again over `applied` (the plan [`apply`] returned): a new
    /// voice, or narration turned on over a parent that had none. The clips stay as they are.
    ///
    /// [`apply`]: RecomposeEdits::apply
    pub fn speaks_again(&self, applied: &crate::plan::Plan) -> bool {
        self.narration != Some(false)
            && (self.voice.is_some()
                || (self.narration == Some(true) && applied.narration.is_none()))
    }

    /// Applies the edits to the parent's request, plan and clips, or names every field that is
    /// wrong. Music and logo ids are checked for form only: the caller looks the assets up.
    pub fn apply(
        &self,
        request: &crate::request::GenerationRequest,
        plan: &crate::plan::Plan,
        clip_keys: &[String],
    ) -> Result<Recomposition, crate::error::ValidationErrors> {
        use crate::error::{FieldError, ValidationErrors};
        use crate::request::{AspectRatio, Resolution, TransitionKind};
        let mut errors = Vec::new();
        let mut request = request.clone();
        let mut plan = plan.clone();
        let mut clip_keys = clip_keys.to_vec();
        if let Some(raw) = &self.aspect_ratio {
            match raw.parse::<AspectRatio>() {
                Ok(a) => request.aspect_ratio = a,
                Err(e) => errors.push(FieldError::new("aspect_ratio", e)),
            }
        }
        if let Some(raw) = &self.resolution {
            match raw.parse::<Resolution>() {
                Ok(r) => request.resolution = r,
                Err(e) => errors.push(FieldError::new("resolution", e)),
            }
        }
        if let Some(raw) = &self.transition {
            match raw.parse::<TransitionKind>() {
                Ok(kind) => {
                    // The parent's length, or the default where the parent cut.
                    let seconds = if plan.transition.duration_seconds > 0.0 {
                        plan.transition.duration_seconds
                    } else {
                        crate::request::DEFAULT_TRANSITION_SECONDS
                    };
                    let t = if kind == TransitionKind::Cut {
                        crate::request::Transition::CUT
                    } else {
                        crate::request::Transition {
                            kind,
                            duration_seconds: seconds,
                        }
                    };
                    let shortest = plan.scenes.iter().map(|s| s.frames).min().unwrap_or(0);
                    if plan.scenes.len() > 1 && t.overlap_frames(request.fps) * 2 > shortest {
                        errors.push(FieldError::new(
                            "transition",
                            format!(
                                "overlaps more than half of the shortest scene ({shortest} frames)"
                            ),
                        ));
                    }
                    request.transition = t;
                    plan.transition = t;
                }
                Err(e) => errors.push(FieldError::new("transition", e)),
            }
        }
        if let Some(on) = self.captions {
            request.captions = on;
        }
        if let Some(raw) = &self.voice {
            let v = raw.trim();
            let ok = !v.is_empty()
                && v.chars().count() <= crate::request::VOICE_MAX_CHARS
                && v.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '+' | '-' | '.'));
            if !ok {
                errors.push(FieldError::new(
                    "voice",
                    format!(
                        "must be 1 to {} letters, digits or _+-.",
                        crate::request::VOICE_MAX_CHARS
                    ),
                ));
            } else if self.narration == Some(false) {
                errors.push(FieldError::new("voice", "needs narration on"));
            } else {
                request.narration.get_or_insert_default().voice = Some(v.to_owned());
            }
        }
        match self.narration {
            Some(false) => {
                request.narration = None;
                plan.narration = None;
                for scene in &mut plan.scenes {
                    scene.speech = None;
                }
            }
            Some(true) if request.narration.is_none() => {
                request.narration = Some(Default::default());
            }
            _ => {}
        }
        for (field, raw) in [
            ("music_asset_id", &self.music_asset_id),
            ("logo_asset_id", &self.logo_asset_id),
        ] {
            if let Some(raw) = raw
                && let Err(e) = crate::asset::AssetId::parse(raw)
            {
                errors.push(FieldError::new(field, e));
            }
        }
        if let Some(raw) = &self.parent_composition_id
            && let Err(e) = CompositionId::parse(raw)
        {
            errors.push(FieldError::new("parent_composition_id", e));
        }
        for (i, scene) in self.scenes.iter().flatten().enumerate() {
            let field = |name: &str| format!("scenes[{i}].{name}");
            match (&scene.prompt, &scene.asset_id) {
                (Some(_), Some(_)) => errors.push(FieldError::new(
                    field("asset_id"),
                    "give prompt or asset_id, not both",
                )),
                (None, None) => errors.push(FieldError::new(
                    field("prompt"),
                    "is required unless asset_id names an uploaded asset",
                )),
                (Some(prompt), None) => {
                    let chars = prompt.trim().chars().count();
                    if chars == 0 || chars > SCENE_PROMPT_MAX_CHARS {
                        errors.push(FieldError::new(
                            field("prompt"),
                            format!("must be 1 to {SCENE_PROMPT_MAX_CHARS} characters"),
                        ));
                    }
                }
                (None, Some(raw)) => {
                    if let Err(e) = crate::asset::AssetId::parse(raw) {
                        errors.push(FieldError::new(field("asset_id"), e));
                    }
                }
            }
            let repeated = self
                .scenes
                .iter()
                .flatten()
                .take(i)
                .any(|s| s.index == scene.index);
            match plan.scenes.iter_mut().find(|s| s.index == scene.index) {
                _ if repeated => errors.push(FieldError::new(field("index"), "is replaced twice")),
                // An asset's scene keeps its prompt: nothing is generated from it.
                Some(target) => {
                    if let Some(prompt) = &scene.prompt {
                        target.visual_prompt = prompt.trim().to_owned();
                    }
                }
                None => errors.push(FieldError::new(
                    field("index"),
                    format!("no scene {} (0..{})", scene.index, plan.scenes.len()),
                )),
            }
        }
        if let Some(order) = &self.order {
            let mut want: Vec<u32> = plan.scenes.iter().map(|s| s.index).collect();
            let mut got = order.clone();
            want.sort_unstable();
            got.sort_unstable();
            if want != got {
                errors.push(FieldError::new(
                    "order",
                    format!("must list each scene index once (0..{})", plan.scenes.len()),
                ));
            } else {
                let pos = |index: u32| {
                    plan.scenes
                        .iter()
                        .position(|s| s.index == index)
                        .expect("a permutation of the scenes")
                };
                let picks: Vec<usize> = order.iter().map(|&i| pos(i)).collect();
                plan.scenes = picks.iter().map(|&p| plan.scenes[p].clone()).collect();
                clip_keys = picks.iter().map(|&p| clip_keys[p].clone()).collect();
            }
        }
        if !errors.is_empty() {
            return Err(ValidationErrors { errors });
        }
        plan.total_frames = plan.composed_frames();
        Ok(Recomposition {
            request,
            plan,
            clip_keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_composition_id_is_the_jobs_own_and_parses() {
        let job = JobId::generate();
        let first = CompositionId::first_of(&job);
        assert_eq!(&first.as_str()[4..], &job.as_str()[4..]);
        assert_eq!(CompositionId::parse(first.as_str()), Ok(first.clone()));
        assert_eq!(CompositionId::first_of(&job), first, "deterministic");
        assert!(CompositionId::parse(job.as_str()).is_err());
        assert!(CompositionId::parse("cmp_../../x").is_err());
    }

    #[test]
    fn a_record_written_before_timelines_reads_as_a_jobs_version() {
        let job = JobId::generate();
        let old = serde_json::json!({
            "id": CompositionId::first_of(&job), "job_id": job, "owner": "o",
            "parent_composition_id": null, "status": "completed", "clip_keys": ["k"],
            "outputs": null, "error": null,
            "created_at": "2026-01-02T03:04:05Z", "updated_at": "2026-01-02T03:04:05Z",
        });
        let c: Composition = serde_json::from_value(old).expect("an old record reads");
        assert_eq!(c.job(), Ok(&job));
        assert_eq!(c.timeline, None);
        let t = Composition::timeline(
            CompositionId::generate(),
            "o",
            TimelineRender {
                duration_seconds: 2.0,
                total_frames: 48,
                route: ComposeRoute::Lambda,
                provider_calls: vec![],
            },
            Utc::now(),
        );
        let written = serde_json::to_value(&t).expect("encode");
        assert!(written.get("job_id").is_none(), "{written}");
        let back: Composition = serde_json::from_value(written).expect("decode");
        assert_eq!(back, t);
        assert!(back.job().is_err());
    }

    #[test]
    fn lineage_walks_parents_and_survives_a_cycle() {
        let job = JobId::generate();
        let now = Utc::now();
        let a = Composition::rendering(
            CompositionId::first_of(&job),
            job.clone(),
            "o",
            None,
            vec![],
            now,
        );
        let b = Composition::rendering(
            CompositionId::generate(),
            job.clone(),
            "o",
            Some(a.id.clone()),
            vec![],
            now,
        );
        let c = Composition::rendering(
            CompositionId::generate(),
            job.clone(),
            "o",
            Some(b.id.clone()),
            vec![],
            now,
        );
        let all = vec![a.clone(), b.clone(), c.clone()];
        let ids: Vec<_> = lineage(&all, &c.id).iter().map(|x| x.id.clone()).collect();
        assert_eq!(ids, vec![c.id.clone(), b.id.clone(), a.id.clone()]);
        let mut looped = a.clone();
        looped.parent_composition_id = Some(c.id.clone());
        let all = vec![looped, b, c.clone()];
        assert_eq!(lineage(&all, &c.id).len(), 3);
    }

    #[test]
    fn a_replaced_scene_takes_exactly_one_of_prompt_and_asset_id() {
        let request = crate::request::GenerationRequestBody {
            prompt: Some("A lake. A heron. Mist.".into()),
            duration_seconds: Some(6.0),
            aspect_ratio: Some("16:9".into()),
            clip_count: Some(3),
            ..Default::default()
        }
        .validate()
        .unwrap();
        let plan = crate::plan::RulesPlanner.plan(&request).unwrap();
        let keys = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let asset = "ast_0123456789abcdef0123456789abcdef";
        let edits = |scenes: Vec<SceneEdit>| RecomposeEdits {
            scenes: Some(scenes),
            ..Default::default()
        };
        let errors = edits(vec![
            SceneEdit {
                index: 0,
                prompt: Some("a boat".into()),
                asset_id: Some(asset.into()),
            },
            SceneEdit {
                index: 1,
                ..Default::default()
            },
            SceneEdit::asset(2, "ast_../x"),
        ])
        .apply(&request, &plan, &keys)
        .unwrap_err();
        let fields: Vec<&str> = errors.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "scenes[0].asset_id",
                "scenes[1].prompt",
                "scenes[2].asset_id"
            ]
        );

        // An asset's scene keeps its plan and clip: the compose is told which asset it shows.
        let done = edits(vec![SceneEdit::asset(1, asset)])
            .apply(&request, &plan, &keys)
            .unwrap();
        assert_eq!(done.plan, {
            let mut p = plan.clone();
            p.total_frames = p.composed_frames();
            p
        });
        let mut c = Composition::rendering(
            CompositionId::generate(),
            JobId::generate(),
            "o",
            None,
            keys.clone(),
            Utc::now(),
        );
        c.edits = Some(
            serde_json::to_value(edits(vec![
                SceneEdit::asset(1, asset),
                SceneEdit::prompt(2, "a boat"),
            ]))
            .unwrap(),
        );
        assert_eq!(c.replaced_scenes(), vec![2]);
        assert_eq!(
            c.asset_scenes(),
            vec![SceneAsset {
                scene_index: 1,
                asset_id: crate::asset::AssetId::parse(asset).unwrap()
            }]
        );
        // Edits recorded before asset_id existed still read.
        let old: RecomposeEdits =
            serde_json::from_value(serde_json::json!({"scenes": [{"index": 1, "prompt": "x"}]}))
                .unwrap();
        assert_eq!(old.scenes.unwrap()[0], SceneEdit::prompt(1, "x"));
    }
}

//! Scene planning: the plan's shape and the offline rules planner. The planner owns the length
//! arithmetic: clips overlap by the transition, so they add up to more than the video, and it
//! allocates whole frames so the composed video is exactly the requested length.

use crate::request::{GenerationRequest, MIN_SCENE_VISIBLE_SECONDS, PROMPT_MAX_CHARS, Transition};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SceneRole {
    /// Grabs attention: short, the prompt's first idea.
    Hook,
    Body,
    /// Lingers: the last idea and the close.
    Closing,
}

impl SceneRole {
    /// Relative screen time: the hook is quick, the closing lingers.
    pub fn weight(self) -> u32 {
        match self {
            SceneRole::Hook => 4,
            SceneRole::Body => 5,
            SceneRole::Closing => 6,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    pub index: u32,
    pub role: SceneRole,
    /// What the clip provider is asked to render.
    pub visual_prompt: String,
    /// On-screen text for the scene (shown when captions are on).
    pub caption: String,
    /// What a narrator says over the scene: the scene's whole part of the prompt, where the
    /// caption may be shortened to fit the screen.
    #[serde(default)]
    pub narration: String,
    /// Relative screen time the planner asked for; `frames` is what the arithmetic made of it.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Length of the clip in frames, including the parts that overlap its neighbours.
    pub frames: u32,
    /// The narration as spoken, when the video is narrated and this scene has its own line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speech: Option<crate::narration::SceneSpeech>,
}

fn default_weight() -> u32 {
    SceneRole::Body.weight()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Which planner made it (`rules`, `bedrock` or `openai`).
    pub planner: String,
    /// Set when an LLM planner was asked and the rules plan was used instead: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    pub scenes: Vec<Scene>,
    pub fps: u32,
    pub transition: Transition,
    /// Frames of the composed video: the sum of the clips minus every overlap.
    pub total_frames: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narration: Option<crate::narration::PlanNarration>,
}

impl Plan {
    pub fn overlap_frames(&self) -> u32 {
        if self.scenes.len() > 1 {
            (self.transition.duration_seconds * self.fps as f64).round() as u32
        } else {
            0
        }
    }

    /// Composed length implied by the clips: what the composer will produce.
    pub fn composed_frames(&self) -> u32 {
        let sum: u32 = self.scenes.iter().map(|s| s.frames).sum();
        sum - self.overlap_frames() * (self.scenes.len() as u32).saturating_sub(1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("{scenes} scenes of at least {min_frames} frames cannot fill {total_frames} frames")]
    DoesNotFit {
        scenes: u32,
        min_frames: u32,
        total_frames: u32,
    },
    #[error("planner unavailable: {0}")]
    Unavailable(String),
    #[error("planner returned an unusable plan: {0}")]
    Invalid(String),
    /// The narration cannot be spoken in the video even at the fastest tempo allowed:
    /// `speech_ms` is its length at that tempo.
    #[error(
        "the narration needs {:.1} s even spoken {max_tempo_percent}% as fast, but the video has room for {:.1} s of speech: lengthen the video or shorten the text",
        *speech_ms as f64 / 1000.0,
        *room_ms as f64 / 1000.0
    )]
    NarrationTooLong {
        speech_ms: u32,
        room_ms: u32,
        max_tempo_percent: u32,
    },
}

/// Splits `total_frames + (n-1)*overlap` frames over the scenes in proportion to their weights
/// (largest-remainder rounding, so the sum is exact); the composed video is then exactly
/// `total_frames` long. Every scene keeps `min_visible` frames of its own: the first and last
/// clips share one overlap with a neighbour, the middle ones two, so two transitions never
/// overlap each other.
pub fn allocate_frames(
    total_frames: u32,
    overlap: u32,
    min_visible: u32,
    weights: &[u32],
) -> Result<Vec<u32>, PlanError> {
    let floors = vec![min_visible; weights.len()];
    allocate_frames_with_floors(total_frames, overlap, &floors, weights)
}

/// [`allocate_frames`] with a floor per scene: scene `i` keeps at least `min_visible[i]` frames
/// of its own, and the rest is shared by weight. Narration uses it to give a scene room for its
/// speech.
pub fn allocate_frames_with_floors(
    total_frames: u32,
    overlap: u32,
    min_visible: &[u32],
    weights: &[u32],
) -> Result<Vec<u32>, PlanError> {
    let n = weights.len() as u32;
    let overlap = if n > 1 { overlap } else { 0 };
    let floor_of = |i: usize| {
        let neighbours = (i > 0) as u32 + ((i as u32) + 1 < n) as u32;
        min_visible[i] + neighbours * overlap
    };
    let min_visible = min_visible.iter().copied().min().unwrap_or(0);
    let sum = total_frames as u64 + (n.saturating_sub(1) * overlap) as u64;
    let base_total: u64 = (0..weights.len()).map(|i| floor_of(i) as u64).sum();
    if n == 0 || sum < base_total {
        return Err(PlanError::DoesNotFit {
            scenes: n,
            min_frames: min_visible + 2 * overlap,
            total_frames,
        });
    }
    let spare = sum - base_total;
    let weight_sum: u64 = weights.iter().map(|&w| w.max(1) as u64).sum();
    let mut frames: Vec<u64> = Vec::with_capacity(weights.len());
    let mut remainders: Vec<(u64, usize)> = Vec::with_capacity(weights.len());
    for (i, &w) in weights.iter().enumerate() {
        let share = spare * w.max(1) as u64;
        frames.push(floor_of(i) as u64 + share / weight_sum);
        remainders.push((share % weight_sum, i));
    }
    let mut left = sum - frames.iter().sum::<u64>();
    // Larger remainders first; ties go to the later scene so the closing lingers.
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    for (_, i) in remainders {
        if left == 0 {
            break;
        }
        frames[i] += 1;
        left -= 1;
    }
    Ok(frames.into_iter().map(|f| f as u32).collect())
}

/// The offline, deterministic planner: splits the prompt into ideas and lays them out as a hook,
/// a body and a closing.
#[derive(Debug, Clone, Default)]
pub struct RulesPlanner;

const SHOTS: [&str; 6] = [
    "wide establishing shot",
    "slow push-in",
    "close-up detail",
    "tracking shot",
    "overhead view",
    "gentle pan",
];
const CAPTION_MAX_CHARS: usize = 70;

/// The rules planner is pure, so it is the `Planner` port as it stands: runners hold it beside
/// LLM planners without knowing which one they have.
#[async_trait::async_trait]
impl crate::ports::Planner for RulesPlanner {
    fn name(&self) -> &str {
        RulesPlanner::NAME
    }

    async fn plan(&self, request: &GenerationRequest) -> Result<Plan, PlanError> {
        RulesPlanner::plan(self, request)
    }
}

impl RulesPlanner {
    pub const NAME: &'static str = "rules";

    pub fn plan(&self, request: &GenerationRequest) -> Result<Plan, PlanError> {
        let n = request.clip_count.get() as usize;
        let ideas = split_ideas(request.prompt.as_str());
        let groups = group_ideas(&ideas, n);
        let draft = PlanDraft {
            scenes: (0..n)
                .map(|i| {
                    let role = role_of(i, n);
                    // With fewer ideas than scenes an idea spans consecutive scenes, each with
                    // another shot; with more, neighbouring ideas share a scene, never dropped.
                    let text = &groups[i];
                    let mood = match role {
                        SceneRole::Hook => "striking opening",
                        SceneRole::Body => "steady",
                        SceneRole::Closing => "resolving finale",
                    };
                    DraftScene {
                        visual_prompt: format!("{text}, {}, {mood}", SHOTS[i % SHOTS.len()]),
                        caption: caption_for(text),
                        narration: text.clone(),
                        weight: role.weight(),
                    }
                })
                .collect(),
        };
        draft.into_plan(Self::NAME, request)
    }
}

fn role_of(i: usize, n: usize) -> SceneRole {
    match (i, n) {
        (_, 1) => SceneRole::Body,
        (0, _) => SceneRole::Hook,
        (i, n) if i == n - 1 => SceneRole::Closing,
        _ => SceneRole::Body,
    }
}

/// `n` scene texts covering every idea in order: consecutive ideas are joined when there are
/// more ideas than scenes (balanced, earlier scenes take the extra), and an idea repeats over
/// consecutive scenes when there are fewer.
fn group_ideas(ideas: &[String], n: usize) -> Vec<String> {
    if ideas.len() <= n {
        return (0..n).map(|i| ideas[i * ideas.len() / n].clone()).collect();
    }
    let (per, extra) = (ideas.len() / n, ideas.len() % n);
    let mut rest = ideas;
    (0..n)
        .map(|i| {
            let take = per + usize::from(i < extra);
            let (mine, later) = rest.split_at(take);
            rest = later;
            join_sentences(mine)
        })
        .collect()
}

fn join_sentences(parts: &[String]) -> String {
    parts
        .iter()
        .map(|p| {
            let ends = p.ends_with(['.', '!', '?', '。', '！', '？', '…']);
            if ends { p.clone() } else { format!("{p}.") }
        })
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches('.')
        .to_owned()
}

/// Limits on what any planner may put in a scene, so a runaway LLM cannot hand the provider or
/// the caption renderer an essay.
/// A scene may carry the whole prompt (one scene), joined back with its punctuation.
pub const NARRATION_MAX_CHARS: usize = 2 * PROMPT_MAX_CHARS;
pub const VISUAL_PROMPT_MAX_CHARS: usize = NARRATION_MAX_CHARS + 200;
pub const CAPTION_LIMIT_CHARS: usize = 120;
pub const WEIGHT_MAX: u32 = 100;

/// One scene as a planner proposes it, before the frame arithmetic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DraftScene {
    pub visual_prompt: String,
    pub caption: String,
    pub narration: String,
    /// Relative length, 1..=100.
    pub weight: u32,
}

/// What a planner (the rules, or an LLM through structured output) proposes: the scenes and
/// their relative weights. [`PlanDraft::into_plan`] checks it and turns weights into frames, so
/// the total is exactly the request's whatever the planner said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanDraft {
    pub scenes: Vec<DraftScene>,
}

impl PlanDraft {
    /// The JSON Schema an LLM's structured output must match, with the scene count fixed.
    pub fn json_schema(scenes: u32) -> serde_json::Value {
        let text =
            |max: usize| serde_json::json!({"type": "string", "minLength": 1, "maxLength": max});
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["scenes"],
            "properties": {
                "scenes": {
                    "type": "array",
                    "minItems": scenes,
                    "maxItems": scenes,
                    "items": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["visual_prompt", "caption", "narration", "weight"],
                        "properties": {
                            "visual_prompt": text(VISUAL_PROMPT_MAX_CHARS),
                            "caption": text(CAPTION_LIMIT_CHARS),
                            "narration": text(NARRATION_MAX_CHARS),
                            "weight": {"type": "integer", "minimum": 1, "maximum": WEIGHT_MAX}
                        }
                    }
                }
            }
        })
    }

    /// Parses an LLM's answer: the draft itself, or the draft inside a ```json fence, as some
    /// models add one even when told not to.
    pub fn parse(text: &str) -> Result<Self, PlanError> {
        let trimmed = text.trim();
        let body = trimmed
            .strip_prefix("```json")
            .or_else(|| trimmed.strip_prefix("```"))
            .and_then(|t| t.strip_suffix("```"))
            .unwrap_or(trimmed);
        serde_json::from_str(body.trim())
            .map_err(|e| PlanError::Invalid(format!("not a plan: {e}")))
    }

    /// Checks every scene and allocates frames by weight; the plan then has exactly the
    /// request's scenes and frames.
    pub fn into_plan(self, planner: &str, request: &GenerationRequest) -> Result<Plan, PlanError> {
        let wanted = request.clip_count.get() as usize;
        if self.scenes.len() != wanted {
            return Err(PlanError::Invalid(format!(
                "{} scenes; the request asks for {wanted}",
                self.scenes.len()
            )));
        }
        for (i, s) in self.scenes.iter().enumerate() {
            for (field, value, max) in [
                ("visual_prompt", &s.visual_prompt, VISUAL_PROMPT_MAX_CHARS),
                ("caption", &s.caption, CAPTION_LIMIT_CHARS),
                ("narration", &s.narration, NARRATION_MAX_CHARS),
            ] {
                let chars = value.trim().chars().count();
                if chars == 0 {
                    return Err(PlanError::Invalid(format!("scenes[{i}].{field} is empty")));
                }
                if chars > max {
                    return Err(PlanError::Invalid(format!(
                        "scenes[{i}].{field} has {chars} characters; at most {max}"
                    )));
                }
            }
            if !(1..=WEIGHT_MAX).contains(&s.weight) {
                return Err(PlanError::Invalid(format!(
                    "scenes[{i}].weight is {}; it must be 1..={WEIGHT_MAX}",
                    s.weight
                )));
            }
        }
        let fps = request.fps.get();
        let weights: Vec<u32> = self.scenes.iter().map(|s| s.weight).collect();
        let frames = allocate_frames(
            request.total_frames(),
            request.transition.overlap_frames(request.fps),
            MIN_SCENE_VISIBLE_SECONDS * fps,
            &weights,
        )?;
        let n = self.scenes.len();
        let scenes = self
            .scenes
            .into_iter()
            .zip(frames)
            .enumerate()
            .map(|(i, (s, frames))| Scene {
                index: i as u32,
                role: role_of(i, n),
                visual_prompt: s.visual_prompt.trim().to_owned(),
                caption: s.caption.trim().to_owned(),
                narration: s.narration.trim().to_owned(),
                weight: s.weight,
                frames,
                speech: None,
            })
            .collect();
        Ok(Plan {
            planner: planner.to_owned(),
            fallback: None,
            scenes,
            fps,
            transition: request.transition,
            total_frames: request.total_frames(),
            narration: None,
        })
    }
}

/// Sentences first, then clauses, so a one-sentence prompt still yields several ideas.
fn split_ideas(prompt: &str) -> Vec<String> {
    let clean = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let sentences: Vec<String> = prompt
        .split(['.', '!', '?', '\n', '。', '！', '？'])
        .map(clean)
        .filter(|s| has_words(s))
        .collect();
    let ideas: Vec<String> = if sentences.len() > 1 {
        sentences
    } else {
        prompt
            .split([',', ';', ':', '，', '；'])
            .map(clean)
            .filter(|s| has_words(s))
            .collect()
    };
    if ideas.is_empty() {
        vec![clean(prompt)]
    } else {
        ideas
    }
}

/// A fragment of punctuation alone ("." left after the last comma) is no idea: joined into a
/// scene it would leave the scene's caption empty once sentence stops are trimmed.
fn has_words(fragment: &str) -> bool {
    fragment
        .chars()
        .any(|c| !(c.is_whitespace() || c.is_ascii_punctuation() || "。！？…，；：、".contains(c)))
}

fn caption_for(idea: &str) -> String {
    if idea.chars().count() <= CAPTION_MAX_CHARS {
        return idea.to_owned();
    }
    // Cut at a word boundary where there is one, so captions never end mid-word.
    let cut: String = idea.chars().take(CAPTION_MAX_CHARS - 1).collect();
    let cut = match cut.rfind(' ') {
        Some(pos) if pos > CAPTION_MAX_CHARS / 2 => cut[..pos].to_owned(),
        _ => cut,
    };
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossfades_lengthen_the_clips_by_their_overlap() {
        let f = allocate_frames(300, 15, 30, &[4, 5, 6]).unwrap();
        assert_eq!(f.iter().sum::<u32>(), 300 + 2 * 15);
        assert!(f[0] >= 45 && f[1] >= 60 && f[2] >= 45, "{f:?}");
    }

    #[test]
    fn too_many_scenes_do_not_fit() {
        assert!(allocate_frames(150, 15, 30, &[5; 5]).is_err());
    }

    fn request(prompt: &str, seconds: u32, clips: u32) -> GenerationRequest {
        let body: crate::request::GenerationRequestBody = serde_json::from_value(serde_json::json!({
            "prompt": prompt, "duration_seconds": seconds, "clip_count": clips, "aspect_ratio": "16:9"
        }))
        .unwrap();
        body.validate().unwrap()
    }

    #[test]
    fn three_sentences_in_two_scenes_are_all_kept() {
        let r = request("A fox wakes. It hunts at dawn. The snow falls.", 10, 2);
        let plan = RulesPlanner.plan(&r).unwrap();
        assert_eq!(plan.scenes.len(), 2);
        assert_eq!(plan.scenes[0].narration, "A fox wakes. It hunts at dawn");
        assert_eq!(plan.scenes[1].narration, "The snow falls");
        assert_eq!(plan.composed_frames(), r.total_frames());
    }

    #[test]
    fn an_llm_draft_with_the_wrong_count_or_an_empty_field_is_refused() {
        let r = request("One. Two.", 10, 2);
        let scene = |caption: &str| DraftScene {
            visual_prompt: "v".into(),
            caption: caption.into(),
            narration: "n".into(),
            weight: 3,
        };
        let one = PlanDraft {
            scenes: vec![scene("a")],
        };
        assert!(
            matches!(one.into_plan("openai", &r), Err(PlanError::Invalid(m)) if m.contains("1 scenes"))
        );
        let empty = PlanDraft {
            scenes: vec![scene("a"), scene(" ")],
        };
        assert!(
            matches!(empty.into_plan("openai", &r), Err(PlanError::Invalid(m)) if m == "scenes[1].caption is empty")
        );
        let good = PlanDraft {
            scenes: vec![
                scene("a"),
                DraftScene {
                    weight: 9,
                    ..scene("b")
                },
            ],
        };
        let plan = good.into_plan("openai", &r).unwrap();
        assert_eq!(plan.composed_frames(), r.total_frames());
        assert!(plan.scenes[1].frames > plan.scenes[0].frames);
    }

    #[test]
    fn a_fenced_answer_parses_and_prose_does_not() {
        let d = PlanDraft::parse("```json\n{\"scenes\": []}\n```").unwrap();
        assert!(d.scenes.is_empty());
        assert!(PlanDraft::parse("Sure! Here is your plan").is_err());
    }

    proptest::proptest! {
        /// Every sentence of the prompt reaches the narration of some scene, in order, however
        /// many scenes there are.
        #[test]
        fn no_sentence_is_ever_dropped(
            sentences in proptest::collection::vec("[A-Za-z][a-z ]{0,20}[a-z]", 1..12),
            clips in 1u32..=6,
        ) {
            let prompt = sentences.iter().map(|s| format!("{s}.")).collect::<Vec<_>>().join(" ");
            let r = request(&prompt, 30, clips);
            let plan = RulesPlanner.plan(&r).unwrap();
            proptest::prop_assert_eq!(plan.scenes.len() as u32, clips);
            proptest::prop_assert_eq!(plan.composed_frames(), r.total_frames());
            let spoken: String = plan.scenes.iter().map(|s| s.narration.as_str()).collect::<Vec<_>>().join(" ");
            let mut from = 0;
            for s in &sentences {
                let clean = s.split_whitespace().collect::<Vec<_>>().join(" ");
                let at = spoken[from..].find(&clean);
                proptest::prop_assert!(at.is_some(), "{clean:?} missing from {spoken:?}");
                from += at.unwrap() + clean.len();
            }
        }
    }

    #[test]
    fn punctuation_alone_is_not_a_scene() {
        // Found by the planning property test: the clause after the last comma was ".", it
        // joined the last scene alone, and the scene's caption trimmed to nothing.
        let r = request("A,a,a,a,a,a,A,.", 37, 7);
        let plan = RulesPlanner.plan(&r).expect("plans");
        assert!(plan.scenes.iter().all(|s| !s.caption.is_empty()));
        assert_eq!(split_ideas("Sun, sea; ... , !"), vec!["Sun", "sea"]);
        assert_eq!(split_ideas("..."), vec!["..."]);
    }

    #[test]
    fn long_captions_end_on_a_word() {
        let c = caption_for(&"word ".repeat(40));
        assert!(c.ends_with("word…"), "{c}");
        assert!(c.chars().count() <= CAPTION_MAX_CHARS);
    }
}

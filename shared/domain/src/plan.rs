//! Scene planning: the plan's shape and the offline rules planner. The planner owns the length
//! arithmetic: clips overlap by the transition, so they add up to more than the video, and it
//! allocates whole frames so the composed video is exactly the requested length.

use crate::request::{GenerationRequest, MIN_SCENE_VISIBLE_SECONDS, Transition};
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
    /// Length of the clip in frames, including the parts that overlap its neighbours.
    pub frames: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Which planner made it (`rules`, or an LLM's name).
    pub planner: String,
    pub scenes: Vec<Scene>,
    pub fps: u32,
    pub transition: Transition,
    /// Frames of the composed video: the sum of the clips minus every overlap.
    pub total_frames: u32,
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
    let n = weights.len() as u32;
    let overlap = if n > 1 { overlap } else { 0 };
    let floor_of = |i: usize| {
        let neighbours = (i > 0) as u32 + ((i as u32) + 1 < n) as u32;
        min_visible + neighbours * overlap
    };
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
        let roles: Vec<SceneRole> = (0..n)
            .map(|i| match (i, n) {
                (_, 1) => SceneRole::Body,
                (0, _) => SceneRole::Hook,
                (i, n) if i == n - 1 => SceneRole::Closing,
                _ => SceneRole::Body,
            })
            .collect();
        let weights: Vec<u32> = roles.iter().map(|r| r.weight()).collect();
        let fps = request.fps.get();
        let overlap = request.transition.overlap_frames(request.fps);
        let frames = allocate_frames(
            request.total_frames(),
            overlap,
            MIN_SCENE_VISIBLE_SECONDS * fps,
            &weights,
        )?;

        let scenes = roles
            .iter()
            .zip(frames)
            .enumerate()
            .map(|(i, (&role, frames))| {
                // Spread the ideas over the scenes in order; with fewer ideas than scenes each
                // idea spans consecutive scenes with different shots.
                let idea = &ideas[i * ideas.len() / n];
                let shot = SHOTS[i % SHOTS.len()];
                let mood = match role {
                    SceneRole::Hook => "striking opening",
                    SceneRole::Body => "steady",
                    SceneRole::Closing => "resolving finale",
                };
                Scene {
                    index: i as u32,
                    role,
                    visual_prompt: format!("{idea}, {shot}, {mood}"),
                    caption: caption_for(idea),
                    frames,
                }
            })
            .collect();
        Ok(Plan {
            planner: Self::NAME.into(),
            scenes,
            fps,
            transition: request.transition,
            total_frames: request.total_frames(),
        })
    }
}

/// Sentences first, then clauses, so a one-sentence prompt still yields several ideas.
fn split_ideas(prompt: &str) -> Vec<String> {
    let clean = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let sentences: Vec<String> = prompt
        .split(['.', '!', '?', '\n', '。', '！', '？'])
        .map(clean)
        .filter(|s| !s.is_empty())
        .collect();
    let ideas: Vec<String> = if sentences.len() > 1 {
        sentences
    } else {
        prompt
            .split([',', ';', ':', '，', '；'])
            .map(clean)
            .filter(|s| !s.is_empty())
            .collect()
    };
    if ideas.is_empty() {
        vec![clean(prompt)]
    } else {
        ideas
    }
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

    #[test]
    fn long_captions_end_on_a_word() {
        let c = caption_for(&"word ".repeat(40));
        assert!(c.ends_with("word…"), "{c}");
        assert!(c.chars().count() <= CAPTION_MAX_CHARS);
    }
}

//! The `Planner` conformance suite: whatever plans the scenes (the rules, or an LLM behind a
//! local fake) returns exactly the request's scenes, indexed in order, every field filled, and
//! frames that compose to exactly the requested length.

use vidpipe_domain::ports::Planner;
use vidpipe_domain::request::GenerationRequest;

pub async fn run_all(planner: &dyn Planner, request: &GenerationRequest) {
    let name = planner.name();
    let plan = planner
        .plan(request)
        .await
        .unwrap_or_else(|e| panic!("{name}: planning failed: {e}"));
    assert_eq!(plan.planner, name, "the plan names its planner");
    assert_eq!(
        plan.scenes.len(),
        request.clip_count.get() as usize,
        "{name}: scene count"
    );
    for (i, scene) in plan.scenes.iter().enumerate() {
        assert_eq!(scene.index as usize, i, "{name}: scenes in order");
        for (field, value) in [
            ("visual_prompt", &scene.visual_prompt),
            ("caption", &scene.caption),
            ("narration", &scene.narration),
        ] {
            assert!(
                !value.trim().is_empty(),
                "{name}: scene {i} has an empty {field}"
            );
        }
        assert!(scene.frames > 0, "{name}: scene {i} has no frames");
    }
    assert_eq!(
        plan.total_frames,
        request.total_frames(),
        "{name}: total frames"
    );
    assert_eq!(
        plan.composed_frames(),
        request.total_frames(),
        "{name}: the clips must compose to exactly the requested length"
    );
}

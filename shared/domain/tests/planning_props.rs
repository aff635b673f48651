//! Property tests for the planner's length arithmetic: whatever the duration, rate, scene count
//! and transition, the clips minus their overlaps add up to exactly the requested frames, every
//! scene gets its minimum screen time, and the timeline's transitions land where the clips meet.

use proptest::prelude::*;
use vidpipe_domain::plan::{RulesPlanner, allocate_frames};
use vidpipe_domain::request::{GenerationRequestBody, MIN_SCENE_VISIBLE_SECONDS, TransitionKind};
use vidpipe_domain::timeline::Timeline;

fn transition_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "cut",
        "fade",
        "dissolve",
        "wipeleft",
        "slideup",
        "circleopen",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn allocation_is_exact_and_respects_minimums(
        total in 1u32..20_000,
        overlap in 0u32..60,
        min_visible in 1u32..60,
        weights in prop::collection::vec(1u32..10, 1..20),
    ) {
        let n = weights.len() as u32;
        let effective_overlap = if n > 1 { overlap } else { 0 };
        match allocate_frames(total, overlap, min_visible, &weights) {
            Ok(frames) => {
                prop_assert_eq!(frames.len() as u32, n);
                let sum: u64 = frames.iter().map(|&f| f as u64).sum();
                prop_assert_eq!(sum, total as u64 + ((n - 1) * effective_overlap) as u64);
                // Every scene keeps its own screen time outside the overlaps it shares.
                for (i, &f) in frames.iter().enumerate() {
                    let shared = ((i > 0) as u32 + (i + 1 < frames.len()) as u32) * effective_overlap;
                    prop_assert!(f >= min_visible + shared, "scene {} has {} frames", i, f);
                }
            }
            Err(_) => {
                // Refused only when the minimums truly cannot fit.
                let needed = n as u64 * min_visible as u64 + 2 * (n as u64 - 1) * effective_overlap as u64;
                prop_assert!((total as u64 + ((n - 1) * effective_overlap) as u64) < needed);
            }
        }
    }

    #[test]
    fn every_valid_request_plans_to_its_exact_length(
        duration in 5u32..=300,
        fps in prop::sample::select(vec![24i64, 25, 30]),
        clips in prop::option::of(1i64..=20),
        transition in transition_name(),
        tenths in 1u32..=20,
        prompt in "[a-zA-Z ,.]{1,120}",
    ) {
        prop_assume!(!prompt.trim().is_empty());
        let body = GenerationRequestBody {
            prompt: Some(prompt),
            duration_seconds: Some(duration as f64),
            aspect_ratio: Some("16:9".into()),
            fps: Some(fps),
            clip_count: clips,
            transition: Some(transition.into()),
            transition_duration_seconds: (transition != "cut").then_some(tenths as f64 / 10.0),
            ..Default::default()
        };
        let Ok(request) = body.validate() else {
            // Only an explicit scene count that cannot fit may be refused.
            prop_assert!(clips.is_some());
            return Ok(());
        };
        let plan = RulesPlanner.plan(&request).expect("a validated request always plans");
        let fps = fps as u32;
        prop_assert_eq!(plan.scenes.len(), request.clip_count.get() as usize);
        prop_assert_eq!(plan.composed_frames(), duration * fps);
        let overlap = plan.overlap_frames();
        let last_index = plan.scenes.len() - 1;
        for (i, s) in plan.scenes.iter().enumerate() {
            let shared = ((i > 0) as u32 + (i < last_index) as u32) * overlap;
            prop_assert!(s.frames >= MIN_SCENE_VISIBLE_SECONDS * fps + shared);
            prop_assert!(!s.visual_prompt.is_empty());
        }

        let keys: Vec<String> = (0..plan.scenes.len()).map(|i| format!("c/{i}")).collect();
        let t = Timeline::build(&request, &plan, &keys, None, None);
        prop_assert_eq!(t.total_frames, duration * fps);
        let last = t.clips.last().unwrap();
        prop_assert_eq!(last.start_frame + last.frames, t.total_frames);
        let offsets = t.xfade_offsets();
        if request.transition.kind == TransitionKind::Cut || plan.scenes.len() == 1 {
            prop_assert!(offsets.is_empty());
        } else {
            prop_assert_eq!(offsets.len(), plan.scenes.len() - 1);
            // Each transition starts `overlap` frames before the merged clips so far end.
            let mut merged = t.clips[0].frames;
            for (k, off) in offsets.iter().enumerate() {
                let expected = (merged - overlap) as f64 / fps as f64;
                prop_assert!((off - expected).abs() < 1e-9);
                merged += t.clips[k + 1].frames - overlap;
            }
            prop_assert_eq!(merged, t.total_frames);
        }
        // Captions never overlap and stay inside the video.
        for w in t.captions.windows(2) {
            prop_assert!(w[0].end_seconds <= w[1].start_seconds + 1e-9);
        }
        if let Some(last) = t.captions.last() {
            prop_assert!(last.end_seconds <= t.duration_seconds + 1e-9);
        }
        prop_assert!(t.thumbnail_seconds < t.duration_seconds);
    }
}

//! Recompose on one machine: a finished job's clips laid out again as new versions, with no
//! provider call (counted), each version judged by ffprobe and naming its parent.

use async_trait::async_trait;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use vidpipe_domain::composition::{CompositionStatus, RecomposeEdits, lineage};
use vidpipe_domain::media::ClipSpec;
use vidpipe_domain::ports::{ClipProvider, ProviderError};
use vidpipe_domain::request::GenerationRequestBody;
use vidpipe_domain::{CompositionId, JobStatus};
use vidpipe_media::ProceduralProvider;
use vidpipe_pipeline::generation::recompose::{self, RecomposeError};
use vidpipe_tests::*;

const OWNER: &str = "local";

/// Renders procedurally and counts every call: the clip cache sits in front of it, so a call
/// here is a clip the pipeline asked a provider for.
struct Counting {
    calls: AtomicU32,
    inner: ProceduralProvider,
}

#[async_trait]
impl ClipProvider for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    async fn generate(&self, spec: &ClipSpec, dest: &Path) -> Result<(), ProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.generate(spec, dest).await
    }
}

/// A directory whose `ffmpeg` logs each run's arguments (one line a run) to the returned file and
/// then execs the real one, so a test counts the processes the pipeline starts.
fn counting_ffmpeg(home: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let real = tools();
    let bin = home.join("counted-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = home.join("ffmpeg-runs.log");
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
        log.display(),
        real.ffmpeg.display()
    );
    let wrapper = bin.join("ffmpeg");
    std::fs::write(&wrapper, script).unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(&real.ffprobe, bin.join("ffprobe")).unwrap();
    (bin, log)
}

/// The media runs logged so far; `-version` (asked for the tool versions) renders nothing.
fn ffmpeg_runs(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.trim() != "-version")
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recompose_to_portrait_calls_no_provider_and_versions_chain() {
    let home = tempfile::tempdir().unwrap();
    let provider = Arc::new(Counting {
        calls: AtomicU32::new(0),
        inner: ProceduralProvider::new(tools()),
    });
    let (bin, ffmpeg_log) = counting_ffmpeg(home.path());
    let stack = stack_with_options(
        home.path(),
        vidpipe_pipeline::local::LocalOptions {
            ffmpeg_dir: Some(bin),
            max_concurrency: 2,
            ..Default::default()
        },
        Some(provider.clone()),
    )
    .await;
    let body = GenerationRequestBody {
        prompt: Some("Harbour at dusk. Boats come in. Lights go on.".into()),
        duration_seconds: Some(6.0),
        aspect_ratio: Some("16:9".into()),
        resolution: Some("1080p".into()),
        fps: Some(24),
        clip_count: Some(3),
        ..Default::default()
    };
    let s = stack.service().submit(OWNER, &body, None).await.unwrap();
    let job = stack
        .orchestrator()
        .wait(&s.job().id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, JobStatus::Completed);
    let generated = provider.calls.load(Ordering::SeqCst);
    assert_eq!(generated, 3, "one call per scene to make the job");
    let deps = stack.deps();
    let first = CompositionId::first_of(&job.id);

    // To 9:16: the same clips, fitted; no provider call at all.
    let edits = RecomposeEdits {
        aspect_ratio: Some("9:16".into()),
        ..Default::default()
    };
    let prepared = recompose::prepare(deps, OWNER, &job.id, &edits)
        .await
        .unwrap();
    assert_eq!(prepared.status, CompositionStatus::Rendering);
    assert_eq!(prepared.parent_composition_id.as_ref(), Some(&first));
    let before = ffmpeg_runs(&ffmpeg_log);
    let portrait = recompose::render(deps, &prepared, &|_| {}).await.unwrap();
    let runs = &ffmpeg_runs(&ffmpeg_log)[before.len()..];
    assert_eq!(
        runs.len(),
        1,
        "the clips are refitted inside the one compose: {runs:#?}"
    );
    assert!(
        runs[0].contains("crop=w=608:h=1080,scale=w=1080:h=1920:flags=bilinear"),
        "each 16:9 clip covers the 9:16 frame: {}",
        runs[0]
    );
    assert_eq!(
        provider.calls.load(Ordering::SeqCst),
        generated,
        "0 provider calls"
    );
    let o = portrait.outputs.clone().unwrap();
    assert!(
        o.final_key
            .starts_with(&format!("compositions/{}/", portrait.id))
    );
    let f = probe(&stack.blob_path(&o.final_key));
    assert_eq!((f.width, f.height), (1080, 1920));
    assert_eq!(f.video_frames, Some(144), "6 s at 24 fps, as the parent");
    assert_eq!(
        (f.video_codec.as_str(), f.pix_fmt.as_str()),
        ("h264", "yuv420p")
    );
    let thumb = probe(&stack.blob_path(&o.thumbnail_key));
    assert_eq!((thumb.width, thumb.height), (360, 640));
    // The parent's files are untouched: the job's first version is still 16:9.
    let parent = probe(&stack.blob_path(&job.outputs.clone().unwrap().final_key));
    assert_eq!((parent.width, parent.height), (1920, 1080));

    // From the portrait version: cut instead of fade, scenes reversed. Still no provider call,
    // and the cut makes it longer by the two overlaps the fades took.
    let edits = RecomposeEdits {
        transition: Some("cut".into()),
        order: Some(vec![2, 1, 0]),
        parent_composition_id: Some(portrait.id.to_string()),
        ..Default::default()
    };
    let prepared = recompose::prepare(deps, OWNER, &job.id, &edits)
        .await
        .unwrap();
    let reordered = recompose::render(deps, &prepared, &|_| {}).await.unwrap();
    assert_eq!(
        provider.calls.load(Ordering::SeqCst),
        generated,
        "0 provider calls"
    );
    let plan = job.plan.clone().unwrap();
    let clip_frames: u32 = plan.scenes.iter().map(|s| s.frames).sum();
    let f = probe(&stack.blob_path(&reordered.outputs.clone().unwrap().final_key));
    assert_eq!(
        (f.width, f.height),
        (1080, 1920),
        "the parent's aspect is kept"
    );
    assert_eq!(f.video_frames, Some(u64::from(clip_frames)));
    let mut reversed = portrait.clip_keys.clone();
    reversed.reverse();
    assert_eq!(reordered.clip_keys, reversed);

    // The versions list: oldest first, each naming its parent, back to the job's first.
    let versions = deps.jobs.compositions(&job.id).await.unwrap();
    let ids: Vec<_> = versions.iter().map(|c| c.id.clone()).collect();
    assert_eq!(
        ids,
        vec![first.clone(), portrait.id.clone(), reordered.id.clone()]
    );
    assert!(
        versions
            .iter()
            .all(|c| c.status == CompositionStatus::Completed)
    );
    let chain: Vec<_> = lineage(&versions, &reordered.id)
        .iter()
        .map(|c| c.id.clone())
        .collect();
    assert_eq!(chain, vec![reordered.id, portrait.id, first]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_edits_are_refused_by_field_before_anything_is_recorded() {
    let home = tempfile::tempdir().unwrap();
    let stack = stack(home.path()).await;
    let body = GenerationRequestBody {
        prompt: Some("A kite over a beach".into()),
        duration_seconds: Some(5.0),
        aspect_ratio: Some("16:9".into()),
        resolution: Some("720p".into()),
        clip_count: Some(2),
        ..Default::default()
    };
    let s = stack.service().submit(OWNER, &body, None).await.unwrap();
    let job = stack
        .orchestrator()
        .wait(&s.job().id)
        .await
        .unwrap()
        .unwrap();
    let deps = stack.deps();
    let edits = RecomposeEdits {
        aspect_ratio: Some("2:1".into()),
        transition: Some("spin".into()),
        order: Some(vec![0, 0]),
        music_asset_id: Some("nope".into()),
        ..Default::default()
    };
    match recompose::prepare(deps, OWNER, &job.id, &edits).await {
        Err(RecomposeError::Invalid(v)) => {
            for field in ["aspect_ratio", "transition", "order", "music_asset_id"] {
                assert!(v.names(field), "{field} named in {v:?}");
            }
        }
        other => panic!("expected invalid edits: {other:?}"),
    }
    match recompose::prepare(deps, "someone-else", &job.id, &RecomposeEdits::default()).await {
        Err(RecomposeError::JobNotFound(_)) => {}
        other => panic!("another tenant's job: {other:?}"),
    }
    assert_eq!(deps.jobs.compositions(&job.id).await.unwrap().len(), 1);
}

/// Replacing one scene generates that scene alone (one provider call, counted), leaves the job's
/// own clip of it alone, and a second version asking for the same prompt finds it in the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_one_scene_calls_the_provider_once() {
    let home = tempfile::tempdir().unwrap();
    let provider = Arc::new(Counting {
        calls: AtomicU32::new(0),
        inner: ProceduralProvider::new(tools()),
    });
    let stack = stack_with(home.path(), Some(provider.clone())).await;
    let body = GenerationRequestBody {
        prompt: Some("A quiet lake. A heron lands.".into()),
        duration_seconds: Some(5.0),
        aspect_ratio: Some("16:9".into()),
        resolution: Some("720p".into()),
        fps: Some(24),
        clip_count: Some(2),
        ..Default::default()
    };
    let s = stack.service().submit(OWNER, &body, None).await.unwrap();
    let job = stack
        .orchestrator()
        .wait(&s.job().id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, JobStatus::Completed);
    let made = provider.calls.load(Ordering::SeqCst);
    assert_eq!(made, 2);
    let deps = stack.deps();
    let first = CompositionId::first_of(&job.id);
    let own_clip = std::fs::read(stack.blob_path(&vidpipe_domain::keys::clip(&job.id, 1))).unwrap();

    let edits = RecomposeEdits {
        scenes: Some(vec![vidpipe_domain::composition::SceneEdit::prompt(
            1,
            "A red lighthouse in a storm",
        )]),
        ..Default::default()
    };
    let prepared = recompose::prepare(deps, OWNER, &job.id, &edits)
        .await
        .unwrap();
    let replaced_key = vidpipe_domain::keys::composition_clip(&prepared.id, 1);
    assert_eq!(
        prepared.clip_keys,
        vec![vidpipe_domain::keys::clip(&job.id, 0), replaced_key.clone()]
    );
    let done = stack
        .runner()
        .run_composition(&job.id, &prepared.id)
        .await
        .unwrap();
    assert_eq!(done.status, CompositionStatus::Completed);
    assert_eq!(
        provider.calls.load(Ordering::SeqCst),
        made + 1,
        "exactly one provider call: the replaced scene"
    );
    assert!(done.clips.iter().any(|c| c.index == 1 && !c.cache_hit));
    let f = probe(&stack.blob_path(&done.outputs.clone().unwrap().final_key));
    assert_eq!((f.width, f.height), (1280, 720));
    assert_eq!(f.video_frames, Some(120), "5 s at 24 fps, as the parent");
    assert!((f.duration - 5.0).abs() < 0.1, "{}", f.duration);
    // The new clip is another picture; the job's own clip of the scene is untouched.
    let new_clip = std::fs::read(stack.blob_path(&replaced_key)).unwrap();
    assert_ne!(new_clip, own_clip);
    assert_eq!(
        std::fs::read(stack.blob_path(&vidpipe_domain::keys::clip(&job.id, 1))).unwrap(),
        own_clip
    );

    // The same prompt again, from that version: the cache has it, no call.
    let again = RecomposeEdits {
        parent_composition_id: Some(done.id.to_string()),
        ..edits.clone()
    };
    let prepared = recompose::prepare(deps, OWNER, &job.id, &again)
        .await
        .unwrap();
    let second = stack
        .runner()
        .run_composition(&job.id, &prepared.id)
        .await
        .unwrap();
    assert_eq!(
        provider.calls.load(Ordering::SeqCst),
        made + 1,
        "a cache hit"
    );
    assert!(second.clips.iter().all(|c| c.cache_hit));

    let versions = deps.jobs.compositions(&job.id).await.unwrap();
    let chain: Vec<_> = lineage(&versions, &second.id)
        .iter()
        .map(|c| c.id.clone())
        .collect();
    assert_eq!(chain, vec![second.id.clone(), done.id.clone(), first]);

    // A scene the plan lacks, and a scene named twice, are refused by path.
    let bad = RecomposeEdits {
        scenes: Some(vec![
            vidpipe_domain::composition::SceneEdit::prompt(7, "x"),
            vidpipe_domain::composition::SceneEdit::prompt(0, " "),
        ]),
        ..Default::default()
    };
    match recompose::prepare(deps, OWNER, &job.id, &bad).await {
        Err(RecomposeError::Invalid(v)) => {
            assert!(v.names("scenes[0].index"), "{v:?}");
            assert!(v.names("scenes[1].prompt"), "{v:?}");
        }
        other => panic!("expected invalid edits: {other:?}"),
    }
}

/// A recompose renders as much output as a job, so it is counted like one: a slot while it
/// renders, given back when it ends, and its length charged to the day. Past the day's budget
/// it is refused and no version is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recompose_takes_its_share_of_the_tenants_quota() {
    use vidpipe_domain::quota::{QuotaKind, QuotaLimits};
    use vidpipe_pipeline::ServiceError;
    let home = tempfile::tempdir().unwrap();
    let stack = stack_with_options(
        home.path(),
        vidpipe_pipeline::local::LocalOptions {
            quota_limits: QuotaLimits {
                concurrent_jobs: Some(1),
                daily_output_seconds: Some(12),
            },
            ..Default::default()
        },
        None,
    )
    .await;
    let body = GenerationRequestBody {
        prompt: Some("A kite rises. It dips in the wind.".into()),
        duration_seconds: Some(5.0),
        aspect_ratio: Some("16:9".into()),
        resolution: Some("720p".into()),
        fps: Some(24),
        clip_count: Some(2),
        ..Default::default()
    };
    let s = stack.service().submit(OWNER, &body, None).await.unwrap();
    let job = stack
        .orchestrator()
        .wait(&s.job().id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, JobStatus::Completed);
    let quotas = stack.deps().quotas.clone().expect("quotas are counted");
    let today = chrono::Utc::now().date_naive();
    let usage = quotas.usage(OWNER, today).await.unwrap();
    assert_eq!((usage.active_jobs, usage.output_seconds), (0, 5));

    let edits = RecomposeEdits {
        aspect_ratio: Some("1:1".into()),
        ..Default::default()
    };
    let c = stack
        .service()
        .recompose(OWNER, &job.id, &edits)
        .await
        .unwrap();
    let while_rendering = quotas.usage(OWNER, today).await.unwrap();
    let done = stack
        .orchestrator()
        .wait_composition(&c.id)
        .await
        .expect("started in process")
        .expect("rendered");
    assert_eq!(done.status, CompositionStatus::Completed);
    // The claim was taken when it was accepted (the render may already have ended and freed the
    // slot by the time it is read) and given back at the end; the day keeps the charge.
    assert_eq!(while_rendering.output_seconds, 10, "{while_rendering:?}");
    let after = quotas.usage(OWNER, today).await.unwrap();
    assert_eq!((after.active_jobs, after.output_seconds), (0, 10));

    // 10 + 5 > 12: refused for the day, and nothing is recorded.
    let versions = stack.deps().jobs.compositions(&job.id).await.unwrap().len();
    match stack.service().recompose(OWNER, &job.id, &edits).await {
        Err(ServiceError::QuotaExceeded(q)) => assert_eq!(q.quota, QuotaKind::DailyOutputMinutes),
        other => panic!("expected the day's budget to refuse it, got {other:?}"),
    }
    assert_eq!(
        stack.deps().jobs.compositions(&job.id).await.unwrap().len(),
        versions,
        "a refused recompose leaves no version behind"
    );
}

/// Replacing scenes by uploaded assets: scene 1 by a red 4:3 video (fitted to the 16:9 frame and
/// cut to the scene), scene 2 by a blue image (held for the scene). No provider call at all, the
/// job's clips untouched, the record names which asset replaced which scene, and the output's
/// pixels in each scene's window are the asset's colour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_scenes_with_uploaded_assets_calls_no_provider_and_shows_them() {
    use vidpipe_domain::AssetKind;
    use vidpipe_domain::composition::{SceneAsset, SceneEdit};
    let home = tempfile::tempdir().unwrap();
    let provider = Arc::new(Counting {
        calls: AtomicU32::new(0),
        inner: ProceduralProvider::new(tools()),
    });
    let stack = stack_with(home.path(), Some(provider.clone())).await;
    let body = GenerationRequestBody {
        prompt: Some("A quiet lake. A heron lands. Mist rises.".into()),
        duration_seconds: Some(6.0),
        aspect_ratio: Some("16:9".into()),
        resolution: Some("720p".into()),
        fps: Some(24),
        clip_count: Some(3),
        ..Default::default()
    };
    let s = stack.service().submit(OWNER, &body, None).await.unwrap();
    let job = stack
        .orchestrator()
        .wait(&s.job().id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, JobStatus::Completed);
    let made = provider.calls.load(Ordering::SeqCst);
    let plan = job.plan.clone().unwrap();
    let fps = plan.fps as f64;
    let own: Vec<Vec<u8>> = (0..3)
        .map(|i| std::fs::read(stack.blob_path(&vidpipe_domain::keys::clip(&job.id, i))).unwrap())
        .collect();

    // Small sources: a 320x240 video, longer than any scene, another too short, a 64x36 image.
    let media = home.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    let longest = plan.scenes.iter().map(|s| s.frames).max().unwrap() as f64 / fps;
    let red = write_video(
        &media.join("red.mp4"),
        "color=c=red:s=320x240:r=24",
        longest + 0.5,
        &[],
    );
    let short = write_video(
        &media.join("short.mov"),
        "color=c=red:s=320x240:r=24",
        0.5,
        &[],
    );
    let blue = write_logo(&media.join("blue.png"), 64, 36, [0, 0, 255]);
    let service = stack.service();
    let ingest = |kind, path: std::path::PathBuf, owner: &'static str| {
        let service = &service;
        async move {
            service
                .ingest_asset(owner, kind, &path, "file")
                .await
                .unwrap()
        }
    };
    let video = ingest(AssetKind::Video, red, OWNER).await;
    let image = ingest(AssetKind::Image, blue, OWNER).await;
    let short = ingest(AssetKind::Video, short, OWNER).await;
    let music = ingest(
        AssetKind::Music,
        write_music(&media.join("m.wav"), 1.0),
        OWNER,
    )
    .await;
    let theirs = ingest(AssetKind::Video, media.join("red.mp4"), "someone-else").await;
    let deps = stack.deps();

    // Refused, each at its item's path: a video shorter than its scene, audio, another tenant's
    // video, a prompt and an asset together, a malformed id.
    let bad = RecomposeEdits {
        scenes: Some(vec![
            SceneEdit::asset(1, short.id.to_string()),
            SceneEdit::asset(2, music.id.to_string()),
            SceneEdit::asset(0, theirs.id.to_string()),
        ]),
        ..Default::default()
    };
    match recompose::prepare(deps, OWNER, &job.id, &bad).await {
        Err(RecomposeError::Invalid(v)) => {
            for field in [
                "scenes[0].asset_id",
                "scenes[1].asset_id",
                "scenes[2].asset_id",
            ] {
                assert!(v.names(field), "{field} in {v:?}");
            }
            assert!(v.errors[0].rule.contains("0.50 s long"), "{v:?}");
        }
        other => panic!("expected invalid edits: {other:?}"),
    }
    let both = RecomposeEdits {
        scenes: Some(vec![
            SceneEdit {
                index: 1,
                prompt: Some("a heron".into()),
                asset_id: Some(video.id.to_string()),
            },
            SceneEdit::asset(2, "ast_nope"),
        ]),
        ..Default::default()
    };
    match recompose::prepare(deps, OWNER, &job.id, &both).await {
        Err(RecomposeError::Invalid(v)) => {
            assert!(v.names("scenes[0].asset_id"), "{v:?}");
            assert!(v.names("scenes[1].asset_id"), "{v:?}");
        }
        other => panic!("expected invalid edits: {other:?}"),
    }
    assert_eq!(deps.jobs.compositions(&job.id).await.unwrap().len(), 1);

    let edits = RecomposeEdits {
        scenes: Some(vec![
            SceneEdit::asset(1, video.id.to_string()),
            SceneEdit::asset(2, image.id.to_string()),
        ]),
        ..Default::default()
    };
    let prepared = recompose::prepare(deps, OWNER, &job.id, &edits)
        .await
        .unwrap();
    assert_eq!(
        prepared.clip_keys,
        vec![
            vidpipe_domain::keys::clip(&job.id, 0),
            video.key.clone(),
            image.key.clone()
        ]
    );
    let done = stack
        .runner()
        .run_composition(&job.id, &prepared.id)
        .await
        .unwrap();
    assert_eq!(done.status, CompositionStatus::Completed);
    assert_eq!(
        provider.calls.load(Ordering::SeqCst),
        made,
        "no provider call"
    );
    assert!(done.clips.is_empty(), "no clip made: {:?}", done.clips);
    assert_eq!(
        done.asset_scenes(),
        vec![
            SceneAsset {
                scene_index: 1,
                asset_id: video.id.clone()
            },
            SceneAsset {
                scene_index: 2,
                asset_id: image.id.clone()
            },
        ]
    );
    let out = stack.blob_path(&done.outputs.clone().unwrap().final_key);
    let f = probe(&out);
    assert_eq!((f.width, f.height), (1280, 720));
    assert_eq!(
        f.video_frames,
        Some(plan.total_frames as u64),
        "the parent's length"
    );
    // Each scene's window, away from its transitions: the asset's colour across the frame's
    // centre (the red video's 4:3 frame was cropped to cover 16:9, not letterboxed).
    let overlap = plan.transition.overlap_frames(job.request.fps);
    let mut start = 0u32;
    for (i, scene) in plan.scenes.iter().enumerate() {
        let mid = (start + scene.frames / 2) as f64 / fps;
        start += scene.frames - overlap;
        let frame = frame_at(&out, mid);
        let want = match i {
            1 => Some([255.0, 0.0, 0.0]),
            2 => Some([0.0, 0.0, 255.0]),
            _ => None,
        };
        let Some(want) = want else { continue };
        for x in [40, 600, 1180] {
            let got = region_mean(&frame, x, 320, 60, 60);
            let off = (0..3).map(|c| (got[c] - want[c]).abs()).fold(0.0, f64::max);
            assert!(off < 24.0, "scene {i} at {mid:.2} s, x {x}: {got:?}");
        }
    }
    // The job's clips stay as they were made.
    for (i, bytes) in own.iter().enumerate() {
        let key = vidpipe_domain::keys::clip(&job.id, i as u32);
        assert_eq!(&std::fs::read(stack.blob_path(&key)).unwrap(), bytes);
    }
}

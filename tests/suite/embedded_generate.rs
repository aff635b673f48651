//! The embedded pipeline end to end: a prompt becomes an MP4 whose duration, size, codecs,
//! streams, thumbnail and overlays are measured, not assumed.

use vidpipe_domain::asset::AssetKind;
use vidpipe_domain::request::{BrandBody, GenerationRequestBody, LogoBody, MusicBody};
use vidpipe_domain::{ClipStatus, CompositionId, CompositionStatus, Job, JobStatus};
use vidpipe_pipeline::local::LocalStack;
use vidpipe_tests::*;

const OWNER: &str = "local";

fn body(prompt: &str, seconds: f64, aspect: &str) -> GenerationRequestBody {
    GenerationRequestBody {
        prompt: Some(prompt.into()),
        duration_seconds: Some(seconds),
        aspect_ratio: Some(aspect.into()),
        ..Default::default()
    }
}

async fn run(stack: &LocalStack, body: &GenerationRequestBody) -> Job {
    let submitted = stack
        .service()
        .submit(OWNER, body, None)
        .await
        .expect("submit");
    let job = stack
        .orchestrator()
        .wait(&submitted.job().id)
        .await
        .expect("started")
        .expect("run");
    stack.service().get(OWNER, &job.id).await.unwrap().unwrap()
}

fn assert_completed(job: &Job) {
    assert_eq!(
        job.status,
        JobStatus::Completed,
        "job error: {:?}",
        job.error
    );
    assert_eq!(job.progress(), 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_becomes_a_measured_mp4_with_brand_captions_and_thumbnail() {
    let home = tempfile::tempdir().unwrap();
    let stack = stack(home.path()).await;
    let media = tempfile::tempdir().unwrap();
    let logo = write_logo(&media.path().join("logo.png"), 200, 100, [255, 0, 0]);
    let music = write_music(&media.path().join("bed.mp3"), 4.0);
    let svc = stack.service();
    let logo = svc
        .ingest_asset(OWNER, AssetKind::Logo, &logo, "logo")
        .await
        .unwrap();
    let music = svc
        .ingest_asset(OWNER, AssetKind::Music, &music, "music")
        .await
        .unwrap();

    let mut b = body(
        "A calm ocean at sunrise. Waves roll over the sand. Gulls circle overhead.",
        10.0,
        "16:9",
    );
    b.resolution = Some("720p".into());
    b.clip_count = Some(3);
    b.transition = Some("fade".into());
    b.transition_duration_seconds = Some(0.5);
    b.brand = Some(BrandBody {
        logo: Some(LogoBody {
            asset_id: Some(logo.id.to_string()),
            position: Some("top-right".into()),
            opacity: Some(1.0),
            scale: Some(0.15),
        }),
        music: Some(MusicBody {
            asset_id: Some(music.id.to_string()),
            volume: Some(0.8),
            fade_in_seconds: Some(1.0),
            fade_out_seconds: Some(1.0),
        }),
    });
    let job = run(&stack, &b).await;
    assert_completed(&job);
    assert_eq!(job.clips.len(), 3);
    assert!(
        job.clips
            .iter()
            .all(|c| c.status == ClipStatus::Done && c.provider == "procedural")
    );
    for stage in [
        vidpipe_domain::Stage::Planning,
        vidpipe_domain::Stage::Generating,
        vidpipe_domain::Stage::Composing,
    ] {
        let t = &job.stages[&stage];
        assert!(
            t.started_at.is_some() && t.finished_at.is_some(),
            "{stage:?} timing {t:?}"
        );
    }

    let outputs = job.outputs.clone().unwrap();
    // The first compose is the job's first composition: recorded, completed, in its own folder.
    let versions = stack.deps().jobs.compositions(&job.id).await.unwrap();
    assert_eq!(versions.len(), 1);
    let first = &versions[0];
    assert_eq!(first.id, CompositionId::first_of(&job.id));
    assert_eq!(first.parent_composition_id, None);
    assert_eq!(first.status, CompositionStatus::Completed);
    assert_eq!(first.outputs.as_ref(), Some(&outputs));
    assert!(
        outputs
            .final_key
            .starts_with(&format!("compositions/{}/", first.id))
    );
    let clip_keys: Vec<_> = job.clips.iter().filter_map(|c| c.key.clone()).collect();
    assert_eq!(
        first.clip_keys, clip_keys,
        "it refers to every clip of the job"
    );
    let final_path = stack.blob_path(&outputs.final_key);
    let f = probe(&final_path);
    let frame = 1.0 / 30.0;
    assert!(
        (f.duration - 10.0).abs() <= frame,
        "duration {}",
        f.duration
    );
    assert_eq!(f.video_frames, Some(300));
    assert_eq!((f.width, f.height), (1280, 720));
    assert_eq!(f.video_codec, "h264");
    assert_eq!(f.pix_fmt, "yuv420p");
    assert_eq!(f.audio_codec.as_deref(), Some("aac"));
    let audio = f.audio_duration.expect("audio duration");
    assert!(
        (audio - 10.0).abs() <= 0.05,
        "music looped to length: audio {audio}"
    );
    assert!(is_faststart(&final_path), "moov must precede mdat");

    let thumb = probe(&stack.blob_path(&outputs.thumbnail_key));
    assert_eq!(thumb.video_codec, "mjpeg");
    assert_eq!((thumb.width, thumb.height), (640, 360));

    // The logo sits in the top-right corner, opaque red; the top-left corner is not red.
    let img = frame_at(&final_path, 5.0);
    let logo_w = (1280.0 * 0.15) as u32;
    let margin = 24;
    let [r, g, b_] = region_mean(
        &img,
        1280 - margin - logo_w + 8,
        margin + 8,
        logo_w - 16,
        30,
    );
    assert!(
        r > 200.0 && g < 60.0 && b_ < 60.0,
        "logo corner should be red, got {r:.0},{g:.0},{b_:.0}"
    );
    let [r2, g2, _] = region_mean(&img, margin + 8, margin + 8, logo_w - 16, 30);
    assert!(!(r2 > 200.0 && g2 < 60.0), "top-left must not be the logo");

    let timeline: serde_json::Value =
        serde_json::from_slice(&std::fs::read(stack.blob_path(&outputs.timeline_key)).unwrap())
            .unwrap();
    assert_eq!(timeline["total_frames"], 300);
    assert_eq!(timeline["clips"].as_array().unwrap().len(), 3);
    assert_eq!(timeline["captions"].as_array().unwrap().len(), 3);
    let metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(stack.blob_path(&outputs.metadata_key)).unwrap())
            .unwrap();
    assert_eq!(metadata["probe"]["width"], 1280);
    assert!(
        metadata["tools"]["ffmpeg"]
            .as_str()
            .unwrap()
            .contains("8.1"),
        "{metadata}"
    );
    assert!(
        metadata["stages"]["composing"]["seconds"]
            .as_f64()
            .is_some(),
        "{metadata}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_aspect_at_both_resolutions_has_the_exact_size() {
    let home = tempfile::tempdir().unwrap();
    let stack = stack(home.path()).await;
    let cases = [
        ("16:9", "720p", (1280, 720), (640, 360)),
        ("16:9", "1080p", (1920, 1080), (640, 360)),
        ("9:16", "720p", (720, 1280), (360, 640)),
        ("9:16", "1080p", (1080, 1920), (360, 640)),
        ("1:1", "720p", (720, 720), (640, 640)),
        ("1:1", "1080p", (1080, 1080), (640, 640)),
        ("4:5", "720p", (720, 900), (512, 640)),
        ("4:5", "1080p", (1080, 1350), (512, 640)),
    ];
    for (aspect, res, size, thumb) in cases {
        let mut b = body("Neon city at night, rain on glass", 5.0, aspect);
        b.resolution = Some(res.into());
        b.fps = Some(24);
        b.clip_count = Some(2);
        b.transition = Some("wipeleft".into());
        let job = run(&stack, &b).await;
        assert_completed(&job);
        let o = job.outputs.unwrap();
        let f = probe(&stack.blob_path(&o.final_key));
        assert_eq!((f.width, f.height), size, "{aspect} {res}");
        assert!(
            (f.duration - 5.0).abs() <= 1.0 / 24.0,
            "{aspect} {res}: duration {}",
            f.duration
        );
        assert_eq!(f.video_frames, Some(120), "{aspect} {res}");
        assert_eq!(
            (f.video_codec.as_str(), f.pix_fmt.as_str()),
            ("h264", "yuv420p")
        );
        assert_eq!(
            f.audio_codec.as_deref(),
            Some("aac"),
            "a silent AAC track even without music"
        );
        let t = probe(&stack.blob_path(&o.thumbnail_key));
        assert_eq!((t.width, t.height), thumb, "{aspect} {res} thumbnail");
        // Each clip's tile picture is 320 px wide and the clip's shape.
        let tile = (320, (320 * size.1 / size.0 + 1) & !1);
        for clip in &job.clips {
            let key = clip.thumbnail_key.as_deref().expect("a tile picture");
            let p = probe(&stack.blob_path(key));
            assert_eq!(
                (p.width, p.height),
                tile,
                "{aspect} {res} clip {}",
                clip.index
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_identical_request_reuses_every_clip_from_the_cache() {
    let home = tempfile::tempdir().unwrap();
    let stack = stack(home.path()).await;
    let mut b = body(
        "Forest trail in autumn; sunlight through leaves",
        6.0,
        "1:1",
    );
    b.resolution = Some("720p".into());
    b.clip_count = Some(3);
    b.transition = Some("cut".into());
    b.seed = Some(7);
    let first = run(&stack, &b).await;
    assert_completed(&first);
    assert_eq!(first.cache_hits(), 0);
    let second = run(&stack, &b).await;
    assert_completed(&second);
    assert_eq!(second.cache_hits(), 3, "{:?}", second.clips);
    assert_ne!(first.id, second.id);
    // Made or reused, every clip gets its own tile picture: a JPEG of its middle frame, 320 px
    // wide and square like the clip, under the job's own folder.
    for job in [&first, &second] {
        for clip in &job.clips {
            let key = clip.thumbnail_key.as_deref().expect("a tile picture");
            assert_eq!(
                key,
                format!(
                    "generations/{}/thumbnails/clip_{:03}.jpg",
                    job.id, clip.index
                )
            );
            let p = probe(&stack.blob_path(key));
            assert_eq!((p.width, p.height), (320, 320), "clip {}", clip.index);
            assert_eq!(p.video_codec, "mjpeg");
            // The tile is the clip's middle frame, scaled (a frame away differs by ~15).
            let clip_file = stack.blob_path(clip.key.as_deref().unwrap());
            let middle = frame_at(&clip_file, probe(&clip_file).duration / 2.0);
            let middle = image::imageops::resize(&middle, 320, 320, image::imageops::Triangle);
            let tile = image::open(stack.blob_path(key)).unwrap().to_rgb8();
            let diff = region_diff(&tile, &middle, 0, 0, 320, 320);
            assert!(
                diff < 5.0,
                "clip {}: tile vs middle frame diff {diff}",
                clip.index
            );
        }
    }

    let (a, z) = (first.outputs.unwrap(), second.outputs.unwrap());
    let (fa, fz) = (
        probe(&stack.blob_path(&a.final_key)),
        probe(&stack.blob_path(&z.final_key)),
    );
    assert_eq!(fa.video_frames, fz.video_frames);
    assert_eq!(fa.video_frames, Some(180));
    // The same clips composed the same way look the same.
    let diff = region_diff(
        &frame_at(&stack.blob_path(&a.final_key), 3.0),
        &frame_at(&stack.blob_path(&z.final_key), 3.0),
        0,
        0,
        720,
        720,
    );
    assert!(
        diff < 1.0,
        "cached clips must render the same picture (diff {diff})"
    );

    // A different seed is a different clip.
    b.seed = Some(8);
    let third = run(&stack, &b).await;
    assert_eq!(third.cache_hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logo_changes_only_its_corner() {
    let home = tempfile::tempdir().unwrap();
    let stack = stack(home.path()).await;
    let media = tempfile::tempdir().unwrap();
    let logo_file = write_logo(&media.path().join("mark.png"), 120, 120, [0, 255, 0]);
    let logo = stack
        .service()
        .ingest_asset(OWNER, AssetKind::Logo, &logo_file, "logo")
        .await
        .unwrap();

    let mut plain = body("Desert dunes under a pale sky", 5.0, "16:9");
    plain.resolution = Some("720p".into());
    plain.clip_count = Some(1);
    plain.captions = Some(false.into());
    let mut branded = plain.clone();
    branded.brand = Some(BrandBody {
        logo: Some(LogoBody {
            asset_id: Some(logo.id.to_string()),
            position: Some("bottom-left".into()),
            opacity: Some(0.8),
            scale: Some(0.1),
        }),
        music: None,
    });
    let a = run(&stack, &plain).await;
    let b = run(&stack, &branded).await;
    assert_completed(&a);
    assert_completed(&b);
    let fa = frame_at(&stack.blob_path(&a.outputs.unwrap().final_key), 2.5);
    let fb = frame_at(&stack.blob_path(&b.outputs.unwrap().final_key), 2.5);
    // A 128 px logo (10% of 1280) with a margin, bottom-left.
    let corner = region_diff(&fa, &fb, 30, 720 - 30 - 110, 100, 100);
    let elsewhere = region_diff(&fa, &fb, 1280 - 200, 40, 160, 160);
    assert!(
        corner > 40.0,
        "logo must change its corner (diff {corner:.1})"
    );
    assert!(
        elsewhere < 2.0,
        "nothing else changes (diff {elsewhere:.1})"
    );
    let g = region_mean(&fb, 40, 720 - 30 - 100, 80, 80);
    assert!(
        g[1] > g[0] + 60.0 && g[1] > g[2] + 60.0,
        "green logo at 80% opacity, got {g:?}"
    );
}

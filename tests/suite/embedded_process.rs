//! Upload processing on the embedded stack, judged by measurement: ffprobe for sizes, codecs,
//! pixel formats, durations, frame counts and bitrates; pixels for the watermark and the
//! thumbnail's moment. Every source is generated here with ffmpeg's lavfi sources.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use vidpipe_domain::names;
use vidpipe_domain::processing::{ProcessJob, ProcessSettings, ProcessStatus, RenditionSet, Route};
use vidpipe_pipeline::local::LocalStack;
use vidpipe_pipeline::notify::JsonlNotifier;
use vidpipe_pipeline::processing::{self, ProcessInput};
use vidpipe_tests::{
    Facts, ffmpeg, frame_at, probe, region_diff, region_mean, write_clip, write_video,
};

const FPS: f64 = 30.0;

fn settings() -> ProcessSettings {
    ProcessSettings::default()
}

/// An opaque white watermark, so its 10 % shows as a measurable lift over a dark picture.
fn white_watermark(dir: &Path) -> PathBuf {
    let path = dir.join("mark.png");
    image::RgbaImage::from_pixel(200, 100, image::Rgba([255, 255, 255, 255]))
        .save(&path)
        .expect("write watermark");
    path
}

async fn open(home: &Path) -> LocalStack {
    let stack = vidpipe_tests::stack(home).await;
    stack
        .install_watermark(Some(&white_watermark(home)))
        .await
        .expect("install watermark");
    stack
}

async fn process(stack: &LocalStack, file: &Path, settings: ProcessSettings) -> ProcessJob {
    let source = stack
        .ingest_raw(file, "acme", "launch")
        .await
        .expect("ingest");
    let deps = stack.processing(settings, RenditionSet::default_set());
    processing::run_embedded(&deps, &ProcessInput { source }, 2, Arc::new(|_| {}))
        .await
        .expect("the run records its outcome")
}

fn output(stack: &LocalStack, job: &ProcessJob, rendition: &str) -> (PathBuf, Facts) {
    let o = job
        .outputs
        .iter()
        .find(|o| o.rendition == rendition)
        .unwrap_or_else(|| panic!("no {rendition} output in {job:#?}"));
    let path = stack.blob_path(&o.key);
    let facts = probe(&path);
    (path, facts)
}

/// A source's displayed size and its renditions' sizes, worked out by hand from the README's
/// rules: youtube's box is 1920x1080, reels' and tiktok's 1080x1920; a box the source is smaller
/// than shrinks to it, keeping the box's aspect, to even sizes (rounded down).
#[derive(Debug, Clone, Copy)]
struct Sizes {
    display: (u32, u32),
    youtube: (u32, u32),
    vertical: (u32, u32),
}

/// youtube: a third of its box. Vertical: shrunk by 640/1080 to 640x1137.8, so 640x1136.
const LANDSCAPE: Sizes = Sizes {
    display: (640, 360),
    youtube: (640, 360),
    vertical: (640, 1136),
};
/// Vertical: a third of its box. youtube: shrunk by 640/1080 to 1137.8x640, so 1136x640.
const PORTRAIT: Sizes = Sizes {
    display: (360, 640),
    youtube: (1136, 640),
    vertical: (360, 640),
};
/// Both boxes shrink by 480/1080: youtube to 853.3x480 (852x480), vertical to 480x853.3.
const SQUARE: Sizes = Sizes {
    display: (480, 480),
    youtube: (852, 480),
    vertical: (480, 852),
};
/// Both boxes are bound by the width: youtube shrinks by 1001/1920 to 1001x563.1 (1000x562),
/// vertical by 1001/1080 to 1001x1779.6 (1000x1778).
const ODD: Sizes = Sizes {
    display: (1001, 563),
    youtube: (1000, 562),
    vertical: (1000, 1778),
};

/// Asserts what every rendition of a source must be: its size, H.264 yuv420p, constant rate,
/// AAC audio, and the trimmed duration within one frame.
fn assert_renditions(stack: &LocalStack, job: &ProcessJob, sizes: Sizes, seconds: f64) {
    assert_eq!(job.status, ProcessStatus::Succeeded, "{job:#?}");
    let display = sizes.display;
    let expected_frames = (seconds - 8.0) * FPS;
    for (name, tw, th, size) in [
        ("youtube", 1920, 1080, sizes.youtube),
        ("reels", 1080, 1920, sizes.vertical),
        ("tiktok", 1080, 1920, sizes.vertical),
    ] {
        let (path, f) = output(stack, job, name);
        assert_eq!((f.width, f.height), size, "{name} size");
        assert!(f.width <= tw && f.height <= th, "{name} upscaled");
        // Never upscaled: the source contained in the output box is at most its own size.
        let contain = (f.width as f64 / display.0 as f64).min(f.height as f64 / display.1 as f64);
        assert!(
            contain <= 1.0 + 1e-9,
            "{name} upscales the picture by {contain}"
        );
        assert_eq!(f.video_codec, "h264", "{name}");
        assert_eq!(f.pix_fmt, "yuv420p", "{name}");
        assert_eq!(f.audio_codec.as_deref(), Some("aac"), "{name} audio");
        assert!(
            (f.duration - (seconds - 8.0)).abs() <= 1.0 / FPS + 1e-3,
            "{name} lasts {} s, expected {}",
            f.duration,
            seconds - 8.0
        );
        assert_eq!(
            f.video_frames,
            Some(expected_frames as u64),
            "{name} frames"
        );
        let v = &f.raw["streams"][0];
        assert_eq!(
            v["r_frame_rate"], v["avg_frame_rate"],
            "{name} is not constant rate"
        );
        assert!(
            vidpipe_tests::is_faststart(&path),
            "{name} is not faststart"
        );
        // Rotation was applied to the pixels, not carried as metadata.
        let rotated = v["side_data_list"].as_array().is_some_and(|l| {
            l.iter()
                .any(|s| s["rotation"].as_f64().unwrap_or(0.0) != 0.0)
        });
        assert!(!rotated, "{name} still carries a rotation");
    }
}

#[tokio::test]
async fn a_landscape_upload_becomes_three_renditions_a_thumbnail_and_a_manifest() {
    let home = tempfile::tempdir().unwrap();
    let stack = open(home.path()).await;
    let src = home.path().join("launch.mp4");
    write_clip(&src, "testsrc2=s=640x360:r=30", 14.0, &[]);
    let job = process(&stack, &src, settings()).await;
    assert_renditions(&stack, &job, LANDSCAPE, 14.0);
    assert_eq!(job.route, Some(Route::SinglePass));
    assert_eq!(
        job.outputs[0].key,
        "processed/acme/launch/launch_youtube.mp4"
    );

    // Thumbnail: source size, and the picture at 10 % of the trimmed output (3 s + 0.6 s in
    // the source), not a neighbouring moment.
    let thumb_path = stack.blob_path(job.thumbnail_key.as_ref().unwrap());
    let thumb = image::open(&thumb_path)
        .expect("thumbnail decodes")
        .to_rgb8();
    assert_eq!(thumb.dimensions(), (640, 360));
    let at = |t: f64| region_diff(&thumb, &frame_at(&src, t), 0, 0, 640, 360);
    let (expected, before, after) = (at(3.6), at(3.1), at(4.1));
    assert!(
        expected < before && expected < after && expected < 12.0,
        "thumbnail differs from 3.6 s by {expected}, from 3.1 s by {before}, 4.1 s by {after}"
    );

    // The manifest measures every output and says how long each step took.
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(stack.blob_path(job.manifest_key.as_ref().unwrap())).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["outputs"].as_array().unwrap().len(), 3);
    assert_eq!(manifest["trim"]["frames"], 180);
    assert_eq!(
        vidpipe_tests::timing_steps(&manifest),
        ["probe", "transcode", "publish"]
    );
    assert!(manifest["cost"]["compute_seconds"].as_f64().unwrap() > 0.0);

    // Subscribers heard of it once.
    let events = JsonlNotifier::new(stack.notifications_path())
        .read_all()
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].status, ProcessStatus::Succeeded);
    assert_eq!(events[0].outputs.len(), 3);
}

#[tokio::test]
async fn the_watermark_sits_bottom_right_at_ten_percent_and_nowhere_else() {
    let home = tempfile::tempdir().unwrap();
    let stack = open(home.path()).await;
    let src = home.path().join("grey.mp4");
    write_clip(&src, "color=c=0x202020:s=640x360:r=30", 10.0, &[]);
    let job = process(&stack, &src, settings()).await;
    for name in ["youtube", "reels"] {
        let (path, f) = output(&stack, &job, name);
        let frame = frame_at(&path, 1.0);
        let spec = ProcessSettings::default().watermark;
        let (w, m) = spec.placement(f.width);
        let h = w / 2; // The watermark is 2:1.
        let (x, y) = (f.width - m - w, f.height - m - h);
        let inside = region_mean(&frame, x + 4, y + 4, w - 8, h - 8);
        let elsewhere = region_mean(&frame, m + 4, m + 4, w - 8, h - 8);
        let bottom_left = region_mean(&frame, m + 4, y + 4, w - 8, h - 8);
        // 10 % of white over 0x20 lifts each channel by about 22.
        for c in 0..3 {
            let lift = inside[c] - elsewhere[c];
            assert!(
                (14.0..=30.0).contains(&lift),
                "{name}: watermark lift {lift} (inside {inside:?}, elsewhere {elsewhere:?})"
            );
            assert!(
                (bottom_left[c] - elsewhere[c]).abs() < 3.0,
                "{name}: something drawn bottom left"
            );
        }
    }
}

#[tokio::test]
async fn odd_sources_are_fitted_rotated_made_constant_rate_and_given_audio() {
    let home = tempfile::tempdir().unwrap();
    let stack = open(home.path()).await;
    let dir = home.path();

    let portrait = dir.join("portrait.mp4");
    write_clip(&portrait, "testsrc2=s=360x640:r=30", 10.0, &[]);
    let square = dir.join("square.mp4");
    write_clip(&square, "testsrc2=s=480x480:r=30", 10.0, &[]);
    // A truly odd size: 4:2:0 cannot hold one, so the source is 4:4:4 (testsrc2 itself only
    // makes even sizes, hence the scale).
    let odd = dir.join("odd.mp4");
    write_clip(
        &odd,
        "testsrc2=s=1002x564:r=30",
        10.0,
        &["-vf", "scale=1001:563", "-pix_fmt", "yuv444p"],
    );
    assert_eq!((probe(&odd).width, probe(&odd).height), (1001, 563));
    let upper = dir.join("CLIP.MOV");
    write_clip(&upper, "testsrc2=s=640x360:r=30", 10.0, &["-f", "mov"]);
    let unicode = dir.join("Été à Zürich — take 2.mp4");
    write_clip(&unicode, "testsrc2=s=640x360:r=30", 10.0, &[]);

    // Stored landscape, shown portrait: a display matrix of 90 degrees.
    let plain = dir.join("plain.mp4");
    write_clip(&plain, "testsrc2=s=640x360:r=30", 10.0, &[]);
    let rotated = dir.join("rotated.mp4");
    let (p, r) = (plain.to_str().unwrap(), rotated.to_str().unwrap());
    ffmpeg(&["-display_rotation", "90", "-i", p, "-c", "copy", r]);
    assert_ne!(
        probe(&rotated).raw["streams"][0]["side_data_list"][0]["rotation"],
        serde_json::Value::Null,
        "the rotated source carries no rotation"
    );

    // Variable rate: 30 fps for 2 s, then every third frame.
    let vfr = dir.join("vfr.mp4");
    write_clip(
        &vfr,
        "testsrc2=s=640x360:r=30",
        10.0,
        &[
            "-vf",
            "select='lt(n\\,60)+not(mod(n\\,3))'",
            "-fps_mode",
            "vfr",
        ],
    );
    let vfr_probe = probe(&vfr);
    assert_ne!(
        vfr_probe.raw["streams"][0]["r_frame_rate"], vfr_probe.raw["streams"][0]["avg_frame_rate"],
        "the VFR source is constant rate"
    );

    // No audio at all.
    let silent = dir.join("silent.mp4");
    write_video(&silent, "testsrc2=s=640x360:r=30", 10.0, &[]);

    for (file, sizes) in [
        (&portrait, PORTRAIT),
        (&square, SQUARE),
        (&odd, ODD),
        (&upper, LANDSCAPE),
        (&unicode, LANDSCAPE),
        (&rotated, PORTRAIT),
        (&silent, LANDSCAPE),
    ] {
        let job = process(&stack, file, settings()).await;
        assert_renditions(&stack, &job, sizes, 10.0);
    }
    let job = process(&stack, &vfr, settings()).await;
    let avg = job.facts.as_ref().unwrap().average_rate.unwrap();
    // VFR becomes constant at the source's average rate, rounded.
    let rate = avg.round();
    let (_, f) = output(&stack, &job, "youtube");
    assert_eq!(
        f.raw["streams"][0]["r_frame_rate"],
        serde_json::Value::String(format!("{rate}/1"))
    );
    assert_eq!(
        f.raw["streams"][0]["avg_frame_rate"],
        f.raw["streams"][0]["r_frame_rate"]
    );
    assert!(
        (f.duration - 2.0).abs() <= 1.0 / rate + 1e-3,
        "{}",
        f.duration
    );

    // A silent source gets a silent AAC track of the full length.
    let job = process(&stack, &silent, settings()).await;
    let (path, f) = output(&stack, &job, "youtube");
    assert!((f.audio_duration.unwrap() - 2.0).abs() < 0.05, "{f:?}");
    let peak = vidpipe_tests::loudness(&path, None).peak_db;
    assert!(peak < -80.0, "the silent track peaks at {peak} dB");

    // Names with spaces and accents keep them in the output keys.
    let job = process(&stack, &unicode, settings()).await;
    assert_eq!(
        job.outputs[0].key,
        "processed/acme/launch/Été à Zürich — take 2_youtube.mp4"
    );
}

#[tokio::test]
async fn bad_uploads_become_failed_records_with_reasons_and_notifications() {
    let home = tempfile::tempdir().unwrap();
    let stack = open(home.path()).await;
    let dir = home.path();
    let short = dir.join("short.mp4");
    write_clip(&short, "testsrc2=s=320x180:r=30", 6.0, &[]);
    let empty = dir.join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.join("notes.mp4");
    std::fs::write(&text, "these are my notes, not a video\n".repeat(50)).unwrap();
    let whole = dir.join("whole.mp4");
    write_clip(&whole, "testsrc2=s=320x180:r=30", 12.0, &[]);
    let bytes = std::fs::read(&whole).unwrap();
    let truncated = dir.join("truncated.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();

    for (file, reason) in [
        (&short, "long; trimming"),
        (&empty, "empty"),
        (&text, "not readable media"),
        (&truncated, "not readable media"),
    ] {
        let job = process(&stack, file, settings()).await;
        assert_eq!(job.status, ProcessStatus::Failed, "{}", file.display());
        let error = job.error.as_ref().unwrap();
        assert_eq!(error.error, names::SOURCE_REJECTED, "{}", file.display());
        assert!(
            error.reason.contains(reason),
            "{}: reason {:?} lacks {reason:?}",
            file.display(),
            error.reason
        );
        assert!(job.outputs.is_empty());
    }
    let events = JsonlNotifier::new(stack.notifications_path())
        .read_all()
        .await
        .unwrap();
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|e| e.status == ProcessStatus::Failed));
    assert!(
        stack
            .blob_path("processed")
            .read_dir()
            .map_or(true, |mut d| d.next().is_none()),
        "a rejected upload left outputs"
    );
}

#[tokio::test]
async fn a_missing_watermark_is_a_configuration_error_not_a_skip() {
    let home = tempfile::tempdir().unwrap();
    let stack = vidpipe_tests::stack(home.path()).await;
    let src = home.path().join("clip.mp4");
    write_clip(&src, "testsrc2=s=320x180:r=30", 10.0, &[]);
    // No watermark installed at all.
    let job = process(&stack, &src, settings()).await;
    assert_eq!(job.status, ProcessStatus::Failed);
    let error = job.error.unwrap();
    assert_eq!(error.error, names::CONFIGURATION);
    assert!(error.reason.contains("watermark"), "{}", error.reason);
    // And a file that is not an image is refused when installed.
    let bogus = home.path().join("mark.png");
    std::fs::write(&bogus, "not an image").unwrap();
    assert!(stack.install_watermark(Some(&bogus)).await.is_err());
}

#[tokio::test]
async fn the_segment_path_matches_the_single_pass_and_reruns_overwrite() {
    let home = tempfile::tempdir().unwrap();
    let stack = open(home.path()).await;
    let src = home.path().join("long.mp4");
    // B-frames (as cameras and phones write them), keyframes every 2.5 s so segment cuts fall
    // between keyframes, and an odd length on purpose.
    write_clip(
        &src,
        "testsrc2=s=640x360:r=30",
        17.0,
        &["-preset", "veryfast", "-bf", "3", "-g", "75"],
    );
    assert!(
        probe(&src).raw["streams"][0]["has_b_frames"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "the source has no B-frames"
    );
    let single = process(&stack, &src, settings()).await;
    assert_eq!(single.route, Some(Route::SinglePass));
    let single_facts: Vec<Facts> = ["youtube", "reels"]
        .iter()
        .map(|n| output(&stack, &single, n).1)
        .collect();
    let single_frame = frame_at(&output(&stack, &single, "youtube").0, 5.0);

    let segmented_settings = ProcessSettings {
        segment_threshold_seconds: 4.0,
        segment_seconds: 2.0,
        ..settings()
    };
    let seg = process(&stack, &src, segmented_settings.clone()).await;
    assert_eq!(seg.route, Some(Route::Segments), "{seg:#?}");
    // Same source write, same record: the re-run replaced it.
    assert_eq!(seg.id, single.id);
    assert_renditions(&stack, &seg, LANDSCAPE, 17.0);
    for (i, n) in ["youtube", "reels"].iter().enumerate() {
        let f = output(&stack, &seg, n).1;
        assert_eq!(f.video_frames, single_facts[i].video_frames, "{n} frames");
        assert!(
            (f.duration - single_facts[i].duration).abs() < 1e-3,
            "{n} duration"
        );
        assert!(
            (f.audio_duration.unwrap() - single_facts[i].audio_duration.unwrap()).abs() < 0.03,
            "{n} audio"
        );
    }
    // Same pictures at the same time (both are lossy encodes of the same frames).
    let seg_frame = frame_at(&output(&stack, &seg, "youtube").0, 5.0);
    let diff = region_diff(&seg_frame, &single_frame, 0, 0, 640, 360);
    assert!(
        diff < 6.0,
        "segment and single-pass frames differ by {diff}"
    );
    // The manifest lists each segment's time.
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(stack.blob_path(seg.manifest_key.as_ref().unwrap())).unwrap(),
    )
    .unwrap();
    let segments = manifest["timings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["step"] == "render_segment" && t["segment"].is_u64())
        .count();
    assert!(
        segments >= 4,
        "{segments} segments for a 9 s output in 2 s pieces"
    );
    // The audio was encoded once, as its own step beside the segments.
    let steps: Vec<String> = vidpipe_tests::timing_steps(&manifest)
        .into_iter()
        .filter(|s| s != "render_segment")
        .collect();
    assert_eq!(
        steps,
        ["probe", "split", "encode_audio", "assemble", "publish"]
    );
    // Every segment rendered its share: the parts add up to the output, in order.
    // Scratch objects are gone; only the outputs of one source remain.
    let temp = stack.blob_path(&format!("temp/process/{}", seg.id));
    assert!(!temp.exists() || temp.read_dir().unwrap().next().is_none());
    let outputs: Vec<_> = std::fs::read_dir(stack.blob_path("processed/acme/launch"))
        .unwrap()
        .collect();
    assert_eq!(
        outputs.len(),
        5,
        "3 renditions, thumbnail, manifest: {outputs:?}"
    );
}

//! Timeline documents through the service on one machine: a dry run predicts and records
//! nothing (no job, no provider call, no output) and its predicted duration is the rendered
//! one; `generate` assets are made once and then come from the clip cache; references the
//! tenant does not own are refused at their JSON paths; uploaded images and videos are judged by
//! their content at ingest and play in a timeline.

use async_trait::async_trait;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use vidpipe_domain::AssetKind;
use vidpipe_domain::media::ClipSpec;
use vidpipe_domain::ports::{ClipProvider, ProviderError};
use vidpipe_media::{ProceduralProvider, Tools};
use vidpipe_pipeline::edit::{self, EditError};
use vidpipe_pipeline::local::{LocalOptions, LocalStack};
use vidpipe_pipeline::service::ServiceError;

const OWNER: &str = "local";

/// The procedural provider, counting its calls.
struct Counting {
    inner: ProceduralProvider,
    calls: AtomicU32,
}

#[async_trait]
impl ClipProvider for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    fn estimate_usd(&self, spec: &ClipSpec) -> Option<f64> {
        Some(0.01 * spec.frames as f64 / spec.fps as f64)
    }
    async fn generate(&self, spec: &ClipSpec, dest: &Path) -> Result<(), ProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.generate(spec, dest).await
    }
}

fn ffmpeg(args: &[&str]) {
    let tools = Tools::locate(None).expect("ffmpeg");
    let out = Command::new(&tools.ffmpeg)
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ffprobe's own reading: (decoded frames, container duration).
fn measured(path: &Path) -> (u64, f64) {
    let tools = Tools::locate(None).expect("ffprobe");
    let out = Command::new(&tools.ffprobe)
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames:format=duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["streams"][0]["nb_read_frames"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
        v["format"]["duration"].as_str().unwrap().parse().unwrap(),
    )
}

async fn stack(home: &Path, provider: Arc<Counting>) -> LocalStack {
    LocalStack::open(LocalOptions {
        home: Some(home.to_owned()),
        max_concurrency: 1,
        providers: vec![provider],
        ..LocalOptions::default()
    })
    .await
    .unwrap()
}

fn counting() -> Arc<Counting> {
    Arc::new(Counting {
        inner: ProceduralProvider::new(Tools::locate(None).expect("ffmpeg")),
        calls: AtomicU32::new(0),
    })
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries.flatten().map(|e| e.path()).collect()
}

#[tokio::test]
async fn a_dry_run_creates_nothing_and_predicts_the_rendered_duration() {
    let home = tempfile::tempdir().unwrap();
    let provider = counting();
    let stack = stack(home.path(), provider.clone()).await;
    let music = home.path().join("music.wav");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=f=220:duration=2",
        music.to_str().unwrap(),
    ]);
    let asset = stack
        .service()
        .ingest_asset(OWNER, AssetKind::Music, &music, "soundtrack")
        .await
        .unwrap();
    // 2.52 s at 25 fps: 63 frames, not a whole second, so a rounding slip would show.
    let doc = json!({
        "output": {"aspect": "1:1", "resolution": "360p", "fps": 25},
        "tracks": [
            {"clips": [{"asset": {"type": "title", "text": "Hi"}, "start": 0.2, "length": 1}]},
            {"clips": [{"asset": {"type": "generate", "prompt": "a lighthouse at dusk"},
                        "start": 0, "length": 2.52, "effect": "zoom-out"}]}
        ],
        "soundtrack": {"asset_id": asset.id, "volume": 0.5, "fade_out": 0.5}
    });
    let deps = stack.deps();
    let plan = edit::dry_run(deps, OWNER, &doc).await.unwrap();
    assert_eq!(plan.total_frames, 63);
    assert_eq!(plan.route, vidpipe_domain::job::ComposeRoute::Lambda);
    assert_eq!(plan.provider_calls.len(), 1);
    assert!(!plan.provider_calls[0].cache_hit);
    assert_eq!(plan.provider_calls[0].provider, "counting");
    let usd = plan.estimated_cost.total_usd.unwrap();
    assert!((usd - 0.0252).abs() < 1e-9, "estimated {usd}");
    // Nothing happened: no job, no provider call, no composition, nothing cached.
    assert_eq!(provider.calls.load(Ordering::SeqCst), 0);
    assert!(
        deps.jobs
            .list(OWNER, 10, None)
            .await
            .unwrap()
            .jobs
            .is_empty()
    );
    let blobs = home.path().join("blobs");
    assert!(files_under(&blobs.join("compositions")).is_empty());
    assert!(files_under(&blobs.join("cache")).is_empty());

    let done = edit::render(deps, OWNER, &doc, &|_| {}).await.unwrap();
    assert_eq!(provider.calls.load(Ordering::SeqCst), 1);
    let (frames, seconds) = measured(&stack.blob_path(&done.final_key));
    assert_eq!(frames, plan.total_frames as u64);
    assert!(
        (seconds - plan.duration_seconds).abs() <= 1.0 / 25.0,
        "rendered {seconds} s, predicted {} s",
        plan.duration_seconds
    );
    assert!(stack.blob_path(&done.thumbnail_key).exists());
    // Recorded as a composition of no job, completed, readable by its tenant only.
    let record = edit::get(deps, OWNER, &done.composition_id)
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(
        record.status,
        vidpipe_domain::composition::CompositionStatus::Completed
    );
    assert_eq!(record.job_id, None);
    let outputs = record.outputs.as_ref().expect("outputs");
    assert_eq!(outputs.final_key, done.final_key);
    assert!((outputs.duration_seconds - plan.duration_seconds).abs() <= 1.0 / 25.0);
    let predicted = record.timeline.as_ref().expect("the prediction");
    assert_eq!(predicted.total_frames, plan.total_frames);
    assert_eq!(predicted.provider_calls[0].provider, "counting");
    assert!(
        edit::get(deps, "someone-else", &done.composition_id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        deps.jobs
            .list(OWNER, 10, None)
            .await
            .unwrap()
            .jobs
            .is_empty()
    );

    // The same prompt again: the cache answers, the provider is not asked.
    let again = edit::dry_run(deps, OWNER, &doc).await.unwrap();
    assert!(again.provider_calls[0].cache_hit);
    assert_eq!(again.estimated_cost.total_usd, Some(0.0));
    edit::render(deps, OWNER, &doc, &|_| {}).await.unwrap();
    assert_eq!(provider.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn references_the_tenant_does_not_have_are_refused_at_their_paths() {
    let home = tempfile::tempdir().unwrap();
    let stack = stack(home.path(), counting()).await;
    let music = home.path().join("music.wav");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=f=220:duration=1",
        music.to_str().unwrap(),
    ]);
    let service = stack.service();
    let mine = service
        .ingest_asset(OWNER, AssetKind::Music, &music, "m")
        .await
        .unwrap();
    let theirs = service
        .ingest_asset("someone-else", AssetKind::Music, &music, "m")
        .await
        .unwrap();
    let doc = json!({
        "tracks": [
            {"clips": [
                {"asset": {"type": "image", "asset_id": mine.id}, "start": 0, "length": 1},
                {"asset": {"type": "video", "generation": {"job_id": "job_0123456789abcdef0123456789abcdef", "scene": 0}},
                 "start": 1, "length": 1},
                {"asset": {"type": "video", "asset_id": mine.id}, "start": 2, "length": 1}
            ]},
            {"clips": [{"asset": {"type": "audio", "asset_id": theirs.id}, "start": 0, "length": 1}]}
        ],
        "soundtrack": {"asset_id": "ast_0123456789abcdef0123456789abcdef"}
    });
    let Err(EditError::Invalid(errors)) = edit::dry_run(stack.deps(), OWNER, &doc).await else {
        panic!("must be refused");
    };
    for path in [
        "tracks[0].clips[0].asset.asset_id",
        "tracks[0].clips[1].asset.generation",
        "tracks[0].clips[2].asset.asset_id",
        "tracks[1].clips[0].asset.asset_id",
        "soundtrack.asset_id",
    ] {
        assert!(errors.names(path), "{path}: {:?}", errors.errors);
    }
    assert_eq!(errors.errors.len(), 5, "{:?}", errors.errors);
}

/// The rule a refused ingest broke, checked to be reported at `field`.
fn refused_at(result: Result<vidpipe_domain::Asset, ServiceError>, field: &str) -> String {
    match result {
        Err(ServiceError::Invalid(v)) => {
            assert_eq!(v.errors.len(), 1, "{:?}", v.errors);
            assert_eq!(v.errors[0].field, field);
            v.errors[0].rule.clone()
        }
        Err(e) => panic!("expected a validation error at {field}, got {e}"),
        Ok(a) => panic!("expected a validation error at {field}, got asset {}", a.id),
    }
}

#[tokio::test]
async fn video_and_image_assets_are_judged_by_their_content_and_a_bad_one_names_its_field() {
    let home = tempfile::tempdir().unwrap();
    let stack = stack(home.path(), counting()).await;
    let service = stack.service();
    let dir = home.path();
    let p = |name: &str| dir.join(name);
    let s = |path: &PathBuf| path.to_str().unwrap().to_owned();
    // Tiny, short sources: each encode takes a few milliseconds.
    let (mp4, mov, webm, png, jpg) = (
        p("red.mp4"),
        p("blue.mov"),
        p("green.webm"),
        p("still.png"),
        p("still.jpg"),
    );
    for (src, out, extra) in [
        (
            "color=c=red:s=96x64:r=25:d=1.2",
            &mp4,
            vec!["-pix_fmt", "yuv420p"],
        ),
        (
            "color=c=blue:s=64x96:r=25:d=0.8",
            &mov,
            vec!["-pix_fmt", "yuv420p"],
        ),
        (
            "color=c=green:s=64x64:r=25:d=0.4",
            &webm,
            vec![
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
            ],
        ),
        (
            "color=c=white:s=48x32",
            &jpg,
            vec!["-frames:v", "1", "-c:v", "mjpeg"],
        ),
    ] {
        let mut args = vec!["-f".to_owned(), "lavfi".into(), "-i".into(), src.into()];
        args.extend(extra.iter().map(|a| a.to_string()));
        args.push(s(out));
        ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }
    // The static ffmpeg has no PNG encoder.
    vidpipe_testkit::make::write_logo(&png, 48, 32, [255, 255, 255]);

    for (file, (w, h), seconds) in [
        (&mp4, (96, 64), 1.2),
        (&mov, (64, 96), 0.8),
        (&webm, (64, 64), 0.4),
    ] {
        let a = service
            .ingest_asset(OWNER, AssetKind::Video, file, "video")
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(
            (a.kind, a.width, a.height),
            (AssetKind::Video, Some(w), Some(h))
        );
        let d = a.duration_seconds.unwrap();
        assert!((d - seconds).abs() < 0.05, "{}: {d} s", file.display());
        assert!(a.key.ends_with(&format!(
            "original.{}",
            file.extension().unwrap().to_str().unwrap()
        )));
        assert!(stack.blob_path(&a.key).exists());
    }
    for file in [&png, &jpg] {
        let a = service
            .ingest_asset(OWNER, AssetKind::Image, file, "image")
            .await
            .unwrap();
        assert_eq!(
            (a.kind, a.width, a.height),
            (AssetKind::Image, Some(48), Some(32))
        );
    }

    // A still picture named as a video has no video stream; a video named as an image is no
    // picture; a text file is no media; a sliver of a frame is too small; a GIF is no kind's.
    let still_as_video = p("still_as_video.mp4");
    std::fs::copy(&png, &still_as_video).unwrap();
    let video_as_png = p("video_as_image.png");
    std::fs::copy(&mp4, &video_as_png).unwrap();
    let text = p("notes.mov");
    std::fs::write(&text, "not a video at all").unwrap();
    let sliver = p("sliver.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=s=64x8:d=0.2",
        "-pix_fmt",
        "yuv420p",
        &s(&sliver),
    ]);
    let gif = p("anim.gif");
    std::fs::write(&gif, b"GIF89a").unwrap();
    let cases = [
        (
            AssetKind::Video,
            &still_as_video,
            "video",
            "has no video stream",
        ),
        (
            AssetKind::Image,
            &video_as_png,
            "image",
            "is not a PNG or JPEG image",
        ),
        (
            AssetKind::Video,
            &text,
            "tracks[0].clips[0].asset.file",
            "is not a valid video file",
        ),
        (
            AssetKind::Video,
            &sliver,
            "--video",
            "is 64x8; each side must be 16 to 4096 pixels",
        ),
        (
            AssetKind::Video,
            &gif,
            "video",
            "must be an MP4, MOV or WebM file",
        ),
        (
            AssetKind::Image,
            &gif,
            "image",
            "must be a PNG or JPEG file",
        ),
    ];
    for (kind, file, field, why) in cases {
        let rule = refused_at(service.ingest_asset(OWNER, kind, file, field).await, field);
        assert!(rule.contains(why), "{}: {rule}", file.display());
    }
}

#[tokio::test]
async fn a_timeline_plays_an_uploaded_image_and_video_and_refuses_a_video_shorter_than_its_clip() {
    let home = tempfile::tempdir().unwrap();
    let provider = counting();
    let stack = stack(home.path(), provider.clone()).await;
    let service = stack.service();
    let (png, mp4) = (home.path().join("blue.png"), home.path().join("red.mp4"));
    vidpipe_testkit::make::write_logo(&png, 64, 48, [0, 0, 255]);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=red:s=96x64:r=25:d=1.2",
        "-pix_fmt",
        "yuv420p",
        mp4.to_str().unwrap(),
    ]);
    let image = service
        .ingest_asset(OWNER, AssetKind::Image, &png, "image")
        .await
        .unwrap();
    let video = service
        .ingest_asset(OWNER, AssetKind::Video, &mp4, "video")
        .await
        .unwrap();
    let doc = |video_length: f64| {
        json!({
            "output": {"aspect": "16:9", "resolution": "360p", "fps": 25},
            "tracks": [{"clips": [
                {"asset": {"type": "image", "asset_id": image.id}, "start": 0, "length": 1},
                {"asset": {"type": "video", "asset_id": video.id}, "start": 1, "length": video_length}
            ]}]
        })
    };
    // 1.2 s of video cannot fill a 2 s clip: refused at the clip's length, before any render.
    let Err(EditError::Invalid(errors)) = edit::dry_run(stack.deps(), OWNER, &doc(2.0)).await
    else {
        panic!("a video shorter than its clip must be refused");
    };
    assert!(
        errors.names("tracks[0].clips[1].length"),
        "{:?}",
        errors.errors
    );
    assert_eq!(errors.errors.len(), 1, "{:?}", errors.errors);

    let done = edit::render(stack.deps(), OWNER, &doc(1.2), &|_| {})
        .await
        .unwrap();
    assert_eq!(provider.calls.load(Ordering::SeqCst), 0);
    let out = stack.blob_path(&done.final_key);
    let facts = vidpipe_testkit::measure::probe(&out);
    assert_eq!((facts.width, facts.height), (640, 360));
    let (frames, seconds) = measured(&out);
    assert_eq!(frames, 55, "1 s of image and 1.2 s of video at 25 fps");
    assert!((seconds - 2.2).abs() <= 0.04, "{seconds} s");
    // The image in its second, the video in its own: the centre's colour says which plays.
    for (t, want, what) in [
        (0.5, [0.0, 0.0, 255.0], "image"),
        (1.6, [255.0, 0.0, 0.0], "video"),
    ] {
        let frame = vidpipe_testkit::measure::frame_at(&out, t);
        let got = vidpipe_testkit::measure::region_mean(&frame, 300, 160, 40, 40);
        let off = (0..3).map(|c| (got[c] - want[c]).abs()).fold(0.0, f64::max);
        assert!(off < 24.0, "{what} at {t} s: {got:?}");
    }
}

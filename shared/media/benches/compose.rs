//! Compose benchmark: a 30 s 1080p 16:9 30 fps job (5 procedural clips, 0.5 s fades, logo, music,
//! captions) against one bare encode of the same length, size, rate and encoder settings.
//! The figure that matters is the ratio compose / bare: the graph's own overhead.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::time::Instant;
use vidpipe_domain::media::{ClipSpec, CompositionJob};
use vidpipe_domain::plan::RulesPlanner;
use vidpipe_domain::ports::{ClipProvider, MediaEngine};
use vidpipe_domain::request::{BrandBody, GenerationRequestBody, LogoBody, MusicBody};
use vidpipe_domain::{AssetId, Timeline};
use vidpipe_media::compose::h264_aac_output_args;
use vidpipe_media::run;
use vidpipe_media::{FfmpegEngine, ProceduralProvider, Tools};

#[tokio::main]
async fn main() {
    let tools = Tools::locate(None).expect("ffmpeg (run layers/ffmpeg/build.sh)");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let body = GenerationRequestBody {
        prompt: Some("A calm ocean at dawn. Waves roll over golden sand. A city wakes up. The forest breathes. Night falls.".into()),
        duration_seconds: Some(30.0),
        aspect_ratio: Some("16:9".into()),
        resolution: Some("1080p".into()),
        fps: Some(30),
        clip_count: Some(5),
        transition: Some("fade".into()),
        transition_duration_seconds: Some(0.5),
        captions: Some(true.into()),
        seed: Some(42),
        narration: None,
        brand: Some(BrandBody {
            logo: Some(LogoBody {
                asset_id: Some(AssetId::generate().as_str().into()),
                ..Default::default()
            }),
            music: Some(MusicBody {
                asset_id: Some(AssetId::generate().as_str().into()),
                ..Default::default()
            }),
        }),
    };
    let request = body.validate().expect("valid request");
    let plan = RulesPlanner.plan(&request).expect("plan");
    let keys: Vec<String> = (0..plan.scenes.len())
        .map(|i| format!("clip_{i:03}.mp4"))
        .collect();
    let timeline = Timeline::build(
        &request,
        &plan,
        &keys,
        Some("logo".into()),
        Some("music".into()),
    );

    let provider = ProceduralProvider::new(tools.clone());
    let t = Instant::now();
    let mut clips = Vec::new();
    for scene in &plan.scenes {
        let spec = ClipSpec {
            scene_index: scene.index,
            visual_prompt: scene.visual_prompt.clone(),
            seed: request.seed,
            width: timeline.width,
            height: timeline.height,
            fps: timeline.fps,
            frames: scene.frames,
            first_frame: None,
        };
        let dest = d.join(&keys[scene.index as usize]);
        provider.generate(&spec, &dest).await.expect("clip");
        clips.push(dest);
    }
    let clip_secs = t.elapsed().as_secs_f64();

    let logo = d.join("logo.png");
    let mut img = image::RgbaImage::new(400, 200);
    for (x, y, p) in img.enumerate_pixels_mut() {
        let inside = (x as i32 - 200).pow(2) / 4 + (y as i32 - 100).pow(2) < 90 * 90;
        *p = if inside {
            image::Rgba([240, 200, 40, 255])
        } else {
            image::Rgba([0, 0, 0, 0])
        };
    }
    img.save(&logo).unwrap();
    let music = d.join("music.m4a");
    run::ffmpeg(
        &tools,
        [
            "-f",
            "lavfi",
            "-i",
            "sine=f=220:d=20:sample_rate=44100",
            "-c:a",
            "aac",
        ]
        .map(os)
        .into_iter()
        .chain([os(&music)]),
        None,
    )
    .await
    .expect("music");

    let job = CompositionJob {
        timeline: timeline.clone(),
        clips,
        logo: Some(logo),
        music: Some(music),
        narration: Vec::new(),
        work_dir: d.join("work"),
        final_path: d.join("final.mp4"),
        thumbnail_path: d.join("thumbnail.jpg"),
    };
    let engine = FfmpegEngine::new(tools.clone());
    let t = Instant::now();
    engine.compose(&job, &|_| {}).await.expect("compose");
    let compose_secs = t.elapsed().as_secs_f64();
    let info = engine.probe(&job.final_path).await.expect("probe");

    let bare = d.join("bare.mp4");
    let t = Instant::now();
    bare_encode(&tools, &timeline, &bare).await;
    let bare_secs = t.elapsed().as_secs_f64();

    println!(
        "job: {} clips, {}x{} @ {} fps, {} frames ({} s), fade {} s, logo + music + {} captions",
        timeline.clips.len(),
        timeline.width,
        timeline.height,
        timeline.fps,
        timeline.total_frames,
        timeline.duration_seconds,
        timeline.transition_seconds(),
        timeline.captions.len()
    );
    println!("procedural clips: {clip_secs:.2} s (not part of the ratio)");
    println!(
        "compose:          {compose_secs:.2} s (output {:.3} s)",
        info.duration_seconds.unwrap_or_default()
    );
    println!("bare encode:      {bare_secs:.2} s");
    println!(
        "ratio compose/bare: {:.3} (target <= 1.2)",
        compose_secs / bare_secs
    );
}

fn os(s: impl AsRef<OsStr>) -> OsString {
    s.as_ref().to_owned()
}

/// testsrc2 + a sine at the composition's size, rate and length, through the same encoder settings.
async fn bare_encode(tools: &Tools, tl: &Timeline, dest: &Path) {
    let video = format!(
        "testsrc2=s={}x{}:r={}:d={}",
        tl.width, tl.height, tl.fps, tl.duration_seconds
    );
    let audio = format!("sine=f=220:d={}:sample_rate=48000", tl.duration_seconds);
    let mut args = ["-f", "lavfi", "-i", &video, "-f", "lavfi", "-i", &audio]
        .map(os)
        .to_vec();
    args.extend(h264_aac_output_args());
    args.extend([os("-frames:v"), os(tl.total_frames.to_string()), os(dest)]);
    run::ffmpeg(tools, args, None).await.expect("bare encode");
}

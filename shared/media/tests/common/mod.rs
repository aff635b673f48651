//! Shared helpers for the media tests: timelines from the real planner, composition jobs, and
//! what a delivered MP4 must be. Media making and measuring come from `vidpipe_testkit`,
//! re-exported here.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use vidpipe_domain::media::CompositionJob;
use vidpipe_domain::plan::RulesPlanner;
use vidpipe_domain::request::{BrandBody, GenerationRequestBody, LogoBody, MusicBody};
use vidpipe_domain::{AssetId, Timeline};
pub use vidpipe_testkit::*;

pub struct TimelineOpts<'a> {
    pub seconds: u32,
    pub fps: u32,
    pub clips: u32,
    pub transition: &'a str,
    pub transition_seconds: Option<f64>,
    pub captions: bool,
    pub logo: Option<LogoBody>,
    pub music: Option<MusicBody>,
    pub size: (u32, u32),
}

impl Default for TimelineOpts<'_> {
    fn default() -> Self {
        TimelineOpts {
            seconds: 5,
            fps: 30,
            clips: 2,
            transition: "fade",
            transition_seconds: None,
            captions: false,
            logo: None,
            music: None,
            size: (320, 180),
        }
    }
}

pub fn asset_id() -> String {
    AssetId::generate().as_str().to_owned()
}

/// A timeline from the real validator, planner and `Timeline::build`, shrunk to a test size
/// (requests only allow 720p/1080p; the composer takes every size from the timeline).
pub fn timeline(o: TimelineOpts<'_>) -> Timeline {
    let body = GenerationRequestBody {
        prompt: Some("A calm ocean at dawn. Waves roll in. The sun rises over the sea.".into()),
        duration_seconds: Some(o.seconds as f64),
        aspect_ratio: Some("16:9".into()),
        resolution: Some("720p".into()),
        fps: Some(o.fps as i64),
        clip_count: Some(o.clips as i64),
        transition: Some(o.transition.into()),
        transition_duration_seconds: o.transition_seconds,
        captions: Some(o.captions.into()),
        brand: Some(BrandBody {
            logo: o.logo.clone(),
            music: o.music.clone(),
        }),
        ..Default::default()
    };
    let request = body.validate().expect("valid request");
    let plan = RulesPlanner.plan(&request).expect("plan");
    let keys: Vec<String> = (0..plan.scenes.len())
        .map(|i| format!("clip_{i:03}.mp4"))
        .collect();
    let mut tl = Timeline::build(
        &request,
        &plan,
        &keys,
        o.logo.map(|_| "logo".into()),
        o.music.map(|_| "music".into()),
    );
    tl.width = o.size.0;
    tl.height = o.size.1;
    tl.thumbnail_long_side = 160;
    tl
}

pub fn job(tl: Timeline, clips: Vec<PathBuf>, dir: &Path) -> CompositionJob {
    CompositionJob {
        timeline: tl,
        clips,
        logo: None,
        music: None,
        narration: Vec::new(),
        work_dir: dir.join("work"),
        final_path: dir.join("out/final.mp4"),
        thumbnail_path: dir.join("out/thumbnail.jpg"),
    }
}

/// Checks everything the product promises about a delivered MP4, by ffprobe's own reading.
pub fn assert_deliverable(job: &CompositionJob) -> Facts {
    let tl = &job.timeline;
    let info = probe(&job.final_path);
    assert_eq!(info.video_codec, "h264");
    assert_eq!(info.pix_fmt, "yuv420p");
    assert_eq!((info.width, info.height), (tl.width, tl.height));
    let frame = 1.0 / tl.fps as f64;
    let vdur = info.video_duration.expect("video duration");
    assert!(
        (vdur - tl.duration_seconds).abs() <= frame + 1e-6,
        "video {vdur} s vs plan {} s",
        tl.duration_seconds
    );
    assert_eq!(
        info.video_frames,
        Some(tl.total_frames as u64),
        "frame count"
    );
    let fdur = info.duration;
    assert!(
        (fdur - tl.duration_seconds).abs() <= frame + 1e-6,
        "file {fdur} s vs plan {} s",
        tl.duration_seconds
    );
    assert_eq!(info.audio_codec.as_deref(), Some("aac"), "AAC track");
    assert_eq!(info.audio_sample_rate, Some(48_000));
    assert_eq!(info.audio_channels, Some(2));
    let adur = info.audio_duration.expect("audio duration");
    assert!(
        (adur - tl.duration_seconds).abs() <= frame + 1e-6,
        "audio {adur} s vs plan {} s",
        tl.duration_seconds
    );
    assert!(
        is_faststart(&job.final_path),
        "faststart: moov must precede mdat"
    );

    let thumb = image::open(&job.thumbnail_path).expect("thumbnail decodes");
    assert_eq!((thumb.width(), thumb.height()), tl.thumbnail_size());
    info
}

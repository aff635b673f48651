//! Shared helpers for the media tests: lavfi-made inputs, timelines from the real planner, and
//! measurements of outputs (ffprobe facts, decoded pixels, MP4 atom order).
#![allow(dead_code)]

use image::RgbaImage;
use std::path::{Path, PathBuf};
use std::process::Command;
use vidpipe_domain::media::{CompositionJob, ProbeInfo};
use vidpipe_domain::plan::RulesPlanner;
use vidpipe_domain::request::{BrandBody, GenerationRequestBody, LogoBody, MusicBody};
use vidpipe_domain::{AssetId, Timeline};
use vidpipe_media::Tools;

pub fn tools() -> Tools {
    Tools::locate(None).expect("ffmpeg/ffprobe available (run layers/ffmpeg/build.sh)")
}

/// Runs ffmpeg synchronously for test fixtures; panics with stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new(&tools().ffmpeg)
        .args(["-hide_banner", "-nostdin", "-y", "-loglevel", "error"])
        .args(args)
        .output()
        .expect("spawn ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A testsrc2 clip with a 440 Hz tone, H.264.
pub fn test_clip(dir: &Path, name: &str, w: u32, h: u32, fps: u32, seconds: f64) -> PathBuf {
    let path = dir.join(name);
    let src = format!("testsrc2=s={w}x{h}:r={fps}:d={seconds}");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &src,
        "-f",
        "lavfi",
        "-i",
        &format!("sine=f=440:d={seconds}"),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
        path.to_str().unwrap(),
    ]);
    path
}

/// A sine tone as AAC in M4A.
pub fn test_music(dir: &Path, name: &str, seconds: f64) -> PathBuf {
    let path = dir.join(name);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("sine=f=330:d={seconds}:sample_rate=44100"),
        "-c:a",
        "aac",
        path.to_str().unwrap(),
    ]);
    path
}

/// A solid pure-red opaque PNG logo.
pub fn test_logo(dir: &Path) -> PathBuf {
    let path = dir.join("logo.png");
    RgbaImage::from_pixel(200, 100, image::Rgba([255, 0, 0, 255]))
        .save(&path)
        .unwrap();
    path
}

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
        captions: Some(o.captions),
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
        work_dir: dir.join("work"),
        final_path: dir.join("out/final.mp4"),
        thumbnail_path: dir.join("out/thumbnail.jpg"),
    }
}

pub async fn probe(path: &Path) -> ProbeInfo {
    vidpipe_media::probe(&tools(), path)
        .await
        .expect("probe output")
}

/// Checks everything the product promises about a delivered MP4.
pub async fn assert_deliverable(job: &CompositionJob) -> ProbeInfo {
    let tl = &job.timeline;
    let info = probe(&job.final_path).await;
    let v = info.video().expect("video stream");
    assert_eq!(v.codec, "h264");
    assert_eq!(v.pix_fmt.as_deref(), Some("yuv420p"));
    assert_eq!((v.width, v.height), (Some(tl.width), Some(tl.height)));
    let frame = 1.0 / tl.fps as f64;
    let vdur = v.duration_seconds.expect("video duration");
    assert!(
        (vdur - tl.duration_seconds).abs() <= frame + 1e-6,
        "video {vdur} s vs plan {} s",
        tl.duration_seconds
    );
    assert_eq!(
        count_frames(&job.final_path),
        tl.total_frames as u64,
        "frame count"
    );
    let fdur = info.duration_seconds.expect("container duration");
    assert!(
        (fdur - tl.duration_seconds).abs() <= frame + 1e-6,
        "file {fdur} s vs plan {} s",
        tl.duration_seconds
    );
    let a = info.audio().expect("AAC track");
    assert_eq!(a.codec, "aac");
    assert_eq!(a.sample_rate, Some(48_000));
    assert_eq!(a.channels, Some(2));
    let adur = a.duration_seconds.expect("audio duration");
    assert!(
        (adur - tl.duration_seconds).abs() <= frame + 1e-6,
        "audio {adur} s vs plan {} s",
        tl.duration_seconds
    );
    assert!(
        moov_before_mdat(&job.final_path),
        "faststart: moov must precede mdat"
    );

    let thumb = image::open(&job.thumbnail_path).expect("thumbnail decodes");
    assert_eq!((thumb.width(), thumb.height()), tl.thumbnail_size());
    info
}

/// Decoded frame count, by reading every packet.
pub fn count_frames(path: &Path) -> u64 {
    let out = Command::new(&tools().ffprobe)
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("packet count")
}

/// Walks the top-level MP4 atoms and reports whether `moov` comes before `mdat`.
pub fn moov_before_mdat(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap();
    let mut pos = 0usize;
    while pos + 8 <= bytes.len() {
        let mut size = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as u64;
        let kind = &bytes[pos + 4..pos + 8];
        if size == 1 {
            size = u64::from_be_bytes(bytes[pos + 8..pos + 16].try_into().unwrap());
        }
        match kind {
            b"moov" => return true,
            b"mdat" => return false,
            _ => {}
        }
        if size < 8 {
            return false;
        }
        pos += size as usize;
    }
    false
}

/// The decoded frame nearest `seconds`, as RGBA. Raw RGBA rather than PNG: the layer's ffmpeg
/// has no PNG encoder.
pub fn frame_at(video: &Path, seconds: f64) -> RgbaImage {
    let info = Command::new(&tools().ffprobe)
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(video)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&info.stdout);
    let mut dims = text.trim().split(',').map(|v| v.parse::<u32>().unwrap());
    let (w, h) = (dims.next().unwrap(), dims.next().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("frame.rgba");
    ffmpeg(&[
        "-ss",
        &format!("{seconds:.4}"),
        "-i",
        video.to_str().unwrap(),
        "-frames:v",
        "1",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgba",
        raw.to_str().unwrap(),
    ]);
    RgbaImage::from_raw(w, h, std::fs::read(&raw).unwrap()).expect("one RGBA frame")
}

/// Mean absolute difference of the RGB channels over a rectangle.
pub fn region_diff(a: &RgbaImage, b: &RgbaImage, x: u32, y: u32, w: u32, h: u32) -> f64 {
    let mut sum = 0u64;
    for yy in y..y + h {
        for xx in x..x + w {
            let (p, q) = (a.get_pixel(xx, yy), b.get_pixel(xx, yy));
            sum += (0..3)
                .map(|c| (p[c] as i32 - q[c] as i32).unsigned_abs() as u64)
                .sum::<u64>();
        }
    }
    sum as f64 / (w * h * 3) as f64
}

/// Mean RGB of a rectangle.
pub fn region_mean(img: &RgbaImage, x: u32, y: u32, w: u32, h: u32) -> [f64; 3] {
    let mut s = [0f64; 3];
    for yy in y..y + h {
        for xx in x..x + w {
            let p = img.get_pixel(xx, yy);
            for c in 0..3 {
                s[c] += p[c] as f64;
            }
        }
    }
    s.map(|v| v / (w * h) as f64)
}

/// Standard deviation of luma-ish values over a rectangle: zero for a flat (e.g. black) band.
pub fn region_stddev(img: &RgbaImage, x: u32, y: u32, w: u32, h: u32) -> f64 {
    let vals: Vec<f64> = (y..y + h)
        .flat_map(|yy| (x..x + w).map(move |xx| (xx, yy)))
        .map(|(xx, yy)| {
            let p = img.get_pixel(xx, yy);
            0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64
        })
        .collect();
    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
    (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64).sqrt()
}

//! Test support: judging media by measurement (ffprobe facts, decoded pixels, atom order) and
//! making small deterministic test media with ffmpeg's lavfi sources.

pub mod emulator;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use vidpipe_domain::ports::ClipProvider;
use vidpipe_media::Tools;
use vidpipe_pipeline::local::{LocalOptions, LocalStack};
use vidpipe_pipeline::{RunnerConfig, policy::RetryPolicy};

pub fn tools() -> Tools {
    Tools::locate(None).expect("ffmpeg/ffprobe not found: run layers/ffmpeg/build.sh")
}

/// A fresh one-machine stack in its own temporary home.
pub async fn stack(home: &Path) -> LocalStack {
    stack_with(home, None).await
}

pub async fn stack_with(home: &Path, provider: Option<Arc<dyn ClipProvider>>) -> LocalStack {
    let config = RunnerConfig {
        max_concurrency: 2,
        clip_retry: RetryPolicy::immediate(4),
        step_retry: RetryPolicy::immediate(3),
    };
    LocalStack::open_with(
        LocalOptions {
            home: Some(home.to_path_buf()),
            ffmpeg_dir: None,
            max_concurrency: 2,
        },
        provider,
        config,
    )
    .await
    .expect("open local stack")
}

/// The ffprobe facts a test judges an output by.
#[derive(Debug, Clone)]
pub struct Facts {
    pub duration: f64,
    pub width: u32,
    pub height: u32,
    pub video_codec: String,
    pub pix_fmt: String,
    pub video_frames: Option<u64>,
    pub audio_codec: Option<String>,
    pub audio_duration: Option<f64>,
    pub video_bit_rate: Option<u64>,
    pub format: String,
    pub raw: serde_json::Value,
}

pub fn probe(path: &Path) -> Facts {
    let out = Command::new(&tools().ffprobe)
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            "-count_frames",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .cloned()
        .unwrap_or_default();
    let audio = streams.iter().find(|s| s["codec_type"] == "audio").cloned();
    let num = |x: &serde_json::Value| x.as_str().and_then(|s| s.parse::<f64>().ok());
    Facts {
        duration: num(&v["format"]["duration"]).unwrap_or(0.0),
        width: video["width"].as_u64().unwrap_or(0) as u32,
        height: video["height"].as_u64().unwrap_or(0) as u32,
        video_codec: video["codec_name"].as_str().unwrap_or_default().to_owned(),
        pix_fmt: video["pix_fmt"].as_str().unwrap_or_default().to_owned(),
        video_frames: video["nb_read_frames"]
            .as_str()
            .and_then(|s| s.parse().ok()),
        audio_codec: audio
            .as_ref()
            .and_then(|a| a["codec_name"].as_str().map(str::to_owned)),
        audio_duration: audio.as_ref().and_then(|a| num(&a["duration"])),
        video_bit_rate: video["bit_rate"].as_str().and_then(|s| s.parse().ok()),
        format: v["format"]["format_name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        raw: v,
    }
}

/// True when the `moov` atom precedes `mdat`: the file can start playing before it has fully
/// downloaded, which is what `+faststart` is for.
pub fn is_faststart(path: &Path) -> bool {
    let bytes = std::fs::read(path).expect("read mp4");
    let mut pos = 0usize;
    while pos + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &bytes[pos + 4..pos + 8];
        match kind {
            b"moov" => return true,
            b"mdat" => return false,
            _ => {}
        }
        let size = match size {
            1 => u64::from_be_bytes(bytes[pos + 8..pos + 16].try_into().unwrap()) as usize,
            0 => return false,
            s => s,
        };
        pos += size;
    }
    false
}

/// Decodes the frame at `seconds` to RGB. Raw rgb24 through a pipe: the static ffmpeg has no
/// PNG encoder, and raw pixels avoid any second lossy step.
pub fn frame_at(path: &Path, seconds: f64) -> image::RgbImage {
    let facts = probe(path);
    let out = Command::new(&tools().ffmpeg)
        .args(["-v", "error", "-ss", &format!("{seconds:.3}"), "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "frame extract failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    image::RgbImage::from_raw(facts.width, facts.height, out.stdout).expect("one whole rgb24 frame")
}

/// Mean RGB of a rectangle.
pub fn mean_rgb(img: &image::RgbImage, x: u32, y: u32, w: u32, h: u32) -> [f64; 3] {
    let mut sum = [0f64; 3];
    for yy in y..y + h {
        for xx in x..x + w {
            let p = img.get_pixel(xx, yy);
            for c in 0..3 {
                sum[c] += p[c] as f64;
            }
        }
    }
    let n = (w * h) as f64;
    sum.map(|s| s / n)
}

/// Mean absolute difference between two images over a rectangle (0..=255).
pub fn mean_abs_diff(
    a: &image::RgbImage,
    b: &image::RgbImage,
    x: u32,
    y: u32,
    w: u32,
    h: u32,
) -> f64 {
    let mut sum = 0f64;
    for yy in y..y + h {
        for xx in x..x + w {
            let (p, q) = (a.get_pixel(xx, yy), b.get_pixel(xx, yy));
            for c in 0..3 {
                sum += (p[c] as f64 - q[c] as f64).abs();
            }
        }
    }
    sum / (w * h * 3) as f64
}

/// A solid-colour PNG logo.
pub fn write_logo(path: &Path, w: u32, h: u32, rgb: [u8; 3]) -> PathBuf {
    image::RgbaImage::from_pixel(w, h, image::Rgba([rgb[0], rgb[1], rgb[2], 255]))
        .save(path)
        .expect("write logo");
    path.to_path_buf()
}

/// Runs ffmpeg with lavfi inputs to make test media.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new(&tools().ffmpeg)
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A sine-tone music file of `seconds` (format from the extension).
pub fn write_music(path: &Path, seconds: f64) -> PathBuf {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=440:duration={seconds}"),
        path.to_str().unwrap(),
    ]);
    path.to_path_buf()
}

/// The loudest sample of a file's audio in dBFS, by ffmpeg's volumedetect (-91 for silence).
pub fn audio_peak_db(path: &Path) -> f64 {
    let out = Command::new(&tools().ffmpeg)
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-af", "volumedetect", "-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find_map(|l| l.split("max_volume:").nth(1))
        .and_then(|v| v.trim().trim_end_matches("dB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no volumedetect result for {}: {text}", path.display()))
}

/// The step names of a processing manifest's timings, in order.
pub fn timing_steps(manifest: &serde_json::Value) -> Vec<String> {
    manifest["timings"]
        .as_array()
        .expect("manifest timings")
        .iter()
        .map(|t| t["step"].as_str().expect("a timing's step").to_owned())
        .collect()
}

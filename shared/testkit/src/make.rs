//! Test media made with ffmpeg: lavfi clips with a tone or silent, sine-tone music, solid-colour
//! logos.

use crate::{run, tools};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs ffmpeg (quiet, overwriting) and panics with its stderr if it fails.
pub fn ffmpeg(args: &[&str]) {
    let mut cmd = Command::new(&tools().ffmpeg);
    cmd.args(["-hide_banner", "-nostdin", "-y", "-v", "error"])
        .args(args);
    run(&mut cmd);
}

/// `seconds` of the lavfi `video` source (e.g. `testsrc2=s=640x360:r=30`) with a 440 Hz tone at
/// 48 kHz, as H.264 yuv420p and AAC; `extra` goes before the output path (e.g. `-f mov`).
pub fn write_clip(path: &Path, video: &str, seconds: f64, extra: &[&str]) -> PathBuf {
    encode(
        path,
        &[video, "sine=f=440:sample_rate=48000"],
        seconds,
        extra,
    )
}

/// As [`write_clip`], without any audio stream.
pub fn write_video(path: &Path, video: &str, seconds: f64, extra: &[&str]) -> PathBuf {
    encode(path, &[video], seconds, extra)
}

/// Encodes lavfi sources, a video and optionally its audio, to H.264 yuv420p and AAC.
fn encode(path: &Path, sources: &[&str], seconds: f64, extra: &[&str]) -> PathBuf {
    let t = seconds.to_string();
    let mut args = Vec::new();
    for source in sources {
        args.extend(["-f", "lavfi", "-i", source]);
    }
    args.extend(["-t", &t, "-c:v", "libx264", "-preset", "ultrafast"]);
    args.extend(["-pix_fmt", "yuv420p"]);
    if sources.len() > 1 {
        args.extend(["-c:a", "aac"]);
    }
    args.extend_from_slice(extra);
    args.push(path.to_str().expect("a UTF-8 path"));
    ffmpeg(&args);
    path.to_path_buf()
}

/// A testsrc2 clip of `size` at `fps` with a tone (see [`write_clip`]).
pub fn test_clip(path: &Path, size: (u32, u32), fps: u32, seconds: f64) -> PathBuf {
    let (w, h) = size;
    write_clip(path, &format!("testsrc2=s={w}x{h}:r={fps}"), seconds, &[])
}

/// A 440 Hz sine-tone music file of `seconds` (format from the extension).
pub fn write_music(path: &Path, seconds: f64) -> PathBuf {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=440:duration={seconds}"),
        path.to_str().expect("a UTF-8 path"),
    ]);
    path.to_path_buf()
}

/// A solid-colour, opaque PNG logo.
pub fn write_logo(path: &Path, w: u32, h: u32, rgb: [u8; 3]) -> PathBuf {
    image::RgbaImage::from_pixel(w, h, image::Rgba([rgb[0], rgb[1], rgb[2], 255]))
        .save(path)
        .expect("write logo");
    path.to_path_buf()
}

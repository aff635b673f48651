//! Judging media by measurement: ffprobe's facts, decoded pixels, ffmpeg's loudness reading and
//! the MP4 atom order, all read with the tools themselves rather than with vidpipe's own prober.

use crate::{run, tools};
use image::RgbImage;
use std::path::Path;
use std::process::Command;

/// The ffprobe facts a test judges an output by (the first video and audio streams).
#[derive(Debug, Clone)]
pub struct Facts {
    /// The container's duration.
    pub duration: f64,
    pub width: u32,
    pub height: u32,
    pub video_codec: String,
    pub pix_fmt: String,
    /// Decoded video frames (ffprobe `-count_frames`).
    pub video_frames: Option<u64>,
    pub video_duration: Option<f64>,
    /// The nominal rate (`r_frame_rate`).
    pub frame_rate: Option<f64>,
    pub video_bit_rate: Option<u64>,
    pub audio_codec: Option<String>,
    pub audio_duration: Option<f64>,
    pub audio_sample_rate: Option<u32>,
    pub audio_channels: Option<u32>,
    pub format: String,
    /// ffprobe's whole JSON answer.
    pub raw: serde_json::Value,
}

/// Probes a file with ffprobe, counting its decoded frames; panics if ffprobe refuses it.
pub fn probe(path: &Path) -> Facts {
    let out = run(Command::new(&tools().ffprobe)
        .args(["-v", "error", "-print_format", "json"])
        .args(["-show_format", "-show_streams", "-count_frames"])
        .arg(path));
    let v: serde_json::Value = serde_json::from_slice(&out).expect("ffprobe json");
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .cloned()
        .unwrap_or_default();
    let audio = streams.iter().find(|s| s["codec_type"] == "audio").cloned();
    let num = |x: &serde_json::Value| x.as_str().and_then(|s| s.parse::<f64>().ok());
    let int = |x: &serde_json::Value| x.as_str().and_then(|s| s.parse::<u64>().ok());
    let text = |x: &serde_json::Value| x.as_str().unwrap_or_default().to_owned();
    Facts {
        duration: num(&v["format"]["duration"]).unwrap_or(0.0),
        width: video["width"].as_u64().unwrap_or(0) as u32,
        height: video["height"].as_u64().unwrap_or(0) as u32,
        video_codec: text(&video["codec_name"]),
        pix_fmt: text(&video["pix_fmt"]),
        video_frames: int(&video["nb_read_frames"]),
        video_duration: num(&video["duration"]),
        frame_rate: video["r_frame_rate"].as_str().and_then(fraction),
        video_bit_rate: int(&video["bit_rate"]),
        audio_codec: audio.as_ref().map(|a| text(&a["codec_name"])),
        audio_duration: audio.as_ref().and_then(|a| num(&a["duration"])),
        audio_sample_rate: audio
            .as_ref()
            .and_then(|a| int(&a["sample_rate"]))
            .map(|r| r as u32),
        audio_channels: audio
            .as_ref()
            .and_then(|a| a["channels"].as_u64())
            .map(|c| c as u32),
        format: text(&v["format"]["format_name"]),
        raw: v,
    }
}

/// `"30000/1001"` as a number; `None` for `0/0` or anything unparsable.
fn fraction(s: &str) -> Option<f64> {
    let (n, d) = s.split_once('/')?;
    let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
    (d != 0.0).then_some(n / d)
}

/// True when the top-level `moov` atom precedes `mdat`: the file can start playing before it has
/// fully downloaded, which is what `+faststart` is for.
pub fn is_faststart(path: &Path) -> bool {
    let bytes = std::fs::read(path).expect("read mp4");
    let mut pos = 0usize;
    while pos + 8 <= bytes.len() {
        match &bytes[pos + 4..pos + 8] {
            b"moov" => return true,
            b"mdat" => return false,
            _ => {}
        }
        let mut size = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as u64;
        if size == 1 && pos + 16 <= bytes.len() {
            size = u64::from_be_bytes(bytes[pos + 8..pos + 16].try_into().unwrap());
        }
        // 0 means "to the end of the file"; anything under 8 bytes is no atom at all.
        if size < 8 {
            return false;
        }
        pos = pos.saturating_add(size as usize);
    }
    false
}

/// The decoded frame at `seconds`, as RGB. Raw rgb24 through a pipe: the layer's ffmpeg has no
/// PNG encoder, and raw pixels avoid a second lossy step.
pub fn frame_at(video: &Path, seconds: f64) -> RgbImage {
    let dims = run(Command::new(&tools().ffprobe)
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=width,height", "-of", "csv=p=0"])
        .arg(video));
    let text = String::from_utf8_lossy(&dims);
    let (w, h) = text
        .trim()
        .split_once(',')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .unwrap_or_else(|| panic!("no video size for {}: {text:?}", video.display()));
    let pixels = run(Command::new(&tools().ffmpeg)
        .args(["-v", "error", "-ss", &format!("{seconds:.4}"), "-i"])
        .arg(video)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]));
    RgbImage::from_raw(w, h, pixels).expect("one whole rgb24 frame")
}

/// The pixels of a rectangle, row by row.
fn region(img: &RgbImage, x: u32, y: u32, w: u32, h: u32) -> impl Iterator<Item = [u8; 3]> + '_ {
    (y..y + h).flat_map(move |yy| (x..x + w).map(move |xx| img.get_pixel(xx, yy).0))
}

/// Mean RGB of a rectangle.
pub fn region_mean(img: &RgbImage, x: u32, y: u32, w: u32, h: u32) -> [f64; 3] {
    let mut sum = [0f64; 3];
    for p in region(img, x, y, w, h) {
        for c in 0..3 {
            sum[c] += p[c] as f64;
        }
    }
    sum.map(|s| s / (w * h) as f64)
}

/// Mean absolute difference of the RGB channels of two images over a rectangle (0..=255).
pub fn region_diff(a: &RgbImage, b: &RgbImage, x: u32, y: u32, w: u32, h: u32) -> f64 {
    let sum: f64 = region(a, x, y, w, h)
        .zip(region(b, x, y, w, h))
        .map(|(p, q)| (0..3).map(|c| p[c].abs_diff(q[c]) as f64).sum::<f64>())
        .sum();
    sum / (w * h * 3) as f64
}

/// Standard deviation of luma over a rectangle: zero for a flat (e.g. black) band.
pub fn region_stddev(img: &RgbImage, x: u32, y: u32, w: u32, h: u32) -> f64 {
    let luma: Vec<f64> = region(img, x, y, w, h)
        .map(|p| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64)
        .collect();
    let mean = luma.iter().sum::<f64>() / luma.len() as f64;
    (luma.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / luma.len() as f64).sqrt()
}

/// ffmpeg's volumedetect reading of the first audio stream, in dBFS (-91 is digital silence).
#[derive(Debug, Clone, Copy)]
pub struct Loudness {
    pub mean_db: f64,
    pub peak_db: f64,
}

/// The loudness of a file's audio, whole or over `window` (start, length in seconds).
pub fn loudness(path: &Path, window: Option<(f64, f64)>) -> Loudness {
    loudness_through(path, "anull", window)
}

/// [`loudness`] after an audio filter, to read one part of a mix: a band only music occupies,
/// say, to hear how far it was ducked under a voice.
pub fn loudness_through(path: &Path, filter: &str, window: Option<(f64, f64)>) -> Loudness {
    let mut cmd = Command::new(&tools().ffmpeg);
    cmd.args(["-hide_banner", "-nostdin", "-nostats"]);
    if let Some((from, len)) = window {
        cmd.args(["-ss", &from.to_string(), "-t", &len.to_string()]);
    }
    let out = cmd
        .arg("-i")
        .arg(path)
        .args(["-map", "0:a:0", "-af", &format!("{filter},volumedetect")])
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let text = String::from_utf8_lossy(&out.stderr);
    let reading = |key: &str| {
        text.lines()
            .find_map(|l| l.split(key).nth(1))
            .and_then(|v| v.trim().trim_end_matches("dB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no volumedetect {key} for {}: {text}", path.display()))
    };
    Loudness {
        mean_db: reading("mean_volume:"),
        peak_db: reading("max_volume:"),
    }
}

/// ffmpeg's EBU R128 reading of a whole file's first audio stream.
#[derive(Debug, Clone, Copy)]
pub struct R128 {
    /// Integrated loudness, LUFS.
    pub integrated: f64,
    /// True peak, dBTP.
    pub true_peak: f64,
}

pub fn ebur128(path: &Path) -> R128 {
    let out = Command::new(&tools().ffmpeg)
        .args(["-hide_banner", "-nostdin", "-nostats", "-i"])
        .arg(path)
        .args([
            "-map",
            "0:a:0",
            "-af",
            "ebur128=peak=true",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("run ffmpeg");
    let text = String::from_utf8_lossy(&out.stderr);
    // The summary comes last; read its "I:" and "Peak:" lines.
    let summary = text
        .rsplit_once("Summary:")
        .map(|(_, s)| s.to_owned())
        .unwrap_or_else(|| panic!("no ebur128 summary for {}: {text}", path.display()));
    let value = |key: &str| -> f64 {
        summary
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in ebur128 summary: {summary}"))
    };
    R128 {
        integrated: value("I:"),
        true_peak: value("Peak:"),
    }
}

/// Where a file's audio is not silent: `(start, end)` seconds of each stretch louder than
/// `noise_db`, by ffmpeg's silencedetect, after `filter` (use `anull` for none).
pub fn sounding(path: &Path, filter: &str, noise_db: f64) -> Vec<(f64, f64)> {
    let duration = crate::probe(path).duration;
    let out = Command::new(&tools().ffmpeg)
        .args(["-hide_banner", "-nostdin", "-nostats", "-i"])
        .arg(path)
        .args([
            "-map",
            "0:a:0",
            "-af",
            &format!("{filter},silencedetect=noise={noise_db}dB:d=0.12"),
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("run ffmpeg");
    let text = String::from_utf8_lossy(&out.stderr);
    let read = |key: &str| -> Vec<f64> {
        text.lines()
            .filter_map(|l| l.split(key).nth(1))
            .filter_map(|v| v.split_whitespace().next()?.parse().ok())
            .collect()
    };
    let (starts, ends) = (read("silence_start: "), read("silence_end: "));
    // Sound runs from the end of one silence to the start of the next.
    let mut edges = vec![0.0];
    for (i, s) in starts.iter().enumerate() {
        edges.push(*s);
        edges.push(ends.get(i).copied().unwrap_or(duration));
    }
    edges.push(duration);
    edges
        .chunks(2)
        .map(|p| (p[0], p[1]))
        .filter(|(a, b)| b - a > 0.05)
        .collect()
}

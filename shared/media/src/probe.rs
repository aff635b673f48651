//! ffprobe's JSON turned into the domain's `ProbeInfo`, with anything that is not media
//! reported as `InvalidInput` (the caller's problem) rather than `ToolFailed` (ours, retryable).

use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;
use vidpipe_domain::media::{ProbeInfo, StreamInfo, StreamKind};
use vidpipe_domain::ports::MediaError;

use crate::run;
use crate::tools::Tools;

/// Probes `path`. Never modifies it.
pub async fn probe(tools: &Tools, path: &Path) -> Result<ProbeInfo, MediaError> {
    let meta = match tokio::fs::metadata(path).await {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MediaError::InvalidInput(format!(
                "{} does not exist",
                path.display()
            )));
        }
        Err(e) => return Err(MediaError::Io(e)),
    };
    if !meta.is_file() {
        return Err(MediaError::InvalidInput(format!(
            "{} is not a file",
            path.display()
        )));
    }
    if meta.len() == 0 {
        return Err(MediaError::InvalidInput(format!(
            "{} is empty (0 bytes)",
            path.display()
        )));
    }
    let info = probe_input(tools, path.as_os_str())
        .await
        .map_err(|e| match e {
            MediaError::InvalidInput(reason) => MediaError::InvalidInput(format!(
                "{} is not readable media: {reason}",
                path.display()
            )),
            other => other,
        })?;
    if info.video().is_none() && info.audio().is_none() {
        return Err(MediaError::InvalidInput(format!(
            "{} has no audio or video stream",
            path.display()
        )));
    }
    verify_still(path, info).await
}

/// Probes an ffmpeg input (a path or a URL; ffprobe reads only the byte ranges it needs). What
/// ffprobe refuses is `InvalidInput` with its last stderr line; a killed ffprobe, or a URL that
/// would not open (expired, refused), is `ToolFailed`, which a retry may fix.
pub async fn probe_input(tools: &Tools, input: &std::ffi::OsStr) -> Result<ProbeInfo, MediaError> {
    let args = [
        run::os("-v"),
        run::os("error"),
        run::os("-print_format"),
        run::os("json"),
        run::os("-show_format"),
        run::os("-show_streams"),
        run::os(input),
    ];
    let (status, stdout, stderr_tail) = run::capture(&tools.ffprobe, args).await?;
    if !status.success() {
        let reason = stderr_tail
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("unreadable")
            .trim();
        // ffprobe prefixes its complaint with the input it was given; the caller names the
        // input itself, so only the complaint is kept.
        let echoed = format!("{}: ", input.to_string_lossy());
        let reason = reason
            .strip_prefix(echoed.as_str())
            .unwrap_or(reason)
            .to_owned();
        // No exit code: ffprobe itself was killed. An HTTP 4xx or a refused connection: the URL,
        // not the bytes, failed. Either may pass on a retry.
        let ours = status.code().is_none()
            || reason.contains("Server returned 4")
            || reason.contains("Connection refused");
        if ours {
            return Err(MediaError::ToolFailed {
                tool: "ffprobe".into(),
                status: status.to_string(),
                stderr_tail,
            });
        }
        return Err(MediaError::InvalidInput(reason));
    }
    parse(&stdout).map_err(MediaError::InvalidInput)
}

/// ffprobe names a still's codec from the file's extension and header alone, and this ffmpeg
/// cannot decode PNG at all, so a text file called `logo.png` would pass as an image. A PNG or
/// JPEG is therefore decoded in Rust: only real pixels pass, and the size comes from them.
async fn verify_still(path: &Path, mut info: ProbeInfo) -> Result<ProbeInfo, MediaError> {
    let still_formats = ["png_pipe", "jpeg_pipe", "image2"];
    let is_still = still_formats.contains(&info.format_name.as_str())
        && info.audio().is_none()
        && info
            .video()
            .is_some_and(|v| matches!(v.codec.as_str(), "png" | "mjpeg"));
    if !is_still {
        return Ok(info);
    }
    let owned = path.to_path_buf();
    let decoded = tokio::task::spawn_blocking(move || {
        image::ImageReader::open(&owned)
            .and_then(|r| r.with_guessed_format())
            .map_err(|e| e.to_string())?
            .decode()
            .map(|img| (img.width(), img.height()))
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| MediaError::Io(std::io::Error::other(e)))?;
    let (width, height) = decoded.map_err(|why| {
        MediaError::InvalidInput(format!(
            "{} is not a decodable image: {why}",
            path.display()
        ))
    })?;
    if let Some(v) = info
        .streams
        .iter_mut()
        .find(|s| s.kind == StreamKind::Video)
    {
        v.width = Some(width);
        v.height = Some(height);
    }
    Ok(info)
}

/// Parses `ffprobe -print_format json -show_format -show_streams` output.
pub fn parse(json: &[u8]) -> Result<ProbeInfo, String> {
    let raw: RawProbe =
        serde_json::from_slice(json).map_err(|e| format!("unparseable ffprobe output: {e}"))?;
    let format = raw.format.ok_or("ffprobe reported no container format")?;
    // ffprobe happily reads plain text as an "ansi art" video (the tty demuxer): that is not media.
    if format.format_name.as_deref() == Some("tty") {
        return Err("plain text, not media".into());
    }
    let streams = raw.streams.into_iter().map(stream_info).collect();
    Ok(ProbeInfo {
        format_name: format.format_name.unwrap_or_default(),
        duration_seconds: number(&format.duration),
        size_bytes: number(&format.size),
        bit_rate: number(&format.bit_rate),
        streams,
    })
}

fn stream_info(s: RawStream) -> StreamInfo {
    let kind = match s.codec_type.as_deref() {
        Some("video") => StreamKind::Video,
        Some("audio") => StreamKind::Audio,
        Some("subtitle") => StreamKind::Subtitle,
        Some("data") => StreamKind::Data,
        Some("attachment") => StreamKind::Attachment,
        _ => StreamKind::Other,
    };
    // Display-matrix side data is where modern ffprobe reports rotation; old files carry a tag.
    let rotation = s
        .side_data_list
        .iter()
        .find_map(|d| {
            d.get("rotation").and_then(|v| {
                v.as_f64()
                    .or_else(|| v.as_str().and_then(|t| t.parse().ok()))
            })
        })
        .or_else(|| s.tags.get("rotate").and_then(|t| t.parse::<f64>().ok()))
        .map(|r| r.round() as i32)
        .unwrap_or(0);
    StreamInfo {
        index: s.index,
        kind,
        codec: s.codec_name.unwrap_or_default(),
        profile: s.profile,
        width: s.width,
        height: s.height,
        pix_fmt: s.pix_fmt,
        frame_rate: s.r_frame_rate.as_deref().and_then(fraction),
        avg_frame_rate: s.avg_frame_rate.as_deref().and_then(fraction),
        rotation,
        frames: number(&s.nb_frames),
        duration_seconds: number(&s.duration),
        bit_rate: number(&s.bit_rate),
        sample_rate: number(&s.sample_rate),
        channels: s.channels,
    }
}

/// `30000/1001` → 29.97; `0/0` (unknown) → None.
pub fn fraction(text: &str) -> Option<f64> {
    let (n, d) = text.split_once('/').unwrap_or((text, "1"));
    let (n, d) = (n.trim().parse::<f64>().ok()?, d.trim().parse::<f64>().ok()?);
    (n > 0.0 && d > 0.0).then(|| n / d)
}

/// ffprobe prints most numbers as strings, and `N/A` when it does not know.
fn number<T: std::str::FromStr>(v: &Option<String>) -> Option<T> {
    v.as_deref().and_then(|s| s.trim().parse().ok())
}

#[derive(Deserialize)]
struct RawProbe {
    #[serde(default)]
    streams: Vec<RawStream>,
    format: Option<RawFormat>,
}

#[derive(Deserialize)]
struct RawFormat {
    format_name: Option<String>,
    duration: Option<String>,
    size: Option<String>,
    bit_rate: Option<String>,
}

#[derive(Deserialize)]
struct RawStream {
    index: u32,
    codec_type: Option<String>,
    codec_name: Option<String>,
    profile: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    pix_fmt: Option<String>,
    r_frame_rate: Option<String>,
    avg_frame_rate: Option<String>,
    nb_frames: Option<String>,
    duration: Option<String>,
    bit_rate: Option<String>,
    sample_rate: Option<String>,
    channels: Option<u32>,
    #[serde(default)]
    tags: HashMap<String, String>,
    #[serde(default)]
    side_data_list: Vec<serde_json::Map<String, serde_json::Value>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions() {
        assert_eq!(fraction("30/1"), Some(30.0));
        assert!((fraction("30000/1001").unwrap() - 29.97).abs() < 0.01);
        assert_eq!(fraction("0/0"), None);
        assert_eq!(fraction("25"), Some(25.0));
    }

    #[test]
    fn parses_rotation_from_side_data_and_tags() {
        let json = br#"{"streams":[
            {"index":0,"codec_type":"video","codec_name":"h264","width":1920,"height":1080,
             "r_frame_rate":"30/1","avg_frame_rate":"30/1","nb_frames":"90","duration":"3.000000",
             "side_data_list":[{"side_data_type":"Display Matrix","rotation":-90}]},
            {"index":1,"codec_type":"video","codec_name":"h264","tags":{"rotate":"180"}},
            {"index":2,"codec_type":"audio","codec_name":"aac","sample_rate":"48000","channels":2,"bit_rate":"128000"}],
            "format":{"format_name":"mov,mp4,m4a,3gp,3g2,mj2","duration":"3.0","size":"1000","bit_rate":"N/A"}}"#;
        let p = parse(json).unwrap();
        assert_eq!(p.streams[0].rotation, -90);
        assert_eq!(p.streams[0].frames, Some(90));
        assert_eq!(p.streams[1].rotation, 180);
        assert_eq!(p.audio().unwrap().sample_rate, Some(48000));
        assert_eq!(p.bit_rate, None);
        assert_eq!(p.size_bytes, Some(1000));
    }
}

//! Upload processing with ffmpeg: the one-decode pass that writes every rendition and the
//! thumbnail, and the pieces of the segment path (a render per segment from its own seek, the
//! audio once, the stream-copy concat) for sources too long for one Lambda.
//!
//! Inputs are [`MediaSource`]s, so a presigned URL works as well as a local path (ffmpeg then
//! reads only the byte ranges it needs), and errors name the source by its key, never its URL.

use crate::compose::FfmpegEngine;
use crate::filtergraph::{Chain, Filter, Graph, Pad, blur_pad, fmt_num};
use crate::probe::probe_input;
use crate::run::{self, Progress, os};
use crate::tools::Tools;
use async_trait::async_trait;
use image::RgbaImage;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use vidpipe_domain::media::{MediaSource, ProbeInfo, RenderJob, Span, Watermark};
use vidpipe_domain::ports::{MediaError, RenditionEngine};
use vidpipe_domain::processing::{Fit, Rate, WatermarkSpec};

/// x264 speed for renditions: the common choice for platform exports, where bitrate (not CRF)
/// fixes the size and a slower preset buys little at these rates.
pub const RENDITION_PRESET: &str = "veryfast";
pub const AUDIO_RATE: u32 = 48_000;

/// Scales the decoded watermark for an output `width` wide, its alpha multiplied by the opacity
/// (cheaper here, once, than per frame in the graph), and writes it as PAM, which this ffmpeg
/// reads without a PNG decoder. Returns (path, w, h, margin).
fn watermark_for(
    mark: &Watermark,
    width: u32,
    dir: &Path,
) -> Result<(PathBuf, u32, u32, u32), MediaError> {
    let image =
        RgbaImage::from_raw(mark.width, mark.height, mark.rgba.clone()).ok_or_else(|| {
            MediaError::InvalidInput(format!(
                "the watermark's pixels do not fill {}x{}",
                mark.width, mark.height
            ))
        })?;
    let (w, margin) = mark.spec.placement(width);
    let h =
        ((w as f64 * image.height() as f64 / image.width().max(1) as f64).round() as u32).max(1);
    let mut scaled = image::imageops::resize(&image, w, h, image::imageops::FilterType::Lanczos3);
    for px in scaled.pixels_mut() {
        px.0[3] = (px.0[3] as f64 * mark.spec.opacity).round() as u8;
    }
    let path = dir.join(format!("watermark_{width}.pam"));
    crate::captions::write_pam(&scaled, &path)?;
    Ok((path, w, h, margin))
}

/// Decodes a PNG or JPEG by content. ffmpeg here has no PNG decoder, so the image is decoded in
/// Rust.
pub fn decode_watermark(bytes: &[u8], spec: WatermarkSpec) -> Result<Watermark, MediaError> {
    let img = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(MediaError::Io)?
        .decode()
        .map_err(|e| {
            MediaError::InvalidInput(format!("the watermark is not a PNG or JPEG image: {e}"))
        })?
        .to_rgba8();
    Ok(Watermark {
        width: img.width(),
        height: img.height(),
        rgba: img.into_raw(),
        spec,
    })
}

/// Tools echo their input in their errors: a source's URL or path becomes its key.
fn redacted<T>(source: &MediaSource, result: Result<T, MediaError>) -> Result<T, MediaError> {
    result.map_err(|e| match e {
        MediaError::InvalidInput(why) => MediaError::InvalidInput(source.redact(&why)),
        MediaError::ToolFailed {
            tool,
            status,
            stderr_tail,
        } => MediaError::ToolFailed {
            tool,
            status,
            stderr_tail: source.redact(&stderr_tail),
        },
        other => other,
    })
}

/// Probes a source where it lies (ffprobe reads only the byte ranges it needs).
pub async fn probe_source(tools: &Tools, source: &MediaSource) -> Result<ProbeInfo, MediaError> {
    redacted(source, probe_input(tools, source.as_os_str()).await)
}

/// Renders every target (and the thumbnail) from one decode of the input.
pub async fn render(
    tools: &Tools,
    job: &RenderJob<'_>,
    progress: Option<Progress<'_>>,
) -> Result<(), MediaError> {
    redacted(job.source, render_unredacted(tools, job, progress).await)
}

async fn render_unredacted(
    tools: &Tools,
    job: &RenderJob<'_>,
    progress: Option<Progress<'_>>,
) -> Result<(), MediaError> {
    tokio::fs::create_dir_all(job.work_dir).await?;
    let mut args: Vec<OsString> = Vec::new();
    // Input-side seek is frame-accurate when transcoding and skips the intro without decoding
    // more than one GOP of it. `-t` stops reading shortly after the last frame needed.
    args.extend([
        os("-ss"),
        os(fmt_num(job.span.input_offset)),
        os("-t"),
        os(fmt_num(job.span.seconds() + 1.0)),
        os("-i"),
        os(job.source.as_os_str()),
    ]);
    let mut marks = Vec::new();
    for (i, t) in job.targets.iter().enumerate() {
        let (path, w, h, m) = watermark_for(job.watermark, t.fit.width, job.work_dir)?;
        args.extend([os("-i"), os(&path)]);
        marks.push((i + 1, w, h, m));
    }
    let silent_input = if job.audio == Some(false) {
        let index = job.targets.len() + 1;
        args.extend([
            os("-f"),
            os("lavfi"),
            os("-i"),
            os(format!("anullsrc=r={AUDIO_RATE}:cl=stereo")),
        ]);
        Some(index)
    } else {
        None
    };

    let mut g = Graph::new();
    let branches = job.targets.len() + usize::from(job.thumbnail.is_some());
    let split_pads: Vec<Pad> = (0..branches).map(|i| Pad::new(format!("s{i}"))).collect();
    // Constant frame rate first: every branch then sees the same frames, so the renditions agree
    // frame for frame and a variable-rate source comes out constant.
    g.push(
        Chain::new([Pad::video(0)])
            .then(Filter::new("fps").opt("fps", job.span.rate))
            .then(Filter::new("trim").opt("end_frame", job.span.frames))
            .then(Filter::new("split").arg(branches))
            .to(split_pads.clone()),
    );
    let mut video_out = Vec::new();
    for (i, t) in job.targets.iter().enumerate() {
        let fitted = fit_chain(&mut g, split_pads[i].clone(), t.fit, i);
        let (input, _w, _h, m) = marks[i];
        let out = Pad::new(format!("v{i}"));
        g.push(
            Chain::new([fitted, Pad::video(input)])
                .then(
                    Filter::new("overlay")
                        .opt("x", format!("W-w-{m}"))
                        .opt("y", format!("H-h-{m}"))
                        .opt("format", "auto"),
                )
                .then(Filter::new("format").opt("pix_fmts", "yuv420p"))
                .to([out.clone()]),
        );
        video_out.push(out);
    }
    if let Some(th) = job.thumbnail {
        g.push(
            Chain::new([split_pads[job.targets.len()].clone()])
                .then(Filter::new("trim").opt("start_frame", th.frame))
                .then(
                    Filter::new("scale")
                        .opt("w", th.width)
                        .opt("h", th.height)
                        .opt("flags", "bicubic"),
                )
                .then(Filter::new("format").opt("pix_fmts", "yuvj420p"))
                .to([Pad::new("thumb")]),
        );
    }
    args.extend([os("-filter_complex"), os(g.to_string())]);
    let seconds = fmt_num(job.span.seconds());
    for (i, t) in job.targets.iter().enumerate() {
        args.extend([os("-map"), os(video_out[i].map_arg())]);
        match (job.audio, silent_input) {
            (Some(false), Some(index)) => args.extend([os("-map"), os(format!("{index}:a"))]),
            (Some(true), _) => args.extend([os("-map"), os("0:a:0")]),
            _ => {}
        }
        args.extend(video_args(t.video_kbps, job.span.rate));
        if job.audio.is_some() {
            args.extend([
                os("-c:a"),
                os("aac"),
                os("-b:a"),
                os(format!("{}k", t.audio_kbps)),
                os("-ar"),
                os(AUDIO_RATE.to_string()),
                os("-ac"),
                os("2"),
            ]);
        } else {
            args.push(os("-an"));
        }
        args.extend([
            os("-frames:v"),
            os(job.span.frames.to_string()),
            os("-t"),
            os(&seconds),
            os("-movflags"),
            os("+faststart"),
            os(&t.output),
        ]);
    }
    if let Some(th) = job.thumbnail {
        args.extend([
            os("-map"),
            os("[thumb]"),
            os("-frames:v"),
            os("1"),
            os("-update"),
            os("1"),
            os("-q:v"),
            os("3"),
            os(&th.output),
        ]);
    }
    run::ffmpeg(tools, args, progress).await
}

/// The H.264 settings every rendition shares. Average bitrate with a VBV cap at 1.5x and a
/// two-second buffer: close to the target over a whole file, without bursts platforms reject.
/// Closed two-second GOPs keep seeking cheap; segment renders start their own GOP anyway.
fn video_args(kbps: u32, rate: Rate) -> Vec<OsString> {
    let gop = (rate.as_f64() * 2.0).round().max(1.0) as u32;
    vec![
        os("-c:v"),
        os("libx264"),
        os("-preset"),
        os(RENDITION_PRESET),
        os("-profile:v"),
        os("high"),
        os("-b:v"),
        os(format!("{kbps}k")),
        os("-maxrate"),
        os(format!("{}k", kbps * 3 / 2)),
        os("-bufsize"),
        os(format!("{}k", kbps * 2)),
        os("-g"),
        os(gop.to_string()),
        os("-pix_fmt"),
        os("yuv420p"),
        os("-r"),
        os(rate.to_string()),
        os("-fps_mode"),
        os("cfr"),
    ]
}

/// Scales one branch into its box: a plain scale when the aspects agree, else blur-pad (a
/// blurred, cover-scaled copy at quarter size behind the contained picture). Never stretched.
fn fit_chain(g: &mut Graph, input: Pad, fit: Fit, i: usize) -> Pad {
    let fitted = Pad::new(format!("f{i}"));
    let contain = Filter::new("scale")
        .opt("w", fit.inner_width)
        .opt("h", fit.inner_height)
        .opt("flags", "bicubic");
    if !fit.is_padded() {
        g.push(
            Chain::new([input])
                .then(contain)
                .then(Filter::new("setsar").arg(1))
                .to([fitted.clone()]),
        );
        return fitted;
    }
    let padded = blur_pad(
        g,
        Chain::new([input]),
        &i.to_string(),
        (fit.width, fit.height),
        (fit.inner_width, fit.inner_height),
    );
    g.push(
        padded
            .then(Filter::new("setsar").arg(1))
            .to([fitted.clone()]),
    );
    fitted
}

/// Encodes the trimmed audio once, at full length (a silent track when the source has none).
pub async fn encode_audio(
    tools: &Tools,
    source: &MediaSource,
    span: Span,
    has_audio: bool,
    kbps: u32,
    output: &Path,
) -> Result<(), MediaError> {
    let mut args = if has_audio {
        vec![
            os("-ss"),
            os(fmt_num(span.input_offset)),
            os("-i"),
            os(source.as_os_str()),
            os("-map"),
            os("0:a:0"),
        ]
    } else {
        vec![
            os("-f"),
            os("lavfi"),
            os("-i"),
            os(format!("anullsrc=r={AUDIO_RATE}:cl=stereo")),
        ]
    };
    args.extend([
        os("-vn"),
        os("-c:a"),
        os("aac"),
        os("-b:a"),
        os(format!("{kbps}k")),
        os("-ar"),
        os(AUDIO_RATE.to_string()),
        os("-ac"),
        os("2"),
        os("-t"),
        os(fmt_num(span.seconds())),
        os(output),
    ]);
    redacted(source, run::ffmpeg(tools, args, None).await)
}

/// Joins per-segment renders by stream copy and muxes the audio: no re-encode, no seams.
pub async fn concat(
    tools: &Tools,
    parts: &[PathBuf],
    audio: &Path,
    seconds: f64,
    output: &Path,
) -> Result<(), MediaError> {
    let dir = output.parent().unwrap_or(Path::new("."));
    let list = dir.join(format!(
        "{}.concat.txt",
        output.file_name().and_then(|n| n.to_str()).unwrap_or("out")
    ));
    let mut text = String::from("ffconcat version 1.0\n");
    for p in parts {
        // The concat demuxer's quoting: single quotes, with a quote written as '\''.
        let path = p.to_string_lossy().replace('\'', "'\\''");
        text.push_str(&format!("file '{path}'\n"));
    }
    tokio::fs::write(&list, text).await?;
    let args = vec![
        os("-f"),
        os("concat"),
        os("-safe"),
        os("0"),
        os("-i"),
        os(&list),
        os("-i"),
        os(audio),
        os("-map"),
        os("0:v:0"),
        os("-map"),
        os("1:a:0"),
        os("-c"),
        os("copy"),
        os("-t"),
        os(fmt_num(seconds)),
        os("-movflags"),
        os("+faststart"),
        os(output),
    ];
    run::ffmpeg(tools, args, None).await
}

/// A thumbnail by seeking into the source: the segment path's counterpart of the single pass's
/// thumbnail branch.
pub async fn thumbnail(
    tools: &Tools,
    source: &MediaSource,
    source_seconds: f64,
    size: (u32, u32),
    output: &Path,
) -> Result<(), MediaError> {
    let scale = Filter::new("scale")
        .opt("w", size.0)
        .opt("h", size.1)
        .opt("flags", "bicubic");
    let args = vec![
        os("-ss"),
        os(fmt_num(source_seconds)),
        os("-i"),
        os(source.as_os_str()),
        os("-vf"),
        os(scale.to_string()),
        os("-frames:v"),
        os("1"),
        os("-update"),
        os("1"),
        os("-q:v"),
        os("3"),
        os(output),
    ];
    redacted(source, run::ffmpeg(tools, args, None).await)
}

#[async_trait]
impl RenditionEngine for FfmpegEngine {
    async fn probe_source(&self, source: &MediaSource) -> Result<ProbeInfo, MediaError> {
        probe_source(self.tools(), source).await
    }

    fn decode_watermark(&self, bytes: &[u8], spec: WatermarkSpec) -> Result<Watermark, MediaError> {
        decode_watermark(bytes, spec)
    }

    async fn render(
        &self,
        job: &RenderJob<'_>,
        progress: Option<&(dyn Fn(f64) + Send + Sync)>,
    ) -> Result<(), MediaError> {
        let progress = progress.map(|report| Progress {
            total_seconds: job.span.seconds(),
            report,
        });
        render(self.tools(), job, progress).await
    }

    async fn encode_audio(
        &self,
        source: &MediaSource,
        span: Span,
        has_audio: bool,
        kbps: u32,
        output: &Path,
    ) -> Result<(), MediaError> {
        encode_audio(self.tools(), source, span, has_audio, kbps, output).await
    }

    async fn concat(
        &self,
        parts: &[PathBuf],
        audio: &Path,
        seconds: f64,
        output: &Path,
    ) -> Result<(), MediaError> {
        concat(self.tools(), parts, audio, seconds, output).await
    }

    async fn thumbnail(
        &self,
        source: &MediaSource,
        source_seconds: f64,
        size: (u32, u32),
        output: &Path,
    ) -> Result<(), MediaError> {
        thumbnail(self.tools(), source, source_seconds, size, output).await
    }
}

//! Provider media made into scene clips: stills given a Ken Burns move, and videos of another
//! length, rate or shape fitted to the scene.
//!
//! Each is one ffmpeg invocation encoding with [`clip_output_args`], the procedural provider's
//! settings, so the composer cannot tell a fitted or animated clip from a drawn one.

use crate::filtergraph::{Chain, Filter, Graph, Pad, blur_pad, fmt_num};
use crate::procedural::clip_output_args;
use crate::run::{self, os};
use crate::tools::Tools;
use image::{DynamicImage, ImageDecoder, ImageFormat, RgbaImage};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use vidpipe_domain::media::{ClipSpec, Motion, ProbeInfo};
use vidpipe_domain::ports::MediaError;

/// How far a move magnifies the still: enough to read as motion over a few seconds, little
/// enough that an upscaled still stays sharp.
pub const ZOOM: f64 = 1.15;

/// Aspect ratios closer than this count as the same shape: a clip that is 1% off is cropped by
/// that 1% rather than given blurred bars a few pixels thick.
const SAME_SHAPE_TOLERANCE: f64 = 0.01;

/// A clip shorter than the scene by less than this still loops: container durations are
/// rounded, and a clip that ends a frame early must not leave the scene a frame short.
const LOOP_SLACK_SECONDS: f64 = 0.5;

/// Turns a still into `spec`'s clip with `motion`. PNG and JPEG are decoded in Rust (the
/// layer's ffmpeg has no zlib, so no PNG decoder), cover-cropped to the frame and handed over as
/// PAM; other stills ffmpeg decodes (WebP) go to ffmpeg as they are and are cover-cropped there.
pub async fn animate_still(
    tools: &Tools,
    image: &Path,
    spec: &ClipSpec,
    motion: Motion,
    output: &Path,
) -> Result<(), MediaError> {
    check_spec(spec)?;
    prepare_dir(output).await?;
    let pam = output.with_extension("still.pam");
    let input = match decode_still(image, spec, &pam).await? {
        true => vec![os("-f"), os("pam_pipe"), os("-i"), os(&pam)],
        false => ffmpeg_still_input(tools, image).await?,
    };
    let partial = partial_path(output);
    let mut args = input;
    args.extend(still_graph_args(spec, motion));
    args.extend(clip_output_args(spec, &partial));
    let result = run::ffmpeg(tools, args, None).await;
    let _ = tokio::fs::remove_file(&pam).await;
    finish(result, &partial, output).await
}

/// Fits a provider's video to `spec`: looped or cut to exactly `spec.frames` frames, retimed to
/// `spec.fps`, scaled (same shape) or blur-padded (other shape) to the frame; audio dropped.
pub async fn fit_clip(
    tools: &Tools,
    input: &Path,
    spec: &ClipSpec,
    output: &Path,
) -> Result<(), MediaError> {
    check_spec(spec)?;
    let info = crate::probe::probe(tools, input).await?;
    if is_still(&info) {
        return Err(MediaError::InvalidInput(format!(
            "{} is a still image, not a video",
            input.display()
        )));
    }
    let source = VideoSource::from_probe(&info).ok_or_else(|| {
        MediaError::InvalidInput(format!(
            "{} has no video stream of known size",
            input.display()
        ))
    })?;
    prepare_dir(output).await?;
    let partial = partial_path(output);
    let mut args = Vec::new();
    if source.needs_loop(spec) {
        // Demuxer-level looping re-reads the file rather than holding every decoded frame in
        // memory as the `loop` filter would (6 s of 720p is ~200 MB), and offsets each pass's
        // timestamps by the clip's duration, so the seam is one ordinary frame step.
        args.extend([os("-stream_loop"), os("-1")]);
    }
    args.extend([os("-i"), os(input)]);
    args.extend(fit_graph_args(&source, spec));
    args.extend(clip_output_args(spec, &partial));
    let result = run::ffmpeg(tools, args, None).await;
    finish(result, &partial, output).await
}

/// What fitting needs to know about the input's video.
#[derive(Debug, Clone, Copy, PartialEq)]
struct VideoSource {
    /// As displayed: a stream rotated by ±90° is shown (and decoded, ffmpeg autorotates) turned.
    width: u32,
    height: u32,
    frame_rate: Option<f64>,
    duration: Option<f64>,
}

impl VideoSource {
    fn from_probe(info: &ProbeInfo) -> Option<VideoSource> {
        let v = info.video()?;
        let (w, h) = (v.width.filter(|&w| w > 0)?, v.height.filter(|&h| h > 0)?);
        let (width, height) = if v.rotation.rem_euclid(180) == 90 {
            (h, w)
        } else {
            (w, h)
        };
        Some(VideoSource {
            width,
            height,
            frame_rate: v.frame_rate,
            duration: v.duration_seconds.or(info.duration_seconds),
        })
    }

    fn needs_loop(&self, spec: &ClipSpec) -> bool {
        // Unknown length: loop, since `-frames:v` ends a long clip either way.
        self.duration
            .is_none_or(|d| d < spec.duration_seconds() + LOOP_SLACK_SECONDS)
    }
}

fn check_spec(spec: &ClipSpec) -> Result<(), MediaError> {
    if spec.width < 2 || spec.height < 2 || spec.width % 2 == 1 || spec.height % 2 == 1 {
        return Err(MediaError::InvalidInput(format!(
            "frame size {}x{} must be even and non-zero",
            spec.width, spec.height
        )));
    }
    if spec.fps == 0 || spec.frames == 0 {
        return Err(MediaError::InvalidInput(
            "fps and frames must be positive".into(),
        ));
    }
    Ok(())
}

/// The filtergraph and map for a still: cover-crop once, repeat the one frame, then move.
///
/// The move is `perspective` with per-frame corners rather than `zoompan`: zoompan crops at
/// whole source pixels each frame, so a slow move advances in uneven pixel steps (the well-known
/// jitter) unless the still is first upscaled several times over, which costs more than this.
/// perspective samples the source at 1/256 pixel with interpolation, so the view slides
/// continuously, and it works at the output size. Linear interpolation: at no more than
/// [`ZOOM`]× magnification it is as sharp as cubic and about twice as fast.
fn still_graph_args(spec: &ClipSpec, motion: Motion) -> Vec<OsString> {
    let (w, h) = (spec.width, spec.height);
    let mut g = Graph::new();
    g.push(
        Chain::new([Pad::video(0)])
            .then(
                Filter::new("scale")
                    .opt("w", w)
                    .opt("h", h)
                    .opt("force_original_aspect_ratio", "increase")
                    .opt("flags", "bicubic"),
            )
            .then(Filter::new("crop").opt("w", w).opt("h", h))
            .then(Filter::new("setsar").arg(1))
            // Converted once, before the loop: every repeated frame is already yuv420p.
            .then(Filter::new("format").arg("yuv420p"))
            .then(
                Filter::new("loop")
                    .opt("loop", spec.frames - 1)
                    .opt("size", 1)
                    .opt("start", 0),
            )
            .then(Filter::new("setpts").arg(format!("N/({}*TB)", spec.fps)))
            .then(view_filter(motion, spec.frames))
            .then(Filter::new("format").arg("yuv420p"))
            .to([Pad::new("v")]),
    );
    vec![
        os("-filter_complex"),
        os(g.to_string()),
        os("-map"),
        os(Pad::new("v").map_arg()),
    ]
}

/// The source rectangle each output frame shows, as perspective's corner expressions (top-left,
/// top-right, bottom-left, bottom-right; `W`, `H` the frame, `on` the output frame number).
///
/// Zooms scale geometrically (the zoom factor is `ZOOM^t`), so the move looks equally fast at
/// its start and end; a linear factor would seem to slow down as it magnifies. Pans hold
/// [`ZOOM`] and slide the view across the margin that magnification leaves. `PanLeft` moves
/// the picture leftwards in the frame (the view travels right over the still), `PanRight` the
/// reverse.
pub(crate) fn view_filter(motion: Motion, frames: u32) -> Filter {
    let [x0, y0, x1, y1, x2, y2, x3, y3] = view_corners(motion, frames);
    Filter::new("perspective")
        .opt("x0", x0)
        .opt("y0", y0)
        .opt("x1", x1)
        .opt("y1", y1)
        .opt("x2", x2)
        .opt("y2", y2)
        .opt("x3", x3)
        .opt("y3", y3)
        .opt("interpolation", "linear")
        .opt("sense", "source")
        .opt("eval", "frame")
}

/// The corners [`view_filter`] moves, as `perspective` expressions.
fn view_corners(motion: Motion, frames: u32) -> [String; 8] {
    let t = format!("(on/{})", frames.saturating_sub(1).max(1));
    let zoom = fmt_num(ZOOM);
    let z = match motion {
        Motion::ZoomIn => format!("pow({zoom},{t})"),
        Motion::ZoomOut => format!("pow({zoom},1-{t})"),
        Motion::PanLeft | Motion::PanRight => zoom,
    };
    let (vw, vh) = (format!("(W/{z})"), format!("(H/{z})"));
    let x = match motion {
        Motion::ZoomIn | Motion::ZoomOut => format!("((W-{vw})/2)"),
        Motion::PanLeft => format!("((W-{vw})*{t})"),
        Motion::PanRight => format!("((W-{vw})*(1-{t}))"),
    };
    let y = format!("((H-{vh})/2)");
    let right = format!("({x}+{vw})");
    let bottom = format!("({y}+{vh})");
    [
        x.clone(),
        y.clone(),
        right.clone(),
        y,
        x,
        bottom.clone(),
        right,
        bottom,
    ]
}

/// The filtergraph and map that fit a video: retime, then scale or blur-pad.
fn fit_graph_args(source: &VideoSource, spec: &ClipSpec) -> Vec<OsString> {
    let (w, h) = (spec.width, spec.height);
    let retime = Filter::new("fps").arg(spec.fps);
    // Retime where the rate is lower: dropping frames before the blur-pad saves work on them,
    // duplicating after it repeats finished frames instead of padding each copy again.
    let retime_first = source.frame_rate.is_some_and(|r| r > spec.fps as f64);
    let mut head = Chain::new([Pad::video(0)]).then(Filter::new("setpts").arg("PTS-STARTPTS"));
    if retime_first {
        head = head.then(retime.clone());
    }
    let source_aspect = source.width as f64 / source.height as f64;
    let frame_aspect = w as f64 / h as f64;
    let mut g = Graph::new();
    let mut chain = if (source_aspect / frame_aspect - 1.0).abs() <= SAME_SHAPE_TOLERANCE {
        head.then(
            Filter::new("scale")
                .opt("w", w)
                .opt("h", h)
                .opt("force_original_aspect_ratio", "increase")
                .opt("flags", "bicubic"),
        )
        .then(Filter::new("crop").opt("w", w).opt("h", h))
    } else {
        blur_pad(&mut g, head, "", (w, h), contain(source, w, h))
    };
    if !retime_first {
        chain = chain.then(retime);
    }
    g.push(
        chain
            .then(Filter::new("setsar").arg(1))
            .then(Filter::new("format").arg("yuv420p"))
            .to([Pad::new("v")]),
    );
    vec![
        os("-filter_complex"),
        os(g.to_string()),
        os("-map"),
        os(Pad::new("v").map_arg()),
    ]
}

/// The largest even size of the source's shape that fits in `w`x`h`.
fn contain(source: &VideoSource, w: u32, h: u32) -> (u32, u32) {
    let even = |v: f64| ((v.round() as u32) & !1).max(2);
    let (sw, sh) = (source.width as f64, source.height as f64);
    if sw * h as f64 >= sh * w as f64 {
        (w, even(w as f64 * sh / sw).min(h))
    } else {
        (even(h as f64 * sw / sh).min(w), h)
    }
}

/// Decodes a PNG or JPEG (by content, not name) and writes it to `pam` cover-cropped to the
/// frame, upright and flattened onto black. `Ok(false)` when the file is neither, for ffmpeg to
/// try; `InvalidInput` when it claims to be one but does not decode.
async fn decode_still(image: &Path, spec: &ClipSpec, pam: &Path) -> Result<bool, MediaError> {
    let (src, dest, w, h) = (image.to_owned(), pam.to_owned(), spec.width, spec.height);
    tokio::task::spawn_blocking(move || {
        let reader = match image::ImageReader::open(&src).and_then(|r| r.with_guessed_format()) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(MediaError::InvalidInput(format!(
                    "{} does not exist",
                    src.display()
                )));
            }
            Err(e) => return Err(MediaError::Io(e)),
        };
        if !matches!(reader.format(), Some(ImageFormat::Png | ImageFormat::Jpeg)) {
            return Ok(false);
        }
        let bad = |e: image::ImageError| match e {
            image::ImageError::IoError(io) => MediaError::Io(io),
            other => MediaError::InvalidInput(format!(
                "{} is not a decodable image: {other}",
                src.display()
            )),
        };
        let mut decoder = reader.into_decoder().map_err(bad)?;
        // Phone photos are stored sideways with an EXIF note; the still must move upright.
        let orientation = decoder.orientation().map_err(bad)?;
        let mut img = DynamicImage::from_decoder(decoder).map_err(bad)?;
        img.apply_orientation(orientation);
        write_pam_covering(&img, w, h, &dest)?;
        Ok(true)
    })
    .await
    .map_err(|e| MediaError::Io(std::io::Error::other(e)))?
}

/// Crops the centre of `img` to the frame's shape and resizes it to exactly `w`x`h`: the PAM
/// holds only the pixels the clip shows, however large the still.
fn write_pam_covering(img: &DynamicImage, w: u32, h: u32, dest: &Path) -> Result<(), MediaError> {
    let (iw, ih) = (img.width().max(1), img.height().max(1));
    let (cw, ch) = if iw as u64 * h as u64 > ih as u64 * w as u64 {
        (((ih as u64 * w as u64) / h as u64).max(1) as u32, ih)
    } else {
        (iw, ((iw as u64 * h as u64) / w as u64).max(1) as u32)
    };
    let cropped = img.crop_imm((iw - cw) / 2, (ih - ch) / 2, cw, ch);
    let mut frame: RgbaImage =
        image::imageops::resize(&cropped, w, h, image::imageops::FilterType::CatmullRom);
    // yuv420p has no alpha, and dropping it would show whatever colour transparent pixels hold.
    for px in frame.pixels_mut() {
        let a = px.0[3] as u32;
        for c in 0..3 {
            px.0[c] = ((px.0[c] as u32 * a + 127) / 255) as u8;
        }
        px.0[3] = 255;
    }
    crate::captions::write_pam(&frame, dest)
}

/// Input arguments for a still ffmpeg decodes itself, after checking that it is one.
async fn ffmpeg_still_input(tools: &Tools, image: &Path) -> Result<Vec<OsString>, MediaError> {
    let info = crate::probe::probe(tools, image).await?;
    if !is_still(&info) {
        return Err(MediaError::InvalidInput(format!(
            "{} is not a still image (read as {})",
            image.display(),
            info.format_name
        )));
    }
    // Name the demuxer ffprobe found: left to guess from the name, image2 would read a `%` in
    // the path as a frame-number pattern.
    let demuxer = if info.format_name.ends_with("_pipe") {
        vec![os("-f"), os(&info.format_name)]
    } else {
        vec![os("-f"), os("image2"), os("-pattern_type"), os("none")]
    };
    let mut args = demuxer;
    args.extend([os("-i"), os(image)]);
    Ok(args)
}

/// One picture in an image container, not a video or a sound.
fn is_still(info: &ProbeInfo) -> bool {
    let image_format = info.format_name == "image2" || info.format_name.ends_with("_pipe");
    image_format && info.video().is_some() && info.audio().is_none()
}

async fn prepare_dir(output: &Path) -> Result<(), MediaError> {
    if let Some(parent) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent).await?;
    }
    Ok(())
}

/// Written beside the destination and renamed, so a cache never sees half a clip.
fn partial_path(output: &Path) -> PathBuf {
    output.with_extension("partial.mp4")
}

async fn finish(
    result: Result<(), MediaError>,
    partial: &Path,
    output: &Path,
) -> Result<(), MediaError> {
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(partial).await;
        return Err(e);
    }
    tokio::fs::rename(partial, output).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(width: u32, height: u32) -> VideoSource {
        VideoSource {
            width,
            height,
            frame_rate: Some(24.0),
            duration: Some(6.0),
        }
    }

    #[test]
    fn contain_keeps_the_shape_in_even_pixels() {
        assert_eq!(contain(&source(1280, 720), 1080, 1920), (1080, 608));
        assert_eq!(contain(&source(720, 1280), 1920, 1080), (608, 1080));
        assert_eq!(contain(&source(1000, 1000), 1080, 1920), (1080, 1080));
    }

    #[test]
    fn corners_start_and_end_where_the_move_says() {
        let [x0, _, x1, ..] = view_corners(Motion::ZoomIn, 91);
        assert_eq!(x0, "((W-(W/pow(1.15,(on/90))))/2)");
        assert_eq!(x1, "(((W-(W/pow(1.15,(on/90))))/2)+(W/pow(1.15,(on/90))))");
        let [x0, y0, ..] = view_corners(Motion::PanRight, 1);
        assert_eq!(x0, "((W-(W/1.15))*(1-(on/1)))");
        assert_eq!(y0, "((H-(H/1.15))/2)");
    }
}

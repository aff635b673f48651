//! Stills animated and provider videos fitted to a scene, judged by measurement: ffprobe's
//! facts, and the decoded pixels of a drawn feature (its size and position per frame) or of
//! bands of the frame (blur, repetition).

mod common;

use common::*;
use image::{Rgb, RgbImage};
use std::path::{Path, PathBuf};
use std::process::Command;
use vidpipe_domain::media::{ClipSpec, Motion};
use vidpipe_domain::ports::MediaError;
use vidpipe_media::motion::{ZOOM, animate_still, fit_clip};

const BACKGROUND: u8 = 128;

fn spec(width: u32, height: u32, fps: u32, frames: u32) -> ClipSpec {
    ClipSpec {
        scene_index: 0,
        visual_prompt: "a lighthouse on a cliff".into(),
        seed: 1,
        width,
        height,
        fps,
        frames,
        first_frame: None,
    }
}

/// A grey still with a dark grid and a white square in the middle, a fifth of the short side:
/// the square's brightness along a row gives its apparent width and position to a fraction of
/// a pixel. Its edges ramp over a twentieth of its side so that the measurement follows the
/// geometry rather than how one resampler renders a hard edge at one sub-pixel phase.
fn write_still(path: &Path, w: u32, h: u32) -> PathBuf {
    let side = (w.min(h) / 5) as f64;
    let ramp = side / 20.0;
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    // 1 inside the square, 0 outside, a smoothstep across its edge.
    let cover = |d: f64| {
        let t = ((side / 2.0 - d) / ramp + 0.5).clamp(0.0, 1.0);
        t * t * (3.0 - 2.0 * t)
    };
    let img = RgbImage::from_fn(w, h, |x, y| {
        let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
        let near = (px - cx).abs() < side / 2.0 + ramp && (py - cy).abs() < side / 2.0 + ramp;
        if near {
            let f = cover((px - cx).abs()) * cover((py - cy).abs());
            Rgb([(BACKGROUND as f64 + (255.0 - BACKGROUND as f64) * f).round() as u8; 3])
        } else if x % 40 < 3 || y % 40 < 3 {
            Rgb([40, 40, 60])
        } else {
            Rgb([BACKGROUND; 3])
        }
    });
    img.save(path).expect("write still");
    path.to_path_buf()
}

/// A 6 s, 1280x720, 24 fps testsrc2 clip without audio, shaped like a Nova Reel clip.
fn nova_reel_clip(dir: &Path) -> PathBuf {
    write_video(&dir.join("nova.mp4"), "testsrc2=s=1280x720:r=24", 6.0, &[])
}

/// Every decoded frame, as RGB.
fn all_frames(video: &Path) -> Vec<RgbImage> {
    let info = probe(video);
    let out = Command::new(&tools().ffmpeg)
        .args(["-v", "error", "-i"])
        .arg(video)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = (info.width * info.height * 3) as usize;
    out.stdout
        .chunks_exact(size)
        .map(|c| RgbImage::from_raw(info.width, info.height, c.to_vec()).unwrap())
        .collect()
}

fn luma(p: &Rgb<u8>) -> f64 {
    0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64
}

/// The white square's apparent width and horizontal centre, in pixels, from the rows around
/// the frame's middle: each pixel counts for how far it is from the grey towards white.
fn square(img: &RgbImage) -> (f64, f64) {
    let mid = img.height() / 2;
    let rows = mid - 8..mid + 8;
    let (mut mass, mut moment) = (0.0, 0.0);
    for y in rows.clone() {
        for x in 0..img.width() {
            let l = luma(img.get_pixel(x, y));
            let wgt = ((l - BACKGROUND as f64) / (255.0 - BACKGROUND as f64)).clamp(0.0, 1.0);
            mass += wgt;
            moment += wgt * (x as f64 + 0.5);
        }
    }
    let n = rows.len() as f64;
    (mass / n, moment / mass)
}

/// Least-squares line through `ys` against frame number: (slope, worst residual).
fn line_fit(ys: &[f64]) -> (f64, f64) {
    let n = ys.len() as f64;
    let mx = (n - 1.0) / 2.0;
    let my = ys.iter().sum::<f64>() / n;
    let sxy: f64 = ys
        .iter()
        .enumerate()
        .map(|(i, y)| (i as f64 - mx) * (y - my))
        .sum();
    let sxx: f64 = (0..ys.len()).map(|i| (i as f64 - mx).powi(2)).sum();
    let slope = sxy / sxx;
    let worst = ys
        .iter()
        .enumerate()
        .map(|(i, y)| (y - (my + slope * (i as f64 - mx))).abs())
        .fold(0.0, f64::max);
    (slope, worst)
}

/// Mean absolute luma step between neighbouring pixels over a rectangle: high for sharp
/// detail, near zero for a blurred band.
fn detail(img: &RgbImage, x: u32, y: u32, w: u32, h: u32) -> f64 {
    let mut sum = 0.0;
    for yy in y..y + h {
        for xx in x..x + w {
            let here = luma(img.get_pixel(xx, yy));
            sum += (luma(img.get_pixel(xx + 1, yy)) - here).abs();
            sum += (luma(img.get_pixel(xx, yy + 1)) - here).abs();
        }
    }
    sum / (w * h) as f64
}

/// What every scene clip must be, by ffprobe's reading.
fn assert_clip(path: &Path, spec: &ClipSpec) {
    let info = probe(path);
    assert_eq!(info.video_codec, "h264");
    assert_eq!(info.pix_fmt, "yuv420p");
    assert_eq!((info.width, info.height), (spec.width, spec.height));
    assert_eq!(info.frame_rate, Some(spec.fps as f64));
    assert_eq!(info.video_frames, Some(spec.frames as u64), "frame count");
    assert_eq!(info.audio_codec, None, "no audio stream");
    assert!(
        !path.with_extension("partial.mp4").exists(),
        "no partial file left behind"
    );
}

#[tokio::test]
async fn zoom_in_magnifies_the_centre_smoothly() {
    let dir = tempfile::tempdir().unwrap();
    // Square into 9:16: covered, the square is 128 px wide at the start.
    let still = write_still(&dir.path().join("still.png"), 800, 800);
    let spec = spec(360, 640, 30, 45);
    let out = dir.path().join("clip.mp4");
    animate_still(&tools(), &still, &spec, Motion::ZoomIn, &out)
        .await
        .unwrap();
    assert_clip(&out, &spec);

    let frames = all_frames(&out);
    let (first, last) = (&frames[0], &frames[44]);
    assert!(
        region_diff(first, last, 100, 240, 160, 160) > 8.0,
        "the centre changes"
    );
    let (w0, c0) = square(first);
    let (w1, c1) = square(last);
    assert!((w0 - 128.0).abs() < 1.5, "start width {w0}");
    assert!((w1 / w0 - ZOOM).abs() < 0.01, "zoomed {w0} -> {w1}");
    assert!(
        (c0 - 180.0).abs() < 1.0 && (c1 - 180.0).abs() < 1.0,
        "about the centre: {c0} {c1}"
    );
    // Covered: the grey reaches both side edges.
    for x in [0, 352] {
        assert!(
            region_mean(first, x, 0, 8, 640)[0] > 90.0,
            "edge at x={x} is filled"
        );
    }
    // Smooth: the log of the width grows by the same step every frame, to a fraction of a pixel.
    let logs: Vec<f64> = frames.iter().map(|f| square(f).0.ln()).collect();
    let (slope, worst) = line_fit(&logs);
    assert!(
        (slope / (ZOOM.ln() / 44.0) - 1.0).abs() < 0.05,
        "slope {slope}"
    );
    assert!(
        worst * w1 < 0.35,
        "width strays {:.3} px from a steady zoom",
        worst * w1
    );
}

#[tokio::test]
async fn zoom_out_reverses_from_a_landscape_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    let png = write_still(&dir.path().join("still.png"), 1600, 900);
    let jpeg = dir.path().join("still.jpg");
    image::open(&png).unwrap().save(&jpeg).unwrap();
    let spec = spec(360, 640, 24, 36);
    let out = dir.path().join("clip.mp4");
    animate_still(&tools(), &jpeg, &spec, Motion::ZoomOut, &out)
        .await
        .unwrap();
    assert_clip(&out, &spec);
    let frames = all_frames(&out);
    let (w0, _) = square(&frames[0]);
    let (w1, _) = square(&frames[35]);
    assert!((w1 - 128.0).abs() < 1.5, "end width {w1}");
    assert!((w0 / w1 - ZOOM).abs() < 0.01, "zoomed out {w0} -> {w1}");
}

#[tokio::test]
async fn pans_move_the_picture_in_their_direction_smoothly() {
    let dir = tempfile::tempdir().unwrap();
    let still = write_still(&dir.path().join("still.png"), 800, 800);
    let spec = spec(360, 640, 30, 45);
    // Magnified by ZOOM, the view slides across the whole margin: 15% of the frame width.
    let travel = 360.0 * (ZOOM - 1.0);
    for (motion, sign) in [(Motion::PanLeft, -1.0), (Motion::PanRight, 1.0)] {
        let out = dir.path().join(format!("{motion:?}.mp4"));
        animate_still(&tools(), &still, &spec, motion, &out)
            .await
            .unwrap();
        assert_clip(&out, &spec);
        let frames = all_frames(&out);
        let xs: Vec<f64> = frames.iter().map(|f| square(f).1).collect();
        let shift = xs[44] - xs[0];
        assert!(
            (shift - sign * travel).abs() < 1.0,
            "{motion:?}: moved {shift} px, expected {}",
            sign * travel
        );
        let widths: Vec<f64> = frames.iter().map(|f| square(f).0).collect();
        assert!(
            widths.iter().all(|w| (w - 128.0 * ZOOM).abs() < 1.5),
            "{motion:?}: magnification held: {widths:?}"
        );
        let (slope, worst) = line_fit(&xs);
        assert!(
            (slope * 44.0 - sign * travel).abs() < 1.0,
            "{motion:?}: slope {slope}"
        );
        assert!(
            worst < 0.2,
            "{motion:?}: strays {worst:.3} px from a steady pan"
        );
    }
}

#[tokio::test]
async fn fit_clip_blur_pads_a_landscape_clip_into_a_portrait_frame_and_cuts_it() {
    let dir = tempfile::tempdir().unwrap();
    let nova = nova_reel_clip(dir.path());
    // 6 s into a 3 s scene.
    let spec = spec(1080, 1920, 30, 90);
    let out = dir.path().join("clip.mp4");
    fit_clip(&tools(), &nova, &spec, &out).await.unwrap();
    assert_clip(&out, &spec);

    // 1280x720 fitted to 1080 wide is 608 tall: rows 656..1264 are the sharp clip.
    let frame = frame_at(&out, 1.0);
    let centre = detail(&frame, 0, 700, 1079, 500);
    for (name, y) in [("top", 20), ("bottom", 1280)] {
        let band = detail(&frame, 0, y, 1079, 600);
        assert!(
            band * 5.0 < centre,
            "{name} band is blurred: detail {band:.2} vs centre {centre:.2}"
        );
        let l = region_mean(&frame, 0, y, 1080, 600);
        assert!(
            l.iter().sum::<f64>() / 3.0 > 20.0,
            "{name} band is not black: {l:?}"
        );
        assert!(
            region_stddev(&frame, 0, y, 1080, 600) > 3.0,
            "{name} band holds the clip's colours, not a flat fill"
        );
    }
}

#[tokio::test]
async fn fit_clip_loops_a_short_clip_to_fill_the_scene() {
    let dir = tempfile::tempdir().unwrap();
    let nova = nova_reel_clip(dir.path());
    // Same shape, another size and rate: 6 s at 24 fps into 10 s at 30 fps.
    let spec = spec(640, 360, 30, 300);
    let out = dir.path().join("clip.mp4");
    fit_clip(&tools(), &nova, &spec, &out).await.unwrap();
    assert_clip(&out, &spec);

    let second_1 = frame_at(&out, 0.5);
    let second_7 = frame_at(&out, 6.5);
    let other = frame_at(&out, 3.5);
    let same = region_diff(&second_1, &second_7, 0, 0, 640, 360);
    let differ = region_diff(&second_1, &other, 0, 0, 640, 360);
    assert!(same < 1.5, "6.5 s repeats 0.5 s: diff {same:.2}");
    assert!(
        differ > 5.0,
        "testsrc2 moves, so the loop is real: diff {differ:.2}"
    );

    // Scaled, not padded or cropped: each corner holds the source's corner.
    let source = frame_at(&nova, 0.5);
    for (x, y) in [(0, 0), (600, 0), (0, 320), (600, 320)] {
        let ours = region_mean(&second_1, x, y, 40, 40);
        let theirs = region_mean(&source, x * 2, y * 2, 80, 80);
        for c in 0..3 {
            assert!(
                (ours[c] - theirs[c]).abs() < 8.0,
                "corner ({x},{y}): {ours:?} vs source {theirs:?}"
            );
        }
    }
}

#[tokio::test]
async fn fit_clip_cuts_a_long_clip_from_its_start_and_drops_audio() {
    let dir = tempfile::tempdir().unwrap();
    // 48 fps into 24: the rate is halved before the scale.
    let long = test_clip(&dir.path().join("long.mp4"), (320, 180), 48, 6.0);
    assert!(probe(&long).audio_codec.is_some(), "the source has a tone");
    let spec = spec(320, 180, 24, 72);
    let out = dir.path().join("clip.mp4");
    fit_clip(&tools(), &long, &spec, &out).await.unwrap();
    assert_clip(&out, &spec);
    for t in [0.0, 2.5] {
        let diff = region_diff(&frame_at(&out, t), &frame_at(&long, t), 0, 0, 320, 180);
        assert!(diff < 2.0, "frame at {t} s is the source's: diff {diff:.2}");
    }
}

#[tokio::test]
async fn what_is_not_the_right_media_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(320, 180, 24, 24);
    let out = dir.path().join("clip.mp4");
    let garbage = dir.path().join("garbage.png");
    std::fs::write(
        &garbage,
        b"\x13\x37 not media at all \x00\xff\xfe".repeat(40),
    )
    .unwrap();
    let unnamed = dir.path().join("garbage");
    std::fs::copy(&garbage, &unnamed).unwrap();
    let video = test_clip(&dir.path().join("video.mp4"), (320, 180), 24, 1.0);
    let tone = write_music(&dir.path().join("tone.m4a"), 1.0);
    let still = write_still(&dir.path().join("still.png"), 200, 200);

    for input in [&garbage, &unnamed, &video] {
        let err = animate_still(&tools(), input, &spec, Motion::ZoomIn, &out)
            .await
            .unwrap_err();
        assert!(
            matches!(err, MediaError::InvalidInput(_)),
            "animate_still({}): {err:?}",
            input.display()
        );
    }
    for input in [&garbage, &unnamed, &tone, &still] {
        let err = fit_clip(&tools(), input, &spec, &out).await.unwrap_err();
        assert!(
            matches!(err, MediaError::InvalidInput(_)),
            "fit_clip({}): {err:?}",
            input.display()
        );
    }
    assert!(!out.exists(), "nothing written");
}

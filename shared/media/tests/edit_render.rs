//! Timeline documents rendered in one ffmpeg pass, judged by measurement: a title's pixels in
//! its window and nowhere else, a Ken Burns zoom over an image, blur-padded `contain` bands, and
//! a soundtrack ducked under a voice clip. Small on purpose: 360p, 2–3 s.

mod common;

use common::*;
use image::{Rgb, RgbImage, Rgba, RgbaImage};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use vidpipe_domain::edit::{Edit, EditJob, validate};
use vidpipe_media::edit_render::render_edit;

const A: &str = "ast_0123456789abcdef0123456789abcdef";

/// The files a document's layers, voices and soundtrack read.
#[derive(Default)]
struct EditFiles {
    layers: Vec<Option<PathBuf>>,
    audio: Vec<PathBuf>,
    soundtrack: Option<PathBuf>,
}

async fn render(dir: &Path, doc: Value, files: EditFiles) -> (Edit, PathBuf) {
    let edit = validate(&doc).expect("a valid document");
    let out = EditJob {
        edit: edit.clone(),
        layer_files: files.layers,
        audio_files: files.audio,
        soundtrack_file: files.soundtrack,
        final_path: dir.join("final.mp4"),
        thumbnail_path: dir.join("thumb.jpg"),
        work_dir: dir.join("work"),
    };
    render_edit(&tools(), &out, &|_| {}).await.expect("render");
    let facts = probe(&out.final_path);
    assert_eq!(
        (facts.width, facts.height),
        (edit.output.width, edit.output.height)
    );
    assert_eq!(facts.video_frames, Some(edit.total_frames as u64));
    let audio = facts.audio_duration.expect("an audio track");
    assert!(
        (audio - edit.duration_seconds).abs() < 0.05,
        "audio {audio}"
    );
    assert!(std::fs::metadata(&out.thumbnail_path).unwrap().len() > 0);
    (edit, out.final_path)
}

fn brightest(img: &RgbImage, x: u32, y: u32, w: u32, h: u32) -> usize {
    let mut n = 0;
    for yy in y..y + h {
        for xx in x..x + w {
            let p = img.get_pixel(xx, yy).0;
            if p.iter().all(|&c| c > 200) {
                n += 1;
            }
        }
    }
    n
}

#[tokio::test]
async fn a_title_shows_in_its_window_and_not_outside_it() {
    let dir = tempfile::tempdir().unwrap();
    let doc = json!({
        "output": {"resolution": "360p", "fps": 25, "background": "#000000"},
        "tracks": [{"clips": [
            {"asset": {"type": "title", "text": "HELLO WORLD", "style": {"style": "bold-outline"}},
             "start": 0.8, "length": 0.8}
        ]}],
        "duration": 2
    });
    let (edit, video) = render(
        dir.path(),
        doc,
        EditFiles {
            layers: vec![None],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(edit.total_frames, 50);
    let (w, h) = (edit.output.width, edit.output.height);
    for (t, shown) in [
        (0.4, false),
        (0.76, false),
        (0.84, true),
        (1.2, true),
        (1.56, true),
        (1.64, false),
        (1.9, false),
    ] {
        let frame = frame_at(&video, t);
        let white = brightest(&frame, w / 4, h / 3, w / 2, h / 3);
        eprintln!("title at {t} s: {white} white px");
        if shown {
            assert!(
                white > 200,
                "at {t} s the title must show: {white} white pixels"
            );
        } else {
            assert!(white == 0, "at {t} s no title: {white} white pixels");
            assert!(
                region_mean(&frame, 0, 0, w, h)[0] < 3.0,
                "at {t} s the frame is background"
            );
        }
    }
}

/// A grey still with a grid and a white square in the middle.
fn write_still(path: &Path, w: u32, h: u32) -> PathBuf {
    let mut img = RgbaImage::from_pixel(w, h, Rgba([110, 110, 110, 255]));
    for (x, y, px) in img.enumerate_pixels_mut() {
        if x % 40 == 0 || y % 40 == 0 {
            *px = Rgba([30, 30, 30, 255]);
        }
        let (cx, cy) = (x as i64 - w as i64 / 2, y as i64 - h as i64 / 2);
        if cx.abs() < 30 && cy.abs() < 30 {
            *px = Rgba([255, 255, 255, 255]);
        }
    }
    img.save(path).unwrap();
    path.to_owned()
}

#[tokio::test]
async fn an_image_with_a_ken_burns_zoom_changes_its_centre_over_time() {
    let dir = tempfile::tempdir().unwrap();
    let still = write_still(&dir.path().join("still.png"), 640, 360);
    let doc = json!({
        "output": {"resolution": "360p", "fps": 25},
        "tracks": [{"clips": [
            {"asset": {"type": "image", "asset_id": A}, "start": 0, "length": 2, "effect": "zoom-in"}
        ]}]
    });
    let (edit, video) = render(
        dir.path(),
        doc,
        EditFiles {
            layers: vec![Some(still)],
            ..Default::default()
        },
    )
    .await;
    let (w, h) = (edit.output.width, edit.output.height);
    let (cx, cy, cw, ch) = (w / 2 - 80, h / 2 - 80, 160, 160);
    let (first, last) = (frame_at(&video, 0.0), frame_at(&video, 1.95));
    let diff = region_diff(&first, &last, cx, cy, cw, ch);
    eprintln!("zoom: centre diff {diff:.1}");
    assert!(diff > 8.0, "the centre crop must change over time: {diff}");
    // Zooming in magnifies the square in the middle.
    let (a, b) = (
        brightest(&first, cx, cy, cw, ch),
        brightest(&last, cx, cy, cw, ch),
    );
    eprintln!("zoom: white square {a} -> {b} px");
    assert!(
        b as f64 > a as f64 * 1.15,
        "the square grows: {a} → {b} white pixels"
    );
}

#[tokio::test]
async fn contain_fits_a_tall_clip_with_blurred_bands() {
    let dir = tempfile::tempdir().unwrap();
    let clip = write_clip(
        &dir.path().join("tall.mp4"),
        "testsrc2=s=180x320:r=25",
        2.0,
        &[],
    );
    let doc = json!({
        "output": {"resolution": "360p", "fps": 25, "background": "#000000"},
        "tracks": [{"clips": [
            {"asset": {"type": "video", "generation": {"job_id": "job_0123456789abcdef0123456789abcdef", "scene": 0}},
             "start": 0, "length": 2, "fit": "contain"}
        ]}]
    });
    let (edit, video) = render(
        dir.path(),
        doc,
        EditFiles {
            layers: vec![Some(clip)],
            ..Default::default()
        },
    )
    .await;
    let h = edit.output.height;
    let frame = frame_at(&video, 1.0);
    // The picture is 202 px wide in 640: the bands are the outer 219 px on each side.
    for x in [10, 640 - 10 - 180] {
        let mean = region_mean(&frame, x, 20, 180, h - 40);
        let spread = region_stddev(&frame, x, 20, 180, h - 40);
        eprintln!("contain band at {x}: mean {mean:?}, stddev {spread:.1}");
        assert!(
            mean.iter().sum::<f64>() / 3.0 > 20.0,
            "band at {x} is not black: {mean:?}"
        );
        assert!(spread > 4.0, "band at {x} is not flat: {spread}");
    }
    // Blurred: far smoother than the sharp picture in the middle.
    let sharp = edge_energy(&frame, 260, 40, 120, 280);
    let band = edge_energy(&frame, 20, 40, 160, 280);
    eprintln!("contain: edge energy band {band:.2}, picture {sharp:.2}");
    assert!(
        band * 4.0 < sharp,
        "bands blurred: {band} vs picture {sharp}"
    );
}

/// Mean absolute difference between horizontal neighbours: high for sharp detail, low for blur.
fn edge_energy(img: &RgbImage, x: u32, y: u32, w: u32, h: u32) -> f64 {
    let mut sum = 0.0;
    for yy in y..y + h {
        for xx in x..x + w - 1 {
            let (a, b): (&Rgb<u8>, &Rgb<u8>) = (img.get_pixel(xx, yy), img.get_pixel(xx + 1, yy));
            sum += (0..3)
                .map(|c| (a.0[c] as f64 - b.0[c] as f64).abs())
                .sum::<f64>();
        }
    }
    sum / (w as f64 * h as f64)
}

fn write_tone(path: &Path, hz: u32, seconds: f64) -> PathBuf {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency={hz}:sample_rate=48000:duration={seconds}"),
        "-c:a",
        "pcm_s16le",
        path.to_str().unwrap(),
    ]);
    path.to_owned()
}

#[tokio::test]
async fn the_soundtrack_is_ducked_under_the_voice() {
    let dir = tempfile::tempdir().unwrap();
    let music = write_tone(&dir.path().join("music.wav"), 220, 3.0);
    let voice = write_tone(&dir.path().join("voice.wav"), 2000, 3.0);
    let music_band = "bandpass=f=220:width_type=q:w=8,bandpass=f=220:width_type=q:w=8";
    let mut levels = Vec::new();
    for ducking in [true, false] {
        let sub = dir.path().join(format!("duck{ducking}"));
        std::fs::create_dir_all(&sub).unwrap();
        let doc = json!({
            "output": {"resolution": "360p", "fps": 25},
            "tracks": [
                {"clips": [{"asset": {"type": "audio", "asset_id": A}, "start": 1.2, "length": 1.5}]},
                {"clips": [{"asset": {"type": "title", "text": "x"}, "start": 0, "length": 3}]}
            ],
            "soundtrack": {"asset_id": A, "volume": 0.5, "ducking": ducking}
        });
        let (_, video) = render(
            &sub,
            doc,
            EditFiles {
                layers: vec![None],
                audio: vec![voice.clone()],
                soundtrack: Some(music.clone()),
            },
        )
        .await;
        let alone = loudness_through(&video, music_band, Some((0.2, 0.8))).mean_db;
        let under = loudness_through(&video, music_band, Some((1.8, 0.7))).mean_db;
        let voice_level = loudness_through(&video, "highpass=f=1500", Some((1.8, 0.7))).mean_db;
        assert!(voice_level > -40.0, "the voice is heard: {voice_level} dB");
        eprintln!(
            "ducking {ducking}: music alone {alone:.1} dB, under voice {under:.1} dB, voice {voice_level:.1} dB"
        );
        levels.push((alone, under));
    }
    let (alone, under) = levels[0];
    assert!(
        under < alone - 8.0,
        "ducked under the voice: {alone} dB alone, {under} dB under"
    );
    let (alone, under) = levels[1];
    assert!(
        (under - alone).abs() < 2.0,
        "without ducking the bed keeps its level: {alone} vs {under}"
    );
}

#[tokio::test]
async fn a_wipe_reveals_the_layer_over_what_is_beneath_and_opacity_blends_it() {
    let dir = tempfile::tempdir().unwrap();
    let white = dir.path().join("white.png");
    RgbaImage::from_pixel(64, 36, Rgba([255, 255, 255, 255]))
        .save(&white)
        .unwrap();
    let doc = json!({
        "output": {"resolution": "360p", "fps": 25, "background": "#000000"},
        "tracks": [
            {"clips": [{"asset": {"type": "image", "asset_id": A}, "start": 0, "length": 2,
                        "transition": {"in": "wipeleft", "duration": 1}}]},
            {"clips": [{"asset": {"type": "image", "asset_id": A}, "start": 2, "length": 1,
                        "opacity": 0.5}]}
        ]
    });
    let (edit, video) = render(
        dir.path(),
        doc,
        EditFiles {
            layers: vec![Some(white.clone()), Some(white)],
            ..Default::default()
        },
    )
    .await;
    let (w, h) = (edit.output.width, edit.output.height);
    let mid = frame_at(&video, 0.5);
    let left = region_mean(&mid, 0, 0, w / 4, h)[0];
    let right = region_mean(&mid, w * 3 / 4, 0, w / 4, h)[0];
    eprintln!("mid-wipe: left {left:.1}, right {right:.1}");
    assert!(
        (left < 30.0 && right > 220.0) || (left > 220.0 && right < 30.0),
        "half revealed mid-wipe: left {left}, right {right}"
    );
    let done = region_mean(&frame_at(&video, 1.5), 0, 0, w, h)[0];
    assert!(done > 240.0, "whole after the wipe: {done}");
    let half = region_mean(&frame_at(&video, 2.5), 0, 0, w, h)[0];
    eprintln!("opacity 0.5 over black: {half:.1}");
    assert!((100.0..160.0).contains(&half), "half opacity: {half}");
}

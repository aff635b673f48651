//! Timeline documents rendered in one ffmpeg pass (each render counts its ffmpeg runs), judged by
//! measurement: a title's pixels in its window and nowhere else, a Ken Burns zoom over an image,
//! blur-padded `contain` bands, a soundtrack ducked under a voice clip and under a video clip's
//! own sound, a video clip heard in its window at its volume, and quiet and loud timelines
//! levelled to one loudness. Small on purpose: 360p, 2–4 s.

mod common;

use common::*;
use image::{Rgb, RgbImage, Rgba, RgbaImage};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use vidpipe_domain::edit::{Edit, EditJob, validate};
use vidpipe_media::compose::{MIX_LUFS, MIX_TRUE_PEAK};
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
    render_edit(&counting_tools(dir), &out, &|_| {})
        .await
        .expect("render");
    assert_eq!(ffmpeg_runs(dir), 1, "one ffmpeg run renders the edit");
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

/// `seconds` of a 320x180 test picture at 25 fps with `sound` (a lavfi audio source, mono at
/// 48 kHz) as its audio stream, or with no audio stream at all.
fn write_av(path: &Path, sound: Option<&str>, seconds: f64) -> PathBuf {
    let t = seconds.to_string();
    let mut args = vec!["-f", "lavfi", "-i", "testsrc2=s=320x180:r=25"];
    if let Some(sound) = sound {
        args.extend(["-f", "lavfi", "-i", sound, "-c:a", "aac", "-b:a", "128k"]);
    }
    args.extend(["-t", &t, "-c:v", "libx264", "-preset", "ultrafast"]);
    args.extend(["-pix_fmt", "yuv420p", path.to_str().unwrap()]);
    ffmpeg(&args);
    path.to_owned()
}

/// A `hz` tone at `db` dBFS peak, as a lavfi source.
fn tone(hz: u32, db: f64) -> String {
    format!("sine=frequency={hz}:sample_rate=48000,volume={db}dB")
}

/// Two biquads around `hz`: one tone of a mix, the others far down.
fn band(hz: u32) -> String {
    format!("bandpass=f={hz}:width_type=q:w=8,bandpass=f={hz}:width_type=q:w=8")
}

#[tokio::test]
async fn a_video_clip_is_heard_in_its_window_faded_with_its_transitions() {
    let dir = tempfile::tempdir().unwrap();
    let clip = write_av(&dir.path().join("clip.mp4"), Some(&tone(440, -12.0)), 2.5);
    let doc = json!({
        "output": {"resolution": "360p", "fps": 25},
        "tracks": [{"clips": [
            {"asset": {"type": "video", "asset_id": A}, "start": 1, "length": 2,
             "transition": {"in": "fade", "out": "fade", "duration": 0.4}}
        ]}],
        "duration": 4
    });
    let (_, video) = render(
        dir.path(),
        doc,
        EditFiles {
            layers: vec![Some(clip)],
            ..Default::default()
        },
    )
    .await;
    let heard = sounding(&video, "anull", -50.0);
    eprintln!("clip sound heard over {heard:?}");
    assert_eq!(heard.len(), 1, "one stretch of sound: {heard:?}");
    let (from, to) = heard[0];
    assert!(
        (from - 1.0).abs() < 0.06 && (to - 3.0).abs() < 0.06,
        "heard over its window 1–3 s, not outside: {from}–{to}"
    );
    let full = loudness(&video, Some((1.6, 0.8))).mean_db;
    let fading_in = loudness(&video, Some((1.0, 0.12))).mean_db;
    let fading_out = loudness(&video, Some((2.88, 0.12))).mean_db;
    eprintln!(
        "clip sound: fade-in {fading_in:.1} dB, full {full:.1} dB, fade-out {fading_out:.1} dB"
    );
    assert!(full > -30.0, "the clip is heard: {full} dB");
    assert!(
        fading_in < full - 8.0 && fading_out < full - 8.0,
        "faded with its transitions: {fading_in} / {full} / {fading_out} dB"
    );
}

#[tokio::test]
async fn video_clips_without_sound_or_with_a_silent_track_render_silent() {
    let dir = tempfile::tempdir().unwrap();
    let mute = write_av(&dir.path().join("mute.mp4"), None, 1.5);
    let hushed = write_av(
        &dir.path().join("hushed.mp4"),
        Some("anullsrc=channel_layout=mono:sample_rate=48000"),
        1.5,
    );
    assert!(
        probe(&mute).audio_codec.is_none(),
        "the first has no audio stream"
    );
    let doc = json!({
        "output": {"resolution": "360p", "fps": 25},
        "tracks": [{"clips": [
            {"asset": {"type": "video", "asset_id": A}, "start": 0, "length": 1.5},
            {"asset": {"type": "video", "asset_id": A}, "start": 1.5, "length": 1.5}
        ]}]
    });
    let (_, video) = render(
        dir.path(),
        doc,
        EditFiles {
            layers: vec![Some(mute), Some(hushed)],
            ..Default::default()
        },
    )
    .await;
    // Levelling lifts nothing out of silence: volumedetect's floor is digital zero.
    let level = loudness(&video, None);
    eprintln!("silent timeline: peak {:.1} dB", level.peak_db);
    assert!(level.peak_db <= -90.0, "silent: peak {} dB", level.peak_db);
}

#[tokio::test]
async fn a_clip_volume_moves_its_sound_by_its_decibels() {
    let dir = tempfile::tempdir().unwrap();
    // Two clips heard together, each its own tone, so the levelling of the mix moves both alike
    // and only their volumes part them.
    let low = write_av(&dir.path().join("low.mp4"), Some(&tone(440, -12.0)), 3.0);
    let high = write_av(&dir.path().join("high.mp4"), Some(&tone(1500, -12.0)), 3.0);
    let doc = json!({
        "output": {"resolution": "360p", "fps": 25},
        "tracks": [
            {"clips": [{"asset": {"type": "video", "asset_id": A, "volume": 0.5},
                        "start": 0, "length": 3, "scale": 0.5, "position": "top-left"}]},
            {"clips": [{"asset": {"type": "video", "asset_id": A, "volume": 1.5},
                        "start": 0, "length": 3}]}
        ]
    });
    // Drawing order is bottom track first: the 1.5 clip (440 Hz), then the 0.5 clip (1500 Hz).
    let (_, video) = render(
        dir.path(),
        doc,
        EditFiles {
            layers: vec![Some(low.clone()), Some(high.clone())],
            ..Default::default()
        },
    )
    .await;
    let level = |file: &Path, hz: u32| loudness_through(file, &band(hz), Some((0.5, 2.0))).mean_db;
    let before = level(&high, 1500) - level(&low, 440);
    let after = level(&video, 1500) - level(&video, 440);
    let want = 20.0 * (0.5f64 / 1.5).log10();
    eprintln!(
        "volume: 1500 Hz over 440 Hz {before:.2} dB in the sources, {after:.2} dB rendered (want {want:+.2})"
    );
    assert!(
        (after - before - want).abs() < 0.5,
        "volumes 0.5 and 1.5 part the clips by {want:.2} dB: {before:.2} → {after:.2}"
    );
}

#[tokio::test]
async fn the_soundtrack_is_ducked_under_a_video_clips_sound() {
    let dir = tempfile::tempdir().unwrap();
    let music = write_tone(&dir.path().join("music.wav"), 220, 3.0);
    let clip = write_av(&dir.path().join("clip.mp4"), Some(&tone(2000, -12.0)), 1.5);
    let doc = json!({
        "output": {"resolution": "360p", "fps": 25},
        "tracks": [
            {"clips": [{"asset": {"type": "video", "asset_id": A}, "start": 1.2, "length": 1.5}]},
            {"clips": [{"asset": {"type": "title", "text": "x"}, "start": 0, "length": 3}]}
        ],
        "soundtrack": {"asset_id": A, "volume": 0.5}
    });
    // Drawing order: the title's track (the bottom one) first.
    let (_, video) = render(
        dir.path(),
        doc,
        EditFiles {
            layers: vec![None, Some(clip)],
            soundtrack: Some(music),
            ..Default::default()
        },
    )
    .await;
    let alone = loudness_through(&video, &band(220), Some((0.2, 0.8))).mean_db;
    let under = loudness_through(&video, &band(220), Some((1.8, 0.7))).mean_db;
    let sound = loudness_through(&video, &band(2000), Some((1.8, 0.7))).mean_db;
    eprintln!("music alone {alone:.1} dB, under the clip {under:.1} dB; clip {sound:.1} dB");
    assert!(sound > -40.0, "the clip is heard: {sound} dB");
    assert!(
        under < alone - 8.0,
        "ducked under the clip's sound: {alone} dB alone, {under} dB under"
    );
}

#[tokio::test]
async fn quiet_and_loud_timelines_are_levelled_to_the_delivery_loudness() {
    let dir = tempfile::tempdir().unwrap();
    // A quiet clip after a 3 s silent title card; a clip near full scale over a full-scale
    // soundtrack; and a timeline shorter than the levelling's 3 s look-ahead.
    let quiet = write_av(&dir.path().join("quiet.mp4"), Some(&tone(440, -27.0)), 3.0);
    let loud = write_av(
        &dir.path().join("loud.mp4"),
        Some("aevalsrc=0.9*sin(2*PI*660*t):s=48000"),
        3.0,
    );
    let music = dir.path().join("music.wav");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "aevalsrc=0.9*sin(2*PI*220*t):s=48000:d=3",
        music.to_str().unwrap(),
    ]);
    let sources = (ebur128(&quiet).integrated, ebur128(&loud).integrated);
    eprintln!(
        "sources: quiet {:.1} LUFS, loud {:.1} LUFS",
        sources.0, sources.1
    );
    assert!(
        sources.1 - sources.0 > 30.0,
        "far apart to start: {sources:?}"
    );
    let clip = |volume: f64, start: f64, length: f64| json!({"asset": {"type": "video", "asset_id": A, "volume": volume}, "start": start, "length": length});
    let title = json!({"asset": {"type": "title", "text": "Quiet"}, "start": 0, "length": 3});
    let cases = [
        (
            "quiet",
            json!({"tracks": [{"clips": [title, clip(1.0, 3.0, 3.0)]}]}),
            vec![None, Some(quiet.clone())],
            None,
        ),
        (
            "short",
            json!({"tracks": [{"clips": [clip(0.5, 0.0, 1.6)]}]}),
            vec![Some(quiet)],
            None,
        ),
        (
            "loud",
            json!({"tracks": [{"clips": [clip(2.0, 0.0, 3.0)]}], "soundtrack": {"asset_id": A, "volume": 1, "ducking": false}}),
            vec![Some(loud)],
            Some(music),
        ),
    ];
    for (name, mut doc, layers, soundtrack) in cases {
        doc["output"] = json!({"resolution": "360p", "fps": 25});
        let sub = dir.path().join(name);
        std::fs::create_dir_all(&sub).unwrap();
        let (_, video) = render(
            &sub,
            doc,
            EditFiles {
                layers,
                soundtrack,
                ..Default::default()
            },
        )
        .await;
        let r = ebur128(&video);
        eprintln!(
            "{name}: {:.1} LUFS, true peak {:.1} dBTP",
            r.integrated, r.true_peak
        );
        assert!(
            (r.integrated - MIX_LUFS).abs() <= 1.5,
            "{name}: {} LUFS, want {MIX_LUFS} ± 1.5",
            r.integrated
        );
        assert!(
            r.true_peak <= MIX_TRUE_PEAK + 0.5,
            "{name}: true peak {} dBTP over {MIX_TRUE_PEAK}",
            r.true_peak
        );
    }
}

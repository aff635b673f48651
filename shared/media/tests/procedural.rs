//! Procedural provider tests: exact frame count and size, and bit-identical pixels for the same
//! inputs (compared as per-frame MD5s of the decoded video).

mod common;

use common::*;
use std::path::Path;
use vidpipe_domain::media::ClipSpec;
use vidpipe_domain::ports::{ClipProvider, ProviderError};
use vidpipe_media::{FfmpegEngine, ProceduralProvider};

fn spec(prompt: &str, seed: u64) -> ClipSpec {
    ClipSpec {
        scene_index: 1,
        visual_prompt: prompt.into(),
        seed,
        width: 320,
        height: 180,
        fps: 30,
        frames: 47,
        first_frame: None,
    }
}

/// The decoded frames' MD5s (the framemd5 muxer's lines, header comments removed).
fn frame_hashes(video: &Path) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("frames.md5");
    ffmpeg(&[
        "-i",
        video.to_str().unwrap(),
        "-map",
        "0:v",
        "-f",
        "framemd5",
        out.to_str().unwrap(),
    ]);
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.rsplit(',').next().unwrap().trim().to_owned())
        .collect()
}

#[tokio::test]
async fn renders_exact_frames_at_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let provider = ProceduralProvider::new(tools());
    assert_eq!(provider.name(), "procedural");
    let dest = dir.path().join("clips/clip_001.mp4");
    provider
        .generate(&spec("A calm ocean at dawn", 3), &dest)
        .await
        .unwrap();
    let info = probe(&dest);
    assert_eq!((info.width, info.height), (320, 180));
    assert_eq!(info.video_codec, "h264");
    assert_eq!(info.pix_fmt, "yuv420p");
    assert_eq!(info.frame_rate, Some(30.0));
    assert_eq!(info.video_frames, Some(47));
    assert!(
        !dest.with_extension("partial.mp4").exists(),
        "no partial file left behind"
    );
}

#[tokio::test]
async fn same_inputs_give_the_same_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let provider = ProceduralProvider::from(&FfmpegEngine::new(tools()));
    let (a, b, c) = (
        dir.path().join("a.mp4"),
        dir.path().join("b.mp4"),
        dir.path().join("c.mp4"),
    );
    provider
        .generate(&spec("fire storm over the city", 9), &a)
        .await
        .unwrap();
    provider
        .generate(&spec("fire storm over the city", 9), &b)
        .await
        .unwrap();
    provider
        .generate(&spec("fire storm over the city", 10), &c)
        .await
        .unwrap();
    let (ha, hb, hc) = (frame_hashes(&a), frame_hashes(&b), frame_hashes(&c));
    assert_eq!(ha.len(), 47);
    assert_eq!(
        ha, hb,
        "same prompt, scene and seed must give identical frames"
    );
    assert_ne!(ha, hc, "another seed must give other frames");
    // It moves: the first and last frames differ.
    assert_ne!(ha.first(), ha.last());
}

#[tokio::test]
async fn prompt_words_steer_the_palette() {
    let dir = tempfile::tempdir().unwrap();
    let provider = ProceduralProvider::new(tools());
    let (ocean, fire) = (dir.path().join("ocean.mp4"), dir.path().join("fire.mp4"));
    provider
        .generate(&spec("deep ocean water", 1), &ocean)
        .await
        .unwrap();
    provider
        .generate(&spec("fire and lava", 1), &fire)
        .await
        .unwrap();
    let (o, f) = (frame_at(&ocean, 0.5), frame_at(&fire, 0.5));
    let (om, fm) = (
        region_mean(&o, 0, 0, 320, 180),
        region_mean(&f, 0, 0, 320, 180),
    );
    assert!(om[2] > om[0], "ocean should be blue-dominant: {om:?}");
    assert!(fm[0] > fm[2], "fire should be red-dominant: {fm:?}");
}

#[tokio::test]
async fn odd_sizes_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec("x", 0);
    s.width = 321;
    let err = ProceduralProvider::new(tools())
        .generate(&s, &dir.path().join("x.mp4"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Rejected(_)), "{err:?}");
}

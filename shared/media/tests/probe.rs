//! Probe tests: real media is described; anything else is `InvalidInput`, never `ToolFailed`.

mod common;

use common::*;
use vidpipe_domain::media::StreamKind;
use vidpipe_domain::ports::MediaError;

fn assert_invalid(result: Result<vidpipe_domain::media::ProbeInfo, MediaError>, what: &str) {
    match result {
        Err(MediaError::InvalidInput(reason)) => {
            assert!(!reason.is_empty(), "{what}: empty reason")
        }
        other => panic!("{what}: expected InvalidInput, got {other:?}"),
    }
}

#[tokio::test]
async fn probes_video_and_audio() {
    let dir = tempfile::tempdir().unwrap();
    let clip = test_clip(&dir.path().join("c.mp4"), (320, 180), 25, 2.0);
    let info = vidpipe_media::probe(&tools(), &clip).await.unwrap();
    let v = info.video().unwrap();
    assert_eq!(v.kind, StreamKind::Video);
    assert_eq!((v.width, v.height), (Some(320), Some(180)));
    assert_eq!(v.frame_rate, Some(25.0));
    assert_eq!(v.frames, Some(50));
    assert_eq!(v.codec, "h264");
    assert_eq!(v.rotation, 0);
    assert!(info.audio().is_some());
    assert!((info.duration_seconds.unwrap() - 2.0).abs() < 0.1);
    assert!(info.size_bytes.unwrap() > 0);
}

#[tokio::test]
async fn reads_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let clip = test_clip(&dir.path().join("c.mp4"), (320, 180), 25, 1.0);
    let rotated = dir.path().join("rotated.mp4");
    ffmpeg(&[
        "-display_rotation",
        "90",
        "-i",
        clip.to_str().unwrap(),
        "-c",
        "copy",
        rotated.to_str().unwrap(),
    ]);
    let info = vidpipe_media::probe(&tools(), &rotated).await.unwrap();
    assert_eq!(info.video().unwrap().rotation.abs(), 90);
}

#[tokio::test]
async fn text_renamed_mp4_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.mp4");
    std::fs::write(&p, "these are meeting notes, not a video\n".repeat(20)).unwrap();
    assert_invalid(vidpipe_media::probe(&tools(), &p).await, "text .mp4");
    let txt = dir.path().join("notes.txt");
    std::fs::write(&txt, "plain text\n".repeat(20)).unwrap();
    assert_invalid(vidpipe_media::probe(&tools(), &txt).await, "text .txt");
}

#[tokio::test]
async fn zero_byte_file_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.mp4");
    std::fs::write(&p, b"").unwrap();
    assert_invalid(vidpipe_media::probe(&tools(), &p).await, "zero bytes");
}

#[tokio::test]
async fn truncated_file_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    // Without faststart the index (moov) is at the end, so cutting the file loses it.
    let clip = dir.path().join("c.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=25:d=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        clip.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&clip).unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert_invalid(vidpipe_media::probe(&tools(), &cut).await, "truncated");
}

#[tokio::test]
async fn missing_file_is_invalid_input() {
    assert_invalid(
        vidpipe_media::probe(&tools(), std::path::Path::new("/no/such/file.mp4")).await,
        "missing",
    );
}

#[tokio::test]
async fn versions_report_the_layer_build() {
    let v = vidpipe_media::run::versions(&tools()).await.unwrap();
    assert!(v.ffmpeg.starts_with("ffmpeg version"), "{}", v.ffmpeg);
    assert!(v.ffprobe.starts_with("ffprobe version"), "{}", v.ffprobe);
}

#[tokio::test]
async fn a_still_image_is_decoded_not_trusted_by_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let tools = vidpipe_media::Tools::locate(None).unwrap();
    let fake = dir.path().join("logo.png");
    std::fs::write(&fake, "not an image at all\n").unwrap();
    match vidpipe_media::probe(&tools, &fake).await {
        Err(vidpipe_domain::ports::MediaError::InvalidInput(why)) => {
            assert!(why.contains("logo.png"), "{why}")
        }
        other => panic!("a text file named .png must be invalid, got {other:?}"),
    }
    let real = dir.path().join("real.png");
    image::RgbaImage::from_pixel(37, 21, image::Rgba([9, 9, 9, 255]))
        .save(&real)
        .unwrap();
    let info = vidpipe_media::probe(&tools, &real).await.unwrap();
    let v = info.video().unwrap();
    assert_eq!(
        (v.codec.as_str(), v.width, v.height),
        ("png", Some(37), Some(21))
    );
    // A PNG cut short is not an image either.
    let bytes = std::fs::read(&real).unwrap();
    let cut = dir.path().join("cut.png");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        vidpipe_media::probe(&tools, &cut).await,
        Err(vidpipe_domain::ports::MediaError::InvalidInput(_))
    ));
}

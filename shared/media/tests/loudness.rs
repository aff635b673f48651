//! Loudness measured once, checked against ffmpeg's own EBU R128 reading: of the file itself,
//! and of the file as a compose plays a bed (cut short, or looped), which the stored blocks
//! must predict without listening again.

use std::path::{Path, PathBuf};
use vidpipe_domain::ports::MediaEngine;
use vidpipe_media::FfmpegEngine;
use vidpipe_testkit::{ebur128, ffmpeg, tools};

fn engine() -> FfmpegEngine {
    FfmpegEngine::new(tools())
}

/// A 6 s stereo M4A: 3 s of a quiet tone, then 3 s of a louder, higher one.
fn quiet_then_loud(dir: &Path) -> PathBuf {
    let path = dir.join("bed.m4a");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=330:duration=3:sample_rate=44100,volume=0.05",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=880:duration=3:sample_rate=44100,volume=0.5",
        "-filter_complex",
        "[0:a][1:a]concat=n=2:v=0:a=1,aformat=channel_layouts=stereo",
        path.to_str().unwrap(),
    ]);
    path
}

/// `src` as the compose plays a bed of `seconds`: from its start, looped, cut.
fn played(src: &Path, seconds: f64, dest: &Path) -> PathBuf {
    ffmpeg(&[
        "-stream_loop",
        "-1",
        "-i",
        src.to_str().unwrap(),
        "-t",
        &seconds.to_string(),
        "-c:a",
        "pcm_f32le",
        dest.to_str().unwrap(),
    ]);
    dest.to_path_buf()
}

#[tokio::test]
async fn a_file_measures_as_ffmpeg_reads_it_and_its_blocks_predict_it_cut_and_looped() {
    let dir = tempfile::tempdir().unwrap();
    let bed = quiet_then_loud(dir.path());
    let l = engine().loudness(&bed).await.unwrap();
    // One block every 100 ms from 0.4 s on.
    assert!((55..=58).contains(&l.blocks.len()), "{}", l.blocks.len());
    let whole = ebur128(&bed).integrated;
    let got = l.integrated_lufs.unwrap();
    assert!(
        (got - whole).abs() <= 0.2,
        "measured {got} vs ffmpeg {whole}"
    );

    // The first 3 s are the quiet tone alone: far under the whole file's figure.
    for seconds in [2.5, 9.0, 14.5] {
        let heard = ebur128(&played(
            &bed,
            seconds,
            &dir.path().join(format!("p{seconds}.wav")),
        ))
        .integrated;
        let predicted = l.played_for(seconds).unwrap();
        assert!(
            (predicted - heard).abs() <= 0.3,
            "{seconds} s: predicted {predicted} vs heard {heard}"
        );
    }
    assert!(l.played_for(2.5).unwrap() < got - 10.0);
}

#[tokio::test]
async fn silence_has_no_level_and_a_file_without_audio_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let silent = dir.path().join("silent.wav");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "anullsrc=sample_rate=48000:channel_layout=mono",
        "-t",
        "2",
        silent.to_str().unwrap(),
    ]);
    let l = engine().loudness(&silent).await.unwrap();
    assert_eq!(l.integrated_lufs, None);
    assert_eq!(l.played_for(10.0), None);

    let video = dir.path().join("video.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=black:s=64x64:r=10:d=1",
        video.to_str().unwrap(),
    ]);
    assert!(engine().loudness(&video).await.is_err());
}

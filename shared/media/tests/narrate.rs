//! espeak-ng for real: the offline narrator's audio is probed and its estimated word times are
//! checked against the length it measured.

use vidpipe_domain::narration::{AudioFormat, SpeechSpec};
use vidpipe_domain::ports::{Narrator, ProviderError};
use vidpipe_media::EspeakNarrator;
use vidpipe_testkit::{loudness, probe, tools};

fn narrator() -> EspeakNarrator {
    EspeakNarrator::locate(tools()).expect("scripts/setup.sh installs espeak-ng")
}

fn spec(text: &str, voice: Option<&str>) -> SpeechSpec {
    SpeechSpec {
        text: text.into(),
        voice: voice.map(str::to_owned),
        engine: None,
    }
}

#[tokio::test]
async fn speaks_a_line_and_times_its_words_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("line.wav");
    let text = "A lighthouse stands at dusk. The waves break below it.";
    let speech = narrator().speak(&spec(text, None), &dest).await.unwrap();
    assert_eq!(speech.format, AudioFormat::Wav);

    let facts = probe(&dest);
    let seconds = facts.audio_duration.unwrap_or(facts.duration);
    assert_eq!(facts.audio_channels, Some(1), "{:?}", facts.raw);
    // Ten words at 160 a minute, with a pause: about three to five seconds.
    assert!((2.5..7.0).contains(&seconds), "{seconds} s");
    assert!(loudness(&dest, None).mean_db > -40.0, "it spoke");

    assert_eq!(speech.words.len(), 10);
    assert_eq!(&text[speech.words[0].start..speech.words[0].end], "A");
    assert_eq!(&text[speech.words[9].start..speech.words[9].end], "it.");
    let end_ms = (seconds * 1000.0).round() as u32;
    let mut last = 0;
    for w in &speech.words {
        assert!(
            w.start_ms >= last && w.end_ms >= w.start_ms && w.end_ms <= end_ms,
            "{w:?}"
        );
        last = w.end_ms;
    }
    assert!(speech.words[9].end_ms as f64 > seconds * 1000.0 * 0.8);
}

#[test]
fn the_cache_identity_names_the_espeak_build() {
    // Cached speech from another espeak-ng build must not be reused, so the build's version is
    // part of the identity; the layer builds 1.52.
    let id = narrator().cache_identity();
    assert!(id.starts_with("espeak-ng-1.52"), "{id}");
}

#[tokio::test]
async fn other_scripts_get_their_language_and_an_unknown_voice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ja = dir.path().join("ja.wav");
    narrator()
        .speak(&spec("夜の東京。ネオンが光る。", None), &ja)
        .await
        .unwrap();
    assert!(probe(&ja).duration > 0.5);

    let err = narrator()
        .speak(
            &spec("Hello there.", Some("nonesuch")),
            &dir.path().join("x.wav"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected(ref m) if m.contains("nonesuch")),
        "{err}"
    );
}

mod composed {
    //! A narrated composition judged by ear's proxies: where speech sounds, how far the music
    //! ducks under it (read in a band only the music occupies: espeak speaks at 22 kHz, so
    //! nothing of the voice lies above 11 kHz and the bed is a 14 kHz tone), and EBU R128.
    use super::*;
    use vidpipe_domain::Timeline;
    use vidpipe_domain::media::{CompositionJob, MeasuredAudio};
    use vidpipe_domain::narration::{SceneSpeech, lines_to_speak, narrate_plan};
    use vidpipe_domain::plan::RulesPlanner;
    use vidpipe_domain::ports::MediaEngine;
    use vidpipe_domain::request::{
        BrandBody, CaptionStyleBody, CaptionsBody, GenerationRequestBody, MusicBody, NarrationBody,
    };
    use vidpipe_media::FfmpegEngine;
    use vidpipe_testkit::{
        counting_tools, ebur128, ffmpeg, ffmpeg_runs, frame_at, loudness_through, sounding,
        write_video,
    };

    /// Speaks the rules plan's lines with espeak-ng, fits the plan, and composes it at
    /// `size` with a 14 kHz music bed and captions in `style`. Speech and music are measured
    /// beforehand, as the pipeline measures them where they are made or first seen; the compose
    /// runs ffmpeg through [`counting_tools`], so a test can count its runs.
    async fn narrated_composition(
        d: &std::path::Path,
        style: Option<&str>,
        size: (u32, u32),
    ) -> (Timeline, CompositionJob) {
        let engine = FfmpegEngine::new(tools());
        let body = GenerationRequestBody {
            prompt: Some("The tide comes in. Gulls call over the harbour.".into()),
            duration_seconds: Some(12.0),
            aspect_ratio: Some("16:9".into()),
            resolution: Some("720p".into()),
            fps: Some(24),
            clip_count: Some(2),
            narration: Some(NarrationBody::default()),
            captions: style.map(|s| {
                CaptionsBody::Styled(CaptionStyleBody {
                    style: Some(s.into()),
                    ..Default::default()
                })
            }),
            brand: Some(BrandBody {
                logo: None,
                music: Some(MusicBody {
                    asset_id: Some(vidpipe_domain::AssetId::generate().to_string()),
                    volume: Some(1.0),
                    fade_in_seconds: Some(0.0),
                    fade_out_seconds: Some(0.0),
                }),
            }),
            ..Default::default()
        };
        let request = body.validate().unwrap();
        let mut plan = RulesPlanner.plan(&request).unwrap();
        let lines: Vec<Option<String>> = lines_to_speak(&plan)
            .into_iter()
            .map(|l| l.map(str::to_owned))
            .collect();
        let mut speeches = Vec::new();
        let mut files = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let Some(line) = line else {
                speeches.push(None);
                continue;
            };
            let path = d.join(format!("speech_{i}.wav"));
            let speech = narrator().speak(&spec(line, None), &path).await.unwrap();
            let ms = (probe(&path).duration * 1000.0).round() as u32;
            let loudness = engine.loudness(&path).await.unwrap();
            speeches.push(Some(SceneSpeech {
                key: path.to_string_lossy().into_owned(),
                duration_ms: ms,
                words: speech.words,
                loudness: Some(loudness.summary()),
            }));
            files.push(MeasuredAudio { path, loudness });
        }
        narrate_plan(&mut plan, &request, "espeak", None, speeches).unwrap();
        let keys: Vec<String> = (0..2).map(|i| format!("clip_{i}.mp4")).collect();
        let mut tl = Timeline::build(&request, &plan, &keys, None, Some("music".into()));
        (tl.width, tl.height, tl.thumbnail_long_side) = (size.0, size.1, 160);
        assert_eq!(tl.narration.len(), 2);

        let clips = plan
            .scenes
            .iter()
            .enumerate()
            // Plain grey footage: nothing in it is the highlight's yellow.
            .map(|(i, s)| {
                write_video(
                    &d.join(&keys[i]),
                    &format!("color=c=0x303030:s={}x{}:r=24", size.0, size.1),
                    s.frames as f64 / 24.0,
                    &[],
                )
            })
            .collect();
        let music = d.join("music.wav");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=14000:duration=30",
            music.to_str().unwrap(),
        ]);
        let job = CompositionJob {
            timeline: tl.clone(),
            clips,
            logo: None,
            music: Some(MeasuredAudio {
                loudness: engine.loudness(&music).await.unwrap(),
                path: music,
            }),
            narration: files,
            work_dir: d.join("work"),
            final_path: d.join("final.mp4"),
            thumbnail_path: d.join("thumb.jpg"),
        };
        FfmpegEngine::new(counting_tools(d))
            .compose(&job, &|_| {})
            .await
            .unwrap();

        (tl, job)
    }

    #[tokio::test]
    async fn speech_sits_in_its_scenes_music_ducks_under_it_and_the_mix_meets_its_targets() {
        let dir = tempfile::tempdir().unwrap();
        let (tl, job) = narrated_composition(dir.path(), None, (320, 180)).await;
        // Levelled from the stored measurements: the compose listened to nothing first.
        assert_eq!(
            ffmpeg_runs(dir.path()),
            1,
            "one ffmpeg run for the whole compose"
        );
        assert!(std::fs::metadata(&job.thumbnail_path).unwrap().len() > 0);
        let facts = probe(&job.final_path);
        assert_eq!(facts.audio_codec.as_deref(), Some("aac"));
        assert!(
            (facts.audio_duration.unwrap() - 12.0).abs() < 0.05,
            "{facts:?}"
        );

        // Each scene's speech sounds inside its window, starting where the timeline says.
        let voice = sounding(
            &job.final_path,
            "lowpass=f=4000,lowpass=f=4000,lowpass=f=4000,lowpass=f=4000",
            -45.0,
        );
        let scene_windows: Vec<(f64, f64)> = tl
            .captions
            .iter()
            .map(|c| (c.start_seconds, c.end_seconds))
            .collect();
        for (cue, &(from, to)) in tl.narration.iter().zip(&scene_windows) {
            let heard: Vec<&(f64, f64)> =
                voice.iter().filter(|(a, b)| *b > from && *a < to).collect();
            assert!(!heard.is_empty(), "no speech in {from}..{to}: {voice:?}");
            let onset = heard[0].0;
            let end = heard.last().unwrap().1;
            assert!(
                (onset - cue.start_seconds).abs() < 0.1 + 0.06,
                "onset {onset} vs {cue:?}"
            );
            assert!(
                onset >= from - 0.1 && end <= to + 0.1,
                "{onset}..{end} outside {from}..{to}"
            );
        }

        // Music alone (the last two seconds, long after the last word) against music under
        // the first line's middle.
        let band = "highpass=f=12000,highpass=f=12000";
        let first = &tl.narration[0];
        let under = loudness_through(
            &job.final_path,
            band,
            Some((
                first.start_seconds + 0.3,
                (first.duration_seconds - 0.6).max(0.3),
            )),
        );
        let last = tl.narration.last().unwrap();
        let alone_from = last.start_seconds + last.duration_seconds + 1.0;
        assert!(alone_from < 11.5, "no music-only stretch: {tl:?}");
        let alone = loudness_through(&job.final_path, band, Some((alone_from, 12.0 - alone_from)));
        assert!(
            alone.mean_db - under.mean_db >= 10.0,
            "music ducked only {:.1} dB ({alone:?} vs {under:?})",
            alone.mean_db - under.mean_db
        );

        let r = ebur128(&job.final_path);
        assert!((r.integrated - (-14.0)).abs() <= 1.5, "{r:?}");
        assert!(r.true_peak <= -1.0, "{r:?}");
    }

    #[tokio::test]
    async fn karaoke_moves_its_highlight_when_each_word_is_said() {
        let dir = tempfile::tempdir().unwrap();
        let (tl, job) = narrated_composition(dir.path(), Some("karaoke"), (640, 360)).await;
        let is_yellow = |p: &image::Rgb<u8>| p[0] > 180 && p[1] > 150 && p[2] < 90;
        let yellow_x = |t: f64| -> Option<f64> {
            let frame = frame_at(&job.final_path, t);
            let xs: Vec<u32> = frame
                .enumerate_pixels()
                .filter(|(_, _, p)| is_yellow(p))
                .map(|(x, _, _)| x)
                .collect();
            (xs.len() > 20).then(|| xs.iter().map(|&x| x as f64).sum::<f64>() / xs.len() as f64)
        };
        let cue = &tl.captions[0];
        assert!(cue.words.len() >= 4, "{cue:?}");
        // Marks inside the first line's page: the highlight sits further right after each.
        let mut checked = 0;
        for pair in cue.words.windows(2).take(3) {
            let mark = pair[1].start_seconds;
            let before = yellow_x(mark - 0.06).expect("a highlighted word before the mark");
            let after = yellow_x(mark + 0.06).expect("a highlighted word after the mark");
            if after < before {
                // The next word opened a new page (or wrapped to the next line).
                continue;
            }
            assert!(after - before > 4.0, "at {mark}: {before} -> {after}");
            checked += 1;
        }
        assert!(checked >= 2, "too few marks on one line");
    }
}

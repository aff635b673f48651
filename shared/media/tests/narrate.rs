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

//! The Polly narrator with the real SDK client against a local fake of Polly's restJson1
//! `SynthesizeSpeech` (`POST /v1/speech`): MP3 audio made by ffmpeg at test time, word speech
//! marks as JSON lines computed from the request's own text, and Polly's error responses.

use aws_config::retry::RetryConfig;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use vidpipe_aws::polly::{PollyNarrator, PollySettings};
use vidpipe_domain::mp3;
use vidpipe_domain::narration::{AudioFormat, SpeechSpec, split_for_limit};
use vidpipe_domain::ports::{Narrator, ProviderError};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// Each fake MP3 lasts about this long (ffmpeg's encoder adds a frame or two of priming).
const FIXTURE_SECONDS: f64 = 2.0;

struct Fixture {
    bytes: Vec<u8>,
    /// The length of all its audio frames as ffprobe measures it, independent of the code
    /// under test (see [`frames_ms`]).
    probed_ms: f64,
    _dir: tempfile::TempDir,
}

/// A real MP3 shaped like Polly's neural output (24 kHz mono), with the ID3 tag and Info frame
/// ffmpeg's muxer writes, so joining must drop them.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = encode(dir.path(), "fixture.mp3", 24_000, 1, "48k", FIXTURE_SECONDS);
        Fixture {
            bytes: std::fs::read(&path).expect("fixture"),
            probed_ms: frames_ms(&path),
            _dir: dir,
        }
    })
}

fn encode(
    dir: &Path,
    name: &str,
    rate: u32,
    channels: u32,
    bitrate: &str,
    seconds: f64,
) -> PathBuf {
    let path = dir.join(name);
    vidpipe_testkit::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=220:sample_rate={rate}:duration={seconds}"),
        "-ac",
        &channels.to_string(),
        "-c:a",
        "libmp3lame",
        "-b:a",
        bitrate,
        path.to_str().expect("utf-8 path"),
    ]);
    path
}

/// ffprobe's length of every audio frame in `path`. ffmpeg's encoder tags its MP3s with the
/// encoder delay and padding, and ffprobe trims those, while a joined file carries no tag and
/// plays every frame; so the frames are copied into an untagged file first and that is measured.
fn frames_ms(path: &Path) -> f64 {
    let raw = path.with_extension("raw.mp3");
    vidpipe_testkit::ffmpeg(&[
        "-i",
        path.to_str().expect("utf-8 path"),
        "-c",
        "copy",
        "-write_xing",
        "0",
        "-id3v2_version",
        "0",
        raw.to_str().expect("utf-8 path"),
    ]);
    probed_ms(&raw)
}

fn probed_ms(path: &Path) -> f64 {
    let facts = vidpipe_testkit::probe(path);
    facts.audio_duration.unwrap_or(facts.duration) * 1000.0
}

/// The words of `text` as the fake marks them: whitespace-separated, their trailing
/// punctuation left out as Polly does, spread over the first 1.5 s.
fn fake_marks(text: &str) -> Vec<(usize, usize, u64, String)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    let n = spans.len().max(1) as u64;
    spans
        .into_iter()
        .enumerate()
        .map(|(i, (s, e))| {
            let e = s + text[s..e].trim_end_matches(['.', ',', '!', '?']).len();
            (s, e, 100 + i as u64 * 1400 / n, text[s..e].to_owned())
        })
        .collect()
}

/// Polly's answer to a `SynthesizeSpeech` body: MP3 audio, or word marks for `json`.
fn polly(req: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&req.body).expect("JSON body");
    let text = body["Text"].as_str().expect("Text");
    let characters = text.chars().count().to_string();
    match body["OutputFormat"].as_str() {
        Some("mp3") => ResponseTemplate::new(200)
            .insert_header("content-type", "audio/mpeg")
            .insert_header("x-amzn-RequestCharacters", characters.as_str())
            .set_body_raw(fixture().bytes.clone(), "audio/mpeg"),
        Some("json") => {
            assert_eq!(body["SpeechMarkTypes"], json!(["word"]));
            let lines: Vec<String> = fake_marks(text)
                .into_iter()
                .map(|(s, e, time, value)| {
                    json!({"time": time, "type": "word", "start": s, "end": e, "value": value})
                        .to_string()
                })
                .collect();
            ResponseTemplate::new(200)
                .insert_header("x-amzn-RequestCharacters", characters.as_str())
                .set_body_raw(lines.join("\n"), "application/x-json-stream")
        }
        other => panic!("unexpected OutputFormat {other:?}"),
    }
}

fn polly_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("x-amzn-ErrorType", code)
        .set_body_raw(
            json!({ "message": message }).to_string(),
            "application/json",
        )
}

async fn fake() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/speech"))
        .respond_with(polly)
        .mount(&server)
        .await;
    server
}

async fn narrator(server: &MockServer, settings: PollySettings, attempts: u32) -> PollyNarrator {
    let sdk = vidpipe_aws::config::emulator_sdk_config(&server.uri())
        .await
        .into_builder()
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .build();
    PollyNarrator::new(settings.client(&sdk), settings)
}

fn spec(text: &str) -> SpeechSpec {
    SpeechSpec {
        text: text.into(),
        voice: None,
        engine: None,
    }
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .expect("recording on")
        .iter()
        .map(|r| {
            assert_eq!(r.url.path(), "/v1/speech");
            serde_json::from_slice(&r.body).expect("JSON body")
        })
        .collect()
}

#[tokio::test]
async fn a_line_is_mp3_with_polly_word_marks_in_the_configured_voice() {
    let server = fake().await;
    let settings = PollySettings {
        voice: "Matthew".into(),
        engine: "standard".into(),
        region: None,
    };
    let narrator = narrator(&server, settings, 1).await;
    let text = "The fox wakes. It hunts at dawn.";
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("line.mp3");

    let speech = narrator.speak(&spec(text), &dest).await.expect("speech");

    assert_eq!(speech.format, AudioFormat::Mp3);
    assert_eq!(std::fs::read(&dest).unwrap(), fixture().bytes);
    let said: Vec<&str> = speech.words.iter().map(|w| &text[w.start..w.end]).collect();
    assert_eq!(said, ["The", "fox", "wakes", "It", "hunts", "at", "dawn"]);
    let starts: Vec<u32> = speech.words.iter().map(|w| w.start_ms).collect();
    assert_eq!(starts, [100, 300, 500, 700, 900, 1100, 1300]);
    assert_eq!(speech.words[0].end_ms, 300, "a word lasts until the next");
    let end = speech.words.last().unwrap().end_ms;
    assert!(
        (f64::from(end) - fixture().probed_ms).abs() < 30.0,
        "the last word ends with the audio: {end} ms, ffprobe {} ms",
        fixture().probed_ms
    );

    let cost = speech.cost.expect("a cost");
    let billed = 2 * text.chars().count();
    assert!(
        (cost.usd - billed as f64 * 4.0 / 1e6).abs() < 1e-12,
        "{cost:?}"
    );
    assert!(
        cost.basis
            .contains(&format!("{billed} characters of standard")),
        "{cost:?}"
    );

    let mut bodies = bodies(&server).await;
    bodies.sort_by_key(|b| b["OutputFormat"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        bodies,
        [
            json!({"Engine": "standard", "OutputFormat": "json", "SpeechMarkTypes": ["word"],
                   "Text": text, "TextType": "text", "VoiceId": "Matthew"}),
            json!({"Engine": "standard", "OutputFormat": "mp3",
                   "Text": text, "TextType": "text", "VoiceId": "Matthew"}),
        ]
    );
}

#[tokio::test]
async fn the_specs_voice_and_engine_win_over_the_defaults() {
    let server = fake().await;
    let narrator = narrator(&server, PollySettings::default(), 1).await;
    assert_eq!(
        narrator.cache_identity(),
        "polly|voice=Joanna|engine=neural|mp3"
    );
    let dir = tempfile::tempdir().unwrap();
    let spec = SpeechSpec {
        text: "Hola.".into(),
        voice: Some("Lupe".into()),
        engine: Some("generative".into()),
    };

    let speech = narrator
        .speak(&spec, &dir.path().join("a.mp3"))
        .await
        .unwrap();

    for body in bodies(&server).await {
        assert_eq!(
            (&body["VoiceId"], &body["Engine"]),
            (&json!("Lupe"), &json!("generative"))
        );
    }
    let cost = speech.cost.unwrap();
    assert!((cost.usd - 10.0 * 30.0 / 1e6).abs() < 1e-12, "{cost:?}");
}

#[tokio::test]
async fn long_text_is_spoken_in_sentence_pieces_whose_marks_follow_the_audio_before() {
    let server = fake().await;
    let narrator = narrator(&server, PollySettings::default(), 1).await;
    let sentence = "Snow falls on the quiet valley while the red fox hunts for mice at dawn. ";
    let text = sentence.repeat(100);
    let text = text.trim_end();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("long.mp3");

    let speech = narrator.speak(&spec(text), &dest).await.expect("speech");

    let bodies = bodies(&server).await;
    let spoken: Vec<&str> = bodies
        .iter()
        .filter(|b| b["OutputFormat"] == "mp3")
        .map(|b| b["Text"].as_str().unwrap())
        .collect();
    let pieces = spoken.len();
    assert!(pieces >= 3, "{} bytes in {pieces} requests", text.len());
    assert_eq!(bodies.len(), 2 * pieces, "audio and marks for each piece");
    let mut rejoined = String::new();
    for piece in &spoken {
        assert!(piece.chars().count() <= 3000, "{} characters", piece.len());
        assert!(
            piece.trim_end().ends_with('.'),
            "cut mid-sentence: {piece:?}"
        );
        rejoined.push_str(piece);
    }
    // The pieces arrive concurrently per piece but in order across pieces.
    assert_eq!(rejoined, text);

    let d = fixture().probed_ms;
    let output_ms = probed_ms(&dest);
    assert!(
        (output_ms - pieces as f64 * d).abs() < 60.0,
        "{pieces} pieces of {d} ms joined into {output_ms} ms"
    );
    assert_eq!(
        mp3::audio_frames(&std::fs::read(&dest).unwrap())
            .unwrap()
            .len()
            % pieces,
        0
    );

    let expected: Vec<(usize, usize, f64)> = split_for_limit(text, 3000)
        .into_iter()
        .enumerate()
        .flat_map(|(k, (start, piece))| {
            fake_marks(piece)
                .into_iter()
                .map(move |(s, e, t, _)| (start + s, start + e, k as f64 * d + t as f64))
        })
        .collect();
    assert_eq!(speech.words.len(), expected.len());
    for (w, (s, e, ms)) in speech.words.iter().zip(&expected) {
        assert_eq!((w.start, w.end), (*s, *e));
        assert!(
            (f64::from(w.start_ms) - ms).abs() < 30.0,
            "{w:?} should start near {ms} ms"
        );
    }
    let last = speech.words.last().unwrap();
    assert_eq!(&text[last.start..last.end], "dawn");
}

#[tokio::test]
async fn a_throttle_is_retried_by_the_sdk() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/speech"))
        .respond_with(polly_error(400, "ThrottlingException", "Rate exceeded"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/speech"))
        .respond_with(polly)
        .mount(&server)
        .await;
    let narrator = narrator(&server, PollySettings::default(), 3).await;
    let dir = tempfile::tempdir().unwrap();

    let speech = narrator
        .speak(&spec("One line."), &dir.path().join("a.mp3"))
        .await
        .expect("speech after a retry");

    assert_eq!(speech.words.len(), 2);
    assert_eq!(bodies(&server).await.len(), 3);
}

async fn error_of(response: ResponseTemplate, spec: SpeechSpec) -> (ProviderError, usize) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/speech"))
        .respond_with(response)
        .mount(&server)
        .await;
    let narrator = narrator(&server, PollySettings::default(), 1).await;
    let dir = tempfile::tempdir().unwrap();
    let err = narrator
        .speak(&spec, &dir.path().join("a.mp3"))
        .await
        .unwrap_err();
    assert!(!dir.path().join("a.mp3").exists(), "no audio after {err:?}");
    (err, bodies(&server).await.len())
}

#[tokio::test]
async fn errors_map_to_throttled_unavailable_and_rejected() {
    let (err, _) = error_of(
        polly_error(400, "ThrottlingException", "Rate exceeded"),
        spec("Hi."),
    )
    .await;
    assert!(
        matches!(err, ProviderError::Throttled { retry_after: None }),
        "{err:?}"
    );

    let (err, _) = error_of(
        polly_error(500, "ServiceFailureException", "internal"),
        spec("Hi."),
    )
    .await;
    assert!(
        matches!(&err, ProviderError::Unavailable(m) if m.contains("ServiceFailureException")),
        "{err:?}"
    );
    let (err, _) = error_of(polly_error(503, "ServiceUnavailable", "later"), spec("Hi.")).await;
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err:?}");

    for code in [
        "TextLengthExceededException",
        "InvalidSsmlException",
        "LexiconNotFoundException",
        "EngineNotSupportedException",
        "ValidationException",
    ] {
        let (err, _) = error_of(polly_error(400, code, "no"), spec("Hi.")).await;
        assert!(
            matches!(&err, ProviderError::Rejected(m) if m.contains(code)),
            "{code}: {err:?}"
        );
    }

    let (err, _) = error_of(
        polly_error(403, "UnrecognizedClientException", "bad token"),
        spec("Hi."),
    )
    .await;
    assert!(matches!(err, ProviderError::Failed(_)), "{err:?}");
}

#[tokio::test]
async fn an_unknown_engine_or_empty_text_is_rejected_without_a_call() {
    let bad_engine = SpeechSpec {
        engine: Some("turbo".into()),
        ..spec("Hi.")
    };
    let (err, calls) = error_of(ResponseTemplate::new(200), bad_engine).await;
    assert!(
        matches!(&err, ProviderError::Rejected(m) if m.contains("turbo")),
        "{err:?}"
    );
    assert_eq!(calls, 0);
    let (err, calls) = error_of(ResponseTemplate::new(200), spec("  \n ")).await;
    assert!(matches!(err, ProviderError::Rejected(_)), "{err:?}");
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn audio_that_is_not_mp3_fails() {
    let (err, _) = error_of(
        ResponseTemplate::new(200).set_body_raw(b"<html>oops</html>".to_vec(), "text/html"),
        spec("Hi."),
    )
    .await;
    assert!(
        matches!(&err, ProviderError::Failed(m) if m.contains("not MP3")),
        "{err:?}"
    );
}

#[test]
fn mp3_durations_agree_with_ffprobe() {
    let dir = tempfile::tempdir().unwrap();
    for (rate, channels, bitrate, seconds) in [
        (24_000, 1, "48k", 2.0),
        (22_050, 1, "32k", 1.3),
        (44_100, 2, "128k", 3.1),
        (16_000, 1, "24k", 0.7),
    ] {
        let path = encode(
            dir.path(),
            &format!("{rate}.mp3"),
            rate,
            channels,
            bitrate,
            seconds,
        );
        let ours = mp3::duration_ms(&std::fs::read(&path).unwrap()).unwrap();
        let probed = frames_ms(&path);
        assert!(
            (f64::from(ours) - probed).abs() < 30.0,
            "{rate} Hz: ours {ours} ms, ffprobe {probed} ms"
        );
    }
}

#[tokio::test]
async fn the_polly_narrator_conforms_to_the_port() {
    let server = fake().await;
    let narrator = narrator(&server, PollySettings::default(), 1).await;
    let dir = tempfile::tempdir().unwrap();
    vidpipe_pipeline::conformance::narrator::run_all(
        &narrator,
        &spec("The fox wakes in the snow. It hunts at dawn, quietly."),
        dir.path(),
    )
    .await;
}

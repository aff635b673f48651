//! The OpenAI-compatible narrator against a fake `/audio/speech` on 127.0.0.1 that answers a
//! real MP3 made by ffmpeg at test time.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use vidpipe_ai::openai::{OpenAiConfigError, RetryPolicy};
use vidpipe_ai::speech::{OpenAiSpeech, SpeechSettings};
use vidpipe_domain::mp3;
use vidpipe_domain::narration::{AudioFormat, SpeechSpec};
use vidpipe_domain::ports::{Narrator, ProviderError};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const KEY: &str = "sk-test-very-secret-0123456789";

/// A 1.5 s, 24 kHz mono MP3, like the endpoint's own.
fn mp3_fixture() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("speech.mp3");
        vidpipe_testkit::ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=330:sample_rate=24000:duration=1.5",
            "-ac",
            "1",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "48k",
            path.to_str().unwrap(),
        ]);
        std::fs::read(&path).unwrap()
    })
}

fn audio() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(mp3_fixture().to_vec(), "audio/mpeg")
}

fn env(server: &MockServer, key: Option<&str>) -> HashMap<&'static str, String> {
    let mut env = HashMap::from([("OPENAI_BASE_URL", format!("{}/v1/", server.uri()))]);
    if let Some(k) = key {
        env.insert("OPENAI_API_KEY", k.to_owned());
    }
    env
}

fn narrator(server: &MockServer, key: Option<&str>) -> OpenAiSpeech {
    let env = env(server, key);
    OpenAiSpeech::from_lookup(|k| env.get(k).cloned())
        .unwrap()
        .with_retry(RetryPolicy {
            retries: 2,
            backoff: Duration::from_millis(5),
            max_retry_after: Duration::from_secs(20),
        })
}

async fn mount(server: &MockServer, answer: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/v1/audio/speech"))
        .respond_with(answer)
        .mount(server)
        .await;
}

/// `answer` for the first `n` requests, the fixture after.
async fn mount_first(server: &MockServer, n: u64, answer: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/v1/audio/speech"))
        .respond_with(answer)
        .up_to_n_times(n)
        .with_priority(1)
        .mount(server)
        .await;
    mount(server, audio()).await;
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap()
}

fn body(req: &Request) -> Value {
    serde_json::from_slice(&req.body).unwrap()
}

fn spec(text: &str) -> SpeechSpec {
    SpeechSpec {
        text: text.into(),
        voice: None,
        engine: None,
    }
}

async fn speak_error(server: &MockServer) -> ProviderError {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("n.mp3");
    let err = narrator(server, Some(KEY))
        .speak(&spec("Hello there."), &dest)
        .await
        .unwrap_err();
    assert!(!dest.exists(), "no audio after {err:?}");
    err
}

#[test]
fn settings_default_read_the_variables_and_check_the_price() {
    let s = SpeechSettings::from_lookup(|_| None).unwrap();
    assert_eq!(
        s,
        SpeechSettings {
            model: "gpt-4o-mini-tts".into(),
            voice: "alloy".into(),
            usd_per_million_chars: None,
        }
    );
    let vars = HashMap::from([
        ("VIDPIPE_OPENAI_TTS_MODEL", "tts-1-hd"),
        ("VIDPIPE_OPENAI_TTS_VOICE", " nova "),
        ("VIDPIPE_OPENAI_TTS_USD_PER_MILLION_CHARS", "30"),
    ]);
    let s = SpeechSettings::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap();
    assert_eq!((s.model.as_str(), s.voice.as_str()), ("tts-1-hd", "nova"));
    assert_eq!(s.usd_per_million_chars, Some(30.0));
    let bad = SpeechSettings::from_lookup(|k| {
        (k == "VIDPIPE_OPENAI_TTS_USD_PER_MILLION_CHARS").then(|| "free".to_owned())
    })
    .unwrap_err();
    assert!(
        matches!(
            bad,
            OpenAiConfigError::Invalid {
                var: "VIDPIPE_OPENAI_TTS_USD_PER_MILLION_CHARS",
                ..
            }
        ),
        "{bad:?}"
    );
}

#[tokio::test]
async fn a_line_is_the_answers_mp3_from_a_well_formed_request() {
    let server = MockServer::start().await;
    mount(&server, audio()).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("line.mp3");
    let n = narrator(&server, Some(KEY));

    let speech = n.speak(&spec("The fox wakes."), &dest).await.unwrap();

    assert_eq!(speech.format, AudioFormat::Mp3);
    assert!(
        speech.words.is_empty(),
        "the endpoint reports no word times"
    );
    assert_eq!(speech.cost, None);
    assert_eq!(std::fs::read(&dest).unwrap(), mp3_fixture());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        body(&sent[0]),
        json!({"model": "gpt-4o-mini-tts", "input": "The fox wakes.", "voice": "alloy", "response_format": "mp3"})
    );
    assert_eq!(
        sent[0].headers.get("authorization").unwrap(),
        &format!("Bearer {KEY}")
    );
    assert_eq!(
        n.cache_identity(),
        "openai-speech|gpt-4o-mini-tts|voice=alloy|mp3"
    );
}

#[tokio::test]
async fn the_specs_voice_is_sent_and_no_key_means_no_authorization() {
    let server = MockServer::start().await;
    mount(&server, audio()).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = SpeechSpec {
        voice: Some("shimmer".into()),
        ..spec("Hi.")
    };
    narrator(&server, None)
        .speak(&spec, &dir.path().join("a.mp3"))
        .await
        .unwrap();
    let sent = requests(&server).await;
    assert_eq!(body(&sent[0])["voice"], "shimmer");
    assert!(sent[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn long_input_is_split_at_sentences_and_the_mp3s_joined() {
    let server = MockServer::start().await;
    mount(&server, audio()).await;
    let sentence = "A quiet river bends through the valley, and the herons wait in the reeds. ";
    let text = sentence.repeat(150);
    let text = text.trim_end();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("long.mp3");
    let env = HashMap::from([
        ("OPENAI_BASE_URL", format!("{}/v1", server.uri())),
        ("VIDPIPE_OPENAI_TTS_USD_PER_MILLION_CHARS", "15".to_owned()),
    ]);

    let speech = OpenAiSpeech::from_lookup(|k| env.get(k).cloned())
        .unwrap()
        .speak(&spec(text), &dest)
        .await
        .unwrap();

    let inputs: Vec<String> = requests(&server)
        .await
        .iter()
        .map(|r| body(r)["input"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(inputs.len(), 3, "{} bytes", text.len());
    for input in &inputs {
        assert!(input.chars().count() <= 4096, "{} characters", input.len());
        assert!(input.trim_end().ends_with('.'), "cut mid-sentence");
    }
    assert_eq!(inputs.concat(), text);

    let one = mp3::duration_ms(mp3_fixture()).unwrap();
    let joined = std::fs::read(&dest).unwrap();
    assert_eq!(mp3::duration_ms(&joined).unwrap(), 3 * one);
    let probed = vidpipe_testkit::probe(&dest);
    let probed_ms = probed.audio_duration.unwrap_or(probed.duration) * 1000.0;
    assert!(
        (probed_ms - 3.0 * f64::from(one)).abs() < 100.0,
        "ffprobe reads {probed_ms} ms for three {one} ms pieces"
    );
    let cost = speech.cost.unwrap();
    assert!(
        (cost.usd - text.len() as f64 * 15.0 / 1e6).abs() < 1e-12,
        "{cost:?}"
    );
    assert_eq!(
        cost.basis,
        format!(
            "{} characters of gpt-4o-mini-tts speech at $15 per million",
            text.len()
        )
    );
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after() {
    let server = MockServer::start().await;
    mount_first(
        &server,
        1,
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "0.3")
            .set_body_json(
                json!({"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}),
            ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    narrator(&server, Some(KEY))
        .speak(&spec("Hi."), &dir.path().join("a.mp3"))
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_lasting_429_is_throttled_with_the_hint_and_a_spent_quota_fails() {
    let server = MockServer::start().await;
    mount(
        &server,
        ResponseTemplate::new(429).insert_header("retry-after-ms", "20"),
    )
    .await;
    let err = speak_error(&server).await;
    assert!(
        matches!(err, ProviderError::Throttled { retry_after: Some(d) } if d == Duration::from_millis(20)),
        "{err:?}"
    );
    assert_eq!(requests(&server).await.len(), 3);

    let server = MockServer::start().await;
    mount(
        &server,
        ResponseTemplate::new(429).set_body_json(
            json!({"error": {"message": "You exceeded your current quota", "code": "insufficient_quota"}}),
        ),
    )
    .await;
    let err = speak_error(&server).await;
    assert!(
        matches!(&err, ProviderError::Failed(m) if m.contains("insufficient_quota")),
        "{err:?}"
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn a_5xx_is_retried_then_unavailable() {
    let server = MockServer::start().await;
    mount_first(&server, 2, ResponseTemplate::new(502)).await;
    let dir = tempfile::tempdir().unwrap();
    narrator(&server, Some(KEY))
        .speak(&spec("Hi."), &dir.path().join("a.mp3"))
        .await
        .expect("the third attempt succeeds");
    assert_eq!(requests(&server).await.len(), 3);

    let server = MockServer::start().await;
    mount(
        &server,
        ResponseTemplate::new(500).set_body_string("upstream down"),
    )
    .await;
    let err = speak_error(&server).await;
    assert!(
        matches!(&err, ProviderError::Unavailable(m) if m == "HTTP 500: upstream down (after 3 attempts)"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_400_is_rejected_at_once_and_other_4xx_fail() {
    let server = MockServer::start().await;
    mount(
        &server,
        ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "Invalid value for 'voice': 'robot'.", "type": "invalid_request_error"}})),
    )
    .await;
    let err = speak_error(&server).await;
    assert!(
        matches!(&err, ProviderError::Rejected(m)
            if m == "HTTP 400: invalid_request_error: Invalid value for 'voice': 'robot'."),
        "{err:?}"
    );
    assert_eq!(requests(&server).await.len(), 1);

    let server = MockServer::start().await;
    mount(
        &server,
        ResponseTemplate::new(404).set_body_string("no such route"),
    )
    .await;
    assert!(matches!(
        speak_error(&server).await,
        ProviderError::Failed(_)
    ));
}

#[tokio::test]
async fn an_answer_that_is_not_mp3_fails() {
    let server = MockServer::start().await;
    mount(
        &server,
        ResponseTemplate::new(200)
            .set_body_raw(b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec(), "audio/wav"),
    )
    .await;
    let err = speak_error(&server).await;
    assert!(
        matches!(&err, ProviderError::Failed(m) if m.contains("not MP3")),
        "{err:?}"
    );
}

#[tokio::test]
async fn empty_text_is_rejected_without_a_request() {
    let server = MockServer::start().await;
    mount(&server, audio()).await;
    let dir = tempfile::tempdir().unwrap();
    let err = narrator(&server, None)
        .speak(&spec(" \n"), &dir.path().join("a.mp3"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Rejected(_)), "{err:?}");
    assert!(requests(&server).await.is_empty());
}

#[tokio::test]
async fn the_key_never_shows_in_debug_output_or_errors() {
    let server = MockServer::start().await;
    let n = narrator(&server, Some(KEY));
    let debug = format!("{n:?}");
    assert!(!debug.contains(KEY) && debug.contains("***"), "{debug}");

    mount(
        &server,
        ResponseTemplate::new(401).set_body_json(json!({"error": {
            "message": format!("Incorrect API key provided: {KEY}."), "code": "invalid_api_key"}})),
    )
    .await;
    let err = speak_error(&server).await;
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(KEY), "{shown}");
    assert!(
        matches!(&err, ProviderError::Failed(m)
            if m == "HTTP 401: invalid_api_key: Incorrect API key provided: ***."),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_openai_narrator_conforms_to_the_port() {
    let server = MockServer::start().await;
    mount(&server, audio()).await;
    let dir = tempfile::tempdir().unwrap();
    vidpipe_pipeline::conformance::narrator::run_all(
        &narrator(&server, Some("sk-test")),
        &spec("The fox wakes in the snow. It hunts at dawn, quietly."),
        dir.path(),
    )
    .await;
}

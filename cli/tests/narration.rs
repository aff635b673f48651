//! `vidpipe generate --narrate` as a user runs it: espeak-ng speaks offline, the JSON names the
//! narrator and tempo, the video carries the speech, and bad narration or caption flags are
//! refused naming the flag or field.

use std::process::{Command, Output};
use vidpipe_tests::{ebur128, loudness, probe};

fn vidpipe(home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vidpipe"))
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .expect("run vidpipe")
}

const BASE: [&str; 10] = [
    "generate",
    "--prompt",
    "Morning fog lifts off the river. A heron takes flight.",
    "--duration",
    "8",
    "--aspect",
    "9:16",
    "--resolution",
    "720p",
    "--json",
];

#[test]
fn narrate_speaks_offline_with_karaoke_captions() {
    let home = tempfile::tempdir().unwrap();
    let mut args = BASE.to_vec();
    args.extend([
        "--narrate",
        "--caption-style",
        "karaoke",
        "--voice",
        "en-gb",
    ]);
    let out = vidpipe(home.path(), &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "completed");
    assert_eq!(v["narration"]["narrator"], "espeak");
    assert_eq!(v["narration"]["voice"], "en-gb");
    assert_eq!(v["request"]["caption_style"]["style"], "karaoke");
    let video = std::path::PathBuf::from(v["final"].as_str().unwrap());
    let f = probe(&video);
    assert!((f.duration - 8.0).abs() <= 1.0 / 30.0);
    assert!(loudness(&video, None).mean_db > -35.0, "the video speaks");
    let r = ebur128(&video);
    assert!(
        (r.integrated + 14.0).abs() <= 1.5 && r.true_peak <= -1.0,
        "{r:?}"
    );
}

#[test]
fn bad_narration_and_caption_flags_name_themselves() {
    let home = tempfile::tempdir().unwrap();
    let mut args = BASE.to_vec();
    args.extend(["--narrator", "festival"]);
    let out = vidpipe(home.path(), &args);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--narrator") && err.contains("festival"),
        "{err}"
    );

    let mut args = BASE.to_vec();
    args.extend(["--caption-style", "comic"]);
    let out = vidpipe(home.path(), &args);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("captions.style"), "{err}");

    let mut args = BASE.to_vec();
    args.extend([
        "--narrate",
        "--narrator",
        "espeak",
        "--narration-engine",
        "neural",
    ]);
    let out = vidpipe(home.path(), &args);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("narration.engine"));
}

/// A spoken line as MP3, as an OpenAI-compatible speech server answers: espeak-ng's voice
/// encoded with LAME.
fn speech_mp3(dir: &std::path::Path) -> Vec<u8> {
    let wav = dir.join("line.wav");
    let status = Command::new("espeak-ng")
        .args([
            "-w",
            wav.to_str().unwrap(),
            "Morning fog lifts off the river.",
        ])
        .status()
        .expect("espeak-ng (scripts/setup.sh installs it)");
    assert!(status.success());
    let mp3 = dir.join("line.mp3");
    vidpipe_tests::ffmpeg(&[
        "-i",
        wav.to_str().unwrap(),
        "-c:a",
        "libmp3lame",
        "-b:a",
        "64k",
        mp3.to_str().unwrap(),
    ]);
    std::fs::read(mp3).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrator_openai_speaks_through_a_compatible_server_and_keeps_its_key() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    const KEY: &str = "sk-TOPSECRETspeech0123456789";
    let home = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/audio/speech"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(speech_mp3(home.path()), "audio/mpeg"),
        )
        .expect(2)
        .mount(&server)
        .await;
    let base = format!("{}/v1", server.uri());
    let h = home.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        let mut args = BASE.to_vec();
        args.extend(["--narrate", "--narrator", "openai", "--voice", "nova"]);
        Command::new(env!("CARGO_BIN_EXE_vidpipe"))
            .arg("--home")
            .arg(&h)
            .args(&args)
            .env("OPENAI_BASE_URL", &base)
            .env("OPENAI_API_KEY", KEY)
            .env("VIDPIPE_LOG", "debug")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stdout.contains(KEY) && !stderr.contains(KEY),
        "the key leaked"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["narration"]["narrator"], "openai-speech");
    // Both scenes' lines went to the server (the mock's expect(2) checks on drop), as nova.
    let requests = server.received_requests().await.unwrap();
    let bodies: Vec<serde_json::Value> = requests
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert!(
        bodies
            .iter()
            .all(|b| b["voice"] == "nova" && b["response_format"] == "mp3")
    );
    let video = std::path::PathBuf::from(v["final"].as_str().unwrap());
    assert!(loudness(&video, None).mean_db > -35.0, "the video speaks");
}

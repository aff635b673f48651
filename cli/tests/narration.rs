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

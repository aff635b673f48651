//! The espeak-ng layer (`layers/espeak/build.sh`) as a Lambda runs it: the tree's own binary,
//! started with a scrubbed environment (only Lambda's `LD_LIBRARY_PATH`), speaks Japanese and
//! English with the tree's own voices, measured by ffprobe; every shipped ELF links only libc and
//! libm and binds no glibc symbol newer than the provided.al2023 runtime's 2.34; the arm64 tree
//! the template deploys speaks (under qemu-user) as the host's does.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use vidpipe_domain::narration::SpeechSpec;
use vidpipe_domain::ports::Narrator;
use vidpipe_media::EspeakNarrator;
use vidpipe_tests::{loudness, probe, tools};

/// glibc of the provided.al2023 Lambda runtime.
const GLIBC_CEILING: (u32, u32) = (2, 34);
/// What Lambda sets for a provided runtime's function (layers' libraries come from /opt/lib).
const LAMBDA_LD_LIBRARY_PATH: &str = "/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/opt/lib";
const JAPANESE: &str = "東京の夜、ネオンが川に映る。";
const ENGLISH: &str = "A lighthouse stands at dusk. The waves break below it.";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        other => other,
    }
}

/// The layer's tree for an arch, built (or found up to date, in well under a second) by the
/// project's script. One build at a time: two would rebuild the same folders.
fn tree(arch: &str) -> PathBuf {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new("bash")
        .arg(root().join("layers/espeak/build.sh"))
        .arg(arch)
        .output()
        .expect("run layers/espeak/build.sh");
    assert!(
        out.status.success(),
        "layers/espeak/build.sh {arch}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    root().join("layers/espeak/build").join(arch)
}

/// The tree's binary with nothing of this machine's environment: no PATH (so no system
/// espeak-ng), no ESPEAK_DATA_PATH, no HOME; a foreign arch runs under qemu-user.
fn layer_command(arch: &str, tree: &Path) -> Command {
    let binary = tree.join("bin/espeak-ng");
    let mut cmd = if arch == host_arch() {
        Command::new(&binary)
    } else {
        let (qemu, sysroot) = match arch {
            "arm64" => ("qemu-aarch64", "/usr/aarch64-linux-gnu"),
            _ => ("qemu-x86_64", "/usr/x86_64-linux-gnu"),
        };
        let mut c = Command::new(qemu);
        c.arg("-L").arg(sysroot).arg(&binary);
        c
    };
    cmd.env_clear()
        .env("LD_LIBRARY_PATH", LAMBDA_LD_LIBRARY_PATH);
    cmd
}

/// Speaks `text` with the tree's binary and voices to `dest`; espeak-ng says nothing on stderr
/// when all is well (an unknown voice is reported there with exit status 0).
fn speak(arch: &str, tree: &Path, voice: &str, text: &str, dest: &Path) {
    let mut child = layer_command(arch, tree)
        .arg(format!("--path={}", tree.join("share").display()))
        .args(["-b", "1", "--stdin", "-v", voice, "-w"])
        .arg(dest)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the layer's espeak-ng");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{arch} espeak-ng -v {voice}: {} {stderr}",
        out.status
    );
}

/// Seconds of speech in a WAV, by ffprobe, after checking it is espeak-ng's mono 22.05 kHz and
/// audible.
fn spoken_seconds(wav: &Path) -> f64 {
    let facts = probe(wav);
    assert_eq!(facts.audio_channels, Some(1), "{:?}", facts.raw);
    assert_eq!(facts.audio_sample_rate, Some(22050), "{:?}", facts.raw);
    assert!(
        loudness(wav, None).mean_db > -40.0,
        "{} is audible",
        wav.display()
    );
    facts.audio_duration.unwrap_or(facts.duration)
}

#[test]
fn the_layer_speaks_japanese_and_english_from_its_own_tree_alone() {
    let arch = host_arch();
    let tree = tree(arch);
    let version = layer_command(arch, &tree)
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(version.contains("1.52.0.1"), "{version}");
    // On Lambda nothing names the data: the compiled-in path is where the layer unpacks it.
    assert!(
        version.contains("Data at: /opt/share/espeak-ng-data"),
        "{version}"
    );
    if !Path::new("/opt/share/espeak-ng-data").exists() {
        // And here nothing else holds voices for it (no ESPEAK_DATA_PATH, no HOME): unless told
        // the tree's share folder it cannot speak, so the speech below is the tree's own.
        let out = layer_command(arch, &tree)
            .args(["-v", "en-us", "--stdout", "hello"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("/opt/share/espeak-ng-data"),
            "{} {stderr}",
            out.status
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let ja = dir.path().join("ja.wav");
    let en = dir.path().join("en.wav");
    speak(arch, &tree, "ja", JAPANESE, &ja);
    speak(arch, &tree, "en-us", ENGLISH, &en);
    let (ja_s, en_s) = (spoken_seconds(&ja), spoken_seconds(&en));
    // Fourteen characters read as Japanese take seconds; read as letter names by an English
    // voice they would take several times longer, and an empty voice would write nothing.
    assert!((1.0..8.0).contains(&ja_s), "Japanese: {ja_s} s");
    // Ten words at espeak's 175 a minute, with a pause.
    assert!((2.0..6.0).contains(&en_s), "English: {en_s} s");
    eprintln!("layer espeak-ng ({arch}): Japanese {ja_s:.2} s, English {en_s:.2} s");
}

/// The narrator itself, pointed at the tree as `VIDPIPE_ESPEAK` points a function at the layer,
/// finds the voices beside the binary and times the words inside what it measured.
#[tokio::test]
async fn the_narrator_speaks_through_the_layer_tree() {
    let tree = tree(host_arch());
    let narrator: Arc<dyn Narrator> =
        Arc::new(EspeakNarrator::new(tree.join("bin/espeak-ng"), tools()));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("line.wav");
    let spec = SpeechSpec {
        text: JAPANESE.into(),
        voice: None,
        engine: None,
    };
    let speech = narrator.speak(&spec, &dest).await.unwrap();
    let seconds = spoken_seconds(&dest);
    let last = speech.words.last().expect("word times");
    assert!(
        f64::from(last.end_ms) <= seconds * 1000.0 + 1.0,
        "{last:?} vs {seconds} s"
    );
}

/// `GLIBC_x.y` versions named in `readelf -V` output.
fn glibc_versions(readelf: &str) -> Vec<(u32, u32)> {
    readelf
        .split(|c: char| c.is_whitespace())
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let mut parts = v.split('.').map(|n| n.parse::<u32>().ok());
            Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
        })
        .collect()
}

fn readelf(args: &[&str], file: &Path) -> String {
    let out = Command::new("readelf")
        .args(args)
        .arg(file)
        .output()
        .expect("readelf (binutils)");
    assert!(out.status.success(), "readelf {args:?} {}", file.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn elf_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            elf_files(&path, found);
        } else if std::fs::read(&path).is_ok_and(|b| b.starts_with(b"\x7fELF")) {
            found.push(path);
        }
    }
}

#[test]
fn the_glibc_check_reads_what_readelf_prints() {
    let sample = "  0x0010:   Name: GLIBC_2.38  Flags: none  Version: 4\n  \
                  0x0020:   Name: GLIBC_2.2.5  Flags: none  Version: 3\n";
    assert_eq!(glibc_versions(sample), [(2, 38), (2, 2)]);
    assert!(glibc_versions(sample).into_iter().max().unwrap() > GLIBC_CEILING);
}

#[test]
fn every_shipped_elf_needs_only_libc_and_at_most_glibc_2_34() {
    for (arch, machine) in [("x86_64", "X86-64"), ("arm64", "AArch64")] {
        let tree = tree(arch);
        let mut elves = Vec::new();
        elf_files(&tree, &mut elves);
        assert_eq!(elves, [tree.join("bin/espeak-ng")], "{arch}: the only ELF");
        for elf in &elves {
            let header = readelf(&["-h"], elf);
            assert!(header.contains(machine), "{arch}: {header}");
            let dynamic = readelf(&["-d"], elf);
            let needed: Vec<&str> = dynamic
                .lines()
                .filter(|l| l.contains("(NEEDED)"))
                .filter_map(|l| l.split('[').nth(1)?.split(']').next())
                .collect();
            assert!(!needed.is_empty(), "{arch}: dynamically linked");
            for lib in &needed {
                assert!(
                    ["libc.so.6", "libm.so.6"].contains(lib),
                    "{arch} needs {lib}, which a Lambda runtime does not have"
                );
            }
            let versions = glibc_versions(&readelf(&["-V", "--wide"], elf));
            let newest = versions.iter().max().copied();
            assert!(newest.is_some(), "{arch}: binds versioned glibc symbols");
            assert!(
                newest <= Some(GLIBC_CEILING),
                "{arch} needs GLIBC_{newest:?}, newer than the Lambda runtime's 2.34"
            );
            eprintln!(
                "{arch}: {} needs {needed:?}, up to GLIBC {newest:?}",
                elf.display()
            );
        }
    }
}

/// The tree the template deploys is arm64, cross-compiled here: run under qemu-user, it speaks
/// the Japanese line to the same length, sample for sample, as the host's build.
#[test]
fn the_arm64_layer_speaks_as_the_host_build_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut lengths = Vec::new();
    for arch in ["x86_64", "arm64"] {
        let tree = tree(arch);
        let wav = dir.path().join(format!("{arch}.wav"));
        speak(arch, &tree, "ja", JAPANESE, &wav);
        lengths.push((spoken_seconds(&wav), std::fs::metadata(&wav).unwrap().len()));
    }
    assert_eq!(lengths[0].1, lengths[1].1, "same WAV size: {lengths:?}");
    assert!((lengths[0].0 - lengths[1].0).abs() < 1e-6, "{lengths:?}");
}

//! The offline narrator: espeak-ng speaks each line to a WAV file. It reports no word times, so
//! they are estimated from the text and the measured length of what it said.

use crate::tools::Tools;
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use vidpipe_domain::narration::{AudioFormat, Speech, SpeechSpec, estimate_word_timings};
use vidpipe_domain::ports::{MediaError, Narrator, ProviderError};

/// The Lambda layer's binary, looked for first when `VIDPIPE_ESPEAK` does not say.
const LAYER_BINARY: &str = "/opt/bin/espeak-ng";
/// espeak's default of 175 words a minute sounds hurried over video; this is a calm read.
pub const DEFAULT_WORDS_PER_MINUTE: u32 = 160;

pub struct EspeakNarrator {
    binary: PathBuf,
    /// The folder holding `espeak-ng-data` when it sits beside the binary (`bin/../share`), as in
    /// the layer's tree; `None` leaves the binary to its compiled-in or packaged data.
    data: Option<PathBuf>,
    tools: Tools,
    words_per_minute: u32,
    /// What `--version` reports, part of the cache identity: another espeak-ng build speaks the
    /// same text differently, so its cached speech must not be reused.
    version: String,
}

impl EspeakNarrator {
    pub const NAME: &'static str = "espeak";

    pub fn new(binary: PathBuf, tools: Tools) -> EspeakNarrator {
        EspeakNarrator {
            data: data_beside(&binary),
            version: reported_version(&binary),
            binary,
            tools,
            words_per_minute: DEFAULT_WORDS_PER_MINUTE,
        }
    }

    /// The binary named by `VIDPIPE_ESPEAK`, else the layer's (`/opt/bin`, then the
    /// `layers/espeak/build.sh` tree of this checkout, so local runs speak with what Lambda
    /// runs), else the one on `PATH`.
    pub fn locate(tools: Tools) -> Result<EspeakNarrator, MediaError> {
        let binary = match std::env::var_os("VIDPIPE_ESPEAK").filter(|v| !v.is_empty()) {
            Some(p) => PathBuf::from(p),
            None => candidates()
                .into_iter()
                .find(|p| p.is_file())
                .or_else(|| on_path(Path::new("espeak-ng")))
                .ok_or_else(|| MediaError::ToolMissing {
                    tool: "espeak-ng".into(),
                    hint: "run scripts/setup.sh (layers/espeak/build.sh), or set VIDPIPE_ESPEAK"
                        .into(),
                })?,
        };
        Ok(EspeakNarrator::new(binary, tools))
    }
}

/// The version token of `espeak-ng --version` ("eSpeak NG text-to-speech: 1.52.0.1 ..."), or
/// "unknown" when the binary can't say (it then fails loudly at its first line anyway).
fn reported_version(binary: &Path) -> String {
    std::process::Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()) && w.contains('.'))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".into())
}

/// `/opt/bin/espeak-ng`, then `layers/espeak/build/<arch>/bin/espeak-ng` under the workspace this
/// crate was compiled in and under each ancestor of the running executable, as ffmpeg is found.
fn candidates() -> Vec<PathBuf> {
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        other => other,
    };
    let tree = Path::new("layers")
        .join("espeak")
        .join("build")
        .join(arch)
        .join("bin")
        .join("espeak-ng");
    let mut found = vec![
        PathBuf::from(LAYER_BINARY),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(&tree),
    ];
    if let Ok(exe) = std::env::current_exe() {
        found.extend(exe.ancestors().skip(1).map(|a| a.join(&tree)));
    }
    found
}

/// The `share` folder of a tree laid out like the layer (`bin/espeak-ng`,
/// `share/espeak-ng-data/`). Voice data must come from the same espeak-ng version as the binary:
/// the layer's 1.52 reading a distribution's 1.51 data could fail or mispronounce, so data that
/// travels with the binary is always named to it rather than left to `ESPEAK_DATA_PATH` or the
/// path compiled in (`/opt/share`, right on Lambda only).
fn data_beside(binary: &Path) -> Option<PathBuf> {
    let share = binary.parent()?.parent()?.join("share");
    share
        .join("espeak-ng-data")
        .join("phondata")
        .is_file()
        .then_some(share)
}

fn on_path(name: &Path) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The names `-v` takes from `espeak-ng --voices`: each row's language (column 2), voice name
/// (column 4) and other languages (`(fr 5)` after the file: `fr` picks `fr-fr`), after the
/// header row.
fn parse_voice_table(table: &str) -> Vec<String> {
    let mut names: Vec<String> = table
        .lines()
        .skip(1)
        .flat_map(|row| {
            let cols: Vec<&str> = row.split_whitespace().collect();
            // Written `(zh-cmn 5)(zh 5)`: a name and a priority in each pair of brackets.
            let others: Vec<String> = cols
                .iter()
                .skip(5)
                .flat_map(|c| c.split(['(', ')']))
                .filter(|c| !c.is_empty() && !c.chars().all(|ch| ch.is_ascii_digit()))
                .map(str::to_owned)
                .collect();
            [cols.get(1), cols.get(3)]
                .into_iter()
                .flatten()
                .map(|s| (*s).to_owned())
                .chain(others)
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// An espeak-ng voice for the text's script, so a Japanese prompt is not read with English
/// letter names. Latin text gets American English.
pub fn voice_for_text(text: &str) -> &'static str {
    let mut counts = [0usize; 9];
    for c in text.chars() {
        let slot = match c as u32 {
            0x3040..=0x30FF => 0,                                     // kana: Japanese
            0x4E00..=0x9FFF | 0x3400..=0x4DBF => 1,                   // han
            0xAC00..=0xD7AF | 0x1100..=0x11FF => 2,                   // hangul
            0x0600..=0x06FF | 0x0750..=0x077F | 0xFB50..=0xFDFF => 3, // Arabic
            0x0590..=0x05FF => 4,                                     // Hebrew
            0x0900..=0x097F => 5,                                     // Devanagari
            0x0400..=0x04FF => 6,                                     // Cyrillic
            0x0370..=0x03FF => 7,                                     // Greek
            _ if c.is_alphabetic() => 8,
            _ => continue,
        };
        counts[slot] += 1;
    }
    // Han with any kana is Japanese; han alone is Mandarin.
    if counts[0] > 0 {
        return "ja";
    }
    let best = (1..counts.len())
        .max_by_key(|&i| (counts[i], i == 8))
        .filter(|&i| counts[i] > 0)
        .unwrap_or(8);
    ["ja", "cmn", "ko", "ar", "he", "hi", "ru", "el", "en-us"][best]
}

#[async_trait]
impl Narrator for EspeakNarrator {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn cache_identity(&self) -> String {
        format!("espeak-ng-{}:{}wpm", self.version, self.words_per_minute)
    }

    /// The language codes and voice names of `espeak-ng --voices` (`en-us`, `English_(America)`).
    async fn voices(&self) -> Result<Option<Vec<String>>, ProviderError> {
        let mut command = Command::new(&self.binary);
        if let Some(data) = &self.data {
            command.arg(format!("--path={}", data.display()));
        }
        let out = command
            .arg("--voices")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| MediaError::ToolMissing {
                tool: "espeak-ng".into(),
                hint: format!("{}: {e}", self.binary.display()),
            })?;
        if !out.status.success() {
            return Err(ProviderError::Failed(format!(
                "espeak-ng --voices: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(Some(parse_voice_table(&String::from_utf8_lossy(
            &out.stdout,
        ))))
    }

    async fn speak(&self, spec: &SpeechSpec, dest: &Path) -> Result<Speech, ProviderError> {
        let voice = spec
            .voice
            .clone()
            .unwrap_or_else(|| voice_for_text(&spec.text).to_owned());
        // The text goes in on stdin, so a line starting with '-' is never read as a flag.
        let mut command = Command::new(&self.binary);
        if let Some(data) = &self.data {
            command.arg(format!("--path={}", data.display()));
        }
        let mut child = command
            .args(["-b", "1", "--stdin", "-v", &voice, "-s"])
            .arg(self.words_per_minute.to_string())
            .arg("-w")
            .arg(dest)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| MediaError::ToolMissing {
                tool: "espeak-ng".into(),
                hint: format!("{}: {e}", self.binary.display()),
            })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin
            .write_all(spec.text.as_bytes())
            .await
            .map_err(MediaError::Io)?;
        drop(stdin);
        let out = child.wait_with_output().await.map_err(MediaError::Io)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        // espeak-ng exits 0 for an unknown voice and says so on stderr, writing nothing useful.
        if !out.status.success() || stderr.contains("Error") {
            let reason = stderr
                .lines()
                .next()
                .unwrap_or("no message")
                .trim()
                .to_owned();
            return Err(if stderr.contains("voice") {
                ProviderError::Rejected(format!("espeak-ng voice {voice:?}: {reason}"))
            } else {
                ProviderError::Failed(format!("espeak-ng: {reason}"))
            });
        }
        let info = crate::probe::probe(&self.tools, dest).await?;
        let seconds = info.duration_seconds.unwrap_or(0.0);
        if seconds <= 0.0 {
            return Err(ProviderError::Failed(
                "espeak-ng wrote no audio for the line".into(),
            ));
        }
        Ok(Speech {
            format: AudioFormat::Wav,
            words: estimate_word_timings(&spec.text, (seconds * 1000.0).round() as u32),
            cost: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_voice_table_gives_languages_and_names() {
        let table = "Pty Language       Age/Gender VoiceName          File                 Other Languages\n \
                     5  af              --/M      Afrikaans          gmw/af\n \
                     2  en-us           --/M      English_(America)  gmw/en-US            (en 3)\n \
                     5  cmn             --/M      Chinese_(Mandarin) sit/cmn              (zh-cmn 5)(zh 5)\n";
        assert_eq!(
            parse_voice_table(table),
            vec![
                "Afrikaans",
                "Chinese_(Mandarin)",
                "English_(America)",
                "af",
                "cmn",
                "en",
                "en-us",
                "zh",
                "zh-cmn"
            ]
        );
    }

    #[test]
    fn voices_follow_the_script() {
        assert_eq!(voice_for_text("A calm ocean at sunrise."), "en-us");
        assert_eq!(voice_for_text("夜の東京。ネオンが光る。"), "ja");
        assert_eq!(voice_for_text("北京的夜晚"), "cmn");
        assert_eq!(voice_for_text("서울의 밤"), "ko");
        assert_eq!(voice_for_text("مدينة في الليل"), "ar");
        assert_eq!(voice_for_text("עיר בלילה"), "he");
        assert_eq!(voice_for_text("रात में शहर"), "hi");
        assert_eq!(voice_for_text("Город ночью"), "ru");
        assert_eq!(voice_for_text("Πόλη τη νύχτα"), "el");
        assert_eq!(voice_for_text("123 !!"), "en-us");
    }

    #[test]
    fn data_is_found_beside_a_tree_laid_out_like_the_layer() {
        let tree = tempfile::tempdir().unwrap();
        let binary = tree.path().join("bin").join("espeak-ng");
        assert_eq!(data_beside(&binary), None, "no data folder yet");
        let data = tree.path().join("share").join("espeak-ng-data");
        std::fs::create_dir_all(&data).unwrap();
        assert_eq!(
            data_beside(&binary),
            None,
            "a folder without phondata is no data"
        );
        std::fs::write(data.join("phondata"), b"x").unwrap();
        assert_eq!(data_beside(&binary), Some(tree.path().join("share")));
        assert_eq!(
            data_beside(Path::new("espeak-ng")),
            None,
            "a bare name on PATH"
        );
    }
}

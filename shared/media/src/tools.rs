//! Finding the ffmpeg and ffprobe binaries, in the order the design fixes: an explicit setting
//! (or `VIDPIPE_FFMPEG_DIR`), the Lambda layer's `/opt/bin`, the project's own layer build, `PATH`.

use std::path::{Path, PathBuf};
use vidpipe_domain::ports::MediaError;

/// Environment variable naming a directory that holds both `ffmpeg` and `ffprobe`.
pub const ENV_DIR: &str = "VIDPIPE_FFMPEG_DIR";

const HINT: &str = "run layers/ffmpeg/build.sh (or set VIDPIPE_FFMPEG_DIR to a directory holding ffmpeg and ffprobe)";

/// The two binaries every media operation runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
}

impl Tools {
    /// Finds ffmpeg and ffprobe. `explicit` is a directory holding both.
    ///
    /// An explicit directory or `VIDPIPE_FFMPEG_DIR` that lacks the binaries is an error rather
    /// than a fall-through: a deliberate setting that silently picked another ffmpeg (say
    /// Debian's 5.1, without the layer's codecs) would fail far from the cause.
    pub fn locate(explicit: Option<&Path>) -> Result<Tools, MediaError> {
        if let Some(dir) = explicit {
            return Self::in_dir(dir)
                .ok_or_else(|| missing_in(dir, "the explicit ffmpeg directory"));
        }
        if let Some(dir) = std::env::var_os(ENV_DIR).filter(|v| !v.is_empty()) {
            let dir = PathBuf::from(dir);
            return Self::in_dir(&dir).ok_or_else(|| missing_in(&dir, ENV_DIR));
        }
        Self::candidate_dirs()
            .iter()
            .find_map(|d| Self::in_dir(d))
            .or_else(Self::on_path)
            .ok_or_else(|| MediaError::ToolMissing {
                tool: "ffmpeg".into(),
                hint: format!("not in /opt/bin, the layer build output or PATH; {HINT}"),
            })
    }

    /// Both binaries from one directory, if both are there and executable.
    pub fn in_dir(dir: &Path) -> Option<Tools> {
        let ffmpeg = dir.join("ffmpeg");
        let ffprobe = dir.join("ffprobe");
        (is_executable(&ffmpeg) && is_executable(&ffprobe)).then_some(Tools { ffmpeg, ffprobe })
    }

    /// `/opt/bin` (the Lambda layer), then `layers/ffmpeg/build/<arch>/bin` under the workspace
    /// this crate was compiled in and under each ancestor of the running executable (so a
    /// binary copied next to a checkout still finds the layer build).
    fn candidate_dirs() -> Vec<PathBuf> {
        let layer = Path::new("layers")
            .join("ffmpeg")
            .join("build")
            .join(layer_arch())
            .join("bin");
        let mut dirs = vec![PathBuf::from("/opt/bin")];
        dirs.push(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(&layer),
        );
        if let Ok(exe) = std::env::current_exe() {
            dirs.extend(exe.ancestors().skip(1).map(|a| a.join(&layer)));
        }
        dirs
    }

    fn on_path() -> Option<Tools> {
        let path = std::env::var_os("PATH")?;
        let find = |name: &str| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| is_executable(p))
        };
        Some(Tools {
            ffmpeg: find("ffmpeg")?,
            ffprobe: find("ffprobe")?,
        })
    }
}

/// The directory name the layer build uses for this machine's architecture.
fn layer_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        other => other,
    }
}

fn missing_in(dir: &Path, what: &str) -> MediaError {
    MediaError::ToolMissing {
        tool: "ffmpeg".into(),
        hint: format!(
            "{what} {} does not hold executable ffmpeg and ffprobe; {HINT}",
            dir.display()
        ),
    }
}

fn is_executable(p: &Path) -> bool {
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                m.permissions().mode() & 0o111 != 0
            }
            #[cfg(not(unix))]
            {
                true
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_dir_without_binaries_is_tool_missing() {
        let err = Tools::locate(Some(Path::new("/definitely/not/here"))).unwrap_err();
        match err {
            MediaError::ToolMissing { hint, .. } => {
                assert!(hint.contains("layers/ffmpeg/build.sh"), "{hint}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

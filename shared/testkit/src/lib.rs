//! Test fixtures for vidpipe's media and end-to-end tests, in one place: making small
//! deterministic media with ffmpeg's lavfi sources ([`make`]), and judging outputs by measurement
//! rather than by the code under test ([`measure`]). Every item is re-exported at the root.

pub mod make;
pub mod measure;

pub use make::*;
pub use measure::*;

use std::process::Command;
use vidpipe_media::Tools;

/// The ffmpeg and ffprobe the tests use: the layer build, `/opt/bin` or `PATH`.
pub fn tools() -> Tools {
    Tools::locate(None).expect("ffmpeg/ffprobe not found: run layers/ffmpeg/build.sh")
}

/// The real tools, but `ffmpeg` is a script in `dir` that notes each run in `dir/ffmpeg_runs`
/// before handing over to the real binary with the same arguments: a test counts a render's
/// ffmpeg runs with [`ffmpeg_runs`].
pub fn counting_tools(dir: &std::path::Path) -> Tools {
    use std::os::unix::fs::PermissionsExt;
    let real = tools();
    let script = dir.join("counting-ffmpeg");
    let quote =
        |p: &std::path::Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho run >> {}\nexec {} \"$@\"\n",
            quote(&dir.join("ffmpeg_runs")),
            quote(&real.ffmpeg)
        ),
    )
    .expect("write the counting script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .expect("make the counting script executable");
    Tools {
        ffmpeg: script,
        ffprobe: real.ffprobe,
    }
}

/// How many times the [`counting_tools`] of `dir` ran ffmpeg.
pub fn ffmpeg_runs(dir: &std::path::Path) -> usize {
    std::fs::read_to_string(dir.join("ffmpeg_runs"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// Runs a tool to completion and returns its stdout; panics with its stderr if it fails.
fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("run a media tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

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

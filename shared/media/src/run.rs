//! Running ffmpeg and ffprobe as child processes: argument vectors only, progress parsed from
//! `-progress pipe:1`, the stderr tail kept for errors, and the child killed if the caller gives up.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::Command;
use vidpipe_domain::media::ToolVersions;
use vidpipe_domain::ports::MediaError;

use crate::tools::Tools;

/// How many stderr lines a `ToolFailed` error carries.
const STDERR_TAIL_LINES: usize = 20;

/// Where to report progress: a fraction in 0..=1 of `total_seconds` of output.
#[derive(Clone, Copy)]
pub struct Progress<'a> {
    pub total_seconds: f64,
    pub report: &'a (dyn Fn(f64) + Send + Sync),
}

/// Runs ffmpeg with `args` (inputs, graph, outputs) to completion, reporting progress if asked.
///
/// The common flags (`-hide_banner -nostdin -y -progress pipe:1 -nostats`) are added here, so
/// stdout belongs to the progress protocol: never write an output to `pipe:1`.
/// Dropping the returned future kills ffmpeg.
pub async fn ffmpeg<I, S>(
    tools: &Tools,
    args: I,
    progress: Option<Progress<'_>>,
) -> Result<(), MediaError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(&tools.ffmpeg);
    cmd.args([
        "-hide_banner",
        "-nostdin",
        "-y",
        "-progress",
        "pipe:1",
        "-nostats",
    ])
    .args(args)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    tracing::debug!(?cmd, "running ffmpeg");
    let mut child = cmd
        .spawn()
        .map_err(|e| spawn_error("ffmpeg", &tools.ffmpeg, e))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");

    let watch_progress = async {
        let mut lines = BufReader::new(stdout).lines();
        let mut best = 0.0f64;
        while let Ok(Some(line)) = lines.next_line().await {
            let Some(p) = progress else { continue };
            let fraction = if let Some(us) = line.strip_prefix("out_time_us=") {
                // `N/A` before the first frame; negative while the muxer primes.
                us.trim()
                    .parse::<f64>()
                    .ok()
                    .map(|us| us / 1e6 / p.total_seconds.max(1e-9))
            } else if line.trim() == "progress=end" {
                Some(1.0)
            } else {
                None
            };
            if let Some(f) = fraction.map(|f| f.clamp(0.0, 1.0)).filter(|&f| f > best) {
                best = f;
                (p.report)(f);
            }
        }
    };
    let (_, tail, status) = tokio::join!(watch_progress, tail_lines(stderr), child.wait());
    check("ffmpeg", status?, tail)
}

/// The first line of each tool's `-version` output, e.g. `ffmpeg version n8.1.2 ...`.
pub async fn versions(tools: &Tools) -> Result<ToolVersions, MediaError> {
    let (ffmpeg, ffprobe) = tokio::try_join!(
        first_version_line(&tools.ffmpeg),
        first_version_line(&tools.ffprobe)
    )?;
    Ok(ToolVersions { ffmpeg, ffprobe })
}

async fn first_version_line(program: &Path) -> Result<String, MediaError> {
    let out = output(program, [OsStr::new("-version")]).await?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned())
}

/// Runs `program` to completion and returns its stdout; a non-zero exit is `ToolFailed`.
pub async fn output<I, S>(program: &Path, args: I) -> Result<Vec<u8>, MediaError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let (status, stdout, tail) = capture(program, args).await?;
    check(&tool_name(program), status, tail)?;
    Ok(stdout)
}

/// Runs `program` and hands back exit status, stdout and the stderr tail without judging them,
/// for callers (probe) that classify failures themselves.
pub(crate) async fn capture<I, S>(
    program: &Path,
    args: I,
) -> Result<(ExitStatus, Vec<u8>, String), MediaError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| spawn_error(&tool_name(program), program, e))?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let read_all = async {
        let mut buf = Vec::new();
        stdout.read_to_end(&mut buf).await.map(|_| buf)
    };
    let (out, tail, status) = tokio::join!(read_all, tail_lines(stderr), child.wait());
    Ok((status?, out?, tail))
}

/// Runs ffmpeg (with the same common flags as [`ffmpeg`], minus progress) for what it logs:
/// every stderr line goes to `each_line` as it comes, for analysis filters that report there
/// (ebur128's per-block lines), so a long input's log is never held whole.
pub(crate) async fn ffmpeg_scan<I, S>(
    tools: &Tools,
    args: I,
    mut each_line: impl FnMut(&str) + Send,
) -> Result<(), MediaError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(&tools.ffmpeg);
    cmd.args(["-hide_banner", "-nostdin", "-y", "-nostats"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    tracing::debug!(?cmd, "running ffmpeg for its log");
    let mut child = cmd
        .spawn()
        .map_err(|e| spawn_error("ffmpeg", &tools.ffmpeg, e))?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let read = scan_lines(stderr, &mut each_line);
    let (tail, status) = tokio::join!(read, child.wait());
    check("ffmpeg", status?, tail)
}

/// Convenience for building argument vectors that mix `&str`, `String` and paths.
pub(crate) fn os(s: impl AsRef<OsStr>) -> OsString {
    s.as_ref().to_owned()
}

fn check(tool: &str, status: ExitStatus, stderr_tail: String) -> Result<(), MediaError> {
    if status.success() {
        Ok(())
    } else {
        Err(MediaError::ToolFailed {
            tool: tool.to_owned(),
            status: status.to_string(),
            stderr_tail,
        })
    }
}

async fn tail_lines(stream: impl AsyncRead + Unpin) -> String {
    scan_lines(stream, |_| {}).await
}

/// Hands every line of `stream` to `each_line` and returns the last few, for errors.
async fn scan_lines(stream: impl AsyncRead + Unpin, mut each_line: impl FnMut(&str)) -> String {
    let mut tail: VecDeque<String> = VecDeque::with_capacity(STDERR_TAIL_LINES);
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        each_line(&line);
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    Vec::from(tail).join("\n")
}

fn tool_name(program: &Path) -> String {
    program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tool".into())
}

fn spawn_error(tool: &str, program: &Path, e: std::io::Error) -> MediaError {
    if e.kind() == std::io::ErrorKind::NotFound || e.kind() == std::io::ErrorKind::PermissionDenied
    {
        MediaError::ToolMissing {
            tool: tool.to_owned(),
            hint: format!(
                "cannot run {}: {e}; run layers/ffmpeg/build.sh",
                program.display()
            ),
        }
    } else {
        MediaError::Io(e)
    }
}

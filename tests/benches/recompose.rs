//! Recompose benchmark: a finished 30 s 1080p 16:9 job (5 procedural clips, fades, captions)
//! recomposed into 9:16, against a plain compose of the same 9:16 output from the same clips
//! already at 9:16 (cover-cropped beforehand, untimed), timed in the same run. Recompose fits the
//! clips inside its one compose pass, so the only extra work is cropping and scaling each frame.
//!
//!   cargo bench -p vidpipe-tests --bench recompose --profile dev
//!
//! Each round runs the plain compose (engine only), the same compose reading the 16:9 clips
//! (engine only, refit in the graph) and the whole recompose (prepare, fetch, compose, probe,
//! upload, records), in an order rotated round by round so none always follows the pause or the
//! same neighbour. Timed: wall seconds, and CPU seconds (user + sys) of the ffmpeg and ffprobe
//! children, which the machine's other load moves far less. Each round's runs are divided by
//! that round's plain compose (runs minutes apart on a shared machine are not comparable, runs
//! seconds apart are), and the medians of those ratios are the figures, with their spread and the
//! load average. `VIDPIPE_BENCH_ROUNDS` sets the rounds (default [`ROUNDS`], at least 3). The
//! target is a CPU ratio of at most [`TARGET`] for the whole recompose.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;
use vidpipe_domain::composition::RecomposeEdits;
use vidpipe_domain::media::CompositionJob;
use vidpipe_domain::ports::MediaEngine;
use vidpipe_domain::request::GenerationRequestBody;
use vidpipe_domain::{JobStatus, Timeline, keys};
use vidpipe_media::filtergraph::cover_crop;
use vidpipe_media::{FfmpegEngine, run};
use vidpipe_pipeline::generation::recompose;

/// Rounds by default: about 2 minutes each on 2 shared cores; 5 keep one slow round from moving
/// the median while the whole bench stays near 12 minutes.
const ROUNDS: usize = 5;
const TARGET: f64 = 1.1;

#[tokio::main]
async fn main() {
    let home = tempfile::tempdir().unwrap();
    let stack = vidpipe_tests::stack(home.path()).await;
    let tools = vidpipe_tests::tools();
    let engine = FfmpegEngine::new(tools.clone());
    let body = GenerationRequestBody {
        prompt: Some(
            "A harbour at dawn. Fishing boats head out. Gulls over the water. \
             The market opens. Lights come on at dusk."
                .into(),
        ),
        duration_seconds: Some(30.0),
        aspect_ratio: Some("16:9".into()),
        resolution: Some("1080p".into()),
        fps: Some(30),
        clip_count: Some(5),
        ..Default::default()
    };
    let t = Instant::now();
    let job = vidpipe_tests::run_job(&stack, "bench", &body).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    println!(
        "job {}: 30 s 1080p 16:9, 5 clips, made in {:.1} s (not timed below)",
        job.id,
        t.elapsed().as_secs_f64()
    );
    let deps = stack.deps();
    let edits = RecomposeEdits {
        aspect_ratio: Some("9:16".into()),
        ..Default::default()
    };

    // One recompose untimed first: its timeline is the one both engine composes render.
    let warm = recompose::prepare(deps, "bench", &job.id, &edits)
        .await
        .expect("prepare");
    let warm = recompose::render(deps, &warm, &|_| {})
        .await
        .expect("recompose");
    let timeline: Timeline =
        serde_json::from_slice(&std::fs::read(stack.blob_path(&keys::timeline(&warm.id))).unwrap())
            .unwrap();
    assert_eq!((timeline.width, timeline.height), (1080, 1920));
    let work = home.path().join("bench");
    std::fs::create_dir_all(&work).unwrap();
    let landscape: Vec<PathBuf> = timeline
        .clips
        .iter()
        .map(|c| stack.blob_path(&c.key))
        .collect();
    let mut portrait = Vec::new();
    for (i, clip) in landscape.iter().enumerate() {
        let out = work.join(format!("portrait_{i}.mp4"));
        cover_fit(&tools, clip, &out).await;
        portrait.push(out);
    }
    let mut plain_tl = timeline.clone();
    for c in &mut plain_tl.clips {
        c.fit = Default::default();
    }
    let job_of = |tl: &Timeline, clips: &[PathBuf], name: &str| CompositionJob {
        timeline: tl.clone(),
        clips: clips.to_vec(),
        logo: None,
        music: None,
        narration: Vec::new(),
        work_dir: work.join(name),
        final_path: work.join(name).join("final.mp4"),
        thumbnail_path: work.join(name).join("thumbnail.jpg"),
    };
    let plain_job = job_of(&plain_tl, &portrait, "plain");
    let refit_job = job_of(&timeline, &landscape, "refit");

    let rounds = std::env::var("VIDPIPE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(ROUNDS)
        .max(3);
    let load_before = load_average();
    // runs[k] holds (wall, cpu) of each round for PLAIN, REFIT and WHOLE.
    let mut runs: [Vec<(f64, f64)>; 3] = Default::default();
    for round in 0..rounds {
        for k in (0..3).map(|i| (i + round) % 3) {
            let r = match k {
                PLAIN => timed(|| engine.compose(&plain_job, &|_| {})).await,
                REFIT => timed(|| engine.compose(&refit_job, &|_| {})).await,
                _ => {
                    timed(|| async {
                        let c = recompose::prepare(deps, "bench", &job.id, &edits)
                            .await
                            .expect("prepare");
                        recompose::render(deps, &c, &|_| {}).await.map(|_| ())
                    })
                    .await
                }
            };
            runs[k].push(r);
        }
        let [p, r, w] = [&runs[PLAIN], &runs[REFIT], &runs[WHOLE]].map(|v| v[round]);
        println!(
            "round {}: plain compose {:.2} s (cpu {:.2}); refit compose {:.2} s (cpu {:.2}), \
             {:.2}x wall, {:.2}x cpu; recompose {:.2} s (cpu {:.2}), {:.2}x wall, {:.2}x cpu",
            round + 1,
            p.0,
            p.1,
            r.0,
            r.1,
            r.0 / p.0,
            r.1 / p.1,
            w.0,
            w.1,
            w.0 / p.0,
            w.1 / p.1
        );
    }
    let load_after = load_average();
    for (name, runs) in [("plain", &plain_job), ("refit", &refit_job)] {
        let p = engine.probe(&runs.final_path).await.unwrap();
        let v = p.video().unwrap();
        assert_eq!((v.width, v.height), (Some(1080), Some(1920)), "{name}");
    }
    let plain = &runs[PLAIN];
    println!(
        "median of {rounds} rounds: plain compose {:.2} s wall, {:.2} s cpu \
         (load average {load_before} before, {load_after} after, on {} cores)",
        median(plain.iter().map(|r| r.0)),
        median(plain.iter().map(|r| r.1)),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (k, name) in [(REFIT, "refit compose"), (WHOLE, "whole recompose")] {
        let ratios = |f: fn(&(f64, f64)) -> f64| -> Vec<f64> {
            runs[k]
                .iter()
                .zip(plain)
                .map(|(r, p)| f(r) / f(p))
                .collect()
        };
        let (wall, cpu) = (ratios(|r| r.0), ratios(|r| r.1));
        println!(
            "median of {rounds} rounds: {name} / plain compose: cpu {}, wall {} \
             ({:.2} s wall, {:.2} s cpu)",
            spread(&cpu),
            spread(&wall),
            median(runs[k].iter().map(|r| r.0)),
            median(runs[k].iter().map(|r| r.1)),
        );
        if k == WHOLE {
            let m = median(cpu.iter().copied());
            println!(
                "target: whole recompose cpu <= {TARGET}x a plain compose: {} ({m:.3}x)",
                if m <= TARGET { "met" } else { "NOT met" }
            );
        }
    }
}

const PLAIN: usize = 0;
const REFIT: usize = 1;
const WHOLE: usize = 2;

/// Wall seconds and ffmpeg-children CPU seconds of one run.
async fn timed<F, Fut, E>(f: F) -> (f64, f64)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Debug,
{
    let (t, c) = (Instant::now(), children_cpu_seconds());
    f().await.expect("a timed run");
    (t.elapsed().as_secs_f64(), children_cpu_seconds() - c)
}

fn median(v: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// "1.05x (0.98-1.12)": the median ratio and the rounds' range.
fn spread(ratios: &[f64]) -> String {
    let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.2}x ({lo:.2}-{hi:.2})", median(ratios.iter().copied()))
}

/// The 1-minute load average, as /proc/loadavg gives it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// The clip cropped and scaled to 1080x1920 as the composer's cover does, encoded as the
/// procedural provider encodes its clips (ultrafast, CRF 18), so both composes decode alike.
async fn cover_fit(tools: &vidpipe_media::Tools, input: &Path, output: &Path) {
    let (cw, ch) = cover_crop((1920, 1080), (1080, 1920));
    let args: Vec<OsString> = [
        "-y",
        "-i",
        &input.to_string_lossy(),
        "-vf",
        &format!("crop={cw}:{ch},scale=1080:1920,setsar=1"),
        "-an",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-crf",
        "18",
        "-pix_fmt",
        "yuv420p",
        &output.to_string_lossy(),
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    run::ffmpeg(tools, args, None).await.expect("cover fit");
}

/// CPU seconds of this process's waited-for children (the ffmpeg runs), from /proc.
fn children_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the parenthesised command name; cutime and cstime are fields 16 and 17.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[13].parse::<f64>().unwrap() + f[14].parse::<f64>().unwrap();
    ticks / 100.0
}

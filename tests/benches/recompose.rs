//! Recompose benchmark: a finished 30 s 1080p 16:9 job (5 procedural clips, fades, captions)
//! recomposed into 9:16, against a plain compose of the same 9:16 output from the same clips
//! already at 9:16 (cover-cropped beforehand, untimed), timed in the same run. Recompose fits the
//! clips inside its one compose pass, so the only extra work is cropping and scaling each frame.
//!
//!   cargo bench -p vidpipe-tests --bench recompose
//!
//! Prints, for each of [`RUNS`] alternated rounds and as medians: the plain compose (engine only),
//! the same compose reading the 16:9 clips (engine only, refit in the graph), and the whole
//! recompose (prepare, fetch, compose, probe, upload, records); wall seconds and CPU seconds of
//! the ffmpeg children, and each against the plain compose. The target is ≤ 1.1.

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

const RUNS: usize = 3;
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

    let (mut plain, mut refit, mut whole) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=RUNS {
        plain.push(timed(|| engine.compose(&plain_job, &|_| {})).await);
        refit.push(timed(|| engine.compose(&refit_job, &|_| {})).await);
        whole.push(
            timed(|| async {
                let c = recompose::prepare(deps, "bench", &job.id, &edits)
                    .await
                    .expect("prepare");
                recompose::render(deps, &c, &|_| {}).await.map(|_| ())
            })
            .await,
        );
        println!(
            "round {round}: plain compose {:.2} s (cpu {:.2}), refit compose {:.2} s (cpu {:.2}), \
             recompose {:.2} s (cpu {:.2})",
            plain[round - 1].0,
            plain[round - 1].1,
            refit[round - 1].0,
            refit[round - 1].1,
            whole[round - 1].0,
            whole[round - 1].1
        );
    }
    for (name, runs) in [("plain", &plain_job), ("refit", &refit_job)] {
        let p = engine.probe(&runs.final_path).await.unwrap();
        let v = p.video().unwrap();
        assert_eq!((v.width, v.height), (Some(1080), Some(1920)), "{name}");
    }
    let (pw, pc) = medians(&plain);
    let (rw, rc) = medians(&refit);
    let (ww, wc) = medians(&whole);
    println!("median of {RUNS}: plain compose {pw:.2} s wall, {pc:.2} s cpu");
    println!(
        "median of {RUNS}: refit compose {rw:.2} s wall, {rc:.2} s cpu: ratio {:.2} wall, {:.2} cpu",
        rw / pw,
        rc / pc
    );
    println!(
        "median of {RUNS}: whole recompose {ww:.2} s wall, {wc:.2} s cpu: ratio {:.2} wall, {:.2} cpu \
         (target <= {TARGET})",
        ww / pw,
        wc / pc
    );
}

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

fn medians(runs: &[(f64, f64)]) -> (f64, f64) {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (
        median(runs.iter().map(|r| r.0).collect()),
        median(runs.iter().map(|r| r.1).collect()),
    )
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

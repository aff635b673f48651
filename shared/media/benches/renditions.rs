//! Upload-processing benchmark on one 60 s 1080p30 source with audio.
//!
//! 1. The one-decode pass (every rendition, identical encodes shared, plus the thumbnail) against
//!    three separate ffmpeg runs (one per rendition, same filters and encoder settings) plus a
//!    thumbnail run. Target: single / separate <= 0.45.
//! 2. The segment path: split (thumbnail), audio and concat overhead and per-segment render
//!    times, measured in CPU seconds of the ffmpeg children, then a model of a 10-minute upload
//!    on N parallel Lambdas (the audio beside the segment Map, as the state machine runs it) and
//!    its cost per output minute. Goal: under 60 s wall, $0.005 or less per output minute.
//!
//! Run: `cargo bench -p vidpipe-media --bench renditions`. Prints figures, asserts nothing.

use std::path::PathBuf;
use std::time::Instant;
use vidpipe_domain::media::{
    EncodeTarget, MediaLocation, MediaSource, RenderJob, Span, ThumbnailTarget, Watermark,
};
use vidpipe_domain::processing::{
    Fit, ProcessSettings, Rate, RenditionSet, SourceFacts, TrimWindow, WatermarkSpec,
};
use vidpipe_media::Tools;
use vidpipe_media::process;

const SOURCE_SECONDS: u32 = 68; // 60 s once the 3 s intro and 5 s outro are cut.
/// The template's default segment length.
const SEGMENT_SECONDS: f64 = 15.0;
/// Lambda arm64, us-east-1: USD per GB-second.
const USD_PER_GB_SECOND: f64 = 0.000_013_333_4;
/// Lambda gives one vCPU per 1,769 MB, up to 6 vCPUs at 10,240 MB.
const MB_PER_VCPU: f64 = 1769.0;

/// CPU seconds (user + system) used so far by this process's waited-for children: ffmpeg's own
/// work, whatever else the shared machine is doing.
fn children_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the parenthesised command name; cutime and cstime are fields 16 and 17.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[13].parse::<f64>().unwrap() + f[14].parse::<f64>().unwrap();
    ticks / 100.0
}

struct Measured {
    wall: f64,
    cpu: f64,
}

async fn measure<F: std::future::Future<Output = ()>>(f: F) -> Measured {
    let (t, c) = (Instant::now(), children_cpu_seconds());
    f.await;
    Measured {
        wall: t.elapsed().as_secs_f64(),
        cpu: children_cpu_seconds() - c,
    }
}

fn ffmpeg(tools: &Tools, args: &[&str]) {
    let out = std::process::Command::new(&tools.ffmpeg)
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::main]
async fn main() {
    let tools = Tools::locate(None).expect("ffmpeg (run layers/ffmpeg/build.sh)");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = d.join("source.mp4");
    // Light grain so the encoder has camera-like detail to spend bits on, written at 16 Mbps with
    // a keyframe every 2 s, as phones record 1080p30.
    ffmpeg(
        &tools,
        &[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=s=1920x1080:r=30:d={SOURCE_SECONDS}"),
            "-f",
            "lavfi",
            "-i",
            &format!("sine=f=330:d={SOURCE_SECONDS}"),
            "-vf",
            "noise=alls=6:allf=t",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-b:v",
            "16M",
            "-maxrate",
            "16M",
            "-bufsize",
            "32M",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            src.to_str().unwrap(),
        ],
    );
    let settings = ProcessSettings::default();
    let facts = SourceFacts {
        duration_seconds: SOURCE_SECONDS as f64,
        size_bytes: std::fs::metadata(&src).unwrap().len(),
        width: 1920,
        height: 1080,
        rotation: 0,
        nominal_rate: Some(30.0),
        average_rate: Some(30.0),
        variable_frame_rate: false,
        video_codec: "h264".into(),
        audio_codec: Some("aac".into()),
        format_name: "mp4".into(),
    };
    let window = TrimWindow::new(&facts, &settings);
    assert_eq!(window.rate, Rate { num: 30, den: 1 });
    let mark = Watermark {
        width: 400,
        height: 120,
        rgba: vec![255; 400 * 120 * 4],
        spec: WatermarkSpec::default(),
    };
    let set = RenditionSet::default_set();
    let input = MediaSource {
        key: "raw/bench/source.mp4".into(),
        location: MediaLocation::Path(src.clone()),
    };
    let target = |w: u32, h: u32, kbps: u32, out: PathBuf| EncodeTarget {
        fit: Fit::compute(1920, 1080, w, h),
        video_kbps: kbps,
        audio_kbps: 128,
        output: out,
    };
    let thumb = |out: PathBuf| ThumbnailTarget {
        frame: (window.thumbnail_seconds(0.10) * 30.0).round() as u64,
        width: 1280,
        height: 720,
        output: out,
    };
    let render = |targets: Vec<EncodeTarget>, thumbnail: Option<ThumbnailTarget>, work: PathBuf| {
        let (tools, input, mark) = (tools.clone(), input.clone(), mark.clone());
        async move {
            let job = RenderJob {
                source: &input,
                source_size: (1920, 1080),
                span: Span::whole(&window),
                targets: &targets,
                thumbnail: thumbnail.as_ref(),
                watermark: &mark,
                audio: Some(true),
                work_dir: &work,
            };
            process::render(&tools, &job, None).await.expect("render");
        }
    };

    println!(
        "source: 1920x1080 30 fps, {SOURCE_SECONDS} s, trimmed to {:.1} s",
        window.duration_seconds()
    );

    // 1. Single pass: one decode, one encode per distinct encoding, the thumbnail on the side.
    let encodings = set.encodings();
    let single_targets: Vec<EncodeTarget> = encodings
        .iter()
        .enumerate()
        .map(|(i, g)| {
            target(
                g[0].width,
                g[0].height,
                g[0].video_kbps,
                d.join(format!("single_{i}.mp4")),
            )
        })
        .collect();
    let single = measure(render(
        single_targets,
        Some(thumb(d.join("single.jpg"))),
        d.join("w1"),
    ))
    .await;

    // Three separate runs, one per rendition, then a thumbnail run; each timed on its own.
    let mut runs = Vec::new();
    for r in &set.renditions {
        let m = measure(render(
            vec![target(
                r.width,
                r.height,
                r.video_kbps,
                d.join(format!("sep_{}.mp4", r.name)),
            )],
            None,
            d.join(format!("w_{}", r.name)),
        ))
        .await;
        runs.push((r.name.clone(), m));
    }
    let thumb_run = measure(async {
        process::thumbnail(
            &tools,
            &input,
            window.start_seconds + window.thumbnail_seconds(0.10),
            (1280, 720),
            &d.join("sep.jpg"),
        )
        .await
        .expect("thumbnail");
    })
    .await;
    let separate = Measured {
        wall: runs.iter().map(|(_, m)| m.wall).sum::<f64>() + thumb_run.wall,
        cpu: runs.iter().map(|(_, m)| m.cpu).sum::<f64>() + thumb_run.cpu,
    };
    // What a run spends before any encoder: reading and decoding the trimmed span (video and
    // audio) at the output rate. The pass shares exactly this; the encodes it cannot share.
    let start = format!("{}", window.start_seconds);
    let frames = window.frames.to_string();
    let decode_only = {
        let t = Instant::now();
        let c = children_cpu_seconds();
        ffmpeg(
            &tools,
            &[
                "-ss",
                &start,
                "-i",
                src.to_str().unwrap(),
                "-frames:v",
                &frames,
                "-vf",
                "fps=30",
                "-f",
                "null",
                "-",
            ],
        );
        Measured {
            wall: t.elapsed().as_secs_f64(),
            cpu: children_cpu_seconds() - c,
        }
    };
    println!(
        "\n1. one pass vs separate runs ({} renditions, {} encodes in the pass)",
        set.renditions.len(),
        encodings.len()
    );
    println!(
        "   single pass     {:>7.1} s wall {:>7.1} CPU-s",
        single.wall, single.cpu
    );
    for (name, m) in &runs {
        println!(
            "   run {name:<11} {:>7.1} s wall {:>7.1} CPU-s",
            m.wall, m.cpu
        );
    }
    println!(
        "   run thumbnail   {:>7.1} s wall {:>7.1} CPU-s",
        thumb_run.wall, thumb_run.cpu
    );
    println!(
        "   separate runs   {:>7.1} s wall {:>7.1} CPU-s",
        separate.wall, separate.cpu
    );
    println!(
        "   ratio single/separate: wall {:.2}, CPU {:.2} (target <= 0.45)",
        single.wall / separate.wall,
        single.cpu / separate.cpu
    );
    // The floor for any one-decode pass making these outputs: one decode plus each distinct
    // encode's own work (a run's CPU less the decode it shares), thumbnail free.
    let encode_cpu = |name: &str| {
        runs.iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m.cpu - decode_only.cpu)
            .unwrap()
    };
    let distinct: Vec<&str> = encodings.iter().map(|g| g[0].name.as_str()).collect();
    let floor = decode_only.cpu + distinct.iter().map(|n| encode_cpu(n)).sum::<f64>();
    println!(
        "   decode alone {:.1} CPU-s; each run's own encoding work: {}",
        decode_only.cpu,
        runs.iter()
            .map(|(n, _)| format!("{n} {:.1}", encode_cpu(n)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "   floor for one decode + {} distinct encodes: {:.1} CPU-s, ratio {:.2}; the pass is {:+.0} % above it",
        distinct.len(),
        floor,
        floor / separate.cpu,
        (single.cpu / floor - 1.0) * 100.0
    );

    // 2. Segment path: each segment renders from its own frame-accurate seek into the source.
    let segments = window.segments(SEGMENT_SECONDS);
    let seg_targets = |i: usize| -> Vec<EncodeTarget> {
        encodings
            .iter()
            .enumerate()
            .map(|(e, g)| {
                target(
                    g[0].width,
                    g[0].height,
                    g[0].video_kbps,
                    d.join(format!("part_{i:04}_{e}.mp4")),
                )
            })
            .collect()
    };
    let mut per_segment = Vec::new();
    let mut parts: Vec<Vec<PathBuf>> = vec![Vec::new(); encodings.len()];
    for (i, &(first, frames)) in segments.iter().enumerate() {
        let span = Span {
            input_offset: window.source_seconds(first),
            rate: window.rate,
            frames,
        };
        let targets = seg_targets(i);
        for (e, t) in targets.iter().enumerate() {
            parts[e].push(t.output.clone());
        }
        let work = d.join(format!("ws{i}"));
        let m = measure(async {
            let job = RenderJob {
                source: &input,
                source_size: (1920, 1080),
                span,
                targets: &targets,
                thumbnail: None,
                watermark: &mark,
                audio: None,
                work_dir: &work,
            };
            process::render(&tools, &job, None)
                .await
                .expect("segment render");
        })
        .await;
        per_segment.push((span.seconds(), m));
    }
    let audio = d.join("audio.m4a");
    let audio_m = measure(async {
        process::encode_audio(&tools, &input, Span::whole(&window), true, 128, &audio)
            .await
            .expect("audio");
    })
    .await;
    let thumb_m = measure(async {
        process::thumbnail(
            &tools,
            &input,
            window.start_seconds + window.thumbnail_seconds(0.10),
            (1280, 720),
            &d.join("seg.jpg"),
        )
        .await
        .expect("thumbnail");
    })
    .await;
    let concat = measure(async {
        for (e, p) in parts.iter().enumerate() {
            process::concat(
                &tools,
                p,
                &audio,
                window.duration_seconds(),
                &d.join(format!("joined_{e}.mp4")),
            )
            .await
            .expect("concat");
        }
    })
    .await;
    let joined = std::fs::metadata(d.join("joined_0.mp4")).unwrap().len();
    println!(
        "\n2. segment path ({} segments of ~{SEGMENT_SECONDS} s)",
        per_segment.len()
    );
    println!(
        "   split: thumbnail      {:>6.2} s wall {:>6.2} CPU-s",
        thumb_m.wall, thumb_m.cpu
    );
    println!(
        "   audio once            {:>6.2} s wall {:>6.2} CPU-s",
        audio_m.wall, audio_m.cpu
    );
    for (i, (secs, m)) in per_segment.iter().enumerate() {
        println!(
            "   segment {i:>2} ({secs:>5.2} s)  {:>6.2} s wall {:>6.2} CPU-s",
            m.wall, m.cpu
        );
    }
    println!(
        "   concat + mux ({} files) {:>6.2} s wall {:>6.2} CPU-s",
        parts.len(),
        concat.wall,
        concat.cpu
    );
    let seg_cpu: f64 = per_segment.iter().map(|(_, m)| m.cpu).sum();
    let seg_out: f64 = per_segment.iter().map(|(s, _)| s).sum();
    let cpu_per_output_second = seg_cpu / seg_out;
    let single_cpu_per_output_second = single.cpu / window.duration_seconds();
    println!(
        "   render CPU per output second: segments {cpu_per_output_second:.2}, single pass {single_cpu_per_output_second:.2} (segment overhead {:+.0} %)",
        (cpu_per_output_second / single_cpu_per_output_second - 1.0) * 100.0
    );

    // Model: a 10-minute 1080p upload, SEGMENT_SECONDS segments, N Lambdas at M MB. Assumptions, stated:
    // one Lambda vCPU does the work of one core of this machine; x264 and the filter threads use
    // up to `vcpus` cores; each invocation adds 0.3 s of start-up and reads its part of the
    // source and writes its parts at 80 MB/s; audio and concat scale linearly with length. The
    // state machine runs split (plan + thumbnail), then the segment Map and the audio encode side
    // by side (a Parallel state), then assemble. An inline Map runs at most 40 iterations at
    // once, so N stops at 40.
    let upload_seconds = 600.0;
    let scale = upload_seconds / window.duration_seconds();
    let bytes_per_second = facts.size_bytes as f64 / SOURCE_SECONDS as f64;
    // Both encodes' parts, approximated by twice the first (they differ by their bitrates only).
    let out_bytes_per_second = joined as f64 / window.duration_seconds() * 2.0;
    println!(
        "\n   model: 10-minute 1080p upload, {SEGMENT_SECONDS} s segments, arm64 at ${USD_PER_GB_SECOND}/GB-s"
    );
    println!(
        "   {:>6} {:>5} {:>6} {:>9} {:>10} {:>12}",
        "MB", "vCPU", "N", "wall s", "cost $", "$/out-min"
    );
    let segments_10min = (upload_seconds / SEGMENT_SECONDS).ceil();
    let io = |bytes: f64| bytes / 80e6;
    // CPU seconds, not wall, for the single-threaded ffmpeg work: CPU time is what a shared
    // machine does not distort.
    let split_wall = 0.3 + thumb_m.cpu;
    // The audio branch reads the whole interleaved source once.
    let audio_wall = 0.3 + audio_m.cpu * scale + io(bytes_per_second * upload_seconds);
    // Assemble reads every part and writes three renditions (the two encodes, one twice).
    let assemble_wall =
        0.3 + concat.cpu * scale + 2.5 * io(out_bytes_per_second / 2.0 * upload_seconds);
    for mb in [3008.0f64, 5308.0, 10240.0] {
        let vcpus = (mb / MB_PER_VCPU).min(6.0);
        for n in [10.0f64, 20.0, 40.0] {
            let seg_wall = 0.3
                + io(bytes_per_second * SEGMENT_SECONDS)
                + SEGMENT_SECONDS * cpu_per_output_second / vcpus
                + io(out_bytes_per_second * SEGMENT_SECONDS);
            let waves = (segments_10min / n).ceil();
            let map_wall = waves * seg_wall;
            let wall = split_wall + map_wall.max(audio_wall) + assemble_wall;
            let gb = mb / 1024.0;
            let billed = (split_wall + audio_wall + segments_10min * seg_wall + assemble_wall) * gb;
            let cost = billed * USD_PER_GB_SECOND;
            println!(
                "   {mb:>6.0} {vcpus:>5.2} {n:>6.0} {wall:>9.1} {cost:>10.4} {:>12.5}   split {split_wall:.1} s, max(segments {seg_wall:.1} s x {waves}, audio {audio_wall:.1} s), assemble {assemble_wall:.1} s",
                cost / (upload_seconds / 60.0)
            );
        }
    }
    println!("   (goal: under 60 s wall and $0.005 or less per output minute)");
}

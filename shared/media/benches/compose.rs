//! Compose benchmark: a 30 s 1080p 16:9 30 fps job (5 procedural clips, 0.5 s fades, logo, music,
//! captions), plain and narrated (espeak-ng speech, karaoke captions, music ducked), each against
//! two baselines timed in the same run: a bare lavfi encode of the same length, size, rate and
//! encoder settings, and a re-encode of the composed output itself (decode plus the same encode:
//! the floor for any compose of that output). The figures that matter are the ratios.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::time::Instant;
use vidpipe_domain::media::{ClipSpec, CompositionJob, MeasuredAudio};
use vidpipe_domain::narration::{SceneSpeech, SpeechSpec, lines_to_speak, narrate_plan};
use vidpipe_domain::plan::RulesPlanner;
use vidpipe_domain::ports::Narrator;
use vidpipe_domain::ports::{ClipProvider, MediaEngine};
use vidpipe_domain::request::{
    BrandBody, CaptionStyleBody, CaptionsBody, GenerationRequestBody, LogoBody, MusicBody,
    NarrationBody,
};
use vidpipe_domain::{AssetId, Timeline};
use vidpipe_media::compose::h264_aac_output_args;
use vidpipe_media::run;
use vidpipe_media::{EspeakNarrator, FfmpegEngine, ProceduralProvider, Tools};

#[tokio::main]
async fn main() {
    let tools = Tools::locate(None).expect("ffmpeg (run layers/ffmpeg/build.sh)");
    let dir = tempfile::tempdir().unwrap();
    // VIDPIPE_BENCH_KEEP=1 keeps the inputs and outputs, to profile the graph by hand.
    let keep = std::env::var_os("VIDPIPE_BENCH_KEEP").is_some_and(|v| !v.is_empty() && v != "0");
    let d = if keep {
        dir.keep()
    } else {
        dir.path().to_owned()
    };
    let d = d.as_path();
    println!("work dir: {} (kept: {keep})", d.display());

    let mut bare = None;
    for narrated in [false, true] {
        let name = if narrated { "narrated" } else { "plain" };
        let vd = d.join(name);
        std::fs::create_dir_all(&vd).unwrap();
        let (timeline, job, clip_secs) = variant(&tools, &vd, narrated).await;
        let engine = FfmpegEngine::new(tools.clone());
        let (t, c) = (Instant::now(), children_cpu_seconds());
        engine.compose(&job, &|_| {}).await.expect("compose");
        let compose_secs = t.elapsed().as_secs_f64();
        let compose_cpu = children_cpu_seconds() - c;
        let info = engine.probe(&job.final_path).await.expect("probe");

        // The same bare encode serves both variants: same length, size, rate and settings.
        let (bare_secs, bare_cpu) = match bare {
            Some(s) => s,
            None => {
                let (t, c) = (Instant::now(), children_cpu_seconds());
                bare_encode(&tools, &timeline, &d.join("bare.mp4")).await;
                let s = (t.elapsed().as_secs_f64(), children_cpu_seconds() - c);
                bare = Some(s);
                s
            }
        };
        let (t, c) = (Instant::now(), children_cpu_seconds());
        reencode(
            &tools,
            &timeline,
            &job.final_path,
            &vd.join("reencoded.mp4"),
        )
        .await;
        let reencode_secs = t.elapsed().as_secs_f64();
        let reencode_cpu = children_cpu_seconds() - c;

        println!(
            "[{name}] {} clips, {}x{} @ {} fps, {} frames ({} s), fade {} s, logo + music + {} caption cues{}",
            timeline.clips.len(),
            timeline.width,
            timeline.height,
            timeline.fps,
            timeline.total_frames,
            timeline.duration_seconds,
            timeline.transition_seconds(),
            timeline.captions.len(),
            if narrated {
                format!(
                    ", {} narrated scenes, karaoke, ducked",
                    timeline.narration.len()
                )
            } else {
                String::new()
            }
        );
        println!(
            "[{name}] procedural clips (and speech): {clip_secs:.2} s (not part of the ratios)"
        );
        println!(
            "[{name}] compose:          {compose_secs:.2} s, {compose_cpu:.2} CPU s (output {:.3} s)",
            info.duration_seconds.unwrap_or_default()
        );
        println!("[{name}] bare encode:      {bare_secs:.2} s, {bare_cpu:.2} CPU s");
        println!("[{name}] re-encode output: {reencode_secs:.2} s, {reencode_cpu:.2} CPU s");
        println!(
            "[{name}] ratio compose/bare: {:.3} (target <= 1.2)",
            compose_secs / bare_secs
        );
        println!(
            "[{name}] ratio compose/re-encode: {:.3} (target <= 1.0)",
            compose_secs / reencode_secs
        );
        // CPU seconds do not move with the other work on a shared machine, wall time does.
        println!(
            "[{name}] CPU ratios: compose/bare {:.3}, compose/re-encode {:.3}",
            compose_cpu / bare_cpu,
            compose_cpu / reencode_cpu
        );
    }
}

/// The job's clips (procedural) and, for the narrated variant, its speech (espeak-ng), and
/// the composition to time. Returns the seconds spent making them.
async fn variant(tools: &Tools, d: &Path, narrated: bool) -> (Timeline, CompositionJob, f64) {
    let made = Instant::now();
    let body = GenerationRequestBody {
        prompt: Some("A calm ocean at dawn. Waves roll over golden sand. A city wakes up. The forest breathes. Night falls.".into()),
        duration_seconds: Some(30.0),
        aspect_ratio: Some("16:9".into()),
        resolution: Some("1080p".into()),
        fps: Some(30),
        clip_count: Some(5),
        transition: Some("fade".into()),
        transition_duration_seconds: Some(0.5),
        captions: Some(if narrated {
            CaptionsBody::Styled(CaptionStyleBody {
                style: Some("karaoke".into()),
                ..Default::default()
            })
        } else {
            true.into()
        }),
        seed: Some(42),
        narration: narrated.then(NarrationBody::default),
        webhook_url: None,
        provider: None,
        planner: None,
        brand: Some(BrandBody {
            logo: Some(LogoBody {
                asset_id: Some(AssetId::generate().as_str().into()),
                ..Default::default()
            }),
            music: Some(MusicBody {
                asset_id: Some(AssetId::generate().as_str().into()),
                ..Default::default()
            }),
        }),
    };
    let request = body.validate().expect("valid request");
    let engine = FfmpegEngine::new(tools.clone());
    let mut plan = RulesPlanner.plan(&request).expect("plan");
    let mut speech_files = Vec::new();
    if narrated {
        let narrator =
            EspeakNarrator::locate(tools.clone()).expect("espeak-ng (run scripts/setup.sh)");
        let lines: Vec<Option<String>> = lines_to_speak(&plan)
            .into_iter()
            .map(|l| l.map(str::to_owned))
            .collect();
        let mut speeches = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let Some(line) = line else {
                speeches.push(None);
                continue;
            };
            let path = d.join(format!("speech_{i}.wav"));
            let spec = SpeechSpec {
                text: line.clone(),
                voice: None,
                engine: None,
            };
            let speech = narrator.speak(&spec, &path).await.expect("speak");
            let seconds = engine_probe_seconds(tools, &path).await;
            // Measured where it is made, as the pipeline does: not part of the compose.
            let loudness = engine.loudness(&path).await.expect("speech loudness");
            speeches.push(Some(SceneSpeech {
                key: path.to_string_lossy().into_owned(),
                duration_ms: (seconds * 1000.0).round() as u32,
                words: speech.words,
                loudness: Some(loudness.summary()),
            }));
            speech_files.push(MeasuredAudio { path, loudness });
        }
        narrate_plan(&mut plan, &request, "espeak", None, speeches).expect("narration fits");
    }
    let keys: Vec<String> = (0..plan.scenes.len())
        .map(|i| format!("clip_{i:03}.mp4"))
        .collect();
    let timeline = Timeline::build(
        &request,
        &plan,
        &keys,
        Some("logo".into()),
        Some("music".into()),
    );

    let provider = ProceduralProvider::new(tools.clone());
    let mut clips = Vec::new();
    for scene in &plan.scenes {
        let spec = ClipSpec {
            scene_index: scene.index,
            visual_prompt: scene.visual_prompt.clone(),
            seed: request.seed,
            width: timeline.width,
            height: timeline.height,
            fps: timeline.fps,
            frames: scene.frames,
            first_frame: None,
        };
        let dest = d.join(&keys[scene.index as usize]);
        provider.generate(&spec, &dest).await.expect("clip");
        clips.push(dest);
    }

    let logo = d.join("logo.png");
    let mut img = image::RgbaImage::new(400, 200);
    for (x, y, p) in img.enumerate_pixels_mut() {
        let inside = (x as i32 - 200).pow(2) / 4 + (y as i32 - 100).pow(2) < 90 * 90;
        *p = if inside {
            image::Rgba([240, 200, 40, 255])
        } else {
            image::Rgba([0, 0, 0, 0])
        };
    }
    img.save(&logo).unwrap();
    let music = d.join("music.m4a");
    run::ffmpeg(
        tools,
        [
            "-f",
            "lavfi",
            "-i",
            "sine=f=220:d=20:sample_rate=44100",
            "-c:a",
            "aac",
        ]
        .map(os)
        .into_iter()
        .chain([os(&music)]),
        None,
    )
    .await
    .expect("music");

    // Measured where it is first seen, as the pipeline does: not part of the compose.
    let music = MeasuredAudio {
        loudness: engine.loudness(&music).await.expect("music loudness"),
        path: music,
    };
    let job = CompositionJob {
        timeline: timeline.clone(),
        clips,
        logo: Some(logo),
        music: Some(music),
        narration: speech_files,
        work_dir: d.join("work"),
        final_path: d.join("final.mp4"),
        thumbnail_path: d.join("thumbnail.jpg"),
    };
    (timeline, job, made.elapsed().as_secs_f64())
}

async fn engine_probe_seconds(tools: &Tools, path: &Path) -> f64 {
    vidpipe_media::probe(tools, path)
        .await
        .expect("probe speech")
        .duration_seconds
        .unwrap_or_default()
}

/// Decodes the composed output and encodes it again with the same settings: the floor for any
/// compose of that output, since a compose must at least decode its sources and encode this.
async fn reencode(tools: &Tools, tl: &Timeline, src: &Path, dest: &Path) {
    let mut args = vec![os("-i"), os(src)];
    args.extend(h264_aac_output_args());
    args.extend([os("-frames:v"), os(tl.total_frames.to_string()), os(dest)]);
    run::ffmpeg(tools, args, None).await.expect("re-encode");
}

/// CPU seconds (user + system) used so far by this process's waited-for children: the ffmpeg
/// runs' own work, whatever else the machine is doing.
fn children_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the parenthesised command name; cutime and cstime are fields 16 and 17.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[13].parse::<f64>().unwrap() + f[14].parse::<f64>().unwrap();
    ticks / 100.0
}

fn os(s: impl AsRef<OsStr>) -> OsString {
    s.as_ref().to_owned()
}

/// testsrc2 + a sine at the composition's size, rate and length, through the same encoder settings.
async fn bare_encode(tools: &Tools, tl: &Timeline, dest: &Path) {
    let video = format!(
        "testsrc2=s={}x{}:r={}:d={}",
        tl.width, tl.height, tl.fps, tl.duration_seconds
    );
    let audio = format!("sine=f=220:d={}:sample_rate=48000", tl.duration_seconds);
    let mut args = ["-f", "lavfi", "-i", &video, "-f", "lavfi", "-i", &audio]
        .map(os)
        .to_vec();
    args.extend(h264_aac_output_args());
    args.extend([os("-frames:v"), os(tl.total_frames.to_string()), os(dest)]);
    run::ffmpeg(tools, args, None).await.expect("bare encode");
}

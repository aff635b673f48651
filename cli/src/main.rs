//! The `vidpipe` command: runs the pipeline on one machine (SQLite, the filesystem, in-process
//! orchestration) with progress bars, and inspects local jobs. Wiring and presentation only: the
//! work is in `vidpipe_pipeline`.

mod ai;
mod batch;
mod batch_rows;
mod compose;
mod output;
mod process;
mod recompose;
mod serve;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use vidpipe_domain::asset::AssetKind;
use vidpipe_domain::job::JobId;
use vidpipe_domain::request::{
    BrandBody, CaptionStyleBody, CaptionsBody, GenerationRequestBody, LogoBody, MusicBody,
    NarrationBody,
};
use vidpipe_pipeline::local::{LocalOptions, LocalStack};

/// Owner of everything created from this machine's command line.
pub(crate) const LOCAL_OWNER: &str = "local";

#[derive(Parser)]
#[command(
    name = "vidpipe",
    version,
    about = "Prompt-to-video and upload processing, on one machine or in your AWS account"
)]
struct Cli {
    /// Where jobs and media live (default: ./.vidpipe).
    #[arg(long, global = true, env = "VIDPIPE_HOME")]
    home: Option<PathBuf>,
    /// Folder holding ffmpeg and ffprobe (default: /opt/bin, then the layer build, then PATH).
    #[arg(long, global = true, env = "VIDPIPE_FFMPEG_DIR")]
    ffmpeg_dir: Option<PathBuf>,
    /// Jobs one tenant may run at once across every vidpipe process on this home (0: unlimited).
    #[arg(
        long,
        global = true,
        env = "VIDPIPE_MAX_CONCURRENT_JOBS",
        default_value_t = 0
    )]
    max_concurrent_jobs: u32,
    /// Minutes of output one tenant may ask for per UTC day (0: unlimited).
    #[arg(
        long,
        global = true,
        env = "VIDPIPE_DAILY_OUTPUT_MINUTES",
        default_value_t = 0
    )]
    daily_output_minutes: u32,
    /// Accept http://127.0.0.1 (loopback) webhook targets, for local receivers. Development
    /// only: private and link-local targets stay refused.
    #[arg(long, global = true, env = "VIDPIPE_WEBHOOK_ALLOW_LOOPBACK")]
    webhook_allow_loopback: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Plan, generate and compose a video from a prompt.
    Generate(Box<GenerateArgs>),
    /// Inspect jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Process a raw video as an upload would be: trim, watermark, platform renditions, thumbnail.
    Process(Box<process::ProcessArgs>),
    /// Serve the HTTP API, live progress and the web app on this machine (open the URL it prints).
    Serve(Box<serve::ServeArgs>),
    /// Generate every request of a JSON Lines or CSV file, resuming where an earlier run stopped.
    Batch(Box<batch::BatchArgs>),
    /// Render a completed job again with edits (aspect, resolution, transition, captions, music,
    /// logo) as a new version, from its own clips: no provider is called.
    Recompose(Box<recompose::RecomposeArgs>),
    /// List a job's compositions (its versions), oldest first, each with its parent.
    Compositions(recompose::CompositionsArgs),
    /// Render a JSON timeline document (tracks of clips, soundtrack, captions) in one pass, or
    /// with --dry-run only validate it and predict its duration, route and cost.
    Compose(Box<compose::ComposeArgs>),
}

#[derive(Args)]
struct GenerateArgs {
    #[arg(long)]
    prompt: String,
    /// Length of the video in whole seconds (5-300).
    #[arg(long = "duration")]
    duration: f64,
    /// 16:9, 9:16, 1:1 or 4:5.
    #[arg(long = "aspect")]
    aspect: String,
    /// 720p or 1080p (the short side).
    #[arg(long)]
    resolution: Option<String>,
    /// 24, 25 or 30.
    #[arg(long)]
    fps: Option<i64>,
    /// Number of scenes (1-20); derived from the duration by default.
    #[arg(long = "clips")]
    clips: Option<i64>,
    /// cut, fade, dissolve, wipeleft, slideup, ... (default fade).
    #[arg(long)]
    transition: Option<String>,
    /// Transition length in seconds (0.1-2, default 0.5).
    #[arg(long)]
    transition_duration: Option<f64>,
    #[arg(long, overrides_with = "no_captions")]
    captions: bool,
    #[arg(long = "no-captions", overrides_with = "captions")]
    no_captions: bool,
    /// boxed, bold-outline or karaoke (the spoken word highlighted; needs --narrate to be
    /// word-timed).
    #[arg(long)]
    caption_style: Option<String>,
    /// bottom, center or top.
    #[arg(long)]
    caption_position: Option<String>,
    /// small, medium or large.
    #[arg(long)]
    caption_size: Option<String>,
    /// Speak each scene's narration line over it (espeak-ng offline unless --narrator says).
    #[arg(long)]
    narrate: bool,
    /// espeak, polly or openai (implies --narrate).
    #[arg(long)]
    narrator: Option<String>,
    /// The narrator's voice, for example en-us (espeak), Joanna (Polly), alloy (OpenAI).
    #[arg(long)]
    voice: Option<String>,
    /// Polly's engine: standard, neural, long-form or generative.
    #[arg(long)]
    narration_engine: Option<String>,
    /// An https URL told when the job completes or fails, signed per Standard Webhooks with
    /// this machine's secret (kept in the state's SQLite file).
    #[arg(long)]
    webhook_url: Option<String>,
    /// PNG or JPEG logo.
    #[arg(long)]
    logo: Option<PathBuf>,
    /// top-left, top-right, bottom-left or bottom-right.
    #[arg(long)]
    logo_position: Option<String>,
    #[arg(long)]
    logo_opacity: Option<f64>,
    /// Logo width as a fraction of the frame width.
    #[arg(long)]
    logo_scale: Option<f64>,
    /// MP3, WAV or M4A music bed.
    #[arg(long)]
    music: Option<PathBuf>,
    #[arg(long)]
    music_volume: Option<f64>,
    #[arg(long)]
    music_fade_in: Option<f64>,
    #[arg(long)]
    music_fade_out: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
    /// Copy final.mp4, thumbnail.jpg, timeline.json and metadata.json into this folder.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Scenes generated at once.
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Clip providers in fallback order: procedural, replicate, bedrock-reel, bedrock-canvas,
    /// openai-image (default procedural). Each reads its settings from the environment.
    #[arg(long, env = "VIDPIPE_PROVIDER", value_name = "NAME[,NAME...]")]
    provider: Option<String>,
    /// rules (default), bedrock or openai; an LLM's unusable plan falls back to the rules.
    #[arg(long, env = "VIDPIPE_PLANNER")]
    planner: Option<String>,
    /// Print one JSON object describing the result on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum JobsCommand {
    /// List local jobs, newest first.
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Show one job: status, stage, progress, clips, outputs and error.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a running job (the process running it stops at its next check).
    Cancel { id: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VIDPIPE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            // One line: the reason and its causes, no backtrace.
            let chain: Vec<String> = e.chain().map(ToString::to_string).collect();
            eprintln!("error: {}", chain.join(": ").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let options = |concurrency| LocalOptions {
        home: cli.home.clone(),
        ffmpeg_dir: cli.ffmpeg_dir.clone(),
        max_concurrency: concurrency,
        quota_limits: vidpipe_domain::quota::QuotaLimits::from_settings(
            cli.max_concurrent_jobs,
            cli.daily_output_minutes,
        ),
        webhooks: vidpipe_pipeline::webhooks::WebhookSettings {
            url_rules: vidpipe_domain::webhook::UrlRules {
                allow_loopback: cli.webhook_allow_loopback,
            },
            ..Default::default()
        },
        ..LocalOptions::default()
    };
    match &cli.command {
        Command::Generate(args) => {
            let mut opts = options(args.concurrency);
            ai::choose(&mut opts, args.planner.as_deref(), args.provider.as_deref()).await?;
            ai::choose_narrator(&mut opts, args.narrator.as_deref()).await?;
            generate(LocalStack::open(opts).await?, args).await
        }
        Command::Jobs(cmd) => {
            let stack = LocalStack::open(options(1)).await?;
            jobs(&stack, cmd).await
        }
        Command::Process(args) => process::process(LocalStack::open(options(1)).await?, args).await,
        Command::Serve(args) => serve::serve(options(2), args).await,
        Command::Batch(args) => {
            let stack = LocalStack::open(options(batch::CLIPS_PER_JOB)).await?;
            batch::batch(stack, args).await
        }
        Command::Recompose(args) => {
            recompose::recompose(LocalStack::open(options(1)).await?, args).await
        }
        Command::Compositions(args) => {
            recompose::compositions(LocalStack::open(options(1)).await?, args).await
        }
        Command::Compose(args) => compose::compose(LocalStack::open(options(1)).await?, args).await,
    }
}

async fn generate(stack: LocalStack, args: &GenerateArgs) -> Result<ExitCode> {
    let service = stack.service();
    let logo = match &args.logo {
        Some(path) => Some(
            service
                .ingest_asset(LOCAL_OWNER, AssetKind::Logo, path, "--logo")
                .await?,
        ),
        None => None,
    };
    let music = match &args.music {
        Some(path) => Some(
            service
                .ingest_asset(LOCAL_OWNER, AssetKind::Music, path, "--music")
                .await?,
        ),
        None => None,
    };
    let brand = (logo.is_some() || music.is_some()).then(|| BrandBody {
        logo: logo.map(|a| LogoBody {
            asset_id: Some(a.id.to_string()),
            position: args.logo_position.clone(),
            opacity: args.logo_opacity,
            scale: args.logo_scale,
        }),
        music: music.map(|a| MusicBody {
            asset_id: Some(a.id.to_string()),
            volume: args.music_volume,
            fade_in_seconds: args.music_fade_in,
            fade_out_seconds: args.music_fade_out,
        }),
    });
    let body = GenerationRequestBody {
        prompt: Some(args.prompt.clone()),
        duration_seconds: Some(args.duration),
        aspect_ratio: Some(args.aspect.clone()),
        resolution: args.resolution.clone(),
        fps: args.fps,
        clip_count: args.clips,
        transition: args.transition.clone(),
        transition_duration_seconds: args.transition_duration,
        captions: captions_body(args),
        seed: args.seed,
        brand,
        narration: (args.narrate
            || args.narrator.is_some()
            || args.voice.is_some()
            || args.narration_engine.is_some())
        .then(|| NarrationBody {
            enabled: Some(true),
            provider: args.narrator.clone(),
            voice: args.voice.clone(),
            engine: args.narration_engine.clone(),
        }),
        webhook_url: args.webhook_url.clone(),
        // `--provider` and `--planner` configure this run's stack itself.
        provider: None,
        planner: None,
    };

    // Subscribe before submitting: the run starts inside submit and its first events follow at once.
    let events = stack.runner().subscribe();
    let submitted = service.submit(LOCAL_OWNER, &body, None).await?;
    let job_id = submitted.job().id.clone();
    let bars = output::Progress::start(submitted.job(), events);

    let finished = tokio::select! {
        r = stack.orchestrator().wait(&job_id) => r.context("the run was not started")??,
        _ = tokio::signal::ctrl_c() => {
            service.cancel(LOCAL_OWNER, &job_id).await?;
            bars.finish();
            eprintln!("cancelled {job_id}");
            return Ok(ExitCode::from(130));
        }
    };
    bars.finish();
    let job = service
        .get(LOCAL_OWNER, &finished.id)
        .await?
        .context("job vanished")?;
    let Some(outputs) = job
        .outputs
        .clone()
        .filter(|_| job.status == vidpipe_domain::JobStatus::Completed)
    else {
        let reason = job.error.as_ref().map_or_else(
            || format!("job ended {}", job.status),
            |e| format!("{}: {}", e.code, e.message),
        );
        if args.json {
            println!(
                "{}",
                serde_json::to_string(&output::job_json(&stack, &job))?
            );
        }
        bail!("generation {} failed: {reason}", job.id);
    };
    let mut paths = output::OutputPaths::in_store(&stack, &outputs);
    if let Some(dir) = &args.out {
        paths = paths.copy_to(dir).await?;
    }
    if args.json {
        let mut v = output::job_json(&stack, &job);
        v["final"] = paths.final_video.display().to_string().into();
        v["thumbnail"] = paths.thumbnail.display().to_string().into();
        v["timeline"] = paths.timeline.display().to_string().into();
        v["metadata"] = paths.metadata.display().to_string().into();
        println!("{}", serde_json::to_string(&v)?);
    } else {
        println!(
            "{} completed: {} ({:.2} s, {} clips, {} from cache)",
            job.id,
            paths.final_video.display(),
            outputs.duration_seconds,
            job.clips.len(),
            job.cache_hits()
        );
        println!("thumbnail: {}", paths.thumbnail.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `--no-captions` wins; any style flag turns captions on with that style.
fn captions_body(args: &GenerateArgs) -> Option<CaptionsBody> {
    if args.no_captions {
        return Some(CaptionsBody::Enabled(false));
    }
    let styled = args.caption_style.is_some()
        || args.caption_position.is_some()
        || args.caption_size.is_some();
    if styled {
        return Some(CaptionsBody::Styled(CaptionStyleBody {
            style: args.caption_style.clone(),
            position: args.caption_position.clone(),
            size: args.caption_size.clone(),
        }));
    }
    args.captions.then_some(CaptionsBody::Enabled(true))
}

async fn jobs(stack: &LocalStack, cmd: &JobsCommand) -> Result<ExitCode> {
    let service = stack.service();
    match cmd {
        JobsCommand::List { limit, json } => {
            let page = service.list(LOCAL_OWNER, *limit, None).await?;
            if *json {
                let list: Vec<_> = page
                    .jobs
                    .iter()
                    .map(|j| output::job_json(stack, j))
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string(
                        &serde_json::json!({ "jobs": list, "next_cursor": page.next_cursor })
                    )?
                );
            } else {
                output::print_job_table(&page.jobs);
            }
        }
        JobsCommand::Show { id, json } => {
            let id = JobId::parse(id).map_err(anyhow::Error::msg)?;
            let job = service
                .get(LOCAL_OWNER, &id)
                .await?
                .with_context(|| format!("no job {id}"))?;
            if *json {
                println!("{}", serde_json::to_string(&output::job_json(stack, &job))?);
            } else {
                output::print_job(stack, &job);
            }
        }
        JobsCommand::Cancel { id } => {
            let id = JobId::parse(id).map_err(anyhow::Error::msg)?;
            let job = service.cancel(LOCAL_OWNER, &id).await?;
            println!("{} {}", job.id, job.status);
        }
    }
    Ok(ExitCode::SUCCESS)
}

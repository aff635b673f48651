//! `vidpipe process`: runs the upload-processing steps on one machine with progress bars, then
//! prints where each output is and what ffprobe measures in it.

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use vidpipe_domain::processing::{ProcessSettings, ProcessStatus, RenditionSet};
use vidpipe_domain::steps::ProcessingStep;
use vidpipe_pipeline::local::LocalStack;
use vidpipe_pipeline::processing::{self, ProcessInput, ProcessProgress};

#[derive(Args)]
pub struct ProcessArgs {
    /// The raw video.
    file: PathBuf,
    #[arg(long)]
    client: String,
    #[arg(long)]
    project: String,
    /// Watermark image (PNG or JPEG); vidpipe's own mark when none was ever given.
    #[arg(long)]
    watermark: Option<PathBuf>,
    /// Seconds cut from the start.
    #[arg(long, default_value_t = 3.0)]
    intro: f64,
    /// Seconds cut from the end.
    #[arg(long, default_value_t = 5.0)]
    outro: f64,
    /// Trimmed lengths above this many seconds are processed as parallel segments.
    #[arg(long, default_value_t = 300.0)]
    segment_threshold: f64,
    /// Segment length in seconds (each renders from its own frame-accurate seek).
    #[arg(long, default_value_t = 60.0)]
    segment_seconds: f64,
    /// A rendition profile file replacing the built-in one.
    #[arg(long)]
    renditions: Option<PathBuf>,
    /// Segments rendered at once.
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Print one JSON object: the record, each output's path and probe.
    #[arg(long)]
    json: bool,
}

pub async fn process(stack: LocalStack, args: &ProcessArgs) -> Result<ExitCode> {
    let renditions = match &args.renditions {
        Some(path) => {
            let text = tokio::fs::read_to_string(path)
                .await
                .with_context(|| format!("cannot read {}", path.display()))?;
            RenditionSet::from_json(&text)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("{} is not a rendition profile", path.display()))?
        }
        None => RenditionSet::default_set(),
    };
    for (name, v) in [
        ("--intro", args.intro),
        ("--outro", args.outro),
        ("--segment-threshold", args.segment_threshold),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            bail!("{name} must be a number of seconds, 0 or more");
        }
    }
    if !(args.segment_seconds.is_finite() && args.segment_seconds >= 1.0) {
        bail!("--segment-seconds must be at least 1");
    }
    let settings = ProcessSettings {
        intro_seconds: args.intro,
        outro_seconds: args.outro,
        segment_threshold_seconds: args.segment_threshold,
        segment_seconds: args.segment_seconds,
        ..ProcessSettings::default()
    };
    stack.install_watermark(args.watermark.as_deref()).await?;
    let source = stack
        .ingest_raw(&args.file, &args.client, &args.project)
        .await?;
    let deps = stack.processing(settings, renditions);

    let multi = MultiProgress::new();
    let stage = multi.add(
        ProgressBar::new(100)
            .with_style(
                ProgressStyle::with_template("{prefix:>9} [{bar:40}] {pos:>3}% {msg}")
                    .expect("static template")
                    .progress_chars("=> "),
            )
            .with_prefix("process"),
    );
    let segments = multi.add(ProgressBar::hidden());
    let (stage_bar, seg_bar) = (stage.clone(), segments.clone());
    let report = Arc::new(move |p: ProcessProgress| match p {
        ProcessProgress::Step(step) => {
            stage_bar.set_message(step.as_str());
            if step == ProcessingStep::Publish {
                stage_bar.set_position(100);
            }
        }
        ProcessProgress::Fraction(f) => stage_bar.set_position((f * 100.0).round() as u64),
        ProcessProgress::SegmentsPlanned(n) => {
            seg_bar.set_length(n as u64);
            seg_bar.set_style(
                ProgressStyle::with_template("{prefix:>9} [{bar:40}] {pos}/{len}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            seg_bar.set_prefix("segments");
            seg_bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        ProcessProgress::SegmentDone(_) => {
            seg_bar.inc(1);
            let len = seg_bar.length().unwrap_or(1).max(1);
            stage_bar.set_position(seg_bar.position() * 100 / len);
        }
    });
    let job = processing::run_embedded(
        &deps,
        &ProcessInput {
            source: source.clone(),
        },
        args.concurrency,
        report,
    )
    .await?;
    stage.finish_and_clear();
    segments.finish_and_clear();

    let mut outputs = Vec::new();
    for o in &job.outputs {
        let path = stack.blob_path(&o.key);
        let probe = stack.deps().media.probe(&path).await?;
        outputs.push(serde_json::json!({
            "rendition": o.rendition,
            "path": path,
            "probe": probe,
        }));
    }
    let thumbnail = job.thumbnail_key.as_ref().map(|k| stack.blob_path(k));
    let manifest = job.manifest_key.as_ref().map(|k| stack.blob_path(k));
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({
                "source_id": job.id,
                "status": job.status,
                "source": job.source,
                "route": job.route,
                "error": job.error,
                "outputs": outputs,
                "thumbnail": thumbnail,
                "manifest": manifest,
            }))?
        );
    }
    if job.status != ProcessStatus::Succeeded {
        let reason = job.error.as_ref().map_or("unknown".to_owned(), |e| {
            format!("{}: {}", e.error, e.reason)
        });
        bail!("processing {} failed: {reason}", args.file.display());
    }
    if !args.json {
        for o in &job.outputs {
            println!(
                "{:<8} {}x{} {:.2} s  {}",
                o.rendition,
                o.width,
                o.height,
                o.duration_seconds,
                stack.blob_path(&o.key).display()
            );
        }
        if let Some(t) = thumbnail {
            println!("thumbnail {}", t.display());
        }
        if let Some(m) = manifest {
            println!("manifest  {}", m.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

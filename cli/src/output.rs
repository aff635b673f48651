//! What the command shows: progress bars while a job runs, the job as JSON or text, and where its
//! outputs are on disk.

use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokio::sync::broadcast;
use vidpipe_domain::job::{Job, JobStatus, Outputs};
use vidpipe_pipeline::RunEvent;
use vidpipe_pipeline::local::LocalStack;

/// Stage bar plus one bar per clip, fed by the runner's events on a background task.
pub struct Progress {
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub fn start(job: &Job, mut events: broadcast::Receiver<RunEvent>) -> Self {
        let multi = MultiProgress::new();
        let stage_style = ProgressStyle::with_template("{prefix:>11} [{bar:40}] {pos:>3}% {msg}")
            .expect("static template")
            .progress_chars("=> ");
        let clip_style =
            ProgressStyle::with_template("{prefix:>11} {spinner} {msg}").expect("static template");
        let overall = multi.add(
            ProgressBar::new(100)
                .with_style(stage_style)
                .with_prefix("job"),
        );
        overall.set_message(format!("{} queued", job.id));
        let clips = job.request.clip_count.get() as u32;
        let id = job.id.clone();
        let task = tokio::spawn(async move {
            let mut bars: HashMap<u32, ProgressBar> = HashMap::new();
            let mut done = 0u32;
            let set_pct = |pct: f64| overall.set_position(pct.round() as u64);
            loop {
                let event = match events.recv().await {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                match event {
                    RunEvent::Stage { job_id, status } if job_id == id => {
                        overall.set_message(status.to_string());
                        if let Some(stage) = status.stage() {
                            set_pct(stage.span().0);
                        }
                    }
                    RunEvent::ClipStarted { job_id, index } if job_id == id => {
                        let bar =
                            multi.add(ProgressBar::new_spinner().with_style(clip_style.clone()));
                        bar.set_prefix(format!("clip {}/{}", index + 1, clips));
                        bar.set_message("generating");
                        bar.enable_steady_tick(std::time::Duration::from_millis(120));
                        bars.insert(index, bar);
                    }
                    RunEvent::ClipRetrying {
                        job_id,
                        index,
                        attempt,
                        error,
                    } if job_id == id => {
                        if let Some(bar) = bars.get(&index) {
                            bar.set_message(format!("retry {attempt}: {error}"));
                        }
                    }
                    RunEvent::ClipWaiting {
                        job_id,
                        index,
                        provider,
                        seconds,
                    } if job_id == id => {
                        if let Some(bar) = bars.get(&index) {
                            bar.set_message(format!(
                                "{provider} working; asking again in {seconds} s"
                            ));
                        }
                    }
                    RunEvent::ClipFinished {
                        job_id,
                        index,
                        cache_hit,
                        provider,
                    } if job_id == id => {
                        done += 1;
                        if let Some(bar) = bars.get(&index) {
                            bar.finish_with_message(if cache_hit {
                                format!("done by {provider} (cache)")
                            } else {
                                format!("done by {provider}")
                            });
                        }
                        let (lo, hi) = vidpipe_domain::Stage::Generating.span();
                        set_pct(lo + (hi - lo) * done as f64 / clips as f64);
                    }
                    RunEvent::ComposeProgress { job_id, fraction } if job_id == id => {
                        let (lo, hi) = vidpipe_domain::Stage::Composing.span();
                        set_pct(lo + (hi - lo) * fraction);
                    }
                    RunEvent::Finished { job_id, status } if job_id == id => {
                        if status == JobStatus::Completed {
                            set_pct(100.0);
                        }
                        overall.finish_with_message(status.to_string());
                        break;
                    }
                    _ => {}
                }
            }
        });
        Self { task }
    }

    pub fn finish(self) {
        self.task.abort();
    }
}

pub struct OutputPaths {
    pub final_video: PathBuf,
    pub thumbnail: PathBuf,
    pub timeline: PathBuf,
    pub metadata: PathBuf,
}

impl OutputPaths {
    pub fn in_store(stack: &LocalStack, o: &Outputs) -> Self {
        Self {
            final_video: stack.blob_path(&o.final_key),
            thumbnail: stack.blob_path(&o.thumbnail_key),
            timeline: stack.blob_path(&o.timeline_key),
            metadata: stack.blob_path(&o.metadata_key),
        }
    }

    pub async fn copy_to(&self, dir: &Path) -> Result<Self> {
        tokio::fs::create_dir_all(dir)
            .await
            .with_context(|| format!("cannot create {}", dir.display()))?;
        // Absolute, so the printed paths work from wherever the caller reads them.
        let dir = &std::path::absolute(dir)
            .with_context(|| format!("cannot resolve {}", dir.display()))?;
        let copy = |src: &Path, name: &str| {
            let dest = dir.join(name);
            let src = src.to_path_buf();
            async move {
                tokio::fs::copy(&src, &dest).await.with_context(|| {
                    format!("cannot copy {} to {}", src.display(), dest.display())
                })?;
                Ok::<_, anyhow::Error>(dest)
            }
        };
        Ok(Self {
            final_video: copy(&self.final_video, "final.mp4").await?,
            thumbnail: copy(&self.thumbnail, "thumbnail.jpg").await?,
            timeline: copy(&self.timeline, "timeline.json").await?,
            metadata: copy(&self.metadata, "metadata.json").await?,
        })
    }
}

pub fn job_json(stack: &LocalStack, job: &Job) -> serde_json::Value {
    let paths = job
        .outputs
        .as_ref()
        .map(|o| OutputPaths::in_store(stack, o));
    serde_json::json!({
        "job_id": job.id,
        "status": job.status,
        "stage": job.status.stage(),
        "progress": (job.progress() * 10.0).round() / 10.0,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "request": job.request,
        "planner": job.plan.as_ref().map(|p| p.planner.clone()),
        "planner_fallback": job.plan.as_ref().and_then(|p| p.fallback.clone()),
        "narration": job.plan.as_ref().and_then(|p| p.narration.clone()),
        "stages": job.stages,
        "clips": job.clips,
        "cache_hits": job.cache_hits(),
        "cost": job.cost,
        "error": job.error,
        "outputs": job.outputs,
        "duration_seconds": job.outputs.as_ref().map(|o| o.duration_seconds),
        "final": paths.as_ref().map(|p| p.final_video.display().to_string()),
        "thumbnail": paths.as_ref().map(|p| p.thumbnail.display().to_string()),
    })
}

pub fn print_job_table(jobs: &[Job]) {
    println!(
        "{:<36}  {:<10}  {:>5}  {:<20}  PROMPT",
        "ID", "STATUS", "PCT", "CREATED"
    );
    for j in jobs {
        let prompt: String = j.request.prompt.as_str().chars().take(40).collect();
        println!(
            "{:<36}  {:<10}  {:>4.0}%  {:<20}  {}",
            j.id,
            j.status,
            j.progress(),
            j.created_at.format("%Y-%m-%d %H:%M:%S"),
            prompt
        );
    }
}

pub fn print_job(stack: &LocalStack, j: &Job) {
    println!("id:        {}", j.id);
    println!("status:    {}", j.status);
    println!("progress:  {:.0}%", j.progress());
    println!("prompt:    {}", j.request.prompt.as_str());
    let (w, h) = j.request.frame_size();
    println!(
        "request:   {} s, {} ({w}x{h}), {} fps, {} scenes, {} transition",
        j.request.duration_seconds,
        j.request.aspect_ratio,
        j.request.fps.get(),
        j.request.clip_count.get(),
        j.request.transition.kind
    );
    if let Some(plan) = &j.plan {
        let fell_back = plan
            .fallback
            .as_deref()
            .map(|f| format!(" (fell back: {f})"))
            .unwrap_or_default();
        println!("planner:   {}{fell_back}", plan.planner);
        if let Some(n) = &plan.narration {
            println!("narrator:  {} at {:.3}x", n.narrator, n.tempo);
        }
    }
    for (stage, t) in &j.stages {
        let secs = t
            .seconds()
            .map_or_else(|| "running".to_owned(), |s| format!("{s:.2} s"));
        println!("stage:     {stage:?} {secs}");
    }
    for c in &j.clips {
        let err = c
            .error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        let fallback = c
            .fallback
            .as_deref()
            .map(|f| format!(" fallback=[{f}]"))
            .unwrap_or_default();
        let cost = c
            .cost
            .as_ref()
            .map(|k| format!(" cost=${:.4}", k.usd))
            .unwrap_or_default();
        println!(
            "clip {:03}:  {:?}{} provider={} attempts={}{cost}{fallback}{err}",
            c.index,
            c.status,
            if c.cache_hit { " cache" } else { "" },
            c.provider,
            c.attempts
        );
    }
    if let Some(cost) = &j.cost {
        println!(
            "cost:      ${:.4} (providers ${:.4}, compute ${:.4}), {} bytes moved",
            cost.total_usd, cost.provider_usd, cost.compute_usd, cost.bytes_moved
        );
        for line in &cost.lines {
            println!(
                "           {}: ${:.4} ({})",
                line.item, line.usd, line.basis
            );
        }
    }
    if let Some(o) = &j.outputs {
        let p = OutputPaths::in_store(stack, o);
        println!(
            "final:     {} ({:.2} s, {} bytes)",
            p.final_video.display(),
            o.duration_seconds,
            o.size_bytes
        );
        println!("thumbnail: {}", p.thumbnail.display());
    }
    if let Some(e) = &j.error {
        println!("error:     {}: {}", e.code, e.message);
    }
}

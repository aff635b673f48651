//! `vidpipe recompose` and `vidpipe compositions`: a finished job's clips laid out again as a new
//! version, and the list of a job's versions. Wiring and presentation; the work is in
//! `vidpipe_pipeline::generation::recompose`.

use crate::LOCAL_OWNER;
use crate::output::OutputPaths;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use vidpipe_domain::asset::AssetKind;
use vidpipe_domain::composition::{Composition, RecomposeEdits, SceneEdit};
use vidpipe_domain::job::JobId;
use vidpipe_pipeline::generation::recompose::{self, RecomposeError};
use vidpipe_pipeline::local::LocalStack;

#[derive(Args)]
pub struct RecomposeArgs {
    /// The completed job whose clips are laid out again.
    job: String,
    /// 16:9, 9:16, 1:1 or 4:5: the clips are fitted, not regenerated.
    #[arg(long)]
    aspect: Option<String>,
    /// 720p or 1080p.
    #[arg(long)]
    resolution: Option<String>,
    /// cut, fade, dissolve, wipeleft, ...
    #[arg(long)]
    transition: Option<String>,
    #[arg(long, overrides_with = "no_captions")]
    captions: bool,
    #[arg(long = "no-captions", overrides_with = "captions")]
    no_captions: bool,
    /// Keep the voice-over, or speak the scenes' lines where the parent had none.
    #[arg(long, overrides_with = "no_narration")]
    narration: bool,
    /// Drop the voice-over.
    #[arg(long = "no-narration", overrides_with = "narration")]
    no_narration: bool,
    /// Another voice of the narrator (espeak-ng: en-us, en-gb, fr, ...): the lines are spoken
    /// again, no clip is regenerated.
    #[arg(long)]
    voice: Option<String>,
    /// A new music track (any audio ffmpeg reads).
    #[arg(long)]
    music: Option<PathBuf>,
    /// A new logo (PNG or JPEG).
    #[arg(long)]
    logo: Option<PathBuf>,
    /// Replace scene I (its index in the job's plan, from 0) with a clip of a new prompt, made
    /// through the provider chain and its cache, or with I=@FILE by a video (MP4, MOV, WebM, at
    /// least as long as the scene) or image (PNG, JPEG) file, ingested as an asset and fitted to
    /// the scene with no provider call; repeat for more scenes. Only prompted scenes are
    /// generated.
    #[arg(long = "replace-scene", value_name = "I=PROMPT|I=@FILE")]
    replace_scene: Vec<String>,
    /// Print the result as JSON (the fields of `generate --json` plus the composition ids).
    #[arg(long)]
    json: bool,
}

/// How `--replace-scene` names a scene's replacement.
enum Replacement {
    Prompt(String),
    File(PathBuf),
}

/// `I=PROMPT` or `I=@FILE`, read.
fn replacement(raw: &str) -> Result<(u32, Replacement)> {
    let (index, what) = raw.split_once('=').context(
        "--replace-scene takes I=PROMPT or I=@FILE, e.g. 1='a lighthouse at night' or 1=@shot.mp4",
    )?;
    let index = index
        .trim()
        .parse()
        .with_context(|| format!("--replace-scene: {index:?} is not a scene index"))?;
    Ok(match what.strip_prefix('@') {
        Some(file) => (index, Replacement::File(PathBuf::from(file))),
        None => (index, Replacement::Prompt(what.to_owned())),
    })
}

/// The kind a replacement file is ingested as, by its extension (its content is probed then).
fn file_kind(path: &std::path::Path) -> AssetKind {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    if AssetKind::Image.content_type_for_extension(ext).is_some() {
        AssetKind::Image
    } else {
        // Anything else is judged as a video, whose error lists the accepted files.
        AssetKind::Video
    }
}

/// Each `--replace-scene` as a scene edit, its file (if any) ingested as an asset first.
async fn scene_edits(stack: &LocalStack, raw: &[String]) -> Result<Vec<SceneEdit>> {
    let mut edits = Vec::with_capacity(raw.len());
    for r in raw {
        edits.push(match replacement(r)? {
            (index, Replacement::Prompt(p)) => SceneEdit::prompt(index, p),
            (index, Replacement::File(path)) => {
                let asset = stack
                    .service()
                    .ingest_asset(LOCAL_OWNER, file_kind(&path), &path, "--replace-scene")
                    .await?;
                SceneEdit::asset(index, asset.id.to_string())
            }
        });
    }
    Ok(edits)
}

#[derive(Args)]
pub struct CompositionsArgs {
    job: String,
    #[arg(long)]
    json: bool,
}

fn job_id(raw: &str) -> Result<JobId> {
    JobId::parse(raw).map_err(anyhow::Error::msg)
}

pub async fn recompose(stack: LocalStack, args: &RecomposeArgs) -> Result<ExitCode> {
    let id = job_id(&args.job)?;
    let service = stack.service();
    let asset = async |path: &Option<PathBuf>, kind: AssetKind, flag: &str| match path {
        Some(p) => Ok::<_, anyhow::Error>(Some(
            service
                .ingest_asset(LOCAL_OWNER, kind, p, flag)
                .await?
                .id
                .to_string(),
        )),
        None => Ok(None),
    };
    let edits = RecomposeEdits {
        aspect_ratio: args.aspect.clone(),
        resolution: args.resolution.clone(),
        transition: args.transition.clone(),
        captions: if args.no_captions {
            Some(false)
        } else {
            args.captions.then_some(true)
        },
        music_asset_id: asset(&args.music, AssetKind::Music, "--music").await?,
        logo_asset_id: asset(&args.logo, AssetKind::Logo, "--logo").await?,
        order: None,
        parent_composition_id: None,
        scenes: if args.replace_scene.is_empty() {
            None
        } else {
            Some(scene_edits(&stack, &args.replace_scene).await?)
        },
        narration: if args.no_narration {
            Some(false)
        } else {
            args.narration.then_some(true)
        },
        voice: args.voice.clone(),
    };
    let deps = stack.deps();
    let prepared = match recompose::prepare(deps, LOCAL_OWNER, &id, &edits).await {
        Ok(c) => c,
        Err(RecomposeError::Invalid(v)) => {
            let lines: Vec<String> = v
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.rule))
                .collect();
            bail!("invalid edits:\n  {}", lines.join("\n  "));
        }
        Err(e) => return Err(e.into()),
    };
    // Through the runner: the replaced scenes' clips first (the clip step, with its retries),
    // then the render.
    let done = stack
        .runner()
        .run_composition(&id, &prepared.id)
        .await
        .with_context(|| format!("recompose {} of {id}", prepared.id))?;
    let outputs = done
        .outputs
        .clone()
        .context("a completed composition has outputs")?;
    let paths = OutputPaths::in_store(&stack, &outputs);
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&composition_json(&stack, &done))?
        );
    } else {
        println!(
            "{} of {id} completed: {} ({:.2} s, from {})",
            done.id,
            paths.final_video.display(),
            outputs.duration_seconds,
            done.parent_composition_id
                .as_ref()
                .map_or("-".into(), |p| p.to_string()),
        );
        println!("thumbnail: {}", paths.thumbnail.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The fields `generate --json` prints, for one composition, plus its ids.
fn composition_json(stack: &LocalStack, c: &Composition) -> serde_json::Value {
    let paths = c.outputs.as_ref().map(|o| OutputPaths::in_store(stack, o));
    serde_json::json!({
        "job_id": c.job_id,
        "status": c.status,
        "final": paths.as_ref().map(|p| p.final_video.display().to_string()),
        "thumbnail": paths.as_ref().map(|p| p.thumbnail.display().to_string()),
        "duration_seconds": c.outputs.as_ref().map(|o| o.duration_seconds),
        "composition_id": c.id,
        "parent_composition_id": c.parent_composition_id,
        "edits": c.edits,
        "scene_assets": c.asset_scenes(),
        "error": c.error,
        "created_at": c.created_at,
    })
}

pub async fn compositions(stack: LocalStack, args: &CompositionsArgs) -> Result<ExitCode> {
    let id = job_id(&args.job)?;
    match stack.service().get(LOCAL_OWNER, &id).await? {
        Some(_) => {}
        None => bail!("no job {id}"),
    }
    let versions = stack.deps().jobs.compositions(&id).await?;
    if args.json {
        let all: Vec<_> = versions
            .iter()
            .map(|c| composition_json(&stack, c))
            .collect();
        println!("{}", serde_json::to_string(&all)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<36}  {:<36}  {:<10}  {:>8}  FINAL",
        "COMPOSITION", "PARENT", "STATUS", "SECONDS"
    );
    for c in &versions {
        println!(
            "{:<36}  {:<36}  {:<10}  {:>8}  {}",
            c.id,
            c.parent_composition_id
                .as_ref()
                .map_or("-".into(), |p| p.to_string()),
            c.status.as_str(),
            c.outputs
                .as_ref()
                .map_or("-".into(), |o| format!("{:.2}", o.duration_seconds)),
            c.outputs.as_ref().map_or("-".into(), |o| stack
                .blob_path(&o.final_key)
                .display()
                .to_string()),
        );
    }
    Ok(ExitCode::SUCCESS)
}

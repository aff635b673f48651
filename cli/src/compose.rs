//! `vidpipe compose TIMELINE.json [--dry-run] [--json]`: a timeline document rendered in one
//! pass, or only validated and predicted. Wiring and presentation; the work is in
//! `vidpipe_pipeline::edit`.
//!
//! On this machine an image or audio asset may name a local `file` (relative to the document)
//! instead of an `asset_id`: it is ingested as an asset first, exactly as `--logo` and `--music`
//! are for `generate`, and the document then names its id.

use crate::LOCAL_OWNER;
use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vidpipe_domain::asset::AssetKind;
use vidpipe_pipeline::edit::{self, EditError};
use vidpipe_pipeline::local::LocalStack;

#[derive(Args)]
pub struct ComposeArgs {
    /// The timeline document (JSON): output, tracks of clips, soundtrack, captions.
    timeline: PathBuf,
    /// Validate and predict (normalised timeline, duration, route, provider calls and cache
    /// hits, estimated cost) without rendering anything.
    #[arg(long)]
    dry_run: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

pub async fn compose(stack: LocalStack, args: &ComposeArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&args.timeline)
        .with_context(|| format!("read {}", args.timeline.display()))?;
    let mut doc: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", args.timeline.display()))?;
    let base = args
        .timeline
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    ingest_files(&stack, &mut doc, &base).await?;
    let deps = stack.deps();
    if args.dry_run {
        let plan = edit::dry_run(deps, LOCAL_OWNER, &doc)
            .await
            .map_err(invalid)?;
        if args.json {
            let mut v = serde_json::to_value(&plan)?;
            v["dry_run"] = json!(true);
            println!("{}", serde_json::to_string(&v)?);
        } else {
            let (w, h) = (plan.timeline.output.width, plan.timeline.output.height);
            println!(
                "valid: {w}x{h} at {} fps, {:.3} s ({} frames), {} layers, route {:?}",
                plan.timeline.output.fps,
                plan.duration_seconds,
                plan.total_frames,
                plan.timeline.layers.len(),
                plan.route
            );
            for call in &plan.provider_calls {
                println!(
                    "{}: {} {}",
                    call.path,
                    call.provider,
                    if call.cache_hit { "(cached)" } else { "(call)" }
                );
            }
            match plan.estimated_cost.total_usd {
                Some(usd) => println!("estimated cost: ${usd:.4}"),
                None => println!("estimated cost: unknown (a provider publishes no price)"),
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let done = edit::render(deps, LOCAL_OWNER, &doc, &|_| {})
        .await
        .map_err(invalid)?;
    let (final_path, thumbnail) = (
        stack.blob_path(&done.final_key),
        stack.blob_path(&done.thumbnail_key),
    );
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&json!({
                "composition_id": done.composition_id,
                "status": done.status,
                "final": final_path.display().to_string(),
                "thumbnail": thumbnail.display().to_string(),
                "duration_seconds": done.duration_seconds,
                "route": done.route,
                "provider_calls": done.provider_calls,
                "render_seconds": done.render_seconds,
            }))?
        );
    } else {
        println!(
            "{} completed: {} ({:.2} s)",
            done.composition_id,
            final_path.display(),
            done.duration_seconds
        );
        println!("thumbnail: {}", thumbnail.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per invalid field, as `generate` reports them.
fn invalid(e: EditError) -> anyhow::Error {
    match e {
        EditError::Invalid(v) => {
            let lines: Vec<String> = v
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.rule))
                .collect();
            anyhow::anyhow!("invalid timeline:\n  {}", lines.join("\n  "))
        }
        EditError::Step(e) => anyhow::Error::new(e).context("render the timeline"),
    }
}

/// Replaces each `file` of an image, video or audio asset (and of the soundtrack) with the id of the
/// asset it is ingested as. Malformed places are left for validation to name.
async fn ingest_files(stack: &LocalStack, doc: &mut Value, base: &Path) -> Result<()> {
    if let Some(Value::Array(tracks)) = doc.get_mut("tracks") {
        for (t, track) in tracks.iter_mut().enumerate() {
            let Some(Value::Array(clips)) = track.get_mut("clips") else {
                continue;
            };
            for (c, clip) in clips.iter_mut().enumerate() {
                let Some(Value::Object(asset)) = clip.get_mut("asset") else {
                    continue;
                };
                let kind = match asset.get("type").and_then(Value::as_str) {
                    Some("image") => AssetKind::Image,
                    Some("video") => AssetKind::Video,
                    Some("audio") => AssetKind::Music,
                    _ => continue,
                };
                let field = format!("tracks[{t}].clips[{c}].asset.file");
                ingest(stack, asset, kind, &field, base).await?;
            }
        }
    }
    if let Some(Value::Object(s)) = doc.get_mut("soundtrack") {
        ingest(stack, s, AssetKind::Music, "soundtrack.file", base).await?;
    }
    Ok(())
}

async fn ingest(
    stack: &LocalStack,
    map: &mut serde_json::Map<String, Value>,
    kind: AssetKind,
    field: &str,
    base: &Path,
) -> Result<()> {
    let Some(file) = map.get("file") else {
        return Ok(());
    };
    let Some(file) = file.as_str() else {
        bail!("{field}: must be a path");
    };
    let path = base.join(file);
    let asset = stack
        .service()
        .ingest_asset(LOCAL_OWNER, kind, &path, field)
        .await
        .with_context(|| format!("{field}: {}", path.display()))?;
    map.remove("file");
    map.insert("asset_id".into(), json!(asset.id));
    Ok(())
}

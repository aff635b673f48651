//! `metadata.json`, written beside a finished composition: the request, the plan's planner and
//! provider, the measured output, stage timings and tool versions.

use super::types::ComposeOutput;
use crate::processing::manifest::LAMBDA_ARM64_USD_PER_GB_SECOND;
use std::collections::BTreeMap;
use vidpipe_domain::Stage;
use vidpipe_domain::job::{CostLine, GenerationCost, Job};
use vidpipe_domain::steps::GenerationStep;

/// The job's bill: each clip's provider cost as recorded, the steps' milliseconds at the
/// functions' memory (nothing on one machine), and the bytes moved: fetched from providers, each
/// clip written to the cache and read back by compose, and the outputs written.
pub(crate) fn cost(
    job: &Job,
    compose: &ComposeOutput,
    memory_mb: Option<u32>,
    clip_bytes: u64,
    thumbnail_bytes: u64,
) -> GenerationCost {
    let mut lines = Vec::new();
    let mut provider_usd = 0.0;
    for clip in &job.clips {
        if let Some(c) = clip.cost.as_ref().filter(|_| !clip.cache_hit) {
            provider_usd += c.usd;
            lines.push(CostLine {
                item: format!("clip {:03} ({})", clip.index, clip.provider),
                usd: c.usd,
                basis: c.basis.clone(),
            });
        }
    }
    let plan_ms = job
        .stages
        .get(&Stage::Planning)
        .and_then(|t| t.seconds())
        .map_or(0, |s| (s * 1000.0).round() as u64);
    let compute_ms = BTreeMap::from([
        (GenerationStep::Plan.to_string(), plan_ms),
        (
            GenerationStep::GenerateClip.to_string(),
            job.clips.iter().map(|c| c.compute_ms).sum(),
        ),
        (
            GenerationStep::Compose.to_string(),
            (compose.compose_seconds * 1000.0).round() as u64,
        ),
    ]);
    let total_ms: u64 = compute_ms.values().sum();
    let compute_usd = memory_mb.map_or(0.0, |mb| {
        total_ms as f64 / 1000.0 * mb as f64 / 1024.0 * LAMBDA_ARM64_USD_PER_GB_SECOND
    });
    if let Some(mb) = memory_mb {
        lines.push(CostLine {
            item: "compute".into(),
            usd: compute_usd,
            basis: format!(
                "{:.1} s at {mb} MB, ${LAMBDA_ARM64_USD_PER_GB_SECOND}/GB-s (arm64)",
                total_ms as f64 / 1000.0
            ),
        });
    }
    let fetched: u64 = job.clips.iter().map(|c| c.bytes).sum();
    GenerationCost {
        total_usd: provider_usd + compute_usd,
        provider_usd,
        compute_usd,
        compute_ms,
        memory_mb,
        bytes_moved: fetched + 2 * clip_bytes + compose.probe.size_bytes + thumbnail_bytes,
        lines,
    }
}

/// The document, from the job as finalize saved it (so its stage timings are the final ones).
pub(crate) fn metadata(job: &Job, compose: &ComposeOutput) -> serde_json::Value {
    let stages: serde_json::Map<String, serde_json::Value> = job
        .stages
        .iter()
        .map(|(stage, t)| {
            (
                stage.as_str().to_owned(),
                serde_json::json!({ "started_at": t.started_at, "finished_at": t.finished_at, "seconds": t.seconds() }),
            )
        })
        .collect();
    serde_json::json!({
        "job_id": job.id,
        "request": job.request,
        "planner": job.plan.as_ref().map(|p| p.planner.clone()),
        "provider": job.clips.first().map(|c| c.provider.clone()),
        "clip_count": job.clips.len(),
        "cache_hits": job.cache_hits(),
        "planner_fallback": job.plan.as_ref().and_then(|p| p.fallback.clone()),
        "clips": job.clips.iter().map(|c| serde_json::json!({
            "index": c.index,
            "provider": c.provider,
            "fallback": c.fallback,
            "cache_hit": c.cache_hit,
            "cost": c.cost,
        })).collect::<Vec<_>>(),
        "cost": job.cost,
        "probe": compose.probe,
        "stages": stages,
        "compose_seconds": compose.compose_seconds,
        "tools": compose.tools,
        "created_at": job.created_at,
        "completed_at": job.updated_at,
    })
}

//! `metadata.json`, written beside a finished composition: the request, the plan's planner and
//! provider, the measured output, stage timings and tool versions.

use super::types::ComposeOutput;
use vidpipe_domain::job::Job;

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
        "probe": compose.probe,
        "stages": stages,
        "compose_seconds": compose.compose_seconds,
        "tools": compose.tools,
        "created_at": job.created_at,
        "completed_at": job.updated_at,
    })
}

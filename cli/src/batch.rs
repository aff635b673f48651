//! `vidpipe batch FILE`: every row of a JSON Lines or CSV file generated on this machine, at most
//! `--concurrency` at once, with an overall progress bar and one per running job. Each row's
//! result is appended to the results file as it ends, so an interrupted batch resumes: a re-run
//! skips the rows whose last result is final (completed, or invalid) for the same content.
//! Rows are read as the API reads a batch's items (`vidpipe_http::batches::read_item`) and
//! submitted through the same service.

use crate::LOCAL_OWNER;
use crate::batch_rows::{self, ResultsWriter, Row, RowResult, RowStatus};
use anyhow::{Context, Result};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, broadcast};
use vidpipe_domain::asset::AssetKind;
use vidpipe_domain::error::FieldError;
use vidpipe_domain::job::{JobId, JobStatus};
use vidpipe_http::batches::read_item;
use vidpipe_pipeline::RunEvent;
use vidpipe_pipeline::ServiceError;
use vidpipe_pipeline::Submitted;
use vidpipe_pipeline::batch::BatchEntry;
use vidpipe_pipeline::local::LocalStack;

#[derive(Args)]
pub struct BatchArgs {
    /// Requests, one per row: JSON Lines (the API's request objects, each may carry an
    /// `idempotency_key`), or CSV when the name ends in `.csv` (a header naming the fields,
    /// nested ones by dotted path such as `captions.style` or `brand.logo.opacity`). `logo` and
    /// `music` name local files, relative to FILE.
    pub file: PathBuf,
    /// Jobs run at once.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub concurrency: u32,
    /// Where each row's result is appended (default: FILE.results.jsonl beside the file).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Print one JSON object summing up the batch on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Clips generated at once within one job: the batch's own concurrency is the bound that counts.
pub const CLIPS_PER_JOB: usize = 1;

/// How long an interrupted batch waits for its cancelled jobs to stop before it exits anyway.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);

pub async fn batch(stack: LocalStack, args: &BatchArgs) -> Result<ExitCode> {
    let rows = batch_rows::read(&args.file)?;
    let results_path = args
        .results
        .clone()
        .unwrap_or_else(|| batch_rows::default_results_path(&args.file));
    // Absolute, so the printed path works from wherever the caller reads it.
    let results_path = std::path::absolute(&results_path).unwrap_or(results_path);
    let previous = batch_rows::previous(&results_path)?;
    let writer = Arc::new(Mutex::new(ResultsWriter::open(&results_path)?));

    let (skipped, todo): (Vec<&Row>, Vec<&Row>) = rows.iter().partition(|row| {
        previous
            .get(&row.number)
            .is_some_and(|r| r.hash == row.hash && r.status.is_finished())
    });

    let multi = MultiProgress::new();
    let overall = multi.add(
        ProgressBar::new(todo.len() as u64).with_style(
            ProgressStyle::with_template("{prefix:>9} [{bar:40}] {pos}/{len} rows {msg}")
                .expect("static template")
                .progress_chars("=> "),
        ),
    );
    overall.set_prefix("batch");
    overall.set_message(format!("({} already done)", skipped.len()));

    let stack = Arc::new(stack);
    // Relative `logo` and `music` paths are the file's neighbours.
    let base = Arc::new(
        std::path::absolute(&args.file)
            .ok()
            .and_then(|f| f.parent().map(Path::to_path_buf))
            .unwrap_or_default(),
    );
    let assets: Arc<Assets> = Arc::default();
    let running: Arc<Mutex<HashSet<JobId>>> = Arc::default();
    let limit = Arc::new(Semaphore::new(args.concurrency as usize));
    let mut tasks = tokio::task::JoinSet::new();
    for row in todo.iter().map(|r| (*r).clone()) {
        let (stack, limit, running, writer) = (
            stack.clone(),
            limit.clone(),
            running.clone(),
            writer.clone(),
        );
        let (base, assets) = (base.clone(), assets.clone());
        let (multi, overall) = (multi.clone(), overall.clone());
        tasks.spawn(async move {
            // Closed on Ctrl-C: a row still waiting then starts nothing.
            let Ok(_permit) = limit.acquire_owned().await else {
                return Ok(None);
            };
            let files = Files {
                base: &base,
                assets: &assets,
            };
            let result = run_row(&stack, &row, &files, &multi, &running).await;
            writer
                .lock()
                .expect("results writer")
                .write(&result)
                .context("cannot write the results file")?;
            overall.inc(1);
            // Above the bars on a terminal; plain lines on stderr otherwise.
            if multi.is_hidden() || multi.println(line(&result)).is_err() {
                eprintln!("{}", line(&result));
            }
            Ok::<_, anyhow::Error>(Some(result))
        });
    }

    let mut ran = Vec::new();
    let finished = async {
        while let Some(done) = tasks.join_next().await {
            ran.extend(done.context("a row's task crashed")??);
        }
        Ok::<_, anyhow::Error>(())
    };
    tokio::select! {
        r = finished => r?,
        _ = tokio::signal::ctrl_c() => {
            // Nothing new starts; the running jobs are cancelled (a job submitted meanwhile too)
            // and their rows given a moment to record it. A row that records nothing, or not a
            // final result, runs again on the next run.
            limit.close();
            let mut cancelled = HashSet::new();
            let deadline = tokio::time::Instant::now() + INTERRUPT_GRACE;
            loop {
                let ids: Vec<JobId> = running
                    .lock()
                    .expect("running")
                    .iter()
                    .filter(|id| !cancelled.contains(*id))
                    .cloned()
                    .collect();
                for id in ids {
                    let _ = stack.service().cancel(LOCAL_OWNER, &id).await;
                    cancelled.insert(id);
                }
                let next = tokio::time::timeout(Duration::from_millis(100), tasks.join_next());
                match next.await {
                    Ok(None) => break,
                    _ if tokio::time::Instant::now() >= deadline => {
                        tasks.abort_all();
                        break;
                    }
                    _ => {}
                }
            }
            overall.abandon_with_message("interrupted");
            eprintln!(
                "interrupted: {} running job(s) cancelled; run the same command again to resume ({})",
                cancelled.len(),
                results_path.display()
            );
            return Ok(ExitCode::from(130));
        }
    }
    overall.finish_with_message(format!("({} already done)", skipped.len()));
    ran.sort_by_key(|r| r.row);

    let count = |s: RowStatus| ran.iter().filter(|r| r.status == s).count();
    let all_done = ran.iter().all(|r| r.status == RowStatus::Completed)
        && skipped
            .iter()
            .all(|row| previous[&row.number].status == RowStatus::Completed);
    if args.json {
        let mut items: Vec<serde_json::Value> = Vec::new();
        for row in &rows {
            if let Some(r) = ran.iter().find(|r| r.row == row.number) {
                items.push(serde_json::to_value(r)?);
            } else if let Some(r) = previous.get(&row.number) {
                let mut v = serde_json::to_value(r)?;
                v["skipped"] = true.into();
                items.push(v);
            }
        }
        let summary = serde_json::json!({
            "file": args.file.display().to_string(),
            "results": results_path.display().to_string(),
            "rows": rows.len(),
            "ran": ran.len(),
            "skipped": skipped.len(),
            "completed": count(RowStatus::Completed),
            "invalid": count(RowStatus::Invalid),
            "failed": count(RowStatus::Failed),
            "refused": count(RowStatus::Refused),
            "items": items,
        });
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{} rows: {} ran ({} completed, {} invalid, {} failed, {} refused), {} skipped as done; results in {}",
            rows.len(),
            ran.len(),
            count(RowStatus::Completed),
            count(RowStatus::Invalid),
            count(RowStatus::Failed),
            count(RowStatus::Refused),
            skipped.len(),
            results_path.display()
        );
    }
    Ok(if all_done {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One line per finished row, for people.
fn line(r: &RowResult) -> String {
    let status = serde_json::to_value(r.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let what = match r.status {
        RowStatus::Completed => r.r#final.clone().unwrap_or_default(),
        RowStatus::Invalid => r
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
        RowStatus::Failed | RowStatus::Refused => r.error.clone().unwrap_or_default(),
    };
    let job = r
        .job_id
        .as_deref()
        .map(|j| format!(" {j}"))
        .unwrap_or_default();
    format!("row {}: {status}{job} {what}", r.row)
}

/// Brand assets already ingested from a file, by path: rows naming the same logo share it.
type Assets = tokio::sync::Mutex<HashMap<(&'static str, PathBuf), String>>;

/// Where a row's `logo` and `music` files are found, and what was ingested from them.
struct Files<'a> {
    base: &'a Path,
    assets: &'a Assets,
}

/// The fields a row may give as a local file, ingested as the brand asset the request names.
const FILE_FIELDS: [(&str, AssetKind); 2] =
    [("logo", AssetKind::Logo), ("music", AssetKind::Music)];

/// The row with its `logo` and `music` files (paths, relative to the batch file) ingested as
/// brand assets and named at `brand.logo.asset_id` / `brand.music.asset_id`.
async fn with_assets(
    stack: &LocalStack,
    files: &Files<'_>,
    value: &Value,
) -> std::result::Result<Value, Vec<FieldError>> {
    let Value::Object(fields) = value else {
        return Ok(value.clone());
    };
    let mut fields = fields.clone();
    let mut errors = Vec::new();
    for (name, kind) in FILE_FIELDS {
        let Some(given) = fields.remove(name) else {
            continue;
        };
        let Value::String(path) = given else {
            errors.push(FieldError::new(name, "must be a file path"));
            continue;
        };
        let path = files.base.join(path);
        let named = fields
            .get("brand")
            .and_then(|b| b.get(name))
            .and_then(|a| a.get("asset_id"))
            .is_some();
        if named {
            errors.push(FieldError::new(
                name,
                format!("names a file and brand.{name}.asset_id names an asset; give one"),
            ));
            continue;
        }
        let mut cache = files.assets.lock().await;
        let id = match cache.get(&(name, path.clone())) {
            Some(id) => id.clone(),
            None => match stack
                .service()
                .ingest_asset(LOCAL_OWNER, kind, &path, name)
                .await
            {
                Ok(asset) => {
                    let id = asset.id.to_string();
                    cache.insert((name, path), id.clone());
                    id
                }
                Err(ServiceError::Invalid(v)) => {
                    errors.extend(v.errors);
                    continue;
                }
                Err(e) => {
                    errors.push(FieldError::new(name, e.to_string()));
                    continue;
                }
            },
        };
        let brand = fields
            .entry("brand")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(brand) = brand {
            let spec = brand
                .entry(name)
                .or_insert_with(|| Value::Object(Default::default()));
            if let Value::Object(spec) = spec {
                spec.insert("asset_id".into(), Value::String(id));
            }
        }
    }
    if errors.is_empty() {
        Ok(Value::Object(fields))
    } else {
        Err(errors)
    }
}

/// Reads, submits and waits for one row.
async fn run_row(
    stack: &LocalStack,
    row: &Row,
    files: &Files<'_>,
    multi: &MultiProgress,
    running: &Mutex<HashSet<JobId>>,
) -> RowResult {
    let mut result = RowResult {
        row: row.number,
        hash: row.hash.clone(),
        status: RowStatus::Invalid,
        job_id: None,
        replayed: None,
        r#final: None,
        thumbnail: None,
        duration_seconds: None,
        errors: vec![],
        error: None,
    };
    let value = match &row.content {
        Ok(v) => v,
        Err(e) => {
            result.errors = vec![e.clone()];
            return result;
        }
    };
    let value = match with_assets(stack, files, value).await {
        Ok(v) => v,
        Err(errors) => {
            result.errors = errors;
            return result;
        }
    };
    // Read as the API reads an item; its paths are the item's, told here without `items[i]`.
    let (body, key) = match read_item(row.number - 1, &value) {
        BatchEntry::Read {
            body,
            idempotency_key,
        } => (body, idempotency_key),
        BatchEntry::Unreadable(e) => {
            result.errors = e
                .errors
                .into_iter()
                .map(|f| FieldError::new(relative(row.number - 1, &f.field), f.rule))
                .collect();
            return result;
        }
    };
    // Subscribed before submitting: the run starts inside submit.
    let events = stack.runner().subscribe();
    let service = stack.service();
    let submitted = match service.submit(LOCAL_OWNER, &body, key.as_deref()).await {
        Ok(s) => s,
        Err(ServiceError::Invalid(v)) => {
            result.errors = v.errors;
            return result;
        }
        Err(e) => {
            result.status = RowStatus::Refused;
            result.error = Some(e.to_string());
            return result;
        }
    };
    let job_id = submitted.job().id.clone();
    result.job_id = Some(job_id.to_string());
    let job = match submitted {
        Submitted::Created(_) => {
            running.lock().expect("running").insert(job_id.clone());
            let bar = JobBar::start(multi, row.number, &job_id, events);
            let waited = stack.orchestrator().wait(&job_id).await;
            bar.done();
            running.lock().expect("running").remove(&job_id);
            match waited {
                Some(Ok(job)) => Some(job),
                Some(Err(e)) => {
                    result.status = RowStatus::Failed;
                    result.error = Some(e.to_string());
                    return result;
                }
                None => None,
            }
        }
        Submitted::Replayed(job) => {
            // Its idempotency key made the job earlier; only a finished one is an answer.
            result.replayed = Some(true);
            Some(job)
        }
    };
    let job = match job {
        Some(j) => service
            .get(LOCAL_OWNER, &j.id)
            .await
            .ok()
            .flatten()
            .unwrap_or(j),
        None => {
            result.status = RowStatus::Failed;
            result.error = Some("the run was not started".into());
            return result;
        }
    };
    match (&job.status, &job.outputs) {
        (JobStatus::Completed, Some(o)) => {
            let paths = crate::output::OutputPaths::in_store(stack, o);
            result.status = RowStatus::Completed;
            result.r#final = Some(paths.final_video.display().to_string());
            result.thumbnail = Some(paths.thumbnail.display().to_string());
            result.duration_seconds = Some(o.duration_seconds);
        }
        (status, _) => {
            result.status = RowStatus::Failed;
            result.error = Some(job.error.as_ref().map_or_else(
                || format!("job is {status}"),
                |e| format!("{}: {}", e.code, e.message),
            ));
        }
    }
    result
}

/// `items[3].fps` as the row's own `fps`.
fn relative(index: usize, field: &str) -> String {
    let prefix = format!("items[{index}]");
    match field.strip_prefix(&prefix) {
        Some("") => "body".into(),
        Some(rest) => rest.strip_prefix('.').unwrap_or(rest).to_owned(),
        None => field.to_owned(),
    }
}

/// A bar for one running job, fed by the runner's events while the job runs.
struct JobBar {
    task: tokio::task::JoinHandle<()>,
    bar: ProgressBar,
    multi: MultiProgress,
}

impl JobBar {
    fn start(
        multi: &MultiProgress,
        row: usize,
        id: &JobId,
        mut events: broadcast::Receiver<RunEvent>,
    ) -> Self {
        let bar = multi.add(
            ProgressBar::new(100).with_style(
                ProgressStyle::with_template("{prefix:>9} [{bar:40}] {pos:>3}% {msg}")
                    .expect("static template")
                    .progress_chars("=> "),
            ),
        );
        bar.set_prefix(format!("row {row}"));
        bar.set_message(format!("{id} queued"));
        let (id, fed) = (id.clone(), bar.clone());
        let task = tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                match event {
                    RunEvent::Stage { job_id, status } if job_id == id => {
                        fed.set_message(format!("{id} {status}"));
                        if let Some(stage) = status.stage() {
                            fed.set_position(stage.span().0.round() as u64);
                        }
                    }
                    RunEvent::ComposeProgress { job_id, fraction } if job_id == id => {
                        let (lo, hi) = vidpipe_domain::Stage::Composing.span();
                        fed.set_position((lo + (hi - lo) * fraction).round() as u64);
                    }
                    _ => {}
                }
            }
        });
        Self {
            task,
            bar,
            multi: multi.clone(),
        }
    }

    /// The job ended: its bar leaves the screen, the overall bar and the row's line tell the rest.
    fn done(self) {
        self.task.abort();
        self.bar.finish_and_clear();
        self.multi.remove(&self.bar);
    }
}

#[cfg(test)]
mod tests {
    use super::relative;

    #[test]
    fn item_paths_are_told_as_the_rows_own() {
        assert_eq!(relative(3, "items[3].duration_seconds"), "duration_seconds");
        assert_eq!(relative(3, "items[3]"), "body");
        assert_eq!(
            relative(0, "items[0].brand.logo.opacity"),
            "brand.logo.opacity"
        );
    }
}

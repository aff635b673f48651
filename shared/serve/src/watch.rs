//! `--watch DIR`: the local twin of the S3 trigger. Every video file dropped into the folder is
//! processed as an upload of the local tenant's `watch` project, once:
//!
//! - a file is taken only when it is *stable*: the same size and modification time on two looks
//!   [`SETTLE`] apart, so a copy still being written is left alone;
//! - it is stored in the blob store as `raw/local/watch/{name}` (named by its content, so the
//!   same bytes are one record), its processing started, and the file moved to `DIR/done/`;
//!   a file that cannot be taken (not a video name, unreadable) moves to `DIR/failed/` with a
//!   `.why.txt` beside it. Either way it is never looked at again.
//!
//! The folder is polled (every [`POLL`]): one directory listing a second costs nothing, and
//! behaves the same on every filesystem, network mounts included.

use crate::access::LOCAL_TENANT;
use crate::processing::LocalProcessing;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vidpipe_domain::processing::is_video_extension;
use vidpipe_pipeline::local::LocalStack;

pub const POLL: Duration = Duration::from_millis(500);
/// How long a file must stay unchanged before it is taken.
pub const SETTLE: Duration = Duration::from_secs(1);
/// The project watched files are filed under.
pub const WATCH_PROJECT: &str = "watch";

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub struct Watcher {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// A file seen but not yet stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    size: u64,
    modified: Option<SystemTime>,
    since: tokio::time::Instant,
}

impl Watcher {
    pub async fn start(
        dir: PathBuf,
        stack: Arc<LocalStack>,
        processing: Arc<LocalProcessing>,
    ) -> Result<Watcher, WatchError> {
        for d in [dir.clone(), dir.join("done"), dir.join("failed")] {
            tokio::fs::create_dir_all(&d)
                .await
                .map_err(|source| WatchError::Io { path: d, source })?;
        }
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut seen: HashMap<PathBuf, Seen> = HashMap::new();
            loop {
                if let Err(e) = look(&dir, &stack, &processing, &mut seen).await {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot list the watched folder");
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = stopped.changed() => break,
                }
            }
        });
        Ok(Watcher { stop, task })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn look(
    dir: &Path,
    stack: &LocalStack,
    processing: &LocalProcessing,
    seen: &mut HashMap<PathBuf, Seen>,
) -> std::io::Result<()> {
    let mut entries = tokio::fs::read_dir(dir).await?;
    let now = tokio::time::Instant::now();
    let mut present = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // Hidden files are what editors and copy tools write before the real one.
        if name.starts_with('.') {
            continue;
        }
        let Ok(meta) = entry.metadata().await else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        present.push(path.clone());
        let now_seen = Seen {
            size: meta.len(),
            modified: meta.modified().ok(),
            since: now,
        };
        match seen.get(&path) {
            Some(before)
                if before.size == now_seen.size
                    && before.modified == now_seen.modified
                    && now.duration_since(before.since) >= SETTLE =>
            {
                seen.remove(&path);
                take(dir, &path, name, stack, processing).await;
            }
            Some(before)
                if before.size == now_seen.size && before.modified == now_seen.modified => {}
            _ => {
                seen.insert(path, now_seen);
            }
        }
    }
    seen.retain(|p, _| present.contains(p));
    Ok(())
}

/// Stores, starts and moves one stable file.
async fn take(
    dir: &Path,
    path: &Path,
    name: &str,
    stack: &LocalStack,
    processing: &LocalProcessing,
) {
    let ext = Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    let outcome = if is_video_extension(ext) {
        stack
            .ingest_raw(path, LOCAL_TENANT, WATCH_PROJECT)
            .await
            .map_err(|e| e.to_string())
    } else {
        Err(format!("{name:?} has no video extension"))
    };
    let (folder, why) = match outcome {
        Ok(source) => {
            let name = source.id();
            processing.start(&source, &name);
            tracing::info!(file = %path.display(), key = %source.key, "watched file taken");
            ("done", None)
        }
        Err(why) => {
            tracing::warn!(file = %path.display(), why, "watched file refused");
            ("failed", Some(why))
        }
    };
    let dest = free_name(&dir.join(folder), name).await;
    if let Err(e) = tokio::fs::rename(path, &dest).await {
        // Left in place it would be taken again; that is worse than a loud log.
        tracing::error!(file = %path.display(), error = %e, "cannot move a watched file out of the folder");
    }
    if let Some(why) = why {
        let mut note = dest.clone().into_os_string();
        note.push(".why.txt");
        let _ = tokio::fs::write(PathBuf::from(note), format!("{why}\n")).await;
    }
}

/// `folder/name`, or `folder/name.1`, `.2`, ... when taken: a file dropped twice under one name
/// keeps both copies.
async fn free_name(folder: &Path, name: &str) -> PathBuf {
    let first = folder.join(name);
    if tokio::fs::try_exists(&first).await.ok() == Some(false) {
        return first;
    }
    for n in 1.. {
        let candidate = folder.join(format!("{name}.{n}"));
        if tokio::fs::try_exists(&candidate).await.ok() == Some(false) {
            return candidate;
        }
    }
    unreachable!("some numbered name is free")
}

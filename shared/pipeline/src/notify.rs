//! `Notifier` adapters: a JSON-lines file (one machine), or several at once. In AWS the state
//! machine publishes to SNS and EventBridge itself. Webhooks (Slack-compatible or signed
//! Standard Webhooks) are [`crate::webhooks`]: per tenant, signed, retried and logged.

use async_trait::async_trait;
use std::path::PathBuf;
use vidpipe_domain::ports::{Notifier, NotifyError};
use vidpipe_domain::processing::ProcessEvent;

/// Appends each event as one JSON line; what `vidpipe process` and the embedded tests read.
pub struct JsonlNotifier {
    path: PathBuf,
    lock: tokio::sync::Mutex<()>,
}

impl JsonlNotifier {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Every event written so far, oldest first.
    pub async fn read_all(&self) -> Result<Vec<ProcessEvent>, NotifyError> {
        let text = match tokio::fs::read_to_string(&self.path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(NotifyError::Unavailable(e.to_string())),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| NotifyError::Refused(e.to_string())))
            .collect()
    }
}

#[async_trait]
impl Notifier for JsonlNotifier {
    async fn notify(&self, event: &ProcessEvent) -> Result<(), NotifyError> {
        use tokio::io::AsyncWriteExt;
        let mut line =
            serde_json::to_vec(event).map_err(|e| NotifyError::Refused(e.to_string()))?;
        line.push(b'\n');
        // One writer at a time, one write per line: lines never interleave.
        let _guard = self.lock.lock().await;
        if let Some(dir) = self.path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| NotifyError::Unavailable(e.to_string()))?;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
            .map_err(|e| NotifyError::Unavailable(e.to_string()))?;
        file.write_all(&line)
            .await
            .map_err(|e| NotifyError::Unavailable(e.to_string()))
    }
}

/// Sends to each notifier in turn; every one is tried, and the first error is returned.
pub struct Fanout(pub Vec<Box<dyn Notifier>>);

#[async_trait]
impl Notifier for Fanout {
    async fn notify(&self, event: &ProcessEvent) -> Result<(), NotifyError> {
        let mut first = None;
        for n in &self.0 {
            if let Err(e) = n.notify(event).await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

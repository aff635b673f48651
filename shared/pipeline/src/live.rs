//! Live progress, transport-free: connections come and go, a connection subscribes to jobs of
//! its own tenant, and each change of a job is told to its subscribers as the domain's events
//! ([`vidpipe_domain::events`]). The stack's WebSocket functions and pusher call this with a
//! DynamoDB store and `PostToConnection`; anything else with a store and a [`LiveSender`] can.

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vidpipe_domain::events::{
    ClientMessage, JobKind, LiveEvent, LiveSnapshot, NOT_SUBSCRIBABLE, generation_events,
    processing_events,
};
use vidpipe_domain::job::JobId;
use vidpipe_domain::ports::{
    BlobStore, JobStore, LiveConnection, LiveStore, LiveSubscription, ProcessStore, StoreError,
};
pub use vidpipe_domain::ports::{LiveSender, SendError};

/// API Gateway closes a WebSocket after two hours; records outlive that by a little.
pub const CONNECTION_TTL: TimeDelta = TimeDelta::hours(3);
/// How long a completed event's download links stay valid.
pub const LINK_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Send(#[from] SendError),
}

/// What a change of one job did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushReport {
    pub events_sent: usize,
    pub connections_removed: usize,
    /// Subscriptions skipped for a send or store error other than a gone connection.
    pub failures: usize,
}

/// The live-progress service over its ports.
#[derive(Clone)]
pub struct Live {
    pub store: Arc<dyn LiveStore>,
    pub jobs: Arc<dyn JobStore>,
    pub processes: Arc<dyn ProcessStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub sender: Arc<dyn LiveSender>,
}

/// A job of either kind, as read for its subscribers.
enum AnyJob {
    Generation(Box<vidpipe_domain::Job>),
    Processing(Box<vidpipe_domain::processing::ProcessJob>),
}

impl AnyJob {
    fn owner(&self) -> Option<&str> {
        match self {
            AnyJob::Generation(j) => Some(&j.owner),
            AnyJob::Processing(p) => p.owner(),
        }
    }

    fn kind(&self) -> JobKind {
        match self {
            AnyJob::Generation(_) => JobKind::Generation,
            AnyJob::Processing(_) => JobKind::Processing,
        }
    }

    fn events(&self, prev: Option<&LiveSnapshot>) -> (Vec<LiveEvent>, LiveSnapshot) {
        match self {
            AnyJob::Generation(j) => generation_events(prev, j),
            AnyJob::Processing(p) => processing_events(prev, p),
        }
    }
}

impl Live {
    /// `$connect`: the tenant was authenticated by the gateway.
    pub async fn connect(&self, connection_id: &str, tenant: &str) -> Result<(), LiveError> {
        let now = Utc::now();
        self.store
            .put_connection(&LiveConnection {
                id: connection_id.to_owned(),
                tenant: tenant.to_owned(),
                connected_at: now,
                expires_at: now + CONNECTION_TTL,
            })
            .await?;
        Ok(())
    }

    /// `$disconnect`.
    pub async fn disconnect(&self, connection_id: &str) -> Result<(), LiveError> {
        Ok(self.store.remove_connection(connection_id).await?)
    }

    /// A job id of either kind: a generation id parses as one; anything else is a processing
    /// record's id.
    async fn find(&self, job_id: &str) -> Result<Option<AnyJob>, StoreError> {
        if let Ok(id) = JobId::parse(job_id) {
            return Ok(self
                .jobs
                .get(&id)
                .await?
                .map(|j| AnyJob::Generation(Box::new(j))));
        }
        Ok(self
            .processes
            .get_process(job_id)
            .await?
            .map(|p| AnyJob::Processing(Box::new(p))))
    }

    /// `$default`: one client frame. Answers go back on the same connection. A client that went
    /// away while being answered (its catch-up, say) is removed here, as the pusher would: the
    /// frame was handled, so it is no error.
    pub async fn message(&self, connection_id: &str, text: &str) -> Result<(), LiveError> {
        match self.answer(connection_id, text).await {
            Err(LiveError::Send(SendError::Gone(_))) => {
                self.store.remove_connection(connection_id).await?;
                Ok(())
            }
            other => other,
        }
    }

    async fn answer(&self, connection_id: &str, text: &str) -> Result<(), LiveError> {
        let msg = match ClientMessage::parse(text) {
            Ok(m) => m,
            Err(why) => return self.tell(connection_id, &LiveEvent::error(why, None)).await,
        };
        match msg {
            ClientMessage::Unsubscribe { job_id } => {
                self.store.unsubscribe(connection_id, &job_id).await?;
                Ok(())
            }
            ClientMessage::Subscribe { job_id } => self.subscribe(connection_id, &job_id).await,
        }
    }

    async fn subscribe(&self, connection_id: &str, job_id: &str) -> Result<(), LiveError> {
        let tenant = self
            .store
            .get_connection(connection_id)
            .await?
            .map(|c| c.tenant);
        let job = self.find(job_id).await?;
        // Another tenant's job and no job get the same answer, so ids cannot be probed.
        let job = match (tenant, job) {
            (Some(t), Some(job)) if job.owner() == Some(t.as_str()) => (t, job),
            _ => {
                let refusal = LiveEvent::error(NOT_SUBSCRIBABLE, Some(job_id.to_owned()));
                return self.tell(connection_id, &refusal).await;
            }
        };
        let (tenant, job) = job;
        let now = Utc::now();
        let fresh = LiveSnapshot::new(job.kind());
        self.store
            .subscribe(&LiveSubscription {
                connection_id: connection_id.to_owned(),
                tenant,
                job_id: job_id.to_owned(),
                snapshot: fresh.clone(),
                expires_at: now + CONNECTION_TTL,
            })
            .await?;
        self.tell(connection_id, &LiveEvent::subscribed(job_id, job.kind()))
            .await?;
        // The catch-up: a late subscriber is told everything so far, in order.
        self.push_one(connection_id, job_id, &fresh, &job).await?;
        Ok(())
    }

    /// Tells one subscription what it has not been told of `job`, then records that.
    async fn push_one(
        &self,
        connection_id: &str,
        job_id: &str,
        prev: &LiveSnapshot,
        job: &AnyJob,
    ) -> Result<usize, LiveError> {
        let (events, next) = job.events(Some(prev));
        let count = events.len();
        if count == 0 {
            return Ok(0);
        }
        for mut event in events {
            self.fill_links(&mut event).await;
            self.tell(connection_id, &event).await?;
        }
        self.store
            .save_snapshot(connection_id, job_id, prev.seq, &next)
            .await?;
        Ok(count)
    }

    async fn fill_links(&self, event: &mut LiveEvent) {
        let mut urls = HashMap::new();
        for key in event.download_keys() {
            match self.blobs.presign_get(key, LINK_TTL).await {
                Ok(url) => {
                    urls.insert(key.to_owned(), url);
                }
                Err(e) => tracing::warn!(error = %e, key, "no download link"),
            }
        }
        event.fill_downloads(|k| urls.get(k).cloned().unwrap_or_default());
    }

    async fn tell(&self, connection_id: &str, event: &LiveEvent) -> Result<(), LiveError> {
        Ok(self.sender.send(connection_id, &event.to_json()).await?)
    }

    /// A job changed (a stream record of it, its clips included): each subscriber is told what
    /// is new. A gone connection is removed; any other failure is logged and skips only that
    /// subscription. Only reading the job or its subscribers can fail the call.
    pub async fn job_changed(&self, job_id: &str) -> Result<PushReport, StoreError> {
        let mut report = PushReport::default();
        let subs = self.store.subscribers(job_id).await?;
        if subs.is_empty() {
            return Ok(report);
        }
        let Some(job) = self.find(job_id).await? else {
            return Ok(report);
        };
        for sub in subs {
            if job.owner() != Some(sub.tenant.as_str()) {
                continue;
            }
            match self
                .push_one(&sub.connection_id, job_id, &sub.snapshot, &job)
                .await
            {
                Ok(sent) => report.events_sent += sent,
                Err(LiveError::Send(SendError::Gone(_))) => {
                    match self.store.remove_connection(&sub.connection_id).await {
                        Ok(()) => report.connections_removed += 1,
                        Err(e) => {
                            tracing::warn!(error = %e, connection = %sub.connection_id,
                                "a gone connection could not be removed");
                            report.failures += 1;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, connection = %sub.connection_id, job_id,
                        "live progress not told to one subscriber");
                    report.failures += 1;
                }
            }
        }
        Ok(report)
    }
}

/// Connections and subscriptions in memory: for one process (`vidpipe serve`) and tests.
#[derive(Default)]
pub struct MemoryLiveStore {
    inner: Mutex<Memory>,
}

#[derive(Default)]
struct Memory {
    connections: HashMap<String, LiveConnection>,
    /// (job id, connection id) -> subscription
    subscriptions: HashMap<(String, String), LiveSubscription>,
}

fn expired(at: DateTime<Utc>) -> bool {
    at <= Utc::now()
}

fn refuse_empty(what: &str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() {
        return Err(StoreError::backend(
            format!("an empty {what}"),
            vidpipe_domain::ErrorClass::Permanent,
            std::io::Error::other("empty id"),
        ));
    }
    Ok(())
}

#[async_trait]
impl LiveStore for MemoryLiveStore {
    async fn put_connection(&self, c: &LiveConnection) -> Result<(), StoreError> {
        refuse_empty("connection id", &c.id)?;
        let mut m = self.inner.lock().expect("live store lock");
        m.connections.insert(c.id.clone(), c.clone());
        Ok(())
    }

    async fn get_connection(&self, id: &str) -> Result<Option<LiveConnection>, StoreError> {
        refuse_empty("connection id", id)?;
        let m = self.inner.lock().expect("live store lock");
        Ok(m.connections
            .get(id)
            .filter(|c| !expired(c.expires_at))
            .cloned())
    }

    async fn remove_connection(&self, id: &str) -> Result<(), StoreError> {
        refuse_empty("connection id", id)?;
        let mut m = self.inner.lock().expect("live store lock");
        m.connections.remove(id);
        m.subscriptions.retain(|(_, c), _| c != id);
        Ok(())
    }

    async fn subscribe(&self, sub: &LiveSubscription) -> Result<(), StoreError> {
        refuse_empty("connection id", &sub.connection_id)?;
        refuse_empty("job id", &sub.job_id)?;
        let mut m = self.inner.lock().expect("live store lock");
        m.subscriptions
            .insert((sub.job_id.clone(), sub.connection_id.clone()), sub.clone());
        Ok(())
    }

    async fn unsubscribe(&self, connection_id: &str, job_id: &str) -> Result<(), StoreError> {
        refuse_empty("connection id", connection_id)?;
        refuse_empty("job id", job_id)?;
        let mut m = self.inner.lock().expect("live store lock");
        m.subscriptions
            .remove(&(job_id.to_owned(), connection_id.to_owned()));
        Ok(())
    }

    async fn subscribers(&self, job_id: &str) -> Result<Vec<LiveSubscription>, StoreError> {
        refuse_empty("job id", job_id)?;
        let m = self.inner.lock().expect("live store lock");
        Ok(m.subscriptions
            .values()
            .filter(|s| s.job_id == job_id && !expired(s.expires_at))
            .cloned()
            .collect())
    }

    async fn save_snapshot(
        &self,
        connection_id: &str,
        job_id: &str,
        expected_seq: u64,
        snapshot: &LiveSnapshot,
    ) -> Result<(), StoreError> {
        refuse_empty("connection id", connection_id)?;
        refuse_empty("job id", job_id)?;
        let mut m = self.inner.lock().expect("live store lock");
        match m
            .subscriptions
            .get_mut(&(job_id.to_owned(), connection_id.to_owned()))
        {
            Some(sub) if sub.snapshot.seq == expected_seq => {
                sub.snapshot = snapshot.clone();
                Ok(())
            }
            _ => Err(StoreError::Conflict(format!(
                "the subscription of {connection_id} to {job_id} moved past seq {expected_seq} \
                 or is gone"
            ))),
        }
    }
}

//! `ws://HOST:PORT/v1/live`: the stack's live-progress socket on one machine, with the same
//! messages (`vidpipe_domain::events`). Each subscription keeps the [`LiveSnapshot`] of what it
//! was told; a job's record is read again when the runner or the processing tasks say it may
//! have changed (their broadcast channels), and at the latest every [`RECHECK`], which catches
//! what no task announces (a cancel through the API, a record written by another process). The
//! events are the domain's functions of the snapshot and the record, so the story is ordered,
//! its percent never goes down, and nothing is told twice.
//!
//! A subscribe names a job of either kind; a job of another tenant and no job at all get the
//! same `error`, so ids cannot be probed.

use crate::Shared;
use crate::access::LOCAL_TENANT;
use crate::files::Files;
use crate::processing::LocalProcessing;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use vidpipe_domain::events::{
    ClientMessage, JobKind, LiveEvent, LiveSnapshot, NOT_SUBSCRIBABLE, generation_events,
    processing_events,
};
use vidpipe_domain::job::JobId;
use vidpipe_domain::ports::ProcessStore;
use vidpipe_pipeline::RunEvent;
use vidpipe_pipeline::local::LocalStack;

/// The longest a subscribed job goes without being read again.
pub const RECHECK: Duration = Duration::from_secs(2);
/// Subscriptions one socket may hold, so one client cannot make the server read without bound.
pub const MAX_SUBSCRIPTIONS: usize = 64;
/// How long download links in `completed` events work (as the API's).
const LINK_TTL: Duration = vidpipe_pipeline::uploads::DOWNLOAD_TTL;

pub struct Live {
    stack: Arc<LocalStack>,
    processing: Arc<LocalProcessing>,
    files: Arc<Files>,
    closing: watch::Sender<bool>,
}

impl Live {
    pub fn new(
        stack: Arc<LocalStack>,
        processing: Arc<LocalProcessing>,
        files: Arc<Files>,
    ) -> Self {
        let (closing, _) = watch::channel(false);
        Live {
            stack,
            processing,
            files,
            closing,
        }
    }

    /// Tells every open socket to close (shutdown).
    pub fn close_all(&self) {
        let _ = self.closing.send(true);
    }

    /// The job's current events for a subscriber told `prev`; `None` when the job is not the
    /// local tenant's (or not there).
    async fn read(
        &self,
        job_id: &str,
        kind: JobKind,
        prev: Option<&LiveSnapshot>,
    ) -> Option<(Vec<LiveEvent>, LiveSnapshot)> {
        let (mut events, snapshot) = match kind {
            JobKind::Generation => {
                let id = JobId::parse(job_id).ok()?;
                let job = self.stack.service().get(LOCAL_TENANT, &id).await.ok()??;
                generation_events(prev, &job)
            }
            JobKind::Processing => {
                let mut job = self
                    .stack
                    .store()
                    .get_process(job_id)
                    .await
                    .ok()?
                    .filter(|j| j.owner() == Some(LOCAL_TENANT))?;
                if job.step.is_none() {
                    job.step = self.processing.step_of(&job);
                }
                processing_events(prev, &job)
            }
        };
        for e in &mut events {
            e.fill_downloads(|key| self.files.signed_get(key, LINK_TTL));
        }
        Some((events, snapshot))
    }

    /// Which kind of job `id` is, if it is the local tenant's.
    async fn find(&self, id: &str) -> Option<JobKind> {
        if let Ok(job_id) = JobId::parse(id)
            && matches!(
                self.stack.service().get(LOCAL_TENANT, &job_id).await,
                Ok(Some(_))
            )
        {
            return Some(JobKind::Generation);
        }
        match self.stack.store().get_process(id).await {
            Ok(Some(j)) if j.owner() == Some(LOCAL_TENANT) => Some(JobKind::Processing),
            _ => None,
        }
    }
}

#[derive(serde::Deserialize)]
pub struct SocketQuery {
    token: Option<String>,
}

/// The upgrade, after the same sign-in as the API (the token may come as `?token=` or a
/// `bearer.<token>` subprotocol, since a browser cannot set headers on a socket).
pub async fn upgrade(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<SocketQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err(refused) = shared.access.check_socket(&headers, query.token.as_deref()) {
        return (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Bearer")],
            refused.to_string(),
        )
            .into_response();
    }
    // A browser that offered the token as a subprotocol needs it chosen back, or it drops the
    // connection.
    let offered = crate::access::subprotocol_token(&headers).map(|t| format!("bearer.{t}"));
    let ws = match offered {
        Some(p) => ws.protocols([p]),
        None => ws,
    };
    let live = shared.live.clone();
    ws.on_upgrade(move |socket| async move { run(live, socket).await })
}

struct Subscription {
    kind: JobKind,
    snapshot: Option<LiveSnapshot>,
}

async fn run(live: Arc<Live>, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let mut runs = live.stack.runner().subscribe();
    let mut records = live.processing.subscribe();
    let mut closing = live.closing.subscribe();
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Ordered, so a recheck sends jobs' events in a stable order.
    let mut subs: BTreeMap<String, Subscription> = BTreeMap::new();
    loop {
        // What to read again this turn: `None` for nothing, `Some(None)` for every job.
        let mut changed: Option<Option<String>> = None;
        tokio::select! {
            msg = rx.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let replies = handle(&live, &mut subs, &text).await;
                if send_all(&mut tx, replies).await.is_err() {
                    break;
                }
                continue;
            }
            event = runs.recv() => match event {
                Ok(e) => changed = Some(run_event_job(&e)),
                Err(broadcast::error::RecvError::Lagged(_)) => changed = Some(None),
                Err(broadcast::error::RecvError::Closed) => {}
            },
            id = records.recv() => match id {
                Ok(id) => changed = Some(Some(id)),
                Err(broadcast::error::RecvError::Lagged(_)) => changed = Some(None),
                Err(broadcast::error::RecvError::Closed) => {}
            },
            _ = recheck.tick() => changed = Some(None),
            _ = closing.changed() => {
                let _ = tx.send(Message::Close(None)).await;
                break;
            }
        }
        let Some(which) = changed else { continue };
        // Coalesce: every notice already queued is folded into this one read per job, so a
        // burst of progress reports costs one read, not one per report.
        let mut wanted: Option<std::collections::BTreeSet<String>> =
            which.map(|id| [id].into_iter().collect());
        loop {
            let next = match runs.try_recv() {
                Ok(e) => run_event_job(&e),
                Err(broadcast::error::TryRecvError::Lagged(_)) => None,
                Err(_) => match records.try_recv() {
                    Ok(id) => Some(id),
                    Err(broadcast::error::TryRecvError::Lagged(_)) => None,
                    Err(_) => break,
                },
            };
            match (next, wanted.as_mut()) {
                (Some(id), Some(set)) => {
                    set.insert(id);
                }
                (None, _) => wanted = None,
                (Some(_), None) => {}
            }
        }
        let ids: Vec<String> = match wanted {
            Some(set) => set.into_iter().filter(|id| subs.contains_key(id)).collect(),
            None => subs.keys().cloned().collect(),
        };
        if ids.is_empty() {
            continue;
        }
        let mut out = Vec::new();
        for id in ids {
            let Some(sub) = subs.get_mut(&id) else {
                continue;
            };
            // A finished job has nothing more to tell.
            if sub.snapshot.as_ref().is_some_and(|s| s.outcome.is_some())
                && sub.kind == JobKind::Generation
            {
                continue;
            }
            if let Some((events, snapshot)) = live.read(&id, sub.kind, sub.snapshot.as_ref()).await
            {
                sub.snapshot = Some(snapshot);
                out.extend(events);
            }
        }
        if send_all(&mut tx, out).await.is_err() {
            break;
        }
    }
}

/// The job a runner event is about.
fn run_event_job(e: &RunEvent) -> Option<String> {
    let id = match e {
        RunEvent::Stage { job_id, .. }
        | RunEvent::ClipStarted { job_id, .. }
        | RunEvent::ClipRetrying { job_id, .. }
        | RunEvent::ClipWaiting { job_id, .. }
        | RunEvent::ClipFinished { job_id, .. }
        | RunEvent::ComposeProgress { job_id, .. }
        | RunEvent::Finished { job_id, .. } => job_id,
    };
    Some(id.to_string())
}

/// Answers one client message: the ack and the catch-up of a subscribe, or an error.
async fn handle(
    live: &Live,
    subs: &mut BTreeMap<String, Subscription>,
    text: &str,
) -> Vec<LiveEvent> {
    match ClientMessage::parse(text) {
        Err(why) => vec![LiveEvent::error(why, None)],
        Ok(ClientMessage::Unsubscribe { job_id }) => {
            subs.remove(&job_id);
            Vec::new()
        }
        Ok(ClientMessage::Subscribe { job_id }) => {
            if !subs.contains_key(&job_id) && subs.len() >= MAX_SUBSCRIPTIONS {
                return vec![LiveEvent::error(
                    format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection"),
                    Some(job_id),
                )];
            }
            let Some(kind) = live.find(&job_id).await else {
                return vec![LiveEvent::error(NOT_SUBSCRIBABLE, Some(job_id))];
            };
            // A repeated subscribe starts the story again, as a new subscription would.
            let mut out = vec![LiveEvent::subscribed(job_id.clone(), kind)];
            let snapshot = match live.read(&job_id, kind, None).await {
                Some((events, snapshot)) => {
                    out.extend(events);
                    Some(snapshot)
                }
                None => None,
            };
            subs.insert(job_id, Subscription { kind, snapshot });
            out
        }
    }
}

async fn send_all<S>(tx: &mut S, events: Vec<LiveEvent>) -> Result<(), axum::Error>
where
    S: futures_util::Sink<Message, Error = axum::Error> + Unpin,
{
    for e in events {
        tx.feed(Message::Text(e.to_json().into())).await?;
    }
    tx.flush().await
}

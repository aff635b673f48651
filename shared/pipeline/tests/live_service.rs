//! The live-progress service over in-process adapters (SQLite records, filesystem blobs, the
//! memory live store) and a recording sender: subscribe and catch up, a job's changes told in
//! order with download links, another tenant refused as no job is, a gone connection removed
//! without holding the job up, and a change told twice sending nothing new.

use async_trait::async_trait;
use chrono::Utc;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use vidpipe_domain::events::LiveEvent;
use vidpipe_domain::job::{ClipRecord, ClipStatus, Job, JobStatus, Outputs};
use vidpipe_domain::ports::{JobStore, LiveStore};
use vidpipe_domain::request::GenerationRequestBody;
use vidpipe_pipeline::embedded::{FsBlobStore, SqliteJobStore};
use vidpipe_pipeline::live::{Live, LiveSender, MemoryLiveStore, SendError};

/// A well-formed generation id no job has.
const NO_SUCH_JOB: &str = "job_0192f0d6a0b37c3e8d5e1f2a3b4c5d6e";

#[derive(Default)]
struct Recorder {
    frames: Mutex<Vec<(String, LiveEvent)>>,
    gone: Mutex<HashSet<String>>,
}

#[async_trait]
impl LiveSender for Recorder {
    async fn send(&self, connection_id: &str, text: &str) -> Result<(), SendError> {
        if self.gone.lock().unwrap().contains(connection_id) {
            return Err(SendError::Gone(connection_id.to_owned()));
        }
        let event: LiveEvent = serde_json::from_str(text).expect("a frame parses as an event");
        self.frames
            .lock()
            .unwrap()
            .push((connection_id.to_owned(), event));
        Ok(())
    }
}

impl Recorder {
    fn of(&self, connection: &str) -> Vec<LiveEvent> {
        self.frames
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, _)| c == connection)
            .map(|(_, e)| e.clone())
            .collect()
    }
}

struct World {
    live: Live,
    jobs: Arc<SqliteJobStore>,
    store: Arc<MemoryLiveStore>,
    sent: Arc<Recorder>,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let jobs = Arc::new(SqliteJobStore::open_in_memory().unwrap());
    let store = Arc::new(MemoryLiveStore::default());
    let sent = Arc::new(Recorder::default());
    let live = Live {
        store: store.clone(),
        jobs: jobs.clone(),
        processes: jobs.clone(),
        blobs: Arc::new(FsBlobStore::new(dir.path()).unwrap()),
        sender: sent.clone(),
    };
    World {
        live,
        jobs,
        store,
        sent,
        _dir: dir,
    }
}

fn request() -> vidpipe_domain::GenerationRequest {
    let body: GenerationRequestBody = serde_json::from_value(serde_json::json!({
        "prompt": "A fox wakes. It hunts.", "duration_seconds": 10, "clip_count": 2,
        "aspect_ratio": "16:9"
    }))
    .unwrap();
    body.validate().unwrap()
}

/// Moves the stored job through `f` and tells the service, as the pusher would on a stream record.
async fn change(w: &World, job: &mut Job, f: impl FnOnce(&Job) -> Job) {
    let next = f(job);
    for clip in &next.clips {
        w.jobs.put_clip(&next.id, clip).await.unwrap();
    }
    *job = w.jobs.save(&next).await.unwrap();
    w.live.job_changed(job.id.as_str()).await.unwrap();
}

fn types(events: &[LiveEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            LiveEvent::Stage { stage, .. } => format!("stage:{stage}"),
            LiveEvent::Clip { index, status, .. } => format!("clip:{index}:{status:?}"),
            LiveEvent::Progress { percent, .. } => format!("progress:{percent}"),
            other => other.type_name().to_owned(),
        })
        .collect()
}

#[tokio::test]
async fn a_subscriber_is_told_the_whole_generation_in_order() {
    let w = world();
    let mut job = w
        .jobs
        .create(&Job::new("alice", request(), None, Utc::now()))
        .await
        .unwrap();
    let id = job.id.to_string();
    w.live.connect("c-alice", "alice").await.unwrap();
    w.live.connect("c-mallory", "mallory").await.unwrap();
    w.live.connect("c-gone", "alice").await.unwrap();
    let subscribe = format!(r#"{{"action":"subscribe","job_id":"{id}"}}"#);
    w.live.message("c-alice", &subscribe).await.unwrap();
    w.live.message("c-mallory", &subscribe).await.unwrap();
    w.live.message("c-gone", &subscribe).await.unwrap();
    let nobody = format!(r#"{{"action":"subscribe","job_id":"{NO_SUCH_JOB}"}}"#);
    w.live.message("c-mallory", &nobody).await.unwrap();
    // The browser went away without a $disconnect.
    w.sent.gone.lock().unwrap().insert("c-gone".into());

    change(&w, &mut job, |j| {
        j.transition(JobStatus::Planning, Utc::now()).unwrap()
    })
    .await;
    change(&w, &mut job, |j| {
        let mut n = j.transition(JobStatus::Generating, Utc::now()).unwrap();
        n.clips = (0..2)
            .map(|i| ClipRecord::pending(i, "procedural", 150, Utc::now()))
            .collect();
        n
    })
    .await;
    for i in 0..2 {
        change(&w, &mut job, |j| {
            let mut n = j.clone();
            n.clips[i].status = ClipStatus::Done;
            n
        })
        .await;
        // The stream delivers a record twice: nothing new the second time.
        w.live.job_changed(&id).await.unwrap();
    }
    change(&w, &mut job, |j| {
        j.transition(JobStatus::Composing, Utc::now()).unwrap()
    })
    .await;
    change(&w, &mut job, |j| {
        let mut n = j.transition(JobStatus::Completed, Utc::now()).unwrap();
        n.outputs = Some(Outputs {
            final_key: format!("compositions/{id}/final.mp4"),
            thumbnail_key: format!("compositions/{id}/thumbnail.jpg"),
            timeline_key: format!("compositions/{id}/timeline.json"),
            metadata_key: format!("compositions/{id}/metadata.json"),
            duration_seconds: 10.0,
            size_bytes: 1,
        });
        n
    })
    .await;

    let told = w.sent.of("c-alice");
    assert_eq!(
        types(&told),
        [
            "subscribed",
            "progress:0",
            "stage:planning",
            "stage:generating",
            "clip:0:Pending",
            "clip:1:Pending",
            "progress:5",
            "clip:0:Done",
            "progress:37.5",
            "clip:1:Done",
            "progress:70",
            "stage:composing",
            "progress:100",
            "completed",
        ]
    );
    let seqs: Vec<u64> = told.iter().map(LiveEvent::seq).collect();
    assert_eq!(seqs, (0..told.len() as u64).collect::<Vec<_>>());
    let LiveEvent::Completed { downloads, .. } = told.last().unwrap() else {
        panic!()
    };
    assert_eq!(downloads[0].name, "final");
    assert!(
        downloads[0].url.ends_with("final.mp4") && downloads[0].url.starts_with("file://"),
        "{downloads:?}"
    );

    // Another tenant's job and no job: the same refusal, and no subscription.
    let refused = w.sent.of("c-mallory");
    assert_eq!(refused.len(), 2, "{refused:?}");
    for (e, job_id) in refused.iter().zip([id.as_str(), NO_SUCH_JOB]) {
        assert_eq!(
            e,
            &LiveEvent::error("no such job", Some(job_id.to_owned())),
            "{refused:?}"
        );
    }
    // The gone connection was told its catch-up, then removed at the first change.
    assert_eq!(
        types(&w.sent.of("c-gone"))[..2],
        ["subscribed", "progress:0"]
    );
    assert_eq!(w.store.get_connection("c-gone").await.unwrap(), None);
    let subscribers: Vec<_> = w
        .store
        .subscribers(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.connection_id)
        .collect();
    assert_eq!(subscribers, ["c-alice"]);
    assert_eq!(job.status, JobStatus::Completed);
}

#[tokio::test]
async fn a_late_subscriber_catches_up_and_a_bad_frame_is_answered() {
    let w = world();
    let mut job = w
        .jobs
        .create(&Job::new("alice", request(), None, Utc::now()))
        .await
        .unwrap();
    change(&w, &mut job, |j| {
        j.transition(JobStatus::Planning, Utc::now()).unwrap()
    })
    .await;
    change(&w, &mut job, |j| {
        j.fail(vidpipe_domain::names::PLAN_FAILED, "no plan", Utc::now())
            .unwrap()
    })
    .await;
    w.live.connect("late", "alice").await.unwrap();
    let id = job.id.to_string();
    w.live
        .message(
            "late",
            &format!(r#"{{"action":"subscribe","job_id":"{id}"}}"#),
        )
        .await
        .unwrap();
    w.live.message("late", "not json").await.unwrap();
    let told = w.sent.of("late");
    assert_eq!(
        types(&told),
        [
            "subscribed",
            "stage:planning",
            "progress:0",
            "failed",
            "error"
        ]
    );
    w.live
        .message(
            "late",
            &format!(r#"{{"action":"unsubscribe","job_id":"{id}"}}"#),
        )
        .await
        .unwrap();
    assert!(w.store.subscribers(&id).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_client_gone_during_its_catch_up_is_removed_and_the_frame_is_not_an_error() {
    let w = world();
    let job = w
        .jobs
        .create(&Job::new("alice", request(), None, Utc::now()))
        .await
        .unwrap();
    w.live.connect("leaving", "alice").await.unwrap();
    w.sent.gone.lock().unwrap().insert("leaving".to_owned());
    let id = job.id.to_string();
    w.live
        .message(
            "leaving",
            &format!(r#"{{"action":"subscribe","job_id":"{id}"}}"#),
        )
        .await
        .expect("a gone client is removed, not failed");
    assert!(w.store.get_connection("leaving").await.unwrap().is_none());
    assert!(w.store.subscribers(&id).await.unwrap().is_empty());
}

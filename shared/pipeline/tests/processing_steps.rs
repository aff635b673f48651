//! The upload-processing steps against a fake media engine (the `RenditionEngine` port) over the
//! embedded stores: what each step asks of the engine, the record's guarded transitions (a late
//! failure never overwrites a success, even racing it), scratch folders gone after a failing
//! step, and failure reasons free of signed URLs and server paths. No ffmpeg runs here; the
//! real engine is judged by ffprobe and pixels in the end-to-end suites.

use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use vidpipe_domain::media::{
    MediaSource, ProbeInfo, RenderJob, Span, StreamInfo, StreamKind, Watermark,
};
use vidpipe_domain::names;
use vidpipe_domain::ports::{BlobStore, MediaError, Notifier, NotifyError, RenditionEngine};
use vidpipe_domain::processing::{
    ProcessEvent, ProcessSettings, ProcessStatus, RenditionSet, Route, SourceRef, WatermarkSpec,
};
use vidpipe_domain::steps::ProcessingStep;
use vidpipe_pipeline::embedded::{FsBlobStore, SqliteJobStore};
use vidpipe_pipeline::processing::{
    self, ProcessDeps, ProcessFailureInput, ProcessInput, ProcessProgress,
};

/// One render as the engine was asked for it: the span, each target's box, and whether the
/// thumbnail rode along.
type Render = (Span, Vec<(u32, u32)>, bool);

/// What the fake engine was asked to do, and how it should fail.
#[derive(Default)]
struct Script {
    renders: Vec<Render>,
    /// A probe of the source answers this instead of a video.
    probe_error: Option<MediaError>,
    /// Renders write their outputs, then fail with this.
    render_error: Option<MediaError>,
}

#[derive(Default, Clone)]
struct FakeMedia(Arc<Mutex<Script>>);

fn stream(kind: StreamKind, codec: &str, w: u32, h: u32) -> StreamInfo {
    StreamInfo {
        index: 0,
        kind,
        codec: codec.into(),
        profile: None,
        width: (w > 0).then_some(w),
        height: (h > 0).then_some(h),
        pix_fmt: Some("yuv420p".into()),
        frame_rate: Some(30.0),
        avg_frame_rate: Some(30.0),
        rotation: 0,
        frames: Some(300),
        duration_seconds: Some(20.0),
        bit_rate: Some(4_000_000),
        sample_rate: None,
        channels: None,
    }
}

#[async_trait]
impl RenditionEngine for FakeMedia {
    async fn probe_source(&self, source: &MediaSource) -> Result<ProbeInfo, MediaError> {
        let is_output = source.key.starts_with("processed/");
        if !is_output && let Some(e) = self.0.lock().unwrap().probe_error.take() {
            return Err(e);
        }
        // Outputs are portrait for reels/tiktok, landscape for youtube: the fake reads it from
        // the key, as a real probe would from the file.
        let (w, h) = if source.key.contains("_youtube") || !is_output {
            (1920, 1080)
        } else {
            (1080, 1920)
        };
        Ok(ProbeInfo {
            format_name: "mov,mp4".into(),
            duration_seconds: Some(20.0),
            size_bytes: None,
            bit_rate: None,
            streams: vec![
                stream(StreamKind::Video, "h264", w, h),
                stream(StreamKind::Audio, "aac", 0, 0),
            ],
        })
    }

    fn decode_watermark(
        &self,
        _bytes: &[u8],
        spec: WatermarkSpec,
    ) -> Result<Watermark, MediaError> {
        Ok(Watermark {
            width: 2,
            height: 2,
            rgba: vec![255; 16],
            spec,
        })
    }

    async fn render(
        &self,
        job: &RenderJob<'_>,
        _progress: Option<&(dyn Fn(f64) + Send + Sync)>,
    ) -> Result<(), MediaError> {
        for t in job.targets {
            std::fs::write(&t.output, b"rendered")?;
        }
        if let Some(th) = job.thumbnail {
            std::fs::write(&th.output, b"jpeg")?;
        }
        let mut script = self.0.lock().unwrap();
        script.renders.push((
            job.span,
            job.targets
                .iter()
                .map(|t| (t.fit.width, t.fit.height))
                .collect(),
            job.thumbnail.is_some(),
        ));
        match script.render_error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn encode_audio(
        &self,
        _: &MediaSource,
        _: Span,
        _: bool,
        _: u32,
        output: &Path,
    ) -> Result<(), MediaError> {
        Ok(std::fs::write(output, b"aac")?)
    }

    async fn concat(
        &self,
        _: &[PathBuf],
        _: &Path,
        _: f64,
        output: &Path,
    ) -> Result<(), MediaError> {
        Ok(std::fs::write(output, b"joined")?)
    }

    async fn thumbnail(
        &self,
        _: &MediaSource,
        _: f64,
        _: (u32, u32),
        output: &Path,
    ) -> Result<(), MediaError> {
        Ok(std::fs::write(output, b"jpeg")?)
    }
}

#[derive(Default, Clone)]
struct Recorded(Arc<Mutex<Vec<ProcessEvent>>>);

#[async_trait]
impl Notifier for Recorded {
    async fn notify(&self, event: &ProcessEvent) -> Result<(), NotifyError> {
        self.0.lock().unwrap().push(event.clone());
        Ok(())
    }
}

struct Bench {
    _dir: tempfile::TempDir,
    deps: ProcessDeps,
    media: FakeMedia,
    told: Recorded,
    source: SourceRef,
}

async fn bench() -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Arc::new(FsBlobStore::new(dir.path().join("blobs")).unwrap());
    blobs
        .put_bytes("raw/acme/launch/take.mp4", vec![1; 4096], "video/mp4")
        .await
        .unwrap();
    blobs
        .put_bytes("config/watermark.png", vec![1; 16], "image/png")
        .await
        .unwrap();
    let (media, told) = (FakeMedia::default(), Recorded::default());
    let deps = ProcessDeps {
        records: Arc::new(SqliteJobStore::open(dir.path().join("db.sqlite3")).unwrap()),
        uploads: None,
        blobs,
        notifier: Arc::new(told.clone()),
        media: Arc::new(media.clone()),
        settings: ProcessSettings::default(),
        renditions: RenditionSet::default_set(),
        watermark_key: "config/watermark.png".into(),
        worker_configured: false,
        worker_size: None,
        memory_mb: None,
        scratch_dir: dir.path().join("scratch"),
        webhooks: None,
    };
    let source = SourceRef {
        bucket: "local".into(),
        key: "raw/acme/launch/take.mp4".into(),
        version: Some("v1".into()),
    };
    Bench {
        _dir: dir,
        deps,
        media,
        told,
        source,
    }
}

#[tokio::test]
async fn a_single_pass_asks_the_engine_for_one_render_of_every_encoding_then_publishes() {
    let b = bench().await;
    let probed = processing::probe(
        &b.deps,
        &ProcessInput {
            source: b.source.clone(),
        },
    )
    .await
    .expect("probe");
    assert_eq!(probed.route, Route::SinglePass);
    // 20 s, less the 3 s intro and 5 s outro, at 30 fps.
    assert_eq!(probed.window.frames, 360);
    let rendered = processing::transcode(&b.deps, &probed, &|_| {})
        .await
        .expect("transcode");
    {
        let script = b.media.0.lock().unwrap();
        let [(span, boxes, with_thumbnail)] = script.renders.as_slice() else {
            panic!("one render for the whole pass, got {:?}", script.renders);
        };
        assert_eq!((span.input_offset, span.frames), (3.0, 360));
        // youtube, then the encode reels and tiktok share.
        assert_eq!(boxes, &[(1920, 1080), (1080, 1920)]);
        assert!(with_thumbnail, "the pass writes the thumbnail too");
    }
    let steps: Vec<ProcessingStep> = rendered.timings.iter().map(|t| t.step).collect();
    assert_eq!(steps, [ProcessingStep::Probe, ProcessingStep::Transcode]);

    let event = processing::publish(&b.deps, &rendered)
        .await
        .expect("publish");
    assert_eq!(event.status, ProcessStatus::Succeeded);
    for r in ["youtube", "reels", "tiktok"] {
        let key = format!("processed/acme/launch/take_{r}.mp4");
        assert!(event.outputs.contains(&key), "{key} in {:?}", event.outputs);
        let bytes = b.deps.blobs.get_bytes(&key).await.expect(&key);
        assert_eq!(bytes, b"rendered");
    }
    let job = b.deps.records.get_process(&b.source.id()).await.unwrap();
    let job = job.expect("the record");
    assert_eq!(job.status, ProcessStatus::Succeeded);
    assert_eq!(job.outputs.len(), 3);
    assert_eq!(b.told.0.lock().unwrap().len(), 1, "one notification");
}

fn late_failure(source: &SourceRef) -> ProcessFailureInput {
    ProcessFailureInput {
        source: source.clone(),
        error_type: names::STATES_TIMEOUT.into(),
        cause: "Task timed out after 300.00 seconds".into(),
    }
}

/// A Publish that succeeded but whose response was lost, then timed out: the Catch runs
/// RecordFailure, which must leave the success standing and notify nothing new.
#[tokio::test]
async fn a_late_record_failure_leaves_a_succeeded_job_succeeded() {
    let b = bench().await;
    let input = ProcessInput {
        source: b.source.clone(),
    };
    let probed = processing::probe(&b.deps, &input).await.unwrap();
    let rendered = processing::transcode(&b.deps, &probed, &|_| {})
        .await
        .unwrap();
    let published = processing::publish(&b.deps, &rendered).await.unwrap();
    let before = b.deps.records.get_process(&b.source.id()).await.unwrap();

    let event = processing::record_failure(&b.deps, &late_failure(&b.source))
        .await
        .expect("record_failure answers");
    assert_eq!(
        event, published,
        "the success is returned, for the state machine to notify"
    );
    let after = b.deps.records.get_process(&b.source.id()).await.unwrap();
    assert_eq!(after, before, "the record is untouched");
    assert_eq!(after.unwrap().error, None);
    let told = b.told.0.lock().unwrap();
    assert_eq!(told.len(), 1, "only the success was notified: {told:?}");
    assert_eq!(told[0].status, ProcessStatus::Succeeded);
}

/// The same two writers racing from one read of the record: whichever order the store sees,
/// a publish that returned Ok always leaves the record succeeded.
#[tokio::test]
async fn racing_publish_and_record_failure_never_lose_a_reported_success() {
    for round in 0..6 {
        let b = bench().await;
        let input = ProcessInput {
            source: b.source.clone(),
        };
        let probed = processing::probe(&b.deps, &input).await.unwrap();
        let rendered = processing::transcode(&b.deps, &probed, &|_| {})
            .await
            .unwrap();
        let failure = late_failure(&b.source);
        let (published, recorded) = tokio::join!(
            processing::publish(&b.deps, &rendered),
            processing::record_failure(&b.deps, &failure)
        );
        let job = b
            .deps
            .records
            .get_process(&b.source.id())
            .await
            .unwrap()
            .unwrap();
        let recorded = recorded.expect("record_failure never fails over a race");
        match published {
            Ok(_) => {
                assert_eq!(job.status, ProcessStatus::Succeeded, "round {round}");
                assert_eq!(recorded.status, ProcessStatus::Succeeded, "round {round}");
            }
            // RecordFailure won: the run ended as failed, and a publish arriving after an
            // ended failure is refused rather than contradicting what was notified.
            Err(e) => {
                assert_eq!(e.error_type(), names::WRONG_STATE, "round {round}: {e}");
                assert_eq!(job.status, ProcessStatus::Failed, "round {round}");
            }
        }
    }
}

#[tokio::test]
async fn a_failing_step_leaves_no_scratch_folder() {
    let b = bench().await;
    let input = ProcessInput {
        source: b.source.clone(),
    };
    let probed = processing::probe(&b.deps, &input).await.unwrap();
    b.media.0.lock().unwrap().render_error = Some(MediaError::InvalidInput("broken".into()));
    let err = processing::transcode(&b.deps, &probed, &|_| {})
        .await
        .expect_err("the render fails");
    assert_eq!(err.error_type(), names::INVALID_MEDIA);
    assert_eq!(b.media.0.lock().unwrap().renders.len(), 1, "the render ran");
    let scratch = b.deps.scratch_dir.join("process").join(&probed.source_id);
    let left: Vec<_> = walk(&scratch);
    assert!(left.is_empty(), "scratch left behind: {left:?}");
    assert!(!scratch.join("single").exists());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() { walk(&p) } else { vec![p] }
        })
        .collect()
}

/// A tool that echoes a presigned URL and a scratch path in its error: the recorded reason and
/// the notification name the object by key, with no signature, query or server path.
#[tokio::test]
async fn failure_reasons_carry_no_signed_url_or_scratch_path() {
    let b = bench().await;
    let scratch = b.deps.scratch_dir.display().to_string();
    b.media.0.lock().unwrap().probe_error = Some(MediaError::InvalidInput(format!(
        "http://127.0.0.1:9000/media/raw/acme/launch/take.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=0123abcd&x-id=GetObject: \
         Invalid data found when processing input (see {scratch}/process/x/probe.log)"
    )));
    let job = processing::run_embedded(
        &b.deps,
        &ProcessInput {
            source: b.source.clone(),
        },
        1,
        Arc::new(|_: ProcessProgress| {}),
    )
    .await
    .expect("the failure is recorded");
    assert_eq!(job.status, ProcessStatus::Failed);
    let failure = job.error.expect("a reason");
    assert_eq!(failure.error, names::SOURCE_REJECTED);
    let told = b.told.0.lock().unwrap();
    let notified = serde_json::to_string(&told[..]).unwrap();
    for text in [failure.reason.as_str(), notified.as_str()] {
        for leak in [
            "X-Amz-",
            "?x-id=",
            "x-id=GetObject",
            scratch.as_str(),
            "127.0.0.1",
        ] {
            assert!(!text.contains(leak), "{leak:?} leaked into {text}");
        }
    }
    assert!(
        failure.reason.contains("raw/acme/launch/take.mp4"),
        "{}",
        failure.reason
    );
    assert!(failure.reason.contains("probe.log"), "{}", failure.reason);
}

/// Keys with `.` or `..` segments are bad uploads, never server faults: rejected and recorded
/// as `SourceRejected` before any store or tool sees the key.
#[tokio::test]
async fn dot_dot_keys_are_rejected_sources_not_internal_errors() {
    let b = bench().await;
    for key in [
        "raw/acme/hostile/../../../etc/passwd.mp4",
        "raw/../../x.mp4",
        "raw/acme/./launch/x.mp4",
    ] {
        let source = SourceRef {
            key: key.into(),
            ..b.source.clone()
        };
        let err = processing::probe(
            &b.deps,
            &ProcessInput {
                source: source.clone(),
            },
        )
        .await
        .expect_err(key);
        assert_eq!(err.error_type(), names::SOURCE_REJECTED, "{key}: {err}");
        let job = processing::run_embedded(
            &b.deps,
            &ProcessInput { source },
            1,
            Arc::new(|_: ProcessProgress| {}),
        )
        .await
        .expect("recorded");
        let failure = job.error.expect("a reason");
        assert_eq!(failure.error, names::SOURCE_REJECTED, "{key}");
        assert!(
            failure.reason.contains("not a safe object key"),
            "{}",
            failure.reason
        );
    }
    assert!(b.media.0.lock().unwrap().renders.is_empty());
}

/// Each step leaves the record at its live stage, so a subscriber following the record is told
/// every stage in order, a percent that only rises, and the completion with every rendition.
#[tokio::test]
async fn the_steps_record_their_live_stage_for_subscribers() {
    use vidpipe_domain::events::{LiveEvent, LiveSnapshot, processing_events};
    use vidpipe_domain::processing::ProcessStage;
    let b = bench().await;
    let record = || async {
        b.deps
            .records
            .get_process(&b.source.id())
            .await
            .unwrap()
            .unwrap()
    };
    let mut states = Vec::new();
    let probed = processing::probe(
        &b.deps,
        &ProcessInput {
            source: b.source.clone(),
        },
    )
    .await
    .expect("probe");
    states.push(record().await);
    let rendered = processing::transcode(&b.deps, &probed, &|_| {})
        .await
        .expect("transcode");
    states.push(record().await);
    processing::publish(&b.deps, &rendered)
        .await
        .expect("publish");
    states.push(record().await);
    let stages: Vec<Option<ProcessStage>> =
        states.iter().map(|s| s.step.map(|p| p.stage)).collect();
    assert_eq!(
        stages,
        [
            Some(ProcessStage::Probe),
            Some(ProcessStage::Thumbnail),
            Some(ProcessStage::Publish)
        ]
    );
    let mut told: Option<LiveSnapshot> = None;
    let mut events = Vec::new();
    for s in &states {
        let (e, next) = processing_events(told.as_ref(), s);
        events.extend(e);
        told = Some(next);
    }
    let names: Vec<String> = events
        .iter()
        .map(|e| match e {
            LiveEvent::Stage { stage, .. } => stage.clone(),
            LiveEvent::Progress { percent, .. } => format!("{percent}%"),
            LiveEvent::Completed { downloads, .. } => format!(
                "completed:{}",
                downloads
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            other => other.type_name().to_owned(),
        })
        .collect();
    assert_eq!(
        names,
        [
            "probe",
            "0%",
            "trim",
            "watermark",
            "renditions",
            "thumbnail",
            "90%",
            "publish",
            "100%",
            "completed:youtube,reels,tiktok,thumbnail"
        ]
    );
}

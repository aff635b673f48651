//! The AI path on one machine, with fakes at the port: asynchronous providers are submitted and
//! polled (never waited on), a provider that fails for good hands the clip to the next in the
//! chain with the reason on the clip, a repeated request costs no provider call, a cancel stops
//! the calls still running, and an LLM planner's unusable plan gives the rules plan with the
//! reason on the job.

use async_trait::async_trait;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vidpipe_domain::media::ClipSpec;
use vidpipe_domain::plan::{Plan, PlanError, RulesPlanner};
use vidpipe_domain::ports::{
    ClipMedia, ClipProgress, ClipProvider, Planner, ProviderCost, ProviderError,
};
use vidpipe_domain::request::{GenerationRequest, GenerationRequestBody};
use vidpipe_domain::{ClipStatus, JobStatus};
use vidpipe_media::ProceduralProvider;
use vidpipe_pipeline::RunEvent;
use vidpipe_pipeline::local::LocalOptions;
use vidpipe_tests::*;

const OWNER: &str = "local";

fn body(prompt: &str, clips: i64) -> GenerationRequestBody {
    GenerationRequestBody {
        prompt: Some(prompt.into()),
        duration_seconds: Some(5.0),
        aspect_ratio: Some("16:9".into()),
        resolution: Some("720p".into()),
        clip_count: Some(clips),
        ..Default::default()
    }
}

/// Answers "still working" for `polls` polls, then hands over a procedural clip, as a hosted
/// video model would; counts every call.
struct Async {
    polls: u32,
    inner: ProceduralProvider,
    submits: AtomicU32,
    poll_calls: AtomicU32,
    cancelled: Mutex<Vec<String>>,
    seen: Mutex<std::collections::HashMap<String, u32>>,
}

impl Async {
    fn new(polls: u32) -> Self {
        Self {
            polls,
            inner: ProceduralProvider::new(tools()),
            submits: AtomicU32::new(0),
            poll_calls: AtomicU32::new(0),
            cancelled: Mutex::new(Vec::new()),
            seen: Mutex::new(Default::default()),
        }
    }
}

#[async_trait]
impl ClipProvider for Async {
    fn name(&self) -> &str {
        "async-fake"
    }
    async fn submit(
        &self,
        spec: &ClipSpec,
        identity: &str,
        _: &Path,
    ) -> Result<ClipProgress, ProviderError> {
        self.submits.fetch_add(1, Ordering::SeqCst);
        let handle = format!("{identity}|{}", serde_json::to_string(spec).unwrap());
        self.seen.lock().unwrap().insert(handle.clone(), 0);
        Ok(ClipProgress::Pending {
            handle,
            poll_after: Duration::from_millis(10),
        })
    }
    async fn poll(&self, handle: &str, dest: &Path) -> Result<ClipProgress, ProviderError> {
        self.poll_calls.fetch_add(1, Ordering::SeqCst);
        let n = {
            let mut seen = self.seen.lock().unwrap();
            let n = seen.get_mut(handle).expect("a handle from submit");
            *n += 1;
            *n
        };
        if n <= self.polls {
            return Ok(ClipProgress::Pending {
                handle: handle.to_owned(),
                poll_after: Duration::from_millis(10),
            });
        }
        let spec: ClipSpec = serde_json::from_str(handle.split_once('|').unwrap().1).unwrap();
        self.inner.generate(&spec, dest).await?;
        Ok(ClipProgress::Ready {
            media: ClipMedia::Video,
            cost: Some(ProviderCost {
                usd: 0.25,
                basis: "fake".into(),
            }),
        })
    }
    async fn cancel(&self, handle: &str) -> Result<(), ProviderError> {
        self.cancelled.lock().unwrap().push(handle.to_owned());
        Ok(())
    }
}

/// Counts the calls it has running (submitted, not yet ready) and the most ever at once.
struct Gauged {
    inner: Async,
    running: AtomicU32,
    most: AtomicU32,
}

#[async_trait]
impl ClipProvider for Gauged {
    fn name(&self) -> &str {
        "gauged"
    }
    async fn submit(
        &self,
        spec: &ClipSpec,
        identity: &str,
        dest: &Path,
    ) -> Result<ClipProgress, ProviderError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        self.inner.submit(spec, identity, dest).await
    }
    async fn poll(&self, handle: &str, dest: &Path) -> Result<ClipProgress, ProviderError> {
        let out = self.inner.poll(handle, dest).await?;
        if matches!(out, ClipProgress::Ready { .. }) {
            self.running.fetch_sub(1, Ordering::SeqCst);
        }
        Ok(out)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_lease_bounds_calls_across_scenes_and_jobs() {
    let home = tempfile::tempdir().unwrap();
    let fake = Arc::new(Gauged {
        inner: Async::new(1),
        running: AtomicU32::new(0),
        most: AtomicU32::new(0),
    });
    let opts = LocalOptions {
        max_concurrency: 3,
        clip_limits: Some(vidpipe_pipeline::generation::ClipLimits {
            per_provider: 1,
            slot_wait: Duration::from_millis(50),
            ..Default::default()
        }),
        ..options(vec![fake.clone()])
    };
    let stack = stack_with_options(home.path(), opts, None).await;
    let a = stack
        .service()
        .submit(OWNER, &body("One. Two. Three.", 3), None)
        .await
        .unwrap();
    let b = stack
        .service()
        .submit(OWNER, &body("Four. Five.", 2), None)
        .await
        .unwrap();
    for id in [&a.job().id, &b.job().id] {
        let job = stack.orchestrator().wait(id).await.unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    }
    assert_eq!(fake.inner.submits.load(Ordering::SeqCst), 5);
    assert_eq!(fake.most.load(Ordering::SeqCst), 1, "one call at a time");
}

/// Always unavailable: a provider in an outage.
struct Down(AtomicU32);

#[async_trait]
impl ClipProvider for Down {
    fn name(&self) -> &str {
        "down"
    }
    async fn generate(&self, _: &ClipSpec, _: &Path) -> Result<(), ProviderError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(ProviderError::Unavailable("503 from upstream".into()))
    }
}

/// Runs one job of `clips` scenes through the given chain to its end.
async fn run_chain(
    home: &Path,
    chain: Vec<Arc<dyn ClipProvider>>,
    prompt: &str,
    clips: i64,
) -> vidpipe_domain::Job {
    let stack = stack_with_options(home, options(chain), None).await;
    let s = stack
        .service()
        .submit(OWNER, &body(prompt, clips), None)
        .await
        .unwrap();
    stack
        .orchestrator()
        .wait(&s.job().id)
        .await
        .unwrap()
        .unwrap()
}

fn options(providers: Vec<Arc<dyn ClipProvider>>) -> LocalOptions {
    LocalOptions {
        max_concurrency: 2,
        providers,
        ..LocalOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asynchronous_provider_is_submitted_then_polled_until_ready() {
    let home = tempfile::tempdir().unwrap();
    let fake = Arc::new(Async::new(2));
    let stack = stack_with_options(home.path(), options(vec![fake.clone()]), None).await;
    let mut events = stack.runner().subscribe();
    let s = stack
        .service()
        .submit(OWNER, &body("A lighthouse. A storm.", 2), None)
        .await
        .unwrap();
    let job = stack
        .orchestrator()
        .wait(&s.job().id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    assert_eq!(fake.submits.load(Ordering::SeqCst), 2);
    assert_eq!(fake.poll_calls.load(Ordering::SeqCst), 2 * 3);
    let mut waits = 0;
    while let Ok(e) = events.try_recv() {
        if let RunEvent::ClipWaiting { provider, .. } = e {
            assert_eq!(provider, "async-fake");
            waits += 1;
        }
    }
    assert_eq!(
        waits,
        2 * 3,
        "one wait after the submit and each pending poll"
    );
    for clip in &job.clips {
        assert_eq!(clip.status, ClipStatus::Done);
        assert_eq!(clip.provider, "async-fake");
        assert_eq!(clip.handle, None, "a finished call keeps no handle");
        assert_eq!(clip.polls, 3);
        assert_eq!(clip.cost.as_ref().map(|c| c.usd), Some(0.25));
        assert!(clip.fallback.is_none());
    }
    let cost = job.cost.as_ref().expect("a completed job has its cost");
    assert_eq!(cost.provider_usd, 0.5);
    assert_eq!(cost.total_usd, 0.5, "one machine: compute is not billed");
    assert_eq!(cost.memory_mb, None);
    assert_eq!(cost.lines.len(), 2);
    assert_eq!(cost.lines[0].item, "clip 000 (async-fake)");
    let outputs = job.outputs.as_ref().unwrap();
    let fetched: u64 = job.clips.iter().map(|c| c.bytes).sum();
    assert!(fetched > 0);
    assert!(cost.bytes_moved > fetched + outputs.size_bytes);
    assert!(cost.compute_ms["generate_clip"] > 0);
    let metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(stack.blob_path(&outputs.metadata_key)).unwrap())
            .unwrap();
    assert_eq!(metadata["cost"]["provider_usd"], 0.5);
    assert_eq!(metadata["clips"][1]["provider"], "async-fake");
    let final_path = stack.blob_path(&outputs.final_key);
    let facts = probe(&final_path);
    assert!((facts.duration - 5.0).abs() < 0.05, "{}", facts.duration);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_falls_back_to_the_next_provider_and_says_why_on_the_clip() {
    let home = tempfile::tempdir().unwrap();
    let chain: Vec<Arc<dyn ClipProvider>> = vec![
        Arc::new(Refusing),
        Arc::new(ProceduralProvider::new(tools())),
    ];
    let job = run_chain(home.path(), chain, "A quiet forest", 1).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    let clip = &job.clips[0];
    assert_eq!(clip.provider, "procedural");
    assert_eq!(
        clip.fallback.as_deref(),
        Some("refusing: provider rejected the scene: prompt violates policy")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passing_failures_are_retried_on_a_provider_before_falling_back() {
    let home = tempfile::tempdir().unwrap();
    let down = Arc::new(Down(AtomicU32::new(0)));
    let chain: Vec<Arc<dyn ClipProvider>> =
        vec![down.clone(), Arc::new(ProceduralProvider::new(tools()))];
    let job = run_chain(home.path(), chain, "A quiet forest", 1).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    // RetryPolicy::CLIP's four tries on the first provider, then the second.
    assert_eq!(down.0.load(Ordering::SeqCst), 4);
    assert_eq!(job.clips[0].provider, "procedural");
    assert_eq!(
        job.clips[0].fallback.as_deref(),
        Some("down: provider unavailable: 503 from upstream")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identical_second_request_makes_no_provider_call() {
    let home = tempfile::tempdir().unwrap();
    let fake = Arc::new(Async::new(0));
    let stack = stack_with_options(home.path(), options(vec![fake.clone()]), None).await;
    for _ in 0..2 {
        let s = stack
            .service()
            .submit(OWNER, &body("Cached dunes. Cached sky.", 2), None)
            .await
            .unwrap();
        let job = stack
            .orchestrator()
            .wait(&s.job().id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    }
    assert_eq!(fake.submits.load(Ordering::SeqCst), 2, "the first job only");
    assert_eq!(fake.poll_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_mid_generation_cancels_the_running_calls() {
    let home = tempfile::tempdir().unwrap();
    let fake = Arc::new(Async::new(u32::MAX));
    let stack = stack_with_options(home.path(), options(vec![fake.clone()]), None).await;
    let s = stack
        .service()
        .submit(OWNER, &body("Endless rain", 1), None)
        .await
        .unwrap();
    let id = s.job().id.clone();
    for _ in 0..500 {
        if fake.poll_calls.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(fake.poll_calls.load(Ordering::SeqCst) > 0, "never polled");
    let job = stack.service().cancel(OWNER, &id).await.unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    let cancelled = fake.cancelled.lock().unwrap().clone();
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert!(
        cancelled[0].starts_with(&format!("{id}-000|")),
        "{cancelled:?}"
    );
}

/// An LLM that answers with prose, or never answers: the rules plan is used instead.
struct BadLlm(&'static str);

#[async_trait]
impl Planner for BadLlm {
    fn name(&self) -> &str {
        "openai"
    }
    async fn plan(&self, _: &GenerationRequest) -> Result<Plan, PlanError> {
        match self.0 {
            "prose" => Err(PlanError::Invalid(
                "not a plan: expected value at line 1 column 1".into(),
            )),
            _ => Err(PlanError::Unavailable("connection refused".into())),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_llm_plan_gives_the_rules_plan_and_the_job_says_why() {
    for (mode, reason) in [
        (
            "prose",
            "openai: planner returned an unusable plan: not a plan: expected value at line 1 column 1",
        ),
        ("down", "openai: planner unavailable: connection refused"),
    ] {
        let home = tempfile::tempdir().unwrap();
        let opts = LocalOptions {
            planner: Some(Arc::new(BadLlm(mode))),
            ..options(Vec::new())
        };
        let stack = stack_with_options(home.path(), opts, None).await;
        let request = body("One idea. Another idea. A third idea.", 2);
        let s = stack.service().submit(OWNER, &request, None).await.unwrap();
        let job = stack
            .orchestrator()
            .wait(&s.job().id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
        let plan = job.plan.as_ref().unwrap();
        assert_eq!(plan.planner, "rules");
        assert_eq!(plan.fallback.as_deref(), Some(reason));
        let rules = RulesPlanner.plan(&request.validate().unwrap()).unwrap();
        assert_eq!(plan.scenes, rules.scenes);
    }
}

/// An image-to-video model: needs a first frame, and keeps the ones it was given.
struct ImageToVideo {
    inner: ProceduralProvider,
    frames: Mutex<Vec<String>>,
}

#[async_trait]
impl ClipProvider for ImageToVideo {
    fn name(&self) -> &str {
        "i2v"
    }
    fn wants_first_frame(&self) -> bool {
        true
    }
    async fn generate(&self, spec: &ClipSpec, dest: &Path) -> Result<(), ProviderError> {
        let frame = spec.first_frame.clone().expect("a first frame is given");
        self.frames.lock().unwrap().push(frame);
        self.inner.generate(spec, dest).await
    }
}

/// Draws one flat-coloured still per call, as an image model would.
struct Stills {
    png: Vec<u8>,
    calls: AtomicU32,
}

#[async_trait]
impl ClipProvider for Stills {
    fn name(&self) -> &str {
        "stills"
    }
    fn makes_stills(&self) -> bool {
        true
    }
    async fn submit(
        &self,
        _: &ClipSpec,
        _: &str,
        dest: &Path,
    ) -> Result<ClipProgress, ProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::fs::write(dest, &self.png).map_err(|e| ProviderError::Failed(e.to_string()))?;
        Ok(ClipProgress::Ready {
            media: ClipMedia::Image,
            cost: None,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_to_video_model_gets_its_first_frame_from_a_still_provider_of_the_chain() {
    use base64::Engine;
    let home = tempfile::tempdir().unwrap();
    let png = std::fs::read(write_logo(
        &home.path().join("s.png"),
        64,
        36,
        [200, 30, 30],
    ))
    .unwrap();
    let i2v = Arc::new(ImageToVideo {
        inner: ProceduralProvider::new(tools()),
        frames: Mutex::new(Vec::new()),
    });
    let stills = Arc::new(Stills {
        png: png.clone(),
        calls: AtomicU32::new(0),
    });
    let chain: Vec<Arc<dyn ClipProvider>> = vec![
        i2v.clone(),
        stills.clone(),
        Arc::new(ProceduralProvider::new(tools())),
    ];
    let job = run_chain(home.path(), chain, "A red kite. A blue sky.", 2).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    assert!(
        job.clips
            .iter()
            .all(|c| c.provider == "i2v" && c.fallback.is_none())
    );
    assert_eq!(
        stills.calls.load(Ordering::SeqCst),
        2,
        "one still per scene"
    );
    let frames = i2v.frames.lock().unwrap().clone();
    assert_eq!(frames.len(), 2);
    for frame in frames {
        let data = frame
            .strip_prefix("data:image/png;base64,")
            .unwrap_or_else(|| panic!("{}", &frame[..40.min(frame.len())]));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        assert_eq!(bytes, png);
    }

    // Without a still provider the model cannot start: the clip falls back, saying why.
    let home = tempfile::tempdir().unwrap();
    let chain: Vec<Arc<dyn ClipProvider>> = vec![
        Arc::new(ImageToVideo {
            inner: ProceduralProvider::new(tools()),
            frames: Mutex::new(Vec::new()),
        }),
        Arc::new(ProceduralProvider::new(tools())),
    ];
    let job = run_chain(home.path(), chain, "A red kite", 1).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    assert_eq!(job.clips[0].provider, "procedural");
    assert_eq!(
        job.clips[0].fallback.as_deref(),
        Some(
            "i2v: provider rejected the scene: the model needs a first frame: no provider of the \
             chain makes stills (add bedrock-canvas or openai-image)"
        )
    );
}

/// Throttles its first call with a `Retry-After`, then renders.
struct ThrottledOnce {
    calls: AtomicU32,
    inner: ProceduralProvider,
}

#[async_trait]
impl ClipProvider for ThrottledOnce {
    fn name(&self) -> &str {
        "throttled-once"
    }
    async fn generate(&self, spec: &ClipSpec, dest: &Path) -> Result<(), ProviderError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(ProviderError::Throttled {
                retry_after: Some(Duration::from_secs(2)),
            });
        }
        self.inner.generate(spec, dest).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_hint_is_waited_out_like_a_poll() {
    let home = tempfile::tempdir().unwrap();
    let fake = Arc::new(ThrottledOnce {
        calls: AtomicU32::new(0),
        inner: ProceduralProvider::new(tools()),
    });
    let stack = stack_with_options(home.path(), options(vec![fake.clone()]), None).await;
    let mut events = stack.runner().subscribe();
    let s = stack
        .service()
        .submit(OWNER, &body("A slow queue", 1), None)
        .await
        .unwrap();
    let job = stack
        .orchestrator()
        .wait(&s.job().id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
    assert_eq!(job.clips[0].attempts, 2);
    let mut waited = Vec::new();
    while let Ok(e) = events.try_recv() {
        match e {
            RunEvent::ClipWaiting { seconds, .. } => waited.push(seconds),
            RunEvent::ClipRetrying { .. } => panic!("the hint is a wait, not a retry"),
            _ => {}
        }
    }
    assert_eq!(waited, [2], "the provider's own hint");
}

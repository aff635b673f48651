//! Timeline documents through the service on one machine: a dry run predicts and records
//! nothing (no job, no provider call, no output) and its predicted duration is the rendered
//! one; `generate` assets are made once and then come from the clip cache; references the
//! tenant does not own are refused at their JSON paths.

use async_trait::async_trait;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use vidpipe_domain::AssetKind;
use vidpipe_domain::media::ClipSpec;
use vidpipe_domain::ports::{ClipProvider, ProviderError};
use vidpipe_media::{ProceduralProvider, Tools};
use vidpipe_pipeline::edit::{self, EditError};
use vidpipe_pipeline::local::{LocalOptions, LocalStack};

const OWNER: &str = "local";

/// The procedural provider, counting its calls.
struct Counting {
    inner: ProceduralProvider,
    calls: AtomicU32,
}

#[async_trait]
impl ClipProvider for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    fn estimate_usd(&self, spec: &ClipSpec) -> Option<f64> {
        Some(0.01 * spec.frames as f64 / spec.fps as f64)
    }
    async fn generate(&self, spec: &ClipSpec, dest: &Path) -> Result<(), ProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.generate(spec, dest).await
    }
}

fn ffmpeg(args: &[&str]) {
    let tools = Tools::locate(None).expect("ffmpeg");
    let out = Command::new(&tools.ffmpeg)
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ffprobe's own reading: (decoded frames, container duration).
fn measured(path: &Path) -> (u64, f64) {
    let tools = Tools::locate(None).expect("ffprobe");
    let out = Command::new(&tools.ffprobe)
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames:format=duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["streams"][0]["nb_read_frames"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
        v["format"]["duration"].as_str().unwrap().parse().unwrap(),
    )
}

async fn stack(home: &Path, provider: Arc<Counting>) -> LocalStack {
    LocalStack::open(LocalOptions {
        home: Some(home.to_owned()),
        max_concurrency: 1,
        providers: vec![provider],
        ..LocalOptions::default()
    })
    .await
    .unwrap()
}

fn counting() -> Arc<Counting> {
    Arc::new(Counting {
        inner: ProceduralProvider::new(Tools::locate(None).expect("ffmpeg")),
        calls: AtomicU32::new(0),
    })
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries.flatten().map(|e| e.path()).collect()
}

#[tokio::test]
async fn a_dry_run_creates_nothing_and_predicts_the_rendered_duration() {
    let home = tempfile::tempdir().unwrap();
    let provider = counting();
    let stack = stack(home.path(), provider.clone()).await;
    let music = home.path().join("music.wav");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=f=220:duration=2",
        music.to_str().unwrap(),
    ]);
    let asset = stack
        .service()
        .ingest_asset(OWNER, AssetKind::Music, &music, "soundtrack")
        .await
        .unwrap();
    // 2.52 s at 25 fps: 63 frames, not a whole second, so a rounding slip would show.
    let doc = json!({
        "output": {"aspect": "1:1", "resolution": "360p", "fps": 25},
        "tracks": [
            {"clips": [{"asset": {"type": "title", "text": "Hi"}, "start": 0.2, "length": 1}]},
            {"clips": [{"asset": {"type": "generate", "prompt": "a lighthouse at dusk"},
                        "start": 0, "length": 2.52, "effect": "zoom-out"}]}
        ],
        "soundtrack": {"asset_id": asset.id, "volume": 0.5, "fade_out": 0.5}
    });
    let deps = stack.deps();
    let plan = edit::dry_run(deps, OWNER, &doc).await.unwrap();
    assert_eq!(plan.total_frames, 63);
    assert_eq!(plan.route, vidpipe_domain::job::ComposeRoute::Lambda);
    assert_eq!(plan.provider_calls.len(), 1);
    assert!(!plan.provider_calls[0].cache_hit);
    assert_eq!(plan.provider_calls[0].provider, "counting");
    let usd = plan.estimated_cost.total_usd.unwrap();
    assert!((usd - 0.0252).abs() < 1e-9, "estimated {usd}");
    // Nothing happened: no job, no provider call, no composition, nothing cached.
    assert_eq!(provider.calls.load(Ordering::SeqCst), 0);
    assert!(
        deps.jobs
            .list(OWNER, 10, None)
            .await
            .unwrap()
            .jobs
            .is_empty()
    );
    let blobs = home.path().join("blobs");
    assert!(files_under(&blobs.join("compositions")).is_empty());
    assert!(files_under(&blobs.join("cache")).is_empty());

    let done = edit::render(deps, OWNER, &doc, &|_| {}).await.unwrap();
    assert_eq!(provider.calls.load(Ordering::SeqCst), 1);
    let (frames, seconds) = measured(&stack.blob_path(&done.final_key));
    assert_eq!(frames, plan.total_frames as u64);
    assert!(
        (seconds - plan.duration_seconds).abs() <= 1.0 / 25.0,
        "rendered {seconds} s, predicted {} s",
        plan.duration_seconds
    );
    assert!(stack.blob_path(&done.thumbnail_key).exists());
    assert!(
        deps.jobs
            .list(OWNER, 10, None)
            .await
            .unwrap()
            .jobs
            .is_empty()
    );

    // The same prompt again: the cache answers, the provider is not asked.
    let again = edit::dry_run(deps, OWNER, &doc).await.unwrap();
    assert!(again.provider_calls[0].cache_hit);
    assert_eq!(again.estimated_cost.total_usd, Some(0.0));
    edit::render(deps, OWNER, &doc, &|_| {}).await.unwrap();
    assert_eq!(provider.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn references_the_tenant_does_not_have_are_refused_at_their_paths() {
    let home = tempfile::tempdir().unwrap();
    let stack = stack(home.path(), counting()).await;
    let music = home.path().join("music.wav");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=f=220:duration=1",
        music.to_str().unwrap(),
    ]);
    let service = stack.service();
    let mine = service
        .ingest_asset(OWNER, AssetKind::Music, &music, "m")
        .await
        .unwrap();
    let theirs = service
        .ingest_asset("someone-else", AssetKind::Music, &music, "m")
        .await
        .unwrap();
    let doc = json!({
        "tracks": [
            {"clips": [
                {"asset": {"type": "image", "asset_id": mine.id}, "start": 0, "length": 1},
                {"asset": {"type": "video", "generation": {"job_id": "job_0123456789abcdef0123456789abcdef", "scene": 0}},
                 "start": 1, "length": 1},
                {"asset": {"type": "video", "asset_id": mine.id}, "start": 2, "length": 1}
            ]},
            {"clips": [{"asset": {"type": "audio", "asset_id": theirs.id}, "start": 0, "length": 1}]}
        ],
        "soundtrack": {"asset_id": "ast_0123456789abcdef0123456789abcdef"}
    });
    let Err(EditError::Invalid(errors)) = edit::dry_run(stack.deps(), OWNER, &doc).await else {
        panic!("must be refused");
    };
    for path in [
        "tracks[0].clips[0].asset.asset_id",
        "tracks[0].clips[1].asset.generation",
        "tracks[0].clips[2].asset.asset_id",
        "tracks[1].clips[0].asset.asset_id",
        "soundtrack.asset_id",
    ] {
        assert!(errors.names(path), "{path}: {:?}", errors.errors);
    }
    assert_eq!(errors.errors.len(), 5, "{:?}", errors.errors);
}

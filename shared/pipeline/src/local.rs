//! The one-machine stack: SQLite jobs, filesystem blobs, ffmpeg, the procedural provider and the
//! in-process runner, wired once. The CLI, the tests and the benchmarks all open it the same way,
//! so what a newcomer runs is what the suite checks.

use crate::embedded::{EmbeddedPaths, FsBlobStore, SqliteJobStore};
use crate::generation::narration::Narrators;
use crate::generation::{
    ClipLimits, EmbeddedOrchestrator, EmbeddedRunner, FallbackPlanner, ProviderChain, RunnerConfig,
    StepDeps,
};
use crate::notify::JsonlNotifier;
use crate::processing::ProcessDeps;
use crate::service::Service;
use crate::webhooks::{WebhookError, WebhookSettings, Webhooks};
use std::path::PathBuf;
use std::sync::Arc;
use vidpipe_domain::plan::RulesPlanner;
use vidpipe_domain::ports::{BlobError, BlobStore, ClipProvider, MediaError, Planner, StoreError};
use vidpipe_domain::processing::{ProcessSettings, RenditionSet, SourcePath, SourceRef};
use vidpipe_domain::quota::QuotaLimits;
use vidpipe_domain::request::NarratorKind;
use vidpipe_media::{FfmpegEngine, ProceduralProvider, Tools};

#[derive(Clone, Default)]
pub struct LocalOptions {
    /// Base folder (default `./.vidpipe`, or `VIDPIPE_HOME`).
    pub home: Option<PathBuf>,
    /// Folder with ffmpeg and ffprobe (default: the usual lookup).
    pub ffmpeg_dir: Option<PathBuf>,
    /// Scenes generated at once.
    pub max_concurrency: usize,
    /// The planner (default: the rules). An LLM planner is wrapped so that it falls back to the
    /// rules plan.
    pub planner: Option<Arc<dyn Planner>>,
    /// The clip providers in fallback order (default: procedural alone).
    pub providers: Vec<Arc<dyn ClipProvider>>,
    /// Pacing and bounds of provider calls (default [`ClipLimits::default`]).
    pub clip_limits: Option<ClipLimits>,
    /// The narrators (default: espeak-ng, when it is installed).
    pub narrators: Option<Narrators>,
    /// Per-tenant quotas, counted in the SQLite file so that every process on the machine
    /// shares them (default: unlimited).
    pub quota_limits: QuotaLimits,
    /// Webhook settings (default: no default target, public https targets only); secrets and
    /// the delivery log live in the SQLite file.
    pub webhooks: WebhookSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot open the job store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot open the blob store: {0}")]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Webhooks(#[from] WebhookError),
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub struct LocalStack {
    paths: EmbeddedPaths,
    blobs: Arc<FsBlobStore>,
    store: Arc<SqliteJobStore>,
    media: Arc<FfmpegEngine>,
    service: Service,
    orchestrator: Arc<EmbeddedOrchestrator>,
}

impl LocalStack {
    /// Opens the stack with the procedural provider and default retry policies.
    pub async fn open(options: LocalOptions) -> Result<Self, LocalError> {
        Self::open_with(options, None, RunnerConfig::default()).await
    }

    /// Opens the stack with another clip provider (tests use failing and slow ones) or runner
    /// configuration.
    pub async fn open_with(
        options: LocalOptions,
        provider: Option<Arc<dyn ClipProvider>>,
        mut config: RunnerConfig,
    ) -> Result<Self, LocalError> {
        let paths = EmbeddedPaths::from_env_or(options.home.clone());
        let io = |path: &PathBuf| {
            let path = path.clone();
            move |source| LocalError::Io { path, source }
        };
        tokio::fs::create_dir_all(&paths.base)
            .await
            .map_err(io(&paths.base))?;
        let scratch = paths.base.join("scratch");
        tokio::fs::create_dir_all(&scratch)
            .await
            .map_err(io(&scratch))?;
        let tools = Tools::locate(options.ffmpeg_dir.as_deref())?;
        let media = Arc::new(FfmpegEngine::new(tools.clone()));
        let providers = match provider {
            Some(p) => ProviderChain::single(p),
            None if !options.providers.is_empty() => ProviderChain::new(options.providers.clone()),
            None => ProviderChain::single(Arc::new(ProceduralProvider::new(tools.clone()))),
        };
        let planner: Arc<dyn Planner> = match options.planner.clone() {
            Some(llm) => Arc::new(FallbackPlanner::new(llm)),
            None => Arc::new(RulesPlanner),
        };
        let blobs = Arc::new(FsBlobStore::new(paths.blobs.clone())?);
        let store = Arc::new(SqliteJobStore::open(&paths.db)?);
        let deps = StepDeps {
            jobs: store.clone(),
            blobs: blobs.clone(),
            planner,
            providers,
            narrators: options.narrators.clone().or_else(|| {
                // espeak-ng offline when it is installed; without it narrated jobs say so.
                vidpipe_media::EspeakNarrator::locate(tools.clone())
                    .ok()
                    .map(|e| {
                        Narrators::new(
                            NarratorKind::Espeak,
                            vec![(NarratorKind::Espeak, Arc::new(e) as _)],
                        )
                    })
            }),
            leases: Some(store.clone()),
            quotas: Some(store.clone()),
            clip_limits: options.clip_limits.unwrap_or_default(),
            media: media.clone(),
            scratch_dir: scratch,
            // One machine has no Fargate: every job composes in process.
            worker_threshold_frames: None,
            memory_mb: None,
            webhooks: Some(Arc::new(Webhooks::new(
                store.clone(),
                store.clone(),
                options.webhooks.clone(),
            )?)),
        };
        if options.max_concurrency > 0 {
            config.max_concurrency = options.max_concurrency;
        }
        let runner = Arc::new(EmbeddedRunner::new(deps.clone(), config));
        let orchestrator = Arc::new(EmbeddedOrchestrator::new(runner));
        let service = Service::new(deps, orchestrator.clone())
            .with_quota_limits(options.quota_limits)
            .with_batches(store.clone());
        Ok(Self {
            paths,
            blobs,
            store,
            media,
            service,
            orchestrator,
        })
    }

    pub fn service(&self) -> &Service {
        &self.service
    }

    pub fn orchestrator(&self) -> &Arc<EmbeddedOrchestrator> {
        &self.orchestrator
    }

    pub fn runner(&self) -> &Arc<EmbeddedRunner> {
        self.orchestrator.runner()
    }

    pub fn deps(&self) -> &StepDeps {
        &self.service.deps
    }

    pub fn home(&self) -> &std::path::Path {
        &self.paths.base
    }

    /// Where a blob key lives on disk.
    pub fn blob_path(&self, key: &str) -> PathBuf {
        self.blobs.path_of(key)
    }

    /// The SQLite file's store (jobs, processing records, uploads).
    pub fn store(&self) -> &Arc<SqliteJobStore> {
        &self.store
    }

    /// The filesystem blob store.
    pub fn blobs(&self) -> &Arc<FsBlobStore> {
        &self.blobs
    }

    /// The same service (store, orchestrator, quotas) seeing the blobs through `blobs`: `vidpipe
    /// serve` hands the API a view whose download links are its own signed URLs rather than the
    /// `file://` paths the CLI prints. Jobs still run on the stack's own runner and store.
    pub fn service_with_blobs(&self, blobs: Arc<dyn BlobStore>) -> Service {
        let mut deps = self.service.deps.clone();
        deps.blobs = blobs;
        let mut service = Service::new(deps, self.orchestrator.clone())
            .with_quota_limits(self.service.quota_limits);
        // Batches are recorded in the same store.
        service.batches = self.service.batches.clone();
        service
    }
}

/// Where the local watermark lives in the blob store, as `config/watermark.png` does in S3.
pub const LOCAL_WATERMARK_KEY: &str = "config/watermark.png";

/// The local "bucket" name recorded on processing sources.
pub const LOCAL_BUCKET: &str = "local";

impl LocalStack {
    /// The processing dependencies on this machine: the same SQLite file and blob folder, events
    /// appended to `notifications.jsonl`, no Lambda memory (so no cost estimate).
    pub fn processing(&self, settings: ProcessSettings, renditions: RenditionSet) -> ProcessDeps {
        ProcessDeps {
            records: self.store.clone(),
            uploads: Some(self.store.clone()),
            blobs: self.blobs.clone(),
            notifier: Arc::new(JsonlNotifier::new(self.notifications_path())),
            media: self.media.clone(),
            settings,
            renditions,
            watermark_key: LOCAL_WATERMARK_KEY.to_owned(),
            worker_configured: false,
            worker_size: None,
            memory_mb: None,
            scratch_dir: self.paths.base.join("scratch"),
            webhooks: self.service.deps.webhooks.clone(),
        }
    }

    pub fn notifications_path(&self) -> PathBuf {
        self.paths.base.join("notifications.jsonl")
    }

    /// Installs the watermark: the given PNG/JPEG file, or vidpipe's own mark when none is given
    /// and none is installed yet. A given file that cannot be read is an error, never skipped.
    pub async fn install_watermark(
        &self,
        file: Option<&std::path::Path>,
    ) -> Result<(), LocalError> {
        let io = |path: &std::path::Path| {
            let path = path.to_owned();
            move |source| LocalError::Io { path, source }
        };
        match file {
            Some(path) => {
                let bytes = tokio::fs::read(path).await.map_err(io(path))?;
                vidpipe_media::process::decode_watermark(&bytes, Default::default())?;
                self.blobs
                    .put_bytes(LOCAL_WATERMARK_KEY, bytes, "image/png")
                    .await?;
            }
            None if self.blobs.head(LOCAL_WATERMARK_KEY).await?.is_none() => {
                let png = vidpipe_media::captions::default_watermark_png()?;
                self.blobs
                    .put_bytes(LOCAL_WATERMARK_KEY, png, "image/png")
                    .await?;
            }
            None => {}
        }
        Ok(())
    }

    /// Puts a local file where an upload would land, `raw/{client}/{project}/{file name}`, and
    /// names the write by its content, so processing the same bytes again reuses the same
    /// record and keys, as a duplicate S3 event would.
    pub async fn ingest_raw(
        &self,
        file: &std::path::Path,
        client: &str,
        project: &str,
    ) -> Result<SourceRef, LocalError> {
        use sha2::{Digest, Sha256};
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| LocalError::Io {
                path: file.to_owned(),
                source: std::io::Error::other("the file name is not UTF-8"),
            })?;
        let key = format!("raw/{client}/{project}/{name}");
        SourcePath::parse(&key).map_err(|e| LocalError::Io {
            path: file.to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let digest = {
            let path = file.to_owned();
            tokio::task::spawn_blocking(move || -> std::io::Result<String> {
                let mut h = Sha256::new();
                let mut f = std::fs::File::open(&path)?;
                std::io::copy(&mut f, &mut h)?;
                Ok(hex::encode(&h.finalize()[..16]))
            })
            .await
            .map_err(|e| LocalError::Io {
                path: file.to_owned(),
                source: std::io::Error::other(e),
            })?
            .map_err(|source| LocalError::Io {
                path: file.to_owned(),
                source,
            })?
        };
        self.blobs
            .put_file(&key, file, "application/octet-stream")
            .await?;
        Ok(SourceRef {
            bucket: LOCAL_BUCKET.to_owned(),
            key,
            version: Some(digest),
        })
    }
}

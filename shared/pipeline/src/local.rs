//! The one-machine stack: SQLite jobs, filesystem blobs, ffmpeg, the procedural provider and the
//! in-process runner, wired once. The CLI, the tests and the benchmarks all open it the same way,
//! so what a newcomer runs is what the suite checks.

use crate::embedded::{EmbeddedPaths, FsBlobStore, SqliteJobStore};
use crate::planners::Rules;
use crate::runner::{EmbeddedOrchestrator, EmbeddedRunner, RunnerConfig};
use crate::service::Service;
use crate::steps::StepDeps;
use std::path::PathBuf;
use std::sync::Arc;
use vidpipe_domain::ports::{BlobError, ClipProvider, MediaError, StoreError};
use vidpipe_media::{FfmpegEngine, ProceduralProvider, Tools};

#[derive(Debug, Clone, Default)]
pub struct LocalOptions {
    /// Base folder (default `./.vidpipe`, or `VIDPIPE_HOME`).
    pub home: Option<PathBuf>,
    /// Folder with ffmpeg and ffprobe (default: the usual lookup).
    pub ffmpeg_dir: Option<PathBuf>,
    /// Scenes generated at once.
    pub max_concurrency: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot open the job store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot open the blob store: {0}")]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Media(#[from] MediaError),
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
        let provider = provider.unwrap_or_else(|| Arc::new(ProceduralProvider::new(tools)));
        let blobs = Arc::new(FsBlobStore::new(paths.blobs.clone())?);
        let deps = StepDeps {
            jobs: Arc::new(SqliteJobStore::open(&paths.db)?),
            blobs: blobs.clone(),
            planner: Arc::new(Rules::default()),
            provider,
            media,
            scratch_dir: scratch,
        };
        if options.max_concurrency > 0 {
            config.max_concurrency = options.max_concurrency;
        }
        let runner = Arc::new(EmbeddedRunner::new(deps.clone(), config));
        let orchestrator = Arc::new(EmbeddedOrchestrator::new(runner));
        let service = Service::new(deps, orchestrator.clone());
        Ok(Self {
            paths,
            blobs,
            service,
            orchestrator,
        })
    }

    pub fn service(&self) -> &Service {
        &self.service
    }

    pub fn orchestrator(&self) -> &EmbeddedOrchestrator {
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
}

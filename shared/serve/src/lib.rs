//! `vidpipe serve`: one process that serves the stack's HTTP API (the same router, handlers,
//! validation and OpenAPI from `vidpipe_http`), the live-progress WebSocket and the web app over
//! the embedded pipeline (SQLite, the filesystem, the in-process runner).
//!
//! Wiring only, as the Lambda functions are: the API is `vidpipe_http::handle` behind a small
//! bridge ([`api`]); what the stack gets from S3 (presigned URLs, the upload trigger) is
//! [`files`]; sign-in is [`access`].

pub mod access;
pub mod api;
pub mod files;
pub mod live;
pub mod processing;
pub mod recovery;
pub mod watch;
pub mod web;

use crate::access::Access;
use crate::files::{Files, SignedBlobs};
use crate::processing::LocalProcessing;
use axum::Router;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use vidpipe_domain::processing::{ProcessSettings, RenditionSet};
use vidpipe_http::ApiState;
use vidpipe_pipeline::cursor::CursorSeal;
use vidpipe_pipeline::local::LocalStack;
use vidpipe_pipeline::uploads::{UploadPolicy, UploadService};

/// How `vidpipe serve` listens and whom it lets in.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub bind: IpAddr,
    /// 0 lets the system pick a free port (tests); the URL printed names the real one.
    pub port: u16,
    /// Require the start-up token even on a loopback bind (a machine shared by several users,
    /// whose loopback is not private). Any other bind always requires it.
    pub require_token: bool,
    /// A folder whose new files are processed as uploads.
    pub watch: Option<PathBuf>,
    /// How long Ctrl-C waits for running jobs to reach their end before they are marked failed.
    pub shutdown_grace: Duration,
    /// Segments rendered at once per processing job.
    pub processing_concurrency: usize,
    /// Where uploads switch to multipart, and the part size (tests use small parts).
    pub upload_policy: UploadPolicy,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8080,
            require_token: false,
            watch: None,
            shutdown_grace: Duration::from_secs(30),
            processing_concurrency: 2,
            upload_policy: UploadPolicy::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    #[error(transparent)]
    Local(#[from] vidpipe_pipeline::local::LocalError),
    #[error(transparent)]
    Recovery(#[from] recovery::RecoveryError),
    #[error(transparent)]
    Watch(#[from] watch::WatchError),
    #[error("the server stopped: {0}")]
    Serve(#[source] std::io::Error),
}

/// Everything the routes share.
pub struct Shared {
    pub api: ApiState,
    pub access: Access,
    pub files: Arc<Files>,
    pub live: Arc<live::Live>,
}

/// A bound, not yet serving, server: its URL and token are known, so the caller can print them
/// before the first request can arrive.
pub struct Server {
    listener: tokio::net::TcpListener,
    url: String,
    shared: Arc<Shared>,
    stack: Arc<LocalStack>,
    processing: Arc<LocalProcessing>,
    options: ServeOptions,
    recovered: recovery::Recovered,
}

impl Server {
    /// Opens the listener and wires the API over `stack`. Jobs a crash left unfinished are
    /// marked failed first, so nothing stays running forever.
    pub async fn bind(stack: LocalStack, options: ServeOptions) -> Result<Server, ServeError> {
        let addr = SocketAddr::new(options.bind, options.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        let url = format!("http://{}/", url_authority(local));
        let recovered = recovery::fail_unfinished(&stack).await?;
        stack.install_watermark(None).await?;

        let stack = Arc::new(stack);
        let access = if options.require_token || !options.bind.is_loopback() {
            Access::token(access::random_token().map_err(ServeError::Random)?)
        } else {
            Access::Open
        };
        let processing = Arc::new(LocalProcessing::new(
            stack.processing(ProcessSettings::default(), RenditionSet::default_set()),
            options.processing_concurrency,
        ));
        let files = Arc::new(
            Files::new(
                stack.blobs().clone(),
                stack.home().join("upload-parts"),
                url.trim_end_matches('/').to_owned(),
                processing.clone(),
            )
            .map_err(ServeError::Random)?,
        );
        let blobs = Arc::new(SignedBlobs::new(files.clone()));
        let service = Arc::new(stack.service_with_blobs(blobs.clone()));
        let seal = || CursorSeal::ephemeral().map_err(|e| ServeError::Random(e.to_string()));
        let uploads = Arc::new(UploadService {
            uploads: stack.store().clone(),
            records: stack.store().clone(),
            blobs,
            signer: files.clone(),
            starter: Some(processing.clone()),
            policy: options.upload_policy,
            cursors: Some(seal()?),
            webhook_rules: stack
                .deps()
                .webhooks
                .as_ref()
                .map(|w| w.settings.url_rules)
                .unwrap_or_default(),
        });
        let api = ApiState {
            service,
            uploads: files.clone(),
            base_path: String::new(),
            processing: Some(uploads),
            // The bridge sets the tenant itself; a header must never choose it.
            trust_tenant_header: false,
        };
        let live = Arc::new(live::Live::new(
            stack.clone(),
            processing.clone(),
            files.clone(),
        ));
        let shared = Arc::new(Shared {
            api,
            access,
            files,
            live,
        });
        Ok(Server {
            listener,
            url,
            shared,
            stack,
            processing,
            options,
            recovered,
        })
    }

    /// `http://host:port/`, the address to open in a browser.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The token requests must carry, when one is required.
    pub fn token(&self) -> Option<&str> {
        self.shared.access.required_token()
    }

    /// What start-up found unfinished and marked failed.
    pub fn recovered(&self) -> &recovery::Recovered {
        &self.recovered
    }

    /// The routes, for tests that drive them without a socket.
    pub fn router(&self) -> Router {
        router(self.shared.clone())
    }

    /// Serves until `shutdown` resolves, then stops taking requests and gives running jobs
    /// [`ServeOptions::shutdown_grace`] to end; any still running then are recorded as failed
    /// with the reason, so no job is left running with nobody running it.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let watcher = match &self.options.watch {
            Some(dir) => Some(
                watch::Watcher::start(dir.clone(), self.stack.clone(), self.processing.clone())
                    .await?,
            ),
            None => None,
        };
        let app = router(self.shared.clone());
        let live = self.shared.live.clone();
        let served = axum::serve(self.listener, app).with_graceful_shutdown(async move {
            shutdown.await;
            // Open sockets would hold a graceful shutdown forever: they are told to close.
            live.close_all();
        });
        let result = served.await.map_err(ServeError::Serve);
        if let Some(w) = watcher {
            w.stop().await;
        }
        recovery::drain(&self.stack, &self.processing, self.options.shutdown_grace).await;
        result
    }
}

/// `127.0.0.1:8080`, `[::1]:8080`; an unspecified bind (`0.0.0.0`) is named by loopback,
/// which always reaches it from this machine.
fn url_authority(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port()).to_string()
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/app-config.json", axum::routing::get(web::app_config))
        .route("/v1/live", axum::routing::get(live::upgrade))
        .route(
            "/files/{*key}",
            axum::routing::get(files::get)
                .head(files::get)
                .put(files::put),
        )
        .fallback(api::or_app)
        .with_state(shared)
}

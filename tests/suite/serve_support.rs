//! `vidpipe serve` in a test: the server over a fresh one-machine stack on `127.0.0.1:0`, run
//! in process, stopped (through its Ctrl-C path) when dropped; and the `vidpipe` binary itself
//! for the tests that need a real process (its printed URL, a crash).

use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vidpipe_pipeline::local::LocalOptions;
use vidpipe_serve::{ServeOptions, Server};

pub struct Served {
    pub url: String,
    pub token: Option<String>,
    pub home: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), vidpipe_serve::ServeError>>>,
}

impl Served {
    /// `url` joined with `path` (which starts with `/`).
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url.trim_end_matches('/'), path)
    }

    pub fn ws_url(&self) -> String {
        format!(
            "ws://{}/v1/live",
            self.url.trim_start_matches("http://").trim_end_matches('/')
        )
    }

    /// Stops the server as Ctrl-C would and waits for it (running jobs get the grace).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran");
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves a stack in `home` on loopback with `options` (its bind and port are overridden).
pub async fn serve(home: &Path, options: ServeOptions) -> Served {
    let stack = vidpipe_tests::stack_with_options(
        home,
        LocalOptions {
            max_concurrency: 2,
            ..LocalOptions::default()
        },
        None,
    )
    .await;
    let server = Server::bind(
        stack,
        ServeOptions {
            bind: std::net::Ipv4Addr::LOCALHOST.into(),
            port: 0,
            ..options
        },
    )
    .await
    .expect("bind");
    let url = server.url().to_owned();
    let token = server.token().map(str::to_owned);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Served {
        url,
        token,
        home: home.to_owned(),
        stop: Some(stop),
        task: Some(task),
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// The `vidpipe` binary, built by this workspace's cargo into the same target directory as the
/// test binary (`target/debug/vidpipe`); built here if missing.
pub fn vidpipe_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/debug/deps/suite-xxxx -> target/debug/vidpipe
    let debug = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/debug")
        .to_owned();
    let bin = debug.join("vidpipe");
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "vidpipe-cli", "--bin", "vidpipe"])
        .env("CARGO_TARGET_DIR", debug.parent().expect("target dir"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo build");
    assert!(status.success(), "cargo build -p vidpipe-cli failed");
    assert!(bin.exists(), "{} missing after the build", bin.display());
    bin
}

/// Waits (bounded) until `f` gives `Some`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

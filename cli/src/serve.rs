//! `vidpipe serve`: the API, the live socket and the web app on one machine. Wiring only: the
//! server is `vidpipe_serve`.

use anyhow::{Context, Result};
use clap::Args;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use vidpipe_pipeline::local::LocalStack;
use vidpipe_serve::{ServeOptions, Server};

#[derive(Args)]
pub struct ServeArgs {
    /// Port to listen on (0: any free port; the URL printed names it).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to listen on. Loopback needs no sign-in; any other address requires the token
    /// printed at start-up.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Require the token even on loopback (a machine other users can log in to).
    #[arg(long)]
    require_token: bool,
    /// Process every video file dropped into this folder, as an upload would be.
    #[arg(long, value_name = "DIR")]
    watch: Option<PathBuf>,
    /// Seconds Ctrl-C waits for running jobs to finish before recording them as failed.
    #[arg(long, default_value_t = 30)]
    shutdown_grace: u64,
    /// Clip providers in fallback order (as `generate --provider`).
    #[arg(long, env = "VIDPIPE_PROVIDER", value_name = "NAME[,NAME...]")]
    provider: Option<String>,
    /// The planner (as `generate --planner`).
    #[arg(long, env = "VIDPIPE_PLANNER")]
    planner: Option<String>,
}

pub async fn serve(
    mut options: vidpipe_pipeline::local::LocalOptions,
    args: &ServeArgs,
) -> Result<ExitCode> {
    crate::ai::choose(
        &mut options,
        args.planner.as_deref(),
        args.provider.as_deref(),
    )
    .await?;
    let stack = LocalStack::open(options).await?;
    let home = stack.home().to_owned();
    let server = Server::bind(
        stack,
        ServeOptions {
            bind: args.bind,
            port: args.port,
            require_token: args.require_token,
            watch: args.watch.clone(),
            shutdown_grace: Duration::from_secs(args.shutdown_grace),
            ..ServeOptions::default()
        },
    )
    .await?;
    let recovered = server.recovered();
    let stale = recovered.jobs.len() + recovered.processing.len();
    if stale > 0 {
        eprintln!("marked {stale} job(s) a stopped vidpipe left unfinished as failed");
    }
    // One line a script (or a test) can wait for, then how to sign in.
    let mut out = std::io::stdout().lock();
    writeln!(out, "vidpipe serve: listening on {}", server.url())?;
    if let Some(token) = server.token() {
        writeln!(out, "vidpipe serve: token {token}")?;
        writeln!(
            out,
            "vidpipe serve: send it as Authorization: Bearer <token>; the web app asks for it"
        )?;
    }
    writeln!(out, "vidpipe serve: state in {}", home.display())?;
    out.flush()?;
    drop(out);
    server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("vidpipe serve: stopping; running jobs get a moment to finish");
        })
        .await
        .context("vidpipe serve stopped")?;
    Ok(ExitCode::SUCCESS)
}

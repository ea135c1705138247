//! `ferrolb-speaker`: parse the flags, build the client and the data plane, run.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use ferrolb_speaker::cli::{Cli, LogFormat};
use ferrolb_speaker::{Dataplane, Speaker, http};

fn main() -> ExitCode {
    // Before any thread exists: see `ferrolb_process::malloc` for why one arena.
    let one_arena = ferrolb_process::malloc::one_arena();
    let cli = Cli::parse();
    init_tracing(&cli);
    tracing::debug!(one_arena, "glibc malloc limited to one arena");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.worker_threads.into())
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "speaker failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = cli.settings()?;
    let client = ferrolb_process::kube_client(cli.kubeconfig.as_deref()).await?;
    let dataplane: Arc<dyn Dataplane> =
        ferrolb_speaker::dataplane::build(&settings, cli.no_dataplane).await?;
    let speaker = Speaker::new(settings, client, dataplane);
    let (_, serve) = http::bind(cli.metrics_addr, speaker.metrics(), speaker.health())
        .await
        .with_context(|| format!("binding the metrics endpoint {}", cli.metrics_addr))?;
    tokio::spawn(async move {
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    speaker.run(shutdown_signal()).await?;
    Ok(())
}

/// Completes on SIGTERM (the kubelet stopping the pod) or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the speaker gracefully");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn init_tracing(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log_level).unwrap_or_else(|e| {
        eprintln!(
            "invalid --log-level {:?} ({e}); using \"info\"",
            cli.log_level
        );
        tracing_subscriber::EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

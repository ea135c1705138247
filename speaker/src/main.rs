//! `ferrolb-speaker`: parse the flags, build the client and the data plane, run.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use ferrolb_process::{http, logging, shutdown};
use ferrolb_speaker::cli::Cli;
use ferrolb_speaker::{Dataplane, Speaker};

fn main() -> ExitCode {
    // Before any thread exists: see `ferrolb_process::malloc` for why one arena.
    let one_arena = ferrolb_process::malloc::one_arena();
    let cli = Cli::parse();
    if let Err(e) = logging::init(cli.common.log_format, &cli.common.log_level) {
        eprintln!("ferrolb-speaker: {e}");
        return ExitCode::FAILURE;
    }
    tracing::debug!(one_arena, "glibc malloc limited to one arena");
    // A takeover publishes an Event and starts an announcement per Service at once; no
    // code path marks the end of that burst, so its freed pages go back on a timer
    // (`ferrolb_process::malloc`; BENCHMARKS.md, "Speaker under ARP load").
    ferrolb_process::malloc::release_every(std::time::Duration::from_secs(5));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.common.worker_threads.into())
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
    let client = ferrolb_process::kube_client(cli.common.kubeconfig.as_deref()).await?;
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
    speaker.run(shutdown::signal()).await?;
    Ok(())
}

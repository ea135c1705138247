//! `ferrolb-apiserver`: the embedded API server as a process, for the lab and for trying ferrolb
//! by hand with kubectl.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use ferrolb_apiserver::{ApiServer, ApiServerOptions};

/// ferrolb-apiserver — a TEST AND LAB Kubernetes API server, in memory.
///
/// It serves the resources ferrolb and kubectl use (namespaces, nodes, services, configmaps,
/// events, endpoints, endpointslices, leases) with the API semantics they rely on, and writes a
/// kubeconfig for kubectl, the ferrolb controller and speakers.
///
/// NOT FOR PRODUCTION: no authentication, no authorization, nothing persisted — all objects are
/// lost when it exits.
#[derive(Debug, Parser)]
#[command(name = "ferrolb-apiserver", version, about, long_about)]
struct Args {
    /// Address and port to listen on (port 0 picks a free one; 0.0.0.0 listens on every address).
    #[arg(
        long,
        env = "FERROLB_APISERVER_LISTEN",
        default_value = "127.0.0.1:6443"
    )]
    listen: SocketAddr,
    /// Write a kubeconfig for this server to this path.
    #[arg(long, env = "FERROLB_APISERVER_KUBECONFIG")]
    write_kubeconfig: Option<PathBuf>,
    /// Serve HTTPS with a freshly generated self-signed CA (put in the kubeconfig).
    #[arg(long, env = "FERROLB_APISERVER_TLS")]
    tls: bool,
    /// Host or IP for the kubeconfig's server URL (default: the listen address, or 127.0.0.1).
    #[arg(long, env = "FERROLB_APISERVER_ADVERTISE")]
    advertise: Option<String>,
    /// Extra DNS names or IPs for the TLS certificate (repeatable, or comma-separated in the env var).
    #[arg(
        long = "tls-san",
        env = "FERROLB_APISERVER_TLS_SANS",
        value_delimiter = ','
    )]
    tls_sans: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let opts = ApiServerOptions {
        listen: args.listen,
        tls: args.tls,
        advertise_host: args.advertise,
        tls_sans: args.tls_sans,
        ..Default::default()
    };
    let server = ApiServer::start(opts)
        .await
        .context("starting the API server")?;
    if let Some(path) = &args.write_kubeconfig {
        server
            .write_kubeconfig(path)
            .with_context(|| format!("writing kubeconfig {}", path.display()))?;
        tracing::info!(path = %path.display(), "kubeconfig written");
    }
    println!(
        "ferrolb-apiserver (test and lab server, in memory, no auth) serving at {}",
        server.url()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

//! The shutdown signal both binaries obey: SIGTERM (the kubelet stopping the pod) or
//! SIGINT (Ctrl-C).

/// Completes on SIGTERM or SIGINT. If SIGTERM cannot be watched, says so and waits for
/// SIGINT alone.
pub async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the process gracefully");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

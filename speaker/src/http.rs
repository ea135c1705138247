//! The HTTP endpoint: `/metrics` (Prometheus), `/livez` and `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// Readiness of the speaker: caches synced and live in the membership.
#[derive(Debug, Default)]
pub struct Health {
    synced: AtomicBool,
    live: AtomicBool,
}

impl Health {
    /// Every watch has listed once.
    pub fn set_synced(&self, v: bool) {
        self.synced.store(v, Ordering::SeqCst);
    }

    /// This node may (not) announce.
    pub fn set_live(&self, v: bool) {
        self.live.store(v, Ordering::SeqCst);
    }

    /// True when synced and live.
    pub fn is_ready(&self) -> bool {
        self.synced.load(Ordering::SeqCst) && self.live.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// The router, separate from the listener so that tests can call it directly.
pub fn router(metrics: Arc<Metrics>, health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(ready_handler))
        .with_state(AppState { metrics, health })
}

async fn metrics_handler(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

async fn ready_handler(State(s): State<AppState>) -> impl IntoResponse {
    if s.health.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Binds `addr` (so that a taken port fails at start) and returns the bound address
/// and the serving future.
pub async fn bind(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((bound, async move {
        axum::serve(listener, router(metrics, health)).await
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::RecordingDataplane;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn endpoints_answer_and_readiness_needs_sync_and_lease() {
        let metrics = Arc::new(Metrics::new(Arc::new(RecordingDataplane::new())));
        let health = Arc::new(Health::default());
        let (addr, serve) = bind(
            "127.0.0.1:0".parse().unwrap(),
            metrics.clone(),
            health.clone(),
        )
        .await
        .unwrap();
        let task = tokio::spawn(serve);
        assert!(get(addr, "/livez").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        health.set_synced(true);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        health.set_live(true);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        metrics.announced_ips.set(7);
        let m = get(addr, "/metrics").await;
        assert!(m.contains("ferrolb_speaker_announced_ips 7"), "{m}");
        task.abort();
    }
}

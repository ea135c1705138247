//! The HTTP endpoint of both binaries: `/metrics` (OpenMetrics), `/livez` and
//! `/readyz`, over what each binary says about itself ([`Readiness`], [`Exposition`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

/// Whether the process is ready to do its job (`/readyz`).
pub trait Readiness: Send + Sync + 'static {
    /// True when ready.
    fn is_ready(&self) -> bool;
}

/// The metrics exposition (`/metrics`).
pub trait Exposition: Send + Sync + 'static {
    /// The OpenMetrics text.
    fn encode(&self) -> String;
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<dyn Exposition>,
    ready: Arc<dyn Readiness>,
}

/// The router, separate from the listener so that tests can call it directly.
pub fn router(metrics: Arc<dyn Exposition>, ready: Arc<dyn Readiness>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(ready_handler))
        .with_state(AppState { metrics, ready })
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
    if s.ready.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Binds `addr` (so that a taken port fails at start) and returns the bound address
/// and the serving future.
pub async fn bind(
    addr: SocketAddr,
    metrics: Arc<dyn Exposition>,
    ready: Arc<dyn Readiness>,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((bound, async move {
        axum::serve(listener, router(metrics, ready)).await
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Flag(AtomicBool);
    impl Readiness for Flag {
        fn is_ready(&self) -> bool {
            self.0.load(Ordering::SeqCst)
        }
    }
    struct Text;
    impl Exposition for Text {
        fn encode(&self) -> String {
            "ferrolb_test_value 7\n".into()
        }
    }

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
    async fn endpoints_answer_and_readiness_follows_the_trait() {
        let ready = Arc::new(Flag(AtomicBool::new(false)));
        let (addr, serve) = bind(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(Text),
            ready.clone(),
        )
        .await
        .unwrap();
        let task = tokio::spawn(serve);
        assert!(get(addr, "/livez").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        ready.0.store(true, Ordering::SeqCst);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        let m = get(addr, "/metrics").await;
        assert!(m.contains("ferrolb_test_value 7"), "{m}");
        assert!(m.contains("openmetrics-text"), "{m}");
        task.abort();
    }
}

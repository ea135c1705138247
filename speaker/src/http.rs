//! What the speaker says on the shared HTTP endpoint (`ferrolb_process::http`): its
//! readiness and its metrics.

use std::sync::atomic::{AtomicBool, Ordering};

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

impl ferrolb_process::http::Readiness for Health {
    fn is_ready(&self) -> bool {
        Health::is_ready(self)
    }
}

impl ferrolb_process::http::Exposition for Metrics {
    fn encode(&self) -> String {
        Metrics::encode(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::RecordingDataplane;
    use std::net::SocketAddr;
    use std::sync::Arc;
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
        let (addr, serve) = ferrolb_process::http::bind(
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

//! What the controller says on the shared HTTP endpoint (`ferrolb_process::http`): its
//! readiness and its metrics.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::metrics::ControllerMetrics;

/// Readiness, set by the controller as it starts.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    /// Marks the process ready (caches synced and, when leading, the allocator rebuilt).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// True once ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

impl ferrolb_process::http::Readiness for Health {
    fn is_ready(&self) -> bool {
        Health::is_ready(self)
    }
}

impl ferrolb_process::http::Exposition for ControllerMetrics {
    fn encode(&self) -> String {
        ControllerMetrics::encode(self)
    }
}

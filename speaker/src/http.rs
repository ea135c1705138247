//! What the speaker says on the shared HTTP endpoint (`ferrolb_process::http`): its
//! readiness and its metrics.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::metrics::SpeakerMetrics;

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

impl ferrolb_process::http::Exposition for SpeakerMetrics {
    fn encode(&self) -> String {
        SpeakerMetrics::encode(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::RecordingDataplane;
    use ferrolb_process::http::{Exposition, Readiness};
    use std::sync::Arc;

    // The endpoint itself is tested in `ferrolb_process::http`; here, what the speaker
    // says through it.
    #[test]
    fn readiness_needs_sync_and_liveness_and_metrics_are_the_speakers() {
        let health = Health::default();
        assert!(!Readiness::is_ready(&health));
        health.set_synced(true);
        assert!(!Readiness::is_ready(&health), "synced but not live");
        health.set_live(true);
        assert!(Readiness::is_ready(&health));
        health.set_live(false);
        assert!(!Readiness::is_ready(&health), "silenced: not ready");
        let metrics = SpeakerMetrics::new(Arc::new(RecordingDataplane::new()));
        metrics.announced_ips.set(7);
        let text = Exposition::encode(&metrics);
        assert!(text.contains("ferrolb_speaker_announced_ips 7"), "{text}");
    }
}

//! The watch retry both binaries use.

use std::time::Duration;

use kube::runtime::utils::Backoff;

/// Watch retry: 100 ms doubling up to 1 s. Faster than kube's default (up to 30 s) so
/// that after an API server outage the speakers are back in the election, and the
/// controller's caches current, within about a second of it becoming reachable again.
#[derive(Debug, Clone)]
pub struct QuickBackoff {
    next: Duration,
}

impl QuickBackoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(1);
    /// A backoff at its first delay.
    pub fn new() -> Self {
        Self { next: Self::FIRST }
    }
}

impl Iterator for QuickBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        Some(d)
    }
}

impl Backoff for QuickBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for QuickBackoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_backoff_doubles_to_one_second_and_resets() {
        let mut b = QuickBackoff::new();
        let v: Vec<u128> = (0..6).map(|_| b.next().unwrap().as_millis()).collect();
        assert_eq!(v, vec![100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(100)));
    }
}

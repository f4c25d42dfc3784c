//! The clock seam. The core only sees [`elector_core::Instant`]s; this turns tokio's clock
//! (real in production, simulated under turmoil) into them, optionally running at a skewed
//! rate so the simulation can exercise clock drift, which turmoil itself does not model.

use elector_core::Instant;
use std::time::Duration;

/// Where the driver gets "now" and how it sleeps until a core instant.
pub trait Clock: Send + Sync + 'static {
    /// Now, on the elector's (possibly drifting) clock.
    fn now(&self) -> Instant;
    /// The tokio instant at which this clock will read `at`.
    fn wake_at(&self, at: Instant) -> tokio::time::Instant;
}

/// tokio's monotonic clock, seen at `rate` (1.0 = true rate; 1.01 = runs 1 % fast).
#[derive(Clone, Debug)]
pub struct TokioClock {
    epoch: tokio::time::Instant,
    rate: f64,
}

impl TokioClock {
    /// A clock whose epoch is now, running at the true rate.
    pub fn new() -> Self {
        Self::with_rate(1.0)
    }

    /// A clock running at `rate` times the true rate (simulation of drift).
    pub fn with_rate(rate: f64) -> Self {
        assert!(
            rate > 0.0 && rate.is_finite(),
            "clock rate must be positive"
        );
        TokioClock {
            epoch: tokio::time::Instant::now(),
            rate,
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        let real = self.epoch.elapsed();
        Instant::from_epoch(real.mul_f64(self.rate))
    }

    fn wake_at(&self, at: Instant) -> tokio::time::Instant {
        let real = at.since_epoch().div_f64(self.rate);
        // Round up so that on waking the clock reads at least `at`.
        self.epoch + real + Duration::from_nanos(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fast_clock_reads_ahead_and_wakes_early() {
        let clock = TokioClock::with_rate(1.1);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(clock.now().since_epoch(), Duration::from_secs(11));
        let wake = clock.wake_at(Instant::from_millis(22_000));
        tokio::time::sleep_until(wake).await;
        assert!(clock.now() >= Instant::from_millis(22_000));
        // tokio's timer wheel rounds up to the next millisecond.
        assert!(clock.now() <= Instant::from_millis(22_002));
    }
}

//! How long to wait between tries.

use std::time::Duration;

/// Bounded exponential backoff with jitter.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Tries after the first, for transient failures.
    pub max_retries: u32,
    /// The first backoff; each further one doubles, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_retries: 5, base_delay: Duration::from_millis(500), max_delay: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based): half the exponential step plus a random
    /// part of the other half, so many workers hit by the same fault do not retry in lockstep.
    pub fn backoff(&self, retry: u32) -> Duration {
        let step = self.base_delay.saturating_mul(1u32 << retry.min(16)).min(self.max_delay);
        let half = step / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_bounded() {
        let p =
            RetryPolicy { max_retries: 5, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(1) };
        for retry in 0..40 {
            let step = Duration::from_millis(100).saturating_mul(1 << retry.min(16)).min(Duration::from_secs(1));
            let d = p.backoff(retry);
            assert!(d >= step / 2 && d <= step, "{retry}: {d:?}");
        }
    }
}

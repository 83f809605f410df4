//! Retry schedules for permanent requests.

use std::time::Duration;

use rand::{Rng, RngExt};

/// How the wait before a permanent request's next attempt grows.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Backoff {
    /// btcd's schedule: `retry_count × retry_duration`, capped at the
    /// maximum.
    #[default]
    Linear,
    /// `retry_duration × 2^(retry_count − 1)`, capped at the maximum, then
    /// shortened by a random share of up to `jitter` (0.0 to 1.0) so that
    /// many nodes retrying one peer do not stay in step.
    Exponential {
        /// The largest share of each wait removed at random (0.0 to 1.0).
        jitter: f64,
    },
}

impl Backoff {
    /// The wait before attempt number `retry_count` (1 for the first
    /// retry), given the base step and the cap.
    pub fn delay(
        &self,
        retry_count: u32,
        step: Duration,
        max: Duration,
        rng: &mut impl Rng,
    ) -> Duration {
        let count = retry_count.max(1);
        match *self {
            Backoff::Linear => step.saturating_mul(count).min(max),
            Backoff::Exponential { jitter } => {
                let factor = 1u32.checked_shl(count - 1).unwrap_or(u32::MAX);
                let full = step.saturating_mul(factor).min(max);
                if jitter <= 0.0 {
                    return full;
                }
                let cut = rng.random::<f64>() * jitter.min(1.0);
                full.mul_f64(1.0 - cut)
            }
        }
    }
}

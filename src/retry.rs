//! The one retry policy: exponential backoff, capped, with optional jitter. The queue runner,
//! migrate's delivery and pass loops, the takeover retry of `watch` and the DNS resend all wait
//! with it, so "how long until the next try" has one answer.
//!
//! Jitter spreads retries that started together (a queue filled in one burst, many accounts
//! migrating against one server) so they do not all come back in the same second.

use std::time::Duration;

/// Waits `first · 2^(attempt-1)`, capped at `max`, then scaled by a random factor within
/// `1 ± jitter` (0.25: from 75 % to 125 %; 0: exact).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub jitter: f64,
}

impl Backoff {
    /// Doubling from `first` up to `max`, without jitter.
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            jitter: 0.0,
        }
    }

    /// The same, each wait scaled by a random factor within `1 ± jitter`.
    pub const fn with_jitter(self, jitter: f64) -> Backoff {
        Backoff { jitter, ..self }
    }

    /// The wait before retry number `attempt` (1 for the first retry; 0 counts as 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, random_unit())
    }

    /// [`Backoff::delay`] with the random draw given: `unit` in `[0, 1]`, 0.5 is the exact
    /// wait. For tests that assert on timings.
    pub fn delay_with(&self, attempt: u32, unit: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let base = self.first.saturating_mul(1u32 << exp).min(self.max);
        if self.jitter == 0.0 {
            return base;
        }
        base.mul_f64(1.0 - self.jitter + 2.0 * self.jitter * unit.clamp(0.0, 1.0))
    }
}

/// A uniform draw from `[0, 1]` in steps of 1/500, from the system's secure random source.
fn random_unit() -> f64 {
    let mut b = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    f64::from(u32::from_le_bytes(b) % 501) / 500.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff::new(S(5), S(300));
        assert_eq!(b.delay(0), S(5));
        assert_eq!(b.delay(1), S(5));
        assert_eq!(b.delay(2), S(10));
        assert_eq!(b.delay(7), S(300));
        assert_eq!(b.delay(u32::MAX), S(300));
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let b = Backoff::new(S(2), S(4000)).with_jitter(0.25);
        assert_eq!(b.delay_with(3, 0.0), S(6));
        assert_eq!(b.delay_with(3, 0.5), S(8));
        assert_eq!(b.delay_with(3, 1.0), S(10));
        for attempt in 1..30 {
            let exact = b.delay_with(attempt, 0.5);
            let d = b.delay(attempt);
            assert!(
                d >= exact.mul_f64(0.75) && d <= exact.mul_f64(1.25),
                "{d:?}"
            );
        }
        let draws: std::collections::HashSet<_> = (0..50).map(|_| b.delay(1)).collect();
        assert!(draws.len() > 1, "the jitter varies: {draws:?}");
    }
}

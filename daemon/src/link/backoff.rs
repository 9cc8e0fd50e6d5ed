//! Reconnect delays: capped exponential back-off with jitter. Sans-IO: the caller
//! supplies the random number, so tests are exact.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The next delay: half of `min(cap, base·2^attempt)` plus a random part of the
    /// other half ("equal jitter"), so devices that lost the relay together spread out
    /// but none waits longer than the cap. `unit` is uniform in `[0, 1)`.
    pub fn next(&mut self, unit: f64) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.attempt.min(20));
        let full = exp.min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        full / 2 + full.mul_f64(unit.clamp(0.0, 1.0) / 2.0)
    }

    /// After a successful connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grows_then_caps_then_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let lows: Vec<u128> = (0..8).map(|_| b.next(0.0).as_millis()).collect();
        assert_eq!(lows, [50, 100, 200, 400, 800, 1000, 1000, 1000]);
        b.reset();
        assert_eq!(b.next(0.999_999).as_millis(), 99);
    }

    proptest! {
        #[test]
        fn never_above_the_cap(units in proptest::collection::vec(0.0f64..1.0, 1..100)) {
            let cap = Duration::from_secs(30);
            let mut b = Backoff::new(Duration::from_millis(250), cap);
            for u in units {
                let d = b.next(u);
                prop_assert!(d <= cap && d >= Duration::from_millis(125));
            }
        }
    }
}

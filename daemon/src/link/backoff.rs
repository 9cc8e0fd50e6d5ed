//! When to try the relay again and how long one try may take: capped exponential
//! back-off with jitter, and a per-attempt deadline that is short for the first tries.
//! Sans-IO: the caller supplies the random number, so tests are exact.
//!
//! Why the deadline matters as much as the delay: QUIC resends a lost Initial packet only
//! after 1 s, then 2 s, then 4 s more (quinn's 333 ms initial RTT estimate, doubled per
//! probe). A try that starts while the relay is still down therefore stops knocking for
//! seconds at a time; ending it after 3.5 s and starting a fresh one keeps the gaps short,
//! so a relay back from a restart is reached within about 2 s (the tests below check it).

use std::time::Duration;

/// The shape of a back-off schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The delay before the first retry is between half of this and this.
    pub base: Duration,
    /// No delay is longer than this.
    pub cap: Duration,
    /// How long each of the first `quick_attempts` tries may take.
    pub quick_timeout: Duration,
    pub quick_attempts: u32,
    /// How long later tries may take (a slow or lossy link still gets through).
    pub slow_timeout: Duration,
}

/// One retry: wait `delay`, then give the try `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub delay: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Backoff {
    policy: Policy,
    attempt: u32,
}

impl Backoff {
    pub fn new(policy: Policy) -> Backoff {
        Backoff { policy, attempt: 0 }
    }

    /// How long the first try (at start, after a success or after a reload) may take.
    pub fn first_timeout(&self) -> Duration {
        self.policy.quick_timeout
    }

    /// The next retry after a failed try. The delay is half of `min(cap, base·2^n)` plus
    /// a random part of the other half ("equal jitter"), so devices that lost the relay
    /// together spread out but none waits longer than the cap. `unit` is uniform in
    /// `[0, 1)`.
    pub fn next(&mut self, unit: f64) -> Retry {
        let p = &self.policy;
        let exp = p.base.saturating_mul(1u32 << self.attempt.min(20));
        let full = exp.min(p.cap);
        let timeout = if self.attempt < p.quick_attempts {
            p.quick_timeout
        } else {
            p.slow_timeout
        };
        self.attempt = self.attempt.saturating_add(1);
        Retry {
            delay: full / 2 + full.mul_f64(unit.clamp(0.0, 1.0) / 2.0),
            timeout,
        }
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

    const POLICY: Policy = crate::link::BACKOFF;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn starts_small_grows_then_caps_then_resets() {
        let mut b = Backoff::new(POLICY);
        assert_eq!(b.first_timeout(), ms(3_500));
        let lows: Vec<(u128, u128)> = (0..9)
            .map(|_| b.next(0.0))
            .map(|r| (r.delay.as_millis(), r.timeout.as_millis()))
            .collect();
        assert_eq!(
            lows,
            [
                (100, 3_500),
                (200, 3_500),
                (400, 3_500),
                (800, 3_500),
                (1_600, 3_500),
                (3_200, 10_000),
                (5_000, 10_000),
                (5_000, 10_000),
                (5_000, 10_000),
            ]
        );
        b.reset();
        assert_eq!(b.next(0.999_999).delay.as_millis(), 199);
    }

    /// When a relay that went away at 0 and is listening again from `back` is reached:
    /// the first time a try sends an Initial packet (at its start and then 1, 3, 7 s into
    /// it, as QUIC's probe timer does) early enough to finish within the try's deadline
    /// (a handshake and `Hello` take well under 0.2 s on a working link).
    fn reached(policy: Policy, back: Duration, units: &[f64]) -> Duration {
        let mut b = Backoff::new(policy);
        let mut now = Duration::ZERO;
        for &unit in units.iter().cycle() {
            let retry = b.next(unit);
            let start = now + retry.delay;
            for resend in [0, 1_000, 3_000, 7_000, 15_000].map(ms) {
                let sent = start + resend;
                if resend + ms(200) < retry.timeout && sent >= back {
                    return sent;
                }
            }
            now = start + retry.timeout;
        }
        unreachable!("units is not empty")
    }

    #[test]
    fn the_old_schedule_let_a_restarted_relay_wait_four_seconds() {
        // 250 ms base, 30 s cap and a 10 s deadline on every try (until issue 12): the
        // first try's resends at 3 s and 7 s leave a 4 s gap.
        let old = Policy {
            base: ms(250),
            cap: Duration::from_secs(30),
            quick_timeout: ms(10_000),
            quick_attempts: 0,
            slow_timeout: ms(10_000),
        };
        let back = ms(3_300);
        assert!(reached(old, back, &[0.999]) - back > ms(3_900));
        assert!(reached(POLICY, back, &[0.999]) - back < ms(3_000));
    }

    proptest! {
        #[test]
        fn never_above_the_cap(units in proptest::collection::vec(0.0f64..1.0, 1..100)) {
            let mut b = Backoff::new(POLICY);
            for u in units {
                let r = b.next(u);
                prop_assert!(r.delay <= POLICY.cap && r.delay >= POLICY.base / 2);
                prop_assert!(r.timeout == POLICY.quick_timeout || r.timeout == POLICY.slow_timeout);
            }
        }

        /// The promise of docs and issue 12: a relay that restarts (back within 12 s) is
        /// reached again within 3 s of listening, whatever the jitter.
        #[test]
        fn a_restarted_relay_is_reached_within_three_seconds(
            back_ms in 0u64..12_000,
            units in proptest::collection::vec(0.0f64..1.0, 1..8),
        ) {
            let back = ms(back_ms);
            let at = reached(POLICY, back, &units);
            prop_assert!(at - back <= ms(3_000), "relay back at {back:?}, reached at {at:?}");
        }
    }
}

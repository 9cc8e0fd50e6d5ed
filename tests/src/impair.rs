//! A seeded network impairment for the UDP proxy: random and burst loss, duplication,
//! and delay jitter (which reorders). Deterministic for a seed, so a failing run repeats.

use std::time::Duration;

#[derive(Debug, Clone, Copy, Default)]
pub struct Impairment {
    /// Probability that a datagram is lost, outside bursts.
    pub loss: f64,
    /// Probability per datagram that a loss burst starts; a burst drops `burst_len`.
    pub burst_start: f64,
    pub burst_len: u32,
    /// Probability that a datagram is sent twice.
    pub duplicate: f64,
    /// Base one-way delay added.
    pub delay: Duration,
    /// Extra delay, uniform in [0, jitter): datagrams overtake each other.
    pub jitter: Duration,
}

/// What to do with one datagram: send it after each of these delays (none: lost).
pub struct Decider {
    imp: Impairment,
    state: u64,
    burst_left: u32,
}

impl Decider {
    pub fn new(imp: Impairment, seed: u64) -> Decider {
        Decider {
            imp,
            state: seed | 1,
            burst_left: 0,
        }
    }

    fn unit(&mut self) -> f64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        (self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn decide(&mut self) -> Vec<Duration> {
        if self.burst_left > 0 {
            self.burst_left -= 1;
            return Vec::new();
        }
        if self.unit() < self.imp.burst_start {
            self.burst_left = self.imp.burst_len.saturating_sub(1);
            return Vec::new();
        }
        if self.unit() < self.imp.loss {
            return Vec::new();
        }
        let copies = if self.unit() < self.imp.duplicate {
            2
        } else {
            1
        };
        (0..copies)
            .map(|_| self.imp.delay + self.imp.jitter.mul_f64(self.unit()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_rate_and_determinism() {
        let imp = Impairment {
            loss: 0.1,
            ..Impairment::default()
        };
        let count = |seed| {
            let mut d = Decider::new(imp, seed);
            (0..10_000).filter(|_| d.decide().is_empty()).count()
        };
        let lost = count(7);
        assert!((900..1100).contains(&lost), "{lost}");
        assert_eq!(lost, count(7));
    }
}

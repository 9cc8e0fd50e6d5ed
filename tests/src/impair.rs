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
    /// Bursty loss on top of the rest: a two-state Gilbert–Elliott channel.
    pub bursts: Option<GilbertElliott>,
}

/// A Gilbert–Elliott loss channel: in the good state nothing is lost, in the bad state
/// everything; per datagram it goes bad with probability `enter` and good again with
/// `leave`, so bursts are geometric with mean `1 / leave` datagrams.
#[derive(Debug, Clone, Copy)]
pub struct GilbertElliott {
    pub enter: f64,
    pub leave: f64,
}

impl GilbertElliott {
    /// The channel that loses `loss` of all datagrams in bursts of `mean_burst` on average:
    /// the bad state's share is `enter / (enter + leave)`.
    pub fn with_loss(loss: f64, mean_burst: f64) -> GilbertElliott {
        let leave = 1.0 / mean_burst.max(1.0);
        GilbertElliott {
            enter: leave * loss / (1.0 - loss),
            leave,
        }
    }
}

/// What to do with one datagram: send it after each of these delays (none: lost).
pub struct Decider {
    imp: Impairment,
    state: u64,
    burst_left: u32,
    bad: bool,
}

impl Decider {
    pub fn new(imp: Impairment, seed: u64) -> Decider {
        Decider {
            imp,
            state: seed | 1,
            burst_left: 0,
            bad: false,
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
        if let Some(ge) = self.imp.bursts {
            let flip = if self.bad { ge.leave } else { ge.enter };
            if self.unit() < flip {
                self.bad = !self.bad;
            }
            if self.bad {
                return Vec::new();
            }
        }
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

    #[test]
    fn gilbert_elliott_loses_its_share_in_bursts_of_its_mean_length() {
        let imp = Impairment {
            bursts: Some(GilbertElliott::with_loss(0.10, 3.0)),
            ..Impairment::default()
        };
        let mut d = Decider::new(imp, 11);
        let lost: Vec<bool> = (0..100_000).map(|_| d.decide().is_empty()).collect();
        let total = lost.iter().filter(|&&l| l).count();
        let bursts = lost.windows(2).filter(|w| !w[0] && w[1]).count();
        assert!((9_000..11_000).contains(&total), "{total}");
        let mean = total as f64 / bursts as f64;
        assert!((2.7..3.3).contains(&mean), "mean burst {mean}");
    }
}

//! A seeded network path for simulations (test builds only): per packet, random and burst
//! loss, jitter (which reorders once it exceeds the packet spacing), delay spikes and
//! duplication. The jitter buffer's simulator (`jitter/sim.rs`) and the two-party call
//! simulation (`call/media/sim.rs`) both send through it, so one model of the network is
//! tuned and trusted for both.

/// SplitMix64: tiny, seeded, good enough to shape a network.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// Uniform in 0..=max.
    pub(crate) fn upto(&mut self, max: u64) -> u64 {
        if max == 0 { 0 } else { self.next() % (max + 1) }
    }
}

/// What the network does to packets.
#[derive(Clone, Debug)]
pub(crate) struct Path {
    /// Transit time of the fastest packet, µs.
    pub base_transit_us: u64,
    /// Independent loss probability per packet.
    pub loss: f64,
    /// Probability per packet of starting a loss burst of `burst_len` packets.
    pub burst: f64,
    pub burst_len: u32,
    /// Extra delay per packet, uniform in 0..=jitter_ms (reorders when above the spacing).
    pub jitter_ms: u64,
    /// Probability that a packet arrives twice; the copy comes up to `duplicate_spread_us`
    /// after the original.
    pub duplicate: f64,
    pub duplicate_spread_us: u64,
    /// Delay spikes `(start_ms, len_ms)`: everything sent in them arrives at their end.
    pub spikes: Vec<(u64, u64)>,
}

impl Path {
    /// No loss, no jitter, no duplicates: every packet takes `base_transit_us`.
    pub(crate) fn clean(base_transit_us: u64) -> Self {
        Self {
            base_transit_us,
            loss: 0.0,
            burst: 0.0,
            burst_len: 0,
            jitter_ms: 0,
            duplicate: 0.0,
            duplicate_spread_us: 20_000,
            spikes: Vec::new(),
        }
    }
}

/// One direction of a seeded network: [`Link::carry`] says when (and how often) a packet
/// arrives.
pub(crate) struct Link {
    pub path: Path,
    pub rng: Rng,
    burst_left: u32,
}

impl Link {
    pub(crate) fn new(path: Path, seed: u64) -> Self {
        Self {
            path,
            rng: Rng(seed),
            burst_left: 0,
        }
    }

    /// Arrival times of a packet sent at `send_us`: none if it is lost, two if it is
    /// duplicated. A `protected` packet is never lost, but the dice are rolled all the same,
    /// so protecting some packets does not change the fate of the others.
    pub(crate) fn carry(&mut self, send_us: u64, protected: bool) -> [Option<u64>; 2] {
        let path = &self.path;
        let rng = &mut self.rng;
        if self.burst_left == 0 && rng.chance(path.burst) {
            self.burst_left = path.burst_len;
        }
        if self.burst_left > 0 {
            self.burst_left -= 1;
            if !protected {
                return [None, None];
            }
        }
        if rng.chance(path.loss) && !protected {
            return [None, None];
        }
        let mut at = send_us + path.base_transit_us + rng.upto(path.jitter_ms * 1000);
        for &(start, len) in &path.spikes {
            if (start * 1000..(start + len) * 1000).contains(&send_us) {
                at = at.max((start + len) * 1000 + path.base_transit_us);
            }
        }
        let copy = rng
            .chance(path.duplicate)
            .then(|| at + rng.upto(path.duplicate_spread_us));
        [Some(at), copy]
    }
}

//! The jitter estimate: a sliding window over the last packets' transit times.
//!
//! A packet's transit is its arrival time minus its send time as its timestamp says. The two
//! clocks are unrelated, so one transit alone means nothing; the *spread* does. The fastest
//! recent packet (the window's minimum) is the base, and how much later than the base the
//! others came is the jitter the buffer must absorb. Measuring this per packet, rather than
//! inter-arrival gaps, keeps DTX pauses and losses from looking like jitter.

/// A fixed-size ring of transit times (µs) with base and quantile queries. Allocates once.
#[derive(Debug)]
pub(super) struct TransitWindow {
    values: Vec<i64>,
    next: usize,
    len: usize,
    scratch: Vec<i64>,
}

impl TransitWindow {
    /// A window over the last `capacity` packets (at least 1).
    pub(super) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            values: vec![0; capacity],
            next: 0,
            len: 0,
            scratch: Vec::with_capacity(capacity),
        }
    }

    pub(super) fn clear(&mut self) {
        self.next = 0;
        self.len = 0;
    }

    /// Records one packet's transit time, forgetting the oldest once full.
    pub(super) fn push(&mut self, transit_us: i64) {
        self.values[self.next] = transit_us;
        self.next = (self.next + 1) % self.values.len();
        self.len = (self.len + 1).min(self.values.len());
    }

    /// The base (minimum transit) and the `percentile` (1..=100) of the jitter above it, or
    /// `None` before the first packet. O(n) with no allocation: 128 values, once per frame.
    pub(super) fn base_and_jitter(&mut self, percentile: u8) -> Option<(i64, i64)> {
        let live = &self.values[..self.len];
        let base = *live.iter().min()?;
        self.scratch.clear();
        self.scratch
            .extend(live.iter().map(|v| v.saturating_sub(base)));
        // Nearest-rank percentile: the smallest value with at least p % of the samples at or
        // below it.
        let rank = (usize::from(percentile) * self.len).div_ceil(100);
        let index = rank.clamp(1, self.len) - 1;
        let (_, jitter, _) = self.scratch.select_nth_unstable(index);
        Some((base, *jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::TransitWindow;

    #[test]
    fn empty_window_has_no_estimate() {
        assert_eq!(TransitWindow::new(8).base_and_jitter(95), None);
    }

    #[test]
    fn base_is_the_fastest_and_jitter_a_percentile_above_it() {
        let mut w = TransitWindow::new(100);
        for i in 0..100 {
            w.push(5_000 + i * 1_000);
        }
        assert_eq!(w.base_and_jitter(95), Some((5_000, 94_000)));
        assert_eq!(w.base_and_jitter(100), Some((5_000, 99_000)));
        assert_eq!(w.base_and_jitter(50), Some((5_000, 49_000)));
    }

    #[test]
    fn old_values_slide_out() {
        let mut w = TransitWindow::new(4);
        for v in [100, 900, 900, 900] {
            w.push(v);
        }
        assert_eq!(w.base_and_jitter(100), Some((100, 800)));
        for v in [300, 300, 300, 300] {
            w.push(v);
        }
        assert_eq!(w.base_and_jitter(100), Some((300, 0)));
        w.clear();
        assert_eq!(w.base_and_jitter(100), None);
    }
}

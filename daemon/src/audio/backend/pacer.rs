//! Real-time pacing for devices without a clock of their own (the file and null backends),
//! as pure logic: the caller passes `now` in, so it is tested without sleeping.

use std::time::{Duration, Instant};

/// Says how many frames are due at a given instant. Block `k` falls due at
/// `start + k·period` — an absolute deadline — so a late wake-up is made up by the next
/// poll and sleep overshoot never accumulates into drift. Block lengths are exact on
/// average even when `rate · period` is not a whole number of frames (22.05 kHz at 10 ms
/// alternates 220 and 221 frames).
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    rate: u32,
    period: Duration,
    /// Blocks already handed out (the next one to fall due is this index).
    blocks: u64,
    max_burst: usize,
}

/// What a [`Pacer::poll`] found due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tick {
    /// Frames to produce (or consume) now.
    pub frames: usize,
    /// Frames that fell due but exceed the burst limit: the caller was stalled for longer
    /// than its buffer covers, so — like a real device — it skips them instead of catching
    /// up with a flood.
    pub lost: usize,
}

impl Pacer {
    /// A pacer whose first block is due at `start`. `period` must be non-zero;
    /// `max_burst` caps the frames one poll returns (at least one block's worth is allowed).
    pub fn new(start: Instant, rate: u32, period: Duration, max_burst: usize) -> Pacer {
        let period = period.max(Duration::from_millis(1));
        let mut pacer = Pacer {
            start,
            rate,
            period,
            blocks: 0,
            max_burst,
        };
        pacer.max_burst = max_burst.max(pacer.frames_before(1) as usize + 1);
        pacer
    }

    /// Frames due at `now` that have not been handed out yet, and marks them handed out.
    pub fn poll(&mut self, now: Instant) -> Tick {
        let elapsed = now.saturating_duration_since(self.start).as_nanos();
        let due = (elapsed / self.period.as_nanos()) as u64 + 1;
        if due <= self.blocks {
            return Tick::default();
        }
        let frames = (self.frames_before(due) - self.frames_before(self.blocks)) as usize;
        self.blocks = due;
        let run = frames.min(self.max_burst);
        Tick {
            frames: run,
            lost: frames - run,
        }
    }

    /// When the next block falls due.
    pub fn next_deadline(&self) -> Instant {
        let ns = self.period.as_nanos() * u128::from(self.blocks);
        let offset = Duration::new((ns / 1_000_000_000) as u64, (ns % 1_000_000_000) as u32);
        self.start + offset
    }

    /// Frames in blocks `0..k`, rounded down.
    fn frames_before(&self, k: u64) -> u128 {
        u128::from(k) * u128::from(self.rate) * self.period.as_nanos() / 1_000_000_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn first_block_is_due_at_start_and_only_once() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, 48_000, 10 * MS, 48_000);
        assert_eq!(p.poll(t0).frames, 480);
        assert_eq!(p.poll(t0), Tick::default());
        assert_eq!(p.poll(t0 + 9 * MS), Tick::default());
        assert_eq!(p.next_deadline(), t0 + 10 * MS);
        assert_eq!(p.poll(t0 + 10 * MS).frames, 480);
    }

    #[test]
    fn a_late_wakeup_catches_up_without_moving_later_deadlines() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, 48_000, 20 * MS, 48_000);
        assert_eq!(p.poll(t0).frames, 960);
        // Woke 53 ms late: blocks 1 and 2 (due at 20 and 40 ms) are both due now.
        assert_eq!(p.poll(t0 + 53 * MS).frames, 1920);
        // The next deadline stays on the original grid, not 20 ms after the late wake-up.
        assert_eq!(p.next_deadline(), t0 + 60 * MS);
    }

    #[test]
    fn fractional_block_lengths_add_up_exactly() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, 22_050, 10 * MS, 100_000);
        let mut lengths = Vec::new();
        for k in 0..100u32 {
            lengths.push(p.poll(t0 + k * 10 * MS).frames);
        }
        assert!(lengths.iter().all(|&n| n == 220 || n == 221), "{lengths:?}");
        // Blocks 0..100 cover exactly one second.
        assert_eq!(lengths.iter().sum::<usize>(), 22_050);
        assert_eq!(p.poll(t0 + 1000 * MS).frames, 220);
    }

    #[test]
    fn one_poll_per_period_matches_the_rate_over_an_hour() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, 44_100, 10 * MS, 100_000);
        let mut total = 0;
        // Poll at irregular times (every 7 ms) for one hour of simulated time.
        let mut t = t0;
        while t < t0 + Duration::from_secs(3600) {
            total += p.poll(t).frames;
            t += 7 * MS;
        }
        let covered = p.next_deadline() - t0;
        assert_eq!(total as u128, 44_100 * covered.as_millis() / 1000);
    }

    #[test]
    fn a_long_stall_is_capped_and_reported_as_lost() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, 48_000, 10 * MS, 9_600);
        assert_eq!(p.poll(t0).frames, 480);
        let tick = p.poll(t0 + Duration::from_secs(10));
        assert_eq!(tick.frames, 9_600);
        assert_eq!(tick.frames + tick.lost, 480_000);
        assert_eq!(p.next_deadline(), t0 + Duration::from_millis(10_010));
    }

    #[test]
    fn a_tiny_burst_limit_still_allows_one_block() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, 48_000, 10 * MS, 1);
        assert_eq!(p.poll(t0).frames, 480);
    }
}

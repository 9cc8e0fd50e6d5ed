//! When the playback device takes its next block, sans-IO: [`Takes`] watches the device's
//! frame count at every tick and, once the device has taken its blocks at a steady pace
//! for a while, says when the next one is due ([`Takes::next_take_us`]).
//!
//! Why: a frame popped when the device has just taken a block waits a whole block at the
//! device before it is played, and the packet must have come before that pop, so the
//! arrival waits up to a block more for the pop. Knowing when the device comes back, the
//! pipeline can pop a frame as soon as its packet is here, or at a deadline just before
//! the device's next block if it is not ([`MediaPipeline::tick`](super::MediaPipeline::tick)):
//! the frame then plays at the next block rather than the one after. The media thread
//! is woken by each block the device takes, so the tick that sees the count move runs
//! right after the take; its time is the take's.
//!
//! Only a device whose takes are regular gets this: each one block, a block's time after
//! the one before (within [`TOLERANCE_US`]), [`STEADY`] in a row. A device that takes
//! audio in bursts (a PipeWire quantum against its blocks, a timer that falls behind) or
//! one that found the queue short (the media thread woke too late for a deadline) is left
//! to the pops at its takes, which have a whole block to spare; the latter for
//! [`BACK_OFF_US`].

/// How far from a block's time after the one before a take may come and count as regular,
/// µs: the media thread's wake-up and the device's own timer.
pub const TOLERANCE_US: u64 = 1_500;
/// Regular takes in a row before their pace is trusted.
pub const STEADY: u32 = 8;
/// How long a take that found the queue short keeps the pace untrusted, µs.
pub const BACK_OFF_US: u64 = 10_000_000;

/// The playback device's takes; see the module docs.
#[derive(Debug, Default, Clone)]
pub struct Takes {
    /// The device's count at the previous tick (`None` before the first).
    played: Option<u64>,
    /// Queued after the previous tick's writes.
    left: usize,
    /// When the latest take was seen, µs.
    last_take_us: Option<u64>,
    /// The device's block then, µs.
    block_us: u64,
    /// Regular takes in a row.
    steady: u32,
    /// Until when a take that found the queue short keeps the pace untrusted, µs.
    back_off_until_us: u64,
}

impl Takes {
    /// The device has taken `played` samples in all at `now_us`, in blocks of `block`
    /// samples at `rate`.
    pub fn observe(&mut self, now_us: u64, played: u64, block: u64, rate: u32) {
        let Some(before) = self.played.replace(played) else {
            return;
        };
        let took = played.saturating_sub(before);
        if took == 0 {
            return;
        }
        let block_us = block * 1_000_000 / u64::from(rate.max(1));
        let one_block = took == block && block > 0;
        let on_time = self
            .last_take_us
            .is_some_and(|last| now_us.saturating_sub(last).abs_diff(block_us) <= TOLERANCE_US);
        if took > self.left as u64 {
            // The device found the queue short.
            self.back_off_until_us = now_us + BACK_OFF_US;
        }
        self.steady = if one_block && on_time && block_us == self.block_us {
            self.steady.saturating_add(1)
        } else {
            0
        };
        self.block_us = block_us;
        self.last_take_us = Some(now_us);
    }

    /// What is queued after this tick's writes.
    pub fn wrote(&mut self, queued: usize) {
        self.left = queued;
    }

    /// When the device takes its next block, µs, if its takes are regular and that is
    /// still to come at `now_us`.
    pub fn next_take_us(&self, now_us: u64) -> Option<u64> {
        if self.steady < STEADY || now_us < self.back_off_until_us {
            return None;
        }
        let next = self.last_take_us? + self.block_us;
        (next > now_us).then_some(next)
    }

    /// Forgets the pace (a new device).
    pub fn reset(&mut self) {
        *self = Takes::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 48_000;
    const MS: u64 = 1_000;

    /// A device taking 10 ms blocks every 10 ms from `from` ms, with 480 queued each time.
    fn regular(t: &mut Takes, from: u64, blocks: u64) -> u64 {
        let mut played = t.played.unwrap_or(0);
        for k in 0..blocks {
            t.observe((from + 10 * k) * MS, played, 480, RATE);
            t.wrote(480);
            played += 480;
        }
        played
    }

    #[test]
    fn a_regular_device_is_trusted_after_a_few_takes() {
        let mut t = Takes::default();
        regular(&mut t, 0, 5);
        assert_eq!(t.next_take_us(45 * MS), None);
        regular(&mut t, 50, 10);
        // The last take was at 140 ms: the next is due at 150.
        assert_eq!(t.next_take_us(141 * MS), Some(150 * MS));
        // Once it is past, nothing is promised.
        assert_eq!(t.next_take_us(151 * MS), None);
    }

    #[test]
    fn a_burst_or_a_late_take_is_not_regular() {
        let mut t = Takes::default();
        let played = regular(&mut t, 0, 20);
        assert!(t.next_take_us(191 * MS).is_some());
        // Two blocks at once (a PipeWire quantum's catch-up).
        t.wrote(960);
        t.observe(200 * MS, played + 960, 480, RATE);
        assert_eq!(t.next_take_us(201 * MS), None);
        let mut t = Takes::default();
        let played = regular(&mut t, 0, 20);
        // A take 4 ms late.
        t.observe(194 * MS, played, 480, RATE);
        t.observe(204 * MS, played + 480, 480, RATE);
        assert_eq!(t.next_take_us(205 * MS), None);
    }

    #[test]
    fn a_take_that_found_the_queue_short_backs_off() {
        let mut t = Takes::default();
        let played = regular(&mut t, 0, 20);
        // Only 200 samples were queued when the device took its block.
        t.wrote(200);
        t.observe(200 * MS, played + 480, 480, RATE);
        regular(&mut t, 210, 20);
        assert_eq!(t.next_take_us(401 * MS), None);
        // Trusted again once the back-off is over.
        regular(&mut t, 10_400, 10);
        assert_eq!(t.next_take_us(10_491 * MS), Some(10_500 * MS));
    }
}

//! How much audio the playback device takes at once, learnt from what it takes between two
//! ticks, sans-IO: [`Demand::queue`] says how much to keep queued for it.
//!
//! A device's own block size (`last_block`, from the stream's counters) is not always what
//! it takes in one go: pipewire-pulse hands a stream room a 21.3 ms quantum at a time, so
//! two 20 ms blocks leave back to back every 16th time; PulseAudio's timer-driven sinks on
//! a loaded machine fall behind and catch up 27–41 ms at once; a media thread that was not
//! scheduled for a while finds the same. Keeping only one block plus a tick queued then runs
//! the queue dry, and the listener hears a gap. So the queue covers the most the device
//! took between two ticks in the last few seconds (two [`WINDOW_US`] buckets), plus a
//! tick: a device that takes audio evenly keeps the shortest queue (every millisecond here
//! is mouth-to-ear delay), a bursty one gets the margin it shows it needs, and a single
//! stall's margin is given back after at most two windows.

use super::{TICK, playback_queue};

/// How long a burst keeps the queue up: between one and two of these.
const WINDOW_US: u64 = 4_000_000;

/// What the device took between ticks recently.
#[derive(Debug, Default, Clone)]
pub struct Demand {
    /// Samples left queued after the previous tick's writes (`None` before the first).
    left: Option<usize>,
    /// The most taken between two ticks in the current window, and in the one before.
    current: usize,
    previous: usize,
    window_start_us: u64,
}

impl Demand {
    /// Samples to keep queued at this tick, given what is queued now (`queued`), the
    /// device's own block (`last_block`) and its `rate`.
    pub fn queue(&mut self, now_us: u64, queued: usize, last_block: u64, rate: u32) -> usize {
        if now_us.saturating_sub(self.window_start_us) >= WINDOW_US {
            // A window with nothing taken (a pause longer than a window) forgets both.
            self.previous = if now_us - self.window_start_us >= 2 * WINDOW_US {
                0
            } else {
                self.current
            };
            self.current = 0;
            self.window_start_us = now_us;
        }
        if let Some(left) = self.left {
            self.current = self.current.max(left.saturating_sub(queued));
        }
        let taken = self.current.max(self.previous) as u64;
        let tick = rate as usize * TICK.as_millis() as usize / 1000;
        // The device's own block counts at least, as before; a burst adds to it: the queue
        // must hold what the device takes in one go, plus what one tick may be late by.
        playback_queue(rate, last_block).max(taken as usize + tick)
    }

    /// What this tick left queued once its writes were done.
    pub fn wrote(&mut self, queued: usize) {
        self.left = Some(queued);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 48_000;
    const MS: u64 = 1_000;

    #[test]
    fn an_even_device_keeps_its_block_plus_a_tick() {
        let mut d = Demand::default();
        let mut queued = 0;
        for t in 0..1000u64 {
            let want = d.queue(t * 5 * MS, queued, 960, RATE);
            assert_eq!(want, 960 + 240);
            queued = want;
            d.wrote(queued);
            // A 20 ms device takes its block every fourth tick.
            if t % 4 == 3 {
                queued -= 960;
            }
        }
    }

    #[test]
    fn a_double_block_raises_the_queue_then_it_is_given_back() {
        let mut d = Demand::default();
        d.queue(0, 0, 960, RATE);
        d.wrote(1200);
        // Two 20 ms blocks between two ticks.
        assert_eq!(d.queue(5 * MS, 1200 - 1200, 960, RATE), 1200 + 240);
        d.wrote(1440);
        // Still there in the next window...
        assert_eq!(d.queue(WINDOW_US + 10 * MS, 1440, 960, RATE), 1440);
        d.wrote(1440);
        // ...and gone after two quiet windows.
        assert_eq!(d.queue(2 * WINDOW_US + 20 * MS, 1440, 960, RATE), 1200);
        d.wrote(1440);
        assert_eq!(d.queue(4 * WINDOW_US + 30 * MS, 1440, 960, RATE), 1200);
    }

    #[test]
    fn the_least_queue_stays_for_small_blocks() {
        let mut d = Demand::default();
        // The file backend's 10 ms blocks: the 15 ms floor applies.
        assert_eq!(d.queue(0, 0, 480, RATE), 720);
        d.wrote(720);
        assert_eq!(d.queue(5 * MS, 240, 480, RATE), 720);
    }
}

//! How much audio the playback device takes at once, learnt from what it takes between two
//! ticks, sans-IO: [`Demand::queue`] says how much to keep queued for it.
//!
//! A device's own block size (`last_block`, from the stream's counters) is not always what
//! it takes in one go: pipewire-pulse hands a stream room a 21.3 ms quantum at a time, so
//! two 20 ms blocks leave back to back every 16th time; PulseAudio's timer-driven sinks on
//! a loaded machine fall behind and catch up 27–41 ms at once; a media thread that was not
//! scheduled for a while finds the same. Keeping only one block queued then runs the queue
//! dry, and the listener hears a gap. So the queue covers the most the device took between
//! two ticks in the last few seconds (two [`WINDOW_US`] buckets). The media thread ticks
//! as soon as the device has taken a block, so what it queues then has a whole block's
//! time before the device comes back: a device that takes audio evenly keeps one block
//! queued (every millisecond more is mouth-to-ear delay), a bursty one gets the margin it
//! shows it needs, and a single stall's margin is given back after at most two windows.

use super::pipeline::Device;
use super::playback_queue;

/// How long a burst keeps the queue up: between one and two of these.
const WINDOW_US: u64 = 4_000_000;

/// What the device took between ticks recently.
#[derive(Debug, Default, Clone)]
pub struct Demand {
    /// Samples left queued after the previous tick's writes (`None` before the first).
    left: Option<usize>,
    /// What the device had taken at the previous tick.
    played: u64,
    /// The most taken between two ticks in the current window, and in the one before.
    current: usize,
    previous: usize,
    window_start_us: u64,
}

impl Demand {
    /// Samples to keep queued at this tick for `device` at `rate`.
    pub fn queue(&mut self, now_us: u64, device: Device, rate: u32) -> usize {
        let Device {
            last_block, played, ..
        } = device;
        // What the device took since the previous tick, by its own count (what it found
        // missing included): reading it from the queue would credit a block taken while
        // the tick was writing to the next tick.
        let took = usize::try_from(played.saturating_sub(self.played)).unwrap_or(usize::MAX);
        self.played = played;
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
            // At most a block more than there was: a burst larger than the queue is learnt
            // in a few steps, and a media thread that was not scheduled for a while (no
            // burst of the device's) costs the queue only a block for a while.
            let block = usize::try_from(last_block).unwrap_or(usize::MAX);
            self.current = self.current.max(took.min(left.saturating_add(block)));
        }
        let taken = self.current.max(self.previous);
        // The device's own block counts at least; a burst raises it: the queue must hold
        // what the device takes before the media thread can top it up again.
        playback_queue(rate, last_block).max(taken)
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
    const S: u64 = 1_000_000;

    /// A device with `queued` samples waiting that has taken `played` in all.
    fn dev(queued: usize, last_block: u64, played: u64) -> Device {
        Device {
            queued,
            last_block,
            played,
        }
    }

    #[test]
    fn an_even_device_keeps_its_block() {
        let mut d = Demand::default();
        let (mut queued, mut played) = (0, 0);
        for t in 0..1000u64 {
            let want = d.queue(t * 20 * MS, dev(queued, 960, played), RATE);
            assert_eq!(want, 960);
            queued = want;
            d.wrote(queued);
            // A 20 ms device takes its block, and the media thread ticks right after.
            queued -= 960;
            played += 960;
        }
    }

    #[test]
    fn a_block_taken_while_the_tick_wrote_is_not_a_burst() {
        let mut d = Demand::default();
        assert_eq!(d.queue(0, dev(0, 480, 0), RATE), 480);
        // The tick wrote 480, the device took a block meanwhile: 0 left, not 480.
        d.wrote(480);
        // The next tick finds the device took one more block: two since the first tick,
        // but only one in the interval, by its own count.
        assert_eq!(d.queue(10 * MS, dev(0, 480, 480), RATE), 480);
    }

    #[test]
    fn a_double_block_raises_the_queue_then_it_is_given_back() {
        let mut d = Demand::default();
        d.queue(0, dev(0, 960, 0), RATE);
        d.wrote(1920);
        // Two 20 ms blocks between two ticks.
        assert_eq!(d.queue(5 * MS, dev(0, 960, 1920), RATE), 1920);
        d.wrote(1920);
        // Still there in the next window...
        assert_eq!(
            d.queue(WINDOW_US + 10 * MS, dev(1920, 960, 1920), RATE),
            1920
        );
        d.wrote(1920);
        // ...and gone after two quiet windows.
        assert_eq!(
            d.queue(2 * WINDOW_US + 20 * MS, dev(1920, 960, 1920), RATE),
            960
        );
        d.wrote(1920);
        assert_eq!(
            d.queue(4 * WINDOW_US + 30 * MS, dev(1920, 960, 1920), RATE),
            960
        );
    }

    #[test]
    fn a_burst_larger_than_the_queue_is_learnt_a_block_at_a_time() {
        let mut d = Demand::default();
        assert_eq!(d.queue(0, dev(0, 480, 0), RATE), 480);
        d.wrote(480);
        // The device stalled and then took four blocks at once: it found one.
        assert_eq!(d.queue(40 * MS, dev(0, 480, 1920), RATE), 960);
        d.wrote(960);
        assert_eq!(d.queue(50 * MS, dev(960, 480, 1920), RATE), 960);
        // Next time it finds two.
        assert_eq!(d.queue(2 * S, dev(0, 480, 3840), RATE), 1440);
        d.wrote(1440);
        assert_eq!(d.queue(4 * S, dev(0, 480, 5760), RATE), 1920);
    }

    #[test]
    fn before_the_first_block_the_least_queue_applies() {
        let mut d = Demand::default();
        assert_eq!(d.queue(0, dev(0, 0, 0), RATE), 480);
        d.wrote(480);
        // The file backend's 10 ms blocks.
        assert_eq!(d.queue(10 * MS, dev(0, 480, 480), RATE), 480);
    }
}

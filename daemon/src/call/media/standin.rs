//! Stand-ins for a device that does not work, on the media thread's clock: [`Silence`]
//! delivers as much silence as a microphone would have captured, [`Discard`] takes what a
//! speaker would have played and drops it. With them the pipeline ticks as if both devices
//! were there, so a call with one dead direction still carries the other (the far side
//! keeps hearing this side's microphone, or this side keeps hearing the far side), and
//! the jitter buffer is drained at the real rate rather than all at once or never.

use std::time::Duration;

/// Silence at `rate`, as much as the time since [`Silence::restart`] calls for.
#[derive(Debug)]
pub struct Silence {
    rate: u32,
    since: Duration,
    given: u64,
}

impl Silence {
    pub fn new(rate: u32, now: Duration) -> Silence {
        Silence {
            rate,
            since: now,
            given: 0,
        }
    }

    /// The rate it delivers at: the pipeline's capture rate while it stands in.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Starts counting again at `now` (the stand-in takes over from a device).
    pub fn restart(&mut self, rate: u32, now: Duration) {
        *self = Silence::new(rate, now);
    }

    /// Fills the start of `out` with the silence due at `now`; returns how much. What does
    /// not fit comes with the next call.
    pub fn read(&mut self, now: Duration, out: &mut [f32]) -> usize {
        let due = samples(self.rate, now.saturating_sub(self.since)).saturating_sub(self.given);
        let n = (due as usize).min(out.len());
        out[..n].fill(0.0);
        self.given += n as u64;
        n
    }
}

/// A speaker at `rate` that plays into nothing: what is written drains in real time.
#[derive(Debug)]
pub struct Discard {
    rate: u32,
    /// When it took over.
    started: Duration,
    since: Duration,
    /// Samples written since `since`.
    written: u64,
}

impl Discard {
    /// The block a device of this kind would take at once: 10 ms, like the file backend.
    const BLOCK_MS: u64 = 10;

    pub fn new(rate: u32, now: Duration) -> Discard {
        Discard {
            rate,
            started: now,
            since: now,
            written: 0,
        }
    }

    /// Starts empty again at `now`.
    pub fn restart(&mut self, rate: u32, now: Duration) {
        *self = Discard::new(rate, now);
    }

    /// Samples written and not yet "played" at `now`.
    pub fn queued(&mut self, now: Duration) -> usize {
        let played = samples(self.rate, now.saturating_sub(self.since));
        if played >= self.written {
            // Ran dry: count again from now, so an empty stretch is not credited later.
            self.since = now;
            self.written = 0;
            return 0;
        }
        (self.written - played) as usize
    }

    /// Samples "played" since the stand-in took over at `now`: all of the time's worth,
    /// as a device that plays silence when it runs dry.
    pub fn played(&self, now: Duration) -> u64 {
        samples(self.rate, now.saturating_sub(self.started))
    }

    /// What the pipeline reads as the device's latest block.
    pub fn last_block(&self) -> u64 {
        u64::from(self.rate) * Self::BLOCK_MS / 1000
    }

    pub fn write(&mut self, samples: &[f32]) {
        self.written += samples.len() as u64;
    }
}

fn samples(rate: u32, elapsed: Duration) -> u64 {
    (u128::from(rate) * elapsed.as_micros() / 1_000_000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn silence_comes_at_the_device_rate_whatever_the_ticks() {
        let mut s = Silence::new(48_000, 100 * MS);
        let mut buf = [1f32; 4800];
        assert_eq!(s.read(100 * MS, &mut buf), 0);
        let mut total = 0;
        for t in [103, 105, 111, 170, 170, 1100] {
            total += s.read(t * MS, &mut buf);
        }
        // A full second, in pieces no larger than the buffer.
        assert!(total < 48_000);
        total += s.read(1100 * MS, &mut buf);
        while total < 48_000 {
            let n = s.read(1100 * MS, &mut buf);
            assert!(n > 0);
            total += n;
        }
        assert_eq!(total, 48_000);
        assert_eq!(s.read(1100 * MS, &mut buf), 0);
        assert!(buf.iter().all(|x| *x == 0.0));
        s.restart(8_000, 2000 * MS);
        assert_eq!(s.read(2010 * MS, &mut buf), 80);
    }

    #[test]
    fn discard_drains_in_real_time_and_never_goes_below_empty() {
        let mut d = Discard::new(48_000, Duration::ZERO);
        assert_eq!(d.queued(Duration::ZERO), 0);
        d.write(&[0.0; 960]);
        assert_eq!(d.queued(Duration::ZERO), 960);
        assert_eq!(d.queued(10 * MS), 480);
        assert_eq!(d.queued(30 * MS), 0);
        // The empty stretch is not credited to what comes next.
        d.write(&[0.0; 480]);
        assert_eq!(d.queued(30 * MS), 480);
        assert_eq!(d.queued(35 * MS), 240);
        assert_eq!(d.last_block(), 480);
        assert_eq!(d.played(35 * MS), 1680);
    }
}

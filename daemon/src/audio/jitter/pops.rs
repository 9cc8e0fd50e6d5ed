//! When the pops come: how irregular the playout side's requests for frames are.
//!
//! The media thread pops a frame when the playback device has taken audio from its queue,
//! so the pops follow the device's consumption, and a device that takes audio in bursts
//! makes bursty pops. PipeWire is the common case: pipewire-pulse asks a client for audio a
//! graph quantum at a time (1024 samples at 48 kHz by default, 21.3 ms), so 20 ms writes come
//! back 21.3 ms apart and then, every 16th, two at once; the pop for the second comes a whole
//! frame early. Judged against a perfect 20 ms clock, such a pop sees a frame less delay
//! than its neighbours, although nothing on the network changed.
//!
//! Pop `k` of a stream at `now` has the *phase* `now − k · frame`: constant for a regular
//! device, and spread over up to a frame (or more) for a bursty one. [`PopClock::record`]
//! keeps the phases of the last [`POP_WINDOW`] pops and says how much later than the
//! earliest of them the current pop comes; the jitter buffer judges its delay by the
//! earliest pops, which are the ones a missing packet would hurt. Skips and stretches do
//! not move the phase (they change what is played, not when the device asks), while a
//! shorter silence (`rephase_us`) does, by exactly what it trims. A frame played longer or
//! shorter (time-scaled) moves it too, and [`PopClock::shift`] moves the recorded phases
//! with it, so that it does not look like the device's irregularity.

/// Pops remembered: about 2.5 s of 20 ms frames, several times the longest burst cycle
/// seen (a 2048-sample quantum against 20 ms writes repeats every 32 writes).
pub(super) const POP_WINDOW: usize = 128;

/// The phases of recent pops, in a ring allocated once.
#[derive(Debug)]
pub(super) struct PopClock {
    phases: Vec<i64>,
    next: usize,
    len: usize,
    /// Pops since the window was last cleared.
    count: i64,
    last_us: Option<i64>,
}

impl PopClock {
    pub(super) fn new() -> Self {
        Self {
            phases: vec![0; POP_WINDOW],
            next: 0,
            len: 0,
            count: 0,
            last_us: None,
        }
    }

    /// Forgets every pop: a new stream, or a pause in playout.
    pub(super) fn clear(&mut self) {
        self.next = 0;
        self.len = 0;
        self.count = 0;
        self.last_us = None;
    }

    /// Records a pop at `now` (µs) of a frame of `frame_us`, and returns how much later
    /// (µs, ≥ 0) it comes than the earliest of the recent pops would at the same point of
    /// the stream. Pops more than `pause_us` apart start over: a stream on hold is not a
    /// burst.
    pub(super) fn record(&mut self, now: i64, frame_us: i64, pause_us: i64) -> i64 {
        if self.last_us.is_some_and(|last| now - last > pause_us) {
            self.clear();
        }
        self.last_us = Some(now);
        let phase = now.saturating_sub(self.count.saturating_mul(frame_us));
        self.count += 1;
        self.phases[self.next] = phase;
        self.next = (self.next + 1) % self.phases.len();
        self.len = (self.len + 1).min(self.phases.len());
        let earliest = self.phases[..self.len]
            .iter()
            .copied()
            .min()
            .unwrap_or(phase);
        phase - earliest
    }

    /// The playout was moved by `delta_us` on purpose (a frame played longer or shorter):
    /// the pops to come are that much later, and so, as far as their spacing goes, were the
    /// ones before.
    pub(super) fn shift(&mut self, delta_us: i64) {
        for phase in &mut self.phases[..self.len] {
            *phase = phase.saturating_add(delta_us);
        }
    }

    /// How far apart the earliest and the latest recent pops are, µs: the playout side's
    /// own jitter, for the statistics.
    pub(super) fn spread_us(&self) -> i64 {
        let live = &self.phases[..self.len];
        match (live.iter().min(), live.iter().max()) {
            (Some(lo), Some(hi)) => hi - lo,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: i64 = 20_000;

    #[test]
    fn regular_pops_are_never_late() {
        let mut clock = PopClock::new();
        for k in 0..300 {
            assert_eq!(clock.record(7_000 + k * F, F, 200_000), 0);
        }
        assert_eq!(clock.spread_us(), 0);
    }

    #[test]
    fn quantum_sized_writes_make_pops_late_by_up_to_a_frame() {
        // 1024-sample requests against 960-sample writes: 15 writes 21.33 ms apart, then
        // one at once. The pop after the catch-up is the earliest; the others drift later.
        let mut clock = PopClock::new();
        let mut now = 0;
        let mut lateness = Vec::new();
        for k in 0..160 {
            if k % 16 != 0 {
                now += 21_333;
            }
            lateness.push(clock.record(now, F, 200_000));
        }
        let steady = &lateness[32..];
        assert_eq!(*steady.iter().min().expect("pops"), 0);
        let most = *steady.iter().max().expect("pops");
        assert!((19_000..=21_000).contains(&most), "{most}");
        assert!((19_000..=21_000).contains(&clock.spread_us()));
    }

    #[test]
    fn a_pause_longer_than_allowed_starts_over() {
        let mut clock = PopClock::new();
        for k in 0..10 {
            clock.record(k * F, F, 200_000);
        }
        // On hold for a second: the next pop would look a second late.
        assert_eq!(clock.record(10 * F + 1_000_000, F, 200_000), 0);
        assert_eq!(clock.record(11 * F + 1_000_000, F, 200_000), 0);
    }

    #[test]
    fn early_pops_leave_the_window_after_it_is_full() {
        let mut clock = PopClock::new();
        clock.record(0, F, 200_000);
        // Every later pop 5 ms behind the first one's phase.
        for k in 1..POP_WINDOW as i64 {
            assert_eq!(clock.record(k * F + 5_000, F, 200_000), 5_000);
        }
        assert_eq!(clock.record(POP_WINDOW as i64 * F + 5_000, F, 200_000), 0);
    }
}

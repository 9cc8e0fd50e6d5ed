//! The jitter floor a stream keeps while its sender adds copies of frames two or more
//! frames back (RED-style redundancy, `adapt.rs`): the copy of a lost frame comes that many
//! frames after it, as late as any packet, so the buffer must hold that long for the copy
//! to be played. One rule for the pipeline's own stream and a conference's further streams
//! (`streams.rs`), with the copies of the last [`COPIES_HOLD_US`]:
//! - copies at most two frames back: the farthest set the floor while frames of the
//!   stream were lost (not repaired) in the last [`LOSS_HOLD_US`];
//! - deep copies ([`DEEP_FROM`] frames back or more, against bursts): the farthest set it
//!   only while the network lost runs of frames ([`RUN_MIN`](super::loss_runs::RUN_MIN)
//!   in a row, `loss_runs.rs`, counted before any repair) in the last [`LOSS_HOLD_US`];
//!   after lone losses the nearest copies do, if two or more back (a nearer copy, FEC in
//!   the next packet: the pipeline's floor of a frame). So a sender may send deep copies
//!   from a call's first frame: a lone loss on a randomly lossy path does not make the
//!   receiver time-scale its way up to six frames, and a bursty path gets the floor at
//!   its first run and keeps it while runs come, repaired or not.
//!
//! On a path that loses nothing the copies are not needed, and the buffer does not hold
//! for them: a sender may send copies before it knows the path (the start of a call)
//! without adding delay to a clean call.

use super::loss_runs::LossRuns;

/// Beyond the frames the farthest copy is back, the floor holds the measured jitter and
/// [`JITTER_MARGIN_MS`], at least this, ms: the oldest copy must be there before its
/// frame is due.
pub const COPIES_MARGIN_MS: u32 = 5;
/// Added to the measured jitter, ms: the noise of arrival and pop times.
pub const JITTER_MARGIN_MS: u32 = 2;
/// How long after the last copy two or more frames back its floor is kept, µs.
pub const COPIES_HOLD_US: u64 = 5_000_000;
/// How long after the last lost frame (the last run, for deep copies) copies are held
/// for, µs.
pub const LOSS_HOLD_US: u64 = 10_000_000;
/// Copies this many frames back or more are deep: held for only after a run of losses.
pub const DEEP_FROM: u8 = 3;

/// The jitter floor, ms, while copies come `back` frames late on a path with `jitter_ms`
/// of measured jitter, in frames of `frame_ms`.
pub fn copies_floor_ms(back: u8, frame_ms: u32, jitter_ms: u32) -> u32 {
    u32::from(back) * frame_ms + (jitter_ms + JITTER_MARGIN_MS).max(COPIES_MARGIN_MS)
}

/// How far back the copies of a stream came lately (the farthest, two frames or more,
/// and the nearest), and whether its frames were lost, alone or in runs; see the module
/// docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopiesBack {
    /// The farthest copies two frames back or more but not deep, and until when they are
    /// held, µs.
    shallow: Option<(u8, u64)>,
    /// The farthest deep copies and until when they are held, µs.
    held: Option<(u8, u64)>,
    /// The nearest copies and until when they are held, µs.
    near: Option<(u8, u64)>,
    /// The stream's lost frames so far, and until when the last loss keeps the floor, µs.
    lost: u64,
    loss_until: Option<u64>,
    /// The network's loss runs, and until when the last keeps deep copies' floor, µs.
    runs: LossRuns,
    run_until: Option<u64>,
}

impl CopiesBack {
    /// A copy `seq_back` frames back arrived at `now_us`. The floor follows the farthest
    /// copies (deep ones and the others apart: a sender that left deep copies for copies
    /// two back is held for those at once); nearer ones do not hold it up.
    pub fn arrived(&mut self, now_us: u64, seq_back: u8) {
        let slot = if seq_back >= DEEP_FROM {
            &mut self.held
        } else {
            &mut self.shallow
        };
        if seq_back >= 2 && slot.is_none_or(|(back, _)| back <= seq_back) {
            *slot = Some((seq_back, now_us + COPIES_HOLD_US));
        }
        if self
            .near
            .is_none_or(|(back, until)| seq_back <= back || now_us >= until)
        {
            self.near = Some((seq_back, now_us + COPIES_HOLD_US));
        }
    }

    /// A frame of the stream (not a copy) with `seq` arrived at `now_us`.
    pub fn frame_arrived(&mut self, now_us: u64, seq: u32) {
        if self.runs.arrived(seq) {
            self.run_until = Some(now_us + LOSS_HOLD_US);
        }
    }

    /// The stream's jitter buffer has counted `lost` frames lost so far, at `now_us`.
    pub fn lost_so_far(&mut self, now_us: u64, lost: u64) {
        if lost != self.lost {
            self.lost = lost;
            self.loss_until = Some(now_us + LOSS_HOLD_US);
        }
    }

    /// How far back copies came in the last [`COPIES_HOLD_US`] at `now_us`, frames.
    pub fn back(&mut self, now_us: u64) -> Option<u8> {
        for slot in [&mut self.shallow, &mut self.held] {
            if slot.is_some_and(|(_, until)| now_us >= until) {
                *slot = None;
            }
        }
        self.held.or(self.shallow).map(|(back, _)| back)
    }

    /// The floor for those copies at `now_us` ([`copies_floor_ms`]), if any came and
    /// frames were lost as the module docs say.
    pub fn floor_ms(&mut self, now_us: u64, frame_ms: u32, jitter_ms: u32) -> Option<u32> {
        let expire = |until: &mut Option<u64>| {
            if until.is_some_and(|until| now_us >= until) {
                *until = None;
            }
            until.is_some()
        };
        let lost = expire(&mut self.loss_until);
        let run = expire(&mut self.run_until);
        self.back(now_us)?;
        let shallow = self.shallow.map(|(back, _)| back).filter(|_| lost);
        let deep = self.held.and_then(|(far, _)| {
            if run {
                return Some(far);
            }
            let near = self
                .near
                .filter(|&(_, until)| now_us < until)
                .map_or(0, |(back, _)| back);
            (lost && near >= 2).then_some(near)
        });
        let back = shallow.max(deep)?;
        Some(copies_floor_ms(back, frame_ms, jitter_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::media::loss_runs::{RUN_MIN, SETTLE_FRAMES};

    /// Frames `from..to` arrive at `now_us`, but those `lost` says.
    fn frames(c: &mut CopiesBack, now_us: u64, from: u32, to: u32, lost: impl Fn(u32) -> bool) {
        (from..to)
            .filter(|&s| !lost(s))
            .for_each(|s| c.frame_arrived(now_us, s));
    }

    #[test]
    fn the_floor_follows_the_farthest_copies_until_the_hold_ends() {
        let mut c = CopiesBack::default();
        c.lost_so_far(0, 1);
        c.arrived(0, 1);
        assert_eq!(c.floor_ms(0, 20, 0), None, "a copy one back needs no floor");
        c.arrived(0, 2);
        assert_eq!(c.floor_ms(0, 20, 0), Some(2 * 20 + COPIES_MARGIN_MS));
        assert_eq!(c.floor_ms(0, 20, 30), Some(2 * 20 + 30 + JITTER_MARGIN_MS));
        // Deep copies after a run of losses.
        frames(&mut c, 0, 0, 40, |s| (10..10 + RUN_MIN).contains(&s));
        c.arrived(0, 4);
        assert_eq!(c.floor_ms(0, 20, 0), Some(4 * 20 + COPIES_MARGIN_MS));
        // A nearer copy later does not bring the floor down, and holds only its own.
        c.arrived(1_000_000, 2);
        assert_eq!(c.back(COPIES_HOLD_US - 1), Some(4));
        assert_eq!(c.back(COPIES_HOLD_US), Some(2));
        assert_eq!(c.back(1_000_000 + COPIES_HOLD_US), None);
        c.arrived(COPIES_HOLD_US + 1, 2);
        assert_eq!(c.floor_ms(COPIES_HOLD_US + 1, 10, 0), Some(2 * 10 + 5));
    }

    #[test]
    fn copies_on_a_path_that_loses_nothing_add_no_delay() {
        let mut c = CopiesBack::default();
        c.lost_so_far(0, 0);
        c.arrived(0, 2);
        frames(&mut c, 0, 0, 100, |_| false);
        assert_eq!(c.floor_ms(0, 20, 0), None);
        // The first loss: the floor for the copies, until the loss is long past.
        c.lost_so_far(1_000_000, 3);
        c.arrived(1_000_000, 2);
        assert_eq!(
            c.floor_ms(1_000_000, 20, 0),
            Some(2 * 20 + COPIES_MARGIN_MS)
        );
        c.arrived(1_000_000 + LOSS_HOLD_US, 2);
        assert_eq!(c.floor_ms(1_000_000 + LOSS_HOLD_US, 20, 0), None);
    }

    #[test]
    fn deep_copies_are_held_for_only_after_a_run_of_losses_and_while_runs_come() {
        let mut c = CopiesBack::default();
        // Copies one and six back (a call's start), lone losses and pairs: the nearest
        // copy repairs them, no floor for the deep ones.
        c.arrived(0, 1);
        c.arrived(0, 6);
        frames(&mut c, 0, 0, 200, |s| {
            s % 10 == 3 || s % 40 == 20 || s % 40 == 21
        });
        c.lost_so_far(0, 30);
        assert_eq!(c.floor_ms(0, 20, 0), None);
        // A run of three: six frames and the margin, until no run came for the hold, even
        // if the copies repaired every frame since (no loss counted at playout).
        frames(&mut c, 1_000_000, 200, 230, |s| (210..213).contains(&s));
        let floor = Some(6 * 20 + COPIES_MARGIN_MS);
        assert_eq!(c.floor_ms(1_000_000, 20, 0), floor);
        for k in 1..LOSS_HOLD_US / 1_000_000 {
            let now = 1_000_000 + k * 1_000_000;
            c.arrived(now, 1);
            c.arrived(now, 6);
            assert_eq!(c.floor_ms(now, 20, 0), floor, "{k} s later");
        }
        // Another run keeps it.
        let now = LOSS_HOLD_US;
        let base = 230 + SETTLE_FRAMES as u32;
        frames(&mut c, now, base, base + 30, |s| {
            (base + 5..base + 9).contains(&s)
        });
        c.arrived(now + LOSS_HOLD_US - 1, 6);
        assert_eq!(c.floor_ms(now + LOSS_HOLD_US - 1, 20, 0), floor);
        assert_eq!(c.floor_ms(now + LOSS_HOLD_US, 20, 0), None);
    }

    #[test]
    fn copies_two_back_are_held_for_after_any_loss_while_deep_ones_of_the_start_still_count() {
        let mut c = CopiesBack::default();
        // The start's copies one and six back, then copies one and two back (high random
        // loss): a lone loss holds two frames for those at once, not six for the deep
        // copies that came a moment ago, nor none.
        c.arrived(0, 1);
        c.arrived(0, 6);
        c.arrived(1_000_000, 1);
        c.arrived(1_000_000, 2);
        frames(&mut c, 1_000_000, 0, 100, |s| s % 10 == 3);
        c.lost_so_far(1_000_000, 1);
        assert_eq!(c.back(1_000_000), Some(6));
        assert_eq!(
            c.floor_ms(1_000_000, 20, 0),
            Some(2 * 20 + COPIES_MARGIN_MS)
        );
    }

    #[test]
    fn deep_copies_alone_are_held_for_at_their_nearest_after_a_lone_loss() {
        let mut c = CopiesBack::default();
        c.arrived(0, 3);
        c.arrived(0, 6);
        frames(&mut c, 0, 0, 100, |s| s == 50);
        c.lost_so_far(0, 1);
        assert_eq!(c.floor_ms(0, 20, 0), Some(3 * 20 + COPIES_MARGIN_MS));
    }
}

//! Runs of frames the network lost, seen from the frames that arrive (not their copies),
//! sans-IO: [`LossRuns::arrived`] takes each frame's sequence number and says when a run
//! of [`RUN_MIN`] or more missing sequence numbers is settled. A sequence number is
//! settled once the newest frame is [`SETTLE_FRAMES`] ahead of it: reordering on a
//! jittery path moves a frame by a few places, so a gap that later fills is no loss.
//! What copies or FEC repaired later does not matter here: the receiver's floor for deep
//! copies (`copies_floor.rs`) is for the network's runs, whether or not the copies hid
//! them, so it is kept while they come and not dropped and raised again.

/// Lost frames in a row that make a run the deep copies are held for: a lone loss, or
/// two in a row, are what random loss gives (at 10 %, one loss in a hundred starts a run
/// of three), while a bursty path gives runs of three and more often (with a mean burst
/// of 3, four runs in nine).
pub const RUN_MIN: u32 = 3;
/// How far behind the newest frame a sequence number is settled (arrived or lost).
pub const SETTLE_FRAMES: i64 = 8;
/// A sequence step larger than this is a restarted stream, not loss.
const RESTART_JUMP: i64 = 1000;
/// How many sequence numbers behind the newest are remembered.
const HISTORY: i64 = 64;

/// See the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LossRuns {
    /// The newest frame's extended sequence number, once one came.
    newest: Option<i64>,
    /// Bit k: sequence number `newest - k` arrived.
    arrived: u64,
    /// The lowest sequence number not yet settled.
    unsettled: i64,
    /// Missing sequence numbers settled in a row so far.
    run: u32,
}

impl LossRuns {
    /// A frame with `seq` arrived. Returns whether a run of [`RUN_MIN`] lost frames (or
    /// more) was settled by it.
    pub fn arrived(&mut self, seq: u32) -> bool {
        let Some(newest) = self.newest else {
            self.restart(seq);
            return false;
        };
        let eseq = newest + i64::from(seq.wrapping_sub(newest as u32) as i32);
        if (eseq - newest).abs() > RESTART_JUMP {
            self.restart(seq);
            return false;
        }
        if eseq <= newest {
            if newest - eseq < HISTORY {
                self.arrived |= 1 << (newest - eseq);
            }
            return false;
        }
        // Settled by the bits as they were: a sequence number not yet settled is never
        // further than the settling distance behind the newest.
        let bits = self.arrived;
        let came = |s: i64| {
            s == eseq || (s <= newest && newest - s < HISTORY && bits & (1 << (newest - s)) != 0)
        };
        let mut run_found = false;
        while self.unsettled <= eseq - SETTLE_FRAMES {
            if came(self.unsettled) {
                self.run = 0;
            } else {
                self.run = self.run.saturating_add(1);
                run_found |= self.run == RUN_MIN;
            }
            self.unsettled += 1;
        }
        let step = eseq - newest;
        self.arrived = if step >= HISTORY { 0 } else { bits << step } | 1;
        self.newest = Some(eseq);
        run_found
    }

    fn restart(&mut self, seq: u32) {
        *self = LossRuns {
            newest: Some(i64::from(seq)),
            arrived: 1,
            unsettled: i64::from(seq),
            run: 0,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames `0..n` in order but those `lost` says; the sequence numbers whose arrival
    /// settled a run.
    fn runs(n: u32, lost: impl Fn(u32) -> bool) -> Vec<u32> {
        let mut r = LossRuns::default();
        (0..n).filter(|&s| !lost(s) && r.arrived(s)).collect()
    }

    #[test]
    fn a_run_is_settled_once_the_newest_frame_is_far_enough_past_it() {
        // 10, 11, 12 lost: settled when 12 is SETTLE_FRAMES behind the newest.
        assert_eq!(
            runs(40, |s| (10..13).contains(&s)),
            [12 + SETTLE_FRAMES as u32]
        );
        // A longer run counts once.
        assert_eq!(
            runs(40, |s| (10..18).contains(&s)),
            [12 + SETTLE_FRAMES as u32]
        );
    }

    #[test]
    fn lone_losses_and_pairs_are_no_run() {
        assert!(runs(200, |s| s % 7 == 3 || s % 7 == 4).is_empty());
        assert!(runs(200, |s| s % 5 == 0).is_empty());
    }

    #[test]
    fn reordering_within_the_settling_distance_is_no_loss() {
        let mut r = LossRuns::default();
        // 3, 4, 5 come after 8: a gap of three that fills.
        for s in [0, 1, 2, 6, 7, 8, 3, 4, 5] {
            assert!(!r.arrived(s));
        }
        for s in 9..40 {
            assert!(!r.arrived(s), "{s}");
        }
    }

    #[test]
    fn a_restarted_stream_and_wrapping_numbers_are_no_run() {
        let mut r = LossRuns::default();
        for s in 0..20 {
            r.arrived(s);
        }
        for s in 5_000..5_040 {
            assert!(!r.arrived(s));
        }
        let mut r = LossRuns::default();
        for s in u32::MAX - 10..=u32::MAX {
            r.arrived(s);
        }
        for s in 0..20 {
            assert!(!r.arrived(s));
        }
    }

    #[test]
    fn an_outage_longer_than_the_history_is_a_run() {
        let mut r = LossRuns::default();
        for s in 0..20 {
            r.arrived(s);
        }
        assert!(r.arrived(200));
    }
}

//! The jitter floor a stream keeps while its sender adds copies of frames two or more
//! frames back (RED-style redundancy, `adapt.rs`): the copy of a lost frame comes that many
//! frames after it, as late as any packet, so the buffer must hold that long for the copy
//! to be played. One rule for the pipeline's own stream and a conference's further streams
//! (`streams.rs`): the farthest copies of the last [`COPIES_HOLD_US`] set it, while frames
//! of the stream were lost in the last [`LOSS_HOLD_US`]. On a path that loses nothing the
//! copies are not needed, and the buffer does not hold for them: a sender may send copies
//! before it knows the path (the start of a call) without adding delay to a clean call.

/// Beyond the frames the farthest copy is back, the floor holds the measured jitter and
/// [`JITTER_MARGIN_MS`], at least this, ms: the oldest copy must be there before its
/// frame is due.
pub const COPIES_MARGIN_MS: u32 = 5;
/// Added to the measured jitter, ms: the noise of arrival and pop times.
pub const JITTER_MARGIN_MS: u32 = 2;
/// How long after the last copy two or more frames back its floor is kept, µs.
pub const COPIES_HOLD_US: u64 = 5_000_000;
/// How long after the last lost frame copies are held for, µs.
pub const LOSS_HOLD_US: u64 = 10_000_000;

/// The jitter floor, ms, while copies come `back` frames late on a path with `jitter_ms`
/// of measured jitter, in frames of `frame_ms`.
pub fn copies_floor_ms(back: u8, frame_ms: u32, jitter_ms: u32) -> u32 {
    u32::from(back) * frame_ms + (jitter_ms + JITTER_MARGIN_MS).max(COPIES_MARGIN_MS)
}

/// The farthest back the copies of a stream came lately (two frames or more), and until
/// when its floor is kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopiesBack {
    held: Option<(u8, u64)>,
    /// The stream's lost frames so far, and until when the last loss keeps the floor, µs.
    lost: u64,
    loss_until: Option<u64>,
}

impl CopiesBack {
    /// A copy `seq_back` frames back arrived at `now_us`. The floor follows the farthest
    /// copies; nearer ones do not hold it up.
    pub fn arrived(&mut self, now_us: u64, seq_back: u8) {
        if seq_back >= 2 && self.held.is_none_or(|(back, _)| back <= seq_back) {
            self.held = Some((seq_back, now_us + COPIES_HOLD_US));
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
        if self.held.is_some_and(|(_, until)| now_us >= until) {
            self.held = None;
        }
        self.held.map(|(back, _)| back)
    }

    /// The floor for those copies at `now_us` ([`copies_floor_ms`]), if any came and
    /// frames were lost in the last [`LOSS_HOLD_US`].
    pub fn floor_ms(&mut self, now_us: u64, frame_ms: u32, jitter_ms: u32) -> Option<u32> {
        if self.loss_until.is_some_and(|until| now_us >= until) {
            self.loss_until = None;
        }
        let back = self.back(now_us)?;
        self.loss_until?;
        Some(copies_floor_ms(back, frame_ms, jitter_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_follows_the_farthest_copies_until_the_hold_ends() {
        let mut c = CopiesBack::default();
        c.lost_so_far(0, 1);
        c.arrived(0, 1);
        assert_eq!(c.floor_ms(0, 20, 0), None, "a copy one back needs no floor");
        c.arrived(0, 4);
        assert_eq!(c.floor_ms(0, 20, 0), Some(4 * 20 + COPIES_MARGIN_MS));
        assert_eq!(c.floor_ms(0, 20, 30), Some(4 * 20 + 30 + JITTER_MARGIN_MS));
        // A nearer copy later does not bring the floor down nor hold it up.
        c.arrived(1_000_000, 2);
        assert_eq!(c.back(COPIES_HOLD_US - 1), Some(4));
        assert_eq!(c.back(COPIES_HOLD_US), None);
        c.arrived(COPIES_HOLD_US + 1, 2);
        assert_eq!(c.floor_ms(COPIES_HOLD_US + 1, 10, 0), Some(2 * 10 + 5));
    }

    #[test]
    fn copies_on_a_path_that_loses_nothing_add_no_delay() {
        let mut c = CopiesBack::default();
        c.lost_so_far(0, 0);
        c.arrived(0, 6);
        assert_eq!(c.floor_ms(0, 20, 0), None);
        // The first loss: the floor for the copies, until the loss is long past.
        c.lost_so_far(1_000_000, 3);
        c.arrived(1_000_000, 6);
        assert_eq!(
            c.floor_ms(1_000_000, 20, 0),
            Some(6 * 20 + COPIES_MARGIN_MS)
        );
        c.arrived(1_000_000 + LOSS_HOLD_US, 6);
        assert_eq!(c.floor_ms(1_000_000 + LOSS_HOLD_US, 20, 0), None);
    }
}

//! Who among the far sources is speaking, sans-IO: from the speech level each received
//! frame carries (RFC 6464 style, 0 loud to 127 silent, set by its sender). A source
//! counts as speaking while a frame at least as loud as [`SPEAKING_LEVEL`] came from it
//! within [`HOLD_US`], so the flag does not flicker between words. Fixed-size: it runs
//! on the media thread for every frame.

pub use crate::call::quality::Speaking;

use super::streams::MAX_STREAMS;

/// A frame this loud or louder (-dBov, lower is louder) is speech.
pub const SPEAKING_LEVEL: u8 = 50;
/// How long a source counts as speaking after its last loud frame, µs.
pub const HOLD_US: u64 = 1_000_000;
/// Sources followed at once: the forwarded speakers, and one more while they change.
const TRACKED: usize = MAX_STREAMS + 1;

/// Each followed source's latest loud frame; see the module docs.
#[derive(Debug, Default)]
pub struct Speakers {
    loud: [Option<(u32, u64)>; TRACKED],
}

impl Speakers {
    /// A frame from `source` at `level` arrived at `now_us`.
    pub fn heard(&mut self, now_us: u64, source: u32, level: u8) {
        if level > SPEAKING_LEVEL {
            return;
        }
        let slot = match self
            .loud
            .iter()
            .position(|s| s.is_some_and(|(x, _)| x == source))
        {
            Some(i) => i,
            // A free place, else the one loud longest ago.
            None => match self.loud.iter().position(Option::is_none) {
                Some(i) => i,
                None => (0..TRACKED)
                    .min_by_key(|&i| self.loud[i].map_or(0, |(_, at)| at))
                    .unwrap_or(0),
            },
        };
        self.loud[slot] = Some((source, now_us));
    }

    /// The sources speaking at `now_us`, the most recently loud first.
    pub fn at(&self, now_us: u64) -> Speaking {
        let mut recent: [Option<(u32, u64)>; TRACKED] = self.loud;
        recent.sort_by_key(|s| std::cmp::Reverse(s.map(|(_, at)| at)));
        Speaking::of(
            recent
                .iter()
                .flatten()
                .filter(|(_, at)| now_us.saturating_sub(*at) < HOLD_US)
                .map(|(source, _)| *source),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loud_frames_make_a_source_speak_until_it_has_been_quiet_a_while() {
        let mut s = Speakers::default();
        s.heard(0, 7, 127);
        assert!(s.at(0).is_empty(), "silence is not speech");
        s.heard(20_000, 7, 20);
        assert!(s.at(20_000).contains(7));
        // Quiet frames keep it speaking for the hold time only.
        s.heard(500_000, 7, 120);
        assert!(s.at(900_000).contains(7));
        assert!(!s.at(20_000 + HOLD_US).contains(7));
    }

    #[test]
    fn at_most_three_speak_the_latest_loud_ones() {
        let mut s = Speakers::default();
        for (i, source) in [1, 2, 3, 4, 5].into_iter().enumerate() {
            s.heard(i as u64 * 1000, source, 10);
        }
        let now = s.at(10_000);
        assert!(now.contains(5) && now.contains(4) && now.contains(3));
        assert!(!now.contains(1) && !now.contains(2));
    }
}

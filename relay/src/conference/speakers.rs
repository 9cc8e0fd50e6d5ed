//! Which speakers of a conference room the relay forwards, sans-IO: each frame's sender
//! and its audio level (the `level` byte, RFC 6464 style: 0 loud, 127 silent) go in with
//! the time; [`Speakers::forwards`] then says whether a frame from one source goes to
//! another. Every listener gets at most [`FORWARDED`] streams, never its own: the room
//! ranks the [`FORWARDED`] + 1 loudest current speakers, and a listener gets the first
//! [`FORWARDED`] of that ranking other than itself (so a ranked speaker hears the other
//! ranked ones, everyone else the top [`FORWARDED`]).
//!
//! Hysteresis keeps speakers from flapping: a level is smoothed over a few frames; a
//! speaker overtakes another in the ranking only when louder by [`MARGIN_DB`]; one that
//! entered the ranking keeps its place for [`MIN_HOLD_MS`] unless it falls silent (no
//! frame for [`STALE_MS`]: DTX, hold, gone), when anyone sending takes its place.
//!
//! No allocation once the room's sources are known (a source's first frame adds it).

/// The most streams a listener receives.
pub const FORWARDED: usize = 3;
/// How much louder (dB, smoothed) a speaker must be to overtake another.
pub const MARGIN_DB: f32 = 6.0;
/// How long a ranked speaker keeps its place against louder ones, ms.
pub const MIN_HOLD_MS: u64 = 600;
/// A speaker with no frame for this long counts as silent, ms.
pub const STALE_MS: u64 = 300;
/// Smoothing of the level per frame (20 ms): about 60 ms to follow a change.
const ALPHA: f32 = 0.3;
const RANKED: usize = FORWARDED + 1;

#[derive(Debug, Clone, Copy)]
struct Source {
    id: u32,
    /// Smoothed loudness, 0 (silent) ..= 127 (loudest), in dB above silence.
    loudness: f32,
    last_ms: u64,
    /// When it entered the ranking.
    ranked_at: u64,
}

/// The speaker selection of one room.
#[derive(Debug, Clone, Default)]
pub struct Speakers {
    sources: Vec<Source>,
    /// Source ids, loudest first.
    ranked: Vec<u32>,
}

impl Speakers {
    pub fn new() -> Speakers {
        Speakers {
            sources: Vec::with_capacity(16),
            ranked: Vec::with_capacity(RANKED),
        }
    }

    fn find(&self, id: u32) -> Option<usize> {
        self.sources.iter().position(|s| s.id == id)
    }

    /// Loudness of `id` now: silent once stale.
    fn now_loudness(&self, id: u32, now_ms: u64) -> f32 {
        self.find(id)
            .map(|i| self.sources[i])
            .filter(|s| now_ms.saturating_sub(s.last_ms) < STALE_MS)
            .map_or(0.0, |s| s.loudness)
    }

    /// A frame from `id` at `level` (0 loud ..= 127 silent) arrived at `now_ms`.
    pub fn observe(&mut self, now_ms: u64, id: u32, level: u8) {
        let x = f32::from(127 - level.min(127));
        let i = match self.find(id) {
            Some(i) => i,
            None => {
                self.sources.push(Source {
                    id,
                    loudness: x,
                    last_ms: now_ms,
                    ranked_at: now_ms,
                });
                self.sources.len() - 1
            }
        };
        let s = &mut self.sources[i];
        if now_ms.saturating_sub(s.last_ms) >= STALE_MS {
            s.loudness = x; // Back from silence: its level now, not a stale average.
        } else {
            s.loudness += (x - s.loudness) * ALPHA;
        }
        s.last_ms = now_ms;
        self.rank(now_ms, id);
    }

    fn rank(&mut self, now_ms: u64, id: u32) {
        let pos = match self.ranked.iter().position(|&r| r == id) {
            Some(p) => p,
            None if self.ranked.len() < RANKED => {
                self.ranked.push(id);
                self.mark_ranked(id, now_ms);
                self.ranked.len() - 1
            }
            None => {
                let last = RANKED - 1;
                let weakest = self.ranked[last];
                let held = self.find(weakest).is_some_and(|w| {
                    now_ms.saturating_sub(self.sources[w].ranked_at) < MIN_HOLD_MS
                });
                let quiet = self.now_loudness(weakest, now_ms);
                let stale = quiet == 0.0;
                if !(stale || (!held && self.now_loudness(id, now_ms) > quiet + MARGIN_DB)) {
                    return;
                }
                self.ranked[last] = id;
                self.mark_ranked(id, now_ms);
                last
            }
        };
        // Move it up past every speaker it is clearly louder than, or down below every
        // one clearly louder than it.
        let mine = self.now_loudness(id, now_ms);
        let mut p = pos;
        while p > 0 && mine > self.now_loudness(self.ranked[p - 1], now_ms) + MARGIN_DB {
            self.ranked.swap(p, p - 1);
            p -= 1;
        }
        while p + 1 < self.ranked.len()
            && self.now_loudness(self.ranked[p + 1], now_ms) > mine + MARGIN_DB
        {
            self.ranked.swap(p, p + 1);
            p += 1;
        }
    }

    fn mark_ranked(&mut self, id: u32, now_ms: u64) {
        if let Some(i) = self.find(id) {
            self.sources[i].ranked_at = now_ms;
        }
    }

    /// Whether a frame from `from` goes to listener `to`.
    pub fn forwards(&self, from: u32, to: u32) -> bool {
        from != to
            && self
                .ranked
                .iter()
                .filter(|&&r| r != to)
                .take(FORWARDED)
                .any(|&r| r == from)
    }

    /// Forgets sources no longer in the room.
    pub fn retain(&mut self, present: impl Fn(u32) -> bool) {
        self.sources.retain(|s| present(s.id));
        self.ranked.retain(|&r| present(r));
    }

    /// The ranking now, loudest first (for tests and logs).
    pub fn ranked(&self) -> &[u32] {
        &self.ranked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds 20 ms frames from `talkers` (source, level) from `start` for `ms`.
    fn talk(s: &mut Speakers, start: u64, ms: u64, talkers: &[(u32, u8)]) -> u64 {
        let mut t = start;
        while t < start + ms {
            for &(id, level) in talkers {
                s.observe(t, id, level);
            }
            t += 20;
        }
        t
    }

    fn heard_by(s: &Speakers, to: u32, room: &[u32]) -> Vec<u32> {
        room.iter()
            .copied()
            .filter(|&f| s.forwards(f, to))
            .collect()
    }

    #[test]
    fn nobody_hears_itself_and_nobody_more_than_three() {
        let mut s = Speakers::new();
        let room: Vec<u32> = (0..6).collect();
        talk(
            &mut s,
            0,
            1000,
            &[(0, 20), (1, 25), (2, 30), (3, 35), (4, 127), (5, 127)],
        );
        for &to in &room {
            let heard = heard_by(&s, to, &room);
            assert!(heard.len() <= FORWARDED, "{to} hears {heard:?}");
            assert!(!heard.contains(&to));
        }
        // The four talkers hear the three others; the silent ones hear the loudest three.
        assert_eq!(heard_by(&s, 3, &room), [0, 1, 2]);
        assert_eq!(heard_by(&s, 0, &room), [1, 2, 3]);
        assert_eq!(heard_by(&s, 4, &room), [0, 1, 2]);
        assert_eq!(heard_by(&s, 5, &room), [0, 1, 2]);
    }

    #[test]
    fn a_small_room_forwards_everyone() {
        let mut s = Speakers::new();
        talk(&mut s, 0, 200, &[(0, 60), (1, 127), (2, 30)]);
        assert_eq!(heard_by(&s, 1, &[0, 1, 2]), [0, 2]);
        assert_eq!(heard_by(&s, 0, &[0, 1, 2]), [1, 2]);
    }

    #[test]
    fn close_levels_do_not_flap() {
        let mut s = Speakers::new();
        let t = talk(&mut s, 0, 1000, &[(0, 30), (1, 30), (2, 30), (3, 30)]);
        let before = s.ranked().to_vec();
        // A fifth speaker a little louder than the ranked ones, and levels wobbling by
        // a few dB: the ranking stays.
        let mut t2 = t;
        for k in 0..100u64 {
            let wobble = (k % 3) as u8;
            for id in 0..4 {
                s.observe(t2, id, 30 + wobble * 2);
            }
            s.observe(t2, 4, 27);
            t2 += 20;
        }
        assert_eq!(s.ranked(), before);
    }

    #[test]
    fn a_clearly_louder_speaker_takes_the_weakest_place_after_the_hold() {
        let mut s = Speakers::new();
        let t = talk(&mut s, 0, 100, &[(0, 20), (1, 20), (2, 20), (3, 50)]);
        // Source 3 entered less than MIN_HOLD_MS ago: a loud newcomer waits.
        s.observe(t, 4, 10);
        assert!(!s.ranked().contains(&4));
        let t = talk(
            &mut s,
            t,
            MIN_HOLD_MS,
            &[(0, 20), (1, 20), (2, 20), (3, 50), (4, 10)],
        );
        assert!(s.ranked().contains(&4));
        assert!(!s.ranked().contains(&3));
        // And being loudest, it is forwarded to everyone.
        assert_eq!(s.ranked()[0], 4);
        let _ = t;
    }

    #[test]
    fn a_silent_speaker_gives_way_at_once() {
        let mut s = Speakers::new();
        let t = talk(&mut s, 0, 100, &[(0, 20), (1, 20), (2, 20), (3, 20)]);
        // 3 stops sending (DTX or hold); after STALE_MS anyone sending takes its place.
        let t = talk(&mut s, t, STALE_MS, &[(0, 20), (1, 20), (2, 20)]);
        s.observe(t, 5, 90);
        assert!(s.ranked().contains(&5));
        assert!(!s.ranked().contains(&3));
    }

    #[test]
    fn departed_sources_are_forgotten() {
        let mut s = Speakers::new();
        talk(&mut s, 0, 100, &[(0, 20), (1, 20), (2, 20)]);
        s.retain(|id| id != 1);
        assert_eq!(s.ranked(), [0, 2]);
        assert!(!s.forwards(1, 0));
    }
}

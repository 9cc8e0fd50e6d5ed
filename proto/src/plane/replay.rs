//! The replay window a receiver keeps per session and direction (RFC 6479, as WireGuard
//! does): a ring of 32 words of 64 bits. A counter is accepted once, if it is newer than
//! any seen or at most [`WINDOW`] behind the newest. Reordering within that (about 40 s
//! of one stream at 50 packets/s) is accepted; anything older or seen is a replay.

const WORD: u64 = 64;
const WORDS: usize = 32;
/// How far behind the newest counter a packet may be and still be accepted.
pub const WINDOW: u64 = (WORDS as u64 - 1) * WORD;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    /// The newest counter accepted (meaningless while `empty`).
    newest: u64,
    empty: bool,
    ring: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow {
            newest: 0,
            empty: true,
            ring: [0; WORDS],
        }
    }
}

impl ReplayWindow {
    pub fn new() -> ReplayWindow {
        ReplayWindow::default()
    }

    /// Whether `counter` would be accepted now (changes nothing).
    pub fn fresh(&self, counter: u64) -> bool {
        if self.empty || counter > self.newest {
            return true;
        }
        if self.newest - counter > WINDOW {
            return false;
        }
        let (word, bit) = Self::place(counter);
        self.ring[word] & (1 << bit) == 0
    }

    /// Marks `counter` seen; `false` (and no change) if it was not fresh. Call it only for
    /// an authenticated packet.
    pub fn accept(&mut self, counter: u64) -> bool {
        if !self.fresh(counter) {
            return false;
        }
        if self.empty || counter > self.newest {
            let from = if self.empty {
                // Clear everything once: the first counter may be anywhere.
                self.ring = [0; WORDS];
                None
            } else {
                Some(self.newest / WORD)
            };
            if let Some(current) = from {
                let target = counter / WORD;
                let steps = (target - current).min(WORDS as u64);
                for i in 1..=steps {
                    self.ring[((current + i) % WORDS as u64) as usize] = 0;
                }
            }
            self.newest = counter;
            self.empty = false;
        }
        let (word, bit) = Self::place(counter);
        self.ring[word] |= 1 << bit;
        true
    }

    fn place(counter: u64) -> (usize, u64) {
        (((counter / WORD) % WORDS as u64) as usize, counter % WORD)
    }
}

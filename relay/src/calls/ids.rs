//! Call ids that a stranger cannot guess: the relay answers requests about a call only
//! to its parties, but ids counted up from 1 would still tell anyone how many calls the
//! relay carries and which id the next call gets. Each id is the first 8 bytes of
//! SHA-256(key ‖ counter) with a key drawn from the OS at start, so ids look random,
//! never repeat within a run, and tests stay deterministic (they pass a fixed key).

use sha2::{Digest, Sha256};

use phoned_proto::call::CallId;

/// Hands out unguessable call ids.
#[derive(Debug)]
pub struct CallIds {
    key: [u8; 32],
    counter: u64,
}

impl CallIds {
    /// Ids derived from `key`, which must be secret and random (see [`CallIds::random`]).
    pub fn new(key: [u8; 32]) -> CallIds {
        CallIds { key, counter: 0 }
    }

    /// Ids from a key drawn from the operating system's CSPRNG.
    pub fn random() -> Result<CallIds, getrandom::Error> {
        let mut key = [0; 32];
        getrandom::fill(&mut key)?;
        Ok(CallIds::new(key))
    }

    /// The next id for which `taken` is false. 0 is never used, so that it can never be
    /// mistaken for an unset id; a clash with a live call (odds 2⁻⁶⁴ per pair) is skipped.
    pub fn next(&mut self, taken: impl Fn(CallId) -> bool) -> CallId {
        loop {
            self.counter = self.counter.wrapping_add(1);
            let mut hash = Sha256::new();
            hash.update(self.key);
            hash.update(self.counter.to_le_bytes());
            let digest = hash.finalize();
            let mut first = [0; 8];
            first.copy_from_slice(&digest[..8]);
            let id = CallId::from_le_bytes(first);
            if id != 0 && !taken(id) {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_distinct_and_not_sequential() {
        let mut ids = CallIds::new([7; 32]);
        let list: Vec<CallId> = (0..10_000).map(|_| ids.next(|_| false)).collect();
        assert_eq!(list.iter().collect::<HashSet<_>>().len(), list.len());
        // Consecutive ids are as far apart as random ones: none within 2^32 of the last.
        let close = list
            .windows(2)
            .filter(|w| w[0].abs_diff(w[1]) < 1 << 32)
            .count();
        assert_eq!(close, 0, "consecutive ids close together");
        // Every bit varies: the ids use the whole 64-bit range.
        let (or, and) = list
            .iter()
            .fold((0, u64::MAX), |(o, a), id| (o | id, a & id));
        assert_eq!((or, and), (u64::MAX, 0));
        // Neither increasing nor decreasing for long: about half the steps go up.
        let ups = list.windows(2).filter(|w| w[1] > w[0]).count();
        assert!((4_000..6_000).contains(&ups), "{ups} of 9999 steps go up");
    }

    #[test]
    fn another_key_gives_other_ids() {
        let mut a = CallIds::new([1; 32]);
        let mut b = CallIds::new([2; 32]);
        let a: HashSet<CallId> = (0..1000).map(|_| a.next(|_| false)).collect();
        let b: HashSet<CallId> = (0..1000).map(|_| b.next(|_| false)).collect();
        assert!(a.is_disjoint(&b));
        let mut x = CallIds::random().unwrap();
        let mut y = CallIds::random().unwrap();
        assert_ne!(x.next(|_| false), y.next(|_| false));
    }

    #[test]
    fn a_taken_id_is_skipped() {
        let first = CallIds::new([3; 32]).next(|_| false);
        let mut ids = CallIds::new([3; 32]);
        let id = ids.next(|id| id == first);
        assert_ne!(id, first);
    }
}

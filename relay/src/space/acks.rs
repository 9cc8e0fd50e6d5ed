//! Acknowledgements (`Delivered`) the store could not apply, sans-IO: which to try again
//! when. A recipient that acknowledged a message is done with it; if the relay's delete
//! fails (out of space), the relay keeps trying on its own, with back-off, instead of
//! waiting for the recipient to reconnect and be sent the message again. Times are the
//! relay's monotonic milliseconds.

use std::collections::HashMap;

/// First retry after this long; each later one waits twice as long as the one before.
pub const FIRST_RETRY_MS: u64 = 500;
/// Longest wait between two tries.
pub const MAX_RETRY_MS: u64 = 30_000;
/// Most acknowledgements kept for retrying; beyond that one is forgotten, and its
/// message is delivered again at the recipient's next login (which it de-duplicates).
pub const MAX_WAITING: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Retry {
    at_ms: u64,
    wait_ms: u64,
}

/// Acknowledgements waiting to be applied: (recipient account, message id).
#[derive(Debug, Default)]
pub struct AckRetries {
    waiting: HashMap<(u64, u64), Retry>,
}

impl AckRetries {
    /// The delete of message `id` for `account` failed at `now_ms`: try again later.
    /// `false` if it is not kept (too many are waiting).
    pub fn failed(&mut self, account: u64, id: u64, now_ms: u64) -> bool {
        if self.waiting.contains_key(&(account, id)) {
            return true; // Already rescheduled when it was handed out.
        }
        if self.waiting.len() >= MAX_WAITING {
            return false;
        }
        let retry = Retry {
            at_ms: now_ms + FIRST_RETRY_MS,
            wait_ms: FIRST_RETRY_MS,
        };
        self.waiting.insert((account, id), retry);
        true
    }

    /// The acknowledgements to try now. Each is rescheduled at once with a doubled wait,
    /// so if it fails again it comes back later; [`AckRetries::done`] ends it.
    pub fn due(&mut self, now_ms: u64) -> Vec<(u64, u64)> {
        let mut due = Vec::new();
        for (key, r) in &mut self.waiting {
            if r.at_ms <= now_ms {
                r.wait_ms = (r.wait_ms * 2).min(MAX_RETRY_MS);
                r.at_ms = now_ms + r.wait_ms;
                due.push(*key);
            }
        }
        due.sort_unstable();
        due
    }

    /// The acknowledgement was applied (or the message is gone).
    pub fn done(&mut self, account: u64, id: u64) {
        self.waiting.remove(&(account, id));
    }

    /// When the next one is due.
    pub fn next_deadline(&self) -> Option<u64> {
        self.waiting.values().map(|r| r.at_ms).min()
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_ack_is_retried_with_back_off_until_done() {
        let mut r = AckRetries::default();
        assert!(r.failed(2, 10, 0));
        assert!(r.due(FIRST_RETRY_MS - 1).is_empty());
        assert_eq!(r.next_deadline(), Some(FIRST_RETRY_MS));
        assert_eq!(r.due(FIRST_RETRY_MS), [(2, 10)]);
        // Failing again on that try changes nothing: it is already rescheduled.
        assert!(r.failed(2, 10, FIRST_RETRY_MS));
        assert_eq!(r.next_deadline(), Some(3 * FIRST_RETRY_MS));
        let mut at = FIRST_RETRY_MS;
        let mut waits = Vec::new();
        while let Some(next) = r.next_deadline() {
            waits.push(next - at);
            at = next;
            assert_eq!(r.due(at), [(2, 10)]);
            if waits.len() == 8 {
                r.done(2, 10);
            }
        }
        assert_eq!(
            waits,
            [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]
        );
        assert!(r.is_empty());
    }

    #[test]
    fn the_waiting_list_is_bounded() {
        let mut r = AckRetries::default();
        for id in 0..MAX_WAITING as u64 {
            assert!(r.failed(1, id, 0));
        }
        assert!(!r.failed(1, u64::MAX, 0));
        assert_eq!(r.len(), MAX_WAITING);
    }
}

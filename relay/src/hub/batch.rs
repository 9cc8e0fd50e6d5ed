//! Presence changes waiting to go out, and when they go: sans-IO, time passed in.
//!
//! Every device keeps the whole online list, so each change must reach every other
//! session. Sent one by one, n logins cost n²/2 writes (a frame, a wake-up of the
//! session's writer, a QUIC packet and a `sendmsg` each): 2 000 logins took about 30 s.
//! Here changes wait for the next flush instead, and a flush sends each session
//! everything it has not heard yet in one write. Flushes are at least
//! [`MIN_INTERVAL_MS`] apart, and further apart the more sessions there are, so that
//! presence costs at most [`WRITES_PER_SECOND`] writes a second however fast devices log
//! in (up to 4 000 sessions; beyond, flushes stay [`MAX_INTERVAL_MS`] apart): a storm of
//! n logins costs O(n) writes. The events themselves (about 20 bytes each inside a batch)
//! still number n²/2: that is the online list every device asks for.
//!
//! The first change after a quiet spell goes out at once; changes are never merged or
//! reordered, so a device applying them in order ends with the relay's view. A session
//! hears only changes made after it logged in (it asks for the list itself then) and
//! never its own account's.

use std::collections::HashSet;

use phoned_proto::Event;

use super::SessionId;
use crate::store::AccountId;

/// Flushes are at least this far apart (and the first change after a quiet spell of
/// this long goes out at once).
pub const MIN_INTERVAL_MS: u64 = 50;
/// And at most this far apart, however many sessions there are: a change reaches every
/// device within this (and the link's delay).
pub const MAX_INTERVAL_MS: u64 = 2_000;
/// Writes (one per session per flush) presence may cost a second, up to 4 000 sessions
/// (flushed every 2 s; more sessions are flushed as often, at more writes). A write costs
/// the relay about 20 µs on the development machine (its session's writer woken, a QUIC
/// packet, a `sendmsg`), so this is about 4 % of a core, however fast devices log in.
pub const WRITES_PER_SECOND: u64 = 2_000;

/// The time between flushes with `sessions` logged in.
pub fn interval_ms(sessions: usize) -> u64 {
    (sessions as u64 * 1000 / WRITES_PER_SECOND).clamp(MIN_INTERVAL_MS, MAX_INTERVAL_MS)
}

/// One presence event, numbered in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: u64,
    /// Whose presence changed: its own sessions do not hear of it.
    pub account: AccountId,
    pub event: Event,
}

/// The changes not yet flushed.
#[derive(Debug, Default)]
pub struct Pending {
    changes: Vec<Change>,
    /// The last number given out (0: none yet).
    seq: u64,
    last_flush_ms: Option<u64>,
}

impl Pending {
    /// The number of the latest change: a session that logs in now has heard of
    /// everything up to it (from its own `ListOnline`).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn push(&mut self, account: AccountId, event: Event) {
        self.seq += 1;
        self.changes.push(Change {
            seq: self.seq,
            account,
            event,
        });
    }

    /// When the waiting changes are due (`None`: nothing waits). With `sessions`
    /// logged in.
    pub fn deadline(&self, sessions: usize) -> Option<u64> {
        if self.changes.is_empty() {
            return None;
        }
        Some(
            self.last_flush_ms
                .map_or(0, |last| last.saturating_add(interval_ms(sessions))),
        )
    }

    /// Takes the waiting changes if they are due at `now_ms`.
    pub fn take_due(&mut self, now_ms: u64, sessions: usize) -> Option<Vec<Change>> {
        if self.deadline(sessions)? > now_ms {
            return None;
        }
        self.last_flush_ms = Some(now_ms);
        Some(std::mem::take(&mut self.changes))
    }
}

/// A flush: the events, and who gets which.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// In the order they happened.
    pub events: Vec<Event>,
    /// Sessions that get every event.
    pub all: Vec<SessionId>,
    /// Sessions that get some of them (their own account's changed, or they logged in
    /// meanwhile): indices into `events`, in order.
    pub some: Vec<(SessionId, Vec<usize>)>,
}

impl Batch {
    /// Who gets what in `changes`, for sessions given as (session, account, the `seq`
    /// they logged in at). Sessions that get nothing are left out.
    pub fn address(
        changes: Vec<Change>,
        sessions: impl IntoIterator<Item = (SessionId, AccountId, u64)>,
    ) -> Batch {
        let Some(first) = changes.first().map(|c| c.seq) else {
            return Batch::default();
        };
        let changed: HashSet<AccountId> = changes.iter().map(|c| c.account).collect();
        let mut batch = Batch::default();
        for (sid, account, since) in sessions {
            if since < first && !changed.contains(&account) {
                batch.all.push(sid);
                continue;
            }
            let mine: Vec<usize> = changes
                .iter()
                .enumerate()
                .filter(|(_, c)| c.seq > since && c.account != account)
                .map(|(i, _)| i)
                .collect();
            if !mine.is_empty() {
                batch.some.push((sid, mine));
            }
        }
        batch.events = changes.into_iter().map(|c| c.event).collect();
        batch
    }

    /// The events session `sid` gets, in order.
    pub fn events_for(&self, sid: SessionId) -> Vec<Event> {
        if self.all.contains(&sid) {
            return self.events.clone();
        }
        self.some
            .iter()
            .filter(|(s, _)| *s == sid)
            .flat_map(|(_, idx)| idx.iter().map(|&i| self.events[i].clone()))
            .collect()
    }

    /// Writes this batch costs: one per session that gets anything.
    pub fn writes(&self) -> usize {
        self.all.len() + self.some.len()
    }

    /// Events it delivers, over all sessions.
    pub fn deliveries(&self) -> usize {
        self.all.len() * self.events.len() + self.some.iter().map(|(_, i)| i.len()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn online(number: &str) -> Event {
        Event::Presence {
            number: number.into(),
            name: "x".into(),
            online: true,
        }
    }

    #[test]
    fn the_interval_grows_with_the_sessions_within_bounds() {
        assert_eq!(interval_ms(0), MIN_INTERVAL_MS);
        assert_eq!(interval_ms(100), MIN_INTERVAL_MS);
        assert_eq!(interval_ms(1_000), 500);
        assert_eq!(interval_ms(4_000), 2_000);
        assert_eq!(interval_ms(1_000_000), MAX_INTERVAL_MS);
    }

    #[test]
    fn a_first_change_is_due_at_once_and_the_next_after_the_interval() {
        let mut p = Pending::default();
        assert_eq!(p.deadline(10), None);
        assert_eq!(p.take_due(5, 10), None);
        p.push(1, online("1"));
        assert_eq!(p.deadline(10), Some(0));
        assert_eq!(p.take_due(5, 10).map(|c| c.len()), Some(1));
        p.push(2, online("2"));
        p.push(3, online("3"));
        assert_eq!(p.deadline(10), Some(55));
        assert_eq!(p.take_due(54, 10), None);
        let due = p.take_due(55, 10).unwrap();
        assert_eq!(due.iter().map(|c| c.seq).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(p.deadline(10), None);
        // More sessions, further apart.
        p.push(4, online("4"));
        assert_eq!(p.deadline(1_000), Some(555));
    }

    #[test]
    fn sessions_hear_what_came_after_their_login_and_not_their_own() {
        let changes = vec![
            Change {
                seq: 5,
                account: 10,
                event: online("10"),
            },
            Change {
                seq: 6,
                account: 20,
                event: online("20"),
            },
            Change {
                seq: 7,
                account: 30,
                event: online("30"),
            },
        ];
        // 1: an old session of an account not in the batch; 2: a device of account 20;
        // 3: logged in at seq 6 (after 10 and 20 came online); 4: account 30's session,
        // logged in with it (nothing left for it).
        let b = Batch::address(changes, [(1, 1, 0), (2, 20, 3), (3, 99, 6), (4, 30, 6)]);
        assert_eq!(b.all, [1]);
        assert_eq!(b.events_for(1), [online("10"), online("20"), online("30")]);
        assert_eq!(b.events_for(2), [online("10"), online("30")]);
        assert_eq!(b.events_for(3), [online("30")]);
        assert!(b.events_for(4).is_empty());
        assert_eq!(b.writes(), 3);
        assert_eq!(b.deliveries(), 6);
    }
}

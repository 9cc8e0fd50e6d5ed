//! Presence as leases, sans-IO: when this relay writes its leases, and which accounts
//! other relays' leases show online. Time is passed in (ms; the database's clock for
//! expiry, so that relays need not agree on the time).
//!
//! A relay holds one lease per logged-in session, valid for [`TTL`]. It rewrites them
//! all in one statement when its sessions change (at most every [`MIN_GAP_MS`]: a login
//! storm is a few statements, not one per login) and at least every [`RENEW_MS`]; a relay
//! that dies stops renewing, and its devices go offline for the others within [`TTL`] of
//! its last renewal.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::hub::{Profile, SessionId};
use crate::store::AccountId;
use crate::store::pg::leases::LeaseRow;

/// How long a lease is valid after it was written.
pub const TTL: Duration = Duration::from_secs(10);
/// How often a relay renews its leases (and re-reads the others', the safety net for a
/// missed notification).
pub const RENEW_MS: u64 = 3_000;
/// Least time between two writes for changed sessions.
pub const MIN_GAP_MS: u64 = 100;

/// The leases to write now: this relay's sessions, and whether they changed since the
/// last write (the other relays are then told).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub sessions: Vec<(SessionId, AccountId)>,
    pub changed: bool,
}

/// What was last written, and when.
#[derive(Debug, Default)]
pub struct Renewal {
    /// When the last write was tried (`None`: never).
    at: Option<u64>,
    /// The sessions it wrote.
    last: Vec<(SessionId, AccountId)>,
    /// The last write failed: the next one tells the others, whatever changed, and
    /// waits [`RETRY_MS`] (a database that is down is not hammered).
    failed: bool,
}

/// Least time between a failed write and the next try.
pub const RETRY_MS: u64 = 1_000;

impl Renewal {
    /// With `sessions` (sorted) live at `now_ms`: the write due now, if any.
    pub fn due(&self, now_ms: u64, sessions: &[(SessionId, AccountId)]) -> Option<Write> {
        let Some(at) = self.at else {
            return Some(Write {
                sessions: sessions.to_vec(),
                changed: true,
            });
        };
        let changed = self.differs(sessions);
        let since = now_ms.saturating_sub(at);
        (since >= RENEW_MS || (changed && since >= self.gap())).then(|| Write {
            sessions: sessions.to_vec(),
            changed,
        })
    }

    /// Whether `sessions` are not what the database holds (or a write failed since).
    pub fn differs(&self, sessions: &[(SessionId, AccountId)]) -> bool {
        self.at.is_none() || self.failed || self.last.as_slice() != sessions
    }

    fn gap(&self) -> u64 {
        if self.failed { RETRY_MS } else { MIN_GAP_MS }
    }

    /// When a write is next due at the latest, with nothing changed.
    pub fn next_ms(&self) -> u64 {
        self.at.map_or(0, |at| at + RENEW_MS)
    }

    /// The earliest a write for a change may go.
    pub fn next_change_ms(&self) -> u64 {
        self.at.map_or(0, |at| at + self.gap())
    }

    /// `write` went to the database at `now_ms`.
    pub fn written(&mut self, now_ms: u64, write: Write) {
        self.at = Some(now_ms);
        self.last = write.sessions;
        self.failed = false;
    }

    /// A write tried at `now_ms` failed.
    pub fn failed(&mut self, now_ms: u64) {
        self.at = Some(now_ms);
        self.failed = true;
    }
}

/// The accounts online on other relays: those with a lease not expired at `now_ms`.
pub fn online_elsewhere(rows: Vec<LeaseRow>, now_ms: u64) -> HashMap<AccountId, Profile> {
    rows.into_iter()
        .filter(|r| r.expires_ms > now_ms)
        .map(|r| {
            (
                r.account,
                Profile {
                    number: r.number,
                    name: r.name,
                    created_ms: r.created_ms,
                    epoch: r.epoch,
                },
            )
        })
        .collect()
}

/// The relay-link addresses where accounts are online on other relays: those of leases
/// not expired at `now_ms` whose relay advertised one (sorted, once each).
pub fn peers_elsewhere(rows: &[LeaseRow], now_ms: u64) -> HashMap<AccountId, Vec<SocketAddr>> {
    let mut peers: HashMap<AccountId, Vec<SocketAddr>> = HashMap::new();
    for r in rows.iter().filter(|r| r.expires_ms > now_ms) {
        let Some(addr) = r.peer.as_deref().and_then(|p| p.parse().ok()) else {
            continue;
        };
        let list = peers.entry(r.account).or_default();
        if !list.contains(&addr) {
            list.push(addr);
            list.sort_unstable();
        }
    }
    peers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(relay: &str, account: AccountId, expires_ms: u64) -> LeaseRow {
        LeaseRow {
            relay: relay.into(),
            account,
            number: format!("{}", 1000 + account),
            name: "x".into(),
            created_ms: 0,
            epoch: 0,
            expires_ms,
            peer: Some(format!("127.0.0.1:{}", 7000 + relay.len())),
        }
    }

    #[test]
    fn peers_are_the_link_addresses_of_valid_leases_once_each() {
        let mut rows = vec![
            row("a", 1, 10_000),
            row("b", 1, 10_000),
            row("bb", 1, 10_000),
            row("c", 2, 5_000),
        ];
        rows[1].peer = Some("127.0.0.1:7002".into());
        rows.push(LeaseRow {
            peer: None,
            ..row("d", 3, 10_000)
        });
        rows.push(LeaseRow {
            peer: Some("not an address".into()),
            ..row("e", 4, 10_000)
        });
        let peers = peers_elsewhere(&rows, 6_000);
        let want: Vec<SocketAddr> = vec![
            "127.0.0.1:7001".parse().unwrap(),
            "127.0.0.1:7002".parse().unwrap(),
        ];
        assert_eq!(peers[&1], want);
        // Expired, not advertised, unreadable: no link.
        assert_eq!(peers.len(), 1);
    }

    #[test]
    fn expired_leases_do_not_count_and_one_valid_lease_is_enough() {
        let rows = vec![
            row("a", 1, 10_000),
            row("b", 1, 5_000),
            row("b", 2, 5_000),
            row("c", 3, 9_999),
        ];
        let online = online_elsewhere(rows, 9_999);
        let mut accounts: Vec<_> = online.keys().copied().collect();
        accounts.sort_unstable();
        assert_eq!(accounts, [1]);
        assert_eq!(online[&1].number, "1001");
        assert!(online_elsewhere(vec![row("a", 1, 10)], 10).is_empty());
    }

    #[test]
    fn writes_come_at_once_for_changes_and_every_renewal_otherwise() {
        let mut r = Renewal::default();
        let w = r.due(0, &[(1, 10)]).expect("first write at once");
        assert!(w.changed);
        r.written(0, w);
        assert_eq!(r.due(50, &[(1, 10)]), None);
        // A change waits for the gap, then goes (and says it changed).
        assert_eq!(r.due(50, &[(1, 10), (2, 20)]), None);
        assert_eq!(r.next_change_ms(), MIN_GAP_MS);
        let w = r.due(MIN_GAP_MS, &[(1, 10), (2, 20)]).unwrap();
        assert!(w.changed);
        r.written(MIN_GAP_MS, w);
        // No change: only the renewal, which does not tell the others.
        let at = MIN_GAP_MS + RENEW_MS;
        assert_eq!(r.next_ms(), at);
        assert_eq!(r.due(at - 1, &[(1, 10), (2, 20)]), None);
        let w = r.due(at, &[(1, 10), (2, 20)]).unwrap();
        assert!(!w.changed);
        r.written(at, w);
        assert!(!r.differs(&[(1, 10), (2, 20)]));
        // After a failed write, the next one waits a second, then tells the others again.
        r.failed(at + 10);
        assert!(r.differs(&[(1, 10), (2, 20)]));
        assert_eq!(r.due(at + 10 + MIN_GAP_MS, &[(1, 10), (2, 20)]), None);
        assert_eq!(r.next_change_ms(), at + 10 + RETRY_MS);
        assert!(
            r.due(at + 10 + RETRY_MS, &[(1, 10), (2, 20)])
                .unwrap()
                .changed
        );
    }

    #[test]
    fn a_relay_renews_well_within_the_lease() {
        // Two renewals may be lost (a busy database) before a live relay's devices are
        // shown offline elsewhere.
        assert!(3 * RENEW_MS < TTL.as_millis() as u64);
    }
}

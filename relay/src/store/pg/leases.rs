//! Presence leases and the notification channels several relays on one database share
//! (the decisions are [`crate::cluster`]'s; this only reads and writes rows).
//!
//! - [`PgStore::sync_leases`]: one statement makes this relay's leases exactly its live
//!   sessions, valid for a while longer (new ones inserted, gone ones deleted, the rest
//!   renewed), and tells the other relays when the set changed.
//! - [`PgStore::leases`]: every other relay's leases with the account's profile, and the
//!   database's clock, for [`crate::cluster::leases`] to judge which are still valid.
//! - Message writes notify [`INBOX`] and [`RECEIPTS`] inside their transaction
//!   ([`super::commit`]), so a notification goes out exactly when the write commits.

use std::time::Duration;

use super::{PgStore, big, prepared};
use crate::store::{AccountId, StoreError};

/// Channel: a relay's set of sessions changed (payload: its relay id).
pub const PRESENCE: &str = "phoned_presence";
/// Channel: an item was stored (payload: `recipient:id`).
pub const INBOX: &str = "phoned_inbox";
/// Channel: a delivery receipt was stored (payload: `sender:id`).
pub const RECEIPTS: &str = "phoned_receipts";

/// One lease of another relay, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub relay: String,
    pub account: AccountId,
    pub number: String,
    pub name: String,
    pub created_ms: u64,
    pub epoch: u32,
    /// When it expires, on the database's clock (ms since the Unix epoch).
    pub expires_ms: u64,
    /// Where its relay takes relay links (`cluster_advertise`), if it said.
    pub peer: Option<String>,
}

impl PgStore {
    /// Makes `relay`'s leases `sessions` (session, account), each valid for `ttl` from
    /// now on the database's clock and naming `peer`, the relay's link address; with
    /// `changed`, tells the other relays.
    pub fn sync_leases(
        &self,
        relay: &str,
        sessions: &[(u64, AccountId)],
        ttl: Duration,
        changed: bool,
        peer: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let (client, cache) = conn.parts();
        let st = prepared(
            cache,
            client,
            "WITH live AS (
                SELECT * FROM unnest($2::bigint[], $3::bigint[]) AS t(session, account)
            ), gone AS (
                DELETE FROM leases WHERE relay = $1
                    AND session NOT IN (SELECT session FROM live)
            )
            INSERT INTO leases (relay, session, account, expires_at, peer)
                SELECT $1, session, account,
                       now() + $4::bigint * interval '1 millisecond', $5 FROM live
            ON CONFLICT (relay, session) DO UPDATE
                SET expires_at = EXCLUDED.expires_at, account = EXCLUDED.account,
                    peer = EXCLUDED.peer",
        )?;
        let sids: Vec<i64> = sessions.iter().map(|s| big(s.0)).collect();
        let accounts: Vec<i64> = sessions.iter().map(|s| big(s.1)).collect();
        let ttl_ms = ttl.as_millis() as i64;
        client.execute(&st, &[&relay, &sids, &accounts, &ttl_ms, &peer])?;
        if changed {
            let st = prepared(cache, client, "SELECT pg_notify($1, $2)")?;
            client.execute(&st, &[&PRESENCE, &relay])?;
        }
        Ok(())
    }

    /// The leases of relays other than `relay` whose account is enabled, and the
    /// database's time now (ms since the Unix epoch). Leases expired for over a minute
    /// are deleted on the way (a dead relay's).
    pub fn leases(&self, relay: &str) -> Result<(u64, Vec<LeaseRow>), StoreError> {
        let mut conn = self.conn()?;
        let (client, cache) = conn.parts();
        let st = prepared(
            cache,
            client,
            "DELETE FROM leases WHERE expires_at < now() - interval '1 minute'",
        )?;
        client.execute(&st, &[])?;
        let st = prepared(
            cache,
            client,
            "SELECT l.relay, l.account, a.number, a.display_name, a.created_ms, a.epoch,
                    (extract(epoch FROM l.expires_at) * 1000)::bigint,
                    (extract(epoch FROM now()) * 1000)::bigint, l.peer
             FROM leases l JOIN accounts a ON a.id = l.account
             WHERE l.relay <> $1 AND NOT a.disabled",
        )?;
        let rows = client.query(&st, &[&relay])?;
        let mut now = None;
        let leases = rows
            .iter()
            .map(|r| {
                now = Some(r.get::<_, i64>(7) as u64);
                LeaseRow {
                    relay: r.get(0),
                    account: r.get::<_, i64>(1) as u64,
                    number: r.get(2),
                    name: r.get(3),
                    created_ms: r.get::<_, i64>(4) as u64,
                    epoch: r.get::<_, i64>(5) as u32,
                    expires_ms: r.get::<_, i64>(6) as u64,
                    peer: r.get(8),
                }
            })
            .collect();
        let now = match now {
            Some(n) => n,
            None => {
                let st = prepared(
                    cache,
                    client,
                    "SELECT (extract(epoch FROM now()) * 1000)::bigint",
                )?;
                client.query_one(&st, &[])?.get::<_, i64>(0) as u64
            }
        };
        Ok((now, leases))
    }

    /// Deletes `relay`'s leases (a relay starting with a configured id: its previous
    /// life's sessions are gone).
    pub fn clear_leases(&self, relay: &str) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.client
            .execute("DELETE FROM leases WHERE relay = $1", &[&relay])?;
        Ok(())
    }

    /// A connection of its own that listens on the cluster's channels, for the thread
    /// that waits for notifications.
    pub fn listen(&self) -> Result<postgres::Client, StoreError> {
        let mut client = self.pool.config.connect()?;
        client.batch_execute(&format!(
            "LISTEN {PRESENCE}; LISTEN {INBOX}; LISTEN {RECEIPTS};"
        ))?;
        Ok(client)
    }
}

/// Notifications to send from the transaction `tx` that is about to commit: the
/// `(channel, payload)` pairs, in one statement.
pub(crate) fn notify_in(
    tx: &mut postgres::Transaction<'_>,
    cache: &mut super::messages::Cache,
    notices: &[(&'static str, String)],
) -> Result<(), StoreError> {
    if notices.is_empty() {
        return Ok(());
    }
    let st = prepared(
        cache,
        tx,
        "SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS t(c, p)",
    )?;
    let channels: Vec<&str> = notices.iter().map(|n| n.0).collect();
    let payloads: Vec<&str> = notices.iter().map(|n| n.1.as_str()).collect();
    tx.execute(&st, &[&channels, &payloads])?;
    Ok(())
}

//! Filling an empty PostgreSQL database from a [`Snapshot`] of the embedded store
//! (`phone-relay admin migrate`): blobs first (each in its own transaction, harmless to
//! repeat), then everything else in one transaction, so that a migration that fails
//! leaves the database as empty as it found it and can simply be run again.

use std::path::Path;

use super::{PgStore, big};
use crate::store::model::Snapshot;
use crate::store::{Item, StoreError, blob_path};

/// What a migration copied.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Imported {
    pub accounts: usize,
    pub inbox: usize,
    pub receipts: usize,
    pub blobs: usize,
    /// Files in an inbox whose blob was not in `blobs/` (delivered meanwhile, or lost).
    pub missing_blobs: usize,
}

impl PgStore {
    /// Whether the database holds no account and no message yet.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let row = conn.client.query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM accounts) AND NOT EXISTS (SELECT 1 FROM inbox)",
            &[],
        )?;
        Ok(row.get(0))
    }

    /// Copies `snap`, and the blobs its files need from `state_dir/blobs`, into this
    /// database, which must be empty.
    pub fn import(&self, snap: &Snapshot, state_dir: &Path) -> Result<Imported, StoreError> {
        if !self.is_empty()? {
            return Err(StoreError::Schema(
                "the database already holds accounts or messages; migrate into an empty one".into(),
            ));
        }
        let mut out = Imported::default();
        let mut hashes: Vec<[u8; 32]> = snap
            .inbox
            .iter()
            .filter_map(|r| match &r.item {
                Item::File(f) => Some(f.sha256),
                Item::Text(_) => None,
            })
            .collect();
        hashes.sort_unstable();
        hashes.dedup();
        for sha in &hashes {
            let path = blob_path(state_dir, sha);
            if path.is_file() {
                self.put_blob(sha, &path)?;
                out.blobs += 1;
            } else {
                out.missing_blobs += 1;
            }
        }
        let mut conn = self.conn()?;
        let mut tx = conn.client.transaction()?;
        let account = tx.prepare(
            "INSERT INTO accounts (id, number, display_name, password_hash, created_ms, \
             disabled, last_seen_ms, epoch) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )?;
        for a in &snap.accounts {
            tx.execute(
                &account,
                &[
                    &big(a.id),
                    &a.number,
                    &a.display_name,
                    &a.password_hash,
                    &big(a.created_ms),
                    &a.disabled,
                    &big(a.last_seen_ms),
                    &i64::from(a.epoch),
                ],
            )?;
            out.accounts += 1;
        }
        let inbox = tx.prepare(
            "INSERT INTO inbox (recipient, id, sender, client_id, size, item, file_sha256) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )?;
        for r in &snap.inbox {
            let id = r.item.id();
            let bytes = postcard::to_allocvec(&r.item.clone().with_id(0))
                .map_err(|_| StoreError::Encode)?;
            let sha = match &r.item {
                Item::File(f) => Some(f.sha256.to_vec()),
                Item::Text(_) => None,
            };
            tx.execute(
                &inbox,
                &[
                    &big(r.recipient),
                    &big(id),
                    &big(r.sender),
                    &r.client_id,
                    &big(r.item.size()),
                    &bytes,
                    &sha,
                ],
            )?;
            out.inbox += 1;
        }
        let sent =
            tx.prepare("INSERT INTO sent_ids (sender, client_id, id) VALUES ($1, $2, $3)")?;
        for (sender, client_id, id) in &snap.sent_ids {
            tx.execute(&sent, &[&big(*sender), client_id, &big(*id)])?;
        }
        let receipt =
            tx.prepare("INSERT INTO receipts (sender, id, client_id) VALUES ($1, $2, $3)")?;
        for (sender, id, client_id) in &snap.receipts {
            tx.execute(&receipt, &[&big(*sender), &big(*id), client_id])?;
            out.receipts += 1;
        }
        let usage = tx.prepare(
            "INSERT INTO mailbox_usage (account, bytes) VALUES ($1, $2) \
             ON CONFLICT (account) DO UPDATE SET bytes = EXCLUDED.bytes",
        )?;
        for (account, bytes) in &snap.usage {
            tx.execute(&usage, &[&big(*account), &big(*bytes)])?;
        }
        let counter = tx.prepare("UPDATE counters SET value = $2 WHERE name = $1")?;
        tx.execute(&counter, &[&"account", &big(snap.next_account_id.max(1))])?;
        tx.execute(&counter, &[&"message", &big(snap.next_message_id.max(1))])?;
        // Above what the relay last saw: a relay already running on this database
        // re-reads its online accounts.
        tx.execute(&counter, &[&"revision", &big(snap.revision + 1)])?;
        tx.commit()?;
        Ok(out)
    }
}

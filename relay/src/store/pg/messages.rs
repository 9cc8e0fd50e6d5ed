//! Store and forward in PostgreSQL: the same operations as the embedded store, each a
//! statement or two that the committer ([`super::commit`]) runs in its batches, or that
//! run in a transaction of their own here.

use std::collections::HashMap;

use phoned_proto::MessageId;
use postgres::{GenericClient, Statement};

use super::{PgStore, big, prepared};
use crate::store::{AccountId, Delivered, Item, StoreError, Stored};

pub(crate) type Cache = HashMap<&'static str, Statement>;

fn decode(bytes: &[u8], id: i64) -> Result<Item, StoreError> {
    let item: Item = postcard::from_bytes(bytes).map_err(|_| StoreError::Encode)?;
    Ok(item.with_id(id as u64))
}

/// Stores `item` for `to` inside the caller's transaction (see [`crate::store::Store::store_item`]).
/// Checks come first and write nothing; the write is one statement.
pub(crate) fn store_item_in(
    tx: &mut impl GenericClient,
    cache: &mut Cache,
    from: AccountId,
    client_id: &str,
    to: AccountId,
    item: &Item,
    quota: u64,
) -> Result<Stored, StoreError> {
    let check = prepared(
        cache,
        tx,
        "SELECT (SELECT id FROM sent_ids WHERE sender = $1 AND client_id = $2), \
                (SELECT bytes FROM mailbox_usage WHERE account = $3)",
    )?;
    let row = tx.query_one(&check, &[&big(from), &client_id, &big(to)])?;
    if let Some(id) = row.get::<_, Option<i64>>(0) {
        return Ok(Stored::Again(id as u64));
    }
    let used = row.get::<_, Option<i64>>(1).unwrap_or(0) as u64;
    let size = item.size();
    if used.saturating_add(size) > quota {
        return Err(StoreError::QuotaExceeded);
    }
    let bytes = postcard::to_allocvec(&item.clone().with_id(0)).map_err(|_| StoreError::Encode)?;
    let sha = match item {
        Item::File(f) => Some(f.sha256.to_vec()),
        Item::Text(_) => None,
    };
    let write = prepared(
        cache,
        tx,
        "WITH n AS (UPDATE counters SET value = value + 1 WHERE name = 'message' \
                    RETURNING value - 1 AS id), \
              i AS (INSERT INTO inbox (recipient, id, sender, client_id, size, item, file_sha256) \
                    SELECT $1, n.id, $2, $3, $4, $5, $6 FROM n), \
              s AS (INSERT INTO sent_ids (sender, client_id, id) SELECT $2, $3, n.id FROM n), \
              u AS (INSERT INTO mailbox_usage (account, bytes) VALUES ($1, $4) \
                    ON CONFLICT (account) DO UPDATE \
                    SET bytes = mailbox_usage.bytes + EXCLUDED.bytes) \
         SELECT id FROM n",
    )?;
    let row = tx.query_one(
        &write,
        &[&big(to), &big(from), &client_id, &big(size), &bytes, &sha],
    )?;
    Ok(Stored::New(row.get::<_, i64>(0) as u64))
}

/// Deletes item `id` of `to`'s inbox and keeps a receipt for its sender, inside the
/// caller's transaction: one statement.
pub(crate) fn deliver_message_in(
    tx: &mut impl GenericClient,
    cache: &mut Cache,
    to: AccountId,
    id: MessageId,
) -> Result<Delivered, StoreError> {
    let st = prepared(
        cache,
        tx,
        "WITH d AS (DELETE FROM inbox WHERE recipient = $1 AND id = $2 \
                    RETURNING sender, client_id, size, item), \
              u AS (UPDATE mailbox_usage SET bytes = GREATEST(mailbox_usage.bytes - d.size, 0) \
                    FROM d WHERE mailbox_usage.account = $1), \
              r AS (INSERT INTO receipts (sender, id, client_id) \
                    SELECT sender, $2, client_id FROM d ON CONFLICT DO NOTHING) \
         SELECT sender, client_id, item FROM d",
    )?;
    let Some(row) = tx.query_opt(&st, &[&big(to), &big(id)])? else {
        return Ok(None);
    };
    let sender: i64 = row.get(0);
    let client_id: String = row.get(1);
    let item = decode(row.get(2), big(id))?;
    Ok(Some((sender as u64, client_id, item)))
}

/// Delivered items by (recipient, id): (sender, client id, the item).
pub(crate) type Found = HashMap<(i64, i64), (AccountId, String, Item)>;

/// Deletes the inbox items (`recipients[i]`, `ids[i]`) and keeps their receipts, in one
/// statement inside the caller's transaction. Returns what was there, by (recipient, id).
pub(crate) fn deliver_messages_in(
    tx: &mut impl GenericClient,
    cache: &mut Cache,
    recipients: &[i64],
    ids: &[i64],
) -> Result<Found, StoreError> {
    let st = prepared(
        cache,
        tx,
        "WITH q AS (SELECT DISTINCT * FROM unnest($1::BIGINT[], $2::BIGINT[]) AS q(recipient, id)), \
              d AS (DELETE FROM inbox i USING q WHERE i.recipient = q.recipient AND i.id = q.id \
                    RETURNING i.recipient, i.id, i.sender, i.client_id, i.size, i.item), \
              u AS (UPDATE mailbox_usage m SET bytes = GREATEST(m.bytes - s.total, 0) \
                    FROM (SELECT recipient, SUM(size) AS total FROM d GROUP BY recipient) s \
                    WHERE m.account = s.recipient), \
              r AS (INSERT INTO receipts (sender, id, client_id) \
                    SELECT sender, id, client_id FROM d ON CONFLICT DO NOTHING) \
         SELECT recipient, id, sender, client_id, item FROM d",
    )?;
    let mut out = Found::new();
    for row in tx.query(&st, &[&recipients, &ids])? {
        let (recipient, id): (i64, i64) = (row.get(0), row.get(1));
        let sender: i64 = row.get(2);
        let item = decode(row.get(4), id)?;
        out.insert((recipient, id), (sender as u64, row.get(3), item));
    }
    Ok(out)
}

/// Forgets the receipts (`senders[i]`, `ids[i]`), in one statement inside the caller's
/// transaction.
pub(crate) fn drop_receipts_in(
    tx: &mut impl GenericClient,
    cache: &mut Cache,
    senders: &[i64],
    ids: &[i64],
) -> Result<(), StoreError> {
    let st = prepared(
        cache,
        tx,
        "DELETE FROM receipts r USING unnest($1::BIGINT[], $2::BIGINT[]) AS q(sender, id) \
         WHERE r.sender = q.sender AND r.id = q.id",
    )?;
    tx.execute(&st, &[&senders, &ids])?;
    Ok(())
}

/// Forgets the receipt of message `id` to `sender`, inside the caller's transaction.
pub(crate) fn drop_receipt_in(
    tx: &mut impl GenericClient,
    cache: &mut Cache,
    sender: AccountId,
    id: MessageId,
) -> Result<(), StoreError> {
    let st = prepared(
        cache,
        tx,
        "DELETE FROM receipts WHERE sender = $1 AND id = $2",
    )?;
    tx.execute(&st, &[&big(sender), &big(id)])?;
    Ok(())
}

/// A limit for SQL: `usize::MAX` (no limit) as the largest BIGINT.
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl PgStore {
    pub fn store_item(
        &self,
        from: AccountId,
        client_id: &str,
        to: AccountId,
        item: Item,
        quota: u64,
    ) -> Result<Stored, StoreError> {
        let mut conn = self.conn()?;
        let (client, cache) = conn.parts();
        let mut tx = client.transaction()?;
        let stored = store_item_in(&mut tx, cache, from, client_id, to, &item, quota)?;
        tx.commit()?;
        Ok(stored)
    }

    pub fn deliver_message(&self, to: AccountId, id: MessageId) -> Result<Delivered, StoreError> {
        let mut conn = self.conn()?;
        let (client, cache) = conn.parts();
        let mut tx = client.transaction()?;
        let delivered = deliver_message_in(&mut tx, cache, to, id)?;
        tx.commit()?;
        Ok(delivered)
    }

    pub fn drop_receipt(&self, sender: AccountId, id: MessageId) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let (client, cache) = conn.parts();
        drop_receipt_in(client, cache, sender, id)
    }

    pub fn stored_id(
        &self,
        from: AccountId,
        client_id: &str,
    ) -> Result<Option<MessageId>, StoreError> {
        let mut conn = self.conn()?;
        let (client, cache) = conn.parts();
        let st = prepared(
            cache,
            client,
            "SELECT id FROM sent_ids WHERE sender = $1 AND client_id = $2",
        )?;
        Ok(client
            .query_opt(&st, &[&big(from), &client_id])?
            .map(|r| r.get::<_, i64>(0) as u64))
    }

    pub fn mailbox_bytes_total(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn()?;
        let row = conn.client.query_one(
            "SELECT COALESCE(SUM(bytes), 0)::BIGINT FROM mailbox_usage",
            &[],
        )?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    pub fn mailbox_bytes(&self, to: AccountId) -> Result<u64, StoreError> {
        let mut conn = self.conn()?;
        let (client, cache) = conn.parts();
        let st = prepared(
            cache,
            client,
            "SELECT bytes FROM mailbox_usage WHERE account = $1",
        )?;
        Ok(client
            .query_opt(&st, &[&big(to)])?
            .map_or(0, |r| r.get::<_, i64>(0) as u64))
    }

    pub fn pending_after(
        &self,
        to: AccountId,
        after: MessageId,
        max: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let mut conn = self.conn()?;
        let (client, cache) = conn.parts();
        let st = prepared(
            cache,
            client,
            "SELECT id, item FROM inbox WHERE recipient = $1 AND id > $2 ORDER BY id LIMIT $3",
        )?;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        client
            .query(&st, &[&big(to), &after, &limit(max)])?
            .iter()
            .map(|r| decode(r.get(1), r.get(0)))
            .collect()
    }

    pub fn inbox_item(&self, to: AccountId, id: MessageId) -> Result<Option<Item>, StoreError> {
        let mut conn = self.conn()?;
        let (client, cache) = conn.parts();
        let st = prepared(
            cache,
            client,
            "SELECT item FROM inbox WHERE recipient = $1 AND id = $2",
        )?;
        client
            .query_opt(&st, &[&big(to), &big(id)])?
            .map(|r| decode(r.get(0), big(id)))
            .transpose()
    }

    pub fn blob_in_use(&self, sha256: &[u8; 32]) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let row = conn.client.query_one(
            "SELECT EXISTS (SELECT 1 FROM inbox WHERE file_sha256 = $1)",
            &[&&sha256[..]],
        )?;
        Ok(row.get(0))
    }

    pub fn pending_receipts_after(
        &self,
        sender: AccountId,
        after: MessageId,
        max: usize,
    ) -> Result<Vec<(MessageId, String)>, StoreError> {
        let mut conn = self.conn()?;
        let (client, cache) = conn.parts();
        let st = prepared(
            cache,
            client,
            "SELECT id, client_id FROM receipts WHERE sender = $1 AND id > $2 ORDER BY id LIMIT $3",
        )?;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        Ok(client
            .query(&st, &[&big(sender), &after, &limit(max)])?
            .iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get(1)))
            .collect())
    }
}

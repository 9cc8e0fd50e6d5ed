//! Store and forward of text messages: each message is committed to LMDB before its
//! sender hears `Stored`, kept until its recipient acknowledges it, and a delivery
//! receipt waits for the sender in turn. Retries are idempotent by the sender's
//! client id.

use std::collections::BTreeSet;

use heed::RwTxn;
use phoned_proto::MessageId;
use serde::{Deserialize, Serialize};

use super::HeedStore;
use crate::store::{AccountId, Delivered, Item, StoreError, Stored};

/// An item in a recipient's inbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Record {
    pub item: Item,
    pub from_account: AccountId,
    pub client_id: String,
}

fn pair(a: u64, b: &[u8]) -> Vec<u8> {
    let mut k = a.to_be_bytes().to_vec();
    k.extend_from_slice(b);
    k
}

/// Every account's mailbox usage is under this key prefix in `meta`.
pub(super) const USAGE_PREFIX: &str = "mailbox_bytes/";

fn usage_key(account: AccountId) -> String {
    format!("{USAGE_PREFIX}{account}")
}

pub(super) const META_NEXT_MESSAGE: &str = "next_message_id";

impl HeedStore {
    /// The message id stored earlier for `client_id` from `from`, if any.
    pub fn stored_id(
        &self,
        from: AccountId,
        client_id: &str,
    ) -> Result<Option<MessageId>, StoreError> {
        let rtxn = self.env.read_txn()?;
        Ok(self
            .sent_ids
            .get(&rtxn, &pair(from, client_id.as_bytes()))?
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes))
    }

    /// Bytes waiting in every mailbox, together.
    pub fn mailbox_bytes_total(&self) -> Result<u64, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut total = 0u64;
        for entry in self.meta.prefix_iter(&rtxn, USAGE_PREFIX)? {
            total = total.saturating_add(entry?.1);
        }
        Ok(total)
    }

    /// Bytes waiting in `to`'s mailbox.
    pub fn mailbox_bytes(&self, to: AccountId) -> Result<u64, StoreError> {
        let rtxn = self.env.read_txn()?;
        Ok(self.meta.get(&rtxn, &usage_key(to))?.unwrap_or(0))
    }

    /// Stores any inbox item, unless `client_id` from `from` was stored already, in a
    /// write transaction of its own. Fails with `QuotaExceeded` if the recipient's waiting
    /// items would pass `quota` bytes.
    pub fn store_item(
        &self,
        from: AccountId,
        client_id: &str,
        to: AccountId,
        item: Item,
        quota: u64,
    ) -> Result<Stored, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let stored = self.store_item_in(&mut wtxn, from, client_id, to, item, quota)?;
        wtxn.commit()?;
        Ok(stored)
    }

    /// [`HeedStore::store_item`] inside `wtxn`, which the caller commits. On an error the
    /// transaction may hold part of the change: abort it.
    pub fn store_item_in(
        &self,
        wtxn: &mut RwTxn,
        from: AccountId,
        client_id: &str,
        to: AccountId,
        item: Item,
        quota: u64,
    ) -> Result<Stored, StoreError> {
        let sent_key = pair(from, client_id.as_bytes());
        if let Some(id) = self.sent_ids.get(wtxn, &sent_key)? {
            return Ok(Stored::Again(u64::from_be_bytes(
                id.try_into().unwrap_or([0; 8]),
            )));
        }
        let size = item.size();
        let used = self.meta.get(wtxn, &usage_key(to))?.unwrap_or(0);
        if used.saturating_add(size) > quota {
            return Err(StoreError::QuotaExceeded);
        }
        let id = self.meta.get(wtxn, META_NEXT_MESSAGE)?.unwrap_or(1);
        let record = Record {
            item: item.with_id(id),
            from_account: from,
            client_id: client_id.to_owned(),
        };
        let bytes = postcard::to_allocvec(&record).map_err(|_| StoreError::Encode)?;
        // Deletes need free pages too: new records stop short of a full map.
        let want = (bytes.len() + 2 * client_id.len() + 64) as u64;
        crate::space::check_map(self.map_size(), self.map_used(wtxn)?, want)
            .map_err(StoreError::OutOfSpace)?;
        self.meta.put(wtxn, META_NEXT_MESSAGE, &(id + 1))?;
        self.meta.put(wtxn, &usage_key(to), &(used + size))?;
        self.inbox.put(wtxn, &pair(to, &id.to_be_bytes()), &bytes)?;
        self.sent_ids.put(wtxn, &sent_key, &id.to_be_bytes())?;
        Ok(Stored::New(id))
    }

    /// Items waiting for `to`, oldest first.
    pub fn pending_messages(&self, to: AccountId) -> Result<Vec<Item>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for entry in self.inbox.prefix_iter(&rtxn, &to.to_be_bytes())? {
            let (_, bytes) = entry?;
            let r: Record = postcard::from_bytes(bytes).map_err(|_| StoreError::Encode)?;
            out.push(r.item);
        }
        Ok(out)
    }

    /// At most `limit` items waiting for `to` with an id above `after`, oldest first. Ids
    /// are given out in commit order by one thread, so a later call never finds a new item
    /// below the highest id an earlier call returned: delivering what this returns, in
    /// turn, keeps every conversation in the order its messages were stored.
    pub fn pending_after(
        &self,
        to: AccountId,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let Some(first) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let rtxn = self.env.read_txn()?;
        let start = pair(to, &first.to_be_bytes());
        let end = pair(to, &u64::MAX.to_be_bytes());
        let range = (
            std::ops::Bound::Included(start.as_slice()),
            std::ops::Bound::Included(end.as_slice()),
        );
        let mut out = Vec::new();
        for entry in self.inbox.range(&rtxn, &range)?.take(limit) {
            let (_, bytes) = entry?;
            let r: Record = postcard::from_bytes(bytes).map_err(|_| StoreError::Encode)?;
            out.push(r.item);
        }
        Ok(out)
    }

    /// Item `id` of `to`'s inbox.
    pub fn inbox_item(&self, to: AccountId, id: MessageId) -> Result<Option<Item>, StoreError> {
        let rtxn = self.env.read_txn()?;
        match self.inbox.get(&rtxn, &pair(to, &id.to_be_bytes()))? {
            Some(bytes) => Ok(Some(
                postcard::from_bytes::<Record>(bytes)
                    .map_err(|_| StoreError::Encode)?
                    .item,
            )),
            None => Ok(None),
        }
    }

    /// Whether any inbox still holds a file with these contents.
    pub fn blob_in_use(&self, sha256: &[u8; 32]) -> Result<bool, StoreError> {
        let rtxn = self.env.read_txn()?;
        for entry in self.inbox.iter(&rtxn)? {
            let (_, bytes) = entry?;
            if let Ok(Record {
                item: Item::File(f),
                ..
            }) = postcard::from_bytes::<Record>(bytes)
                && f.sha256 == *sha256
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The SHA-256 of every file some inbox still refers to (the blobs that matter).
    pub fn blob_hashes(&self) -> Result<BTreeSet<[u8; 32]>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut hashes = BTreeSet::new();
        for entry in self.inbox.iter(&rtxn)? {
            let (_, bytes) = entry?;
            if let Ok(Record {
                item: Item::File(f),
                ..
            }) = postcard::from_bytes::<Record>(bytes)
            {
                hashes.insert(f.sha256);
            }
        }
        Ok(hashes)
    }

    /// `to` has message `id`: drop the relay's copy and keep a receipt for the sender.
    /// Returns (sender, client id), or `None` if it was acknowledged before.
    pub fn deliver_message(&self, to: AccountId, id: MessageId) -> Result<Delivered, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let delivered = self.deliver_message_in(&mut wtxn, to, id)?;
        wtxn.commit()?;
        Ok(delivered)
    }

    /// [`HeedStore::deliver_message`] inside `wtxn`, which the caller commits (or aborts on
    /// an error).
    pub fn deliver_message_in(
        &self,
        wtxn: &mut RwTxn,
        to: AccountId,
        id: MessageId,
    ) -> Result<Delivered, StoreError> {
        let key = pair(to, &id.to_be_bytes());
        let Some(bytes) = self.inbox.get(wtxn, &key)? else {
            return Ok(None);
        };
        let r: Record = postcard::from_bytes(bytes).map_err(|_| StoreError::Encode)?;
        let size = r.item.size();
        self.inbox.delete(wtxn, &key)?;
        let used = self.meta.get(wtxn, &usage_key(to))?.unwrap_or(0);
        self.meta
            .put(wtxn, &usage_key(to), &used.saturating_sub(size))?;
        self.receipts.put(
            wtxn,
            &pair(r.from_account, &id.to_be_bytes()),
            r.client_id.as_bytes(),
        )?;
        Ok(Some((r.from_account, r.client_id, r.item)))
    }

    /// Delivery receipts waiting for `sender`: (message id, client id).
    pub fn pending_receipts(
        &self,
        sender: AccountId,
    ) -> Result<Vec<(MessageId, String)>, StoreError> {
        self.pending_receipts_after(sender, 0, usize::MAX)
    }

    /// At most `limit` receipts waiting for `sender` for messages with an id above
    /// `after`, by id.
    pub fn pending_receipts_after(
        &self,
        sender: AccountId,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<(MessageId, String)>, StoreError> {
        let Some(first) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let rtxn = self.env.read_txn()?;
        let start = pair(sender, &first.to_be_bytes());
        let end = pair(sender, &u64::MAX.to_be_bytes());
        let range = (
            std::ops::Bound::Included(start.as_slice()),
            std::ops::Bound::Included(end.as_slice()),
        );
        let mut out = Vec::new();
        for entry in self.receipts.range(&rtxn, &range)?.take(limit) {
            let (key, client_id) = entry?;
            let id = key
                .get(8..16)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes);
            if let Some(id) = id {
                out.push((id, String::from_utf8_lossy(client_id).into_owned()));
            }
        }
        Ok(out)
    }

    /// The receipt reached the sender.
    pub fn drop_receipt(&self, sender: AccountId, id: MessageId) -> Result<(), StoreError> {
        let mut wtxn = self.env.write_txn()?;
        self.drop_receipt_in(&mut wtxn, sender, id)?;
        wtxn.commit()?;
        Ok(())
    }

    /// [`HeedStore::drop_receipt`] inside `wtxn`, which the caller commits.
    pub fn drop_receipt_in(
        &self,
        wtxn: &mut RwTxn,
        sender: AccountId,
        id: MessageId,
    ) -> Result<(), StoreError> {
        self.receipts
            .delete(wtxn, &pair(sender, &id.to_be_bytes()))?;
        Ok(())
    }
}

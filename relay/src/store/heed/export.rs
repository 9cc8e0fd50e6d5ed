//! The whole embedded store read in one transaction ([`Snapshot`]), for
//! `phone-relay admin migrate`.

use super::messages::{META_NEXT_MESSAGE, Record, USAGE_PREFIX};
use super::{HeedStore, META_NEXT_ID, META_REVISION};
use crate::store::StoreError;
use crate::store::model::{InboxRecord, Snapshot};

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
}

impl HeedStore {
    /// Every account, inbox item, retry id, receipt and counter, as one consistent read.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut snap = Snapshot {
            next_account_id: self.meta.get(&rtxn, META_NEXT_ID)?.unwrap_or(1),
            next_message_id: self.meta.get(&rtxn, META_NEXT_MESSAGE)?.unwrap_or(1),
            revision: self.meta.get(&rtxn, META_REVISION)?.unwrap_or(0),
            ..Snapshot::default()
        };
        for entry in self.accounts.iter(&rtxn)? {
            snap.accounts.push(entry?.1);
        }
        for entry in self.inbox.iter(&rtxn)? {
            let (key, bytes) = entry?;
            let recipient = u64_at(key, 0).ok_or(StoreError::Encode)?;
            let r: Record = postcard::from_bytes(bytes).map_err(|_| StoreError::Encode)?;
            snap.inbox.push(InboxRecord {
                recipient,
                item: r.item,
                sender: r.from_account,
                client_id: r.client_id,
            });
        }
        for entry in self.sent_ids.iter(&rtxn)? {
            let (key, id) = entry?;
            let sender = u64_at(key, 0).ok_or(StoreError::Encode)?;
            let client_id = String::from_utf8_lossy(&key[8..]).into_owned();
            snap.sent_ids
                .push((sender, client_id, u64_at(id, 0).ok_or(StoreError::Encode)?));
        }
        for entry in self.receipts.iter(&rtxn)? {
            let (key, client_id) = entry?;
            let sender = u64_at(key, 0).ok_or(StoreError::Encode)?;
            let id = u64_at(key, 8).ok_or(StoreError::Encode)?;
            snap.receipts
                .push((sender, id, String::from_utf8_lossy(client_id).into_owned()));
        }
        for entry in self.meta.prefix_iter(&rtxn, USAGE_PREFIX)? {
            let (key, bytes) = entry?;
            if let Ok(account) = key[USAGE_PREFIX.len()..].parse() {
                snap.usage.push((account, bytes));
            }
        }
        Ok(snap)
    }
}

//! What the store holds, the same for every backend: accounts, inbox items and the
//! outcomes of writes.

use phoned_proto::{MessageId, Number, NumberRange, StoredFile, StoredMessage};
use serde::{Deserialize, Serialize};

use super::StoreError;

pub type AccountId = u64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub number: String,
    pub display_name: String,
    /// Argon2id hash in PHC string format.
    pub password_hash: String,
    pub created_ms: u64,
    pub disabled: bool,
    pub last_seen_ms: u64,
    /// Bumped when an administrator revokes the account's sessions (disable, password
    /// reset); a live session whose epoch differs is closed.
    pub epoch: u32,
}

/// Where a new account's number comes from.
pub enum NewNumber<'a> {
    /// This exact number (registration, admin add).
    Exact(&'a Number),
    /// A free number from the range, chosen at random (provisioning).
    FromRange(NumberRange, u64),
}

/// How many random numbers to try before scanning the range for a free one.
pub(crate) const RANDOM_PROBES: usize = 32;
/// The most numbers a scan looks at before giving up on a huge, nearly full range.
pub(crate) const MAX_SCAN: u64 = 1_000_000;

/// The numbers a provisioning tries first, in order: [`RANDOM_PROBES`] spread over the
/// range by `seed` (xorshift, without another RNG call).
pub(crate) fn random_probes(range: NumberRange, seed: u64) -> impl Iterator<Item = Number> {
    let mut x = seed | 1;
    (0..RANDOM_PROBES).map(move |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        range.nth(x)
    })
}

/// Then every number of the range from `seed` on, at most [`MAX_SCAN`] of them.
pub(crate) fn scan(range: NumberRange, seed: u64) -> impl Iterator<Item = Number> {
    (0..range.len().min(MAX_SCAN)).map(move |i| range.nth(seed.wrapping_add(i)))
}

/// What waits in an inbox: a text, or a file whose bytes are a blob (see [`crate::store::Blobs`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Item {
    Text(StoredMessage),
    File(StoredFile),
}

impl Item {
    pub fn id(&self) -> MessageId {
        match self {
            Item::Text(m) => m.id,
            Item::File(f) => f.id,
        }
    }

    pub(crate) fn with_id(self, id: MessageId) -> Item {
        match self {
            Item::Text(m) => Item::Text(StoredMessage { id, ..m }),
            Item::File(f) => Item::File(StoredFile { id, ..f }),
        }
    }

    /// Bytes it counts against the recipient's mailbox quota.
    pub(crate) fn size(&self) -> u64 {
        64 + match self {
            Item::Text(m) => m.text.len() as u64,
            Item::File(f) => f.size + f.name.len() as u64,
        }
    }
}

/// An outcome of [`Store::store_message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    New(MessageId),
    /// The same client id was stored before: this is a retry.
    Again(MessageId),
}

/// An outcome of [`Store::deliver_message`]: (sender, client id, the item), or `None` if
/// it was acknowledged before.
pub type Delivered = Option<(AccountId, String, Item)>;

impl Stored {
    pub fn id(self) -> MessageId {
        match self {
            Stored::New(id) | Stored::Again(id) => id,
        }
    }
}

/// A queued write's answer, due once it is committed (or failed). Dropping it does not
/// cancel the write.
pub struct Pending<T>(pub(crate) smol::channel::Receiver<Result<T, StoreError>>);

impl<T> Pending<T> {
    pub async fn wait(self) -> Result<T, StoreError> {
        self.0
            .recv()
            .await
            .map_err(|_| StoreError::CommitterStopped)?
    }
}

/// Told of every batch a group committer commits: how long its transaction took (the
/// writes, the commit and its fsync) and how many writes it held.
pub type Observer = Box<dyn FnMut(std::time::Duration, usize) + Send>;

/// A waiting inbox item with what the store keeps beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRecord {
    pub recipient: AccountId,
    /// The item, with its id.
    pub item: Item,
    pub sender: AccountId,
    pub client_id: String,
}

/// Everything a store holds but the blobs, read in one transaction: what
/// `phone-relay admin migrate` copies from the embedded store into PostgreSQL.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub accounts: Vec<Account>,
    pub next_account_id: u64,
    pub next_message_id: u64,
    pub revision: u64,
    pub inbox: Vec<InboxRecord>,
    /// (sender, client id, message id), for idempotent retries.
    pub sent_ids: Vec<(AccountId, String, MessageId)>,
    /// (sender, message id, client id): receipts not yet handed over.
    pub receipts: Vec<(AccountId, MessageId, String)>,
    /// Bytes waiting per recipient.
    pub usage: Vec<(AccountId, u64)>,
}

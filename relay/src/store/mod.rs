//! The relay's durable state behind one interface, with two backends:
//! - [`heed`], the default: one embedded LMDB environment in the state dir, file blobs as
//!   files beside it;
//! - [`pg`], PostgreSQL (`store = "postgres://…"` in the config): the same state in
//!   tables, file blobs chunked in one, so that several relays can share it.
//!
//! [`Store`] and [`Committer`] are enums over the two, not trait objects: the set of
//! backends is closed, every operation is a plain blocking call (the relay runs them on
//! the blocking pool, or inline where the backend is the embedded one), and the few things
//! only one backend has (the LMDB map's space reserve, `admin backup`'s snapshot, blobs
//! as files) are a `match` away instead of a downcast. Adding an operation means adding it
//! to both backends, which the compiler checks.
//!
//! Both backends keep the same contract: every account change is one transaction and
//! bumps a revision the relay polls; numbers are unique (of N concurrent changes to one
//! free number exactly one wins); a message write is committed (fsynced) before its
//! sender hears `Stored`; message ids are given out in commit order.

mod error;
pub mod heed;
mod model;
pub mod pg;
#[cfg(test)]
mod suite;

use std::path::{Path, PathBuf};

use phoned_proto::{MessageId, Number, StoredMessage};

pub use error::StoreError;
pub use model::{
    Account, AccountId, Delivered, InboxRecord, Item, NewNumber, Observer, Pending, Snapshot,
    Stored,
};

use self::heed::HeedStore;
use self::pg::PgStore;

/// Default LMDB map size: a virtual reservation; the file only grows as data is written.
pub const DEFAULT_MAP_SIZE_MIB: u64 = 1024;

/// Which backend holds the relay's state (the config's `store`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The embedded LMDB environment in `state_dir/db`.
    Heed,
    /// A PostgreSQL database, by connection URL (`postgres://user@host/db`).
    Postgres(pg::Url),
}

/// The opened store. Cheap to clone; share freely across threads.
#[derive(Clone)]
pub enum Store {
    Heed(HeedStore),
    Postgres(PgStore),
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Heed($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}

impl Store {
    /// Opens (creating if needed) the store: the LMDB environment in `state_dir/db`, or
    /// the PostgreSQL database, whose schema is brought up to date first.
    pub fn open(
        backend: &Backend,
        state_dir: &Path,
        map_size_mib: u64,
    ) -> Result<Store, StoreError> {
        match backend {
            Backend::Heed => Ok(Store::Heed(HeedStore::open(state_dir, map_size_mib)?)),
            Backend::Postgres(url) => Ok(Store::Postgres(PgStore::open(url)?)),
        }
    }

    /// Whether reads are cheap enough to make on an async task (a lookup in the mapped
    /// LMDB file takes microseconds; PostgreSQL is a round trip away).
    pub fn reads_inline(&self) -> bool {
        matches!(self, Store::Heed(_))
    }

    /// The accounts revision: changes whenever any account changes, in any process.
    pub fn revision(&self) -> Result<u64, StoreError> {
        each!(self, s => s.revision())
    }

    /// Whether the LMDB map is down to its reserve; PostgreSQL has no such limit of its own.
    pub fn map_shortage(&self) -> Result<Option<crate::space::Shortage>, StoreError> {
        match self {
            Store::Heed(s) => s.map_shortage(),
            Store::Postgres(_) => Ok(None),
        }
    }

    /// Creates an account; fails with `NumberTaken` or `NumbersExhausted`.
    pub fn create_account(
        &self,
        number: NewNumber<'_>,
        display_name: &str,
        password_hash: &str,
        now_ms: u64,
    ) -> Result<Account, StoreError> {
        each!(self, s => s.create_account(number, display_name, password_hash, now_ms))
    }

    pub fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        each!(self, s => s.account(id))
    }

    pub fn account_by_number(&self, number: &str) -> Result<Option<Account>, StoreError> {
        each!(self, s => s.account_by_number(number))
    }

    /// All accounts, ordered by number.
    pub fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        each!(self, s => s.accounts())
    }

    /// Moves an account to `new`; of many concurrent requests for one free number exactly
    /// one wins, the others fail with `NumberTaken`.
    pub fn change_number(&self, id: AccountId, new: &Number) -> Result<Account, StoreError> {
        each!(self, s => s.change_number(id, new))
    }

    pub fn set_display_name(&self, id: AccountId, name: &str) -> Result<Account, StoreError> {
        self.update(id, |a| a.display_name = name.to_owned())
    }

    /// Replaces the password hash; with `revoke`, live sessions of the account are closed.
    pub fn set_password_hash(
        &self,
        id: AccountId,
        hash: &str,
        revoke: bool,
    ) -> Result<Account, StoreError> {
        self.update(id, |a| {
            a.password_hash = hash.to_owned();
            if revoke {
                a.epoch = a.epoch.wrapping_add(1);
            }
        })
    }

    /// Disables or enables an account; disabling closes its live sessions.
    pub fn set_disabled(&self, id: AccountId, disabled: bool) -> Result<Account, StoreError> {
        self.update(id, |a| {
            if disabled && !a.disabled {
                a.epoch = a.epoch.wrapping_add(1);
            }
            a.disabled = disabled;
        })
    }

    /// Reads, changes and writes one account in a single transaction (bumping the
    /// revision); the rules of each change above are the same for every backend.
    fn update(
        &self,
        id: AccountId,
        change: impl FnOnce(&mut Account),
    ) -> Result<Account, StoreError> {
        each!(self, s => s.update(id, change))
    }

    /// Records when the account was last online. Does not bump the revision.
    pub fn touch(&self, id: AccountId, now_ms: u64) -> Result<(), StoreError> {
        each!(self, s => s.touch(id, now_ms))
    }

    /// Deletes the account with `number` and frees the number.
    pub fn delete_account(&self, number: &str) -> Result<Account, StoreError> {
        each!(self, s => s.delete_account(number))
    }

    /// Stores a message for `to` in a transaction of its own (the relay's sessions go
    /// through the [`Committer`] instead).
    pub fn store_message(
        &self,
        from: AccountId,
        client_id: &str,
        to: AccountId,
        msg: StoredMessage,
        quota: u64,
    ) -> Result<Stored, StoreError> {
        self.store_item(from, client_id, to, Item::Text(msg), quota)
    }

    /// Stores any inbox item, unless `client_id` from `from` was stored already; fails
    /// with `QuotaExceeded` if `to`'s waiting items would pass `quota` bytes.
    pub fn store_item(
        &self,
        from: AccountId,
        client_id: &str,
        to: AccountId,
        item: Item,
        quota: u64,
    ) -> Result<Stored, StoreError> {
        each!(self, s => s.store_item(from, client_id, to, item, quota))
    }

    /// The message id stored earlier for `client_id` from `from`, if any.
    pub fn stored_id(
        &self,
        from: AccountId,
        client_id: &str,
    ) -> Result<Option<MessageId>, StoreError> {
        each!(self, s => s.stored_id(from, client_id))
    }

    /// Bytes waiting in every mailbox, together.
    pub fn mailbox_bytes_total(&self) -> Result<u64, StoreError> {
        each!(self, s => s.mailbox_bytes_total())
    }

    /// Bytes waiting in `to`'s mailbox.
    pub fn mailbox_bytes(&self, to: AccountId) -> Result<u64, StoreError> {
        each!(self, s => s.mailbox_bytes(to))
    }

    /// Items waiting for `to`, oldest first.
    pub fn pending_messages(&self, to: AccountId) -> Result<Vec<Item>, StoreError> {
        self.pending_after(to, 0, usize::MAX)
    }

    /// At most `limit` items waiting for `to` with an id above `after`, oldest first. Ids
    /// are given out in commit order, so a later call never finds a new item below the
    /// highest id an earlier call returned.
    pub fn pending_after(
        &self,
        to: AccountId,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        each!(self, s => s.pending_after(to, after, limit))
    }

    /// Item `id` of `to`'s inbox.
    pub fn inbox_item(&self, to: AccountId, id: MessageId) -> Result<Option<Item>, StoreError> {
        each!(self, s => s.inbox_item(to, id))
    }

    /// Whether any inbox still holds a file with these contents.
    pub fn blob_in_use(&self, sha256: &[u8; 32]) -> Result<bool, StoreError> {
        each!(self, s => s.blob_in_use(sha256))
    }

    /// `to` has message `id`: drop the relay's copy and keep a receipt for the sender, in
    /// a transaction of its own.
    pub fn deliver_message(&self, to: AccountId, id: MessageId) -> Result<Delivered, StoreError> {
        each!(self, s => s.deliver_message(to, id))
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
        each!(self, s => s.pending_receipts_after(sender, after, limit))
    }

    /// The receipt reached the sender.
    pub fn drop_receipt(&self, sender: AccountId, id: MessageId) -> Result<(), StoreError> {
        each!(self, s => s.drop_receipt(sender, id))
    }

    /// Where the blob with these contents is a file, for the backend that keeps blobs as
    /// files (`state_dir/blobs/<hex>`); `None` for PostgreSQL, read it with
    /// [`Store::read_blob`].
    pub fn blob_file(&self, state_dir: &Path, sha256: &[u8; 32]) -> Option<PathBuf> {
        match self {
            Store::Heed(_) => Some(blob_path(state_dir, sha256)),
            Store::Postgres(_) => None,
        }
    }

    /// Keeps the verified upload in `partial` as the blob `sha256`: renamed into
    /// `state_dir/blobs/`, or copied into the database in chunks and then removed. Durable
    /// when it returns.
    pub fn keep_blob(
        &self,
        state_dir: &Path,
        sha256: &[u8; 32],
        partial: &Path,
    ) -> Result<(), StoreError> {
        match self {
            Store::Heed(_) => keep_blob_file(state_dir, sha256, partial),
            Store::Postgres(s) => {
                s.put_blob(sha256, partial)?;
                let _ = std::fs::remove_file(partial);
                Ok(())
            }
        }
    }

    /// At most `max` bytes of blob `sha256` from `offset` (fewer only at its end); `None`
    /// if there is no such blob.
    pub fn read_blob(
        &self,
        state_dir: &Path,
        sha256: &[u8; 32],
        offset: u64,
        max: usize,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Heed(_) => read_blob_file(&blob_path(state_dir, sha256), offset, max),
            Store::Postgres(s) => s.read_blob(sha256, offset, max),
        }
    }

    /// Deletes blob `sha256` unless an inbox still refers to it.
    pub fn release_blob(&self, state_dir: &Path, sha256: &[u8; 32]) -> Result<(), StoreError> {
        match self {
            Store::Heed(s) => {
                if !s.blob_in_use(sha256)? {
                    let _ = std::fs::remove_file(blob_path(state_dir, sha256));
                }
                Ok(())
            }
            Store::Postgres(s) => s.release_blob(sha256),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the embedded backend keeps blob `sha256`.
pub fn blob_path(state_dir: &Path, sha256: &[u8; 32]) -> PathBuf {
    state_dir.join("blobs").join(hex(sha256))
}

fn keep_blob_file(state_dir: &Path, sha256: &[u8; 32], partial: &Path) -> Result<(), StoreError> {
    let blob = blob_path(state_dir, sha256);
    let io = |what| move |source| StoreError::Blob { what, source };
    if let Some(dir) = blob.parent() {
        std::fs::create_dir_all(dir).map_err(io("directory"))?;
    }
    std::fs::rename(partial, &blob).map_err(io("rename"))?;
    if let Some(dir) = blob.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

fn read_blob_file(path: &Path, offset: u64, max: usize) -> Result<Option<Vec<u8>>, StoreError> {
    use std::io::{Read, Seek};
    let io = |source| StoreError::Blob {
        what: "read",
        source,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    file.seek(std::io::SeekFrom::Start(offset)).map_err(io)?;
    let mut out = Vec::with_capacity(max.min(1 << 20));
    file.take(max as u64).read_to_end(&mut out).map_err(io)?;
    Ok(Some(out))
}

/// The group committer of message writes (store, deliver, drop a receipt): writes that
/// arrive while the previous commit runs are committed together, and each is answered
/// only once the commit that holds it returned.
pub enum Committer {
    Heed(heed::commit::Committer),
    Postgres(pg::commit::Committer),
}

impl Committer {
    /// Starts the committer of `store`'s message writes, telling `observe` of every batch.
    pub fn start_observed(store: Store, observe: Observer) -> Result<Committer, StoreError> {
        match store {
            Store::Heed(s) => Ok(Committer::Heed(heed::commit::Committer::start_observed(
                s, observe,
            )?)),
            Store::Postgres(s) => Ok(Committer::Postgres(pg::commit::Committer::start_observed(
                s, observe,
            )?)),
        }
    }

    /// [`Committer::start_observed`] without an observer.
    pub fn start(store: Store) -> Result<Committer, StoreError> {
        Self::start_observed(store, Box::new(|_, _| {}))
    }

    /// How many writes so far failed because the map or the disk was full.
    pub fn full_failures(&self) -> u64 {
        match self {
            Committer::Heed(c) => c.full_failures(),
            Committer::Postgres(_) => 0,
        }
    }

    /// [`Store::store_item`], group-committed.
    pub async fn store_item(
        &self,
        from: AccountId,
        client_id: String,
        to: AccountId,
        item: Item,
        quota: u64,
    ) -> Result<Stored, StoreError> {
        self.queue_store_item(from, client_id, to, item, quota)
            .await?
            .wait()
            .await
    }

    /// Queues [`Store::store_item`].
    pub async fn queue_store_item(
        &self,
        from: AccountId,
        client_id: String,
        to: AccountId,
        item: Item,
        quota: u64,
    ) -> Result<Pending<Stored>, StoreError> {
        match self {
            Committer::Heed(c) => c.queue_store_item(from, client_id, to, item, quota).await,
            Committer::Postgres(c) => c.queue_store_item(from, client_id, to, item, quota).await,
        }
    }

    /// Queues [`Store::deliver_message`].
    pub async fn queue_deliver_message(
        &self,
        to: AccountId,
        id: MessageId,
    ) -> Result<Pending<Delivered>, StoreError> {
        match self {
            Committer::Heed(c) => c.queue_deliver_message(to, id).await,
            Committer::Postgres(c) => c.queue_deliver_message(to, id).await,
        }
    }

    /// Queues [`Store::drop_receipt`].
    pub async fn queue_drop_receipt(
        &self,
        sender: AccountId,
        id: MessageId,
    ) -> Result<Pending<()>, StoreError> {
        match self {
            Committer::Heed(c) => c.queue_drop_receipt(sender, id).await,
            Committer::Postgres(c) => c.queue_drop_receipt(sender, id).await,
        }
    }
}

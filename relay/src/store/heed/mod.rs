//! The embedded backend, the default: the relay's durable state in one LMDB environment
//! (heed): accounts, the number index, and stored messages waiting for delivery. File
//! blobs are files in the state dir's `blobs/`.
//!
//! The environment is safe to open from several processes at once, which is how
//! `phone-relay admin` changes accounts while the relay runs. Every change to accounts
//! bumps a revision counter that the running relay polls to apply them to live sessions.

mod codec;
pub mod commit;
mod directory;
mod export;
mod messages;

use std::path::Path;

use codec::Postcard;
use heed::types::{Bytes, Str, U64};
use heed::{CompactionOption, Database, Env, EnvOpenOptions};

use super::{Account, StoreError};

type Be = heed::byteorder::BigEndian;

/// The opened environment and its databases. Cheap to clone; share freely across threads.
#[derive(Clone)]
pub struct HeedStore {
    env: Env,
    accounts: Database<'static, U64<Be>, Postcard<Account>>,
    numbers: Database<'static, Str, U64<Be>>,
    meta: Database<'static, Str, U64<Be>>,
    /// (recipient, message id) → message.
    inbox: Database<'static, Bytes, Bytes>,
    /// (sender, client id) → message id, for idempotent retries.
    sent_ids: Database<'static, Bytes, Bytes>,
    /// (sender, message id) → client id: delivery receipts not yet handed over.
    receipts: Database<'static, Bytes, Bytes>,
}

const META_NEXT_ID: &str = "next_account_id";
const META_REVISION: &str = "accounts_revision";

impl HeedStore {
    /// Opens (creating if needed) the store in `dir/db`.
    pub fn open(dir: &Path, map_size_mib: u64) -> Result<HeedStore, StoreError> {
        let path = dir.join("db");
        std::fs::create_dir_all(&path).map_err(|source| StoreError::Dir {
            path: path.display().to_string(),
            source,
        })?;
        let page = 4096u64;
        let map_size = (map_size_mib.max(1) << 20).div_ceil(page) * page;
        // SAFETY: the env is opened once per process (the relay and the admin CLI are
        // separate processes), and the files are not modified except through LMDB.
        let env = unsafe {
            EnvOpenOptions::new()
                .map_size(map_size as usize)
                .max_dbs(16)
                .open(&path)?
        };
        let wtxn = env.write_txn()?;
        let (accounts, numbers, meta, inbox, sent_ids, receipts) = env
            .create_databases_and_commit(wtxn, |opener, wtxn| -> heed::Result<_> {
                Ok(heed::CommitOrAbort::<_, ()>::Commit((
                    opener.create_database(wtxn, Some("accounts"))?,
                    opener.create_database(wtxn, Some("numbers"))?,
                    opener.create_database(wtxn, Some("meta"))?,
                    opener.create_database(wtxn, Some("inbox"))?,
                    opener.create_database(wtxn, Some("sent_ids"))?,
                    opener.create_database(wtxn, Some("receipts"))?,
                )))
            })?
            .unwrap_commit();
        Ok(HeedStore {
            env,
            accounts,
            numbers,
            meta,
            inbox,
            sent_ids,
            receipts,
        })
    }

    /// Writes a consistent, compacted copy of the whole environment (one read
    /// transaction; writers in this and other processes carry on) into `file`, which
    /// becomes a `data.mdb`. Falls back to a plain copy if compaction fails (LMDB refuses
    /// to compact an environment that has leaked pages). Returns whether it compacted.
    pub fn copy_to(&self, file: &mut std::fs::File) -> Result<bool, StoreError> {
        use std::io::Seek;
        if self
            .env
            .copy_to_file(file, CompactionOption::Enabled)
            .is_ok()
        {
            return Ok(true);
        }
        let io = |e: std::io::Error| StoreError::Db(heed::Error::Io(e));
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        self.env.copy_to_file(file, CompactionOption::Disabled)?;
        Ok(false)
    }

    /// The accounts revision: changes whenever any account changes, in any process.
    pub fn revision(&self) -> Result<u64, StoreError> {
        let rtxn = self.env.read_txn()?;
        Ok(self.meta.get(&rtxn, META_REVISION)?.unwrap_or(0))
    }

    /// Bytes the LMDB map holds (its `map_size_mib`).
    pub fn map_size(&self) -> u64 {
        self.env.info().map_size as u64
    }

    /// Bytes of the map in use as `txn` sees it: every database's pages, without the
    /// free ones (which LMDB reuses), plus a few for the meta pages, the main database
    /// and the free list.
    pub(crate) fn map_used(&self, txn: &heed::RoTxn) -> Result<u64, StoreError> {
        let pages = [
            self.accounts.stat(txn)?,
            self.numbers.stat(txn)?,
            self.meta.stat(txn)?,
            self.inbox.stat(txn)?,
            self.sent_ids.stat(txn)?,
            self.receipts.stat(txn)?,
        ];
        let page = pages[0].page_size as u64;
        let used: u64 = pages.iter().map(|s| s.non_free_page_size() as u64).sum();
        Ok(used + 16 * page)
    }

    /// Whether the map is down to its reserve (see [`crate::space::map_reserve`]): a
    /// message of the largest size would be refused.
    pub fn map_shortage(&self) -> Result<Option<crate::space::Shortage>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let used = self.map_used(&rtxn)?;
        let largest = phoned_proto::MAX_FRAME as u64;
        Ok(crate::space::check_map(self.map_size(), used, largest).err())
    }

    fn bump_revision(&self, wtxn: &mut heed::RwTxn) -> Result<(), StoreError> {
        let rev = self.meta.get(wtxn, META_REVISION)?.unwrap_or(0);
        self.meta.put(wtxn, META_REVISION, &(rev + 1))?;
        Ok(())
    }
}

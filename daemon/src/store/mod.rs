//! The daemon's local state in LMDB (heed): contacts, call history and settings (relay
//! pin, do not disturb, auto-answer). One environment per daemon, opened once.

pub mod contacts;
pub mod files;
pub mod history;
pub mod messages;
mod named;

use std::path::Path;

use heed::types::{Bytes, Str, U64};
use heed::{Database, Env, EnvOpenOptions};
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

type Be = heed::byteorder::BigEndian;
/// A table of postcard records under a sequence number.
type Records = Database<'static, U64<Be>, Bytes>;

/// Settings key: do-not-disturb, `true` or `false`.
pub const DND: &str = "do_not_disturb";
/// Settings key: auto-answer, `off`, `all` or `contacts`.
pub const AUTO_ANSWER: &str = "auto_answer";

/// The daemon stores little; 64 MiB of address space is plenty and fits 32-bit boards.
const MAP_SIZE: usize = 64 << 20;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Db(#[from] heed::Error),
    #[error("cannot create {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    #[error("corrupt record: {0}")]
    Corrupt(postcard::Error),
}

/// A fresh id for something this device sends (a text or a file): the relay echoes it in
/// the delivery receipt. 96 random bits, hex.
pub fn new_client_id() -> String {
    let mut b = [0u8; 12];
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[derive(Clone)]
pub struct Store {
    env: Env,
    contacts: Database<'static, U64<Be>, Bytes>,
    settings: Database<'static, Str, Str>,
    history: Records,
    messages: Records,
    files: Records,
    /// Why a transfer failed, by file id: apart from [`files::LocalFile`] so that the
    /// records written before it existed still decode.
    file_reasons: Database<'static, Str, Str>,
}

impl Store {
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        let path = state_dir.join("db");
        std::fs::create_dir_all(&path).map_err(|source| StoreError::Dir {
            path: path.display().to_string(),
            source,
        })?;
        // SAFETY: opened once per process; the files are only changed through LMDB.
        let env = unsafe {
            EnvOpenOptions::new()
                .map_size(MAP_SIZE)
                .max_dbs(8)
                .open(&path)?
        };
        let wtxn = env.write_txn()?;
        let (contacts, settings, history, messages, files, file_reasons) = env
            .create_databases_and_commit(wtxn, |opener, wtxn| -> heed::Result<_> {
                Ok(heed::CommitOrAbort::<_, ()>::Commit((
                    opener.create_database(wtxn, Some("contacts"))?,
                    opener.create_database(wtxn, Some("settings"))?,
                    opener.create_database(wtxn, Some("history"))?,
                    opener.create_database(wtxn, Some("messages"))?,
                    opener.create_database(wtxn, Some("files"))?,
                    opener.create_database(wtxn, Some("file_reasons"))?,
                )))
            })?
            .unwrap_commit();
        Ok(Store {
            env,
            contacts,
            settings,
            history,
            messages,
            files,
            file_reasons,
        })
    }

    /// Takes the next number of the sequence kept in setting `key` (1, 2, …), within
    /// `wtxn`, so that appends in one transaction get distinct keys.
    fn take_seq(&self, wtxn: &mut heed::RwTxn, key: &str) -> Result<u64, StoreError> {
        let next: u64 = self
            .settings
            .get(wtxn, key)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        self.settings.put(wtxn, key, &(next + 1).to_string())?;
        Ok(next)
    }

    /// Appends `record` to `db` under the next number of sequence `seq`, within `wtxn`;
    /// returns that number.
    fn append<T: Serialize>(
        &self,
        wtxn: &mut heed::RwTxn,
        db: Records,
        seq: &str,
        record: &T,
    ) -> Result<u64, StoreError> {
        let key = self.take_seq(wtxn, seq)?;
        let bytes = postcard::to_allocvec(record).map_err(StoreError::Corrupt)?;
        db.put(wtxn, &key, &bytes)?;
        Ok(key)
    }

    /// Changes the newest record of `db` that `pick` picks, in one transaction; returns
    /// it as changed.
    fn update_newest<T: Serialize + DeserializeOwned>(
        &self,
        db: Records,
        pick: impl Fn(&T) -> bool,
        change: impl FnOnce(&mut T),
    ) -> Result<Option<T>, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let mut found = None;
        for entry in db.rev_iter(&wtxn)? {
            let (key, bytes) = entry?;
            let record: T = postcard::from_bytes(bytes).map_err(StoreError::Corrupt)?;
            if pick(&record) {
                found = Some((key, record));
                break;
            }
        }
        let Some((key, mut record)) = found else {
            return Ok(None);
        };
        change(&mut record);
        let bytes = postcard::to_allocvec(&record).map_err(StoreError::Corrupt)?;
        db.put(&mut wtxn, &key, &bytes)?;
        wtxn.commit()?;
        Ok(Some(record))
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let rtxn = self.env.read_txn()?;
        Ok(self.settings.get(&rtxn, key)?.map(str::to_owned))
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let mut wtxn = self.env.write_txn()?;
        self.settings.put(&mut wtxn, key, value)?;
        wtxn.commit()?;
        Ok(())
    }

    /// Removes a setting; whether there was one.
    pub fn remove_setting(&self, key: &str) -> Result<bool, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let removed = self.settings.delete(&mut wtxn, key)?;
        wtxn.commit()?;
        Ok(removed)
    }
}

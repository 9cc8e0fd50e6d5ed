//! Files (and voice messages) sent and received, with their transfer status.

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalFile {
    /// Outgoing: the client id; incoming: `f<relay id>`.
    pub id: String,
    pub peer: String,
    pub peer_name: String,
    pub outgoing: bool,
    /// The file's name (the sender's, for incoming files).
    pub name: String,
    /// Outgoing: the file sent; incoming: where it was saved ("" until then).
    pub path: String,
    pub size: u64,
    pub sha256: [u8; 32],
    /// `file` or `voice`.
    pub kind: String,
    /// `queued`, `stored`, `delivered`, `failed` (outgoing); `receiving`, `received` (incoming).
    pub status: String,
    pub at_ms: u64,
    pub relay_id: Option<u64>,
}

const NEXT: &str = "next_file_seq";

impl Store {
    pub fn add_file(&self, f: &LocalFile) -> Result<(), StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let next = self.take_seq(&mut wtxn, NEXT)?;
        let bytes = postcard::to_allocvec(f).map_err(StoreError::Corrupt)?;
        self.files.put(&mut wtxn, &next, &bytes)?;
        wtxn.commit()?;
        Ok(())
    }

    pub fn update_file(
        &self,
        id: &str,
        change: impl FnOnce(&mut LocalFile),
    ) -> Result<Option<LocalFile>, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let mut found = None;
        for entry in self.files.rev_iter(&wtxn)? {
            let (key, bytes) = entry?;
            let f: LocalFile = postcard::from_bytes(bytes).map_err(StoreError::Corrupt)?;
            if f.id == id {
                found = Some((key, f));
                break;
            }
        }
        let Some((key, mut f)) = found else {
            return Ok(None);
        };
        change(&mut f);
        let bytes = postcard::to_allocvec(&f).map_err(StoreError::Corrupt)?;
        self.files.put(&mut wtxn, &key, &bytes)?;
        wtxn.commit()?;
        Ok(Some(f))
    }

    /// All files, oldest first.
    pub fn files(&self) -> Result<Vec<LocalFile>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for entry in self.files.iter(&rtxn)? {
            let (_, bytes) = entry?;
            out.push(postcard::from_bytes(bytes).map_err(StoreError::Corrupt)?);
        }
        Ok(out)
    }

    pub fn file(&self, id: &str) -> Result<Option<LocalFile>, StoreError> {
        Ok(self.files()?.into_iter().find(|f| f.id == id))
    }
}

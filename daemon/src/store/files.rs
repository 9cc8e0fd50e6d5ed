//! Files (and voice messages) sent and received, with their transfer status.

use std::collections::HashMap;

use phoned_proto::FileKind;
use phoned_proto::transfer::{Direction, FileStatus};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, named};

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
    #[serde(with = "named")]
    pub kind: FileKind,
    /// Queued, stored, delivered, failed (outgoing); receiving, received (incoming).
    #[serde(with = "named")]
    pub status: FileStatus,
    pub at_ms: u64,
    pub relay_id: Option<u64>,
}

const NEXT: &str = "next_file_seq";

impl LocalFile {
    pub fn direction(&self) -> Direction {
        Direction::of(self.outgoing)
    }
}

impl Store {
    pub fn add_file(&self, f: &LocalFile) -> Result<(), StoreError> {
        let mut wtxn = self.env.write_txn()?;
        self.append(&mut wtxn, self.files, NEXT, f)?;
        wtxn.commit()?;
        Ok(())
    }

    pub fn update_file(
        &self,
        id: &str,
        change: impl FnOnce(&mut LocalFile),
    ) -> Result<Option<LocalFile>, StoreError> {
        self.update_newest(self.files, |f: &LocalFile| f.id == id, change)
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

    /// Records why transfer `id` failed (the relay's words, or the daemon's).
    pub fn set_file_reason(&self, id: &str, reason: &str) -> Result<(), StoreError> {
        let mut wtxn = self.env.write_txn()?;
        self.file_reasons.put(&mut wtxn, id, reason)?;
        wtxn.commit()?;
        Ok(())
    }

    /// Why each failed transfer failed, by id (those failed before reasons were kept
    /// have none).
    pub fn file_reasons(&self) -> Result<HashMap<String, String>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut out = HashMap::new();
        for entry in self.file_reasons.iter(&rtxn)? {
            let (id, reason) = entry?;
            out.insert(id.to_owned(), reason.to_owned());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record as daemons before the typed kind and status wrote it.
    #[derive(Serialize)]
    struct StringFile {
        id: String,
        peer: String,
        peer_name: String,
        outgoing: bool,
        name: String,
        path: String,
        size: u64,
        sha256: [u8; 32],
        kind: String,
        status: String,
        at_ms: u64,
        relay_id: Option<u64>,
    }

    fn old(kind: FileKind, status: FileStatus) -> StringFile {
        StringFile {
            id: "f7".into(),
            peer: "1042".into(),
            peer_name: "Alice".into(),
            outgoing: false,
            name: "a.txt".into(),
            path: "/tmp/a.txt".into(),
            size: 3,
            sha256: [7; 32],
            kind: kind.as_str().into(),
            status: status.as_str().into(),
            at_ms: 5,
            relay_id: Some(7),
        }
    }

    #[test]
    fn records_written_with_string_fields_still_read() {
        for kind in FileKind::ALL {
            for status in FileStatus::ALL {
                let old_bytes = postcard::to_allocvec(&old(*kind, *status)).unwrap();
                let f: LocalFile = postcard::from_bytes(&old_bytes).unwrap();
                assert_eq!((f.kind, f.status), (*kind, *status));
                assert_eq!((f.size, f.sha256, f.relay_id), (3, [7; 32], Some(7)));
                assert_eq!(postcard::to_allocvec(&f).unwrap(), old_bytes);
            }
        }
    }

    #[test]
    fn failure_reasons_are_kept_by_id() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        assert!(s.file_reasons().unwrap().is_empty());
        s.set_file_reason("a1", "too large").unwrap();
        s.set_file_reason("a1", "full").unwrap();
        let r = s.file_reasons().unwrap();
        assert_eq!(r.get("a1").map(String::as_str), Some("full"));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn a_changed_status_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let bytes = postcard::to_allocvec(&old(FileKind::Voice, FileStatus::Receiving)).unwrap();
        let f: LocalFile = postcard::from_bytes(&bytes).unwrap();
        s.add_file(&f).unwrap();
        let changed = s
            .update_file("f7", |f| f.status = FileStatus::Received)
            .unwrap()
            .unwrap();
        assert_eq!(changed.status, FileStatus::Received);
        assert_eq!(s.file("f7").unwrap(), Some(changed));
        assert_eq!(s.files().unwrap().len(), 1);
    }
}

//! `phone-relay admin backup`: a consistent copy of a relay's state, taken while it runs.
//!
//! Order matters. The database is copied first, in one LMDB read transaction, so it is a
//! snapshot even while the relay writes. Then the blobs (file bytes) that snapshot refers
//! to are copied: a blob is only deleted after its file was delivered, so one that has
//! gone by then belonged to a delivered file and is skipped (after a restore its
//! recipient, who has it, is offered it again and the download fails). Files stored after
//! the snapshot are not in it, and so not copied. Unfinished uploads (`partial/`) are not
//! copied either: their senders start them again.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::cert::{CERT_FILE, KEY_FILE};
use crate::store::heed::HeedStore;
use crate::store::{StoreError, blob_path};
use crate::token::KEY_FILE as TOKEN_KEY_FILE;

#[derive(Debug, Error)]
pub enum BackupError {
    #[error("{0} is not empty; back up into a new or empty directory")]
    NotEmpty(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a backup wrote.
#[derive(Debug)]
pub struct Written {
    /// `DEST/db/data.mdb` and its size.
    pub database: (PathBuf, u64),
    /// The database copy is compacted (free pages left out).
    pub compacted: bool,
    /// The self-signed identity's files (none when the relay has never made one).
    pub identity: Vec<PathBuf>,
    /// The key of the devices' login tokens ([`crate::token`]), when the relay has one.
    pub token_key: Option<PathBuf>,
    /// `DEST/blobs`, with how many files and bytes it holds.
    pub blobs: (PathBuf, usize, u64),
    /// Blobs the snapshot refers to that were deleted (delivered) before they were copied.
    pub delivered_meanwhile: usize,
}

impl Written {
    /// The report `phone-relay admin backup` prints.
    pub fn report(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let (db, size) = &self.database;
        let how = if self.compacted {
            "compacted"
        } else {
            "not compacted"
        };
        writeln!(out, "database {} ({size} bytes, {how})", db.display())?;
        for path in &self.identity {
            writeln!(out, "identity {}", path.display())?;
        }
        if self.identity.is_empty() {
            writeln!(
                out,
                "identity none in the state dir (a relay with tls_cert/tls_key: back those files up separately)"
            )?;
        }
        if let Some(path) = &self.token_key {
            writeln!(out, "login token key {}", path.display())?;
        }
        let (dir, files, bytes) = &self.blobs;
        writeln!(
            out,
            "blobs {} ({files} files, {bytes} bytes)",
            dir.display()
        )?;
        if self.delivered_meanwhile > 0 {
            writeln!(
                out,
                "skipped {} blobs delivered (and deleted) during the backup",
                self.delivered_meanwhile
            )?;
        }
        Ok(())
    }
}

/// Backs up the relay state in `state_dir`, whose database `live` is, into `dest`, which
/// must not exist or be an empty directory; it is made private (0700), and every file in
/// it 0600.
pub fn backup(
    live: &HeedStore,
    state_dir: &Path,
    map_size_mib: u64,
    dest: &Path,
) -> Result<Written, BackupError> {
    make_private_dir(dest, true)?;

    let db_dir = dest.join("db");
    make_private_dir(&db_dir, false)?;
    let db_path = db_dir.join("data.mdb");
    let mut file = create_private(&db_path)?;
    let compacted = live.copy_to(&mut file)?;
    file.sync_all().map_err(io(&db_path))?;
    drop(file);
    let db_size = fs::metadata(&db_path).map_err(io(&db_path))?.len();

    // The blobs the snapshot refers to, read from the copy itself. Opening it makes a
    // lock file, which a restored relay makes again anyway.
    let hashes = HeedStore::open(dest, map_size_mib)?.blob_hashes()?;
    let lock = db_dir.join("lock.mdb");
    fs::remove_file(&lock).map_err(io(&lock))?;

    let blobs_dir = dest.join("blobs");
    make_private_dir(&blobs_dir, false)?;
    let (mut files, mut bytes, mut delivered_meanwhile) = (0, 0, 0);
    for hash in &hashes {
        let from = blob_path(state_dir, hash);
        let src = match fs::File::open(&from) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                delivered_meanwhile += 1;
                continue;
            }
            Err(e) => return Err(io(&from)(e)),
        };
        bytes += copy_private(src, &blob_path(dest, hash))?;
        files += 1;
    }

    let mut identity = Vec::new();
    for name in [CERT_FILE, KEY_FILE] {
        let from = state_dir.join(name);
        if from.exists() {
            let to = dest.join(name);
            copy_private(fs::File::open(&from).map_err(io(&from))?, &to)?;
            identity.push(to);
        }
    }
    let from = state_dir.join(TOKEN_KEY_FILE);
    let token_key = if from.exists() {
        let to = dest.join(TOKEN_KEY_FILE);
        copy_private(fs::File::open(&from).map_err(io(&from))?, &to)?;
        Some(to)
    } else {
        None
    };
    for dir in [&blobs_dir, &db_dir, dest] {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(Written {
        database: (db_path, db_size),
        compacted,
        identity,
        token_key,
        blobs: (blobs_dir, files, bytes),
        delivered_meanwhile,
    })
}

/// Makes `dir` with mode 0700. With `may_exist`, an existing empty directory is taken
/// (and made 0700); anything else there is refused.
fn make_private_dir(dir: &Path, may_exist: bool) -> Result<(), BackupError> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if may_exist && e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mut entries = fs::read_dir(dir).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotADirectory => BackupError::NotEmpty(dir.to_owned()),
                _ => io(dir)(e),
            })?;
            if entries.next().is_some() {
                return Err(BackupError::NotEmpty(dir.to_owned()));
            }
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))
        }
        Err(e) => Err(io(dir)(e)),
    }
}

/// A new file with mode 0600; never overwrites one.
fn create_private(path: &Path) -> Result<fs::File, BackupError> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))
}

/// Copies `src` to a new private file `to`, synced; returns the bytes copied.
fn copy_private(mut src: fs::File, to: &Path) -> Result<u64, BackupError> {
    let mut dst = create_private(to)?;
    let n = std::io::copy(&mut src, &mut dst).map_err(io(to))?;
    dst.sync_all().map_err(io(to))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_destination_that_is_not_empty_or_not_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let store = HeedStore::open(&state, 16).unwrap();
        let full = dir.path().join("full");
        fs::create_dir(&full).unwrap();
        fs::write(full.join("keep.txt"), "mine").unwrap();
        assert!(matches!(
            backup(&store, &state, 16, &full),
            Err(BackupError::NotEmpty(_))
        ));
        assert_eq!(fs::read_to_string(full.join("keep.txt")).unwrap(), "mine");
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        assert!(matches!(
            backup(&store, &state, 16, &file),
            Err(BackupError::NotEmpty(_))
        ));
    }

    fn file_for(store: &HeedStore, to: u64, sha256: [u8; 32], client_id: &str) {
        let item = crate::store::Item::File(phoned_proto::StoredFile {
            id: 0,
            from_number: "1000".into(),
            from_name: "A".into(),
            name: "f".into(),
            size: 3,
            sha256,
            kind: phoned_proto::FileKind::File,
            sent_ms: 0,
        });
        store.store_item(1, client_id, to, item, u64::MAX).unwrap();
    }

    #[test]
    fn copies_the_blobs_the_snapshot_refers_to_and_skips_delivered_ones() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let store = HeedStore::open(&state, 16).unwrap();
        let (kept, delivered, orphan) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        file_for(&store, 2, kept, "a");
        file_for(&store, 2, delivered, "b");
        for (hash, bytes) in [(kept, "abc"), (orphan, "xyz")] {
            let path = blob_path(&state, &hash);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, bytes).unwrap();
        }
        // `delivered` is referenced but its blob is gone, as after a delivery that
        // happened between the snapshot and the copy of the blobs.
        let dest = dir.path().join("backup");
        let written = backup(&store, &state, 16, &dest).unwrap();
        assert_eq!(written.delivered_meanwhile, 1);
        assert_eq!((written.blobs.1, written.blobs.2), (1, 3));
        assert_eq!(fs::read(blob_path(&dest, &kept)).unwrap(), b"abc");
        assert!(!blob_path(&dest, &orphan).exists());
        let mut report = Vec::new();
        written.report(&mut report).unwrap();
        let report = String::from_utf8(report).unwrap();
        assert!(report.contains("skipped 1 blobs delivered"), "{report}");
    }

    #[test]
    fn an_empty_destination_is_taken_and_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let store = HeedStore::open(&state, 16).unwrap();
        let dest = dir.path().join("empty");
        fs::create_dir(&dest).unwrap();
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o755)).unwrap();
        let written = backup(&store, &state, 16, &dest).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dest), 0o700);
        assert_eq!(mode(&written.database.0), 0o600);
        assert!(!dest.join("db/lock.mdb").exists());
        assert!(written.identity.is_empty());
    }
}

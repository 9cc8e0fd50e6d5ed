//! One daemon per state dir. Two `phoned` on one state dir would both log in as the same
//! device, race on the LMDB store and the outbox, and fight over the relay session; the
//! second one must not start. [`StateLock`] holds an exclusive `flock` on `phoned.pid` in
//! the state dir for the life of the process (the kernel drops it when the process dies,
//! however it dies, so a crash never leaves a stale lock) and writes its PID there, so the
//! one that is refused can say who holds it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The lock file's name in the state dir.
pub const LOCK_FILE: &str = "phoned.pid";

/// Why the state dir could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum StateLockError {
    /// Another process holds the lock.
    #[error(
        "another phoned{} is using the state dir {}: stop it first, or give this one its own --state-dir",
        .pid.map(|p| format!(" (PID {p})")).unwrap_or_default(),
        .dir.display()
    )]
    Held {
        /// The state dir.
        dir: PathBuf,
        /// The holder's PID, as it wrote it (None if unreadable).
        pid: Option<u32>,
    },
    /// The lock file could not be opened, locked or written.
    #[error("cannot lock {}: {source}", .path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateLock {
    /// Locks `state_dir` for this process, or says who has it.
    pub fn acquire(state_dir: &Path) -> Result<StateLock, StateLockError> {
        let path = state_dir.join(LOCK_FILE);
        let io = |source| StateLockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let pid = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Err(StateLockError::Held {
                    dir: state_dir.to_owned(),
                    pid,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(StateLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateLock::acquire(dir.path()).unwrap();
        let err = StateLock::acquire(dir.path()).unwrap_err();
        match &err {
            StateLockError::Held { pid, .. } => assert_eq!(*pid, Some(std::process::id())),
            other => panic!("{other:?}"),
        }
        assert!(
            err.to_string()
                .contains(&format!("PID {}", std::process::id())),
            "{err}"
        );
        drop(first);
        StateLock::acquire(dir.path()).expect("free again once dropped");
    }

    #[test]
    fn a_stale_pid_file_without_a_lock_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "999999\n").unwrap();
        let _lock = StateLock::acquire(dir.path()).unwrap();
        let pid = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
    }
}

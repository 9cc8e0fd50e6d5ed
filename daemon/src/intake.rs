//! Files callers give the daemon to send, taken in: the caller opens the file with its
//! own rights and passes the descriptor (D-Bus `h`), or, on the session bus only, names
//! a path, which is opened without following into the daemon's own files. Either way
//! only a regular file is accepted, and the daemon copies it into its `outbox/` (hashing
//! it on the way), so the upload sends what the caller had, and resumes after a restart
//! without opening the caller's file again. A file another program holds an exclusive
//! `flock` on is being written: the copy waits for it, up to [`LOCK_WAIT`]. The blocking
//! part runs on the bounded [`crate::work::Work`] queue.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use thiserror::Error;

/// Where callers' files wait for their upload, inside the state dir.
const OUTBOX: &str = "outbox";
const CHUNK: usize = 64 * 1024;
/// What errors call a file passed as a descriptor.
pub const FD: &str = "the file passed";
/// How long a copy waits for a writer's exclusive lock on the file to go.
pub const LOCK_WAIT: Duration = Duration::from_secs(60);
/// How often it looks again: Linux has no `flock` with a timeout.
const LOCK_RETRY: Duration = Duration::from_millis(50);

/// Why a file was not taken.
#[derive(Debug, Error)]
pub enum IntakeError {
    #[error("{what} is {kind}, not a regular file")]
    NotRegular { what: String, kind: &'static str },
    #[error("{0:?} is not an absolute path")]
    Relative(PathBuf),
    #[error("{} is one of the daemon's own files: it does not send those", .0.display())]
    DaemonFile(PathBuf),
    #[error("{} is under /proc: it is not sent", .0.display())]
    Proc(PathBuf),
    #[error(
        "a path is read with the daemon's rights, which the system bus does not allow: \
         pass the open file instead (Files.SendFd; phonectl does)"
    )]
    PathOnSystemBus,
    #[error("{what} stayed locked by another program for {} s; try again", LOCK_WAIT.as_secs())]
    Locked { what: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl IntakeError {
    fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> IntakeError {
        let what = what.to_string();
        move |source| IntakeError::Io { what, source }
    }
}

/// What the caller handed over.
pub enum Source {
    /// A descriptor the caller opened (its D-Bus name for errors: "the file passed").
    Fd(File),
    /// A path, to be opened by the daemon (session bus only).
    Path(PathBuf),
}

/// A caller's file, copied into the outbox.
pub struct Taken {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: [u8; 32],
}

/// Where the daemon keeps its copy of outgoing file `id` until the relay has it.
pub fn outbox_path(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join(OUTBOX).join(id)
}

/// Whether `path` is a copy in the outbox (and so the daemon's to remove).
pub fn in_outbox(state_dir: &Path, path: &Path) -> bool {
    path.parent() == Some(state_dir.join(OUTBOX).as_path())
}

/// Opens and checks `source` and copies it to the outbox as `id` (blocking). The
/// daemon's config file and state dir are off limits to a path.
pub fn take(
    source: Source,
    state_dir: &Path,
    config_path: &Path,
    id: &str,
) -> Result<Taken, IntakeError> {
    let (file, what) = match source {
        Source::Fd(file) => (file, FD.to_owned()),
        Source::Path(path) => (
            open_path(&path, state_dir, config_path)?,
            path.display().to_string(),
        ),
    };
    regular(&file, &what)?;
    let dir = state_dir.join(OUTBOX);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(IntakeError::io(dir.display()))?;
    let path = outbox_path(state_dir, id);
    shared_lock(&file, &what)?;
    let copied = copy(&file, &what, &path);
    // A passed descriptor shares its lock with the caller's: leave none behind.
    // SAFETY: flock on a descriptor owned here.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
    let (size, sha256) = copied.inspect_err(|_| {
        let _ = std::fs::remove_file(&path);
    })?;
    Ok(Taken { path, size, sha256 })
}

/// Takes a shared `flock` on `file`, waiting up to [`LOCK_WAIT`] for an exclusive one
/// to go; [`take`] lets go of it when the copy is done.
fn shared_lock(file: &File, what: &str) -> Result<(), IntakeError> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        // SAFETY: flock on a descriptor this function borrows for the call.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) if Instant::now() < deadline => std::thread::sleep(LOCK_RETRY),
            Some(libc::EWOULDBLOCK) => {
                return Err(IntakeError::Locked {
                    what: what.to_owned(),
                });
            }
            Some(libc::EINTR) => {}
            // A file system without flock: nothing to wait for.
            _ => return Ok(()),
        }
    }
}

/// Refuses anything but a regular file, saying what it is. `fstat` on a descriptor does
/// not wait on the file's content, so this is safe to call before queueing the work.
pub fn regular(file: &File, what: &str) -> Result<(), IntakeError> {
    let t = file.metadata().map_err(IntakeError::io(what))?.file_type();
    let kind = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "something else"
    };
    Err(IntakeError::NotRegular {
        what: what.to_owned(),
        kind,
    })
}

/// Opens a path a caller named, as [`take`] does, without copying it (blocking): for
/// `VoiceMessages.SendFile`, whose WAV is encoded, not sent as it is.
pub fn open_caller_path(
    path: &Path,
    state_dir: &Path,
    config_path: &Path,
) -> Result<File, IntakeError> {
    let file = open_path(path, state_dir, config_path)?;
    regular(&file, &path.display().to_string())?;
    Ok(file)
}

/// Opens `path` for reading without blocking on a FIFO or taking a terminal, then asks
/// the kernel what was opened: a file in the state dir or under /proc, or the config
/// file (by any name, hard links included), is refused. Checking the opened file, not
/// the name, leaves no window for a symlink swapped in between.
fn open_path(path: &Path, state_dir: &Path, config_path: &Path) -> Result<File, IntakeError> {
    if !path.is_absolute() {
        return Err(IntakeError::Relative(path.to_owned()));
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(IntakeError::io(path.display()))?;
    let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(IntakeError::io(path.display()))?;
    if real.starts_with("/proc") {
        return Err(IntakeError::Proc(path.to_owned()));
    }
    let state = std::fs::canonicalize(state_dir).map_err(IntakeError::io(state_dir.display()))?;
    let meta = file.metadata().map_err(IntakeError::io(path.display()))?;
    let same = |other: &Path| {
        std::fs::metadata(other).is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino())
    };
    let own_files = std::fs::read_dir(&state)
        .map_err(IntakeError::io(state.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path());
    if real.starts_with(&state) || same(config_path) || own_files.into_iter().any(|p| same(&p)) {
        return Err(IntakeError::DaemonFile(path.to_owned()));
    }
    Ok(file)
}

/// Copies `file` from its start to a new `dest` (mode 0600), returning its size and
/// SHA-256; synced, so a crash after `Send` answered does not lose the copy.
fn copy(file: &File, what: &str, dest: &Path) -> Result<(u64, [u8; 32]), IntakeError> {
    use std::os::unix::fs::FileExt;
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(IntakeError::io(dest.display()))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        // Positioned reads: the descriptor's offset is shared with the caller.
        let n = match file.read_at(&mut buf, size) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(IntakeError::io(what)(e)),
        };
        hash.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(IntakeError::io(dest.display()))?;
        size += n as u64;
    }
    out.sync_all().map_err(IntakeError::io(dest.display()))?;
    Ok((size, hash.finalize().into()))
}

/// Reads all of `file` (for tests and small checks).
#[cfg(test)]
fn read(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut v = Vec::new();
    File::open(path).unwrap().read_to_end(&mut v).unwrap();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dirs {
        _tmp: tempfile::TempDir,
        state: PathBuf,
        config: PathBuf,
        outside: PathBuf,
    }

    fn dirs() -> Dirs {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        let outside = tmp.path().join("home");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(state.join("account.toml"), "password = \"secret\"").unwrap();
        let config = tmp.path().join("phoned.toml");
        std::fs::write(&config, "relay = \"r:1\"").unwrap();
        Dirs {
            _tmp: tmp,
            state,
            config,
            outside,
        }
    }

    fn take_path(d: &Dirs, path: &Path) -> Result<Taken, IntakeError> {
        take(Source::Path(path.to_owned()), &d.state, &d.config, "t1")
    }

    #[test]
    fn a_regular_file_is_copied_and_hashed() {
        let d = dirs();
        let p = d.outside.join("a.txt");
        std::fs::write(&p, b"hello").unwrap();
        let t = take_path(&d, &p).unwrap();
        assert_eq!(t.size, 5);
        assert_eq!(t.sha256, <[u8; 32]>::from(Sha256::digest(b"hello")));
        assert_eq!(read(&t.path), b"hello");
        assert!(in_outbox(&d.state, &t.path));
        // From a descriptor whose offset was moved: still the whole file.
        use std::io::Read;
        let mut f = File::open(&p).unwrap();
        let mut one = [0u8; 2];
        f.read_exact(&mut one).unwrap();
        let t = take(Source::Fd(f), &d.state, &d.config, "t2").unwrap();
        assert_eq!(read(&t.path), b"hello");
    }

    #[test]
    fn the_daemons_own_files_are_refused_by_any_name() {
        let d = dirs();
        let account = d.state.join("account.toml");
        let dotted = d.outside.join("../state/account.toml");
        let link = d.outside.join("link");
        std::os::unix::fs::symlink(&account, &link).unwrap();
        let hard = d.outside.join("hard");
        std::fs::hard_link(&account, &hard).unwrap();
        for p in [&account, &dotted, &link, &hard, &d.config] {
            assert!(
                matches!(take_path(&d, p), Err(IntakeError::DaemonFile(_))),
                "{}",
                p.display()
            );
        }
        assert!(matches!(
            take_path(&d, Path::new("/proc/self/environ")),
            Err(IntakeError::Proc(_))
        ));
        assert!(matches!(
            take_path(&d, Path::new("../state/account.toml")),
            Err(IntakeError::Relative(_))
        ));
        assert!(
            std::fs::read_dir(d.state.join(OUTBOX)).is_err(),
            "nothing was copied"
        );
    }

    #[test]
    fn fifos_directories_and_devices_are_refused_without_blocking() {
        let d = dirs();
        let fifo = d.outside.join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for (p, kind) in [
            (fifo.as_path(), "a FIFO"),
            (d.outside.as_path(), "a directory"),
            (Path::new("/dev/null"), "a device"),
        ] {
            match take_path(&d, p) {
                Err(IntakeError::NotRegular { kind: k, .. }) => assert_eq!(k, kind),
                Err(e) => panic!("{}: {e}", p.display()),
                Ok(_) => panic!("{} taken", p.display()),
            }
        }
        // A FIFO as a descriptor (the caller opened it; nobody writes to it).
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        assert!(matches!(
            take(Source::Fd(f), &d.state, &d.config, "t3"),
            Err(IntakeError::NotRegular { kind: "a FIFO", .. })
        ));
    }
}

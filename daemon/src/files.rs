//! Files and voice messages: each upload or download on its own QUIC stream, resumed from
//! where it broke, checked by SHA-256 end to end, saved under a safe, new name.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use phoned_client::{BulkError, ClientError};
use phoned_proto::text::clean_file_name;
use phoned_proto::transfer::FileStatus;
use phoned_proto::{BulkReply, BulkRequest, FileKind, Request, StoredFile};
use sha2::{Digest, Sha256};
use smol::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::core::{Change, CoreError, ErrorKind};
use crate::driver::{Handle, unix_ms};
use crate::intake::{self, Taken};
use crate::store::files::LocalFile;
use crate::store::new_client_id;

const CHUNK: usize = 64 * 1024;
/// Progress signals at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// A name from a sender that is safe to show and to create in the download directory:
/// the last path component only, cleaned by the shared sanitiser (no control, bidi or
/// byte-order-mark characters, no terminal escapes or their `[31m` residue), no `:`, no
/// leading dots, at most 200 bytes.
pub fn safe_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = clean_file_name(last)
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .trim()
        .trim_start_matches('.')
        .to_owned();
    let mut out = String::new();
    for c in cleaned.chars() {
        if out.len() + c.len_utf8() > 200 {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        "file".to_owned()
    } else {
        out
    }
}

/// Creates a new file named like `name` in `dir`, never replacing one: `x.txt`, then
/// `x (1).txt`, `x (2).txt`, …
pub fn create_unique(dir: &Path, name: &str) -> std::io::Result<(PathBuf, std::fs::File)> {
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    for n in 0..10_000 {
        let candidate = if n == 0 {
            name.to_owned()
        } else {
            format!("{stem} ({n}){ext}")
        };
        let path = dir.join(candidate);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free file name"))
}

/// A broken bulk stream is `Offline` (the transfer resumes when the link is back); a
/// request or reply that does not code is `Failed`.
impl From<BulkError> for CoreError {
    fn from(e: BulkError) -> CoreError {
        match e {
            BulkError::Link(e) => CoreError::from(e),
            BulkError::Encode(e) => CoreError::failed(e.to_string()),
            BulkError::Decode(e) => CoreError::failed(e.to_string()),
        }
    }
}

fn reply_error(e: phoned_proto::WireError) -> CoreError {
    CoreError::from(ClientError::Relay(e))
}

fn not_connected() -> CoreError {
    CoreError::offline("not connected")
}

/// Transfer `id` failed for good: keeps `reason` (shown by `Files.Reasons` and
/// `phonectl file ls`) before the status changes, so whoever sees the change can read it.
fn fail(phone: &Handle, id: &str, reason: &str) {
    tracing::info!(%id, "transfer failed: {reason}");
    if let Err(e) = phone.store.set_file_reason(id, reason) {
        tracing::warn!(%id, "keeping why the transfer failed: {e}");
    }
    set_status(phone, id, FileStatus::Failed, None);
}

fn set_status(phone: &Handle, id: &str, status: FileStatus, relay_id: Option<u64>) {
    match phone.store.update_file(id, |f| {
        // A receipt can overtake the `Stored` answer; never go back from delivered.
        if f.status != FileStatus::Delivered {
            f.status = status;
        }
        if relay_id.is_some() {
            f.relay_id = relay_id;
        }
    }) {
        Ok(Some(f)) => {
            // The relay has the file (or it will never take it): the daemon's copy of a
            // caller's file is no longer needed.
            if f.status != FileStatus::Queued
                && intake::in_outbox(&phone.state_dir, Path::new(&f.path))
                && let Err(e) = std::fs::remove_file(&f.path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(id = %f.id, "removing the outbox copy {}: {e}", f.path);
            }
            phone.announce(Change::FileStatus(f.id, f.status))
        }
        Ok(None) => {}
        Err(e) => tracing::error!("recording a file's status: {e}"),
    }
}

/// Queues a file the daemon made itself (a voice message, in its state dir) for
/// `number` and starts the upload; returns the transfer's id. Callers' files come
/// through [`send_taken`].
pub async fn send(
    phone: &Handle,
    number: String,
    name: String,
    path: PathBuf,
    kind: FileKind,
) -> Result<String, CoreError> {
    let p = path.clone();
    let (size, sha256) = blocking::unblock(move || -> std::io::Result<(u64, [u8; 32])> {
        let mut f = std::fs::File::open(&p)?;
        if !f.metadata()?.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        let mut h = Sha256::new();
        let size = std::io::copy(&mut f, &mut h)?;
        Ok((size, h.finalize().into()))
    })
    .await
    .map_err(|e| {
        CoreError::new(
            ErrorKind::InvalidArgument,
            format!("{}: {e}", path.display()),
        )
    })?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let taken = Taken { path, size, sha256 };
    queue(phone, new_client_id(), number, name, file_name, taken, kind)
}

/// Queues a caller's file, copied into the outbox as `id` ([`intake::take`]), for
/// `number` under `file_name` (made safe here) and starts the upload; returns `id`.
pub fn send_taken(
    phone: &Handle,
    id: String,
    number: String,
    name: String,
    file_name: &str,
    taken: Taken,
) -> Result<String, CoreError> {
    let file_name = safe_name(file_name);
    queue(phone, id, number, name, file_name, taken, FileKind::File)
}

fn queue(
    phone: &Handle,
    id: String,
    number: String,
    name: String,
    file_name: String,
    taken: Taken,
    kind: FileKind,
) -> Result<String, CoreError> {
    let record = LocalFile {
        id,
        peer: number,
        peer_name: name,
        outgoing: true,
        name: file_name,
        path: taken.path.to_string_lossy().into_owned(),
        size: taken.size,
        sha256: taken.sha256,
        kind,
        status: FileStatus::Queued,
        at_ms: unix_ms(),
        relay_id: None,
    };
    if let Err(e) = phone.store.add_file(&record) {
        if intake::in_outbox(&phone.state_dir, &taken.path) {
            let _ = std::fs::remove_file(&taken.path);
        }
        return Err(CoreError::failed(e.to_string()));
    }
    phone.announce(Change::FileStatus(record.id.clone(), record.status));
    let id = record.id.clone();
    let phone2 = phone.clone();
    smol::spawn(async move {
        if let Err(e) = upload(&phone2, &record).await {
            tracing::info!(id = %record.id, "upload: {e}");
        }
    })
    .detach();
    Ok(id)
}

/// Uploads one file, resuming at the relay's offset.
async fn upload(phone: &Handle, f: &LocalFile) -> Result<(), CoreError> {
    let client = phone.client().await.ok_or_else(not_connected)?;
    let mut bulk = client
        .open_bulk(&BulkRequest::Upload {
            client_id: f.id.clone(),
            to: f.peer.clone(),
            name: f.name.clone(),
            size: f.size,
            sha256: f.sha256,
            kind: f.kind,
        })
        .await?;
    let offset = match bulk.reply().await? {
        BulkReply::Resume { offset } => offset,
        BulkReply::Stored { id } => {
            set_status(phone, &f.id, FileStatus::Stored, Some(id));
            return Ok(());
        }
        BulkReply::Error(e) => {
            let reason = e.message.clone();
            let e = reply_error(e);
            if !matches!(e.kind, ErrorKind::Offline | ErrorKind::Busy) {
                fail(phone, &f.id, &reason);
            }
            return Err(e);
        }
        other => return Err(CoreError::failed(format!("unexpected reply {other:?}"))),
    };
    if offset > 0 {
        tracing::info!(id = %f.id, offset, size = f.size, "upload resumes");
    }
    // The relay took it: said at once, so that a sender waiting on it knows.
    phone.announce(Change::FileProgress(f.id.clone(), offset, f.size));
    let mut file = smol::fs::File::open(&f.path)
        .await
        .map_err(|e| CoreError::failed(format!("{}: {e}", f.path)))?;
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(|e| CoreError::failed(e.to_string()))?;
    let mut done = offset;
    let mut last = Instant::now();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| CoreError::failed(e.to_string()))?;
        if n == 0 {
            break;
        }
        bulk.send
            .write_all(&buf[..n])
            .await
            .map_err(|e| CoreError::offline(e.to_string()))?;
        done += n as u64;
        if last.elapsed() >= PROGRESS_EVERY {
            last = Instant::now();
            phone.announce(Change::FileProgress(f.id.clone(), done, f.size));
        }
    }
    let _ = bulk.send.finish();
    phone.announce(Change::FileProgress(f.id.clone(), done, f.size));
    match bulk.reply().await? {
        BulkReply::Stored { id } => {
            set_status(phone, &f.id, FileStatus::Stored, Some(id));
            Ok(())
        }
        BulkReply::Error(e) => {
            fail(phone, &f.id, &e.message);
            Err(reply_error(e))
        }
        other => Err(CoreError::failed(format!("unexpected reply {other:?}"))),
    }
}

/// Resumes every upload still queued (after the link comes up).
pub async fn flush(phone: Handle) {
    let Ok(files) = phone.store.files() else {
        return;
    };
    for f in files
        .into_iter()
        .filter(|f| f.outgoing && f.status == FileStatus::Queued)
    {
        if let Err(e) = upload(&phone, &f).await
            && e.kind == ErrorKind::Offline
        {
            return;
        }
    }
}

/// Where received files go.
pub fn download_dir(phone: &Handle) -> PathBuf {
    if let Some(d) = &phone.config().download_dir {
        return d.clone();
    }
    if let Some(d) = std::env::var_os("XDG_DOWNLOAD_DIR") {
        return PathBuf::from(d).join("phoned");
    }
    phone.state_dir.join("downloads")
}

/// The relay offers a file: download it (resuming a partial one), check it, save it.
pub fn offered(phone: &Handle, file: StoredFile) {
    let phone = phone.clone();
    smol::spawn(async move {
        if let Err(e) = download(&phone, &file).await {
            tracing::info!(id = file.id, "download: {e}");
        }
    })
    .detach();
}

async fn download(phone: &Handle, offer: &StoredFile) -> Result<(), CoreError> {
    let id = format!("f{}", offer.id);
    let known = phone
        .store
        .file(&id)
        .map_err(|e| CoreError::failed(e.to_string()))?;
    if known
        .as_ref()
        .is_some_and(|f| f.status == FileStatus::Received)
    {
        // Saved before; the ack was lost.
        return ack(phone, offer.id).await;
    }
    if known.is_none() {
        let record = LocalFile {
            id: id.clone(),
            peer: offer.from_number.clone(),
            peer_name: offer.from_name.clone(),
            outgoing: false,
            name: safe_name(&offer.name),
            path: String::new(),
            size: offer.size,
            sha256: offer.sha256,
            kind: offer.kind,
            status: FileStatus::Receiving,
            at_ms: offer.sent_ms,
            relay_id: Some(offer.id),
        };
        phone
            .store
            .add_file(&record)
            .map_err(|e| CoreError::failed(e.to_string()))?;
    }
    let dir = download_dir(phone);
    let partial_dir = dir.join(".partial");
    smol::fs::create_dir_all(&partial_dir)
        .await
        .map_err(|e| CoreError::failed(format!("{}: {e}", partial_dir.display())))?;
    // Saved paths are shown to users and scripts that run elsewhere than the daemon:
    // absolute, whatever `download_dir` or `$XDG_DOWNLOAD_DIR` said.
    let dir = smol::fs::canonicalize(&dir)
        .await
        .map_err(|e| CoreError::failed(format!("{}: {e}", dir.display())))?;
    let partial = partial_dir.join(offer.id.to_string());
    let mut file = smol::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&partial)
        .await
        .map_err(|e| CoreError::failed(e.to_string()))?;
    let mut have = file
        .metadata()
        .await
        .map_err(|e| CoreError::failed(e.to_string()))?
        .len();
    if have > offer.size {
        file.set_len(0)
            .await
            .map_err(|e| CoreError::failed(e.to_string()))?;
        have = 0;
    }
    if have > 0 {
        tracing::info!(
            id = offer.id,
            offset = have,
            size = offer.size,
            "download resumes"
        );
    }
    let client = phone.client().await.ok_or_else(not_connected)?;
    let mut bulk = client
        .open_bulk(&BulkRequest::Download {
            id: offer.id,
            offset: have,
        })
        .await?;
    let _ = bulk.send.finish();
    match bulk.reply().await? {
        BulkReply::Sending { .. } => {}
        BulkReply::Error(e) => return Err(reply_error(e)),
        other => return Err(CoreError::failed(format!("unexpected reply {other:?}"))),
    }
    let first = bulk.take_rest();
    file.write_all(&first)
        .await
        .map_err(|e| CoreError::failed(e.to_string()))?;
    have += first.len() as u64;
    let mut last = Instant::now();
    let mut buf = vec![0u8; CHUNK];
    while have < offer.size {
        match bulk.recv.read(&mut buf).await {
            Ok(Some(n)) => {
                if have + n as u64 > offer.size {
                    return Err(CoreError::failed(
                        "the relay sent more than the file's size",
                    ));
                }
                file.write_all(&buf[..n])
                    .await
                    .map_err(|e| CoreError::failed(e.to_string()))?;
                have += n as u64;
                if last.elapsed() >= PROGRESS_EVERY {
                    last = Instant::now();
                    phone.announce(Change::FileProgress(id.clone(), have, offer.size));
                }
            }
            Ok(None) => break,
            Err(e) => {
                let _ = file.sync_all().await;
                return Err(CoreError::offline(format!(
                    "download broken off at {have} bytes: {e}"
                )));
            }
        }
    }
    file.sync_all()
        .await
        .map_err(|e| CoreError::failed(e.to_string()))?;
    drop(file);
    if have != offer.size {
        return Err(CoreError::offline(format!(
            "got {have} of {} bytes",
            offer.size
        )));
    }
    let (p2, sha) = (partial.clone(), offer.sha256);
    let ok = blocking::unblock(move || -> std::io::Result<bool> {
        let mut h = Sha256::new();
        std::io::copy(&mut std::fs::File::open(&p2)?, &mut h)?;
        Ok(<[u8; 32]>::from(h.finalize()) == sha)
    })
    .await
    .map_err(|e| CoreError::failed(e.to_string()))?;
    if !ok {
        let _ = smol::fs::remove_file(&partial).await;
        return Err(CoreError::failed(
            "SHA-256 mismatch: the download was damaged; it will be fetched again",
        ));
    }
    let name = safe_name(&offer.name);
    let (dir2, p2) = (dir.clone(), partial.clone());
    let saved = blocking::unblock(move || -> std::io::Result<PathBuf> {
        // Reserve a new name, then move the checked file over the empty placeholder.
        let (path, _placeholder) = create_unique(&dir2, &name)?;
        std::fs::rename(&p2, &path)?;
        Ok(path)
    })
    .await
    .map_err(|e| CoreError::failed(format!("saving to {}: {e}", dir.display())))?;
    let saved_str = saved.to_string_lossy().into_owned();
    let updated = phone
        .store
        .update_file(&id, |f| {
            f.status = FileStatus::Received;
            f.path = saved_str.clone();
        })
        .map_err(|e| CoreError::failed(e.to_string()))?;
    if let Some(f) = updated {
        phone.announce(Change::FileReceived(f));
    }
    ack(phone, offer.id).await
}

async fn ack(phone: &Handle, id: u64) -> Result<(), CoreError> {
    phone.request(Request::Delivered { id }).await.map(|_| ())
}

/// The relay says a file we sent was delivered.
pub fn delivered(phone: &Handle, client_id: &str, id: u64) {
    set_status(phone, client_id, FileStatus::Delivered, Some(id));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_neutralised() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(safe_name(".bashrc"), "bashrc");
        assert_eq!(safe_name("a\u{0}b\nc"), "abc");
        assert_eq!(safe_name("/"), "file");
        assert_eq!(safe_name(".."), "file");
        assert!(safe_name(&"é".repeat(300)).len() <= 200);
        assert_eq!(safe_name("report.pdf"), "report.pdf");
        assert_eq!(safe_name("\u{1b}[31mred\u{1b}[0m.txt"), "red.txt");
        assert_eq!(safe_name("[31mred[0m.txt"), "red.txt");
        assert_eq!(safe_name("invoice\u{202E}fdp.exe"), "invoicefdp.exe");
        assert_eq!(safe_name("\u{FEFF}.profile"), "profile");
        assert_eq!(safe_name("a\u{2066}b\u{2069}\u{200E}c"), "abc");
    }

    #[test]
    fn names_are_never_reused() {
        let d = tempfile::tempdir().unwrap();
        let (a, _) = create_unique(d.path(), "x.txt").unwrap();
        let (b, _) = create_unique(d.path(), "x.txt").unwrap();
        let (c, _) = create_unique(d.path(), "noext").unwrap();
        let (e, _) = create_unique(d.path(), "noext").unwrap();
        assert_eq!(a.file_name().unwrap(), "x.txt");
        assert_eq!(b.file_name().unwrap(), "x (1).txt");
        assert_eq!(c.file_name().unwrap(), "noext");
        assert_eq!(e.file_name().unwrap(), "noext (1)");
    }
}

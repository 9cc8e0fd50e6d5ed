//! Bulk streams: one QUIC stream per file upload or download, beside the control stream.
//! An upload goes to `partial/` in the state dir (so a broken one resumes where it
//! stopped), is checked against its SHA-256, then becomes a content-addressed blob (in
//! `blobs/`, or in the database with PostgreSQL, see [`crate::store::Store::keep_blob`])
//! and an inbox item, all before the sender hears `Stored`. An upload starts only
//! above the disk reserve and within the sender's and the relay's allowance for unfinished
//! uploads ([`crate::space`]); the upkeep task deletes those abandoned too long.

use std::path::Path;
use std::sync::Arc;

use phoned_proto::codec::{decode, encode_framed};
use phoned_proto::{
    BulkReply, BulkRequest, ErrorCode, FrameDecoder, Number, StoredFile, WireError,
};
use sha2::{Digest, Sha256};
use smol::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::hub::SessionId;
use crate::server::unix_ms;
use crate::shared::Shared;
use crate::space::partials::{Owner, Refused};
use crate::store::{Item, Stored};
use crate::upkeep::partial_name;

const CHUNK: usize = 64 * 1024;

fn err(code: ErrorCode, message: impl Into<String>) -> WireError {
    WireError::new(code, message)
}

/// What a download reads from the store at a time when blobs are in the database.
const READ_PIECE: usize = 256 * 1024;

/// An upload's entry in the unfinished-uploads ledger ([`crate::space::partials`]) for
/// as long as it runs: when dropped, on any path out of [`upload`], the upload counts as
/// stopped with what its file holds, unless its file is gone.
struct Lease<'a> {
    shared: &'a Shared,
    name: String,
    owner: Owner,
    have: u64,
    gone: bool,
}

impl Lease<'_> {
    /// Records `have` bytes in the file; an error if a newer stream took the upload over
    /// (a resume on a new connection): this one must not write any more.
    fn progress(&mut self, have: u64) -> Result<(), WireError> {
        self.have = have;
        let (name, owner) = (&self.name, self.owner);
        if self
            .shared
            .space(|s| s.partials.progress(name, owner, have, unix_ms()))
        {
            return Ok(());
        }
        Err(err(
            ErrorCode::Unavailable,
            "this upload was resumed on another stream",
        ))
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let (name, owner, have, gone) = (&self.name, self.owner, self.have, self.gone);
        self.shared.space(|s| {
            if gone {
                s.partials.finished(name, owner);
            } else {
                s.partials.stopped(name, owner, have, unix_ms());
            }
        });
    }
}

/// A size for people: whole MiB when at least one, else KiB (a small test quota reads
/// "8 KiB", not "0 MiB").
fn mib(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes.div_ceil(1 << 20))
    } else {
        format!("{} KiB", bytes.div_ceil(1 << 10))
    }
}

/// The recipient's mailbox holds too much already for this file to fit: it may fit
/// once the recipient collects what waits.
fn mailbox_full(used: u64, quota: u64) -> WireError {
    err(
        ErrorCode::QuotaExceeded,
        format!(
            "the recipient's mailbox is full ({} of {} waiting to be collected)",
            mib(used),
            mib(quota)
        ),
    )
}

/// The answer to an upload the ledger refused.
fn refused(r: Refused) -> WireError {
    match r {
        Refused::SenderQuota { used, quota } => err(
            ErrorCode::QuotaExceeded,
            format!(
                "your unfinished uploads on the relay take {used} of your {quota} bytes; \
                 finish them or wait for them to expire"
            ),
        ),
        Refused::Cap(_) => crate::mailbox::out_of_space(),
    }
}

async fn reply(send: &mut quinn::SendStream, r: &BulkReply) -> std::io::Result<()> {
    let mut out = Vec::new();
    encode_framed(&mut out, r).map_err(std::io::Error::other)?;
    send.write_all(&out).await.map_err(std::io::Error::other)
}

/// Serves one bulk stream of session `sid`.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    sid: SessionId,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    // The request frame, and whatever bytes came after it in the same reads.
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; CHUNK];
    let request: BulkRequest = loop {
        match recv.read(&mut buf).await {
            Ok(Some(n)) => decoder.push(&buf[..n]),
            _ => return,
        }
        match decoder.next_frame() {
            Ok(Some(body)) => match decode(body) {
                Ok(r) => break r,
                Err(e) => {
                    let _ = reply(
                        &mut send,
                        &BulkReply::Error(err(ErrorCode::ProtocolViolation, e.to_string())),
                    )
                    .await;
                    return;
                }
            },
            Ok(None) => continue,
            Err(e) => {
                let _ = reply(
                    &mut send,
                    &BulkReply::Error(err(ErrorCode::ProtocolViolation, e.to_string())),
                )
                .await;
                return;
            }
        }
    };
    // Whatever followed the header frame in the same reads is file data.
    let leftover = decoder.take_rest();
    let Some(account) = shared.account_of(sid) else {
        let _ = reply(
            &mut send,
            &BulkReply::Error(err(ErrorCode::NotLoggedIn, "log in first")),
        )
        .await;
        return;
    };
    let result = match request {
        BulkRequest::Upload {
            client_id,
            to,
            name,
            size,
            sha256,
            kind,
        } => {
            upload(
                &shared, account, &mut send, &mut recv, leftover, client_id, to, name, size,
                sha256, kind,
            )
            .await
        }
        BulkRequest::Download { id, offset } => {
            download(&shared, account, &mut send, id, offset).await
        }
    };
    match result {
        Ok(()) => {
            let _ = send.finish();
        }
        Err(e) => {
            tracing::info!("bulk transfer: {e}");
            let _ = reply(&mut send, &BulkReply::Error(e)).await;
            let _ = send.finish();
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn upload(
    shared: &Arc<Shared>,
    from: u64,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    leftover: Vec<u8>,
    client_id: String,
    to: String,
    name: String,
    size: u64,
    sha256: [u8; 32],
    kind: phoned_proto::FileKind,
) -> Result<(), WireError> {
    if client_id.is_empty() || client_id.len() > 64 || name.is_empty() || name.len() > 255 {
        return Err(err(
            ErrorCode::ProtocolViolation,
            "client_id must be 1-64 bytes and name 1-255",
        ));
    }
    let (max, quota) = {
        let c = shared.config();
        (c.max_file_bytes, c.mailbox_quota_bytes)
    };
    // A file larger than a whole mailbox could never be stored for anyone: say so, not
    // "full" (the config keeps max_file_mib within the quota, so this is said first).
    if size > quota {
        return Err(err(
            ErrorCode::TooLarge,
            format!(
                "the file ({}) is too large for the recipient's mailbox (quota {})",
                mib(size),
                mib(quota)
            ),
        ));
    }
    if size > max {
        return Err(err(
            ErrorCode::TooLarge,
            format!(
                "the file ({}) is too large: this relay takes files up to {} (max_file_mib)",
                mib(size),
                mib(max)
            ),
        ));
    }
    let number: Number = to
        .parse()
        .map_err(|e: phoned_proto::IdentError| err(ErrorCode::InvalidNumber, e.to_string()))?;
    let store = shared.store.clone();
    let internal = |e: &dyn std::fmt::Display| {
        tracing::error!("upload: {e}");
        err(ErrorCode::Internal, "storage error on the relay")
    };
    // A retry of an upload that completed: answer as before.
    let (s2, cid) = (store.clone(), client_id.clone());
    if let Some(id) = blocking::unblock(move || s2.stored_id(from, &cid))
        .await
        .map_err(|e| internal(&e))?
    {
        return reply(send, &BulkReply::Stored { id })
            .await
            .map_err(|e| internal(&e));
    }
    let (s2, n2) = (store.clone(), number.clone());
    let recipient = blocking::unblock(move || s2.account_by_number(n2.as_str()))
        .await
        .map_err(|e| internal(&e))?
        .filter(|a| !a.disabled)
        .ok_or_else(|| {
            err(
                ErrorCode::UnknownNumber,
                format!("no account has number {number}"),
            )
        })?;
    let (s2, rid) = (store.clone(), recipient.id);
    let used = blocking::unblock(move || s2.mailbox_bytes(rid))
        .await
        .map_err(|e| internal(&e))?;
    if used + size > quota {
        return Err(mailbox_full(used, quota));
    }

    let pname = partial_name(from, &client_id);
    let partial = shared.config().state_dir.join("partial").join(&pname);
    let before = match smol::fs::metadata(&partial).await {
        Ok(m) if m.len() <= size => m.len(),
        _ => 0,
    };
    shared
        .check_disk(size - before)
        .map_err(|_| crate::mailbox::out_of_space())?;
    let owner = shared
        .partial_begin(&pname, from, size, before)
        .map_err(refused)?;
    let mut lease = Lease {
        shared,
        name: pname,
        owner,
        have: before,
        gone: false,
    };
    if let Some(dir) = partial.parent() {
        smol::fs::create_dir_all(dir)
            .await
            .map_err(|e| internal(&e))?;
    }
    let mut file = smol::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&partial)
        .await
        .map_err(|e| internal(&e))?;
    let mut offset = file.metadata().await.map_err(|e| internal(&e))?.len();
    if offset > size {
        file.set_len(0).await.map_err(|e| internal(&e))?;
        offset = 0;
    }
    reply(send, &BulkReply::Resume { offset })
        .await
        .map_err(|e| internal(&e))?;

    let mut have = offset;
    let write = |bytes: &[u8], have: &mut u64| -> Result<Vec<u8>, WireError> {
        if *have + bytes.len() as u64 > size {
            return Err(err(
                ErrorCode::ProtocolViolation,
                "more bytes than the announced size",
            ));
        }
        *have += bytes.len() as u64;
        Ok(bytes.to_vec())
    };
    lease.progress(offset)?;
    let first = write(&leftover, &mut have)?;
    lease.progress(have)?;
    file.write_all(&first).await.map_err(|e| internal(&e))?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        match recv.read(&mut buf).await {
            Ok(Some(n)) => {
                let chunk = write(&buf[..n], &mut have)?;
                // Checked before writing: a stream that lost the upload writes nothing.
                lease.progress(have)?;
                file.write_all(&chunk).await.map_err(|e| internal(&e))?;
            }
            Ok(None) => break,
            // Broken off: what arrived stays in `partial/` for the retry.
            Err(e) => {
                let _ = file.sync_all().await;
                return Err(err(
                    ErrorCode::Unavailable,
                    format!("upload broken off at {have} bytes: {e}"),
                ));
            }
        }
    }
    file.sync_all().await.map_err(|e| internal(&e))?;
    drop(file);
    if have != size {
        return Err(err(
            ErrorCode::ProtocolViolation,
            format!("got {have} of {size} bytes"),
        ));
    }
    let p2 = partial.clone();
    let digest = blocking::unblock(move || -> std::io::Result<[u8; 32]> {
        let mut h = Sha256::new();
        let mut f = std::fs::File::open(&p2)?;
        std::io::copy(&mut f, &mut h)?;
        Ok(h.finalize().into())
    })
    .await
    .map_err(|e| internal(&e))?;
    if digest != sha256 {
        let _ = smol::fs::remove_file(&partial).await;
        lease.gone = true;
        return Err(err(
            ErrorCode::ProtocolViolation,
            "SHA-256 mismatch: the file changed or was damaged",
        ));
    }
    // Renamed into `blobs/` (embedded store) or copied into the database (PostgreSQL).
    let (s2, dir, p2) = (
        store.clone(),
        shared.config().state_dir.clone(),
        partial.clone(),
    );
    blocking::unblock(move || s2.keep_blob(&dir, &sha256, &p2))
        .await
        .map_err(|e| internal(&e))?;
    lease.gone = true;
    let (from_number, from_name) = shared.identity(from);
    let item = Item::File(StoredFile {
        id: 0,
        from_number,
        from_name,
        name,
        size,
        sha256,
        kind,
        sent_ms: unix_ms(),
    });
    let stored = match shared
        .committer
        .store_item(from, client_id, rid, item, quota)
        .await
    {
        Ok(stored) => stored,
        Err(e) => {
            // Not stored: the blob goes unless another inbox holds the same contents.
            release_blob(shared, sha256).await;
            return Err(match e {
                crate::store::StoreError::QuotaExceeded => {
                    let (s2, rid) = (shared.store.clone(), rid);
                    let used = blocking::unblock(move || s2.mailbox_bytes(rid))
                        .await
                        .unwrap_or(quota);
                    mailbox_full(used, quota)
                }
                other if other.is_out_of_space() => crate::mailbox::out_of_space(),
                other => internal(&other),
            });
        }
    };
    reply(send, &BulkReply::Stored { id: stored.id() })
        .await
        .map_err(|e| internal(&e))?;
    if let Stored::New(_) = stored {
        crate::push::push_pending(shared, rid).await;
    }
    Ok(())
}

async fn download(
    shared: &Arc<Shared>,
    me: u64,
    send: &mut quinn::SendStream,
    id: u64,
    offset: u64,
) -> Result<(), WireError> {
    let store = shared.store.clone();
    let item = blocking::unblock(move || store.inbox_item(me, id))
        .await
        .map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
    let Some(Item::File(f)) = item else {
        return Err(err(
            ErrorCode::NoSuchCall,
            "no such file waiting for this account",
        ));
    };
    if offset > f.size {
        return Err(err(
            ErrorCode::ProtocolViolation,
            "offset past the end of the file",
        ));
    }
    let state_dir = shared.config().state_dir.clone();
    match shared.store.blob_file(&state_dir, &f.sha256) {
        Some(path) => send_file(send, &path, f.size, offset).await,
        None => send_chunks(shared, send, f.sha256, f.size, offset).await,
    }
}

/// Sends blob file `path` from `offset` (the embedded store's blobs).
async fn send_file(
    send: &mut quinn::SendStream,
    path: &Path,
    size: u64,
    offset: u64,
) -> Result<(), WireError> {
    let mut file = smol::fs::File::open(path).await.map_err(|e| {
        err(
            ErrorCode::Internal,
            format!("file missing on the relay: {e}"),
        )
    })?;
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
    reply(send, &BulkReply::Sending { size, offset })
        .await
        .map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
        if n == 0 {
            return Ok(());
        }
        if send.write_all(&buf[..n]).await.is_err() {
            return Ok(()); // The receiver went away; it resumes later.
        }
    }
}

/// Sends blob `sha256` from `offset`, read from the store a piece at a time (the blobs
/// PostgreSQL holds).
async fn send_chunks(
    shared: &Arc<Shared>,
    send: &mut quinn::SendStream,
    sha256: [u8; 32],
    size: u64,
    mut offset: u64,
) -> Result<(), WireError> {
    let state_dir = shared.config().state_dir.clone();
    let mut first = true;
    loop {
        let (store, dir) = (shared.store.clone(), state_dir.clone());
        let piece = blocking::unblock(move || store.read_blob(&dir, &sha256, offset, READ_PIECE))
            .await
            .map_err(|e| err(ErrorCode::Internal, e.to_string()))?
            .ok_or_else(|| err(ErrorCode::Internal, "file missing on the relay"))?;
        if first {
            reply(send, &BulkReply::Sending { size, offset })
                .await
                .map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
            first = false;
        }
        if piece.is_empty() {
            return Ok(());
        }
        offset += piece.len() as u64;
        if send.write_all(&piece).await.is_err() {
            return Ok(()); // The receiver went away; it resumes later.
        }
    }
}

/// Deletes a blob once no inbox refers to it.
pub(crate) async fn release_blob(shared: &Shared, sha256: [u8; 32]) {
    let (store, dir) = (shared.store.clone(), shared.config().state_dir.clone());
    if let Err(e) = blocking::unblock(move || store.release_blob(&dir, &sha256)).await {
        tracing::warn!("releasing a blob: {e}");
    }
}

//! File contents in PostgreSQL: one row per chunk of [`CHUNK`] bytes (`bytea`), keyed by
//! the file's SHA-256, so that a download from an offset reads only the chunks it needs
//! and no row comes near PostgreSQL's 1 GB value limit. Blobs are content-addressed: the
//! same file sent twice is kept once.

use std::io::Read;
use std::path::Path;

use super::{PgStore, prepared};
use crate::store::StoreError;

/// Bytes per chunk row: large enough that a 100 MiB file is 100 rows, small enough that
/// a download holds little in memory at a time.
pub const CHUNK: usize = 1 << 20;

impl PgStore {
    /// Copies the file at `path` (verified against `sha256` by the caller) into the
    /// database, in one transaction; nothing happens if the blob is there already.
    pub fn put_blob(&self, sha256: &[u8; 32], path: &Path) -> Result<(), StoreError> {
        let io = |source| StoreError::Blob {
            what: "read upload",
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mut conn = self.conn()?;
        let (client, cache) = conn.parts();
        let mut tx = client.transaction()?;
        let st = prepared(
            cache,
            &mut tx,
            "INSERT INTO blobs (sha256, chunk, data) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )?;
        let mut buf = vec![0u8; CHUNK];
        let mut chunk = 0i32;
        loop {
            let mut filled = 0;
            while filled < CHUNK {
                let n = file.read(&mut buf[filled..]).map_err(io)?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            // An empty file is one empty chunk, so that it exists.
            if filled > 0 || chunk == 0 {
                tx.execute(&st, &[&&sha256[..], &chunk, &&buf[..filled]])?;
                chunk += 1;
            }
            if filled < CHUNK {
                break;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// At most `max` bytes of blob `sha256` from `offset`; `None` if there is no such blob.
    pub fn read_blob(
        &self,
        sha256: &[u8; 32],
        offset: u64,
        max: usize,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn()?;
        let (client, cache) = conn.parts();
        let first = (offset / CHUNK as u64) as i32;
        let last = ((offset + max.max(1) as u64 - 1) / CHUNK as u64) as i32;
        let st = prepared(
            cache,
            client,
            "SELECT chunk, data FROM blobs WHERE sha256 = $1 AND chunk BETWEEN $2 AND $3 \
             ORDER BY chunk",
        )?;
        let rows = client.query(&st, &[&&sha256[..], &first, &last])?;
        if rows.is_empty() {
            // Past the end of a blob that exists, or no blob at all.
            let st = prepared(
                cache,
                client,
                "SELECT 1 FROM blobs WHERE sha256 = $1 AND chunk = 0",
            )?;
            return Ok(client.query_opt(&st, &[&&sha256[..]])?.map(|_| Vec::new()));
        }
        let mut out = Vec::with_capacity(max.min(2 * CHUNK));
        for row in &rows {
            let chunk: i32 = row.get(0);
            let data: &[u8] = row.get(1);
            let start = chunk as u64 * CHUNK as u64;
            let from = offset.saturating_sub(start).min(data.len() as u64) as usize;
            out.extend_from_slice(&data[from..]);
            if out.len() >= max {
                out.truncate(max);
                break;
            }
        }
        Ok(Some(out))
    }

    /// Deletes blob `sha256` unless an inbox still refers to it (one statement).
    pub fn release_blob(&self, sha256: &[u8; 32]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.client.execute(
            "DELETE FROM blobs WHERE sha256 = $1 \
             AND NOT EXISTS (SELECT 1 FROM inbox WHERE file_sha256 = $1)",
            &[&&sha256[..]],
        )?;
        Ok(())
    }
}

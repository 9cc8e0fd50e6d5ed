//! Helpers for the disk-space tests: a client that abandons uploads one byte short, the
//! size of a directory, a tmpfs to fill, the relay's error lines.

use std::path::Path;
use std::time::Duration;

use phoned_proto::{BulkReply, BulkRequest, FileKind, WireError};
use phoned_tests::client::Client;
use sha2::Digest;

use super::configured::ConfiguredRelay;

pub const SLOW: Duration = Duration::from_secs(30);

pub async fn provisioned(relay: &ConfiguredRelay, name: &str) -> (Client, String) {
    let c = relay.client().await;
    let (account, _) = c.provision(name).await.expect("provision");
    (c, account.number)
}

pub fn upload_request(client_id: &str, to: &str, data: &[u8]) -> BulkRequest {
    BulkRequest::Upload {
        client_id: client_id.into(),
        to: to.into(),
        name: "big.bin".into(),
        size: data.len() as u64,
        sha256: sha2::Sha256::digest(data).into(),
        kind: FileKind::File,
    }
}

/// Starts an upload of `data`, sends all but its last byte, waits for them to be in the
/// relay's `partial` dir and resets the stream. Returns the relay's refusal if it did not
/// let the upload start.
pub async fn abandon(
    from: &Client,
    partial: &Path,
    client_id: &str,
    to: &str,
    data: &[u8],
) -> Option<WireError> {
    let before = dir_bytes(partial);
    let mut bulk = from
        .open_bulk(&upload_request(client_id, to, data))
        .await
        .expect("bulk stream");
    match bulk.reply().await.expect("bulk reply") {
        BulkReply::Resume { .. } => {}
        BulkReply::Error(e) => return Some(e),
        other => panic!("upload: {other:?}"),
    }
    bulk.send
        .write_all(&data[..data.len() - 1])
        .await
        .expect("send");
    let sent = before + data.len() as u64 - 1;
    phoned_tests::wait_for(SLOW, || (dir_bytes(partial) >= sent).then_some(()))
        .expect("the relay never wrote what was sent");
    bulk.send.reset(0u32.into()).expect("reset");
    // The relay answers the broken upload (or just ends the stream): it has seen it.
    let _ = bulk.reply().await;
    None
}

pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

pub fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |e| e.count())
}

pub fn error_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("ERROR")).collect()
}

/// A tmpfs mounted for one test, lazily unmounted when dropped (the relay may still
/// hold files on it).
pub struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts `size_mib` of tmpfs at `at`; an error if not permitted (not root).
    pub fn mount(at: &Path, size_mib: u64) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the filesystem of `dir` to the last byte with a file of its own.
pub fn fill_disk(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("ballast");
    let mut f = std::fs::File::create(&path).expect("ballast");
    let block = vec![0u8; 64 << 10];
    while f.write_all(&block).is_ok() {}
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
    path
}

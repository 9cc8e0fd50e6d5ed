//! The upkeep task: every few seconds (sooner when [`Shared::kick`]ed) it measures free
//! space and says so in the log and the service status when the relay runs out or
//! recovers, deletes unfinished uploads that expired, and retries acknowledgements the
//! store could not apply. The decisions are [`crate::space`]'s; this moves the bytes.
//! [`restore_partials`] runs once at start-up, before connections are accepted.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use smol::channel::Receiver;

use crate::server::unix_ms;
use crate::shared::Shared;
use crate::space::{Change, FsSpace, Shortage};

/// Longest pause between two rounds (a shorter `partial_expiry_s` makes them closer).
const MAX_ROUND: Duration = Duration::from_secs(5);
const MIN_ROUND: Duration = Duration::from_millis(100);

/// Free and total bytes of the filesystem that holds `dir` (`statvfs`).
pub(crate) fn fs_space(dir: &Path) -> std::io::Result<FsSpace> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated and `st` is written by statvfs before we read it.
    let st = unsafe {
        if libc::statvfs(path.as_ptr(), st.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        st.assume_init()
    };
    let frag = st.f_frsize as u64;
    Ok(FsSpace {
        available: (st.f_bavail as u64).saturating_mul(frag),
        total: (st.f_blocks as u64).saturating_mul(frag),
    })
}

/// The file name in `partial/` of upload `client_id` from account `from`.
pub(crate) fn partial_name(from: u64, client_id: &str) -> String {
    let hex: String = client_id.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{from}-{hex}")
}

/// Counts every file left in `partial/` (by a broken upload, before a restart), with its
/// mtime as its last activity, so that the quota holds and expiry covers it. Files of
/// names we do not make count against no sender but still expire.
pub(crate) fn restore_partials(shared: &Shared) {
    let dir = shared.config().state_dir.join("partial");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return; // None yet.
    };
    let mut found = 0usize;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let sender = name
            .split_once('-')
            .and_then(|(from, _)| from.parse().ok())
            .unwrap_or(0);
        let touched = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as u64);
        shared.space(|s| s.partials.restore(&name, sender, meta.len(), touched));
        found += 1;
    }
    if found > 0 {
        tracing::info!(found, "unfinished uploads in partial/");
    }
}

/// Runs until the relay stops (the task is dropped). `addr` is for the status line.
pub(crate) async fn run(shared: Arc<Shared>, kick: Receiver<()>, addr: SocketAddr) {
    let mut last_expiry: Option<std::time::Instant> = None;
    loop {
        let started = std::time::Instant::now();
        let config = shared.config();
        let every = (config.partial_expiry / 4).clamp(MIN_ROUND, MAX_ROUND);
        // Expiry scans every upload: on its own schedule, not on every kick.
        if last_expiry.is_none_or(|t| started >= t + every) {
            expire_partials(&shared).await;
            last_expiry = Some(started);
        }
        retry_acks(&shared).await;
        watch_space(&shared, addr).await;
        let mut pause = every;
        if let Some(at) = shared.space(|s| s.acks.next_deadline()) {
            let until = Duration::from_millis(at.saturating_sub(shared.mono_ms()));
            pause = pause.min(until.max(MIN_ROUND));
        }
        // Woken early by a kick, or on time; a closed channel means the relay is stopping.
        let kicked = smol::future::or(async { Some(kick.recv().await.is_ok()) }, async {
            smol::Timer::after(pause).await;
            None
        })
        .await;
        match kicked {
            Some(false) => return,
            // A flood of refused writes kicks all the time: still at most one round per
            // MIN_ROUND.
            Some(true) => {
                smol::Timer::at(started + MIN_ROUND).await;
            }
            None => {}
        }
    }
}

/// Deletes the files of unfinished uploads not touched for `partial_expiry_s`.
async fn expire_partials(shared: &Shared) {
    let config = shared.config();
    let expiry = config.partial_expiry.as_millis() as u64;
    let expired = shared.space(|s| s.partials.take_expired(unix_ms(), expiry));
    if expired.is_empty() {
        return;
    }
    let dir = config.state_dir.join("partial");
    let count = expired.len();
    blocking::unblock(move || {
        for name in expired {
            match std::fs::remove_file(dir.join(&name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                // Forgotten all the same: the next start-up finds it and tries again.
                Err(e) => tracing::warn!("cannot delete an expired upload {name}: {e}"),
            }
        }
    })
    .await;
    tracing::info!(
        expired = count,
        "deleted unfinished uploads not resumed within partial_expiry_s"
    );
}

/// Tries again the acknowledgements that are due; those that fail again stay scheduled.
async fn retry_acks(shared: &Shared) {
    let due = {
        let now = shared.mono_ms();
        shared.space(|s| s.acks.due(now))
    };
    let mut applied = 0usize;
    for (account, id) in due {
        let pending = match shared.committer.queue_deliver_message(account, id).await {
            Ok(p) => p,
            Err(_) => return, // Stopping.
        };
        match pending.wait().await {
            Ok(delivered) => {
                shared.space(|s| s.acks.done(account, id));
                crate::mailbox::after_delivery(shared, id, delivered).await;
                applied += 1;
            }
            Err(e) if e.is_out_of_space() => {}
            // Not a matter of room: retrying will not help. The message stays, and goes
            // to the recipient again at its next login.
            Err(e) => {
                shared.space(|s| s.acks.done(account, id));
                tracing::warn!(account, id, "giving up on an acknowledgement: {e}");
            }
        }
    }
    if applied > 0 {
        let waiting = shared.space(|s| s.acks.len());
        tracing::info!(
            applied,
            waiting,
            "applied acknowledgements that waited for room"
        );
    }
}

/// Measures the disk and the map and reports a change once: an error line when the relay
/// runs out of space, an info line when it recovers, and the service status.
async fn watch_space(shared: &Shared, addr: SocketAddr) {
    let config = shared.config();
    let store = shared.store.clone();
    let dir = config.state_dir.clone();
    let (disk, map) = blocking::unblock(move || (fs_space(&dir), store.map_shortage())).await;
    let promised = shared.space(|s| s.partials.promised());
    let disk_short = disk
        .ok()
        .and_then(|d| crate::space::check_disk(d, config.min_free_space, promised, 0).err());
    let failures = shared.committer.full_failures();
    let now = shared.mono_ms();
    let (change, waiting) = shared.space(|s| {
        let failed = failures - std::mem::replace(&mut s.full_seen, failures);
        // Acknowledgements still waiting are deletes the store could not make yet.
        let writes = (failed > 0 || !s.acks.is_empty()).then_some(Shortage::Writes { failed });
        let short = disk_short.or(map.ok().flatten()).or(writes);
        (s.health.observe(now, short), s.acks.len())
    });
    match change {
        Some(Change::Short(why)) => {
            tracing::error!(
                acks_waiting = waiting,
                "out of space: {why}; new messages and uploads are refused until there is \
                 room (acknowledgements are still applied)"
            );
            phoned_client::systemd::status(&format!("serving on {addr}; OUT OF SPACE: {why}"));
        }
        Some(Change::Recovered) => {
            tracing::info!("space available again; taking new messages and uploads");
            phoned_client::systemd::status(&format!("serving on {addr}"));
        }
        None => {}
    }
}

//! Hostile and failing conditions of the relay's disk: uploads abandoned one byte short
//! (they count against the sender's quota and expire), a disk below the reserve (new
//! messages and uploads are refused with `OutOfSpace`, acknowledgements still go
//! through), and a full database (what was stored is still delivered and forgotten, with
//! one log line instead of a flood).

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::configured::{ConfiguredRelay, LOOPBACK};
use phoned_proto::{BulkReply, BulkRequest, ErrorCode, Event, FileKind, Request, Response};
use phoned_tests::client::Client;
use sha2::Digest;

/// Generous: the machine running the suite may be busy.
const SLOW: Duration = Duration::from_secs(30);

async fn provisioned(relay: &ConfiguredRelay, name: &str) -> (Client, String) {
    let c = relay.client().await;
    let (account, _) = c.provision(name).await.expect("provision");
    (c, account.number)
}

fn upload_request(client_id: &str, to: &str, data: &[u8]) -> BulkRequest {
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
async fn abandon(
    from: &Client,
    partial: &Path,
    client_id: &str,
    to: &str,
    data: &[u8],
) -> Option<WireErr> {
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

type WireErr = phoned_proto::WireError;

fn dir_bytes(dir: &Path) -> u64 {
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

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |e| e.count())
}

#[test]
fn abandoned_uploads_end_refused_by_the_senders_quota() {
    let relay = ConfiguredRelay::start(&format!("{LOOPBACK}mailbox_quota_kib = 1024\n"));
    let partial = relay.state_dir().join("partial");
    smol::block_on(async {
        let (attacker, _) = provisioned(&relay, "Attacker").await;
        let (_victim, number) = provisioned(&relay, "Victim").await;
        let data = vec![0x5a; 300 << 10];
        let mut refused = None;
        for i in 0..40 {
            if let Some(e) = abandon(
                &attacker,
                &partial,
                &format!("abandoned-{i}"),
                &number,
                &data,
            )
            .await
            {
                refused = Some((i, e));
                break;
            }
        }
        let (i, e) = refused.expect("40 abandoned uploads and never refused");
        assert_eq!(e.code, ErrorCode::QuotaExceeded, "{e}");
        assert!(e.message.contains("unfinished uploads"), "{e}");
        // 1 MiB holds three of 300 KiB, not a fourth.
        assert_eq!(i, 3, "refused at upload {i}");
        assert!(dir_bytes(&partial) <= 1 << 20, "{}", dir_bytes(&partial));
    });
}

#[test]
fn abandoned_uploads_expire_and_free_the_quota() {
    let relay = ConfiguredRelay::start(&format!(
        "{LOOPBACK}mailbox_quota_kib = 1024\npartial_expiry_s = 1\n"
    ));
    let partial = relay.state_dir().join("partial");
    smol::block_on(async {
        let (a, _) = provisioned(&relay, "A").await;
        let (_b, number) = provisioned(&relay, "B").await;
        let data = vec![1u8; 600 << 10];
        assert!(abandon(&a, &partial, "one", &number, &data).await.is_none());
        assert_eq!(files_in(&partial), 1);
        // Over the quota while the first one's leftovers wait.
        let second = abandon(&a, &partial, "two", &number, &data).await;
        assert_eq!(second.map(|e| e.code), Some(ErrorCode::QuotaExceeded));
        phoned_tests::wait_for(SLOW, || (files_in(&partial) == 0).then_some(()))
            .expect("the abandoned upload was never deleted");
        assert!(
            abandon(&a, &partial, "three", &number, &data)
                .await
                .is_none()
        );
    });
    assert!(
        relay.log().contains("deleted unfinished uploads"),
        "{}",
        relay.log()
    );
}

#[test]
fn old_partial_files_are_swept_at_start_up() {
    let mut relay = common::relay("");
    relay.process.terminate();
    let partial = relay.process.state_dir.join("partial");
    std::fs::create_dir_all(&partial).unwrap();
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
    let old = std::fs::File::create(partial.join("7-6f6c64")).unwrap();
    old.set_len(1000).unwrap();
    old.set_modified(two_days_ago).unwrap();
    drop(old);
    std::fs::write(partial.join("7-6e6577"), b"recent").unwrap();
    relay.process.restart();
    phoned_tests::wait_for(SLOW, || (!partial.join("7-6f6c64").exists()).then_some(()))
        .expect("a two-day-old partial upload survived the start-up sweep");
    assert!(partial.join("7-6e6577").exists(), "a recent one is kept");
}

fn error_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("ERROR")).collect()
}

#[test]
fn below_the_reserve_new_messages_and_uploads_are_refused_but_acks_go_through() {
    let relay = ConfiguredRelay::start(LOOPBACK);
    let partial = relay.state_dir().join("partial");
    smol::block_on(async {
        let (a, _) = provisioned(&relay, "A").await;
        let (b, nb) = provisioned(&relay, "B").await;
        let send = |client_id: &str| {
            a.request(Request::SendMessage {
                client_id: client_id.into(),
                to: nb.clone(),
                text: "hello".into(),
            })
        };
        let Ok(Response::Stored { id }) = send("before").await else {
            panic!("stored before the reserve changed");
        };
        // A reserve larger than any disk: the relay is out of space from now on.
        let line = relay.reload_with(&format!("{LOOPBACK}min_free_space_mib = 1073741824\n"));
        assert!(line.contains("min_free_space_mib"), "{line}");
        for i in 0..20 {
            let e = send(&format!("refused-{i}")).await.unwrap_err();
            assert_eq!(e.code(), Some(ErrorCode::OutOfSpace), "{e}");
        }
        let data = vec![2u8; 1000];
        let e = abandon(&a, &partial, "up", &nb, &data)
            .await
            .expect("upload refused");
        assert_eq!(e.code, ErrorCode::OutOfSpace, "{e}");
        // What was stored is still delivered, acknowledged and forgotten.
        b.wait_event(SLOW, |e| matches!(e, Event::Message(m) if m.id == id))
            .await
            .expect("the stored message arrives");
        assert!(matches!(
            b.request(Request::Delivered { id }).await,
            Ok(Response::Done)
        ));
        a.wait_event(
            SLOW,
            |e| matches!(e, Event::MessageDelivered { id: d, .. } if *d == id),
        )
        .await
        .expect("the sender hears of the delivery");
        phoned_tests::wait_for(SLOW, || relay.log().contains("out of space").then_some(()))
            .expect("the relay says it is out of space");
        relay.reload_with(LOOPBACK);
        phoned_tests::wait_for(SLOW, || {
            relay.log().contains("space available again").then_some(())
        })
        .expect("the relay says it has room again");
        assert!(matches!(send("after").await, Ok(Response::Stored { .. })));
    });
    let log = relay.log();
    let errors = error_lines(&log);
    assert_eq!(
        errors.len(),
        1,
        "one line, not one per refusal: {errors:#?}"
    );
    assert!(errors[0].contains("min_free_space_mib"), "{}", errors[0]);
}

#[test]
fn a_full_database_still_delivers_and_forgets_what_it_stored() {
    let relay = ConfiguredRelay::start(&format!(
        "{LOOPBACK}map_size_mib = 16\nmailbox_quota_kib = 1048576\nmax_message_bytes = 61440\n"
    ));
    smol::block_on(async {
        let (a, _) = provisioned(&relay, "A").await;
        let (b, nb) = provisioned(&relay, "B").await;
        let text = "m".repeat(60 * 1024);
        let mut stored = Vec::new();
        let refusal = loop {
            let sent = a
                .request(Request::SendMessage {
                    client_id: format!("m{}", stored.len()),
                    to: nb.clone(),
                    text: text.clone(),
                })
                .await;
            match sent {
                Ok(Response::Stored { id }) => stored.push(id),
                Ok(other) => panic!("{other:?}"),
                Err(e) => break e,
            }
            assert!(stored.len() < 1000, "16 MiB never filled up");
        };
        assert_eq!(refusal.code(), Some(ErrorCode::OutOfSpace), "{refusal}");
        assert!(stored.len() > 100, "stored only {}", stored.len());
        // Every stored message arrives, is acknowledged and forgotten.
        let mut got = Vec::new();
        while got.len() < stored.len() {
            match b.wait_event(SLOW, |e| matches!(e, Event::Message(_))).await {
                Some(Event::Message(m)) => got.push(m.id),
                _ => panic!("got {} of {} messages", got.len(), stored.len()),
            }
        }
        let acks = got.iter().map(|&id| b.request(Request::Delivered { id }));
        for answer in phoned_tests::join_all(acks).await {
            assert!(matches!(answer, Ok(Response::Done)), "{answer:?}");
        }
        let mut receipts = 0;
        while receipts < stored.len() {
            a.wait_event(SLOW, |e| matches!(e, Event::MessageDelivered { .. }))
                .await
                .unwrap_or_else(|| panic!("{receipts} of {} receipts", stored.len()));
            receipts += 1;
        }
        // The room is back: a new message is taken.
        let again = a
            .request(Request::SendMessage {
                client_id: "after".into(),
                to: nb.clone(),
                text: text.clone(),
            })
            .await;
        assert!(matches!(again, Ok(Response::Stored { .. })), "{again:?}");
    });
    let log = relay.log();
    let errors = error_lines(&log);
    assert!(errors.len() <= 1, "no flood: {errors:#?}");
}

/// A tmpfs mounted for one test, lazily unmounted when dropped (the relay may still
/// hold files on it).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts `size_mib` of tmpfs at `at`; an error if not permitted (not root).
    fn mount(at: &Path, size_mib: u64) -> Result<Tmpfs, String> {
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
fn fill_disk(dir: &Path) -> std::path::PathBuf {
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

/// The full disk, for real: a small tmpfs as the state dir, no reserve (as if
/// another process had filled the disk), messages until the disk is full, then the
/// recipient takes and acknowledges them all. Every acknowledgement is answered `Done`;
/// the deletes the disk refused are retried by the relay itself once room appears, without
/// the recipient reconnecting; the log says "out of space" once instead of once per
/// failure. Needs root for the mount: skipped otherwise.
#[test]
fn a_full_disk_still_takes_acknowledgements_and_retries_the_deletes() {
    let mut mounted = None;
    let mut why_not = None;
    let relay = ConfiguredRelay::start_with(
        &format!(
            "{LOOPBACK}min_free_space_mib = 0\nmailbox_quota_kib = 1048576\n\
             max_message_bytes = 61440\n"
        ),
        |state| match Tmpfs::mount(state, 8) {
            Ok(m) => mounted = Some(m),
            Err(e) => why_not = Some(e),
        },
    );
    if let Some(e) = why_not {
        eprintln!("skipped: cannot mount a tmpfs for the state dir ({e}); needs root");
        return;
    }
    let state = relay.state_dir();
    // Taken before the relay fills the disk, given back at the end.
    let spare = state.join("spare");
    std::fs::write(&spare, vec![0u8; 1 << 20]).expect("spare");
    smol::block_on(async {
        let (a, _) = provisioned(&relay, "A").await;
        let (b, nb) = provisioned(&relay, "B").await;
        // Small messages: a delete frees little and dirties much, so deleting needs
        // new pages, which a full disk refuses.
        let text = "d".repeat(200);
        let mut stored = Vec::new();
        let refusal = 'fill: loop {
            let sends = (0..256).map(|i| {
                a.request(Request::SendMessage {
                    client_id: format!("m{}-{i}", stored.len()),
                    to: nb.clone(),
                    text: text.clone(),
                })
            });
            let mut refused = None;
            for sent in phoned_tests::join_all(sends).await {
                match sent {
                    Ok(Response::Stored { id }) => stored.push(id),
                    Ok(other) => panic!("{other:?}"),
                    Err(e) => refused = Some(e),
                }
            }
            if let Some(e) = refused {
                break 'fill e;
            }
            assert!(stored.len() < 200_000, "the tmpfs never filled up");
        };
        assert_eq!(refusal.code(), Some(ErrorCode::OutOfSpace), "{refusal}");
        // Whatever the relay left free, something else takes.
        let ballast = fill_disk(&state);
        assert!(spare.exists());
        let mut got = Vec::new();
        while got.len() < stored.len() {
            match b.wait_event(SLOW, |e| matches!(e, Event::Message(_))).await {
                Some(Event::Message(m)) => got.push(m.id),
                _ => panic!("got {} of {} messages", got.len(), stored.len()),
            }
        }
        for chunk in got.chunks(512) {
            let acks = chunk.iter().map(|&id| b.request(Request::Delivered { id }));
            for answer in phoned_tests::join_all(acks).await {
                assert!(matches!(answer, Ok(Response::Done)), "{answer:?}");
            }
        }
        // Room again (an operator cleans up): the deletes that failed are applied now,
        // and the sender hears of each delivery, while the recipient stays connected.
        std::fs::remove_file(ballast).expect("ballast");
        std::fs::remove_file(&spare).expect("spare");
        let mut receipts = 0;
        while receipts < stored.len() {
            a.wait_event(SLOW, |e| matches!(e, Event::MessageDelivered { .. }))
                .await
                .unwrap_or_else(|| panic!("{receipts} of {} receipts", stored.len()));
            receipts += 1;
        }
    });
    let log = relay.log();
    // Whether a delete needed pages the full disk refused depends on what LMDB had
    // free at that moment; when one did, it was retried without the recipient.
    let retried = log.contains("applied acknowledgements that waited for room");
    eprintln!("deletes retried after the disk had room again: {retried}");
    let errors = error_lines(&log);
    assert!(errors.len() <= 1, "no flood: {errors:#?}");
    drop(relay);
    drop(mounted);
}

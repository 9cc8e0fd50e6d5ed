//! Files through the relay's store and forward: large, offline, broken off and resumed,
//! with hostile names (path tricks, terminal escapes, bidi overrides).

mod common;

use std::path::Path;
use std::time::Duration;

use phoned_proto::codec::{decode, encode_framed};
use phoned_proto::{BulkReply, BulkRequest, FileKind, FrameDecoder};
use phoned_tests::process::PhonedProcess;
use phoned_tests::wait_for;

fn files(p: &PhonedProcess) -> Vec<serde_json::Value> {
    p.ctl(&["--json", "file", "ls"])
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn wait_file(
    p: &PhonedProcess,
    within: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Option<serde_json::Value> {
    wait_for(within, || files(p).into_iter().find(|f| pred(f)))
}

/// Deterministic bytes that do not compress.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn a_5_mib_file_to_an_offline_daemon_arrives_once_and_intact() {
    let w = common::world();
    let a = w.phone("Alice");
    let mut b = w.phone("Bob");
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    b.stop();
    let data = noise(5 << 20, 7);
    let path = w.dir.path().join("holiday photos.bin");
    std::fs::write(&path, &data).unwrap();
    let out = a.ctl(&["--json", "file", "send", &nb, path.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    let id = out.json()["id"].as_str().unwrap().to_owned();
    assert!(
        wait_file(&a, Duration::from_secs(30), |f| f["id"] == id.as_str()
            && f["status"] == "stored")
        .is_some(),
        "{:?}",
        files(&a)
    );

    b.restart();
    b.wait_online(common::ONLINE);
    let got = wait_file(&b, Duration::from_secs(30), |f| f["status"] == "received")
        .unwrap_or_else(|| panic!("{:?}\n{}", files(&b), b.log()));
    assert_eq!(got["name"], "holiday photos.bin");
    let saved = std::fs::read(got["path"].as_str().unwrap()).unwrap();
    assert!(saved == data, "the received file differs");
    assert!(
        wait_file(&a, Duration::from_secs(10), |f| f["id"] == id.as_str()
            && f["status"] == "delivered")
        .is_some()
    );
    b.restart();
    b.wait_online(common::ONLINE);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(files(&b).len(), 1, "delivered twice: {:?}", files(&b));
}

/// A relay that takes big files, Alice and Bob online, and `size` bytes of noise on their
/// way from Alice to Bob.
fn big_file_on_its_way(
    size: usize,
    seed: u64,
) -> (common::World, PhonedProcess, PhonedProcess, Vec<u8>) {
    let w = common::world_with(
        "idle_timeout_ms = 2000\nkeep_alive_ms = 500\nmax_file_mib = 200\nmailbox_quota_kib = 300000",
    );
    let a = w.phone("Alice");
    let b = w.phone("Bob");
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    let data = noise(size, seed);
    let path = w.dir.path().join("big.bin");
    std::fs::write(&path, &data).unwrap();
    assert_eq!(
        a.ctl(&["file", "send", &nb, path.to_str().unwrap()]).code,
        0
    );
    (w, a, b, data)
}

/// Waits until a partial file in `dir` holds more than 4 MiB.
fn wait_partial(dir: &Path, what: &str) {
    let started = wait_for(Duration::from_secs(60), || {
        let entry = std::fs::read_dir(dir).ok()?.next()?.ok()?;
        (entry.metadata().ok()?.len() > 4 << 20).then_some(())
    });
    assert!(started.is_some(), "the {what} never started");
}

/// Waits for Bob to have the file, and checks it is `data`.
fn assert_received(b: &PhonedProcess, data: &[u8]) {
    let got = wait_file(b, Duration::from_secs(90), |f| f["status"] == "received")
        .unwrap_or_else(|| panic!("{:?}\n{}", files(b), b.log()));
    let saved = std::fs::read(got["path"].as_str().unwrap()).unwrap();
    assert!(saved == data, "the resumed file differs");
}

#[test]
fn an_upload_broken_by_a_relay_crash_resumes_where_it_stopped() {
    let (mut w, a, b, data) = big_file_on_its_way(120 << 20, 9);
    // Kill the relay once part of the file is on its disk.
    wait_partial(&w.relay.state_dir.join("partial"), "upload");
    w.relay.kill();
    w.relay.restart();
    assert_received(&b, &data);
    assert!(
        a.log().contains("upload resumes"),
        "the upload started over instead of resuming"
    );
}

#[test]
fn a_download_broken_by_a_daemon_crash_resumes_where_it_stopped() {
    let (_w, _a, mut b, data) = big_file_on_its_way(150 << 20, 11);
    // Kill Bob's daemon once part of the file is in its download dir.
    let partial_dir = b.dir.join("state/downloads/.partial");
    wait_partial(&partial_dir, "download");
    b.restart();
    b.wait_online(common::ONLINE);
    assert_received(&b, &data);
    assert!(
        b.log().contains("download resumes"),
        "the download started over instead of resuming:\n{}",
        b.log()
    );
    assert!(
        std::fs::read_dir(&partial_dir).is_ok_and(|mut d| d.next().is_none()),
        "a partial download was left behind"
    );
}

#[test]
fn hostile_file_names_are_neutralised() {
    let w = common::world();
    let b = w.phone("Bob");
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    // A hand-made client uploads with names no file system would give.
    smol::block_on(async {
        let c = phoned_tests::client::Client::connect(
            &phoned_tests::client::endpoint(),
            w.relay.addr,
            Some(&w.relay.fingerprint),
        )
        .await
        .unwrap();
        c.provision("Mallory").await.unwrap();
        for (i, name) in [
            "../../../etc/passwd",
            ".bashrc",
            "x\u{7}y",
            "../../../etc/passwd",
            // Escapes for a terminal, whole and with their ESC already gone.
            "\u{1b}[31mred\u{1b}[0m.txt",
            "[31mred[0m.txt",
            // Reads as "cvexe.pdf" where bidi overrides are honoured.
            "cv\u{202E}fdp.exe",
            "\u{FEFF}\u{2066}notes\u{2069}\u{200E}.md",
        ]
        .iter()
        .enumerate()
        {
            let body = format!("payload {i}").into_bytes();
            let sha: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&body).into();
            let (mut send, mut recv) = c.conn.open_bi().await.unwrap();
            let mut out = Vec::new();
            let req = BulkRequest::Upload {
                client_id: format!("evil-{i}"),
                to: nb.clone(),
                name: name.to_string(),
                size: body.len() as u64,
                sha256: sha,
                kind: FileKind::File,
            };
            encode_framed(&mut out, &req).unwrap();
            out.extend_from_slice(&body);
            send.write_all(&out).await.unwrap();
            send.finish().unwrap();
            let mut dec = FrameDecoder::new();
            let mut buf = vec![0u8; 1024];
            let mut replies = Vec::new();
            while let Ok(Some(n)) = recv.read(&mut buf).await {
                dec.push(&buf[..n]);
                while let Ok(Some(b)) = dec.next_frame() {
                    replies.push(decode::<BulkReply>(b).unwrap());
                }
            }
            assert!(
                matches!(replies.last(), Some(BulkReply::Stored { .. })),
                "{replies:?}"
            );
        }
    });
    let all = wait_for(Duration::from_secs(20), || {
        let f = files(&b);
        (f.iter().filter(|f| f["status"] == "received").count() == 8).then_some(f)
    })
    .unwrap_or_else(|| panic!("{:?}", files(&b)));
    let download_dir = b.dir.join("state/downloads");
    let mut names: Vec<String> = all
        .iter()
        .map(|f| {
            let p = std::path::PathBuf::from(f["path"].as_str().unwrap());
            assert_eq!(
                p.parent().unwrap(),
                download_dir,
                "saved outside the download dir: {}",
                p.display()
            );
            p.file_name().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "bashrc",
            "cvfdp.exe",
            "notes.md",
            "passwd",
            "passwd (1)",
            "red (1).txt",
            "red.txt",
            "xy"
        ]
    );
    // The names shown (file ls, the Received signal) are the cleaned ones too.
    assert!(
        all.iter().all(|f| {
            let n = f["name"].as_str().unwrap_or_default();
            !n.contains('[') && !n.chars().any(phoned_proto::text::is_hidden)
        }),
        "{all:?}"
    );
    assert!(!b.dir.join("etc/passwd").exists());
}

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

/// Sends `data` as `name` from `a` to `number` with `phonectl --json file send`; returns
/// what it printed (the last line: the outcome) and its exit code.
fn send_as(
    w: &common::World,
    a: &PhonedProcess,
    number: &str,
    name: &str,
    data: &[u8],
    extra: &[&str],
) -> (serde_json::Value, i32, String) {
    let path = w.dir.path().join(name);
    std::fs::write(&path, data).unwrap();
    let mut args = vec!["--json", "file", "send", number, path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = a.ctl(&args);
    let last = out.stdout.lines().last().unwrap_or_default().to_owned();
    let value = serde_json::from_str(&last).unwrap_or_else(|_| panic!("{out:?}"));
    (value, out.code, out.stdout.clone() + &out.stderr)
}

/// Sends `data` as `name` from `a` to `number`, which the relay accepts; returns the id.
fn send(w: &common::World, a: &PhonedProcess, number: &str, name: &str, data: &[u8]) -> String {
    let (out, code, text) = send_as(w, a, number, name, data, &[]);
    assert_eq!(code, 0, "{text}");
    out["id"].as_str().unwrap().to_owned()
}

/// Sends what the relay refuses: `phonectl` fails (exit 1) with the relay's reason, on
/// stderr and in its JSON outcome; returns the id.
fn refused(
    w: &common::World,
    a: &PhonedProcess,
    number: &str,
    name: &str,
    data: &[u8],
    reason: &str,
) -> String {
    let (out, code, text) = send_as(w, a, number, name, data, &[]);
    assert_eq!(code, 1, "{text}");
    assert_eq!(out["status"], "failed", "{text}");
    let said = out["reason"].as_str().unwrap_or_default();
    assert!(said.starts_with(reason), "{text}");
    assert!(text.contains(&format!("failed: {said}")), "{text}");
    out["id"].as_str().unwrap().to_owned()
}

/// Waits for transfer `id` on `a` to end `stored` or `failed`; returns its entry.
fn settled(a: &PhonedProcess, id: &str) -> serde_json::Value {
    wait_file(a, Duration::from_secs(30), |f| {
        f["id"] == id && (f["status"] == "stored" || f["status"] == "failed")
    })
    .unwrap_or_else(|| panic!("{:?}\n{}", files(a), a.log()))
}

#[test]
fn a_file_larger_than_the_recipients_quota_and_a_full_mailbox_say_so_in_file_ls() {
    let w = common::world_with(
        "idle_timeout_ms = 2000\nkeep_alive_ms = 500\nmailbox_quota_kib = 1024\nmax_file_mib = 1",
    );
    let a = w.phone("Alice");
    let mut b = w.phone("Bob");
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    // Bob offline: what is sent waits in his mailbox.
    b.stop();

    // Larger than the whole mailbox: it can never be delivered, and it is not "full".
    let too_large = "the file (2 MiB) is too large for the recipient's mailbox (quota 1 MiB)";
    let huge = refused(&w, &a, &nb, "huge.bin", &noise(2 << 20, 1), too_large);
    let f = settled(&a, &huge);
    assert_eq!(f["status"], "failed", "{f}");
    assert_eq!(f["reason"], too_large, "{f}");
    let human = a.ctl(&["file", "ls"]).stdout;
    assert!(human.contains(&format!("[failed: {too_large}]")), "{human}");

    // Fits, and waits for Bob.
    let first = send(&w, &a, &nb, "first.bin", &noise(700 << 10, 2));
    assert_eq!(settled(&a, &first)["status"], "stored");
    // Would fit in an empty mailbox, not beside the first: full (for now).
    let full = "the recipient's mailbox is full (";
    let second = refused(&w, &a, &nb, "second.bin", &noise(700 << 10, 3), full);
    let f = settled(&a, &second);
    assert_eq!(f["status"], "failed", "{f}");
    let reason = f["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("the recipient's mailbox is full (")
            && reason.contains("of 1 MiB waiting to be collected"),
        "{f}"
    );
    // The stored one has no reason.
    let first = files(&a).into_iter().find(|f| f["id"] == first.as_str());
    assert_eq!(
        first.map(|f| f["reason"].clone()),
        Some(serde_json::Value::Null)
    );
}

#[test]
fn received_files_have_absolute_paths_and_voice_messages_are_listed_apart() {
    let w = common::world();
    let a = w.phone("Alice");
    // Relative to the daemon's working directory (its test dir).
    let b = w.phone_with(
        "Bob",
        &format!(
            "relay_fingerprint = \"{}\"\ndownload_dir = \"incoming\"",
            w.relay.fingerprint
        ),
    );
    let na = a.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(b.ctl(&["contacts", "add", "Alice", &na]).code, 0);

    let data = noise(100 << 10, 4);
    send(&w, &a, &nb, "notes.bin", &data);
    let wav = w.dir.path().join("hello.wav");
    let tone = (0..48_000 * 3 / 2).map(|i| 0.3 * (i as f32 * 0.1).sin());
    phoned_tests::wav::write(&wav, 48_000, 1, tone);
    let out = a.ctl(&["voice", "send", &nb, "--file", wav.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    let voice_in = wait_for(Duration::from_secs(30), || {
        let list = b.ctl(&["--json", "file", "ls", "--voice"]).json();
        list.as_array()?
            .iter()
            .find(|f| f["status"] == "received")
            .cloned()
    })
    .unwrap_or_else(|| panic!("no voice message\n{}", b.log()));
    assert_eq!(voice_in["kind"], "voice");

    // `file ls`: files only, saved at an absolute path that holds the file.
    let got = wait_file(&b, Duration::from_secs(30), |f| f["status"] == "received")
        .unwrap_or_else(|| panic!("{:?}\n{}", files(&b), b.log()));
    let listed = files(&b);
    assert!(listed.iter().all(|f| f["kind"] == "file"), "{listed:?}");
    assert_eq!(got["name"], "notes.bin");
    let path = got["path"].as_str().unwrap();
    assert!(Path::new(path).is_absolute(), "{path}");
    assert!(std::fs::read(path).unwrap() == data);
    let human = b.ctl(&["file", "ls"]).stdout;
    assert!(human.contains(path) && !human.contains(".opus"), "{human}");
    // --all: both; --voice: the voice message only, also at an absolute path.
    let all = b.ctl(&["--json", "file", "ls", "--all"]).json();
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");
    let voice_path = voice_in["path"].as_str().unwrap();
    assert!(Path::new(voice_path).is_absolute(), "{voice_path}");

    // `voice ls`: who from, how long, when.
    let human = b.ctl(&["voice", "ls"]).stdout;
    assert!(
        human.contains(&format!("← from Alice ({na}) 1.5 s [received]")),
        "{human}"
    );
    assert!(human.contains(" UTC "), "no date: {human}");
    let sent = a.ctl(&["voice", "ls"]).stdout;
    assert!(sent.contains(&format!("→ to {nb} 1.5 s")), "{sent}");
}

#[test]
fn a_send_the_relay_refuses_fails_before_returning_and_wait_shows_progress() {
    let w = common::world();
    let a = w.phone("Alice");
    let b = w.phone("Bob");
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    // An unknown number: refused now, not "sending…" and a failure later.
    let unknown = "no account has number 99999";
    refused(&w, &a, "99999", "note.txt", b"hello", unknown);
    let wav = w.dir.path().join("hello.wav");
    phoned_tests::wav::write(
        &wav,
        48_000,
        1,
        (0..48_000).map(|i| 0.2 * (i as f32 * 0.05).sin()),
    );
    let out = a.ctl(&["voice", "send", "99999", "--file", wav.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains(unknown), "{out:?}");

    // --wait --json: progress lines, then the outcome once the relay has it all.
    let (last, code, text) = send_as(&w, &a, &nb, "big.bin", &noise(3 << 20, 9), &["--wait"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(last["status"], "stored", "{text}");
    let progress: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["event"] == "progress")
        .collect();
    assert!(!progress.is_empty(), "{text}");
    assert!(progress.iter().all(|p| p["id"] == last["id"]), "{text}");
    assert!(progress.iter().all(|p| p["size"] == 3u64 << 20), "{text}");
    // Without --wait it returns once the relay took it, saying so.
    let out = a.ctl(&["voice", "send", &nb, "--file", wav.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("sending voice message as")
            || out.stdout.contains("stored on the relay")
            || out.stdout.contains("delivered"),
        "{out:?}"
    );
}

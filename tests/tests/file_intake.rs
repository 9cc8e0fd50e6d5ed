//! How files get into the daemon to be sent: as a descriptor the caller opened, or by a
//! path on the session bus that may not reach the daemon's own files; nothing but
//! regular files; and a bounded amount of blocking work however many calls come.

mod common;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use phoned_proto::dbus::{BUS_NAME, ROOT_PATH, iface};
use phoned_tests::process::PhonedProcess;
use phoned_tests::wait_for;

/// A method's answer: the returned string, or the D-Bus error name and message.
type Answer = Result<String, (String, String)>;

async fn connect(p: &PhonedProcess) -> zbus::Connection {
    zbus::connection::Builder::address(p.bus.address.as_str())
        .build()
        .await
        .unwrap()
}

async fn call(
    conn: &zbus::Connection,
    method: &str,
    body: &(impl serde::Serialize + zbus::wire::DynamicType),
) -> Answer {
    match conn
        .call_method(Some(BUS_NAME), ROOT_PATH, Some(iface::FILES), method, body)
        .await
    {
        Ok(reply) => Ok(reply.body().deserialize::<String>().unwrap()),
        Err(zbus::Error::MethodError(name, message, _)) => {
            Err((name.to_string(), message.unwrap_or_default()))
        }
        Err(e) => Err((format!("{e:?}"), e.to_string())),
    }
}

/// Calls `Files.Send(to, path)` (the path variant).
async fn send_path(conn: &zbus::Connection, to: &str, path: &Path) -> Answer {
    call(conn, "Send", &(to, path.to_str().unwrap())).await
}

/// Calls `Files.SendFd(to, file, name)`.
async fn send_fd(conn: &zbus::Connection, to: &str, file: &File, name: &str) -> Answer {
    call(conn, "SendFd", &(to, zbus::wire::Fd::from(file), name)).await
}

fn error_name(a: &Answer) -> &str {
    match a {
        Ok(_) => "no error",
        Err((name, _)) => name.rsplit('.').next().unwrap_or_default(),
    }
}

/// Threads of process `pid` now.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Opens a FIFO for reading without waiting for a writer.
fn open_fifo(path: &Path) -> File {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap()
}

fn files(p: &PhonedProcess) -> Vec<serde_json::Value> {
    p.ctl(&["--json", "file", "ls"])
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Runs `f` on its own thread and fails the test if it takes more than `within`: what
/// is tested here used to hang.
fn within<T: Send + 'static>(
    within: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(within)
        .unwrap_or_else(|_| panic!("{what} did not finish within {within:?}"))
}

/// Alice and Bob online; Bob's number.
fn two(w: &common::World) -> (PhonedProcess, PhonedProcess, String) {
    let a = w.phone("Alice");
    let b = w.phone("Bob");
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    (a, b, nb)
}

#[test]
fn a_fifo_is_refused_at_once_and_the_daemon_stays_online() {
    let w = common::world();
    let (a, _b, nb) = two(&w);
    let fifo = w.dir.path().join("fifo");
    mkfifo(&fifo);
    let pid = a.child.id();
    let before = threads(pid);

    // phonectl opens it (without waiting for a writer) and the daemon says what it is.
    let (bus, to, path) = (
        a.bus.address.clone(),
        nb.clone(),
        fifo.to_str().unwrap().to_owned(),
    );
    let out = within(
        Duration::from_secs(60),
        "phonectl file send FIFO",
        move || phoned_tests::process::phonectl(&bus, &["file", "send", &to, &path], ""),
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("FIFO") && out.stderr.contains("InvalidArgument"),
        "{out:?}"
    );

    // Many at once, by path and by descriptor: every one refused, none left hanging.
    let (bus, to) = (a.bus.address.clone(), nb.clone());
    let answers = within(Duration::from_secs(120), "200 FIFO sends", move || {
        smol::block_on(async move {
            // Two connections: the bus allows 128 calls in flight per connection.
            let conn = zbus::connection::Builder::address(bus.as_str())
                .build()
                .await
                .unwrap();
            let conn2 = zbus::connection::Builder::address(bus.as_str())
                .build()
                .await
                .unwrap();
            let fd = open_fifo(&fifo);
            let by_path = (0..100).map(|_| {
                let (conn, to, fifo) = (&conn2, &to, &fifo);
                Box::pin(async move { send_path(conn, to, fifo).await })
                    as std::pin::Pin<Box<dyn std::future::Future<Output = Answer>>>
            });
            let by_fd = (0..100).map(|_| {
                let (conn, to, fd) = (&conn, &to, &fd);
                Box::pin(async move { send_fd(conn, to, fd, "fifo").await })
                    as std::pin::Pin<Box<dyn std::future::Future<Output = Answer>>>
            });
            phoned_tests::join_all(by_path.chain(by_fd)).await
        })
    });
    // A descriptor is looked at before the daemon queues any work; a path must be
    // opened first, on the bounded queue, so a flood of those may be told Busy.
    let (by_path, by_fd) = answers.split_at(100);
    for a in by_fd {
        assert_eq!(error_name(a), "InvalidArgument", "{a:?}");
    }
    for a in by_path {
        assert!(
            ["InvalidArgument", "Busy"].contains(&error_name(a)),
            "{a:?}"
        );
    }
    assert!(by_path.iter().any(|a| error_name(a) == "InvalidArgument"));
    let after = threads(pid);
    eprintln!("daemon threads: {before} before 200 FIFO sends, {after} after");
    assert!(
        after <= before + 16,
        "the daemon went from {before} to {after} threads"
    );
    // Still serving and still on the relay, with nothing queued.
    let status = a.status().expect("the daemon answers");
    assert_eq!(status["connection_state"], "online", "{status}");
    assert!(files(&a).is_empty(), "{:?}", files(&a));
}

#[test]
fn the_path_variant_never_reaches_the_daemons_own_files() {
    let w = common::world();
    let (a, b, nb) = two(&w);
    let state = a.dir.join("state");
    let account = state.join("account.toml");
    assert!(account.exists(), "the daemon keeps its credentials there");
    let link = w.dir.path().join("innocent.toml");
    std::os::unix::fs::symlink(&account, &link).unwrap();
    let traversal = b
        .dir
        .join("..")
        .join(a.dir.file_name().unwrap())
        .join("state/../state/account.toml");
    let ok = w.dir.path().join("fine.txt");
    std::fs::write(&ok, "a file of the caller's").unwrap();
    smol::block_on(async {
        let conn = connect(&a).await;
        for (path, expected) in [
            (account.as_path(), "PermissionDenied"),
            (traversal.as_path(), "PermissionDenied"),
            (link.as_path(), "PermissionDenied"),
            (a.dir.join("phoned.toml").as_path(), "PermissionDenied"),
            (Path::new("/proc/self/environ"), "PermissionDenied"),
            (Path::new("../state/account.toml"), "InvalidArgument"),
            (Path::new("/etc"), "InvalidArgument"),
        ] {
            let answer = send_path(&conn, &nb, path).await;
            assert_eq!(
                error_name(&answer),
                expected,
                "{}: {answer:?}",
                path.display()
            );
        }
        // A file of the caller's goes.
        send_path(&conn, &nb, &ok).await.unwrap();
    });
    let got = wait_for(Duration::from_secs(30), || {
        files(&b).into_iter().find(|f| f["status"] == "received")
    })
    .unwrap_or_else(|| panic!("{:?}\n{}", files(&b), b.log()));
    assert_eq!(got["name"], "fine.txt");
    assert_eq!(files(&a).len(), 1, "only one was sent: {:?}", files(&a));
}

/// Deterministic bytes that do not compress.
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
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
fn a_file_passed_as_a_descriptor_arrives_as_it_was_under_a_clean_name() {
    let w = common::world();
    let (a, b, nb) = two(&w);
    let data = noise(1 << 20);
    let path = w.dir.path().join("report.bin");
    std::fs::write(&path, &data).unwrap();
    let file = File::open(&path).unwrap();
    smol::block_on(async {
        let conn = connect(&a).await;
        let name = "\u{202E}nib.\u{1b}[31mreport\u{FEFF}.bin";
        send_fd(&conn, &nb, &file, name).await.unwrap();
    });
    // The daemon took its copy before answering: what happens to the file now does
    // not change what is sent.
    drop(file);
    std::fs::write(&path, b"changed afterwards").unwrap();
    std::fs::remove_file(&path).unwrap();
    let got = wait_for(Duration::from_secs(30), || {
        files(&b).into_iter().find(|f| f["status"] == "received")
    })
    .unwrap_or_else(|| panic!("{:?}\n{}", files(&b), b.log()));
    assert_eq!(got["name"], "nib.report.bin");
    assert!(
        std::fs::read(got["path"].as_str().unwrap()).unwrap() == data,
        "the received file differs"
    );
    // Once the relay has it, the daemon's copy goes.
    let outbox = a.dir.join("state/outbox");
    assert!(
        wait_for(Duration::from_secs(20), || {
            std::fs::read_dir(&outbox)
                .is_ok_and(|mut d| d.next().is_none())
                .then_some(())
        })
        .is_some(),
        "the outbox copy stayed"
    );
}

#[test]
fn a_flood_of_sends_is_told_busy_instead_of_taking_a_thread_each() {
    let w = common::world_with(
        "idle_timeout_ms = 2000\nkeep_alive_ms = 500\nmailbox_quota_kib = 300000",
    );
    let (a, _b, nb) = two(&w);
    let path = w.dir.path().join("being-written.bin");
    std::fs::write(&path, noise(64 << 10)).unwrap();
    // Another program is writing the file and holds an exclusive lock on it: the daemon's
    // copies wait for it, so the jobs that get in stay in.
    let writer = File::open(&path).unwrap();
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(unsafe { libc::flock(writer.as_raw_fd(), libc::LOCK_EX) }, 0);
    let pid = a.child.id();
    let before = threads(pid);
    // Fewer than the 128 calls the bus lets one connection have in flight.
    const CALLS: usize = 120;
    // Two run and fourteen wait (daemon/src/work.rs); the rest are told at once.
    const ADMITTED: usize = 16;
    let (tx, rx) = smol::channel::unbounded::<Answer>();
    let (bus, to, p2) = (a.bus.address.clone(), nb.clone(), path.clone());
    let caller = std::thread::spawn(move || {
        smol::block_on(async move {
            let conn = zbus::connection::Builder::address(bus.as_str())
                .build()
                .await
                .unwrap();
            let file = File::open(&p2).unwrap();
            let calls = (0..CALLS).map(|i| {
                let (conn, to, file, tx) = (&conn, &to, &file, tx.clone());
                async move {
                    let answer = send_fd(conn, to, file, &format!("f{i}")).await;
                    let _ = tx.send(answer).await;
                }
            });
            phoned_tests::join_all(calls).await;
        })
    });
    let recv = |n: usize| -> Vec<Answer> {
        smol::block_on(async {
            let mut got = Vec::new();
            while got.len() < n {
                let next = smol::future::or(async { rx.recv().await.ok() }, async {
                    smol::Timer::after(Duration::from_secs(60)).await;
                    None
                });
                match next.await {
                    Some(a) => got.push(a),
                    None => panic!("only {} answers of {n} within 60 s: {got:?}", got.len()),
                }
            }
            got
        })
    };
    let busy = recv(CALLS - ADMITTED);
    for b in &busy {
        assert_eq!(error_name(b), "Busy", "{b:?}");
    }
    let (_, message) = busy[0].as_ref().unwrap_err();
    assert!(message.contains("busy"), "{message}");
    let during = threads(pid);
    eprintln!("daemon threads: {before} before the flood, {during} with the queue full");
    assert!(
        during <= before + 16,
        "the daemon went from {before} to {during} threads"
    );
    // While its file jobs wait, the daemon answers and stays on the relay.
    let status = a.status().expect("the daemon answers");
    assert_eq!(status["connection_state"], "online", "{status}");

    // The writer is done: the jobs that got in finish.
    drop(writer);
    let sent = recv(ADMITTED);
    for s in &sent {
        assert!(s.is_ok(), "{s:?}");
    }
    caller.join().unwrap();
    assert_eq!(files(&a).len(), ADMITTED);
}

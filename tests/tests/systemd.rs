//! The relay and the daemon speak systemd's notification protocol: READY=1 once they
//! serve, WATCHDOG=1 while they run (when the service has a watchdog), RELOADING=1 then
//! READY=1 again on SIGHUP (`systemctl reload`), STOPPING=1 on SIGTERM.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use phoned_tests::process::{DbusDaemon, bin};

/// Collects notification messages for up to `within`, stopping early once `enough` says so.
fn collect(
    sock: &UnixDatagram,
    within: Duration,
    enough: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !enough(&got) {
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got
}

fn watchdogs(msgs: &[String]) -> usize {
    msgs.iter()
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count()
}

fn check(mut child: std::process::Child, sock: &UnixDatagram, what: &str) {
    let msgs = collect(sock, Duration::from_secs(20), |m| {
        m.iter().any(|x| x.contains("READY=1")) && watchdogs(m) >= 3
    });
    assert!(
        msgs.iter()
            .any(|m| m.contains("READY=1") && m.contains("STATUS=")),
        "{what}: no READY=1: {msgs:?}"
    );
    assert!(
        watchdogs(&msgs) >= 3,
        "{what}: the watchdog is not fed: {msgs:?}"
    );
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let reloaded = |m: &[String]| {
        m.iter()
            .position(|x| x.contains("RELOADING=1") && x.contains("MONOTONIC_USEC="))
            .is_some_and(|at| m[at..].iter().any(|x| x.contains("READY=1")))
    };
    let msgs = collect(sock, Duration::from_secs(10), reloaded);
    assert!(
        reloaded(&msgs),
        "{what}: no RELOADING=1 then READY=1: {msgs:?}"
    );
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let msgs = collect(sock, Duration::from_secs(10), |m| {
        m.iter().any(|x| x.contains("STOPPING=1"))
    });
    assert!(
        msgs.iter().any(|m| m.contains("STOPPING=1")),
        "{what}: no STOPPING=1: {msgs:?}"
    );
    assert!(child.wait().unwrap().success(), "{what}: unclean exit");
}

#[test]
fn relay_and_daemon_notify_ready_and_feed_the_watchdog() {
    let dir = tempfile::tempdir().unwrap();
    let relay_sock_path = dir.path().join("relay.sock");
    let relay_sock = UnixDatagram::bind(&relay_sock_path).unwrap();
    let relay = Command::new(bin("phone-relay"))
        .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(dir.path().join("relay"))
        .env("NOTIFY_SOCKET", &relay_sock_path)
        .env("WATCHDOG_USEC", "400000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The daemon needs a relay address and a bus; it is ready once it owns its bus name,
    // whether or not the relay answers.
    let bus = DbusDaemon::start();
    std::fs::write(dir.path().join("phoned.toml"), "relay = \"127.0.0.1:9\"\n").unwrap();
    let daemon_sock_path = dir.path().join("daemon.sock");
    let daemon_sock = UnixDatagram::bind(&daemon_sock_path).unwrap();
    let daemon = Command::new(bin("phoned"))
        .arg("--config")
        .arg(dir.path().join("phoned.toml"))
        .arg("--state-dir")
        .arg(dir.path().join("phoned"))
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .env("NOTIFY_SOCKET", &daemon_sock_path)
        .env("WATCHDOG_USEC", "400000")
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    check(relay, &relay_sock, "phone-relay");
    check(daemon, &daemon_sock, "phoned");
}

/// Starts `cmd` with stderr going to a fresh file, with `$JOURNAL_STREAM` naming that file
/// when `journal`, sends SIGTERM once `ready` is in the log, and returns the log.
fn log_of(
    mut cmd: Command,
    dir: &std::path::Path,
    name: &str,
    journal: bool,
    ready: &str,
) -> String {
    use std::os::unix::fs::MetadataExt;
    let path = dir.join(format!("{name}-{journal}.log"));
    let file = std::fs::File::create(&path).unwrap();
    let meta = file.metadata().unwrap();
    if journal {
        cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
    } else {
        cmd.env_remove("JOURNAL_STREAM");
    }
    let mut child = cmd
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap();
    let seen = phoned_tests::wait_for(Duration::from_secs(20), || {
        std::fs::read_to_string(&path)
            .ok()
            .filter(|l| l.contains(ready))
    });
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    let log = std::fs::read_to_string(&path).unwrap();
    assert!(seen.is_some(), "{name}: no {ready:?} in {log}");
    log
}

#[test]
fn logs_into_the_journal_carry_priorities_and_no_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let bus = DbusDaemon::start();
    std::fs::write(dir.path().join("phoned.toml"), "relay = \"127.0.0.1:9\"\n").unwrap();
    let relay = |dir: &std::path::Path| {
        let mut c = Command::new(bin("phone-relay"));
        c.args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(dir.join("relay"));
        c
    };
    let daemon = |dir: &std::path::Path| {
        let mut c = Command::new(bin("phoned"));
        c.arg("--config")
            .arg(dir.join("phoned.toml"))
            .arg("--state-dir")
            .arg(dir.join("phoned"))
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address);
        c
    };
    for (name, ready, started) in [
        ("relay", "relay ready", "relay ready"),
        ("phoned", "offline: ", "phoned started"),
    ] {
        let make: &dyn Fn(&std::path::Path) -> Command =
            if name == "relay" { &relay } else { &daemon };
        let journal = log_of(make(dir.path()), dir.path(), name, true, ready);
        let lines: Vec<&str> = journal.lines().collect();
        assert!(
            lines.iter().any(|l| l.starts_with("<6>")),
            "{name}: no info line: {journal}"
        );
        // phoned's link to the unreachable relay goes offline with a warning.
        if name == "phoned" {
            assert!(lines.iter().any(|l| l.starts_with("<4>")), "{journal}");
        }
        for line in &lines {
            let prio = line.get(..3).unwrap_or_default();
            assert!(
                ["<3>", "<4>", "<6>", "<7>"].contains(&prio),
                "{name}: a journal line without a priority: {line:?}"
            );
            assert!(
                !line.contains("INFO") && !line.contains("\u{1b}[") && !line.contains("Z "),
                "{name}: a level, colour or timestamp in the journal: {line:?}"
            );
        }
        // Elsewhere: timestamps and levels, no priorities.
        let plain = log_of(make(dir.path()), dir.path(), name, false, started);
        let first = plain.lines().next().unwrap_or_default();
        assert!(
            first.contains("Z ") && first.contains("INFO") && !first.starts_with('<'),
            "{name}: {first:?}"
        );
    }
}

//! `scripts/run.sh` as a user runs it, in a scratch copy of the checkout: the real script
//! and configs (moved to a free port, the null audio backend), the workspace's binaries
//! as `target/release`, and `deps.sh` and `cargo` stubbed out (the binaries are built).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use phoned_tests::process::{RelayProcess, bin, phonectl};
use phoned_tests::wait_for;

/// The scratch checkout.
struct Checkout {
    dir: tempfile::TempDir,
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

impl Checkout {
    fn new(port: u16) -> Checkout {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let d = dir.path();
        for sub in ["scripts", "config", "target/release", "stub"] {
            std::fs::create_dir_all(d.join(sub)).expect("dir");
        }
        std::fs::copy(root.join("scripts/run.sh"), d.join("scripts/run.sh")).expect("run.sh");
        script(&d.join("scripts/deps.sh"), "");
        script(&d.join("stub/cargo"), "");
        for b in ["phone-relay", "phoned", "phonectl"] {
            std::os::unix::fs::symlink(bin(b), d.join("target/release").join(b)).expect("link");
        }
        let relay = std::fs::read_to_string(root.join("config/phone-relay.toml")).expect("cfg");
        let relay = relay.replace("0.0.0.0:7447", &format!("127.0.0.1:{port}"));
        std::fs::write(d.join("config/phone-relay.toml"), relay).expect("config");
        let phoned = std::fs::read_to_string(root.join("config/phoned.toml")).expect("cfg");
        let phoned = phoned
            .replace("127.0.0.1:7447", &format!("127.0.0.1:{port}"))
            .replace("backend = \"cpal\"", "backend = \"null\"");
        std::fs::write(d.join("config/phoned.toml"), phoned).expect("config");
        Checkout { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `scripts/run.sh` with no session bus, in a process group of its own.
    fn command(&self) -> Command {
        let mut cmd = Command::new(self.path("scripts/run.sh"));
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", self.path("stub").display()))
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .current_dir(self.dir.path())
            .process_group(0);
        cmd
    }

    fn bus_address(&self) -> Option<String> {
        std::fs::read_to_string(self.path("state/bus-address"))
            .ok()
            .filter(|a| !a.trim().is_empty())
    }
}

/// A run.sh in the background; SIGTERM to its group when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group of our own child.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    socket.local_addr().expect("addr").port()
}

/// The pid of `pid`'s child named `comm`.
fn child_named(pid: u32, comm: &str) -> Option<i32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().find_map(|c| {
        let name = std::fs::read_to_string(format!("/proc/{c}/comm")).ok()?;
        (name.trim() == comm).then(|| c.parse().ok()).flatten()
    })
}

#[test]
fn a_second_run_refuses_and_state_stays_consistent() {
    let port = free_udp_port();
    let co = Checkout::new(port);
    let log = co.path("first.log");
    let out = std::fs::File::create(&log).expect("log");
    let first = Running(
        co.command()
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("run.sh"),
    );
    let first_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let bus = wait_for(Duration::from_secs(60), || co.bus_address())
        .unwrap_or_else(|| panic!("run.sh never wrote state/bus-address:\n{}", first_log()));
    let bus = bus.trim().to_owned();
    assert_eq!(phonectl(&bus, &["status"], "").code, 0, "{}", first_log());

    // A second run refuses at once, says how to stop the first, and changes nothing.
    let second = co.command().output().expect("run.sh");
    let said = text(&second);
    assert!(!second.status.success(), "a second run.sh started: {said}");
    let pid = first.0.id();
    assert!(
        said.contains("already running") && said.contains(&format!("kill {pid}")),
        "{said}"
    );
    assert!(!said.contains("phoned is on D-Bus"), "{said}");
    assert_eq!(co.bus_address().as_deref().map(str::trim), Some(&*bus));
    assert_eq!(
        phonectl(&bus, &["status"], "").code,
        0,
        "the first run broke"
    );

    // The relay stopping is said, and takes the rest down with the stale bus address.
    let relay = child_named(pid, "phone-relay").expect("run.sh runs phone-relay");
    // SAFETY: kill(2) on the relay our run.sh started.
    unsafe { libc::kill(relay, libc::SIGTERM) };
    let mut first = first;
    wait_for(Duration::from_secs(30), || {
        first.0.try_wait().ok().flatten()
    })
    .unwrap_or_else(|| panic!("run.sh kept running without its relay:\n{}", first_log()));
    assert!(
        first_log().contains("the relay stopped; stopping phoned and its private D-Bus"),
        "{}",
        first_log()
    );
    assert_eq!(
        co.bus_address(),
        None,
        "a dead bus's address was left behind"
    );

    // A relay already on the port (another checkout's, say): run.sh fails before it
    // writes a bus address.
    let _other = RelayProcess::start(
        &bin("phone-relay"),
        &co.path("other-relay"),
        &format!("127.0.0.1:{port}"),
        "",
    );
    let taken = co.command().stdin(Stdio::null()).output().expect("run.sh");
    let said = text(&taken);
    assert!(!taken.status.success(), "{said}");
    assert!(
        said.contains("the relay (is its UDP port taken?) did not start"),
        "{said}"
    );
    assert!(!said.contains("phoned is on D-Bus"), "{said}");
    assert_eq!(co.bus_address(), None);
}

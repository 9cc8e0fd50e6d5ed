//! A relay whose config file the test owns: it rewrites the file, sends SIGHUP and reads
//! the relay's log (stderr, at `info`) to see what the reload did.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};

use phoned_tests::client::{self, Client};

use super::{BIN, WAIT};

/// Put first in every config of a [`ConfiguredRelay`]: any free port on loopback.
pub const LOOPBACK: &str = "listen = \"127.0.0.1:0\"\n";

/// The log lines that end a reload, one per SIGHUP.
const OUTCOMES: [&str; 2] = ["config reloaded", "config reload failed"];

pub struct ConfiguredRelay {
    child: Child,
    pub addr: SocketAddr,
    /// The fingerprint printed at start.
    pub fingerprint: String,
    /// Holds `relay.toml`, `relay.log` and `state/`.
    pub dir: tempfile::TempDir,
}

impl ConfiguredRelay {
    /// Starts `phone-relay serve --config DIR/relay.toml --state-dir DIR/state` (no
    /// `--listen`: `config` says where, usually with [`LOOPBACK`]).
    pub fn start(config: &str) -> ConfiguredRelay {
        Self::start_with(config, |_| {})
    }

    /// [`Self::start`], calling `prepare` with the state dir's path first (to put a
    /// filesystem there, say).
    pub fn start_with(config: &str, prepare: impl FnOnce(&std::path::Path)) -> ConfiguredRelay {
        let dir = tempfile::tempdir().expect("temp dir");
        prepare(&dir.path().join("state"));
        let log = std::fs::File::create(dir.path().join("relay.log")).expect("log");
        std::fs::write(dir.path().join("relay.toml"), config).expect("config");
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(dir.path().join("relay.toml"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn phone-relay");
        let log_path = dir.path().join("relay.log");
        let (addr, fingerprint) = phoned_tests::process::await_listening(&mut child, || {
            std::fs::read_to_string(&log_path).unwrap_or_default()
        });
        ConfiguredRelay {
            child,
            addr,
            fingerprint,
            dir,
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("relay.toml")
    }

    /// Replaces the config file (atomically, as an editor or package manager would).
    pub fn write_config(&self, text: &str) {
        let tmp = self.dir.path().join("relay.toml.new");
        std::fs::write(&tmp, text).expect("config");
        std::fs::rename(&tmp, self.config_path()).expect("config");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("relay.log")).unwrap_or_default()
    }

    fn outcomes(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| OUTCOMES.iter().any(|o| l.contains(o)))
            .map(str::to_owned)
            .collect()
    }

    /// Sends SIGHUP and waits for the relay to log the outcome; returns that line.
    pub fn reload(&self) -> String {
        let before = self.outcomes().len();
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, libc::SIGHUP) };
        assert_eq!(rc, 0, "SIGHUP");
        phoned_tests::wait_for(WAIT, || self.outcomes().get(before).cloned())
            .unwrap_or_else(|| panic!("no reload outcome logged; log:\n{}", self.log()))
    }

    /// Rewrites the config with `text`, then [`Self::reload`]s.
    pub fn reload_with(&self, text: &str) -> String {
        self.write_config(text);
        self.reload()
    }

    /// Still running (not exited)?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A client that accepts any certificate (see its `fingerprint`).
    pub async fn client(&self) -> Client {
        Client::connect(&client::endpoint(), self.addr, None)
            .await
            .expect("connect")
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().expect("wait")
    }
}

impl Drop for ConfiguredRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

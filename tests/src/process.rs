//! Runs the real binaries (relay, phoned on a private dbus-daemon, phonectl), each
//! killed on drop.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Reads a starting `phone-relay serve`'s stdout (piped) until it has printed its
/// address and fingerprint; panics with `log()` if it does not within 20 s.
pub fn await_listening(child: &mut Child, log: impl Fn() -> String) -> (SocketAddr, String) {
    let (addr, fingerprint, _) = await_started(child, log);
    (addr, fingerprint)
}

/// Like [`await_listening`], with the media plane's address too (printed before the
/// QUIC address, when the relay has a media plane).
pub fn await_started(
    child: &mut Child,
    log: impl Fn() -> String,
) -> (SocketAddr, String, Option<SocketAddr>) {
    let stdout = child.stdout.take().expect("relay stdout piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut addr, mut fingerprint): (Option<SocketAddr>, Option<String>) = (None, None);
    let mut media = None;
    loop {
        if let (Some(a), Some(f)) = (addr, &fingerprint) {
            return (a, f.clone(), media);
        }
        let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) else {
            panic!("relay printed no address and fingerprint; log:\n{}", log());
        };
        if let Some(a) = line.strip_prefix("media on ") {
            media = a.parse().ok();
        } else if let Some(a) = line.strip_prefix("listening on ") {
            addr = a.parse().ok();
        } else if let Some(f) = line.strip_prefix("fingerprint ") {
            fingerprint = Some(f.to_owned());
        }
    }
}

/// A running `phone-relay serve`.
pub struct RelayProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub fingerprint: String,
    /// Where its UDP media plane listens, if it has one.
    pub media: Option<SocketAddr>,
    pub state_dir: PathBuf,
    bin: PathBuf,
}

impl RelayProcess {
    /// Starts `bin serve` on `listen` with `state_dir`, with `extra` TOML appended to
    /// the config, and waits until it prints its address and fingerprint.
    pub fn start(bin: &Path, state_dir: &Path, listen: &str, extra: &str) -> RelayProcess {
        std::fs::create_dir_all(state_dir).expect("state dir");
        let config = state_dir.join("relay.toml");
        let mut f = std::fs::File::create(&config).expect("config");
        writeln!(f, "{extra}").expect("config");
        let mut child = Command::new(bin)
            .args(["serve", "--listen", listen, "--state-dir"])
            .arg(state_dir)
            .arg("--config")
            .arg(&config)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn phone-relay");
        let (addr, fingerprint, media) = await_started(&mut child, String::new);
        RelayProcess {
            child,
            addr,
            fingerprint,
            media,
            state_dir: state_dir.to_owned(),
            bin: bin.to_owned(),
        }
    }

    /// Starts it again on the same address and state dir.
    pub fn restart(&mut self) {
        self.kill();
        let listen = self.addr.to_string();
        let mut extra =
            std::fs::read_to_string(self.state_dir.join("relay.toml")).unwrap_or_default();
        // The media plane on its port of before too (by default it would take the QUIC
        // port + 1, which something else may hold).
        if let (Some(media), false) = (self.media, extra.contains("media_listen")) {
            extra.push_str(&format!("\nmedia_listen = \"{media}\"\n"));
        }
        *self = RelayProcess::start(&self.bin, &self.state_dir.clone(), &listen, &extra);
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().expect("wait")
    }

    /// Runs `bin admin --state-dir DIR --config DIR/relay.toml ARGS…` with `stdin`,
    /// returning (success, stdout, stderr).
    pub fn admin(&self, args: &[&str], stdin: &str) -> (bool, String, String) {
        run_admin(&self.bin, &self.state_dir, args, stdin)
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn run_admin(
    bin: &Path,
    state_dir: &Path,
    args: &[&str],
    stdin: &str,
) -> (bool, String, String) {
    // The config the relay was started with (RelayProcess writes it there): it says
    // which store the relay uses.
    let config = state_dir.join("relay.toml");
    let mut cmd = Command::new(bin);
    cmd.arg("admin").arg("--state-dir").arg(state_dir);
    if config.is_file() {
        cmd.arg("--config").arg(&config);
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn phone-relay admin");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("admin output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The path of a workspace binary built next to the running test or bench
/// (`target/<profile>/NAME`). `cargo test --workspace` builds them all first.
pub fn bin(name: &str) -> PathBuf {
    // Benchmarks can measure another build: PHONED_BIN_DIR=target/dist.
    if let Some(dir) = std::env::var_os("PHONED_BIN_DIR") {
        let path = PathBuf::from(dir).join(name);
        assert!(path.exists(), "{} is missing", path.display());
        return path;
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile> dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` (or `./scripts/test.sh`)",
        path.display()
    );
    path
}

/// The repository's shared test fixtures (`../shared/fixtures` beside the checkout).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures")
        .join(name)
}

/// A private `dbus-daemon` with the shared test config (no service activation).
pub struct DbusDaemon {
    child: Child,
    pub address: String,
}

impl DbusDaemon {
    pub fn start() -> DbusDaemon {
        let config = fixture("dbus-test-session.conf");
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (install the dbus package)");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("dbus-daemon address");
        let address = line.trim().to_owned();
        assert!(
            address.starts_with("unix:"),
            "dbus-daemon printed {address:?}"
        );
        DbusDaemon { child, address }
    }
}

impl Drop for DbusDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `phoned` on its own private bus, with its config and state in `dir`.
pub struct PhonedProcess {
    pub child: Child,
    pub bus: DbusDaemon,
    pub dir: PathBuf,
    /// Extra environment (e.g. `PULSE_SERVER`), kept for restarts.
    env: Vec<(String, String)>,
}

impl PhonedProcess {
    /// Writes `dir/phoned.toml` (`relay = ADDR` plus `extra`) and starts the daemon.
    pub fn start(dir: &Path, relay: SocketAddr, extra: &str) -> PhonedProcess {
        PhonedProcess::start_with_env(dir, relay, extra, &[])
    }

    /// [`PhonedProcess::start`] with `env` added to the daemon's environment.
    pub fn start_with_env(
        dir: &Path,
        relay: SocketAddr,
        extra: &str,
        env: &[(String, String)],
    ) -> PhonedProcess {
        PhonedProcess::start_config(dir, &format!("relay = \"{relay}\"\n{extra}\n"), env)
    }

    /// Starts a daemon whose `relay` is the list `relays` (a cluster), with `extra`.
    pub fn start_with_relays(dir: &Path, relays: &[SocketAddr], extra: &str) -> PhonedProcess {
        let list: Vec<String> = relays.iter().map(|r| format!("\"{r}\"")).collect();
        let config = format!("relay = [{}]\n{extra}\n", list.join(", "));
        PhonedProcess::start_config(dir, &config, &[])
    }

    /// Writes `dir/phoned.toml` as `config` and starts the daemon with `env` added.
    fn start_config(dir: &Path, config: &str, env: &[(String, String)]) -> PhonedProcess {
        std::fs::create_dir_all(dir).expect("daemon dir");
        std::fs::write(dir.join("phoned.toml"), config).expect("config");
        let bus = DbusDaemon::start();
        let child = PhonedProcess::spawn(dir, &bus.address, env);
        PhonedProcess {
            child,
            bus,
            dir: dir.to_owned(),
            env: env.to_vec(),
        }
    }

    fn spawn(dir: &Path, bus: &str, env: &[(String, String)]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("phoned.log"))
            .expect("log");
        Command::new(bin("phoned"))
            // Its own directory, not the test's: a relative `download_dir` stays in the
            // test's temp dir, and paths the daemon reports must not depend on it.
            .current_dir(dir)
            .arg("--config")
            .arg(dir.join("phoned.toml"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .env("DBUS_SESSION_BUS_ADDRESS", bus)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn phoned")
    }

    /// Stops the daemon with SIGTERM and waits for it.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().expect("wait phoned")
    }

    /// Starts the daemon again with the same config, state and bus.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = PhonedProcess::spawn(&self.dir, &self.bus.address, &self.env);
    }

    /// Runs `phonectl ARGS` against this daemon's bus.
    pub fn ctl(&self, args: &[&str]) -> CtlOutput {
        phonectl(&self.bus.address, args, "")
    }

    /// `phonectl --json status`, or `None` while the daemon is not on its bus yet.
    pub fn status(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.ctl(&["--json", "status"]).stdout).ok()
    }

    /// Polls the status until it reports `online`; returns it.
    pub fn wait_online(&self, within: Duration) -> serde_json::Value {
        crate::wait_for(within, || {
            self.status().filter(|v| v["connection_state"] == "online")
        })
        .unwrap_or_else(|| panic!("phoned never came online; log:\n{}", self.log()))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("phoned.log")).unwrap_or_default()
    }
}

impl Drop for PhonedProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a `phonectl` run printed and its exit status.
#[derive(Debug)]
pub struct CtlOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CtlOutput {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("phonectl printed no JSON ({e}): {self:?}"))
    }
}

/// Runs `phonectl ARGS` with `DBUS_SESSION_BUS_ADDRESS=bus` and `stdin`.
pub fn phonectl(bus: &str, args: &[&str], stdin: &str) -> CtlOutput {
    let mut child = Command::new(bin("phonectl"))
        .args(args)
        .env("DBUS_SESSION_BUS_ADDRESS", bus)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn phonectl");
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    let out = child.wait_with_output().expect("phonectl output");
    CtlOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running `phonectl watch`, its JSON lines collected on a thread.
pub struct Watch {
    child: Child,
    lines: mpsc::Receiver<serde_json::Value>,
}

impl Watch {
    /// Starts `phonectl watch` on `bus` and waits until it is subscribed (it prints
    /// nothing until then, so this waits a fixed moment for its match rules).
    pub fn start(bus: &str) -> Watch {
        let mut child = Command::new(bin("phonectl"))
            .arg("watch")
            .env("DBUS_SESSION_BUS_ADDRESS", bus)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn phonectl watch");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("watch printed non-JSON {line:?}: {e}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        Watch { child, lines }
    }

    /// The first event matching `pred` within `within`.
    pub fn wait(
        &self,
        within: Duration,
        mut pred: impl FnMut(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if pred(&v) => return Some(v),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

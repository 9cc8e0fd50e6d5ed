//! Runs the real binaries: a relay process with a temp state dir, killed on drop.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `phone-relay serve`.
pub struct RelayProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub fingerprint: String,
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
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut addr = None;
        let mut fingerprint = None;
        while addr.is_none() || fingerprint.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("relay did not print its address and fingerprint");
            if let Some(a) = line.strip_prefix("listening on ") {
                addr = a.parse().ok();
            } else if let Some(f) = line.strip_prefix("fingerprint ") {
                fingerprint = Some(f.to_owned());
            }
        }
        RelayProcess {
            child,
            addr: addr.unwrap(),
            fingerprint: fingerprint.unwrap(),
            state_dir: state_dir.to_owned(),
            bin: bin.to_owned(),
        }
    }

    /// Starts it again on the same address and state dir.
    pub fn restart(&mut self) {
        self.kill();
        let listen = self.addr.to_string();
        let extra = std::fs::read_to_string(self.state_dir.join("relay.toml")).unwrap_or_default();
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

    /// Runs `bin admin --state-dir DIR ARGS…` with `stdin`, returning (success, stdout, stderr).
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
    let mut child = Command::new(bin)
        .arg("admin")
        .arg("--state-dir")
        .arg(state_dir)
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

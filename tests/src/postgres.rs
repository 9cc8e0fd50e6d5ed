//! A real, throw-away PostgreSQL for tests: a cluster made with `initdb` in a temp dir
//! and run with `pg_ctl`, listening only on a unix socket in that dir (no TCP port, so it
//! cannot collide with a system cluster or another test run). PostgreSQL refuses to run
//! as root: as root (CI) the cluster runs as the user `phonetest` (which `.ci/run`
//! creates), else `nobody`.
//!
//! [`Cluster::start`] gives a cluster of one's own, stopped when dropped;
//! [`Cluster::start_tls`] one that also listens on a loopback TCP port and takes only TLS
//! connections there (a server certificate signed by a CA made for it); [`shared`] one
//! cluster per test process, in which each test takes a database of its own
//! ([`Cluster::database`]); a watcher process stops it when the test process is gone.
//! Without PostgreSQL's binaries, [`bindir`] says so and tests skip, except in CI
//! (`CI=true`), where a missing PostgreSQL fails the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::system_bus::as_user;

/// The directory with `initdb`, `pg_ctl` and `psql`: `pg_config --bindir`, else the newest
/// of `/usr/lib/postgresql/*/bin`. `None` (after saying why on stderr) when PostgreSQL is
/// not installed; in CI that is a failure instead (`scripts/deps.sh` installs it).
pub fn bindir() -> Option<PathBuf> {
    let has_initdb = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|d| has_initdb(d));
    let found = from_pg_config.or_else(|| {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|d| has_initdb(d))
            .collect();
        dirs.sort_by_key(|d| {
            d.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        });
        dirs.pop()
    });
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !ci,
            "PostgreSQL's initdb and pg_ctl were not found (pg_config --bindir, \
             /usr/lib/postgresql/*/bin): CI needs them; scripts/deps.sh installs postgresql"
        );
        eprintln!("skipped: PostgreSQL is not installed (initdb, pg_ctl not found)");
    }
    found
}

/// Who runs the cluster: `None` for this process's own user, else the unprivileged user
/// a root process runs it as.
fn run_as() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let exists = |u: &str| {
        Command::new("id")
            .arg(u)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    Some(if exists("phonetest") {
        "phonetest"
    } else {
        "nobody"
    })
}

fn command(user: Option<&str>, program: &Path, args: &[&str]) -> Command {
    match user {
        Some(u) => as_user(u, program, args),
        None => {
            let mut c = Command::new(program);
            c.args(args);
            c
        }
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running throw-away cluster.
pub struct Cluster {
    bin: PathBuf,
    /// Holds `data/` (the cluster), the socket and `log`.
    dir: PathBuf,
    user: Option<&'static str>,
    stop_on_drop: bool,
    /// `postgres -o` options (the socket dir, TCP, TLS), also for restarts.
    options: String,
    /// The port: the socket's name, and the TCP port of a TLS cluster.
    port: u16,
}

/// How a [`Cluster::start_tls`] cluster is reached over TCP.
pub struct TlsAccess {
    pub port: u16,
    /// The CA that signed the server's certificate (for "localhost" and 127.0.0.1).
    pub ca_pem: PathBuf,
}

static CLUSTERS: AtomicU32 = AtomicU32::new(0);
static DATABASES: AtomicU32 = AtomicU32::new(0);

impl Cluster {
    /// Makes and starts a cluster in a new temp dir; `None` if PostgreSQL is not
    /// installed (see [`bindir`]).
    pub fn start() -> Option<Cluster> {
        Cluster::start_with(None)
    }

    /// A cluster that also listens on 127.0.0.1 at a free port, where it takes TLS
    /// connections only (`hostssl`); its unix socket stays open for `psql`.
    pub fn start_tls() -> Option<(Cluster, TlsAccess)> {
        let port = free_port();
        let cluster = Cluster::start_with(Some(port))?;
        let ca_pem = cluster.dir.join("ca.pem");
        Some((cluster, TlsAccess { port, ca_pem }))
    }

    fn start_with(tls_port: Option<u16>) -> Option<Cluster> {
        let bin = bindir()?;
        let user = run_as();
        // Short: the socket's path must fit in 107 bytes.
        let dir = PathBuf::from(format!(
            "/tmp/pg-{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cluster dir");
        if let Some(u) = user {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg(format!("{u}:")).arg(&dir);
                    c
                },
                "chown",
            );
        }
        let data = dir.join("data");
        let data_s = data.to_string_lossy().into_owned();
        let dir_s = dir.to_string_lossy().into_owned();
        run(
            command(
                user,
                &bin.join("initdb"),
                &[
                    "-D",
                    &data_s,
                    "-U",
                    "phoned",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
            ),
            "initdb",
        );
        let mut options = format!("-k {dir_s} -c max_connections=200");
        let port = match tls_port {
            None => {
                options.push_str(" -c listen_addresses=");
                5432
            }
            Some(port) => {
                tls_files(&dir, &data, user);
                options.push_str(&format!(
                    " -c listen_addresses=127.0.0.1 -c port={port} -c ssl=on \
                     -c ssl_cert_file=server.crt -c ssl_key_file=server.key"
                ));
                port
            }
        };
        let cluster = Cluster {
            bin,
            dir,
            user,
            stop_on_drop: true,
            options,
            port,
        };
        cluster.restart();
        Some(cluster)
    }

    /// The directory of the cluster's unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The connection URL of database `db` (the superuser `phoned`, over the socket).
    pub fn url(&self, db: &str) -> String {
        let host = self.dir.to_string_lossy().replace('/', "%2F");
        format!("postgres://phoned@{host}:{}/{db}", self.port)
    }

    /// Runs `sql` in database `db` with `psql`; returns its output (tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args(["-p", &self.port.to_string()])
            .args(["-U", "phoned", "-d", db, "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Creates a new, empty database and returns its URL.
    pub fn database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Stops the server at once (as a crash would), keeping the cluster.
    pub fn stop(&self) {
        let data = self.dir.join("data").to_string_lossy().into_owned();
        let _ = command(
            self.user,
            &self.bin.join("pg_ctl"),
            &["-D", &data, "-m", "immediate", "-w", "stop"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    }

    /// Starts the stopped server again.
    pub fn restart(&self) {
        let data = self.dir.join("data").to_string_lossy().into_owned();
        let log = self.dir.join("log").to_string_lossy().into_owned();
        run(
            command(
                self.user,
                &self.bin.join("pg_ctl"),
                &["-D", &data, "-o", &self.options, "-l", &log, "-w", "start"],
            ),
            "pg_ctl start",
        );
    }

    /// The server's main process (from `postmaster.pid`), while it runs.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// CPU seconds (user + system) the server has used so far: its main process and
    /// the processes it started that still run (its backends, one per connection, and
    /// its helpers), for benchmarks.
    pub fn cpu_seconds(&self) -> f64 {
        let Some(main) = self.postmaster_pid() else {
            return 0.0;
        };
        // SAFETY: sysconf has no preconditions.
        let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let mut total = 0.0;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let Some(close) = stat.rfind(')') else {
                continue;
            };
            let pid: u32 = entry.file_name().to_string_lossy().parse().unwrap_or(0);
            let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
            let ppid: u32 = fields.get(1).and_then(|f| f.parse().ok()).unwrap_or(0);
            if pid == main || ppid == main {
                let t = |i: usize| {
                    fields
                        .get(i)
                        .and_then(|f| f.parse::<f64>().ok())
                        .unwrap_or(0.0)
                };
                total += (t(11) + t(12)) / tick;
            }
        }
        total
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Stops the cluster and removes its dir once `pid` has exited (a watcher process).
    fn stop_when_gone(&mut self, pid: u32) {
        let pg_ctl = self.bin.join("pg_ctl");
        let script = format!(
            "while [ -d /proc/{pid} ]; do sleep 1; done; \
             '{}' -D '{}' -m immediate stop >/dev/null 2>&1; rm -rf '{}'",
            pg_ctl.display(),
            self.dir.join("data").display(),
            self.dir.display()
        );
        // Outlives this process on purpose: never waited for.
        #[allow(clippy::zombie_processes)]
        let _watcher = command(self.user, Path::new("/bin/sh"), &["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("watcher");
        self.stop_on_drop = false;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.stop_on_drop {
            self.stop();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A TCP port free on 127.0.0.1 now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A CA (`dir/ca.pem`) and a server certificate and key it signed for "localhost" and
/// 127.0.0.1 (`data/server.crt`, `data/server.key`, the key readable by the server's
/// user only, as PostgreSQL demands); `pg_hba.conf` takes TCP connections over TLS only.
fn tls_files(dir: &Path, data: &Path, user: Option<&str>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("CA key");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
    let key = KeyPair::generate().expect("server key");
    let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params")
        .signed_by(&key, &ca)
        .expect("server certificate");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("ca.pem");
    let crt = data.join("server.crt");
    let pem_key = data.join("server.key");
    std::fs::write(&crt, cert.pem()).expect("server.crt");
    std::fs::write(&pem_key, key.serialize_pem()).expect("server.key");
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
    )
    .expect("pg_hba.conf");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pem_key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    if let Some(u) = user {
        let mut c = Command::new("chown");
        c.arg(format!("{u}:"))
            .arg(&crt)
            .arg(&pem_key)
            .arg(data.join("pg_hba.conf"));
        run(c, "chown");
    }
}

/// One cluster for the whole test process (each test takes a [`Cluster::database`] of
/// its own); `None` if PostgreSQL is not installed. Stopped by a watcher once the test
/// process exits.
pub fn shared() -> Option<&'static Cluster> {
    static SHARED: OnceLock<Option<Cluster>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let mut c = Cluster::start()?;
            c.stop_when_gone(std::process::id());
            Some(c)
        })
        .as_ref()
}

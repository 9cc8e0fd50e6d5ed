//! `phone-relay serve` configuration: a TOML file, then command-line overrides.
//! Validated once at load; every problem is one clear message naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use phoned_client::config::ConfigError;
use phoned_proto::NumberRange;
use serde::Deserialize;

use crate::store::{Backend, DEFAULT_MAP_SIZE_MIB};

/// Default `mailbox_quota_kib`: 256 MiB, room for two files of the default
/// `max_file_mib` (so one waiting file does not block the next) plus texts.
pub const DEFAULT_MAILBOX_QUOTA_KIB: u64 = 256 << 10;
/// Default `max_file_mib`: at most the quota, which [`Config::load`] checks.
pub const DEFAULT_MAX_FILE_MIB: u64 = 100;

/// The file format. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<String>,
    state_dir: Option<PathBuf>,
    numbers: Option<String>,
    allow_provision: Option<bool>,
    allow_register: Option<bool>,
    provision_burst: Option<u32>,
    provision_per_hour: Option<u32>,
    ring_timeout_ms: Option<u64>,
    max_message_bytes: Option<u32>,
    mailbox_quota_kib: Option<u64>,
    max_file_mib: Option<u64>,
    keep_alive_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    map_size_mib: Option<u64>,
    max_connections: Option<u32>,
    max_connections_per_address: Option<u32>,
    login_timeout_ms: Option<u64>,
    min_free_space_mib: Option<u64>,
    max_partial_mib: Option<u64>,
    partial_expiry_s: Option<u64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    metrics_listen: Option<String>,
    store: Option<String>,
    media_listen: Option<String>,
    media_advertise_port: Option<u16>,
    media_threads: Option<usize>,
    relay_id: Option<String>,
    cluster_advertise: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    pub numbers: NumberRange,
    pub allow_provision: bool,
    pub allow_register: bool,
    /// Accounts one address may create (Provision or Register) at once, and refilled
    /// per hour after that.
    pub provision_burst: u32,
    pub provision_per_hour: u32,
    /// How long a call rings before it ends with `no-answer`.
    pub ring_timeout: Duration,
    /// Longest text message accepted, in bytes.
    pub max_message_bytes: u32,
    /// Most an account's undelivered messages may take on the relay, in bytes.
    pub mailbox_quota_bytes: u64,
    /// Largest file or voice message accepted, in bytes.
    pub max_file_bytes: u64,
    pub keep_alive: Duration,
    pub idle_timeout: Duration,
    pub map_size_mib: u64,
    /// Connections held at once, logged in or not, in all and from one address (an
    /// IPv4 address or an IPv6 /64).
    pub max_connections: u32,
    pub max_connections_per_address: u32,
    /// A connection that has not logged in this long after it was accepted is closed.
    pub login_timeout: Duration,
    /// Free space kept on the state dir's filesystem, in bytes: new messages and uploads
    /// are refused below it. `None`: 5 % of the filesystem, at most 1 GiB.
    pub min_free_space: Option<u64>,
    /// Most all unfinished uploads (`partial/`) may take together, in bytes.
    pub max_partial_bytes: u64,
    /// An unfinished upload not resumed for this long is deleted.
    pub partial_expiry: Duration,
    /// PEM certificate chain and key; when absent a self-signed identity is made.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// TCP address of the OpenMetrics endpoint (`GET /metrics`); `None`: no endpoint.
    /// Port 0 takes any free port (the relay logs the one it got).
    pub metrics_listen: Option<SocketAddr>,
    /// Where the state lives: the embedded LMDB store in `state_dir` (the default), or
    /// PostgreSQL (`store = "postgres://…"`).
    pub store: Backend,
    /// UDP address of the media plane (protocol 4 clients send their media there);
    /// `None`: no media plane, all media on QUIC datagrams. Default: `listen`'s address,
    /// port + 1 (port 0 when `listen`'s is 0).
    pub media_listen: Option<SocketAddr>,
    /// The media port clients are told (a port forward or NAT in front of the relay);
    /// `None`: the port `media_listen` bound.
    pub media_advertise_port: Option<u16>,
    /// Forwarding threads of the media plane, each with its own socket on the same port
    /// (`SO_REUSEPORT`).
    pub media_threads: usize,
    /// This relay's id among several on one PostgreSQL database (its leases and
    /// notifications name it); `None`: a random one at each start.
    pub relay_id: Option<String>,
    /// Where the other relays of the cluster reach this one for calls between relays
    /// (its QUIC port, as seen from them); `None`: `listen`, unless that is a wildcard
    /// address (then other relays cannot call devices here).
    pub cluster_advertise: Option<SocketAddr>,
}

/// Overrides from the command line.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub state_dir: Option<PathBuf>,
}

impl Config {
    /// Reads `path` (if given), applies `overrides`, fills defaults and validates.
    pub fn load(path: Option<&Path>, overrides: Overrides) -> Result<Config, ConfigError> {
        let file = match path {
            Some(p) => {
                let text = phoned_client::config::read(p)?;
                toml::from_str::<File>(&text)
                    .map_err(|e| ConfigError::parse(p, &text, e.message(), e.span()))?
            }
            None => File::default(),
        };
        Self::from_file(file, overrides)
    }

    /// Parses a config from TOML text (for tests and tools).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let file = toml::from_str::<File>(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<inline>"),
            message: e.message().to_owned(),
        })?;
        Self::from_file(file, Overrides::default())
    }

    fn from_file(file: File, o: Overrides) -> Result<Config, ConfigError> {
        let invalid = |key, message: String| ConfigError::Invalid { key, message };
        let listen_text = o
            .listen
            .or(file.listen)
            .unwrap_or_else(|| format!("0.0.0.0:{}", phoned_proto::DEFAULT_PORT));
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                "listen",
                format!("{listen_text:?} is not an address like 0.0.0.0:7447"),
            )
        })?;
        let numbers_text = file.numbers.unwrap_or_else(|| "1000-9999".to_owned());
        let numbers: NumberRange = numbers_text
            .parse()
            .map_err(|e: phoned_proto::IdentError| invalid("numbers", e.to_string()))?;
        let keep_alive = Duration::from_millis(file.keep_alive_ms.unwrap_or(10_000));
        let idle_timeout = Duration::from_millis(file.idle_timeout_ms.unwrap_or(15_000));
        if keep_alive < Duration::from_millis(100) {
            return Err(invalid("keep_alive_ms", "must be at least 100".into()));
        }
        if idle_timeout <= keep_alive || idle_timeout > Duration::from_secs(600) {
            return Err(invalid(
                "idle_timeout_ms",
                "must be above keep_alive_ms and at most 600000".into(),
            ));
        }
        let ring_timeout = Duration::from_millis(file.ring_timeout_ms.unwrap_or(30_000));
        if !(Duration::from_millis(500)..=Duration::from_secs(600)).contains(&ring_timeout) {
            return Err(invalid(
                "ring_timeout_ms",
                "must be between 500 and 600000".into(),
            ));
        }
        let max_message_bytes = file.max_message_bytes.unwrap_or(16 * 1024);
        if !(1..=60 * 1024).contains(&max_message_bytes) {
            return Err(invalid(
                "max_message_bytes",
                "must be between 1 and 61440".into(),
            ));
        }
        let mailbox_quota_kib = file.mailbox_quota_kib.unwrap_or(DEFAULT_MAILBOX_QUOTA_KIB);
        if !(1..=1 << 30).contains(&mailbox_quota_kib) {
            return Err(invalid(
                "mailbox_quota_kib",
                "must be between 1 and 1073741824".into(),
            ));
        }
        let max_file_mib = file.max_file_mib.unwrap_or(DEFAULT_MAX_FILE_MIB);
        // A file is delivered through the recipient's mailbox (and, while it uploads,
        // counts against the sender's): one larger than the quota could pass the size
        // check and then never be stored, failing with a misleading "mailbox full".
        if max_file_mib.saturating_mul(1024) > mailbox_quota_kib {
            return Err(invalid(
                "max_file_mib",
                format!(
                    "{max_file_mib} MiB is more than mailbox_quota_kib ({mailbox_quota_kib} \
                     KiB = {} MiB): a file that large could never be delivered; raise \
                     mailbox_quota_kib to at least {} or lower max_file_mib",
                    mailbox_quota_kib >> 10,
                    max_file_mib.saturating_mul(1024)
                ),
            ));
        }
        let map_size_mib = file.map_size_mib.unwrap_or(DEFAULT_MAP_SIZE_MIB);
        if !(16..=1 << 20).contains(&map_size_mib) {
            return Err(invalid(
                "map_size_mib",
                "must be between 16 and 1048576".into(),
            ));
        }
        let max_connections = file.max_connections.unwrap_or(10_000);
        if max_connections == 0 {
            return Err(invalid("max_connections", "must be at least 1".into()));
        }
        let max_connections_per_address = file.max_connections_per_address.unwrap_or(16);
        if max_connections_per_address == 0 {
            return Err(invalid(
                "max_connections_per_address",
                "must be at least 1".into(),
            ));
        }
        let login_timeout = Duration::from_millis(file.login_timeout_ms.unwrap_or(10_000));
        if !(Duration::from_millis(100)..=Duration::from_secs(600)).contains(&login_timeout) {
            return Err(invalid(
                "login_timeout_ms",
                "must be between 100 and 600000".into(),
            ));
        }
        let max_partial_mib = file.max_partial_mib.unwrap_or(1024);
        if max_partial_mib == 0 {
            return Err(invalid("max_partial_mib", "must be at least 1".into()));
        }
        let partial_expiry_s = file.partial_expiry_s.unwrap_or(24 * 3600);
        if !(1..=30 * 24 * 3600).contains(&partial_expiry_s) {
            return Err(invalid(
                "partial_expiry_s",
                "must be between 1 and 2592000 (30 days)".into(),
            ));
        }
        let tls = match (file.tls_cert, file.tls_key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "tls_cert",
                    "tls_cert and tls_key go together".into(),
                ));
            }
        };
        let metrics_listen = match file.metrics_listen {
            None => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "metrics_listen",
                    format!("{text:?} is not an address like 127.0.0.1:9447"),
                )
            })?),
        };
        let store = match file.store.as_deref() {
            None | Some("lmdb") => Backend::Heed,
            Some(url) => Backend::Postgres(url.parse().map_err(|e| invalid("store", e))?),
        };
        let media_listen = match file.media_listen.as_deref() {
            Some("off") => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "media_listen",
                    format!("{text:?} is not an address like 0.0.0.0:7448, nor \"off\""),
                )
            })?),
            None if listen.port() == 0 => Some(SocketAddr::new(listen.ip(), 0)),
            None => Some(SocketAddr::new(
                listen.ip(),
                listen.port().checked_add(1).ok_or_else(|| {
                    invalid(
                        "media_listen",
                        "listen's port is 65535: set media_listen to a free port".into(),
                    )
                })?,
            )),
        };
        let media_threads = file.media_threads.unwrap_or(1);
        if !(1..=64).contains(&media_threads) {
            return Err(invalid(
                "media_threads",
                format!("{media_threads} is not between 1 and 64"),
            ));
        }
        let relay_id = match file.relay_id {
            Some(id) if valid_relay_id(&id) => Some(id),
            Some(id) => {
                return Err(invalid(
                    "relay_id",
                    format!("{id:?}: 1 to 64 letters, digits, '.', '_' or '-'"),
                ));
            }
            None => None,
        };
        let cluster_advertise = file
            .cluster_advertise
            .map(|text| parse_advertise(&text))
            .transpose()?;
        Ok(Config {
            listen,
            state_dir: o
                .state_dir
                .or(file.state_dir)
                .unwrap_or_else(default_state_dir),
            numbers,
            allow_provision: file.allow_provision.unwrap_or(true),
            allow_register: file.allow_register.unwrap_or(true),
            provision_burst: file.provision_burst.unwrap_or(20),
            provision_per_hour: file.provision_per_hour.unwrap_or(20),
            ring_timeout,
            max_message_bytes,
            mailbox_quota_bytes: mailbox_quota_kib << 10,
            max_file_bytes: max_file_mib << 20,
            keep_alive,
            idle_timeout,
            map_size_mib,
            max_connections,
            max_connections_per_address,
            login_timeout,
            min_free_space: file.min_free_space_mib.map(|m| m.saturating_mul(1 << 20)),
            max_partial_bytes: max_partial_mib.saturating_mul(1 << 20),
            partial_expiry: Duration::from_secs(partial_expiry_s),
            tls,
            metrics_listen,
            store,
            media_listen,
            media_advertise_port: file.media_advertise_port.filter(|p| *p != 0),
            media_threads,
            relay_id,
            cluster_advertise,
        })
    }
}

/// `cluster_advertise`: an IP address and a port other relays can reach (not a wildcard,
/// not port 0).
fn parse_advertise(text: &str) -> Result<SocketAddr, ConfigError> {
    let invalid = |key, message: String| ConfigError::Invalid { key, message };
    let addr: SocketAddr = text.parse().map_err(|_| {
        invalid(
            "cluster_advertise",
            format!("{text:?} is not an address like 10.0.0.1:7447"),
        )
    })?;
    if addr.ip().is_unspecified() || addr.port() == 0 {
        return Err(invalid(
            "cluster_advertise",
            format!("{text:?}: other relays need a real address and port to reach this one"),
        ));
    }
    Ok(addr)
}

/// A relay id: 1 to 64 letters, digits, `.`, `_` or `-` (it is a notification's
/// payload field, so no `:`).
fn valid_relay_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// systemd's `$STATE_DIRECTORY`, else `/var/lib/phone-relay` for root, else the XDG
/// state dir.
pub fn default_state_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    phoned_client::dirs::state_dir("phone-relay", root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.listen.port(), 7447);
        assert_eq!(c.numbers.to_string(), "1000-9999");
        assert_eq!(c.idle_timeout, Duration::from_secs(15));
        assert_eq!(c.keep_alive, Duration::from_secs(10));
        assert_eq!(c.max_connections_per_address, 16);
        assert_eq!(c.login_timeout, Duration::from_secs(10));
        assert_eq!(c.min_free_space, None);
        assert_eq!(c.max_partial_bytes, 1 << 30);
        assert_eq!(c.partial_expiry, Duration::from_secs(24 * 3600));
        assert_eq!(
            c.metrics_listen, None,
            "no metrics endpoint unless asked for"
        );
        // Two of the largest files fit in one mailbox.
        assert!(c.mailbox_quota_bytes >= 2 * c.max_file_bytes);
    }

    #[test]
    fn a_largest_file_above_the_quota_is_refused_naming_both_keys() {
        let err = Config::from_toml("mailbox_quota_kib = 65536\nmax_file_mib = 100")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("max_file_mib") && err.contains("mailbox_quota_kib"),
            "{err}"
        );
        assert!(err.contains("102400"), "names the quota needed: {err}");
        // The old default quota alone, with the default largest file, is refused too.
        assert!(Config::from_toml("mailbox_quota_kib = 65536").is_err());
        // Equal is fine, and 0 (no files) with any quota.
        let c = Config::from_toml("mailbox_quota_kib = 1024\nmax_file_mib = 1").unwrap();
        assert_eq!(c.max_file_bytes, c.mailbox_quota_bytes);
        Config::from_toml("mailbox_quota_kib = 8\nmax_file_mib = 0").unwrap();
    }

    #[test]
    fn the_shipped_config_is_valid() {
        let c = Config::from_toml(include_str!("../../config/phone-relay.toml")).unwrap();
        assert_eq!(c.listen.port(), 7447);
    }

    #[test]
    fn store_is_lmdb_or_a_postgres_url() {
        assert_eq!(Config::from_toml("").unwrap().store, Backend::Heed);
        assert_eq!(
            Config::from_toml("store = \"lmdb\"").unwrap().store,
            Backend::Heed
        );
        let c = Config::from_toml("store = \"postgres://relay:pw@db/phone\"").unwrap();
        let Backend::Postgres(url) = c.store else {
            panic!("{:?}", c.store)
        };
        assert_eq!(url.to_string(), "postgres://relay:***@db/phone");
    }

    #[test]
    fn the_media_plane_listens_next_to_quic_unless_off() {
        let c = Config::from_toml("listen = \"127.0.0.1:7447\"").unwrap();
        assert_eq!(c.media_listen, Some("127.0.0.1:7448".parse().unwrap()));
        assert_eq!(c.media_threads, 1);
        let c = Config::from_toml("listen = \"127.0.0.1:0\"").unwrap();
        assert_eq!(c.media_listen, Some("127.0.0.1:0".parse().unwrap()));
        let c = Config::from_toml("media_listen = \"off\"").unwrap();
        assert_eq!(c.media_listen, None);
        let c = Config::from_toml("media_listen = \"[::]:9000\"\nmedia_advertise_port = 19000")
            .unwrap();
        assert_eq!(c.media_listen.unwrap().port(), 9000);
        assert_eq!(c.media_advertise_port, Some(19000));
        for bad in [
            "media_listen = \"on\"",
            "media_threads = 0",
            "listen = \"0.0.0.0:65535\"",
        ] {
            assert!(Config::from_toml(bad).is_err(), "{bad}");
        }
        assert!(Config::from_toml("listen = \"0.0.0.0:65535\"\nmedia_listen = \"off\"").is_ok());
    }

    #[test]
    fn metrics_listen_is_an_address() {
        let c = Config::from_toml("metrics_listen = \"127.0.0.1:9447\"").unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9447".parse().unwrap()));
        let c = Config::from_toml("metrics_listen = \"[::1]:9447\"").unwrap();
        assert_eq!(c.metrics_listen.unwrap().port(), 9447);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("listen = \"nowhere\"", "listen"),
            ("numbers = \"9-1\"", "numbers"),
            ("idle_timeout_ms = 10", "idle_timeout_ms"),
            ("map_size_mib = 1", "map_size_mib"),
            ("tls_cert = \"/x\"", "tls_cert"),
            (
                "max_connections_per_address = 0",
                "max_connections_per_address",
            ),
            ("login_timeout_ms = 10", "login_timeout_ms"),
            ("max_partial_mib = 0", "max_partial_mib"),
            ("partial_expiry_s = 0", "partial_expiry_s"),
            ("metrics_listen = \"9447\"", "metrics_listen"),
            ("metrics_listen = \"localhost:9447\"", "metrics_listen"),
            ("store = \"sqlite:///x\"", "store"),
            ("store = \"postgres://u@h/db?sslmode=maybe\"", "store"),
            (
                "store = \"postgres://u@h/db?sslmode=require&sslrootcert=/nonexistent/ca.pem\"",
                "store",
            ),
            ("relay_id = \"a:b\"", "relay_id"),
            ("relay_id = \"\"", "relay_id"),
            ("cluster_advertise = \"relay1:7447\"", "cluster_advertise"),
            ("cluster_advertise = \"0.0.0.0:7447\"", "cluster_advertise"),
            ("cluster_advertise = \"10.0.0.1:0\"", "cluster_advertise"),
        ] {
            let err = Config::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
        let err = Config::from_toml("colour = 1").unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
    }
}

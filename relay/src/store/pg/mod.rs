//! The PostgreSQL backend: the relay's state in tables (see [`schema`]), so that it lives
//! in an engine that is replicated and backed up with the usual tools, and so that
//! several relays can share it.
//!
//! The client is the blocking `postgres` crate, called where the relay already calls the
//! store: on the blocking thread pool (and on the committer's own thread). Each connection
//! carries a small current-thread tokio runtime that only runs inside those calls; the
//! relay's own tasks stay on smol. A fixed-size pool hands connections out; a connection
//! that broke is dropped and a new one opened on the next use, so the relay rides out a
//! restart of PostgreSQL (meanwhile every operation fails with
//! [`StoreError::Unavailable`]).
//!
//! Every account change is one transaction that also bumps the `revision` counter; a
//! number change relies on the UNIQUE constraint on `accounts.number`, so of N concurrent
//! changes to one number (from any number of relays) exactly one commits.

mod blobs;
pub mod commit;
mod directory;
mod import;
pub mod leases;
mod messages;
pub mod schema;
mod tls;

pub use blobs::CHUNK as BLOB_CHUNK;
pub use import::Imported;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use postgres::{GenericClient, NoTls, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::StoreError;

/// Connections one relay holds at most (besides the committer's own).
pub const POOL_SIZE: usize = 16;
/// How long opening a connection may take before the operation fails as unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A PostgreSQL connection URL (`postgres://user:password@host:port/db?options`, a unix
/// socket directory percent-encoded as the host), with its TLS connector when it asks for
/// TLS ([`tls`]). Shown without its password.
#[derive(Clone)]
pub struct Url {
    text: String,
    /// What `postgres::Config` reads: `text` without our TLS parameters.
    pg: String,
    tls: Option<MakeRustlsConnect>,
}

impl PartialEq for Url {
    fn eq(&self, other: &Url) -> bool {
        self.text == other.text
    }
}

impl Eq for Url {}

impl FromStr for Url {
    type Err = String;

    fn from_str(s: &str) -> Result<Url, String> {
        if !(s.starts_with("postgres://") || s.starts_with("postgresql://")) {
            return Err(format!(
                "{:?} is not a PostgreSQL URL like postgres://phone-relay@localhost/phone",
                Redacted(s).to_string()
            ));
        }
        let wanted = tls::split(s)?;
        postgres::Config::from_str(&wanted.url).map_err(|e| e.to_string())?;
        Ok(Url {
            text: s.to_owned(),
            pg: wanted.url,
            tls: wanted
                .tls
                .map(|roots| tls::connector(roots.as_deref()))
                .transpose()?,
        })
    }
}

impl Url {
    /// The URL as given, password included (for connecting, never for logs).
    pub fn secret(&self) -> &str {
        &self.text
    }

    /// Whether connections go over TLS (the URL requires it).
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    fn target(&self) -> Result<Target, StoreError> {
        let mut config =
            postgres::Config::from_str(&self.pg).map_err(|e| StoreError::Schema(e.to_string()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("phone-relay");
        }
        Ok(Target {
            config,
            tls: self.tls.clone(),
        })
    }
}

/// Where and how to connect.
pub(crate) struct Target {
    config: postgres::Config,
    tls: Option<MakeRustlsConnect>,
}

impl Target {
    /// A new connection, over TLS when the URL asked for it.
    pub(crate) fn connect(&self) -> Result<postgres::Client, postgres::Error> {
        match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(NoTls),
        }
    }
}

/// A URL shown without its password.
struct Redacted<'a>(&'a str);

impl fmt::Display for Url {
    /// The URL with any password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Redacted(&self.text).fmt(f)
    }
}

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let Some(scheme_end) = s.find("://").map(|i| i + 3) else {
            return f.write_str(s);
        };
        let rest = &s[scheme_end..];
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        match rest[..auth_end].rfind('@') {
            Some(at) => match rest[..at].find(':') {
                Some(colon) => write!(
                    f,
                    "{}{}:***{}",
                    &s[..scheme_end],
                    &rest[..colon],
                    &rest[at..]
                ),
                None => f.write_str(s),
            },
            None => f.write_str(s),
        }
    }
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Url({self})")
    }
}

/// One connection and the statements prepared on it.
pub(crate) struct Conn {
    pub client: postgres::Client,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    fn open(target: &Target) -> Result<Conn, StoreError> {
        let client = target.connect()?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }
}

/// `sql` prepared on `client` once per connection, then reused (each prepare is a round
/// trip). `client` is the connection of `cache` or a transaction on it.
pub(crate) fn prepared(
    cache: &mut HashMap<&'static str, Statement>,
    client: &mut impl GenericClient,
    sql: &'static str,
) -> Result<Statement, StoreError> {
    if let Some(s) = cache.get(sql) {
        return Ok(s.clone());
    }
    let s = client.prepare(sql)?;
    cache.insert(sql, s.clone());
    Ok(s)
}

struct PoolState {
    idle: Vec<Conn>,
    /// Connections open, idle or lent out.
    open: usize,
}

struct Pool {
    config: Target,
    state: Mutex<PoolState>,
    freed: Condvar,
}

/// A connection lent out by the pool; back to it when dropped, unless it broke.
pub(crate) struct Lent<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
}

impl std::ops::Deref for Lent<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("lent connection")
    }
}

impl std::ops::DerefMut for Lent<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("lent connection")
    }
}

impl Lent<'_> {
    /// The connection and its statement cache, apart (to use both in a transaction).
    pub fn parts(&mut self) -> (&mut postgres::Client, &mut HashMap<&'static str, Statement>) {
        let conn = self.conn.as_mut().expect("lent connection");
        (&mut conn.client, &mut conn.statements)
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let mut state = crate::shared::lock(&self.pool.state);
        if conn.client.is_closed() {
            state.open -= 1;
        } else {
            state.idle.push(conn);
        }
        drop(state);
        self.pool.freed.notify_one();
    }
}

impl Pool {
    fn get(&self) -> Result<Lent<'_>, StoreError> {
        let mut state = crate::shared::lock(&self.state);
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(Lent {
                    pool: self,
                    conn: Some(conn),
                });
            }
            if state.open < POOL_SIZE {
                state.open += 1;
                drop(state);
                return match Conn::open(&self.config) {
                    Ok(conn) => Ok(Lent {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        crate::shared::lock(&self.state).open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            state = self.freed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The PostgreSQL store: a pool of connections. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: Arc<Pool>,
    url: Url,
    /// The relay's id in a cluster, named in the notifications it sends ("" outside a
    /// relay: the admin CLI).
    relay: Arc<str>,
}

impl PgStore {
    /// Connects and brings the schema up to date ([`schema::migrate`]).
    pub fn open(url: &Url) -> Result<PgStore, StoreError> {
        let store = PgStore {
            pool: Arc::new(Pool {
                config: url.target()?,
                state: Mutex::new(PoolState {
                    idle: Vec::new(),
                    open: 0,
                }),
                freed: Condvar::new(),
            }),
            url: url.clone(),
            relay: Arc::from(""),
        };
        {
            let mut conn = store.conn()?;
            schema::migrate(&mut conn.client)?;
        }
        Ok(store)
    }

    /// The same store, sending notifications as relay `id`.
    pub fn with_relay_id(mut self, id: &str) -> PgStore {
        self.relay = Arc::from(id);
        self
    }

    /// The relay id its notifications name.
    pub fn relay_id(&self) -> &str {
        &self.relay
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// A connection from the pool.
    pub(crate) fn conn(&self) -> Result<Lent<'_>, StoreError> {
        self.pool.get()
    }

    /// A new connection of its own, outside the pool (the committer's).
    pub(crate) fn connect(&self) -> Result<Conn, StoreError> {
        Conn::open(&self.pool.config)
    }

    /// The accounts revision: changes whenever any account changes, on any relay.
    pub fn revision(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn()?;
        let (client, cache) = conn.parts();
        let st = prepared(
            cache,
            client,
            "SELECT value FROM counters WHERE name = 'revision'",
        )?;
        let v: i64 = client.query_one(&st, &[])?.get(0);
        Ok(v as u64)
    }
}

/// A u64 as PostgreSQL's BIGINT (ids and sizes stay far below 2^63).
pub(crate) fn big(v: u64) -> i64 {
    v as i64
}

/// Whether `e` is a UNIQUE violation.
pub(crate) fn unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
}

#[cfg(test)]
mod tests {
    use super::Url;

    #[test]
    fn urls_are_checked_and_shown_without_their_password() {
        let u: Url = "postgres://relay:s3cret@db.example:5432/phone"
            .parse()
            .unwrap();
        assert_eq!(u.to_string(), "postgres://relay:***@db.example:5432/phone");
        assert!(!format!("{u:?}").contains("s3cret"));
        let u: Url = "postgresql://relay@%2Frun%2Fpostgresql/phone"
            .parse()
            .unwrap();
        assert_eq!(
            u.to_string(),
            "postgresql://relay@%2Frun%2Fpostgresql/phone"
        );
        assert!("mysql://x@y/z".parse::<Url>().is_err());
        assert!("postgres://x@y/z?sslmode=nonsense".parse::<Url>().is_err());
    }
}

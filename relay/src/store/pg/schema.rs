//! The PostgreSQL schema and its migrations: numbered steps, each applied once in one
//! transaction together with its row in `schema_version`. Every relay runs
//! [`migrate`] at start; an advisory lock makes relays that start together take turns,
//! and a database that a newer relay has migrated further is refused rather than used.
//!
//! Tables (version 1):
//! - `counters`: `account` and `message`, the next ids to give out, and `revision`,
//!   bumped by every account change. Taking an id updates its row, whose lock is held to
//!   the commit: ids are given out in commit order, across relays too.
//! - `accounts`: one row per account, `number` UNIQUE.
//! - `inbox`: items waiting for their recipient, `item` the postcard encoding of
//!   [`crate::store::Item`] (its id is the `id` column); `file_sha256` for files.
//! - `sent_ids`: (sender, client id) → message id, for idempotent retries.
//! - `receipts`: delivery receipts waiting for the sender.
//! - `mailbox_usage`: bytes waiting per recipient, against the quota.
//! - `blobs`: file contents by SHA-256, in chunks of [`super::blobs::CHUNK`] bytes.
//!
//! Version 2:
//! - `leases`: presence across relays, one row per logged-in session (relay id, the
//!   relay's session id) → account, valid until `expires_at`; each relay renews its own
//!   in one statement every few seconds (see [`crate::cluster`]).
//!
//! Version 3:
//! - `leases.peer`: the relay-link address (`cluster_advertise`) of the relay holding the
//!   lease, where another relay opens a link to call the device (NULL: not reachable).

use postgres::Client;

use crate::store::StoreError;

/// Arbitrary key of the advisory lock migrations hold ("phon").
const LOCK_KEY: i64 = 0x7068_6f6e;

/// The migrations, in order; a step's number is its index plus one. Never edit a step
/// that has shipped: add one.
pub const MIGRATIONS: &[&str] = &[
    // 1: the relay's state as the embedded store holds it.
    "CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        value BIGINT NOT NULL
    );
    INSERT INTO counters (name, value) VALUES ('account', 1), ('message', 1), ('revision', 0);
    CREATE TABLE accounts (
        id BIGINT PRIMARY KEY,
        number TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        disabled BOOLEAN NOT NULL DEFAULT FALSE,
        last_seen_ms BIGINT NOT NULL,
        epoch BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE inbox (
        recipient BIGINT NOT NULL,
        id BIGINT NOT NULL,
        sender BIGINT NOT NULL,
        client_id TEXT NOT NULL,
        size BIGINT NOT NULL,
        item BYTEA NOT NULL,
        file_sha256 BYTEA,
        PRIMARY KEY (recipient, id)
    );
    CREATE INDEX inbox_files ON inbox (file_sha256) WHERE file_sha256 IS NOT NULL;
    CREATE TABLE sent_ids (
        sender BIGINT NOT NULL,
        client_id TEXT NOT NULL,
        id BIGINT NOT NULL,
        PRIMARY KEY (sender, client_id)
    );
    CREATE TABLE receipts (
        sender BIGINT NOT NULL,
        id BIGINT NOT NULL,
        client_id TEXT NOT NULL,
        PRIMARY KEY (sender, id)
    );
    CREATE TABLE mailbox_usage (
        account BIGINT PRIMARY KEY,
        bytes BIGINT NOT NULL
    );
    CREATE TABLE blobs (
        sha256 BYTEA NOT NULL,
        chunk INTEGER NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (sha256, chunk)
    );",
    // 2: presence as leases, for several relays on one database.
    "CREATE TABLE leases (
        relay TEXT NOT NULL,
        session BIGINT NOT NULL,
        account BIGINT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (relay, session)
    );
    CREATE INDEX leases_account ON leases (account);",
    // 3: where other relays reach the relay holding a lease, for calls between relays.
    "ALTER TABLE leases ADD COLUMN peer TEXT;",
];

/// The schema version this relay works with.
pub fn latest() -> i32 {
    MIGRATIONS.len() as i32
}

/// Brings the database to [`latest`]; returns the version it was at. Idempotent.
pub fn migrate(client: &mut Client) -> Result<i32, StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )?;
    let found: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])?
        .get(0);
    if found > latest() {
        return Err(StoreError::Schema(format!(
            "the database is at schema version {found}, newer than this relay's {}: \
             upgrade the relay",
            latest()
        )));
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = i as i32 + 1;
        tx.batch_execute(step)
            .map_err(|e| StoreError::Schema(format!("migration {version}: {e}")))?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&version],
        )?;
        tracing::info!(version, "database schema migrated");
    }
    tx.commit()?;
    Ok(found)
}

//! `phone-relay admin`: account management on the relay's store. Safe while the relay
//! runs (LMDB is multi-process, PostgreSQL is shared); the relay applies changes to live
//! sessions within a fraction of a second.

use std::io::{Read, Write};
use std::time::{Duration, UNIX_EPOCH};

use phoned_proto::Number;
use phoned_proto::ident::{check_display_name, check_password};
use serde::Serialize;
use thiserror::Error;

use crate::password;
use crate::server::unix_ms;
use crate::store::{Account, NewNumber, Store, StoreError};

#[derive(Debug, Error)]
pub enum AdminError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("reading the password from stdin: {0}")]
    Stdin(std::io::Error),
    #[error("hashing the password: {0}")]
    Hash(String),
}

#[derive(Serialize)]
struct UserJson<'a> {
    number: &'a str,
    display_name: &'a str,
    created_ms: u64,
    last_seen_ms: u64,
    disabled: bool,
}

fn number(text: &str) -> Result<Number, AdminError> {
    text.parse()
        .map_err(|e: phoned_proto::IdentError| AdminError::Invalid(e.to_string()))
}

fn existing(store: &Store, text: &str) -> Result<Account, AdminError> {
    let n = number(text)?;
    store
        .account_by_number(n.as_str())?
        .ok_or_else(|| AdminError::Store(StoreError::NotFound(n.to_string())))
}

fn date(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Writes the account list, as a table or as JSON.
pub fn list(store: &Store, json: bool, out: &mut dyn Write) -> Result<(), AdminError> {
    let accounts = store.accounts()?;
    let w = |e: std::io::Error| AdminError::Invalid(format!("writing output: {e}"));
    if json {
        let rows: Vec<UserJson> = accounts
            .iter()
            .map(|a| UserJson {
                number: &a.number,
                display_name: &a.display_name,
                created_ms: a.created_ms,
                last_seen_ms: a.last_seen_ms,
                disabled: a.disabled,
            })
            .collect();
        let text =
            serde_json::to_string_pretty(&rows).map_err(|e| AdminError::Invalid(e.to_string()))?;
        writeln!(out, "{text}").map_err(w)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<16} {:<24} {:<21} {:<21} STATUS",
        "NUMBER", "NAME", "CREATED", "LAST SEEN"
    )
    .map_err(w)?;
    for a in &accounts {
        let status = if a.disabled { "disabled" } else { "enabled" };
        writeln!(
            out,
            "{:<16} {:<24} {:<21} {:<21} {status}",
            a.number,
            a.display_name,
            date(a.created_ms),
            date(a.last_seen_ms)
        )
        .map_err(w)?;
    }
    Ok(())
}

/// A password from stdin (first line, without its newline), or a new random one.
/// Returns the password and whether it was generated (and so must be shown).
pub fn password_from(stdin: bool) -> Result<(String, bool), AdminError> {
    if stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(AdminError::Stdin)?;
        let line = text.lines().next().unwrap_or_default().to_owned();
        check_password(&line).map_err(|e| AdminError::Invalid(e.to_string()))?;
        return Ok((line, false));
    }
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| AdminError::Hash(e.to_string()))?;
    Ok((bytes.iter().map(|b| format!("{b:02x}")).collect(), true))
}

fn hash(password: &str) -> Result<String, AdminError> {
    password::hash(password).map_err(|e| AdminError::Hash(e.to_string()))
}

pub fn add(store: &Store, num: &str, name: &str, password: &str) -> Result<Account, AdminError> {
    let n = number(num)?;
    check_display_name(name).map_err(|e| AdminError::Invalid(e.to_string()))?;
    let h = hash(password)?;
    Ok(store.create_account(NewNumber::Exact(&n), name, &h, unix_ms())?)
}

pub fn set_disabled(store: &Store, num: &str, disabled: bool) -> Result<Account, AdminError> {
    let a = existing(store, num)?;
    Ok(store.set_disabled(a.id, disabled)?)
}

pub fn delete(store: &Store, num: &str) -> Result<Account, AdminError> {
    let n = number(num)?;
    Ok(store.delete_account(n.as_str())?)
}

pub fn set_number(store: &Store, old: &str, new: &str) -> Result<Account, AdminError> {
    let a = existing(store, old)?;
    let n = number(new)?;
    Ok(store.change_number(a.id, &n)?)
}

/// Sets a new password and closes the account's live sessions.
pub fn reset_password(store: &Store, num: &str, password: &str) -> Result<Account, AdminError> {
    let a = existing(store, num)?;
    let h = hash(password)?;
    Ok(store.set_password_hash(a.id, &h, true)?)
}

/// Copies the embedded store (and the blobs in `state_dir`) into the empty PostgreSQL
/// database `pg` (`phone-relay admin migrate`). The relay should be stopped: what it
/// writes after the snapshot is not copied.
pub fn migrate(
    heed: &crate::store::heed::HeedStore,
    state_dir: &std::path::Path,
    pg: &crate::store::pg::PgStore,
) -> Result<crate::store::pg::Imported, AdminError> {
    let snapshot = heed.snapshot()?;
    Ok(pg.import(&snapshot, state_dir)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Heed(crate::store::heed::HeedStore::open(dir.path(), 16).unwrap());
        add(&store, "1042", "Alice", "password1").unwrap();
        assert!(matches!(
            add(&store, "1042", "Bob", "password1"),
            Err(AdminError::Store(StoreError::NumberTaken(_)))
        ));
        assert!(matches!(
            add(&store, "x", "Bob", "password1"),
            Err(AdminError::Invalid(_))
        ));
        set_number(&store, "1042", "2042").unwrap();
        assert!(set_disabled(&store, "2042", true).unwrap().disabled);
        let mut out = Vec::new();
        list(&store, true, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[0]["number"], "2042");
        assert_eq!(v[0]["disabled"], true);
        let a = reset_password(&store, "2042", "newpassword").unwrap();
        assert!(password::verify("newpassword", &a.password_hash));
        delete(&store, "2042").unwrap();
        assert!(matches!(
            delete(&store, "2042"),
            Err(AdminError::Store(StoreError::NotFound(_)))
        ));
    }
}

//! Accounts and numbers in PostgreSQL. Every change is one transaction that bumps the
//! revision; the UNIQUE constraint on `accounts.number` decides number races.

use std::collections::HashSet;

use phoned_proto::{Number, NumberRange};
use postgres::Row;

use super::{PgStore, big, prepared, unique_violation};
use crate::store::model::{random_probes, scan};
use crate::store::{Account, AccountId, NewNumber, StoreError};

const COLUMNS: &str =
    "id, number, display_name, password_hash, created_ms, disabled, last_seen_ms, epoch";

/// Provisioning tries again this often when another relay took its free number first.
const CREATE_TRIES: u32 = 8;

fn account(row: &Row) -> Account {
    Account {
        id: row.get::<_, i64>(0) as u64,
        number: row.get(1),
        display_name: row.get(2),
        password_hash: row.get(3),
        created_ms: row.get::<_, i64>(4) as u64,
        disabled: row.get(5),
        last_seen_ms: row.get::<_, i64>(6) as u64,
        epoch: row.get::<_, i64>(7) as u32,
    }
}

const BUMP_REVISION: &str = "UPDATE counters SET value = value + 1 WHERE name = 'revision'";

impl PgStore {
    /// Creates an account; fails with `NumberTaken` or `NumbersExhausted`.
    pub fn create_account(
        &self,
        number: NewNumber<'_>,
        display_name: &str,
        password_hash: &str,
        now_ms: u64,
    ) -> Result<Account, StoreError> {
        match number {
            NewNumber::Exact(n) => self.insert_account(n, display_name, password_hash, now_ms),
            NewNumber::FromRange(range, seed) => {
                let mut seed = seed;
                for _ in 0..CREATE_TRIES {
                    let n = self.free_number(range, seed)?;
                    match self.insert_account(&n, display_name, password_hash, now_ms) {
                        // Taken meanwhile by another relay or thread: pick again.
                        Err(StoreError::NumberTaken(_)) => {
                            seed = seed.wrapping_mul(31).wrapping_add(7)
                        }
                        other => return other,
                    }
                }
                Err(StoreError::NumbersExhausted(range.to_string()))
            }
        }
    }

    fn insert_account(
        &self,
        number: &Number,
        display_name: &str,
        password_hash: &str,
        now_ms: u64,
    ) -> Result<Account, StoreError> {
        let mut conn = self.conn()?;
        let (client, cache) = conn.parts();
        let mut tx = client.transaction()?;
        let sql = "WITH n AS (UPDATE counters SET value = value + 1 WHERE name = 'account' \
                   RETURNING value - 1 AS id) \
                   INSERT INTO accounts (id, number, display_name, password_hash, created_ms, \
                   disabled, last_seen_ms, epoch) \
                   SELECT n.id, $1, $2, $3, $4, FALSE, $4, 0 FROM n \
                   RETURNING id, number, display_name, password_hash, created_ms, disabled, \
                   last_seen_ms, epoch";
        let st = prepared(cache, &mut tx, sql)?;
        let row = match tx.query_one(
            &st,
            &[
                &number.as_str(),
                &display_name,
                &password_hash,
                &big(now_ms),
            ],
        ) {
            Ok(row) => row,
            Err(e) if unique_violation(&e) => {
                return Err(StoreError::NumberTaken(number.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        let bump = prepared(cache, &mut tx, BUMP_REVISION)?;
        tx.execute(&bump, &[])?;
        tx.commit()?;
        Ok(account(&row))
    }

    /// A number of `range` no account has, as the embedded store picks it: random probes
    /// first, then a scan.
    fn free_number(&self, range: NumberRange, seed: u64) -> Result<Number, StoreError> {
        let mut conn = self.conn()?;
        let (client, cache) = conn.parts();
        let probes: Vec<Number> = random_probes(range, seed).collect();
        let texts: Vec<&str> = probes.iter().map(Number::as_str).collect();
        let st = prepared(
            cache,
            client,
            "SELECT number FROM accounts WHERE number = ANY($1)",
        )?;
        let taken: HashSet<String> = client
            .query(&st, &[&texts])?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if let Some(n) = probes.into_iter().find(|n| !taken.contains(n.as_str())) {
            return Ok(n);
        }
        // A nearly full range: every number taken, once, then the scan in memory.
        let all: HashSet<String> = client
            .query("SELECT number FROM accounts", &[])?
            .iter()
            .map(|r| r.get(0))
            .collect();
        scan(range, seed)
            .find(|n| !all.contains(n.as_str()))
            .ok_or_else(|| StoreError::NumbersExhausted(range.to_string()))
    }

    pub fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        let mut conn = self.conn()?;
        let (client, cache) = conn.parts();
        let st = prepared(
            cache,
            client,
            "SELECT id, number, display_name, password_hash, created_ms, disabled, last_seen_ms, epoch FROM accounts WHERE id = $1",
        )?;
        Ok(client.query_opt(&st, &[&big(id)])?.as_ref().map(account))
    }

    pub fn account_by_number(&self, number: &str) -> Result<Option<Account>, StoreError> {
        let mut conn = self.conn()?;
        let (client, cache) = conn.parts();
        let st = prepared(
            cache,
            client,
            "SELECT id, number, display_name, password_hash, created_ms, disabled, last_seen_ms, epoch FROM accounts WHERE number = $1",
        )?;
        Ok(client.query_opt(&st, &[&number])?.as_ref().map(account))
    }

    /// All accounts, ordered by number (bytewise, as the embedded store orders them).
    pub fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let mut conn = self.conn()?;
        let rows = conn.client.query(
            &format!("SELECT {COLUMNS} FROM accounts ORDER BY number COLLATE \"C\""),
            &[],
        )?;
        Ok(rows.iter().map(account).collect())
    }

    /// Reads, changes and writes one account in a single transaction (the row locked).
    pub(in crate::store) fn update(
        &self,
        id: AccountId,
        change: impl FnOnce(&mut Account),
    ) -> Result<Account, StoreError> {
        let mut conn = self.conn()?;
        let (client, cache) = conn.parts();
        let mut tx = client.transaction()?;
        let st = prepared(
            cache,
            &mut tx,
            "SELECT id, number, display_name, password_hash, created_ms, disabled, last_seen_ms, epoch FROM accounts WHERE id = $1 FOR UPDATE",
        )?;
        let mut a = tx
            .query_opt(&st, &[&big(id)])?
            .as_ref()
            .map(account)
            .ok_or_else(|| StoreError::NotFound(format!("#{id}")))?;
        change(&mut a);
        let st = prepared(
            cache,
            &mut tx,
            "UPDATE accounts SET display_name = $2, password_hash = $3, disabled = $4, \
             epoch = $5 WHERE id = $1",
        )?;
        tx.execute(
            &st,
            &[
                &big(id),
                &a.display_name,
                &a.password_hash,
                &a.disabled,
                &i64::from(a.epoch),
            ],
        )?;
        let bump = prepared(cache, &mut tx, BUMP_REVISION)?;
        tx.execute(&bump, &[])?;
        tx.commit()?;
        Ok(a)
    }

    /// Moves an account to `new`. The UNIQUE constraint decides a race: a second
    /// transaction that wants the number waits for the first, then fails.
    pub fn change_number(&self, id: AccountId, new: &Number) -> Result<Account, StoreError> {
        let mut conn = self.conn()?;
        let (client, cache) = conn.parts();
        let mut tx = client.transaction()?;
        let st = prepared(
            cache,
            &mut tx,
            "UPDATE accounts SET number = $2 WHERE id = $1 \
             RETURNING id, number, display_name, password_hash, created_ms, disabled, \
             last_seen_ms, epoch",
        )?;
        let row = match tx.query_opt(&st, &[&big(id), &new.as_str()]) {
            Ok(Some(row)) => row,
            Ok(None) => return Err(StoreError::NotFound(format!("#{id}"))),
            Err(e) if unique_violation(&e) => return Err(StoreError::NumberTaken(new.to_string())),
            Err(e) => return Err(e.into()),
        };
        let bump = prepared(cache, &mut tx, BUMP_REVISION)?;
        tx.execute(&bump, &[])?;
        tx.commit()?;
        Ok(account(&row))
    }

    /// Records when the account was last online. Does not bump the revision.
    pub fn touch(&self, id: AccountId, now_ms: u64) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let (client, cache) = conn.parts();
        let st = prepared(
            cache,
            client,
            "UPDATE accounts SET last_seen_ms = $2 WHERE id = $1",
        )?;
        client.execute(&st, &[&big(id), &big(now_ms)])?;
        Ok(())
    }

    /// Deletes the account with `number` and frees the number.
    pub fn delete_account(&self, number: &str) -> Result<Account, StoreError> {
        let mut conn = self.conn()?;
        let (client, cache) = conn.parts();
        let mut tx = client.transaction()?;
        let st = prepared(
            cache,
            &mut tx,
            "DELETE FROM accounts WHERE number = $1 \
             RETURNING id, number, display_name, password_hash, created_ms, disabled, \
             last_seen_ms, epoch",
        )?;
        let a = tx
            .query_opt(&st, &[&number])?
            .as_ref()
            .map(account)
            .ok_or_else(|| StoreError::NotFound(number.to_owned()))?;
        let bump = prepared(cache, &mut tx, BUMP_REVISION)?;
        tx.execute(&bump, &[])?;
        tx.commit()?;
        Ok(a)
    }
}

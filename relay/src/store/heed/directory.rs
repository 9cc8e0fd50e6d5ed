//! Accounts and the number index. Every operation is one LMDB transaction, so a number
//! change or a provisioning is atomic against other threads and other processes.

use phoned_proto::{Number, NumberRange};

use super::{HeedStore, META_NEXT_ID};
use crate::store::model::{random_probes, scan};
use crate::store::{Account, AccountId, NewNumber, StoreError};

impl HeedStore {
    /// Creates an account; fails with `NumberTaken` or `NumbersExhausted`.
    pub fn create_account(
        &self,
        number: NewNumber<'_>,
        display_name: &str,
        password_hash: &str,
        now_ms: u64,
    ) -> Result<Account, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let number = match number {
            NewNumber::Exact(n) => {
                if self.numbers.get(&wtxn, n.as_str())?.is_some() {
                    return Err(StoreError::NumberTaken(n.to_string()));
                }
                n.clone()
            }
            NewNumber::FromRange(range, seed) => self.free_number(&wtxn, range, seed)?,
        };
        let id = self.meta.get(&wtxn, META_NEXT_ID)?.unwrap_or(1);
        self.meta.put(&mut wtxn, META_NEXT_ID, &(id + 1))?;
        let account = Account {
            id,
            number: number.to_string(),
            display_name: display_name.to_owned(),
            password_hash: password_hash.to_owned(),
            created_ms: now_ms,
            disabled: false,
            last_seen_ms: now_ms,
            epoch: 0,
        };
        self.numbers.put(&mut wtxn, number.as_str(), &id)?;
        self.accounts.put(&mut wtxn, &id, &account)?;
        self.bump_revision(&mut wtxn)?;
        wtxn.commit()?;
        Ok(account)
    }

    fn free_number(
        &self,
        txn: &heed::RoTxn,
        range: NumberRange,
        seed: u64,
    ) -> Result<Number, StoreError> {
        for n in random_probes(range, seed).chain(scan(range, seed)) {
            if self.numbers.get(txn, n.as_str())?.is_none() {
                return Ok(n);
            }
        }
        Err(StoreError::NumbersExhausted(range.to_string()))
    }

    pub fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        let rtxn = self.env.read_txn()?;
        Ok(self.accounts.get(&rtxn, &id)?)
    }

    pub fn account_by_number(&self, number: &str) -> Result<Option<Account>, StoreError> {
        let rtxn = self.env.read_txn()?;
        match self.numbers.get(&rtxn, number)? {
            Some(id) => Ok(self.accounts.get(&rtxn, &id)?),
            None => Ok(None),
        }
    }

    /// All accounts, ordered by number.
    pub fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for entry in self.numbers.iter(&rtxn)? {
            let (_, id) = entry?;
            if let Some(a) = self.accounts.get(&rtxn, &id)? {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Reads, changes and writes one account in a single transaction.
    pub(in crate::store) fn update(
        &self,
        id: AccountId,
        change: impl FnOnce(&mut Account),
    ) -> Result<Account, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let mut account = self
            .accounts
            .get(&wtxn, &id)?
            .ok_or_else(|| StoreError::NotFound(format!("#{id}")))?;
        change(&mut account);
        self.accounts.put(&mut wtxn, &id, &account)?;
        self.bump_revision(&mut wtxn)?;
        wtxn.commit()?;
        Ok(account)
    }

    /// Moves an account to `new`: one transaction over the number index, so of many
    /// concurrent requests for one free number exactly one wins.
    pub fn change_number(&self, id: AccountId, new: &Number) -> Result<Account, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let mut account = self
            .accounts
            .get(&wtxn, &id)?
            .ok_or_else(|| StoreError::NotFound(format!("#{id}")))?;
        if account.number == new.as_str() {
            return Ok(account);
        }
        if self.numbers.get(&wtxn, new.as_str())?.is_some() {
            return Err(StoreError::NumberTaken(new.to_string()));
        }
        self.numbers.delete(&mut wtxn, &account.number)?;
        self.numbers.put(&mut wtxn, new.as_str(), &id)?;
        account.number = new.to_string();
        self.accounts.put(&mut wtxn, &id, &account)?;
        self.bump_revision(&mut wtxn)?;
        wtxn.commit()?;
        Ok(account)
    }

    /// Records when the account was last online. Does not bump the revision.
    pub fn touch(&self, id: AccountId, now_ms: u64) -> Result<(), StoreError> {
        let mut wtxn = self.env.write_txn()?;
        if let Some(mut a) = self.accounts.get(&wtxn, &id)? {
            a.last_seen_ms = now_ms;
            self.accounts.put(&mut wtxn, &id, &a)?;
            wtxn.commit()?;
        }
        Ok(())
    }

    /// Deletes the account with `number` and frees the number.
    pub fn delete_account(&self, number: &str) -> Result<Account, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let id = self
            .numbers
            .get(&wtxn, number)?
            .ok_or_else(|| StoreError::NotFound(number.to_owned()))?;
        let account = self
            .accounts
            .get(&wtxn, &id)?
            .ok_or_else(|| StoreError::NotFound(number.to_owned()))?;
        self.numbers.delete(&mut wtxn, number)?;
        self.accounts.delete(&mut wtxn, &id)?;
        self.bump_revision(&mut wtxn)?;
        wtxn.commit()?;
        Ok(account)
    }
}

//! Contacts: add, rename, remove, list, look up, and import many at once. Names are
//! unique ignoring case (so `dial alice` is never ambiguous) and so are numbers.

use phoned_proto::Number;
use phoned_proto::ident::check_display_name;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub id: u64,
    pub name: String,
    pub number: String,
}

#[derive(Debug, Error)]
pub enum ContactError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid contact name {name:?}: {why}")]
    InvalidName { name: String, why: String },
    #[error("invalid number {0:?}: use 2 to 15 digits, not starting with 0")]
    InvalidNumber(String),
    #[error("number {number} is already saved as {existing:?}")]
    DuplicateNumber { number: String, existing: String },
    #[error("a contact named {0:?} already exists")]
    DuplicateName(String),
    #[error("no contact {0:?}")]
    NotFound(String),
    #[error("{0:?} is neither a number nor a contact")]
    NoRecipient(String),
    #[error("{} problems in the import, nothing imported: {}", .0.len(), .0.join("; "))]
    Import(Vec<String>),
}

const NEXT_ID: &str = "next_contact_id";

fn key(name: &str) -> String {
    name.trim().to_lowercase()
}

fn encode(c: &Contact) -> Vec<u8> {
    postcard::to_allocvec(c).unwrap_or_default()
}

fn decode(bytes: &[u8]) -> Result<Contact, StoreError> {
    postcard::from_bytes(bytes).map_err(StoreError::Corrupt)
}

/// A checked name and number, ready to store.
fn checked(name: &str, number: &str) -> Result<(String, String), ContactError> {
    let name = name.trim().to_owned();
    check_display_name(&name).map_err(|e| ContactError::InvalidName {
        name: name.chars().take(64).collect(),
        why: e.to_string(),
    })?;
    let number = number.trim();
    let n: Number = number
        .parse()
        .map_err(|_| ContactError::InvalidNumber(number.chars().take(32).collect()))?;
    Ok((name, n.to_string()))
}

impl Store {
    fn all_contacts(&self, rtxn: &heed::RoTxn) -> Result<Vec<Contact>, StoreError> {
        let mut out = Vec::new();
        for entry in self.contacts.iter(rtxn)? {
            let (_, bytes) = entry?;
            out.push(decode(bytes)?);
        }
        Ok(out)
    }

    /// All contacts, ordered by name (ignoring case).
    pub fn contacts(&self) -> Result<Vec<Contact>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut all = self.all_contacts(&rtxn)?;
        all.sort_by_key(|c| key(&c.name));
        Ok(all)
    }

    /// Adds contacts in one transaction: all or none. Entries identical to a contact
    /// already saved are skipped, so importing the same file twice is harmless.
    pub fn add_contacts(&self, entries: &[(String, String)]) -> Result<Vec<Contact>, ContactError> {
        let mut wtxn = self.env.write_txn().map_err(StoreError::from)?;
        let mut known = self.all_contacts(&wtxn)?;
        let mut next = self.next_contact_id(&wtxn)?;
        let mut problems = Vec::new();
        let mut added = Vec::new();
        for (name, number) in entries {
            match new_contact(&known, name, number, next) {
                Ok(Some(c)) => {
                    next += 1;
                    self.contacts
                        .put(&mut wtxn, &c.id, &encode(&c))
                        .map_err(StoreError::from)?;
                    known.push(c.clone());
                    added.push(c);
                }
                Ok(None) => {}
                Err(e) => problems.push(e.to_string()),
            }
        }
        if !problems.is_empty() {
            return Err(ContactError::Import(problems));
        }
        self.settings
            .put(&mut wtxn, NEXT_ID, &next.to_string())
            .map_err(StoreError::from)?;
        wtxn.commit().map_err(StoreError::from)?;
        Ok(added)
    }

    /// Adds one contact.
    pub fn add_contact(&self, name: &str, number: &str) -> Result<Contact, ContactError> {
        let mut wtxn = self.env.write_txn().map_err(StoreError::from)?;
        let known = self.all_contacts(&wtxn)?;
        let next = self.next_contact_id(&wtxn)?;
        let c = match new_contact(&known, name, number, next)? {
            Some(c) => c,
            None => {
                let (name, number) = checked(name, number)?;
                return Err(ContactError::DuplicateNumber {
                    number,
                    existing: name,
                });
            }
        };
        self.contacts
            .put(&mut wtxn, &c.id, &encode(&c))
            .map_err(StoreError::from)?;
        self.settings
            .put(&mut wtxn, NEXT_ID, &(next + 1).to_string())
            .map_err(StoreError::from)?;
        wtxn.commit().map_err(StoreError::from)?;
        Ok(c)
    }

    /// Ids are never reused, so a script holding an old id cannot hit a new contact.
    fn next_contact_id(&self, txn: &heed::RoTxn) -> Result<u64, StoreError> {
        Ok(self
            .settings
            .get(txn, NEXT_ID)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(1))
    }

    pub fn remove_contact(&self, id: u64) -> Result<(), ContactError> {
        let mut wtxn = self.env.write_txn().map_err(StoreError::from)?;
        if !self
            .contacts
            .delete(&mut wtxn, &id)
            .map_err(StoreError::from)?
        {
            return Err(ContactError::NotFound(id.to_string()));
        }
        wtxn.commit().map_err(StoreError::from)?;
        Ok(())
    }

    pub fn rename_contact(&self, id: u64, name: &str) -> Result<Contact, ContactError> {
        let mut wtxn = self.env.write_txn().map_err(StoreError::from)?;
        let all = self.all_contacts(&wtxn)?;
        let mut c = all
            .iter()
            .find(|c| c.id == id)
            .cloned()
            .ok_or_else(|| ContactError::NotFound(id.to_string()))?;
        let (name, _) = checked(name, &c.number)?;
        if all.iter().any(|o| o.id != id && key(&o.name) == key(&name)) {
            return Err(ContactError::DuplicateName(name));
        }
        c.name = name;
        self.contacts
            .put(&mut wtxn, &id, &encode(&c))
            .map_err(StoreError::from)?;
        wtxn.commit().map_err(StoreError::from)?;
        Ok(c)
    }

    /// The contact with this id, name (ignoring case) or number.
    pub fn lookup_contact(&self, query: &str) -> Result<Contact, ContactError> {
        let q = query.trim();
        let all = self.contacts()?;
        all.iter()
            .find(|c| c.id.to_string() == q)
            .or_else(|| all.iter().find(|c| key(&c.name) == key(q)))
            .or_else(|| all.iter().find(|c| c.number == q))
            .cloned()
            .ok_or_else(|| ContactError::NotFound(q.chars().take(64).collect()))
    }

    /// Resolves what a user typed to call or write to (a number, or a contact's id or
    /// name) to (number, name); the name is the contact's, or "" for a stranger.
    pub fn recipient(&self, target: &str) -> Result<(String, String), ContactError> {
        let target = target.trim();
        match target.parse::<Number>() {
            Ok(n) => {
                let name = self
                    .lookup_contact(n.as_str())
                    .ok()
                    .filter(|c| c.number == n.as_str())
                    .map(|c| c.name)
                    .unwrap_or_default();
                Ok((n.to_string(), name))
            }
            Err(_) => match self.lookup_contact(target) {
                Ok(c) => Ok((c.number, c.name)),
                Err(ContactError::NotFound(_)) => {
                    Err(ContactError::NoRecipient(target.chars().take(64).collect()))
                }
                Err(e) => Err(e),
            },
        }
    }
}

/// Checks a new entry against the contacts already known: `Ok(None)` if the very same
/// contact exists, an error for a clash, else the contact to store (with a fresh id).
fn new_contact(
    known: &[Contact],
    name: &str,
    number: &str,
    id: u64,
) -> Result<Option<Contact>, ContactError> {
    let (name, number) = checked(name, number)?;
    if let Some(same) = known.iter().find(|c| c.number == number) {
        if key(&same.name) == key(&name) {
            return Ok(None);
        }
        return Err(ContactError::DuplicateNumber {
            number,
            existing: same.name.clone(),
        });
    }
    if known.iter().any(|c| key(&c.name) == key(&name)) {
        return Err(ContactError::DuplicateName(name));
    }
    Ok(Some(Contact { id, name, number }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        (d, s)
    }

    #[test]
    fn add_list_lookup_rename_remove() {
        let (_d, s) = store();
        let bob = s.add_contact("Bob", "2000").unwrap();
        let alice = s.add_contact(" Alice ", "1042").unwrap();
        assert_eq!(alice.name, "Alice");
        let names: Vec<_> = s.contacts().unwrap().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["Alice", "Bob"]);
        assert_eq!(s.lookup_contact("alice").unwrap().number, "1042");
        assert_eq!(s.lookup_contact("2000").unwrap().id, bob.id);
        assert_eq!(s.lookup_contact(&bob.id.to_string()).unwrap().name, "Bob");
        assert!(matches!(
            s.lookup_contact("carol"),
            Err(ContactError::NotFound(_))
        ));
        s.rename_contact(bob.id, "Robert").unwrap();
        assert!(matches!(
            s.rename_contact(bob.id, "ALICE"),
            Err(ContactError::DuplicateName(_))
        ));
        s.remove_contact(alice.id).unwrap();
        assert!(matches!(
            s.remove_contact(alice.id),
            Err(ContactError::NotFound(_))
        ));
        assert_eq!(s.contacts().unwrap().len(), 1);
        let carol = s.add_contact("Carol", "1042").unwrap();
        assert!(carol.id > alice.id, "ids are not reused");
    }

    #[test]
    fn a_recipient_is_a_number_or_a_contact() {
        let (_d, s) = store();
        s.add_contact("Alice", "1042").unwrap();
        assert_eq!(
            s.recipient(" alice ").unwrap(),
            ("1042".into(), "Alice".into())
        );
        assert_eq!(
            s.recipient("1042").unwrap(),
            ("1042".into(), "Alice".into())
        );
        assert_eq!(s.recipient("2000").unwrap(), ("2000".into(), String::new()));
        let e = s.recipient("carol").unwrap_err();
        assert_eq!(e.to_string(), "\"carol\" is neither a number nor a contact");
    }

    #[test]
    fn duplicates_and_invalid_input_are_refused() {
        let (_d, s) = store();
        s.add_contact("Alice", "1042").unwrap();
        assert!(matches!(
            s.add_contact("Other", "1042"),
            Err(ContactError::DuplicateNumber { .. })
        ));
        assert!(s.add_contact("alice", "1043").is_err());
        assert!(matches!(
            s.add_contact("X", "12ab"),
            Err(ContactError::InvalidNumber(_))
        ));
        assert!(matches!(
            s.add_contact("", "1044"),
            Err(ContactError::InvalidName { .. })
        ));
    }

    #[test]
    fn imports_are_all_or_nothing_and_idempotent() {
        let (_d, s) = store();
        let batch = vec![
            ("A".to_string(), "1001".to_string()),
            ("B".to_string(), "1002".to_string()),
        ];
        assert_eq!(s.add_contacts(&batch).unwrap().len(), 2);
        assert_eq!(s.add_contacts(&batch).unwrap().len(), 0);
        let bad = vec![
            ("C".to_string(), "1003".to_string()),
            ("D".to_string(), "nope".to_string()),
        ];
        let e = s.add_contacts(&bad).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        assert_eq!(s.contacts().unwrap().len(), 2);
    }
}

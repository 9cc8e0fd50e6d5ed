//! Contacts: add, rename, remove, list, look up, and import many at once. Names are
//! unique ignoring case (so `dial alice` is never ambiguous) and so are numbers.
//!
//! A contact's number is either a phoned number (2 to 15 digits, not starting with 0),
//! stored in that canonical form and dialable on the relay, or an *external* number from
//! another phone's address book (`+44 20 7946 0958`, `020 7946 0958`), stored as written
//! and kept, shown and exported, but not dialled. Numbers are compared by their
//! [`normalized`] form, so `+44 20 7946 0958` and `+442079460958` are the same number.

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
    #[error(
        "invalid number {0:?}: use a phone number (digits, optionally a leading + and spaces, dashes, dots or brackets)"
    )]
    InvalidNumber(String),
    #[error(
        "{name}'s number {number} is not a number on this relay (phoned numbers are 2 to 15 digits, not starting with 0)"
    )]
    NotDialable { name: String, number: String },
    #[error("number {number} is already saved as {existing:?}")]
    DuplicateNumber { number: String, existing: String },
    #[error("a contact named {0:?} already exists")]
    DuplicateName(String),
    #[error("no contact {0:?}")]
    NotFound(String),
    #[error("{0:?} is neither a number nor a contact")]
    NoRecipient(String),
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

/// Longest external number kept, as written.
const MAX_WRITTEN: usize = 40;

/// A number without its separators (spaces, dashes, dots, brackets, slashes): a leading
/// `+` and 2 to 15 digits (E.164's longest), or `None` for what is no phone number.
pub fn normalized(number: &str) -> Option<String> {
    let n: String = number
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{a0}' | '-' | '.' | '(' | ')' | '/'))
        .collect();
    let digits = n.strip_prefix('+').unwrap_or(&n);
    let ok = (2..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(n)
}

/// The phoned number a contact's number is, if it is one (see the module docs).
pub fn dialable(number: &str) -> Option<Number> {
    normalized(number)?.parse().ok()
}

/// Whether two written numbers are the same number.
fn same_number(a: &str, b: &str) -> bool {
    match (normalized(a), normalized(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// A checked name and number, ready to store: a phoned number in its canonical form, an
/// external one as written.
fn checked(name: &str, number: &str) -> Result<(String, String), ContactError> {
    let name = name.trim().to_owned();
    check_display_name(&name).map_err(|e| ContactError::InvalidName {
        name: name.chars().take(64).collect(),
        why: e.to_string(),
    })?;
    let number = number.trim();
    let invalid = || ContactError::InvalidNumber(number.chars().take(32).collect());
    normalized(number).ok_or_else(invalid)?;
    if number.len() > MAX_WRITTEN || number.chars().any(char::is_control) {
        return Err(invalid());
    }
    let number = match dialable(number) {
        Some(n) => n.to_string(),
        None => number.to_owned(),
    };
    Ok((name, number))
}

/// What an import did: the contacts added, and why each entry left out was left out.
#[derive(Debug, Default)]
pub struct Imported {
    pub added: Vec<Contact>,
    /// (the entry's index in the input, from 0, and why).
    pub skipped: Vec<(usize, String)>,
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

    /// Adds contacts in one transaction. Entries identical to a contact already saved
    /// are left out silently, so importing the same file twice is harmless; entries that
    /// cannot be saved (no phone number, a clash with another contact) are left out and
    /// reported, and the rest are added.
    pub fn add_contacts(&self, entries: &[(String, String)]) -> Result<Imported, ContactError> {
        let mut wtxn = self.env.write_txn().map_err(StoreError::from)?;
        let mut known = self.all_contacts(&wtxn)?;
        let mut next = self.next_contact_id(&wtxn)?;
        let mut skipped = Vec::new();
        let mut added = Vec::new();
        for (index, (name, number)) in entries.iter().enumerate() {
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
                Err(ContactError::Store(e)) => return Err(e.into()),
                Err(e) => skipped.push((index, e.to_string())),
            }
        }
        self.settings
            .put(&mut wtxn, NEXT_ID, &next.to_string())
            .map_err(StoreError::from)?;
        wtxn.commit().map_err(StoreError::from)?;
        Ok(Imported { added, skipped })
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
            .or_else(|| all.iter().find(|c| same_number(&c.number, q)))
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
                    .filter(|c| same_number(&c.number, n.as_str()))
                    .map(|c| c.name)
                    .unwrap_or_default();
                Ok((n.to_string(), name))
            }
            Err(_) => match self.lookup_contact(target) {
                Ok(c) => match dialable(&c.number) {
                    Some(n) => Ok((n.to_string(), c.name)),
                    None => Err(ContactError::NotDialable {
                        name: c.name,
                        number: c.number,
                    }),
                },
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
    if let Some(same) = known.iter().find(|c| same_number(&c.number, &number)) {
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
    fn imports_keep_the_usable_entries_and_report_the_rest_and_are_idempotent() {
        let (_d, s) = store();
        let batch = vec![
            ("A".to_string(), "1001".to_string()),
            ("B".to_string(), "1002".to_string()),
        ];
        assert_eq!(s.add_contacts(&batch).unwrap().added.len(), 2);
        assert_eq!(s.add_contacts(&batch).unwrap().added.len(), 0);
        let mixed = vec![
            ("C".to_string(), "1003".to_string()),
            ("D".to_string(), "nope".to_string()),
            ("London".to_string(), "+44 20 7946 0958".to_string()),
            ("London again".to_string(), "+442079460958".to_string()),
        ];
        let got = s.add_contacts(&mixed).unwrap();
        let added: Vec<_> = got.added.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(added, ["C", "London"]);
        assert_eq!(got.skipped.len(), 2, "{:?}", got.skipped);
        assert_eq!(got.skipped[0].0, 1);
        assert!(got.skipped[0].1.contains("nope"), "{:?}", got.skipped);
        assert_eq!(got.skipped[1].0, 3);
        assert!(got.skipped[1].1.contains("London"), "{:?}", got.skipped);
        assert_eq!(s.contacts().unwrap().len(), 4);
    }

    #[test]
    fn external_numbers_are_kept_as_written_matched_normalized_and_not_dialled() {
        let (_d, s) = store();
        let london = s.add_contact("London", " +44 (20) 7946-0958 ").unwrap();
        assert_eq!(london.number, "+44 (20) 7946-0958");
        assert_eq!(dialable(&london.number), None);
        assert_eq!(s.lookup_contact("+442079460958").unwrap().id, london.id);
        let national = s.add_contact("Office", "020 7946 0000").unwrap();
        assert_eq!(dialable(&national.number), None);
        let e = s.recipient("london").unwrap_err();
        assert!(matches!(e, ContactError::NotDialable { .. }), "{e}");
        assert!(e.to_string().contains("+44 (20) 7946-0958"), "{e}");
        // A phoned number written with separators is stored canonically and dialled.
        let bob = s.add_contact("Bob", "10-42").unwrap();
        assert_eq!(bob.number, "1042");
        assert_eq!(
            s.recipient("bob").unwrap(),
            ("1042".to_owned(), "Bob".to_owned())
        );
        assert!(matches!(
            s.add_contact("Dup", "+44 20 7946 0958"),
            Err(ContactError::DuplicateNumber { .. })
        ));
        for bad in ["", "+", "12ab", "1", "+1234567890123456", "call me"] {
            assert!(
                matches!(s.add_contact("X", bad), Err(ContactError::InvalidNumber(_))),
                "{bad:?}"
            );
        }
    }
}

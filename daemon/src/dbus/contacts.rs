//! `org.phoned.Phone1.Contacts`: the local address book, with vCard import and export.

use phoned_proto::dbus::{MAX_VCARD, PhoneError};
use zbus::interface;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;

use super::error::contact_error;
use super::{check_arg, check_len, no_arguments};
use crate::core::Change;
use crate::driver::Handle;
use crate::store::contacts::Contact;
use crate::vcard;

pub struct ContactsIface {
    phone: Handle,
}

impl ContactsIface {
    pub fn new(phone: Handle) -> Self {
        ContactsIface { phone }
    }
}

fn id(text: &str) -> Result<u64, PhoneError> {
    text.trim().parse().map_err(|_| {
        PhoneError::NotFound(format!(
            "no contact {:?}",
            text.chars().take(32).collect::<String>()
        ))
    })
}

fn row(c: Contact) -> (String, String, String) {
    (c.id.to_string(), c.name, c.number)
}

impl ContactsIface {
    /// Imports what can be imported: (ids added, why each card left out was left out).
    fn import(&self, text: &str) -> Result<(Vec<String>, Vec<String>), PhoneError> {
        check_len("vCard text", text, MAX_VCARD)?;
        let cards = vcard::parse(text).map_err(|e| PhoneError::InvalidArgument(e.to_string()))?;
        let total = cards.len();
        let mut skipped = Vec::new();
        // (card number from 1, entry) for the cards that have a name and a number.
        let mut entries = Vec::new();
        let mut card_of = Vec::new();
        for (i, card) in cards.into_iter().enumerate() {
            match card {
                Ok(entry) => {
                    card_of.push(i + 1);
                    entries.push(entry);
                }
                Err(e) => skipped.push((i + 1, e.to_string())),
            }
        }
        let imported = self
            .phone
            .store
            .add_contacts(&entries)
            .map_err(contact_error)?;
        for (entry, why) in imported.skipped {
            let card = card_of.get(entry).copied().unwrap_or_default();
            let name = entries.get(entry).map(|e| e.0.as_str()).unwrap_or_default();
            let name: String = name.chars().take(64).collect();
            skipped.push((card, format!("card {card} ({name}): {why}")));
        }
        skipped.sort_by_key(|(card, _)| *card);
        if skipped.len() == total {
            // No card could be used: that is no import (and nothing was written).
            let why: Vec<String> = skipped.into_iter().map(|(_, why)| why).collect();
            return Err(PhoneError::InvalidArgument(format!(
                "no card could be imported: {}",
                why.join("; ")
            )));
        }
        if !imported.added.is_empty() {
            self.phone.announce(Change::Contacts);
        }
        Ok((
            imported
                .added
                .into_iter()
                .map(|c| c.id.to_string())
                .collect(),
            skipped.into_iter().map(|(_, why)| why).collect(),
        ))
    }
}

#[interface(name = "org.phoned.Phone1.Contacts")]
impl ContactsIface {
    /// Adds a contact; returns its id.
    fn add(&self, name: &str, number: &str) -> Result<String, PhoneError> {
        check_arg("name", name)?;
        check_arg("number", number)?;
        let c = self
            .phone
            .store
            .add_contact(name, number)
            .map_err(contact_error)?;
        self.phone.announce(Change::Contacts);
        Ok(c.id.to_string())
    }

    fn remove(&self, id_text: &str) -> Result<(), PhoneError> {
        check_arg("id", id_text)?;
        self.phone
            .store
            .remove_contact(id(id_text)?)
            .map_err(contact_error)?;
        self.phone.announce(Change::Contacts);
        Ok(())
    }

    fn rename(&self, id_text: &str, name: &str) -> Result<(), PhoneError> {
        check_arg("id", id_text)?;
        check_arg("name", name)?;
        self.phone
            .store
            .rename_contact(id(id_text)?, name)
            .map_err(contact_error)?;
        self.phone.announce(Change::Contacts);
        Ok(())
    }

    /// (id, name, number), ordered by name.
    fn list(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<(String, String, String)>, PhoneError> {
        no_arguments(&header)?;
        let all = self
            .phone
            .store
            .contacts()
            .map_err(|e| PhoneError::Failed(e.to_string()))?;
        Ok(all.into_iter().map(row).collect())
    }

    /// The contact whose id, name (ignoring case) or number is `query`.
    fn lookup(&self, query: &str) -> Result<(String, String, String), PhoneError> {
        check_arg("query", query)?;
        self.phone
            .store
            .lookup_contact(query)
            .map(row)
            .map_err(contact_error)
    }

    /// Imports vCard 3.0/4.0 text; returns the ids added. Cards identical to saved
    /// contacts are left out, and so are cards that cannot be saved (no name, no phone
    /// number, a clash with another contact): `ImportVCardReport` says which and why.
    /// `InvalidArgument` when no card at all can be saved.
    #[zbus(name = "ImportVCard")]
    fn import_vcard(&self, text: &str) -> Result<Vec<String>, PhoneError> {
        Ok(self.import(text)?.0)
    }

    /// As `ImportVCard`, and also why each card left out was left out: `card N (name):
    /// why`, in the order of the text.
    #[zbus(name = "ImportVCardReport")]
    fn import_vcard_report(&self, text: &str) -> Result<(Vec<String>, Vec<String>), PhoneError> {
        self.import(text)
    }

    /// Every contact as vCard 4.0.
    #[zbus(name = "ExportVCard")]
    fn export_vcard(&self, #[zbus(header)] header: Header<'_>) -> Result<String, PhoneError> {
        no_arguments(&header)?;
        let all = self
            .phone
            .store
            .contacts()
            .map_err(|e| PhoneError::Failed(e.to_string()))?;
        Ok(vcard::export(&all))
    }

    #[zbus(signal)]
    pub async fn changed(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;
}

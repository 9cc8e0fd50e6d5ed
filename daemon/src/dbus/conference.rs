//! `org.phoned.Phone1.Conference`: one object per conference this device takes part in,
//! at `/org/phoned/Phone1/Conference/<n>`, where `<n>` is the number of the call that is
//! this device's place in it (`/org/phoned/Phone1/Call/<n>`: answer, hold, mute and hang
//! up there). The object appears when the call becomes a conference (created, invited,
//! merged, added to) and goes with the call.

use std::sync::{Mutex, PoisonError};

use phoned_proto::dbus::PhoneError;
use zbus::interface;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::wire::OwnedObjectPath;

use super::announced::{self, Announced};
use super::manager::call_path;
use super::{check_arg, no_arguments};
use crate::call::engine::{Call, Local};
use crate::core::{CallOp, Command};
use crate::driver::Handle;

pub struct ConferenceIface {
    phone: Handle,
    local: Local,
    announced: Mutex<Announced>,
}

/// The object path of the conference of call `local`.
pub fn path(local: Local) -> String {
    phoned_proto::dbus::conference_path(local)
}

/// One party as `Parties` shows it: number, name, state, speaking.
type PartyRow = (String, String, String, bool);

impl ConferenceIface {
    pub fn new(phone: Handle, local: Local) -> Self {
        let iface = ConferenceIface {
            phone,
            local,
            announced: Mutex::default(),
        };
        let now = iface.announceable();
        iface
            .announced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .update(now);
        iface
    }

    fn snapshot(&self) -> Option<Call> {
        self.phone.snapshot().calls.get(&self.local).cloned()
    }

    fn rows(&self) -> Vec<PartyRow> {
        let snapshot = self.phone.snapshot();
        let Some(roster) = snapshot
            .calls
            .get(&self.local)
            .and_then(|c| c.conference.clone())
            .and_then(|i| i.roster)
        else {
            return Vec::new();
        };
        // The far sources the call's media heard speaking at its latest report.
        let speaking = snapshot
            .quality
            .get(&self.local)
            .map(|q| q.speaking)
            .unwrap_or_default();
        roster
            .parties
            .iter()
            .map(|p| {
                (
                    p.number.clone(),
                    p.name.clone(),
                    p.state.as_str().to_owned(),
                    // From the levels of the frames received (this device's own
                    // entry is never marked: it does not hear itself).
                    p.source.is_some_and(|s| speaking.contains(s)),
                )
            })
            .collect()
    }

    fn host_number(&self) -> String {
        self.snapshot()
            .and_then(|c| c.conference)
            .and_then(|i| i.roster)
            .map(|r| r.host)
            .unwrap_or_default()
    }

    fn announceable(&self) -> Vec<(&'static str, zbus::Variant<'static>)> {
        vec![
            ("Parties", self.rows().into()),
            ("Host", self.host_number().into()),
        ]
    }

    /// Tells watchers what changed, in one `PropertiesChanged` (none if nothing did).
    pub async fn announce(&self, emitter: &SignalEmitter<'_>) -> zbus::Result<()> {
        let now = self.announceable();
        announced::announce(
            emitter,
            "org.phoned.Phone1.Conference",
            &self.announced,
            now,
        )
        .await
    }
}

#[interface(name = "org.phoned.Phone1.Conference")]
impl ConferenceIface {
    /// Invites `number` (host only): its devices ring; it shows in `Parties` as
    /// `ringing`, then `joined` or `left`.
    async fn add(&self, number: &str) -> Result<(), PhoneError> {
        check_arg("number", number)?;
        self.phone
            .command(Command::ConferenceAdd(self.local, number.to_owned()))
            .await?;
        Ok(())
    }

    /// Takes `number` out of the conference (host only), ringing or in it.
    async fn remove(&self, number: &str) -> Result<(), PhoneError> {
        check_arg("number", number)?;
        self.phone
            .command(Command::ConferenceRemove(self.local, number.to_owned()))
            .await?;
        Ok(())
    }

    /// Leaves the conference (hangs up this device's call in it); the others go on.
    async fn leave(&self, #[zbus(header)] header: Header<'_>) -> Result<(), PhoneError> {
        no_arguments(&header)?;
        self.phone
            .command(Command::Call(self.local, CallOp::Hangup))
            .await?;
        Ok(())
    }

    /// Every party: number, name, state (`invited`, `ringing`, `joined`, `held`,
    /// `left`), speaking (another party whose speech this device received within the
    /// last second; updated about once a second).
    #[zbus(property)]
    fn parties(&self) -> Vec<PartyRow> {
        self.rows()
    }

    /// The number of the party that may add and remove.
    #[zbus(property)]
    fn host(&self) -> String {
        self.host_number()
    }

    /// This device's call in the conference.
    #[zbus(property)]
    fn call(&self) -> OwnedObjectPath {
        call_path(self.local)
    }
}
